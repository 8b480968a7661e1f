//! When to try a failed delivery again.
//!
//! The delays come from `[webhooks] retry_schedule_secs` (by default 5 s,
//! 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h): attempt `n` failing
//! schedules attempt `n + 1` after the `n`-th delay, so an event gets one
//! first attempt plus one retry per entry. Each delay is stretched by a
//! random 0–20 % (never shortened, so a receiver is not called back before
//! the schedule says) to spread endpoints that failed together. A
//! `Retry-After` from the endpoint is honoured when it asks for longer,
//! up to [`MAX_RETRY_AFTER`].

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` honoured; longer requests wait this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The delay before the attempt after failed attempt `attempt` (1-based);
/// `None` when the schedule is spent.
pub fn next_delay(
    schedule_secs: &[u64],
    attempt: i64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
    let base = Duration::from_secs(*schedule_secs.get(index)?);
    let stretch = rand::thread_rng().gen_range(0.0..=0.2);
    let jittered = base + base.mul_f64(stretch);
    Some(jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)))
}

/// Reads a `Retry-After` header given in seconds (the form endpoints use
/// for rate limits); an HTTP date or junk is ignored.
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_with_upward_jitter_then_stops() {
        let schedule = [5, 300, 1800];
        for _ in 0..50 {
            let d = next_delay(&schedule, 2, None).unwrap();
            assert!(d >= Duration::from_secs(300) && d <= Duration::from_secs(360));
        }
        assert!(next_delay(&schedule, 3, None).unwrap() >= Duration::from_secs(1800));
        assert_eq!(next_delay(&schedule, 4, None), None);
        assert_eq!(next_delay(&schedule, 0, None), None);
        assert_eq!(next_delay(&[], 1, None), None);
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_capped() {
        assert_eq!(
            next_delay(&[1], 1, Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        assert!(
            next_delay(&[60], 1, Some(Duration::from_secs(2))).unwrap() >= Duration::from_secs(60)
        );
        assert_eq!(
            next_delay(&[1], 1, Some(Duration::from_secs(10 * 24 * 3600))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}
