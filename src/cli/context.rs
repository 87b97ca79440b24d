//! What every `keys` / `plans` / `snapshot` command gets: where the store and the snapshot
//! are, and the one error type they return.

use crate::store::StoreError;
use std::fmt;

/// Paths resolved from the config (`[keys] db`, `[keys] snapshot`) and the global flags.
pub type CliContext = crate::ops::Paths;

/// One line saying what happened and what to do. The process exits with status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError(e.to_string())
    }
}

impl From<crate::ops::Error> for CliError {
    fn from(e: crate::ops::Error) -> Self {
        CliError(e.detail)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError(format!("cannot write the output: {e}"))
    }
}

/// Writes `text` to stdout (an error rather than a panic if stdout is closed).
pub fn print(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes a JSON value, pretty-printed, and a newline to stdout.
pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError(format!("cannot encode JSON: {e}")))?;
    print(&(text + "\n"))
}

/// Printed (to stderr) after a change, which the gateway sees only in its next snapshot.
pub fn note_rebuild() {
    eprintln!("note: the gateway sees this after `keyway snapshot build` and a reload");
}

/// Said after a key change the running gateway serves from the live overlay.
pub fn note_live() {
    eprintln!("note: a running gateway serves this within a second; the next `keyway snapshot build` absorbs it");
}
