//! Customers: the people sessions name, per account, derived from the
//! sessions themselves (no table of their own to keep in step), and their
//! erasure on request.
//!
//! Erasure deletes, in one transaction, the customer's sessions, their
//! messages and send outbox rows, the events about those sessions with the
//! webhook outbox rows and attempts made for them, and the idempotency
//! answers that return them; it writes one `customer.erased` event and a
//! tombstone. The tombstone is what keeps the erasure: [`drop_erased`] runs
//! before every ingest and drops what the provider sent that customer at or
//! before the erasure, so a replayed history never comes back while what
//! they send afterwards is stored as new.

use std::borrow::Cow;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chat_core::{EventType, SessionChange};
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::rows::{from_micros, like_pattern, to_micros};
use super::sql::{Bind, SqlBuilder, SqlStore};
use super::{AccountRef, AccountScope, Page, StoreError, StoreResult};

/// A customer as `GET /v1/customers` shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Account the sessions belong to.
    pub account: String,
    /// Provider of the account.
    pub provider: String,
    /// The provider's customer id.
    pub external_id: String,
    /// Name from the newest session that has one.
    pub name: Option<String>,
    /// Avatar from the newest session that has one.
    pub avatar_url: Option<String>,
    /// Their sessions.
    pub session_count: i64,
    /// Messages in those sessions, both directions.
    pub message_count: i64,
    /// Earliest session `created_at`.
    pub first_seen_at: DateTime<Utc>,
    /// Latest `last_message_at` (or `created_at`) of their sessions.
    pub last_seen_at: DateTime<Utc>,
}

/// What `GET /v1/customers` filters on.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Only this account.
    pub account: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Case-insensitive substring of `name` or `external_id`.
    pub q: Option<String>,
    /// Accounts the caller may see.
    pub scope: AccountScope,
}

/// What an erasure removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Sessions deleted.
    pub sessions: i64,
    /// Messages deleted.
    pub messages: i64,
    /// Gateway ids of the deleted sessions (the event hub forgets them).
    pub session_ids: Vec<String>,
    /// `seq` of the `customer.erased` event written.
    pub seq: i64,
}

/// Customer reads and erasure; a supertrait of [`Store`](super::Store).
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// A page of customers, newest `last_seen_at` first.
    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Customer>>;

    /// One customer; [`StoreError::NotFound`] when no session names them.
    async fn get_customer(&self, account: &str, external_id: &str) -> StoreResult<Customer>;

    /// Erases a customer's data (see the module docs); [`StoreError::NotFound`]
    /// when no session names them.
    async fn erase_customer(&self, account: &AccountRef, external_id: &str) -> StoreResult<Erased>;
}

/// The aggregate every customer read runs: one row per (account, customer)
/// with the name and avatar of their newest session that has one.
const CUSTOMERS_SQL: &str = "WITH g AS (\
     SELECT account, customer_external_id AS external_id, MIN(provider) AS provider, \
     COUNT(*) AS session_count, CAST(SUM(message_count) AS BIGINT) AS message_count, \
     MIN(created_at) AS first_seen_at, \
     MAX(COALESCE(last_message_at, created_at)) AS last_seen_at \
     FROM sessions WHERE customer_external_id IS NOT NULL {WHERE} \
     GROUP BY account, customer_external_id), \
     c AS (SELECT g.*, \
     (SELECT s.customer_name FROM sessions s WHERE s.account = g.account \
     AND s.customer_external_id = g.external_id AND s.customer_name IS NOT NULL \
     ORDER BY COALESCE(s.last_message_at, s.created_at) DESC, s.pk DESC LIMIT 1) AS name, \
     (SELECT s.customer_avatar_url FROM sessions s WHERE s.account = g.account \
     AND s.customer_external_id = g.external_id AND s.customer_avatar_url IS NOT NULL \
     ORDER BY COALESCE(s.last_message_at, s.created_at) DESC, s.pk DESC LIMIT 1) AS avatar_url \
     FROM g) \
     SELECT account, provider, external_id, name, avatar_url, session_count, message_count, \
     first_seen_at, last_seen_at FROM c WHERE 1 = 1";

fn customer_from_row(row: &AnyRow) -> StoreResult<Customer> {
    Ok(Customer {
        account: row.try_get("account")?,
        provider: row.try_get("provider")?,
        external_id: row.try_get("external_id")?,
        name: row.try_get("name")?,
        avatar_url: row.try_get("avatar_url")?,
        session_count: row.try_get("session_count")?,
        message_count: row.try_get::<Option<i64>, _>("message_count")?.unwrap_or(0),
        first_seen_at: from_micros(row.try_get("first_seen_at")?)?,
        last_seen_at: from_micros(row.try_get("last_seen_at")?)?,
    })
}

/// The keyset of the customer list: `(last_seen_at, account, external_id)`,
/// descending.
fn encode_cursor(c: &Customer) -> String {
    let key = serde_json::json!(["c1", to_micros(c.last_seen_at), c.account, c.external_id]);
    URL_SAFE_NO_PAD.encode(key.to_string())
}

fn decode_cursor(raw: &str) -> StoreResult<(i64, String, String)> {
    let bad = || StoreError::Invalid("`cursor` is not a cursor this list returned".into());
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let (tag, at, account, external_id): (String, i64, String, String) =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if tag != "c1" {
        return Err(bad());
    }
    Ok((at, account, external_id))
}

/// `AND account IN (…)` for a limited scope (`AND 1 = 0` for an empty one).
fn push_scope(sql: &mut SqlBuilder, scope: &AccountScope) {
    if let AccountScope::Only(names) = scope {
        if names.is_empty() {
            sql.text.push_str(" AND 1 = 0");
            return;
        }
        let ps: Vec<String> = names
            .iter()
            .map(|n| sql.bind(Bind::Text(n.clone())))
            .collect();
        sql.text
            .push_str(&format!(" AND account IN ({})", ps.join(", ")));
    }
}

/// Runs [`CUSTOMERS_SQL`] with `inner` conditions (on sessions, before
/// grouping) and `outer` ones (on customers), built by the closures.
fn customers_query(
    inner: impl FnOnce(&mut SqlBuilder),
    outer: impl FnOnce(&mut SqlBuilder),
) -> SqlBuilder {
    let mut sql = SqlBuilder::default();
    inner(&mut sql);
    let inner_text = std::mem::take(&mut sql.text);
    sql.text = CUSTOMERS_SQL.replace("{WHERE}", &inner_text);
    outer(&mut sql);
    sql
}

#[async_trait]
impl CustomerStore for SqlStore {
    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Customer>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let sql = customers_query(
            |sql| {
                push_scope(sql, &filter.scope);
                if let Some(a) = &filter.account {
                    let p = sql.bind(Bind::Text(a.clone()));
                    sql.text.push_str(&format!(" AND account = {p}"));
                }
                if let Some(pr) = &filter.provider {
                    let p = sql.bind(Bind::Text(pr.clone()));
                    sql.text.push_str(&format!(" AND provider = {p}"));
                }
            },
            |sql| {
                if let Some(q) = &filter.q {
                    let p1 = sql.bind(Bind::Text(like_pattern(q)));
                    let p2 = sql.bind(Bind::Text(like_pattern(q)));
                    sql.text.push_str(&format!(
                        " AND (LOWER(name) LIKE {p1} ESCAPE '\\' \
                         OR LOWER(external_id) LIKE {p2} ESCAPE '\\')"
                    ));
                }
                if let Some((at, account, ext)) = after {
                    let a1 = sql.bind(Bind::Int(at));
                    let a2 = sql.bind(Bind::Int(at));
                    let b1 = sql.bind(Bind::Text(account.clone()));
                    let b2 = sql.bind(Bind::Text(account));
                    let c = sql.bind(Bind::Text(ext));
                    sql.text.push_str(&format!(
                        " AND (last_seen_at < {a1} OR (last_seen_at = {a2} AND \
                         (account < {b1} OR (account = {b2} AND external_id < {c}))))"
                    ));
                }
                let l = sql.bind(Bind::Int(i64::from(limit) + 1));
                sql.text.push_str(&format!(
                    " ORDER BY last_seen_at DESC, account DESC, external_id DESC LIMIT {l}"
                ));
            },
        );
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut data = rows
            .iter()
            .map(customer_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let more = data.len() > limit as usize;
        data.truncate(limit as usize);
        let next_cursor = match data.last() {
            Some(c) if more => Some(encode_cursor(c)),
            _ => None,
        };
        Ok(Page { data, next_cursor })
    }

    async fn get_customer(&self, account: &str, external_id: &str) -> StoreResult<Customer> {
        let sql = customers_query(
            |sql| {
                let a = sql.bind(Bind::Text(account.to_string()));
                let e = sql.bind(Bind::Text(external_id.to_string()));
                sql.text.push_str(&format!(
                    " AND account = {a} AND customer_external_id = {e}"
                ));
            },
            |_| {},
        );
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        customer_from_row(&row)
    }

    async fn erase_customer(&self, account: &AccountRef, external_id: &str) -> StoreResult<Erased> {
        let now = Utc::now();
        let _guard = self.write_guard().await;
        let mut tx = self.pool.begin().await?;
        // Row locks in a fixed order, sessions then webhooks then the rest,
        // as ingest (sessions first) and attempt records (webhook first)
        // take them, so a concurrent sync or delivery waits instead of
        // deadlocking.
        sqlx::query(
            "UPDATE sessions SET updated_at = updated_at \
             WHERE account = $1 AND customer_external_id = $2",
        )
        .bind(&account.name)
        .bind(external_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE webhooks SET lease_until = lease_until")
            .execute(&mut *tx)
            .await?;
        let sessions: Vec<String> =
            sqlx::query("SELECT id FROM sessions WHERE account = $1 AND customer_external_id = $2")
                .bind(&account.name)
                .bind(external_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
        if sessions.is_empty() {
            return Err(StoreError::NotFound);
        }
        let mut erased = Erased {
            sessions: sessions.len() as i64,
            session_ids: sessions.clone(),
            ..Erased::default()
        };
        for chunk in sessions.chunks(200) {
            let ids: Vec<Bind> = chunk.iter().map(|s| Bind::Text(s.clone())).collect();
            let count = in_list(
                "SELECT COUNT(*) FROM messages WHERE session_id IN",
                "",
                &ids,
            );
            erased.messages += count
                .query()
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>(0)?;
            // The webhook outbox first: deleting its rows waits for an
            // attempt being recorded on them, so the attempts deleted next
            // include it (see `record_webhook_attempt`).
            in_list("DELETE FROM webhook_outbox WHERE session_id IN", "", &ids)
                .query()
                .execute(&mut *tx)
                .await?;
            // Webhook attempts name events by seq: before the events go.
            in_list(
                "DELETE FROM webhook_deliveries WHERE event_seq IN \
                 (SELECT seq FROM events WHERE session_id IN",
                ")",
                &ids,
            )
            .query()
            .execute(&mut *tx)
            .await?;
            for (table, column) in [
                ("events", "session_id"),
                ("outbox", "session_id"),
                ("messages", "session_id"),
                ("sessions", "id"),
            ] {
                in_list(&format!("DELETE FROM {table} WHERE {column} IN"), "", &ids)
                    .query()
                    .execute(&mut *tx)
                    .await?;
            }
            // Stored answers of sends to these sessions carry the session id.
            for id in chunk {
                sqlx::query("DELETE FROM idempotency_keys WHERE response LIKE $1 ESCAPE '\\'")
                    .bind(like_pattern(id).replace(&id.to_lowercase(), id))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(
            "INSERT INTO customer_tombstones (account, external_id, erased_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account, external_id) DO UPDATE SET erased_at = excluded.erased_at",
        )
        .bind(&account.name)
        .bind(external_id)
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await?;
        let data = serde_json::json!({"account": account.name, "external_id": external_id});
        let event = super::ingest::PendingEvent {
            event_type: EventType::CustomerErased,
            session_id: String::new(),
            message_id: None,
            data: data.to_string(),
            changes: None,
        };
        erased.seq = super::ingest::insert_events(&mut tx, self.backend, account, now, &[event])
            .await?
            .unwrap_or(0);
        tx.commit().await?;
        self.announce(erased.seq);
        Ok(erased)
    }
}

/// `{head} ($1, $2, …){tail}` over `ids`.
fn in_list(head: &str, tail: &str, ids: &[Bind]) -> SqlBuilder {
    let mut sql = SqlBuilder::new(head);
    let ps: Vec<String> = ids.iter().map(|b| sql.bind(b.clone())).collect();
    sql.text.push_str(&format!(" ({}){tail}", ps.join(", ")));
    sql
}

/// Drops from `changes` what the provider sent customers of `account` at
/// or before their erasure: their messages up to the tombstone, and a
/// session that brings nothing newer and did not start after it. Borrowed
/// unchanged when no customer in the batch was erased (the usual case).
pub(crate) async fn drop_erased<'a>(
    store: &SqlStore,
    account: &str,
    changes: &'a [SessionChange],
) -> StoreResult<Cow<'a, [SessionChange]>> {
    let mut customers: Vec<&str> = Vec::new();
    for c in changes {
        if let Some(id) = c
            .session
            .customer
            .as_ref()
            .and_then(|p| p.external_id.as_deref())
        {
            if !customers.contains(&id) {
                customers.push(id);
            }
        }
    }
    if customers.is_empty() {
        return Ok(Cow::Borrowed(changes));
    }
    let mut erased_at: std::collections::HashMap<String, DateTime<Utc>> = Default::default();
    for chunk in customers.chunks(200) {
        let mut sql = SqlBuilder::new(
            "SELECT external_id, erased_at FROM customer_tombstones WHERE account = $1",
        );
        sql.binds.push(Bind::Text(account.to_string()));
        let ps: Vec<String> = chunk
            .iter()
            .map(|c| sql.bind(Bind::Text(c.to_string())))
            .collect();
        sql.text
            .push_str(&format!(" AND external_id IN ({})", ps.join(", ")));
        for r in sql.query().fetch_all(&store.pool).await? {
            erased_at.insert(r.try_get(0)?, from_micros(r.try_get(1)?)?);
        }
    }
    if erased_at.is_empty() {
        return Ok(Cow::Borrowed(changes));
    }
    let mut kept = Vec::with_capacity(changes.len());
    for c in changes {
        let tombstone = c
            .session
            .customer
            .as_ref()
            .and_then(|p| p.external_id.as_deref())
            .and_then(|id| erased_at.get(id));
        let Some(&until) = tombstone else {
            kept.push(c.clone());
            continue;
        };
        let messages: Vec<_> = c
            .messages
            .iter()
            .filter(|m| m.sent_at > until)
            .cloned()
            .collect();
        let started_after = c.session.created_at.is_some_and(|t| t > until);
        if messages.is_empty() && !started_after {
            tracing::debug!(
                account,
                session = %c.session.external_id,
                "skipping a session of an erased customer: nothing after the erasure"
            );
            continue;
        }
        kept.push(SessionChange {
            session: c.session.clone(),
            messages,
        });
    }
    Ok(Cow::Owned(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Customer {
            account: "a".into(),
            provider: "spark".into(),
            external_id: "C|1".into(),
            name: None,
            avatar_url: None,
            session_count: 1,
            message_count: 0,
            first_seen_at: Utc::now(),
            last_seen_at: from_micros(1_700_000_000_000_000).unwrap(),
        };
        let (at, a, e) = decode_cursor(&encode_cursor(&c)).unwrap();
        assert_eq!(
            (at, a.as_str(), e.as_str()),
            (1_700_000_000_000_000, "a", "C|1")
        );
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("[\"x\",1,\"a\",\"b\"]")).is_err());
    }
}
