//! Notifications delivered at least once (issue 6), against real components: the
//! service on SQLite and on PostgreSQL, a real HTTP receiver (axum, on a free port)
//! that checks every signature with `palier_server::webhooks::verify`, and the NATS
//! JetStream server at `PALIER_TEST_NATS` (default `nats://127.0.0.1:4222`; an
//! unreachable server fails the test: `scripts/ensure-services.sh` starts it).
//!
//! The notifications expected are computed here from the posted events with the
//! core's pure function (`palier_core::notify::notifications`), window by window at
//! each instant the test sets the clock to, as the service's scanner does.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{ADMIN_KEY, Arrival, Db, Server, generated, on_both_stores, programs, submit_until_settled};
use jiff::Timestamp;
use palier_core::Program;
use palier_server::live::{Decision, Live};
use palier_server::outbox::NotifyConfig;
use palier_server::webhooks::{DEFAULT_TOLERANCE_SECONDS, VerifyError, sign, verify};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

// ---- the receiver ------------------------------------------------------------------------

#[derive(Default)]
struct Inbox {
    secret: Mutex<String>,
    /// Requests still to refuse with HTTP 500.
    fail_next: AtomicUsize,
    /// Refuse every request with HTTP 500.
    fail_always: AtomicBool,
    requests: AtomicUsize,
    refused: AtomicUsize,
    bad_signatures: Mutex<Vec<String>>,
    /// Notification id → times accepted, and the last payload.
    received: Mutex<BTreeMap<String, (usize, Value)>>,
}

/// A webhook receiver as a retailer would write one: it verifies the signature over
/// the raw body and the header's id before anything else.
struct Receiver {
    url: String,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    inbox.requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let secret = inbox.secret.lock().expect("the secret").clone();
    let signature = header("palier-signature");
    if let Err(error) = verify(&secret, &signature, &body, Timestamp::now().as_second(), DEFAULT_TOLERANCE_SECONDS) {
        inbox.bad_signatures.lock().expect("bad signatures").push(format!("{error}: {signature}"));
        return StatusCode::UNAUTHORIZED;
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(_) => return StatusCode::BAD_REQUEST,
    };
    let id = header("palier-notification-id");
    if payload["id"] != id.as_str() {
        inbox.bad_signatures.lock().expect("bad signatures").push(format!("id header {id} for payload {payload}"));
        return StatusCode::BAD_REQUEST;
    }
    let refuse = inbox.fail_always.load(Ordering::SeqCst)
        || inbox.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if refuse {
        inbox.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let mut received = inbox.received.lock().expect("received");
    let entry = received.entry(id).or_insert((0, Value::Null));
    entry.0 += 1;
    entry.1 = payload;
    StatusCode::OK
}

impl Receiver {
    async fn start() -> Receiver {
        let inbox = Arc::new(Inbox::default());
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("a port");
        let url = format!("http://{}/hook", listener.local_addr().expect("its address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, inbox, task }
    }

    fn ids(&self) -> BTreeSet<String> {
        self.inbox.received.lock().expect("received").keys().cloned().collect()
    }

    fn bad_signatures(&self) -> Vec<String> {
        self.inbox.bad_signatures.lock().expect("bad signatures").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- the service ---------------------------------------------------------------------------

/// Retries within the test's time: 40 ms, 80 ms, … at most 400 ms.
fn fast(max_attempts: u32) -> NotifyConfig {
    NotifyConfig {
        scan_every: Duration::from_millis(100),
        max_attempts,
        backoff_base: Duration::from_millis(40),
        backoff_cap: Duration::from_millis(400),
        timeout: Duration::from_secs(5),
        ..NotifyConfig::default()
    }
}

/// The service with its clock at `clock`, notifications started.
async fn start(db: &Db, clock: &str, config: NotifyConfig) -> Server {
    let server = Server::start(&db.location).await;
    set_clock(&server, clock).await;
    server.state.start_notifications(config).await.expect("starting notifications");
    server
}

async fn set_clock(server: &Server, now: &str) {
    let reply = server
        .request(reqwest::Method::POST, "/v1/admin/clock", Some(ADMIN_KEY), Some(json!({"now": now}).to_string()))
        .await;
    assert_eq!(reply.status, 200, "setting the clock: {reply:?}");
}

/// Registers a webhook; returns its id (and sets the receiver's secret).
async fn register(server: &Server, receiver: &Receiver, kinds: Option<&[&str]>, secret: Option<&str>) -> String {
    let mut body = json!({"url": receiver.url});
    if let Some(kinds) = kinds {
        body["kinds"] = json!(kinds);
    }
    if let Some(secret) = secret {
        body["secret"] = json!(secret);
    }
    let reply = server.request(reqwest::Method::POST, "/v1/webhooks", Some(ADMIN_KEY), Some(body.to_string())).await;
    assert_eq!(reply.status, 201, "POST /v1/webhooks: {reply:?}");
    let answer = reply.json();
    let given = answer["secret"].as_str().expect("the secret is shown at registration").to_string();
    if let Some(secret) = secret {
        assert_eq!(given, secret);
    }
    *receiver.inbox.secret.lock().expect("the secret") = given;
    answer["id"].as_str().expect("a webhook id").to_string()
}

/// Every notification in the outbox (all pages), by id.
async fn outbox(server: &Server, query: &str) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let reply = server.get(&format!("/v1/notifications?limit=500&cursor={cursor}{query}")).await;
        assert_eq!(reply.status, 200, "GET /v1/notifications: {reply:?}");
        let body = reply.json();
        for n in body["notifications"].as_array().expect("a notifications array") {
            all.insert(n["id"].as_str().expect("an id").to_string(), n.clone());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return all,
        }
    }
}

/// Runs `$check` (a block giving `Result<(), String>`, which may `.await`) until it
/// is `Ok`, failing with its last `Err` after `$limit`.
macro_rules! wait_for {
    ($what:expr, $limit:expr, $check:block) => {{
        let started = Instant::now();
        loop {
            let result: Result<(), String> = $check;
            match result {
                Ok(()) => break,
                Err(state) if started.elapsed() > $limit => panic!("{}: not done after {:?}: {state}", $what, $limit),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }};
}

// ---- the expected notifications ------------------------------------------------------------

/// The events of `members` members of every program, registered in 2027.
fn events(members: u32, seed: u64) -> Vec<String> {
    let start = jiff::civil::date(2027, 1, 1);
    generated(&palier_gen::GenConfig::new(palier_gen::ProgramChoice::All, members, seed, start, 1))
}

/// The notifications of these events, derived at each instant for the window since
/// the previous one (as the scanner's full passes do): id → kind.
fn expected(events: &[String], instants: &[&str]) -> Vec<BTreeMap<String, String>> {
    let programs: Vec<Arc<Program>> = programs().into_iter().map(Arc::new).collect();
    let live = Live::new(&programs);
    let mut pending: Vec<&String> = events.iter().collect();
    let mut seq = 0;
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|text| {
            let event = palier_core::parse_event(text).expect("generated events parse");
            let program = live.program_index(event.program.as_deref().expect("a program")).expect("a loaded program");
            seq += 1;
            live.decide(program, event, palier_server::ingest::body_hash(text), seq) != Decision::Accepted
        });
        assert!(pending.len() < before, "the generated events do not settle");
    }
    let mut from = Timestamp::MIN;
    let mut windows = Vec::new();
    for instant in instants {
        let at: Timestamp = instant.parse().expect("an instant");
        let mut window = BTreeMap::new();
        for live in &live.programs {
            for member in live.member_ids() {
                let Some(journaled) = live.journaled(&member, at) else { continue };
                for n in palier_core::notify::notifications(&live.program, &journaled, from, at) {
                    window.insert(n.id, n.kind.to_string());
                }
            }
        }
        windows.push(window);
        from = at;
    }
    windows
}

/// Posts the events, then moves the clock through `instants[1..]`, waiting each time
/// until the outbox holds what is due by then. Returns every id expected.
async fn feed(server: &Server, events: &[String], instants: &[&str], seed: u64) -> BTreeMap<String, String> {
    let windows = expected(events, instants);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    submit_until_settled(server, events.to_vec(), Arrival::Batches, Some(&mut rng)).await;
    let mut all = BTreeMap::new();
    for (index, window) in windows.into_iter().enumerate() {
        if index > 0 {
            set_clock(server, instants[index]).await;
        }
        all.extend(window);
        let want: BTreeSet<String> = all.keys().cloned().collect();
        wait_for!(&format!("the outbox at {}", instants[index]), Duration::from_secs(20), {
            let have: BTreeSet<String> = outbox(server, "").await.into_keys().collect();
            let missing: Vec<&String> = want.difference(&have).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{} missing, e.g. {:?}", missing.len(), missing.first()))
            }
        });
    }
    all
}

const INSTANTS: [&str; 3] = ["2028-03-01T00:00:00Z", "2029-01-15T00:00:00Z", "2030-01-01T00:00:00Z"];

// ---- tests -----------------------------------------------------------------------------------

/// A receiver that fails its first requests gets every notification at least once;
/// the failures show as attempts, and every request it accepted was signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notification_reaches_a_receiver_that_fails_for_a_while() {
    on_both_stores(|db| async move {
        let receiver = Receiver::start().await;
        const FAILURES: usize = 25;
        receiver.inbox.fail_next.store(FAILURES, Ordering::SeqCst);
        let server = start(&db, INSTANTS[0], fast(10)).await;
        let webhook = register(&server, &receiver, None, Some("a-receiver-secret-0123456789")).await;
        let events = events(120, 6_001);
        let expected = feed(&server, &events, &INSTANTS, 6_001).await;
        assert!(expected.len() > 50, "too few notifications to test with: {}", expected.len());
        let kinds: BTreeSet<&String> = expected.values().collect();
        assert!(kinds.len() >= 4, "expected several kinds of notifications, got {kinds:?}");

        let recorded = outbox(&server, "").await;
        let all: BTreeSet<String> = recorded.keys().cloned().collect();
        wait_for!("every notification delivered", Duration::from_secs(30), {
            let missing = all.difference(&receiver.ids()).count();
            if missing == 0 { Ok(()) } else { Err(format!("{missing} of {} not received", all.len())) }
        });
        let ids = receiver.ids();
        let missing: Vec<&String> = expected.keys().filter(|id| !ids.contains(*id)).collect();
        assert!(missing.is_empty(), "expected notifications never received: {missing:?}");
        assert!(receiver.bad_signatures().is_empty(), "refused signatures: {:?}", receiver.bad_signatures());
        assert_eq!(receiver.inbox.refused.load(Ordering::SeqCst), FAILURES);

        // The outbox shows every delivery done, the refused ones as extra attempts.
        wait_for!("no delivery pending", Duration::from_secs(10), {
            let pending = outbox(&server, "&status=pending").await.len();
            if pending == 0 { Ok(()) } else { Err(format!("{pending} pending")) }
        });
        let delivered = outbox(&server, "&status=delivered").await;
        assert_eq!(delivered.len(), all.len(), "every recorded notification is delivered");
        let mut attempts = 0;
        let mut retried = 0;
        for n in delivered.values() {
            let deliveries = n["deliveries"].as_array().expect("deliveries");
            assert_eq!(deliveries.len(), 1, "one webhook, one delivery: {n}");
            assert_eq!(deliveries[0]["destination"], webhook.as_str());
            assert_eq!(deliveries[0]["status"], "delivered");
            let count = deliveries[0]["attempts"].as_i64().expect("attempts");
            attempts += count;
            if count > 1 {
                retried += 1;
                assert_eq!(deliveries[0]["last_error"], Value::Null, "a success clears the error: {n}");
            }
            // What was received is the payload recorded, to the byte.
            let received = receiver.inbox.received.lock().expect("received")[n["id"].as_str().expect("id")].1.clone();
            assert_eq!(received, n["payload"]);
        }
        assert_eq!(attempts as usize, delivered.len() + FAILURES, "each refusal costs one more attempt");
        assert!(retried > 0, "some deliveries were retried");
        // Received at least once; here (no crash) exactly once.
        let received = receiver.inbox.received.lock().expect("received").clone();
        assert!(received.values().all(|(times, _)| *times == 1), "a notification delivered twice without a crash");

        // A restart derives the same notifications again and records nothing new.
        let count = all.len();
        let server = server.restart().await;
        set_clock(&server, INSTANTS[2]).await;
        server.state.start_notifications(fast(10)).await.expect("starting notifications");
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(outbox(&server, "").await.len(), count, "a restart records no notification twice");
        assert_eq!(outbox(&server, "&status=pending").await.len(), 0);
        server.stop().await;
    })
    .await;
}

/// A receiver that always fails leaves dead letters after the last attempt; replay
/// sends them again once it works. Webhook filters, listing and deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_kept_and_replayed() {
    on_both_stores(|db| async move {
        let failing = Receiver::start().await;
        failing.inbox.fail_always.store(true, Ordering::SeqCst);
        let filtered = Receiver::start().await;
        let server = start(&db, INSTANTS[0], fast(3)).await;
        let dead_hook = register(&server, &failing, None, None).await;
        assert!(failing.inbox.secret.lock().expect("secret").starts_with("whsec_"), "a generated secret");
        let lowered_hook = register(&server, &filtered, Some(&["tier_lowered"]), None).await;

        // Listing shows both, never their secrets.
        let listed = server.get("/v1/webhooks").await.json();
        let hooks = listed["webhooks"].as_array().expect("webhooks");
        assert_eq!(hooks.len(), 2, "{listed}");
        assert!(hooks.iter().all(|h| h.get("secret").is_none()), "a secret is shown: {listed}");

        let events = events(40, 6_002);
        let expected = feed(&server, &events, &INSTANTS, 6_002).await;
        let lowered: BTreeSet<String> =
            expected.iter().filter(|(_, kind)| *kind == "tier_lowered").map(|(id, _)| id.clone()).collect();
        assert!(!lowered.is_empty(), "the stream lowers some tier");

        // Each failing delivery is sent 3 times, then kept as a dead letter.
        let all: BTreeSet<String> = outbox(&server, "").await.into_keys().collect();
        wait_for!("every delivery to the failing receiver dead", Duration::from_secs(30), {
            let dead = outbox(&server, "&status=dead").await.len();
            if dead == all.len() { Ok(()) } else { Err(format!("{dead} of {} dead", all.len())) }
        });
        for n in outbox(&server, "&status=dead").await.values() {
            let to_failing: Vec<&Value> = n["deliveries"]
                .as_array()
                .expect("deliveries")
                .iter()
                .filter(|d| d["destination"] == dead_hook.as_str())
                .collect();
            assert_eq!(to_failing.len(), 1, "{n}");
            assert_eq!(to_failing[0]["status"], "dead");
            assert_eq!(to_failing[0]["attempts"], 3);
            assert_eq!(to_failing[0]["last_error"], "HTTP 500");
        }
        assert_eq!(failing.inbox.refused.load(Ordering::SeqCst), 3 * all.len());
        // The filtered receiver got the lowered tiers, and nothing else.
        wait_for!("the filtered receiver", Duration::from_secs(10), {
            let missing = lowered.difference(&filtered.ids()).count();
            if missing == 0 { Ok(()) } else { Err(format!("{missing} lowered tiers not received")) }
        });
        let kinds: BTreeSet<String> = filtered
            .inbox
            .received
            .lock()
            .expect("received")
            .values()
            .map(|(_, payload)| payload["kind"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(kinds, BTreeSet::from(["tier_lowered".to_string()]));

        // Replay: the receiver works again; every dead letter is sent once more.
        failing.inbox.fail_always.store(false, Ordering::SeqCst);
        for id in &all {
            let reply = server
                .request(reqwest::Method::POST, &format!("/v1/notifications/{id}/replay"), Some(ADMIN_KEY), None)
                .await;
            assert_eq!(reply.status, 200, "replay {id}: {reply:?}");
            assert!(reply.json()["reset"].as_u64().is_some_and(|n| n >= 1), "{reply:?}");
        }
        wait_for!("replayed notifications received", Duration::from_secs(20), {
            let missing = all.difference(&failing.ids()).count();
            if missing == 0 { Ok(()) } else { Err(format!("{missing} not received")) }
        });
        wait_for!("no dead letter left", Duration::from_secs(10), {
            let dead = outbox(&server, "&status=dead").await.len();
            if dead == 0 { Ok(()) } else { Err(format!("{dead} dead")) }
        });
        assert!(failing.bad_signatures().is_empty(), "{:?}", failing.bad_signatures());
        let unknown =
            server.request(reqwest::Method::POST, "/v1/notifications/nope/replay", Some(ADMIN_KEY), None).await;
        unknown.assert_problem(404, "unknown_notification", "replaying an unknown notification");
        let audit = server.get("/v1/admin/audit").await.json();
        let actions: Vec<&str> =
            audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"webhook.created") && actions.contains(&"notification.replayed"), "{actions:?}");

        // Deleting a webhook: gone from the list, and 404 the second time.
        let deleted = server
            .request(reqwest::Method::DELETE, &format!("/v1/webhooks/{lowered_hook}"), Some(ADMIN_KEY), None)
            .await;
        assert_eq!(deleted.status, 204, "{deleted:?}");
        let again = server
            .request(reqwest::Method::DELETE, &format!("/v1/webhooks/{lowered_hook}"), Some(ADMIN_KEY), None)
            .await;
        again.assert_problem(404, "unknown_webhook", "deleting twice");
        assert_eq!(server.get("/v1/webhooks").await.json()["webhooks"].as_array().map(Vec::len), Some(1));

        // Only admins.
        let key_less = server.request(reqwest::Method::GET, "/v1/notifications", None, None).await;
        assert_eq!(key_less.status, 401);
        let bad = server
            .request(
                reqwest::Method::POST,
                "/v1/webhooks",
                Some(ADMIN_KEY),
                Some(json!({"url": "ftp://x"}).to_string()),
            )
            .await;
        bad.assert_problem(422, "invalid_webhook", "an ftp URL");
        let bad_kind = server
            .request(
                reqwest::Method::POST,
                "/v1/webhooks",
                Some(ADMIN_KEY),
                Some(json!({"url": "http://127.0.0.1:9/", "kinds": ["nope"]}).to_string()),
            )
            .await;
        bad_kind.assert_problem(422, "invalid_webhook", "an unknown kind");
        server.stop().await;
    })
    .await;
}

/// The receiver's check: a signature from another secret, another body, or a
/// timestamp outside the tolerance is refused; the service's own pass.
#[tokio::test]
async fn receivers_refuse_stale_and_forged_signatures() {
    let receiver = Receiver::start().await;
    *receiver.inbox.secret.lock().expect("secret") = "whsec_receiver".into();
    let client = reqwest::Client::new();
    let body = json!({"id": "n-1", "kind": "tier_reached"}).to_string();
    let post = |signature: String, body: String| {
        client
            .post(&receiver.url)
            .header("Palier-Signature", signature)
            .header("Palier-Notification-Id", "n-1")
            .body(body)
            .send()
    };
    let now = Timestamp::now().as_second();
    let fresh = post(sign("whsec_receiver", now, body.as_bytes()), body.clone()).await.expect("a request");
    assert_eq!(fresh.status(), 200);
    let stale = post(sign("whsec_receiver", now - 301, body.as_bytes()), body.clone()).await.expect("a request");
    assert_eq!(stale.status(), 401, "a signature older than 5 minutes");
    let forged = post(sign("another-secret", now, body.as_bytes()), body.clone()).await.expect("a request");
    assert_eq!(forged.status(), 401);
    let changed =
        post(sign("whsec_receiver", now, body.as_bytes()), body.replace("n-1", "n-2")).await.expect("a request");
    assert_ne!(changed.status(), 200);
    assert_eq!(receiver.ids().len(), 1);
    assert!(matches!(
        verify("s", &sign("s", now - 600, b"x"), b"x", now, DEFAULT_TOLERANCE_SECONDS),
        Err(VerifyError::Stale { .. })
    ));
}

// ---- NATS --------------------------------------------------------------------------------

fn nats_url() -> String {
    std::env::var("PALIER_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

async fn nats() -> async_nats::Client {
    let url = nats_url();
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(url.as_str())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "NATS is not reachable at {url}: {e}\nthese tests need a NATS server with JetStream \
             (scripts/ensure-services.sh starts it); set PALIER_TEST_NATS to its URL"
            )
        })
}

/// Notifications are published to `palier.<program>.<kind>` with their id as
/// `Nats-Msg-Id`; retailer events published to the events stream end up in member
/// documents; a redelivered event is a harmless duplicate and a refused one is
/// acknowledged and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_carries_notifications_out_and_events_in() {
    use futures_util::StreamExt;
    let client = nats().await;
    let run = format!("t{}x{}", std::process::id(), Timestamp::now().as_millisecond());
    let mut subscription = client.subscribe("palier.net-a-porter.*").await.expect("subscribing");

    let db = Db::sqlite();
    let mut config = fast(10);
    config.nats = Some(palier_server::bus::NatsConfig {
        url: nats_url(),
        consumer: format!("palier-{run}"),
        events_filter: format!("palier.events.*.{run}"),
    });
    let server = start(&db, "2028-03-01T00:00:00Z", config).await;

    // Two members of NET-A-PORTER (their ids unique to this run), events without
    // `program`: the subject names it.
    let member = |name: &str| format!("{name}-{run}");
    let events = [
        json!({"id": format!("e1-{run}"), "type": "member.registered", "at": "2027-01-05T10:00:00Z", "member": member("claire"), "country": "FR"}),
        json!({"id": format!("e2-{run}"), "type": "member.registered", "at": "2027-01-06T11:00:00Z", "member": member("james"), "country": "GB"}),
        json!({"id": format!("e3-{run}"), "type": "order.placed", "at": "2027-01-10T14:00:00Z", "member": member("claire"), "order": format!("o1-{run}"), "currency": "EUR",
               "lines": [{"line": "l-1", "sku": "s-1", "brand": "The Row", "category": "bags", "quantity": 1, "price": "3400.00"}],
               "delivery": "0.00", "payments": [{"method": "card", "amount": "3400.00"}]}),
        json!({"id": format!("e4-{run}"), "type": "order.delivered", "at": "2027-01-12T09:30:00Z", "order": format!("o1-{run}")}),
    ];
    let jetstream = async_nats::jetstream::new(client.clone());
    let subject = format!("palier.events.net-a-porter.{run}");
    let publish = async |payload: String| {
        jetstream
            .publish(subject.clone(), payload.into())
            .await
            .expect("publishing")
            .await
            .expect("JetStream stored it");
    };
    for event in &events {
        publish(event.to_string()).await;
    }
    publish(events[0].to_string()).await; // redelivered: a duplicate
    publish(json!({"id": format!("bad-{run}"), "type": "order.delivered", "at": "2027-02-01T00:00:00Z", "order": "never-placed"}).to_string()).await;

    // The events end up in the members' documents.
    wait_for!("the bus events applied", Duration::from_secs(20), {
        let reply = server.member(&member("claire"), "net-a-porter", "2027-06-01T00:00:00Z").await;
        if reply.status == 200 && reply.json()["tier"] == "silver" { Ok(()) } else { Err(format!("{reply:?}")) }
    });
    assert_eq!(server.member(&member("james"), "net-a-porter", "2028-03-01T00:00:00Z").await.status, 200);
    // Committed, each once (the live state may show an event a moment before its
    // commit returns).
    wait_for!("the bus events stored", Duration::from_secs(10), {
        let stored = server.get(&format!("/v1/members/{}/events?program=net-a-porter", member("claire"))).await.json();
        if stored["events"].as_array().map(Vec::len) == Some(3) { Ok(()) } else { Err(stored.to_string()) }
    });

    // Every message was acknowledged: the duplicate and the refused one too.
    wait_for!("the bus metrics", Duration::from_secs(10), {
        let metrics = server.request(reqwest::Method::GET, "/metrics", None, None).await.text;
        let counted = |line: &str| metrics.lines().any(|l| l.starts_with(line));
        if counted("palier_bus_events_total{code=\"\",outcome=\"accepted\"} 4")
            && counted("palier_bus_events_total{code=\"\",outcome=\"duplicate\"} 1")
            && counted("palier_bus_events_total{code=\"unknown_order\",outcome=\"rejected\"} 1")
        {
            Ok(())
        } else {
            Err(metrics.lines().filter(|l| l.starts_with("palier_bus")).collect::<Vec<_>>().join("\n"))
        }
    });
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = jetstream
        .get_consumer_from_stream(format!("palier-{run}"), "PALIER_EVENTS")
        .await
        .expect("the durable consumer exists");
    wait_for!("every message acknowledged", Duration::from_secs(10), {
        match consumer.info().await {
            Ok(info) if info.num_ack_pending == 0 && info.num_pending == 0 => Ok(()),
            Ok(info) => Err(format!("{} unacknowledged, {} pending", info.num_ack_pending, info.num_pending)),
            Err(error) => Err(error.to_string()),
        }
    });

    // Notifications: published on palier.net-a-porter.<kind>, id as Nats-Msg-Id.
    set_clock(&server, "2028-04-01T00:00:00Z").await;
    let mut want: BTreeSet<String>;
    wait_for!("the notifications recorded and published", Duration::from_secs(20), {
        want = outbox(&server, &format!("&member={}", member("claire"))).await.into_keys().collect();
        let published = outbox(&server, "&status=pending").await.len();
        if !want.is_empty() && published == 0 {
            Ok(())
        } else {
            Err(format!("{} recorded, {published} pending", want.len()))
        }
    });
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !want.iter().all(|id| seen.contains_key(id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(message)) = tokio::time::timeout(left, subscription.next()).await else {
            panic!("not every notification was published on NATS: want {want:?}, saw {seen:?}");
        };
        let payload: Value = serde_json::from_slice(&message.payload).expect("a JSON payload");
        if payload["member"] != member("claire").as_str() {
            continue; // another run's or member's
        }
        let id = payload["id"].as_str().expect("an id").to_string();
        let header = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string());
        assert_eq!(header.as_deref(), Some(id.as_str()), "Nats-Msg-Id is the notification id");
        assert_eq!(
            message.subject.as_str(),
            format!("palier.net-a-porter.{}", payload["kind"].as_str().expect("kind"))
        );
        seen.insert(id, payload["kind"].as_str().expect("kind").to_string());
    }
    assert!(seen.values().any(|k| k == "tier_reached"), "{seen:?}");
    // And they are in the stream, de-duplicated by id.
    let mut stream = jetstream.get_stream("PALIER_NOTIFICATIONS").await.expect("the notifications stream");
    let subjects = stream.info().await.expect("stream info").config.subjects.clone();
    assert!(subjects.contains(&"palier.net-a-porter.*".to_string()), "{subjects:?}");

    let _ = jetstream.delete_consumer_from_stream(format!("palier-{run}"), "PALIER_EVENTS").await;
    server.stop().await;
}
