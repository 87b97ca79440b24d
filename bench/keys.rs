//! Key-path benchmarks: format check + SHA-256 + snapshot lookup at 1 thousand, 1 million and
//! 10 million keys (hits in random order, misses, full `authenticate`), and load + validate
//! time per size. `KEYWAY_BENCH_SIZES=1000,1000000` picks sizes (default: all three).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use keyway::keys::{
    authenticate, build, check_format, compose_secret, digest, write_atomic, GraceSecret, KeySpec,
    PlanSpec, Snapshot,
};

const PREFIX: &str = "kw_live";
const KEY_LEN: usize = 7 + 1 + 36;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// splitmix64: deterministic, fast, good enough to spread keys uniformly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn secret(&mut self) -> String {
        let random: Vec<u8> = (0..30)
            .map(|_| ALPHABET[(self.next() % 62) as usize])
            .collect();
        compose_secret(PREFIX, &random).expect("valid prefix and alphabet")
    }
}

fn plans() -> Vec<PlanSpec> {
    ["free", "pro", "enterprise"]
        .iter()
        .enumerate()
        .map(|(i, name)| PlanSpec {
            name: (*name).into(),
            limits: vec![format!("{}/s", 10 << i).parse().expect("limit")],
            scopes: vec!["GET /v1/**".into()],
            ..PlanSpec::default()
        })
        .collect()
}

/// `n` keys like a real deployment's (20 keys per tenant, 5% with own scopes and metadata,
/// 1% rotated with a grace secret); returns the snapshot bytes and every secret, in a random
/// order, as fixed-width records (read sequentially by the benches: no extra cache miss).
fn fixture(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng(n as u64);
    let names = ["production", "staging", "ci", "batch", "mobile"];
    let plan_names = ["free", "pro", "enterprise"];
    let mut secrets = Vec::with_capacity(n * KEY_LEN);
    let keys: Vec<KeySpec> = (0..n)
        .map(|i| {
            let secret = rng.secret();
            secrets.extend_from_slice(secret.as_bytes());
            let mut k = KeySpec {
                id: format!("key_{i:016}"),
                digest: digest(secret.as_bytes()),
                tenant: format!("tenant-{}", i / 20),
                name: names[i % names.len()].into(),
                plan: plan_names[i % plan_names.len()].into(),
                enabled: true,
                ..KeySpec::default()
            };
            if i % 20 == 0 {
                k.scopes = vec!["POST /v1/orders/**".into()];
                k.metadata = vec![("team".into(), "billing".into())];
            }
            if i % 100 == 0 {
                let old = rng.secret();
                k.grace = vec![GraceSecret {
                    digest: digest(old.as_bytes()),
                    grace_until: i64::MAX,
                }];
            }
            k
        })
        .collect();
    let bytes = build(1, 0, &plans(), &keys).expect("build");
    drop(keys);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let mut queries = Vec::with_capacity(secrets.len());
    for &i in &order {
        let at = i as usize * KEY_LEN;
        queries.extend_from_slice(&secrets[at..at + KEY_LEN]);
    }
    (bytes, queries)
}

fn sizes() -> Vec<usize> {
    std::env::var("KEYWAY_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 1_000_000, 10_000_000])
}

fn label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Walks the query records round-robin.
struct Queries<'a> {
    all: &'a [u8],
    at: usize,
}

impl<'a> Queries<'a> {
    fn next(&mut self) -> &'a [u8] {
        let key = &self.all[self.at..self.at + KEY_LEN];
        self.at += KEY_LEN;
        if self.at == self.all.len() {
            self.at = 0;
        }
        key
    }
}

fn parts(c: &mut Criterion) {
    let mut rng = Rng(7);
    let key = rng.secret();
    let mut g = c.benchmark_group("keys/parts");
    g.bench_function("check_format", |b| {
        b.iter(|| check_format(black_box(key.as_bytes())))
    });
    g.bench_function("sha256", |b| b.iter(|| digest(black_box(key.as_bytes()))));
    g.bench_function("sha256_streaming", |b| {
        use sha2::Digest;
        b.iter(|| <[u8; 32]>::from(sha2::Sha256::digest(black_box(key.as_bytes()))))
    });
    g.finish();
}

fn per_size(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("keyway-bench-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for n in sizes() {
        let started = Instant::now();
        let (bytes, queries) = fixture(n);
        eprintln!(
            "{}: fixture + build in {:.1?}, {} bytes",
            label(n),
            started.elapsed(),
            bytes.len()
        );
        let snap = Snapshot::from_bytes(&bytes).expect("valid snapshot");
        let path: PathBuf = dir.join(format!("keys-{n}.snap"));
        write_atomic(&path, &bytes).expect("write snapshot");
        drop(bytes);
        let mut misses = Vec::with_capacity((1 << 16) * KEY_LEN);
        let mut rng = Rng(u64::MAX - n as u64);
        for _ in 0..1 << 16 {
            misses.extend_from_slice(rng.secret().as_bytes());
        }

        let mut g = c.benchmark_group("keys/check_digest_lookup");
        let mut q = Queries {
            all: &queries,
            at: 0,
        };
        g.bench_function(BenchmarkId::new("hit", label(n)), |b| {
            b.iter(|| {
                let key = q.next();
                check_format(key).expect("well-formed");
                black_box(snap.lookup(&digest(key)).is_some())
            })
        });
        let mut q = Queries {
            all: &misses,
            at: 0,
        };
        g.bench_function(BenchmarkId::new("miss", label(n)), |b| {
            b.iter(|| {
                let key = q.next();
                check_format(key).expect("well-formed");
                black_box(snap.lookup(&digest(key)).is_some())
            })
        });
        let mut q = Queries {
            all: &queries,
            at: 0,
        };
        g.bench_function(BenchmarkId::new("authenticate", label(n)), |b| {
            b.iter(|| black_box(authenticate(&snap, q.next(), 1_800_000_000).is_ok()))
        });
        g.finish();
        drop(snap);

        let mut g = c.benchmark_group("keys/load_validate");
        g.sample_size(10);
        g.bench_function(BenchmarkId::from_parameter(label(n)), |b| {
            b.iter(|| Snapshot::load(&path).expect("valid snapshot").key_count())
        });
        g.finish();
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir(&dir);
}

criterion_group!(benches, parts, per_size);
criterion_main!(benches);
