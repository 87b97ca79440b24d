//! RateLimit response headers (draft-ietf-httpapi-ratelimit-headers, or legacy `X-RateLimit-*`)
//! and `Retry-After`, written as `Name: value\r\n` lines without allocating.

use super::{Admission, Quota};

/// `headers = "ietf" | "legacy" | "off"` in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMode {
    Ietf,
    Legacy,
    Off,
}

fn num(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn line(out: &mut Vec<u8>, name: &[u8], n: u64) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    num(out, n);
    out.extend_from_slice(b"\r\n");
}

fn quota(mode: HeaderMode, q: &Quota, out: &mut Vec<u8>) {
    match mode {
        HeaderMode::Ietf => {
            let name = q.limit.window.name().as_bytes();
            out.extend_from_slice(b"RateLimit-Policy: \"");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\";q=");
            num(out, q.limit.count);
            out.extend_from_slice(b";w=");
            num(out, q.limit.window.seconds());
            out.extend_from_slice(b"\r\nRateLimit: \"");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\";r=");
            num(out, q.remaining);
            out.extend_from_slice(b";t=");
            num(out, q.reset_s);
            out.extend_from_slice(b"\r\n");
        }
        HeaderMode::Legacy => {
            line(out, b"X-RateLimit-Limit", q.limit.count);
            line(out, b"X-RateLimit-Remaining", q.remaining);
            line(out, b"X-RateLimit-Reset", q.reset_s);
        }
        HeaderMode::Off => {}
    }
}

/// Appends the header lines for `admission`: the quota's RateLimit headers (per `mode`) and,
/// on a refusal, `Retry-After` (always, even with `Off`: it is plain HTTP). Retry-After is
/// never earlier than the quota's `t`.
pub fn write_headers(mode: HeaderMode, admission: &Admission, out: &mut Vec<u8>) {
    match admission {
        Admission::Admitted(q) => quota(mode, q, out),
        Admission::Unlimited => {}
        Admission::Limited {
            quota: q,
            retry_after_s,
        } => {
            quota(mode, q, out);
            line(out, b"Retry-After", (*retry_after_s).max(q.reset_s));
        }
        Admission::QuotaExhausted { retry_after_s } => {
            if let Some(s) = retry_after_s {
                line(out, b"Retry-After", *s);
            }
        }
        // Not an answer yet: the caller asks again.
        Admission::Wait { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::model::{LimitSpec, Window};

    fn q(count: u64, window: Window, remaining: u64, reset_s: u64) -> Quota {
        Quota {
            limit: LimitSpec { count, window },
            remaining,
            reset_s,
        }
    }

    fn text(mode: HeaderMode, a: &Admission) -> String {
        let mut out = Vec::new();
        write_headers(mode, a, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn draft_examples() {
        let a = Admission::Admitted(q(1000, Window::Minute, 42, 17));
        assert_eq!(
            text(HeaderMode::Ietf, &a),
            "RateLimit-Policy: \"minute\";q=1000;w=60\r\nRateLimit: \"minute\";r=42;t=17\r\n"
        );
        assert_eq!(
            text(HeaderMode::Legacy, &a),
            "X-RateLimit-Limit: 1000\r\nX-RateLimit-Remaining: 42\r\nX-RateLimit-Reset: 17\r\n"
        );
        assert_eq!(text(HeaderMode::Off, &a), "");
        let l = Admission::Limited {
            quota: q(20, Window::Second, 0, 1),
            retry_after_s: 1,
        };
        assert_eq!(
            text(HeaderMode::Ietf, &l),
            "RateLimit-Policy: \"second\";q=20;w=1\r\nRateLimit: \"second\";r=0;t=1\r\nRetry-After: 1\r\n"
        );
        assert_eq!(text(HeaderMode::Off, &l), "Retry-After: 1\r\n");
        let x = Admission::QuotaExhausted {
            retry_after_s: Some(3600),
        };
        assert_eq!(text(HeaderMode::Ietf, &x), "Retry-After: 3600\r\n");
        assert_eq!(
            text(
                HeaderMode::Ietf,
                &Admission::QuotaExhausted {
                    retry_after_s: None
                }
            ),
            ""
        );
        let big = Admission::Admitted(q(u64::MAX, Window::Day, 0, 86_400));
        assert!(text(HeaderMode::Ietf, &big).contains("q=18446744073709551615;w=86400"));
    }
}
