//! Small builders for provider data used across tests.

use chat_core::{
    MessageKind, Participant, ProviderMessage, ProviderSession, Role, Sender, SessionChange,
    SessionStatus,
};
use chat_gateway::store::AccountRef;
use chrono::{DateTime, Duration, TimeZone, Utc};

pub fn account(name: &str) -> AccountRef {
    AccountRef {
        name: name.to_string(),
        provider: "spark".to_string(),
    }
}

pub fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap() + Duration::minutes(minutes)
}

pub fn session(ext: &str, customer: &str) -> ProviderSession {
    ProviderSession {
        external_id: ext.to_string(),
        status: Some(SessionStatus::Open),
        channel: Some("web".into()),
        customer: Some(Participant {
            external_id: Some(customer.to_string()),
            name: Some(format!("访客{customer}")),
            avatar_url: None,
        }),
        agent: Some(Participant {
            external_id: Some("A1".into()),
            name: Some("小王".into()),
            avatar_url: None,
        }),
        ..Default::default()
    }
}

pub fn msg(session: &str, ext: &str, role: Role, text: &str, at: DateTime<Utc>) -> ProviderMessage {
    ProviderMessage {
        external_id: ext.to_string(),
        session_external_id: session.to_string(),
        sender: Sender::role_only(role),
        kind: MessageKind::Text,
        text: Some(text.to_string()),
        media: None,
        card: None,
        event: None,
        sent_at: at,
        received_at: None,
        raw: serde_json::json!({"Id": ext, "Content": text}),
    }
}

pub fn change(s: ProviderSession, messages: Vec<ProviderMessage>) -> SessionChange {
    SessionChange {
        session: s,
        messages,
    }
}
