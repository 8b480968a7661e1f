//! The shared store suite: every test runs on SQLite and on PostgreSQL.

use crate::fixtures::*;
use crate::on_both_backends;
use crate::support::{Db, TestDb};
use chat_core::{EventType, Role, SessionStatus};
use chat_gateway::store::{
    AccountScope, EventQuery, MessageFilter, Order, PageRequest, SessionFilter, Store, StoreError,
};

fn page(limit: u32, order: Order, cursor: Option<String>) -> PageRequest {
    PageRequest {
        limit,
        cursor,
        order,
    }
}

fn all_events() -> EventQuery {
    EventQuery {
        after: 0,
        limit: 1000,
        types: vec![],
        account: None,
        scope: AccountScope::All,
        until: None,
    }
}

async fn event_types(store: &dyn Store) -> Vec<EventType> {
    store
        .read_events(&all_events())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn ingest_stores_rows_and_one_event_per_change(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let acc = account("spark-main");
    let c = change(
        session("S1", "C1"),
        vec![
            msg("S1", "m1", Role::Customer, "你好，在吗？", t(0)),
            msg("S1", "m2", Role::Agent, "您好 😀", t(1)),
        ],
    );
    let s = store
        .ingest(&acc, std::slice::from_ref(&c), Some("v-m2"))
        .await
        .unwrap();
    assert_eq!(
        (s.sessions_created, s.messages_created, s.events),
        (1, 2, 3)
    );
    assert_eq!(
        event_types(store.as_ref()).await,
        vec![
            EventType::SessionOpened,
            EventType::MessageCreated,
            EventType::MessageCreated
        ]
    );
    let sess = store
        .find_session("spark-main", "S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sess.message_count, 2);
    assert_eq!(sess.created_at, t(0));
    assert_eq!(sess.last_message_at, Some(t(1)));
    assert_eq!(sess.first_response_at, Some(t(1)));
    assert_eq!(sess.customer.name.as_deref(), Some("访客C1"));
    assert_eq!(
        store.sync_state(&acc).await.unwrap().cursor.as_deref(),
        Some("v-m2")
    );

    // Re-delivery: nothing changes, nothing is written.
    let again = store.ingest(&acc, &[c], None).await.unwrap();
    assert_eq!(
        (again.sessions_created, again.messages_created, again.events),
        (0, 0, 0)
    );
    assert_eq!(store.read_events(&all_events()).await.unwrap().len(), 3);
    let same = store
        .get_session(&sess.id, &AccountScope::All)
        .await
        .unwrap();
    assert_eq!(same.updated_at, sess.updated_at);
    assert_eq!(same.message_count, 2);

    // Text round-trips byte for byte.
    let msgs = store
        .list_messages(
            &MessageFilter {
                session_id: Some(sess.id.clone()),
                ..Default::default()
            },
            &page(50, Order::Asc, None),
        )
        .await
        .unwrap();
    assert_eq!(msgs.data[0].text.as_deref(), Some("你好，在吗？"));
    assert_eq!(msgs.data[1].text.as_deref(), Some("您好 😀"));
}

async fn same_external_id_in_two_accounts_is_two_rows(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let c = change(
        session("S1", "C1"),
        vec![msg("S1", "m1", Role::Customer, "hi", t(0))],
    );
    store
        .ingest(&account("a"), std::slice::from_ref(&c), None)
        .await
        .unwrap();
    store.ingest(&account("b"), &[c], None).await.unwrap();
    let all = store
        .list_sessions(&SessionFilter::default(), &page(50, Order::Asc, None))
        .await
        .unwrap();
    assert_eq!(all.data.len(), 2);
    let scoped = store
        .list_sessions(
            &SessionFilter {
                scope: AccountScope::Only(vec!["b".into()]),
                ..Default::default()
            },
            &page(50, Order::Asc, None),
        )
        .await
        .unwrap();
    assert_eq!(scoped.data.len(), 1);
    assert_eq!(scoped.data[0].account, "b");
    let hidden = store
        .get_session(&all.data[0].id, &AccountScope::Only(vec!["nobody".into()]))
        .await;
    assert!(matches!(hidden, Err(StoreError::NotFound)));
}

async fn status_changes_emit_close_reopen_and_transfer(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let acc = account("spark-main");
    store
        .ingest(
            &acc,
            &[change(
                session("S1", "C1"),
                vec![msg("S1", "m1", Role::Agent, "a", t(1))],
            )],
            None,
        )
        .await
        .unwrap();
    let mut closed = session("S1", "C1");
    closed.status = Some(SessionStatus::Closed);
    store
        .ingest(&acc, &[change(closed.clone(), vec![])], None)
        .await
        .unwrap();
    // A second DelSession changes nothing.
    store
        .ingest(&acc, &[change(closed, vec![])], None)
        .await
        .unwrap();
    let s = store
        .find_session("spark-main", "S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.status, SessionStatus::Closed);
    assert!(s.closed_at.is_some());

    let mut reopened = session("S1", "C1");
    reopened.agent.as_mut().unwrap().external_id = Some("A2".into());
    store
        .ingest(
            &acc,
            &[change(
                reopened,
                vec![msg("S1", "m2", Role::Agent, "b", chrono::Utc::now())],
            )],
            None,
        )
        .await
        .unwrap();
    let s = store
        .find_session("spark-main", "S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.status, SessionStatus::Open);
    assert_eq!(s.closed_at, None);
    assert_eq!(s.agent.unwrap().external_id.as_deref(), Some("A2"));
    assert_eq!(
        event_types(store.as_ref()).await,
        vec![
            EventType::SessionOpened,
            EventType::MessageCreated,
            EventType::SessionClosed,
            EventType::SessionReopened,
            EventType::SessionTransferred,
            EventType::MessageCreated,
        ]
    );
    // The new agent's first message counts from the hand-over (ingest time),
    // so an agent message stamped before it does not count.
    assert_eq!(s.first_response_at, None);
}

async fn session_filters_orders_and_pages_stay_stable(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let acc = account("spark-main");
    for i in 0..7 {
        let mut s = session(&format!("S{i}"), &format!("C{}", i % 2));
        s.created_at = Some(t(i));
        s.channel = Some(if i % 3 == 0 { "wechat" } else { "web" }.into());
        if i == 6 {
            s.status = Some(SessionStatus::Closed);
        }
        store
            .ingest(&acc, &[change(s, vec![])], None)
            .await
            .unwrap();
    }
    let walk = |order: Order, filter: SessionFilter| {
        let store = store.clone();
        async move {
            let mut seen = Vec::new();
            let mut cursor = None;
            let mut inserted = false;
            loop {
                let p = store
                    .list_sessions(&filter, &page(2, order, cursor))
                    .await
                    .unwrap();
                seen.extend(p.data.iter().map(|s| s.external_id.clone()));
                if !inserted {
                    // Rows arriving mid-walk at either end do not shift pages.
                    for (ext, at) in [("Snew-late", t(100)), ("Snew-early", t(-100))] {
                        let mut s = session(ext, "C9");
                        s.created_at = Some(at);
                        store
                            .ingest(&account("other"), &[change(s, vec![])], None)
                            .await
                            .unwrap();
                    }
                    inserted = true;
                }
                match p.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            seen
        }
    };
    let scoped = |f: SessionFilter| SessionFilter {
        account: Some("spark-main".into()),
        ..f
    };
    assert_eq!(
        walk(Order::Asc, scoped(SessionFilter::default())).await,
        ["S0", "S1", "S2", "S3", "S4", "S5", "S6"]
    );
    assert_eq!(
        walk(Order::Desc, scoped(SessionFilter::default())).await,
        ["S6", "S5", "S4", "S3", "S2", "S1", "S0"]
    );
    let f = |f: SessionFilter| walk(Order::Asc, scoped(f));
    assert_eq!(
        f(SessionFilter {
            customer_id: Some("C1".into()),
            ..Default::default()
        })
        .await,
        ["S1", "S3", "S5"]
    );
    assert_eq!(
        f(SessionFilter {
            channel: Some("wechat".into()),
            ..Default::default()
        })
        .await,
        ["S0", "S3", "S6"]
    );
    assert_eq!(
        f(SessionFilter {
            status: Some(SessionStatus::Closed),
            ..Default::default()
        })
        .await,
        ["S6"]
    );
    assert_eq!(
        f(SessionFilter {
            external_id: Some("S4".into()),
            ..Default::default()
        })
        .await,
        ["S4"]
    );
    assert_eq!(
        f(SessionFilter {
            agent_id: Some("A1".into()),
            ..Default::default()
        })
        .await
        .len(),
        7
    );
    assert_eq!(
        f(SessionFilter {
            agent_id: Some("A9".into()),
            ..Default::default()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        f(SessionFilter {
            created_after: Some(t(2)),
            created_before: Some(t(5)),
            ..Default::default()
        })
        .await,
        ["S2", "S3", "S4"]
    );
    assert_eq!(
        f(SessionFilter {
            provider: Some("kchat".into()),
            ..Default::default()
        })
        .await
        .len(),
        0
    );
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(
        f(SessionFilter {
            updated_after: Some(later),
            ..Default::default()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        f(SessionFilter {
            updated_after: Some(t(0)),
            ..Default::default()
        })
        .await
        .len(),
        7
    );
}

async fn message_filters_search_and_provider_order(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let acc = account("spark-main");
    // Three messages with the same sent_at keep delivery order.
    let c = change(
        session("S1", "C1"),
        vec![
            msg("S1", "z-first", Role::Customer, "请问退款要多久？", t(0)),
            msg("S1", "a-second", Role::Agent, "Refund takes 3 DAYS", t(0)),
            msg("S1", "m-third", Role::Bot, "50% off_today", t(0)),
            msg("S1", "later", Role::Customer, "好的，谢谢退款", t(2)),
        ],
    );
    store.ingest(&acc, &[c], None).await.unwrap();
    store
        .ingest(
            &account("b"),
            &[change(
                session("S2", "C2"),
                vec![msg("S2", "x", Role::Customer, "退款", t(1))],
            )],
            None,
        )
        .await
        .unwrap();
    let list = |f: MessageFilter, order: Order| {
        let store = store.clone();
        async move {
            let mut out = Vec::new();
            let mut cursor = None;
            loop {
                let p = store
                    .list_messages(&f, &page(1, order, cursor))
                    .await
                    .unwrap();
                out.extend(p.data.into_iter().map(|m| m.external_id.unwrap()));
                match p.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break out,
                }
            }
        }
    };
    let mine = |f: MessageFilter| MessageFilter {
        account: Some("spark-main".into()),
        ..f
    };
    assert_eq!(
        list(mine(MessageFilter::default()), Order::Asc).await,
        ["z-first", "a-second", "m-third", "later"]
    );
    assert_eq!(
        list(mine(MessageFilter::default()), Order::Desc).await,
        ["later", "m-third", "a-second", "z-first"]
    );
    assert_eq!(
        list(
            MessageFilter {
                q: Some("退款".into()),
                ..Default::default()
            },
            Order::Asc
        )
        .await,
        ["z-first", "x", "later"]
    );
    assert_eq!(
        list(
            MessageFilter {
                q: Some("days".into()),
                ..Default::default()
            },
            Order::Asc
        )
        .await,
        ["a-second"]
    );
    // `%` and `_` are literal, not wildcards.
    assert_eq!(
        list(
            MessageFilter {
                q: Some("50%".into()),
                ..Default::default()
            },
            Order::Asc
        )
        .await,
        ["m-third"]
    );
    assert_eq!(
        list(
            MessageFilter {
                q: Some("5_%".into()),
                ..Default::default()
            },
            Order::Asc
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        list(
            mine(MessageFilter {
                direction: Some(chat_core::Direction::Inbound),
                ..Default::default()
            }),
            Order::Asc
        )
        .await,
        ["z-first", "later"]
    );
    assert_eq!(
        list(
            MessageFilter {
                customer_id: Some("C2".into()),
                ..Default::default()
            },
            Order::Asc
        )
        .await,
        ["x"]
    );
    assert_eq!(
        list(
            MessageFilter {
                external_id: Some("later".into()),
                ..Default::default()
            },
            Order::Asc
        )
        .await,
        ["later"]
    );
    assert_eq!(
        list(
            MessageFilter {
                kind: Some(chat_core::MessageKind::Image),
                ..Default::default()
            },
            Order::Asc
        )
        .await
        .len(),
        0
    );
    assert_eq!(
        list(
            MessageFilter {
                provider: Some("spark".into()),
                sent_after: Some(t(1)),
                sent_before: Some(t(2)),
                ..Default::default()
            },
            Order::Asc
        )
        .await,
        ["x"]
    );
}

async fn event_feed_filters_and_retention(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    store
        .ingest(
            &account("a"),
            &[change(
                session("S1", "C1"),
                vec![msg("S1", "m1", Role::Customer, "hi", t(0))],
            )],
            None,
        )
        .await
        .unwrap();
    store
        .ingest(
            &account("b"),
            &[change(
                session("S2", "C2"),
                vec![msg("S2", "m2", Role::Customer, "yo", t(0))],
            )],
            None,
        )
        .await
        .unwrap();
    let all = store.read_events(&all_events()).await.unwrap();
    assert_eq!(all.len(), 4);
    let seqs: Vec<i64> = all.iter().map(|e| e.seq.parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(store.latest_seq().await.unwrap(), seqs[3]);
    let after_first = store
        .read_events(&EventQuery {
            after: seqs[0],
            ..all_events()
        })
        .await
        .unwrap();
    assert_eq!(after_first.len(), 3);
    let only_b_msgs = store
        .read_events(&EventQuery {
            types: vec![EventType::MessageCreated],
            account: Some("b".into()),
            ..all_events()
        })
        .await
        .unwrap();
    assert_eq!(only_b_msgs.len(), 1);
    assert_eq!(only_b_msgs[0].data["text"], "yo");

    // Retention: everything is older than "the future".
    let future = chrono::Utc::now().timestamp_micros() + 1_000_000;
    assert_eq!(store.prune_events(future).await.unwrap(), 4);
    assert!(matches!(
        store
            .read_events(&EventQuery {
                after: seqs[1],
                ..all_events()
            })
            .await,
        Err(StoreError::CursorExpired)
    ));
    // From the oldest retained (none) and from the newest seen are fine.
    assert!(store.read_events(&all_events()).await.unwrap().is_empty());
    assert!(store
        .read_events(&EventQuery {
            after: seqs[3],
            ..all_events()
        })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.latest_seq().await.unwrap(), seqs[3]);
}

on_both_backends!(
    ingest_stores_rows_and_one_event_per_change,
    same_external_id_in_two_accounts_is_two_rows,
    status_changes_emit_close_reopen_and_transfer,
    session_filters_orders_and_pages_stay_stable,
    message_filters_search_and_provider_order,
    event_feed_filters_and_retention,
);

/// PostgreSQL text refuses NUL; a provider message holding one is stored
/// without it instead of jamming the sync worker.
async fn nul_characters_from_a_provider_are_dropped_not_fatal(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let mut m = msg("S\u{0}1", "m\u{0}1", Role::Customer, "he\u{0}llo", t(0));
    m.raw = serde_json::json!({"Content": "he\u{0}llo"});
    let s = store
        .ingest(
            &account("a"),
            &[change(session("S\u{0}1", "C1"), vec![m])],
            None,
        )
        .await
        .unwrap();
    assert_eq!(s.messages_created, 1);
    let page = store
        .list_messages(
            &MessageFilter {
                include_raw: true,
                ..Default::default()
            },
            &page(10, Order::Asc, None),
        )
        .await
        .unwrap();
    assert_eq!(page.data[0].text.as_deref(), Some("hello"));
    assert_eq!(page.data[0].external_id.as_deref(), Some("m1"));
    assert_eq!(page.data[0].raw.as_ref().unwrap()["Content"], "he\u{0}llo");
}

mod nul {
    use super::*;
    on_both_backends!(nul_characters_from_a_provider_are_dropped_not_fatal);
}

/// A redelivered provider view from before a close or a hand-over (Spark
/// re-sends unacked messages with the agent and status of their time) must
/// not reopen the session or hand it back.
async fn stale_redelivery_neither_reopens_nor_hands_back(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let acc = account("spark-main");
    let old = msg("S1", "m1", Role::Customer, "早上好", t(0));
    store
        .ingest(
            &acc,
            &[change(session("S1", "C1"), vec![old.clone()])],
            None,
        )
        .await
        .unwrap();
    // A hand-over to A2 seen now, then the session closes.
    let mut handed = session("S1", "C1");
    handed.agent.as_mut().unwrap().external_id = Some("A2".into());
    store
        .ingest(&acc, &[change(handed, vec![])], None)
        .await
        .unwrap();
    let mut closed = session("S1", "C1");
    closed.agent = None;
    closed.status = Some(SessionStatus::Closed);
    store
        .ingest(&acc, &[change(closed, vec![])], None)
        .await
        .unwrap();
    let before = store.read_events(&all_events()).await.unwrap().len();
    // The old message comes again, in an AddSession naming the old agent.
    store
        .ingest(&acc, &[change(session("S1", "C1"), vec![old])], None)
        .await
        .unwrap();
    let s = store
        .find_session("spark-main", "S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.status, SessionStatus::Closed);
    assert_eq!(s.agent.unwrap().external_id.as_deref(), Some("A2"));
    assert_eq!(
        store.read_events(&all_events()).await.unwrap().len(),
        before,
        "no event for a stale view"
    );
    // A genuinely new message after the close does reopen it.
    let fresh = msg("S1", "m2", Role::Customer, "还在吗", chrono::Utc::now());
    store
        .ingest(&acc, &[change(session("S1", "C1"), vec![fresh])], None)
        .await
        .unwrap();
    assert_eq!(
        store
            .find_session("spark-main", "S1")
            .await
            .unwrap()
            .unwrap()
            .status,
        SessionStatus::Open
    );
}

mod stale {
    use super::*;
    on_both_backends!(stale_redelivery_neither_reopens_nor_hands_back);
}
