//! Files the running gateway leaves in its state directory (pid, admin address) so that
//! `keyway reload` finds it.

use std::path::{Path, PathBuf};

/// Files the running gateway leaves in its state directory for `keyway reload`.
pub struct RuntimeFiles {
    pub pid: PathBuf,
    pub admin: PathBuf,
}

impl RuntimeFiles {
    pub fn in_dir(state_dir: &Path) -> RuntimeFiles {
        RuntimeFiles {
            pid: state_dir.join("keyway.pid"),
            admin: state_dir.join("keyway.admin"),
        }
    }

    pub fn write(&self, admin: std::net::SocketAddr) -> std::io::Result<()> {
        std::fs::write(&self.pid, format!("{}\n", std::process::id()))?;
        std::fs::write(&self.admin, format!("{admin}\n"))
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.pid);
        let _ = std::fs::remove_file(&self.admin);
    }
}
