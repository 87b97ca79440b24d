//! `[keys]` and `[identity]`: key file paths, and the rules for the header names the gateway reads and sets.

use std::path::Path;

use toml::Spanned;

use super::error::ConfigError;
use super::raw::{Opt, RawIdentity, RawKeys};
use super::validate::{path_value, Ctx};
use super::{Identity, Keys};

/// Headers the proxy itself manages (hop-by-hop, framing, credentials):
/// none may carry keys or identity, and `meta_prefix` may not produce them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "cookie",
    "expect",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Builds `[keys]` (paths under `state_dir`) and `[identity]`, checking every header name
/// and that the five headers and `meta_prefix` do not overlap.
pub fn keys_and_identity(
    rk: &RawKeys,
    ri: &RawIdentity,
    cx: &Ctx,
    state_dir: &Path,
) -> Result<(Keys, Identity), ConfigError> {
    let mut keys = Keys {
        snapshot: state_dir.join("keys.snap"),
        db: state_dir.join("keys.db"),
        bearer: rk.bearer.unwrap_or(true),
        ..Keys::default()
    };
    if let Some(v) = &rk.snapshot {
        keys.snapshot = state_dir.join(path_value(cx, "keys.snapshot", v)?);
    }
    if let Some(v) = &rk.db {
        keys.db = state_dir.join(path_value(cx, "keys.db", v)?);
    }
    if let Some(v) = &rk.self_service_path {
        let p = v.get_ref();
        keys.self_service_path = if p.is_empty() {
            None
        } else if p.starts_with('/')
            && p.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
        {
            Some(p.clone())
        } else {
            return Err(cx.err(
                &v.span(),
                format!("keys.self_service_path {p:?} is not a plain absolute path"),
                "write a path starting with '/' without spaces, '?' or '#', or \"\" to turn it off",
            ));
        };
    }
    if keys.snapshot == keys.db {
        let span = rk
            .db
            .as_ref()
            .or(rk.snapshot.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(cx.err(
            &span,
            "keys.snapshot and keys.db are the same file",
            "give them different paths",
        ));
    }
    let defaults = Identity::default();
    // (dotted key, raw value, default) in the order they are checked for clashes
    let named: [(&str, &Opt<String>, &str); 5] = [
        ("keys.header", &rk.header, &keys.header),
        (
            "identity.key_id_header",
            &ri.key_id_header,
            &defaults.key_id_header,
        ),
        (
            "identity.tenant_header",
            &ri.tenant_header,
            &defaults.tenant_header,
        ),
        (
            "identity.plan_header",
            &ri.plan_header,
            &defaults.plan_header,
        ),
        (
            "identity.scopes_header",
            &ri.scopes_header,
            &defaults.scopes_header,
        ),
    ];
    let mut names: Vec<String> = Vec::with_capacity(named.len());
    for (key, v, default) in named {
        let name = header_name(cx, key, v, default)?;
        if let Some(i) = names.iter().position(|n| *n == name) {
            let span = v
                .as_ref()
                .or(named[i].1.as_ref())
                .map_or(0..0, Spanned::span);
            return Err(cx.err(
                &span,
                format!("{} and {key} are both \"{name}\"", named[i].0),
                "give each header its own name",
            ));
        }
        names.push(name);
    }
    let prefix = match &ri.meta_prefix {
        None => defaults.meta_prefix.clone(),
        Some(v) => {
            let p = v.get_ref().trim().to_ascii_lowercase();
            if p.is_empty() || !is_token(&p) {
                return Err(cx.err(
                    &v.span(),
                    format!(
                        "identity.meta_prefix {:?} is not a valid header name prefix",
                        v.get_ref()
                    ),
                    "use letters, digits and '-', e.g. \"x-keyway-meta-\"",
                ));
            }
            if let Some(r) = RESERVED_HEADERS.iter().find(|r| r.starts_with(&p)) {
                return Err(cx.err(
                    &v.span(),
                    format!("identity.meta_prefix \"{p}\" could produce the header {r}"),
                    "use a distinctive prefix such as \"x-keyway-meta-\"",
                ));
            }
            p
        }
    };
    for (i, name) in names.iter().enumerate() {
        if name.starts_with(&prefix) {
            let (key, v, _) = named[i];
            let span = ri
                .meta_prefix
                .as_ref()
                .or(v.as_ref())
                .map_or(0..0, Spanned::span);
            return Err(cx.err(
                &span,
                format!("{key} \"{name}\" starts with identity.meta_prefix \"{prefix}\""),
                "choose a header name outside the metadata prefix, or another prefix",
            ));
        }
    }
    let [header, key_id_header, tenant_header, plan_header, scopes_header] =
        <[String; 5]>::try_from(names).expect("five names");
    keys.header = header;
    let identity = Identity {
        key_id_header,
        tenant_header,
        plan_header,
        scopes_header,
        meta_prefix: prefix,
    };
    Ok((keys, identity))
}

/// Lower-cases and checks a header name: an RFC 9110 token and not one the proxy manages.
fn header_name(cx: &Ctx, key: &str, v: &Opt<String>, default: &str) -> Result<String, ConfigError> {
    let Some(v) = v else {
        return Ok(default.to_owned());
    };
    let name = v.get_ref().trim().to_ascii_lowercase();
    if name.is_empty() || !is_token(&name) {
        return Err(cx.err(
            &v.span(),
            format!("{key} {:?} is not a valid header name", v.get_ref()),
            format!("use letters, digits and '-', e.g. \"{default}\""),
        ));
    }
    if name == "authorization" && key == "keys.header" {
        return Err(cx.err(
            &v.span(),
            "keys.header \"authorization\" is reserved for bearer tokens",
            "set keys.bearer = true to accept \"Authorization: Bearer KEY\" and pick another header, e.g. \"x-api-key\"",
        ));
    }
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(cx.err(
            &v.span(),
            format!("{key} \"{name}\" is a hop-by-hop, framing or credential header the proxy manages itself"),
            format!("choose another name, e.g. \"{default}\""),
        ));
    }
    Ok(name)
}

/// RFC 9110 `token`: the characters allowed in a header name.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(crate::http::is_tchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("x-api-key"));
        assert!(is_token("X_Api.Key~1"));
        assert!(!is_token(""));
        assert!(!is_token("x api"));
        assert!(!is_token("x:api"));
        assert!(!is_token("kéy"));
    }

    #[test]
    fn reserved_list_is_lower_case_tokens() {
        for h in RESERVED_HEADERS {
            assert!(is_token(h) && h.to_ascii_lowercase() == *h, "{h}");
        }
    }
}
