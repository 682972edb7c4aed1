//! Handlers of `/api/v1`, `/healthz` and `/metrics`, and the session middleware.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, HOST, ORIGIN, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use store::StoredMessage;

use crate::aliases::AliasTable;
use crate::auth::{constant_time_eq, verify_password, MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES};
use crate::query::{
    format_time_us, now_us, parse_call_filter, parse_filter, parse_flow_query, MAX_PARAM_BYTES,
};
use crate::render::{add_aliases, call_json, flow_json_with, message_json};
use crate::{ApiError, AppState};

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Largest login request body, in bytes.
const MAX_LOGIN_BODY: usize = 16 * 1024;

/// Longest token looked up; anything longer is not one of ours.
const MAX_TOKEN_BYTES: usize = 256;

/// Header carrying the CSRF token on cookie-authenticated state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a request authenticated.
#[derive(Clone, Debug)]
pub enum AuthKind {
    /// A login session, by bearer header or by cookie.
    Session {
        /// The session token (needed to log out).
        token: String,
        /// The session's CSRF token.
        csrf: String,
        /// Whether the token came from the cookie (then state changes need the CSRF token).
        cookie: bool,
    },
    /// An API token created by an admin.
    ApiToken,
}

/// The authenticated caller, put into the request's extensions by [`require_session`].
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// User name (`token:<name>` for API tokens).
    pub user: String,
    /// Whether the caller may use the admin API.
    pub admin: bool,
    /// How the request authenticated.
    pub kind: AuthKind,
}

impl Authenticated {
    /// `Err(403)` unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("admin role required".into()))
        }
    }
}

/// The token of a request: `Authorization: Bearer <token>` (true: from the header), else the
/// session cookie (false).
fn request_token<'h>(headers: &'h HeaderMap, cookie_name: &str) -> Option<(&'h str, bool)> {
    if let Some(auth) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some((scheme, token)) = auth.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some((token.trim(), true));
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
        .map(|(_, value)| (value.trim().trim_matches('"'), false))
}

/// The caller of a request, if it carries a live session or API token.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Authenticated>, ApiError> {
    let Some((token, from_header)) = request_token(headers, &state.inner.config.cookie_name) else {
        return Ok(None);
    };
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Ok(None);
    }
    if from_header && crate::tokens::token_id(token).is_some() {
        let store = state.inner.store.clone();
        let token = token.to_string();
        let entry = tokio::task::spawn_blocking(move || {
            crate::tokens::verify(store.as_ref(), &token, now_us())
        })
        .await?
        .map_err(|e| ApiError::from_store(e, false))?;
        return Ok(entry.map(|e| Authenticated {
            user: format!("token:{}", e.name),
            admin: e.admin,
            kind: AuthKind::ApiToken,
        }));
    }
    Ok(state
        .inner
        .sessions
        .validate(token, Instant::now())
        .map(|info| Authenticated {
            user: info.user,
            admin: info.admin,
            kind: AuthKind::Session {
                token: token.to_string(),
                csrf: info.csrf,
                cookie: !from_header,
            },
        }))
}

/// Whether the request's `Origin` (when sent) is this server or a configured CORS origin.
/// Browsers send `Origin` on every cross-site POST, so a foreign one is refused outright.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let allowed = &state.inner.config.cors_allowed_origins;
    if allowed.iter().any(|o| o == origin) {
        return true;
    }
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// Middleware: 401 unless the request carries a live session or API token; 403 for a
/// state-changing request from a foreign `Origin`, or made with the session cookie without
/// the session's `X-CSRF-Token`.
pub async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let auth = authenticate(&state, request.headers())
        .await?
        .ok_or(ApiError::Unauthorized("authentication required"))?;
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe {
        if !origin_allowed(&state, request.headers()) {
            return Err(ApiError::Forbidden("cross-origin request refused".into()));
        }
        if let AuthKind::Session {
            csrf, cookie: true, ..
        } = &auth.kind
        {
            let sent = request
                .headers()
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !constant_time_eq(sent, csrf.as_bytes()) {
                return Err(ApiError::Forbidden(
                    "missing or wrong X-CSRF-Token header (required with the session cookie)"
                        .into(),
                ));
            }
        }
    }
    request.extensions_mut().insert(auth);
    Ok(next.run(request).await)
}

/// Unknown paths under `/api/v1`: 401 without a session (nothing is revealed), else 404.
pub async fn api_fallback(State(state): State<AppState>, headers: HeaderMap) -> ApiError {
    match authenticate(&state, &headers).await {
        Ok(Some(_)) => ApiError::NotFound("no such API endpoint".into()),
        Ok(None) => ApiError::Unauthorized("authentication required"),
        Err(e) => e,
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
    if !origin_allowed(&state, request.headers()) {
        return Err(ApiError::Forbidden("cross-origin request refused".into()));
    }
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
        None
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
        tokio::task::spawn_blocking(move || -> Result<Option<bool>, ApiError> {
            let user = store
                .user(&username)
                .map_err(|e| ApiError::from_store(e, false))?;
            // An unknown user costs the same as a wrong password.
            let phc = user.as_ref().map_or(dummy.as_str(), |u| &u.password_hash);
            let ok = verify_password(&password, phc);
            Ok(user.filter(|_| ok).map(|u| u.admin))
        })
        .await??
    };

    let Some(admin) = ok else {
        inner.limiter.record_failure(ip, Instant::now());
        tracing::warn!(%ip, user = %credentials.username.escape_debug(), "failed login");
        tokio::time::sleep(Duration::from_millis(inner.config.login_failure_delay_ms)).await;
        return Err(ApiError::Unauthorized("invalid username or password"));
    };
    inner.limiter.clear(ip);
    let session = inner
        .sessions
        .create(&credentials.username, admin, Instant::now())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let lifetime = inner.sessions.lifetime();
    let expires_us =
        now_us().saturating_add(i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX));
    let body = json!({
        "token": session.token,
        "expires": format_time_us(expires_us),
        "expires_us": expires_us,
        "username": credentials.username,
        "admin": admin,
        "csrf_token": session.csrf,
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
    if let AuthKind::Session { token, .. } = &auth.kind {
        state.inner.sessions.remove(token);
    }
    let mut response = Json(json!({"status": "logged out"})).into_response();
    if let Some(cookie) = session_cookie(&state, "", 0) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// `GET /api/v1/me`: the user of the session.
pub async fn me(axum::Extension(auth): axum::Extension<Authenticated>) -> Json<Value> {
    let (kind, csrf) = match &auth.kind {
        AuthKind::Session { csrf, .. } => ("session", Some(csrf.clone())),
        AuthKind::ApiToken => ("token", None),
    };
    Json(json!({
        "username": auth.user,
        "admin": auth.admin,
        "auth": kind,
        "csrf_token": csrf,
    }))
}

fn load_aliases(store: &dyn store::Store) -> Result<AliasTable, ApiError> {
    AliasTable::load(store).map_err(|e| ApiError::from_store(e, false))
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
        let aliases = load_aliases(store.as_ref())?;
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|m| {
                let mut o = message_json(m);
                add_aliases(&mut o, &m.record, &aliases);
                Value::Object(o)
            })
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
    let filter = parse_call_filter(query.as_deref(), &state.inner.config, now_us())?;
    let cursor_given = filter.cursor.is_some();
    let store = state.inner.store.clone();
    let (page, aliases) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let page = store
            .calls(&filter)
            .map_err(|e| ApiError::from_store(e, cursor_given))?;
        Ok((page, load_aliases(store.as_ref())?))
    })
    .await??;
    let items: Vec<Value> = page.items.iter().map(|c| call_json(c, &aliases)).collect();
    Ok(Json(
        json!({"total": page.total, "items": items, "next": page.next}),
    ))
}

/// The records of a call's flow (every correlated leg) and the aliases; 404 when empty.
async fn fetch_flow(
    state: &AppState,
    call_id: String,
    query: Option<&str>,
) -> Result<(Vec<StoredMessage>, AliasTable), ApiError> {
    if call_id.is_empty() || call_id.len() > MAX_PARAM_BYTES {
        return Err(ApiError::bad_param(
            "callid",
            format!("must be 1 to {MAX_PARAM_BYTES} bytes"),
        ));
    }
    let q = parse_flow_query(query)?;
    let store = state.inner.store.clone();
    let missing = format!("no messages found for Call-ID {call_id:?}");
    let with: Vec<String> = q.with.into_iter().filter(|id| *id != call_id).collect();
    let mut call_ids = vec![call_id];
    call_ids.extend(with);
    let (records, aliases) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let records = store
            .call_flow(&call_ids, q.from_us, q.to_us)
            .map_err(|e| ApiError::from_store(e, false))?;
        Ok((records, load_aliases(store.as_ref())?))
    })
    .await??;
    if records.is_empty() {
        return Err(ApiError::NotFound(missing));
    }
    Ok((records, aliases))
}

/// `GET /api/v1/calls/{callid}/flow[?from=&to=&with=]` → `{legs, hosts, messages, qos, logs,
/// …}`; `with` names further calls to show in the same ladder (also for the exports).
pub async fn flow(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (records, aliases) = fetch_flow(&state, call_id, query.as_deref()).await?;
    let max = state.inner.config.max_flow_messages;
    let body = tokio::task::spawn_blocking(move || flow_json_with(records, max, &aliases)).await?;
    Ok(Json(body))
}

/// A file download: content type, `Content-Disposition: attachment` with a file name made
/// of the Call-ID's safe characters.
fn download(content_type: &'static str, call_id: &str, ext: &str, body: Vec<u8>) -> Response {
    let safe: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{safe}.{ext}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/v1/calls/{callid}/pcap[?from=&to=]`: the SIP messages of every leg as a pcap file
/// (see [`crate::export`]). Headers `X-Hepstack-Packets` and `X-Hepstack-Skipped` count them.
/// A call without SIP messages (RTCP or logs only) is a 422 saying what it has instead.
pub async fn export_pcap(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (records, _) = fetch_flow(&state, call_id.clone(), query.as_deref()).await?;
    crate::export::check_pcap(&records).map_err(ApiError::Unprocessable)?;
    let export = tokio::task::spawn_blocking(move || crate::export::pcap(&records))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = download(
        "application/vnd.tcpdump.pcap",
        &call_id,
        "pcap",
        export.bytes,
    );
    let headers = response.headers_mut();
    headers.insert("x-hepstack-packets", HeaderValue::from(export.packets));
    headers.insert("x-hepstack-skipped", HeaderValue::from(export.skipped));
    Ok(response)
}

/// `GET /api/v1/calls/{callid}/text[?from=&to=]`: every SIP message of every leg as text.
pub async fn export_text(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (records, aliases) = fetch_flow(&state, call_id.clone(), query.as_deref()).await?;
    let text = tokio::task::spawn_blocking(move || crate::export::text(&records, &aliases)).await?;
    Ok(download(
        "text/plain; charset=utf-8",
        &call_id,
        "txt",
        text.into_bytes(),
    ))
}

/// `GET /api/v1/calls/{callid}/flow.svg[?from=&to=]`: the ladder diagram as SVG.
pub async fn export_svg(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (records, aliases) = fetch_flow(&state, call_id.clone(), query.as_deref()).await?;
    let svg = tokio::task::spawn_blocking(move || crate::export::svg(&records, &aliases)).await?;
    let mut response = download("image/svg+xml", &call_id, "svg", svg.into_bytes());
    // Shown inline when opened in the browser, saved with the name when downloaded.
    if let Ok(v) = HeaderValue::from_str(
        &response
            .headers()
            .get(CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("attachment")
            .replacen("attachment", "inline", 1),
    ) {
        response.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `GET /api/v1/openapi.json`: the OpenAPI 3 description of this API (no session needed, so
/// tools can fetch it).
pub async fn openapi() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        crate::OPENAPI_JSON,
    )
        .into_response()
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

/// Renders metrics with the Prometheus content type. The renderer runs on a blocking thread:
/// it reads counters under locks that the KPI engine's thread also takes, and an async worker
/// must never wait for those.
pub async fn metrics_response(render: MetricsRender) -> Response {
    match tokio::task::spawn_blocking(move || render()).await {
        Ok(text) => (
            [(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE))],
            text,
        )
            .into_response(),
        Err(e) => ApiError::Internal(format!("rendering metrics: {e}")).into_response(),
    }
}

/// `GET /metrics` on the main router, when the state has a renderer.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.inner.metrics_render {
        Some(render) => metrics_response(render.clone()).await,
        None => {
            ApiError::NotFound("metrics are served on the metrics address".into()).into_response()
        }
    }
}

/// Shared renderer type of the metrics endpoints.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;
