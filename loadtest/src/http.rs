//! HTTP/1.x head parsing helpers (httparse, 64 headers max): request and response heads, body framing, connection tokens, reason phrases.

/// Most header fields accepted in one message head.
pub const MAX_HEADERS: usize = 64;

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length: n` with n > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Response body delimited by connection close.
    UntilClose,
}

/// Why a message head was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not valid HTTP/1.x syntax.
    Malformed,
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// Invalid or conflicting Content-Length / Transfer-Encoding.
    BadFraming,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadError::Malformed => "malformed message head",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::BadFraming => "invalid Content-Length/Transfer-Encoding",
        })
    }
}

/// A parsed request head borrowing the read buffer.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// Request target as received (path plus optional `?query`).
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in received order, names as received.
    pub headers: &'a [httparse::Header<'a>],
    /// Bytes of the head including the final empty line.
    pub head_len: usize,
    pub framing: Framing,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

/// A parsed response head (only what a client needs to frame the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub minor_version: u8,
    pub head_len: usize,
    pub framing: Framing,
    pub keep_alive: bool,
}

/// Connection-relevant facts gathered from the header fields.
#[derive(Default)]
struct Fields {
    content_length: Option<u64>,
    te_seen: bool,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

fn map_err(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        _ => HeadError::Malformed,
    }
}

/// Parses a Content-Length value: ASCII digits only (surrounding whitespace allowed), at most 18 digits.
pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

/// Iterates the comma-separated tokens of a header value, trimmed, empty ones skipped.
pub fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn gather(headers: &[httparse::Header<'_>]) -> Result<Fields, HeadError> {
    let mut f = Fields::default();
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(h.value).ok_or(HeadError::BadFraming)?;
            if f.content_length.is_some_and(|prev| prev != n) {
                return Err(HeadError::BadFraming);
            }
            f.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.te_seen = true;
            for t in tokens(h.value) {
                if f.chunked {
                    // chunked must be the final coding, and only once.
                    return Err(HeadError::BadFraming);
                }
                f.chunked = t.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    f.close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    f.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            f.expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    Ok(f)
}

fn keep_alive(minor: u8, f: &Fields) -> bool {
    if minor >= 1 {
        !f.close
    } else {
        f.keep_alive && !f.close
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)` means more bytes are needed.
/// Requests with both Content-Length and Transfer-Encoding, or a Transfer-Encoding not ending in chunked, are rejected.
pub fn parse_request<'a>(
    buf: &'a [u8],
    headers: &'a mut [httparse::Header<'a>],
) -> Result<Option<RequestHead<'a>>, HeadError> {
    let mut req = httparse::Request::new(headers);
    let head_len = match req.parse(buf).map_err(map_err)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let httparse::Request {
        method,
        path,
        version,
        headers,
    } = req;
    let (Some(method), Some(target), Some(minor_version)) = (method, path, version) else {
        return Err(HeadError::Malformed);
    };
    let headers: &'a [httparse::Header<'a>] = headers;
    let f = gather(headers)?;
    let framing = if f.te_seen {
        if f.content_length.is_some() || !f.chunked {
            return Err(HeadError::BadFraming);
        }
        Framing::Chunked
    } else {
        match f.content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    Ok(Some(RequestHead {
        method,
        target,
        minor_version,
        headers,
        head_len,
        framing,
        keep_alive: keep_alive(minor_version, &f),
        expect_continue: f.expect_continue,
    }))
}

/// Parses a response head at the start of `buf`; `request_was_head` means the body is absent whatever the headers say.
/// `Ok(None)` means more bytes are needed.
pub fn parse_response(
    buf: &[u8],
    request_was_head: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf).map_err(map_err)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let (Some(status), Some(minor_version)) = (resp.code, resp.version) else {
        return Err(HeadError::Malformed);
    };
    let f = gather(resp.headers)?;
    let framing =
        if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::None
        } else if f.te_seen {
            if f.chunked {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else {
            match f.content_length {
                Some(0) => Framing::None,
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        };
    Ok(Some(ResponseHead {
        status,
        minor_version,
        head_len,
        framing,
        keep_alive: keep_alive(minor_version, &f) && framing != Framing::UntilClose,
    }))
}

/// Reason phrase for a status code ("Unknown" for unregistered ones).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// True for statuses whose responses never carry a body or Content-Length (1xx, 204, 304).
pub fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(buf: &[u8]) -> Result<Option<(Framing, bool, bool, usize)>, HeadError> {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse_request(buf, &mut h)
            .map(|o| o.map(|r| (r.framing, r.keep_alive, r.expect_continue, r.head_len)))
    }

    #[test]
    fn get_keep_alive_defaults() {
        let buf = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Thing: Y\r\n\r\nGET";
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let r = parse_request(buf, &mut h).unwrap().unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/a?b=1");
        assert_eq!(r.minor_version, 1);
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers[1].name, "X-Thing");
        assert_eq!(r.headers[1].value, b"Y");
        assert_eq!(r.head_len, buf.len() - 3);
        assert_eq!(r.framing, Framing::None);
        assert!(r.keep_alive);
        assert!(!r.expect_continue);
    }

    #[test]
    fn partial_head() {
        assert_eq!(req(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
        assert_eq!(req(b"GE").unwrap(), None);
    }

    #[test]
    fn http10_connection_rules() {
        let (_, ka, _, _) = req(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!ka);
        let (_, ka, _, _) = req(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(ka);
        let (_, ka, _, _) = req(b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!ka);
    }

    #[test]
    fn body_framing() {
        let (f, _, _, _) = req(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(f, Framing::Length(12));
        let (f, _, _, _) = req(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(f, Framing::None);
        let (f, _, e, _) = req(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(f, Framing::Chunked);
        assert!(e);
        let (f, _, _, _) =
            req(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(f, Framing::Length(5));
    }

    #[test]
    fn rejects_bad_framing() {
        let bad: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        ];
        for b in bad {
            assert_eq!(
                req(b).unwrap_err(),
                HeadError::BadFraming,
                "{}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn rejects_malformed_and_too_many_headers() {
        assert_eq!(
            req(b"GET / HTTP/2.0\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
        assert_eq!(
            req(b"GET  / HTTP/1.1\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(req(&many).unwrap_err(), HeadError::TooManyHeaders);
    }

    #[test]
    fn response_framing() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.status, r.framing, r.keep_alive),
            (200, Framing::Length(13), true)
        );
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, Framing::None);
        let r = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, Framing::None);
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing, Framing::Chunked);
        let r = parse_response(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((r.framing, r.keep_alive), (Framing::UntilClose, false));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n", false).unwrap(), None);
    }
}
