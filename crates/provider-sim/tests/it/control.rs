use provider_sim::SimProvider;
use serde_json::json;

use crate::{client, fast, read, sim};

#[tokio::test]
async fn http_control_routes_drive_every_provider() {
    let server = sim(SimProvider::All, fast()).await;
    let base = server.base_url().to_string();
    let post = |path: &str, body: serde_json::Value| {
        client().post(format!("{base}{path}")).json(&body).send()
    };

    let (status, injected) = read(
        post(
            "/_sim/spark/messages",
            json!({
                "customer_id": "c-1", "customer_name": "张伟", "text": "你好", "session_type": 1
            }),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{injected}");
    let sid = injected["session_id"].as_str().unwrap().to_string();
    let (status, _) = read(
        post(&format!("/_sim/spark/sessions/{sid}/close"), json!({}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = read(
        post("/_sim/spark/sessions/nope/close", json!({}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let resp = client()
        .put(format!("{base}/_sim/spark/agents/2001"))
        .json(&json!({"online": true, "name": "新客服"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let (status, ids) = read(
        post(
            "/_sim/ccmessaging/messages",
            json!({"items": [
                {"user_id": "u1", "media_type": "LOCATE", "content": "31.2/121.4/上海"}
            ]}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ids["ids"].as_array().unwrap().len(), 1);
    let (status, _) = read(
        post("/_sim/ccmessaging/tokens/expire", json!({"access": true}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = read(
        post("/_sim/ccmessaging/tokens/rotate", json!({}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);

    let (status, chat) = read(
        post("/_sim/kchat/chats", json!({"visitor_id": 7}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let id = chat["id"].as_u64().unwrap();
    let (status, _) = read(
        post(
            &format!("/_sim/kchat/chats/{id}/messages"),
            json!({"msg": "hi"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let resp = client()
        .patch(format!("{base}/_sim/kchat/chats/{id}"))
        .json(&json!({"rating": "5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (status, _) = read(
        post(&format!("/_sim/kchat/chats/{id}/close"), json!({}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);

    let (status, _) = read(
        post(
            "/_sim/faults/kchat/next",
            json!({
                "count": 1, "action": {"kind": "status", "status": 503}
            }),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let resp = client()
        .get(format!("{base}/apiv2/chats.json"))
        .basic_auth("agent@example.com", Some("demo-password"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], 50300);

    let (status, err) = read(post("/_sim/faults/nobody/next", json!({})).await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(err["error"].is_string());
    let (status, err) = read(
        post("/_sim/spark/messages", json!({"bogus": 1}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{err}");

    let (status, state) = read(
        client()
            .get(format!("{base}/_sim/state"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(state["provider"], "all");
    assert_eq!(state["spark"]["sessions"], 1);
    assert_eq!(state["ccmessaging"]["items"], 1);
    assert_eq!(state["kchat"]["chats"], 1);
    assert_eq!(state["faults_fired"], 1);

    let (_, received) = read(
        client()
            .get(format!("{base}/_sim/spark/received"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(received["sends"], json!([]));

    let (status, _) = read(post("/_sim/reset", json!({})).await.unwrap()).await;
    assert_eq!(status, 200);
    let (_, state) = read(
        client()
            .get(format!("{base}/_sim/state"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(state["spark"]["sessions"], 0);
    assert_eq!(state["kchat"]["chats"], 0);
}

#[tokio::test]
async fn control_refuses_providers_not_served() {
    let server = sim(SimProvider::Kchat, fast()).await;
    let c = server.control();
    assert!(matches!(
        c.spark_received(),
        Err(provider_sim::SimError::NotServed("spark"))
    ));
    let resp = client()
        .post(format!("{}/message/query", server.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}
