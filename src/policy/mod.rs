//! Request policy, pure: which route a request takes, and (with the key issues) what a key may
//! do. Nothing here reads the clock or touches a socket; callers pass time and addresses in.

pub mod route;

pub use route::{RouteId, RouteTable};
