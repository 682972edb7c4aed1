//! `GET /api/v1/kpi` and `GET /api/v1/kpi/series`: the KPI engine's figures for the UI
//! dashboard (documented in `docs/kpi.md`). Both need a session like the rest of `/api/v1`;
//! both answer 404 when KPIs are disabled (no engine given to [`AppState::with_kpi`]).
//!
//! * `GET /api/v1/kpi?window=SECONDS` → [`kpi::Snapshot`]: per scope (node × target ×
//!   direction) the RFC 6076 ratios, outcome counts and QoS averages over the last `window`
//!   seconds (default: the engine's `window_secs`; whole minutes, at most the history), plus
//!   counters since start.
//! * `GET /api/v1/kpi/series?from=&to=&node=&target=&direction=` → [`kpi::Series`]: one point
//!   per minute with traffic, summed over the matching scopes (`from`/`to`: RFC 3339 or epoch
//!   ms, default the last hour; `target`/`direction` default `any`; no `node` sums all nodes).

use axum::extract::{RawQuery, State};
use axum::Json;

use crate::error::ApiError;
use crate::query::{now_us, parse_time_param};
use crate::AppState;

/// Longest span one series request may cover (the engine keeps at most this much anyway).
const MAX_SERIES_SPAN_US: i64 = 31 * 24 * 3_600_000_000;

fn params(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn engine(state: &AppState) -> Result<std::sync::Arc<kpi::Kpi>, ApiError> {
    state
        .kpi()
        .ok_or_else(|| ApiError::NotFound("KPIs are disabled ([kpi] enabled = false)".into()))
}

/// `GET /api/v1/kpi`.
pub async fn snapshot(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<kpi::Snapshot>, ApiError> {
    let engine = engine(&state)?;
    let mut window = None;
    for (k, v) in params(query.as_deref()) {
        match k.as_str() {
            "window" => {
                let secs: u64 =
                    v.trim().parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        ApiError::bad_param("window", "expected positive seconds")
                    })?;
                window = Some(secs);
            }
            other => return Err(ApiError::bad_param(other, "unknown parameter")),
        }
    }
    let snap = tokio::task::spawn_blocking(move || engine.snapshot(window))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(snap))
}

/// `GET /api/v1/kpi/series`.
pub async fn series(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<kpi::Series>, ApiError> {
    let engine = engine(&state)?;
    let now = now_us();
    let (mut from, mut to) = (None, None);
    let mut q = kpi::SeriesQuery::default();
    for (k, v) in params(query.as_deref()) {
        match k.as_str() {
            "from" => from = Some(parse_time_param("from", &v)?),
            "to" => to = Some(parse_time_param("to", &v)?),
            "node" => q.node = Some(v),
            "target" => q.target = Some(v),
            "direction" => {
                if !matches!(v.as_str(), "any" | "in" | "out") {
                    return Err(ApiError::bad_param("direction", "expected any, in or out"));
                }
                q.direction = Some(v);
            }
            other => return Err(ApiError::bad_param(other, "unknown parameter")),
        }
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to.saturating_sub(3_600_000_000));
    if from >= to {
        return Err(ApiError::bad_param("from", "must be before to"));
    }
    if to - from > MAX_SERIES_SPAN_US {
        return Err(ApiError::bad_param("from", "span longer than 31 days"));
    }
    q.from_ms = from.div_euclid(1000);
    q.to_ms = to.div_euclid(1000);
    let series = tokio::task::spawn_blocking(move || engine.series(&q))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(series))
}
