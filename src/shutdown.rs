//! The stop signal every thread waits on, so no sleep outlives a shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

/// How long accepted states may still be applied after a stop request
/// before the rest are dead-lettered.
pub const DRAIN_WINDOW: Duration = Duration::from_secs(10);

/// A cloneable view of the stop signal. The channel never carries a message:
/// the trigger drops its sender, which makes every `recv` return at once.
#[derive(Clone)]
pub struct Shutdown {
    receiver: Receiver<()>,
    inner: Arc<Inner>,
}

struct Inner {
    sender: Mutex<Option<Sender<()>>>,
    stopping: AtomicBool,
    deadline: Mutex<Option<Instant>>,
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(0);
        Self {
            receiver,
            inner: Arc::new(Inner {
                sender: Mutex::new(Some(sender)),
                stopping: AtomicBool::new(false),
                deadline: Mutex::new(None),
            }),
        }
    }

    /// Requests a clean stop; later calls do nothing.
    pub fn trigger(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        *self.inner.deadline.lock() = Some(Instant::now() + DRAIN_WINDOW);
        self.inner.sender.lock().take();
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Returns the time after which no accepted state is attempted any more.
    pub fn drain_deadline(&self) -> Option<Instant> {
        *self.inner.deadline.lock()
    }

    pub fn drain_expired(&self) -> bool {
        self.drain_deadline()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Sleeps for `duration` unless a stop is requested first. Returns true
    /// when it woke because of the stop.
    pub fn sleep(&self, duration: Duration) -> bool {
        if self.is_stopping() {
            return true;
        }
        matches!(
            self.receiver.recv_timeout(duration),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        )
    }

    /// Returns the channel that becomes ready (disconnected) on stop, for `select!`.
    pub fn channel(&self) -> &Receiver<()> {
        &self.receiver
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_wakes_on_trigger() {
        let shutdown = Shutdown::new();
        let other = shutdown.clone();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.trigger();
        });
        let started = Instant::now();
        assert!(shutdown.sleep(Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(shutdown.is_stopping());
        assert!(shutdown.drain_deadline().is_some());
        waker.join().unwrap();
    }

    #[test]
    fn sleep_times_out_without_trigger() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.sleep(Duration::from_millis(5)));
    }
}
