//! Every bad-input row of DESIGN.md §8, over raw TCP against the real binary: the answer,
//! whether the connection closes, and that nothing reached the upstream that should not.

mod common;

use common::*;
use std::time::Duration;

fn setup() -> (Upstream, Gateway) {
    let up = Upstream::echo();
    let gw = Gateway::proxying(
        up.addr,
        PUBLIC_ALL,
        "[limits]\nmax_body_bytes = 100000\n\n[timeouts]\nhead = \"1s\"\nbody_idle = \"1s\"\n",
    );
    (up, gw)
}

/// Sends `raw`, expects `status` with a problem body whose detail contains `detail` (the
/// check that refused it: many share `bad_request`), and the connection closed after it.
#[track_caller]
fn refused_and_closed(gw: &Gateway, raw: &[u8], status: u16, detail: &str) {
    let mut c = Client::connect(gw.addr);
    c.send(raw);
    let r = c.read_response("GET");
    // The code names the check: a row refused by another check with the same status fails.
    let code = match status {
        400 => "bad_request",
        414 => "uri_too_long",
        431 => "headers_too_large",
        405 => "method_not_allowed",
        413 => "body_too_large",
        417 => "expectation_failed",
        501 => "not_implemented",
        505 => "http_version_not_supported",
        other => panic!("no problem code known for {other}"),
    };
    assert_problem(&r, status, code, Some(detail));
    assert!(
        c.is_closed(),
        "connection left open after {:?}",
        String::from_utf8_lossy(raw)
    );
}

#[test]
fn content_length_with_transfer_encoding() {
    let (_up, gw) = setup();
    refused_and_closed(
        &gw,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "both Content-Length and Transfer-Encoding present",
    );
}

#[test]
fn bad_content_lengths() {
    let (_up, gw) = setup();
    for cl in [
        "+1",
        "-1",
        "0x10",
        "1.5",
        "",
        "99999999999999999999999",
        "1, 2",
    ] {
        refused_and_closed(
            &gw,
            format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {cl}\r\n\r\n").as_bytes(),
            400,
            "invalid Content-Length",
        );
    }
    refused_and_closed(
        &gw,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
        "Content-Length repeated",
    );
    refused_and_closed(
        &gw,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
        400,
        "Content-Length repeated",
    );
}

#[test]
fn bad_transfer_encodings() {
    let (_up, gw) = setup();
    for (te, detail) in [
        ("gzip", "Transfer-Encoding must end in 'chunked'"),
        ("chunked, gzip", "coding after 'chunked'"),
        ("xchunked", "Transfer-Encoding must end in 'chunked'"),
        ("chunked\x0b", "malformed header value"),
        ("identity", "Transfer-Encoding must end in 'chunked'"),
    ] {
        refused_and_closed(
            &gw,
            format!("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n").as_bytes(),
            400,
            detail,
        );
    }
    refused_and_closed(
        &gw,
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "Transfer-Encoding is not allowed in HTTP/1.0",
    );
    // Well formed and ending in chunked, but a coding the gateway does not implement.
    for te in ["gzip, chunked", "deflate, chunked"] {
        refused_and_closed(
            &gw,
            format!("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n")
                .as_bytes(),
            501,
            "transfer codings other than chunked are not supported",
        );
    }
}

#[test]
fn bad_line_endings_folding_and_names() {
    let (_up, gw) = setup();
    const BARE_LF: &str = "bare LF in the request head";
    const BAD_NAME: &str = "malformed header name";
    const BAD_VALUE: &str = "malformed header value";
    for (raw, detail) in [
        (&b"GET / HTTP/1.1\nHost: t\r\n\r\n"[..], BARE_LF),
        (b"GET / HTTP/1.1\r\nHost: t\n\r\n", BARE_LF),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", BAD_VALUE),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n",
            BAD_NAME,
        ),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX : a\r\n\r\n", BAD_NAME),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", BAD_VALUE),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x7fb\r\n\r\n", BAD_VALUE),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX@Y: a\r\n\r\n", BAD_NAME),
    ] {
        refused_and_closed(&gw, raw, 400, detail);
    }
}

#[test]
fn bad_request_lines_and_versions() {
    let (_up, gw) = setup();
    const BAD_LINE: &str = "malformed request line";
    const BAD_TARGET: &str = "request target contains a space, control, '#' or non-ASCII byte";
    for (raw, detail) in [
        (&b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n"[..], BAD_LINE),
        (b"GET /a#frag HTTP/1.1\r\nHost: t\r\n\r\n", BAD_TARGET),
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", BAD_TARGET),
        (b"GET /a\x01 HTTP/1.1\r\nHost: t\r\n\r\n", BAD_LINE),
        (b"GET HTTP/1.1\r\nHost: t\r\n\r\n", BAD_LINE),
        (
            b"GET / HTTX/1.1\r\nHost: t\r\n\r\n",
            "malformed HTTP version in the request line",
        ),
    ] {
        refused_and_closed(&gw, raw, 400, detail);
    }
    for raw in [
        &b"GET / HTTP/2.0\r\nHost: t\r\n\r\n"[..],
        b"GET / HTTP/1.2\r\nHost: t\r\n\r\n",
    ] {
        refused_and_closed(&gw, raw, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    }
}

#[test]
fn host_missing_or_repeated() {
    let (_up, gw) = setup();
    refused_and_closed(&gw, b"GET / HTTP/1.1\r\n\r\n", 400, "Host header missing");
    refused_and_closed(
        &gw,
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "Host header repeated",
    );
}

#[test]
fn bad_chunked_bodies_close_and_never_reuse_the_upstream_connection() {
    let (_up, gw) = setup();
    let first = get(gw.addr, "/", "").json()["conn_id"].as_u64().unwrap();
    for (body, detail) in [
        (&b"\r\n"[..], "chunk size missing"),
        // A size must start with a hex digit: there is none here.
        (b"zz\r\n", "chunk size missing"),
        (
            b"10000000000000000\r\n",
            "chunk size longer than 16 hex digits",
        ),
        (b"5\r\nhelloXX", "chunk data not followed by CRLF"),
        (b"5\nhello\r\n", "chunk line not ended by CRLF"),
    ] {
        let mut raw = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        raw.extend_from_slice(body);
        refused_and_closed(&gw, &raw, 400, detail);
    }
    let after = get(gw.addr, "/", "").json()["conn_id"].as_u64().unwrap();
    assert_ne!(
        first, after,
        "an upstream connection left mid-request was reused"
    );
}

#[test]
fn underscore_aliases_are_rejected_never_aliased() {
    const UNDERSCORE: &str = "header name with '_' aliases a header the gateway acts on";
    let (_up, gw) = setup();
    refused_and_closed(
        &gw,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent_Length: 5\r\n\r\nhello",
        400,
        UNDERSCORE,
    );
    refused_and_closed(
        &gw,
        b"GET / HTTP/1.1\r\nHost: t\r\nTransfer_Encoding: chunked\r\n\r\n",
        400,
        UNDERSCORE,
    );
    refused_and_closed(
        &gw,
        b"GET / HTTP/1.1\r\nHost: t\r\nX_Api_Key: k\r\n\r\n",
        400,
        UNDERSCORE,
    );
    // Spellings of the identity headers we set are removed before forwarding.
    let r = get(
        gw.addr,
        "/",
        "x_keyway_tenant: evil\r\nX-Keyway-Tenant: evil\r\nx-keyway-meta-team: evil\r\n",
    );
    assert_eq!(r.status, 200);
    for name in ["x_keyway_tenant", "x-keyway-tenant", "x-keyway-meta-team"] {
        assert!(
            r.echoed_header(name).is_empty(),
            "{name} reached the upstream"
        );
    }
}

#[test]
fn request_line_too_long_is_414() {
    let (_up, gw) = setup();
    let raw = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    refused_and_closed(
        &gw,
        raw.as_bytes(),
        414,
        "request line longer than the limit",
    );
}

#[test]
fn head_too_large_or_too_many_headers_is_431() {
    let (_up, gw) = setup();
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "v".repeat(17_000)
    );
    refused_and_closed(
        &gw,
        raw.as_bytes(),
        431,
        "request head larger than the limit",
    );
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..101 {
        raw.push_str(&format!("X-H{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    refused_and_closed(&gw, raw.as_bytes(), 431, "too many header fields");
}

#[test]
fn slowloris_head_gets_408_within_the_total_head_deadline() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    // One byte every 200 ms never completes a head; the total deadline is 1 s here.
    let start = std::time::Instant::now();
    for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " {
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
        if std::io::Write::write_all(&mut c.stream, &[*b]).is_err() {
            break;
        }
        // The sleep is the test: a head trickled one byte every 200 ms.
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = c.read_response("GET");
    assert_problem(
        &r,
        408,
        "request_timeout",
        Some("request head not received in time"),
    );
    assert!(c.is_closed());
}

#[test]
fn idle_body_gets_408_and_closes() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let r = c.read_response("POST");
    assert_problem(
        &r,
        408,
        "request_timeout",
        Some("request body not received in time"),
    );
    assert!(c.is_closed());
}

#[test]
fn body_over_the_limit_is_413_before_it_is_read() {
    let (_up, gw) = setup();
    // The head alone: the answer must come without the body being sent.
    refused_and_closed(
        &gw,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100001\r\n\r\n",
        413,
        "declared Content-Length exceeds the body size limit",
    );
    // A chunked body that grows past the limit.
    let mut c = Client::connect(gw.addr);
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let piece = vec![b'x'; 50_000];
    for _ in 0..3 {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes());
        if std::io::Write::write_all(&mut c.stream, &piece).is_err() {
            break;
        }
        c.send(b"\r\n");
    }
    let r = c.read_response("POST");
    assert_problem(
        &r,
        413,
        "body_too_large",
        Some("request body exceeds the body size limit"),
    );
    assert!(c.is_closed());
}

#[test]
fn expect_continue_on_a_refused_request_gets_the_final_status_only() {
    let up = Upstream::echo();
    let gw = Gateway::proxying(
        up.addr,
        "[[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\n",
        "",
    );
    let mut c = Client::connect(gw.addr);
    c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let r = c.read_response("POST");
    // The final answer first (no 100 Continue before the key check): no key table is loaded.
    assert_problem(&r, 503, "keys_unavailable", Some("no key table is loaded"));
}

#[test]
fn connect_and_upgrade() {
    let (_up, gw) = setup();
    refused_and_closed(
        &gw,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        405,
        "CONNECT is not supported by this gateway",
    );
    let mut c = Client::connect(gw.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
    let r = c.read_response("GET");
    assert_problem(
        &r,
        400,
        "bad_request",
        Some("protocol upgrade is not allowed on this route"),
    );
}

#[test]
fn upgrade_header_is_dropped_on_routes_that_allow_upgrades() {
    let up = Upstream::echo();
    let gw = Gateway::proxying(
        up.addr,
        "[[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\nallow_upgrade = true\n",
        "",
    );
    let r = get(gw.addr, "/", "Connection: Upgrade\r\nUpgrade: h2c\r\n");
    assert_eq!(r.status, 200);
    assert!(r.echoed_header("upgrade").is_empty());
}

#[test]
fn pipelined_requests_are_each_checked_and_leftovers_never_forwarded() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    // A body followed by a smuggled-looking request: the body ends where Content-Length says,
    // and the rest is parsed as the next request on its own.
    c.send(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
    let a = c.read_response("POST");
    assert_eq!(a.json()["path"], "/a");
    assert_eq!(a.json()["body_bytes"], 5);
    let b = c.read_response("GET");
    assert_eq!(b.json()["path"], "/b");
    let bad = c.read_response("GET");
    // The third request has no Host.
    assert_problem(&bad, 400, "bad_request", Some("Host header missing"));
    assert!(c.is_closed());
}

#[test]
fn dot_segments_and_encoded_slashes_are_refused() {
    let (_up, gw) = setup();
    for (path, detail) in [
        ("/public/../admin", "dot-segment"),
        ("/a/./b", "dot-segment"),
        ("/a/%2e%2e/b", "dot-segment"),
        ("/a%2Fb", "encoded '/' or '\\' (%2F, %5C)"),
        ("/a\\b", "backslash in the path"),
    ] {
        let r = exchange(
            gw.addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        assert_problem(&r, 400, "bad_request", Some(detail));
    }
}
