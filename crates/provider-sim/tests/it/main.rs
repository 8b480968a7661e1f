//! Integration tests: each starts a simulator on 127.0.0.1:0 and talks to it
//! over real HTTP.
#![allow(clippy::unwrap_used, missing_docs)]

mod ccmessaging;
mod control;
mod faults;
mod kchat;
mod script;
mod spark;

use std::time::Duration;

use provider_sim::{start, SimOptions, SimProvider, SimServer};
use serde_json::Value;

/// Options with short hold times, for fast tests.
pub fn fast() -> SimOptions {
    SimOptions {
        spark_hold: Duration::from_millis(800),
        seed: Some(42),
        ..SimOptions::default()
    }
}

pub async fn sim(provider: SimProvider, opts: SimOptions) -> SimServer {
    start(provider, "127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Status and JSON body of a response.
pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
