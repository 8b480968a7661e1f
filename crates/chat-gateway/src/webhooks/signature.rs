//! Standard Webhooks signing: the `whsec_` secret and the `v1,` signature.
//!
//! The secret is `whsec_` + base64 of 32 random bytes; the signing key is
//! the decoded bytes. A delivery is signed as
//! `base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"))`
//! and sent as `webhook-signature: v1,<signature>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Prefix of every webhook secret, as Standard Webhooks libraries expect.
pub const SECRET_PREFIX: &str = "whsec_";

/// A webhook's signing secret. `Debug` hides it, so it cannot reach a log
/// through a derived `Debug` of a struct holding it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// A stored secret that is not `whsec_` + base64 (a hand-edited row).
#[derive(Debug, thiserror::Error)]
#[error("the webhook secret is not `whsec_` followed by base64")]
pub struct MalformedSecret;

impl WebhookSecret {
    /// A new secret from 32 bytes of the operating system's randomness.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        WebhookSecret(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// Wraps a stored secret.
    pub fn from_stored(text: String) -> Self {
        WebhookSecret(text)
    }

    /// The `whsec_…` text: stored, and shown once in the creation answer.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The signing key: the decoded bytes after the prefix.
    pub fn key(&self) -> Result<Vec<u8>, MalformedSecret> {
        let encoded = self.0.strip_prefix(SECRET_PREFIX).ok_or(MalformedSecret)?;
        STANDARD.decode(encoded).map_err(|_| MalformedSecret)
    }
}

/// The `webhook-signature` value for one delivery attempt.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        let secret = WebhookSecret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let sig = sign(
            &secret.key().unwrap(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_hold_32_bytes_and_never_print() {
        let s = WebhookSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.key().unwrap().len(), 32);
        assert_ne!(s, WebhookSecret::generate());
        assert!(!format!("{s:?}").contains(s.expose()));
        assert!(WebhookSecret::from_stored("nope".into()).key().is_err());
    }
}
