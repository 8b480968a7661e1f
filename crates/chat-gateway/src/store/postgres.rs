//! PostgreSQL dialect: production, several replicas on one database.
//!
//! Event `seq` comes from an identity column; to make it grow in *commit*
//! order (so a reader following the feed never skips a late commit), every
//! transaction that writes events takes one transaction-scoped advisory lock
//! right before inserting them, as its last step. Commits are announced with
//! `pg_notify`, which PostgreSQL delivers at commit to every replica.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgListener;
use sqlx::{AnyPool, ConnectOptions};
use std::sync::Weak;
use tokio::sync::watch;

/// This backend's schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Advisory lock key serialising event writers (any constant unique to us).
pub(super) const EVENT_LOCK_KEY: i64 = 0x6368_6174_6777_0001;

/// The channel commits are announced on.
pub(super) const NOTIFY_CHANNEL: &str = "chatgw_events";

/// Opens the pool.
pub(super) async fn pool(url: &str, max_connections: u32) -> Result<AnyPool, sqlx::Error> {
    let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
    AnyPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(super::ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
}

/// Follows commit announcements from every replica and bumps `wake`; on a
/// lost connection it reconnects and bumps once (a waiter re-reads the feed,
/// so a missed notification costs a query, never an event).
pub(super) fn spawn_listener(url: String, wake: Weak<watch::Sender<u64>>) {
    let bump = move || match wake.upgrade() {
        Some(w) => {
            w.send_modify(|v| *v += 1);
            true
        }
        None => false,
    };
    tokio::spawn(async move {
        loop {
            match PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
                        tracing::warn!(error = %e, "LISTEN failed; retrying");
                    } else {
                        if !bump() {
                            return;
                        }
                        loop {
                            match listener.recv().await {
                                Ok(_) => {
                                    if !bump() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "notification connection lost");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot open notification connection"),
            }
            if !bump() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
