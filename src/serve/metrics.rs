//! The server's counters and latency histograms, in Prometheus text format
//! (`GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Everything `/metrics` reports. Counters of events are atomics; the
/// per-route maps take a short lock.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by (route, status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Edge role: adapters already on this server (memory or disk).
    pub adapter_cache_hits: AtomicU64,
    /// Edge role: adapters that had to be compiled or fetched.
    pub adapter_cache_misses: AtomicU64,
    /// Cloud role: compiles that ran the generator.
    pub compiles: AtomicU64,
    /// Cloud role: compiles answered from the compile cache.
    pub compile_cache_hits: AtomicU64,
    /// Edge role: requests waiting for or in generation.
    pub queued: AtomicU64,
    /// Requests refused with 503 because the queue was full.
    pub rejected: AtomicU64,
}

impl Metrics {
    /// Counts one answered request of `route` and its latency.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((route.to_owned(), status)).or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let h = latency.entry(route.to_owned()).or_default();
            for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *count += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// The Prometheus text exposition.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen::serve::Metrics;
    ///
    /// let m = Metrics::default();
    /// m.observe("/health", 200, 0.002);
    /// let text = m.render();
    /// assert!(text.contains(r#"loragen_requests_total{route="/health",status="200"} 1"#));
    /// assert!(text.contains(r#"loragen_request_seconds_bucket{route="/health",le="0.005"} 1"#));
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP loragen_requests_total Requests answered, by route and status.\n# TYPE loragen_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((route, status), n) in requests.iter() {
                let _ = writeln!(
                    out,
                    "loragen_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP loragen_request_seconds Request latency, by route.\n# TYPE loragen_request_seconds histogram\n");
        if let Ok(latency) = self.latency.lock() {
            for (route, h) in latency.iter() {
                for (count, bound) in h.counts.iter().zip(BUCKETS) {
                    let _ = writeln!(
                        out,
                        "loragen_request_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "loragen_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\nloragen_request_seconds_sum{{route=\"{route}\"}} {}\nloragen_request_seconds_count{{route=\"{route}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        for (name, help, kind, value) in [
            (
                "loragen_adapter_cache_hits_total",
                "Edge: adapters found on this server.",
                "counter",
                &self.adapter_cache_hits,
            ),
            (
                "loragen_adapter_cache_misses_total",
                "Edge: adapters compiled or fetched.",
                "counter",
                &self.adapter_cache_misses,
            ),
            (
                "loragen_compiles_total",
                "Cloud: compiles that ran the generator.",
                "counter",
                &self.compiles,
            ),
            (
                "loragen_compile_cache_hits_total",
                "Cloud: compiles answered from the cache.",
                "counter",
                &self.compile_cache_hits,
            ),
            (
                "loragen_queued_requests",
                "Edge: requests waiting for or in generation.",
                "gauge",
                &self.queued,
            ),
            (
                "loragen_rejected_total",
                "Requests refused with 503, the queue full.",
                "counter",
                &self.rejected,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}
