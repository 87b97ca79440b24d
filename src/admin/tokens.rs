//! Admin API tokens: a file of `NAME read|write TOKEN` lines (`#` comments), read at each
//! call so a new or removed token applies at once. A presented token is compared with every
//! line in constant time (SHA-256 digests, compared without an early exit), so the answer's
//! timing says nothing about how much of a guess was right.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A token that matched: its name (for the audit trail) and access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub access: Access,
}

/// Shortest token accepted in the file (a guessable token is refused at load).
pub const MIN_TOKEN_LEN: usize = 24;

struct Line {
    name: String,
    access: Access,
    digest: [u8; 32],
}

/// Parses the token file's text. Errors name the line and say what to write.
fn parse(text: &str) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, access, token] = fields[..] else {
            return Err(format!(
                "line {}: write NAME read|write TOKEN (three fields)",
                i + 1
            ));
        };
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            other => {
                return Err(format!(
                    "line {}: access {other:?} is not read or write",
                    i + 1
                ))
            }
        };
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "line {}: token of {name:?} is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`",
                i + 1
            ));
        }
        out.push(Line {
            name: name.to_string(),
            access,
            digest: Sha256::digest(token.as_bytes()).into(),
        });
    }
    Ok(out)
}

/// Equal 32-byte digests, in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

/// The caller `presented` authenticates as, per the lines in `text` (`None`: no match).
/// Every line is compared, matched or not.
pub fn check_text(text: &str, presented: &str) -> Result<Option<Caller>, String> {
    let lines = parse(text)?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for l in &lines {
        if same(&l.digest, &digest) && found.is_none() {
            found = Some(Caller {
                name: l.name.clone(),
                access: l.access,
            });
        }
    }
    Ok(found)
}

/// Reads the token file and checks `presented` against it. The error (one line, naming the
/// file) means the file cannot be used at all.
pub fn check(file: &Path, presented: &str) -> Result<Option<Caller>, String> {
    let meta = std::fs::metadata(file).map_err(|e| {
        format!(
            "cannot read the admin token file {}: {e}; fix [admin] token_file",
            file.display()
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "the admin token file {} is readable by other users; run chmod 600 on it",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "cannot read the admin token file {}: {e}; fix [admin] token_file",
            file.display()
        )
    })?;
    check_text(&text, presented).map_err(|e| format!("admin token file {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# operators\nops write 0123456789abcdef0123456789abcdef\n\nviewer   read   fedcba9876543210fedcba9876543210\n";

    #[test]
    fn tokens_match_by_whole_value() {
        let ops = check_text(FILE, "0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            ops,
            Some(Caller {
                name: "ops".into(),
                access: Access::Write
            })
        );
        let viewer = check_text(FILE, "fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(viewer.unwrap().access, Access::Read);
        for wrong in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "ops",
            "0123456789ABCDEF0123456789ABCDEF",
        ] {
            assert_eq!(check_text(FILE, wrong).unwrap(), None, "{wrong:?}");
        }
    }

    #[test]
    fn bad_files_say_which_line() {
        for (text, want) in [
            ("ops write\n", "line 1: write NAME"),
            (
                "# x\nops admin 0123456789abcdef0123456789abcdef\n",
                "line 2: access \"admin\"",
            ),
            ("ops write short\n", "shorter than 24"),
        ] {
            let e = check_text(text, "x").unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        assert_eq!(check_text("", "anything").unwrap(), None);
    }

    #[test]
    fn the_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, FILE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check(&path, "x").unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check(&path, "0123456789abcdef0123456789abcdef")
            .unwrap()
            .is_some());
        let missing = dir.path().join("none");
        assert!(check(&missing, "x").unwrap_err().contains("cannot read"));
    }
}
