//! `/console`: the operator console's page and files, served from the binary
//! without auth, with their content types and a strict CSP; `/` redirects to
//! it. (The pages' behaviour is checked in a real browser by
//! `scripts/console-test`.)

use crate::on_both_backends;
use crate::support::{api_key, Db, TestGateway};
use reqwest::redirect::Policy;
use serde_json::Value;

/// A client that reports redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn console_page_and_files_are_served_with_types_and_csp(db: Db) {
    // Keys configured: the console's files still need none (they hold no
    // data), while the API it calls does.
    let (_key, toml) = api_key("ops", &["read"], &["*"]);
    let gw = TestGateway::start(db, &toml).await;

    let page = gw.http.get(gw.url("/console")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.headers()
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script type=\"module\" src=\"/console/app.js\"></script>"));
    // No inline script or style: the CSP allows only the gateway's own files.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(
        !html.contains("<style") && !html.contains("style="),
        "{html}"
    );
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );

    for (path, ty, needle) in [
        ("/console/app.js", "text/javascript", "/v1/events/stream"),
        ("/console/app.css", "text/css", ".msg.outbound"),
        ("/console/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ty),
            "{path}: {:?}",
            r.headers()["content-type"]
        );
        assert!(
            r.headers().contains_key("content-security-policy"),
            "{path}"
        );
        assert!(r.text().await.unwrap().contains(needle), "{path}");
    }

    // The app is a client of the public API only and never puts a key in a URL.
    let js = gw
        .http
        .get(gw.url("/console/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(js.contains("Authorization"));
    assert!(!js.contains("?key=") && !js.contains("access_token"));
    assert!(
        !js.contains("EventSource("),
        "the stream is read with fetch"
    );

    // The API behind it still wants the key.
    assert_eq!(gw.get("/v1/accounts", None).await.0, 401);
    gw.stop().await;
}

async fn root_redirects_to_the_console(db: Db) {
    let gw = TestGateway::start(db, "").await;
    let http = no_redirects();
    for path in ["/", "/console/"] {
        let r = http.get(gw.url(path)).send().await.unwrap();
        assert!(r.status().is_redirection(), "{path}: {}", r.status());
        assert_eq!(r.headers()["location"], "/console", "{path}");
    }
    // Followed, it lands on the page.
    let r = gw.http.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/console");
    gw.stop().await;
}

async fn unknown_console_files_are_404_with_the_error_envelope(db: Db) {
    let gw = TestGateway::start(db, "").await;
    for path in [
        "/console/nope.js",
        "/console/app.js.map",
        "/console/..%2Fapp.js",
    ] {
        let r = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
        assert_eq!(body["error"]["request_id"], request_id.as_str());
    }
    // The page is read-only: other methods get 405.
    let r = gw.http.post(gw.url("/console")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    gw.stop().await;
}

#[test]
fn openapi_documents_the_console() {
    let doc: Value = serde_json::from_str(chat_gateway::api::docs::OPENAPI_JSON).unwrap();
    assert!(doc["paths"]["/console"]["get"].is_object());
}

on_both_backends!(
    console_page_and_files_are_served_with_types_and_csp,
    root_redirects_to_the_console,
    unknown_console_files_are_404_with_the_error_envelope,
);
