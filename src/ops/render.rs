//! How keys and plans are shown: JSON values and plain-text tables. Only ids, hints and
//! settings appear here; a digest or a secret never does.

use serde_json::{json, Map, Value};

use super::parse::rfc3339;
use crate::keys::model::{Credits, KeySpec, PlanSpec};

/// A key's state at `now`: `revoked`, `expired`, `not-yet` or `active`.
pub fn key_state(k: &KeySpec, now: i64) -> &'static str {
    if !k.enabled {
        "revoked"
    } else if k.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else if k.not_before.is_some_and(|t| t > now) {
        "not-yet"
    } else {
        "active"
    }
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(T::to_string).collect()
}

/// `{"total": N, "refill": "day" | "month" | null}`, or null without credits.
pub fn credits_json(c: Option<Credits>) -> Value {
    c.map_or(
        Value::Null,
        |c| json!({ "total": c.total, "refill": c.refill.map(|w| w.name()) }),
    )
}

pub fn key_json(k: &KeySpec, now: i64) -> Value {
    let meta: Map<String, Value> = k
        .metadata
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    let grace: Vec<Value> = k
        .grace
        .iter()
        .filter(|g| g.grace_until > now)
        .map(|g| json!({ "until": rfc3339(g.grace_until) }))
        .collect();
    json!({
        "id": k.id,
        "hint": k.hint,
        "tenant": k.tenant,
        "name": k.name,
        "plan": k.plan,
        "state": key_state(k, now),
        "enabled": k.enabled,
        "limits": strings(&k.limits),
        "scopes": k.scopes,
        "allow_ips": k.allow_ips,
        "max_body_bytes": k.max_body_bytes,
        "credits": credits_json(k.credits),
        "metadata": meta,
        "not_before": k.not_before.map(rfc3339),
        "expires_at": k.expires_at.map(rfc3339),
        "created_at": rfc3339(k.created_at),
        "rotated_from": k.rotated_from,
        "legacy": k.legacy,
        "previous_secrets_valid": grace,
    })
}

pub fn plan_json(p: &PlanSpec, keys: u64) -> Value {
    json!({
        "name": p.name,
        "limits": strings(&p.limits),
        "scopes": p.scopes,
        "max_body_bytes": p.max_body_bytes,
        "allow_ips": p.allow_ips,
        "upstream": p.upstream,
        "priority": p.priority,
        "keys": keys,
    })
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    for row in std::iter::once(&head).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = width[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

pub fn keys_table(keys: &[KeySpec], now: i64) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.hint.clone(),
                k.tenant.clone(),
                k.plan.clone(),
                or_dash(k.name.clone()),
                key_state(k, now).into(),
                k.expires_at.map_or_else(|| "never".into(), rfc3339),
            ]
        })
        .collect();
    table(
        &["id", "hint", "tenant", "plan", "name", "state", "expires"],
        &rows,
    )
}

pub fn plans_table(plans: &[(PlanSpec, u64)]) -> String {
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|(p, keys)| {
            vec![
                p.name.clone(),
                p.priority.to_string(),
                or_dash(strings(&p.limits).join(" ")),
                or_dash(p.scopes.join(", ")),
                p.max_body_bytes
                    .map_or_else(|| "-".into(), |b| b.to_string()),
                or_dash(p.allow_ips.join(" ")),
                p.upstream.clone().unwrap_or_else(|| "-".into()),
                keys.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "priority",
            "limits",
            "scopes",
            "max_body",
            "allow_ips",
            "upstream",
            "keys",
        ],
        &rows,
    )
}

/// `keys show`: one field per line.
pub fn key_details(k: &KeySpec, now: i64) -> String {
    let list = |v: Vec<String>, none: &str| {
        if v.is_empty() {
            none.to_string()
        } else {
            v.join(", ")
        }
    };
    let meta: Vec<String> = k.metadata.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let grace: Vec<String> = k
        .grace
        .iter()
        .filter(|g| g.grace_until > now)
        .map(|g| format!("valid until {}", rfc3339(g.grace_until)))
        .collect();
    let fields = [
        ("id", k.id.clone()),
        ("hint", k.hint.clone()),
        ("tenant", k.tenant.clone()),
        ("name", or_dash(k.name.clone())),
        ("plan", k.plan.clone()),
        ("state", key_state(k, now).into()),
        ("limits", list(strings(&k.limits), "(the plan's)")),
        ("scopes", list(k.scopes.clone(), "(the plan's)")),
        ("allow_ips", list(k.allow_ips.clone(), "(the plan's)")),
        (
            "max_body",
            k.max_body_bytes
                .map_or_else(|| "(the plan's)".into(), |b| format!("{b} bytes")),
        ),
        (
            "credits",
            k.credits.map_or_else(|| "-".into(), |c| c.to_string()),
        ),
        ("metadata", list(meta, "-")),
        (
            "not_before",
            k.not_before.map_or_else(|| "-".into(), rfc3339),
        ),
        (
            "expires_at",
            k.expires_at.map_or_else(|| "never".into(), rfc3339),
        ),
        ("created_at", rfc3339(k.created_at)),
        ("old secrets", list(grace, "-")),
        (
            "legacy",
            if k.legacy {
                "yes (imported)".into()
            } else {
                "no".into()
            },
        ),
    ];
    fields
        .iter()
        .map(|(n, v)| format!("{n:<12} {v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let mut k = KeySpec {
            enabled: true,
            ..KeySpec::default()
        };
        assert_eq!(key_state(&k, 100), "active");
        k.not_before = Some(200);
        assert_eq!(key_state(&k, 100), "not-yet");
        k.expires_at = Some(100);
        assert_eq!(key_state(&k, 100), "expired");
        k.enabled = false;
        assert_eq!(key_state(&k, 100), "revoked");
    }

    #[test]
    fn credits_shown() {
        use crate::keys::model::Window;
        let mut k = KeySpec::default();
        assert_eq!(key_json(&k, 0)["credits"], Value::Null);
        assert!(key_details(&k, 0).contains("credits      -\n"));
        k.credits = Some(Credits {
            total: 1000,
            refill: Some(Window::Month),
        });
        assert_eq!(
            key_json(&k, 0)["credits"],
            json!({"total": 1000, "refill": "month"})
        );
        assert!(key_details(&k, 0).contains("credits      1000, refilled each UTC month\n"));
        k.credits = Some(Credits {
            total: 5,
            refill: None,
        });
        assert_eq!(
            key_json(&k, 0)["credits"],
            json!({"total": 5, "refill": null})
        );
        assert!(key_details(&k, 0).contains("credits      5 (no refill)\n"));
    }

    #[test]
    fn table_aligns() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
