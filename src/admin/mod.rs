//! The admin listener (default 127.0.0.1:9090): `/healthz`, `/readyz`, `/metrics`,
//! `/snapshot`, and the admin API under `/v1/` ([`api`]).
//!
//! It runs on its own plain thread, off the shards: a slow scrape never delays a request.
//! Answers are small and every connection is closed after one request. Connections are
//! served concurrently (bounded), each with a total deadline for its request head, so one
//! slow local client cannot hold up `/healthz`, `/readyz` or `keyway reload`.

pub mod api;
pub mod args;
pub mod http;
pub mod leaks;
pub mod tokens;

use crate::context::Shared;
use crate::metrics::render::{render, Gauges};
use crate::snapshot_status::SnapshotStatus;
use http::{Request, Response};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

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
    let response = match http::read_request(&mut stream) {
        Ok(req) => route(&req, state),
        Err(Some(refusal)) => refusal,
        Err(None) => return Ok(()),
    };
    http::write_response(&mut stream, &response)
}

fn route(req: &Request, state: &AdminState) -> Response {
    if req.path.starts_with("/v1/") {
        return api::handle(req, state);
    }
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::text(405, "method not allowed: these endpoints take GET\n");
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    match req.path.as_str() {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => match state.not_ready() {
            None => Response::text(200, "ready\n"),
            Some(why) => Response::text(503, format!("not ready: {why}\n")),
        },
        "/snapshot" => {
            let mut json = serde_json::to_value(state.status()).unwrap_or_default();
            if let Some(fields) = json.as_object_mut() {
                fields.insert("io_uring".into(), state.io_uring.get().cloned().into());
            }
            Response::json(200, &json)
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
            let mut r = Response::text(200, body);
            r.content_type = "text/plain; version=0.0.4";
            r
        }
        _ => Response::text(
            404,
            "not found: try /healthz, /readyz, /metrics, /snapshot or /v1/openapi.json\n",
        ),
    }
}
