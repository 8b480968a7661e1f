//! A Kchat stand-in on wiremock, and helpers to build chats and read results.

use std::time::Duration;

use chat_core::time::parse_zone;
use chat_core::Secret;
use chrono::{DateTime, Utc};
use provider_kchat::{KchatConfig, KchatCredential, KchatProvider};
use serde_json::{json, Value};
use url::Url;
use wiremock::{MockServer, ResponseTemplate};

pub const EMAIL: &str = "agent@example.com";
pub const API_TOKEN: &str = "kchat-api-token-value";
pub const PASSWORD: &str = "kchat-password-value";
pub const LIST_PATH: &str = "/apiv2/chats.json";

/// The adapter pointed at `server`: API token, Asia/Shanghai, short timeout.
pub fn provider(server: &MockServer) -> KchatProvider {
    provider_with(server, |_| {})
}

/// The adapter with a config tweak.
pub fn provider_with(server: &MockServer, tweak: impl FnOnce(&mut KchatConfig)) -> KchatProvider {
    let mut config = KchatConfig::new(
        Url::parse(&server.uri()).unwrap(),
        EMAIL,
        KchatCredential::ApiToken(Secret::new(API_TOKEN)),
        parse_zone("Asia/Shanghai").unwrap(),
    );
    config.request_timeout = Duration::from_secs(2);
    tweak(&mut config);
    KchatProvider::new(config).unwrap()
}

/// The chat sample of the Kchat page, unchanged.
pub fn seed_chat() -> Value {
    serde_json::from_str(include_str!("fixtures/seed_chat.json")).unwrap()
}

/// A chat summary shaped like the sample, `fields` overriding.
pub fn chat(id: i64, fields: Value) -> Value {
    let mut chat = json!({
        "id": id,
        "type": "chat",
        "started_by": "visitor",
        "status": "close",
        "agent_id": 2192,
        "rating": null,
        "visitor_id": 547,
        "user_id": 45190,
        "created_at": "2015-04-25 08:04:12",
        "assigned_at": "2015-04-25 08:04:41",
        "end_at": "2015-04-30 09:55:01",
        "message_count": 2,
    });
    merge(&mut chat, fields);
    chat
}

/// A message shaped like the sample, `fields` overriding.
pub fn message(id: i64, kind: &str, fields: Value) -> Value {
    let mut message = json!({
        "id": id,
        "chat_id": 290,
        "type": kind,
        "name": "访客5",
        "msg": "你好,在吗?",
        "user_id": null,
        "upload_id": null,
        "is_read": 1,
        "created_at": "2015-04-25 08:04:12",
        "upload": null,
    });
    merge(&mut message, fields);
    message
}

fn merge(into: &mut Value, fields: Value) {
    for (k, v) in fields.as_object().unwrap() {
        into[k] = v.clone();
    }
}

/// A list answer.
pub fn list_answer(chats: &[Value], count: u64, next_page: Option<String>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "chats": chats,
        "count": count,
        "next_page": next_page,
        "previous_page": null,
    }))
}

/// A detail answer.
pub fn detail_answer(chat: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "chat": chat }))
}

/// The detail path of chat `id`.
pub fn detail_path(id: impl std::fmt::Display) -> String {
    format!("/apiv2/chats/{id}.json")
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A value without its `raw` fields, for readable snapshots.
pub fn without_raw(v: impl serde::Serialize) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("raw");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(v).unwrap();
    strip(&mut v);
    v
}
