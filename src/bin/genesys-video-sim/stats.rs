//! Counters of what the simulator served, and the summary built from them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Default)]
pub struct Stats {
    pub puts: AtomicU64,
    pub applied: AtomicU64,
    pub conflicts: AtomicU64,
    pub rate_limited: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub stream_connections: AtomicU64,
    /// Event frames from the script or load, replays included and heartbeats excluded.
    pub frames_sent: AtomicU64,
    pub heartbeats_sent: AtomicU64,
    pub pings: AtomicU64,
}

/// The one-line summary printed on stop, field order fixed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub puts: u64,
    pub applied: u64,
    pub conflicts: u64,
    pub rate_limited: u64,
    pub tokens_issued: u64,
    pub stream_connections: u64,
    pub frames_sent: u64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn summary(&self) -> Summary {
        Summary {
            puts: read(&self.puts),
            applied: read(&self.applied),
            conflicts: read(&self.conflicts),
            rate_limited: read(&self.rate_limited),
            tokens_issued: read(&self.tokens_issued),
            stream_connections: read(&self.stream_connections),
            frames_sent: read(&self.frames_sent),
        }
    }

    pub fn heartbeats_sent(&self) -> u64 {
        read(&self.heartbeats_sent)
    }

    pub fn pings(&self) -> u64 {
        read(&self.pings)
    }
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
