//! Upstream response heads: parsed with httparse, checked, classified for forwarding.
//!
//! An upstream is trusted more than a client but not blindly: a response whose framing is
//! ambiguous (Content-Length with Transfer-Encoding, differing lengths, a coding other than
//! chunked) is refused as `upstream_protocol_error`, and that connection is never reused.

use super::headers::{has_token, trim, HeaderKind, KnownHeaders};
use super::request::{parse_content_length, Version};
use super::{is_valid_value, Span};
use std::mem::MaybeUninit;

const MAX_RESPONSE_HEADERS: usize = 128;

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    None,
    Length(u64),
    Chunked,
    /// No length and not chunked: the body ends when the upstream closes.
    UntilClose,
}

#[derive(Clone, Copy, Debug)]
pub struct ResponseHeader {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
}

#[derive(Debug, Default)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub version: Option<Version>,
    pub head_len: usize,
    pub headers: Vec<ResponseHeader>,
    pub framing: Option<ResponseFraming>,
    /// The upstream connection may carry another request after this response.
    pub reusable: bool,
    pub connection_drops: Vec<Span>,
}

impl ResponseHead {
    /// Parses the response head at the start of `buf`. `Ok(false)`: need more bytes.
    /// `request_was_head`: the body is absent whatever the headers say.
    pub fn parse(
        &mut self,
        buf: &[u8],
        request_was_head: bool,
        max_head_bytes: usize,
    ) -> Result<bool, &'static str> {
        let mut storage = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_RESPONSE_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let head_len = match config.parse_response_with_uninit_headers(&mut res, buf, &mut storage)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > max_head_bytes => {
                return Err("response head too large")
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(httparse::Error::TooManyHeaders) => return Err("too many response headers"),
            Err(_) => return Err("malformed response head"),
        };
        if head_len > max_head_bytes {
            return Err("response head too large");
        }
        self.status = res.code.unwrap_or(0);
        if !(100..=599).contains(&self.status) {
            return Err("upstream status code outside 100-599");
        }
        self.reason = reason_span(buf, head_len)?;
        self.version = Some(if res.version == Some(0) {
            Version::Http10
        } else {
            Version::Http11
        });
        self.head_len = head_len;
        self.headers.clear();
        self.connection_drops.clear();
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut close = false;
        let mut keep_alive = false;
        for h in res.headers.iter() {
            let name = h.name.as_bytes();
            if !is_valid_value(h.value) {
                return Err("control character in a response header value");
            }
            let kind = KnownHeaders::response_kind(name);
            match kind {
                HeaderKind::ContentLength => {
                    let n = parse_content_length(h.value).map_err(|_| "invalid Content-Length")?;
                    if length.is_some_and(|l| l != n) {
                        return Err("conflicting Content-Length values");
                    }
                    length = Some(n);
                }
                HeaderKind::TransferEncoding => {
                    if chunked || !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                        return Err("unsupported Transfer-Encoding");
                    }
                    chunked = true;
                }
                HeaderKind::Connection => {
                    close |= has_token(h.value, b"close");
                    keep_alive |= has_token(h.value, b"keep-alive");
                    for token in h.value.split(|&b| b == b',').map(trim) {
                        if !token.is_empty()
                            && !token.eq_ignore_ascii_case(b"close")
                            && !token.eq_ignore_ascii_case(b"keep-alive")
                        {
                            self.connection_drops.push(span(buf, token)?);
                        }
                    }
                }
                _ => {}
            }
            self.headers.push(ResponseHeader {
                name: span(buf, name)?,
                value: span(buf, h.value)?,
                kind,
            });
        }
        if chunked && length.is_some() {
            return Err("both Content-Length and Transfer-Encoding in response");
        }
        let no_body = request_was_head
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304;
        let framing = if no_body {
            ResponseFraming::None
        } else if chunked {
            ResponseFraming::Chunked
        } else if let Some(n) = length {
            if n == 0 {
                ResponseFraming::None
            } else {
                ResponseFraming::Length(n)
            }
        } else {
            ResponseFraming::UntilClose
        };
        self.framing = Some(framing);
        let http11 = self.version == Some(Version::Http11);
        self.reusable = framing != ResponseFraming::UntilClose
            && !close
            && (http11 || keep_alive)
            && self.status != 101;
        Ok(true)
    }

    pub fn framing(&self) -> ResponseFraming {
        self.framing.unwrap_or(ResponseFraming::UntilClose)
    }

    pub fn listed_in_connection(&self, buf: &[u8], name: &[u8]) -> bool {
        self.connection_drops
            .iter()
            .any(|s| s.get(buf).eq_ignore_ascii_case(name))
    }
}

/// Where `part` (a piece httparse found) lies in `buf`; a part outside it refuses the head.
fn span(buf: &[u8], part: &[u8]) -> Result<Span, &'static str> {
    Span::within(buf, part).ok_or("malformed response head")
}

/// The reason phrase of the status line httparse accepted at the start of `buf[..head_len]`,
/// read from the bytes themselves: httparse hands back a static `""` (not a slice of `buf`)
/// when there is none or when it holds obs-text. RFC 9112: `status-line = HTTP-version SP
/// status-code SP [ reason-phrase ]`, and `HTTP/1.1 200` with no space at all is sent by real
/// servers too. Empty when absent; the client then gets the canonical phrase (`write`).
fn reason_span(buf: &[u8], head_len: usize) -> Result<Span, &'static str> {
    let mut line = &buf[..head_len.min(buf.len())];
    // httparse skips empty lines before the status line.
    while let [b'\r' | b'\n', rest @ ..] = line {
        line = rest;
    }
    let end = memchr::memchr(b'\n', line).ok_or("malformed response status line")?;
    let line = line[..end].strip_suffix(b"\r").unwrap_or(&line[..end]);
    // `HTTP/1.x NNN` is 12 bytes (httparse checked the version, one SP and three digits).
    let reason = match line.get(12..) {
        Some([]) => &line[12..],
        Some([b' ', reason @ ..]) => reason,
        _ => return Err("malformed response status line"),
    };
    // reason-phrase = *( HTAB / SP / VCHAR / obs-text ): the same set as a field value.
    if !is_valid_value(reason) {
        return Err("malformed response status line");
    }
    span(buf, reason)
}

impl KnownHeaders {
    /// Classification of a response header name: only framing and hop-by-hop matter.
    pub fn response_kind(name: &[u8]) -> HeaderKind {
        KnownHeaders::framing_kind(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head: bool) -> Result<ResponseHead, &'static str> {
        let mut r = ResponseHead::default();
        assert!(r.parse(raw, head, 16384)?);
        Ok(r)
    }

    #[test]
    fn framings() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).unwrap();
        assert_eq!(r.framing(), ResponseFraming::Length(5));
        assert!(r.reusable);
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert_eq!(r.framing(), ResponseFraming::None);
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.framing(), ResponseFraming::Chunked);
        let r = parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!(r.framing(), ResponseFraming::UntilClose);
        assert!(!r.reusable);
        let r = parse(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.framing(), ResponseFraming::None);
        let r = parse(b"HTTP/1.1 304 Not Modified\r\n\r\n", false).unwrap();
        assert_eq!(r.framing(), ResponseFraming::None);
        let r = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).unwrap();
        assert!(!r.reusable);
        let r = parse(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(!r.reusable);
    }

    #[test]
    fn refuses_ambiguous_framing() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
            b"HTTX/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 O\x01K\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert!(
                parse(raw, false).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    /// The reason phrase as the client will get it: the upstream's bytes, or empty (then the
    /// canonical phrase is written). Before reading it ourselves, the first two rows kept a
    /// span of httparse's static "" and the slice aborted the process.
    #[test]
    fn reason_phrases() {
        for (raw, reason) in [
            (&b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"[..], &b""[..]),
            (
                b"HTTP/1.1 200 \xe9t\xe9\r\nContent-Length: 0\r\n\r\n",
                b"\xe9t\xe9",
            ),
            (b"HTTP/1.1 204\n\n", b""),
            (b"HTTP/1.1 200 \r\n\r\n", b""),
            (b"HTTP/1.1 404 Not Found\r\n\r\n", b"Not Found"),
            (b"HTTP/1.1 200 a\tb  \r\n\r\n", b"a\tb  "),
            (b"\r\n\nHTTP/1.0 503 Busy\r\nX: 1\r\n\r\n", b"Busy"),
        ] {
            let r = parse(raw, false).unwrap();
            assert_eq!(
                r.reason.get(raw),
                reason,
                "{}",
                String::from_utf8_lossy(raw)
            );
            assert!(r.reason.end() <= r.head_len);
        }
    }

    #[test]
    fn refuses_status_codes_outside_100_to_599() {
        for raw in [
            &b"HTTP/1.1 000 X\r\n\r\n"[..],
            b"HTTP/1.1 099 X\r\n\r\n",
            b"HTTP/1.1 600 X\r\n\r\n",
            b"HTTP/1.1 999\r\n\r\n",
        ] {
            assert_eq!(
                parse(raw, false).err(),
                Some("upstream status code outside 100-599")
            );
        }
        assert!(parse(b"HTTP/1.1 599 X\r\n\r\n", false).is_ok());
        assert!(parse(b"HTTP/1.1 100 X\r\n\r\n", false).is_ok());
    }

    #[test]
    fn partial_and_too_large() {
        let mut r = ResponseHead::default();
        assert_eq!(r.parse(b"HTTP/1.1 200 OK\r\n", false, 100), Ok(false));
        let big = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(200));
        assert!(r.parse(big.as_bytes(), false, 100).is_err());
    }
}
