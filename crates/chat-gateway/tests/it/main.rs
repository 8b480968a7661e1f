//! The gateway's integration tests: one binary, every test on both backends
//! where storage is involved.
#![allow(clippy::unwrap_used, missing_docs)]

mod fixtures;
mod support;

mod actions;
mod actions_sim;
mod api_read;
mod console;
mod customers;
mod demo;
mod event_changes;
mod events_feed;
mod faults_db_outage;
mod http_conventions;
mod http_hygiene;
mod malformed_input;
mod media;
mod operator_output;
mod send_attempts;
mod shutdown;
mod stats;
mod store_suite;
mod sync_live;
mod sync_poll;
mod time_budgets;
mod webhook_manage;
mod webhooks;
