//! Snapshot files on disk: atomic writes, and the refusal of every kind of damaged or
//! inconsistent file, each with its error variant and a one-line message.

use super::*;
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
