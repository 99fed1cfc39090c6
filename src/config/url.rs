//! Checks of the URLs in the configuration: scheme, host, port, and no credentials.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Purpose of a configured URL, which sets the schemes and parts it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UrlKind {
    /// A REST or OAuth base that paths are appended to: http or https, no
    /// query or fragment, trailing slashes removed.
    HttpBase,
    /// The event stream: ws or wss, no fragment (RFC 6455, section 3).
    WebSocket,
    /// A calendar webhook: http or https.
    Webhook,
}

impl UrlKind {
    fn schemes(self) -> (&'static str, &'static str) {
        match self {
            UrlKind::HttpBase | UrlKind::Webhook => ("https", "http"),
            UrlKind::WebSocket => ("wss", "ws"),
        }
    }
}

/// A URL that passed [`check_url`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CheckedUrl {
    /// The URL, without trailing slashes for an [`UrlKind::HttpBase`].
    pub text: String,
    /// The host, with brackets for an IPv6 address.
    pub host: String,
    /// True for `http` or `ws`, which send tokens unencrypted.
    pub plain: bool,
}

impl CheckedUrl {
    /// Returns whether the URL is unencrypted and leaves this machine.
    pub fn is_plain_remote(&self) -> bool {
        self.plain && !is_loopback_host(&self.host)
    }
}

/// Checks `text` as a URL of `kind`. The error is a lower-case reason that
/// states the expected form.
pub(super) fn check_url(text: &str, kind: UrlKind) -> Result<CheckedUrl, String> {
    let (secure, plain) = kind.schemes();
    let expected = format!("expected a {secure}:// or {plain}:// URL with a host");
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "contains whitespace or control characters, {expected}"
        ));
    }

    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("missing scheme, {expected}"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != secure && scheme != plain {
        return Err(format!("scheme \"{scheme}\" is not allowed, {expected}"));
    }

    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = check_authority(authority).map_err(|reason| format!("{reason}, {expected}"))?;
    check_tail(tail, kind)?;

    let text = match kind {
        UrlKind::HttpBase => text.trim_end_matches('/').to_owned(),
        UrlKind::WebSocket | UrlKind::Webhook => text.to_owned(),
    };
    let plain = scheme == plain;
    Ok(CheckedUrl { text, host, plain })
}

/// Checks `host[:port]` and returns the host.
fn check_authority(authority: &str) -> Result<String, &'static str> {
    if authority.contains('@') {
        return Err("credentials are not allowed in the URL");
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return Err("missing host");
    }
    let is_bracketed = host.starts_with('[');
    if !is_bracketed && !host.bytes().all(is_host_byte) {
        return Err("invalid character in host");
    }
    if is_bracketed && host[1..host.len() - 1].parse::<Ipv6Addr>().is_err() {
        return Err("invalid IPv6 address");
    }
    if let Some(port) = port {
        check_port(port)?;
    }
    Ok(host.to_owned())
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err("unclosed [ in host");
        };
        let (host, rest) = authority.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err("unexpected text after the IPv6 address"),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn is_host_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_')
}

fn check_port(port: &str) -> Result<(), &'static str> {
    let valid = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|number| number > 0);
    if valid { Ok(()) } else { Err("invalid port") }
}

/// Checks the path, query and fragment that follow the host.
fn check_tail(tail: &str, kind: UrlKind) -> Result<(), String> {
    match kind {
        UrlKind::HttpBase if tail.contains(['?', '#']) => Err(
            "a base URL must not contain a query or fragment, because paths are appended to it"
                .to_owned(),
        ),
        UrlKind::WebSocket if tail.contains('#') => {
            Err("a WebSocket URL must not contain a fragment".to_owned())
        }
        _ => Ok(()),
    }
}

/// Returns whether `host` is `localhost`, in 127.0.0.0/8 or `[::1]`.
pub(super) fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(address) = host.parse::<Ipv4Addr>() {
        return address.is_loopback();
    }
    let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
    unbracketed
        .parse::<Ipv6Addr>()
        .is_ok_and(|address| address.is_loopback())
}

/// Replaces the user information of a URL (`user:password@`) with `***@`,
/// so that an error message can show the rest of a rejected URL.
pub(super) fn redact_userinfo(text: &str) -> String {
    let (prefix, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), text),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{prefix}***{}", &rest[at..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_urls() {
        let cases = [
            (
                UrlKind::HttpBase,
                "https://api.mypurecloud.com",
                "api.mypurecloud.com",
            ),
            (
                UrlKind::HttpBase,
                "HTTPS://api.example.com",
                "api.example.com",
            ),
            (UrlKind::HttpBase, "http://127.0.0.1:8080", "127.0.0.1"),
            (UrlKind::HttpBase, "http://[::1]:8080/prefix", "[::1]"),
            (UrlKind::HttpBase, "http://sim_host:1/", "sim_host"),
            (UrlKind::WebSocket, "wss://api.x.com/a/b?c=d", "api.x.com"),
            (UrlKind::WebSocket, "ws://localhost:9000", "localhost"),
            (
                UrlKind::Webhook,
                "https://hooks.x.com/p?token=1#f",
                "hooks.x.com",
            ),
        ];
        for (kind, text, host) in cases {
            let url = check_url(text, kind).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.host, host, "{text}");
        }
    }

    #[test]
    fn base_loses_trailing_slashes() {
        let url = check_url("https://api.x.com/v1//", UrlKind::HttpBase).unwrap();
        assert_eq!(url.text, "https://api.x.com/v1");
        let url = check_url("https://api.x.com/", UrlKind::HttpBase).unwrap();
        assert_eq!(url.text, "https://api.x.com");
        let url = check_url("wss://api.x.com/", UrlKind::WebSocket).unwrap();
        assert_eq!(url.text, "wss://api.x.com/");
    }

    #[test]
    fn rejects_invalid_urls() {
        let cases = [
            (UrlKind::HttpBase, "api.x.com", "missing scheme"),
            (UrlKind::HttpBase, "ftp://x.com", "scheme \"ftp\""),
            (UrlKind::HttpBase, "wss://x.com", "scheme \"wss\""),
            (UrlKind::WebSocket, "https://x.com", "scheme \"https\""),
            (UrlKind::HttpBase, "https://", "missing host"),
            (UrlKind::HttpBase, "https:///path", "missing host"),
            (UrlKind::HttpBase, "https://:80", "missing host"),
            (UrlKind::HttpBase, "https://user:pw@x.com", "credentials"),
            (UrlKind::WebSocket, "wss://token@x.com", "credentials"),
            (UrlKind::HttpBase, "https://x .com", "whitespace"),
            (UrlKind::HttpBase, "https://x.com/a b", "whitespace"),
            (UrlKind::HttpBase, "https://x.com\n", "whitespace"),
            (UrlKind::HttpBase, "https://x.com:", "invalid port"),
            (UrlKind::HttpBase, "https://x.com:0", "invalid port"),
            (UrlKind::HttpBase, "https://x.com:65536", "invalid port"),
            (UrlKind::HttpBase, "https://x.com:+80", "invalid port"),
            (UrlKind::HttpBase, "https://x.com:80:80", "invalid port"),
            (UrlKind::HttpBase, "https://[::1", "unclosed"),
            (UrlKind::HttpBase, "https://[::g]", "invalid IPv6"),
            (UrlKind::HttpBase, "https://[::1]x", "after the IPv6"),
            (UrlKind::HttpBase, "https://x!.com", "invalid character"),
            (UrlKind::HttpBase, "https://x.com?q=1", "query or fragment"),
            (UrlKind::HttpBase, "https://x.com/#f", "query or fragment"),
            (UrlKind::WebSocket, "wss://x.com/#f", "fragment"),
        ];
        for (kind, text, expected) in cases {
            let error = check_url(text, kind).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
            let has_hint = error.contains("expected a") || error.contains("must not contain");
            assert!(has_hint, "{text:?} lacks a hint: {error}");
        }
    }

    #[test]
    fn plain_remote_only_for_non_loopback_plain_urls() {
        let cases = [
            ("http://example.com", true),
            ("http://10.0.0.1:80", true),
            ("http://127.0.0.1", false),
            ("http://127.8.9.10", false),
            ("http://LOCALHOST:80", false),
            ("http://[::1]:80", false),
            ("https://example.com", false),
        ];
        for (text, expected) in cases {
            let url = check_url(text, UrlKind::HttpBase).unwrap();
            assert_eq!(url.is_plain_remote(), expected, "{text}");
        }
        let stream = check_url("ws://10.1.1.1/x", UrlKind::WebSocket).unwrap();
        assert!(stream.is_plain_remote());
    }

    #[test]
    fn redaction_hides_user_and_password() {
        let cases = [
            ("https://user:pw@x.com/a@b", "https://***@x.com/a@b"),
            ("wss://tok@x.com", "wss://***@x.com"),
            ("https://x.com/a@b", "https://x.com/a@b"),
            ("user:pw@x.com/a", "***@x.com/a"),
            ("plain text", "plain text"),
        ];
        for (text, expected) in cases {
            assert_eq!(redact_userinfo(text), expected, "{text}");
        }
    }
}
