//! The adapter against a wiremock ccmessaging: token life cycle, paging and
//! every failure the error policy names.

use std::sync::Arc;
use std::time::Duration;

use chat_core::{Capability, HistoryQuery, Provider, ProviderError};
use serde_json::json;
use wiremock::matchers::{body_json, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn history() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path(HISTORY_PATH))
}

#[tokio::test]
async fn capabilities_are_history_only() {
    let server = MockServer::start().await;
    let provider = provider(&server);
    assert_eq!(provider.name(), "ccmessaging");
    let caps: Vec<Capability> = provider.capabilities().iter().collect();
    assert_eq!(caps, [Capability::History]);
}

#[tokio::test]
async fn request_carries_both_tokens_and_an_all_string_body() {
    let server = MockServer::start().await;
    mount_access_tokens(&server, 1, 0).await;
    Mock::given(method("POST"))
        .and(path(APPLY_PATH))
        .and(header("x-app-key", APP_KEY))
        .and(header("authorization", "Bearer at-1"))
        .and(body_json(json!({
            "userId": USER,
            "userName": USER,
            "channelId": CHANNEL_ID,
            "locale": "zh",
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"resultCode": "0", "token": "ut-checked"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    history()
        .and(header("x-app-key", APP_KEY))
        .and(header("authorization", "Bearer at-1"))
        .and(header("ccmessaging-token", "ut-checked"))
        .and(body_json(json!({
            "channelId": CHANNEL_ID,
            "userId": USER,
            "startTime": "1704067200000",
            "endTime": "1706745600000",
            "limit": "100",
            "offset": "0",
            "channel": "WEB",
        })))
        .respond_with(history_answer(&[]))
        .expect(1)
        .mount(&server)
        .await;

    let page = fetch(&provider(&server)).await.unwrap();
    assert_eq!(page.fetched, 0);
    assert_eq!(page.next_page, None);
    assert!(page.changes.is_empty());
}

#[tokio::test]
async fn tokens_are_requested_once_for_several_calls() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .and(header("ccmessaging-token", "ut-1"))
        .respond_with(history_answer(&text_items("m", 2)))
        .expect(3)
        .mount(&server)
        .await;

    let provider = provider(&server);
    for _ in 0..3 {
        assert_eq!(fetch(&provider).await.unwrap().fetched, 2);
    }
}

#[tokio::test]
async fn each_user_gets_a_token_of_their_own() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 2).await;
    history()
        .and(body_partial_json(json!({"userId": "alice"})))
        .and(header("ccmessaging-token", "ut-1"))
        .respond_with(history_answer(&[]))
        .expect(2)
        .mount(&server)
        .await;
    history()
        .and(body_partial_json(json!({"userId": "bob"})))
        .and(header("ccmessaging-token", "ut-2"))
        .respond_with(history_answer(&[]))
        .expect(2)
        .mount(&server)
        .await;

    let provider = provider(&server);
    for user in ["alice", "bob", "alice", "bob"] {
        provider.fetch_history(&query(user)).await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_callers_share_one_token_refresh() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(history_answer(&[]))
        .expect(8)
        .mount(&server)
        .await;

    let provider = Arc::new(provider(&server));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let provider = Arc::clone(&provider);
            tokio::spawn(async move { fetch(&provider).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn an_expired_access_token_is_replaced_before_use() {
    let server = MockServer::start().await;
    // Created 1000 s ago, living 600 s: due again at every call.
    mount_tokens_aged(&server, 2, 1, 1000).await;
    history()
        .and(header("authorization", "Bearer at-1"))
        .respond_with(history_answer(&[]))
        .expect(1)
        .mount(&server)
        .await;
    history()
        .and(header("authorization", "Bearer at-2"))
        .respond_with(history_answer(&[]))
        .expect(1)
        .mount(&server)
        .await;

    let provider = provider(&server);
    fetch(&provider).await.unwrap();
    fetch(&provider).await.unwrap();
}

#[tokio::test]
async fn a_403_refreshes_the_access_token_and_retries_once() {
    let server = MockServer::start().await;
    mount_tokens(&server, 2, 1).await;
    history()
        .and(header("authorization", "Bearer at-1"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "errorCode": "APIGW.0301",
            "exceptionInfo": "auth fail! please apply or refresh the access token from the server!",
        })))
        .expect(1)
        .mount(&server)
        .await;
    history()
        .and(header("authorization", "Bearer at-2"))
        .and(header("ccmessaging-token", "ut-1"))
        .respond_with(history_answer(&text_items("m", 1)))
        .expect(2)
        .mount(&server)
        .await;

    let provider = provider(&server);
    assert_eq!(fetch(&provider).await.unwrap().fetched, 1);
    // The refreshed token is cached for the next call.
    assert_eq!(fetch(&provider).await.unwrap().fetched, 1);
}

#[tokio::test]
async fn a_401_applies_for_a_new_user_token_and_retries_once() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 2).await;
    history()
        .and(header("ccmessaging-token", "ut-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    history()
        .and(header("ccmessaging-token", "ut-2"))
        .respond_with(history_answer(&text_items("m", 1)))
        .expect(2)
        .mount(&server)
        .await;

    let provider = provider(&server);
    assert_eq!(fetch(&provider).await.unwrap().fetched, 1);
    assert_eq!(fetch(&provider).await.unwrap().fetched, 1);
}

#[tokio::test]
async fn tokens_expired_together_are_each_refreshed_once() {
    let server = MockServer::start().await;
    mount_tokens(&server, 2, 2).await;
    history()
        .and(header("authorization", "Bearer at-1"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "errorCode": "403",
            "exceptionInfo": "auth fail! please apply or refresh the access token from the server!",
        })))
        .expect(1)
        .mount(&server)
        .await;
    history()
        .and(header("authorization", "Bearer at-2"))
        .and(header("ccmessaging-token", "ut-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    history()
        .and(header("authorization", "Bearer at-2"))
        .and(header("ccmessaging-token", "ut-2"))
        .respond_with(history_answer(&text_items("m", 1)))
        .expect(1)
        .mount(&server)
        .await;

    assert_eq!(fetch(&provider(&server)).await.unwrap().fetched, 1);
}

#[tokio::test]
async fn an_access_token_refused_after_its_refresh_is_unauthorized() {
    let server = MockServer::start().await;
    mount_tokens(&server, 2, 1).await;
    history()
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "errorCode": "403",
            "exceptionInfo": "auth fail! please apply or refresh the access token from the server!",
        })))
        .expect(2)
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unauthorized(_)), "{err:?}");
}

#[tokio::test]
async fn a_second_refusal_is_unauthorized() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 2).await;
    history()
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"resultCode": "1", "resultDesc": "token expired"})),
        )
        .expect(2)
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert_eq!(err, ProviderError::Unauthorized("token expired".into()));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn refused_app_credentials_are_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errorCode": "APIGW.0101",
            "exceptionInfo": "app_key or app_secret invalid",
        })))
        .expect(1)
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Unauthorized("app_key or app_secret invalid".into())
    );
}

#[tokio::test]
async fn a_token_handed_back_in_a_header_is_used_next() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .and(header("ccmessaging-token", "ut-1"))
        .respond_with(history_answer(&[]).insert_header("ccmessaging-token", "from-header-1"))
        .expect(1)
        .mount(&server)
        .await;
    history()
        .and(header("ccmessaging-token", "from-header-1"))
        .respond_with(history_answer(&[]))
        .expect(2)
        .mount(&server)
        .await;

    let provider = provider(&server);
    for _ in 0..3 {
        fetch(&provider).await.unwrap();
    }
}

#[tokio::test]
async fn pages_are_followed_until_a_short_one() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    for (offset, items) in [("0", 100), ("100", 100), ("200", 3)] {
        history()
            .and(body_partial_json(json!({"offset": offset, "limit": "100"})))
            .respond_with(history_answer(&text_items(&format!("p{offset}"), items)))
            .expect(1)
            .mount(&server)
            .await;
    }

    let provider = provider(&server);
    let mut q: HistoryQuery = query(USER);
    let mut tokens = Vec::new();
    let mut fetched = 0;
    loop {
        let page = provider.fetch_history(&q).await.unwrap();
        fetched += page.fetched;
        tokens.push(page.next_page.clone());
        match page.next_page {
            Some(next) => q.page = Some(next),
            None => break,
        }
    }
    assert_eq!(tokens, [Some("100".into()), Some("200".into()), None]);
    assert_eq!(fetched, 203);
}

#[tokio::test]
async fn result_code_one_is_a_retryable_failure() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messageList": [],
            "resultCode": "1",
            "resultDesc": "system busy",
        })))
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable(ref m) if m.contains("system busy")),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_500_is_retryable() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(ResponseTemplate::new(500).set_body_string("internal error"))
        .expect(1)
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_400_is_rejected_with_the_providers_reason() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorCode": "CCM.0400",
            "exceptionInfo": "userId is invalid",
        })))
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Rejected {
            code: Some("CCM.0400".into()),
            message: "userId is invalid".into()
        }
    );
}

#[tokio::test]
async fn a_404_is_rejected() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err:?}");
}

#[tokio::test]
async fn a_429_is_rate_limited() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3"))
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        }
    );
}

#[tokio::test]
async fn malformed_json_is_bad_data() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"messageList\": [ {"))
        .mount(&server)
        .await;

    let err = fetch(&provider(&server)).await.unwrap_err();
    assert!(matches!(err, ProviderError::BadData(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(history_answer(&[]).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;

    let provider = provider_with(&server, |c| c.request_timeout = Duration::from_millis(300));
    let err = fetch(&provider).await.unwrap_err();
    assert_eq!(err, ProviderError::Timeout);
}

#[tokio::test]
async fn a_dead_server_is_unavailable() {
    // A port nobody listens on (pooled mock servers live on after a drop).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = MockServer::start().await;
    let provider = provider_with(&server, |c| {
        c.base_url = format!("http://127.0.0.1:{port}").parse().unwrap();
    });

    let err = fetch(&provider).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn history_without_a_customer_is_rejected_before_any_call() {
    let server = MockServer::start().await;
    mount_tokens(&server, 0, 0).await;
    let provider = provider(&server);

    for customer in [None, Some(""), Some("1234567890123456789012345")] {
        let q = HistoryQuery {
            customer_id: customer.map(str::to_string),
            ..query(USER)
        };
        let err = provider.fetch_history(&q).await.unwrap_err();
        assert!(matches!(err, ProviderError::Rejected { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn an_unreadable_page_token_is_bad_data() {
    let server = MockServer::start().await;
    mount_tokens(&server, 0, 0).await;
    let q = HistoryQuery {
        page: Some("page-two".into()),
        ..query(USER)
    };
    let err = provider(&server).fetch_history(&q).await.unwrap_err();
    assert!(matches!(err, ProviderError::BadData(_)), "{err:?}");
}

#[tokio::test]
async fn debug_output_hides_the_credentials() {
    let server = MockServer::start().await;
    mount_tokens(&server, 1, 1).await;
    history()
        .respond_with(history_answer(&[]))
        .mount(&server)
        .await;
    let provider = provider(&server);
    fetch(&provider).await.unwrap();

    let shown = format!("{provider:?}");
    for secret in [APP_KEY, APP_SECRET, "at-1", "ut-1"] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
}
