//! Frames for one position of the feed: an event's text frame, or the
//! hostile frames of a script directive.

use tungstenite::Bytes;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

/// One feed position. Each counts as one event frame for `--drop-after`,
/// `--half-open-after`, `--replay-overlap` and the `framesSent` figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// One text frame: a script line or a generated event.
    Text(Bytes),
    /// One text frame from `#invalid-utf8` or `#oversized`. The payload goes
    /// out byte for byte, even when it is not UTF-8.
    HostileText(Bytes),
    Binary(Bytes),
    /// One text message split into `frames` frames: a text frame without FIN,
    /// continuation frames, and a last continuation frame with FIN.
    Fragmented {
        payload: Bytes,
        frames: usize,
    },
    /// A close frame. The connection then waits for the client's close frame.
    Close {
        code: u16,
        reason: String,
    },
}

impl Outgoing {
    /// Returns true for the frames of script directives. A client may react
    /// to them by closing the connection.
    pub fn is_hostile(&self) -> bool {
        !matches!(self, Outgoing::Text(_))
    }

    /// Serializes the item's frames into `buffer`, unmasked as a server sends them.
    pub fn format_into(&self, buffer: &mut Vec<u8>) {
        match self {
            Outgoing::Text(payload) | Outgoing::HostileText(payload) => {
                push(buffer, text_frame(payload.clone()));
            }
            Outgoing::Binary(payload) => push(
                buffer,
                Frame::message(payload.clone(), OpCode::Data(Data::Binary), true),
            ),
            Outgoing::Fragmented { payload, frames } => {
                for (index, part) in fragments(payload, *frames).into_iter().enumerate() {
                    let opcode = if index == 0 {
                        Data::Text
                    } else {
                        Data::Continue
                    };
                    let last = index + 1 == *frames;
                    push(buffer, Frame::message(part, OpCode::Data(opcode), last));
                }
            }
            Outgoing::Close { code, reason } => push(
                buffer,
                Frame::close(Some(CloseFrame {
                    code: CloseCode::from(*code),
                    reason: reason.clone().into(),
                })),
            ),
        }
    }
}

pub fn text_frame(payload: Bytes) -> Frame {
    Frame::message(payload, OpCode::Data(Data::Text), true)
}

fn push(buffer: &mut Vec<u8>, frame: Frame) {
    // Formatting into a Vec does not fail, because Vec's io::Write implementation returns no errors.
    let _ = frame.format(buffer);
}

/// Splits `payload` into `count` parts of nearly equal length, in order.
/// A part may end inside a UTF-8 character: only the whole message must be UTF-8.
fn fragments(payload: &Bytes, count: usize) -> Vec<Bytes> {
    let count = count.max(1);
    let length = payload.len();
    (0..count)
        .map(|index| payload.slice(index * length / count..(index + 1) * length / count))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes unmasked frames with payloads under 126 bytes: (FIN, opcode, payload).
    fn decode(mut wire: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !wire.is_empty() {
            let length = usize::from(wire[1] & 0x7f);
            assert!(length < 126, "test decoder handles short frames only");
            frames.push((
                wire[0] & 0x80 != 0,
                wire[0] & 0x0f,
                wire[2..2 + length].to_vec(),
            ));
            wire = &wire[2 + length..];
        }
        frames
    }

    fn wire(item: &Outgoing) -> Vec<u8> {
        let mut buffer = Vec::new();
        item.format_into(&mut buffer);
        buffer
    }

    #[test]
    fn text_keeps_invalid_utf8() {
        let item = Outgoing::HostileText(Bytes::from_static(b"{\"a\":\"\xff\xfe\"}"));
        let frames = decode(&wire(&item));
        assert_eq!(frames, vec![(true, 0x1, b"{\"a\":\"\xff\xfe\"}".to_vec())]);
    }

    #[test]
    fn binary_has_binary_opcode() {
        let frames = decode(&wire(&Outgoing::Binary(Bytes::from_static(b"{}"))));
        assert_eq!(frames, vec![(true, 0x2, b"{}".to_vec())]);
    }

    #[test]
    fn fragments_reassemble_in_order() {
        let item = Outgoing::Fragmented {
            payload: Bytes::from_static(b"{\"eventType\":\"x\"}"),
            frames: 3,
        };
        let frames = decode(&wire(&item));
        let shape: Vec<(bool, u8)> = frames.iter().map(|(fin, op, _)| (*fin, *op)).collect();
        assert_eq!(shape, vec![(false, 0x1), (false, 0x0), (true, 0x0)]);
        let joined: Vec<u8> = frames.into_iter().flat_map(|(_, _, part)| part).collect();
        assert_eq!(joined, b"{\"eventType\":\"x\"}");
    }

    #[test]
    fn close_carries_raw_code() {
        let item = Outgoing::Close {
            code: 1005,
            reason: "bye".to_string(),
        };
        let frames = decode(&wire(&item));
        assert_eq!(frames, vec![(true, 0x8, b"\x03\xedbye".to_vec())]);
    }
}
