//! The hub's own counters, kept as atomics where they happen and written out
//! by `/metrics` ([`crate::http::metrics`]) with the fleet's figures.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the request-latency histogram's buckets, seconds.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters of the hub itself.
#[derive(Debug, Default)]
pub struct HubMetrics {
    /// SSH connections closed at accept (caps per source, penalties).
    pub handshakes_refused: AtomicU64,
    /// WebSocket clients connected now.
    pub ws_clients: AtomicI64,
    /// Requests answered once (not streams) by how long they took: one
    /// count per bucket of [`LATENCY_BUCKETS_S`], then +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
}

impl HubMetrics {
    /// One request answered in `took`.
    pub fn observe_request(&self, took: Duration) {
        let s = took.as_secs_f64();
        let i = LATENCY_BUCKETS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The histogram in the text format, cumulative as Prometheus wants it.
    pub fn write_latency(&self, out: &mut String) {
        let name = "nextdeploy_hub_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} WebSocket requests answered once (not streams), by duration."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut total = 0;
        for (i, b) in LATENCY_BUCKETS_S.iter().enumerate() {
            total += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {total}");
        }
        total += self.buckets[LATENCY_BUCKETS_S.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative() {
        let m = HubMetrics::default();
        m.observe_request(Duration::from_micros(300));
        m.observe_request(Duration::from_millis(3));
        m.observe_request(Duration::from_secs(9));
        let mut s = String::new();
        m.write_latency(&mut s);
        assert!(s.contains("_bucket{le=\"0.0005\"} 1\n"), "{s}");
        assert!(s.contains("_bucket{le=\"0.005\"} 2\n"), "{s}");
        assert!(s.contains("_bucket{le=\"5\"} 2\n"), "{s}");
        assert!(s.contains("_bucket{le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("_count 3\n"), "{s}");
    }
}
