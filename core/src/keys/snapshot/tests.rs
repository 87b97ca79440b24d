//! Build -> load -> lookup round trips and build refusals; damaged files are in
//! `tests_files.rs`.

use std::path::PathBuf;

use super::schema::{self, SnapshotData, Span, StrRef, HEADER_LEN};
use super::*;
use crate::keys::format::digest;
use crate::keys::model::{Credits, GraceSecret, KeySpec, LimitSpec, PlanSpec, Window};

fn plans() -> Vec<PlanSpec> {
    vec![
        PlanSpec {
            name: "free".into(),
            scopes: vec!["GET /v1/**".into()],
            ..PlanSpec::default()
        },
        PlanSpec {
            name: "pro".into(),
            limits: vec!["20/s".parse().unwrap(), "100000/day".parse().unwrap()],
            scopes: vec!["* /v1/**".into(), "GET /v2/*".into()],
            max_body_bytes: Some(1 << 20),
            allow_ips: vec!["10.0.0.0/8".into()],
            upstream: Some("llm-eu".into()),
            priority: 7,
        },
    ]
}

fn spec(i: usize) -> KeySpec {
    KeySpec {
        id: format!("key_{i:016}"),
        digest: digest(format!("secret-{i}").as_bytes()),
        tenant: format!("tenant-{}", i % 3),
        name: "ci".into(),
        plan: if i.is_multiple_of(2) { "free" } else { "pro" }.into(),
        enabled: true,
        ..KeySpec::default()
    }
}

fn keys(n: usize) -> Vec<KeySpec> {
    let mut keys: Vec<KeySpec> = (0..n).map(spec).collect();
    keys[1] = KeySpec {
        limits: vec![LimitSpec {
            count: 5,
            window: Window::Minute,
        }],
        scopes: vec!["POST /v1/orders/**".into()],
        allow_ips: vec!["192.0.2.0/24".into(), "2001:db8::/32".into()],
        max_body_bytes: Some(4096),
        credits: Some(Credits {
            total: 100_000,
            refill: Some(Window::Day),
        }),
        metadata: vec![
            ("team".into(), "billing".into()),
            ("env".into(), "prod".into()),
        ],
        not_before: Some(100),
        expires_at: Some(200),
        grace: vec![
            GraceSecret {
                digest: digest(b"old-1"),
                grace_until: 50,
            },
            GraceSecret {
                digest: digest(b"old-2"),
                grace_until: 60,
            },
        ],
        name: "naïve ✓".into(),
        ..keys[1].clone()
    };
    keys[2].enabled = false;
    keys
}

fn fixture() -> Vec<u8> {
    build(42, 1_700_000_000, &plans(), &keys(50)).unwrap()
}

#[test]
fn build_load_lookup_round_trip() {
    let snap = Snapshot::from_bytes(&fixture()).unwrap();
    assert_eq!((snap.generation(), snap.created_at()), (42, 1_700_000_000));
    assert_eq!(
        (snap.key_count(), snap.plan_count(), snap.grace_count()),
        (50, 2, 2)
    );
    assert_eq!(snap.byte_len(), fixture().len());
    assert!(!snap.has_legacy_keys());
    for i in 0..50 {
        let k = snap
            .lookup(&digest(format!("secret-{i}").as_bytes()))
            .expect("hit");
        assert_eq!(k.id(), format!("key_{i:016}"));
        assert_eq!(k.tenant(), format!("tenant-{}", i % 3));
        assert_eq!(k.plan().name(), if i % 2 == 0 { "free" } else { "pro" });
        assert_eq!(k.enabled(), i != 2);
        assert_eq!(k.grace_until(), None);
    }
    for miss in [&b"secret-50"[..], b"old-3", b""] {
        assert!(snap.lookup(&digest(miss)).is_none());
    }
    assert!(snap.lookup(&[0; 32]).is_none());
    assert!(snap.lookup(&[0xff; 32]).is_none());
    assert_eq!(snap.keys().len(), 50);
    assert_eq!(snap.keys().nth(3).unwrap().id(), "key_0000000000000003");
}

#[test]
fn snapshots_are_shared_between_shards() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Snapshot>();
    let snap = Snapshot::from_bytes(&fixture()).unwrap();
    assert!(format!("{snap:?}").contains("generation: 42"));
}

#[test]
fn key_and_plan_fields() {
    let snap = Snapshot::from_bytes(&fixture()).unwrap();
    let k = snap.lookup(&digest(b"secret-1")).unwrap();
    assert_eq!(k.name(), "naïve ✓");
    assert_eq!(
        (k.not_before(), k.expires_at(), k.max_body_bytes()),
        (Some(100), Some(200), Some(4096))
    );
    assert_eq!(
        k.limits().collect::<Vec<_>>(),
        vec![LimitSpec {
            count: 5,
            window: Window::Minute
        }]
    );
    assert_eq!(k.scopes().collect::<Vec<_>>(), vec!["POST /v1/orders/**"]);
    assert_eq!(
        k.allow_ips().collect::<Vec<_>>(),
        vec!["192.0.2.0/24", "2001:db8::/32"]
    );
    assert_eq!(
        k.metadata().collect::<Vec<_>>(),
        vec![("team", "billing"), ("env", "prod")]
    );
    assert!(!k.legacy());
    assert_eq!(
        k.credits(),
        Some(Credits {
            total: 100_000,
            refill: Some(Window::Day)
        })
    );
    let p = k.plan();
    assert_eq!(
        p.limits().map(|l| l.to_string()).collect::<Vec<_>>(),
        ["20/s", "100000/day"]
    );
    assert_eq!(p.scopes().collect::<Vec<_>>(), ["* /v1/**", "GET /v2/*"]);
    assert_eq!(
        (p.max_body_bytes(), p.upstream(), p.priority()),
        (Some(1 << 20), Some("llm-eu"), 7)
    );
    assert_eq!(p.allow_ips().collect::<Vec<_>>(), ["10.0.0.0/8"]);

    let plain = snap.lookup(&digest(b"secret-4")).unwrap();
    assert_eq!(
        (
            plain.not_before(),
            plain.expires_at(),
            plain.max_body_bytes()
        ),
        (None, None, None)
    );
    assert_eq!(plain.credits(), None);
    assert_eq!(
        (
            plain.scopes().len(),
            plain.limits().len(),
            plain.metadata().len()
        ),
        (0, 0, 0)
    );
    let free = plain.plan();
    assert_eq!(
        (free.upstream(), free.max_body_bytes(), free.priority()),
        (None, None, 0)
    );
    assert_eq!(
        snap.plans().map(|p| p.name()).collect::<Vec<_>>(),
        ["free", "pro"]
    );
    assert_eq!(snap.plan("pro").unwrap().priority(), 7);
    assert!(snap.plan("gold").is_none());
}

#[test]
fn grace_secrets_point_to_their_key() {
    let snap = Snapshot::from_bytes(&fixture()).unwrap();
    for (secret, until) in [(&b"old-1"[..], 50), (b"old-2", 60)] {
        let k = snap.lookup(&digest(secret)).unwrap();
        assert_eq!(
            (k.id(), k.grace_until()),
            ("key_0000000000000001", Some(until))
        );
        assert_eq!(k.scopes().len(), 1);
    }
    let graces: Vec<_> = snap
        .grace_secrets()
        .map(|k| (k.id(), k.grace_until()))
        .collect();
    assert_eq!(
        graces,
        [
            ("key_0000000000000001", Some(50)),
            ("key_0000000000000001", Some(60))
        ]
    );
}

#[test]
fn empty_and_large_snapshots() {
    let snap = Snapshot::from_bytes(&build(1, 0, &[], &[]).unwrap()).unwrap();
    assert_eq!(snap.key_count(), 0);
    assert!(snap.lookup(&digest(b"x")).is_none());
    let many: Vec<KeySpec> = (0..20_000).map(spec).collect();
    let snap = Snapshot::from_bytes(&build(1, 0, &plans(), &many).unwrap()).unwrap();
    for i in (0..20_000).step_by(7) {
        assert_eq!(snap.lookup(&many[i].digest).unwrap().id(), many[i].id);
    }
    assert!(snap.lookup(&digest(b"nope")).is_none());
}

#[test]
fn long_and_non_ascii_ids_live_in_the_arena() {
    let mut ks = keys(3);
    ks[0].id = "legacy-import-0123456789-abcdef".into();
    ks[1].id = "clé_ünïcode".into();
    ks[2].id = String::new();
    let snap = Snapshot::from_bytes(&build(1, 0, &plans(), &ks).unwrap()).unwrap();
    let ids: Vec<&str> = snap.keys().map(|k| k.id()).collect();
    assert_eq!(ids, [ks[0].id.as_str(), ks[1].id.as_str(), ""]);
    assert_eq!(snap.lookup(&ks[1].digest).unwrap().id(), "clé_ünïcode");
}

#[test]
fn credits_round_trip_and_cost_nothing_without() {
    let mut ks = keys(6);
    let monthly = Credits {
        total: 1,
        refill: Some(Window::Month),
    };
    let once = Credits {
        total: u64::MAX,
        refill: None,
    };
    ks[3].credits = Some(monthly); // credits only: gets an extras record for them
    ks[5].credits = Some(once);
    ks[4].metadata = vec![("team".into(), "x".into())]; // extras without credits
    let bytes = build(1, 0, &plans(), &ks).unwrap();
    let snap = Snapshot::from_bytes(&bytes).unwrap();
    let got: Vec<Option<Credits>> = snap.keys().map(|k| k.credits()).collect();
    let want: Vec<Option<Credits>> = ks.iter().map(|k| k.credits).collect();
    assert_eq!(got, want);
    assert_eq!(snap.lookup(&ks[3].digest).unwrap().credits(), Some(monthly));
    assert_eq!(snap.lookup(&ks[3].digest).unwrap().scopes().len(), 0);
    assert_eq!(snap.lookup(&ks[4].digest).unwrap().credits(), None);
    // Grace secrets carry their key's credits.
    assert!(snap.grace_secrets().all(|k| k.credits() == ks[1].credits));

    // Keys without credits: no extras record, so the same bytes as before credits existed.
    let plain: Vec<KeySpec> = (0..6).map(spec).collect();
    let snap = Snapshot::from_bytes(&build(1, 0, &plans(), &plain).unwrap()).unwrap();
    assert!(snap.keys().all(|k| k.credits().is_none()));
    assert_eq!(snap.data().extras.len(), 0);
    let mut with = plain.clone();
    with[0].credits = Some(monthly);
    let snap = Snapshot::from_bytes(&build(1, 0, &plans(), &with).unwrap()).unwrap();
    assert_eq!(snap.data().extras.len(), 1);
}

#[test]
fn credits_refill_only_by_day_or_month() {
    let mut ks = keys(3);
    ks[2].credits = Some(Credits {
        total: 5,
        refill: Some(Window::Hour),
    });
    let e = refused(&plans(), &ks);
    assert!(
        e.contains("key_0000000000000002") && e.contains("day or month"),
        "{e}"
    );
}

#[test]
fn version_1_files_are_refused() {
    assert_eq!(FORMAT_VERSION, 2);
    let mut v1 = fixture();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    reseal_as(&mut v1, 1); // a well-formed version-1 header: only the version is wrong
    let err = Snapshot::from_bytes(&v1).err().unwrap();
    assert!(
        matches!(
            err,
            SnapshotError::UnsupportedVersion {
                found: 1,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("keyway snapshot build"), "{err}");
}

/// Rewrites the header CRC for `version` (as an older keyway would have written it).
fn reseal_as(bytes: &mut [u8], version: u32) {
    let mut h = *bytes.first_chunk::<HEADER_LEN>().unwrap();
    h[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = schema::header_crc(&h);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    bytes[..HEADER_LEN].copy_from_slice(&h);
}

#[test]
fn legacy_flag() {
    let mut ks = keys(3);
    ks[0].legacy = true;
    let snap = Snapshot::from_bytes(&build(1, 0, &plans(), &ks).unwrap()).unwrap();
    assert!(snap.has_legacy_keys());
    assert!(snap.keys().next().unwrap().legacy());
}

fn refused(plans: &[PlanSpec], keys: &[KeySpec]) -> String {
    match build(1, 0, plans, keys) {
        Err(SnapshotError::Build(why)) => why,
        other => panic!("expected a refusal, got {:?}", other.map(|b| b.len())),
    }
}

#[test]
fn build_refusals_name_ids_not_secrets() {
    let mut ks = keys(4);
    ks[3].plan = "gold".into();
    assert!(refused(&plans(), &ks).contains("key_0000000000000003 refers to plan \"gold\""));

    let mut ks = keys(4);
    ks[3].id = ks[0].id.clone();
    assert!(refused(&plans(), &ks).contains("key id key_0000000000000000 appears twice"));

    let mut ks = keys(4);
    ks[3].digest = ks[0].digest;
    let why = refused(&plans(), &ks);
    assert!(
        why.contains("key_0000000000000000") && why.contains("key_0000000000000003"),
        "{why}"
    );
    let hex: String = ks[0].digest[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!why.contains(&hex));

    let mut ks = keys(4);
    ks[3].grace = vec![GraceSecret {
        digest: ks[0].digest,
        grace_until: 1,
    }];
    assert!(refused(&plans(), &ks).contains("same secret digest"));

    let mut ks = keys(4);
    ks[3].grace = vec![GraceSecret {
        digest: ks[3].digest,
        grace_until: 1,
    }];
    assert!(
        refused(&plans(), &ks).contains("key_0000000000000003 has the same secret digest twice")
    );

    let mut ps = plans();
    ps.push(ps[0].clone());
    assert!(refused(&ps, &keys(4)).contains("plan \"free\" is defined twice"));
}

#[path = "tests_files.rs"]
mod files;
