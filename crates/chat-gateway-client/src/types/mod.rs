//! The API's objects as they travel on the wire (API.md "Objects").
//!
//! These types follow the contract, not the gateway's internals: fields the
//! API may add later are ignored when reading, and every closed vocabulary
//! (provider, status, kind, …) keeps an `Other` variant so a gateway newer
//! than this client never breaks decoding.

mod account;
mod common;
mod customer;
mod event;
mod message;
mod session;
mod stats;
mod webhook;

pub use account::{
    Account, Backfill, BackfillRequest, BackfillState, Capability, SyncError, SyncState, SyncStatus,
};
pub use common::{Participant, Provider};
pub use customer::{Customer, ErasedCustomer};
pub use event::{Event, EventType};
pub use message::{
    Card, Delivery, DeliveryStatus, Direction, Media, MediaRef, Message, MessageKind, NewMessage,
    Outreach, Role, Sender,
};
pub use session::{Session, SessionStatus, StartedBy, Transfer};
pub use stats::{Durations, StatsRow};
pub use webhook::{
    DeliveryAttempt, DeliveryAttemptStatus, DisabledReason, NewWebhook, Recovered, Webhook,
    WebhookPatch, WebhookWithSecret,
};

/// Declares a string vocabulary of the API as an enum with an `Other`
/// fallback, serialised as its snake_case wire name.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this client does not know yet (from a newer gateway), kept as sent.
            Other(String),
        }

        impl $name {
            /// The wire name, as the API writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Other(s) => s.as_str(),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $wire => $name::$variant, )*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok($name::from(s.as_ref()))
            }
        }
    };
}
pub(crate) use wire_enum;
