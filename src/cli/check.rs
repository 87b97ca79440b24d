//! `keyway keys check ID --method M --path P [--ip A] [--content-length N]`: explains the
//! decision the gateway would take for that key and request, step by step — for support desks.
//! It reads the configuration (routes, upstreams) and the snapshot the gateway serves, not the
//! store: what it says is what the running gateway would do once that snapshot is loaded.

use crate::clock::unix_now;
use crate::config::Config;
use crate::keytable::{self, KeyTable};
use crate::policy::{explain, CompiledRoutes};
use std::net::IpAddr;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The key's id (`key_...`).
    pub id: String,
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Request path (a query is ignored).
    #[arg(long)]
    pub path: String,
    /// Client address (after any trusted proxies).
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Declared Content-Length of the body, if any.
    #[arg(long)]
    pub content_length: Option<u64>,
}

/// The explanation, one step a line; `Err` when the question cannot be answered.
pub fn run(args: &CheckArgs, config: Config) -> Result<Vec<String>, String> {
    let path = &config.keys.snapshot;
    let KeyTable { snapshot, policy } = keytable::load(path, &config)?;
    let key = snapshot
        .keys()
        .find(|k| k.id() == args.id)
        .ok_or_else(|| {
            format!(
                "no key {} in {} (generation {}); check the id, or `keyway snapshot build` if it was created since",
                args.id,
                path.display(),
                snapshot.generation()
            )
        })?;
    let mut lines = vec![format!(
        "key {} (tenant {}, plan {}), snapshot generation {}",
        key.id(),
        key.tenant(),
        key.plan().name(),
        snapshot.generation()
    )];
    let now = unix_now();
    let validity = if !key.enabled() {
        "revoked: every request is refused with 401 key_revoked".to_string()
    } else if key.not_before().is_some_and(|t| now < t)
        || key.expires_at().is_some_and(|t| now >= t)
    {
        "outside its validity window: refused with 401 key_expired".to_string()
    } else {
        "valid now".to_string()
    };
    lines.push(format!("validity: {validity}"));
    let routes = CompiledRoutes::compile(&config);
    let request_path = args
        .path
        .split_once('?')
        .map_or(args.path.as_str(), |(p, _)| p);
    // Judged as the gateway judges it: refused, or normalised (docs/policy.md).
    let (mut judged, mut forward) = (Vec::new(), Vec::new());
    let verdict = crate::policy::path::judge(request_path.as_bytes(), &mut judged, &mut forward);
    let judged_path = match verdict {
        Err(e) => {
            lines.push(format!(
                "path: refused with {} {}: {}",
                e.problem.status(),
                e.problem.code(),
                e.detail
            ));
            return Ok(lines);
        }
        Ok(j) if j.judged_rewritten => {
            let p = String::from_utf8_lossy(&judged).into_owned();
            lines.push(format!("path: judged as {p}"));
            p
        }
        Ok(_) => request_path.to_string(),
    };
    let request_path = judged_path.as_str();
    let Some(route) = routes.table.find(None, request_path.as_bytes()) else {
        lines.push(format!(
            "route: none matches {request_path}: refused with 404 no_route"
        ));
        return Ok(lines);
    };
    let route_cfg = &config.routes[route];
    if verdict.is_ok_and(|j| j.params) && !route_cfg.allow_path_params {
        lines.push(format!(
            "path: refused with 400 bad_request: {}",
            crate::policy::path::PARAMS_REFUSED
        ));
        return Ok(lines);
    }
    lines.push(format!(
        "route: {} ({})",
        route_cfg.path_prefix,
        if route_cfg.public {
            "public: no key needed"
        } else {
            "keyed"
        }
    ));
    if route_cfg.public {
        return Ok(lines);
    }
    let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    lines.extend(
        explain(
            &policy.for_key(key),
            &routes.policies[route],
            &args.method,
            request_path,
            args.ip,
            args.content_length,
        )
        .into_iter()
        .map(|line| name_upstreams(&line, &names)),
    );
    Ok(lines)
}

/// `upstream #1` -> `upstream #1 (api)`: the policy speaks in indices, people in names.
fn name_upstreams(line: &str, names: &[&str]) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = line;
    while let Some(i) = rest.find('#') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        out.push_str(&rest[..digits]);
        if let Some(name) = rest[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| names.get(n))
        {
            out.push_str(&format!(" ({name})"));
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}
