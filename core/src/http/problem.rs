//! Canned answers: the `application/problem+json` (RFC 9457) response for every refusal.

use super::json::push_str_escaped;
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
    let mut body = Vec::with_capacity(192);
    body.extend_from_slice(b"{\"type\":\"urn:keyway:problem:");
    body.extend_from_slice(problem.code().as_bytes());
    body.extend_from_slice(b"\",\"title\":\"");
    body.extend_from_slice(problem.title().as_bytes());
    body.extend_from_slice(b"\",\"status\":");
    body.extend_from_slice(itoa::Buffer::new().format(problem.status()).as_bytes());
    body.extend_from_slice(b",\"detail\":\"");
    push_str_escaped(&mut body, extras.detail);
    body.extend_from_slice(b"\",\"code\":\"");
    body.extend_from_slice(problem.code().as_bytes());
    body.push(b'"');
    if !extras.request_id.is_empty() {
        body.extend_from_slice(b",\"request_id\":\"");
        push_str_escaped(&mut body, &String::from_utf8_lossy(extras.request_id));
        body.push(b'"');
    }
    body.extend_from_slice(b"}\n");

    let mut w = HeadWriter::new(out);
    w.status_line(problem.status(), b"");
    if !extras.date.is_empty() {
        w.header(b"Date", extras.date);
    }
    w.header(b"Content-Type", b"application/problem+json");
    w.header_u64(b"Content-Length", body.len() as u64);
    if let Some(challenge) = problem.facts().challenge {
        w.header(b"WWW-Authenticate", challenge);
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
    out.extend_from_slice(&body);
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
