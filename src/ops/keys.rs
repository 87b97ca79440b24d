//! Key operations: create, list, show, update, revoke, rotate. The argument structs are the
//! CLI's flags (clap) and, via `admin::args`, the admin API's JSON bodies: both are parsed
//! and checked by the same code. A secret leaves here once, in [`Created`] or [`Rotated`].

use serde_json::{json, Value};

use super::key_flags::KeyFlags;
use super::{parse, render, usage, Error, Paths};
use crate::keys::format;
use crate::keys::model::KeySpec;
use crate::store::{KeyFilter, Store, StoreError};

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

/// A new key and its secret (shown this once).
pub struct Created {
    pub key: KeySpec,
    pub secret: String,
}

fn format_err(e: format::FormatError) -> Error {
    Error::invalid(e.to_string())
}

pub fn create(store: &Store, a: &CreateArgs, now: i64) -> Result<Created, Error> {
    format::validate_prefix(&a.prefix).map_err(format_err)?;
    a.flags.credits()?; // flag conflicts before anything is written
    if !store.plan_exists(&a.plan)? {
        let mut e = Error::from(StoreError::PlanNotFound(a.plan.clone()));
        e.status = 400; // the request names a plan that is not there: not a missing resource
        return Err(e);
    }
    let mut key = KeySpec {
        tenant: a.tenant.clone(),
        plan: a.plan.clone(),
        enabled: true,
        created_at: now,
        ..KeySpec::default()
    };
    a.flags.apply(&mut key, now)?;
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(Error::invalid(
            "the key would be expired already: give an expiry (--expires-at) in the future",
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
    Ok(Created { key, secret })
}

/// Largest page `list` returns.
pub const MAX_PAGE: u32 = 1000;

/// One page of keys, and the cursor for the next (`None`: this was the last).
pub struct Page {
    pub keys: Vec<KeySpec>,
    pub next: Option<String>,
}

/// Keys matching `filter` after the cursor `after`, at most `limit` (1..=[`MAX_PAGE`]).
pub fn list(
    store: &Store,
    filter: &KeyFilter,
    after: Option<&str>,
    limit: u32,
) -> Result<Page, Error> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::invalid(format!(
            "limit {limit} is out of range: ask for 1 to {MAX_PAGE} keys a page"
        )));
    }
    // One more than asked tells whether another page follows.
    let mut keys = store.list_keys_page(filter, after, limit + 1)?;
    let next = if keys.len() > limit as usize {
        keys.truncate(limit as usize);
        keys.last().map(|k| k.id.clone())
    } else {
        None
    };
    Ok(Page { keys, next })
}

/// A key with its usage as the running gateway last persisted it (`None`: no state dir
/// known; `Some(Err)`: why it is unknown).
pub struct Shown {
    pub key: KeySpec,
    pub usage: Option<Result<(Vec<crate::keys::LimitSpec>, crate::ratelimit::Usage), String>>,
}

pub fn show(store: &Store, paths: &Paths, id: &str, now: i64) -> Result<Shown, Error> {
    let key = store.get_key(id)?;
    let plan = store.get_plan(&key.plan).ok();
    let usage = paths.state_dir.as_ref().map(|dir| {
        usage::read(
            &dir.join("ratelimit.state"),
            &key,
            plan.as_ref(),
            now * 1000,
        )
    });
    Ok(Shown { key, usage })
}

/// `keys show --json` and `GET /v1/keys/{id}`.
pub fn shown_json(s: &Shown, now: i64) -> Value {
    let mut v = render::key_json(&s.key, now);
    if let Some(u) = &s.usage {
        v["usage"] = match u {
            Ok((_, usage)) => json!({
                "limits": usage.limits.iter().map(|l| json!({
                    "limit": l.limit.to_string(), "used": l.used,
                    "remaining": l.remaining, "reset_s": l.reset_s,
                })).collect::<Vec<_>>(),
                "credits_left": usage.credits_left,
                "credits_reset_s": usage.credits_reset_s,
            }),
            Err(why) => json!({ "unknown": why }),
        };
    }
    v
}

pub fn update(store: &mut Store, a: &UpdateArgs, now: i64) -> Result<KeySpec, Error> {
    a.flags.credits()?; // flag conflicts before anything is written
    let mut refused = None;
    let stored = store.update_key(&a.id, |k| {
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
        a.flags.apply(k, now).map_err(|e| {
            let detail = e.detail.clone();
            refused = Some(e);
            StoreError::Invalid(detail)
        })
    });
    match (stored, refused) {
        (Ok(k), _) => Ok(k),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(e.into()),
    }
}

pub fn revoke(store: &mut Store, id: &str) -> Result<(), Error> {
    Ok(store.revoke_key(id)?)
}

/// A key's new secret (shown this once) and until when the old one works.
pub struct Rotated {
    pub id: String,
    pub secret: String,
    pub hint: String,
    pub previous_valid_until: Option<i64>,
}

impl Rotated {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "key": self.secret,
            "hint": self.hint,
            "previous_valid_until": self.previous_valid_until.map(parse::rfc3339),
        })
    }
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

pub fn rotate(store: &mut Store, id: &str, grace_s: u64, now: i64) -> Result<Rotated, Error> {
    if grace_s > parse::MAX_GRACE_S {
        return Err(Error::invalid(
            "the grace is longer than 366 days: rotate with a shorter grace, e.g. 30d",
        ));
    }
    let old = store.get_key(id)?;
    let secret = format::generate_secret(prefix_of(&old)).map_err(format_err)?;
    let grace_until = now.saturating_add(i64::try_from(grace_s).unwrap_or(i64::MAX));
    let hint = format::hint(&secret);
    store.rotate_key(
        id,
        format::digest(secret.as_bytes()),
        hint.clone(),
        grace_until,
    )?;
    Ok(Rotated {
        id: id.to_owned(),
        secret,
        hint,
        previous_valid_until: (grace_until > now).then_some(grace_until),
    })
}
