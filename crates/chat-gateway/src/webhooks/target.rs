//! Which URLs a webhook may target.
//!
//! A webhook makes the gateway send HTTP requests where an admin says, so
//! the addresses that would expose the machine's own secrets are refused:
//! link-local ranges (`169.254.0.0/16`, `fe80::/10`), the cloud metadata
//! services (`169.254.169.254` inside the former, AWS's `fd00:ec2::254`,
//! Alibaba Cloud's `100.100.100.200`, Azure's host endpoint
//! `168.63.129.16`) and the unspecified addresses (`0.0.0.0`, `::`, which
//! reach the host itself), unless `[webhooks] allow_private_targets` is set.
//! Each refused IPv4 address is refused too when written inside IPv6 —
//! IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
//! (`64:ff9b::/96`) and 6to4 (`2002::/16`) — since a dual-stack host or a
//! translating gateway still routes those to the IPv4 address. Loopback and
//! private (RFC 1918) ranges are allowed: receivers often live beside the
//! gateway.
//!
//! Host names are checked when the webhook is registered and again at every
//! delivery, through [`GuardedResolver`], the resolver the delivery client
//! connects with, so a name that later resolves elsewhere is still caught;
//! redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// How long registration waits for a host name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a URL is not an acceptable webhook target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute URL.
    #[error("`url` is not a valid absolute URL ({0})")]
    Invalid(String),
    /// Longer than [`MAX_URL_LEN`].
    #[error("`url` is longer than {MAX_URL_LEN} characters")]
    TooLong,
    /// Neither http nor https.
    #[error("`url` must use http or https, not `{0}`")]
    Scheme(String),
    /// No host to send to.
    #[error("`url` has no host")]
    NoHost,
    /// A link-local or metadata address.
    #[error(
        "`url` points at {0}, a link-local or cloud metadata address, which webhooks may not \
         target (see [webhooks] allow_private_targets)"
    )]
    Forbidden(IpAddr),
    /// The host name did not resolve (at delivery time; registration lets it pass).
    #[error("cannot resolve {host}: {reason}")]
    Unresolvable {
        /// The host.
        host: String,
        /// What the resolver said.
        reason: String,
    },
}

/// Whether `ip` is link-local, unspecified or a cloud metadata address,
/// directly or as an IPv4 address embedded in IPv6.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4);
            }
            v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
        }
    }
}

/// The IPv4 address an IPv6 address carries, in any form that still routes
/// to it: IPv4-mapped, IPv4-compatible (`::a.b.c.d`, but not `::` or
/// `::1`, which are IPv6's own), NAT64 well-known prefix `64:ff9b::/96`,
/// and 6to4 `2002:AABB:CCDD::/48`.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
        return Some(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local()
        || ip.is_unspecified()
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || ip == Ipv4Addr::new(168, 63, 129, 16)
}

/// Parses and checks the form of a webhook URL (no network).
pub fn parse_url(raw: &str) -> Result<Url, TargetError> {
    if raw.len() > MAX_URL_LEN {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(raw).map_err(|e| TargetError::Invalid(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(TargetError::Scheme(other.to_string())),
    }
    match url.host() {
        None => Err(TargetError::NoHost),
        Some(Host::Domain("")) => Err(TargetError::NoHost),
        _ => Ok(url),
    }
}

/// The address of a URL whose host is an IP literal.
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(_) => None,
    }
}

/// Checks where `url` points now: an IP literal directly, a host name by
/// resolving it. A name that does not resolve is refused only when
/// `require_resolution` (registration accepts it: DNS may be down for a
/// moment, and every delivery checks again).
pub async fn check(
    url: &Url,
    allow_private: bool,
    require_resolution: bool,
) -> Result<(), TargetError> {
    if allow_private {
        return Ok(());
    }
    if let Some(ip) = literal_ip(url) {
        return if is_forbidden(ip) {
            Err(TargetError::Forbidden(ip))
        } else {
            Ok(())
        };
    }
    let Some(host) = url.host_str() else {
        return Err(TargetError::NoHost);
    };
    let port = url.port_or_known_default().unwrap_or(80);
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            for a in addrs {
                if is_forbidden(a.ip()) {
                    return Err(TargetError::Forbidden(a.ip()));
                }
            }
            Ok(())
        }
        Ok(Err(e)) if require_resolution => Err(TargetError::Unresolvable {
            host: host.to_string(),
            reason: e.to_string(),
        }),
        Err(_) if require_resolution => Err(TargetError::Unresolvable {
            host: host.to_string(),
            reason: "timed out".into(),
        }),
        _ => Ok(()),
    }
}

/// The delivery client's resolver: the system resolver, minus forbidden
/// addresses (refusing the name when none is left), so the address checked
/// is the address connected to.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// `[webhooks] allow_private_targets`.
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
                .into_iter()
                .partition(|a| allow_private || !is_forbidden(a.ip()));
            if allowed.is_empty() {
                if let Some(a) = refused.first() {
                    let e: Box<dyn std::error::Error + Send + Sync> =
                        Box::new(TargetError::Forbidden(a.ip()));
                    return Err(e);
                }
            }
            let iter: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_forbidden() {
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "168.63.129.16",
            "0.0.0.0",
            "::",
            "::169.254.169.254",
            "::a9fe:a9fe",
            "64:ff9b::169.254.169.254",
            "64:ff9b::a83f:8110",
            "2002:a9fe:a9fe::",
            "2002:a9fe:a9fe:1::5",
            "2002:a83f:8110::1",
            "::ffff:168.63.129.16",
            "::ffff:0.0.0.0",
            "64:ff9b::100.100.100.200",
        ] {
            assert!(is_forbidden(bad.parse().unwrap()), "{bad}");
        }
        for ok in [
            "127.0.0.1",
            "::1",
            "10.0.0.5",
            "192.168.1.1",
            "93.184.216.34",
            "fd00:ec2::253",
            "fec0::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:0a00:0001::",
            "64:ff9b:1::169.254.169.254",
            "168.63.129.17",
        ] {
            assert!(!is_forbidden(ok.parse().unwrap()), "{ok}");
        }
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(parse_url("https://example.com/hook").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/x?y=1").is_ok());
        assert!(matches!(
            parse_url("ftp://example.com/"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            parse_url("/relative"),
            Err(TargetError::Invalid(_))
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(TargetError::Invalid(_))
        ));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse_url(&long).unwrap_err(), TargetError::TooLong);
    }

    #[tokio::test]
    async fn literal_targets_are_checked_without_dns() {
        let meta = parse_url("http://169.254.169.254/latest").unwrap();
        assert!(matches!(
            check(&meta, false, true).await,
            Err(TargetError::Forbidden(_))
        ));
        assert!(check(&meta, true, true).await.is_ok());
        let v6 = parse_url("http://[fd00:ec2::254]/").unwrap();
        assert!(check(&v6, false, true).await.is_err());
        let local = parse_url("http://127.0.0.1:9/").unwrap();
        assert!(check(&local, false, true).await.is_ok());
        let name = parse_url("http://localhost:9/").unwrap();
        assert!(check(&name, false, false).await.is_ok());
    }
}
