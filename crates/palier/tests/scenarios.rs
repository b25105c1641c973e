//! Runs every case of `tests/scenarios/` through the real `palier replay` binary and
//! diffs what it prints with what the case expects (format: tests/scenarios/README.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    program: String,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(rename = "check")]
    checks: Vec<Check>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    as_of: Option<String>,
    expected: String,
    #[serde(default)]
    rejected: Vec<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first difference between a check's expectations and a run, if any.
fn run_check(case: &Path, scenario: &Scenario, check: &Check) -> Result<(), String> {
    let program = root().join("programs").join(format!("{}.toml", scenario.program));
    let mut command = Command::new(env!("CARGO_BIN_EXE_palier"));
    command.arg("replay").arg("--program").arg(&program).arg("--events").arg(case.join("events.jsonl"));
    if let Some(as_of) = &check.as_of {
        command.arg("--as-of").arg(as_of);
    }
    let output = command.output().map_err(|e| format!("cannot run palier: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    let expected: Vec<&str> = check.expected.lines().filter(|l| !l.trim().is_empty()).collect();
    let actual: Vec<&str> = stdout.lines().collect();
    for index in 0..expected.len().max(actual.len()) {
        let want = expected.get(index).map(|l| serde_json::from_str::<serde_json::Value>(l));
        let got = actual.get(index).map(|l| serde_json::from_str::<serde_json::Value>(l));
        match (want, got) {
            (Some(Ok(w)), Some(Ok(g))) if covers(&w, &g) => {}
            (Some(Err(e)), _) => {
                return Err(format!("expected line {} is not JSON: {e}", index + 1));
            }
            (w, g) => {
                return Err(format!(
                    "document {} differs\n    expected: {}\n    actual:   {}",
                    index + 1,
                    w.map_or("(none)".into(), |_| expected[index].to_string()),
                    g.map_or("(none)".into(), |_| actual[index].to_string()),
                ));
            }
        }
    }

    let stderr_lines: Vec<&str> = stderr.lines().collect();
    if stderr_lines.len() != check.rejected.len()
        || !stderr_lines.iter().zip(&check.rejected).all(|(line, want)| line.starts_with(want.as_str()))
    {
        return Err(format!("rejections differ\n    expected: {:?}\n    actual:   {:?}", check.rejected, stderr_lines));
    }
    let want_status = if check.rejected.is_empty() { 0 } else { 3 };
    if output.status.code() != Some(want_status) {
        return Err(format!("exit status {:?}, expected {want_status}", output.status.code()));
    }
    Ok(())
}

#[test]
fn scenarios() {
    let dir = root().join("tests/scenarios");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/scenarios exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("scenario.toml").is_file())
        .collect();
    cases.sort();
    let filter = std::env::var("SCENARIO").unwrap_or_default();
    let mut failures = Vec::new();
    let (mut ran_cases, mut ran_checks) = (0, 0);
    for case in &cases {
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !name.contains(&filter) {
            continue;
        }
        let text = std::fs::read_to_string(case.join("scenario.toml")).expect("readable scenario.toml");
        let scenario: Scenario = match toml::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: scenario.toml: {e}"));
                continue;
            }
        };
        assert!(!scenario.rules.is_empty() || !scenario.description.is_empty(), "{name}: say what the case shows");
        ran_cases += 1;
        for (index, check) in scenario.checks.iter().enumerate() {
            ran_checks += 1;
            if let Err(difference) = run_check(case, &scenario, check) {
                let as_of = check.as_of.as_deref().unwrap_or("latest");
                failures.push(format!("{name} check {} (as of {as_of}): {difference}", index + 1));
            }
        }
    }
    println!("scenarios: {ran_cases} cases, {ran_checks} checks, {} failed", failures.len());
    assert!(ran_cases > 0, "no scenario ran (filter {filter:?})");
    assert!(failures.is_empty(), "{} of {ran_checks} checks failed:\n{}", failures.len(), failures.join("\n"));
}

/// Does `got` hold everything `want` says? Objects may hold more fields than a case
/// lists (the contract grows by adding fields, and a case names what it is about);
/// every listed field, at any depth, must be equal.
fn covers(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    match (want, got) {
        (serde_json::Value::Object(want), serde_json::Value::Object(got)) => {
            want.iter().all(|(key, value)| got.get(key).is_some_and(|g| covers(value, g)))
        }
        _ => want == got,
    }
}
