//! The store implementation both backends share.

use async_trait::async_trait;
use chat_core::{Event, EventType, Message, Session, SessionChange};
use chrono::Utc;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row};
use std::sync::Arc;
use tokio::sync::{watch, Mutex};

use super::rows::{
    from_micros, like_pattern, message_from_row, session_from_row, to_micros, MESSAGE_COLUMNS,
    SESSION_COLUMNS,
};
use super::{
    ingest, postgres, sqlite, AccountRef, AccountScope, Backend, EventQuery, IngestSummary, Keyset,
    MessageFilter, Order, Page, PageRequest, SessionFilter, Store, StoreError, StoreResult,
    SyncState, SyncStatus,
};

/// How a statement writes its placeholders. SQLite binds each *named*
/// placeholder (`$1`, `?1`) through a linear name lookup, which makes
/// statements with thousands of them quadratic; plain `?` has no name. Only
/// statements that use every placeholder once, in order, may be anonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?, ?, …` (SQLite).
    Anonymous,
}

impl Placeholders {
    /// The style for the backend behind `conn`.
    pub fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Placeholders::Anonymous
        } else {
            Placeholders::Numbered
        }
    }

    /// The `n`-th (1-based) placeholder.
    pub fn nth(self, n: usize) -> String {
        match self {
            Placeholders::Numbered => format!("${n}"),
            Placeholders::Anonymous => "?".to_string(),
        }
    }

    /// `n` placeholders from `first`, comma-separated.
    pub fn list(self, first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| self.nth(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `(…), (…)`: `rows` tuples of `width` placeholders after `offset`.
    pub fn tuples(self, rows: usize, width: usize, offset: usize) -> String {
        (0..rows)
            .map(|r| format!("({})", self.list(offset + r * width + 1, width)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    Int(i64),
    Text(String),
    OptInt(Option<i64>),
    OptText(Option<String>),
}

/// A query under construction: SQL text plus its binds, numbered as pushed.
#[derive(Debug, Default)]
pub(super) struct SqlBuilder {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl SqlBuilder {
    pub fn new(text: impl Into<String>) -> Self {
        SqlBuilder {
            text: text.into(),
            binds: Vec::new(),
        }
    }

    /// Adds a bind and returns its placeholder.
    pub fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    /// Appends `AND <cond>` where `cond` uses the placeholder of `b`.
    pub fn and_eq(&mut self, column: &str, value: &Option<String>) {
        if let Some(v) = value {
            let p = self.bind(Bind::Text(v.clone()));
            self.text.push_str(&format!(" AND {column} = {p}"));
        }
    }

    /// Appends a time bound.
    pub fn and_time(&mut self, column: &str, op: &str, value: Option<chrono::DateTime<Utc>>) {
        if let Some(t) = value {
            let p = self.bind(Bind::Int(to_micros(t)));
            self.text.push_str(&format!(" AND {column} {op} {p}"));
        }
    }

    /// Restricts to the caller's visible accounts.
    pub fn and_scope(&mut self, scope: &AccountScope) {
        if let AccountScope::Only(names) = scope {
            if names.is_empty() {
                self.text.push_str(" AND 1 = 0");
                return;
            }
            let ps: Vec<String> = names
                .iter()
                .map(|n| self.bind(Bind::Text(n.clone())))
                .collect();
            self.text
                .push_str(&format!(" AND account IN ({})", ps.join(", ")));
        }
    }

    /// Appends the keyset condition and ordering on `(column, pk)`.
    pub fn keyset(&mut self, column: &str, order: Order, after: Option<Keyset>, limit: u32) {
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        if let Some(k) = after {
            let a = self.bind(Bind::Int(k.at));
            let a2 = self.bind(Bind::Int(k.at));
            let p = self.bind(Bind::Int(k.pk));
            self.text.push_str(&format!(
                " AND ({column} {cmp} {a} OR ({column} = {a2} AND pk {cmp} {p}))"
            ));
        }
        let l = self.bind(Bind::Int(i64::from(limit) + 1));
        self.text
            .push_str(&format!(" ORDER BY {column} {dir}, pk {dir} LIMIT {l}"));
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        bind_all(sqlx::query(&self.text), &self.binds)
    }
}

pub(super) fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    binds: &'q [Bind],
) -> Query<'q, Any, AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(v) => q.bind(v.as_str()),
            Bind::OptInt(v) => q.bind(*v),
            Bind::OptText(v) => q.bind(v.as_deref()),
        };
    }
    q
}

/// The one [`Store`] implementation; `backend` picks the dialect details.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    /// SQLite only: one writer at a time (see [`sqlite`]).
    pub(super) write_lock: Option<Arc<Mutex<()>>>,
    pub(super) wake: Arc<watch::Sender<u64>>,
}

impl SqlStore {
    /// Connects to `url` (`sqlite:…` or `postgres://…`) without migrating.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or_else(|| {
            StoreError::Invalid(format!(
                "database URL must start with sqlite: or postgres://, got `{}`",
                redact_url(url)
            ))
        })?;
        let (pool, write_lock, wake) = match backend {
            Backend::Sqlite => {
                let (lock, wake) = sqlite::shared_handles(url);
                (sqlite::pool(url, max_connections).await?, Some(lock), wake)
            }
            Backend::Postgres => {
                let (wake, _) = watch::channel(0u64);
                let wake = Arc::new(wake);
                let pool = postgres::pool(url, max_connections).await?;
                // The listener holds a weak handle and stops once the store is gone.
                postgres::spawn_listener(url.to_string(), Arc::downgrade(&wake));
                (pool, None, wake)
            }
        };
        Ok(SqlStore {
            pool,
            backend,
            write_lock,
            wake,
        })
    }

    /// Applies this backend's pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &sqlite::MIGRATOR,
            Backend::Postgres => &postgres::MIGRATOR,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(sqlx::Error::Migrate(Box::new(e))))
    }

    /// The pool, for callers that own their own queries (benchmarks).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Holds the SQLite writer lock for the duration of a write.
    pub(super) async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// Tells local waiters that events were committed.
    pub(super) fn announce(&self, seq: i64) {
        self.wake
            .send_modify(|v| *v = (*v).max(seq as u64).saturating_add(1));
    }

    async fn fetch_page<T>(
        &self,
        sql: &SqlBuilder,
        page: &PageRequest,
        read: impl Fn(&AnyRow) -> StoreResult<(Keyset, T)>,
    ) -> StoreResult<Page<T>> {
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut data = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.iter().take(page.limit as usize) {
            let (k, item) = read(row)?;
            last = Some(k);
            data.push(item);
        }
        let next_cursor = match last {
            Some(k) if rows.len() > page.limit as usize => Some(page.encode(k)),
            _ => None,
        };
        Ok(Page { data, next_cursor })
    }
}

/// Hides a password in a database URL for error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn session_page_row(row: &AnyRow, raw: bool) -> StoreResult<(Keyset, Session)> {
    let r = session_from_row(row, raw)?;
    Ok((
        Keyset {
            at: to_micros(r.session.created_at),
            pk: r.pk,
        },
        r.session,
    ))
}

fn message_page_row(row: &AnyRow, raw: bool) -> StoreResult<(Keyset, Message)> {
    let (pk, m) = message_from_row(row, raw)?;
    Ok((
        Keyset {
            at: to_micros(m.sent_at),
            pk,
        },
        m,
    ))
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ingest_as(
        &self,
        account: &AccountRef,
        changes: &[SessionChange],
        checkpoint: Option<&str>,
        lease_owner: Option<&str>,
    ) -> StoreResult<IngestSummary> {
        // Erased customers: what the provider sent before the erasure is
        // never imported again (see `store::customers`).
        let changes = super::customers::drop_erased(self, &account.name, changes).await?;
        ingest::run(self, account, &changes, checkpoint, lease_owner).await
    }

    async fn acquire_lease(
        &self,
        account: &AccountRef,
        owner: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<bool> {
        let now = to_micros(Utc::now());
        let until = now + i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX / 2);
        let _guard = self.write_guard().await;
        sqlx::query(
            "INSERT INTO sync_state (account, provider, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account) DO NOTHING",
        )
        .bind(&account.name)
        .bind(&account.provider)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let done = sqlx::query(
            "UPDATE sync_state SET lease_owner = $1, lease_until = $2 WHERE account = $3 \
             AND (lease_owner IS NULL OR lease_owner = $4 OR lease_until < $5)",
        )
        .bind(owner)
        .bind(until)
        .bind(&account.name)
        .bind(owner)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, account: &str, owner: &str) -> StoreResult<()> {
        let _guard = self.write_guard().await;
        sqlx::query(
            "UPDATE sync_state SET lease_owner = NULL, lease_until = NULL \
             WHERE account = $1 AND lease_owner = $2",
        )
        .bind(account)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session_digests(
        &self,
        account: &str,
        external_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, (Option<String>, chat_core::SessionStatus)>>
    {
        let mut out = std::collections::HashMap::new();
        for chunk in external_ids.chunks(500) {
            let mut sql = SqlBuilder::new(
                "SELECT external_id, fingerprint, status FROM sessions WHERE account = $1",
            );
            sql.binds.push(Bind::Text(account.to_string()));
            let ps: Vec<String> = chunk
                .iter()
                .map(|e| sql.bind(Bind::Text(e.clone())))
                .collect();
            sql.text
                .push_str(&format!(" AND external_id IN ({})", ps.join(", ")));
            for row in sql.query().fetch_all(&self.pool).await? {
                let status: String = row.try_get("status")?;
                out.insert(
                    row.try_get("external_id")?,
                    (
                        row.try_get("fingerprint")?,
                        super::rows::parse_status(&status)?,
                    ),
                );
            }
        }
        Ok(out)
    }

    async fn open_session_ids(&self, account: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT external_id FROM sessions WHERE account = $1 AND status = 'open' ORDER BY pk",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StoreError::from))
            .collect()
    }

    async fn newest_message_at(
        &self,
        account: &str,
        customer_id: &str,
    ) -> StoreResult<Option<chrono::DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MAX(sent_at) FROM messages WHERE customer_external_id = $1 AND account = $2",
        )
        .bind(customer_id)
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        row.try_get::<Option<i64>, _>(0)?
            .map(from_micros)
            .transpose()
    }

    async fn add_customers(&self, account: &AccountRef, customers: &[String]) -> StoreResult<()> {
        let mut state = self.sync_state(account).await?;
        let before = state.extra_customers.len();
        for c in customers {
            if !state.extra_customers.contains(c) {
                state.extra_customers.push(c.clone());
            }
        }
        if state.extra_customers.len() == before {
            return Ok(());
        }
        let json = serde_json::to_string(&state.extra_customers)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let _guard = self.write_guard().await;
        sqlx::query("UPDATE sync_state SET extra_customers = $1 WHERE account = $2")
            .bind(json)
            .bind(&account.name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_backfill(
        &self,
        account: &str,
        backfill: Option<&super::Backfill>,
    ) -> StoreResult<()> {
        let json = backfill
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let _guard = self.write_guard().await;
        sqlx::query("UPDATE sync_state SET backfill = $1 WHERE account = $2")
            .bind(json)
            .bind(account)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_session(&self, id: &str, scope: &AccountScope) -> StoreResult<Session> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let s = session_from_row(&row, true)?.session;
        if scope.allows(&s.account) {
            Ok(s)
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn find_session(&self, account: &str, external_id: &str) -> StoreResult<Option<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE account = $1 AND external_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(account)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| session_from_row(&r, true).map(|s| s.session))
            .transpose()
    }

    async fn list_sessions(
        &self,
        f: &SessionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Session>> {
        let after = page.keyset()?;
        let mut sql = SqlBuilder::new(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE 1 = 1"
        ));
        sql.and_scope(&f.scope);
        sql.and_eq("account", &f.account);
        sql.and_eq("provider", &f.provider);
        sql.and_eq("status", &f.status.map(|s| s.as_str().to_string()));
        sql.and_eq("customer_external_id", &f.customer_id);
        sql.and_eq("agent_external_id", &f.agent_id);
        sql.and_eq("channel", &f.channel);
        sql.and_eq("external_id", &f.external_id);
        sql.and_time("created_at", ">=", f.created_after);
        sql.and_time("created_at", "<", f.created_before);
        sql.and_time("updated_at", ">=", f.updated_after);
        sql.keyset("created_at", page.order, after, page.limit);
        let raw = f.include_raw;
        self.fetch_page(&sql, page, |row| session_page_row(row, raw))
            .await
    }

    async fn get_message(&self, id: &str, scope: &AccountScope) -> StoreResult<Message> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let (_, m) = message_from_row(&row, true)?;
        if scope.allows(&m.account) {
            Ok(m)
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn list_messages(
        &self,
        f: &MessageFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Message>> {
        let after = page.keyset()?;
        let mut sql = SqlBuilder::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE 1 = 1"
        ));
        sql.and_scope(&f.scope);
        sql.and_eq("account", &f.account);
        sql.and_eq("provider", &f.provider);
        sql.and_eq("session_id", &f.session_id);
        sql.and_eq("customer_external_id", &f.customer_id);
        sql.and_eq("kind", &f.kind.map(|k| k.as_str().to_string()));
        sql.and_eq("direction", &f.direction.map(|d| d.as_str().to_string()));
        sql.and_eq("external_id", &f.external_id);
        sql.and_time("sent_at", ">=", f.sent_after);
        sql.and_time("sent_at", "<", f.sent_before);
        if let Some(q) = &f.q {
            let p = sql.bind(Bind::Text(like_pattern(q)));
            sql.text
                .push_str(&format!(" AND search_text LIKE {p} ESCAPE '\\'"));
        }
        sql.keyset("sent_at", page.order, after, page.limit);
        let raw = f.include_raw;
        self.fetch_page(&sql, page, |row| message_page_row(row, raw))
            .await
    }

    async fn read_events(&self, q: &EventQuery) -> StoreResult<Vec<Event>> {
        if q.after > 0 && q.after < self.pruned_through().await? {
            return Err(StoreError::CursorExpired);
        }
        let mut sql = SqlBuilder::new(
            "SELECT seq, type, at, account, provider, session_id, message_id, data, changes \
             FROM events WHERE 1 = 1",
        );
        let p = sql.bind(Bind::Int(q.after));
        sql.text.push_str(&format!(" AND seq > {p}"));
        if let Some(until) = q.until {
            let p = sql.bind(Bind::Int(until));
            sql.text.push_str(&format!(" AND seq <= {p}"));
        }
        sql.and_scope(&q.scope);
        sql.and_eq("account", &q.account);
        if !q.types.is_empty() {
            let ps: Vec<String> = q
                .types
                .iter()
                .map(|t| sql.bind(Bind::Text(t.as_str().to_string())))
                .collect();
            sql.text
                .push_str(&format!(" AND type IN ({})", ps.join(", ")));
        }
        let l = sql.bind(Bind::Int(i64::from(q.limit)));
        sql.text.push_str(&format!(" ORDER BY seq LIMIT {l}"));
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn latest_seq(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.pool)
            .await?;
        let latest: i64 = row.try_get(0)?;
        Ok(latest.max(self.pruned_through().await?))
    }

    async fn pruned_through(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query("SELECT pruned_through FROM event_retention WHERE id = 1")
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    async fn prune_events(&self, older_than_micros: i64) -> StoreResult<u64> {
        let _guard = self.write_guard().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM events WHERE at < $1")
            .bind(older_than_micros)
            .fetch_one(&mut *tx)
            .await?;
        let through: i64 = row.try_get(0)?;
        if through == 0 {
            return Ok(0);
        }
        let done = sqlx::query("DELETE FROM events WHERE seq <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE event_retention SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1",
        )
        .bind(through)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn sync_state(&self, account: &AccountRef) -> StoreResult<SyncState> {
        let now = to_micros(Utc::now());
        {
            let _guard = self.write_guard().await;
            sqlx::query(
                "INSERT INTO sync_state (account, provider, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (account) DO NOTHING",
            )
            .bind(&account.name)
            .bind(&account.provider)
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        let row = sqlx::query(
            "SELECT state, cursor, last_success_at, last_error, last_error_at, lag_seconds, \
             backfill, extra_customers FROM sync_state WHERE account = $1",
        )
        .bind(&account.name)
        .fetch_one(&self.pool)
        .await?;
        let last_error: Option<String> = row.try_get("last_error")?;
        let last_error_at: Option<i64> = row.try_get("last_error_at")?;
        let backfill: Option<String> = row.try_get("backfill")?;
        let extra: String = row.try_get("extra_customers")?;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        Ok(SyncState {
            status: SyncStatus {
                state: row.try_get("state")?,
                last_success_at: row
                    .try_get::<Option<i64>, _>("last_success_at")?
                    .map(from_micros)
                    .transpose()?,
                last_error: match (last_error, last_error_at) {
                    (Some(message), Some(at)) => Some(super::SyncError {
                        message,
                        at: from_micros(at)?,
                    }),
                    _ => None,
                },
                lag_seconds: row.try_get("lag_seconds")?,
                backfill: backfill
                    .map(|b| serde_json::from_str(&b))
                    .transpose()
                    .map_err(corrupt)?,
            },
            cursor: row.try_get("cursor")?,
            extra_customers: serde_json::from_str(&extra).map_err(corrupt)?,
        })
    }

    async fn put_sync_status(&self, account: &str, s: &SyncStatus) -> StoreResult<()> {
        let _guard = self.write_guard().await;
        sqlx::query(
            "UPDATE sync_state SET state = $1, last_success_at = $2, last_error = $3, \
             last_error_at = $4, lag_seconds = $5, updated_at = $6 WHERE account = $7",
        )
        .bind(&s.state)
        .bind(s.last_success_at.map(to_micros))
        .bind(s.last_error.as_ref().map(|e| e.message.clone()))
        .bind(s.last_error.as_ref().map(|e| to_micros(e.at)))
        .bind(s.lag_seconds)
        .bind(to_micros(Utc::now()))
        .bind(account)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }
}

pub(super) fn event_from_row(row: &AnyRow) -> StoreResult<Event> {
    let seq: i64 = row.try_get("seq")?;
    let t: String = row.try_get("type")?;
    let data: String = row.try_get("data")?;
    let changes: Option<String> = row.try_get("changes")?;
    Ok(Event {
        seq: seq.to_string(),
        event_type: EventType::parse(&t)
            .ok_or_else(|| StoreError::Corrupt(format!("event type {t:?}")))?,
        at: from_micros(row.try_get("at")?)?,
        account: row.try_get("account")?,
        provider: row.try_get("provider")?,
        session_id: row.try_get("session_id")?,
        message_id: row.try_get("message_id")?,
        data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        changes: changes
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}
