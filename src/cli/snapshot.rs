//! `keyway snapshot ...`: build the data plane's snapshot from the store, and inspect one.

use std::path::PathBuf;

use serde_json::json;

use super::context::{print, print_json};
use super::parse::rfc3339;
use super::{progress, CliContext, CliError};
use crate::keys::snapshot::Snapshot;
use crate::ops::publish::{self, Phase};
use crate::store::unix_now;

#[derive(clap::Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Compile every plan and key into a new snapshot file (written atomically).
    Build(BuildArgs),
    /// Load a snapshot with full validation and show its header and counts.
    Inspect(InspectArgs),
}

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Where to write it (default: the configured snapshot path).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The snapshot file (default: the configured snapshot path).
    pub path: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: SnapshotCmd, ctx: &CliContext) -> Result<(), CliError> {
    match cmd {
        SnapshotCmd::Build(a) => build(a, ctx),
        SnapshotCmd::Inspect(a) => inspect(a, ctx),
    }
}

fn build(a: BuildArgs, ctx: &CliContext) -> Result<(), CliError> {
    let out = a.out.unwrap_or_else(|| ctx.snapshot_path.clone());
    let mut bar = None;
    let mut spinner = None;
    let mut keys = 0;
    let built = publish::build(ctx, &out, unix_now(), &mut |phase| match phase {
        Phase::Loading { done, total } => {
            keys = total;
            bar.get_or_insert_with(|| progress::bar(total, "loading"))
                .set_position(done);
        }
        Phase::Building => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            spinner = Some(progress::spinner(keys, "building"));
        }
        Phase::Writing => {
            if let Some(s) = &spinner {
                s.set_message("writing");
            }
        }
        Phase::Done => {
            if let Some(s) = spinner.take() {
                s.finish_and_clear();
            }
        }
    })?;
    crate::ops::admin_log::by_cli("snapshot.publish", &built.generation.to_string(), ctx);
    print(&format!(
        "generation {}, {} keys, {} plans, {} bytes, {:.2} s\n",
        built.generation, built.keys, built.plans, built.bytes, built.seconds,
    ))
}

fn inspect(a: InspectArgs, ctx: &CliContext) -> Result<(), CliError> {
    let path = a.path.unwrap_or_else(|| ctx.snapshot_path.clone());
    let snap = match Snapshot::load(path.as_path()) {
        Ok(s) => s,
        Err(e) => {
            let reason = e.to_string();
            if a.json {
                print_json(&json!({"path": path, "valid": false, "error": reason}))?;
            }
            // The reason already names the file.
            return Err(CliError(format!("refused: {reason}")));
        }
    };
    if a.json {
        print_json(&json!({
            "path": path,
            "valid": true,
            "generation": snap.generation(),
            "created_at": rfc3339(snap.created_at()),
            "created_at_unix": snap.created_at(),
            "keys": snap.key_count(),
            "plans": snap.plan_count(),
            "bytes": snap.byte_len(),
        }))
    } else {
        print(&format!(
            "snapshot    {}\nvalid       yes\ngeneration  {}\ncreated_at  {}\nkeys        {}\nplans       {}\nbytes       {}\n",
            path.display(),
            snap.generation(),
            rfc3339(snap.created_at()),
            snap.key_count(),
            snap.plan_count(),
            snap.byte_len()
        ))
    }
}
