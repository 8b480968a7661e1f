//! Lists as cursor-following streams, single reads, and typed errors.

use std::collections::HashSet;

use chat_gateway_client::{
    Client, Direction, ErrorCode, MessageFilter, NewMessage, Order, Provider, SessionFilter,
};
use futures_util::{StreamExt, TryStreamExt};

use crate::on_both_backends;
use crate::support::*;

async fn lists_follow_cursors_and_gets_read_one(db: Db) {
    let env = Env::start(db).await;
    let client = env.client();
    for n in 1..=5 {
        env.customer_session(&format!("L{n}"), &format!("第{n}条 hello"))
            .await;
    }
    // Pages of two: the stream must follow three cursors to see all five.
    let filter = SessionFilter {
        account: Some("spark".into()),
        limit: Some(2),
        order: Some(Order::Asc),
        ..SessionFilter::default()
    };
    let first = client.sessions_page(&filter, None).await.unwrap();
    assert_eq!(first.data.len(), 2);
    assert!(first.next_cursor.is_some());
    let all: Vec<_> = client.sessions(&filter).try_collect().await.unwrap();
    assert_eq!(all.len(), 5, "{all:?}");
    let ids: HashSet<&str> = all.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    let customers: Vec<_> = all
        .iter()
        .map(|s| s.customer.external_id.clone().unwrap())
        .collect();
    assert_eq!(customers, ["L1", "L2", "L3", "L4", "L5"]);
    for s in &all {
        assert_eq!(s.provider, Provider::Spark);
        let one = client.session(&s.id, false).await.unwrap();
        assert_eq!(&one, s);
    }
    // A session's messages, and the search across sessions.
    let msgs: Vec<_> = client
        .session_messages(&all[2].id, &MessageFilter::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].direction, Direction::Inbound);
    assert_eq!(msgs[0].text.as_deref(), Some("第3条 hello"));
    let found: Vec<_> = client
        .messages(&MessageFilter {
            q: Some("HELLO".into()),
            limit: Some(1),
            ..MessageFilter::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found.len(), 5);
    let one = client.message(&found[0].id, true).await.unwrap();
    assert!(one.raw.is_some(), "include=raw gives the provider's JSON");
    let accounts = client.accounts().await.unwrap();
    let names: Vec<_> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["spark", "ccm", "kchat"]);
    assert_eq!(
        client.account("kchat").await.unwrap().provider,
        Provider::Kchat
    );
}

async fn errors_are_typed_by_code(db: Db) {
    let env = Env::start(db).await;
    let client = env.client();
    let err = client.session("no-such-session", false).await.unwrap_err();
    let api = err.api().expect("an API error");
    assert_eq!(api.status.as_u16(), 404);
    assert_eq!(api.code, ErrorCode::NotFound);
    assert!(api.request_id.as_deref().is_some_and(|r| !r.is_empty()));
    assert!(!api.message.is_empty());
    // A bad query value: 400 invalid_request, yielded by the stream.
    let bad = SessionFilter {
        limit: Some(0),
        ..SessionFilter::default()
    };
    let first = client.sessions(&bad).next().await.unwrap().unwrap_err();
    assert_eq!(first.code(), Some(&ErrorCode::InvalidRequest));
    assert_eq!(first.api().unwrap().status.as_u16(), 400);
    // Unknown key: 401; a read-only key sending: 403.
    let stranger = Client::new(env.gw.base_url(), "cgw_wrong").unwrap();
    let err = stranger.accounts().await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::Unauthorized));
    let reader = Client::new(env.gw.base_url(), READ_KEY).unwrap();
    let err = reader
        .send_message("whatever", &NewMessage::text("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::Forbidden));
    assert_eq!(err.api().unwrap().status.as_u16(), 403);
}

on_both_backends!(
    lists_follow_cursors_and_gets_read_one,
    errors_are_typed_by_code
);
