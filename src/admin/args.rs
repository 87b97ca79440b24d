//! An admin API body becomes the CLI's arguments: each JSON field is turned into its flag
//! (`"limits": ["20/s"]` -> `--limit=20/s`) and parsed by the very clap structs
//! `keyway keys create` and friends use, so both check the same things in the same words.
//! Values are always written `--flag=value`, and the URL's id after `--`, so no value can be
//! read as another flag.

use clap::error::{ContextKind, ContextValue};
use clap::{Args, FromArgMatches, Parser};
use serde_json::Value;

use crate::ops::Error;

/// How a JSON field maps to flags.
#[derive(Clone, Copy)]
pub enum Kind {
    /// A string (or a number, written as text): `--flag=value`.
    One,
    /// An array of strings: `--flag=v` per element.
    Many,
    /// An object of strings: `--flag=NAME=VALUE` per member.
    Pairs,
    /// `true`: `--flag`; `false`: nothing.
    Switch,
}

/// One JSON field and the flag it becomes.
pub struct Field {
    pub json: &'static str,
    pub flag: &'static str,
    pub kind: Kind,
}

const fn f(json: &'static str, flag: &'static str, kind: Kind) -> Field {
    Field { json, flag, kind }
}

/// The settings `keys create` and `keys update` share (`KeyFlags`).
const KEY_FLAGS: [Field; 11] = [
    f("name", "name", Kind::One),
    f("scopes", "scope", Kind::Many),
    f("meta", "meta", Kind::Pairs),
    f("allow_ips", "allow-ip", Kind::Many),
    f("limits", "limit", Kind::Many),
    f("max_body", "max-body", Kind::One),
    f("expires_at", "expires-at", Kind::One),
    f("ttl", "ttl", Kind::One),
    f("not_before", "not-before", Kind::One),
    f("credits", "credits", Kind::One),
    f("refill", "refill", Kind::One),
];

pub fn key_create_fields() -> Vec<Field> {
    let mut v = vec![
        f("tenant", "tenant", Kind::One),
        f("plan", "plan", Kind::One),
        f("prefix", "prefix", Kind::One),
    ];
    v.extend(KEY_FLAGS);
    v
}

pub fn key_update_fields() -> Vec<Field> {
    let mut v = vec![
        f("tenant", "tenant", Kind::One),
        f("plan", "plan", Kind::One),
        f("clear_scopes", "clear-scopes", Kind::Switch),
        f("clear_meta", "clear-meta", Kind::Switch),
        f("clear_allow_ips", "clear-allow-ip", Kind::Switch),
        f("enable", "enable", Kind::Switch),
    ];
    v.extend(KEY_FLAGS);
    v
}

pub fn rotate_fields() -> Vec<Field> {
    vec![f("grace", "grace", Kind::One)]
}

pub fn plan_fields() -> Vec<Field> {
    vec![
        f("limits", "limit", Kind::Many),
        f("scopes", "scope", Kind::Many),
        f("max_body", "max-body", Kind::One),
        f("allow_ips", "allow-ip", Kind::Many),
        f("upstream", "upstream", Kind::One),
        f("priority", "priority", Kind::One),
    ]
}

#[derive(Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
struct Wrap<T: Args + FromArgMatches> {
    #[command(flatten)]
    inner: T,
}

fn scalar(field: &str, v: &Value) -> Result<String, Error> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::invalid(format!(
            "{field}: write a string or a number"
        ))),
    }
}

/// The command line the body stands for.
fn argv(body: &Value, fields: &[Field], positional: Option<&str>) -> Result<Vec<String>, Error> {
    let empty = serde_json::Map::new();
    let obj = match body {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => return Err(Error::invalid("the body must be a JSON object")),
    };
    let mut out = Vec::new();
    for (name, value) in obj {
        let Some(field) = fields.iter().find(|f| f.json == name) else {
            let known: Vec<&str> = fields.iter().map(|f| f.json).collect();
            return Err(Error::invalid(format!(
                "unknown field {name:?}; expected one of {}",
                known.join(", ")
            )));
        };
        let flag = field.flag;
        match (field.kind, value) {
            (_, Value::Null) => {}
            (Kind::One, v) => out.push(format!("--{flag}={}", scalar(name, v)?)),
            (Kind::Many, Value::Array(items)) => {
                for item in items {
                    out.push(format!("--{flag}={}", scalar(name, item)?));
                }
            }
            (Kind::Pairs, Value::Object(members)) => {
                for (k, v) in members {
                    out.push(format!("--{flag}={k}={}", scalar(name, v)?));
                }
            }
            (Kind::Switch, Value::Bool(on)) => {
                if *on {
                    out.push(format!("--{flag}"));
                }
            }
            (Kind::Many, _) => {
                return Err(Error::invalid(format!("{name}: write an array of strings")))
            }
            (Kind::Pairs, _) => {
                return Err(Error::invalid(format!(
                    "{name}: write an object of NAME: VALUE strings"
                )))
            }
            (Kind::Switch, _) => {
                return Err(Error::invalid(format!("{name}: write true or false")))
            }
        }
    }
    if let Some(p) = positional {
        out.push("--".into());
        out.push(p.into());
    }
    Ok(out)
}

/// Parses `body` (and the URL's id or name) into the CLI's argument struct `T`.
pub fn parse<T: Args + FromArgMatches>(
    body: &Value,
    fields: &[Field],
    positional: Option<&str>,
) -> Result<T, Error> {
    let args = argv(body, fields, positional)?;
    Wrap::<T>::try_parse_from(args)
        .map(|w| w.inner)
        .map_err(|e| clap_error(&e, fields))
}

/// A clap refusal in the API's words: the JSON field, then what is wrong with it.
fn clap_error(e: &clap::Error, fields: &[Field]) -> Error {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        _ => String::new(),
    };
    let field = fields
        .iter()
        .find(|f| {
            arg.strip_prefix("--")
                .is_some_and(|a| a.split([' ', '=']).next() == Some(f.flag))
        })
        .map_or(arg.as_str(), |f| f.json);
    use clap::error::ErrorKind as K;
    let why = match e.kind() {
        K::MissingRequiredArgument => "is required".to_string(),
        K::ArgumentConflict => "conflicts with another field given; keep one".to_string(),
        K::UnknownArgument => "is not accepted here".to_string(),
        _ => std::error::Error::source(e).map_or_else(
            || {
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_string()
            },
            |s| s.to_string(),
        ),
    };
    Error::invalid(format!("{field}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::keys::{CreateArgs, UpdateArgs};
    use crate::ops::plans::SetArgs;
    use serde_json::json;

    #[test]
    fn a_create_body_is_the_create_flags() {
        let a: CreateArgs = parse(
            &json!({"tenant": "acme", "plan": "free", "scopes": ["GET /v1/**"],
                    "limits": ["20/s", "1000/day"], "meta": {"team": "pay"},
                    "credits": 500, "refill": "month", "max_body": "1MiB"}),
            &key_create_fields(),
            None,
        )
        .unwrap();
        assert_eq!((a.tenant.as_str(), a.plan.as_str()), ("acme", "free"));
        assert_eq!(a.flags.scopes, ["GET /v1/**"]);
        assert_eq!(a.flags.limits.len(), 2);
        assert_eq!(a.flags.meta, [("team".to_string(), "pay".to_string())]);
        assert_eq!(a.prefix, crate::keys::format::DEFAULT_PREFIX);
    }

    #[test]
    fn refusals_name_the_json_field() {
        let fields = key_create_fields();
        for (body, want) in [
            (json!({"plan": "p"}), "tenant: is required"),
            (
                json!({"tenant": "t", "plan": "p", "limits": ["0/s"]}),
                "limits: bad limit",
            ),
            (
                json!({"tenant": "t", "plan": "p", "limits": "20/s"}),
                "limits: write an array",
            ),
            (
                json!({"tenant": "t", "plan": "p", "colour": "red"}),
                "unknown field \"colour\"",
            ),
            (
                json!({"tenant": "t", "plan": "p", "ttl": "1d", "expires_at": "2030-01-01T00:00:00Z"}),
                "conflicts",
            ),
            (
                json!({"tenant": "t", "plan": "p", "scopes": [1]}),
                "scopes: bad scope",
            ),
            (json!([1, 2]), "must be a JSON object"),
        ] {
            let e = parse::<CreateArgs>(&body, &fields, None).err().unwrap();
            assert_eq!(e.code, "invalid_request");
            assert!(e.detail.contains(want), "{body}: {}", e.detail);
            assert!(!e.detail.contains('\n'), "{}", e.detail);
        }
    }

    #[test]
    fn values_cannot_become_flags() {
        // A value starting with `--` stays a value; the id is positional after `--`.
        let a: UpdateArgs = parse(
            &json!({"name": "--enable"}),
            &key_update_fields(),
            Some("--enable"),
        )
        .unwrap();
        assert_eq!(a.id, "--enable");
        assert_eq!(a.flags.name.as_deref(), Some("--enable"));
        assert!(!a.enable);
        let p: SetArgs = parse(&json!({"priority": -5}), &plan_fields(), Some("gold")).unwrap();
        assert_eq!((p.name.as_str(), p.priority), ("gold", -5));
    }
}
