//! Compiles plans and keys into a snapshot file's bytes (header + archive, index included),
//! which [`crate::fsutil::write_atomic`] puts on disk. Refuses inconsistent input, naming keys
//! by id only.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::schema::{
    home, refill_code, window_code, Extras, GraceRecord, Header, KeyRecord, LimitRecord,
    MetaRecord, PlanRecord, Slot, SnapshotData, Span, StrRef, EMPTY, FORMAT_VERSION, GRACE_BIT,
    HEADER_LEN, HEAD_LEN, INLINE_ID, KEY_ENABLED, KEY_HAS_CREDITS, KEY_HAS_EXPIRES_AT,
    KEY_HAS_MAX_BODY, KEY_HAS_NOT_BEFORE, KEY_ID_IN_ARENA, KEY_ID_LEN_SHIFT, KEY_LEGACY,
    KEY_REFILL_SHIFT, NO_EXTRAS, PLAN_HAS_MAX_BODY, PLAN_HAS_UPSTREAM,
};
use super::SnapshotError;
use crate::keys::model::{KeySpec, LimitSpec, PlanSpec};

/// Index load factor, in percent: home slots = ceil(entries * 100 / LOAD_PERCENT).
const LOAD_PERCENT: u64 = 80;
/// Arena ceiling: rkyv's out-of-line string limit with its default 32-bit lengths.
const MAX_ARENA: usize = (1 << 30) - 1;

/// Build-time hasher (FxHash-style with a final mix). Ids and strings come from the
/// operator's store, not from clients, so HashDoS resistance buys nothing here, while SipHash
/// was the 10-million-key build's hot spot.
#[derive(Default)]
struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit reaches the low bits hashbrown indexes with.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type Fast = BuildHasherDefault<FastHasher>;

fn refuse<T>(why: String) -> Result<T, SnapshotError> {
    Err(SnapshotError::Build(why))
}

fn index_u32(n: usize, what: &str) -> Result<u32, SnapshotError> {
    match u32::try_from(n) {
        Ok(v) if v < GRACE_BIT => Ok(v),
        _ => refuse(format!("too many {what} for one snapshot ({n})")),
    }
}

/// Accumulates the archive's shared arrays; repeated strings (tenants, names, scopes, plan
/// names, CIDRs, metadata) are stored once.
struct Builder<'s> {
    data: SnapshotData,
    interned: HashMap<&'s str, StrRef, Fast>,
}

impl<'s> Builder<'s> {
    fn raw_text(&mut self, s: &str) -> Result<StrRef, SnapshotError> {
        let off = self.data.arena.len();
        if off + s.len() > MAX_ARENA {
            return refuse(format!(
                "more than {MAX_ARENA} bytes of ids, names and scopes; split the keys over several gateways"
            ));
        }
        self.data.arena.push_str(s);
        Ok(StrRef {
            off: off as u32,
            len: s.len() as u32,
        })
    }

    fn text(&mut self, s: &'s str) -> Result<StrRef, SnapshotError> {
        if let Some(r) = self.interned.get(s) {
            return Ok(*r);
        }
        let r = self.raw_text(s)?;
        self.interned.insert(s, r);
        Ok(r)
    }

    fn texts(&mut self, items: &'s [String]) -> Result<Span, SnapshotError> {
        let start = index_u32(self.data.strs.len(), "strings")?;
        for s in items {
            let r = self.text(s)?;
            self.data.strs.push(r);
        }
        Ok(Span {
            start,
            len: items.len() as u32,
        })
    }

    fn limits(&mut self, items: &[LimitSpec]) -> Result<Span, SnapshotError> {
        let start = index_u32(self.data.limits.len(), "limits")?;
        self.data.limits.extend(items.iter().map(|l| LimitRecord {
            count: l.count,
            window: window_code(l.window),
        }));
        Ok(Span {
            start,
            len: items.len() as u32,
        })
    }

    fn metadata(&mut self, items: &'s [(String, String)]) -> Result<Span, SnapshotError> {
        let start = index_u32(self.data.meta.len(), "metadata pairs")?;
        for (name, value) in items {
            let meta = MetaRecord {
                name: self.text(name)?,
                value: self.text(value)?,
            };
            self.data.meta.push(meta);
        }
        Ok(Span {
            start,
            len: items.len() as u32,
        })
    }

    fn plan(&mut self, p: &'s PlanSpec) -> Result<PlanRecord, SnapshotError> {
        let mut flags = 0;
        if p.max_body_bytes.is_some() {
            flags |= PLAN_HAS_MAX_BODY;
        }
        let upstream = match &p.upstream {
            Some(u) => {
                flags |= PLAN_HAS_UPSTREAM;
                self.text(u)?
            }
            None => StrRef::default(),
        };
        Ok(PlanRecord {
            name: self.text(&p.name)?,
            upstream,
            max_body_bytes: p.max_body_bytes.unwrap_or(0),
            priority: p.priority,
            flags,
            limits: self.limits(&p.limits)?,
            scopes: self.texts(&p.scopes)?,
            allow_ips: self.texts(&p.allow_ips)?,
        })
    }

    fn key(&mut self, k: &'s KeySpec, plan: u32) -> Result<KeyRecord, SnapshotError> {
        let mut flags = 0;
        for (on, bit) in [
            (k.enabled, KEY_ENABLED),
            (k.legacy, KEY_LEGACY),
            (k.not_before.is_some(), KEY_HAS_NOT_BEFORE),
            (k.expires_at.is_some(), KEY_HAS_EXPIRES_AT),
            (k.max_body_bytes.is_some(), KEY_HAS_MAX_BODY),
            (k.credits.is_some(), KEY_HAS_CREDITS),
        ] {
            if on {
                flags |= bit;
            }
        }
        if let Some(c) = &k.credits {
            let Some(code) = refill_code(c.refill) else {
                return refuse(format!(
                    "key {} has credits refilled per {}; credits refill each day or month",
                    k.id,
                    c.refill.map_or("?", |w| w.name())
                ));
            };
            flags |= code << KEY_REFILL_SHIFT;
        }
        let has_extras = !(k.limits.is_empty()
            && k.scopes.is_empty()
            && k.allow_ips.is_empty()
            && k.metadata.is_empty()
            && k.max_body_bytes.is_none()
            && k.credits.is_none());
        let extras = if has_extras {
            let e = Extras {
                limits: self.limits(&k.limits)?,
                scopes: self.texts(&k.scopes)?,
                allow_ips: self.texts(&k.allow_ips)?,
                metadata: self.metadata(&k.metadata)?,
                max_body_bytes: k.max_body_bytes.unwrap_or(0),
                credits: k.credits.map_or(0, |c| c.total),
            };
            let at = index_u32(self.data.extras.len(), "keys with own lists")?;
            self.data.extras.push(e);
            at
        } else {
            NO_EXTRAS
        };
        let mut id = [0u8; INLINE_ID];
        if k.id.len() <= INLINE_ID && k.id.is_ascii() {
            id[..k.id.len()].copy_from_slice(k.id.as_bytes());
            flags |= (k.id.len() as u32) << KEY_ID_LEN_SHIFT;
        } else {
            let r = self.raw_text(&k.id)?; // unique: not worth interning
            id[..4].copy_from_slice(&r.off.to_le_bytes());
            id[4..8].copy_from_slice(&r.len.to_le_bytes());
            flags |= KEY_ID_IN_ARENA;
        }
        Ok(KeyRecord {
            not_before: k.not_before.unwrap_or(0),
            expires_at: k.expires_at.unwrap_or(0),
            tenant: self.text(&k.tenant)?,
            name: self.text(&k.name)?,
            plan,
            extras,
            flags,
            id,
        })
    }
}

/// Compiles `plans` and `keys` into a complete snapshot file (header + archive). Refuses a
/// key whose plan is missing, duplicate plan names or key ids, and two secrets (own or grace)
/// with the same digest — naming key ids, never digests or secrets.
pub fn build(
    generation: u64,
    created_at: i64,
    plans: &[PlanSpec],
    keys: &[KeySpec],
) -> Result<Vec<u8>, SnapshotError> {
    let mut b = Builder {
        data: SnapshotData::default(),
        interned: HashMap::default(),
    };
    let mut plan_index: HashMap<&str, u32, Fast> = HashMap::default();
    for p in plans {
        let at = index_u32(b.data.plans.len(), "plans")?;
        if plan_index.insert(p.name.as_str(), at).is_some() {
            return refuse(format!("plan {:?} is defined twice; keep one", p.name));
        }
        let record = b.plan(p)?;
        b.data.plans.push(record);
    }

    index_u32(keys.len(), "keys")?;
    b.data.keys.reserve_exact(keys.len());
    let mut ids: HashSet<&str, Fast> =
        HashSet::with_capacity_and_hasher(keys.len(), Fast::default());
    let mut entries: Vec<([u8; HEAD_LEN], u32)> = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let Some(&plan) = plan_index.get(k.plan.as_str()) else {
            return refuse(format!(
                "key {} refers to plan {:?}, which is not defined; define the plan or move the key",
                k.id, k.plan
            ));
        };
        if !ids.insert(k.id.as_str()) {
            return refuse(format!("key id {} appears twice; ids must be unique", k.id));
        }
        let record = b.key(k, plan)?;
        b.data.keys.push(record);
        b.data.legacy_keys += u64::from(k.legacy);
        entries.push((head(&k.digest), i as u32));
        for g in &k.grace {
            let at = index_u32(b.data.grace.len(), "grace secrets")?;
            b.data.grace.push(GraceRecord {
                key: i as u32,
                reserved: 0,
                grace_until: g.grace_until,
            });
            entries.push((head(&g.digest), GRACE_BIT | at));
        }
    }
    drop(ids);
    index_u32(entries.len(), "secrets (keys + grace secrets)")?;
    b.data.slots = place(entries, &b.data, keys)?;
    b.data.home_slots = home_slots(b.data.keys.len() + b.data.grace.len());

    serialize(generation, created_at, &b.data)
}

fn head(digest: &[u8; 32]) -> [u8; HEAD_LEN] {
    let mut h = [0u8; HEAD_LEN];
    h.copy_from_slice(&digest[..HEAD_LEN]);
    h
}

fn home_slots(entries: usize) -> u64 {
    (entries as u64 * 100).div_ceil(LOAD_PERCENT)
}

/// Sorts the entries by digest and lays them out by ordered linear probing: each goes to
/// max(its home, the slot after the previous one). Refuses equal digests.
fn place(
    mut entries: Vec<([u8; HEAD_LEN], u32)>,
    data: &SnapshotData,
    keys: &[KeySpec],
) -> Result<Vec<Slot>, SnapshotError> {
    entries.sort_unstable_by_key(|e| e.0);
    let owner = |entry: u32| -> &str {
        let key = if entry & GRACE_BIT != 0 {
            data.grace[(entry & !GRACE_BIT) as usize].key
        } else {
            entry
        };
        &keys[key as usize].id
    };
    for pair in entries.windows(2) {
        if pair[0].0 == pair[1].0 {
            let (a, b) = (owner(pair[0].1), owner(pair[1].1));
            return refuse(if a == b {
                format!("key {a} has the same secret digest twice (a grace secret equal to another of its secrets); drop the duplicate")
            } else {
                format!("keys {a} and {b} have the same secret digest; rotate one of them")
            });
        }
    }
    let m = home_slots(entries.len());
    let mut slots: Vec<Slot> = Vec::with_capacity(m as usize + 64);
    let empty = Slot {
        head: [0; HEAD_LEN],
        entry: EMPTY,
    };
    for (h, entry) in entries {
        let at = home(&h, m).max(slots.len() as u64) as usize;
        slots.resize(at, empty);
        slots.push(Slot { head: h, entry });
    }
    if (slots.len() as u64) < m {
        slots.resize(m as usize, empty);
    }
    Ok(slots)
}

pub(super) fn serialize(
    generation: u64,
    created_at: i64,
    data: &SnapshotData,
) -> Result<Vec<u8>, SnapshotError> {
    let estimate = 1024
        + data.plans.len() * 64
        + data.keys.len() * 64
        + data.grace.len() * 16
        + data.slots.len() * 32
        + data.extras.len() * 48
        + data.limits.len() * 16
        + data.strs.len() * 8
        + data.meta.len() * 16
        + data.arena.len();
    let mut out = Vec::with_capacity(HEADER_LEN + estimate);
    // rkyv aligns by writer position; starting at 64 keeps every alignment (≤ 64) intact.
    out.resize(HEADER_LEN, 0);
    let mut out =
        rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(data, out).map_err(|e| {
            SnapshotError::Build(format!(
                "archiving failed ({e}); too many keys for one snapshot?"
            ))
        })?;
    seal(
        &mut out,
        generation,
        created_at,
        data.keys.len() as u64,
        data.plans.len() as u64,
    );
    Ok(out)
}

fn seal(bytes: &mut [u8], generation: u64, created_at: i64, key_count: u64, plan_count: u64) {
    let (head, payload) = bytes.split_at_mut(HEADER_LEN);
    let header = Header {
        version: FORMAT_VERSION,
        payload_offset: HEADER_LEN as u32,
        generation,
        created_at,
        key_count,
        plan_count,
        payload_len: payload.len() as u64,
        payload_crc: crc32fast::hash(payload),
        header_crc: 0,
    };
    head.copy_from_slice(&header.encode());
}

/// Rewrites a valid header (magic, version, length, checksums) over whatever follows byte 64,
/// keeping the generation, time and counts found there. For fuzzing and tests that need to
/// reach the archive checks past the checksums; a no-op on inputs shorter than a header.
#[doc(hidden)]
pub fn reseal(bytes: &mut [u8]) {
    let Some(first) = bytes.first_chunk::<HEADER_LEN>() else {
        return;
    };
    let h = Header::parse(first);
    seal(bytes, h.generation, h.created_at, h.key_count, h.plan_count);
}
