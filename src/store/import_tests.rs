//! Tests of `import` (TSV and JSON lines) and of the rule that no secret reaches the db file.

use std::io::Cursor;

use super::test_util::plan;
use super::{ImportFormat, ImportOptions, ImportReport, KeyFilter, Store, StoreError};
use crate::keys::format;
use crate::keys::model::{LimitSpec, Window};

fn opts(format: ImportFormat, replace: bool) -> ImportOptions {
    ImportOptions {
        format,
        plan: "legacy".into(),
        replace,
    }
}

fn store() -> Store {
    let store = Store::open_in_memory().unwrap();
    store.set_plan(&plan("legacy")).unwrap();
    store
}

const TSV: &str = "# api_key\tkey_id\ttenant\trate_per_s\tburst\tclass  (n=3 seed=1)\n\
    abcdefghijklmnopqrstuvwxyz012345\tk000000\tt0000\t1000000\t1000000\tbench\n\
    bcdefghijklmnopqrstuvwxyz0123456\tk000001\tt0001\t5\t5\tlimited\r\n\
    \n\
    cdefghijklmnopqrstuvwxyz01234567\tk000002\tt0002\t100\t100\tdefault\n";

#[test]
fn tsv_import_keeps_ids_tenants_and_rates() {
    let mut store = store();
    let mut last = 0;
    let report = store
        .import(
            Cursor::new(TSV),
            &opts(ImportFormat::Tsv, false),
            &mut |n| last = n,
        )
        .unwrap();
    assert_eq!(
        report,
        ImportReport {
            imported: 3,
            replaced: 0,
            legacy: 3
        }
    );
    assert_eq!(last, 5);
    let k = store.get_key("k000001").unwrap();
    assert_eq!(k.tenant, "t0001");
    assert_eq!(k.plan, "legacy");
    assert_eq!(
        k.limits,
        vec![LimitSpec {
            count: 5,
            window: Window::Second
        }]
    );
    assert_eq!(
        k.digest,
        format::digest(b"bcdefghijklmnopqrstuvwxyz0123456")
    );
    assert!(k.legacy && k.enabled);
    assert_eq!(k.credits, None);
    assert_eq!(k.hint, "bcde...");
}

#[test]
fn jsonl_import_and_native_keys() {
    let mut store = store();
    let native = format::generate_secret("kw_test").unwrap();
    let input = format!(
        "{{\"key\":\"legacy-secret-0001\",\"id\":\"old_1\",\"tenant\":\"acme\",\"limits\":[\"5/s\",\"100/day\"],\"name\":\"ci\"}}\n\
         \n\
         {{\"key\":\"{native}\",\"tenant\":\"acme\"}}\n"
    );
    let report = store
        .import(
            Cursor::new(input),
            &opts(ImportFormat::Jsonl, false),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(
        report,
        ImportReport {
            imported: 2,
            replaced: 0,
            legacy: 1
        }
    );
    let old = store.get_key("old_1").unwrap();
    assert_eq!(old.name, "ci");
    assert_eq!(old.limits.len(), 2);
    let keys = store.list_keys(&KeyFilter::default()).unwrap();
    let new = keys.iter().find(|k| k.id != "old_1").unwrap();
    assert!(new.id.starts_with("key_"));
    assert!(!new.legacy);
    assert_eq!(new.hint, format::hint(&native));
}

#[test]
fn errors_name_the_line_and_never_the_secret() {
    let cases: &[(ImportFormat, &str, u64, &str)] = &[
        (
            ImportFormat::Tsv,
            "s3cretsecret\tk1\tt1\t5\n s3cretsecret2\tk2\n",
            2,
            "columns",
        ),
        (
            ImportFormat::Tsv,
            "s3cretsecret\tk1\tt1\tlots\n",
            1,
            "rate_per_s",
        ),
        (ImportFormat::Tsv, "s3cret\tk1\tt1\t5\n", 1, "shorter"),
        (
            ImportFormat::Tsv,
            "s3cretsecret\tbad id!\tt1\t5\n",
            1,
            "key id",
        ),
        (
            ImportFormat::Tsv,
            "s3cretsecret\tk1\ts3cretsecret x\t5\n",
            1,
            "tenant",
        ),
        (ImportFormat::Jsonl, "{\"key\":\"s3cretsecret\"", 1, "JSON"),
        (
            ImportFormat::Jsonl,
            "{\"key\":\"s3cretsecret\",\"tenant\":\"a\",\"x\":1}",
            1,
            "unknown",
        ),
        (
            ImportFormat::Jsonl,
            "{\"tenant\":\"a\",\"limits\":\"s3cretsecret\"}",
            1,
            "key",
        ),
        (
            ImportFormat::Jsonl,
            "{\"key\":\"s3cretsecret\",\"tenant\":\"a\",\"limits\":[\"s3cretsecret\"]}",
            1,
            "limits",
        ),
    ];
    for (fmt, input, line, word) in cases {
        let mut store = store();
        let err = store
            .import(Cursor::new(*input), &opts(*fmt, false), &mut |_| {})
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, StoreError::Import { line: l, .. } if l == *line),
            "{msg}"
        );
        assert!(msg.contains(word), "{msg}");
        assert!(!msg.contains("s3cret"), "secret leaked: {msg}");
        assert_eq!(store.key_count().unwrap(), 0, "all or nothing");
    }
}

#[test]
fn reimport_needs_replace() {
    let mut store = store();
    store
        .import(
            Cursor::new(TSV),
            &opts(ImportFormat::Tsv, false),
            &mut |_| {},
        )
        .unwrap();
    let err = store
        .import(
            Cursor::new(TSV),
            &opts(ImportFormat::Tsv, false),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("line 2: a key with id \"k000000\""),
        "{err}"
    );
    let again = "zzzzghijklmnopqrstuvwxyz01234567\tk000002\tt0009\t7\t7\tdefault\n";
    let err = store
        .import(
            Cursor::new(again),
            &opts(ImportFormat::Tsv, false),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("\"k000002\" already exists"),
        "{err}"
    );
    assert!(err.to_string().contains("--replace"), "{err}");
    assert!(!err.to_string().contains("zzzz"));

    let report = store
        .import(
            Cursor::new(again),
            &opts(ImportFormat::Tsv, true),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(
        report,
        ImportReport {
            imported: 0,
            replaced: 1,
            legacy: 1
        }
    );
    let k = store.get_key("k000002").unwrap();
    assert_eq!(k.tenant, "t0009");
    assert_eq!(
        k.digest,
        format::digest(again.split('\t').next().unwrap().as_bytes())
    );

    // Same secret under a new id: refused, naming the id that has it.
    let dup = "zzzzghijklmnopqrstuvwxyz01234567\tk000009\tt0009\t7\t7\tdefault\n";
    let err = store
        .import(
            Cursor::new(dup),
            &opts(ImportFormat::Tsv, true),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("k000002"), "{err}");
}

#[test]
fn import_of_unknown_plan_is_refused() {
    let mut store = store();
    let mut o = opts(ImportFormat::Tsv, false);
    o.plan = "gold".into();
    let err = store.import(Cursor::new(TSV), &o, &mut |_| {}).unwrap_err();
    assert!(matches!(err, StoreError::PlanNotFound(_)));
}

#[test]
fn no_secret_reaches_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/keys.db");
    let native = format::generate_secret(format::DEFAULT_PREFIX).unwrap();
    let rotated = format::generate_secret(format::DEFAULT_PREFIX).unwrap();
    {
        let mut store = Store::open(&path).unwrap();
        store.set_plan(&plan("legacy")).unwrap();
        let mut k = super::test_util::key("key_native", "legacy", &native);
        k.hint = format::hint(&native);
        store.create_key(&k).unwrap();
        store
            .import(
                Cursor::new(TSV),
                &opts(ImportFormat::Tsv, false),
                &mut |_| {},
            )
            .unwrap();
        let hint = format::hint(&rotated);
        store
            .rotate_key(
                "key_native",
                format::digest(rotated.as_bytes()),
                hint,
                i64::MAX / 2,
            )
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    for extra in ["-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(extra);
        bytes.extend(std::fs::read(p).unwrap_or_default());
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"key_native"),
        "sanity: the file holds the records"
    );
    assert!(
        contains(&format::digest(native.as_bytes())),
        "sanity: digests are there"
    );
    for secret in [native.as_str(), rotated.as_str()]
        .into_iter()
        .chain(TSV.lines().skip(1).filter_map(|l| l.split('\t').next()))
        .filter(|s| !s.is_empty())
    {
        assert!(!contains(secret.as_bytes()), "secret found in the db file");
        // Not even the random part without the prefix.
        let tail = &secret[secret.len() - 20..];
        assert!(
            !contains(tail.as_bytes()),
            "part of a secret found in the db file"
        );
    }
}
