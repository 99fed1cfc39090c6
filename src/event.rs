//! Wire types: the incoming frame envelope, the validated session state, and
//! the PUT body sent to the video conference API.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `eventType` of the frames the agent acts on.
pub const VIDEO_EVENT_TYPE: &str = "videoConferenceEvent";

/// Bytes of a damaged frame kept in a `MALFORMED_EVENT` entry.
pub const MALFORMED_EXCERPT_BYTES: usize = 200;

/// One text frame from the event stream, sorted by what the agent does with it.
#[derive(Debug)]
pub enum Frame {
    /// A video conference event; `data` is unvalidated (it may be absent or of any type).
    Video { data: Value },
    /// Any other `eventType` (heartbeats, acknowledgements): counted and ignored.
    Other { event_type: String },
}

/// A reason a frame could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    NotJson(String),
    NotAnObject,
    MissingEventType,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::NotJson(reason) => write!(f, "not valid JSON: {reason}"),
            FrameError::NotAnObject => f.write_str("not a JSON object"),
            FrameError::MissingEventType => f.write_str("missing or non-string eventType"),
        }
    }
}

/// Parses one text frame into a [`Frame`].
pub fn parse_frame(text: &str) -> Result<Frame, FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|err| FrameError::NotJson(err.to_string()))?;

    let Value::Object(mut object) = value else {
        return Err(FrameError::NotAnObject);
    };

    let event_type = match object.get("eventType") {
        Some(Value::String(name)) => name.clone(),
        _ => return Err(FrameError::MissingEventType),
    };

    if event_type == VIDEO_EVENT_TYPE {
        let data = object.remove("data").unwrap_or(Value::Null);
        Ok(Frame::Video { data })
    } else {
        Ok(Frame::Other { event_type })
    }
}

/// Returns at most `max_bytes` of `text`, cut on a character boundary, with
/// control characters and non-ASCII escaped so the excerpt is safe to log.
pub fn excerpt(text: &str, max_bytes: usize) -> String {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = text[..end].escape_default().collect();
    if end < text.len() {
        out.push_str("...");
    }
    out
}

/// Same as [`excerpt`] for bytes that may not be UTF-8.
pub fn excerpt_bytes(bytes: &[u8], max_bytes: usize) -> String {
    let end = bytes.len().min(max_bytes);
    let mut out: String = bytes[..end]
        .iter()
        .flat_map(|byte| std::ascii::escape_default(*byte))
        .map(char::from)
        .collect();
    if end < bytes.len() {
        out.push_str("...");
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Presenter,
    Participant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Directive {
    Start,
    Stop,
    Pause,
}

impl Directive {
    pub fn as_str(self) -> &'static str {
        match self {
            Directive::Start => "start",
            Directive::Stop => "stop",
            Directive::Pause => "pause",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "start" => Some(Directive::Start),
            "stop" => Some(Directive::Stop),
            "pause" => Some(Directive::Pause),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Vp8,
    Vp9,
    H264,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::H264 => "h264",
        }
    }

    /// Parses a codec name case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "vp8" => Some(Codec::Vp8),
            "vp9" => Some(Codec::Vp9),
            "h264" => Some(Codec::H264),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub user_id: String,
    pub role: Role,
    pub bitrate_kbps: u64,
}

/// A requested session state that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub session_id: String,
    pub sequence: u64,
    /// The event's `state` field (`active`, `updating`, ...), kept for replay.
    pub state: Option<String>,
    pub participants: Vec<Participant>,
    pub directive: Directive,
    pub max_bitrate_kbps: u64,
    pub codec: Codec,
}

#[derive(Serialize)]
struct BodyRecording {
    action: Directive,
    enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BodyMediaConfig {
    max_bitrate: u64,
    codec: Codec,
    recording: BodyRecording,
}

#[derive(Serialize)]
struct BodyParticipant<'a> {
    id: &'a str,
    role: Role,
    bandwidth: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PutBody<'a> {
    media_config: BodyMediaConfig,
    participants: Vec<BodyParticipant<'a>>,
}

/// The event's `data` object rebuilt from a validated state, in the field
/// names of the incoming stream.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventData<'a> {
    session_id: &'a str,
    sequence_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    participants: EventParticipants<'a>,
    recording: EventRecording,
    media_config: EventMediaConfig,
}

struct EventParticipants<'a>(&'a [Participant]);

impl Serialize for EventParticipants<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|p| EventParticipant {
            user_id: &p.user_id,
            role: p.role,
            allocated_bitrate_kbps: p.bitrate_kbps,
        }))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventParticipant<'a> {
    user_id: &'a str,
    role: Role,
    allocated_bitrate_kbps: u64,
}

#[derive(Serialize)]
struct EventRecording {
    action: Directive,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventMediaConfig {
    max_bitrate: u64,
    codec: Codec,
}

impl SessionState {
    /// Serializes the PUT body into `out`, which is cleared first so a
    /// worker can reuse one buffer for every request.
    pub fn write_put_body(&self, out: &mut Vec<u8>) {
        out.clear();
        let body = PutBody {
            media_config: BodyMediaConfig {
                max_bitrate: self.max_bitrate_kbps,
                codec: self.codec,
                recording: BodyRecording {
                    action: self.directive,
                    enabled: self.directive != Directive::Stop,
                },
            },
            participants: self
                .participants
                .iter()
                .map(|p| BodyParticipant {
                    id: &p.user_id,
                    role: p.role,
                    bandwidth: p.bitrate_kbps,
                })
                .collect(),
        };
        // Serializing plain structs of strings and integers into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &body);
    }

    /// Rebuilds the event's `data` object, as stored in a dead letter so
    /// `replay` can validate and send it again.
    pub fn to_event_data(&self) -> Value {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_value(self.event_data()).unwrap_or(Value::Null)
    }

    /// Serializes the event's `data` object (see [`Self::to_event_data`])
    /// into `out`, without building a `Value` first.
    pub fn write_event_data(&self, out: &mut Vec<u8>) {
        // Serializing plain structs of strings and integers into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &self.event_data());
    }

    fn event_data(&self) -> EventData<'_> {
        EventData {
            session_id: &self.session_id,
            sequence_number: self.sequence,
            state: self.state.as_deref(),
            participants: EventParticipants(&self.participants),
            recording: EventRecording {
                action: self.directive,
            },
            media_config: EventMediaConfig {
                max_bitrate: self.max_bitrate_kbps,
                codec: self.codec,
            },
        }
    }
}

/// Builds a small valid state with no participants, for the unit tests of
/// the modules that queue and store states.
#[cfg(test)]
pub(crate) fn test_state(session_id: &str, sequence: u64, codec: Codec) -> SessionState {
    SessionState {
        session_id: session_id.into(),
        sequence,
        state: None,
        participants: Vec::new(),
        directive: Directive::Start,
        max_bitrate_kbps: 4000,
        codec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_frame_sorts_frames() {
        let video = parse_frame(r#"{"eventType":"videoConferenceEvent","data":{"a":1}}"#);
        assert!(matches!(video, Ok(Frame::Video { .. })));

        let other = parse_frame(r#"{"eventType":"heartbeat"}"#);
        assert!(matches!(other, Ok(Frame::Other { event_type }) if event_type == "heartbeat"));

        assert!(matches!(
            parse_frame("{\"eventType\""),
            Err(FrameError::NotJson(_))
        ));
        assert_eq!(parse_frame("[1]").unwrap_err(), FrameError::NotAnObject);
        assert_eq!(parse_frame("{}").unwrap_err(), FrameError::MissingEventType);
    }

    #[test]
    fn excerpt_cuts_and_escapes() {
        assert_eq!(excerpt("abc", 200), "abc");
        assert_eq!(excerpt("a\nb\u{1b}", 200), "a\\nb\\u{1b}");
        assert_eq!(excerpt("héllo", 2), "h...");
        assert_eq!(excerpt_bytes(b"a\xffb", 2), "a\\xff...");
    }

    #[test]
    fn event_data_round_trips() {
        let mut state = SessionState {
            session_id: "s1".into(),
            sequence: 3,
            state: None,
            participants: vec![Participant {
                user_id: "u1".into(),
                role: Role::Participant,
                bitrate_kbps: 700,
            }],
            directive: Directive::Stop,
            max_bitrate_kbps: 4000,
            codec: Codec::H264,
        };
        let mut line = Vec::new();
        state.write_event_data(&mut line);
        let written: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(written, state.to_event_data());
        assert_eq!(written["participants"][0]["allocatedBitrateKbps"], 700);
        assert!(
            written.get("state").is_none(),
            "an absent state stays absent"
        );

        state.state = Some("active".into());
        let validated =
            crate::validate::validate(&state.to_event_data(), crate::config::GatewayProfile::Hd);
        assert_eq!(validated, Ok(state));
    }

    #[test]
    fn put_body_matches_wire_format() {
        let state = SessionState {
            session_id: "s1".into(),
            sequence: 3,
            state: Some("active".into()),
            participants: vec![Participant {
                user_id: "u1".into(),
                role: Role::Presenter,
                bitrate_kbps: 1500,
            }],
            directive: Directive::Start,
            max_bitrate_kbps: 4000,
            codec: Codec::Vp9,
        };
        let mut body = Vec::new();
        state.write_put_body(&mut body);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"mediaConfig":{"maxBitrate":4000,"codec":"vp9","recording":{"action":"start","enabled":true}},"participants":[{"id":"u1","role":"presenter","bandwidth":1500}]}"#
        );
    }
}
