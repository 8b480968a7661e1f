//! The control surface: [`SimControl`] in-process, and the same operations
//! over HTTP under `/_sim/` for anything driving the simulator from outside.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/state` | | summary of every served provider |
//! | `POST /_sim/reset` | | empties all state, faults and records |
//! | `POST /_sim/spark/messages` | [`SparkInject`] | [`SparkInjected`] |
//! | `POST /_sim/spark/bulk` | [`SparkBulk`] | [`SparkBulkReport`] |
//! | `GET /_sim/spark/sessions` | | list of [`SparkSessionInfo`] |
//! | `POST /_sim/spark/sessions/{id}/close` | | provider-side close (DelSession) |
//! | `PUT /_sim/spark/agents/{id}` | `{"online", "name"?, "image"?}` | creates or updates an agent |
//! | `GET /_sim/spark/received` | | [`SparkReceived`] |
//! | `POST /_sim/ccmessaging/messages` | `{"items": [CcmItem…]}` | `{"ids": […]}` |
//! | `POST /_sim/ccmessaging/tokens/expire` | [`CcmExpire`] | `{"expired": n}` |
//! | `POST /_sim/ccmessaging/tokens/rotate` | `{"user_id"?}` | next history answer rotates |
//! | `GET /_sim/ccmessaging/received` | | [`CcmReceived`] |
//! | `POST /_sim/kchat/chats` | [`KchatNewChat`] | `{"id"}` |
//! | `PATCH /_sim/kchat/chats/{id}` | [`KchatChatPatch`] | |
//! | `POST /_sim/kchat/chats/{id}/close` | | status close, `end_at` now |
//! | `POST /_sim/kchat/chats/{id}/messages` | [`KchatNewMessage`] | `{"id"}` |
//! | `GET /_sim/kchat/received` | | [`KchatReceived`] |
//! | `GET /_sim/faults/{provider}` | | `{"profile", "next"}` |
//! | `PUT /_sim/faults/{provider}` | [`FaultProfile`] | |
//! | `POST /_sim/faults/{provider}/next` | [`FailNext`] | |
//! | `DELETE /_sim/faults/{provider}` | | clears profile and rules |
//! | `POST /_sim/script` | a [`Script`] as JSON | [`ScriptReport`] |
//! | `POST /_sim/history` | [`HistoryOptions`] | [`ScriptReport`] |
//! | `POST /_sim/traffic/start` | [`TrafficOptions`] | |
//! | `POST /_sim/traffic/stop` | | stops every generator |
//! | `GET /_sim/files/{key}` | | bytes of a generated image or file |
//!
//! `{provider}` is `spark`, `ccmessaging`, `kchat` or `all`. Successful
//! calls without an answer body give `{"ok": true}`; failures give
//! `{"error": "…"}` with 400 (bad input) or 404 (unknown id, provider not
//! served).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ccmessaging::{CcmExpire, CcmItem, CcmReceived};
use crate::error::SimError;
use crate::faults::{FailNext, FaultProfile, SINGLE};
use crate::kchat::{KchatChatPatch, KchatNewChat, KchatNewMessage, KchatReceived};
use crate::options::SimProvider;
use crate::script::{Script, ScriptReport};
use crate::spark::{
    SparkAgent, SparkBulk, SparkBulkReport, SparkInject, SparkInjected, SparkReceived,
    SparkSessionInfo,
};
use crate::traffic::{HistoryOptions, TrafficHandle, TrafficOptions};
use crate::util::{json, lock, parse_body};
use crate::Shared;

/// A cloneable handle on a running simulator: inject, inspect and fault it
/// in-process, exactly as the `/_sim/` routes do over HTTP.
#[derive(Clone)]
pub struct SimControl {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SimControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimControl")
            .field("provider", &self.shared.served)
            .field("base_url", &self.shared.base_url)
            .finish()
    }
}

/// The faults in force for one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSnapshot {
    /// The rate-based profile.
    pub profile: FaultProfile,
    /// Queued next-N rules, with their remaining counts.
    pub next: Vec<FailNext>,
}

impl SimControl {
    /// Which provider(s) this simulator serves.
    pub fn provider(&self) -> SimProvider {
        self.shared.served
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:9101`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// A summary of every served provider's state and what it received.
    pub fn state(&self) -> Value {
        let s = &self.shared;
        json!({
            "provider": s.served,
            "base_url": s.base_url,
            "time_zone": s.tz.name(),
            "spark": s.spark.as_deref().map(|x| x.summary()),
            "ccmessaging": s.ccm.as_deref().map(|x| x.summary()),
            "kchat": s.kchat.as_deref().map(|x| x.summary()),
            "faults_fired": s.faults.fired(),
            "traffic_running": lock(&s.traffic).iter().filter(|t| !t.is_cancelled()).count(),
        })
    }

    /// Empties all state: sessions, messages, tokens, records, faults and
    /// generated files; stops traffic. Spark keeps its default agents.
    pub fn reset(&self) {
        self.stop_traffic();
        let s = &self.shared;
        if let Some(x) = s.spark.as_deref() {
            x.reset();
        }
        if let Some(x) = s.ccm.as_deref() {
            x.reset();
        }
        if let Some(x) = s.kchat.as_deref() {
            x.reset();
        }
        for p in SINGLE {
            s.faults.clear(p);
        }
        lock(&s.files).clear();
    }

    // --- Spark ---------------------------------------------------------

    /// Injects a message from the provider side (a customer's, or an agent's
    /// sent elsewhere), creating the session if new; it goes on the feed.
    pub fn spark_inject(&self, msg: SparkInject) -> Result<SparkInjected, SimError> {
        self.shared.spark()?.inject(msg)
    }

    /// Generates many messages over new sessions in one step (load tests);
    /// they go on the feed together, as one burst.
    pub fn spark_bulk(&self, req: SparkBulk) -> Result<SparkBulkReport, SimError> {
        self.shared.spark()?.bulk(req)
    }

    /// Ends a session on the provider side; a DelSession goes on the feed.
    pub fn spark_close(&self, session_id: &str) -> Result<(), SimError> {
        self.shared.spark()?.provider_close(session_id)
    }

    /// Creates or updates an agent (e.g. offline, to refuse transfers).
    pub fn spark_set_agent(&self, agent: SparkAgent) -> Result<(), SimError> {
        self.shared.spark()?.set_agent(agent);
        Ok(())
    }

    /// Every session.
    pub fn spark_sessions(&self) -> Result<Vec<SparkSessionInfo>, SimError> {
        Ok(self.shared.spark()?.sessions())
    }

    /// What the Spark simulator received: sends, acks, closes, restarts,
    /// transfers and query counts.
    pub fn spark_received(&self) -> Result<SparkReceived, SimError> {
        Ok(self.shared.spark()?.received())
    }

    // --- ccmessaging ---------------------------------------------------

    /// Adds history items; returns their ids.
    pub fn ccm_add_items(&self, items: Vec<CcmItem>) -> Result<Vec<String>, SimError> {
        self.shared.ccm()?.add_items(items)
    }

    /// Expires tokens now; returns how many.
    pub fn ccm_expire_tokens(&self, which: CcmExpire) -> Result<usize, SimError> {
        Ok(self.shared.ccm()?.expire(&which))
    }

    /// The next successful history call (of `user_id`, or of anyone) hands
    /// out a fresh `ccmessaging-token` in its response header and retires
    /// the one it was called with.
    pub fn ccm_rotate_token(&self, user_id: Option<String>) -> Result<(), SimError> {
        self.shared.ccm()?.rotate(user_id);
        Ok(())
    }

    /// Stores a file under `object_key`, as uploadFileStream would: served
    /// by `downloadFileStream` (base64) and under `/_sim/files/{object_key}`.
    pub fn ccm_put_file(
        &self,
        object_key: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<(), SimError> {
        self.shared.ccm()?;
        self.shared.put_file(object_key, mime, bytes);
        Ok(())
    }

    /// ccmessaging call counts.
    pub fn ccm_received(&self) -> Result<CcmReceived, SimError> {
        Ok(self.shared.ccm()?.received())
    }

    /// The channel id history items belong to.
    pub fn ccm_channel_id(&self) -> Result<String, SimError> {
        Ok(self.shared.ccm()?.channel_id().to_string())
    }

    // --- Kchat ---------------------------------------------------------

    /// Adds a chat; returns its id.
    pub fn kchat_add_chat(&self, chat: KchatNewChat) -> Result<u64, SimError> {
        self.shared.kchat()?.add_chat(chat)
    }

    /// Changes a chat.
    pub fn kchat_update_chat(&self, id: u64, patch: KchatChatPatch) -> Result<(), SimError> {
        self.shared.kchat()?.update_chat(id, patch)
    }

    /// Closes a chat (status `close`, `end_at` now).
    pub fn kchat_close_chat(&self, id: u64) -> Result<(), SimError> {
        self.kchat_update_chat(
            id,
            KchatChatPatch {
                status: Some("close".into()),
                ..KchatChatPatch::default()
            },
        )
    }

    /// Adds a message to a chat; returns its id. An upload without a URL
    /// gets generated bytes served under `/_sim/files/`.
    pub fn kchat_add_message(
        &self,
        chat_id: u64,
        mut msg: KchatNewMessage,
    ) -> Result<u64, SimError> {
        let kchat = self.shared.kchat()?;
        if let Some(up) = msg.upload.as_mut() {
            self.shared.fill_upload(up);
        }
        kchat.add_message(chat_id, msg)
    }

    /// Kchat call counts.
    pub fn kchat_received(&self) -> Result<KchatReceived, SimError> {
        Ok(self.shared.kchat()?.received())
    }

    // --- Faults --------------------------------------------------------

    fn each(&self, provider: SimProvider) -> Result<Vec<SimProvider>, SimError> {
        if provider == SimProvider::All {
            return Ok(SINGLE
                .into_iter()
                .filter(|p| self.shared.served.includes(*p))
                .collect());
        }
        if !self.shared.served.includes(provider) {
            return Err(SimError::NotServed(provider.name()));
        }
        Ok(vec![provider])
    }

    /// Sets the rate-based faults of a provider (`All`: each served one).
    pub fn set_faults(&self, provider: SimProvider, profile: FaultProfile) -> Result<(), SimError> {
        for p in self.each(provider)? {
            self.shared.faults.set_profile(p, profile.clone())?;
        }
        Ok(())
    }

    /// Makes the next N requests of a provider fail (`All`: N for each).
    pub fn fail_next(&self, provider: SimProvider, rule: FailNext) -> Result<(), SimError> {
        for p in self.each(provider)? {
            self.shared.faults.push_rule(p, rule.clone())?;
        }
        Ok(())
    }

    /// Clears a provider's faults (`All`: every provider's).
    pub fn clear_faults(&self, provider: SimProvider) -> Result<(), SimError> {
        for p in self.each(provider)? {
            self.shared.faults.clear(p);
        }
        Ok(())
    }

    /// The faults in force for one provider.
    pub fn faults(&self, provider: SimProvider) -> Result<FaultSnapshot, SimError> {
        let p = match self.each(provider)?.first() {
            Some(p) if provider != SimProvider::All => *p,
            _ => return Err(SimError::Invalid("name one provider".into())),
        };
        let (profile, next) = self.shared.faults.snapshot(p);
        Ok(FaultSnapshot { profile, next })
    }

    // --- Scripts, history, traffic -------------------------------------

    /// Plays a script: past events now, later ones on schedule.
    pub fn apply_script(&self, script: &Script) -> Result<ScriptReport, SimError> {
        crate::script::apply(&self.shared, script)
    }

    /// Seeds finished conversations over the past days, so a client's first
    /// sync (ccmessaging and Kchat look back 7 days) finds history.
    pub fn seed_history(&self, opts: HistoryOptions) -> Result<ScriptReport, SimError> {
        let script = crate::traffic::history_script(&self.shared, &opts)?;
        self.apply_script(&script)
    }

    /// Starts lively traffic: new conversations and messages of every kind,
    /// in Chinese and English, until stopped.
    pub fn spawn_traffic(&self, opts: TrafficOptions) -> Result<TrafficHandle, SimError> {
        crate::traffic::spawn(&self.shared, opts)
    }

    /// Stops every traffic generator.
    pub fn stop_traffic(&self) {
        for t in lock(&self.shared.traffic).drain(..) {
            t.cancel();
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP.

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match self {
            SimError::NotFound(_) | SimError::NotServed(_) => StatusCode::NOT_FOUND,
            SimError::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        json(status, &json!({"error": self.to_string()}))
    }
}

type Answer = Result<Response, SimError>;

fn ok_json<T: Serialize>(v: &T) -> Answer {
    Ok(json(StatusCode::OK, v))
}

fn done() -> Answer {
    ok_json(&json!({"ok": true}))
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SimError> {
    parse_body(bytes).map_err(|e| SimError::Invalid(format!("request body: {e}")))
}

fn provider(name: &str) -> Result<SimProvider, SimError> {
    name.parse().map_err(SimError::NotFound)
}

fn chat_id(id: &str) -> Result<u64, SimError> {
    id.parse()
        .map_err(|_| SimError::NotFound(format!("chat {id}")))
}

/// The `/_sim/` routes.
pub(crate) fn router(control: SimControl) -> Router {
    Router::new()
        .route(
            "/_sim/state",
            get(|State(c): State<SimControl>| async move { ok_json(&c.state()) }),
        )
        .route(
            "/_sim/reset",
            post(|State(c): State<SimControl>| async move {
                c.reset();
                done()
            }),
        )
        .route(
            "/_sim/spark/messages",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                ok_json(&c.spark_inject(body(&b)?)?)
            }),
        )
        .route(
            "/_sim/spark/bulk",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                ok_json(&c.spark_bulk(body(&b)?)?)
            }),
        )
        .route(
            "/_sim/spark/sessions",
            get(|State(c): State<SimControl>| async move { ok_json(&c.spark_sessions()?) }),
        )
        .route(
            "/_sim/spark/sessions/{id}/close",
            post(
                |State(c): State<SimControl>, Path(id): Path<String>| async move {
                    c.spark_close(&id)?;
                    done()
                },
            ),
        )
        .route(
            "/_sim/spark/agents/{id}",
            put(
                |State(c): State<SimControl>, Path(id): Path<String>, b: Bytes| async move {
                    #[derive(Deserialize)]
                    #[serde(deny_unknown_fields)]
                    struct AgentBody {
                        online: bool,
                        #[serde(default)]
                        name: Option<String>,
                        #[serde(default)]
                        image: Option<String>,
                    }
                    let a: AgentBody = body(&b)?;
                    c.spark_set_agent(SparkAgent {
                        id,
                        name: a.name,
                        image: a.image,
                        online: a.online,
                    })?;
                    done()
                },
            ),
        )
        .route(
            "/_sim/spark/received",
            get(|State(c): State<SimControl>| async move { ok_json(&c.spark_received()?) }),
        )
        .route(
            "/_sim/ccmessaging/messages",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Items {
                    items: Vec<CcmItem>,
                }
                let items: Items = body(&b)?;
                ok_json(&json!({"ids": c.ccm_add_items(items.items)?}))
            }),
        )
        .route(
            "/_sim/ccmessaging/tokens/expire",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                ok_json(&json!({"expired": c.ccm_expire_tokens(body(&b)?)?}))
            }),
        )
        .route(
            "/_sim/ccmessaging/tokens/rotate",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Rotate {
                    #[serde(default)]
                    user_id: Option<String>,
                }
                let r: Rotate = body(&b)?;
                c.ccm_rotate_token(r.user_id)?;
                done()
            }),
        )
        .route(
            "/_sim/ccmessaging/received",
            get(|State(c): State<SimControl>| async move { ok_json(&c.ccm_received()?) }),
        )
        .route(
            "/_sim/kchat/chats",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                ok_json(&json!({"id": c.kchat_add_chat(body(&b)?)?}))
            }),
        )
        .route(
            "/_sim/kchat/chats/{id}",
            axum::routing::patch(
                |State(c): State<SimControl>, Path(id): Path<String>, b: Bytes| async move {
                    c.kchat_update_chat(chat_id(&id)?, body(&b)?)?;
                    done()
                },
            ),
        )
        .route(
            "/_sim/kchat/chats/{id}/close",
            post(
                |State(c): State<SimControl>, Path(id): Path<String>| async move {
                    c.kchat_close_chat(chat_id(&id)?)?;
                    done()
                },
            ),
        )
        .route(
            "/_sim/kchat/chats/{id}/messages",
            post(
                |State(c): State<SimControl>, Path(id): Path<String>, b: Bytes| async move {
                    ok_json(&json!({"id": c.kchat_add_message(chat_id(&id)?, body(&b)?)?}))
                },
            ),
        )
        .route(
            "/_sim/kchat/received",
            get(|State(c): State<SimControl>| async move { ok_json(&c.kchat_received()?) }),
        )
        .route(
            "/_sim/faults/{provider}",
            get(
                |State(c): State<SimControl>, Path(p): Path<String>| async move {
                    ok_json(&c.faults(provider(&p)?)?)
                },
            )
            .put(
                |State(c): State<SimControl>, Path(p): Path<String>, b: Bytes| async move {
                    c.set_faults(provider(&p)?, body(&b)?)?;
                    done()
                },
            )
            .delete(
                |State(c): State<SimControl>, Path(p): Path<String>| async move {
                    c.clear_faults(provider(&p)?)?;
                    done()
                },
            ),
        )
        .route(
            "/_sim/faults/{provider}/next",
            post(
                |State(c): State<SimControl>, Path(p): Path<String>, b: Bytes| async move {
                    c.fail_next(provider(&p)?, body(&b)?)?;
                    done()
                },
            ),
        )
        .route(
            "/_sim/script",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                let script: Script = body(&b)?;
                ok_json(&c.apply_script(&script)?)
            }),
        )
        .route(
            "/_sim/history",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                ok_json(&c.seed_history(body(&b)?)?)
            }),
        )
        .route(
            "/_sim/traffic/start",
            post(|State(c): State<SimControl>, b: Bytes| async move {
                c.spawn_traffic(body(&b)?)?;
                done()
            }),
        )
        .route(
            "/_sim/traffic/stop",
            post(|State(c): State<SimControl>| async move {
                c.stop_traffic();
                done()
            }),
        )
        .route(
            "/_sim/files/{key}",
            get(
                |State(c): State<SimControl>, Path(key): Path<String>| async move {
                    let (mime, bytes) = c
                        .shared
                        .file(&key)
                        .ok_or_else(|| SimError::NotFound(format!("file {key}")))?;
                    let mut resp = (StatusCode::OK, bytes).into_response();
                    if let Ok(v) = HeaderValue::from_str(&mime) {
                        resp.headers_mut().insert(header::CONTENT_TYPE, v);
                    }
                    Ok::<_, SimError>(resp)
                },
            ),
        )
        .with_state(control)
}
