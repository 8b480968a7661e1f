//! The provider-neutral chat model shared by every crate of the gateway.
//!
//! Adapters turn a provider's wire format into [`ProviderSession`] and
//! [`ProviderMessage`] values; the gateway stores them and serves them back as
//! [`Session`] and [`Message`]. Nothing here knows about HTTP servers, SQL or
//! any one provider, so a fourth provider is one new crate implementing
//! [`Provider`].

pub mod capability;
pub mod error;
pub mod event;
pub mod links;
pub mod model;
pub mod provider;
pub mod secret;
pub mod settings;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod wire;

pub use capability::{Capabilities, Capability};
pub use error::{ProviderError, ProviderErrorKind};
pub use event::{Event, EventType};
pub use model::*;
pub use provider::*;
pub use secret::Secret;
