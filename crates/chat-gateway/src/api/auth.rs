//! Bearer API keys: who is calling, what they may do, which accounts they see.
//!
//! Checked in a middleware before any handler runs, so a key without the
//! needed scope gets 403 whatever its body holds (the body is never read).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;
use crate::config::ApiKey;
use crate::store::AccountScope;

/// A permission an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// GET anything.
    Read,
    /// Actions and sends.
    Write,
    /// Accounts, sync and webhooks.
    Admin,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// The scope a method on a path needs.
    pub fn required(method: &Method, path: &str) -> Scope {
        if method == Method::GET || method == Method::HEAD {
            if path.starts_with("/v1/webhooks") {
                Scope::Admin
            } else {
                Scope::Read
            }
        } else if path.starts_with("/v1/accounts")
            || path.starts_with("/v1/webhooks")
            || path.starts_with("/v1/customers")
        {
            Scope::Admin
        } else {
            Scope::Write
        }
    }
}

/// The authenticated caller, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Key name; `None` when the gateway runs without keys (loopback only).
    pub key_name: Option<String>,
    /// Accounts visible to this caller.
    pub scope: AccountScope,
    /// Index of the key, for per-key rate limiting.
    pub key_index: Option<usize>,
}

/// The configured keys, indexed by their hash.
#[derive(Debug, Default)]
pub struct Auth {
    keys: Vec<ApiKey>,
    by_hash: HashMap<[u8; 32], usize>,
}

impl Auth {
    /// Indexes `keys`; with none, every request is let through (the server
    /// refuses to start on a non-loopback address in that case).
    pub fn new(keys: Vec<ApiKey>) -> Self {
        let by_hash = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.sha256, i))
            .collect();
        Auth { keys, by_hash }
    }

    /// Whether any key is configured.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The configured keys.
    pub fn keys(&self) -> &[ApiKey] {
        &self.keys
    }

    /// Identifies the caller from an `Authorization` header value and checks
    /// it holds `needed`.
    pub fn check(&self, authorization: Option<&str>, needed: Scope) -> Result<Caller, ApiError> {
        let caller = self.identify(authorization)?;
        self.authorize(&caller, needed)?;
        Ok(caller)
    }

    /// Identifies the caller from an `Authorization` header value (401 when
    /// missing or unknown), without looking at what it asks for.
    pub fn identify(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        if !self.enabled() {
            return Ok(Caller {
                key_name: None,
                scope: AccountScope::All,
                key_index: None,
            });
        }
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("Send an API key as `Authorization: Bearer <key>`.")
            })?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let index = *self
            .by_hash
            .get(&hash)
            .ok_or_else(|| ApiError::unauthorized("This API key is not known."))?;
        let key = self
            .keys
            .get(index)
            .ok_or_else(|| ApiError::unauthorized("This API key is not known."))?;
        Ok(Caller {
            key_name: Some(key.name.clone()),
            scope: match &key.accounts {
                None => AccountScope::All,
                Some(names) => AccountScope::Only(names.clone()),
            },
            key_index: Some(index),
        })
    }

    /// 403 unless the identified caller's key holds `needed`.
    pub fn authorize(&self, caller: &Caller, needed: Scope) -> Result<(), ApiError> {
        let Some(key) = caller.key_index.and_then(|i| self.keys.get(i)) else {
            return Ok(());
        };
        if !key.scopes.iter().any(|s| s == needed.as_str()) {
            return Err(ApiError::forbidden(format!(
                "This API key lacks the `{}` scope.",
                needed.as_str()
            )));
        }
        Ok(())
    }
}

/// A new random API key and its hex SHA-256, for `key generate`.
pub fn generate_key() -> (String, String) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = format!("cgk_{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    (key, hash)
}

/// Middleware: authenticate, rate-limit, authorise, refuse a declared body
/// over the limit, then run the handler. A key with a `rate_limit` gets its
/// `RateLimit-*` headers on whatever the answer is, 429 included.
pub async fn require_key(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let needed = Scope::required(req.method(), req.uri().path());
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = match state.auth.identify(header) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let quota = match caller.key_index.map(|i| state.limiter.check(i)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(q))) => Some(q),
        Some(Err(refused)) => return (*refused).into_response(),
    };
    let mut resp = match state.auth.authorize(&caller, needed) {
        Err(e) => e.into_response(),
        // Decided from the header alone: none of the body is read, and no
        // `100 Continue` is sent to a client that asked for one.
        Ok(()) if super::body::declared_too_large(req.headers()) => {
            super::body::refuse_declared_body(req).into_response()
        }
        Ok(()) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
    };
    if let Some(q) = quota {
        q.apply(resp.headers_mut());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> (Auth, String) {
        let (key, hash) = generate_key();
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&hex::decode(hash).unwrap());
        let a = Auth::new(vec![ApiKey {
            name: "reader".into(),
            sha256: sha,
            scopes: vec!["read".into()],
            accounts: Some(vec!["kf5".into()]),
            rate_limit: None,
        }]);
        (a, key)
    }

    #[test]
    fn keys_are_checked_by_hash_and_scope() {
        let (a, key) = auth();
        let ok = a
            .check(Some(&format!("Bearer {key}")), Scope::Read)
            .unwrap();
        assert_eq!(ok.key_name.as_deref(), Some("reader"));
        assert_eq!(ok.scope, AccountScope::Only(vec!["kf5".into()]));
        assert_eq!(
            a.check(Some(&format!("Bearer {key}")), Scope::Write)
                .unwrap_err()
                .code,
            "forbidden"
        );
        assert_eq!(a.check(None, Scope::Read).unwrap_err().code, "unauthorized");
        assert_eq!(
            a.check(Some("Bearer nope"), Scope::Read).unwrap_err().code,
            "unauthorized"
        );
        assert_eq!(
            a.check(Some(&format!("Basic {key}")), Scope::Read)
                .unwrap_err()
                .code,
            "unauthorized"
        );
        assert_eq!(
            a.check(Some("Bearer "), Scope::Read).unwrap_err().code,
            "unauthorized"
        );
    }

    #[test]
    fn scopes_follow_method_and_resource() {
        assert_eq!(Scope::required(&Method::GET, "/v1/sessions"), Scope::Read);
        assert_eq!(
            Scope::required(&Method::POST, "/v1/sessions/x/close"),
            Scope::Write
        );
        assert_eq!(Scope::required(&Method::POST, "/v1/messages"), Scope::Write);
        assert_eq!(
            Scope::required(&Method::POST, "/v1/accounts/a/sync"),
            Scope::Admin
        );
        assert_eq!(Scope::required(&Method::GET, "/v1/webhooks"), Scope::Admin);
        assert_eq!(
            Scope::required(&Method::DELETE, "/v1/customers/a/C1"),
            Scope::Admin
        );
        assert_eq!(Scope::required(&Method::GET, "/v1/customers"), Scope::Read);
        assert_eq!(Scope::required(&Method::GET, "/v1/stats"), Scope::Read);
        assert_eq!(
            Scope::required(&Method::DELETE, "/v1/webhooks/w"),
            Scope::Admin
        );
    }
}
