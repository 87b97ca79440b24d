//! The module graph has no cycle, in either crate: a module may use the ones below it, never
//! one that uses it back. Read from the sources (every `crate::<module>` path, grouped `use`
//! included), so a new import that closes a circle fails here with the circle spelled out.
//!
//! keyway-core cannot reach the runtime at all (it does not depend on it); within each crate
//! this test holds the order that docs/architecture.md draws.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module names a source text reaches through `crate::`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in text.match_indices("crate::") {
        let preceded = text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if preceded {
            continue; // `keyway_core::…` or another crate's path, not ours
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the names at depth 1.
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if depth == 1 && item_start && !c.is_whitespace() => {
                        found.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

/// Top-level module -> the top-level modules of the same crate it uses.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // The top-level module a file belongs to: `src/a.rs` and `src/a/**` are `a`.
    let top = |f: &Path| -> String {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top(f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut g = Graph::new();
    for f in &files {
        let top = top(f);
        if !modules.contains(&top) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let uses = g.entry(top.clone()).or_default();
        for used in crate_paths(&text) {
            if used != top && modules.contains(&used) {
                uses.insert(used);
            }
        }
    }
    g
}

/// A cycle in `g`, spelled `a -> b -> … -> a`, if there is one.
fn find_cycle(g: &Graph) -> Option<String> {
    fn visit<'g>(
        g: &'g Graph,
        node: &'g str,
        path: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node);
            return Some(cycle.join(" -> "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

fn assert_acyclic(crate_src: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(crate_src);
    let g = graph(&src);
    assert!(g.len() > 3, "{crate_src}: read too few modules: {g:?}");
    if let Some(cycle) = find_cycle(&g) {
        panic!("{crate_src}: modules import each other in a circle: {cycle}; move the shared piece below both");
    }
}

#[test]
fn the_runtime_modules_form_no_cycle() {
    assert_acyclic("src");
}

#[test]
fn the_core_modules_form_no_cycle() {
    assert_acyclic("core/src");
}

#[test]
fn the_reader_sees_grouped_and_nested_uses() {
    let text = "use crate::{a, b::c, d::{e, f}};\nlet x = crate::g::h();\nkeyway_core::z::y;";
    let found: Vec<_> = crate_paths(text).into_iter().collect();
    assert_eq!(found, ["a", "b", "d", "g"]);
    let g: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(find_cycle(&g).as_deref(), Some("a -> b -> c -> a"));
}
