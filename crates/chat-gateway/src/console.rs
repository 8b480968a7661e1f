//! The operator console: a single-page web app served from the binary at
//! `/console`, built on the public API only (it calls `/v1/...` with the key
//! the operator types in). Its files live in `crates/chat-gateway/console/`
//! and are compiled in with `include_str!`, so building and running the
//! gateway needs no front-end toolchain and the page needs no network beyond
//! the gateway.

use std::sync::Arc;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::api::error::ApiError;
use crate::api::AppState;

/// Path the console is served at; `/` redirects here.
pub const CONSOLE_PATH: &str = "/console";

/// The page's Content-Security-Policy: scripts and styles only from the
/// gateway's own files (no inline code), API calls only to the gateway,
/// images from the gateway, `blob:` (media fetched with the key) and the
/// providers' own media URLs, and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data: http: https:; media-src 'self' blob:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One static file of the console.
struct Asset {
    /// Name under `/console/`.
    name: &'static str,
    /// `Content-Type` it is served with.
    content_type: &'static str,
    /// The file itself.
    body: &'static str,
}

/// Every file the console is made of, besides the page itself.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../console/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../console/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../console/favicon.svg"),
    },
];

/// The page that loads the app.
const INDEX_HTML: &str = include_str!("../console/index.html");

/// Routes of the console: the page, its files, and the `/` redirect. No auth:
/// the files hold no data; every call the app makes carries the key.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary(CONSOLE_PATH) }))
        .route(CONSOLE_PATH, get(index))
        .route(
            "/console/",
            get(|| async { Redirect::temporary(CONSOLE_PATH) }),
        )
        .route("/console/{file}", get(asset))
}

async fn index() -> Response {
    with_headers("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => with_headers(a.content_type, a.body),
        None => ApiError::not_found("console file").into_response(),
    }
}

/// A console file with its type and the security headers every one carries.
/// `no-cache`: a browser revalidates, so a new gateway build is picked up at
/// once.
fn with_headers(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    resp
}
