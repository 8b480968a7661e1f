//! `GET /v1/messages/{id}/media`: a message's file.
//!
//! Where the provider gives a URL (`media.url`) the answer is a 302 to it.
//! Where it serves files by id (ccmessaging's `downloadFileStream`) the
//! gateway fetches the bytes within the account's `request_timeout_secs`
//! and keeps them in a [`FileCache`], so a second request does not call the
//! provider.
//!
//! The cache is in memory and bounded ([`FILE_CACHE_BYTES`] in all, files
//! of at most [`MAX_CACHED_FILE_BYTES`]), least recently used out first.
//! Memory rather than the database or disk because the provider stays the
//! source of the file (a miss only costs one provider call), ccmessaging
//! files are at most 2 MB, and a cache needs no migration, no clean-up job
//! and no disk quota; each replica warms its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chat_core::{Media, MediaFile, MediaRequest, ProviderError};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::ApiPath;
use super::sessions::not_found;
use super::AppState;
use crate::providers::Account;

/// Total bytes the file cache may hold.
pub const FILE_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Files larger than this are served but not kept.
pub const MAX_CACHED_FILE_BYTES: usize = 8 * 1024 * 1024;

/// Routes of this resource.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/v1/messages/{id}/media", get(show))
}

/// A fetched file as served.
#[derive(Debug, Clone)]
struct CachedFile {
    bytes: Arc<[u8]>,
    content_type: String,
    file_name: Option<String>,
    last_used: u64,
}

#[derive(Debug, Default)]
struct CacheInner {
    files: HashMap<String, CachedFile>,
    bytes: usize,
    clock: u64,
}

/// Files fetched from providers, by message id; bounded, least recently
/// used out first.
pub struct FileCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
}

impl std::fmt::Debug for FileCache {
    // The files themselves are never printed: only how much is held.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("FileCache")
            .field("files", &inner.files.len())
            .field("bytes", &inner.bytes)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache::with_capacity(FILE_CACHE_BYTES)
    }
}

impl FileCache {
    /// A cache holding at most `capacity` bytes of files.
    pub fn with_capacity(capacity: usize) -> Self {
        FileCache {
            inner: Mutex::new(CacheInner::default()),
            capacity,
        }
    }

    fn get(&self, key: &str) -> Option<CachedFile> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clock += 1;
        let now = inner.clock;
        let file = inner.files.get_mut(key)?;
        file.last_used = now;
        Some(file.clone())
    }

    fn put(&self, key: &str, mut file: CachedFile) {
        let size = file.bytes.len();
        if size > MAX_CACHED_FILE_BYTES.min(self.capacity) {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clock += 1;
        file.last_used = inner.clock;
        if let Some(old) = inner.files.insert(key.to_string(), file) {
            inner.bytes -= old.bytes.len();
        }
        inner.bytes += size;
        while inner.bytes > self.capacity {
            let Some(oldest) = inner
                .files
                .iter()
                .min_by_key(|(_, f)| f.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = inner.files.remove(&oldest) {
                inner.bytes -= gone.bytes.len();
            }
        }
    }

    /// Files held now (metrics, tests).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .files
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let message = state
        .store
        .get_message(&id, &caller.scope)
        .await
        .map_err(not_found("message"))?;
    let Some(media) = message.media.clone() else {
        return Err(no_file("This message has no file."));
    };
    if let Some(url) = media.url.as_deref() {
        return redirect(url);
    }
    let files = state.accounts.files();
    if let Some(file) = files.get(&message.id) {
        return Ok(serve(file));
    }
    if media.file_id.is_none() {
        return Err(no_file("This message's file has neither a URL nor an id."));
    }
    let account = state
        .accounts
        .get(&message.account)
        .ok_or_else(|| no_file("The message's account is no longer configured."))?;
    let session = state
        .store
        .get_session(&message.session_id, &caller.scope)
        .await
        .map_err(not_found("message"))?;
    let request = MediaRequest {
        customer_id: session.customer.external_id.clone(),
        kind: message.kind,
        media: media.clone(),
    };
    let budget = Duration::from_secs(account.config.request_timeout_secs.max(1));
    let fetched = match tokio::time::timeout(budget, account.provider.fetch_media(&request)).await {
        Err(_) => Err(ProviderError::Timeout),
        Ok(result) => result,
    };
    let file = fetched.map_err(|e| media_failure(account, e))?;
    let file = cached_file(file, &media);
    files.put(&message.id, file.clone());
    Ok(serve(file))
}

/// The provider's file with its type settled: the adapter's, else the
/// stored MIME type, else one guessed from the file name's extension.
fn cached_file(file: MediaFile, media: &Media) -> CachedFile {
    let file_name = file.file_name.or_else(|| media.file_name.clone());
    let content_type = file
        .content_type
        .or_else(|| media.mime_type.clone())
        .or_else(|| file_name.as_deref().and_then(type_of_name))
        .unwrap_or_else(|| "application/octet-stream".to_string());
    CachedFile {
        bytes: file.bytes.into(),
        content_type,
        file_name,
        last_used: 0,
    }
}

/// A MIME type from a file name's extension, for the usual chat files.
fn type_of_name(name: &str) -> Option<String> {
    let (_, ext) = name.rsplit_once('.')?;
    let mime = match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp3" => "audio/mpeg",
        "amr" => "audio/amr",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "zip" => "application/zip",
        _ => return None,
    };
    Some(mime.to_string())
}

/// 200 with the bytes, their type and length, shown inline under their name.
fn serve(file: CachedFile) -> Response {
    let mut resp = Response::new(Body::from(file.bytes.to_vec()));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.bytes.len()));
    if let Ok(v) = HeaderValue::from_str(&disposition(file.file_name.as_deref())) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    resp
}

/// `inline`, with the name when known: an ASCII `filename` (quotes and
/// control characters replaced) and, for other names, the exact one as
/// RFC 5987 `filename*`.
fn disposition(name: Option<&str>) -> String {
    let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
        return "inline".to_string();
    };
    let ascii: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '_',
        })
        .collect();
    if ascii == name {
        return format!("inline; filename=\"{ascii}\"");
    }
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("inline; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// 302 to the provider's own URL.
fn redirect(url: &str) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(url)
        .map_err(|_| no_file("The provider's URL for this file is unusable."))?;
    let mut resp = StatusCode::FOUND.into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

/// 404 `not_found` with a reason.
fn no_file(message: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
}

/// A failed fetch as the API answers it: the provider does not know the
/// file (or cannot serve files) 404, no answer in time 504, anything else
/// 502.
fn media_failure(account: &Account, e: ProviderError) -> ApiError {
    let name = account.provider.name();
    match e {
        ProviderError::NotFound(_) => no_file(&format!("{name} does not know this file.")),
        ProviderError::Unsupported(_) => no_file(&format!(
            "{name} serves this file only by its URL, which it did not give."
        )),
        ProviderError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "provider_timeout",
            format!(
                "{name} did not answer within {} s.",
                account.config.request_timeout_secs
            ),
        ),
        other => {
            tracing::warn!(account = %account.config.name, error = %other, "media fetch failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                format!("{name} failed to hand over the file: {other}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize) -> CachedFile {
        CachedFile {
            bytes: vec![0; n].into(),
            content_type: "image/png".into(),
            file_name: None,
            last_used: 0,
        }
    }

    #[test]
    fn the_cache_stays_within_its_bytes_dropping_the_least_recently_used() {
        let cache = FileCache::with_capacity(100);
        cache.put("a", file(40));
        cache.put("b", file(40));
        assert!(cache.get("a").is_some());
        cache.put("c", file(40));
        assert!(cache.get("b").is_none(), "b was used least recently");
        assert!(cache.get("a").is_some());
        assert!(cache.get("c").is_some());
        cache.put("huge", file(101));
        assert!(cache.get("huge").is_none(), "larger than the cache");
        assert_eq!(cache.len(), 2);
        assert_eq!(
            format!("{cache:?}"),
            "FileCache { files: 2, bytes: 80, capacity: 100 }"
        );
    }

    #[test]
    fn names_are_given_safely() {
        assert_eq!(disposition(None), "inline");
        assert_eq!(
            disposition(Some("report.pdf")),
            "inline; filename=\"report.pdf\""
        );
        assert_eq!(
            disposition(Some("报告 \"1\".pdf")),
            "inline; filename=\"__ _1_.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%221%22.pdf"
        );
    }
}
