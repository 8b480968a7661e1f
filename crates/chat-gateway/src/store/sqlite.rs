//! SQLite dialect: the embedded single-node default.
//!
//! One process owns the file. Writes are serialised by an in-process lock, so
//! event `seq` (an AUTOINCREMENT key) grows in commit order by construction
//! and no deferred transaction ever fails to upgrade to a writer.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::str::FromStr;

/// This backend's schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Opens the pool: WAL so readers never wait for the writer, a busy timeout
/// for the rare cross-connection lock, foreign keys on.
pub(super) async fn pool(url: &str, max_connections: u32) -> Result<AnyPool, sqlx::Error> {
    let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
    AnyPoolOptions::new()
        .max_connections(max_connections.max(2))
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
