//! `keyway usage`: requests, refusals, latency and bytes from the gateway's per-minute
//! rollups (`state_dir/usage`), grouped by key, tenant, plan or route.

use super::context::{print, print_json};
use super::{CliContext, CliError};
use crate::rollup::report::{self, By};

#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// Group by this.
    #[arg(long, value_enum, default_value = "key")]
    pub by: By,
    /// How far back, e.g. 1h, 24h, 30d.
    #[arg(long, default_value = "24h", value_parser = crate::ops::parse::duration)]
    pub since: u64,
    /// Show the N busiest groups (0: all).
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: UsageArgs, ctx: &CliContext) -> Result<(), CliError> {
    let r = report::for_paths(ctx, a.by, a.since, a.limit, crate::clock::unix_now())?;
    if a.json {
        return print_json(&r.json());
    }
    if r.groups.is_empty() {
        return print("no usage recorded in that span (the gateway writes rollups every 10 s while serving)\n");
    }
    let mut text = r.table();
    if r.total_groups > r.groups.len() {
        text.push_str(&format!(
            "({} of {} shown; --limit 0 shows all)\n",
            r.groups.len(),
            r.total_groups
        ));
    }
    print(&text)
}
