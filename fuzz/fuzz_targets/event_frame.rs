//! Feeds arbitrary bytes through the path of an incoming text frame:
//! `parse_frame`, the `MALFORMED_EVENT` excerpt, `validate` under both
//! gateway profiles, and the PUT body of every state that passes.
//!
//! The invariants are checked with code written apart from the validator,
//! so a rule that is wrong in both places would still need the same mistake
//! twice to go unnoticed.

#![no_main]

use std::borrow::Cow;
use std::collections::HashSet;

use genesys_video_agent::config::GatewayProfile;
use genesys_video_agent::event::{
    Directive, Frame, MALFORMED_EXCERPT_BYTES, SessionState, excerpt, excerpt_bytes, parse_frame,
};
use genesys_video_agent::validate::{CODES, Violation, validate};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const PROFILES: [GatewayProfile; 2] = [GatewayProfile::Hd, GatewayProfile::Standard];

/// Upper bound on the violations of one event. Each rule reports at most one
/// violation, except `participant` and `duplicate_participant`, which list
/// 10 entries and then one summary line each.
const MAX_VIOLATIONS: usize = 32;

/// Upper bound on one violation message in bytes. Quoted values are cut to
/// 64 bytes before escaping, and an escape is at most 10 bytes per character.
const MAX_MESSAGE_BYTES: usize = 1024;

fuzz_target!(|bytes: &[u8]| {
    // tungstenite hands text frames over as checked UTF-8. Invalid bytes are
    // still worth a run through the lossy conversion, since a proxy or a
    // test tool may feed the parser other text.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    check_excerpts(&text, bytes);

    let Ok(Frame::Video { data }) = parse_frame(&text) else {
        return;
    };
    for profile in PROFILES {
        match validate(&data, profile) {
            Ok(state) => check_valid_state(&state, profile),
            Err(violations) => check_violations(&violations),
        }
    }
    check_profiles_are_ordered(&data);
});

/// The excerpt of a damaged frame goes into an audit line and a log line, so
/// it must be printable ASCII of bounded length.
fn check_excerpts(text: &str, bytes: &[u8]) {
    for escaped in [
        excerpt(text, MALFORMED_EXCERPT_BYTES),
        excerpt_bytes(bytes, MALFORMED_EXCERPT_BYTES),
    ] {
        assert!(
            escaped.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "excerpt is not printable ASCII: {escaped:?}"
        );
        assert!(
            escaped.len() <= MALFORMED_EXCERPT_BYTES * 10 + 3,
            "excerpt of {} bytes",
            escaped.len()
        );
    }
}

fn check_valid_state(state: &SessionState, profile: GatewayProfile) {
    check_session_id(&state.session_id);

    assert!(
        (1..=(1u64 << 53) - 1).contains(&state.sequence),
        "sequence {} out of range",
        state.sequence
    );

    assert!(
        state.participants.len() <= 50,
        "{} participants",
        state.participants.len()
    );
    let mut user_ids = HashSet::new();
    for participant in &state.participants {
        assert!(!participant.user_id.is_empty(), "empty userId passed");
        assert!(
            user_ids.insert(participant.user_id.as_str()),
            "duplicate userId {:?} passed",
            participant.user_id
        );
    }

    let total: u128 = state
        .participants
        .iter()
        .map(|p| u128::from(p.bitrate_kbps))
        .sum();
    let ceiling = u64::from(profile.max_bitrate_kbps());
    assert!(state.max_bitrate_kbps > 0, "maxBitrate 0 passed");
    assert!(
        total <= u128::from(state.max_bitrate_kbps),
        "allocations {total} above maxBitrate {}",
        state.max_bitrate_kbps
    );
    assert!(
        state.max_bitrate_kbps <= ceiling,
        "maxBitrate {} above the {} ceiling {ceiling}",
        state.max_bitrate_kbps,
        profile.name()
    );

    check_put_body(state);

    let again = validate(&state.to_event_data(), profile);
    assert_eq!(
        again.as_ref(),
        Ok(state),
        "to_event_data does not validate back to the same state"
    );
}

/// Checks the session id rule on its own: 1 to 128 characters of
/// `A-Z a-z 0-9 . _ -`, not starting with '.'.
fn check_session_id(session_id: &str) {
    let length = session_id.chars().count();
    assert!(
        (1..=128).contains(&length),
        "session id of {length} characters passed"
    );
    assert!(
        !session_id.starts_with('.'),
        "session id {session_id:?} starts with '.'"
    );
    assert!(
        session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'),
        "session id {session_id:?} has a character outside the allowed set"
    );
}

fn check_put_body(state: &SessionState) {
    // A dirty buffer checks that write_put_body clears it first.
    let mut body = b"left over from the previous request".to_vec();
    state.write_put_body(&mut body);
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => panic!(
            "PUT body is not JSON ({err}): {}",
            String::from_utf8_lossy(&body)
        ),
    };

    let media = &parsed["mediaConfig"];
    assert_eq!(media["maxBitrate"].as_u64(), Some(state.max_bitrate_kbps));
    assert_eq!(media["codec"].as_str(), Some(state.codec.as_str()));
    assert_eq!(
        media["recording"]["action"].as_str(),
        Some(state.directive.as_str())
    );
    assert_eq!(
        media["recording"]["enabled"].as_bool(),
        Some(state.directive != Directive::Stop)
    );

    let participants = parsed["participants"]
        .as_array()
        .expect("PUT body participants is not an array");
    assert_eq!(participants.len(), state.participants.len());
    for (sent, participant) in participants.iter().zip(&state.participants) {
        assert_eq!(sent["id"].as_str(), Some(participant.user_id.as_str()));
        assert_eq!(sent["bandwidth"].as_u64(), Some(participant.bitrate_kbps));
    }
}

fn check_violations(violations: &[Violation]) {
    assert!(!violations.is_empty(), "Err without violations");
    assert!(
        violations.len() <= MAX_VIOLATIONS,
        "{} violations",
        violations.len()
    );
    for violation in violations {
        assert!(
            CODES.contains(&violation.code),
            "unknown code {}",
            violation.code
        );
        assert!(
            violation.message.len() <= MAX_MESSAGE_BYTES,
            "message of {} bytes",
            violation.message.len()
        );
        assert!(
            !violation.message.chars().any(char::is_control),
            "message has a control character: {:?}",
            violation.message
        );
    }
}

/// Checks that a state valid for `standard` is the same state for `hd`,
/// since the `hd` ceiling is higher and every other rule is the same.
fn check_profiles_are_ordered(data: &Value) {
    if let Ok(standard) = validate(data, GatewayProfile::Standard) {
        assert_eq!(validate(data, GatewayProfile::Hd).as_ref(), Ok(&standard));
    }
}
