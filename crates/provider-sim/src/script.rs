//! Scripts: customers, agents and conversations with timed events, in TOML
//! or JSON, applied to whichever providers the simulator serves.
//!
//! A script speaks of conversations in provider-neutral terms (a customer
//! sends a text, an agent sends a card, the session closes); this module
//! maps each event onto the provider's own wire form: a Spark message or
//! DelSession, a ccmessaging history item with the right `controlType`,
//! `sourceType` and `mediaType`, a Kchat message type or chat change. The
//! traffic generator and seeded history use the same mapping.
//!
//! ```toml
//! [[agents]]
//! id = "1001"
//! name = "王芳"
//!
//! [[customers]]
//! id = "c-zhang"
//! name = "张伟"
//!
//! [[sessions]]
//! provider = "spark"
//! customer = "c-zhang"
//! agent = "1001"
//! channel = "wechat"
//! events = [
//!   { at = -3600, from = "customer", kind = "text", text = "你好，请问在吗？" },
//!   { at = -3590, from = "agent", kind = "text", text = "您好，请问有什么可以帮您？" },
//!   { at = 5, from = "customer", kind = "image", url = "https://img.example.com/a.jpg" },
//!   { at = 60, kind = "close" },
//! ]
//! ```
//! `at` is seconds from the moment the script is applied: negative is in
//! the past (applied at once, with that time), positive is scheduled.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ccmessaging::CcmItem;
use crate::error::SimError;
use crate::kchat::{KchatChatPatch, KchatNewChat, KchatNewMessage, KchatUploadIn};
use crate::options::SimProvider;
use crate::spark::{SparkAgent, SparkInject};
use crate::util::{hex_id, lock};
use crate::Shared;

/// A whole script.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Agents (Spark agents; Kchat `agent_id`s).
    #[serde(default)]
    pub agents: Vec<ScriptAgent>,
    /// Customers; a session may also name a customer not listed here.
    #[serde(default)]
    pub customers: Vec<ScriptCustomer>,
    /// Conversations with their events.
    #[serde(default)]
    pub sessions: Vec<ScriptSession>,
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptAgent {
    /// Spark agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the agent is online (transfers need it).
    #[serde(default = "yes")]
    pub online: bool,
    /// Kchat `agent_id` (default: `id` when numeric, else derived from it).
    #[serde(default)]
    pub kchat_id: Option<u64>,
}

fn yes() -> bool {
    true
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptCustomer {
    /// Spark customer id (`FromId`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    #[serde(default)]
    pub image: Option<String>,
    /// ccmessaging `userId` (default: `id`).
    #[serde(default)]
    pub ccm_user_id: Option<String>,
    /// Kchat `visitor_id` (default: `id` when numeric, else derived from it).
    #[serde(default)]
    pub kchat_visitor_id: Option<u64>,
    /// Kchat `user_id` of the linked ticket-system user.
    #[serde(default)]
    pub kchat_user_id: Option<u64>,
}

/// How ccmessaging items of a conversation are grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CcmGrouping {
    /// Items carry `callId` (the usual case).
    #[default]
    Call,
    /// Items carry `chatId` and no `callId`.
    Chat,
    /// Items carry neither (readers group them by user and day).
    None,
}

/// One conversation on one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptSession {
    /// `spark`, `ccmessaging` or `kchat`.
    pub provider: SimProvider,
    /// Spark `SessionId`, ccmessaging `callId`/`chatId`, or Kchat chat id
    /// (numeric); generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The customer's id.
    pub customer: String,
    /// The agent's id (default: the first agent of the script, else `1001`).
    #[serde(default)]
    pub agent: Option<String>,
    /// Spark: `web` (default), `wechat`, `app` or a number; ccmessaging:
    /// the `channel` (default `WEB`).
    #[serde(default)]
    pub channel: Option<String>,
    /// ccmessaging grouping field.
    #[serde(default)]
    pub ccm_grouping: CcmGrouping,
    /// What happens, in any order (they are sorted by `at`).
    #[serde(default)]
    pub events: Vec<ScriptEvent>,
}

/// Who an event comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The customer (Spark Type 0, ccmessaging USER, Kchat visitor).
    #[default]
    Customer,
    /// The agent.
    Agent,
    /// A bot.
    Robot,
    /// The system.
    System,
}

/// One timed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptEvent {
    /// Seconds from the moment the script is applied (negative: past).
    pub at: i64,
    /// Who acts.
    #[serde(default)]
    pub from: Party,
    /// What happens.
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A text (may hold HTML for ccmessaging).
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// Spark image URL (default: a generated one).
        #[serde(default)]
        url: Option<String>,
        /// ccmessaging: as `FILE_IMAGE` rather than `IMAGE`.
        #[serde(default)]
        as_file: bool,
    },
    /// A voice message.
    Audio,
    /// A video.
    Video {
        /// ccmessaging: as `FILE_VIDEO` rather than `VIDEO`.
        #[serde(default)]
        as_file: bool,
    },
    /// A file.
    File {
        /// File name.
        name: String,
        /// Size in bytes.
        #[serde(default)]
        size: Option<u64>,
    },
    /// A card.
    Card {
        /// Title.
        title: String,
        /// Description.
        #[serde(default)]
        description: String,
        /// Where it leads.
        #[serde(default)]
        url: String,
    },
    /// A location.
    Location {
        /// Latitude.
        lat: f64,
        /// Longitude.
        long: f64,
        /// What is there.
        #[serde(default)]
        description: String,
    },
    /// The customer connects (ccmessaging CONNECT, Kchat chat.memberjoin).
    Connect,
    /// Typing (ccmessaging INPUT).
    Typing,
    /// Read receipt (ccmessaging READ).
    Read,
    /// Hand-over from the bot to a person (ccmessaging TRANS2AGENT, Kchat
    /// queue.waiting and assignment).
    TransferToAgent,
    /// Hand-over to another agent.
    Transfer {
        /// The new agent's id.
        to: String,
    },
    /// The session ends (Spark DelSession, ccmessaging DISCONNECT, Kchat
    /// status close).
    Close,
    /// The session reopens (Spark restart, ccmessaging CONNECT with a new
    /// call, Kchat status open).
    Reopen,
    /// A provider-specific item for robustness tests: a Kchat message
    /// type, or ccmessaging types; ignored by the providers it names nothing for.
    Raw {
        /// Kchat message `type`.
        #[serde(default)]
        kchat_type: Option<String>,
        /// ccmessaging `controlType` (default CHAT).
        #[serde(default)]
        ccm_control_type: Option<String>,
        /// ccmessaging `mediaType`.
        #[serde(default)]
        ccm_media_type: Option<String>,
        /// ccmessaging `sourceType` (default: from `from`).
        #[serde(default)]
        ccm_source_type: Option<String>,
        /// Content / `msg`.
        #[serde(default)]
        content: Option<String>,
    },
}

impl Script {
    /// Reads a script file: JSON when the name ends in `.json`, else TOML.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SimError> {
        let path = path.as_ref();
        let err = |message: String| SimError::Script {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let script = if is_json {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        script.map_err(|e| match e {
            SimError::Invalid(m) => err(m),
            other => other,
        })
    }

    /// Reads a TOML script.
    pub fn from_toml_str(text: &str) -> Result<Self, SimError> {
        let script: Script = toml::from_str(text).map_err(|e| SimError::Invalid(e.to_string()))?;
        script.validate()?;
        Ok(script)
    }

    /// Reads a JSON script.
    pub fn from_json_str(text: &str) -> Result<Self, SimError> {
        let script: Script =
            serde_json::from_str(text).map_err(|e| SimError::Invalid(e.to_string()))?;
        script.validate()?;
        Ok(script)
    }

    /// Checks what can be checked before anything is applied.
    pub fn validate(&self) -> Result<(), SimError> {
        for (i, s) in self.sessions.iter().enumerate() {
            if s.provider == SimProvider::All {
                return Err(SimError::Invalid(format!(
                    "sessions[{i}]: provider is spark, ccmessaging or kchat"
                )));
            }
            if s.provider == SimProvider::Kchat {
                if let Some(id) = &s.id {
                    if id.parse::<u64>().is_err() {
                        return Err(SimError::Invalid(format!(
                            "sessions[{i}]: a Kchat chat id is a number, not {id}"
                        )));
                    }
                }
            }
            if s.provider == SimProvider::Spark {
                if let Some(ch) = &s.channel {
                    spark_session_type(ch)
                        .map_err(|m| SimError::Invalid(format!("sessions[{i}]: {m}")))?;
                }
            }
        }
        for c in &self.customers {
            let ccm = c.ccm_user_id.as_deref().unwrap_or(&c.id);
            if ccm.is_empty() || ccm.chars().count() > 24 {
                return Err(SimError::Invalid(format!(
                    "customer {}: a ccmessaging userId is 1 to 24 characters",
                    c.id
                )));
            }
        }
        Ok(())
    }
}

fn spark_session_type(channel: &str) -> Result<i64, String> {
    match channel.to_ascii_lowercase().as_str() {
        "web" => Ok(0),
        "wechat" => Ok(1),
        "app" => Ok(2),
        other => other
            .parse()
            .map_err(|_| format!("Spark channel is web, wechat, app or a number, not {other}")),
    }
}

/// A number for a string id that is not one (stable across runs).
fn numeric_id(id: &str) -> u64 {
    id.parse().unwrap_or_else(|_| {
        // FNV-1a, folded into six digits so it reads like an id.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        100_000 + h % 900_000
    })
}

/// What [`crate::SimControl::apply_script`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptReport {
    /// Events applied at once (at or before now).
    pub applied: usize,
    /// Events scheduled for later.
    pub scheduled: usize,
    /// Sessions skipped because their provider is not served.
    pub skipped_sessions: usize,
    /// Events that could not be applied, with why.
    pub warnings: Vec<String>,
}

/// A conversation being played: who takes part and what the provider
/// knows it as.
pub(crate) struct Conversation {
    pub(crate) provider: SimProvider,
    customer: ScriptCustomer,
    /// The agent who answers (traffic updates it after a transfer).
    pub(crate) agent: ScriptAgent,
    channel: String,
    ccm_grouping: CcmGrouping,
    /// Spark `SessionId`; ccmessaging call/chat id; Kchat chat id as text.
    pub(crate) id: String,
    kchat_chat: Option<u64>,
    kchat_created: bool,
    kchat_assigned: bool,
    started: bool,
}

impl Conversation {
    pub(crate) fn new(
        shared: &Shared,
        provider: SimProvider,
        customer: ScriptCustomer,
        agent: ScriptAgent,
        channel: Option<String>,
        ccm_grouping: CcmGrouping,
        id: Option<String>,
    ) -> Self {
        let id = id.unwrap_or_else(|| {
            let mut rng = lock(&shared.rng);
            match provider {
                SimProvider::Ccmessaging => format!(
                    "{}-{}",
                    Utc::now().timestamp(),
                    crate::util::digit_id(&mut rng, 8)
                ),
                _ => hex_id(&mut rng, 20),
            }
        });
        let kchat_chat = (provider == SimProvider::Kchat)
            .then(|| id.parse().ok())
            .flatten();
        Self {
            provider,
            customer,
            agent,
            channel: channel.unwrap_or_else(|| match provider {
                SimProvider::Ccmessaging => "WEB".into(),
                _ => "web".into(),
            }),
            ccm_grouping,
            id,
            kchat_chat,
            kchat_created: false,
            kchat_assigned: false,
            started: false,
        }
    }

    /// Whether an event has reached the provider yet.
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    fn sender_name(&self, from: Party) -> String {
        match from {
            Party::Customer => self.customer.name.clone(),
            Party::Agent => self.agent.name.clone(),
            Party::Robot => "智能助手".into(),
            Party::System => "系统".into(),
        }
    }

    fn kchat_agent(&self) -> u64 {
        self.agent
            .kchat_id
            .unwrap_or_else(|| numeric_id(&self.agent.id))
    }

    /// Applies one event at time `at`.
    pub(crate) fn apply(
        &mut self,
        shared: &Shared,
        from: Party,
        body: &EventBody,
        at: DateTime<Utc>,
    ) -> Result<(), SimError> {
        let result = match self.provider {
            SimProvider::Spark => self.apply_spark(shared, from, body, at),
            SimProvider::Ccmessaging => self.apply_ccm(shared, from, body, at),
            SimProvider::Kchat => self.apply_kchat(shared, from, body, at),
            SimProvider::All => Err(SimError::Invalid(
                "a conversation is on one provider".into(),
            )),
        };
        if result.is_ok() {
            self.started = true;
        }
        result
    }

    fn apply_spark(
        &mut self,
        shared: &Shared,
        from: Party,
        body: &EventBody,
        at: DateTime<Utc>,
    ) -> Result<(), SimError> {
        let spark = shared.spark()?;
        let (text, image) = match body {
            EventBody::Text { text } => (Some(text.clone()), None),
            EventBody::Image { url, .. } => (
                None,
                Some(
                    url.clone()
                        .unwrap_or_else(|| crate::content::image_url(&mut lock(&shared.rng))),
                ),
            ),
            EventBody::Audio => (Some("[语音消息]".to_string()), None),
            EventBody::Video { .. } => (
                Some("[视频] https://video.example.com/clip.mp4".to_string()),
                None,
            ),
            EventBody::File { name, .. } => (
                Some(format!("[文件] {name} https://files.example.com/{name}")),
                None,
            ),
            EventBody::Card {
                title,
                description,
                url,
            } => (Some(format!("【{title}】{description} {url}")), None),
            EventBody::Location {
                lat,
                long,
                description,
            } => (Some(format!("[位置] {description} ({lat}, {long})")), None),
            EventBody::Transfer { to } => return spark.provider_transfer(&self.id, to),
            EventBody::Close => return spark.provider_close(&self.id),
            EventBody::Reopen => return spark.provider_restart(&self.id),
            EventBody::Connect
            | EventBody::Typing
            | EventBody::Read
            | EventBody::TransferToAgent
            | EventBody::Raw { .. } => return Ok(()),
        };
        let session_type = spark_session_type(&self.channel).unwrap_or(0);
        spark.inject(SparkInject {
            session_id: Some(self.id.clone()),
            customer_id: Some(self.customer.id.clone()),
            customer_name: Some(self.customer.name.clone()),
            customer_image: self.customer.image.clone(),
            agent_id: Some(self.agent.id.clone()),
            agent_name: Some(self.agent.name.clone()),
            session_type: Some(session_type),
            message_type: u8::from(from != Party::Customer),
            text,
            image_url: image,
            at: Some(at),
        })?;
        Ok(())
    }

    fn apply_ccm(
        &mut self,
        shared: &Shared,
        from: Party,
        body: &EventBody,
        at: DateTime<Utc>,
    ) -> Result<(), SimError> {
        let ccm = shared.ccm()?;
        let source = match from {
            Party::Customer => "USER",
            Party::Agent => "AGENT",
            Party::Robot => "ROBOT",
            Party::System => "SYSTEM",
        };
        let (control, media, content): (&str, Option<String>, Option<String>) = match body {
            EventBody::Text { text } => ("CHAT", Some("TEXT".into()), Some(text.clone())),
            EventBody::Image { as_file, .. } => {
                let (key, _) = shared.store_object("image/png", "image.png");
                if *as_file {
                    (
                        "CHAT",
                        Some("FILE_IMAGE".into()),
                        Some(format!("{key},png")),
                    )
                } else {
                    ("CHAT", Some("IMAGE".into()), Some(key))
                }
            }
            EventBody::Audio => {
                let (key, _) = shared.store_object("audio/mpeg", "voice.mp3");
                ("CHAT", Some("AUDIO".into()), Some(key))
            }
            EventBody::Video { as_file } => {
                let (key, _) = shared.store_object("video/mp4", "clip.mp4");
                if *as_file {
                    (
                        "CHAT",
                        Some("FILE_VIDEO".into()),
                        Some(format!("{key},mp4")),
                    )
                } else {
                    ("CHAT", Some("VIDEO".into()), Some(key))
                }
            }
            EventBody::File { name, size } => {
                let (key, stored) = shared.store_object("application/octet-stream", name);
                let size = size.unwrap_or(stored);
                let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
                (
                    "CHAT",
                    Some("FILE".into()),
                    Some(format!("{name},{size},{key},{ext}")),
                )
            }
            EventBody::Card {
                title,
                description,
                url,
            } => (
                "CHAT",
                Some("WEBCARD".into()),
                Some(
                    json!({
                        "title": title,
                        "description": description,
                        "mediaFileId": "",
                        "mediaFileType": "img",
                        "redirectUrl": url,
                    })
                    .to_string(),
                ),
            ),
            EventBody::Location {
                lat,
                long,
                description,
            } => (
                "CHAT",
                Some("LOCATE".into()),
                Some(format!("{lat}/{long}/{description}")),
            ),
            EventBody::Connect => ("CONNECT", None, None),
            EventBody::Reopen => {
                if self.started {
                    let mut rng = lock(&shared.rng);
                    self.id = format!("{}-{}", at.timestamp(), crate::util::digit_id(&mut rng, 8));
                }
                ("CONNECT", None, None)
            }
            EventBody::Typing => ("INPUT", None, None),
            EventBody::Read => ("READ", None, None),
            EventBody::TransferToAgent | EventBody::Transfer { .. } => ("TRANS2AGENT", None, None),
            EventBody::Close => ("DISCONNECT", None, None),
            EventBody::Raw {
                ccm_control_type,
                ccm_media_type,
                ccm_source_type,
                content,
                ..
            } => {
                let source_type = ccm_source_type.clone().unwrap_or_else(|| source.into());
                // An item the provider files as the customer's carries the
                // customer's nickname and avatar, whoever the script says
                // produced it (ccmessaging.md: the customer's name comes
                // from their own items).
                let sender = match source_type.to_ascii_uppercase().as_str() {
                    "USER" | "CUSTOMER" => Party::Customer,
                    _ => from,
                };
                let item = CcmItem {
                    user_id: self.ccm_user(),
                    control_type: Some(ccm_control_type.clone().unwrap_or_else(|| "CHAT".into())),
                    media_type: ccm_media_type.clone(),
                    source_type: Some(source_type),
                    content: content.clone(),
                    ..self.ccm_item(sender, at)
                };
                ccm.add_items(vec![item])?;
                return Ok(());
            }
        };
        let item = CcmItem {
            control_type: Some(control.into()),
            source_type: Some(source.into()),
            media_type: media,
            content,
            ..self.ccm_item(from, at)
        };
        ccm.add_items(vec![item])?;
        Ok(())
    }

    fn ccm_user(&self) -> String {
        self.customer
            .ccm_user_id
            .clone()
            .unwrap_or_else(|| self.customer.id.clone())
    }

    fn ccm_item(&self, from: Party, at: DateTime<Utc>) -> CcmItem {
        let (call_id, chat_id) = match self.ccm_grouping {
            CcmGrouping::Call => (Some(self.id.clone()), None),
            CcmGrouping::Chat => (None, Some(self.id.clone())),
            CcmGrouping::None => (None, None),
        };
        CcmItem {
            user_id: self.ccm_user(),
            channel: Some(self.channel.to_ascii_uppercase()),
            sender_nickname: Some(self.sender_name(from)),
            sender_avatar: Some(match from {
                Party::Customer => "../../image/user1.png".into(),
                _ => "../../image/agent.png".into(),
            }),
            call_id,
            chat_id,
            send_time: Some(at.timestamp_millis()),
            ..CcmItem::default()
        }
    }

    fn apply_kchat(
        &mut self,
        shared: &Shared,
        from: Party,
        body: &EventBody,
        at: DateTime<Utc>,
    ) -> Result<(), SimError> {
        let kchat = shared.kchat()?;
        let chat_id = match self.kchat_chat {
            Some(id) if self.kchat_created => id,
            wanted => {
                let id = kchat.add_chat(KchatNewChat {
                    id: wanted,
                    visitor_id: self
                        .customer
                        .kchat_visitor_id
                        .unwrap_or_else(|| numeric_id(&self.customer.id)),
                    visitor_name: Some(self.customer.name.clone()),
                    user_id: self.customer.kchat_user_id,
                    started_by: Some(
                        match from {
                            Party::Customer => "visitor",
                            Party::Agent => "agent",
                            Party::Robot | Party::System => "system",
                        }
                        .into(),
                    ),
                    created_at: Some(at),
                    ..KchatNewChat::default()
                })?;
                self.kchat_chat = Some(id);
                self.kchat_created = true;
                self.id = id.to_string();
                id
            }
        };
        let agent_id = self.kchat_agent();
        if (from == Party::Agent || matches!(body, EventBody::TransferToAgent))
            && !self.kchat_assigned
        {
            self.kchat_assigned = true;
            kchat.update_chat(
                chat_id,
                KchatChatPatch {
                    agent_id: Some(agent_id),
                    assigned_at: Some(at),
                    ..KchatChatPatch::default()
                },
            )?;
        }
        let user_id = (from == Party::Agent).then_some(agent_id);
        let text_type = match from {
            Party::Customer | Party::Agent => "chat.msg",
            Party::Robot => "chat.answer",
            Party::System => "chat.system",
        };
        let upload = |name: &str, mime: &str, size: Option<u64>| {
            let mut up = KchatUploadIn {
                name: name.into(),
                mime: mime.into(),
                size,
                url: None,
            };
            shared.fill_upload(&mut up);
            up
        };
        let msg = |kind: &str, msg: Option<String>, up: Option<KchatUploadIn>| KchatNewMessage {
            kind: Some(kind.into()),
            name: Some(self.sender_name(from)),
            msg,
            user_id,
            is_read: Some(1),
            created_at: Some(at),
            upload: up,
        };
        let message = match body {
            EventBody::Text { text } => msg(text_type, Some(text.clone()), None),
            EventBody::Image { .. } => {
                let up = upload("image.png", "image/png", None);
                msg("chat.upload", Some("image.png".into()), Some(up))
            }
            EventBody::Audio => {
                let up = upload("voice.mp3", "audio/mpeg", None);
                msg("chat.upload", Some("voice.mp3".into()), Some(up))
            }
            EventBody::Video { .. } => {
                let up = upload("clip.mp4", "video/mp4", None);
                msg("chat.upload", Some("clip.mp4".into()), Some(up))
            }
            EventBody::File { name, size } => {
                let up = upload(name, "application/octet-stream", *size);
                msg("chat.upload", Some(name.clone()), Some(up))
            }
            EventBody::Card {
                title,
                description,
                url,
            } => msg(
                "chat.card",
                Some(json!({"title": title, "description": description, "url": url}).to_string()),
                None,
            ),
            EventBody::Location {
                lat,
                long,
                description,
            } => msg(
                "chat.custom",
                Some(json!({"type": "location", "lat": lat, "long": long, "description": description}).to_string()),
                None,
            ),
            EventBody::Connect => msg("chat.memberjoin", Some("你好".into()), None),
            EventBody::TransferToAgent => msg("queue.waiting", Some("正在为您转接人工客服，请稍候".into()), None),
            EventBody::Transfer { to } => {
                let new_agent = numeric_id(to);
                kchat.update_chat(
                    chat_id,
                    KchatChatPatch {
                        agent_id: Some(new_agent),
                        ..KchatChatPatch::default()
                    },
                )?;
                msg("chat.system", Some(format!("对话已转接给客服 {to}")), None)
            }
            EventBody::Close => {
                kchat.update_chat(
                    chat_id,
                    KchatChatPatch {
                        status: Some("close".into()),
                        end_at: Some(at),
                        ..KchatChatPatch::default()
                    },
                )?;
                return Ok(());
            }
            EventBody::Reopen => {
                return kchat.update_chat(
                    chat_id,
                    KchatChatPatch {
                        status: Some("open".into()),
                        ..KchatChatPatch::default()
                    },
                );
            }
            EventBody::Typing | EventBody::Read => return Ok(()),
            EventBody::Raw {
                kchat_type,
                content,
                ..
            } => match kchat_type {
                Some(kind) => msg(kind, content.clone(), None),
                None => return Ok(()),
            },
        };
        kchat.add_message(chat_id, message)?;
        Ok(())
    }
}

/// Plays a script: registers its agents, applies past events at once in
/// time order and schedules the rest on a task that ends with the server.
pub(crate) fn apply(shared: &Arc<Shared>, script: &Script) -> Result<ScriptReport, SimError> {
    script.validate()?;
    let mut report = ScriptReport::default();
    if let Some(spark) = shared.spark.as_deref() {
        for a in &script.agents {
            spark.set_agent(SparkAgent {
                id: a.id.clone(),
                name: Some(a.name.clone()),
                image: None,
                online: a.online,
            });
        }
    }
    let customers: HashMap<&str, &ScriptCustomer> = script
        .customers
        .iter()
        .map(|c| (c.id.as_str(), c))
        .collect();
    let agents: HashMap<&str, &ScriptAgent> =
        script.agents.iter().map(|a| (a.id.as_str(), a)).collect();
    let default_agent = script.agents.first().cloned().unwrap_or(ScriptAgent {
        id: "1001".into(),
        name: "王芳".into(),
        online: true,
        kchat_id: None,
    });

    let mut convs = Vec::new();
    let mut events = Vec::new();
    for s in &script.sessions {
        if !shared.served.includes(s.provider) {
            report.skipped_sessions += 1;
            continue;
        }
        let customer = customers
            .get(s.customer.as_str())
            .map(|c| (*c).clone())
            .unwrap_or_else(|| ScriptCustomer {
                id: s.customer.clone(),
                name: s.customer.clone(),
                image: None,
                ccm_user_id: None,
                kchat_visitor_id: None,
                kchat_user_id: None,
            });
        let agent = s
            .agent
            .as_deref()
            .map(|id| {
                agents.get(id).map(|a| (*a).clone()).unwrap_or(ScriptAgent {
                    id: id.to_string(),
                    name: id.to_string(),
                    online: true,
                    kchat_id: None,
                })
            })
            .unwrap_or_else(|| default_agent.clone());
        let idx = convs.len();
        convs.push(Conversation::new(
            shared,
            s.provider,
            customer,
            agent,
            s.channel.clone(),
            s.ccm_grouping,
            s.id.clone(),
        ));
        for e in &s.events {
            events.push((e.at, idx, e.from, e.body.clone()));
        }
    }
    events.sort_by_key(|e| e.0);

    let start = Utc::now();
    let split = events.partition_point(|e| e.0 <= 0);
    let future = events.split_off(split);
    for (at, idx, from, body) in events {
        let when = start + chrono::TimeDelta::seconds(at);
        match convs[idx].apply(shared, from, &body, when) {
            Ok(()) => report.applied += 1,
            Err(e) => report.warnings.push(format!("event at {at}s: {e}")),
        }
    }
    for w in &report.warnings {
        tracing::warn!("script: {w}");
    }
    report.scheduled = future.len();
    if !future.is_empty() {
        let shared = Arc::clone(shared);
        let base = tokio::time::Instant::now();
        tokio::spawn(async move {
            for (at, idx, from, body) in future {
                let offset = std::time::Duration::from_secs(at.unsigned_abs());
                tokio::select! {
                    _ = tokio::time::sleep_until(base + offset) => {}
                    _ = shared.shutdown.cancelled() => return,
                }
                if let Err(e) = convs[idx].apply(&shared, from, &body, Utc::now()) {
                    tracing::warn!("script: event at {at}s: {e}");
                }
            }
        });
    }
    Ok(report)
}
