//! `ConfigError` and the translation of toml/serde errors into one-line `FILE:LINE: what; what to do`.

use std::io;

use super::raw::table_of_fields;

/// Why a config could not be loaded. Display is always one line:
/// `FILE:LINE: what is wrong; what to do`, or `FILE: cannot read: ...` for I/O.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, a directory, not UTF-8, no permission...).
    #[error(
        "{origin}: cannot read: {}; pass --config PATH or set KEYWAY_CONFIG",
        io_reason(source)
    )]
    Io {
        origin: String,
        #[source]
        source: io::Error,
    },
    /// The file was read but is not valid TOML or not a valid config.
    #[error("{origin}:{line}: {what}; {fix}")]
    Invalid {
        origin: String,
        /// 1-based line of the offending value (or table, for missing fields).
        line: usize,
        what: String,
        fix: String,
    },
}

impl ConfigError {
    /// Builds an [`ConfigError::Invalid`], flattening any line breaks so Display stays one line.
    pub fn invalid(origin: &str, line: usize, what: &str, fix: &str) -> ConfigError {
        ConfigError::Invalid {
            origin: one_line(origin),
            line,
            what: one_line(what),
            fix: one_line(fix),
        }
    }

    /// Builds an [`ConfigError::Io`] for `origin`.
    pub fn io(origin: &str, source: io::Error) -> ConfigError {
        ConfigError::Io {
            origin: one_line(origin),
            source,
        }
    }

    /// The 1-based line the error points at, if it is about the file's content.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Invalid { line, .. } => Some(*line),
        }
    }

    /// Translates a toml/serde error for `text` (read from `origin`).
    pub fn from_toml(origin: &str, text: &str, err: &toml::de::Error) -> ConfigError {
        let offset = err.span().map_or(0, |s| s.start);
        let line = line_of(text, offset);
        let msg = err.message().lines().map(str::trim).collect::<Vec<_>>();
        let msg = msg.join(", ");
        let (what, fix) = if text.parse::<toml::Table>().is_err() {
            // the text is not TOML at all: report the parser's words
            let fix = if msg.starts_with("duplicate key") {
                "keep only one of them"
            } else {
                "fix the TOML syntax (see config/keyway.toml for a complete example)"
            };
            (msg, fix.to_owned())
        } else {
            describe_serde(text, offset, &msg)
        };
        ConfigError::invalid(origin, line, &what, &fix)
    }
}

/// Turns serde's message into (what, fix), naming the table or key involved.
fn describe_serde(text: &str, offset: usize, msg: &str) -> (String, String) {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let expected: Vec<&str> = rest
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        let table = match expected.first().and_then(|f| table_of_fields(f)) {
            Some("[upstreams.*]") => header_at(text, offset)
                .filter(|h| h.starts_with("[upstreams."))
                .unwrap_or_else(|| "[upstreams.*]".to_owned()),
            Some(t) => t.to_owned(),
            None => header_at(text, offset).unwrap_or_else(|| "the top level".to_owned()),
        };
        let place = if table == "the top level" { "at" } else { "in" };
        let fix = match expected.len() {
            0 => "remove it".to_owned(),
            1 => format!("expected {}", expected[0]),
            _ => format!("expected one of {}", expected.join(", ")),
        };
        return (format!("unknown field `{field}` {place} {table}"), fix);
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let table = header_at(text, offset).unwrap_or_else(|| "a table".to_owned());
        let fix = match field {
            "servers" => "add servers = [\"IP:PORT\"] (or \"HOST:PORT\")".to_owned(),
            "path_prefix" => "add path_prefix = \"/...\"".to_owned(),
            "upstream" => "add upstream = \"NAME\" naming an [upstreams.NAME] table".to_owned(),
            _ => format!("add {field} = ..."),
        };
        return (format!("missing field `{field}` in {table}"), fix);
    }
    let key = key_at(text, offset);
    let friendly = friendly_types(msg);
    let what = match key {
        Some(k) => format!("{k}: {friendly}"),
        None => friendly,
    };
    (
        what,
        "fix the value (see config/keyway.toml for the expected form)".to_owned(),
    )
}

/// Rewrites serde's type words ("usize", "struct RawServer") into plain ones.
fn friendly_types(msg: &str) -> String {
    let mut out = msg.to_owned();
    if let Some(i) = out.find("expected struct ") {
        out.truncate(i);
        out.push_str("expected a table");
    }
    for (from, to) in [
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected a map", "expected a table"),
        ("expected a sequence", "expected an array"),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// 1-based line number of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The last `[table]` / `[[array]]` header at or before `offset`'s line, as written
/// (brackets kept, spaces and quotes removed), e.g. `[upstreams.api]` or `[[routes]]`.
fn header_at(text: &str, offset: usize) -> Option<String> {
    let end = offset.min(text.len());
    let line_end = text.as_bytes()[end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |p| end + p);
    let line = text.as_bytes()[..line_end]
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).trim().to_owned())
        .rfind(|l| l.starts_with('['))?;
    let close = if line.starts_with("[[") {
        line.find("]]").map_or(line.len(), |i| i + 2)
    } else {
        line.find(']').map_or(line.len(), |i| i + 1)
    };
    Some(line[..close].replace([' ', '"'], ""))
}

/// The dotted key (`server.shards`) whose value sits at `offset`, guessed from the text.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let end = offset.min(text.len());
    let line_start = text.as_bytes()[..end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let before = String::from_utf8_lossy(&text.as_bytes()[line_start..end]).into_owned();
    let (key, _) = before.split_once('=')?;
    let key = key.trim().replace('"', "");
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    Some(match header_at(text, line_start) {
        Some(h) => format!("{}.{key}", h.trim_matches(['[', ']'])),
        None => key,
    })
}

/// Replaces line breaks and other control characters with spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The OS reason without its " (os error N)" tail, e.g. "No such file or directory".
fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error ") {
        Some(i) => &s[..i],
        None => &s,
    };
    one_line(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_is_one_line_without_os_code() {
        let e = ConfigError::io("keyway.toml", io::Error::from_raw_os_error(2));
        assert_eq!(
            e.to_string(),
            "keyway.toml: cannot read: No such file or directory; pass --config PATH or set KEYWAY_CONFIG"
        );
        assert_eq!(e.line(), None);
    }

    #[test]
    fn invalid_is_flattened() {
        let e = ConfigError::invalid("a.toml", 3, "bad\nthing", "do\r\nthis");
        assert_eq!(e.to_string(), "a.toml:3: bad thing; do  this");
        assert_eq!(e.line(), Some(3));
    }

    #[test]
    fn lines() {
        assert_eq!(line_of("", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn headers_and_keys() {
        let text = "a = 1\n[server]\nshards = \"x\"\n[[routes]]\n cost = -1\n";
        assert_eq!(header_at(text, 0), None);
        assert_eq!(header_at(text, 8).as_deref(), Some("[server]"));
        assert_eq!(header_at(text, text.len()).as_deref(), Some("[[routes]]"));
        assert_eq!(
            header_at("[ upstreams.\"a\" ] # [c]", 0).as_deref(),
            Some("[upstreams.a]")
        );
        assert_eq!(
            header_at("[[routes]] # [x]", 0).as_deref(),
            Some("[[routes]]")
        );
        assert_eq!(
            key_at(text, text.find("\"x\"").unwrap()).as_deref(),
            Some("server.shards")
        );
        assert_eq!(
            key_at(text, text.find("-1").unwrap()).as_deref(),
            Some("routes.cost")
        );
        assert_eq!(key_at(text, 4).as_deref(), Some("a"));
    }

    #[test]
    fn friendly() {
        assert_eq!(
            friendly_types("invalid type: integer `5`, expected struct RawServer"),
            "invalid type: integer `5`, expected a table"
        );
        assert_eq!(
            friendly_types("invalid type: string \"x\", expected usize"),
            "invalid type: string \"x\", expected a whole number"
        );
    }
}
