//! The admin audit trail: one JSON line per change made to keys, plans, snapshots or by a
//! leak alert — who (an API token's name, or `cli:USER`), what, on what, when, and how it
//! ended. It lives beside the key database (`admin-audit.log`, mode 0600), whatever the
//! request audit log is set to, and is appended with O_APPEND so the gateway and CLI
//! commands can write it at once.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use serde_json::json;

use super::Paths;

/// One change.
pub struct Entry<'a> {
    /// `token:NAME`, `cli:USER` or `github` (a verified leak alert).
    pub who: &'a str,
    /// `key.create`, `key.revoke`, `plan.set`, `snapshot.publish`, `leak.revoke`, ...
    pub action: &'a str,
    /// The key id or plan name acted on ("" when none).
    pub target: &'a str,
    /// The answer's status (200 for a CLI success).
    pub status: u16,
    /// The problem code when refused.
    pub code: Option<&'a str>,
    /// The peer address for API calls.
    pub remote: Option<String>,
}

/// Where the trail is written for this store.
pub fn path(paths: &Paths) -> PathBuf {
    paths.db_path.with_file_name("admin-audit.log")
}

/// Appends `entry`; a failure is logged (the change itself has happened).
pub fn append(paths: &Paths, entry: &Entry<'_>) {
    let line = json!({
        "ts": crate::ops::parse::rfc3339_ms(crate::clock::unix_ms()),
        "type": "admin",
        "who": entry.who,
        "action": entry.action,
        "target": entry.target,
        "status": entry.status,
        "code": entry.code,
        "remote": entry.remote,
    })
    .to_string()
        + "\n";
    let file = path(paths);
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(file = %file.display(), error = %e, "cannot append to the admin audit log; check its directory's permissions");
    }
}

/// Who runs this CLI: `cli:` and the login name (or uid).
pub fn cli_user() -> String {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| {
            // SAFETY: getuid(2) has no preconditions.
            format!("uid{}", unsafe { libc::getuid() })
        });
    format!("cli:{name}")
}

/// A CLI change that succeeded.
pub fn by_cli(action: &str, target: &str, paths: &Paths) {
    append(
        paths,
        &Entry {
            who: &cli_user(),
            action,
            target,
            status: 200,
            code: None,
            remote: None,
        },
    );
}
