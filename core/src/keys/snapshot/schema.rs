//! The snapshot file's layout: a fixed 64-byte little-endian header, then one rkyv archive of
//! flat, fixed-size records plus a single string arena (see docs/snapshot-format.md).
//!
//! Every record is plain integers, so rkyv's bytecheck of 10 million of them costs nothing
//! per element; cross references (string offsets, plan and key indices, spans) are checked
//! by `load` in one linear pass and re-checked cheaply (`get`) by every accessor.

use rkyv::{Archive, Serialize};

use crate::keys::model::Window;

/// First 8 bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"KWSNAP\0\0";
/// The layout described here. Bump it for any change in the header or the archive.
/// Version 2 added credits (`KEY_HAS_CREDITS`, the refill bits, `Extras::credits`).
pub const FORMAT_VERSION: u32 = 2;
/// Header size; the archive starts here (a multiple of 64, so records stay line-aligned).
pub const HEADER_LEN: usize = 64;

/// Index slot value of an empty slot.
pub const EMPTY: u32 = u32::MAX;
/// Index slot value bit marking a grace secret (the rest indexes `grace`).
pub const GRACE_BIT: u32 = 1 << 31;
/// Key record `extras` value for a key without own limits, scopes, IPs, metadata, max body
/// or credits.
pub const NO_EXTRAS: u32 = u32::MAX;
/// Bytes of the SHA-256 digest kept in the index (224 bits; see `lookup`).
pub const HEAD_LEN: usize = 28;

pub const KEY_ENABLED: u32 = 1;
pub const KEY_LEGACY: u32 = 1 << 1;
pub const KEY_HAS_NOT_BEFORE: u32 = 1 << 2;
pub const KEY_HAS_EXPIRES_AT: u32 = 1 << 3;
/// The key has its own max body size (in its `Extras`).
pub const KEY_HAS_MAX_BODY: u32 = 1 << 4;
/// The id is in the arena (its `StrRef` in the first 8 bytes of `id`), not inline.
pub const KEY_ID_IN_ARENA: u32 = 1 << 5;
/// The key has credits (the total in its `Extras`, the refill in `KEY_REFILL_MASK`).
pub const KEY_HAS_CREDITS: u32 = 1 << 6;
/// Bits 8..13 of the flags: the length of an inline id.
pub const KEY_ID_LEN_SHIFT: u32 = 8;
pub const KEY_ID_LEN_MASK: u32 = 0x1f << KEY_ID_LEN_SHIFT;
/// Bits 13..15 of the flags: when the credits refill, `REFILL_*` (only with
/// `KEY_HAS_CREDITS`).
pub const KEY_REFILL_SHIFT: u32 = 13;
pub const KEY_REFILL_MASK: u32 = 0b11 << KEY_REFILL_SHIFT;
pub const REFILL_NONE: u32 = 0;
pub const REFILL_DAY: u32 = 1;
pub const REFILL_MONTH: u32 = 2;
pub const KEY_FLAGS: u32 = ((1 << 7) - 1) | KEY_ID_LEN_MASK | KEY_REFILL_MASK;
/// Ids up to this long (ASCII, as `key_` + 16 base62 is) live in the record itself, so the
/// id costs no second cache miss.
pub const INLINE_ID: usize = 20;

pub const PLAN_HAS_MAX_BODY: u32 = 1;
pub const PLAN_HAS_UPSTREAM: u32 = 1 << 1;
pub const PLAN_FLAGS: u32 = (1 << 2) - 1;

/// The fixed header, decoded. Offsets: magic 0..8, version 8..12, payload offset 12..16,
/// generation 16..24, created_at 24..32, key count 32..40, plan count 40..48, payload length
/// 48..56, payload CRC-32 56..60, header CRC-32 (of bytes 0..60) 60..64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub payload_offset: u32,
    pub generation: u64,
    pub created_at: i64,
    pub key_count: u64,
    pub plan_count: u64,
    pub payload_len: u64,
    pub payload_crc: u32,
    pub header_crc: u32,
}

fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Header {
    /// Reads the fields (no checks; `load` checks them in order).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            version: u32_at(b, 8),
            payload_offset: u32_at(b, 12),
            generation: u64_at(b, 16),
            created_at: u64_at(b, 24) as i64,
            key_count: u64_at(b, 32),
            plan_count: u64_at(b, 40),
            payload_len: u64_at(b, 48),
            payload_crc: u32_at(b, 56),
            header_crc: u32_at(b, 60),
        }
    }

    /// Writes the header, computing its own CRC (the `header_crc` field is ignored).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.payload_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.generation.to_le_bytes());
        b[24..32].copy_from_slice(&self.created_at.to_le_bytes());
        b[32..40].copy_from_slice(&self.key_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.plan_count.to_le_bytes());
        b[48..56].copy_from_slice(&self.payload_len.to_le_bytes());
        b[56..60].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = header_crc(&b);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// CRC-32 of the header's first 60 bytes.
pub fn header_crc(b: &[u8; HEADER_LEN]) -> u32 {
    crc32fast::hash(&b[..60])
}

/// Where the index expects a digest: its top 64 bits scaled to `home_slots`. Monotone in the
/// digest, so a table filled in digest order stays sorted (ordered linear probing).
pub fn home(head: &[u8], home_slots: u64) -> u64 {
    let mut top = [0u8; 8];
    if let Some(first) = head.get(..8) {
        top.copy_from_slice(first);
    }
    ((u128::from(u64::from_be_bytes(top)) * u128::from(home_slots)) >> 64) as u64
}

pub fn window_code(w: Window) -> u8 {
    match w {
        Window::Second => 0,
        Window::Minute => 1,
        Window::Hour => 2,
        Window::Day => 3,
        Window::Month => 4,
    }
}

/// A credit refill as the `KEY_REFILL_MASK` bits' value; `None` for a window credits cannot
/// refill by (`build` refuses those).
pub fn refill_code(refill: Option<Window>) -> Option<u32> {
    match refill {
        None => Some(REFILL_NONE),
        Some(Window::Day) => Some(REFILL_DAY),
        Some(Window::Month) => Some(REFILL_MONTH),
        Some(_) => None,
    }
}

/// The refill of a key's flags (`Some(None)`: no refill); `None` for the unused code 3.
pub fn refill_from_flags(flags: u32) -> Option<Option<Window>> {
    match (flags & KEY_REFILL_MASK) >> KEY_REFILL_SHIFT {
        REFILL_NONE => Some(None),
        REFILL_DAY => Some(Some(Window::Day)),
        REFILL_MONTH => Some(Some(Window::Month)),
        _ => None,
    }
}

pub fn window_from_code(code: u8) -> Option<Window> {
    Some(match code {
        0 => Window::Second,
        1 => Window::Minute,
        2 => Window::Hour,
        3 => Window::Day,
        4 => Window::Month,
        _ => return None,
    })
}

/// A string in the arena: byte offset and length.
#[derive(Archive, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrRef {
    pub off: u32,
    pub len: u32,
}

/// A run of records in one of the shared arrays (`limits`, `strs`, `meta`).
#[derive(Archive, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

/// One `count/window` limit; `window` is `window_code`.
#[derive(Archive, Serialize, Clone, Copy, Debug)]
pub struct LimitRecord {
    pub count: u64,
    pub window: u8,
}

#[derive(Archive, Serialize, Clone, Copy, Debug)]
pub struct PlanRecord {
    pub name: StrRef,
    pub upstream: StrRef,
    pub max_body_bytes: u64,
    pub priority: i32,
    pub flags: u32,
    pub limits: Span,
    pub scopes: Span,
    pub allow_ips: Span,
}

/// A key's own lists, body limit and credits; most keys have none and point nowhere
/// (`NO_EXTRAS`).
#[derive(Archive, Serialize, Clone, Copy, Debug, Default)]
pub struct Extras {
    pub limits: Span,
    pub scopes: Span,
    pub allow_ips: Span,
    pub metadata: Span,
    pub max_body_bytes: u64,
    /// The credit total with `KEY_HAS_CREDITS`; 0 otherwise.
    pub credits: u64,
}

#[derive(Archive, Serialize, Clone, Copy, Debug)]
pub struct MetaRecord {
    pub name: StrRef,
    pub value: StrRef,
}

/// One key: 64 bytes, 64-aligned, so reading it after a lookup touches one cache line.
/// Everything a request needs (validity, plan, tenant, id) is here or one hop away.
#[derive(Archive, Serialize, Clone, Copy, Debug)]
#[rkyv(attr(repr(align(64))))]
pub struct KeyRecord {
    pub not_before: i64,
    pub expires_at: i64,
    pub tenant: StrRef,
    pub name: StrRef,
    pub plan: u32,
    pub extras: u32,
    /// `KEY_*` bits; bits 8..13 hold an inline id's length.
    pub flags: u32,
    /// The id's ASCII bytes (zero-padded), or with `KEY_ID_IN_ARENA` its `StrRef` (LE).
    pub id: [u8; INLINE_ID],
}

/// A rotated-out secret of `key` that works until `grace_until`.
#[derive(Archive, Serialize, Clone, Copy, Debug)]
pub struct GraceRecord {
    pub key: u32,
    pub reserved: u32,
    pub grace_until: i64,
}

/// One index slot: the first 28 digest bytes and `EMPTY`, a key index, or `GRACE_BIT | i`.
/// 32 bytes, 32-aligned: two per cache line, never straddling one.
#[derive(Archive, Serialize, Clone, Copy, Debug)]
#[rkyv(attr(repr(align(32))))]
pub struct Slot {
    pub head: [u8; HEAD_LEN],
    pub entry: u32,
}

/// The archive's root.
#[derive(Archive, Serialize, Debug, Default)]
pub struct SnapshotData {
    /// Slots addressed by `home`; `slots` may run past it by the last run's overflow.
    pub home_slots: u64,
    /// Number of keys with `KEY_LEGACY`.
    pub legacy_keys: u64,
    pub plans: Vec<PlanRecord>,
    pub keys: Vec<KeyRecord>,
    pub grace: Vec<GraceRecord>,
    pub slots: Vec<Slot>,
    pub extras: Vec<Extras>,
    pub limits: Vec<LimitRecord>,
    pub strs: Vec<StrRef>,
    pub meta: Vec<MetaRecord>,
    pub arena: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes() {
        assert_eq!(std::mem::size_of::<ArchivedKeyRecord>(), 64);
        assert_eq!(std::mem::align_of::<ArchivedKeyRecord>(), 64);
        assert_eq!(std::mem::size_of::<ArchivedSlot>(), 32);
        assert_eq!(std::mem::align_of::<ArchivedSlot>(), 32);
        assert_eq!(std::mem::size_of::<ArchivedGraceRecord>(), 16);
        assert_eq!(std::mem::size_of::<ArchivedPlanRecord>(), 56);
        assert_eq!(std::mem::size_of::<ArchivedExtras>(), 48);
        assert_eq!(std::mem::size_of::<ArchivedLimitRecord>(), 16);
        assert_eq!(std::mem::size_of::<ArchivedMetaRecord>(), 16);
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            version: FORMAT_VERSION,
            payload_offset: HEADER_LEN as u32,
            generation: 7,
            created_at: -5,
            key_count: 3,
            plan_count: 2,
            payload_len: 1000,
            payload_crc: 0xdead_beef,
            header_crc: 0,
        };
        let b = h.encode();
        let back = Header::parse(&b);
        assert_eq!(back.header_crc, header_crc(&b));
        assert_eq!(
            Header {
                header_crc: 0,
                ..back
            },
            h
        );
        assert_eq!(b[..8], MAGIC);
    }

    #[test]
    fn home_is_monotone_and_in_range() {
        let m = 1000;
        let mut last = 0;
        for top in [0u8, 1, 17, 128, 200, 255] {
            let head = [top; HEAD_LEN];
            let h = home(&head, m);
            assert!(h >= last && h < m);
            last = h;
        }
        assert_eq!(home(&[0xff; HEAD_LEN], 0), 0);
    }

    #[test]
    fn windows_round_trip() {
        for w in [
            Window::Second,
            Window::Minute,
            Window::Hour,
            Window::Day,
            Window::Month,
        ] {
            assert_eq!(window_from_code(window_code(w)), Some(w));
        }
        assert_eq!(window_from_code(5), None);
    }

    #[test]
    fn refills_round_trip() {
        for w in [None, Some(Window::Day), Some(Window::Month)] {
            let code = refill_code(w).unwrap();
            let flags = KEY_HAS_CREDITS | code << KEY_REFILL_SHIFT;
            assert_eq!(flags & !KEY_FLAGS, 0);
            assert_eq!(refill_from_flags(flags), Some(w));
        }
        for w in [Window::Second, Window::Minute, Window::Hour] {
            assert_eq!(refill_code(Some(w)), None);
        }
        assert_eq!(refill_from_flags(KEY_REFILL_MASK), None);
        // The refill bits sit between the id length and the unused high bits.
        assert_eq!(KEY_REFILL_MASK & KEY_ID_LEN_MASK, 0);
        assert_eq!(KEY_REFILL_MASK & ((1 << 7) - 1), 0);
    }
}
