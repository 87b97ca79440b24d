//! The deterministic test body pattern (byte i = b'a' + i % 26), served in slices without allocating whole bodies.

/// Longest slice [`slice`] hands out.
pub const PIECE: usize = 64 * 1024;

const LEN: usize = PIECE + 26;

static PATTERN: [u8; LEN] = build();

const fn build() -> [u8; LEN] {
    let mut a = [0u8; LEN];
    let mut i = 0;
    while i < LEN {
        a[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    a
}

/// The pattern bytes at body offsets `offset..offset + len`; `len` must be at most [`PIECE`].
pub fn slice(offset: u64, len: usize) -> &'static [u8] {
    assert!(len <= PIECE, "pattern slice too long");
    let start = (offset % 26) as usize;
    &PATTERN[start..start + len]
}

/// The first `n` pattern bytes as an owned vector (for prebuilt responses).
pub fn to_vec(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_follow_offsets() {
        assert_eq!(slice(0, 3), b"abc");
        assert_eq!(slice(25, 3), b"zab");
        assert_eq!(slice(26 * 1000 + 1, 2), b"bc");
        assert_eq!(slice(7, PIECE).len(), PIECE);
        assert_eq!(to_vec(28), b"abcdefghijklmnopqrstuvwxyzab");
    }
}
