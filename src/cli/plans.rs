//! `keyway plans ...`: create or replace, list and delete plans (named tiers of limits,
//! scopes and settings that keys inherit).

use super::context::{note_rebuild, print, print_json};
use super::{render, CliContext, CliError};
use crate::ops::plans::{self as op, SetArgs};

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
    let (plan, created) = op::set(&ctx.open_store()?, &a)?;
    let verb = if created { "Created" } else { "Replaced" };
    print(&format!("{verb} plan {}.\n", plan.name))?;
    crate::ops::admin_log::by_cli("plan.set", &plan.name, ctx);
    note_rebuild();
    Ok(())
}

fn list(a: ListArgs, ctx: &CliContext) -> Result<(), CliError> {
    let plans = op::list(&ctx.open_store()?)?;
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
    op::delete(&mut ctx.open_store()?, &a.name)?;
    print(&format!("Deleted plan {}.\n", a.name))?;
    crate::ops::admin_log::by_cli("plan.delete", &a.name, ctx);
    note_rebuild();
    Ok(())
}
