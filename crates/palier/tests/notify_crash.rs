//! Notifications across SIGKILLs of the real `palier serve` binary (issue 6): a real
//! HTTP receiver (axum, verifying every signature) gets every notification at least
//! once although the server is killed right after the events are committed (before
//! its scanner recorded their notifications), then twice during delivery, and the
//! receiver refuses some requests. The notifications expected are computed here from
//! the events with the core's pure function, window by window, as the scanner does.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use palier_core::Program;
use palier_gen::{GenConfig, ProgramChoice};
use palier_server::live::{Decision, Live};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "notify-crash-key";
const SECRET: &str = "whsec_notify_crash_test";
/// The clock while the events go in, then after a year of time rules.
const INSTANTS: [&str; 2] = ["2028-03-01T00:00:00Z", "2029-03-15T00:00:00Z"];
const MEMBERS: u32 = 150;
const SEED: u64 = 60_606;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---- the receiver ------------------------------------------------------------------------

#[derive(Default)]
struct Inbox {
    requests: AtomicUsize,
    bad: Mutex<Vec<String>>,
    /// Notification id → times accepted.
    received: Mutex<BTreeMap<String, usize>>,
}

impl Inbox {
    fn count(&self) -> usize {
        self.received.lock().expect("received").len()
    }
}

/// Verifies the signature, answers slowly (so a kill lands mid-delivery) and
/// refuses every seventh request.
async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = inbox.requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let signature = header("palier-signature");
    if let Err(error) = palier_server::webhooks::verify(SECRET, &signature, &body, Timestamp::now().as_second(), 300) {
        inbox.bad.lock().expect("bad").push(format!("{error}"));
        return StatusCode::UNAUTHORIZED;
    }
    tokio::time::sleep(Duration::from_millis(15)).await;
    if n % 7 == 3 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    *inbox.received.lock().expect("received").entry(header("palier-notification-id")).or_default() += 1;
    StatusCode::NO_CONTENT
}

// ---- the server process ------------------------------------------------------------------

struct Service {
    dir: tempfile::TempDir,
    address: String,
    child: Option<Child>,
    starts: usize,
}

impl Service {
    fn log(&self) -> PathBuf {
        self.dir.path().join(format!("serve-{}.log", self.starts))
    }

    fn spawn(&mut self, clock: &str) {
        self.starts += 1;
        let log = File::create(self.log()).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_palier"))
            .arg("serve")
            .arg("--program")
            .arg(root().join("programs"))
            .args(["--listen", &self.address, "--clock", clock])
            .arg("--data")
            .arg(self.dir.path().join("palier.db"))
            .args(["--delivery-backoff-ms", "50", "--delivery-backoff-cap-ms", "300", "--delivery-timeout-ms", "1000"])
            .env("PALIER_ADMIN_KEY", ADMIN_KEY)
            .env_remove("PALIER_DATABASE")
            .env_remove("PALIER_NATS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle"))
            .stderr(log)
            .spawn()
            .expect("starting palier serve");
        self.child = Some(child);
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client) {
        let started = Instant::now();
        while http.get(format!("http://{}/healthz", self.address)).send().await.is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("polling")) {
                panic!("palier serve exited ({status}):\n{}", std::fs::read_to_string(self.log()).unwrap_or_default());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "palier serve did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("a running server");
        assert!(child.try_wait().expect("polling").is_none(), "the server exited on its own");
        child.kill().expect("SIGKILL");
        assert_eq!(child.wait().expect("reaping").signal(), Some(9));
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

async fn call(
    http: &reqwest::Client,
    service: &Service,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, format!("http://{}{path}", service.address)).bearer_auth(ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert!(status.is_success(), "{path}: HTTP {status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Posts every event, again and again for those naming something not arrived yet.
async fn post_all(http: &reqwest::Client, service: &Service, events: &[String]) {
    let mut pending: Vec<String> = events.to_vec();
    while !pending.is_empty() {
        let mut retry = Vec::new();
        for batch in pending.chunks(200) {
            let answer = call(
                http,
                service,
                reqwest::Method::POST,
                "/v1/events",
                Some(serde_json::from_str(&format!("[{}]", batch.join(","))).expect("JSON")),
            )
            .await;
            for (event, result) in batch.iter().zip(answer["results"].as_array().expect("results")) {
                match result["status"].as_str() {
                    Some("accepted" | "duplicate") => {}
                    _ if matches!(
                        result["code"].as_str(),
                        Some("unknown_member" | "unknown_order" | "late_conflict")
                    ) =>
                    {
                        retry.push(event.clone())
                    }
                    _ => panic!("event refused: {result}"),
                }
            }
        }
        assert!(retry.len() < pending.len(), "the events do not settle");
        pending = retry;
    }
}

/// The notifications due at each instant since the previous one: id → kind.
fn expected(events: &[String]) -> Vec<BTreeMap<String, String>> {
    let programs: Vec<Arc<Program>> = std::fs::read_dir(root().join("programs"))
        .expect("the programs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a program file");
            Arc::new(Program::parse(&p.display().to_string(), &text).expect("a valid program"))
        })
        .collect();
    let live = Live::new(&programs);
    let mut pending: Vec<&String> = events.iter().collect();
    let mut seq = 0;
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|text| {
            let event = palier_core::parse_event(text).expect("generated events parse");
            let program = live.program_index(event.program.as_deref().expect("a program")).expect("a program");
            seq += 1;
            live.decide(program, event, palier_server::ingest::body_hash(text), seq) != Decision::Accepted
        });
        assert!(pending.len() < before, "the generated events do not settle");
    }
    let mut from = Timestamp::MIN;
    INSTANTS
        .iter()
        .map(|instant| {
            let at: Timestamp = instant.parse().expect("an instant");
            let mut window = BTreeMap::new();
            for live in &live.programs {
                for member in live.member_ids() {
                    if let Some(journaled) = live.journaled(&member, at) {
                        for n in palier_core::notify::notifications(&live.program, &journaled, from, at) {
                            window.insert(n.id, n.kind.to_string());
                        }
                    }
                }
            }
            from = at;
            window
        })
        .collect()
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not done after {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notification_arrives_across_sigkills() {
    let started = Instant::now();
    let inbox = Arc::new(Inbox::default());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("a port");
    let hook = format!("http://{}/hook", listener.local_addr().expect("an address"));
    let receiver = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address").port();
    let mut service = Service {
        dir: tempfile::tempdir().expect("a directory"),
        address: format!("127.0.0.1:{port}"),
        child: None,
        starts: 0,
    };
    let http = reqwest::Client::new();
    service.spawn(INSTANTS[0]);
    service.wait_healthy(&http).await;
    call(&http, &service, reqwest::Method::POST, "/v1/webhooks", Some(json!({"url": hook, "secret": SECRET}))).await;

    let config = GenConfig::new(ProgramChoice::All, MEMBERS, SEED, jiff::civil::date(2027, 1, 1), 1);
    let mut generated = Vec::new();
    palier_gen::generate(&config, &mut generated).expect("palier-gen writes to memory");
    let events: Vec<String> = String::from_utf8(generated).expect("UTF-8").lines().map(str::to_string).collect();
    let windows = expected(&events);
    let all: BTreeMap<String, String> = windows.iter().flatten().map(|(id, kind)| (id.clone(), kind.clone())).collect();
    assert!(
        windows[0].len() > 50 && !windows[1].is_empty(),
        "too few notifications: {:?}",
        windows.iter().map(BTreeMap::len).collect::<Vec<_>>()
    );

    // 1. Killed as soon as the events are committed: the scanner has not recorded
    //    their notifications yet (it runs once a second); the restart finds them.
    post_all(&http, &service, &events).await;
    service.kill();
    let received_before_restart = inbox.count();
    service.spawn(INSTANTS[0]);
    service.wait_healthy(&http).await;

    // 2. Killed during delivery, twice.
    let total = windows[0].len();
    for fraction in [3, 2] {
        wait_until("deliveries under way", Duration::from_secs(30), || inbox.count() >= total / fraction).await;
        service.kill();
        service.spawn(INSTANTS[0]);
        service.wait_healthy(&http).await;
    }
    let delivered_window = |window: &BTreeMap<String, String>| {
        let received = inbox.received.lock().expect("received");
        window.keys().all(|id| received.contains_key(id))
    };
    wait_until("the first window delivered", Duration::from_secs(30), || delivered_window(&windows[0])).await;

    // 3. A year later: time rules (reviews, expiries); killed during that delivery too.
    call(&http, &service, reqwest::Method::POST, "/v1/admin/clock", Some(json!({"now": INSTANTS[1]}))).await;
    let goal = total + windows[1].len() / 2;
    wait_until("the second window under way", Duration::from_secs(30), || inbox.count() >= goal.min(all.len())).await;
    service.kill();
    service.spawn(INSTANTS[1]);
    service.wait_healthy(&http).await;
    wait_until("every notification delivered", Duration::from_secs(30), || delivered_window(&windows[1])).await;

    let bad = inbox.bad.lock().expect("bad").clone();
    assert!(bad.is_empty(), "refused signatures: {bad:?}");
    let received = inbox.received.lock().expect("received").clone();
    let missing: Vec<&String> = all.keys().filter(|id| !received.contains_key(*id)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    // The outbox agrees: nothing dead, and nothing left pending once the retries of
    // deliveries received before a kill but not recorded as such are done.
    let started_waiting = Instant::now();
    loop {
        let pending = call(&http, &service, reqwest::Method::GET, "/v1/notifications?status=pending", None).await;
        if pending["notifications"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(started_waiting.elapsed() < Duration::from_secs(20), "still pending: {pending}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = call(&http, &service, reqwest::Method::GET, "/v1/notifications?status=dead", None).await;
    assert_eq!(dead["notifications"].as_array().map(Vec::len), Some(0), "dead letters: {dead}");
    let twice = received.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} notifications ({} kinds), {} requests, {} received twice or more, {} before the first restart; {:?}",
        all.len(),
        all.values().collect::<std::collections::BTreeSet<_>>().len(),
        inbox.requests.load(Ordering::SeqCst),
        twice,
        received_before_restart,
        started.elapsed()
    );
    receiver.abort();
}
