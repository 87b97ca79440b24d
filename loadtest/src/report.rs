//! Load-generator statistics: per-shard counters and latency histogram, merging, and the text / `--json` report.

use hdrhistogram::Histogram;
use std::io;
use std::time::Duration;

/// Highest latency recorded exactly (µs); larger values saturate. One hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Failed request attempts by cause.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    /// Unparseable or oversized response.
    pub parse: u64,
}

/// Which counter of [`Errors`] to bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Read,
    Write,
    Timeout,
    Parse,
}

impl Errors {
    pub fn add(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Read => self.read += 1,
            ErrorKind::Write => self.write += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::Parse => self.parse += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.parse
    }

    fn merge(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.read += o.read;
        self.write += o.write;
        self.timeout += o.timeout;
        self.parse += o.parse;
    }
}

/// Measured-phase results of one shard (or, merged, of the whole run).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency in microseconds of completed requests.
    pub hist: Histogram<u64>,
    /// Completed requests (any status).
    pub requests: u64,
    /// Completed requests by status class: index 0 = 1xx ... 4 = 5xx.
    pub status: [u64; 5],
    pub errors: Errors,
    /// Response body bytes received.
    pub body_bytes: u64,
    /// Measured wall time of this shard.
    pub elapsed: Duration,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"),
            requests: 0,
            status: [0; 5],
            errors: Errors::default(),
            body_bytes: 0,
            elapsed: Duration::ZERO,
        }
    }
}

impl Stats {
    /// Records one completed request.
    pub fn record(&mut self, latency: Duration, status: u16, body_bytes: u64) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.hist.saturating_record(us);
        self.requests += 1;
        if let Some(slot) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.status.get_mut(usize::from(i)))
        {
            *slot += 1;
        }
        self.body_bytes += body_bytes;
    }

    /// Adds another shard's results; the elapsed time is the longest of the two.
    pub fn merge(&mut self, o: &Stats) {
        let _ = self.hist.add(&o.hist);
        self.requests += o.requests;
        for (a, b) in self.status.iter_mut().zip(o.status) {
            *a += b;
        }
        self.errors.merge(&o.errors);
        self.body_bytes += o.body_bytes;
        self.elapsed = self.elapsed.max(o.elapsed);
    }

    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }
}

/// Describes the run in the report header.
pub struct RunInfo<'a> {
    pub target: &'a str,
    pub connections: usize,
    pub shards: usize,
    /// Open-loop rate, if any.
    pub rate: Option<f64>,
    pub warmup: Duration,
}

/// The `--json` report: one object.
pub fn json(info: &RunInfo<'_>, s: &Stats) -> serde_json::Value {
    serde_json::json!({
        "target": info.target,
        "connections": info.connections,
        "shards": info.shards,
        "mode": if info.rate.is_some() { "open" } else { "closed" },
        "rate": info.rate,
        "warmup_s": info.warmup.as_secs_f64(),
        "duration_s": s.elapsed.as_secs_f64(),
        "requests": s.requests,
        "rps": s.rps(),
        "latency_us": {
            "p50": s.quantile(0.50),
            "p90": s.quantile(0.90),
            "p99": s.quantile(0.99),
            "p99_9": s.quantile(0.999),
            "max": s.hist.max(),
            "mean": if s.hist.is_empty() { 0.0 } else { s.hist.mean() },
        },
        "status": {
            "1xx": s.status[0],
            "2xx": s.status[1],
            "3xx": s.status[2],
            "4xx": s.status[3],
            "5xx": s.status[4],
        },
        "errors": {
            "connect": s.errors.connect,
            "read": s.errors.read,
            "write": s.errors.write,
            "timeout": s.errors.timeout,
            "parse": s.errors.parse,
            "total": s.errors.total(),
        },
        "body_bytes": s.body_bytes,
    })
}

/// The human-readable report.
pub fn text(out: &mut impl io::Write, info: &RunInfo<'_>, s: &Stats) -> io::Result<()> {
    let mode = match info.rate {
        Some(r) => format!("open loop at {r} req/s"),
        None => "closed loop".to_string(),
    };
    writeln!(
        out,
        "target {}: {} connections, {} shard(s), {mode}, {:.2} s measured after {:.2} s warmup",
        info.target,
        info.connections,
        info.shards,
        s.elapsed.as_secs_f64(),
        info.warmup.as_secs_f64()
    )?;
    writeln!(out, "  requests  {} ({:.1} req/s)", s.requests, s.rps())?;
    writeln!(
        out,
        "  latency   p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us",
        s.quantile(0.50),
        s.quantile(0.90),
        s.quantile(0.99),
        s.quantile(0.999),
        s.hist.max()
    )?;
    writeln!(
        out,
        "  status    1xx {}, 2xx {}, 3xx {}, 4xx {}, 5xx {}",
        s.status[0], s.status[1], s.status[2], s.status[3], s.status[4]
    )?;
    writeln!(
        out,
        "  errors    {} (connect {}, read {}, write {}, timeout {}, parse {})",
        s.errors.total(),
        s.errors.connect,
        s.errors.read,
        s.errors.write,
        s.errors.timeout,
        s.errors.parse
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_merge_and_report() {
        let mut a = Stats::default();
        a.record(Duration::from_micros(100), 200, 13);
        a.record(Duration::from_micros(300), 503, 0);
        a.errors.add(ErrorKind::Timeout);
        a.elapsed = Duration::from_secs(1);
        let mut b = Stats::default();
        b.record(Duration::from_micros(200), 404, 5);
        b.elapsed = Duration::from_secs(2);
        a.merge(&b);
        assert_eq!(a.requests, 3);
        assert_eq!(a.status, [0, 1, 0, 1, 1]);
        assert_eq!(a.body_bytes, 18);
        assert_eq!(a.elapsed, Duration::from_secs(2));
        assert!((a.rps() - 1.5).abs() < 1e-9);
        let info = RunInfo {
            target: "127.0.0.1:1",
            connections: 2,
            shards: 2,
            rate: None,
            warmup: Duration::ZERO,
        };
        let v = json(&info, &a);
        assert_eq!(v["errors"]["total"], 1);
        assert_eq!(v["status"]["5xx"], 1);
        assert_eq!(v["latency_us"]["p50"], 200);
        let mut out = Vec::new();
        text(&mut out, &info, &a).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("1.5 req/s"));
    }
}
