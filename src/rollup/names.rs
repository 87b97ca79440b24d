//! The rollups' dictionary, `usage/names.tsv`: rows store numbers, this file says what they
//! stand for. Append-only lines:
//!
//! - `k NUMBER KEY_ID TENANT PLAN` (a key whose tenant or plan changed gets a new line with
//!   the same number; the last one counts),
//! - `r NUMBER ROUTE`, `c NUMBER CODE`.
//!
//! Number 0 is "none" in every kind (no key, no route). Fields are tab-separated; key ids,
//! tenants, plans and route prefixes never hold tabs or newlines (the store and the config
//! refuse them), and any that did would be replaced by a space.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// What a key number stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyName<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    pub plan: &'a str,
}

/// Byte ranges of a key line's three fields in the dictionary text.
type Fields = [(u32, u32); 3];

/// The dictionary as read from disk (the reader's view). Key names stay in the file's text
/// and are found by offset: a million keys are read without a million allocations.
#[derive(Default, Debug)]
pub struct Dictionary {
    text: String,
    /// Index = key number (0: no key, empty fields).
    keys: Vec<Fields>,
    pub routes: Vec<String>,
    pub codes: Vec<String>,
}

fn clean(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

fn set<T: Default + Clone>(v: &mut Vec<T>, i: usize, value: T) {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    v[i] = value;
}

impl Dictionary {
    /// Reads `dir/names.tsv` (missing: empty). Malformed lines are skipped.
    pub fn read(dir: &Path) -> std::io::Result<Dictionary> {
        let text = match std::fs::read_to_string(dir.join("names.tsv")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut d = Dictionary {
            keys: vec![[(0, 0); 3]],
            routes: vec![String::new()],
            codes: vec![String::new()],
            text: String::new(),
        };
        let mut at = 0usize;
        for line in text.split('\n') {
            let start = at;
            at += line.len() + 1;
            let mut f = line.split('\t');
            let (Some(kind), Some(n)) = (f.next(), f.next().and_then(|n| n.parse::<usize>().ok()))
            else {
                continue;
            };
            let rest: Vec<&str> = f.collect();
            match (kind, rest.len()) {
                ("k", 3) => {
                    let offset = |field: &str| {
                        let from = field.as_ptr() as usize - text.as_ptr() as usize;
                        debug_assert!(from >= start);
                        (from as u32, (from + field.len()) as u32)
                    };
                    set(
                        &mut d.keys,
                        n,
                        [offset(rest[0]), offset(rest[1]), offset(rest[2])],
                    );
                }
                ("r", 1) => set(&mut d.routes, n, rest[0].to_string()),
                ("c", 1) => set(&mut d.codes, n, rest[0].to_string()),
                _ => {}
            }
        }
        d.text = text;
        Ok(d)
    }

    /// Key numbers handed out, plus one (number 0 is "no key").
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn key(&self, number: usize) -> Option<KeyName<'_>> {
        let f = self.keys.get(number)?;
        let get = |(a, b): (u32, u32)| self.text.get(a as usize..b as usize).unwrap_or("");
        Some(KeyName {
            id: get(f[0]),
            tenant: get(f[1]),
            plan: get(f[2]),
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = KeyName<'_>> {
        (0..self.keys.len()).filter_map(|i| self.key(i))
    }
}

/// The writer's view: numbers handed out so far, and the file to append new ones to.
pub struct Names {
    file: File,
    keys: HashMap<String, (u32, String, String)>,
    routes: HashMap<String, u16>,
    codes: HashMap<String, u8>,
}

impl Names {
    pub fn open(dir: &Path) -> std::io::Result<Names> {
        let d = Dictionary::read(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("names.tsv"))?;
        let mut n = Names {
            file,
            keys: HashMap::new(),
            routes: HashMap::new(),
            codes: HashMap::new(),
        };
        for (i, k) in d.keys().enumerate().skip(1) {
            if !k.id.is_empty() {
                n.keys
                    .insert(k.id.to_string(), (i as u32, k.tenant.into(), k.plan.into()));
            }
        }
        for (i, r) in d.routes.into_iter().enumerate().skip(1) {
            n.routes.insert(r, i as u16);
        }
        for (i, c) in d.codes.into_iter().enumerate().skip(1) {
            n.codes.insert(c, i as u8);
        }
        Ok(n)
    }

    /// The key's number, adding (or updating) its line when new or moved.
    pub fn key(&mut self, id: &str, tenant: &str, plan: &str) -> std::io::Result<u32> {
        if id.is_empty() {
            return Ok(0);
        }
        let next = self.keys.len() as u32 + 1;
        let (number, known_tenant, known_plan) = self
            .keys
            .entry(clean(id))
            .or_insert_with(|| (next, String::new(), String::new()));
        if known_tenant != tenant || known_plan != plan || *number == next {
            tenant.clone_into(known_tenant);
            plan.clone_into(known_plan);
            let line = format!(
                "k\t{number}\t{}\t{}\t{}\n",
                clean(id),
                clean(tenant),
                clean(plan)
            );
            let number = *number;
            self.file.write_all(line.as_bytes())?;
            return Ok(number);
        }
        Ok(*number)
    }

    pub fn route(&mut self, label: &str) -> std::io::Result<u16> {
        if label.is_empty() || label == "none" {
            return Ok(0);
        }
        if let Some(&n) = self.routes.get(label) {
            return Ok(n);
        }
        let n = u16::try_from(self.routes.len() + 1).unwrap_or(u16::MAX);
        self.routes.insert(label.to_string(), n);
        self.file
            .write_all(format!("r\t{n}\t{}\n", clean(label)).as_bytes())?;
        Ok(n)
    }

    pub fn code(&mut self, code: &str) -> std::io::Result<u8> {
        if let Some(&n) = self.codes.get(code) {
            return Ok(n);
        }
        let n = u8::try_from(self.codes.len() + 1).unwrap_or(u8::MAX);
        self.codes.insert(code.to_string(), n);
        self.file
            .write_all(format!("c\t{n}\t{}\n", clean(code)).as_bytes())?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_persist_and_a_moved_key_keeps_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = Names::open(dir.path()).unwrap();
        assert_eq!(n.key("", "", "").unwrap(), 0);
        assert_eq!(n.key("key_a", "acme", "free").unwrap(), 1);
        assert_eq!(n.key("key_b", "beta", "free").unwrap(), 2);
        assert_eq!(n.key("key_a", "acme", "free").unwrap(), 1);
        assert_eq!(n.key("key_a", "acme", "gold").unwrap(), 1);
        assert_eq!(n.route("/v1/").unwrap(), 1);
        assert_eq!(n.route("none").unwrap(), 0);
        assert_eq!(n.code("rate_limited").unwrap(), 1);
        drop(n);
        let d = Dictionary::read(dir.path()).unwrap();
        assert_eq!(d.key(1).unwrap().plan, "gold");
        assert_eq!(d.key(2).unwrap().tenant, "beta");
        assert_eq!(
            (d.routes[1].as_str(), d.codes[1].as_str()),
            ("/v1/", "rate_limited")
        );
        // Reopened: the same numbers, new ones after them.
        let mut n = Names::open(dir.path()).unwrap();
        assert_eq!(n.key("key_b", "beta", "free").unwrap(), 2);
        assert_eq!(n.key("key_c", "t\tab", "free").unwrap(), 3);
        assert_eq!(n.code("rate_limited").unwrap(), 1);
        assert_eq!(
            Dictionary::read(dir.path()).unwrap().key(3).unwrap().tenant,
            "t ab"
        );
    }
}
