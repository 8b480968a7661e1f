//! Filters of the list endpoints, turned into query strings.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::types::{Direction, MessageKind, Provider, SessionStatus};

/// Sort order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

impl Order {
    fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// A query string under construction.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(pub(crate) Vec<(&'static str, String)>);

impl Query {
    pub(crate) fn opt(&mut self, name: &'static str, v: Option<impl ToString>) -> &mut Self {
        if let Some(v) = v {
            self.0.push((name, v.to_string()));
        }
        self
    }

    pub(crate) fn time(&mut self, name: &'static str, v: Option<DateTime<Utc>>) -> &mut Self {
        self.opt(
            name,
            v.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        )
    }

    pub(crate) fn raw(&mut self, include_raw: bool) -> &mut Self {
        if include_raw {
            self.0.push(("include", "raw".into()));
        }
        self
    }
}

/// Filters of `GET /v1/sessions`; `Default` lists everything the key sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this account.
    pub account: Option<String>,
    /// Only this provider.
    pub provider: Option<Provider>,
    /// Only open or only closed sessions.
    pub status: Option<SessionStatus>,
    /// Only this customer (provider id).
    pub customer_id: Option<String>,
    /// Only this agent (provider id).
    pub agent_id: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only the session with this provider id.
    pub external_id: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Changed at or after.
    pub updated_after: Option<DateTime<Utc>>,
    /// By `created_at`; newest first when absent.
    pub order: Option<Order>,
    /// Page size (1..=500); the stream still yields every item.
    pub limit: Option<u32>,
    /// Add the provider's original JSON as `raw`.
    pub include_raw: bool,
}

impl SessionFilter {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::default();
        q.opt("account", self.account.as_ref())
            .opt("provider", self.provider.as_ref())
            .opt("status", self.status.as_ref())
            .opt("customer_id", self.customer_id.as_ref())
            .opt("agent_id", self.agent_id.as_ref())
            .opt("channel", self.channel.as_ref())
            .opt("external_id", self.external_id.as_ref())
            .time("created_after", self.created_after)
            .time("created_before", self.created_before)
            .time("updated_after", self.updated_after)
            .opt("order", self.order.map(Order::as_str))
            .opt("limit", self.limit)
            .raw(self.include_raw);
        q
    }
}

/// Filters of `GET /v1/messages` (and, for `order`, `limit` and
/// `include_raw`, of a session's messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this account.
    pub account: Option<String>,
    /// Only this provider.
    pub provider: Option<Provider>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this customer's sessions.
    pub customer_id: Option<String>,
    /// Only this kind.
    pub kind: Option<MessageKind>,
    /// Only inbound or only outbound.
    pub direction: Option<Direction>,
    /// Only the message with this provider id.
    pub external_id: Option<String>,
    /// Sent at or after.
    pub sent_after: Option<DateTime<Utc>>,
    /// Sent before.
    pub sent_before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of `text`.
    pub q: Option<String>,
    /// By `sent_at`; oldest first when absent.
    pub order: Option<Order>,
    /// Page size (1..=500); the stream still yields every item.
    pub limit: Option<u32>,
    /// Add the provider's original JSON as `raw`.
    pub include_raw: bool,
}

impl MessageFilter {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::default();
        q.opt("account", self.account.as_ref())
            .opt("provider", self.provider.as_ref())
            .opt("session_id", self.session_id.as_ref())
            .opt("customer_id", self.customer_id.as_ref())
            .opt("kind", self.kind.as_ref())
            .opt("direction", self.direction.as_ref())
            .opt("external_id", self.external_id.as_ref())
            .time("sent_after", self.sent_after)
            .time("sent_before", self.sent_before)
            .opt("q", self.q.as_ref())
            .opt("order", self.order.map(Order::as_str))
            .opt("limit", self.limit)
            .raw(self.include_raw);
        q
    }

    /// The filters a session's message list takes.
    pub(crate) fn session_query(&self) -> Query {
        let mut q = Query::default();
        q.opt("order", self.order.map(Order::as_str))
            .opt("limit", self.limit)
            .raw(self.include_raw);
        q
    }
}

/// Filters of `GET /v1/customers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerFilter {
    /// Only this account.
    pub account: Option<String>,
    /// Only this provider.
    pub provider: Option<Provider>,
    /// Case-insensitive substring of name or id.
    pub q: Option<String>,
    /// Page size (1..=500).
    pub limit: Option<u32>,
}

impl CustomerFilter {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::default();
        q.opt("account", self.account.as_ref())
            .opt("provider", self.provider.as_ref())
            .opt("q", self.q.as_ref())
            .opt("limit", self.limit);
        q
    }
}

/// Bucket size of `GET /v1/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Calendar hours.
    Hour,
    /// Calendar days.
    Day,
}

/// Grouping of `GET /v1/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One row per account and bucket.
    Account,
    /// Per agent.
    Agent,
    /// Per channel.
    Channel,
}

/// Parameters of `GET /v1/stats`; `Default` is the gateway's default
/// (the last 7 days by day in UTC, per account).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsQuery {
    /// Inclusive start.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end.
    pub to: Option<DateTime<Utc>>,
    /// Hours or days.
    pub interval: Option<Interval>,
    /// IANA time zone of the buckets (`Asia/Shanghai`).
    pub tz: Option<String>,
    /// Only this account.
    pub account: Option<String>,
    /// Grouping.
    pub group_by: Option<GroupBy>,
}

impl StatsQuery {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::default();
        q.time("from", self.from)
            .time("to", self.to)
            .opt(
                "interval",
                self.interval.map(|i| match i {
                    Interval::Hour => "hour",
                    Interval::Day => "day",
                }),
            )
            .opt("tz", self.tz.as_ref())
            .opt("account", self.account.as_ref())
            .opt(
                "group_by",
                self.group_by.map(|g| match g {
                    GroupBy::Account => "account",
                    GroupBy::Agent => "agent",
                    GroupBy::Channel => "channel",
                }),
            );
        q
    }
}

/// Where and what the event feed reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsQuery {
    /// Resume after this `seq` (`"0"`: from the oldest retained event);
    /// absent: only events from now on.
    pub after: Option<String>,
    /// Only these types (`message.created`, …).
    pub types: Vec<String>,
    /// Only this account.
    pub account: Option<String>,
    /// How long one poll is held when nothing is new (0..=60 s; gateway
    /// default 25).
    pub wait_secs: Option<u32>,
    /// Events per answer (1..=1000).
    pub limit: Option<u32>,
}

impl EventsQuery {
    /// The feed from its oldest retained event.
    pub fn from_start() -> Self {
        EventsQuery {
            after: Some("0".into()),
            ..EventsQuery::default()
        }
    }

    pub(crate) fn query(&self, after: Option<&str>) -> Query {
        let mut q = Query::default();
        q.opt("after", after)
            .opt(
                "types",
                (!self.types.is_empty()).then(|| self.types.join(",")),
            )
            .opt("account", self.account.as_ref())
            .opt("wait", self.wait_secs)
            .opt("limit", self.limit);
        q
    }
}
