//! Scopes: `METHOD PATH` patterns compiled once into a flat token list, matched per request
//! with byte compares and `memchr` only — no regex, no allocation.
//!
//! Grammar (the same as `store::validate::scope`): `METHOD` is an upper-case token or `*`;
//! `PATH` starts with `/`, its segments are literal, `*` (exactly one non-empty segment) or,
//! as the last segment only, `**` (the rest: nothing, `/`, or any number of segments). A
//! trailing slash is significant: `GET /v1/` matches `/v1/` only, not `/v1`.

use std::fmt;

/// One compiled step of a path pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    /// These bytes of `ScopeSet::bytes` must come next.
    Lit { off: u32, len: u32 },
    /// One non-empty segment (no `/`).
    Star,
    /// The rest of the path, which is empty or starts with `/`. Always last.
    Rest,
    /// The path must end here. Always last.
    End,
}

/// Method `ANY` or `bytes[off..off + len]` (its first 8 bytes also packed in `method`);
/// tokens `toks[tok..tok + ntok]`. `head`/`head_mask`: the path's first up-to-8 literal
/// bytes, for a one-compare reject of most non-matching scopes.
#[derive(Clone, Copy, Debug)]
struct Scope {
    method: u64,
    head: u64,
    head_mask: u64,
    method_off: u32,
    method_len: u32,
    tok: u32,
    ntok: u32,
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

/// Bytes before the first `/` (or all): 8 at a time (SWAR zero-byte test; its lowest hit is
/// exact), cheaper than `memchr`'s dispatch for segment-sized input.
#[inline]
fn segment_len(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut i = 0;
    while let Some(chunk) = b.get(i..).and_then(|r| r.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*chunk) ^ (ONES * u64::from(b'/'));
        let hit = x.wrapping_sub(ONES) & !x & (ONES << 7);
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let tail = b.get(i..).unwrap_or(&[]);
    i + tail.iter().position(|&x| x == b'/').unwrap_or(tail.len())
}

/// `a == b`, without a `bcmp` call up to 16 bytes (two overlapping word loads).
#[inline]
fn eq_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        return word(a) == word(b) && word(&a[n - 8..]) == word(&b[n - 8..]);
    }
    if n < 8 {
        return word(a) == word(b);
    }
    a == b
}

const ANY: u32 = u32::MAX;

/// Compiled scopes: built once (at snapshot load, per plan and per distinct key scope list),
/// matched per request without allocating. Empty means nothing is allowed.
#[derive(Clone, Debug, Default)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
    toks: Vec<Tok>,
    bytes: Vec<u8>,
    /// With at most 64 scopes: per distinct method of up to 8 bytes, (packed name, length,
    /// bit set of its scopes); requests try only the scopes of their method.
    methods: Vec<(u64, usize, u64)>,
    /// Scopes with method `*` or a method longer than 8 bytes: always tried.
    always: u64,
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
            toks: Vec::new(),
            bytes: Vec::new(),
            methods: Vec::new(),
            always: 0,
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
        set.index_methods();
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
    pub fn allows(&self, method: &[u8], path: &[u8]) -> bool {
        if path.first() != Some(&b'/') {
            return false;
        }
        let (m, p) = (word(method), word(path));
        if self.scopes.len() <= 64 {
            let mut bits = self.always;
            if let Some(&(_, _, b)) = self
                .methods
                .iter()
                .find(|&&(w, n, _)| w == m && n == method.len())
            {
                bits |= b;
            }
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(s) = self.scopes.get(i) {
                    // a bit from `methods` means the method is equal; `always` holds `*`
                    // and long methods, compared in full
                    if p & s.head_mask == s.head
                        && (s.method_len <= 8
                            || s.method_len == ANY
                            || s.method_len as usize == method.len()
                                && self.slice(s.method_off, s.method_len) == method)
                        && self.path_matches(s, path)
                    {
                        return true;
                    }
                }
            }
            return false;
        }
        self.scopes.iter().any(|s| {
            p & s.head_mask == s.head
                && (s.method_len == ANY
                    || (s.method_len as usize == method.len()
                        && s.method == m
                        && (method.len() <= 8 || self.slice(s.method_off, s.method_len) == method)))
                && self.path_matches(s, path)
        })
    }

    /// Builds `methods` and `always` (left empty beyond 64 scopes: then all are tried).
    fn index_methods(&mut self) {
        if self.scopes.len() > 64 {
            return;
        }
        for (i, s) in self.scopes.iter().enumerate() {
            let bit = 1u64 << i;
            if s.method_len == ANY || s.method_len > 8 {
                self.always |= bit;
                continue;
            }
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

    fn slice(&self, off: u32, len: u32) -> &[u8] {
        let off = off as usize;
        self.bytes
            .get(off..off.saturating_add(len as usize))
            .unwrap_or(&[])
    }

    fn path_matches(&self, s: &Scope, path: &[u8]) -> bool {
        let start = s.tok as usize;
        let Some(toks) = self.toks.get(start..start.saturating_add(s.ntok as usize)) else {
            return false;
        };
        let mut rest = path;
        for t in toks {
            match *t {
                Tok::Lit { off, len } => {
                    let lit = self.slice(off, len);
                    match rest.split_at_checked(lit.len()) {
                        Some((head, tail)) if eq_short(head, lit) => rest = tail,
                        _ => return false,
                    }
                }
                Tok::Star => {
                    let n = segment_len(rest);
                    if n == 0 {
                        return false;
                    }
                    rest = &rest[n..];
                }
                Tok::Rest => return rest.is_empty() || rest[0] == b'/',
                Tok::End => return rest.is_empty(),
            }
        }
        false
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
        let tok = u32::try_from(self.toks.len()).map_err(|_| "too many scopes")?;
        let mut lit: Vec<u8> = Vec::with_capacity(path.len());
        let mut segments = body.split('/').peekable();
        let mut end = Tok::End;
        while let Some(seg) = segments.next() {
            let last = segments.peek().is_none();
            match seg {
                "**" if last => {
                    end = Tok::Rest;
                    break;
                }
                "**" => return Err("'**' may only be the last segment"),
                "*" => {
                    lit.push(b'/');
                    self.push_lit(&mut lit)?;
                    self.toks.push(Tok::Star);
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
        self.push_lit(&mut lit)?;
        self.toks.push(end);
        let ntok = u32::try_from(self.toks.len()).map_err(|_| "too many scopes")? - tok;
        let (head, head_mask) = match self.toks.get(tok as usize) {
            Some(&Tok::Lit { off, len }) => {
                let lit = self.slice(off, len);
                let n = lit.len().min(8);
                (word(lit), word(&[0xff; 8][..n]))
            }
            _ => (0, 0),
        };
        self.scopes.push(Scope {
            method: word(method.as_bytes()),
            head,
            head_mask,
            method_off,
            method_len,
            tok,
            ntok,
        });
        Ok(())
    }

    fn push_bytes(&mut self, b: &[u8]) -> Result<(u32, u32), &'static str> {
        let off = u32::try_from(self.bytes.len()).map_err(|_| "too many scopes")?;
        let len = u32::try_from(b.len()).map_err(|_| "pattern too long")?;
        self.bytes.extend_from_slice(b);
        Ok((off, len))
    }

    /// Emits the pending literal (if any) as a token and clears it.
    fn push_lit(&mut self, lit: &mut Vec<u8>) -> Result<(), &'static str> {
        if !lit.is_empty() {
            let (off, len) = self.push_bytes(lit)?;
            self.toks.push(Tok::Lit { off, len });
            lit.clear();
        }
        Ok(())
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> ScopeSet {
        ScopeSet::compile(p.iter().copied()).unwrap()
    }

    fn ok(s: &ScopeSet, m: &str, p: &str) -> bool {
        s.allows(m.as_bytes(), p.as_bytes())
    }

    #[test]
    fn literal_paths_match_exactly() {
        let s = set(&["GET /v1/products"]);
        assert!(ok(&s, "GET", "/v1/products"));
        assert!(!ok(&s, "GET", "/v1/products/"));
        assert!(!ok(&s, "GET", "/v1/productsX"));
        assert!(!ok(&s, "GET", "/v1/product"));
        assert!(!ok(&s, "GET", "/v1/products/1"));
        assert!(!ok(&s, "GET", "/V1/products"));
        assert!(!ok(&s, "GET", ""));
        assert!(!ok(&s, "GET", "v1/products"));
    }

    #[test]
    fn methods_are_exact_or_any() {
        let s = set(&["GET /a"]);
        assert!(!ok(&s, "POST", "/a"));
        assert!(!ok(&s, "get", "/a"));
        assert!(!ok(&s, "GETX", "/a"));
        assert!(!ok(&s, "", "/a"));
        let s = set(&["* /a"]);
        for m in ["GET", "POST", "DELETE", "PURGE"] {
            assert!(ok(&s, m, "/a"), "{m}");
        }
    }

    #[test]
    fn long_methods_and_short_paths() {
        let s = set(&["VERSION-CONTROL /a", "MKWORKSPACE /**"]);
        assert!(ok(&s, "VERSION-CONTROL", "/a"));
        assert!(!ok(&s, "VERSION-CONTROX", "/a"));
        assert!(!ok(&s, "VERSION-", "/a"));
        assert!(ok(&s, "MKWORKSPACE", "/"));
        assert!(!ok(&s, "MKWORKSPACF", "/"));
        let s = set(&["GET /abcdefghij"]);
        assert!(ok(&s, "GET", "/abcdefghij"));
        assert!(!ok(&s, "GET", "/abc"));
        assert!(!ok(&s, "GET", "/abcdefgh"));
        assert!(!ok(&s, "GET", "/abcdefghiX"));
    }

    #[test]
    fn segment_scan_and_short_compares() {
        for (text, want) in [
            ("", 0),
            ("/", 0),
            ("a/", 1),
            ("abcdefg/", 7),
            ("abcdefgh/", 8),
            ("abcdefghijklmnopq/x", 17),
            ("abcdefghijklmnopqrs", 19),
            ("ab\x00\x01/", 4),
        ] {
            assert_eq!(segment_len(text.as_bytes()), want, "{text:?}");
        }
        for n in 0..40 {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(eq_short(&a, &a));
            assert_eq!(word(&a), word(&a.clone()));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 1;
                assert!(!eq_short(&a, &b), "{n} {i}");
                if i < 8 {
                    assert_ne!(word(&a), word(&b), "{n} {i}");
                }
            }
        }
    }

    #[test]
    fn star_is_one_non_empty_segment() {
        let s = set(&["GET /v1/products/*"]);
        assert!(ok(&s, "GET", "/v1/products/42"));
        assert!(!ok(&s, "GET", "/v1/products/"));
        assert!(!ok(&s, "GET", "/v1/products"));
        assert!(!ok(&s, "GET", "/v1/products/42/"));
        assert!(!ok(&s, "GET", "/v1/products/42/x"));
        let s = set(&["PURGE /cache/*/x"]);
        assert!(ok(&s, "PURGE", "/cache/a/x"));
        assert!(!ok(&s, "PURGE", "/cache//x"));
        assert!(!ok(&s, "PURGE", "/cache/a/b/x"));
        assert!(!ok(&s, "PURGE", "/cache/a/xy"));
        let s = set(&["GET /*"]);
        assert!(ok(&s, "GET", "/a"));
        assert!(!ok(&s, "GET", "/"));
    }

    #[test]
    fn double_star_is_the_rest_including_nothing() {
        let s = set(&["* /v1/orders/**"]);
        for p in [
            "/v1/orders",
            "/v1/orders/",
            "/v1/orders/1",
            "/v1/orders/1/items/",
        ] {
            assert!(ok(&s, "DELETE", p), "{p}");
        }
        assert!(!ok(&s, "GET", "/v1/ordersX"));
        assert!(!ok(&s, "GET", "/v1/order"));
        assert!(!ok(&s, "GET", "/v1"));
        let all = set(&["GET /**"]);
        assert!(ok(&all, "GET", "/"));
        assert!(ok(&all, "GET", "/anything/at/all"));
        assert!(!ok(&all, "GET", ""));
        let mixed = set(&["GET /t/*/files/**"]);
        assert!(ok(&mixed, "GET", "/t/acme/files"));
        assert!(ok(&mixed, "GET", "/t/acme/files/a/b"));
        assert!(!ok(&mixed, "GET", "/t//files/a"));
    }

    #[test]
    fn trailing_slash_is_significant() {
        let s = set(&["GET /v1/"]);
        assert!(ok(&s, "GET", "/v1/"));
        assert!(!ok(&s, "GET", "/v1"));
        assert!(!ok(&s, "GET", "/v1/x"));
        let root = set(&["POST /"]);
        assert!(ok(&root, "POST", "/"));
        assert!(!ok(&root, "POST", "/x"));
    }

    #[test]
    fn any_scope_of_many() {
        let s = set(&["GET /a", "POST /b/*", "* /c/**"]);
        assert_eq!(s.len(), 3);
        assert!(ok(&s, "GET", "/a"));
        assert!(ok(&s, "POST", "/b/1"));
        assert!(!ok(&s, "GET", "/b/1"));
        assert!(ok(&s, "PATCH", "/c/d/e"));
    }

    #[test]
    fn empty_set_denies_everything() {
        let s = set(&[]);
        assert!(s.is_empty());
        assert!(!ok(&s, "GET", "/"));
        assert!(!ScopeSet::empty().allows(b"GET", b"/"));
    }

    /// The grammar stated plainly, segment by segment: the oracle for the compiled matcher.
    fn reference(pattern: &str, method: &[u8], path: &[u8]) -> bool {
        let (m, p) = pattern.split_once(' ').unwrap();
        if m != "*" && m.as_bytes() != method {
            return false;
        }
        let (Some(want), Some(got)) = (p.strip_prefix('/'), path.strip_prefix(b"/")) else {
            return false;
        };
        let want: Vec<&str> = want.split('/').collect();
        let got: Vec<&[u8]> = got.split(|&b| b == b'/').collect();
        let (want, rest) = match want.split_last() {
            Some((&"**", init)) => (init, true),
            _ => (&want[..], false),
        };
        let seg_ok = |w: &str, g: &[u8]| {
            if w == "*" {
                !g.is_empty()
            } else {
                w.as_bytes() == g
            }
        };
        if rest {
            // `**` is nothing, or `/` and anything after it
            got.len() >= want.len() && want.iter().zip(&got).all(|(w, g)| seg_ok(w, g))
        } else {
            got.len() == want.len() && want.iter().zip(&got).all(|(w, g)| seg_ok(w, g))
        }
    }

    #[test]
    fn matches_the_plain_reference_matcher() {
        // Segments of every length class the matcher treats apart (1-3, 4-7, 8, 9-16, over
        // 16 bytes), near-misses in the first and last byte, and wildcards.
        let segs = [
            "a",
            "ab",
            "abc",
            "abcd",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopqrstuvwxyz0123",
            "*",
        ];
        let mut patterns = vec!["GET /".to_owned(), "GET /**".to_owned(), "* /*".to_owned()];
        for a in segs {
            patterns.push(format!("GET /{a}"));
            patterns.push(format!("GET /{a}/"));
            patterns.push(format!("* /{a}/**"));
            for b in ["*", "**", "abc", "abcdefghij", ""] {
                patterns.push(format!("GET /{a}/{b}"));
                patterns.push(format!("VERSION-CONTROL /x/{a}/{b}"));
            }
        }
        let mut paths: Vec<String> = vec!["/".into(), "".into(), "*".into(), "//".into()];
        let words = [
            "a",
            "b",
            "ab",
            "abc",
            "abC",
            "abcd",
            "abcdefg",
            "abcdefgh",
            "Abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "abcdefghij",
            "abcdefghijklmnop",
            "abcdefghijklmnoP",
            "abcdefghijklmnopq",
            "abcdefghijklmnopqrstuvwxyz0123",
            "abcdefghijklmnopqrstuvwxyz012_",
            "",
        ];
        for a in words {
            paths.push(format!("/{a}"));
            paths.push(format!("/x/{a}"));
            for b in words {
                paths.push(format!("/{a}/{b}"));
                paths.push(format!("/x/{a}/{b}"));
                paths.push(format!("/{a}/{b}/c"));
            }
        }
        let methods: [&[u8]; 6] = [b"GET", b"GET\0", b"GE", b"POST", b"VERSION-CONTROL", b""];
        for pat in &patterns {
            let one = set(&[pat.as_str()]);
            for path in &paths {
                for m in methods {
                    assert_eq!(
                        one.allows(m, path.as_bytes()),
                        reference(pat, m, path.as_bytes()),
                        "{pat:?} {} {path:?}",
                        String::from_utf8_lossy(m)
                    );
                }
            }
        }
        // Sets: within 64 scopes (indexed by method) and beyond (every scope tried).
        for chunk in [8, 70] {
            for group in patterns.chunks(chunk) {
                let s = ScopeSet::compile(group.iter().map(String::as_str)).unwrap();
                for path in &paths {
                    for m in methods {
                        let want = group.iter().any(|p| reference(p, m, path.as_bytes()));
                        assert_eq!(s.allows(m, path.as_bytes()), want, "{path:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        for bad in [
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
        ] {
            let e = ScopeSet::compile(["GET /ok", bad]).unwrap_err();
            assert_eq!(e.pattern, bad);
            let line = e.to_string();
            assert!(
                line.contains(&format!("{bad:?}")) && !line.contains('\n'),
                "{line}"
            );
        }
    }
}
