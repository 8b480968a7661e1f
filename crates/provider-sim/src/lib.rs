//! In-memory simulators of the three chat provider HTTP APIs the gateway
//! speaks to: Spark, Huawei ccmessaging and KF5 Kchat.
//!
//! They exist so the adapters, the gateway's integration tests, the
//! `chat-gateway demo` command and benchmarks can run against something that
//! behaves like the real providers (auth, paging, long-poll hold, acks and
//! redelivery, token expiry and rotation, rate limits) without reaching the
//! network. The wire types here are written from the provider pages in
//! `shared/providers/` and share no code with the adapter crates, so a
//! misreading in one shows up in the other's tests.
//!
//! # Starting one
//! ```no_run
//! # async fn demo() -> Result<(), provider_sim::SimError> {
//! use provider_sim::{start, SimOptions, SimProvider, SparkInject};
//! use std::time::Duration;
//!
//! let opts = SimOptions { spark_hold: Duration::from_secs(1), ..SimOptions::default() };
//! let server = start(SimProvider::All, "127.0.0.1:0".parse().unwrap(), opts).await?;
//! let control = server.control();
//! control.spark_inject(SparkInject {
//!     customer_id: Some("c-1".into()),
//!     text: Some("你好".into()),
//!     ..SparkInject::default()
//! })?;
//! println!("Spark at {}/message/query", server.base_url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! [`start`] binds the listener (port 0 picks a free one), seeds
//! [`SimOptions::history`], applies [`SimOptions::script`] and serves until [`SimServer::shutdown`] or until
//! the [`SimServer`] is dropped. [`SimControl`] (cloneable) injects
//! messages, reads what the simulator received, sets faults, seeds history
//! and starts lively traffic; the same operations are HTTP routes under
//! `/_sim/` (listed in the [`control`] module).
//!
//! # Providers
//! - Spark ([`spark`]): `POST /message/query` (live long poll with `Acks`,
//!   history after a `LastVersion`), `/message/send`, `/session/close`,
//!   `/session/restart`, `/session/transfer`.
//! - ccmessaging ([`ccmessaging`]): `tokenByAkSk`, `applyToken`,
//!   `queryHistoryChatMessage`, `downloadFileStream`.
//! - Kchat ([`kchat`]): `GET /apiv2/chats.json`, `GET /apiv2/chats/{id}.json`.
//!
//! # Faults
//! [`FaultProfile`] (latency, a share of 5xx, Spark duplicates and
//! out-of-order delivery) and [`FailNext`] ("the next N requests, optionally
//! under a path prefix, get a status / hang / malformed JSON / business
//! error / delay") apply per provider, at start or through control.

// Request checks short-circuit with the provider's own error answer as
// `Err(Response)`; those are cold paths, so the size of `Response` is no cost.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use chrono_tz::Tz;
use rand::rngs::StdRng;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod ccmessaging;
mod content;
pub mod control;
mod error;
pub mod faults;
pub mod kchat;
mod options;
pub mod script;
pub mod spark;
mod traffic;
mod util;

pub use ccmessaging::{CcmExpire, CcmItem, CcmReceived, ACCESS_TOKEN_FAIL};
pub use content::DEMO_CCM_USERS;
pub use control::{FaultSnapshot, SimControl};
pub use error::SimError;
pub use faults::{FailNext, FaultAction, FaultProfile};
pub use kchat::{KchatChatPatch, KchatNewChat, KchatNewMessage, KchatReceived, KchatUploadIn};
pub use options::{CcmCredentials, HeaderCredential, KchatCredentials, SimOptions, SimProvider};
pub use script::{
    CcmGrouping, EventBody, Party, Script, ScriptAgent, ScriptCustomer, ScriptEvent, ScriptReport,
    ScriptSession,
};
pub use spark::{
    SparkActionRecord, SparkAgent, SparkBulk, SparkBulkReport, SparkInject, SparkInjected,
    SparkReceived, SparkSendRecord, SparkSessionInfo, BULK_MAX_MESSAGES,
};
pub use traffic::{HistoryOptions, TrafficHandle, TrafficOptions};

use crate::ccmessaging::Ccm;
use crate::faults::Faults;
use crate::kchat::Kchat;
use crate::spark::Spark;
use crate::util::lock;

/// Request bodies up to this size are read: a Spark client may ack a large
/// backlog in one `Acks` string.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Generated media bytes by key: (MIME type, bytes).
type FileStore = HashMap<String, (String, Arc<Vec<u8>>)>;

/// State shared by every route and the control handle.
pub(crate) struct Shared {
    pub(crate) served: SimProvider,
    pub(crate) base_url: String,
    pub(crate) tz: Tz,
    pub(crate) seed: Option<u64>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) faults: Faults,
    pub(crate) spark: Option<Arc<Spark>>,
    pub(crate) ccm: Option<Arc<Ccm>>,
    pub(crate) kchat: Option<Arc<Kchat>>,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) files: Mutex<FileStore>,
    pub(crate) traffic: Mutex<Vec<CancellationToken>>,
}

impl Shared {
    pub(crate) fn spark(&self) -> Result<&Spark, SimError> {
        self.spark.as_deref().ok_or(SimError::NotServed("spark"))
    }

    pub(crate) fn ccm(&self) -> Result<&Ccm, SimError> {
        self.ccm
            .as_deref()
            .ok_or(SimError::NotServed("ccmessaging"))
    }

    pub(crate) fn kchat(&self) -> Result<&Kchat, SimError> {
        self.kchat.as_deref().ok_or(SimError::NotServed("kchat"))
    }

    /// Keeps generated media bytes for `/_sim/files/{key}` and
    /// ccmessaging's `downloadFileStream`.
    pub(crate) fn put_file(&self, key: &str, mime: &str, bytes: Vec<u8>) {
        lock(&self.files).insert(key.to_string(), (mime.to_string(), Arc::new(bytes)));
    }

    /// Stores generated bytes for a ccmessaging media item; returns the
    /// objectKey its `content` names and the size.
    pub(crate) fn store_object(&self, mime: &str, name: &str) -> (String, u64) {
        let key = ccmessaging::object_key(&mut lock(&self.rng));
        let bytes = content::sample_bytes(mime, name);
        let size = bytes.len() as u64;
        self.put_file(&key, mime, bytes);
        (key, size)
    }

    /// Gives a Kchat upload without a URL generated bytes, served under
    /// `/_sim/files/`, and their size unless one is given.
    pub(crate) fn fill_upload(&self, up: &mut KchatUploadIn) {
        if up.url.is_some() {
            return;
        }
        let bytes = content::sample_bytes(&up.mime, &up.name);
        let key = format!("kchat-{}", util::hex_id(&mut lock(&self.rng), 12));
        up.size.get_or_insert(bytes.len() as u64);
        up.url = Some(format!("{}/_sim/files/{key}", self.base_url));
        self.put_file(&key, &up.mime, bytes);
    }

    pub(crate) fn file(&self, key: &str) -> Option<(String, Vec<u8>)> {
        lock(&self.files)
            .get(key)
            .map(|(mime, bytes)| (mime.clone(), bytes.as_ref().clone()))
    }
}

/// A running simulator. Dropping it stops the server (held long polls are
/// answered at once); [`SimServer::shutdown`] also waits for the end.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    control: SimControl,
    join: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimServer {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`, what clients put in front of the API paths.
    pub fn base_url(&self) -> &str {
        self.control.base_url()
    }

    /// The in-process control handle.
    pub fn control(&self) -> SimControl {
        self.control.clone()
    }

    /// Stops serving and waits (at most 5 s) for the server task to end.
    pub async fn shutdown(mut self) {
        self.control.shared.shutdown.cancel();
        if let Some(join) = self.join.take() {
            match tokio::time::timeout(Duration::from_secs(5), join).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!("provider-sim server ended with {e}"),
                Ok(Err(e)) => tracing::warn!("provider-sim server task failed: {e}"),
                Err(_) => tracing::warn!("provider-sim server did not stop within 5 s"),
            }
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.control.shared.shutdown.cancel();
    }
}

fn base_url_for(addr: SocketAddr) -> String {
    let ip = addr.ip();
    match ip {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            format!("http://127.0.0.1:{}", addr.port())
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => format!("http://[::1]:{}", addr.port()),
        std::net::IpAddr::V6(_) => format!("http://[{ip}]:{}", addr.port()),
        std::net::IpAddr::V4(_) => format!("http://{addr}"),
    }
}

/// Starts a simulator of `provider` on `listen` (port 0: any free port).
///
/// The listener is bound and the script (if any) applied before this
/// returns, so the server answers as soon as the caller has the URL.
pub async fn start(
    provider: SimProvider,
    listen: SocketAddr,
    opts: SimOptions,
) -> Result<SimServer, SimError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: listen,
        source,
    })?;
    let base_url = base_url_for(addr);
    let shared = Arc::new(Shared {
        served: provider,
        base_url: base_url.clone(),
        tz: opts.time_zone,
        seed: opts.seed,
        shutdown: CancellationToken::new(),
        faults: Faults::new(opts.faults.clone(), opts.seed)?,
        spark: provider
            .includes(SimProvider::Spark)
            .then(|| Arc::new(Spark::new(&opts))),
        ccm: provider
            .includes(SimProvider::Ccmessaging)
            .then(|| Arc::new(Ccm::new(&opts))),
        kchat: provider
            .includes(SimProvider::Kchat)
            .then(|| Arc::new(Kchat::new(&opts, &base_url))),
        rng: Mutex::new(util::rng_from(opts.seed, 9)),
        files: Mutex::new(HashMap::new()),
        traffic: Mutex::new(Vec::new()),
    });
    let control = SimControl {
        shared: Arc::clone(&shared),
    };
    if let Some(history) = &opts.history {
        let report = control.seed_history(history.clone())?;
        tracing::info!(
            events = report.applied,
            days = history.days,
            "history seeded"
        );
    }
    if let Some(script) = &opts.script {
        let report = control.apply_script(script)?;
        tracing::info!(
            applied = report.applied,
            scheduled = report.scheduled,
            "script applied"
        );
    }
    let app = router(&shared, control.clone());
    let token = shared.shutdown.clone();
    let join = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
    });
    tracing::info!(%provider, %base_url, "provider simulator listening");
    Ok(SimServer {
        addr,
        control,
        join: Some(join),
    })
}

fn router(shared: &Arc<Shared>, control: SimControl) -> Router {
    let mut app = Router::new();
    let faulted = |r: Router, p: SimProvider| {
        r.layer(from_fn_with_state((Arc::clone(shared), p), faults::layer))
    };
    if let Some(s) = &shared.spark {
        app = app.merge(faulted(
            spark::router(Arc::clone(shared), Arc::clone(s)),
            SimProvider::Spark,
        ));
    }
    if let Some(c) = &shared.ccm {
        app = app.merge(faulted(
            ccmessaging::router(Arc::clone(shared), Arc::clone(c)),
            SimProvider::Ccmessaging,
        ));
    }
    if let Some(k) = &shared.kchat {
        app = app.merge(faulted(
            kchat::router(Arc::clone(shared), Arc::clone(k)),
            SimProvider::Kchat,
        ));
    }
    app.merge(control::router(control))
        .fallback(|| async {
            util::json(
                StatusCode::NOT_FOUND,
                &json!({"error": "no such route in the provider simulator"}),
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn(log_request))
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}
