//! The client against a real `chat-gateway serve` process and provider-sim
//! over HTTP, every test on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

mod events;
mod reads;
mod sends;
mod webhooks;
