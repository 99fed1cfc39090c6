//! Calls to the video conference REST API and the classification of their
//! replies into the outcomes the workers act on.

use std::time::{Duration, Instant, SystemTime};

use crate::backoff::{self, RateBudget};
use crate::event::SessionState;
use crate::http;
use crate::secret::Secret;

/// Bytes of an error reply body kept in an `UPDATE_FAILED` entry.
pub const ERROR_BODY_LIMIT: u64 = 1024;

/// The outcome of a PUT.
#[derive(Debug)]
pub enum PutOutcome {
    Applied,
    Conflict,
    RateLimited {
        retry_after: Option<Duration>,
    },
    Unauthorized,
    /// 500, 502, 503 or 504.
    ServerError {
        status: u16,
    },
    Transport(String),
    /// 403, 404 or another status the agent does not retry.
    Rejected {
        status: u16,
        body: String,
    },
}

/// One reply: its outcome and the rate budget its headers reported.
#[derive(Debug)]
pub struct PutReply {
    pub outcome: PutOutcome,
    pub budget: Option<RateBudget>,
}

/// The outcome of a GET of the conference.
#[derive(Debug)]
pub enum GetOutcome {
    Version(u64),
    Unauthorized,
    Failed(String),
}

pub struct RestClient {
    http: ureq::Agent,
    conferences_url: String,
}

impl RestClient {
    pub fn new(http: ureq::Agent, api_base: &str) -> Self {
        Self {
            http,
            conferences_url: format!("{api_base}/api/v2/videoconferences/"),
        }
    }

    /// Returns the URL of one conference. The session id is percent-encoded
    /// so it can never change the path, even though validation already
    /// limits it to unreserved characters.
    pub fn conference_url(&self, session_id: &str) -> String {
        let mut url = String::with_capacity(self.conferences_url.len() + session_id.len());
        url.push_str(&self.conferences_url);
        percent_encode_segment(session_id, &mut url);
        url
    }

    /// Sends the sequence-checked PUT for `state`; `body` is a reusable
    /// buffer. `deadline` shortens the call's timeout while the agent drains.
    pub fn put_state(
        &self,
        state: &SessionState,
        token: &Secret,
        body: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> PutReply {
        state.write_put_body(body);
        let bearer = format!("Bearer {}", token.expose());
        let mut request = self.http.put(self.conference_url(&state.session_id));
        if let Some(deadline) = deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100));
            request = request.config().timeout_global(Some(left)).build();
        }
        let result = request
            .header("Authorization", &bearer)
            .header("Content-Type", "application/json")
            .header("If-Match", format!("seq={}", state.sequence))
            .header("X-Genesys-Client", http::USER_AGENT)
            .send(&body[..]);

        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                return PutReply {
                    outcome: PutOutcome::Transport(http::describe_error(&err)),
                    budget: None,
                };
            }
        };
        let budget = read_budget(response.headers());
        let status = response.status().as_u16();
        let outcome = match status {
            200 | 204 => PutOutcome::Applied,
            409 => PutOutcome::Conflict,
            429 => PutOutcome::RateLimited {
                retry_after: header_str(response.headers(), "retry-after")
                    .and_then(|value| backoff::parse_retry_after(value, SystemTime::now())),
            },
            401 => PutOutcome::Unauthorized,
            500 | 502 | 503 | 504 => PutOutcome::ServerError { status },
            _ => PutOutcome::Rejected {
                status,
                body: http::read_body_excerpt(&mut response, ERROR_BODY_LIMIT),
            },
        };
        // Reading the rest of the body lets ureq put the connection back in its pool.
        drain_body(&mut response);
        PutReply { outcome, budget }
    }

    /// Reads the version the gateway holds for a session.
    pub fn get_version(&self, session_id: &str, token: &Secret) -> GetOutcome {
        let bearer = format!("Bearer {}", token.expose());
        let result = self
            .http
            .get(self.conference_url(session_id))
            .header("Authorization", &bearer)
            .header("Accept", "application/json")
            .header("X-Genesys-Client", http::USER_AGENT)
            .call();
        let mut response = match result {
            Ok(response) => response,
            Err(err) => return GetOutcome::Failed(http::describe_error(&err)),
        };
        let status = response.status().as_u16();
        let body = http::read_body_excerpt(&mut response, 256 * 1024);
        match status {
            200 => parse_version(&body),
            401 => GetOutcome::Unauthorized,
            _ => GetOutcome::Failed(format!(
                "GET answered HTTP {status}: {}",
                crate::event::excerpt(&body, 200)
            )),
        }
    }
}

fn parse_version(body: &str) -> GetOutcome {
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(err) => return GetOutcome::Failed(format!("GET reply is not JSON: {err}")),
    };
    match value
        .get("sequenceNumber")
        .and_then(serde_json::Value::as_u64)
    {
        Some(version) => GetOutcome::Version(version),
        None => GetOutcome::Version(0),
    }
}

fn drain_body(response: &mut ureq::http::Response<ureq::Body>) {
    // A small stack buffer: std::io::copy would zero an 8 KiB buffer on
    // every call, which callgrind showed as 7 % of a flood's instructions.
    let mut reader = response.body_mut().as_reader();
    let mut buffer = [0u8; 512];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match std::io::Read::read(&mut reader, &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => left = left.saturating_sub(read),
        }
    }
}

fn header_str<'a>(headers: &'a ureq::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn header_u64(headers: &ureq::http::HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|value| value.trim().parse().ok())
}

/// Reads the `inin-ratelimit-*` headers, when all three are present and numeric.
fn read_budget(headers: &ureq::http::HeaderMap) -> Option<RateBudget> {
    Some(RateBudget {
        count: header_u64(headers, "inin-ratelimit-count")?,
        allowed: header_u64(headers, "inin-ratelimit-allowed")?,
        reset: Duration::from_secs(header_u64(headers, "inin-ratelimit-reset")?.min(3600)),
    })
}

/// Appends `segment` to `out`, percent-encoding every byte outside the
/// unreserved set of RFC 3986 (section 2.3).
pub fn percent_encode_segment(segment: &str, out: &mut String) {
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_cannot_change_path() {
        let http: ureq::Agent = ureq::Agent::config_builder().build().into();
        let client = RestClient::new(http, "https://api.example.test");
        assert_eq!(
            client.conference_url("abc-1.2_3"),
            "https://api.example.test/api/v2/videoconferences/abc-1.2_3"
        );
        assert_eq!(
            client.conference_url("../x?y#z/%"),
            "https://api.example.test/api/v2/videoconferences/..%2Fx%3Fy%23z%2F%25"
        );
    }

    #[test]
    fn version_parsing() {
        assert!(matches!(
            parse_version(r#"{"sequenceNumber":7}"#),
            GetOutcome::Version(7)
        ));
        assert!(matches!(parse_version(r#"{}"#), GetOutcome::Version(0)));
        assert!(matches!(parse_version("nope"), GetOutcome::Failed(_)));
    }
}
