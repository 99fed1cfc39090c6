//! The OAuth2 client-credentials token: cached, refreshed before it expires,
//! fetched by one thread at a time while the others wait for its result.

use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::Value;

use crate::audit::{Audit, AuditEvent};
use crate::http;
use crate::secret::Secret;

/// Lifetime assumed when the reply has no `expires_in`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);
/// Refresh this long before expiry, or at half the lifetime for short tokens.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
const SHORT_LIFETIME: Duration = Duration::from_secs(120);
/// Bytes of an error reply kept for messages.
const ERROR_BODY_LIMIT: u64 = 1024;

#[derive(Debug, Clone)]
pub enum AuthError {
    /// The server rejected the credentials (401, or 400 `invalid_client`):
    /// waiting will not fix it.
    Rejected { status: u16, error: String },
    /// The server replied with another failure status.
    Status { status: u16, body: String },
    /// The request did not complete (DNS, connect, TLS, timeout).
    Transport(String),
    /// The reply could not be understood.
    BadReply(String),
}

impl AuthError {
    /// Tells whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, AuthError::Rejected { .. })
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Rejected { status, error } => write!(
                f,
                "token endpoint rejected the client credentials (HTTP {status}, {error}): check GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET"
            ),
            AuthError::Status { status, body } => {
                write!(f, "token endpoint answered HTTP {status}: {body}")
            }
            AuthError::Transport(reason) => write!(f, "token request failed: {reason}"),
            AuthError::BadReply(reason) => write!(f, "token reply is invalid: {reason}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// A token and the times that govern its use.
#[derive(Clone)]
struct CachedToken {
    token: Secret,
    expires_at: Instant,
    refresh_at: Instant,
}

/// Fetches and caches the access token.
pub struct TokenSource {
    http: ureq::Agent,
    token_url: String,
    basic_auth: Secret,
    cached: Mutex<Option<CachedToken>>,
    /// Held while a refresh runs, so only one request goes to the token endpoint.
    refreshing: Mutex<()>,
    audit: Audit,
    refreshes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("basic_auth", &self.basic_auth)
            .field("has_token", &self.cached.lock().is_some())
            .finish()
    }
}

impl TokenSource {
    pub fn new(
        http: ureq::Agent,
        login_base: &str,
        client_id: &str,
        secret: &Secret,
        audit: Audit,
    ) -> Self {
        let pair = format!("{client_id}:{}", secret.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        Self {
            http,
            token_url: format!("{login_base}/oauth/token"),
            basic_auth: Secret::new(format!("Basic {encoded}")),
            cached: Mutex::new(None),
            refreshing: Mutex::new(()),
            audit,
            refreshes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Returns a token that is not due for refresh, fetching one if needed.
    /// When a refresh fails but the cached token has not expired yet, that
    /// token is still returned: no request ever leaves with an expired token.
    pub fn token(&self) -> Result<Secret, AuthError> {
        if let Some(token) = self.fresh(Instant::now()) {
            return Ok(token);
        }

        let _guard = self.refreshing.lock();
        if let Some(token) = self.fresh(Instant::now()) {
            return Ok(token);
        }
        match self.fetch() {
            Ok(cached) => {
                let token = cached.token.clone();
                *self.cached.lock() = Some(cached);
                Ok(token)
            }
            Err(err) => self.unexpired(Instant::now()).ok_or(err),
        }
    }

    /// Drops `token` from the cache after the API returned 401 for it, so the
    /// next call fetches a new one. A token already replaced is left alone.
    pub fn invalidate(&self, token: &Secret) {
        let mut cached = self.cached.lock();
        if cached.as_ref().is_some_and(|c| &c.token == token) {
            *cached = None;
        }
    }

    pub fn has_token(&self) -> bool {
        self.unexpired(Instant::now()).is_some()
    }

    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fresh(&self, now: Instant) -> Option<Secret> {
        let cached = self.cached.lock();
        cached
            .as_ref()
            .filter(|c| now < c.refresh_at)
            .map(|c| c.token.clone())
    }

    fn unexpired(&self, now: Instant) -> Option<Secret> {
        let cached = self.cached.lock();
        cached
            .as_ref()
            .filter(|c| now < c.expires_at)
            .map(|c| c.token.clone())
    }

    fn fetch(&self) -> Result<CachedToken, AuthError> {
        let requested_at = Instant::now();
        let mut response = self
            .http
            .post(&self.token_url)
            .header("Authorization", self.basic_auth.expose())
            .header("Accept", "application/json")
            .content_type("application/x-www-form-urlencoded")
            .send("grant_type=client_credentials")
            .map_err(|err| AuthError::Transport(http::describe_error(&err)))?;

        let status = response.status().as_u16();
        let body = http::read_body_excerpt(&mut response, 64 * 1024);
        if status != 200 {
            return Err(classify_failure(status, &body));
        }
        let (token, lifetime) = parse_token_reply(&body)?;
        let cached = CachedToken {
            token,
            expires_at: requested_at + lifetime,
            refresh_at: requested_at + lifetime.saturating_sub(refresh_margin(lifetime)),
        };
        self.refreshes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        log::info!("fetched an access token valid for {}s", lifetime.as_secs());
        self.audit.record(
            AuditEvent::TokenRefreshed,
            serde_json::json!({"expiresInSeconds": lifetime.as_secs()}),
        );
        Ok(cached)
    }
}

/// Returns how long before expiry the token is refreshed.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    if lifetime < SHORT_LIFETIME {
        lifetime / 2
    } else {
        REFRESH_MARGIN
    }
}

fn classify_failure(status: u16, body: &str) -> AuthError {
    let error = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let rejected = status == 401 || (status == 400 && error == "invalid_client");
    if rejected {
        let error = if error.is_empty() {
            "no error code".to_owned()
        } else {
            crate::event::excerpt(&error, 64)
        };
        AuthError::Rejected { status, error }
    } else {
        AuthError::Status {
            status,
            body: crate::event::excerpt(body, ERROR_BODY_LIMIT as usize),
        }
    }
}

/// Reads `access_token` and `expires_in` (a number, a numeric string, or
/// missing for a day) from a token reply.
pub fn parse_token_reply(body: &str) -> Result<(Secret, Duration), AuthError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|err| AuthError::BadReply(format!("not JSON: {err}")))?;
    let token = match value.get("access_token") {
        Some(Value::String(token)) if !token.is_empty() => Secret::new(token.clone()),
        _ => return Err(AuthError::BadReply("missing access_token".to_owned())),
    };
    let lifetime = parse_expires_in(value.get("expires_in"))?;
    Ok((token, lifetime))
}

/// Parses `expires_in`: seconds as a JSON number or numeric string; absent
/// or null means [`DEFAULT_LIFETIME`]. Zero, negative or non-numeric values
/// are errors, since such a token could not be used.
pub fn parse_expires_in(value: Option<&Value>) -> Result<Duration, AuthError> {
    let seconds = match value {
        None | Some(Value::Null) => return Ok(DEFAULT_LIFETIME),
        Some(Value::Number(number)) => number.as_f64(),
        Some(Value::String(text)) => text.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s >= 1.0 => {
            Ok(Duration::from_secs_f64(s.min(10.0 * 365.0 * 86_400.0)))
        }
        _ => Err(AuthError::BadReply(format!(
            "expires_in {} is not a positive number of seconds",
            crate::event::excerpt(&value.map(Value::to_string).unwrap_or_default(), 40)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_in_accepts_numbers_strings_and_missing() {
        assert_eq!(
            parse_expires_in(Some(&json!(3600))).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_expires_in(Some(&json!("3600"))).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_expires_in(Some(&json!(" 5 "))).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            parse_expires_in(Some(&json!(2.5))).unwrap(),
            Duration::from_secs_f64(2.5)
        );
        assert_eq!(parse_expires_in(None).unwrap(), DEFAULT_LIFETIME);
        assert_eq!(
            parse_expires_in(Some(&Value::Null)).unwrap(),
            DEFAULT_LIFETIME
        );
        for bad in [
            json!(0),
            json!(-5),
            json!("soon"),
            json!(true),
            json!([1]),
            json!("NaN"),
            json!("inf"),
        ] {
            assert!(parse_expires_in(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn refresh_margin_halves_short_lifetimes() {
        assert_eq!(refresh_margin(Duration::from_secs(3600)), REFRESH_MARGIN);
        assert_eq!(refresh_margin(Duration::from_secs(120)), REFRESH_MARGIN);
        assert_eq!(
            refresh_margin(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn failures_are_classified() {
        assert!(matches!(
            classify_failure(401, ""),
            AuthError::Rejected { status: 401, .. }
        ));
        assert!(matches!(
            classify_failure(400, r#"{"error":"invalid_client"}"#),
            AuthError::Rejected { status: 400, .. }
        ));
        assert!(matches!(
            classify_failure(400, r#"{"error":"other"}"#),
            AuthError::Status { .. }
        ));
        assert!(classify_failure(503, "").is_transient());
    }

    #[test]
    fn debug_hides_credentials() {
        let (audit, _entries) = Audit::capture();
        let http: ureq::Agent = ureq::Agent::config_builder().build().into();
        let source = TokenSource::new(
            http,
            "http://127.0.0.1:9",
            "id",
            &Secret::new("s3cr3t-value"),
            audit,
        );
        let shown = format!("{source:?}");
        assert!(!shown.contains("s3cr3t-value"));
        assert!(
            !shown.contains(&base64::engine::general_purpose::STANDARD.encode("id:s3cr3t-value"))
        );
    }
}
