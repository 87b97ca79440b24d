//! A named test upstream: a keep-alive HTTP/1.1 server that answers `200` with its name, on
//! a port it keeps across a kill and a restart (tests of health, retries and reloads).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A keep-alive HTTP/1.1 server that answers every request `200` with its name as the body,
/// on a port it keeps across a kill and a restart.
pub struct Named {
    pub name: &'static str,
    pub addr: SocketAddr,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: JoinHandle<()>,
}

impl Named {
    pub fn start(name: &'static str) -> Named {
        Named::start_at(name, "127.0.0.1:0")
    }

    /// Listens on `addr` (any loopback address; port 0 picks one).
    pub fn start_at(name: &'static str, addr: &str) -> Named {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        Named {
            name,
            addr,
            running: Some(serve(name, listener)),
        }
    }

    /// Closes the listener and every connection, as a crashed server would.
    pub fn kill(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop.store(true, Ordering::SeqCst);
            // Wake the accept loop so it sees the flag and drops the listener.
            let _ = TcpStream::connect(self.addr);
            r.accept.join().unwrap();
            for c in r.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        self.running = Some(serve(self.name, listener));
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve(name: &'static str, listener: TcpListener) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let conns = Arc::new(Mutex::new(Vec::new()));
    let (s, c) = (stop.clone(), conns.clone());
    let accept = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if s.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            c.lock().unwrap().push(stream.try_clone().unwrap());
            std::thread::spawn(move || answer_all(name, stream));
        }
    });
    Running {
        stop,
        conns,
        accept,
    }
}

/// Answers each request (a body is read by its Content-Length) until the peer closes. The server
/// named `hangup` closes the connection on each request head instead, without a byte; the one
/// named `sick` answers its health check path (`/healthz`) 503.
fn answer_all(name: &str, mut stream: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let health = buf.starts_with(b"GET /healthz ");
            let body = content_length(&buf[..end]);
            if buf.len() < end + 4 + body {
                break;
            }
            buf.drain(..end + 4 + body);
            if name == "hangup" {
                // (The accept loop holds a clone: dropping ours alone would not close it.)
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            let answer = if name == "sick" && health {
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_string()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                    name.len()
                )
            };
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The Content-Length of a request head (0 when absent).
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}
