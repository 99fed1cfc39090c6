//! Name resolution for the HTTP clients. ureq 3.5 resolves the host on every
//! request, before it looks for a pooled connection, and with a timeout set
//! its default resolver starts a thread per lookup. This resolver returns IP
//! literals at once and reuses a name's addresses for a short time, so a PUT
//! on a kept-alive connection neither starts a thread nor queries DNS.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a name's addresses are reused. std exposes no DNS TTL; 30 s is
/// the JVM's default `networkaddress.cache.ttl`.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// Maximum addresses kept per name; ureq 3.5 holds at most 16.
const MAX_ADDRESSES: usize = 16;

#[derive(Debug, Default)]
pub struct CachingResolver {
    fallback: DefaultResolver,
    /// Addresses per `host:port`, with the time they were resolved.
    cache: Mutex<HashMap<String, (Instant, Vec<SocketAddr>)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(host), Some(port)) = (uri.host(), port_of(uri)) else {
            return self.fallback.resolve(uri, config, timeout);
        };
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(self.collect([SocketAddr::new(ip, port)]));
        }
        let key = format!("{host}:{port}");
        if let Some((resolved_at, addresses)) = self.cache.lock().get(&key)
            && resolved_at.elapsed() < CACHE_TTL
        {
            return Ok(self.collect(addresses.iter().copied()));
        }
        // The lookup runs outside the lock, within ureq's timeout.
        let addresses = self.fallback.resolve(uri, config, timeout)?;
        self.cache
            .lock()
            .insert(key, (Instant::now(), addresses.to_vec()));
        Ok(addresses)
    }
}

impl CachingResolver {
    fn collect(&self, addresses: impl IntoIterator<Item = SocketAddr>) -> ResolvedSocketAddrs {
        let mut resolved = self.empty();
        for address in addresses.into_iter().take(MAX_ADDRESSES) {
            resolved.push(address);
        }
        resolved
    }
}

fn port_of(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })
}
