//! Webhook management end to end, on both backends: pause and resume
//! (`PATCH`), secret rotation checked with the Standard Webhooks reference
//! library for Python, recover and single retries, with the per-session
//! order kept through all of them, and every client error.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{api_key, wait_until, Db, TestGateway};
use crate::webhooks::{
    admin, all_events, assert_exactly_once_in_session_order, call, config, get_json, ingest,
    register, schedule, Answer, Hit, Receiver,
};

/// The virtualenv `scripts/pyenv` makes (`scripts/test` runs it first).
const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/pyenv/bin/python");

/// Verifies one captured delivery with `secret` through the reference
/// library; true when it accepts it. Panics when the library is missing:
/// this check must never pass by being skipped.
fn python_verifies(secret: &str, hit: &Hit) -> bool {
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run scripts/pyenv (scripts/test does) before cargo test"
    );
    let script = "import sys\n\
                  from standardwebhooks.webhooks import Webhook\n\
                  secret, msg_id, ts, sig, path = sys.argv[1:6]\n\
                  body = open(path, 'rb').read()\n\
                  try:\n\
                  \x20   Webhook(secret).verify(body, {'webhook-id': msg_id, \
                  'webhook-timestamp': ts, 'webhook-signature': sig})\n\
                  except Exception as e:\n\
                  \x20   print('rejected:', type(e).__name__, e)\n\
                  \x20   sys.exit(3)\n\
                  print('verified')\n";
    let dir = std::env::temp_dir().join(format!("chatgw-sig-{}", uuid::Uuid::now_v7()));
    std::fs::write(&dir, &hit.body).unwrap();
    let out = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .arg(secret)
        .arg(&hit.msg_id)
        .arg(&hit.timestamp)
        .arg(&hit.signature)
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    match out.status.code() {
        Some(0) => true,
        Some(3) => false,
        _ => panic!(
            "the Python verifier failed to run: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

async fn send(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, body, _) = call(&gw.http, method, gw.url(path), Some(key), body).await;
    (status, body)
}

async fn patch(gw: &TestGateway, key: &str, id: &str, body: Value) -> (u16, Value) {
    send(
        gw,
        reqwest::Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        key,
        Some(body),
    )
    .await
}

async fn wait_delivered(receiver: &Receiver, want: usize, what: &str) {
    wait_until(30, what, || async {
        let got: HashSet<i64> = receiver.delivered().iter().map(|h| h.seq).collect();
        got.len() >= want
    })
    .await;
}

async fn pausing_and_resuming_delivers_from_the_first_missed_event(db: Db) {
    let (toml, key) = config(&schedule(&[1; 5]));
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Ok).await;
    let (id, secret) = register(&gw.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    ingest(gw.store.as_ref(), "acc", "S1", Some("m1")).await;
    wait_delivered(&receiver, 2, "first events").await;

    let before = get_json(&gw.base, &format!("/v1/webhooks/{id}"), &key).await["data"].clone();
    assert_eq!(before["enabled"], true);
    assert_eq!(before["disabled_reason"], Value::Null);
    let (status, paused) = patch(&gw, &key, &id, json!({"enabled": false})).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["data"]["enabled"], false);
    assert_eq!(paused["data"]["disabled_reason"], "manual");
    assert!(
        paused["data"]["updated_at"].as_str().unwrap() >= before["updated_at"].as_str().unwrap()
    );
    assert!(paused["data"].get("secret").is_none());
    let keys: HashSet<&str> = paused["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let want: HashSet<&str> = [
        "id",
        "url",
        "events",
        "accounts",
        "enabled",
        "disabled_reason",
        "created_at",
        "updated_at",
    ]
    .into();
    assert_eq!(keys, want);

    // While paused: nothing goes out.
    for round in 2..4 {
        for s in ["S1", "S2"] {
            ingest(gw.store.as_ref(), "acc", s, Some(&format!("{s}-m{round}"))).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.hits().len(), 2, "a paused webhook was called");

    let (status, resumed) = patch(&gw, &key, &id, json!({"enabled": true})).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["data"]["enabled"], true);
    assert_eq!(resumed["data"]["disabled_reason"], Value::Null);
    let expected = all_events(gw.store.as_ref()).await;
    wait_delivered(&receiver, expected.len(), "the missed events").await;
    assert_eq!(receiver.bad_signatures(), 0);
    assert_exactly_once_in_session_order(&receiver.delivered(), &expected);
    gw.stop().await;
}

async fn a_webhook_disabled_by_gone_resumes_with_the_refused_event(db: Db) {
    let (toml, key) = config(&schedule(&[1; 5]));
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Ok).await;
    receiver
        .state
        .behaviour
        .lock()
        .unwrap()
        .script
        .push_back(Answer::Status(410));
    let (id, secret) = register(&gw.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    ingest(gw.store.as_ref(), "acc", "S1", Some("m1")).await;
    wait_until(10, "disabled by 410", || async {
        get_json(&gw.base, &format!("/v1/webhooks/{id}"), &key).await["data"]["disabled_reason"]
            == "gone"
    })
    .await;
    let refused = receiver.hits()[0].clone();
    ingest(gw.store.as_ref(), "acc", "S1", Some("m2")).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(receiver.hits().len(), 1);

    let (status, body) = patch(&gw, &key, &id, json!({"enabled": true})).await;
    assert_eq!(status, 200, "{body}");
    let expected = all_events(gw.store.as_ref()).await;
    wait_delivered(&receiver, expected.len(), "everything after the 410").await;
    let delivered = receiver.delivered();
    assert_eq!(
        delivered[0].seq, refused.seq,
        "the refused event goes first"
    );
    assert_eq!(delivered[0].msg_id, refused.msg_id, "under its webhook-id");
    assert_exactly_once_in_session_order(&delivered, &expected);
    gw.stop().await;
}

async fn rotation_signs_with_both_secrets_during_the_overlap(db: Db) {
    let (toml, key) = config(&schedule(&[1; 5]));
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Ok).await;
    let (id, old) = register(&gw.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &old);

    let (status, rotated) = send(
        &gw,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/rotate-secret"),
        &key,
        Some(json!({"overlap_secs": 3})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["data"]["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    assert_eq!(rotated["data"]["id"], id.as_str());
    let shown = get_json(&gw.base, &format!("/v1/webhooks/{id}"), &key).await;
    assert!(shown["data"].get("secret").is_none());

    ingest(gw.store.as_ref(), "acc", "S1", None).await;
    wait_delivered(&receiver, 1, "a delivery during the overlap").await;
    let during = receiver.delivered()[0].clone();
    assert_eq!(
        during.signature.split(' ').count(),
        2,
        "{}",
        during.signature
    );
    assert!(python_verifies(&new, &during), "the new secret must verify");
    assert!(python_verifies(&old, &during), "the old secret must verify");
    // New first: the first signature alone verifies with the new secret.
    let first_only = Hit {
        signature: during.signature.split(' ').next().unwrap().to_string(),
        ..during.clone()
    };
    assert!(python_verifies(&new, &first_only));
    assert!(!python_verifies(&old, &first_only));

    // After the overlap only the new secret signs.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    Receiver::set_secret(&receiver.state, &new);
    ingest(gw.store.as_ref(), "acc", "S2", None).await;
    wait_delivered(&receiver, 2, "a delivery after the overlap").await;
    let after = receiver
        .delivered()
        .into_iter()
        .find(|h| h.seq != during.seq)
        .unwrap();
    assert_eq!(after.signature.split(' ').count(), 1, "{}", after.signature);
    assert!(python_verifies(&new, &after));
    assert!(!python_verifies(&old, &after));

    // Rotating twice within an overlap keeps only the newest two.
    let mut secrets = vec![new];
    for _ in 0..2 {
        let (status, body) = send(
            &gw,
            reqwest::Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &key,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        secrets.push(body["data"]["secret"].as_str().unwrap().to_string());
    }
    Receiver::set_secret(&receiver.state, &secrets[2]);
    ingest(gw.store.as_ref(), "acc", "S3", None).await;
    wait_delivered(&receiver, 3, "a delivery after two rotations").await;
    let last = receiver.delivered().last().unwrap().clone();
    assert_eq!(last.signature.split(' ').count(), 2, "{}", last.signature);
    assert!(python_verifies(&secrets[2], &last));
    assert!(python_verifies(&secrets[1], &last));
    assert!(!python_verifies(&secrets[0], &last));
    assert_eq!(receiver.bad_signatures(), 0);
    gw.stop().await;
}

async fn recover_and_retry_send_events_again_in_order(db: Db) {
    let (toml, key) = config(&schedule(&[1]));
    let gw = TestGateway::start(db, &toml).await;
    let receiver = Receiver::start(Answer::Status(500)).await;
    let (id, secret) = register(&gw.base, &key, json!({"url": receiver.url()})).await;
    Receiver::set_secret(&receiver.state, &secret);
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    ingest(gw.store.as_ref(), "acc", "S1", Some("m1")).await;
    ingest(gw.store.as_ref(), "acc", "S2", Some("m2")).await;
    ingest(gw.store.as_ref(), "acc", "S1", Some("m3")).await;
    let expected = all_events(gw.store.as_ref()).await;
    assert_eq!(expected.len(), 5, "{expected:?}");
    // Two attempts per event (the first and one retry), all failing.
    wait_until(30, "every event spent its retries", || async {
        let d = get_json(
            &gw.base,
            &format!("/v1/webhooks/{id}/deliveries?limit=500"),
            &key,
        )
        .await;
        d["data"].as_array().unwrap().len() >= 2 * expected.len()
    })
    .await;
    let failed_ids: std::collections::HashMap<i64, String> = receiver
        .hits()
        .iter()
        .map(|h| (h.seq, h.msg_id.clone()))
        .collect();

    receiver.state.behaviour.lock().unwrap().default = Answer::Ok;
    let (status, body) = send(
        &gw,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/recover"),
        &key,
        Some(json!({"since": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["data"]["queued"], 0,
        "nothing at or after a future time"
    );
    let (status, body) = send(
        &gw,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/recover"),
        &key,
        Some(json!({"since": since.to_rfc3339()})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["queued"], expected.len());
    wait_delivered(&receiver, expected.len(), "recovered events").await;
    let delivered = receiver.delivered();
    assert_exactly_once_in_session_order(&delivered, &expected);
    for h in &delivered {
        assert_eq!(Some(&h.msg_id), failed_ids.get(&h.seq), "same webhook-id");
    }

    // A recovered success is not recovered again.
    let (_, body) = send(
        &gw,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/recover"),
        &key,
        Some(json!({"since": since.to_rfc3339()})),
    )
    .await;
    assert_eq!(body["data"]["queued"], 0, "{body}");

    // Retry one succeeded delivery: a pending attempt, then delivered again.
    let list = get_json(
        &gw.base,
        &format!("/v1/webhooks/{id}/deliveries?limit=500"),
        &key,
    )
    .await;
    let items = list["data"].as_array().unwrap();
    for item in items {
        let keys: HashSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let want: HashSet<&str> = [
            "id",
            "event_seq",
            "attempt",
            "status",
            "response_status",
            "error",
            "at",
            "next_attempt_at",
        ]
        .into();
        assert_eq!(keys, want);
    }
    let ok = items.iter().find(|d| d["status"] == "succeeded").unwrap();
    assert_eq!(ok["attempt"], 3, "two failures, then the recovered success");
    let (status, body) = send(
        &gw,
        reqwest::Method::POST,
        &format!(
            "/v1/webhooks/{id}/deliveries/{}/retry",
            ok["id"].as_str().unwrap()
        ),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let pending = &body["data"];
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["attempt"], 4);
    assert_eq!(pending["event_seq"], ok["event_seq"]);
    let seq: i64 = ok["event_seq"].as_str().unwrap().parse().unwrap();
    let before = delivered.len();
    wait_until(10, "the retried event arrives", || async {
        receiver.delivered().len() > before
    })
    .await;
    let again = receiver.delivered().last().unwrap().clone();
    assert_eq!(again.seq, seq);
    assert_eq!(Some(&again.msg_id), failed_ids.get(&seq));
    let pending_id = pending["id"].as_str().unwrap().to_string();
    wait_until(10, "the retry is recorded under its id", || async {
        let d = get_json(
            &gw.base,
            &format!("/v1/webhooks/{id}/deliveries?limit=500"),
            &key,
        )
        .await;
        d["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == pending_id.as_str() && x["status"] == "succeeded")
    })
    .await;
    gw.stop().await;
}

async fn management_client_errors(db: Db) {
    let (key, a) = admin();
    let (reader, r) = api_key("reader", &["read", "write"], &["*"]);
    let gw = TestGateway::start(db, &format!("{a}{r}")).await;
    let (id, _) = register(&gw.base, &key, json!({"url": "http://127.0.0.1:9/hook"})).await;
    let path = format!("/v1/webhooks/{id}");

    for body in [
        json!({"accounts": null}),
        json!({"events": null}),
        json!({"url": null}),
        json!({"enabled": null}),
        json!({"enabled": "yes"}),
        json!({"url": 5}),
        json!({"events": []}),
        json!({"events": ["message.deleted"]}),
        json!({"accounts": []}),
        json!({"accounts": ["nope"]}),
        json!({"accounts": "*"}),
        json!({"url": "ftp://example.com/"}),
        json!({"url": "http://[::169.254.169.254]/"}),
        json!({"url": "http://[64:ff9b::a9fe:a9fe]/"}),
        json!({"url": "http://[2002:a9fe:a9fe::]/"}),
        json!({"url": "http://168.63.129.16/"}),
        json!({"url": "http://0.0.0.0/"}),
        json!({"url": "http://[::]/"}),
        json!({"secret": "mine"}),
    ] {
        let (status, resp) = patch(&gw, &key, &id, body.clone()).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], "invalid_request", "{body}");
    }
    let unchanged = get_json(&gw.base, &path, &key).await;
    assert_eq!(unchanged["data"]["url"], "http://127.0.0.1:9/hook");

    let (status, changed) = patch(
        &gw,
        &key,
        &id,
        json!({"url": "http://127.0.0.1:10/other", "events": ["message.created"]}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["data"]["url"], "http://127.0.0.1:10/other");
    assert_eq!(changed["data"]["events"], json!(["message.created"]));
    assert_eq!(changed["data"]["accounts"], json!(["*"]));

    let rotate = format!("{path}/rotate-secret");
    for body in [
        json!({"overlap_secs": 604801}),
        json!({"overlap_secs": -1}),
        json!({"overlap_secs": "1"}),
        json!({"overlap_secs": null}),
        json!({"overlap": 5}),
    ] {
        let (status, resp) = send(
            &gw,
            reqwest::Method::POST,
            &rotate,
            &key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], "invalid_request");
    }
    let (status, resp) = send(
        &gw,
        reqwest::Method::POST,
        &rotate,
        &key,
        Some(json!({"overlap_secs": 604800})),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let recover = format!("{path}/recover");
    for body in [
        json!({}),
        json!({"since": "yesterday"}),
        json!({"since": 5}),
        json!({"since": "2026-12-01T00:00:00Z", "x": 1}),
    ] {
        let (status, resp) = send(
            &gw,
            reqwest::Method::POST,
            &recover,
            &key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], "invalid_request");
    }

    // 404s.
    let since = json!({"since": "2026-12-01T00:00:00+08:00"});
    for (method, p, body) in [
        (
            reqwest::Method::PATCH,
            "/v1/webhooks/wh_nope".to_string(),
            Some(json!({"enabled": true})),
        ),
        (
            reqwest::Method::POST,
            "/v1/webhooks/wh_nope/rotate-secret".to_string(),
            None,
        ),
        (
            reqwest::Method::POST,
            "/v1/webhooks/wh_nope/recover".to_string(),
            Some(since.clone()),
        ),
        (
            reqwest::Method::POST,
            "/v1/webhooks/wh_nope/deliveries/whatt_x/retry".to_string(),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("{path}/deliveries/whatt_nope/retry"),
            None,
        ),
    ] {
        let (status, resp) = send(&gw, method, &p, &key, body).await;
        assert_eq!(status, 404, "{p}: {resp}");
        assert_eq!(resp["error"]["code"], "not_found");
    }

    // 403 before any lookup, whatever the body.
    for (method, p) in [
        (reqwest::Method::PATCH, path.clone()),
        (reqwest::Method::PATCH, "/v1/webhooks/wh_nope".to_string()),
        (reqwest::Method::POST, rotate.clone()),
        (reqwest::Method::POST, recover.clone()),
        (
            reqwest::Method::POST,
            format!("{path}/deliveries/whatt_x/retry"),
        ),
    ] {
        let (status, resp) = send(&gw, method, &p, &reader, Some(json!({"junk": true}))).await;
        assert_eq!(status, 403, "{p}: {resp}");
        assert_eq!(resp["error"]["code"], "forbidden");
    }
    gw.stop().await;
}

on_both_backends!(
    pausing_and_resuming_delivers_from_the_first_missed_event,
    a_webhook_disabled_by_gone_resumes_with_the_refused_event,
    rotation_signs_with_both_secrets_during_the_overlap,
    recover_and_retry_send_events_again_in_order,
    management_client_errors,
);
