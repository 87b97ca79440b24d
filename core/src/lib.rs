//! keyway-core: the pure half of the keyway API-key gateway. HTTP/1.1 head parsing on
//! httparse, the zero-copy key table (rkyv snapshots), policy (routes, scopes, allowlists,
//! size limits), rate-limit and quota arithmetic, configuration, problem answers and audit
//! records.
//!
//! Nothing here depends on an async runtime, opens a socket, starts a thread or reads the
//! clock: time and bytes are arguments. The `keyway` binary composes these pieces on glommio;
//! the compiler holds the line, since this crate does not depend on it.
//!
//! # Example: authenticate and authorize a request head, with no runtime
//!
//! ```
//! use keyway_core::http::{HeadLimits, KnownHeaders, RequestHead};
//! use keyway_core::keys::{authenticate, build, digest, generate_secret, KeySpec, PlanSpec, Snapshot};
//! use keyway_core::policy::{decide, Denial, PolicyIndex, RoutePolicy, UpstreamMap};
//!
//! // A key table with one key whose plan may read orders (the CLI builds this from its store).
//! let secret = generate_secret("kw_live").unwrap();
//! let plan = PlanSpec { name: "free".into(), scopes: vec!["GET /v1/orders/**".into()], ..Default::default() };
//! let key = KeySpec {
//!     id: "key_0000000000000001".into(),
//!     digest: digest(secret.as_bytes()),
//!     tenant: "acme".into(),
//!     plan: "free".into(),
//!     enabled: true,
//!     ..Default::default()
//! };
//! let snapshot = Snapshot::from_bytes(&build(1, 0, &[plan], &[key]).unwrap()).unwrap();
//! let policy = PolicyIndex::build(&snapshot, |_upstream| Some(0)).unwrap();
//! let route = RoutePolicy {
//!     max_body: None,
//!     global_max_body: 1 << 20,
//!     upstream: 0,
//!     by_tenant: UpstreamMap::new([]),
//!     by_plan: UpstreamMap::new([]),
//! };
//!
//! // A request head as it came off the wire; time is an argument (unix seconds).
//! let raw = format!("GET /v1/orders/7 HTTP/1.1\r\nHost: api\r\nx-api-key: {secret}\r\n\r\n");
//! let mut head = RequestHead::default();
//! assert_eq!(head.parse(raw.as_bytes(), &HeadLimits::default(), &KnownHeaders::default()), Ok(true));
//! let buf = raw.as_bytes();
//! let presented = head.value(buf, head.api_key_header.unwrap());
//! let now = 1_800_000_000;
//!
//! let caller = authenticate(&snapshot, presented, now).expect("a known, valid key");
//! assert_eq!(caller.key.tenant(), "acme");
//! let client = "203.0.113.7".parse().unwrap();
//! let key_policy = policy.for_key(caller.key);
//! let method = head.method_span.get(buf);
//! assert!(decide(&key_policy, &route, method, head.path.get(buf), client, None).is_ok());
//! // Outside its scopes: 403 insufficient_scope, before any byte reaches an upstream.
//! let denied = decide(&key_policy, &route, b"DELETE", b"/v1/orders/7", client, None);
//! assert_eq!(denied, Err(Denial::InsufficientScope));
//! assert_eq!(denied.unwrap_err().problem().status(), 403);
//! ```

pub mod audit;
pub mod clock;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod health;
pub mod http;
pub mod keys;
pub mod keytable;
pub mod policy;
pub mod ratelimit;
pub mod rollup;
pub mod shedding;
