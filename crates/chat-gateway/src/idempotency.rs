//! How long `Idempotency-Key` answers are kept, and the job that forgets
//! older ones. The request side lives in [`crate::api::idempotency`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;
use crate::store::Store;

/// The shortest retention the API promises (API.md: keys kept at least 24 h).
pub const MIN_RETENTION_HOURS: u64 = 24;

/// `[idempotency]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyConfig {
    /// Hours a key's answer is replayed; at least 24.
    pub retention_hours: u64,
    /// How often older keys are deleted, in seconds.
    pub cleanup_interval_secs: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            retention_hours: MIN_RETENTION_HOURS,
            cleanup_interval_secs: 3600,
        }
    }
}

impl IdempotencyConfig {
    /// Refuses a retention shorter than the API promises.
    pub fn validated(self) -> Result<Self, ConfigError> {
        let bad = |key: &str, problem: String| ConfigError {
            file: None,
            key: format!("idempotency.{key}"),
            problem,
        };
        if self.retention_hours < MIN_RETENTION_HOURS {
            return Err(bad(
                "retention_hours",
                format!("must be at least {MIN_RETENTION_HOURS} (the API promises a day)"),
            ));
        }
        if self.cleanup_interval_secs == 0 {
            return Err(bad("cleanup_interval_secs", "must be at least 1".into()));
        }
        Ok(self)
    }

    /// The retention as a duration.
    pub fn retention(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::try_from(self.retention_hours).unwrap_or(i64::MAX / 3_600_000))
    }
}

/// Deletes keys past the retention now and every `cleanup_interval_secs`
/// until `shutdown`.
pub fn spawn_cleanup(
    store: Arc<dyn Store>,
    config: IdempotencyConfig,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(config.cleanup_interval_secs);
        loop {
            match store
                .prune_idempotency_keys(Utc::now() - config.retention())
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "forgot expired idempotency keys"),
                Err(e) => tracing::warn!(error = %e, "cannot prune idempotency keys"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn retention_is_at_least_a_day() {
        assert_eq!(Config::parse("").unwrap().idempotency.retention_hours, 24);
        assert_eq!(
            Config::parse("[idempotency]\nretention_hours = 48\n")
                .unwrap()
                .idempotency
                .retention(),
            chrono::Duration::hours(48)
        );
        let e = Config::parse("[idempotency]\nretention_hours = 1\n").unwrap_err();
        assert_eq!(e.key, "idempotency.retention_hours");
    }
}
