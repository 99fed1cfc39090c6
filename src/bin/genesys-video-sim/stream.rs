//! The event stream listener: accepts TCP connections and runs the WebSocket handshake.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{info, warn};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{HeaderValue, StatusCode, header};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{HandshakeError, WebSocket};

use crate::connection;
use crate::http::header_map;
use crate::inbound::ReadSide;
use crate::registry::HandshakeRecord;
use crate::state::Sim;
use crate::tokens::bearer_token;

pub const EVENTS_PATH: &str = "/api/v2/analytics/events/subscribe";
/// Maximum wait for a client to send its handshake request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Maximum client message size. Clients send only a small subscription frame.
const MAX_CLIENT_MESSAGE: usize = 1 << 20;
/// Pause after a failed accept (for example too many open files), so the loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Starts the thread that accepts stream connections, one thread per connection.
pub fn spawn_listener(sim: Arc<Sim>, listener: TcpListener) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("stream-accept".to_string())
        .spawn(move || accept_connections(&sim, &listener))
}

fn accept_connections(sim: &Arc<Sim>, listener: &TcpListener) {
    for stream in listener.incoming() {
        match stream {
            Ok(tcp) => start_connection(sim, tcp),
            Err(error) => {
                warn!("accepting a stream connection failed: {error}");
                if !sim.pause(ACCEPT_RETRY_DELAY) {
                    return;
                }
            }
        }
    }
}

fn start_connection(sim: &Arc<Sim>, tcp: TcpStream) {
    let id = sim.streams.next_id();
    let thread_sim = Arc::clone(sim);
    let spawned = thread::Builder::new()
        .name(format!("stream-{id}"))
        .spawn(move || serve(&thread_sim, tcp, id));
    if let Err(error) = spawned {
        warn!("starting a thread for stream connection {id} failed: {error}");
    }
}

/// Runs one connection: handshake, then the writer loop until it ends.
fn serve(sim: &Sim, tcp: TcpStream, id: u64) {
    let Some(_running) = sim.connection_token() else {
        return;
    };
    let peer = tcp.peer_addr().map_or_else(
        |_| "unknown peer".to_string(),
        |address| address.to_string(),
    );
    let Some(socket) = handshake(sim, &tcp, id, &peer) else {
        let _ = tcp.shutdown(Shutdown::Both);
        return;
    };
    connection::run(sim, tcp, socket, id);
}

/// Accepts the WebSocket handshake when the path and bearer token are valid.
fn handshake(sim: &Sim, tcp: &TcpStream, id: u64, peer: &str) -> Option<WebSocket<ReadSide>> {
    let prepared = tcp
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT)))
        .and_then(|()| tcp.set_nodelay(true))
        .and_then(|()| tcp.try_clone());
    let read_side = match prepared {
        Ok(clone) => ReadSide::new(clone),
        Err(error) => {
            warn!("stream connection {id} from {peer}: socket setup failed: {error}");
            return None;
        }
    };
    let mut record = None;
    // tungstenite fixes the callback's error type (an HTTP response) and its size.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        let (status, message) = check_request(sim, request);
        record = Some(handshake_record(id, request, status));
        if status == StatusCode::SWITCHING_PROTOCOLS {
            Ok(response)
        } else {
            Err(error_response(status, message))
        }
    };
    let config = WebSocketConfig::default().max_message_size(Some(MAX_CLIENT_MESSAGE));
    let outcome = match tungstenite::accept_hdr_with_config(read_side, callback, Some(config)) {
        Ok(socket) => Ok(socket),
        Err(HandshakeError::Interrupted(_)) => Err("timed out".to_string()),
        Err(HandshakeError::Failure(error)) => Err(error.to_string()),
    };
    log_handshake(sim, id, peer, record, outcome)
}

fn log_handshake(
    sim: &Sim,
    id: u64,
    peer: &str,
    record: Option<HandshakeRecord>,
    outcome: Result<WebSocket<ReadSide>, String>,
) -> Option<WebSocket<ReadSide>> {
    let user_agent = record
        .as_ref()
        .and_then(|record| record.headers.get("user-agent").cloned())
        .unwrap_or_else(|| "none".to_string());
    if let Some(record) = record {
        sim.streams.record_handshake(record);
    }
    match outcome {
        Ok(mut socket) => {
            socket.get_mut().discard_writes();
            info!("stream connection {id} from {peer} accepted (User-Agent: {user_agent})");
            Some(socket)
        }
        Err(reason) => {
            info!("stream connection {id} from {peer} rejected: {reason}");
            None
        }
    }
}

/// Returns 101 for a valid request, or else the error status and its message.
fn check_request(sim: &Sim, request: &Request) -> (StatusCode, &'static str) {
    if request.uri().path() != EVENTS_PATH {
        return (StatusCode::NOT_FOUND, "no event stream at this path");
    }
    if sim.faults.lock().refuse_streams {
        return (StatusCode::SERVICE_UNAVAILABLE, "injected stream refusal");
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match bearer_token(authorization) {
        Some(token) if sim.tokens.is_valid(token) => (StatusCode::SWITCHING_PROTOCOLS, ""),
        _ => (
            StatusCode::UNAUTHORIZED,
            "missing, unknown, expired or revoked bearer token",
        ),
    }
}

fn error_response(status: StatusCode, message: &str) -> ErrorResponse {
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    let mut response = ErrorResponse::new(Some(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn handshake_record(id: u64, request: &Request, status: StatusCode) -> HandshakeRecord {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    HandshakeRecord {
        connection: id,
        path: request.uri().to_string(),
        headers: header_map(&headers),
        status: status.as_u16(),
        subscription: None,
    }
}
