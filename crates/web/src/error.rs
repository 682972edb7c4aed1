//! Errors: [`WebError`] for setup (configuration, admin bootstrap) and [`ApiError`], which
//! every handler returns and which renders as a JSON `{"error": …}` response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use store::StoreError;

/// Errors of setting up the web server.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The store failed while reading or creating users.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The admin password given in the environment cannot be used.
    #[error("HEPSTACK_ADMIN_PASSWORD is set but {0}")]
    AdminPassword(&'static str),
    /// Hashing a password failed, or the OS random source failed.
    #[error("password hashing failed: {0}")]
    Crypto(String),
}

/// An error answer of the API. The body is always `{"error": "<message>", "status": <code>}`,
/// plus `"param"` naming the offending query parameter for 400s caused by one.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request parameter is malformed or out of range (400).
    #[error("invalid parameter {param}: {message}")]
    BadParam {
        /// The parameter's name as sent.
        param: String,
        /// What is wrong with it.
        message: String,
    },
    /// The request body is malformed (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Missing, unknown or expired session, or bad credentials (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed: an admin-only route, or a missing/wrong CSRF token on
    /// a cookie-authenticated state-changing request (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state: the user exists, the last admin (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than the route accepts (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Nothing matched (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is understood but what it names cannot be given in the asked form: a PCAP
    /// of a call without SIP messages (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The path exists but not with this method (405); the value is the router's `Allow`
    /// list when it gave one (axum leaves it out for nested routers), else empty.
    #[error("method not allowed on this path{}", allowed_suffix(.0))]
    MethodNotAllowed(String),
    /// Too many failed logins from this address (429).
    #[error("too many failed logins, retry in {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until another attempt is accepted.
        retry_after_secs: u64,
    },
    /// The store cannot be reached (503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500); the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming a parameter.
    pub fn bad_param(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadParam {
            param: param.into(),
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadParam { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps a store error; `cursor_given` tells whether an invalid query is likely the cursor's
    /// fault (the only part of a filter the store validates beyond what the API checked).
    pub fn from_store(e: StoreError, cursor_given: bool) -> ApiError {
        match e {
            StoreError::InvalidQuery(m) if cursor_given && m.contains("cursor") => {
                ApiError::bad_param("cursor", m)
            }
            StoreError::InvalidQuery(m) => ApiError::BadRequest(m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn allowed_suffix(allow: &str) -> String {
    if allow.is_empty() {
        String::new()
    } else {
        format!("; allowed: {allow}")
    }
}

/// Gives the router's bodiless 405 answers the JSON error body every other error has, keeping
/// their `Allow` list when there is one.
pub async fn json_method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response
            .headers()
            .contains_key(axum::http::header::CONTENT_TYPE)
    {
        return response;
    }
    let allow = response
        .headers()
        .get(axum::http::header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ApiError::MethodNotAllowed(allow).into_response()
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::Internal(format!("worker task failed: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "API request failed");
        }
        let body = match &self {
            ApiError::BadParam { param, .. } => {
                json!({"error": self.to_string(), "status": status.as_u16(), "param": param})
            }
            _ => json!({"error": self.to_string(), "status": status.as_u16()}),
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            if let Ok(v) = retry_after_secs.to_string().parse() {
                response.headers_mut().insert("retry-after", v);
            }
        }
        if let ApiError::MethodNotAllowed(allow) = &self {
            if let Ok(v) = allow.parse() {
                response.headers_mut().insert("allow", v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
