//! The calendar notifier thread: tells a calendar system when a session's
//! recording directive changes, through a webhook, a command and library
//! callbacks, without ever holding up the workers.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde_json::json;

use crate::audit::{Audit, AuditEvent, format_timestamp};
use crate::event::Directive;
use crate::http;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Notices waiting for delivery. When a slow calendar lets this fill up,
/// new notices are audited as failed rather than making workers wait.
const QUEUE_CAPACITY: usize = 1024;
/// Attempts per webhook notice, with a short pause that doubles.
const WEBHOOK_ATTEMPTS: u32 = 3;
const WEBHOOK_RETRY_BASE: Duration = Duration::from_millis(500);
/// The maximum run time of a `--calendar-exec` command before it is killed.
pub const EXEC_TIME_LIMIT: Duration = Duration::from_secs(10);

/// A change of a session's recording directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub session_id: String,
    pub sequence: u64,
    pub directive: Directive,
    /// RFC 3339 time the state was applied.
    pub timestamp: String,
}

impl Notice {
    pub fn new(session_id: &str, sequence: u64, directive: Directive) -> Self {
        Self {
            session_id: session_id.to_owned(),
            sequence,
            directive,
            timestamp: format_timestamp(SystemTime::now()),
        }
    }
}

/// A callback registered through the library API; it runs on the notifier
/// thread, so a slow callback delays other notices but never a state update.
pub type Callback = Arc<dyn Fn(&Notice) + Send + Sync>;

/// The destinations of notices.
#[derive(Clone, Default)]
pub struct Targets {
    pub webhook: Option<String>,
    pub exec: Option<PathBuf>,
    pub callbacks: Vec<Callback>,
    /// Timeout of one webhook call.
    pub webhook_timeout: Duration,
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.exec.is_none() && self.callbacks.is_empty()
    }
}

/// The workers' side: queues a notice without waiting.
#[derive(Clone)]
pub struct CalendarHandle {
    sender: Option<Sender<Notice>>,
    audit: Audit,
    metrics: Arc<Metrics>,
}

impl CalendarHandle {
    /// Creates a handle that drops every notice, for runs with no calendar target.
    pub fn disabled(audit: Audit, metrics: Arc<Metrics>) -> Self {
        Self {
            sender: None,
            audit,
            metrics,
        }
    }

    pub fn notify(&self, notice: Notice) {
        let Some(sender) = &self.sender else {
            return;
        };
        match sender.try_send(notice) {
            Ok(()) => {}
            Err(TrySendError::Full(notice)) | Err(TrySendError::Disconnected(notice)) => {
                Metrics::add(&self.metrics.calendar_failures);
                self.audit.record(
                    AuditEvent::CalendarSyncFailed,
                    json!({
                        "sessionId": notice.session_id,
                        "sequenceNumber": notice.sequence,
                        "directive": notice.directive.as_str(),
                        "reason": format!("calendar queue full ({QUEUE_CAPACITY} notices waiting): the calendar is too slow"),
                    }),
                );
            }
        }
    }
}

/// Starts the notifier thread; drop every handle, then join it.
pub fn start(
    targets: Targets,
    http: ureq::Agent,
    audit: Audit,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<(CalendarHandle, Option<JoinHandle<()>>)> {
    if targets.is_empty() {
        return Ok((CalendarHandle::disabled(audit, metrics), None));
    }
    let (sender, receiver) = crossbeam_channel::bounded(QUEUE_CAPACITY);
    let notifier = Notifier {
        targets,
        http,
        audit: audit.clone(),
        metrics: Arc::clone(&metrics),
        shutdown,
    };
    let handle = thread::Builder::new()
        .name("calendar".into())
        .spawn(move || notifier.run(receiver))?;
    let calendar = CalendarHandle {
        sender: Some(sender),
        audit,
        metrics,
    };
    Ok((calendar, Some(handle)))
}

struct Notifier {
    targets: Targets,
    http: ureq::Agent,
    audit: Audit,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl Notifier {
    fn run(self, receiver: Receiver<Notice>) {
        for notice in receiver {
            self.deliver(&notice);
        }
    }

    fn deliver(&self, notice: &Notice) {
        for callback in &self.targets.callbacks {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(notice)));
            if result.is_err() {
                self.failed(notice, "callback", "the registered callback panicked");
            } else {
                self.synced(notice, "callback");
            }
        }
        if let Some(url) = &self.targets.webhook {
            match self.post_webhook(url, notice) {
                Ok(()) => self.synced(notice, "webhook"),
                Err(reason) => self.failed(notice, "webhook", &reason),
            }
        }
        if let Some(program) = &self.targets.exec {
            match run_command(program, notice) {
                Ok(()) => self.synced(notice, "exec"),
                Err(reason) => self.failed(notice, "exec", &reason),
            }
        }
    }

    fn post_webhook(&self, url: &str, notice: &Notice) -> Result<(), String> {
        let body = json!({
            "sessionId": notice.session_id,
            "directive": notice.directive.as_str(),
            "timestamp": notice.timestamp,
        })
        .to_string();
        let mut last_error = String::new();
        for attempt in 0..WEBHOOK_ATTEMPTS {
            if attempt > 0
                && self
                    .shutdown
                    .sleep(WEBHOOK_RETRY_BASE * (1 << (attempt - 1)))
            {
                return Err(format!("agent stopping; last error: {last_error}"));
            }
            let result = self
                .http
                .post(url)
                .config()
                .timeout_global(Some(self.targets.webhook_timeout))
                .build()
                .content_type("application/json")
                .send(body.as_str());
            match result {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    if (200..300).contains(&status) {
                        return Ok(());
                    }
                    let excerpt = http::read_body_excerpt(&mut response, 200);
                    last_error = format!("HTTP {status}: {}", crate::event::excerpt(&excerpt, 200));
                    if (400..500).contains(&status) && status != 429 && status != 408 {
                        break;
                    }
                }
                Err(err) => last_error = http::describe_error(&err),
            }
        }
        Err(format!("webhook failed: {last_error}"))
    }

    fn synced(&self, notice: &Notice, target: &str) {
        Metrics::add(&self.metrics.calendar_syncs);
        self.audit.record(
            AuditEvent::CalendarSync,
            json!({
                "sessionId": notice.session_id,
                "sequenceNumber": notice.sequence,
                "directive": notice.directive.as_str(),
                "target": target,
            }),
        );
    }

    fn failed(&self, notice: &Notice, target: &str, reason: &str) {
        Metrics::add(&self.metrics.calendar_failures);
        log::warn!(
            "calendar {target} failed for session {}: {reason}",
            notice.session_id
        );
        self.audit.record(
            AuditEvent::CalendarSyncFailed,
            json!({
                "sessionId": notice.session_id,
                "sequenceNumber": notice.sequence,
                "directive": notice.directive.as_str(),
                "target": target,
                "reason": reason,
            }),
        );
    }
}

/// Runs `--calendar-exec` without a shell, with the notice in its
/// environment, and kills it when it outlives [`EXEC_TIME_LIMIT`].
fn run_command(program: &PathBuf, notice: &Notice) -> Result<(), String> {
    let mut child = Command::new(program)
        .env("SESSION_ID", &notice.session_id)
        .env("DIRECTIVE", notice.directive.as_str())
        .env("TIMESTAMP", &notice.timestamp)
        .env_remove("GENESYS_CLIENT_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", program.display()))?;

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= EXEC_TIME_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {}s and was killed",
                    program.display(),
                    EXEC_TIME_LIMIT.as_secs()
                ));
            }
            // NOTE: std has no wait with a timeout; polling every 20 ms
            // only while a command runs keeps the thread idle otherwise.
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(err) => return Err(format!("cannot wait for {}: {err}", program.display())),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.by_ref().take(512).read_to_string(&mut stderr);
    }
    Err(format!(
        "{} exited with {status}: {}",
        program.display(),
        crate::event::excerpt(stderr.trim(), 200)
    ))
}
