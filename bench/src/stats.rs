//! Latency samples and their summary.

use serde::Serialize;

/// One target at one concurrency: every sample of every round.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// Round-trip times in nanoseconds.
    pub ns: Vec<u64>,
    /// Wall time spent measuring, summed over rounds (seconds).
    pub secs: f64,
    /// Requests that failed (an error reply, or a closed connection).
    pub errors: u64,
    /// Nanoseconds the server's threads spent on a CPU while these
    /// requests were served (schedstat), when the server's pid is known.
    pub server_cpu_ns: Option<u64>,
}

impl Samples {
    /// Adds another round.
    pub fn merge(&mut self, other: Samples) {
        self.ns.extend(other.ns);
        self.secs += other.secs;
        self.errors += other.errors;
        self.server_cpu_ns = match (self.server_cpu_ns, other.server_cpu_ns) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }

    /// Percentiles and throughput.
    pub fn summary(&mut self) -> Summary {
        self.ns.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.ns.is_empty() {
                return f64::NAN;
            }
            let i = ((self.ns.len() as f64 - 1.0) * p).round() as usize;
            self.ns[i] as f64 / 1000.0
        };
        Summary {
            requests: self.ns.len() as u64,
            errors: self.errors,
            rps: if self.secs > 0.0 {
                self.ns.len() as f64 / self.secs
            } else {
                0.0
            },
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            p999_us: pct(0.999),
            max_us: pct(1.0),
            server_cpu_us_per_req: match self.server_cpu_ns {
                Some(ns) if !self.ns.is_empty() => ns as f64 / 1000.0 / self.ns.len() as f64,
                _ => f64::NAN,
            },
        }
    }
}

/// What the report shows for one target at one concurrency.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// Completed requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Requests per second over all connections.
    pub rps: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Slowest, µs.
    pub max_us: f64,
    /// Server CPU time per request, µs (schedstat; NaN when unknown).
    /// The stable figure: the one-client p50 mostly measures how fast an
    /// idle vCPU wakes up.
    pub server_cpu_us_per_req: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_samples() {
        let mut s = Samples {
            ns: (1..=1000).rev().map(|i| i * 1000).collect(),
            secs: 2.0,
            errors: 0,
            server_cpu_ns: Some(3_000_000),
        };
        let m = s.summary();
        assert_eq!(m.requests, 1000);
        assert_eq!(m.rps, 500.0);
        assert_eq!(m.p50_us, 501.0);
        assert_eq!(m.p99_us, 990.0);
        assert_eq!(m.p999_us, 999.0);
        assert_eq!(m.max_us, 1000.0);
        assert_eq!(m.server_cpu_us_per_req, 3.0);
    }
}
