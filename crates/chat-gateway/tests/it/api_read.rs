//! The read API end to end over HTTP, on both backends.

use crate::fixtures::*;
use crate::on_both_backends;
use crate::support::{api_key, Db, TestGateway};
use chat_core::Role;
use chat_gateway::store::Store;
use serde_json::Value;

/// Two Spark accounts (pointing nowhere: these tests seed the store directly)
/// and keys of every kind.
fn config() -> (String, [String; 4]) {
    let (reader, r) = api_key("reader", &["read"], &["*"]);
    let (writer, w) = api_key("writer", &["read", "write"], &["*"]);
    let (admin, a) = api_key("admin", &["read", "write", "admin"], &["*"]);
    let (scoped, s) = api_key("scoped", &["read"], &["spark-b"]);
    let accounts = "[[accounts]]\nname = \"spark-a\"\nprovider = \"spark\"\nbase_url = \"http://127.0.0.1:9\"\n\
                    [[accounts]]\nname = \"spark-b\"\nprovider = \"spark\"\nbase_url = \"http://127.0.0.1:9\"\n";
    (
        format!("{r}{w}{a}{s}{accounts}"),
        [reader, writer, admin, scoped],
    )
}

async fn seed(gw: &TestGateway) {
    let mut s1 = session("S1", "C1");
    s1.created_at = Some(t(0));
    s1.raw = Some(serde_json::json!({"SessionId": "S1", "b": 1, "a": 2}));
    gw.store
        .ingest(
            &account("spark-a"),
            &[change(
                s1,
                vec![
                    msg("S1", "m1", Role::Customer, "你好，我想退款 🙏", t(0)),
                    msg("S1", "m2", Role::Agent, "好的", t(1)),
                ],
            )],
            None,
        )
        .await
        .unwrap();
    let mut s2 = session("S2", "C2");
    s2.created_at = Some(t(5));
    gw.store
        .ingest(
            &account("spark-b"),
            &[change(
                s2,
                vec![msg("S2", "m3", Role::Customer, "hello", t(5))],
            )],
            None,
        )
        .await
        .unwrap();
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

async fn unconfigured_gateway_serves_empty_lists(db: Db) {
    let gw = TestGateway::start(db, "").await;
    assert_eq!(gw.get("/healthz", None).await.0, 200);
    assert_eq!(gw.get("/readyz", None).await.0, 200);
    let (status, body) = gw.get("/v1/sessions", None).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"data": [], "next_cursor": null}));
    let (status, doc) = gw.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    gw.stop().await;
}

async fn sessions_and_messages_read_back_as_the_contract_says(db: Db) {
    let (toml, [reader, ..]) = config();
    let gw = TestGateway::start(db, &toml).await;
    seed(&gw).await;
    let key = Some(reader.as_str());

    let (status, list) = gw.get("/v1/sessions", key).await;
    assert_eq!(status, 200);
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    // Default order: newest first.
    assert_eq!(data[0]["external_id"], "S2");
    let s1 = &data[1];
    assert_eq!(s1["provider"], "spark");
    assert_eq!(s1["account"], "spark-a");
    assert_eq!(s1["status"], "open");
    assert_eq!(s1["customer"]["external_id"], "C1");
    assert_eq!(s1["agent"]["name"], "小王");
    assert_eq!(s1["created_at"], "2026-11-01T08:00:00.000Z");
    assert_eq!(s1["first_response_at"], "2026-11-01T08:01:00.000Z");
    assert_eq!(s1["message_count"], 2);
    assert!(s1.get("raw").is_none());
    let updated = s1["updated_at"].as_str().unwrap();
    assert!(updated.ends_with('Z') && updated.len() <= 24, "{updated}");

    let id = s1["id"].as_str().unwrap();
    let (_, one) = gw.get(&format!("/v1/sessions/{id}?include=raw"), key).await;
    assert_eq!(one["data"]["raw"]["SessionId"], "S1");

    let (status, msgs) = gw.get(&format!("/v1/sessions/{id}/messages"), key).await;
    assert_eq!(status, 200);
    let m = msgs["data"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0]["text"], "你好，我想退款 🙏");
    assert_eq!(m[0]["direction"], "inbound");
    assert_eq!(m[0]["sender"]["role"], "customer");
    assert_eq!(m[1]["direction"], "outbound");
    assert_eq!(m[0]["delivery"], Value::Null);
    let (_, desc) = gw
        .get(
            &format!("/v1/sessions/{id}/messages?order=desc&limit=1"),
            key,
        )
        .await;
    assert_eq!(desc["data"][0]["external_id"], "m2");
    let next = desc["next_cursor"].as_str().unwrap();
    let (_, rest) = gw
        .get(
            &format!("/v1/sessions/{id}/messages?order=desc&limit=1&cursor={next}"),
            key,
        )
        .await;
    assert_eq!(rest["data"][0]["external_id"], "m1");
    assert_eq!(rest["next_cursor"], Value::Null);

    let mid = m[0]["id"].as_str().unwrap();
    let (_, raw) = gw
        .get(&format!("/v1/messages/{mid}?include=raw"), key)
        .await;
    assert_eq!(raw["data"]["raw"]["Content"], "你好，我想退款 🙏");

    let q = "%E9%80%80%E6%AC%BE"; // 退款
    let (_, found) = gw.get(&format!("/v1/messages?q={q}"), key).await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    let (_, found) = gw.get("/v1/messages?q=HELLO&direction=inbound", key).await;
    assert_eq!(found["data"][0]["external_id"], "m3");
    let (_, filtered) = gw
        .get(
            "/v1/sessions?created_after=2026-11-01T16:03:00%2B08:00&order=asc",
            key,
        )
        .await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["data"][0]["external_id"], "S2");

    let (_, accounts) = gw.get("/v1/accounts", key).await;
    let names: Vec<&str> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["spark-a", "spark-b"]);
    assert!(accounts["data"][0]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&Value::from("transfer")));
    assert!(accounts["data"][0]["sync"]["state"].is_string());
    gw.stop().await;
}

async fn every_client_error_has_its_status_and_code(db: Db) {
    let (toml, [reader, _writer, _admin, scoped]) = config();
    let gw = TestGateway::start(db, &toml).await;
    seed(&gw).await;
    let key = Some(reader.as_str());
    let (_, list) = gw.get("/v1/sessions?order=asc", key).await;
    let s1 = list["data"][0]["id"].as_str().unwrap().to_string();
    let s1_msg = {
        let (_, m) = gw.get(&format!("/v1/sessions/{s1}/messages"), key).await;
        m["data"][0]["id"].as_str().unwrap().to_string()
    };
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        ("/v1/sessions".into(), None, 401, "unauthorized"),
        (
            "/v1/sessions".into(),
            Some("wrong-key"),
            401,
            "unauthorized",
        ),
        ("/v1/sessions?limit=0".into(), key, 400, "invalid_request"),
        ("/v1/sessions?limit=501".into(), key, 400, "invalid_request"),
        ("/v1/sessions?limit=abc".into(), key, 400, "invalid_request"),
        (
            "/v1/sessions?status=pending".into(),
            key,
            400,
            "invalid_request",
        ),
        (
            "/v1/sessions?order=sideways".into(),
            key,
            400,
            "invalid_request",
        ),
        (
            "/v1/sessions?created_after=yesterday".into(),
            key,
            400,
            "invalid_request",
        ),
        (
            "/v1/sessions?provider=icq".into(),
            key,
            400,
            "invalid_request",
        ),
        (
            "/v1/sessions?cursor=not-a-cursor".into(),
            key,
            400,
            "invalid_request",
        ),
        (
            "/v1/sessions?colour=blue".into(),
            key,
            400,
            "invalid_request",
        ),
        (
            "/v1/sessions?include=everything".into(),
            key,
            400,
            "invalid_request",
        ),
        (
            "/v1/messages?kind=hologram".into(),
            key,
            400,
            "invalid_request",
        ),
        (
            "/v1/messages?direction=up".into(),
            key,
            400,
            "invalid_request",
        ),
        ("/v1/messages?q=".into(), key, 400, "invalid_request"),
        (
            "/v1/messages?sent_before=2026-13-45T99:00:00Z".into(),
            key,
            400,
            "invalid_request",
        ),
        ("/v1/sessions/ses_nope".into(), key, 404, "not_found"),
        (
            "/v1/sessions/ses_nope/messages".into(),
            key,
            404,
            "not_found",
        ),
        ("/v1/messages/msg_nope".into(), key, 404, "not_found"),
        ("/v1/accounts/nope".into(), key, 404, "not_found"),
        ("/v1/nothing-here".into(), key, 404, "not_found"),
        // A key limited to spark-b cannot see spark-a's objects.
        (
            format!("/v1/sessions/{s1}"),
            Some(scoped.as_str()),
            404,
            "not_found",
        ),
        (
            format!("/v1/sessions/{s1}/messages"),
            Some(scoped.as_str()),
            404,
            "not_found",
        ),
        (
            format!("/v1/messages/{s1_msg}"),
            Some(scoped.as_str()),
            404,
            "not_found",
        ),
        (
            "/v1/accounts/spark-a".into(),
            Some(scoped.as_str()),
            404,
            "not_found",
        ),
    ];
    for (path, k, status, code) in cases {
        let (got, body) = gw.get(&path, k).await;
        assert_eq!((got, error_code(&body)), (status, code), "{path}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(body["error"]["request_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // A cursor made for one order is refused for the other.
    let (_, p) = gw.get("/v1/sessions?limit=1&order=asc", key).await;
    let c = p["next_cursor"].as_str().unwrap();
    let (status, body) = gw
        .get(&format!("/v1/sessions?limit=1&order=desc&cursor={c}"), key)
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_request"));
    // The scoped key sees only its account in lists.
    let (_, mine) = gw.get("/v1/sessions", Some(&scoped)).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    assert_eq!(mine["data"][0]["account"], "spark-b");
    let (_, accounts) = gw.get("/v1/accounts", Some(&scoped)).await;
    assert_eq!(accounts["data"].as_array().unwrap().len(), 1);
    gw.stop().await;
}

async fn request_ids_are_echoed_or_made(db: Db) {
    let gw = TestGateway::start(db, "").await;
    let r = gw
        .http
        .get(gw.url("/v1/sessions/nope"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "trace-42");
    let r = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert!(!r.headers()["x-request-id"].is_empty());
    gw.stop().await;
}

async fn metrics_count_requests_by_route(db: Db) {
    let gw = TestGateway::start(db, "").await;
    gw.get("/v1/sessions", None).await;
    gw.get("/v1/sessions/abc", None).await;
    let text = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"chatgw_http_requests_total{method="GET",route="/v1/sessions",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/sessions/{id}",status="404"} 1"#),
        "{text}"
    );
    assert!(text.contains("chatgw_http_request_duration_seconds_bucket"));
    gw.stop().await;
}

on_both_backends!(
    unconfigured_gateway_serves_empty_lists,
    sessions_and_messages_read_back_as_the_contract_says,
    every_client_error_has_its_status_and_code,
    request_ids_are_echoed_or_made,
    metrics_count_requests_by_route,
    a_key_over_its_rate_limit_gets_429_with_retry_after,
);

#[test]
fn openapi_documents_every_served_route() {
    let doc: Value = serde_json::from_str(chat_gateway::api::docs::OPENAPI_JSON).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/accounts",
        "/v1/accounts/{name}",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/messages",
        "/v1/messages",
        "/v1/messages/{id}",
        "/v1/messages/{id}/media",
        "/v1/webhooks",
        "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/deliveries",
        "/v1/webhooks/{id}/rotate-secret",
        "/v1/webhooks/{id}/recover",
        "/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
        "/v1/customers",
        "/v1/customers/{account}/{external_id}",
        "/v1/stats",
    ] {
        assert!(paths.contains_key(p), "{p} missing from openapi.json");
    }
}

async fn a_key_over_its_rate_limit_gets_429_with_retry_after(db: Db) {
    let (key, toml) = api_key("limited", &["read"], &["*"]);
    let toml = format!("{toml}rate_limit = {{ per_second = 0.2, burst = 2 }}\n");
    let (other, other_toml) = api_key("other", &["read"], &["*"]);
    let gw = TestGateway::start(db, &format!("{toml}{other_toml}")).await;
    assert_eq!(gw.get("/v1/sessions", Some(&key)).await.0, 200);
    assert_eq!(gw.get("/v1/sessions", Some(&key)).await.0, 200);
    let r = gw
        .http
        .get(gw.url("/v1/sessions"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Limits are per key: another key is unaffected.
    assert_eq!(gw.get("/v1/sessions", Some(&other)).await.0, 200);
    gw.stop().await;
}
