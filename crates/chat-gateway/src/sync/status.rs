//! What a worker tells `/v1/accounts` and the metrics about itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::metrics::{AccountLabels, Metrics, ProviderErrorLabels};
use crate::store::{Store, SyncError, SyncStatus};

/// Keeps an account's observable sync state, writing it to the store when it
/// changes (and at most every couple of seconds otherwise, so a busy live
/// feed does not turn into a write per poll).
#[derive(Debug)]
pub struct Reporter {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    account: String,
    status: SyncStatus,
    last_write: Option<Instant>,
}

const REFRESH: Duration = Duration::from_secs(2);

impl Reporter {
    /// Starts from the stored status.
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        account: &str,
        status: SyncStatus,
    ) -> Self {
        Reporter {
            store,
            metrics,
            account: account.to_string(),
            status,
            last_write: None,
        }
    }

    async fn save(&mut self, force: bool) {
        self.metrics
            .set_sync_state(&self.account, &self.status.state);
        let due = self.last_write.is_none_or(|t| t.elapsed() >= REFRESH);
        if !(force || due) {
            return;
        }
        if let Err(e) = self
            .store
            .put_sync_status(&self.account, &self.status)
            .await
        {
            tracing::warn!(account = %self.account, error = %e, "cannot record sync status");
            return;
        }
        self.last_write = Some(Instant::now());
    }

    /// A provider call succeeded; `lag` is how far behind the stored data is.
    pub async fn success(&mut self, state: &str, lag: Option<i64>) {
        let changed = self.status.state != state || self.status.last_error.is_some();
        self.status.state = state.to_string();
        self.status.last_success_at = Some(Utc::now());
        self.status.last_error = None;
        self.status.lag_seconds = lag;
        if let Some(l) = lag {
            self.metrics
                .sync_lag
                .get_or_create(&AccountLabels {
                    account: self.account.clone(),
                })
                .set(l);
        }
        self.save(changed).await;
    }

    /// Moves to `state` (`idle` between polls, `running` during one).
    pub async fn set_state(&mut self, state: &str) {
        if self.status.state != state {
            self.status.state = state.to_string();
            self.save(true).await;
        }
    }

    /// A provider call failed: `backoff` while it may recover by itself,
    /// `error` for failures that need attention (credentials, bad config).
    pub async fn failure(&mut self, kind: &str, message: String, retryable: bool) {
        self.metrics
            .provider_errors
            .get_or_create(&ProviderErrorLabels {
                account: self.account.clone(),
                kind: kind.to_string(),
            })
            .inc();
        self.status.state = if retryable { "backoff" } else { "error" }.to_string();
        self.status.last_error = Some(SyncError {
            message,
            at: Utc::now(),
        });
        self.save(true).await;
    }

    /// Counts messages stored for the first time.
    pub fn ingested(&self, messages: u64) {
        if messages > 0 {
            self.metrics
                .messages_ingested
                .get_or_create(&AccountLabels {
                    account: self.account.clone(),
                })
                .inc_by(messages);
        }
    }

    /// Records one provider call's latency.
    pub fn call_took(&self, d: Duration) {
        self.metrics
            .provider_duration
            .get_or_create(&AccountLabels {
                account: self.account.clone(),
            })
            .observe(d.as_secs_f64());
    }
}
