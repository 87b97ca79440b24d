//! Header names the gateway acts on, and their classification.
//!
//! Every request header is classified once while parsing, so later steps (key extraction,
//! hop-by-hop removal, identity stripping) never compare names again. A name spelled with `_`
//! that would alias one of these (`content_length`, `x_api_key`) is refused or stripped: some
//! servers fold `_` into `-`, and the gateway must never disagree with its upstream about
//! which header is which.

/// What a request or response header means to the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    /// Anything else: forwarded as is.
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Hop-by-hop headers dropped on forwarding: Keep-Alive, Proxy-Connection, TE, Trailer,
    /// Upgrade (RFC 9110 §7.6.1), Proxy-Authorization.
    HopByHop,
    Upgrade,
    Expect,
    Authorization,
    /// The configured API-key header (default `x-api-key`).
    ApiKey,
    XForwardedFor,
    Forwarded,
    XRequestId,
    /// A header name the gateway sets for the upstream (identity, scopes, metadata): any
    /// client-sent copy is removed.
    Identity,
    /// A header with `_` that a `-`-folding server would read as one the gateway sets:
    /// removed, never forwarded.
    AliasedIdentity,
}

impl HeaderKind {
    /// Kinds whose `_` spelling must be refused outright (they decide framing or auth).
    fn refuse_alias(self) -> bool {
        matches!(
            self,
            HeaderKind::Host
                | HeaderKind::ContentLength
                | HeaderKind::TransferEncoding
                | HeaderKind::Connection
                | HeaderKind::Upgrade
                | HeaderKind::Expect
                | HeaderKind::Authorization
                | HeaderKind::ApiKey
                | HeaderKind::XForwardedFor
                | HeaderKind::Forwarded
                | HeaderKind::XRequestId
                | HeaderKind::HopByHop
        )
    }
}

/// Header names that come from configuration, lower-cased.
#[derive(Clone, Debug)]
pub struct KnownHeaders {
    pub api_key: Box<[u8]>,
    /// Exact names the gateway sets upstream (key id, tenant, plan, scopes).
    pub identity: Vec<Box<[u8]>>,
    /// Prefix of per-metadata headers (`x-keyway-meta-`).
    pub meta_prefix: Box<[u8]>,
}

impl Default for KnownHeaders {
    fn default() -> Self {
        KnownHeaders {
            api_key: b"x-api-key"[..].into(),
            identity: [
                "x-keyway-key-id",
                "x-keyway-tenant",
                "x-keyway-plan",
                "x-keyway-scopes",
            ]
            .iter()
            .map(|s| s.as_bytes().into())
            .collect(),
            meta_prefix: b"x-keyway-meta-"[..].into(),
        }
    }
}

/// A header name spelled with `_` that aliases one the gateway acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedAlias;

/// Result of classifying a name: the kind, or a refused `_` alias.
pub type Classified = Result<HeaderKind, RefusedAlias>;

impl KnownHeaders {
    /// Classifies a header name (any case). A name containing `_` is classified as if `_` were
    /// `-` (whatever its length): an alias of a framing/auth header is refused, an alias of an
    /// identity header is marked for removal, anything else is an ordinary header.
    #[inline]
    pub fn classify(&self, name: &[u8]) -> Classified {
        let kind = self.classify_by(name, |a, b| a.eq_ignore_ascii_case(b));
        if kind != HeaderKind::Other || !name.contains(&b'_') {
            return Ok(kind);
        }
        match self.classify_by(name, eq_folding_underscore) {
            HeaderKind::Other => Ok(HeaderKind::Other),
            HeaderKind::Identity => Ok(HeaderKind::AliasedIdentity),
            k if k.refuse_alias() => Err(RefusedAlias),
            _ => Ok(HeaderKind::Other),
        }
    }

    /// The kind of `name`, comparing names with `eq` (`name` first).
    #[inline]
    fn classify_by(&self, name: &[u8], eq: impl Fn(&[u8], &[u8]) -> bool + Copy) -> HeaderKind {
        let kind = KnownHeaders::framing_kind_by(name, eq);
        if kind != HeaderKind::Other {
            return kind;
        }
        if eq(name, &self.api_key) {
            return HeaderKind::ApiKey;
        }
        let prefix = &self.meta_prefix;
        if self.identity.iter().any(|n| eq(name, n))
            || (name.len() > prefix.len() && eq(&name[..prefix.len()], prefix))
        {
            return HeaderKind::Identity;
        }
        HeaderKind::Other
    }

    /// The fixed names of RFC 9110 and the forwarding headers, independent of configuration.
    #[inline]
    pub fn framing_kind(name: &[u8]) -> HeaderKind {
        KnownHeaders::framing_kind_by(name, |a, b| a.eq_ignore_ascii_case(b))
    }

    #[inline]
    fn framing_kind_by(name: &[u8], eq: impl Fn(&[u8], &[u8]) -> bool) -> HeaderKind {
        let eq = |s: &[u8]| eq(name, s);
        match name.len() {
            2 if eq(b"te") => HeaderKind::HopByHop,
            4 if eq(b"host") => HeaderKind::Host,
            6 if eq(b"expect") => HeaderKind::Expect,
            7 if eq(b"upgrade") => HeaderKind::Upgrade,
            7 if eq(b"trailer") => HeaderKind::HopByHop,
            9 if eq(b"forwarded") => HeaderKind::Forwarded,
            10 if eq(b"connection") => HeaderKind::Connection,
            10 if eq(b"keep-alive") => HeaderKind::HopByHop,
            12 if eq(b"x-request-id") => HeaderKind::XRequestId,
            13 if eq(b"authorization") => HeaderKind::Authorization,
            14 if eq(b"content-length") => HeaderKind::ContentLength,
            15 if eq(b"x-forwarded-for") => HeaderKind::XForwardedFor,
            16 if eq(b"proxy-connection") => HeaderKind::HopByHop,
            17 if eq(b"transfer-encoding") => HeaderKind::TransferEncoding,
            19 if eq(b"proxy-authorization") => HeaderKind::HopByHop,
            _ => HeaderKind::Other,
        }
    }
}

/// Case-insensitive equality reading `_` as `-` on both sides.
#[inline]
fn eq_folding_underscore(name: &[u8], known: &[u8]) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    name.len() == known.len() && name.iter().zip(known).all(|(&a, &b)| fold(a) == fold(b))
}

/// Whether a comma-separated header value contains `token` (case-insensitive, OWS trimmed).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// Trims optional whitespace (SP / HTAB) on both sides.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_known_names_in_any_case() {
        let k = KnownHeaders::default();
        assert_eq!(k.classify(b"Content-Length"), Ok(HeaderKind::ContentLength));
        assert_eq!(
            k.classify(b"TRANSFER-ENCODING"),
            Ok(HeaderKind::TransferEncoding)
        );
        assert_eq!(k.classify(b"X-Api-Key"), Ok(HeaderKind::ApiKey));
        assert_eq!(k.classify(b"x-keyway-tenant"), Ok(HeaderKind::Identity));
        assert_eq!(k.classify(b"X-Keyway-Meta-Team"), Ok(HeaderKind::Identity));
        assert_eq!(k.classify(b"x-keyway-meta-"), Ok(HeaderKind::Other));
        assert_eq!(k.classify(b"accept"), Ok(HeaderKind::Other));
    }

    #[test]
    fn underscore_aliases_are_refused_or_stripped() {
        let k = KnownHeaders::default();
        assert_eq!(k.classify(b"content_length"), Err(RefusedAlias));
        assert_eq!(k.classify(b"Transfer_Encoding"), Err(RefusedAlias));
        assert_eq!(k.classify(b"x_api_key"), Err(RefusedAlias));
        assert_eq!(
            k.classify(b"x_keyway_tenant"),
            Ok(HeaderKind::AliasedIdentity)
        );
        assert_eq!(
            k.classify(b"x_keyway_meta_a"),
            Ok(HeaderKind::AliasedIdentity)
        );
        assert_eq!(k.classify(b"my_header"), Ok(HeaderKind::Other));
    }

    #[test]
    fn long_underscore_aliases_are_recognised_too() {
        let long = format!("x_keyway_meta_{}", "a_b".repeat(40));
        assert_eq!(
            KnownHeaders::default().classify(long.as_bytes()),
            Ok(HeaderKind::AliasedIdentity)
        );
        let key_header = format!("x-api-key-{}", "k".repeat(80));
        let k = KnownHeaders {
            api_key: key_header.as_bytes().into(),
            ..KnownHeaders::default()
        };
        let alias = key_header.replace('-', "_").to_uppercase();
        assert_eq!(k.classify(alias.as_bytes()), Err(RefusedAlias));
        assert_eq!(k.classify(key_header.as_bytes()), Ok(HeaderKind::ApiKey));
        let other = format!("x_other_{}", "a".repeat(100));
        assert_eq!(k.classify(other.as_bytes()), Ok(HeaderKind::Other));
    }

    #[test]
    fn tokens() {
        assert!(has_token(b"keep-alive, Close", b"close"));
        assert!(!has_token(b"closed", b"close"));
        assert_eq!(trim(b" \t a b \t"), b"a b");
    }
}
