//! `keyway serve`: bind the listeners, start the shards and the admin listener, then wait
//! for signals on the control thread (SIGTERM/SIGINT drain and exit).

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::shard::{self, Control, ShardEvent, Shared};
use signal_hook::consts::{SIGINT, SIGTERM};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Where a running gateway listens (printed once at start).
pub struct Bound {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub shards: usize,
}

/// Runs the gateway until SIGTERM or SIGINT. `on_ready` is called once every shard listens.
pub fn serve(config: Config, on_ready: impl FnOnce(&Bound)) -> Result<(), ServeError> {
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
    let shared = Arc::new(Shared::new(config, shards));
    let state = Arc::new(AdminState {
        shared: shared.clone(),
        shards,
        listening: Default::default(),
    });
    let admin = admin::start(admin_addr, state.clone()).map_err(|source| ServeError::Admin {
        addr: admin_addr,
        source,
    })?;

    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(ServeError::Signals)?;
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let (events_tx, events) = crossbeam_channel::unbounded();
    let mut controls = Vec::with_capacity(shards);
    let mut joins = Vec::with_capacity(shards);
    for (id, fd) in fds.into_iter().enumerate() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let cpu = (!cpus.is_empty()).then(|| cpus[id % cpus.len()]);
        let join =
            shard::spawn(id, cpu, shared.clone(), fd, rx, events_tx.clone()).map_err(|e| {
                ServeError::Shard {
                    shard: id,
                    reason: e.to_string(),
                }
            })?;
        controls.push(tx);
        joins.push(join);
    }
    for _ in 0..shards {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(ShardEvent::Listening(_)) => {
                state.listening.fetch_add(1, Ordering::AcqRel);
            }
            Ok(ShardEvent::Exited(id)) => {
                return Err(ServeError::Shard {
                    shard: id,
                    reason: "it stopped before listening".into(),
                });
            }
            Err(_) => {
                return Err(ServeError::Shard {
                    shard: 0,
                    reason: "no shard reported listening within 10 s".into(),
                });
            }
        }
    }
    let bound = Bound {
        listen,
        admin,
        shards,
    };
    tracing::info!(%listen, %admin, shards, "keyway is serving");
    on_ready(&bound);

    if let Some(signal) = signals.forever().next() {
        tracing::info!(
            signal,
            "draining: finishing requests in flight, then exiting"
        );
    }
    for tx in &controls {
        let _ = tx.send(Control::Drain);
    }
    for join in joins {
        let _ = join.join();
    }
    tracing::info!("stopped");
    Ok(())
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
