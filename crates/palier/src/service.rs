//! `palier serve`, `palier import`, `palier keys`: the service and its store.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use palier_core::Program;
use palier_server::auth::{SCOPES, create_key};
use palier_server::live::Decision;
use palier_server::{Clock, ServiceConfig};
use palier_store::Store;

use crate::{KeysAction, load_program};

/// Program files from paths that are files or directories of `*.toml`.
pub fn load_programs(paths: &[PathBuf]) -> Result<Vec<Program>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("--program: cannot read {}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let programs = files.iter().map(load_program).collect::<Result<Vec<_>, _>>()?;
    for (index, program) in programs.iter().enumerate() {
        if programs[..index].iter().any(|p| p.id == program.id) {
            return Err(format!("--program: program {:?} is loaded twice", program.id));
        }
    }
    if programs.is_empty() {
        return Err("--program: no program file found".to_string());
    }
    Ok(programs)
}

async fn open_store(location: &str) -> Result<Store, String> {
    Store::open(location).await.map_err(|e| format!("cannot open the store {location}: {e}"))
}

pub async fn serve(
    programs: &[PathBuf],
    listen: SocketAddr,
    location: &str,
    clock: Option<&str>,
    notify: palier_server::outbox::NotifyConfig,
) -> Result<ExitCode, String> {
    init_tracing();
    let programs = load_programs(programs)?;
    let store = open_store(location).await?;
    let clock = match clock {
        Some(text) => Clock::Manual(Arc::new(Mutex::new(
            text.parse::<Timestamp>().map_err(|e| format!("--clock: {text:?} is not an RFC 3339 instant ({e})"))?,
        ))),
        None => Clock::System,
    };
    let admin_key = std::env::var("PALIER_ADMIN_KEY").ok().filter(|k| !k.is_empty());
    if admin_key.is_none() && store.keys().await.map_err(|e| e.to_string())?.is_empty() {
        let (id, secret) =
            create_key(&store, "admin (first start)", &["admin".to_string()], Timestamp::now().as_second())
                .await
                .map_err(|e| format!("cannot create the first admin key: {e}"))?;
        println!("palier: the store had no API key; created admin key {id} (shown once):\n{secret}");
    }
    let names: Vec<String> = programs.iter().map(|p| p.id.clone()).collect();
    let state = palier_server::start(ServiceConfig { programs, store, admin_key, clock }).await?;
    state.start_notifications(notify).await?;
    let listener = palier_server::bind(listen).await.map_err(|e| format!("--listen {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("palier: serving {} on http://{address} (store: {})", names.join(", "), state.store().kind());
    palier_server::serve(state, listener).await.map_err(|e| format!("the server stopped: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `palier demo`: the three programs, the example events, one SQLite file.
pub async fn demo(listen: SocketAddr, data: &Path) -> Result<ExitCode, String> {
    init_tracing();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = if root.join("programs").is_dir() { root } else { PathBuf::from(".") };
    let programs = load_programs(&[root.join("programs")])?;
    let store = open_store(&data.display().to_string()).await?;
    let (id, secret) = create_key(&store, "demo", &["admin".to_string()], Timestamp::now().as_second())
        .await
        .map_err(|e| format!("cannot create the demo key: {e}"))?;
    let state = palier_server::start(ServiceConfig { programs, store, admin_key: None, clock: Clock::System }).await?;
    state.start_notifications(palier_server::outbox::NotifyConfig::default()).await?;
    for (program, file) in
        [("net-a-porter", "net-a-porter.jsonl"), ("mr-porter", "mr-porter.jsonl"), ("perfone", "perfone.jsonl")]
    {
        let path = root.join("examples").join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let lines: Vec<(usize, String)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                // The example files name no program: the demo adds it.
                let mut value: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                value["program"] = serde_json::Value::String(program.to_string());
                (i + 1, value.to_string())
            })
            .collect();
        for (line, id, decision) in state.import_lines(lines).await? {
            if let Decision::Rejected(rejection) = decision {
                eprintln!("{}: line {line}: event {}: {rejection}", path.display(), id.as_deref().unwrap_or("?"));
            }
        }
    }
    let listener = palier_server::bind(listen).await.map_err(|e| format!("--listen {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "palier demo: NET-A-PORTER, MR PORTER and Perfone with their example members, stored in {}",
        data.display()
    );
    println!("  API key ({id}, admin, shown once): {secret}");
    println!(
        "  try: curl -H 'Authorization: Bearer {secret}' 'http://{address}/v1/members/claire?program=net-a-porter'"
    );
    println!(
        "       curl -H 'Authorization: Bearer {secret}' 'http://{address}/v1/members/anna/timeline?program=perfone'"
    );
    println!("  health: http://{address}/healthz   metrics: http://{address}/metrics");
    // The Loyalty Hub: one example member per program, in the program's language,
    // each link carrying a member token issued now (valid 7 days, audited).
    for (program, member, lang) in
        [("net-a-porter", "claire", "fr"), ("mr-porter", "minho", "ko"), ("perfone", "anna", "ru")]
    {
        match state.hub_member_link(program, member, lang, 7 * 24 * 3600, &id).await {
            Ok(path) => println!("  Loyalty Hub ({member}, {program}): http://{address}{path}"),
            Err(error) => eprintln!("palier demo: no hub link for {member}: {error}"),
        }
    }
    println!("  staff console: http://{address}/hub/staff?key={secret}&lang=en");
    palier_server::serve(state, listener).await.map_err(|e| format!("the server stopped: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALIER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).json().try_init();
}

pub async fn import(programs: &[PathBuf], events: &Path, batch: usize, location: &str) -> Result<ExitCode, String> {
    let programs = load_programs(programs)?;
    let store = open_store(location).await?;
    let state = palier_server::start(ServiceConfig { programs, store, admin_key: None, clock: Clock::System }).await?;
    let file = std::fs::File::open(events).map_err(|e| format!("--events: cannot read {}: {e}", events.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut accepted, mut duplicate, mut rejected) = (0_u64, 0_u64, 0_u64);
    let mut pending: Vec<(usize, String)> = Vec::with_capacity(batch);
    let mut lines = reader.lines().enumerate();
    loop {
        let next = lines.next();
        let done = next.is_none();
        if let Some((index, line)) = next {
            let line = line.map_err(|e| format!("--events: {e}"))?;
            progress.inc(line.len() as u64 + 1);
            if !line.trim().is_empty() {
                pending.push((index + 1, line));
            }
        }
        if pending.len() >= batch.max(1) || (done && !pending.is_empty()) {
            let outcomes = state.import_lines(std::mem::take(&mut pending)).await?;
            for (line, id, decision) in outcomes {
                match decision {
                    Decision::Accepted => accepted += 1,
                    Decision::Duplicate => duplicate += 1,
                    Decision::Rejected(r) => {
                        rejected += 1;
                        progress.suspend(|| eprintln!("line {line}: event {}: {r}", id.as_deref().unwrap_or("?")));
                    }
                }
            }
            progress.set_message(format!("{accepted} accepted, {duplicate} already in, {rejected} rejected"));
        }
        if done {
            break;
        }
    }
    progress.finish_and_clear();
    println!("palier import: {accepted} accepted, {duplicate} already in, {rejected} rejected");
    Ok(if rejected > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

pub async fn keys(action: KeysAction, location: &str) -> Result<ExitCode, String> {
    let store = open_store(location).await?;
    match action {
        KeysAction::Create { name, scopes } => {
            if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return Err(format!("--scope: {bad:?} is not one of {}", SCOPES.join(", ")));
            }
            let (id, secret) = create_key(&store, &name, &scopes, Timestamp::now().as_second())
                .await
                .map_err(|e| format!("cannot create the key: {e}"))?;
            audit_cli(&store, "key.created", &id, serde_json::json!({"name": name, "scopes": scopes})).await?;
            println!("{id} {secret}");
            eprintln!("palier: the secret is shown once; only its hash is stored");
        }
        KeysAction::List => {
            for key in store.keys().await.map_err(|e| e.to_string())? {
                let revoked = key.revoked_unix_seconds.map_or("active".to_string(), |t| format!("revoked at {t}"));
                println!("{}\t{}\t{}\t{}", key.id, key.name, key.scopes.join(","), revoked);
            }
        }
        KeysAction::Revoke { id } => {
            if !store.revoke_key(&id, Timestamp::now().as_second()).await.map_err(|e| e.to_string())? {
                return Err(format!("no active key {id:?}"));
            }
            audit_cli(&store, "key.revoked", &id, serde_json::json!({})).await?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An audit entry for an action taken on the command line (actor `cli:USER`).
async fn audit_cli(store: &Store, action: &str, subject: &str, detail: serde_json::Value) -> Result<(), String> {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let entry = palier_store::NewAudit {
        at_unix_nanos: Timestamp::now().as_nanosecond() as i64,
        actor: format!("cli:{user}"),
        action: action.to_string(),
        subject: subject.to_string(),
        detail: detail.to_string(),
    };
    store.append_audit(&entry).await.map_err(|e| format!("cannot write the audit log: {e}"))
}

/// `palier audit verify`: walks the chain; exit 0 if it holds, 1 at the first broken link.
pub async fn audit_verify(location: &str) -> Result<ExitCode, String> {
    let store = open_store(location).await?;
    let records = store.audit_log().await.map_err(|e| format!("cannot read the audit log: {e}"))?;
    let head = store.audit_head().await.map_err(|e| format!("cannot read the audit head: {e}"))?;
    match palier_store::audit::verify_with_head(&records, head) {
        Ok(count) => {
            println!("audit log: {count} entries, chain intact");
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            println!("audit log: broken at entry {}: {}", broken.seq, broken.why);
            Ok(ExitCode::from(1))
        }
    }
}

/// `palier export`: the member's export document, from the store.
pub async fn export(
    programs: &[PathBuf],
    member: &str,
    program_id: Option<&str>,
    location: &str,
) -> Result<ExitCode, String> {
    let programs = load_programs(programs)?;
    let store = open_store(location).await?;
    let state = palier_server::start(ServiceConfig { programs, store, admin_key: None, clock: Clock::System }).await?;
    let document = state.export(member, program_id).await?;
    println!("{}", serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?);
    Ok(ExitCode::SUCCESS)
}
