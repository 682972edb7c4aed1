//! Users, passwords, login sessions.
//!
//! * Passwords are stored only as argon2id PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`,
//!   the `argon2` crate's defaults, OWASP's minimum). Verification is constant-time; an
//!   unknown user name is checked against a dummy hash so that it costs the same time as a
//!   wrong password and does not reveal which names exist.
//! * A session token is 32 bytes from the OS random source, sent to the client base64url
//!   encoded (43 characters). The server keeps only its SHA-256 digest, with the user and the
//!   expiry, in memory: a restart logs everybody out, and a memory dump reveals no usable token.
//! * Failed logins wait a fixed delay and are counted per client address; past the configured
//!   number per minute, the address gets 429 until the minute is over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};
use store::{Store, User};

use crate::WebError;

/// Name of the user created on first start.
pub const ADMIN_USER: &str = "admin";

/// Length of the random admin password generated when none is given.
pub const GENERATED_PASSWORD_LEN: usize = 20;

/// Longest password accepted at login or from the environment, in bytes (hashing cost grows
/// with it; nobody types more).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Longest user name accepted at login, in bytes.
pub const MAX_USERNAME_BYTES: usize = 256;

/// What [`ensure_admin`] did.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// Users already existed and no password was given in the environment: nothing changed.
    Existing,
    /// Users already existed; the environment password was ignored, because it only seeds the
    /// first start and never overwrites a stored password. The binary should warn about it.
    EnvPasswordIgnored,
    /// First start: `admin` was created with the password from the environment.
    CreatedFromEnv,
    /// First start without a password in the environment: `admin` was created with this
    /// random password, which the binary must print once (it is not stored anywhere in clear).
    CreatedWithRandomPassword {
        /// The generated password.
        password: String,
    },
}

impl std::fmt::Debug for AdminBootstrap {
    // Keeps the generated password out of debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminBootstrap::Existing => f.write_str("Existing"),
            AdminBootstrap::EnvPasswordIgnored => f.write_str("EnvPasswordIgnored"),
            AdminBootstrap::CreatedFromEnv => f.write_str("CreatedFromEnv"),
            AdminBootstrap::CreatedWithRandomPassword { .. } => {
                f.write_str("CreatedWithRandomPassword { password: <redacted> }")
            }
        }
    }
}

/// Creates the `admin` user on first start (when the store has no users at all).
///
/// `env_password` is the value of `HEPSTACK_ADMIN_PASSWORD`. It only seeds the first start:
/// when users already exist, it is ignored (reported as [`AdminBootstrap::EnvPasswordIgnored`])
/// and never overwrites a stored password. Without it, a random
/// [`GENERATED_PASSWORD_LEN`]-character password is generated and returned so the caller can
/// print it once. There is no default password. An environment password shorter than
/// [`crate::admin::MIN_PASSWORD_CHARS`] (as the API requires) or over-long is an error. Blocking: call it before serving, or from `spawn_blocking`.
pub fn ensure_admin(
    store: &dyn Store,
    env_password: Option<&str>,
) -> Result<AdminBootstrap, WebError> {
    if let Some(p) = env_password {
        if p.is_empty() {
            return Err(WebError::AdminPassword("empty"));
        }
        // The API refuses shorter passwords; the first start must not be the way around it.
        if p.chars().count() < crate::admin::MIN_PASSWORD_CHARS {
            return Err(WebError::AdminPassword("shorter than 8 characters"));
        }
        if p.len() > MAX_PASSWORD_BYTES {
            return Err(WebError::AdminPassword("longer than 1024 bytes"));
        }
    }
    if store.user_count()? > 0 {
        return Ok(match env_password {
            Some(_) => AdminBootstrap::EnvPasswordIgnored,
            None => AdminBootstrap::Existing,
        });
    }
    let (password, outcome) = match env_password {
        Some(p) => (p.to_string(), AdminBootstrap::CreatedFromEnv),
        None => {
            let p = random_password(GENERATED_PASSWORD_LEN)?;
            (
                p.clone(),
                AdminBootstrap::CreatedWithRandomPassword { password: p },
            )
        }
    };
    store.put_user(&User {
        name: ADMIN_USER.to_string(),
        password_hash: hash_password(&password)?,
        admin: true,
    })?;
    Ok(outcome)
}

/// Hashes a password with argon2id and a random salt into a PHC string.
pub fn hash_password(password: &str) -> Result<String, WebError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| WebError::Crypto(e.to_string()))
}

/// Checks a password against a PHC string (constant-time in the comparison). A malformed
/// stored hash never verifies.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random password of `len` letters and digits from the OS random source.
pub fn random_password(len: usize) -> Result<String, WebError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Largest multiple of the alphabet size below 256: bytes at or above it are rejected so
    // every character is equally likely.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::getrandom(&mut buf).map_err(|e| WebError::Crypto(e.to_string()))?;
        for &b in buf.iter().filter(|&&b| b < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// SHA-256 of a token, the key sessions are kept under.
fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug)]
struct Session {
    user: String,
    admin: bool,
    csrf: String,
    expires: Instant,
}

/// What a live session grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// User name.
    pub user: String,
    /// Whether the user was an admin at login (sessions of a user are ended when an admin
    /// changes the user, so this never outlives a demotion).
    pub admin: bool,
    /// The session's CSRF token, required in `X-CSRF-Token` on cookie-authenticated
    /// state-changing requests.
    pub csrf: String,
}

/// A newly created session.
#[derive(Debug)]
pub struct NewSession {
    /// The token to hand to the client (never kept by the server).
    pub token: String,
    /// The session's CSRF token (not secret from the session's own client).
    pub csrf: String,
    /// Monotonic expiry.
    pub expires: Instant,
}

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_token() -> Result<String, WebError> {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw).map_err(|e| WebError::Crypto(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The live sessions, keyed by token digest. Bounded by `max`.
#[derive(Debug)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
    lifetime: Duration,
    max: usize,
}

impl Sessions {
    /// An empty session table.
    pub fn new(lifetime: Duration, max: usize) -> Sessions {
        Sessions {
            by_digest: Mutex::new(HashMap::new()),
            lifetime,
            max: max.max(1),
        }
    }

    /// How long a new session lives.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Starts a session for `user` at `now`. When the table is full, expired sessions are
    /// dropped, then the one closest to expiry.
    pub fn create(&self, user: &str, admin: bool, now: Instant) -> Result<NewSession, WebError> {
        let token = random_token()?;
        let csrf = random_token()?;
        let expires = now + self.lifetime;
        let mut map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max {
            map.retain(|_, s| s.expires > now);
        }
        while map.len() >= self.max {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            token_digest(&token),
            Session {
                user: user.to_string(),
                admin,
                csrf: csrf.clone(),
                expires,
            },
        );
        Ok(NewSession {
            token,
            csrf,
            expires,
        })
    }

    /// The grant of a live session; an expired one is removed and gives `None`.
    pub fn validate(&self, token: &str, now: Instant) -> Option<SessionInfo> {
        let digest = token_digest(token);
        let mut map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&digest) {
            Some(s) if s.expires > now => Some(SessionInfo {
                user: s.user.clone(),
                admin: s.admin,
                csrf: s.csrf.clone(),
            }),
            Some(_) => {
                map.remove(&digest);
                None
            }
            None => None,
        }
    }

    /// Ends a session; true when it existed.
    pub fn remove(&self, token: &str) -> bool {
        let mut map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&token_digest(token)).is_some()
    }

    /// Ends every session of `user` (after its password, role or existence changed); returns
    /// how many there were.
    pub fn remove_user(&self, user: &str) -> usize {
        let mut map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|_, s| s.user != user);
        before - map.len()
    }

    /// Ends every session of `user` but the one of `keep_token`; returns how many ended.
    pub fn remove_user_except(&self, user: &str, keep_token: &str) -> usize {
        let keep = token_digest(keep_token);
        let mut map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|k, s| s.user != user || *k == keep);
        before - map.len()
    }

    /// Live and not yet purged sessions.
    pub fn len(&self) -> usize {
        self.by_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Most client addresses, and most accounts, tracked by [`LoginLimiter`]; beyond it, stale
/// entries are dropped and, if none is stale, the oldest window.
const MAX_TRACKED_KEYS: usize = 10_000;

/// Window of the failed-login count.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Password attempts (logins, own-password changes) per client address and per account within
/// a minute.
///
/// An attempt is charged to both before its password is verified, under one lock, so that
/// concurrent attempts cannot all pass the check before any failure is recorded; a successful
/// attempt gets its own charge back ([`LoginLimiter::succeeded`]) and resets nothing else, so a
/// login as one account does not clear the failures of guesses at another from the same
/// address.
#[derive(Debug)]
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
    per_address: u32,
    per_account: u32,
}

#[derive(Debug, Default)]
struct LimiterState {
    addresses: HashMap<IpAddr, Window>,
    accounts: HashMap<String, Window>,
}

/// Attempts charged since `start`.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    /// The count within the window at `now` (0 once it has passed).
    fn current(&self, now: Instant) -> u32 {
        if now.saturating_duration_since(self.start) >= FAILURE_WINDOW {
            0
        } else {
            self.count
        }
    }

    fn retry_after(&self, now: Instant) -> u64 {
        FAILURE_WINDOW
            .saturating_sub(now.saturating_duration_since(self.start))
            .as_secs()
            .max(1)
    }
}

/// The window of `key` in `map`, made room for and restarted when it has passed.
fn window<'a, K: std::hash::Hash + Eq + Clone>(
    map: &'a mut HashMap<K, Window>,
    key: &K,
    now: Instant,
) -> &'a mut Window {
    if !map.contains_key(key) && map.len() >= MAX_TRACKED_KEYS {
        map.retain(|_, w| now.saturating_duration_since(w.start) < FAILURE_WINDOW);
        if map.len() >= MAX_TRACKED_KEYS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, w)| w.start)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
    }
    let w = map.entry(key.clone()).or_insert(Window {
        start: now,
        count: 0,
    });
    if w.current(now) == 0 {
        *w = Window {
            start: now,
            count: 0,
        };
    }
    w
}

impl LoginLimiter {
    /// A limiter allowing `per_address` failed attempts per client address and `per_account`
    /// per account within a minute (0: that limit is off).
    pub fn new(per_address: u32, per_account: u32) -> LoginLimiter {
        LoginLimiter {
            state: Mutex::new(LimiterState::default()),
            per_address,
            per_account,
        }
    }

    /// Charges one password attempt by `ip` at `account`; `Err(seconds to wait)`, charging
    /// nothing, when either has used up its attempts for the current window.
    pub fn begin(&self, ip: IpAddr, account: &str, now: Instant) -> Result<(), u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let LimiterState {
            addresses,
            accounts,
        } = &mut *state;
        let account = account.to_owned();
        for (limit, w) in [
            (self.per_address, addresses.get(&ip)),
            (self.per_account, accounts.get(&account)),
        ] {
            if let Some(w) = w {
                if limit > 0 && w.current(now) >= limit {
                    return Err(w.retry_after(now));
                }
            }
        }
        if self.per_address > 0 {
            let w = window(addresses, &ip, now);
            w.count = w.count.saturating_add(1);
        }
        if self.per_account > 0 {
            let w = window(accounts, &account, now);
            w.count = w.count.saturating_add(1);
        }
        Ok(())
    }

    /// Gives back the charge of an attempt whose password was right.
    pub fn succeeded(&self, ip: IpAddr, account: &str, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let refund = |w: Option<&mut Window>| {
            if let Some(w) = w.filter(|w| w.current(now) > 0) {
                w.count -= 1;
            }
        };
        refund(state.addresses.get_mut(&ip));
        refund(state.accounts.get_mut(account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret ", &h));
        assert!(!verify_password("s3cret", "not a phc string"));
        // Salts differ: the same password never hashes the same twice.
        assert_ne!(h, hash_password("s3cret").expect("hash"));
    }

    #[test]
    fn random_passwords() {
        let a = random_password(GENERATED_PASSWORD_LEN).expect("random");
        let b = random_password(GENERATED_PASSWORD_LEN).expect("random");
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        let a = s.create("alice", true, t0).expect("create");
        assert_eq!(a.token.len(), 43);
        assert_ne!(a.token, a.csrf);
        let info = s.validate(&a.token, t0).expect("live");
        assert_eq!((info.user.as_str(), info.admin), ("alice", true));
        assert_eq!(info.csrf, a.csrf);
        assert_eq!(
            s.validate(&a.token, t0 + Duration::from_secs(9))
                .map(|i| i.user),
            Some("alice".to_string())
        );
        assert_eq!(s.validate(&a.token, t0 + Duration::from_secs(10)), None);
        assert!(s.is_empty(), "expired session is purged on use");
        assert_eq!(s.validate("bogus", t0), None);

        let b = s.create("bob", false, t0).expect("create");
        let c = s
            .create("carol", false, t0 + Duration::from_secs(1))
            .expect("create");
        let d = s
            .create("dave", false, t0 + Duration::from_secs(2))
            .expect("create");
        assert_eq!(s.len(), 2);
        let now = t0 + Duration::from_secs(3);
        assert_eq!(s.validate(&b.token, now), None, "closest to expiry evicted");
        assert_eq!(
            s.validate(&c.token, now).map(|i| i.user).as_deref(),
            Some("carol")
        );
        assert_eq!(
            s.validate(&d.token, now).map(|i| i.user).as_deref(),
            Some("dave")
        );
        assert_eq!(s.remove_user("carol"), 1);
        assert_eq!(s.validate(&c.token, now), None);
        assert!(s.remove(&d.token));
        assert!(!s.remove(&d.token));
        assert_eq!(s.validate(&d.token, now), None);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn limiter_counts_per_address_and_window() {
        let l = LoginLimiter::new(2, 0);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let t0 = Instant::now();
        assert!(l.begin(ip, "a", t0).is_ok());
        assert!(l.begin(ip, "b", t0).is_ok());
        assert_eq!(l.begin(ip, "c", t0 + Duration::from_secs(1)), Err(59));
        assert!(l.begin(other, "a", t0).is_ok());
        assert!(l.begin(ip, "a", t0 + FAILURE_WINDOW).is_ok(), "new window");
        let off = LoginLimiter::new(0, 0);
        for _ in 0..100 {
            assert!(off.begin(ip, "a", t0).is_ok());
        }
    }

    #[test]
    fn a_success_gives_back_its_own_charge_only() {
        let l = LoginLimiter::new(3, 0);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let t0 = Instant::now();
        // Two guesses at the admin, then a good login as another user, repeatedly: the
        // guesses still add up.
        let mut guesses = 0;
        for _ in 0..10 {
            for _ in 0..2 {
                if l.begin(ip, "admin", t0).is_ok() {
                    guesses += 1;
                }
            }
            if l.begin(ip, "viewer", t0).is_ok() {
                l.succeeded(ip, "viewer", t0);
            }
        }
        assert_eq!(guesses, 3);
    }

    #[test]
    fn accounts_are_limited_across_addresses() {
        let l = LoginLimiter::new(0, 4);
        let t0 = Instant::now();
        let allowed = (0..50u8)
            .filter(|i| {
                let ip = IpAddr::from([198, 51, 100, *i]);
                l.begin(ip, "admin", t0).is_ok()
            })
            .count();
        assert_eq!(allowed, 4);
        assert!(l
            .begin(IpAddr::from([198, 51, 100, 99]), "viewer", t0)
            .is_ok());
    }
}
