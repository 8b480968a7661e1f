//! `[outbox]`: how sends are delivered and retried.

use serde::Deserialize;

use crate::config::ConfigError;

/// Delivery policy of the outbox dispatcher. Defaults suit production; tests
/// shrink the backoff so retries take milliseconds.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Run the dispatcher in this process (off for an API-only replica).
    pub enabled: bool,
    /// Provider calls per message before it is marked `failed`.
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; doubles per attempt.
    pub retry_base_ms: u64,
    /// Longest delay between two attempts, in seconds (a provider's
    /// `Retry-After` may ask for more and is honoured).
    pub retry_max_secs: u64,
    /// How often due rows are looked for besides the wake-up on commit.
    pub poll_interval_ms: u64,
    /// Sends in flight at once (each to a different session).
    pub concurrency: usize,
    /// How long a claim holds a row; a claimer that dies leaves the row to
    /// be retried after this. At least the longest provider call.
    pub lease_secs: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            enabled: true,
            max_attempts: 8,
            retry_base_ms: 1000,
            retry_max_secs: 300,
            poll_interval_ms: 1000,
            concurrency: 8,
            lease_secs: 60,
        }
    }
}

impl OutboxConfig {
    /// Refuses values that would stop delivery.
    pub fn validated(self) -> Result<Self, ConfigError> {
        let bad = |key: &str, problem: &str| ConfigError {
            file: None,
            key: format!("outbox.{key}"),
            problem: problem.to_string(),
        };
        if self.max_attempts == 0 {
            return Err(bad("max_attempts", "must be at least 1"));
        }
        if self.retry_base_ms == 0 {
            return Err(bad("retry_base_ms", "must be at least 1"));
        }
        if self.poll_interval_ms == 0 {
            return Err(bad("poll_interval_ms", "must be at least 1"));
        }
        if self.concurrency == 0 {
            return Err(bad("concurrency", "must be at least 1"));
        }
        if self.lease_secs < 5 {
            return Err(bad("lease_secs", "must be at least 5"));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn outbox_section_parses_and_refuses_values_that_stop_delivery() {
        let c = Config::parse("[outbox]\nmax_attempts = 3\nretry_base_ms = 20\n").unwrap();
        assert_eq!(c.outbox.max_attempts, 3);
        assert_eq!(c.outbox.retry_base_ms, 20);
        assert_eq!(c.outbox.lease_secs, 60);
        assert!(Config::parse("").unwrap().outbox.enabled);
        for (text, key) in [
            ("max_attempts = 0", "outbox.max_attempts"),
            ("concurrency = 0", "outbox.concurrency"),
            ("lease_secs = 1", "outbox.lease_secs"),
        ] {
            let e = Config::parse(&format!("[outbox]\n{text}\n")).unwrap_err();
            assert_eq!(e.key, key);
        }
        let e = Config::parse("[outbox]\nretries = 3\n").unwrap_err();
        assert!(e.problem.contains("unknown field"), "{e}");
    }
}
