//! Open stream connections, their commands, and the record of handshakes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;

/// Number of handshakes kept for `GET /_sim/streams`.
const HANDSHAKE_CAPACITY: usize = 1000;

/// A request from the control API to one open connection.
#[derive(Debug)]
pub enum StreamCommand {
    /// Close the TCP connection at once, without a close frame.
    Drop,
}

/// One WebSocket handshake as the client sent it, and its outcome.
#[derive(Clone, Serialize)]
pub struct HandshakeRecord {
    pub connection: u64,
    /// Path and query exactly as requested.
    pub path: String,
    /// Header names in lower case. Repeated headers are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// 101 when accepted.
    pub status: u16,
    /// The subscription frame, once the client has sent a valid one.
    pub subscription: Option<Value>,
}

#[derive(Default)]
pub struct StreamRegistry {
    last_id: AtomicU64,
    open: Mutex<HashMap<u64, Sender<StreamCommand>>>,
    handshakes: Mutex<VecDeque<HandshakeRecord>>,
}

/// Removes a connection from the registry when dropped.
pub struct Registration<'a> {
    registry: &'a StreamRegistry,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.open.lock().remove(&self.id);
    }
}

impl StreamRegistry {
    pub fn next_id(&self) -> u64 {
        self.last_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers an accepted connection, which stays counted until the guard drops.
    pub fn register(&self, id: u64) -> (Receiver<StreamCommand>, Registration<'_>) {
        // Capacity 1: a second Drop before the first is handled adds nothing.
        let (sender, receiver) = bounded(1);
        self.open.lock().insert(id, sender);
        (receiver, Registration { registry: self, id })
    }

    pub fn connected(&self) -> usize {
        self.open.lock().len()
    }

    /// Asks every open connection to drop and returns how many were asked.
    pub fn drop_all(&self) -> usize {
        let open = self.open.lock();
        for sender in open.values() {
            let _ = sender.try_send(StreamCommand::Drop);
        }
        open.len()
    }

    pub fn record_handshake(&self, record: HandshakeRecord) {
        let mut handshakes = self.handshakes.lock();
        if handshakes.len() == HANDSHAKE_CAPACITY {
            handshakes.pop_front();
        }
        handshakes.push_back(record);
    }

    pub fn record_subscription(&self, connection: u64, subscription: Value) {
        let mut handshakes = self.handshakes.lock();
        let record = handshakes
            .iter_mut()
            .rev()
            .find(|r| r.connection == connection);
        if let Some(record) = record {
            record.subscription = Some(subscription);
        }
    }

    pub fn handshakes(&self) -> Vec<HandshakeRecord> {
        self.handshakes.lock().iter().cloned().collect()
    }
}
