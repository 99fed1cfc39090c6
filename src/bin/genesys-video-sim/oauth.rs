//! `POST /oauth/token`: the OAuth2 client credentials grant (RFC 6749 section 4.4).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use log::info;
use serde_json::{Map, Value, json};

use crate::faults::ExpiresInFormat;
use crate::http::{Exchange, Reply, percent_decode};
use crate::state::{Settings, Sim};
use crate::stats::Stats;

const FORM_TYPE: &str = "application/x-www-form-urlencoded";

pub fn token(sim: &Sim, exchange: &Exchange) -> Reply {
    let (failing, reject, lifetime, format) = {
        let mut faults = sim.faults.lock();
        let failing = faults.token_failures > 0;
        faults.token_failures = faults.token_failures.saturating_sub(1);
        let lifetime = faults.token_lifetime;
        (
            failing,
            faults.reject_credentials,
            lifetime,
            faults.expires_in_format,
        )
    };
    if failing {
        info!("token request rejected with an injected 503");
        let message = "injected token endpoint failure";
        return Reply::error(503, "temporarily_unavailable", message);
    }
    if reject || !credentials_match(&sim.settings, exchange.header("authorization")) {
        return invalid_client();
    }
    if let Err(reply) = check_grant(exchange) {
        return reply;
    }
    let access_token = sim.tokens.issue(Duration::from_secs(lifetime));
    Stats::add(&sim.stats.tokens_issued, 1);
    Reply::json(200, &token_body(access_token, lifetime, format))
}

fn token_body(access_token: String, lifetime: u64, format: ExpiresInFormat) -> Value {
    let mut body = Map::new();
    body.insert("access_token".to_string(), Value::from(access_token));
    body.insert("token_type".to_string(), Value::from("bearer"));
    match format {
        ExpiresInFormat::Number => body.insert("expires_in".to_string(), Value::from(lifetime)),
        ExpiresInFormat::String => {
            body.insert("expires_in".to_string(), Value::from(lifetime.to_string()))
        }
        ExpiresInFormat::Missing => None,
    };
    Value::Object(body)
}

fn invalid_client() -> Reply {
    let body = json!({
        "error": "invalid_client",
        "error_description": "client authentication failed",
    });
    Reply::json(401, &body).with_header("WWW-Authenticate", "Basic realm=\"genesys-video-sim\"")
}

/// Checks `Authorization: Basic base64(id:secret)` against the expected client.
fn credentials_match(settings: &Settings, authorization: Option<&str>) -> bool {
    let Some((scheme, encoded)) = authorization.and_then(|value| value.trim().split_once(' '))
    else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", settings.client_id, settings.client_secret);
    decoded == expected.as_bytes()
}

/// Checks the form body for `grant_type=client_credentials`.
fn check_grant(exchange: &Exchange) -> Result<(), Reply> {
    let content_type = exchange.header("content-type").unwrap_or_default();
    if !media_type_is(content_type, FORM_TYPE) {
        let message = format!("Content-Type must be {FORM_TYPE}, got '{content_type}'");
        return Err(Reply::error(400, "invalid_request", &message));
    }
    let body = String::from_utf8_lossy(&exchange.body);
    match form_value(&body, "grant_type") {
        Some(Ok(grant)) if grant == "client_credentials" => Ok(()),
        Some(Ok(grant)) => {
            let message = format!("grant_type '{grant}' is not supported; use client_credentials");
            Err(Reply::error(400, "unsupported_grant_type", &message))
        }
        Some(Err(message)) => Err(Reply::error(400, "invalid_request", &message)),
        None => {
            let message = "missing grant_type in the form body";
            Err(Reply::error(400, "invalid_request", message))
        }
    }
}

/// Returns true when a Content-Type value has this media type, parameters aside.
pub fn media_type_is(content_type: &str, expected: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default();
    media_type.trim().eq_ignore_ascii_case(expected)
}

/// Returns the decoded value of the first form field with this name.
fn form_value(body: &str, name: &str) -> Option<Result<String, String>> {
    body.split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| percent_decode(key, true).is_ok_and(|key| key == name))
        .map(|(_, value)| percent_decode(value, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            client_id: "id".to_string(),
            client_secret: "secret".to_string(),
            rate: 0.0,
            heartbeat_interval: Duration::ZERO,
            on_end: crate::options::OnEnd::Close,
        }
    }

    #[test]
    fn basic_credentials_match() {
        let header = format!("Basic {}", STANDARD.encode("id:secret"));
        assert!(credentials_match(&settings(), Some(&header)));
        let wrong = format!("Basic {}", STANDARD.encode("id:other"));
        assert!(!credentials_match(&settings(), Some(&wrong)));
        assert!(!credentials_match(&settings(), Some("Basic !!!")));
        assert!(!credentials_match(&settings(), None));
    }

    #[test]
    fn form_value_decodes() {
        let body = "scope=a+b&grant_type=client%5Fcredentials";
        assert_eq!(
            form_value(body, "grant_type"),
            Some(Ok("client_credentials".to_string()))
        );
        assert_eq!(form_value(body, "missing"), None);
    }

    #[test]
    fn expires_in_formats() {
        let number = token_body("t".to_string(), 60, ExpiresInFormat::Number);
        assert_eq!(number["expires_in"], 60);
        let string = token_body("t".to_string(), 60, ExpiresInFormat::String);
        assert_eq!(string["expires_in"], "60");
        let missing = token_body("t".to_string(), 60, ExpiresInFormat::Missing);
        assert!(missing.get("expires_in").is_none());
    }
}
