//! The database becomes unreachable (a TCP proxy in front of PostgreSQL
//! stops forwarding and holds new connections without answering, as a
//! network partition does): `/readyz` and DB-backed requests answer 503
//! `unavailable` within 2 s instead of hanging, and everything answers again
//! within 1 s of the database's return, without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::{api_key, Db, TestDb};

/// A TCP proxy that can be cut: while down it drops the connections it
/// carries and holds new ones open without ever answering.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let live: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, live2) = (up.clone(), live.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let up = up2.load(Ordering::SeqCst);
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if !up {
                        // A partition: the connection is neither served nor refused.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(client);
                        return;
                    }
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                live2.lock().unwrap().push(task);
            }
        });
        Proxy {
            port,
            up,
            live,
            accept,
        }
    }

    /// Cuts every carried connection and starts holding new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for t in self.live.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Forwards new connections again (the held ones stay dead).
    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.live.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Status, `error.code` and how long a GET took.
async fn timed_get(http: &reqwest::Client, url: &str, key: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let resp = http.get(url).bearer_auth(key).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let code = body["error"]["code"].as_str().unwrap_or("").to_string();
    (status, code, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_answers_503_fast_and_recovers() {
    let tdb = TestDb::new(Db::Postgres).await;
    let _migrated = tdb.store().await;
    let url = url::Url::parse(&tdb.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(target).await;
    let mut proxied = url.clone();
    proxied.set_host(Some("127.0.0.1")).unwrap();
    proxied.set_port(Some(proxy.port)).unwrap();

    let (key, key_line) = api_key("reader", &["read"], &["*"]);
    let toml = format!(
        "{key_line}[[accounts]]\nname = \"spark-main\"\nprovider = \"spark\"\n\
         base_url = \"http://127.0.0.1:9\"\n"
    );
    let mut config = chat_gateway::config::Config::parse(&toml).unwrap();
    config.database.url = proxied.to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(chat_gateway::server::run(
        config,
        listener,
        shutdown.clone(),
        chat_gateway::server::RunOptions::default(),
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ready = format!("{base}/readyz");
    let sessions = format!("{base}/v1/sessions");
    crate::support::wait_until(10, "the gateway is ready", || {
        let (http, ready, key) = (http.clone(), ready.clone(), key.clone());
        async move { timed_get(&http, &ready, &key).await.0 == 200 }
    })
    .await;
    assert_eq!(timed_get(&http, &sessions, &key).await.0, 200);

    proxy.cut();
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        for url in [&ready, &sessions] {
            let (status, code, took) = timed_get(&http, url, &key).await;
            assert_eq!((status, code.as_str()), (503, "unavailable"), "{url}");
            assert!(took < Duration::from_secs(2), "{url} took {took:?}");
            slowest = slowest.max(took);
        }
    }

    proxy.restore();
    let restored = Instant::now();
    loop {
        let (a, _, _) = timed_get(&http, &ready, &key).await;
        let (b, _, _) = timed_get(&http, &sessions, &key).await;
        if (a, b) == (200, 200) {
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(1),
            "still failing {:?} after the database came back ({a}, {b})",
            restored.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "database outage: slowest 503 {:?}; recovered {:?} after the database returned",
        slowest,
        restored.elapsed()
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
