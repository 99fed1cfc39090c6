//! Fault injection settings, shared by the command line and `POST /_sim/control`.
//!
//! Every setting has one snake_case name. The command line spells it with
//! dashes (`--fail-429 2`), the control API as a JSON field (`{"fail_429":2}`).

use serde::Serialize;
use serde_json::{Map, Value};

/// Settings that change the simulator's replies. Counters such as `fail_429`
/// count down by one for each request they affect.
#[derive(Clone, Debug, Serialize)]
pub struct Faults {
    /// Lifetime of issued tokens, in seconds.
    pub token_lifetime: u64,
    /// Encoding of `expires_in`: `number`, `string` or `missing`.
    pub expires_in_format: ExpiresInFormat,
    /// Number of upcoming token requests that get 503.
    pub token_failures: u64,
    /// Reject every token request with 401 `invalid_client`.
    pub reject_credentials: bool,
    /// Delay before the reply to each REST GET or PUT, in milliseconds.
    pub put_latency: u64,
    /// Number of upcoming PUTs that get 429.
    pub fail_429: u64,
    /// `Retry-After` value sent verbatim with injected 429s. An empty value sends no header.
    pub retry_after: String,
    /// Number of upcoming PUTs that get `fail_status`.
    pub fail_5xx: u64,
    /// Status used by `fail_5xx`: 500, 502, 503 or 504.
    pub fail_status: u16,
    /// Number of upcoming PUTs that get 401 (their token is revoked too).
    pub fail_401: u64,
    /// Number of upcoming PUTs that get 403.
    pub fail_403: u64,
    /// Number of upcoming PUTs that get 404.
    pub fail_404: u64,
    /// Number of upcoming PUTs that lose a race against another writer.
    pub race_409: u64,
    /// Number of upcoming PUTs rejected by a lagging replica.
    pub lag_409: u64,
    /// REST requests allowed per window. 0 turns the budget and its headers off.
    pub rate_budget: u64,
    /// Length of the rate budget window, in seconds.
    pub rate_window: u64,
    /// Delay before the pong to each WebSocket ping, in milliseconds.
    pub pong_delay: u64,
    /// Event frames after which a stream connection is dropped, or 0 for never.
    pub drop_after: u64,
    /// Frames resent at the start of the connection that follows a drop.
    pub replay_overlap: u64,
    /// Event frames after which a stream connection goes silent, or 0 for never.
    pub half_open_after: u64,
    /// Reject the WebSocket handshake with 503.
    pub refuse_streams: bool,
}

/// Encoding of `expires_in` in token replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiresInFormat {
    Number,
    String,
    Missing,
}

/// Injected failure for one PUT, decided before the request is parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum PutFault {
    Unauthorized,
    Forbidden,
    NotFound,
    TooManyRequests { retry_after: String },
    ServerError { status: u16 },
}

/// Injected 409 for one PUT, decided once its `If-Match` version is known.
#[derive(Debug, PartialEq, Eq)]
pub enum ConflictFault {
    /// Another writer stores a newer version first.
    Race,
    /// A replica that stores an older version rejects the update.
    Lag,
}

/// Maximum `replay_overlap`, which is also the number of recent frames the feed keeps.
pub const MAX_REPLAY_OVERLAP: u64 = 1000;

/// Every setting name, in the order of the fields of [`Faults`].
const NAMES: [&str; 21] = [
    "token_lifetime",
    "expires_in_format",
    "token_failures",
    "reject_credentials",
    "put_latency",
    "fail_429",
    "retry_after",
    "fail_5xx",
    "fail_status",
    "fail_401",
    "fail_403",
    "fail_404",
    "race_409",
    "lag_409",
    "rate_budget",
    "rate_window",
    "pong_delay",
    "drop_after",
    "replay_overlap",
    "half_open_after",
    "refuse_streams",
];

/// Names of the settings that are switches (no value on the command line).
const SWITCHES: [&str; 2] = ["reject_credentials", "refuse_streams"];

impl Default for Faults {
    fn default() -> Self {
        Self {
            token_lifetime: 3600,
            expires_in_format: ExpiresInFormat::Number,
            token_failures: 0,
            reject_credentials: false,
            put_latency: 0,
            fail_429: 0,
            retry_after: "1".to_string(),
            fail_5xx: 0,
            fail_status: 503,
            fail_401: 0,
            fail_403: 0,
            fail_404: 0,
            race_409: 0,
            lag_409: 0,
            rate_budget: 0,
            rate_window: 60,
            pong_delay: 0,
            drop_after: 0,
            replay_overlap: 5,
            half_open_after: 0,
            refuse_streams: false,
        }
    }
}

impl Faults {
    /// Returns true when `name` is the snake_case name of a setting.
    pub fn is_known(name: &str) -> bool {
        NAMES.contains(&name)
    }

    /// Returns true when `name` is a setting that takes no value on the command line.
    pub fn is_switch(name: &str) -> bool {
        SWITCHES.contains(&name)
    }

    /// Applies every field of a control request, or none of them when one is invalid.
    pub fn apply_patch(&mut self, patch: &Map<String, Value>) -> Result<(), String> {
        let mut updated = self.clone();
        for (name, value) in patch {
            updated.set(name, value)?;
        }
        *self = updated;
        Ok(())
    }

    /// Sets one setting by its snake_case name.
    pub fn set(&mut self, name: &str, value: &Value) -> Result<(), String> {
        match name {
            "token_lifetime" => self.token_lifetime = count(name, value)?,
            "expires_in_format" => self.expires_in_format = expires_in_format(value)?,
            "token_failures" => self.token_failures = count(name, value)?,
            "reject_credentials" => self.reject_credentials = switch(name, value)?,
            "put_latency" => self.put_latency = count(name, value)?,
            "fail_429" => self.fail_429 = count(name, value)?,
            "retry_after" => self.retry_after = text(name, value)?,
            "fail_5xx" => self.fail_5xx = count(name, value)?,
            "fail_status" => self.fail_status = server_error_status(value)?,
            "fail_401" => self.fail_401 = count(name, value)?,
            "fail_403" => self.fail_403 = count(name, value)?,
            "fail_404" => self.fail_404 = count(name, value)?,
            "race_409" => self.race_409 = count(name, value)?,
            "lag_409" => self.lag_409 = count(name, value)?,
            "rate_budget" => self.rate_budget = count(name, value)?,
            "rate_window" => self.rate_window = rate_window(value)?,
            "pong_delay" => self.pong_delay = count(name, value)?,
            "drop_after" => self.drop_after = count(name, value)?,
            "replay_overlap" => self.replay_overlap = replay_overlap(value)?,
            "half_open_after" => self.half_open_after = count(name, value)?,
            "refuse_streams" => self.refuse_streams = switch(name, value)?,
            _ => return Err(format!("unknown setting `{name}`")),
        }
        Ok(())
    }

    /// Takes the injected failure for the next PUT, if any, counting it down.
    pub fn take_put_fault(&mut self) -> Option<PutFault> {
        if take_one(&mut self.fail_401) {
            return Some(PutFault::Unauthorized);
        }
        if take_one(&mut self.fail_403) {
            return Some(PutFault::Forbidden);
        }
        if take_one(&mut self.fail_404) {
            return Some(PutFault::NotFound);
        }
        if take_one(&mut self.fail_429) {
            let retry_after = self.retry_after.clone();
            return Some(PutFault::TooManyRequests { retry_after });
        }
        if take_one(&mut self.fail_5xx) {
            return Some(PutFault::ServerError {
                status: self.fail_status,
            });
        }
        None
    }

    /// Takes the injected 409 for the next well-formed PUT, if any, counting it down.
    pub fn take_conflict_fault(&mut self) -> Option<ConflictFault> {
        if take_one(&mut self.race_409) {
            return Some(ConflictFault::Race);
        }
        if take_one(&mut self.lag_409) {
            return Some(ConflictFault::Lag);
        }
        None
    }
}

/// Decrements a fault counter and returns true when it was above zero.
fn take_one(counter: &mut u64) -> bool {
    if *counter == 0 {
        return false;
    }
    *counter -= 1;
    true
}

/// Reads a whole number, given as a JSON number or a decimal string.
fn count(name: &str, value: &Value) -> Result<u64, String> {
    let parsed = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(digits) => digits.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("invalid `{name}`: expected a whole number >= 0, got {value}"))
}

fn switch(name: &str, value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(word) if word == "true" => Ok(true),
        Value::String(word) if word == "false" => Ok(false),
        _ => Err(format!(
            "invalid `{name}`: expected true or false, got {value}"
        )),
    }
}

fn text(name: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        _ => Err(format!("invalid `{name}`: expected a string, got {value}")),
    }
}

fn expires_in_format(value: &Value) -> Result<ExpiresInFormat, String> {
    match value.as_str() {
        Some("number") => Ok(ExpiresInFormat::Number),
        Some("string") => Ok(ExpiresInFormat::String),
        Some("missing") => Ok(ExpiresInFormat::Missing),
        _ => Err(format!(
            "invalid `expires_in_format`: expected number, string or missing, got {value}"
        )),
    }
}

fn server_error_status(value: &Value) -> Result<u16, String> {
    match count("fail_status", value)? {
        status @ (500 | 502 | 503 | 504) => Ok(status as u16),
        other => Err(format!(
            "invalid `fail_status`: expected 500, 502, 503 or 504, got {other}"
        )),
    }
}

fn rate_window(value: &Value) -> Result<u64, String> {
    match count("rate_window", value)? {
        0 => Err("invalid `rate_window`: expected at least 1 second, got 0".to_string()),
        seconds => Ok(seconds),
    }
}

fn replay_overlap(value: &Value) -> Result<u64, String> {
    match count("replay_overlap", value)? {
        frames if frames <= MAX_REPLAY_OVERLAP => Ok(frames),
        frames => Err(format!(
            "invalid `replay_overlap`: expected at most {MAX_REPLAY_OVERLAP} frames, got {frames}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_sets_fields() {
        let mut faults = Faults::default();
        let patch = json!({"pong_delay": 250, "fail_429": "2", "refuse_streams": true});
        faults.apply_patch(patch.as_object().unwrap()).unwrap();
        assert_eq!(faults.pong_delay, 250);
        assert_eq!(faults.fail_429, 2);
        assert!(faults.refuse_streams);
    }

    #[test]
    fn invalid_patch_changes_nothing() {
        let mut faults = Faults::default();
        let patch = json!({"fail_429": 2, "fail_status": 418});
        let error = faults.apply_patch(patch.as_object().unwrap()).unwrap_err();
        assert!(error.contains("fail_status"), "{error}");
        assert_eq!(faults.fail_429, 0);
    }

    #[test]
    fn every_name_is_settable() {
        let mut faults = Faults::default();
        for name in NAMES {
            let error = faults.set(name, &Value::Null).unwrap_err();
            assert!(!error.starts_with("unknown setting"), "{name}: {error}");
        }
    }

    #[test]
    fn unknown_setting_is_named() {
        let mut faults = Faults::default();
        let error = faults.set("fail_418", &json!(1)).unwrap_err();
        assert!(error.contains("fail_418"), "{error}");
    }

    #[test]
    fn put_faults_count_down() {
        let mut faults = Faults {
            fail_429: 1,
            fail_5xx: 1,
            ..Faults::default()
        };
        let retry_after = "1".to_string();
        assert_eq!(
            faults.take_put_fault(),
            Some(PutFault::TooManyRequests { retry_after })
        );
        assert_eq!(
            faults.take_put_fault(),
            Some(PutFault::ServerError { status: 503 })
        );
        assert_eq!(faults.take_put_fault(), None);
    }
}
