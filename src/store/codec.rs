//! How list-valued fields live in one TEXT column: one item per line, NULL when empty.
//!
//! Items never contain a newline (`validate` refuses them), so this is lossless, readable
//! from the `sqlite3` shell, and costs nothing for the common empty case when loading
//! millions of keys.

use rusqlite::types::{FromSqlError, Type, ValueRef};

use crate::keys::model::{Credits, LimitSpec, Window};

/// One item per line; `None` (SQL NULL) for an empty list.
pub(super) fn lines(items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| items.join("\n"))
}

pub(super) fn limits(items: &[LimitSpec]) -> Option<String> {
    let v: Vec<String> = items.iter().map(LimitSpec::to_string).collect();
    lines(&v)
}

/// `name=value` per line (names never contain `=`).
pub(super) fn metadata(items: &[(String, String)]) -> Option<String> {
    let v: Vec<String> = items.iter().map(|(k, v)| format!("{k}={v}")).collect();
    lines(&v)
}

fn text(v: ValueRef<'_>, col: usize) -> rusqlite::Result<Option<&str>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(Some)
            .map_err(rusqlite::Error::Utf8Error),
        other => Err(rusqlite::Error::InvalidColumnType(
            col,
            "list".into(),
            other.data_type(),
        )),
    }
}

fn corrupt(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, msg.into())
}

pub(super) fn read_lines(v: ValueRef<'_>, col: usize) -> rusqlite::Result<Vec<String>> {
    Ok(text(v, col)?.map_or_else(Vec::new, |t| t.split('\n').map(str::to_owned).collect()))
}

pub(super) fn read_limits(v: ValueRef<'_>, col: usize) -> rusqlite::Result<Vec<LimitSpec>> {
    match text(v, col)? {
        None => Ok(Vec::new()),
        Some(t) => t
            .split('\n')
            .map(|l| l.parse().map_err(|e: String| corrupt(col, e)))
            .collect(),
    }
}

pub(super) fn read_metadata(
    v: ValueRef<'_>,
    col: usize,
) -> rusqlite::Result<Vec<(String, String)>> {
    match text(v, col)? {
        None => Ok(Vec::new()),
        Some(t) => t
            .split('\n')
            .map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| corrupt(col, format!("metadata line without '=': {l:?}")))
            })
            .collect(),
    }
}

pub(super) fn read_digest(v: ValueRef<'_>, col: usize) -> rusqlite::Result<[u8; 32]> {
    let blob = v.as_blob().map_err(|e| match e {
        FromSqlError::InvalidType => {
            rusqlite::Error::InvalidColumnType(col, "digest".into(), v.data_type())
        }
        other => rusqlite::Error::FromSqlConversionFailure(col, Type::Blob, other.into()),
    })?;
    blob.try_into()
        .map_err(|_| corrupt(col, format!("digest of {} bytes, not 32", blob.len())))
}

/// Sizes are u64 in the model and INTEGER (i64) in SQLite; `validate` keeps them in range.
pub(super) fn size(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

pub(super) fn read_size(v: Option<i64>) -> Option<u64> {
    v.map(|n| u64::try_from(n).unwrap_or(0))
}

/// Credits as their two columns: the total (INTEGER; `validate` keeps it in range) and the
/// refill period (`'day'`, `'month'`, or NULL for never); both NULL without credits.
pub(super) fn credits(c: Option<Credits>) -> (Option<i64>, Option<&'static str>) {
    match c {
        None => (None, None),
        Some(c) => (
            Some(i64::try_from(c.total).unwrap_or(i64::MAX)),
            c.refill.map(Window::name),
        ),
    }
}

/// Reads the two credit columns (`total_col` and the one after it).
pub(super) fn read_credits(
    total: Option<i64>,
    refill: ValueRef<'_>,
    total_col: usize,
) -> rusqlite::Result<Option<Credits>> {
    let refill_col = total_col + 1;
    let refill = match text(refill, refill_col)? {
        None => None,
        Some("day") => Some(Window::Day),
        Some("month") => Some(Window::Month),
        Some(other) => {
            return Err(corrupt(
                refill_col,
                format!("credit refill {other:?}, not day or month"),
            ))
        }
    };
    match total {
        None if refill.is_some() => Err(corrupt(
            refill_col,
            "a credit refill without credits".into(),
        )),
        None => Ok(None),
        Some(n) => {
            let total = u64::try_from(n)
                .map_err(|_| corrupt(total_col, format!("negative credits {n}")))?;
            Ok(Some(Credits { total, refill }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_empty_is_null() {
        assert_eq!(lines(&[]), None);
        let scopes = vec!["GET /v1/**".to_string(), "* /v2/x".to_string()];
        let enc = lines(&scopes).unwrap();
        assert_eq!(
            read_lines(ValueRef::Text(enc.as_bytes()), 0).unwrap(),
            scopes
        );
        assert!(read_lines(ValueRef::Null, 0).unwrap().is_empty());

        let meta = vec![("team".to_string(), "a=b c".to_string())];
        let enc = metadata(&meta).unwrap();
        assert_eq!(
            read_metadata(ValueRef::Text(enc.as_bytes()), 0).unwrap(),
            meta
        );

        let lim: Vec<LimitSpec> = vec!["20/s".parse().unwrap(), "5/month".parse().unwrap()];
        let enc = limits(&lim).unwrap();
        assert_eq!(read_limits(ValueRef::Text(enc.as_bytes()), 0).unwrap(), lim);
        assert!(read_limits(ValueRef::Text(b"20/w"), 0).is_err());
    }

    #[test]
    fn credits_round_trip() {
        assert_eq!(credits(None), (None, None));
        assert_eq!(read_credits(None, ValueRef::Null, 0).unwrap(), None);
        for c in [
            Credits {
                total: 10,
                refill: None,
            },
            Credits {
                total: 1 << 40,
                refill: Some(Window::Day),
            },
            Credits {
                total: 1,
                refill: Some(Window::Month),
            },
        ] {
            let (total, refill) = credits(Some(c));
            let refill = refill.map_or(ValueRef::Null, |r| ValueRef::Text(r.as_bytes()));
            assert_eq!(read_credits(total, refill, 0).unwrap(), Some(c));
        }
        assert!(read_credits(None, ValueRef::Text(b"day"), 0).is_err());
        assert!(read_credits(Some(5), ValueRef::Text(b"hour"), 0).is_err());
        assert!(read_credits(Some(-1), ValueRef::Null, 0).is_err());
    }

    #[test]
    fn digest_must_be_32_bytes() {
        assert_eq!(read_digest(ValueRef::Blob(&[1; 32]), 0).unwrap(), [1; 32]);
        assert!(read_digest(ValueRef::Blob(&[1; 31]), 0).is_err());
        assert!(read_digest(ValueRef::Text(b"x"), 0).is_err());
    }
}
