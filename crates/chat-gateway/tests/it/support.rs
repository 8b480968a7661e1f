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

/// A loopback port nothing listens on right now, for a process the test
/// starts (which binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        sqlx::postgres::PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| {
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

/// A gateway served on 127.0.0.1:0 by the real `server::run`, stopped on drop.
pub struct TestGateway {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Arc<SqlStore>,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Keeps the database alive (dropped, it is removed) for the gateway's lifetime.
    _db: TestDb,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    /// Starts a gateway on a fresh database with `toml` as its config file.
    pub async fn start(db: Db, toml: &str) -> TestGateway {
        let tdb = TestDb::new(db).await;
        let mut config = chat_gateway::config::Config::parse(toml).unwrap();
        config.database.url = tdb.url.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(chat_gateway::server::run(
            config,
            listener,
            shutdown.clone(),
            chat_gateway::server::RunOptions::default(),
        ));
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(!task.is_finished(), "gateway exited during start-up");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let store = tdb.store().await;
        TestGateway {
            base,
            http,
            store,
            shutdown,
            _db: tdb,
            task: Some(task),
        }
    }

    /// The gateway's database URL (for a second store, as another replica).
    pub fn db_url(&self) -> &str {
        &self._db.url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with an optional bearer key; returns status and JSON body.
    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// POST a raw body; returns status and JSON body.
    pub async fn post_raw(
        &self,
        path: &str,
        key: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// Stops the gateway and waits for it to exit.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A config key: the plaintext to send and the config line to accept it.
pub fn api_key(name: &str, scopes: &[&str], accounts: &[&str]) -> (String, String) {
    use sha2::Digest;
    let key = format!("test-key-{name}");
    let hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    let scopes = scopes
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let accounts = accounts
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let toml = format!(
        "[[api_keys]]\nname = \"{name}\"\nsha256 = \"{hash}\"\nscopes = [{scopes}]\naccounts = [{accounts}]\n"
    );
    (key, toml)
}

/// Polls `check` every 50 ms until it returns true or `secs` pass.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Simulator options for tests: short holds and lifetimes, fixed seed.
pub fn sim_options() -> provider_sim::SimOptions {
    provider_sim::SimOptions {
        spark_hold: std::time::Duration::from_millis(500),
        seed: Some(7),
        ..Default::default()
    }
}

/// All three simulators on one port.
pub async fn start_sim(opts: provider_sim::SimOptions) -> provider_sim::SimServer {
    provider_sim::start(
        provider_sim::SimProvider::All,
        "127.0.0.1:0".parse().unwrap(),
        opts,
    )
    .await
    .unwrap()
}

/// Gateway accounts for the three simulators at `sim`, syncing quickly.
pub fn sim_accounts(sim: &str, ccm_customers: &[&str]) -> String {
    let o = provider_sim::SimOptions::default();
    let auth = o
        .spark_auth
        .map(|h| format!("headers = {{ {} = \"{}\" }}", h.name, h.value))
        .unwrap_or_default();
    let customers = ccm_customers
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[[accounts]]\nname = \"spark\"\nprovider = \"spark\"\nbase_url = \"{sim}\"\npoll_timeout_secs = 3\nrequest_timeout_secs = 2\n{auth}\n\
         [[accounts]]\nname = \"ccm\"\nprovider = \"ccmessaging\"\nbase_url = \"{sim}\"\napp_key = \"{ak}\"\napp_secret = \"{sk}\"\nchannel_id = \"{ch}\"\ncustomers = [{customers}]\npoll_interval_secs = 1\nrequest_timeout_secs = 2\n\
         [[accounts]]\nname = \"kchat\"\nprovider = \"kchat\"\nbase_url = \"{sim}\"\nemail = \"{em}\"\napi_token = \"{tk}\"\npoll_interval_secs = 1\nrequest_timeout_secs = 2\n",
        ak = o.ccm.app_key,
        sk = o.ccm.app_secret,
        ch = o.ccm.channel_id,
        em = o.kchat.email,
        tk = o.kchat.api_token,
    )
}

/// Counts rows of a table for an account (tests read the database directly).
pub async fn count(store: &SqlStore, table: &str, account: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(&format!("SELECT COUNT(*) FROM {table} WHERE account = $1"))
        .bind(account)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// A `chat-gateway serve` child process, killed (SIGKILL) on drop.
pub struct GatewayProcess {
    child: std::process::Child,
    _config: tempfile::NamedTempFile,
}

impl GatewayProcess {
    pub fn spawn(config_toml: &str, database_url: &str) -> GatewayProcess {
        Self::spawn_on(config_toml, database_url, "127.0.0.1:0")
    }

    /// Like [`GatewayProcess::spawn`], serving the API on `listen`.
    pub fn spawn_on(config_toml: &str, database_url: &str, listen: &str) -> GatewayProcess {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(config_toml.as_bytes()).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_chat-gateway"))
            .args([
                "serve",
                "--listen",
                listen,
                "--database-url",
                database_url,
                "--config",
            ])
            .arg(file.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        GatewayProcess {
            child,
            _config: file,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
