//! Opening a snapshot: map the file (or copy bytes into aligned memory), then every check
//! once — header, length, CRC-32 of the payload, rkyv bytecheck, and one linear pass over all
//! cross references and the index order. A `Snapshot` that exists has passed all of them.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use memmap2::{Advice, Mmap, MmapMut, MmapOptions};
use rkyv::util::AlignedVec;

use super::schema::{
    home, refill_from_flags, window_from_code, ArchivedSnapshotData, ArchivedSpan, ArchivedStrRef,
    Header, EMPTY, FORMAT_VERSION, GRACE_BIT, HEADER_LEN, INLINE_ID, KEY_FLAGS, KEY_HAS_CREDITS,
    KEY_HAS_MAX_BODY, KEY_ID_IN_ARENA, KEY_ID_LEN_MASK, KEY_ID_LEN_SHIFT, KEY_LEGACY,
    KEY_REFILL_MASK, MAGIC, NO_EXTRAS, PLAN_FLAGS, PLAN_HAS_UPSTREAM,
};
use super::{Origin, SnapshotError};

/// Copies at least this large go to an anonymous mapping advised for huge pages (fewer TLB
/// misses on random lookups); smaller ones to the heap.
const HUGE_COPY: usize = 4 << 20;

enum Bytes {
    Map(Mmap),
    Heap(AlignedVec<64>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Heap(v) => v.as_slice(),
        }
    }
}

/// A validated snapshot, owning its bytes (a read-only file mapping or an aligned buffer).
/// `Send + Sync`: share it between shards behind an `Arc`.
pub struct Snapshot {
    bytes: Bytes,
    pub(super) header: Header,
}

impl Snapshot {
    /// Maps `path` read-only and validates it once (see the module docs); reads are then
    /// zero-copy from the page cache. The file must only ever be replaced by rename (as
    /// [`super::write_atomic`] and `mv` do): rewriting a mapped file in place (`cp` over it,
    /// truncation) changes or faults what is being served. [`Snapshot::load_private`] is
    /// immune to that, at about three times the load time.
    pub fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
        let (file, len, at) = open_file(path)?;
        // SAFETY: a read-only mapping owned by this Snapshot. Snapshot files are replaced by
        // rename, which leaves this inode untouched; in-place writes are unsupported (above).
        let map = unsafe { MmapOptions::new().len(len).populate().map(&file) };
        let map = map.map_err(|source| io_error(path, source))?;
        let header = check_header(&map, &at)?;
        open(Bytes::Map(map), header, at)
    }

    /// Like [`Snapshot::load`], but reads the file into a private anonymous mapping (huge
    /// pages where the kernel grants them), so nothing done to the file afterwards can affect
    /// the loaded table. Costs a copy: 1.3-1.8 s instead of 0.4-0.5 s at 10 M keys, and the
    /// memory is anonymous instead of shared page cache.
    pub fn load_private(path: &Path) -> Result<Snapshot, SnapshotError> {
        let (mut file, len, at) = open_file(path)?;
        let io = |source| io_error(path, source);
        let mut map = MmapMut::map_anon(len).map_err(io)?;
        let _ = map.advise(Advice::HugePage); // a hint; without it we just get 4 KiB pages
        file.read_exact(&mut map).map_err(io)?;
        let map = map.make_read_only().map_err(io)?;
        let header = check_header(&map, &at)?;
        open(Bytes::Map(map), header, at)
    }

    /// Copies `bytes` into aligned memory and validates them like [`Snapshot::load`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let at = Origin::memory();
        let header = check_header(bytes, &at)?;
        let owned = if bytes.len() >= HUGE_COPY {
            match huge_copy(bytes) {
                Ok(map) => Bytes::Map(map),
                Err(_) => Bytes::Heap(heap_copy(bytes)),
            }
        } else {
            Bytes::Heap(heap_copy(bytes))
        };
        open(owned, header, at)
    }

    /// The archive root.
    pub(super) fn data(&self) -> &ArchivedSnapshotData {
        let payload = &self.bytes.as_slice()[HEADER_LEN..];
        // SAFETY: `open` ran `rkyv::access` (full bytecheck) over exactly this slice before
        // this Snapshot existed, and the bytes are immutable for its whole life.
        unsafe { rkyv::access_unchecked::<ArchivedSnapshotData>(payload) }
    }

    /// Size of the whole file in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.as_slice().len()
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.header.generation)
            .field("created_at", &self.header.created_at)
            .field("keys", &self.header.key_count)
            .field("plans", &self.header.plan_count)
            .field("bytes", &self.byte_len())
            .finish()
    }
}

fn io_error(path: &Path, source: std::io::Error) -> SnapshotError {
    SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens a snapshot file: a non-empty regular file that fits in memory.
fn open_file(path: &Path) -> Result<(File, usize, Origin), SnapshotError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        let not_file = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
        return Err(io_error(path, not_file));
    }
    let at = Origin::file(path);
    let Ok(len) = usize::try_from(meta.len()) else {
        return Err(SnapshotError::TooLarge {
            at,
            len: meta.len(),
        });
    };
    if len == 0 {
        return Err(SnapshotError::Empty { at });
    }
    Ok((file, len, at))
}

fn heap_copy(bytes: &[u8]) -> AlignedVec<64> {
    let mut v = AlignedVec::<64>::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}

fn huge_copy(bytes: &[u8]) -> std::io::Result<Mmap> {
    let mut map = MmapMut::map_anon(bytes.len())?;
    let _ = map.advise(Advice::HugePage); // a hint; without it we just get 4 KiB pages
    map.copy_from_slice(bytes);
    map.make_read_only()
}

/// Header fields, length and payload checksum, in the order that gives the most useful
/// reason: a file that is not ours says so before it says it is corrupt.
fn check_header(bytes: &[u8], at: &Origin) -> Result<Header, SnapshotError> {
    let at = || at.clone();
    if bytes.is_empty() {
        return Err(SnapshotError::Empty { at: at() });
    }
    let Some(first) = bytes.first_chunk::<HEADER_LEN>() else {
        if bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::BadMagic { at: at() });
        }
        return Err(SnapshotError::TooShort {
            at: at(),
            len: bytes.len() as u64,
        });
    };
    if first[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::BadMagic { at: at() });
    }
    let h = Header::parse(first);
    if h.version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            at: at(),
            found: h.version,
            supported: FORMAT_VERSION,
        });
    }
    if h.header_crc != super::schema::header_crc(first) {
        return Err(SnapshotError::HeaderChecksumMismatch { at: at() });
    }
    if h.payload_offset as usize != HEADER_LEN {
        return Err(invalid(
            at(),
            format!(
                "payload offset {} (expected {HEADER_LEN})",
                h.payload_offset
            ),
        ));
    }
    let expected = (HEADER_LEN as u64).saturating_add(h.payload_len);
    if expected != bytes.len() as u64 {
        return Err(SnapshotError::LengthMismatch {
            at: at(),
            expected,
            found: bytes.len() as u64,
        });
    }
    if crc32fast::hash(&bytes[HEADER_LEN..]) != h.payload_crc {
        return Err(SnapshotError::ChecksumMismatch { at: at() });
    }
    Ok(h)
}

fn invalid(at: Origin, reason: String) -> SnapshotError {
    SnapshotError::Invalid { at, reason }
}

fn open(bytes: Bytes, header: Header, at: Origin) -> Result<Snapshot, SnapshotError> {
    let payload = &bytes.as_slice()[HEADER_LEN..];
    let data = rkyv::access::<ArchivedSnapshotData, rkyv::rancor::Error>(payload)
        .map_err(|e| invalid(at.clone(), format!("archive: {e}")))?;
    check_archive(data, &header).map_err(|reason| invalid(at, reason))?;
    Ok(Snapshot { bytes, header })
}

fn text_ok(arena: &str, r: &ArchivedStrRef) -> bool {
    let off = r.off.to_native() as usize;
    arena
        .get(off..off.saturating_add(r.len.to_native() as usize))
        .is_some()
}

/// An inline id is ASCII of the recorded length, zero-padded; an arena id is a valid `StrRef`.
fn id_ok(arena: &str, flags: u32, id: &[u8; INLINE_ID]) -> bool {
    let len = ((flags & KEY_ID_LEN_MASK) >> KEY_ID_LEN_SHIFT) as usize;
    if flags & KEY_ID_IN_ARENA != 0 {
        let (off, rest) = id.split_at(4);
        let r = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let off = r(off);
        len == 0 && arena.get(off..off.saturating_add(r(rest))).is_some()
    } else {
        len <= INLINE_ID && id[..len].is_ascii() && id[len..].iter().all(|&b| b == 0)
    }
}

/// Credits need an `Extras` (which holds the total); a refill needs credits and a known code;
/// a key without credits has the total 0.
fn credits_ok(flags: u32, has_credits: bool, total: Option<u64>) -> bool {
    let refill_ok = refill_from_flags(flags).is_some();
    if has_credits {
        refill_ok && total.is_some()
    } else {
        flags & KEY_REFILL_MASK == 0 && total.unwrap_or(0) == 0
    }
}

fn span_ok(span: &ArchivedSpan, len: usize) -> bool {
    (span.start.to_native() as usize).saturating_add(span.len.to_native() as usize) <= len
}

/// Marks `i` in a bitmap; false if it was already marked.
fn mark(bits: &mut [u64], i: usize) -> bool {
    let (word, bit) = (i / 64, 1u64 << (i % 64));
    let fresh = bits[word] & bit == 0;
    bits[word] |= bit;
    fresh
}

/// Every cross reference in range, every string on UTF-8 boundaries, and an index in which
/// each key and grace secret sits exactly once, sorted, reachable from its home slot.
fn check_archive(d: &ArchivedSnapshotData, h: &Header) -> Result<(), String> {
    let (keys, plans, grace) = (d.keys.len(), d.plans.len(), d.grace.len());
    if keys as u64 != h.key_count || plans as u64 != h.plan_count {
        return Err(format!(
            "header counts {} keys and {} plans, archive holds {keys} and {plans}",
            h.key_count, h.plan_count
        ));
    }
    if keys >= GRACE_BIT as usize || grace >= GRACE_BIT as usize {
        return Err("too many keys or grace secrets".into());
    }
    let arena = d.arena.as_str();
    let strs_len = d.strs.len();
    for (i, r) in d.strs.iter().enumerate() {
        if !text_ok(arena, r) {
            return Err(format!("string {i} out of range"));
        }
    }
    for (i, m) in d.meta.iter().enumerate() {
        if !text_ok(arena, &m.name) || !text_ok(arena, &m.value) {
            return Err(format!("metadata pair {i} out of range"));
        }
    }
    if let Some(i) = d
        .limits
        .iter()
        .position(|l| window_from_code(l.window).is_none())
    {
        return Err(format!("limit {i} has an unknown window"));
    }
    for (i, p) in d.plans.iter().enumerate() {
        let flags = p.flags.to_native();
        let ok = flags & !PLAN_FLAGS == 0
            && text_ok(arena, &p.name)
            && (flags & PLAN_HAS_UPSTREAM == 0 || text_ok(arena, &p.upstream))
            && span_ok(&p.limits, d.limits.len())
            && span_ok(&p.scopes, strs_len)
            && span_ok(&p.allow_ips, strs_len);
        if !ok {
            return Err(format!("plan {i} is inconsistent"));
        }
    }
    for (i, e) in d.extras.iter().enumerate() {
        let ok = span_ok(&e.limits, d.limits.len())
            && span_ok(&e.scopes, strs_len)
            && span_ok(&e.allow_ips, strs_len)
            && span_ok(&e.metadata, d.meta.len());
        if !ok {
            return Err(format!("key lists {i} out of range"));
        }
    }
    let mut legacy = 0u64;
    for (i, k) in d.keys.iter().enumerate() {
        let flags = k.flags.to_native();
        let extras = k.extras.to_native();
        let own = d.extras.get(extras as usize); // None for NO_EXTRAS (or out of range)
        let has_credits = flags & KEY_HAS_CREDITS != 0;
        let ok = flags & !KEY_FLAGS == 0
            && (k.plan.to_native() as usize) < plans
            && (extras == NO_EXTRAS || own.is_some())
            && (flags & KEY_HAS_MAX_BODY == 0 || extras != NO_EXTRAS)
            && credits_ok(flags, has_credits, own.map(|e| e.credits.to_native()))
            && id_ok(arena, flags, &k.id)
            && text_ok(arena, &k.tenant)
            && text_ok(arena, &k.name);
        if !ok {
            return Err(format!("key record {i} is inconsistent"));
        }
        legacy += u64::from(flags & KEY_LEGACY != 0);
    }
    if legacy != d.legacy_keys.to_native() {
        return Err("legacy key count does not match the keys".into());
    }
    if let Some(i) = d
        .grace
        .iter()
        .position(|g| g.key.to_native() as usize >= keys)
    {
        return Err(format!("grace secret {i} refers to no key"));
    }
    check_index(d)
}

fn check_index(d: &ArchivedSnapshotData) -> Result<(), String> {
    let (keys, grace) = (d.keys.len(), d.grace.len());
    let m = d.home_slots.to_native();
    let slots = d.slots.as_slice();
    if m > slots.len() as u64 || (slots.len() as u64) > m.saturating_add((keys + grace) as u64) {
        return Err("index size does not match its entries".into());
    }
    let mut seen_keys = vec![0u64; keys.div_ceil(64)];
    let mut seen_grace = vec![0u64; grace.div_ceil(64)];
    let mut occupied = 0usize;
    let mut run_start = 0usize; // first slot after the last empty one
    let mut prev: Option<&[u8]> = None;
    for (i, s) in slots.iter().enumerate() {
        let entry = s.entry.to_native();
        if entry == EMPTY {
            run_start = i + 1;
            continue;
        }
        let at_home = home(&s.head, m) as usize;
        if at_home > i || at_home < run_start {
            return Err(format!(
                "index slot {i} is not reachable from its home slot"
            ));
        }
        if prev.is_some_and(|p| p >= &s.head[..]) {
            return Err(format!("index not sorted at slot {i}"));
        }
        prev = Some(&s.head[..]);
        let fresh = if entry & GRACE_BIT != 0 {
            let g = (entry & !GRACE_BIT) as usize;
            g < grace && mark(&mut seen_grace, g)
        } else {
            (entry as usize) < keys && mark(&mut seen_keys, entry as usize)
        };
        if !fresh {
            return Err(format!(
                "index slot {i} points to a missing or already indexed record"
            ));
        }
        occupied += 1;
    }
    if occupied != keys + grace {
        return Err("some keys are missing from the index".into());
    }
    Ok(())
}
