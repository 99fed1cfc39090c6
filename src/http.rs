//! The shared HTTP client (ureq) for OAuth, REST and the calendar webhook:
//! timeouts everywhere, no redirects, status codes as values, proxies from
//! the environment and the agent's trust roots.

use std::time::Duration;

use ureq::Agent as HttpAgent;
use ureq::middleware::{Middleware, MiddlewareNext};
use ureq::tls::{TlsConfig, TlsProvider};

use crate::proxy::ProxyTarget;
use crate::tls::TrustRoots;

/// The User-Agent of every request and of the WebSocket handshake.
pub const USER_AGENT: &str = concat!("genesys-video-agent/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// The whole call, from connect to the last byte of the reply.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(15),
        }
    }
}

/// Builds a client. Redirects are not followed: a redirect from the API
/// would carry the bearer token to another place, and the API never sends one.
pub fn build_client(
    roots: &TrustRoots,
    timeouts: Timeouts,
    proxy: Option<&ProxyTarget>,
) -> Result<HttpAgent, String> {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(roots.ureq_roots())
        .build();
    let display = proxy.map(|proxy| proxy.display.clone());
    let proxy = proxy.map(ProxyTarget::to_ureq).transpose()?;
    let mut config = HttpAgent::config_builder()
        .tls_config(tls)
        .timeout_connect(Some(timeouts.connect))
        .timeout_global(Some(timeouts.total))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(USER_AGENT)
        .proxy(proxy)
        .max_idle_connections_per_host(16);
    if let Some(display) = display {
        config = config.middleware(NameProxyInErrors { display });
    }
    Ok(HttpAgent::with_parts(
        config.build(),
        ureq::unversioned::transport::DefaultConnector::default(),
        crate::resolver::CachingResolver::default(),
    ))
}

/// Adds the proxy (without its password) to ureq's CONNECT failures, which
/// only carry the proxy's status, so the operator sees which proxy rejected
/// the tunnel.
struct NameProxyInErrors {
    display: String,
}

impl Middleware for NameProxyInErrors {
    fn handle(
        &self,
        request: ureq::http::Request<ureq::SendBody>,
        next: MiddlewareNext,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        next.handle(request).map_err(|err| match err {
            ureq::Error::ConnectProxyFailed(reason) => {
                ureq::Error::ConnectProxyFailed(format!("{reason} (proxy {})", self.display))
            }
            other => other,
        })
    }
}

/// Reads at most `limit` bytes of a reply body as lossy UTF-8; a body that
/// cannot be read gives an empty string (it only feeds messages).
pub fn read_body_excerpt(response: &mut ureq::http::Response<ureq::Body>, limit: u64) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(limit)
        .read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Describes a transport error for a message, without any URL credentials.
pub fn describe_error(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Timeout(which) => format!("timed out ({which})"),
        ureq::Error::Io(io) => format!("i/o error: {io}"),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::ConnectProxyFailed(reason) => format!("CONNECT tunnel failed: {reason}"),
        ureq::Error::NativeTls(_) | ureq::Error::Tls(_) => {
            format!("{err} (for a private CA, pass its certificate with --ca-file)")
        }
        other => other.to_string(),
    }
}

/// Builds one client per target URL, each with the proxy the environment
/// names for that URL.
#[derive(Clone)]
pub struct ClientFactory {
    pub roots: TrustRoots,
    pub proxies: crate::proxy::ProxySettings,
    pub timeouts: Timeouts,
}

impl ClientFactory {
    pub fn client_for(&self, url: &str) -> Result<HttpAgent, String> {
        let proxy = self.proxies.proxy_for_url(url)?;
        if let Some(proxy) = &proxy {
            log::info!(
                "requests to {} go through proxy {}",
                crate::event::excerpt(url, 200),
                proxy.display
            );
        }
        build_client(&self.roots, self.timeouts, proxy.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_point_at_ca_file() {
        let message = describe_error(&ureq::Error::Tls("certificate verify failed"));
        assert!(message.contains("certificate verify failed"), "{message}");
        assert!(message.contains("--ca-file"), "{message}");
    }

    #[test]
    fn proxy_failures_keep_their_reason() {
        let err = ureq::Error::ConnectProxyFailed("proxy server responded 403/403".into());
        assert_eq!(
            describe_error(&err),
            "CONNECT tunnel failed: proxy server responded 403/403"
        );
    }
}
