//! The API-key string format: `{prefix}_{30 random base62}{6 base62 CRC32}`, its generation,
//! its allocation-free check, the SHA-256 digest we store instead of the secret, and hints.
//!
//! - prefix: `[a-z][a-z0-9]*` segments joined by `_`, at most 32 bytes (`kw_live`, `kw_test`);
//! - then one `_`, then a 36-byte body: 30 characters of OS randomness (≈178 bits) followed by
//!   the CRC-32 (IEEE, as `crc32fast` computes it) of those 30 ASCII bytes, written as exactly
//!   6 base62 digits, most significant first, zero-padded.
//!
//! The base62 alphabet is `0-9A-Za-z` (digit value = position). The prefix is found from the
//! end (the body has a fixed length and no `_`), so prefixes may themselves contain `_`.
//! Nothing here ever puts a key's characters into an error: [`FormatError`] names only the rule.

use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// The prefix of production keys.
pub const DEFAULT_PREFIX: &str = "kw_live";
/// The prefix of test keys.
pub const TEST_PREFIX: &str = "kw_test";
/// Longest allowed prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 32;
/// Random base62 characters in a key.
pub const RANDOM_LEN: usize = 30;
/// Base62 characters carrying the CRC-32 of the random part.
pub const CHECKSUM_LEN: usize = 6;
/// Characters after the prefix's `_`.
pub const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// Shortest and longest possible key, in bytes.
pub const MIN_KEY_LEN: usize = 1 + 1 + BODY_LEN;
pub const MAX_KEY_LEN: usize = MAX_PREFIX_LEN + 1 + BODY_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a key or prefix is not of our format. Never carries the key's characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("wrong length: a key is PREFIX_ followed by {BODY_LEN} base62 characters")]
    Length,
    #[error("no '_' between the prefix and the {BODY_LEN} base62 characters")]
    Separator,
    #[error("bad prefix: use lowercase [a-z][a-z0-9]* segments joined by '_' (e.g. kw_live)")]
    Prefix,
    #[error("prefix longer than {MAX_PREFIX_LEN} characters")]
    PrefixTooLong,
    #[error("character outside the base62 alphabet (0-9, A-Z, a-z) after the prefix")]
    Alphabet,
    #[error("checksum mismatch: the key was mistyped or truncated")]
    Checksum,
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Checks a prefix for [`generate_secret`]: `[a-z][a-z0-9]*` segments joined by `_`, ≤ 32 bytes.
pub fn validate_prefix(prefix: &str) -> Result<(), FormatError> {
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(FormatError::PrefixTooLong);
    }
    if prefix_shape_ok(prefix.as_bytes()) {
        Ok(())
    } else {
        Err(FormatError::Prefix)
    }
}

fn prefix_shape_ok(prefix: &[u8]) -> bool {
    let mut segment_start = true;
    for &c in prefix {
        if segment_start {
            if !c.is_ascii_lowercase() {
                return false;
            }
            segment_start = false;
        } else if c == b'_' {
            segment_start = true;
        } else if !(c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return false;
        }
    }
    // Empty, or ending in '_' (an empty last segment), leaves segment_start set.
    !segment_start
}

fn is_base62(c: u8) -> bool {
    // Branch-free so that whole-body checks vectorise: `| 0x20` folds A-Z onto a-z and maps
    // nothing else into a-z.
    (c.wrapping_sub(b'0') < 10) | ((c | 0x20).wrapping_sub(b'a') < 26)
}

/// Digit values of the base62 alphabet (0 elsewhere; callers check the alphabet first).
const DIGIT: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 62 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The CRC-32 of the random part as 6 base62 digits, most significant first.
fn checksum_digits(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(random);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Value of 6 base62 digits (< 62^6 < 2^36). Independent of the CRC, so the CPU computes both
/// at once; encoding the CRC into digits instead would have to wait for it.
fn checksum_value(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0u64, |v, &c| v * 62 + u64::from(DIGIT[usize::from(c)]))
}

/// Splits a key into (prefix, body): the body is the last 36 bytes, after a `_`.
fn split(key: &[u8]) -> Result<(&[u8], &[u8]), FormatError> {
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        return Err(FormatError::Length);
    }
    let (prefix, rest) = key.split_at(key.len() - BODY_LEN - 1);
    match rest.split_first() {
        Some((b'_', body)) => Ok((prefix, body)),
        _ => Err(FormatError::Separator),
    }
}

/// The hot path's first check, in this order: length, `_` separator, prefix shape, base62
/// alphabet, CRC. No allocation, no hashing (a CRC of 30 bytes).
pub fn check_format(key: &[u8]) -> Result<(), FormatError> {
    let (prefix, body) = split(key)?;
    if !prefix_shape_ok(prefix) {
        return Err(FormatError::Prefix);
    }
    // Not short-circuiting: a fixed-length fold compiles to a few SIMD compares.
    if !body.iter().fold(true, |ok, &c| ok & is_base62(c)) {
        return Err(FormatError::Alphabet);
    }
    let (random, checksum) = body.split_at(RANDOM_LEN);
    if checksum_value(checksum) != u64::from(crc32fast::hash(random)) {
        return Err(FormatError::Checksum);
    }
    Ok(())
}

/// True when `key` has our shape — a valid prefix, `_`, then exactly 36 base62 characters —
/// whatever its checksum. Where a snapshot has legacy keys, keys that do not look like ours
/// skip the format check, so a mistyped key of ours is still answered `malformed_key`.
pub fn looks_like_ours(key: &[u8]) -> bool {
    match split(key) {
        Ok((prefix, body)) => prefix_shape_ok(prefix) && body.iter().all(|&c| is_base62(c)),
        Err(_) => false,
    }
}

/// SHA-256 of the whole key string: what snapshots and the store keep instead of the secret.
///
/// Keys fit one or two SHA-256 blocks; for them this pads by hand and calls the compression
/// function directly (SHA-NI where the CPU has it), skipping the streaming buffer.
pub fn digest(key: &[u8]) -> [u8; 32] {
    const MAX_SHORT: usize = 2 * 64 - 9; // room for the 0x80 byte and the 64-bit length
    if key.len() > MAX_SHORT {
        return Sha256::digest(key).into();
    }
    let mut buf = [0u8; 128];
    let total = if key.len() <= 64 - 9 { 64 } else { 128 };
    buf[..key.len()].copy_from_slice(key);
    buf[key.len()] = 0x80;
    buf[total - 8..total].copy_from_slice(&(key.len() as u64 * 8).to_be_bytes());
    let mut state = SHA256_INIT;
    for block in buf[..total].chunks_exact(64) {
        let block = GenericArray::<u8, U64>::from_slice(block);
        sha2::compress256(&mut state, std::slice::from_ref(block));
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

const SHA256_INIT: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Display hint: prefix + `_` + the first 4 random characters (`kw_live_Ab3x`): enough to
/// recognise a key, never enough to use it. For a key not of our format (legacy), its first
/// 4 characters when it has at least 16, else nothing.
pub fn hint(key: &str) -> String {
    if looks_like_ours(key.as_bytes()) {
        // prefix + '_' + 4 body characters; all ASCII, so `get` cannot split a character.
        let end = key.len() - BODY_LEN + 4;
        return key.get(..end).unwrap_or_default().to_owned();
    }
    if key.chars().count() >= 16 {
        key.chars().take(4).collect()
    } else {
        String::new()
    }
}

/// Fills `out` with uniformly random base62 characters from the OS (rejection sampling: bytes
/// ≥ 248 = 4×62 are dropped, so every character has probability exactly 1/62).
fn fill_base62(out: &mut [u8]) -> Result<(), FormatError> {
    let mut pool = [0u8; 64];
    let mut filled = 0;
    while filled < out.len() {
        getrandom::getrandom(&mut pool).map_err(FormatError::Random)?;
        for &b in pool.iter().filter(|&&b| b < 248) {
            if filled == out.len() {
                break;
            }
            out[filled] = ALPHABET[usize::from(b % 62)];
            filled += 1;
        }
    }
    Ok(())
}

/// A new secret `{prefix}_{30 random}{6 checksum}` from OS randomness. Shown once, never stored.
pub fn generate_secret(prefix: &str) -> Result<String, FormatError> {
    let mut random = [0u8; RANDOM_LEN];
    fill_base62(&mut random)?;
    compose_secret(prefix, &random)
}

/// Builds a key from a prefix and 30 given base62 characters, appending their checksum. For
/// deterministic keys in tests, benches and load generators; real keys use [`generate_secret`].
pub fn compose_secret(prefix: &str, random: &[u8]) -> Result<String, FormatError> {
    validate_prefix(prefix)?;
    if random.len() != RANDOM_LEN {
        return Err(FormatError::Length);
    }
    if !random.iter().all(|&c| is_base62(c)) {
        return Err(FormatError::Alphabet);
    }
    let mut key = String::with_capacity(prefix.len() + 1 + BODY_LEN);
    key.push_str(prefix);
    key.push('_');
    key.extend(random.iter().map(|&c| char::from(c)));
    key.extend(checksum_digits(random).iter().map(|&c| char::from(c)));
    Ok(key)
}

/// A new public key id, `key_` + 16 base62 characters (≈95 bits) of OS randomness.
pub fn try_generate_key_id() -> Result<String, FormatError> {
    let mut random = [0u8; 16];
    fill_base62(&mut random)?;
    let mut id = String::with_capacity(20);
    id.push_str("key_");
    id.extend(random.iter().map(|&c| char::from(c)));
    Ok(id)
}

/// [`try_generate_key_id`] for callers that cannot go on without the OS random generator.
///
/// # Panics
/// Only if the operating system's random number generator fails (`getrandom` errors).
pub fn generate_key_id() -> String {
    match try_generate_key_id() {
        Ok(id) => id,
        Err(e) => panic!("cannot generate a key id: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &[u8; 30] = b"Ab3xQ9zZ0k1LmNoPqRsTuVwXyZ0123";

    #[test]
    fn generated_keys_round_trip() {
        for prefix in [DEFAULT_PREFIX, TEST_PREFIX, "a", "acme_prod2_x"] {
            let key = generate_secret(prefix).unwrap();
            assert_eq!(key.len(), prefix.len() + 1 + BODY_LEN);
            assert!(key.starts_with(&format!("{prefix}_")));
            assert!(key[prefix.len() + 1..].bytes().all(is_base62));
            assert_eq!(check_format(key.as_bytes()), Ok(()));
            assert!(looks_like_ours(key.as_bytes()));
            assert_eq!(hint(&key), key[..prefix.len() + 5]);
        }
        let a = generate_secret(DEFAULT_PREFIX).unwrap();
        let b = generate_secret(DEFAULT_PREFIX).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn generation_uses_the_whole_alphabet() {
        let mut seen = [false; 256];
        for _ in 0..200 {
            for c in generate_secret("k").unwrap().bytes().skip(2) {
                seen[usize::from(c)] = true;
            }
        }
        assert!(ALPHABET.iter().all(|&c| seen[usize::from(c)]));
        assert_eq!(seen.iter().filter(|&&s| s).count(), 62);
    }

    #[test]
    fn compose_is_deterministic_and_checks() {
        let key = compose_secret("kw_live", RANDOM).unwrap();
        assert_eq!(key, compose_secret("kw_live", RANDOM).unwrap());
        assert_eq!(check_format(key.as_bytes()), Ok(()));
        assert_eq!(hint(&key), "kw_live_Ab3x");
        assert_eq!(
            compose_secret("kw_live", &RANDOM[1..]),
            Err(FormatError::Length)
        );
        assert_eq!(
            compose_secret("kw_live", &[b'-'; 30]),
            Err(FormatError::Alphabet)
        );
        assert_eq!(compose_secret("KW", RANDOM), Err(FormatError::Prefix));
    }

    #[test]
    fn checksum_digits_are_fixed_width() {
        // 0 -> "000000", u32::MAX -> 4 * 62^5 + ... still 6 digits.
        let digits = checksum_digits(b"");
        assert_eq!(digits.len(), 6);
        let mut v = u32::MAX;
        let mut expect = [b'0'; 6];
        for slot in expect.iter_mut().rev() {
            *slot = ALPHABET[(v % 62) as usize];
            v /= 62;
        }
        assert_eq!(v, 0, "u32::MAX fits in 6 base62 digits");
    }

    #[test]
    fn prefixes() {
        for ok in [
            "kw_live",
            "kw_test",
            "a",
            "a1",
            "a_b",
            "abc_d3f_g",
            &"a".repeat(32),
        ] {
            assert_eq!(validate_prefix(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "_", "a_", "_a", "a__b", "1a", "A", "kw-live", "kw_Live", "kw_1a", "é",
        ] {
            assert_eq!(validate_prefix(bad), Err(FormatError::Prefix), "{bad}");
        }
        assert_eq!(
            validate_prefix(&"a".repeat(33)),
            Err(FormatError::PrefixTooLong)
        );
    }

    #[test]
    fn every_malformed_case() {
        let good = compose_secret("kw_live", RANDOM).unwrap();
        let g = good.as_bytes();
        let with = |at: usize, c: u8| {
            let mut k = g.to_vec();
            k[at] = c;
            k
        };
        let cases: Vec<(Vec<u8>, FormatError)> = vec![
            (Vec::new(), FormatError::Length),
            (g[..MIN_KEY_LEN - 1].to_vec(), FormatError::Length),
            (
                [vec![b'a'; 33], g[7..].to_vec()].concat(),
                FormatError::Length,
            ),
            (g[..g.len() - 1].to_vec(), FormatError::Separator),
            ([g, b"x"].concat(), FormatError::Separator),
            (with(7, b'-'), FormatError::Separator),
            (with(0, b'K'), FormatError::Prefix),
            (with(3, b'_'), FormatError::Prefix), // "kw__ive": empty segment
            (with(4, b'-'), FormatError::Prefix),
            ([b"1w_live", &g[7..]].concat(), FormatError::Prefix),
            ([b"kw_live_", &g[7..]].concat(), FormatError::Prefix), // trailing '_'
            (with(10, b'-'), FormatError::Alphabet),
            (with(g.len() - 1, b'_'), FormatError::Alphabet),
            (with(20, 0xC3), FormatError::Alphabet),
            (
                with(10, if g[10] == b'a' { b'b' } else { b'a' }),
                FormatError::Checksum,
            ),
            (
                with(
                    g.len() - 1,
                    if g[g.len() - 1] == b'0' { b'1' } else { b'0' },
                ),
                FormatError::Checksum,
            ),
        ];
        for (key, want) in cases {
            assert_eq!(
                check_format(&key),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(&key)
            );
        }
        // Another valid prefix with the same body is still well-formed (the CRC covers the
        // random part only); the lookup decides.
        assert_eq!(check_format(&g[1..]), Ok(()));
        // Swapping two random characters keeps the alphabet and breaks the CRC.
        let mut swapped = g.to_vec();
        swapped.swap(8, 9);
        assert_eq!(check_format(&swapped), Err(FormatError::Checksum));
    }

    #[test]
    fn looks_like_ours_ignores_only_the_checksum() {
        let good = compose_secret("kw_live", RANDOM).unwrap();
        let mut bad_crc = good.clone().into_bytes();
        bad_crc[good.len() - 1] = if bad_crc[good.len() - 1] == b'0' {
            b'1'
        } else {
            b'0'
        };
        assert!(looks_like_ours(good.as_bytes()));
        assert!(looks_like_ours(&bad_crc));
        for legacy in [&b"sk_live_51Habc"[..], b"legacy-0123456789", b"", b"x"] {
            assert!(
                !looks_like_ours(legacy),
                "{}",
                String::from_utf8_lossy(legacy)
            );
        }
        // Other vendors use the same design (GitHub's `ghp_` tokens): they look like ours.
        assert!(looks_like_ours(b"ghp_0123456789abcdefABCDEF0123456789abcd"));
    }

    #[test]
    fn fast_digest_matches_streaming_sha256() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            let want: [u8; 32] = Sha256::digest(&data[..len]).into();
            assert_eq!(digest(&data[..len]), want, "len {len}");
        }
    }

    #[test]
    fn checksum_value_decodes_checksum_digits() {
        for random in [&[][..], b"a", RANDOM, b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
            let digits = checksum_digits(random);
            assert_eq!(checksum_value(&digits), u64::from(crc32fast::hash(random)));
        }
        assert_eq!(checksum_value(b"zzzzzz"), 62u64.pow(6) - 1);
    }

    #[test]
    fn base62_alphabet_is_exact() {
        for c in 0..=255u8 {
            assert_eq!(is_base62(c), ALPHABET.contains(&c), "{c}");
        }
    }

    #[test]
    fn digest_is_sha256() {
        let d = digest(b"abc");
        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(d[28..], [0xf2, 0x00, 0x15, 0xad]);
    }

    #[test]
    fn hints_never_reveal_much() {
        assert_eq!(hint("short-legacy"), "");
        assert_eq!(hint("legacy-key-0123456789"), "lega");
        assert_eq!(hint(""), "");
    }

    #[test]
    fn key_ids() {
        let id = generate_key_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("key_"));
        assert!(id[4..].bytes().all(is_base62));
        assert_ne!(id, generate_key_id());
    }

    #[test]
    fn errors_never_contain_the_key() {
        let good = compose_secret("kw_live", RANDOM).unwrap();
        let mut bad = good.into_bytes();
        bad[12] = b'#';
        let msg = check_format(&bad).unwrap_err().to_string();
        assert!(!msg.contains("Ab3x") && !msg.contains("kw_live"), "{msg}");
    }
}
