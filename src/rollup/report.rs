//! Usage reports: sum the rollups from a minute up to now by key, tenant, plan or route.
//! Whole days come from day files (one row per key and route), the rest from minute files,
//! so thirty days of a million keys is thirty day files read once, each row added into a
//! slot found by array index (no hashing per row).

use std::collections::HashMap;
use std::path::Path;

use keyway_core::rollup::{Row, Sums, LATENCY_BOUNDS_US, ROW_BYTES};
use serde_json::{json, Value};

use super::names::Dictionary;
use super::{day_file, minute_file, DAY_MINUTES};

/// What a report groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Key,
    Tenant,
    Plan,
    Route,
}

impl By {
    pub fn name(self) -> &'static str {
        match self {
            By::Key => "key",
            By::Tenant => "tenant",
            By::Plan => "plan",
            By::Route => "route",
        }
    }

    pub fn parse(s: &str) -> Option<By> {
        [By::Key, By::Tenant, By::Plan, By::Route]
            .into_iter()
            .find(|b| b.name() == s)
    }
}

/// A finished report: groups by requests, most first.
pub struct Report {
    pub by: By,
    pub since_minute: u32,
    pub until_minute: u32,
    pub groups: Vec<(String, Sums)>,
    /// Groups before `limit` cut the list.
    pub total_groups: usize,
    pub codes: Vec<String>,
    pub rows_read: u64,
}

/// The Unix day of a `YYYY-MM-DD` file stem.
pub fn day_of_name(stem: &str) -> Option<u32> {
    let mut parts = stem.splitn(3, '-').map(str::parse::<u32>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    let secs = date.midnight().assume_utc().unix_timestamp();
    u32::try_from(secs / 86_400).ok()
}

/// Sums the rollups in `dir` from `since_minute` to `until_minute` (Unix minutes), grouped
/// `by`; keeps the `limit` groups with most requests (0: all).
pub fn report(
    dir: &Path,
    by: By,
    since_minute: u32,
    until_minute: u32,
    limit: usize,
) -> std::io::Result<Report> {
    let dict = Dictionary::read(dir)?;
    // Group number per key or route number: an index, not a hash, per row.
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let key_group: Vec<usize> = match by {
        // Group = key number; names are looked up for the groups shown only.
        By::Key => Vec::new(),
        By::Tenant | By::Plan => {
            let mut out = Vec::with_capacity(dict.key_count());
            for (i, k) in dict.keys().enumerate() {
                let name = match (i, by) {
                    (0, _) => "(no key)",
                    (_, By::Tenant) => k.tenant,
                    _ => k.plan,
                };
                let g = *index.entry(name).or_insert_with(|| {
                    names.push(name.to_string());
                    names.len() - 1
                });
                out.push(g);
            }
            out
        }
        By::Route => Vec::new(),
    };
    let route_group: Vec<usize> = match by {
        By::Route => {
            names = dict.routes.clone();
            names[0] = "(no route)".into();
            (0..names.len()).collect()
        }
        _ => Vec::new(),
    };
    // The files to read, each with the first minute it counts.
    let mut jobs: Vec<(std::path::PathBuf, u32)> = Vec::new();
    let (first, last) = (since_minute / DAY_MINUTES, until_minute / DAY_MINUTES);
    for day in first..=last {
        let whole = since_minute <= day * DAY_MINUTES;
        let summed = day_file(dir, day);
        let minutes = minute_file(dir, day);
        if whole && summed.exists() {
            jobs.push((summed, 0));
        } else if minutes.exists() {
            jobs.push((minutes, since_minute));
        } else if summed.exists() {
            // Only the day's sum is left (minute files are kept two days): the whole day.
            jobs.push((summed, 0));
        }
    }
    let current = dir.join(super::CURRENT);
    if current.exists() {
        jobs.push((current, since_minute));
    }
    // Files are summed on as many threads as there are CPUs, each into its own slots.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().max(1));
    let groups_n = match by {
        By::Key => dict.key_count(),
        _ => names.len(),
    };
    let (key_group, route_group) = (&key_group, &route_group);
    let parts: Vec<std::io::Result<(Vec<Sums>, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<&(std::path::PathBuf, u32)> =
                    jobs.iter().skip(t).step_by(threads).collect();
                scope.spawn(move || -> std::io::Result<(Vec<Sums>, u64)> {
                    let mut sums = vec![Sums::default(); groups_n];
                    let mut rows = 0u64;
                    for (path, from) in mine {
                        let file = std::fs::File::open(path)?;
                        if file.metadata()?.len() == 0 {
                            continue;
                        }
                        // SAFETY: a private read-only map of a rollup file; the writer only
                        // appends to minute files and replaces day files by rename, so
                        // mapped bytes are never changed under us (a row appended after the
                        // map was made is simply not seen).
                        let map = unsafe { memmap2::Mmap::map(&file)? };
                        rows += add_rows(
                            &map,
                            *from,
                            until_minute,
                            by,
                            key_group,
                            route_group,
                            &mut sums,
                        );
                    }
                    Ok((sums, rows))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a report thread failed")))
            })
            .collect()
    });
    let mut sums = vec![Sums::default(); groups_n];
    let mut rows_read = 0;
    for part in parts {
        let (part, rows) = part?;
        rows_read += rows;
        for (total, s) in sums.iter_mut().zip(&part) {
            if s.counts.requests > 0 || !s.refusals.is_empty() {
                total.merge(s);
            }
        }
    }
    // The busiest groups: a partial sort for the top `limit`, then names for those only.
    let mut live: Vec<(usize, Sums)> = sums
        .into_iter()
        .enumerate()
        .filter(|(_, s)| s.counts.requests > 0 || !s.refusals.is_empty())
        .collect();
    let total_groups = live.len();
    let busier = |a: &(usize, Sums), b: &(usize, Sums)| {
        b.1.counts
            .requests
            .cmp(&a.1.counts.requests)
            .then_with(|| a.0.cmp(&b.0))
    };
    if limit > 0 && live.len() > limit {
        live.select_nth_unstable_by(limit - 1, busier);
        live.truncate(limit);
    }
    live.sort_unstable_by(busier);
    let name_of = |g: usize| -> String {
        match by {
            By::Key if g == 0 => "(no key)".into(),
            By::Key => dict.key(g).map_or_else(String::new, |k| k.id.to_string()),
            _ => names.get(g).cloned().unwrap_or_default(),
        }
    };
    let groups: Vec<(String, Sums)> = live.into_iter().map(|(g, s)| (name_of(g), s)).collect();
    Ok(Report {
        by,
        since_minute,
        until_minute,
        groups,
        total_groups,
        codes: dict.codes.clone(),
        rows_read,
    })
}

/// Adds the rows of `bytes` dated `from..=until` into their groups' sums; the rows counted.
fn add_rows(
    bytes: &[u8],
    from: u32,
    until: u32,
    by: By,
    key_group: &[usize],
    route_group: &[usize],
    sums: &mut [Sums],
) -> u64 {
    let mut n = 0;
    for chunk in bytes.chunks_exact(ROW_BYTES) {
        let Ok(chunk) = chunk.try_into() else {
            continue;
        };
        let row = Row::decode(chunk);
        if row.minute < from || row.minute > until {
            continue;
        }
        n += 1;
        let g = match by {
            By::Route => route_group.get(usize::from(row.route)),
            By::Key => Some(&(row.key as usize)),
            _ => key_group.get(row.key as usize),
        };
        if let Some(s) = g.and_then(|&g| sums.get_mut(g)) {
            s.add(&row);
        }
    }
    n
}

fn latency_ms(s: &Sums, q: f64) -> Value {
    match s.latency_quantile_us(q) {
        Some(us) => json!(us as f64 / 1000.0),
        None => json!(format!(
            ">{}",
            LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.len() - 1] / 1000
        )),
    }
}

impl Report {
    pub fn json(&self) -> Value {
        let rfc = |m: u32| crate::ops::parse::rfc3339(i64::from(m) * 60);
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(name, s)| {
                let c = &s.counts;
                let refusals: serde_json::Map<String, Value> = s
                    .refusals
                    .iter()
                    .map(|(code, n)| {
                        let name = self.codes.get(usize::from(*code)).cloned().unwrap_or_default();
                        (name, json!(n))
                    })
                    .collect();
                json!({
                    "name": name, "requests": c.requests, "ok": c.ok,
                    "client_errors": c.client_errors, "server_errors": c.server_errors,
                    "refused": c.refused, "refusals": refusals,
                    "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
                    "latency_buckets_ms": {"le_5": c.latency[0], "le_50": c.latency[1], "le_500": c.latency[2], "over_500": c.latency[3]},
                    "latency_p50_ms_at_most": latency_ms(s, 0.5),
                    "latency_p99_ms_at_most": latency_ms(s, 0.99),
                })
            })
            .collect();
        json!({
            "by": self.by.name(),
            "since": rfc(self.since_minute),
            "until": rfc(self.until_minute + 1),
            "groups": groups,
            "total_groups": self.total_groups,
            "rows_read": self.rows_read,
        })
    }

    /// The text table `keyway usage` prints.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .groups
            .iter()
            .map(|(name, s)| {
                let c = &s.counts;
                let top = s
                    .refusals
                    .iter()
                    .max_by_key(|(_, n)| *n)
                    .map(|(code, n)| {
                        format!(
                            "{} {n}",
                            self.codes
                                .get(usize::from(*code))
                                .map_or("?", String::as_str)
                        )
                    })
                    .unwrap_or_else(|| "-".into());
                let p99 = latency_ms(s, 0.99);
                vec![
                    name.clone(),
                    c.requests.to_string(),
                    c.ok.to_string(),
                    c.client_errors.to_string(),
                    c.server_errors.to_string(),
                    c.refused.to_string(),
                    top,
                    format!("{}", p99).trim_matches('"').to_string(),
                    c.bytes_out.to_string(),
                ]
            })
            .collect();
        crate::ops::render::table(
            &[
                self.by.name(),
                "requests",
                "ok",
                "4xx",
                "5xx",
                "refused",
                "top refusal",
                "p99 ms ≤",
                "bytes out",
            ],
            &rows,
        )
    }
}

/// Longest span a report covers.
pub const MAX_SINCE_S: u64 = 400 * 86_400;

/// `keyway usage` and `GET /v1/usage`: the report for the gateway whose state is under
/// `paths`, over the last `since_s` seconds before `now` (Unix seconds).
pub fn for_paths(
    paths: &crate::ops::Paths,
    by: By,
    since_s: u64,
    limit: usize,
    now: i64,
) -> Result<Report, crate::ops::Error> {
    use crate::ops::Error;
    let Some(state) = &paths.state_dir else {
        return Err(Error::invalid(
            "usage needs the gateway's state directory: pass --config",
        ));
    };
    if since_s == 0 || since_s > MAX_SINCE_S {
        return Err(Error::invalid(
            "since must be from 1 minute to 400 days, e.g. 24h or 30d",
        ));
    }
    let until = (now / 60) as u32;
    let since = (now - since_s as i64).max(0) / 60;
    report(&state.join("usage"), by, since as u32, until, limit).map_err(|e| {
        Error::new(
            500,
            "usage_unreadable",
            format!(
                "cannot read the usage rollups in {}: {e}",
                state.join("usage").display()
            ),
        )
    })
}
