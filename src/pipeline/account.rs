//! Step 10, account: what one request leaves in the audit log. Facts are noted as the
//! pipeline learns them (only when the audit log is on: `Note::on`), then written as one
//! record by the shard's `ShardAudit` when the request ends.

use std::net::IpAddr;

use super::Finished;
use crate::audit::Record;
use crate::context::ShardCtx;
use crate::metrics::Outcome;

/// One request's audit facts. Buffers are reused from request to request.
#[derive(Default)]
pub struct Note {
    /// The audit log is on: fill the rest.
    pub on: bool,
    pub request_id: Vec<u8>,
    pub key_id: Vec<u8>,
    pub tenant: Vec<u8>,
    pub plan: Vec<u8>,
    pub method: Vec<u8>,
    pub path: Vec<u8>,
    pub upstream: Option<usize>,
    /// The response status sent to the client (0: none, or a refusal's).
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub upstream_us: Option<u64>,
    pub client_ip: Option<IpAddr>,
}

impl Note {
    pub fn clear(&mut self) {
        for b in [
            &mut self.request_id,
            &mut self.key_id,
            &mut self.tenant,
            &mut self.plan,
            &mut self.method,
            &mut self.path,
        ] {
            b.clear();
        }
        self.upstream = None;
        self.status = 0;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.upstream_us = None;
        self.client_ip = None;
    }

    /// Notes `value` into `field` when the log is on.
    #[inline]
    pub fn set(on: bool, field: &mut Vec<u8>, value: &[u8]) {
        if on {
            field.clear();
            field.extend_from_slice(value);
        }
    }
}

/// Counts the request into this minute's usage rollup (by key, tenant, plan and route).
#[inline]
pub fn rollup(ctx: &ShardCtx, note: &Note, done: &Finished, us: u64) {
    let (status, refusal) = match done.outcome {
        Outcome::Refused(p) => (p.status(), Some(p.code())),
        Outcome::Proxied | Outcome::Aborted => (note.status, None),
        Outcome::SelfService => (200, None),
    };
    let route = done
        .route
        .map_or(0, |r| ctx.shared.slots.route_slot[r] as u16);
    ctx.rollup.borrow_mut().add(
        (ctx.now_unix.get() / 60) as u32,
        &keyway_core::rollup::Request {
            key: &note.key_id,
            tenant: &note.tenant,
            plan: &note.plan,
            route,
            status,
            refusal,
            us,
            bytes_in: note.bytes_in,
            bytes_out: note.bytes_out,
        },
    );
}

/// Writes the request's record into the shard's audit batch (no-op without an audit log).
pub fn audit(ctx: &ShardCtx, note: &Note, done: &Finished, ts_ms: i64, duration_us: u64) {
    let Some(audit) = &ctx.audit else { return };
    let shared = &ctx.shared;
    let route = done
        .route
        .and_then(|r| shared.config.routes.get(r))
        .map_or(&b""[..], |r| r.path_prefix.as_bytes());
    let upstream = note
        .upstream
        .and_then(|u| shared.config.upstreams.get(u))
        .map_or(&b""[..], |u| u.name.as_bytes());
    let (status, outcome) = match done.outcome {
        Outcome::Refused(p) => (p.status(), p.code()),
        Outcome::Proxied => (note.status, "proxied"),
        Outcome::Aborted => (note.status, "aborted"),
        Outcome::SelfService => (200, "self_service"),
    };
    let dropped = audit.record(&Record {
        ts_ms,
        request_id: &note.request_id,
        key_id: &note.key_id,
        tenant: &note.tenant,
        plan: &note.plan,
        method: &note.method,
        path: &note.path,
        route,
        upstream,
        status,
        outcome,
        bytes_in: note.bytes_in,
        bytes_out: note.bytes_out,
        duration_us,
        upstream_us: note.upstream_us,
        client_ip: note.client_ip,
    });
    if dropped > 0 {
        ctx.metrics.borrow_mut().audit_dropped += dropped;
    }
}
