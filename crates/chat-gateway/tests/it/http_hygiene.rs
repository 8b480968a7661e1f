//! Slow and oversized clients over raw TCP (API.md Conventions): a declared
//! body over 1 MiB is refused from its headers, a stalled body gets 408, and
//! connections that never finish their headers are closed after 10 s while
//! everyone else is served as usual.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::on_both_backends;
use crate::support::*;

/// Sends `head` (and `body`) on a fresh connection, then reads until the
/// server closes or `wait` passes; returns what came back and how long the
/// first byte took.
async fn raw_exchange(addr: &str, head: &str, body: &[u8], wait: Duration) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                first.get_or_insert_with(|| started.elapsed());
                out.extend_from_slice(&buf[..n]);
                // One complete answer is enough.
                let text = String::from_utf8_lossy(&out);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if out.len() >= end + 4 + len {
                        break;
                    }
                }
            }
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        first.unwrap_or(wait),
    )
}

fn host(gw: &TestGateway) -> String {
    gw.base.trim_start_matches("http://").to_string()
}

async fn a_declared_body_over_1_mib_is_refused_at_once(db: Db) {
    let gw = TestGateway::start(db, "").await;
    let addr = host(&gw);
    for (length, expect) in [
        ("2147483648", false),
        ("2097152", false),
        ("2097152", true),
        ("2147483648", true),
    ] {
        for path in ["/v1/sessions/S1/messages", "/v1/webhooks"] {
            let expect_line = if expect {
                "Expect: 100-continue\r\n"
            } else {
                ""
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {length}\r\n{expect_line}\r\n"
            );
            // Only the headers: an answer that waited for the body would never come.
            let (answer, took) = raw_exchange(&addr, &head, b"", Duration::from_secs(5)).await;
            assert!(
                answer.starts_with("HTTP/1.1 413"),
                "{path} {length} expect={expect}: {answer}"
            );
            assert!(!answer.contains("100 Continue"), "{answer}");
            assert!(answer.contains("\"payload_too_large\""), "{answer}");
            assert!(took < Duration::from_secs(1), "{path}: took {took:?}");
        }
    }
    // Exactly 1 MiB declared is within the limit: the body is awaited and read.
    let head = format!(
        "POST /v1/sessions/S1/messages HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 1048576\r\nConnection: close\r\n\r\n"
    );
    let mut body = br#"{"kind": "text", "text": ""#.to_vec();
    body.resize(1048576 - 2, b'a');
    body.extend_from_slice(b"\"}");
    let (answer, _) = raw_exchange(&addr, &head, &body, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    // A small body announced with `Expect: 100-continue` is invited, then read.
    let body = br#"{"kind": "text", "text": "hi"}"#;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        format!(
            "POST /v1/sessions/S1/messages HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(body).await.unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.contains("HTTP/1.1 404"), "{rest}");
    assert!(rest.contains("\"not_found\""), "{rest}");
    gw.stop().await;
}

async fn a_body_that_stops_arriving_gets_408(db: Db) {
    let gw = TestGateway::start(db, "[server]\nrequest_timeout_secs = 2\n").await;
    let addr = host(&gw);
    for path in ["/v1/sessions/S1/messages", "/v1/webhooks"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n"
        );
        let (answer, took) =
            raw_exchange(&addr, &head, br#"{"kind": "te"#, Duration::from_secs(6)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("\"request_timeout\""), "{answer}");
        assert!(
            took >= Duration::from_millis(1500) && took <= Duration::from_millis(2100),
            "{path}: 408 after {took:?}, budget 2 s"
        );
    }
    // A complete body on the same budget is served normally.
    let (status, body) = gw
        .post_raw(
            "/v1/sessions/S1/messages",
            None,
            r#"{"kind":"text","text":"hi"}"#,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    gw.stop().await;
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// One slow client: a header byte per second until the server hangs up.
/// Returns how long after connecting the connection was closed.
async fn slow_header_client(addr: String) -> Option<Duration> {
    let mut s = TcpStream::connect(&addr).await.ok()?;
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut buf = [0u8; 256];
    for byte in head.iter().cycle().take(60) {
        if s.write_all(&[*byte]).await.is_err() {
            return Some(started.elapsed());
        }
        tokio::select! {
            r = s.read(&mut buf) => match r {
                // Anything but more waiting means the server gave up on us.
                Ok(_) | Err(_) => return Some(started.elapsed()),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    None
}

/// 2,000 connections sending a header byte per second against a gateway
/// process: all are closed about 10 s after they connected, ordinary
/// requests keep answering fast meanwhile, and the process's memory is
/// measured before, during and after (printed; run with `--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_dropped_after_10_s() {
    const SLOW: usize = 2000;
    let tdb = TestDb::new(Db::Sqlite).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let gw = GatewayProcess::spawn_on("", &tdb.url, &addr);
    let http = reqwest::Client::new();
    wait_until(30, "the gateway ready", || {
        let r = http.get(format!("http://{addr}/readyz")).send();
        async move { r.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    // Warm up so the baseline includes the ordinary working set.
    for _ in 0..50 {
        http.get(format!("http://{addr}/v1/sessions"))
            .send()
            .await
            .unwrap();
    }
    let rss_before = vm_rss_kib(gw.pid());

    let mut slow = tokio::task::JoinSet::new();
    for batch in 0..SLOW / 200 {
        for _ in 0..200 {
            slow.spawn(slow_header_client(addr.clone()));
        }
        // Stay within the listen backlog.
        if batch % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Ordinary requests on fresh connections while the slow ones hang on.
    let probe_addr = addr.clone();
    let probes = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut latencies = Vec::new();
        let until = Instant::now() + Duration::from_secs(12);
        while Instant::now() < until {
            let t = Instant::now();
            let r = client
                .get(format!("http://{probe_addr}/v1/sessions?limit=5"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.bytes().await.unwrap();
            latencies.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        latencies
    });
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rss_during = vm_rss_kib(gw.pid());

    let mut closed_after = Vec::new();
    while let Some(r) = slow.join_next().await {
        closed_after.push(r.unwrap());
    }
    let mut latencies = probes.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = vm_rss_kib(gw.pid());

    let never_closed = closed_after.iter().filter(|c| c.is_none()).count();
    assert_eq!(never_closed, 0, "connections the server never closed");
    let mut times: Vec<Duration> = closed_after.into_iter().flatten().collect();
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    latencies.sort();
    let p95 = latencies[latencies.len() * 95 / 100];
    let max = latencies[latencies.len() - 1];
    println!(
        "slow-header connections: {SLOW}; closed after {first:?} .. {last:?}; \
         ordinary requests during: {} (p95 {p95:?}, max {max:?}); \
         gateway VmRSS before {rss_before} KiB, during {rss_during} KiB, after {rss_after} KiB",
        latencies.len()
    );
    assert!(
        first >= Duration::from_secs(9) && last <= Duration::from_secs(16),
        "closed after {first:?} .. {last:?}, expected about 10 s"
    );
    assert!(p95 < Duration::from_millis(50), "p95 {p95:?}");
    // The connections' memory is given back, not kept for good.
    let held = rss_during.saturating_sub(rss_before);
    assert!(
        rss_after <= rss_before + held / 2 + 4096,
        "RSS before {rss_before} KiB, during {rss_during} KiB, after {rss_after} KiB"
    );
    drop(gw);
}

on_both_backends!(
    a_declared_body_over_1_mib_is_refused_at_once,
    a_body_that_stops_arriving_gets_408,
);
