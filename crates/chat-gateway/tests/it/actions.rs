//! The write half of the API end to end: sends, outreach, the outbox
//! dispatcher, echo recognition, idempotency keys, and close / restart /
//! transfer, against a Spark adapter talking to wiremock, on both backends.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::{
    Capabilities, MessageKind, Participant, Provider, ProviderError, ProviderMessage, Role,
    SendLimits, SendReceipt, SendRequest, Sender, SessionChange, SessionStatus,
};
use chat_gateway::config::Config;
use chat_gateway::outbox::{Dispatcher, Outcome};
use chat_gateway::providers::{Account, Accounts};
use chat_gateway::store::{AccountRef, AccountScope, ActionStore, EventQuery, SqlStore, Store};
use chrono::Utc;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::fixtures::*;
use crate::on_both_backends;
use crate::support::{api_key, Db, TestGateway};

/// Fast retries for tests.
const FAST_OUTBOX: &str =
    "retry_base_ms = 20\nretry_max_secs = 1\npoll_interval_ms = 100\nmax_attempts = 4\n";

struct Keys {
    reader: String,
    writer: String,
    scoped: String,
}

/// A gateway whose `spark-main` account talks to `mock`, plus a Kchat and a
/// ccmessaging account (pointing nowhere: they can do none of these
/// actions) and keys of each kind.
fn config_toml(mock: &MockServer, outbox: &str) -> (String, Keys) {
    let (reader, r) = api_key("reader", &["read"], &["*"]);
    let (writer, w) = api_key("writer", &["read", "write"], &["*"]);
    let (scoped, s) = api_key("scoped", &["read", "write"], &["kf5"]);
    let toml = format!(
        "{r}{w}{s}[outbox]\n{outbox}\n\
         [[accounts]]\nname = \"spark-main\"\nprovider = \"spark\"\nbase_url = \"{uri}\"\nrequest_timeout_secs = 1\n\
         [[accounts]]\nname = \"kf5\"\nprovider = \"kchat\"\nbase_url = \"http://127.0.0.1:9\"\nemail = \"a@example.com\"\napi_token = \"t\"\n\
         [[accounts]]\nname = \"huawei-web\"\nprovider = \"ccmessaging\"\nbase_url = \"http://127.0.0.1:9\"\napp_key = \"k\"\napp_secret = \"s\"\nchannel_id = \"c\"\n",
        uri = mock.uri()
    );
    (
        toml,
        Keys {
            reader,
            writer,
            scoped,
        },
    )
}

/// A Spark mock whose live feed is always empty (so a live worker idles).
async fn spark_mock() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"Operation": []}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&mock)
        .await;
    mock
}

fn spark_ok(session: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"Code": 0, "Message": "ok", "SessionId": session, "MessageId": message}),
    )
}

fn spark_code(code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"Code": code, "Message": message}))
}

async fn mount(mock: &MockServer, p: &str, t: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(p))
        .respond_with(t)
        .mount(mock)
        .await;
}

async fn mount_n(mock: &MockServer, p: &str, t: ResponseTemplate, n: u64) {
    Mock::given(method("POST"))
        .and(path(p))
        .respond_with(t)
        .up_to_n_times(n)
        .mount(mock)
        .await;
}

/// Requests the mock received on `p`, as JSON bodies, in arrival order.
async fn received(mock: &MockServer, p: &str) -> Vec<Value> {
    mock.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r: &&Request| r.url.path() == p)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn account_ref(name: &str, provider: &str) -> AccountRef {
    AccountRef {
        name: name.into(),
        provider: provider.into(),
    }
}

/// Stores an open session `ext` with customer `C1` and agent `A1` for an
/// account; returns its gateway id.
async fn seed(store: &SqlStore, account: &str, provider: &str, ext: &str) -> String {
    let acc = account_ref(account, provider);
    store
        .ingest(
            &acc,
            &[change(
                session(ext, "C1"),
                vec![msg(ext, &format!("{ext}-m1"), Role::Customer, "你好", t(0))],
            )],
            None,
        )
        .await
        .unwrap();
    store.find_session(account, ext).await.unwrap().unwrap().id
}

async fn closed(store: &SqlStore, account: &str, ext: &str) {
    let mut s = session(ext, "C1");
    s.status = Some(SessionStatus::Closed);
    store
        .ingest(&account_ref(account, "spark"), &[change(s, vec![])], None)
        .await
        .unwrap();
}

/// POSTs JSON; returns status, headers and body.
async fn post(
    gw: &TestGateway,
    p: &str,
    key: Option<&str>,
    body: &Value,
    idempotency_key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = gw.http.post(gw.url(p)).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

async fn event_list(store: &SqlStore) -> Vec<(String, Option<String>, Value)> {
    store
        .read_events(&EventQuery {
            after: 0,
            until: None,
            limit: 1000,
            types: vec![],
            account: None,
            scope: AccountScope::All,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type.as_str().to_string(), e.message_id, e.data))
        .collect()
}

async fn events_of(store: &SqlStore, message_id: &str) -> Vec<String> {
    event_list(store)
        .await
        .into_iter()
        .filter(|(_, m, _)| m.as_deref() == Some(message_id))
        .map(|(t, _, _)| t)
        .collect()
}

/// Polls `GET /v1/messages/{id}` until its delivery leaves `pending`.
async fn delivered(gw: &TestGateway, key: &str, id: &str) -> Value {
    for _ in 0..200 {
        let (status, body) = gw.get(&format!("/v1/messages/{id}"), Some(key)).await;
        assert_eq!(status, 200, "{body}");
        if body["data"]["delivery"]["status"] != "pending" {
            return body["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} stayed pending");
}

/// The account registry of `toml`, as the gateway builds it.
fn accounts_of(toml: &str) -> Accounts {
    Accounts::build(&Config::parse(toml).unwrap()).unwrap()
}

fn fast_config() -> chat_gateway::outbox::OutboxConfig {
    chat_gateway::outbox::OutboxConfig {
        retry_base_ms: 20,
        retry_max_secs: 1,
        poll_interval_ms: 100,
        max_attempts: 4,
        ..Default::default()
    }
}

fn dispatcher(gw: &TestGateway, accounts: Accounts) -> Dispatcher {
    Dispatcher::new(
        gw.store.clone() as Arc<dyn Store>,
        Arc::new(accounts),
        fast_config(),
    )
}

/// The echo Spark puts on its live feed for a send: an agent message with
/// the send's `MessageId`.
fn echo(session_ext: &str, customer: &str, message_id: &str, text: &str) -> SessionChange {
    let mut s = session(session_ext, customer);
    s.status = Some(SessionStatus::Open);
    SessionChange {
        session: s,
        messages: vec![ProviderMessage {
            external_id: message_id.into(),
            session_external_id: session_ext.into(),
            sender: Sender {
                role: Role::Agent,
                external_id: Some("A1".into()),
                name: Some("小王".into()),
                avatar_url: None,
            },
            kind: MessageKind::Text,
            text: Some(text.into()),
            media: None,
            card: None,
            event: None,
            sent_at: Utc::now(),
            received_at: None,
            raw: json!({"Id": message_id, "Type": 1, "ContentType": "0", "Content": text}),
        }],
    }
}

// ---------------------------------------------------------------------------
// Sending through the running gateway.

async fn send_is_accepted_pending_then_sent_once(db: Db) {
    let mock = spark_mock().await;
    mount(&mock, "/message/send", spark_ok("S1", "M-1")).await;
    let (toml, keys) = config_toml(&mock, FAST_OUTBOX);
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let w = Some(keys.writer.as_str());

    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        w,
        &json!({"kind": "text", "text": "您好，请问有什么可以帮您？😀"}),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let m = &body["data"];
    assert_eq!(m["session_id"], sid.as_str());
    assert_eq!(m["direction"], "outbound");
    assert_eq!(m["sender"]["role"], "agent");
    assert_eq!(m["sender"]["external_id"], "A1");
    assert_eq!(m["external_id"], Value::Null);
    assert_eq!(
        m["delivery"],
        json!({"status": "pending", "attempts": 0, "last_error": null})
    );
    let id = m["id"].as_str().unwrap().to_string();

    let done = delivered(&gw, &keys.reader, &id).await;
    assert_eq!(
        done["delivery"],
        json!({"status": "sent", "attempts": 1, "last_error": null})
    );
    assert_eq!(done["external_id"], "M-1");
    assert_eq!(done["text"], "您好，请问有什么可以帮您？😀");

    let sends = received(&mock, "/message/send").await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["SessionId"], "S1");
    assert_eq!(sends[0]["ToId"], "C1");
    assert_eq!(sends[0]["ContentType"], "0");
    assert_eq!(sends[0]["Content"], "您好，请问有什么可以帮您？😀");
    assert_eq!(
        events_of(&gw.store, &id).await,
        ["message.created", "message.updated"]
    );

    let (_, s) = gw
        .get(&format!("/v1/sessions/{sid}"), Some(&keys.reader))
        .await;
    assert_eq!(s["data"]["message_count"], 2);
    let (_, list) = gw
        .get(&format!("/v1/sessions/{sid}/messages"), Some(&keys.reader))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);

    // Images go out as their URL.
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        w,
        &json!({"kind": "image", "media": {"url": "https://cdn.example.com/a.png"}}),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = delivered(&gw, &keys.reader, body["data"]["id"].as_str().unwrap()).await;
    assert_eq!(done["delivery"]["status"], "sent");
    let sends = received(&mock, "/message/send").await;
    assert_eq!(sends[1]["ContentType"], "1");
    assert_eq!(sends[1]["Content"], "https://cdn.example.com/a.png");
    gw.stop().await;
}

async fn provider_5xx_is_retried_until_sent(db: Db) {
    let mock = spark_mock().await;
    mount_n(&mock, "/message/send", ResponseTemplate::new(500), 2).await;
    mount(&mock, "/message/send", spark_ok("S1", "M-1")).await;
    let (toml, keys) = config_toml(&mock, FAST_OUTBOX);
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        Some(&keys.writer),
        &json!({"kind": "text", "text": "稍等"}),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let done = delivered(&gw, &keys.reader, &id).await;
    // Two 500s then success: three provider calls.
    assert_eq!(
        done["delivery"],
        json!({"status": "sent", "attempts": 3, "last_error": null})
    );
    assert_eq!(received(&mock, "/message/send").await.len(), 3);
    // Every visible change was announced: attempts 1 and 2 (pending), then sent.
    let events = event_list(&gw.store).await;
    let updates: Vec<&Value> = events
        .iter()
        .filter(|(t, m, _)| t == "message.updated" && m.as_deref() == Some(id.as_str()))
        .map(|(_, _, d)| &d["delivery"])
        .collect();
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert_eq!(updates[0]["attempts"], 1);
    assert_eq!(updates[0]["status"], "pending");
    assert!(updates[0]["last_error"].as_str().unwrap().contains("500"));
    assert_eq!(updates[2]["status"], "sent");
    gw.stop().await;
}

async fn provider_refusal_fails_with_its_reason(db: Db) {
    let mock = spark_mock().await;
    mount(
        &mock,
        "/message/send",
        spark_code(1001, "session S1 does not exist or is not active"),
    )
    .await;
    let (toml, keys) = config_toml(&mock, FAST_OUTBOX);
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let (_, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        Some(&keys.writer),
        &json!({"kind": "text", "text": "hi"}),
        None,
    )
    .await;
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let done = delivered(&gw, &keys.reader, &id).await;
    assert_eq!(done["delivery"]["status"], "failed");
    assert_eq!(done["delivery"]["attempts"], 1);
    assert!(
        done["delivery"]["last_error"]
            .as_str()
            .unwrap()
            .contains("not active"),
        "{done}"
    );
    assert_eq!(received(&mock, "/message/send").await.len(), 1);
    assert_eq!(
        events_of(&gw.store, &id).await,
        ["message.created", "message.updated"]
    );
    gw.stop().await;
}

async fn retry_budget_ends_in_failed(db: Db) {
    let mock = spark_mock().await;
    mount(&mock, "/message/send", ResponseTemplate::new(503)).await;
    let (toml, keys) = config_toml(&mock, FAST_OUTBOX);
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let (_, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        Some(&keys.writer),
        &json!({"kind": "text", "text": "hi"}),
        None,
    )
    .await;
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let done = delivered(&gw, &keys.reader, &id).await;
    assert_eq!(done["delivery"]["status"], "failed");
    assert_eq!(done["delivery"]["attempts"], 4);
    assert!(
        done["delivery"]["last_error"]
            .as_str()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{done}"
    );
    assert_eq!(received(&mock, "/message/send").await.len(), 4);
    gw.stop().await;
}

async fn a_sessions_sends_go_out_in_order(db: Db) {
    let mock = spark_mock().await;
    mount_n(&mock, "/message/send", ResponseTemplate::new(502), 1).await;
    mount(&mock, "/message/send", spark_ok("S1", "M")).await;
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    for text in ["one", "two", "three"] {
        let (status, _, _) = post(
            &gw,
            &format!("/v1/sessions/{sid}/messages"),
            Some(&keys.writer),
            &json!({"kind": "text", "text": text}),
            None,
        )
        .await;
        assert_eq!(status, 202);
    }
    // A retry delay long enough to look at the queue while it waits.
    let config = chat_gateway::outbox::OutboxConfig {
        retry_base_ms: 600,
        ..fast_config()
    };
    let d = Dispatcher::new(
        gw.store.clone() as Arc<dyn Store>,
        Arc::new(accounts_of(&toml)),
        config,
    );
    // The first fails and waits for its retry; the others wait behind it.
    assert!(matches!(
        d.try_execute_task().await.unwrap(),
        Outcome::Retrying { attempts: 1, .. }
    ));
    assert_eq!(d.try_execute_task().await.unwrap(), Outcome::Idle);
    let mut sent = 0;
    for _ in 0..100 {
        match d.try_execute_task().await.unwrap() {
            Outcome::Sent { .. } => sent += 1,
            Outcome::Idle => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("{other:?}"),
        }
        if sent == 3 {
            break;
        }
    }
    let texts: Vec<String> = received(&mock, "/message/send")
        .await
        .iter()
        .map(|b| b["Content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, ["one", "one", "two", "three"]);
    let _ = keys.scoped;
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Every 4xx this issue adds.

async fn bad_input_is_refused_before_anything_is_stored(db: Db) {
    let mock = spark_mock().await;
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let send_path = format!("/v1/sessions/{sid}/messages");
    let w = Some(keys.writer.as_str());

    // 401 / 403 before the body is read, whatever it holds.
    let posts = [
        send_path.clone(),
        "/v1/messages".to_string(),
        format!("/v1/sessions/{sid}/close"),
        format!("/v1/sessions/{sid}/restart"),
        format!("/v1/sessions/{sid}/transfer"),
    ];
    for p in &posts {
        let (status, body) = gw.post_raw(p, Some(&keys.reader), "{not json").await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{p}");
        let (status, body) = gw.post_raw(p, None, "{not json").await;
        assert_eq!((status, code(&body)), (401, "unauthorized"), "{p}");
        let big = format!(
            "{{\"kind\": \"text\", \"text\": \"{}\"}}",
            "x".repeat(1024 * 1024 + 10)
        );
        let (status, body) = gw.post_raw(p, w, big).await;
        assert_eq!((status, code(&body)), (413, "payload_too_large"), "{p}");
        let (status, body) = gw.post_raw(p, w, "{not json").await;
        assert_eq!((status, code(&body)), (400, "invalid_request"), "{p}");
    }

    // 400: shapes.
    for bad in [
        json!({"kind": "text", "text": "hi", "extra": 1}),
        json!({"kind": "text"}),
        json!({"kind": "text", "text": ""}),
        json!({"kind": "text", "text": 5}),
        json!({"kind": "banana", "text": "hi"}),
        json!({"kind": "image"}),
        json!({"kind": "image", "media": {"url": "not a url"}}),
        json!({"kind": "image", "media": {"url": "https://x/a.png", "colour": "red"}}),
        json!({"kind": "text", "text": "hi", "media": {"url": "https://x/a.png"}}),
        json!({"text": "hi"}),
        json!({"kind": "text", "text": "a\u{0}b"}),
    ] {
        let (status, _, body) = post(&gw, &send_path, w, &bad, None).await;
        assert_eq!((status, code(&body)), (400, "invalid_request"), "{bad}");
    }
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/close"),
        w,
        &json!({"force": true}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "invalid_request"));
    for bad in [
        json!({}),
        json!({"agent_id": ""}),
        json!({"agent_id": "A2", "notify": true}),
        json!({"agent_id": "A2", "notify_customer": "yes"}),
    ] {
        let (status, _, body) =
            post(&gw, &format!("/v1/sessions/{sid}/transfer"), w, &bad, None).await;
        assert_eq!((status, code(&body)), (400, "invalid_request"), "{bad}");
    }
    for bad in [
        json!({"account": "spark-main", "kind": "text", "text": "hi", "confirm_new_session": true}),
        json!({"account": "spark-main", "customer_id": "", "kind": "text", "text": "hi", "confirm_new_session": true}),
        json!({"account": "spark-main", "customer_id": "C1", "kind": "text", "text": "hi", "confirm_new_session": "yes"}),
        json!({"account": "spark-main", "customer_id": "C1", "kind": "text", "text": "hi", "confirm": true}),
    ] {
        let (status, _, body) = post(&gw, "/v1/messages", w, &bad, None).await;
        assert_eq!((status, code(&body)), (400, "invalid_request"), "{bad}");
    }
    let (status, _, body) = post(
        &gw,
        &send_path,
        w,
        &json!({"kind": "text", "text": "hi"}),
        Some(&"k".repeat(300)),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "invalid_request"));

    let (status, _, body) = post(
        &gw,
        "/v1/sessions/ses%00x/messages",
        w,
        &json!({"kind": "text", "text": "hi"}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "invalid_request"));
    let (status, _, body) = post(
        &gw,
        "/v1/messages",
        w,
        &json!({"account": "spark-main", "customer_id": "C\u{0}1", "kind": "text", "text": "hi", "confirm_new_session": true}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "invalid_request"));

    // 404: no such session, or one the key may not see; no such account.
    let hi = json!({"kind": "text", "text": "hi"});
    for p in [
        "/v1/sessions/ses_nope/messages",
        "/v1/sessions/ses_nope/close",
        "/v1/sessions/ses_nope/restart",
    ] {
        let (status, _, body) = post(&gw, p, w, &hi_or_empty(p, &hi), None).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "{p}");
    }
    let (status, _, body) = post(
        &gw,
        "/v1/sessions/ses_nope/transfer",
        w,
        &json!({"agent_id": "A2"}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, _, body) = post(&gw, &send_path, Some(&keys.scoped), &hi, None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/close"),
        Some(&keys.scoped),
        &json!({}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, _, body) = post(&gw, "/v1/messages", w, &json!({"account": "nope", "customer_id": "C1", "kind": "text", "text": "hi", "confirm_new_session": true}), None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, _, body) = post(&gw, "/v1/messages", Some(&keys.scoped), &json!({"account": "spark-main", "customer_id": "C1", "kind": "text", "text": "hi", "confirm_new_session": true}), None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    // 422 unsupported_operation: Kchat and ccmessaging can do none of it.
    let kchat = seed(&gw.store, "kf5", "kchat", "K1").await;
    let ccm = seed(&gw.store, "huawei-web", "ccmessaging", "H1").await;
    for s in [&kchat, &ccm] {
        for (p, b) in [
            (format!("/v1/sessions/{s}/messages"), hi.clone()),
            (format!("/v1/sessions/{s}/close"), json!({})),
            (
                format!("/v1/sessions/{s}/transfer"),
                json!({"agent_id": "A2"}),
            ),
        ] {
            let (status, _, body) = post(&gw, &p, w, &b, None).await;
            assert_eq!((status, code(&body)), (422, "unsupported_operation"), "{p}");
        }
    }
    for account in ["kf5", "huawei-web"] {
        let (status, _, body) = post(&gw, "/v1/messages", w, &json!({"account": account, "customer_id": "C1", "kind": "text", "text": "hi", "confirm_new_session": true}), None).await;
        assert_eq!(
            (status, code(&body)),
            (422, "unsupported_operation"),
            "{account}"
        );
    }
    // Restart of an open Kchat session: the capability is checked first.
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{kchat}/restart"),
        w,
        &json!({}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (422, "unsupported_operation"));

    // 422 unsupported_content, content_too_long (counted in Unicode scalar values).
    for kind in ["audio", "video", "file"] {
        let (status, _, body) = post(
            &gw,
            &send_path,
            w,
            &json!({"kind": kind, "media": {"url": "https://x/a.bin"}}),
            None,
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (422, "unsupported_content"),
            "{kind}"
        );
    }
    for kind in ["card", "location", "event"] {
        let (status, _, body) = post(&gw, &send_path, w, &json!({"kind": kind}), None).await;
        assert_eq!(
            (status, code(&body)),
            (422, "unsupported_content"),
            "{kind}"
        );
    }
    let (status, _, body) = post(
        &gw,
        &send_path,
        w,
        &json!({"kind": "text", "text": "好".repeat(2001)}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (422, "content_too_long"));
    let (status, _, body) = post(&gw, "/v1/messages", w, &json!({"account": "spark-main", "customer_id": "C1", "kind": "text", "text": "😀".repeat(2001), "confirm_new_session": true}), None).await;
    assert_eq!((status, code(&body)), (422, "content_too_long"));
    let (status, _, body) = post(
        &gw,
        &send_path,
        w,
        &json!({"kind": "text", "text": "好".repeat(2000)}),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // 409: outreach without confirmation; state checks.
    for confirm in [json!(null), json!(false)] {
        let mut b =
            json!({"account": "spark-main", "customer_id": "C1", "kind": "text", "text": "hi"});
        if !confirm.is_null() {
            b["confirm_new_session"] = confirm;
        }
        let (status, _, body) = post(&gw, "/v1/messages", w, &b, None).await;
        assert_eq!((status, code(&body)), (409, "confirmation_required"), "{b}");
    }
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/restart"),
        w,
        &json!({}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));
    closed(&gw.store, "spark-main", "S1").await;
    let (status, _, body) = post(&gw, &send_path, w, &hi, None).await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/close"),
        w,
        &json!({}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/transfer"),
        w,
        &json!({"agent_id": "A2"}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));

    // Nothing reached the provider and only the one valid send was stored.
    assert!(received(&mock, "/message/send").await.is_empty());
    assert!(received(&mock, "/session/close").await.is_empty());
    let (_, list) = gw
        .get(&format!("/v1/sessions/{sid}/messages"), Some(&keys.reader))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    gw.stop().await;
}

fn hi_or_empty(p: &str, hi: &Value) -> Value {
    if p.ends_with("/messages") {
        hi.clone()
    } else {
        json!({})
    }
}

async fn provider_failures_of_actions_map_to_the_error_table(db: Db) {
    let mock = spark_mock().await;
    mount(
        &mock,
        "/session/transfer",
        spark_code(1002, "agent A9 is not online"),
    )
    .await;
    mount(
        &mock,
        "/session/close",
        ResponseTemplate::new(500).set_body_string("boom"),
    )
    .await;
    mount(
        &mock,
        "/session/restart",
        ResponseTemplate::new(200)
            .set_body_json(json!({"Code": 0}))
            .set_delay(Duration::from_millis(2500)),
    )
    .await;
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let w = Some(keys.writer.as_str());

    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/transfer"),
        w,
        &json!({"agent_id": "A9"}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (422, "provider_rejected"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent A9 is not online"),
        "{body}"
    );
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/close"),
        w,
        &json!({}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (502, "provider_error"));

    closed(&gw.store, "spark-main", "S1").await;
    let started = std::time::Instant::now();
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/restart"),
        w,
        &json!({}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (504, "provider_timeout"));
    assert!(
        started.elapsed() < Duration::from_millis(2400),
        "bounded by request_timeout_secs"
    );

    // Nothing changed, nothing announced.
    let (_, s) = gw
        .get(&format!("/v1/sessions/{sid}"), Some(&keys.reader))
        .await;
    assert_eq!(s["data"]["status"], "closed");
    assert_eq!(s["data"]["agent"]["external_id"], "A1");
    let types: Vec<String> = event_list(&gw.store)
        .await
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    assert!(
        !types
            .iter()
            .any(|t| t == "session.transferred" || t == "session.reopened"),
        "{types:?}"
    );
    gw.stop().await;
}

async fn provider_rate_limit_is_429_with_retry_after(db: Db) {
    let mock = spark_mock().await;
    mount(
        &mock,
        "/session/close",
        ResponseTemplate::new(429).insert_header("Retry-After", "7"),
    )
    .await;
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let (status, headers, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/close"),
        Some(&keys.writer),
        &json!({}),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (429, "rate_limited"));
    assert_eq!(headers.get("retry-after").unwrap(), "7");
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Close, restart, transfer.

async fn session_actions_update_the_session_once(db: Db) {
    let mock = spark_mock().await;
    for p in ["/session/close", "/session/restart", "/session/transfer"] {
        mount(&mock, p, spark_code(0, "ok")).await;
    }
    mount(&mock, "/message/send", spark_ok("S1", "M-notice")).await;
    let (toml, keys) = config_toml(&mock, FAST_OUTBOX);
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let w = Some(keys.writer.as_str());
    let acc = account_ref("spark-main", "spark");

    // Close; Spark's later DelSession changes nothing.
    let (status, body) = gw
        .post_raw(&format!("/v1/sessions/{sid}/close"), w, "")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "closed");
    assert!(body["data"]["closed_at"].is_string());
    assert_eq!(
        received(&mock, "/session/close").await,
        [json!({"SessionId": "S1"})]
    );
    let before = event_list(&gw.store).await.len();
    closed(&gw.store, "spark-main", "S1").await;
    assert_eq!(
        event_list(&gw.store).await.len(),
        before,
        "the echoed close is no second event"
    );

    // Restart; the AddSession Spark sends for it changes nothing.
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/restart"),
        w,
        &json!({}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "open");
    assert_eq!(body["data"]["closed_at"], Value::Null);
    gw.store
        .ingest(&acc, &[change(session("S1", "C1"), vec![])], None)
        .await
        .unwrap();

    // Transfer with a notice to the customer.
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/transfer"),
        w,
        &json!({"agent_id": "A2", "notify_customer": true}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let s = &body["data"];
    assert_eq!(s["agent"]["external_id"], "A2");
    assert_eq!(s["first_response_at"], Value::Null);
    assert!(s["assigned_at"].is_string());
    assert_eq!(
        received(&mock, "/session/transfer").await,
        [json!({"SessionId": "S1", "ToNewId": "A2"})]
    );

    let types: Vec<String> = event_list(&gw.store)
        .await
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    let tail: Vec<&str> = types[types.len() - 4..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "session.closed",
            "session.reopened",
            "session.transferred",
            "message.created"
        ]
    );

    // The notice goes out through the outbox as a system message.
    let (_, list) = gw
        .get(
            &format!("/v1/sessions/{sid}/messages?direction=outbound"),
            Some(&keys.reader),
        )
        .await;
    let notice = list["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(notice["sender"]["role"], "system");
    assert_eq!(notice["text"], "您好，已为您转接客服 A2。");
    let done = delivered(&gw, &keys.reader, notice["id"].as_str().unwrap()).await;
    assert_eq!(done["delivery"]["status"], "sent");
    let sends = received(&mock, "/message/send").await;
    assert_eq!(sends[0]["Content"], "您好，已为您转接客服 A2。");

    // The new agent's first message (Spark names the agent on it) is no
    // second transfer, and starts first-response timing from the hand-over.
    let before = event_list(&gw.store).await.len();
    let mut op = session("S1", "C1");
    op.agent = Some(Participant {
        external_id: Some("A2".into()),
        name: None,
        avatar_url: None,
    });
    let reply_at = Utc::now();
    let mut reply = msg("S1", "S1-a2", Role::Agent, "我是 A2", reply_at);
    reply.sender.external_id = Some("A2".into());
    gw.store
        .ingest(&acc, &[change(op, vec![reply])], None)
        .await
        .unwrap();
    let new: Vec<String> = event_list(&gw.store)
        .await
        .into_iter()
        .skip(before)
        .map(|(t, _, _)| t)
        .collect();
    assert_eq!(new, ["message.created"]);
    let (_, s) = gw
        .get(&format!("/v1/sessions/{sid}"), Some(&keys.reader))
        .await;
    let fr = chrono::DateTime::parse_from_rfc3339(s["data"]["first_response_at"].as_str().unwrap())
        .unwrap();
    assert_eq!(fr.timestamp_millis(), reply_at.timestamp_millis());
    gw.stop().await;
}

// ---------------------------------------------------------------------------
// Idempotency keys.

async fn idempotency_key_replays_and_refuses_reuse(db: Db) {
    let mock = spark_mock().await;
    mount(
        &mock,
        "/message/send",
        spark_ok("S1", "M-1").set_delay(Duration::from_millis(100)),
    )
    .await;
    mount(&mock, "/session/close", spark_code(0, "ok")).await;
    mount(&mock, "/session/restart", spark_code(0, "ok")).await;
    let (toml, keys) = config_toml(&mock, FAST_OUTBOX);
    let gw = Arc::new(TestGateway::start(db, &toml).await);
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let p = format!("/v1/sessions/{sid}/messages");

    // 20 at once with one key: one message, one delivery, one answer.
    let mut handles = Vec::new();
    for _ in 0..20 {
        let gw = gw.clone();
        let p = p.clone();
        let key = keys.writer.clone();
        handles.push(tokio::spawn(async move {
            post(
                &gw,
                &p,
                Some(&key),
                &json!({"kind": "text", "text": "只发一次"}),
                Some("key-20"),
            )
            .await
        }));
    }
    let mut answers = Vec::new();
    for h in handles {
        let (status, _, body) = h.await.unwrap();
        assert_eq!(status, 202, "{body}");
        answers.push(body);
    }
    assert!(answers.iter().all(|a| a == &answers[0]));
    let id = answers[0]["data"]["id"].as_str().unwrap().to_string();
    delivered(&gw, &keys.reader, &id).await;
    // The same key again later, with the same body in another key order.
    let (status, headers, body) = post_text(
        &gw,
        &p,
        &keys.writer,
        r#"{ "text": "只发一次", "kind": "text" }"#,
        "key-20",
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(body, answers[0]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received(&mock, "/message/send").await.len(), 1);
    let (_, list) = gw
        .get(
            &format!("/v1/sessions/{sid}/messages?direction=outbound"),
            Some(&keys.reader),
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        events_of(&gw.store, &id).await,
        ["message.created", "message.updated"]
    );

    // Same key, other body (or other endpoint): refused.
    let (status, _, body) = post(
        &gw,
        &p,
        Some(&keys.writer),
        &json!({"kind": "text", "text": "别的"}),
        Some("key-20"),
    )
    .await;
    assert_eq!((status, code(&body)), (422, "idempotency_key_reused"));
    let (status, _, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/close"),
        Some(&keys.writer),
        &json!({}),
        Some("key-20"),
    )
    .await;
    assert_eq!((status, code(&body)), (422, "idempotency_key_reused"));
    // Keys are per API key: another key may use the same name.
    let (status, _, body) = post(
        &gw,
        &p,
        Some(&keys.reader),
        &json!({"kind": "text", "text": "别的"}),
        Some("key-20"),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));

    // An action: the repeat answers the same 200 without calling Spark again
    // (a fresh close would now be 409).
    let close = format!("/v1/sessions/{sid}/close");
    let (s1, _, b1) = post(&gw, &close, Some(&keys.writer), &json!({}), Some("close-1")).await;
    let (s2, h2, b2) = post(&gw, &close, Some(&keys.writer), &json!({}), Some("close-1")).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b2);
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(received(&mock, "/session/close").await.len(), 1);

    // A refused request keeps nothing: fixing the problem and repeating works.
    let (status, _, body) = post(
        &gw,
        &p,
        Some(&keys.writer),
        &json!({"kind": "text", "text": "x"}),
        Some("after-close"),
    )
    .await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));
    let (status, _, _) = post(
        &gw,
        &format!("/v1/sessions/{sid}/restart"),
        Some(&keys.writer),
        &json!({}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = post(
        &gw,
        &p,
        Some(&keys.writer),
        &json!({"kind": "text", "text": "x"}),
        Some("after-close"),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // Keys older than the retention are forgotten.
    assert!(
        gw.store
            .prune_idempotency_keys(Utc::now() + chrono::Duration::hours(1))
            .await
            .unwrap()
            >= 3
    );
    let (status, _, body) = post(
        &gw,
        &p,
        Some(&keys.writer),
        &json!({"kind": "text", "text": "别的"}),
        Some("key-20"),
    )
    .await;
    assert_eq!(status, 202, "a forgotten key is a new request: {body}");
    assert_ne!(body["data"]["id"], answers[0]["data"]["id"]);
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
}

/// POSTs a raw JSON text with an `Idempotency-Key`.
async fn post_text(
    gw: &TestGateway,
    p: &str,
    key: &str,
    text: &'static str,
    idem: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = gw
        .http
        .post(gw.url(p))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("Idempotency-Key", idem)
        .body(text)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

// ---------------------------------------------------------------------------
// Echoes, outreach, restarts and replicas, driven step by step.

/// A Spark account whose send first lets the live feed store the echo
/// (as happens when the feed answers before the send does), then answers.
#[derive(Debug)]
struct EchoFirst {
    store: Arc<SqlStore>,
    inner: Arc<dyn Provider>,
}

#[async_trait]
impl Provider for EchoFirst {
    fn name(&self) -> &'static str {
        "spark"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn send_limits(&self) -> Option<SendLimits> {
        self.inner.send_limits()
    }
    async fn send(&self, req: &SendRequest) -> Result<SendReceipt, ProviderError> {
        let receipt = self.inner.send(req).await?;
        let session = receipt.session_external_id.clone().unwrap();
        let message = receipt.message_external_id.clone().unwrap();
        let mut c = echo(
            &session,
            &req.customer_id,
            &message,
            req.text.as_deref().unwrap_or(""),
        );
        if req.session_external_id.is_none() {
            c.session.customer = Some(Participant {
                external_id: Some(req.customer_id.clone()),
                name: Some("访客".into()),
                avatar_url: None,
            });
        }
        self.store
            .ingest(&account_ref("spark-main", "spark"), &[c], Some("v"))
            .await
            .unwrap();
        Ok(receipt)
    }
}

fn echo_first_accounts(toml: &str, store: Arc<SqlStore>) -> Accounts {
    let built = accounts_of(toml);
    let spark = built.get("spark-main").unwrap().clone();
    Accounts::from_accounts(vec![Account {
        config: spark.config.clone(),
        provider: Arc::new(EchoFirst {
            store,
            inner: spark.provider.clone(),
        }),
    }])
}

async fn echo_never_makes_a_second_message(db: Db) {
    let mock = spark_mock().await;
    mount_n(&mock, "/message/send", spark_ok("S1", "M-1"), 1).await;
    mount_n(&mock, "/message/send", spark_ok("S1", "M-2"), 1).await;
    mount_n(&mock, "/message/send", spark_ok("S1", "M-3"), 1).await;
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let acc = account_ref("spark-main", "spark");
    let send = |text: &'static str| {
        let gw = &gw;
        let p = format!("/v1/sessions/{sid}/messages");
        let key = keys.writer.clone();
        async move {
            let (status, _, body) = post(
                gw,
                &p,
                Some(&key),
                &json!({"kind": "text", "text": text}),
                None,
            )
            .await;
            assert_eq!(status, 202);
            body["data"]["id"].as_str().unwrap().to_string()
        }
    };
    let count = || async {
        let (_, list) = gw
            .get(&format!("/v1/sessions/{sid}/messages"), Some(&keys.reader))
            .await;
        list["data"].as_array().unwrap().len()
    };

    // 1. The receipt is recorded first, the echo comes after: ignored.
    let a = send("第一条").await;
    let plain = dispatcher(&gw, accounts_of(&toml));
    assert_eq!(
        plain.try_execute_task().await.unwrap(),
        Outcome::Sent {
            message_id: a.clone()
        }
    );
    let s = gw
        .store
        .ingest(&acc, &[echo("S1", "C1", "M-1", "第一条")], Some("v1"))
        .await
        .unwrap();
    assert_eq!((s.messages_created, s.events), (0, 0));

    // 2. The echo is stored while the send is in flight: it is matched to
    // the pending message, and recording the receipt then just works.
    let b = send("第二条").await;
    let racing = dispatcher(&gw, echo_first_accounts(&toml, gw.store.clone()));
    assert_eq!(
        racing.try_execute_task().await.unwrap(),
        Outcome::Sent {
            message_id: b.clone()
        }
    );
    let (_, m) = gw
        .get(&format!("/v1/messages/{b}"), Some(&keys.reader))
        .await;
    assert_eq!(m["data"]["external_id"], "M-2");
    assert_eq!(
        m["data"]["delivery"],
        json!({"status": "sent", "attempts": 1, "last_error": null})
    );

    // 3. The echo arrives before the send is even recorded as tried (the
    // provider took a call whose answer was lost): never sent again.
    let c = send("第三条").await;
    let s = gw
        .store
        .ingest(&acc, &[echo("S1", "C1", "M-3", "第三条")], Some("v3"))
        .await
        .unwrap();
    assert_eq!((s.messages_created, s.events), (0, 0));
    assert_eq!(
        plain.try_execute_task().await.unwrap(),
        Outcome::Sent {
            message_id: c.clone()
        }
    );
    let (_, m) = gw
        .get(&format!("/v1/messages/{c}"), Some(&keys.reader))
        .await;
    assert_eq!(m["data"]["external_id"], "M-3");
    assert_eq!(m["data"]["delivery"]["status"], "sent");

    // An agent's message that is not an echo is stored as usual.
    let other = gw
        .store
        .ingest(&acc, &[echo("S1", "C1", "M-x", "第三条")], Some("v4"))
        .await
        .unwrap();
    assert_eq!(other.messages_created, 1);

    assert_eq!(count().await, 1 + 3 + 1);
    assert_eq!(received(&mock, "/message/send").await.len(), 2);
    for id in [&a, &b, &c] {
        assert_eq!(
            events_of(&gw.store, id).await,
            ["message.created", "message.updated"],
            "{id}"
        );
    }
    gw.stop().await;
}

async fn outreach_opens_a_session_holding_the_message(db: Db) {
    let mock = spark_mock().await;
    mount_n(&mock, "/message/send", spark_ok("S-NEW", "M-9"), 1).await;
    mount_n(&mock, "/message/send", spark_ok("S-NEW2", "M-10"), 1).await;
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let w = Some(keys.writer.as_str());
    let body = json!({"account": "spark-main", "customer_id": "C7", "kind": "text", "text": "您好，您的订单已发货", "confirm_new_session": true});
    let (status, _, answer) = post(&gw, "/v1/messages", w, &body, None).await;
    assert_eq!(status, 202, "{answer}");
    let m = &answer["data"];
    assert_eq!(m["delivery"]["status"], "pending");
    let sid = m["session_id"].as_str().unwrap().to_string();
    let mid = m["id"].as_str().unwrap().to_string();
    let (status, s) = gw
        .get(&format!("/v1/sessions/{sid}"), Some(&keys.reader))
        .await;
    assert_eq!(status, 200);
    assert_eq!(s["data"]["started_by"], "agent");
    assert_eq!(s["data"]["customer"]["external_id"], "C7");

    // The receipt names the session.
    let d = dispatcher(&gw, accounts_of(&toml));
    assert_eq!(
        d.try_execute_task().await.unwrap(),
        Outcome::Sent {
            message_id: mid.clone()
        }
    );
    let sends = received(&mock, "/message/send").await;
    assert_eq!(sends[0]["SessionId"], "");
    assert_eq!(sends[0]["ToId"], "C7");
    let (_, list) = gw
        .get("/v1/sessions?customer_id=C7", Some(&keys.reader))
        .await;
    let list = list["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], sid.as_str());
    assert_eq!(list[0]["external_id"], "S-NEW");
    assert_eq!(list[0]["message_count"], 1);
    let (_, msgs) = gw
        .get(&format!("/v1/sessions/{sid}/messages"), Some(&keys.reader))
        .await;
    assert_eq!(msgs["data"][0]["id"], mid.as_str());
    assert_eq!(msgs["data"][0]["external_id"], "M-9");
    // Spark's AddSession with the echo then merges into it.
    let mut echoed = echo("S-NEW", "C7", "M-9", "您好，您的订单已发货");
    echoed.session.customer.as_mut().unwrap().name = Some("访客7".into());
    let s = gw
        .store
        .ingest(&account_ref("spark-main", "spark"), &[echoed], Some("v"))
        .await
        .unwrap();
    assert_eq!((s.sessions_created, s.messages_created), (0, 0));
    let types: Vec<String> = event_list(&gw.store)
        .await
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    assert_eq!(
        types,
        [
            "session.opened",
            "message.created",
            "session.updated",
            "message.updated",
            "session.updated"
        ]
    );

    // Outreach whose echo (and new session) the feed stores first: the
    // provisional session is adopted, not duplicated.
    let body = json!({"account": "spark-main", "customer_id": "C8", "kind": "text", "text": "第二位客户", "confirm_new_session": true});
    let (_, _, answer) = post(&gw, "/v1/messages", w, &body, None).await;
    let sid2 = answer["data"]["session_id"].as_str().unwrap().to_string();
    let racing = dispatcher(&gw, echo_first_accounts(&toml, gw.store.clone()));
    assert!(matches!(
        racing.try_execute_task().await.unwrap(),
        Outcome::Sent { .. }
    ));
    let (_, list) = gw
        .get("/v1/sessions?customer_id=C8", Some(&keys.reader))
        .await;
    let list = list["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], sid2.as_str());
    assert_eq!(list[0]["external_id"], "S-NEW2");
    assert_eq!(list[0]["message_count"], 1);
    assert_eq!(list[0]["customer"]["name"], "访客");
    gw.stop().await;
}

async fn failed_outreach_closes_its_provisional_session(db: Db) {
    let mock = spark_mock().await;
    mount(&mock, "/message/send", spark_code(1003, "ToId is required")).await;
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let body = json!({"account": "spark-main", "customer_id": "C9", "kind": "text", "text": "hi", "confirm_new_session": true});
    let (_, _, answer) = post(&gw, "/v1/messages", Some(&keys.writer), &body, None).await;
    let sid = answer["data"]["session_id"].as_str().unwrap().to_string();
    let d = dispatcher(&gw, accounts_of(&toml));
    assert!(matches!(
        d.try_execute_task().await.unwrap(),
        Outcome::Failed { .. }
    ));
    let (_, s) = gw
        .get(&format!("/v1/sessions/{sid}"), Some(&keys.reader))
        .await;
    assert_eq!(s["data"]["status"], "closed");
    let (status, _, b) = post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        Some(&keys.writer),
        &json!({"kind": "text", "text": "x"}),
        None,
    )
    .await;
    assert_eq!((status, code(&b)), (409, "invalid_state"));
    gw.stop().await;
}

async fn pending_sends_survive_a_restart_and_a_dead_claimer(db: Db) {
    let mock = spark_mock().await;
    mount(&mock, "/message/send", spark_ok("S1", "M")).await;
    // Accepted by a gateway that never delivered them (dispatcher off).
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let sid = seed(&gw.store, "spark-main", "spark", "S1").await;
    let sid2 = seed(&gw.store, "spark-main", "spark", "S2").await;
    for (s, text) in [(&sid, "a"), (&sid2, "b")] {
        let (status, _, _) = post(
            &gw,
            &format!("/v1/sessions/{s}/messages"),
            Some(&keys.writer),
            &json!({"kind": "text", "text": text}),
            None,
        )
        .await;
        assert_eq!(status, 202);
    }
    // A claimer takes one and dies mid-send (its lease is short here).
    let lost = gw
        .store
        .claim_outbox(Utc::now(), Duration::from_millis(1000))
        .await
        .unwrap()
        .unwrap();
    let d = dispatcher(&gw, accounts_of(&toml));
    assert!(matches!(
        d.try_execute_task().await.unwrap(),
        Outcome::Sent { .. }
    ));
    assert_eq!(
        d.try_execute_task().await.unwrap(),
        Outcome::Idle,
        "the dead claimer's row waits for its lease"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        d.try_execute_task().await.unwrap(),
        Outcome::Sent {
            message_id: lost.message_id.clone()
        }
    );
    assert_eq!(d.try_execute_task().await.unwrap(), Outcome::Idle);
    // The dead claimer's late result finds the row finished and changes nothing.
    let late = gw
        .store
        .finish_delivery(
            &lost,
            &chat_gateway::store::DeliveryResult::Failed {
                error: "late".into(),
                called: true,
            },
        )
        .await
        .unwrap();
    assert!(late.is_none());
    assert_eq!(received(&mock, "/message/send").await.len(), 2);
    gw.stop().await;
}

async fn concurrent_dispatchers_send_each_message_once(db: Db) {
    let mock = spark_mock().await;
    mount(
        &mock,
        "/message/send",
        spark_ok("S", "M").set_delay(Duration::from_millis(20)),
    )
    .await;
    let (toml, keys) = config_toml(&mock, "enabled = false\n");
    let gw = TestGateway::start(db, &toml).await;
    let mut expected = Vec::new();
    for i in 0..12 {
        let sid = seed(&gw.store, "spark-main", "spark", &format!("S{i}")).await;
        let (status, _, body) = post(
            &gw,
            &format!("/v1/sessions/{sid}/messages"),
            Some(&keys.writer),
            &json!({"kind": "text", "text": format!("m{i}")}),
            None,
        )
        .await;
        assert_eq!(status, 202);
        expected.push(body["data"]["id"].as_str().unwrap().to_string());
    }
    // Two replicas' dispatchers (separate stores on one database) drain it.
    let other_store = Arc::new(SqlStore::connect(gw.db_url(), 4).await.unwrap());
    let one = Arc::new(dispatcher(&gw, accounts_of(&toml)));
    let two = Arc::new(Dispatcher::new(
        other_store as Arc<dyn Store>,
        Arc::new(accounts_of(&toml)),
        fast_config(),
    ));
    let drain = |d: Arc<Dispatcher>| async move {
        let mut sent = Vec::new();
        loop {
            match d.try_execute_task().await.unwrap() {
                Outcome::Idle => return sent,
                Outcome::Sent { message_id } => sent.push(message_id),
                other => panic!("{other:?}"),
            }
        }
    };
    let (a, b, c, e) = tokio::join!(
        drain(one.clone()),
        drain(two.clone()),
        drain(one),
        drain(two)
    );
    let mut all: Vec<String> = [a, b, c, e].concat();
    all.sort();
    expected.sort();
    assert_eq!(all, expected);
    let mut contents: Vec<String> = received(&mock, "/message/send")
        .await
        .iter()
        .map(|b| b["Content"].as_str().unwrap().to_string())
        .collect();
    contents.sort();
    contents.dedup();
    assert_eq!(contents.len(), 12);
    assert_eq!(received(&mock, "/message/send").await.len(), 12);
    gw.stop().await;
}

on_both_backends!(
    send_is_accepted_pending_then_sent_once,
    provider_5xx_is_retried_until_sent,
    provider_refusal_fails_with_its_reason,
    retry_budget_ends_in_failed,
    a_sessions_sends_go_out_in_order,
    bad_input_is_refused_before_anything_is_stored,
    provider_failures_of_actions_map_to_the_error_table,
    provider_rate_limit_is_429_with_retry_after,
    session_actions_update_the_session_once,
    idempotency_key_replays_and_refuses_reuse,
    echo_never_makes_a_second_message,
    outreach_opens_a_session_holding_the_message,
    failed_outreach_closes_its_provisional_session,
    pending_sends_survive_a_restart_and_a_dead_claimer,
    concurrent_dispatchers_send_each_message_once,
);
