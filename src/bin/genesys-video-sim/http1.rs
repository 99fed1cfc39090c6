//! HTTP/1.1 message framing for the API listener (RFC 9112): reading one
//! request from a connection and serializing one reply.
//!
//! Requests may carry a `Content-Length` or a chunked body and may ask for
//! `100 Continue`. HTTP/1.0 clients (nginx talks to its upstreams in 1.0 by
//! default) get `Connection: keep-alive` only when they ask for it.

use std::io::{self, BufRead, Read, Write};
use std::time::SystemTime;

use log::warn;
use tungstenite::http::StatusCode;

use crate::http::{Exchange, Reply};

/// Maximum size of the request line and headers together. Bigger heads get 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Maximum number of header lines. More get 431.
const MAX_HEADERS: usize = 100;
/// Maximum request body size in bytes. Bigger bodies get 413.
pub const MAX_BODY_BYTES: u64 = 1 << 20;
/// Maximum length of one chunk-size line or trailer line of a chunked body.
const MAX_CHUNK_LINE: usize = 4096;
/// Empty lines skipped before a request line. RFC 9112 section 2.2 says a
/// server SHOULD ignore at least one.
const MAX_LEADING_EMPTY_LINES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A request read in full, and whether the connection stays open after its reply.
pub struct Request {
    pub exchange: Exchange,
    pub version: Version,
    pub keep_alive: bool,
}

#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection, between requests or in the middle of one.
    Closed,
    Io(io::Error),
    /// The request is invalid. The reply is sent, then the connection closes,
    /// because the start of the next request is unknown.
    Rejected(Reply),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::UnexpectedEof => ReadError::Closed,
            _ => ReadError::Io(error),
        }
    }
}

/// Framing of a request body: a known length, or chunked (RFC 9112 section 6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
}

struct Head {
    method: String,
    target: String,
    version: Version,
    /// Names in lower case, in the order received.
    headers: Vec<(String, String)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns true when a `Connection` header lists `option` (case-insensitive).
    fn connection_has(&self, option: &str) -> bool {
        self.values("connection")
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case(option))
    }
}

/// Reads the next request. `interim` receives `100 Continue` when the client
/// asks for it before sending its body.
pub fn read_request(
    reader: &mut impl BufRead,
    interim: &mut impl Write,
) -> Result<Request, ReadError> {
    let head = read_head(reader)?;
    let framing = framing(&head)?;

    let mut keep_alive = match head.version {
        Version::Http11 => !head.connection_has("close"),
        Version::Http10 => head.connection_has("keep-alive"),
    };
    // A body framed by Transfer-Encoding in HTTP/1.0 or next to a Content-Length
    // may have been framed differently by an intermediary, so the connection
    // closes after the reply (RFC 9112 section 6.1).
    let transfer_encoded = head.values("transfer-encoding").next().is_some();
    if transfer_encoded && (head.version == Version::Http10 || has_content_length(&head)) {
        keep_alive = false;
    }

    if expects_continue(&head)? && framing != Framing::Length(0) {
        interim.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        interim.flush()?;
    }
    let body = match framing {
        Framing::Length(length) => read_exact_body(reader, length)?,
        Framing::Chunked => read_chunked_body(reader)?,
    };

    let path = origin_path(&head.target).to_string();
    let exchange = Exchange {
        method: head.method,
        url: head.target,
        path,
        headers: head.headers,
        body,
    };
    Ok(Request {
        exchange,
        version: head.version,
        keep_alive,
    })
}

fn read_head(reader: &mut impl BufRead) -> Result<Head, ReadError> {
    let mut budget = MAX_HEAD_BYTES;
    let mut line = Vec::new();
    let mut skipped = 0;
    loop {
        read_line(reader, &mut line, &mut budget, head_too_large)?;
        if !line.is_empty() || skipped == MAX_LEADING_EMPTY_LINES {
            break;
        }
        skipped += 1;
    }
    let (method, target, version) = parse_request_line(&line)?;
    let mut headers = Vec::new();
    loop {
        read_line(reader, &mut line, &mut budget, head_too_large)?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(head_too_large());
        }
        headers.push(parse_header_line(&line)?);
    }
    Ok(Head {
        method,
        target,
        version,
        headers,
    })
}

/// Reads one line into `line` without its LF or CRLF, spending `budget` bytes.
/// A bare LF also ends a line (RFC 9112 section 2.2 allows servers to accept it).
fn read_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    budget: &mut usize,
    too_long: fn() -> ReadError,
) -> Result<(), ReadError> {
    line.clear();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX);
    let read = reader.by_ref().take(limit).read_until(b'\n', line)?;
    if line.last() != Some(&b'\n') {
        return Err(if read == *budget {
            too_long()
        } else {
            ReadError::Closed
        });
    }
    *budget -= read;
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(())
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, Version), ReadError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| bad_request("the request line is not valid UTF-8"))?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_request(&format!(
            "invalid request line '{}': expected METHOD TARGET HTTP/1.1",
            excerpt(text)
        )));
    };
    if !is_token(method) {
        return Err(bad_request(&format!(
            "invalid method '{}'",
            excerpt(method)
        )));
    }
    if target.is_empty() || target.bytes().any(|byte| byte.is_ascii_control()) {
        return Err(bad_request("invalid request target"));
    }
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        other if other.starts_with("HTTP/") => {
            let message = format!(
                "HTTP version {} is not supported; use HTTP/1.1",
                excerpt(other)
            );
            return Err(ReadError::Rejected(Reply::error(
                505,
                "http_version_not_supported",
                &message,
            )));
        }
        other => {
            return Err(bad_request(&format!(
                "invalid HTTP version '{}'",
                excerpt(other)
            )));
        }
    };
    Ok((method.to_string(), target.to_string(), version))
}

/// Splits `name: value`, with the name in lower case and the value without surrounding blanks.
fn parse_header_line(line: &[u8]) -> Result<(String, String), ReadError> {
    if line
        .first()
        .is_some_and(|byte| matches!(byte, b' ' | b'\t'))
    {
        // Line folding is obsolete (RFC 9112 section 5.2).
        return Err(bad_request("folded header lines are not supported"));
    }
    let text =
        std::str::from_utf8(line).map_err(|_| bad_request("a header line is not valid UTF-8"))?;
    let Some((name, value)) = text.split_once(':') else {
        return Err(bad_request(&format!(
            "invalid header line '{}': expected NAME: VALUE",
            excerpt(text)
        )));
    };
    // No whitespace is allowed between the name and the colon (RFC 9112 section 5.1).
    if !is_token(name) {
        return Err(bad_request(&format!(
            "invalid header name '{}'",
            excerpt(name)
        )));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
        return Err(bad_request(&format!(
            "header {name} contains a control character"
        )));
    }
    Ok((name.to_ascii_lowercase(), value.to_string()))
}

/// Decides how the body is framed, or rejects a request whose framing is invalid.
fn framing(head: &Head) -> Result<Framing, ReadError> {
    let codings: Vec<&str> = head
        .values("transfer-encoding")
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|coding| !coding.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        // Chunked must be the final coding of a request (RFC 9112 section 6.3).
        if !last.eq_ignore_ascii_case("chunked") {
            let message = format!(
                "unsupported Transfer-Encoding '{}': the final coding must be chunked",
                codings.join(", ")
            );
            return Err(ReadError::Rejected(Reply::error(
                501,
                "not_implemented",
                &message,
            )));
        }
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for value in head.values("content-length").flat_map(|v| v.split(',')) {
        let value = value.trim();
        let parsed = value
            .bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| value.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| bad_request(&format!("invalid Content-Length '{}'", excerpt(value))))?;
        if length.is_some_and(|seen| seen != parsed) {
            return Err(bad_request("conflicting Content-Length values"));
        }
        length = Some(parsed);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return Err(body_too_large());
    }
    Ok(Framing::Length(length))
}

fn has_content_length(head: &Head) -> bool {
    head.values("content-length").next().is_some()
}

/// Returns true for `Expect: 100-continue`. Other expectations get 417.
fn expects_continue(head: &Head) -> Result<bool, ReadError> {
    let Some(value) = head.values("expect").next() else {
        return Ok(false);
    };
    if value.eq_ignore_ascii_case("100-continue") {
        // HTTP/1.0 clients do not understand 1xx replies (RFC 9110 section 15.2).
        return Ok(head.version == Version::Http11);
    }
    let message = format!("unsupported expectation '{}'", excerpt(value));
    Err(ReadError::Rejected(Reply::error(
        417,
        "expectation_failed",
        &message,
    )))
}

fn read_exact_body(reader: &mut impl BufRead, length: u64) -> Result<Vec<u8>, ReadError> {
    // The length is at most MAX_BODY_BYTES, checked in `framing`.
    let mut body = vec![0; length as usize];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// Decodes a chunked body (RFC 9112 section 7.1). Chunk extensions and trailers are ignored.
fn read_chunked_body(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        let mut budget = MAX_CHUNK_LINE;
        read_line(reader, &mut line, &mut budget, chunk_line_too_long)?;
        let size = parse_chunk_size(&line)?;
        if size == 0 {
            break;
        }
        let total = body.len() as u64 + size;
        if total > MAX_BODY_BYTES {
            return Err(body_too_large());
        }
        let start = body.len();
        body.resize(total as usize, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader, &mut line, &mut budget, chunk_line_too_long)?;
        if !line.is_empty() {
            return Err(bad_request("chunk data is longer than its size"));
        }
    }
    loop {
        let mut budget = MAX_CHUNK_LINE;
        read_line(reader, &mut line, &mut budget, chunk_line_too_long)?;
        if line.is_empty() {
            return Ok(body);
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, ReadError> {
    let digits_end = line
        .iter()
        .position(|byte| !byte.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let rest = &line[digits_end..];
    let valid_rest = rest.is_empty() || matches!(rest[0], b';' | b' ' | b'\t');
    let size = std::str::from_utf8(&line[..digits_end])
        .ok()
        .filter(|digits| !digits.is_empty() && valid_rest)
        .and_then(|digits| u64::from_str_radix(digits, 16).ok());
    size.ok_or_else(|| bad_request("invalid chunk size line"))
}

/// Returns the path and query of a request target. An absolute-form target
/// (`http://host/path`, sent to proxies) loses its scheme and authority.
fn origin_path(target: &str) -> &str {
    let without_query = target.split('?').next().unwrap_or_default();
    let Some((_, after_scheme)) = without_query.split_once("://") else {
        return without_query;
    };
    after_scheme
        .find('/')
        .map_or("/", |start| &after_scheme[start..])
}

/// Serializes `reply` into `out`: status line, headers, `Content-Length` and the body.
/// A reply to HEAD, and any 1xx, 204 or 304 reply, has no body.
pub fn write_reply(
    out: &mut Vec<u8>,
    reply: &Reply,
    version: Version,
    keep_alive: bool,
    head_request: bool,
) {
    let reason = StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("");
    // Writing into a Vec does not fail, because Vec's io::Write implementation returns no errors.
    let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", reply.status);
    let _ = write!(
        out,
        "Date: {}\r\nServer: genesys-video-sim\r\n",
        httpdate::fmt_http_date(SystemTime::now())
    );
    for (name, value) in &reply.headers {
        if is_token(name) && is_field_value(value) {
            let _ = write!(out, "{name}: {value}\r\n");
        } else {
            warn!("skipping reply header {name:?} with an invalid name or value {value:?}");
        }
    }
    let no_body = matches!(reply.status, 100..=199 | 204 | 304);
    if !no_body {
        let _ = write!(out, "Content-Length: {}\r\n", reply.body.len());
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !no_body && !head_request {
        out.extend_from_slice(&reply.body);
    }
}

/// Returns true when `text` is a non-empty RFC 9110 token (method or header name).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Returns true when `text` can be sent as a header value: visible ASCII,
/// spaces and tabs. This keeps a fault setting such as `retry_after` from
/// adding header lines.
fn is_field_value(text: &str) -> bool {
    text.bytes()
        .all(|byte| byte == b'\t' || (b' '..=b'~').contains(&byte))
}

/// Shortens client input quoted in an error message.
fn excerpt(text: &str) -> &str {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn bad_request(message: &str) -> ReadError {
    ReadError::Rejected(Reply::error(400, "bad_request", message))
}

fn head_too_large() -> ReadError {
    let message =
        format!("request line and headers are over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} lines");
    ReadError::Rejected(Reply::error(
        431,
        "request_header_fields_too_large",
        &message,
    ))
}

fn chunk_line_too_long() -> ReadError {
    bad_request(&format!(
        "a chunk size or trailer line is over {MAX_CHUNK_LINE} bytes"
    ))
}

fn body_too_large() -> ReadError {
    let message = format!("request body is over {MAX_BODY_BYTES} bytes");
    ReadError::Rejected(Reply::error(413, "payload_too_large", &message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read(raw: &str) -> (Result<Request, ReadError>, Vec<u8>) {
        let mut reader = Cursor::new(raw.as_bytes().to_vec());
        let mut interim = Vec::new();
        let result = read_request(&mut reader, &mut interim);
        (result, interim)
    }

    fn read_ok(raw: &str) -> Request {
        match read(raw).0 {
            Ok(request) => request,
            Err(error) => panic!("{raw:?} was rejected: {error:?}"),
        }
    }

    fn rejected_status(raw: &str) -> u16 {
        match read(raw).0 {
            Err(ReadError::Rejected(reply)) => reply.status,
            Err(other) => panic!("{raw:?}: expected a rejection, got {other:?}"),
            Ok(_) => panic!("{raw:?}: expected a rejection, got a request"),
        }
    }

    #[test]
    fn reads_put_with_length() {
        let raw = "PUT /api/v2/videoconferences/a?x=1 HTTP/1.1\r\nHost: h\r\n\
                   Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let request = read_ok(raw);
        assert_eq!(request.exchange.method, "PUT");
        assert_eq!(request.exchange.url, "/api/v2/videoconferences/a?x=1");
        assert_eq!(request.exchange.path, "/api/v2/videoconferences/a");
        assert_eq!(
            request.exchange.header("content-type"),
            Some("application/json")
        );
        assert_eq!(request.exchange.body, b"{}");
        assert!(request.keep_alive);
    }

    #[test]
    fn reads_pipelined_requests_in_order() {
        let raw = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut reader = Cursor::new(raw.as_bytes().to_vec());
        let mut interim = Vec::new();
        let first = read_request(&mut reader, &mut interim).unwrap();
        let second = read_request(&mut reader, &mut interim).unwrap();
        assert_eq!(first.exchange.path, "/a");
        assert_eq!(second.exchange.path, "/b");
        assert!(matches!(
            read_request(&mut reader, &mut interim),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn decodes_chunked_body() {
        let raw = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                   3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
        assert_eq!(read_ok(raw).exchange.body, b"abcde");
    }

    #[test]
    fn connection_header_decides_keep_alive() {
        let close = read_ok("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(!close.keep_alive);
        let old = read_ok("GET / HTTP/1.0\r\n\r\n");
        assert!(!old.keep_alive);
        let old_kept = read_ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(old_kept.keep_alive);
    }

    #[test]
    fn accepts_bare_lf_and_leading_empty_line() {
        let request = read_ok("\r\nGET /x HTTP/1.1\nHost: h\n\n");
        assert_eq!(request.exchange.path, "/x");
        assert_eq!(request.exchange.header("host"), Some("h"));
    }

    #[test]
    fn absolute_form_target_routes_by_path() {
        let request = read_ok("GET http://127.0.0.1:8080/_sim/stats?a HTTP/1.1\r\n\r\n");
        assert_eq!(request.exchange.path, "/_sim/stats");
        assert_eq!(origin_path("http://host"), "/");
    }

    #[test]
    fn sends_continue_only_when_asked() {
        let raw = "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx";
        let (result, interim) = read(raw);
        assert_eq!(result.unwrap().exchange.body, b"x");
        assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        let (_, interim) = read("PUT /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
        assert!(interim.is_empty());
        assert_eq!(
            rejected_status("PUT /x HTTP/1.1\r\nExpect: magic\r\n\r\n"),
            417
        );
    }

    #[test]
    fn rejects_invalid_framing() {
        let cases = [
            ("GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: 2097152\r\n\r\n", 413),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
                400,
            ),
        ];
        for (raw, status) in cases {
            assert_eq!(rejected_status(raw), status, "{raw:?}");
        }
    }

    #[test]
    fn rejects_invalid_heads() {
        let cases = [
            ("GET /\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\n\r\n", 400),
            ("G@T / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET / HTTP/1.1\r\nName : v\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400),
        ];
        for (raw, status) in cases {
            assert_eq!(rejected_status(raw), status, "{raw:?}");
        }
    }

    #[test]
    fn rejects_oversized_head() {
        let raw = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(rejected_status(&raw), 431);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            rejected_status(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            431
        );
    }

    #[test]
    fn truncated_request_is_closed() {
        for raw in [
            "",
            "GET / HT",
            "PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
        ] {
            assert!(matches!(read(raw).0, Err(ReadError::Closed)), "{raw:?}");
        }
    }

    #[test]
    fn writes_reply_with_length_and_connection() {
        let reply = Reply::json(200, &serde_json::json!({"a": 1}));
        let mut out = Vec::new();
        write_reply(&mut out, &reply, Version::Http10, true, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("\r\nContent-Type: application/json\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nContent-Length: 7\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: keep-alive\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"a\":1}"), "{text}");
    }

    #[test]
    fn head_reply_has_no_body() {
        let reply = Reply::json(200, &serde_json::json!({"a": 1}));
        let mut out = Vec::new();
        write_reply(&mut out, &reply, Version::Http11, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nContent-Length: 7\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
