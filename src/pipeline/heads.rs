//! Building the heads the gateway sends: the request head for the upstream (hop-by-hop and
//! key headers removed, forwarding and identity headers added) and the response head for the
//! client (re-framed for the client's HTTP version).

use crate::http::headers::trim;
use crate::http::headers::HeaderKind;
use crate::http::response::{ResponseFraming, ResponseHead};
use crate::http::write::HeadWriter;
use crate::http::{Framing, RequestHead, Version};
use std::net::{IpAddr, SocketAddr};

/// What the gateway adds to a forwarded request.
pub struct Forwarding<'a> {
    pub client_ip: Option<IpAddr>,
    pub request_id: &'a [u8],
    /// The Authorization header carried the API key (Bearer) and must not be forwarded. (A
    /// Bearer token shaped like a key is never forwarded, whatever this says.)
    pub strip_authorization: bool,
    /// Identity header lines for the upstream, complete (`Name: value\r\n`): key id, tenant,
    /// plan, scopes, metadata.
    pub identity_lines: &'a [u8],
    /// Replaces the client's target when not empty (a key taken from the query).
    pub target: &'a [u8],
    /// The upstream server's address: the Host of a request that came without one (HTTP/1.0).
    pub host_fallback: Option<SocketAddr>,
}

/// Writes the upstream request head. The body framing is re-declared by us: a chunked body is
/// re-chunked, a Content-Length body keeps its length.
pub fn write_request_head(out: &mut Vec<u8>, head: &RequestHead, buf: &[u8], fwd: &Forwarding<'_>) {
    let mut w = HeadWriter::new(out);
    let target = if fwd.target.is_empty() {
        head.target.get(buf)
    } else {
        fwd.target
    };
    w.request_line(head.method_span.get(buf), target);
    if head.host.is_none() {
        // HTTP/1.0 without Host, forwarded as HTTP/1.1: name the upstream (RFC 9112 §3.2).
        let mut hostbuf = [0u8; 64];
        w.header(b"Host", format_addr(fwd.host_fallback, &mut hostbuf));
    }
    let mut xff = false;
    let mut forwarded = false;
    for h in &head.headers {
        let name = h.name.get(buf);
        let value = h.value.get(buf);
        match h.kind {
            // Host is end-to-end whatever `Connection` lists: it is never dropped.
            HeaderKind::Host => w.header(name, value),
            HeaderKind::Other => {
                if !head.connection_drops.is_empty() && head.listed_in_connection(buf, name) {
                    continue;
                }
                w.header(name, value);
            }
            HeaderKind::Authorization
                if !fwd.strip_authorization && !super::auth::carries_key(value) =>
            {
                w.header(name, value)
            }
            HeaderKind::XForwardedFor => xff = true,
            HeaderKind::Forwarded => forwarded = true,
            // Framing is re-declared below; hop-by-hop, Expect (answered by us), the key, the
            // request id (re-set) and every client-sent identity header are dropped.
            _ => {}
        }
    }
    match head.framing {
        Framing::Length(n) => w.header_u64(b"Content-Length", n),
        Framing::Chunked => w.header(b"Transfer-Encoding", b"chunked"),
        Framing::None => {
            if head
                .headers
                .iter()
                .any(|h| h.kind == HeaderKind::ContentLength)
            {
                w.header(b"Content-Length", b"0");
            }
        }
    }
    if let Some(ip) = fwd.client_ip {
        // Every line the client sent, in order (the policy judged them all), then our hop.
        let mut ipbuf = [0u8; 64];
        let ip_text = format_ip(ip, &mut ipbuf);
        w.out.extend_from_slice(b"x-forwarded-for: ");
        if xff {
            write_lines(w.out, head, buf, HeaderKind::XForwardedFor);
        }
        w.out.extend_from_slice(ip_text);
        w.out.extend_from_slice(b"\r\nforwarded: ");
        if forwarded {
            write_lines(w.out, head, buf, HeaderKind::Forwarded);
        }
        w.out.extend_from_slice(b"for=");
        if ip.is_ipv6() {
            w.out.extend_from_slice(b"\"[");
            w.out.extend_from_slice(ip_text);
            w.out.extend_from_slice(b"]\"");
        } else {
            w.out.extend_from_slice(ip_text);
        }
        w.out.extend_from_slice(b";proto=http\r\n");
    }
    w.header(b"x-request-id", fwd.request_id);
    w.out.extend_from_slice(fwd.identity_lines);
    w.end();
}

/// Appends the non-empty values of every `kind` header, in order, each followed by `, `.
fn write_lines(out: &mut Vec<u8>, head: &RequestHead, buf: &[u8], kind: HeaderKind) {
    for h in head.headers.iter().filter(|h| h.kind == kind) {
        let value = trim(h.value.get(buf));
        if !value.is_empty() {
            out.extend_from_slice(value);
            out.extend_from_slice(b", ");
        }
    }
}

/// `ip:port` (IPv6 in brackets), or nothing when there is no address.
fn format_addr(addr: Option<SocketAddr>, buf: &mut [u8; 64]) -> &[u8] {
    use std::io::Write;
    let Some(addr) = addr else { return &[] };
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{addr}");
    let n = cursor.position() as usize;
    &buf[..n]
}

fn format_ip(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{ip}");
    let n = cursor.position() as usize;
    &buf[..n]
}

/// How the response body travels to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFraming {
    None,
    Length(u64),
    Chunked,
    /// HTTP/1.0 client and no length: the body ends when we close.
    Close,
}

/// Chooses the client framing for an upstream framing.
pub fn client_framing(upstream: ResponseFraming, client: Version) -> ClientFraming {
    match (upstream, client) {
        (ResponseFraming::None, _) => ClientFraming::None,
        (ResponseFraming::Length(n), _) => ClientFraming::Length(n),
        (ResponseFraming::Chunked | ResponseFraming::UntilClose, Version::Http11) => {
            ClientFraming::Chunked
        }
        (ResponseFraming::Chunked | ResponseFraming::UntilClose, Version::Http10) => {
            ClientFraming::Close
        }
    }
}

/// How the response goes back to the client.
#[derive(Clone, Copy)]
pub struct ToClient<'a> {
    pub framing: ClientFraming,
    /// The connection stays open after this response.
    pub keep_alive: bool,
    pub version: Version,
    /// Headers the gateway adds (RateLimit, Deprecation...).
    pub extra: &'a [(&'a [u8], &'a [u8])],
    /// Complete header lines added as they are (rate-limit headers).
    pub raw_extra: &'a [u8],
    pub request_id: &'a [u8],
    /// `Date` for an upstream answer that has none (RFC 9110 §6.6.1); empty: add none.
    pub date: &'a [u8],
}

/// Writes the client response head.
pub fn write_response_head(out: &mut Vec<u8>, resp: &ResponseHead, ubuf: &[u8], to: &ToClient<'_>) {
    let ToClient {
        framing,
        keep_alive,
        version: client_version,
        extra,
        raw_extra,
        request_id,
        date,
    } = *to;
    let mut w = HeadWriter::new(out);
    w.status_line(resp.status, resp.reason.get(ubuf));
    let mut has_request_id = false;
    let mut has_date = false;
    for h in &resp.headers {
        let name = h.name.get(ubuf);
        match h.kind {
            HeaderKind::ContentLength => {
                // HEAD and 304 answers describe the representation: keep their length.
                if framing == ClientFraming::None && resp.status != 204 && resp.status >= 200 {
                    w.header(name, h.value.get(ubuf));
                }
            }
            HeaderKind::TransferEncoding
            | HeaderKind::Connection
            | HeaderKind::HopByHop
            | HeaderKind::Upgrade => {}
            _ => {
                if !resp.connection_drops.is_empty() && resp.listed_in_connection(ubuf, name) {
                    continue;
                }
                has_request_id |= h.kind == HeaderKind::XRequestId;
                has_date |= name.len() == 4 && name.eq_ignore_ascii_case(b"date");
                w.header(name, h.value.get(ubuf));
            }
        }
    }
    match framing {
        ClientFraming::Length(n) => w.header_u64(b"Content-Length", n),
        ClientFraming::Chunked => w.header(b"Transfer-Encoding", b"chunked"),
        ClientFraming::None | ClientFraming::Close => {}
    }
    if !has_request_id {
        w.header(b"x-request-id", request_id);
    }
    if !has_date && !date.is_empty() {
        w.header(b"Date", date);
    }
    for (name, value) in extra {
        w.header(name, value);
    }
    w.out.extend_from_slice(raw_extra);
    if !keep_alive {
        w.header(b"Connection", b"close");
    } else if client_version == Version::Http10 {
        w.header(b"Connection", b"keep-alive");
    }
    w.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeadLimits, KnownHeaders};

    #[test]
    fn upstream_head_drops_key_hop_by_hop_and_spoofed_identity() {
        let raw = b"POST /v1/x?y=1 HTTP/1.1\r\nHost: api\r\nx-api-key: secret\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nx-keyway-tenant: evil\r\nx_keyway_plan: evil\r\nX-Forwarded-For: 10.0.0.1\r\nx-request-id: client\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nAccept: */*\r\n\r\n";
        let mut head = RequestHead::default();
        assert_eq!(
            head.parse(raw, &HeadLimits::default(), &KnownHeaders::default()),
            Ok(true)
        );
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            &head,
            raw,
            &Forwarding {
                client_ip: Some("127.0.0.1".parse().unwrap()),
                request_id: b"rid",
                strip_authorization: true,
                identity_lines: b"x-keyway-tenant: acme\r\n",
                target: b"",
                host_fallback: None,
            },
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /v1/x?y=1 HTTP/1.1\r\nHost: api\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\nforwarded: for=127.0.0.1;proto=http\r\nx-request-id: rid\r\nx-keyway-tenant: acme\r\n\r\n"
        );
    }

    #[test]
    fn ipv6_forwarded_is_quoted() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut head = RequestHead::default();
        head.parse(raw, &HeadLimits::default(), &KnownHeaders::default())
            .unwrap();
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            &head,
            raw,
            &Forwarding {
                client_ip: Some("::1".parse().unwrap()),
                request_id: b"r",
                strip_authorization: false,
                identity_lines: b"",
                target: b"",
                host_fallback: None,
            },
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("forwarded: for=\"[::1]\";proto=http\r\n"),
            "{text}"
        );
    }

    #[test]
    fn response_head_is_reframed() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n\r\n";
        let mut resp = ResponseHead::default();
        assert_eq!(resp.parse(raw, false, 65536), Ok(true));
        let mut out = Vec::new();
        let f = client_framing(resp.framing(), Version::Http10);
        assert_eq!(f, ClientFraming::Close);
        write_response_head(
            &mut out,
            &resp,
            raw,
            &ToClient {
                framing: f,
                keep_alive: false,
                version: Version::Http10,
                extra: &[],
                raw_extra: b"",
                request_id: b"r",
                date: b"",
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nx-request-id: r\r\nConnection: close\r\n\r\n"
        );
    }

    fn upstream_head(raw: &[u8], host_fallback: Option<SocketAddr>) -> String {
        let mut head = RequestHead::default();
        assert_eq!(
            head.parse(raw, &HeadLimits::default(), &KnownHeaders::default()),
            Ok(true)
        );
        let mut out = Vec::new();
        let fwd = Forwarding {
            client_ip: Some("127.0.0.1".parse().unwrap()),
            request_id: b"r",
            strip_authorization: false,
            identity_lines: b"",
            target: b"",
            host_fallback,
        };
        write_request_head(&mut out, &head, raw, &fwd);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn host_is_never_dropped_and_always_sent() {
        let text = upstream_head(
            b"GET / HTTP/1.1\r\nHost: api\r\nConnection: host\r\n\r\n",
            None,
        );
        assert!(text.contains("\r\nHost: api\r\n"), "{text}");
        let up = Some("10.1.2.3:8080".parse().unwrap());
        let text = upstream_head(b"GET / HTTP/1.0\r\nConnection: host\r\n\r\n", up);
        assert!(
            text.starts_with("GET / HTTP/1.1\r\nHost: 10.1.2.3:8080\r\n"),
            "{text}"
        );
        let text = upstream_head(b"GET / HTTP/1.0\r\n\r\n", Some("[::1]:81".parse().unwrap()));
        assert!(text.contains("\r\nHost: [::1]:81\r\n"), "{text}");
        assert_eq!(text.matches("Host:").count(), 1, "{text}");
    }

    #[test]
    fn every_forwarding_line_is_forwarded_in_order() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nForwarded: for=1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-For: \r\nForwarded: for=2.2.2.2\r\n\r\n";
        let text = upstream_head(raw, None);
        assert!(
            text.contains("\r\nx-forwarded-for: 1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nforwarded: for=1.1.1.1, for=2.2.2.2, for=127.0.0.1;proto=http\r\n"),
            "{text}"
        );
    }

    #[test]
    fn response_gets_one_date() {
        let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
        for (raw, want) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..], "Sun, 06 Nov 1994"),
            (b"HTTP/1.1 200 OK\r\nDATE: Mon, 07 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n", "Mon, 07 Nov 1994"),
        ] {
            let mut resp = ResponseHead::default();
            assert_eq!(resp.parse(raw, false, 65536), Ok(true));
            let mut out = Vec::new();
            let to = ToClient {
                framing: ClientFraming::Length(0),
                keep_alive: true,
                version: Version::Http11,
                extra: &[],
                raw_extra: b"",
                request_id: b"r",
                date,
            };
            write_response_head(&mut out, &resp, raw, &to);
            let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
            assert_eq!(text.matches("\r\ndate: ").count(), 1, "{text}");
            assert!(text.contains(&want.to_ascii_lowercase()), "{text}");
        }
    }
}
