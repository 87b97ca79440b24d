//! `keyway store backup FILE`: a consistent copy of the key database while the gateway and
//! other commands keep using it (docs/operations.md, "Backing up the store").

use std::path::PathBuf;

use super::context::{CliContext, CliError};

#[derive(clap::Subcommand, Debug)]
pub enum StoreCmd {
    /// Write a consistent copy of the key database to FILE (which must not exist), online.
    Backup {
        /// Where the copy goes; its directory must exist.
        file: PathBuf,
    },
}

pub fn run(cmd: StoreCmd, ctx: &CliContext) -> Result<(), CliError> {
    match cmd {
        StoreCmd::Backup { file } => {
            let store = ctx.open_store()?;
            let keys = store
                .key_count()
                .map_err(|e| CliError(format!("cannot read the key database: {e}")))?;
            store.backup_to(&file).map_err(|e| {
                CliError(format!(
                    "cannot back up {} to {}: {e}",
                    ctx.db_path.display(),
                    file.display()
                ))
            })?;
            println!(
                "backed up {} ({keys} keys) to {}; restore: stop writers, then copy it over the database (docs/operations.md)",
                ctx.db_path.display(),
                file.display()
            );
            Ok(())
        }
    }
}
