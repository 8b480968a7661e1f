//! The live worker: a long-poll loop for providers with real-time delivery.
//!
//! Invariant: an ack or a stored version moves only after the rows it covers
//! are committed. Each answer is stored in one transaction together with the
//! version after it; its message ids are acknowledged on the *next* call.
//! A crash between commit and ack only causes a redelivery, which the store
//! deduplicates. On start with a stored version the worker replays history
//! from it until caught up, then goes live; a version the provider no longer
//! knows restarts in live mode.

use std::time::{Duration, Instant};

use chat_core::{LiveMode, LivePoll, ProviderError};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::{fail_and_wait, pause, reporter, store_failed, SyncContext};
use crate::providers::Account;

/// Runs until `held` is cancelled.
pub async fn run(ctx: &SyncContext, account: &Account, held: &CancellationToken) {
    let name = account.config.name.as_str();
    let reference = account.reference();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let (mut reporter, mut version) = loop {
        match (
            reporter(ctx, account).await,
            ctx.store.sync_state(&reference).await,
        ) {
            (Ok(r), Ok(s)) => break (r, s.cursor),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(account = name, error = %e, "cannot read sync state");
                if !pause(held, backoff.next(None)).await {
                    return;
                }
            }
        }
    };
    let mut replaying = version.is_some();
    let mut acks: Vec<String> = Vec::new();
    reporter.set_state("running").await;
    loop {
        let poll = LivePoll {
            version: if replaying { version.clone() } else { None },
            acks: acks.clone(),
        };
        let started = Instant::now();
        let answer = tokio::select! {
            _ = held.cancelled() => return,
            a = account.provider.poll_live(&poll) => a,
        };
        let polled = started.elapsed();
        reporter.call_took(polled);
        let batch = match answer {
            Ok(b) => b,
            Err(ProviderError::CursorExpired(why)) => {
                tracing::warn!(account = name, %why, "stored version unknown to the provider; continuing live");
                replaying = false;
                version = None;
                continue;
            }
            Err(e) => {
                if !fail_and_wait(&mut reporter, &mut backoff, held, name, &e).await {
                    return;
                }
                continue;
            }
        };
        // The acks just sent went through; what this answer carried is acked next time.
        acks.clear();
        let next_version = batch.version.clone().or_else(|| version.clone());
        let ingest_started = Instant::now();
        if !batch.changes.is_empty() || next_version != version {
            match ctx
                .store
                .ingest_as(
                    &reference,
                    &batch.changes,
                    next_version.as_deref(),
                    Some(&ctx.owner),
                )
                .await
            {
                Ok(summary) => reporter.ingested(summary.messages_created),
                Err(e) => {
                    // Nothing committed: leave the batch unacked so it comes again.
                    if !store_failed(&mut reporter, &mut backoff, held, name, &e).await {
                        return;
                    }
                    continue;
                }
            }
        }
        tracing::debug!(
            account = name,
            poll_ms = polled.as_secs_f64() * 1e3,
            ingest_ms = ingest_started.elapsed().as_secs_f64() * 1e3,
            changes = batch.changes.len(),
            "live batch"
        );
        acks = batch
            .changes
            .iter()
            .flat_map(|c| c.messages.iter().map(|m| m.external_id.clone()))
            .collect();
        version = next_version;
        let newest = batch
            .changes
            .iter()
            .flat_map(|c| c.messages.iter().map(|m| m.sent_at))
            .max();
        let lag = match batch.mode {
            LiveMode::Live => Some(0),
            LiveMode::History => newest.map(|t| (Utc::now() - t).num_seconds().max(0)),
        };
        if replaying && batch.caught_up {
            tracing::info!(account = name, "history replay caught up; going live");
            replaying = false;
        }
        backoff.reset();
        reporter.success("running", lag).await;
    }
}
