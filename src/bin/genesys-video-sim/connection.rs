//! One stream connection after its handshake: the subscription, event frames,
//! heartbeats, delayed pongs, the end of the stream, injected drops and
//! silences, and the ping that follows each hostile frame of a script directive.
//!
//! The connection's thread writes every frame. A reader thread (see `inbound`)
//! passes client frames over a channel, so the writer can wait in one
//! `select!` on client frames, control commands, shutdown and its next timer.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError, at, bounded, never, select};
use log::{info, warn};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Bytes, WebSocket};

use crate::inbound::{self, Inbound, ReadSide};
use crate::options::OnEnd;
use crate::outgoing::{Outgoing, text_frame};
use crate::registry::StreamCommand;
use crate::state::Sim;
use crate::stats::Stats;
use crate::subscription::parse_subscription;

/// Maximum wait for the subscription frame after the handshake.
const SUBSCRIPTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Maximum wait for the client's reply to our close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// A client that takes no data for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Event frames written per flush when unpaced.
const BATCH_FRAMES: usize = 64;
/// Capacity of the channel of client frames. Clients send little more than pings.
const INBOUND_CAPACITY: usize = 256;
/// Interval between feed checks while another connection has the next frames in flight.
const FEED_RECHECK: Duration = Duration::from_millis(100);
/// A paced stream that fell further behind than this restarts its clock instead of bursting.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);
/// Maximum wait for the pong to the ping sent after a hostile frame. A client
/// that sends no pongs gets the next frames after this wait.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const HEARTBEAT: &str = r#"{"eventType":"heartbeat"}"#;

/// Reason a connection ended, for the log.
#[derive(Clone, Debug)]
enum End {
    ClientClosed(String),
    Finished,
    /// A `#close` script line with this close code was sent.
    ScriptClose(u16),
    Rejected(String),
    Dropped(String),
    Gone(String),
    WriteFailed(String),
    Stopping,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::ClientClosed(close) => write!(f, "client closed ({close})"),
            End::Finished => f.write_str("closed normally after the last frame"),
            End::ScriptClose(code) => write!(f, "closed by a #close script line with code {code}"),
            End::Rejected(reason) => write!(f, "closed with a policy error: {reason}"),
            End::Dropped(reason) => write!(f, "dropped {reason}"),
            End::Gone(reason) => write!(f, "connection lost: {reason}"),
            End::WriteFailed(error) => write!(f, "writing failed: {error}"),
            End::Stopping => f.write_str("simulator stopping"),
        }
    }
}

#[derive(Clone, Debug)]
enum Phase {
    AwaitingSubscription,
    Streaming,
    /// Every frame is sent. The stream stays open and replies to pings.
    Holding,
    /// Injected silence: nothing is written until the client gives up. The
    /// reader thread still drains the socket, only to notice the client's close.
    HalfOpen,
    /// Our close frame is sent. `end` is reported once the client replies or the wait times out.
    Closing {
        end: End,
    },
}

/// A fault that fires after a number of event frames on one connection.
enum Trigger {
    Drop(u64),
    HalfOpen(u64),
}

/// A ping sent after a hostile frame. The next frames wait for its pong, which
/// proves that the client read past the hostile frame and kept the connection.
struct Probe {
    payload: Bytes,
    deadline: Instant,
}

/// Frames serialized into one buffer and written with one system call per flush.
struct FrameWriter {
    tcp: TcpStream,
    buffer: Vec<u8>,
}

impl FrameWriter {
    fn queue(&mut self, frame: Frame) {
        // Formatting into a Vec does not fail, because Vec's io::Write implementation returns no errors.
        let _ = frame.format(&mut self.buffer);
    }

    fn queue_outgoing(&mut self, item: &Outgoing) {
        item.format_into(&mut self.buffer);
    }

    fn flush(&mut self) -> Result<(), End> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let written = self.tcp.write_all(&self.buffer);
        self.buffer.clear();
        written.map_err(|error| End::WriteFailed(error.to_string()))
    }
}

struct Connection<'a> {
    sim: &'a Sim,
    id: u64,
    out: FrameWriter,
    inbound: Receiver<Inbound>,
    commands: Receiver<StreamCommand>,
    phase: Phase,
    phase_deadline: Option<Instant>,
    /// Pongs waiting for the injected delay, oldest first.
    pongs: VecDeque<(Instant, Bytes)>,
    /// Event frames written but not yet flushed.
    unconfirmed: Vec<Outgoing>,
    /// Event frames written on this connection, replays included.
    event_frames: u64,
    next_frame_at: Instant,
    next_heartbeat_at: Option<Instant>,
    probe: Option<Probe>,
}

/// Serves an accepted connection until it ends.
pub fn run(sim: &Sim, tcp: TcpStream, socket: WebSocket<ReadSide>, id: u64) {
    Stats::add(&sim.stats.stream_connections, 1);
    let (commands, _registration) = sim.streams.register(id);
    let writer_tcp = tcp
        .set_read_timeout(None)
        .and_then(|()| tcp.set_write_timeout(Some(WRITE_TIMEOUT)))
        .and_then(|()| tcp.try_clone());
    let (inbound_sender, inbound) = bounded(INBOUND_CAPACITY);
    let reader = writer_tcp.and_then(|writer_tcp| {
        let name = format!("stream-{id}-read");
        inbound::spawn(name, socket, inbound_sender).map(|reader| (writer_tcp, reader))
    });
    let (writer_tcp, reader) = match reader {
        Ok(parts) => parts,
        Err(error) => {
            warn!("stream connection {id}: starting its reader failed: {error}");
            let _ = tcp.shutdown(Shutdown::Both);
            return;
        }
    };
    let mut connection = Connection::new(sim, id, writer_tcp, inbound, commands);
    let end = connection.serve();
    connection.release_unconfirmed();
    let event_frames = connection.event_frames;
    // Dropping the connection drops the channel receiver, so a reader blocked on send returns.
    drop(connection);
    let _ = tcp.shutdown(Shutdown::Both);
    let _ = reader.join();
    info!("stream connection {id} ended: {end}; {event_frames} event frames sent on it");
}

impl<'a> Connection<'a> {
    fn new(
        sim: &'a Sim,
        id: u64,
        tcp: TcpStream,
        inbound: Receiver<Inbound>,
        commands: Receiver<StreamCommand>,
    ) -> Self {
        let now = Instant::now();
        Self {
            sim,
            id,
            out: FrameWriter {
                tcp,
                buffer: Vec::new(),
            },
            inbound,
            commands,
            phase: Phase::AwaitingSubscription,
            phase_deadline: Some(now + SUBSCRIPTION_TIMEOUT),
            pongs: VecDeque::new(),
            unconfirmed: Vec::new(),
            event_frames: 0,
            next_frame_at: now,
            next_heartbeat_at: None,
            probe: None,
        }
    }

    fn serve(&mut self) -> End {
        loop {
            if let Err(end) = self.turn() {
                let silent = matches!(self.phase, Phase::HalfOpen | Phase::Closing { .. });
                if matches!(end, End::Stopping) && !silent {
                    self.queue_close(CloseCode::Away, "simulator stopping");
                    let _ = self.out.flush();
                }
                return end;
            }
        }
    }

    /// Handles what is ready, sends what is due, then waits for the next thing to do.
    fn turn(&mut self) -> Result<(), End> {
        self.handle_ready()?;
        if !matches!(self.phase, Phase::HalfOpen) {
            self.send_due_pongs();
            self.send_due_heartbeat();
        }
        if matches!(self.phase, Phase::Streaming) {
            self.expire_probe();
            if self.frame_due() && self.send_frames()? {
                return Ok(());
            }
            self.finish_if_done()?;
        }
        self.out.flush()?;
        self.wait()
    }

    /// Handles commands and client frames that are already waiting, without blocking.
    fn handle_ready(&mut self) -> Result<(), End> {
        if let Err(TryRecvError::Disconnected) = self.sim.stopping().try_recv() {
            return Err(End::Stopping);
        }
        while let Ok(command) = self.commands.try_recv() {
            self.on_command(command)?;
        }
        loop {
            match self.inbound.try_recv() {
                Ok(item) => self.on_inbound(item)?,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(reader_stopped()),
            }
        }
    }

    fn wait(&mut self) -> Result<(), End> {
        let timer = self.next_deadline().map_or_else(never, at);
        select! {
            recv(self.inbound) -> item => match item {
                Ok(item) => self.on_inbound(item),
                Err(_) => Err(reader_stopped()),
            },
            recv(self.commands) -> command => match command {
                Ok(command) => self.on_command(command),
                Err(_) => Err(End::Stopping),
            },
            recv(self.sim.stopping()) -> _ => Err(End::Stopping),
            recv(timer) -> _ => self.on_phase_deadline(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut deadlines = vec![self.phase_deadline, self.pongs.front().map(|(due, _)| *due)];
        match self.phase {
            Phase::Streaming => {
                deadlines.push(self.next_heartbeat_at);
                deadlines.push(self.probe.as_ref().map(|probe| probe.deadline));
                let paced = self.sim.settings.rate > 0.0;
                let recheck = Instant::now() + FEED_RECHECK;
                deadlines.push(Some(if paced { self.next_frame_at } else { recheck }));
            }
            Phase::Holding => deadlines.push(self.next_heartbeat_at),
            _ => {}
        }
        deadlines.into_iter().flatten().min()
    }

    fn on_phase_deadline(&mut self) -> Result<(), End> {
        let expired = self.phase_deadline.is_some_and(|due| due <= Instant::now());
        if !expired {
            return Ok(());
        }
        self.phase_deadline = None;
        match &self.phase {
            Phase::AwaitingSubscription => {
                let reason = format!("no subscription within {}s", SUBSCRIPTION_TIMEOUT.as_secs());
                self.start_close(CloseCode::Policy, &reason, End::Rejected(reason.clone()))
            }
            Phase::Closing { end } => Err(end.clone()),
            _ => Ok(()),
        }
    }

    fn on_command(&mut self, command: StreamCommand) -> Result<(), End> {
        match command {
            StreamCommand::Drop => Err(self.drop_abruptly("on request")),
        }
    }

    fn on_inbound(&mut self, item: Inbound) -> Result<(), End> {
        match item {
            Inbound::Text(text) => self.on_text(&text),
            Inbound::Ping(payload) => {
                self.on_ping(payload);
                Ok(())
            }
            Inbound::Pong(payload) => {
                if self
                    .probe
                    .as_ref()
                    .is_some_and(|probe| probe.payload == payload)
                {
                    self.probe = None;
                }
                Ok(())
            }
            Inbound::Close(frame) => self.on_close(frame),
            Inbound::Ended(reason) => Err(End::Gone(reason)),
        }
    }

    /// Takes the first text frame as the subscription and ignores later ones.
    fn on_text(&mut self, text: &str) -> Result<(), End> {
        if !matches!(self.phase, Phase::AwaitingSubscription) {
            return Ok(());
        }
        match parse_subscription(text) {
            Ok(subscription) => {
                self.sim.streams.record_subscription(self.id, subscription);
                self.start_streaming();
                Ok(())
            }
            Err(reason) => {
                self.start_close(CloseCode::Policy, &reason, End::Rejected(reason.clone()))
            }
        }
    }

    fn start_streaming(&mut self) {
        let now = Instant::now();
        self.phase = Phase::Streaming;
        self.phase_deadline = None;
        self.next_frame_at = now;
        let interval = self.sim.settings.heartbeat_interval;
        self.next_heartbeat_at = (!interval.is_zero()).then(|| now + interval);
    }

    fn on_ping(&mut self, payload: Bytes) {
        Stats::add(&self.sim.stats.pings, 1);
        if matches!(self.phase, Phase::HalfOpen | Phase::Closing { .. }) {
            return;
        }
        let delay = Duration::from_millis(self.sim.faults.lock().pong_delay);
        self.pongs.push_back((Instant::now() + delay, payload));
    }

    /// Replies to the client's close frame, unless the connection is silent on purpose.
    fn on_close(&mut self, frame: Option<CloseFrame>) -> Result<(), End> {
        match &self.phase {
            Phase::HalfOpen => Ok(()),
            Phase::Closing { end } => Err(end.clone()),
            _ => {
                let description = frame
                    .as_ref()
                    .map_or_else(|| "no code".to_string(), |f| format!("code {}", f.code));
                let code = frame.map_or(CloseCode::Normal, |f| f.code);
                self.queue_close(code, "");
                self.out.flush()?;
                Err(End::ClientClosed(description))
            }
        }
    }

    fn send_due_pongs(&mut self) {
        let now = Instant::now();
        while self.pongs.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, payload)) = self.pongs.pop_front() {
                self.out.queue(Frame::pong(payload));
            }
        }
    }

    fn send_due_heartbeat(&mut self) {
        let Some(due) = self.next_heartbeat_at else {
            return;
        };
        let now = Instant::now();
        if due > now || !matches!(self.phase, Phase::Streaming | Phase::Holding) {
            return;
        }
        self.out
            .queue(text_frame(Bytes::from_static(HEARTBEAT.as_bytes())));
        Stats::add(&self.sim.stats.heartbeats_sent, 1);
        self.next_heartbeat_at = Some(now + self.sim.settings.heartbeat_interval);
    }

    fn frame_due(&self) -> bool {
        self.probe.is_none()
            && (self.sim.settings.rate <= 0.0 || Instant::now() >= self.next_frame_at)
    }

    /// Writes due event frames (a batch when unpaced). Returns true when any was written.
    fn send_frames(&mut self) -> Result<bool, End> {
        let mut written = 0;
        while written < BATCH_FRAMES && self.frame_due() {
            let Some(item) = self.sim.feed.lock().take() else {
                break;
            };
            self.out.queue_outgoing(&item);
            let close_code = match &item {
                Outgoing::Close { code, .. } => Some(*code),
                _ => None,
            };
            let hostile = item.is_hostile();
            self.unconfirmed.push(item);
            self.event_frames += 1;
            written += 1;
            self.advance_frame_clock();
            if let Some(trigger) = self.take_trigger() {
                self.flush_frames()?;
                self.fire(trigger)?;
                return Ok(true);
            }
            if let Some(code) = close_code {
                self.flush_frames()?;
                self.await_close_reply(End::ScriptClose(code));
                return Ok(true);
            }
            if hostile {
                self.flush_frames()?;
                self.start_probe()?;
                return Ok(true);
            }
        }
        self.flush_frames()?;
        Ok(written > 0)
    }

    /// Sends a ping after a hostile frame and delays the next frames until its pong.
    fn start_probe(&mut self) -> Result<(), End> {
        let payload = Bytes::from(format!("after-frame-{}", self.event_frames));
        self.out.queue(Frame::ping(payload.clone()));
        self.out.flush()?;
        self.probe = Some(Probe {
            payload,
            deadline: Instant::now() + PROBE_TIMEOUT,
        });
        Ok(())
    }

    fn expire_probe(&mut self) {
        if self
            .probe
            .as_ref()
            .is_some_and(|probe| probe.deadline <= Instant::now())
        {
            warn!(
                "stream connection {}: no pong within {}s after a hostile frame; sending the next frames anyway",
                self.id,
                PROBE_TIMEOUT.as_secs()
            );
            self.probe = None;
        }
    }

    fn advance_frame_clock(&mut self) {
        let rate = self.sim.settings.rate;
        if rate <= 0.0 {
            return;
        }
        let now = Instant::now();
        self.next_frame_at += Duration::from_secs_f64(1.0 / rate);
        if self.next_frame_at + MAX_CATCH_UP < now {
            self.next_frame_at = now;
        }
    }

    /// Flushes the socket and confirms the written event frames to the feed.
    fn flush_frames(&mut self) -> Result<(), End> {
        self.out.flush()?;
        if !self.unconfirmed.is_empty() {
            self.sim.feed.lock().confirm(&self.unconfirmed);
            Stats::add(&self.sim.stats.frames_sent, self.unconfirmed.len() as u64);
            self.unconfirmed.clear();
        }
        Ok(())
    }

    /// Returns an armed drop or silence whose frame count is reached, disarming it.
    fn take_trigger(&self) -> Option<Trigger> {
        let mut faults = self.sim.faults.lock();
        if faults.drop_after > 0 && self.event_frames >= faults.drop_after {
            let count = std::mem::take(&mut faults.drop_after);
            return Some(Trigger::Drop(count));
        }
        if faults.half_open_after > 0 && self.event_frames >= faults.half_open_after {
            let count = std::mem::take(&mut faults.half_open_after);
            return Some(Trigger::HalfOpen(count));
        }
        None
    }

    fn fire(&mut self, trigger: Trigger) -> Result<(), End> {
        match trigger {
            Trigger::Drop(count) => Err(self.drop_abruptly(&format!("after {count} event frames"))),
            Trigger::HalfOpen(count) => {
                info!(
                    "stream connection {}: silent after {count} event frames until the client gives up",
                    self.id
                );
                self.phase = Phase::HalfOpen;
                self.pongs.clear();
                Ok(())
            }
        }
    }

    /// Ends the connection without a close frame. The next connection starts
    /// with the last `replay_overlap` frames again.
    fn drop_abruptly(&mut self, reason: &str) -> End {
        self.release_unconfirmed();
        let overlap = self.sim.faults.lock().replay_overlap;
        self.sim.feed.lock().schedule_replay(overlap);
        End::Dropped(format!("{reason}; {overlap} frames will be sent again"))
    }

    /// Starts the stream's end once every frame is sent: a normal close, or holding it open.
    fn finish_if_done(&mut self) -> Result<(), End> {
        let (done, silent, total) = {
            let feed = self.sim.feed.lock();
            (feed.is_done(), feed.is_silent(), feed.total())
        };
        if !done {
            return Ok(());
        }
        if silent || self.sim.settings.on_end == OnEnd::Hold {
            info!(
                "stream connection {}: all {total} frames sent; holding the stream open",
                self.id
            );
            self.phase = Phase::Holding;
            return Ok(());
        }
        self.start_close(CloseCode::Normal, "end of stream", End::Finished)
    }

    fn start_close(&mut self, code: CloseCode, reason: &str, end: End) -> Result<(), End> {
        self.queue_close(code, reason);
        self.out.flush()?;
        self.await_close_reply(end);
        Ok(())
    }

    /// Waits for the client's close frame after ours was sent, at most `CLOSE_TIMEOUT`.
    fn await_close_reply(&mut self, end: End) {
        self.phase = Phase::Closing { end };
        self.phase_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
    }

    fn queue_close(&mut self, code: CloseCode, reason: &str) {
        // A close reason is limited to 123 bytes (RFC 6455 section 5.5).
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = reason[..end].to_string().into();
        self.out
            .queue(Frame::close(Some(CloseFrame { code, reason })));
    }

    /// Gives frames that were written but never flushed back to the feed.
    fn release_unconfirmed(&mut self) {
        if !self.unconfirmed.is_empty() {
            let frames = std::mem::take(&mut self.unconfirmed);
            self.sim.feed.lock().give_back(frames);
        }
    }
}

fn reader_stopped() -> End {
    End::Gone("reader stopped".to_string())
}
