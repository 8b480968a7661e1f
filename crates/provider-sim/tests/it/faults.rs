use std::time::{Duration, Instant};

use provider_sim::{FailNext, FaultAction, FaultProfile, SimOptions, SimProvider, SparkInject};
use serde_json::json;

use crate::{client, fast, read, sim};

fn spark_query(base: &str) -> reqwest::RequestBuilder {
    client()
        .post(format!("{base}/message/query"))
        .header("Authorization", "Token demo")
        .json(&json!({"LastVersion": "unknown"}))
}

#[tokio::test]
async fn next_n_requests_fail_with_a_status_only_under_the_prefix() {
    let server = sim(SimProvider::Spark, fast()).await;
    server
        .control()
        .fail_next(
            SimProvider::Spark,
            FailNext {
                count: 2,
                path_prefix: Some("/message/send".into()),
                action: FaultAction::Status { status: 500 },
            },
        )
        .unwrap();
    // Another path is untouched.
    let (status, _) = read(spark_query(server.base_url()).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let send = || {
        client()
            .post(format!("{}/message/send", server.base_url()))
            .header("Authorization", "Token demo")
            .json(&json!({"SessionId": "x", "ToId": "y", "ContentType": "0", "Content": "z"}))
            .send()
    };
    for _ in 0..2 {
        let (status, body) = read(send().await.unwrap()).await;
        assert_eq!(status, 500);
        assert_eq!(body["Code"], 500);
    }
    let (status, body) = read(send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["Code"], 1001);
    // The faulted sends never reached the simulator.
    assert_eq!(server.control().spark_received().unwrap().sends.len(), 1);
}

#[tokio::test]
async fn malformed_json_and_business_errors() {
    let server = sim(SimProvider::All, fast()).await;
    let c = server.control();
    c.fail_next(
        SimProvider::Kchat,
        FailNext {
            count: 1,
            path_prefix: None,
            action: FaultAction::Malformed,
        },
    )
    .unwrap();
    let resp = client()
        .get(format!("{}/apiv2/chats.json", server.base_url()))
        .basic_auth("agent@example.com", Some("demo-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "{text}"
    );

    c.fail_next(
        SimProvider::Spark,
        FailNext {
            count: 1,
            path_prefix: None,
            action: FaultAction::BusinessError,
        },
    )
    .unwrap();
    let (status, body) = read(spark_query(server.base_url()).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["Code"], 9999);
}

#[tokio::test]
async fn hang_outlasts_the_client_timeout_then_service_resumes() {
    let server = sim(SimProvider::Spark, fast()).await;
    server
        .control()
        .fail_next(
            SimProvider::Spark,
            FailNext {
                count: 1,
                path_prefix: None,
                action: FaultAction::Hang,
            },
        )
        .unwrap();
    let t = Instant::now();
    let err = spark_query(server.base_url())
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2));
    let (status, _) = read(spark_query(server.base_url()).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn latency_and_error_rate_profiles() {
    let opts = SimOptions {
        faults: Some(FaultProfile {
            latency_ms: 300,
            ..FaultProfile::default()
        }),
        ..fast()
    };
    let server = sim(SimProvider::Spark, opts).await;
    let t = Instant::now();
    let (status, _) = read(spark_query(server.base_url()).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    let c = server.control();
    c.set_faults(
        SimProvider::Spark,
        FaultProfile {
            error_rate: 1.0,
            ..FaultProfile::default()
        },
    )
    .unwrap();
    let (status, body) = read(spark_query(server.base_url()).send().await.unwrap()).await;
    assert!(status == 500 || status == 503, "{status}");
    assert_eq!(body["Code"], status);
    c.clear_faults(SimProvider::All).unwrap();
    assert_eq!(
        read(spark_query(server.base_url()).send().await.unwrap())
            .await
            .0,
        200
    );
    assert!(c
        .set_faults(
            SimProvider::Spark,
            FaultProfile {
                error_rate: 2.0,
                ..FaultProfile::default()
            }
        )
        .is_err());
    assert!(c
        .fail_next(
            SimProvider::Kchat,
            FailNext {
                count: 1,
                path_prefix: None,
                action: FaultAction::Hang
            }
        )
        .is_err());
}

#[tokio::test]
async fn spark_duplicates_and_out_of_order_delivery() {
    let server = sim(SimProvider::Spark, fast()).await;
    let c = server.control();
    let a = c
        .spark_inject(SparkInject {
            customer_id: Some("c-a".into()),
            text: Some("a".into()),
            ..Default::default()
        })
        .unwrap();
    let b = c
        .spark_inject(SparkInject {
            customer_id: Some("c-b".into()),
            text: Some("b".into()),
            ..Default::default()
        })
        .unwrap();
    c.set_faults(
        SimProvider::Spark,
        FaultProfile {
            spark_duplicate_rate: 1.0,
            spark_out_of_order_rate: 1.0,
            ..FaultProfile::default()
        },
    )
    .unwrap();
    let (_, body) = read(
        client()
            .post(format!("{}/message/query", server.base_url()))
            .header("Authorization", "Token demo")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sessions: Vec<&str> = body["Operation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["SessionId"].as_str().unwrap())
        .collect();
    let (sa, sb) = (a.session_id.as_str(), b.session_id.as_str());
    assert_eq!(sessions, vec![sb, sa, sb, sa]);
}
