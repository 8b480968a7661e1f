//! Message and session rows in the gateway's schema: reading back what the
//! gateway stored, writing rows in batches, and generating seed data shaped
//! like what the Spark adapter stores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::QueryBuilder;

use crate::db::{on_pool, Pool};

/// Every column of `messages` but the generated `pk`, in schema order.
pub const MESSAGE_COLUMNS: &str = "id, session_id, account, provider, external_id, \
    customer_external_id, direction, sender_role, sender_external_id, sender_name, \
    sender_avatar_url, kind, text, search_text, media, card, event, sent_at, received_at, \
    delivery_status, delivery_attempts, delivery_last_error, raw";

/// One `messages` row (without `pk`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
#[allow(missing_docs)]
pub struct MessageRow {
    pub id: String,
    pub session_id: String,
    pub account: String,
    pub provider: String,
    pub external_id: Option<String>,
    pub customer_external_id: Option<String>,
    pub direction: String,
    pub sender_role: String,
    pub sender_external_id: Option<String>,
    pub sender_name: Option<String>,
    pub sender_avatar_url: Option<String>,
    pub kind: String,
    pub text: Option<String>,
    pub search_text: Option<String>,
    pub media: Option<String>,
    pub card: Option<String>,
    pub event: Option<String>,
    pub sent_at: i64,
    pub received_at: Option<i64>,
    pub delivery_status: Option<String>,
    pub delivery_attempts: Option<i64>,
    pub delivery_last_error: Option<String>,
    pub raw: Option<String>,
}

/// Every column of `sessions` but `pk`, in schema order.
const SESSION_COLUMNS: &str = "id, account, provider, external_id, status, channel, \
    customer_external_id, customer_name, customer_avatar_url, agent_external_id, agent_name, \
    agent_avatar_url, started_by, rating, created_at, assigned_at, closed_at, \
    assignment_started_at, first_response_at, last_message_at, updated_at, message_count, \
    fingerprint, raw";

/// One `sessions` row (without `pk`).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct SessionRow {
    pub id: String,
    pub account: String,
    pub provider: String,
    pub external_id: String,
    pub status: String,
    pub channel: Option<String>,
    pub customer_external_id: Option<String>,
    pub customer_name: Option<String>,
    pub customer_avatar_url: Option<String>,
    pub agent_external_id: Option<String>,
    pub agent_name: Option<String>,
    pub agent_avatar_url: Option<String>,
    pub started_by: Option<String>,
    pub rating: Option<String>,
    pub created_at: i64,
    pub assigned_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub assignment_started_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub last_message_at: Option<i64>,
    pub updated_at: i64,
    pub message_count: i64,
    pub fingerprint: Option<String>,
    pub raw: Option<String>,
}

/// Every stored message, in insertion order.
pub async fn read_messages(pool: &Pool) -> anyhow::Result<Vec<MessageRow>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY pk");
    let rows = on_pool!(pool, p => sqlx::query_as::<_, MessageRow>(&sql).fetch_all(p).await?);
    Ok(rows)
}

/// One multi-row `INSERT INTO messages … ON CONFLICT (account, external_id)
/// DO NOTHING`; returns the rows inserted.
pub async fn insert_messages(pool: &Pool, rows: &[MessageRow]) -> anyhow::Result<u64> {
    let done = on_pool!(pool, p => {
        let mut q = QueryBuilder::new(format!("INSERT INTO messages ({MESSAGE_COLUMNS}) "));
        q.push_values(rows, |mut b, r| {
            b.push_bind(r.id.as_str())
                .push_bind(r.session_id.as_str())
                .push_bind(r.account.as_str())
                .push_bind(r.provider.as_str())
                .push_bind(r.external_id.as_deref())
                .push_bind(r.customer_external_id.as_deref())
                .push_bind(r.direction.as_str())
                .push_bind(r.sender_role.as_str())
                .push_bind(r.sender_external_id.as_deref())
                .push_bind(r.sender_name.as_deref())
                .push_bind(r.sender_avatar_url.as_deref())
                .push_bind(r.kind.as_str())
                .push_bind(r.text.as_deref())
                .push_bind(r.search_text.as_deref())
                .push_bind(r.media.as_deref())
                .push_bind(r.card.as_deref())
                .push_bind(r.event.as_deref())
                .push_bind(r.sent_at)
                .push_bind(r.received_at)
                .push_bind(r.delivery_status.as_deref())
                .push_bind(r.delivery_attempts)
                .push_bind(r.delivery_last_error.as_deref())
                .push_bind(r.raw.as_deref());
        });
        q.push(" ON CONFLICT (account, external_id) DO NOTHING");
        q.build().execute(p).await?.rows_affected()
    });
    Ok(done)
}

/// One multi-row `INSERT INTO sessions`.
pub async fn insert_sessions(pool: &Pool, rows: &[SessionRow]) -> anyhow::Result<u64> {
    let done = on_pool!(pool, p => {
        let mut q = QueryBuilder::new(format!("INSERT INTO sessions ({SESSION_COLUMNS}) "));
        q.push_values(rows, |mut b, r| {
            b.push_bind(r.id.as_str())
                .push_bind(r.account.as_str())
                .push_bind(r.provider.as_str())
                .push_bind(r.external_id.as_str())
                .push_bind(r.status.as_str())
                .push_bind(r.channel.as_deref())
                .push_bind(r.customer_external_id.as_deref())
                .push_bind(r.customer_name.as_deref())
                .push_bind(r.customer_avatar_url.as_deref())
                .push_bind(r.agent_external_id.as_deref())
                .push_bind(r.agent_name.as_deref())
                .push_bind(r.agent_avatar_url.as_deref())
                .push_bind(r.started_by.as_deref())
                .push_bind(r.rating.as_deref())
                .push_bind(r.created_at)
                .push_bind(r.assigned_at)
                .push_bind(r.closed_at)
                .push_bind(r.assignment_started_at)
                .push_bind(r.first_response_at)
                .push_bind(r.last_message_at)
                .push_bind(r.updated_at)
                .push_bind(r.message_count)
                .push_bind(r.fingerprint.as_deref())
                .push_bind(r.raw.as_deref());
        });
        q.build().execute(p).await?.rows_affected()
    });
    Ok(done)
}

/// Inserts `rows` in batches of `batch` over `writers` connections at once
/// (each batch one statement, committed on its own); returns rows inserted.
pub async fn insert_batched(
    pool: &Pool,
    rows: Arc<Vec<MessageRow>>,
    batch: usize,
    writers: usize,
) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers.max(1) {
        let (pool, rows, next) = (pool.clone(), rows.clone(), next.clone());
        tasks.spawn(async move {
            let mut inserted = 0;
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= rows.len() {
                    return anyhow::Ok(inserted);
                }
                let end = (start + batch).min(rows.len());
                inserted += insert_messages(&pool, &rows[start..end]).await?;
            }
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.context("writer task failed")??;
    }
    Ok(total)
}

// ---------------------------------------------------------------------------
// Seed data shaped like the Spark adapter's rows.

/// The account seeded rows belong to (the gateway's configured Spark account).
pub const SEED_ACCOUNT: &str = "spark-bench";

const CUSTOMER_LINES: &[&str] = &[
    "你好，请问在吗？",
    "我的订单还没有发货，能帮我查一下吗？订单号 2024031588812",
    "退款什么时候能到账？",
    "收到的杯子有破损，怎么处理？",
    "Hi, is anyone there?",
    "My order hasn't arrived yet, could you check? Order #A-10293",
    "Can I change the delivery address to 221B Baker Street?",
    "Thanks, that solved it!",
];

const AGENT_LINES: &[&str] = &[
    "您好，很高兴为您服务，请问有什么可以帮您？",
    "请稍等，我帮您查询一下。",
    "退款将在1-3个工作日内原路退回，请留意。",
    "Hello! How can I help you today?",
    "Let me check that for you, one moment please.",
    "Is there anything else I can help with?",
];

/// A gateway-style id: prefix and UUIDv7 (as `chat-gateway` makes them).
fn gateway_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn hex(n: u64, width: usize) -> String {
    format!("{n:0width$x}")
}

/// Spark's `yyyy-MM-dd HH:mm:ss`, in Asia/Shanghai (UTC+8, no DST).
pub(crate) fn spark_time(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros + 8 * 3_600_000_000)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Everything one seeded session needs to make its rows.
#[derive(Debug, Clone)]
pub struct SeedSession {
    /// Gateway id.
    pub id: String,
    index: usize,
    external_id: String,
    start_micros: i64,
    messages: usize,
}

impl SeedSession {
    /// Session `index` of `count`, with `messages` messages, started within
    /// the last week (spread evenly).
    pub fn new(index: usize, count: usize, messages: usize, now_micros: i64) -> SeedSession {
        let week = 7 * 24 * 3_600_000_000i64;
        let span = week - messages as i64 * 30_000_000;
        let offset = span * index as i64 / count.max(1) as i64;
        SeedSession {
            id: gateway_id("ses"),
            index,
            external_id: hex(0x5eed_0000_0000 + index as u64, 20),
            start_micros: now_micros - week + offset,
            messages,
        }
    }

    fn customer(&self) -> (String, String, String) {
        let id = format!("seed-{}", self.index);
        let name = format!("访客{}", self.index);
        let avatar = format!("https://avatars.example.com/{id}.png");
        (id, name, avatar)
    }

    fn sent_at(&self, j: usize) -> i64 {
        self.start_micros + j as i64 * 30_000_000
    }

    /// The session row, as ingest leaves it after all its messages.
    pub fn row(&self, now_micros: i64) -> SessionRow {
        let (cid, cname, cavatar) = self.customer();
        let raw = json!({
            "Type": 0, "SessionId": self.external_id, "SessionType": 0,
            "FromId": cid, "FromName": cname, "FromImage": cavatar,
            "ToId": "1001", "ToName": "王芳", "ToImage": "https://avatars.example.com/1001.png",
        });
        SessionRow {
            id: self.id.clone(),
            account: SEED_ACCOUNT.into(),
            provider: "spark".into(),
            external_id: self.external_id.clone(),
            status: "open".into(),
            channel: Some("web".into()),
            customer_external_id: Some(cid),
            customer_name: Some(cname),
            customer_avatar_url: Some(cavatar),
            agent_external_id: Some("1001".into()),
            agent_name: Some("王芳".into()),
            agent_avatar_url: Some("https://avatars.example.com/1001.png".into()),
            started_by: None,
            rating: None,
            created_at: self.start_micros,
            assigned_at: None,
            closed_at: None,
            assignment_started_at: Some(self.start_micros),
            first_response_at: (self.messages > 1).then(|| self.sent_at(1)),
            last_message_at: (self.messages > 0).then(|| self.sent_at(self.messages - 1)),
            updated_at: now_micros,
            message_count: self.messages as i64,
            fingerprint: None,
            raw: Some(raw.to_string()),
        }
    }

    /// Message `j`: the customer and the agent take turns.
    pub fn message(&self, j: usize) -> MessageRow {
        let (cid, cname, cavatar) = self.customer();
        let from_agent = j % 2 == 1;
        let lines = if from_agent {
            AGENT_LINES
        } else {
            CUSTOMER_LINES
        };
        let text = format!("{} #{j}", lines[(self.index + j) % lines.len()]);
        let external_id = hex(((self.index as u64) << 24) | j as u64, 24);
        let sent_at = self.sent_at(j);
        let raw = json!({
            "Type": u8::from(from_agent), "Id": external_id, "ContentType": "0",
            "Content": text, "CreateTime": spark_time(sent_at),
        });
        let (role, direction, sid, sname, savatar) = if from_agent {
            (
                "agent",
                "outbound",
                "1001".to_string(),
                "王芳".to_string(),
                "https://avatars.example.com/1001.png".to_string(),
            )
        } else {
            ("customer", "inbound", cid.clone(), cname, cavatar)
        };
        MessageRow {
            id: gateway_id("msg"),
            session_id: self.id.clone(),
            account: SEED_ACCOUNT.into(),
            provider: "spark".into(),
            external_id: Some(external_id),
            customer_external_id: Some(cid),
            direction: direction.into(),
            sender_role: role.into(),
            sender_external_id: Some(sid),
            sender_name: Some(sname),
            sender_avatar_url: Some(savatar),
            kind: "text".into(),
            search_text: Some(text.to_lowercase()),
            text: Some(text),
            media: None,
            card: None,
            event: None,
            sent_at,
            received_at: None,
            delivery_status: None,
            delivery_attempts: None,
            delivery_last_error: None,
            raw: Some(raw.to_string()),
        }
    }
}

/// Writes `sessions` sessions of `per_session` messages each into `pool`
/// (one writer on SQLite, eight on PostgreSQL); returns the session ids.
pub async fn seed(pool: &Pool, sessions: usize, per_session: usize) -> anyhow::Result<Vec<String>> {
    let now = Utc::now().timestamp_micros();
    let seeds: Arc<Vec<SeedSession>> = Arc::new(
        (0..sessions)
            .map(|i| SeedSession::new(i, sessions, per_session, now))
            .collect(),
    );
    for chunk in seeds.chunks(500) {
        let rows: Vec<SessionRow> = chunk.iter().map(|s| s.row(now)).collect();
        insert_sessions(pool, &rows).await?;
    }
    // Messages go in session by session, as a conversation's rows would
    // have arrived; sessions are dealt to the writers.
    let writers = match pool {
        Pool::Sqlite(_) => 1,
        Pool::Postgres(_) => 8,
    };
    let per_batch = (500 / per_session.max(1)).max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (pool, seeds, next) = (pool.clone(), seeds.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let start = next.fetch_add(per_batch, Ordering::Relaxed);
                if start >= seeds.len() {
                    return anyhow::Ok(());
                }
                let end = (start + per_batch).min(seeds.len());
                let mut rows = Vec::with_capacity((end - start) * per_session);
                for s in &seeds[start..end] {
                    rows.extend((0..per_session).map(|j| s.message(j)));
                }
                for chunk in rows.chunks(500) {
                    insert_messages(&pool, chunk).await?;
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("seeding task failed")??;
    }
    Ok(seeds.iter().map(|s| s.id.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_rows_look_like_spark_rows() {
        let now = Utc::now().timestamp_micros();
        let s = SeedSession::new(3, 10, 4, now);
        let row = s.row(now);
        assert_eq!(row.message_count, 4);
        assert_eq!(row.first_response_at, Some(s.sent_at(1)));
        let m0 = s.message(0);
        let m1 = s.message(1);
        assert_eq!(
            (m0.direction.as_str(), m0.sender_role.as_str()),
            ("inbound", "customer")
        );
        assert_eq!(
            (m1.direction.as_str(), m1.sender_role.as_str()),
            ("outbound", "agent")
        );
        assert!(m0.id.starts_with("msg_") && row.id.starts_with("ses_"));
        assert_ne!(m0.external_id, m1.external_id);
        let raw: serde_json::Value = serde_json::from_str(m1.raw.as_deref().unwrap()).unwrap();
        assert_eq!(raw["Type"], 1);
        assert_eq!(raw["Content"].as_str(), m1.text.as_deref());
        assert_eq!(m1.search_text, m1.text.as_ref().map(|t| t.to_lowercase()));
        assert!(m0.sent_at < m1.sent_at && m1.sent_at < now);
    }

    #[test]
    fn spark_time_is_shanghai_local() {
        // 2026-01-01T00:00:00Z is 08:00 in Shanghai.
        assert_eq!(spark_time(1_767_225_600_000_000), "2026-01-01 08:00:00");
    }
}
