//! Test harness: fresh databases per test on both backends.

use chat_gateway::store::{SqlStore, Store};
use std::sync::Arc;

/// The PostgreSQL server tests use: `DATABASE_URL` when set (scripts/test
/// sets it), else the conventional local server. Tests fail, never skip,
/// when it cannot be reached.
pub fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database made for one test and removed after it.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(db: Db) -> TestDb {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Db::Postgres => {
                let admin = pg_admin_url();
                let name = format!("chatgw_t_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::postgres::PgConnection::connect_helper(&admin).await;
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Arc<SqlStore> {
        let store = SqlStore::connect(&self.url, 8).await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }
}

trait ConnectHelper {
    async fn connect_helper(url: &str) -> sqlx::postgres::PgConnection;
}

impl ConnectHelper for sqlx::postgres::PgConnection {
    async fn connect_helper(url: &str) -> sqlx::postgres::PgConnection {
        use sqlx::Connection;
        sqlx::postgres::PgConnection::connect(url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for these tests and could not be reached at {url}: {e}. \
                 Run scripts/test, which finds or starts one, or set DATABASE_URL."
            )
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = pg_admin_url();
            // Best effort, on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::postgres::PgConnection::connect(&admin).await {
                        let _ = sqlx::Executor::execute(
                            &mut c,
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                        )
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Declares each listed async test fn `name(db: Db)` twice: once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::support::Db::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::support::Db::Postgres).await }
            )*
        }
    };
}

/// Keeps `Store` in scope for tests using the trait's methods.
pub fn _uses(_: &dyn Store) {}
