//! hepstack's HTTP server: the JSON query API under `/api/v1`, login sessions, `/healthz`, and
//! the Prometheus `/metrics` endpoint of the separate metrics address.
//!
//! The crate knows no SQL: it talks to any [`store::Store`] behind an `Arc<dyn Store>`, calling
//! it from `spawn_blocking` because store methods block.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn store::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use tokio_util::sync::CancellationToken;
//! match web::ensure_admin(store.as_ref(), std::env::var("HEPSTACK_ADMIN_PASSWORD").ok().as_deref())? {
//!     web::AdminBootstrap::CreatedWithRandomPassword { password } => {
//!         println!("created user admin with password {password}")
//!     }
//!     web::AdminBootstrap::EnvPasswordIgnored => eprintln!("HEPSTACK_ADMIN_PASSWORD only seeds the first start; ignored"),
//!     _ => {}
//! }
//! let state = web::AppState::new(store, web::WebConfig::default(), None)?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:9080").await?;
//! let shutdown = CancellationToken::new();
//! web::serve(listener, web::router(state), shutdown.clone()).await?;
//! # Ok(()) }
//! ```
//!
//! # Routes
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /healthz` | no | 200 `{"status":"ok","store":"sqlite","partitions":N,"bytes":N}`; 200 `"status":"degraded"` with `"reasons":[…]` while records wait in the spool (store failing or behind, nothing lost); 503 `"status":"failing"` with reasons while records are being dropped (spool full, disk full); 503 `{"status":"error","store","error"}` when the store cannot be read |
//! | `POST /api/v1/login` | no | 200 `{"token","expires","expires_us","username"}` + `Set-Cookie`; 401; 429 after too many failures |
//! | `POST /api/v1/logout` | yes | 200 `{"status":"logged out"}`, clears the cookie, ends the session |
//! | `GET /api/v1/me` | yes | `{"username"}` |
//! | `GET /api/v1/messages?…` | yes | `{"total","items":[message],"next"}` newest first |
//! | `GET /api/v1/calls?…` | yes | `{"total","items":[call],"next"}` newest first by start |
//! | `GET /api/v1/calls/{callid}/flow[?from=&to=]` | yes | the flow object below; 404 when nothing is found |
//! | `GET /metrics` | yes | only when [`AppState::new`] got a renderer (a Prometheus scraping the API address sends an API token); unauthenticated on the metrics address ([`metrics_router`]) |
//!
//! The router is laid out so the later parts plug in beside the API without touching it: the
//! UI pages and assets merge at `/` and `/assets`, homer-app compatible routes nest at
//! `/api/v3`; everything else under `/api/v1` is this crate's API.
//!
//! # Authentication
//!
//! `POST /api/v1/login` with `{"username","password"}` checks the argon2id hash kept by the
//! store (see [`auth`]). Success returns a token and sets the cookie
//! `<cookie_name>=<token>; Path=/; HttpOnly; SameSite=Strict; Max-Age=<lifetime>` (`; Secure`
//! with `secure_cookie`). Every other `/api/v1` request must carry the token as
//! `Authorization: Bearer <token>` or the cookie; without a live session it gets
//! 401 `{"error":"authentication required"}`. Sessions live in memory for
//! `session_lifetime_secs` (12 h by default) and do not survive a restart. Failed logins wait
//! `login_failure_delay_ms` and are limited per client address (`login_failures_per_minute`)
//! and per account (`login_failures_per_account_per_minute`), counted before the password is
//! verified; `POST /api/v1/me/password` shares the limit. Behind a reverse proxy all clients
//! share the proxy's address.
//!
//! [`ensure_admin`] creates the `admin` user on the first start (no users in the store) with
//! `HEPSTACK_ADMIN_PASSWORD` or a random 20-character password the binary prints once. The
//! environment variable only seeds the first start: it never overwrites a stored password.
//!
//! # Errors
//!
//! Every error is JSON `{"error":"…"}` with the status: 400 (with `"param"` naming the
//! offending query parameter), 401, 404, 405, 429 (with `Retry-After`), 503 (store unavailable),
//! 500 (details only in the log).
//!
//! # Search parameters (`/messages`, `/calls`)
//!
//! Every given parameter must match (AND). Unknown parameters and repeated single-valued ones
//! are 400s, so a typo never silently widens a search.
//!
//! | parameter | meaning |
//! |---|---|
//! | `callid` | Call-ID (`sid`); may repeat and may be comma-separated: any of them |
//! | `from_user`, `to_user`, `ruri_user`, `any_user` | SIP users; exact, or a `*` pattern matched ignoring case |
//! | `user_agent` | User-Agent or Server header, ignoring case (`*sipp*`) |
//! | `method` | comma-separated list of SIP methods or reply codes (`INVITE, 486`): any of them; with `status`, the method the replies answer |
//! | `status` | comma-separated list of reply codes (`486`, `4*`, `4xx`); requests never match |
//! | `final_status` | `/calls` only: the call's final status (`4xx,5xx,6xx`: the failed calls) |
//! | `ip`, `src_ip`, `dst_ip` | IPv4/IPv6 address: either end, source, destination |
//! | `node` | capture node name |
//! | `hep_type` | HEP proto type number (1 SIP, 5 RTCP, 100 log …) |
//! | `correlation_id` | correlation id, exact |
//! | `text` | substring of the raw payload (case-sensitive) |
//! | `json.<path>=<value>` | JSON payload field equals value, e.g. `json.questions[0].name=example.org` (may repeat) |
//! | `from`, `to` | time range `[from, to)`: RFC 3339 (`2026-11-23T12:00:00Z`, any offset) or epoch milliseconds. Neither: the last `default_window_secs` (1 h); one: a window of that length from it |
//! | `limit` | page size, default `default_page_size` (100), at most `max_page_size` (more is a 400) |
//! | `cursor` | the `next` of the previous page; keep the other parameters unchanged |
//!
//! # Message item
//!
//! A flat object; every key is always present (null when it does not apply), except
//! `raw_base64`:
//!
//! * `id` (store row id), `time` (RFC 3339 UTC with microseconds), `time_us` (µs since the
//!   epoch), `received_us`, `hep_type`, `hep_version`, `proto` (`sip`, `rtcp`, `log`, `dns`,
//!   `isup`, `janus`, `mediasoup`, … or `hep_<n>`), `src_ip`, `src_port`, `dst_ip`, `dst_port`,
//!   `transport` (`udp`, `tcp`, `sctp`, or `ip_<n>`), `node`, `capture_id`, `correlation_id`,
//!   `sid`, `profile` (`call`, `registration`, `default`);
//! * SIP fields (null for non-SIP): `method` (method, or status code as text for replies),
//!   `is_request`, `status`, `cseq`, `cseq_method`, `callid`, `ruri_user`, `ruri_domain`,
//!   `from_user`, `from_domain`, `from_tag`, `to_user`, `to_domain`, `to_tag`, `contact_user`,
//!   `pid_user`, `auth_user`, `user_agent`, `server`, `reason`, `content_type`, `via_branch`,
//!   `aleg_id`, `custom_headers` (object header name → value, `{}` when none), `sdp_media`
//!   (array of `ip:port`);
//! * `payload`: the JSON document of JSON-bearing payloads (RTCP, DNS, logs, events), else null;
//! * `raw`: the payload as text (invalid UTF-8 replaced by U+FFFD), and `raw_base64` (standard
//!   alphabet, padded) only when the payload is not valid UTF-8.
//!
//! # Call row
//!
//! `call_id`, `correlation_id`, `start`/`end` (RFC 3339) and `start_us`/`end_us`, `method`,
//! `from_user`, `to_user`, `ruri_user`, `src_ip`, `dst_ip`, `status` (final status of the
//! dialog-forming request), `duration_ms` (answered time), `message_count`, `nodes`.
//!
//! # Call flow
//!
//! The store returns every message of the Call-ID and of its correlated legs (both directions,
//! transitively) with their RTCP, logs and events; at most `max_flow_messages` (oldest first)
//! are used, and `truncated` says whether some were left out.
//!
//! * `legs`: one per Call-ID of the SIP messages, in order of first appearance: `index`,
//!   `call_id`, `correlation_id`, `aleg_id`, `role` (`b-leg` when its A-leg header or
//!   correlation id names another leg of the flow, else `a-leg`), `a_leg` (that leg's index or
//!   null), `method`, `from_user`, `to_user`, `ruri_user` (of the leg's first request),
//!   `first_time`/`first_us`, `last_time`/`last_us`, `status` (last final reply to the first
//!   request's method, null if none), `message_count`;
//! * `hosts`: distinct `ip:port` endpoints of the SIP messages in order of first appearance
//!   (source before destination), the ladder's columns: `index`, `ip`, `port`, `address`
//!   (`[v6]:port` for IPv6), `nodes` (capture nodes that saw traffic to or from it);
//! * `messages`: the SIP messages oldest first, each a message item plus `leg`, `src_host`,
//!   `dst_host` (indexes into `legs` and `hosts`);
//! * `qos`: RTCP (HEP type 5) decoded with the `payload` crate, rows oldest first. Each row has
//!   `id`, `time`, `time_us`, `src_ip`, `src_port`, `dst_ip`, `dst_port`, `node`,
//!   `correlation_id`, `leg` (matched by sid, then correlation id; null if none) and a `kind`:
//!   `report_block` (one per SR/RR report block: `report_type` `sr`/`rr`, `ssrc` of the
//!   reporter, `source_ssrc`, `jitter` in RTP units, `jitter_ms` at 8 kHz, `packets_lost`
//!   cumulative, `fraction_lost` in 1/256, `fraction_lost_percent`, `highest_seq`, `rtt_ms`
//!   (RFC 3550 A − LSR − DLSR with the capture time as A; null when LSR is 0 or the result is
//!   negative), `r_factor` and `mos` by the G.107 E-model for G.711 with that RTT), `voip_metrics` (one per RTCP-XR VoIP Metrics block: `ssrc`,
//!   `source_ssrc`, `loss_percent`, `discard_percent`, `round_trip_delay_ms`,
//!   `end_system_delay_ms`, `reported_r_factor`, `reported_mos_lq`, `reported_mos_cq`,
//!   `r_factor`, `mos`), `report` (an SR/RR without blocks: `report_type`, `ssrc`, and for an
//!   SR `packets`, `octets`) or `invalid` (`error`);
//! * `logs`: HEP type 100, oldest first: the same envelope plus `level` (`ERROR`, `WARNING`,
//!   `NOTICE`, `INFO`, `DEBUG` or null), `text`, `truncated`;
//! * `events`: every other non-SIP type (DNS, ISUP, Janus …) as message items plus `leg`;
//! * `truncated`: bool.

#![warn(missing_docs)]

mod admin;
pub mod aliases;
mod api;
pub mod auth;
mod config;
mod error;
pub mod export;
pub mod kpi_api;
pub mod live;
pub mod query;
pub mod render;
pub mod tokens;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use store::Store;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use api::{
    HealthProbe, HealthStatus, IngestHealth, MetricsRender, CSRF_HEADER, METRICS_CONTENT_TYPE,
};
pub use live::LiveFeed;

/// The OpenAPI 3 document of the API, served at `GET /api/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");
pub use auth::{ensure_admin, AdminBootstrap};
pub use config::WebConfig;
pub use error::{ApiError, WebError};

/// Password hashes computed at once (each costs ~19 MiB and a core for tens of ms).
const CONCURRENT_PASSWORD_CHECKS: usize = 2;

/// Largest request body any API route accepts.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: WebConfig,
    metrics_render: Option<MetricsRender>,
    sessions: auth::Sessions,
    limiter: auth::LoginLimiter,
    /// Hash an unknown user's password is checked against, so that it takes as long as a
    /// known user's.
    dummy_hash: String,
    hash_permits: tokio::sync::Semaphore,
    /// Source of the live tail; `None`: `/api/v1/tail` answers 503.
    live: Option<LiveFeed>,
    /// The KPI engine behind `/api/v1/kpi`; `None`: those routes answer 404.
    kpi: Option<Arc<kpi::Kpi>>,
    /// The ingest side's health for `/healthz`; `None`: only the store is checked.
    health: Option<HealthProbe>,
}

impl AppState {
    /// Validates `config` and builds the shared state. `metrics_render`, when given, also
    /// serves `GET /metrics` on the main router, to sessions and API tokens only; pass `None`
    /// when metrics have their own address only ([`metrics_router`]). Computes one argon2 hash (tens of
    /// milliseconds of CPU): call it at startup, not per request.
    pub fn new(
        store: Arc<dyn Store>,
        config: WebConfig,
        metrics_render: Option<MetricsRender>,
    ) -> Result<AppState, WebError> {
        config.validate()?;
        let dummy_hash =
            auth::hash_password(&auth::random_password(auth::GENERATED_PASSWORD_LEN)?)?;
        Ok(AppState {
            inner: Arc::new(Inner {
                sessions: auth::Sessions::new(
                    Duration::from_secs(config.session_lifetime_secs),
                    config.max_sessions,
                ),
                limiter: auth::LoginLimiter::new(
                    config.login_failures_per_minute,
                    config.login_failures_per_account_per_minute,
                ),
                store,
                config,
                metrics_render,
                dummy_hash,
                hash_permits: tokio::sync::Semaphore::new(CONCURRENT_PASSWORD_CHECKS),
                live: None,
                kpi: None,
                health: None,
            }),
        })
    }

    /// Enables the live tail (`GET /api/v1/tail`) from `feed`. Call before cloning the state
    /// into a router.
    pub fn with_live_feed(mut self, feed: LiveFeed) -> AppState {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.live = Some(feed),
            None => tracing::error!("with_live_feed called on a shared AppState: ignored"),
        }
        self
    }

    /// Enables `/api/v1/kpi` and `/api/v1/kpi/series` from `engine`. Call before cloning the
    /// state into a router.
    pub fn with_kpi(mut self, engine: Arc<kpi::Kpi>) -> AppState {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.kpi = Some(engine),
            None => tracing::error!("with_kpi called on a shared AppState: ignored"),
        }
        self
    }

    /// Makes `/healthz` report the ingest side's health from `probe` as well as the store's.
    /// Call before cloning the state into a router.
    pub fn with_health(mut self, probe: HealthProbe) -> AppState {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.health = Some(probe),
            None => tracing::error!("with_health called on a shared AppState: ignored"),
        }
        self
    }

    /// The KPI engine, when enabled.
    pub fn kpi(&self) -> Option<Arc<kpi::Kpi>> {
        self.inner.kpi.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    /// Number of live (not yet purged) login sessions.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }
}

/// The `/api/v1` routes (login open, everything else behind the session check).
fn api_v1(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/messages", get(api::messages))
        .route("/calls", get(api::calls))
        .route("/calls/{callid}/flow", get(api::flow))
        .route("/calls/{callid}/pcap", get(api::export_pcap))
        .route("/calls/{callid}/text", get(api::export_text))
        .route("/calls/{callid}/flow.svg", get(api::export_svg))
        .route("/tail", get(live::tail))
        .route("/kpi", get(kpi_api::snapshot))
        .route("/kpi/series", get(kpi_api::series))
        .route("/logout", post(api::logout))
        .route("/me", get(api::me))
        .route("/me/password", post(admin::change_own_password))
        .route("/users", get(admin::list_users).post(admin::create_user))
        .route(
            "/users/{name}",
            patch(admin::update_user).delete(admin::delete_user),
        )
        .route("/tokens", get(admin::list_tokens).post(admin::create_token))
        .route("/tokens/{id}", delete(admin::revoke_token))
        .route(
            "/aliases",
            get(admin::list_aliases).post(admin::create_alias),
        )
        .route(
            "/aliases/{id}",
            put(admin::replace_alias).delete(admin::delete_alias),
        )
        // Applies to the routes above only: login stays open.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::require_session,
        ))
        .route("/login", post(api::login))
        .route("/openapi.json", get(api::openapi))
        .fallback(api::api_fallback)
}

/// The HTTP application: `/healthz`, `/api/v1/…` and (when the state has a renderer)
/// `/metrics`. Later additions plug in here: UI pages and assets at `/` and `/assets`,
/// homer-app compatible routes at `/api/v3`.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(api::healthz))
        .nest("/api/v1", api_v1(&state))
        .merge(ui::router())
        .fallback(api::fallback);
    if state.inner.metrics_render.is_some() {
        // The metrics address is the unauthenticated one (scraped from the monitoring
        // network); on the API address, which faces users, the metrics need a session or an
        // API token like everything else that shows traffic.
        app = app.route(
            "/metrics",
            get(api::metrics).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                api::require_session,
            )),
        );
    }
    let app = app
        .layer(axum::middleware::map_response(
            error::json_method_not_allowed,
        ))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY));
    let app = match cors_layer(&state.inner.config) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.with_state(state)
}

/// CORS for the configured origins; `None` (no CORS headers) when none are configured.
fn cors_layer(config: &WebConfig) -> Option<CorsLayer> {
    let origins = &config.cors_allowed_origins;
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderName::from_static(api::CSRF_HEADER),
        ]);
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(layer.allow_origin(list).allow_credentials(true))
}

/// The router of the metrics address: `GET /metrics` answers `render()` as
/// `text/plain; version=0.0.4` (Prometheus text format), unauthenticated.
pub fn metrics_router(render: MetricsRender) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let render = render.clone();
                async move { api::metrics_response(render).await }
            }),
        )
        .fallback(api::fallback)
}

/// Serves `router` on an already-bound listener until `shutdown` is cancelled, then stops
/// accepting, lets in-flight requests finish and returns. Client addresses are made available
/// to the handlers (login rate limiting).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}
