//! What an account's provider can do, asked before every action.

use serde::{Deserialize, Serialize};

/// One thing a provider may support; the API lists them per account and
/// answers 422 `unsupported_operation` for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Messages arrive in real time (long poll).
    Live,
    /// Past messages can be fetched.
    History,
    /// Sessions can be listed with summaries.
    ListSessions,
    /// Messages can be sent into an open session.
    Send,
    /// A session can be started with a customer.
    Outreach,
    /// A session can be ended.
    Close,
    /// A closed session can be reopened.
    Restart,
    /// A session can be handed to another agent.
    Transfer,
}

impl Capability {
    /// Every capability, in the order the API lists them.
    pub const ALL: [Capability; 8] = [
        Capability::Live,
        Capability::History,
        Capability::ListSessions,
        Capability::Send,
        Capability::Outreach,
        Capability::Close,
        Capability::Restart,
        Capability::Transfer,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Live => "live",
            Capability::History => "history",
            Capability::ListSessions => "list_sessions",
            Capability::Send => "send",
            Capability::Outreach => "outreach",
            Capability::Close => "close",
            Capability::Restart => "restart",
            Capability::Transfer => "transfer",
        }
    }
}

/// A set of capabilities, small enough to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u16);

impl Capabilities {
    /// A set holding exactly `caps`.
    pub fn of(caps: &[Capability]) -> Self {
        Capabilities(caps.iter().fold(0, |acc, c| acc | (1 << *c as u16)))
    }

    /// Whether `cap` is in the set.
    pub fn has(self, cap: Capability) -> bool {
        self.0 & (1 << cap as u16) != 0
    }

    /// The members, in [`Capability::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL.into_iter().filter(move |c| self.has(*c))
    }
}

impl Serialize for Capabilities {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_holds_exactly_what_was_put_in() {
        let caps = Capabilities::of(&[Capability::Live, Capability::Transfer]);
        assert!(caps.has(Capability::Live));
        assert!(caps.has(Capability::Transfer));
        assert!(!caps.has(Capability::Send));
        assert_eq!(
            serde_json::to_value(caps).unwrap(),
            serde_json::json!(["live", "transfer"])
        );
    }
}
