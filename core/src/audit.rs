//! One audit record as one JSON line. Pure: the time is an argument; appends to a buffer the
//! caller reuses (no allocation once the buffer has grown).

use std::io::Write;
use std::net::IpAddr;

use crate::clock::civil_from_days;
use crate::http::json::push_bytes_escaped;

/// What one finished request leaves in the audit log (DESIGN §7). Byte fields are written as
/// JSON strings; an empty one is written as `null` (no key, no route, no upstream). Never a
/// secret: the key appears only as its id.
#[derive(Clone, Copy, Debug, Default)]
pub struct Record<'a> {
    /// Unix milliseconds (UTC) when the request finished.
    pub ts_ms: i64,
    pub request_id: &'a [u8],
    pub key_id: &'a [u8],
    pub tenant: &'a [u8],
    pub plan: &'a [u8],
    pub method: &'a [u8],
    /// The path without its query (the query may carry a key or personal data).
    pub path: &'a [u8],
    pub route: &'a [u8],
    pub upstream: &'a [u8],
    /// The status the client got; 0 when the connection closed before any answer.
    pub status: u16,
    /// `proxied`, `aborted` or the problem code of the refusal (`rate_limited`, ...).
    pub outcome: &'a str,
    /// Body bytes received from the client and sent to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_us: u64,
    /// Time to the upstream's response head; `None` when no upstream was asked.
    pub upstream_us: Option<u64>,
    pub client_ip: Option<IpAddr>,
}

/// Appends `r` as one JSON object and a `\n`. Integers and IPv4 addresses are written by
/// hand (itoa) rather than through `core::fmt`: this runs once per request.
pub fn write_line(r: &Record<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ts\":\"");
    write_ts(r.ts_ms, out);
    out.push(b'"');
    field_str(out, "request_id", r.request_id);
    field_str(out, "key_id", r.key_id);
    field_str(out, "tenant", r.tenant);
    field_str(out, "plan", r.plan);
    field_str(out, "method", r.method);
    let path = r.path.split(|&b| b == b'?').next().unwrap_or_default();
    field_str(out, "path", path);
    field_str(out, "route", r.route);
    field_str(out, "upstream", r.upstream);
    field_num(out, "status", u64::from(r.status));
    field_str(out, "outcome", r.outcome.as_bytes());
    field_num(out, "bytes_in", r.bytes_in);
    field_num(out, "bytes_out", r.bytes_out);
    field_num(out, "duration_us", r.duration_us);
    match r.upstream_us {
        Some(us) => field_num(out, "upstream_us", us),
        None => out.extend_from_slice(b",\"upstream_us\":null"),
    }
    match r.client_ip {
        Some(IpAddr::V4(ip)) => {
            out.extend_from_slice(b",\"client_ip\":\"");
            let mut n = itoa::Buffer::new();
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(n.format(octet).as_bytes());
            }
            out.push(b'"');
        }
        Some(ip) => {
            let _ = write!(out, ",\"client_ip\":\"{ip}\"");
        }
        None => out.extend_from_slice(b",\"client_ip\":null"),
    }
    out.extend_from_slice(b"}\n");
}

/// `,"name":N`.
fn field_num(out: &mut Vec<u8>, name: &str, n: u64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `,"name":"value"` with JSON escaping, or `,"name":null` for an empty value.
fn field_str(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    if value.is_empty() {
        out.extend_from_slice(b"null");
        return;
    }
    out.push(b'"');
    push_bytes_escaped(out, value);
    out.push(b'"');
}

/// RFC 3339 UTC with milliseconds: `2026-11-28T00:19:53.123Z`.
fn write_ts(ms: i64, out: &mut Vec<u8>) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        let y = y as u32;
        digits(out, y / 100, 2);
        digits(out, y % 100, 2);
    } else {
        // Far outside any real clock: still well-formed JSON.
        let _ = write!(out, "{y}");
    }
    let in_day = in_day as u32;
    let parts = [
        (b'-', m as u32, 2),
        (b'-', d as u32, 2),
        (b'T', in_day / 3_600_000, 2),
        (b':', in_day / 60_000 % 60, 2),
        (b':', in_day / 1000 % 60, 2),
        (b'.', in_day % 1000, 3),
    ];
    for (sep, v, width) in parts {
        out.push(sep);
        digits(out, v, width);
    }
    out.push(b'Z');
}

/// `v` in exactly `width` decimal digits (`v < 10^width`).
fn digits(out: &mut Vec<u8>, v: u32, width: u32) {
    for i in (0..width).rev() {
        out.push(b'0' + (v / 10u32.pow(i) % 10) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(r: &Record<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        write_line(r, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(out.ends_with(b"}\n"));
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn a_proxied_request() {
        let v = line(&Record {
            ts_ms: 1_795_825_193_123,
            request_id: b"0a1b",
            key_id: b"key_abc",
            tenant: b"acme",
            plan: b"pro",
            method: b"POST",
            path: b"/v1/orders?api_key=kw_secret",
            route: b"api",
            upstream: b"orders",
            status: 201,
            outcome: "proxied",
            bytes_in: 12,
            bytes_out: 345,
            duration_us: 900,
            upstream_us: Some(700),
            client_ip: Some("10.1.2.3".parse().unwrap()),
        });
        assert_eq!(v["ts"], "2026-11-28T00:19:53.123Z");
        assert_eq!(v["path"], "/v1/orders", "the query never reaches the log");
        assert_eq!(v["key_id"], "key_abc");
        assert_eq!(v["status"], 201);
        assert_eq!(v["upstream_us"], 700);
        assert_eq!(v["client_ip"], "10.1.2.3");
        assert_eq!(v.as_object().unwrap().len(), 16);
    }

    #[test]
    fn a_refusal_without_key_or_route_and_hostile_bytes() {
        let v = line(&Record {
            ts_ms: -1,
            method: b"G\"ET\\",
            path: b"/\x01\xff\x7f",
            status: 400,
            outcome: "bad_request",
            ..Record::default()
        });
        assert_eq!(v["ts"], "1969-12-31T23:59:59.999Z");
        assert_eq!(v["key_id"], serde_json::Value::Null);
        assert_eq!(v["route"], serde_json::Value::Null);
        assert_eq!(v["upstream_us"], serde_json::Value::Null);
        assert_eq!(v["client_ip"], serde_json::Value::Null);
        assert_eq!(v["method"], "G\"ET\\");
        assert_eq!(v["path"], "/\u{1}\u{ff}\u{7f}");
    }

    #[test]
    fn extreme_times_do_not_panic() {
        for ms in [i64::MIN, i64::MAX, 0] {
            let mut out = Vec::new();
            write_line(
                &Record {
                    ts_ms: ms,
                    ..Record::default()
                },
                &mut out,
            );
            assert!(std::str::from_utf8(&out).is_ok());
        }
    }
}
