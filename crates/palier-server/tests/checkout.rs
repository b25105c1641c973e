//! Checkout storms against the real service (docs/wallet.md "Holds (two-phase
//! checkout)"), each on a SQLite file and on a fresh PostgreSQL database (see
//! `common` for the harness; the service clock is manual, at NOW).
//!
//! 1. Once-only codes: 64 concurrent holds of FIRST10 for one member, then of a
//!    one-time EMAIL10 code issued through the API: exactly one is held, the others
//!    are refused `code_refused` (`held_elsewhere`).
//! 2. Points: 64 concurrent holds of 70 points on a balance of 1000 granted through
//!    the API: exactly floor(1000 / 70) are held; the ledger's balances are the sums of
//!    its entries and the document's `points.held` what the holds reserve. Then holds
//!    and hold-less orders racing for the same points never overdraw them.
//! 3. Endings: holds of points (Perfone) and of store credit (NET-A-PORTER) taken
//!    at NOW, racing orders naming them dated just before, exactly at and just after
//!    their expiry, and their `DELETE`: each ends exactly once (committed, released
//!    or expired, as the replies say), with one ending entry in the ledger, nothing
//!    stays held, the store agrees after a restart and `palier replay` of the stored
//!    events gives the service's documents.
//! 4. The smallest case of 3 that goes wrong: an order dated after a hold's expiry,
//!    refused, must not make the hold look expired (nor free its points) before then.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use common::*;

// ---- requests ---------------------------------------------------------------------------

/// One request of a storm.
#[derive(Clone, Debug)]
struct Req {
    method: Method,
    path: String,
    idempotency_key: Option<String>,
    body: Option<String>,
}

impl Req {
    fn hold(key: &str, basket: &Value) -> Req {
        Req {
            method: Method::POST,
            path: "/v1/checkout/holds".into(),
            idempotency_key: Some(key.into()),
            body: Some(basket.to_string()),
        }
    }

    fn event(event: &Value) -> Req {
        Req { method: Method::POST, path: "/v1/events".into(), idempotency_key: None, body: Some(event.to_string()) }
    }

    fn delete_hold(hold: &str) -> Req {
        Req { method: Method::DELETE, path: format!("/v1/checkout/holds/{hold}"), idempotency_key: None, body: None }
    }

    fn post(path: &str, body: Value) -> Req {
        Req { method: Method::POST, path: path.into(), idempotency_key: None, body: Some(body.to_string()) }
    }

    async fn send(self, client: &reqwest::Client, base: &str) -> Reply {
        let mut request = client.request(self.method.clone(), format!("{base}{}", self.path)).bearer_auth(ADMIN_KEY);
        if let Some(key) = &self.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = self.body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let response =
            request.send().await.unwrap_or_else(|e| panic!("{} {}: the request failed: {e:?}", self.method, self.path));
        let status = response.status().as_u16();
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = response.text().await.expect("reading the response body");
        Reply { status, content_type, text }
    }
}

async fn send(server: &Server, request: Req) -> Reply {
    request.send(&server.client, &server.base).await
}

/// Sends every request at once (each task waits at a barrier, then sends); the
/// replies in request order.
async fn storm(server: &Server, requests: Vec<Req>) -> Vec<Reply> {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let handles: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let client = server.client.clone();
            let base = server.base.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                request.send(&client, &base).await
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(handles.len());
    for handle in handles {
        replies.push(handle.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
    }
    replies
}

/// The single outcome of a `POST /v1/events` reply.
fn outcome(reply: &Reply) -> Outcome {
    outcomes(reply, 1).remove(0)
}

fn instant(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text:?} is not an instant: {e}"))
}

fn shifted(at: Timestamp, seconds: i64) -> String {
    at.checked_add(SignedDuration::from_secs(seconds)).expect("an instant in range").to_string()
}

/// Moves the service's manual clock.
async fn set_clock(server: &Server, now: &str) {
    let reply = send(server, Req::post("/v1/admin/clock", json!({"now": now}))).await;
    assert_eq!(reply.status, 200, "POST /v1/admin/clock: {reply:?}");
}

// ---- members, baskets and orders -------------------------------------------------------------

const REGISTERED: &str = "2029-06-01T00:00:00Z";

async fn register(server: &Server, program: &str, member: &str, country: &str) {
    let event = json!({
        "id": format!("reg-{member}"),
        "type": "member.registered",
        "at": REGISTERED,
        "program": program,
        "member": member,
        "country": country,
    });
    let outcome = server.post_one(&event.to_string()).await;
    assert!(outcome.is("accepted"), "registering {member}: {outcome:?}");
}

/// `POST /v1/members/{id}/ledger/adjustments`, which must be accepted.
async fn grant(server: &Server, member: &str, adjustment: Value) {
    let reply = send(server, Req::post(&format!("/v1/members/{member}/ledger/adjustments"), adjustment)).await;
    assert_eq!(reply.status, 201, "granting {member}: {reply:?}");
    assert_eq!(reply.json()["status"], "accepted", "{reply:?}");
}

/// The Perfone or NET-A-PORTER line of every basket and order here: full price, a
/// brand and category no code excludes.
fn line(price: &str) -> Value {
    json!({"line": "l-1", "sku": "sku-1", "brand": "Chloe", "category": "dresses", "quantity": 1, "price": price})
}

/// An `order.placed` of one line at `at`.
fn order(program: &str, member: &str, order: &str, at: &str, currency: &str, price: &str, payments: Value) -> Value {
    json!({
        "id": format!("placed-{order}"),
        "type": "order.placed",
        "at": at,
        "program": program,
        "member": member,
        "order": order,
        "currency": currency,
        "lines": [line(price)],
        "payments": payments,
    })
}

// ---- ledgers -------------------------------------------------------------------------------

/// An amount of a ledger reply: whole points, or a store credit amount string with
/// two decimals, in minor units.
fn minor(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("not an integer: {value}")),
        Value::String(text) => {
            let (sign, digits) = match text.strip_prefix('-') {
                Some(rest) => (-1, rest),
                None => (1, text.as_str()),
            };
            let (major, fraction) = digits.split_once('.').unwrap_or_else(|| panic!("not an amount: {text:?}"));
            assert_eq!(fraction.len(), 2, "two decimals: {text:?}");
            sign * (major.parse::<i64>().expect("major units") * 100 + fraction.parse::<i64>().expect("minor units"))
        }
        _ => panic!("not an amount: {value}"),
    }
}

/// A member's ledger of `kind` (`GET /v1/members/{id}/ledger?kind=`), checked: each
/// balance is the sum of its bucket's entries. Returns the reply's body and the
/// balances (available, pending, held) in points or minor units.
async fn ledger(server: &Server, member: &str, kind: &str) -> (Value, [i64; 3]) {
    let reply = server.get(&format!("/v1/members/{member}/ledger?kind={kind}")).await;
    assert_eq!(reply.status, 200, "GET ledger of {member}: {reply:?}");
    let body = reply.json();
    let entries = body["entries"].as_array().unwrap_or_else(|| panic!("no entries: {body}"));
    let mut sums = BTreeMap::new();
    for entry in entries {
        let bucket = entry["bucket"].as_str().unwrap_or_else(|| panic!("an entry without a bucket: {entry}"));
        *sums.entry(bucket.to_string()).or_insert(0) += minor(&entry["amount"]);
    }
    let mut balances = [0; 3];
    for (slot, bucket) in ["available", "pending", "held"].into_iter().enumerate() {
        balances[slot] = minor(&body["balances"][bucket]);
        assert_eq!(
            balances[slot],
            sums.get(bucket).copied().unwrap_or(0),
            "{member} {kind}: balance {bucket} is not the sum of its entries: {body}"
        );
    }
    (body, balances)
}

/// The member's document now.
async fn document(server: &Server, member: &str) -> Value {
    let reply = server.get(&format!("/v1/members/{member}")).await;
    assert_eq!(reply.status, 200, "GET member {member}: {reply:?}");
    reply.json()
}

// ---- 1. once-only codes ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_once_only_code_is_held_by_one_checkout_only() {
    on_both_stores(once_only_codes_run).await;
}

/// Counts the 201s of a storm of holds; every other reply must be 409 `code_refused`
/// with reason `held_elsewhere`. Returns the winners' hold ids.
fn one_winner(replies: &[Reply], context: &str) -> Vec<String> {
    let mut won = Vec::new();
    for reply in replies {
        if reply.status == 201 {
            let hold = reply.json()["hold"].clone();
            assert_eq!(hold["status"], "open", "{context}: {hold}");
            won.push(hold["hold"].as_str().expect("a hold id").to_string());
        } else {
            reply.assert_problem(409, "code_refused", context);
            let detail = reply.json()["detail"].as_str().unwrap_or_default().to_string();
            assert!(detail.starts_with("held_elsewhere"), "{context}: refused for another reason: {detail}");
        }
    }
    assert_eq!(won.len(), 1, "{context}: exactly one of {} concurrent holds succeeds; won {won:?}", replies.len());
    won
}

async fn once_only_codes_run(db: Db) {
    let server = Server::start(&db.location).await;
    let nap = "net-a-porter";

    // FIRST10: a member with no order, from GB, a full-price basket in GBP.
    register(&server, nap, "m-first", "GB").await;
    let basket = json!({
        "member": "m-first",
        "currency": "GBP",
        "channel": "web",
        "lines": [line("500.00")],
        "codes": ["FIRST10"],
    });
    let quote = send(&server, Req::post("/v1/checkout/quote", basket.clone())).await;
    assert_eq!(quote.status, 200, "{quote:?}");
    let quote = quote.json();
    assert_eq!((&quote["holdable"], &quote["codes"][0]["status"]), (&json!(true), &json!("accepted")), "{quote}");
    assert_eq!(quote["codes"][0]["discount"], "50.00", "{quote}");

    let before = server.event_count().await;
    let requests = (0..64).map(|i| Req::hold(&format!("first-{i}"), &basket)).collect();
    let replies = storm(&server, requests).await;
    let won = one_winner(&replies, "64 holds of FIRST10");
    let winner = &won[0];
    assert_eq!(server.event_count().await, before + 1, "one checkout.held stored");
    let held = server.get(&format!("/v1/checkout/holds/{winner}")).await;
    assert_eq!(held.status, 200, "{held:?}");
    let held = held.json();
    assert_eq!((&held["status"], &held["codes"]), (&json!("open"), &json!(["FIRST10"])), "{held}");
    // The winner's key again gives its hold back; a loser's is still refused.
    let key = (0..64).find(|i| replies[*i].status == 201).expect("a winner");
    let again = send(&server, Req::hold(&format!("first-{key}"), &basket)).await;
    assert_eq!(again.status, 200, "the winning key replayed: {again:?}");
    assert_eq!((&again.json()["replayed"], &again.json()["hold"]["hold"]), (&json!(true), &json!(winner)));
    let loser = (key + 1) % 64;
    send(&server, Req::hold(&format!("first-{loser}"), &basket)).await.assert_problem(
        409,
        "code_refused",
        "a losing key retried while the code is held",
    );
    assert_eq!(server.event_count().await, before + 1, "retries store nothing");

    // The order naming the hold uses the code; no checkout can hold it again.
    let placed = json!({
        "id": "placed-first",
        "type": "order.placed",
        "at": NOW,
        "program": nap,
        "member": "m-first",
        "order": "o-first",
        "currency": "GBP",
        "lines": [{"line": "l-1", "sku": "sku-1", "brand": "Chloe", "category": "dresses", "quantity": 1,
                   "price": "500.00", "discount": "50.00"}],
        "payments": [{"method": "card", "amount": "450.00"}],
        "codes": ["FIRST10"],
        "hold": winner,
    });
    let outcome = server.post_one(&placed.to_string()).await;
    assert!(outcome.is("accepted"), "the order committing the FIRST10 hold: {outcome:?}");
    let held = server.get(&format!("/v1/checkout/holds/{winner}")).await.json();
    assert_eq!((&held["status"], &held["order"]), (&json!("committed"), &json!("o-first")), "{held}");
    send(&server, Req::hold("first-after", &basket)).await.assert_problem(
        409,
        "code_refused",
        "FIRST10 after the member's first order",
    );

    // EMAIL10: a one-time code issued through the API.
    register(&server, nap, "m-email", "GB").await;
    let issued = send(&server, Req::post("/v1/members/m-email/codes", json!({"promotion": "EMAIL10"}))).await;
    assert_eq!(issued.status, 201, "issuing EMAIL10: {issued:?}");
    let code = issued.json()["code"].as_str().expect("the issued code").to_string();
    assert!(code.starts_with("EMAIL10-"), "{code}");
    let basket = json!({"member": "m-email", "currency": "GBP", "lines": [line("300.00")], "codes": [code]});
    let replies = storm(&server, (0..64).map(|i| Req::hold(&format!("email-{i}"), &basket)).collect()).await;
    let first = one_winner(&replies, "64 holds of a one-time code").remove(0);
    // Released, the code is free again: one more storm, one more winner.
    let released = send(&server, Req::delete_hold(&first)).await;
    assert_eq!((released.status, &released.json()["status"]), (200, &json!("released")), "{released:?}");
    let replies = storm(&server, (0..64).map(|i| Req::hold(&format!("email-again-{i}"), &basket)).collect()).await;
    let second = one_winner(&replies, "64 holds of the one-time code after its release").remove(0);
    assert_ne!(first, second);
    server.stop().await;
}

// ---- 2. points --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_point_holds_never_overdraw() {
    on_both_stores(points_run).await;
}

async fn points_run(db: Db) {
    let server = Server::start(&db.location).await;
    let member = "m-points";
    register(&server, "perfone", member, "RU").await;
    grant(&server, member, json!({"ledger": "points", "amount": "1000", "note": "storm test grant"})).await;
    let (_, balances) = ledger(&server, member, "points").await;
    assert_eq!(balances, [1000, 0, 0]);

    // 64 holds of 70 points; the basket's 50 % cap (1000) is not what limits them.
    let basket = json!({"member": member, "currency": "RUB", "lines": [line("2000.00")], "points": 70});
    let replies = storm(&server, (0..64).map(|i| Req::hold(&format!("points-{i}"), &basket)).collect()).await;
    let mut holds = Vec::new();
    for reply in &replies {
        match reply.status {
            201 => {
                let hold = reply.json()["hold"].clone();
                assert_eq!((&hold["status"], &hold["points"]), (&json!("open"), &json!(70)), "{hold}");
                holds.push(hold["hold"].as_str().expect("a hold id").to_string());
            }
            _ => {
                let code = reply.json()["code"].as_str().unwrap_or_default().to_string();
                assert!(
                    ["points_over_limit", "points_over_balance"].contains(&code.as_str()),
                    "a refused hold says the points are not free: {reply:?}"
                );
                reply.assert_problem(409, &code, "a refused hold of points");
            }
        }
    }
    assert_eq!(holds.len(), 1000 / 70, "exactly floor(1000 / 70) holds of 70 points fit in 1000: {holds:?}");
    let distinct: BTreeSet<&String> = holds.iter().collect();
    assert_eq!(distinct.len(), holds.len(), "distinct holds");

    let (body, balances) = ledger(&server, member, "points").await;
    let held_total = 70 * holds.len() as i64;
    assert_eq!(balances, [1000, 0, held_total], "{body}");
    let held_entries: Vec<&Value> =
        body["entries"].as_array().expect("entries").iter().filter(|e| e["reason"] == "held").collect();
    assert_eq!(held_entries.len(), holds.len(), "one held entry a hold: {body}");
    let named: BTreeSet<String> =
        held_entries.iter().map(|e| e["hold"].as_str().expect("a hold").to_string()).collect();
    assert_eq!(named, holds.iter().cloned().collect::<BTreeSet<_>>(), "{body}");
    let points = document(&server, member).await["points"].clone();
    assert_eq!(points, json!({"available": 1000, "pending": 0, "held": held_total}), "the document");

    // Every hold released, each by two DELETEs at once: released once.
    let requests = holds.iter().flat_map(|h| [Req::delete_hold(h), Req::delete_hold(h)]).collect();
    for reply in storm(&server, requests).await {
        assert_eq!((reply.status, &reply.json()["status"]), (200, &json!("released")), "{reply:?}");
    }
    let (body, balances) = ledger(&server, member, "points").await;
    assert_eq!(balances, [1000, 0, 0], "{body}");
    let released = body["entries"].as_array().expect("entries").iter().filter(|e| e["reason"] == "released").count();
    assert_eq!(released, holds.len(), "one release entry a hold: {body}");

    // Holds and orders without a hold race for the same 1000 points: an order may
    // spend only what no open hold reserves, so 14 of the 64 succeed in all.
    let requests: Vec<Req> = (0..64)
        .map(|i| {
            if i % 2 == 0 {
                Req::hold(&format!("mixed-{i}"), &basket)
            } else {
                let payments =
                    json!([{"method": "points", "amount": "70.00"}, {"method": "card", "amount": "1930.00"}]);
                Req::event(&order("perfone", member, &format!("o-mixed-{i}"), NOW, "RUB", "2000.00", payments))
            }
        })
        .collect();
    let replies = storm(&server, requests).await;
    let (mut held, mut ordered) = (0, 0);
    for (i, reply) in replies.iter().enumerate() {
        if i % 2 == 0 {
            match reply.status {
                201 => held += 1,
                _ => {
                    let code = reply.json()["code"].as_str().unwrap_or_default().to_string();
                    assert!(["points_over_limit", "points_over_balance"].contains(&code.as_str()), "{reply:?}");
                    reply.assert_problem(409, &code, "a refused hold of points");
                }
            }
        } else {
            let outcome = outcome(reply);
            match outcome.status.as_str() {
                "accepted" => ordered += 1,
                _ => assert_eq!(outcome.code.as_deref(), Some("points_over_balance"), "{outcome:?}"),
            }
        }
    }
    assert_eq!(held + ordered, 1000 / 70, "holds {held} + orders {ordered}: never more than the 1000 points");
    let (body, balances) = ledger(&server, member, "points").await;
    // Each order earns floor(0.05 × 1930) = 96 pending points.
    assert_eq!(balances, [1000 - 70 * ordered, 96 * ordered, 70 * held], "{body}");
    let points = document(&server, member).await["points"].clone();
    assert_eq!(points, json!({"available": 1000 - 70 * ordered, "pending": 96 * ordered, "held": 70 * held}));
    server.stop().await;
}

// ---- 3. endings ---------------------------------------------------------------------------------

/// What went wrong, gathered so that one failure does not hide the others.
#[derive(Debug, Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(problem());
        }
    }

    fn assert_none(self, context: &str) {
        if !self.0.is_empty() {
            let shown: Vec<&String> = self.0.iter().take(12).collect();
            panic!(
                "{context}: {} problem(s); the first ones:\n\n{}",
                self.0.len(),
                shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n\n")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_hold_ends_exactly_once_racing_expiry_commit_and_release() {
    on_both_stores(endings_run).await;
}

/// What races for one hold: orders naming it, at these offsets (seconds) from its
/// expiry, and this many `DELETE`s.
struct Plan {
    orders: &'static [i64],
    deletes: usize,
}

const PLANS: [Plan; 7] = [
    Plan { orders: &[-1], deletes: 1 },
    Plan { orders: &[-1, 0, 1], deletes: 1 },
    Plan { orders: &[0, 1], deletes: 1 },
    Plan { orders: &[0, 1], deletes: 0 },
    Plan { orders: &[-2, -1], deletes: 1 },
    Plan { orders: &[-1], deletes: 2 },
    Plan { orders: &[-2, -1, 0], deletes: 0 },
];

/// One wallet: Perfone points or NET-A-PORTER store credit.
struct Wallet {
    program: &'static str,
    member: &'static str,
    country: &'static str,
    currency: &'static str,
    kind: &'static str,
    grant: Value,
    /// The balance granted, in points or minor units.
    granted: i64,
    /// What each hold reserves and each order pays, in points or minor units.
    each: i64,
    /// The hold's basket field for the wallet, and its value.
    basket_extra: (&'static str, Value),
    /// An order's payments on its 2000.00 line.
    payment: Value,
}

fn wallets() -> [Wallet; 2] {
    [
        Wallet {
            program: "perfone",
            member: "m-end-points",
            country: "RU",
            currency: "RUB",
            kind: "points",
            grant: json!({"ledger": "points", "amount": "10000", "note": "storm test grant"}),
            granted: 10_000,
            each: 100,
            basket_extra: ("points", json!(100)),
            payment: json!([{"method": "points", "amount": "100.00"}, {"method": "card", "amount": "1900.00"}]),
        },
        Wallet {
            program: "net-a-porter",
            member: "m-end-credit",
            country: "GB",
            currency: "GBP",
            kind: "store_credit",
            grant: json!({"ledger": "store_credit", "amount": "500.00", "currency": "GBP", "note": "storm test grant"}),
            granted: 50_000,
            each: 1_000,
            basket_extra: ("store_credit", json!("10.00")),
            payment: json!([{"method": "store_credit", "amount": "10.00"}, {"method": "card", "amount": "1990.00"}]),
        },
    ]
}

/// How the race went for one hold, as the replies tell it.
#[derive(Debug, Default)]
struct Race {
    wallet: usize,
    plan: usize,
    expires_at: String,
    /// Orders accepted, by id.
    committed_by: Vec<String>,
    /// DELETEs answered with the hold released.
    released: usize,
    log: Vec<String>,
}

impl Race {
    fn context(&self, hold: &str) -> String {
        format!("hold {hold} (plan {}, expires {}):\n  {}", self.plan, self.expires_at, self.log.join("\n  "))
    }
}

const HOLDS_PER_WALLET: usize = 12;

async fn take_hold(server: &Server, wallet: &Wallet, key: &str) -> Value {
    let mut basket = json!({"member": wallet.member, "currency": wallet.currency, "lines": [line("2000.00")]});
    basket[wallet.basket_extra.0] = wallet.basket_extra.1.clone();
    let reply = send(server, Req::hold(key, &basket)).await;
    assert_eq!(reply.status, 201, "{} hold {key}: {reply:?}", wallet.member);
    let hold = reply.json()["hold"].clone();
    let expires_at = hold["expires_at"].as_str().expect("expires_at");
    assert_eq!(instant(expires_at), instant(&shifted(now(), 30 * 60)), "hold_minutes is 30: {hold}");
    hold
}

/// An order of the wallet naming `hold`, at `offset` seconds from `expires_at`.
fn committing_order(wallet: &Wallet, hold: &str, id: &str, expires_at: &str, offset: i64) -> Value {
    let at = shifted(instant(expires_at), offset);
    let mut event = order(wallet.program, wallet.member, id, &at, wallet.currency, "2000.00", wallet.payment.clone());
    event["hold"] = json!(hold);
    event
}

async fn endings_run(db: Db) {
    let mut server = Server::start(&db.location).await;
    let wallets = wallets();
    for wallet in &wallets {
        register(&server, wallet.program, wallet.member, wallet.country).await;
        grant(&server, wallet.member, wallet.grant.clone()).await;
    }

    // Holds taken now; each expires 30 minutes later.
    let mut races: BTreeMap<String, Race> = BTreeMap::new();
    for (w, wallet) in wallets.iter().enumerate() {
        for i in 0..HOLDS_PER_WALLET {
            let hold = take_hold(&server, wallet, &format!("end-{i}")).await;
            let race = Race {
                wallet: w,
                plan: i % PLANS.len(),
                expires_at: hold["expires_at"].as_str().expect("expires_at").to_string(),
                ..Race::default()
            };
            races.insert(hold["hold"].as_str().expect("a hold id").to_string(), race);
        }
    }

    // Everything at once: the orders naming each hold around its expiry, its DELETEs.
    let mut requests = Vec::new();
    let mut targets = Vec::new();
    for (hold, race) in &races {
        let wallet = &wallets[race.wallet];
        for (n, offset) in PLANS[race.plan].orders.iter().enumerate() {
            let id = format!("o-{hold}-{n}");
            requests.push(Req::event(&committing_order(wallet, hold, &id, &race.expires_at, *offset)));
            targets.push((hold.clone(), Some((id, *offset))));
        }
        for _ in 0..PLANS[race.plan].deletes {
            requests.push(Req::delete_hold(hold));
            targets.push((hold.clone(), None));
        }
    }
    let replies = storm(&server, requests).await;
    let mut problems = Problems::default();
    for ((hold, target), reply) in targets.into_iter().zip(&replies) {
        let race = races.get_mut(&hold).expect("a hold of the race");
        match target {
            Some((order, offset)) => {
                let outcome = outcome(reply);
                race.log.push(format!("order {order} at expiry{offset:+}s: {outcome:?}"));
                if outcome.is("accepted") {
                    race.committed_by.push(order);
                }
            }
            None => {
                race.log.push(format!("DELETE: HTTP {} {}", reply.status, reply.text));
                if reply.status == 200 && reply.json()["status"] == "released" {
                    race.released += 1;
                }
            }
        }
    }
    // Each reply on its own: an order at or after the expiry is refused
    // `hold_expired` (or `hold_closed` once the hold ended otherwise); one before it
    // commits the hold unless another event ended it (`hold_closed`, or
    // `late_conflict` when the event it loses to is later in time); a DELETE
    // releases the hold unless an order placed later in time committed it
    // (`late_conflict`).
    for (hold, race) in &races {
        for line in &race.log {
            let bad = if let Some(rest) = line.strip_prefix("DELETE: ") {
                !(rest.starts_with("HTTP 200 ") && rest.contains(r#""status":"released""#)
                    || rest.starts_with("HTTP 409 ") && rest.contains(r#""code":"late_conflict""#))
            } else if line.contains("at expiry-") {
                !(line.contains(r#"status: "accepted""#)
                    || line.contains(r#"Some("hold_closed")"#)
                    || line.contains(r#"Some("late_conflict")"#))
            } else {
                !(line.contains(r#"Some("hold_expired")"#) || line.contains(r#"Some("hold_closed")"#))
            };
            problems.check(!bad, || format!("{}\nunexpected answer: {line}", race.context(hold)));
        }
    }

    // Past every expiry: each hold has ended, once.
    let after = shifted(now(), 3600);
    set_clock(&server, &after).await;
    let snapshot = check_endings(&server, &wallets, &races, &mut problems).await;

    // The same after a restart on the same store.
    server = server.restart().await;
    set_clock(&server, &after).await;
    let mut again = Problems::default();
    let reloaded = check_endings(&server, &wallets, &races, &mut again).await;
    problems.check(reloaded == snapshot, || {
        format!("the endings differ after a restart on the same store:\nbefore: {snapshot:?}\nafter: {reloaded:?}")
    });

    // And the service's documents are what `palier replay` makes of the stored events.
    let mut stored = Vec::new();
    for wallet in &wallets {
        let reply = server.get(&format!("/v1/members/{}/events", wallet.member)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        stored.extend(reply.json()["events"].as_array().expect("events").iter().map(Value::to_string));
    }
    let output = palier_core::replay(&programs(), (stored.join("\n") + "\n").as_bytes(), Some(instant(&after)));
    problems.check(output.rejections.is_empty(), || {
        format!(
            "`palier replay` of the stored events rejects some the service accepted: {:?}",
            output.rejections.iter().map(|r| r.to_string()).collect::<Vec<_>>()
        )
    });
    for document in &output.documents {
        let reply = server.member(&document.member, &document.program, &after).await;
        let want = serde_json::to_string(document).expect("a document serialises");
        problems.check(reply.text == want, || {
            format!(
                "{}: the service's document differs from the replay's:\n  replay:  {want}\n  service: {}",
                document.member, reply.text
            )
        });
    }
    server.stop().await;
    problems.assert_none("holds racing their expiry, their orders and their release");
}

/// Checks every hold's ending against the replies, the ledger, the stored events and
/// the documents; returns what it read (to compare across a restart).
async fn check_endings(
    server: &Server,
    wallets: &[Wallet],
    races: &BTreeMap<String, Race>,
    problems: &mut Problems,
) -> Vec<Value> {
    let mut snapshot = Vec::new();
    let mut stored: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for wallet in wallets {
        let reply = server.get(&format!("/v1/members/{}/events", wallet.member)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        stored.insert(wallet.member, reply.json()["events"].as_array().expect("events").clone());
    }
    let mut statuses: BTreeMap<String, String> = BTreeMap::new();
    let mut endings = BTreeSet::new();
    let mut committed = vec![0; wallets.len()];
    for (hold, race) in races {
        let wallet = &wallets[race.wallet];
        let context = race.context(hold);
        let reply = server.get(&format!("/v1/checkout/holds/{hold}")).await;
        assert_eq!(reply.status, 200, "{context}\n{reply:?}");
        let state = reply.json();
        let status = state["status"].as_str().expect("a status").to_string();
        statuses.insert(hold.clone(), status.clone());
        snapshot.push(state.clone());

        // The replies: at most one order committed it, and never one and a release.
        problems.check(race.committed_by.len() <= 1, || format!("{context}\ntwo orders committed one hold"));
        problems.check(race.committed_by.is_empty() || race.released == 0, || {
            format!("{context}\nan order committed the hold and a DELETE released it")
        });
        let fits = match status.as_str() {
            "committed" => race.committed_by.len() == 1 && state["order"] == json!(race.committed_by[0]),
            "released" => race.committed_by.is_empty() && race.released >= 1 && state["order"] == Value::Null,
            "expired" => {
                race.committed_by.is_empty() && race.released == 0 && state["ended_at"] == json!(race.expires_at)
            }
            _ => false,
        };
        problems.check(fits, || format!("{context}\nits state does not match the replies: {state}"));
        // A DELETE before the expiry, or an order before it, ends the hold first: it
        // cannot expire. With neither, it can only expire.
        let plan = &PLANS[race.plan];
        let contested = plan.deletes > 0 || plan.orders.iter().any(|o| *o < 0);
        problems.check((status == "expired") != contested, || {
            format!(
                "{context}\n{} ended {status}: {state}",
                if contested { "a contested hold" } else { "a hold left alone" }
            )
        });
        if status == "committed" {
            committed[race.wallet] += 1;
        }
        endings.insert(status.clone());

        // The stored events: one order naming it if committed, one release if
        // released, neither if expired.
        let events = &stored[wallet.member];
        let orders = events.iter().filter(|e| e["type"] == "order.placed" && e["hold"] == json!(hold)).count();
        let releases = events.iter().filter(|e| e["type"] == "checkout.released" && e["hold"] == json!(hold)).count();
        let want = match status.as_str() {
            "committed" => (1, 0),
            "released" => (0, 1),
            _ => (0, 0),
        };
        problems.check((orders, releases) == want, || {
            format!("{context}\n{status}, but {orders} stored order(s) and {releases} release(s) name it")
        });
    }

    // Uncontested holds expire; a plan with orders before the expiry and no DELETE
    // is committed; one with only a DELETE before the expiry is released.
    problems.check(endings.len() == 3, || format!("not every ending was reached: {endings:?}"));

    for (w, wallet) in wallets.iter().enumerate() {
        let (body, balances) = ledger(server, wallet.member, wallet.kind).await;
        let spent = wallet.each * committed[w];
        problems.check(balances[0] == wallet.granted - spent && balances[2] == 0, || {
            format!(
                "{}: with {} holds committed, available must be {} and held 0 once every hold has ended: {body}",
                wallet.kind,
                committed[w],
                wallet.granted - spent
            )
        });
        let entries = body["entries"].as_array().expect("entries");
        for (hold, race) in races.iter().filter(|(_, r)| r.wallet == w) {
            let status = &statuses[hold];
            let mine: Vec<(&str, &str, i64)> = entries
                .iter()
                .filter(|e| e["hold"] == json!(hold))
                .map(|e| (e["reason"].as_str().unwrap_or(""), e["bucket"].as_str().unwrap_or(""), minor(&e["amount"])))
                .collect();
            let ending = match status.as_str() {
                "committed" => "committed",
                "released" => "released",
                _ => "hold_expired",
            };
            problems.check(mine == [("held", "held", wallet.each), (ending, "held", -wallet.each)], || {
                format!("{}\n{status}: not one held entry and one {ending} entry: {mine:?}", race.context(hold))
            });
        }
        let redeemed: i64 = entries.iter().filter(|e| e["reason"] == "redeemed").map(|e| minor(&e["amount"])).sum();
        problems.check(redeemed == -spent, || {
            format!("{}: the committing orders redeemed {redeemed}, not {}: {body}", wallet.kind, -spent)
        });
        let document = document(server, wallet.member).await;
        let held = match wallet.kind {
            "points" => document["points"]["held"] == json!(0),
            _ => document["store_credit"]["held"] == json!("0.00"),
        };
        problems.check(held, || format!("{}: the document still holds value: {document}", wallet.kind));
        snapshot.push(body);
        snapshot.push(document);
    }
    snapshot
}

// ---- 4. a refused order dated later ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_order_after_the_expiry_leaves_the_hold_open_until_then() {
    on_both_stores(refused_later_order_run).await;
}

/// The smallest case of the race above: an order naming a hold one second after its
/// expiry is rightly refused `hold_expired`, and must change nothing ("rejected with
/// a reason and changes nothing", contract.md). At NOW, 30 minutes before the
/// expiry, the hold is still open and reserves its points: an order without a hold
/// may not spend them (docs/wallet.md), and the hold can be released.
async fn refused_later_order_run(db: Db) {
    let server = Server::start(&db.location).await;
    let wallet = &wallets()[0];
    register(&server, wallet.program, wallet.member, wallet.country).await;
    grant(&server, wallet.member, json!({"ledger": "points", "amount": "1000", "note": "storm test grant"})).await;
    let hold = take_hold(&server, wallet, "late-1").await;
    let id = hold["hold"].as_str().expect("a hold id");
    let expires_at = hold["expires_at"].as_str().expect("expires_at");

    let late = server.post_one(&committing_order(wallet, id, "o-late", expires_at, 1).to_string()).await;
    assert_eq!(late.code.as_deref(), Some("hold_expired"), "an order after the hold's expiry: {late:?}");

    let status = server.get(&format!("/v1/checkout/holds/{id}")).await.json()["status"].clone();
    let held = document(&server, wallet.member).await["points"]["held"].clone();
    // 1000 points on a 2000.00 basket: all the balance, 100 of it held.
    let payments = json!([{"method": "points", "amount": "1000.00"}, {"method": "card", "amount": "1000.00"}]);
    let spend_all = order(wallet.program, wallet.member, "o-all", NOW, "RUB", "2000.00", payments);
    let spent = server.post_one(&spend_all.to_string()).await;
    let released = send(&server, Req::delete_hold(id)).await;
    let released = (released.status, released.json()["status"].clone(), released.json()["code"].clone());
    assert_eq!(
        (status, held, spent.code.clone(), released),
        (json!("open"), json!(100), Some("points_over_balance".to_string()), (200, json!("released"), Value::Null)),
        "at NOW, after refusing an order dated one second past the hold's expiry: (the hold's status, the \
         document's points.held, the code of an order spending all 1000 points without the hold, the DELETE's \
         answer); the order: {spent:?}"
    );
    server.stop().await;
}
