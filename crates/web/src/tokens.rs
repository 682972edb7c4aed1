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

/// The entry a presented token belongs to, if it is live and matches.
pub fn verify(store: &dyn Store, token: &str) -> Result<Option<StoredToken>, StoreError> {
    let Some(id) = token_id(token) else {
        return Ok(None);
    };
    let Some(json) = store.setting(TOKEN_NAMESPACE, id)? else {
        return Ok(None);
    };
    let Ok(entry) = serde_json::from_str::<StoredToken>(&json) else {
        return Ok(None);
    };
    let ok = constant_time_eq(digest_hex(token).as_bytes(), entry.sha256.as_bytes());
    Ok(ok.then_some(entry))
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
}
