//! Requests and replies of the API listener, and their routing to the OAuth,
//! REST and control handlers. `http1` reads and writes them on the wire.

use std::collections::BTreeMap;

use log::debug;
use serde_json::{Value, json};

use crate::requests::RecordedRequest;
use crate::state::Sim;
use crate::{control, oauth, rest};

const REST_PREFIX: &str = "/api/v2/videoconferences/";

/// A request read in full, with header names in lower case.
pub struct Exchange {
    pub method: String,
    /// Path and query exactly as requested.
    pub url: String,
    /// Path without the query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The status, headers and body to send back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Exchange {
    /// Returns the first header with this lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn record(&self, status: u16) -> RecordedRequest {
        RecordedRequest {
            method: self.method.clone(),
            path: self.url.clone(),
            headers: header_map(&self.headers),
            body: String::from_utf8_lossy(&self.body).into_owned(),
            status,
        }
    }
}

impl Reply {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".to_string(), "application/json".to_string())],
            body: body.to_string().into_bytes(),
        }
    }

    /// Builds a JSON error reply: `{"error": code, "message": message}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(status, &json!({"error": code, "message": message}))
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers.extend(headers);
        self
    }
}

/// Routes one request, logs it and records it for `GET /_sim/requests`.
/// Requests to the control API itself are not recorded.
pub fn respond(sim: &Sim, exchange: &Exchange) -> Reply {
    let reply = route(sim, exchange);
    debug!("{} {} -> {}", exchange.method, exchange.path, reply.status);
    if !exchange.path.starts_with("/_sim/") {
        sim.requests.record(exchange.record(reply.status));
    }
    reply
}

fn route(sim: &Sim, exchange: &Exchange) -> Reply {
    let path = exchange.path.as_str();
    if path == "/oauth/token" {
        return match exchange.method.as_str() {
            "POST" => oauth::token(sim, exchange),
            _ => method_not_allowed("POST"),
        };
    }
    if let Some(raw_id) = path.strip_prefix(REST_PREFIX) {
        return match exchange.method.as_str() {
            "GET" => rest::get(sim, exchange, raw_id),
            "PUT" => rest::put(sim, exchange, raw_id),
            _ => method_not_allowed("GET, PUT"),
        };
    }
    if path.starts_with("/_sim/") {
        return control::handle(sim, exchange);
    }
    Reply::error(404, "not_found", &format!("no resource at {path}"))
}

pub fn method_not_allowed(allowed: &str) -> Reply {
    Reply::error(
        405,
        "method_not_allowed",
        &format!("allowed methods: {allowed}"),
    )
    .with_header("Allow", allowed)
}

/// Collects headers into a map, joining repeated names with ", ".
pub fn header_map<'a>(
    headers: impl IntoIterator<Item = &'a (String, String)>,
) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.clone())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    map
}

/// Decodes `%XX` escapes. With `plus_is_space`, a `+` becomes a space (form encoding).
/// Fails on a broken escape or on bytes that are not UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = bytes.get(index + 1..index + 3).unwrap_or_default();
                let value = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| format!("invalid percent escape in '{text}'"))?;
                decoded.push(value);
                index += 3;
            }
            b'+' if plus_is_space => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| format!("'{text}' does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes() {
        assert_eq!(percent_decode("a%2Fb", false).unwrap(), "a/b");
        assert_eq!(percent_decode("a+b", true).unwrap(), "a b");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
    }

    #[test]
    fn rejects_broken_escapes() {
        assert!(percent_decode("a%2", false).is_err());
        assert!(percent_decode("a%zz", false).is_err());
        assert!(percent_decode("%ff", false).is_err());
    }

    #[test]
    fn joins_repeated_headers() {
        let headers = [
            ("a".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
        ];
        assert_eq!(header_map(&headers)["a"], "1, 2");
    }
}
