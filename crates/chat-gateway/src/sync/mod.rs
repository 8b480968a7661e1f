//! Keeping every account in sync: one worker per account, held by one
//! replica at a time through a lease in the database.
//!
//! The lease lasts [`LEASE_TTL`] and is renewed every [`LEASE_RENEW`]; a
//! replica that dies stops renewing and another takes the account over
//! within the lease time (plus one renewal tick). Cursors are written only
//! by the current holder (see [`Store::ingest_as`]), so a replica that lost
//! its lease mid-call cannot move a cursor back.
//!
//! Which worker runs follows the provider's capabilities: `live` gets the
//! long-poll loop ([`live`]), `list_sessions` the list-and-detail poller, and
//! `history` with configured customers the per-customer poller ([`poll`]).

pub mod backfill;
pub mod backoff;
pub mod live;
pub mod poll;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use chat_core::{Capability, ProviderError};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::providers::{Account, Accounts};
use crate::store::{Store, StoreError};
use backoff::Backoff;
use status::Reporter;

/// How long a sync lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the holder renews it (and others try to take it).
pub const LEASE_RENEW: Duration = Duration::from_secs(5);

/// What every worker needs.
#[derive(Debug, Clone)]
pub struct SyncContext {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// This replica's lease owner id.
    pub owner: String,
}

/// Starts one supervisor per account; they stop when `shutdown` is cancelled.
pub fn spawn_all(
    ctx: SyncContext,
    accounts: &Accounts,
    shutdown: &CancellationToken,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for account in accounts.iter() {
        set.spawn(supervise(ctx.clone(), account.clone(), shutdown.clone()));
    }
    set
}

/// Takes the account's lease when free, runs its worker while holding it,
/// and releases it on shutdown.
async fn supervise(ctx: SyncContext, account: Account, shutdown: CancellationToken) {
    let reference = account.reference();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match ctx
            .store
            .acquire_lease(&reference, &ctx.owner, LEASE_TTL)
            .await
        {
            Ok(true) => {
                tracing::info!(account = %reference.name, "sync lease taken");
                let held = shutdown.child_token();
                let renew = tokio::spawn(renew_lease(ctx.clone(), account.clone(), held.clone()));
                run_worker(&ctx, &account, &held).await;
                held.cancel();
                let _ = renew.await;
                if shutdown.is_cancelled() {
                    if let Err(e) = ctx.store.release_lease(&reference.name, &ctx.owner).await {
                        tracing::warn!(account = %reference.name, error = %e, "cannot release sync lease");
                    }
                    return;
                }
                tracing::warn!(account = %reference.name, "sync lease lost");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(account = %reference.name, error = %e, "cannot take sync lease")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(LEASE_RENEW) => {}
        }
    }
}

/// Renews the lease until `held` is cancelled; cancels `held` when renewal
/// fails, which stops the worker.
async fn renew_lease(ctx: SyncContext, account: Account, held: CancellationToken) {
    let reference = account.reference();
    loop {
        tokio::select! {
            _ = held.cancelled() => return,
            _ = tokio::time::sleep(LEASE_RENEW) => {}
        }
        match ctx
            .store
            .acquire_lease(&reference, &ctx.owner, LEASE_TTL)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                held.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(account = %reference.name, error = %e, "cannot renew sync lease")
            }
        }
    }
}

async fn run_worker(ctx: &SyncContext, account: &Account, held: &CancellationToken) {
    let caps = account.provider.capabilities();
    let customers = account
        .provider
        .history_per_customer()
        .then(|| account.provider.sync_customers());
    if caps.has(Capability::Live) {
        live::run(ctx, account, held).await;
    } else if caps.has(Capability::ListSessions) {
        poll::run(ctx, account, held, poll::Strategy::ListAndDetail).await;
    } else if let (true, Some(customers)) = (caps.has(Capability::History), customers) {
        poll::run(
            ctx,
            account,
            held,
            poll::Strategy::CustomerHistory(customers),
        )
        .await;
    } else {
        tracing::info!(account = %account.config.name, "provider offers nothing to sync");
        held.cancelled().await;
    }
}

/// Reads the account's status to start a reporter from.
async fn reporter(ctx: &SyncContext, account: &Account) -> Result<Reporter, StoreError> {
    let state = ctx.store.sync_state(&account.reference()).await?;
    Ok(Reporter::new(
        ctx.store.clone(),
        ctx.metrics.clone(),
        &account.config.name,
        state.status,
    ))
}

/// Sleeps `d` unless `held` is cancelled first; false when cancelled.
async fn pause(held: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = held.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Records a provider failure and waits out the backoff; false when cancelled.
async fn fail_and_wait(
    reporter: &mut Reporter,
    backoff: &mut Backoff,
    held: &CancellationToken,
    account: &str,
    e: &ProviderError,
) -> bool {
    tracing::warn!(account, error = %e, kind = e.kind().as_str(), "provider call failed");
    reporter
        .failure(e.kind().as_str(), e.to_string(), e.is_retryable())
        .await;
    let delay = backoff.next(e.retry_after());
    // Credentials and configuration problems are retried too, slowly: they
    // may be fixed on the provider side without a restart.
    let delay = if e.is_retryable() {
        delay
    } else {
        delay.max(Duration::from_secs(30))
    };
    pause(held, delay).await
}

/// Records a storage failure and waits; false when cancelled or when the
/// lease moved (the worker must stop).
async fn store_failed(
    reporter: &mut Reporter,
    backoff: &mut Backoff,
    held: &CancellationToken,
    account: &str,
    e: &StoreError,
) -> bool {
    if matches!(e, StoreError::LeaseLost) {
        held.cancel();
        return false;
    }
    tracing::warn!(account, error = %e, "storing synced data failed");
    reporter.failure("storage", e.to_string(), true).await;
    pause(held, backoff.next(None)).await
}
