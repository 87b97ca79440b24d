//! A per-shard keep-alive pool for one named upstream: round-robin over its servers, at most
//! `pool_size` connections per server, a bounded wait queue beyond that.
//!
//! A connection goes back to the pool only through [`Pool::checkin`], which the pipeline calls
//! after a response was relayed completely and the upstream allowed reuse. Dropping a
//! [`Lease`] instead closes the socket: a connection that failed, timed out or was left in the
//! middle of a message is never reused. An idle connection is checked to be quiet (no stray
//! bytes, no EOF) when it is taken out again.
//!
//! Each server's passive health (keyway-core's `health`) is kept per shard: failures in a
//! row (connect refused or timed out, a close or reset before any response byte, a response
//! timeout or a broken head), and optionally 5xx runs, take it out of the rotation for a
//! backoff that doubles up to a cap; then one trial request at a time may use it. A server
//! leaving the rotation drops its idle connections. When every server is out, checkout says
//! so ([`PoolError::Down`]) instead of trying them.

use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use keyway_core::config::Upstream;
use keyway_core::health::{Change, Ejection, Health, Pick};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum PoolError {
    /// Every connection is busy and the wait queue is full, or the wait timed out.
    Overloaded,
    /// No server accepted a connection.
    Connect(std::io::Error),
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Every server is out of the rotation; the first may be tried again in this many ms.
    Down { retry_in_ms: u64 },
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

struct Server {
    addr: SocketAddr,
    idle: RefCell<Vec<Idle>>,
    permits: Rc<Semaphore>,
    waiting: Cell<usize>,
    health: Cell<Health>,
}

/// A connection checked out of the pool.
pub struct Lease {
    pub stream: TcpStream,
    /// Taken from the idle list (so it may have been closed by the upstream meanwhile).
    pub reused: bool,
    server: usize,
    _permit: StaticPermit,
}

impl Lease {
    pub fn server_addr<'a>(&self, pool: &'a Pool) -> &'a SocketAddr {
        &pool.servers[self.server].addr
    }

    /// Which of the pool's servers this connection goes to.
    pub fn server(&self) -> usize {
        self.server
    }
}

pub struct Pool {
    pub name: Rc<str>,
    servers: Vec<Server>,
    next: Cell<usize>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    queue: usize,
    ejection: Ejection,
    /// Health times are milliseconds since this instant.
    origin: Instant,
    /// Times a server left the rotation.
    ejections: Cell<u64>,
}

impl Pool {
    /// The pool of one upstream for one shard; `connect_timeout` is the upstream's own or
    /// the default, `idle_timeout` how long an idle connection is kept.
    pub fn new(up: &Upstream, connect_timeout: Duration, idle_timeout: Duration) -> Pool {
        Pool {
            name: up.name.as_str().into(),
            servers: up
                .servers
                .iter()
                .map(|&addr| Server {
                    addr,
                    idle: RefCell::new(Vec::with_capacity(up.pool_size.min(1024))),
                    permits: Rc::new(Semaphore::new(up.pool_size as u64)),
                    waiting: Cell::new(0),
                    health: Cell::new(Health::default()),
                })
                .collect(),
            next: Cell::new(0),
            connect_timeout,
            idle_timeout,
            queue: up.queue,
            // A group of one never ejects (as nginx): leaving the rotation would only turn
            // its failures into 503s.
            ejection: if up.servers.len() > 1 {
                up.ejection
            } else {
                Ejection {
                    max_fails: 0,
                    max_5xx: 0,
                    ..up.ejection
                }
            },
            origin: Instant::now(),
            ejections: Cell::new(0),
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// A connection to one of the servers in the rotation, starting with the next in turn:
    /// an idle one if there is one, else a new one. A server that refuses is skipped for the
    /// next one, each tried at most once; `avoid` (the server a request just failed on) is
    /// tried last, and only if no other is in the rotation. `connect` overrides the pool's
    /// connect timeout (a route's own), which also bounds the wait for a busy server.
    pub async fn checkout(
        &self,
        now: Instant,
        avoid: Option<usize>,
        connect: Option<Duration>,
    ) -> Result<Lease, PoolError> {
        let connect_timeout = connect.unwrap_or(self.connect_timeout);
        let n = self.servers.len();
        let first = self.next.get();
        self.next.set((first + 1) % n);
        let ms = self.ms(now);
        // None at the end: every server was out of the rotation.
        let mut last_err = None;
        let order = (0..n)
            .map(|i| (first + i) % n)
            .filter(|&s| Some(s) != avoid)
            .chain(avoid.filter(|&s| s < n && n == 1));
        for s in order {
            let server = &self.servers[s];
            let mut health = server.health.get();
            let pick = health.pick(ms, &self.ejection);
            server.health.set(health);
            if pick == Pick::Out {
                continue;
            }
            let permit = match server.permits.try_acquire_static_permit(1) {
                Ok(p) => p,
                Err(_) => {
                    if server.waiting.get() >= self.queue {
                        last_err = Some(PoolError::Overloaded);
                        continue;
                    }
                    server.waiting.set(server.waiting.get() + 1);
                    let wait = glommio::timer::timeout(connect_timeout, async {
                        server.permits.acquire_static_permit(1).await
                    })
                    .await;
                    server.waiting.set(server.waiting.get() - 1);
                    match wait {
                        Ok(p) => p,
                        Err(_) => {
                            last_err = Some(PoolError::Overloaded);
                            continue;
                        }
                    }
                }
            };
            if let Some(stream) = self.take_idle(server, now) {
                return Ok(Lease {
                    stream,
                    reused: true,
                    server: s,
                    _permit: permit,
                });
            }
            match TcpStream::connect_timeout(server.addr, connect_timeout).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Lease {
                        stream,
                        reused: false,
                        server: s,
                        _permit: permit,
                    });
                }
                Err(e) => {
                    let e = std::io::Error::from(e);
                    self.failed(s, Instant::now());
                    last_err = Some(if e.kind() == std::io::ErrorKind::TimedOut {
                        PoolError::ConnectTimeout
                    } else {
                        PoolError::Connect(e)
                    });
                }
            }
        }
        Err(last_err.unwrap_or_else(|| PoolError::Down {
            retry_in_ms: self.retry_in_ms(ms),
        }))
    }

    /// Milliseconds until the first ejected server may be tried again.
    fn retry_in_ms(&self, ms: u64) -> u64 {
        let out = self.servers.iter().map(|s| s.health.get().out_for(ms));
        out.min().unwrap_or(0)
    }

    /// The server `server` failed a request (see the module docs). Returns how long it left
    /// the rotation for, if this ejected it.
    pub fn failed(&self, server: usize, now: Instant) -> Option<u64> {
        let change = self.change(server, |h, ms, p| h.failure(ms, p), now);
        match change {
            Change::Ejected(ms) => Some(ms),
            _ => None,
        }
    }

    /// An active health check of `server` passed: it is in the rotation again at once.
    pub fn probe_passed(&self, server: usize, now: Instant) {
        self.change(server, |h, _, _| h.success(), now);
    }

    /// The server `server` answered with a response head of this status.
    pub fn answered(&self, server: usize, status: u16, now: Instant) {
        self.change(server, |h, ms, p| h.status(status, ms, p), now);
    }

    fn change(
        &self,
        server: usize,
        f: impl FnOnce(&mut Health, u64, &Ejection) -> Change,
        now: Instant,
    ) -> Change {
        let s = &self.servers[server];
        let mut health = s.health.get();
        let change = f(&mut health, self.ms(now), &self.ejection);
        s.health.set(health);
        match change {
            Change::Ejected(ms) => {
                s.idle.borrow_mut().clear();
                self.ejections.set(self.ejections.get() + 1);
                tracing::warn!(
                    upstream = %self.name, server = %s.addr, backoff_ms = ms,
                    "upstream server out of the rotation after failing; it gets a trial request when the backoff ends"
                );
            }
            Change::Restored => {
                tracing::info!(upstream = %self.name, server = %s.addr, "upstream server back in the rotation");
            }
            Change::None => {}
        }
        change
    }

    /// Times a server of this pool left the rotation.
    pub fn ejections(&self) -> u64 {
        self.ejections.get()
    }

    /// Whether each server is out of the rotation now, in config order.
    pub fn out_flags(&self, now: Instant) -> impl Iterator<Item = bool> + '_ {
        let ms = self.ms(now);
        self.servers
            .iter()
            .map(move |s| s.health.get().is_out(ms, &self.ejection))
    }

    /// A fresh connection to the same server as `lease` (after a reused one proved dead);
    /// `connect` as in [`Pool::checkout`].
    pub async fn reconnect(
        &self,
        lease: Lease,
        connect: Option<Duration>,
    ) -> Result<Lease, PoolError> {
        let Lease {
            server, _permit, ..
        } = lease;
        let addr = self.servers[server].addr;
        match TcpStream::connect_timeout(addr, connect.unwrap_or(self.connect_timeout)).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                Ok(Lease {
                    stream,
                    reused: false,
                    server,
                    _permit,
                })
            }
            Err(e) => {
                let e = std::io::Error::from(e);
                Err(if e.kind() == std::io::ErrorKind::TimedOut {
                    PoolError::ConnectTimeout
                } else {
                    PoolError::Connect(e)
                })
            }
        }
    }

    /// Returns a connection that finished a message cleanly and may carry another.
    pub fn checkin(&self, lease: Lease, now: Instant) {
        let server = &self.servers[lease.server];
        server.idle.borrow_mut().push(Idle {
            stream: lease.stream,
            since: now,
        });
        // The permit drops here and wakes a waiter, who will find this connection idle.
    }

    fn take_idle(&self, server: &Server, now: Instant) -> Option<TcpStream> {
        let mut idle = server.idle.borrow_mut();
        // Most recently used first: it is the least likely to have been closed by the peer.
        while let Some(conn) = idle.pop() {
            if now.saturating_duration_since(conn.since) < self.idle_timeout
                && is_quiet(&conn.stream)
            {
                return Some(conn.stream);
            }
        }
        None
    }

    /// Drops every idle connection (shutdown).
    pub fn clear(&self) {
        for s in &self.servers {
            s.idle.borrow_mut().clear();
        }
    }

    /// Requests are waiting for a connection to the server `lease` holds one of.
    pub fn contended(&self, lease: &Lease) -> bool {
        self.servers[lease.server].waiting.get() > 0
    }

    pub fn idle_count(&self) -> usize {
        self.servers.iter().map(|s| s.idle.borrow().len()).sum()
    }
}

/// Whether an idle connection has nothing to say. Bytes from an idle upstream are never an
/// answer to a request not yet sent: a faulty upstream's stray bytes after a HEAD/204/304
/// answer would otherwise become the next client's response. EOF or an error means the
/// upstream closed it meanwhile. Either way the connection is dropped and the next idle or a
/// new one is used.
///
/// The ring usually knows already, at no cost: the read that ended the last response left a
/// readiness poll armed on the socket (the patched glommio reports on it, vendor/README.md),
/// and a poll that has not fired means nothing arrived, as of the completions reaped this
/// loop turn. Only when no poll is armed is the kernel asked, with a peek.
fn is_quiet(stream: &TcpStream) -> bool {
    match stream.read_readiness() {
        Some(fired) => !fired,
        None => peek_quiet(stream),
    }
}

/// The kernel's answer to [`is_quiet`]: a non-blocking one-byte peek that consumes nothing.
fn peek_quiet(stream: &impl AsRawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv writes at most 1 byte into `byte`, which outlives the call; the fd is open
    // for as long as `stream` is borrowed.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast::<libc::c_void>(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

#[cfg(test)]
mod tests {
    use super::{is_quiet, peek_quiet};
    use futures_lite::AsyncReadExt;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// Waits (bounded) until `quiet` says no more.
    fn speaks(quiet: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !quiet() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn the_peek_is_quiet_until_the_peer_writes_or_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        assert!(peek_quiet(&ours));
        peer.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        assert!(speaks(|| peek_quiet(&ours)), "stray bytes must be seen");
        // Peeking consumed nothing: the bytes are still there.
        assert!(!peek_quiet(&ours));

        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        assert!(peek_quiet(&ours));
        drop(peer);
        assert!(speaks(|| peek_quiet(&ours)), "EOF must be seen");
    }

    /// Waits (bounded, on the executor) until `stream` is no longer quiet.
    async fn loud(stream: &glommio::net::TcpStream) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !is_quiet(stream) {
                return true;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// The pool's own path: after a read that did not fill its buffer, the ring's armed poll
    /// answers, and it sees stray bytes and EOF as the peek does.
    #[test]
    fn the_ring_knows_when_an_idle_connection_speaks_or_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peers = std::thread::spawn(move || {
            let mut out = Vec::new();
            for _ in 0..2 {
                let (mut peer, _) = listener.accept().unwrap();
                peer.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
                out.push(peer);
            }
            out
        });
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .make()
            .unwrap()
            .run(async move {
                let mut streams = Vec::new();
                let mut buf = [0u8; 256];
                for _ in 0..2 {
                    let mut s = glommio::net::TcpStream::connect(addr).await.unwrap();
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0 && n < buf.len());
                    assert_eq!(
                        s.read_readiness(),
                        Some(false),
                        "a poll is armed, not fired"
                    );
                    assert!(is_quiet(&s));
                    streams.push(s);
                }
                let mut peers = peers.join().unwrap();
                peers[0].write_all(b"stray").unwrap();
                assert!(loud(&streams[0]).await, "stray bytes must be seen");
                assert_eq!(streams[0].read_readiness(), Some(true));
                drop(peers.pop());
                assert!(loud(&streams[1]).await, "EOF must be seen");
            });
    }
}
