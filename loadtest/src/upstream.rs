//! The upstream server: one pinned glommio executor per shard with its own SO_REUSEPORT listener, keep-alive/pipelined HTTP/1.1 connections, canned or echo answers.

use crate::conn::{self, BodyError, ReadBuf};
use crate::echo::{self, Action};
use crate::http::{self, Framing, HeadError, MAX_HEADERS};
use crate::pattern;
use crate::shards::{self, Pinning};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Read buffer per connection; also the largest accepted request head.
const READ_BUF: usize = 64 * 1024;
/// Buffered answers are written once they reach this size (otherwise when the input runs dry).
const FLUSH_AT: usize = 64 * 1024;
/// Canned answers up to this size are copied into the output buffer (so pipelined answers go out in one write).
const INLINE_MAX: usize = 32 * 1024;
/// Largest request body accepted.
const MAX_BODY: u64 = 1 << 32;
/// Requests served on one connection before it is closed (`Connection: close` on the last answer).
const MAX_REQUESTS_PER_CONN: u64 = 10_000_000;
/// Reads attempted while waiting for one request head.
const MAX_HEAD_READS: usize = 4096;
/// Open connections per shard; more are closed at once.
const MAX_CONNS_PER_SHARD: usize = 16_384;
/// Bound on the lingering read after `Connection: close`.
const LINGER: Duration = Duration::from_secs(1);
/// How long a shard may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-process unique connection ids (across shards), starting at 1.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// What `keyway-loadtest upstream` was asked to do.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub listen: SocketAddr,
    /// `None`: the 13-byte `hello, world\n` body; `Some(n)`: n pattern bytes.
    pub body_size: Option<usize>,
    pub echo: bool,
    pub shards: usize,
    pub pinning: Pinning,
    /// Idle limit for each read (and each write) on a connection.
    pub idle_timeout: Duration,
}

/// A prebuilt answer: head plus body, and where the head ends (for HEAD requests).
struct Canned {
    bytes: Vec<u8>,
    head_len: usize,
}

impl Canned {
    fn new(body: &[u8], connection: &str) -> Self {
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n",
            body.len()
        )
        .into_bytes();
        let head_len = bytes.len();
        bytes.extend_from_slice(body);
        Canned { bytes, head_len }
    }
}

/// State shared read-only by all shards.
struct Shared {
    echo: bool,
    idle_timeout: Duration,
    /// HTTP/1.1 keep-alive answer.
    keep_alive: Canned,
    /// HTTP/1.0 keep-alive answer (`Connection: keep-alive`).
    keep_alive_10: Canned,
    /// Answer followed by close (`Connection: close`).
    close: Canned,
}

impl Shared {
    fn new(cfg: &UpstreamConfig) -> Self {
        let body = match cfg.body_size {
            None => b"hello, world\n".to_vec(),
            Some(n) => pattern::to_vec(n),
        };
        Shared {
            echo: cfg.echo,
            idle_timeout: cfg.idle_timeout,
            keep_alive: Canned::new(&body, ""),
            keep_alive_10: Canned::new(&body, "Connection: keep-alive\r\n"),
            close: Canned::new(&body, "Connection: close\r\n"),
        }
    }
}

/// One accepted connection with its reusable buffers.
pub struct Conn {
    pub stream: TcpStream,
    pub rb: ReadBuf,
    /// Answers not yet written.
    pub out: Vec<u8>,
    /// Echo JSON under construction.
    pub json: Vec<u8>,
    pub id: u64,
    /// Requests seen on this connection, including the current one.
    pub requests: u64,
}

impl Conn {
    /// Writes out everything buffered in `out`.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes `out`, then `bytes`, without copying `bytes`.
    pub async fn write_direct(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush().await?;
        self.stream.write_all(bytes).await
    }
}

/// The owned facts about one request needed after its head left the buffer.
pub struct Request {
    pub minor_version: u8,
    pub is_head: bool,
    pub keep_alive: bool,
    pub framing: Framing,
    pub expect_continue: bool,
    pub action: Action,
}

/// What to do with the connection after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Serve the next request.
    Continue,
    /// Flush, half-close, linger briefly, close.
    Close,
    /// Drop the socket now.
    Abort,
}

/// Starts all shards, prints `listening on IP:PORT` once every shard listens, then serves until killed.
pub fn run(cfg: UpstreamConfig) -> Result<(), String> {
    let shared = Arc::new(Shared::new(&cfg));
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::with_capacity(cfg.shards);
    threads.push(spawn_shard(
        0,
        cfg.listen,
        &cfg.pinning,
        &shared,
        tx.clone(),
    )?);
    let addr = wait_listening(&rx, 0)?;
    for i in 1..cfg.shards {
        threads.push(spawn_shard(i, addr, &cfg.pinning, &shared, tx.clone())?);
    }
    drop(tx);
    for i in 1..cfg.shards {
        wait_listening(&rx, i)?;
    }
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "listening on {addr}").map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
    }
    eprintln!(
        "keyway-loadtest upstream: {} shard(s), {}",
        cfg.shards,
        if cfg.echo {
            "echo mode".to_string()
        } else {
            format!("{}-byte body", cfg.body_size.unwrap_or(13))
        }
    );
    for t in threads {
        let _ = t.join();
    }
    Err("a shard stopped".into())
}

fn wait_listening(
    rx: &mpsc::Receiver<Result<SocketAddr, String>>,
    index: usize,
) -> Result<SocketAddr, String> {
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(format!("shard {index} did not start")),
    }
}

fn spawn_shard(
    index: usize,
    addr: SocketAddr,
    pinning: &Pinning,
    shared: &Arc<Shared>,
    tx: mpsc::Sender<Result<SocketAddr, String>>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let pinning = pinning.clone();
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name(format!("upstream-{index}"))
        .spawn(
            move || match shards::make_executor("upstream", &pinning, index) {
                Ok(ex) => ex.run(shard_main(index, addr, shared, tx)),
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            },
        )
        .map_err(|e| format!("shard {index}: cannot spawn thread: {e}"))
}

/// Decrements the shard's open-connection count when a connection task ends.
struct ConnSlot(Rc<Cell<usize>>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

async fn shard_main(
    index: usize,
    addr: SocketAddr,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<SocketAddr, String>>,
) {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = tx.send(Err(format!("shard {index}: cannot listen on {addr}: {e}")));
            return;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    let _ = tx.send(Ok(local));
    drop(tx);
    let open = Rc::new(Cell::new(0usize));
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if open.get() >= MAX_CONNS_PER_SHARD {
                    continue; // dropping the stream closes it
                }
                open.set(open.get() + 1);
                let slot = ConnSlot(Rc::clone(&open));
                let shared = Arc::clone(&shared);
                glommio::spawn_local(async move {
                    serve_conn(stream, &shared).await;
                    drop(slot);
                })
                .detach();
            }
            Err(e) => {
                eprintln!("upstream shard {index}: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_conn(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(shared.idle_timeout));
    let _ = stream.set_write_timeout(Some(shared.idle_timeout));
    let mut c = Conn {
        stream,
        rb: ReadBuf::new(READ_BUF),
        out: Vec::with_capacity(16 * 1024),
        json: Vec::new(),
        id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
        requests: 0,
    };
    for _ in 0..MAX_REQUESTS_PER_CONN {
        match serve_one(&mut c, shared).await {
            Next::Continue => {}
            Next::Close => break,
            Next::Abort => return,
        }
    }
    close_gracefully(&mut c).await;
}

/// Flushes, sends FIN, and reads (discarding) until the peer closes or [`LINGER`] passes, so the peer is not reset before it read the answer.
async fn close_gracefully(c: &mut Conn) {
    if c.flush().await.is_err() {
        return;
    }
    if c.stream.shutdown(Shutdown::Write).await.is_err() {
        return;
    }
    let _ = c.stream.set_read_timeout(Some(LINGER));
    let mut scratch = [0u8; 4096];
    for _ in 0..256 {
        match c.stream.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Buffers a bodiless error answer; the connection is closed after it.
fn error_answer(c: &mut Conn, status: u16) -> Next {
    let _ = write!(
        c.out,
        "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        http::reason(status)
    );
    Next::Close
}

/// Reads and answers one request.
async fn serve_one(c: &mut Conn, shared: &Shared) -> Next {
    let mut req = match read_head(c, shared.echo).await {
        Ok(Some(r)) => r,
        Ok(None) => return Next::Abort,
        Err(status) => return error_answer(c, status),
    };
    c.requests += 1;
    if c.requests >= MAX_REQUESTS_PER_CONN {
        req.keep_alive = false;
    }
    if req.expect_continue && req.minor_version >= 1 && req.framing != Framing::None {
        c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        if c.flush().await.is_err() {
            return Next::Abort;
        }
    }
    let mut hasher = shared.echo.then(Sha256::new);
    let body = conn::read_body(&mut c.rb, &mut c.stream, req.framing, MAX_BODY, |d| {
        if let Some(h) = hasher.as_mut() {
            h.update(d);
        }
    })
    .await;
    let body_len = match body {
        Ok(n) => n,
        Err(BodyError::Chunked(_)) => return error_answer(c, 400),
        Err(BodyError::TooLarge) => return error_answer(c, 413),
        Err(BodyError::Io(_) | BodyError::Eof) => return Next::Abort,
    };
    let next = match hasher {
        Some(h) => echo::respond(c, &req, body_len, &h.finalize()).await,
        None => canned_answer(c, &req, shared).await,
    };
    match next {
        Next::Continue if !req.keep_alive => Next::Close,
        Next::Continue if c.out.len() >= FLUSH_AT => match c.flush().await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Abort,
        },
        other => other,
    }
}

async fn canned_answer(c: &mut Conn, req: &Request, shared: &Shared) -> Next {
    let canned = match (req.keep_alive, req.minor_version) {
        (false, _) => &shared.close,
        (true, 0) => &shared.keep_alive_10,
        (true, _) => &shared.keep_alive,
    };
    let bytes = if req.is_head {
        &canned.bytes[..canned.head_len]
    } else {
        &canned.bytes[..]
    };
    if bytes.len() <= INLINE_MAX {
        c.out.extend_from_slice(bytes);
        Next::Continue
    } else if c.write_direct(bytes).await.is_ok() {
        Next::Continue
    } else {
        Next::Abort
    }
}

/// Waits for a complete request head. `Ok(None)`: the peer closed or failed; `Err(status)`: answer with that error and close.
/// Pending answers are flushed before waiting for more input.
async fn read_head(c: &mut Conn, echo: bool) -> Result<Option<Request>, u16> {
    for _ in 0..MAX_HEAD_READS {
        let parsed = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match http::parse_request(c.rb.data(), &mut headers) {
                Ok(Some(h)) => {
                    let action = if echo {
                        echo::begin_json(&mut c.json, &h);
                        echo::route(h.target)
                    } else {
                        Action::Echo
                    };
                    Some((
                        Request {
                            minor_version: h.minor_version,
                            is_head: h.method == "HEAD",
                            keep_alive: h.keep_alive,
                            framing: h.framing,
                            expect_continue: h.expect_continue,
                            action,
                        },
                        h.head_len,
                    ))
                }
                Ok(None) => None,
                Err(HeadError::TooManyHeaders) => return Err(431),
                Err(_) => return Err(400),
            }
        };
        if let Some((req, head_len)) = parsed {
            c.rb.consume(head_len);
            return Ok(Some(req));
        }
        if c.rb.is_full() {
            return Err(431);
        }
        if c.flush().await.is_err() {
            return Ok(None);
        }
        match c.rb.fill(&mut c.stream).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
    Err(400)
}
