//! SQLite dialect: the embedded single-node default.
//!
//! One process owns the file. Writes are serialised by an in-process lock, so
//! event `seq` (an AUTOINCREMENT key) grows in commit order by construction
//! and no deferred transaction ever fails to upgrade to a writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::str::FromStr;
use tokio::sync::{watch, Mutex};

/// This backend's schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Opens the pool: WAL so readers never wait for the writer, a busy timeout
/// for the rare cross-connection lock, foreign keys on.
pub(super) async fn pool(url: &str, max_connections: u32) -> Result<AnyPool, sqlx::Error> {
    let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
    AnyPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(super::ACQUIRE_TIMEOUT)
        .after_release(|conn, _meta| {
            Box::pin(async move {
                // A connection goes back to the pool only outside any
                // transaction. After a failed write (a full disk, say)
                // SQLite may have ended the transaction itself or kept it
                // open; either way sqlx's own bookkeeping can be wrong, and
                // a pooled connection left inside a transaction holds the
                // write lock ("database is locked" for everyone else) and
                // hides what it wrote. `BEGIN` fails exactly when a
                // transaction is open: such a connection is closed.
                match conn.execute("BEGIN").await {
                    Ok(_) => {
                        conn.execute("ROLLBACK").await?;
                        Ok(true)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e,
                            "connection released inside a transaction; closing it");
                        Ok(false)
                    }
                }
            })
        })
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                     PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                )
                .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

type Handles = (Weak<Mutex<()>>, Weak<watch::Sender<u64>>);

/// The writer lock and commit signal of a database file, shared by every
/// store this process opens on it: a commit through one wakes feed readers
/// of all, and writes through any of them take turns.
pub(super) fn shared_handles(url: &str) -> (Arc<Mutex<()>>, Arc<watch::Sender<u64>>) {
    static REGISTRY: OnceLock<StdMutex<HashMap<String, Handles>>> = OnceLock::new();
    let key = url.split('?').next().unwrap_or(url).to_string();
    let mut map = REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.retain(|_, (l, w)| l.strong_count() > 0 && w.strong_count() > 0);
    if let Some((l, w)) = map.get(&key) {
        if let (Some(l), Some(w)) = (l.upgrade(), w.upgrade()) {
            return (l, w);
        }
    }
    let lock = Arc::new(Mutex::new(()));
    let wake = Arc::new(watch::channel(0u64).0);
    map.insert(key, (Arc::downgrade(&lock), Arc::downgrade(&wake)));
    (lock, wake)
}
