//! Fault injection: latency, random 5xx, "the next N requests fail like
//! this", and Spark duplicate / out-of-order delivery.
//!
//! Faults sit in front of a provider's routes only (never `/_sim/`). A
//! request first waits out the profile's latency, then takes the first
//! matching queued [`FailNext`] rule, else rolls the profile's `error_rate`.
//! Deterministic rules are what tests use; rates with a seed suit demos and
//! benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::SimError;
use crate::options::SimProvider;
use crate::util::{json, lock, raw_json, rng_from};
use crate::Shared;

/// Faults that apply to every request of a provider, at a rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultProfile {
    /// Added to every request, in milliseconds.
    pub latency_ms: u64,
    /// A random extra of up to this many milliseconds.
    pub latency_jitter_ms: u64,
    /// Share (0 to 1) of requests answered 500 or 503 in the provider's
    /// error format.
    pub error_rate: f64,
    /// Spark only: share (0 to 1) of live answers in which every operation
    /// carrying messages is sent a second time at the end of the answer.
    pub spark_duplicate_rate: f64,
    /// Spark only: share (0 to 1) of live answers whose operations come in
    /// reverse order.
    pub spark_out_of_order_rate: f64,
}

impl FaultProfile {
    fn validate(&self) -> Result<(), SimError> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("spark_duplicate_rate", self.spark_duplicate_rate),
            ("spark_out_of_order_rate", self.spark_out_of_order_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::Invalid(format!("{name} must be within 0..=1")));
            }
        }
        Ok(())
    }
}

/// "Fail the next `count` requests (optionally only those whose path starts
/// with `path_prefix`) like `action`."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailNext {
    /// How many requests; at least 1.
    #[serde(default = "one")]
    pub count: u32,
    /// Only requests whose path starts with this, e.g. `/message/send`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// What they get instead of the normal answer.
    pub action: FaultAction,
}

fn one() -> u32 {
    1
}

/// What a faulted request gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// This HTTP status with the provider's error body (a Kchat 429 also
    /// carries `Retry-After`, as Kchat's always does).
    Status {
        /// E.g. 500, 503, 401.
        status: u16,
    },
    /// No answer until the server shuts down (past any client timeout); the
    /// request is not processed.
    Hang,
    /// HTTP 200 with truncated, unreadable JSON; the request is not processed.
    Malformed,
    /// HTTP 200 with the provider's business failure: Spark `Code` 9999,
    /// ccmessaging `resultCode "1"`, Kchat 400 `error` 40000.
    BusinessError,
    /// Any status and JSON body.
    Body {
        /// The HTTP status.
        status: u16,
        /// The body, sent as JSON.
        body: Value,
    },
    /// Wait this long, then process the request normally.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
}

struct Slot {
    profile: FaultProfile,
    rules: Vec<FailNext>,
    rng: StdRng,
}

/// Per-provider fault state.
pub(crate) struct Faults {
    slots: [Mutex<Slot>; 3],
    fired: AtomicU64,
}

/// The three single providers, in slot order.
pub(crate) const SINGLE: [SimProvider; 3] = [
    SimProvider::Spark,
    SimProvider::Ccmessaging,
    SimProvider::Kchat,
];

fn slot_of(p: SimProvider) -> usize {
    match p {
        SimProvider::Spark | SimProvider::All => 0,
        SimProvider::Ccmessaging => 1,
        SimProvider::Kchat => 2,
    }
}

impl Faults {
    pub(crate) fn new(profile: Option<FaultProfile>, seed: Option<u64>) -> Result<Self, SimError> {
        let profile = profile.unwrap_or_default();
        profile.validate()?;
        let slot = |salt| {
            Mutex::new(Slot {
                profile: profile.clone(),
                rules: Vec::new(),
                rng: rng_from(seed, salt),
            })
        };
        Ok(Self {
            slots: [slot(101), slot(102), slot(103)],
            fired: AtomicU64::new(0),
        })
    }

    fn slot(&self, p: SimProvider) -> std::sync::MutexGuard<'_, Slot> {
        lock(&self.slots[slot_of(p)])
    }

    /// Sets the rate-based profile of one provider.
    pub(crate) fn set_profile(
        &self,
        p: SimProvider,
        profile: FaultProfile,
    ) -> Result<(), SimError> {
        profile.validate()?;
        self.slot(p).profile = profile;
        Ok(())
    }

    /// Queues a next-N rule.
    pub(crate) fn push_rule(&self, p: SimProvider, rule: FailNext) -> Result<(), SimError> {
        if rule.count == 0 {
            return Err(SimError::Invalid("count must be at least 1".into()));
        }
        if let FaultAction::Status { status } | FaultAction::Body { status, .. } = rule.action {
            if StatusCode::from_u16(status).is_err() {
                return Err(SimError::Invalid(format!("{status} is not an HTTP status")));
            }
        }
        self.slot(p).rules.push(rule);
        Ok(())
    }

    /// Drops the profile and queued rules of one provider.
    pub(crate) fn clear(&self, p: SimProvider) {
        let mut s = self.slot(p);
        s.profile = FaultProfile::default();
        s.rules.clear();
    }

    /// How many requests a fault has answered so far.
    pub(crate) fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    /// The profile and queued rules of one provider.
    pub(crate) fn snapshot(&self, p: SimProvider) -> (FaultProfile, Vec<FailNext>) {
        let s = self.slot(p);
        (s.profile.clone(), s.rules.clone())
    }

    fn decide(&self, p: SimProvider, path: &str) -> (Duration, Option<FaultAction>) {
        let mut guard = self.slot(p);
        let s = &mut *guard;
        let mut latency = s.profile.latency_ms;
        if s.profile.latency_jitter_ms > 0 {
            let jitter = s.profile.latency_jitter_ms;
            latency += s.rng.gen_range(0..=jitter);
        }
        let matching = s.rules.iter().position(|r| {
            r.path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
        });
        let action = if let Some(i) = matching {
            let rule = &mut s.rules[i];
            rule.count -= 1;
            let action = rule.action.clone();
            if rule.count == 0 {
                s.rules.remove(i);
            }
            Some(action)
        } else if s.profile.error_rate > 0.0 && s.rng.gen_bool(s.profile.error_rate) {
            let status = if s.rng.gen_bool(0.5) { 500 } else { 503 };
            Some(FaultAction::Status { status })
        } else {
            None
        };
        (Duration::from_millis(latency), action)
    }

    /// Applies the Spark duplicate and out-of-order rates to a live answer.
    pub(crate) fn spark_disorder<T: Clone>(
        &self,
        ops: &mut Vec<T>,
        has_messages: impl Fn(&T) -> bool,
    ) {
        let mut guard = self.slot(SimProvider::Spark);
        let s = &mut *guard;
        let dup = s.profile.spark_duplicate_rate;
        if dup > 0.0 && s.rng.gen_bool(dup) {
            let copies: Vec<T> = ops.iter().filter(|o| has_messages(o)).cloned().collect();
            ops.extend(copies);
        }
        let ooo = s.profile.spark_out_of_order_rate;
        if ooo > 0.0 && s.rng.gen_bool(ooo) {
            ops.reverse();
        }
    }
}

/// Middleware in front of one provider's routes.
pub(crate) async fn layer(
    State((shared, provider)): State<(Arc<Shared>, SimProvider)>,
    req: Request,
    next: Next,
) -> Response {
    let (latency, action) = shared.faults.decide(provider, req.uri().path());
    if !latency.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(latency) => {}
            _ = shared.shutdown.cancelled() => {}
        }
    }
    let Some(action) = action else {
        return next.run(req).await;
    };
    shared.faults.fired.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%provider, path = req.uri().path(), ?action, "fault injected");
    match action {
        FaultAction::Delay { ms } => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = shared.shutdown.cancelled() => {}
            }
            next.run(req).await
        }
        FaultAction::Hang => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = shared.shutdown.cancelled() => {}
            }
            error_response(provider, StatusCode::SERVICE_UNAVAILABLE)
        }
        FaultAction::Status { status } => error_response(
            provider,
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        ),
        FaultAction::Malformed => {
            let body: &[u8] = match provider {
                SimProvider::Ccmessaging => br#"{"messageList": [{"id": "17054570004880564102"#,
                SimProvider::Kchat => br#"{"chats": [{"id": 290, "type": "chat", "sta"#,
                _ => br#"{"Operation": [{"Type": 0, "SessionId": "#,
            };
            raw_json(StatusCode::OK, body.to_vec())
        }
        FaultAction::BusinessError => match provider {
            SimProvider::Ccmessaging => json(
                StatusCode::OK,
                &json!({"resultCode": "1", "resultDesc": "simulated business failure", "messageList": []}),
            ),
            SimProvider::Kchat => json(
                StatusCode::BAD_REQUEST,
                &json!({"error": 40000, "message": "simulated business failure"}),
            ),
            _ => json(
                StatusCode::OK,
                &json!({"Code": 9999, "Message": "simulated business failure"}),
            ),
        },
        FaultAction::Body { status, body } => json(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &body,
        ),
    }
}

/// A Kchat 429 asks to wait this many seconds, as its real limiter does at
/// the least.
const KCHAT_RETRY_AFTER_SECS: u64 = 1;

/// A failure in `provider`'s own error format. A Kchat 429 carries
/// `Retry-After`, as Kchat's always does.
pub(crate) fn error_response(provider: SimProvider, status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("error");
    let msg = format!("simulated failure: {reason}");
    match provider {
        SimProvider::Ccmessaging => json(
            status,
            &json!({"errorCode": status.as_u16().to_string(), "exceptionInfo": msg}),
        ),
        SimProvider::Kchat => {
            let mut resp = json(
                status,
                &json!({"error": u32::from(status.as_u16()) * 100, "message": msg}),
            );
            if status == StatusCode::TOO_MANY_REQUESTS {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(KCHAT_RETRY_AFTER_SECS),
                );
            }
            resp
        }
        _ => json(status, &json!({"Code": status.as_u16(), "Message": msg})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kchat_429s_announce_a_wait() {
        let wait = |p, s| {
            error_response(p, s)
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes().to_vec())
        };
        let too_many = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(wait(SimProvider::Kchat, too_many), Some(b"1".to_vec()));
        assert_eq!(
            wait(SimProvider::Kchat, StatusCode::SERVICE_UNAVAILABLE),
            None
        );
        assert_eq!(wait(SimProvider::Spark, too_many), None);
        assert_eq!(wait(SimProvider::Ccmessaging, too_many), None);
    }
}
