//! The adapter over real HTTP against wiremock: request bodies, answers and
//! every failure kind.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chat_core::time::{parse_zone, Tz};
use chat_core::{
    Capability, LiveMode, LivePoll, MessageKind, Provider, ProviderError, Role, Secret,
    SendRequest, SessionStatus,
};
use chrono::{DateTime, Utc};
use provider_spark::{ConfigError, SparkConfig, SparkProvider};
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn shanghai() -> Tz {
    parse_zone("Asia/Shanghai").unwrap()
}

fn config(server: &MockServer) -> SparkConfig {
    SparkConfig::new(server.uri(), shanghai())
        .with_request_timeout(Duration::from_millis(500))
        .with_poll_timeout(Duration::from_millis(500))
        .with_poll_margin(Duration::from_millis(200))
}

fn provider(server: &MockServer) -> SparkProvider {
    SparkProvider::new(config(server)).unwrap()
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn poll(version: Option<&str>, acks: &[&str]) -> LivePoll {
    LivePoll {
        version: version.map(str::to_string),
        acks: acks.iter().map(|a| a.to_string()).collect(),
    }
}

fn text_send(session: Option<&str>, text: &str) -> SendRequest {
    SendRequest {
        session_external_id: session.map(str::to_string),
        customer_id: "c-1".into(),
        kind: MessageKind::Text,
        text: Some(text.into()),
        media_url: None,
        created_at: DateTime::parse_from_rfc3339("2026-11-21T08:04:12Z")
            .unwrap()
            .with_timezone(&Utc),
    }
}

fn one_message_answer(session: &str, id: &str) -> Value {
    json!({"Operation": [{
        "Type": 0, "SessionId": session, "SessionType": 1,
        "FromId": "c-1", "FromName": "张三", "ToId": "a-1", "ToName": "Li",
        "Message": [{"Type": 0, "Id": id, "ContentType": "0", "Content": "你好 🙂",
                     "CreateTime": "2026-11-21 16:04:12"}]
    }]})
}

#[tokio::test]
async fn live_poll_sends_empty_version_and_joined_acks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": "m-1,m-2"})))
        .respond_with(ok(one_message_answer("s-1", "m-3")))
        .expect(1)
        .mount(&server)
        .await;

    let batch = provider(&server)
        .poll_live(&poll(None, &["m-1", "m-2"]))
        .await
        .unwrap();
    assert_eq!(batch.mode, LiveMode::Live);
    assert_eq!(batch.version.as_deref(), Some("m-3"));
    assert!(!batch.caught_up);
    let change = &batch.changes[0];
    assert_eq!(change.session.external_id, "s-1");
    assert_eq!(change.session.status, Some(SessionStatus::Open));
    assert_eq!(change.session.channel.as_deref(), Some("wechat"));
    let message = &change.messages[0];
    assert_eq!(message.sender.role, Role::Customer);
    assert_eq!(message.sender.name.as_deref(), Some("张三"));
    assert_eq!(message.text.as_deref(), Some("你好 🙂"));
    assert_eq!(message.sent_at.to_rfc3339(), "2026-11-21T08:04:12+00:00");
    assert_eq!(message.raw["Id"], "m-3");
}

#[tokio::test]
async fn live_poll_without_messages_keeps_live_mode() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": ""})))
        .respond_with(ok(json!({"Operation": []})))
        .mount(&server)
        .await;
    let batch = provider(&server).poll_live(&poll(None, &[])).await.unwrap();
    assert_eq!(batch.mode, LiveMode::Live);
    assert_eq!(batch.version, None);
    assert!(!batch.caught_up);
    assert!(batch.changes.is_empty());
}

#[tokio::test]
async fn history_mode_replays_then_catches_up() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "m-1", "Acks": ""})))
        .respond_with(ok(one_message_answer("s-1", "m-2")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "m-2", "Acks": "m-2"})))
        .respond_with(ok(json!({"Operation": []})))
        .expect(1)
        .mount(&server)
        .await;

    let spark = provider(&server);
    let first = spark.poll_live(&poll(Some("m-1"), &[])).await.unwrap();
    assert_eq!(first.mode, LiveMode::History);
    assert_eq!(first.version.as_deref(), Some("m-2"));
    assert!(!first.caught_up);
    assert_eq!(first.changes[0].messages[0].external_id, "m-2");

    let second = spark.poll_live(&poll(Some("m-2"), &["m-2"])).await.unwrap();
    assert_eq!(second.mode, LiveMode::History);
    assert_eq!(second.version.as_deref(), Some("m-2"));
    assert!(second.caught_up);
}

#[tokio::test]
async fn expired_version_asks_for_a_live_restart() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .respond_with(ok(json!({"Code": 1004, "Message": "version too old"})))
        .mount(&server)
        .await;
    let err = provider(&server)
        .poll_live(&poll(Some("ancient"), &[]))
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::CursorExpired("version too old".into()));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn expired_version_on_a_4xx_is_read_the_same() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"Code": "1004", "Message": "unknown"})),
        )
        .mount(&server)
        .await;
    let err = provider(&server)
        .poll_live(&poll(Some("x"), &[]))
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::CursorExpired("unknown".into()));
}

#[tokio::test]
async fn bad_item_is_skipped_the_rest_maps_and_the_skip_is_acked_next_time() {
    let server = MockServer::start().await;
    let answer = json!({"Operation": [
        {"Type": 0, "SessionId": "s-1", "FromId": "c-1", "ToId": "a-1", "Message": [
            {"Type": 0, "Id": "broken", "ContentType": "0", "Content": "x", "CreateTime": "not a time"},
            {"Type": 1, "Id": "fine", "ContentType": "1", "Content": "https://img.example/a.png",
             "CreateTime": "2026-11-21 16:00:00"}
        ]},
        {"Type": 0, "Message": [{"Type": 0, "Id": "no-session"}]}
    ]});
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": "a-0"})))
        .respond_with(ok(answer))
        .expect(1)
        .mount(&server)
        .await;
    // The next query acknowledges what was stored plus what was skipped.
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(
            json!({"LastVersion": "", "Acks": "fine,broken,no-session"}),
        ))
        .respond_with(ok(json!({"Operation": []})))
        .expect(1)
        .mount(&server)
        .await;
    // Once acknowledged, skipped ids are not sent again.
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": ""})))
        .respond_with(ok(json!({"Operation": []})))
        .expect(1)
        .mount(&server)
        .await;

    let spark = provider(&server);
    let batch = spark.poll_live(&poll(None, &["a-0"])).await.unwrap();
    assert_eq!(batch.changes.len(), 1);
    let messages = &batch.changes[0].messages;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].external_id, "fine");
    assert_eq!(messages[0].sender.role, Role::Agent);
    assert_eq!(messages[0].kind, MessageKind::Image);
    assert_eq!(
        messages[0].media.as_ref().unwrap().url.as_deref(),
        Some("https://img.example/a.png")
    );
    assert_eq!(batch.version.as_deref(), Some("no-session"));

    spark.poll_live(&poll(None, &["fine"])).await.unwrap();
    spark.poll_live(&poll(None, &[])).await.unwrap();
}

#[tokio::test]
async fn skipped_ids_survive_a_failed_query() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": ""})))
        .respond_with(ok(json!({"Operation": [{"Type": 0, "SessionId": "s",
            "Message": [{"Type": 0, "Id": "bad", "CreateTime": "?"}]}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": "bad"})))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let spark = provider(&server);
    spark.poll_live(&poll(None, &[])).await.unwrap();
    assert!(spark.poll_live(&poll(None, &[])).await.is_err());
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": "bad"})))
        .respond_with(ok(json!({"Operation": []})))
        .expect(1)
        .mount(&server)
        .await;
    spark.poll_live(&poll(None, &[])).await.unwrap();
}

#[tokio::test]
async fn skipped_ids_are_acked_until_a_live_query_carried_them() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "v-1", "Acks": ""})))
        .respond_with(ok(json!({"Operation": [{"Type": 0, "SessionId": "s",
            "Message": [{"Type": 0, "Id": "bad", "CreateTime": "?"}]}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "bad", "Acks": "bad"})))
        .respond_with(ok(json!({"Operation": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": "bad"})))
        .respond_with(ok(json!({"Operation": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .and(body_json(json!({"LastVersion": "", "Acks": ""})))
        .respond_with(ok(json!({"Operation": []})))
        .expect(1)
        .mount(&server)
        .await;
    let spark = provider(&server);
    let first = spark.poll_live(&poll(Some("v-1"), &[])).await.unwrap();
    assert_eq!(first.version.as_deref(), Some("bad"));
    assert!(
        spark
            .poll_live(&poll(Some("bad"), &[]))
            .await
            .unwrap()
            .caught_up
    );
    spark.poll_live(&poll(None, &[])).await.unwrap();
    spark.poll_live(&poll(None, &[])).await.unwrap();
}

#[tokio::test]
async fn send_writes_create_time_in_the_account_zone() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/send"))
        .and(body_json(json!({
            "SessionId": "s-1", "ToId": "c-1", "ContentType": "0",
            "Content": "您好 👋", "CreateTime": "2026-11-21 16:04:12"
        })))
        .respond_with(ok(
            json!({"Code": 0, "Message": "ok", "SessionId": "s-1", "MessageId": "m-9"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let receipt = provider(&server)
        .send(&text_send(Some("s-1"), "您好 👋"))
        .await
        .unwrap();
    assert_eq!(receipt.message_external_id.as_deref(), Some("m-9"));
    assert_eq!(receipt.session_external_id.as_deref(), Some("s-1"));
}

#[tokio::test]
async fn outreach_sends_an_empty_session_and_gets_the_new_one() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/send"))
        .and(body_json(json!({
            "SessionId": "", "ToId": "c-1", "ContentType": "1",
            "Content": "https://img.example/hello.png", "CreateTime": "2026-11-21 16:04:12"
        })))
        .respond_with(ok(
            json!({"Code": 0, "Message": "ok", "SessionId": "s-new", "MessageId": "m-10"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let mut req = text_send(None, "");
    req.kind = MessageKind::Image;
    req.text = None;
    req.media_url = Some("https://img.example/hello.png".into());
    let receipt = provider(&server).send(&req).await.unwrap();
    assert_eq!(receipt.session_external_id.as_deref(), Some("s-new"));
    assert_eq!(receipt.message_external_id.as_deref(), Some("m-10"));
}

#[tokio::test]
async fn send_rejection_carries_the_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/send"))
        .respond_with(ok(
            json!({"Code": 1003, "Message": "ToId is not the customer"}),
        ))
        .mount(&server)
        .await;
    let err = provider(&server)
        .send(&text_send(Some("s-1"), "hi"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Rejected {
            code: Some("1003".into()),
            message: "ToId is not the customer".into()
        }
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn too_long_text_is_refused_before_any_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok(json!({"Code": 0})))
        .expect(0)
        .mount(&server)
        .await;
    let err = provider(&server)
        .send(&text_send(Some("s-1"), &"a".repeat(2001)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { code: Some(c), .. } if c == "content_too_long")
    );
}

#[tokio::test]
async fn close_restart_transfer_post_their_bodies() {
    let server = MockServer::start().await;
    for (p, body) in [
        ("/session/close", json!({"SessionId": "s-1"})),
        ("/session/restart", json!({"SessionId": "s-2"})),
        (
            "/session/transfer",
            json!({"SessionId": "s-3", "ToNewId": "a-9"}),
        ),
    ] {
        Mock::given(method("POST"))
            .and(path(p))
            .and(body_json(body))
            .respond_with(ok(json!({"Code": 0, "Message": "ok"})))
            .expect(1)
            .mount(&server)
            .await;
    }
    let spark = provider(&server);
    spark.close("s-1").await.unwrap();
    spark.restart("s-2").await.unwrap();
    spark.transfer("s-3", "a-9").await.unwrap();
}

#[tokio::test]
async fn each_rejection_code_is_carried_with_its_message() {
    let server = MockServer::start().await;
    let cases = [
        ("/session/close", 1001, "session not active"),
        ("/session/transfer", 1002, "target agent offline"),
        ("/session/restart", 1003, "session is active"),
    ];
    for (p, code, message) in cases {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(ok(json!({"Code": code, "Message": message})))
            .mount(&server)
            .await;
    }
    let spark = provider(&server);
    let results = [
        spark.close("s").await,
        spark.transfer("s", "a-2").await,
        spark.restart("s").await,
    ];
    for ((_, code, message), result) in cases.into_iter().zip(results) {
        assert_eq!(
            result.unwrap_err(),
            ProviderError::Rejected {
                code: Some(code.to_string()),
                message: message.into()
            }
        );
    }
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_by_status_or_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session/close"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/session/restart"))
        .respond_with(ok(json!({"Code": 401, "Message": "bad key"})))
        .mount(&server)
        .await;
    let spark = provider(&server);
    let by_status = spark.close("s").await.unwrap_err();
    assert!(matches!(by_status, ProviderError::Unauthorized(_)));
    assert_eq!(
        spark.restart("s").await.unwrap_err(),
        ProviderError::Unauthorized("bad key".into())
    );
    assert!(!by_status.is_retryable());
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/send"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"Code": 1001, "Message": "down"})),
        )
        .mount(&server)
        .await;
    let spark = provider(&server);
    let err = spark.poll_live(&poll(None, &[])).await.unwrap_err();
    assert_eq!(err, ProviderError::Unavailable("HTTP 500: boom".into()));
    assert!(err.is_retryable());
    let err = spark.send(&text_send(Some("s"), "hi")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)));
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    let err = provider(&server).close("s").await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn malformed_answers_are_retryable_bad_data() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"Operation\": [ oops"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/send"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/session/close"))
        .respond_with(ok(json!({"Code": "zero", "Message": "?"})))
        .mount(&server)
        .await;
    let spark = provider(&server);
    for err in [
        spark.poll_live(&poll(None, &[])).await.unwrap_err(),
        spark.send(&text_send(Some("s"), "hi")).await.unwrap_err(),
        spark.close("s").await.unwrap_err(),
    ] {
        assert!(matches!(err, ProviderError::BadData(_)), "{err:?}");
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn query_answer_without_operation_list_is_bad_data() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .respond_with(ok(json!({"Code": 0, "Message": "ok"})))
        .mount(&server)
        .await;
    let err = provider(&server)
        .poll_live(&poll(None, &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::BadData(_)));
}

#[tokio::test]
async fn a_hang_past_request_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session/close"))
        .respond_with(ok(json!({"Code": 0})).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let err = provider(&server).close("s").await.unwrap_err();
    assert_eq!(err, ProviderError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn the_long_poll_gets_its_hold_plus_margin() {
    let server = MockServer::start().await;
    // Longer than request_timeout (500 ms), within poll 500 ms + margin 200 ms.
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .respond_with(ok(json!({"Operation": []})).set_delay(Duration::from_millis(600)))
        .mount(&server)
        .await;
    let spark = SparkProvider::new(
        config(&server)
            .with_request_timeout(Duration::from_millis(300))
            .with_poll_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    spark.poll_live(&poll(None, &[])).await.unwrap();
    assert_eq!(spark.live_hold(), Duration::from_millis(500));

    let hanging = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok(json!({"Operation": []})).set_delay(Duration::from_secs(3)))
        .mount(&hanging)
        .await;
    let err = provider(&hanging)
        .poll_live(&poll(None, &[]))
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::Timeout);
}

#[tokio::test]
async fn connection_failures_are_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let spark = SparkProvider::for_base_url(format!("http://{addr}"), shanghai()).unwrap();
    let err = spark.close("s").await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn configured_headers_are_sent_and_never_printed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session/close"))
        .and(header("X-Spark-Key", "hunter2"))
        .respond_with(ok(json!({"Code": 0})))
        .expect(1)
        .mount(&server)
        .await;
    let config = config(&server).with_header("X-Spark-Key", Secret::new("hunter2"));
    assert!(!format!("{config:?}").contains("hunter2"));
    let spark = SparkProvider::new(config).unwrap();
    assert!(!format!("{spark:?}").contains("hunter2"));
    spark.close("s").await.unwrap();
}

#[tokio::test]
async fn a_base_url_path_prefix_is_kept() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/spark/api/session/close"))
        .respond_with(ok(json!({"Code": 0})))
        .expect(1)
        .mount(&server)
        .await;
    let spark =
        SparkProvider::for_base_url(format!("{}/spark/api/", server.uri()), shanghai()).unwrap();
    spark.close("s").await.unwrap();
}

#[test]
fn capabilities_and_limits_are_what_spark_offers() {
    let spark = SparkProvider::for_base_url("http://127.0.0.1:9", shanghai()).unwrap();
    assert_eq!(spark.name(), "spark");
    let caps: Vec<Capability> = spark.capabilities().iter().collect();
    assert_eq!(
        caps,
        [
            Capability::Live,
            Capability::History,
            Capability::Send,
            Capability::Outreach,
            Capability::Close,
            Capability::Restart,
            Capability::Transfer,
        ]
    );
    let limits = spark.send_limits().unwrap();
    assert_eq!(limits.kinds, [MessageKind::Text, MessageKind::Image]);
    assert_eq!(limits.max_text_chars, Some(2000));
    assert_eq!(spark.live_hold(), SparkConfig::DEFAULT_POLL_TIMEOUT);
}

#[test]
fn unusable_configurations_fail_at_start() {
    let tz = shanghai();
    assert!(matches!(
        SparkProvider::for_base_url("not a url", tz),
        Err(ConfigError::BaseUrl { .. })
    ));
    assert!(matches!(
        SparkProvider::for_base_url("ftp://host", tz),
        Err(ConfigError::BaseUrl { .. })
    ));
    assert!(matches!(
        SparkProvider::new(
            SparkConfig::new("http://h", tz).with_header("bad name", Secret::new("v"))
        ),
        Err(ConfigError::HeaderName(_))
    ));
    let err = SparkProvider::new(
        SparkConfig::new("http://h", tz).with_header("X-Key", Secret::new("line\nbreak")),
    )
    .unwrap_err();
    assert_eq!(err, ConfigError::HeaderValue("X-Key".into()));
    assert!(!err.to_string().contains("line"));
    assert!(matches!(
        SparkProvider::new(SparkConfig::new("http://h", tz).with_request_timeout(Duration::ZERO)),
        Err(ConfigError::ZeroTimeout("request_timeout"))
    ));
}
