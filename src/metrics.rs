//! Shared counters and gauges (atomics written by every thread) and their
//! rendering in the Prometheus text exposition format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::validate;

/// Upper bounds, in seconds, of the `agent_update_seconds` buckets: from a
/// fast loopback PUT to a state that waited out retries.
/// The 25 ms bucket sits just under the 30 ms latency target, so a p99
/// near that target can be distinguished.
pub const UPDATE_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

#[derive(Default)]
pub struct Histogram {
    /// Count per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; UPDATE_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let slot = UPDATE_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(UPDATE_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Estimates a quantile (0..=1) as the upper bound of the bucket that holds it.
    pub fn quantile_upper_bound(&self, quantile: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (quantile * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (slot, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(UPDATE_BUCKETS.get(slot).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

/// A gauge holding an f64 in an atomic.
#[derive(Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Every figure the agent exposes; all fields are updated without locks.
#[derive(Default)]
pub struct Metrics {
    pub events_received: AtomicU64,
    pub other_events: AtomicU64,
    pub malformed_events: AtomicU64,
    pub states_applied: AtomicU64,
    pub states_superseded: AtomicU64,
    pub validation_failures: [AtomicU64; validate::CODES.len()],
    pub conflicts: AtomicU64,
    pub rate_limited: AtomicU64,
    pub update_failures: AtomicU64,
    pub dead_letters: AtomicU64,
    pub codec_negotiations: AtomicU64,
    pub stream_reconnects: AtomicU64,
    pub events_coalesced: AtomicU64,
    pub calendar_syncs: AtomicU64,
    pub calendar_failures: AtomicU64,
    /// States accepted but not finished (queued or in a worker's hands).
    pub backlog: AtomicU64,
    pub rtt_ms: Gauge,
    pub stability_score: Gauge,
    pub buffer_utilization: Gauge,
    pub throttled: AtomicBool,
    pub stream_connected: AtomicBool,
    pub update_seconds: Histogram,
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_violation(&self, code: &str) {
        if let Some(slot) = validate::CODES.iter().position(|c| *c == code) {
            Self::add(&self.validation_failures[slot]);
        }
    }

    pub fn validation_failures_total(&self) -> u64 {
        self.validation_failures.iter().map(load).sum()
    }

    pub fn backlog(&self) -> u64 {
        load(&self.backlog)
    }

    /// Returns a snapshot of the counters for `AGENT_STOPPED` and `PIPELINE_METRICS`.
    pub fn totals_json(&self) -> serde_json::Value {
        serde_json::json!({
            "eventsReceived": load(&self.events_received),
            "otherEvents": load(&self.other_events),
            "malformedEvents": load(&self.malformed_events),
            "statesApplied": load(&self.states_applied),
            "statesSuperseded": load(&self.states_superseded),
            "validationFailures": self.validation_failures_total(),
            "conflicts": load(&self.conflicts),
            "rateLimited": load(&self.rate_limited),
            "updateFailures": load(&self.update_failures),
            "deadLetters": load(&self.dead_letters),
            "codecNegotiations": load(&self.codec_negotiations),
            "streamReconnects": load(&self.stream_reconnects),
            "eventsCoalesced": load(&self.events_coalesced),
        })
    }

    /// Renders every metric in the Prometheus text format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, &AtomicU64); 12] = [
            (
                "agent_events_received_total",
                "Video conference events received from the stream.",
                &self.events_received,
            ),
            (
                "agent_other_events_total",
                "Frames of other event types (heartbeats, acknowledgements), ignored.",
                &self.other_events,
            ),
            (
                "agent_malformed_events_total",
                "Frames that were not valid JSON events.",
                &self.malformed_events,
            ),
            (
                "agent_states_applied_total",
                "States the REST API accepted.",
                &self.states_applied,
            ),
            (
                "agent_states_superseded_total",
                "States skipped because the session already held that version or newer.",
                &self.states_superseded,
            ),
            (
                "agent_conflicts_total",
                "PUT replies with status 409.",
                &self.conflicts,
            ),
            (
                "agent_rate_limited_total",
                "PUT replies with status 429.",
                &self.rate_limited,
            ),
            (
                "agent_update_failures_total",
                "States given up (UPDATE_FAILED).",
                &self.update_failures,
            ),
            (
                "agent_dead_letters_total",
                "States written to the dead-letter file.",
                &self.dead_letters,
            ),
            (
                "agent_codec_negotiations_total",
                "Applied states that changed a session's codec.",
                &self.codec_negotiations,
            ),
            (
                "agent_stream_reconnects_total",
                "Event stream reconnections after a drop.",
                &self.stream_reconnects,
            ),
            (
                "agent_events_coalesced_total",
                "Pending states replaced by a newer state of the same session while throttled.",
                &self.events_coalesced,
            ),
        ];
        for (name, help, counter) in counters {
            write_metric(&mut out, name, help, "counter", load(counter) as f64);
        }
        self.render_validation_failures(&mut out);

        let throttled = if self.throttled.load(Ordering::Relaxed) {
            1.0
        } else {
            0.0
        };
        let gauges = [
            (
                "agent_rtt_ms",
                "Mean WebSocket ping round trip over the last 10 samples, in milliseconds.",
                self.rtt_ms.get(),
            ),
            (
                "agent_stability_score",
                "max(0, 100 - rtt_ms/10 - utilization*50).",
                self.stability_score.get(),
            ),
            (
                "agent_buffer_utilization",
                "States accepted but not finished, divided by --queue-capacity.",
                self.buffer_utilization.get(),
            ),
            (
                "agent_throttled",
                "1 while the agent coalesces pending states, else 0.",
                throttled,
            ),
            (
                "agent_backlog",
                "States accepted but not finished.",
                self.backlog() as f64,
            ),
        ];
        for (name, help, value) in gauges {
            write_metric(&mut out, name, help, "gauge", value);
        }
        self.render_histogram(&mut out);
        out
    }

    fn render_validation_failures(&self, out: &mut String) {
        let name = "agent_validation_failures_total";
        let _ = writeln!(out, "# HELP {name} Validation violations by code.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (code, counter) in validate::CODES.iter().zip(&self.validation_failures) {
            let _ = writeln!(out, "{name}{{code=\"{code}\"}} {}", load(counter));
        }
    }

    fn render_histogram(&self, out: &mut String) {
        let name = "agent_update_seconds";
        let histogram = &self.update_seconds;
        let _ = writeln!(
            out,
            "# HELP {name} Time from a frame's arrival to the reply that finished its state."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in UPDATE_BUCKETS.iter().zip(&histogram.buckets) {
            cumulative += load(bucket);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += load(&histogram.buckets[UPDATE_BUCKETS.len()]);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = load(&histogram.sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

fn write_metric(out: &mut String, name: &str, help: &str, kind: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_use_bucket_bounds() {
        let histogram = Histogram::default();
        for _ in 0..99 {
            histogram.observe(Duration::from_millis(15));
        }
        histogram.observe(Duration::from_millis(700));
        assert_eq!(histogram.quantile_upper_bound(0.5), Some(0.02));
        assert_eq!(histogram.quantile_upper_bound(0.99), Some(0.02));
        assert_eq!(histogram.quantile_upper_bound(1.0), Some(1.0));
    }

    #[test]
    fn rendering_names_every_metric() {
        let metrics = Metrics::default();
        metrics.update_seconds.observe(Duration::from_millis(3));
        let text = metrics.render_prometheus();
        for name in [
            "agent_events_received_total",
            "agent_states_applied_total",
            "agent_validation_failures_total{code=\"codec\"}",
            "agent_conflicts_total",
            "agent_rate_limited_total",
            "agent_update_failures_total",
            "agent_codec_negotiations_total",
            "agent_stream_reconnects_total",
            "agent_events_coalesced_total",
            "agent_rtt_ms",
            "agent_stability_score",
            "agent_buffer_utilization",
            "agent_throttled",
            "agent_backlog",
            "agent_update_seconds_bucket{le=\"0.005\"} 1",
            "agent_update_seconds_count 1",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }
}
