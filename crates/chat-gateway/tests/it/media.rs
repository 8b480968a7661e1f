//! `GET /v1/messages/{id}/media` against the simulators over HTTP:
//! ccmessaging bytes (cached after the first fetch), a 302 where the
//! provider gives a URL, and the 403/404/502/504 paths.

use std::time::Duration;

use crate::on_both_backends;
use crate::support::*;
use chrono::Utc;
use provider_sim::{
    CcmItem, FailNext, FaultAction, KchatNewChat, KchatNewMessage, KchatUploadIn, SimControl,
    SimProvider,
};
use serde_json::Value;

const CUSTOMER: &str = "1659490221026188522";
const PDF: &[u8] = b"%PDF-1.4 a small report";

/// A customer's ccmessaging item of `media_type` with `content`.
fn ccm_item(id: &str, media_type: &str, content: &str, call: &str) -> CcmItem {
    CcmItem {
        user_id: CUSTOMER.into(),
        id: Some(id.into()),
        media_type: Some(media_type.into()),
        content: Some(content.into()),
        call_id: Some(call.into()),
        send_time: Some(Utc::now().timestamp_millis() - 60_000),
        ..CcmItem::default()
    }
}

/// The gateway id of the message whose provider id is `external_id`.
async fn message_id(gw: &TestGateway, key: &str, external_id: &str) -> String {
    first_id(gw, key, &format!("/v1/messages?external_id={external_id}")).await
}

/// The id of the first message `path` lists, once there is one.
async fn first_id(gw: &TestGateway, key: &str, path: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = gw.get(path, Some(key)).await;
        if let Some(id) = body["data"][0]["id"].as_str() {
            return id.to_string();
        }
        if std::time::Instant::now() >= deadline {
            let (_, accounts) = gw.get("/v1/accounts", Some(key)).await;
            panic!("nothing at {path}: {body} {accounts}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Media GET without following redirects: status, headers, body.
async fn media(
    gw: &TestGateway,
    key: &str,
    id: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(gw.url(&format!("/v1/messages/{id}/media")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or("").to_string()
}

fn downloads(control: &SimControl) -> u64 {
    control.ccm_received().unwrap().download
}

fn fail_next_download(control: &SimControl, action: FaultAction) {
    control
        .fail_next(
            SimProvider::Ccmessaging,
            FailNext {
                count: 1,
                path_prefix: Some("/apiaccess/ccmessaging/downloadFileStream".into()),
                action,
            },
        )
        .unwrap();
}

async fn files_are_served_once_fetched_and_redirected_where_the_provider_links(db: Db) {
    let sim = start_sim(sim_options()).await;
    let control = sim.control();
    control
        .ccm_put_file("obj-report", "application/pdf", PDF.to_vec())
        .unwrap();
    control
        .ccm_put_file("obj-broken", "image/png", vec![1, 2, 3])
        .unwrap();
    control
        .ccm_put_file("obj-slow", "image/png", vec![4, 5, 6])
        .unwrap();
    let report = format!("报告 1.pdf,{},obj-report,pdf", PDF.len());
    control
        .ccm_add_items(vec![
            ccm_item("m-file", "FILE", &report, "call-m"),
            ccm_item("m-text", "TEXT", "<p>hello</p>", "call-m"),
            ccm_item("m-unknown", "IMAGE", "obj-nobody-uploaded", "call-m"),
            ccm_item("m-broken", "FILE_IMAGE", "obj-broken,png", "call-m"),
            ccm_item("m-slow", "FILE_IMAGE", "obj-slow,png", "call-m"),
        ])
        .unwrap();
    let chat = control
        .kchat_add_chat(KchatNewChat {
            visitor_id: 901,
            visitor_name: Some("访客".into()),
            created_at: Some(Utc::now() - chrono::Duration::minutes(5)),
            ..Default::default()
        })
        .unwrap();
    control
        .kchat_add_message(
            chat,
            KchatNewMessage {
                kind: Some("chat.upload".into()),
                upload: Some(KchatUploadIn {
                    name: "photo.png".into(),
                    mime: "image/png".into(),
                    size: None,
                    url: Some("https://files.example.com/photo.png".into()),
                }),
                created_at: Some(Utc::now() - chrono::Duration::minutes(4)),
                ..Default::default()
            },
        )
        .unwrap();
    let (reader, reader_toml) = api_key("reader", &["read"], &["*"]);
    let (writer, writer_toml) = api_key("writer", &["write"], &["*"]);
    let toml = format!(
        "{reader_toml}{writer_toml}{}",
        sim_accounts(sim.base_url(), &[CUSTOMER])
    );
    let gw = TestGateway::start(db, &toml).await;
    let file = message_id(&gw, &reader, "m-file").await;

    // A key without `read` is refused before anything is fetched.
    let (status, _, body) = media(&gw, &writer, &file).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "forbidden"));
    assert_eq!(downloads(&control), 0);

    // The bytes, typed from the extension, inline under their name.
    let (status, headers, body) = media(&gw, &reader, &file).await;
    assert_eq!(status, 200);
    assert_eq!(body, PDF);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["content-length"], PDF.len().to_string().as_str());
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("inline; filename="),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%201.pdf"),
        "{disposition}"
    );
    assert_eq!(downloads(&control), 1);

    // Cached: the second request does not call the provider.
    let (status, _, again) = media(&gw, &reader, &file).await;
    assert_eq!((status, again.as_slice()), (200, PDF));
    assert_eq!(downloads(&control), 1, "served from the cache");

    // A message without media, a file the provider does not know, an
    // unknown message: 404.
    let text = message_id(&gw, &reader, "m-text").await;
    let (status, _, body) = media(&gw, &reader, &text).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    let unknown = message_id(&gw, &reader, "m-unknown").await;
    let (status, _, body) = media(&gw, &reader, &unknown).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    let (status, _, body) = media(&gw, &reader, "msg_does_not_exist").await;
    assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));

    // The provider failing: 502; hanging past request_timeout_secs: 504.
    let broken = message_id(&gw, &reader, "m-broken").await;
    fail_next_download(&control, FaultAction::Status { status: 500 });
    let (status, _, body) = media(&gw, &reader, &broken).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (502, "provider_error")
    );
    let (status, _, body) = media(&gw, &reader, &broken).await;
    assert_eq!(
        (status, body),
        (200, vec![1, 2, 3]),
        "a failure is not cached"
    );
    let slow = message_id(&gw, &reader, "m-slow").await;
    fail_next_download(&control, FaultAction::Hang);
    let started = std::time::Instant::now();
    let (status, _, body) = media(&gw, &reader, &slow).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (504, "provider_timeout")
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A provider that links its files: a 302 to the link.
    let photo = first_id(&gw, &reader, "/v1/messages?account=kchat&kind=image").await;
    let (status, headers, _) = media(&gw, &reader, &photo).await;
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "https://files.example.com/photo.png");

    gw.stop().await;
    sim.shutdown().await;
}

on_both_backends!(files_are_served_once_fetched_and_redirected_where_the_provider_links);
