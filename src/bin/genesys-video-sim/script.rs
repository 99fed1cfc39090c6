//! The `--script` format: each non-blank line is one text frame, sent byte for
//! byte, except lines that start with `#`.
//!
//! Directives send frames that the real event stream does not send, to test
//! how a client copes with them:
//!
//! - `#binary TEXT`: TEXT as one binary frame.
//! - `#invalid-utf8`: a text frame whose payload is
//!   `{"eventType":"videoConferenceEvent","data":{"sessionId":"\xff\xfe"}}`
//!   with the raw bytes 0xFF 0xFE, so it is not UTF-8.
//! - `#fragmented N JSON`: JSON as one text message in N frames (a text frame
//!   and N - 1 continuation frames), with 2 <= N <= the length of JSON.
//! - `#oversized N`: a text frame of exactly N bytes (38 at least),
//!   `{"eventType":"heartbeat","padding":"xx…"}`, for the client's size limit.
//! - `#close CODE [REASON]`: a close frame with that code (any 0-65535, sent
//!   as is) and an optional reason of at most 123 bytes.
//!
//! Every other line that starts with `#` is a comment and is skipped. A
//! directive with invalid arguments is an error, so a typo does not silently
//! drop a frame. Each directive is one feed position, like one event line.
//!
//! A client may react to a hostile frame by closing the connection, which would
//! lose the frames written behind it. So after each directive's frames the
//! connection sends a ping and delays the next frames until the pong arrives,
//! for at most 5 s. After a `#close` frame it waits for the client's close
//! frame instead, and the next connection gets the following lines.

use tungstenite::Bytes;

use crate::outgoing::Outgoing;

/// Payload of `#invalid-utf8`: an event whose session id is the bytes 0xFF 0xFE.
pub const INVALID_UTF8_EVENT: &[u8] =
    b"{\"eventType\":\"videoConferenceEvent\",\"data\":{\"sessionId\":\"\xff\xfe\"}}";
const PADDING_PREFIX: &[u8] = b"{\"eventType\":\"heartbeat\",\"padding\":\"";
const PADDING_SUFFIX: &[u8] = b"\"}";
/// Smallest `#oversized` size: the padding object with an empty padding string.
const MIN_OVERSIZED: usize = PADDING_PREFIX.len() + PADDING_SUFFIX.len();
/// Largest `#oversized` size, 64 MiB. The script is held in memory, and the
/// agent's own limit is 1 MiB, so bigger frames test nothing more.
const MAX_OVERSIZED: usize = 64 << 20;
/// Maximum close reason: a control frame payload is at most 125 bytes, two of
/// them for the code (RFC 6455 section 5.5).
const MAX_CLOSE_REASON: usize = 123;

/// Parses a whole script. An error names the 1-based line number.
pub fn parse(content: &[u8]) -> Result<Vec<Outgoing>, String> {
    let mut items = Vec::new();
    for (index, line) in content.split(|&byte| byte == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {}
            Err(message) => return Err(format!("line {}: {message}", index + 1)),
        }
    }
    Ok(items)
}

/// Parses one non-blank line. Returns `None` for a comment.
fn parse_line(line: &[u8]) -> Result<Option<Outgoing>, String> {
    let Some(directive) = line.strip_prefix(b"#") else {
        return Ok(Some(Outgoing::Text(Bytes::copy_from_slice(line))));
    };
    let (name, arguments) = match directive.iter().position(|&byte| byte == b' ') {
        Some(space) => (&directive[..space], &directive[space + 1..]),
        None => (directive, &b""[..]),
    };
    let item = match name {
        b"binary" => Outgoing::Binary(Bytes::copy_from_slice(arguments)),
        b"invalid-utf8" => invalid_utf8(arguments)?,
        b"fragmented" => fragmented(arguments)?,
        b"oversized" => oversized(arguments)?,
        b"close" => close(arguments)?,
        _ => return Ok(None),
    };
    Ok(Some(item))
}

fn invalid_utf8(arguments: &[u8]) -> Result<Outgoing, String> {
    if !arguments.iter().all(u8::is_ascii_whitespace) {
        return Err("#invalid-utf8 takes no arguments".to_string());
    }
    Ok(Outgoing::HostileText(Bytes::from_static(
        INVALID_UTF8_EVENT,
    )))
}

/// Parses `N JSON`.
fn fragmented(arguments: &[u8]) -> Result<Outgoing, String> {
    let usage = "#fragmented expects N JSON, with 2 <= N <= the length of JSON in bytes";
    let (count, payload) = split_word(arguments);
    let count = parse_number::<usize>(count).ok_or(usage)?;
    if payload.is_empty() || count < 2 || count > payload.len() {
        return Err(format!(
            "{usage}; got N = {count} and {} bytes",
            payload.len()
        ));
    }
    Ok(Outgoing::Fragmented {
        payload: Bytes::copy_from_slice(payload),
        frames: count,
    })
}

/// Parses `N` and builds the padding object of exactly N bytes.
fn oversized(arguments: &[u8]) -> Result<Outgoing, String> {
    let size = parse_number::<usize>(arguments.trim_ascii())
        .filter(|size| (MIN_OVERSIZED..=MAX_OVERSIZED).contains(size))
        .ok_or_else(|| {
            format!("#oversized expects a size in bytes from {MIN_OVERSIZED} to {MAX_OVERSIZED}")
        })?;
    let mut payload = Vec::with_capacity(size);
    payload.extend_from_slice(PADDING_PREFIX);
    payload.resize(size - PADDING_SUFFIX.len(), b'x');
    payload.extend_from_slice(PADDING_SUFFIX);
    Ok(Outgoing::HostileText(Bytes::from(payload)))
}

/// Parses `CODE [REASON]`.
fn close(arguments: &[u8]) -> Result<Outgoing, String> {
    let (code, reason) = split_word(arguments);
    let code = parse_number::<u16>(code)
        .ok_or("#close expects a close code from 0 to 65535 and an optional reason")?;
    let reason =
        std::str::from_utf8(reason).map_err(|_| "#close reason is not valid UTF-8".to_string())?;
    if reason.len() > MAX_CLOSE_REASON {
        return Err(format!(
            "#close reason is {} bytes; the maximum is {MAX_CLOSE_REASON}",
            reason.len()
        ));
    }
    Ok(Outgoing::Close {
        code,
        reason: reason.to_string(),
    })
}

/// Splits at the first space: the word and everything after that space.
fn split_word(text: &[u8]) -> (&[u8], &[u8]) {
    match text.iter().position(|&byte| byte == b' ') {
        Some(space) => (&text[..space], &text[space + 1..]),
        None => (text, &[]),
    }
}

/// Parses decimal digits only, so `+5` and `-1` are rejected.
fn parse_number<T: std::str::FromStr>(digits: &[u8]) -> Option<T> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Outgoing {
        let items = parse(line.as_bytes()).unwrap();
        assert_eq!(items.len(), 1, "{line:?} gave {items:?}");
        items.into_iter().next().unwrap()
    }

    fn error(line: &str) -> String {
        parse(line.as_bytes()).unwrap_err()
    }

    #[test]
    fn plain_lines_are_text_frames() {
        let items = parse(b"{\"a\":1}\r\n\n  \n{broken\n").unwrap();
        assert_eq!(
            items,
            vec![
                Outgoing::Text(Bytes::from_static(b"{\"a\":1}")),
                Outgoing::Text(Bytes::from_static(b"{broken")),
            ]
        );
    }

    #[test]
    fn other_hash_lines_are_comments() {
        let items = parse(b"# a comment\n#\n#binaryx 1\n#CLOSE 1000\n{}\n").unwrap();
        assert_eq!(items, vec![Outgoing::Text(Bytes::from_static(b"{}"))]);
    }

    #[test]
    fn binary_sends_rest_of_line() {
        assert_eq!(
            one("#binary {\"eventType\":\"x\"} tail "),
            Outgoing::Binary(Bytes::from_static(b"{\"eventType\":\"x\"} tail "))
        );
        assert_eq!(one("#binary"), Outgoing::Binary(Bytes::new()));
    }

    #[test]
    fn invalid_utf8_payload() {
        let Outgoing::HostileText(payload) = one("#invalid-utf8") else {
            panic!("#invalid-utf8 is not a text frame");
        };
        assert_eq!(&payload[..], INVALID_UTF8_EVENT);
        assert!(std::str::from_utf8(&payload).is_err());
        assert!(error("#invalid-utf8 extra").contains("no arguments"));
    }

    #[test]
    fn fragmented_keeps_json_verbatim() {
        assert_eq!(
            one("#fragmented 3 {\"eventType\": \"x\"}"),
            Outgoing::Fragmented {
                payload: Bytes::from_static(b"{\"eventType\": \"x\"}"),
                frames: 3,
            }
        );
    }

    #[test]
    fn fragmented_rejects_bad_counts() {
        for line in [
            "#fragmented",
            "#fragmented 3",
            "#fragmented x {}",
            "#fragmented 1 {}",
        ] {
            assert!(error(line).contains("#fragmented expects"), "{line}");
        }
        assert!(error("#fragmented 3 {}").contains("N = 3 and 2 bytes"));
        assert!(error("#fragmented -2 {}").contains("#fragmented expects"));
    }

    #[test]
    fn oversized_has_exact_size() {
        for size in [MIN_OVERSIZED, 1 << 20, (1 << 20) + 1] {
            let Outgoing::HostileText(payload) = one(&format!("#oversized {size}")) else {
                panic!("#oversized is not a text frame");
            };
            assert_eq!(payload.len(), size);
            let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(value["eventType"], "heartbeat");
        }
    }

    #[test]
    fn oversized_minimum_matches_docs() {
        assert_eq!(MIN_OVERSIZED, 38);
    }

    #[test]
    fn oversized_rejects_bad_sizes() {
        let too_small = format!("#oversized {}", MIN_OVERSIZED - 1);
        let too_big = format!("#oversized {}", MAX_OVERSIZED + 1);
        for line in [
            "#oversized",
            "#oversized 1e6",
            too_small.as_str(),
            too_big.as_str(),
        ] {
            assert!(error(line).contains("#oversized expects"), "{line}");
        }
    }

    #[test]
    fn close_takes_code_and_reason() {
        assert_eq!(
            one("#close 4000 going away now"),
            Outgoing::Close {
                code: 4000,
                reason: "going away now".to_string(),
            }
        );
        assert_eq!(
            one("#close 1005"),
            Outgoing::Close {
                code: 1005,
                reason: String::new(),
            }
        );
    }

    #[test]
    fn close_rejects_bad_arguments() {
        for line in ["#close", "#close 65536", "#close abc", "#close the door"] {
            assert!(error(line).contains("#close expects"), "{line}");
        }
        let long = format!("#close 1000 {}", "r".repeat(MAX_CLOSE_REASON + 1));
        assert!(error(&long).contains("maximum is 123"));
    }

    #[test]
    fn errors_name_the_line() {
        let message = error("{}\n\n# note\n#oversized 2\n");
        assert!(message.starts_with("line 4: "), "{message}");
    }
}
