use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use provider_sim::{
    HistoryOptions, Script, SimOptions, SimProvider, TrafficOptions, DEMO_CCM_USERS,
};
use serde_json::json;

use crate::{client, fast, read, sim};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.toml")
}

#[tokio::test]
async fn example_script_loads_and_plays_on_all_providers() {
    let script = Script::from_file(example()).unwrap();
    assert_eq!(script.sessions.len(), 6);
    let server = sim(
        SimProvider::All,
        SimOptions {
            script: Some(script.clone()),
            ..fast()
        },
    )
    .await;
    let c = server.control();

    let sessions = c.spark_sessions().unwrap();
    let yesterday = sessions
        .iter()
        .find(|s| s.session_id == "spark-demo-yesterday")
        .unwrap();
    assert!(!yesterday.active);
    assert_eq!(yesterday.messages, 5);
    assert_eq!(yesterday.session_type, 1);
    let live = sessions
        .iter()
        .find(|s| s.session_id == "spark-demo-live")
        .unwrap();
    assert!(live.active);
    assert_eq!(live.messages, 2, "future events are not played yet");

    // Kchat chat 290 came with its id, messages and close.
    let resp = client()
        .get(format!("{}/apiv2/chats/290.json", server.base_url()))
        .basic_auth("agent@example.com/token", Some("demo-token"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body["chat"]["status"], "close");
    assert_eq!(body["chat"]["visitor_id"], 547);
    assert_eq!(body["chat"]["user_id"], 45190);
    let types: Vec<&str> = body["chat"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "chat.memberjoin",
            "chat.msg",
            "chat.answer",
            "queue.waiting",
            "chat.msg",
            "chat.upload",
            "chat.card",
            "chat.future_unknown_type"
        ]
    );

    // The same script applied again through control reports what it did.
    let report = c.apply_script(&Script {
        sessions: script.sessions[2..4].to_vec(),
        ..script.clone()
    });
    let report = report.unwrap();
    assert_eq!(report.applied, 14 + 3);
    assert_eq!(report.scheduled, 1);
}

#[tokio::test]
async fn example_script_covers_every_ccmessaging_type() {
    let script = Script::from_file(example()).unwrap();
    let server = sim(
        SimProvider::Ccmessaging,
        SimOptions {
            script: Some(script),
            ..fast()
        },
    )
    .await;
    let base = server.base_url().to_string();
    let (_, tok) = read(
        client()
            .post(format!("{base}/apigovernance/api/oauth/tokenByAkSk"))
            .json(&json!({"app_key": "demo-app-key", "app_secret": "demo-app-secret"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let access = tok["AccessToken"].as_str().unwrap();
    let user = "1659490221026188522";
    let (_, ut) = read(client().post(format!("{base}/apiaccess/ccmessaging/applyToken"))
        .header("x-app-key", "demo-app-key")
        .header("Authorization", format!("Bearer {access}"))
        .json(&json!({"userId": user, "userName": "张伟", "channelId": "202207292843442389", "locale": "zh"}))
        .send().await.unwrap()).await;
    let token = ut["token"].as_str().unwrap();
    let call = |path: &str, body: serde_json::Value| {
        client()
            .post(format!("{base}/apiaccess/ccmessaging/{path}"))
            .header("x-app-key", "demo-app-key")
            .header("Authorization", format!("Bearer {access}"))
            .header("ccmessaging-token", token)
            .json(&body)
            .send()
    };
    let (_, body) = read(
        call(
            "queryHistoryChatMessage",
            json!({"channelId": "202207292843442389", "userId": user,
        "limit": "100", "offset": "0", "channel": "WEB"}),
        )
        .await
        .unwrap(),
    )
    .await;
    let list = body["messageList"].as_array().unwrap();
    let media: Vec<&str> = list
        .iter()
        .filter_map(|m| m["mediaType"].as_str())
        .collect();
    for m in [
        "TEXT",
        "IMAGE",
        "FILE_IMAGE",
        "FILE",
        "AUDIO",
        "FILE_VIDEO",
        "LOCATE",
        "WEBCARD",
    ] {
        assert!(media.contains(&m), "{m} missing from {media:?}");
    }
    let controls: Vec<&str> = list
        .iter()
        .map(|m| m["controlType"].as_str().unwrap())
        .collect();
    for c in [
        "CONNECT",
        "CHAT",
        "TRANS2AGENT",
        "INPUT",
        "READ",
        "DISCONNECT",
    ] {
        assert!(controls.contains(&c), "{c} missing");
    }
    let file = list.iter().find(|m| m["mediaType"] == "FILE").unwrap();
    let parts: Vec<&str> = file["content"].as_str().unwrap().split(',').collect();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0], "发票.pdf");
    assert_eq!(parts[1], "204800");
    let card: serde_json::Value = serde_json::from_str(
        list.iter().find(|m| m["mediaType"] == "WEBCARD").unwrap()["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(card["title"], "退货指引");
    assert!(list.iter().any(|m| m["content"] == "<p>你好 &amp; hi</p>"));
    let times: Vec<i64> = list
        .iter()
        .map(|m| m["sendTime"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    assert!(list.iter().all(|m| m["callId"] == "1705456002-16797276"));

    // downloadFileStream serves the image.
    let image = list.iter().find(|m| m["mediaType"] == "IMAGE").unwrap();
    let (status, body) = read(
        call(
            "downloadFileStream",
            json!({"fileId": image["content"], "channel": "WEB", "fileType": "png"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["resultCode"], "0");
    assert!(!body["fileStream"].as_str().unwrap().is_empty());
}

#[test]
fn scripts_read_json_and_refuse_bad_input() {
    let s = Script::from_json_str(r#"{"sessions": [{"provider": "kchat", "customer": "c", "events": [
        {"at": -5, "kind": "text", "text": "hi"}, {"at": -1, "from": "system", "kind": "close"}]}]}"#)
    .unwrap();
    assert_eq!(s.sessions[0].events.len(), 2);
    assert!(
        Script::from_json_str(r#"{"sessions": [{"provider": "all", "customer": "c"}]}"#).is_err()
    );
    assert!(Script::from_json_str(
        r#"{"sessions": [{"provider": "kchat", "id": "abc", "customer": "c"}]}"#
    )
    .is_err());
    assert!(Script::from_toml_str("[[sessions]]\nprovider = \"spark\"\ncustomer = \"c\"\nevents = [{ at = 1, kind = \"dance\" }]").is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(&path, "{").unwrap();
    let err = Script::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("s.json"), "{err}");
}

#[tokio::test]
async fn scheduled_events_play_later() {
    let script = Script::from_toml_str(
        r#"
        [[sessions]]
        provider = "spark"
        id = "s-1"
        customer = "c-1"
        events = [
          { at = 0, kind = "text", text = "now" },
          { at = 1, kind = "text", text = "later" },
          { at = 1, kind = "close" },
        ]
        "#,
    )
    .unwrap();
    let server = sim(SimProvider::Spark, fast()).await;
    let report = server.control().apply_script(&script).unwrap();
    assert_eq!((report.applied, report.scheduled), (1, 2));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let s = &server.control().spark_sessions().unwrap()[0];
    assert_eq!(s.messages, 2);
    assert!(!s.active);
}

#[tokio::test]
async fn seeded_history_and_lively_traffic_reach_every_provider() {
    let server = sim(SimProvider::All, fast()).await;
    let c = server.control();
    let report = c
        .seed_history(HistoryOptions {
            days: 7,
            conversations_per_day: 2,
            ..HistoryOptions::default()
        })
        .unwrap();
    assert!(
        report.applied > 0 && report.warnings.is_empty(),
        "{report:?}"
    );
    let state = c.state();
    assert_eq!(state["spark"]["sessions"], 14);
    assert_eq!(state["spark"]["active_sessions"], 0);
    assert_eq!(state["kchat"]["chats"], 14);
    assert!(state["ccmessaging"]["items"].as_u64().unwrap() > 14);
    assert!(state["ccmessaging"]["users"].as_u64().unwrap() <= DEMO_CCM_USERS.len() as u64);

    // Kchat history spans the past week in local days.
    let week_ago = (Utc::now() - chrono::TimeDelta::days(7)).format("%Y-%m-%d");
    let resp = client()
        .get(format!(
            "{}/apiv2/chats.json?start={week_ago}",
            server.base_url()
        ))
        .basic_auth("agent@example.com/token", Some("demo-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(read(resp).await.1["count"], 14);

    let handle = c
        .spawn_traffic(TrafficOptions {
            events_per_second: 100.0,
            ..TrafficOptions::default()
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = c.state();
    assert!(after["spark"]["messages"].as_u64() > state["spark"]["messages"].as_u64());
    assert!(after["kchat"]["messages"].as_u64() > state["kchat"]["messages"].as_u64());
    assert!(after["ccmessaging"]["items"].as_u64() > state["ccmessaging"]["items"].as_u64());
    // Stopped means stopped.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.state()["spark"]["messages"], after["spark"]["messages"]);
    assert!(c
        .spawn_traffic(TrafficOptions {
            events_per_second: 0.0,
            ..TrafficOptions::default()
        })
        .is_err());
}
