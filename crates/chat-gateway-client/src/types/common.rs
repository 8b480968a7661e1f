//! Pieces shared by several objects.

use serde::{Deserialize, Serialize};

use super::wire_enum;

wire_enum! {
    /// Which chat provider an account talks to.
    pub enum Provider {
        /// Spark (long-poll live feed).
        Spark = "spark",
        /// Huawei ccmessaging (polled history).
        Ccmessaging = "ccmessaging",
        /// KF5 Kchat (polled chats).
        Kchat = "kchat",
    }
}

/// A person in a session: the customer or the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The provider's id of this person.
    pub external_id: Option<String>,
    /// Display name, when the provider gives one.
    #[serde(default)]
    pub name: Option<String>,
    /// Absolute `http(s)` URL of the avatar, or null.
    #[serde(default)]
    pub avatar_url: Option<String>,
}
