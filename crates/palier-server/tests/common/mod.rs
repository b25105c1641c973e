//! Shared harness for the HTTP tests: the real service (`palier_server::start` +
//! `serve`) on a free port, over a store that is either a SQLite file in a fresh
//! temporary directory or a fresh PostgreSQL database.
//!
//! PostgreSQL: the server at `PALIER_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432`, trust auth). Each test creates its own
//! database `palier_http_<pid>_<n>` through the `postgres` maintenance database and
//! drops it when done, pass or fail. An unreachable server FAILS the test, loudly.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use palier_core::{MemberDocument, Program};
use palier_server::{AppState, Clock, ServiceConfig};
use palier_store::Store;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use sqlx::Connection;

pub const ADMIN_KEY: &str = "test-admin";
/// The service's "now" in every test.
pub const NOW: &str = "2030-01-01T00:00:00Z";

pub fn now() -> Timestamp {
    NOW.parse().expect("NOW is an instant")
}

// ---- programs ------------------------------------------------------------------------

/// Every `programs/*.toml` of the repository, parsed, sorted by file name.
pub fn programs() -> Vec<Program> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../programs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no program file in {}", dir.display());
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            Program::parse(&path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

// ---- stores ----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

fn postgres_server() -> String {
    std::env::var("PALIER_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// A fresh, empty store location for one test, removed when dropped.
pub struct Db {
    pub location: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl Db {
    pub async fn new(backend: Backend) -> Db {
        match backend {
            Backend::Sqlite => Db::sqlite(),
            Backend::Postgres => Db::postgres().await,
        }
    }

    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let location = dir.path().join("palier.db").to_str().expect("a UTF-8 temp path").to_owned();
        Db { location, backend: Backend::Sqlite, _dir: Some(dir), postgres_name: None }
    }

    /// Creates `palier_http_<pid>_<n>`; panics (fails the test) if PostgreSQL is not
    /// reachable.
    pub async fn postgres() -> Db {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("palier_http_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let server = postgres_server();
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {server}/postgres: {e}\n\
                 these tests need a running PostgreSQL server (trust auth, user postgres); \
                 set PALIER_TEST_POSTGRES to its URL"
            )
        });
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        admin.close().await.ok();
        Db { location: format!("{server}/{name}"), backend: Backend::Postgres, _dir: None, postgres_name: Some(name) }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else { return };
        // Drop may run inside a runtime, which cannot be blocked on: use a thread with
        // a runtime of its own. FORCE ends the connections the service still holds.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", postgres_server())).await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
                admin.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop a test database: {dropped:?}");
        }
    }
}

// ---- running several checks at once ---------------------------------------------------------

pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs labelled tasks concurrently, each to its end; then fails with every failed
/// label and its panic message (one failure does not hide the others).
pub async fn run_all(tasks: Vec<(String, Task)>) {
    let handles: Vec<_> = tasks.into_iter().map(|(label, task)| (label, tokio::spawn(task))).collect();
    let mut failures = Vec::new();
    for (label, handle) in handles {
        if let Err(error) = handle.await {
            let message = if error.is_panic() {
                let payload = error.into_panic();
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(a panic without a message)".to_string())
            } else {
                error.to_string()
            };
            failures.push(format!("[{label}] {message}"));
        }
    }
    if !failures.is_empty() {
        panic!("{} of the runs failed:\n\n{}", failures.len(), failures.join("\n\n"));
    }
}

/// Runs `test` once on a fresh SQLite store and once on a fresh PostgreSQL database,
/// concurrently; fails naming the backend(s) that failed.
pub async fn on_both_stores<F, Fut>(test: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks: Vec<(String, Task)> = Vec::new();
    for backend in Backend::BOTH {
        let db = Db::new(backend).await;
        tasks.push((backend.name().to_string(), Box::pin(test(db))));
    }
    run_all(tasks).await;
}

// ---- the service -------------------------------------------------------------------------

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("the reply (HTTP {}) is not JSON ({e}): {}", self.status, self.text))
    }

    /// Asserts an RFC 9457 problem with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str, context: &str) {
        if let Err(message) = self.check_problem(status, code, context) {
            panic!("{message}");
        }
    }

    /// An RFC 9457 problem with this status and code (`type`, `title`, `status`,
    /// `detail`, `code`, as `application/problem+json`), or what is wrong.
    pub fn check_problem(&self, status: u16, code: &str, context: &str) -> Result<(), String> {
        if self.status != status {
            return Err(format!("{context}: expected HTTP {status} ({code}), got {self:?}"));
        }
        if self.content_type.as_deref() != Some("application/problem+json") {
            return Err(format!("{context}: a problem must be application/problem+json; got {self:?}"));
        }
        let body: Value = serde_json::from_str(&self.text)
            .map_err(|e| format!("{context}: the problem is not JSON ({e}): {self:?}"))?;
        for field in ["type", "title", "detail", "code"] {
            if !body[field].is_string() {
                return Err(format!("{context}: problem field {field:?} missing or not a string: {body}"));
            }
        }
        if body["status"] != status || body["code"] != code {
            return Err(format!("{context}: expected status {status} and code {code:?} in the problem: {body}"));
        }
        Ok(())
    }
}

/// What became of one posted event (one entry of the `results` of `POST /v1/events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: String,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl Outcome {
    pub fn is(&self, status: &str) -> bool {
        self.status == status
    }
}

/// How a batch body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `[e1, e2, …]`
    Array,
    /// one event a line
    Lines,
}

pub fn batch_body(events: &[String], format: Format) -> String {
    match format {
        Format::Array => format!("[{}]", events.join(",\n")),
        Format::Lines => {
            let mut body = events.join("\n");
            body.push('\n');
            body
        }
    }
}

/// The real service, serving on 127.0.0.1 on a free port.
pub struct Server {
    pub base: String,
    pub location: String,
    pub state: AppState,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(location: &str) -> Server {
        let store = Store::open(location).await.unwrap_or_else(|e| panic!("opening the store {location}: {e}"));
        let clock = Clock::Manual(Arc::new(Mutex::new(now())));
        let config = ServiceConfig { programs: programs(), store, admin_key: Some(ADMIN_KEY.to_string()), clock };
        let state = palier_server::start(config).await.unwrap_or_else(|e| panic!("starting the service: {e}"));
        let listener = palier_server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("binding 127.0.0.1:0");
        let address = listener.local_addr().expect("the bound address");
        let task = tokio::spawn(palier_server::serve(state.clone(), listener));
        Server {
            base: format!("http://{address}"),
            location: location.to_string(),
            state,
            client: reqwest::Client::new(),
            task,
        }
    }

    /// Stops serving and closes the store.
    pub async fn stop(self) {
        let Server { state, client, task, .. } = self;
        task.abort();
        let _ = task.await;
        drop(client);
        state.store().close().await;
    }

    /// Stops the service and starts it again on the same store (reopened).
    pub async fn restart(self) -> Server {
        let location = self.location.clone();
        self.stop().await;
        Server::start(&location).await
    }

    pub fn store(&self) -> &Store {
        self.state.store()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = response.text().await.expect("reading the response body");
        Reply { status, content_type, text }
    }

    /// `method path` with an optional key and body.
    pub async fn request(&self, method: reqwest::Method, path: &str, key: Option<&str>, body: Option<String>) -> Reply {
        self.request_with(&self.client, method, path, key, body).await
    }

    pub async fn request_with(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let mut request = client.request(method.clone(), self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: the request failed: {e:?}"));
        Server::read(response).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(reqwest::Method::GET, path, Some(ADMIN_KEY), None).await
    }

    /// `POST /v1/events` with the admin key.
    pub async fn post_body(&self, body: String) -> Reply {
        self.request(reqwest::Method::POST, "/v1/events", Some(ADMIN_KEY), Some(body)).await
    }

    /// Posts a body and returns one outcome per event; fails unless HTTP 200 with a
    /// well-formed answer for exactly `expected` events.
    pub async fn post_events_with(&self, client: &reqwest::Client, body: String, expected: usize) -> Vec<Outcome> {
        let reply = self.request_with(client, reqwest::Method::POST, "/v1/events", Some(ADMIN_KEY), Some(body)).await;
        outcomes(&reply, expected)
    }

    pub async fn post_events(&self, events: &[String], format: Format) -> Vec<Outcome> {
        self.post_events_with(&self.client, batch_body(events, format), events.len()).await
    }

    pub async fn post_one(&self, event: &str) -> Outcome {
        self.post_events_with(&self.client, event.to_string(), 1).await.remove(0)
    }

    /// `GET /v1/members/{member}?program=…&as_of=…`.
    pub async fn member(&self, member: &str, program: &str, as_of: &str) -> Reply {
        let url = reqwest::Url::parse_with_params(
            &self.url(&format!("/v1/members/{member}")),
            &[("program", program), ("as_of", as_of)],
        )
        .expect("a member URL");
        let response = self
            .client
            .get(url)
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET member {member}: {e:?}"));
        Server::read(response).await
    }

    /// `POST /v1/events` over a raw connection declaring a body of `body.len()` bytes
    /// but sending only its first `sent` bytes: a server must refuse an oversized body
    /// from its declared length, before reading it (and a peer that closes with unread
    /// data resets the connection, losing the answer, so none is left unread).
    pub async fn post_raw(&self, body: Vec<u8>, sent: usize) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.base.trim_start_matches("http://").to_string();
        let stream = tokio::net::TcpStream::connect(&address).await.expect("connecting to the service");
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let writing = tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            writer.write_all(&body[..sent.min(body.len())]).await?;
            writer.flush().await?;
            // Keep the write side open until the answer is read.
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(writer)
        });
        let mut raw = Vec::new();
        // An error (a reset once the server closes) still leaves what was read.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), reader.read_to_end(&mut raw)).await;
        writing.abort();
        let text = String::from_utf8_lossy(&raw).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            panic!("no HTTP response to a raw POST of a large body; received {:?}", text);
        };
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        let content_type = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-type"))
            .map(|(_, value)| value.trim().to_string());
        Reply { status, content_type, text: body.to_string() }
    }

    pub async fn event_count(&self) -> u64 {
        self.store().event_count().await.expect("the store's event count")
    }
}

/// The outcomes of a `POST /v1/events` reply.
pub fn outcomes(reply: &Reply, expected: usize) -> Vec<Outcome> {
    assert_eq!(reply.status, 200, "POST /v1/events: expected HTTP 200, got {reply:?}");
    let body = reply.json();
    let results = body["results"].as_array().unwrap_or_else(|| panic!("no results array in {body}"));
    assert_eq!(results.len(), expected, "POST /v1/events: one result per event expected: {body}");
    let outcomes: Vec<Outcome> = results
        .iter()
        .enumerate()
        .map(|(index, r)| {
            assert_eq!(r["index"], Value::from(index), "results are in body order: {body}");
            Outcome {
                status: r["status"].as_str().unwrap_or_else(|| panic!("result without a status: {r}")).to_string(),
                code: r["code"].as_str().map(str::to_string),
                message: r["message"].as_str().map(str::to_string),
            }
        })
        .collect();
    for (field, status) in [("accepted", "accepted"), ("duplicate", "duplicate"), ("rejected", "rejected")] {
        let count = outcomes.iter().filter(|o| o.is(status)).count();
        assert_eq!(body[field], Value::from(count), "the {field} count must match the results: {body}");
    }
    outcomes
}

// ---- events and replay -------------------------------------------------------------------

/// A synthetic stream from palier-gen, one event text per entry.
pub fn generated(config: &palier_gen::GenConfig) -> Vec<String> {
    let mut out = Vec::new();
    palier_gen::generate(config, &mut out).expect("palier-gen writes to memory");
    String::from_utf8(out).expect("palier-gen writes UTF-8").lines().map(str::to_string).collect()
}

/// A string field of an event, if it has one.
pub fn opt_field(event: &str, name: &str) -> Option<String> {
    let value: Value = serde_json::from_str(event).unwrap_or_else(|e| panic!("not JSON ({e}): {event}"));
    value[name].as_str().map(str::to_string)
}

pub fn field(event: &str, name: &str) -> String {
    let value: Value = serde_json::from_str(event).unwrap_or_else(|e| panic!("not JSON ({e}): {event}"));
    value[name].as_str().unwrap_or_else(|| panic!("no string {name:?} in {event}")).to_string()
}

/// What `palier replay --as-of` prints for these events: one document a member,
/// and no rejection.
pub fn replay_documents(programs: &[Program], events: &[String], as_of: Timestamp) -> Vec<MemberDocument> {
    let mut input = events.join("\n");
    input.push('\n');
    let output = palier_core::replay(programs, input.as_bytes(), Some(as_of));
    assert!(
        output.rejections.is_empty(),
        "the replay of the events themselves rejects some: {:?}",
        output.rejections.iter().take(5).map(|r| r.to_string()).collect::<Vec<_>>()
    );
    output.documents
}

/// Asserts that the service's document of every member equals, as JSON text, the
/// replay's; and that the members list of each program holds exactly those members.
pub async fn assert_documents_equal(server: &Server, expected: &[MemberDocument], as_of: &str, context: &str) {
    let mut mismatches = Vec::new();
    for document in expected {
        let want = serde_json::to_string(document).expect("a document serialises");
        let reply = server.member(&document.member, &document.program, as_of).await;
        if reply.status != 200 || reply.text != want {
            mismatches.push(format!(
                "member {} ({}) as_of {as_of}:\n  replay:  {want}\n  service: HTTP {} {}",
                document.member, document.program, reply.status, reply.text
            ));
        }
    }
    if !mismatches.is_empty() {
        panic!(
            "{context}: {} of {} member documents differ from the replay; the first ones:\n{}",
            mismatches.len(),
            expected.len(),
            mismatches.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
        );
    }
    // The service knows no member the replay does not.
    let mut by_program: BTreeMap<String, Vec<String>> =
        programs().into_iter().map(|program| (program.id, Vec::new())).collect();
    for document in expected {
        by_program
            .get_mut(document.program.as_str())
            .expect("a loaded program")
            .push(serde_json::to_string(document).expect("a document serialises"));
    }
    for (program, want) in by_program {
        let url = reqwest::Url::parse_with_params(
            &server.url("/v1/members"),
            &[("program", program.as_str()), ("as_of", as_of), ("limit", "1000")],
        )
        .expect("a list URL");
        let reply =
            Server::read(server.client.get(url).bearer_auth(ADMIN_KEY).send().await.expect("GET /v1/members")).await;
        assert_eq!(reply.status, 200, "{context}: GET /v1/members?program={program}: {reply:?}");
        let body = reply.json();
        let got: Vec<String> = body["members"]
            .as_array()
            .unwrap_or_else(|| panic!("no members array: {body}"))
            .iter()
            .map(|d| d.to_string())
            .collect();
        let want_values: Vec<String> =
            want.iter().map(|t| serde_json::from_str::<Value>(t).expect("JSON").to_string()).collect();
        assert_eq!(
            got, want_values,
            "{context}: GET /v1/members?program={program}&as_of={as_of} differs from the replay"
        );
        assert_eq!(body["next_cursor"], Value::Null, "{context}: one page holds every member");
    }
}

// ---- arrival orders -----------------------------------------------------------------------

/// How a pass posts its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// One request per event, one after the other.
    OneByOne,
    /// Requests of 1–40 events, JSON arrays and JSON Lines at random.
    Batches,
    /// This many clients at once, each posting its share one event at a time.
    Concurrent(usize),
}

/// Codes of events that name something that has not arrived yet.
pub const RETRYABLE: [&str; 3] = ["unknown_member", "unknown_order", "late_conflict"];

/// Posts `events` in the given order, then again those rejected with a RETRYABLE
/// code, pass after pass (reshuffled when `rng` is given), until none is left. Fails
/// on any other rejection, or when a pass makes no progress. Returns the number of
/// passes.
pub async fn submit_until_settled(
    server: &Server,
    events: Vec<String>,
    arrival: Arrival,
    mut rng: Option<&mut ChaCha8Rng>,
) -> usize {
    let mut pending = events;
    let mut passes = 0;
    while !pending.is_empty() {
        passes += 1;
        let outcomes = post_pass(server, &pending, arrival, rng.as_deref_mut()).await;
        let mut retry = Vec::new();
        for (event, outcome) in pending.iter().zip(&outcomes) {
            match outcome.status.as_str() {
                "accepted" => {}
                "rejected" if outcome.code.as_deref().is_some_and(|c| RETRYABLE.contains(&c)) => {
                    retry.push((event.clone(), outcome.clone()))
                }
                _ => panic!(
                    "pass {passes} ({arrival:?}): event {} answered {outcome:?}, expected accepted (or a \
                     rejection for something not arrived yet):\n{event}",
                    field(event, "id")
                ),
            }
        }
        if retry.len() == pending.len() {
            let sample: Vec<String> = retry
                .iter()
                .take(5)
                .map(|(e, o)| format!("{} {:?}: {:?}\n    {e}", field(e, "id"), o.code, o.message))
                .collect();
            panic!(
                "pass {passes} ({arrival:?}) made no progress: {} events are still rejected, e.g.\n{}",
                retry.len(),
                sample.join("\n")
            );
        }
        pending = retry.into_iter().map(|(e, _)| e).collect();
        if let Some(rng) = rng.as_deref_mut() {
            pending.shuffle(rng);
        }
    }
    passes
}

/// Posts every event once, as `arrival` says; one outcome per event, in order.
pub async fn post_pass(
    server: &Server,
    events: &[String],
    arrival: Arrival,
    rng: Option<&mut ChaCha8Rng>,
) -> Vec<Outcome> {
    match arrival {
        Arrival::OneByOne => {
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                outcomes.push(server.post_one(event).await);
            }
            outcomes
        }
        Arrival::Batches => {
            let rng = rng.expect("batches are drawn at random");
            let mut outcomes = Vec::with_capacity(events.len());
            let mut rest = events;
            while !rest.is_empty() {
                let size = rng.random_range(1..=40).min(rest.len());
                let (batch, tail) = rest.split_at(size);
                let format = if rng.random_bool(0.5) { Format::Array } else { Format::Lines };
                outcomes.extend(server.post_events(batch, format).await);
                rest = tail;
            }
            outcomes
        }
        Arrival::Concurrent(clients) => {
            let mut shares: Vec<Vec<(usize, String)>> = vec![Vec::new(); clients];
            for (position, event) in events.iter().enumerate() {
                shares[position % clients].push((position, event.clone()));
            }
            let mut handles = Vec::new();
            for share in shares {
                let base = server.base.clone();
                handles.push(tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut answers = Vec::with_capacity(share.len());
                    for (position, event) in share {
                        let response = client
                            .post(format!("{base}/v1/events"))
                            .bearer_auth(ADMIN_KEY)
                            .body(event)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("POST /v1/events: {e:?}"));
                        answers.push((position, Server::read(response).await));
                    }
                    answers
                }));
            }
            let mut by_position: Vec<Option<Outcome>> = vec![None; events.len()];
            for handle in handles {
                for (position, reply) in handle.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())) {
                    by_position[position] = Some(outcomes(&reply, 1).remove(0));
                }
            }
            by_position.into_iter().map(|o| o.expect("every event was posted")).collect()
        }
    }
}
