//! `keyway keys ...`: create, list, show, update, revoke, rotate and import API keys.
//! A secret is printed exactly once (by create or rotate) and never stored or logged.

use serde_json::json;

use super::context::{note_live, print, print_json};
use super::key_flags::KeyFlags;
use super::{key_import, parse, render, CliContext, CliError};
use crate::keys::format;
use crate::keys::model::KeySpec;
use crate::store::{unix_now, KeyFilter, StoreError};

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
pub struct CreateArgs {
    /// Tenant the key belongs to (sent upstream as x-keyway-tenant).
    #[arg(long)]
    pub tenant: String,
    /// Plan the key is on (see `keyway plans list`).
    #[arg(long)]
    pub plan: String,
    #[command(flatten)]
    pub flags: KeyFlags,
    /// Secret prefix, e.g. kw_test for test keys.
    #[arg(long, default_value = format::DEFAULT_PREFIX)]
    pub prefix: String,
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
pub struct UpdateArgs {
    /// Key id (`key_...`).
    pub id: String,
    /// Move the key to this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Move the key to this plan.
    #[arg(long)]
    pub plan: Option<String>,
    #[command(flatten)]
    pub flags: KeyFlags,
    /// Remove every own scope (before adding any --scope).
    #[arg(long)]
    pub clear_scopes: bool,
    /// Remove all metadata (before adding any --meta).
    #[arg(long)]
    pub clear_meta: bool,
    /// Remove the IP allowlist (before adding any --allow-ip).
    #[arg(long)]
    pub clear_allow_ip: bool,
    /// Re-enable a revoked key.
    #[arg(long)]
    pub enable: bool,
}

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// Key id (`key_...`).
    pub id: String,
}

#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// Key id (`key_...`).
    pub id: String,
    /// How long the old secret keeps working, e.g. 24h (default: it stops now).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse::grace)]
    pub grace: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
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

fn format_err(e: format::FormatError) -> CliError {
    CliError(e.to_string())
}

/// The block that carries a secret: the only place one is ever printed.
fn secret_block(headline: &str, secret: &str, footer: &str) -> String {
    format!(
        "{headline}\n\n    {secret}\n\nThis secret is shown only now and cannot be recovered: store it safely.\n{footer}\n"
    )
}

fn create(a: CreateArgs, ctx: &CliContext) -> Result<(), CliError> {
    format::validate_prefix(&a.prefix).map_err(format_err)?;
    a.flags.credits()?; // flag conflicts before anything is opened
    let store = ctx.open_store()?;
    if !store.plan_exists(&a.plan)? {
        return Err(StoreError::PlanNotFound(a.plan).into());
    }
    let now = unix_now();
    let mut key = KeySpec {
        tenant: a.tenant,
        plan: a.plan,
        enabled: true,
        created_at: now,
        ..KeySpec::default()
    };
    a.flags.apply(&mut key, now)?;
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(CliError(
            "the key would be expired already: give an --expires-at in the future".into(),
        ));
    }
    let secret = format::generate_secret(&a.prefix).map_err(format_err)?;
    key.digest = format::digest(secret.as_bytes());
    key.hint = format::hint(&secret);
    // A fresh random id collides with probability ~0; try again rather than fail if it does.
    let mut tries = 0;
    loop {
        key.id = format::generate_key_id();
        match store.create_key(&key) {
            Err(StoreError::KeyExists(_)) if tries < 3 => tries += 1,
            other => break other?,
        }
    }
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
    let key = store.get_key(&a.id)?;
    let plan = store.get_plan(&key.plan).ok();
    let now = unix_now();
    // Usage as the running gateway last persisted it (needs the config's state_dir).
    let usage = ctx.state_dir.as_ref().map(|dir| {
        super::usage::read(
            &dir.join("ratelimit.state"),
            &key,
            plan.as_ref(),
            now * 1000,
        )
    });
    if a.json {
        let mut v = render::key_json(&key, now);
        if let Some(u) = &usage {
            v["usage"] = match u {
                Ok((_, usage)) => serde_json::json!({
                    "limits": usage.limits.iter().map(|l| serde_json::json!({
                        "limit": l.limit.to_string(), "used": l.used,
                        "remaining": l.remaining, "reset_s": l.reset_s,
                    })).collect::<Vec<_>>(),
                    "credits_left": usage.credits_left,
                    "credits_reset_s": usage.credits_reset_s,
                }),
                Err(why) => serde_json::json!({ "unknown": why }),
            };
        }
        print_json(&v)
    } else {
        let mut text = render::key_details(&key, now);
        match &usage {
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
}

fn update(a: UpdateArgs, ctx: &CliContext) -> Result<(), CliError> {
    a.flags.credits()?; // flag conflicts before anything is opened
    let mut store = ctx.open_store()?;
    let now = unix_now();
    let key = store.update_key(&a.id, |k| {
        if let Some(t) = &a.tenant {
            k.tenant.clone_from(t);
        }
        if let Some(p) = &a.plan {
            k.plan.clone_from(p);
        }
        if a.clear_scopes {
            k.scopes.clear();
        }
        if a.clear_meta {
            k.metadata.clear();
        }
        if a.clear_allow_ip {
            k.allow_ips.clear();
        }
        if a.enable {
            k.enabled = true;
        }
        a.flags.apply(k, now).map_err(|e| StoreError::Invalid(e.0))
    })?;
    if a.flags.json {
        print_json(&render::key_json(&key, now))?;
    } else {
        print(&format!(
            "Updated key {}.\n{}",
            key.id,
            render::key_details(&key, now)
        ))?;
    }
    note_live();
    Ok(())
}

fn revoke(a: RevokeArgs, ctx: &CliContext) -> Result<(), CliError> {
    ctx.open_store()?.revoke_key(&a.id)?;
    print(&format!(
        "Revoked key {} (its secret and any previous one no longer work).\n",
        a.id
    ))?;
    note_live();
    Ok(())
}

/// The prefix of the key's current secret, read back from its hint (`kw_live_Ab3x`).
fn prefix_of(key: &KeySpec) -> &str {
    let prefix = key
        .hint
        .len()
        .checked_sub(5)
        .filter(|&i| !key.legacy && key.hint.as_bytes().get(i) == Some(&b'_'))
        .map(|i| &key.hint[..i]);
    match prefix {
        Some(p) if format::validate_prefix(p).is_ok() => p,
        _ => format::DEFAULT_PREFIX,
    }
}

fn rotate(a: RotateArgs, ctx: &CliContext) -> Result<(), CliError> {
    let mut store = ctx.open_store()?;
    let old = store.get_key(&a.id)?;
    let secret = format::generate_secret(prefix_of(&old)).map_err(format_err)?;
    let now = unix_now();
    let grace_until = now.saturating_add(i64::try_from(a.grace).unwrap_or(i64::MAX));
    let hint = format::hint(&secret);
    store.rotate_key(
        &a.id,
        format::digest(secret.as_bytes()),
        hint.clone(),
        grace_until,
    )?;
    let old_until = (grace_until > now).then(|| parse::rfc3339(grace_until));
    if a.json {
        print_json(
            &json!({"id": a.id, "key": secret, "hint": hint, "previous_valid_until": old_until}),
        )?;
    } else {
        let foot = match &old_until {
            Some(t) => format!("The previous secret keeps working until {t}."),
            None => "The previous secret no longer works.".to_string(),
        };
        print(&secret_block(
            &format!("Rotated key {}. New secret:", a.id),
            &secret,
            &foot,
        ))?;
    }
    note_live();
    Ok(())
}
