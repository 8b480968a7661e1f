//! A gateway process, a simulator and a fresh database per test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use chat_gateway_client::{Client, Session, SessionFilter};
use futures_util::TryStreamExt;
use provider_sim::{SimControl, SimOptions, SimProvider, SimServer, SparkInject};
use sha2::Digest;

/// The API key with every scope.
pub const ADMIN_KEY: &str = "cgw_test_admin_key_0123456789";
/// A key with `read` only.
pub const READ_KEY: &str = "cgw_test_read_key_0123456789";

#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Declares each listed `async fn name(db: Db)` once per backend.
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

fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The `chat-gateway` executable of this workspace, built once if absent
/// (`cargo test --workspace` builds it before any test runs).
fn gateway_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        let bin = target.join("debug/chat-gateway");
        if !bin.exists() {
            let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["build", "-p", "chat-gateway", "--manifest-path"])
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"))
                .status()
                .expect("running cargo build -p chat-gateway");
            assert!(status.success(), "cargo build -p chat-gateway failed");
        }
        bin
    })
}

fn sha256_hex(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// Everything one test runs against.
pub struct Env {
    pub sim: SimServer,
    pub gw: Gateway,
    _db: TestDb,
}

impl Env {
    pub async fn start(db: Db) -> Env {
        let opts = SimOptions {
            spark_hold: Duration::from_secs(2),
            ..SimOptions::default()
        };
        let sim = provider_sim::start(SimProvider::All, "127.0.0.1:0".parse().unwrap(), opts)
            .await
            .unwrap();
        let test_db = TestDb::new(db).await;
        let gw = Gateway::start(&config(sim.base_url()), &test_db.url).await;
        Env {
            sim,
            gw,
            _db: test_db,
        }
    }

    pub fn control(&self) -> SimControl {
        self.sim.control()
    }

    /// A client with every scope.
    pub fn client(&self) -> Client {
        Client::new(self.gw.base_url(), ADMIN_KEY).unwrap()
    }

    /// A customer message at the simulator's Spark; waits for the session
    /// the gateway makes of it.
    pub async fn customer_session(&self, customer: &str, text: &str) -> Session {
        inject(&self.control(), customer, text);
        let client = self.client();
        let filter = SessionFilter {
            customer_id: Some(customer.into()),
            ..SessionFilter::default()
        };
        for _ in 0..400 {
            let found: Vec<Session> = client.sessions(&filter).try_collect().await.unwrap();
            if let Some(s) = found.into_iter().next() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the session of {customer} never arrived");
    }
}

/// A customer message at the simulator's Spark.
pub fn inject(sim: &SimControl, customer: &str, text: &str) {
    sim.spark_inject(SparkInject {
        customer_id: Some(customer.into()),
        customer_name: Some(format!("客户{customer}")),
        agent_id: Some("1001".into()),
        text: Some(text.into()),
        ..Default::default()
    })
    .unwrap();
}

/// The gateway's config: two keys and the three simulated accounts.
fn config(sim: &str) -> String {
    let o = SimOptions::default();
    let spark_auth = o
        .spark_auth
        .map(|h| format!("headers = {{ {} = \"{}\" }}", h.name, h.value))
        .unwrap_or_default();
    format!(
        r#"[outbox]
retry_base_ms = 50
retry_max_secs = 1
poll_interval_ms = 200

[[api_keys]]
name = "admin"
sha256 = "{admin}"
scopes = ["read", "write", "admin"]

[[api_keys]]
name = "reader"
sha256 = "{reader}"
scopes = ["read"]

[[accounts]]
name = "spark"
provider = "spark"
base_url = "{sim}"
poll_timeout_secs = 2
request_timeout_secs = 2
{spark_auth}

[[accounts]]
name = "ccm"
provider = "ccmessaging"
base_url = "{sim}"
app_key = "{ak}"
app_secret = "{sk}"
channel_id = "{ch}"
poll_interval_secs = 1
request_timeout_secs = 2

[[accounts]]
name = "kchat"
provider = "kchat"
base_url = "{sim}"
email = "{em}"
api_token = "{tk}"
poll_interval_secs = 1
request_timeout_secs = 2
"#,
        admin = sha256_hex(ADMIN_KEY),
        reader = sha256_hex(READ_KEY),
        ak = o.ccm.app_key,
        sk = o.ccm.app_secret,
        ch = o.ccm.channel_id,
        em = o.kchat.email,
        tk = o.kchat.api_token,
    )
}

/// A `chat-gateway serve` child process on a fixed port, SIGKILLed on drop.
pub struct Gateway {
    child: Option<Child>,
    port: u16,
    database_url: String,
    dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(config: &str, database_url: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("chat-gateway.toml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut gw = Gateway {
            child: None,
            port,
            database_url: database_url.to_string(),
            dir,
        };
        gw.restart().await;
        gw
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process (again) on the same port and database; returns
    /// once `/readyz` answers 200.
    pub async fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("gateway.log"))
            .unwrap();
        let child = Command::new(gateway_bin())
            .current_dir(self.dir.path())
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--database-url")
            .arg(&self.database_url)
            .arg("--config")
            .arg(self.dir.path().join("chat-gateway.toml"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{}/readyz", self.base_url())).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.dir.path().join("gateway.log"));
                panic!("the gateway exited ({status}): {log:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway never became ready");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A database made for one test and dropped after it.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    async fn new(db: Db) -> TestDb {
        use sqlx::Connection;
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("gw.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Db::Postgres => {
                let admin = pg_admin_url();
                let name = format!("chatgw_client_{}", uuid_simple());
                let mut conn = sqlx::postgres::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL is required at {admin} (set DATABASE_URL): {e}")
                    });
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
}

fn uuid_simple() -> String {
    chat_gateway_client::new_idempotency_key().replace('-', "")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = pg_admin_url();
            // Drop cannot await: a thread with its own runtime, best effort.
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
