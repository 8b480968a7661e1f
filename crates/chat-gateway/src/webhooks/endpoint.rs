//! One endpoint's delivery worker: fill its outbox from the event log, send
//! what is due, record each attempt, renew its lease; stop when the lease
//! is lost, the webhook is deleted or disabled, or the gateway shuts down.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use url::Url;

use super::metrics::{FailureLabels, OutcomeLabels};
use super::send::{self, AttemptResult};
use super::{retry, target, WebhookContext, ENQUEUE_BATCH, LEASE_RENEW, LEASE_TTL};
use crate::store::webhooks::{AttemptOutcome, AttemptRecord, OutboxItem, WebhookTarget};
use crate::store::StoreError;

/// Pause after a storage failure before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Runs the worker for `target` (whose lease this replica holds) until
/// `stop` is cancelled or the lease goes; releases the lease on the way out
/// when it still holds it.
pub async fn run(ctx: Arc<WebhookContext>, webhook: WebhookTarget, stop: CancellationToken) {
    let span = tracing::info_span!("webhook", webhook = %webhook.id);
    async move {
        let held = work(&ctx, &webhook, &stop).await;
        if held {
            if let Err(e) = ctx
                .store
                .release_webhook_lease(&webhook.id, &ctx.owner)
                .await
            {
                tracing::warn!(error = %e, "cannot release webhook lease");
            }
        }
    }
    .instrument(span)
    .await
}

/// The parsed URL of a target, or why it cannot be delivered to.
fn usable_url(webhook: &WebhookTarget) -> Option<Url> {
    match target::parse_url(&webhook.url) {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::error!(error = %e, "stored webhook URL is unusable; not delivering");
            None
        }
    }
}

/// The signing keys for a delivery made now, newest first.
fn signing_keys(webhook: &WebhookTarget) -> Option<Vec<Vec<u8>>> {
    let now = Utc::now().timestamp_micros();
    let mut keys = Vec::new();
    for secret in webhook.signing_secrets(now) {
        match secret.key() {
            Ok(k) => keys.push(k),
            Err(e) => {
                tracing::error!(error = %e, "stored webhook secret is unusable; not delivering");
                return None;
            }
        }
    }
    Some(keys)
}

/// The loop; returns whether the lease may still be held (so is released).
async fn work(ctx: &WebhookContext, webhook: &WebhookTarget, stop: &CancellationToken) -> bool {
    let mut webhook = webhook.clone();
    let Some(mut url) = usable_url(&webhook) else {
        return true;
    };
    let mut wake = ctx.store.subscribe();
    // Changes made through the API (URL, secret, pause) are picked up at
    // once in this process, and at the next lease renewal elsewhere.
    let mut changes = super::change_signal().subscribe();
    let mut renewed = Instant::now();
    // Set when a change was announced (`changed()` marks it seen itself).
    let mut refresh = false;
    loop {
        if stop.is_cancelled() {
            return true;
        }
        refresh |= changes.has_changed().unwrap_or(false);
        if refresh || renewed.elapsed() >= LEASE_RENEW {
            refresh = false;
            changes.borrow_and_update();
            match ctx
                .store
                .acquire_webhook_lease(&webhook.id, &ctx.owner, LEASE_TTL)
                .await
            {
                Ok(Some(fresh)) => {
                    renewed = Instant::now();
                    if fresh.url != webhook.url {
                        match usable_url(&fresh) {
                            Some(u) => url = u,
                            None => return true,
                        }
                    }
                    webhook = fresh;
                }
                Ok(None) => {
                    tracing::info!("webhook lease lost, or the webhook was deleted or disabled");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew webhook lease");
                    if renewed.elapsed() >= LEASE_TTL {
                        return false;
                    }
                }
            }
        }
        wake.borrow_and_update();
        match fill_outbox(ctx, &webhook.id).await {
            Ok(()) => {}
            Err(StoreError::LeaseLost) => {
                tracing::info!("webhook lease lost, or the webhook was deleted or disabled");
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event log for a webhook");
                if !pause(stop, STORE_RETRY).await {
                    return true;
                }
                continue;
            }
        }
        let now = Utc::now().timestamp_micros();
        let due = match ctx
            .store
            .due_webhook_messages(&webhook.id, now, super::PER_ENDPOINT_CONCURRENCY)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a webhook outbox");
                if !pause(stop, STORE_RETRY).await {
                    return true;
                }
                continue;
            }
        };
        if !due.is_empty() {
            if changes.has_changed().unwrap_or(false) {
                // Changed since this target was read (a new secret or URL
                // must sign or carry this delivery): read it again first.
                continue;
            }
            let Some(keys) = signing_keys(&webhook) else {
                return true;
            };
            // Each item is the oldest of its session, so sending them
            // together keeps every session in order.
            let records = futures_util::future::join_all(
                due.iter().map(|item| deliver(ctx, &url, &keys, item)),
            )
            .await;
            let mut disabled = false;
            let mut unrecorded = false;
            for (item, record) in due.iter().zip(records) {
                disabled |= record.outcome == AttemptOutcome::Gone;
                if let Err(e) = ctx
                    .store
                    .record_webhook_attempt(&webhook.id, item, &record)
                    .await
                {
                    // The row stays as it was: the event is sent again
                    // under the same webhook-id.
                    tracing::warn!(error = %e, seq = item.event_seq, "cannot record a webhook attempt");
                    unrecorded = true;
                }
            }
            if disabled {
                tracing::warn!("the endpoint answered 410 Gone; webhook disabled");
                return false;
            }
            if unrecorded && !pause(stop, STORE_RETRY).await {
                return true;
            }
            continue;
        }
        let next_due = ctx.store.next_webhook_due(&webhook.id).await.ok().flatten();
        let mut until = renewed + LEASE_RENEW;
        if let Some(at) = next_due {
            let wait = Duration::from_micros(u64::try_from(at - now).unwrap_or(0));
            until = until.min(Instant::now() + wait);
        }
        tokio::select! {
            _ = stop.cancelled() => return true,
            changed = wake.changed() => {
                if changed.is_err() && !pause(stop, LEASE_RENEW).await {
                    return true;
                }
            }
            _ = changes.changed() => refresh = true,
            _ = tokio::time::sleep_until(until) => {}
        }
    }
}

/// Copies every new matching event into the outbox.
async fn fill_outbox(ctx: &WebhookContext, id: &str) -> Result<(), StoreError> {
    loop {
        let step = ctx
            .store
            .enqueue_webhook_events(id, &ctx.owner, ENQUEUE_BATCH)
            .await?;
        if !step.more {
            return Ok(());
        }
    }
}

/// Makes one attempt for `item` and decides what follows.
async fn deliver(
    ctx: &WebhookContext,
    url: &Url,
    keys: &[Vec<u8>],
    item: &OutboxItem,
) -> AttemptRecord {
    let attempt = item.attempts + 1;
    let body = match &item.event {
        Some(event) => serde_json::to_vec(event).map_err(|e| e.to_string()),
        None => Err("the event was removed by retention before it could be delivered".into()),
    };
    let result = match body {
        Ok(body) => {
            let started = Instant::now();
            let r = send::attempt(
                &ctx.client,
                url,
                keys,
                &item.msg_id,
                &body,
                ctx.allow_private,
            )
            .await;
            if r.status.is_some() {
                ctx.metrics
                    .webhooks
                    .duration
                    .observe(started.elapsed().as_secs_f64());
            }
            r
        }
        Err(reason) => {
            tracing::error!(seq = item.event_seq, problem = %reason, "webhook event cannot be sent");
            return finish(ctx, attempt, AttemptOutcome::Exhausted, None, Some(reason));
        }
    };
    let outcome = outcome_of(&result, &ctx.schedule, attempt);
    let error = result.failure.as_ref().map(|(_, m)| m.clone());
    if let Some((kind, message)) = &result.failure {
        ctx.metrics
            .webhooks
            .failures
            .get_or_create(&FailureLabels {
                kind: kind.as_str(),
            })
            .inc();
        tracing::warn!(
            seq = item.event_seq,
            attempt,
            error = %message,
            next = ?outcome,
            "webhook delivery failed"
        );
    } else {
        tracing::debug!(seq = item.event_seq, attempt, "webhook delivered");
    }
    finish(ctx, attempt, outcome, result.status, error)
}

/// Counts the attempt and builds its record.
fn finish(
    ctx: &WebhookContext,
    attempt: i64,
    outcome: AttemptOutcome,
    response_status: Option<u16>,
    error: Option<String>,
) -> AttemptRecord {
    let label = match outcome {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Retry { .. } => "retrying",
        AttemptOutcome::Exhausted => "failed",
        AttemptOutcome::Gone => "disabled",
    };
    ctx.metrics
        .webhooks
        .deliveries
        .get_or_create(&OutcomeLabels { outcome: label })
        .inc();
    AttemptRecord {
        attempt,
        outcome,
        response_status,
        error,
        at: Utc::now().timestamp_micros(),
    }
}

/// What follows an attempt: done, 410, a retry on the schedule, or spent.
pub fn outcome_of(result: &AttemptResult, schedule: &[u64], attempt: i64) -> AttemptOutcome {
    if result.succeeded() {
        AttemptOutcome::Succeeded
    } else if result.gone() {
        AttemptOutcome::Gone
    } else {
        match retry::next_delay(schedule, attempt, result.retry_after) {
            Some(delay) => AttemptOutcome::Retry {
                next_attempt_at: Utc::now().timestamp_micros()
                    + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 4),
            },
            None => AttemptOutcome::Exhausted,
        }
    }
}

/// Sleeps `d` unless `stop` comes first; false when stopped.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
