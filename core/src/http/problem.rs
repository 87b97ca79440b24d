//! Canned answers: the `application/problem+json` (RFC 9457) response for every refusal.

use super::write::HeadWriter;
use crate::error::Problem;

/// Extra facts for a problem response.
#[derive(Default)]
pub struct ProblemExtras<'a> {
    pub detail: &'a str,
    pub request_id: &'a [u8],
    /// Close the connection after the answer.
    pub close: bool,
    /// Additional header lines (e.g. `Retry-After`), each `(name, value)`.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// Additional complete header lines (`Name: value\r\n`...), appended as they are.
    pub raw_headers: &'a [u8],
    /// The `Date` value (an IMF-fixdate from the caller's clock); empty: no `Date`.
    pub date: &'a [u8],
}

/// Appends the whole response (head and body) for `problem` to `out`.
pub fn write_problem(out: &mut Vec<u8>, problem: Problem, extras: &ProblemExtras<'_>) {
    let mut body = String::with_capacity(192);
    body.push_str("{\"type\":\"urn:keyway:problem:");
    body.push_str(problem.code());
    body.push_str("\",\"title\":\"");
    body.push_str(problem.title());
    body.push_str("\",\"status\":");
    body.push_str(itoa::Buffer::new().format(problem.status()));
    body.push_str(",\"detail\":");
    json_string(&mut body, extras.detail);
    body.push_str(",\"code\":\"");
    body.push_str(problem.code());
    body.push('"');
    if !extras.request_id.is_empty() {
        body.push_str(",\"request_id\":");
        json_string(&mut body, &String::from_utf8_lossy(extras.request_id));
    }
    body.push_str("}\n");

    let mut w = HeadWriter::new(out);
    w.status_line(problem.status(), b"");
    if !extras.date.is_empty() {
        w.header(b"Date", extras.date);
    }
    w.header(b"Content-Type", b"application/problem+json");
    w.header_u64(b"Content-Length", body.len() as u64);
    if problem.status() == 401 {
        w.header(
            b"WWW-Authenticate",
            match problem {
                Problem::MissingKey => b"Bearer realm=\"keyway\"".as_slice(),
                _ => b"Bearer realm=\"keyway\", error=\"invalid_token\"".as_slice(),
            },
        );
    }
    if !extras.request_id.is_empty() {
        w.header(b"x-request-id", extras.request_id);
    }
    for (name, value) in extras.headers {
        w.header(name, value);
    }
    w.out.extend_from_slice(extras.raw_headers);
    if extras.close {
        w.header(b"Connection", b"close");
    }
    w.end();
    out.extend_from_slice(body.as_bytes());
}

/// Appends `s` as a JSON string literal.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_is_json_with_code() {
        let mut out = Vec::new();
        write_problem(
            &mut out,
            Problem::InvalidKey,
            &ProblemExtras {
                detail: "the \"key\" is unknown",
                request_id: b"abc",
                close: false,
                headers: &[],
                raw_headers: b"Retry-After: 3\r\n",
                date: b"Sun, 06 Nov 1994 08:49:37 GMT",
            },
        );
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(head.contains("WWW-Authenticate: Bearer"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("\r\nRetry-After: 3"));
        assert!(head.contains("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], "invalid_key");
        assert_eq!(v["status"], 401);
        assert_eq!(v["detail"], "the \"key\" is unknown");
        assert_eq!(v["request_id"], "abc");
    }
}
