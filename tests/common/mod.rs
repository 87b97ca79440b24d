//! Shared helpers for the integration tests: start the real `keyway` binary and the
//! loadtest crate's echo upstream on 127.0.0.1 port 0, and talk to them over raw TCP.
//!
//! Every wait here is bounded; processes are killed when their guard drops.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod admin;
mod named;
mod wait;
#[allow(unused_imports)]
pub use named::Named;
pub use wait::*;

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The keyway binary under test.
pub fn keyway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keyway"))
}

/// The loadtest binary, built beside ours by `cargo test --workspace`.
pub fn loadtest_bin() -> PathBuf {
    let dir = keyway_bin().parent().unwrap().to_path_buf();
    let bin = dir.join("keyway-loadtest");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the loadtest upstream is built",
        bin.display()
    );
    bin
}

/// Lines a child wrote to stderr, collected in the background.
pub type Captured = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Spawns `cmd`, waits (bounded) for a stdout line containing `marker`, returns the child and
/// that line. Later stdout lines are drained in the background.
fn spawn_until(cmd: Command, marker: &str) -> (Child, String) {
    let (child, line, _) = spawn_capturing(cmd, marker);
    (child, line)
}

/// Like `spawn_until`, and every stdout and stderr line is kept for the test to inspect.
pub fn spawn_capturing(mut cmd: Command, marker: &str) -> (Child, String, Captured) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let marker = marker.to_string();
    let captured: Captured = Default::default();
    let out_lines = captured.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            out_lines.lock().unwrap().push(line.clone());
            if !sent && line.contains(&marker) {
                let _ = tx.send(line);
                sent = true;
            }
        }
    });
    let err_lines = captured.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            err_lines.lock().unwrap().push(line);
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => (child, line, captured),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let lines = captured.lock().unwrap().join("\n");
            panic!("process did not become ready; output:\n{lines}");
        }
    }
}

pub fn addr_after(line: &str, word: &str) -> SocketAddr {
    let rest = &line[line
        .find(word)
        .unwrap_or_else(|| panic!("{word} in {line}"))
        + word.len()..];
    let token: String = rest
        .trim_start()
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ')' && *c != ',')
        .collect();
    token
        .parse()
        .unwrap_or_else(|_| panic!("address in {line:?}"))
}

/// The loadtest crate's upstream in `--echo` mode.
pub struct Upstream {
    child: Child,
    pub addr: SocketAddr,
}

impl Upstream {
    pub fn echo() -> Upstream {
        let mut cmd = Command::new(loadtest_bin());
        cmd.args(["upstream", "--echo", "--listen", "127.0.0.1:0"]);
        let (child, line) = spawn_until(cmd, "listening on");
        Upstream {
            child,
            addr: addr_after(&line, "listening on"),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `dir/keyway.toml`: a `[server]` on 127.0.0.1 port 0 with `dir` as its state
/// directory, then `rest` (upstreams, routes, limits...). Returns its path.
pub fn write_config(dir: &Path, shards: usize, rest: &str) -> PathBuf {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshards = {shards}\nstate_dir = \"{}\"\n\n{rest}",
        dir.display()
    );
    let path = dir.join("keyway.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A running `keyway serve` with its own temporary state directory.
pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Everything the gateway printed (stdout and stderr).
    pub output: Captured,
}

impl Gateway {
    /// Starts keyway with a config whose `[server]` section is ours and whose remaining
    /// sections are `rest` (upstreams, routes, limits...).
    pub fn start(rest: &str, shards: usize) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), shards, rest);
        Gateway::start_with(dir, &path)
    }

    pub fn start_with(dir: tempfile::TempDir, config: &Path) -> Gateway {
        Gateway::start_logging(dir, config, "warn")
    }

    /// Starts with `KEYWAY_LOG=level` (tests that inspect the log use `debug`).
    pub fn start_logging(dir: tempfile::TempDir, config: &Path, level: &str) -> Gateway {
        let mut cmd = Command::new(keyway_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("KEYWAY_LOG", level);
        Gateway::start_command(dir, config, cmd)
    }

    /// Starts `cmd`, which must end up exec'ing `keyway serve --config CONFIG` (a wrapper
    /// such as `unshare` may come first; its pid must become keyway's).
    pub fn start_command(dir: tempfile::TempDir, config: &Path, cmd: Command) -> Gateway {
        let (child, line, output) = spawn_capturing(cmd, "keyway listening on");
        Gateway {
            child,
            addr: addr_after(&line, "listening on"),
            admin: addr_after(&line, "admin"),
            dir,
            config: config.to_path_buf(),
            output,
        }
    }

    /// The usual setup: one upstream `api` and the given routes (TOML).
    pub fn proxying(upstream: SocketAddr, routes: &str, extra: &str) -> Gateway {
        Gateway::start(
            &format!("{extra}\n[upstreams.api]\nservers = [\"{upstream}\"]\n\n{routes}"),
            1,
        )
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `[name, value]` pairs an echo upstream reported having received.
    pub fn echoed_header(&self, name: &str) -> Vec<String> {
        self.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|p| p[1].as_str().unwrap().to_string())
            .collect()
    }
}

/// Asserts `r` is the gateway's own refusal: `status`, `application/problem+json`, the
/// problem `code` (which check refused it), and, where several checks share a code, that the
/// `detail` contains `detail`.
#[track_caller]
pub fn assert_problem(r: &Response, status: u16, code: &str, detail: Option<&str>) {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "status of {body}");
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{body}"
    );
    let v = r.json();
    assert_eq!(v["code"], code, "code of {body}");
    if let Some(fragment) = detail {
        let d = v["detail"].as_str().unwrap_or("");
        assert!(d.contains(fragment), "detail {d:?} lacks {fragment:?}");
    }
}

/// A raw client connection that reads responses one at a time.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// A client over a stream set up elsewhere (a bound source address, small buffers).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads one response (to a request of `method`). Panics on EOF before a full response.
    pub fn read_response(&mut self, method: &str) -> Response {
        self.try_read_response(method)
            .expect("connection closed before a complete response")
    }

    /// Reads one response; `None` if the connection ended before it was complete.
    pub fn try_read_response(&mut self, method: &str) -> Option<Response> {
        let (status, headers, head_len) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            match r.parse(&self.buf).expect("valid response head") {
                httparse::Status::Complete(n) => {
                    let headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).to_string(),
                            )
                        })
                        .collect();
                    break (r.code.unwrap(), headers, n);
                }
                httparse::Status::Partial => {
                    if self.fill() == 0 {
                        return None;
                    }
                }
            }
        };
        self.buf.drain(..head_len);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let body = if method == "HEAD" || status == 204 || status == 304 || status < 200 {
            Vec::new()
        } else if let Some(len) = get("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                if self.fill() == 0 {
                    return None;
                }
            }
            self.buf.drain(..len).collect()
        } else if get("transfer-encoding").is_some() {
            self.read_chunked()?
        } else {
            while self.fill() > 0 {}
            std::mem::take(&mut self.buf)
        };
        Some(Response {
            status,
            headers,
            body,
        })
    }

    fn read_chunked(&mut self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if self.fill() == 0 {
                    return None;
                }
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&self.buf[..line_end]).unwrap().trim(),
                16,
            )
            .unwrap();
            self.buf.drain(..line_end + 2);
            if size == 0 {
                loop {
                    if self.buf.starts_with(b"\r\n") {
                        self.buf.drain(..2);
                        return Some(body);
                    }
                    if self.fill() == 0 {
                        return None;
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill() == 0 {
                    return None;
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// Whether the server closed the connection with nothing more to say: the next read
    /// (within 5 s) is EOF or a reset. Stray bytes, or a read that times out with the
    /// connection still open, are not a close.
    pub fn is_closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        let read = self.stream.read(&mut b);
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        match read {
            Ok(0) => true,
            Err(e) => is_reset(&e),
            Ok(_) => false,
        }
    }

    /// Every byte still to come (with any not yet consumed) until the server closes the
    /// connection; panics if it is still open after `IO_TIMEOUT`. For answers that must be
    /// cut: `parse_cut` tells what was relayed before the close.
    pub fn read_until_closed(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if is_reset(&e) => return out,
                Err(e) => panic!(
                    "the connection was not closed ({e}) after {} bytes",
                    out.len()
                ),
            }
        }
    }
}

/// A read error that means the peer closed the connection (not a timeout).
pub fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// A response cut before its end: the status and `Content-Length` of the head that was
/// relayed, and the body bytes that came before the connection closed.
#[derive(Debug)]
pub struct Cut {
    pub status: u16,
    pub content_length: usize,
    pub body: Vec<u8>,
}

/// Reads `raw` (all a connection received before it closed, see
/// `Client::read_until_closed`) as one response head with a `Content-Length` and a body
/// shorter than it; panics naming what else it is (nothing, a bare head, a whole answer).
#[track_caller]
pub fn parse_cut(raw: &[u8]) -> Cut {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(300)]).to_string();
    assert!(!raw.is_empty(), "closed without any answer");
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut hs);
    let head_len = match r.parse(raw).expect("valid response head") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("closed within the response head: {text:?}"),
    };
    let content_length: usize = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .unwrap_or_else(|| panic!("no Content-Length in the relayed head: {text:?}"));
    let body = raw[head_len..].to_vec();
    assert!(
        body.len() < content_length,
        "the whole answer arrived ({} of {content_length} bytes): not cut",
        body.len()
    );
    Cut {
        status: r.code.unwrap(),
        content_length,
        body,
    }
}

/// Sends `raw` on a fresh connection and reads one response.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut c = Client::connect(addr);
    c.send(raw);
    c.read_response("GET")
}

/// `GET path` with `Host: test` and the given extra header lines.
pub fn get(addr: SocketAddr, path: &str, headers: &str) -> Response {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n").as_bytes(),
    )
}

/// The deterministic body pattern of the echo upstream's `/_test/` paths.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// GET on the admin listener; returns (status, body).
pub fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let r = exchange(
        admin,
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes(),
    );
    (r.status, String::from_utf8_lossy(&r.body).to_string())
}

/// The routes most tests use: everything under `/` is public and goes to `api`.
pub const PUBLIC_ALL: &str = "[[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n";

/// Runs `keyway --config CONFIG ARGS...`, asserts it succeeded, returns its stdout.
pub fn cli_ok(config: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(keyway_bin());
    cmd.arg("--config").arg(config).args(args);
    String::from_utf8_lossy(&output_ok(&mut cmd)).to_string()
}

/// Runs `cmd` to its end and returns its stdout; panics with the command and its stderr
/// unless it succeeded.
pub fn output_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `keyway keys create --json ARGS...`: the new key's (id, secret).
pub fn create_key(config: &Path, args: &[&str]) -> (String, String) {
    let mut all = vec!["keys", "create", "--json"];
    all.extend_from_slice(args);
    let out = cli_ok(config, &all);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let field = |name: &str| v[name].as_str().unwrap().to_string();
    (field("id"), field("key"))
}
