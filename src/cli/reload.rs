//! `keyway reload`: signal the running gateway (pid file in the state directory) to reload
//! its configuration and key table, and wait until every shard serves them or say which was
//! refused.

use crate::config::Config;
use crate::runfiles::RuntimeFiles;
use crate::snapshot_status::SnapshotStatus;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub fn run(config: &Config, wait: Duration) -> Result<String, String> {
    let files = RuntimeFiles::in_dir(&config.server.state_dir);
    let pid: i32 = read_trimmed(&files.pid)?.parse().map_err(|_| {
        format!(
            "{} does not hold a pid; is keyway running with this config?",
            files.pid.display()
        )
    })?;
    let admin: SocketAddr = read_trimmed(&files.admin)?.parse().map_err(|_| {
        format!(
            "{} does not hold an address; restart keyway",
            files.admin.display()
        )
    })?;
    let before = fetch(admin)?;
    // SAFETY: plain kill(2) on a pid we read; no memory is involved.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(format!(
            "cannot signal pid {pid}: {}; is keyway running (stale {})?",
            std::io::Error::last_os_error(),
            files.pid.display()
        ));
    }
    let deadline = Instant::now() + wait;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = fetch(admin)?;
        if now.attempts > before.attempts {
            if let Some(done) = outcome(&before, &now) {
                return done;
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no confirmation within {}s; check the gateway's log",
                wait.as_secs()
            ));
        }
    }
}

/// What a finished reload came to (`None`: the shards are still taking it).
fn outcome(before: &SnapshotStatus, now: &SnapshotStatus) -> Option<Result<String, String>> {
    let config_tried = now.config.attempts > before.config.attempts;
    if config_tried {
        if let Some(err) = &now.config.last_error {
            return Some(Err(format!(
                "configuration refused, the running one keeps serving: {err}"
            )));
        }
    }
    if now.rolling_out.is_some() || now.config.rolling_out.is_some() {
        return None;
    }
    let mut said = Vec::new();
    if config_tried {
        said.push(if now.config.version > before.config.version {
            format!(
                "configuration version {} ({})",
                now.config.version,
                now.config.last_changes.join("; ")
            )
        } else {
            "configuration unchanged".to_string()
        });
        if !now.config.needs_restart.is_empty() {
            said.push(format!(
                "changed but taking effect only at a restart: {}",
                now.config.needs_restart.join(", ")
            ));
        }
    }
    if let Some(err) = &now.last_error {
        if said.is_empty() {
            return Some(Err(format!(
                "reload refused, the previous key table keeps serving: {err}"
            )));
        }
        said.push(format!(
            "key table refused, the previous one keeps serving: {err}"
        ));
        return Some(Err(format!("reloaded in part: {}", said.join("; "))));
    }
    said.push(match now.generation {
        Some(g) => format!("generation {g}, {} keys, from {}", now.keys, now.path),
        None => "no key table (only public routes, and no snapshot yet)".into(),
    });
    Some(Ok(format!("reloaded: {}", said.join("; "))))
}

fn read_trimmed(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            format!(
                "cannot read {}: {e}; is keyway running with this config's state_dir?",
                path.display()
            )
        })
}

/// GET /snapshot on the admin listener.
fn fetch(admin: SocketAddr) -> Result<SnapshotStatus, String> {
    let err = |e: std::io::Error| format!("cannot reach the admin listener at {admin}: {e}");
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(2)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    s.write_all(b"GET /snapshot HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .map_err(err)?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(err)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| format!("bad answer from {admin}/snapshot"))?;
    serde_json::from_str(body).map_err(|e| format!("bad JSON from {admin}/snapshot: {e}"))
}
