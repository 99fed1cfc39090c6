//! Retry timing: exponential backoff with full jitter, `Retry-After`
//! parsing, and the rate gate that holds back every worker after a 429.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::shutdown::Shutdown;

/// Returns a delay drawn uniformly from `[0, min(cap, base * 2^attempt)]`
/// ("full jitter"), so clients that failed together do not retry together.
pub fn full_jitter(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let ceiling = exponential(base, cap, attempt);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random_u64() % (nanos + 1))
}

/// Returns `base * 2^attempt` with a small jitter (up to a quarter more),
/// capped at `cap`: the retry delay for 5xx and transport errors, which
/// must grow with each attempt.
pub fn growing_jitter(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let delay = exponential(base, cap, attempt);
    let quarter = u64::try_from(delay.as_nanos() / 4).unwrap_or(0);
    let extra = if quarter == 0 {
        0
    } else {
        random_u64() % quarter
    };
    (delay + Duration::from_nanos(extra)).min(cap)
}

fn exponential(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

thread_local! {
    static RNG_STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let time = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let stack_address = &time as *const u64 as u64;
    time ^ stack_address.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15
}

/// Returns the next splitmix64 value: enough randomness for jitter, not for secrets.
fn random_u64() -> u64 {
    RNG_STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Parses a `Retry-After` value: delay seconds (`120`) or an HTTP date
/// (`Fri, 04 Dec 2026 19:20:00 GMT`), relative to `now`. A date in the past
/// means no wait. Returns None for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // A huge number of seconds still means "longer than we will wait".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The rate gate shared by all workers: the rate limit belongs to the token,
/// so a 429 seen by one worker holds back every worker, and the
/// `inin-ratelimit-*` headers pace requests to stay inside the budget.
#[derive(Default)]
pub struct RateGate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// No request may start before this time (after a 429).
    blocked_until: Option<Instant>,
    /// The earliest time for the next request when pacing.
    next_slot: Option<Instant>,
    /// Spacing between requests derived from the last budget headers.
    spacing: Duration,
}

/// The budget reported by Genesys Cloud in `inin-ratelimit-*` reply headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    pub count: u64,
    pub allowed: u64,
    pub reset: Duration,
}

impl RateGate {
    /// Waits until a request may start. Returns false when the wait was cut
    /// short by a stop request.
    pub fn wait_turn(&self, shutdown: &Shutdown) -> bool {
        loop {
            let wait = self.reserve(Instant::now());
            match wait {
                None => return true,
                Some(delay) => {
                    if shutdown.sleep(delay) {
                        return false;
                    }
                }
            }
        }
    }

    /// Takes a slot if one is free now; otherwise returns how long to wait.
    fn reserve(&self, now: Instant) -> Option<Duration> {
        let mut state = self.state.lock();
        if let Some(until) = state.blocked_until {
            if until > now {
                return Some(until - now);
            }
            state.blocked_until = None;
        }
        match state.next_slot {
            Some(slot) if slot > now => Some(slot - now),
            _ => {
                if !state.spacing.is_zero() {
                    state.next_slot = Some(now + state.spacing);
                }
                None
            }
        }
    }

    /// Holds back every worker for `delay` (a 429's `Retry-After`).
    pub fn block_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut state = self.state.lock();
        if state.blocked_until.is_none_or(|current| current < until) {
            state.blocked_until = Some(until);
        }
    }

    /// Adjusts pacing to the reported budget: requests are spread evenly over
    /// what is left of the window once half the budget is used, and stop
    /// until the reset when nothing is left.
    pub fn observe_budget(&self, budget: RateBudget) {
        let remaining = budget.allowed.saturating_sub(budget.count);
        let mut state = self.state.lock();
        if remaining == 0 {
            state.spacing = Duration::ZERO;
            let until = Instant::now() + budget.reset;
            if state.blocked_until.is_none_or(|current| current < until) {
                state.blocked_until = Some(until);
            }
        } else if budget.count.saturating_mul(2) >= budget.allowed {
            let per_request = budget.reset / u32::try_from(remaining).unwrap_or(u32::MAX);
            state.spacing = per_request;
        } else {
            state.spacing = Duration::ZERO;
            state.next_slot = None;
        }
    }

    /// Returns the current pacing interval, for tests and metrics.
    pub fn spacing(&self) -> Duration {
        self.state.lock().spacing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_within_bounds() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        for attempt in 0..40 {
            let ceiling = (base * 2u32.saturating_pow(attempt.min(20))).min(cap);
            for _ in 0..50 {
                let delay = full_jitter(base, cap, attempt);
                assert!(
                    delay <= ceiling,
                    "attempt {attempt}: {delay:?} > {ceiling:?}"
                );
            }
        }
    }

    #[test]
    fn growing_jitter_grows_and_is_capped() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        for attempt in 0..10 {
            let floor = (base * 2u32.pow(attempt)).min(cap);
            for _ in 0..50 {
                let delay = growing_jitter(base, cap, attempt);
                assert!(
                    delay >= floor.min(cap),
                    "attempt {attempt}: {delay:?} < {floor:?}"
                );
                assert!(
                    delay <= floor + floor / 4 && delay <= cap,
                    "attempt {attempt}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        for bad in ["", "-1", "1.5", "soon", "Fri, 99 Dec 2026 19:20:00 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn gate_blocks_after_rate_limit() {
        let gate = RateGate::default();
        let now = Instant::now();
        assert_eq!(gate.reserve(now), None);
        gate.block_for(Duration::from_secs(5));
        let wait = gate.reserve(Instant::now()).unwrap();
        assert!(wait > Duration::from_secs(4), "{wait:?}");
        assert!(wait <= Duration::from_secs(5), "{wait:?}");
    }

    #[test]
    fn gate_paces_when_budget_runs_low() {
        let gate = RateGate::default();
        gate.observe_budget(RateBudget {
            count: 10,
            allowed: 300,
            reset: Duration::from_secs(30),
        });
        assert_eq!(gate.spacing(), Duration::ZERO);
        gate.observe_budget(RateBudget {
            count: 200,
            allowed: 300,
            reset: Duration::from_secs(50),
        });
        assert_eq!(gate.spacing(), Duration::from_millis(500));
        let now = Instant::now();
        assert_eq!(gate.reserve(now), None);
        assert!(gate.reserve(now).is_some());
        gate.observe_budget(RateBudget {
            count: 300,
            allowed: 300,
            reset: Duration::from_secs(7),
        });
        assert!(gate.reserve(Instant::now()).unwrap() > Duration::from_secs(6));
    }
}
