//! What an operator reads: the start-up line, one access-log line per
//! request (no colour codes in a file), and suggestions for mistyped flags.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, wait_until, Db, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_and_access_log_lines_say_what_operators_need() {
    let tdb = TestDb::new(Db::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-gateway"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &tdb.url,
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("CHATGW_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until(30, "the gateway ready", || {
        let r = http.get(format!("{base}/readyz")).send();
        async move { r.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    let ready_lines = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter(|l| l.contains("chat_gateway::access"))
        .count();
    for (path, id) in [
        ("/v1/sessions", "req-one"),
        ("/v1/sessions/S-404", "req-two"),
        ("/no/such/route", "req-three"),
    ] {
        http.get(format!("{base}{path}"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();

    assert!(!log.contains('\u{1b}'), "colour codes in a file:\n{log}");
    let start = log
        .lines()
        .find(|l| l.contains("chat-gateway listening"))
        .unwrap_or_else(|| panic!("no start-up line:\n{log}"));
    for part in [
        format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        "config_file=none".to_string(),
        "database=sqlite://".to_string(),
        "accounts=0".to_string(),
        format!("listen=http://127.0.0.1:{port}"),
    ] {
        assert!(start.contains(&part), "{part} missing: {start}");
    }
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("chat_gateway::access"))
        .skip(ready_lines)
        .collect();
    assert_eq!(access.len(), 3, "one line per request:\n{log}");
    for (line, (id, route, status)) in access.iter().zip([
        ("req-one", "route=\"/v1/sessions\"", "status=200"),
        ("req-two", "route=\"/v1/sessions/{id}\"", "status=404"),
        ("req-three", "route=\"unmatched\"", "status=404"),
    ]) {
        for part in [
            format!("request_id={id}"),
            "method=GET".to_string(),
            route.to_string(),
            status.to_string(),
            "latency_ms=".to_string(),
        ] {
            assert!(line.contains(&part), "{part} missing: {line}");
        }
        assert!(line.contains(" INFO "), "{line}");
    }
}

#[test]
fn a_mistyped_flag_gets_a_suggestion() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-gateway"))
        .args(["serve", "--lisen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'--listen'"), "{stderr}");
}
