use std::time::Duration;

use provider_sim::{
    CcmExpire, CcmItem, FailNext, FaultAction, SimOptions, SimProvider, SimServer,
    ACCESS_TOKEN_FAIL,
};
use serde_json::{json, Value};

use crate::{client, fast, read, sim};

const USER: &str = "1659490221026188522";
const CHANNEL: &str = "202207292843442389";

struct Tokens {
    access: String,
    user: String,
}

async fn access_token(server: &SimServer, expire: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(format!(
            "{}/apigovernance/api/oauth/tokenByAkSk",
            server.base_url()
        ))
        .json(&json!({"app_key": "demo-app-key", "app_secret": "demo-app-secret"}));
    if let Some(e) = expire {
        req = req.header("X-Token-Expire", e);
    }
    read(req.send().await.unwrap()).await
}

async fn apply(server: &SimServer, access: &str, user: &str) -> (u16, Value) {
    let resp = client()
        .post(format!(
            "{}/apiaccess/ccmessaging/applyToken",
            server.base_url()
        ))
        .header("x-app-key", "demo-app-key")
        .header("Authorization", format!("Bearer {access}"))
        .json(&json!({"userId": user, "userName": "张伟", "channelId": CHANNEL, "locale": "zh"}))
        .send()
        .await
        .unwrap();
    read(resp).await
}

async fn login(server: &SimServer, user: &str) -> Tokens {
    let (status, body) = access_token(server, None).await;
    assert_eq!(status, 200, "{body}");
    let access = body["AccessToken"].as_str().unwrap().to_string();
    let (status, body) = apply(server, &access, user).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resultCode"], "0");
    Tokens {
        access,
        user: body["token"].as_str().unwrap().to_string(),
    }
}

async fn history(server: &SimServer, t: &Tokens, body: Value) -> reqwest::Response {
    client()
        .post(format!(
            "{}/apiaccess/ccmessaging/queryHistoryChatMessage",
            server.base_url()
        ))
        .header("x-app-key", "demo-app-key")
        .header("Authorization", format!("Bearer {}", t.access))
        .header("ccmessaging-token", &t.user)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn query(limit: &str, offset: &str) -> Value {
    json!({"channelId": CHANNEL, "userId": USER, "limit": limit, "offset": offset, "channel": "WEB"})
}

#[tokio::test]
async fn token_flow_and_key_checks() {
    let server = sim(SimProvider::Ccmessaging, fast()).await;
    let (status, body) = access_token(&server, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["ApplyType"], "Bearer");
    assert_eq!(body["Expires"], "600");
    assert_eq!(body["UserID"], "Anonymous");
    assert_eq!(body["AppKey"], "demo-app-key");
    assert!(body["CreateTime"].as_str().unwrap().parse::<i64>().is_ok());

    let (_, body) = access_token(&server, Some("120")).await;
    assert_eq!(body["Expires"], "120");

    let resp = client()
        .post(format!(
            "{}/apigovernance/api/oauth/tokenByAkSk",
            server.base_url()
        ))
        .json(&json!({"app_key": "demo-app-key", "app_secret": "wrong"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 401);
    assert!(body["errorCode"].is_string() && body["exceptionInfo"].is_string());

    // applyToken without a valid AccessToken: 403.
    let (status, body) = apply(&server, "not-a-token", USER).await;
    assert_eq!(status, 403);
    assert_eq!(body["exceptionInfo"], ACCESS_TOKEN_FAIL);

    let t = login(&server, USER).await;
    let (status, body) = read(history(&server, &t, query("10", "0")).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"messageList": [], "resultCode": "0", "resultDesc": "success"})
    );

    // A user token belongs to its user.
    let (status, _) = read(
        history(
            &server,
            &t,
            json!({"channelId": CHANNEL, "userId": "other",
        "limit": "10", "offset": "0", "channel": "WEB"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);

    let r = server.control().ccm_received().unwrap();
    assert_eq!(r.token_by_ak_sk, 4);
    assert_eq!(r.apply_token, 2);
    assert_eq!(r.query_history, 2);
}

#[tokio::test]
async fn expired_access_token_gives_403_and_expired_user_token_401() {
    let server = sim(SimProvider::Ccmessaging, fast()).await;
    let c = server.control();
    let t = login(&server, USER).await;
    assert_eq!(
        read(history(&server, &t, query("10", "0")).await).await.0,
        200
    );

    c.ccm_expire_tokens(CcmExpire {
        user: true,
        ..CcmExpire::default()
    })
    .unwrap();
    let (status, body) = read(history(&server, &t, query("10", "0")).await).await;
    assert_eq!(status, 401);
    assert!(body["exceptionInfo"].is_string());

    let t = login(&server, USER).await;
    c.ccm_expire_tokens(CcmExpire {
        access: true,
        ..CcmExpire::default()
    })
    .unwrap();
    let (status, body) = read(history(&server, &t, query("10", "0")).await).await;
    assert_eq!(status, 403);
    assert_eq!(body["exceptionInfo"], ACCESS_TOKEN_FAIL);

    // Expiry by time, as X-Token-Expire asks.
    let (_, body) = access_token(&server, Some("1")).await;
    let access = body["AccessToken"].as_str().unwrap().to_string();
    assert_eq!(apply(&server, &access, USER).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = apply(&server, &access, USER).await;
    assert_eq!(status, 403);
    assert_eq!(body["exceptionInfo"], ACCESS_TOKEN_FAIL);
}

#[tokio::test]
async fn user_token_lifetime_is_configurable() {
    let opts = SimOptions {
        ccm_user_token_ttl: Duration::from_millis(500),
        ..fast()
    };
    let server = sim(SimProvider::Ccmessaging, opts).await;
    let t = login(&server, USER).await;
    assert_eq!(
        read(history(&server, &t, query("10", "0")).await).await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        read(history(&server, &t, query("10", "0")).await).await.0,
        401
    );
}

#[tokio::test]
async fn rotation_hands_out_a_fresh_token_and_retires_the_old() {
    let server = sim(SimProvider::Ccmessaging, fast()).await;
    let t = login(&server, USER).await;
    let resp = history(&server, &t, query("10", "0")).await;
    assert!(resp.headers().get("ccmessaging-token").is_none());

    server
        .control()
        .ccm_rotate_token(Some(USER.into()))
        .unwrap();
    let resp = history(&server, &t, query("10", "0")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let fresh = resp.headers()["ccmessaging-token"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, t.user);
    assert_eq!(
        read(history(&server, &t, query("10", "0")).await).await.0,
        401
    );
    let t2 = Tokens {
        access: t.access.clone(),
        user: fresh,
    };
    assert_eq!(
        read(history(&server, &t2, query("10", "0")).await).await.0,
        200
    );
    assert_eq!(server.control().ccm_received().unwrap().rotations, 1);
}

#[tokio::test]
async fn rotation_every_n_calls() {
    let opts = SimOptions {
        ccm_rotate_every: Some(2),
        ..fast()
    };
    let server = sim(SimProvider::Ccmessaging, opts).await;
    let mut t = login(&server, USER).await;
    let mut rotated = Vec::new();
    for _ in 0..4 {
        let resp = history(&server, &t, query("10", "0")).await;
        assert_eq!(resp.status().as_u16(), 200);
        let fresh = resp
            .headers()
            .get("ccmessaging-token")
            .map(|v| v.to_str().unwrap().to_string());
        rotated.push(fresh.is_some());
        if let Some(f) = fresh {
            t.user = f;
        }
    }
    assert_eq!(rotated, vec![false, true, false, true]);
}

#[tokio::test]
async fn history_pages_filters_and_caps_the_limit() {
    let server = sim(SimProvider::Ccmessaging, fast()).await;
    let c = server.control();
    let base = 1_700_000_000_000_i64;
    // Added newest first: the answer must still be oldest first.
    let items: Vec<CcmItem> = (0..250)
        .rev()
        .map(|i| CcmItem {
            user_id: USER.into(),
            send_time: Some(base + i * 1000),
            content: Some(format!("m{i}")),
            call_id: Some("1705456002-16797276".into()),
            ..CcmItem::default()
        })
        .collect();
    c.ccm_add_items(items).unwrap();
    c.ccm_add_items(vec![
        CcmItem {
            user_id: "someone-else".into(),
            send_time: Some(base),
            ..CcmItem::default()
        },
        CcmItem {
            user_id: USER.into(),
            channel_id: Some("other-channel".into()),
            send_time: Some(base),
            ..CcmItem::default()
        },
    ])
    .unwrap();
    let t = login(&server, USER).await;

    let mut contents = Vec::new();
    let mut offset = 0;
    loop {
        let (status, body) =
            read(history(&server, &t, query("100", &offset.to_string())).await).await;
        assert_eq!(status, 200);
        let list = body["messageList"].as_array().unwrap();
        contents.extend(
            list.iter()
                .map(|m| m["content"].as_str().unwrap().to_string()),
        );
        offset += list.len();
        if list.len() < 100 {
            break;
        }
    }
    assert_eq!(contents.len(), 250);
    assert_eq!(contents[0], "m0");
    assert_eq!(contents[249], "m249");

    // limit above 100 is capped.
    let (_, body) = read(history(&server, &t, query("500", "0")).await).await;
    assert_eq!(body["messageList"].as_array().unwrap().len(), 100);

    // startTime / endTime (inclusive) on sendTime.
    let mut q = query("100", "0");
    q["startTime"] = json!((base + 10_000).to_string());
    q["endTime"] = json!((base + 19_000).to_string());
    let (_, body) = read(history(&server, &t, q).await).await;
    let list = body["messageList"].as_array().unwrap();
    assert_eq!(list.len(), 10);
    assert_eq!(list[0]["content"], "m10");
    assert_eq!(list[9]["content"], "m19");

    // The item carries the provider's full field set.
    let item = &list[0];
    for key in [
        "id",
        "channel",
        "channelConfigId",
        "userId",
        "senderNickname",
        "senderAvatar",
        "sendTime",
        "controlType",
        "sourceType",
        "mediaType",
        "content",
        "callId",
        "tenantId",
        "partdbId",
        "messageCode",
        "associationContentId",
        "sendStatus",
        "recallTime",
        "modifiedTime",
        "errorMsg",
        "dayOfYear",
        "receiveTime",
        "isForwarded",
        "forwardTime",
        "contentDealType",
        "contentKey",
        "multiMediaLibraryInfo",
        "chatId",
        "readTime",
        "email",
    ] {
        assert!(item.get(key).is_some(), "missing {key}");
    }
    assert_eq!(item["sendTime"], base + 10_000);
    assert!(item["receiveTime"].is_i64());
    assert_eq!(item["controlType"], "CHAT");
    assert_eq!(item["sourceType"], "USER");
    assert_eq!(item["mediaType"], "TEXT");
    assert_eq!(item["callId"], "1705456002-16797276");
    assert!(item["tenantId"].is_null());
}

#[tokio::test]
async fn malformed_bodies_get_400() {
    let server = sim(SimProvider::Ccmessaging, fast()).await;
    let t = login(&server, USER).await;
    let bad = [
        json!({"channelId": CHANNEL, "userId": USER, "limit": 10, "offset": "0", "channel": "WEB"}),
        json!({"channelId": CHANNEL, "userId": USER, "offset": "0", "channel": "WEB"}),
        json!({"channelId": CHANNEL, "userId": USER, "limit": "x", "offset": "0", "channel": "WEB"}),
        json!({"channelId": CHANNEL, "userId": USER, "limit": "10", "offset": "0", "channel": "WEB", "startTime": "yesterday"}),
    ];
    for body in bad {
        let (status, answer) = read(history(&server, &t, body.clone()).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["resultCode"], "1");
    }
}

#[tokio::test]
async fn result_code_one_is_injectable() {
    let server = sim(SimProvider::Ccmessaging, fast()).await;
    let t = login(&server, USER).await;
    server
        .control()
        .fail_next(
            SimProvider::Ccmessaging,
            FailNext {
                count: 1,
                path_prefix: Some("/apiaccess/ccmessaging/queryHistoryChatMessage".into()),
                action: FaultAction::BusinessError,
            },
        )
        .unwrap();
    let (status, body) = read(history(&server, &t, query("10", "0")).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["resultCode"], "1");
    let (_, body) = read(history(&server, &t, query("10", "0")).await).await;
    assert_eq!(body["resultCode"], "0");
}

#[tokio::test]
async fn chat_id_may_come_under_either_key_and_user_id_may_be_null() {
    let server = sim(SimProvider::Ccmessaging, fast()).await;
    server
        .control()
        .ccm_add_items(vec![
            CcmItem {
                user_id: USER.into(),
                chat_id: Some("chat-1".into()),
                send_time: Some(1),
                ..CcmItem::default()
            },
            CcmItem {
                user_id: USER.into(),
                chat_id: Some("chat-2".into()),
                snake_chat_id: true,
                hide_user_id: true,
                send_time: Some(2),
                ..CcmItem::default()
            },
        ])
        .unwrap();
    let t = login(&server, USER).await;
    let (_, body) = read(history(&server, &t, query("10", "0")).await).await;
    let list = body["messageList"].as_array().unwrap();
    assert_eq!(list[0]["chatId"], "chat-1");
    assert_eq!(list[0]["userId"], USER);
    assert!(list[0]["callId"].is_null());
    assert_eq!(list[1]["chat_id"], "chat-2");
    assert!(list[1].get("chatId").is_none());
    assert!(list[1]["userId"].is_null());
}
