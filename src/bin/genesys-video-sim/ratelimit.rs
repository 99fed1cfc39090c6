//! The REST request budget (`--rate-budget` per `--rate-window`), counted in fixed windows.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Outcome of counting one request against the budget.
pub struct Budget {
    pub count: u64,
    pub allowed: u64,
    /// Whole seconds until the window resets, rounded up.
    pub reset_secs: u64,
    pub exceeded: bool,
}

impl Budget {
    /// Returns the `inin-ratelimit-*` headers that Genesys Cloud sends with each reply.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("inin-ratelimit-count".to_string(), self.count.to_string()),
            (
                "inin-ratelimit-allowed".to_string(),
                self.allowed.to_string(),
            ),
            (
                "inin-ratelimit-reset".to_string(),
                self.reset_secs.to_string(),
            ),
        ]
    }
}

pub struct RateWindow {
    inner: Mutex<Window>,
}

struct Window {
    start: Instant,
    length: Duration,
    allowed: u64,
    count: u64,
}

impl RateWindow {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Window {
                start: Instant::now(),
                length: Duration::ZERO,
                allowed: 0,
                count: 0,
            }),
        }
    }

    /// Counts one request, or returns `None` when the budget is off (`allowed` 0).
    /// A change of `allowed` or `window` starts a new window.
    pub fn count(&self, allowed: u64, window: Duration) -> Option<Budget> {
        if allowed == 0 {
            return None;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let settings_changed = inner.allowed != allowed || inner.length != window;
        if settings_changed || now >= inner.start + inner.length {
            *inner = Window {
                start: now,
                length: window,
                allowed,
                count: 0,
            };
        }
        inner.count += 1;
        let remaining = (inner.start + inner.length).saturating_duration_since(now);
        Some(Budget {
            count: inner.count,
            allowed,
            reset_secs: remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0),
            exceeded: inner.count > allowed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_off_when_zero() {
        assert!(
            RateWindow::new()
                .count(0, Duration::from_secs(60))
                .is_none()
        );
    }

    #[test]
    fn exceeds_after_allowed() {
        let window = RateWindow::new();
        let minute = Duration::from_secs(60);
        let first = window.count(2, minute).unwrap();
        assert!(!first.exceeded);
        assert_eq!(first.reset_secs, 60);
        assert!(!window.count(2, minute).unwrap().exceeded);
        let third = window.count(2, minute).unwrap();
        assert!(third.exceeded);
        assert_eq!(third.count, 3);
    }
}
