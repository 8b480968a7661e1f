//! Only real change is an event, and every event that is not a creation says
//! what changed (API.md "Event"): `changes` maps each altered top-level field
//! of `data` to its previous value; re-reading unchanged provider data, in
//! any order, writes nothing and emits nothing. Store-level cases and
//! property tests on both backends, plus the same through the running API.

use std::collections::BTreeMap;
use std::time::Duration;

use chat_core::{
    Event, EventType, MessageKind, Participant, ProviderMessage, ProviderSession, Role, Sender,
    SessionChange, SessionStatus,
};
use chat_gateway::store::{
    AccountScope, EventQuery, MessageFilter, Order, PageRequest, SessionFilter, SqlStore, Store,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fixtures::*;
use crate::on_both_backends;
use crate::support::{api_key, Db, TestDb, TestGateway};

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

async fn events(store: &SqlStore) -> Vec<Event> {
    store.read_events(&all_events()).await.unwrap()
}

/// Every event's `changes` is null exactly on creations and a non-empty
/// object on everything else, never listing the unlisted fields.
fn assert_changes_well_formed(events: &[Event]) {
    for e in events {
        match e.event_type {
            EventType::SessionOpened | EventType::MessageCreated => {
                assert_eq!(e.changes, None, "{e:?}")
            }
            _ => {
                let c = e
                    .changes
                    .as_ref()
                    .and_then(Value::as_object)
                    .unwrap_or_else(|| panic!("no changes object: {e:?}"));
                assert!(!c.is_empty(), "empty changes: {e:?}");
                for k in ["updated_at", "message_count", "last_message_at"] {
                    assert!(!c.contains_key(k), "{k} listed: {e:?}");
                }
            }
        }
    }
}

async fn a_real_change_is_one_event_listing_previous_values(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
    let acc = account("spark-main");
    let first = change(
        session("S1", "C1"),
        vec![msg("S1", "m1", Role::Customer, "你好", t(0))],
    );
    store
        .ingest(&acc, std::slice::from_ref(&first), None)
        .await
        .unwrap();
    let seen = events(&store).await.len();

    let mut rated = session("S1", "C1");
    rated.rating = Some("满意".into());
    rated.customer.as_mut().unwrap().name = Some("王先生".into());
    let second = change(rated, vec![]);
    let s = store
        .ingest(&acc, std::slice::from_ref(&second), None)
        .await
        .unwrap();
    assert_eq!(s.events, 1);
    let all = events(&store).await;
    assert_eq!(all.len(), seen + 1);
    let e = all.last().unwrap();
    assert_eq!(e.event_type, EventType::SessionUpdated);
    assert_eq!(
        e.changes,
        Some(json!({
            "rating": null,
            "customer": {"external_id": "C1", "name": "访客C1", "avatar_url": null}
        }))
    );
    assert_eq!(e.data["rating"], "满意");

    // What the provider shows now, again, in one or two answers, in either
    // order: nothing.
    let now_shown = change(second.session.clone(), first.messages.clone());
    let bare = change(second.session.clone(), vec![]);
    for batch in [
        vec![second.clone()],
        vec![now_shown.clone(), bare.clone()],
        vec![bare, now_shown],
    ] {
        let again = store.ingest(&acc, &batch, None).await.unwrap();
        assert_eq!(
            (again.sessions_created, again.messages_created, again.events),
            (0, 0, 0)
        );
    }
    assert_eq!(events(&store).await.len(), seen + 1);

    // Closing lists exactly the fields a close moves.
    let mut closed = session("S1", "C1");
    closed.status = Some(SessionStatus::Closed);
    closed.closed_at = Some(t(30));
    closed.rating = Some("满意".into());
    closed.customer.as_mut().unwrap().name = Some("王先生".into());
    store
        .ingest(&acc, &[change(closed.clone(), vec![])], None)
        .await
        .unwrap();
    let e = events(&store).await.pop().unwrap();
    assert_eq!(e.event_type, EventType::SessionClosed);
    assert_eq!(
        e.changes,
        Some(json!({"status": "open", "closed_at": null}))
    );
    // A hand-over at the provider names the previous agent whole.
    let mut moved = closed;
    moved.agent = Some(Participant {
        external_id: Some("A9".into()),
        name: Some("小李".into()),
        avatar_url: None,
    });
    store
        .ingest(
            &acc,
            &[change(
                moved,
                vec![msg("S1", "m2", Role::Agent, "我来", t(40))],
            )],
            None,
        )
        .await
        .unwrap();
    let e = events(&store)
        .await
        .into_iter()
        .rfind(|e| e.event_type == EventType::SessionTransferred)
        .unwrap();
    assert_eq!(
        e.changes.as_ref().unwrap()["agent"],
        json!({"external_id": "A1", "name": "小王", "avatar_url": null})
    );
    assert_changes_well_formed(&events(&store).await);
}

async fn a_new_message_emits_no_session_updated(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = tdb.store().await;
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
    let seen = events(&store).await.len();
    // An agent's first reply moves the counters and first_response_at.
    store
        .ingest(
            &acc,
            &[change(
                session("S1", "C1"),
                vec![
                    msg("S1", "m2", Role::Agent, "在的", t(2)),
                    msg("S1", "m1", Role::Customer, "在吗", t(0)),
                ],
            )],
            None,
        )
        .await
        .unwrap();
    let all = events(&store).await;
    let new: Vec<EventType> = all[seen..].iter().map(|e| e.event_type).collect();
    assert_eq!(new, [EventType::MessageCreated]);
    let s = store
        .find_session("spark-main", "S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.message_count, 2);
    assert_eq!(s.last_message_at, Some(t(2)));
    assert_eq!(s.first_response_at, Some(t(2)));
    assert_changes_well_formed(&all);
}

async fn messages_in_another_order_are_stored_the_same(db: Db) {
    let a = TestDb::new(db).await;
    let b = TestDb::new(db).await;
    let (sa, sb) = (a.store().await, b.store().await);
    let acc = account("spark-main");
    let msgs = vec![
        msg("S1", "m1", Role::Customer, "一", t(5)),
        msg("S1", "m2", Role::Agent, "二", t(7)),
        msg("S1", "m3", Role::Agent, "三", t(6)),
        msg("S1", "m0", Role::Customer, "零", t(1)),
    ];
    let mut no_created = session("S1", "C1");
    no_created.created_at = None;
    for m in &msgs {
        sa.ingest(&acc, &[change(no_created.clone(), vec![m.clone()])], None)
            .await
            .unwrap();
    }
    for m in msgs.iter().rev() {
        sb.ingest(&acc, &[change(no_created.clone(), vec![m.clone()])], None)
            .await
            .unwrap();
    }
    let (x, y) = (snapshot(&sa).await, snapshot(&sb).await);
    assert_eq!(x, y);
    let s = &x.sessions["S1"];
    assert_eq!(s["created_at"], json!(chat_core::time::to_rfc3339(t(1))));
    assert_eq!(
        s["first_response_at"],
        json!(chat_core::time::to_rfc3339(t(6)))
    );
}

on_both_backends!(
    a_real_change_is_one_event_listing_previous_values,
    a_new_message_emits_no_session_updated,
    messages_in_another_order_are_stored_the_same,
);

// ---------------------------------------------------------------------------
// Property: replaying provider answers, as they came or shuffled, is silent.

/// What an account's data looks like, compared across databases: sessions
/// by provider id (without gateway ids and `updated_at`), messages by
/// provider id (without gateway ids).
#[derive(Debug, PartialEq)]
struct Snapshot {
    sessions: BTreeMap<String, Value>,
    messages: BTreeMap<String, Value>,
}

async fn snapshot(store: &SqlStore) -> Snapshot {
    let sessions = store
        .list_sessions(
            &SessionFilter::default(),
            &PageRequest {
                limit: 500,
                cursor: None,
                order: Order::Asc,
            },
        )
        .await
        .unwrap()
        .data;
    let ext_of: BTreeMap<String, String> = sessions
        .iter()
        .map(|s| (s.id.clone(), s.external_id.clone()))
        .collect();
    let sessions = sessions
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("id");
            o.remove("updated_at");
            (s.external_id, v)
        })
        .collect();
    let messages = store
        .list_messages(
            &MessageFilter::default(),
            &PageRequest {
                limit: 500,
                cursor: None,
                order: Order::Asc,
            },
        )
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|m| {
            let mut v = serde_json::to_value(&m).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("id");
            o.insert("session_id".into(), json!(ext_of[&m.session_id]));
            (m.external_id.clone().unwrap(), v)
        })
        .collect();
    Snapshot { sessions, messages }
}

/// The full rows as the API shows them, `updated_at` included: a replay
/// must not touch them at all.
async fn exact_rows(store: &SqlStore) -> (Vec<Value>, Vec<Value>) {
    let page = PageRequest {
        limit: 500,
        cursor: None,
        order: Order::Asc,
    };
    let s = store
        .list_sessions(&SessionFilter::default(), &page)
        .await
        .unwrap()
        .data;
    let m = store
        .list_messages(&MessageFilter::default(), &page)
        .await
        .unwrap()
        .data;
    (
        s.iter().map(|x| serde_json::to_value(x).unwrap()).collect(),
        m.iter().map(|x| serde_json::to_value(x).unwrap()).collect(),
    )
}

/// One session's facts as the provider knows them; every answer about it
/// shows some of them.
#[derive(Debug, Clone)]
struct Truth {
    closed: bool,
    agent: Option<u8>,
    customer_name: u8,
    rating: Option<u8>,
    channel: Option<u8>,
    created_at: Option<i64>,
    /// `(minute, role)` of each message (its id is its index).
    messages: Vec<(i64, u8)>,
}

/// One provider answer about a session: which facts it shows and which
/// messages it carries, in its order (repeats allowed).
#[derive(Debug, Clone)]
struct View {
    session: usize,
    shows: [bool; 6],
    messages: Vec<usize>,
}

fn truth() -> impl Strategy<Value = Truth> {
    (
        any::<bool>(),
        proptest::option::of(0u8..3),
        0u8..3,
        proptest::option::of(0u8..3),
        proptest::option::of(0u8..2),
        proptest::option::of(0i64..20),
        proptest::collection::vec((0i64..60, 0u8..3), 0..6),
    )
        .prop_map(
            |(closed, agent, customer_name, rating, channel, created_at, messages)| Truth {
                closed,
                agent,
                customer_name,
                rating,
                channel,
                // A session with no messages needs its start from the provider.
                created_at: if messages.is_empty() {
                    Some(created_at.unwrap_or(0))
                } else {
                    created_at
                },
                messages,
            },
        )
}

/// Sessions and batches of views of them.
fn scenario() -> impl Strategy<Value = (Vec<Truth>, Vec<Vec<View>>)> {
    proptest::collection::vec(truth(), 1..4).prop_flat_map(|truths| {
        let n = truths.len();
        let counts: Vec<usize> = truths.iter().map(|t| t.messages.len()).collect();
        let view = (0..n).prop_flat_map(move |s| {
            let max = counts[s];
            (
                Just(s),
                any::<[bool; 6]>(),
                if max == 0 {
                    proptest::collection::vec(0..1usize, 0..1).boxed()
                } else {
                    proptest::collection::vec(0..max, 0..8).boxed()
                },
            )
                .prop_map(|(session, shows, messages)| View {
                    session,
                    shows,
                    messages,
                })
        });
        (
            Just(truths),
            proptest::collection::vec(proptest::collection::vec(view, 1..4), 1..5),
        )
    })
}

fn ext(s: usize) -> String {
    format!("S{s}")
}

fn render(truths: &[Truth], v: &View) -> SessionChange {
    let t = &truths[v.session];
    let sid = ext(v.session);
    let show = |i: usize| v.shows[i];
    let session = ProviderSession {
        external_id: sid.clone(),
        status: show(0).then_some(if t.closed {
            SessionStatus::Closed
        } else {
            SessionStatus::Open
        }),
        // Whenever the answer says closed, it says since when.
        closed_at: (show(0) && t.closed).then(|| t_at(90)),
        agent: if show(1) {
            t.agent.map(|a| Participant {
                external_id: Some(format!("A{a}")),
                name: Some(format!("坐席{a}")),
                avatar_url: None,
            })
        } else {
            None
        },
        customer: show(2).then(|| Participant {
            external_id: Some(format!("C{}", v.session)),
            name: Some(format!("访客{}", t.customer_name)),
            avatar_url: None,
        }),
        rating: if show(3) {
            t.rating.map(|r| format!("r{r}"))
        } else {
            None
        },
        channel: if show(4) {
            t.channel
                .map(|c| ["web", "wechat"][usize::from(c)].to_string())
        } else {
            None
        },
        // An answer without messages always says when the session began
        // (else its start could only be guessed).
        created_at: if v.messages.is_empty() {
            Some(t_at(t.created_at.unwrap_or(0)))
        } else if show(5) {
            t.created_at.map(t_at)
        } else {
            None
        },
        ..Default::default()
    };
    let messages = v
        .messages
        .iter()
        .filter(|i| **i < t.messages.len())
        .map(|i| {
            let (minute, role) = t.messages[*i];
            let role = [Role::Customer, Role::Agent, Role::System][usize::from(role)];
            let id = format!("{sid}-m{i}");
            ProviderMessage {
                external_id: id.clone(),
                session_external_id: sid.clone(),
                sender: Sender::role_only(role),
                kind: MessageKind::Text,
                text: Some(format!("内容 {id}")),
                media: None,
                card: None,
                event: None,
                sent_at: t_at(minute),
                received_at: None,
                raw: json!({"Id": id}),
            }
        })
        .collect();
    SessionChange { session, messages }
}

fn t_at(minute: i64) -> chrono::DateTime<chrono::Utc> {
    t(minute)
}

/// A deterministic shuffle of batches and of the answers and messages in
/// them (proptest's own seed drives `key`).
fn shuffled(batches: &[Vec<SessionChange>], key: u64) -> Vec<Vec<SessionChange>> {
    let mut all: Vec<SessionChange> = batches.iter().flatten().cloned().collect();
    let mut state = key | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in (1..all.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        all.swap(i, j);
    }
    for c in &mut all {
        for i in (1..c.messages.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            c.messages.swap(i, j);
        }
    }
    // Regroup into batches of varying size.
    let mut out = Vec::new();
    while !all.is_empty() {
        let take = (1 + (next() % 3) as usize).min(all.len());
        out.push(all.drain(..take).collect());
    }
    out
}

async fn ingest_all(store: &SqlStore, batches: &[Vec<SessionChange>]) -> u64 {
    let acc = account("spark-main");
    let mut emitted = 0;
    for b in batches {
        emitted += store.ingest(&acc, b, None).await.unwrap().events;
    }
    emitted
}

/// Runs the replay property `cases` times, each on fresh databases.
fn replay_property(db: Db, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(scenario(), any::<u64>()), |((truths, views), key)| {
            rt.block_on(async {
                let batches: Vec<Vec<SessionChange>> = views
                    .iter()
                    .map(|b| b.iter().map(|v| render(&truths, v)).collect())
                    .collect();
                let tdb = TestDb::new(db).await;
                let store = tdb.store().await;
                ingest_all(&store, &batches).await;
                let first_events = events(&store).await;
                assert_changes_well_formed(&first_events);
                let rows = exact_rows(&store).await;

                // The same answers again, as they came, then shuffled.
                let replay = ingest_all(&store, &batches).await;
                let reshuffled = ingest_all(&store, &shuffled(&batches, key)).await;
                assert_eq!((replay, reshuffled), (0, 0), "a replay emitted events");
                assert_eq!(events(&store).await.len(), first_events.len());
                assert_eq!(exact_rows(&store).await, rows, "a replay changed rows");

                // Another database fed the shuffled answers ends up the same.
                let other = TestDb::new(db).await;
                let other_store = other.store().await;
                ingest_all(&other_store, &shuffled(&batches, key)).await;
                assert_changes_well_formed(&events(&other_store).await);
                assert_eq!(snapshot(&other_store).await, snapshot(&store).await);
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn replayed_or_shuffled_answers_are_silent_on_sqlite() {
    replay_property(Db::Sqlite, 48);
}

#[test]
fn replayed_or_shuffled_answers_are_silent_on_postgres() {
    replay_property(Db::Postgres, 6);
}

// ---------------------------------------------------------------------------
// Through the API: sends, delivery and session actions carry `changes`.

async fn api_events_carry_changes_for_sends_and_actions(db: Db) {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/query"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"Operation": []}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&mock)
        .await;
    for p in ["/session/close", "/session/restart", "/session/transfer"] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Code": 0})))
            .mount(&mock)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/message/send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"Code": 0, "Message": "ok", "SessionId": "S1", "MessageId": "M-1"}),
        ))
        .mount(&mock)
        .await;
    let (key, k) = api_key("ops", &["read", "write"], &["*"]);
    let toml = format!(
        "{k}[outbox]\nretry_base_ms = 20\npoll_interval_ms = 100\n\
         [[accounts]]\nname = \"spark-main\"\nprovider = \"spark\"\nbase_url = \"{}\"\n",
        mock.uri()
    );
    let gw = TestGateway::start(db, &toml).await;
    gw.store
        .ingest(
            &account("spark-main"),
            &[change(
                session("S1", "C1"),
                vec![msg("S1", "m1", Role::Customer, "你好", t(0))],
            )],
            None,
        )
        .await
        .unwrap();
    let sid = gw
        .store
        .find_session("spark-main", "S1")
        .await
        .unwrap()
        .unwrap()
        .id;
    let (status, body) = gw
        .post_raw(
            &format!("/v1/sessions/{sid}/messages"),
            Some(&key),
            r#"{"kind": "text", "text": "您好"}"#,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let mid = body["data"]["id"].as_str().unwrap().to_string();
    crate::support::wait_until(10, "the send is delivered", || async {
        let (_, m) = gw.get(&format!("/v1/messages/{mid}"), Some(&key)).await;
        m["data"]["delivery"]["status"] == "sent"
    })
    .await;
    for p in ["close", "restart"] {
        let (status, body) = gw
            .post_raw(&format!("/v1/sessions/{sid}/{p}"), Some(&key), "")
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = gw
        .post_raw(
            &format!("/v1/sessions/{sid}/transfer"),
            Some(&key),
            r#"{"agent_id": "A2"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Close, then close again: the second is refused and emits nothing.
    for expected in [200, 409] {
        let (status, body) = gw
            .post_raw(&format!("/v1/sessions/{sid}/close"), Some(&key), "")
            .await;
        assert_eq!(status, expected, "{body}");
    }

    let (status, feed) = gw.get("/v1/events?after=0&wait=0", Some(&key)).await;
    assert_eq!(status, 200, "{feed}");
    let list = feed["data"].as_array().unwrap();
    let types: Vec<&str> = list.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "session.opened",
            "message.created",
            "message.created",
            "message.updated",
            "session.closed",
            "session.reopened",
            "session.transferred",
            "session.closed",
        ]
    );
    for e in list {
        assert!(e.as_object().unwrap().contains_key("changes"), "{e}");
    }
    assert_eq!(list[0]["changes"], Value::Null);
    assert_eq!(list[2]["changes"], Value::Null);
    assert_eq!(
        list[3]["changes"],
        json!({"external_id": null,
               "delivery": {"status": "pending", "attempts": 0, "last_error": null}})
    );
    assert_eq!(list[3]["data"]["delivery"]["status"], "sent");
    assert_eq!(
        list[4]["changes"],
        json!({"status": "open", "closed_at": null})
    );
    let closed_at = list[4]["data"]["closed_at"].clone();
    assert!(closed_at.is_string());
    assert_eq!(
        list[5]["changes"],
        json!({"status": "closed", "closed_at": closed_at})
    );
    let transferred = list[6]["changes"].as_object().unwrap();
    assert_eq!(
        transferred["agent"],
        json!({"external_id": "A1", "name": "小王", "avatar_url": null})
    );
    assert!(transferred.contains_key("assigned_at"));
    gw.stop().await;
}

mod api {
    use super::*;
    on_both_backends!(api_events_carry_changes_for_sends_and_actions);
}
