//! One admin request read off a blocking socket (head and a `Content-Length` body, both
//! under one deadline) and one answer written back. The admin listener closes every
//! connection after its answer, so there is no keep-alive state to get wrong.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The whole request (head and body) must arrive within this, however it is trickled in.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Largest request head.
const MAX_HEAD: usize = 8 * 1024;

/// Largest request body (key and plan bodies are a few hundred bytes; a leak alert of a
/// thousand tokens is ~200 KiB).
pub const MAX_BODY: usize = 1 << 20;

/// A request as the admin handlers see it.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: Option<SocketAddr>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query parameter `name`, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
    }
}

/// `%XX` and `+` decoded; invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer.
#[derive(Clone, Debug)]
pub struct Response {
    /// The problem code of a refusal (for the audit trail).
    pub code: Option<String>,
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra header lines, each `(name, value)`.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            code: None,
            status,
            content_type: "text/plain",
            body: body.into().into_bytes(),
            headers: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        Response {
            code: None,
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }

    /// An RFC 9457 problem, in the data plane's shape (`type`, `title`, `status`, `detail`,
    /// `code`).
    pub fn problem(status: u16, code: &str, detail: &str) -> Response {
        let title = crate::http::write::reason_phrase(status);
        let value = serde_json::json!({
            "type": format!("urn:keyway:problem:{code}"),
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
        });
        let mut r = Response::json(status, &value);
        r.content_type = "application/problem+json";
        r.code = Some(code.to_string());
        if status == 401 {
            r.headers.push((
                "WWW-Authenticate",
                "Bearer realm=\"keyway-admin\"".to_string(),
            ));
        }
        r
    }
}

/// Why no request could be read: answered with this (`None`: the peer went away).
pub type ReadFailure = Option<Response>;

/// Reads one request: the head within [`REQUEST_DEADLINE`], then `Content-Length` bytes of
/// body (at most [`MAX_BODY`]) within the same deadline.
pub fn read_request(stream: &mut TcpStream) -> Result<Request, ReadFailure> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let (mut req, head_len, body_len) = loop {
        let n = read_some(stream, &mut buf[len..], deadline)?;
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(head_len)) => {
                let target = parsed.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let mut req = Request {
                    method: parsed.method.unwrap_or("GET").to_string(),
                    path: path.to_string(),
                    query: query.to_string(),
                    peer: stream.peer_addr().ok(),
                    ..Request::default()
                };
                for h in parsed.headers.iter() {
                    let value = String::from_utf8_lossy(h.value).trim().to_string();
                    req.headers.push((h.name.to_ascii_lowercase(), value));
                }
                let body_len = body_length(&req)?;
                break (req, head_len, body_len);
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            Ok(httparse::Status::Partial) => {
                return Err(Some(Response::problem(
                    431,
                    "headers_too_large",
                    "the request head is over 8 KiB; send fewer or shorter headers",
                )))
            }
            Err(_) => {
                return Err(Some(Response::problem(
                    400,
                    "bad_request",
                    "the request is not valid HTTP/1.1; send e.g. GET /healthz HTTP/1.1",
                )))
            }
        }
    };
    let mut body = buf[head_len..len].to_vec();
    body.truncate(body_len);
    body.resize(body_len, 0);
    let mut have = (len - head_len).min(body_len);
    while have < body_len {
        have += read_some(stream, &mut body[have..], deadline)?;
    }
    req.body = body;
    Ok(req)
}

/// The body's length from `Content-Length`; chunked and oversized bodies are refused.
fn body_length(req: &Request) -> Result<usize, ReadFailure> {
    if req.header("transfer-encoding").is_some() {
        return Err(Some(Response::problem(
            411,
            "length_required",
            "chunked bodies are not accepted here; send the body with Content-Length",
        )));
    }
    let Some(v) = req.header("content-length") else {
        return Ok(0);
    };
    let n: usize = v.parse().map_err(|_| {
        Some(Response::problem(
            400,
            "bad_request",
            "Content-Length is not a number; send the body's length in bytes",
        ))
    })?;
    if n > MAX_BODY {
        return Err(Some(Response::problem(
            413,
            "body_too_large",
            "the body is over 1 MiB; send a smaller one (page large changes)",
        )));
    }
    Ok(n)
}

/// One read before `deadline`: 408 when it passes, `None` when the peer closed.
fn read_some(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, ReadFailure> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Some(Response::problem(
                408,
                "request_timeout",
                "the request did not arrive within 5 s; send it at once",
            )));
        }
        stream.set_read_timeout(Some(left)).map_err(|_| None)?;
        match stream.read(buf) {
            Ok(0) => return Err(None),
            Ok(n) => return Ok(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(None),
        }
    }
}

/// Writes the answer and closes (the caller drops the stream).
pub fn write_response(stream: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    stream.set_write_timeout(Some(REQUEST_DEADLINE))?;
    let reason = crate::http::write::reason_phrase(r.status);
    let date = httpdate::fmt_http_date(crate::clock::system_now());
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nDate: {date}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    for (name, value) in &r.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&r.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("key_%41"), "key_A");
        assert_eq!(percent_decode("bad%2"), "bad%2");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("end%41"), "endA");
    }

    #[test]
    fn params_by_name() {
        let r = Request {
            query: "tenant=acme%20co&limit=10&after".into(),
            ..Request::default()
        };
        assert_eq!(r.param("tenant").as_deref(), Some("acme co"));
        assert_eq!(r.param("limit").as_deref(), Some("10"));
        assert_eq!(r.param("after").as_deref(), Some(""));
        assert_eq!(r.param("plan"), None);
    }
}
