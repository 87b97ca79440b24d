//! Integration test: runs the built `keyway-loadtest upstream --echo` and checks echo JSON, chunked request bodies, `/_test/bytes`, and keep-alive reuse over raw std sockets.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the upstream when the test ends, pass or fail.
struct Upstream {
    child: Child,
    addr: String,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Upstream {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyway-loadtest"))
        .args(["upstream", "--echo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn keyway-loadtest");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Upstream { child, addr }
}

fn connect(up: &Upstream) -> BufReader<TcpStream> {
    let s = TcpStream::connect(&up.addr).expect("connect");
    // A safety net against hangs, not a timing assertion.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    BufReader::new(s)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read line");
    assert!(line.ends_with("\r\n"), "bad line {line:?}");
    line.truncate(line.len() - 2);
    line
}

fn read_response(r: &mut BufReader<TcpStream>) -> Response {
    let status_line = read_line(r);
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    for _ in 0..100 {
        let line = read_line(r);
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').expect("header colon");
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = resp.header("content-length") {
        let mut body = vec![0; len.parse().expect("content-length")];
        r.read_exact(&mut body).expect("read body");
        resp.body = body;
    } else if resp.header("transfer-encoding") == Some("chunked") {
        for _ in 0..1_000_000 {
            let size = usize::from_str_radix(&read_line(r), 16).expect("chunk size");
            if size == 0 {
                assert_eq!(read_line(r), "");
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk).expect("read chunk");
            resp.body.extend_from_slice(&chunk);
            assert_eq!(read_line(r), "");
        }
    }
    resp
}

fn send(r: &mut BufReader<TcpStream>, bytes: &[u8]) {
    r.get_mut().write_all(bytes).expect("write request");
}

#[test]
fn upstream_echo_end_to_end() {
    let up = start();

    // GET: method, path, query and headers (received order and spelling) echoed.
    let mut c = connect(&up);
    send(
        &mut c,
        b"GET /some/path?a=1&b=two HTTP/1.1\r\nHost: test\r\nX-Custom-Header: Value 1\r\n\r\n",
    );
    let resp = read_response(&mut c);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "a=1&b=two");
    assert_eq!(
        v["headers"],
        serde_json::json!([["Host", "test"], ["X-Custom-Header", "Value 1"]])
    );
    assert_eq!(v["body_bytes"], 0);
    assert_eq!(v["conn_requests"], 1);

    // Chunked POST on the same connection: body digest and size.
    let chunks: [&[u8]; 3] = [b"hello", b", chunked ", b"world"];
    let mut req =
        b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut whole = Vec::new();
    for ch in chunks {
        req.extend_from_slice(format!("{:x};ext=1\r\n", ch.len()).as_bytes());
        req.extend_from_slice(ch);
        req.extend_from_slice(b"\r\n");
        whole.extend_from_slice(ch);
    }
    req.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    send(&mut c, &req);
    let v = read_response(&mut c).json();
    let want: String = Sha256::digest(&whole)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["body_bytes"], whole.len());
    assert_eq!(v["body_sha256"], want);
    assert_eq!(v["query"], serde_json::Value::Null);

    // /_test/bytes/N: exact length and pattern.
    send(
        &mut c,
        b"GET /_test/bytes/100000 HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    let resp = read_response(&mut c);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("100000"));
    assert_eq!(resp.body.len(), 100_000);
    assert!(resp
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + (i % 26) as u8));

    // Keep-alive: a fresh connection keeps one conn_id over 3 requests, distinct from the first connection's.
    let first_id = {
        send(&mut c, b"GET /id HTTP/1.1\r\nHost: test\r\n\r\n");
        read_response(&mut c).json()["conn_id"].as_u64().unwrap()
    };
    let mut k = connect(&up);
    let mut ids = Vec::new();
    for i in 1..=3u64 {
        send(&mut k, b"GET /ka HTTP/1.1\r\nHost: test\r\n\r\n");
        let v = read_response(&mut k).json();
        assert_eq!(v["conn_requests"], i);
        ids.push(v["conn_id"].as_u64().unwrap());
    }
    assert!(ids.iter().all(|&id| id == ids[0]), "conn ids {ids:?}");
    assert_ne!(ids[0], first_id);

    // Connection: close is honoured: the answer, then end of stream.
    send(
        &mut k,
        b"GET /bye HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    let resp = read_response(&mut k);
    assert_eq!(resp.header("connection"), Some("close"));
    let mut rest = Vec::new();
    k.read_to_end(&mut rest).expect("read to end");
    assert!(rest.is_empty());
}
