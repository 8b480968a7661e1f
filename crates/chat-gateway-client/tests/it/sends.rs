//! Idempotent sends and session actions through the client.

use std::time::Duration;

use chat_gateway_client::{DeliveryStatus, ErrorCode, NewMessage, SessionStatus};

use crate::on_both_backends;
use crate::support::*;

async fn sends_are_idempotent_and_actions_act(db: Db) {
    let env = Env::start(db).await;
    let client = env.client();
    let session = env.customer_session("S1", "在吗？").await;
    let msg = NewMessage::text("您好，请稍等 🙂");
    let a = client
        .send_message_with_key(&session.id, &msg, "order-42-reply")
        .await
        .unwrap();
    let b = client
        .send_message_with_key(&session.id, &msg, "order-42-reply")
        .await
        .unwrap();
    assert_eq!(a.id, b.id, "a repeated key returns the same message");
    assert_eq!(a.text.as_deref(), Some("您好，请稍等 🙂"));
    // The same key with another body is refused.
    let err = client
        .send_message_with_key(&session.id, &NewMessage::text("other"), "order-42-reply")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::IdempotencyKeyReused));
    // Without a key the client makes one: a new message each call.
    let c = client.send_message(&session.id, &msg).await.unwrap();
    assert_ne!(c.id, a.id);
    // Both are delivered; the repeated one exactly once.
    for id in [&a.id, &c.id] {
        let mut status = None;
        for _ in 0..200 {
            let m = client.message(id, false).await.unwrap();
            status = m.delivery.map(|d| d.status);
            if status != Some(DeliveryStatus::Pending) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, Some(DeliveryStatus::Sent), "{id}");
    }
    let accepted = env
        .control()
        .spark_received()
        .unwrap()
        .sends
        .iter()
        .filter(|s| s.code == 0 && s.content == "您好，请稍等 🙂")
        .count();
    assert_eq!(accepted, 2);
    // A session action, then one the closed session refuses.
    let closed = client.close_session(&session.id).await.unwrap();
    assert_eq!(closed.status, SessionStatus::Closed);
    assert!(closed.closed_at.is_some());
    let err = client.send_message(&session.id, &msg).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidState));
    assert_eq!(err.api().unwrap().status.as_u16(), 409);
}

on_both_backends!(sends_are_idempotent_and_actions_act);
