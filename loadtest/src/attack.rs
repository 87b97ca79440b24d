//! `keyway-loadtest attack`: slow clients, from other loopback addresses, to run beside a
//! measured load. Three kinds, each a thread per connection that reconnects when the target
//! closes it, until the duration ends:
//!
//! - **head trickle** (slowloris): a request head, one byte a second, never finished;
//! - **slow body**: a complete head declaring a large body, then one body byte a second;
//! - **slow reader**: a request for a large response with a 4 KiB receive buffer, then one
//!   byte read a second.
//!
//! Connections start spread over the first interval, so their bytes arrive spread in time as
//! independent clients' would (`--lockstep`: all at once, every byte of every connection in
//! the same instant). It measures nothing itself: it reports how many connections each kind opened and what the
//! target answered them, so a run shows the defences fired (408s, cut connections).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Attack durations are bounded like load runs.
pub const MAX_DURATION: Duration = Duration::from_secs(300);

pub struct AttackConfig {
    pub target: SocketAddr,
    /// Source addresses, used in turn (each connection binds one before connecting).
    pub sources: Vec<IpAddr>,
    pub trickle: usize,
    pub slow_body: usize,
    pub slow_read: usize,
    /// Path (and headers) of the slow-body requests.
    pub body_path: String,
    /// Path of the slow readers' requests: it should answer a large body.
    pub read_path: String,
    pub headers: Vec<(String, String)>,
    pub duration: Duration,
    /// Seconds between two bytes sent or read.
    pub interval: Duration,
    /// All connections start at once and send in lockstep (each byte of every connection in
    /// the same instant); otherwise their starts are spread over the first interval, as
    /// independent clients would be.
    pub lockstep: bool,
    pub json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Trickle,
    SlowBody,
    SlowRead,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Trickle => "head_trickle",
            Kind::SlowBody => "slow_body",
            Kind::SlowRead => "slow_read",
        }
    }
}

#[derive(Default)]
struct Tally {
    connections: AtomicU64,
    connect_errors: AtomicU64,
    /// Status codes the target answered (0: closed without an answer).
    statuses: Mutex<BTreeMap<u16, u64>>,
}

impl Tally {
    fn status(&self, code: u16) {
        *self.statuses.lock().unwrap().entry(code).or_default() += 1;
    }
}

pub fn run(cfg: AttackConfig) -> Result<(), String> {
    let cfg = Arc::new(cfg);
    let end = Instant::now() + cfg.duration;
    let tallies: Arc<BTreeMap<Kind, Tally>> = Arc::new(
        [Kind::Trickle, Kind::SlowBody, Kind::SlowRead]
            .into_iter()
            .map(|k| (k, Tally::default()))
            .collect(),
    );
    let mut threads = Vec::new();
    let plan = [
        (Kind::Trickle, cfg.trickle),
        (Kind::SlowBody, cfg.slow_body),
        (Kind::SlowRead, cfg.slow_read),
    ];
    let total = (cfg.trickle + cfg.slow_body + cfg.slow_read).max(1);
    let mut n = 0usize;
    for (kind, count) in plan {
        for _ in 0..count {
            let source = cfg.sources[n % cfg.sources.len()];
            let phase = if cfg.lockstep {
                Duration::ZERO
            } else {
                cfg.interval.mul_f64(n as f64 / total as f64)
            };
            n += 1;
            let cfg = cfg.clone();
            let tallies = tallies.clone();
            let t = std::thread::Builder::new()
                .name(format!("attack-{}", kind.label()))
                .stack_size(64 * 1024)
                .spawn(move || {
                    std::thread::sleep(phase);
                    while Instant::now() < end {
                        let tally = &tallies[&kind];
                        match connect(source, cfg.target) {
                            Ok(s) => {
                                tally.connections.fetch_add(1, Ordering::Relaxed);
                                let code = one_connection(kind, s, &cfg, end);
                                tally.status(code);
                            }
                            Err(_) => {
                                tally.connect_errors.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                })
                .map_err(|e| format!("cannot start an attack thread: {e}"))?;
            threads.push(t);
        }
    }
    for t in threads {
        let _ = t.join();
    }
    report(&tallies, cfg.json);
    Ok(())
}

fn connect(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    // Small buffers make a slow reader felt at once (loopback buffers are megabytes).
    socket.set_recv_buffer_size(4096)?;
    socket.connect_timeout(&target.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// Runs one slow connection until the target closes it or the attack ends; returns the
/// status it was answered (0: none).
fn one_connection(kind: Kind, mut s: TcpStream, cfg: &AttackConfig, end: Instant) -> u16 {
    let mut extra = String::new();
    for (name, value) in &cfg.headers {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    let _ = s.set_read_timeout(Some(cfg.interval));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    match kind {
        Kind::Trickle => {
            let head = format!("GET {} HTTP/1.1\r\nHost: attack\r\n{extra}", cfg.read_path);
            for b in head.bytes().cycle() {
                if Instant::now() >= end || s.write_all(&[b]).is_err() {
                    break;
                }
                if let Some(code) = answered(&mut s) {
                    return code;
                }
            }
            0
        }
        Kind::SlowBody => {
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: attack\r\nContent-Length: 1000000\r\n{extra}\r\n",
                cfg.body_path
            );
            if s.write_all(head.as_bytes()).is_err() {
                return 0;
            }
            while Instant::now() < end {
                if s.write_all(b"x").is_err() {
                    break;
                }
                if let Some(code) = answered(&mut s) {
                    return code;
                }
            }
            0
        }
        Kind::SlowRead => {
            let head = format!(
                "GET {} HTTP/1.1\r\nHost: attack\r\n{extra}\r\n",
                cfg.read_path
            );
            if s.write_all(head.as_bytes()).is_err() {
                return 0;
            }
            let mut first = [0u8; 12];
            let mut got = 0;
            let mut byte = [0u8; 1];
            while Instant::now() < end {
                match s.read(&mut byte) {
                    Ok(0) => break,
                    Ok(_) => {
                        if got < first.len() {
                            first[got] = byte[0];
                            got += 1;
                        }
                        std::thread::sleep(cfg.interval);
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            status_of(&first[..got])
        }
    }
}

/// Waits one interval for an answer; `Some(status)` when the target answered or closed.
fn answered(s: &mut TcpStream) -> Option<u16> {
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => Some(0),
        Ok(n) => Some(status_of(&buf[..n])),
        Err(e) if is_timeout(&e) => None,
        Err(_) => Some(0),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The status code of a response that starts `HTTP/1.x NNN`, else 0.
fn status_of(head: &[u8]) -> u16 {
    if head.len() >= 12 && head.starts_with(b"HTTP/1.") {
        std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    } else {
        0
    }
}

fn report(tallies: &BTreeMap<Kind, Tally>, json: bool) {
    let mut out = serde_json::Map::new();
    for (kind, t) in tallies {
        let statuses: serde_json::Map<String, serde_json::Value> = t
            .statuses
            .lock()
            .unwrap()
            .iter()
            .map(|(code, n)| (code.to_string(), (*n).into()))
            .collect();
        out.insert(
            kind.label().into(),
            serde_json::json!({
                "connections": t.connections.load(Ordering::Relaxed),
                "connect_errors": t.connect_errors.load(Ordering::Relaxed),
                "answered": statuses,
            }),
        );
    }
    if json {
        println!("{}", serde_json::Value::Object(out));
    } else {
        for (kind, v) in out {
            println!("{kind}: {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(status_of(b"HTTP/1.1 408 Request Timeout"), 408);
        assert_eq!(status_of(b"HTTP/1.1 2"), 0);
        assert_eq!(status_of(b"garbage in here"), 0);
    }
}
