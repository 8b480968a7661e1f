//! chat-gateway: one normalised REST API over several chat providers.

pub mod ids;
pub mod store;
