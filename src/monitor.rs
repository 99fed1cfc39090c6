//! The monitor thread: it turns RTT samples and the backlog into the
//! stability score and the throttled flag, audits `PIPELINE_METRICS`, and
//! saves per-session memory once a second.
//!
//! Pings follow `--ping-interval`, but the stream reader sends them, because
//! it is the only thread that may touch the socket. It sleeps in a blocking
//! read whose timeout ends at the next ping, so an idle agent wakes once
//! per interval instead of once per monitor tick. The reader sends each
//! round trip here over a channel.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select, tick};
use serde_json::json;

use crate::audit::{Audit, AuditEvent};
use crate::metrics::Metrics;
use crate::store::SessionStore;

/// RTT samples averaged into `agent_rtt_ms`.
pub const RTT_WINDOW: usize = 10;
pub const TICK: Duration = Duration::from_secs(1);
pub const REPORT_INTERVAL: Duration = Duration::from_secs(30);
/// Throttle when utilization is above this...
pub const MAX_UTILIZATION: f64 = 0.85;
/// ...or the stability score is below this.
pub const MIN_SCORE: f64 = 40.0;

/// Computes `max(0, 100 - rtt_ms/10 - utilization*50)`.
pub fn stability_score(rtt_ms: f64, utilization: f64) -> f64 {
    (100.0 - rtt_ms / 10.0 - utilization * 50.0).max(0.0)
}

pub fn is_throttled(utilization: f64, score: f64) -> bool {
    utilization > MAX_UTILIZATION || score < MIN_SCORE
}

pub struct Monitor {
    pub metrics: Arc<Metrics>,
    pub audit: Audit,
    pub store: Arc<SessionStore>,
    pub journal: Arc<crate::journal::Journal>,
    pub queue_capacity: usize,
    pub rtt_samples: Receiver<Duration>,
    /// Rung by the dispatcher when the backlog crosses the throttle line,
    /// so the flag changes without waiting for the next tick.
    pub nudges: Receiver<()>,
    /// Disconnected when the monitor must stop.
    pub stop: Receiver<()>,
}

impl Monitor {
    pub fn start(self) -> std::io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("monitor".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        let ticker = tick(TICK);
        let mut window = VecDeque::with_capacity(RTT_WINDOW);
        let mut last_report = Instant::now();
        let mut samples_open = true;
        let mut nudges_open = true;
        loop {
            // A closed channel is always ready in select!, so its arm is
            // swapped for never() once its sender is gone.
            let samples = if samples_open {
                self.rtt_samples.clone()
            } else {
                crossbeam_channel::never()
            };
            let nudges = if nudges_open {
                self.nudges.clone()
            } else {
                crossbeam_channel::never()
            };
            select! {
                recv(self.stop) -> _ => break,
                recv(samples) -> sample => match sample {
                    Ok(rtt) => {
                        if window.len() == RTT_WINDOW {
                            window.pop_front();
                        }
                        window.push_back(rtt);
                        self.evaluate(&window, &mut last_report);
                    }
                    Err(_) => samples_open = false,
                },
                recv(nudges) -> nudge => match nudge {
                    Ok(()) => self.evaluate(&window, &mut last_report),
                    Err(_) => nudges_open = false,
                },
                recv(ticker) -> _ => {
                    self.evaluate(&window, &mut last_report);
                    self.save_store();
                }
            }
        }
        self.evaluate(&window, &mut last_report);
        self.save_store();
    }

    /// Updates the gauges and the flag; audits on a flag change and every 30 s.
    fn evaluate(&self, window: &VecDeque<Duration>, last_report: &mut Instant) {
        let rtt_ms = mean_ms(window);
        let backlog = self.metrics.backlog();
        let utilization = backlog as f64 / self.queue_capacity.max(1) as f64;
        let score = stability_score(rtt_ms, utilization);
        let throttled = is_throttled(utilization, score);
        self.metrics.rtt_ms.set(rtt_ms);
        self.metrics.buffer_utilization.set(utilization);
        self.metrics.stability_score.set(score);
        let changed = self.metrics.throttled.swap(throttled, Ordering::Relaxed) != throttled;
        if changed {
            if throttled {
                log::warn!(
                    "throttling: stability score {score:.0}, utilization {utilization:.2}; coalescing pending states"
                );
            } else {
                log::info!(
                    "throttling ended: stability score {score:.0}, utilization {utilization:.2}"
                );
            }
        }
        if changed || last_report.elapsed() >= REPORT_INTERVAL {
            *last_report = Instant::now();
            self.report(rtt_ms, score, utilization, backlog, throttled, changed);
        }
    }

    fn report(
        &self,
        rtt_ms: f64,
        score: f64,
        utilization: f64,
        backlog: u64,
        throttled: bool,
        changed: bool,
    ) {
        self.audit.record(
            AuditEvent::PipelineMetrics,
            json!({
                "rttMs": round2(rtt_ms),
                "stabilityScore": round2(score),
                "bufferUtilization": round2(utilization),
                "backlog": backlog,
                "throttled": throttled,
                "throttleChanged": changed,
                "counters": self.metrics.totals_json(),
            }),
        );
    }

    /// Saves session memory, then deletes finished journal segments: a
    /// segment goes only after the memory that covers its states is on disk.
    fn save_store(&self) {
        if let Err(err) = self.store.save() {
            log::error!("cannot save session memory: {err}");
            return;
        }
        self.journal.prune(false);
    }
}

fn mean_ms(window: &VecDeque<Duration>) -> f64 {
    if window.is_empty() {
        return 0.0;
    }
    let total: f64 = window.iter().map(|d| d.as_secs_f64() * 1000.0).sum();
    total / window.len() as f64
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_and_flag_follow_the_formula() {
        assert_eq!(stability_score(0.0, 0.0), 100.0);
        assert_eq!(stability_score(200.0, 0.5), 55.0);
        assert_eq!(stability_score(2000.0, 1.0), 0.0);
        assert!(!is_throttled(0.85, 40.0));
        assert!(is_throttled(0.851, 90.0));
        assert!(is_throttled(0.1, 39.9));
    }

    #[test]
    fn mean_of_window() {
        let window: VecDeque<Duration> = [10, 20, 30]
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
        assert!((mean_ms(&window) - 20.0).abs() < 1e-9);
        assert_eq!(mean_ms(&VecDeque::new()), 0.0);
    }
}
