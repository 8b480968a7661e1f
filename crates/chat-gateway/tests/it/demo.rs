//! `chat-gateway demo` as a user runs it: a second demo on the same port
//! fails cleanly and leaves the first one's database alone; one on another
//! port keeps a database of its own.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{free_port, wait_until};

/// A `chat-gateway demo` child process, killed on drop.
struct Demo(Child);

impl Demo {
    /// Starts a demo on `port` with `tmp` as its working and temporary
    /// folder; `capture`: keep its stderr to read (only for a short-lived one).
    fn spawn(port: u16, tmp: &std::path::Path, capture: bool) -> Demo {
        Demo(
            Command::new(env!("CARGO_BIN_EXE_chat-gateway"))
                .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
                .current_dir(tmp)
                .env("TMPDIR", tmp)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(if capture {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn first_session(http: &reqwest::Client, base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/v1/sessions?limit=1")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                if let Some(id) = v["data"][0]["id"].as_str() {
                    return id.to_string();
                }
            }
        }
        assert!(Instant::now() < deadline, "the demo never served a session");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_demo_on_the_same_port_fails_without_harming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let _first = Demo::spawn(port, tmp.path(), false);
    wait_until(60, "the first demo ready", || {
        let r = http.get(format!("{base}/readyz")).send();
        async move { r.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    let sid = first_session(&http, &base).await;
    let db = tmp
        .path()
        .join(format!("chat-gateway-demo-{port}"))
        .join("demo.db");
    assert!(db.exists(), "no database at {}", db.display());
    let db_len = std::fs::metadata(&db).unwrap().len();

    // Same port: refused before it touches anything, with a clear message.
    let mut second = Demo::spawn(port, tmp.path(), true);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = second.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the second demo did not give up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let mut stderr = String::new();
    second
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        db.exists(),
        "the second demo removed the first one's database"
    );
    assert!(std::fs::metadata(&db).unwrap().len() >= db_len);

    // The first demo is unharmed: the same session answers every time.
    for _ in 0..20 {
        let r = http
            .get(format!("{base}/v1/sessions/{sid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    // Another port, same folder: a database of its own, the first's untouched.
    let other_port = free_port();
    let other_base = format!("http://127.0.0.1:{other_port}");
    let _other = Demo::spawn(other_port, tmp.path(), false);
    wait_until(60, "the other demo ready", || {
        let r = http.get(format!("{other_base}/readyz")).send();
        async move { r.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    assert!(tmp
        .path()
        .join(format!("chat-gateway-demo-{other_port}"))
        .join("demo.db")
        .exists());
    for _ in 0..20 {
        let r = http
            .get(format!("{base}/v1/sessions/{sid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(db.exists());
}
