//! Starting and stopping the gateway: store, accounts, API and background
//! work side by side, all stopped by one cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{app, AppState};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::providers::Accounts;
use crate::store::{SqlStore, Store};

/// How the process should start.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Apply migrations at start (off with `--no-migrate`).
    pub migrate: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { migrate: true }
    }
}

/// Opens the configured database, migrating it unless told not to.
pub async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<Arc<SqlStore>> {
    let store = SqlStore::connect(&config.database.url, config.database.max_connections)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                crate::store::sql_redact(&config.database.url)
            )
        })?;
    if migrate {
        store.migrate().await.context("migrations failed")?;
    }
    Ok(Arc::new(store))
}

/// Refuses an unauthenticated gateway on a non-loopback address.
pub fn check_exposure(config: &Config, addr: SocketAddr) -> anyhow::Result<()> {
    if config.api_keys.is_empty() {
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "no [[api_keys]] are configured, so the gateway would serve {addr} without \
                 authentication; configure a key (chat-gateway key generate) or listen on a \
                 loopback address"
            );
        }
        tracing::warn!(%addr, "no API keys configured: serving without authentication on loopback only");
    }
    Ok(())
}

/// Runs the gateway on `listener` until `shutdown` is cancelled, then stops
/// taking requests, lets in-flight ones finish and returns within 10 s.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    options: RunOptions,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    check_exposure(&config, addr)?;
    let store = open_store(&config, options.migrate).await?;
    let accounts = Arc::new(Accounts::build(&config)?);
    let accounts_for_state = accounts.clone();
    let metrics = Arc::new(Metrics::new());
    let config = Arc::new(config);
    let state = Arc::new(AppState::new(
        config.clone(),
        store.clone() as Arc<dyn Store>,
        accounts_for_state,
        metrics.clone(),
        shutdown.clone(),
    ));
    let sync_ctx = crate::sync::SyncContext {
        store: store.clone() as Arc<dyn Store>,
        metrics: metrics.clone(),
        // The pid tells operators (and tests) which process holds a lease.
        owner: format!(
            "pid{}-{}",
            std::process::id(),
            crate::ids::new_id("replica")
        ),
    };
    let mut tasks = crate::sync::spawn_all(sync_ctx, &accounts, &shutdown);
    tasks.spawn(retention(
        store.clone() as Arc<dyn Store>,
        config.server.events_retention_days,
        shutdown.clone(),
    ));
    tasks.spawn(crate::webhooks::run(
        store.clone() as Arc<dyn Store>,
        metrics.clone(),
        config.clone(),
        shutdown.clone(),
    ));
    if config.outbox.enabled {
        let dispatcher = crate::outbox::spawn(
            store.clone() as Arc<dyn Store>,
            accounts.clone(),
            config.outbox.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            let _ = dispatcher.await;
        });
    }
    let cleanup = crate::idempotency::spawn_cleanup(
        store.clone() as Arc<dyn Store>,
        config.idempotency.clone(),
        shutdown.clone(),
    );
    tasks.spawn(async move {
        let _ = cleanup.await;
    });
    if let Some(m) = &config.server.metrics_listen {
        let metrics_listener = TcpListener::bind(m)
            .await
            .with_context(|| format!("cannot listen on metrics address {m}"))?;
        let router = crate::api::health::metrics_router().with_state(state.clone());
        let stop = shutdown.clone();
        tasks.spawn(serve_http(metrics_listener, router, stop));
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config_file = %config
            .file
            .as_ref()
            .map_or_else(|| "none".to_string(), |f| f.display().to_string()),
        database = %crate::store::sql_redact(&config.database.url),
        backend = store.backend().as_str(),
        accounts = config.accounts.len(),
        listen = %format!("http://{addr}"),
        "chat-gateway listening"
    );
    let serving = tokio::spawn(serve_http(listener, app(state), shutdown.clone()));
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    // In-flight requests get what is left of the 10 s budget.
    let _ = tokio::time::timeout(Duration::from_secs(8), async {
        let _ = serving.await;
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// A connection that has not sent complete request headers within this is
/// closed: slow or idle clients cannot hold sockets and memory forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting and lets every connection finish the requests it has in flight
/// (held polls answer and streams end on the same token). A connection with
/// nothing in flight — idle, or still sending its headers — is closed at
/// once, so a slow client cannot hold up a shutdown.
///
/// hyper's HTTP/1 connection builder is used directly (rather than
/// `axum::serve`) for its header read timeout.
pub async fn serve_http(listener: TcpListener, router: axum::Router, shutdown: CancellationToken) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Finished connections' handles are dropped as we go.
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait for
                    // connections to close rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let in_flight = InFlight::default();
        let service = {
            let router = router.clone();
            let in_flight = in_flight.clone();
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let guard = in_flight.enter();
                let call = tower::ServiceExt::oneshot(router.clone(), req);
                async move {
                    let resp = call.await?;
                    // In flight until the whole body is written (or dropped).
                    Ok::<_, std::convert::Infallible>(resp.map(|body| {
                        axum::body::Body::new(http_body_util::BodyExt::map_frame(
                            body,
                            move |frame| {
                                let _ = &guard;
                                frame
                            },
                        ))
                    }))
                }
            })
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let stop = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => return log_connection_end(result),
                _ = stop.cancelled() => {}
            }
            connection.as_mut().graceful_shutdown();
            loop {
                tokio::select! {
                    result = connection.as_mut() => return log_connection_end(result),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {
                        if in_flight.is_empty() {
                            // Dropping the connection closes it.
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Requests of one connection that are being handled or whose response is
/// still being written.
#[derive(Debug, Clone, Default)]
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }

    fn is_empty(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire) == 0
    }
}

/// Counts one request in flight until dropped.
#[derive(Debug)]
struct InFlightGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot watch SIGTERM");
                        let _ = ctrl_c.await;
                        token.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        token.cancel();
    });
}

/// Deletes events past the retention window, hourly.
async fn retention(store: Arc<dyn Store>, days: u64, shutdown: CancellationToken) {
    loop {
        let cutoff = chrono::Utc::now() - chrono::Duration::days(days as i64);
        match store.prune_events(cutoff.timestamp_micros()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned events past retention"),
            Err(e) => tracing::warn!(error = %e, "event retention failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
