//! The admin API under `/v1/`: plans, keys, snapshot publish, status and usage, as JSON,
//! behind bearer tokens (`[admin] token_file`). Every operation calls `ops`, the code the
//! CLI runs; every change leaves a line in the admin audit trail. docs/admin-api.json is the
//! OpenAPI description of [`ROUTES`], checked against the running gateway by
//! tests/admin_api.rs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{Request, Response};
use super::tokens::{self, Access, Caller};
use super::{args, AdminState};
use crate::clock::unix_now;
use crate::ops::{self, admin_log, render, Error, Paths};
use crate::store::KeyFilter;

/// Every admin API operation: method and path pattern (`{x}`: one path segment).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status"),
    ("GET", "/v1/plans"),
    ("PUT", "/v1/plans/{name}"),
    ("DELETE", "/v1/plans/{name}"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys/{id}"),
    ("PATCH", "/v1/keys/{id}"),
    ("POST", "/v1/keys/{id}/revoke"),
    ("POST", "/v1/keys/{id}/rotate"),
    ("POST", "/v1/snapshot/publish"),
    ("GET", "/v1/usage"),
    ("POST", "/v1/leaks/github"),
    ("GET", "/v1/openapi.json"),
];

/// The OpenAPI document, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/admin-api.json");

/// Matches `path` against a pattern; the `{x}` segments' values in order.
fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let (p, s): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    if p.len() != s.len() {
        return None;
    }
    let mut params = Vec::new();
    for (want, got) in p.iter().zip(&s) {
        if want.starts_with('{') {
            if got.is_empty() {
                return None;
            }
            params.push(super::http::percent_decode(got));
        } else if want != got {
            return None;
        }
    }
    Some(params)
}

/// The pattern and parameters for a request, or the problem to answer.
fn route(method: &str, path: &str) -> Result<(&'static str, Vec<String>), Response> {
    let mut allowed = Vec::new();
    for (m, pattern) in ROUTES {
        if let Some(params) = matches(pattern, path) {
            if *m == method {
                return Ok((pattern, params));
            }
            allowed.push(*m);
        }
    }
    if allowed.is_empty() {
        return Err(Response::problem(
            404,
            "not_found",
            "no such admin API path; see GET /v1/openapi.json",
        ));
    }
    let mut r = Response::problem(
        405,
        "method_not_allowed",
        &format!("{path} takes {}", allowed.join(", ")),
    );
    r.headers.push(("Allow", allowed.join(", ")));
    Err(r)
}

fn problem(e: &Error) -> Response {
    Response::problem(e.status, e.code, &e.detail)
}

/// Who is calling, if allowed to do what `need` says; else who it was (as far as known)
/// and the refusal.
fn authorize(
    req: &Request,
    state: &AdminState,
    need: Access,
) -> Result<Caller, (String, Response)> {
    authenticate(req, state, need)
        .map_err(|r| ("unauthenticated".to_string(), r))
        .and_then(|c| {
            if need == Access::Write && c.access == Access::Read {
                let refusal = Response::problem(
                    403,
                    "read_only_token",
                    &format!(
                        "token {:?} may only read; use a write token for changes",
                        c.name
                    ),
                );
                return Err((format!("token:{}", c.name), refusal));
            }
            Ok(c)
        })
}

fn authenticate(req: &Request, state: &AdminState, need: Access) -> Result<Caller, Response> {
    let shared = state.shared();
    let Some(file) = &shared.config.admin.token_file else {
        return match need {
            Access::Read => Ok(Caller {
                name: "anonymous".into(),
                access: Access::Read,
            }),
            Access::Write => Err(Response::problem(
                403,
                "admin_writes_disabled",
                "changes over the admin API are off: set [admin] token_file (docs/admin-api.md)",
            )),
        };
    };
    let presented = req
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(Response::problem(
            401,
            "missing_token",
            "send the admin token as Authorization: Bearer TOKEN",
        ));
    };
    match tokens::check(file, presented) {
        Err(why) => {
            tracing::error!("{why}");
            Err(Response::problem(500, "admin_tokens_unusable", &why))
        }
        Ok(None) => Err(Response::problem(
            401,
            "invalid_token",
            "the admin token is not known; check [admin] token_file",
        )),
        Ok(Some(c)) => Ok(c),
    }
}

fn body_json(req: &Request) -> Result<Value, Error> {
    if req.body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        Error::new(
            400,
            "invalid_json",
            format!("the body is not valid JSON ({e}); send a JSON object"),
        )
    })
}

/// Answers one `/v1/` request.
pub fn handle(req: &Request, state: &AdminState) -> Response {
    let (pattern, params) = match route(&req.method, &req.path) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match pattern {
        "/v1/openapi.json" => {
            let mut r = Response::text(200, OPENAPI);
            r.content_type = "application/json";
            return r;
        }
        "/v1/leaks/github" => return super::leaks::handle(req, state),
        _ => {}
    }
    let write = req.method != "GET";
    let need = if write { Access::Write } else { Access::Read };
    let caller = authorize(req, state, need);
    let action = action_of(&req.method, pattern);
    let target = params.first().cloned().unwrap_or_default();
    let response = match &caller {
        Err((_, r)) => r.clone(),
        Ok(_) => {
            let paths = Paths::of(&state.shared().config);
            match run(pattern, &req.method, &params, req, state, &paths) {
                Ok(r) => r,
                Err(e) => problem(&e),
            }
        }
    };
    if write {
        let who = match &caller {
            Ok(c) => format!("token:{}", c.name),
            Err((who, _)) => who.clone(),
        };
        let code = response.code.clone();
        admin_log::append(
            &Paths::of(&state.shared().config),
            &admin_log::Entry {
                who: &who,
                action,
                target: &target,
                status: response.status,
                code: code.as_deref(),
                remote: req.peer.map(|p| p.to_string()),
            },
        );
    }
    response
}

/// The audit trail's name for an operation.
fn action_of(method: &str, pattern: &str) -> &'static str {
    match (method, pattern) {
        ("PUT", "/v1/plans/{name}") => "plan.set",
        ("DELETE", "/v1/plans/{name}") => "plan.delete",
        ("POST", "/v1/keys") => "key.create",
        ("PATCH", "/v1/keys/{id}") => "key.update",
        ("POST", "/v1/keys/{id}/revoke") => "key.revoke",
        ("POST", "/v1/keys/{id}/rotate") => "key.rotate",
        ("POST", "/v1/snapshot/publish") => "snapshot.publish",
        _ => "read",
    }
}

fn run(
    pattern: &str,
    method: &str,
    params: &[String],
    req: &Request,
    state: &AdminState,
    paths: &Paths,
) -> Result<Response, Error> {
    let now = unix_now();
    let id = params.first().map(String::as_str).unwrap_or("");
    match (method, pattern) {
        ("GET", "/v1/status") => Ok(Response::json(200, &status(state))),
        ("GET", "/v1/plans") => {
            let plans = ops::plans::list(&paths.open_store()?)?;
            let list: Vec<Value> = plans
                .iter()
                .map(|(p, n)| render::plan_json(p, *n))
                .collect();
            Ok(Response::json(200, &json!({ "plans": list })))
        }
        ("PUT", "/v1/plans/{name}") => {
            let a: ops::plans::SetArgs =
                args::parse(&body_json(req)?, &args::plan_fields(), Some(id))?;
            let (plan, created) = ops::plans::set(&paths.open_store()?, &a)?;
            let status = if created { 201 } else { 200 };
            Ok(Response::json(
                status,
                &json!({ "plan": render::plan_json(&plan, 0), "created": created,
                         "note": "keys see plan changes after the next snapshot publish" }),
            ))
        }
        ("DELETE", "/v1/plans/{name}") => {
            ops::plans::delete(&mut paths.open_store()?, id)?;
            Ok(Response::json(200, &json!({ "deleted": id })))
        }
        ("GET", "/v1/keys") => list_keys(req, paths, now),
        ("POST", "/v1/keys") => {
            let a: ops::keys::CreateArgs =
                args::parse(&body_json(req)?, &args::key_create_fields(), None)?;
            let c = ops::keys::create(&paths.open_store()?, &a, now)?;
            Ok(Response::json(
                201,
                &json!({ "id": c.key.id, "key": c.secret, "record": render::key_json(&c.key, now) }),
            ))
        }
        ("GET", "/v1/keys/{id}") => {
            let shown = ops::keys::show(&paths.open_store()?, paths, id, now)?;
            Ok(Response::json(200, &ops::keys::shown_json(&shown, now)))
        }
        ("PATCH", "/v1/keys/{id}") => {
            let a: ops::keys::UpdateArgs =
                args::parse(&body_json(req)?, &args::key_update_fields(), Some(id))?;
            let k = ops::keys::update(&mut paths.open_store()?, &a, now)?;
            Ok(Response::json(200, &render::key_json(&k, now)))
        }
        ("POST", "/v1/keys/{id}/revoke") => {
            ops::keys::revoke(&mut paths.open_store()?, id)?;
            Ok(Response::json(200, &json!({ "id": id, "revoked": true })))
        }
        ("POST", "/v1/keys/{id}/rotate") => {
            let a: ops::keys::RotateArgs =
                args::parse(&body_json(req)?, &args::rotate_fields(), Some(id))?;
            let r = ops::keys::rotate(&mut paths.open_store()?, id, a.grace, now)?;
            Ok(Response::json(200, &r.json()))
        }
        ("POST", "/v1/snapshot/publish") => publish(state, paths, now),
        ("GET", "/v1/usage") => usage(req, paths, now),
        _ => Err(Error::new(404, "not_found", "no such admin API path")),
    }
}

fn list_keys(req: &Request, paths: &Paths, now: i64) -> Result<Response, Error> {
    let limit = match req.param("limit") {
        None => 100,
        Some(v) => v.parse().map_err(|_| {
            Error::invalid(format!("limit {v:?} is not a number; ask for 1 to 1000"))
        })?,
    };
    let filter = KeyFilter {
        tenant: req.param("tenant"),
        plan: req.param("plan"),
    };
    let after = req.param("after");
    let page = ops::keys::list(&paths.open_store()?, &filter, after.as_deref(), limit)?;
    let keys: Vec<Value> = page.keys.iter().map(|k| render::key_json(k, now)).collect();
    Ok(Response::json(
        200,
        &json!({ "keys": keys, "next": page.next }),
    ))
}

fn usage(req: &Request, paths: &Paths, now: i64) -> Result<Response, Error> {
    use crate::rollup::report::{self, By};
    let by = match req.param("by") {
        None => By::Key,
        Some(b) => By::parse(&b).ok_or_else(|| {
            Error::invalid(format!(
                "by {b:?} is not known; use key, tenant, plan or route"
            ))
        })?,
    };
    let since = match req.param("since") {
        None => 86_400,
        Some(s) => ops::parse::duration(&s).map_err(Error::invalid)?,
    };
    let limit = match req.param("limit") {
        None => 25,
        Some(v) => v
            .parse()
            .map_err(|_| Error::invalid(format!("limit {v:?} is not a number; 0 means all")))?,
    };
    let r = report::for_paths(paths, by, since, limit, now)?;
    Ok(Response::json(200, &r.json()))
}

fn status(state: &AdminState) -> Value {
    let mut v = serde_json::to_value(state.status()).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        o.insert("shards".into(), state.shards.into());
        o.insert("ready".into(), state.not_ready().is_none().into());
        o.insert("not_ready".into(), state.not_ready().into());
        o.insert("io_uring".into(), state.io_uring.get().cloned().into());
    }
    v
}

/// Builds the snapshot, has the gateway reload it (as SIGHUP does) and waits up to 10 s for
/// every shard to serve it.
fn publish(state: &AdminState, paths: &Paths, now: i64) -> Result<Response, Error> {
    let built = ops::publish::build(paths, &paths.snapshot_path, now, &mut |_| {})?;
    let before = state.status().attempts;
    // SAFETY: kill(2) on our own pid; signal-hook's handler turns it into a reload.
    unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let served = loop {
        let s = state.status();
        if s.generation >= Some(built.generation) {
            break true;
        }
        if s.attempts > before && s.rolling_out.is_none() {
            if let Some(err) = s.last_error {
                return Err(Error::new(
                    500,
                    "snapshot_refused",
                    format!("the gateway refused the new snapshot, the old one serves: {err}"),
                ));
            }
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut v = serde_json::to_value(&built).unwrap_or_default();
    v["served"] = served.into();
    Ok(Response::json(200, &v))
}
