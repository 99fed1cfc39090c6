//! Property tests of `validate::validate`: it never panics, every state it
//! accepts meets the gateway limits and survives the dead-letter round trip,
//! and every rule broken on its own is reported under its own code.
//!
//! The limits are checked here with code written apart from the validator,
//! so a wrong rule would need the same mistake in both places to pass.

use std::collections::HashSet;

use genesys_video_agent::config::GatewayProfile;
use genesys_video_agent::event::{Codec, Directive, SessionState};
use genesys_video_agent::validate::{
    AGGREGATE_BITRATE, CODEC, CODES, DUPLICATE_PARTICIPANT, MAX_BITRATE, PARTICIPANT,
    PARTICIPANT_LIMIT, RECORDING_DIRECTIVE, SEQUENCE, SESSION_ID, Violation, validate,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Value, json};

/// Cases per property: enough to reach every branch of the generators
/// while `cargo test --release` stays within a few seconds.
const CASES: u32 = 256;

/// The largest integer that a JSON number (an f64) represents exactly: 2^53 - 1.
const MAX_SEQUENCE: u64 = (1 << 53) - 1;
const MAX_PARTICIPANTS: usize = 50;
/// The `maxBitrate` of an event that leaves it out, in kbps.
const DEFAULT_MAX_BITRATE: u64 = 3000;

/// Upper bound on the violations of one event. Each rule reports at most one
/// violation, except `participant` and `duplicate_participant`, which list 10
/// entries and then one summary line each.
const MAX_VIOLATIONS: usize = 32;

fn bitrate_ceiling(profile: GatewayProfile) -> u64 {
    match profile {
        GatewayProfile::Hd => 8000,
        GatewayProfile::Standard => 4000,
    }
}

fn profile() -> impl Strategy<Value = GatewayProfile> {
    prop_oneof![Just(GatewayProfile::Hd), Just(GatewayProfile::Standard)]
}

// ---------------------------------------------------------------------------
// Checks shared by the properties.

/// Asserts every gateway limit on an accepted state.
fn assert_meets_limits(state: &SessionState, profile: GatewayProfile) {
    let id_chars = state.session_id.chars().count();
    assert!(
        (1..=128).contains(&id_chars),
        "session id of {id_chars} characters"
    );
    assert!(
        !state.session_id.starts_with('.'),
        "session id {:?} starts with '.'",
        state.session_id
    );
    assert!(
        state
            .session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
        "session id {:?} has a character outside A-Z a-z 0-9 . _ -",
        state.session_id
    );

    assert!(
        (1..=MAX_SEQUENCE).contains(&state.sequence),
        "sequence {}",
        state.sequence
    );

    assert!(
        state.participants.len() <= MAX_PARTICIPANTS,
        "{} participants",
        state.participants.len()
    );
    let mut user_ids = HashSet::new();
    for participant in &state.participants {
        assert!(!participant.user_id.is_empty(), "empty userId accepted");
        assert!(
            user_ids.insert(&participant.user_id),
            "userId {:?} accepted twice",
            participant.user_id
        );
    }

    let total: u128 = state
        .participants
        .iter()
        .map(|p| u128::from(p.bitrate_kbps))
        .sum();
    assert!(state.max_bitrate_kbps > 0, "maxBitrate 0 accepted");
    assert!(
        total <= u128::from(state.max_bitrate_kbps),
        "allocations sum to {total}, above maxBitrate {}",
        state.max_bitrate_kbps
    );
    assert!(
        state.max_bitrate_kbps <= bitrate_ceiling(profile),
        "maxBitrate {} above the {profile:?} ceiling",
        state.max_bitrate_kbps
    );
}

/// Asserts the shape of a rejection: not empty, known codes in rule order,
/// and short single-line messages that are safe to write to the audit file.
fn assert_well_formed(violations: &[Violation]) {
    assert!(!violations.is_empty(), "Err without violations");
    assert!(
        violations.len() <= MAX_VIOLATIONS,
        "{} violations",
        violations.len()
    );

    let mut previous_rule = 0;
    for violation in violations {
        let rule = CODES
            .iter()
            .position(|code| *code == violation.code)
            .unwrap_or_else(|| panic!("unknown code {}", violation.code));
        assert!(
            rule >= previous_rule,
            "{} reported after {}",
            violation.code,
            CODES[previous_rule]
        );
        previous_rule = rule;

        assert!(
            !violation.message.is_empty(),
            "{} has no message",
            violation.code
        );
        assert!(
            violation.message.len() <= 1024,
            "message of {} bytes",
            violation.message.len()
        );
        assert!(
            !violation.message.chars().any(char::is_control),
            "control character in {:?}",
            violation.message
        );
    }
}

fn codes(violations: &[Violation]) -> Vec<&'static str> {
    let mut codes: Vec<_> = violations.iter().map(|v| v.code).collect();
    codes.dedup();
    codes
}

// ---------------------------------------------------------------------------
// (a) Arbitrary event data.

/// Strings that sit on or next to a rule's edge.
fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("..".to_owned()),
        Just(".hidden".to_owned()),
        Just("a/b".to_owned()),
        Just("a%2F".to_owned()),
        Just("caf\u{e9}".to_owned()),
        Just("a".repeat(128)),
        Just("a".repeat(129)),
        Just("bad\nline".to_owned()),
        Just("presenter".to_owned()),
        Just("participant".to_owned()),
        Just("start".to_owned()),
        Just("STOP".to_owned()),
        Just("pause".to_owned()),
        Just("VP9".to_owned()),
        Just("h264".to_owned()),
        Just("av1".to_owned()),
        Just("12".to_owned()),
        "[A-Za-z0-9._-]{1,12}",
        "\\PC{0,16}",
        any::<String>(),
    ]
}

/// Numbers on or next to a rule's edge, as JSON.
fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-1)),
        Just(json!(3000)),
        Just(json!(4000)),
        Just(json!(4001)),
        Just(json!(8000)),
        Just(json!(8001)),
        Just(json!(4000.0)),
        Just(json!(1.5)),
        Just(json!(-0.0)),
        Just(json!(MAX_SEQUENCE)),
        Just(json!(MAX_SEQUENCE + 1)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e300)),
        Just(json!(18_446_744_073_709_551_616.0)),
        (0u64..10_000).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        // NaN and infinities have no JSON form: serde_json turns them into null.
        any::<f64>().prop_map(|x| json!(x)),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_number(),
        edge_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Generates a field's value: usually one of `typical`, sometimes any
/// JSON, sometimes absent.
fn field<S>(typical: S) -> impl Strategy<Value = Option<Value>>
where
    S: Strategy<Value = Value> + 'static,
{
    prop_oneof![
        10 => typical.prop_map(Some),
        1 => any_json().prop_map(Some),
        1 => Just(None),
    ]
}

/// Values that pass a rule most of the time, so that the generated events
/// reach the accepted branch often enough to check its limits.
fn mostly<S, T>(valid: S, edge: T) -> impl Strategy<Value = Value>
where
    S: Strategy<Value = Value> + 'static,
    T: Strategy<Value = Value> + 'static,
{
    prop_oneof![6 => valid, 1 => edge]
}

fn participant_json() -> impl Strategy<Value = Value> {
    let user_id = field(mostly(
        (0..40u8).prop_map(|n| json!(format!("u{n}"))),
        edge_string().prop_map(Value::String),
    ));
    let role = field(mostly(
        prop_oneof![Just(json!("presenter")), Just(json!("participant"))],
        edge_string().prop_map(Value::String),
    ));
    let bitrate = field(mostly((0u64..1500).prop_map(|n| json!(n)), edge_number()));
    prop_oneof![
        8 => (user_id, role, bitrate).prop_map(|(user_id, role, bitrate)| {
            object([
                ("userId", user_id),
                ("role", role),
                ("allocatedBitrateKbps", bitrate),
            ])
        }),
        1 => any_json(),
    ]
}

fn event_json() -> impl Strategy<Value = Value> {
    let session_id = field(mostly(
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}".prop_map(Value::String),
        edge_string().prop_map(Value::String),
    ));
    let sequence = field(mostly(
        (1..=MAX_SEQUENCE).prop_map(|n| json!(n)),
        edge_number(),
    ));
    let participants = field(prop_oneof![
        4 => prop::collection::vec(participant_json(), 0..6).prop_map(Value::Array),
        1 => prop::collection::vec(participant_json(), 45..56).prop_map(Value::Array),
    ]);
    let action = field(mostly(
        prop_oneof![
            Just(json!("start")),
            Just(json!("stop")),
            Just(json!("pause"))
        ],
        edge_string().prop_map(Value::String),
    ));
    let recording = field(action.prop_map(|action| object([("action", action)])));
    let max_bitrate = field(mostly((1u64..=8000).prop_map(|n| json!(n)), edge_number()));
    let codec = field(mostly(
        prop_oneof![Just(json!("vp8")), Just(json!("VP9")), Just(json!("h264"))],
        edge_string().prop_map(Value::String),
    ));
    let media =
        field((max_bitrate, codec).prop_map(|(max_bitrate, codec)| {
            object([("maxBitrate", max_bitrate), ("codec", codec)])
        }));
    let state = field(edge_string().prop_map(Value::String));
    let event = (session_id, sequence, participants, recording, media, state).prop_map(
        |(session_id, sequence, participants, recording, media, state)| {
            object([
                ("sessionId", session_id),
                ("sequenceNumber", sequence),
                ("participants", participants),
                ("recording", recording),
                ("mediaConfig", media),
                ("state", state),
            ])
        },
    );
    prop_oneof![9 => event, 1 => any_json()]
}

/// Builds a JSON object from the fields that are present.
fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    let map: Map<String, Value> = fields
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
        .collect();
    Value::Object(map)
}

// ---------------------------------------------------------------------------
// (b) Events within every limit.

/// The parts of a valid event, kept next to its JSON so the properties can
/// compare the validator's output with what was generated and break one
/// rule at a time.
#[derive(Clone, Debug)]
struct ValidEvent {
    profile: GatewayProfile,
    session_id: String,
    sequence: u64,
    /// `(userId, role, allocatedBitrateKbps)`, with unique user ids.
    participants: Vec<(String, &'static str, u64)>,
    /// None leaves `recording` out, which means `pause`.
    directive: Option<&'static str>,
    /// None leaves `codec` out, which means `vp8`. Otherwise any spelling
    /// of a known codec, such as `Vp9`.
    codec: Option<String>,
    /// None leaves `maxBitrate` out, which means 3000 kbps.
    max_bitrate: Option<u64>,
    /// Send whole numbers as floats (`4000.0`), which count as whole.
    whole_floats: bool,
    state: Option<String>,
}

impl ValidEvent {
    fn effective_max_bitrate(&self) -> u64 {
        self.max_bitrate.unwrap_or(DEFAULT_MAX_BITRATE)
    }

    fn total_bitrate(&self) -> u64 {
        self.participants.iter().map(|p| p.2).sum()
    }

    fn number(&self, n: u64) -> Value {
        if self.whole_floats {
            // Every number generated here is at most 2^53 - 1, which an f64
            // represents exactly.
            json!(n as f64)
        } else {
            json!(n)
        }
    }

    fn to_json(&self) -> Value {
        let participants: Vec<Value> = self
            .participants
            .iter()
            .map(|(user_id, role, kbps)| {
                json!({"userId": user_id, "role": role, "allocatedBitrateKbps": self.number(*kbps)})
            })
            .collect();
        let mut media = Map::new();
        if let Some(kbps) = self.max_bitrate {
            media.insert("maxBitrate".into(), self.number(kbps));
        }
        if let Some(codec) = &self.codec {
            media.insert("codec".into(), json!(codec));
        }
        object([
            ("sessionId", Some(json!(self.session_id))),
            ("sequenceNumber", Some(self.number(self.sequence))),
            ("participants", Some(Value::Array(participants))),
            (
                "recording",
                self.directive.map(|action| json!({"action": action})),
            ),
            ("mediaConfig", Some(Value::Object(media))),
            ("state", self.state.clone().map(Value::String)),
        ])
    }
}

/// Cuts `total` into `count` allocations that add up to exactly `total`.
fn split_total(total: u64, count: usize) -> impl Strategy<Value = Vec<u64>> {
    let cut_count = count.saturating_sub(1);
    prop::collection::vec(0..=total, cut_count).prop_map(move |mut cuts| {
        if count == 0 {
            return Vec::new();
        }
        cuts.push(0);
        cuts.push(total);
        cuts.sort_unstable();
        cuts.windows(2).map(|pair| pair[1] - pair[0]).collect()
    })
}

fn valid_event() -> impl Strategy<Value = ValidEvent> {
    let header = (
        profile(),
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}",
        prop_oneof![Just(1), Just(MAX_SEQUENCE), 1..=MAX_SEQUENCE],
        any::<bool>(),
    );
    header.prop_flat_map(|(profile, session_id, sequence, whole_floats)| {
        let max_bitrate = prop_oneof![
            1 => Just(None),
            3 => (1..=bitrate_ceiling(profile)).prop_map(Some),
            1 => Just(Some(bitrate_ceiling(profile))),
        ];
        let users = prop::collection::hash_set("[a-z0-9-]{1,12}", 0..=MAX_PARTICIPANTS);
        let codec = prop::option::of(prop_oneof![
            Just("vp8".to_owned()),
            Just("vp9".to_owned()),
            Just("h264".to_owned()),
            Just("VP9".to_owned()),
            Just("H264".to_owned()),
            Just("Vp8".to_owned()),
        ]);
        let directive = prop::option::of(prop_oneof![Just("start"), Just("stop"), Just("pause"),]);
        let state = prop::option::of(prop_oneof![
            Just("active".to_owned()),
            Just("updating".to_owned()),
            Just("recording".to_owned()),
        ]);
        (max_bitrate, users, codec, directive, state).prop_flat_map(
            move |(max_bitrate, users, codec, directive, state)| {
                let budget = max_bitrate.unwrap_or(DEFAULT_MAX_BITRATE);
                let users: Vec<String> = users.into_iter().collect();
                let count = users.len();
                let roles = prop::collection::vec(
                    prop_oneof![Just("presenter"), Just("participant")],
                    count,
                );
                let allocations =
                    (0..=budget).prop_flat_map(move |total| split_total(total, count));
                let session_id = session_id.clone();
                (roles, allocations).prop_map(move |(roles, allocations)| ValidEvent {
                    profile,
                    session_id: session_id.clone(),
                    sequence,
                    participants: users
                        .iter()
                        .cloned()
                        .zip(roles)
                        .zip(allocations)
                        .map(|((user, role), kbps)| (user, role, kbps))
                        .collect(),
                    directive,
                    codec: codec.clone(),
                    max_bitrate,
                    whole_floats,
                    state: state.clone(),
                })
            },
        )
    })
}

// ---------------------------------------------------------------------------
// (c) One broken rule.

/// One way to break exactly one rule of a valid event.
#[derive(Clone, Debug)]
enum Breakage {
    SessionIdMissing,
    SessionIdSlash(usize),
    SessionIdLeadingDot,
    SessionIdTooLong,
    SessionIdNotString(Value),
    SequenceMissing,
    SequenceOutOfRange(Value),
    TooManyParticipants,
    BadParticipant(usize, &'static str, Value),
    DuplicateUser,
    MaxBitrateZero,
    MaxBitrateAboveCeiling(u64),
    AggregateOverMax(u64),
    DirectiveUnknown(&'static str),
    CodecUnknown(&'static str),
}

impl Breakage {
    fn code(&self) -> &'static str {
        match self {
            Breakage::SessionIdMissing
            | Breakage::SessionIdSlash(_)
            | Breakage::SessionIdLeadingDot
            | Breakage::SessionIdTooLong
            | Breakage::SessionIdNotString(_) => SESSION_ID,
            Breakage::SequenceMissing | Breakage::SequenceOutOfRange(_) => SEQUENCE,
            Breakage::TooManyParticipants => PARTICIPANT_LIMIT,
            Breakage::BadParticipant(..) => PARTICIPANT,
            Breakage::DuplicateUser => DUPLICATE_PARTICIPANT,
            Breakage::MaxBitrateZero | Breakage::MaxBitrateAboveCeiling(_) => MAX_BITRATE,
            Breakage::AggregateOverMax(_) => AGGREGATE_BITRATE,
            Breakage::DirectiveUnknown(_) => RECORDING_DIRECTIVE,
            Breakage::CodecUnknown(_) => CODEC,
        }
    }

    /// Returns the event's JSON with this one rule broken.
    fn apply(&self, event: &ValidEvent) -> Value {
        let mut event = event.clone();
        match self {
            Breakage::SessionIdSlash(at) => {
                let at = at % (event.session_id.len() + 1);
                event.session_id.insert(at, '/');
            }
            Breakage::SessionIdLeadingDot => event.session_id.insert(0, '.'),
            Breakage::SessionIdTooLong => {
                let missing = 129usize.saturating_sub(event.session_id.len());
                event.session_id.push_str(&"x".repeat(missing));
            }
            Breakage::TooManyParticipants => {
                // Extra users take no bitrate and have fresh ids, so only the
                // count is wrong.
                for n in event.participants.len()..=MAX_PARTICIPANTS {
                    event
                        .participants
                        .push((format!("extra.{n}"), "participant", 0));
                }
            }
            Breakage::DuplicateUser => {
                if event.participants.is_empty() {
                    event.participants.push(("dup".into(), "presenter", 0));
                }
                let user_id = event.participants[0].0.clone();
                // At the limit, the last user takes the first one's id, so
                // the count stays within 50.
                if event.participants.len() == MAX_PARTICIPANTS {
                    event.participants[MAX_PARTICIPANTS - 1].0 = user_id;
                } else {
                    event.participants.push((user_id, "participant", 0));
                }
            }
            Breakage::MaxBitrateZero => event.max_bitrate = Some(0),
            Breakage::MaxBitrateAboveCeiling(excess) => {
                event.max_bitrate = Some(bitrate_ceiling(event.profile) + excess);
            }
            Breakage::AggregateOverMax(excess) => {
                let over = event.effective_max_bitrate() - event.total_bitrate() + excess;
                match event.participants.first_mut() {
                    Some(first) => first.2 += over,
                    None => event.participants.push(("heavy".into(), "presenter", over)),
                }
            }
            Breakage::DirectiveUnknown(action) => event.directive = Some(action),
            Breakage::CodecUnknown(codec) => event.codec = Some((*codec).to_owned()),
            Breakage::SessionIdMissing
            | Breakage::SessionIdNotString(_)
            | Breakage::SequenceMissing
            | Breakage::SequenceOutOfRange(_)
            | Breakage::BadParticipant(..) => {}
        }

        let mut data = event.to_json();
        let map = data.as_object_mut().expect("events are objects");
        match self {
            Breakage::SessionIdMissing => {
                map.remove("sessionId");
            }
            Breakage::SessionIdNotString(value) => {
                map.insert("sessionId".into(), value.clone());
            }
            Breakage::SequenceMissing => {
                map.remove("sequenceNumber");
            }
            Breakage::SequenceOutOfRange(value) => {
                map.insert("sequenceNumber".into(), value.clone());
            }
            Breakage::BadParticipant(index, key, value) => {
                let list = map["participants"].as_array_mut().expect("an array");
                if list.is_empty() {
                    list.push(
                        json!({"userId": "solo", "role": "presenter", "allocatedBitrateKbps": 0}),
                    );
                }
                let at = index % list.len();
                list[at][*key] = value.clone();
            }
            _ => {}
        }
        data
    }
}

fn breakage() -> impl Strategy<Value = Breakage> {
    prop_oneof![
        Just(Breakage::SessionIdMissing),
        any::<usize>().prop_map(Breakage::SessionIdSlash),
        Just(Breakage::SessionIdLeadingDot),
        Just(Breakage::SessionIdTooLong),
        prop_oneof![
            Just(json!(5)),
            Just(json!(true)),
            Just(json!(["s"])),
            Just(json!({}))
        ]
        .prop_map(Breakage::SessionIdNotString),
        Just(Breakage::SequenceMissing),
        prop_oneof![
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(1.5)),
            Just(json!("12")),
            Just(json!(MAX_SEQUENCE + 1)),
            Just(json!(u64::MAX)),
        ]
        .prop_map(Breakage::SequenceOutOfRange),
        Just(Breakage::TooManyParticipants),
        (
            any::<usize>(),
            prop_oneof![
                Just(("userId", json!(""))),
                Just(("userId", json!(7))),
                Just(("userId", Value::Null)),
                Just(("role", json!("host"))),
                Just(("role", json!("Presenter"))),
                Just(("allocatedBitrateKbps", json!(-1))),
                Just(("allocatedBitrateKbps", json!(0.5))),
                Just(("allocatedBitrateKbps", json!("100"))),
            ],
        )
            .prop_map(|(index, (key, value))| Breakage::BadParticipant(index, key, value)),
        Just(Breakage::DuplicateUser),
        Just(Breakage::MaxBitrateZero),
        (1u64..100_000).prop_map(Breakage::MaxBitrateAboveCeiling),
        (1u64..1000).prop_map(Breakage::AggregateOverMax),
        prop_oneof![Just("record"), Just("START"), Just(""), Just("resume")]
            .prop_map(Breakage::DirectiveUnknown),
        prop_oneof![
            Just("av1"),
            Just("h265"),
            Just(""),
            Just("vp8 "),
            Just("VP10")
        ]
        .prop_map(Breakage::CodecUnknown),
    ]
}

// ---------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// (a) and (d): any data, under either profile.
    #[test]
    fn arbitrary_data_meets_limits_or_is_rejected(data in event_json()) {
        for profile in [GatewayProfile::Hd, GatewayProfile::Standard] {
            match validate(&data, profile) {
                Ok(state) => assert_meets_limits(&state, profile),
                Err(violations) => assert_well_formed(&violations),
            }
        }
    }

    /// The `hd` ceiling is above the `standard` one and the other rules are
    /// the same, so a state valid for `standard` is the same state for `hd`.
    #[test]
    fn standard_state_is_valid_for_hd(data in event_json()) {
        if let Ok(standard) = validate(&data, GatewayProfile::Standard) {
            prop_assert_eq!(validate(&data, GatewayProfile::Hd), Ok(standard));
        }
    }

    /// (b): a state within every limit is accepted as generated, and the
    /// dead-letter form of it validates back to the same state.
    #[test]
    fn valid_state_round_trips(event in valid_event()) {
        let data = event.to_json();
        let state = match validate(&data, event.profile) {
            Ok(state) => state,
            Err(violations) => {
                return Err(TestCaseError::fail(format!("rejected {data}: {violations:?}")));
            }
        };
        assert_meets_limits(&state, event.profile);

        prop_assert_eq!(&state.session_id, &event.session_id);
        prop_assert_eq!(state.sequence, event.sequence);
        prop_assert_eq!(state.max_bitrate_kbps, event.effective_max_bitrate());
        prop_assert_eq!(state.state.as_deref(), event.state.as_deref());
        let expected_codec = event
            .codec
            .as_deref()
            .map_or(Codec::Vp8, |name| Codec::parse(name).expect("a known codec"));
        prop_assert_eq!(state.codec, expected_codec);
        let expected_directive = event
            .directive
            .map_or(Directive::Pause, |name| Directive::parse(name).expect("a known directive"));
        prop_assert_eq!(state.directive, expected_directive);
        prop_assert_eq!(state.participants.len(), event.participants.len());
        for (accepted, (user_id, _, kbps)) in state.participants.iter().zip(&event.participants) {
            prop_assert_eq!(&accepted.user_id, user_id);
            prop_assert_eq!(accepted.bitrate_kbps, *kbps);
        }

        let again = validate(&state.to_event_data(), event.profile);
        prop_assert_eq!(again, Ok(state));
    }

    /// (c) and (d): breaking one rule of a valid event reports that rule's
    /// code and no other.
    #[test]
    fn single_breakage_reports_its_code(event in valid_event(), breakage in breakage()) {
        let data = breakage.apply(&event);
        let violations = match validate(&data, event.profile) {
            Ok(state) => {
                return Err(TestCaseError::fail(format!(
                    "{breakage:?} accepted as {state:?}"
                )));
            }
            Err(violations) => violations,
        };
        assert_well_formed(&violations);
        prop_assert_eq!(codes(&violations), vec![breakage.code()], "{:?}", violations);
    }
}
