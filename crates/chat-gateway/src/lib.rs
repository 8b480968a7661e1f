//! chat-gateway: one normalised REST API over several customer-service chat
//! providers.
//!
//! `main.rs` only parses the command line; everything else is here so tests
//! can boot the real thing: [`api::app`] builds the router from an
//! [`api::AppState`], and [`server::run`] serves it with the background work
//! on any listener, stopping on a cancellation token.

pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod feed;
pub mod idempotency;
pub mod ids;
pub mod metrics;
pub mod outbox;
pub mod providers;
pub mod server;
pub mod store;
pub mod sync;
pub mod webhooks;
