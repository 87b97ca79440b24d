//! `keyway keys ...`: create, list, show, update, revoke, rotate and import API keys.
//! A secret is printed exactly once (by create or rotate) and never stored or logged.

use serde_json::json;

use super::context::{note_live, print, print_json};
use super::{key_import, parse, render, CliContext, CliError};
use crate::ops::keys::{self as op, CreateArgs, RotateArgs, UpdateArgs};
use crate::store::{unix_now, KeyFilter};

#[derive(clap::Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a key and print its secret (shown only this once).
    Create(CreateArgs),
    /// List keys (never their secrets).
    List(ListArgs),
    /// Show one key.
    Show(ShowArgs),
    /// Change a key's settings (list flags add; --clear-* empty a list first).
    Update(UpdateArgs),
    /// Disable a key at once (undo with `keys update ID --enable`).
    Revoke(RevokeArgs),
    /// Give a key a new secret, same id; the old one works for --grace more.
    Rotate(RotateArgs),
    /// Import existing secrets from another system (stored hashed).
    Import(key_import::ImportArgs),
    /// Explain what the gateway would decide for this key and a request (needs --config).
    Check(super::check::CheckArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only this tenant's keys.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only keys on this plan.
    #[arg(long)]
    pub plan: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Key id (`key_...`).
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// Key id (`key_...`).
    pub id: String,
}

pub fn run(cmd: KeysCmd, ctx: &CliContext) -> Result<(), CliError> {
    match cmd {
        KeysCmd::Create(a) => create(a, ctx),
        KeysCmd::List(a) => list(a, ctx),
        KeysCmd::Show(a) => show(a, ctx),
        KeysCmd::Update(a) => update(a, ctx),
        KeysCmd::Revoke(a) => revoke(a, ctx),
        KeysCmd::Rotate(a) => rotate(a, ctx),
        KeysCmd::Import(a) => key_import::run(a, ctx),
        // Needs the configuration (routes, upstreams): answered in `cli::run`.
        KeysCmd::Check(_) => Err(CliError(
            "keys check needs the configuration: run it as `keyway --config PATH keys check ...`"
                .into(),
        )),
    }
}

/// The block that carries a secret: the only place one is ever printed.
fn secret_block(headline: &str, secret: &str, footer: &str) -> String {
    format!(
        "{headline}\n\n    {secret}\n\nThis secret is shown only now and cannot be recovered: store it safely.\n{footer}\n"
    )
}

fn create(a: CreateArgs, ctx: &CliContext) -> Result<(), CliError> {
    a.flags.credits()?; // flag conflicts before anything is opened
    let store = ctx.open_store()?;
    let now = unix_now();
    let op::Created { key, secret } = op::create(&store, &a, now)?;
    if a.flags.json {
        print_json(&json!({"id": key.id, "key": secret, "record": render::key_json(&key, now)}))?;
    } else {
        let head = format!(
            "Created key {} for tenant {} on plan {}. Its secret:",
            key.id, key.tenant, key.plan
        );
        let foot = format!(
            "keyway keeps only its SHA-256 digest; it will be listed as {}.",
            key.hint
        );
        print(&secret_block(&head, &secret, &foot))?;
    }
    crate::ops::admin_log::by_cli("key.create", &key.id, ctx);
    note_live();
    Ok(())
}

fn list(a: ListArgs, ctx: &CliContext) -> Result<(), CliError> {
    let store = ctx.open_store()?;
    let filter = KeyFilter {
        tenant: a.tenant,
        plan: a.plan,
    };
    let keys = store.list_keys(&filter)?;
    let now = unix_now();
    if a.json {
        print_json(&keys.iter().map(|k| render::key_json(k, now)).collect())
    } else if keys.is_empty() {
        print("no keys (create one with `keyway keys create --tenant T --plan P`)\n")
    } else {
        print(&render::keys_table(&keys, now))
    }
}

fn show(a: ShowArgs, ctx: &CliContext) -> Result<(), CliError> {
    let store = ctx.open_store()?;
    let now = unix_now();
    let shown = op::show(&store, ctx, &a.id, now)?;
    if a.json {
        return print_json(&op::shown_json(&shown, now));
    }
    let mut text = render::key_details(&shown.key, now);
    match &shown.usage {
        Some(Ok((limits, usage))) => {
            for line in super::usage::lines(limits, usage) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        Some(Err(why)) => text.push_str(&format!("usage        unknown: {why}\n")),
        None => text.push_str("usage        pass --config to read the gateway's state\n"),
    }
    print(&text)
}

fn update(a: UpdateArgs, ctx: &CliContext) -> Result<(), CliError> {
    a.flags.credits()?; // flag conflicts before anything is opened
    let mut store = ctx.open_store()?;
    let now = unix_now();
    let key = op::update(&mut store, &a, now)?;
    if a.flags.json {
        print_json(&render::key_json(&key, now))?;
    } else {
        print(&format!(
            "Updated key {}.\n{}",
            key.id,
            render::key_details(&key, now)
        ))?;
    }
    crate::ops::admin_log::by_cli("key.update", &key.id, ctx);
    note_live();
    Ok(())
}

fn revoke(a: RevokeArgs, ctx: &CliContext) -> Result<(), CliError> {
    op::revoke(&mut ctx.open_store()?, &a.id)?;
    print(&format!(
        "Revoked key {} (its secret and any previous one no longer work).\n",
        a.id
    ))?;
    crate::ops::admin_log::by_cli("key.revoke", &a.id, ctx);
    note_live();
    Ok(())
}

fn rotate(a: RotateArgs, ctx: &CliContext) -> Result<(), CliError> {
    let mut store = ctx.open_store()?;
    let rotated = op::rotate(&mut store, &a.id, a.grace, unix_now())?;
    if a.json {
        print_json(&rotated.json())?;
    } else {
        let foot = match rotated.previous_valid_until {
            Some(t) => format!(
                "The previous secret keeps working until {}.",
                parse::rfc3339(t)
            ),
            None => "The previous secret no longer works.".to_string(),
        };
        print(&secret_block(
            &format!("Rotated key {}. New secret:", a.id),
            &rotated.secret,
            &foot,
        ))?;
    }
    crate::ops::admin_log::by_cli("key.rotate", &a.id, ctx);
    note_live();
    Ok(())
}
