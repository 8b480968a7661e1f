//! A JSON body extractor for action endpoints that also keeps a canonical
//! form of the body, so an `Idempotency-Key` repeat is recognised whatever
//! the key order or spacing of the JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::budget::Deadline;
use super::error::ApiError;
use super::BODY_LIMIT;

/// A JSON body into `T` (which should `deny_unknown_fields`) plus its
/// canonical text. An empty body reads as `{}` (actions without options);
/// malformed JSON, unknown fields, wrong types and NUL characters are 400
/// `invalid_request`, a body over 1 MiB 413 `payload_too_large`.
#[derive(Debug, Clone)]
pub struct JsonBody<T> {
    /// The typed body.
    pub value: T,
    /// The body with object keys sorted and no insignificant whitespace.
    pub canonical: String,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = declares_json(req.headers());
        let bytes = read_body(req, state).await?;
        let empty = bytes.iter().all(u8::is_ascii_whitespace);
        if !empty && !json_type {
            return Err(ApiError::invalid_request(
                "Send the body as JSON with `Content-Type: application/json`.",
            ));
        }
        let raw: &[u8] = if empty { b"{}" } else { &bytes };
        let json = json_value(raw)?;
        let canonical = canonical_json(&json);
        let value = serde_json::from_value(json)
            .map_err(|e| ApiError::invalid_request(format!("Bad JSON body: {e}")))?;
        Ok(JsonBody { value, canonical })
    }
}

/// Whether the request says its body is JSON (`application/json` or an
/// `application/*+json` type), whatever its parameters.
pub fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses a JSON body: malformed JSON and NUL characters are 400
/// `invalid_request`, like everywhere else in the API.
pub fn json_value(bytes: &[u8]) -> Result<Value, ApiError> {
    let json: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_request(format!("Bad JSON body: {e}")))?;
    if has_nul(&json) {
        return Err(nul_refused("body"));
    }
    Ok(json)
}

/// NUL characters cannot be stored (PostgreSQL text refuses them) and are
/// never meaningful in this API.
pub(crate) fn nul_refused(place: &str) -> ApiError {
    ApiError::invalid_request(format!("The {place} contains a NUL character."))
}

/// Whether any string or key in the value holds a NUL character.
pub(crate) fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// 413 for bodies over the 1 MiB limit.
pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "The request body is larger than 1 MiB.",
    )
}

/// Whether the request declares a `Content-Length` over [`BODY_LIMIT`]:
/// such a body is refused from its headers, before any of it is read.
pub fn declared_too_large(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_LENGTH).iter().any(|v| {
        match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => n > BODY_LIMIT as u64,
            None => false,
        }
    })
}

/// How much of a refused body is read and thrown away so the client, still
/// sending it, can read the 413 instead of a connection reset.
const DISCARD_LIMIT_BYTES: usize = 4 * 1024 * 1024;
/// How long a refused body is read and thrown away at most.
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the client waits for `100 Continue` before sending its body.
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// Answers a body refused from its headers without reading it for the
/// handler: a client that asked `Expect: 100-continue` never sends it; one
/// that sends it anyway has up to 4 MiB (5 s) read and dropped in the
/// background, so the early 413 reaches it instead of a reset connection.
pub fn refuse_declared_body(req: Request) -> ApiError {
    if !expects_continue(req.headers()) {
        let body = req.into_body();
        tokio::spawn(async move {
            use futures_util::StreamExt as _;
            let mut data = body.into_data_stream();
            let mut read = 0usize;
            let deadline = tokio::time::sleep(DISCARD_TIME);
            tokio::pin!(deadline);
            while read <= DISCARD_LIMIT_BYTES {
                tokio::select! {
                    chunk = data.next() => match chunk {
                        Some(Ok(bytes)) => read += bytes.len(),
                        _ => break,
                    },
                    _ = &mut deadline => break,
                }
            }
        });
    }
    payload_too_large()
}

/// Reads the whole body within the request's budget: over 1 MiB is 413
/// `payload_too_large`, a body that stops arriving 408 `request_timeout`.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let deadline = Deadline::of(req.extensions());
    if declared_too_large(req.headers()) {
        return Err(refuse_declared_body(req));
    }
    match tokio::time::timeout_at(deadline.inner_deadline(), Bytes::from_request(req, state)).await
    {
        Err(_) => Err(request_timeout()),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(payload_too_large()),
        Ok(Err(e)) => Err(ApiError::invalid_request(format!(
            "Cannot read the body: {}",
            e.body_text()
        ))),
    }
}

/// 408: the body did not arrive within the request's budget.
pub fn request_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "The request body did not arrive in time.",
    )
}

/// `v` as JSON text with every object's keys sorted.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    if let Some(x) = map.get(k) {
                        out.insert(k.clone(), sorted(x));
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_ignores_key_order_and_spacing() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": "你好"}}"#)
                .unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":"你好","y":[1,{"p":3,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        let c: Value =
            serde_json::from_str(r#"{"a":{"x":"你好","y":[{"p":3,"q":2},1]},"b":1}"#).unwrap();
        assert_ne!(canonical_json(&a), canonical_json(&c));
    }
}
