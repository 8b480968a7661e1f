//! A ccmessaging stand-in on wiremock: token endpoints, history answers,
//! and helpers to build items and read results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chat_core::{HistoryPage, HistoryQuery, Provider, ProviderError, Secret};
use chrono::{DateTime, Utc};
use provider_ccmessaging::{CcmessagingConfig, CcmessagingProvider};
use serde_json::{json, Value};
use url::Url;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const APP_KEY: &str = "ea5c29a3-ea45-4b79-a449-2a3dbeb4c32c";
pub const APP_SECRET: &str = "app-secret-value";
pub const CHANNEL_ID: &str = "202207292843442389";
pub const USER: &str = "1659490221026188522";

pub const TOKEN_PATH: &str = "/apigovernance/api/oauth/tokenByAkSk";
pub const APPLY_PATH: &str = "/apiaccess/ccmessaging/applyToken";
pub const HISTORY_PATH: &str = "/apiaccess/ccmessaging/queryHistoryChatMessage";

/// The adapter pointed at `server`, with a short timeout for the tests.
pub fn provider(server: &MockServer) -> CcmessagingProvider {
    provider_with(server, |_| {})
}

/// The adapter with a config tweak.
pub fn provider_with(
    server: &MockServer,
    tweak: impl FnOnce(&mut CcmessagingConfig),
) -> CcmessagingProvider {
    let mut config = CcmessagingConfig::new(
        Url::parse(&server.uri()).unwrap(),
        Secret::new(APP_KEY),
        Secret::new(APP_SECRET),
        CHANNEL_ID,
    );
    config.request_timeout = Duration::from_secs(2);
    tweak(&mut config);
    CcmessagingProvider::new(config).unwrap()
}

/// tokenByAkSk handing out `at-1`, `at-2`, … created `created_ago` seconds
/// ago and living 600 s.
pub struct AccessTokens {
    issued: AtomicUsize,
    created_ago: i64,
}

impl Respond for AccessTokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let created = Utc::now().timestamp() - self.created_ago;
        ResponseTemplate::new(200).set_body_json(json!({
            "AccessToken": format!("at-{n}"),
            "ApplyType": "Bearer",
            "CreateTime": created.to_string(),
            "Expires": "600",
            "Scope": ["tokenByAkSk"],
            "AppKey": APP_KEY,
            "UserID": "Anonymous",
        }))
    }
}

/// applyToken handing out `ut-1`, `ut-2`, ….
pub struct UserTokens(AtomicUsize);

impl Respond for UserTokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({"resultCode": "0", "token": format!("ut-{n}")}))
    }
}

/// Both token endpoints, expecting exactly `access` and `apply` calls.
pub async fn mount_tokens(server: &MockServer, access: u64, apply: u64) {
    mount_tokens_aged(server, access, apply, 0).await;
}

/// As [`mount_tokens`], AccessTokens created `created_ago` seconds ago.
pub async fn mount_tokens_aged(server: &MockServer, access: u64, apply: u64, created_ago: i64) {
    mount_access_tokens(server, access, created_ago).await;
    Mock::given(method("POST"))
        .and(path(APPLY_PATH))
        .and(header("x-app-key", APP_KEY))
        .respond_with(UserTokens(AtomicUsize::new(0)))
        .expect(apply)
        .named("applyToken")
        .mount(server)
        .await;
}

/// tokenByAkSk alone, expecting exactly `access` calls.
pub async fn mount_access_tokens(server: &MockServer, access: u64, created_ago: i64) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_partial_json(
            json!({"app_key": APP_KEY, "app_secret": APP_SECRET}),
        ))
        .respond_with(AccessTokens {
            issued: AtomicUsize::new(0),
            created_ago,
        })
        .expect(access)
        .named("tokenByAkSk")
        .mount(server)
        .await;
}

/// A successful history answer.
pub fn history_answer(items: &[Value]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messageList": items,
        "resultCode": "0",
        "resultDesc": "success",
    }))
}

/// Tokens once, and one history answer for any query.
pub async fn serve_items(server: &MockServer, items: &[Value]) {
    mount_tokens(server, 1, 1).await;
    Mock::given(method("POST"))
        .and(path(HISTORY_PATH))
        .respond_with(history_answer(items))
        .mount(server)
        .await;
}

/// A history query for `user` over January 2024.
pub fn query(user: &str) -> HistoryQuery {
    HistoryQuery {
        customer_id: Some(user.to_string()),
        from: utc("2024-01-01T00:00:00Z"),
        to: Some(utc("2024-02-01T00:00:00Z")),
        page: None,
    }
}

/// Fetches one page for [`USER`].
pub async fn fetch(provider: &CcmessagingProvider) -> Result<HistoryPage, ProviderError> {
    provider.fetch_history(&query(USER)).await
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A chat item as the seed shows it, `fields` overriding.
pub fn item(id: &str, fields: Value) -> Value {
    let mut item = json!({
        "id": id,
        "channel": "WEB",
        "channelConfigId": null,
        "userId": null,
        "senderNickname": "employees",
        "senderAvatar": "../../image/user1.png",
        "sendTime": 1705457000000_i64,
        "controlType": "CHAT",
        "sourceType": "USER",
        "mediaType": "TEXT",
        "content": "hello",
        "callId": "1705456002-16797276",
        "receiveTime": 1705457000000_i64,
        "chatId": null,
    });
    for (k, v) in fields.as_object().unwrap() {
        item[k] = v.clone();
    }
    item
}

/// `n` plain text items with ids `{prefix}-0`, ….
pub fn text_items(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            item(
                &format!("{prefix}-{i}"),
                json!({"sendTime": 1705457000000_i64 + i as i64}),
            )
        })
        .collect()
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

/// Each mapped message beside the input fields that decided it.
pub fn table(inputs: &[Value], page: &HistoryPage, keys: &[&str]) -> Value {
    let messages = page.changes.iter().flat_map(|c| &c.messages);
    let rows: Vec<Value> = messages
        .map(|m| {
            let input = inputs
                .iter()
                .find(|i| i["id"] == m.external_id.as_str())
                .unwrap();
            let picked: serde_json::Map<String, Value> = keys
                .iter()
                .map(|k| (k.to_string(), input.get(*k).cloned().unwrap_or(Value::Null)))
                .collect();
            let mut out = without_raw(m);
            out["direction"] = json!(m.direction().as_str());
            json!({"input": picked, "message": out})
        })
        .collect();
    Value::Array(rows)
}

/// `value` as JSON with the mock server's address (a new port each run)
/// written as `http://provider`, so resolved links snapshot stably.
pub fn portless<T: serde::Serialize>(server: &MockServer, value: &T) -> Value {
    let text = serde_json::to_string(value).unwrap();
    serde_json::from_str(&text.replace(&server.uri(), "http://provider")).unwrap()
}
