//! Huawei ccmessaging: `tokenByAkSk`, `applyToken`,
//! `queryHistoryChatMessage` and `downloadFileStream`.
//!
//! Two tokens guard the history: an AccessToken from the app's keys (403
//! `auth fail! …` once expired or unknown) and a per-user
//! `ccmessaging-token` (401 once expired or unknown). A history answer can
//! carry a fresh user token in its `ccmessaging-token` header, after which
//! the old one stops working. History items are kept per user, sorted by
//! `sendTime`, so a page costs a binary search plus the page.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::Engine;
use chrono::Utc;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::SimError;
use crate::options::{CcmCredentials, SimOptions};
use crate::util::{digit_id, hex_id, json, lock, rng_from};
use crate::Shared;

/// Pages are capped at this many items.
pub(crate) const MAX_LIMIT: usize = 100;
/// The exceptionInfo of an expired or unknown AccessToken.
pub const ACCESS_TOKEN_FAIL: &str =
    "auth fail! please apply or refresh the access token from the server!";

/// One history item to add. Only `user_id` is required; the rest default to
/// a customer's text chat message sent now.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcmItem {
    /// The customer (`userId`) whose history holds the item.
    pub user_id: String,
    /// `id` (default: a fresh 30-digit id).
    #[serde(default)]
    pub id: Option<String>,
    /// `channel` (default `WEB`).
    #[serde(default)]
    pub channel: Option<String>,
    /// The channel id filtered on by `channelId` (default: the configured one).
    #[serde(default)]
    pub channel_id: Option<String>,
    /// `controlType`: CONNECT, CHAT (default), TRANS2AGENT, INPUT,
    /// DISCONNECT, READ, or anything else for robustness tests.
    #[serde(default)]
    pub control_type: Option<String>,
    /// `sourceType`: USER (default), CUSTOMER, AGENT, ROBOT, SYSTEM.
    #[serde(default)]
    pub source_type: Option<String>,
    /// `mediaType`: TEXT, IMAGE, AUDIO, VIDEO, FILE, FILE_IMAGE, FILE_VIDEO,
    /// WEBCARD, LOCATE (default TEXT for CHAT items, null otherwise).
    #[serde(default)]
    pub media_type: Option<String>,
    /// `content` in the format its `mediaType` asks for.
    #[serde(default)]
    pub content: Option<String>,
    /// `senderNickname`.
    #[serde(default)]
    pub sender_nickname: Option<String>,
    /// `senderAvatar`.
    #[serde(default)]
    pub sender_avatar: Option<String>,
    /// `callId`.
    #[serde(default)]
    pub call_id: Option<String>,
    /// `chatId`.
    #[serde(default)]
    pub chat_id: Option<String>,
    /// Write the chat id under `chat_id` instead of `chatId`.
    #[serde(default)]
    pub snake_chat_id: bool,
    /// Write `userId` as null (as the provider's sample does).
    #[serde(default)]
    pub hide_user_id: bool,
    /// `sendTime`, epoch milliseconds (default: now).
    #[serde(default)]
    pub send_time: Option<i64>,
    /// `messageCode`.
    #[serde(default)]
    pub message_code: Option<String>,
    /// `sendStatus`.
    #[serde(default)]
    pub send_status: Option<i64>,
    /// `errorMsg`.
    #[serde(default)]
    pub error_msg: Option<String>,
}

/// Which tokens to expire.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcmExpire {
    /// Expire every AccessToken.
    #[serde(default)]
    pub access: bool,
    /// Expire per-user tokens (of `user_id` only, when given).
    #[serde(default)]
    pub user: bool,
    /// Limit `user` to this customer.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// Call counts of the ccmessaging simulator, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcmReceived {
    /// `tokenByAkSk` calls.
    pub token_by_ak_sk: u64,
    /// `applyToken` calls.
    pub apply_token: u64,
    /// `queryHistoryChatMessage` calls.
    pub query_history: u64,
    /// `downloadFileStream` calls.
    pub download: u64,
    /// Answers 403 for an AccessToken or app key.
    pub forbidden: u64,
    /// Answers 401 for keys or a ccmessaging-token.
    pub unauthorized: u64,
    /// Fresh user tokens handed out in a response header.
    pub rotations: u64,
}

struct Item {
    seq: u64,
    id: String,
    channel: String,
    channel_id: String,
    user_id: String,
    hide_user_id: bool,
    sender_nickname: Option<String>,
    sender_avatar: Option<String>,
    send_time: i64,
    control_type: String,
    source_type: String,
    media_type: Option<String>,
    content: Option<String>,
    call_id: Option<String>,
    chat_id: Option<String>,
    snake_chat_id: bool,
    message_code: Option<String>,
    send_status: Option<i64>,
    error_msg: Option<String>,
}

impl Item {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "channel": self.channel,
            "channelConfigId": self.channel_id,
            "userId": if self.hide_user_id { None } else { Some(&self.user_id) },
            "senderNickname": self.sender_nickname,
            "senderAvatar": self.sender_avatar,
            "sendTime": self.send_time,
            "controlType": self.control_type,
            "sourceType": self.source_type,
            "mediaType": self.media_type,
            "content": self.content,
            "callId": self.call_id,
            "tenantId": null,
            "partdbId": null,
            "messageCode": self.message_code,
            "associationContentId": null,
            "sendStatus": self.send_status,
            "recallTime": null,
            "modifiedTime": null,
            "errorMsg": self.error_msg,
            "dayOfYear": null,
            "receiveTime": self.send_time,
            "isForwarded": false,
            "forwardTime": null,
            "contentDealType": null,
            "contentKey": null,
            "multiMediaLibraryInfo": null,
            "chatId": null,
            "readTime": 0,
            "email": null,
        });
        if let Some(obj) = v.as_object_mut() {
            let key = if self.snake_chat_id {
                "chat_id"
            } else {
                "chatId"
            };
            if self.snake_chat_id {
                obj.remove("chatId");
            }
            obj.insert(key.into(), json!(self.chat_id));
        }
        v
    }
}

struct UserToken {
    user_id: String,
    expires: Instant,
}

struct Inner {
    rng: StdRng,
    access: HashMap<String, Instant>,
    users: HashMap<String, UserToken>,
    rotate_all: bool,
    rotate_users: HashSet<String>,
    calls_since_rotation: u32,
    items: HashMap<String, Vec<Item>>,
    ids: HashSet<String>,
    seq: u64,
    received: CcmReceived,
}

impl Inner {
    fn new(seed: Option<u64>) -> Self {
        Self {
            rng: rng_from(seed, 2),
            access: HashMap::new(),
            users: HashMap::new(),
            rotate_all: false,
            rotate_users: HashSet::new(),
            calls_since_rotation: 0,
            items: HashMap::new(),
            ids: HashSet::new(),
            seq: 0,
            received: CcmReceived::default(),
        }
    }

    fn user_token(&mut self, user_id: &str, channel_id: &str, ttl: Duration) -> String {
        let payload = json!({
            "createTime": Utc::now().timestamp_millis().to_string(),
            "userId": user_id,
            "channelId": channel_id,
            "nonce": hex_id(&mut self.rng, 16),
        });
        let b64 = base64::engine::general_purpose::STANDARD.encode(payload.to_string());
        let token = b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        self.users.insert(
            token.clone(),
            UserToken {
                user_id: user_id.to_string(),
                expires: Instant::now() + ttl,
            },
        );
        token
    }

    fn add(&mut self, item: CcmItem, channel_id: &str) -> Result<String, SimError> {
        if item.user_id.is_empty() || item.user_id.chars().count() > 24 {
            return Err(SimError::Invalid("user_id is 1 to 24 characters".into()));
        }
        let send_time = item
            .send_time
            .unwrap_or_else(|| Utc::now().timestamp_millis());
        let id = match item.id {
            Some(id) => {
                if self.ids.contains(&id) {
                    return Err(SimError::Invalid(format!("item id {id} exists")));
                }
                id
            }
            None => loop {
                let id = format!("{send_time}{}", digit_id(&mut self.rng, 17));
                if !self.ids.contains(&id) {
                    break id;
                }
            },
        };
        let control_type = item.control_type.unwrap_or_else(|| "CHAT".into());
        let media_type = match item.media_type {
            Some(m) => Some(m),
            None if control_type == "CHAT" => Some("TEXT".into()),
            None => None,
        };
        self.seq += 1;
        let stored = Item {
            seq: self.seq,
            id: id.clone(),
            channel: item.channel.unwrap_or_else(|| "WEB".into()),
            channel_id: item.channel_id.unwrap_or_else(|| channel_id.to_string()),
            user_id: item.user_id.clone(),
            hide_user_id: item.hide_user_id,
            sender_nickname: item.sender_nickname,
            sender_avatar: item.sender_avatar,
            send_time,
            control_type,
            source_type: item.source_type.unwrap_or_else(|| "USER".into()),
            media_type,
            content: item.content,
            call_id: item.call_id,
            chat_id: item.chat_id,
            snake_chat_id: item.snake_chat_id,
            message_code: item.message_code,
            send_status: item.send_status,
            error_msg: item.error_msg,
        };
        let list = self.items.entry(item.user_id).or_default();
        let at = list.partition_point(|x| (x.send_time, x.seq) <= (send_time, stored.seq));
        list.insert(at, stored);
        self.ids.insert(id.clone());
        Ok(id)
    }
}

/// The ccmessaging simulator's state.
pub(crate) struct Ccm {
    inner: Mutex<Inner>,
    creds: CcmCredentials,
    access_ttl: Duration,
    user_ttl: Duration,
    rotate_every: Option<u32>,
    seed: Option<u64>,
}

impl Ccm {
    pub(crate) fn new(opts: &SimOptions) -> Self {
        Self {
            inner: Mutex::new(Inner::new(opts.seed)),
            creds: opts.ccm.clone(),
            access_ttl: opts.ccm_access_token_ttl,
            user_ttl: opts.ccm_user_token_ttl,
            rotate_every: opts.ccm_rotate_every.filter(|n| *n > 0),
            seed: opts.seed,
        }
    }

    pub(crate) fn add_items(&self, items: Vec<CcmItem>) -> Result<Vec<String>, SimError> {
        let mut s = lock(&self.inner);
        items
            .into_iter()
            .map(|i| s.add(i, &self.creds.channel_id))
            .collect()
    }

    pub(crate) fn expire(&self, e: &CcmExpire) -> usize {
        let mut s = lock(&self.inner);
        let mut n = 0;
        if e.access {
            n += s.access.len();
            s.access.clear();
        }
        if e.user {
            let before = s.users.len();
            match &e.user_id {
                Some(u) => s.users.retain(|_, t| &t.user_id != u),
                None => s.users.clear(),
            }
            n += before - s.users.len();
        }
        n
    }

    pub(crate) fn rotate(&self, user_id: Option<String>) {
        let mut s = lock(&self.inner);
        match user_id {
            Some(u) => {
                s.rotate_users.insert(u);
            }
            None => s.rotate_all = true,
        }
    }

    pub(crate) fn received(&self) -> CcmReceived {
        lock(&self.inner).received.clone()
    }

    pub(crate) fn summary(&self) -> Value {
        let s = lock(&self.inner);
        json!({
            "users": s.items.len(),
            "items": s.ids.len(),
            "access_tokens": s.access.len(),
            "user_tokens": s.users.len(),
            "received": s.received,
        })
    }

    pub(crate) fn reset(&self) {
        *lock(&self.inner) = Inner::new(self.seed);
    }

    pub(crate) fn channel_id(&self) -> &str {
        &self.creds.channel_id
    }

    fn check_access(&self, s: &mut Inner, headers: &HeaderMap) -> Result<(), Response> {
        let key_ok = header_str(headers, "x-app-key") == Some(self.creds.app_key.as_str());
        let token = header_str(headers, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let now = Instant::now();
        let token_ok = token.is_some_and(|t| s.access.get(t).is_some_and(|exp| *exp > now));
        if key_ok && token_ok {
            Ok(())
        } else {
            s.received.forbidden += 1;
            Err(fail(StatusCode::FORBIDDEN, ACCESS_TOKEN_FAIL))
        }
    }
}

/// The user a live `ccmessaging-token` belongs to, else the 401 answer.
fn check_user_token(s: &mut Inner, token: &str) -> Result<String, Response> {
    match s.users.get(token) {
        Some(t) if t.expires > Instant::now() => Ok(t.user_id.clone()),
        _ => {
            s.received.unauthorized += 1;
            Err(fail(
                StatusCode::UNAUTHORIZED,
                "ccmessaging-token is invalid or expired, apply for a new one",
            ))
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn fail(status: StatusCode, info: &str) -> Response {
    json(
        status,
        &json!({"errorCode": status.as_u16().to_string(), "exceptionInfo": info}),
    )
}

fn bad_request(desc: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        &json!({"resultCode": "1", "resultDesc": desc}),
    )
}

/// Reads a JSON object whose fields must all be strings (or null).
fn string_fields(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let map: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable request body: {e}"))?;
    let mut out = HashMap::new();
    for (k, v) in map {
        match v {
            Value::String(s) => {
                out.insert(k, s);
            }
            Value::Null => {}
            other => return Err(format!("field `{k}` must be a string, not {other}")),
        }
    }
    Ok(out)
}

fn required<'a>(f: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Response> {
    f.get(name)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad_request(&format!("`{name}` is required")))
}

fn optional_ms(f: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Response> {
    match f.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| bad_request(&format!("`{name}` must be epoch milliseconds"))),
    }
}

// ---------------------------------------------------------------------------
// HTTP.

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    ccm: Arc<Ccm>,
}

/// The ccmessaging routes.
pub(crate) fn router(shared: Arc<Shared>, ccm: Arc<Ccm>) -> Router {
    Router::new()
        .route("/apigovernance/api/oauth/tokenByAkSk", post(token_by_ak_sk))
        .route("/apiaccess/ccmessaging/applyToken", post(apply_token))
        .route(
            "/apiaccess/ccmessaging/queryHistoryChatMessage",
            post(query_history),
        )
        .route(
            "/apiaccess/ccmessaging/downloadFileStream",
            post(download_file_stream),
        )
        .with_state(App { shared, ccm })
}

async fn token_by_ak_sk(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let ccm = &app.ccm;
    let mut s = lock(&ccm.inner);
    s.received.token_by_ak_sk += 1;
    let fields = match string_fields(&body) {
        Ok(f) => f,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    if fields.get("app_key") != Some(&ccm.creds.app_key)
        || fields.get("app_secret") != Some(&ccm.creds.app_secret)
    {
        s.received.unauthorized += 1;
        return fail(StatusCode::UNAUTHORIZED, "app_key or app_secret is invalid");
    }
    let ttl = match header_str(&headers, "x-token-expire").map(str::trim) {
        None => ccm.access_ttl,
        Some(v) => match v.parse::<u64>() {
            Ok(secs) if (1..=7 * 86_400).contains(&secs) => Duration::from_secs(secs),
            _ => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "X-Token-Expire must be seconds between 1 and 604800",
                )
            }
        },
    };
    let token = hex_id(&mut s.rng, 32);
    s.access.insert(token.clone(), Instant::now() + ttl);
    json(
        StatusCode::OK,
        &json!({
            "AccessToken": token,
            "ApplyType": "Bearer",
            "CreateTime": Utc::now().timestamp().to_string(),
            "Expires": ttl.as_secs().to_string(),
            "Scope": null,
            "AppKey": ccm.creds.app_key,
            "UserID": "Anonymous",
        }),
    )
}

async fn apply_token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let ccm = &app.ccm;
    let mut s = lock(&ccm.inner);
    s.received.apply_token += 1;
    if let Err(resp) = ccm.check_access(&mut s, &headers) {
        return resp;
    }
    let fields = match string_fields(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    let user_id = match required(&fields, "userId") {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    if user_id.chars().count() > 24 {
        return bad_request("`userId` is 1 to 24 characters");
    }
    let channel_id = fields.get("channelId").map(String::as_str).unwrap_or("");
    if channel_id != ccm.creds.channel_id {
        return bad_request("unknown `channelId`");
    }
    let token = s.user_token(user_id, channel_id, ccm.user_ttl);
    json(StatusCode::OK, &json!({"resultCode": "0", "token": token}))
}

async fn query_history(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let ccm = &app.ccm;
    let mut s = lock(&ccm.inner);
    s.received.query_history += 1;
    if let Err(resp) = ccm.check_access(&mut s, &headers) {
        return resp;
    }
    let user_token = header_str(&headers, "ccmessaging-token")
        .unwrap_or("")
        .trim();
    let token_user = match check_user_token(&mut s, user_token) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let fields = match string_fields(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    let parsed = (|| {
        let channel_id = required(&fields, "channelId")?.to_string();
        let user_id = required(&fields, "userId")?.to_string();
        required(&fields, "channel")?;
        let limit: usize = required(&fields, "limit")?
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad_request("`limit` must be a positive integer"))?;
        let offset: usize = required(&fields, "offset")?
            .trim()
            .parse()
            .map_err(|_| bad_request("`offset` must be a non-negative integer"))?;
        let start = optional_ms(&fields, "startTime")?;
        let end = optional_ms(&fields, "endTime")?;
        Ok::<_, Response>((
            channel_id,
            user_id,
            limit.min(MAX_LIMIT),
            offset,
            start,
            end,
        ))
    })();
    let (channel_id, user_id, limit, offset, start, end) = match parsed {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    if user_id.chars().count() > 24 {
        return bad_request("`userId` is 1 to 24 characters");
    }
    if token_user != user_id {
        s.received.unauthorized += 1;
        return fail(
            StatusCode::UNAUTHORIZED,
            "ccmessaging-token does not belong to this userId",
        );
    }

    let page: Vec<Value> = match s.items.get(&user_id) {
        None => Vec::new(),
        Some(list) => {
            let from = start.map_or(0, |t| list.partition_point(|x| x.send_time < t));
            let to = end.map_or(list.len(), |t| list.partition_point(|x| x.send_time <= t));
            list.get(from..to.max(from))
                .unwrap_or_default()
                .iter()
                .filter(|x| x.channel_id == channel_id)
                .skip(offset)
                .take(limit)
                .map(Item::to_json)
                .collect()
        }
    };

    // Rotation: on request, or after every N successful calls.
    let mut rotate = s.rotate_all || s.rotate_users.contains(&user_id);
    if let Some(every) = ccm.rotate_every {
        s.calls_since_rotation += 1;
        if s.calls_since_rotation >= every {
            rotate = true;
        }
    }
    let mut fresh = None;
    if rotate {
        s.rotate_all = false;
        s.rotate_users.remove(&user_id);
        s.calls_since_rotation = 0;
        s.users.remove(user_token);
        s.received.rotations += 1;
        fresh = Some(s.user_token(&user_id, &channel_id, ccm.user_ttl));
    }
    drop(s);

    let mut resp = json(
        StatusCode::OK,
        &json!({"messageList": page, "resultCode": "0", "resultDesc": "success"}),
    );
    if let Some(token) = fresh.and_then(|t| HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert("ccmessaging-token", token);
    }
    resp
}

async fn download_file_stream(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let ccm = &app.ccm;
    let mut s = lock(&ccm.inner);
    s.received.download += 1;
    if let Err(resp) = ccm.check_access(&mut s, &headers) {
        return resp;
    }
    let user_token = header_str(&headers, "ccmessaging-token")
        .unwrap_or("")
        .trim();
    if let Err(resp) = check_user_token(&mut s, user_token) {
        return resp;
    }
    let fields = match string_fields(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    let file_id = match required(&fields, "fileId") {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    // A fileId may come as "objectKey,ext" like FILE_IMAGE content.
    let key = file_id
        .split(',')
        .next()
        .unwrap_or(file_id)
        .trim()
        .to_string();
    drop(s);
    match app.shared.file(&key) {
        Some((_, bytes)) => json(
            StatusCode::OK,
            &json!({
                "fileStream": base64::engine::general_purpose::STANDARD.encode(bytes),
                "resultCode": "0",
                "resultDesc": "success",
            }),
        ),
        None => json(
            StatusCode::OK,
            &json!({"resultCode": "1", "resultDesc": format!("file {key} not found")}),
        ),
    }
}

/// A random objectKey as uploadFileStream would hand out.
pub(crate) fn object_key(rng: &mut StdRng) -> String {
    format!("{}{}", rng.gen_range(1..10), digit_id(rng, 18))
}
