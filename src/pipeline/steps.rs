//! The steps between a parsed head and the upstream: route, authenticate, authorize, admit,
//! identify. Each reads the head and the shard's tables, writes what it learned into the
//! [`Request`](super::Request), and passes the request on or returns the [`Refusal`].

use super::account::Note;
use super::auth;
use super::forward::Target;
use super::keyinfo::{lifecycle_headers, write_key_context, SUNSET_WARNING_S};
use super::limit;
use super::request::Refusal;
use super::Conn;
use crate::context::ShardCtx;
use crate::error::Problem;
use crate::http::headers::HeaderKind;
use crate::http::Framing;
use crate::keys::{digest, Authenticated, KeyView, PlanView};
use crate::keytable::KeyTable;
use crate::policy::path::{judge_target, PARAMS_REFUSED};
use crate::policy::{client_ip_lines, decide, Denial};
use crate::ratelimit::{key_handle, write_headers, Admission, CreditSpec};
use crate::stream::Stream;

const BODY_TOO_LARGE: &str = "declared Content-Length exceeds the body size limit";

/// Route, on the judged path (the one forwarded: `req.target` when it differs). Also refuses
/// what the route does not allow whoever asks: path parameters, upgrades.
pub(super) fn route<S: Stream>(ctx: &ShardCtx, conn: &mut Conn<S>) -> Result<usize, Refusal> {
    let shared = &ctx.shared;
    let (buf, head) = (conn.rb.pending(), &conn.head);
    let req = &mut conn.req;
    let (path, judgement) = judge_target(
        head.target.get(buf),
        head.path.get(buf).len(),
        &mut req.judged,
        &mut req.target,
    )?;
    req.judged_rewritten = judgement.judged_rewritten;
    let route = shared
        .routes
        .find(head.host.map(|h| h.get(buf)), path)
        .ok_or_else(|| Refusal::new(Problem::NoRoute, "no route matches this path"))?;
    req.route = Some(route);
    let route_cfg = &shared.config.routes[route];
    if judgement.params && !route_cfg.allow_path_params {
        return Err(Refusal::new(Problem::BadRequest, PARAMS_REFUSED));
    }
    if head.upgrade && !route_cfg.allow_upgrade {
        return Err(Refusal::new(
            Problem::BadRequest,
            "protocol upgrade is not allowed on this route",
        ));
    }
    Ok(route)
}

/// A public route forwards without a key; a declared body over the route's limit is refused
/// before any body byte is read (and before `100 Continue`).
pub(super) fn public_target<S: Stream>(
    ctx: &ShardCtx,
    conn: &Conn<S>,
    route: usize,
) -> Result<Target, Refusal> {
    let policy = &ctx.shared.route_policies[route];
    let max_body = policy.route_body_limit();
    if matches!(conn.head.framing, Framing::Length(n) if n > max_body) {
        return Err(Refusal::new(Problem::BodyTooLarge, BODY_TOO_LARGE));
    }
    Ok(Target {
        upstream: policy.upstream,
        max_body,
    })
}

/// The key table of the request's configuration (the request holds both until it ends,
/// whatever a reload does meanwhile: no per-request clone).
pub(super) fn key_table(ctx: &ShardCtx) -> Result<&KeyTable, Refusal> {
    ctx.keys.as_deref().ok_or_else(|| {
        Refusal::new(
            Problem::KeysUnavailable,
            "no key table is loaded; build one with `keyway snapshot build` and run `keyway reload`",
        )
    })
}

/// Authenticate: find the key (header, Bearer, or the route's query parameter, which is then
/// removed from the forwarded target) and check it against the live delta and the key table;
/// returns the table it was found in (whose policy applies) with it.
pub(super) fn authenticate<'k, S: Stream>(
    ctx: &'k ShardCtx,
    conn: &mut Conn<S>,
    route: Option<usize>,
    keys: &'k KeyTable,
) -> Result<(&'k KeyTable, Authenticated<'k>), Refusal> {
    let shared = &ctx.shared;
    let (buf, head) = (conn.rb.pending(), &conn.head);
    let key_in_query = route.and_then(|r| shared.config.routes[r].key_in_query.as_ref());
    let from_headers = auth::extract(head, buf, shared.config.keys.bearer)?;
    let target = head.target.get(buf);
    let presented = match key_in_query {
        Some(param) => auth::with_query_key(from_headers, target, param.as_bytes())?,
        None => from_headers,
    }
    .ok_or_else(|| {
        Refusal::new(
            Problem::MissingKey,
            "send your API key in the x-api-key header or as Authorization: Bearer",
        )
    })?;
    conn.req.strip_authorization = presented.via_authorization;
    if presented.via_query {
        // The key never travels further: forward the target without its parameter.
        let param = key_in_query.map_or("", |p| p.as_str());
        let judged = std::mem::take(&mut conn.req.target);
        let from = if judged.is_empty() { target } else { &judged };
        auth::strip_query_param(from, param.as_bytes(), &mut conn.req.target);
    }
    let now = ctx.now_unix.get();
    let (keys, caller) =
        crate::keytable::authenticate(keys, ctx.delta.as_deref(), presented.key, now)
            .map_err(|e| Refusal::new(e.problem(), e.detail()))?;
    if ctx.revoked.borrow().contains(caller.key.id()) {
        let e = crate::keys::auth::AuthError::Revoked;
        return Err(Refusal::new(e.problem(), e.detail()));
    }
    let (key, note) = (&caller.key, &mut conn.req.note);
    // Always: the usage rollups count by key, tenant and plan whether or not there is an
    // audit log.
    Note::set(true, &mut note.key_id, key.id().as_bytes());
    Note::set(true, &mut note.tenant, key.tenant().as_bytes());
    Note::set(true, &mut note.plan, key.plan().name().as_bytes());
    Ok((keys, caller))
}

/// Authorize: client address, scopes and declared body size in one pure decision, which
/// also picks the upstream.
pub(super) fn authorize<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    route: usize,
    keys: &KeyTable,
    key: &KeyView<'_>,
) -> Result<Target, Refusal> {
    let shared = &ctx.shared;
    let (buf, head) = (conn.rb.pending(), &conn.head);
    let key_policy = keys.policy.for_key(*key);
    let client = conn.peer_ip.map(|peer| {
        if key_policy.allow.is_empty() {
            // No allowlist: any address passes, so the x-forwarded-for walk is not needed.
            return peer;
        }
        let xff = head
            .headers
            .iter()
            .filter(|h| h.kind == HeaderKind::XForwardedFor)
            .map(|h| h.value.get(buf));
        client_ip_lines(peer, xff.collect::<SmallLines>(), &shared.trusted_proxies)
    });
    if conn.req.note.on {
        conn.req.note.client_ip = client;
    }
    let declared = match head.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let (method, path) = (head.method_span.get(buf), judged_path(conn, buf));
    let route_policy = &shared.route_policies[route];
    let decision = match client {
        Some(ip) => decide(&key_policy, route_policy, method, path, ip, declared),
        // No peer address (never on TCP): only an empty allowlist could pass; be strict.
        None => Err(Denial::IpNotAllowed),
    }
    .map_err(|denial| Refusal::new(denial.problem(), denial.detail(method, path)))?;
    Ok(Target {
        upstream: decision.upstream,
        max_body: decision.max_body,
    })
}

/// The path the route was found on and scopes are judged on.
fn judged_path<'b, S: Stream>(conn: &'b Conn<S>, buf: &'b [u8]) -> &'b [u8] {
    if conn.req.judged_rewritten {
        &conn.req.judged
    } else {
        conn.head.path.get(buf)
    }
}

/// Shed: past the shard's shedding point for the plan's priority (`limits.shed_after_in_flight`,
/// keyway-core `shedding`), 503 `overloaded` with `Retry-After`, before the request costs any
/// rate-limit count or upstream work. `plan`: the key's, `None` on a public route (priority 0).
pub(super) fn shed<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    plan: Option<&PlanView<'_>>,
) -> Result<(), Refusal> {
    let priority = plan.map_or(0, PlanView::priority);
    if !ctx.shedding.sheds(priority, ctx.in_flight.get() as u64) {
        return Ok(());
    }
    ctx.metrics
        .borrow_mut()
        .shed(plan.map_or("none", |p| p.name()));
    conn.req
        .answer_lines
        .extend_from_slice(b"Retry-After: 1\r\n");
    Err(Refusal::new(
        Problem::Overloaded,
        "the gateway is shedding load and serves higher-priority plans first; retry after the Retry-After seconds",
    ))
}

/// Admit: all of the key's rate limits and its quota at once, counted only if all admit.
/// The rate-limit headers go on the answer, whatever it is.
pub(super) async fn admit<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    route: usize,
    key: &KeyView<'_>,
) -> Result<(), Refusal> {
    let mut limits = limit::NO_LIMITS;
    let n = limit::effective_limits(key, &mut limits);
    let credits = key.credits().map(|c| CreditSpec {
        total: c.total,
        refill: c.refill_limit(),
    });
    if n == 0 && credits.is_none() {
        return Ok(());
    }
    let cost = ctx.shared.config.routes[route].cost;
    let handle = key_handle(key.id());
    let admission = limit::admit(ctx, handle, &limits[..n], credits.as_ref(), cost).await;
    write_headers(
        ctx.ratelimit_headers,
        &admission,
        &mut conn.req.answer_lines,
    );
    let refusal = match admission {
        Admission::Admitted(_) | Admission::Unlimited => return Ok(()),
        Admission::Limited { quota, .. } => Refusal::new(
            Problem::RateLimited,
            format!(
                "rate limit {} exceeded; retry after the Retry-After seconds",
                quota.limit
            ),
        ),
        Admission::QuotaExhausted { .. } => Refusal::new(
            Problem::QuotaExhausted,
            "the key's credits are spent; they refill on schedule or can be topped up",
        ),
        // `limit::admit` settles every wait; never forward on one.
        Admission::Wait { .. } => Refusal::new(
            Problem::RateLimited,
            "rate limit reached; retry in a moment",
        ),
    };
    ctx.metrics.borrow_mut().ratelimited(key.plan().name());
    Err(refusal)
}

/// Identify: the identity headers the upstream gets (key id, tenant, plan, scopes,
/// metadata), and `Deprecation`/`Sunset` for the client when the key is on its way out: a
/// rotated-out secret works until its grace ends (RFC 9745, RFC 8594), and a key that
/// expires within 7 days gets `Sunset` too.
pub(super) fn identify<S: Stream>(ctx: &ShardCtx, conn: &mut Conn<S>, caller: &Authenticated<'_>) {
    let names = &ctx.shared.config.identity;
    let key = &caller.key;
    let lines = &mut conn.req.identity_lines;
    for (name, value) in [
        (&names.key_id_header, key.id()),
        (&names.tenant_header, key.tenant()),
        (&names.plan_header, key.plan().name()),
    ] {
        lines.extend_from_slice(name.as_bytes());
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(value.as_bytes());
        lines.extend_from_slice(b"\r\n");
    }
    write_key_context(lines, names, key);
    let now = ctx.now_unix.get();
    let expiring = key
        .expires_at()
        .filter(|&t| t.saturating_sub(now) <= SUNSET_WARNING_S);
    if caller.grace_until.is_some() || expiring.is_some() {
        conn.req.lifecycle = lifecycle_headers(caller.grace_until, expiring, now);
    }
}

/// The key never leaves, in any form: a Bearer token shaped like one of our keys is always
/// dropped (`auth::carries_key`); one that is an imported key of another format (in the
/// table, `legacy`) is dropped too, on every route. Only a table with imported keys pays for
/// the hash.
pub(super) fn guard_bearer<S: Stream>(ctx: &ShardCtx, conn: &mut Conn<S>) {
    let (buf, head) = (conn.rb.pending(), &conn.head);
    if conn.req.strip_authorization {
        return;
    }
    let Some(token) = head
        .authorization
        .and_then(|i| auth::bearer_token(head.value(buf, i)))
    else {
        return;
    };
    let Some(table) = ctx.keys.as_ref() else {
        return;
    };
    let snapshot = &table.snapshot;
    if snapshot.has_legacy_keys() && snapshot.lookup(&digest(token)).is_some() {
        conn.req.strip_authorization = true;
    }
}

/// The `x-forwarded-for` lines of one request, on the stack (a request rarely has more than
/// one; past 8 only the last 8 are kept — the walk from the right never reads further).
pub(super) struct SmallLines<'b> {
    lines: [&'b [u8]; 8],
    len: usize,
}

impl<'b> FromIterator<&'b [u8]> for SmallLines<'b> {
    fn from_iter<I: IntoIterator<Item = &'b [u8]>>(iter: I) -> Self {
        let mut s = SmallLines {
            lines: [&[][..]; 8],
            len: 0,
        };
        for line in iter {
            if s.len == 8 {
                s.lines.copy_within(1.., 0);
                s.len = 7;
            }
            s.lines[s.len] = line;
            s.len += 1;
        }
        s
    }
}

impl<'b> IntoIterator for SmallLines<'b> {
    type Item = &'b [u8];
    type IntoIter = std::iter::Take<std::array::IntoIter<&'b [u8], 8>>;
    fn into_iter(self) -> Self::IntoIter {
        self.lines.into_iter().take(self.len)
    }
}
