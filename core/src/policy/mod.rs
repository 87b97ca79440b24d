//! Request policy, pure: which route a request takes, and what a key may do — scopes, IP
//! allowlists, body size, key-aware upstream choice. Nothing here reads the clock or touches
//! a socket; callers pass time and addresses in.

pub mod decision;
pub mod index;
pub mod ip;
pub mod path;
pub mod route;
pub mod scope;

#[cfg(test)]
mod tests;

pub use decision::{
    body_limit, decide, explain, upstream_for, Decision, Denial, KeyPolicy, RoutePolicy,
    UpstreamMap,
};
pub use index::{PolicyError, PolicyIndex};
pub use ip::{client_ip, client_ip_lines, IpAllowlist, IpError};
pub use route::{CompiledRoutes, RouteId, RouteTable};
pub use scope::{ScopeError, ScopeSet};
