//! Checking that a webhook delivery comes from the gateway (Standard Webhooks).
//!
//! The gateway signs `"{webhook-id}.{webhook-timestamp}.{body}"` with
//! HMAC-SHA256 under the endpoint's secret and sends
//! `webhook-signature: v1,<base64>`, several space-separated during a
//! secret rotation. A delivery is genuine when any `v1` signature matches
//! and its timestamp is within five minutes of now (a replay older than
//! that is refused).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use sha2::Sha256;

/// How far a delivery's timestamp may be from now, either way.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The secret is not `whsec_` + base64.
    #[error("the webhook secret is not `whsec_` followed by base64")]
    BadSecret,
    /// A required header is absent or not text.
    #[error("the delivery has no readable `{0}` header")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a number of seconds.
    #[error("`webhook-timestamp` is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is more than five minutes from now.
    #[error("the delivery's timestamp is {0} s away from now (more than 300)")]
    TimestampOutOfTolerance(i64),
    /// No `v1` signature matches.
    #[error("no signature matches")]
    NoMatchingSignature,
}

/// Checks a delivery's `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` headers against the raw body, as received (before
/// any JSON parsing: re-serialising would change the bytes).
///
/// ```
/// # use chat_gateway_client::{verify_webhook, WebhookError};
/// let headers = reqwest::header::HeaderMap::new();
/// let err = verify_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &headers, b"{}");
/// assert_eq!(err, Err(WebhookError::MissingHeader("webhook-id")));
/// ```
pub fn verify_webhook(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
    verify_webhook_at(secret, headers, body, Utc::now())
}

/// [`verify_webhook`] with the time to judge the timestamp against.
pub fn verify_webhook_at(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| WebhookError::BadSecret)?;
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::MissingHeader(name))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadTimestamp)?;
    let skew = now.timestamp().saturating_sub(ts);
    if skew.abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(WebhookError::TimestampOutOfTolerance(skew));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| WebhookError::BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched = signatures
        .split_whitespace()
        .filter_map(|sig| sig.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        // `verify_slice` compares in constant time.
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if matched {
        Ok(())
    } else {
        Err(WebhookError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // The Standard Webhooks reference vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(sig: &str, ts: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", ID.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    fn at(ts: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(ts, 0).unwrap()
    }

    #[test]
    fn the_reference_vector_verifies() {
        assert_eq!(
            verify_webhook_at(SECRET, &headers(SIG, TS), BODY, at(TS)),
            Ok(())
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let both = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {SIG}");
        assert_eq!(
            verify_webhook_at(SECRET, &headers(&both, TS), BODY, at(TS)),
            Ok(())
        );
        let other_versions = format!("v2,xyz {SIG}");
        assert_eq!(
            verify_webhook_at(SECRET, &headers(&other_versions, TS), BODY, at(TS)),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_id_or_secret_fails() {
        assert_eq!(
            verify_webhook_at(
                SECRET,
                &headers(SIG, TS),
                br#"{"test": 2432232315}"#,
                at(TS)
            ),
            Err(WebhookError::NoMatchingSignature)
        );
        let mut h = headers(SIG, TS);
        h.insert("webhook-id", "msg_other".parse().unwrap());
        assert_eq!(
            verify_webhook_at(SECRET, &h, BODY, at(TS)),
            Err(WebhookError::NoMatchingSignature)
        );
        assert_eq!(
            verify_webhook_at(
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                &headers(SIG, TS),
                BODY,
                at(TS)
            ),
            Err(WebhookError::NoMatchingSignature)
        );
        assert_eq!(
            verify_webhook_at("whsec_%%%", &headers(SIG, TS), BODY, at(TS)),
            Err(WebhookError::BadSecret)
        );
    }

    #[test]
    fn the_timestamp_must_be_within_five_minutes() {
        let h = headers(SIG, TS);
        assert_eq!(verify_webhook_at(SECRET, &h, BODY, at(TS + 300)), Ok(()));
        assert_eq!(verify_webhook_at(SECRET, &h, BODY, at(TS - 300)), Ok(()));
        assert_eq!(
            verify_webhook_at(SECRET, &h, BODY, at(TS + 301)),
            Err(WebhookError::TimestampOutOfTolerance(301))
        );
        assert_eq!(
            verify_webhook_at(SECRET, &h, BODY, at(TS - 301)),
            Err(WebhookError::TimestampOutOfTolerance(-301))
        );
        assert!(matches!(
            verify_webhook(SECRET, &headers(SIG, TS), BODY),
            Err(WebhookError::TimestampOutOfTolerance(_))
        ));
    }

    #[test]
    fn missing_or_malformed_headers_are_named() {
        let mut h = headers(SIG, TS);
        h.remove("webhook-signature");
        assert_eq!(
            verify_webhook_at(SECRET, &h, BODY, at(TS)),
            Err(WebhookError::MissingHeader("webhook-signature"))
        );
        let mut h = headers(SIG, TS);
        h.insert("webhook-timestamp", "yesterday".parse().unwrap());
        assert_eq!(
            verify_webhook_at(SECRET, &h, BODY, at(TS)),
            Err(WebhookError::BadTimestamp)
        );
    }
}
