//! Tests of the scope grammar and matcher, including the check against a plain
//! segment-by-segment reference matcher.

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
        assert_eq!(word(&a), word(&a.clone()));
        for i in 0..n.min(8) {
            let mut b = a.clone();
            b[i] ^= 1;
            assert_ne!(word(&a), word(&b), "{n} {i}");
        }
    }
    // a `/` at every position of every length up to 20 (whole words, the tail)
    for n in 0..20 {
        for at in 0..=n {
            let mut b = vec![b'x'; n];
            if at < n {
                b[at] = b'/';
            }
            assert_eq!(segment_len(&b), at, "{n} {at}");
        }
    }
    // a compiled literal against paths that end inside it, right after it and well past
    // it (the one-load and the short-tail branches), and every one-byte change
    for n in 1..=16 {
        let lit: Vec<u8> = (0..n).map(|i| b'a' + i as u8).collect();
        let compiled = Lit::new(&lit);
        assert_eq!(matches!(compiled, Lit::Mid { .. }), n > 8, "{n}");
        // the length of what is left after the literal, if it matched
        let strip = |b: &[u8]| compiled.strip(b).map(<[u8]>::len);
        for extra in 0..12 {
            let mut path = lit.clone();
            path.extend((0..extra).map(|i| b'0' + i as u8));
            assert_eq!(strip(&path), Some(extra), "{n} +{extra}");
            assert_eq!(strip(&path[..n - 1]), None, "{n}");
            for i in 0..n {
                let mut b = path.clone();
                b[i] ^= 1;
                assert_eq!(strip(&b), None, "{n} +{extra} {i}");
            }
        }
    }
    assert_eq!(
        (low_bytes(0), low_bytes(1), low_bytes(8)),
        (0, 0xff, u64::MAX)
    );
}

#[test]
fn path_byte_index_drops_candidates_but_no_match() {
    // the benchmark's ten scopes: `pick` lands where their paths differ, and a POST to
    // an order's items leaves one candidate of the three POST and `*` scopes
    let s = set(&[
        "GET /v1/products/*",
        "POST /v1/products",
        "GET /v1/customers/*/addresses",
        "PUT /v1/customers/*",
        "DELETE /v1/carts/*",
        "GET /v1/search",
        "* /v1/admin/health",
        "PATCH /v1/orders/*",
        "GET /v2/catalog/**",
        "POST /v1/orders/*/items/**",
    ]);
    let path = b"/v1/orders/ord_8f3a2c/items/line_2";
    let x = (word(path) >> (8 * s.pick)) as usize & 15;
    let candidates = (s.any | s.method_bits(b"POST")) & s.by_byte.as_ref().unwrap()[x];
    assert_eq!((s.pick, candidates), (6, 1 << 9));
    assert!(ok(&s, "POST", "/v1/orders/ord_8f3a2c/items/line_2"));
    // scopes whose literal ends before `pick` (or that have none) are in every entry,
    // and a path that ends before it still meets them
    let s = set(&[
        "GET /v1/orders/*",
        "GET /v1/customers/*",
        "GET /*",
        "GET /v1/",
        "POST /**",
    ]);
    assert!(s.pick >= 4, "{}", s.pick);
    for (m, p) in [
        ("GET", "/v1/orders/1"),
        ("GET", "/v1/customers/2"),
        ("GET", "/x"),
        ("GET", "/v1/"),
        ("POST", "/"),
        ("POST", "/v1/orders"),
    ] {
        assert!(ok(&s, m, p), "{m} {p}");
    }
    assert!(!ok(&s, "GET", "/v1/ordersX/1"));
    assert!(!ok(&s, "GET", "/v1/orders"));
    // the first 8 bytes do not split these: no table
    let s = set(&[
        "GET /v1/orders/a",
        "GET /v1/orders/b",
        "PUT /v1/orders/c",
        "GET /v1/orders/d",
        "POST /v1/orders/*",
    ]);
    assert!(s.by_byte.is_none());
    assert!(ok(&s, "GET", "/v1/orders/d") && !ok(&s, "GET", "/v1/orders/c"));
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
    for bad in super::BAD_SCOPE_EXAMPLES {
        let e = ScopeSet::compile(["GET /ok", bad]).unwrap_err();
        assert_eq!(e.pattern, bad);
        let line = e.to_string();
        assert!(
            line.contains(&format!("{bad:?}")) && !line.contains('\n'),
            "{line}"
        );
    }
}
