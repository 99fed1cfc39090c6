//! The audit trail: a handle that queues entries and the writer thread that
//! owns the audit file (JSON lines, flushed per batch, fsynced every second).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, after, never, select_biased};
use serde_json::Value;

/// The audit events of the product contract; their names are read by other tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditEvent {
    AgentStarted,
    AgentStopped,
    TokenRefreshed,
    StreamConnected,
    StreamDisconnected,
    MalformedEvent,
    ValidationFailed,
    StateApplied,
    StateSuperseded,
    RateLimited,
    UpdateFailed,
    CodecNegotiation,
    EventCoalesced,
    CalendarSync,
    CalendarSyncFailed,
    PipelineMetrics,
}

impl AuditEvent {
    pub const ALL: [AuditEvent; 16] = [
        AuditEvent::AgentStarted,
        AuditEvent::AgentStopped,
        AuditEvent::TokenRefreshed,
        AuditEvent::StreamConnected,
        AuditEvent::StreamDisconnected,
        AuditEvent::MalformedEvent,
        AuditEvent::ValidationFailed,
        AuditEvent::StateApplied,
        AuditEvent::StateSuperseded,
        AuditEvent::RateLimited,
        AuditEvent::UpdateFailed,
        AuditEvent::CodecNegotiation,
        AuditEvent::EventCoalesced,
        AuditEvent::CalendarSync,
        AuditEvent::CalendarSyncFailed,
        AuditEvent::PipelineMetrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::AgentStarted => "AGENT_STARTED",
            AuditEvent::AgentStopped => "AGENT_STOPPED",
            AuditEvent::TokenRefreshed => "TOKEN_REFRESHED",
            AuditEvent::StreamConnected => "STREAM_CONNECTED",
            AuditEvent::StreamDisconnected => "STREAM_DISCONNECTED",
            AuditEvent::MalformedEvent => "MALFORMED_EVENT",
            AuditEvent::ValidationFailed => "VALIDATION_FAILED",
            AuditEvent::StateApplied => "STATE_APPLIED",
            AuditEvent::StateSuperseded => "STATE_SUPERSEDED",
            AuditEvent::RateLimited => "RATE_LIMITED",
            AuditEvent::UpdateFailed => "UPDATE_FAILED",
            AuditEvent::CodecNegotiation => "CODEC_NEGOTIATION",
            AuditEvent::EventCoalesced => "EVENT_COALESCED",
            AuditEvent::CalendarSync => "CALENDAR_SYNC",
            AuditEvent::CalendarSyncFailed => "CALENDAR_SYNC_FAILED",
            AuditEvent::PipelineMetrics => "PIPELINE_METRICS",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One audit record, stamped when it is created rather than when it is written.
#[derive(Debug)]
pub struct AuditEntry {
    pub timestamp: SystemTime,
    pub event: AuditEvent,
    pub data: Value,
}

enum Command {
    Record(AuditEntry),
    /// Reopen the file (after logrotate moved it) and confirm on the channel.
    Reopen,
}

/// Entries queued between the agent's threads and the writer. A full queue
/// makes senders wait for the disk, which is the back-pressure we want: an
/// audit trail that silently drops entries is worse than a slower agent.
const QUEUE_CAPACITY: usize = 4096;

/// Entries kept in memory while the file cannot be written (disk full);
/// beyond this the oldest are dropped and counted, so memory stays bounded.
const MAX_PENDING_ENTRIES: usize = 50_000;

const FSYNC_INTERVAL: Duration = Duration::from_secs(1);
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// A cheap, cloneable handle for recording audit entries.
#[derive(Clone)]
pub struct Audit {
    sender: Sender<Command>,
}

impl Audit {
    /// Queues an entry. A closed writer means the agent is stopping; the entry
    /// is then logged at warn level instead of being lost silently.
    pub fn record(&self, event: AuditEvent, data: Value) {
        let entry = AuditEntry {
            timestamp: SystemTime::now(),
            event,
            data,
        };
        if let Err(err) = self.sender.send(Command::Record(entry))
            && let Command::Record(entry) = err.into_inner()
        {
            log::warn!(
                "audit writer stopped; dropped {} entry",
                entry.event.as_str()
            );
        }
    }

    /// Asks the writer to reopen the audit file (SIGHUP, after logrotate).
    pub fn reopen(&self) {
        let _ = self.sender.send(Command::Reopen);
    }

    /// Creates a handle whose entries go only to a channel the caller reads, for tests.
    pub fn capture() -> (Audit, Receiver<AuditEntry>) {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let (entry_sender, entry_receiver) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for command in receiver {
                if let Command::Record(entry) = command {
                    let _ = entry_sender.send(entry);
                }
            }
        });
        (Audit { sender }, entry_receiver)
    }
}

/// A request to reopen the audit file, sent from a SIGHUP handler.
#[derive(Clone)]
pub struct ReopenSignal {
    sender: Sender<()>,
    receiver: Receiver<()>,
}

impl ReopenSignal {
    pub fn new() -> Self {
        // One pending request is enough: a reopen covers every SIGHUP before it.
        let (sender, receiver) = crossbeam_channel::bounded(1);
        Self { sender, receiver }
    }

    pub fn request(&self) {
        let _ = self.sender.try_send(());
    }
}

impl Default for ReopenSignal {
    fn default() -> Self {
        Self::new()
    }
}

/// The writer's totals when it stops.
#[derive(Debug, Clone, Default)]
pub struct AuditTotals {
    pub written: u64,
    pub dropped: u64,
    pub per_event: Vec<(AuditEvent, u64)>,
}

/// The writer thread's handle: drop every [`Audit`] clone, then `join`.
pub struct AuditWriter {
    handle: JoinHandle<AuditTotals>,
}

impl AuditWriter {
    /// Opens (creating with mode 0600) the audit file and starts the writer thread.
    pub fn start(path: &Path, reopen: ReopenSignal) -> io::Result<(Audit, AuditWriter)> {
        let file = open_audit_file(path)?;
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let mut actor = WriterActor::new(path.to_path_buf(), file);
        let handle = thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                actor.run(receiver, reopen.receiver);
                actor.totals()
            })?;
        Ok((Audit { sender }, AuditWriter { handle }))
    }

    /// Waits for the writer to drain, flush and fsync after every sender is gone.
    pub fn join(self) -> AuditTotals {
        self.handle.join().unwrap_or_else(|_| {
            log::error!("audit writer thread panicked");
            AuditTotals::default()
        })
    }
}

fn open_audit_file(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // Read access lets the torn-tail check look at the last byte.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)?;
    repair_torn_tail(&file)?;
    Ok(file)
}

/// Ends the file with a newline when a crash left a partial last line, so
/// the next entry starts on a line of its own and readers can skip the
/// damaged one.
fn repair_torn_tail(file: &File) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.read_at(&mut last, len - 1)?;
    if last[0] != b'\n' {
        log::warn!("audit file ended with a partial line (an earlier crash?); starting a new line");
        let mut writer = file;
        writer.write_all(b"\n")?;
    }
    Ok(())
}

struct WriterActor {
    path: PathBuf,
    file: Option<File>,
    /// Serialized lines not yet written to the file.
    pending: Vec<u8>,
    pending_entries: usize,
    needs_fsync: bool,
    last_fsync: Instant,
    failing: bool,
    written: u64,
    dropped: u64,
    per_event: [u64; AuditEvent::ALL.len()],
}

impl WriterActor {
    fn new(path: PathBuf, file: File) -> Self {
        Self {
            path,
            file: Some(file),
            pending: Vec::with_capacity(64 * 1024),
            pending_entries: 0,
            needs_fsync: false,
            last_fsync: Instant::now(),
            failing: false,
            written: 0,
            dropped: 0,
            per_event: [0; AuditEvent::ALL.len()],
        }
    }

    fn run(&mut self, receiver: Receiver<Command>, reopen: Receiver<()>) {
        let mut stopped = false;
        while !stopped {
            let timer = if self.needs_fsync || self.pending_entries > 0 {
                after(FSYNC_INTERVAL.min(RETRY_INTERVAL))
            } else {
                never()
            };
            select_biased! {
                recv(receiver) -> command => match command {
                    Ok(command) => {
                        self.handle(command);
                        self.drain_ready(&receiver);
                        self.write_pending();
                    }
                    Err(_) => stopped = true,
                },
                recv(reopen) -> _ => self.reopen(),
                recv(timer) -> _ => self.write_pending(),
            }
            if self.needs_fsync && self.last_fsync.elapsed() >= FSYNC_INTERVAL {
                self.fsync();
            }
        }
        self.write_pending();
        self.fsync();
    }

    /// Takes every command already queued so one write and flush covers the batch.
    fn drain_ready(&mut self, receiver: &Receiver<Command>) {
        for _ in 0..QUEUE_CAPACITY {
            match receiver.try_recv() {
                Ok(command) => self.handle(command),
                Err(_) => break,
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Record(entry) => self.append(entry),
            Command::Reopen => self.reopen(),
        }
    }

    fn append(&mut self, entry: AuditEntry) {
        if self.pending_entries >= MAX_PENDING_ENTRIES {
            self.dropped += 1;
            if self.dropped == 1 || self.dropped.is_multiple_of(10_000) {
                log::error!(
                    "audit file {} cannot be written and {MAX_PENDING_ENTRIES} entries are waiting; {} entries dropped so far",
                    self.path.display(),
                    self.dropped
                );
            }
            return;
        }
        let line = AuditLine {
            timestamp: humantime::format_rfc3339_millis(entry.timestamp),
            event: entry.event.as_str(),
            data: &entry.data,
        };
        // Writing plain structs and a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.pending, &line);
        self.pending.push(b'\n');
        self.pending_entries += 1;
        self.per_event[entry.event.index()] += 1;
    }

    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.file.is_none() {
            self.try_open();
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        match file.write_all(&self.pending) {
            Ok(()) => {
                if self.failing {
                    log::info!("audit file {} is writable again", self.path.display());
                    self.failing = false;
                }
                self.written += self.pending_entries as u64;
                self.pending.clear();
                self.pending_entries = 0;
                self.needs_fsync = true;
            }
            Err(err) => self.write_failed(err),
        }
    }

    /// Keeps the entries for the next try. A partial write may have left part
    /// of the batch in the file; the repair on reopen ends that line.
    fn write_failed(&mut self, err: io::Error) {
        if !self.failing {
            log::error!(
                "cannot write audit file {}: {err}; keeping up to {MAX_PENDING_ENTRIES} entries in memory and retrying every second",
                self.path.display()
            );
            self.failing = true;
        }
        self.file = None;
    }

    fn try_open(&mut self) {
        match open_audit_file(&self.path) {
            Ok(file) => self.file = Some(file),
            Err(err) => {
                if !self.failing {
                    log::error!("cannot open audit file {}: {err}", self.path.display());
                    self.failing = true;
                }
            }
        }
    }

    fn reopen(&mut self) {
        self.write_pending();
        self.fsync();
        self.file = None;
        self.try_open();
        if self.file.is_some() {
            log::info!("reopened audit file {}", self.path.display());
        }
    }

    fn fsync(&mut self) {
        if let Some(file) = self.file.as_ref()
            && let Err(err) = file.sync_data()
        {
            log::warn!("cannot fsync audit file {}: {err}", self.path.display());
        }
        self.needs_fsync = false;
        self.last_fsync = Instant::now();
    }

    fn totals(&self) -> AuditTotals {
        let per_event = AuditEvent::ALL
            .iter()
            .map(|event| (*event, self.per_event[event.index()]))
            .filter(|(_, count)| *count > 0)
            .collect();
        AuditTotals {
            written: self.written,
            dropped: self.dropped + self.pending_entries as u64,
            per_event,
        }
    }
}

/// One line of the audit file, serialized straight from the entry so that
/// writing it copies no part of the entry into a new JSON object.
#[derive(serde::Serialize)]
struct AuditLine<'a> {
    #[serde(serialize_with = "serialize_display")]
    timestamp: humantime::Rfc3339Timestamp,
    event: &'static str,
    data: &'a Value,
}

fn serialize_display<S: serde::Serializer>(
    value: &impl std::fmt::Display,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Formats a time as RFC 3339 in UTC with milliseconds, e.g. `2026-12-04T19:20:00.123Z`.
pub fn format_timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
