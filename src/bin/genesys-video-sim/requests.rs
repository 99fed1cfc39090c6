//! The log of recent OAuth and REST requests served at `GET /_sim/requests`.

use std::collections::{BTreeMap, VecDeque};

use parking_lot::Mutex;
use serde::Serialize;

/// Number of requests kept. The oldest is dropped first.
pub const CAPACITY: usize = 10_000;

/// One request as the client sent it, with the status it got.
#[derive(Clone, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query exactly as requested.
    pub path: String,
    /// Header names in lower case. Repeated headers are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// Body as text, with bytes that are not UTF-8 replaced by U+FFFD.
    pub body: String,
    pub status: u16,
}

#[derive(Default)]
pub struct RequestLog {
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl RequestLog {
    pub fn record(&self, request: RecordedRequest) {
        let mut entries = self.entries.lock();
        if entries.len() == CAPACITY {
            entries.pop_front();
        }
        entries.push_back(request);
    }

    /// Returns a copy of the kept requests, oldest first.
    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.entries.lock().iter().cloned().collect()
    }
}
