//! Serialising heads: the request head sent upstream and the response head sent to the
//! client are written fresh from parsed parts, never copied from the peer's raw bytes, so
//! nothing the parser did not understand can ride along.

use super::chunked::chunk_header;

/// Appends head lines to a reusable buffer.
pub struct HeadWriter<'a> {
    pub out: &'a mut Vec<u8>,
}

impl<'a> HeadWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        HeadWriter { out }
    }

    #[inline]
    pub fn request_line(&mut self, method: &[u8], target: &[u8]) {
        self.out.extend_from_slice(method);
        self.out.push(b' ');
        self.out.extend_from_slice(target);
        self.out.extend_from_slice(b" HTTP/1.1\r\n");
    }

    #[inline]
    pub fn status_line(&mut self, status: u16, reason: &[u8]) {
        self.out.extend_from_slice(b"HTTP/1.1 ");
        self.out
            .extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
        self.out.push(b' ');
        if reason.is_empty() {
            self.out.extend_from_slice(reason_phrase(status).as_bytes());
        } else {
            self.out.extend_from_slice(reason);
        }
        self.out.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn header_u64(&mut self, name: &[u8], value: u64) {
        self.header(name, itoa::Buffer::new().format(value).as_bytes());
    }

    #[inline]
    pub fn end(&mut self) {
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Appends one chunk (header, data, CRLF) to `out`.
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut h = [0u8; 18];
    let n = chunk_header(data.len(), &mut h);
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The standard reason phrase, for statuses the gateway writes itself or an upstream sent
/// without one.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_heads() {
        let mut out = Vec::new();
        let mut w = HeadWriter::new(&mut out);
        w.request_line(b"GET", b"/a?b");
        w.header(b"Host", b"x");
        w.header_u64(b"Content-Length", 42);
        w.end();
        assert_eq!(
            out,
            b"GET /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\n\r\n"
        );
        out.clear();
        let mut w = HeadWriter::new(&mut out);
        w.status_line(404, b"");
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n");
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        push_chunk(&mut out, b"hello, world");
        push_chunk(&mut out, b"");
        assert_eq!(out, b"c\r\nhello, world\r\n");
    }
}
