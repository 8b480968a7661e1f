//! The shared adapter behaviour suite (`chat_core::testing`), run against the
//! ccmessaging simulator over real HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::testing::{Harness, HistoryRead, RateLimit, SeededHistory, SeededMessage};
use chat_core::{HistoryQuery, Provider, Role, Secret};
use chrono::{DateTime, TimeDelta, Utc};
use provider_ccmessaging::{CcmessagingConfig, CcmessagingProvider};
use provider_sim::{
    CcmExpire, CcmItem, FailNext, FaultAction, SimControl, SimOptions, SimProvider, SimServer,
};
use url::Url;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// History is read per customer: the seeded sessions are spread over this
/// many customers, one history query each.
const CUSTOMERS: usize = 2;

struct CcmHarness {
    _server: SimServer,
    control: SimControl,
    provider: Arc<CcmessagingProvider>,
    bad: Arc<CcmessagingProvider>,
    /// Makes customer and call ids unique across calls on one simulator.
    counter: AtomicUsize,
}

impl CcmHarness {
    async fn start() -> Self {
        let opts = SimOptions::default();
        let creds = opts.ccm.clone();
        let server = provider_sim::start(
            SimProvider::Ccmessaging,
            "127.0.0.1:0".parse().expect("a socket address"),
            opts,
        )
        .await
        .expect("the ccmessaging simulator starts");
        let config = |secret: &str| {
            let mut config = CcmessagingConfig::new(
                Url::parse(server.base_url()).expect("the simulator's URL"),
                Secret::new(creds.app_key.clone()),
                Secret::new(secret),
                creds.channel_id.clone(),
            );
            config.request_timeout = REQUEST_TIMEOUT;
            CcmessagingProvider::new(config).expect("a usable config")
        };
        CcmHarness {
            control: server.control(),
            provider: Arc::new(config(&creds.app_secret)),
            bad: Arc::new(config("not-the-app-secret")),
            counter: AtomicUsize::new(0),
            _server: server,
        }
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn fail_next(&self, action: FaultAction) {
        self.control
            .fail_next(
                SimProvider::Ccmessaging,
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
impl Harness for CcmHarness {
    fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    fn bad_credentials_provider(&self) -> Arc<dyn Provider> {
        self.bad.clone()
    }

    fn max_call_time(&self) -> Duration {
        REQUEST_TIMEOUT
    }

    async fn seed_history(&self, sessions: usize, messages_per_session: usize) -> SeededHistory {
        let customers: Vec<String> = (0..CUSTOMERS.min(sessions))
            .map(|_| format!("16594902210{:013}", self.next()))
            .collect();
        let calls: Vec<String> = (0..sessions)
            .map(|_| format!("suite-call-{}", self.next()))
            .collect();
        let start: DateTime<Utc> = Utc::now() - TimeDelta::hours(2);
        let start =
            DateTime::from_timestamp_millis(start.timestamp_millis()).expect("a time in range");
        let mut items = Vec::new();
        let mut messages = Vec::new();
        let mut n = 0;
        for m in 0..messages_per_session {
            for (s, call) in calls.iter().enumerate() {
                let role = if m % 2 == 0 {
                    Role::Customer
                } else {
                    Role::Agent
                };
                let text = format!("历史 {s}/{m}: seeded message");
                let id = format!("{}{:017}", start.timestamp_millis(), self.next());
                let at = start + TimeDelta::milliseconds(n * 1500);
                n += 1;
                items.push(CcmItem {
                    user_id: customers[s % customers.len()].clone(),
                    id: Some(id.clone()),
                    source_type: Some(
                        if role == Role::Customer {
                            "USER"
                        } else {
                            "AGENT"
                        }
                        .into(),
                    ),
                    content: Some(text.clone()),
                    call_id: Some(call.clone()),
                    send_time: Some(at.timestamp_millis()),
                    ..CcmItem::default()
                });
                messages.push(SeededMessage {
                    external_id: id,
                    session_external_id: call.clone(),
                    role,
                    text: Some(text),
                    sent_at: Some(at),
                });
            }
        }
        self.control
            .ccm_add_items(items)
            .expect("the simulator takes the items");
        let from = start - TimeDelta::minutes(1);
        SeededHistory {
            read: Some(HistoryRead::Fetch {
                queries: customers
                    .into_iter()
                    .map(|c| HistoryQuery {
                        customer_id: Some(c),
                        from,
                        to: None,
                        page: None,
                    })
                    .collect(),
            }),
            sessions: calls,
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
        // ccmessaging does not document a rate limit; a 429 without
        // Retry-After must still be read as one.
        self.fail_next(FaultAction::Status { status: 429 });
        Some(RateLimit { retry_after: None })
    }

    async fn expire_credentials(&self) -> bool {
        self.control
            .ccm_expire_tokens(CcmExpire {
                access: true,
                user: true,
                user_id: None,
            })
            .expect("ccmessaging is served");
        true
    }

    async fn rotate_credentials(&self) -> bool {
        self.control
            .ccm_rotate_token(None)
            .expect("ccmessaging is served");
        true
    }

    async fn clear_faults(&self) {
        self.control
            .clear_faults(SimProvider::Ccmessaging)
            .expect("ccmessaging is served");
    }
}

chat_core::behaviour_suite!(CcmHarness::start().await);
