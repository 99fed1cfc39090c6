//! The step between the stream and the workers: parse a frame, validate it,
//! and queue the state on its session's shard. It never blocks on a busy
//! worker: pushing takes a shard lock for microseconds and rings a doorbell
//! with `try_send`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::audit::{Audit, AuditEvent};
use crate::config::GatewayProfile;
use crate::event::{self, Frame};
use crate::journal::{Journal, Recovered};
use crate::metrics::Metrics;
use crate::queue::{Pending, Pushed, ShardQueue};
use crate::validate;

/// Utilization above which the agent coalesces even before the monitor's
/// next tick raises the throttled flag.
pub const THROTTLE_UTILIZATION: f64 = 0.85;

/// A shard's queue and the doorbell its worker waits on.
pub type Shard = (Arc<ShardQueue>, Receiver<()>);

pub struct Dispatcher {
    shards: Vec<Arc<ShardQueue>>,
    /// One per shard; dropping the dispatcher closes them, which tells the
    /// workers that no more states will come.
    doorbells: Vec<Sender<()>>,
    profile: GatewayProfile,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
    audit: Audit,
    /// Asks the monitor to re-evaluate the throttle flag at once.
    nudge: Sender<()>,
    journal: Arc<Journal>,
}

/// Returns the shard of a session: FNV-1a of its id, so the mapping is the
/// same in every run and on every platform.
pub fn shard_of(session_id: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in session_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards.max(1) as u64) as usize
}

impl Dispatcher {
    /// Creates `workers` shard queues; returns the dispatcher and, per shard,
    /// the queue and the doorbell its worker waits on.
    pub fn new(
        workers: usize,
        profile: GatewayProfile,
        queue_capacity: usize,
        metrics: Arc<Metrics>,
        audit: Audit,
        nudge: Sender<()>,
        journal: Arc<Journal>,
    ) -> (Self, Vec<Shard>) {
        let mut shards = Vec::with_capacity(workers);
        let mut doorbells = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers.max(1) {
            let queue = Arc::new(ShardQueue::default());
            // One pending wake-up is enough: the worker empties its queue
            // before it waits again.
            let (doorbell, wakeups) = crossbeam_channel::bounded(1);
            shards.push(Arc::clone(&queue));
            doorbells.push(doorbell);
            handles.push((queue, wakeups));
        }
        let dispatcher = Self {
            shards,
            doorbells,
            profile,
            queue_capacity: queue_capacity.max(1),
            metrics,
            audit,
            nudge,
            journal,
        };
        (dispatcher, handles)
    }

    /// Handles one text frame from the stream.
    pub fn handle_text(&self, text: &str, received_at: Instant) {
        match event::parse_frame(text) {
            Ok(Frame::Video { data }) => self.handle_event(&data, received_at),
            Ok(Frame::Other { event_type }) => {
                Metrics::add(&self.metrics.other_events);
                log::trace!("ignored frame of type {}", event::excerpt(&event_type, 64));
            }
            Err(err) => self.malformed(
                &err.to_string(),
                &event::excerpt(text, event::MALFORMED_EXCERPT_BYTES),
            ),
        }
    }

    /// Audits a frame that could not be read as an event.
    pub fn malformed(&self, reason: &str, excerpt: &str) {
        Metrics::add(&self.metrics.malformed_events);
        log::warn!(
            "skipped malformed frame ({reason}): {}",
            event::excerpt(excerpt, 80)
        );
        self.audit.record(
            AuditEvent::MalformedEvent,
            serde_json::json!({"reason": reason, "excerpt": excerpt}),
        );
    }

    fn handle_event(&self, data: &serde_json::Value, received_at: Instant) {
        Metrics::add(&self.metrics.events_received);
        match validate::validate(data, self.profile) {
            Ok(state) => {
                let journal = self.journal.append(&state);
                self.enqueue(Pending {
                    state,
                    received_at,
                    journal,
                });
            }
            Err(violations) => self.reject(data, &violations),
        }
    }

    fn reject(&self, data: &serde_json::Value, violations: &[validate::Violation]) {
        for violation in violations {
            self.metrics.count_violation(violation.code);
        }
        let session_id = data
            .get("sessionId")
            .and_then(serde_json::Value::as_str)
            .map(|id| event::excerpt(id, 128));
        let sequence = data
            .get("sequenceNumber")
            .cloned()
            .filter(serde_json::Value::is_number);
        log::debug!(
            "rejected state of session {}: {} violation(s)",
            session_id.as_deref().unwrap_or("(none)"),
            violations.len()
        );
        self.audit.record(
            AuditEvent::ValidationFailed,
            serde_json::json!({
                "sessionId": session_id,
                "sequenceNumber": sequence,
                "violations": violations,
            }),
        );
    }

    /// Queues a valid state on its shard, coalescing while throttled.
    pub fn enqueue(&self, pending: Pending) {
        let shard = shard_of(&pending.state.session_id, self.shards.len());
        let coalesce = self.should_coalesce();
        let pushed = self.shards[shard].push(pending, coalesce);
        let _ = self.doorbells[shard].try_send(());
        match pushed {
            Pushed::Queued => {
                self.metrics.backlog.fetch_add(1, Ordering::Relaxed);
            }
            Pushed::Coalesced { discarded } => {
                self.journal.finish(discarded.journal);
                Metrics::add(&self.metrics.events_coalesced);
                self.audit.record(
                    AuditEvent::EventCoalesced,
                    serde_json::json!({
                        "sessionId": discarded.state.session_id,
                        "sequenceNumber": discarded.state.sequence,
                        "reason": "a newer state of the session replaced it while throttled",
                    }),
                );
            }
        }
    }

    /// Queues the states an earlier run journaled but did not finish. They
    /// are validated again; one that no longer passes is dropped with a
    /// warning, since it was audited as valid when it arrived.
    pub fn enqueue_recovered(&self, recovered: Vec<Recovered>) {
        for Recovered { segment, data } in recovered {
            match validate::validate(&data, self.profile) {
                Ok(state) => self.enqueue(Pending {
                    state,
                    received_at: Instant::now(),
                    journal: Some(segment),
                }),
                Err(violations) => {
                    self.journal.finish(Some(segment));
                    log::warn!(
                        "dropped a journaled state that no longer validates: {}",
                        violations.first().map_or("", |v| v.message.as_str())
                    );
                }
            }
        }
    }

    fn should_coalesce(&self) -> bool {
        if self.metrics.throttled.load(Ordering::Relaxed) {
            return true;
        }
        let utilization = self.metrics.backlog() as f64 / self.queue_capacity as f64;
        let over = utilization > THROTTLE_UTILIZATION;
        if over {
            // The monitor raises and audits the flag; a full channel means
            // a nudge is already pending.
            let _ = self.nudge.try_send(());
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_is_stable_and_in_range() {
        assert_eq!(shard_of("session-1", 4), shard_of("session-1", 4));
        for id in ["a", "b", "c", "5a486531-0201-43e0-bd81-d544bb08d0dc"] {
            assert!(shard_of(id, 4) < 4);
        }
        assert_eq!(shard_of("anything", 1), 0);
    }
}
