//! No malformed input earns a 500: garbage in paths, queries, headers and
//! bodies across every route answers 2xx or 4xx in the error format.

use crate::on_both_backends;
use crate::support::{Db, TestGateway};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

const ROUTES: &[&str] = &[
    "/v1/sessions",
    "/v1/sessions/{x}",
    "/v1/sessions/{x}/messages",
    "/v1/messages",
    "/v1/messages/{x}",
    "/v1/accounts/{x}",
    "/v1/events",
];

const PARAMS: &[&str] = &[
    "limit",
    "cursor",
    "order",
    "status",
    "created_after",
    "sent_before",
    "q",
    "kind",
    "direction",
    "include",
    "after",
    "wait",
    "types",
    "provider",
    "account",
];

async fn garbage_never_earns_a_5xx(db: Db) {
    let gw = TestGateway::start(db, "").await;
    let fixed = [
        "/v1/sessions/%00",
        "/v1/sessions/..%2F..%2Fetc%2Fpasswd",
        "/v1/messages/%F0%9F%98%80",
        "/v1/sessions?limit=99999999999999999999",
        "/v1/sessions?cursor=%FF%FE",
        "/v1/messages?q=%25%5F%5C",
        "/v1/events?after=99999999999999999999&wait=0",
        "/v1/events?wait=0&types=,,,",
        "/v1/sessions?created_after=2026-02-30T00:00:00Z",
        "/v1/sessions?limit=1&limit=2",
        "/v1/messages?q=' OR 1=1 --",
        "/v1/sessions?order=desc&cursor=djF8YXwxfDI",
    ];
    let mut urls: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    let mut runner = TestRunner::new(Config {
        cases: 60,
        ..Config::default()
    });
    let strategy = (
        0..ROUTES.len(),
        0..PARAMS.len(),
        "\\PC{0,40}",
        "[a-zA-Z0-9%._~-]{0,300}",
    );
    for _ in 0..60 {
        let tree = strategy.new_tree(&mut runner).unwrap();
        let (r, p, value, segment) = tree.current();
        let path = ROUTES[r].replace("{x}", if segment.is_empty() { "x" } else { &segment });
        let q: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        urls.push(format!("{path}?{}={q}&wait=0", PARAMS[p]));
    }
    for u in urls {
        let r = gw
            .http
            .get(gw.url(&u))
            .header(
                "x-request-id",
                "bad id with spaces and a very long tail ".repeat(8),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(status < 500, "{u} answered {status}");
        if status >= 400 {
            let text = r.text().await.unwrap();
            let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            assert!(
                body["error"]["code"].is_string(),
                "{u} answered {status}: {text}"
            );
        }
    }
    for body in [
        "",
        "null",
        "[]",
        "{",
        "{\"from\": 5}",
        "\u{0}",
        "{\"from\": \"2026-01-01T00:00:00Z\", \"from\": 1}",
    ] {
        let (status, b) = gw
            .post_raw("/v1/accounts/x/sync", None, body.to_string())
            .await;
        assert!(
            (400..500).contains(&status),
            "{body:?} answered {status}: {b}"
        );
        assert!(b["error"]["code"].is_string());
    }
    gw.stop().await;
}

/// `null` where the schema says array is refused, not read as "absent".
async fn null_lists_are_refused_on_webhook_creation(db: Db) {
    let gw = TestGateway::start(db, "").await;
    for field in ["accounts", "events"] {
        let body = format!(r#"{{"url": "http://127.0.0.1:9/hook", "{field}": null}}"#);
        let (status, b) = gw.post_raw("/v1/webhooks", None, body).await;
        assert_eq!(status, 400, "{field}: {b}");
        assert_eq!(b["error"]["code"], "invalid_request");
    }
    // Absent still means the default.
    let (status, b) = gw
        .post_raw(
            "/v1/webhooks",
            None,
            r#"{"url": "http://127.0.0.1:9/hook"}"#.to_string(),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["data"]["accounts"], serde_json::json!(["*"]));
    gw.stop().await;
}

on_both_backends!(
    garbage_never_earns_a_5xx,
    null_lists_are_refused_on_webhook_creation
);
