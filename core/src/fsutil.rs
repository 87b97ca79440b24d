//! Replacing a file so that readers see the old contents or the new, never a mix: the one
//! way keyway writes the key snapshot and the rate-limit state.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same directory,
/// fsync, rename over `path`, fsync the directory. On error the temporary file is removed
/// and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// [`write_atomic`] without either fsync: survives a crash of the process (the page cache
/// keeps the file), not of the machine. For files rewritten so often that an fsync each time
/// would stall behind other disk writes.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name to replace", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    // 0o666 less the umask, as `File::create` would: tempfile's own default is 0o600, which
    // would hide the file from a gateway running as another user than the CLI.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_leaving_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("state");
        for (write, text) in [
            (
                write_atomic as fn(&Path, &[u8]) -> io::Result<()>,
                &b"one"[..],
            ),
            (write_atomic_unsynced, b"two"),
            (write_atomic, b"three"),
        ] {
            write(&path, text).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), text);
        }
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        // The mode is what `File::create` gives (0o666 less the umask), not tempfile's 0o600.
        let created = dir.join("created");
        File::create(&created).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&created));
    }

    #[test]
    fn failures_leave_the_target_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(write_atomic(&dir.join("no-such-dir/x"), b"x").is_err());
        assert!(write_atomic(Path::new("/"), b"x").is_err());
        // A directory in the way: the rename fails and the temporary file goes.
        std::fs::create_dir(dir.join("taken")).unwrap();
        std::fs::write(dir.join("taken/inside"), b"keep").unwrap();
        assert!(write_atomic_unsynced(&dir.join("taken"), b"x").is_err());
        assert_eq!(std::fs::read(dir.join("taken/inside")).unwrap(), b"keep");
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
