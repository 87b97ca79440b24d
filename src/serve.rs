//! `keyway serve`: bind the listeners, start the shards and the admin listener, then wait
//! for signals on the control thread: SIGHUP reloads the configuration and the key table
//! (see [`crate::rollout`]), SIGUSR1 reopens the audit log, SIGTERM/SIGINT drain and exit.

use crate::admin::{self, AdminState};
use crate::audit;
use crate::config::Config;
use crate::context::Shared;
use crate::keytable;
use crate::rollout::{ConfigSource, Rollout};
use crate::runfiles::RuntimeFiles;
use crate::shard::{self, Control, ShardEvent};
use crate::snapshot_status::SnapshotStatus;
use crossbeam_channel::{Receiver, Sender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Why serving could not start or stopped badly; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; stop the other process or change [server] listen")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on admin address {addr}: {source}; change [server] admin_listen")]
    Admin {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot create state directory {path}: {source}; create it or change [server] state_dir"
    )]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start shard {shard}: {reason}; if it mentions memory, raise `ulimit -l` (LimitMEMLOCK)")]
    Shard { shard: usize, reason: String },
    #[error("{0}")]
    UringFlags(String),
    #[error("{0}")]
    Resolve(String),
    #[error("cannot start a control thread: {0}")]
    Signals(std::io::Error),
    #[error("cannot open the audit log {path}: {source}; create its directory, fix its permissions or change [audit] path")]
    Audit {
        path: String,
        source: std::io::Error,
    },
}

/// Where a running gateway listens (printed once at start).
pub struct Bound {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub shards: usize,
}

/// Runs the gateway until SIGTERM or SIGINT. `on_ready` is called once every shard listens.
/// `source`: the file `config` was read from, which SIGHUP reads again (`None`: SIGHUP
/// reloads the key table only).
pub fn serve(
    mut config: Config,
    source: Option<ConfigSource>,
    on_ready: impl FnOnce(&Bound),
) -> Result<(), ServeError> {
    crate::resolve::resolve(&mut config, None).map_err(ServeError::Resolve)?;
    let uring = shard::uring::Wanted::from_env().map_err(ServeError::UringFlags)?;
    uring.apply();
    let shards = match config.server.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    std::fs::create_dir_all(&config.server.state_dir).map_err(|source| ServeError::StateDir {
        path: config.server.state_dir.display().to_string(),
        source,
    })?;
    let listen_addr = config.server.listen;
    let (fds, listen) =
        bind_listeners(listen_addr, shards).map_err(|source| ServeError::Listen {
            addr: listen_addr,
            source,
        })?;
    let admin_addr = config.server.admin_listen;
    let snapshot_path = config.keys.snapshot.clone();
    let files = RuntimeFiles::in_dir(&config.server.state_dir);
    let shared = Arc::new(Shared::new(config, shards));
    let audit =
        match &shared.config.audit.path {
            Some(path) => Some(audit::start(path, shared.audit_failed.clone()).map_err(
                |source| ServeError::Audit {
                    path: path.display().to_string(),
                    source,
                },
            )?),
            None => None,
        };
    let (audit_writer, audit_tx) = match audit {
        Some((w, tx)) => (Some(w), Some(tx)),
        None => (None, None),
    };
    // Usage rollups: on whenever the state directory can hold them.
    let usage_dir = shared.config.server.state_dir.join("usage");
    let now_minute = (crate::clock::unix_now() / 60) as u32;
    let (rollup_writer, rollup_tx) = match crate::rollup::start(&usage_dir, now_minute) {
        Ok((w, tx)) => (Some(w), Some(tx)),
        Err(e) => {
            tracing::warn!(dir = %usage_dir.display(), error = %e, "usage rollups are off: cannot open their directory; `keyway usage` will have nothing");
            (None, None)
        }
    };

    // The key table is loaded before the shards start, off the data plane.
    let mut status = SnapshotStatus::new(&snapshot_path);
    status.config.path = source.as_ref().map(|s| s.path.display().to_string());
    status.config.loaded_at = Some(crate::clock::unix_now());
    let initial = if snapshot_path.exists() {
        let keys = status.record(keytable::load(&snapshot_path, &shared.config));
        match &keys {
            Some(t) => status.serving(&t.snapshot),
            None => tracing::error!(
                error = status.last_error.as_deref().unwrap_or(""),
                "key table refused at start; keyed routes answer 503 until a valid one is reloaded"
            ),
        }
        keys
    } else {
        if shared.has_keyed_routes {
            tracing::warn!(
                path = %snapshot_path.display(),
                "no key table yet; keyed routes answer 503 until `keyway snapshot build` and `keyway reload`"
            );
        }
        None
    };
    let state = Arc::new(AdminState {
        shared: RwLock::new(shared.clone()),
        shards,
        listening: Default::default(),
        snapshot: Mutex::new(status),
        io_uring: Default::default(),
    });
    // Key changes since the snapshot was built apply from the first request on.
    let mut overlay = crate::overlay::OverlayReader::new(&shared.config.keys.db);
    let initial_overlay = overlay
        .poll(state.status().generation, &state)
        .map(Arc::new);
    let admin = admin::start(admin_addr, state.clone()).map_err(|source| ServeError::Admin {
        addr: admin_addr,
        source,
    })?;

    let signals = spawn_signal_thread()?;
    let resolved = crate::rollout::spawn_resolver(state.clone()).map_err(ServeError::Signals)?;
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let rate_file = config_state_file(&shared);
    let rate_state = read_rate_state(&rate_file);
    let (events_tx, events) = crossbeam_channel::unbounded();
    let mut controls = Vec::with_capacity(shards);
    let mut joins = Vec::with_capacity(shards);
    let meshes = shard::Mesh::full(shards);
    for (id, (fd, mesh)) in fds.into_iter().zip(meshes).enumerate() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let start = shard::ShardStart {
            id,
            cpu: (!cpus.is_empty()).then(|| cpus[id % cpus.len()]),
            keys: initial.clone(),
            rate_state: rate_state.clone(),
            listener: fd,
            control: rx,
            events: events_tx.clone(),
            mesh,
            audit: audit_tx.clone(),
            rollup: rollup_tx.clone(),
            overlay: initial_overlay.clone(),
        };
        let join = shard::spawn(shared.clone(), start).map_err(|e| ServeError::Shard {
            shard: id,
            reason: e.to_string(),
        })?;
        controls.push(tx);
        joins.push(join);
    }
    // Only the shards hold audit senders now.
    drop(audit_tx);
    drop(rollup_tx);
    for _ in 0..shards {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(ShardEvent::Listening(_)) => {
                state.listening.fetch_add(1, Ordering::AcqRel);
            }
            Ok(_) | Err(_) => {
                return Err(ServeError::Shard {
                    shard: 0,
                    reason: "not every shard reported listening within 10 s".into(),
                });
            }
        }
    }
    crate::overlay::spawn(overlay, state.clone(), controls.clone()).map_err(ServeError::Signals)?;
    let rings = uring.describe();
    tracing::info!("io_uring rings: {rings}");
    let _ = state.io_uring.set(rings);
    if let Err(e) = files.write(admin) {
        tracing::warn!(error = %e, "cannot write the pid file; `keyway reload` will not find this process");
    }
    let bound = Bound {
        listen,
        admin,
        shards,
    };
    tracing::info!(%listen, %admin, shards, "keyway is serving");
    on_ready(&bound);

    let mut rollout = Rollout::new(source, initial, shards);
    let inputs = Inputs {
        signals,
        events,
        resolved,
    };
    control_loop(
        &state,
        &mut rollout,
        &rate_file,
        &controls,
        &inputs,
        audit_writer.as_ref(),
    );
    let events = inputs.events;

    for tx in &controls {
        let _ = tx.send(Control::Drain);
    }
    for join in joins {
        let _ = join.join();
    }
    // Every shard flushed its audit lines before exiting.
    if let Some(w) = audit_writer {
        w.finish();
    }
    if let Some(w) = rollup_writer {
        w.finish();
    }
    // The final rate state, sent by shard 0 as it exited.
    for ev in events.try_iter() {
        if let ShardEvent::RateState(bytes) = ev {
            write_rate_state(&rate_file, &bytes);
        }
    }
    files.remove();
    tracing::info!("stopped");
    Ok(())
}

/// What the control thread waits on.
struct Inputs {
    signals: Receiver<i32>,
    events: Receiver<ShardEvent>,
    resolved: Receiver<crate::rollout::Resolved>,
}

/// The control thread's loop: reload on SIGHUP, track shard swaps, return on SIGTERM/SIGINT.
fn control_loop(
    state: &AdminState,
    rollout: &mut Rollout,
    rate_file: &Path,
    controls: &[Sender<Control>],
    inputs: &Inputs,
    audit: Option<&audit::Writer>,
) {
    let Inputs {
        signals,
        events,
        resolved,
    } = inputs;
    loop {
        crossbeam_channel::select! {
            recv(signals) -> sig => match sig {
                Ok(SIGHUP) => rollout.reload(state, controls),
                Ok(SIGUSR1) => match audit {
                    Some(w) => w.reopen(),
                    None => tracing::info!("SIGUSR1: no audit log to reopen ([audit] path is not set)"),
                },
                Ok(sig) => {
                    tracing::info!(signal = sig, "draining: finishing requests in flight, then exiting");
                    return;
                }
                Err(_) => return,
            },
            recv(events) -> ev => match ev {
                Ok(ShardEvent::RateState(bytes)) => write_rate_state(rate_file, &bytes),
                Ok(ShardEvent::KeysSwapped { shard, generation }) => {
                    rollout.keys_swapped(state, shard, generation);
                }
                Ok(ShardEvent::ConfigSwapped { shard, version }) => {
                    rollout.config_swapped(state, shard, version);
                }
                _ => {}
            },
            recv(resolved) -> found => if let Ok(found) = found {
                rollout.resolved(state, controls, found);
            },
        }
    }
}

/// The rate-limit state file in the state directory.
fn config_state_file(shared: &Shared) -> PathBuf {
    shared.config.server.state_dir.join("ratelimit.state")
}

/// Reads the persisted rate state; a missing file is a clean start, an unreadable one is
/// logged and ignored (never a reason not to start).
fn read_rate_state(path: &Path) -> Option<Arc<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(Arc::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the rate-limit state; starting with empty counters");
            None
        }
    }
}

/// Writes the rate state atomically (temp file + rename) but without `fsync`: it is rewritten
/// every second, and what must survive is a crash of the process (the page cache keeps the
/// file), not of the machine. An `fsync` per second stalled behind other disk writes and let a
/// SIGKILL lose more than a second of counts.
fn write_rate_state(path: &Path, bytes: &[u8]) {
    if let Err(e) = crate::fsutil::write_atomic_unsynced(path, bytes) {
        tracing::warn!(path = %path.display(), error = %e, "cannot persist the rate-limit state; counts since the last write would be lost on a crash");
    }
}

/// Signals arrive on a channel so the control loop can wait on them and on shard events.
fn spawn_signal_thread() -> Result<Receiver<i32>, ServeError> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .map_err(ServeError::Signals)?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("keyway-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .map_err(ServeError::Signals)?;
    Ok(rx)
}

/// One SO_REUSEPORT listener per shard on the same address. With port 0 the first listener
/// picks the port and the others join it.
fn bind_listeners(addr: SocketAddr, n: usize) -> std::io::Result<(Vec<OwnedFd>, SocketAddr)> {
    let mut fds = Vec::with_capacity(n);
    let mut actual = addr;
    for _ in 0..n {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_port(true)?;
        socket.set_reuse_address(true)?;
        socket.set_nodelay(true)?;
        socket.bind(&actual.into())?;
        socket.listen(4096)?;
        if let Some(local) = socket.local_addr()?.as_socket() {
            actual = local;
        }
        fds.push(OwnedFd::from(socket));
    }
    Ok((fds, actual))
}
