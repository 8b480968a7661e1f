//! The polling workers, for providers that only answer "what happened since".
//!
//! `ListAndDetail` (Kchat): every interval, list sessions created since the
//! stored watermark date minus a day (first start: `initial_sync_days`
//! back), fetch the detail of each listed session that is new or whose
//! summary fingerprint changed, and of every stored session still open
//! however old. `CustomerHistory` (ccmessaging): every interval, for each
//! configured customer (plus those a backfill added), page through history
//! from the newest stored message minus a five-minute overlap. Both store
//! one page per transaction; re-reads are deduplicated by the store.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chat_core::{HistoryQuery, ProviderError, SessionListQuery, SessionStatus};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::status::Reporter;
use super::{fail_and_wait, pause, reporter, store_failed, SyncContext};
use crate::providers::Account;
use crate::store::StoreError;

/// Overlap re-read on every customer-history poll.
pub const HISTORY_OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

/// How an account is polled.
#[derive(Debug, Clone)]
pub enum Strategy {
    /// List summaries, fetch changed details.
    ListAndDetail,
    /// Page through each customer's history.
    CustomerHistory(Vec<String>),
}

/// Why one poll stopped early.
#[derive(Debug)]
pub enum PollError {
    /// The provider failed.
    Provider(ProviderError),
    /// Storing failed (or the lease moved).
    Store(StoreError),
    /// The worker is stopping.
    Cancelled,
}

impl From<StoreError> for PollError {
    fn from(e: StoreError) -> Self {
        PollError::Store(e)
    }
}

/// Runs until `held` is cancelled.
pub async fn run(
    ctx: &SyncContext,
    account: &Account,
    held: &CancellationToken,
    strategy: Strategy,
) {
    let name = account.config.name.as_str();
    let interval = Duration::from_secs(account.config.poll_interval_secs);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(120));
    let mut reporter = loop {
        match reporter(ctx, account).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(account = name, error = %e, "cannot read sync state");
                if !pause(held, backoff.next(None)).await {
                    return;
                }
            }
        }
    };
    loop {
        reporter.set_state("running").await;
        let started = Utc::now();
        let outcome = match &strategy {
            Strategy::ListAndDetail => poll_list(ctx, account, held, &mut reporter).await,
            Strategy::CustomerHistory(customers) => {
                poll_customers(ctx, account, held, &mut reporter, customers).await
            }
        };
        match outcome {
            Ok(()) => {
                backoff.reset();
                let lag = (Utc::now() - started).num_seconds().max(0);
                reporter.success("idle", Some(lag)).await;
                if !pause(held, interval).await {
                    return;
                }
            }
            Err(PollError::Cancelled) => return,
            Err(PollError::Provider(e)) => {
                if !fail_and_wait(&mut reporter, &mut backoff, held, name, &e).await {
                    return;
                }
            }
            Err(PollError::Store(e)) => {
                if !store_failed(&mut reporter, &mut backoff, held, name, &e).await {
                    return;
                }
            }
        }
    }
}

/// Calls the provider, waiting out rate limits (up to a few times) and
/// recording latency; stops early when cancelled.
pub async fn call<T, F, Fut>(
    held: &CancellationToken,
    reporter: &Reporter,
    mut f: F,
) -> Result<T, PollError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut waits = 0;
    loop {
        let started = Instant::now();
        let result = tokio::select! {
            _ = held.cancelled() => return Err(PollError::Cancelled),
            r = f() => r,
        };
        reporter.call_took(started.elapsed());
        match result {
            Err(ProviderError::RateLimited { retry_after }) if waits < 3 => {
                waits += 1;
                let d = retry_after
                    .unwrap_or(Duration::from_secs(5))
                    .min(Duration::from_secs(120));
                tracing::info!(
                    seconds = d.as_secs(),
                    "provider asked to slow down; waiting"
                );
                if !pause(held, d).await {
                    return Err(PollError::Cancelled);
                }
            }
            other => return other.map_err(PollError::Provider),
        }
    }
}

fn parse_watermark(cursor: Option<&str>) -> Option<DateTime<Utc>> {
    cursor
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Fetches details of the listed sessions that need it and stores them;
/// returns how many messages the details held.
pub async fn fetch_details(
    ctx: &SyncContext,
    account: &Account,
    held: &CancellationToken,
    reporter: &Reporter,
    summaries: &[chat_core::ProviderSession],
    force: bool,
) -> Result<u64, PollError> {
    let ids: Vec<String> = summaries.iter().map(|s| s.external_id.clone()).collect();
    let stored = ctx
        .store
        .session_digests(&account.config.name, &ids)
        .await?;
    let mut fetched = 0;
    for summary in summaries {
        let needed = force
            || match stored.get(&summary.external_id) {
                None => true,
                Some((fingerprint, status)) => {
                    summary.fingerprint.is_none()
                        || fingerprint != &summary.fingerprint
                        || *status == SessionStatus::Open
                }
            };
        if !needed {
            continue;
        }
        match call(held, reporter, || {
            account.provider.get_session(&summary.external_id)
        })
        .await
        {
            Ok(mut change) => {
                // The list's digest is what the next poll compares against.
                if summary.fingerprint.is_some() {
                    change.session.fingerprint.clone_from(&summary.fingerprint);
                }
                fetched += change.messages.len() as u64;
                // One provider answer, one transaction: an interruption
                // loses at most the detail being fetched.
                let s = ctx
                    .store
                    .ingest_as(
                        &account.reference(),
                        std::slice::from_ref(&change),
                        None,
                        None,
                    )
                    .await?;
                reporter.ingested(s.messages_created);
            }
            Err(PollError::Provider(ProviderError::NotFound(_))) => {
                tracing::warn!(account = %account.config.name, session = %summary.external_id, "listed session has no detail; skipped");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(fetched)
}

async fn poll_list(
    ctx: &SyncContext,
    account: &Account,
    held: &CancellationToken,
    reporter: &mut Reporter,
) -> Result<(), PollError> {
    let reference = account.reference();
    let state = ctx.store.sync_state(&reference).await?;
    let now = Utc::now();
    let from = match parse_watermark(state.cursor.as_deref()) {
        Some(w) => w - chrono::Duration::days(1),
        None => now - chrono::Duration::days(account.config.initial_sync_days as i64),
    };
    let mut seen = HashSet::new();
    let mut newest = parse_watermark(state.cursor.as_deref());
    let mut page = None;
    loop {
        let query = SessionListQuery {
            created_from: from,
            created_to: None,
            page: page.clone(),
        };
        let listed = call(held, reporter, || account.provider.list_sessions(&query)).await?;
        for s in &listed.sessions {
            seen.insert(s.external_id.clone());
            if let Some(c) = s.created_at {
                newest = Some(newest.map_or(c, |n: DateTime<Utc>| n.max(c)));
            }
        }
        fetch_details(ctx, account, held, reporter, &listed.sessions, false).await?;
        match listed.next_page {
            Some(p) => page = Some(p),
            None => break,
        }
    }
    // Sessions still open from before the window may get messages or close today.
    let open: Vec<String> = ctx
        .store
        .open_session_ids(&account.config.name)
        .await?
        .into_iter()
        .filter(|id| !seen.contains(id))
        .collect();
    let mut changes = Vec::new();
    for id in open {
        match call(held, reporter, || account.provider.get_session(&id)).await {
            Ok(change) => changes.push(change),
            Err(PollError::Provider(ProviderError::NotFound(_))) => {
                tracing::warn!(account = %account.config.name, session = %id, "open session vanished at the provider");
            }
            Err(e) => return Err(e),
        }
        if changes.len() >= 20 {
            let s = ctx
                .store
                .ingest_as(&reference, &changes, None, None)
                .await?;
            reporter.ingested(s.messages_created);
            changes.clear();
        }
    }
    let watermark = newest.map(|t| t.to_rfc3339());
    let s = ctx
        .store
        .ingest_as(&reference, &changes, watermark.as_deref(), Some(&ctx.owner))
        .await?;
    reporter.ingested(s.messages_created);
    Ok(())
}

async fn poll_customers(
    ctx: &SyncContext,
    account: &Account,
    held: &CancellationToken,
    reporter: &mut Reporter,
    configured: &[String],
) -> Result<(), PollError> {
    let reference = account.reference();
    let state = ctx.store.sync_state(&reference).await?;
    let mut customers: Vec<String> = configured.to_vec();
    for c in state.extra_customers {
        if !customers.contains(&c) {
            customers.push(c);
        }
    }
    let first_start = Utc::now() - chrono::Duration::days(account.config.initial_sync_days as i64);
    for customer in customers {
        let from = match ctx
            .store
            .newest_message_at(&account.config.name, &customer)
            .await?
        {
            Some(t) => t - HISTORY_OVERLAP,
            None => first_start,
        };
        customer_history(ctx, account, held, reporter, &customer, from, None).await?;
    }
    Ok(())
}

/// Pages through one customer's history in `[from, to]`, storing each page;
/// returns the number of items the provider sent.
pub async fn customer_history(
    ctx: &SyncContext,
    account: &Account,
    held: &CancellationToken,
    reporter: &Reporter,
    customer: &str,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> Result<u64, PollError> {
    let reference = account.reference();
    let mut page = None;
    let mut fetched = 0;
    loop {
        let query = HistoryQuery {
            customer_id: Some(customer.to_string()),
            from,
            to,
            page: page.clone(),
        };
        let answer = call(held, reporter, || account.provider.fetch_history(&query)).await?;
        fetched += answer.fetched;
        let s = ctx
            .store
            .ingest_as(&reference, &answer.changes, None, None)
            .await?;
        reporter.ingested(s.messages_created);
        match answer.next_page {
            Some(p) => page = Some(p),
            None => return Ok(fetched),
        }
    }
}
