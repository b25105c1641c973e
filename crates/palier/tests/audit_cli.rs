//! `palier audit verify --data FILE`, the real binary, on SQLite files whose audit
//! trail is written with `palier_store` directly (docs/privacy.md, "Audit trail"):
//! an untouched chain verifies (exit 0, "chain intact"); a changed or deleted entry
//! is found (exit 1, naming the entry).
//!
//! The rows are tampered with through a plain SQLite connection (rusqlite), as an
//! intruder with the file would.

use std::path::{Path, PathBuf};
use std::process::Command;

use palier_store::{NewAudit, Store};

/// A SQLite store in a fresh directory with `entries` audit entries (seq 1…n).
async fn prepared(entries: i64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("audit.db");
    let store = Store::open(path.to_str().expect("a UTF-8 path")).await.expect("opening the store");
    for n in 1..=entries {
        let entry = NewAudit {
            at_unix_nanos: 1_893_456_000_000_000_000 + n * 1_000_000_000,
            actor: if n % 2 == 0 { "key_0a1b2c3d".into() } else { "cli:keys".into() },
            action: ["ledger.adjusted", "member.erased", "token.issued", "clock.set"][(n % 4) as usize].into(),
            subject: format!("anon-{n:020x}"),
            detail: serde_json::json!({"program": "net-a-porter", "n": n}).to_string(),
        };
        store.append_audit(&entry).await.expect("appending an audit entry");
    }
    let records = store.audit_log().await.expect("reading the audit log");
    assert_eq!(records.len() as i64, entries);
    assert_eq!(palier_store::audit::verify(&records), Ok(entries as usize), "the library verifies the fresh chain");
    store.close().await;
    (dir, path)
}

/// Runs `palier audit verify --data FILE`: (exit code, stdout and stderr).
fn verify(path: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_palier"))
        .args(["audit", "verify", "--data"])
        .arg(path)
        .env_remove("PALIER_DATABASE")
        .env_remove("PALIER_DATA")
        .output()
        .expect("running palier");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

/// Runs one SQL statement on the file, outside palier.
fn sqlite3(path: &Path, sql: &str) {
    let connection = rusqlite::Connection::open(path).expect("opening the file");
    connection.execute_batch(sql).unwrap_or_else(|e| panic!("{sql:?}: {e}"));
}

#[tokio::test]
async fn an_untouched_chain_is_intact() {
    let (_dir, path) = prepared(5).await;
    let (code, text) = verify(&path);
    assert_eq!(code, Some(0), "palier audit verify on an untouched chain: {text}");
    assert!(text.contains("chain intact"), "{text}");
    assert!(text.contains("5 entries"), "{text}");

    let (_dir, path) = prepared(0).await;
    let (code, text) = verify(&path);
    assert_eq!(code, Some(0), "an empty audit log: {text}");
    assert!(text.contains("0 entries, chain intact"), "{text}");
}

#[tokio::test]
async fn a_changed_entry_is_found() {
    let (_dir, path) = prepared(5).await;
    sqlite3(&path, "UPDATE audit_log SET detail = '{}' WHERE seq = 2");
    let (code, text) = verify(&path);
    assert_eq!(code, Some(1), "a changed detail: {text}");
    assert!(text.contains("entry 2"), "the output names entry 2: {text}");
    assert!(!text.contains("chain intact"), "{text}");

    // Another field of another entry, on a fresh chain.
    let (_dir, path) = prepared(5).await;
    sqlite3(&path, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4");
    let (code, text) = verify(&path);
    assert_eq!(code, Some(1), "a changed actor: {text}");
    assert!(text.contains("entry 4"), "the output names entry 4: {text}");

    // A rewritten entry given a valid hash of its own: the next entry still links to
    // the old hash, so the chain breaks there.
    let (_dir, path) = prepared(5).await;
    let store = Store::open(path.to_str().expect("a UTF-8 path")).await.expect("opening the store");
    let records = store.audit_log().await.expect("reading the audit log");
    store.close().await;
    let mut entry = records[2].entry.clone();
    entry.detail = "{}".into();
    let hash = palier_store::audit::link_hash(&records[1].hash, 3, &entry);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    sqlite3(&path, &format!("UPDATE audit_log SET detail = '{{}}', hash = X'{hex}' WHERE seq = 3"));
    let (code, text) = verify(&path);
    assert_eq!(code, Some(1), "a rewritten entry with its hash recomputed: {text}");
    assert!(text.contains("entry 4"), "the output names entry 4, whose link broke: {text}");
}

#[tokio::test]
async fn a_deleted_entry_is_found() {
    let (_dir, path) = prepared(5).await;
    sqlite3(&path, "DELETE FROM audit_log WHERE seq = 2");
    let (code, text) = verify(&path);
    assert_eq!(code, Some(1), "a deleted entry: {text}");
    assert!(text.contains("entry 2"), "the output names the missing entry 2: {text}");
    assert!(!text.contains("chain intact"), "{text}");
}

#[tokio::test]
async fn removing_the_last_entries_is_found() {
    let (_dir, path) = prepared(5).await;
    sqlite3(&path, "DELETE FROM audit_log WHERE seq >= 4");
    let (code, text) = verify(&path);
    assert_eq!(code, Some(1), "the chain lost its end: {text}");
    assert!(text.contains("entry 4"), "the output names the first missing entry: {text}");
}
