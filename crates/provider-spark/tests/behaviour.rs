//! The shared adapter behaviour suite (`chat_core::testing`), run against the
//! Spark simulator over real HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::testing::{
    Harness, HistoryRead, LiveMessage, RateLimit, SeededHistory, SeededMessage, SessionState,
    TestSession, TransferAgents,
};
use chat_core::time::{parse_zone, Tz};
use chat_core::{Provider, Role, Secret};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use provider_sim::{
    FailNext, FaultAction, SimControl, SimOptions, SimProvider, SimServer, SparkAgent, SparkInject,
};
use provider_spark::{SparkConfig, SparkProvider};

/// How long the simulator holds an empty live poll, and the adapter waits.
const HOLD: Duration = Duration::from_millis(500);
/// The adapter's slack on top of the hold, and its timeout for other calls.
const MARGIN: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const ONLINE_AGENT: &str = "suite-agent-online";
const OFFLINE_AGENT: &str = "suite-agent-offline";
/// The message the simulator's business refusal carries.
const REFUSAL: &str = "simulated business failure";

fn shanghai() -> Tz {
    parse_zone("Asia/Shanghai").expect("a known zone")
}

struct SparkHarness {
    _server: SimServer,
    control: SimControl,
    provider: Arc<SparkProvider>,
    bad: Arc<SparkProvider>,
    /// Makes customer ids unique across calls on one simulator.
    counter: AtomicUsize,
}

impl SparkHarness {
    async fn start() -> Self {
        let opts = SimOptions {
            spark_hold: HOLD,
            ..SimOptions::default()
        };
        let server = provider_sim::start(
            SimProvider::Spark,
            "127.0.0.1:0".parse().expect("a socket address"),
            opts,
        )
        .await
        .expect("the Spark simulator starts");
        let control = server.control();
        for (id, online) in [(ONLINE_AGENT, true), (OFFLINE_AGENT, false)] {
            control
                .spark_set_agent(SparkAgent {
                    id: id.into(),
                    name: None,
                    image: None,
                    online,
                })
                .expect("the simulator takes the agent");
        }
        let config = |token: &str| {
            SparkConfig::new(server.base_url(), shanghai())
                .with_header("Authorization", Secret::new(format!("Token {token}")))
                .with_poll_timeout(HOLD)
                .with_poll_margin(MARGIN)
                .with_request_timeout(REQUEST_TIMEOUT)
        };
        let provider = Arc::new(SparkProvider::new(config("demo")).expect("a usable config"));
        let bad = Arc::new(SparkProvider::new(config("wrong")).expect("a usable config"));
        SparkHarness {
            control,
            provider,
            bad,
            counter: AtomicUsize::new(0),
            _server: server,
        }
    }

    fn customer(&self, what: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("suite-{what}-{n}")
    }

    fn inject(&self, msg: SparkInject) -> provider_sim::SparkInjected {
        self.control
            .spark_inject(msg)
            .expect("the simulator takes the message")
    }

    fn customer_says(&self, customer: &str, text: &str) -> provider_sim::SparkInjected {
        self.inject(SparkInject {
            customer_id: Some(customer.into()),
            text: Some(text.into()),
            ..SparkInject::default()
        })
    }

    fn fail_next(&self, action: FaultAction) {
        self.control
            .fail_next(
                SimProvider::Spark,
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
impl Harness for SparkHarness {
    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn bad_credentials_provider(&self) -> Arc<dyn Provider> {
        self.bad.clone()
    }

    fn max_call_time(&self) -> Duration {
        (HOLD + MARGIN).max(REQUEST_TIMEOUT)
    }

    async fn seed_history(&self, sessions: usize, messages_per_session: usize) -> SeededHistory {
        // History is replayed after a version: the id of a message just
        // before the seeded ones.
        let marker = self.customer_says(&self.customer("marker"), "marker");
        let start: DateTime<Utc> = (Utc::now() - TimeDelta::hours(2)).trunc_subsecs(0);
        let mut ids: Vec<Option<String>> = vec![None; sessions];
        let mut customers = Vec::new();
        for _ in 0..sessions {
            customers.push(self.customer("history"));
        }
        let mut messages = Vec::new();
        let mut n = 0;
        // Round robin over the sessions, so answers interleave them.
        for m in 0..messages_per_session {
            for s in 0..sessions {
                let role = if m % 2 == 0 {
                    Role::Customer
                } else {
                    Role::Agent
                };
                let text = format!("历史 {s}/{m}: seeded message");
                let at = start + TimeDelta::seconds(n);
                n += 1;
                let injected = self.inject(SparkInject {
                    session_id: ids[s].clone(),
                    customer_id: Some(customers[s].clone()),
                    message_type: u8::from(role == Role::Agent),
                    text: Some(text.clone()),
                    at: Some(at),
                    ..SparkInject::default()
                });
                ids[s] = Some(injected.session_id.clone());
                messages.push(SeededMessage {
                    external_id: injected.message_id,
                    session_external_id: injected.session_id,
                    role,
                    text: Some(text),
                    sent_at: Some(at),
                });
            }
        }
        SeededHistory {
            read: Some(HistoryRead::Replay {
                after_version: marker.message_id,
            }),
            sessions: ids.into_iter().flatten().collect(),
            messages,
            created_from: start - TimeDelta::minutes(1),
        }
    }

    async fn push_live_message(&self, role: Role, text: &str) -> Option<LiveMessage> {
        if !matches!(role, Role::Customer | Role::Agent) {
            return None;
        }
        let injected = self.inject(SparkInject {
            customer_id: Some(self.customer("live")),
            message_type: u8::from(role == Role::Agent),
            text: Some(text.into()),
            ..SparkInject::default()
        });
        Some(LiveMessage {
            external_id: injected.message_id,
            session_external_id: injected.session_id,
        })
    }

    async fn open_session(&self) -> Option<TestSession> {
        let customer = self.customer("open");
        let injected = self.customer_says(&customer, "hello");
        Some(TestSession {
            external_id: injected.session_id,
            customer_id: customer,
        })
    }

    async fn closed_session(&self) -> Option<TestSession> {
        let session = self.open_session().await?;
        self.control
            .spark_close(&session.external_id)
            .expect("the simulator closes the session");
        Some(session)
    }

    async fn session_state(&self, session_external_id: &str) -> Option<SessionState> {
        let sessions = self.control.spark_sessions().expect("Spark is served");
        sessions
            .into_iter()
            .find(|s| s.session_id == session_external_id)
            .map(|s| SessionState {
                open: s.active,
                agent_id: Some(s.agent_id),
            })
    }

    fn transfer_agents(&self) -> Option<TransferAgents> {
        Some(TransferAgents {
            online: ONLINE_AGENT.into(),
            offline: OFFLINE_AGENT.into(),
        })
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
        // Spark does not document a rate limit; a 429 without Retry-After
        // must still be read as one.
        self.fail_next(FaultAction::Status { status: 429 });
        Some(RateLimit { retry_after: None })
    }

    async fn refuse_next(&self) -> Option<String> {
        self.fail_next(FaultAction::BusinessError);
        Some(REFUSAL.into())
    }

    async fn clear_faults(&self) {
        self.control
            .clear_faults(SimProvider::Spark)
            .expect("Spark is served");
    }
}

chat_core::behaviour_suite!(SparkHarness::start().await);
