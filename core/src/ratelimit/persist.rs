//! State file encoding (format v1): counters of windows >= 1 min and credits, one CRC'd
//! record per key; decoding keeps every record it can verify and reports the rest.

use std::fmt;

use super::entry::{Entry, Now};
use super::window::{Cal, Ring, DAY, HOUR, MIN, MONTH, RING};
use super::Limiter;

pub const MAGIC: &[u8; 4] = b"KWRL";
pub const VERSION: u16 = 1;
const HEADER: usize = 24;
const MAX_PAYLOAD: usize = 512;

/// What `restore_state` read, what it skipped and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub records_read: usize,
    pub records_skipped: usize,
    /// Human-readable problems, to log; empty for a clean file.
    pub problems: Vec<String>,
}

impl RestoreReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.records_skipped == 0
    }
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} key records read, {} skipped",
            self.records_read, self.records_skipped
        )?;
        for p in &self.problems {
            write!(f, "; {p}")?;
        }
        Ok(())
    }
}

fn put_ring(out: &mut Vec<u8>, r: &Ring, abs: i64) {
    let lo = abs.saturating_sub(RING as i64 - 1);
    let mut mask = 0u32;
    let mut vals = [0u32; RING];
    let mut k = 0;
    for (a, n) in r.iter().filter(|(a, _)| *a >= lo && *a <= abs) {
        mask |= 1 << (a - lo);
        vals[k] = n;
        k += 1;
    }
    out.extend_from_slice(&abs.to_le_bytes());
    out.extend_from_slice(&mask.to_le_bytes());
    for v in &vals[..k] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_cal(out: &mut Vec<u8>, c: &Cal) {
    out.extend_from_slice(&c.id.to_le_bytes());
    out.extend_from_slice(&c.n.to_le_bytes());
}

/// A bounds-checked little-endian reader.
struct Rd<'a>(&'a [u8]);
impl Rd<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (h, t) = self.0.split_first_chunk::<N>()?;
        self.0 = t;
        Some(*h)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_le_bytes)
    }
    fn cal(&mut self) -> Option<Cal> {
        Some(Cal {
            id: self.i64()?,
            n: self.u64()?,
        })
    }
    /// (newest bucket, [(bucket, count)]) of a saved ring.
    fn ring(&mut self, out: &mut Vec<(i64, u32)>) -> Option<()> {
        let abs = self.i64()?;
        let mask = self.u32()?;
        if mask >> RING != 0 {
            return None;
        }
        let lo = abs.saturating_sub(RING as i64 - 1);
        for i in 0..RING as i64 {
            if mask & (1 << i) != 0 {
                out.push((lo.saturating_add(i), self.u32()?));
            }
        }
        Some(())
    }
}

fn decode_record(p: &[u8], now: &Now) -> Option<(u64, Entry)> {
    let mut r = Rd(p);
    let key = r.u64()?;
    let [flags] = r.take::<1>()?;
    let mut e = Entry::default();
    let mut buckets = Vec::new();
    if flags & 1 != 0 {
        r.ring(&mut buckets)?;
        e.rings[MIN].advance(now.id[MIN]);
        buckets
            .drain(..)
            .filter(|b| b.0 <= now.id[MIN])
            .for_each(|(a, n)| e.rings[MIN].add(a, n));
    }
    if flags & 2 != 0 {
        r.ring(&mut buckets)?;
        e.rings[HOUR].advance(now.id[HOUR]);
        buckets
            .drain(..)
            .filter(|b| b.0 <= now.id[HOUR])
            .for_each(|(a, n)| e.rings[HOUR].add(a, n));
    }
    // Calendar counters of an ended period read as zero: they are dropped by `Cal::add`.
    let mut cal = |bit: u8, c: &mut Cal, id: i64| -> Option<()> {
        if flags & bit != 0 {
            let v = r.cal()?;
            if v.id == id {
                c.add(v.id, v.n);
            }
        }
        Some(())
    };
    cal(4, &mut e.day, now.id[DAY])?;
    cal(8, &mut e.month, now.id[MONTH])?;
    cal(16, &mut e.cday, now.id[DAY])?;
    cal(32, &mut e.cmonth, now.id[MONTH])?;
    if flags & 64 != 0 {
        e.clife = r.u64()?;
    }
    // Restored windows stay until they expire: minute, hour, day, month, credits.
    e.mask = flags << 1; // flag bit i (minute = 0 ...) is mask bit i + 1
    (r.0.is_empty() && flags < 128).then_some((key, e))
}

impl Limiter {
    /// Encodes windows >= 1 min and credits (whole-gateway view) into `out` (appended).
    pub fn encode_state(&self, now_ms: i64, out: &mut Vec<u8>) {
        let now = Now::new(now_ms);
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&now_ms.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // record count, patched below
        out.extend_from_slice(&0u32.to_le_bytes()); // header CRC, patched below
        let mut n = 0u32;
        let mut p = Vec::with_capacity(MAX_PAYLOAD);
        for (key, e) in &self.map {
            let mut flags = 0u8;
            p.clear();
            p.extend_from_slice(&key.to_le_bytes());
            p.push(0);
            if e.rings[MIN].count_at(now.id[MIN]) > 0 {
                flags |= 1;
                put_ring(&mut p, &e.rings[MIN], now.id[MIN]);
            }
            if e.rings[HOUR].count_at(now.id[HOUR]) > 0 {
                flags |= 2;
                put_ring(&mut p, &e.rings[HOUR], now.id[HOUR]);
            }
            for (bit, c, id) in [
                (4, &e.day, now.id[DAY]),
                (8, &e.month, now.id[MONTH]),
                (16, &e.cday, now.id[DAY]),
                (32, &e.cmonth, now.id[MONTH]),
            ] {
                if c.count_at(id) > 0 {
                    flags |= bit;
                    put_cal(&mut p, c);
                }
            }
            if e.clife > 0 {
                flags |= 64;
                p.extend_from_slice(&e.clife.to_le_bytes());
            }
            if flags == 0 {
                continue;
            }
            p[8] = flags;
            out.extend_from_slice(&(p.len() as u16).to_le_bytes());
            out.extend_from_slice(&p);
            out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
            n += 1;
        }
        out[start + 16..start + 20].copy_from_slice(&n.to_le_bytes());
        let crc = crc32fast::hash(&out[start..start + 20]);
        out[start + 20..start + 24].copy_from_slice(&crc.to_le_bytes());
    }

    /// Merges a state file into this limiter, keeping whatever verifies. Never fails.
    pub fn restore_state(&mut self, bytes: &[u8], now_ms: i64) -> RestoreReport {
        let mut rep = RestoreReport::default();
        let now = Now::new(now_ms);
        if bytes.is_empty() {
            rep.problems.push("state file empty".into());
            return rep;
        }
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            rep.problems
                .push("not a keyway rate-limit state file (bad magic or too short)".into());
            return rep;
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let header_ok = crc32fast::hash(&bytes[..20]).to_le_bytes() == bytes[20..24];
        if !header_ok {
            rep.problems
                .push("header checksum mismatch; reading records anyway".into());
        } else if version != VERSION {
            rep.problems
                .push(format!("unsupported state format version {version}"));
            return rep;
        }
        let expected = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let mut rest = &bytes[HEADER..];
        while !rest.is_empty() {
            let len = match rest {
                [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
                _ => 0,
            };
            if len == 0 || len > MAX_PAYLOAD || rest.len() < len + 6 {
                rep.problems.push(format!(
                    "truncated or corrupt at byte {}",
                    bytes.len() - rest.len()
                ));
                break;
            }
            let (payload, crc) = (&rest[2..2 + len], &rest[2 + len..6 + len]);
            rest = &rest[6 + len..];
            let rec = (crc32fast::hash(payload).to_le_bytes() == crc)
                .then(|| decode_record(payload, &now))
                .flatten();
            match rec {
                Some((key, e)) => {
                    self.merge(key, e, &now);
                    rep.records_read += 1;
                }
                None => rep.records_skipped += 1,
            }
        }
        if header_ok && rep.records_read + rep.records_skipped != expected as usize {
            rep.problems.push(format!(
                "header announces {expected} records, found {}",
                rep.records_read + rep.records_skipped
            ));
        }
        if rep.records_skipped > 0 {
            rep.problems.push(format!(
                "{} records failed their checksum or did not parse",
                rep.records_skipped
            ));
        }
        rep
    }

    fn merge(&mut self, key: u64, s: Entry, now: &Now) {
        let e = self.map.entry(key).or_default();
        e.advance(now);
        for (a, n) in s.rings[MIN].iter() {
            e.rings[MIN].add(a, n);
        }
        for (a, n) in s.rings[HOUR].iter() {
            e.rings[HOUR].add(a, n);
        }
        e.day.add(s.day.id, s.day.n);
        e.month.add(s.month.id, s.month.n);
        e.cday.add(s.cday.id, s.cday.n);
        e.cmonth.add(s.cmonth.id, s.cmonth.n);
        e.clife = e.clife.saturating_add(s.clife);
        e.mask |= s.mask;
    }
}
