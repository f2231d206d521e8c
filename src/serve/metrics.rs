//! The server's counters and latency histograms (`GET /metrics`), kept and
//! written out by the `prometheus` crate, which gets the exposition
//! format, label escaping and cumulative buckets right by construction.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use super::error::Result;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Everything `/metrics` reports, registered in a registry of this server's
/// own (not the process-wide default), so that servers in one process, as
/// in the tests, keep separate counts.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    requests: IntCounterVec,
    /// Request latency by route.
    latency: HistogramVec,
    /// Edge role: adapters already on this server (memory or disk).
    pub adapter_cache_hits: IntCounter,
    /// Edge role: adapters that had to be compiled or fetched.
    pub adapter_cache_misses: IntCounter,
    /// Cloud role: compiles that ran the generator.
    pub compiles: IntCounter,
    /// Cloud role: compiles answered from the compile cache.
    pub compile_cache_hits: IntCounter,
    /// Edge role: requests waiting for or in generation.
    pub queued: IntGauge,
    /// Requests refused with 503 because the queue was full.
    pub rejected: IntCounter,
    /// Edge role: calls a tool selector vetoed (`serve --selector-veto`).
    pub selector_vetoes: IntCounter,
    /// Edge role: messages a tool selector held to calls (`serve
    /// --selector-require`).
    pub selector_required: IntCounter,
}

impl Metrics {
    /// A fresh set of series, all at zero.
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`](super::Error::Metrics) if a series cannot be registered, which only a
    /// malformed or repeated name causes.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen::serve::Metrics;
    ///
    /// let m = Metrics::new()?;
    /// m.observe("/health", 200, 0.002);
    /// m.rejected.inc();
    /// let text = m.render()?;
    /// assert!(text.contains(r#"loragen_requests_total{route="/health",status="200"} 1"#));
    /// assert!(text.contains(r#"loragen_request_seconds_bucket{route="/health",le="0.005"} 1"#));
    /// assert!(text.contains("loragen_rejected_total 1"));
    /// # Ok::<(), loragen::serve::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "loragen_requests_total",
                "Requests answered, by route and status.",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("loragen_request_seconds", "Request latency, by route.")
                .buckets(BUCKETS.to_vec()),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let counter = |name: &str, help: &str| -> Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let adapter_cache_hits = counter(
            "loragen_adapter_cache_hits_total",
            "Edge: adapters found on this server.",
        )?;
        let adapter_cache_misses = counter(
            "loragen_adapter_cache_misses_total",
            "Edge: adapters compiled or fetched.",
        )?;
        let compiles = counter(
            "loragen_compiles_total",
            "Cloud: compiles that ran the generator.",
        )?;
        let compile_cache_hits = counter(
            "loragen_compile_cache_hits_total",
            "Cloud: compiles answered from the cache.",
        )?;
        let rejected = counter(
            "loragen_rejected_total",
            "Requests refused with 503, the queue full.",
        )?;
        let selector_vetoes = counter(
            "loragen_selector_vetoes_total",
            "Edge: calls the tool selector vetoed.",
        )?;
        let selector_required = counter(
            "loragen_selector_required_total",
            "Edge: messages the tool selector held to calls.",
        )?;
        let queued = IntGauge::new(
            "loragen_queued_requests",
            "Edge: requests waiting for or in generation.",
        )?;
        registry.register(Box::new(queued.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            adapter_cache_hits,
            adapter_cache_misses,
            compiles,
            compile_cache_hits,
            queued,
            rejected,
            selector_vetoes,
            selector_required,
        })
    }

    /// Counts one answered request of `route` and its latency.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        let histogram: Histogram = self.latency.with_label_values(&[route]);
        histogram.observe(seconds);
    }

    /// The Prometheus text exposition of every series.
    ///
    /// # Errors
    ///
    /// [`Error::Metrics`](super::Error::Metrics) if the encoder fails, which a registry of valid
    /// series does not.
    pub fn render(&self) -> Result<String> {
        Ok(TextEncoder::new().encode_to_string(&self.registry.gather())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_labels_escaped() {
        let m = Metrics::new().unwrap();
        m.observe("/v1/chat/completions", 200, 0.3);
        m.observe("/v1/chat/completions", 200, 0.004);
        m.observe("/v1/chat/completions", 503, 40.0);
        m.observe("a \"quoted\" route", 404, 0.0);
        m.queued.inc();
        m.queued.inc();
        m.queued.dec();
        let text = m.render().unwrap();
        let route = r#"route="/v1/chat/completions""#;
        for line in [
            format!(r#"loragen_requests_total{{{route},status="200"}} 2"#),
            format!(r#"loragen_requests_total{{{route},status="503"}} 1"#),
            format!(r#"loragen_request_seconds_bucket{{{route},le="0.005"}} 1"#),
            format!(r#"loragen_request_seconds_bucket{{{route},le="0.25"}} 1"#),
            format!(r#"loragen_request_seconds_bucket{{{route},le="0.5"}} 2"#),
            format!(r#"loragen_request_seconds_bucket{{{route},le="30"}} 2"#),
            format!(r#"loragen_request_seconds_bucket{{{route},le="+Inf"}} 3"#),
            format!(r#"loragen_request_seconds_count{{{route}}} 3"#),
            format!(r#"loragen_request_seconds_sum{{{route}}} 40.304"#),
            r#"loragen_requests_total{route="a \"quoted\" route",status="404"} 1"#.to_owned(),
            "# TYPE loragen_request_seconds histogram".to_owned(),
            "# TYPE loragen_queued_requests gauge".to_owned(),
            "loragen_queued_requests 1".to_owned(),
            "loragen_rejected_total 0".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
