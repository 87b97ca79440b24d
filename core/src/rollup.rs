//! Usage rollups: per-minute counts per key and route, the fixed 64-byte rows they are
//! stored as, and the sums a report makes of them. Pure: minutes and bytes in, counts out.
//!
//! A shard adds each finished request to its [`Tally`] for the current minute (one hash
//! lookup by key id, no allocation after a key's first request of the minute) and hands the
//! minute's [`Entry`]s to the rollup writer when the minute turns. The writer numbers keys,
//! routes and refusal codes in a dictionary and appends [`Row`]s; reports sum rows into
//! [`Sums`] per key, tenant, plan or route.

use std::collections::HashMap;

/// Upper bounds of the latency buckets, in microseconds (the last bucket is everything
/// slower).
pub const LATENCY_BOUNDS_US: [u64; 3] = [5_000, 50_000, 500_000];

/// What one key did on one route in one period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u32,
    /// 1xx, 2xx and 3xx answers.
    pub ok: u32,
    pub client_errors: u32,
    pub server_errors: u32,
    /// Requests the gateway refused itself (any refusal code).
    pub refused: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Requests per latency bucket ([`LATENCY_BOUNDS_US`], then slower).
    pub latency: [u32; 4],
}

impl Counts {
    /// Adds one finished request.
    pub fn add(&mut self, status: u16, refused: bool, us: u64, bytes_in: u64, bytes_out: u64) {
        self.requests = self.requests.saturating_add(1);
        let class = match status {
            100..=399 => &mut self.ok,
            400..=499 => &mut self.client_errors,
            _ => &mut self.server_errors,
        };
        *class = class.saturating_add(1);
        if refused {
            self.refused = self.refused.saturating_add(1);
        }
        self.bytes_in = self.bytes_in.saturating_add(bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(bytes_out);
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.latency[bucket] = self.latency[bucket].saturating_add(1);
    }

    pub fn merge(&mut self, o: &Counts) {
        self.requests = self.requests.saturating_add(o.requests);
        self.ok = self.ok.saturating_add(o.ok);
        self.client_errors = self.client_errors.saturating_add(o.client_errors);
        self.server_errors = self.server_errors.saturating_add(o.server_errors);
        self.refused = self.refused.saturating_add(o.refused);
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        for (a, b) in self.latency.iter_mut().zip(o.latency) {
            *a = a.saturating_add(b);
        }
    }
}

/// One key's minute on one route, as a shard hands it over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Empty for requests without a key (public routes, refusals before authentication).
    pub key: String,
    pub tenant: String,
    pub plan: String,
    /// The route's metric slot (0: no route).
    pub route: u16,
    pub counts: Counts,
    /// Refusals by code: (code, count).
    pub refusals: Vec<(&'static str, u32)>,
}

/// A shard's counts for the current minute: by key id (looked up borrowed, so a key
/// already seen this minute costs no allocation), then by route (a key uses few).
#[derive(Default)]
pub struct Tally {
    minute: u32,
    entries: HashMap<Box<str>, Vec<Entry>, ahash::RandomState>,
}

/// One finished request, for [`Tally::add`].
pub struct Request<'a> {
    pub key: &'a [u8],
    pub tenant: &'a [u8],
    pub plan: &'a [u8],
    pub route: u16,
    pub status: u16,
    /// The refusal code when the gateway answered itself.
    pub refusal: Option<&'static str>,
    pub us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Tally {
    /// Adds a request finished in `minute` (Unix minutes). When the minute has turned, the
    /// finished minute's entries are returned first (and the tally starts afresh).
    pub fn add(&mut self, minute: u32, r: &Request<'_>) -> Option<(u32, Vec<Entry>)> {
        let done = self.turn(minute);
        let key = std::str::from_utf8(r.key).unwrap_or("");
        if !self.entries.contains_key(key) {
            self.entries.insert(Box::from(key), Vec::with_capacity(1));
        }
        let Some(routes) = self.entries.get_mut(key) else {
            return done;
        };
        let at = match routes.iter().position(|e| e.route == r.route) {
            Some(i) => i,
            None => {
                routes.push(Entry {
                    key: key.to_owned(),
                    tenant: String::from_utf8_lossy(r.tenant).into_owned(),
                    plan: String::from_utf8_lossy(r.plan).into_owned(),
                    route: r.route,
                    ..Entry::default()
                });
                routes.len() - 1
            }
        };
        let entry = &mut routes[at];
        entry
            .counts
            .add(r.status, r.refusal.is_some(), r.us, r.bytes_in, r.bytes_out);
        if let Some(code) = r.refusal {
            match entry.refusals.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n = n.saturating_add(1),
                None => entry.refusals.push((code, 1)),
            }
        }
        done
    }

    /// The finished minute's entries if `minute` is a later one.
    pub fn turn(&mut self, minute: u32) -> Option<(u32, Vec<Entry>)> {
        if minute == self.minute {
            return None;
        }
        let finished = self.minute;
        self.minute = minute;
        if self.entries.is_empty() {
            return None;
        }
        let entries = self.entries.drain().flat_map(|(_, e)| e).collect();
        Some((finished, entries))
    }

    /// Everything counted so far (at shutdown).
    pub fn take(&mut self) -> Option<(u32, Vec<Entry>)> {
        if self.entries.is_empty() {
            return None;
        }
        Some((
            self.minute,
            self.entries.drain().flat_map(|(_, e)| e).collect(),
        ))
    }
}

/// Bytes per stored row.
pub const ROW_BYTES: usize = 64;

/// A stored row: counts (kind 0) or one refusal code's count (kind 1, in `counts.refused`,
/// code in `code`). Keys, routes and codes are dictionary numbers (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub minute: u32,
    pub key: u32,
    pub route: u16,
    pub kind: u8,
    pub code: u8,
    pub counts: Counts,
}

impl Row {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let c = &self.counts;
        out.extend_from_slice(&self.minute.to_le_bytes());
        out.extend_from_slice(&self.key.to_le_bytes());
        out.extend_from_slice(&self.route.to_le_bytes());
        out.push(self.kind);
        out.push(self.code);
        for v in [
            c.requests,
            c.ok,
            c.client_errors,
            c.server_errors,
            c.refused,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&c.bytes_in.to_le_bytes());
        out.extend_from_slice(&c.bytes_out.to_le_bytes());
        for v in c.latency {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Decodes one row from exactly [`ROW_BYTES`] bytes.
    pub fn decode(b: &[u8; ROW_BYTES]) -> Row {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Row {
            minute: u32_at(0),
            key: u32_at(4),
            route: u16::from_le_bytes([b[8], b[9]]),
            kind: b[10],
            code: b[11],
            counts: Counts {
                requests: u32_at(12),
                ok: u32_at(16),
                client_errors: u32_at(20),
                server_errors: u32_at(24),
                refused: u32_at(28),
                bytes_in: u64_at(32),
                bytes_out: u64_at(40),
                latency: [u32_at(48), u32_at(52), u32_at(56), u32_at(60)],
            },
        }
    }
}

/// What a report sums per name: counts and refusals by code number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub counts: Counts,
    pub refusals: Vec<(u8, u64)>,
}

impl Sums {
    pub fn add(&mut self, row: &Row) {
        if row.kind == 1 {
            let n = u64::from(row.counts.refused);
            match self.refusals.iter_mut().find(|(c, _)| *c == row.code) {
                Some((_, total)) => *total += n,
                None => self.refusals.push((row.code, n)),
            }
        } else {
            self.counts.merge(&row.counts);
        }
    }

    pub fn merge(&mut self, o: &Sums) {
        self.counts.merge(&o.counts);
        for &(code, n) in &o.refusals {
            match self.refusals.iter_mut().find(|(c, _)| *c == code) {
                Some((_, total)) => *total += n,
                None => self.refusals.push((code, n)),
            }
        }
    }

    /// The latency bucket bound (µs) under which `q` (0..1) of requests finished; `None`
    /// above the last bound.
    pub fn latency_quantile_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.counts.latency.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return Some(0);
        }
        let want = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, &n) in self.counts.latency.iter().enumerate() {
            seen += u64::from(n);
            if seen >= want {
                return LATENCY_BOUNDS_US.get(i).copied();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(key: &'a str, status: u16, refusal: Option<&'static str>, us: u64) -> Request<'a> {
        Request {
            key: key.as_bytes(),
            tenant: b"acme",
            plan: b"free",
            route: 1,
            status,
            refusal,
            us,
            bytes_in: 10,
            bytes_out: 100,
        }
    }

    #[test]
    fn a_minute_collects_per_key_and_hands_over_when_it_turns() {
        let mut t = Tally::default();
        assert!(t.add(100, &req("key_a", 200, None, 1_000)).is_none());
        assert!(t
            .add(100, &req("key_a", 429, Some("rate_limited"), 20))
            .is_none());
        assert!(t
            .add(
                100,
                &req("key_b", 502, Some("upstream_unavailable"), 60_000)
            )
            .is_none());
        let (minute, mut entries) = t.add(101, &req("key_a", 200, None, 1)).unwrap();
        assert_eq!(minute, 100);
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let a = &entries[0];
        assert_eq!(
            (a.key.as_str(), a.tenant.as_str(), a.plan.as_str()),
            ("key_a", "acme", "free")
        );
        assert_eq!(
            a.counts,
            Counts {
                requests: 2,
                ok: 1,
                client_errors: 1,
                server_errors: 0,
                refused: 1,
                bytes_in: 20,
                bytes_out: 200,
                latency: [2, 0, 0, 0],
            }
        );
        assert_eq!(a.refusals, [("rate_limited", 1)]);
        assert_eq!(entries[1].counts.latency, [0, 0, 1, 0]);
        assert_eq!(t.take().unwrap().1.len(), 1);
        assert!(t.take().is_none());
    }

    #[test]
    fn rows_round_trip_through_their_bytes() {
        let row = Row {
            minute: 29_000_000,
            key: 7,
            route: 3,
            kind: 0,
            code: 0,
            counts: Counts {
                requests: u32::MAX,
                ok: 5,
                client_errors: 6,
                server_errors: 7,
                refused: 8,
                bytes_in: u64::MAX,
                bytes_out: 1 << 40,
                latency: [1, 2, 3, 4],
            },
        };
        let mut out = Vec::new();
        row.encode(&mut out);
        assert_eq!(out.len(), ROW_BYTES);
        assert_eq!(Row::decode(out[..].try_into().unwrap()), row);
    }

    #[test]
    fn sums_add_counts_and_refusals_and_estimate_latency() {
        let mut s = Sums::default();
        let mut row = Row::default();
        row.counts.requests = 10;
        row.counts.latency = [5, 3, 1, 1];
        s.add(&row);
        s.add(&row);
        let refusal = Row {
            kind: 1,
            code: 4,
            counts: Counts {
                refused: 3,
                ..Counts::default()
            },
            ..Row::default()
        };
        s.add(&refusal);
        s.add(&refusal);
        assert_eq!(s.counts.requests, 20);
        assert_eq!(s.refusals, [(4, 6)]);
        assert_eq!(s.latency_quantile_us(0.5), Some(5_000));
        assert_eq!(s.latency_quantile_us(0.8), Some(50_000));
        assert_eq!(s.latency_quantile_us(0.99), None);
    }
}
