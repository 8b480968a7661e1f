//! Mapping to the core model, checked through the public adapter over HTTP
//! and recorded as insta snapshots.

use chat_core::{Provider, SessionListQuery};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::support::*;

async fn serve_detail(server: &MockServer, chat: &Value) {
    Mock::given(method("GET"))
        .and(path(detail_path(&chat["id"])))
        .respond_with(detail_answer(chat))
        .mount(server)
        .await;
}

#[tokio::test]
async fn seed_chat_maps_to_the_core_model() {
    let seed = seed_chat();
    let server = MockServer::start().await;
    serve_detail(&server, &seed).await;

    let change = provider(&server).get_session("290").await.unwrap();

    for (mapped, raw) in change
        .messages
        .iter()
        .zip(seed["messages"].as_array().unwrap())
    {
        assert_eq!(&mapped.raw, raw, "message raw is the item unchanged");
    }
    insta::assert_json_snapshot!("seed_chat", change);
}

#[tokio::test]
async fn every_message_type() {
    let upload = |kind: &str, name: &str| json!({"id": 88, "name": name, "size": 20480, "type": kind, "url": format!("https://cdn.example.com/{name}")});
    let messages = vec![
        message(1, "chat.memberjoin", json!({"msg": "你好"})),
        message(2, "chat.msg", json!({})),
        message(
            3,
            "chat.msg",
            json!({"user_id": 2192, "name": "小王", "msg": "您好,请问有什么可以帮您?"}),
        ),
        message(
            4,
            "chat.upload",
            json!({"msg": "", "upload_id": 88, "upload": upload("image/png", "photo.png")}),
        ),
        message(
            5,
            "chat.upload",
            json!({"user_id": "2192", "name": "小王", "msg": null, "upload": upload("application/pdf", "manual.pdf")}),
        ),
        message(
            6,
            "chat.upload",
            json!({"upload": null, "msg": "upload gone"}),
        ),
        message(7, "chat.system", json!({"name": null, "msg": "对话已转接"})),
        message(
            8,
            "queue.waiting",
            json!({"name": null, "msg": "排队中,前面还有 2 人"}),
        ),
        message(
            9,
            "visitor.notify",
            json!({"name": null, "msg": "访客已离开"}),
        ),
        message(
            10,
            "visitor.queue.fail",
            json!({"name": null, "msg": "排队失败"}),
        ),
        message(
            11,
            "agent.assign.fail",
            json!({"name": null, "msg": "分配失败"}),
        ),
        message(
            12,
            "chat.answer",
            json!({"name": "机器人", "msg": "请问是咨询订单吗?"}),
        ),
        message(13, "chat.ai_send", json!({"name": "AI", "msg": "AI 回答"})),
        message(14, "chat.question", json!({"msg": "订单在哪里"})),
        message(15, "chat.ai_receive", json!({"msg": "问 AI"})),
        message(
            16,
            "chat.card",
            json!({"user_id": 2192, "name": "小王", "msg": r#"{"title":"新品","description":"限时优惠","image":"https://cdn.example.com/p.png","url":"https://shop.example.com/1"}"#}),
        ),
        message(17, "chat.custom", json!({"msg": "商品:保温杯 ¥59"})),
        message(18, "chat.sticker", json!({"msg": "[sticker]"})),
        message(
            19,
            "chat.msg",
            json!({"user_id": 0, "msg": "user_id 0 is nobody"}),
        ),
    ];
    let detail = chat(290, json!({"messages": messages}));
    let server = MockServer::start().await;
    serve_detail(&server, &detail).await;

    let change = provider(&server).get_session("290").await.unwrap();

    assert_eq!(change.messages.len(), messages.len());
    let rows: Vec<Value> = change
        .messages
        .iter()
        .zip(&messages)
        .map(|(m, input)| {
            let mut out = without_raw(m);
            out["direction"] = json!(m.direction().as_str());
            json!({
                "input": {"type": input["type"], "user_id": input["user_id"], "msg": input["msg"], "upload": input["upload"]},
                "message": out,
            })
        })
        .collect();
    insta::assert_json_snapshot!("message_types", rows);
    insta::assert_json_snapshot!("message_types_session", without_raw(&change.session));
}

#[tokio::test]
async fn every_status_and_started_by() {
    let chats = vec![
        chat(
            1,
            json!({"status": "open", "started_by": "visitor", "end_at": null, "rating": null}),
        ),
        chat(
            2,
            json!({"status": "close", "started_by": "agent", "rating": "satisfied"}),
        ),
        chat(
            3,
            json!({"status": "close", "started_by": "system", "rating": 5}),
        ),
        chat(4, json!({"status": "pending", "started_by": "robot"})),
        chat(
            5,
            json!({"status": null, "started_by": null, "assigned_at": null, "agent_id": null}),
        ),
        // Ids as strings, agent 0 = none, unreadable time, no message_count.
        chat(
            6,
            json!({"id": "6", "visitor_id": "v-547", "agent_id": 0, "created_at": "25/04/2015", "message_count": null}),
        ),
    ];
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LIST_PATH))
        .respond_with(list_answer(&chats, 6, None))
        .mount(&server)
        .await;

    let page = provider(&server)
        .list_sessions(&SessionListQuery {
            created_from: utc("2015-04-01T00:00:00Z"),
            created_to: Some(utc("2015-05-01T00:00:00Z")),
            page: None,
        })
        .await
        .unwrap();

    assert_eq!(page.total, Some(6));
    assert_eq!(page.next_page, None);
    for (session, raw) in page.sessions.iter().zip(&chats) {
        assert_eq!(
            session.raw.as_ref(),
            Some(raw),
            "summary raw is the item unchanged"
        );
    }
    insta::assert_json_snapshot!("statuses_and_started_by", without_raw(&page.sessions));
}

#[tokio::test]
async fn unmappable_items_are_skipped_and_the_rest_maps() {
    let messages = vec![
        message(1, "chat.msg", json!({"msg": "kept"})),
        message(2, "chat.msg", json!({"id": null})),
        message(3, "chat.msg", json!({"created_at": "yesterday"})),
        message(4, "chat.msg", json!({"type": null})),
        json!("not a message"),
        json!(null),
        message(
            7,
            "chat.msg",
            json!({"id": "7", "msg": "also kept", "created_at": "2015-04-25 08:05:00"}),
        ),
    ];
    let detail = chat(290, json!({"messages": messages, "rating": {"odd": true}}));
    let server = MockServer::start().await;
    serve_detail(&server, &detail).await;
    let chats = vec![
        chat(1, json!({})),
        json!({"type": "chat"}),
        json!(7),
        chat(2, json!({})),
    ];
    Mock::given(method("GET"))
        .and(path(LIST_PATH))
        .respond_with(list_answer(&chats, 4, None))
        .mount(&server)
        .await;
    let provider = provider(&server);

    let change = provider.get_session("290").await.unwrap();
    let ids: Vec<&str> = change
        .messages
        .iter()
        .map(|m| m.external_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "7"]);
    assert_eq!(change.session.rating, None);

    let page = provider
        .list_sessions(&SessionListQuery {
            created_from: utc("2015-04-01T00:00:00Z"),
            created_to: None,
            page: None,
        })
        .await
        .unwrap();
    let ids: Vec<&str> = page
        .sessions
        .iter()
        .map(|s| s.external_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "2"]);
}
