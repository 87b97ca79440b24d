//! The strict request-head parser: httparse for the grammar, then our checks (DESIGN.md §8).
//!
//! [`RequestHead::parse`] is called with everything buffered so far. It answers `Ok(false)`
//! while the head is incomplete (after checking the size limits, so a slow or endless head is
//! cut off early), `Ok(true)` once a complete head passed every check, or a [`HeadError`]
//! naming the refusal. The head keeps only offsets into the caller's buffer and reuses its
//! header table across requests: parsing allocates nothing once a connection is warm.

use super::headers::{has_token, trim, HeaderKind, KnownHeaders};
use super::{Framing, Span};
use crate::error::Problem;
use std::mem::MaybeUninit;

/// Hard cap on headers per request whatever the configuration says: the parser's header
/// array lives on the stack.
pub const MAX_HEADERS_CAP: usize = 256;

/// Size limits for a request head (from `[limits]`).
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_request_line: usize,
    pub max_head_bytes: usize,
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_request_line: 8 * 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Connect,
    Trace,
    Other,
}

impl Method {
    fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// Safe to send twice (RFC 9110 §9.2.2): a request of this method may be retried on a fresh
    /// upstream connection when a pooled one turned out to be dead.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// Why a head was refused: the problem to answer with and a fixed one-line detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadError {
    pub problem: Problem,
    pub detail: &'static str,
}

const fn bad(detail: &'static str) -> HeadError {
    HeadError {
        problem: Problem::BadRequest,
        detail,
    }
}

/// Where `part` (a piece httparse found) lies in `buf`. httparse only hands back sub-slices of
/// its input for the parts read here; should that ever change, the head is refused rather than
/// indexed out of bounds.
fn span(buf: &[u8], part: &[u8]) -> Result<Span, HeadError> {
    Span::within(buf, part).ok_or(bad("malformed request head"))
}

/// One request header: where its name and value are, and what it means to us.
#[derive(Clone, Copy, Debug)]
pub struct HeaderLine {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
}

/// A parsed, checked request head: offsets into the connection's read buffer.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// Path and query as sent (origin-form).
    pub target: Span,
    /// The path part of the target (before `?`).
    pub path: Span,
    pub version: Version,
    /// Length of the head in bytes, including the final CRLF CRLF.
    pub head_len: usize,
    pub headers: Vec<HeaderLine>,
    pub framing: Framing,
    pub host: Option<Span>,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub upgrade: bool,
    /// Index into `headers` of the (single) API-key header, if any.
    pub api_key_header: Option<u16>,
    /// Index into `headers` of the (single) Authorization header, if any.
    pub authorization: Option<u16>,
    /// The client sent more than one API-key header or more than one Authorization header.
    pub duplicate_key_headers: bool,
    pub x_request_id: Option<Span>,
    /// Extra header names the client listed in `Connection` (to drop on forwarding); rare.
    pub connection_drops: Vec<Span>,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: Method::Get,
            method_span: Span::default(),
            target: Span::default(),
            path: Span::default(),
            version: Version::Http11,
            head_len: 0,
            headers: Vec::with_capacity(32),
            framing: Framing::None,
            host: None,
            keep_alive: true,
            expect_continue: false,
            upgrade: false,
            api_key_header: None,
            authorization: None,
            duplicate_key_headers: false,
            x_request_id: None,
            connection_drops: Vec::new(),
        }
    }
}

impl RequestHead {
    /// Parses and checks the head at the start of `buf`. `Ok(false)`: need more bytes.
    pub fn parse(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        known: &KnownHeaders,
    ) -> Result<bool, HeadError> {
        let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
        let mut storage = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
        let mut req = httparse::Request::new(&mut []);
        let status = req.parse_with_uninit_headers(buf, &mut storage[..max_headers]);
        let head_len = match status {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                check_partial(buf, limits)?;
                return Ok(false);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError {
                    problem: Problem::HeadersTooLarge,
                    detail: "too many header fields",
                })
            }
            Err(e) => return Err(classify_grammar_error(buf, limits, e)),
        };
        let head = &buf[..head_len];
        let line_len = memchr::memchr(b'\n', head).unwrap_or(head_len);
        if line_len > limits.max_request_line {
            return Err(HeadError {
                problem: Problem::UriTooLong,
                detail: "request line longer than the limit",
            });
        }
        if head_len > limits.max_head_bytes {
            return Err(HeadError {
                problem: Problem::HeadersTooLarge,
                detail: "request head larger than the limit",
            });
        }
        let method = req.method.unwrap_or_default();
        check_line_endings(buf, head_len, method.as_bytes(), req.version, req.headers)?;
        let target = req.path.unwrap_or_default();
        self.method = Method::from_bytes(method.as_bytes());
        self.method_span = span(buf, method.as_bytes())?;
        self.version = if req.version == Some(0) {
            Version::Http10
        } else {
            Version::Http11
        };
        self.head_len = head_len;
        if self.method == Method::Connect {
            return Err(HeadError {
                problem: Problem::MethodNotAllowed,
                detail: "CONNECT is not supported by this gateway",
            });
        }
        check_target(target.as_bytes())?;
        self.target = span(buf, target.as_bytes())?;
        let path_len = memchr::memchr(b'?', target.as_bytes()).unwrap_or(target.len());
        self.path = self.target.prefix(path_len);
        self.read_headers(buf, req.headers, known)
    }

    fn reset(&mut self) {
        self.headers.clear();
        self.connection_drops.clear();
        self.framing = Framing::None;
        self.host = None;
        self.keep_alive = self.version == Version::Http11;
        self.expect_continue = false;
        self.upgrade = false;
        self.api_key_header = None;
        self.authorization = None;
        self.duplicate_key_headers = false;
        self.x_request_id = None;
    }

    fn read_headers(
        &mut self,
        buf: &[u8],
        parsed: &[httparse::Header<'_>],
        known: &KnownHeaders,
    ) -> Result<bool, HeadError> {
        self.reset();
        let mut hosts = 0u32;
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut te_present = false;
        let mut unsupported_coding = false;
        let mut close = false;
        let mut keep_alive_token = false;
        for h in parsed {
            let name = h.name.as_bytes();
            // No CTL/DEL check here: httparse already refuses any value byte outside
            // HTAB / SP..`~` / obs-text (a unit test pins that), the same set as
            // `is_valid_value`.
            let value = h.value;
            let kind = known
                .classify(name)
                .map_err(|_| bad("header name with '_' aliases a header the gateway acts on"))?;
            let idx = self.headers.len() as u16;
            match kind {
                HeaderKind::Host => {
                    hosts += 1;
                    self.host = Some(span(buf, trim(value))?);
                }
                HeaderKind::ContentLength => {
                    if content_length.is_some() {
                        return Err(bad("Content-Length repeated"));
                    }
                    content_length = Some(parse_content_length(value)?);
                }
                HeaderKind::TransferEncoding => {
                    te_present = true;
                    read_transfer_codings(value, &mut chunked, &mut unsupported_coding)?;
                }
                HeaderKind::Connection => {
                    for token in value.split(|&b| b == b',').map(trim) {
                        if token.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive_token = true;
                        } else if token.eq_ignore_ascii_case(b"upgrade") || token.is_empty() {
                        } else {
                            self.connection_drops.push(span(buf, token)?);
                        }
                    }
                }
                HeaderKind::Upgrade => self.upgrade = true,
                HeaderKind::Expect => {
                    if trim(value).eq_ignore_ascii_case(b"100-continue") {
                        self.expect_continue = true;
                    } else {
                        return Err(HeadError {
                            problem: Problem::ExpectationFailed,
                            detail: "only 'Expect: 100-continue' is supported",
                        });
                    }
                }
                HeaderKind::ApiKey => {
                    self.duplicate_key_headers |= self.api_key_header.is_some();
                    self.api_key_header = Some(idx);
                }
                HeaderKind::Authorization => {
                    self.duplicate_key_headers |= self.authorization.is_some();
                    self.authorization = Some(idx);
                }
                HeaderKind::XRequestId => self.x_request_id = Some(span(buf, value)?),
                _ => {}
            }
            self.headers.push(HeaderLine {
                name: span(buf, name)?,
                value: span(buf, value)?,
                kind,
            });
        }
        if self.version == Version::Http11 && hosts == 0 {
            return Err(bad("Host header missing (required in HTTP/1.1)"));
        }
        if hosts > 1 {
            return Err(bad("Host header repeated"));
        }
        if te_present && self.version == Version::Http10 {
            return Err(bad("Transfer-Encoding is not allowed in HTTP/1.0"));
        }
        if te_present && !chunked {
            return Err(bad("Transfer-Encoding must end in 'chunked'"));
        }
        self.framing = match (content_length, chunked) {
            (Some(_), true) => {
                return Err(bad("both Content-Length and Transfer-Encoding present"));
            }
            (None, true) if unsupported_coding => {
                return Err(HeadError {
                    problem: Problem::NotImplemented,
                    detail: "transfer codings other than chunked are not supported; send the body chunked or with Content-Length",
                });
            }
            (None, true) => Framing::Chunked,
            (Some(0) | None, false) => Framing::None,
            (Some(n), false) => Framing::Length(n),
        };
        self.keep_alive = match self.version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive_token && !close,
        };
        Ok(true)
    }

    /// The value of header `i` of this head.
    pub fn value<'b>(&self, buf: &'b [u8], i: u16) -> &'b [u8] {
        self.headers[i as usize].value.get(buf)
    }

    /// Whether `Connection` named this header as hop-by-hop.
    pub fn listed_in_connection(&self, buf: &[u8], name: &[u8]) -> bool {
        self.connection_drops
            .iter()
            .any(|s| s.get(buf).eq_ignore_ascii_case(name))
    }

    /// Whether the named header token appears in the Connection header (`upgrade`).
    pub fn connection_has(&self, buf: &[u8], token: &[u8]) -> bool {
        self.headers
            .iter()
            .filter(|h| h.kind == HeaderKind::Connection)
            .any(|h| has_token(h.value.get(buf), token))
    }
}

/// Reads one Transfer-Encoding line: comma-separated bare codings, `chunked` once and last
/// (over all lines). A malformed list (empty element, parameters, non-token bytes, a coding
/// after `chunked`) is 400 here; a well-formed coding other than `chunked` before it is only
/// noted, for a 501 once the head is otherwise valid (RFC 9112 §6.1).
fn read_transfer_codings(
    value: &[u8],
    chunked: &mut bool,
    unsupported: &mut bool,
) -> Result<(), HeadError> {
    for coding in value.split(|&b| b == b',').map(trim) {
        if coding.is_empty() || !coding.iter().all(|&b| super::is_tchar(b)) {
            return Err(bad("malformed Transfer-Encoding"));
        }
        if *chunked {
            return Err(bad("Transfer-Encoding has a coding after 'chunked'"));
        }
        if coding.eq_ignore_ascii_case(b"chunked") {
            *chunked = true;
        } else {
            *unsupported = true;
        }
    }
    Ok(())
}

/// Size checks on an incomplete head: a request line or head that can no longer fit is
/// refused as soon as that is certain, not when the client stops sending.
fn check_partial(buf: &[u8], limits: &HeadLimits) -> Result<(), HeadError> {
    if buf.len() > limits.max_request_line
        && memchr::memchr(b'\n', &buf[..limits.max_request_line + 1]).is_none()
    {
        return Err(HeadError {
            problem: Problem::UriTooLong,
            detail: "request line longer than the limit",
        });
    }
    if buf.len() > limits.max_head_bytes {
        return Err(HeadError {
            problem: Problem::HeadersTooLarge,
            detail: "request head larger than the limit",
        });
    }
    Ok(())
}

/// Maps httparse's grammar errors to our answers; a version we recognise but do not speak is
/// 505, an over-long line is 414 even when it is also malformed.
fn classify_grammar_error(buf: &[u8], limits: &HeadLimits, e: httparse::Error) -> HeadError {
    let line_end = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
    if line_end > limits.max_request_line {
        return HeadError {
            problem: Problem::UriTooLong,
            detail: "request line longer than the limit",
        };
    }
    match e {
        httparse::Error::Version => {
            let line = &buf[..line_end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
            let three_parts = line.iter().filter(|&&b| b == b' ').count() == 2;
            if !three_parts {
                return bad("malformed request line");
            }
            if let [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] = version {
                if major.is_ascii_digit() && minor.is_ascii_digit() {
                    return HeadError {
                        problem: Problem::VersionNotSupported,
                        detail: "only HTTP/1.0 and HTTP/1.1 are supported",
                    };
                }
            }
            bad("malformed HTTP version in the request line")
        }
        httparse::Error::HeaderName => bad("malformed header name (space before ':' or obs-fold?)"),
        httparse::Error::HeaderValue => bad("malformed header value"),
        httparse::Error::NewLine | httparse::Error::Status => bad("malformed line ending"),
        httparse::Error::Token => bad("malformed request line"),
        httparse::Error::TooManyHeaders => HeadError {
            problem: Problem::HeadersTooLarge,
            detail: "too many header fields",
        },
    }
}

/// Every line of the head must end in CRLF: bare LF is how request smuggling splits one
/// message into two for a lenient peer. httparse already refuses a CR not followed by LF
/// anywhere, but accepts a bare LF as a line end; so only the line ends need looking at, and
/// they are found from the parsed parts instead of scanning the head (this is the hot path).
fn check_line_endings(
    buf: &[u8],
    head_len: usize,
    method: &[u8],
    version: Option<u8>,
    headers: &[httparse::Header<'_>],
) -> Result<(), HeadError> {
    let bare_lf = || Err(bad("bare LF in the request head"));
    // Empty lines before the request line (which httparse skips) must be CRLF too.
    let start = span(buf, method)?.start();
    if buf[..start].chunks(2).any(|pair| pair != b"\r\n") {
        return bare_lf();
    }
    // The request line ends right after "HTTP/1.x".
    let line_end = memchr::memchr(b'\n', &buf[start..head_len]).map(|i| start + i);
    if version.is_none() || line_end.is_none_or(|i| buf[i - 1] != b'\r') {
        return bare_lf();
    }
    // Each header line: after the value, optional whitespace, then CR (httparse checks that
    // LF follows).
    for h in headers {
        let mut i = span(buf, h.value)?.end();
        while matches!(buf.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if buf.get(i) != Some(&b'\r') {
            return bare_lf();
        }
    }
    // The final empty line.
    if head_len < 2 || &buf[head_len - 2..head_len] != b"\r\n" {
        return bare_lf();
    }
    Ok(())
}

/// Origin-form only (`/path?query`), visible ASCII without `#`. (httparse has already
/// refused spaces and controls; it lets `#` and bytes >= 0x80 through.)
fn check_target(target: &[u8]) -> Result<(), HeadError> {
    if target.first() != Some(&b'/') {
        return Err(bad("request target must be origin-form (start with '/')"));
    }
    if !target.is_ascii() || memchr::memchr(b'#', target).is_some() {
        return Err(bad(
            "request target contains a space, control, '#' or non-ASCII byte",
        ));
    }
    Ok(())
}

/// `1*DIGIT`, nothing else: no sign, no hex, no list, no empty value, no overflow.
pub fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    let v = trim(value);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad("invalid Content-Length"));
    }
    Ok(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
