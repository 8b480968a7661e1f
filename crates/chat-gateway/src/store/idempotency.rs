//! `Idempotency-Key` records: a reservation made before the work, the answer
//! stored with it (for sends, in the work's own transaction).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::actions::IdempotencyBegin;
use super::rows::to_micros;
use super::sql::SqlStore;
use super::StoreResult;

/// [`super::ActionStore::idempotency_begin`].
pub(super) async fn begin(
    store: &SqlStore,
    scope: &str,
    key: &str,
    hash: &str,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
    expired_before: DateTime<Utc>,
) -> StoreResult<IdempotencyBegin> {
    let _guard = store.write_guard().await;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (api_key_name, key, request_hash, status, response, created_at) \
         VALUES ($1, $2, $3, NULL, NULL, $4) ON CONFLICT (api_key_name, key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(hash)
    .bind(to_micros(now))
    .execute(&store.pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(IdempotencyBegin::Started);
    }
    let Some(row) = sqlx::query(
        "SELECT request_hash, status, response, created_at FROM idempotency_keys \
         WHERE api_key_name = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(&store.pool)
    .await?
    else {
        // Abandoned between our insert and this read: the caller asks again.
        return Ok(IdempotencyBegin::InProgress);
    };
    let stored_hash: String = row.try_get("request_hash")?;
    let status: Option<i64> = row.try_get("status")?;
    let response: Option<String> = row.try_get("response")?;
    let created_at: i64 = row.try_get("created_at")?;
    let expired = created_at < to_micros(expired_before);
    let stale = status.is_none() && created_at < to_micros(stale_before);
    if expired || stale {
        // Take it over, unless another request just did.
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET request_hash = $1, status = NULL, response = NULL, \
             created_at = $2 WHERE api_key_name = $3 AND key = $4 AND created_at = $5",
        )
        .bind(hash)
        .bind(to_micros(now))
        .bind(scope)
        .bind(key)
        .bind(created_at)
        .execute(&store.pool)
        .await?;
        return Ok(if taken.rows_affected() == 1 {
            IdempotencyBegin::Started
        } else {
            IdempotencyBegin::InProgress
        });
    }
    if stored_hash != hash {
        return Ok(IdempotencyBegin::Mismatch);
    }
    Ok(match (status, response) {
        (Some(status), Some(body)) => IdempotencyBegin::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        },
        _ => IdempotencyBegin::InProgress,
    })
}

/// [`super::ActionStore::idempotency_finish`].
pub(super) async fn finish(
    store: &SqlStore,
    scope: &str,
    key: &str,
    status: u16,
    body: &str,
) -> StoreResult<()> {
    let _guard = store.write_guard().await;
    sqlx::query("UPDATE idempotency_keys SET status = $1, response = $2 WHERE api_key_name = $3 AND key = $4")
        .bind(i64::from(status))
        .bind(body)
        .bind(scope)
        .bind(key)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// [`super::ActionStore::idempotency_abandon`].
pub(super) async fn abandon(store: &SqlStore, scope: &str, key: &str) -> StoreResult<()> {
    let _guard = store.write_guard().await;
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE api_key_name = $1 AND key = $2 AND status IS NULL",
    )
    .bind(scope)
    .bind(key)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// [`super::ActionStore::prune_idempotency_keys`].
pub(super) async fn prune(store: &SqlStore, older_than: DateTime<Utc>) -> StoreResult<u64> {
    let _guard = store.write_guard().await;
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(to_micros(older_than))
        .execute(&store.pool)
        .await?;
    Ok(done.rows_affected())
}
