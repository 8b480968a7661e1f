//! Sends and session actions against the Spark simulator over HTTP, with the
//! live sync worker running: faults, refusals, idempotent repeats, echoes,
//! outreach, and a SIGKILL with sends pending.

use std::sync::Arc;
use std::time::Duration;

use provider_sim::{FailNext, FaultAction, SimControl, SimProvider, SparkAgent, SparkInject};
use serde_json::{json, Value};
use sqlx::Row;

use crate::on_both_backends;
use crate::support::*;

/// Fast retries; a lease longer than the sync lease, so a crashed
/// dispatcher's in-flight send is recognised by its echo before it could be
/// sent again.
const OUTBOX: &str =
    "[outbox]\nretry_base_ms = 50\nretry_max_secs = 1\npoll_interval_ms = 200\nmax_attempts = 30\n";

fn config(sim: &str) -> String {
    format!("{OUTBOX}{}", sim_accounts(sim, &[]))
}

/// A customer message at the simulator, and the session it makes once the
/// gateway has stored it; returns the gateway session id.
async fn customer_session(gw: &TestGateway, sim: &SimControl, customer: &str) -> String {
    sim.spark_inject(SparkInject {
        customer_id: Some(customer.into()),
        customer_name: Some(format!("客户{customer}")),
        agent_id: Some("1001".into()),
        text: Some("你好，在吗？".into()),
        ..Default::default()
    })
    .unwrap();
    let mut id = String::new();
    for _ in 0..400 {
        let (_, list) = gw
            .get(&format!("/v1/sessions?customer_id={customer}"), None)
            .await;
        if let Some(s) = list["data"].as_array().and_then(|l| l.first()) {
            id = s["id"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!id.is_empty(), "session of {customer} never arrived");
    id
}

async fn post(gw: &TestGateway, p: &str, body: &Value, idem: Option<&str>) -> (u16, Value) {
    let mut req = gw.http.post(gw.url(p)).json(body);
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn delivered(gw: &TestGateway, id: &str) -> Value {
    for _ in 0..400 {
        let (_, m) = gw.get(&format!("/v1/messages/{id}"), None).await;
        if m["data"]["delivery"]["status"] != "pending" {
            return m["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} stayed pending");
}

/// Accepted sends of `content` at the simulator.
fn accepted(sim: &SimControl, content: &str) -> usize {
    sim.spark_received()
        .unwrap()
        .sends
        .iter()
        .filter(|s| s.code == 0 && s.content == content)
        .count()
}

async fn session_messages(gw: &TestGateway, sid: &str) -> Vec<Value> {
    let (_, list) = gw.get(&format!("/v1/sessions/{sid}/messages"), None).await;
    list["data"].as_array().unwrap().clone()
}

/// `(type, message_id)` of every event of a session.
async fn session_events(gw: &TestGateway, sid: &str) -> Vec<(String, Option<String>)> {
    sqlx::query("SELECT type, message_id FROM events WHERE session_id = $1 ORDER BY seq")
        .bind(sid)
        .fetch_all(gw.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect()
}

async fn sends_survive_5xx_and_the_echo_is_no_second_message(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = TestGateway::start(db, &config(sim.base_url())).await;
    let sid = customer_session(&gw, &control, "C1").await;
    control
        .fail_next(
            SimProvider::Spark,
            FailNext {
                count: 3,
                path_prefix: Some("/message/send".into()),
                action: FaultAction::Status { status: 500 },
            },
        )
        .unwrap();
    let (status, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        &json!({"kind": "text", "text": "您好，我是王芳"}),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let done = delivered(&gw, &id).await;
    assert_eq!(
        done["delivery"],
        json!({"status": "sent", "attempts": 4, "last_error": null})
    );
    assert_eq!(accepted(&control, "您好，我是王芳"), 1);
    let record = control
        .spark_received()
        .unwrap()
        .sends
        .into_iter()
        .find(|s| s.code == 0)
        .unwrap();
    assert_eq!(done["external_id"], record.message_id.unwrap().as_str());
    // The echo comes back on the live feed; it is stored as nothing new.
    wait_until(20, "the echo acknowledged", || {
        let control = control.clone();
        let ext = done["external_id"].as_str().unwrap().to_string();
        async move { control.spark_received().unwrap().acks.contains(&ext) }
    })
    .await;
    let msgs = session_messages(&gw, &sid).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let mine: Vec<&str> = session_events(&gw, &sid)
        .await
        .into_iter()
        .filter(|(_, m)| m.as_deref() == Some(id.as_str()))
        .map(|(t, _)| if t == "message.created" { "c" } else { "u" })
        .collect();
    assert_eq!(mine.first(), Some(&"c"));
    assert_eq!(mine.iter().filter(|t| **t == "c").count(), 1, "{mine:?}");
    assert_eq!(mine.last(), Some(&"u"));
    // The outbox metrics saw the retries and the final success.
    let metrics = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"chatgw_outbox_deliveries_total{outcome="sent"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"chatgw_outbox_deliveries_total{outcome="retrying"}"#));
    assert!(metrics.contains("chatgw_outbox_pending"));
    gw.stop().await;
    sim.shutdown().await;
}

async fn a_refusal_fails_with_the_providers_reason(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = TestGateway::start(db, &config(sim.base_url())).await;
    let sid = customer_session(&gw, &control, "C2").await;
    control
        .fail_next(
            SimProvider::Spark,
            FailNext {
                count: 1,
                path_prefix: Some("/message/send".into()),
                action: FaultAction::Body {
                    status: 200,
                    body: json!({"Code": 1003, "Message": "ToId C2 is blocked"}),
                },
            },
        )
        .unwrap();
    let (_, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/messages"),
        &json!({"kind": "text", "text": "hello"}),
        None,
    )
    .await;
    let done = delivered(&gw, body["data"]["id"].as_str().unwrap()).await;
    assert_eq!(done["delivery"]["status"], "failed");
    assert_eq!(done["delivery"]["attempts"], 1);
    assert!(
        done["delivery"]["last_error"]
            .as_str()
            .unwrap()
            .contains("ToId C2 is blocked"),
        "{done}"
    );
    assert_eq!(accepted(&control, "hello"), 0);
    gw.stop().await;
    sim.shutdown().await;
}

async fn twenty_concurrent_repeats_make_one_message_and_one_delivery(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = Arc::new(TestGateway::start(db, &config(sim.base_url())).await);
    let sid = customer_session(&gw, &control, "C3").await;
    let p = format!("/v1/sessions/{sid}/messages");
    let mut handles = Vec::new();
    for _ in 0..20 {
        let gw = gw.clone();
        let p = p.clone();
        handles.push(tokio::spawn(async move {
            post(
                &gw,
                &p,
                &json!({"kind": "text", "text": "只要一条"}),
                Some("same-key"),
            )
            .await
        }));
    }
    let mut answers = Vec::new();
    for h in handles {
        let (status, body) = h.await.unwrap();
        assert_eq!(status, 202, "{body}");
        answers.push(body);
    }
    assert!(answers.iter().all(|a| a == &answers[0]));
    let id = answers[0]["data"]["id"].as_str().unwrap().to_string();
    delivered(&gw, &id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(accepted(&control, "只要一条"), 1);
    assert_eq!(session_messages(&gw, &sid).await.len(), 2);
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
    sim.shutdown().await;
}

async fn outreach_needs_confirmation_then_opens_the_session(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = TestGateway::start(db, &config(sim.base_url())).await;
    let body = json!({"account": "spark", "customer_id": "C4", "kind": "text", "text": "您好，您的快递到了"});
    let (status, answer) = post(&gw, "/v1/messages", &body, None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("confirmation_required"))
    );
    assert!(control.spark_received().unwrap().sends.is_empty());

    let mut confirmed = body.clone();
    confirmed["confirm_new_session"] = json!(true);
    let (status, answer) = post(&gw, "/v1/messages", &confirmed, None).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["data"]["id"].as_str().unwrap().to_string();
    let sid = answer["data"]["session_id"].as_str().unwrap().to_string();
    let done = delivered(&gw, &id).await;
    assert_eq!(done["delivery"]["status"], "sent");
    let at_sim = control
        .spark_sessions()
        .unwrap()
        .into_iter()
        .find(|s| s.customer_id == "C4")
        .unwrap();
    // Let the AddSession carrying the echo arrive and merge.
    wait_until(20, "the echo acknowledged", || {
        let control = control.clone();
        let ext = done["external_id"].as_str().unwrap().to_string();
        async move { control.spark_received().unwrap().acks.contains(&ext) }
    })
    .await;
    let (_, list) = gw.get("/v1/sessions?customer_id=C4", None).await;
    let list = list["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let s = &list[0];
    assert_eq!(s["id"], sid.as_str());
    assert_eq!(s["external_id"], at_sim.session_id.as_str());
    assert_eq!(s["status"], "open");
    assert_eq!(s["started_by"], "agent");
    assert_eq!(s["message_count"], 1);
    assert_eq!(s["agent"]["external_id"], at_sim.agent_id.as_str());
    let msgs = session_messages(&gw, &sid).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["id"], id.as_str());
    assert_eq!(msgs[0]["text"], "您好，您的快递到了");
    gw.stop().await;
    sim.shutdown().await;
}

async fn close_restart_transfer_at_the_simulator(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = TestGateway::start(db, &config(sim.base_url())).await;
    let sid = customer_session(&gw, &control, "C5").await;
    let ext = gw.get(&format!("/v1/sessions/{sid}"), None).await.1["data"]["external_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Transfer to an offline agent: refused with Spark's reason.
    control
        .spark_set_agent(SparkAgent {
            id: "1003".into(),
            name: None,
            image: None,
            online: false,
        })
        .unwrap();
    let (status, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/transfer"),
        &json!({"agent_id": "1003"}),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("provider_rejected"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not online"),
        "{body}"
    );

    // Transfer with a notice.
    let (status, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/transfer"),
        &json!({"agent_id": "1002", "notify_customer": true}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["agent"]["external_id"], "1002");
    assert_eq!(body["data"]["first_response_at"], Value::Null);
    let at_sim = control
        .spark_sessions()
        .unwrap()
        .into_iter()
        .find(|s| s.session_id == ext)
        .unwrap();
    assert_eq!(at_sim.agent_id, "1002");
    wait_until(20, "the notice delivered", || {
        let control = control.clone();
        async move { accepted(&control, "您好，已为您转接客服 1002。") == 1 }
    })
    .await;

    // Close; Spark's DelSession is no second event.
    let (status, body) = post(&gw, &format!("/v1/sessions/{sid}/close"), &json!({}), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "closed");
    assert!(
        !control
            .spark_sessions()
            .unwrap()
            .into_iter()
            .find(|s| s.session_id == ext)
            .unwrap()
            .active
    );
    // Restart; its AddSession is no second event either.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = post(
        &gw,
        &format!("/v1/sessions/{sid}/restart"),
        &json!({}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "open");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let types: Vec<String> = session_events(&gw, &sid)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    for t in ["session.transferred", "session.closed", "session.reopened"] {
        assert_eq!(
            types.iter().filter(|x| *x == t).count(),
            1,
            "{t}: {types:?}"
        );
    }
    // The notice and its echo are one message.
    let notices: Vec<Value> = session_messages(&gw, &sid)
        .await
        .into_iter()
        .filter(|m| m["text"] == "您好，已为您转接客服 1002。")
        .collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["sender"]["role"], "system");
    gw.stop().await;
    sim.shutdown().await;
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gateway at {base} never became ready");
}

async fn count_sent(store: &chat_gateway::store::SqlStore) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM messages WHERE delivery_status = 'sent'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn sigkill_with_sends_pending_then_restart_delivers_each_once(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    // The outbox lease outlasts the sync lease, so a send the dead process
    // had in flight is recognised by its echo instead of being sent again.
    let cfg = format!(
        "[outbox]\nretry_base_ms = 100\nretry_max_secs = 1\npoll_interval_ms = 200\nmax_attempts = 1000\nlease_secs = 40\n{}",
        sim_accounts(sim.base_url(), &[])
    );
    let http = reqwest::Client::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut first = GatewayProcess::spawn_on(&cfg, &tdb.url, &listen);
    wait_ready(&http, &base).await;
    for i in 0..10 {
        control
            .spark_inject(SparkInject {
                customer_id: Some(format!("K{i}")),
                text: Some("在吗".into()),
                ..Default::default()
            })
            .unwrap();
    }
    wait_until(30, "10 sessions stored", || {
        let store = store.clone();
        async move { count(&store, "sessions", "spark").await == 10 }
    })
    .await;
    // Spark is down for now: every send stays pending.
    control
        .fail_next(
            SimProvider::Spark,
            FailNext {
                count: 100_000,
                path_prefix: Some("/message/send".into()),
                action: FaultAction::Status { status: 503 },
            },
        )
        .unwrap();
    let (_, list) = {
        let r = http
            .get(format!("{base}/v1/sessions?account=spark"))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    let mut contents = Vec::new();
    for s in list["data"].as_array().unwrap() {
        let sid = s["id"].as_str().unwrap();
        for n in 0..3 {
            let text = format!("{sid} 第{n}条");
            let r = http
                .post(format!("{base}/v1/sessions/{sid}/messages"))
                .json(&json!({"kind": "text", "text": text}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
            contents.push(text);
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count_sent(&store).await, 0);
    // Spark comes back, slowly; the gateway dies mid-delivery.
    control.clear_faults(SimProvider::Spark).unwrap();
    control
        .set_faults(
            SimProvider::Spark,
            provider_sim::FaultProfile {
                latency_ms: 150,
                ..Default::default()
            },
        )
        .unwrap();
    wait_until(30, "some sends delivered", || {
        let store = store.clone();
        async move { count_sent(&store).await >= 4 }
    })
    .await;
    first.kill();
    let at_kill = count_sent(&store).await;
    assert!(
        at_kill < 30,
        "the kill should land mid-delivery ({at_kill} sent)"
    );

    let listen = format!("127.0.0.1:{}", free_port());
    let _second = GatewayProcess::spawn_on(&cfg, &tdb.url, &listen);
    wait_until(120, "every send delivered after the restart", || {
        let store = store.clone();
        async move { count_sent(&store).await == 30 }
    })
    .await;
    // Let echoes settle, then: each delivered exactly once, none stored twice.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    for text in &contents {
        assert_eq!(accepted(&control, text), 1, "{text}");
    }
    assert_eq!(count(&store, "messages", "spark").await, 10 + 30);
    let distinct: i64 = sqlx::query(
        "SELECT COUNT(DISTINCT external_id) FROM messages WHERE delivery_status = 'sent'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(distinct, 30);
    sim.shutdown().await;
}

on_both_backends!(
    sends_survive_5xx_and_the_echo_is_no_second_message,
    a_refusal_fails_with_the_providers_reason,
    twenty_concurrent_repeats_make_one_message_and_one_delivery,
    outreach_needs_confirmation_then_opens_the_session,
    close_restart_transfer_at_the_simulator,
    sigkill_with_sends_pending_then_restart_delivers_each_once,
);
