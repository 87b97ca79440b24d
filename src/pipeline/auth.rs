//! Steps 3-6 of a request: extract the key (header or Bearer), then authenticate it against
//! the shard's current key table. Pure apart from reading the head: time comes in as `now`.

use crate::error::Problem;
use crate::http::headers::trim;
use crate::http::RequestHead;
use crate::keys::looks_like_ours;

/// Where the key came from, so the forwarding step strips exactly that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presented<'b> {
    pub key: &'b [u8],
    /// The Authorization header carried the key (Bearer) and must not be forwarded.
    pub via_authorization: bool,
    /// The key came in this query parameter (routes with `key_in_query`): it is removed from
    /// the target before forwarding.
    pub via_query: bool,
}

use super::request::Refusal;

/// Finds the key in the request: the configured key header, else `Authorization: Bearer`
/// (when enabled). Two key headers, or both sources with different keys: 400.
pub fn extract<'b>(
    head: &RequestHead,
    buf: &'b [u8],
    bearer: bool,
) -> Result<Option<Presented<'b>>, Refusal> {
    if head.duplicate_key_headers {
        return Err(Refusal::new(
            Problem::ConflictingKeys,
            "more than one API-key or Authorization header; send the key once",
        ));
    }
    let header = head
        .api_key_header
        .map(|i| trim(head.value(buf, i)))
        .filter(|v| !v.is_empty());
    let bearer_key = if bearer {
        head.authorization
            .and_then(|i| bearer_token(head.value(buf, i)))
    } else {
        None
    };
    match (header, bearer_key) {
        (None, None) => Ok(None),
        (Some(key), None) => Ok(Some(Presented {
            key,
            via_authorization: false,
            via_query: false,
        })),
        (None, Some(key)) => Ok(Some(Presented {
            key,
            via_authorization: true,
            via_query: false,
        })),
        (Some(a), Some(b)) if a == b => Ok(Some(Presented {
            key: a,
            via_authorization: true,
            via_query: false,
        })),
        (Some(_), Some(_)) => Err(Refusal::new(
            Problem::ConflictingKeys,
            "the API-key header and the Bearer token differ; send one key",
        )),
    }
}

/// Adds the key from query parameter `param` (a route's `key_in_query`) to what the headers
/// gave: the same key in both is fine, different keys or the parameter twice are a conflict.
pub fn with_query_key<'b>(
    from_headers: Option<Presented<'b>>,
    target: &'b [u8],
    param: &[u8],
) -> Result<Option<Presented<'b>>, Refusal> {
    let conflict = || {
        Refusal::new(
            Problem::ConflictingKeys,
            "the key was sent more than once with different values; send one key",
        )
    };
    let mut found: Option<&[u8]> = None;
    for (name, value) in query_pairs(target) {
        if name == param {
            if found.is_some() {
                return Err(conflict());
            }
            found = Some(value);
        }
    }
    match (from_headers, found.filter(|v| !v.is_empty())) {
        (p, None) => Ok(p),
        (None, Some(key)) => Ok(Some(Presented {
            key,
            via_authorization: false,
            via_query: true,
        })),
        (Some(p), Some(key)) if p.key == key => Ok(Some(Presented {
            via_query: true,
            ..p
        })),
        (Some(_), Some(_)) => Err(conflict()),
    }
}

/// `name=value` pairs of the target's query, raw (a key is URL-safe: nothing to decode).
fn query_pairs(target: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let query = match memchr::memchr(b'?', target) {
        Some(i) => &target[i + 1..],
        None => &[][..],
    };
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match memchr::memchr(b'=', p) {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &[][..]),
        })
}

/// Writes `target` without every `param=...` pair (and without a `?` left empty).
pub fn strip_query_param(target: &[u8], param: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &[][..]),
    };
    out.extend_from_slice(path);
    let mut first = true;
    for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let name = memchr::memchr(b'=', pair).map_or(pair, |i| &pair[..i]);
        if name == param {
            continue;
        }
        out.push(if first { b'?' } else { b'&' });
        out.extend_from_slice(pair);
        first = false;
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, one or more spaces).
pub fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = trim(value);
    if value.len() < 7 || !value[..6].eq_ignore_ascii_case(b"bearer") || value[6] != b' ' {
        return None;
    }
    let token = trim(&value[7..]);
    (!token.is_empty()).then_some(token)
}

/// Whether an Authorization value is a Bearer token shaped like one of our keys (whatever its
/// prefix or checksum). Such a header is never forwarded, on any route: a key must not reach
/// an upstream even where the gateway did not take it as the request's key.
pub fn carries_key(authorization: &[u8]) -> bool {
    bearer_token(authorization).is_some_and(looks_like_ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeadLimits, KnownHeaders};

    fn extract_from(raw: &[u8]) -> Result<Option<(Vec<u8>, bool)>, Problem> {
        let mut head = RequestHead::default();
        assert_eq!(
            head.parse(raw, &HeadLimits::default(), &KnownHeaders::default()),
            Ok(true)
        );
        extract(&head, raw, true)
            .map(|p| p.map(|p| (p.key.to_vec(), p.via_authorization)))
            .map_err(|r| r.problem)
    }

    #[test]
    fn sources() {
        assert_eq!(extract_from(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(None));
        assert_eq!(
            extract_from(b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: k1\r\n\r\n"),
            Ok(Some((b"k1".to_vec(), false)))
        );
        assert_eq!(
            extract_from(b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: bearer   k2\r\n\r\n"),
            Ok(Some((b"k2".to_vec(), true)))
        );
        // Another scheme is not a key: it is forwarded untouched.
        assert_eq!(
            extract_from(b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dTpw\r\n\r\n"),
            Ok(None)
        );
        assert_eq!(
            extract_from(
                b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: \r\nAuthorization: Bearer k3\r\n\r\n"
            ),
            Ok(Some((b"k3".to_vec(), true)))
        );
        assert_eq!(
            extract_from(
                b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: k\r\nAuthorization: Bearer k\r\n\r\n"
            ),
            Ok(Some((b"k".to_vec(), true)))
        );
    }

    #[test]
    fn conflicts_are_400() {
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: a\r\nx-api-key: b\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: a\r\nX-API-KEY: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: a\r\nAuthorization: Bearer b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a\r\nAuthorization: Bearer a\r\n\r\n",
        ] {
            assert_eq!(extract_from(raw), Err(Problem::ConflictingKeys));
        }
    }

    #[test]
    fn query_keys() {
        let t = b"/v1/x?a=1&api_key=K&b=2";
        let p = with_query_key(None, t, b"api_key").unwrap().unwrap();
        assert_eq!((p.key, p.via_query), (&b"K"[..], true));
        let header = Presented {
            key: b"K",
            via_authorization: false,
            via_query: false,
        };
        assert!(
            with_query_key(Some(header), t, b"api_key")
                .unwrap()
                .unwrap()
                .via_query
        );
        let other = Presented {
            key: b"L",
            ..header
        };
        assert!(with_query_key(Some(other), t, b"api_key").is_err());
        assert!(with_query_key(None, b"/x?api_key=a&api_key=b", b"api_key").is_err());
        assert_eq!(
            with_query_key(None, b"/x?other=1", b"api_key").unwrap(),
            None
        );
        let mut out = Vec::new();
        strip_query_param(t, b"api_key", &mut out);
        assert_eq!(out, b"/v1/x?a=1&b=2");
        strip_query_param(b"/v1/x?api_key=K", b"api_key", &mut out);
        assert_eq!(out, b"/v1/x");
        strip_query_param(b"/v1/x", b"api_key", &mut out);
        assert_eq!(out, b"/v1/x");
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BEARER  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearerabc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
    }

    #[test]
    fn key_shaped_bearer_tokens_are_recognised() {
        let key = b"Bearer kw_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(carries_key(key));
        assert!(carries_key(
            b"bearer  acme_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
        assert!(!carries_key(
            b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"
        ));
        assert!(!carries_key(
            b"Basic kw_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
    }
}
