//! Signed webhooks: the event log pushed to registered endpoints.
//!
//! **Source.** Deliveries come from the event log, never from memory: each
//! webhook keeps a durable cursor into it and an outbox of events still to
//! deliver (see [`crate::store::webhooks`]). Moving events into the outbox
//! and moving the cursor happen in one transaction, bounded by the newest
//! committed `seq` the way the feed is, so nothing is skipped or copied twice
//! across restarts, and a webhook created now receives the events committed
//! from then on. A restart resumes with the outbox as it was: at least once.
//!
//! **Order.** Per session: only the oldest undelivered event of a session is
//! ever sent, so a failing event holds back the later events of *its*
//! session (until it succeeds or its retries are spent) while other
//! sessions go ahead. Up to [`PER_ENDPOINT_CONCURRENCY`] sessions' events
//! are in flight at once per endpoint.
//!
//! **Isolation.** Each endpoint has its own task, its own queue (its outbox)
//! and a [`send::REQUEST_TIMEOUT`] per request; a slow or dead endpoint
//! only ever waits on itself. Ingestion never waits on delivery: workers
//! read the log after commit.
//!
//! **Retries.** Non-2xx answers, timeouts and connection errors are retried
//! on `[webhooks] retry_schedule_secs` with jitter, honouring a longer
//! `Retry-After` ([`retry`]); after the last retry the event is recorded as
//! failed and its session moves on. 410 Gone disables the webhook. Every
//! attempt is recorded and listed by `GET /v1/webhooks/{id}/deliveries`.
//! The `webhook-id` header is made once per (webhook, event), so a receiver
//! deduplicates retries and redeliveries by it.
//!
//! **Replicas.** A webhook is delivered by one replica at a time: the holder
//! of its lease ([`LEASE_TTL`], renewed every [`LEASE_RENEW`]), the same
//! scheme as account sync. Each replica's manager scans for webhooks without
//! a live lease; a dead replica's webhooks move within the lease time. The
//! outbox is written only by the lease holder.

pub mod endpoint;
pub mod metrics;
pub mod retry;
pub mod send;
pub mod signature;
pub mod target;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;

/// How long a webhook's delivery lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the holder renews it, and how often managers look for
/// webhooks nobody delivers.
pub const LEASE_RENEW: Duration = Duration::from_secs(5);
/// Deliveries in flight at once per endpoint (each a different session).
pub const PER_ENDPOINT_CONCURRENCY: u32 = 8;
/// Seqs copied into an outbox per transaction.
pub const ENQUEUE_BATCH: i64 = 500;
/// How often old attempt records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What every endpoint worker of this replica shares.
#[derive(Debug)]
pub struct WebhookContext {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// `[webhooks] retry_schedule_secs`.
    pub schedule: Vec<u64>,
    /// `[webhooks] allow_private_targets`.
    pub allow_private: bool,
    /// This replica's lease owner id.
    pub owner: String,
    /// The delivery client ([`send::client`]).
    pub client: reqwest::Client,
}

pub(crate) fn change_signal() -> &'static watch::Sender<u64> {
    static CHANGES: OnceLock<watch::Sender<u64>> = OnceLock::new();
    CHANGES.get_or_init(|| watch::channel(0).0)
}

/// Tells this process's managers and workers that a webhook was created or
/// changed, so delivery starts, pauses or picks up a new URL or secret at
/// once rather than at the next scan or lease renewal.
pub fn announce_change() {
    change_signal().send_modify(|v| *v = v.wrapping_add(1));
}

/// Runs this replica's webhook manager until `shutdown`: takes the lease of
/// every webhook nobody delivers, runs one [`endpoint`] worker per webhook
/// held, prunes attempt records past the event retention window, and on
/// shutdown lets the workers finish their in-flight requests and release
/// their leases.
pub async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    config: Arc<Config>,
    shutdown: CancellationToken,
) {
    let client = match send::client(config.webhooks.allow_private_targets) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; webhooks are not delivered");
            return;
        }
    };
    let ctx = Arc::new(WebhookContext {
        store,
        metrics,
        schedule: config.webhooks.retry_schedule_secs.clone(),
        allow_private: config.webhooks.allow_private_targets,
        owner: format!(
            "pid{}-{}",
            std::process::id(),
            crate::ids::new_id("replica")
        ),
        client,
    });
    let retention = chrono::Duration::days(config.server.events_retention_days as i64);
    let mut changes = change_signal().subscribe();
    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut last_prune: Option<Instant> = None;
    loop {
        changes.borrow_and_update();
        running.retain(|_, h| !h.is_finished());
        match ctx.store.active_webhook_ids().await {
            Ok(ids) => {
                for id in ids {
                    if running.contains_key(&id) {
                        continue;
                    }
                    match ctx
                        .store
                        .acquire_webhook_lease(&id, &ctx.owner, LEASE_TTL)
                        .await
                    {
                        Ok(Some(target)) => {
                            tracing::info!(webhook = %id, "webhook delivery lease taken");
                            let worker = endpoint::run(ctx.clone(), target, shutdown.child_token());
                            running.insert(id, tokio::spawn(worker));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(webhook = %id, error = %e, "cannot take webhook lease")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list webhooks"),
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let cutoff = (chrono::Utc::now() - retention).timestamp_micros();
            match ctx.store.prune_webhook_deliveries(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned webhook attempts past retention"),
                Err(e) => tracing::warn!(error = %e, "webhook attempt retention failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(LEASE_RENEW) => {}
        }
    }
    for (_, worker) in running {
        let _ = worker.await;
    }
}
