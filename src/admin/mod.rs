//! The admin listener (default 127.0.0.1:9090): `/healthz`, `/readyz`, `/metrics`,
//! `/snapshot`.
//!
//! It runs on its own plain thread, off the shards: a slow scrape never delays a request.
//! Answers are small and every connection is closed after one request. Connections are
//! served concurrently (bounded), each with a total deadline for its request head, so one
//! slow local client cannot hold up `/healthz`, `/readyz` or `keyway reload`.

use crate::context::Shared;
use crate::metrics::render::{render, Gauges};
use crate::snapshot_status::SnapshotStatus;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// What the admin endpoints report on, shared with the control thread.
pub struct AdminState {
    /// The newest configuration handed to the shards (swapped by a reload).
    pub shared: RwLock<Arc<Shared>>,
    pub shards: usize,
    /// Shards whose listener is up.
    pub listening: AtomicUsize,
    /// The key table's state (written by the control thread).
    pub snapshot: Mutex<SnapshotStatus>,
    /// How the shards' io_uring rings are set up, once they are (shard::uring).
    pub io_uring: OnceLock<String>,
}

impl AdminState {
    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<String> {
        let up = self.listening.load(Ordering::Acquire);
        if up < self.shards {
            return Some(format!("{up} of {} shards listening", self.shards));
        }
        if self.shared().has_keyed_routes && self.status().generation.is_none() {
            return Some("keyed routes configured but no key table is loaded".into());
        }
        None
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn status(&self) -> SnapshotStatus {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Connections served at once; past this a new one is closed unanswered (the admin port is
/// local: this only bounds what a misbehaving local client can hold).
pub const MAX_CONNECTIONS: usize = 64;

/// The whole request head must arrive within this, however it is trickled in.
const HEAD_DEADLINE: Duration = Duration::from_secs(5);

/// Binds the admin address and serves it on a new thread, each connection on a thread of its
/// own (at most [`MAX_CONNECTIONS`]); returns the bound address.
pub fn start(addr: SocketAddr, state: Arc<AdminState>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("keyway-admin".into())
        .spawn(move || {
            let active = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming().flatten() {
                if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::AcqRel);
                    continue; // dropped: closed
                }
                let (state, done) = (state.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("keyway-admin-conn".into())
                    .spawn(move || {
                        let _ = answer(stream, &state);
                        done.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(local)
}

fn answer(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    stream.set_write_timeout(Some(HEAD_DEADLINE))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    let path = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return respond(
                &mut stream,
                408,
                "text/plain",
                "request head not received in time; send the whole request at once\n",
            );
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                break req
                    .path
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .to_string()
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => {
                return respond(
                    &mut stream,
                    400,
                    "text/plain",
                    "bad request: send e.g. GET /healthz HTTP/1.1\n",
                )
            }
        }
    };
    match path.as_str() {
        "/healthz" => respond(&mut stream, 200, "text/plain", "ok\n"),
        "/readyz" => match state.not_ready() {
            None => respond(&mut stream, 200, "text/plain", "ready\n"),
            Some(why) => respond(
                &mut stream,
                503,
                "text/plain",
                &format!("not ready: {why}\n"),
            ),
        },
        "/snapshot" => {
            let mut json = serde_json::to_value(state.status()).unwrap_or_default();
            if let Some(fields) = json.as_object_mut() {
                fields.insert("io_uring".into(), state.io_uring.get().cloned().into());
            }
            let body = json.to_string() + "\n";
            respond(&mut stream, 200, "application/json", &body)
        }
        "/metrics" => {
            let status = state.status();
            let shared = state.shared();
            let servers: Vec<(String, String)> = shared
                .config
                .upstreams
                .iter()
                .flat_map(|u| u.servers.iter().map(|s| (u.name.clone(), s.to_string())))
                .collect();
            let body = render(
                &shared.published,
                &shared.slots.route_labels,
                &shared.slots.upstream_labels,
                &servers,
                &Gauges {
                    snapshot_generation: status.generation.unwrap_or(0),
                    snapshot_keys: status.keys,
                    snapshot_reload_failures: status.failures,
                    config_version: status.config.version,
                    config_reload_failures: status.config.failures,
                    audit_dropped: shared.audit_failed.load(Ordering::Relaxed),
                },
            );
            respond(&mut stream, 200, "text/plain; version=0.0.4", &body)
        }
        _ => respond(
            &mut stream,
            404,
            "text/plain",
            "not found: try /healthz, /readyz, /metrics or /snapshot\n",
        ),
    }
}

fn respond(stream: &mut TcpStream, status: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = crate::http::write::reason_phrase(status);
    let date = httpdate::fmt_http_date(crate::clock::system_now());
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nDate: {date}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}
