//! Pinned on-disk formats: files written by an earlier keyway must still load and read back
//! exactly what was written. The fixtures in `tests/fixtures/` were made by this crate's code
//! (the `#[ignore]`d generators below) and are checked in; they are never rewritten by a
//! normal test run.
//!
//! - `keys-v2.snap`: a key snapshot, format version 2 (`keyway snapshot build`).
//! - `ratelimit-v1.state`: a rate-limit state file, format version 1 (`ratelimit.state`).
//!
//! Regenerating them:
//!
//! ```text
//! cargo test -p keyway-core --test pinned_formats -- --ignored regenerate
//! ```
//!
//! Only do that on purpose: if a fixture no longer loads (or reads back differently), the
//! on-disk format changed, and files that running gateways already wrote would break the
//! same way. A format change needs a version bump (`FORMAT_VERSION` in
//! keys/snapshot/schema.rs, `VERSION` in ratelimit/persist.rs) and an upgrade path for the
//! old files; then add fixtures for the new version beside the old ones rather than
//! overwriting them while the old version is still read.

use std::path::PathBuf;

use keyway_core::keys::format::compose_secret;
use keyway_core::keys::model::{Credits, GraceSecret, KeySpec, LimitSpec, PlanSpec, Window};
use keyway_core::keys::{authenticate, digest, AuthError, Snapshot};
use keyway_core::ratelimit::{key_handle, CreditSpec, Limiter, LimiterConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

// --- key snapshot, format v2 -------------------------------------------------------------

const SNAP_GENERATION: u64 = 7;
/// 2026-01-01T00:00:00Z.
const SNAP_CREATED_AT: i64 = 1_767_225_600;

/// The fixture keys' secrets. Test fixtures, not real secrets: they only open the fixture.
fn fixture_secret(n: usize) -> String {
    let alphabet = b"abcdefghijKLMNOPQRST0123456789";
    let random: Vec<u8> = (0..30).map(|i| alphabet[(i * 7 + n) % 30]).collect();
    compose_secret("kw_test", &random).unwrap()
}

/// The rotated-out secret of key 1, still valid during its grace.
fn fixture_old_secret() -> String {
    fixture_secret(9)
}

fn snapshot_plans() -> Vec<PlanSpec> {
    vec![
        PlanSpec {
            name: "free".into(),
            limits: vec![LimitSpec {
                count: 10,
                window: Window::Second,
            }],
            scopes: vec!["GET /v1/**".into()],
            ..PlanSpec::default()
        },
        PlanSpec {
            name: "pro".into(),
            limits: vec![
                LimitSpec {
                    count: 100,
                    window: Window::Second,
                },
                LimitSpec {
                    count: 100_000,
                    window: Window::Day,
                },
            ],
            scopes: vec!["* /v1/**".into(), "GET /v2/*".into()],
            max_body_bytes: Some(1 << 20),
            allow_ips: vec!["10.0.0.0/8".into()],
            upstream: Some("llm-eu".into()),
            priority: 7,
        },
    ]
}

fn snapshot_keys() -> Vec<KeySpec> {
    let key = |n: usize, plan: &str| KeySpec {
        id: format!("key_fixture{n:09}"),
        digest: digest(fixture_secret(n).as_bytes()),
        hint: format!("kw_test_{}", &fixture_secret(n)[8..12]),
        tenant: "acme".into(),
        name: format!("fixture {n}"),
        plan: plan.into(),
        enabled: true,
        created_at: SNAP_CREATED_AT,
        ..KeySpec::default()
    };
    let mut keys = vec![key(0, "free"), key(1, "pro"), key(2, "free")];
    keys[1] = KeySpec {
        limits: vec![LimitSpec {
            count: 5,
            window: Window::Minute,
        }],
        scopes: vec!["POST /v1/orders/**".into()],
        allow_ips: vec!["192.0.2.0/24".into()],
        max_body_bytes: Some(4096),
        credits: Some(Credits {
            total: 1000,
            refill: Some(Window::Month),
        }),
        metadata: vec![("team".into(), "billing".into())],
        not_before: Some(SNAP_CREATED_AT),
        expires_at: Some(SNAP_CREATED_AT + 365 * 86_400),
        grace: vec![GraceSecret {
            digest: digest(fixture_old_secret().as_bytes()),
            grace_until: SNAP_CREATED_AT + 86_400,
        }],
        ..keys[1].clone()
    };
    keys[2].enabled = false;
    keys
}

fn build_snapshot() -> Vec<u8> {
    keyway_core::keys::build(
        SNAP_GENERATION,
        SNAP_CREATED_AT,
        &snapshot_plans(),
        &snapshot_keys(),
    )
    .unwrap()
}

#[test]
fn a_v2_key_snapshot_still_loads_and_reads_back() {
    let snap = Snapshot::load(&fixture("keys-v2.snap")).expect("the v2 fixture loads");
    assert_eq!(snap.generation(), SNAP_GENERATION);
    assert_eq!(snap.created_at(), SNAP_CREATED_AT);
    assert_eq!(snap.key_count(), 3);
    assert_eq!(snap.plan_count(), 2);
    assert_eq!(snap.grace_count(), 1);

    let now = SNAP_CREATED_AT + 3600;
    // Key 0: the plan's scopes and limits.
    let a = authenticate(&snap, fixture_secret(0).as_bytes(), now).expect("key 0");
    assert_eq!(a.key.id(), "key_fixture000000000");
    assert_eq!(a.key.tenant(), "acme");
    assert_eq!(a.key.name(), "fixture 0");
    assert_eq!(a.key.plan().name(), "free");
    assert_eq!(a.key.plan().scopes().collect::<Vec<_>>(), ["GET /v1/**"]);
    assert_eq!(
        a.key.plan().limits().collect::<Vec<_>>(),
        [LimitSpec {
            count: 10,
            window: Window::Second
        }]
    );
    assert!(a.key.scopes().next().is_none());
    assert!(a.grace_until.is_none());

    // Key 1: every per-key field.
    let b = authenticate(&snap, fixture_secret(1).as_bytes(), now).expect("key 1");
    assert_eq!(b.key.id(), "key_fixture000000001");
    let pro = b.key.plan();
    assert_eq!(pro.name(), "pro");
    assert_eq!(pro.scopes().collect::<Vec<_>>(), ["* /v1/**", "GET /v2/*"]);
    assert_eq!(pro.allow_ips().collect::<Vec<_>>(), ["10.0.0.0/8"]);
    assert_eq!(pro.max_body_bytes(), Some(1 << 20));
    assert_eq!(pro.upstream(), Some("llm-eu"));
    assert_eq!(pro.priority(), 7);
    assert_eq!(pro.limits().count(), 2);
    assert_eq!(
        b.key.limits().collect::<Vec<_>>(),
        [LimitSpec {
            count: 5,
            window: Window::Minute
        }]
    );
    assert_eq!(b.key.scopes().collect::<Vec<_>>(), ["POST /v1/orders/**"]);
    assert_eq!(b.key.allow_ips().collect::<Vec<_>>(), ["192.0.2.0/24"]);
    assert_eq!(b.key.max_body_bytes(), Some(4096));
    assert_eq!(
        b.key.credits(),
        Some(Credits {
            total: 1000,
            refill: Some(Window::Month)
        })
    );
    assert_eq!(b.key.metadata().collect::<Vec<_>>(), [("team", "billing")]);
    assert_eq!(b.key.not_before(), Some(SNAP_CREATED_AT));
    assert_eq!(b.key.expires_at(), Some(SNAP_CREATED_AT + 365 * 86_400));

    // Key 1's rotated-out secret: accepted until its grace ends, then revoked.
    let old = authenticate(&snap, fixture_old_secret().as_bytes(), now).expect("grace");
    assert_eq!(old.key.id(), "key_fixture000000001");
    assert_eq!(old.grace_until, Some(SNAP_CREATED_AT + 86_400));
    assert_eq!(
        authenticate(
            &snap,
            fixture_old_secret().as_bytes(),
            SNAP_CREATED_AT + 86_400
        )
        .unwrap_err(),
        AuthError::Revoked
    );
    // Key 1 before its not_before: expired (not yet valid).
    assert_eq!(
        authenticate(&snap, fixture_secret(1).as_bytes(), SNAP_CREATED_AT - 1).unwrap_err(),
        AuthError::Expired
    );

    // Key 2 is disabled; an unknown well-formed secret is unknown.
    assert_eq!(
        authenticate(&snap, fixture_secret(2).as_bytes(), now).unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(
        authenticate(&snap, fixture_secret(5).as_bytes(), now).unwrap_err(),
        AuthError::Unknown
    );
}

#[test]
fn todays_snapshot_build_writes_exactly_the_v2_fixture() {
    // Not required for compatibility (reading old files is), but a difference here means the
    // writer changed: check whether the format did, and regenerate only with a version bump.
    let pinned = std::fs::read(fixture("keys-v2.snap")).unwrap();
    assert!(
        build_snapshot() == pinned,
        "`snapshot build` no longer writes the pinned v2 bytes; see this file's header"
    );
}

// --- rate-limit state, format v1 ---------------------------------------------------------

/// When the state was written: 2026-03-10T12:00:30.370Z.
const STATE_AT_MS: i64 = 1_773_144_030_370;

fn state_limits() -> [LimitSpec; 4] {
    [
        LimitSpec {
            count: 100,
            window: Window::Minute,
        },
        LimitSpec {
            count: 1000,
            window: Window::Hour,
        },
        LimitSpec {
            count: 10_000,
            window: Window::Day,
        },
        LimitSpec {
            count: 100_000,
            window: Window::Month,
        },
    ]
}

fn state_credits() -> CreditSpec {
    CreditSpec {
        total: 500,
        refill: Some(LimitSpec {
            count: 500,
            window: Window::Day,
        }),
    }
}

/// (key id, requests admitted, cost of each) in the fixture.
const STATE_KEYS: [(&str, u64, u64); 3] = [
    ("key_fixture000000000", 3, 1),
    ("key_fixture000000001", 7, 2),
    ("key_fixture000000002", 12, 5),
];

fn limiter() -> Limiter {
    Limiter::new(
        0,
        LimiterConfig {
            shards: 1,
            sync_interval_ms: 10,
        },
    )
}

fn build_state() -> Vec<u8> {
    let mut l = limiter();
    for (id, n, cost) in STATE_KEYS {
        for i in 0..n as i64 {
            let at = STATE_AT_MS - 20_000 + i * 100;
            let _ = l.admit(
                key_handle(id),
                &state_limits(),
                Some(&state_credits()),
                cost,
                at,
            );
        }
    }
    let mut out = Vec::new();
    l.encode_state(STATE_AT_MS, &mut out);
    out
}

#[test]
fn a_v1_ratelimit_state_file_still_restores_its_counters() {
    let bytes = std::fs::read(fixture("ratelimit-v1.state")).unwrap();
    let mut l = limiter();
    let rep = l.restore_state(&bytes, STATE_AT_MS);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(rep.records_read, STATE_KEYS.len());
    for (id, n, cost) in STATE_KEYS {
        let u = l.usage(
            key_handle(id),
            &state_limits(),
            Some(&state_credits()),
            STATE_AT_MS,
        );
        let used: Vec<u64> = u.limits.iter().map(|x| x.used).collect();
        assert_eq!(used, [n, n, n, n], "{id}: minute, hour, day, month");
        assert_eq!(u.credits_left, Some(500 - n * cost), "{id}: credits");
    }
    // A key the file does not hold has nothing counted.
    let u = l.usage(
        key_handle("key_elsewhere"),
        &state_limits(),
        None,
        STATE_AT_MS,
    );
    assert!(u.limits.iter().all(|x| x.used == 0));
    // Read a day later, the day's counters are gone and the month's remain.
    let mut later = limiter();
    later.restore_state(&bytes, STATE_AT_MS + 86_400_000);
    let u = later.usage(
        key_handle("key_fixture000000002"),
        &state_limits(),
        None,
        STATE_AT_MS + 86_400_000,
    );
    let used: Vec<u64> = u.limits.iter().map(|x| x.used).collect();
    assert_eq!(used, [0, 0, 0, 12]);
}

#[test]
fn todays_state_encoder_writes_exactly_the_v1_fixture() {
    let pinned = std::fs::read(fixture("ratelimit-v1.state")).unwrap();
    assert!(
        build_state() == pinned,
        "the rate-limit state encoder no longer writes the pinned v1 bytes; see this file's header"
    );
}

// --- the generators ----------------------------------------------------------------------

/// Rewrites both fixtures from today's code. Read this file's header first.
#[test]
#[ignore = "rewrites the pinned fixtures; run only for a deliberate format change"]
fn regenerate() {
    let dir = fixture("");
    std::fs::create_dir_all(&dir).unwrap();
    let snap = build_snapshot();
    assert_eq!(
        snap,
        build_snapshot(),
        "snapshot build is not deterministic"
    );
    std::fs::write(dir.join("keys-v2.snap"), snap).unwrap();
    let state = build_state();
    assert_eq!(state, build_state(), "state encoding is not deterministic");
    std::fs::write(dir.join("ratelimit-v1.state"), state).unwrap();
}
