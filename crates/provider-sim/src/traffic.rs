//! Lively traffic and seeded history, built from the conversation model of
//! [`crate::script`] so every provider gets its own wire forms.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::content::{
    image_url, pick, AGENT_LINES, CARDS, CUSTOMERS, CUSTOMER_LINES, FILES, HTML_LINES, LOCATIONS,
    ROBOT_LINES, SYSTEM_LINES,
};
use crate::error::SimError;
use crate::faults::SINGLE;
use crate::options::SimProvider;
use crate::script::{
    CcmGrouping, Conversation, EventBody, Party, Script, ScriptAgent, ScriptCustomer, ScriptEvent,
    ScriptSession,
};
use crate::util::{lock, rng_from};
use crate::Shared;

/// Agents the generated conversations use (online Spark agents by default).
const AGENTS: [(&str, &str); 2] = [("1001", "王芳"), ("1002", "Emily Chen")];

/// How lively traffic behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrafficOptions {
    /// Events per second, per provider.
    pub events_per_second: f64,
    /// Which providers (`all`: each served one).
    pub providers: SimProvider,
    /// Conversations open at once, per provider.
    pub max_open_sessions: usize,
    /// Seed for the choices (default: the server's seed, else entropy).
    pub seed: Option<u64>,
}

impl Default for TrafficOptions {
    fn default() -> Self {
        Self {
            events_per_second: 1.0,
            providers: SimProvider::All,
            max_open_sessions: 6,
            seed: None,
        }
    }
}

/// How much history to seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryOptions {
    /// How many days back (history spans the last `days` days).
    pub days: u32,
    /// Conversations per day, per provider.
    pub conversations_per_day: u32,
    /// Which providers (`all`: each served one).
    pub providers: SimProvider,
    /// Seed for the choices (default: the server's seed, else entropy).
    pub seed: Option<u64>,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        Self {
            days: 7,
            conversations_per_day: 3,
            providers: SimProvider::All,
            seed: None,
        }
    }
}

/// A running traffic generator; [`TrafficHandle::stop`] ends it, as does
/// the server's shutdown or [`crate::SimControl::stop_traffic`].
#[derive(Debug, Clone)]
pub struct TrafficHandle {
    token: CancellationToken,
}

impl TrafficHandle {
    /// Stops generating.
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// Whether it has been stopped.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }
}

fn customer(i: usize) -> ScriptCustomer {
    let (id, name, visitor, ccm) = CUSTOMERS[i % CUSTOMERS.len()];
    ScriptCustomer {
        id: id.into(),
        name: name.into(),
        image: None,
        ccm_user_id: Some(ccm.into()),
        kchat_visitor_id: Some(visitor),
        kchat_user_id: Some(45_000 + visitor),
    }
}

fn agent(i: usize) -> ScriptAgent {
    let (id, name) = AGENTS[i % AGENTS.len()];
    ScriptAgent {
        id: id.into(),
        name: name.into(),
        online: true,
        kchat_id: None,
    }
}

fn providers(shared: &Shared, wanted: SimProvider) -> Vec<SimProvider> {
    SINGLE
        .into_iter()
        .filter(|p| shared.served.includes(*p) && wanted.includes(*p))
        .collect()
}

fn text(rng: &mut StdRng, provider: SimProvider, from: Party) -> EventBody {
    let line = match from {
        Party::Customer if provider == SimProvider::Ccmessaging && rng.gen_bool(0.25) => {
            pick(rng, HTML_LINES)
        }
        Party::Customer => pick(rng, CUSTOMER_LINES),
        Party::Agent => pick(rng, AGENT_LINES),
        Party::Robot => pick(rng, ROBOT_LINES),
        Party::System => pick(rng, SYSTEM_LINES),
    };
    EventBody::Text {
        text: (*line).to_string(),
    }
}

/// A random event for an open conversation; `None` body means "close".
fn next_event(rng: &mut StdRng, provider: SimProvider) -> (Party, EventBody) {
    let roll = rng.gen_range(0..100);
    let from_either = if rng.gen_bool(0.5) {
        Party::Customer
    } else {
        Party::Agent
    };
    match roll {
        0..=29 => (Party::Customer, text(rng, provider, Party::Customer)),
        30..=52 => (Party::Agent, text(rng, provider, Party::Agent)),
        53..=57 => (Party::Robot, text(rng, provider, Party::Robot)),
        58..=63 => (
            from_either,
            EventBody::Image {
                url: Some(image_url(rng)),
                as_file: rng.gen_bool(0.3),
            },
        ),
        64..=67 => {
            let (name, size, _, _) = pick(rng, FILES);
            (
                from_either,
                EventBody::File {
                    name: (*name).to_string(),
                    size: Some(*size),
                },
            )
        }
        68..=70 => {
            let (title, description, url) = pick(rng, CARDS);
            (
                Party::Agent,
                EventBody::Card {
                    title: (*title).into(),
                    description: (*description).into(),
                    url: (*url).into(),
                },
            )
        }
        71..=72 => {
            let (lat, long, description) = pick(rng, LOCATIONS);
            (
                Party::Customer,
                EventBody::Location {
                    lat: *lat,
                    long: *long,
                    description: (*description).into(),
                },
            )
        }
        73 => (Party::Customer, EventBody::Audio),
        74 => (
            Party::Customer,
            EventBody::Video {
                as_file: rng.gen_bool(0.5),
            },
        ),
        75..=78 => (Party::Customer, EventBody::Typing),
        79..=81 => (Party::Agent, EventBody::Read),
        82..=84 => (Party::Customer, EventBody::TransferToAgent),
        85..=87 => {
            let to = AGENTS[rng.gen_range(0..AGENTS.len())].0;
            (Party::System, EventBody::Transfer { to: to.into() })
        }
        88..=90 => (Party::System, raw(rng)),
        _ => (Party::System, EventBody::Close),
    }
}

/// A provider-specific oddity: Kchat's less common message types (one
/// unknown) and ccmessaging's `CUSTOMER` source.
fn raw(rng: &mut StdRng) -> EventBody {
    const KCHAT: &[&str] = &[
        "chat.question",
        "chat.ai_receive",
        "chat.ai_send",
        "visitor.notify",
        "visitor.queue.fail",
        "agent.assign.fail",
        "chat.custom",
        "chat.future_unknown_type",
    ];
    EventBody::Raw {
        kchat_type: Some((*pick(rng, KCHAT)).into()),
        ccm_control_type: Some("CHAT".into()),
        ccm_media_type: Some("TEXT".into()),
        ccm_source_type: Some("CUSTOMER".into()),
        content: Some((*pick(rng, CUSTOMER_LINES)).into()),
    }
}

fn grouping(rng: &mut StdRng) -> CcmGrouping {
    match rng.gen_range(0..10) {
        0 => CcmGrouping::Chat,
        1 => CcmGrouping::None,
        _ => CcmGrouping::Call,
    }
}

fn opening(provider: SimProvider) -> Vec<(Party, EventBody)> {
    match provider {
        SimProvider::Spark => Vec::new(),
        _ => vec![
            (Party::Customer, EventBody::Connect),
            (
                Party::Robot,
                EventBody::Text {
                    text: ROBOT_LINES[0].into(),
                },
            ),
        ],
    }
}

struct Live {
    conv: Conversation,
}

/// Starts the generator.
pub(crate) fn spawn(shared: &Arc<Shared>, opts: TrafficOptions) -> Result<TrafficHandle, SimError> {
    if !(opts.events_per_second.is_finite() && opts.events_per_second > 0.0) {
        return Err(SimError::Invalid(
            "events_per_second must be positive".into(),
        ));
    }
    let targets = providers(shared, opts.providers);
    if targets.is_empty() {
        return Err(SimError::NotServed(opts.providers.name()));
    }
    let token = shared.shutdown.child_token();
    lock(&shared.traffic).push(token.clone());
    let interval = Duration::from_secs_f64((1.0 / opts.events_per_second).max(0.000_1));
    let mut rng = rng_from(opts.seed.or(shared.seed), 7);
    let shared = Arc::clone(shared);
    let stop = token.clone();
    let max_open = opts.max_open_sessions.max(1);
    tokio::spawn(async move {
        let mut live: Vec<Live> = Vec::new();
        let mut closed: Vec<Live> = Vec::new();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.cancelled() => break,
            }
            for &p in &targets {
                step(&shared, &mut rng, p, &mut live, &mut closed, max_open);
            }
        }
    });
    Ok(TrafficHandle { token })
}

fn still_open(shared: &Shared, conv: &Conversation) -> bool {
    match conv.provider {
        SimProvider::Spark => shared
            .spark
            .as_deref()
            .is_some_and(|s| s.is_active(&conv.id)),
        SimProvider::Kchat => shared
            .kchat
            .as_deref()
            .is_some_and(|k| conv.id.parse().is_ok_and(|id| k.is_open(id))),
        _ => true,
    }
}

fn step(
    shared: &Arc<Shared>,
    rng: &mut StdRng,
    provider: SimProvider,
    live: &mut Vec<Live>,
    closed: &mut Vec<Live>,
    max_open: usize,
) {
    // Conversations closed from outside (the gateway, the control API) end here.
    live.retain(|l| {
        l.conv.provider != provider || !l.conv.started() || still_open(shared, &l.conv)
    });
    let open: Vec<usize> = live
        .iter()
        .enumerate()
        .filter(|(_, l)| l.conv.provider == provider)
        .map(|(i, _)| i)
        .collect();
    let now = Utc::now();

    // Spark sessions sometimes come back: a restart of a closed one.
    if provider == SimProvider::Spark && rng.gen_bool(0.03) {
        if let Some(i) = closed.iter().position(|l| l.conv.provider == provider) {
            let mut l = closed.swap_remove(i);
            if l.conv
                .apply(shared, Party::Agent, &EventBody::Reopen, now)
                .is_ok()
            {
                live.push(l);
                return;
            }
        }
    }

    if open.len() < max_open && (open.is_empty() || rng.gen_bool(0.3)) {
        let mut conv = Conversation::new(
            shared,
            provider,
            customer(rng.gen_range(0..CUSTOMERS.len())),
            agent(rng.gen_range(0..AGENTS.len())),
            Some(match provider {
                SimProvider::Spark => ["web", "wechat", "app"][rng.gen_range(0..3)].into(),
                _ => "WEB".into(),
            }),
            grouping(rng),
            None,
        );
        let mut events = opening(provider);
        events.push((Party::Customer, text(rng, provider, Party::Customer)));
        for (from, body) in events {
            if let Err(e) = conv.apply(shared, from, &body, now) {
                tracing::debug!("traffic: {e}");
                return;
            }
        }
        live.push(Live { conv });
        return;
    }

    let Some(&i) = open.get(rng.gen_range(0..open.len().max(1))) else {
        return;
    };
    let (from, body) = next_event(rng, provider);
    let l = &mut live[i];
    match l.conv.apply(shared, from, &body, now) {
        Ok(()) => {
            if let EventBody::Transfer { to } = &body {
                if let Some(a) = AGENTS.iter().position(|(id, _)| id == to) {
                    l.conv.agent = agent(a);
                }
            }
            if body == EventBody::Close {
                let l = live.swap_remove(i);
                closed.push(l);
                if closed.len() > 50 {
                    closed.remove(0);
                }
            }
        }
        Err(e) => tracing::debug!("traffic: {e}"),
    }
}

/// Builds a script of finished conversations over the past days.
pub(crate) fn history_script(shared: &Shared, opts: &HistoryOptions) -> Result<Script, SimError> {
    let targets = providers(shared, opts.providers);
    if targets.is_empty() {
        return Err(SimError::NotServed(opts.providers.name()));
    }
    let mut rng = rng_from(opts.seed.or(shared.seed), 8);
    let mut script = Script {
        agents: (0..AGENTS.len()).map(agent).collect(),
        customers: (0..CUSTOMERS.len()).map(customer).collect(),
        sessions: Vec::new(),
    };
    let span = i64::from(opts.days.max(1)) * 86_400 - 3_600;
    for &p in &targets {
        for _ in 0..opts.days.max(1) * opts.conversations_per_day {
            let start = -rng.gen_range(3_600..span.max(3_601));
            let mut at = start;
            let mut events = Vec::new();
            let mut push = |from, body, at: i64| events.push(ScriptEvent { at, from, body });
            for (from, body) in opening(p) {
                push(from, body, at);
                at += rng.gen_range(5..30);
            }
            push(Party::Customer, text(&mut rng, p, Party::Customer), at);
            for _ in 0..rng.gen_range(3..9) {
                at += rng.gen_range(10..240);
                let (from, body) = next_event(&mut rng, p);
                if matches!(body, EventBody::Close | EventBody::Transfer { .. }) {
                    continue;
                }
                push(from, body, at);
            }
            at += rng.gen_range(30..300);
            push(Party::System, EventBody::Close, at.min(-1));
            let customer = script.customers[rng.gen_range(0..CUSTOMERS.len())]
                .id
                .clone();
            let agent = AGENTS[rng.gen_range(0..AGENTS.len())].0.to_string();
            script.sessions.push(ScriptSession {
                provider: p,
                id: None,
                customer,
                agent: Some(agent),
                channel: (p == SimProvider::Spark)
                    .then(|| ["web", "wechat", "app"][rng.gen_range(0..3)].into()),
                ccm_grouping: grouping(&mut rng),
                events,
            });
        }
    }
    Ok(script)
}
