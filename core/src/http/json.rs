//! JSON string escaping for what is written per request (problem answers, audit lines): one
//! hand-written escaper that appends to a reused buffer and never allocates. Text comes out
//! byte for byte as serde_json writes it; off the hot path, use serde_json itself.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// For each byte, what follows the backslash when it is escaped (`u`: `\u00XX`), or 0 when
/// it is written as it is.
type Table = [u8; 256];

/// serde_json's rules: `"` and `\`, the short forms, `\u00XX` for the other controls; DEL and
/// every byte of a multi-byte character (U+2028 included) as they are.
static TEXT: Table = table(false);
/// ASCII out whatever comes in: as [`TEXT`], but every control (short forms included) and
/// every byte from DEL up as `\u00XX`.
static ASCII: Table = table(true);

const fn table(ascii_out: bool) -> Table {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 if !ascii_out => b'b',
            0x0c if !ascii_out => b'f',
            b'\n' if !ascii_out => b'n',
            b'\r' if !ascii_out => b'r',
            b'\t' if !ascii_out => b't',
            0x00..=0x1f => b'u',
            0x7f..=0xff if ascii_out => b'u',
            _ => 0,
        };
        b += 1;
    }
    t
}

fn escape(out: &mut Vec<u8>, bytes: &[u8], table: &Table) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let e = table[usize::from(b)];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if e == b'u' {
            let hex = [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]];
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex[0], hex[1]]);
        } else {
            out.extend_from_slice(&[b'\\', e]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `s` escaped for the inside of a JSON string (no quotes), as serde_json would.
#[inline]
pub fn push_str_escaped(out: &mut Vec<u8>, s: &str) {
    escape(out, s.as_bytes(), &TEXT);
}

/// Appends bytes that need not be UTF-8 for the inside of a JSON string (no quotes), as
/// ASCII: printable ASCII as it is (`"` and `\` escaped), every other byte as `\u00XX` (the
/// byte read as Latin-1), so the line stays valid UTF-8 whatever the input.
#[inline]
pub fn push_bytes_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    escape(out, bytes, &ASCII);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quoted_str(s: &str) -> String {
        let mut out = vec![b'"'];
        push_str_escaped(&mut out, s);
        out.push(b'"');
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_is_what_serde_json_writes() {
        let mut cases: Vec<String> = (0..=0x7f_u8).map(|b| char::from(b).to_string()).collect();
        cases.extend(
            [
                "",
                "plain ascii",
                "the \"key\" is unknown",
                "back\\slash \\\" both",
                "ctl \u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1b}\u{1f} end",
                "del \u{7f} and C1 \u{80}\u{9f}",
                "non-ASCII: kéy, ключ, 鍵, 🔑",
                "separators \u{2028} and \u{2029}",
                "\u{feff}bom and \u{ffff}",
            ]
            .map(String::from),
        );
        for s in cases {
            assert_eq!(quoted_str(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_what_serde_json_writes(s in any::<String>()) {
            prop_assert_eq!(quoted_str(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn any_bytes_come_out_ascii_and_read_back_as_latin1(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = vec![b'"'];
            push_bytes_escaped(&mut out, &b);
            out.push(b'"');
            prop_assert!(out.is_ascii());
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, b.iter().map(|&b| char::from(b)).collect::<String>());
        }
    }

    #[test]
    fn bytes_escape_every_control_and_high_byte_as_u00xx() {
        let mut out = Vec::new();
        push_bytes_escaped(&mut out, b"G\"ET\\ /a\n\t\x01\x7f\xff\xc3\xa9~");
        assert_eq!(
            out,
            b"G\\\"ET\\\\ /a\\u000a\\u0009\\u0001\\u007f\\u00ff\\u00c3\\u00a9~"
        );
    }
}
