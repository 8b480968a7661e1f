//! One writer per account at a time on PostgreSQL.
//!
//! Ingest and the API's writes (sends, session actions, delivery results)
//! read a session row, change it in memory and write it back. On SQLite the
//! store's writer lock already runs such transactions one after another; on
//! PostgreSQL each takes this transaction-scoped advisory lock, keyed by the
//! account, as its first step, so a close recorded by the API and the
//! provider's echo of it (or a send and a synced message) never both read
//! the old row and both announce the change. Always taken before the event
//! lock, and never two accounts in one transaction, so the locks cannot
//! deadlock.

use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

use super::{Backend, StoreResult};

/// The advisory lock key of an account: a hash of its name in a namespace
/// of its own.
fn key(account: &str) -> i64 {
    let digest = Sha256::digest(format!("chatgw-account\0{account}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Takes the account's lock for the rest of the transaction (PostgreSQL).
pub(crate) async fn lock(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    account: &str,
) -> StoreResult<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key(account))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(key("spark-main"), key("spark-main"));
        assert_ne!(key("spark-main"), key("spark-mai"));
    }
}
