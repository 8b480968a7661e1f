//! A live webhook delivery checked with `verify_webhook`.

use std::time::Duration;

use chat_gateway_client::{verify_webhook, NewWebhook, WebhookError};
use futures_util::TryStreamExt;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::on_both_backends;
use crate::support::*;

async fn a_live_delivery_verifies_with_the_secret(db: Db) {
    let env = Env::start(db).await;
    let client = env.client();
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let created = client
        .create_webhook(&NewWebhook {
            url: format!("{}/hook", receiver.uri()),
            events: vec!["message.created".into()],
            accounts: vec!["*".into()],
        })
        .await
        .unwrap();
    assert!(created.secret.starts_with("whsec_"));
    let listed: Vec<_> = client.webhooks().try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.webhook.id);
    inject(&env.control(), "W1", "webhook me");
    let mut requests = Vec::new();
    for _ in 0..200 {
        requests = receiver.received_requests().await.unwrap_or_default();
        if !requests.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let req = requests.first().expect("no delivery arrived");
    assert_eq!(
        verify_webhook(&created.secret, &req.headers, &req.body),
        Ok(())
    );
    // Any other secret, or a changed body, is refused.
    let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(
        verify_webhook(other, &req.headers, &req.body),
        Err(WebhookError::NoMatchingSignature)
    );
    let mut tampered = req.body.clone();
    tampered.push(b' ');
    assert_eq!(
        verify_webhook(&created.secret, &req.headers, &tampered),
        Err(WebhookError::NoMatchingSignature)
    );
    let attempts: Vec<_> = client
        .webhook_deliveries(&created.webhook.id)
        .try_collect()
        .await
        .unwrap();
    assert!(!attempts.is_empty());
    client.delete_webhook(&created.webhook.id).await.unwrap();
    let err = client.webhook(&created.webhook.id).await.unwrap_err();
    assert_eq!(err.code(), Some(&chat_gateway_client::ErrorCode::NotFound));
}

on_both_backends!(a_live_delivery_verifies_with_the_secret);
