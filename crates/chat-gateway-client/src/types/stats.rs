//! Rows of `GET /v1/stats`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A distribution of durations in seconds (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// Sessions counted.
    pub count: u64,
    /// Median; null when `count` is 0.
    #[serde(default)]
    pub median: Option<f64>,
    /// 90th percentile; null when `count` is 0.
    #[serde(default)]
    pub p90: Option<f64>,
}

/// One bucket of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsRow {
    /// Start of the hour or day (in the query's `tz`), in UTC.
    pub bucket: DateTime<Utc>,
    /// The account.
    pub account: String,
    /// With `group_by=agent`: the agent (null for none).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// With `group_by=channel`: the channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// Sessions created in the bucket.
    pub sessions_opened: u64,
    /// Sessions closed in the bucket.
    pub sessions_closed: u64,
    /// Customer messages.
    pub messages_inbound: u64,
    /// Agent, bot and system messages.
    pub messages_outbound: u64,
    /// Time to the first agent answer.
    pub first_response_secs: Durations,
    /// Time from start to close.
    pub resolution_secs: Durations,
}
