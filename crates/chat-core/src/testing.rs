//! The behaviour suite every adapter runs against its provider's simulator.
//!
//! One suite, written once in provider-neutral terms, keeps the three
//! adapters honest in the same way: each adapter's tests implement
//! [`Harness`] over a real simulator reached over HTTP, and call
//! [`run_all`] or, for one test per behaviour,
//! [`behaviour_suite!`](crate::behaviour_suite).
//!
//! The provider's [`Capabilities`](crate::Capabilities) decide which
//! behaviours apply: a behaviour outside them is skipped and says so, and a
//! behaviour inside them that the harness cannot drive fails, so a claim is
//! never skipped silently. The behaviours:
//!
//! | function | applies when | checks |
//! |---|---|---|
//! | [`capabilities_are_honest`] | always | operations outside the capabilities answer `Unsupported`; `send_limits` matches `send` |
//! | [`history_paging`] | `history` or `list_sessions` | everything seeded is read back across several pages, once each, with its session, role, direction, text and time |
//! | [`live_receive`] | `live` | an injected customer (and agent) message arrives with the right direction and role; once acked it does not come again |
//! | [`send_and_rejection`] | `send` | a send is accepted (and echoed on the live feed); sends the provider refuses are `Rejected` with its message |
//! | [`outreach_and_rejection`] | `outreach` | a send without a session opens a new one; a refused outreach is `Rejected` |
//! | [`close_and_rejection`] | `close` | a close ends the session; closing it again is `Rejected` |
//! | [`restart_and_rejection`] | `restart` | a restart reopens a closed session; restarting an open one is `Rejected` |
//! | [`transfer_and_rejection`] | `transfer` | a transfer hands the session over; one to an offline agent is `Rejected` |
//! | [`auth_failure`] | always | refused credentials are `Unauthorized` (final) on every call |
//! | [`credential_expiry`] | `history`, and the provider's credentials expire or rotate | a multi-page history read survives credentials expiring and rotating between pages |
//! | [`rate_limit`] | the harness can provoke a 429 | a 429 is `RateLimited` with the announced `retry_after` |
//! | [`server_errors`] | always | 500/502/503 are retryable `Unavailable`, and the retry succeeds |
//! | [`timeout`] | always | a call the provider never answers ends as `Timeout` within the configured time |
//! | [`malformed_json`] | always | an unreadable answer is a retryable error (`BadData`), never a panic |
//!
//! Every assertion message starts with `[provider · behaviour]`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    Capability, HistoryQuery, LiveBatch, LiveMode, LivePoll, MessageKind, Provider, ProviderError,
    ProviderErrorKind, ProviderMessage, Role, SendRequest, SessionChange, SessionListQuery,
    SessionStatus,
};

/// Sessions [`history_paging`] seeds: with [`HISTORY_MESSAGES_PER_SESSION`]
/// enough that every provider needs several pages.
pub const HISTORY_SESSIONS: usize = 12;
/// Messages per seeded session in [`history_paging`] and [`credential_expiry`].
pub const HISTORY_MESSAGES_PER_SESSION: usize = 25;

/// Added to [`Harness::max_call_time`] before a call that has not returned
/// is reported as hanging (a loaded machine is slow, not broken).
const CALL_SLACK: Duration = Duration::from_secs(5);
/// How long [`live_receive`] and the action checks wait for something to
/// show up on the live feed.
const LIVE_WAIT: Duration = Duration::from_secs(20);
/// More pages than this from one read means the paging never ends.
const MAX_PAGES: usize = 1000;
/// Statuses [`server_errors`] injects.
const SERVER_ERRORS: [u16; 3] = [500, 502, 503];

/// How seeded history is read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryRead {
    /// Replay the live feed in history mode from this version (the resume
    /// point just before the first seeded message) until caught up.
    Replay {
        /// The version to start after.
        after_version: String,
    },
    /// Page through [`Provider::fetch_history`] with each query (one per
    /// customer where history is read per customer), following `next_page`.
    Fetch {
        /// First-page queries (`page: None`).
        queries: Vec<HistoryQuery>,
    },
}

/// One message a harness put at the provider, as the suite expects to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededMessage {
    /// The provider's id for it.
    pub external_id: String,
    /// The session it belongs to.
    pub session_external_id: String,
    /// Who wrote it; decides the direction expected.
    pub role: Role,
    /// Its text, when it is a text message.
    pub text: Option<String>,
    /// When it was sent, when the harness chose it (compared to the second,
    /// which checks the adapter's reading of provider-local times).
    pub sent_at: Option<DateTime<Utc>>,
}

/// What [`Harness::seed_history`] put at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededHistory {
    /// How to read it back through `history`; `None` when the provider does
    /// not claim `history` (only `list_sessions`).
    pub read: Option<HistoryRead>,
    /// Every seeded session id.
    pub sessions: Vec<String>,
    /// Every seeded message.
    pub messages: Vec<SeededMessage>,
    /// A creation bound that covers every seeded session, for
    /// [`Provider::list_sessions`].
    pub created_from: DateTime<Utc>,
}

/// A message a harness pushed onto the live feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMessage {
    /// The provider's id for it.
    pub external_id: String,
    /// Its session.
    pub session_external_id: String,
}

/// A session a harness prepared for the action checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSession {
    /// The provider's session id.
    pub external_id: String,
    /// Its customer's provider id (what a send addresses).
    pub customer_id: String,
}

/// A session as the provider itself holds it, so the suite can see that an
/// action took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// Whether the session is active.
    pub open: bool,
    /// The agent holding it, when the provider says.
    pub agent_id: Option<String>,
}

/// Agents to transfer to: one that takes sessions, one the provider refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferAgents {
    /// An online agent: the transfer succeeds.
    pub online: String,
    /// An offline agent: the transfer is refused.
    pub offline: String,
}

/// How the provider answers the 429 a harness provoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The wait the provider announces (`Retry-After`), if it announces one.
    pub retry_after: Option<Duration>,
}

/// What an adapter's test provides so the suite can drive its provider in
/// provider-neutral terms. Implemented over the provider simulator; every
/// "next" fault applies to exactly the next request the provider receives.
///
/// Methods with defaults are for features a provider may lack: the default
/// says "cannot", and the suite fails when the provider's capabilities claim
/// the feature anyway.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The adapter under test, pointed at the simulator with short timeouts.
    fn provider(&self) -> Arc<dyn Provider>;

    /// The same adapter with credentials the provider refuses.
    fn bad_credentials_provider(&self) -> Arc<dyn Provider>;

    /// The longest one call of [`Harness::provider`] may take before the
    /// adapter gives up by itself (its request timeout, or a live poll's hold
    /// plus margin).
    fn max_call_time(&self) -> Duration;

    /// Puts `sessions` sessions of `messages_per_session` messages each at
    /// the provider, customers' and agents' messages mixed, sent in the past
    /// but within the provider's history reach. Each call seeds new sessions.
    async fn seed_history(&self, sessions: usize, messages_per_session: usize) -> SeededHistory;

    /// Pushes a message written by `role` with this text onto the live feed
    /// (a new session for a new customer). `None`: the harness cannot make
    /// that role speak (required for [`Role::Customer`] when `live` is claimed).
    async fn push_live_message(&self, _role: Role, _text: &str) -> Option<LiveMessage> {
        None
    }

    /// A fresh open session the actions may act on.
    async fn open_session(&self) -> Option<TestSession> {
        None
    }

    /// A fresh session closed on the provider side, for restarts.
    async fn closed_session(&self) -> Option<TestSession> {
        None
    }

    /// The provider's own view of a session; `None` when the harness cannot
    /// look (the effect checks of actions are then skipped).
    async fn session_state(&self, _session_external_id: &str) -> Option<SessionState> {
        None
    }

    /// Agents for [`transfer_and_rejection`].
    fn transfer_agents(&self) -> Option<TransferAgents> {
        None
    }

    /// A session id the provider does not know.
    fn missing_session_id(&self) -> String {
        "behaviour-suite-missing-session".to_string()
    }

    /// The next request is answered with this HTTP status and the
    /// provider's error body.
    async fn fail_next_status(&self, status: u16);

    /// The next request is never answered.
    async fn hang_next(&self);

    /// The next request is answered 200 with truncated, unreadable JSON.
    async fn malformed_next(&self);

    /// The next request is answered 429 as the provider does it; `None`
    /// when the harness cannot provoke one.
    async fn rate_limit_next(&self) -> Option<RateLimit> {
        None
    }

    /// The next request gets the provider's own refusal (a business error,
    /// not an HTTP failure); returns the message the provider gives.
    /// Required when the provider claims an action.
    async fn refuse_next(&self) -> Option<String> {
        None
    }

    /// Expires every credential the adapter holds (tokens) at the provider;
    /// `false` when the provider's credentials do not expire.
    async fn expire_credentials(&self) -> bool {
        false
    }

    /// Makes the provider hand out fresh credentials with its next answer
    /// and retire the ones in use; `false` when the provider never does.
    async fn rotate_credentials(&self) -> bool {
        false
    }

    /// Drops every fault still queued, so one behaviour cannot leak into the next.
    async fn clear_faults(&self);
}

/// How one behaviour ended (failures panic with a message naming the
/// provider and the behaviour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// The behaviour does not apply to this provider, and why.
    Skipped(String),
}

/// Runs every behaviour in turn on one harness (state carries over between
/// them, as it would in a running gateway) and returns each outcome by name.
pub async fn run_all(h: &dyn Harness) -> Vec<(&'static str, Outcome)> {
    let mut out = Vec::new();
    out.push(("capabilities_are_honest", capabilities_are_honest(h).await));
    out.push(("history_paging", history_paging(h).await));
    out.push(("live_receive", live_receive(h).await));
    out.push(("send_and_rejection", send_and_rejection(h).await));
    out.push(("outreach_and_rejection", outreach_and_rejection(h).await));
    out.push(("close_and_rejection", close_and_rejection(h).await));
    out.push(("restart_and_rejection", restart_and_rejection(h).await));
    out.push(("transfer_and_rejection", transfer_and_rejection(h).await));
    out.push(("auth_failure", auth_failure(h).await));
    out.push(("credential_expiry", credential_expiry(h).await));
    out.push(("rate_limit", rate_limit(h).await));
    out.push(("server_errors", server_errors(h).await));
    out.push(("timeout", timeout(h).await));
    out.push(("malformed_json", malformed_json(h).await));
    let name = h.provider().name();
    for (behaviour, outcome) in &out {
        eprintln!("{name} behaviour suite: {behaviour}: {outcome:?}");
    }
    out
}

/// One `#[tokio::test]` per behaviour, each on a fresh harness, so a report
/// names the behaviour that failed, plus `all_behaviours_on_one_harness`
/// ([`run_all`] on one harness, as state carries over in a running gateway).
/// `$harness` is an expression (it may `.await`) giving a value that
/// implements [`Harness`]; the calling crate needs `tokio` with its `macros`
/// and `rt` features.
///
/// ```ignore
/// chat_core::behaviour_suite!(SparkHarness::start().await);
/// ```
#[macro_export]
macro_rules! behaviour_suite {
    ($harness:expr) => {
        $crate::behaviour_suite!(@each $harness;
            capabilities_are_honest, history_paging, live_receive,
            send_and_rejection, outreach_and_rejection, close_and_rejection,
            restart_and_rejection, transfer_and_rejection, auth_failure,
            credential_expiry, rate_limit, server_errors, timeout, malformed_json);
    };
    (@each $harness:expr; $($behaviour:ident),+) => {
        #[tokio::test]
        async fn all_behaviours_on_one_harness() {
            let harness = $harness;
            let _ = $crate::testing::run_all(&harness).await;
        }

        $(
            #[tokio::test]
            async fn $behaviour() {
                let harness = $harness;
                let _ = $crate::testing::$behaviour(&harness).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------
// Assertion context.

/// Fails the behaviour with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($ctx:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            $ctx.fail(format_args!($($arg)+))
        }
    };
}

/// The provider and behaviour under test, for messages and bounded calls.
struct Ctx<'a> {
    h: &'a dyn Harness,
    p: Arc<dyn Provider>,
    name: &'static str,
    behaviour: &'static str,
}

impl<'a> Ctx<'a> {
    fn new(h: &'a dyn Harness, behaviour: &'static str) -> Self {
        let p = h.provider();
        Ctx {
            h,
            name: p.name(),
            p,
            behaviour,
        }
    }

    fn has(&self, cap: Capability) -> bool {
        self.p.capabilities().has(cap)
    }

    #[track_caller]
    fn fail(&self, msg: impl Display) -> ! {
        panic!("[{} · {}] {msg}", self.name, self.behaviour)
    }

    fn skip(&self, why: impl Into<String>) -> Outcome {
        let why = why.into();
        eprintln!("[{} · {}] skipped: {why}", self.name, self.behaviour);
        Outcome::Skipped(why)
    }

    /// A harness answer the capabilities require.
    fn need<T>(&self, value: Option<T>, what: &str, cap: Capability) -> T {
        match value {
            Some(v) => v,
            None => self.fail(format_args!(
                "the capabilities claim `{}` but the harness cannot provide {what}",
                cap.as_str()
            )),
        }
    }

    /// Awaits a provider call, failing the behaviour if it outlives the
    /// harness's call time (the adapter ignored its own timeouts).
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let limit = self.h.max_call_time() + CALL_SLACK;
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => self.fail(format_args!(
                "{what} did not return within {limit:?}; the adapter's timeouts do not hold"
            )),
        }
    }

    /// A call that must succeed.
    async fn ok<T>(&self, what: &str, fut: impl Future<Output = Result<T, ProviderError>>) -> T {
        match self.call(what, fut).await {
            Ok(v) => v,
            Err(e) => self.fail(format_args!("{what} failed: {e:?}")),
        }
    }

    /// A call that must fail.
    async fn err<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, ProviderError>>,
    ) -> ProviderError {
        match self.call(what, fut).await {
            Ok(_) => self.fail(format_args!("{what} succeeded; an error was expected")),
            Err(e) => e,
        }
    }

    /// An error of exactly this kind.
    fn expect_kind(&self, what: &str, e: &ProviderError, kind: ProviderErrorKind) {
        ensure!(
            self,
            e.kind() == kind,
            "{what}: expected {}, got {e:?}",
            kind.as_str()
        );
    }

    /// A refusal carrying the provider's reason.
    fn expect_rejected(&self, what: &str, e: &ProviderError, message: Option<&str>) {
        match e {
            ProviderError::Rejected { message: got, .. } => {
                ensure!(
                    self,
                    !got.trim().is_empty(),
                    "{what}: Rejected without the provider's message"
                );
                if let Some(want) = message {
                    ensure!(
                        self,
                        got == want,
                        "{what}: Rejected with {got:?}, not the provider's message {want:?}"
                    );
                }
                ensure!(self, !e.is_retryable(), "{what}: a rejection must be final");
            }
            other => self.fail(format_args!("{what}: expected Rejected, got {other:?}")),
        }
    }
}

// ---------------------------------------------------------------------------
// Capabilities.

/// Operations outside the provider's capabilities answer
/// [`ProviderError::Unsupported`]; `send_limits` is given exactly when the
/// provider can send.
pub async fn capabilities_are_honest(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "capabilities are honest");
    let p = Arc::clone(&ctx.p);
    let session = h.missing_session_id();
    let can_send = ctx.has(Capability::Send) || ctx.has(Capability::Outreach);
    ensure!(
        ctx,
        p.send_limits().is_some() == can_send,
        "send_limits is {:?} but send/outreach claimed: {can_send}",
        p.send_limits()
    );
    if let Some(limits) = p.send_limits() {
        ensure!(
            ctx,
            !limits.kinds.is_empty(),
            "send_limits allows no kind at all"
        );
    }

    let unsupported = |what: &str, result: Result<(), ProviderError>| match result {
        Err(ProviderError::Unsupported(_)) => {}
        other => ctx.fail(format_args!(
            "`{what}` is not claimed, so it must answer Unsupported; got {other:?}"
        )),
    };
    if !ctx.has(Capability::Live) {
        let r = ctx
            .call("poll_live", p.poll_live(&LivePoll::default()))
            .await;
        unsupported("live", r.map(drop));
    }
    if !ctx.has(Capability::History) {
        let q = HistoryQuery {
            customer_id: Some("behaviour-suite".into()),
            from: Utc::now() - chrono::TimeDelta::days(1),
            to: None,
            page: None,
        };
        let r = ctx.call("fetch_history", p.fetch_history(&q)).await;
        unsupported("history", r.map(drop));
    }
    if !ctx.has(Capability::ListSessions) {
        let q = SessionListQuery {
            created_from: Utc::now() - chrono::TimeDelta::days(1),
            created_to: None,
            page: None,
        };
        let r = ctx.call("list_sessions", p.list_sessions(&q)).await;
        unsupported("list_sessions", r.map(drop));
        let r = ctx.call("get_session", p.get_session(&session)).await;
        unsupported("list_sessions (get_session)", r.map(drop));
    }
    if !can_send {
        let req = text_send(Some(&session), "behaviour-suite", "unsupported");
        let r = ctx.call("send", p.send(&req)).await;
        unsupported("send", r.map(drop));
    }
    if !ctx.has(Capability::Close) {
        let r = ctx.call("close", p.close(&session)).await;
        unsupported("close", r);
    }
    if !ctx.has(Capability::Restart) {
        let r = ctx.call("restart", p.restart(&session)).await;
        unsupported("restart", r);
    }
    if !ctx.has(Capability::Transfer) {
        let r = ctx
            .call("transfer", p.transfer(&session, "behaviour-suite"))
            .await;
        unsupported("transfer", r);
    }
    Outcome::Passed
}

// ---------------------------------------------------------------------------
// History.

/// Pages through one [`HistoryRead`], a page at a time, so callers can act
/// between pages.
enum Cursor {
    Replay {
        version: String,
        done: bool,
    },
    Fetch {
        queries: Vec<HistoryQuery>,
        index: usize,
        page: Option<String>,
    },
}

/// One page read: its changes and which query (0 for a replay) it belongs to.
struct PageRead {
    changes: Vec<SessionChange>,
    query: usize,
}

impl Cursor {
    fn new(read: &HistoryRead) -> Self {
        match read {
            HistoryRead::Replay { after_version } => Cursor::Replay {
                version: after_version.clone(),
                done: false,
            },
            HistoryRead::Fetch { queries } => Cursor::Fetch {
                queries: queries.clone(),
                index: 0,
                page: None,
            },
        }
    }

    async fn next(&mut self, ctx: &Ctx<'_>) -> Option<PageRead> {
        match self {
            Cursor::Replay { version, done } => {
                if *done {
                    return None;
                }
                let poll = LivePoll {
                    version: Some(version.clone()),
                    acks: Vec::new(),
                };
                let what = format!("poll_live replaying history after version {version}");
                let batch = ctx.ok(&what, ctx.p.poll_live(&poll)).await;
                ensure!(
                    ctx,
                    batch.mode == LiveMode::History,
                    "{what}: answered in {:?} mode",
                    batch.mode
                );
                if batch.caught_up {
                    *done = true;
                    ensure!(
                        ctx,
                        message_count(&batch.changes) == 0,
                        "{what}: caught up, yet carried messages"
                    );
                    return None;
                }
                match batch.version {
                    Some(next) => *version = next,
                    None => ctx.fail(format_args!("{what}: a history batch without a version")),
                }
                Some(PageRead {
                    changes: batch.changes,
                    query: 0,
                })
            }
            Cursor::Fetch {
                queries,
                index,
                page,
            } => {
                let query = queries.get(*index)?;
                let mut q = query.clone();
                q.page = page.clone();
                let what = format!(
                    "fetch_history (customer {:?}, page {:?})",
                    q.customer_id, q.page
                );
                let answer = ctx.ok(&what, ctx.p.fetch_history(&q)).await;
                let mapped = message_count(&answer.changes);
                ensure!(
                    ctx,
                    answer.fetched >= mapped as u64,
                    "{what}: fetched {} items but mapped {mapped} messages",
                    answer.fetched
                );
                let read = PageRead {
                    changes: answer.changes,
                    query: *index,
                };
                match answer.next_page {
                    Some(next) => {
                        ensure!(
                            ctx,
                            page.as_deref() != Some(next.as_str()),
                            "{what}: next_page repeats the page just read"
                        );
                        *page = Some(next);
                    }
                    None => {
                        *index += 1;
                        *page = None;
                    }
                }
                Some(read)
            }
        }
    }
}

fn message_count(changes: &[SessionChange]) -> usize {
    changes.iter().map(|c| c.messages.len()).sum()
}

/// Everything read from a history, in order, and the non-empty pages each
/// query took.
#[derive(Default)]
struct Collected {
    messages: Vec<ProviderMessage>,
    pages: HashMap<usize, usize>,
    total_pages: usize,
}

impl Collected {
    fn take(&mut self, ctx: &Ctx<'_>, page: PageRead) {
        self.total_pages += 1;
        ensure!(
            ctx,
            self.total_pages <= MAX_PAGES,
            "history paging did not end after {MAX_PAGES} pages"
        );
        let n = message_count(&page.changes);
        if n > 0 {
            *self.pages.entry(page.query).or_default() += 1;
        }
        for change in page.changes {
            for m in change.messages {
                ensure!(
                    ctx,
                    m.session_external_id == change.session.external_id,
                    "message {} sits in session {} but names session {}",
                    m.external_id,
                    change.session.external_id,
                    m.session_external_id
                );
                self.messages.push(m);
            }
        }
    }

    fn most_pages(&self) -> usize {
        self.pages.values().copied().max().unwrap_or(0)
    }
}

/// Every seeded message is among `read` exactly once, in its session, with
/// its role, direction, text and time; `read` has no duplicate at all.
fn check_messages(ctx: &Ctx<'_>, what: &str, seeded: &[SeededMessage], read: &[ProviderMessage]) {
    let mut by_id: HashMap<&str, &ProviderMessage> = HashMap::new();
    let mut duplicates = Vec::new();
    for m in read {
        if by_id.insert(m.external_id.as_str(), m).is_some() {
            duplicates.push(m.external_id.as_str());
        }
    }
    ensure!(
        ctx,
        duplicates.is_empty(),
        "{what}: {} messages read more than once, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(5)]
    );
    let missing: Vec<&str> = seeded
        .iter()
        .filter(|s| !by_id.contains_key(s.external_id.as_str()))
        .map(|s| s.external_id.as_str())
        .collect();
    ensure!(
        ctx,
        missing.is_empty(),
        "{what}: {} of {} seeded messages never read, e.g. {:?}",
        missing.len(),
        seeded.len(),
        &missing[..missing.len().min(5)]
    );
    for s in seeded {
        let Some(m) = by_id.get(s.external_id.as_str()) else {
            continue;
        };
        let id = &s.external_id;
        ensure!(
            ctx,
            m.session_external_id == s.session_external_id,
            "{what}: message {id} read in session {}, seeded in {}",
            m.session_external_id,
            s.session_external_id
        );
        ensure!(
            ctx,
            m.sender.role == s.role && m.direction() == s.role.direction(),
            "{what}: message {id} read as {:?}/{:?}, seeded as {:?}/{:?}",
            m.sender.role,
            m.direction(),
            s.role,
            s.role.direction()
        );
        if let Some(text) = &s.text {
            ensure!(
                ctx,
                m.text.as_deref() == Some(text.as_str()),
                "{what}: message {id} read with text {:?}, seeded {text:?}",
                m.text
            );
        }
        if let Some(at) = s.sent_at {
            let off = (m.sent_at - at).num_milliseconds().abs();
            ensure!(
                ctx,
                off < 1000,
                "{what}: message {id} read as sent at {}, seeded at {at}",
                m.sent_at
            );
        }
    }
}

/// Checks what the harness says it seeded, so a harness bug is not
/// mistaken for an adapter bug.
fn check_seeded(ctx: &Ctx<'_>, seeded: &SeededHistory, sessions: usize, per_session: usize) {
    ensure!(
        ctx,
        seeded.sessions.len() == sessions && seeded.messages.len() == sessions * per_session,
        "the harness seeded {} sessions and {} messages; {sessions} and {} were asked for",
        seeded.sessions.len(),
        seeded.messages.len(),
        sessions * per_session
    );
    ensure!(
        ctx,
        seeded.messages.iter().any(|m| m.role == Role::Customer)
            && seeded.messages.iter().any(|m| m.role != Role::Customer),
        "the harness must seed both customers' and agents' messages"
    );
    if ctx.has(Capability::History) {
        ensure!(
            ctx,
            seeded.read.is_some(),
            "the capabilities claim `history` but the harness gives no way to read it"
        );
    }
    if let Some(HistoryRead::Replay { .. }) = seeded.read {
        ensure!(
            ctx,
            ctx.has(Capability::Live),
            "history is replayed from the live feed, but `live` is not claimed"
        );
    }
}

/// Reads a whole [`HistoryRead`].
async fn read_all(ctx: &Ctx<'_>, read: &HistoryRead) -> Collected {
    let mut cursor = Cursor::new(read);
    let mut collected = Collected::default();
    while let Some(page) = cursor.next(ctx).await {
        collected.take(ctx, page);
    }
    collected
}

/// History paging end to end: the harness seeds enough sessions to need
/// several pages; reading through `history` (and listing through
/// `list_sessions` plus `get_session`) gives every seeded message exactly
/// once, in its session, with its role, direction, text and time. An
/// unknown session is `NotFound`.
pub async fn history_paging(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "history paging end to end");
    let history = ctx.has(Capability::History);
    let listing = ctx.has(Capability::ListSessions);
    if !history && !listing {
        return ctx.skip("neither `history` nor `list_sessions` is claimed");
    }
    let seeded = h
        .seed_history(HISTORY_SESSIONS, HISTORY_MESSAGES_PER_SESSION)
        .await;
    check_seeded(
        &ctx,
        &seeded,
        HISTORY_SESSIONS,
        HISTORY_MESSAGES_PER_SESSION,
    );

    if let (true, Some(read)) = (history, &seeded.read) {
        let collected = read_all(&ctx, read).await;
        check_messages(&ctx, "history", &seeded.messages, &collected.messages);
        ensure!(
            ctx,
            collected.most_pages() >= 2,
            "history: {} seeded messages came in one page per query; seed more or configure \
             smaller pages so paging is exercised",
            seeded.messages.len()
        );
    }

    if listing {
        let mut listed: Vec<String> = Vec::new();
        let mut page = None;
        let mut pages = 0;
        let mut total = None;
        loop {
            let q = SessionListQuery {
                created_from: seeded.created_from,
                created_to: None,
                page: page.clone(),
            };
            let what = format!("list_sessions (page {page:?})");
            let answer = ctx.ok(&what, ctx.p.list_sessions(&q)).await;
            pages += 1;
            ensure!(
                ctx,
                pages <= MAX_PAGES,
                "list_sessions paging did not end after {MAX_PAGES} pages"
            );
            total = answer.total.or(total);
            listed.extend(answer.sessions.into_iter().map(|s| s.external_id));
            match answer.next_page {
                Some(next) => {
                    ensure!(
                        ctx,
                        page.as_deref() != Some(next.as_str()),
                        "{what}: next_page repeats the page just read"
                    );
                    page = Some(next);
                }
                None => break,
            }
        }
        let mut seen = HashSet::new();
        let duplicates: Vec<&String> = listed.iter().filter(|id| !seen.insert(*id)).collect();
        ensure!(
            ctx,
            duplicates.is_empty(),
            "list_sessions listed sessions more than once: {duplicates:?}"
        );
        let missing: Vec<&String> = seeded
            .sessions
            .iter()
            .filter(|id| !seen.contains(id))
            .collect();
        ensure!(
            ctx,
            missing.is_empty(),
            "list_sessions never listed seeded sessions {missing:?}"
        );
        ensure!(
            ctx,
            pages >= 2,
            "list_sessions: {} seeded sessions came in one page; seed more or configure \
             smaller pages so paging is exercised",
            seeded.sessions.len()
        );
        if let Some(total) = total {
            ensure!(
                ctx,
                total >= seeded.sessions.len() as u64,
                "list_sessions says {total} sessions match, but {} were seeded",
                seeded.sessions.len()
            );
        }

        let mut details = Vec::new();
        for id in &seeded.sessions {
            let what = format!("get_session({id})");
            let change = ctx.ok(&what, ctx.p.get_session(id)).await;
            ensure!(
                ctx,
                &change.session.external_id == id,
                "{what} answered session {}",
                change.session.external_id
            );
            details.extend(change.messages);
        }
        check_messages(&ctx, "get_session", &seeded.messages, &details);

        let missing_id = h.missing_session_id();
        let what = format!("get_session({missing_id}) of an unknown session");
        let e = ctx.err(&what, ctx.p.get_session(&missing_id)).await;
        ctx.expect_kind(&what, &e, ProviderErrorKind::NotFound);
    }
    Outcome::Passed
}

// ---------------------------------------------------------------------------
// Live.

/// A live reader that acknowledges everything it has seen with its next
/// poll, as the gateway does once the rows are stored. What it has polled
/// but not yet looked for is kept in order, so a change that came early in
/// someone else's batch is still found.
struct Live<'c, 'a> {
    ctx: &'c Ctx<'a>,
    acks: Vec<String>,
    unread: VecDeque<SessionChange>,
}

impl<'c, 'a> Live<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>) -> Self {
        Live {
            ctx,
            acks: Vec::new(),
            unread: VecDeque::new(),
        }
    }

    async fn poll(&mut self) -> LiveBatch {
        let poll = LivePoll {
            version: None,
            acks: std::mem::take(&mut self.acks),
        };
        let batch = self.ctx.ok("poll_live", self.ctx.p.poll_live(&poll)).await;
        ensure!(
            self.ctx,
            batch.mode == LiveMode::Live,
            "a live poll answered in {:?} mode",
            batch.mode
        );
        for change in &batch.changes {
            for m in &change.messages {
                if !self.acks.contains(&m.external_id) {
                    self.acks.push(m.external_id.clone());
                }
            }
        }
        self.unread.extend(batch.changes.iter().cloned());
        batch
    }

    /// The first change matching `pred`, polling until it arrives; it and
    /// every change before it count as read.
    async fn change(&mut self, what: &str, pred: impl Fn(&SessionChange) -> bool) -> SessionChange {
        let deadline = Instant::now() + LIVE_WAIT;
        loop {
            if let Some(at) = self.unread.iter().position(&pred) {
                let found = self.unread.drain(..=at).next_back();
                if let Some(found) = found {
                    return found;
                }
            }
            ensure!(
                self.ctx,
                Instant::now() < deadline,
                "{what} did not arrive on the live feed within {LIVE_WAIT:?}"
            );
            self.poll().await;
        }
    }

    /// Polls until the message with this id arrives.
    async fn message(&mut self, what: &str, id: &str) -> ProviderMessage {
        let change = self
            .change(what, |c| c.messages.iter().any(|m| m.external_id == id))
            .await;
        match change.messages.into_iter().find(|m| m.external_id == id) {
            Some(m) => m,
            None => self.ctx.fail(format_args!("{what}: message {id} vanished")),
        }
    }
}

/// Live receive: a message injected at the provider arrives on the live
/// feed in live mode, in its session, with the right role and direction
/// (a customer's inbound; an agent's outbound, when the harness can inject
/// one); once acknowledged it does not come again.
pub async fn live_receive(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "live receive");
    if !ctx.has(Capability::Live) {
        return ctx.skip("`live` is not claimed");
    }
    let mut live = Live::new(&ctx);
    // Whatever was pending before is read and acknowledged with the next poll.
    live.poll().await;
    live.unread.clear();

    let mut expected = Vec::new();
    let text = "你好, behaviour suite: customer message";
    let pushed = h.push_live_message(Role::Customer, text).await;
    let pushed = ctx.need(pushed, "a customer's live message", Capability::Live);
    expected.push((pushed, Role::Customer, text));
    let text = "您好, behaviour suite: agent message";
    match h.push_live_message(Role::Agent, text).await {
        Some(p) => expected.push((p, Role::Agent, text)),
        None => eprintln!(
            "[{} · live receive] the harness cannot inject an agent's message; checked customers only",
            ctx.name
        ),
    }

    for (pushed, role, text) in &expected {
        let what = format!("the injected {role:?} message {}", pushed.external_id);
        let m = live.message(&what, &pushed.external_id).await;
        ensure!(
            ctx,
            m.session_external_id == pushed.session_external_id,
            "{what} arrived in session {}, injected into {}",
            m.session_external_id,
            pushed.session_external_id
        );
        ensure!(
            ctx,
            m.sender.role == *role && m.direction() == role.direction(),
            "{what} arrived as {:?}/{:?}",
            m.sender.role,
            m.direction()
        );
        ensure!(
            ctx,
            m.kind == MessageKind::Text && m.text.as_deref() == Some(*text),
            "{what} arrived as {:?} with text {:?}",
            m.kind,
            m.text
        );
    }

    // The next poll carries the acks; later polls must not bring them back.
    live.poll().await;
    for _ in 0..2 {
        let batch = live.poll().await;
        for change in &batch.changes {
            for m in &change.messages {
                ensure!(
                    ctx,
                    !expected
                        .iter()
                        .any(|(p, _, _)| p.external_id == m.external_id),
                    "message {} came again after it was acknowledged",
                    m.external_id
                );
            }
        }
    }
    Outcome::Passed
}

// ---------------------------------------------------------------------------
// Actions.

fn text_send(session: Option<&str>, customer: &str, text: &str) -> SendRequest {
    SendRequest {
        session_external_id: session.map(str::to_string),
        customer_id: customer.to_string(),
        kind: MessageKind::Text,
        text: Some(text.to_string()),
        media_url: None,
        created_at: Utc::now(),
    }
}

/// The provider's own refusal of `call`, injected by the harness: `Rejected`
/// with exactly the provider's message.
async fn check_refusal<T>(
    ctx: &Ctx<'_>,
    cap: Capability,
    what: &str,
    call: impl Future<Output = Result<T, ProviderError>>,
) {
    let message = ctx.h.refuse_next().await;
    let message = ctx.need(message, "a refusal from the provider", cap);
    let e = ctx.err(what, call).await;
    ctx.expect_rejected(what, &e, Some(&message));
    ctx.h.clear_faults().await;
}

/// Checks the provider's view of a session when the harness can look.
async fn check_state(ctx: &Ctx<'_>, what: &str, id: &str, check: impl Fn(&SessionState) -> bool) {
    match ctx.h.session_state(id).await {
        Some(state) => ensure!(ctx, check(&state), "{what}: the provider holds {state:?}"),
        None => eprintln!(
            "[{} · {}] the harness cannot read session state; {what} not checked at the provider",
            ctx.name, ctx.behaviour
        ),
    }
}

/// Send: a text into an open session is accepted (its echo arrives on the
/// live feed as the agent's outbound message, when `live`); sends into an
/// unknown session, longer than the send limits, or refused by the provider
/// are `Rejected` with the reason.
pub async fn send_and_rejection(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "send and its rejection");
    if !ctx.has(Capability::Send) {
        return ctx.skip("`send` is not claimed");
    }
    let session = h.open_session().await;
    let session = ctx.need(session, "an open session", Capability::Send);
    let text = "behaviour suite: 已收到 (send)";
    let req = text_send(Some(&session.external_id), &session.customer_id, text);
    let receipt = ctx.ok("send into an open session", ctx.p.send(&req)).await;
    if let Some(s) = &receipt.session_external_id {
        ensure!(
            ctx,
            s == &session.external_id,
            "send into {} answered session {s}",
            session.external_id
        );
    }
    if ctx.has(Capability::Live) {
        let id = match &receipt.message_external_id {
            Some(id) => id.clone(),
            None => {
                ctx.fail("a live provider's send receipt needs the message id to match the echo")
            }
        };
        let m = Live::new(&ctx).message("the send's echo", &id).await;
        ensure!(
            ctx,
            m.session_external_id == session.external_id
                && m.sender.role == Role::Agent
                && m.direction() == Role::Agent.direction()
                && m.text.as_deref() == Some(text),
            "the send's echo arrived as {:?}/{:?} in {} with text {:?}",
            m.sender.role,
            m.direction(),
            m.session_external_id,
            m.text
        );
    }

    let missing = h.missing_session_id();
    let req = text_send(
        Some(&missing),
        &session.customer_id,
        "behaviour suite: nowhere",
    );
    let what = "send into an unknown session";
    let e = ctx.err(what, ctx.p.send(&req)).await;
    ctx.expect_rejected(what, &e, None);

    if let Some(max) = ctx.p.send_limits().and_then(|l| l.max_text_chars) {
        let long = "长".repeat(max + 1);
        let req = text_send(Some(&session.external_id), &session.customer_id, &long);
        let what = "send longer than send_limits";
        let e = ctx.err(what, ctx.p.send(&req)).await;
        ctx.expect_rejected(what, &e, None);
    }

    let req = text_send(Some(&session.external_id), &session.customer_id, "refused");
    check_refusal(
        &ctx,
        Capability::Send,
        "send the provider refuses",
        ctx.p.send(&req),
    )
    .await;
    Outcome::Passed
}

/// Outreach: a send without a session opens a new session with the
/// customer (on the live feed, when `live`); an outreach to no customer, or
/// one the provider refuses, is `Rejected`.
pub async fn outreach_and_rejection(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "outreach and its rejection");
    if !ctx.has(Capability::Outreach) {
        return ctx.skip("`outreach` is not claimed");
    }
    let session = h.open_session().await;
    let session = ctx.need(session, "a customer to reach out to", Capability::Outreach);
    let text = "behaviour suite: outreach";
    let req = text_send(None, &session.customer_id, text);
    let receipt = ctx.ok("outreach", ctx.p.send(&req)).await;
    let new_session = match &receipt.session_external_id {
        Some(s) => s.clone(),
        None => ctx.fail("an outreach receipt must name the new session"),
    };
    ensure!(
        ctx,
        new_session != session.external_id,
        "outreach answered the customer's existing session {new_session}"
    );
    check_state(&ctx, "the outreach's new session", &new_session, |s| s.open).await;
    if ctx.has(Capability::Live) {
        if let Some(id) = &receipt.message_external_id {
            let m = Live::new(&ctx).message("the outreach's echo", id).await;
            ensure!(
                ctx,
                m.session_external_id == new_session && m.sender.role == Role::Agent,
                "the outreach's echo arrived as {:?} in session {}",
                m.sender.role,
                m.session_external_id
            );
        }
    }

    let req = text_send(None, "", "behaviour suite: outreach to nobody");
    let what = "outreach to no customer";
    let e = ctx.err(what, ctx.p.send(&req)).await;
    ctx.expect_rejected(what, &e, None);

    let req = text_send(None, &session.customer_id, "refused");
    check_refusal(
        &ctx,
        Capability::Outreach,
        "outreach the provider refuses",
        ctx.p.send(&req),
    )
    .await;
    Outcome::Passed
}

/// Close: an open session is ended (the provider holds it closed; the
/// close is on the live feed, when `live`); closing it again, or a close the
/// provider refuses, is `Rejected`.
pub async fn close_and_rejection(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "close and its rejection");
    if !ctx.has(Capability::Close) {
        return ctx.skip("`close` is not claimed");
    }
    let session = h.open_session().await;
    let session = ctx.need(session, "an open session", Capability::Close);
    let id = session.external_id.as_str();

    let what = "close of a session refused by the provider";
    check_refusal(&ctx, Capability::Close, what, ctx.p.close(id)).await;
    check_state(&ctx, "after a refused close", id, |s| s.open).await;

    ctx.ok("close of an open session", ctx.p.close(id)).await;
    check_state(&ctx, "after close", id, |s| !s.open).await;
    if ctx.has(Capability::Live) {
        Live::new(&ctx)
            .change("the close", |c| {
                c.session.external_id == id && c.session.status == Some(SessionStatus::Closed)
            })
            .await;
    }

    let what = "close of a closed session";
    let e = ctx.err(what, ctx.p.close(id)).await;
    ctx.expect_rejected(what, &e, None);
    if ctx.has(Capability::Send) {
        let req = text_send(Some(id), &session.customer_id, "behaviour suite: too late");
        let what = "send into a closed session";
        let e = ctx.err(what, ctx.p.send(&req)).await;
        ctx.expect_rejected(what, &e, None);
    }
    Outcome::Passed
}

/// Restart: a closed session is reopened (the provider holds it open; the
/// reopening is on the live feed, when `live`); restarting an open session,
/// or a restart the provider refuses, is `Rejected`.
pub async fn restart_and_rejection(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "restart and its rejection");
    if !ctx.has(Capability::Restart) {
        return ctx.skip("`restart` is not claimed");
    }
    let session = h.closed_session().await;
    let session = ctx.need(session, "a closed session", Capability::Restart);
    let id = session.external_id.as_str();
    let mut live = Live::new(&ctx);
    if ctx.has(Capability::Live) {
        // Drain the session's opening and close so the reopening is told apart.
        live.change("the prepared session's close", |c| {
            c.session.external_id == id && c.session.status == Some(SessionStatus::Closed)
        })
        .await;
    }

    let what = "restart refused by the provider";
    check_refusal(&ctx, Capability::Restart, what, ctx.p.restart(id)).await;
    check_state(&ctx, "after a refused restart", id, |s| !s.open).await;

    ctx.ok("restart of a closed session", ctx.p.restart(id))
        .await;
    check_state(&ctx, "after restart", id, |s| s.open).await;
    if ctx.has(Capability::Live) {
        live.change("the reopening", |c| {
            c.session.external_id == id && c.session.status == Some(SessionStatus::Open)
        })
        .await;
    }

    let what = "restart of an open session";
    let e = ctx.err(what, ctx.p.restart(id)).await;
    ctx.expect_rejected(what, &e, None);
    Outcome::Passed
}

/// Transfer: an open session is handed to an online agent (the provider
/// holds it with that agent); a transfer to an offline agent, or one the
/// provider refuses, is `Rejected`.
pub async fn transfer_and_rejection(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "transfer and its rejection");
    if !ctx.has(Capability::Transfer) {
        return ctx.skip("`transfer` is not claimed");
    }
    let session = h.open_session().await;
    let session = ctx.need(session, "an open session", Capability::Transfer);
    let agents = ctx.need(
        h.transfer_agents(),
        "online and offline agents",
        Capability::Transfer,
    );
    let id = session.external_id.as_str();

    let what = "transfer refused by the provider";
    check_refusal(
        &ctx,
        Capability::Transfer,
        what,
        ctx.p.transfer(id, &agents.online),
    )
    .await;

    ctx.ok(
        "transfer to an online agent",
        ctx.p.transfer(id, &agents.online),
    )
    .await;
    check_state(&ctx, "after transfer", id, |s| {
        s.open && s.agent_id.as_deref() == Some(agents.online.as_str())
    })
    .await;

    let what = "transfer to an offline agent";
    let e = ctx.err(what, ctx.p.transfer(id, &agents.offline)).await;
    ctx.expect_rejected(what, &e, None);
    check_state(&ctx, "after a refused transfer", id, |s| {
        s.agent_id.as_deref() == Some(agents.online.as_str())
    })
    .await;

    let missing = h.missing_session_id();
    let what = "transfer of an unknown session";
    let e = ctx
        .err(what, ctx.p.transfer(&missing, &agents.online))
        .await;
    ctx.expect_rejected(what, &e, None);
    Outcome::Passed
}

// ---------------------------------------------------------------------------
// Failures.

/// One call of each kind the provider supports, for the failure checks.
#[derive(Debug, Clone)]
enum Probe {
    Live,
    Replay(String),
    Fetch(HistoryQuery),
    List(SessionListQuery),
    Get(String),
    Send(SendRequest),
    Outreach(SendRequest),
    Close(String),
    Restart(String),
    Transfer(String, String),
}

impl Probe {
    fn name(&self) -> &'static str {
        match self {
            Probe::Live => "poll_live (live)",
            Probe::Replay(_) => "poll_live (history replay)",
            Probe::Fetch(_) => "fetch_history",
            Probe::List(_) => "list_sessions",
            Probe::Get(_) => "get_session",
            Probe::Send(_) => "send",
            Probe::Outreach(_) => "send (outreach)",
            Probe::Close(_) => "close",
            Probe::Restart(_) => "restart",
            Probe::Transfer(_, _) => "transfer",
        }
    }

    /// Reads can be repeated freely; the failure checks retry them.
    fn is_read(&self) -> bool {
        matches!(
            self,
            Probe::Live | Probe::Replay(_) | Probe::Fetch(_) | Probe::List(_) | Probe::Get(_)
        )
    }

    async fn call(&self, p: &dyn Provider) -> Result<(), ProviderError> {
        match self {
            Probe::Live => p.poll_live(&LivePoll::default()).await.map(drop),
            Probe::Replay(v) => {
                let poll = LivePoll {
                    version: Some(v.clone()),
                    acks: Vec::new(),
                };
                p.poll_live(&poll).await.map(drop)
            }
            Probe::Fetch(q) => p.fetch_history(q).await.map(drop),
            Probe::List(q) => p.list_sessions(q).await.map(drop),
            Probe::Get(id) => p.get_session(id).await.map(drop),
            Probe::Send(req) | Probe::Outreach(req) => p.send(req).await.map(drop),
            Probe::Close(id) => p.close(id).await,
            Probe::Restart(id) => p.restart(id).await,
            Probe::Transfer(id, agent) => p.transfer(id, agent).await,
        }
    }
}

/// A small seeded history and prepared sessions, and one probe per
/// supported call.
async fn probes(ctx: &Ctx<'_>) -> Vec<Probe> {
    let h = ctx.h;
    let mut out = Vec::new();
    if ctx.has(Capability::Live) {
        out.push(Probe::Live);
    }
    if ctx.has(Capability::History) || ctx.has(Capability::ListSessions) {
        let seeded = h.seed_history(1, 2).await;
        if ctx.has(Capability::History) {
            match seeded.read {
                Some(HistoryRead::Replay { after_version }) => {
                    out.push(Probe::Replay(after_version))
                }
                Some(HistoryRead::Fetch { mut queries }) if !queries.is_empty() => {
                    out.push(Probe::Fetch(queries.swap_remove(0)))
                }
                _ => ctx.fail(
                    "the capabilities claim `history` but the harness gives no way to read it",
                ),
            }
        }
        if ctx.has(Capability::ListSessions) {
            out.push(Probe::List(SessionListQuery {
                created_from: seeded.created_from,
                created_to: None,
                page: None,
            }));
            match seeded.sessions.first() {
                Some(id) => out.push(Probe::Get(id.clone())),
                None => ctx.fail("the harness seeded no session"),
            }
        }
    }
    for (cap, what) in [
        (Capability::Send, "send"),
        (Capability::Outreach, "outreach"),
        (Capability::Close, "close"),
        (Capability::Transfer, "transfer"),
    ] {
        if !ctx.has(cap) {
            continue;
        }
        let session = h.open_session().await;
        let s = ctx.need(session, "an open session", cap);
        out.push(match what {
            "send" => Probe::Send(text_send(
                Some(&s.external_id),
                &s.customer_id,
                "behaviour suite: probe",
            )),
            "outreach" => {
                Probe::Outreach(text_send(None, &s.customer_id, "behaviour suite: probe"))
            }
            "close" => Probe::Close(s.external_id),
            _ => {
                let agents = h.transfer_agents();
                let agents = ctx.need(agents, "an online agent", cap);
                Probe::Transfer(s.external_id, agents.online)
            }
        });
    }
    if ctx.has(Capability::Restart) {
        let session = h.closed_session().await;
        let s = ctx.need(session, "a closed session", Capability::Restart);
        out.push(Probe::Restart(s.external_id));
    }
    if out.is_empty() {
        ctx.fail("the provider claims no capability at all");
    }
    out
}

/// After a failure: a read is retried and must now succeed.
async fn retry_succeeds(ctx: &Ctx<'_>, probe: &Probe, after: &str) {
    if probe.is_read() {
        let what = format!("{} retried after {after}", probe.name());
        ctx.ok(&what, probe.call(&*ctx.p)).await;
    }
}

/// Auth failure: with credentials the provider refuses, every call is
/// `Unauthorized`, which is final (not retryable).
pub async fn auth_failure(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "auth failure");
    let bad = h.bad_credentials_provider();
    ensure!(
        ctx,
        bad.name() == ctx.name,
        "bad_credentials_provider is a {} adapter",
        bad.name()
    );
    for probe in probes(&ctx).await {
        let what = format!("{} with refused credentials", probe.name());
        let e = ctx.err(&what, probe.call(&*bad)).await;
        ctx.expect_kind(&what, &e, ProviderErrorKind::Unauthorized);
        ensure!(ctx, !e.is_retryable(), "{what}: Unauthorized must be final");
    }
    Outcome::Passed
}

/// Token expiry mid-run: credentials expiring (and, where the provider
/// rotates them, being replaced) between history pages are recovered
/// transparently: the read completes with everything seeded.
pub async fn credential_expiry(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "credential expiry mid-run");
    if !ctx.has(Capability::History) {
        return ctx.skip("`history` is not claimed, so there is no multi-page read to interrupt");
    }
    let seeded = h
        .seed_history(HISTORY_SESSIONS, HISTORY_MESSAGES_PER_SESSION)
        .await;
    check_seeded(
        &ctx,
        &seeded,
        HISTORY_SESSIONS,
        HISTORY_MESSAGES_PER_SESSION,
    );
    let Some(read) = &seeded.read else {
        ctx.fail("the capabilities claim `history` but the harness gives no way to read it");
    };
    let mut cursor = Cursor::new(read);
    let mut collected = Collected::default();
    let mut events = Vec::new();
    let mut expires = false;
    let mut pages = 0;
    while let Some(page) = cursor.next(&ctx).await {
        collected.take(&ctx, page);
        pages += 1;
        // Between pages: expire, then rotate, then expire again (a provider
        // whose credentials only rotate rotates after the first page).
        match pages {
            1 => {
                expires = h.expire_credentials().await;
                if expires {
                    events.push("expired");
                } else if h.rotate_credentials().await {
                    events.push("rotated");
                } else {
                    return ctx.skip("the provider's credentials neither expire nor rotate");
                }
            }
            2 if expires && h.rotate_credentials().await => events.push("rotated"),
            3 if expires && h.expire_credentials().await => events.push("expired"),
            _ => {}
        }
    }
    ensure!(
        ctx,
        pages > 1,
        "the read took one page, so no credential event fell inside it"
    );
    let what = format!("history read with credentials {events:?} between pages");
    check_messages(&ctx, &what, &seeded.messages, &collected.messages);
    Outcome::Passed
}

/// 429: each call answered 429 is `RateLimited` carrying the wait the
/// provider announced; a read retried afterwards succeeds.
pub async fn rate_limit(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "429 rate limit");
    let probes = probes(&ctx).await;
    for probe in &probes {
        let Some(limit) = h.rate_limit_next().await else {
            h.clear_faults().await;
            return ctx.skip("the harness cannot provoke a 429");
        };
        let what = format!("{} answered 429", probe.name());
        let e = ctx.err(&what, probe.call(&*ctx.p)).await;
        ctx.expect_kind(&what, &e, ProviderErrorKind::RateLimited);
        ensure!(
            ctx,
            e.retry_after() == limit.retry_after,
            "{what}: retry_after {:?}, the provider announced {:?}",
            e.retry_after(),
            limit.retry_after
        );
        ensure!(
            ctx,
            e.is_retryable(),
            "{what}: a rate limit must be retryable"
        );
        retry_succeeds(&ctx, probe, "a 429").await;
    }
    h.clear_faults().await;
    Outcome::Passed
}

/// 5xx: each call answered 500, 502 or 503 is a retryable `Unavailable`,
/// and a read retried afterwards succeeds.
pub async fn server_errors(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "5xx retry classification");
    let probes = probes(&ctx).await;
    for status in SERVER_ERRORS {
        for probe in &probes {
            h.fail_next_status(status).await;
            let what = format!("{} answered HTTP {status}", probe.name());
            let e = ctx.err(&what, probe.call(&*ctx.p)).await;
            ctx.expect_kind(&what, &e, ProviderErrorKind::Unavailable);
            ensure!(ctx, e.is_retryable(), "{what}: a 5xx must be retryable");
            retry_succeeds(&ctx, probe, &format!("HTTP {status}")).await;
        }
    }
    h.clear_faults().await;
    Outcome::Passed
}

/// Timeout: a call the provider never answers ends as `Timeout` (retryable)
/// within [`Harness::max_call_time`], and a read retried afterwards succeeds.
pub async fn timeout(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "timeout");
    let probes = probes(&ctx).await;
    let budget = h.max_call_time();
    for probe in &probes {
        h.hang_next().await;
        let what = format!("{} never answered", probe.name());
        let started = Instant::now();
        let e = ctx.err(&what, probe.call(&*ctx.p)).await;
        let took = started.elapsed();
        ctx.expect_kind(&what, &e, ProviderErrorKind::Timeout);
        ensure!(ctx, e.is_retryable(), "{what}: a timeout must be retryable");
        // A second of slack for a loaded machine.
        ensure!(
            ctx,
            took <= budget + Duration::from_secs(1),
            "{what}: gave up after {took:?}, the budget is {budget:?}"
        );
        retry_succeeds(&ctx, probe, "a timeout").await;
    }
    h.clear_faults().await;
    Outcome::Passed
}

/// Malformed JSON: each call answered 200 with unreadable JSON fails with a
/// retryable error (`BadData`, or `Unavailable`), never a panic; a read
/// retried afterwards succeeds.
pub async fn malformed_json(h: &dyn Harness) -> Outcome {
    let ctx = Ctx::new(h, "malformed JSON");
    let probes = probes(&ctx).await;
    for probe in &probes {
        h.malformed_next().await;
        let what = format!("{} answered malformed JSON", probe.name());
        let provider = Arc::clone(&ctx.p);
        let task = probe.clone();
        // On its own task so an adapter panic is reported as such.
        let joined = ctx
            .call(&what, async move {
                Ok(tokio::spawn(async move { task.call(&*provider).await }).await)
            })
            .await;
        let result = match joined {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => {
                ctx.fail(format_args!("{what}: the adapter panicked"))
            }
            Ok(Err(join)) => ctx.fail(format_args!("{what}: the call was cancelled: {join}")),
            Err(e) => Err(e),
        };
        let e = match result {
            Ok(()) => ctx.fail(format_args!("{what}: succeeded on an unreadable answer")),
            Err(e) => e,
        };
        ensure!(
            ctx,
            matches!(
                e.kind(),
                ProviderErrorKind::BadData | ProviderErrorKind::Unavailable
            ) && e.is_retryable(),
            "{what}: expected retryable BadData, got {e:?}"
        );
        retry_succeeds(&ctx, probe, "malformed JSON").await;
    }
    h.clear_faults().await;
    Outcome::Passed
}
