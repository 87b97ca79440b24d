//! IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) for `Date` and `Sunset`:
//! total over every `i64`, no allocation. Pure: the time comes in as an argument.

/// Length of an IMF-fixdate in bytes.
pub const IMF_FIXDATE_LEN: usize = 29;

/// The last second an IMF-fixdate can name (`Fri, 31 Dec 9999 23:59:59 GMT`).
pub const MAX_UNIX: i64 = 253_402_300_799;

/// `unix` seconds as an IMF-fixdate, clamped to 1970-01-01 ..= 9999-12-31 (a four-digit year):
/// never panics, whatever a key record or a clock says.
pub fn imf_fixdate(unix: i64) -> [u8; IMF_FIXDATE_LEN] {
    use std::io::Write;
    let secs = unix.clamp(0, MAX_UNIX) as u64;
    let date =
        httpdate::HttpDate::from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    let mut out = [b' '; IMF_FIXDATE_LEN];
    let _ = write!(&mut out[..], "{date}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_clamps() {
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(i64::MAX), b"Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(&imf_fixdate(i64::MIN), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
