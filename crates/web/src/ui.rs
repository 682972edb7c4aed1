//! The browser UI: one HTML shell and its ES modules, CSS and icon, compiled into the binary.
//!
//! The UI is a small single-page application in hand-written JavaScript (no build step, no
//! Node.js): every page route answers the same shell (`index.html`), whose `app.js` reads the
//! path and draws the page from the JSON API under `/api/v1`. Routes:
//!
//! | route | answer |
//! |---|---|
//! | `/`, `/login`, `/search`, `/call/{callid}`, `/tail`, `/dashboard`, `/admin`, `/admin/{section}` | the shell |
//! | `/assets/{path}` | an embedded asset, or a JSON 404 |
//! | `/favicon.ico` | the SVG icon |
//!
//! The pages themselves need no session: they hold no data, and the API they call answers 401
//! until the user logs in (the shell then shows the login form). Every answer carries an
//! `ETag` (SHA-256 of the content) and `Cache-Control: no-cache`, so browsers revalidate with
//! `If-None-Match` and get a 304 without a body until the binary changes. The shell also sets a
//! Content-Security-Policy that only allows scripts from this origin.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// One embedded file.
struct Asset {
    /// Path below `/assets/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `crates/web/assets` (a test checks that none is missing).
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/util.js", JS),
    asset!("js/search.js", JS),
    asset!("js/flow.js", JS),
    asset!("js/sip.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/tail.js", JS),
    asset!("js/admin.js", JS),
    asset!("js/dashboard.js", JS),
];

/// Scripts only from this origin; styles also inline (the charts set element styles); images
/// from this origin and data/blob URLs (the SVG export); no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
                   base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Quoted strong ETags of [`ASSETS`], same order, computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

fn find(path: &str) -> Option<(&'static Asset, &'static str)> {
    let i = ASSETS.iter().position(|a| a.path == path)?;
    Some((ASSETS.get(i)?, etags().get(i)?.as_str()))
}

/// Whether `If-None-Match` lists `etag` (or `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn respond(asset: &Asset, etag: &str, headers: &HeaderMap, shell: bool) -> Response {
    let mut response = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.body.into_response();
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if shell {
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

async fn shell(headers: HeaderMap) -> Response {
    match find("index.html") {
        Some((asset, etag)) => respond(asset, etag, &headers, true),
        None => ApiError::NotFound("UI shell missing".into()).into_response(),
    }
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find(&path) {
        Some((asset, etag)) => respond(asset, etag, &headers, false),
        None => ApiError::NotFound(format!("no asset {path:?}")).into_response(),
    }
}

async fn favicon(headers: HeaderMap) -> Response {
    match find("favicon.svg") {
        Some((asset, etag)) => respond(asset, etag, &headers, false),
        None => ApiError::NotFound("no icon".into()).into_response(),
    }
}

/// The UI routes, to be merged beside the API (they set no fallback of their own).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(shell))
        .route("/login", get(shell))
        .route("/search", get(shell))
        .route("/call/{*callid}", get(shell))
        .route("/tail", get(shell))
        .route("/dashboard", get(shell))
        .route("/admin", get(shell))
        .route("/admin/{section}", get(shell))
        .route("/assets/{*path}", get(asset))
        .route("/favicon.ico", get(favicon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn text(path: &str) -> &'static str {
        let (a, _) = find(path).unwrap_or_else(|| panic!("asset {path} embedded"));
        std::str::from_utf8(a.body).expect("UTF-8 asset")
    }

    /// Module specifiers of static and dynamic imports in a JS file.
    fn imports(js: &str) -> Vec<String> {
        let mut out = Vec::new();
        for marker in ["from \"", "import(\""] {
            let mut rest = js;
            while let Some(i) = rest.find(marker) {
                rest = &rest[i + marker.len()..];
                if let Some(end) = rest.find('"') {
                    out.push(rest[..end].to_string());
                }
            }
        }
        out
    }

    #[test]
    fn every_file_in_the_assets_directory_is_embedded_and_nothing_else() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut on_disk = BTreeSet::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("read assets dir") {
                let p = entry.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(&dir).expect("below assets");
                    on_disk.insert(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn every_module_import_and_shell_reference_resolves_to_an_embedded_asset() {
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            for spec in imports(text(a.path)) {
                let rel = spec
                    .strip_prefix("./")
                    .unwrap_or_else(|| panic!("{}: relative import {spec}", a.path));
                let target = format!("{dir}/{rel}");
                assert!(
                    find(&target).is_some(),
                    "{} imports missing {target}",
                    a.path
                );
            }
        }
        let html = text("index.html");
        for reference in html.split("\"/assets/").skip(1) {
            let path = reference.split('"').next().expect("quoted");
            assert!(find(path).is_some(), "index.html references missing {path}");
        }
    }

    #[test]
    fn etags_are_distinct_quoted_and_answer_not_modified() {
        let tags: BTreeSet<&String> = etags().iter().collect();
        assert_eq!(tags.len(), ASSETS.len(), "distinct content, distinct tags");
        let (asset, etag) = find("js/app.js").expect("app.js");
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        let mut headers = HeaderMap::new();
        let r = respond(asset, etag, &headers, false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], JS);
        headers.insert(
            IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{etag}")).expect("header"),
        );
        let r = respond(asset, etag, &headers, false);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[ETAG], etag);
    }
}
