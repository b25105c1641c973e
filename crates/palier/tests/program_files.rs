//! Program files: the shipped ones load, and a file with a mistake is refused with
//! exit status 2 and a message naming the file, the line and what is wrong.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(root().join("programs").join(name)).expect("shipped program file")
}

/// Runs `palier replay` on a program text written to a temporary file; returns
/// (exit status, stderr, the file's path).
fn replay_with(text: &str, name: &str) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!("palier-program-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let program = dir.join("program.toml");
    std::fs::write(&program, text).expect("write program");
    let events = dir.join("events.jsonl");
    std::fs::write(&events, "").expect("write events");
    let output = Command::new(env!("CARGO_BIN_EXE_palier"))
        .args(["replay", "--program"])
        .arg(&program)
        .arg("--events")
        .arg(&events)
        .output()
        .expect("palier runs");
    let _ = std::fs::remove_dir_all(&dir);
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned(), program.display().to_string())
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in text") + 1
}

#[test]
fn program_files_shipped_load() {
    for name in ["net-a-porter.toml", "mr-porter.toml", "perfone.toml"] {
        let output = Command::new(env!("CARGO_BIN_EXE_palier"))
            .arg("check")
            .arg(root().join("programs").join(name))
            .output()
            .expect("palier runs");
        assert_eq!(output.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

#[test]
fn program_file_unknown_key_is_refused_with_its_line() {
    let text = shipped("net-a-porter.toml").replace("window_days = 28", "window_days = 28\nwindow_hours = 3");
    let (status, stderr, file) = replay_with(&text, "unknown-key");
    assert_eq!(status, Some(2));
    let line = line_of(&text, "window_hours");
    assert!(stderr.contains(&format!("{file}:{line}:")), "{stderr}");
    assert!(stderr.contains("window_hours"), "{stderr}");
}

#[test]
fn program_file_thresholds_must_increase() {
    let text = shipped("net-a-porter.toml").replace("EUR = \"6000.00\"", "EUR = \"2999.99\"");
    let (status, stderr, file) = replay_with(&text, "threshold");
    assert_eq!(status, Some(2));
    let line = line_of(&text, "EUR = \"2999.99\"");
    assert!(stderr.contains(&format!("{file}:{line}:")), "{stderr}");
    assert!(stderr.contains("thresholds must increase"), "{stderr}");
}

#[test]
fn program_file_unknown_currency_is_refused() {
    let text = shipped("perfone.toml").replace("RUB = [\"RU\"]", "RUR = [\"RU\"]");
    let (status, stderr, file) = replay_with(&text, "currency");
    assert_eq!(status, Some(2));
    let line = line_of(&text, "RUR = ");
    assert!(stderr.contains(&format!("{file}:{line}:")), "{stderr}");
    assert!(stderr.contains("\"RUR\" is not an ISO 4217 currency code"), "{stderr}");
}

#[test]
fn program_file_bad_zone_is_refused() {
    let text = shipped("mr-porter.toml").replace("Europe/London", "Europe/Londres");
    let (status, stderr, file) = replay_with(&text, "zone");
    assert_eq!(status, Some(2));
    let line = line_of(&text, "Europe/Londres");
    assert!(stderr.contains(&format!("{file}:{line}:")), "{stderr}");
    assert!(stderr.contains("not an IANA time zone"), "{stderr}");
}

#[test]
fn program_file_country_under_two_currencies_is_refused() {
    let text = shipped("net-a-porter.toml").replace("\"AU\"", "\"FR\"");
    let (status, stderr, _) = replay_with(&text, "country");
    assert_eq!(status, Some(2));
    assert!(stderr.contains("FR is already listed under"), "{stderr}");
}

#[test]
fn replay_bad_arguments_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_palier"))
        .args(["replay", "--program"])
        .arg(root().join("programs/perfone.toml"))
        .args(["--events", "/nonexistent/events.jsonl"])
        .output()
        .expect("palier runs");
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(env!("CARGO_BIN_EXE_palier"))
        .args(["replay", "--program"])
        .arg(root().join("programs/perfone.toml"))
        .args(["--events", "-", "--as-of", "yesterday"])
        .output()
        .expect("palier runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--as-of"));
}

/// `palier demo` loads every example into one store: event ids must be unique across
/// the files, and each file must replay cleanly against its program.
#[test]
fn examples_replay_cleanly_with_unique_ids() {
    let mut ids = std::collections::BTreeSet::new();
    for program in ["net-a-porter", "mr-porter", "perfone"] {
        let events = root().join("examples").join(format!("{program}.jsonl"));
        let text = std::fs::read_to_string(&events).expect("example events");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value: serde_json::Value = serde_json::from_str(line).expect("example lines are JSON");
            let id = value["id"].as_str().expect("an id").to_string();
            assert!(ids.insert(id.clone()), "event id {id} is used in two example files");
        }
        let output = Command::new(env!("CARGO_BIN_EXE_palier"))
            .args(["replay", "--program"])
            .arg(root().join("programs").join(format!("{program}.toml")))
            .arg("--events")
            .arg(&events)
            .output()
            .expect("palier runs");
        assert_eq!(output.status.code(), Some(0), "{program}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(!output.stdout.is_empty(), "{program}: no member document");
    }
}
