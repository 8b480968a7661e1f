use chrono::{TimeZone, Utc};
use provider_sim::{
    KchatNewChat, KchatNewMessage, KchatUploadIn, SimOptions, SimProvider, SimServer,
};
use serde_json::Value;

use crate::{client, fast, read, sim};

async fn get(server: &SimServer, url: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", server.base_url())
    };
    let resp = client()
        .get(url)
        .basic_auth("agent@example.com/token", Some("demo-token"))
        .send()
        .await
        .unwrap();
    let headers = resp.headers().clone();
    let (status, body) = read(resp).await;
    (status, body, headers)
}

fn chat(visitor: u64) -> KchatNewChat {
    KchatNewChat {
        visitor_id: visitor,
        ..KchatNewChat::default()
    }
}

#[tokio::test]
async fn basic_auth_with_token_or_password() {
    let server = sim(SimProvider::Kchat, fast()).await;
    let url = format!("{}/apiv2/chats.json", server.base_url());
    let ok = [
        ("agent@example.com/token", "demo-token"),
        ("agent@example.com", "demo-password"),
    ];
    for (user, pass) in ok {
        let resp = client()
            .get(&url)
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{user}");
    }
    let bad = [
        ("agent@example.com/token", "demo-password"),
        ("agent@example.com", "demo-token"),
        ("other@example.com", "demo-password"),
    ];
    for (user, pass) in bad {
        let resp = client()
            .get(&url)
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        let (status, body) = read(resp).await;
        assert_eq!(status, 401, "{user}:{pass}");
        assert_eq!(body["error"], 40100);
        assert!(body["message"].is_string());
    }
    let (status, body) = read(client().get(&url).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], 40100);
    assert_eq!(server.control().kchat_received().unwrap().unauthorized, 4);
}

#[tokio::test]
async fn list_pages_follow_next_page_to_the_end() {
    let server = sim(SimProvider::Kchat, fast()).await;
    let c = server.control();
    let mut ids = Vec::new();
    for i in 0..250 {
        ids.push(c.kchat_add_chat(chat(500 + i % 7)).unwrap());
    }
    let (status, first, _) = get(&server, "/apiv2/chats.json?per_page=100").await;
    assert_eq!(status, 200);
    assert_eq!(first["count"], 250);
    assert!(first["previous_page"].is_null());
    let item = &first["chats"][0];
    assert!(item.get("messages").is_none());
    for key in [
        "id",
        "type",
        "started_by",
        "status",
        "agent_id",
        "rating",
        "visitor_id",
        "user_id",
        "created_at",
        "assigned_at",
        "end_at",
        "message_count",
    ] {
        assert!(item.get(key).is_some(), "missing {key}");
    }
    assert_eq!(item["type"], "chat");
    assert_eq!(item["status"], "open");

    let mut seen = Vec::new();
    let mut page = first;
    let mut pages = 0;
    loop {
        pages += 1;
        seen.extend(
            page["chats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_u64().unwrap()),
        );
        let Some(next) = page["next_page"].as_str() else {
            break;
        };
        assert!(next.starts_with(server.base_url()), "{next}");
        let (status, body, _) = get(&server, next).await;
        assert_eq!(status, 200);
        assert!(body["previous_page"].is_string());
        page = body;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "sorted by id ascending, every chat once");

    // per_page above 100 is capped.
    let (_, body, _) = get(&server, "/apiv2/chats.json?per_page=500").await;
    assert_eq!(body["chats"].as_array().unwrap().len(), 100);

    // visitor filter, and the count of all matches.
    let (_, body, _) = get(&server, "/apiv2/chats.json?visitor_id=503&per_page=10").await;
    let expected = (0..250).filter(|i| i % 7 == 3).count();
    assert_eq!(body["count"], expected);
    assert_eq!(body["chats"].as_array().unwrap().len(), 10);
    assert!(body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["visitor_id"] == 503));
    let next = body["next_page"].as_str().unwrap();
    assert!(
        next.contains("visitor_id=503") && next.contains("page=2"),
        "{next}"
    );
}

#[tokio::test]
async fn server_may_use_smaller_pages() {
    let opts = SimOptions {
        kchat_max_page_size: 30,
        ..fast()
    };
    let server = sim(SimProvider::Kchat, opts).await;
    for i in 0..70 {
        server.control().kchat_add_chat(chat(i)).unwrap();
    }
    let mut url = "/apiv2/chats.json".to_string();
    let mut sizes = Vec::new();
    loop {
        let (_, body, _) = get(&server, &url).await;
        sizes.push(body["chats"].as_array().unwrap().len());
        match body["next_page"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(sizes, vec![30, 30, 10]);
}

#[tokio::test]
async fn date_filters_use_the_local_day() {
    let server = sim(SimProvider::Kchat, fast()).await;
    let c = server.control();
    // 2024-03-01 23:30 and 2024-03-02 00:30 in Shanghai; both 1 March in UTC.
    let late = c
        .kchat_add_chat(KchatNewChat {
            created_at: Some(Utc.with_ymd_and_hms(2024, 3, 1, 15, 30, 0).unwrap()),
            ..chat(1)
        })
        .unwrap();
    let next_day = c
        .kchat_add_chat(KchatNewChat {
            created_at: Some(Utc.with_ymd_and_hms(2024, 3, 1, 16, 30, 0).unwrap()),
            ..chat(1)
        })
        .unwrap();
    let (_, body, _) = get(&server, "/apiv2/chats.json?start=2024-03-02&end=2024-03-02").await;
    let ids: Vec<u64> = body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![next_day]);
    assert_eq!(body["chats"][0]["created_at"], "2024-03-02 00:30:00");
    let (_, body, _) = get(&server, "/apiv2/chats.json?end=2024-03-01").await;
    assert_eq!(body["count"], 1);
    assert_eq!(body["chats"][0]["id"], late);
    let (_, body, _) = get(&server, "/apiv2/chats.json?start=2024-03-01&end=2024-03-02").await;
    assert_eq!(body["count"], 2);
    let (status, body, _) = get(&server, "/apiv2/chats.json?start=03/01/2024").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], 40000);
}

#[tokio::test]
async fn detail_has_messages_and_unknown_ids_are_404() {
    let server = sim(SimProvider::Kchat, fast()).await;
    let c = server.control();
    let id = c
        .kchat_add_chat(KchatNewChat {
            visitor_id: 547,
            visitor_name: Some("访客5".into()),
            user_id: Some(45190),
            agent_id: Some(2192),
            ..KchatNewChat::default()
        })
        .unwrap();
    c.kchat_add_message(
        id,
        KchatNewMessage {
            kind: Some("chat.memberjoin".into()),
            msg: Some("你好".into()),
            ..Default::default()
        },
    )
    .unwrap();
    c.kchat_add_message(
        id,
        KchatNewMessage {
            msg: Some("你好,在吗?".into()),
            ..Default::default()
        },
    )
    .unwrap();
    c.kchat_add_message(
        id,
        KchatNewMessage {
            msg: Some("您好".into()),
            user_id: Some(2192),
            ..Default::default()
        },
    )
    .unwrap();
    c.kchat_add_message(
        id,
        KchatNewMessage {
            kind: Some("chat.upload".into()),
            upload: Some(KchatUploadIn {
                name: "a.png".into(),
                mime: "image/png".into(),
                size: None,
                url: None,
            }),
            ..Default::default()
        },
    )
    .unwrap();
    c.kchat_add_message(
        id,
        KchatNewMessage {
            kind: Some("chat.never_seen".into()),
            msg: Some("?".into()),
            ..Default::default()
        },
    )
    .unwrap();
    c.kchat_close_chat(id).unwrap();

    let (status, body, _) = get(&server, &format!("/apiv2/chats/{id}.json")).await;
    assert_eq!(status, 200);
    let chat = &body["chat"];
    assert_eq!(chat["status"], "close");
    assert!(chat["end_at"].is_string());
    assert_eq!(chat["message_count"], 5);
    assert_eq!(chat["agent_id"], 2192);
    let msgs = chat["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["type"], "chat.memberjoin");
    assert_eq!(msgs[0]["name"], "访客5");
    assert_eq!(msgs[1]["type"], "chat.msg");
    assert!(msgs[1]["user_id"].is_null());
    assert_eq!(msgs[2]["user_id"], 2192);
    assert_eq!(msgs[1]["chat_id"], id);
    let upload = &msgs[3]["upload"];
    assert_eq!(upload["type"], "image/png");
    assert_eq!(msgs[3]["upload_id"], upload["id"]);
    // The generated upload is served.
    let resp = client()
        .get(upload["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.bytes().await.unwrap().len() as u64,
        upload["size"].as_u64().unwrap()
    );
    assert_eq!(msgs[4]["type"], "chat.never_seen");

    for path in [
        "/apiv2/chats/999999.json",
        "/apiv2/chats/abc.json",
        "/apiv2/chats/1000",
    ] {
        let (status, body, _) = get(&server, path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"], 40400);
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let opts = SimOptions {
        kchat_rate_limit_per_minute: 5,
        ..fast()
    };
    let server = sim(SimProvider::Kchat, opts).await;
    for _ in 0..5 {
        assert_eq!(get(&server, "/apiv2/chats.json").await.0, 200);
    }
    let (status, body, headers) = get(&server, "/apiv2/chats.json").await;
    assert_eq!(status, 429);
    assert_eq!(body["error"], 42900);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(server.control().kchat_received().unwrap().rate_limited, 1);
}
