//! `keyway plans ...`: create or replace, list and delete plans (named tiers of limits,
//! scopes and settings that keys inherit).

use super::context::{note_rebuild, print, print_json};
use super::parse::{self, SizeArg};
use super::{render, CliContext, CliError};
use crate::keys::model::{LimitSpec, PlanSpec};

#[derive(clap::Subcommand, Debug)]
pub enum PlansCmd {
    /// Create a plan, or replace every setting of an existing one.
    Set(SetArgs),
    /// List plans with how many keys each has.
    List(ListArgs),
    /// Delete a plan no key uses.
    Delete(DeleteArgs),
}

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

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Plan name.
    pub name: String,
}

pub fn run(cmd: PlansCmd, ctx: &CliContext) -> Result<(), CliError> {
    match cmd {
        PlansCmd::Set(a) => set(a, ctx),
        PlansCmd::List(a) => list(a, ctx),
        PlansCmd::Delete(a) => delete(a, ctx),
    }
}

fn set(a: SetArgs, ctx: &CliContext) -> Result<(), CliError> {
    let mut limits = Vec::new();
    for l in a.limits {
        if limits.iter().any(|x: &LimitSpec| x.window == l.window) {
            return Err(CliError(format!(
                "two --limit values per {}: keep one",
                l.window.name()
            )));
        }
        parse::set_limit(&mut limits, l);
    }
    let plan = PlanSpec {
        name: a.name,
        limits,
        scopes: a.scopes,
        max_body_bytes: a.max_body.and_then(SizeArg::bytes),
        allow_ips: a.allow_ips,
        upstream: a.upstream,
        priority: a.priority,
    };
    let created = ctx.open_store()?.set_plan(&plan)?;
    let verb = if created { "Created" } else { "Replaced" };
    print(&format!("{verb} plan {}.\n", plan.name))?;
    note_rebuild();
    Ok(())
}

fn list(a: ListArgs, ctx: &CliContext) -> Result<(), CliError> {
    let store = ctx.open_store()?;
    let mut plans = Vec::new();
    for p in store.list_plans()? {
        let keys = store.keys_on_plan(&p.name)?;
        plans.push((p, keys));
    }
    if a.json {
        print_json(
            &plans
                .iter()
                .map(|(p, n)| render::plan_json(p, *n))
                .collect(),
        )
    } else if plans.is_empty() {
        print("no plans (create one with `keyway plans set NAME --limit 20/s --scope 'GET /**'`)\n")
    } else {
        print(&render::plans_table(&plans))
    }
}

fn delete(a: DeleteArgs, ctx: &CliContext) -> Result<(), CliError> {
    ctx.open_store()?.delete_plan(&a.name)?;
    print(&format!("Deleted plan {}.\n", a.name))?;
    note_rebuild();
    Ok(())
}
