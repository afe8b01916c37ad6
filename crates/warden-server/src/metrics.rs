//! Prometheus metrics: request counts and latency histograms per route and status,
//! and decision counts by outcome, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// One route's counts by status and its latency histogram.
#[derive(Default)]
struct RouteStats {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    /// route template -> method -> stats. Nested so that a request finds its entry by
    /// `&str` and allocates nothing after the route's first request.
    routes: Mutex<BTreeMap<String, BTreeMap<String, RouteStats>>>,
    decisions: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn record_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut routes = self.routes.lock();
        if !routes.contains_key(route) {
            routes.insert(route.to_string(), BTreeMap::new());
        }
        let Some(methods) = routes.get_mut(route) else {
            return;
        };
        if !methods.contains_key(method) {
            methods.insert(method.to_string(), RouteStats::default());
        }
        let Some(stats) = methods.get_mut(method) else {
            return;
        };
        *stats.statuses.entry(status).or_default() += 1;
        let h = &mut stats.latency;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Counts one decision: `allowed`, `denied` or `error`.
    pub fn record_decision(&self, outcome: &'static str) {
        *self.decisions.lock().entry(outcome).or_default() += 1;
    }

    /// Counts a decision from its result.
    pub fn record_outcome<E>(&self, allowed: &Result<bool, E>) {
        self.record_decision(match allowed {
            Ok(true) => "allowed",
            Ok(false) => "denied",
            Err(_) => "error",
        });
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP warden_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE warden_http_requests_total counter\n");
        let routes = self.routes.lock();
        let each = || {
            routes
                .iter()
                .flat_map(|(r, ms)| ms.iter().map(move |(m, st)| (m, r, st)))
        };
        for (m, r, st) in each() {
            for (s, n) in &st.statuses {
                let _ = writeln!(
                    out,
                    "warden_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP warden_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE warden_http_request_duration_seconds histogram\n");
        for (m, r, st) in each() {
            let h = &st.latency;
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "warden_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "warden_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "warden_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "warden_http_request_duration_seconds_count{{method=\"{m}\",route=\"{r}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP warden_decisions_total Authorization decisions by outcome.\n");
        out.push_str("# TYPE warden_decisions_total counter\n");
        for (o, n) in self.decisions.lock().iter() {
            let _ = writeln!(out, "warden_decisions_total{{outcome=\"{o}\"}} {n}");
        }
        out
    }
}
