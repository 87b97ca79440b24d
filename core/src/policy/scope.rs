//! Scopes: `METHOD PATH` patterns compiled once into literal runs (held as words) and
//! wildcards, matched per request with word compares only — no regex, no allocation.
//!
//! Grammar (the same as `store::validate::scope`): `METHOD` is an upper-case token or `*`;
//! `PATH` starts with `/`, its segments are literal, `*` (exactly one non-empty segment) or,
//! as the last segment only, `**` (the rest: nothing, `/`, or any number of segments). A
//! trailing slash is significant: `GET /v1/` matches `/v1/` only, not `/v1`.

use std::fmt;

use crate::http::is_tchar;

/// A compiled path pattern is a list of parts, then its end ([`Scope::rest`]). Each `*`
/// segment follows a literal ending in `/` (consecutive literal segments are one literal), so
/// a pattern is always literal, `*`, literal, `*`, ... and a part is a literal and whether a
/// `*` follows it. Matching walks the parts with plain branches, no per-token dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Part {
    lit: Lit,
    /// One non-empty segment (no `/`) follows the literal.
    star: bool,
}

/// Up to 16 bytes of a literal run of a pattern (segments with their `/`s), held as words so
/// that matching loads only the path. A longer run is split into several parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lit {
    /// 1 to 8 bytes: `w` is their `word`, `mask` covers their length.
    Short { w: u64, mask: u64, len: u32 },
    /// 9 to 16 bytes: the `word`s of the first 8 and of the last 8 (they overlap; together
    /// they are all of it).
    Mid { first: u64, last: u64, len: u32 },
}

impl Lit {
    /// `lit`: 1 to 16 bytes.
    fn new(lit: &[u8]) -> Lit {
        let len = lit.len() as u32;
        match (lit.first_chunk::<8>(), lit.last_chunk::<8>()) {
            (Some(a), Some(z)) if lit.len() > 8 => Lit::Mid {
                first: u64::from_le_bytes(*a),
                last: u64::from_le_bytes(*z),
                len,
            },
            _ => Lit::Short {
                w: word(lit),
                mask: low_bytes(lit.len()),
                len,
            },
        }
    }

    /// `b` without its first bytes if they are this literal: one or two word loads from `b`.
    #[inline]
    fn strip(self, b: &[u8]) -> Option<&[u8]> {
        match self {
            Lit::Short { w, mask, len } => {
                let (head, tail) = b.split_at_checked(len as usize)?;
                let got = match b.first_chunk::<8>() {
                    // 8 or more bytes left (the usual case): one load, masked to the literal
                    Some(c) => u64::from_le_bytes(*c) & mask,
                    None => word(head),
                };
                (got == w).then_some(tail)
            }
            Lit::Mid { first, last, len } => {
                let (head, tail) = b.split_at_checked(len as usize)?;
                let (a, z) = (head.first_chunk::<8>()?, head.last_chunk::<8>()?);
                (u64::from_le_bytes(*a) == first && u64::from_le_bytes(*z) == last).then_some(tail)
            }
        }
    }
}

/// Method `ANY` or `bytes[off..off + len]` (its first 8 bytes also packed in `method`);
/// path pattern `parts[part..part + nparts]`, then the end: `rest` for a final `**` (the path
/// may go on after a `/`), else the path must end. `head`/`head_mask`: the path's first
/// up-to-8 literal bytes, for a one-compare reject of most non-matching scopes.
#[derive(Clone, Copy, Debug)]
struct Scope {
    method: u64,
    head: u64,
    head_mask: u64,
    method_off: u32,
    method_len: u32,
    part: u32,
    nparts: u32,
    rest: bool,
}

/// The first up-to-8 bytes of `b`, zero-padded, as one word.
#[inline]
pub(crate) fn word(b: &[u8]) -> u64 {
    if let Some(first) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*first);
    }
    // shorter than 8: two overlapping loads (overlapping bytes are equal, so OR is exact)
    let n = b.len();
    if n >= 4 {
        let lo = b.first_chunk::<4>().map_or(0, |c| u32::from_le_bytes(*c));
        let hi = b[n - 4..]
            .first_chunk::<4>()
            .map_or(0, |c| u32::from_le_bytes(*c));
        return u64::from(lo) | u64::from(hi) << (8 * (n - 4));
    }
    // 1 to 3 bytes: first, middle, last (they coincide where n is small)
    match (b.first(), b.get(n / 2), b.last()) {
        (Some(&x), Some(&y), Some(&z)) => {
            u64::from(x) | u64::from(y) << (8 * (n / 2)) | u64::from(z) << (8 * (n - 1))
        }
        _ => 0,
    }
}

/// Where the first `/` is among the bytes packed in `x` (SWAR zero-byte test on `x ^ '/'`:
/// its lowest hit is exact, higher ones may be false). Zero padding never hits.
#[inline]
fn slash_in(x: u64) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let x = x ^ (ONES * u64::from(b'/'));
    let hit = x.wrapping_sub(ONES) & !x & (ONES << 7);
    (hit != 0).then_some((hit.trailing_zeros() / 8) as usize)
}

/// `b` from its first `/` on (or empty), if that skips a non-empty segment.
#[inline]
fn skip_segment(b: &[u8]) -> Option<&[u8]> {
    match segment_len(b) {
        0 => None,
        n => b.get(n..),
    }
}

/// Bytes before the first `/` (or all): 8 at a time, cheaper than `memchr`'s dispatch for
/// segment-sized input.
#[inline]
fn segment_len(b: &[u8]) -> usize {
    let (chunks, tail) = b.as_chunks::<8>();
    for (k, c) in chunks.iter().enumerate() {
        if let Some(i) = slash_in(u64::from_le_bytes(*c)) {
            return 8 * k + i;
        }
    }
    if tail.is_empty() {
        return b.len();
    }
    // The 1 to 7 bytes left: when at least 8 were scanned, one load of the last 8 bytes (the
    // ones overlapping the scan hold no `/`, so a hit is in the tail); else `word`.
    let (at, x) = match b.last_chunk::<8>() {
        Some(c) => (b.len() - 8, u64::from_le_bytes(*c)),
        None => (0, word(b)),
    };
    slash_in(x).map_or(b.len(), |i| at + i)
}

/// The low `n` bytes of a word set (`n` in 0..=8).
fn low_bytes(n: usize) -> u64 {
    // n = 0 would shift by 64: `checked_shr` makes that 0 instead of overflowing
    u64::MAX.checked_shr(8 * (8 - n.min(8)) as u32).unwrap_or(0)
}

const ANY: u32 = u32::MAX;

/// Sets of more scopes than this get the path-byte index (`ScopeSet::by_byte`).
const BY_BYTE_MIN: usize = 4;

/// Compiled scopes: built once (at snapshot load, per plan and per distinct key scope list),
/// matched per request without allocating. Empty means nothing is allowed.
#[derive(Clone, Debug, Default)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
    parts: Vec<Part>,
    bytes: Vec<u8>,
    /// The method index, with at most 64 scopes: a request tries the scopes of its own
    /// method and those with method `*`, and compares no method again. Per distinct method
    /// of up to 8 bytes: (packed name, length, bit set of its scopes).
    methods: Vec<(u64, usize, u64)>,
    /// The same for longer methods: (offset and length in `bytes`, bit set).
    long_methods: Vec<(u32, u32, u64)>,
    /// Scopes with method `*`.
    any: u64,
    /// A second index, on one byte of the path: `by_byte[x & 15]` is the set of scopes that
    /// may match a path whose byte at `pick` is `x` (0 past the path's end): those whose
    /// first literal has a byte with the same low 4 bits there, and those whose first literal
    /// ends before `pick` or is empty (they are in every entry). `pick` is chosen at compile
    /// time to split the scopes best, so that most scopes of the method that start with
    /// another path are dropped without comparing their head. Only for sets of more than
    /// `BY_BYTE_MIN` scopes: with fewer, comparing every head costs about as much, and sets of
    /// a key's own scopes (possibly one per key) stay small.
    by_byte: Option<Box<[u64; 16]>>,
    pick: u32,
}

/// A pattern that is not `METHOD PATH`: one line naming it and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeError {
    pub pattern: String,
    pub why: &'static str,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad scope {:?}: {} (write METHOD PATH, e.g. 'GET /v1/products/*' or '* /v1/orders/**')",
            self.pattern, self.why
        )
    }
}

impl std::error::Error for ScopeError {}

impl ScopeSet {
    /// An empty set: allows nothing.
    pub const fn empty() -> ScopeSet {
        ScopeSet {
            scopes: Vec::new(),
            parts: Vec::new(),
            bytes: Vec::new(),
            methods: Vec::new(),
            long_methods: Vec::new(),
            any: 0,
            by_byte: None,
            pick: 0,
        }
    }

    /// Compiles `patterns`; the first bad one is the error.
    pub fn compile<'a>(
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<ScopeSet, ScopeError> {
        let mut set = ScopeSet::empty();
        for p in patterns {
            set.add(p).map_err(|why| ScopeError {
                pattern: p.to_owned(),
                why,
            })?;
        }
        set.index();
        // A set lives as long as its snapshot, possibly one per key: no spare capacity.
        set.scopes.shrink_to_fit();
        set.parts.shrink_to_fit();
        set.bytes.shrink_to_fit();
        set.methods.shrink_to_fit();
        set.long_methods.shrink_to_fit();
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// True when some scope allows `method` on `path` (no query; dot-segments already refused).
    /// A path not starting with `/` (e.g. `*`) matches nothing.
    #[inline]
    pub fn allows(&self, method: &[u8], path: &[u8]) -> bool {
        if path.first() != Some(&b'/') {
            return false;
        }
        if self.scopes.len() > 64 {
            return self.allows_unindexed(method, path);
        }
        let p = word(path);
        let mut bits = self.any | self.method_bits(method);
        if let Some(by_byte) = &self.by_byte {
            bits &= by_byte[(p >> (8 * self.pick)) as usize & 15];
        }
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(s) = self.scopes.get(i) {
                if p & s.head_mask == s.head && self.path_matches(s, path) {
                    return true;
                }
            }
        }
        false
    }

    /// The scopes whose method is exactly `method` (not `*`), from the method index.
    #[inline]
    fn method_bits(&self, method: &[u8]) -> u64 {
        if method.len() > 8 {
            return self.long_method_bits(method);
        }
        let m = word(method);
        self.methods
            .iter()
            .find(|&&(w, n, _)| w == m && n == method.len())
            .map_or(0, |e| e.2)
    }

    fn long_method_bits(&self, method: &[u8]) -> u64 {
        self.long_methods
            .iter()
            .find(|&&(off, len, _)| self.slice(off, len) == method)
            .map_or(0, |e| e.2)
    }

    /// [`ScopeSet::allows`] for sets over 64 scopes (no method index): every scope is tried.
    /// Kept apart so that the indexed loop above stays small enough to inline.
    fn allows_unindexed(&self, method: &[u8], path: &[u8]) -> bool {
        let (m, p) = (word(method), word(path));
        self.scopes.iter().any(|s| {
            p & s.head_mask == s.head
                && (s.method_len == ANY
                    || (s.method_len as usize == method.len()
                        && s.method == m
                        && (method.len() <= 8 || self.slice(s.method_off, s.method_len) == method)))
                && self.path_matches(s, path)
        })
    }

    /// Builds the method and path-byte indexes (left empty beyond 64 scopes: then all are
    /// tried).
    fn index(&mut self) {
        if self.scopes.len() > 64 {
            return;
        }
        if self.scopes.len() > BY_BYTE_MIN {
            self.index_path_byte();
        }
        for (i, s) in self.scopes.iter().enumerate() {
            let bit = 1u64 << i;
            if s.method_len == ANY {
                self.any |= bit;
            } else if s.method_len > 8 {
                let name = self.slice(s.method_off, s.method_len);
                match self
                    .long_methods
                    .iter()
                    .position(|&(off, len, _)| self.slice(off, len) == name)
                {
                    Some(at) => self.long_methods[at].2 |= bit,
                    None => self.long_methods.push((s.method_off, s.method_len, bit)),
                }
            } else {
                let n = s.method_len as usize;
                match self
                    .methods
                    .iter_mut()
                    .find(|e| e.0 == s.method && e.1 == n)
                {
                    Some(e) => e.2 |= bit,
                    None => self.methods.push((s.method, n, bit)),
                }
            }
        }
    }

    /// Builds `by_byte`. `pick` is the byte of the path's first word that leaves the fewest
    /// candidates for a request to one of the scopes' own paths: a scope with a literal byte
    /// there meets its entry; one without (its path may have any byte there) meets the
    /// average entry. Byte 0 is the leading `/` of every literal: never a split. No table if
    /// no byte drops any candidate.
    fn index_path_byte(&mut self) {
        let byte_at = |s: &Scope, k: usize| {
            ((s.head_mask >> (8 * k)) & 0xff != 0).then_some((s.head >> (8 * k)) as usize & 15)
        };
        let table = |k: usize| {
            let mut t = [0u64; 16];
            for (i, s) in self.scopes.iter().enumerate() {
                match byte_at(s, k) {
                    Some(x) => t[x] |= 1 << i,
                    None => t.iter_mut().for_each(|e| *e |= 1 << i),
                }
            }
            t
        };
        // 16 times the expected number of candidates, summed over the scopes
        let cost = |k: usize, t: &[u64; 16]| {
            let all: u32 = t.iter().map(|e| e.count_ones()).sum();
            let each = |s| byte_at(s, k).map_or(all, |x| 16 * t[x].count_ones());
            self.scopes.iter().map(each).sum::<u32>()
        };
        let n = self.scopes.len() as u32;
        let best = (1..8)
            .map(|k| (k, table(k)))
            .min_by_key(|(k, t)| cost(*k, t));
        if let Some((pick, t)) = best.filter(|(k, t)| cost(*k, t) < 16 * n * n) {
            self.by_byte = Some(Box::new(t));
            self.pick = pick as u32;
        }
    }

    fn slice(&self, off: u32, len: u32) -> &[u8] {
        let off = off as usize;
        self.bytes
            .get(off..off.saturating_add(len as usize))
            .unwrap_or(&[])
    }

    // Always inlined: it is the body of the candidate loop in `allows`, and as a call it
    // costs a register save/restore and argument set-up as large as a short match.
    #[inline(always)]
    fn path_matches(&self, s: &Scope, path: &[u8]) -> bool {
        let start = s.part as usize;
        let Some(parts) = self
            .parts
            .get(start..start.saturating_add(s.nparts as usize))
        else {
            return false;
        };
        let mut rest = path;
        for part in parts {
            match part.lit.strip(rest) {
                Some(tail) => rest = tail,
                None => return false,
            }
            if part.star {
                match skip_segment(rest) {
                    Some(tail) => rest = tail,
                    None => return false,
                }
            }
        }
        if s.rest {
            rest.first().is_none_or(|&b| b == b'/')
        } else {
            rest.is_empty()
        }
    }

    fn add(&mut self, pattern: &str) -> Result<(), &'static str> {
        let (method, path) = pattern.split_once(' ').ok_or("no space")?;
        let (method_off, method_len) = if method == "*" {
            (0, ANY)
        } else {
            if method.is_empty() || !method.bytes().all(is_tchar) {
                return Err("the method is not a token");
            }
            if method.bytes().any(|b| b.is_ascii_lowercase()) {
                return Err("methods are case-sensitive: write it in upper case");
            }
            self.push_bytes(method.as_bytes())?
        };
        let body = path
            .strip_prefix('/')
            .ok_or("the path must start with '/'")?;
        let part = u32::try_from(self.parts.len()).map_err(|_| "too many scopes")?;
        let mut lit: Vec<u8> = Vec::with_capacity(path.len());
        let mut segments = body.split('/').peekable();
        let mut rest = false;
        while let Some(seg) = segments.next() {
            let last = segments.peek().is_none();
            match seg {
                "**" if last => {
                    rest = true;
                    break;
                }
                "**" => return Err("'**' may only be the last segment"),
                "*" => {
                    lit.push(b'/');
                    self.push_parts(&lit, true);
                    lit.clear();
                }
                "" if !last => return Err("empty path segment"),
                s if s.contains('*') => return Err("'*' must be a whole segment"),
                s if !s
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') =>
                {
                    return Err("the path has a space, '?', '#' or a non-ASCII character")
                }
                s => {
                    lit.push(b'/');
                    lit.extend_from_slice(s.as_bytes());
                }
            }
        }
        self.push_parts(&lit, false);
        let nparts = u32::try_from(self.parts.len()).map_err(|_| "too many scopes")? - part;
        let (head, head_mask) = match self.parts.get(part as usize).map(|p| p.lit) {
            Some(Lit::Short { w, mask, .. }) => (w, mask),
            Some(Lit::Mid { first, .. }) => (first, u64::MAX),
            None => (0, 0),
        };
        self.scopes.push(Scope {
            method: word(method.as_bytes()),
            head,
            head_mask,
            method_off,
            method_len,
            part,
            nparts,
            rest,
        });
        Ok(())
    }

    fn push_bytes(&mut self, b: &[u8]) -> Result<(u32, u32), &'static str> {
        let off = u32::try_from(self.bytes.len()).map_err(|_| "too many scopes")?;
        let len = u32::try_from(b.len()).map_err(|_| "pattern too long")?;
        self.bytes.extend_from_slice(b);
        Ok((off, len))
    }

    /// Appends the literal run `lit` (if any) as parts of up to 16 bytes, the last one
    /// followed by a `*` if `star`.
    fn push_parts(&mut self, lit: &[u8], star: bool) {
        let mut chunks = lit.chunks(16).peekable();
        while let Some(chunk) = chunks.next() {
            let star = star && chunks.peek().is_none();
            self.parts.push(Part {
                lit: Lit::new(chunk),
                star,
            });
        }
    }
}

/// Malformed scopes, one per rule of the grammar: the compiler's tests and the CLI's
/// validation tests refuse the same list.
#[doc(hidden)]
pub const BAD_SCOPE_EXAMPLES: [&str; 11] = [
    "GET",
    "GET v1",
    "get /v1",
    "G(T /v1",
    "GET /v1/**/x",
    "GET /v1/a*",
    "GET /v1//x",
    "GET /v1 x",
    "GET /v1?x",
    " /v1",
    "",
];

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
