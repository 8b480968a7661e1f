//! Polling sync (Kchat, ccmessaging) and backfills against the simulator.

use std::time::Duration;

use crate::on_both_backends;
use crate::support::*;
use chrono::Utc;
use provider_sim::{
    CcmItem, FaultProfile, KchatChatPatch, KchatNewChat, KchatNewMessage, SimProvider,
};
use serde_json::{json, Value};
use sqlx::Row;

const CUSTOMER: &str = "1659490221026188522";

fn kchat_chat(
    control: &provider_sim::SimControl,
    days_ago: i64,
    open: bool,
    messages: usize,
) -> u64 {
    let at = Utc::now() - chrono::Duration::days(days_ago);
    let id = control
        .kchat_add_chat(KchatNewChat {
            visitor_id: 500 + days_ago as u64,
            visitor_name: Some("访客".into()),
            agent_id: Some(2192),
            status: Some(if open { "open" } else { "close" }.into()),
            created_at: Some(at),
            assigned_at: Some(at + chrono::Duration::seconds(30)),
            ..Default::default()
        })
        .unwrap();
    for i in 0..messages {
        control
            .kchat_add_message(
                id,
                KchatNewMessage {
                    kind: Some("chat.msg".into()),
                    name: Some(if i % 2 == 0 { "访客" } else { "小王" }.into()),
                    msg: Some(format!("第{i}条 message")),
                    user_id: (i % 2 == 1).then_some(2192),
                    created_at: Some(at + chrono::Duration::seconds(60 + i as i64)),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    id
}

fn ccm_items(control: &provider_sim::SimControl, days_ago: i64, call: &str, n: usize) {
    let at = (Utc::now() - chrono::Duration::days(days_ago)).timestamp_millis();
    let items = (0..n)
        .map(|i| CcmItem {
            user_id: CUSTOMER.into(),
            control_type: Some("CHAT".into()),
            source_type: Some(if i % 2 == 0 { "USER" } else { "AGENT" }.into()),
            media_type: Some("TEXT".into()),
            content: Some(format!("<p>第{i}条 &amp; more</p>")),
            call_id: Some(call.into()),
            send_time: Some(at + i as i64 * 1000),
            ..Default::default()
        })
        .collect();
    control.ccm_add_items(items).unwrap();
}

async fn messages_in(gw: &TestGateway, account: &str) -> i64 {
    count(&gw.store, "messages", account).await
}

async fn polling_accounts_sync_recent_history_and_follow_changes(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let open_chat = kchat_chat(&control, 2, true, 3);
    kchat_chat(&control, 3, false, 2);
    kchat_chat(&control, 10, false, 4); // older than initial_sync_days
    ccm_items(&control, 1, "call-1", 4);
    ccm_items(&control, 9, "call-old", 3); // older than initial_sync_days
    let gw = TestGateway::start(db, &sim_accounts(sim.base_url(), &[CUSTOMER])).await;
    let g = &gw;
    wait_until(20, "recent Kchat and ccmessaging history", || async move {
        messages_in(g, "kchat").await == 5 && messages_in(g, "ccm").await == 4
    })
    .await;
    // HTML is stripped into `text`, the original kept in raw.
    let (_, m) = gw
        .get("/v1/messages?account=ccm&limit=1&include=raw", None)
        .await;
    assert_eq!(m["data"][0]["text"], "第0条 & more");
    assert_eq!(m["data"][0]["raw"]["content"], "<p>第0条 &amp; more</p>");
    let (_, s) = gw.get("/v1/sessions?account=kchat&status=open", None).await;
    assert_eq!(s["data"].as_array().unwrap().len(), 1);

    // The open chat gets a message and closes; the poller notices both.
    control
        .kchat_add_message(
            open_chat,
            KchatNewMessage {
                kind: Some("chat.msg".into()),
                msg: Some("还有问题".into()),
                ..Default::default()
            },
        )
        .unwrap();
    control
        .kchat_update_chat(
            open_chat,
            KchatChatPatch {
                status: Some("close".into()),
                ..Default::default()
            },
        )
        .unwrap();
    wait_until(20, "the close and the new message", || async move {
        let (_, s) = g.get("/v1/sessions?account=kchat&status=open", None).await;
        s["data"].as_array().unwrap().is_empty() && messages_in(g, "kchat").await == 6
    })
    .await;
    let types: Vec<String> =
        sqlx::query("SELECT type FROM events WHERE account = 'kchat' ORDER BY seq")
            .fetch_all(gw.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "session.closed").count(),
        2,
        "{types:?}"
    );
    ccm_items(&control, 0, "call-2", 2);
    wait_until(20, "new ccmessaging items", || async move {
        messages_in(g, "ccm").await == 6
    })
    .await;
    // Re-polling the overlap window stores nothing twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(messages_in(&gw, "ccm").await, 6);
    assert_eq!(messages_in(&gw, "kchat").await, 6);

    // Backfill brings the older history; the second call while one runs is 409.
    control
        .set_faults(
            SimProvider::Kchat,
            FaultProfile {
                latency_ms: 300,
                ..Default::default()
            },
        )
        .unwrap();
    let from = (Utc::now() - chrono::Duration::days(14)).to_rfc3339();
    let (status, acc) = gw
        .post_raw(
            "/v1/accounts/kchat/sync",
            None,
            json!({"from": from}).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{acc}");
    assert_eq!(acc["data"]["sync"]["backfill"]["state"], "running");
    let (status, again) = gw
        .post_raw(
            "/v1/accounts/kchat/sync",
            None,
            json!({"from": from}).to_string(),
        )
        .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    control.clear_faults(SimProvider::Kchat).unwrap();
    wait_until(30, "the Kchat backfill to finish", || async move {
        let (_, a) = g.get("/v1/accounts/kchat", None).await;
        a["data"]["sync"]["backfill"]["state"] == "done"
    })
    .await;
    assert_eq!(messages_in(&gw, "kchat").await, 10);
    let (_, a) = gw.get("/v1/accounts/kchat", None).await;
    assert!(a["data"]["sync"]["backfill"]["fetched"].as_u64().unwrap() >= 4);
    // ccmessaging backfill for a customer not configured adds them.
    control
        .ccm_add_items(vec![CcmItem {
            user_id: "1659490221026188599".into(),
            control_type: Some("CHAT".into()),
            source_type: Some("USER".into()),
            media_type: Some("TEXT".into()),
            content: Some("hello from a new customer".into()),
            send_time: Some((Utc::now() - chrono::Duration::days(12)).timestamp_millis()),
            ..Default::default()
        }])
        .unwrap();
    let body = json!({"from": from, "customer_ids": [CUSTOMER, "1659490221026188599"]}).to_string();
    let (status, _) = gw.post_raw("/v1/accounts/ccm/sync", None, body).await;
    assert_eq!(status, 202);
    wait_until(30, "the ccmessaging backfill", || async move {
        let (_, a) = g.get("/v1/accounts/ccm", None).await;
        a["data"]["sync"]["backfill"]["state"] == "done" && messages_in(g, "ccm").await == 10
    })
    .await;
    let (_, c) = gw
        .get(
            "/v1/sessions?account=ccm&customer_id=1659490221026188599",
            None,
        )
        .await;
    assert_eq!(c["data"].as_array().unwrap().len(), 1);
    gw.stop().await;
    sim.shutdown().await;
}

async fn backfill_requests_are_validated(db: Db) {
    let sim = start_sim(sim_options()).await;
    let (admin, admin_toml) = api_key("admin", &["read", "write", "admin"], &["*"]);
    let (writer, writer_toml) = api_key("writer", &["read", "write"], &["*"]);
    let toml = format!(
        "{admin_toml}{writer_toml}{}",
        sim_accounts(sim.base_url(), &[CUSTOMER])
    );
    let gw = TestGateway::start(db, &toml).await;
    let from = (Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let k = Some(admin.as_str());
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        (
            "/v1/accounts/kchat/sync",
            Some(writer.as_str()),
            json!({"from": from}).to_string(),
            403,
            "forbidden",
        ),
        // Scope is checked before the body is read.
        (
            "/v1/accounts/kchat/sync",
            Some(writer.as_str()),
            "{not json".into(),
            403,
            "forbidden",
        ),
        (
            "/v1/accounts/kchat/sync",
            None,
            json!({"from": from}).to_string(),
            401,
            "unauthorized",
        ),
        (
            "/v1/accounts/kchat/sync",
            k,
            "{not json".into(),
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/kchat/sync",
            k,
            json!({"from": from, "colour": 1}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/kchat/sync",
            k,
            json!({}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/kchat/sync",
            k,
            json!({"from": "last week"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/kchat/sync",
            k,
            json!({"from": Utc::now().to_rfc3339(), "to": from}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/kchat/sync",
            k,
            json!({"from": from, "customer_ids": ["x"]}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/ccm/sync",
            k,
            json!({"from": from, "customer_ids": ["1234567890123456789012345"]}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/spark/sync",
            k,
            json!({"from": from}).to_string(),
            422,
            "unsupported_operation",
        ),
        (
            "/v1/accounts/nope/sync",
            k,
            json!({"from": from}).to_string(),
            404,
            "not_found",
        ),
    ];
    for (path, key, body, status, code) in cases {
        let (got, b) = gw.post_raw(path, key, body.clone()).await;
        assert_eq!(
            (got, b["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{path} {body}: {b}"
        );
    }
    let big = format!(
        "{{\"from\": \"{from}\", \"pad\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let (got, b) = gw.post_raw("/v1/accounts/kchat/sync", k, big).await;
    assert_eq!(
        (got, b["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    gw.stop().await;
    sim.shutdown().await;
}

async fn interrupted_backfills_resume_exactly_once(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    for d in 0..12 {
        kchat_chat(&control, 20 + d, false, 5);
        ccm_items(&control, 20 + d, &format!("call-{d}"), 25);
    }
    control
        .set_faults(
            SimProvider::All,
            FaultProfile {
                latency_ms: 120,
                ..Default::default()
            },
        )
        .unwrap();
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let port = free_port();
    let config = sim_accounts(sim.base_url(), &[CUSTOMER]);
    let listen = format!("127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let start_backfills = || {
        let http = http.clone();
        let base = base.clone();
        async move {
            let from = (Utc::now() - chrono::Duration::days(40)).to_rfc3339();
            for acc in ["kchat", "ccm"] {
                let r = http
                    .post(format!("{base}/v1/accounts/{acc}/sync"))
                    .json(&json!({"from": from}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202);
            }
        }
    };
    let wait_ready = || {
        let http = http.clone();
        let base = base.clone();
        async move {
            wait_until(30, "gateway ready", || {
                let http = http.clone();
                let base = base.clone();
                async move {
                    http.get(format!("{base}/readyz"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            })
            .await
        }
    };
    let mut first = GatewayProcess::spawn_on(&config, &tdb.url, &listen);
    wait_ready().await;
    start_backfills().await;
    let s = store.clone();
    wait_until(60, "part of both backfills", || {
        let s = s.clone();
        async move {
            count(&s, "messages", "kchat").await >= 10 && count(&s, "messages", "ccm").await >= 100
        }
    })
    .await;
    first.kill();
    let (k, c) = (
        count(&store, "messages", "kchat").await,
        count(&store, "messages", "ccm").await,
    );
    assert!(
        k < 60 || c < 300,
        "kill should land mid-backfill ({k}, {c})"
    );
    let _second = GatewayProcess::spawn_on(&config, &tdb.url, &listen);
    wait_ready().await;
    start_backfills().await;
    let s = store.clone();
    wait_until(90, "both backfills complete", || {
        let s = s.clone();
        async move {
            count(&s, "messages", "kchat").await == 60 && count(&s, "messages", "ccm").await == 300
        }
    })
    .await;
    let http2 = http.clone();
    let base2 = base.clone();
    wait_until(60, "backfill state done", || {
        let http = http2.clone();
        let base = base2.clone();
        async move {
            let a: Value = http
                .get(format!("{base}/v1/accounts"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            a["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["sync"]["backfill"]["state"] == "done")
                .count()
                == 2
        }
    })
    .await;
    for acc in ["kchat", "ccm"] {
        assert_eq!(count(&store, "sessions", acc).await, 12);
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) FROM events WHERE account = $1 AND type = 'message.created'",
        )
        .bind(acc)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        let expected = if acc == "kchat" { 60 } else { 300 };
        assert_eq!(n, expected, "{acc}: one message.created per message");
    }
    sim.shutdown().await;
}

/// Expired tokens and rate limits met by running pollers: the workers keep
/// going on their own and the account says what happened.
async fn expired_tokens_and_rate_limits_never_stop_a_poller(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    ccm_items(&control, 1, "call-a", 2);
    kchat_chat(&control, 1, false, 2);
    let gw = TestGateway::start(db, &sim_accounts(sim.base_url(), &[CUSTOMER])).await;
    let g = &gw;
    wait_until(20, "first sync", || async move {
        messages_in(g, "ccm").await == 2 && messages_in(g, "kchat").await == 2
    })
    .await;
    // Both ccmessaging tokens expire; the adapter refreshes them mid-run.
    control
        .ccm_expire_tokens(provider_sim::CcmExpire {
            access: true,
            user: true,
            user_id: None,
        })
        .unwrap();
    ccm_items(&control, 0, "call-b", 3);
    wait_until(20, "items after the expiry", || async move {
        messages_in(g, "ccm").await == 5
    })
    .await;
    // Kchat answers 429 (with Retry-After) three times, then a 500.
    control
        .fail_next(
            SimProvider::Kchat,
            provider_sim::FailNext {
                count: 3,
                path_prefix: None,
                action: provider_sim::FaultAction::Status { status: 429 },
            },
        )
        .unwrap();
    kchat_chat(&control, 0, false, 3);
    wait_until(30, "the chat after the rate limit", || async move {
        messages_in(g, "kchat").await == 5
    })
    .await;
    control
        .fail_next(
            SimProvider::Kchat,
            provider_sim::FailNext {
                count: 1,
                path_prefix: None,
                action: provider_sim::FaultAction::Status { status: 500 },
            },
        )
        .unwrap();
    wait_until(20, "the 500 shown in the account", || async move {
        let (_, a) = g.get("/v1/accounts/kchat", None).await;
        a["data"]["sync"]["last_error"]["message"].is_string()
    })
    .await;
    wait_until(30, "recovery after the 500", || async move {
        let (_, a) = g.get("/v1/accounts/kchat", None).await;
        a["data"]["sync"]["last_error"].is_null() && a["data"]["sync"]["state"] == "idle"
    })
    .await;
    let (_, a) = gw.get("/v1/accounts/ccm", None).await;
    assert!(a["data"]["sync"]["last_error"].is_null(), "{a}");
    gw.stop().await;
    sim.shutdown().await;
}

on_both_backends!(
    expired_tokens_and_rate_limits_never_stop_a_poller,
    polling_accounts_sync_recent_history_and_follow_changes,
    backfill_requests_are_validated,
    interrupted_backfills_resume_exactly_once,
);
