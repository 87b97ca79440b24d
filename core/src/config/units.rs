//! Sizes ("16KiB", 1024) and durations ("10s", "500ms"): the raw TOML value and its parsing.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The longest duration any timeout may have; longer values are almost
/// certainly typos and would overflow `Instant` arithmetic at run time.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A size or duration as written in the file: a TOML integer or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quantity {
    Int(i64),
    Str(String),
}

impl fmt::Display for Quantity {
    /// Shows the value the way it was written, strings quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantity::Int(n) => write!(f, "{n}"),
            Quantity::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string such as \"16KiB\" or \"10s\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a byte size: a plain number of bytes, or a number followed by a
/// unit `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB`
/// (powers of 1024). Units are case-insensitive; a space may separate them.
/// Returns `None` on anything else, including overflow.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Converts a raw quantity to a byte count, or says why it is not one
/// (the "what is wrong" half of an error, without the key name).
pub fn size_of(q: &Quantity) -> Result<u64, String> {
    match q {
        Quantity::Int(n) if *n < 0 => Err(format!("{n} is negative")),
        Quantity::Int(n) => Ok(*n as u64),
        Quantity::Str(s) => parse_size(s).ok_or_else(|| format!("{s:?} is not a size")),
    }
}

/// Parses a duration such as "10s", "500ms", "2m" or "1h 30m".
/// A bare number has no unit and is rejected, as are values over [`MAX_DURATION`].
pub fn duration_of(q: &Quantity) -> Result<Duration, String> {
    match q {
        Quantity::Int(n) => Err(format!("{n} is not a duration (a unit is required)")),
        Quantity::Str(s) => {
            let d = humantime::parse_duration(s.trim())
                .map_err(|_| format!("{s:?} is not a duration"))?;
            if d > MAX_DURATION {
                return Err(format!("{s:?} is longer than 24h"));
            }
            Ok(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("512B"), Some(512));
        assert_eq!(parse_size("16KiB"), Some(16384));
        assert_eq!(parse_size("16 kib"), Some(16384));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1TB"), Some(1_000_000_000_000));
        assert_eq!(parse_size(" 8KB "), Some(8000));
    }

    #[test]
    fn bad_sizes() {
        for s in [
            "",
            "KiB",
            "1.5MiB",
            "-1",
            "10 M",
            "10XB",
            "1 2",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(s), None, "{s:?}");
        }
        assert_eq!(parse_size("20000000TiB"), None, "overflow");
    }

    #[test]
    fn size_of_quantity() {
        assert_eq!(size_of(&Quantity::Int(4096)), Ok(4096));
        assert_eq!(size_of(&Quantity::Str("4KiB".into())), Ok(4096));
        assert_eq!(size_of(&Quantity::Int(-1)), Err("-1 is negative".into()));
        assert_eq!(
            size_of(&Quantity::Str("4 kilo".into())),
            Err("\"4 kilo\" is not a size".into())
        );
    }

    #[test]
    fn durations() {
        let d = |s: &str| duration_of(&Quantity::Str(s.into()));
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("24h"), Ok(MAX_DURATION));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
        assert_eq!(d("10x"), Err("\"10x\" is not a duration".into()));
        assert_eq!(d("25h"), Err("\"25h\" is longer than 24h".into()));
        assert_eq!(
            duration_of(&Quantity::Int(10)),
            Err("10 is not a duration (a unit is required)".into())
        );
    }

    #[test]
    fn quantity_from_toml() {
        #[derive(serde::Deserialize)]
        struct T {
            a: Quantity,
            b: Quantity,
        }
        let t: T = toml::from_str("a = 5\nb = \"5s\"").unwrap();
        assert_eq!(t.a, Quantity::Int(5));
        assert_eq!(t.b, Quantity::Str("5s".into()));
        assert_eq!(t.a.to_string(), "5");
        assert_eq!(t.b.to_string(), "\"5s\"");
        let err = toml::from_str::<T>("a = true\nb = 1").err().unwrap();
        assert!(err.message().contains("expected an integer or a string"));
    }
}
