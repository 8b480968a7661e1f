//! Prometheus metrics, served as text on `/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Method.
    pub method: String,
    /// Route template (never the raw path, which would explode cardinality).
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Method.
    pub method: String,
    /// Route template.
    pub route: String,
}

/// Labels naming an account.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    /// Account name.
    pub account: String,
}

/// Labels of a provider error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderErrorLabels {
    /// Account name.
    pub account: String,
    /// Error kind (`timeout`, `unavailable`…).
    pub kind: String,
}

/// Labels of a worker state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncStateLabels {
    /// Account name.
    pub account: String,
    /// `idle`, `running`, `backoff` or `error`.
    pub state: String,
}

/// Labels of a finished delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `sent`, `retrying` or `failed`.
    pub outcome: String,
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Requests served.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Request latency.
    pub http_duration: Family<RouteLabels, Histogram>,
    /// Messages stored for the first time, per account.
    pub messages_ingested: Family<AccountLabels, Counter>,
    /// Seconds the stored data trails the provider, per account.
    pub sync_lag: Family<AccountLabels, Gauge>,
    /// Provider call latency, per account.
    pub provider_duration: Family<AccountLabels, Histogram>,
    /// Provider call failures by kind.
    pub provider_errors: Family<ProviderErrorLabels, Counter>,
    /// Long polls and SSE streams currently waiting on the feed.
    pub feed_waiters: Gauge,
    /// 1 for each account's current worker state, 0 for the others.
    pub sync_state: Family<SyncStateLabels, Gauge>,
    /// Outbox delivery attempts by how they ended.
    pub outbox_deliveries: Family<OutcomeLabels, Counter>,
    /// Sends waiting in the outbox.
    pub outbox_pending: Gauge,
    /// Webhook deliveries (see [`crate::webhooks::metrics`]).
    pub webhooks: crate::webhooks::metrics::WebhookMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 12))
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("chatgw");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let messages_ingested = Family::<AccountLabels, Counter>::default();
        let sync_lag = Family::<AccountLabels, Gauge>::default();
        let provider_duration = Family::<AccountLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let provider_errors = Family::<ProviderErrorLabels, Counter>::default();
        let feed_waiters = Gauge::default();
        let sync_state = Family::<SyncStateLabels, Gauge>::default();
        r.register(
            "http_requests",
            "HTTP requests served",
            http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_duration.clone(),
        );
        r.register(
            "messages_ingested",
            "Messages stored for the first time",
            messages_ingested.clone(),
        );
        r.register(
            "sync_lag_seconds",
            "How far stored data trails the provider",
            sync_lag.clone(),
        );
        r.register(
            "provider_call_duration_seconds",
            "Provider call latency",
            provider_duration.clone(),
        );
        r.register(
            "provider_errors",
            "Provider call failures by kind",
            provider_errors.clone(),
        );
        r.register(
            "feed_waiters",
            "Long polls and SSE streams waiting on the event feed",
            feed_waiters.clone(),
        );
        let outbox_deliveries = Family::<OutcomeLabels, Counter>::default();
        let outbox_pending = Gauge::default();
        r.register(
            "outbox_deliveries",
            "Outbox delivery attempts by outcome",
            outbox_deliveries.clone(),
        );
        r.register(
            "outbox_pending",
            "Sends waiting in the outbox",
            outbox_pending.clone(),
        );
        let webhooks = crate::webhooks::metrics::WebhookMetrics::register(&mut r);
        Metrics {
            registry: Mutex::new(r),
            http_requests,
            http_duration,
            messages_ingested,
            sync_lag,
            provider_duration,
            provider_errors,
            feed_waiters,
            sync_state,
            outbox_deliveries,
            outbox_pending,
            webhooks,
        }
    }

    /// Marks `state` as the account's current worker state.
    pub fn set_sync_state(&self, account: &str, state: &str) {
        for s in ["idle", "running", "backoff", "error"] {
            self.sync_state
                .get_or_create(&SyncStateLabels {
                    account: account.to_string(),
                    state: s.to_string(),
                })
                .set(i64::from(s == state));
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = match self.registry.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }
}
