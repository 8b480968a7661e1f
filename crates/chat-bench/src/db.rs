//! Fresh databases per scenario run, and the harness's own connections.
//!
//! SQLite: a new file in a new temporary directory. PostgreSQL: a new
//! database on the server named by `--database-url`, dropped afterwards
//! (also after an error, a panic or Ctrl-C: see [`drop_leftovers`]). Either
//! way the schema is applied by the gateway binary itself
//! (`chat-gateway migrate`), so the harness writes into exactly the schema
//! the gateway uses.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Executor};

/// Where fresh databases come from.
#[derive(Debug, Clone)]
pub enum DbServer {
    /// A file per database in a temporary directory.
    Sqlite,
    /// A database per run on this server.
    Postgres {
        /// The URL given; databases are created and dropped through it.
        admin_url: String,
    },
}

impl DbServer {
    /// Checks the PostgreSQL URL answers.
    pub async fn postgres(url: &str) -> anyhow::Result<DbServer> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("--database-url must be a postgres:// URL (SQLite is the default)");
        }
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        conn.execute("SELECT 1").await?;
        conn.close().await?;
        Ok(DbServer::Postgres {
            admin_url: url.to_string(),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn name(&self) -> &'static str {
        match self {
            DbServer::Sqlite => "sqlite",
            DbServer::Postgres { .. } => "postgres",
        }
    }
}

static CREATED: AtomicUsize = AtomicUsize::new(0);

/// PostgreSQL databases made and not yet dropped: (admin URL, name).
static LIVE: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<(String, String)>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// One fresh, migrated database.
#[derive(Debug)]
pub struct FreshDb {
    /// The URL the gateway is given.
    pub url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl FreshDb {
    /// Creates a database and applies the gateway's migrations to it.
    pub async fn create(server: &DbServer, gateway: &Path) -> anyhow::Result<FreshDb> {
        let n = CREATED.fetch_add(1, Ordering::Relaxed);
        let db = match server {
            DbServer::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("chat-bench-")
                    .tempdir()
                    .context("creating a temporary directory")?;
                let path: PathBuf = dir.path().join(format!("bench-{n}.db"));
                FreshDb {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    kind: Kind::Sqlite { _dir: dir },
                }
            }
            DbServer::Postgres { admin_url } => {
                let name = format!("chat_bench_{}_{n}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(admin_url).await?;
                conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                    .await
                    .with_context(|| format!("creating database {name}"))?;
                conn.close().await?;
                live().push((admin_url.clone(), name.clone()));
                let mut url = reqwest::Url::parse(admin_url).context("parsing --database-url")?;
                url.set_path(&format!("/{name}"));
                FreshDb {
                    url: url.to_string(),
                    kind: Kind::Postgres {
                        admin_url: admin_url.clone(),
                        name,
                    },
                }
            }
        };
        db.migrate(gateway)?;
        Ok(db)
    }

    fn migrate(&self, gateway: &Path) -> anyhow::Result<()> {
        // From a neutral directory, so no ./chat-gateway.toml is picked up.
        let out = Command::new(gateway)
            .args(["migrate", "--database-url", &self.url])
            .current_dir(std::env::temp_dir())
            .env_remove("CHATGW_CONFIG")
            .output()
            .context("running chat-gateway migrate")?;
        if !out.status.success() {
            bail!(
                "chat-gateway migrate failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// A pool of the harness's own, configured as the gateway configures its
    /// connections (SQLite: WAL, `synchronous=NORMAL`, busy timeout).
    pub async fn pool(&self, max_connections: u32) -> anyhow::Result<Pool> {
        Pool::connect(&self.url, max_connections).await
    }

    /// Drops the database (PostgreSQL) or deletes the file (SQLite).
    pub async fn cleanup(self) -> anyhow::Result<()> {
        if let Kind::Postgres { admin_url, name } = &self.kind {
            drop_database(admin_url, name).await?;
            live().retain(|(_, n)| n != name);
        }
        Ok(())
    }
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await
        .with_context(|| format!("dropping database {name}"))?;
    conn.close().await?;
    Ok(())
}

/// Drops every database this process created and did not drop (after an
/// error, a panic or Ctrl-C).
pub async fn drop_leftovers() {
    let left: Vec<(String, String)> = std::mem::take(&mut *live());
    for (admin, name) in left {
        if let Err(e) = drop_database(&admin, &name).await {
            eprintln!("could not drop database {name}: {e:#}");
        }
    }
}

/// The harness's connections to a fresh database.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool, whichever it is.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Pool {
    /// Connects to `url` (`sqlite:` or `postgres://`).
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Pool> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .disable_statement_logging();
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .connect_with(options)
                .await
                .with_context(|| format!("opening {url}"))?;
            Ok(Pool::Sqlite(pool))
        } else {
            let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .with_context(|| format!("connecting to {url}"))?;
            Ok(Pool::Postgres(pool))
        }
    }

    /// `SELECT COUNT(*) FROM {table}`.
    pub async fn count(&self, table: &str) -> anyhow::Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(&sql).fetch_one(p).await?);
        Ok(n)
    }

    /// Opens `n` connections now, so a timed section does not pay for them.
    pub async fn warm(&self, n: usize) -> anyhow::Result<()> {
        on_pool!(self, p => {
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                held.push(p.acquire().await?);
            }
        });
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }
}
