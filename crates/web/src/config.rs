//! Configuration of the HTTP server (the `[web]` section of the hepstack config).

use serde::{Deserialize, Serialize};

use crate::WebError;

/// Settings of the HTTP API. Every field has a default; unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// How long a login session (bearer token and cookie) stays valid, in seconds. Default
    /// 43 200 (12 hours). A session is not extended by use: log in again after it expires.
    pub session_lifetime_secs: u64,
    /// Name of the session cookie set by `POST /api/v1/login`. Default `hepstack_session`.
    pub cookie_name: String,
    /// Mark the session cookie `Secure` (sent by browsers over HTTPS only). Turn this on when
    /// the server is reached through TLS (a TLS-terminating proxy); off by default because
    /// the built-in listener speaks plain HTTP.
    pub secure_cookie: bool,
    /// Largest page a search returns (`limit` is capped to this); at most
    /// `store::MAX_PAGE` (10 000). Default 1 000.
    pub max_page_size: usize,
    /// Page size when the request gives no `limit`. Default 100.
    pub default_page_size: usize,
    /// Time window searched when a request gives neither `from` nor `to`: the last this many
    /// seconds. When only one bound is given, the window extends from it. Default 3 600 (1 h).
    pub default_window_secs: u64,
    /// Origins allowed to call the API from a browser on another origin (CORS). Empty (the
    /// default) sends no CORS headers at all, so only same-origin pages can use the API.
    /// `"*"` allows any origin (credentials such as the cookie are then never allowed).
    pub cors_allowed_origins: Vec<String>,
    /// Most login sessions kept at once; when full, expired sessions are dropped first, then
    /// the ones closest to expiry. Bounds the memory an attacker with valid credentials can
    /// make the server use. Default 10 000.
    pub max_sessions: usize,
    /// Delay added to every failed login, in milliseconds, to slow down password guessing.
    /// Default 500.
    pub login_failure_delay_ms: u64,
    /// Failed password attempts (logins and `POST /api/v1/me/password`) allowed per client
    /// IP address within a minute; further attempts get 429 until the minute has passed.
    /// Attempts are counted before the password is verified, so concurrent guesses count
    /// too. Default 10. 0 disables the limit.
    pub login_failures_per_minute: u32,
    /// Failed password attempts allowed per account within a minute, from any address: a
    /// guesser spread over many addresses still gets this many tries per minute. Higher
    /// than the per-address limit so that one guessing address cannot lock the owner out.
    /// Default 30. 0 disables the limit.
    pub login_failures_per_account_per_minute: u32,
    /// Most messages (SIP, RTCP, logs, events together) a call flow returns; the response says
    /// `truncated: true` when there were more. Default 20 000.
    pub max_flow_messages: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_lifetime_secs: 12 * 3600,
            cookie_name: "hepstack_session".to_string(),
            secure_cookie: false,
            max_page_size: 1000,
            default_page_size: 100,
            default_window_secs: 3600,
            cors_allowed_origins: Vec::new(),
            max_sessions: 10_000,
            login_failure_delay_ms: 500,
            login_failures_per_minute: 10,
            login_failures_per_account_per_minute: 30,
            max_flow_messages: 20_000,
        }
    }
}

impl WebConfig {
    /// Checks values that would make the server misbehave; called by `AppState::new`.
    pub fn validate(&self) -> Result<(), WebError> {
        let bad = |field: &str, why: &str| Err(WebError::Config(format!("web.{field}: {why}")));
        if self.session_lifetime_secs == 0 {
            return bad("session_lifetime_secs", "must be at least 1");
        }
        if self.session_lifetime_secs > 366 * 24 * 3600 {
            return bad("session_lifetime_secs", "must be at most one year");
        }
        let cookie_ok = !self.cookie_name.is_empty()
            && self.cookie_name.len() <= 64
            && self
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if !cookie_ok {
            return bad(
                "cookie_name",
                "must be 1-64 characters of letters, digits, '_', '-' or '.'",
            );
        }
        if self.max_page_size == 0 || self.max_page_size > store::MAX_PAGE {
            return bad(
                "max_page_size",
                &format!("must be between 1 and {}", store::MAX_PAGE),
            );
        }
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            return bad("default_page_size", "must be between 1 and max_page_size");
        }
        if self.default_window_secs == 0 {
            return bad("default_window_secs", "must be at least 1");
        }
        if self.max_sessions == 0 {
            return bad("max_sessions", "must be at least 1");
        }
        if self.login_failure_delay_ms > 10_000 {
            return bad("login_failure_delay_ms", "must be at most 10000");
        }
        if self.max_flow_messages == 0 {
            return bad("max_flow_messages", "must be at least 1");
        }
        for origin in &self.cors_allowed_origins {
            if origin != "*" && axum::http::HeaderValue::from_str(origin).is_err() {
                return bad(
                    "cors_allowed_origins",
                    &format!("invalid origin {origin:?}"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = WebConfig::default();
        c.validate().expect("valid");
        assert_eq!(c.session_lifetime_secs, 43_200);
        assert_eq!(c.default_window_secs, 3_600);
        assert!(c.cors_allowed_origins.is_empty());
        assert!(!c.secure_cookie);
    }

    #[test]
    fn serde_defaults_and_unknown_keys() {
        let c: WebConfig = serde_json::from_str(r#"{"secure_cookie": true}"#).expect("parse");
        assert!(c.secure_cookie);
        assert_eq!(c.cookie_name, "hepstack_session");
        let e = serde_json::from_str::<WebConfig>(r#"{"secure_cookies": true}"#);
        assert!(e.is_err());
    }

    #[test]
    fn bad_values_are_errors() {
        let cases = [
            WebConfig {
                session_lifetime_secs: 0,
                ..WebConfig::default()
            },
            WebConfig {
                cookie_name: "a b".into(),
                ..WebConfig::default()
            },
            WebConfig {
                max_page_size: store::MAX_PAGE + 1,
                ..WebConfig::default()
            },
            WebConfig {
                default_page_size: 2000,
                ..WebConfig::default()
            },
            WebConfig {
                cors_allowed_origins: vec!["http://a\nb".into()],
                ..WebConfig::default()
            },
        ];
        for c in cases {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
