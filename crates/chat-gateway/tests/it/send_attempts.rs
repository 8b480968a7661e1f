//! `delivery.attempts` counts every provider call, including one whose
//! answer was lost because its claimer died (kill -9 mid-send): the call is
//! counted when the row is claimed, before it is made.

use std::time::Duration;

use chat_core::{
    Delivery, DeliveryStatus, Direction, Message, MessageKind, ProviderMessage, Role, SendReceipt,
    Sender,
};
use chat_gateway::store::{
    ActionStore, DeliveryResult, EnqueueOutcome, NewSend, OutboxKind, OutboxPayload, SqlStore,
    Store,
};
use chrono::Utc;
use serde_json::json;

use crate::fixtures::*;
use crate::on_both_backends;
use crate::support::{Db, TestDb};

const LEASE: Duration = Duration::from_secs(60);

/// Stores session `S1` and a pending send of "您好" into it; returns the
/// message id.
async fn pending_send(store: &SqlStore) -> String {
    let acc = account("spark-main");
    store
        .ingest(
            &acc,
            &[change(
                session("S1", "C1"),
                vec![msg("S1", "m1", Role::Customer, "在吗", t(0))],
            )],
            None,
        )
        .await
        .unwrap();
    let session_id = store
        .find_session("spark-main", "S1")
        .await
        .unwrap()
        .unwrap()
        .id;
    let now = Utc::now();
    let message = Message {
        id: "msg_attempts_1".into(),
        session_id,
        provider: "spark".into(),
        account: "spark-main".into(),
        external_id: None,
        direction: Direction::Outbound,
        sender: Sender::role_only(Role::Agent),
        kind: MessageKind::Text,
        text: Some("您好".into()),
        media: None,
        card: None,
        event: None,
        sent_at: now,
        received_at: None,
        delivery: Some(Delivery {
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
        }),
        raw: None,
    };
    let send = NewSend {
        message: message.clone(),
        kind: OutboxKind::Send,
        payload: OutboxPayload {
            customer_id: "C1".into(),
            kind: MessageKind::Text,
            text: Some("您好".into()),
            media_url: None,
            created_at: now,
        },
        new_session: None,
        idempotency: None,
    };
    let stored = store.enqueue_send(&send).await.unwrap();
    assert!(matches!(stored, EnqueueOutcome::Stored(_)), "{stored:?}");
    message.id
}

async fn a_call_whose_answer_was_lost_still_counts(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let id = pending_send(&store).await;
    // The first claimer calls the provider and dies with the answer.
    let first = store
        .claim_outbox(Utc::now(), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.message_id, id);
    // Its lease ends; the next claimer sends again and is answered.
    let later = Utc::now() + chrono::Duration::seconds(61);
    let second = store.claim_outbox(later, LEASE).await.unwrap().unwrap();
    assert_eq!(second.pk, first.pk);
    let done = store
        .finish_delivery(
            &second,
            &DeliveryResult::Accepted(SendReceipt {
                message_external_id: Some("M-1".into()),
                session_external_id: Some("S1".into()),
            }),
        )
        .await
        .unwrap()
        .unwrap();
    let d = done.delivery.unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Sent, 2));
}

async fn a_send_confirmed_by_its_echo_shows_its_call(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let id = pending_send(&store).await;
    // The claimer calls the provider, which accepts; the claimer dies first.
    let first = store
        .claim_outbox(Utc::now(), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.message_id, id);
    // The provider's echo arrives and is matched to the send.
    let mut echo_session = session("S1", "C1");
    echo_session.agent = None;
    let echo = ProviderMessage {
        external_id: "M-9".into(),
        session_external_id: "S1".into(),
        sender: Sender::role_only(Role::Agent),
        kind: MessageKind::Text,
        text: Some("您好".into()),
        media: None,
        card: None,
        event: None,
        sent_at: Utc::now(),
        received_at: None,
        raw: json!({"Id": "M-9"}),
    };
    let s = store
        .ingest(
            &account("spark-main"),
            &[change(echo_session, vec![echo])],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        s.messages_created, 0,
        "the echo is the send, not a new message"
    );
    // The next claimer finds it delivered and makes no call.
    let later = Utc::now() + chrono::Duration::seconds(61);
    let second = store.claim_outbox(later, LEASE).await.unwrap().unwrap();
    assert_eq!(second.message_external_id.as_deref(), Some("M-9"));
    let done = store
        .finish_delivery(&second, &DeliveryResult::AlreadyDelivered)
        .await
        .unwrap()
        .unwrap();
    let d = done.delivery.unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Sent, 1));
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
}

on_both_backends!(
    a_call_whose_answer_was_lost_still_counts,
    a_send_confirmed_by_its_echo_shows_its_call,
);
