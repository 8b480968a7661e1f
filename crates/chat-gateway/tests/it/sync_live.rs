//! Live (Spark) sync against the simulator over HTTP: duplicates and
//! reordering, faults, crash and restart, replicas.

use std::collections::HashSet;
use std::time::Duration;

use crate::on_both_backends;
use crate::support::*;
use provider_sim::{FailNext, FaultAction, FaultProfile, SimProvider, SparkInject};
use sqlx::Row;

fn inject(sim: &provider_sim::SimControl, session: usize, i: usize) {
    sim.spark_inject(SparkInject {
        session_id: Some(format!("S{session}")),
        customer_id: Some(format!("C{session}")),
        customer_name: Some(format!("客户{session}")),
        agent_id: Some("A1".into()),
        message_type: (i % 3 == 2) as u8,
        text: Some(format!("消息 {session}-{i}")),
        ..Default::default()
    })
    .unwrap();
}

async fn assert_exactly_once(
    store: &chat_gateway::store::SqlStore,
    account: &str,
    sessions: i64,
    messages: i64,
) {
    assert_eq!(count(store, "sessions", account).await, sessions);
    assert_eq!(count(store, "messages", account).await, messages);
    let rows = sqlx::query(
        "SELECT type, COUNT(*) AS n FROM events WHERE account = $1 GROUP BY type ORDER BY type",
    )
    .bind(account)
    .fetch_all(store.pool())
    .await
    .unwrap();
    let by_type: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.try_get("type").unwrap(), r.try_get("n").unwrap()))
        .collect();
    assert_eq!(
        by_type,
        vec![
            ("message.created".to_string(), messages),
            ("session.opened".to_string(), sessions)
        ],
        "one event per real change"
    );
    let counted: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(message_count), 0) AS BIGINT) FROM sessions WHERE account = $1",
    )
    .bind(account)
    .fetch_one(store.pool())
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(counted, messages, "message_count agrees with the rows");
}

async fn duplicated_and_reordered_delivery_is_stored_once(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    control
        .set_faults(
            SimProvider::Spark,
            FaultProfile {
                spark_duplicate_rate: 1.0,
                spark_out_of_order_rate: 0.5,
                ..Default::default()
            },
        )
        .unwrap();
    let gw = TestGateway::start(db, &sim_accounts(sim.base_url(), &[])).await;
    for i in 0..120 {
        inject(&control, i % 12, i);
    }
    let store = gw.store.clone();
    wait_until(30, "120 messages stored", || {
        let store = store.clone();
        async move { count(&store, "messages", "spark").await == 120 }
    })
    .await;
    // Let any redelivery arrive, then check nothing doubled.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_exactly_once(&gw.store, "spark", 12, 120).await;
    // Every stored message was acknowledged to the provider.
    let received = control.spark_received().unwrap();
    let acked: HashSet<String> = received.acks.into_iter().collect();
    let stored: Vec<String> =
        sqlx::query("SELECT external_id FROM messages WHERE account = 'spark'")
            .fetch_all(gw.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
    assert!(
        stored.iter().all(|id| acked.contains(id)),
        "unacked stored messages"
    );
    // Reordered answers never lose provider order within a session's feed.
    let (_, page) = gw.get("/v1/messages?account=spark&limit=500", None).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 120);
    gw.stop().await;
    sim.shutdown().await;
}

async fn faults_never_stop_the_worker_and_show_in_the_account(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let gw = TestGateway::start(db, &sim_accounts(sim.base_url(), &[])).await;
    inject(&control, 1, 0);
    let store = gw.store.clone();
    wait_until(20, "first message", || {
        let store = store.clone();
        async move { count(&store, "messages", "spark").await == 1 }
    })
    .await;
    for action in [
        FaultAction::Status { status: 503 },
        FaultAction::Malformed,
        FaultAction::Hang,
    ] {
        control
            .fail_next(
                SimProvider::Spark,
                FailNext {
                    count: 2,
                    path_prefix: Some("/message/query".into()),
                    action,
                },
            )
            .unwrap();
        let gw_ref = &gw;
        wait_until(30, "the failure to show in /v1/accounts", || async move {
            let (_, a) = gw_ref.get("/v1/accounts/spark", None).await;
            a["data"]["sync"]["state"] == "backoff"
                && a["data"]["sync"]["last_error"]["message"].is_string()
        })
        .await;
        let before = count(&gw.store, "messages", "spark").await;
        inject(&control, 2, before as usize);
        wait_until(40, "recovery and the next message", || {
            let store = store.clone();
            async move { count(&store, "messages", "spark").await == before + 1 }
        })
        .await;
        wait_until(10, "state back to running", || async move {
            let (_, a) = gw_ref.get("/v1/accounts/spark", None).await;
            a["data"]["sync"]["state"] == "running" && a["data"]["sync"]["last_error"].is_null()
        })
        .await;
    }
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
        metrics.contains(r#"chatgw_provider_errors_total{account="spark",kind="unavailable"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"chatgw_messages_ingested_total{account="spark"}"#));
    gw.stop().await;
    sim.shutdown().await;
}

async fn sigkill_mid_burst_then_restart_loses_and_doubles_nothing(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    control
        .set_faults(
            SimProvider::Spark,
            FaultProfile {
                spark_duplicate_rate: 0.5,
                spark_out_of_order_rate: 0.5,
                ..Default::default()
            },
        )
        .unwrap();
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let config = sim_accounts(sim.base_url(), &[]);
    let mut first = GatewayProcess::spawn(&config, &tdb.url);
    let total = 400;
    let burst = {
        let control = control.clone();
        tokio::spawn(async move {
            for i in 0..total {
                inject(&control, i % 40, i);
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            }
        })
    };
    wait_until(60, "some of the burst stored", || {
        let store = store.clone();
        async move { count(&store, "messages", "spark").await >= 60 }
    })
    .await;
    first.kill();
    burst.await.unwrap();
    let stored_at_kill = count(&store, "messages", "spark").await;
    assert!(
        stored_at_kill < total as i64,
        "the kill should land mid-burst"
    );
    let _second = GatewayProcess::spawn(&config, &tdb.url);
    wait_until(90, "every message after restart", || {
        let store = store.clone();
        async move { count(&store, "messages", "spark").await >= total as i64 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_exactly_once(&store, "spark", 40, total as i64).await;
    sim.shutdown().await;
}

on_both_backends!(
    duplicated_and_reordered_delivery_is_stored_once,
    faults_never_stop_the_worker_and_show_in_the_account,
    sigkill_mid_burst_then_restart_loses_and_doubles_nothing,
);

/// Two replicas on one PostgreSQL: one polls each account; when it dies the
/// other takes over within the lease time, with nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_fail_over_within_the_lease() {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    let tdb = TestDb::new(Db::Postgres).await;
    let store = tdb.store().await;
    let config = sim_accounts(sim.base_url(), &[]);
    let mut a = GatewayProcess::spawn(&config, &tdb.url);
    let mut b = GatewayProcess::spawn(&config, &tdb.url);
    // Both compete for every account; one must win each.
    let owner = |store: std::sync::Arc<chat_gateway::store::SqlStore>| async move {
        sqlx::query("SELECT lease_owner FROM sync_state WHERE account = 'spark'")
            .fetch_optional(store.pool())
            .await
            .unwrap()
            .and_then(|r| r.try_get::<Option<String>, _>(0).unwrap())
    };
    wait_until(30, "one replica holds the spark lease", || {
        let store = store.clone();
        async move { owner(store).await.is_some() }
    })
    .await;
    let first_owner = owner(store.clone()).await.unwrap();
    for i in 0..30 {
        inject(&control, i % 3, i);
    }
    wait_until(30, "30 messages", || {
        let store = store.clone();
        async move { count(&store, "messages", "spark").await == 30 }
    })
    .await;
    // Kill (SIGKILL) exactly the process holding the lease.
    let (dead, _alive) = if first_owner.starts_with(&format!("pid{}-", a.pid())) {
        (&mut a, &mut b)
    } else {
        assert!(
            first_owner.starts_with(&format!("pid{}-", b.pid())),
            "{first_owner}"
        );
        (&mut b, &mut a)
    };
    dead.kill();
    let started = std::time::Instant::now();
    wait_until(40, "another replica takes the lease", || {
        let store = store.clone();
        let first_owner = first_owner.clone();
        async move { owner(store).await.is_some_and(|o| o != first_owner) }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(35),
        "takeover took {:?}",
        started.elapsed()
    );
    for i in 30..60 {
        inject(&control, i % 3, i);
    }
    wait_until(40, "60 messages after failover", || {
        let store = store.clone();
        async move { count(&store, "messages", "spark").await == 60 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_exactly_once(&store, "spark", 3, 60).await;
    drop(a);
    drop(b);
    sim.shutdown().await;
}
