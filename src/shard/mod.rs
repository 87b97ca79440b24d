//! Shards: one glommio executor per CPU, each with its own SO_REUSEPORT listener, pools,
//! counters and rate limiter, driven by messages it polls (never blocks on) from timer tasks:
//! control messages from the control thread, rate-limit deltas from the other shards.
//! Those timers tick every 10 ms while the shard has a client connection open and every
//! [`IDLE_POLL`] while it has none; an accepted connection wakes them at once.

mod probe;
pub mod uring;

pub use crate::context::{RequestIds, ShardCtx, ShardState, Shared};

use crate::clock::unix_ms;
use crate::keytable::KeyTable;
use crate::pipeline::serve_tcp;
use crate::ratelimit::Delta;
use crossbeam_channel::{Receiver, Sender};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::Cell;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::unix::io::FromRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a shard with a client connection open looks at its control channel.
pub const CONTROL_POLL: Duration = Duration::from_millis(10);
/// How often a shard with no client connection open looks at its control channel and at the
/// other shards' rate-limit deltas (a reload is still picked up within this). An idle shard
/// woken every 10 ms by two timers spent ~1 % of a core in the runtime alone.
pub const IDLE_POLL: Duration = Duration::from_millis(100);
/// How often a shard publishes its metrics for the admin listener.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// How often shard 0 hands the rate state to the control thread to persist.
pub const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// How long shard 0, shutting down, waits for the other shards' last rate counts.
pub const FINAL_SYNC_WAIT: Duration = Duration::from_secs(2);
/// How often a shard forgets keys idle past their longest window.
pub const EVICT_EVERY: Duration = Duration::from_secs(10);

/// Messages from the control thread to a shard.
pub enum Control {
    /// Serve this key table from now on (requests in flight finish on the old one).
    Keys(Arc<KeyTable>),
    /// Serve this configuration from now on, with this key table (compiled against it) or,
    /// when `None`, the one served now (requests in flight finish on the old pair).
    Config(Arc<Shared>, Option<Arc<KeyTable>>),
    /// Keys revoked or changed after the serving snapshot was built (the live overlay).
    Overlay(Arc<crate::context::LiveUpdate>),
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
    /// The shard now serves this configuration version ([`Shared::version`]).
    ConfigSwapped {
        shard: usize,
        version: u64,
    },
    /// Encoded rate-limit state (windows >= 1 min, credits) to write to the state directory.
    RateState(Vec<u8>),
    Exited(usize),
}

/// Rate-limit deltas from one shard to another.
pub struct PeerMsg {
    pub from: usize,
    pub deltas: Arc<[Delta]>,
    /// The sender's last deltas: it is shutting down (shard 0 waits for every other shard's
    /// last message before it persists the counts).
    pub last: bool,
}

/// A shard's links to the others: its inbox and a sender to every shard (its own unused).
pub struct Mesh {
    pub inbox: Receiver<PeerMsg>,
    pub peers: Vec<Sender<PeerMsg>>,
}

impl Mesh {
    /// Sends `deltas` from shard `from` to every other shard (a failed send: that shard is
    /// gone, nothing to do).
    fn send_all(&self, from: usize, deltas: &[Delta], last: bool) {
        let batch: Arc<[Delta]> = deltas.into();
        for (shard, peer) in self.peers.iter().enumerate() {
            if shard != from {
                let _ = peer.send(PeerMsg {
                    from,
                    deltas: batch.clone(),
                    last,
                });
            }
        }
    }

    /// One mesh per shard, fully connected.
    pub fn full(shards: usize) -> Vec<Mesh> {
        let (txs, rxs): (Vec<_>, Vec<_>) =
            (0..shards).map(|_| crossbeam_channel::unbounded()).unzip();
        rxs.into_iter()
            .map(|inbox| Mesh {
                inbox,
                peers: txs.clone(),
            })
            .collect()
    }
}

/// What a shard starts with, besides the shared state.
pub struct ShardStart {
    pub id: usize,
    pub cpu: Option<usize>,
    pub keys: Option<Arc<KeyTable>>,
    /// Persisted rate state to restore (every shard restores the whole-gateway view).
    pub rate_state: Option<Arc<Vec<u8>>>,
    pub listener: OwnedFd,
    pub control: Receiver<Control>,
    pub events: Sender<ShardEvent>,
    pub mesh: Mesh,
    /// Where audit batches go, when `[audit] path` is set.
    pub audit: Option<Sender<crate::audit::Batch>>,
    /// The live overlay as read at start (before the first request).
    pub overlay: Option<Arc<crate::context::LiveUpdate>>,
    /// Where finished usage minutes go (`None`: rollups off).
    pub rollup: Option<Sender<crate::rollup::Batch>>,
}

/// Starts a shard on its own thread, pinned to its CPU when given.
pub fn spawn(
    shared: Arc<Shared>,
    start: ShardStart,
) -> std::io::Result<glommio::ExecutorJoinHandle<()>> {
    let placement = match start.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name(&format!("keyway-shard-{}", start.id))
        // The data plane does no file I/O through glommio: keep locked DMA memory small.
        .io_memory(512 << 10)
        .ring_depth(256)
        .spawn(move || run(shared, start))
        .map_err(|e| std::io::Error::other(e.to_string()))
}

async fn run(shared: Arc<Shared>, start: ShardStart) {
    let ShardStart {
        id,
        keys,
        rate_state,
        listener,
        control,
        events,
        mesh,
        audit,
        overlay,
        rollup,
        ..
    } = start;
    let ctx = ShardState::start(id, shared, keys, audit, rollup);
    if let Some(update) = overlay {
        ctx.apply_live(&update);
    }
    if let Some(bytes) = rate_state {
        let report = ctx.limiter.borrow_mut().restore_state(&bytes, unix_ms());
        if id == 0 && !report.is_clean() {
            tracing::warn!(?report, "rate-limit state restored only in part");
        }
    }
    // SAFETY: the fd is a bound, listening TCP socket handed over to this shard alone.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let (control_nap, control_wake) = Nap::new();
    let (sync_nap, sync_wake) = Nap::new();
    let wake = [control_wake, sync_wake];
    let interval = ctx.current().shared.config.ratelimit.sync_interval;
    let accept = glommio::spawn_local(accept_loop(ctx.clone(), listener, wake));
    let sync = glommio::spawn_local(sync_loop(
        ctx.clone(),
        mesh,
        events.clone(),
        sync_nap,
        interval,
    ));
    let mut probes = probe::start(&ctx.current(), Vec::new()).await;
    let _ = events.send(ShardEvent::Listening(id));

    let mut published = Instant::now();
    let mut busy = true;
    'control: loop {
        let woken = control_nap
            .sleep(if busy { CONTROL_POLL } else { IDLE_POLL })
            .await;
        ctx.now_unix.set(crate::clock::unix_now());
        busy = woken || has_clients(&ctx);
        for msg in control.try_iter() {
            busy = true;
            match msg {
                Control::Keys(table) => {
                    let generation = table.snapshot.generation();
                    ctx.swap_keys(table);
                    let _ = events.send(ShardEvent::KeysSwapped {
                        shard: id,
                        generation,
                    });
                }
                Control::Config(shared, table) => {
                    let version = shared.version;
                    let generation = table.as_ref().map(|t| t.snapshot.generation());
                    ctx.swap_config(shared, table);
                    probes = probe::start(&ctx.current(), probes).await;
                    if let Some(generation) = generation {
                        let _ = events.send(ShardEvent::KeysSwapped {
                            shard: id,
                            generation,
                        });
                    }
                    let _ = events.send(ShardEvent::ConfigSwapped { shard: id, version });
                }
                Control::Overlay(update) => ctx.apply_live(&update),
                Control::Drain => break 'control,
            }
        }
        flush_audit(&ctx);
        flush_rollup(&ctx, false);
        if published.elapsed() >= PUBLISH_EVERY {
            ctx.copy_pool_health();
            publish(&ctx);
            published = Instant::now();
        }
    }

    ctx.draining.set(true);
    accept.cancel().await;
    probe::stop(probes).await;
    let deadline = Instant::now() + ctx.current().shared.config.timeouts.drain;
    while ctx.in_flight.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(CONTROL_POLL).await;
    }
    // The sync loop sends this shard's last counts (shard 0: takes in everyone's) and ends.
    ctx.rates_final.set(true);
    sync.await;
    for pool in &ctx.current().pools {
        pool.clear();
    }
    flush_audit(&ctx);
    flush_rollup(&ctx, true);
    publish(&ctx);
    if id == 0 {
        let mut state = Vec::new();
        ctx.limiter.borrow().encode_state(unix_ms(), &mut state);
        let _ = events.send(ShardEvent::RateState(state));
    }
    let _ = events.send(ShardEvent::Exited(id));
}

/// Sends finished usage minutes to the rollup writer; with `all` (at shutdown) everything
/// counted, and closes this shard's channel.
fn flush_rollup(ctx: &ShardState, all: bool) {
    let labels = &ctx.current().shared.slots.route_labels;
    let mut rollup = ctx.rollup.borrow_mut();
    if all {
        rollup.close(crate::clock::unix_now(), labels);
    } else {
        rollup.flush(ctx.now_unix.get(), labels, false);
    }
}

/// Hands this shard's metrics to the admin listener.
fn publish(state: &ShardState) {
    state
        .current()
        .shared
        .published
        .publish(state.id, &state.metrics.borrow());
}

/// Hands this shard's audit lines to the writer; counts what the full queue refused.
fn flush_audit(ctx: &ShardState) {
    if let Some(audit) = &ctx.audit {
        let dropped = audit.flush();
        if dropped > 0 {
            ctx.metrics.borrow_mut().audit_dropped += dropped;
        }
    }
}

/// True while a client connection is open or a request is in flight.
fn has_clients(ctx: &ShardState) -> bool {
    ctx.in_flight.get() > 0 || ctx.metrics.borrow().connections_active > 0
}

/// A timer loop's sleep, cut short by its [`Wake`] when a connection arrives while it naps
/// for [`IDLE_POLL`].
struct Nap {
    napping: Rc<Cell<bool>>,
    woken: LocalReceiver<()>,
}

struct Wake {
    napping: Rc<Cell<bool>>,
    wake: LocalSender<()>,
}

impl Nap {
    fn new() -> (Nap, Wake) {
        let napping = Rc::new(Cell::new(false));
        let (wake, woken) = local_channel::new_bounded(1);
        let wake = Wake {
            napping: napping.clone(),
            wake,
        };
        (Nap { napping, woken }, wake)
    }

    /// Sleeps `d`; a nap ([`IDLE_POLL`]) ends early when a connection is accepted. True when
    /// woken so: the connection may not be counted yet, but the loop is busy again.
    async fn sleep(&self, d: Duration) -> bool {
        if d < IDLE_POLL {
            glommio::timer::sleep(d).await;
            return false;
        }
        self.napping.set(true);
        let woken = futures_lite::future::or(
            async {
                glommio::timer::sleep(d).await;
                false
            },
            async {
                match self.woken.recv().await {
                    Some(()) => true,
                    // The accept loop is gone (draining): nothing will wake us, just sleep.
                    None => futures_lite::future::pending().await,
                }
            },
        )
        .await;
        self.napping.set(false);
        woken
    }
}

impl Wake {
    fn wake(&self) {
        if self.napping.replace(false) {
            let _ = self.wake.try_send(());
        }
    }
}

async fn accept_loop(ctx: Rc<ShardState>, listener: TcpListener, wake: [Wake; 2]) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if wake.iter().any(|w| w.napping.get()) {
                    // The clock was last read up to IDLE_POLL ago: this request needs it now.
                    ctx.now_unix.set(crate::clock::unix_now());
                    wake.iter().for_each(Wake::wake);
                }
                glommio::spawn_local(serve_tcp(ctx.clone(), stream)).detach();
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(shard = ctx.id, error = %e, "accept failed; retrying in 10 ms");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The shard is shutting down with no request in flight: its last deltas go to every other
/// shard, marked last; shard 0 takes in the others' last deltas (waiting at most
/// [`FINAL_SYNC_WAIT`]) so the counts it persists miss nothing.
async fn final_sync(ctx: &ShardState, mesh: &Mesh) {
    let mut deltas = Vec::new();
    ctx.limiter
        .borrow_mut()
        .drain_deltas(unix_ms(), &mut deltas);
    mesh.send_all(ctx.id, &deltas, true);
    if ctx.id != 0 {
        return;
    }
    let mut waiting = mesh.peers.len().saturating_sub(1);
    let deadline = Instant::now() + FINAL_SYNC_WAIT;
    while waiting > 0 && Instant::now() < deadline {
        for msg in mesh.inbox.try_iter() {
            ctx.limiter
                .borrow_mut()
                .apply_remote(msg.from, &msg.deltas, unix_ms());
            waiting -= usize::from(msg.last);
        }
        if waiting > 0 {
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
    }
    if waiting > 0 {
        tracing::warn!(
            shards = waiting,
            "shutting down without the last rate counts of some shards; they may be lost"
        );
    }
}

/// Every `sync_interval`: send this shard's new counts to the others and take in theirs;
/// shard 0 also hands the state to the control thread to persist. Never blocks.
/// With no client connection open and nothing to send it naps for [`IDLE_POLL`] instead: what
/// the others sent then waits in the inbox, and an accepted connection wakes the loop to take
/// it in before its first request is counted.
/// The interval is the one at start: a reload that changes `[ratelimit] sync_interval` takes
/// effect at the next restart (the other shards' reserves are sized by it).
async fn sync_loop(
    ctx: Rc<ShardState>,
    mesh: Mesh,
    events: Sender<ShardEvent>,
    nap: Nap,
    interval: Duration,
) {
    let mut deltas = Vec::new();
    let mut state = Vec::new();
    let mut persisted = Instant::now();
    let mut evicted = Instant::now();
    let mut busy = true;
    loop {
        let idle = IDLE_POLL.max(interval);
        let woken = nap.sleep(if busy { interval } else { idle }).await;
        if ctx.rates_final.get() {
            return final_sync(&ctx, &mesh).await;
        }
        let now = unix_ms();
        let mut limiter = ctx.limiter.borrow_mut();
        limiter.drain_deltas(now, &mut deltas);
        busy = woken || !deltas.is_empty() || has_clients(&ctx);
        if !deltas.is_empty() {
            mesh.send_all(ctx.id, &deltas, false);
            deltas.clear();
        }
        for msg in mesh.inbox.try_iter() {
            limiter.apply_remote(msg.from, &msg.deltas, now);
        }
        if ctx.id == 0 && persisted.elapsed() >= PERSIST_EVERY {
            state.clear();
            limiter.encode_state(now, &mut state);
            let _ = events.send(ShardEvent::RateState(state.clone()));
            persisted = Instant::now();
        }
        if evicted.elapsed() >= EVICT_EVERY {
            limiter.evict_idle(now);
            evicted = Instant::now();
        }
    }
}
