//! Webhook delivery metrics, registered into the gateway's registry.
//!
//! - `chatgw_webhook_deliveries_total{outcome}`: attempts by what followed:
//!   `succeeded`, `retrying` (failed, retry scheduled), `failed` (failed,
//!   retries spent), `disabled` (410 Gone disabled the endpoint);
//! - `chatgw_webhook_delivery_failures_total{kind}`: failed attempts by
//!   cause: `http_status`, `timeout`, `connect`, `refused_target`, `other`;
//! - `chatgw_webhook_delivery_duration_seconds`: how long endpoints took.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What followed the attempt.
    pub outcome: &'static str,
}

/// Labels of a failed attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Why it failed.
    pub kind: &'static str,
}

/// The webhook metrics.
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    /// Attempts by outcome.
    pub deliveries: Family<OutcomeLabels, Counter>,
    /// Failed attempts by kind.
    pub failures: Family<FailureLabels, Counter>,
    /// Endpoint latency.
    pub duration: Histogram,
}

impl WebhookMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = WebhookMetrics {
            deliveries: Family::default(),
            failures: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.5, 10)),
        };
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome",
            m.deliveries.clone(),
        );
        registry.register(
            "webhook_delivery_failures",
            "Failed webhook delivery attempts by kind",
            m.failures.clone(),
        );
        registry.register(
            "webhook_delivery_duration_seconds",
            "How long webhook endpoints took to answer",
            m.duration.clone(),
        );
        m
    }
}
