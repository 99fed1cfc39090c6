//! The API listener: one thread per TCP connection, which reads each request,
//! routes it and writes the reply itself, so no request waits for another
//! connection or for a hand-off between threads.
//!
//! NOTE: tiny_http 0.12.0 served this listener before and lost connections:
//! its `TaskPool::spawn` queues a new connection instead of starting a thread
//! whenever `waiting_tasks > 0`, but that count still includes idle threads
//! already woken for earlier connections. When more connections arrive at once
//! than there are idle threads, the last one stays queued, unread, until some
//! other connection closes. The agent keeps its connections open, so a PUT
//! waited for its 15 s timeout.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use log::{debug, warn};

use crate::http;
use crate::http1::{self, MAX_BODY_BYTES, ReadError, Version};
use crate::state::Sim;

/// Read buffer per connection. A PUT from the agent fits in one read.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Pause after a failed accept (for example too many open files), so the loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Maximum time spent reading what a rejected client still sends before closing.
/// Closing with unread data makes the kernel send a reset, which can destroy
/// the error reply before the client reads it.
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);

/// A bound API listener that does not serve yet.
pub struct ApiServer {
    listener: TcpListener,
    address: SocketAddr,
}

/// The running accept thread.
pub struct ApiHandle {
    address: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl ApiServer {
    pub fn bind(address: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        let address = listener.local_addr()?;
        Ok(Self { listener, address })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Starts the accept thread. Each connection gets its own thread.
    pub fn spawn(self, sim: Arc<Sim>) -> io::Result<ApiHandle> {
        let address = self.address;
        let acceptor = thread::Builder::new()
            .name("api-accept".to_string())
            .spawn(move || accept_connections(&sim, &self.listener))?;
        Ok(ApiHandle { address, acceptor })
    }
}

impl ApiHandle {
    /// Stops accepting connections. Call it once the simulator's stop channel
    /// has disconnected. Open connections close after their current reply.
    pub fn stop(self) {
        // A connection wakes the accept thread, which then checks the stop channel and returns.
        match TcpStream::connect(self.address) {
            Ok(_) => {
                let _ = self.acceptor.join();
            }
            Err(error) => warn!("waking the API accept thread failed: {error}"),
        }
    }
}

fn accept_connections(sim: &Arc<Sim>, listener: &TcpListener) {
    let next_id = AtomicU64::new(1);
    for stream in listener.incoming() {
        if stopping(sim) {
            return;
        }
        match stream {
            Ok(stream) => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                start_connection(sim, stream, id);
            }
            Err(error) => {
                warn!("accepting an API connection failed: {error}");
                if !sim.pause(ACCEPT_RETRY_DELAY) {
                    return;
                }
            }
        }
    }
}

fn start_connection(sim: &Arc<Sim>, stream: TcpStream, id: u64) {
    let thread_sim = Arc::clone(sim);
    let spawned = thread::Builder::new()
        .name(format!("api-{id}"))
        .spawn(move || serve_connection(&thread_sim, stream, id));
    if let Err(error) = spawned {
        warn!("starting a thread for API connection {id} failed: {error}");
    }
}

/// Serves requests on one connection until the client closes it, sends
/// `Connection: close` or an invalid request, or the simulator stops.
fn serve_connection(sim: &Sim, stream: TcpStream, id: u64) {
    // Replies go out in one write, so Nagle's algorithm could only delay them.
    if let Err(error) = stream.set_nodelay(true) {
        debug!("API connection {id}: setting TCP_NODELAY failed: {error}");
    }
    let read_half = match stream.try_clone() {
        Ok(read_half) => read_half,
        Err(error) => {
            warn!("API connection {id}: cloning the socket failed: {error}");
            return;
        }
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, read_half);
    let mut writer = stream;
    let mut out = Vec::new();
    loop {
        let request = match http1::read_request(&mut reader, &mut writer) {
            Ok(request) => request,
            Err(ReadError::Closed) => return,
            Err(ReadError::Io(error)) => {
                debug!("API connection {id}: reading a request failed: {error}");
                return;
            }
            Err(ReadError::Rejected(reply)) => {
                debug!(
                    "API connection {id}: rejected a request with {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
                out.clear();
                http1::write_reply(&mut out, &reply, Version::Http11, false, false);
                if writer.write_all(&out).is_ok() {
                    linger_close(&mut reader, &writer);
                }
                return;
            }
        };
        let reply = http::respond(sim, &request.exchange);
        let keep_alive = request.keep_alive && !stopping(sim);
        let head_request = request.exchange.method == "HEAD";
        out.clear();
        http1::write_reply(&mut out, &reply, request.version, keep_alive, head_request);
        if let Err(error) = writer.write_all(&out) {
            debug!("API connection {id}: sending a reply failed: {error}");
            return;
        }
        if !keep_alive {
            let _ = writer.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// Closes the sending side, then reads and discards what the client still
/// sends for up to `LINGER_TIMEOUT`, so the reply is not lost to a reset.
fn linger_close(reader: &mut impl Read, writer: &TcpStream) {
    let _ = writer.shutdown(Shutdown::Write);
    if writer.set_read_timeout(Some(LINGER_TIMEOUT)).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIMEOUT;
    let mut discarded = 0;
    let mut buffer = [0; 8192];
    while Instant::now() < deadline && discarded <= 2 * MAX_BODY_BYTES {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => discarded += read as u64,
        }
    }
}

fn stopping(sim: &Sim) -> bool {
    matches!(sim.stopping().try_recv(), Err(TryRecvError::Disconnected))
}
