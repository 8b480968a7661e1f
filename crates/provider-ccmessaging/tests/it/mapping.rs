//! Mapping to the core model, checked through the public adapter over HTTP
//! and recorded as insta snapshots.

use serde_json::{json, Value};
use wiremock::MockServer;

use crate::support::*;

#[tokio::test]
async fn seed_sample_maps_to_the_core_model() {
    let seed: Value = serde_json::from_str(include_str!("fixtures/seed_history.json")).unwrap();
    let items = seed["messageList"].as_array().unwrap().clone();
    let server = MockServer::start().await;
    serve_items(&server, &items).await;

    let page = fetch(&provider(&server)).await.unwrap();

    assert_eq!(page.fetched, 1);
    assert_eq!(page.next_page, None);
    let message = &page.changes[0].messages[0];
    assert_eq!(message.raw, items[0], "raw is the item unchanged");
    assert_eq!(message.text.as_deref(), Some("32131"));
    insta::assert_json_snapshot!("seed_history", portless(&server, &page.changes));
}

#[tokio::test]
async fn every_source_type() {
    let inputs: Vec<Value> = ["USER", "CUSTOMER", "AGENT", "ROBOT", "SYSTEM", "MARTIAN"]
        .iter()
        .enumerate()
        .map(|(i, source)| {
            item(
                &format!("s{i}"),
                json!({
                    "sourceType": source,
                    "senderNickname": format!("{source} nick"),
                    "content": format!("from {source}"),
                    "sendTime": 1705457000000_i64 + i as i64,
                }),
            )
        })
        .chain([item(
            "s-null",
            json!({"sourceType": null, "sendTime": 1705457000100_i64}),
        )])
        .chain([item(
            "s-user-id",
            json!({"userId": "other-user", "sendTime": 1705457000200_i64}),
        )])
        .collect();
    let server = MockServer::start().await;
    serve_items(&server, &inputs).await;

    let page = fetch(&provider(&server)).await.unwrap();

    assert_eq!(page.changes.len(), 1, "one callId, one change");
    insta::assert_json_snapshot!(
        "source_types",
        portless(&server, &table(&inputs, &page, &["sourceType", "userId"]))
    );
}

#[tokio::test]
async fn every_control_type() {
    let steps = [
        ("CONNECT", "SYSTEM", "connected"),
        ("CHAT", "USER", "<p>I need help</p>"),
        ("TRANS2AGENT", "SYSTEM", ""),
        ("INPUT", "AGENT", ""),
        ("CHAT", "AGENT", "How can I help?"),
        ("READ", "USER", ""),
        ("RECALL", "AGENT", ""),
        ("TRANS2AGENT", "SYSTEM", "to another agent"),
        ("CHAT", "AGENT", "I take over"),
        ("DISCONNECT", "SYSTEM", "bye"),
        ("CHAT", "ROBOT", "anything else?"),
    ];
    let mut inputs: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, (control, source, content))| {
            item(
                &format!("c{i}"),
                json!({
                    "controlType": control,
                    "sourceType": source,
                    "content": content,
                    "sendTime": 1705457000000_i64 + 1000 * i as i64,
                }),
            )
        })
        .collect();
    inputs.push(item(
        "c-null",
        json!({"controlType": null, "content": "no control type", "sendTime": 1705457999000_i64}),
    ));
    let server = MockServer::start().await;
    serve_items(&server, &inputs).await;

    let page = fetch(&provider(&server)).await.unwrap();

    insta::assert_json_snapshot!(
        "control_types",
        portless(&server, &without_raw(&page.changes))
    );
}

#[tokio::test]
async fn every_media_type() {
    let cases = [
        (
            "TEXT",
            json!("<p>Price &lt;100&gt;&nbsp;&amp; 免费&#33;</p>\n"),
        ),
        ("IMAGE", json!("obj-image-1")),
        ("AUDIO", json!("obj-audio-1,mp3")),
        ("VIDEO", json!("obj-video-1")),
        ("FILE", json!("report, final.pdf,20480,obj-file-1,pdf")),
        ("FILE", json!(",512,obj-file-2,docx")),
        ("FILE_IMAGE", json!("obj-fimage-1,jpg")),
        ("FILE_VIDEO", json!("obj-fvideo-1,mp4")),
        (
            "WEBCARD",
            json!(
                r#"{"title":"卡片标题","description":"卡片描述","mediaFileId":"obj-card-1","mediaFileType":"img/png","redirectUrl":"https://example.com/p/1"}"#
            ),
        ),
        ("WEBCARD", json!("{not json")),
        ("LOCATE", json!("22.54/114.05/Shenzhen &amp; Bay")),
        ("STICKER", json!("obj-sticker-1")),
        ("null", json!("null media type reads as text")),
    ];
    let inputs: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, (media, content))| {
            let media = if *media == "null" {
                Value::Null
            } else {
                json!(media)
            };
            item(
                &format!("m{i}"),
                json!({
                    "mediaType": media,
                    "content": content,
                    "sendTime": 1705457000000_i64 + i as i64,
                }),
            )
        })
        .collect();
    let server = MockServer::start().await;
    serve_items(&server, &inputs).await;

    let page = fetch(&provider(&server)).await.unwrap();

    insta::assert_json_snapshot!(
        "media_types",
        portless(&server, &table(&inputs, &page, &["mediaType", "content"]))
    );
}

#[tokio::test]
async fn session_ids_fall_back_from_call_id_to_chat_id_to_the_users_day() {
    let inputs = vec![
        item("k1", json!({"callId": "call-1"})),
        item("k2", json!({"callId": null, "chatId": "chat-2"})),
        item("k3", json!({"callId": null, "chat_id": "chat-3"})),
        // 2024-01-17T23:59:59.999Z and 2024-01-18T00:00:00Z: UTC days.
        item("k4", json!({"callId": null, "sendTime": 1705535999999_i64})),
        item(
            "k5",
            json!({"callId": null, "sendTime": 1705536000000_i64, "channel": null}),
        ),
        item(
            "k6",
            json!({"callId": null, "sendTime": 1705536000001_i64, "channel": "WeChat"}),
        ),
        item(
            "k7",
            json!({"callId": "call-1", "sendTime": 1705536000002_i64}),
        ),
    ];
    let server = MockServer::start().await;
    serve_items(&server, &inputs).await;

    let page = fetch(&provider(&server)).await.unwrap();

    let ids: Vec<&str> = page
        .changes
        .iter()
        .map(|c| c.session.external_id.as_str())
        .collect();
    let day1 = format!("{USER}:2024-01-17");
    let day2 = format!("{USER}:2024-01-18");
    assert_eq!(
        ids,
        ["call-1", "chat-2", "chat-3", &day1, &day2, "call-1"],
        "provider order across changes; consecutive items of one session together"
    );
    insta::assert_json_snapshot!(
        "session_ids",
        portless(&server, &without_raw(&page.changes))
    );
}

#[tokio::test]
async fn items_without_id_or_send_time_are_skipped_and_counted() {
    let inputs = vec![
        item("ok-1", json!({})),
        item("ignored", json!({"id": null})),
        item("no-time", json!({"sendTime": null})),
        item("bad-time", json!({"sendTime": "yesterday"})),
        json!("not an object"),
        item("ok-2", json!({"id": 42, "sendTime": "1705457000500"})),
    ];
    let server = MockServer::start().await;
    serve_items(&server, &inputs).await;

    let page = fetch(&provider(&server)).await.unwrap();

    assert_eq!(page.fetched, 6, "skipped items are counted as read");
    let ids: Vec<&str> = page.changes[0]
        .messages
        .iter()
        .map(|m| m.external_id.as_str())
        .collect();
    assert_eq!(ids, ["ok-1", "42"]);
}
