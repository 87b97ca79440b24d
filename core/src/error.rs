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

/// Every refusal code the gateway can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Problem {
    BadRequest,
    UriTooLong,
    HeadersTooLarge,
    RequestTimeout,
    BodyTooLarge,
    VersionNotSupported,
    MethodNotAllowed,
    ExpectationFailed,
    NoRoute,
    MissingKey,
    MalformedKey,
    InvalidKey,
    KeyRevoked,
    KeyExpired,
    ConflictingKeys,
    InsufficientScope,
    IpNotAllowed,
    RateLimited,
    QuotaExhausted,
    KeysUnavailable,
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamProtocol,
    Overloaded,
    ShuttingDown,
    TooManyConnections,
    NotImplemented,
}

impl Problem {
    /// Every problem, in declaration order (`ALL[p.index()] == p`).
    pub const ALL: [Problem; 27] = {
        use Problem::*;
        [
            BadRequest,
            UriTooLong,
            HeadersTooLarge,
            RequestTimeout,
            BodyTooLarge,
            VersionNotSupported,
            MethodNotAllowed,
            ExpectationFailed,
            NoRoute,
            MissingKey,
            MalformedKey,
            InvalidKey,
            KeyRevoked,
            KeyExpired,
            ConflictingKeys,
            InsufficientScope,
            IpNotAllowed,
            RateLimited,
            QuotaExhausted,
            KeysUnavailable,
            UpstreamUnavailable,
            UpstreamTimeout,
            UpstreamProtocol,
            Overloaded,
            ShuttingDown,
            TooManyConnections,
            NotImplemented,
        ]
    };

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn status(self) -> u16 {
        use Problem::*;
        match self {
            BadRequest | ConflictingKeys => 400,
            MissingKey | MalformedKey | InvalidKey | KeyRevoked | KeyExpired => 401,
            InsufficientScope | IpNotAllowed => 403,
            NoRoute => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            BodyTooLarge => 413,
            UriTooLong => 414,
            ExpectationFailed => 417,
            RateLimited | QuotaExhausted => 429,
            HeadersTooLarge => 431,
            UpstreamUnavailable | UpstreamProtocol => 502,
            KeysUnavailable | Overloaded | ShuttingDown | TooManyConnections => 503,
            NotImplemented => 501,
            UpstreamTimeout => 504,
            VersionNotSupported => 505,
        }
    }

    /// The stable machine-readable code in the problem body and in metrics' `outcome`.
    pub fn code(self) -> &'static str {
        use Problem::*;
        match self {
            BadRequest => "bad_request",
            UriTooLong => "uri_too_long",
            HeadersTooLarge => "headers_too_large",
            RequestTimeout => "request_timeout",
            BodyTooLarge => "body_too_large",
            VersionNotSupported => "http_version_not_supported",
            MethodNotAllowed => "method_not_allowed",
            ExpectationFailed => "expectation_failed",
            NoRoute => "no_route",
            MissingKey => "missing_key",
            MalformedKey => "malformed_key",
            InvalidKey => "invalid_key",
            KeyRevoked => "key_revoked",
            KeyExpired => "key_expired",
            ConflictingKeys => "conflicting_keys",
            InsufficientScope => "insufficient_scope",
            IpNotAllowed => "ip_not_allowed",
            RateLimited => "rate_limited",
            QuotaExhausted => "quota_exhausted",
            KeysUnavailable => "keys_unavailable",
            UpstreamUnavailable => "upstream_unavailable",
            UpstreamTimeout => "upstream_timeout",
            UpstreamProtocol => "upstream_protocol_error",
            Overloaded => "overloaded",
            ShuttingDown => "shutting_down",
            TooManyConnections => "too_many_connections",
            NotImplemented => "not_implemented",
        }
    }

    pub fn title(self) -> &'static str {
        use Problem::*;
        match self {
            BadRequest => "Bad request",
            UriTooLong => "Request line too long",
            HeadersTooLarge => "Request head too large",
            RequestTimeout => "Request timeout",
            BodyTooLarge => "Request body too large",
            VersionNotSupported => "HTTP version not supported",
            MethodNotAllowed => "Method not allowed",
            ExpectationFailed => "Expectation failed",
            NoRoute => "No route for this path",
            MissingKey => "API key missing",
            MalformedKey => "API key malformed",
            InvalidKey => "API key invalid",
            KeyRevoked => "API key revoked",
            KeyExpired => "API key expired or not yet valid",
            ConflictingKeys => "Conflicting API keys",
            InsufficientScope => "Insufficient scope",
            IpNotAllowed => "Client address not allowed",
            RateLimited => "Rate limit exceeded",
            QuotaExhausted => "Quota exhausted",
            KeysUnavailable => "Key table not loaded",
            UpstreamUnavailable => "Upstream unavailable",
            UpstreamTimeout => "Upstream timeout",
            UpstreamProtocol => "Upstream sent an invalid response",
            Overloaded => "Gateway overloaded",
            ShuttingDown => "Gateway shutting down",
            TooManyConnections => "Too many connections",
            NotImplemented => "Transfer coding not implemented",
        }
    }

    pub fn fault(self) -> Fault {
        match self.status() {
            // The client sent what we do not implement: its request, not a failure of ours.
            _ if self == Problem::NotImplemented => Fault::Client,
            500..=599 if self == Problem::KeysUnavailable => Fault::Internal,
            500..=599
                if matches!(
                    self,
                    Problem::Overloaded | Problem::ShuttingDown | Problem::TooManyConnections
                ) =>
            {
                Fault::Internal
            }
            500..=599 => Fault::Upstream,
            _ => Fault::Client,
        }
    }

    /// Whether the client connection must be closed after this answer: the request stream can
    /// no longer be trusted to be in sync (framing errors, timeouts, unread bodies).
    pub fn closes_connection(self) -> bool {
        use Problem::*;
        matches!(
            self,
            BadRequest
                | UriTooLong
                | HeadersTooLarge
                | RequestTimeout
                | VersionNotSupported
                | MethodNotAllowed
                | BodyTooLarge
                | TooManyConnections
                | NotImplemented
        )
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
