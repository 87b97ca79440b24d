//! Criterion bench of a usage report over 30 days of rollups for 1 million keys (the
//! operator-side issue's bar: under 1 s), read the way `keyway usage --since 30d` reads them:
//! thirty day files plus the dictionary.
//!
//! The data is made once under `$KEYWAY_USAGE_BENCH_DIR` (default
//! /tmp/keyway-usage-bench-KEYSxDAYSxACTIVE): `USAGE_KEYS` keys (default 1,000,000) in 1,000
//! tenants and 4 plans, `USAGE_DAYS` day files (30), each with a row for `USAGE_ACTIVE`
//! percent of the keys (100: every key every day, the worst case) and a refusal row for one
//! key in ten.
//!
//!   cargo bench --bench usage -- --warm-up-time 1 --measurement-time 10

use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use keyway::rollup::report::{report, By};
use keyway::rollup::{day_file, DAY_MINUTES};
use keyway_core::rollup::{Counts, Row};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes the dictionary and day files unless they are there already; the first day.
fn make(dir: &Path, keys: u64, days: u32, active: u64, today: u32) -> u32 {
    let first = today - days;
    let marker = dir.join("complete");
    if marker.exists() {
        return first;
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut names = std::io::BufWriter::new(std::fs::File::create(dir.join("names.tsv")).unwrap());
    for k in 1..=keys {
        writeln!(names, "k\t{k}\tkey_{k:016}\tt{}\tplan{}", k % 1000, k % 4).unwrap();
    }
    writeln!(names, "r\t1\t/v1/").unwrap();
    writeln!(names, "c\t1\trate_limited").unwrap();
    names.flush().unwrap();
    for day in first..today {
        let mut buf = Vec::with_capacity(keys as usize * 70);
        for k in 1..=keys as u32 {
            if (u64::from(k) * 7 + u64::from(day)) % 100 >= active {
                continue;
            }
            let mut row = Row {
                minute: day * DAY_MINUTES,
                key: k,
                route: 1,
                kind: 0,
                code: 0,
                counts: Counts {
                    requests: 100 + k % 50,
                    ok: 95,
                    client_errors: 5,
                    server_errors: 0,
                    refused: 5,
                    bytes_in: 1_000,
                    bytes_out: 50_000,
                    latency: [90, 8, 2, 0],
                },
            };
            row.encode(&mut buf);
            if k % 10 == 0 {
                row.kind = 1;
                row.code = 1;
                row.counts = Counts {
                    refused: 5,
                    ..Counts::default()
                };
                row.encode(&mut buf);
            }
        }
        std::fs::write(day_file(dir, day), buf).unwrap();
    }
    std::fs::write(marker, b"").unwrap();
    first
}

fn reports(c: &mut Criterion) {
    let keys = env("USAGE_KEYS", 1_000_000);
    let days = env("USAGE_DAYS", 30) as u32;
    let active = env("USAGE_ACTIVE", 100);
    let dir = std::env::var("KEYWAY_USAGE_BENCH_DIR").map_or_else(
        |_| PathBuf::from(format!("/tmp/keyway-usage-bench-{keys}x{days}x{active}")),
        PathBuf::from,
    );
    // A fixed "today" so the files made once stay in range.
    let today = 20_000;
    let first = make(&dir, keys, days, active, today);
    let since = first * DAY_MINUTES;
    let until = today * DAY_MINUTES - 1;
    let mut g = c.benchmark_group(format!("usage_{keys}_keys_{days}_days_{active}pct"));
    g.sample_size(10);
    for by in [By::Tenant, By::Key] {
        g.bench_function(by.name(), |b| {
            b.iter(|| {
                let r = report(&dir, by, since, until, 25).unwrap();
                assert!(!r.groups.is_empty());
                r.rows_read
            })
        });
    }
    // Of which: reading the dictionary (the same for every report).
    g.bench_function("dictionary_only", |b| {
        b.iter(|| {
            keyway::rollup::names::Dictionary::read(&dir)
                .unwrap()
                .key_count()
        })
    });
    g.finish();
}

criterion_group!(benches, reports);
criterion_main!(benches);
