//! `keyway snapshot ...`: build the data plane's snapshot from the store, and inspect one.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use super::context::{print, print_json};
use super::parse::rfc3339;
use super::{progress, CliContext, CliError};
use crate::keys::snapshot::{self, Snapshot};
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
    let started = Instant::now();
    let out = a.out.unwrap_or_else(|| ctx.snapshot_path.clone());
    let mut store = ctx.open_store()?;

    // A new snapshot must supersede the one on disk even if the database was recreated.
    let floor = Snapshot::load(out.as_path()).map_or(0, |s| s.generation());
    let bar = progress::bar(store.key_count()?, "loading");
    let loaded = store.load_all_with(&mut |n| bar.set_position(n));
    bar.finish_and_clear();
    let (plans, mut keys, absorbed) = loaded?;

    let now = unix_now();
    for k in &mut keys {
        k.grace.retain(|g| g.grace_until > now);
    }
    let generation = store.next_generation_above(floor)?;
    let spinner = progress::spinner(keys.len() as u64, "building");
    let bytes =
        snapshot::build(generation, now, &plans, &keys).map_err(|e| CliError(e.to_string()));
    spinner.set_message("writing");
    let written = bytes.and_then(|bytes| {
        snapshot::write_atomic(&out, &bytes)
            .map(|()| bytes.len())
            .map_err(|e| CliError(format!("cannot write {}: {e}", out.display())))
    });
    spinner.finish_and_clear();
    let written = written?;
    // Revocations up to `absorbed` are in this snapshot: a gateway serving it stops
    // applying them from the overlay.
    store.record_absorbed(generation, absorbed)?;
    print(&format!(
        "generation {generation}, {} keys, {} plans, {} bytes, {:.2} s\n",
        keys.len(),
        plans.len(),
        written,
        started.elapsed().as_secs_f64(),
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
