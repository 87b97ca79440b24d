//! What can go wrong with a request, who was at fault, and the problem code the client sees.
//!
//! Every refusal the gateway answers itself is a [`Problem`]: an HTTP status, a stable
//! snake_case `code` (documented in docs/errors.md and relied on by clients), a title, and
//! whether the connection must close afterwards. The pipeline turns it into an
//! `application/problem+json` response with `http::problem`.

/// Who caused a failure: decides 4xx versus 5xx and what is logged and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Internal,
}

/// What keyway says about one [`Problem`]: one row of the table in this file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The HTTP status of the answer.
    pub status: u16,
    /// The stable machine-readable code in the problem body and in metrics' `outcome`.
    pub code: &'static str,
    /// The problem body's `title`.
    pub title: &'static str,
    /// Who caused it: decides what is logged and counted.
    pub fault: Fault,
    /// The client connection must be closed after this answer: the request stream can no
    /// longer be trusted to be in sync (framing errors, timeouts, unread bodies).
    pub closes_connection: bool,
    /// The `WWW-Authenticate` value sent with the answer, if any (every 401 has one).
    pub challenge: Option<&'static [u8]>,
}

const BEARER: Option<&[u8]> = Some(b"Bearer realm=\"keyway\"");
const BEARER_INVALID: Option<&[u8]> = Some(b"Bearer realm=\"keyway\", error=\"invalid_token\"");
const NO_CHALLENGE: Option<&[u8]> = None;

/// Declares [`Problem`] and its table from one list: a row per problem, in index order.
macro_rules! problems {
    ($($name:ident => $status:literal, $code:literal, $title:literal, $fault:ident, $closes:ident, $challenge:ident;)*) => {
        /// Every refusal code the gateway can answer with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Problem {
            $($name,)*
        }

        impl Problem {
            /// Every problem, in declaration order (`ALL[p.index()] == p`).
            pub const ALL: [Problem; [$($code),*].len()] = [$(Problem::$name,)*];

            const FACTS: [Facts; [$($code),*].len()] = [$(Facts {
                status: $status,
                code: $code,
                title: $title,
                fault: Fault::$fault,
                closes_connection: problems!(@closes $closes),
                challenge: $challenge,
            },)*];
        }
    };
    (@closes close) => { true };
    (@closes keep) => { false };
}

// VersionNotSupported is a 5xx but the client's fault: it is the client's HTTP version.
#[rustfmt::skip]
problems! {
    BadRequest          => 400, "bad_request",                "Bad request",                       Client,   close, NO_CHALLENGE;
    UriTooLong          => 414, "uri_too_long",               "Request line too long",             Client,   close, NO_CHALLENGE;
    HeadersTooLarge     => 431, "headers_too_large",          "Request head too large",            Client,   close, NO_CHALLENGE;
    RequestTimeout      => 408, "request_timeout",            "Request timeout",                   Client,   close, NO_CHALLENGE;
    BodyTooLarge        => 413, "body_too_large",             "Request body too large",            Client,   close, NO_CHALLENGE;
    VersionNotSupported => 505, "http_version_not_supported", "HTTP version not supported",        Client,   close, NO_CHALLENGE;
    MethodNotAllowed    => 405, "method_not_allowed",         "Method not allowed",                Client,   close, NO_CHALLENGE;
    ExpectationFailed   => 417, "expectation_failed",         "Expectation failed",                Client,   keep,  NO_CHALLENGE;
    NoRoute             => 404, "no_route",                   "No route for this path",            Client,   keep,  NO_CHALLENGE;
    MissingKey          => 401, "missing_key",                "API key missing",                   Client,   keep,  BEARER;
    MalformedKey        => 401, "malformed_key",              "API key malformed",                 Client,   keep,  BEARER_INVALID;
    InvalidKey          => 401, "invalid_key",                "API key invalid",                   Client,   keep,  BEARER_INVALID;
    KeyRevoked          => 401, "key_revoked",                "API key revoked",                   Client,   keep,  BEARER_INVALID;
    KeyExpired          => 401, "key_expired",                "API key expired or not yet valid",  Client,   keep,  BEARER_INVALID;
    ConflictingKeys     => 400, "conflicting_keys",           "Conflicting API keys",              Client,   keep,  NO_CHALLENGE;
    InsufficientScope   => 403, "insufficient_scope",         "Insufficient scope",                Client,   keep,  NO_CHALLENGE;
    IpNotAllowed        => 403, "ip_not_allowed",             "Client address not allowed",        Client,   keep,  NO_CHALLENGE;
    RateLimited         => 429, "rate_limited",               "Rate limit exceeded",               Client,   keep,  NO_CHALLENGE;
    QuotaExhausted      => 429, "quota_exhausted",            "Quota exhausted",                   Client,   keep,  NO_CHALLENGE;
    KeysUnavailable     => 503, "keys_unavailable",           "Key table not loaded",              Internal, keep,  NO_CHALLENGE;
    UpstreamUnavailable => 502, "upstream_unavailable",       "Upstream unavailable",              Upstream, keep,  NO_CHALLENGE;
    UpstreamTimeout     => 504, "upstream_timeout",           "Upstream timeout",                  Upstream, keep,  NO_CHALLENGE;
    UpstreamProtocol    => 502, "upstream_protocol_error",    "Upstream sent an invalid response", Upstream, keep,  NO_CHALLENGE;
    UpstreamDown        => 503, "upstream_down",              "Every upstream server is out of rotation", Upstream, keep, NO_CHALLENGE;
    Overloaded          => 503, "overloaded",                 "Gateway overloaded",                Internal, keep,  NO_CHALLENGE;
    ShuttingDown        => 503, "shutting_down",              "Gateway shutting down",             Internal, keep,  NO_CHALLENGE;
    TooManyConnections  => 503, "too_many_connections",       "Too many connections",              Internal, close, NO_CHALLENGE;
    NotImplemented      => 501, "not_implemented",            "Transfer coding not implemented",   Client,   close, NO_CHALLENGE;
}

impl Problem {
    /// This problem's row of the table.
    #[inline]
    pub const fn facts(self) -> &'static Facts {
        &Self::FACTS[self as usize]
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    #[inline]
    pub const fn status(self) -> u16 {
        self.facts().status
    }

    /// The stable machine-readable code in the problem body and in metrics' `outcome`.
    #[inline]
    pub const fn code(self) -> &'static str {
        self.facts().code
    }

    #[inline]
    pub const fn title(self) -> &'static str {
        self.facts().title
    }

    #[inline]
    pub const fn fault(self) -> Fault {
        self.facts().fault
    }

    /// Whether the client connection must be closed after this answer: the request stream can
    /// no longer be trusted to be in sync (framing errors, timeouts, unread bodies).
    #[inline]
    pub const fn closes_connection(self) -> bool {
        self.facts().closes_connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, p) in Problem::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
    }

    #[test]
    fn codes_are_unique_and_every_401_has_a_challenge() {
        for (i, p) in Problem::ALL.iter().enumerate() {
            assert!(
                Problem::ALL[..i].iter().all(|q| q.code() != p.code()),
                "{p:?}"
            );
            assert_eq!(p.status() == 401, p.facts().challenge.is_some(), "{p:?}");
        }
    }

    #[test]
    fn auth_failures_are_client_faults_and_401() {
        for p in [
            Problem::MissingKey,
            Problem::MalformedKey,
            Problem::InvalidKey,
            Problem::KeyRevoked,
            Problem::KeyExpired,
        ] {
            assert_eq!(p.status(), 401);
            assert_eq!(p.fault(), Fault::Client);
        }
        assert_eq!(Problem::UpstreamTimeout.fault(), Fault::Upstream);
        assert_eq!(Problem::Overloaded.fault(), Fault::Internal);
    }
}
