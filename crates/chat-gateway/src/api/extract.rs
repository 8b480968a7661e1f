//! Extractors that answer bad input in the API's own error format.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::body::{declares_json, json_value, nul_refused, read_body};
use super::error::ApiError;
use crate::store::Order;

/// `?query` into `T` (which should `deny_unknown_fields`); failures are 400
/// `invalid_request` naming the parameter.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if url::form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(nul_refused("query"));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(
                ApiError::invalid_request(format!("Bad query string: {}", e.body_text())),
            ),
            Err(e) => Err(ApiError::invalid_request(e.body_text())),
        }
    }
}

/// Path parameters into `T`; undecodable segments are 400 `invalid_request`
/// in the API's format (not the framework's plain text).
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => {
                if parts.uri.path().contains("%00") {
                    return Err(nul_refused("path"));
                }
                Ok(ApiPath(p.0))
            }
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::invalid_request(
                format!("Bad path: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::invalid_request(e.body_text())),
        }
    }
}

/// A JSON body into `T`; malformed JSON, unknown fields and wrong types are
/// 400 `invalid_request`, an oversized body 413 `payload_too_large`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = declares_json(req.headers());
        if !json_type {
            return Err(ApiError::invalid_request(
                "Send the body as JSON with `Content-Type: application/json`.",
            ));
        }
        let json = json_value(&read_body(req, state).await?)?;
        serde_json::from_value(json)
            .map(ApiJson)
            .map_err(|e| ApiError::invalid_request(format!("Bad JSON body: {e}")))
    }
}

/// Validates `limit` (1..=`max`, default `default`).
pub fn parse_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_request(format!("`limit` must be an integer from 1 to {max}."))
            }),
    }
}

/// Parses an RFC 3339 timestamp parameter (any offset).
pub fn parse_time(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid_request(format!(
                    "`{name}` must be an RFC 3339 timestamp such as 2026-11-21T08:04:12Z."
                ))
            })
    })
    .transpose()
}

/// Parses `order`.
pub fn parse_order(raw: Option<&str>, default: Order) -> Result<Order, ApiError> {
    match raw {
        None => Ok(default),
        Some("asc") => Ok(Order::Asc),
        Some("desc") => Ok(Order::Desc),
        Some(_) => Err(ApiError::invalid_request(
            "`order` must be `asc` or `desc`.",
        )),
    }
}

/// Parses `include`; only `raw` exists.
pub fn parse_include(raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None => Ok(false),
        Some(s) => {
            let mut raw_wanted = false;
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if part == "raw" {
                    raw_wanted = true;
                } else {
                    return Err(ApiError::invalid_request(format!(
                        "`include` accepts only `raw`, not `{part}`."
                    )));
                }
            }
            Ok(raw_wanted)
        }
    }
}

/// Parses an enum-valued parameter through its serde names.
pub fn parse_enum<T: DeserializeOwned>(
    name: &str,
    raw: Option<&str>,
    allowed: &str,
) -> Result<Option<T>, ApiError> {
    raw.map(|s| {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| ApiError::invalid_request(format!("`{name}` must be one of {allowed}.")))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_the_range_are_refused() {
        assert_eq!(parse_limit(None, 50, 500).unwrap(), 50);
        assert_eq!(parse_limit(Some("500"), 50, 500).unwrap(), 500);
        for bad in ["0", "501", "-1", "ten", "", "1.5"] {
            assert_eq!(
                parse_limit(Some(bad), 50, 500).unwrap_err().code,
                "invalid_request"
            );
        }
    }

    #[test]
    fn times_accept_any_offset_and_refuse_the_rest() {
        let t = parse_time("x", Some("2026-11-21T16:04:12+08:00"))
            .unwrap()
            .unwrap();
        assert_eq!(chat_core::time::to_rfc3339(t), "2026-11-21T08:04:12.000Z");
        assert!(parse_time("x", Some("2026-11-21")).is_err());
        assert!(parse_time("x", Some("yesterday")).is_err());
    }

    #[test]
    fn include_knows_only_raw() {
        assert!(parse_include(Some("raw")).unwrap());
        assert!(!parse_include(None).unwrap());
        assert!(parse_include(Some("raw,secrets")).is_err());
    }
}
