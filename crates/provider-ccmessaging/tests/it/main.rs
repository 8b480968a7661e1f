//! Integration tests of the ccmessaging adapter over real HTTP (wiremock).
#![allow(clippy::unwrap_used, missing_docs)]

mod http;
mod mapping;
mod support;
mod tokens;
