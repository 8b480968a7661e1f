//! The adapter against a wiremock Kchat: auth, paging, dates, details and
//! every failure the error policy names.

use std::time::Duration;

use base64::Engine;
use chat_core::{
    Capability, HistoryQuery, Provider, ProviderError, SessionListQuery, SessionStatus,
};
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn list() -> wiremock::MockBuilder {
    Mock::given(method("GET")).and(path(LIST_PATH))
}

fn april() -> SessionListQuery {
    SessionListQuery {
        created_from: utc("2015-04-01T00:00:00Z"),
        created_to: Some(utc("2015-04-30T00:00:00Z")),
        page: None,
    }
}

#[tokio::test]
async fn capabilities_are_history_and_list_sessions() {
    let server = MockServer::start().await;
    let provider = provider(&server);
    assert_eq!(provider.name(), "kchat");
    let caps: Vec<Capability> = provider.capabilities().iter().collect();
    assert_eq!(caps, [Capability::History, Capability::ListSessions]);
}

#[tokio::test]
async fn an_api_token_signs_in_as_email_slash_token() {
    let server = MockServer::start().await;
    list()
        .and(header(
            "authorization",
            basic(&format!("{EMAIL}/token"), API_TOKEN),
        ))
        .respond_with(list_answer(&[], 0, None))
        .expect(1)
        .mount(&server)
        .await;

    provider(&server).list_sessions(&april()).await.unwrap();
}

#[tokio::test]
async fn a_password_signs_in_as_the_email() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(detail_path(290)))
        .and(header("authorization", basic(EMAIL, PASSWORD)))
        .respond_with(detail_answer(&seed_chat()))
        .expect(1)
        .mount(&server)
        .await;

    let provider = provider_with(&server, |c| {
        c.credential = provider_kchat::KchatCredential::Password(chat_core::Secret::new(PASSWORD));
    });
    provider.get_session("290").await.unwrap();
}

#[tokio::test]
async fn dates_are_sent_as_account_zone_days() {
    let server = MockServer::start().await;
    // 20:00 UTC is the next day in Shanghai; 15:59:59 UTC is still the same day.
    list()
        .and(query_param("start", "2026-01-02"))
        .and(query_param("end", "2026-01-31"))
        .and(query_param("per_page", "100"))
        .respond_with(list_answer(&[], 0, None))
        .expect(1)
        .mount(&server)
        .await;

    provider(&server)
        .list_sessions(&SessionListQuery {
            created_from: utc("2026-01-01T20:00:00Z"),
            created_to: Some(utc("2026-01-31T15:59:59Z")),
            page: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn list_pages_are_followed_to_the_end() {
    let server = MockServer::start().await;
    let page2 = format!(
        "{}{LIST_PATH}?start=2015-04-01&end=2015-04-30&per_page=2&page=2",
        server.uri()
    );
    let page3 = format!(
        "{}{LIST_PATH}?start=2015-04-01&end=2015-04-30&per_page=2&page=3",
        server.uri()
    );
    list()
        .and(query_param("start", "2015-04-01"))
        .and(query_param("end", "2015-04-30"))
        .and(query_param("per_page", "100"))
        .respond_with(list_answer(
            &[chat(1, json!({})), chat(2, json!({}))],
            5,
            Some(page2),
        ))
        .expect(1)
        .mount(&server)
        .await;
    list()
        .and(query_param("page", "2"))
        .respond_with(list_answer(
            &[chat(3, json!({})), chat(4, json!({}))],
            5,
            Some(page3),
        ))
        .expect(1)
        .mount(&server)
        .await;
    list()
        .and(query_param("page", "3"))
        .respond_with(list_answer(
            &[chat(5, json!({"status": "open", "end_at": null}))],
            5,
            None,
        ))
        .expect(1)
        .mount(&server)
        .await;

    let provider = provider(&server);
    let mut q = april();
    let mut ids = Vec::new();
    loop {
        let page = provider.list_sessions(&q).await.unwrap();
        assert_eq!(page.total, Some(5));
        ids.extend(page.sessions.iter().map(|s| s.external_id.clone()));
        match page.next_page {
            Some(next) => q.page = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
}

#[tokio::test]
async fn fingerprints_change_with_count_status_or_end() {
    let server = MockServer::start().await;
    let chats = [
        chat(1, json!({})),
        chat(2, json!({"message_count": 3})),
        chat(3, json!({"status": "open"})),
        chat(4, json!({"end_at": "2015-04-30 09:55:02"})),
        chat(5, json!({"rating": "good", "agent_id": 1})),
    ];
    list()
        .respond_with(list_answer(&chats, 5, None))
        .mount(&server)
        .await;

    let page = provider(&server).list_sessions(&april()).await.unwrap();
    let prints: Vec<String> = page
        .sessions
        .iter()
        .map(|s| s.fingerprint.clone().unwrap())
        .collect();
    assert_ne!(prints[0], prints[1]);
    assert_ne!(prints[0], prints[2]);
    assert_ne!(prints[0], prints[3]);
    assert_eq!(prints[0], prints[4], "other fields do not matter");
}

#[tokio::test]
async fn a_next_page_on_another_origin_is_refused() {
    let server = MockServer::start().await;
    list()
        .respond_with(list_answer(&[], 0, None))
        .expect(0)
        .mount(&server)
        .await;

    let q = SessionListQuery {
        page: Some("https://evil.example.com/apiv2/chats.json?page=2".into()),
        ..april()
    };
    let err = provider(&server).list_sessions(&q).await.unwrap_err();
    assert!(matches!(err, ProviderError::BadData(_)), "{err:?}");
}

#[tokio::test]
async fn detail_maps_the_chat_and_its_messages() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(detail_path(290)))
        .respond_with(detail_answer(&seed_chat()))
        .expect(1)
        .mount(&server)
        .await;

    let change = provider(&server).get_session("290").await.unwrap();
    assert_eq!(change.session.external_id, "290");
    assert_eq!(change.session.status, Some(SessionStatus::Closed));
    assert_eq!(change.session.closed_at, Some(utc("2015-04-30T01:55:01Z")));
    assert_eq!(change.messages.len(), 2);
}

#[tokio::test]
async fn an_unknown_chat_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(detail_path(404)))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": 40400, "message": "对话不存在"})),
        )
        .mount(&server)
        .await;

    let err = provider(&server).get_session("404").await.unwrap_err();
    assert_eq!(err, ProviderError::NotFound("对话不存在".into()));
}

#[tokio::test]
async fn bad_credentials_are_unauthorized() {
    let server = MockServer::start().await;
    list()
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": 40100, "message": "认证失败"})),
        )
        .mount(&server)
        .await;

    let err = provider(&server).list_sessions(&april()).await.unwrap_err();
    assert_eq!(err, ProviderError::Unauthorized("认证失败".into()));
}

#[tokio::test]
async fn a_429_carries_retry_after() {
    let server = MockServer::start().await;
    list()
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_json(json!({"error": 42900, "message": "too many requests"})),
        )
        .mount(&server)
        .await;

    let err = provider(&server).list_sessions(&april()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
}

#[tokio::test]
async fn other_client_errors_are_rejected_with_the_message() {
    let server = MockServer::start().await;
    list()
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"error": 40300, "message": "没有权限"})),
        )
        .mount(&server)
        .await;

    let err = provider(&server).list_sessions(&april()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Rejected {
            code: Some("40300".into()),
            message: "没有权限".into()
        }
    );
}

#[tokio::test]
async fn a_500_is_retryable() {
    let server = MockServer::start().await;
    list()
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"error": 50000, "message": "busy"})),
        )
        .mount(&server)
        .await;

    let err = provider(&server).list_sessions(&april()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable(ref m) if m.contains("busy")),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn malformed_json_is_bad_data() {
    let server = MockServer::start().await;
    list()
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"chats\": [ {"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(detail_path(1)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"chats": []})))
        .mount(&server)
        .await;
    let provider = provider(&server);

    let err = provider.list_sessions(&april()).await.unwrap_err();
    assert!(matches!(err, ProviderError::BadData(_)), "{err:?}");
    let err = provider.get_session("1").await.unwrap_err();
    assert!(matches!(err, ProviderError::BadData(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    list()
        .respond_with(list_answer(&[], 0, None).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;

    let provider = provider_with(&server, |c| c.request_timeout = Duration::from_millis(300));
    let err = provider.list_sessions(&april()).await.unwrap_err();
    assert_eq!(err, ProviderError::Timeout);
}

#[tokio::test]
async fn history_lists_the_range_and_reads_each_chat() {
    let server = MockServer::start().await;
    let page2 = format!("{}{LIST_PATH}?page=2&per_page=100", server.uri());
    list()
        .and(query_param("visitor_id", "547"))
        .and(query_param("start", "2015-04-25"))
        .and(query_param("end", "2015-04-26"))
        .respond_with(list_answer(
            &[chat(290, json!({})), chat(291, json!({}))],
            3,
            Some(page2),
        ))
        .expect(1)
        .mount(&server)
        .await;
    list()
        .and(query_param("page", "2"))
        .respond_with(list_answer(&[chat(292, json!({}))], 3, None))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(detail_path(290)))
        .respond_with(detail_answer(&seed_chat()))
        .expect(1)
        .mount(&server)
        .await;
    // Deleted between the list and the detail: skipped, not fatal.
    Mock::given(method("GET"))
        .and(path(detail_path(291)))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"error": 40400, "message": "gone"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let last = chat(
        292,
        json!({"messages": [message(5001, "chat.msg", json!({"chat_id": 292})), json!({"bad": true})]}),
    );
    Mock::given(method("GET"))
        .and(path(detail_path(292)))
        .respond_with(detail_answer(&last))
        .expect(1)
        .mount(&server)
        .await;

    let provider = provider(&server);
    let mut q = HistoryQuery {
        customer_id: Some("547".into()),
        from: utc("2015-04-25T00:00:00Z"),
        to: Some(utc("2015-04-26T00:00:00Z")),
        page: None,
    };
    let first = provider.fetch_history(&q).await.unwrap();
    assert_eq!(first.changes.len(), 1);
    assert_eq!(first.changes[0].session.external_id, "290");
    assert_eq!(first.fetched, 2);
    q.page = first.next_page;
    let second = provider.fetch_history(&q).await.unwrap();
    assert_eq!(second.changes[0].messages.len(), 1);
    assert_eq!(second.fetched, 2, "the unmappable item is counted as read");
    assert_eq!(second.next_page, None);
}

#[tokio::test]
async fn history_stops_at_a_failing_detail() {
    let server = MockServer::start().await;
    list()
        .respond_with(list_answer(&[chat(290, json!({}))], 1, None))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(detail_path(290)))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;

    let q = HistoryQuery {
        customer_id: None,
        from: utc("2015-04-25T00:00:00Z"),
        to: None,
        page: None,
    };
    let err = provider(&server).fetch_history(&q).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn debug_output_hides_the_credentials() {
    let server = MockServer::start().await;
    let shown = format!("{:?}", provider(&server));
    assert!(!shown.contains(API_TOKEN), "{shown}");
    let shown = format!(
        "{:?}",
        provider_with(&server, |c| {
            c.credential =
                provider_kchat::KchatCredential::Password(chat_core::Secret::new(PASSWORD));
        })
    );
    assert!(!shown.contains(PASSWORD), "{shown}");
}
