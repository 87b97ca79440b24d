//! Build -> load -> lookup round trips, build refusals, and the refusal of every kind of bad
//! file (each with its error variant).

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

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keyway-snapshot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn files_write_atomically_and_load() {
    let dir = temp_dir("files");
    let path = dir.join("keys.snap");
    write_atomic(&path, &fixture()).unwrap();
    write_atomic(&path, &fixture()).unwrap(); // replaces
    let snap = Snapshot::load(&path).unwrap();
    assert_eq!(
        snap.lookup(&digest(b"secret-7")).unwrap().id(),
        "key_0000000000000007"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );
    drop(snap); // a mapped file must not be rewritten in place while in use

    let private = Snapshot::load_private(&path).unwrap();
    std::fs::write(&path, b"overwritten in place").unwrap();
    let hit = private.lookup(&digest(b"secret-7")).unwrap();
    assert_eq!(hit.id(), "key_0000000000000007");
    let again = Snapshot::load_private(&path);
    assert!(matches!(again, Err(SnapshotError::BadMagic { .. })));

    match Snapshot::load(&dir.join("missing.snap")) {
        Err(e @ SnapshotError::Io { .. }) => assert!(e.to_string().contains("missing.snap")),
        other => panic!("{:?}", other.err()),
    }
    std::fs::write(dir.join("empty.snap"), b"").unwrap();
    assert!(matches!(
        Snapshot::load(&dir.join("empty.snap")),
        Err(SnapshotError::Empty { .. })
    ));
    let mut bad = fixture();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(dir.join("bad.snap"), &bad).unwrap();
    let err = Snapshot::load(&dir.join("bad.snap")).err().unwrap();
    assert!(matches!(err, SnapshotError::ChecksumMismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("bad.snap: checksum mismatch") && msg.contains("keyway snapshot build"),
        "{msg}"
    );
    assert!(write_atomic(&dir.join("no-such-dir/x.snap"), b"x").is_err());
    assert!(matches!(
        Snapshot::load(&dir),
        Err(SnapshotError::Io { .. })
    ));
    assert!(matches!(
        Snapshot::load_private(&dir),
        Err(SnapshotError::Io { .. })
    ));
    let empty = Snapshot::load_private(&dir.join("empty.snap"));
    assert!(matches!(empty, Err(SnapshotError::Empty { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_flipped_bit_is_refused() {
    let good = fixture();
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 1 << (at % 8);
        let err = Snapshot::from_bytes(&bad)
            .err()
            .unwrap_or_else(|| panic!("flip at {at} accepted"));
        let ok = match at {
            0..=7 => matches!(err, SnapshotError::BadMagic { .. }),
            8..=11 => matches!(err, SnapshotError::UnsupportedVersion { .. }),
            12..=63 => matches!(err, SnapshotError::HeaderChecksumMismatch { .. }),
            _ => matches!(err, SnapshotError::ChecksumMismatch { .. }),
        };
        assert!(ok, "flip at {at}: {err}");
    }
}

#[test]
fn bad_files_each_with_their_reason() {
    let good = fixture();
    let check = |bytes: &[u8]| Snapshot::from_bytes(bytes).err().unwrap();
    assert!(matches!(check(b""), SnapshotError::Empty { .. }));
    assert!(matches!(
        check(&good[..40]),
        SnapshotError::TooShort { len: 40, .. }
    ));
    assert!(matches!(
        check(&good[..good.len() - 1]),
        SnapshotError::LengthMismatch { found, expected, .. } if found + 1 == expected
    ));
    assert!(matches!(
        check(&[&good[..], b"x"].concat()),
        SnapshotError::LengthMismatch { .. }
    ));
    assert!(matches!(
        check(&good[..HEADER_LEN]),
        SnapshotError::LengthMismatch { .. }
    ));

    let mut magic = good.clone();
    magic[..8].copy_from_slice(b"PK\x03\x04zip!");
    assert!(matches!(check(&magic), SnapshotError::BadMagic { .. }));
    assert!(matches!(
        check(b"hello"),
        SnapshotError::TooShort { len: 5, .. }
    ));

    let mut v3 = good.clone();
    v3[8..12].copy_from_slice(&3u32.to_le_bytes()); // checked before the header CRC
    let err = check(&v3);
    assert!(
        matches!(
            err,
            SnapshotError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );

    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    assert!(matches!(check(&random), SnapshotError::BadMagic { .. }));
    // Random payload under a valid header: past the checksums, rkyv or our checks refuse it.
    let mut sealed = [&good[..HEADER_LEN], &random[..]].concat();
    reseal(&mut sealed);
    assert!(matches!(check(&sealed), SnapshotError::Invalid { .. }));
}

/// Archives that pass rkyv's bytecheck but break our cross-reference rules.
#[test]
fn inconsistent_archives_are_invalid() {
    fn base() -> SnapshotData {
        let mut d = SnapshotData {
            arena: "freekey_a".into(),
            ..SnapshotData::default()
        };
        d.plans.push(schema::PlanRecord {
            name: StrRef { off: 0, len: 4 },
            upstream: StrRef::default(),
            max_body_bytes: 0,
            priority: 0,
            flags: 0,
            limits: Span::default(),
            scopes: Span::default(),
            allow_ips: Span::default(),
        });
        let mut id = [0u8; schema::INLINE_ID];
        id[..5].copy_from_slice(b"key_a");
        d.keys.push(schema::KeyRecord {
            not_before: 0,
            expires_at: 0,
            tenant: StrRef::default(),
            name: StrRef { off: 4, len: 5 },
            plan: 0,
            extras: schema::NO_EXTRAS,
            flags: schema::KEY_ENABLED | 5 << schema::KEY_ID_LEN_SHIFT,
            id,
        });
        d.home_slots = 2;
        d.slots = vec![
            schema::Slot {
                head: [0; 28],
                entry: 0,
            },
            schema::Slot {
                head: [0; 28],
                entry: schema::EMPTY,
            },
        ];
        d
    }
    let load = |d: &SnapshotData| {
        let bytes = build::serialize(1, 0, d).unwrap();
        Snapshot::from_bytes(&bytes)
    };
    assert_eq!(load(&base()).unwrap().keys().next().unwrap().id(), "key_a");
    // The credit bits a valid archive may have.
    let mut ok = base();
    ok.extras.push(schema::Extras {
        credits: 5,
        ..schema::Extras::default()
    });
    ok.keys[0].extras = 0;
    ok.keys[0].flags |= schema::KEY_HAS_CREDITS | schema::REFILL_MONTH << schema::KEY_REFILL_SHIFT;
    let snap = load(&ok).unwrap();
    assert_eq!(
        snap.keys().next().unwrap().credits(),
        Some(Credits {
            total: 5,
            refill: Some(Window::Month)
        })
    );
    type Breakage = Box<dyn Fn(&mut SnapshotData)>;
    let breakages: Vec<(&str, Breakage)> = vec![
        ("plan index", Box::new(|d| d.keys[0].plan = 1)),
        ("string range", Box::new(|d| d.keys[0].name.len = 6)),
        (
            "utf-8 boundary",
            Box::new(|d| {
                d.arena = "free€ey_a".into(); // '€' is 3 bytes: offset 5 is inside it
                d.keys[0].name = StrRef { off: 5, len: 2 };
            }),
        ),
        (
            "inline id length",
            Box::new(|d| d.keys[0].flags = 21 << schema::KEY_ID_LEN_SHIFT),
        ),
        ("inline id padding", Box::new(|d| d.keys[0].id[19] = b'x')),
        ("inline id ascii", Box::new(|d| d.keys[0].id[0] = 0xc3)),
        (
            "arena id",
            Box::new(|d| {
                d.keys[0].flags = schema::KEY_ID_IN_ARENA;
                d.keys[0].id[..8].copy_from_slice(&[4, 0, 0, 0, 6, 0, 0, 0]);
            }),
        ),
        (
            "max body, no extras",
            Box::new(|d| d.keys[0].flags |= schema::KEY_HAS_MAX_BODY),
        ),
        ("key flags", Box::new(|d| d.keys[0].flags = 1 << 20)),
        (
            "credits, no extras",
            Box::new(|d| d.keys[0].flags |= schema::KEY_HAS_CREDITS),
        ),
        (
            "refill, no credits",
            Box::new(|d| d.keys[0].flags |= schema::REFILL_DAY << schema::KEY_REFILL_SHIFT),
        ),
        (
            "unknown refill",
            Box::new(|d| {
                d.extras.push(schema::Extras {
                    credits: 5,
                    ..schema::Extras::default()
                });
                d.keys[0].extras = 0;
                d.keys[0].flags |= schema::KEY_HAS_CREDITS | schema::KEY_REFILL_MASK;
            }),
        ),
        (
            "credit total without the flag",
            Box::new(|d| {
                d.extras.push(schema::Extras {
                    credits: 5,
                    ..schema::Extras::default()
                });
                d.keys[0].extras = 0;
            }),
        ),
        ("extras", Box::new(|d| d.keys[0].extras = 0)),
        (
            "plan span",
            Box::new(|d| d.plans[0].scopes = Span { start: 0, len: 1 }),
        ),
        (
            "window",
            Box::new(|d| {
                d.limits.push(schema::LimitRecord {
                    count: 1,
                    window: 9,
                });
            }),
        ),
        ("legacy count", Box::new(|d| d.legacy_keys = 1)),
        (
            "unindexed key",
            Box::new(|d| d.slots[0].entry = schema::EMPTY),
        ),
        ("index past home", Box::new(|d| d.slots.swap(0, 1))),
        ("index entry", Box::new(|d| d.slots[0].entry = 3)),
        (
            "grace key",
            Box::new(|d| {
                d.grace.push(schema::GraceRecord {
                    key: 5,
                    reserved: 0,
                    grace_until: 0,
                });
            }),
        ),
        ("home slots", Box::new(|d| d.home_slots = 9)),
    ];
    for (what, breakage) in breakages {
        let mut d = base();
        breakage(&mut d);
        match load(&d) {
            Err(SnapshotError::Invalid { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("{what}: {:?}", other.map(|s| s.key_count())),
        }
    }
}

#[test]
fn error_messages_are_one_line_with_advice() {
    let errors = [
        Snapshot::from_bytes(b"").err().unwrap(),
        Snapshot::from_bytes(&[0u8; 10]).err().unwrap(),
        Snapshot::from_bytes(&fixture()[..100]).err().unwrap(),
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(
            !msg.contains('\n') && msg.contains("keyway snapshot build"),
            "{msg}"
        );
        assert!(msg.starts_with("snapshot (in memory): "), "{msg}");
    }
}
