//! Latency summaries.

use hdrhistogram::Histogram;

/// A latency histogram in microseconds.
pub struct Latencies {
    hist: Histogram<u64>,
    /// Requests that failed.
    pub errors: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid"),
            errors: 0,
        }
    }
}

impl Latencies {
    /// Records one latency in microseconds.
    pub fn record(&mut self, micros: u64) {
        let _ = self.hist.record(micros.max(1));
    }

    /// The latency at `q` (0..1) in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// Number of recorded samples.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }
}
