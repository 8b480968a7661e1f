//! One method per endpoint of API.md, grouped by resource.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::stream::BoxStream;
use reqwest::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use crate::client::{Call, Client, Page, Safety};
use crate::error::{Error, Result};
use crate::query::{CustomerFilter, MessageFilter, Query, SessionFilter, StatsQuery};
use crate::types::{
    Account, BackfillRequest, Customer, DeliveryAttempt, ErasedCustomer, Message, NewMessage,
    NewWebhook, Outreach, Recovered, Session, StatsRow, Transfer, Webhook, WebhookPatch,
    WebhookWithSecret,
};

/// A message's file as `GET /v1/messages/{id}/media` serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    /// `Content-Type` of the answer.
    pub content_type: Option<String>,
    /// The `filename` of `Content-Disposition`, when given.
    pub file_name: Option<String>,
    /// The bytes.
    pub bytes: Bytes,
}

/// A fresh `Idempotency-Key`: a UUID v7, unique and time-ordered.
pub fn new_idempotency_key() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn raw_query(include_raw: bool) -> Query {
    let mut q = Query::default();
    q.raw(include_raw);
    q
}

impl Client {
    // ---- health and document ------------------------------------------

    /// `GET /healthz`: whether the process answers.
    pub async fn health(&self) -> Result<()> {
        self.execute(Call::get(&["healthz"], Query::default()))
            .await
            .map(drop)
    }

    /// `GET /readyz`: `Ok` when the database answers; [`Error::Api`] with 503 if not.
    pub async fn ready(&self) -> Result<()> {
        let mut call = Call::get(&["readyz"], Query::default());
        call.safety = Safety::Once;
        self.execute(call).await.map(drop)
    }

    /// `GET /openapi.json`: the API's OpenAPI 3.1 document.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.json(Call::get(&["openapi.json"], Query::default()))
            .await
    }

    // ---- accounts -------------------------------------------------------

    /// `GET /v1/accounts`: the configured accounts the key may see.
    pub async fn accounts(&self) -> Result<Vec<Account>> {
        self.data(Call::get(&["v1", "accounts"], Query::default()))
            .await
    }

    /// `GET /v1/accounts/{name}`.
    pub async fn account(&self, name: &str) -> Result<Account> {
        self.data(Call::get(&["v1", "accounts", name], Query::default()))
            .await
    }

    /// `POST /v1/accounts/{name}/sync`: start a history backfill (admin).
    pub async fn start_backfill(&self, name: &str, req: &BackfillRequest) -> Result<Account> {
        let call = Call::with_json(
            Method::POST,
            &["v1", "accounts", name, "sync"],
            req,
            Safety::Once,
        )?;
        self.data(call).await
    }

    // ---- sessions -------------------------------------------------------

    /// `GET /v1/sessions`: every matching session, page after page.
    pub fn sessions(&self, filter: &SessionFilter) -> BoxStream<'static, Result<Session>> {
        self.paginate(&["v1", "sessions"], filter.query())
    }

    /// `GET /v1/sessions`: one page, from `cursor` (None: the first).
    pub async fn sessions_page(
        &self,
        filter: &SessionFilter,
        cursor: Option<&str>,
    ) -> Result<Page<Session>> {
        self.page(&["v1", "sessions"], filter.query(), cursor).await
    }

    /// `GET /v1/sessions/{id}`.
    pub async fn session(&self, id: &str, include_raw: bool) -> Result<Session> {
        self.data(Call::get(&["v1", "sessions", id], raw_query(include_raw)))
            .await
    }

    /// `GET /v1/sessions/{id}/messages`: its messages, oldest first unless
    /// `filter.order` says otherwise (only `order`, `limit` and
    /// `include_raw` of the filter apply).
    pub fn session_messages(
        &self,
        id: &str,
        filter: &MessageFilter,
    ) -> BoxStream<'static, Result<Message>> {
        self.paginate(&["v1", "sessions", id, "messages"], filter.session_query())
    }

    /// `POST /v1/sessions/{id}/messages` with a fresh `Idempotency-Key`, so
    /// the retries after a lost answer send nothing twice.
    pub async fn send_message(&self, session_id: &str, msg: &NewMessage) -> Result<Message> {
        self.send_message_with_key(session_id, msg, &new_idempotency_key())
            .await
    }

    /// `POST /v1/sessions/{id}/messages` with the caller's
    /// `Idempotency-Key`: a repeat with the same key and body, now or after
    /// a crash, returns the same message and sends nothing more.
    pub async fn send_message_with_key(
        &self,
        session_id: &str,
        msg: &NewMessage,
        idempotency_key: &str,
    ) -> Result<Message> {
        self.idempotent_post(
            &["v1", "sessions", session_id, "messages"],
            msg,
            idempotency_key,
        )
        .await
    }

    /// `POST /v1/sessions/{id}/close`.
    pub async fn close_session(&self, id: &str) -> Result<Session> {
        self.action(&["v1", "sessions", id, "close"], &json!({}))
            .await
    }

    /// `POST /v1/sessions/{id}/restart`.
    pub async fn restart_session(&self, id: &str) -> Result<Session> {
        self.action(&["v1", "sessions", id, "restart"], &json!({}))
            .await
    }

    /// `POST /v1/sessions/{id}/transfer`.
    pub async fn transfer_session(&self, id: &str, transfer: &Transfer) -> Result<Session> {
        self.action(&["v1", "sessions", id, "transfer"], transfer)
            .await
    }

    // ---- messages -------------------------------------------------------

    /// `POST /v1/messages`: outreach, with a fresh `Idempotency-Key`.
    pub async fn start_session(&self, outreach: &Outreach) -> Result<Message> {
        self.start_session_with_key(outreach, &new_idempotency_key())
            .await
    }

    /// `POST /v1/messages`: outreach, with the caller's `Idempotency-Key`.
    pub async fn start_session_with_key(
        &self,
        outreach: &Outreach,
        idempotency_key: &str,
    ) -> Result<Message> {
        self.idempotent_post(&["v1", "messages"], outreach, idempotency_key)
            .await
    }

    /// `GET /v1/messages`: search across sessions, page after page.
    pub fn messages(&self, filter: &MessageFilter) -> BoxStream<'static, Result<Message>> {
        self.paginate(&["v1", "messages"], filter.query())
    }

    /// `GET /v1/messages`: one page, from `cursor`.
    pub async fn messages_page(
        &self,
        filter: &MessageFilter,
        cursor: Option<&str>,
    ) -> Result<Page<Message>> {
        self.page(&["v1", "messages"], filter.query(), cursor).await
    }

    /// `GET /v1/messages/{id}` (poll it for `delivery`).
    pub async fn message(&self, id: &str, include_raw: bool) -> Result<Message> {
        self.data(Call::get(&["v1", "messages", id], raw_query(include_raw)))
            .await
    }

    /// `GET /v1/messages/{id}/media`: the file's bytes (a redirect to the
    /// provider's URL is followed; the API key is not sent there).
    pub async fn message_media(&self, id: &str) -> Result<MediaFile> {
        let resp = self
            .execute(Call::get(
                &["v1", "messages", id, "media"],
                Query::default(),
            ))
            .await?;
        let header = |v: Option<&HeaderValue>| v.and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type = header(resp.headers().get(CONTENT_TYPE));
        let file_name = header(resp.headers().get(CONTENT_DISPOSITION))
            .as_deref()
            .and_then(disposition_filename);
        let bytes = resp.bytes().await?;
        Ok(MediaFile {
            content_type,
            file_name,
            bytes,
        })
    }

    // ---- webhooks -------------------------------------------------------

    /// `GET /v1/webhooks`: every registered endpoint.
    pub fn webhooks(&self) -> BoxStream<'static, Result<Webhook>> {
        self.paginate(&["v1", "webhooks"], Query::default())
    }

    /// `GET /v1/webhooks/{id}`.
    pub async fn webhook(&self, id: &str) -> Result<Webhook> {
        self.data(Call::get(&["v1", "webhooks", id], Query::default()))
            .await
    }

    /// `POST /v1/webhooks`: register an endpoint; the answer holds its
    /// secret, shown only here.
    pub async fn create_webhook(&self, new: &NewWebhook) -> Result<WebhookWithSecret> {
        let call = Call::with_json(Method::POST, &["v1", "webhooks"], new, Safety::Once)?;
        self.data(call).await
    }

    /// `PATCH /v1/webhooks/{id}`: change the fields given.
    pub async fn update_webhook(&self, id: &str, patch: &WebhookPatch) -> Result<Webhook> {
        // Setting the same fields twice gives the same result: safe to retry.
        let call = Call::with_json(
            Method::PATCH,
            &["v1", "webhooks", id],
            patch,
            Safety::Idempotent,
        )?;
        self.data(call).await
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        let mut call = Call::get(&["v1", "webhooks", id], Query::default());
        call.method = Method::DELETE;
        call.safety = Safety::Once;
        self.execute(call).await.map(drop)
    }

    /// `POST /v1/webhooks/{id}/rotate-secret`: a new secret; the old one
    /// keeps signing for `overlap_secs` (gateway default 86,400).
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        overlap_secs: Option<u32>,
    ) -> Result<WebhookWithSecret> {
        #[derive(Serialize)]
        struct Body {
            #[serde(skip_serializing_if = "Option::is_none")]
            overlap_secs: Option<u32>,
        }
        let call = Call::with_json(
            Method::POST,
            &["v1", "webhooks", id, "rotate-secret"],
            &Body { overlap_secs },
            Safety::Once,
        )?;
        self.data(call).await
    }

    /// `POST /v1/webhooks/{id}/recover`: deliver again what failed since `since`.
    pub async fn recover_webhook(&self, id: &str, since: DateTime<Utc>) -> Result<Recovered> {
        let body = json!({ "since": since.to_rfc3339_opts(SecondsFormat::Millis, true) });
        let call = Call::with_json(
            Method::POST,
            &["v1", "webhooks", id, "recover"],
            &body,
            Safety::Once,
        )?;
        self.data(call).await
    }

    /// `GET /v1/webhooks/{id}/deliveries`: attempts, newest first.
    pub fn webhook_deliveries(&self, id: &str) -> BoxStream<'static, Result<DeliveryAttempt>> {
        self.paginate(&["v1", "webhooks", id, "deliveries"], Query::default())
    }

    /// `POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry`: the new attempt.
    pub async fn retry_delivery(&self, id: &str, delivery_id: &str) -> Result<DeliveryAttempt> {
        let call = Call::with_json(
            Method::POST,
            &["v1", "webhooks", id, "deliveries", delivery_id, "retry"],
            &json!({}),
            Safety::Once,
        )?;
        self.data(call).await
    }

    // ---- customers and stats ----------------------------------------------

    /// `GET /v1/customers`: newest `last_seen_at` first.
    pub fn customers(&self, filter: &CustomerFilter) -> BoxStream<'static, Result<Customer>> {
        self.paginate(&["v1", "customers"], filter.query())
    }

    /// `GET /v1/customers/{account}/{external_id}`.
    pub async fn customer(&self, account: &str, external_id: &str) -> Result<Customer> {
        self.data(Call::get(
            &["v1", "customers", account, external_id],
            Query::default(),
        ))
        .await
    }

    /// `DELETE /v1/customers/{account}/{external_id}`: erase the customer (admin).
    pub async fn erase_customer(&self, account: &str, external_id: &str) -> Result<ErasedCustomer> {
        let mut call = Call::get(&["v1", "customers", account, external_id], Query::default());
        call.method = Method::DELETE;
        // Erasing twice erases nothing more; a repeat answers 404, never harm.
        call.safety = Safety::Once;
        self.data(call).await
    }

    /// `GET /v1/stats`.
    pub async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsRow>> {
        self.data(Call::get(&["v1", "stats"], query.query())).await
    }

    // ---- helpers ------------------------------------------------------------

    async fn idempotent_post(
        &self,
        path: &[&str],
        body: &impl Serialize,
        key: &str,
    ) -> Result<Message> {
        let mut call = Call::with_json(Method::POST, path, body, Safety::Idempotent)?;
        let value = HeaderValue::from_str(key)
            .map_err(|_| Error::Decode("the Idempotency-Key is not a valid header value".into()))?;
        call.headers.insert("idempotency-key", value);
        self.data(call).await
    }

    async fn action(&self, path: &[&str], body: &impl Serialize) -> Result<Session> {
        let call = Call::with_json(Method::POST, path, body, Safety::Once)?;
        self.data(call).await
    }
}

/// `filename` of a `Content-Disposition` value (`inline; filename="a.png"`).
fn disposition_filename(v: &str) -> Option<String> {
    v.split(';').map(str::trim).find_map(|part| {
        let value = part.strip_prefix("filename=")?;
        Some(value.trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filename_is_read_from_content_disposition() {
        assert_eq!(
            disposition_filename(r#"inline; filename="photo 1.png""#).as_deref(),
            Some("photo 1.png")
        );
        assert_eq!(disposition_filename("inline"), None);
    }

    #[test]
    fn idempotency_keys_are_fresh_uuid_v7() {
        let a = new_idempotency_key();
        let b = new_idempotency_key();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
    }
}
