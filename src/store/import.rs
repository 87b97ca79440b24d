//! Bulk import of existing secrets from another system (TSV like the peer harness's
//! `keys.tsv`, or JSON lines), hashed as they are read, in one transaction.
//!
//! Errors name the line number and the column, never the secret, and never echo a field
//! that could be a misplaced secret (only an id that is already known to be well formed).

use std::io::BufRead;

use rusqlite::{ffi, params};
use serde_json::Value;

use super::keys::extended_code;
use super::{codec, unix_now, validate, Result, Store, StoreError};
use crate::keys::format;
use crate::keys::model::{KeySpec, LimitSpec, Window};

/// Page cache for an import, in KiB as SQLite wants it (negative = KiB, not pages).
const IMPORT_CACHE_KIB: i64 = -512 * 1024;

/// The input's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    /// `api_key key_id tenant rate_per_s [burst class]`, tab separated; `#` lines and an
    /// `api_key` header line are skipped; `burst` and `class` are ignored.
    Tsv,
    /// One object per line: `{"key", "id"?, "tenant", "limits"?: ["5/s"], "name"?}`.
    Jsonl,
}

#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub format: ImportFormat,
    /// The plan every imported key is put on (must exist).
    pub plan: String,
    /// Overwrite keys whose id already exists (secret, tenant, name, plan, own limits);
    /// their other fields are kept and their grace secrets dropped.
    pub replace: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: u64,
    pub replaced: u64,
    /// Keys not of keyway's format (marked `legacy`).
    pub legacy: u64,
}

/// One parsed input line. `secret` is dropped as soon as it is hashed.
struct Row {
    secret: String,
    id: Option<String>,
    tenant: String,
    name: String,
    limits: Vec<LimitSpec>,
}

/// Whether a secret has keyway's shape (`prefix_` + 36 base62). Anything else is `legacy`:
/// the data plane then skips the format check for it.
fn is_native(secret: &str) -> bool {
    secret.rsplit_once('_').is_some_and(|(prefix, body)| {
        format::validate_prefix(prefix).is_ok()
            && body.len() == 36
            && body.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

fn parse_tsv(line: &str) -> std::result::Result<Option<Row>, String> {
    if line.starts_with('#') || line.starts_with("api_key\t") || line.trim().is_empty() {
        return Ok(None);
    }
    let cols: Vec<&str> = line.split('\t').collect();
    if !(4..=6).contains(&cols.len()) {
        return Err(format!(
            "expected 4 to 6 tab-separated columns (api_key key_id tenant rate_per_s [burst class]), found {}",
            cols.len()
        ));
    }
    let limits = match cols[3].trim() {
        "" => Vec::new(),
        n => match n.parse::<u64>() {
            Ok(count) if count > 0 => vec![LimitSpec {
                count,
                window: Window::Second,
            }],
            _ => return Err("rate_per_s is not a whole number of at least 1".into()),
        },
    };
    Ok(Some(Row {
        secret: cols[0].to_owned(),
        id: Some(cols[1].to_owned()),
        tenant: cols[2].to_owned(),
        name: String::new(),
        limits,
    }))
}

fn parse_jsonl(line: &str) -> std::result::Result<Option<Row>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    // Parsed as a Value and picked apart by hand so that no message can quote a value.
    let v: Value = serde_json::from_str(line).map_err(|e| {
        format!(
            "not valid JSON ({:?} at column {})",
            e.classify(),
            e.column()
        )
    })?;
    let Value::Object(mut obj) = v else {
        return Err("expected a JSON object".into());
    };
    let mut string = |field: &str, required: bool| match obj.remove(field) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(format!("\"{field}\" is missing")),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{field}\" must be a string")),
    };
    let secret = string("key", true)?.unwrap_or_default();
    let id = string("id", false)?;
    let tenant = string("tenant", true)?.unwrap_or_default();
    let name = string("name", false)?.unwrap_or_default();
    let limits = match obj.remove("limits") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|l| {
                l.as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or("\"limits\" must be strings like \"5/s\" or \"1000/day\"")
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(_) => return Err("\"limits\" must be an array of strings like \"5/s\"".into()),
    };
    if let Some(field) = obj.keys().next() {
        return Err(format!(
            "unknown field {field:?}: use key, id, tenant, limits, name"
        ));
    }
    Ok(Some(Row {
        secret,
        id,
        tenant,
        name,
        limits,
    }))
}

/// Turns a parsed row into a record. Messages never quote the row's values.
fn to_key(row: Row, plan: &str, now: i64) -> std::result::Result<KeySpec, String> {
    validate::foreign_secret(&row.secret)?;
    let id = match row.id {
        Some(id) => {
            validate::key_id(&id).map_err(|_| {
                "the key id is not 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'".to_string()
            })?;
            id
        }
        None => format::generate_key_id(),
    };
    validate::tenant(&row.tenant)
        .map_err(|_| "the tenant is not 1-128 visible ASCII characters".to_string())?;
    let legacy = !is_native(&row.secret);
    let hint = if legacy {
        // Enough to recognise a key, never enough to use one: at most a quarter of it.
        row.secret
            .chars()
            .take((row.secret.len() / 4).min(4))
            .collect::<String>()
            + "..."
    } else {
        format::hint(&row.secret)
    };
    let key = KeySpec {
        digest: format::digest(row.secret.as_bytes()),
        id,
        hint,
        tenant: row.tenant,
        name: row.name,
        plan: plan.to_owned(),
        limits: row.limits,
        enabled: true,
        created_at: now,
        legacy,
        ..KeySpec::default()
    };
    validate::key(&key).map_err(|e| e.to_string())?;
    Ok(key)
}

impl Store {
    /// Imports every line of `input`, all or nothing. `progress(lines_read)` is called every
    /// 10,000 lines.
    pub fn import(
        &mut self,
        mut input: impl BufRead,
        opts: &ImportOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportReport> {
        if !self.plan_exists(&opts.plan)? {
            return Err(StoreError::PlanNotFound(opts.plan.clone()));
        }
        let now = unix_now();
        // Random digests land all over the unique index: give this one big transaction a
        // page cache that holds the index, instead of spilling to the WAL mid-way.
        self.conn
            .pragma_update(None, "cache_size", IMPORT_CACHE_KIB)?;
        let tx = self.write_tx()?;
        let mut exists = tx.prepare("SELECT 1 FROM keys WHERE id = ?1")?;
        let mut drop_grace = tx.prepare("DELETE FROM key_grace WHERE key_id = ?1")?;
        let mut owner = tx.prepare("SELECT id FROM keys WHERE digest = ?1")?;
        let mut insert = tx.prepare(&format!(
            "INSERT INTO keys (id, digest, hint, tenant, name, plan, limits, enabled, created_at,
                legacy, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?8) {}",
            if opts.replace {
                "ON CONFLICT(id) DO UPDATE SET digest = excluded.digest, hint = excluded.hint,
                    tenant = excluded.tenant, name = excluded.name, plan = excluded.plan,
                    limits = excluded.limits, legacy = excluded.legacy,
                    updated_at = excluded.updated_at"
            } else {
                ""
            }
        ))?;
        let mut report = ImportReport::default();
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let n = input
                .read_until(b'\n', &mut buf)
                .map_err(|e| StoreError::Import {
                    line: line_no + 1,
                    reason: format!("cannot read: {e}"),
                })?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line_no.is_multiple_of(10_000) {
                progress(line_no);
            }
            let fail = |reason: String| StoreError::Import {
                line: line_no,
                reason,
            };
            let text = std::str::from_utf8(&buf).map_err(|_| fail("not valid UTF-8".into()))?;
            let text = text.trim_end_matches(['\n', '\r']);
            let row = match opts.format {
                ImportFormat::Tsv => parse_tsv(text),
                ImportFormat::Jsonl => parse_jsonl(text),
            };
            let Some(row) = row.map_err(fail)? else {
                continue;
            };
            let key = to_key(row, &opts.plan, now).map_err(fail)?;
            let existed = exists.exists([&key.id])?;
            if existed && !opts.replace {
                return Err(fail(format!(
                    "a key with id {:?} already exists: pass --replace to overwrite it",
                    key.id
                )));
            }
            insert
                .execute(params![
                    key.id,
                    &key.digest[..],
                    key.hint,
                    key.tenant,
                    key.name,
                    key.plan,
                    codec::limits(&key.limits),
                    now,
                    key.legacy,
                ])
                .map_err(|e| match extended_code(&e) {
                    Some(ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => fail(format!(
                        "a key with id {:?} already exists: pass --replace to overwrite it",
                        key.id
                    )),
                    Some(ffi::SQLITE_CONSTRAINT_UNIQUE) => {
                        let other: String = owner
                            .query_row([&key.digest[..]], |r| r.get(0))
                            .unwrap_or_else(|_| "?".into());
                        fail(format!(
                            "this key's secret is already stored, as key {other:?}"
                        ))
                    }
                    _ => e.into(),
                })?;
            if existed {
                drop_grace.execute([&key.id])?;
                report.replaced += 1;
            } else {
                report.imported += 1;
            }
            report.legacy += u64::from(key.legacy);
        }
        drop((exists, drop_grace, owner, insert));
        tx.commit()?;
        progress(line_no);
        Ok(report)
    }
}
