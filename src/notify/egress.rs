//! Egress rules of every outgoing notification request (DESIGN §3): redirects are not
//! followed (a 3xx is a destination error), no `Referer` is sent, and a target on a
//! loopback, private, link-local, CGNAT, multicast, unspecified or otherwise special address
//! is refused — at configuration time ([`check_url`], IP literals and special-use names)
//! and again at connect time ([`CheckedResolver`], every address a name resolves to, so DNS
//! rebinding is covered; IP literals, which reqwest never resolves, are checked by
//! [`check_url`] before each request) — unless `notifications.allow_private_targets`.
//!
//! Address forms are normalised by the WHATWG URL parser (`url`, through reqwest) before
//! they are checked: `http://0/` is `0.0.0.0`, `http://2130706433/` is `127.0.0.1`,
//! `http://[::ffff:127.0.0.1]/` is an IPv4-mapped loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// IPv4 ranges that are not the public internet (RFC 6890 and its updates).
const SPECIAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),      // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),     // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),  // CGNAT (shared address space)
    (Ipv4Addr::new(127, 0, 0, 0), 8),    // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16), // link-local (cloud metadata)
    (Ipv4Addr::new(172, 16, 0, 0), 12),  // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),   // IETF protocol assignments
    (Ipv4Addr::new(192, 168, 0, 0), 16), // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),  // benchmarking
    (Ipv4Addr::new(224, 0, 0, 0), 4),    // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),    // reserved, broadcast
];

/// IPv6 ranges that are not the public internet; IPv4-mapped and NAT64 addresses are
/// judged by the IPv4 address they carry.
const SPECIAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
];

/// Host names that never name a public host (RFC 6761 `localhost`, RFC 6762 `.local`,
/// RFC 8375 `.home.arpa`, ICANN's `.internal`, e.g. `metadata.google.internal`).
const SPECIAL_NAME_SUFFIXES: &[&str] =
    &["localhost", "local", "internal", "home.arpa", "localdomain"];

/// Whether `ip` is an address of the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !SPECIAL_V4
            .iter()
            .any(|(net, len)| Ipv4Net::new(*net, *len).is_ok_and(|n| n.contains(&v4))),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public(IpAddr::V4(v4));
            }
            !SPECIAL_V6
                .iter()
                .any(|(net, len)| Ipv6Net::new(*net, *len).is_ok_and(|n| n.contains(&v6)))
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    let compatible = s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
    (mapped || compatible || nat64).then_some(tail)
}

/// Whether `host` (a name, lower-case, maybe with a trailing dot) is a special-use name.
fn is_special_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    SPECIAL_NAME_SUFFIXES
        .iter()
        .any(|s| host == *s || host.ends_with(&format!(".{s}")))
}

/// Checks a notification target: an http(s) URL without credentials whose host, unless
/// `allow_private`, is neither a special-use name nor a non-public IP literal.
///
/// # Errors
/// Why it is refused (for `invalid_settings` / start-up, naming no secret).
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = Url::parse(url).map_err(|_| "must be an http(s) URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http(s) URL".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (user:password@)".to_owned());
    }
    if allow_private {
        return Ok(());
    }
    let refused = match parsed.host() {
        None => true,
        Some(url::Host::Ipv4(v4)) => !is_public(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => !is_public(IpAddr::V6(v6)),
        Some(url::Host::Domain(name)) => is_special_name(name),
    };
    if refused {
        return Err(PRIVATE_REFUSED.to_owned());
    }
    Ok(())
}

/// Why a private or special target is refused.
pub const PRIVATE_REFUSED: &str =
    "is a loopback, private, link-local or otherwise special address \
     (set notifications.allow_private_targets = true where targets really are private)";

/// The DNS resolver of the notification client: resolves with the system resolver
/// (`tokio::net::lookup_host`) and, unless `allow_private()` says so, keeps only public
/// addresses; a name with none left is refused.
pub struct CheckedResolver {
    /// Read at every resolution, so a settings change applies to the next connection.
    pub allow_private: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = (self.allow_private)();
        Box::pin(async move {
            // Judged by what the name resolves to, not by the name: `localhost` is refused
            // here because it resolves to loopback.
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(refused(&host));
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

fn refused(host: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("refused: {host} resolves to no public address").into()
}

/// The notification HTTP client: no redirects, no `Referer`, every name resolved through
/// [`CheckedResolver`].
///
/// # Errors
/// When the TLS backend cannot start (start-up only).
pub fn client(
    pool_idle_per_host: usize,
    allow_private: Arc<dyn Fn() -> bool + Send + Sync>,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool_idle_per_host)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_form_of_the_issue_is_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://metadata.google.internal/",
            "http://10.0.0.1/",
            "http://localhost:6379/",
            "http://LOCALHOST./",
            "http://[::1]:22/",
            "http://0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://192.168.1.1/",
            "http://172.31.0.1/",
        ] {
            assert!(check_url(url, false).is_err(), "{url} passed");
            assert!(check_url(url, true).is_ok(), "{url} refused when allowed");
        }
        for url in [
            "http://user:password@example.com/hook",
            "ftp://example.com/",
        ] {
            assert!(check_url(url, true).is_err(), "{url} passed");
        }
        for url in [
            "https://hooks.slack.com/services/T/B/X",
            "https://93.184.215.14/",
            "https://[2606:4700::1111]/",
        ] {
            assert!(check_url(url, false).is_ok(), "{url} refused");
        }
    }
}
