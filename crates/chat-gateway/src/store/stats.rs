//! `GET /v1/stats`: volumes and response times per calendar hour or day in
//! a time zone, computed in SQL on both backends.
//!
//! **Buckets across DST.** A calendar day in `tz` lasts 23, 24 or 25 hours,
//! so buckets cannot be fixed-width in UTC. The UTC offset, though, is
//! constant between two transitions, and a range holds only a few of them.
//! So the range is cut in Rust (chrono-tz) into segments of constant
//! offset, and SQL turns each timestamp into its local hour or day with one
//! small `CASE` over those segments plus integer arithmetic:
//! `local = x + offset(x)`; an hour bucket starts at
//! `floor(local / 1 h) * 1 h - offset(x)` (an instant, as offsets change by
//! whole hours in the hour buckets concern), and a day bucket is the local
//! day number `floor(local / 1 d)`, which Rust maps back to the instant of
//! that local midnight. Every row is read by an index range on its
//! timestamp, grouped in the database, and only the per-bucket figures come
//! back: nothing is loaded row by row.
//!
//! **Percentiles.** Nearest rank (the ⌈0.5·n⌉-th and ⌈0.9·n⌉-th smallest),
//! with `ROW_NUMBER()` and `COUNT(*)` windows over each bucket and group.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use sqlx::Row;

use super::rows::from_micros;
use super::sql::{Bind, SqlBuilder, SqlStore};
use super::{AccountScope, StoreError, StoreResult};

/// Most buckets one request may span.
pub const MAX_BUCKETS: usize = 1000;

const HOUR_MICROS: i64 = 3_600_000_000;
const DAY_MICROS: i64 = 86_400_000_000;

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Calendar hours in the time zone.
    Hour,
    /// Calendar days in the time zone.
    Day,
}

/// What each row is split by, besides the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The account only.
    Account,
    /// The agent the figures belong to (see API.md).
    Agent,
    /// The session's channel.
    Channel,
}

/// A validated stats request.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
    /// Bucket width.
    pub interval: Interval,
    /// Whose calendar the buckets follow.
    pub tz: Tz,
    /// Only this account.
    pub account: Option<String>,
    /// Accounts the caller may see.
    pub scope: AccountScope,
    /// Split of each bucket.
    pub group_by: GroupBy,
}

/// Count, median and p90 of a set of durations, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// How many values.
    pub count: i64,
    /// Nearest-rank median; `None` without values.
    pub median: Option<f64>,
    /// Nearest-rank 90th percentile; `None` without values.
    pub p90: Option<f64>,
}

/// One row of the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsRow {
    /// Start of the bucket (a local hour or midnight, as an instant).
    pub bucket: DateTime<Utc>,
    /// Account.
    pub account: String,
    /// Agent id or channel for those groupings; `None` otherwise or when
    /// the session has none.
    pub group: Option<String>,
    /// Sessions created in the bucket.
    pub sessions_opened: i64,
    /// Sessions closed in the bucket.
    pub sessions_closed: i64,
    /// Customer messages (kind other than `event`).
    pub messages_inbound: i64,
    /// Agent, bot and system messages (kind other than `event`).
    pub messages_outbound: i64,
    /// First response times of sessions first answered in the bucket.
    pub first_response_secs: Percentiles,
    /// Durations of sessions closed in the bucket.
    pub resolution_secs: Percentiles,
}

/// Stats reads; a supertrait of [`Store`](super::Store).
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// The figures of `query`, ordered by bucket then group, empty buckets
    /// left out; [`StoreError::Invalid`] for more than [`MAX_BUCKETS`].
    async fn stats(&self, query: &StatsQuery) -> StoreResult<Vec<StatsRow>>;
}

/// The UTC offset of `tz` at `t`, in microseconds.
fn offset_at(tz: Tz, t: i64) -> i64 {
    let utc = DateTime::from_timestamp_micros(t).unwrap_or_default();
    i64::from(
        tz.offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc(),
    ) * 1_000_000
}

/// The offsets in force over `[from, to)`: `(start, offset)` pairs, the
/// first starting at `from`, each holding until the next. Transitions are
/// found by a scan in 15-minute steps refined by bisection to the second.
fn offset_segments(tz: Tz, from: i64, to: i64) -> Vec<(i64, i64)> {
    const STEP: i64 = 15 * 60 * 1_000_000;
    let mut out = vec![(from, offset_at(tz, from))];
    let mut prev = from;
    while prev < to {
        let next = (prev + STEP).min(to);
        let current = out.last().map(|s| s.1).unwrap_or_default();
        let off = offset_at(tz, next);
        if off != current {
            // First second with the new offset in (prev, next].
            let (mut lo, mut hi) = (prev, next);
            while hi - lo > 1_000_000 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push((hi, off));
        }
        prev = next;
    }
    out
}

/// The instant local `date` begins in `tz` (after a gap at midnight, the
/// first instant that exists; of two midnights, the earlier).
pub fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut local = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..(4 * 24) {
        match tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => return t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
            chrono::LocalResult::None => local += Duration::minutes(15),
        }
    }
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The start of the bucket holding `t`.
pub fn bucket_of(t: DateTime<Utc>, interval: Interval, tz: Tz) -> DateTime<Utc> {
    let local = t.with_timezone(&tz);
    match interval {
        Interval::Hour => {
            let into = i64::from(local.minute()) * 60_000_000
                + i64::from(local.second()) * 1_000_000
                + i64::from(local.nanosecond() / 1000);
            from_micros(t.timestamp_micros() - into).unwrap_or(t)
        }
        Interval::Day => day_start(tz, local.date_naive()),
    }
}

/// How many buckets `[from, to)` spans; [`StoreError::Invalid`] past
/// [`MAX_BUCKETS`].
pub fn bucket_count(query: &StatsQuery) -> StoreResult<usize> {
    let too_many = || {
        StoreError::Invalid(format!(
            "the range spans more than {MAX_BUCKETS} buckets; narrow `from`/`to` or use a longer \
             `interval`"
        ))
    };
    if query.to <= query.from {
        return Ok(0);
    }
    let n = match query.interval {
        Interval::Hour => {
            let start = bucket_of(query.from, Interval::Hour, query.tz);
            let span = query.to.timestamp_micros() - start.timestamp_micros();
            usize::try_from((span + HOUR_MICROS - 1) / HOUR_MICROS).map_err(|_| too_many())?
        }
        Interval::Day => {
            let first = query.from.with_timezone(&query.tz).date_naive();
            let last = (query.to - Duration::microseconds(1))
                .with_timezone(&query.tz)
                .date_naive();
            usize::try_from((last - first).num_days() + 1).map_err(|_| too_many())?
        }
    };
    if n > MAX_BUCKETS {
        return Err(too_many());
    }
    Ok(n)
}

/// SQL for the bucket of timestamp column `x`: a UTC instant (hours) or a
/// local day number (days). Only integers computed here are inlined.
fn bucket_sql(x: &str, query: &StatsQuery) -> String {
    let segments = offset_segments(
        query.tz,
        query.from.timestamp_micros(),
        query.to.timestamp_micros(),
    );
    // Parenthesised: a negative offset after `-` must not read as `--`.
    let off = if segments.len() == 1 {
        format!("({})", segments[0].1)
    } else {
        let mut case = String::from("(CASE");
        for w in segments.windows(2) {
            case.push_str(&format!(" WHEN {x} < ({}) THEN ({})", w[1].0, w[0].1));
        }
        let last = segments.last().map(|s| s.1).unwrap_or_default();
        case.push_str(&format!(" ELSE ({last}) END)"));
        case
    };
    match query.interval {
        Interval::Hour => {
            format!("((({x} + {off}) / {HOUR_MICROS}) * {HOUR_MICROS} - {off})")
        }
        Interval::Day => format!("(({x} + {off}) / {DAY_MICROS})"),
    }
}

/// The bucket start for a key [`bucket_sql`] produced.
fn bucket_from_key(key: i64, query: &StatsQuery) -> StoreResult<DateTime<Utc>> {
    match query.interval {
        Interval::Hour => from_micros(key),
        Interval::Day => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            Ok(day_start(query.tz, epoch + Duration::days(key)))
        }
    }
}

/// `AND {col} >= from AND {col} < to`, the account filters on `acc`.
fn push_range(sql: &mut SqlBuilder, col: &str, acc: &str, query: &StatsQuery) {
    let f = sql.bind(Bind::Int(query.from.timestamp_micros()));
    let t = sql.bind(Bind::Int(query.to.timestamp_micros()));
    sql.text
        .push_str(&format!(" AND {col} >= {f} AND {col} < {t}"));
    if let Some(a) = &query.account {
        let p = sql.bind(Bind::Text(a.clone()));
        sql.text.push_str(&format!(" AND {acc} = {p}"));
    }
    if let AccountScope::Only(names) = &query.scope {
        if names.is_empty() {
            sql.text.push_str(" AND 1 = 0");
        } else {
            let ps: Vec<String> = names
                .iter()
                .map(|n| sql.bind(Bind::Text(n.clone())))
                .collect();
            sql.text
                .push_str(&format!(" AND {acc} IN ({})", ps.join(", ")));
        }
    }
}

/// The grouping column of a session-based figure.
fn session_group(query: &StatsQuery) -> &'static str {
    match query.group_by {
        GroupBy::Account => "NULL",
        GroupBy::Agent => "s.agent_external_id",
        GroupBy::Channel => "s.channel",
    }
}

type Key = (DateTime<Utc>, String, Option<String>);

impl SqlStore {
    /// Session counts by bucket of `col` (`created_at` or `closed_at`).
    async fn count_sessions(&self, col: &str, query: &StatsQuery) -> StoreResult<Vec<(Key, i64)>> {
        let group = session_group(query);
        let bk = bucket_sql(&format!("s.{col}"), query);
        let mut sql = SqlBuilder::new(format!(
            "SELECT {bk} AS bk, s.account AS account, {group} AS grp, COUNT(*) AS n \
             FROM sessions s WHERE 1 = 1"
        ));
        push_range(&mut sql, &format!("s.{col}"), "s.account", query);
        sql.text.push_str(" GROUP BY 1, 2, 3");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    (
                        bucket_from_key(r.try_get("bk")?, query)?,
                        r.try_get("account")?,
                        r.try_get("grp")?,
                    ),
                    r.try_get("n")?,
                ))
            })
            .collect()
    }

    /// Nearest-rank figures of `value` over sessions by bucket of `col`.
    async fn session_percentiles(
        &self,
        col: &str,
        value: &str,
        query: &StatsQuery,
    ) -> StoreResult<Vec<(Key, Percentiles)>> {
        let group = session_group(query);
        let bk = bucket_sql(&format!("s.{col}"), query);
        let mut sql = SqlBuilder::new(format!(
            "WITH v AS (SELECT {bk} AS bk, s.account AS account, {group} AS grp, \
             {value} AS val FROM sessions s WHERE 1 = 1"
        ));
        push_range(&mut sql, &format!("s.{col}"), "s.account", query);
        sql.text.push_str(
            "), r AS (SELECT bk, account, grp, val, \
             ROW_NUMBER() OVER (PARTITION BY bk, account, grp ORDER BY val) AS rn, \
             COUNT(*) OVER (PARTITION BY bk, account, grp) AS n FROM v) \
             SELECT bk, account, grp, MAX(n) AS n, \
             MAX(CASE WHEN rn = (n + 1) / 2 THEN val END) AS median, \
             MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN val END) AS p90 \
             FROM r GROUP BY bk, account, grp",
        );
        let rows = sql.query().fetch_all(&self.pool).await?;
        let secs = |v: Option<i64>| v.map(|m| m as f64 / 1e6);
        rows.iter()
            .map(|r| {
                Ok((
                    (
                        bucket_from_key(r.try_get("bk")?, query)?,
                        r.try_get("account")?,
                        r.try_get("grp")?,
                    ),
                    Percentiles {
                        count: r.try_get("n")?,
                        median: secs(r.try_get("median")?),
                        p90: secs(r.try_get("p90")?),
                    },
                ))
            })
            .collect()
    }

    /// Message counts by bucket of `sent_at`, as (inbound, outbound).
    async fn count_messages(&self, query: &StatsQuery) -> StoreResult<Vec<(Key, i64, i64)>> {
        let (group, join) = match query.group_by {
            GroupBy::Account => ("NULL", ""),
            GroupBy::Agent => (
                "CASE WHEN m.direction = 'outbound' AND m.sender_role = 'agent' \
                 AND m.sender_external_id IS NOT NULL THEN m.sender_external_id \
                 ELSE s.agent_external_id END",
                " JOIN sessions s ON s.id = m.session_id",
            ),
            GroupBy::Channel => ("s.channel", " JOIN sessions s ON s.id = m.session_id"),
        };
        let bk = bucket_sql("m.sent_at", query);
        let mut sql = SqlBuilder::new(format!(
            "SELECT {bk} AS bk, m.account AS account, {group} AS grp, \
             SUM(CASE WHEN m.direction = 'inbound' THEN 1 ELSE 0 END) AS inbound, \
             SUM(CASE WHEN m.direction = 'outbound' THEN 1 ELSE 0 END) AS outbound \
             FROM messages m{join} WHERE m.kind <> 'event'"
        ));
        push_range(&mut sql, "m.sent_at", "m.account", query);
        sql.text.push_str(" GROUP BY 1, 2, 3");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    (
                        bucket_from_key(r.try_get("bk")?, query)?,
                        r.try_get("account")?,
                        r.try_get("grp")?,
                    ),
                    r.try_get::<Option<i64>, _>("inbound")?.unwrap_or(0),
                    r.try_get::<Option<i64>, _>("outbound")?.unwrap_or(0),
                ))
            })
            .collect()
    }
}

#[async_trait]
impl StatsStore for SqlStore {
    async fn stats(&self, query: &StatsQuery) -> StoreResult<Vec<StatsRow>> {
        if bucket_count(query)? == 0 {
            return Ok(Vec::new());
        }
        let mut rows: BTreeMap<Key, StatsRow> = BTreeMap::new();
        fn row(rows: &mut BTreeMap<Key, StatsRow>, key: Key) -> &mut StatsRow {
            rows.entry(key.clone()).or_insert_with(|| StatsRow {
                bucket: key.0,
                account: key.1,
                group: key.2,
                ..StatsRow::default()
            })
        }
        for (key, n) in self.count_sessions("created_at", query).await? {
            row(&mut rows, key).sessions_opened += n;
        }
        for (key, n) in self.count_sessions("closed_at", query).await? {
            row(&mut rows, key).sessions_closed += n;
        }
        for (key, inbound, outbound) in self.count_messages(query).await? {
            let r = row(&mut rows, key);
            r.messages_inbound += inbound;
            r.messages_outbound += outbound;
        }
        for (key, p) in self
            .session_percentiles(
                "first_response_at",
                "s.first_response_at - COALESCE(s.assignment_started_at, s.created_at)",
                query,
            )
            .await?
        {
            row(&mut rows, key).first_response_secs = p;
        }
        for (key, p) in self
            .session_percentiles("closed_at", "s.closed_at - s.created_at", query)
            .await?
        {
            row(&mut rows, key).resolution_secs = p;
        }
        Ok(rows.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn query(from: &str, to: &str, interval: Interval, tz: Tz) -> StatsQuery {
        StatsQuery {
            from: at(from),
            to: at(to),
            interval,
            tz,
            account: None,
            scope: AccountScope::All,
            group_by: GroupBy::Account,
        }
    }

    #[test]
    fn days_across_dst_last_23_and_25_hours() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let spring = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let next = spring.succ_opt().unwrap();
        assert_eq!(day_start(berlin, spring), at("2026-03-28T23:00:00Z"));
        assert_eq!(day_start(berlin, next), at("2026-03-29T22:00:00Z"));
        let autumn = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        assert_eq!(
            day_start(berlin, autumn.succ_opt().unwrap()) - day_start(berlin, autumn),
            Duration::hours(25)
        );
        let segs = offset_segments(
            berlin,
            at("2026-03-28T00:00:00Z").timestamp_micros(),
            at("2026-03-30T00:00:00Z").timestamp_micros(),
        );
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].0, at("2026-03-29T01:00:00Z").timestamp_micros());
        assert_eq!(segs[1].1, 2 * HOUR_MICROS);
    }

    #[test]
    fn buckets_start_at_the_local_hour_or_day_and_are_capped() {
        let sh: Tz = "Asia/Shanghai".parse().unwrap();
        assert_eq!(
            bucket_of(at("2026-12-05T17:30:00Z"), Interval::Day, sh),
            at("2026-12-05T16:00:00Z")
        );
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            bucket_of(at("2026-12-05T10:10:00Z"), Interval::Hour, kolkata),
            at("2026-12-05T09:30:00Z")
        );
        let q = query(
            "2026-01-01T00:00:00Z",
            "2026-02-11T16:00:00Z",
            Interval::Hour,
            Tz::UTC,
        );
        assert_eq!(bucket_count(&q).unwrap(), 1000);
        let q = query(
            "2026-01-01T00:00:00Z",
            "2026-02-11T16:00:01Z",
            Interval::Hour,
            Tz::UTC,
        );
        assert!(bucket_count(&q).is_err());
        let q = query(
            "2026-01-01T12:00:00Z",
            "2026-01-03T00:00:00Z",
            Interval::Day,
            sh,
        );
        // Local 20:00 on Jan 1 to 08:00 on Jan 3: three local days.
        assert_eq!(bucket_count(&q).unwrap(), 3);
    }
}
