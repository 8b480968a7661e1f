//! Links a provider hands out, made absolute.
//!
//! API.md: `avatar_url` and `media.url` are absolute `http(s)` URLs or null.
//! Providers often send paths relative to their own web console
//! (ccmessaging's `../../image/user1.png`), which a client of the gateway
//! cannot resolve; every adapter passes such links through
//! [`absolute_url`] with its account's `base_url`.

use url::Url;

/// `raw` as an absolute `http(s)` URL: kept when it already is one,
/// resolved against `base` when it is relative (`../../image/a.png`,
/// `/img/a.png`, `//cdn.example.com/a.png`), and `None` when it is blank
/// or names another scheme (`javascript:`, `data:`, `file:`), which a
/// client must not be handed as a picture link.
pub fn absolute_url(base: &Url, raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => base.join(raw).ok()?,
        Err(_) => return None,
    };
    matches!(url.scheme(), "http" | "https")
        .then(|| url.host().is_some())
        .filter(|has_host| *has_host)
        .map(|_| url.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_links_resolve_against_the_base() {
        let base = Url::parse("http://127.0.0.1:9102").unwrap();
        assert_eq!(
            absolute_url(&base, "../../image/user1.png").as_deref(),
            Some("http://127.0.0.1:9102/image/user1.png")
        );
        assert_eq!(
            absolute_url(&base, "/img/a.png").as_deref(),
            Some("http://127.0.0.1:9102/img/a.png")
        );
        assert_eq!(
            absolute_url(&base, "//cdn.example.com/a.png").as_deref(),
            Some("http://cdn.example.com/a.png")
        );
        let prefixed = Url::parse("https://tenant.example.com/service/cc/").unwrap();
        assert_eq!(
            absolute_url(&prefixed, "image/u.png").as_deref(),
            Some("https://tenant.example.com/service/cc/image/u.png")
        );
    }

    #[test]
    fn absolute_links_stay_and_other_schemes_are_dropped() {
        let base = Url::parse("http://127.0.0.1:9102").unwrap();
        assert_eq!(
            absolute_url(&base, "https://img.example.com/a.png?x=1").as_deref(),
            Some("https://img.example.com/a.png?x=1")
        );
        assert_eq!(absolute_url(&base, "javascript:alert(1)"), None);
        assert_eq!(absolute_url(&base, "data:image/png;base64,AAAA"), None);
        assert_eq!(absolute_url(&base, "   "), None);
    }
}
