//! A shard's queue of pending states. It keeps states in arrival order and
//! remembers each session's newest pending entry, so that while the agent is
//! throttled a newer state can take the place of an older pending one
//! instead of growing the queue. The dispatcher wakes the worker through a
//! separate channel, whose sender it alone holds, so the worker sees the
//! channel close when the dispatcher is gone.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use parking_lot::Mutex;

use crate::event::SessionState;

/// A state accepted from the stream and not yet finished.
///
/// The journal keeps a copy on disk until the state is finished, so a
/// SIGKILL does not lose it. NOTE: the journal is not fsynced per state, so
/// a power loss can still drop the last second of accepted states.
#[derive(Debug, Clone)]
pub struct Pending {
    pub state: SessionState,
    /// When the frame arrived, for `agent_update_seconds`.
    pub received_at: Instant,
    /// The journal segment that holds this state, if it was journaled.
    pub journal: Option<u64>,
}

/// The outcome of a push.
#[derive(Debug)]
pub enum Pushed {
    Queued,
    /// The session already had a pending state; the older of the two was
    /// discarded and is returned so the caller can audit it.
    Coalesced {
        discarded: Pending,
    },
}

#[derive(Default)]
pub struct ShardQueue {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<Pending>,
    /// Ticket of `items[0]`; tickets grow by one per queued item.
    head_ticket: u64,
    /// Ticket of each session's newest pending item.
    newest: HashMap<String, u64>,
}

impl ShardQueue {
    /// Adds a state. With `coalesce`, a pending state of the same session is
    /// replaced by whichever of the two has the higher sequence.
    pub fn push(&self, pending: Pending, coalesce: bool) -> Pushed {
        self.inner.lock().push(pending, coalesce)
    }

    pub fn pop(&self) -> Option<Pending> {
        self.inner.lock().pop()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every pending state, for dead-lettering at the end of a drain.
    pub fn take_all(&self) -> Vec<Pending> {
        let mut inner = self.inner.lock();
        inner.newest.clear();
        inner.head_ticket += inner.items.len() as u64;
        inner.items.drain(..).collect()
    }
}

impl Inner {
    fn push(&mut self, pending: Pending, coalesce: bool) -> Pushed {
        if coalesce && let Some(index) = self.pending_index(&pending.state.session_id) {
            let slot = &mut self.items[index];
            let discarded = if pending.state.sequence > slot.state.sequence {
                std::mem::replace(slot, pending)
            } else {
                pending
            };
            return Pushed::Coalesced { discarded };
        }
        let ticket = self.head_ticket + self.items.len() as u64;
        self.newest.insert(pending.state.session_id.clone(), ticket);
        self.items.push_back(pending);
        Pushed::Queued
    }

    fn pending_index(&self, session_id: &str) -> Option<usize> {
        let ticket = *self.newest.get(session_id)?;
        usize::try_from(ticket.checked_sub(self.head_ticket)?).ok()
    }

    fn pop(&mut self) -> Option<Pending> {
        let pending = self.items.pop_front()?;
        let ticket = self.head_ticket;
        self.head_ticket += 1;
        if self.newest.get(&pending.state.session_id) == Some(&ticket) {
            self.newest.remove(&pending.state.session_id);
        }
        Some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Codec;

    fn pending(session: &str, sequence: u64) -> Pending {
        Pending {
            state: crate::event::test_state(session, sequence, Codec::Vp8),
            received_at: Instant::now(),
            journal: None,
        }
    }

    fn popped(queue: &ShardQueue) -> Vec<(String, u64)> {
        std::iter::from_fn(|| queue.pop())
            .map(|p| (p.state.session_id, p.state.sequence))
            .collect()
    }

    #[test]
    fn keeps_every_state_in_order_when_not_coalescing() {
        let queue = ShardQueue::default();
        for (session, sequence) in [("a", 1), ("b", 1), ("a", 2)] {
            assert!(matches!(
                queue.push(pending(session, sequence), false),
                Pushed::Queued
            ));
        }
        assert_eq!(
            popped(&queue),
            [("a".into(), 1), ("b".into(), 1), ("a".into(), 2)]
        );
    }

    #[test]
    fn coalescing_keeps_newest_in_place() {
        let queue = ShardQueue::default();
        queue.push(pending("a", 1), true);
        queue.push(pending("b", 1), true);
        let Pushed::Coalesced { discarded } = queue.push(pending("a", 5), true) else {
            panic!("expected coalescing");
        };
        assert_eq!(discarded.state.sequence, 1);
        let Pushed::Coalesced { discarded } = queue.push(pending("a", 3), true) else {
            panic!("expected coalescing");
        };
        assert_eq!(discarded.state.sequence, 3);
        assert_eq!(popped(&queue), [("a".into(), 5), ("b".into(), 1)]);
    }

    #[test]
    fn coalescing_after_pop_queues_again() {
        let queue = ShardQueue::default();
        queue.push(pending("a", 1), true);
        assert_eq!(queue.pop().unwrap().state.sequence, 1);
        assert!(matches!(queue.push(pending("a", 2), true), Pushed::Queued));
        assert!(matches!(
            queue.push(pending("a", 3), true),
            Pushed::Coalesced { .. }
        ));
        assert_eq!(popped(&queue), [("a".into(), 3)]);
    }

    #[test]
    fn memory_bounded_by_sessions_while_coalescing() {
        let queue = ShardQueue::default();
        for sequence in 1..=10_000 {
            queue.push(pending(&format!("s{}", sequence % 20), sequence), true);
        }
        assert_eq!(queue.len(), 20);
    }
}
