//! Proxying end to end: real keyway, real echo upstream, raw TCP and a real HTTP client.

mod common;

use common::*;

fn setup() -> (Upstream, Gateway) {
    let up = Upstream::echo();
    let gw = Gateway::proxying(up.addr, PUBLIC_ALL, "");
    (up, gw)
}

#[test]
fn get_arrives_as_sent_with_forwarding_headers() {
    let (_up, gw) = setup();
    let r = get(
        gw.addr,
        "/items/7?color=red",
        "Accept: application/json\r\nX-Custom: a b\r\n",
    );
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/items/7");
    assert_eq!(echo["query"], "color=red");
    assert_eq!(r.echoed_header("accept"), ["application/json"]);
    assert_eq!(r.echoed_header("x-custom"), ["a b"]);
    assert_eq!(r.echoed_header("host"), ["test"]);
    assert_eq!(r.echoed_header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(r.echoed_header("forwarded"), ["for=127.0.0.1;proto=http"]);
    let rid = r.echoed_header("x-request-id");
    assert_eq!(rid.len(), 1);
    assert_eq!(rid[0].len(), 24);
    assert_eq!(r.header("x-request-id"), Some(rid[0].as_str()));
}

#[test]
fn a_real_http_client_gets_the_upstream_answer() {
    let (_up, gw) = setup();
    let resp = ureq::get(&gw.url("/hello")).call().unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.into_json().unwrap();
    assert_eq!(body["path"], "/hello");
}

#[test]
fn client_request_id_is_kept_when_sane_and_replaced_when_not() {
    let (_up, gw) = setup();
    let r = get(gw.addr, "/", "x-request-id: abc-123\r\n");
    assert_eq!(r.echoed_header("x-request-id"), ["abc-123"]);
    let r = get(gw.addr, "/", "x-request-id: bad id with spaces\r\n");
    let ids = r.echoed_header("x-request-id");
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], "bad id with spaces");
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let (_up, gw) = setup();
    let r = get(
        gw.addr,
        "/",
        "Connection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic x\r\nUpgrade-Insecure-Requests: 1\r\n",
    );
    assert_eq!(r.status, 200);
    for h in [
        "connection",
        "x-private",
        "keep-alive",
        "te",
        "proxy-authorization",
    ] {
        assert!(r.echoed_header(h).is_empty(), "{h} was forwarded");
    }
    assert_eq!(r.echoed_header("upgrade-insecure-requests"), ["1"]);
}

#[test]
fn one_mib_chunked_upload_arrives_byte_exact() {
    let (_up, gw) = setup();
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut c = Client::connect(gw.addr);
    c.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.chunks(10_000) {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes());
        c.send(piece);
        c.send(b"\r\n");
    }
    c.send(b"0\r\n\r\n");
    let r = c.read_response("POST");
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["body_bytes"], body.len());
    assert_eq!(echo["body_sha256"], sha256_hex(&body));
}

#[test]
fn content_length_upload_arrives_byte_exact() {
    let (_up, gw) = setup();
    let body = pattern(300_000);
    let mut c = Client::connect(gw.addr);
    c.send(
        format!(
            "PUT /u HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let r = c.read_response("PUT");
    assert_eq!(r.json()["body_sha256"], sha256_hex(&body));
}

#[test]
fn five_mib_download_streams_byte_exact_in_every_framing() {
    let (_up, gw) = setup();
    let n = 5 * 1024 * 1024;
    let want = sha256_hex(&pattern(n));
    for path in [format!("/_test/bytes/{n}"), format!("/_test/chunked/{n}")] {
        let r = get(gw.addr, &path, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body.len(), n, "{path}");
        assert_eq!(sha256_hex(&r.body), want, "{path}");
    }
    // A close-delimited upstream body reaches an HTTP/1.1 client chunked, keep-alive intact.
    let mut c = Client::connect(gw.addr);
    c.send(format!("GET /_test/close/{n} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    let r = c.read_response("GET");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(sha256_hex(&r.body), want);
    c.send(b"GET /again HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(c.read_response("GET").json()["path"], "/again");
}

#[test]
fn http10_client_gets_a_close_delimited_body_for_chunked_upstreams() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /_test/chunked/1000 HTTP/1.0\r\n\r\n");
    let r = c.read_response("GET");
    assert_eq!(r.status, 200);
    assert!(r.header("transfer-encoding").is_none());
    assert_eq!(r.body, pattern(1000));
}

#[test]
fn http10_keep_alive_is_honoured() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    for _ in 0..3 {
        c.send(b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response("GET");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    c.send(b"GET /ten HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response("GET").header("connection"), Some("close"));
    assert!(c.is_closed());
}

#[test]
fn hundred_pipelined_requests_on_one_connection() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    let mut batch = Vec::new();
    for i in 0..100 {
        batch.extend_from_slice(format!("GET /p/{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    }
    c.send(&batch);
    for i in 0..100 {
        let r = c.read_response("GET");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["path"], format!("/p/{i}"));
    }
}

#[test]
fn keep_alive_is_reused_on_both_sides() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    let mut conn_ids = Vec::new();
    for i in 0..5 {
        c.send(format!("GET /k/{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        let r = c.read_response("GET");
        let echo = r.json();
        conn_ids.push(echo["conn_id"].as_u64().unwrap());
        assert_eq!(echo["conn_requests"], i + 1);
    }
    assert!(conn_ids.windows(2).all(|w| w[0] == w[1]), "{conn_ids:?}");
}

#[test]
fn head_204_and_304_have_no_body() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(b"HEAD /_test/bytes/5000 HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.read_response("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5000"));
    for code in [204, 304] {
        c.send(format!("GET /_test/status/{code} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        let r = c.read_response("GET");
        assert_eq!(r.status, code);
        assert!(r.header("transfer-encoding").is_none());
    }
    // The connection is still in sync after all three.
    c.send(b"GET /after HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(c.read_response("GET").json()["path"], "/after");
}

#[test]
fn expect_continue_gets_100_then_the_upstream_answer() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    c.send(b"POST /e HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response("POST");
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read_response("POST");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_bytes"], 5);
    assert!(r.echoed_header("expect").is_empty());
}

#[test]
fn server_sent_events_pass_without_delay() {
    let (_up, gw) = setup();
    let mut c = Client::connect(gw.addr);
    // 3 events 700 ms apart: the first must arrive long before the last is sent.
    c.send(b"GET /_test/sse/3/700 HTTP/1.1\r\nHost: test\r\n\r\n");
    let start = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    use std::io::Read;
    while !String::from_utf8_lossy(&seen).contains("data: 0") {
        let n = c.stream.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        start.elapsed() < std::time::Duration::from_millis(1200),
        "first event was held back for {:?}",
        start.elapsed()
    );
}

#[test]
fn no_route_is_a_404_problem() {
    let up = Upstream::echo();
    let gw = Gateway::proxying(
        up.addr,
        "[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\npublic = true\n",
        "",
    );
    let r = get(gw.addr, "/v2/x", "");
    assert_problem(&r, 404, "no_route", Some("no route matches this path"));
}

#[test]
fn keyed_routes_answer_503_until_a_key_table_exists() {
    let up = Upstream::echo();
    let gw = Gateway::proxying(
        up.addr,
        "[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\n\n[[routes]]\npath_prefix = \"/health\"\nupstream = \"api\"\npublic = true\n",
        "",
    );
    let r = get(gw.addr, "/v1/orders", "x-api-key: whatever\r\n");
    assert_problem(&r, 503, "keys_unavailable", Some("no key table is loaded"));
    assert_eq!(get(gw.addr, "/health", "").status, 200);
    let (status, body) = admin_get(gw.admin, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert_eq!(admin_get(gw.admin, "/healthz").0, 200);
}
