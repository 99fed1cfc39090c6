//! Proxy selection from the environment, the way curl and most tools read
//! it: `HTTPS_PROXY` for https/wss targets, `HTTP_PROXY` for http/ws,
//! `ALL_PROXY` for either, and `NO_PROXY` to bypass. Lower-case names are
//! read too and win, as in curl.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;

use crate::secret::Secret;

/// A proxy to reach a target through.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    pub host: String,
    pub port: u16,
    /// `Basic base64(user:password)` when the proxy URL carries credentials.
    pub authorization: Option<Secret>,
    /// The URL with any password replaced by `***`, for messages.
    pub display: String,
    /// The URL as given, for ureq, which needs the credentials.
    url: Secret,
}

impl std::fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl ProxyTarget {
    /// Converts the proxy to ureq's type.
    pub fn to_ureq(&self) -> Result<ureq::Proxy, String> {
        ureq::Proxy::new(self.url.expose())
            .map_err(|err| format!("invalid proxy {}: {err}", self.display))
    }
}

/// The proxy variables read once at start-up.
#[derive(Clone, Default)]
pub struct ProxySettings {
    https: Option<String>,
    http: Option<String>,
    all: Option<String>,
    no_proxy: Vec<NoProxyEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum NoProxyEntry {
    Everything,
    /// A host name or suffix (stored without a leading `.` or `*.`), with an optional port.
    Host {
        name: String,
        port: Option<u16>,
    },
    /// An IP network in CIDR form, such as `10.0.0.0/8`.
    Network {
        address: IpAddr,
        prefix: u8,
    },
}

impl ProxySettings {
    /// Reads the variables from the process environment.
    pub fn from_env() -> Self {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self::from_map(&env)
    }

    pub fn from_map(env: &HashMap<String, String>) -> Self {
        let read = |name: &str| {
            env.get(&name.to_ascii_lowercase())
                .or_else(|| env.get(name))
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        Self {
            https: read("HTTPS_PROXY"),
            http: read("HTTP_PROXY"),
            all: read("ALL_PROXY"),
            no_proxy: read("NO_PROXY")
                .map(|list| parse_no_proxy(&list))
                .unwrap_or_default(),
        }
    }

    /// Returns the proxy for a target, or None to connect directly.
    pub fn proxy_for(
        &self,
        secure: bool,
        host: &str,
        port: u16,
    ) -> Result<Option<ProxyTarget>, String> {
        let chosen = if secure {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        };
        let Some(url) = chosen.or(self.all.as_ref()) else {
            return Ok(None);
        };
        if self.bypasses(host, port) {
            return Ok(None);
        }
        parse_proxy_url(url).map(Some)
    }

    /// Returns the proxy for a URL (`http`, `https`, `ws` or `wss`).
    pub fn proxy_for_url(&self, url: &str) -> Result<Option<ProxyTarget>, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("URL without a scheme: {url}"))?;
        let secure = matches!(scheme, "https" | "wss");
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (host, port) = split_host_port(authority, if secure { 443 } else { 80 })?;
        self.proxy_for(secure, &host, port)
    }

    fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        self.no_proxy.iter().any(|entry| match entry {
            NoProxyEntry::Everything => true,
            NoProxyEntry::Host { name, port: wanted } => {
                wanted.is_none_or(|p| p == port)
                    && (host == *name || host.ends_with(&format!(".{name}")))
            }
            NoProxyEntry::Network { address, prefix } => {
                ip.is_some_and(|ip| in_network(ip, *address, *prefix))
            }
        })
    }
}

fn parse_no_proxy(list: &str) -> Vec<NoProxyEntry> {
    list.split([',', ' '])
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .filter_map(parse_no_proxy_entry)
        .collect()
}

fn parse_no_proxy_entry(item: &str) -> Option<NoProxyEntry> {
    if item == "*" {
        return Some(NoProxyEntry::Everything);
    }
    if let Some((address, prefix)) = item.split_once('/') {
        let address: IpAddr = address.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        return Some(NoProxyEntry::Network { address, prefix });
    }
    let item = item
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .to_ascii_lowercase();
    if let Ok(ip) = item
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(NoProxyEntry::Host {
            name: ip.to_string(),
            port: None,
        });
    }
    let (name, port) = match item.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name.to_owned(), port.parse().ok()),
        _ => (item.clone(), None),
    };
    Some(NoProxyEntry::Host { name, port })
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let prefix = u32::from(prefix.min(32));
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let prefix = u32::from(prefix.min(128));
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '[' in host")?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| format!("invalid port {port:?}"))?,
            None => default_port,
        };
        return Ok((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_owned(),
            port.parse().map_err(|_| format!("invalid port {port:?}"))?,
        )),
        None => Ok((authority.to_owned(), default_port)),
    }
}

/// Parses `http://[user:password@]host[:port]`. Only plain-HTTP proxies are
/// supported (the tunnel to the target is still TLS end to end).
fn parse_proxy_url(url: &str) -> Result<ProxyTarget, String> {
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let (scheme, rest) = with_scheme
        .split_once("://")
        .unwrap_or(("http", &with_scheme));
    let authority = rest.split('/').next().unwrap_or("");
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let display = match userinfo {
        Some(info) => format!(
            "{scheme}://{}:***@{host_port}",
            info.split(':').next().unwrap_or("")
        ),
        None => format!("{scheme}://{host_port}"),
    };
    if scheme != "http" {
        return Err(format!(
            "proxy {display}: only http:// proxies are supported (the connection to the target is still TLS)"
        ));
    }
    let (host, port) =
        split_host_port(host_port, 80).map_err(|err| format!("proxy {display}: {err}"))?;
    if host.is_empty() {
        return Err(format!("proxy {display} has no host"));
    }
    let authorization = userinfo.map(|info| {
        let decoded = percent_decode(info);
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(decoded)
        ))
    });
    Ok(ProxyTarget {
        host,
        port,
        authorization,
        display,
        url: Secret::new(with_scheme.clone()),
    })
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = match bytes.get(index + 1..index + 3) {
            Some([high, low]) if bytes[index] == b'%' => hex_value(*high).zip(hex_value(*low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> ProxySettings {
        let env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxySettings::from_map(&env)
    }

    fn host_of(found: Result<Option<ProxyTarget>, String>) -> Option<String> {
        found.unwrap().map(|p| format!("{}:{}", p.host, p.port))
    }

    #[test]
    fn scheme_picks_the_variable() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://secure:3128"),
            ("http_proxy", "plain:8080"),
        ]);
        assert_eq!(
            host_of(s.proxy_for_url("wss://api.example.com/x")),
            Some("secure:3128".into())
        );
        assert_eq!(
            host_of(s.proxy_for_url("https://api.example.com")),
            Some("secure:3128".into())
        );
        assert_eq!(
            host_of(s.proxy_for_url("http://api.example.com")),
            Some("plain:8080".into())
        );
        let all = settings(&[("ALL_PROXY", "http://every:1")]);
        assert_eq!(
            host_of(all.proxy_for_url("ws://x.test")),
            Some("every:1".into())
        );
        assert_eq!(host_of(settings(&[]).proxy_for_url("https://x.test")), None);
    }

    #[test]
    fn lower_case_wins() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
        ]);
        assert_eq!(
            host_of(s.proxy_for_url("https://x.test")),
            Some("lower:2".into())
        );
    }

    #[test]
    fn no_proxy_rules() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://p:3128"),
            (
                "NO_PROXY",
                "internal.example, .corp.test,*.lab.test, only.test:8443, 10.0.0.0/8, 127.0.0.1, [::1]",
            ),
        ]);
        let direct = |url: &str| host_of(s.proxy_for_url(url)).is_none();
        assert!(direct("https://internal.example/x"));
        assert!(direct("https://a.internal.example/x"));
        assert!(!direct("https://notinternal.example/x"));
        assert!(direct("https://corp.test"));
        assert!(direct("https://x.corp.test"));
        assert!(direct("https://y.lab.test"));
        assert!(direct("https://only.test:8443"));
        assert!(!direct("https://only.test"));
        assert!(direct("https://10.2.3.4"));
        assert!(!direct("https://11.2.3.4"));
        assert!(direct("https://127.0.0.1:9000"));
        assert!(direct("https://[::1]:9000"));
        let everything = settings(&[("HTTPS_PROXY", "http://p:3128"), ("no_proxy", "*")]);
        assert!(host_of(everything.proxy_for_url("https://x.test")).is_none());
    }

    #[test]
    fn credentials_are_hidden_and_encoded() {
        let s = settings(&[("HTTPS_PROXY", "http://alice:p%40ss@proxy.test:3128")]);
        let proxy = s.proxy_for_url("https://x.test").unwrap().unwrap();
        assert_eq!(proxy.display, "http://alice:***@proxy.test:3128");
        assert_eq!(format!("{proxy:?}"), "http://alice:***@proxy.test:3128");
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:p@ss");
        assert_eq!(
            proxy.authorization.unwrap().expose(),
            format!("Basic {expected}")
        );
    }

    #[test]
    fn unsupported_proxy_scheme_is_an_error() {
        let s = settings(&[("HTTPS_PROXY", "socks5://p:1080")]);
        let err = s.proxy_for_url("https://x.test").unwrap_err();
        assert!(err.contains("only http://"), "{err}");
    }
}
