//! The load generator: keep-alive client connections on pinned glommio shards, closed loop or open loop (fixed schedule, latency from the scheduled time), stopping at the duration or request budget.

use crate::conn::{self, BodyError, ReadBuf};
use crate::http;
use crate::report::{self, ErrorKind, RunInfo, Stats};
use crate::shards::{self, Pinning};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::timer::sleep;
use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set by the signal thread: finish now and report.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Longest measured duration accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(300);
/// Longest warmup accepted.
pub const MAX_WARMUP: Duration = Duration::from_secs(60);
/// Most connections accepted.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Response read buffer per connection (and the largest response head).
const READ_BUF: usize = 64 * 1024;
/// Largest response body read.
const MAX_BODY: u64 = 1 << 32;
/// Interim (1xx) responses skipped per request.
const MAX_INTERIM: usize = 8;
/// Reads attempted while waiting for one response head.
const MAX_HEAD_READS: usize = 4096;
/// Pause after a failed connect.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// How often shards look at the clock and the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Grace period between spawning the shards and starting the clock.
const START_DELAY: Duration = Duration::from_millis(20);

/// What `keyway-loadtest run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: SocketAddr,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: u64,
    /// Open loop at this many requests per second overall.
    pub rate: Option<f64>,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub shards: usize,
    pub pinning: Pinning,
    /// Per-read/write/connect timeout.
    pub timeout: Duration,
    pub json: bool,
}

/// Builds the request every connection sends.
pub fn request_bytes(cfg: &RunConfig) -> Vec<u8> {
    let mut r = format!("GET {} HTTP/1.1\r\n", cfg.path);
    if !cfg
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"))
    {
        r.push_str(&format!("Host: {}\r\n", cfg.target));
    }
    for (n, v) in &cfg.headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Runs the load and prints the report to stdout.
pub fn run(cfg: RunConfig) -> Result<(), String> {
    let cfg = Arc::new(cfg);
    let request = Arc::new(request_bytes(&cfg));
    let shards = cfg.shards.clamp(1, cfg.connections.max(1));
    let start = Instant::now() + START_DELAY;
    let mut threads = Vec::with_capacity(shards);
    for s in 0..shards {
        // Connections are dealt round-robin: shard s gets global indices s, s + shards, ...
        let indices: Vec<usize> = (s..cfg.connections).step_by(shards).collect();
        let (cfg, request) = (Arc::clone(&cfg), Arc::clone(&request));
        let budget = share(cfg.max_requests, shards, s);
        let t = std::thread::Builder::new()
            .name(format!("load-{s}"))
            .spawn(move || -> Result<Stats, String> {
                let ex = shards::make_executor("load", &cfg.pinning, s)?;
                Ok(ex.run(shard_main(cfg, request, indices, start, budget)))
            })
            .map_err(|e| format!("cannot spawn shard thread: {e}"))?;
        threads.push(t);
    }
    let mut total = Stats::default();
    for t in threads {
        let s = t.join().map_err(|_| "a shard panicked".to_string())??;
        total.merge(&s);
    }
    let target = cfg.target.to_string();
    let info = RunInfo {
        target: &target,
        connections: cfg.connections,
        shards,
        rate: cfg.rate,
        warmup: cfg.warmup,
    };
    let mut out = io::stdout().lock();
    let res = if cfg.json {
        writeln!(out, "{}", report::json(&info, &total))
    } else {
        report::text(&mut out, &info, &total)
    };
    res.and_then(|_| out.flush()).map_err(|e| e.to_string())
}

/// Shard `index`'s part of `total` split over `n` shards.
fn share(total: u64, n: usize, index: usize) -> u64 {
    let n = n as u64;
    total / n + u64::from((index as u64) < total % n)
}

/// State shared by the connections of one shard.
struct Shard {
    cfg: Arc<RunConfig>,
    request: Arc<Vec<u8>>,
    start: Instant,
    measure_start: Instant,
    deadline: Instant,
    /// Measured requests this shard may still start.
    budget: Cell<u64>,
    /// Open loop: time between two requests of one connection.
    interval: Option<Duration>,
    stats: RefCell<Stats>,
}

impl Shard {
    fn over(&self, now: Instant) -> bool {
        now >= self.deadline || STOP.load(Ordering::Relaxed)
    }

    fn take_budget(&self) -> bool {
        let b = self.budget.get();
        if b == 0 {
            return false;
        }
        self.budget.set(b - 1);
        true
    }
}

/// Signals the shard's completion semaphore when a connection task ends or is dropped.
struct Finished(Rc<Semaphore>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.signal(1);
    }
}

async fn shard_main(
    cfg: Arc<RunConfig>,
    request: Arc<Vec<u8>>,
    indices: Vec<usize>,
    start: Instant,
    budget: u64,
) -> Stats {
    let measure_start = start + cfg.warmup;
    let interval = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.connections as f64 / r));
    let shard = Rc::new(Shard {
        deadline: measure_start + cfg.duration,
        cfg,
        request,
        start,
        measure_start,
        budget: Cell::new(budget),
        interval,
        stats: RefCell::new(Stats::default()),
    });
    let now = Instant::now();
    if start > now {
        sleep(start - now).await;
    }
    let finished = Rc::new(Semaphore::new(0));
    let tasks: Vec<_> = indices
        .iter()
        .map(|&i| {
            let done = Finished(Rc::clone(&finished));
            let shard = Rc::clone(&shard);
            glommio::spawn_local(async move {
                connection(&shard, i).await;
                drop(done);
            })
        })
        .collect();
    let all_done = async {
        let _ = finished.acquire(tasks.len() as u64).await;
    };
    let clock = async {
        loop {
            let now = Instant::now();
            if shard.over(now) {
                break;
            }
            sleep(TICK.min(shard.deadline - now)).await;
        }
    };
    futures_lite::future::or(all_done, clock).await;
    let mut end = Instant::now();
    drop(tasks); // cancels connections still running
    let schedule_ran_out =
        shard.interval.is_some() && shard.budget.get() > 0 && !STOP.load(Ordering::Relaxed);
    if schedule_ran_out {
        // Open loop: the window is the whole duration even if the last scheduled request finished early.
        end = end.max(shard.deadline);
    }
    let mut stats = shard.stats.take();
    stats.elapsed = end.saturating_duration_since(shard.measure_start);
    stats
}

/// One client connection (reconnecting when needed) until the deadline or the budget ends.
async fn connection(shard: &Shard, index: usize) {
    let mut conn: Option<Client> = None;
    // Open loop: connection i starts i/rate seconds in, then every `interval`.
    let offset = shard.cfg.rate.map_or(Duration::ZERO, |r| {
        Duration::from_secs_f64(index as f64 / r)
    });
    let mut seq: u32 = 0;
    loop {
        let scheduled = match shard.interval {
            Some(iv) => {
                let Some(t) = iv
                    .checked_mul(seq)
                    .and_then(|d| shard.start.checked_add(offset + d))
                else {
                    return;
                };
                seq += 1;
                if shard.over(t) {
                    return;
                }
                let now = Instant::now();
                if t > now {
                    sleep(t - now).await;
                }
                t
            }
            None => Instant::now(),
        };
        if shard.over(Instant::now()) {
            return;
        }
        let measured = scheduled >= shard.measure_start;
        if measured && !shard.take_budget() {
            return;
        }
        let client = match conn.as_mut() {
            Some(c) => c,
            None => match Client::connect(&shard.cfg).await {
                Ok(c) => conn.insert(c),
                Err(kind) => {
                    if measured {
                        shard.stats.borrow_mut().errors.add(kind);
                    }
                    sleep(CONNECT_BACKOFF).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match client.exchange(&shard.request).await {
            Ok(resp) => {
                if measured {
                    let from = if shard.interval.is_some() {
                        scheduled
                    } else {
                        sent
                    };
                    shard.stats.borrow_mut().record(
                        Instant::now() - from,
                        resp.status,
                        resp.body_bytes,
                    );
                }
                if !resp.keep_alive {
                    conn = None;
                }
            }
            Err(kind) => {
                if measured {
                    shard.stats.borrow_mut().errors.add(kind);
                }
                conn = None;
            }
        }
    }
}

/// The parts of an answer the generator keeps.
struct Response {
    status: u16,
    keep_alive: bool,
    body_bytes: u64,
}

struct Client {
    stream: TcpStream,
    rb: ReadBuf,
}

fn io_kind(e: &io::Error, otherwise: ErrorKind) -> ErrorKind {
    if e.kind() == io::ErrorKind::TimedOut {
        ErrorKind::Timeout
    } else {
        otherwise
    }
}

impl Client {
    async fn connect(cfg: &RunConfig) -> Result<Client, ErrorKind> {
        let stream = TcpStream::connect_timeout(cfg.target, cfg.timeout)
            .await
            .map_err(|e| io_kind(&e.into(), ErrorKind::Connect))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(cfg.timeout));
        let _ = stream.set_write_timeout(Some(cfg.timeout));
        Ok(Client {
            stream,
            rb: ReadBuf::new(READ_BUF),
        })
    }

    /// Sends one request and reads its final answer.
    async fn exchange(&mut self, request: &[u8]) -> Result<Response, ErrorKind> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| io_kind(&e, ErrorKind::Write))?;
        for _ in 0..MAX_INTERIM {
            let head = self.read_head().await?;
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            let body_bytes = conn::read_body(
                &mut self.rb,
                &mut self.stream,
                head.framing,
                MAX_BODY,
                |_| {},
            )
            .await
            .map_err(|e| match e {
                BodyError::Io(e) => io_kind(&e, ErrorKind::Read),
                BodyError::Eof => ErrorKind::Read,
                BodyError::Chunked(_) | BodyError::TooLarge => ErrorKind::Parse,
            })?;
            return Ok(Response {
                status: head.status,
                keep_alive: head.keep_alive,
                body_bytes,
            });
        }
        Err(ErrorKind::Parse)
    }

    async fn read_head(&mut self) -> Result<http::ResponseHead, ErrorKind> {
        for _ in 0..MAX_HEAD_READS {
            match http::parse_response(self.rb.data(), false) {
                Ok(Some(h)) => {
                    self.rb.consume(h.head_len);
                    return Ok(h);
                }
                Ok(None) => {}
                Err(_) => return Err(ErrorKind::Parse),
            }
            if self.rb.is_full() {
                return Err(ErrorKind::Parse);
            }
            match self.rb.fill(&mut self.stream).await {
                Ok(0) => return Err(ErrorKind::Read),
                Ok(_) => {}
                Err(e) => return Err(io_kind(&e, ErrorKind::Read)),
            }
        }
        Err(ErrorKind::Parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_shares_add_up() {
        for (total, n) in [(10u64, 3usize), (1, 4), (0, 2), (10_000_000, 7)] {
            let sum: u64 = (0..n).map(|i| share(total, n, i)).sum();
            assert_eq!(sum, total);
        }
    }

    #[test]
    fn request_has_host_and_headers() {
        let cfg = RunConfig {
            target: "127.0.0.1:8080".parse().unwrap(),
            connections: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            max_requests: 1,
            rate: None,
            path: "/x?y".into(),
            headers: vec![("X-Api-Key".into(), "k".into())],
            shards: 1,
            pinning: Pinning::None,
            timeout: Duration::from_secs(1),
            json: false,
        };
        assert_eq!(
            request_bytes(&cfg),
            b"GET /x?y HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Api-Key: k\r\n\r\n"
        );
    }
}
