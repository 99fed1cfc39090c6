//! The stream reader thread: it owns the WebSocket, connects with the
//! bearer token, subscribes, hands frames to the dispatcher, keeps the
//! connection alive with pings, and reconnects with jittered backoff.

use std::io::{self, ErrorKind};
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde_json::json;
use tungstenite::client::IntoClientRequest;
use tungstenite::error::{CapacityError, ProtocolError};
use tungstenite::http::{HeaderValue, StatusCode, Uri};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::audit::{Audit, AuditEvent};
use crate::auth::TokenSource;
use crate::backoff;
use crate::connect;
use crate::dispatch::Dispatcher;
use crate::event;
use crate::http::USER_AGENT;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::tls::TrustRoots;

/// The largest message accepted; a bigger one closes the connection.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
const RECONNECT_BASE: Duration = Duration::from_secs(1);
const RECONNECT_CAP: Duration = Duration::from_secs(60);
/// A connection that lived this long resets the reconnect delay.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(60);
/// Limit for the TCP connect, the TLS handshake and the WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

pub struct StreamSettings {
    pub url: String,
    pub states: Vec<String>,
    pub ping_interval: Duration,
    pub exit_on_stream_end: bool,
    pub roots: TrustRoots,
    pub proxies: crate::proxy::ProxySettings,
}

/// The way the reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderEnd {
    /// A stop was requested.
    Stopped,
    /// The server closed the stream normally and `--exit-on-stream-end` is set.
    StreamEnded,
}

/// Lets another thread cut the reader's socket so a blocking read returns
/// at once on shutdown.
#[derive(Clone, Default)]
pub struct SocketCutter {
    socket: Arc<Mutex<Option<TcpStream>>>,
}

impl SocketCutter {
    pub fn cut(&self) {
        if let Some(socket) = self.socket.lock().as_ref() {
            let _ = socket.shutdown(SocketShutdown::Both);
        }
    }

    fn set(&self, socket: Option<TcpStream>) {
        *self.socket.lock() = socket;
    }
}

pub struct Reader {
    pub settings: StreamSettings,
    pub tokens: Arc<TokenSource>,
    pub dispatcher: Dispatcher,
    pub audit: Audit,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
    pub rtt_samples: Sender<Duration>,
    pub cutter: SocketCutter,
}

/// The cause of a connection's end.
enum Disconnect {
    Stopped,
    ServerClosed { code: u16, reason: String },
    Failed(String),
}

impl Reader {
    /// Connects and reads until a stop, reconnecting after every drop.
    pub fn run(self) -> ReaderEnd {
        let mut failures = 0u32;
        let mut connections = 0u64;
        while !self.shutdown.is_stopping() {
            let connected_at = Instant::now();
            let outcome =
                match open_socket(&self.settings, &self.tokens, &self.cutter, &self.shutdown) {
                    Ok(socket) => {
                        connections += 1;
                        if connections > 1 {
                            Metrics::add(&self.metrics.stream_reconnects);
                        }
                        self.connected(connections);
                        let outcome = self.read_loop(socket);
                        self.disconnected(&outcome, connected_at);
                        outcome
                    }
                    Err(reason) => {
                        log::warn!("cannot connect to the event stream: {reason}");
                        Disconnect::Failed(reason)
                    }
                };

            match outcome {
                Disconnect::Stopped => break,
                Disconnect::ServerClosed { code: 1000, .. } if self.settings.exit_on_stream_end => {
                    return ReaderEnd::StreamEnded;
                }
                _ => {}
            }
            if connected_at.elapsed() >= HEALTHY_CONNECTION {
                failures = 0;
            }
            let delay = backoff::full_jitter(RECONNECT_BASE, RECONNECT_CAP, failures);
            failures = failures.saturating_add(1);
            log::info!(
                "reconnecting to the event stream in {:.1}s",
                delay.as_secs_f64()
            );
            if self.shutdown.sleep(delay) {
                break;
            }
        }
        ReaderEnd::Stopped
    }

    fn connected(&self, connections: u64) {
        self.metrics
            .stream_connected
            .store(true, std::sync::atomic::Ordering::Relaxed);
        log::info!("event stream connected to {}", self.settings.url);
        self.audit.record(
            AuditEvent::StreamConnected,
            json!({"url": self.settings.url, "connection": connections}),
        );
    }

    fn disconnected(&self, outcome: &Disconnect, connected_at: Instant) {
        self.metrics
            .stream_connected
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.cutter.set(None);
        let reason = match outcome {
            Disconnect::Stopped => "agent stopping".to_owned(),
            Disconnect::ServerClosed { code, reason } => {
                format!(
                    "server closed the stream (code {code}{})",
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(", {reason}")
                    }
                )
            }
            Disconnect::Failed(reason) => reason.clone(),
        };
        log::info!("event stream disconnected: {reason}");
        self.audit.record(
            AuditEvent::StreamDisconnected,
            json!({"reason": reason, "connectedSeconds": connected_at.elapsed().as_secs_f64()}),
        );
    }

    /// Reads frames until the connection ends, sending a ping every
    /// interval and declaring the connection dead after two silent intervals.
    fn read_loop(&self, mut socket: Socket) -> Disconnect {
        let interval = self.settings.ping_interval;
        let mut keepalive = Keepalive::new(interval);
        let mut read_timeout = ReadTimeout::default();
        loop {
            if self.shutdown.is_stopping() {
                close_quietly(&mut socket);
                return Disconnect::Stopped;
            }
            let now = Instant::now();
            if keepalive.is_dead(now) {
                return Disconnect::Failed(format!(
                    "no frame for {:.1}s (two ping intervals): connection is dead",
                    (interval * 2).as_secs_f64()
                ));
            }
            if keepalive.ping_due(now)
                && let Err(err) = socket.send(Message::Ping(keepalive.next_ping(now).into()))
            {
                return self.read_error(err);
            }
            if let Err(err) =
                read_timeout.update(&socket, keepalive.until_next_check(Instant::now()))
            {
                return Disconnect::Failed(format!("cannot set socket timeout: {err}"));
            }

            match socket.read() {
                Ok(message) => {
                    let received_at = Instant::now();
                    keepalive.heard(received_at);
                    if let Some(end) =
                        self.handle_message(&mut socket, message, received_at, &mut keepalive)
                    {
                        return end;
                    }
                }
                Err(tungstenite::Error::Io(err)) if is_timeout(&err) => {}
                Err(err) => return self.read_error(err),
            }
        }
    }

    fn handle_message(
        &self,
        socket: &mut Socket,
        message: Message,
        received_at: Instant,
        keepalive: &mut Keepalive,
    ) -> Option<Disconnect> {
        match message {
            Message::Text(text) => self.dispatcher.handle_text(text.as_str(), received_at),
            Message::Binary(bytes) => {
                log::warn!(
                    "ignored a binary frame of {} bytes: the stream sends JSON text frames",
                    bytes.len()
                );
            }
            Message::Ping(_) => {
                // tungstenite queued the pong; push it out now.
                if let Err(err) = socket.flush()
                    && !matches!(&err, tungstenite::Error::Io(io) if is_timeout(io))
                {
                    return Some(self.read_error(err));
                }
            }
            Message::Pong(payload) => {
                if let Some(rtt) = keepalive.pong(&payload, received_at) {
                    let _ = self.rtt_samples.try_send(rtt);
                }
            }
            Message::Close(frame) => {
                let (code, reason) = describe_close(frame.as_ref());
                // Complete the closing handshake; errors here change nothing.
                let _ = socket.flush();
                let _ = socket.read();
                return Some(Disconnect::ServerClosed { code, reason });
            }
            Message::Frame(_) => {}
        }
        None
    }

    fn read_error(&self, err: tungstenite::Error) -> Disconnect {
        if self.shutdown.is_stopping() {
            return Disconnect::Stopped;
        }
        let reason = match err {
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                let reason = format!("message of {size} bytes exceeds the {max_size}-byte limit");
                self.dispatcher.malformed(&reason, "");
                format!("protocol error: {reason}")
            }
            tungstenite::Error::Utf8(detail) => {
                self.dispatcher.malformed(
                    "text frame is not valid UTF-8",
                    &event::excerpt(&detail, 200),
                );
                "protocol error: text frame is not valid UTF-8".to_owned()
            }
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                "connection reset without a closing handshake".to_owned()
            }
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                "connection closed".to_owned()
            }
            tungstenite::Error::Io(io) if io.kind() == ErrorKind::UnexpectedEof => {
                "connection closed by the server without a close frame".to_owned()
            }
            other => format!("read failed: {other}"),
        };
        Disconnect::Failed(reason)
    }
}

/// Opens the TCP (and TLS) connection, performs the WebSocket handshake
/// with the bearer token, and sends the subscription frame.
fn open_socket(
    settings: &StreamSettings,
    tokens: &TokenSource,
    cutter: &SocketCutter,
    shutdown: &Shutdown,
) -> Result<Socket, String> {
    let token = tokens.token().map_err(|err| err.to_string())?;
    let mut request = settings
        .url
        .as_str()
        .into_client_request()
        .map_err(|err| format!("invalid events URL: {err}"))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| "the access token holds characters not allowed in a header".to_owned())?;
    request.headers_mut().insert("Authorization", bearer);
    request
        .headers_mut()
        .insert("User-Agent", HeaderValue::from_static(USER_AGENT));

    let stream = open_transport(settings, request.uri(), cutter, shutdown)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let (mut socket, _response) =
        match tungstenite::client::client_with_config(request, stream, Some(config)) {
            Ok(pair) => pair,
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                if response.status() == StatusCode::UNAUTHORIZED {
                    tokens.invalidate(&token);
                    return Err(
                        "WebSocket handshake answered HTTP 401; fetching a new token".to_owned(),
                    );
                }
                return Err(format!(
                    "WebSocket handshake answered HTTP {}",
                    response.status().as_u16()
                ));
            }
            Err(tungstenite::HandshakeError::Failure(err)) => {
                return Err(format!("WebSocket handshake failed: {err}"));
            }
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                return Err(format!(
                    "WebSocket handshake timed out after {}s",
                    CONNECT_TIMEOUT.as_secs()
                ));
            }
        };

    let subscription = json!({
        "eventType": event::VIDEO_EVENT_TYPE,
        "filter": {"state": settings.states},
    });
    socket
        .send(Message::text(subscription.to_string()))
        .map_err(|err| format!("cannot send the subscription frame: {err}"))?;
    Ok(socket)
}

fn open_transport(
    settings: &StreamSettings,
    uri: &Uri,
    cutter: &SocketCutter,
    shutdown: &Shutdown,
) -> Result<MaybeTlsStream<TcpStream>, String> {
    let secure = uri.scheme_str() == Some("wss");
    let host = uri.host().ok_or("events URL has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });

    let tcp = connect::open_tcp(&settings.proxies, host, port, secure, CONNECT_TIMEOUT)?;
    tcp.set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|err| err.to_string())?;
    tcp.set_write_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|err| err.to_string())?;
    let _ = tcp.set_nodelay(true);
    cutter.set(tcp.try_clone().ok());
    if shutdown.is_stopping() {
        return Err("agent stopping".to_owned());
    }
    if !secure {
        return Ok(MaybeTlsStream::Plain(tcp));
    }
    let connector = settings
        .roots
        .native_connector()
        .map_err(|err| err.to_string())?;
    match connector.connect(host, tcp) {
        Ok(tls) => Ok(MaybeTlsStream::NativeTls(tls)),
        Err(native_tls::HandshakeError::Failure(err)) => Err(format!(
            "TLS handshake with {host}:{port} failed: {err} (for a private CA, pass its certificate with --ca-file)"
        )),
        Err(native_tls::HandshakeError::WouldBlock(_)) => Err(format!(
            "TLS handshake with {host}:{port} timed out after {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Connects, subscribes and closes again: the stream part of `check`.
pub fn probe(settings: &StreamSettings, tokens: &TokenSource) -> Result<(), String> {
    let mut socket = open_socket(settings, tokens, &SocketCutter::default(), &Shutdown::new())?;
    close_quietly(&mut socket);
    Ok(())
}

fn describe_close(frame: Option<&CloseFrame>) -> (u16, String) {
    match frame {
        Some(frame) => (
            u16::from(frame.code),
            event::excerpt(frame.reason.as_str(), 120),
        ),
        None => (u16::from(CloseCode::Status), String::new()),
    }
}

fn close_quietly(socket: &mut Socket) {
    let _ = socket.close(None);
    let _ = socket.flush();
}

/// Granularity of the read timeout. Each change is a setsockopt call, so the
/// timeout is rounded down to a multiple of this step and kept while it is
/// still no longer than needed. A busy stream then changes it about ten
/// times a second instead of before every frame. A read still never blocks
/// past the next ping or the dead-connection check.
const READ_TIMEOUT_STEP: Duration = Duration::from_millis(100);

/// The read timeout last set on the socket.
#[derive(Default)]
struct ReadTimeout {
    current: Option<Duration>,
}

impl ReadTimeout {
    /// Makes the next read return within `wanted`, changing the socket
    /// option only when [`next_read_timeout`] returns a new value.
    fn update(&mut self, socket: &Socket, wanted: Duration) -> io::Result<()> {
        if let Some(timeout) = next_read_timeout(self.current, wanted) {
            set_read_timeout(socket, timeout)?;
            self.current = Some(timeout);
        }
        Ok(())
    }
}

/// Returns the read timeout to set when the current one could block past
/// `wanted` or would wake more than one step before it, else None. Within
/// two steps of `wanted` the timeout is exact, so the last reads before a
/// ping do not wake early and often.
fn next_read_timeout(current: Option<Duration>, wanted: Duration) -> Option<Duration> {
    let wanted = wanted.max(Duration::from_millis(1));
    if let Some(current) = current
        && current <= wanted
        && wanted < current + READ_TIMEOUT_STEP
    {
        return None;
    }
    if wanted < READ_TIMEOUT_STEP * 2 {
        return Some(wanted);
    }
    let steps = wanted.as_millis() / READ_TIMEOUT_STEP.as_millis();
    Some(READ_TIMEOUT_STEP * u32::try_from(steps).unwrap_or(u32::MAX))
}

fn set_read_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    match socket.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.set_read_timeout(Some(timeout)),
        MaybeTlsStream::NativeTls(tls) => tls.get_ref().set_read_timeout(Some(timeout)),
        _ => Ok(()),
    }
}

/// Tells whether a read error is a timeout, which shows up as `WouldBlock`
/// or `TimedOut` depending on the platform.
fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The ping schedule and the silence detector of one connection.
struct Keepalive {
    interval: Duration,
    last_heard: Instant,
    next_ping: Instant,
    outstanding: Option<(u64, Instant)>,
    counter: u64,
}

impl Keepalive {
    fn new(interval: Duration) -> Self {
        let now = Instant::now();
        Self {
            interval,
            last_heard: now,
            next_ping: now + interval,
            outstanding: None,
            counter: 0,
        }
    }

    fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    fn is_dead(&self, now: Instant) -> bool {
        now.duration_since(self.last_heard) >= self.interval * 2
    }

    fn ping_due(&self, now: Instant) -> bool {
        now >= self.next_ping
    }

    /// Schedules the next ping and returns this one's payload.
    fn next_ping(&mut self, now: Instant) -> Vec<u8> {
        self.counter += 1;
        self.outstanding = Some((self.counter, now));
        self.next_ping = now + self.interval;
        self.counter.to_be_bytes().to_vec()
    }

    /// Returns the round trip when the pong matches the outstanding ping.
    fn pong(&mut self, payload: &[u8], now: Instant) -> Option<Duration> {
        let (counter, sent_at) = self.outstanding?;
        if payload != counter.to_be_bytes() {
            return None;
        }
        self.outstanding = None;
        Some(now.duration_since(sent_at))
    }

    /// Returns how long the next read may block: until the next ping or the
    /// moment the connection would count as dead, whichever comes first.
    fn until_next_check(&self, now: Instant) -> Duration {
        let dead_at = self.last_heard + self.interval * 2;
        self.next_ping.min(dead_at).saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_timeout_changes_rarely_and_never_overshoots() {
        let interval = Duration::from_secs(30);
        let mut current = None;
        let mut changes = 0;
        // A frame every 100 microseconds for the 30 s up to the next ping.
        for frame in 0..300_000u32 {
            let wanted = interval.saturating_sub(Duration::from_micros(100) * frame);
            if let Some(timeout) = next_read_timeout(current, wanted) {
                current = Some(timeout);
                changes += 1;
            }
            let current = current.unwrap_or_default();
            assert!(
                current <= wanted.max(Duration::from_millis(1)),
                "{current:?} > {wanted:?}"
            );
        }
        assert!(changes < 2_500, "{changes} changes for 300,000 frames");
    }

    #[test]
    fn read_timeout_grows_back_after_ping() {
        let short = next_read_timeout(None, Duration::from_millis(50));
        assert_eq!(short, Some(Duration::from_millis(50)));
        let after_ping = next_read_timeout(short, Duration::from_secs(30));
        assert_eq!(after_ping, Some(Duration::from_secs(30)));
        assert_eq!(
            next_read_timeout(after_ping, Duration::from_millis(29_950)),
            Some(Duration::from_millis(29_900))
        );
        assert_eq!(
            next_read_timeout(
                Some(Duration::from_millis(29_900)),
                Duration::from_millis(29_950)
            ),
            None
        );
    }

    #[test]
    fn keepalive_matches_pongs_and_detects_silence() {
        let interval = Duration::from_secs(30);
        let mut keepalive = Keepalive::new(interval);
        let start = keepalive.last_heard;
        assert!(!keepalive.ping_due(start));
        assert!(keepalive.ping_due(start + interval));
        let payload = keepalive.next_ping(start + interval);
        assert_eq!(keepalive.pong(b"other", start + interval), None);
        let rtt = keepalive.pong(&payload, start + interval + Duration::from_millis(40));
        assert_eq!(rtt, Some(Duration::from_millis(40)));
        assert!(!keepalive.is_dead(start + interval));
        assert!(keepalive.is_dead(start + interval * 2));
        keepalive.heard(start + interval);
        assert!(!keepalive.is_dead(start + interval * 2));
    }
}
