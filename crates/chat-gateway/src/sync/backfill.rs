//! Backfills: fetching an older time range beside live sync.
//!
//! Overlapping windows are harmless (the store deduplicates); `fetched`
//! counts messages received, stored before or not.

use chat_core::{Capability, SessionListQuery};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::poll::{call, customer_history, fetch_details, PollError};
use super::status::Reporter;
use super::SyncContext;
use crate::providers::Account;
use crate::store::Backfill;

/// Whether this account's provider can backfill a time range, and whether
/// it reads history per customer.
pub fn support(account: &Account) -> Option<BackfillKind> {
    let caps = account.provider.capabilities();
    if caps.has(Capability::ListSessions) {
        Some(BackfillKind::Sessions)
    } else if caps.has(Capability::History) && account.provider.history_per_customer() {
        Some(BackfillKind::Customers)
    } else {
        None
    }
}

/// How a backfill walks the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillKind {
    /// List sessions created in the range and fetch each.
    Sessions,
    /// Page each customer's history over the range.
    Customers,
}

/// Runs one backfill to the end, recording progress in the account's
/// `sync.backfill`.
pub async fn run(
    ctx: SyncContext,
    account: Account,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    customers: Option<Vec<String>>,
    cancel: CancellationToken,
) {
    let name = account.config.name.clone();
    let reporter = Reporter::new(
        ctx.store.clone(),
        ctx.metrics.clone(),
        &name,
        Default::default(),
    );
    let mut progress = Backfill {
        state: "running".into(),
        from,
        to,
        fetched: 0,
        error: None,
    };
    let result = walk(&ctx, &account, &reporter, &cancel, customers, &mut progress).await;
    match result {
        Ok(()) => progress.state = "done".into(),
        Err(e) => {
            progress.state = "failed".into();
            progress.error = Some(match e {
                PollError::Provider(p) => p.to_string(),
                PollError::Store(s) => s.to_string(),
                PollError::Cancelled => "stopped by shutdown".into(),
            });
        }
    }
    tracing::info!(account = %name, state = %progress.state, fetched = progress.fetched, "backfill finished");
    if let Err(e) = ctx.store.put_backfill(&name, Some(&progress)).await {
        tracing::warn!(account = %name, error = %e, "cannot record backfill result");
    }
}

async fn walk(
    ctx: &SyncContext,
    account: &Account,
    reporter: &Reporter,
    cancel: &CancellationToken,
    customers: Option<Vec<String>>,
    progress: &mut Backfill,
) -> Result<(), PollError> {
    let name = account.config.name.clone();
    match support(account) {
        Some(BackfillKind::Sessions) => {
            let mut page = None;
            loop {
                let query = SessionListQuery {
                    created_from: progress.from,
                    created_to: Some(progress.to),
                    page: page.clone(),
                };
                let listed =
                    call(cancel, reporter, || account.provider.list_sessions(&query)).await?;
                progress.fetched +=
                    fetch_details(ctx, account, cancel, reporter, &listed.sessions, true).await?;
                ctx.store.put_backfill(&name, Some(progress)).await?;
                match listed.next_page {
                    Some(p) => page = Some(p),
                    None => return Ok(()),
                }
            }
        }
        Some(BackfillKind::Customers) => {
            let customers = match customers {
                Some(c) if !c.is_empty() => c,
                _ => {
                    let mut all = account.provider.sync_customers();
                    for c in ctx
                        .store
                        .sync_state(&account.reference())
                        .await?
                        .extra_customers
                    {
                        if !all.contains(&c) {
                            all.push(c);
                        }
                    }
                    all
                }
            };
            for customer in customers {
                progress.fetched += customer_history(
                    ctx,
                    account,
                    cancel,
                    reporter,
                    &customer,
                    progress.from,
                    Some(progress.to),
                )
                .await?;
                ctx.store.put_backfill(&name, Some(progress)).await?;
            }
            Ok(())
        }
        None => Ok(()),
    }
}
