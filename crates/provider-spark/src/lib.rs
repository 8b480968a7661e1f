//! The Spark agent API as a [`chat_core::Provider`].
//!
//! Spark delivers messages by long poll (`/message/query`) with acks and
//! versions, and takes sends, closes, restarts and transfers as plain POSTs.
//! Build a [`SparkProvider`] from a [`SparkConfig`] (a base URL and the
//! account's zone are enough) and hand it to the gateway.
//!
//! # Error policy
//!
//! Every failure is mapped into [`ProviderError`] in one function
//! (`error::provider_error`):
//!
//! - HTTP 401 or `Code` 401: [`ProviderError::Unauthorized`] (fix the
//!   configured headers).
//! - `Code` 1001 (no such or inactive session), 1002 (target agent offline),
//!   1003 (invalid parameter) and unknown codes, on a 200 or a 4xx:
//!   [`ProviderError::Rejected`] with the code and Spark's `Message`; another
//!   4xx without a readable code: `Rejected` with code `http_<status>`.
//! - `Code` 1004: [`ProviderError::CursorExpired`] (restart in live mode).
//! - 429: [`ProviderError::RateLimited`] with `Retry-After`.
//! - Our HTTP timeouts and a 408: [`ProviderError::Timeout`].
//! - 5xx and connection failures: [`ProviderError::Unavailable`].
//! - A 2xx whose body is not a JSON object, or a query answer without an
//!   `Operation` list: [`ProviderError::BadData`] (retryable).
//!
//! Bad items inside a readable answer never fail it: they are skipped with a
//! `tracing` warning naming the session and message, or kept with their raw
//! JSON (unknown `ContentType`, unknown `SessionType`). The readings of the
//! contract that the seed leaves open live in one module (`reading`).

mod client;
mod config;
mod error;
mod mapping;
mod reading;
pub mod settings;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::time::Tz;
use chat_core::{
    Capabilities, Capability, LiveBatch, LivePoll, MessageKind, Provider, ProviderError,
    SendLimits, SendReceipt, SendRequest,
};

pub use config::{ConfigError, SparkConfig};
pub use settings::SparkSettings;

use client::{QueryRequest, SparkClient};
use error::provider_error;

/// Most ids of skipped messages kept for acknowledging; past it, further ones
/// are not kept (Spark re-delivers them and they are skipped again later).
const MAX_PENDING_SKIPPED: usize = 1000;

/// One Spark account: implements [`Provider`] for the gateway.
#[derive(Debug)]
pub struct SparkProvider {
    client: SparkClient,
    timezone: Tz,
    poll_timeout: Duration,
    /// Ids of messages skipped as unreadable, acknowledged with the next
    /// queries (until a live one succeeds) so Spark stops re-delivering them.
    skipped: Mutex<BTreeSet<String>>,
}

impl SparkProvider {
    /// Checks the configuration and builds the account's one HTTP client.
    pub fn new(config: SparkConfig) -> Result<Self, ConfigError> {
        Ok(SparkProvider {
            client: SparkClient::new(&config)?,
            timezone: config.timezone,
            poll_timeout: config.poll_timeout,
            skipped: Mutex::new(BTreeSet::new()),
        })
    }

    /// A provider for `base_url` with default timeouts and no extra headers,
    /// as a simulator or a test wants it.
    pub fn for_base_url(base_url: impl Into<String>, timezone: Tz) -> Result<Self, ConfigError> {
        Self::new(SparkConfig::new(base_url, timezone))
    }

    /// The pending skipped ids, whatever a panicking holder left behind.
    fn skipped(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.skipped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Provider for SparkProvider {
    fn name(&self) -> &'static str {
        "spark"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[
            Capability::Live,
            Capability::History,
            Capability::Send,
            Capability::Outreach,
            Capability::Close,
            Capability::Restart,
            Capability::Transfer,
        ])
    }

    fn send_limits(&self) -> Option<SendLimits> {
        Some(SendLimits {
            kinds: vec![MessageKind::Text, MessageKind::Image],
            max_text_chars: Some(reading::MAX_TEXT_CHARS),
        })
    }

    fn live_hold(&self) -> Duration {
        self.poll_timeout
    }

    async fn poll_live(&self, poll: &LivePoll) -> Result<LiveBatch, ProviderError> {
        let asked = reading::requested_version(poll.version.as_deref());
        let pending: Vec<String> = self.skipped().iter().cloned().collect();
        let mut acks: Vec<&str> = poll.acks.iter().map(String::as_str).collect();
        for id in &pending {
            if !acks.contains(&id.as_str()) {
                acks.push(id);
            }
        }
        let acks = acks.join(reading::ACK_SEPARATOR);
        let request = QueryRequest {
            last_version: asked.unwrap_or(""),
            acks: &acks,
        };

        let answer = self.client.query(&request).await.map_err(provider_error)?;
        let mut mapped =
            mapping::map_query(&answer, self.timezone, asked).map_err(provider_error)?;
        chat_core::links::absolutize(&mut mapped.batch.changes, self.client.base());

        let mut skipped = self.skipped();
        if asked.is_none() {
            // Only a live query is sure to have applied its acks.
            for id in &pending {
                skipped.remove(id);
            }
        }
        for id in mapped.skipped_ids {
            if skipped.len() >= MAX_PENDING_SKIPPED {
                break;
            }
            skipped.insert(id);
        }
        Ok(mapped.batch)
    }

    async fn send(&self, req: &SendRequest) -> Result<SendReceipt, ProviderError> {
        let body = mapping::send_body(req, self.timezone).map_err(provider_error)?;
        let answer = self.client.send(&body).await.map_err(provider_error)?;
        Ok(mapping::receipt(&answer, req))
    }

    async fn close(&self, session_external_id: &str) -> Result<(), ProviderError> {
        self.client
            .close(session_external_id)
            .await
            .map_err(provider_error)
    }

    async fn restart(&self, session_external_id: &str) -> Result<(), ProviderError> {
        self.client
            .restart(session_external_id)
            .await
            .map_err(provider_error)
    }

    async fn transfer(
        &self,
        session_external_id: &str,
        agent_id: &str,
    ) -> Result<(), ProviderError> {
        self.client
            .transfer(session_external_id, agent_id)
            .await
            .map_err(provider_error)
    }
}
