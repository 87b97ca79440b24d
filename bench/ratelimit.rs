//! Criterion bench of admission: one request against 3 limits (20/s, 1000/min, 100000/day),
//! for one hot key and spread over 100k distinct keys; 1 and 4 shards.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keyway::keys::model::{LimitSpec, Window};
use keyway::ratelimit::{key_handle, Admission, Limiter, LimiterConfig};

const T0: i64 = 1_773_144_000_000;

fn limits() -> [LimitSpec; 3] {
    [
        LimitSpec {
            count: 20,
            window: Window::Second,
        },
        LimitSpec {
            count: 1000,
            window: Window::Minute,
        },
        LimitSpec {
            count: 100_000,
            window: Window::Day,
        },
    ]
}

/// Reads the answer the way the pipeline does (the fields its headers need), rather than
/// copying the whole 48-byte value through `black_box`, which costs a store-forwarding stall
/// the gateway never pays.
#[inline(always)]
fn consume(a: Admission) -> u64 {
    match a {
        Admission::Admitted(q) => black_box(q.remaining ^ q.reset_s),
        Admission::Limited { retry_after_s, .. } => black_box(retry_after_s),
        _ => black_box(0),
    }
}

fn admit(c: &mut Criterion) {
    let l = limits();
    for shards in [1usize, 4] {
        let cfg = LimiterConfig {
            shards,
            sync_interval_ms: 10,
        };
        // Hot key: the clock advances 1 ms per call so the key keeps being admitted at
        // 1000/s against 20/s: mostly refusals, as under abuse, plus rotations.
        let mut lim = Limiter::new(0, cfg);
        let k = key_handle("key_hot");
        let mut t = T0;
        c.bench_function(&format!("admit_3_limits_hot_key_{shards}_shards"), |b| {
            b.iter(|| {
                t += 1;
                consume(lim.admit(black_box(k), &l, None, 1, t))
            })
        });
        // Hot key, admitted path only: one call per 70 ms of clock stays under 20/s and
        // 1000/min even over the rings' 1.05 W span (at 60 ms the minute fills up, and most
        // calls would take the refusal path); every 90,000 calls the clock skips to the next
        // day, before the 100,000/day quota is spent.
        let mut lim = Limiter::new(0, cfg);
        let (mut t, mut n) = (T0, 0u32);
        c.bench_function(
            &format!("admit_3_limits_hot_key_admitted_{shards}_shards"),
            |b| {
                b.iter(|| {
                    n += 1;
                    t += if n % 90_000 == 0 { 86_400_000 } else { 70 };
                    let a = lim.admit(black_box(k), &l, None, 1, t);
                    assert!(matches!(a, Admission::Admitted(_)), "refused at {t}");
                    consume(a)
                })
            },
        );
        // 100k distinct keys, round robin.
        let mut lim = Limiter::new(0, cfg);
        let keys: Vec<u64> = (0..100_000)
            .map(|i| key_handle(&format!("key_{i}")))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let _ = lim.admit(*k, &l, None, 1, T0 + i as i64 / 100);
        }
        let (mut i, mut t) = (0usize, T0 + 1000);
        c.bench_function(&format!("admit_3_limits_100k_keys_{shards}_shards"), |b| {
            b.iter(|| {
                i = (i + 7919) % keys.len();
                t += 1;
                consume(lim.admit(keys[i], &l, None, 1, t))
            })
        });
    }
}

criterion_group!(benches, admit);
criterion_main!(benches);
