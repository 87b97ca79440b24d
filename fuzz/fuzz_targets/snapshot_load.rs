//! Fuzzes the snapshot loader: arbitrary bytes must be refused with an error or load into a
//! snapshot whose every key, grace secret and plan can be read and looked up — never a panic.
//! Each input is tried as is, then with a freshly sealed header (valid magic, version, length
//! and checksums) so the fuzzer reaches the rkyv and cross-reference checks behind them.

#![no_main]

use keyway_core::keys::snapshot::reseal;
use keyway_core::keys::{authenticate, Snapshot};
use libfuzzer_sys::fuzz_target;

fn exercise(snap: &Snapshot) {
    let mut total = 0usize;
    for key in snap.keys().chain(snap.grace_secrets()) {
        total += key.id().len() + key.tenant().len() + key.name().len();
        total += key.scopes().map(str::len).sum::<usize>();
        total += key.allow_ips().map(str::len).sum::<usize>();
        total += key
            .metadata()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
        total += key.limits().count();
        total += usize::from(key.enabled()) + usize::from(key.legacy());
        let _ = (
            key.not_before(),
            key.expires_at(),
            key.grace_until(),
            key.max_body_bytes(),
        );
        let plan = key.plan();
        total += plan.name().len() + plan.scopes().count() + plan.limits().count();
    }
    for plan in snap.plans() {
        total += plan.name().len() + plan.allow_ips().count();
        let _ = (plan.upstream(), plan.max_body_bytes(), plan.priority());
    }
    for digest in [[0u8; 32], [0xff; 32], [0x80; 32]] {
        total += usize::from(snap.lookup(&digest).is_some());
    }
    let _ = authenticate(snap, b"kw_live_0000000000000000000000000000000000", 0);
    std::hint::black_box(total);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(snap) = Snapshot::from_bytes(data) {
        exercise(&snap);
    }
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    if let Ok(snap) = Snapshot::from_bytes(&sealed) {
        exercise(&snap);
    }
});
