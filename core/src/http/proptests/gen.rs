//! Generators: heads and chunked bodies built mostly from pieces that make sense together,
//! then mutated, plus plain noise.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

pub(super) fn pick(items: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    select(items).prop_map(<[u8]>::to_vec)
}

/// Mostly one of `good`, sometimes one of `bad`: most generated messages get far enough to be
/// accepted, and every refusal path is still reached.
pub(super) fn good_or_bad(
    good: &'static [&'static [u8]],
    bad: &'static [&'static [u8]],
) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![20 => pick(good), 2 => pick(bad), 1 => noise(12)]
}

/// Bytes from an alphabet rich in what parsers decide on.
pub(super) fn noise(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            4 => select(b"az09 \t:;,=/?#-_.\"".as_slice()),
            1 => select(b"\r\n\0\x01\x7f\x80\xe9\xff".as_slice()),
        ],
        0..max,
    )
}

pub(super) fn line_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![150 => Just(b"\r\n".to_vec()), 1 => Just(b"\n".to_vec()), 1 => Just(b"\r".to_vec())]
}

pub(super) fn header_name() -> impl Strategy<Value = Vec<u8>> {
    good_or_bad(
        &[
            b"Content-Length",
            b"content-length",
            b"Transfer-Encoding",
            b"Connection",
            b"X-Request-Id",
            b"x-api-key",
            b"Authorization",
            b"Expect",
            b"Upgrade",
            b"Keep-Alive",
            b"X-Other",
            b"Accept",
        ],
        &[
            b"X_Api_Key",
            b"Content_Length",
            b"Host ",
            b" Host",
            b"",
            b"Host",
        ],
    )
}

pub(super) fn header_value() -> impl Strategy<Value = Vec<u8>> {
    good_or_bad(
        &[
            b"a",
            b"0",
            b"5",
            b" 12 ",
            b"chunked",
            b"Chunked ",
            b"close",
            b"keep-alive",
            b"close, X-Other",
            b"upgrade",
            b"100-continue",
            b"websocket",
            b"",
            b"a\tb",
            b"\xe9t\xe9",
            b"kw_live_x",
            b"Bearer x",
            b"0123456789abcdef",
        ],
        &[
            b"-1",
            b"1,1",
            b"99999999999999999999",
            b"gzip, chunked",
            b"a\x01",
        ],
    )
}

/// Header lines: mostly pairs that make sense together, sometimes any name with any value.
pub(super) fn headers() -> impl Strategy<Value = Vec<u8>> {
    let pair = prop_oneof![
        12 => select(GOOD_PAIRS).prop_map(|(n, v)| (n.to_vec(), v.to_vec())),
        1 => (header_name(), header_value()),
    ];
    vec((pair, line_end()), 0..5).prop_map(|hs| {
        let mut out = Vec::new();
        for ((n, v), eol) in hs {
            out.extend_from_slice(&n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&v);
            out.extend_from_slice(&eol);
        }
        out
    })
}

pub(super) const GOOD_PAIRS: &[(&[u8], &[u8])] = &[
    (b"Content-Length", b"5"),
    (b"content-length", b" 0 "),
    (b"Transfer-Encoding", b"chunked"),
    (b"Connection", b"close"),
    (b"Connection", b"keep-alive, X-Other"),
    (b"Connection", b"upgrade"),
    (b"Upgrade", b"websocket"),
    (b"Expect", b"100-continue"),
    (b"X-Request-Id", b"abc-123"),
    (b"x-api-key", b"kw_live_x"),
    (b"Authorization", b"Bearer x"),
    (b"X-Other", b""),
    (b"X-Other", b"\xe9t\xe9\ta"),
    (b"Accept", b"*/*"),
];

/// Inserts, deletes or overwrites a few bytes at random places.
pub(super) fn mutate(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<usize>(),
        0..3u8,
        any::<u8>(),
        select(b"\r\n\0 :\t0\x80".as_slice()),
    );
    (base, vec(edit, 0..3)).prop_map(|(mut raw, edits)| {
        for (at, op, random, special) in edits {
            let b = if random % 2 == 0 { special } else { random };
            let i = at % (raw.len() + 1);
            match op {
                0 => raw.insert(i, b),
                1 if i < raw.len() => {
                    raw.remove(i);
                }
                _ if i < raw.len() => raw[i] = b,
                _ => raw.push(b),
            }
        }
        raw
    })
}

pub(super) fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let method = good_or_bad(
        &[
            b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"FOO",
        ],
        &[b"CONNECT", b"get", b""],
    );
    let target = good_or_bad(
        &[b"/", b"/a/b?c=d", b"/v1/x?api_key=k&b=1", b"/%20?"],
        &[b"*", b"http://x/", b"/a#b", b"/\xff", b"/a b"],
    );
    let version = good_or_bad(&[b"HTTP/1.1", b"HTTP/1.0"], &[b"HTTP/2.0", b"http/1.1"]);
    let host = good_or_bad(&[b"Host: a\r\n"], &[b"", b"Host: a\r\nHost: b\r\n"]);
    let lead = good_or_bad(&[b""], &[b"\r\n", b"\n"]);
    let head = (
        lead,
        method,
        target,
        version,
        line_end(),
        host,
        headers(),
        line_end(),
    )
        .prop_map(|(lead, m, t, v, eol, host, hs, end)| {
            [
                lead,
                m,
                b" ".to_vec(),
                t,
                b" ".to_vec(),
                v,
                eol,
                host,
                hs,
                end,
            ]
            .concat()
        });
    prop_oneof![8 => mutate(head), 1 => noise(64)]
}

pub(super) fn response_bytes() -> impl Strategy<Value = Vec<u8>> {
    let version = good_or_bad(&[b"HTTP/1.1", b"HTTP/1.0"], &[b"HTTP/2", b"HTTP/1.1 "]);
    let status = good_or_bad(
        &[b"200", b"204", b"304", b"100", b"103", b"404", b"502"],
        &[b"101", b"099", b"600", b"999", b"20", b"2000"],
    );
    let reason = good_or_bad(
        &[b"", b" ", b" OK", b" \xe9t\xe9", b" a\tb", b"  OK", b" OK "],
        &[b" \x01", b"OK"],
    );
    let lead = good_or_bad(&[b""], &[b"\r\n", b"\n"]);
    let body = prop_oneof![2 => Just(Vec::new()), 1 => noise(16)];
    let head = (
        lead,
        version,
        status,
        reason,
        line_end(),
        headers(),
        line_end(),
        body,
    )
        .prop_map(|(lead, v, s, r, eol, hs, end, body)| {
            [lead, v, b" ".to_vec(), s, r, eol, hs, end, body].concat()
        });
    prop_oneof![8 => mutate(head), 1 => noise(64)]
}
