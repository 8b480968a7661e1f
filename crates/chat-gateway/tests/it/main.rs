//! The gateway's integration tests: one binary, every test on both backends
//! where storage is involved.
#![allow(clippy::unwrap_used, missing_docs)]

mod fixtures;
mod support;

mod actions;
mod actions_sim;
mod api_read;
mod customers;
mod events_feed;
mod malformed_input;
mod stats;
mod store_suite;
mod sync_live;
mod sync_poll;
mod webhook_manage;
mod webhooks;
