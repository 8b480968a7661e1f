//! Token life cycle against the ccmessaging simulator over real HTTP: a
//! short-lived AccessToken is replaced before it expires, never after.

use std::time::{Duration, Instant};

use chat_core::{HistoryQuery, Provider, Secret};
use chrono::{TimeDelta, Utc};
use provider_ccmessaging::{CcmessagingConfig, CcmessagingProvider};
use provider_sim::{CcmItem, FaultProfile, SimOptions, SimProvider};
use url::Url;

/// The AccessToken lifetime the simulator hands out in this test.
const LIFE: Duration = Duration::from_secs(4);

#[tokio::test]
async fn a_four_second_access_token_is_never_used_expired() {
    let opts = SimOptions {
        ccm_access_token_ttl: LIFE,
        ..SimOptions::default()
    };
    let creds = opts.ccm.clone();
    let server = provider_sim::start(
        SimProvider::Ccmessaging,
        "127.0.0.1:0".parse().unwrap(),
        opts,
    )
    .await
    .unwrap();
    let control = server.control();
    // Each answer takes 300 ms, as on a loaded network: a token checked
    // fresh just before its end would arrive expired.
    control
        .set_faults(
            SimProvider::Ccmessaging,
            FaultProfile {
                latency_ms: 300,
                ..FaultProfile::default()
            },
        )
        .unwrap();
    control
        .ccm_add_items(vec![CcmItem {
            user_id: "u-token".into(),
            content: Some("hello".into()),
            ..CcmItem::default()
        }])
        .unwrap();
    let mut config = CcmessagingConfig::new(
        Url::parse(server.base_url()).unwrap(),
        Secret::new(creds.app_key.clone()),
        Secret::new(creds.app_secret.clone()),
        creds.channel_id.clone(),
    );
    config.request_timeout = Duration::from_secs(2);
    let provider = CcmessagingProvider::new(config).unwrap();
    let query = HistoryQuery {
        customer_id: Some("u-token".into()),
        from: Utc::now() - TimeDelta::hours(1),
        to: None,
        page: None,
    };

    // Calls every 200 ms (plus the 300 ms answer) over three lifetimes.
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < LIFE * 3 + Duration::from_millis(500) {
        let page = provider.fetch_history(&query).await.unwrap();
        assert_eq!(page.changes.len(), 1);
        calls += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let received = control.ccm_received().unwrap();
    assert!(calls >= 15, "{calls} calls");
    assert_eq!(received.query_history, calls, "no call was retried");
    assert_eq!(
        received.forbidden, 0,
        "an expired AccessToken was sent: {received:?}"
    );
    assert!(
        received.token_by_ak_sk >= 3,
        "the token was replaced once per lifetime: {received:?}"
    );
}
