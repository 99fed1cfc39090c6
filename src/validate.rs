//! The gateway's rules for a requested session state, as a pure function:
//! no I/O and no clock, so `run`, `validate` and the tests share it.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::GatewayProfile;
use crate::event::{Codec, Directive, Participant, Role, SessionState};

pub const SESSION_ID: &str = "session_id";
pub const SEQUENCE: &str = "sequence";
pub const PARTICIPANT_LIMIT: &str = "participant_limit";
pub const PARTICIPANT: &str = "participant";
pub const DUPLICATE_PARTICIPANT: &str = "duplicate_participant";
pub const MAX_BITRATE: &str = "max_bitrate";
pub const AGGREGATE_BITRATE: &str = "aggregate_bitrate";
pub const RECORDING_DIRECTIVE: &str = "recording_directive";
pub const CODEC: &str = "codec";

/// Every violation code, in the order the rules are checked.
pub const CODES: [&str; 9] = [
    SESSION_ID,
    SEQUENCE,
    PARTICIPANT_LIMIT,
    PARTICIPANT,
    DUPLICATE_PARTICIPANT,
    MAX_BITRATE,
    AGGREGATE_BITRATE,
    RECORDING_DIRECTIVE,
    CODEC,
];

pub const MAX_SESSION_ID_CHARS: usize = 128;
pub const MAX_PARTICIPANTS: usize = 50;
/// The largest integer a JSON number holds exactly (2^53 - 1).
pub const MAX_SEQUENCE: u64 = (1 << 53) - 1;
pub const DEFAULT_MAX_BITRATE_KBPS: u64 = 3000;

/// Participant entries reported one by one before the rest are summarized,
/// so a hostile frame with thousands of bad entries keeps its audit line short.
const MAX_PARTICIPANT_REPORTS: usize = 10;

/// Values quoted in messages are cut to this many bytes.
const MAX_QUOTED_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub code: &'static str,
    pub message: String,
}

fn violation(code: &'static str, message: impl Into<String>) -> Violation {
    Violation {
        code,
        message: message.into(),
    }
}

/// Checks an event's `data` against the gateway's limits and returns the
/// typed state, or every violation found (never just the first).
pub fn validate(data: &Value, profile: GatewayProfile) -> Result<SessionState, Vec<Violation>> {
    let mut violations = Vec::new();
    let Value::Object(object) = data else {
        let what = describe(data);
        violations.push(violation(
            SESSION_ID,
            format!("missing sessionId: data is {what}"),
        ));
        violations.push(violation(
            SEQUENCE,
            format!("missing sequenceNumber: data is {what}"),
        ));
        return Err(violations);
    };

    let session_id = check_session_id(object.get("sessionId"), &mut violations);
    let sequence = check_sequence(object.get("sequenceNumber"), &mut violations);
    let participants = check_participants(object.get("participants"), &mut violations);
    let media = check_object(
        object.get("mediaConfig"),
        MAX_BITRATE,
        "mediaConfig",
        &mut violations,
    );
    let max_bitrate = check_max_bitrate(media.get("maxBitrate"), profile, &mut violations);
    check_aggregate(&participants, max_bitrate, &mut violations);
    let recording = check_object(
        object.get("recording"),
        RECORDING_DIRECTIVE,
        "recording",
        &mut violations,
    );
    let directive = check_directive(recording.get("action"), &mut violations);
    let codec = check_codec(media.get("codec"), &mut violations);

    if !violations.is_empty() {
        return Err(violations);
    }
    match (session_id, sequence, max_bitrate, directive, codec) {
        (
            Some(session_id),
            Some(sequence),
            Some(max_bitrate_kbps),
            Some(directive),
            Some(codec),
        ) => Ok(SessionState {
            session_id,
            sequence,
            state: object
                .get("state")
                .and_then(Value::as_str)
                .map(str::to_owned),
            participants: participants.valid,
            directive,
            max_bitrate_kbps,
            codec,
        }),
        _ => Err(violations),
    }
}

/// Returns the object at `value`, an empty one when it is absent or null, or
/// records a violation when it has another type.
fn check_object<'a>(
    value: Option<&'a Value>,
    code: &'static str,
    field: &str,
    violations: &mut Vec<Violation>,
) -> &'a Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let empty = EMPTY.get_or_init(Map::new);
    match value {
        None | Some(Value::Null) => empty,
        Some(Value::Object(object)) => object,
        Some(other) => {
            violations.push(violation(
                code,
                format!("{field} must be an object, got {}", describe(other)),
            ));
            empty
        }
    }
}

fn check_session_id(value: Option<&Value>, violations: &mut Vec<Violation>) -> Option<String> {
    let id = match value {
        None | Some(Value::Null) => {
            violations.push(violation(SESSION_ID, "missing sessionId"));
            return None;
        }
        Some(Value::String(id)) => id,
        Some(other) => {
            violations.push(violation(
                SESSION_ID,
                format!("sessionId must be a string, got {}", describe(other)),
            ));
            return None;
        }
    };

    let problem = if id.is_empty() {
        Some("sessionId is empty".to_owned())
    } else if id.chars().count() > MAX_SESSION_ID_CHARS {
        Some(format!(
            "sessionId is longer than {MAX_SESSION_ID_CHARS} characters"
        ))
    } else if id.starts_with('.') {
        Some(format!("sessionId {} starts with '.'", quote(id)))
    } else {
        id.chars().find(|c| !is_session_id_char(*c)).map(|bad| {
            format!(
                "sessionId {} contains {:?}: only A-Z a-z 0-9 . _ - are allowed",
                quote(id),
                bad
            )
        })
    };

    match problem {
        Some(message) => {
            violations.push(violation(SESSION_ID, message));
            None
        }
        None => Some(id.clone()),
    }
}

/// Tells whether `c` may appear in a session id, which becomes a URL path segment.
pub fn is_session_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn check_sequence(value: Option<&Value>, violations: &mut Vec<Violation>) -> Option<u64> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        violations.push(violation(SEQUENCE, "missing sequenceNumber"));
        return None;
    };
    match whole_number(value) {
        Some(n) if (1..=MAX_SEQUENCE).contains(&n) => Some(n),
        _ => {
            violations.push(violation(
                SEQUENCE,
                format!(
                    "sequenceNumber {} must be a whole number from 1 to 2^53-1",
                    quote_value(value)
                ),
            ));
            None
        }
    }
}

/// Returns the value as an unsigned integer when it is a JSON number with no
/// fractional part (`4000.0` counts as whole).
fn whole_number(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    if let Some(n) = number.as_u64() {
        return Some(n);
    }
    let float = number.as_f64()?;
    // 2^64 is exactly representable; anything at or above it does not fit a u64.
    if float.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&float) {
        Some(float as u64)
    } else {
        None
    }
}

struct CheckedParticipants {
    valid: Vec<Participant>,
    /// Sum of the valid allocations, or None when an allocation was invalid.
    total_kbps: Option<u64>,
}

fn check_participants(
    value: Option<&Value>,
    violations: &mut Vec<Violation>,
) -> CheckedParticipants {
    let mut checked = CheckedParticipants {
        valid: Vec::new(),
        total_kbps: Some(0),
    };
    let entries = match value {
        None | Some(Value::Null) => return checked,
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            violations.push(violation(
                PARTICIPANT,
                format!("participants must be an array, got {}", describe(other)),
            ));
            checked.total_kbps = None;
            return checked;
        }
    };

    if entries.len() > MAX_PARTICIPANTS {
        violations.push(violation(
            PARTICIPANT_LIMIT,
            format!(
                "{} participants, at most {MAX_PARTICIPANTS} are allowed",
                entries.len()
            ),
        ));
    }

    let mut reported = 0;
    let mut unreported = 0;
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match check_participant(index, entry) {
            Ok(participant) => {
                if !seen.insert(participant.user_id.clone()) {
                    duplicates.push(participant.user_id.clone());
                }
                checked.total_kbps = checked
                    .total_kbps
                    .map(|sum| sum.saturating_add(participant.bitrate_kbps));
                checked.valid.push(participant);
            }
            Err(problems) => {
                checked.total_kbps = None;
                for message in problems {
                    if reported < MAX_PARTICIPANT_REPORTS {
                        violations.push(violation(PARTICIPANT, message));
                        reported += 1;
                    } else {
                        unreported += 1;
                    }
                }
            }
        }
    }
    if unreported > 0 {
        violations.push(violation(
            PARTICIPANT,
            format!("{unreported} more participant problems not listed"),
        ));
    }
    report_duplicates(&duplicates, violations);
    checked
}

fn report_duplicates(duplicates: &[String], violations: &mut Vec<Violation>) {
    for user_id in duplicates.iter().take(MAX_PARTICIPANT_REPORTS) {
        violations.push(violation(
            DUPLICATE_PARTICIPANT,
            format!("userId {} appears more than once", quote(user_id)),
        ));
    }
    if duplicates.len() > MAX_PARTICIPANT_REPORTS {
        let more = duplicates.len() - MAX_PARTICIPANT_REPORTS;
        violations.push(violation(
            DUPLICATE_PARTICIPANT,
            format!("{more} more duplicate userIds not listed"),
        ));
    }
}

fn check_participant(index: usize, entry: &Value) -> Result<Participant, Vec<String>> {
    let Value::Object(object) = entry else {
        return Err(vec![format!(
            "participants[{index}] must be an object, got {}",
            describe(entry)
        )]);
    };
    let mut problems = Vec::new();

    let user_id = match object.get("userId") {
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(Value::String(_)) => {
            problems.push(format!("participants[{index}].userId is empty"));
            None
        }
        None | Some(Value::Null) => {
            problems.push(format!("participants[{index}].userId is missing"));
            None
        }
        Some(other) => {
            problems.push(format!(
                "participants[{index}].userId must be a string, got {}",
                describe(other)
            ));
            None
        }
    };

    let role = match object.get("role").and_then(Value::as_str) {
        Some("presenter") => Some(Role::Presenter),
        Some("participant") => Some(Role::Participant),
        _ => {
            let shown = object.get("role").map_or("missing".to_owned(), quote_value);
            problems.push(format!(
                "participants[{index}].role {shown} must be \"presenter\" or \"participant\""
            ));
            None
        }
    };

    let bitrate = object.get("allocatedBitrateKbps").and_then(whole_number);
    if bitrate.is_none() {
        let shown = object
            .get("allocatedBitrateKbps")
            .map_or("missing".to_owned(), quote_value);
        problems.push(format!(
            "participants[{index}].allocatedBitrateKbps {shown} must be a whole number >= 0"
        ));
    }

    match (user_id, role, bitrate) {
        (Some(user_id), Some(role), Some(bitrate_kbps)) if problems.is_empty() => Ok(Participant {
            user_id,
            role,
            bitrate_kbps,
        }),
        _ => Err(problems),
    }
}

fn check_max_bitrate(
    value: Option<&Value>,
    profile: GatewayProfile,
    violations: &mut Vec<Violation>,
) -> Option<u64> {
    let ceiling = u64::from(profile.max_bitrate_kbps());
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Some(DEFAULT_MAX_BITRATE_KBPS.min(ceiling));
    };
    match whole_number(value) {
        Some(kbps) if kbps > 0 && kbps <= ceiling => Some(kbps),
        _ => {
            violations.push(violation(
                MAX_BITRATE,
                format!(
                    "maxBitrate {} must be a whole number above 0 and at most {ceiling} kbps for the {} profile",
                    quote_value(value),
                    profile.name()
                ),
            ));
            None
        }
    }
}

fn check_aggregate(
    participants: &CheckedParticipants,
    max_bitrate: Option<u64>,
    violations: &mut Vec<Violation>,
) {
    if let (Some(total), Some(max)) = (participants.total_kbps, max_bitrate)
        && total > max
    {
        violations.push(violation(
            AGGREGATE_BITRATE,
            format!("participant allocations sum to {total} kbps, above maxBitrate {max} kbps"),
        ));
    }
}

fn check_directive(value: Option<&Value>, violations: &mut Vec<Violation>) -> Option<Directive> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Some(Directive::Pause);
    };
    let directive = value.as_str().and_then(Directive::parse);
    if directive.is_none() {
        violations.push(violation(
            RECORDING_DIRECTIVE,
            format!(
                "recording.action {} must be \"start\", \"stop\" or \"pause\"",
                quote_value(value)
            ),
        ));
    }
    directive
}

fn check_codec(value: Option<&Value>, violations: &mut Vec<Violation>) -> Option<Codec> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Some(Codec::Vp8);
    };
    let codec = value.as_str().and_then(Codec::parse);
    if codec.is_none() {
        violations.push(violation(
            CODEC,
            format!("codec {} must be vp8, vp9 or h264", quote_value(value)),
        ));
    }
    codec
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Quotes untrusted text for a message: escaped and cut short.
fn quote(text: &str) -> String {
    format!("\"{}\"", crate::event::excerpt(text, MAX_QUOTED_BYTES))
}

fn quote_value(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text),
        Value::Array(_) | Value::Object(_) => describe(value).to_owned(),
        other => crate::event::excerpt(&other.to_string(), MAX_QUOTED_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid_data() -> Value {
        json!({
            "sessionId": "3f0c-abc_1.x",
            "state": "active",
            "sequenceNumber": 12,
            "participants": [
                {"userId": "u1", "role": "presenter", "allocatedBitrateKbps": 1500},
                {"userId": "u2", "role": "participant", "allocatedBitrateKbps": 1000}
            ],
            "recording": {"action": "start"},
            "mediaConfig": {"maxBitrate": 4000, "codec": "VP9"}
        })
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut data = valid_data();
        let mut target = &mut data;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        data
    }

    fn without(key: &str) -> Value {
        let mut data = valid_data();
        data.as_object_mut().unwrap().remove(key);
        data
    }

    fn codes(data: &Value, profile: GatewayProfile) -> Vec<&'static str> {
        match validate(data, profile) {
            Ok(_) => Vec::new(),
            Err(violations) => violations.iter().map(|v| v.code).collect(),
        }
    }

    fn participants(count: usize, each_kbps: u64) -> Value {
        let list: Vec<Value> = (0..count)
            .map(|i| json!({"userId": format!("u{i}"), "role": "participant", "allocatedBitrateKbps": each_kbps}))
            .collect();
        Value::Array(list)
    }

    #[test]
    fn valid_state_is_typed_with_defaults_applied() {
        let state = validate(&valid_data(), GatewayProfile::Hd).unwrap();
        assert_eq!(state.session_id, "3f0c-abc_1.x");
        assert_eq!(state.sequence, 12);
        assert_eq!(state.codec, Codec::Vp9);
        assert_eq!(state.directive, Directive::Start);
        assert_eq!(state.participants.len(), 2);

        let minimal = json!({"sessionId": "s", "sequenceNumber": 1});
        let state = validate(&minimal, GatewayProfile::Standard).unwrap();
        assert_eq!(state.max_bitrate_kbps, DEFAULT_MAX_BITRATE_KBPS);
        assert_eq!(state.codec, Codec::Vp8);
        assert_eq!(state.directive, Directive::Pause);
        assert!(state.participants.is_empty());
    }

    #[test]
    fn each_rule_reports_its_code() {
        let long_id = "a".repeat(129);
        let cases: Vec<(&str, Value, GatewayProfile, Vec<&str>)> = vec![
            (
                "missing session id",
                without("sessionId"),
                GatewayProfile::Hd,
                vec![SESSION_ID],
            ),
            (
                "numeric session id",
                with(&["sessionId"], json!(5)),
                GatewayProfile::Hd,
                vec![SESSION_ID],
            ),
            (
                "empty session id",
                with(&["sessionId"], json!("")),
                GatewayProfile::Hd,
                vec![SESSION_ID],
            ),
            (
                "long session id",
                with(&["sessionId"], json!(long_id)),
                GatewayProfile::Hd,
                vec![SESSION_ID],
            ),
            (
                "dot-dot session id",
                with(&["sessionId"], json!("..")),
                GatewayProfile::Hd,
                vec![SESSION_ID],
            ),
            (
                "slash in session id",
                with(&["sessionId"], json!("a/b")),
                GatewayProfile::Hd,
                vec![SESSION_ID],
            ),
            (
                "percent in session id",
                with(&["sessionId"], json!("a%2F")),
                GatewayProfile::Hd,
                vec![SESSION_ID],
            ),
            (
                "unicode session id",
                with(&["sessionId"], json!("caf\u{e9}")),
                GatewayProfile::Hd,
                vec![SESSION_ID],
            ),
            (
                "missing sequence",
                without("sequenceNumber"),
                GatewayProfile::Hd,
                vec![SEQUENCE],
            ),
            (
                "zero sequence",
                with(&["sequenceNumber"], json!(0)),
                GatewayProfile::Hd,
                vec![SEQUENCE],
            ),
            (
                "negative sequence",
                with(&["sequenceNumber"], json!(-3)),
                GatewayProfile::Hd,
                vec![SEQUENCE],
            ),
            (
                "fractional sequence",
                with(&["sequenceNumber"], json!(1.5)),
                GatewayProfile::Hd,
                vec![SEQUENCE],
            ),
            (
                "string sequence",
                with(&["sequenceNumber"], json!("12")),
                GatewayProfile::Hd,
                vec![SEQUENCE],
            ),
            (
                "sequence above 2^53-1",
                with(&["sequenceNumber"], json!(MAX_SEQUENCE + 1)),
                GatewayProfile::Hd,
                vec![SEQUENCE],
            ),
            (
                "51 participants",
                with(&["participants"], participants(51, 10)),
                GatewayProfile::Hd,
                vec![PARTICIPANT_LIMIT],
            ),
            (
                "empty user id",
                with(
                    &["participants"],
                    json!([{"userId": "", "role": "participant", "allocatedBitrateKbps": 1}]),
                ),
                GatewayProfile::Hd,
                vec![PARTICIPANT],
            ),
            (
                "bad role",
                with(
                    &["participants"],
                    json!([{"userId": "u", "role": "host", "allocatedBitrateKbps": 1}]),
                ),
                GatewayProfile::Hd,
                vec![PARTICIPANT],
            ),
            (
                "negative allocation",
                with(
                    &["participants"],
                    json!([{"userId": "u", "role": "participant", "allocatedBitrateKbps": -1}]),
                ),
                GatewayProfile::Hd,
                vec![PARTICIPANT],
            ),
            (
                "fractional allocation",
                with(
                    &["participants"],
                    json!([{"userId": "u", "role": "participant", "allocatedBitrateKbps": 1.5}]),
                ),
                GatewayProfile::Hd,
                vec![PARTICIPANT],
            ),
            (
                "participant not an object",
                with(&["participants"], json!(["u1"])),
                GatewayProfile::Hd,
                vec![PARTICIPANT],
            ),
            (
                "participants not an array",
                with(&["participants"], json!({"u": 1})),
                GatewayProfile::Hd,
                vec![PARTICIPANT],
            ),
            (
                "duplicate user",
                with(
                    &["participants"],
                    json!([
                {"userId": "u", "role": "presenter", "allocatedBitrateKbps": 1},
                {"userId": "u", "role": "participant", "allocatedBitrateKbps": 1}]),
                ),
                GatewayProfile::Hd,
                vec![DUPLICATE_PARTICIPANT],
            ),
            (
                "zero max bitrate",
                with(&["mediaConfig", "maxBitrate"], json!(0)),
                GatewayProfile::Hd,
                vec![MAX_BITRATE],
            ),
            (
                "9000 on hd",
                with(&["mediaConfig", "maxBitrate"], json!(9000)),
                GatewayProfile::Hd,
                vec![MAX_BITRATE],
            ),
            (
                "5000 on standard",
                with(&["mediaConfig", "maxBitrate"], json!(5000)),
                GatewayProfile::Standard,
                vec![MAX_BITRATE],
            ),
            (
                "allocations over max",
                with(&["mediaConfig", "maxBitrate"], json!(2000)),
                GatewayProfile::Hd,
                vec![AGGREGATE_BITRATE],
            ),
            (
                "unknown directive",
                with(&["recording", "action"], json!("record")),
                GatewayProfile::Hd,
                vec![RECORDING_DIRECTIVE],
            ),
            (
                "upper-case directive",
                with(&["recording", "action"], json!("START")),
                GatewayProfile::Hd,
                vec![RECORDING_DIRECTIVE],
            ),
            (
                "unknown codec",
                with(&["mediaConfig", "codec"], json!("av1")),
                GatewayProfile::Hd,
                vec![CODEC],
            ),
            (
                "numeric codec",
                with(&["mediaConfig", "codec"], json!(264)),
                GatewayProfile::Hd,
                vec![CODEC],
            ),
        ];
        for (name, data, profile, expected) in cases {
            assert_eq!(codes(&data, profile), expected, "case: {name}");
        }
    }

    #[test]
    fn whole_floats_count_as_whole() {
        let data = with(
            &["participants"],
            json!([{"userId": "u", "role": "participant", "allocatedBitrateKbps": 4000.0}]),
        );
        let state = validate(&data, GatewayProfile::Hd).unwrap();
        assert_eq!(state.participants[0].bitrate_kbps, 4000);
        assert!(validate(&with(&["sequenceNumber"], json!(7.0)), GatewayProfile::Hd).is_ok());
    }

    #[test]
    fn boundaries_are_inclusive() {
        assert!(
            validate(
                &with(&["mediaConfig", "maxBitrate"], json!(8000)),
                GatewayProfile::Hd
            )
            .is_ok()
        );
        assert!(
            validate(
                &with(&["mediaConfig", "maxBitrate"], json!(4000)),
                GatewayProfile::Standard
            )
            .is_ok()
        );
        assert!(
            validate(
                &with(&["participants"], participants(50, 10)),
                GatewayProfile::Hd
            )
            .is_ok()
        );
        assert!(
            validate(
                &with(&["sequenceNumber"], json!(MAX_SEQUENCE)),
                GatewayProfile::Hd
            )
            .is_ok()
        );
        assert!(
            validate(
                &with(&["sessionId"], json!("a".repeat(128))),
                GatewayProfile::Hd
            )
            .is_ok()
        );
        let exact = with(&["mediaConfig", "maxBitrate"], json!(2500));
        assert!(validate(&exact, GatewayProfile::Hd).is_ok());
    }

    #[test]
    fn every_violation_is_reported_together() {
        let data = json!({
            "sessionId": "../etc",
            "sequenceNumber": 0,
            "participants": [
                {"userId": "u", "role": "boss", "allocatedBitrateKbps": 1},
                {"userId": "v", "role": "presenter", "allocatedBitrateKbps": 1},
                {"userId": "v", "role": "presenter", "allocatedBitrateKbps": 1}
            ],
            "recording": {"action": "rewind"},
            "mediaConfig": {"maxBitrate": 9000, "codec": "av1"}
        });
        assert_eq!(
            codes(&data, GatewayProfile::Hd),
            [
                SESSION_ID,
                SEQUENCE,
                PARTICIPANT,
                DUPLICATE_PARTICIPANT,
                MAX_BITRATE,
                RECORDING_DIRECTIVE,
                CODEC
            ]
        );
    }

    #[test]
    fn non_object_data_reports_id_and_sequence() {
        for data in [Value::Null, json!("x"), json!([1]), json!(3)] {
            assert_eq!(
                codes(&data, GatewayProfile::Hd),
                [SESSION_ID, SEQUENCE],
                "{data}"
            );
        }
    }

    #[test]
    fn hostile_participant_lists_keep_reports_short() {
        let list: Vec<Value> = (0..5000).map(|_| json!({"role": "x"})).collect();
        let violations = validate(
            &with(&["participants"], Value::Array(list)),
            GatewayProfile::Hd,
        )
        .unwrap_err();
        assert!(
            violations.len() <= MAX_PARTICIPANT_REPORTS + 3,
            "{} violations",
            violations.len()
        );
        assert!(
            violations
                .iter()
                .any(|v| v.message.contains("more participant problems"))
        );
    }

    #[test]
    fn messages_escape_and_cut_values() {
        let violations = validate(
            &with(&["sessionId"], json!(format!("bad\n{}", "x".repeat(500)))),
            GatewayProfile::Hd,
        )
        .unwrap_err();
        let message = &violations[0].message;
        assert!(!message.contains('\n'));
        assert!(message.len() < 300, "{message}");
    }
}
