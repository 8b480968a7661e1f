//! Small helpers every simulated provider shares: locks, provider-local
//! times, seeded randomness and JSON answers.

use std::sync::{Mutex, MutexGuard};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// The provider-local wall-clock format Spark and Kchat write.
pub(crate) const LOCAL_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Takes a lock, carrying on past a poisoned one: a panicking handler must
/// not take the whole simulator down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `t` as `yyyy-MM-dd HH:mm:ss` in `tz`.
pub(crate) fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format(LOCAL_FORMAT).to_string()
}

/// The calendar day of `t` in `tz`.
pub(crate) fn local_date(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// A random generator: reproducible from `seed` (each user of randomness
/// passes its own `salt` so they do not share one sequence), else from entropy.
pub(crate) fn rng_from(seed: Option<u64>, salt: u64) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        None => StdRng::from_entropy(),
    }
}

/// `len` random lower-case hex digits.
pub(crate) fn hex_id(rng: &mut StdRng, len: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    (0..len)
        .map(|_| char::from(HEX[rng.gen_range(0..16)]))
        .collect()
}

/// `len` random decimal digits, the first one non-zero.
pub(crate) fn digit_id(rng: &mut StdRng, len: usize) -> String {
    let mut s = String::with_capacity(len);
    for i in 0..len {
        let d = if i == 0 {
            rng.gen_range(1..10)
        } else {
            rng.gen_range(0..10)
        };
        s.push(char::from(b'0' + d));
    }
    s
}

/// A JSON answer with `status`.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => raw_json(status, bytes),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("serialising the answer failed: {e}"),
        )
            .into_response(),
    }
}

/// Bytes sent as they are with a JSON content type (also used for the
/// deliberately malformed answers of the fault injector).
pub(crate) fn raw_json(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    resp
}

/// Reads a JSON request body; an empty body reads as `{}` so clients that
/// send nothing for an all-optional request are served.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, serde_json::Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice(b"{}")
    } else {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn local_time_uses_the_zone() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 16, 30, 0).single();
        let t = t.expect("valid time");
        assert_eq!(local(t, chrono_tz::Asia::Shanghai), "2024-01-02 00:30:00");
        assert_eq!(
            local_date(t, chrono_tz::Asia::Shanghai).to_string(),
            "2024-01-02"
        );
    }

    #[test]
    fn seeded_ids_repeat() {
        let a = hex_id(&mut rng_from(Some(7), 1), 16);
        let b = hex_id(&mut rng_from(Some(7), 1), 16);
        let c = hex_id(&mut rng_from(Some(7), 2), 16);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(digit_id(&mut rng_from(Some(1), 1), 5).len(), 5);
    }
}
