//! Shards: one glommio executor per CPU, each with its own SO_REUSEPORT listener, pools and
//! counters, driven by control messages it polls (never blocks on) from a timer task.

pub mod context;

pub use context::{RequestIds, ShardCtx, Shared};

use crate::keys::Snapshot;
use crate::pipeline::serve_connection;
use crossbeam_channel::{Receiver, Sender};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::unix::io::FromRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a shard looks at its control channel.
pub const CONTROL_POLL: Duration = Duration::from_millis(10);
/// How often a shard publishes its metrics for the admin listener.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// Messages from the control thread to a shard.
pub enum Control {
    /// Serve this key table from now on (requests in flight finish on the old one).
    Keys(Arc<Snapshot>),
    /// Stop accepting, finish requests in flight (up to `timeouts.drain`), then exit.
    Drain,
}

/// Events from shards to the control thread.
pub enum ShardEvent {
    Listening(usize),
    /// The shard now serves the key table of this generation.
    KeysSwapped {
        shard: usize,
        generation: u64,
    },
    Exited(usize),
}

/// Starts shard `id` on its own thread, pinned to `cpu` when given.
pub fn spawn(
    id: usize,
    cpu: Option<usize>,
    shared: Arc<Shared>,
    keys: Option<Arc<Snapshot>>,
    listener: OwnedFd,
    control: Receiver<Control>,
    events: Sender<ShardEvent>,
) -> std::io::Result<glommio::ExecutorJoinHandle<()>> {
    let placement = match cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name(&format!("keyway-shard-{id}"))
        // The data plane does no file I/O through glommio: keep locked DMA memory small.
        .io_memory(512 << 10)
        .ring_depth(256)
        .spawn(move || run(id, shared, keys, listener, control, events))
        .map_err(|e| std::io::Error::other(e.to_string()))
}

async fn run(
    id: usize,
    shared: Arc<Shared>,
    keys: Option<Arc<Snapshot>>,
    listener: OwnedFd,
    control: Receiver<Control>,
    events: Sender<ShardEvent>,
) {
    let ctx = Rc::new(ShardCtx::new(id, shared, keys));
    // SAFETY: the fd is a bound, listening TCP socket handed over to this shard alone.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let accept = glommio::spawn_local(accept_loop(ctx.clone(), listener));
    let _ = events.send(ShardEvent::Listening(id));

    let mut published = Instant::now();
    'control: loop {
        glommio::timer::sleep(CONTROL_POLL).await;
        ctx.now_unix.set(crate::reload::unix_now());
        for msg in control.try_iter() {
            match msg {
                Control::Keys(snapshot) => {
                    let generation = snapshot.generation();
                    ctx.keys.replace(Some(Rc::new(snapshot)));
                    let _ = events.send(ShardEvent::KeysSwapped {
                        shard: id,
                        generation,
                    });
                }
                Control::Drain => break 'control,
            }
        }
        if published.elapsed() >= PUBLISH_EVERY {
            ctx.shared.published.publish(id, &ctx.metrics.borrow());
            published = Instant::now();
        }
    }

    ctx.draining.set(true);
    accept.cancel().await;
    let deadline = Instant::now() + ctx.shared.config.timeouts.drain;
    while ctx.in_flight.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(CONTROL_POLL).await;
    }
    for pool in &ctx.pools {
        pool.clear();
    }
    ctx.shared.published.publish(id, &ctx.metrics.borrow());
    let _ = events.send(ShardEvent::Exited(id));
}

async fn accept_loop(ctx: Rc<ShardCtx>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve_connection(ctx.clone(), stream)).detach();
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(shard = ctx.id, error = %e, "accept failed; retrying in 10 ms");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
