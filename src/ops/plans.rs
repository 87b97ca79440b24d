//! Plan operations: set (create or replace), list, delete. Shared by `keyway plans ...` and
//! the admin API's `/v1/plans`.

use super::parse::{self, SizeArg};
use super::Error;
use crate::keys::model::{LimitSpec, PlanSpec};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// Plan name (A-Z a-z 0-9 _ . -).
    pub name: String,
    /// Rate limit, e.g. 20/s, 1000/min, 100000/day (repeatable, one per window).
    #[arg(long = "limit", value_name = "COUNT/WINDOW")]
    pub limits: Vec<LimitSpec>,
    /// Default allowed endpoint, `METHOD PATH` (repeatable). None: keys need their own.
    #[arg(long = "scope", value_name = "METHOD PATH", value_parser = parse::scope)]
    pub scopes: Vec<String>,
    /// Largest request body, e.g. 1MiB.
    #[arg(long, value_name = "SIZE")]
    pub max_body: Option<SizeArg>,
    /// Client addresses allowed, as CIDR or one address (repeatable).
    #[arg(long = "allow-ip", value_name = "CIDR", value_parser = parse::cidr)]
    pub allow_ips: Vec<String>,
    /// Upstream (by config name) that serves this plan's keys instead of the route's.
    #[arg(long, value_name = "NAME")]
    pub upstream: Option<String>,
    /// Priority (higher is served first when shedding load).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
}

/// Stores the plan the arguments describe; true if it is new (false: replaced).
pub fn set(store: &Store, a: &SetArgs) -> Result<(PlanSpec, bool), Error> {
    let mut limits = Vec::new();
    for l in &a.limits {
        if limits.iter().any(|x: &LimitSpec| x.window == l.window) {
            return Err(Error::invalid(format!(
                "two limits per {}: keep one",
                l.window.name()
            )));
        }
        parse::set_limit(&mut limits, *l);
    }
    let plan = PlanSpec {
        name: a.name.clone(),
        limits,
        scopes: a.scopes.clone(),
        max_body_bytes: a.max_body.and_then(SizeArg::bytes),
        allow_ips: a.allow_ips.clone(),
        upstream: a.upstream.clone(),
        priority: a.priority,
    };
    let created = store.set_plan(&plan)?;
    Ok((plan, created))
}

/// Every plan with how many keys are on it.
pub fn list(store: &Store) -> Result<Vec<(PlanSpec, u64)>, Error> {
    let mut plans = Vec::new();
    for p in store.list_plans()? {
        let keys = store.keys_on_plan(&p.name)?;
        plans.push((p, keys));
    }
    Ok(plans)
}

pub fn delete(store: &mut Store, name: &str) -> Result<(), Error> {
    Ok(store.delete_plan(name)?)
}
