//! The data plane's key table: `build` compiles plans and keys into one file, `Snapshot`
//! maps and validates it once, then answers digest lookups zero-copy and allocation-free.
//!
//! Layout and the reasons behind it: docs/snapshot-format.md. Files: `schema` (the layout),
//! `build` (compile + atomic write), `load` (open + every check), `view` (lookup and views).

mod build;
mod load;
mod schema;
mod view;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::fsutil::write_atomic;
pub use build::{build, reseal};
pub use load::Snapshot;
pub use schema::{FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use view::{KeyView, PlanView};

/// Which snapshot an error is about: a file, or bytes handed to [`Snapshot::from_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(Option<PathBuf>);

impl Origin {
    pub fn file(path: &Path) -> Origin {
        Origin(Some(path.to_owned()))
    }

    pub fn memory() -> Origin {
        Origin(None)
    }

    pub fn path(&self) -> Option<&Path> {
        self.0.as_deref()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(path) => write!(f, "snapshot {}", path.display()),
            None => f.write_str("snapshot (in memory)"),
        }
    }
}

/// Why a snapshot could not be built or was refused. One line each: what happened and what
/// to do. Never contains a secret (keys are named by id, never by digest or secret).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {}: {source}; check the path and its permissions", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {len} bytes do not fit in this machine's address space; use a 64-bit build")]
    TooLarge { at: Origin, len: u64 },
    #[error("{at}: the file is empty; rebuild it with `keyway snapshot build`")]
    Empty { at: Origin },
    #[error("{at}: {len} bytes is shorter than the {HEADER_LEN}-byte header (truncated); rebuild it with `keyway snapshot build`")]
    TooShort { at: Origin, len: u64 },
    #[error("{at}: not a keyway snapshot (bad magic); point the config at a file written by `keyway snapshot build`")]
    BadMagic { at: Origin },
    #[error("{at}: format version {found} is not supported (this keyway reads version {supported}); rebuild it with this keyway's `keyway snapshot build`")]
    UnsupportedVersion {
        at: Origin,
        found: u32,
        supported: u32,
    },
    #[error(
        "{at}: header checksum mismatch (header corrupt); rebuild it with `keyway snapshot build`"
    )]
    HeaderChecksumMismatch { at: Origin },
    #[error("{at}: the header says {expected} bytes but there are {found} (truncated or appended to); rebuild it with `keyway snapshot build`")]
    LengthMismatch {
        at: Origin,
        expected: u64,
        found: u64,
    },
    #[error("{at}: checksum mismatch (file corrupt or truncated); rebuild it with `keyway snapshot build`")]
    ChecksumMismatch { at: Origin },
    #[error("{at}: invalid contents ({reason}); rebuild it with `keyway snapshot build`, and report a bug if a fresh build is refused too")]
    Invalid { at: Origin, reason: String },
    #[error("snapshot not built: {0}")]
    Build(String),
}
