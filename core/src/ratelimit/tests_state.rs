//! The limiter's state outside admission: the state file, eviction, the incremental clock,
//! key handles, and inputs at the ends of every range.

use super::window::days_from_civil;
use super::*;

#[test]
fn persistence_round_trip_and_corruption() {
    let mut a = limiter(0, 2);
    let spec = [
        lim(1000, Minute),
        lim(5000, Hour),
        lim(9000, Day),
        lim(90_000, Month),
    ];
    let c = CreditSpec {
        total: 100,
        refill: Some(lim(100, Day)),
    };
    for i in 0..50u64 {
        let k = key_handle(&format!("key_{i}"));
        for j in 0..=i as i64 {
            let _ = a.admit(k, &spec, Some(&c), 2, T0 + j * 997);
        }
    }
    let now = T0 + 60_000;
    let mut file = Vec::new();
    a.encode_state(now, &mut file);
    let mut b = limiter(1, 2);
    let rep = b.restore_state(&file, now);
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(rep.records_read, 50);
    for i in 0..50u64 {
        let k = key_handle(&format!("key_{i}"));
        assert_eq!(
            a.usage(k, &spec, Some(&c), now),
            b.usage(k, &spec, Some(&c), now)
        );
    }
    // One flipped byte inside the first record: that record only is skipped.
    let mut bad = file.clone();
    bad[24 + 12] ^= 0x40;
    let rep = limiter(0, 1).restore_state(&bad, now);
    assert_eq!((rep.records_read, rep.records_skipped), (49, 1), "{rep}");
    // Truncated: what precedes the cut is read.
    let rep = limiter(0, 1).restore_state(&file[..file.len() / 2], now);
    assert!(
        rep.records_read > 0 && rep.records_read < 50 && !rep.problems.is_empty(),
        "{rep}"
    );
    // Garbage of every length, bad version, empty: never a panic, never a refusal.
    let mut x = limiter(0, 1);
    for n in 0..200 {
        let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
        let _ = x.restore_state(&junk, now);
        let mut f = file.clone();
        f.truncate(24 + n);
        let _ = x.restore_state(&f, now);
    }
    let mut v2 = file.clone();
    v2[4] = 2;
    let crc = crc32fast::hash(&v2[..20]).to_le_bytes();
    v2[20..24].copy_from_slice(&crc);
    assert!(x.restore_state(&v2, now).problems[0].contains("version 2"));
    // A file from yesterday: the day counters are gone, the month's stay.
    let mut y = limiter(0, 1);
    y.restore_state(&file, now + 86_400_000);
    let u = y.usage(key_handle("key_49"), &spec, None, now + 86_400_000);
    assert_eq!((u.limits[2].used, u.limits[3].used), (0, 50));
}

#[test]
fn eviction_forgets_idle_keys_only() {
    let mut sim = Sim::new(2, 10);
    let short = key_handle("key_short");
    let long = key_handle("key_long");
    let _ = sim.shards[0].admit(short, &[lim(5, Second)], None, 1, T0);
    let _ = sim.shards[0].admit(long, &[lim(5, Second), lim(50, Hour)], None, 1, T0);
    for t in T0..T0 + 30 {
        sim.tick(t);
    }
    assert_eq!((sim.shards[0].len(), sim.shards[1].len()), (2, 2));
    for s in &mut sim.shards {
        s.evict_idle(T0 + 2_000);
        assert_eq!(s.len(), 1);
        s.evict_idle(T0 + 3_800_000);
        assert!(s.is_empty());
    }
}

/// Steps a xorshift64 generator: deterministic inputs for the randomized tests.
fn xorshift(x: &mut u64) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
}

#[test]
fn incremental_now_equals_a_fresh_one() {
    use super::entry::Now;
    // Steps of every size, backwards too, across bucket, hour, day and month edges.
    let feb_end = days_from_civil(2026, 3, 1) * 86_400_000 - 3;
    let mut now = Now::new(T0);
    let mut t = T0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..200_000 {
        xorshift(&mut x);
        let step = match i % 7 {
            0 => (x % 7) as i64 - 3,
            1 => (x % 120) as i64,
            2 => (x % 7_000) as i64 - 1_000,
            3 => (x % 400_000) as i64,
            4 => (x % (3 * 86_400_000)) as i64 - 86_400_000,
            _ => 1,
        };
        t = if i == 100_000 { feb_end } else { t + step };
        now.move_to(t);
        assert_eq!(now, Now::new(t), "at {t}");
    }
    for t in [
        i64::MIN,
        i64::MIN + 1,
        i64::MIN + 10,
        i64::MIN + 60,
        -1,
        0,
        i64::MAX - 60,
        i64::MAX - 10,
        i64::MAX,
        0,
    ] {
        now.move_to(t);
        assert_eq!(now, Now::new(t));
    }
}

#[test]
fn the_sync_slot_is_the_one_holding_now() {
    // Any sync interval; a clock stepping forward and back, before 1970 and at both ends of
    // i64: the slot is `now.div_euclid(sync)`, found by the multiply-shift divisor or not.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for sync in [1u64, 3, 7, 10, 16, 999, 60_000] {
        let mut l = Limiter::new(
            0,
            LimiterConfig {
                shards: 3,
                sync_interval_ms: sync,
            },
        );
        let s = sync as i64;
        let mut t = T0;
        let ends = [
            i64::MIN,
            i64::MIN + 1,
            i64::MIN + 2,
            -s - 1,
            -s,
            -1,
            0,
            1,
            s - 1,
            s,
            i64::MAX,
        ];
        for i in 0..4_000 {
            xorshift(&mut x);
            t = match i % 5 {
                0 => ends[(x % ends.len() as u64) as usize],
                1 => t.saturating_sub((x % 50) as i64),
                _ => t.saturating_add((x % 40) as i64),
            };
            let _ = l.admit(1, &[lim(5, Second)], None, 1, t);
            let at = format!("sync {sync} ms, now {t}");
            assert_eq!(l.tag, t.div_euclid(s), "{at}");
            assert_eq!(l.tag_start, l.tag.saturating_mul(s), "{at}");
            assert_eq!(l.tag_end, l.tag.saturating_add(1).saturating_mul(s), "{at}");
            assert!(
                l.tag_start <= t && (t < l.tag_end || l.tag_end == i64::MAX),
                "{at}"
            );
        }
    }
}

#[test]
fn own_recent_equals_a_scan_of_the_slots() {
    use super::entry::{Entry, OWN_SLOTS};
    // The shortcut for keys not admitted within the horizon must answer as the scan does,
    // whatever order the tags come in (a clock stepped back included).
    let scan = |e: &Entry, tag: i64| {
        e.own
            .iter()
            .filter(|s| (0..OWN_SLOTS as i64).contains(&(tag - s.tag)))
            .fold((0, 0), |(r, c), s| (r + u64::from(s.req), c + s.cred))
    };
    let mut e = Entry::default();
    let (mut x, mut tag, mut skipped) = (0x9e37_79b9_7f4a_7c15u64, 1_000i64, 0);
    for i in 0..20_000 {
        xorshift(&mut x);
        tag += match x % 16 {
            0 => -3,
            1 => 9,
            2..=5 => 1,
            6 => 4,
            _ => 0,
        };
        if x % 3 != 0 {
            e.record_own(tag, x % 5);
        }
        for q in tag - 6..tag + 8 {
            let want = scan(&e, q);
            assert_eq!(e.own_recent(q), want, "step {i}, tag {q}");
            skipped += usize::from(q - e.own_tag >= OWN_SLOTS as i64);
        }
    }
    // The shortcut was taken (its answer checked above), not only the scan.
    assert!(skipped > 20_000, "{skipped}");
}

#[test]
fn handles_are_stable() {
    assert_eq!(key_handle("key_abc"), key_handle("key_abc"));
    assert_ne!(key_handle("key_abc"), key_handle("key_abd"));
    // Pinned: persisted state is keyed by it, so it must never change.
    assert_eq!(key_handle("key_abc"), 0x6c4d_49a5_06df_95fb);
}

#[test]
fn extreme_inputs_do_not_panic() {
    let mut l = Limiter::new(
        0,
        LimiterConfig {
            shards: 0,
            sync_interval_ms: 0,
        },
    );
    let specs = [
        lim(0, Second),
        lim(u64::MAX, Minute),
        lim(1, Month),
        lim(3, Day),
    ];
    let c = CreditSpec {
        total: u64::MAX,
        refill: Some(lim(0, Hour)),
    };
    for t in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
        for cost in [0, 1, u64::MAX] {
            let a = l.admit(7, &specs, Some(&c), cost, t);
            let _ = l.admit(8, &specs[1..], None, cost, t);
            let mut out = Vec::new();
            write_headers(HeaderMode::Ietf, &a, &mut out);
            let _ = l.usage(7, &specs, Some(&c), t);
        }
        let mut d = Vec::new();
        l.drain_deltas(t, &mut d);
        let far = [Delta {
            key: 9,
            at_ms: t,
            requests: u32::MAX,
            credits: u64::MAX,
            mask: 255,
        }];
        l.apply_remote(1, &far, t);
        let mut f = Vec::new();
        l.encode_state(t, &mut f);
        let _ = limiter(0, 1).restore_state(&f, t);
        l.evict_idle(t);
    }
}
