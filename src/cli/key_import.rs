//! `keyway keys import`: existing secrets from another system into the store, hashed, in one
//! transaction, with a progress bar for big files on a terminal.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::context::{note_rebuild, print};
use super::{progress, CliContext, CliError};
use crate::store::{ImportFormat, ImportOptions};

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Tsv,
    Jsonl,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Input format: tsv (api_key key_id tenant rate_per_s [burst class]) or jsonl
    /// ({"key", "id"?, "tenant", "limits"?, "name"?} per line).
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Plan every imported key is put on.
    #[arg(long)]
    pub plan: String,
    /// Overwrite keys whose id already exists (their secret, tenant, name, plan, limits).
    #[arg(long)]
    pub replace: bool,
    /// The file to read (`-` for stdin).
    pub file: PathBuf,
}

fn open(path: &Path) -> Result<Box<dyn BufRead>, CliError> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f =
        File::open(path).map_err(|e| CliError(format!("cannot open {}: {e}", path.display())))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
}

/// Counts lines (only done when a bar may be shown: it reads the file twice).
fn count_lines(path: &Path) -> u64 {
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    while let Ok(len) = f.read(&mut buf) {
        if len == 0 {
            break;
        }
        n += buf[..len].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    n
}

pub fn run(a: ImportArgs, ctx: &CliContext) -> Result<(), CliError> {
    let started = Instant::now();
    let input = open(&a.file)?;
    let mut store = ctx.open_store()?;
    let lines = if progress::wanted() && a.file != Path::new("-") {
        count_lines(&a.file)
    } else {
        0
    };
    let bar = progress::bar(lines, "importing");
    let opts = ImportOptions {
        format: match a.format {
            FormatArg::Tsv => ImportFormat::Tsv,
            FormatArg::Jsonl => ImportFormat::Jsonl,
        },
        plan: a.plan.clone(),
        replace: a.replace,
    };
    let report = store.import(input, &opts, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    let report =
        report.map_err(|e| CliError(format!("{}: {e}; nothing was imported", a.file.display())))?;
    print(&format!(
        "Imported {} new and replaced {} keys on plan {} ({} legacy-format) in {:.2} s.\n",
        report.imported,
        report.replaced,
        a.plan,
        report.legacy,
        started.elapsed().as_secs_f64()
    ))?;
    note_rebuild();
    Ok(())
}
