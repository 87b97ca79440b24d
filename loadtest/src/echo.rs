//! `--echo` mode: the request-describing JSON answer and the `/_test/...` behaviours (streamed, chunked, SSE, slow, dying and resetting answers).

use crate::http::{self, RequestHead};
use crate::pattern;
use crate::upstream::{Conn, Next, Request};
use glommio::timer::sleep;
use std::io::{self, Write};
use std::time::Duration;

/// Largest N accepted by the body-producing test paths.
pub const MAX_TEST_BYTES: u64 = 1 << 30;
/// Most events `/_test/sse/N/MS` sends.
pub const MAX_SSE_EVENTS: u64 = 100_000;
/// Longest wait any test path accepts, in milliseconds.
pub const MAX_WAIT_MS: u64 = 300_000;
/// Chunk size of `/_test/chunked/N`.
const CHUNK: usize = 16 * 1024;

/// What to answer, decided from the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The JSON description of the request.
    Echo,
    /// `/_test/bytes/N`: N pattern bytes with Content-Length.
    Bytes(u64),
    /// `/_test/chunked/N`: N pattern bytes, chunked in 16 KiB chunks.
    Chunked(u64),
    /// `/_test/close/N`: N pattern bytes delimited by connection close.
    Close(u64),
    /// `/_test/sse/N/MS`: N server-sent events, MS ms apart.
    Sse { events: u64, every_ms: u64 },
    /// `/_test/status/CODE`: that status, empty body.
    Status(u16),
    /// `/_test/sleep/MS`: the echo answer after MS ms.
    Sleep(u64),
    /// `/_test/die/N`: promise 2N bytes, send N, close.
    Die(u64),
    /// `/_test/reset`: close without answering.
    Reset,
    /// `/_test/head-then-sleep/MS`: head with Content-Length 5, MS ms pause, `hello`.
    HeadThenSleep(u64),
    /// An unknown or out-of-range `/_test/` path: 404.
    NotFound,
}

fn num(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&n| n <= max)
}

/// Maps a request target to its action; anything outside `/_test/` echoes.
pub fn route(target: &str) -> Action {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let Some(rest) = path.strip_prefix("/_test/") else {
        return Action::Echo;
    };
    let mut parts = rest.splitn(4, '/');
    let (a, b, c, d) = (parts.next(), parts.next(), parts.next(), parts.next());
    let action = match (a, b, c, d) {
        (Some("bytes"), Some(n), None, None) => num(n, MAX_TEST_BYTES).map(Action::Bytes),
        (Some("chunked"), Some(n), None, None) => num(n, MAX_TEST_BYTES).map(Action::Chunked),
        (Some("close"), Some(n), None, None) => num(n, MAX_TEST_BYTES).map(Action::Close),
        (Some("sse"), Some(n), Some(ms), None) => num(n, MAX_SSE_EVENTS)
            .zip(num(ms, MAX_WAIT_MS))
            .map(|(events, every_ms)| Action::Sse { events, every_ms }),
        (Some("status"), Some(code), None, None) => num(code, 599)
            .filter(|&c| c >= 100)
            .map(|c| Action::Status(c as u16)),
        (Some("sleep"), Some(ms), None, None) => num(ms, MAX_WAIT_MS).map(Action::Sleep),
        (Some("die"), Some(n), None, None) => num(n, MAX_TEST_BYTES).map(Action::Die),
        (Some("reset"), None, None, None) => Some(Action::Reset),
        (Some("head-then-sleep"), Some(ms), None, None) => {
            num(ms, MAX_WAIT_MS).map(Action::HeadThenSleep)
        }
        _ => None,
    };
    action.unwrap_or(Action::NotFound)
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing JSON to a Vec cannot fail");
}

/// Starts the echo JSON in `json` from the request head: method, path, query, headers (received order and spelling).
pub fn begin_json(json: &mut Vec<u8>, head: &RequestHead<'_>) {
    json.clear();
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (head.target, None),
    };
    json.extend_from_slice(b"{\"method\":");
    json_str(json, head.method);
    json.extend_from_slice(b",\"path\":");
    json_str(json, path);
    json.extend_from_slice(b",\"query\":");
    match query {
        Some(q) => json_str(json, q),
        None => json.extend_from_slice(b"null"),
    }
    json.extend_from_slice(b",\"headers\":[");
    for (i, h) in head.headers.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.push(b'[');
        json_str(json, h.name);
        json.push(b',');
        json_str(json, &String::from_utf8_lossy(h.value));
        json.push(b']');
    }
    json.extend_from_slice(b"],");
}

/// Completes the echo JSON with the body digest and connection counters.
pub fn finish_json(
    json: &mut Vec<u8>,
    body_bytes: u64,
    sha256: &[u8],
    conn_id: u64,
    conn_requests: u64,
) {
    let _ = write!(json, "\"body_bytes\":{body_bytes},\"body_sha256\":\"");
    for b in sha256 {
        let _ = write!(json, "{b:02x}");
    }
    let _ = write!(
        json,
        "\",\"conn_id\":{conn_id},\"conn_requests\":{conn_requests}}}"
    );
}

/// Buffers a response head: status line, `fields` (complete `name: value\r\n` lines), connection management, blank line.
fn head(out: &mut Vec<u8>, status: u16, fields: &str, req: &Request, keep_alive: bool) {
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\n{fields}",
        http::reason(status)
    );
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if req.minor_version == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Answers an echo-mode request whose body (`body_bytes` bytes, digest `sha256`) was already read.
pub async fn respond(c: &mut Conn, req: &Request, body_bytes: u64, sha256: &[u8]) -> Next {
    match run(c, req, body_bytes, sha256).await {
        Ok(next) => next,
        Err(_) => Next::Abort,
    }
}

async fn run(c: &mut Conn, req: &Request, body_bytes: u64, sha256: &[u8]) -> io::Result<Next> {
    let ka = req.keep_alive;
    let octets = "Content-Type: application/octet-stream\r\n";
    match req.action {
        Action::Echo => echo(c, req, body_bytes, sha256),
        Action::Sleep(ms) => {
            c.flush().await?;
            sleep(Duration::from_millis(ms)).await;
            echo(c, req, body_bytes, sha256);
        }
        Action::Bytes(n) => {
            head(
                &mut c.out,
                200,
                &format!("{octets}Content-Length: {n}\r\n"),
                req,
                ka,
            );
            if !req.is_head {
                send_pattern(c, n).await?;
            }
        }
        Action::Chunked(n) => {
            head(
                &mut c.out,
                200,
                &format!("{octets}Transfer-Encoding: chunked\r\n"),
                req,
                ka,
            );
            if !req.is_head {
                send_chunked(c, n).await?;
            }
        }
        Action::Close(n) => {
            head(&mut c.out, 200, octets, req, false);
            if !req.is_head {
                send_pattern(c, n).await?;
            }
            return Ok(Next::Close);
        }
        Action::Sse { events, every_ms } => {
            let fields = "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n";
            head(&mut c.out, 200, fields, req, ka);
            if !req.is_head {
                send_sse(c, events, every_ms).await?;
            }
        }
        Action::Status(code) => {
            let fields = if http::status_has_no_body(code) {
                ""
            } else {
                "Content-Length: 0\r\n"
            };
            head(&mut c.out, code, fields, req, ka);
        }
        Action::Die(n) => {
            let promised = n.saturating_mul(2);
            head(
                &mut c.out,
                200,
                &format!("{octets}Content-Length: {promised}\r\n"),
                req,
                ka,
            );
            if !req.is_head {
                send_pattern(c, n).await?;
            }
            c.flush().await?;
            return Ok(Next::Abort);
        }
        Action::Reset => {
            c.flush().await?;
            return Ok(Next::Abort);
        }
        Action::HeadThenSleep(ms) => {
            head(
                &mut c.out,
                200,
                "Content-Type: text/plain\r\nContent-Length: 5\r\n",
                req,
                ka,
            );
            if !req.is_head {
                c.flush().await?;
                sleep(Duration::from_millis(ms)).await;
                c.out.extend_from_slice(b"hello");
            }
        }
        Action::NotFound => {
            let body = b"unknown /_test/ path\n";
            let fields = format!(
                "Content-Type: text/plain\r\nContent-Length: {}\r\n",
                body.len()
            );
            head(&mut c.out, 404, &fields, req, ka);
            if !req.is_head {
                c.out.extend_from_slice(body);
            }
        }
    }
    Ok(Next::Continue)
}

/// Buffers the JSON echo answer.
fn echo(c: &mut Conn, req: &Request, body_bytes: u64, sha256: &[u8]) {
    finish_json(&mut c.json, body_bytes, sha256, c.id, c.requests);
    let fields = format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n",
        c.json.len()
    );
    head(&mut c.out, 200, &fields, req, req.keep_alive);
    if !req.is_head {
        c.out.extend_from_slice(&c.json);
    }
}

/// Sends `n` pattern bytes after whatever is buffered, in pieces.
async fn send_pattern(c: &mut Conn, n: u64) -> io::Result<()> {
    let mut off = 0u64;
    while off < n {
        let take = (n - off).min(pattern::PIECE as u64) as usize;
        let piece = pattern::slice(off, take);
        if c.out.len() + take <= pattern::PIECE {
            c.out.extend_from_slice(piece);
        } else {
            c.write_direct(piece).await?;
        }
        off += take as u64;
    }
    Ok(())
}

/// Sends `n` pattern bytes as 16 KiB chunks plus the last chunk.
async fn send_chunked(c: &mut Conn, n: u64) -> io::Result<()> {
    let mut off = 0u64;
    while off < n {
        let take = (n - off).min(CHUNK as u64) as usize;
        let _ = write!(c.out, "{take:x}\r\n");
        c.out.extend_from_slice(pattern::slice(off, take));
        c.out.extend_from_slice(b"\r\n");
        off += take as u64;
        if c.out.len() >= pattern::PIECE {
            c.flush().await?;
        }
    }
    c.out.extend_from_slice(b"0\r\n\r\n");
    Ok(())
}

/// Sends `events` chunked events `data: i\n\n`, each flushed `every_ms` after the previous; the last carries the terminating chunk.
async fn send_sse(c: &mut Conn, events: u64, every_ms: u64) -> io::Result<()> {
    for i in 0..events {
        if i > 0 {
            sleep(Duration::from_millis(every_ms)).await;
        }
        let event = format!("data: {i}\n\n");
        let _ = write!(c.out, "{:x}\r\n{event}\r\n", event.len());
        if i + 1 == events {
            c.out.extend_from_slice(b"0\r\n\r\n");
        }
        c.flush().await?;
    }
    if events == 0 {
        c.out.extend_from_slice(b"0\r\n\r\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request, MAX_HEADERS};

    #[test]
    fn routes() {
        assert_eq!(route("/"), Action::Echo);
        assert_eq!(route("/_testx/bytes/1"), Action::Echo);
        assert_eq!(route("/_test/bytes/100?x=1"), Action::Bytes(100));
        assert_eq!(route("/_test/chunked/7"), Action::Chunked(7));
        assert_eq!(route("/_test/close/0"), Action::Close(0));
        assert_eq!(
            route("/_test/sse/3/50"),
            Action::Sse {
                events: 3,
                every_ms: 50
            }
        );
        assert_eq!(route("/_test/status/503"), Action::Status(503));
        assert_eq!(route("/_test/sleep/10"), Action::Sleep(10));
        assert_eq!(route("/_test/die/9"), Action::Die(9));
        assert_eq!(route("/_test/reset"), Action::Reset);
        assert_eq!(route("/_test/head-then-sleep/5"), Action::HeadThenSleep(5));
        for bad in [
            "/_test/bytes/",
            "/_test/bytes/-1",
            "/_test/bytes/1/2",
            "/_test/status/99",
            "/_test/status/600",
            "/_test/sleep/999999999",
            "/_test/sse/1",
            "/_test/nope",
            "/_test/reset/1",
        ] {
            assert_eq!(route(bad), Action::NotFound, "{bad}");
        }
    }

    #[test]
    fn echo_json_shape() {
        let buf = b"POST /p/a?x=1&y=%22 HTTP/1.1\r\nHost: h\r\nX-Odd: \"q\"\r\nx-dup: 1\r\nx-dup: 2\r\n\r\n";
        let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let h = parse_request(buf, &mut hdrs).unwrap().unwrap();
        let mut json = Vec::new();
        begin_json(&mut json, &h);
        finish_json(&mut json, 3, &[0xab, 0x01], 7, 2);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/p/a");
        assert_eq!(v["query"], "x=1&y=%22");
        assert_eq!(
            v["headers"],
            serde_json::json!([
                ["Host", "h"],
                ["X-Odd", "\"q\""],
                ["x-dup", "1"],
                ["x-dup", "2"]
            ])
        );
        assert_eq!(v["body_bytes"], 3);
        assert_eq!(v["body_sha256"], "ab01");
        assert_eq!(v["conn_id"], 7);
        assert_eq!(v["conn_requests"], 2);

        let buf = b"GET /x HTTP/1.1\r\n\r\n";
        let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let h = parse_request(buf, &mut hdrs).unwrap().unwrap();
        begin_json(&mut json, &h);
        finish_json(&mut json, 0, &[], 1, 1);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["query"], serde_json::Value::Null);
        assert_eq!(v["headers"], serde_json::json!([]));
    }
}
