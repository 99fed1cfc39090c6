//! The shared state of one simulator run, handed to every thread behind an `Arc`.

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::conferences::Conferences;
use crate::faults::Faults;
use crate::feed::Feed;
use crate::options::OnEnd;
use crate::ratelimit::RateWindow;
use crate::registry::StreamRegistry;
use crate::requests::RequestLog;
use crate::stats::Stats;
use crate::tokens::TokenStore;

/// Settings fixed for the whole run.
pub struct Settings {
    pub client_id: String,
    pub client_secret: String,
    /// Event frames per second, or 0 for unpaced.
    pub rate: f64,
    /// Zero means no heartbeats.
    pub heartbeat_interval: Duration,
    pub on_end: OnEnd,
}

pub struct Sim {
    pub settings: Settings,
    pub faults: Mutex<Faults>,
    pub tokens: TokenStore,
    pub conferences: Conferences,
    pub rate_window: RateWindow,
    pub requests: RequestLog,
    pub stats: Stats,
    pub feed: Mutex<Feed>,
    pub streams: StreamRegistry,
    /// Channel that never carries a message and disconnects when the simulator stops.
    stopping: Receiver<()>,
    /// Sender cloned by each stream connection, so its receiver disconnects once all are gone.
    connection_token: Mutex<Option<Sender<()>>>,
}

impl Sim {
    pub fn new(
        settings: Settings,
        faults: Faults,
        feed: Feed,
        seed: u64,
        stopping: Receiver<()>,
        connection_token: Sender<()>,
    ) -> Self {
        Self {
            settings,
            faults: Mutex::new(faults),
            tokens: TokenStore::new(seed),
            conferences: Conferences::default(),
            rate_window: RateWindow::new(),
            requests: RequestLog::default(),
            stats: Stats::default(),
            feed: Mutex::new(feed),
            streams: StreamRegistry::default(),
            stopping,
            connection_token: Mutex::new(Some(connection_token)),
        }
    }

    /// Returns a copy of the current fault settings.
    pub fn faults(&self) -> Faults {
        self.faults.lock().clone()
    }

    /// Returns the channel that disconnects when the simulator stops, for `select!`.
    pub fn stopping(&self) -> &Receiver<()> {
        &self.stopping
    }

    /// Waits for `duration`, or returns false early when the simulator stops.
    pub fn pause(&self, duration: Duration) -> bool {
        if duration.is_zero() {
            return true;
        }
        matches!(
            self.stopping.recv_timeout(duration),
            Err(RecvTimeoutError::Timeout) | Ok(())
        )
    }

    /// Returns a token that a stream connection keeps while it runs, or `None` after stop.
    pub fn connection_token(&self) -> Option<Sender<()>> {
        self.connection_token.lock().clone()
    }

    /// Drops the simulator's own token, so the matching receiver disconnects
    /// once every connection has ended.
    pub fn release_connection_token(&self) {
        self.connection_token.lock().take();
    }
}
