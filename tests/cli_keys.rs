//! End to end through the real binary: plans, keys (create, list, show, rotate, revoke,
//! import), snapshot build and inspect, with the rule that a secret is printed only once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Env {
    _dir: tempfile::TempDir,
    db: PathBuf,
    snap: PathBuf,
    /// Everything any command printed, to check no secret leaked into it.
    seen: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/keys.db");
        let snap = dir.path().join("state/keys.snap");
        Env {
            _dir: dir,
            db,
            snap,
            seen: String::new(),
        }
    }

    /// `keyway --db DB --snapshot SNAP ARGS...`; returns stdout, panics unless it succeeded.
    fn ok(&mut self, args: &[&str]) -> String {
        let out = self.raw(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Like `ok` but expects exit status 1 and returns stderr.
    fn fails(&mut self, args: &[&str]) -> String {
        let out = self.raw(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn raw(&mut self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
            .arg("--db")
            .arg(&self.db)
            .arg("--snapshot")
            .arg(&self.snap)
            .args(args)
            .output()
            .unwrap();
        self.seen.push_str(&String::from_utf8_lossy(&out.stdout));
        self.seen.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    fn json(&mut self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

fn file_contains(path: &Path, needle: &str) -> bool {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    for extra in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(extra);
        bytes.extend(std::fs::read(p).unwrap_or_default());
    }
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn key_lifecycle_through_the_binary() {
    let mut env = Env::new();
    env.ok(&[
        "plans",
        "set",
        "free",
        "--limit",
        "20/s",
        "--scope",
        "GET /v1/**",
        "--max-body",
        "1MiB",
    ]);
    env.ok(&[
        "plans",
        "set",
        "pro",
        "--limit",
        "100/s",
        "--limit",
        "100000/day",
    ]);
    let plans = env.json(&["plans", "list", "--json"]);
    assert_eq!(plans.as_array().unwrap().len(), 2);
    assert_eq!(plans[0]["name"], "free");
    assert_eq!(plans[0]["max_body_bytes"], 1 << 20);

    // Create: the secret is printed once, in the JSON.
    let created = env.json(&[
        "keys",
        "create",
        "--tenant",
        "acme",
        "--plan",
        "free",
        "--name",
        "ci bot",
        "--scope",
        "POST /v1/orders/*",
        "--meta",
        "team=payments",
        "--allow-ip",
        "10.0.0.0/8",
        "--ttl",
        "30d",
        "--json",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["key"].as_str().unwrap().to_owned();
    assert!(id.starts_with("key_"), "{id}");
    assert!(secret.starts_with("kw_live_"), "{secret}");
    assert_eq!(created["record"]["tenant"], "acme");
    assert_eq!(created["record"]["state"], "active");
    assert_eq!(created["record"]["metadata"]["team"], "payments");
    let seen_at_creation = env.seen.clone();
    assert_eq!(
        seen_at_creation.matches(&secret).count(),
        1,
        "printed exactly once"
    );

    // Bad input is refused with one line saying why.
    let err = env.fails(&["keys", "create", "--tenant", "acme", "--plan", "gold"]);
    assert!(err.contains("no plan named \"gold\""), "{err}");

    // List and show never print it.
    let table = env.ok(&["keys", "list"]);
    assert!(
        table.contains(&id) && table.contains("acme") && table.contains("active"),
        "{table}"
    );
    let listed = env.json(&["keys", "list", "--tenant", "acme", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(env
        .json(&["keys", "list", "--plan", "pro", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
    let shown = env.json(&["keys", "show", &id, "--json"]);
    assert_eq!(shown["scopes"][0], "POST /v1/orders/*");
    env.ok(&["keys", "show", &id]);
    env.ok(&[
        "keys",
        "update",
        &id,
        "--plan",
        "pro",
        "--limit",
        "5/s",
        "--clear-meta",
    ]);
    assert_eq!(env.json(&["keys", "show", &id, "--json"])["plan"], "pro");

    // Rotate with grace: new secret once, old one listed as still valid.
    let rotated = env.json(&["keys", "rotate", &id, "--grace", "24h", "--json"]);
    let new_secret = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_valid_until"].is_string());
    let shown = env.json(&["keys", "show", &id, "--json"]);
    assert_eq!(shown["previous_secrets_valid"].as_array().unwrap().len(), 1);
    assert_eq!(shown["hint"].as_str().unwrap(), &new_secret[..12]);

    // Revoke.
    env.ok(&["keys", "revoke", &id]);
    assert_eq!(
        env.json(&["keys", "show", &id, "--json"])["state"],
        "revoked"
    );
    let err = env.fails(&["plans", "delete", "pro"]);
    assert!(err.contains("used by 1 key"), "{err}");

    // Snapshot build, then inspect.
    env.ok(&[
        "keys", "create", "--tenant", "globex", "--plan", "free", "--json",
    ]);
    let built = env.ok(&["snapshot", "build"]);
    assert!(
        built.starts_with("generation 1, 2 keys, 2 plans, "),
        "{built}"
    );
    let snap = env.snap.to_str().unwrap().to_owned();
    let inspected = env.json(&["snapshot", "inspect", &snap, "--json"]);
    assert_eq!(inspected["valid"], true);
    assert_eq!(inspected["generation"], 1);
    assert_eq!(inspected["keys"], 2);
    assert_eq!(inspected["plans"], 2);
    let built = env.ok(&["snapshot", "build"]);
    assert!(built.starts_with("generation 2, "), "{built}");

    // A damaged snapshot is refused, with the reason and exit status 1.
    std::fs::write(&env.snap, b"not a snapshot").unwrap();
    let err = env.fails(&["snapshot", "inspect", &snap]);
    assert!(err.contains("refused"), "{err}");

    // Secrets: each printed once, stored nowhere.
    let all_output = env.seen.clone();
    for s in [&secret, &new_secret] {
        assert_eq!(
            all_output.matches(s.as_str()).count(),
            1,
            "a secret was printed twice"
        );
        assert!(
            !file_contains(&env.db, s),
            "a secret is in the database file"
        );
    }
}

#[test]
fn import_tsv_and_jsonl() {
    let mut env = Env::new();
    env.ok(&[
        "plans", "set", "legacy", "--limit", "100/s", "--scope", "* /**",
    ]);
    let dir = env.db.parent().unwrap().to_owned();
    let tsv = dir.join("keys.tsv");
    std::fs::write(
        &tsv,
        "# api_key\tkey_id\ttenant\trate_per_s\tburst\tclass  (n=2 seed=1)\n\
         bjk4go8jdfb70b9xfz4b5suxy0rbb22g\tk000000\tt0000\t1000000\t1000000\tbench\n\
         73fzsq6k9sy5j5lcgcayvbkjpjave182\tk000001\tt0001\t5\t5\tlimited\n",
    )
    .unwrap();
    let out = env.ok(&[
        "keys",
        "import",
        "--format",
        "tsv",
        "--plan",
        "legacy",
        tsv.to_str().unwrap(),
    ]);
    assert!(out.contains("Imported 2 new"), "{out}");
    let k = env.json(&["keys", "show", "k000001", "--json"]);
    assert_eq!(k["tenant"], "t0001");
    assert_eq!(k["limits"][0], "5/s");
    assert_eq!(k["legacy"], true);

    let err = env.fails(&[
        "keys",
        "import",
        "--format",
        "tsv",
        "--plan",
        "legacy",
        tsv.to_str().unwrap(),
    ]);
    assert!(
        err.contains("line 2") && err.contains("k000000") && err.contains("--replace"),
        "{err}"
    );
    env.ok(&[
        "keys",
        "import",
        "--format",
        "tsv",
        "--plan",
        "legacy",
        "--replace",
        tsv.to_str().unwrap(),
    ]);

    let jsonl = dir.join("keys.jsonl");
    std::fs::write(
        &jsonl,
        "{\"key\":\"old-system-secret-1\",\"id\":\"acct_1\",\"tenant\":\"acme\",\"limits\":[\"5/s\"],\"name\":\"n\"}\n\
         {\"key\":\"old-system-secret-2\",\"tenant\":\"acme\",\"limits\":[\"5/q\"]}\n",
    )
    .unwrap();
    let err = env.fails(&[
        "keys",
        "import",
        "--format",
        "jsonl",
        "--plan",
        "legacy",
        jsonl.to_str().unwrap(),
    ]);
    assert!(err.contains("line 2") && err.contains("limits"), "{err}");
    assert!(env
        .json(&["keys", "list", "--tenant", "acme", "--json"])
        .as_array()
        .unwrap()
        .is_empty());

    for (i, secret) in ["bjk4go8jdfb70b9xfz4b5suxy0rbb22g", "old-system-secret"]
        .iter()
        .enumerate()
    {
        assert!(!env.seen.contains(secret), "secret {i} printed");
        assert!(!file_contains(&env.db, secret), "secret {i} stored");
    }
    let built = env.ok(&["snapshot", "build"]);
    assert!(built.contains(", 2 keys, 1 plans,"), "{built}");
}

#[test]
fn credits_through_the_binary() {
    let mut env = Env::new();
    env.ok(&["plans", "set", "free", "--limit", "20/s"]);

    // Create with credits refilled monthly: shown in the record, `show` and `list --json`.
    let created = env.json(&[
        "keys",
        "create",
        "--tenant",
        "acme",
        "--plan",
        "free",
        "--credits",
        "10000",
        "--refill",
        "month",
        "--json",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["record"]["credits"],
        serde_json::json!({"total": 10000, "refill": "month"})
    );
    let shown = env.json(&["keys", "show", &id, "--json"]);
    assert_eq!(shown["credits"]["total"], 10000);
    assert_eq!(shown["credits"]["refill"], "month");
    let text = env.ok(&["keys", "show", &id]);
    assert!(
        text.contains("credits      10000, refilled each UTC month\n"),
        "{text}"
    );
    let listed = env.json(&["keys", "list", "--json"]);
    assert_eq!(listed[0]["credits"]["total"], 10000);

    // A key without credits shows none.
    let plain = env.json(&[
        "keys", "create", "--tenant", "acme", "--plan", "free", "--json",
    ]);
    let plain_id = plain["id"].as_str().unwrap().to_owned();
    assert!(plain["record"]["credits"].is_null());
    let text = env.ok(&["keys", "show", &plain_id]);
    assert!(text.contains("credits      -\n"), "{text}");

    // Update: change them (no --refill: never refilled), then remove them.
    let updated = env.json(&["keys", "update", &id, "--credits", "5", "--json"]);
    assert_eq!(
        updated["credits"],
        serde_json::json!({"total": 5, "refill": null})
    );
    env.ok(&["keys", "update", &id, "--credits", "7", "--refill", "day"]);
    let shown = env.json(&["keys", "show", &id, "--json"]);
    assert_eq!(
        shown["credits"],
        serde_json::json!({"total": 7, "refill": "day"})
    );
    // The snapshot carries them (it builds and loads with credits in it).
    let built = env.ok(&["snapshot", "build"]);
    assert!(built.starts_with("generation 1, 2 keys, "), "{built}");
    let snap = env.snap.to_str().unwrap().to_owned();
    assert_eq!(
        env.json(&["snapshot", "inspect", &snap, "--json"])["valid"],
        true
    );
    env.ok(&["keys", "update", &id, "--credits", "none"]);
    assert!(env.json(&["keys", "show", &id, "--json"])["credits"].is_null());

    // Refusals: one line each, nothing changed.
    for args in [
        &["keys", "update", &id, "--refill", "day"][..],
        &[
            "keys", "create", "--tenant", "acme", "--plan", "free", "--refill", "month",
        ],
        &[
            "keys",
            "update",
            &id,
            "--credits",
            "none",
            "--refill",
            "day",
        ],
    ] {
        let err = env.fails(args);
        assert!(err.contains("--refill needs credits"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    for (args, why) in [
        (&["keys", "update", &id, "--credits", "0"][..], "at least 1"),
        (
            &["keys", "update", &id, "--credits", "lots"],
            "whole number",
        ),
        (
            &["keys", "update", &id, "--credits", "5", "--refill", "hour"],
            "day or month",
        ),
    ] {
        let out = env.raw(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
    assert!(env.json(&["keys", "show", &id, "--json"])["credits"].is_null());
    assert_eq!(
        env.json(&["keys", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn an_absurd_rotation_grace_is_refused_in_one_line() {
    let mut env = Env::new();
    env.ok(&["plans", "set", "free", "--scope", "GET /v1/**"]);
    let key = env.json(&[
        "keys", "create", "--tenant", "t", "--plan", "free", "--json",
    ]);
    let id = key["id"].as_str().unwrap().to_owned();
    let out = env.raw(&["keys", "rotate", &id, "--grace", "9999y"]);
    assert!(!out.status.success(), "a 9999-year grace was accepted");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("grace"), "{err}");
    // The key still has its one secret: nothing was rotated.
    let shown = env.json(&["keys", "show", &id, "--json"]);
    assert!(shown["previous_secrets_valid"]
        .as_array()
        .unwrap()
        .is_empty());
    env.ok(&["keys", "rotate", &id, "--grace", "366d"]);
}

/// `store backup` writes a copy that is a working database (the same keys), never
/// overwrites, and the original keeps working.
#[test]
fn store_backup_copies_the_database_online_and_never_overwrites() {
    let mut env = Env::new();
    env.ok(&["plans", "set", "free", "--scope", "GET /v1/**"]);
    let created = env.json(&[
        "keys", "create", "--tenant", "acme", "--plan", "free", "--json",
    ]);
    let id = created["id"].as_str().unwrap().to_string();
    let backup = env.db.with_file_name("backup.db");
    let said = env.ok(&["store", "backup", backup.to_str().unwrap()]);
    assert!(said.contains("(1 keys)"), "{said}");

    // The copy is a database of its own with the same key.
    let mut copy = Env::new();
    copy.db = backup.clone();
    let listed = copy.json(&["keys", "list", "--json"]);
    assert!(listed.to_string().contains(&id), "{listed}");

    // A second backup to the same file is refused; the first is left as it was.
    let before = std::fs::read(&backup).unwrap();
    let err = env.fails(&["store", "backup", backup.to_str().unwrap()]);
    assert!(err.contains("the file exists"), "{err}");
    assert_eq!(std::fs::read(&backup).unwrap(), before);
    // The original still works, and the copy never held a secret.
    env.ok(&["keys", "show", &id]);
    let secret = created["key"].as_str().unwrap();
    assert!(!file_contains(&backup, secret));
}
