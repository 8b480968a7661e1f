//! Cross-cutting HTTP conventions of API.md: response compression, CORS for
//! configured browser origins, and the one-line access log.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

/// Bodies up to this size are sent as they are: gzip would save too little
/// to pay for itself.
pub const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// What [`compression`] compresses: bodies over 1 KiB, never an event
/// stream (each event must reach the client as it is written) nor images
/// (already compressed).
pub type CompressWhen = tower_http::compression::predicate::And<
    tower_http::compression::predicate::And<SizeAbove, NotForContentType>,
    NotForContentType,
>;

/// gzip for clients that send `Accept-Encoding: gzip`.
pub fn compression() -> CompressionLayer<CompressWhen> {
    CompressionLayer::new().gzip(true).compress_when(
        SizeAbove::new(COMPRESS_ABOVE_BYTES)
            .and(NotForContentType::SSE)
            .and(NotForContentType::IMAGES),
    )
}

/// The access log layer's type (plain function pointers, so it can be named).
pub type AccessLog = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> Span,
    (),
    fn(&Response, Duration, &Span),
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    (),
>;

/// One line per request at info: method, route template, status, latency
/// and request id, so operators can follow traffic without a proxy's log.
/// The fields live on the request's span (set by the request-id layer);
/// this layer adds the route and writes the line when the answer is ready.
pub fn access_log() -> AccessLog {
    TraceLayer::new_for_http()
        .make_span_with(access_span as fn(&Request) -> Span)
        .on_request(())
        .on_response(access_line as fn(&Response, Duration, &Span))
        .on_failure(())
}

fn access_span(req: &Request) -> Span {
    let span = Span::current();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    span.record("route", route);
    span
}

fn access_line(resp: &Response, latency: Duration, _span: &Span) {
    tracing::info!(
        target: "chat_gateway::access",
        status = resp.status().as_u16(),
        latency_ms = format_args!("{:.1}", latency.as_secs_f64() * 1000.0),
        "request"
    );
}

/// Request headers a browser may send cross-origin.
const ALLOW_HEADERS: &str = "authorization, content-type, idempotency-key, last-event-id";
/// Methods a browser may use cross-origin.
const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE";
/// Response headers a browser script may read.
const EXPOSE_HEADERS: &str =
    "x-request-id, ratelimit-limit, ratelimit-remaining, ratelimit-reset, retry-after, location";
/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// The browser origins allowed to call the API (`[server] cors_origins`),
/// exact `scheme://host[:port]` values.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// CORS for these exact origins; `None` when the list is empty, so a
    /// gateway without `cors_origins` adds no layer at all.
    pub fn new(origins: &[String]) -> Option<Arc<Cors>> {
        let origins: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        (!origins.is_empty()).then(|| Arc::new(Cors { origins }))
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins.iter().any(|o| o == origin)
    }
}

/// Middleware: a listed `Origin` gets CORS headers, and its preflight is
/// answered here, before auth (browsers send no credentials on a
/// preflight). Any other origin gets none, and its `OPTIONS` goes on to
/// the router like any request.
pub async fn cors(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| cors.allows(o))
        .cloned();
    let Some(origin) = origin else {
        let mut resp = next.run(req).await;
        vary_origin(&mut resp);
        return resp;
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
        );
        resp
    } else {
        let mut resp = next.run(req).await;
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        resp
    };
    resp.headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    vary_origin(&mut resp);
    resp
}

/// Adds `Origin` to `Vary` (answers differ by origin, so caches must key on it).
fn vary_origin(resp: &mut Response) {
    let already = resp
        .headers()
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("origin"));
    if !already {
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
    }
}
