//! Snapshots of representative Spark answers, mapped.

#![allow(clippy::unwrap_used)]

use chat_core::time::parse_zone;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::*;

fn shanghai() -> Tz {
    parse_zone("Asia/Shanghai").unwrap()
}

fn mapped(answer: Value, asked: Option<&str>) -> MappedAnswer {
    map_query(&answer, shanghai(), asked).unwrap()
}

/// The whole mapped answer as JSON, for a snapshot.
fn view(m: &MappedAnswer) -> Value {
    json!({
        "mode": m.batch.mode,
        "version": m.batch.version,
        "caught_up": m.batch.caught_up,
        "changes": m.batch.changes,
        "skipped_ids": m.skipped_ids,
    })
}

/// Every operation Type, SessionType, message Type and ContentType the
/// contract names, plus unknown ones and a Chinese/emoji text.
fn live_answer() -> Value {
    json!({"Operation": [
        {
            "Type": 0, "SessionId": "s-web", "SessionType": 0,
            "FromId": "c-1", "FromName": "张三", "FromImage": "https://img.example/c1.png",
            "ToId": "a-1", "ToName": "Agent Li", "ToImage": "/avatars/a1.png",
            "Message": [
                {"Type": 0, "Id": "m-1", "ContentType": "0",
                 "Content": "你好，我的订单还没到 📦🙂", "CreateTime": "2026-11-21 16:04:12"},
                {"Type": 0, "Id": "m-2", "ContentType": "1",
                 "Content": "https://img.example/photo.jpg", "CreateTime": "2026-11-21 16:04:20"},
                {"Type": 1, "Id": "m-3", "ContentType": "0",
                 "Content": "您好！马上为您查询 👍", "CreateTime": "2026-11-21 16:05:01"}
            ]
        },
        {
            "Type": 0, "SessionId": "s-wechat", "SessionType": 1,
            "FromId": "c-2", "FromName": "Wei", "ToId": "a-1", "ToName": "Agent Li",
            "Message": [
                {"Type": 0, "Id": "m-4", "ContentType": "2",
                 "Content": "voice:abc", "CreateTime": "2026-11-21 16:06:00"}
            ]
        },
        {
            "Type": "0", "SessionId": 777, "SessionType": "2",
            "FromId": "c-3", "ToId": "a-2",
            "Message": [
                {"Type": "1", "Id": 12345, "ContentType": 0,
                 "Content": "numbers given as strings and strings as numbers",
                 "CreateTime": "2026-11-21 16:07:00"}
            ]
        },
        {
            "Type": 0, "SessionId": "s-other", "SessionType": 9,
            "FromId": "c-4", "FromName": "", "FromImage": "",
            "Message": []
        },
        {"Type": 1, "SessionId": "s-web", "SessionType": 0, "FromId": "c-1", "ToId": "a-1"}
    ]})
}

#[test]
fn live_answer_maps_every_enum_value() {
    let m = mapped(live_answer(), None);
    assert_eq!(m.batch.mode, LiveMode::Live);
    assert_eq!(m.batch.version.as_deref(), Some("12345"));
    assert!(!m.batch.caught_up);
    assert!(m.skipped_ids.is_empty());
    insta::assert_json_snapshot!("live_answer", view(&m));
}

#[test]
fn history_answer_resumes_after_the_last_delivered_message() {
    let answer = json!({"Operation": [
        {"Type": 0, "SessionId": "s-1", "SessionType": 0, "FromId": "c-1", "ToId": "a-1",
         "Message": [
            {"Type": 0, "Id": "h-9", "ContentType": "0", "Content": "later id first",
             "CreateTime": "2026-11-20 09:00:00"},
            {"Type": 1, "Id": "h-10", "ContentType": "0", "Content": "then this",
             "CreateTime": "2026-11-20 09:00:05"}
         ]},
        {"Type": 1, "SessionId": "s-1"}
    ]});
    let m = mapped(answer, Some("h-8"));
    assert_eq!(m.batch.mode, LiveMode::History);
    assert_eq!(m.batch.version.as_deref(), Some("h-10"));
    assert!(!m.batch.caught_up);
    insta::assert_json_snapshot!("history_answer", view(&m));
}

#[test]
fn empty_answers_keep_the_version_and_end_history() {
    let history = mapped(json!({"Operation": []}), Some("h-10"));
    assert!(history.batch.caught_up);
    assert_eq!(history.batch.version.as_deref(), Some("h-10"));
    assert!(history.batch.changes.is_empty());

    let live = mapped(json!({"Operation": []}), None);
    assert_eq!(live.batch.mode, LiveMode::Live);
    assert!(!live.batch.caught_up);
    assert_eq!(live.batch.version, None);

    // Operations without messages: the version stays where it was.
    let bare = mapped(
        json!({"Operation": [{"Type": 1, "SessionId": "s"}]}),
        Some("v"),
    );
    assert_eq!(bare.batch.version.as_deref(), Some("v"));
    assert!(!bare.batch.caught_up);
}

#[test]
fn bad_items_are_skipped_and_the_rest_maps() {
    let answer = json!({"Operation": [
        "not an object",
        {"Type": 0, "SessionType": 0,
         "Message": [{"Type": 0, "Id": "orphan", "ContentType": "0", "Content": "x",
                      "CreateTime": "2026-11-21 10:00:00"}]},
        {"Type": 0, "SessionId": "", "Message": []},
        {"Type": 0, "SessionId": "s-1", "SessionType": 0, "FromId": "c-1", "ToId": "a-1",
         "Message": [
            {"Type": 0, "ContentType": "0", "Content": "no id", "CreateTime": "2026-11-21 10:00:00"},
            {"Type": 0, "Id": "bad-time", "ContentType": "0", "Content": "x", "CreateTime": "yesterday"},
            {"Type": 0, "Id": "no-time", "ContentType": "0", "Content": "x"},
            {"Type": {"x": 1}, "Id": "bad-type", "ContentType": "0", "Content": "x",
             "CreateTime": "2026-11-21 10:00:00"},
            {"Id": "no-type", "ContentType": "0", "Content": "x",
             "CreateTime": "2026-11-21 10:00:00"},
            {"Type": 0, "Id": "bad-content", "ContentType": "0", "Content": ["x"],
             "CreateTime": "2026-11-21 10:00:00"},
            {"Type": 0, "Id": "bad-ct", "ContentType": true, "Content": "x",
             "CreateTime": "2026-11-21 10:00:00"},
            {"Type": 0, "Id": ["bad-id"], "ContentType": "0", "Content": "x",
             "CreateTime": "2026-11-21 10:00:00"},
            42,
            {"Type": 0, "Id": "good", "ContentType": "0", "Content": "still here",
             "CreateTime": "2026-11-21 10:00:01"},
            {"Type": 0, "Id": "last-bad", "ContentType": "0", "Content": "x", "CreateTime": ""}
         ]},
        {"Type": 7, "SessionId": "s-2", "SessionType": "web", "Message": {"not": "a list"}},
        {"Type": 0, "SessionId": "s-3",
         "Message": [{"Type": 5, "Id": "odd-type", "ContentType": "0", "Content": "kept",
                      "CreateTime": "2026-11-21 10:00:02"}]}
    ]});
    let m = mapped(answer, None);
    let ids: Vec<&str> = m
        .batch
        .changes
        .iter()
        .flat_map(|c| c.messages.iter().map(|m| m.external_id.as_str()))
        .collect();
    assert_eq!(ids, ["good", "odd-type"]);
    // The version moves past skipped messages too, so a replay cannot stall.
    assert_eq!(m.batch.version.as_deref(), Some("odd-type"));
    assert_eq!(
        m.skipped_ids,
        [
            "orphan",
            "bad-time",
            "no-time",
            "bad-type",
            "no-type",
            "bad-content",
            "bad-ct",
            "last-bad"
        ]
    );
    insta::assert_json_snapshot!("bad_items", view(&m));
}

/// A writer that collects log lines for one test.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn skips_and_unknown_content_are_logged_with_session_and_message() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        mapped(
            json!({"Operation": [{"Type": 0, "SessionId": "s-log", "Message": [
                {"Type": 0, "Id": "m-late", "ContentType": "0", "Content": "x", "CreateTime": "?"},
                {"Type": 0, "Id": "m-odd", "ContentType": "9", "Content": "x",
                 "CreateTime": "2026-11-21 10:00:00"}
            ]}]}),
            None,
        );
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let skip = logs.lines().find(|l| l.contains("skipped")).unwrap();
    assert!(
        skip.contains("WARN") && skip.contains("s-log") && skip.contains("m-late"),
        "{skip}"
    );
    let odd = logs.lines().find(|l| l.contains("ContentType")).unwrap();
    assert!(
        odd.contains("WARN") && odd.contains("s-log") && odd.contains("m-odd"),
        "{odd}"
    );
}

#[test]
fn missing_operation_list_is_unreadable() {
    for answer in [
        json!({}),
        json!({"Operation": null}),
        json!({"Operation": {}}),
    ] {
        assert!(matches!(
            map_query(&answer, shanghai(), None),
            Err(Failure::Unreadable(_))
        ));
    }
}

fn request(kind: MessageKind, session: Option<&str>) -> SendRequest {
    SendRequest {
        session_external_id: session.map(str::to_string),
        customer_id: "c-1".into(),
        kind,
        text: Some("你好 👋".into()),
        media_url: Some("https://img.example/p.png".into()),
        created_at: DateTime::parse_from_rfc3339("2026-11-21T08:04:12Z")
            .unwrap()
            .with_timezone(&Utc),
    }
}

#[test]
fn sends_are_written_in_the_account_zone() {
    let text = send_body(&request(MessageKind::Text, Some("s-1")), shanghai()).unwrap();
    assert_eq!(
        text,
        SendBody {
            session_id: "s-1".into(),
            to_id: "c-1".into(),
            content_type: "0",
            content: "你好 👋".into(),
            create_time: "2026-11-21 16:04:12".into(),
        }
    );
    let image = send_body(&request(MessageKind::Image, None), shanghai()).unwrap();
    assert_eq!(image.content_type, "1");
    assert_eq!(image.content, "https://img.example/p.png");
    assert_eq!(image.session_id, "");
}

#[test]
fn sends_spark_cannot_carry_are_refused() {
    let code = |r: Result<SendBody, Failure>| match r {
        Err(Failure::Invalid { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        code(send_body(&request(MessageKind::Audio, None), shanghai())),
        "unsupported_content"
    );
    let mut long = request(MessageKind::Text, Some("s"));
    long.text = Some("字".repeat(reading::MAX_TEXT_CHARS + 1));
    assert_eq!(code(send_body(&long, shanghai())), "content_too_long");
    long.text = Some("字".repeat(reading::MAX_TEXT_CHARS));
    assert!(send_body(&long, shanghai()).is_ok());
    let mut empty = request(MessageKind::Text, Some("s"));
    empty.text = None;
    assert_eq!(code(send_body(&empty, shanghai())), "missing_content");
}

#[test]
fn receipts_fall_back_to_the_session_sent_into() {
    let req = request(MessageKind::Text, Some("s-1"));
    let r = receipt(&json!({"Code": 0, "MessageId": "m-9"}), &req);
    assert_eq!(r.message_external_id.as_deref(), Some("m-9"));
    assert_eq!(r.session_external_id.as_deref(), Some("s-1"));
    let outreach = request(MessageKind::Text, None);
    let r = receipt(
        &json!({"Code": 0, "SessionId": "s-new", "MessageId": 10}),
        &outreach,
    );
    assert_eq!(r.session_external_id.as_deref(), Some("s-new"));
    assert_eq!(r.message_external_id.as_deref(), Some("10"));
}
