//! The `keyway` command line: `serve`, `check-config`, `quickstart` (and, with the key
//! store, `keys`, `plans`, `snapshot`). Every failure is one line on stderr saying what
//! happened and what to do; configuration errors exit 2, other failures 1.

pub mod check;
pub mod context;
pub mod key_import;
pub mod keys;
pub mod plans;
pub mod progress;
mod quickstart;
mod reload;
pub mod snapshot;
mod store_cmd;
mod usage_cmd;

pub use crate::ops::{key_flags, parse, render, usage};

pub use context::{CliContext, CliError};

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default configuration file when neither --config nor KEYWAY_CONFIG is given.
pub const DEFAULT_CONFIG: &str = "/etc/keyway/keyway.toml";

#[derive(Parser)]
#[command(
    name = "keyway",
    version,
    about = "API-key gateway: a thread-per-core HTTP/1.1 reverse proxy that enforces custom API keys"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "KEYWAY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Key database (overrides `[keys] db`).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Snapshot file (overrides `[keys] snapshot`).
    #[arg(long, global = true, value_name = "PATH")]
    pub snapshot: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Override [server] listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Override [server] admin_listen.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Override [server] shards (0 = one per CPU).
        #[arg(long)]
        shards: Option<usize>,
    },
    /// Check a configuration file and exit (0 = valid, 2 = invalid).
    CheckConfig,
    /// Manage API keys: create, list, show, update, revoke, rotate, import.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Manage plans (named tiers of limits and scopes).
    #[command(subcommand)]
    Plans(plans::PlansCmd),
    /// Build or inspect the snapshot the gateway loads.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// Look after the key database: back it up while it is in use.
    #[command(subcommand)]
    Store(store_cmd::StoreCmd),
    /// Report usage from the gateway's per-minute rollups: requests, refusals, latency, bytes.
    Usage(usage_cmd::UsageArgs),
    /// Make the running gateway reload its key table (SIGHUP) and wait for the outcome.
    Reload {
        /// How long to wait for every shard to confirm.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Run a demo: a built-in upstream and a gateway on 127.0.0.1:8080, with curl lines to try.
    Quickstart {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
    },
}

/// Parses the arguments, runs the command, returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    init_logging();
    let paths = KeyPaths {
        config: cli.config.clone(),
        db: cli.db.clone(),
        snapshot: cli.snapshot.clone(),
    };
    match cli.command {
        Command::Keys(keys::KeysCmd::Check(args)) => {
            let config = match load_config(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match check::run(&args, config) {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    0
                }
                Err(e) => {
                    eprintln!("keyway: {e}");
                    1
                }
            }
        }
        Command::Keys(cmd) => with_keys_context(&paths, |ctx| keys::run(cmd, ctx)),
        Command::Plans(cmd) => with_keys_context(&paths, |ctx| plans::run(cmd, ctx)),
        Command::Snapshot(cmd) => with_keys_context(&paths, |ctx| snapshot::run(cmd, ctx)),
        Command::Store(cmd) => with_keys_context(&paths, |ctx| store_cmd::run(cmd, ctx)),
        Command::Usage(a) => with_keys_context(&paths, |ctx| usage_cmd::run(a, ctx)),
        Command::Serve {
            listen,
            admin_listen,
            shards,
        } => {
            let mut config = match load_config(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let overrides = crate::rollout::ServerOverrides {
                listen,
                admin_listen,
                shards,
            };
            overrides.apply(&mut config);
            let path = cli
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            let source = crate::rollout::ConfigSource {
                path: std::path::absolute(&path).unwrap_or(path),
                overrides,
            };
            serve(config, source)
        }
        Command::CheckConfig => match load_config(cli.config.as_deref()) {
            Ok(mut c) => {
                if let Err(e) = crate::resolve::resolve(&mut c, None) {
                    eprintln!("keyway: {e}");
                    return 2;
                }
                println!(
                    "configuration OK: {} upstream(s), {} route(s)",
                    c.upstreams.len(),
                    c.routes.len()
                );
                for u in c.upstreams.iter().filter(|u| !u.hosts.is_empty()) {
                    let servers: Vec<String> = u.servers.iter().map(|s| s.to_string()).collect();
                    println!("upstream {} resolves to {}", u.name, servers.join(", "));
                }
                0
            }
            Err(code) => code,
        },
        Command::Reload { wait } => {
            // A file the gateway would refuse is refused here, before any signal.
            let path = cli.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
            let config = match Config::load(path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keyway: {e}; nothing was reloaded, the gateway keeps its running configuration");
                    return 2;
                }
            };
            match reload::run(&config, wait) {
                Ok(msg) => {
                    println!("{msg}");
                    0
                }
                Err(msg) => {
                    eprintln!("keyway: {msg}");
                    1
                }
            }
        }
        Command::Quickstart {
            listen,
            admin_listen,
        } => quickstart::run(listen, admin_listen),
    }
}

/// Paths the key commands work on: flags first, then the configuration's `[keys]`.
struct KeyPaths {
    config: Option<PathBuf>,
    db: Option<PathBuf>,
    snapshot: Option<PathBuf>,
}

fn with_keys_context(
    paths: &KeyPaths,
    run: impl FnOnce(&CliContext) -> Result<(), CliError>,
) -> i32 {
    let needs_config = paths.db.is_none() || paths.snapshot.is_none();
    let config = match &paths.config {
        Some(p) => match load_config(Some(p)) {
            Ok(c) => Some(c),
            Err(code) if needs_config => return code,
            Err(_) => None,
        },
        None if needs_config && std::path::Path::new(DEFAULT_CONFIG).exists() => {
            match load_config(None) {
                Ok(c) => Some(c),
                Err(code) => return code,
            }
        }
        _ => None,
    };
    let state_dir = config.as_ref().map(|c| c.server.state_dir.clone());
    let keys = config.map(|c| c.keys).unwrap_or_default();
    let ctx = CliContext {
        db_path: paths.db.clone().unwrap_or(keys.db),
        snapshot_path: paths.snapshot.clone().unwrap_or(keys.snapshot),
        state_dir,
    };
    match run(&ctx) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keyway: {e}");
            1
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, i32> {
    let path = path.unwrap_or(std::path::Path::new(DEFAULT_CONFIG));
    Config::load(path).map_err(|e| {
        eprintln!("keyway: {e}");
        2
    })
}

/// Serves until a signal; prints the bound addresses on stdout (tests and scripts read it).
pub(crate) fn serve(config: Config, source: crate::rollout::ConfigSource) -> i32 {
    let result = crate::serve::serve(config, Some(source), |b| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "keyway listening on {} (admin {}), {} shard(s)",
            b.listen, b.admin, b.shards
        );
        let _ = out.flush();
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keyway: {e}");
            1
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
