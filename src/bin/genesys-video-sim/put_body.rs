//! Validation of the PUT request: the `If-Match: seq=N` header and the JSON body.
//!
//! The body the gateway accepts:
//! `{"mediaConfig":{"maxBitrate":4000,"codec":"vp9","recording":{"action":"start","enabled":true}},
//!   "participants":[{"id":"u1","role":"presenter","bandwidth":1500}]}`
//! where `enabled` is false only for `stop`. Other fields are kept and ignored.

use serde_json::{Map, Value};

use crate::conferences::Update;

/// Maximum sequence number, 2^53 - 1: the largest integer that a double represents exactly.
const MAX_SEQUENCE: u64 = (1 << 53) - 1;
const CODECS: [&str; 3] = ["vp8", "vp9", "h264"];
const ACTIONS: [&str; 3] = ["start", "stop", "pause"];
const ROLES: [&str; 2] = ["presenter", "participant"];

/// Parses `seq=N` with 1 <= N <= 2^53 - 1.
pub fn parse_if_match(value: &str) -> Result<u64, String> {
    let invalid =
        || format!("invalid If-Match '{value}': expected seq=N with 1 <= N <= {MAX_SEQUENCE}");
    let digits = value.trim().strip_prefix("seq=").ok_or_else(invalid)?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    match digits.parse::<u64>() {
        Ok(sequence) if (1..=MAX_SEQUENCE).contains(&sequence) => Ok(sequence),
        _ => Err(invalid()),
    }
}

/// Parses and validates a PUT body. The error names the invalid field.
pub fn parse_body(body: &[u8]) -> Result<Update, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| format!("body is not valid JSON: {error}"))?;
    let Value::Object(object) = value else {
        return Err("body must be a JSON object".to_string());
    };
    let media = object_field(&object, "mediaConfig", "mediaConfig")?;
    let max_bitrate = whole_number(media, "maxBitrate", "mediaConfig.maxBitrate")?;
    if max_bitrate == 0 {
        return Err("mediaConfig.maxBitrate must be greater than 0".to_string());
    }
    let codec = one_of(media, "codec", "mediaConfig.codec", &CODECS)?;
    let directive = check_recording(media)?;
    let bandwidth = check_participants(&object)?;
    if bandwidth > max_bitrate {
        return Err(format!(
            "participants[].bandwidth sums to {bandwidth}, over mediaConfig.maxBitrate {max_bitrate}"
        ));
    }
    Ok(Update {
        body: object,
        codec,
        directive,
    })
}

/// Checks `mediaConfig.recording` and returns its action.
fn check_recording(media: &Map<String, Value>) -> Result<String, String> {
    let recording = object_field(media, "recording", "mediaConfig.recording")?;
    let action = one_of(
        recording,
        "action",
        "mediaConfig.recording.action",
        &ACTIONS,
    )?;
    let enabled = match recording.get("enabled") {
        Some(Value::Bool(enabled)) => *enabled,
        Some(other) => {
            return Err(format!(
                "mediaConfig.recording.enabled must be true or false, got {other}"
            ));
        }
        None => return Err("missing mediaConfig.recording.enabled".to_string()),
    };
    if enabled != (action != "stop") {
        return Err(format!(
            "mediaConfig.recording.enabled is {enabled} for action '{action}'; it is false only for stop"
        ));
    }
    Ok(action)
}

/// Checks `participants` and returns the sum of their bandwidth.
fn check_participants(object: &Map<String, Value>) -> Result<u64, String> {
    let participants = match object.get("participants") {
        Some(Value::Array(participants)) => participants,
        Some(other) => return Err(format!("participants must be an array, got {other}")),
        None => return Err("missing participants (send [] for none)".to_string()),
    };
    let mut ids = std::collections::HashSet::new();
    let mut total: u64 = 0;
    for (index, participant) in participants.iter().enumerate() {
        let path = format!("participants[{index}]");
        let Value::Object(participant) = participant else {
            return Err(format!("{path} must be an object"));
        };
        let id = non_empty_text(participant, "id", &format!("{path}.id"))?;
        if !ids.insert(id) {
            return Err(format!("{path}.id '{id}' appears twice"));
        }
        one_of(participant, "role", &format!("{path}.role"), &ROLES)?;
        let bandwidth = whole_number(participant, "bandwidth", &format!("{path}.bandwidth"))?;
        total = total.saturating_add(bandwidth);
    }
    Ok(total)
}

fn object_field<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, String> {
    match object.get(name) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(other) => Err(format!("{path} must be an object, got {other}")),
        None => Err(format!("missing {path}")),
    }
}

fn whole_number(object: &Map<String, Value>, name: &str, path: &str) -> Result<u64, String> {
    match object.get(name) {
        Some(value) => value
            .as_u64()
            .ok_or_else(|| format!("{path} must be a whole number >= 0, got {value}")),
        None => Err(format!("missing {path}")),
    }
}

fn non_empty_text<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a str, String> {
    match object.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(other) => Err(format!("{path} must be a non-empty string, got {other}")),
        None => Err(format!("missing {path}")),
    }
}

/// Reads a string field that must be one of `allowed`, exactly as listed (lower case).
fn one_of(
    object: &Map<String, Value>,
    name: &str,
    path: &str,
    allowed: &[&str],
) -> Result<String, String> {
    let text = non_empty_text(object, name, path)?;
    if allowed.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{path} must be one of {}, got '{text}'",
            allowed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"mediaConfig":{"maxBitrate":4000,"codec":"vp9",
        "recording":{"action":"start","enabled":true}},
        "participants":[{"id":"u1","role":"presenter","bandwidth":1500}]}"#;

    fn error_for(body: &str) -> String {
        match parse_body(body.as_bytes()) {
            Ok(_) => panic!("expected an error for {body}"),
            Err(message) => message,
        }
    }

    #[test]
    fn accepts_valid_body() {
        let update = parse_body(VALID.as_bytes()).unwrap();
        assert_eq!(update.codec, "vp9");
        assert_eq!(update.directive, "start");
    }

    #[test]
    fn names_the_invalid_field() {
        let cases = [
            (VALID.replace("vp9", "av1"), "mediaConfig.codec"),
            (VALID.replace("4000", "\"4000\""), "mediaConfig.maxBitrate"),
            (
                VALID.replace("\"enabled\":true", "\"enabled\":false"),
                "enabled",
            ),
            (VALID.replace("presenter", "host"), "participants[0].role"),
            (VALID.replace("1500", "4500"), "sums to 4500"),
            (VALID.replace("\"start\"", "\"record\""), "recording.action"),
            ("[]".to_string(), "object"),
            ("{".to_string(), "not valid JSON"),
        ];
        for (body, expected) in cases {
            let message = error_for(&body);
            assert!(message.contains(expected), "{message} lacks {expected}");
        }
    }

    #[test]
    fn stop_needs_enabled_false() {
        let body = VALID
            .replace("\"start\"", "\"stop\"")
            .replace("\"enabled\":true", "\"enabled\":false");
        assert_eq!(parse_body(body.as_bytes()).unwrap().directive, "stop");
    }

    #[test]
    fn if_match_parsing() {
        assert_eq!(parse_if_match("seq=12"), Ok(12));
        assert_eq!(
            parse_if_match(" seq=9007199254740991 "),
            Ok(9_007_199_254_740_991)
        );
        for bad in [
            "seq=0",
            "seq=",
            "seq=-1",
            "12",
            "\"seq=1\"",
            "seq=1.0",
            "seq=9007199254740992",
        ] {
            assert!(parse_if_match(bad).is_err(), "{bad} accepted");
        }
    }
}
