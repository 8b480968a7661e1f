//! The Spark agent API: `POST /message/query` (long poll with acks and
//! versions), `/message/send`, `/session/close`, `/session/restart`,
//! `/session/transfer`.
//!
//! Everything that happens is appended to one ordered operation log: a
//! message (delivered inside an AddSession operation), a DelSession, or a
//! bare AddSession (restart). Messages stay pending until acked and come
//! again on every live query until then; bare operations are pending until
//! one live answer has carried them. A version is a message `Id`; the index
//! from `Id` to log position keeps every query proportional to its answer.
//!
//! The simulator is one account: its feed carries every session, whichever
//! agent holds it (`ToId` names that agent, as of each entry). Refusals are
//! HTTP 200 with `{"Code", "Message"}` (1001 no active session, 1002 agent
//! offline or unknown, 1003 invalid parameter, 1004 bad version); a body
//! that is not JSON of the right shape is HTTP 400 with Code 1003; missing
//! or wrong credentials are HTTP 401 with Code 401.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::error::SimError;
use crate::options::{HeaderCredential, SimOptions};
use crate::util::{hex_id, json, local, lock, parse_body, rng_from};
use crate::Shared;

/// History answers carry at most this many messages.
pub(crate) const HISTORY_PAGE: usize = 200;
/// Text sent through `/message/send` is at most this many characters.
pub(crate) const MAX_TEXT_CHARS: usize = 2000;
/// History reaches back this far.
const HISTORY_REACH: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Agents every Spark simulator starts with: two online, one offline, so
/// transfers have both outcomes to test.
const DEFAULT_AGENTS: [(&str, &str, bool); 3] = [
    ("1001", "王芳", true),
    ("1002", "Emily Chen", true),
    ("1003", "李强", false),
];

fn avatar(id: &str) -> String {
    format!("https://avatars.example.com/{id}.png")
}

/// A message the provider side produces, as the control API injects it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkInject {
    /// The session; absent: the customer's active session, else a new one.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The customer; required when the session is new.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The customer's display name (new customers; default: the id).
    #[serde(default)]
    pub customer_name: Option<String>,
    /// The customer's avatar URL.
    #[serde(default)]
    pub customer_image: Option<String>,
    /// The agent of a new session (created online if unknown; default: the
    /// first online agent).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The agent's display name, for an agent created here.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// `SessionType` of a new session: 0 web, 1 wechat, 2 app (default 0).
    #[serde(default)]
    pub session_type: Option<i64>,
    /// Message `Type`: 0 from the customer (default), 1 an agent's message
    /// sent elsewhere.
    #[serde(default, rename = "type")]
    pub message_type: u8,
    /// Text content (`ContentType` "0").
    #[serde(default)]
    pub text: Option<String>,
    /// Image URL (`ContentType` "1").
    #[serde(default)]
    pub image_url: Option<String>,
    /// When it happened (default: now); past times suit seeded history.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// What an injection created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkInjected {
    /// The session the message went to.
    pub session_id: String,
    /// The new message's `Id`.
    pub message_id: String,
    /// Whether the session was created by this injection.
    pub new_session: bool,
}

/// Most messages one bulk call may generate.
pub const BULK_MAX_MESSAGES: usize = 5_000_000;

/// Many provider-side messages at once, generated in-process (load tests):
/// `sessions` new sessions, each with its own customer, and `messages`
/// messages dealt to them in turn (message `k` goes to session
/// `k % sessions`), so every answer of the feed mixes many conversations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkBulk {
    /// New sessions to open (at least 1).
    pub sessions: usize,
    /// Messages in all (at least 1, at most [`BULK_MAX_MESSAGES`]).
    pub messages: usize,
    /// Customers are `{customer_prefix}{i}` (default `bulk-`); a customer
    /// that already exists keeps its name and gets a new session.
    #[serde(default)]
    pub customer_prefix: Option<String>,
    /// Every `agent_every`-th message of a session is an agent's reply
    /// (`Type` 1); 0 makes them all the customer's. Default 2: turns alternate.
    #[serde(default)]
    pub agent_every: Option<usize>,
}

/// What a bulk generation created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkBulkReport {
    /// The new sessions' ids, in customer order.
    pub session_ids: Vec<String>,
    /// How many messages went on the feed.
    pub messages: usize,
    /// The `Id` of the first generated message.
    pub first_message_id: String,
    /// The `Id` of the last generated message.
    pub last_message_id: String,
}

/// Creates or updates an agent, e.g. to take one offline before a transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkAgent {
    /// The agent id (`ToId` / `ToNewId`).
    pub id: String,
    /// Display name (kept if absent).
    #[serde(default)]
    pub name: Option<String>,
    /// Avatar URL (kept if absent).
    #[serde(default)]
    pub image: Option<String>,
    /// Whether transfers to this agent are accepted.
    pub online: bool,
}

/// One session as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkSessionInfo {
    /// `SessionId`.
    pub session_id: String,
    /// The customer (`FromId`).
    pub customer_id: String,
    /// The current agent (`ToId`).
    pub agent_id: String,
    /// `SessionType`.
    pub session_type: i64,
    /// Whether the session is active.
    pub active: bool,
    /// How many messages it has.
    pub messages: usize,
}

/// One `/message/send` call as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkSendRecord {
    /// `SessionId` as sent (empty for outreach).
    pub session_id: String,
    /// `ToId`.
    pub to_id: String,
    /// `ContentType`.
    pub content_type: String,
    /// `Content`.
    pub content: String,
    /// `CreateTime` as sent.
    pub create_time: String,
    /// The answer's `Code` (0 = accepted).
    pub code: i64,
    /// The echo's `Id` when accepted.
    pub message_id: Option<String>,
    /// The session the message went to when accepted (the new one for outreach).
    pub result_session_id: Option<String>,
}

/// One close, restart or transfer call as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkActionRecord {
    /// `SessionId`.
    pub session_id: String,
    /// `ToNewId` (transfers only).
    pub to_new_id: Option<String>,
    /// The answer's `Code`.
    pub code: i64,
}

/// What the Spark simulator received from its client, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkReceived {
    /// Live queries (empty `LastVersion`).
    pub live_queries: u64,
    /// History queries.
    pub history_queries: u64,
    /// Every acked `Id`, in the order received.
    pub acks: Vec<String>,
    /// Acked ids that named no pending message (unknown or acked before).
    pub stale_acks: u64,
    /// Every send.
    pub sends: Vec<SparkSendRecord>,
    /// Every agent close.
    pub closes: Vec<SparkActionRecord>,
    /// Every restart.
    pub restarts: Vec<SparkActionRecord>,
    /// Every transfer.
    pub transfers: Vec<SparkActionRecord>,
    /// Calls refused for missing or wrong credentials.
    pub unauthorized: u64,
}

// ---------------------------------------------------------------------------
// Wire types (written from the provider page, shared with no adapter).

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct QueryIn {
    #[serde(default)]
    last_version: Option<String>,
    #[serde(default)]
    acks: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct SendIn {
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    to_id: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    create_time: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct SessionIn {
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    to_new_id: Option<String>,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct OpOut {
    #[serde(rename = "Type")]
    kind: u8,
    session_id: String,
    session_type: i64,
    from_id: String,
    from_name: String,
    from_image: String,
    to_id: String,
    to_name: String,
    to_image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Vec<MsgOut>>,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct MsgOut {
    #[serde(rename = "Type")]
    kind: u8,
    id: String,
    content_type: String,
    content: String,
    create_time: String,
}

#[derive(Serialize)]
struct QueryOut {
    #[serde(rename = "Operation")]
    operation: Vec<OpOut>,
}

/// A refusal, answered as HTTP 200 `{"Code", "Message"}`.
#[derive(Debug)]
enum Refusal {
    NoSession(String),
    AgentOffline(String),
    Invalid(String),
    BadVersion(String),
}

impl Refusal {
    fn code(&self) -> i64 {
        match self {
            Refusal::NoSession(_) => 1001,
            Refusal::AgentOffline(_) => 1002,
            Refusal::Invalid(_) => 1003,
            Refusal::BadVersion(_) => 1004,
        }
    }

    fn message(&self) -> &str {
        match self {
            Refusal::NoSession(m)
            | Refusal::AgentOffline(m)
            | Refusal::Invalid(m)
            | Refusal::BadVersion(m) => m,
        }
    }

    fn response(&self) -> Response {
        json(
            StatusCode::OK,
            &json!({"Code": self.code(), "Message": self.message()}),
        )
    }
}

// ---------------------------------------------------------------------------
// State.

struct Agent {
    name: String,
    image: String,
    online: bool,
}

struct Customer {
    name: String,
    image: String,
}

struct Session {
    customer: String,
    agent: String,
    session_type: i64,
    active: bool,
    messages: usize,
}

struct Msg {
    id: String,
    kind: u8,
    content_type: &'static str,
    content: String,
    at: DateTime<Utc>,
}

enum EntryKind {
    Message(Msg),
    Del,
    Reopen,
}

struct Entry {
    session: String,
    /// The agent at the time of the entry: later entries of a transferred
    /// session carry the new agent.
    agent: String,
    kind: EntryKind,
}

struct Inner {
    rng: StdRng,
    agents: HashMap<String, Agent>,
    agent_order: Vec<String>,
    customers: HashMap<String, Customer>,
    sessions: HashMap<String, Session>,
    /// Each customer's sessions, newest last.
    customer_sessions: HashMap<String, Vec<String>>,
    log: Vec<Entry>,
    msg_index: HashMap<String, usize>,
    /// Log positions still to deliver: unacked messages and undelivered
    /// bare operations.
    pending: BTreeSet<usize>,
    received: SparkReceived,
}

/// The Spark simulator's state.
pub(crate) struct Spark {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    auth: Option<(HeaderName, String)>,
    hold: Duration,
    batch_max: Option<usize>,
    tz: Tz,
    seed: Option<u64>,
}

impl Inner {
    fn new(seed: Option<u64>) -> Self {
        let mut inner = Inner {
            rng: rng_from(seed, 1),
            agents: HashMap::new(),
            agent_order: Vec::new(),
            customers: HashMap::new(),
            sessions: HashMap::new(),
            customer_sessions: HashMap::new(),
            log: Vec::new(),
            msg_index: HashMap::new(),
            pending: BTreeSet::new(),
            received: SparkReceived::default(),
        };
        for (id, name, online) in DEFAULT_AGENTS {
            inner.set_agent(SparkAgent {
                id: id.into(),
                name: Some(name.into()),
                image: None,
                online,
            });
        }
        inner
    }

    fn set_agent(&mut self, a: SparkAgent) {
        match self.agents.get_mut(&a.id) {
            Some(existing) => {
                if let Some(name) = a.name {
                    existing.name = name;
                }
                if let Some(image) = a.image {
                    existing.image = image;
                }
                existing.online = a.online;
            }
            None => {
                self.agents.insert(
                    a.id.clone(),
                    Agent {
                        name: a.name.unwrap_or_else(|| a.id.clone()),
                        image: a.image.unwrap_or_else(|| avatar(&a.id)),
                        online: a.online,
                    },
                );
                self.agent_order.push(a.id);
            }
        }
    }

    fn default_agent(&self) -> String {
        self.agent_order
            .iter()
            .find(|id| self.agents.get(*id).is_some_and(|a| a.online))
            .or_else(|| self.agent_order.first())
            .cloned()
            .unwrap_or_else(|| "1001".into())
    }

    fn ensure_customer(&mut self, id: &str, name: Option<String>, image: Option<String>) {
        match self.customers.get_mut(id) {
            Some(c) => {
                if let Some(name) = name {
                    c.name = name;
                }
                if let Some(image) = image {
                    c.image = image;
                }
            }
            None => {
                self.customers.insert(
                    id.to_string(),
                    Customer {
                        name: name.unwrap_or_else(|| id.to_string()),
                        image: image.unwrap_or_else(|| avatar(id)),
                    },
                );
            }
        }
    }

    fn new_session_id(&mut self) -> String {
        loop {
            let id = hex_id(&mut self.rng, 20);
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn new_message_id(&mut self) -> String {
        loop {
            let id = hex_id(&mut self.rng, 24);
            if !self.msg_index.contains_key(&id) {
                return id;
            }
        }
    }

    fn create_session(
        &mut self,
        id: String,
        customer: &str,
        agent: String,
        session_type: i64,
    ) -> String {
        self.sessions.insert(
            id.clone(),
            Session {
                customer: customer.to_string(),
                agent,
                session_type,
                active: true,
                messages: 0,
            },
        );
        self.customer_sessions
            .entry(customer.to_string())
            .or_default()
            .push(id.clone());
        id
    }

    fn push(&mut self, session: &str, kind: EntryKind) -> usize {
        let agent = self
            .sessions
            .get(session)
            .map(|s| s.agent.clone())
            .unwrap_or_default();
        let pos = self.log.len();
        if let EntryKind::Message(m) = &kind {
            self.msg_index.insert(m.id.clone(), pos);
            if let Some(s) = self.sessions.get_mut(session) {
                s.messages += 1;
            }
        }
        self.log.push(Entry {
            session: session.to_string(),
            agent,
            kind,
        });
        self.pending.insert(pos);
        pos
    }

    fn push_message(
        &mut self,
        session: &str,
        kind: u8,
        content_type: &'static str,
        content: String,
        at: DateTime<Utc>,
    ) -> String {
        let id = self.new_message_id();
        self.push(
            session,
            EntryKind::Message(Msg {
                id: id.clone(),
                kind,
                content_type,
                content,
                at,
            }),
        );
        id
    }

    fn inject(&mut self, req: SparkInject) -> Result<SparkInjected, SimError> {
        let (content_type, content) = match (req.text, req.image_url) {
            (Some(t), None) => ("0", t),
            (None, Some(u)) => ("1", u),
            _ => {
                return Err(SimError::Invalid(
                    "give exactly one of `text` and `image_url`".into(),
                ))
            }
        };
        if req.message_type > 1 {
            return Err(SimError::Invalid("`type` is 0 or 1".into()));
        }
        let existing = match &req.session_id {
            Some(id) => self.sessions.get(id).map(|_| id.clone()),
            None => {
                let customer = req.customer_id.as_deref().ok_or_else(|| {
                    SimError::Invalid("give `session_id` or `customer_id`".into())
                })?;
                self.customer_sessions.get(customer).and_then(|ids| {
                    ids.iter()
                        .rev()
                        .find(|id| self.sessions.get(*id).is_some_and(|s| s.active))
                        .cloned()
                })
            }
        };
        let new_session = existing.is_none();
        let session_id = match existing {
            Some(id) => {
                if let Some(cust) = &req.customer_id {
                    let owner = self.sessions.get(&id).map(|s| s.customer.as_str());
                    if owner != Some(cust.as_str()) {
                        return Err(SimError::Invalid(format!(
                            "session {id} belongs to another customer"
                        )));
                    }
                    self.ensure_customer(cust, req.customer_name, req.customer_image);
                }
                if let Some(s) = self.sessions.get_mut(&id) {
                    // An AddSession for a closed session reopens it.
                    s.active = true;
                }
                id
            }
            None => {
                let customer = req.customer_id.ok_or_else(|| {
                    SimError::Invalid("`customer_id` is required for a new session".into())
                })?;
                self.ensure_customer(&customer, req.customer_name, req.customer_image);
                let agent = match req.agent_id {
                    Some(a) => {
                        if !self.agents.contains_key(&a) {
                            self.set_agent(SparkAgent {
                                id: a.clone(),
                                name: req.agent_name,
                                image: None,
                                online: true,
                            });
                        }
                        a
                    }
                    None => self.default_agent(),
                };
                let id = match req.session_id {
                    Some(id) => id,
                    None => self.new_session_id(),
                };
                self.create_session(id, &customer, agent, req.session_type.unwrap_or(0))
            }
        };
        let at = req.at.unwrap_or_else(Utc::now);
        let message_id =
            self.push_message(&session_id, req.message_type, content_type, content, at);
        Ok(SparkInjected {
            session_id,
            message_id,
            new_session,
        })
    }

    fn bulk(&mut self, req: SparkBulk) -> Result<SparkBulkReport, SimError> {
        if req.sessions == 0 || req.messages == 0 {
            return Err(SimError::Invalid(
                "`sessions` and `messages` must both be at least 1".into(),
            ));
        }
        if req.messages > BULK_MAX_MESSAGES {
            return Err(SimError::Invalid(format!(
                "`messages` is at most {BULK_MAX_MESSAGES}"
            )));
        }
        let prefix = req.customer_prefix.unwrap_or_else(|| "bulk-".into());
        let agent_every = req.agent_every.unwrap_or(2);
        let mut session_ids = Vec::with_capacity(req.sessions);
        for i in 0..req.sessions {
            let customer = format!("{prefix}{i}");
            let name = crate::content::CUSTOMERS[i % crate::content::CUSTOMERS.len()].1;
            if !self.customers.contains_key(&customer) {
                self.ensure_customer(&customer, Some(format!("{name} {i}")), None);
            }
            let agent = self.default_agent();
            let id = self.new_session_id();
            session_ids.push(self.create_session(id, &customer, agent, (i % 3) as i64));
        }
        let at = Utc::now();
        let mut first = String::new();
        let mut last = String::new();
        for k in 0..req.messages {
            let session = session_ids[k % req.sessions].as_str();
            let turn = k / req.sessions;
            let from_agent = agent_every > 0 && turn % agent_every == agent_every - 1;
            let (kind, lines) = if from_agent {
                (1, crate::content::AGENT_LINES)
            } else {
                (0, crate::content::CUSTOMER_LINES)
            };
            let content = format!("{} #{turn}", lines[k % lines.len()]);
            last = self.push_message(session, kind, "0", content, at);
            if k == 0 {
                first = last.clone();
            }
        }
        Ok(SparkBulkReport {
            session_ids,
            messages: req.messages,
            first_message_id: first,
            last_message_id: last,
        })
    }

    fn close(&mut self, session_id: &str) -> Result<(), Refusal> {
        match self.sessions.get_mut(session_id) {
            Some(s) if s.active => s.active = false,
            _ => {
                return Err(Refusal::NoSession(format!(
                    "session {session_id} does not exist or is not active"
                )))
            }
        }
        self.push(session_id, EntryKind::Del);
        Ok(())
    }

    fn restart(&mut self, session_id: &str) -> Result<(), Refusal> {
        match self.sessions.get_mut(session_id) {
            None => {
                return Err(Refusal::NoSession(format!(
                    "session {session_id} does not exist"
                )))
            }
            Some(s) if s.active => {
                return Err(Refusal::Invalid(format!(
                    "session {session_id} is active; only a closed session can be restarted"
                )))
            }
            Some(s) => s.active = true,
        }
        self.push(session_id, EntryKind::Reopen);
        Ok(())
    }

    fn transfer(&mut self, session_id: &str, to: &str) -> Result<(), Refusal> {
        if !self.sessions.get(session_id).is_some_and(|s| s.active) {
            return Err(Refusal::NoSession(format!(
                "session {session_id} does not exist or is not active"
            )));
        }
        if to.is_empty() {
            return Err(Refusal::Invalid("ToNewId is required".into()));
        }
        if !self.agents.get(to).is_some_and(|a| a.online) {
            return Err(Refusal::AgentOffline(format!("agent {to} is not online")));
        }
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.agent = to.to_string();
        }
        Ok(())
    }

    fn send(&mut self, req: &SendIn) -> Result<(String, String), Refusal> {
        let session_id = req.session_id.as_deref().unwrap_or("");
        let to_id = req.to_id.as_deref().unwrap_or("");
        if !session_id.is_empty() {
            match self.sessions.get(session_id) {
                Some(s) if s.active => {
                    if s.customer != to_id {
                        return Err(Refusal::Invalid(format!(
                            "ToId {to_id} is not the customer of session {session_id}"
                        )));
                    }
                }
                _ => {
                    return Err(Refusal::NoSession(format!(
                        "session {session_id} does not exist or is not active"
                    )))
                }
            }
        } else if to_id.is_empty() {
            return Err(Refusal::Invalid("ToId is required".into()));
        }
        let content_type = match req.content_type.as_deref() {
            Some("0") => "0",
            Some("1") => "1",
            other => {
                return Err(Refusal::Invalid(format!(
                    "ContentType must be \"0\" or \"1\", not {other:?}"
                )))
            }
        };
        let content = req.content.clone().unwrap_or_default();
        if content.is_empty() {
            return Err(Refusal::Invalid("Content is required".into()));
        }
        if content_type == "0" && content.chars().count() > MAX_TEXT_CHARS {
            return Err(Refusal::Invalid(format!(
                "text Content is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let session_id = if session_id.is_empty() {
            // Outreach: a new session for this customer, on the default agent.
            self.ensure_customer(to_id, None, None);
            let session_type = self
                .customer_sessions
                .get(to_id)
                .and_then(|ids| ids.last())
                .and_then(|id| self.sessions.get(id))
                .map_or(0, |s| s.session_type);
            let agent = self.default_agent();
            let id = self.new_session_id();
            self.create_session(id, to_id, agent, session_type)
        } else {
            session_id.to_string()
        };
        let message_id = self.push_message(&session_id, 1, content_type, content, Utc::now());
        Ok((session_id, message_id))
    }

    fn op(&self, e: &Entry, kind: u8, message: Option<Vec<MsgOut>>) -> OpOut {
        let (customer, session_type) = self
            .sessions
            .get(&e.session)
            .map_or(("", 0), |s| (s.customer.as_str(), s.session_type));
        let (from_name, from_image) = self
            .customers
            .get(customer)
            .map_or((String::new(), String::new()), |c| {
                (c.name.clone(), c.image.clone())
            });
        let (to_name, to_image) = self
            .agents
            .get(&e.agent)
            .map_or((String::new(), String::new()), |a| {
                (a.name.clone(), a.image.clone())
            });
        OpOut {
            kind,
            session_id: e.session.clone(),
            session_type,
            from_id: customer.to_string(),
            from_name,
            from_image,
            to_id: e.agent.clone(),
            to_name,
            to_image,
            message,
        }
    }

    /// Appends the entry at `pos` to `ops`, joining a message to the
    /// previous operation when it continues the same session and agent.
    fn render_into(&self, ops: &mut Vec<OpOut>, pos: usize, tz: Tz) {
        let Some(e) = self.log.get(pos) else { return };
        match &e.kind {
            EntryKind::Message(m) => {
                let out = MsgOut {
                    kind: m.kind,
                    id: m.id.clone(),
                    content_type: m.content_type.to_string(),
                    content: m.content.clone(),
                    create_time: local(m.at, tz),
                };
                if let Some(last) = ops.last_mut() {
                    if last.kind == 0 && last.session_id == e.session && last.to_id == e.agent {
                        if let Some(list) = last.message.as_mut().filter(|l| !l.is_empty()) {
                            list.push(out);
                            return;
                        }
                    }
                }
                ops.push(self.op(e, 0, Some(vec![out])));
            }
            EntryKind::Del => ops.push(self.op(e, 1, None)),
            EntryKind::Reopen => ops.push(self.op(e, 0, Some(Vec::new()))),
        }
    }

    fn ack(&mut self, acks: &str) {
        for id in acks.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let removed = match self.msg_index.get(id) {
                Some(pos) => self.pending.remove(pos),
                None => false,
            };
            if !removed {
                self.received.stale_acks += 1;
            }
            self.received.acks.push(id.to_string());
        }
    }

    /// Every pending entry (up to `max`), bare ones then counted delivered.
    fn live(&mut self, tz: Tz, max: Option<usize>) -> Vec<OpOut> {
        let mut ops = Vec::new();
        let mut delivered_bare = Vec::new();
        let take = max.unwrap_or(usize::MAX);
        for &pos in self.pending.iter().take(take) {
            if !matches!(self.log[pos].kind, EntryKind::Message(_)) {
                delivered_bare.push(pos);
            }
            self.render_into(&mut ops, pos, tz);
        }
        for pos in delivered_bare {
            self.pending.remove(&pos);
        }
        ops
    }

    fn history(&self, version: &str, tz: Tz) -> Result<Vec<OpOut>, Refusal> {
        let Some(&pos) = self.msg_index.get(version) else {
            return Err(Refusal::BadVersion(format!("unknown version {version}")));
        };
        if let EntryKind::Message(m) = &self.log[pos].kind {
            if m.at < Utc::now() - HISTORY_REACH {
                return Err(Refusal::BadVersion(format!(
                    "version {version} is older than one week"
                )));
            }
        }
        let mut ops = Vec::new();
        let mut count = 0;
        for p in pos + 1..self.log.len() {
            if count == HISTORY_PAGE {
                break;
            }
            if matches!(self.log[p].kind, EntryKind::Message(_)) {
                self.render_into(&mut ops, p, tz);
                count += 1;
            }
        }
        Ok(ops)
    }
}

impl Spark {
    pub(crate) fn new(opts: &SimOptions) -> Self {
        let auth = opts.spark_auth.as_ref().and_then(|HeaderCredential { name, value }| {
            match HeaderName::try_from(name.as_str()) {
                Ok(h) => Some((h, value.clone())),
                Err(_) => {
                    tracing::warn!(header = %name, "Spark auth header name is not valid; auth disabled");
                    None
                }
            }
        });
        Self {
            inner: Mutex::new(Inner::new(opts.seed)),
            changed: watch::Sender::new(0),
            auth,
            hold: opts.spark_hold,
            batch_max: opts.spark_live_batch_max,
            tz: opts.time_zone,
            seed: opts.seed,
        }
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Runs `f` on the state, then wakes held live queries.
    fn mutate<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let out = f(&mut lock(&self.inner));
        self.notify();
        out
    }

    pub(crate) fn inject(&self, req: SparkInject) -> Result<SparkInjected, SimError> {
        self.mutate(|s| s.inject(req))
    }

    pub(crate) fn bulk(&self, req: SparkBulk) -> Result<SparkBulkReport, SimError> {
        self.mutate(|s| s.bulk(req))
    }

    pub(crate) fn provider_close(&self, session_id: &str) -> Result<(), SimError> {
        self.mutate(|s| s.close(session_id))
            .map_err(|r| SimError::NotFound(r.message().to_string()))
    }

    /// A transfer made on the provider side (not recorded as received).
    pub(crate) fn provider_transfer(&self, session_id: &str, to: &str) -> Result<(), SimError> {
        lock(&self.inner)
            .transfer(session_id, to)
            .map_err(|r| SimError::Invalid(r.message().to_string()))
    }

    /// A restart made on the provider side (not recorded as received).
    pub(crate) fn provider_restart(&self, session_id: &str) -> Result<(), SimError> {
        self.mutate(|s| s.restart(session_id))
            .map_err(|r| SimError::Invalid(r.message().to_string()))
    }

    pub(crate) fn set_agent(&self, a: SparkAgent) {
        lock(&self.inner).set_agent(a);
    }

    pub(crate) fn received(&self) -> SparkReceived {
        lock(&self.inner).received.clone()
    }

    pub(crate) fn sessions(&self) -> Vec<SparkSessionInfo> {
        let s = lock(&self.inner);
        let mut out: Vec<SparkSessionInfo> = s
            .sessions
            .iter()
            .map(|(id, v)| SparkSessionInfo {
                session_id: id.clone(),
                customer_id: v.customer.clone(),
                agent_id: v.agent.clone(),
                session_type: v.session_type,
                active: v.active,
                messages: v.messages,
            })
            .collect();
        out.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        out
    }

    /// Whether a session exists and is active.
    pub(crate) fn is_active(&self, session_id: &str) -> bool {
        lock(&self.inner)
            .sessions
            .get(session_id)
            .is_some_and(|s| s.active)
    }

    pub(crate) fn summary(&self) -> serde_json::Value {
        let s = lock(&self.inner);
        json!({
            "sessions": s.sessions.len(),
            "active_sessions": s.sessions.values().filter(|x| x.active).count(),
            "messages": s.msg_index.len(),
            "log_entries": s.log.len(),
            "pending": s.pending.len(),
            "agents": s.agent_order.len(),
            "live_queries": s.received.live_queries,
            "history_queries": s.received.history_queries,
            "acks": s.received.acks.len(),
            "sends": s.received.sends.len(),
        })
    }

    pub(crate) fn reset(&self) {
        self.mutate(|s| *s = Inner::new(self.seed));
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        match &self.auth {
            None => true,
            Some((name, value)) => headers
                .get(name)
                .is_some_and(|v| v.as_bytes() == value.as_bytes()),
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP.

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    spark: Arc<Spark>,
}

/// The Spark routes.
pub(crate) fn router(shared: Arc<Shared>, spark: Arc<Spark>) -> Router {
    Router::new()
        .route("/message/query", post(query))
        .route("/message/send", post(send))
        .route("/session/close", post(close))
        .route("/session/restart", post(restart))
        .route("/session/transfer", post(transfer))
        .with_state(App { shared, spark })
}

fn ok() -> Response {
    json(StatusCode::OK, &json!({"Code": 0, "Message": "ok"}))
}

fn unreadable(e: &serde_json::Error) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        &json!({"Code": 1003, "Message": format!("unreadable request body: {e}")}),
    )
}

/// Checks credentials and reads the body, or answers the refusal.
fn admit<T: serde::de::DeserializeOwned>(
    spark: &Spark,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Response> {
    if !spark.authorized(headers) {
        lock(&spark.inner).received.unauthorized += 1;
        return Err(json(
            StatusCode::UNAUTHORIZED,
            &json!({"Code": 401, "Message": "bad credentials"}),
        ));
    }
    parse_body(body).map_err(|e| unreadable(&e))
}

async fn query(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let spark = &app.spark;
    let req: QueryIn = match admit(spark, &headers, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let version = req.last_version.unwrap_or_default();
    if !version.trim().is_empty() {
        let mut s = lock(&spark.inner);
        s.received.history_queries += 1;
        // Acks sent along a history query still count: the client stored them.
        if let Some(acks) = req.acks.as_deref() {
            s.ack(acks);
        }
        return match s.history(version.trim(), spark.tz) {
            Ok(ops) => {
                drop(s);
                json(StatusCode::OK, &QueryOut { operation: ops })
            }
            Err(r) => r.response(),
        };
    }

    let mut rx = spark.changed.subscribe();
    {
        let mut s = lock(&spark.inner);
        s.received.live_queries += 1;
        if let Some(acks) = req.acks.as_deref() {
            s.ack(acks);
        }
    }
    let deadline = tokio::time::Instant::now() + spark.hold;
    loop {
        rx.borrow_and_update();
        let mut ops = lock(&spark.inner).live(spark.tz, spark.batch_max);
        if !ops.is_empty() {
            app.shared.faults.spark_disorder(&mut ops, |o: &OpOut| {
                o.message.as_ref().is_some_and(|m| !m.is_empty())
            });
            return json(StatusCode::OK, &QueryOut { operation: ops });
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, rx.changed()) => {
                if !matches!(changed, Ok(Ok(()))) {
                    break;
                }
            }
            _ = app.shared.shutdown.cancelled() => break,
        }
    }
    json(
        StatusCode::OK,
        &QueryOut {
            operation: Vec::new(),
        },
    )
}

async fn send(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let spark = &app.spark;
    let req: SendIn = match admit(spark, &headers, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let result = spark.mutate(|s| {
        let result = s.send(&req);
        let (code, message_id, result_session_id) = match &result {
            Ok((sid, mid)) => (0, Some(mid.clone()), Some(sid.clone())),
            Err(r) => (r.code(), None, None),
        };
        s.received.sends.push(SparkSendRecord {
            session_id: req.session_id.clone().unwrap_or_default(),
            to_id: req.to_id.clone().unwrap_or_default(),
            content_type: req.content_type.clone().unwrap_or_default(),
            content: req.content.clone().unwrap_or_default(),
            create_time: req.create_time.clone().unwrap_or_default(),
            code,
            message_id,
            result_session_id,
        });
        result
    });
    match result {
        Ok((session_id, message_id)) => json(
            StatusCode::OK,
            &json!({"Code": 0, "Message": "ok", "SessionId": session_id, "MessageId": message_id}),
        ),
        Err(r) => r.response(),
    }
}

#[derive(Clone, Copy)]
enum Action {
    Close,
    Restart,
    Transfer,
}

async fn session_action(app: App, headers: HeaderMap, body: Bytes, action: Action) -> Response {
    let spark = &app.spark;
    let req: SessionIn = match admit(spark, &headers, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let session_id = req.session_id.unwrap_or_default();
    let to_new_id = req.to_new_id;
    let result = spark.mutate(|s| {
        let result = match action {
            Action::Close => s.close(&session_id),
            Action::Restart => s.restart(&session_id),
            Action::Transfer => s.transfer(&session_id, to_new_id.as_deref().unwrap_or("")),
        };
        let record = SparkActionRecord {
            session_id: session_id.clone(),
            to_new_id: to_new_id.clone(),
            code: result.as_ref().map_or_else(Refusal::code, |_| 0),
        };
        match action {
            Action::Close => s.received.closes.push(record),
            Action::Restart => s.received.restarts.push(record),
            Action::Transfer => s.received.transfers.push(record),
        }
        result
    });
    match result {
        Ok(()) => ok(),
        Err(r) => r.response(),
    }
}

async fn close(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    session_action(app, headers, body, Action::Close).await
}

async fn restart(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    session_action(app, headers, body, Action::Restart).await
}

async fn transfer(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    session_action(app, headers, body, Action::Transfer).await
}
