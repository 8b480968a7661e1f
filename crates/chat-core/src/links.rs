//! Links a provider hands out, made absolute.
//!
//! API.md: `avatar_url` and `media.url` are absolute `http(s)` URLs or null.
//! Providers often send paths relative to their own web console
//! (ccmessaging's `../../image/user1.png`), which a client of the gateway
//! cannot resolve; every adapter passes such links through
//! [`absolute_url`] with its account's `base_url`.

use url::Url;

use crate::{Participant, SessionChange};

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

/// Makes every `avatar_url` and `media.url` in `changes` absolute against
/// `base` (or null when unusable), so an adapter applies the rule once to
/// whatever its mapping produced.
pub fn absolutize(changes: &mut [SessionChange], base: &Url) {
    let fix = |link: &mut Option<String>| {
        if let Some(raw) = link.take() {
            *link = absolute_url(base, &raw);
        }
    };
    let fix_participant = |p: &mut Option<Participant>| {
        if let Some(p) = p.as_mut() {
            fix(&mut p.avatar_url);
        }
    };
    for change in changes {
        fix_participant(&mut change.session.customer);
        fix_participant(&mut change.session.agent);
        for message in &mut change.messages {
            fix(&mut message.sender.avatar_url);
            if let Some(media) = message.media.as_mut() {
                fix(&mut media.url);
            }
        }
    }
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

    #[test]
    fn every_link_in_a_change_is_made_absolute() {
        use crate::{Media, MessageKind, ProviderMessage, ProviderSession, Role, Sender};
        let base = Url::parse("http://spark.example:9101").unwrap();
        let person = |avatar: &str| Participant {
            external_id: Some("p".into()),
            name: None,
            avatar_url: Some(avatar.into()),
        };
        let mut changes = vec![SessionChange {
            session: ProviderSession {
                external_id: "s".into(),
                customer: Some(person("/avatars/c.png")),
                agent: Some(person("javascript:void(0)")),
                ..ProviderSession::default()
            },
            messages: vec![ProviderMessage {
                external_id: "m".into(),
                session_external_id: "s".into(),
                sender: Sender {
                    role: Role::Customer,
                    external_id: None,
                    name: None,
                    avatar_url: Some("../../image/u.png".into()),
                },
                kind: MessageKind::Image,
                text: None,
                media: Some(Media {
                    url: Some("files/1.png".into()),
                    ..Media::default()
                }),
                card: None,
                event: None,
                sent_at: chrono::Utc::now(),
                received_at: None,
                raw: serde_json::Value::Null,
            }],
        }];
        absolutize(&mut changes, &base);
        let c = &changes[0];
        let avatar = |p: &Option<Participant>| p.as_ref().unwrap().avatar_url.clone();
        assert_eq!(
            avatar(&c.session.customer).as_deref(),
            Some("http://spark.example:9101/avatars/c.png")
        );
        assert_eq!(avatar(&c.session.agent), None);
        let m = &c.messages[0];
        assert_eq!(
            m.sender.avatar_url.as_deref(),
            Some("http://spark.example:9101/image/u.png")
        );
        assert_eq!(
            m.media.as_ref().unwrap().url.as_deref(),
            Some("http://spark.example:9101/files/1.png")
        );
    }
}
