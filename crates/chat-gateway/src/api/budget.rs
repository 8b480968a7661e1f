//! A request's time budget, shared by everything the request waits on.
//!
//! The budget starts when the request arrives (`[server]
//! request_timeout_secs`). Work inside it — reading the body, calling a
//! provider — gets what is left minus [`MARGIN`], so that work times out
//! first and answers with its own status (408 `request_timeout`, 504
//! `provider_timeout`) instead of the server's generic 503.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::time::Instant;

/// Kept back from the budget for answering after an inner timeout: enough
/// to build and write an error response, small enough not to matter.
pub const MARGIN: Duration = Duration::from_millis(250);

/// When the current request's budget runs out. Inserted as a request
/// extension by the API's outer layer; as an extractor it falls back to
/// the default budget when missing (routers served without that layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// A budget of `budget` starting now.
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    /// Time left for inner work: until the deadline less [`MARGIN`], never
    /// negative.
    pub fn left(&self) -> Duration {
        self.0
            .checked_duration_since(Instant::now())
            .unwrap_or_default()
            .saturating_sub(MARGIN)
    }

    /// The time a provider call made now may take: the account's own limit
    /// (`request_timeout_secs`) or what is left of the request, whichever
    /// is shorter.
    pub fn provider_budget(&self, account_limit: Duration) -> Duration {
        account_limit.min(self.left())
    }

    /// The instant inner work must be done by.
    pub fn inner_deadline(&self) -> Instant {
        self.0.checked_sub(MARGIN).unwrap_or(self.0)
    }

    /// The request's deadline from its extensions, or a default budget from now.
    pub fn of(parts: &axum::http::Extensions) -> Self {
        parts
            .get::<Deadline>()
            .copied()
            .unwrap_or_else(|| Deadline::after(DEFAULT_BUDGET))
    }
}

/// The budget assumed when no layer set one (CONFIG.md's default).
const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

impl<S: Send + Sync> FromRequestParts<S> for Deadline {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Deadline::of(&parts.extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_budget_is_the_shorter_of_account_and_request() {
        let d = Deadline::after(Duration::from_secs(5));
        let b = d.provider_budget(Duration::from_secs(10));
        assert!(b <= Duration::from_secs(5) - MARGIN, "{b:?}");
        assert!(b > Duration::from_secs(4), "{b:?}");
        assert_eq!(
            d.provider_budget(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        let spent = Deadline(Instant::now());
        assert_eq!(spent.left(), Duration::ZERO);
        assert_eq!(
            spent.provider_budget(Duration::from_secs(10)),
            Duration::ZERO
        );
    }
}
