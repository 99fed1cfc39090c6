//! The sharded worker pool: each worker owns one shard of sessions and
//! applies their states with the reply table of the REST API (applied,
//! conflict, rate limit, server error, unauthorized, rejected).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::Receiver;
use serde_json::json;

use crate::audit::{Audit, AuditEvent};
use crate::auth::{AuthError, TokenSource};
use crate::backoff::{self, RateGate};
use crate::calendar::{CalendarHandle, Notice};
use crate::event::SessionState;
use crate::metrics::Metrics;
use crate::queue::{Pending, ShardQueue};
use crate::rest::{GetOutcome, PutOutcome, RestClient};
use crate::shutdown::Shutdown;
use crate::store::SessionStore;

/// First retry delay for 5xx, transport errors and lagging replicas; it
/// doubles per attempt.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(60);

/// Everything the workers share.
pub struct WorkerContext {
    pub tokens: Arc<TokenSource>,
    pub gate: RateGate,
    pub store: Arc<SessionStore>,
    pub journal: Arc<crate::journal::Journal>,
    pub metrics: Arc<Metrics>,
    pub audit: Audit,
    pub calendar: CalendarHandle,
    pub shutdown: Shutdown,
    pub max_retries: u32,
    pub max_retry_after: Duration,
    pub retry_base: Duration,
}

/// The end of a state's handling.
enum Finish {
    Applied {
        attempts: u32,
    },
    Superseded {
        held: u64,
    },
    GaveUp {
        status: Option<u16>,
        reason: String,
        attempts: u32,
    },
}

/// Starts one named worker thread per shard, each with one of `rest_clients`.
pub fn start_pool(
    context: Arc<WorkerContext>,
    shards: Vec<crate::dispatch::Shard>,
    rest_clients: Vec<RestClient>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::with_capacity(shards.len());
    let workers = shards.into_iter().zip(rest_clients).enumerate();
    for (index, ((queue, wakeups), rest)) in workers {
        let worker = Worker {
            context: Arc::clone(&context),
            rest,
            queue,
            body: Vec::with_capacity(1024),
        };
        let handle = thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || worker.run(wakeups))?;
        handles.push(handle);
    }
    Ok(handles)
}

struct Worker {
    context: Arc<WorkerContext>,
    /// This worker's own HTTP client, so its keep-alive connection is not
    /// shared with the other workers.
    rest: RestClient,
    queue: Arc<ShardQueue>,
    /// The PUT body buffer, reused for every request of this worker.
    body: Vec<u8>,
}

impl Worker {
    /// Applies queued states until the dispatcher is gone and the queue is empty.
    fn run(mut self, wakeups: Receiver<()>) {
        loop {
            while let Some(pending) = self.queue.pop() {
                self.process(pending);
            }
            if wakeups.recv().is_err() {
                break;
            }
        }
        while let Some(pending) = self.queue.pop() {
            self.process(pending);
        }
    }

    fn process(&mut self, pending: Pending) {
        let state = &pending.state;
        let finish = match self.context.store.get(&state.session_id) {
            Some(memory) if state.sequence <= memory.sequence => Finish::Superseded {
                held: memory.sequence,
            },
            _ if self.context.shutdown.drain_expired() => Finish::GaveUp {
                status: None,
                reason: "agent stopping: the 10 s drain window elapsed before this state was sent"
                    .to_owned(),
                attempts: 0,
            },
            _ => self.apply(state),
        };
        self.record(&pending, finish);
        self.context.journal.finish(pending.journal);
        self.context.metrics.backlog.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sends the state until it is applied, superseded or given up.
    fn apply(&mut self, state: &SessionState) -> Finish {
        let context = Arc::clone(&self.context);
        let mut retries = 0u32;
        let mut attempts = 0u32;
        let mut refreshed = false;
        let mut unanswered = false;
        loop {
            if !context.gate.wait_turn(&context.shutdown) {
                return give_up(
                    None,
                    "agent stopping while waiting for the rate limit",
                    attempts,
                );
            }
            let token = match context.tokens.token() {
                Ok(token) => token,
                Err(err @ AuthError::Rejected { .. }) => {
                    return give_up(None, &err.to_string(), attempts);
                }
                Err(err) => {
                    let reason = err.to_string();
                    match self.retry_wait(&mut retries, None, &reason, attempts) {
                        Ok(()) => continue,
                        Err(finish) => return finish,
                    }
                }
            };

            attempts += 1;
            let reply = self.rest.put_state(
                state,
                &token,
                &mut self.body,
                context.shutdown.drain_deadline(),
            );
            if let Some(budget) = reply.budget {
                context.gate.observe_budget(budget);
            }
            let (status, reason, delay) = match reply.outcome {
                PutOutcome::Applied => return Finish::Applied { attempts },
                PutOutcome::Conflict => {
                    match self.resolve_conflict(state, &token, unanswered, attempts) {
                        Ok(finish) => return finish,
                        Err(reason) => (Some(409), reason, None),
                    }
                }
                PutOutcome::RateLimited { retry_after } => {
                    match self.rate_limited(state, retry_after, attempts) {
                        Ok(delay) => (Some(429), "rate limited (HTTP 429)".to_owned(), Some(delay)),
                        Err(finish) => return finish,
                    }
                }
                PutOutcome::Unauthorized if !refreshed => {
                    context.tokens.invalidate(&token);
                    refreshed = true;
                    log::info!(
                        "HTTP 401 for session {}; retrying once with a new token",
                        state.session_id
                    );
                    continue;
                }
                PutOutcome::Unauthorized => {
                    return give_up(
                        Some(401),
                        "HTTP 401 again with a freshly fetched token",
                        attempts,
                    );
                }
                PutOutcome::ServerError { status } => {
                    (Some(status), format!("server error (HTTP {status})"), None)
                }
                PutOutcome::Transport(reason) => {
                    unanswered = true;
                    (None, reason, None)
                }
                PutOutcome::Rejected { status: 403, .. } => {
                    return give_up(
                        Some(403),
                        "forbidden (HTTP 403): check that the OAuth client has the video:videoconference:write scope",
                        attempts,
                    );
                }
                PutOutcome::Rejected { status, body } => {
                    let reason = format!("HTTP {status}: {}", crate::event::excerpt(&body, 1024));
                    return give_up(Some(status), &reason, attempts);
                }
            };
            if let Err(finish) =
                self.retry_wait_with(&mut retries, status, &reason, attempts, delay)
            {
                return finish;
            }
        }
    }

    /// After a 409, reads the version the gateway stores. Returns the
    /// finish when another writer already stored this version or a newer
    /// one, or the reason to retry when the gateway lags behind.
    ///
    /// When an earlier attempt of this state got no reply (a timeout or a
    /// reset after the request went out) and the gateway now holds exactly
    /// this version, that earlier attempt is the one that wrote it: the
    /// state counts as applied, not superseded.
    fn resolve_conflict(
        &self,
        state: &SessionState,
        token: &crate::secret::Secret,
        unanswered: bool,
        attempts: u32,
    ) -> Result<Finish, String> {
        Metrics::add(&self.context.metrics.conflicts);
        match self.rest.get_version(&state.session_id, token) {
            GetOutcome::Version(held) if held == state.sequence && unanswered => {
                log::info!(
                    "state {} of session {} was applied by an attempt whose reply was lost",
                    state.sequence,
                    state.session_id
                );
                Ok(Finish::Applied { attempts })
            }
            GetOutcome::Version(held) if held >= state.sequence => Ok(Finish::Superseded { held }),
            GetOutcome::Version(held) => Err(format!(
                "HTTP 409 but the gateway holds version {held}, older than {} (lagging replica)",
                state.sequence
            )),
            GetOutcome::Unauthorized => {
                self.context.tokens.invalidate(token);
                Err("HTTP 409, then HTTP 401 on the GET that checks the version".to_owned())
            }
            GetOutcome::Failed(reason) => {
                Err(format!("HTTP 409, then the version check failed: {reason}"))
            }
        }
    }

    /// Audits a 429 and returns how long every worker must wait, or the
    /// finish when the server requests a longer wait than allowed.
    fn rate_limited(
        &self,
        state: &SessionState,
        retry_after: Option<Duration>,
        attempts: u32,
    ) -> Result<Duration, Finish> {
        let context = &self.context;
        Metrics::add(&context.metrics.rate_limited);
        let wait = retry_after.unwrap_or_else(|| {
            backoff::growing_jitter(context.retry_base, RETRY_CAP, attempts.saturating_sub(1))
        });
        context.audit.record(
            AuditEvent::RateLimited,
            json!({
                "sessionId": state.session_id,
                "sequenceNumber": state.sequence,
                "retryAfterSeconds": retry_after.map(|d| d.as_secs_f64()),
                "waitSeconds": wait.as_secs_f64(),
                "attempt": attempts,
            }),
        );
        if wait > context.max_retry_after {
            let reason = format!(
                "HTTP 429 with Retry-After of {}s, longer than --max-retry-after {}s",
                wait.as_secs(),
                context.max_retry_after.as_secs()
            );
            return Err(give_up(Some(429), &reason, attempts));
        }
        context.gate.block_for(wait);
        Ok(Duration::ZERO)
    }

    fn retry_wait(
        &self,
        retries: &mut u32,
        status: Option<u16>,
        reason: &str,
        attempts: u32,
    ) -> Result<(), Finish> {
        self.retry_wait_with(retries, status, reason, attempts, None)
    }

    /// Counts a retry and waits before it: `delay` when given (the rate gate
    /// already holds the 429 wait), else the exponential backoff.
    fn retry_wait_with(
        &self,
        retries: &mut u32,
        status: Option<u16>,
        reason: &str,
        attempts: u32,
        delay: Option<Duration>,
    ) -> Result<(), Finish> {
        let context = &self.context;
        if *retries >= context.max_retries {
            let reason = format!("gave up after {} retries: {reason}", context.max_retries);
            return Err(give_up(status, &reason, attempts));
        }
        if context.shutdown.is_stopping() {
            let reason = format!("agent stopping before a retry: {reason}");
            return Err(give_up(status, &reason, attempts));
        }
        let delay = delay
            .unwrap_or_else(|| backoff::growing_jitter(context.retry_base, RETRY_CAP, *retries));
        *retries += 1;
        log::debug!("retry {} in {:?}: {reason}", *retries, delay);
        if context.shutdown.sleep(delay) {
            let reason = format!("agent stopping during retry backoff: {reason}");
            return Err(give_up(status, &reason, attempts));
        }
        Ok(())
    }

    fn record(&self, pending: &Pending, finish: Finish) {
        let state = &pending.state;
        let context = &self.context;
        match finish {
            Finish::Applied { attempts } => self.applied(pending, attempts),
            Finish::Superseded { held } => {
                Metrics::add(&context.metrics.states_superseded);
                context.audit.record(
                    AuditEvent::StateSuperseded,
                    json!({"sessionId": state.session_id, "sequenceNumber": state.sequence, "heldSequence": held}),
                );
            }
            Finish::GaveUp {
                status,
                reason,
                attempts,
            } => self.gave_up(state, status, &reason, attempts),
        }
    }

    fn applied(&self, pending: &Pending, attempts: u32) {
        let state = &pending.state;
        let context = &self.context;
        context
            .metrics
            .update_seconds
            .observe(pending.received_at.elapsed());
        Metrics::add(&context.metrics.states_applied);
        let previous = context.store.remember(state);
        context.audit.record(
            AuditEvent::StateApplied,
            json!({
                "sessionId": state.session_id,
                "sequenceNumber": state.sequence,
                "codec": state.codec.as_str(),
                "directive": state.directive.as_str(),
                "maxBitrate": state.max_bitrate_kbps,
                "participants": state.participants.len(),
                "attempts": attempts,
            }),
        );

        if let Some(previous) = previous.filter(|p| p.codec != state.codec) {
            Metrics::add(&context.metrics.codec_negotiations);
            context.audit.record(
                AuditEvent::CodecNegotiation,
                json!({
                    "sessionId": state.session_id,
                    "sequenceNumber": state.sequence,
                    "from": previous.codec.as_str(),
                    "to": state.codec.as_str(),
                }),
            );
        }
        if previous.is_none_or(|p| p.directive != state.directive) {
            context.calendar.notify(Notice::new(
                &state.session_id,
                state.sequence,
                state.directive,
            ));
        }
    }

    fn gave_up(&self, state: &SessionState, status: Option<u16>, reason: &str, attempts: u32) {
        let context = &self.context;
        Metrics::add(&context.metrics.update_failures);
        log::warn!(
            "gave up state {} of session {}: {reason}",
            state.sequence,
            state.session_id
        );
        let durable = !context.shutdown.is_stopping();
        let dead_letter = match context.store.dead_letter(state, reason, durable) {
            Ok(()) => {
                Metrics::add(&context.metrics.dead_letters);
                Some(context.store.dead_letter_path().display().to_string())
            }
            Err(err) => {
                log::error!(
                    "cannot write dead letter for session {}: {err}",
                    state.session_id
                );
                None
            }
        };
        let mut data = json!({
            "sessionId": state.session_id,
            "sequenceNumber": state.sequence,
            "reason": reason,
            "attempts": attempts,
            "deadLetter": dead_letter,
        });
        if let (Some(status), Some(map)) = (status, data.as_object_mut()) {
            map.insert("status".to_owned(), json!(status));
        }
        context.audit.record(AuditEvent::UpdateFailed, data);
    }
}

fn give_up(status: Option<u16>, reason: &str, attempts: u32) -> Finish {
    Finish::GaveUp {
        status,
        reason: reason.to_owned(),
        attempts,
    }
}
