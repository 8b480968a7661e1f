//! The outbox dispatcher: delivers the sends the API stored.
//!
//! The API stores a message with its outbox row in one transaction; this
//! worker claims due rows (leasing them, `SKIP LOCKED` between PostgreSQL
//! replicas), calls the account's provider outside any transaction, then
//! records the result in one transaction with `message.updated`: `sent`
//! with the provider's message id (deleting the row, so an acknowledged send
//! is never sent again), a retry at a backed-off time, or `failed`.
//!
//! It wakes at once when anything commits (the store's watch channel, which
//! on PostgreSQL also carries other replicas' commits), when a scheduled
//! retry comes due, and every `poll_interval_ms` in any case. A restart
//! finds unfinished rows in the table and resumes them once their lease (if
//! a dead process held one) ends. Tests drive it one row at a time with
//! [`Dispatcher::try_execute_task`].

pub mod backoff;
mod config;

pub use config::OutboxConfig;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::{Capability, ProviderError, SendRequest};
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::{AccountLabels, Metrics, ProviderErrorLabels};
use crate::providers::Accounts;
use crate::store::{DeliveryResult, OutboxKind, OutboxTask, Store, StoreError};

/// What one step of the dispatcher did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    /// The provider accepted the message (or had it already: its echo was
    /// matched before the receipt was recorded).
    Sent {
        /// The message.
        message_id: String,
    },
    /// A retryable failure; the next attempt is scheduled.
    Retrying {
        /// The message.
        message_id: String,
        /// Provider calls so far.
        attempts: i64,
        /// When it will be tried again.
        next_attempt_at: DateTime<Utc>,
    },
    /// Given up: refused by the provider or out of attempts.
    Failed {
        /// The message.
        message_id: String,
        /// Why, as stored in `delivery.last_error`.
        error: String,
    },
    /// Another claimer finished this row first (its lease had ended).
    Superseded {
        /// The message.
        message_id: String,
    },
}

/// Delivers outbox rows; cheap to clone behind an `Arc`.
#[derive(Debug)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    accounts: Arc<Accounts>,
    config: OutboxConfig,
    metrics: Option<Arc<Metrics>>,
}

impl Dispatcher {
    /// A dispatcher over `store` sending through `accounts`' providers.
    pub fn new(store: Arc<dyn Store>, accounts: Arc<Accounts>, config: OutboxConfig) -> Self {
        Dispatcher {
            store,
            accounts,
            config,
            metrics: None,
        }
    }

    /// Records provider call latency and failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How long a claim holds a row: the configured lease, and never less
    /// than the slowest account's provider call plus a margin, so a live
    /// claimer's row is not taken over mid-call.
    fn lease(&self) -> Duration {
        let slowest = self
            .accounts
            .iter()
            .map(|a| a.config.request_timeout_secs)
            .max()
            .unwrap_or(0);
        Duration::from_secs(self.config.lease_secs.max(slowest + 10))
    }

    /// Claims one due row and delivers it: the step the run loop repeats and
    /// tests call directly.
    pub async fn try_execute_task(&self) -> Result<Outcome, StoreError> {
        let Some(task) = self.store.claim_outbox(Utc::now(), self.lease()).await? else {
            return Ok(Outcome::Idle);
        };
        self.deliver(task).await
    }

    /// Calls the provider for a claimed row and records the result.
    async fn deliver(&self, task: OutboxTask) -> Result<Outcome, StoreError> {
        let result = self.attempt(&task).await;
        let finished = self.record(&task, &result).await?;
        let message_id = task.message_id.clone();
        let Some(message) = finished else {
            return Ok(Outcome::Superseded { message_id });
        };
        if let Some(m) = &self.metrics {
            let outcome = match result {
                DeliveryResult::Accepted(_) | DeliveryResult::AlreadyDelivered => "sent",
                DeliveryResult::Retry { .. } => "retrying",
                DeliveryResult::Failed { .. } => "failed",
            };
            m.outbox_deliveries
                .get_or_create(&crate::metrics::OutcomeLabels {
                    outcome: outcome.to_string(),
                })
                .inc();
        }
        Ok(match result {
            DeliveryResult::Accepted(_) | DeliveryResult::AlreadyDelivered => {
                Outcome::Sent { message_id }
            }
            DeliveryResult::Retry {
                next_attempt_at, ..
            } => Outcome::Retrying {
                message_id,
                attempts: message.delivery.map_or(0, |d| d.attempts),
                next_attempt_at,
            },
            DeliveryResult::Failed { error, .. } => Outcome::Failed { message_id, error },
        })
    }

    /// Records a result, retrying a few times while the database is away:
    /// giving up here would leave an acknowledged send to be sent again
    /// when its lease ends.
    async fn record(
        &self,
        task: &OutboxTask,
        result: &DeliveryResult,
    ) -> Result<Option<chat_core::Message>, StoreError> {
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.store.finish_delivery(task, result).await {
                Err(StoreError::Database(e)) if tries < 6 => {
                    tracing::warn!(message_id = %task.message_id, error = %e, "cannot record delivery yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// One provider call for `task`, sorted into what to record.
    async fn attempt(&self, task: &OutboxTask) -> DeliveryResult {
        let refuse = |error: String| DeliveryResult::Failed {
            error,
            called: false,
        };
        if task.message_external_id.is_some() {
            // Its echo came back already: the provider has it.
            return DeliveryResult::AlreadyDelivered;
        }
        let Some(account) = self.accounts.get(&task.account) else {
            return refuse(format!("account {} is not configured", task.account));
        };
        let (needed, session_external_id) = if task.session_is_provisional() {
            if task.kind != OutboxKind::Outreach {
                return refuse("the session was never started at the provider".into());
            }
            (Capability::Outreach, None)
        } else {
            (Capability::Send, Some(task.session_external_id.clone()))
        };
        if !account.provider.capabilities().has(needed) {
            return refuse(format!(
                "provider {} does not support {}",
                account.provider.name(),
                needed.as_str()
            ));
        }
        let request = SendRequest {
            session_external_id,
            customer_id: task.payload.customer_id.clone(),
            kind: task.payload.kind,
            text: task.payload.text.clone(),
            media_url: task.payload.media_url.clone(),
            created_at: task.payload.created_at,
        };
        let budget = Duration::from_secs(account.config.request_timeout_secs.max(1));
        let started = Instant::now();
        let answer = match tokio::time::timeout(budget, account.provider.send(&request)).await {
            Ok(answer) => answer,
            Err(_) => Err(ProviderError::Timeout),
        };
        self.observe(&task.account, started, answer.as_ref().err());
        let attempts = task.attempts + 1;
        match answer {
            Ok(receipt) => DeliveryResult::Accepted(receipt),
            Err(e) if e.is_retryable() && attempts < i64::from(self.config.max_attempts) => {
                let delay = backoff::retry_delay(
                    u32::try_from(attempts).unwrap_or(u32::MAX),
                    Duration::from_millis(self.config.retry_base_ms),
                    Duration::from_secs(self.config.retry_max_secs),
                    e.retry_after(),
                );
                tracing::info!(message_id = %task.message_id, account = %task.account, attempts,
                    error = %e, retry_in_ms = delay.as_millis() as u64, "send failed; will retry");
                DeliveryResult::Retry {
                    error: e.to_string(),
                    next_attempt_at: Utc::now()
                        + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1)),
                }
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(message_id = %task.message_id, account = %task.account, attempts,
                    error = %e, "send failed; retry budget spent");
                DeliveryResult::Failed {
                    error: format!("gave up after {attempts} attempts: {e}"),
                    called: true,
                }
            }
            Err(e) => {
                tracing::warn!(message_id = %task.message_id, account = %task.account,
                    error = %e, "send refused");
                DeliveryResult::Failed {
                    error: e.to_string(),
                    called: true,
                }
            }
        }
    }

    fn observe(&self, account: &str, started: Instant, error: Option<&ProviderError>) {
        let Some(m) = &self.metrics else { return };
        m.provider_duration
            .get_or_create(&AccountLabels {
                account: account.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        if let Some(e) = error {
            m.provider_errors
                .get_or_create(&ProviderErrorLabels {
                    account: account.to_string(),
                    kind: e.kind().as_str().to_string(),
                })
                .inc();
        }
    }

    /// Delivers until `shutdown`, then lets sends in flight finish.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut wake = self.store.subscribe();
        let mut wake_open = true;
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let mut in_flight: JoinSet<()> = JoinSet::new();
        while !shutdown.is_cancelled() {
            // Claim while there is room; each send runs on its own.
            let mut failing = false;
            while let Ok(slot) = slots.clone().try_acquire_owned() {
                match self.store.claim_outbox(Utc::now(), self.lease()).await {
                    Ok(Some(task)) => {
                        let me = self.clone();
                        in_flight.spawn(async move {
                            let _slot = slot;
                            let id = task.message_id.clone();
                            if let Err(e) = me.deliver(task).await {
                                tracing::error!(message_id = %id, error = %e, "delivery could not be recorded");
                            }
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim outbox rows");
                        failing = true;
                        break;
                    }
                }
            }
            let pause = if failing {
                poll
            } else {
                self.pause(poll).await
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = wake.changed(), if wake_open => {
                    if changed.is_err() {
                        wake_open = false;
                    }
                }
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// How long to wait before looking again: until the next scheduled
    /// retry, at most `poll`. Rows due now but not claimable (queued behind
    /// a send in flight, or held by another replica) wait for a wake-up.
    async fn pause(&self, poll: Duration) -> Duration {
        if let (Some(m), Ok(depth)) = (&self.metrics, self.store.outbox_depth().await) {
            m.outbox_pending.set(depth);
        }
        match self.store.outbox_next_due().await {
            Ok(Some(at)) => {
                let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                if wait.is_zero() {
                    poll
                } else {
                    wait.min(poll)
                }
            }
            _ => poll,
        }
    }
}

/// Starts the dispatcher as a task of its own, stopped by `shutdown`.
pub fn spawn(
    store: Arc<dyn Store>,
    accounts: Arc<Accounts>,
    config: OutboxConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let dispatcher = Arc::new(Dispatcher::new(store, accounts, config).with_metrics(metrics));
    tokio::spawn(dispatcher.run(shutdown))
}
