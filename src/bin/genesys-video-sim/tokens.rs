//! Issued access tokens and their expiry.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::rng::SplitMix64;

/// Expired tokens are swept when the store grows past this many.
const SWEEP_THRESHOLD: usize = 1024;

pub struct TokenStore {
    inner: Mutex<Inner>,
}

struct Inner {
    expiry_by_token: HashMap<String, Instant>,
    rng: SplitMix64,
}

impl TokenStore {
    /// Creates an empty store. Tokens mix the seed with the start time, so
    /// two runs with the same seed never issue the same token.
    pub fn new(seed: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        Self {
            inner: Mutex::new(Inner {
                expiry_by_token: HashMap::new(),
                rng: SplitMix64::new(seed ^ nanos),
            }),
        }
    }

    /// Issues a token that is valid for `lifetime`.
    pub fn issue(&self, lifetime: Duration) -> String {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let token = format!(
            "simtok-{:016x}{:016x}",
            inner.rng.next_u64(),
            inner.rng.next_u64()
        );
        if inner.expiry_by_token.len() >= SWEEP_THRESHOLD {
            inner.expiry_by_token.retain(|_, expiry| *expiry > now);
        }
        inner.expiry_by_token.insert(token.clone(), now + lifetime);
        token
    }

    /// Returns true when the token was issued here, is not revoked and has not expired.
    pub fn is_valid(&self, token: &str) -> bool {
        let now = Instant::now();
        self.inner
            .lock()
            .expiry_by_token
            .get(token)
            .is_some_and(|expiry| *expiry > now)
    }

    pub fn revoke(&self, token: &str) {
        self.inner.lock().expiry_by_token.remove(token);
    }

    /// Revokes every token and returns how many were still valid.
    pub fn revoke_all(&self) -> usize {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let valid = inner.expiry_by_token.values().filter(|e| **e > now).count();
        inner.expiry_by_token.clear();
        valid
    }
}

/// Returns the token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_is_valid() {
        let store = TokenStore::new(1);
        let token = store.issue(Duration::from_secs(60));
        assert!(token.starts_with("simtok-"));
        assert!(store.is_valid(&token));
        assert!(!store.is_valid("simtok-unknown"));
    }

    #[test]
    fn token_expires() {
        let store = TokenStore::new(1);
        let token = store.issue(Duration::ZERO);
        assert!(!store.is_valid(&token));
    }

    #[test]
    fn revoked_token_is_invalid() {
        let store = TokenStore::new(1);
        let token = store.issue(Duration::from_secs(60));
        store.revoke(&token);
        assert!(!store.is_valid(&token));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(Some("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("Bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(None), None);
    }
}
