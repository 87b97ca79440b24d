//! Unit tests of the strict request-head parser: one case per row of DESIGN.md §8 that is
//! decided by the head alone.

use super::*;

fn parse(raw: &[u8]) -> Result<bool, HeadError> {
    let mut head = RequestHead::default();
    head.parse(raw, &HeadLimits::default(), &KnownHeaders::default())
}

fn parse_ok(raw: &[u8]) -> RequestHead {
    let mut head = RequestHead::default();
    assert_eq!(
        head.parse(raw, &HeadLimits::default(), &KnownHeaders::default()),
        Ok(true),
        "{}",
        String::from_utf8_lossy(raw)
    );
    head
}

fn problem(raw: &[u8]) -> Problem {
    match parse(raw) {
        Err(e) => e.problem,
        Ok(done) => panic!("accepted ({done}): {}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn typical_request() {
    let raw =
        b"GET /v1/items?x=1 HTTP/1.1\r\nHost: api.example\r\nx-api-key: k\r\nAccept: */*\r\n\r\n";
    let head = parse_ok(raw);
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.target.get(raw), b"/v1/items?x=1");
    assert_eq!(head.path.get(raw), b"/v1/items");
    assert_eq!(head.host.unwrap().get(raw), b"api.example");
    assert_eq!(head.head_len, raw.len());
    assert_eq!(head.framing, Framing::None);
    assert!(head.keep_alive);
    assert_eq!(head.value(raw, head.api_key_header.unwrap()), b"k");
}

#[test]
fn partial_head_asks_for_more() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(false));
}

#[test]
fn framing() {
    let h = parse_ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(12));
    let h = parse_ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
}

#[test]
fn content_length_and_transfer_encoding_both() {
    let raw =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(problem(raw), Problem::BadRequest);
    assert!(Problem::BadRequest.closes_connection());
}

#[test]
fn bad_content_lengths() {
    for cl in [
        "+1",
        "-1",
        "0x10",
        "1.5",
        "",
        "99999999999999999999",
        "18446744073709551616",
        "1,1",
        "1 1",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(problem(raw.as_bytes()), Problem::BadRequest, "{cl:?}");
    }
    let twice = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(problem(twice), Problem::BadRequest);
    let repeated = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    assert_eq!(problem(repeated), Problem::BadRequest);
}

#[test]
fn bad_transfer_encodings() {
    for te in [
        "gzip",
        "chunked, gzip",
        "xchunked",
        "chunked\x0b",
        "identity",
        "chunked, chunked",
        "chunked,",
        ", chunked",
        "gzip;q=1, chunked",
        "chunked;x=1",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert_eq!(problem(raw.as_bytes()), Problem::BadRequest, "{te:?}");
    }
    // Well formed, ending in chunked, but a coding we do not implement: 501.
    for te in [
        "gzip, chunked",
        "deflate,chunked",
        "identity, gzip, CHUNKED",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert_eq!(problem(raw.as_bytes()), Problem::NotImplemented, "{te:?}");
    }
    let lines = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(problem(lines), Problem::NotImplemented);
    let after = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(problem(after), Problem::BadRequest);
    let with_cl = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(problem(with_cl), Problem::BadRequest);
    let http10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(problem(http10), Problem::BadRequest);
    let two = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(problem(two), Problem::BadRequest);
    let http10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(problem(http10), Problem::BadRequest);
}

#[test]
fn bare_lf_anywhere_is_refused() {
    for raw in [
        &b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a  \n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX:\nY: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    ] {
        assert_eq!(
            problem(raw),
            Problem::BadRequest,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // CRLF before the request line is tolerated (RFC 9112 §2.2).
    parse_ok(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    parse_ok(b"GET / HTTP/1.1\r\nHost: a \t\r\nX:\r\n\r\n");
}

#[test]
fn bad_line_endings_and_folding() {
    for raw in [
        &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX(y): a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n",
    ] {
        assert_eq!(
            problem(raw),
            Problem::BadRequest,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn bad_request_lines_and_targets() {
    for raw in [
        &b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET\r\nHost: a\r\n\r\n",
        b"GET / HTTX/1.1\r\nHost: a\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(
            problem(raw),
            Problem::BadRequest,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(
        problem(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        Problem::VersionNotSupported
    );
    assert_eq!(
        problem(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
        Problem::VersionNotSupported
    );
}

#[test]
fn host_rules() {
    assert_eq!(problem(b"GET / HTTP/1.1\r\n\r\n"), Problem::BadRequest);
    assert_eq!(
        problem(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        Problem::BadRequest
    );
    let h = parse_ok(b"GET / HTTP/1.0\r\n\r\n");
    assert!(h.host.is_none());
    assert!(!h.keep_alive);
    let h = parse_ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(h.keep_alive);
}

#[test]
fn underscore_aliases() {
    assert_eq!(
        problem(b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n"),
        Problem::BadRequest
    );
    assert_eq!(
        problem(b"GET / HTTP/1.1\r\nHost: a\r\nx_api_key: k\r\n\r\n"),
        Problem::BadRequest
    );
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nx_keyway_tenant: evil\r\n\r\n";
    let h = parse_ok(raw);
    assert_eq!(h.headers[1].kind, HeaderKind::AliasedIdentity);
}

#[test]
fn size_limits() {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
    assert_eq!(problem(long_target.as_bytes()), Problem::UriTooLong);
    // An endless request line is refused before it ends.
    let endless = format!("GET /{}", "a".repeat(9000));
    assert_eq!(problem(endless.as_bytes()), Problem::UriTooLong);
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(17000)
    );
    assert_eq!(problem(big_head.as_bytes()), Problem::HeadersTooLarge);
    let endless_head = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(17000));
    assert_eq!(problem(endless_head.as_bytes()), Problem::HeadersTooLarge);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(problem(many.as_bytes()), Problem::HeadersTooLarge);
}

#[test]
fn key_headers_and_duplicates() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: a\r\nX-API-KEY: b\r\n\r\n";
    assert!(parse_ok(raw).duplicate_key_headers);
    let raw =
        b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n";
    assert!(parse_ok(raw).duplicate_key_headers);
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a\r\nx-api-key: a\r\n\r\n";
    let h = parse_ok(raw);
    assert!(!h.duplicate_key_headers);
    assert!(h.authorization.is_some() && h.api_key_header.is_some());
}

#[test]
fn expect_upgrade_connect() {
    let h = parse_ok(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    );
    assert!(h.expect_continue);
    assert_eq!(
        problem(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n"),
        Problem::ExpectationFailed
    );
    let h = parse_ok(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Drop\r\nUpgrade: h2c\r\n\r\n",
    );
    assert!(h.upgrade);
    assert!(h.listed_in_connection(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Drop\r\nUpgrade: h2c\r\n\r\n",
        b"x-drop"
    ));
    assert_eq!(
        problem(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
        Problem::MethodNotAllowed
    );
    assert_eq!(
        problem(b"CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n"),
        Problem::MethodNotAllowed
    );
}

#[test]
fn pipelined_heads_parse_one_at_a_time() {
    let raw = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    let h = parse_ok(raw);
    assert_eq!(h.path.get(raw), b"/a");
    let rest = &raw[h.head_len..];
    let h2 = parse_ok(rest);
    assert_eq!(h2.path.get(rest), b"/b");
}

#[test]
fn head_table_is_reused_without_growth() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    let mut head = RequestHead::default();
    let cap = head.headers.capacity();
    for _ in 0..100 {
        assert_eq!(
            head.parse(raw, &HeadLimits::default(), &KnownHeaders::default()),
            Ok(true)
        );
    }
    assert_eq!(head.headers.len(), 3);
    assert_eq!(head.headers.capacity(), cap);
}
