//! What the benchmarks share: events from palier-gen, the rows a raw baseline inserts,
//! palier served in-process, fresh stores (SQLite files in temporary directories,
//! PostgreSQL databases), and the result rows `bench/service.sh` collects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hyper::body::Bytes;
use palier_core::Program;
use palier_server::{AppState, Clock, ServiceConfig};
use palier_store::Store;
use serde_json::Value;
use sqlx::Connection;

/// The admin key every palier under test is started with.
pub const ADMIN_KEY: &str = "palier-bench-admin";

/// palier's own table, exactly: the raw baselines insert into the same shape.
pub const SQLITE_SCHEMA: &str = include_str!("../../palier-store/migrations/sqlite/0001_init.sql");
pub const POSTGRES_SCHEMA: &str = include_str!("../../palier-store/migrations/postgres/0001_init.sql");

/// The programs of the repository (`programs/*.toml`), sorted by file name.
pub fn programs(dir: &Path) -> Result<Vec<Program>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no program file in {}", dir.display()));
    }
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            Program::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())
        })
        .collect()
}

// ---- events ----------------------------------------------------------------------------

/// One event as a raw baseline stores it: the routing fields palier stores, already
/// extracted (the baseline does no parsing), and the body as received.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub program: String,
    pub member: String,
    pub order: Option<String>,
    pub at_unix_nanos: i64,
    pub body: Bytes,
}

impl Row {
    /// What the baseline stores in `body_sha256`: 32 bytes it does not compute (palier
    /// hashes the canonical body; the baseline is the storage cost alone).
    pub fn hash(&self) -> [u8; 32] {
        let mut hash = [0_u8; 32];
        for (i, b) in self.id.bytes().enumerate() {
            hash[i % 32] ^= b;
        }
        hash
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_default()
    }
}

/// A palier-gen stream, in order of `at` (no late lines: the benchmarks post each
/// member's events in order), with the routing fields of each event.
pub struct Events {
    pub rows: Vec<Row>,
}

impl Events {
    /// `members` members of the three programs over `years` years (seed 42).
    pub fn generate(members: u32, years: u32) -> Result<Events, String> {
        let started = Instant::now();
        let config = palier_gen::GenConfig {
            program: palier_gen::ProgramChoice::All,
            members,
            seed: 42,
            years,
            late_per_mille: 0,
            ..palier_gen::GenConfig::default()
        };
        let mut out = Vec::with_capacity(members as usize * years as usize * 1200);
        palier_gen::generate(&config, &mut out).map_err(|e| format!("palier-gen: {e}"))?;
        let text = String::from_utf8(out).map_err(|e| format!("palier-gen wrote non-UTF-8: {e}"))?;
        let events = Events::from_lines(text.lines())?;
        eprintln!(
            "  generated {} events of {members} members over {years} years in {:.1} s",
            events.rows.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(events)
    }

    /// Extracts the routing fields of JSON Lines events (an event that names only
    /// its order belongs to the member who placed it).
    pub fn from_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Events, String> {
        let mut owners: HashMap<String, String> = HashMap::new();
        let mut rows = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let value: Value = serde_json::from_str(line).map_err(|e| format!("an event is not JSON: {e}: {line}"))?;
            let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
            let id = text("id").ok_or_else(|| format!("an event without id: {line}"))?;
            let order = text("order");
            let member = match (text("member"), &order) {
                (Some(member), Some(order)) => {
                    owners.insert(order.clone(), member.clone());
                    member
                }
                (Some(member), None) => member,
                (None, Some(order)) => {
                    owners.get(order).cloned().ok_or_else(|| format!("event {id}: order {order} never placed"))?
                }
                (None, None) => return Err(format!("event {id} names neither member nor order")),
            };
            let at: jiff::Timestamp = text("at")
                .ok_or_else(|| format!("event {id} without at"))?
                .parse()
                .map_err(|e| format!("event {id}: at: {e}"))?;
            rows.push(Row {
                id,
                program: text("program").unwrap_or_default(),
                member,
                order,
                at_unix_nanos: at.as_nanosecond() as i64,
                body: Bytes::copy_from_slice(line.as_bytes()),
            });
        }
        Ok(Events { rows })
    }

    /// Splits the events among `workers`: each member's events all go to one worker,
    /// in stream order (so every event is posted after the ones it depends on), the
    /// members dealt round-robin in order of first appearance.
    pub fn partition(&self, workers: usize) -> Vec<Arc<[Row]>> {
        let mut of_member: HashMap<&str, usize> = HashMap::new();
        let mut parts: Vec<Vec<Row>> = (0..workers).map(|_| Vec::new()).collect();
        for row in &self.rows {
            let next = of_member.len();
            let worker = *of_member.entry(row.member.as_str()).or_insert(next % workers);
            parts[worker].push(row.clone());
        }
        parts.into_iter().map(Arc::from).collect()
    }

    /// The member ids, in order of first appearance.
    pub fn members(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.rows.iter().filter(|r| seen.insert(r.member.as_str())).map(|r| r.member.clone()).collect()
    }
}

// ---- palier under test --------------------------------------------------------------------

/// A fresh SQLite location in a temporary directory (removed when dropped).
pub struct TempSqlite {
    pub path: String,
    _dir: tempfile::TempDir,
}

impl TempSqlite {
    pub fn new(file: &str) -> Result<TempSqlite, String> {
        let dir = tempfile::Builder::new()
            .prefix("palier-bench-")
            .tempdir()
            .map_err(|e| format!("a temporary directory: {e}"))?;
        let path = dir.path().join(file).to_str().ok_or("a non-UTF-8 temporary path")?.to_owned();
        Ok(TempSqlite { path, _dir: dir })
    }
}

/// palier started in this process (`palier_server::start`) on a store, optionally
/// serving HTTP on 127.0.0.1 with a free port.
pub struct Palier {
    pub state: AppState,
    pub address: SocketAddr,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Palier {
    /// Starts palier on `location` (a SQLite path or a PostgreSQL URL) with the admin key.
    pub async fn start(location: &str, programs: Vec<Program>, serve: bool) -> Result<Palier, String> {
        let store = Store::open(location).await.map_err(|e| e.to_string())?;
        let state = palier_server::start(ServiceConfig {
            programs,
            store,
            admin_key: Some(ADMIN_KEY.to_owned()),
            clock: Clock::System,
        })
        .await?;
        if !serve {
            return Ok(Palier { state, address: SocketAddr::from(([127, 0, 0, 1], 0)), server: None });
        }
        let listener =
            palier_server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.map_err(|e| format!("bind: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let server = tokio::spawn(palier_server::serve(state.clone(), listener));
        Ok(Palier { state, address, server: Some(server) })
    }

    /// Loads events through `AppState::import_lines` (what `palier import` does), in
    /// batches; every event must be accepted.
    pub async fn import(&self, rows: &[Row], batch: usize) -> Result<(), String> {
        for (chunk_index, chunk) in rows.chunks(batch.max(1)).enumerate() {
            let lines: Vec<(usize, String)> =
                chunk.iter().enumerate().map(|(i, r)| (chunk_index * batch + i + 1, r.body_str().to_owned())).collect();
            check_imported(self.state.import_lines(lines).await?)?;
        }
        Ok(())
    }

    pub async fn stop(self) {
        if let Some(server) = self.server {
            server.abort();
            let _ = server.await;
        }
        self.state.store().close().await;
    }
}

/// An error naming the first event `import_lines` did not accept.
pub fn check_imported(outcomes: Vec<(usize, Option<String>, palier_server::live::Decision)>) -> Result<(), String> {
    for (line, id, decision) in outcomes {
        if decision != palier_server::live::Decision::Accepted {
            return Err(format!("line {line}: event {}: not accepted: {decision:?}", id.unwrap_or_default()));
        }
    }
    Ok(())
}

/// Whether palier's answer to a one-event POST says the event was accepted.
pub fn accepted_one(body: &[u8]) -> bool {
    body.starts_with(br#"{"accepted":1,"#)
}

// ---- raw SQLite --------------------------------------------------------------------------

/// A raw SQLite connection on a fresh file, configured as palier's store is (WAL,
/// synchronous=FULL, foreign keys, busy timeout), with palier's schema.
pub fn raw_sqlite(path: &str) -> Result<rusqlite::Connection, String> {
    let connection = rusqlite::Connection::open(path).map_err(|e| format!("opening {path}: {e}"))?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| format!("configuring {path}: {e}"))?;
    connection.execute_batch(SQLITE_SCHEMA).map_err(|e| format!("creating the table: {e}"))?;
    Ok(connection)
}

pub const SQLITE_INSERT: &str = "INSERT INTO events (id, program, member, order_id, at_unix_nanos, body, body_sha256, \
     received_unix_nanos) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Inserts one row with a cached prepared statement (in the caller's transaction, or
/// its own if none is open).
pub fn sqlite_insert(connection: &rusqlite::Connection, row: &Row, received: i64) -> rusqlite::Result<()> {
    let mut insert = connection.prepare_cached(SQLITE_INSERT)?;
    insert.execute(rusqlite::params![
        row.id,
        row.program,
        row.member,
        row.order,
        row.at_unix_nanos,
        row.body_str(),
        row.hash().as_slice(),
        received
    ])?;
    Ok(())
}

pub fn now_nanos() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

// ---- PostgreSQL ----------------------------------------------------------------------------

/// A fresh database on the PostgreSQL server (dropped by [`PgDatabase::drop_now`]).
pub struct PgDatabase {
    server: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// Creates `palier_bench_<pid>_<n>` through the server's `postgres` database.
    pub async fn create(server: &str) -> Result<PgDatabase, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("palier_bench_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let server = server.trim_end_matches('/').to_owned();
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await.map_err(|e| {
            format!("PostgreSQL is not reachable at {server}/postgres: {e} (set --postgres or PALIER_BENCH_POSTGRES)")
        })?;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("dropping an old {name}: {e}"))?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("creating the database {name}: {e}"))?;
        admin.close().await.ok();
        Ok(PgDatabase { url: format!("{server}/{name}"), server, name })
    }

    pub async fn drop_now(self) -> Result<(), String> {
        let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", self.server))
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("dropping the database {}: {e}", self.name))?;
        admin.close().await.ok();
        Ok(())
    }
}

// ---- results ------------------------------------------------------------------------------

/// One line of the results table. `bench/service.sh` collects the lines that start
/// with `RESULT|`.
pub struct ResultRow {
    pub measure: String,
    pub palier: String,
    pub baseline: String,
    pub ratio: String,
    pub goal: String,
    /// `None`: informative, no goal.
    pub met: Option<bool>,
}

impl ResultRow {
    pub fn print(&self) {
        let met = match self.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!("RESULT|{}|{}|{}|{}|{}|{}", self.measure, self.palier, self.baseline, self.ratio, self.goal, met);
    }
}

/// A rate with thousands separators: `12 345/s`.
pub fn per_second(rate: f64) -> String {
    format!("{}/s", thousands(rate.round() as u64))
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1 000");
        assert_eq!(thousands(1234567), "1 234 567");
    }

    #[test]
    fn events_are_partitioned_by_member_in_order() {
        let events = Events::generate(50, 1).expect("events");
        let parts = events.partition(4);
        assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), events.rows.len());
        for part in &parts {
            for pair in part.windows(2) {
                if pair[0].member == pair[1].member {
                    assert!(pair[0].at_unix_nanos < pair[1].at_unix_nanos);
                }
            }
        }
        let owner = |m: &str| parts.iter().position(|p| p.iter().any(|r| r.member == m));
        for member in events.members() {
            let o = owner(&member);
            assert!(parts.iter().enumerate().all(|(i, p)| Some(i) == o || p.iter().all(|r| r.member != member)));
        }
    }

    #[test]
    fn the_accepted_answer_is_recognised() {
        assert!(accepted_one(br#"{"accepted":1,"duplicate":0,"rejected":0,"results":[]}"#));
        assert!(!accepted_one(br#"{"accepted":0,"duplicate":0,"rejected":1,"results":[]}"#));
    }
}
