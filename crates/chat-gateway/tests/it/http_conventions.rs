//! API.md "Conventions" over real HTTP: gzip, `RateLimit-*` headers, CORS,
//! the one timestamp shape, and the SSE stream's resume rules.

use std::io::Read as _;
use std::time::Duration;

use chat_core::Role;
use chat_gateway::store::Store;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::on_both_backends;
use crate::support::*;

/// Ingests `n` sessions with a message each, so lists are over 1 KiB.
async fn seed(gw: &TestGateway, n: usize) {
    for i in 0..n {
        let sid = format!("S{i}");
        gw.store
            .ingest(
                &account("a"),
                &[change(
                    session(&sid, &format!("C{i}")),
                    vec![msg(
                        &sid,
                        &format!("m{i}"),
                        Role::Customer,
                        "您好",
                        t(i as i64),
                    )],
                )],
                None,
            )
            .await
            .unwrap();
    }
}

async fn json_list_is_gzipped_only_when_asked_and_large(db: Db) {
    let gw = TestGateway::start(db, "").await;
    seed(&gw, 20).await;
    let resp = gw
        .http
        .get(gw.url("/v1/sessions?limit=20"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let vary = resp.headers()["vary"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(vary.contains("accept-encoding"), "{vary}");
    let bytes = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
    assert!(text.len() > 1024 && bytes.len() < text.len());

    // Not asked: plain JSON.
    let resp = gw
        .http
        .get(gw.url("/v1/sessions?limit=20"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 20);

    // Small bodies are not worth it.
    let resp = gw
        .http
        .get(gw.url("/v1/sessions/nope"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.headers().get("content-encoding").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // The event stream never is, even with plenty to send at once.
    let resp = gw
        .http
        .get(gw.url("/v1/events/stream?after=0"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("content-encoding").is_none());
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::StreamExt::next(&mut stream),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert!(
        String::from_utf8_lossy(&first).starts_with("retry:"),
        "{first:?}"
    );
    gw.stop().await;
}

fn header_u64(resp: &reqwest::Response, name: &str) -> u64 {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn rate_limited_keys_see_their_quota_on_every_answer(db: Db) {
    let (limited, limited_toml) = api_key("limited", &["read"], &["*"]);
    let (free, free_toml) = api_key("free", &["read"], &["*"]);
    let toml = format!("{limited_toml}rate_limit = {{ per_second = 0.5, burst = 3 }}\n{free_toml}");
    let gw = TestGateway::start(db, &toml).await;
    let get = |path: &'static str, key: String| {
        let req = gw.http.get(gw.url(path)).bearer_auth(key);
        async move { req.send().await.unwrap() }
    };
    // Burst 3 at one token per 2 s: 2, 1, 0 left, then a 429.
    let mut expected_remaining = vec![2u64, 1, 0].into_iter();
    for path in ["/v1/sessions", "/v1/sessions/nope", "/v1/accounts"] {
        let resp = get(path, limited.clone()).await;
        assert_eq!(header_u64(&resp, "ratelimit-limit"), 3, "{path}");
        assert_eq!(
            header_u64(&resp, "ratelimit-remaining"),
            expected_remaining.next().unwrap(),
            "{path}"
        );
        // Whole seconds until full again: at most 2 s per spent token.
        let reset = header_u64(&resp, "ratelimit-reset");
        assert!((1..=6).contains(&reset), "{path}: reset {reset}");
    }
    let resp = get("/v1/sessions", limited.clone()).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(header_u64(&resp, "ratelimit-limit"), 3);
    assert_eq!(header_u64(&resp, "ratelimit-remaining"), 0);
    assert_eq!(header_u64(&resp, "ratelimit-reset"), 6);
    assert!(header_u64(&resp, "retry-after") >= 1);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // A key without a limit gets no such headers.
    let resp = get("/v1/sessions", free.clone()).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("ratelimit-limit").is_none());
    gw.stop().await;
}

async fn cors_answers_listed_origins_only(db: Db) {
    let (key, key_toml) = api_key("browser", &["read", "write"], &["*"]);
    let toml = format!("[server]\ncors_origins = [\"https://crm.example.com\"]\n{key_toml}");
    let gw = TestGateway::start(db, &toml).await;

    // A preflight needs no key.
    let resp = gw
        .http
        .request(reqwest::Method::OPTIONS, gw.url("/v1/sessions/x/messages"))
        .header("origin", "https://crm.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://crm.example.com");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    for m in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "last-event-id",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(h["vary"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("origin"));

    // An ordinary request exposes the headers scripts need.
    let resp = gw
        .http
        .get(gw.url("/v1/sessions"))
        .header("origin", "https://crm.example.com")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://crm.example.com");
    let exposed = h["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "x-request-id",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
        "location",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }
    // Errors carry CORS headers too (a script must be able to read them).
    let resp = gw
        .http
        .get(gw.url("/v1/sessions"))
        .header("origin", "https://crm.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("access-control-allow-origin"));

    // Any other origin: nothing CORS at all.
    for origin in [
        "https://evil.example.com",
        "https://crm.example.com.evil.io",
    ] {
        let resp = gw
            .http
            .request(reqwest::Method::OPTIONS, gw.url("/v1/sessions"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert!(
            !resp
                .headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{origin}: {:?}",
            resp.headers()
        );
        let resp = gw
            .http
            .get(gw.url("/v1/sessions"))
            .header("origin", origin)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.headers().get("access-control-allow-origin").is_none());
    }
    gw.stop().await;

    // Without `cors_origins`, even a would-be origin gets none.
    let gw = TestGateway::start(db, "").await;
    let resp = gw
        .http
        .get(gw.url("/v1/sessions"))
        .header("origin", "https://crm.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(!resp
        .headers()
        .keys()
        .any(|k| k.as_str().starts_with("access-control-")));
    gw.stop().await;
}

/// Every string in `v` that starts like a date, with where it was found.
fn timestamps(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            let looks_like_time = b.len() >= 11
                && b[..4].iter().all(u8::is_ascii_digit)
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T';
            if looks_like_time {
                out.push((at.to_string(), s.clone()));
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                timestamps(x, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, x) in map {
                timestamps(x, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// `2026-11-21T08:04:12.000Z` exactly.
fn api_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

async fn every_timestamp_the_api_writes_has_three_fractional_digits(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    control
        .spark_inject(provider_sim::SparkInject {
            customer_id: Some("C1".into()),
            text: Some("你好".into()),
            ..Default::default()
        })
        .unwrap();
    let (key, key_toml) = api_key("admin", &["read", "write", "admin"], &["*"]);
    let toml = format!("{key_toml}{}", sim_accounts(sim.base_url(), &[]));
    let gw = TestGateway::start(db, &toml).await;
    // Whole seconds and sub-millisecond precision alike.
    gw.store
        .ingest(
            &account("spark"),
            &[change(
                session("S-exact", "C2"),
                vec![
                    msg("S-exact", "m-whole", Role::Customer, "a", t(1)),
                    msg(
                        "S-exact",
                        "m-micro",
                        Role::Agent,
                        "b",
                        t(2) + chrono::Duration::microseconds(123_456),
                    ),
                ],
            )],
            None,
        )
        .await
        .unwrap();
    let get = |path: String| {
        let req = gw.http.get(gw.url(&path)).bearer_auth(&key);
        async move {
            let resp = req.send().await.unwrap();
            resp.json::<Value>().await.unwrap()
        }
    };
    wait_until(20, "the simulator's session synced", || {
        let f = get("/v1/sessions?customer_id=C1".into());
        async move { f.await["data"].as_array().is_some_and(|l| !l.is_empty()) }
    })
    .await;
    wait_until(20, "kchat's sync state recorded", || {
        let f = get("/v1/accounts/kchat".into());
        async move { !f.await["data"]["sync"]["last_success_at"].is_null() }
    })
    .await;
    let sid = get("/v1/sessions?customer_id=C1".into()).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sent = gw
        .http
        .post(gw.url(&format!("/v1/sessions/{sid}/messages")))
        .bearer_auth(&key)
        .json(&json!({"kind": "text", "text": "您好"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 202);
    let sent: Value = sent.json().await.unwrap();
    let hook = gw
        .http
        .post(gw.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status().as_u16(), 201);
    let hook: Value = hook.json().await.unwrap();
    let hook_id = hook["data"]["id"].as_str().unwrap().to_string();
    let mut bodies = vec![
        ("sent".to_string(), sent),
        ("webhook".to_string(), hook),
        ("accounts".to_string(), get("/v1/accounts".into()).await),
    ];
    let backfill = gw
        .http
        .post(gw.url("/v1/accounts/kchat/sync"))
        .bearer_auth(&key)
        .json(&json!({"from": "2026-11-01T08:00:00+08:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(backfill.status().as_u16(), 202);
    bodies.push(("backfill".to_string(), backfill.json().await.unwrap()));
    for path in [
        "/v1/sessions?limit=500".to_string(),
        format!("/v1/sessions/{sid}"),
        format!("/v1/sessions/{sid}/messages"),
        "/v1/messages?limit=500".to_string(),
        "/v1/events?after=0&limit=1000&wait=0".to_string(),
        "/v1/webhooks".to_string(),
        format!("/v1/webhooks/{hook_id}/deliveries"),
    ] {
        bodies.push((path.clone(), get(path).await));
    }
    let mut found = Vec::new();
    for (path, body) in &bodies {
        timestamps(body, path, &mut found);
    }
    let wrong: Vec<_> = found.iter().filter(|(_, s)| !api_shape(s)).collect();
    assert!(
        wrong.is_empty(),
        "timestamps not in the API's shape: {wrong:?}"
    );
    // The scan saw the kinds of timestamps there are, not just a few.
    for field in [
        ".created_at",
        ".updated_at",
        ".sent_at",
        ".last_success_at",
        ".at",
        ".from",
    ] {
        assert!(
            found.iter().any(|(at, _)| at.ends_with(field)),
            "no {field} seen in {found:?}"
        );
    }
    assert!(found.iter().any(|(_, s)| s.ends_with(":00.000Z")));
    assert!(found.iter().any(|(_, s)| s.ends_with(".123Z")));
    gw.stop().await;
    sim.shutdown().await;
}

/// The first SSE bytes and the seqs of the first `n` events.
async fn sse_open(resp: reqwest::Response, n: usize) -> (String, Vec<i64>) {
    use futures_util::StreamExt;
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ids: Vec<i64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("id:"))
            .map(|v| v.trim().parse().unwrap())
            .collect();
        if ids.len() >= n {
            return (text, ids);
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("SSE timed out")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn the_stream_opens_with_retry_and_last_event_id_wins(db: Db) {
    let gw = TestGateway::start(db, "").await;
    seed(&gw, 4).await;
    let resp = gw
        .http
        .get(gw.url("/v1/events/stream?after=0"))
        .send()
        .await
        .unwrap();
    let (text, all) = sse_open(resp, 8).await;
    assert!(text.starts_with("retry:"), "{text}");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    // A reconnecting EventSource repeats `?after=0` and sends the last id
    // it saw: it resumes after that id, it does not replay.
    let resp = gw
        .http
        .get(gw.url("/v1/events/stream?after=0"))
        .header("last-event-id", all[4].to_string())
        .send()
        .await
        .unwrap();
    let (text, resumed) = sse_open(resp, 3).await;
    assert!(text.starts_with("retry:"), "{text}");
    assert_eq!(resumed, all[5..8].to_vec());
    // A malformed Last-Event-ID is the caller's mistake.
    let resp = gw
        .http
        .get(gw.url("/v1/events/stream"))
        .header("last-event-id", "seven")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    gw.stop().await;
}

on_both_backends!(
    json_list_is_gzipped_only_when_asked_and_large,
    rate_limited_keys_see_their_quota_on_every_answer,
    cors_answers_listed_origins_only,
    every_timestamp_the_api_writes_has_three_fractional_digits,
    the_stream_opens_with_retry_and_last_event_id_wins,
);
