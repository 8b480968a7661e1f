//! The shared adapter behaviour suite (`chat_core::testing`), run against the
//! Kchat simulator over real HTTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::testing::{Harness, HistoryRead, RateLimit, SeededHistory, SeededMessage};
use chat_core::time::{parse_zone, Tz};
use chat_core::{HistoryQuery, Provider, Role, Secret};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use provider_kchat::{KchatConfig, KchatCredential, KchatProvider};
use provider_sim::{
    FailNext, FaultAction, KchatNewChat, KchatNewMessage, SimControl, SimOptions, SimProvider,
    SimServer,
};
use url::Url;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Small pages, so a dozen seeded chats take several.
const PAGE_SIZE: usize = 5;
/// The agent answering the seeded chats.
const AGENT_ID: u64 = 7001;

fn shanghai() -> Tz {
    parse_zone("Asia/Shanghai").expect("a known zone")
}

struct KchatHarness {
    _server: SimServer,
    control: SimControl,
    provider: Arc<KchatProvider>,
    bad: Arc<KchatProvider>,
    /// Makes visitor ids unique across calls on one simulator.
    visitors: AtomicU64,
}

impl KchatHarness {
    async fn start() -> Self {
        let opts = SimOptions {
            kchat_max_page_size: PAGE_SIZE,
            // The suite's own calls stay under the limit; 429s are injected.
            kchat_rate_limit_per_minute: 100_000,
            ..SimOptions::default()
        };
        let creds = opts.kchat.clone();
        let server = provider_sim::start(
            SimProvider::Kchat,
            "127.0.0.1:0".parse().expect("a socket address"),
            opts,
        )
        .await
        .expect("the Kchat simulator starts");
        let config = |token: &str| {
            let mut config = KchatConfig::new(
                Url::parse(server.base_url()).expect("the simulator's URL"),
                creds.email.clone(),
                KchatCredential::ApiToken(Secret::new(token)),
                shanghai(),
            );
            config.request_timeout = REQUEST_TIMEOUT;
            KchatProvider::new(config).expect("a usable config")
        };
        KchatHarness {
            control: server.control(),
            provider: Arc::new(config(&creds.api_token)),
            bad: Arc::new(config("not-the-token")),
            visitors: AtomicU64::new(90_000),
            _server: server,
        }
    }

    fn fail_next(&self, action: FaultAction) {
        self.control
            .fail_next(
                SimProvider::Kchat,
                FailNext {
                    count: 1,
                    path_prefix: None,
                    action,
                },
            )
            .expect("the simulator takes the fault");
    }
}

#[async_trait]
impl Harness for KchatHarness {
    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn bad_credentials_provider(&self) -> Arc<dyn Provider> {
        self.bad.clone()
    }

    fn max_call_time(&self) -> Duration {
        REQUEST_TIMEOUT
    }

    fn missing_session_id(&self) -> String {
        "999999999".into()
    }

    async fn seed_history(&self, sessions: usize, messages_per_session: usize) -> SeededHistory {
        let start: DateTime<Utc> = (Utc::now() - TimeDelta::hours(2)).trunc_subsecs(0);
        let mut ids = Vec::new();
        let mut messages = Vec::new();
        for s in 0..sessions {
            let created = start + TimeDelta::minutes(s as i64);
            let chat = self
                .control
                .kchat_add_chat(KchatNewChat {
                    visitor_id: self.visitors.fetch_add(1, Ordering::Relaxed),
                    agent_id: Some(AGENT_ID),
                    created_at: Some(created),
                    ..KchatNewChat::default()
                })
                .expect("the simulator takes the chat");
            for m in 0..messages_per_session {
                let role = if m % 2 == 0 {
                    Role::Customer
                } else {
                    Role::Agent
                };
                let text = format!("历史 {s}/{m}: seeded message");
                let at = created + TimeDelta::seconds(m as i64);
                let id = self
                    .control
                    .kchat_add_message(
                        chat,
                        KchatNewMessage {
                            msg: Some(text.clone()),
                            user_id: (role == Role::Agent).then_some(AGENT_ID),
                            created_at: Some(at),
                            ..KchatNewMessage::default()
                        },
                    )
                    .expect("the simulator takes the message");
                messages.push(SeededMessage {
                    external_id: id.to_string(),
                    session_external_id: chat.to_string(),
                    role,
                    text: Some(text),
                    sent_at: Some(at),
                });
            }
            ids.push(chat.to_string());
        }
        let from = start - TimeDelta::days(1);
        SeededHistory {
            read: Some(HistoryRead::Fetch {
                queries: vec![HistoryQuery {
                    customer_id: None,
                    from,
                    to: None,
                    page: None,
                }],
            }),
            sessions: ids,
            messages,
            created_from: from,
        }
    }

    async fn fail_next_status(&self, status: u16) {
        self.fail_next(FaultAction::Status { status });
    }

    async fn hang_next(&self) {
        self.fail_next(FaultAction::Hang);
    }

    async fn malformed_next(&self) {
        self.fail_next(FaultAction::Malformed);
    }

    async fn rate_limit_next(&self) -> Option<RateLimit> {
        // Kchat's 429 always says how long to wait.
        self.fail_next(FaultAction::Status { status: 429 });
        Some(RateLimit {
            retry_after: Some(Duration::from_secs(1)),
        })
    }

    async fn clear_faults(&self) {
        self.control
            .clear_faults(SimProvider::Kchat)
            .expect("Kchat is served");
    }
}

chat_core::behaviour_suite!(KchatHarness::start().await);
