//! Handlers of `/api/v1`, `/healthz` and `/metrics`, and the session middleware.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{verify_password, MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES};
use crate::query::{format_time_us, now_us, parse_filter, parse_flow_bounds, MAX_PARAM_BYTES};
use crate::render::{call_json, flow_json, message_json};
use crate::{ApiError, AppState};

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Largest login request body, in bytes.
const MAX_LOGIN_BODY: usize = 16 * 1024;

/// Longest token looked up; anything longer is not one of ours.
const MAX_TOKEN_BYTES: usize = 256;

/// The authenticated user, put into the request's extensions by [`require_session`].
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// User name.
    pub user: String,
    /// The token the request carried (needed to log out).
    token: String,
}

/// The session token of a request: `Authorization: Bearer <token>`, else the session cookie.
fn request_token<'h>(headers: &'h HeaderMap, cookie_name: &str) -> Option<&'h str> {
    if let Some(auth) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some((scheme, token)) = auth.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(token.trim());
            }
        }
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// The user of the request's session, if it has a live one.
fn session_of(state: &AppState, headers: &HeaderMap) -> Option<Authenticated> {
    let token = request_token(headers, &state.inner.config.cookie_name)?;
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let user = state.inner.sessions.validate(token, Instant::now())?;
    Some(Authenticated {
        user,
        token: token.to_string(),
    })
}

/// Middleware: 401 unless the request carries a live session.
pub async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let auth = session_of(&state, request.headers())
        .ok_or(ApiError::Unauthorized("authentication required"))?;
    request.extensions_mut().insert(auth);
    Ok(next.run(request).await)
}

/// Unknown paths under `/api/v1`: 401 without a session (nothing is revealed), else 404.
pub async fn api_fallback(State(state): State<AppState>, headers: HeaderMap) -> ApiError {
    match session_of(&state, &headers) {
        Some(_) => ApiError::NotFound("no such API endpoint".into()),
        None => ApiError::Unauthorized("authentication required"),
    }
}

/// Paths outside the API: 404 JSON.
pub async fn fallback() -> ApiError {
    ApiError::NotFound("not found".into())
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

fn session_cookie(state: &AppState, value: &str, max_age_secs: u64) -> Option<HeaderValue> {
    let config = &state.inner.config;
    let secure = if config.secure_cookie { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}",
        config.cookie_name
    ))
    .ok()
}

/// `POST /api/v1/login {username, password}` → `{token, expires, username}` + session cookie.
pub async fn login(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let inner = &state.inner;
    inner
        .limiter
        .check(ip, Instant::now())
        .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;

    let body = axum::body::to_bytes(request.into_body(), MAX_LOGIN_BODY)
        .await
        .map_err(|_| ApiError::BadRequest("login body too large or unreadable".into()))?;
    let credentials: LoginRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("expected {{\"username\", \"password\"}}: {e}"))
    })?;

    let ok = if credentials.username.len() > MAX_USERNAME_BYTES
        || credentials.password.len() > MAX_PASSWORD_BYTES
    {
        false
    } else {
        // Hashing costs ~19 MiB and tens of ms: at most a few at a time.
        let _permit = inner
            .hash_permits
            .acquire()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let store = inner.store.clone();
        let dummy = inner.dummy_hash.clone();
        let username = credentials.username.clone();
        let password = credentials.password;
        tokio::task::spawn_blocking(move || -> Result<bool, ApiError> {
            let user = store
                .user(&username)
                .map_err(|e| ApiError::from_store(e, false))?;
            // An unknown user costs the same as a wrong password.
            let phc = user.as_ref().map_or(dummy.as_str(), |u| &u.password_hash);
            Ok(verify_password(&password, phc) && user.is_some())
        })
        .await??
    };

    if !ok {
        inner.limiter.record_failure(ip, Instant::now());
        tracing::warn!(%ip, user = %credentials.username.escape_debug(), "failed login");
        tokio::time::sleep(Duration::from_millis(inner.config.login_failure_delay_ms)).await;
        return Err(ApiError::Unauthorized("invalid username or password"));
    }
    inner.limiter.clear(ip);
    let session = inner
        .sessions
        .create(&credentials.username, Instant::now())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let lifetime = inner.sessions.lifetime();
    let expires_us =
        now_us().saturating_add(i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX));
    let body = json!({
        "token": session.token,
        "expires": format_time_us(expires_us),
        "expires_us": expires_us,
        "username": credentials.username,
    });
    let mut response = (StatusCode::OK, Json(body)).into_response();
    if let Some(cookie) = session_cookie(&state, &session.token, lifetime.as_secs()) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `POST /api/v1/logout`: ends the session the request used and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    axum::Extension(auth): axum::Extension<Authenticated>,
) -> Response {
    state.inner.sessions.remove(&auth.token);
    let mut response = Json(json!({"status": "logged out"})).into_response();
    if let Some(cookie) = session_cookie(&state, "", 0) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// `GET /api/v1/me`: the user of the session.
pub async fn me(axum::Extension(auth): axum::Extension<Authenticated>) -> Json<Value> {
    Json(json!({"username": auth.user}))
}

/// `GET /api/v1/messages?…` → `{total, items, next}`.
pub async fn messages(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let filter = parse_filter(query.as_deref(), &state.inner.config, now_us())?;
    let cursor_given = filter.cursor.is_some();
    let store = state.inner.store.clone();
    let body = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let page = store
            .messages(&filter)
            .map_err(|e| ApiError::from_store(e, cursor_given))?;
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|m| Value::Object(message_json(m)))
            .collect();
        Ok(json!({"total": page.total, "items": items, "next": page.next}))
    })
    .await??;
    Ok(Json(body))
}

/// `GET /api/v1/calls?…` → `{total, items, next}`.
pub async fn calls(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let filter = parse_filter(query.as_deref(), &state.inner.config, now_us())?;
    let cursor_given = filter.cursor.is_some();
    let store = state.inner.store.clone();
    let page = tokio::task::spawn_blocking(move || store.calls(&filter))
        .await?
        .map_err(|e| ApiError::from_store(e, cursor_given))?;
    let items: Vec<Value> = page.items.iter().map(call_json).collect();
    Ok(Json(
        json!({"total": page.total, "items": items, "next": page.next}),
    ))
}

/// `GET /api/v1/calls/{callid}/flow[?from=&to=]` → `{legs, hosts, messages, qos, logs, …}`.
pub async fn flow(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    if call_id.is_empty() || call_id.len() > MAX_PARAM_BYTES {
        return Err(ApiError::bad_param(
            "callid",
            format!("must be 1 to {MAX_PARAM_BYTES} bytes"),
        ));
    }
    let (from_us, to_us) = parse_flow_bounds(query.as_deref())?;
    let store = state.inner.store.clone();
    let max = state.inner.config.max_flow_messages;
    let missing = format!("no messages found for Call-ID {call_id:?}");
    let body = tokio::task::spawn_blocking(move || -> Result<Option<Value>, ApiError> {
        let records = store
            .call_flow(&[call_id], from_us, to_us)
            .map_err(|e| ApiError::from_store(e, false))?;
        Ok((!records.is_empty()).then(|| flow_json(records, max)))
    })
    .await??;
    body.map(Json).ok_or(ApiError::NotFound(missing))
}

/// `GET /healthz` → 200 `{status: "ok", store, partitions}`, or 503 when the store fails.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let store = state.inner.store.clone();
    let backend = store.backend();
    match tokio::task::spawn_blocking(move || store.stats()).await {
        Ok(Ok(stats)) => Json(json!({
            "status": "ok",
            "store": backend,
            "partitions": stats.partitions,
            "bytes": stats.bytes,
        }))
        .into_response(),
        Ok(Err(e)) => unhealthy(backend, &e.to_string()),
        Err(e) => unhealthy(backend, &e.to_string()),
    }
}

fn unhealthy(backend: &str, error: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "error", "store": backend, "error": error})),
    )
        .into_response()
}

/// Renders metrics with the Prometheus content type.
pub fn metrics_response(render: &(dyn Fn() -> String + Send + Sync)) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE))],
        render(),
    )
        .into_response()
}

/// `GET /metrics` on the main router, when the state has a renderer.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.inner.metrics_render {
        Some(render) => metrics_response(render.as_ref()),
        None => {
            ApiError::NotFound("metrics are served on the metrics address".into()).into_response()
        }
    }
}

/// Shared renderer type of the metrics endpoints.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;
