//! Usage rollups on disk (`state_dir/usage/`), written off the request path.
//!
//! Shards count each finished request into their minute [`Tally`] (keyway-core `rollup`)
//! and hand a finished minute to their control loop, which sends it here; a writer thread
//! numbers keys, routes and refusal codes in `names.tsv` and appends 64-byte rows to
//! `YYYY-MM-DD.min`. When a day is over its minute file is summed into `YYYY-MM-DD.day` (one
//! row per key, route and code), and minute files older than two days are removed. Reports
//! ([`report`]) read day files for whole days in range and minute files for the rest, so
//! they never scan the audit log and lose nothing it drops under load.
//!
//! [`Tally`]: keyway_core::rollup::Tally

pub mod names;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use keyway_core::rollup::{Counts, Entry, Row, ROW_BYTES};

use names::Names;

/// Minutes per day.
pub const DAY_MINUTES: u32 = 1440;

/// A shard's finished minute.
pub struct Batch {
    pub minute: u32,
    pub entries: Vec<Entry>,
    /// Route metric slot -> label, as the shard's configuration had them.
    pub route_labels: Arc<Vec<String>>,
}

/// A shard's side: its minute tally and the finished minutes waiting for the control loop
/// to send (the request path never touches the channel).
#[derive(Default)]
pub struct ShardRollup {
    pub tally: keyway_core::rollup::Tally,
    ready: Vec<(u32, Vec<Entry>)>,
    tx: Option<Sender<Batch>>,
    /// Minutes dropped because the writer's queue was full.
    pub dropped: u64,
    /// When the unfinished minute was last sent (Unix seconds).
    sent_at: i64,
}

/// How often a shard sends what it has counted of the current minute (reports lag by at
/// most this; the rows of one minute are summed when read).
pub const SEND_EVERY_S: i64 = 10;

impl ShardRollup {
    pub fn new(tx: Option<Sender<Batch>>) -> ShardRollup {
        ShardRollup {
            tx,
            ..ShardRollup::default()
        }
    }

    /// Counts a finished request (no-op when rollups are off).
    #[inline]
    pub fn add(&mut self, minute: u32, r: &keyway_core::rollup::Request<'_>) {
        if self.tx.is_none() {
            return;
        }
        if let Some(done) = self.tally.add(minute, r) {
            self.ready.push(done);
        }
    }

    /// From the control loop at `now` (Unix seconds): sends finished minutes, and what the
    /// current one has so far every [`SEND_EVERY_S`] or with `all` (at shutdown).
    pub fn flush(&mut self, now: i64, labels: &[String], all: bool) {
        let Some(tx) = &self.tx else { return };
        let minute = (now / 60) as u32;
        let all = all || now - self.sent_at >= SEND_EVERY_S;
        if all {
            self.sent_at = now;
        }
        if let Some(done) = if all {
            self.tally.turn(minute).or_else(|| self.tally.take())
        } else {
            self.tally.turn(minute)
        } {
            self.ready.push(done);
        }
        if self.ready.is_empty() {
            return;
        }
        let route_labels = Arc::new(labels.to_vec());
        for (minute, entries) in self.ready.drain(..) {
            let batch = Batch {
                minute,
                entries,
                route_labels: route_labels.clone(),
            };
            if tx.try_send(batch).is_err() {
                self.dropped += 1;
            }
        }
    }

    /// At shutdown: sends everything counted, then lets go of the channel (the writer
    /// ends when every shard has).
    pub fn close(&mut self, now: i64, labels: &[String]) {
        self.flush(now, labels, true);
        self.tx = None;
    }
}

/// Batches queued to the writer at most; past this a shard drops a minute (and counts it).
pub const QUEUE: usize = 1024;

/// `YYYY-MM-DD` of a Unix minute.
pub fn day_name(minute: u32) -> String {
    let secs = i64::from(minute - minute % DAY_MINUTES) * 60;
    crate::ops::parse::rfc3339(secs)[..10].to_string()
}

pub fn minute_file(dir: &Path, day: u32) -> PathBuf {
    dir.join(format!("{}.min", day_name(day * DAY_MINUTES)))
}

pub fn day_file(dir: &Path, day: u32) -> PathBuf {
    dir.join(format!("{}.day", day_name(day * DAY_MINUTES)))
}

/// The writer thread: joins when every sender is gone.
pub struct Writer {
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    pub fn finish(self) {
        let _ = self.thread.join();
    }
}

/// Opens (creating) `dir` and starts the writer; the sender goes to the shards.
pub fn start(dir: &Path, now_minute: u32) -> std::io::Result<(Writer, Sender<Batch>)> {
    fs::create_dir_all(dir)?;
    let names = Names::open(dir)?;
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let dir = dir.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("keyway-rollup".into())
        .spawn(move || run(dir, names, rx, now_minute))?;
    Ok((Writer { thread }, tx))
}

/// Counts per (key, route, kind, code) of one minute.
type Minute = HashMap<(u32, u16, u8, u8), Counts>;

/// The writer's state: minutes still being counted by the shards, merged in memory so each
/// key, route and minute is one row on disk however often the shards send.
struct Pending {
    dir: PathBuf,
    names: Names,
    minutes: BTreeMap<u32, Minute>,
    current_written: bool,
}

/// A minute is written this long after it ends (shards send what they have every 10 s).
const SETTLE_S: i64 = 15;

fn run(dir: PathBuf, names: Names, rx: Receiver<Batch>, now_minute: u32) {
    compact_before(&dir, now_minute / DAY_MINUTES);
    let mut today = now_minute / DAY_MINUTES;
    let mut p = Pending {
        dir,
        names,
        minutes: BTreeMap::new(),
        current_written: false,
    };
    loop {
        let got = rx.recv_timeout(Duration::from_secs(2));
        let closed = matches!(got, Err(RecvTimeoutError::Disconnected));
        if let Ok(batch) = got {
            if let Err(e) = p.merge(&batch) {
                tracing::warn!(dir = %p.dir.display(), error = %e, "cannot number usage rollups; reports will miss this minute");
            }
            for more in rx.try_iter() {
                let _ = p.merge(&more);
            }
        }
        let now = crate::clock::unix_now();
        let settled = if closed {
            u32::MAX
        } else {
            ((now - SETTLE_S) / 60) as u32
        };
        if let Err(e) = p.write(settled) {
            tracing::warn!(dir = %p.dir.display(), error = %e, "cannot write usage rollups; reports will miss these minutes");
        }
        if closed {
            return;
        }
        let day = (now / 60) as u32 / DAY_MINUTES;
        if day > today {
            today = day;
            compact_before(&p.dir, today);
        }
    }
}

impl Pending {
    fn merge(&mut self, b: &Batch) -> std::io::Result<()> {
        let minute = self.minutes.entry(b.minute).or_default();
        for e in &b.entries {
            let key = self.names.key(&e.key, &e.tenant, &e.plan)?;
            let label = b
                .route_labels
                .get(usize::from(e.route))
                .map_or("", String::as_str);
            let route = self.names.route(label)?;
            minute
                .entry((key, route, 0, 0))
                .or_default()
                .merge(&e.counts);
            for (code, n) in &e.refusals {
                let code = self.names.code(code)?;
                let c = &mut minute.entry((key, route, 1, code)).or_default().refused;
                *c = c.saturating_add(*n);
            }
        }
        Ok(())
    }

    /// Appends the minutes before `settled` (every minute with `u32::MAX`) to their day's
    /// minute file, and rewrites `current.min` with the ones still counting, which reports
    /// read too.
    fn write(&mut self, settled: u32) -> std::io::Result<()> {
        let later = self.minutes.split_off(&settled);
        let done = std::mem::replace(&mut self.minutes, later);
        // The ones still counting first: a report may miss a minute for a moment, never
        // count it twice.
        if !self.minutes.is_empty() || self.current_written {
            let mut buf = Vec::new();
            for (&m, rows) in &self.minutes {
                encode(m, rows, &mut buf);
            }
            keyway_core::fsutil::write_atomic_unsynced(&self.dir.join(CURRENT), &buf)?;
            self.current_written = !self.minutes.is_empty();
            if !self.current_written {
                let _ = fs::remove_file(self.dir.join(CURRENT));
            }
        }
        for (m, rows) in done {
            let mut buf = Vec::with_capacity(rows.len() * ROW_BYTES);
            encode(m, &rows, &mut buf);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(minute_file(&self.dir, m / DAY_MINUTES))?
                .write_all(&buf)?;
        }
        Ok(())
    }
}

/// The minutes the shards are still counting (rewritten every few seconds).
pub const CURRENT: &str = "current.min";

fn encode(minute: u32, rows: &Minute, out: &mut Vec<u8>) {
    for (&(key, route, kind, code), counts) in rows {
        Row {
            minute,
            key,
            route,
            kind,
            code,
            counts: *counts,
        }
        .encode(out);
    }
}

/// Sums every minute file of a day before `today` that has no day file yet, and removes
/// minute files older than yesterday once summed.
pub fn compact_before(dir: &Path, today: u32) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(day) = name.strip_suffix(".min").and_then(report::day_of_name) else {
            continue;
        };
        if day >= today {
            continue;
        }
        let summed = day_file(dir, day);
        if !summed.exists() {
            if let Err(e) = compact(&entry.path(), &summed, day) {
                tracing::warn!(file = %entry.path().display(), error = %e, "cannot sum a day of usage rollups");
                continue;
            }
        }
        if day + 1 < today {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// One row per (key, route, kind, code) of a minute file, dated the day's first minute.
pub fn compact(min_file: &Path, out: &Path, day: u32) -> std::io::Result<()> {
    let bytes = fs::read(min_file)?;
    let mut sums: HashMap<(u32, u16, u8, u8), Counts> = HashMap::new();
    for chunk in bytes.chunks_exact(ROW_BYTES) {
        let row = Row::decode(chunk.try_into().unwrap_or(&[0; ROW_BYTES]));
        sums.entry((row.key, row.route, row.kind, row.code))
            .or_default()
            .merge(&row.counts);
    }
    let mut rows: Vec<_> = sums.into_iter().collect();
    rows.sort_unstable_by_key(|(k, _)| *k);
    let mut buf = Vec::with_capacity(rows.len() * ROW_BYTES);
    for ((key, route, kind, code), counts) in rows {
        Row {
            minute: day * DAY_MINUTES,
            key,
            route,
            kind,
            code,
            counts,
        }
        .encode(&mut buf);
    }
    keyway_core::fsutil::write_atomic(out, &buf)
}

#[cfg(test)]
mod tests {
    use super::report::{report, By};
    use super::*;

    fn batch(minute: u32, key: &str, tenant: &str, n: u32, refusal: Option<&'static str>) -> Batch {
        let mut counts = Counts::default();
        for _ in 0..n {
            counts.add(
                if refusal.is_some() { 429 } else { 200 },
                refusal.is_some(),
                100,
                1,
                2,
            );
        }
        Batch {
            minute,
            entries: vec![Entry {
                key: key.into(),
                tenant: tenant.into(),
                plan: "free".into(),
                route: 1,
                counts,
                refusals: refusal.map(|c| vec![(c, n)]).unwrap_or_default(),
            }],
            route_labels: Arc::new(vec!["none".into(), "/v1/".into()]),
        }
    }

    fn rows(path: &Path) -> usize {
        fs::read(path).map_or(0, |b| b.len() / ROW_BYTES)
    }

    #[test]
    fn partial_sends_become_one_row_per_key_and_minute_and_reports_see_both_stages() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let day = 20_000;
        let m = day * DAY_MINUTES + 10;
        let mut p = Pending {
            dir: d.to_path_buf(),
            names: Names::open(d).unwrap(),
            minutes: BTreeMap::new(),
            current_written: false,
        };
        // Three partial sends of minute m from two shards, one of another key.
        p.merge(&batch(m, "key_a", "acme", 3, None)).unwrap();
        p.merge(&batch(m, "key_a", "acme", 2, None)).unwrap();
        p.merge(&batch(m, "key_a", "acme", 4, Some("rate_limited")))
            .unwrap();
        p.merge(&batch(m + 1, "key_b", "beta", 1, None)).unwrap();
        // Nothing settled yet: all in current.min, which reports read.
        p.write(m).unwrap();
        assert_eq!(rows(&minute_file(d, day)), 0);
        let r = report(d, By::Tenant, m - 5, m + 5, 0).unwrap();
        assert_eq!(r.groups[0].0, "acme");
        assert_eq!(r.groups[0].1.counts.requests, 9);
        assert_eq!(r.groups[0].1.refusals, [(1, 4)]);
        // Minute m settles: one counts row and one refusal row in the minute file.
        p.write(m + 1).unwrap();
        assert_eq!(rows(&minute_file(d, day)), 2);
        assert_eq!(rows(&d.join(CURRENT)), 1);
        let r = report(d, By::Key, m - 5, m + 5, 0).unwrap();
        let names: Vec<(&str, u32)> = r
            .groups
            .iter()
            .map(|(n, s)| (n.as_str(), s.counts.requests))
            .collect();
        assert_eq!(names, [("key_a", 9), ("key_b", 1)]);
        // A span that ends before m counts nothing of it.
        assert!(report(d, By::Key, m - 5, m - 1, 0)
            .unwrap()
            .groups
            .is_empty());
        p.write(u32::MAX).unwrap();
        assert!(!d.join(CURRENT).exists());

        // The day is summed into a day file once over; minute files older than yesterday go.
        compact_before(d, day + 1);
        assert_eq!(rows(&day_file(d, day)), 3);
        assert!(minute_file(d, day).exists(), "yesterday's minutes are kept");
        compact_before(d, day + 2);
        assert!(!minute_file(d, day).exists());
        let r = report(d, By::Plan, day * DAY_MINUTES, (day + 2) * DAY_MINUTES, 0).unwrap();
        assert_eq!(r.groups[0].1.counts.requests, 10);
        assert_eq!(r.json()["groups"][0]["refusals"]["rate_limited"], 4);
    }
}
