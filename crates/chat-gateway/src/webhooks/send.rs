//! One signed HTTP delivery attempt and how it ended.

use std::time::Duration;

use url::Url;

use super::retry::parse_retry_after;
use super::signature::sign;
use super::target::{self, TargetError};

/// How long an endpoint has to answer one delivery.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an attempt failed, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The endpoint answered outside 2xx.
    HttpStatus,
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
    /// Could not connect (refused, unreachable, DNS, TLS).
    Connect,
    /// The target resolved to a refused address.
    RefusedTarget,
    /// Anything else (the request could not be built or sent).
    Other,
}

impl FailureKind {
    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::HttpStatus => "http_status",
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connect",
            FailureKind::RefusedTarget => "refused_target",
            FailureKind::Other => "other",
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// The endpoint's status, when it answered.
    pub status: Option<u16>,
    /// Why it failed; `None` on success.
    pub failure: Option<(FailureKind, String)>,
    /// The endpoint's `Retry-After`, in seconds form.
    pub retry_after: Option<Duration>,
}

impl AttemptResult {
    /// 2xx.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// 410 Gone: the endpoint asks never to be called again.
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }

    fn failed(kind: FailureKind, message: String) -> Self {
        AttemptResult {
            status: None,
            failure: Some((kind, message)),
            retry_after: None,
        }
    }
}

/// The client every delivery goes through: a request timeout, no redirects
/// (a 3xx is a failure, never a hop to an unchecked address), no proxy from
/// the environment, and the [`target::GuardedResolver`].
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(target::GuardedResolver {
            allow_private,
        }))
        .user_agent(concat!("chat-gateway-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `body` to `url` under `msg_id`, signed with each of `keys`
/// (newest first, space-separated, as Standard Webhooks lists several
/// signatures during a secret rotation).
pub async fn attempt(
    client: &reqwest::Client,
    url: &Url,
    keys: &[Vec<u8>],
    msg_id: &str,
    body: &[u8],
    allow_private: bool,
) -> AttemptResult {
    if let Err(e) = target::check(url, allow_private, false).await {
        let kind = match e {
            TargetError::Forbidden(_) => FailureKind::RefusedTarget,
            _ => FailureKind::Connect,
        };
        return AttemptResult::failed(kind, e.to_string());
    }
    let timestamp = chrono::Utc::now().timestamp();
    let signature = keys
        .iter()
        .map(|key| sign(key, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ");
    let sent = client
        .post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec())
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status();
            let retry_after = parse_retry_after(
                resp.headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
            );
            let failure = (!status.is_success()).then(|| {
                (
                    FailureKind::HttpStatus,
                    format!("the endpoint answered {status}"),
                )
            });
            AttemptResult {
                status: Some(status.as_u16()),
                failure,
                retry_after,
            }
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                FailureKind::Timeout
            } else if refused_target(&e) {
                FailureKind::RefusedTarget
            } else if e.is_connect() {
                FailureKind::Connect
            } else {
                FailureKind::Other
            };
            let message = if kind == FailureKind::Timeout {
                format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
            } else {
                // Without the URL: it may carry credentials.
                error_chain(&e.without_url())
            };
            AttemptResult::failed(kind, message)
        }
    }
}

fn refused_target(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<TargetError>().is_some() {
            return true;
        }
        source = s.source();
    }
    false
}

/// An error and its causes, `: `-separated, without repeats.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refused form is refused again at delivery, before any
    /// connection is made (an address allowed at registration by
    /// `allow_private_targets` and refused once the setting is off).
    #[tokio::test]
    async fn refused_targets_fail_at_delivery_without_a_request() {
        let client = client(false).unwrap();
        for url in [
            "http://169.254.169.254/latest",
            "http://168.63.129.16/",
            "http://0.0.0.0:8080/",
            "http://[::]:8080/",
            "http://[::169.254.169.254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::]/",
            "http://[fd00:ec2::254]/",
        ] {
            let url = Url::parse(url).unwrap();
            let r = attempt(&client, &url, &[vec![1; 32]], "msg_1", b"{}", false).await;
            assert_eq!(r.status, None, "{url}");
            assert_eq!(
                r.failure.as_ref().map(|f| f.0),
                Some(FailureKind::RefusedTarget),
                "{url}"
            );
        }
    }
}
