//! Crash safety of the real `palier serve` binary on its embedded SQLite store.
//!
//! Clients post a seeded synthetic stream (palier-gen, the three programs mixed) in
//! batches while a killer sends the server SIGKILL at random moments and restarts it
//! on the same data file. A connection error, a cut answer or HTTP 503 is an unknown
//! outcome: those events are posted again (idempotency makes that safe). Events
//! rejected because they name a member or an order still in flight (or conflict with
//! a later event of their member) are posted again later.
//!
//! Once every event has a final answer:
//! 1. every event ever answered `accepted` (or `duplicate`) is in the store, exactly
//!    once, with the body posted; nothing else is;
//! 2. every member's document (`GET /v1/members/{id}?program=…&as_of=…`) is exactly
//!    what `palier replay` prints for the stored events, in store order.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use palier_gen::{GenConfig, ProgramChoice};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::Value;

const ADMIN_KEY: &str = "crash-key";
/// The service's frozen clock and the instant the documents are compared at.
const NOW: &str = "2030-01-01T00:00:00Z";
/// About 10 events a member over 3 years: about 100 000 events.
const MEMBERS: u32 = 6_000;
const SEED: u64 = 90_210;
const CLIENTS: usize = 8;
const MAX_BATCH: usize = 50;
/// SIGKILLs while the events go in (at least 20).
const KILLS: usize = 24;
/// Rejections of events that name something not arrived yet: posted again later.
const RETRYABLE: [&str; 3] = ["unknown_member", "unknown_order", "late_conflict"];
/// No event settled for this long while the service is up: the run is stuck.
const STALL: Duration = Duration::from_secs(30);
const PROGRAM_FILES: [&str; 3] = ["net-a-porter.toml", "mr-porter.toml", "perfone.toml"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fields of an event the test routes by.
#[derive(Deserialize)]
struct Head {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    program: String,
    member: Option<String>,
}

// ---- the server process ------------------------------------------------------------------

/// `palier serve` as a child process, on a fixed port and data file.
struct Service {
    dir: PathBuf,
    db: PathBuf,
    address: String,
    child: Option<Child>,
    starts: usize,
}

impl Service {
    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("serve-{}.log", self.starts))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the previous server is still running");
        self.starts += 1;
        let log = File::create(self.log_path()).expect("a server log file");
        let child = Command::new(env!("CARGO_BIN_EXE_palier"))
            .arg("serve")
            .arg("--program")
            .arg(root().join("programs"))
            .args(["--listen", &self.address])
            .arg("--data")
            .arg(&self.db)
            .args(["--clock", NOW])
            .env("PALIER_ADMIN_KEY", ADMIN_KEY)
            .env_remove("PALIER_DATABASE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle on the log"))
            .stderr(log)
            .spawn()
            .expect("starting palier serve");
        self.child = Some(child);
    }

    /// Waits until `/healthz` answers (the event log is loaded); returns how long it took.
    async fn wait_healthy(&mut self, probe: &reqwest::Client) -> Duration {
        let started = Instant::now();
        let url = format!("http://{}/healthz", self.address);
        loop {
            let child = self.child.as_mut().expect("a server was started");
            if let Some(status) = child.try_wait().expect("polling the server") {
                panic!("palier serve (start {}) exited ({status}) before /healthz answered:\n{}", self.starts, {
                    self.child = None;
                    self.log_tail()
                });
            }
            if let Ok(response) = probe.get(&url).send().await
                && response.status().is_success()
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "palier serve (start {}) did not answer /healthz within 90 s:\n{}",
                self.starts,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL, then reap. An error if the server had already exited on its own.
    fn kill(&mut self) -> Result<(), String> {
        let mut child = self.child.take().expect("a server is running");
        let exited = child.try_wait().expect("polling the server");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reaping the server");
        match exited {
            Some(status) => Err(format!("palier serve (start {}) exited on its own: {status}", self.starts)),
            None if status.signal() == Some(9) => Ok(()),
            None => Err(format!("palier serve (start {}) ended with {status}, not SIGKILL", self.starts)),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port").local_addr().expect("its address").port()
}

// ---- the clients ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Final {
    Accepted,
    Duplicate,
    Rejected(String),
}

/// What became of one event so far.
#[derive(Default)]
struct Record {
    /// Times answered `accepted` / `duplicate`.
    accepted: u32,
    duplicate: u32,
    /// Times posted with an unknown outcome (connection error, cut answer, 503).
    unknown: u32,
    /// Times rejected with a RETRYABLE code, and the last such rejection.
    retried: u32,
    last_rejection: Option<String>,
    answer: Option<Final>,
}

struct Shared {
    events: Vec<String>,
    ids: Vec<String>,
    /// Events waiting to be posted (again), front first.
    queue: Mutex<VecDeque<usize>>,
    records: Mutex<Vec<Record>>,
    /// Events with a final answer.
    settled: AtomicUsize,
    stop: AtomicBool,
    failures: Mutex<Vec<String>>,
    requests: AtomicUsize,
    unknown_requests: AtomicUsize,
    answered_503: AtomicUsize,
    /// Retryable rejections by code.
    retryable: Mutex<BTreeMap<String, usize>>,
}

impl Shared {
    fn fail(&self, message: String) {
        let mut failures = lock(&self.failures);
        if failures.len() < 50 {
            failures.push(message);
        }
    }
}

/// One result of `POST /v1/events`.
struct Answer {
    status: String,
    code: Option<String>,
    message: Option<String>,
    id: Option<String>,
}

/// One answer per posted event, or why there is none.
enum Posted {
    Answers(Vec<Answer>),
    Unknown,
    Unexpected(String),
}

async fn post(http: &reqwest::Client, url: &str, body: String, expected: usize, shared: &Shared) -> Posted {
    let sent = http
        .post(url)
        .bearer_auth(ADMIN_KEY)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let Ok(response) = sent else { return Posted::Unknown };
    let status = response.status().as_u16();
    let Ok(text) = response.text().await else { return Posted::Unknown };
    if status == 503 {
        shared.answered_503.fetch_add(1, Ordering::Relaxed);
        return Posted::Unknown;
    }
    if status != 200 {
        return Posted::Unexpected(format!("POST /v1/events answered HTTP {status}: {text}"));
    }
    let body: Value = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(e) => return Posted::Unexpected(format!("POST /v1/events answered HTTP 200 with no JSON ({e}): {text}")),
    };
    let Some(results) = body["results"].as_array().filter(|r| r.len() == expected) else {
        return Posted::Unexpected(format!("POST /v1/events: expected {expected} results: {text}"));
    };
    let text_of = |v: &Value| v.as_str().map(str::to_string);
    Posted::Answers(
        results
            .iter()
            .map(|r| Answer {
                status: r["status"].as_str().unwrap_or("").to_string(),
                code: text_of(&r["code"]),
                message: text_of(&r["message"]),
                id: text_of(&r["id"]),
            })
            .collect(),
    )
}

async fn client(shared: Arc<Shared>, url: String, seed: u64) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let total = shared.events.len();
    while !shared.stop.load(Ordering::SeqCst) {
        let batch: Vec<usize> = {
            let mut queue = lock(&shared.queue);
            let size = rng.random_range(1..=MAX_BATCH).min(queue.len());
            queue.drain(..size).collect()
        };
        if batch.is_empty() {
            if shared.settled.load(Ordering::SeqCst) >= total {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let body = format!("[{}]", batch.iter().map(|&i| shared.events[i].as_str()).collect::<Vec<_>>().join(","));
        shared.requests.fetch_add(1, Ordering::Relaxed);
        match post(&http, &url, body, batch.len(), &shared).await {
            Posted::Answers(answers) => {
                let mut retry = Vec::new();
                {
                    let mut records = lock(&shared.records);
                    for (&event, Answer { status, code, message, id }) in batch.iter().zip(answers) {
                        let record = &mut records[event];
                        let event_id = &shared.ids[event];
                        if id.as_deref() != Some(event_id.as_str()) {
                            shared.fail(format!("event {event_id} was answered for id {id:?}"));
                        }
                        match (status.as_str(), code.as_deref()) {
                            ("accepted", _) => {
                                record.accepted += 1;
                                record.answer = Some(Final::Accepted);
                                shared.settled.fetch_add(1, Ordering::SeqCst);
                            }
                            ("duplicate", _) => {
                                record.duplicate += 1;
                                record.answer = Some(Final::Duplicate);
                                shared.settled.fetch_add(1, Ordering::SeqCst);
                            }
                            ("rejected", Some(code)) if RETRYABLE.contains(&code) => {
                                record.retried += 1;
                                *lock(&shared.retryable).entry(code.to_string()).or_default() += 1;
                                record.last_rejection = Some(format!("{code}: {}", message.unwrap_or_default()));
                                retry.push(event);
                            }
                            _ => {
                                let what =
                                    format!("{status} {}: {}", code.unwrap_or_default(), message.unwrap_or_default());
                                shared.fail(format!("event {event_id} answered {what}\n    {}", shared.events[event]));
                                record.answer = Some(Final::Rejected(what));
                                shared.settled.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                }
                let stalled = retry.len() == batch.len();
                lock(&shared.queue).extend(retry);
                if stalled {
                    // Everything named something still in flight: let the others go on.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Posted::Unknown => {
                // The server died (or is down): post these again, first, once it is back.
                shared.unknown_requests.fetch_add(1, Ordering::Relaxed);
                {
                    let mut records = lock(&shared.records);
                    for &event in &batch {
                        records[event].unknown += 1;
                    }
                }
                {
                    let mut queue = lock(&shared.queue);
                    for &event in batch.iter().rev() {
                        queue.push_front(event);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Posted::Unexpected(message) => {
                shared.fail(message);
                shared.stop.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Waits until `target` events are settled. An error (and the clients are stopped)
/// when nothing settles for STALL or the clients stopped.
async fn wait_settled(shared: &Shared, target: usize) -> Result<(), String> {
    let mut last = (shared.settled.load(Ordering::SeqCst), Instant::now());
    loop {
        let settled = shared.settled.load(Ordering::SeqCst);
        if settled >= target {
            return Ok(());
        }
        if shared.stop.load(Ordering::SeqCst) {
            return Err(format!("the clients stopped with {settled} events settled"));
        }
        if settled != last.0 {
            last = (settled, Instant::now());
        } else if last.1.elapsed() > STALL {
            shared.stop.store(true, Ordering::SeqCst);
            let queue: Vec<usize> = lock(&shared.queue).iter().copied().take(5).collect();
            let records = lock(&shared.records);
            let pending: Vec<String> = queue
                .iter()
                .map(|&i| {
                    let r = &records[i];
                    format!(
                        "{} (posted: {} unknown, {} retryable rejections, last {:?})\n    {}",
                        shared.ids[i], r.unknown, r.retried, r.last_rejection, shared.events[i]
                    )
                })
                .collect();
            return Err(format!(
                "no event settled for {STALL:?} ({settled} of {} settled); waiting, e.g.:\n{}",
                shared.events.len(),
                pending.join("\n")
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---- reading the service -------------------------------------------------------------------

/// `GET /v1/members/{member}?program=…&as_of=NOW` for each member: (HTTP status, body).
async fn member_documents(base: &str, members: &[(String, String)]) -> Vec<(u16, String)> {
    let members = Arc::new(members.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (members, next, base) = (members.clone(), next.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
            let mut got = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((program, member)) = members.get(index) else { return got };
                let url = reqwest::Url::parse_with_params(
                    &format!("{base}/v1/members/{member}"),
                    &[("program", program.as_str()), ("as_of", NOW)],
                )
                .expect("a member URL");
                let response = http
                    .get(url)
                    .bearer_auth(ADMIN_KEY)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("GET member {member} ({program}): {e}"));
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_else(|e| panic!("GET member {member}: {e}"));
                got.push((index, (status, text)));
            }
        }));
    }
    let mut documents = vec![(0, String::new()); members.len()];
    for task in tasks {
        for (index, reply) in task.await.expect("a reader task") {
            documents[index] = reply;
        }
    }
    documents
}

// ---- the test --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_kill_9_loses_no_acknowledged_event() {
    let started = Instant::now();
    let config = GenConfig::new(ProgramChoice::All, MEMBERS, SEED, Date::constant(2023, 1, 1), 3);
    let mut generated = Vec::new();
    palier_gen::generate(&config, &mut generated).expect("palier-gen writes to memory");
    let events: Vec<String> =
        String::from_utf8(generated).expect("UTF-8").lines().map(str::to_string).collect::<Vec<_>>();
    let heads: Vec<Head> =
        events.iter().map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e}"))).collect();
    let total = events.len();
    assert!(total >= 50_000, "at least 50 000 events, not {total}");
    // Every member, in the program it registered in.
    let members: Vec<(String, String)> = heads
        .iter()
        .filter(|h| h.kind == "member.registered")
        .map(|h| (h.program.clone(), h.member.clone().expect("a registration names its member")))
        .collect();
    assert_eq!(members.len(), MEMBERS as usize);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("palier.db");
    let mut service = Service {
        dir: dir.path().to_path_buf(),
        db: db.clone(),
        address: format!("127.0.0.1:{}", free_port()),
        child: None,
        starts: 0,
    };
    let base = format!("http://{}", service.address);
    let probe = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
    service.spawn();
    service.wait_healthy(&probe).await;

    let shared = Arc::new(Shared {
        ids: heads.iter().map(|h| h.id.clone()).collect(),
        queue: Mutex::new((0..total).collect()),
        records: Mutex::new((0..total).map(|_| Record::default()).collect()),
        events,
        settled: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
        requests: AtomicUsize::new(0),
        unknown_requests: AtomicUsize::new(0),
        answered_503: AtomicUsize::new(0),
        retryable: Mutex::new(BTreeMap::new()),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client(shared.clone(), format!("{base}/v1/events"), SEED + 1 + c as u64)))
        .collect();

    // The killer: the k-th SIGKILL once about k/(KILLS+1) of the events are settled,
    // then 0–40 ms later (a random moment of whatever requests are in flight).
    let mut problems: Vec<String> = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let spacing = total / (KILLS + 1);
    let mut kills = 0;
    let mut loads = Vec::new();
    for k in 1..=KILLS {
        let threshold = k * spacing - spacing / 3 + rng.random_range(0..spacing * 2 / 3);
        if let Err(stuck) = wait_settled(&shared, threshold).await {
            problems.push(stuck);
            break;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=40))).await;
        if let Err(e) = service.kill() {
            problems.push(e);
        }
        kills += 1;
        service.spawn();
        loads.push(service.wait_healthy(&probe).await);
    }
    if problems.is_empty()
        && let Err(stuck) = wait_settled(&shared, total).await
    {
        problems.push(stuck);
    }
    shared.stop.store(true, Ordering::SeqCst);
    for task in clients {
        task.await.expect("a client task");
    }
    let ingested = started.elapsed();
    problems.extend(lock(&shared.failures).iter().cloned());

    // The service's documents and event count, as it runs after the last restart.
    let documents = member_documents(&base, &members).await;
    let ready: Value = probe
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("GET /readyz")
        .json()
        .await
        .expect("/readyz answers JSON");
    let live_events = ready["events"].as_u64();
    if let Err(e) = service.kill() {
        problems.push(e);
    }

    // (1) The store: every event answered accepted or duplicate, exactly once.
    let records = std::mem::take(&mut *lock(&shared.records));
    let store = palier_store::Store::open(db.to_str().expect("a UTF-8 path")).await.expect("opening the store");
    let count = store.event_count().await.expect("the event count");
    let mut stored = Vec::new();
    store.for_each_event(10_000, |e| stored.push(e)).await.expect("reading the log");
    store.close().await;
    if stored.len() as u64 != count {
        problems.push(format!("event_count() is {count} but the log holds {} events", stored.len()));
    }
    if live_events != Some(count) {
        problems.push(format!("the service holds {live_events:?} events in memory (/readyz), the store {count}"));
    }
    let index_of: HashMap<&str, usize> = shared.ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stored_problems = Vec::new();
    for event in &stored {
        if !seen.insert(event.id.as_str()) {
            stored_problems.push(format!("event {} is stored more than once", event.id));
        }
        match index_of.get(event.id.as_str()) {
            None => stored_problems.push(format!("stored event {} was never posted", event.id)),
            Some(&i) => {
                if event.body != shared.events[i] {
                    stored_problems.push(format!("event {} is stored with another body: {}", event.id, event.body));
                }
                if let Some(Final::Rejected(why)) = &records[i].answer {
                    stored_problems.push(format!("event {} is stored but was answered {why}", event.id));
                }
            }
        }
    }
    let lost: Vec<&str> = records
        .iter()
        .enumerate()
        .filter(|(i, r)| (r.accepted > 0 || r.duplicate > 0) && !seen.contains(shared.ids[*i].as_str()))
        .map(|(i, _)| shared.ids[i].as_str())
        .collect();
    if !lost.is_empty() {
        stored_problems.push(format!(
            "{} events answered accepted/duplicate are not in the store, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        ));
    }
    let unsettled = records.iter().filter(|r| !matches!(r.answer, Some(Final::Accepted | Final::Duplicate))).count();
    if unsettled > 0 {
        problems.push(format!("{unsettled} events have no final answer accepted/duplicate"));
    }
    problems.extend(stored_problems.into_iter().take(20));

    // (2) The documents equal what `palier replay` prints for the stored events.
    let log = dir.path().join("stored.jsonl");
    let mut text = String::new();
    for event in &stored {
        text.push_str(&event.body);
        text.push('\n');
    }
    std::fs::write(&log, text).expect("writing the stored events");
    let mut replay = Command::new(env!("CARGO_BIN_EXE_palier"));
    replay.arg("replay");
    for file in PROGRAM_FILES {
        replay.arg("--program").arg(root().join("programs").join(file));
    }
    let output = replay.arg("--events").arg(&log).args(["--as-of", NOW]).output().expect("running palier replay");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stderr.is_empty() {
        problems.push(format!(
            "palier replay of the stored events: {}; stderr: {}",
            output.status,
            stderr.lines().take(5).collect::<Vec<_>>().join("\n")
        ));
    }
    let mut expected: HashMap<(String, String), String> = HashMap::new();
    for line in String::from_utf8(output.stdout).expect("UTF-8").lines() {
        let document: Value = serde_json::from_str(line).expect("palier replay prints JSON documents");
        let key = (
            document["program"].as_str().unwrap_or("").to_string(),
            document["member"].as_str().unwrap_or("").to_string(),
        );
        expected.insert(key, line.to_string());
    }
    let mut differing = Vec::new();
    for ((program, member), (status, body)) in members.iter().zip(&documents) {
        let want = expected.remove(&(program.clone(), member.clone()));
        let same = match &want {
            Some(want) => *status == 200 && body == want,
            None => *status == 404,
        };
        if !same {
            differing.push(format!(
                "member {member} ({program}):\n  replay:  {}\n  service: HTTP {status} {body}",
                want.as_deref().unwrap_or("(no document)")
            ));
        }
    }
    if !expected.is_empty() {
        problems.push(format!("palier replay prints {} members never registered", expected.len()));
    }
    if !differing.is_empty() {
        problems.push(format!(
            "{} of {} member documents differ from palier replay; the first ones:\n{}",
            differing.len(),
            members.len(),
            differing[..differing.len().min(5)].join("\n")
        ));
    }

    let accepted = records.iter().filter(|r| r.accepted > 0).count();
    let duplicate_only = records.iter().filter(|r| r.accepted == 0 && r.duplicate > 0).count();
    let reposted = records.iter().filter(|r| r.unknown > 0).count();
    let retried = records.iter().map(|r| r.retried as usize).sum::<usize>();
    let load_max = loads.iter().max().copied().unwrap_or_default();
    let load_sum: Duration = loads.iter().sum();
    println!(
        "crash: {kills} SIGKILLs; {total} events of {} members; {} requests, {} of them with an unknown outcome \
         (connection refused or cut; {} HTTP 503)",
        members.len(),
        shared.requests.load(Ordering::Relaxed),
        shared.unknown_requests.load(Ordering::Relaxed),
        shared.answered_503.load(Ordering::Relaxed),
    );
    println!(
        "crash: {accepted} events answered accepted, {duplicate_only} only duplicate (committed, answer lost); \
         {reposted} posted again after an unknown outcome; {retried} retryable rejections {:?}; {count} stored",
        lock(&shared.retryable)
    );
    println!(
        "crash: {} restarts loading {load_sum:?} in all (at most {load_max:?}); ingestion {ingested:?}, total {:?}",
        loads.len(),
        started.elapsed()
    );
    assert!(problems.is_empty(), "{} problems after {kills} SIGKILLs:\n\n{}", problems.len(), problems.join("\n\n"));
    assert!(kills >= 20, "only {kills} SIGKILLs");
    assert_eq!(count, total as u64, "every event is stored once");
}
