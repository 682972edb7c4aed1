//! Bearer API tokens for scripts and integrations.
//!
//! An admin creates a token with a name and a role; the answer shows the token once. The
//! token is `hst_<id>_<secret>`: `id` is 16 hex digits naming the stored entry, `secret` 32
//! random bytes (base64url). The store keeps only the SHA-256 of the whole token in the
//! settings namespace [`TOKEN_NAMESPACE`], under the id, so a leaked database reveals no usable
//! token; a plain hash suffices because the secret has 256 bits of entropy (argon2 protects
//! low-entropy passwords, not random keys). Requests carrying a token act as the user
//! `token:<name>` with the token's role; revoking deletes the entry and takes effect at the
//! next request.
//!
//! A token may carry an expiry (refused from then on, listed as expired until revoked) and
//! records when it was last used, to the minute: the entry is rewritten at most once per
//! [`LAST_USED_RESOLUTION_US`] per token, so a busy script does not write the store on every
//! request.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::{Store, StoreError};

use crate::auth::{constant_time_eq, random_token};
use crate::WebError;

/// Settings namespace of the token entries.
pub const TOKEN_NAMESPACE: &str = "tokens";

/// Prefix of every API token (tells them from session tokens).
pub const TOKEN_PREFIX: &str = "hst_";

/// Longest token name, in bytes.
pub const MAX_TOKEN_NAME_BYTES: usize = 64;

/// How stale the recorded last use of a token may get before a request records it again.
pub const LAST_USED_RESOLUTION_US: i64 = 60_000_000;

/// A stored token: everything but the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    /// What the token is for (shown in lists; requests act as `token:<name>`).
    pub name: String,
    /// Whether the token may use the admin API.
    pub admin: bool,
    /// Creation time, µs since the epoch.
    pub created_us: i64,
    /// The admin who created it.
    pub created_by: String,
    /// Lower-case hex SHA-256 of the whole token.
    pub sha256: String,
    /// When the token stops working, µs since the epoch; `None`: never.
    #[serde(default)]
    pub expires_us: Option<i64>,
    /// When a request last authenticated with it (to [`LAST_USED_RESOLUTION_US`]); `None`:
    /// never used.
    #[serde(default)]
    pub last_used_us: Option<i64>,
}

impl StoredToken {
    /// Whether the token has expired at `now_us`.
    pub fn expired(&self, now_us: i64) -> bool {
        self.expires_us.is_some_and(|e| now_us >= e)
    }
}

fn digest_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates and stores a token; returns its id, the token (to show once) and the entry.
pub fn create(
    store: &dyn Store,
    name: &str,
    admin: bool,
    created_by: &str,
    now_us: i64,
    expires_us: Option<i64>,
) -> Result<(String, String, StoredToken), WebError> {
    let mut id_bytes = [0u8; 8];
    getrandom::getrandom(&mut id_bytes).map_err(|e| WebError::Crypto(e.to_string()))?;
    let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("{TOKEN_PREFIX}{id}_{}", random_token()?);
    let entry = StoredToken {
        name: name.to_string(),
        admin,
        created_us: now_us,
        created_by: created_by.to_string(),
        sha256: digest_hex(&token),
        expires_us,
        last_used_us: None,
    };
    let json = serde_json::to_string(&entry).map_err(|e| WebError::Crypto(e.to_string()))?;
    store.put_setting(TOKEN_NAMESPACE, &id, Some(&json))?;
    Ok((id, token, entry))
}

/// Every stored token entry with its id, ordered by id. Entries that do not parse are
/// skipped (and can never authenticate).
pub fn list(store: &dyn Store) -> Result<Vec<(String, StoredToken)>, StoreError> {
    Ok(store
        .settings(TOKEN_NAMESPACE)?
        .into_iter()
        .filter_map(|(id, json)| Some((id, serde_json::from_str(&json).ok()?)))
        .collect())
}

/// Deletes a token entry; false when there was none.
pub fn revoke(store: &dyn Store, id: &str) -> Result<bool, StoreError> {
    if store.setting(TOKEN_NAMESPACE, id)?.is_none() {
        return Ok(false);
    }
    store.put_setting(TOKEN_NAMESPACE, id, None)?;
    Ok(true)
}

/// The id part of a well-formed token.
pub fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed = id.len() == 16
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && (40..=64).contains(&secret.len());
    well_formed.then_some(id)
}

/// The entry a presented token belongs to, if it matches and has not expired at `now_us`;
/// records the use (see [`LAST_USED_RESOLUTION_US`]).
pub fn verify(
    store: &dyn Store,
    token: &str,
    now_us: i64,
) -> Result<Option<StoredToken>, StoreError> {
    let Some(id) = token_id(token) else {
        return Ok(None);
    };
    let Some(json) = store.setting(TOKEN_NAMESPACE, id)? else {
        return Ok(None);
    };
    let Ok(mut entry) = serde_json::from_str::<StoredToken>(&json) else {
        return Ok(None);
    };
    let ok = constant_time_eq(digest_hex(token).as_bytes(), entry.sha256.as_bytes());
    if !ok || entry.expired(now_us) {
        return Ok(None);
    }
    let stale = entry.last_used_us.map_or(true, |t| {
        now_us.saturating_sub(t) >= LAST_USED_RESOLUTION_US
    });
    if stale {
        entry.last_used_us = Some(now_us);
        // Written only when the entry is still there: a revocation racing this request wins.
        if let Ok(json) = serde_json::to_string(&entry) {
            if store.setting(TOKEN_NAMESPACE, id)?.is_some() {
                store.put_setting(TOKEN_NAMESPACE, id, Some(&json))?;
            }
        }
    }
    Ok(Some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids() {
        let secret = "A".repeat(43);
        let t = format!("hst_0123456789abcdef_{secret}");
        assert_eq!(token_id(&t), Some("0123456789abcdef"));
        for bad in [
            "hst_0123456789abcdef".to_string(),
            format!("hst_0123456789abcdeg_{secret}"),
            format!("hst_0123_{secret}"),
            format!("xyz_0123456789abcdef_{secret}"),
            "hst_0123456789abcdef_short".to_string(),
        ] {
            assert_eq!(token_id(&bad), None, "{bad}");
        }
    }

    #[test]
    fn expiry_and_last_use() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = store::SqliteStore::open(store::SqliteConfig {
            data_dir: dir.path().into(),
            ..store::SqliteConfig::default()
        })
        .expect("store");
        let t0 = 1_800_000_000_000_000;
        let day = 86_400_000_000;
        let (id, token, entry) =
            create(&store, "ci", false, "admin", t0, Some(t0 + day)).expect("create");
        assert_eq!(entry.last_used_us, None);
        let used = verify(&store, &token, t0 + 10)
            .expect("verify")
            .expect("live");
        assert_eq!(used.last_used_us, Some(t0 + 10));
        // Within the resolution the entry is not rewritten; after it, it is.
        verify(&store, &token, t0 + 20_000_000)
            .expect("verify")
            .expect("live");
        let listed = |store: &store::SqliteStore| list(store).expect("list")[0].1.last_used_us;
        assert_eq!(listed(&store), Some(t0 + 10));
        verify(&store, &token, t0 + 70_000_000)
            .expect("verify")
            .expect("live");
        assert_eq!(listed(&store), Some(t0 + 70_000_000));
        // Expired: refused, still listed until revoked.
        assert_eq!(verify(&store, &token, t0 + day).expect("verify"), None);
        assert!(list(&store).expect("list")[0].1.expired(t0 + day));
        assert!(revoke(&store, &id).expect("revoke"));
        // A token without expiry lives on.
        let (_, forever, _) = create(&store, "cron", true, "admin", t0, None).expect("create");
        assert!(verify(&store, &forever, i64::MAX)
            .expect("verify")
            .is_some());
        // Entries written before expiry existed parse with neither field.
        let old: StoredToken = serde_json::from_str(
            r#"{"name":"n","admin":false,"created_us":1,"created_by":"a","sha256":"00"}"#,
        )
        .expect("old entry");
        assert_eq!((old.expires_us, old.last_used_us), (None, None));
    }
}
