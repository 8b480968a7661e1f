//! `GET /v1/stats`: session and message volumes, first response and
//! resolution times per calendar hour or day in a time zone, so reporting
//! tools stop re-deriving them from raw messages. Scope `read`; only the
//! accounts the key may see are counted.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use chat_core::time::to_rfc3339;
use chrono::{Duration, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{parse_time, ApiQuery};
use super::AppState;
use crate::store::stats::{
    bucket_count, day_start, GroupBy, Interval, Percentiles, StatsQuery, StatsRow,
};

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/v1/stats", get(stats))
}

/// `GET /v1/stats` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
    tz: Option<String>,
    account: Option<String>,
    group_by: Option<String>,
}

/// Validates the parameters and fills in the defaults (API.md Stats).
fn query(p: StatsParams, caller: &Caller) -> Result<StatsQuery, ApiError> {
    let interval = match p.interval.as_deref() {
        None | Some("day") => Interval::Day,
        Some("hour") => Interval::Hour,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "`interval` must be `hour` or `day`.",
            ))
        }
    };
    let group_by = match p.group_by.as_deref() {
        None | Some("account") => GroupBy::Account,
        Some("agent") => GroupBy::Agent,
        Some("channel") => GroupBy::Channel,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "`group_by` must be `account`, `agent` or `channel`.",
            ))
        }
    };
    let tz: Tz = match p.tz.as_deref() {
        None => Tz::UTC,
        Some(name) => name.parse().map_err(|_| {
            ApiError::invalid_request(format!(
                "`tz` must be an IANA time zone such as `Asia/Shanghai`, not `{name}`."
            ))
        })?,
    };
    let to = parse_time("to", p.to.as_deref())?.unwrap_or_else(Utc::now);
    let from = match parse_time("from", p.from.as_deref())? {
        Some(f) => f,
        None => {
            let today = Utc::now().with_timezone(&tz).date_naive();
            day_start(tz, today - Duration::days(6))
        }
    };
    if from >= to {
        return Err(ApiError::invalid_request("`from` must be before `to`."));
    }
    let q = StatsQuery {
        from,
        to,
        interval,
        tz,
        account: p.account.filter(|a| !a.is_empty()),
        scope: caller.scope.clone(),
        group_by,
    };
    bucket_count(&q)?;
    Ok(q)
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({"count": p.count, "median": p.median, "p90": p.p90})
}

fn row_json(r: &StatsRow, group_by: GroupBy) -> Value {
    let mut obj = Map::new();
    obj.insert("bucket".into(), json!(to_rfc3339(r.bucket)));
    obj.insert("account".into(), json!(r.account));
    match group_by {
        GroupBy::Account => {}
        GroupBy::Agent => {
            obj.insert("agent_id".into(), json!(r.group));
        }
        GroupBy::Channel => {
            obj.insert("channel".into(), json!(r.group));
        }
    }
    obj.insert("sessions_opened".into(), json!(r.sessions_opened));
    obj.insert("sessions_closed".into(), json!(r.sessions_closed));
    obj.insert("messages_inbound".into(), json!(r.messages_inbound));
    obj.insert("messages_outbound".into(), json!(r.messages_outbound));
    obj.insert(
        "first_response_secs".into(),
        percentiles_json(&r.first_response_secs),
    );
    obj.insert(
        "resolution_secs".into(),
        percentiles_json(&r.resolution_secs),
    );
    Value::Object(obj)
}

async fn stats(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiQuery(p): ApiQuery<StatsParams>,
) -> Result<Json<Value>, ApiError> {
    let q = query(p, &caller)?;
    let rows = state.store.stats(&q).await?;
    let data: Vec<Value> = rows.iter().map(|r| row_json(r, q.group_by)).collect();
    Ok(Json(json!({ "data": data })))
}
