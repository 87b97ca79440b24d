//! What one request learns on its way through the steps ([`Request`]), and how a step says
//! the request stops here ([`Refusal`], [`Stop`]).
//!
//! A [`Conn`](super::Conn) keeps the socket and the buffers for the life of the connection;
//! a `Request` is reset at the start of each request, so nothing one request learned can leak
//! into the next.

use super::account::Note;
use super::keyinfo::Lifecycle;
use super::RequestId;
use crate::error::Problem;
use std::borrow::Cow;

/// How far the client's request has been taken off the connection; decides whether a
/// refusal may leave the connection open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Progress {
    /// The head did not parse: the connection's framing is lost.
    Unparsed,
    /// The head is parsed and still in the read buffer.
    Parsed,
    /// The head was consumed (written upstream); its body may still be unread.
    Consumed,
}

/// One request's state, written by the steps that learn it and read by the ones after.
pub struct Request {
    pub rid: RequestId,
    pub progress: Progress,
    /// The body the head announced is not read through: after a refusal the connection is
    /// out of step and must close.
    pub body_unread: bool,
    /// The matched `[[routes]]` index, once routed.
    pub route: Option<usize>,
    /// Header lines the gateway adds to this request's answer, whatever it is (rate-limit
    /// headers).
    pub answer_lines: Vec<u8>,
    /// Identity header lines for the upstream (key id, tenant, plan, scopes, metadata).
    pub identity_lines: Vec<u8>,
    /// The target to forward when it differs from the client's (judged path, key removed
    /// from the query); empty = forward the client's target.
    pub target: Vec<u8>,
    /// The path routes and scopes are judged on, when it differs from the client's (path
    /// parameters removed, unreserved characters decoded): `judged_rewritten`.
    pub judged: Vec<u8>,
    pub judged_rewritten: bool,
    /// The key came in `Authorization`: strip that header on the way up.
    pub strip_authorization: bool,
    /// `Deprecation` / `Sunset` for the answer, when the key is on its way out.
    pub lifecycle: Lifecycle,
    /// This request's audit facts (kept only when the audit log is on).
    pub note: Note,
}

impl Request {
    pub fn new(audit_on: bool) -> Request {
        Request {
            rid: RequestId::NONE,
            progress: Progress::Unparsed,
            body_unread: false,
            route: None,
            answer_lines: Vec::new(),
            identity_lines: Vec::new(),
            target: Vec::new(),
            judged: Vec::new(),
            judged_rewritten: false,
            strip_authorization: false,
            lifecycle: Lifecycle::default(),
            note: Note {
                on: audit_on,
                ..Default::default()
            },
        }
    }

    /// Forgets the previous request; buffers keep their capacity.
    pub fn reset(&mut self, client_ip: Option<std::net::IpAddr>) {
        self.rid = RequestId::NONE;
        self.progress = Progress::Unparsed;
        self.body_unread = false;
        self.route = None;
        self.answer_lines.clear();
        self.identity_lines.clear();
        self.target.clear();
        self.judged.clear();
        self.judged_rewritten = false;
        self.strip_authorization = false;
        self.lifecycle = Lifecycle::default();
        // Cheap either way (buffers are kept); the key, status and byte counts feed the
        // usage rollups even without an audit log.
        self.note.clear();
        if self.note.on {
            self.note.client_ip = client_ip;
        }
    }
}

/// The gateway answers this request itself: the problem and its one-line detail.
#[derive(Debug)]
pub struct Refusal {
    pub problem: Problem,
    pub detail: Cow<'static, str>,
}

impl Refusal {
    pub fn new(problem: Problem, detail: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal {
            problem,
            detail: detail.into(),
        }
    }
}

/// Why the steps stopped before the upstream's answer was relayed in full.
#[derive(Debug)]
pub enum Stop {
    /// Answer with a problem.
    Refuse(Refusal),
    /// Nothing more can be said: the client went away, or the answer was cut after its
    /// head reached the client. The connection closes.
    Abort,
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Stop {
        Stop::Refuse(r)
    }
}

impl From<crate::http::HeadError> for Refusal {
    fn from(e: crate::http::HeadError) -> Refusal {
        Refusal::new(e.problem, e.detail)
    }
}
