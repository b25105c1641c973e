//! Privacy against the real service (docs/privacy.md), each test on a SQLite file
//! and on a fresh PostgreSQL database (see `common`; the clock is manual, at NOW):
//!
//! 1. Authorization matrix: every route of `router()` × (no key, a key without the
//!    route's scope, another member's token, the member's own token, a key with the
//!    scope) → the status of a table; no cross-member read, the caller checked
//!    before the member is looked up, altered and expired tokens refused.
//! 2. Erasure: the erased members' personal data is in no byte of the SQLite files
//!    and no row of the PostgreSQL database, and every document, ledger and program
//!    total is the same after as before (also after a restart); ids chosen by
//!    clients (`Idempotency-Key`) are reached too; the report counts the records
//!    within the retention period.
//! 3. Audit: operator actions are in the hash-chained audit trail with their actors,
//!    naming members only by pseudonym (`palier audit verify` itself: the `palier`
//!    crate's tests/audit_cli.rs).
//! 4. Export: the access right's document holds every event, ledger entry, consent
//!    and correction of the member.
//! 5. Age rules, and consent state and history (a member token cannot record a
//!    staff source).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use palier_server::auth::{SCOPES, create_key};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Connection;

use common::*;

const NAP: &str = "net-a-porter";
const PF: &str = "perfone";

// ---- requests ------------------------------------------------------------------------------

/// `method path` with an optional bearer credential (key or member token), a JSON
/// body and extra headers.
async fn call(
    server: &Server,
    method: Method,
    path: &str,
    credential: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, String)],
) -> Reply {
    let mut request = server.client.request(method.clone(), server.url(path));
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: the request failed: {e:?}"));
    let status = response.status().as_u16();
    let content_type =
        response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = response.text().await.expect("reading the response body");
    Reply { status, content_type, text }
}

async fn get_as(server: &Server, path: &str, credential: &str) -> Reply {
    call(server, Method::GET, path, Some(credential), None, &[]).await
}

async fn post_as(server: &Server, path: &str, credential: &str, body: &Value) -> Reply {
    call(server, Method::POST, path, Some(credential), Some(body), &[]).await
}

/// `GET path` with the admin key; must answer 200.
async fn admin_get(server: &Server, path: &str) -> Value {
    let reply = server.get(path).await;
    assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
    reply.json()
}

/// `POST path` with the admin key; must answer `status`.
async fn admin_post(server: &Server, path: &str, body: &Value, status: u16) -> Value {
    let reply = post_as(server, path, ADMIN_KEY, body).await;
    assert_eq!(reply.status, status, "POST {path} {body}: {reply:?}");
    reply.json()
}

/// Posts events (one JSON array); each must be accepted.
async fn post_accepted(server: &Server, events: &[Value]) {
    let texts: Vec<String> = events.iter().map(Value::to_string).collect();
    let outcomes = server.post_events(&texts, Format::Array).await;
    for (event, outcome) in events.iter().zip(&outcomes) {
        assert!(outcome.is("accepted"), "{outcome:?}\n{event}");
    }
}

/// Posts one event; returns its outcome.
async fn post_event(server: &Server, event: &Value) -> Outcome {
    server.post_one(&event.to_string()).await
}

/// Creates an API key with these scopes in the store; returns (id, secret). The
/// service sees it after `reload_keys`.
async fn make_key(server: &Server, name: &str, scopes: &[&str]) -> (String, String) {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    create_key(server.store(), name, &scopes, now().as_second()).await.expect("creating a key")
}

async fn reload_keys(server: &Server) {
    server.state.reload_keys().await.expect("reloading the keys");
}

/// A member token from `POST /v1/members/{member}/tokens` (admin key).
async fn member_token(server: &Server, member: &str, ttl_seconds: Option<i64>) -> String {
    let body = match ttl_seconds {
        Some(ttl) => json!({"ttl_seconds": ttl}),
        None => json!({}),
    };
    let reply = admin_post(server, &format!("/v1/members/{member}/tokens"), &body, 201).await;
    assert_eq!(reply["member"], member, "{reply}");
    reply["token"].as_str().unwrap_or_else(|| panic!("no token in {reply}")).to_string()
}

async fn set_clock(server: &Server, now: &str) {
    admin_post(server, "/v1/admin/clock", &json!({"now": now}), 200).await;
}

fn at_offset(seconds: i64) -> String {
    now().checked_add(jiff::SignedDuration::from_secs(seconds)).expect("an instant").to_string()
}

/// The index of a program in the service (the order of `programs()`).
fn program_index(id: &str) -> usize {
    programs().iter().position(|p| p.id == id).unwrap_or_else(|| panic!("program {id} is not loaded"))
}

/// (events stored, audit entries): what a refused request must leave unchanged.
async fn writes(server: &Server) -> (u64, usize) {
    let audit = server.store().audit_log().await.expect("reading the audit log");
    (server.event_count().await, audit.len())
}

// ---- events ---------------------------------------------------------------------------------

fn registration(program: &str, member: &str, country: &str, at: &str, extra: Value) -> Value {
    let mut event = json!({
        "id": format!("reg-{member}"),
        "type": "member.registered",
        "at": at,
        "program": program,
        "member": member,
        "country": country,
    });
    if let (Value::Object(fields), Value::Object(more)) = (&mut event, extra) {
        fields.extend(more);
    }
    event
}

fn line(id: &str, price: &str) -> Value {
    let sku = format!("sku-{id}");
    json!({"line": id, "sku": sku, "brand": "Chloe", "category": "dresses", "quantity": 1, "price": price})
}

/// `order.placed` with lines (id, price) and payments (method, amount).
fn placed(
    program: &str,
    member: &str,
    order: &str,
    at: &str,
    currency: &str,
    lines: &[(&str, &str)],
    payments: &[(&str, &str)],
) -> Value {
    json!({
        "id": format!("placed-{order}"),
        "type": "order.placed",
        "at": at,
        "program": program,
        "member": member,
        "order": order,
        "currency": currency,
        "lines": lines.iter().map(|(id, price)| line(id, price)).collect::<Vec<_>>(),
        "payments": payments.iter().map(|(m, amount)| json!({"method": m, "amount": amount})).collect::<Vec<_>>(),
    })
}

fn delivered(program: &str, order: &str, at: &str) -> Value {
    json!({"id": format!("delivered-{order}"), "type": "order.delivered", "at": at, "program": program, "order": order})
}

fn returned(program: &str, order: &str, at: &str, lines: &[&str]) -> Value {
    json!({
        "id": format!("returned-{order}"),
        "type": "order.returned",
        "at": at,
        "program": program,
        "order": order,
        "lines": lines.iter().map(|l| json!({"line": l, "quantity": 1})).collect::<Vec<_>>(),
    })
}

// ---- 1. authorization matrix ------------------------------------------------------------------

/// The columns of the matrix: who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// No `Authorization` header.
    NoKey,
    /// An API key holding every scope but the route's (never `admin`).
    WrongScope,
    /// A member token of ANOTHER member than the one the route names (m-other).
    OtherMember,
    /// A member token of the member the route names (m-own; m-victim for erasure).
    OwnMember,
    /// An API key holding exactly the route's scope.
    RightScope,
}

const WHO: [Who; 5] = [Who::NoKey, Who::WrongScope, Who::OtherMember, Who::OwnMember, Who::RightScope];

/// A column that does not apply (there is no token of a member that does not exist).
const NA: u16 = 0;

/// One line of the matrix.
struct Route {
    method: Method,
    path: String,
    /// The scope an API key needs; "" for a public route.
    scope: &'static str,
    body: Option<Value>,
    /// Whose token is `OwnMember`.
    owner: &'static str,
    /// The status per column of `WHO`.
    expect: [u16; 5],
}

fn route(method: Method, path: &str, scope: &'static str, body: Option<&Value>, expect: [u16; 5]) -> Route {
    Route { method, path: path.to_string(), scope, body: body.cloned(), owner: OWN, expect }
}

fn get(path: &str, scope: &'static str, expect: [u16; 5]) -> Route {
    route(Method::GET, path, scope, None, expect)
}

fn post(path: &str, scope: &'static str, expect: [u16; 5], body: &Value) -> Route {
    route(Method::POST, path, scope, Some(body), expect)
}

fn delete(path: &str, scope: &'static str, expect: [u16; 5]) -> Route {
    route(Method::DELETE, path, scope, None, expect)
}

const OWN: &str = "m-own";
const OTHER: &str = "m-other";
const VICTIM: &str = "m-victim";
const NOBODY: &str = "nobody-4242";

/// Every credential the matrix uses.
struct Credentials {
    /// scope → a key holding only that scope.
    only: BTreeMap<&'static str, String>,
    /// scope → a key holding every non-admin scope but that one (for `admin`: every
    /// non-admin scope).
    all_but: BTreeMap<&'static str, String>,
    /// member → a token of that member.
    tokens: BTreeMap<&'static str, String>,
}

impl Credentials {
    fn of(&self, who: Who, route: &Route) -> Option<String> {
        let public = route.scope.is_empty();
        match who {
            Who::NoKey => None,
            Who::WrongScope if public => Some(self.only["events:write"].clone()),
            Who::WrongScope => Some(self.all_but[route.scope].clone()),
            Who::OtherMember => Some(self.tokens[OTHER].clone()),
            Who::OwnMember => Some(self.tokens[route.owner].clone()),
            Who::RightScope if public => Some(ADMIN_KEY.to_string()),
            Who::RightScope => Some(self.only[route.scope].clone()),
        }
    }
}

fn basket(member: &str) -> Value {
    json!({"member": member, "program": NAP, "currency": "GBP", "channel": "web", "lines": [line("l-1", "100.00")]})
}

/// Opens a hold for m-own with the admin key; returns its id.
async fn open_hold(server: &Server, key: &str) -> String {
    let headers = [("Idempotency-Key", key.to_string())];
    let reply = call(server, Method::POST, "/v1/checkout/holds", Some(ADMIN_KEY), Some(&basket(OWN)), &headers).await;
    assert_eq!(reply.status, 201, "opening a hold: {reply:?}");
    reply.json()["hold"]["hold"].as_str().expect("a hold id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorization_matrix() {
    on_both_stores(matrix_run).await;
}

async fn matrix_run(db: Db) {
    let server = Server::start(&db.location).await;
    let at = "2029-01-01T00:00:00Z";
    post_accepted(
        &server,
        &[
            registration(NAP, OWN, "GB", at, json!({})),
            registration(NAP, OTHER, "GB", at, json!({})),
            registration(NAP, VICTIM, "GB", at, json!({})),
        ],
    )
    .await;

    let mut credentials = Credentials { only: BTreeMap::new(), all_but: BTreeMap::new(), tokens: BTreeMap::new() };
    let non_admin: Vec<&str> = SCOPES.iter().copied().filter(|s| *s != "admin").collect();
    for scope in SCOPES.iter().copied() {
        let (_, secret) = make_key(&server, &format!("only {scope}"), &[scope]).await;
        credentials.only.insert(scope, secret);
        let others: Vec<&str> = non_admin.iter().copied().filter(|s| *s != scope).collect();
        let (_, secret) = make_key(&server, &format!("all but {scope}"), &others).await;
        credentials.all_but.insert(scope, secret);
    }
    reload_keys(&server).await;
    for member in [OWN, OTHER, VICTIM] {
        credentials.tokens.insert(member, member_token(&server, member, None).await);
    }
    let held = open_hold(&server, "setup-held").await;
    let released = open_hold(&server, "setup-released").await;

    let event = registration(NAP, "m-new", "GB", at, json!({}));
    let adjust = json!({"ledger": "store_credit", "amount": "5.00", "currency": "GBP", "note": "matrix"});
    let code = json!({"promotion": "EMAIL10"});
    let consent = json!({"channel": "email", "granted": true, "text_version": "v1"});
    let profile = json!({"name": "Own Member"});
    let token = json!({"ttl_seconds": 600});
    let simulate = json!({"member": OWN, "program": NAP, "events": []});
    let (hold, clock, none) = (basket(OWN), json!({"now": NOW}), json!({}));
    let (held, released) = (format!("/v1/checkout/holds/{held}"), format!("/v1/checkout/holds/{released}"));

    // Every route of `router()`. Columns: no key, a key with every other scope but
    // this one, ANOTHER member's token, the member's own token, a key with the scope.
    #[rustfmt::skip]
    let mut table = vec![
        //     path                                        scope             none wrong other own  right  body
        post("/v1/events",                                 "events:write",   [401, 403, 403, 403, 200], &event),
        get("/v1/members?program=net-a-porter",            "members:read",   [401, 403, 403, 403, 200]),
        get("/v1/members/m-own",                           "members:read",   [401, 403, 403, 200, 200]),
        get("/v1/members/m-own?program=net-a-porter",      "members:read",   [401, 403, 403, 200, 200]),
        get("/v1/members/m-own/events",                    "members:read",   [401, 403, 403, 403, 200]),
        get("/v1/members/m-own/timeline",                  "members:read",   [401, 403, 403, 200, 200]),
        get("/v1/members/m-own/ledger?kind=store_credit",  "members:read",   [401, 403, 403, 200, 200]),
        get("/v1/members/m-own/ledger?kind=points",        "members:read",   [401, 403, 403, 200, 200]),
        post("/v1/members/m-own/ledger/adjustments",       "ledger:write",   [401, 403, 403, 403, 201], &adjust),
        post("/v1/members/m-own/codes",                    "ledger:write",   [401, 403, 403, 403, 201], &code),
        get("/v1/members/m-own/consents",                  "members:read",   [401, 403, 403, 200, 200]),
        post("/v1/members/m-own/consents",                 "members:write",  [401, 403, 403, 201, 201], &consent),
        post("/v1/members/m-own/profile",                  "members:write",  [401, 403, 403, 201, 201], &profile),
        get("/v1/members/m-own/export",                    "privacy",        [401, 403, 403, 200, 200]),
        post("/v1/members/m-own/tokens",                   "members:write",  [401, 403, 403, 403, 201], &token),
        post("/v1/checkout/quote",                         "checkout:write", [401, 403, 403, 403, 200], &hold),
        post("/v1/checkout/holds",                         "checkout:write", [401, 403, 403, 403, 201], &hold),
        get(&held,                                         "checkout:write", [401, 403, 403, 403, 200]),
        delete(&released,                                  "checkout:write", [401, 403, 403, 403, 200]),
        post("/v1/simulate",                               "members:read",   [401, 403, 403, 403, 200], &simulate),
        get("/v1/programs",                                "members:read",   [401, 403, 403, 403, 200]),
        get("/v1/programs/net-a-porter",                   "members:read",   [401, 403, 403, 403, 200]),
        get("/v1/admin/clock",                             "admin",          [401, 403, 403, 403, 200]),
        post("/v1/admin/clock",                            "admin",          [401, 403, 403, 403, 200], &clock),
        get("/v1/admin/audit",                             "admin",          [401, 403, 403, 403, 200]),
        // Public: no key needed, and whatever credential is sent is ignored.
        get("/healthz",                                    "",               [200, 200, 200, 200, 200]),
        get("/readyz",                                     "",               [200, 200, 200, 200, 200]),
        get("/metrics",                                    "",               [200, 200, 200, 200, 200]),
        get("/openapi.json",                               "",               [200, 200, 200, 200, 200]),
        get("/docs",                                       "",               [200, 200, 200, 200, 200]),
        // Last: it erases m-victim (whose token is the OwnMember column).
        Route { owner: VICTIM, ..post("/v1/members/m-victim/erase", "privacy", [401, 403, 403, 403, 200], &none) },
    ];
    // The same routes on a member that does not exist: the caller is checked first,
    // so a refused caller learns nothing of who exists; the right key gets 404.
    #[rustfmt::skip]
    let unknown = vec![
        //     path                                        scope             none wrong other own right  body
        get("/v1/members/nobody-4242",                     "members:read",   [401, 403, 403, NA, 404]),
        get("/v1/members/nobody-4242/events",              "members:read",   [401, 403, 403, NA, 404]),
        get("/v1/members/nobody-4242/timeline",            "members:read",   [401, 403, 403, NA, 404]),
        get("/v1/members/nobody-4242/ledger",              "members:read",   [401, 403, 403, NA, 404]),
        post("/v1/members/nobody-4242/ledger/adjustments", "ledger:write",   [401, 403, 403, NA, 404], &adjust),
        post("/v1/members/nobody-4242/codes",              "ledger:write",   [401, 403, 403, NA, 404], &code),
        get("/v1/members/nobody-4242/consents",            "members:read",   [401, 403, 403, NA, 404]),
        post("/v1/members/nobody-4242/consents",           "members:write",  [401, 403, 403, NA, 404], &consent),
        post("/v1/members/nobody-4242/profile",            "members:write",  [401, 403, 403, NA, 404], &profile),
        get("/v1/members/nobody-4242/export",              "privacy",        [401, 403, 403, NA, 404]),
        post("/v1/members/nobody-4242/erase",              "privacy",        [401, 403, 403, NA, 404], &none),
        post("/v1/members/nobody-4242/tokens",             "members:write",  [401, 403, 403, NA, 404], &none),
    ];
    assert!(unknown.iter().all(|r| r.path.contains(NOBODY)));
    table.extend(unknown);

    let mut failures: Vec<String> = Vec::new();
    for (row, route) in table.iter().enumerate() {
        let headers = [("Idempotency-Key", format!("matrix-{row}"))];
        let send = |credential: Option<String>| {
            let (method, path, body, headers) =
                (route.method.clone(), route.path.clone(), route.body.clone(), &headers);
            let server = &server;
            async move { call(server, method, &path, credential.as_deref(), body.as_ref(), headers).await }
        };
        for (column, who) in WHO.into_iter().enumerate() {
            let expected = route.expect[column];
            if expected == NA {
                continue;
            }
            let context = format!("{} {} by {who:?}", route.method, route.path);
            if who == Who::RightScope && !route.scope.is_empty() {
                // First every key with ONE other scope: none opens the route.
                for other in SCOPES.iter().copied().filter(|s| *s != route.scope && *s != "admin") {
                    let before = writes(&server).await;
                    let reply = send(Some(credentials.only[other].clone())).await;
                    if let Err(message) =
                        reply.check_problem(403, "missing_scope", &format!("{context} (only {other})"))
                    {
                        failures.push(message);
                    }
                    if writes(&server).await != before {
                        failures.push(format!("{context} (only {other}): a refused request wrote something"));
                    }
                }
            }
            let before = writes(&server).await;
            let reply = send(credentials.of(who, route)).await;
            if reply.status != expected {
                failures.push(format!("{context}: expected HTTP {expected}, got {} {}", reply.status, reply.text));
                continue;
            }
            if who == Who::OtherMember {
                assert!(
                    !(200..300).contains(&reply.status) || route.scope.is_empty(),
                    "{context}: another member's token must never read or change a member: {reply:?}"
                );
            }
            let problem = match expected {
                401 => Some("missing_key"),
                403 => Some("missing_scope"),
                404 => Some("unknown_member"),
                _ => None,
            };
            if let Some(code) = problem
                && let Err(message) = reply.check_problem(expected, code, &context)
            {
                failures.push(message);
            }
            if expected >= 400 && writes(&server).await != before {
                failures.push(format!("{context}: a refused request wrote something (events, audit)"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cell(s) of the authorization matrix differ:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A member token opens its member in its own program only.
    let own = &credentials.tokens[OWN];
    get_as(&server, "/v1/members/m-own?program=perfone", own).await.assert_problem(
        403,
        "missing_scope",
        "a NAP member's token on ?program=perfone",
    );

    altered_and_expired_tokens(&server, &credentials).await;
    server.stop().await;
}

/// The member routes a member token opens: (method, path, body).
fn member_routes(member: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("/v1/members/{member}"), None),
        (Method::GET, format!("/v1/members/{member}/timeline"), None),
        (Method::GET, format!("/v1/members/{member}/ledger"), None),
        (Method::GET, format!("/v1/members/{member}/consents"), None),
        (Method::GET, format!("/v1/members/{member}/export"), None),
        (
            Method::POST,
            format!("/v1/members/{member}/consents"),
            Some(json!({"channel": "push", "granted": true, "text_version": "v1"})),
        ),
        (Method::POST, format!("/v1/members/{member}/profile"), Some(json!({"name": "Own Member"}))),
    ]
}

/// The token with one character of its signature changed (in the middle: the last
/// character of unpadded base64 carries bits a decoder may ignore).
fn tampered_signature(token: &str) -> String {
    let (head, signature) = token.rsplit_once('.').expect("a token has a signature");
    let mut characters: Vec<char> = signature.chars().collect();
    let middle = characters.len() / 2;
    characters[middle] = if characters[middle] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", characters.into_iter().collect::<String>())
}

async fn altered_and_expired_tokens(server: &Server, credentials: &Credentials) {
    let own = credentials.tokens[OWN].clone();
    let other = credentials.tokens[OTHER].clone();
    let (_, own_signature) = own.rsplit_once('.').expect("a signature");
    let other_payload = other.split('.').nth(1).expect("a payload");
    let far = now().as_second() + 24 * 3600;
    let payload = URL_SAFE_NO_PAD.encode(json!({"p": NAP, "m": OWN, "exp": far}).to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(b"a guessed secret").expect("any key length");
    mac.update(payload.as_bytes());
    let forged_signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let altered = [
        ("one character of the signature changed", tampered_signature(&own)),
        ("another member's payload under this signature", format!("pm1.{other_payload}.{own_signature}")),
        ("a payload signed with another secret", format!("pm1.{payload}.{forged_signature}")),
        ("no signature", format!("pm1.{payload}.")),
        ("no payload", "pm1.".to_string()),
    ];
    for (method, path, body) in member_routes(OWN) {
        for (case, token) in &altered {
            let before = writes(server).await;
            let reply = call(server, method.clone(), &path, Some(token), body.as_ref(), &[]).await;
            reply.assert_problem(401, "invalid_token", &format!("{method} {path} with {case}"));
            assert_eq!(writes(server).await, before, "{method} {path} with {case}: nothing is written");
        }
    }

    // The shortest token, 60 s: valid until its expiry, refused from it on.
    let short = member_token(server, OWN, Some(60)).await;
    assert_eq!(get_as(server, "/v1/members/m-own", &short).await.status, 200, "a fresh token opens its member");
    set_clock(server, &at_offset(59)).await;
    assert_eq!(get_as(server, "/v1/members/m-own", &short).await.status, 200, "one second before its expiry");
    set_clock(server, &at_offset(60)).await;
    for (method, path, body) in member_routes(OWN) {
        let before = writes(server).await;
        let reply = call(server, method.clone(), &path, Some(&short), body.as_ref(), &[]).await;
        reply.assert_problem(401, "expired_token", &format!("{method} {path} with an expired token"));
        assert_eq!(writes(server).await, before, "{method} {path}: an expired token writes nothing");
    }
    set_clock(server, NOW).await;

    // Lifetimes: 1 minute to 30 days.
    for (ttl, status) in [(59, 422), (60, 201), (30 * 24 * 3600, 201), (30 * 24 * 3600 + 1, 422), (0, 422), (-60, 422)]
    {
        let reply = post_as(server, "/v1/members/m-own/tokens", ADMIN_KEY, &json!({"ttl_seconds": ttl})).await;
        assert_eq!(reply.status, status, "a token of {ttl} s: {reply:?}");
        if status == 422 {
            reply.assert_problem(422, "invalid_ttl", &format!("a token of {ttl} s"));
        }
    }
}

// ---- 2. erasure ---------------------------------------------------------------------------------

/// A member with distinctive personal data.
struct Person {
    program: &'static str,
    member: &'static str,
    country: &'static str,
    name: &'static str,
    email: &'static str,
    birth_date: &'static str,
}

impl Person {
    fn registration(&self, at: &str) -> Value {
        registration(
            self.program,
            self.member,
            self.country,
            at,
            json!({"name": self.name, "email": self.email, "birth_date": self.birth_date}),
        )
    }

    /// The strings that identify the person.
    fn needles(&self) -> Vec<String> {
        vec![self.member.to_string(), self.name.to_string(), self.email.to_string(), self.birth_date.to_string()]
    }
}

/// Erased: Perfone, with the birthday bonus.
const ZQ: Person = Person {
    program: PF,
    member: "zz-erase-me-7731",
    country: "RU",
    name: "Zygmunt Quellington",
    email: "zq7731@example.org",
    birth_date: "1984-07-19",
};
/// Erased: NET-A-PORTER, with store credit.
const PV: Person = Person {
    program: NAP,
    member: "zz-erase-nap-5526",
    country: "GB",
    name: "Philippa Vantongeren",
    email: "pv5526@example.org",
    birth_date: "1991-11-03",
};
/// Kept: their data must still be found (the scans do read the data).
const KA: Person = Person {
    program: NAP,
    member: "nap-keep-0001",
    country: "GB",
    name: "Keeper Alphonsine",
    email: "keeper.alphonsine@example.org",
    birth_date: "1970-01-02",
};
const KB: Person = Person {
    program: PF,
    member: "pf-keep-0001",
    country: "RU",
    name: "Keeper Borislava",
    email: "keeper.borislava@example.org",
    birth_date: "1975-05-05",
};
/// Written by corrections and notes of the erased members.
const ZQ_NEW_EMAIL: &str = "zq7731.new@example.org";
const PV_NEW_NAME: &str = "Philippa Vantongeren-Ashby";

/// The erased members' strings: none may be stored anywhere after the erasure.
fn erased_needles() -> Vec<String> {
    let mut needles = ZQ.needles();
    needles.extend(PV.needles());
    needles.push(ZQ_NEW_EMAIL.to_string());
    needles.push(PV_NEW_NAME.to_string());
    needles
}

/// The kept members' strings: still stored after the erasure.
fn kept_needles() -> Vec<String> {
    let mut needles = KA.needles();
    needles.extend(KB.needles());
    needles
}

/// The histories: orders, deliveries, partial returns, a consent, a points payment
/// and (Perfone) birthdays that pay the 10 000 bonus before the erasure.
fn erasure_events() -> Vec<Value> {
    let zq1 = format!("{}-o1", ZQ.member);
    let zq2 = format!("{}-o2", ZQ.member);
    let pv1 = format!("{}-o1", PV.member);
    let pv2 = format!("{}-o2", PV.member);
    vec![
        ZQ.registration("2029-01-15T09:00:00Z"),
        PV.registration("2029-01-10T10:00:00Z"),
        KA.registration("2029-01-20T10:00:00Z"),
        KB.registration("2029-01-25T09:00:00Z"),
        registration(NAP, "nap-keep-0002", "GB", "2029-01-05T10:00:00Z", json!({})),
        json!({
            "id": format!("consent-web-{}", ZQ.member), "type": "consent.changed", "at": "2029-02-01T09:00:00Z",
            "program": PF, "member": ZQ.member, "channel": "email", "granted": true, "source": "web",
            "text_version": "pf-2028",
        }),
        placed(
            PF,
            ZQ.member,
            &zq1,
            "2029-03-01T09:00:00Z",
            "RUB",
            &[("l-1", "150000.00"), ("l-2", "50000.00")],
            &[("card", "200000.00")],
        ),
        delivered(PF, &zq1, "2029-03-05T09:00:00Z"),
        returned(PF, &zq1, "2029-03-10T09:00:00Z", &["l-2"]),
        placed(
            PF,
            ZQ.member,
            &zq2,
            "2029-08-01T09:00:00Z",
            "RUB",
            &[("l-1", "30000.00")],
            &[("points", "5000.00"), ("card", "25000.00")],
        ),
        delivered(PF, &zq2, "2029-08-03T09:00:00Z"),
        placed(
            NAP,
            PV.member,
            &pv1,
            "2029-02-01T10:00:00Z",
            "GBP",
            &[("l-1", "2000.00"), ("l-2", "1000.00")],
            &[("card", "3000.00")],
        ),
        delivered(NAP, &pv1, "2029-02-04T10:00:00Z"),
        returned(NAP, &pv1, "2029-02-10T10:00:00Z", &["l-2"]),
        placed(NAP, PV.member, &pv2, "2029-05-01T10:00:00Z", "GBP", &[("l-1", "1500.00")], &[("card", "1500.00")]),
        delivered(NAP, &pv2, "2029-05-03T10:00:00Z"),
        placed(
            NAP,
            KA.member,
            "nap-keep-0001-o1",
            "2029-06-01T10:00:00Z",
            "GBP",
            &[("l-1", "1200.00")],
            &[("card", "1200.00")],
        ),
        delivered(NAP, "nap-keep-0001-o1", "2029-06-03T10:00:00Z"),
        placed(
            NAP,
            "nap-keep-0002",
            "nap-keep-0002-o1",
            "2029-04-01T10:00:00Z",
            "GBP",
            &[("l-1", "6000.00")],
            &[("card", "6000.00")],
        ),
        delivered(NAP, "nap-keep-0002-o1", "2029-04-02T10:00:00Z"),
        placed(
            PF,
            KB.member,
            "pf-keep-0001-o1",
            "2029-02-01T09:00:00Z",
            "RUB",
            &[("l-1", "50000.00")],
            &[("card", "50000.00")],
        ),
        delivered(PF, "pf-keep-0001-o1", "2029-02-03T09:00:00Z"),
    ]
}

/// What the service shows of every member of every program.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// (program, member) → the member document.
    documents: BTreeMap<(String, String), Value>,
    /// (program, member, kind) → `GET /v1/members/{id}/ledger?kind=`.
    ledgers: BTreeMap<(String, String, String), Value>,
    /// Sums over all members of each program.
    totals: BTreeMap<String, i128>,
}

/// A decimal amount in minor units (the key it is summed under names the currency).
fn minor(text: &str) -> i128 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    sign * digits.replace('.', "").parse::<i128>().unwrap_or_else(|e| panic!("not an amount {text:?}: {e}"))
}

async fn snapshot(server: &Server) -> Snapshot {
    let mut snapshot = Snapshot { documents: BTreeMap::new(), ledgers: BTreeMap::new(), totals: BTreeMap::new() };
    for program in programs() {
        let program = program.id;
        let list = admin_get(server, &format!("/v1/members?program={program}&limit=1000")).await;
        assert_eq!(list["next_cursor"], Value::Null, "one page holds every member");
        for document in list["members"].as_array().expect("a members array") {
            let member = document["member"].as_str().expect("a member id").to_string();
            let mut add =
                |key: String, value: i128| *snapshot.totals.entry(format!("{program} {key}")).or_insert(0) += value;
            add("members".into(), 1);
            add(format!("status {}", document["status"]), 1);
            add(format!("tier {}", document["tier"]), 1);
            let currency = document["currency"].as_str().unwrap_or("none").to_string();
            for field in ["qualifying_spend", "pending_spend"] {
                if let Some(amount) = document[field].as_str() {
                    add(format!("{field} {currency}"), minor(amount));
                }
            }
            for field in ["available", "pending", "held"] {
                if let Some(points) = document["points"][field].as_i64() {
                    add(format!("points.{field}"), i128::from(points));
                }
                if let Some(amount) = document["store_credit"][field].as_str() {
                    add(format!("store_credit.{field} {currency}"), minor(amount));
                }
            }
            for kind in ["points", "store_credit"] {
                let ledger =
                    admin_get(server, &format!("/v1/members/{member}/ledger?kind={kind}&program={program}")).await;
                let entries = ledger["entries"].as_array().expect("entries").len();
                add(format!("{kind} entries"), entries as i128);
                snapshot.ledgers.insert((program.clone(), member.clone(), kind.to_string()), ledger);
            }
            snapshot.documents.insert((program.clone(), member), document.clone());
        }
    }
    snapshot
}

/// What an erased member's snapshot entries become: the pseudonym for the id, and
/// `[erased]` for operator notes; nothing else changes.
fn expected_after_erasure(before: &Snapshot, erased: &[(&str, &str, String)]) -> Snapshot {
    let mut after = before.clone();
    for (program, member, alias) in erased {
        let (program, member) = (program.to_string(), member.to_string());
        let mut document = after.documents.remove(&(program.clone(), member.clone())).expect("a document");
        document["member"] = json!(alias);
        after.documents.insert((program.clone(), alias.clone()), document);
        for kind in ["points", "store_credit"] {
            let key = (program.clone(), member.clone(), kind.to_string());
            let mut ledger = after.ledgers.remove(&key).expect("a ledger");
            ledger["member"] = json!(alias);
            for entry in ledger["entries"].as_array_mut().expect("entries") {
                for field in ["order", "hold"] {
                    if let Some(text) = entry[field].as_str() {
                        entry[field] = json!(text.replace(&member, alias));
                    }
                }
                if !entry["note"].is_null() {
                    entry["note"] = json!("[erased]");
                }
            }
            after.ledgers.insert((program.clone(), alias.clone(), kind.to_string()), ledger);
        }
    }
    after
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Every file of the SQLite store's directory (database, -wal, -shm, -journal).
fn sqlite_files(location: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(location).parent().expect("the store's directory");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("listing the store's directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_file() {
            // A file SQLite removes between the listing and the read (a rollback
            // journal of a moment) holds nothing any more.
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("reading {}: {e}", path.display()),
            };
            files.push((path.file_name().expect("a name").to_string_lossy().to_string(), bytes));
        }
    }
    assert!(files.iter().any(|(name, _)| name == "palier.db"), "the database file is there: {files:?}");
    files
}

/// Every row of every table of the PostgreSQL test database, as text: (table, row).
async fn postgres_rows(location: &str) -> Vec<(String, Vec<u8>)> {
    let mut connection = sqlx::PgConnection::connect(location).await.expect("connecting to the test database");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&mut connection)
            .await
            .expect("listing the tables");
    for table in ["events", "audit_log", "settings", "api_keys"] {
        assert!(tables.iter().any(|t| t == table), "table {table} is in {tables:?}");
    }
    let mut rows = Vec::new();
    for table in tables {
        let sql = format!("SELECT t::text FROM \"{table}\" t");
        let texts: Vec<String> =
            sqlx::query_scalar(&sql).fetch_all(&mut connection).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.extend(texts.into_iter().map(|text| (table.clone(), text.into_bytes())));
    }
    connection.close().await.ok();
    rows
}

/// Every stored byte of the store: files (SQLite) or rows (PostgreSQL), named.
async fn stored_bytes(db: &Db) -> Vec<(String, Vec<u8>)> {
    match db.backend {
        Backend::Sqlite => sqlite_files(&db.location),
        Backend::Postgres => postgres_rows(&db.location).await,
    }
}

/// Where each needle is stored: (needle, where).
fn found(stored: &[(String, Vec<u8>)], needles: &[String]) -> Vec<(String, String)> {
    let mut hits = Vec::new();
    for needle in needles {
        for (place, bytes) in stored {
            if contains(bytes, needle.as_bytes()) {
                hits.push((needle.clone(), place.clone()));
            }
        }
    }
    hits
}

/// Asserts the store holds none of the erased strings and all of the kept ones.
async fn assert_no_trace(db: &Db, moment: &str) {
    let stored = stored_bytes(db).await;
    let leaks = found(&stored, &erased_needles());
    assert!(
        leaks.is_empty(),
        "{} {moment}: erased personal data is still stored: {leaks:?} (stored in {:?})",
        db.backend.name(),
        stored.iter().map(|(place, bytes)| format!("{place}: {} bytes", bytes.len())).collect::<Vec<_>>()
    );
    for needle in kept_needles() {
        assert!(
            stored.iter().any(|(_, bytes)| contains(bytes, needle.as_bytes())),
            "{} {moment}: a kept member's {needle:?} must still be stored (else the scan reads nothing)",
            db.backend.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_leaves_no_trace_and_keeps_totals() {
    on_both_stores(erasure_run).await;
}

async fn erasure_run(db: Db) {
    let server = Server::start(&db.location).await;
    post_accepted(&server, &erasure_events()).await;
    let (_, ledger_key) = make_key(&server, "ledger", &["ledger:write"]).await;
    let (staff_id, staff_key) = make_key(&server, "staff", &["members:write"]).await;
    reload_keys(&server).await;

    // Operator and member actions at NOW.
    let notes = [
        (
            ZQ.member,
            json!({"ledger": "points", "amount": "500", "note": format!("Goodwill for {} ({})", ZQ.name, ZQ.email)}),
        ),
        (
            PV.member,
            json!({
                "ledger": "store_credit", "amount": "75.00", "currency": "GBP",
                "note": format!("Goodwill for {}, born {}", PV.name, PV.birth_date),
            }),
        ),
    ];
    for (member, adjustment) in &notes {
        let reply =
            post_as(&server, &format!("/v1/members/{member}/ledger/adjustments"), &ledger_key, adjustment).await;
        assert_eq!(reply.status, 201, "adjusting {member}: {reply:?}");
    }
    let code =
        post_as(&server, &format!("/v1/members/{}/codes", PV.member), &ledger_key, &json!({"promotion": "EMAIL10"}))
            .await;
    assert_eq!(code.status, 201, "{code:?}");
    let zq_token = member_token(&server, ZQ.member, None).await;
    let pv_token = member_token(&server, PV.member, None).await;
    let consent = json!({"channel": "sms", "granted": true, "text_version": "pf-2029"});
    assert_eq!(post_as(&server, &format!("/v1/members/{}/consents", ZQ.member), &zq_token, &consent).await.status, 201);
    let consent = json!({"channel": "email", "granted": false, "text_version": "nap-2029"});
    assert_eq!(
        post_as(&server, &format!("/v1/members/{}/consents", PV.member), &staff_key, &consent).await.status,
        201
    );
    let correction = json!({"email": ZQ_NEW_EMAIL});
    assert_eq!(
        post_as(&server, &format!("/v1/members/{}/profile", ZQ.member), &staff_key, &correction).await.status,
        201
    );
    let correction = json!({"name": PV_NEW_NAME});
    assert_eq!(
        post_as(&server, &format!("/v1/members/{}/profile", PV.member), &pv_token, &correction).await.status,
        201
    );

    // The scenario does what it should before the erasure.
    let points = admin_get(&server, &format!("/v1/members/{}/ledger?kind=points", ZQ.member)).await;
    let birthday: Vec<&Value> =
        points["entries"].as_array().expect("entries").iter().filter(|e| e["reason"] == "birthday").collect();
    assert_eq!(birthday.len(), 1, "one birthday bonus before the erasure: {points}");
    assert_eq!(birthday[0]["amount"], 10_000, "{points}");
    assert_eq!(birthday[0]["at"], "2029-07-18T21:00:00Z", "00:00 on 19 July in Moscow: {points}");
    let consents = admin_get(&server, &format!("/v1/members/{}/consents", PV.member)).await;
    assert_eq!(consents["current"]["email"]["source"], format!("staff:{staff_id}"), "{consents}");
    let credit = admin_get(&server, &format!("/v1/members/{}", PV.member)).await;
    assert_eq!(credit["store_credit"]["available"], "75.00", "{credit}");
    assert_all_stored(&db, "before the erasure").await;

    let before = snapshot(&server).await;
    let mut erased: Vec<(&str, &str, String)> = Vec::new();
    for person in [&ZQ, &PV] {
        let events = admin_get(&server, &format!("/v1/members/{}/events", person.member)).await;
        let count = events["events"].as_array().expect("events").len();
        let reply = post_as(&server, &format!("/v1/members/{}/erase", person.member), ADMIN_KEY, &json!({})).await;
        assert_eq!(reply.status, 200, "erasing {}: {reply:?}", person.member);
        let report = reply.json();
        let alias = server.state.pseudonym(program_index(person.program), person.member);
        assert_eq!(report["pseudonym"], alias.as_str(), "{report}");
        assert!(
            alias.starts_with("anon-") && alias.len() == 25 && alias[5..].chars().all(|c| c.is_ascii_hexdigit()),
            "`anon-` and 20 hex digits: {alias}"
        );
        assert_eq!(report["events_rewritten"], count, "every stored event of the member is rewritten: {report}");
        erased.push((person.program, person.member, alias));
    }

    // (a) the same documents, ledgers and totals, under the pseudonyms.
    let expected = expected_after_erasure(&before, &erased);
    let after = snapshot(&server).await;
    assert_snapshots_equal(&expected, &after, "after the erasure");
    assert_eq!(after.totals, before.totals, "every program total is the same after the erasure");
    for (program, member, alias) in &erased {
        let events = admin_get(&server, &format!("/v1/members/{alias}/events?program={program}")).await;
        let events = events["events"].as_array().expect("events").clone();
        let registration = events.iter().find(|e| e["type"] == "member.registered").expect("the registration");
        assert!(registration.get("name").is_none() && registration.get("email").is_none(), "{registration}");
        assert!(registration.get("birth_date").is_none(), "{registration}");
        let person = if *member == ZQ.member { &ZQ } else { &PV };
        assert_eq!(registration["birthday"], &person.birth_date[5..], "month and day are kept: {registration}");
        assert!(events.iter().all(|e| e["member"].is_null() || e["member"] == alias.as_str()), "{events:?}");
        assert!(events.iter().any(|e| e["type"] == "member.erased"), "a member.erased event: {events:?}");
        let export = admin_get(&server, &format!("/v1/members/{alias}/export?program={program}")).await;
        assert_eq!(export["profile"]["name"], Value::Null, "{}", export["profile"]);
        assert_eq!(export["profile"]["email"], Value::Null, "{}", export["profile"]);
        assert_eq!(export["profile"]["birth_date"], Value::Null, "{}", export["profile"]);
        assert_eq!(export["profile"]["erased_at"], NOW, "{}", export["profile"]);
        let text = format!("{events:?}{export}");
        let leaks: Vec<String> = erased_needles().into_iter().filter(|n| text.contains(n.as_str())).collect();
        assert!(leaks.is_empty(), "the pseudonym's events and export still hold {leaks:?}");
    }
    // Nothing the service answers names them either.
    for path in ["/v1/admin/audit", "/metrics", "/v1/members?program=perfone", "/v1/members?program=net-a-porter"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        let leaks: Vec<String> = erased_needles().into_iter().filter(|n| reply.text.contains(n.as_str())).collect();
        assert!(leaks.is_empty(), "{path} still holds {leaks:?}");
    }

    // (c) the old ids are gone.
    for person in [&ZQ, &PV] {
        let old = person.member;
        for path in [
            format!("/v1/members/{old}"),
            format!("/v1/members/{old}/events"),
            format!("/v1/members/{old}/timeline"),
            format!("/v1/members/{old}/ledger"),
            format!("/v1/members/{old}/consents"),
            format!("/v1/members/{old}/export"),
        ] {
            server.get(&path).await.assert_problem(404, "unknown_member", &format!("GET {path} after the erasure"));
        }
        for path in [format!("/v1/members/{old}/tokens"), format!("/v1/members/{old}/erase")] {
            post_as(&server, &path, ADMIN_KEY, &json!({})).await.assert_problem(
                404,
                "unknown_member",
                &format!("POST {path} after the erasure"),
            );
        }
    }
    // A token issued before the erasure names the old id: it finds nothing, and
    // does not open the pseudonym.
    let zq_alias = &erased[0].2;
    get_as(&server, &format!("/v1/members/{}", ZQ.member), &zq_token).await.assert_problem(
        404,
        "unknown_member",
        "the old token on the old id",
    );
    get_as(&server, &format!("/v1/members/{zq_alias}"), &zq_token).await.assert_problem(
        403,
        "missing_scope",
        "the old token on the pseudonym",
    );

    // (b) no byte of the store holds them, while the service runs and once stopped.
    assert_no_trace(&db, "while the service runs").await;
    server.stop().await;
    assert_no_trace(&db, "with the service stopped").await;

    // (d) a new service on the same store rebuilds the same state from the log.
    let server = Server::start(&db.location).await;
    let restarted = snapshot(&server).await;
    assert_snapshots_equal(&expected, &restarted, "after a restart");
    for person in [&ZQ, &PV] {
        let path = format!("/v1/members/{}", person.member);
        server.get(&path).await.assert_problem(404, "unknown_member", &format!("GET {path} after a restart"));
    }
    server.stop().await;
    assert_no_trace(&db, "after a restart").await;
}

/// Sanity of the scans: before the erasure, the store holds every string searched.
async fn assert_all_stored(db: &Db, moment: &str) {
    let stored = stored_bytes(db).await;
    for needle in erased_needles().into_iter().chain(kept_needles()) {
        assert!(
            stored.iter().any(|(_, bytes)| contains(bytes, needle.as_bytes())),
            "{} {moment}: {needle:?} should be stored (else the scan proves nothing)",
            db.backend.name()
        );
    }
}

fn assert_snapshots_equal(expected: &Snapshot, got: &Snapshot, context: &str) {
    let keys = |s: &Snapshot| s.documents.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(keys(got), keys(expected), "{context}: the members");
    for (key, document) in &expected.documents {
        assert_eq!(&got.documents[key], document, "{context}: the document of {key:?}");
    }
    for (key, ledger) in &expected.ledgers {
        assert_eq!(got.ledgers.get(key), Some(ledger), "{context}: the ledger {key:?}");
    }
    assert_eq!(got.ledgers.len(), expected.ledgers.len(), "{context}: the ledgers");
    assert_eq!(got.totals, expected.totals, "{context}: the program totals");
}

/// Ids a client chooses may carry the member id: an adjustment's `Idempotency-Key`
/// becomes its event id (`adj-KEY`), which the event log and the audit entry's
/// detail both hold. Erasure must leave the member id in neither (docs/privacy.md:
/// the audit log holds no personal data; the member id is personal data).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_reaches_ids_chosen_by_clients() {
    on_both_stores(client_ids_run).await;
}

async fn client_ids_run(db: Db) {
    let server = Server::start(&db.location).await;
    let member = "zz-client-ids-3390";
    post_accepted(&server, &[registration(NAP, member, "GB", "2029-01-01T00:00:00Z", json!({}))]).await;
    let adjust = json!({"ledger": "store_credit", "amount": "15.00", "currency": "GBP", "note": "late delivery"});
    let headers = [("Idempotency-Key", format!("goodwill-{member}-2029-12"))];
    let path = format!("/v1/members/{member}/ledger/adjustments");
    let reply = call(&server, Method::POST, &path, Some(ADMIN_KEY), Some(&adjust), &headers).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let headers = [("Idempotency-Key", format!("welcome-{member}"))];
    let path = format!("/v1/members/{member}/codes");
    let reply =
        call(&server, Method::POST, &path, Some(ADMIN_KEY), Some(&json!({"promotion": "EMAIL10"})), &headers).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    admin_post(&server, &format!("/v1/members/{member}/erase"), &json!({}), 200).await;

    let mut leaks = found(&stored_bytes(&db).await, &[member.to_string()]);
    let audit = server.get("/v1/admin/audit").await;
    if audit.text.contains(member) {
        leaks.push((member.to_string(), "GET /v1/admin/audit".to_string()));
    }
    server.stop().await;
    assert!(leaks.is_empty(), "the erased member id is still stored in: {leaks:?}\naudit: {}", audit.text);
}

/// docs/privacy.md: palier "reports how many are within the retention period"
/// (`retention_months`, 12): records younger than 12 months at the erasure.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_reports_the_records_within_retention() {
    on_both_stores(retention_run).await;
}

async fn retention_run(db: Db) {
    let server = Server::start(&db.location).await;
    let member = "m-retention";
    // NOW is 2030-01-01: 12 months before is 2029-01-01T00:00:00Z.
    post_accepted(
        &server,
        &[
            registration(NAP, member, "GB", "2028-11-15T10:00:00Z", json!({})),
            placed(
                NAP,
                member,
                "o-retention",
                "2029-01-03T10:00:00Z",
                "GBP",
                &[("l-1", "100.00")],
                &[("card", "100.00")],
            ),
            delivered(NAP, "o-retention", "2029-01-05T10:00:00Z"),
        ],
    )
    .await;
    let report = admin_post(&server, &format!("/v1/members/{member}/erase"), &json!({}), 200).await;
    assert_eq!(report["events_rewritten"], 3, "{report}");
    assert_eq!(report["retention_months"], 12, "{report}");
    assert_eq!(
        report["within_retention"], 2,
        "the order placed 2029-01-03 and delivered 2029-01-05 are less than 12 months before 2030-01-01: {report}"
    );
    server.stop().await;
}

// ---- 3. audit -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_actions_are_audited_by_pseudonym() {
    on_both_stores(audit_run).await;
}

async fn audit_run(db: Db) {
    let server = Server::start(&db.location).await;
    let (a, b) = ("audit-member-a", "audit-member-b");
    post_accepted(
        &server,
        &[
            registration(NAP, a, "GB", "2029-01-01T00:00:00Z", json!({"name": "Audit Person A"})),
            registration(PF, b, "RU", "2029-01-01T00:00:00Z", json!({"email": "audit.b@example.org"})),
        ],
    )
    .await;
    let (ledger_id, ledger_key) = make_key(&server, "ledger", &["ledger:write"]).await;
    let (staff_id, staff_key) = make_key(&server, "staff", &["members:write"]).await;
    let (privacy_id, privacy_key) = make_key(&server, "privacy", &["privacy"]).await;
    let (admin_id, admin_key) = make_key(&server, "operator admin", &["admin"]).await;
    reload_keys(&server).await;
    let (alias_a, alias_b) =
        (server.state.pseudonym(program_index(NAP), a), server.state.pseudonym(program_index(PF), b));

    let token = post_as(&server, &format!("/v1/members/{a}/tokens"), &staff_key, &json!({})).await;
    assert_eq!(token.status, 201, "{token:?}");
    let token = token.json()["token"].as_str().expect("a token").to_string();
    let adjust = json!({"ledger": "store_credit", "amount": "10.00", "currency": "GBP", "note": "goodwill"});
    assert_eq!(
        post_as(&server, &format!("/v1/members/{a}/ledger/adjustments"), &ledger_key, &adjust).await.status,
        201
    );
    let code = json!({"promotion": "EMAIL10"});
    assert_eq!(post_as(&server, &format!("/v1/members/{a}/codes"), &ledger_key, &code).await.status, 201);
    let consent = json!({"channel": "email", "granted": true, "text_version": "v1"});
    assert_eq!(post_as(&server, &format!("/v1/members/{a}/consents"), &staff_key, &consent).await.status, 201);
    // The member's own changes and reads are not operator actions.
    assert_eq!(post_as(&server, &format!("/v1/members/{a}/consents"), &token, &consent).await.status, 201);
    assert_eq!(post_as(&server, &format!("/v1/members/{a}/profile"), &token, &json!({"name": "A"})).await.status, 201);
    assert_eq!(get_as(&server, &format!("/v1/members/{a}/export"), &token).await.status, 200);
    let correction = json!({"email": "a.new@example.org"});
    assert_eq!(post_as(&server, &format!("/v1/members/{a}/profile"), &staff_key, &correction).await.status, 201);
    assert_eq!(get_as(&server, &format!("/v1/members/{a}/export"), &privacy_key).await.status, 200);
    let points = json!({"ledger": "points", "amount": "250", "note": "goodwill"});
    assert_eq!(
        post_as(&server, &format!("/v1/members/{b}/ledger/adjustments"), &ledger_key, &points).await.status,
        201
    );
    assert_eq!(post_as(&server, "/v1/admin/clock", &admin_key, &json!({"now": at_offset(3600)})).await.status, 200);
    let erased = post_as(&server, &format!("/v1/members/{b}/erase"), &privacy_key, &json!({})).await;
    assert_eq!(erased.status, 200, "{erased:?}");
    assert_eq!(erased.json()["pseudonym"], alias_b.as_str(), "the pseudonym the audit trail named b by");

    // (actor, action, subject), in order.
    let (staff, ledger, privacy, admin) =
        (staff_id.as_str(), ledger_id.as_str(), privacy_id.as_str(), admin_id.as_str());
    let (subject_a, subject_b) = (alias_a.as_str(), alias_b.as_str());
    let expected: Vec<(&str, &str, &str)> = vec![
        (staff, "token.issued", subject_a),
        (ledger, "ledger.adjusted", subject_a),
        (ledger, "code.issued", subject_a),
        (staff, "consent.changed", subject_a),
        (staff, "member.rectified", subject_a),
        (privacy, "member.exported", subject_a),
        (ledger, "ledger.adjusted", subject_b),
        (admin, "clock.set", "clock"),
        (privacy, "member.erased", subject_b),
    ];
    let check = |audit: &Value, context: &str| {
        assert_eq!(audit["chain"]["intact"], true, "{context}: {}", audit["chain"]);
        assert_eq!(audit["chain"]["entries"], expected.len(), "{context}: {}", audit["chain"]);
        let entries = audit["entries"].as_array().expect("entries");
        let got: Vec<(String, String, String)> = entries
            .iter()
            .map(|e| {
                let text = |f: &str| e[f].as_str().unwrap_or_else(|| panic!("{f} of {e}")).to_string();
                (text("actor"), text("action"), text("subject"))
            })
            .collect();
        let want: Vec<(String, String, String)> =
            expected.iter().map(|(x, y, z)| (x.to_string(), y.to_string(), z.to_string())).collect();
        assert_eq!(got, want, "{context}: the audit trail (actor, action, subject)");
        for (index, entry) in entries.iter().enumerate() {
            assert_eq!(entry["seq"], index + 1, "{context}: {entry}");
            let text = entry.to_string();
            for needle in [a, b, "Audit Person A", "audit.b@example.org", "a.new@example.org"] {
                assert!(!text.contains(needle), "{context}: an audit entry names {needle:?}: {entry}");
            }
        }
        assert_eq!(entries[6]["detail"]["amount"], "250", "{context}: {}", entries[6]);
        assert_eq!(entries[7]["detail"]["now"], at_offset(3600), "{context}: {}", entries[7]);
    };
    let audit = admin_get(&server, "/v1/admin/audit").await;
    check(&audit, "GET /v1/admin/audit");
    // `palier audit verify` reads the same records.
    let records = server.store().audit_log().await.expect("the audit log");
    assert_eq!(palier_store::audit::verify(&records), Ok(expected.len()), "the chain verifies");
    for record in &records {
        for needle in [a, b] {
            assert!(!record.entry.subject.contains(needle) && !record.entry.detail.contains(needle), "{record:?}");
        }
    }

    let server = server.restart().await;
    check(&admin_get(&server, "/v1/admin/audit").await, "after a restart");
    server.stop().await;
}

// ---- 4. export ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_holds_everything_of_the_member() {
    on_both_stores(export_run).await;
}

async fn export_run(db: Db) {
    let server = Server::start(&db.location).await;
    let (nap, pf) = ("ex-nap-1", "ex-pf-1");
    let personal = json!({"name": "Export Person", "email": "export@example.org", "birth_date": "1990-02-02"});
    post_accepted(
        &server,
        &[
            registration(NAP, nap, "GB", "2029-03-01T10:00:00Z", personal.clone()),
            registration(PF, pf, "RU", "2029-03-01T10:00:00Z", json!({"birth_date": "1980-06-10"})),
            registration(NAP, "ex-neighbour", "GB", "2029-03-01T10:00:00Z", json!({})),
            json!({
                "id": "ex-consent-web", "type": "consent.changed", "at": "2029-03-02T10:00:00Z", "program": NAP,
                "member": nap, "channel": "post", "granted": true, "source": "web", "text_version": "nap-2028",
            }),
            placed(
                NAP,
                nap,
                "ex-o1",
                "2029-03-05T10:00:00Z",
                "GBP",
                &[("l-1", "800.00"), ("l-2", "200.00")],
                &[("card", "1000.00")],
            ),
            delivered(NAP, "ex-o1", "2029-03-07T10:00:00Z"),
            returned(NAP, "ex-o1", "2029-03-10T10:00:00Z", &["l-2"]),
            placed(
                NAP,
                "ex-neighbour",
                "ex-n1",
                "2029-03-05T10:00:00Z",
                "GBP",
                &[("l-1", "50.00")],
                &[("card", "50.00")],
            ),
            placed(PF, pf, "ex-p1", "2029-04-01T09:00:00Z", "RUB", &[("l-1", "40000.00")], &[("card", "40000.00")]),
            delivered(PF, "ex-p1", "2029-04-03T09:00:00Z"),
        ],
    )
    .await;
    let (staff_id, staff_key) = make_key(&server, "staff", &["members:write"]).await;
    let (_, privacy_key) = make_key(&server, "privacy", &["privacy"]).await;
    let (_, reader_key) = make_key(&server, "reader", &["members:read"]).await;
    reload_keys(&server).await;
    let nap_token = member_token(&server, nap, None).await;
    let pf_token = member_token(&server, pf, None).await;

    // Ledger entries, a code, a hold, consents and corrections through the API.
    let credit = json!({"ledger": "store_credit", "amount": "20.00", "currency": "GBP", "note": "goodwill"});
    admin_post(&server, &format!("/v1/members/{nap}/ledger/adjustments"), &credit, 201).await;
    let code = admin_post(&server, &format!("/v1/members/{nap}/codes"), &json!({"promotion": "EMAIL10"}), 201).await;
    let mut hold_basket = basket(nap);
    hold_basket["store_credit"] = json!("5.00");
    let hold = call(
        &server,
        Method::POST,
        "/v1/checkout/holds",
        Some(ADMIN_KEY),
        Some(&hold_basket),
        &[("Idempotency-Key", "ex-hold".to_string())],
    )
    .await;
    assert_eq!(hold.status, 201, "{hold:?}");
    let points = json!({"ledger": "points", "amount": "300", "note": "goodwill"});
    admin_post(&server, &format!("/v1/members/{pf}/ledger/adjustments"), &points, 201).await;
    let email = json!({"channel": "email", "granted": true, "text_version": "nap-2029"});
    assert_eq!(post_as(&server, &format!("/v1/members/{nap}/consents"), &nap_token, &email).await.status, 201);
    let sms = json!({"channel": "sms", "granted": true, "text_version": "nap-2029"});
    assert_eq!(post_as(&server, &format!("/v1/members/{nap}/consents"), &staff_key, &sms).await.status, 201);
    let corrections = [
        (&staff_key, json!({"email": "export.new@example.org"})),
        (&nap_token, json!({"name": "Export P. Person"})),
        (&staff_key, json!({"country": "GB", "birth_date": "1990-02-03"})),
    ];
    for (credential, correction) in &corrections {
        let reply = post_as(&server, &format!("/v1/members/{nap}/profile"), credential, correction).await;
        assert_eq!(reply.status, 201, "{correction}: {reply:?}");
    }
    let empty = post_as(&server, &format!("/v1/members/{nap}/profile"), &staff_key, &json!({})).await;
    empty.assert_problem(422, "empty_correction", "a correction of nothing");

    for (member, token) in [(nap, &nap_token), (pf, &pf_token)] {
        let by_staff = get_as(&server, &format!("/v1/members/{member}/export"), &privacy_key).await;
        assert_eq!(by_staff.status, 200, "{by_staff:?}");
        let by_member = get_as(&server, &format!("/v1/members/{member}/export"), token).await;
        assert_eq!(by_member.status, 200, "{by_member:?}");
        let export = by_staff.json();
        assert_eq!(by_member.json(), export, "{member}: the member's own export is the same document");
        assert_eq!(export["member"], member);
        assert_eq!(export["exported_at"], NOW);

        // Every stored event, as received, in order.
        let events = get_as(&server, &format!("/v1/members/{member}/events"), &reader_key).await;
        assert_eq!(events.status, 200, "{events:?}");
        let events = events.json()["events"].clone();
        let exported: Vec<Value> =
            export["events"].as_array().expect("events").iter().map(|e| e["event"].clone()).collect();
        assert_eq!(Value::Array(exported), events, "{member}: the exported events are GET …/events");
        for event in export["events"].as_array().expect("events") {
            assert!(event["seq"].is_i64() && event["received_at"].is_string(), "{event}");
            let text = event["event"].to_string();
            assert!(!text.contains("ex-neighbour"), "{member}: another member's event is exported: {text}");
        }
        // Both ledgers, entry by entry.
        for kind in ["points", "store_credit"] {
            let ledger = get_as(&server, &format!("/v1/members/{member}/ledger?kind={kind}"), &reader_key).await;
            assert_eq!(ledger.status, 200, "{ledger:?}");
            assert_eq!(export["ledgers"][kind], ledger.json()["entries"], "{member}: the {kind} ledger");
        }
        // Consents, current and history.
        let mut consents = get_as(&server, &format!("/v1/members/{member}/consents"), &reader_key).await.json();
        consents.as_object_mut().expect("an object").remove("member");
        assert_eq!(export["consents"], consents, "{member}: the consents");
        let document = get_as(&server, &format!("/v1/members/{member}"), &reader_key).await.json();
        assert_eq!(export["document"], document, "{member}: the member document");
        // Benefits granted: every grant GET /benefits lists (this harness records no
        // notifications: the scanner is started by `palier serve` only).
        let benefits = get_as(&server, &format!("/v1/members/{member}/benefits"), &reader_key).await.json();
        let grants = benefits["grants"].as_array().expect("grants").len();
        assert_eq!(export["entitlements"].as_array().expect("entitlements").len(), grants, "{member}: entitlements");
        assert_eq!(export["notifications"], json!([]));
    }

    let export = admin_get(&server, &format!("/v1/members/{nap}/export")).await;
    let ids: BTreeSet<String> = export["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"]["id"].as_str().expect("id").into())
        .collect();
    for id in ["reg-ex-nap-1", "ex-consent-web", "placed-ex-o1", "delivered-ex-o1", "returned-ex-o1"] {
        assert!(ids.contains(id), "event {id} is exported: {ids:?}");
    }
    // registration, 4 posted, adjustment, code, hold, 2 consents, 3 corrections.
    assert_eq!(ids.len(), 13, "{ids:?}");
    assert_eq!(
        export["profile_corrections"],
        json!([
            {"at": NOW, "fields": ["email"]},
            {"at": NOW, "fields": ["name"]},
            {"at": NOW, "fields": ["country", "birth_date"]},
        ]),
        "every correction with its time and fields"
    );
    let profile = &export["profile"];
    assert_eq!(profile["name"], "Export P. Person", "{profile}");
    assert_eq!(profile["email"], "export.new@example.org", "{profile}");
    assert_eq!(profile["birth_date"], "1990-02-03", "{profile}");
    assert_eq!(profile["country"], "GB", "{profile}");
    assert_eq!(profile["registered_at"], "2029-03-01T10:00:00Z", "{profile}");
    let history = export["consents"]["history"].as_array().expect("a history");
    let sources: Vec<&str> = history.iter().map(|c| c["source"].as_str().expect("a source")).collect();
    assert_eq!(sources, ["web", "member", &format!("staff:{staff_id}")], "{history:?}");
    let holds = export["holds"].as_array().expect("holds");
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert_eq!(holds[0]["hold"], hold.json()["hold"]["hold"], "{holds:?}");
    assert_eq!(holds[0]["store_credit_minor"], 500, "{holds:?}");
    let issued = export["codes"]["issued"].as_array().expect("issued codes");
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["code"], code["code"], "{issued:?}");
    assert_eq!(issued[0]["promotion"], "EMAIL10", "{issued:?}");
    let credit = export["ledgers"]["store_credit"].as_array().expect("entries");
    assert!(credit.iter().any(|e| e["reason"] == "manual_adjustment" && e["amount"] == "20.00"), "{credit:?}");
    assert!(credit.iter().any(|e| e["reason"] == "held" && e["amount"] == "5.00"), "{credit:?}");

    // Nobody else reads it.
    get_as(&server, &format!("/v1/members/{nap}/export"), &pf_token).await.assert_problem(
        403,
        "missing_scope",
        "another member's export",
    );
    get_as(&server, &format!("/v1/members/{nap}/export"), &reader_key).await.assert_problem(
        403,
        "missing_scope",
        "an export with members:read",
    );
    server.stop().await;
}

// ---- 5. age rules and consent ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn age_rules() {
    on_both_stores(age_run).await;
}

fn order_at(program: &str, member: &str, order: &str, at: &str) -> Value {
    let (currency, price) = if program == PF { ("RUB", "1000.00") } else { ("GBP", "100.00") };
    placed(program, member, order, at, currency, &[("l-1", price)], &[("card", price)])
}

async fn age_run(db: Db) {
    let server = Server::start(&db.location).await;
    let at = "2029-06-01T12:00:00Z";
    let born = |date: &str| json!({"birth_date": date});

    // Registration: under 16 needs a guardian's consent.
    let outcome = post_event(&server, &registration(NAP, "age-15", "GB", at, born("2013-06-02"))).await;
    assert_eq!(
        (outcome.status.as_str(), outcome.code.as_deref()),
        ("rejected", Some("guardian_consent_required")),
        "15 years and 364 days old, no guardian consent: {outcome:?}"
    );
    server.get("/v1/members/age-15").await.assert_problem(404, "unknown_member", "a rejected registration");
    let outcome = post_event(&server, &registration(NAP, "age-16", "GB", at, born("2013-06-01"))).await;
    assert!(outcome.is("accepted"), "16 on the day: no guardian consent needed: {outcome:?}");
    let mut guarded = born("2013-06-02");
    guarded["guardian_consent"] = json!(true);
    let outcome = post_event(&server, &registration(NAP, "age-15g", "GB", at, guarded)).await;
    assert!(outcome.is("accepted"), "under 16 with a guardian's consent: {outcome:?}");
    let outcome = post_event(&server, &registration(NAP, "no-birth", "GB", at, json!({}))).await;
    assert!(outcome.is("accepted"), "{outcome:?}");

    // Orders: under 18 in the program's zone on the order's date are refused.
    let outcome = post_event(&server, &order_at(NAP, "age-15g", "o-15g", "2029-07-01T12:00:00Z")).await;
    assert_eq!(outcome.code.as_deref(), Some("under_age"), "an order at 16: {outcome:?}");
    let outcome = post_event(&server, &order_at(NAP, "no-birth", "o-nb", "2029-07-01T12:00:00Z")).await;
    assert!(outcome.is("accepted"), "a member without a birth date is not checked: {outcome:?}");

    // Perfone, Europe/Moscow (UTC+3): the 18th birthday starts at 21:00 UTC the day before.
    let outcome = post_event(&server, &registration(PF, "teen-pf", "RU", at, born("2012-01-01"))).await;
    assert!(outcome.is("accepted"), "17: no guardian consent needed: {outcome:?}");
    let document = admin_get(&server, "/v1/members/teen-pf").await;
    let outcome = post_event(&server, &order_at(PF, "teen-pf", "o-pf-early", "2029-12-31T20:59:59Z")).await;
    assert_eq!(outcome.code.as_deref(), Some("under_age"), "23:59:59 in Moscow the day before: {outcome:?}");
    assert_eq!(admin_get(&server, "/v1/members/teen-pf").await, document, "a rejected order changes nothing");
    let outcome = post_event(&server, &order_at(PF, "teen-pf", "o-pf-18", "2029-12-31T21:00:00Z")).await;
    assert!(outcome.is("accepted"), "00:00 on the 18th birthday in Moscow (still 31 Dec in UTC): {outcome:?}");

    // NET-A-PORTER, Europe/London in summer time (UTC+1).
    let outcome = post_event(&server, &registration(NAP, "teen-nap", "GB", at, born("2011-08-15"))).await;
    assert!(outcome.is("accepted"), "{outcome:?}");
    let outcome = post_event(&server, &order_at(NAP, "teen-nap", "o-nap-early", "2029-08-14T22:59:59Z")).await;
    assert_eq!(outcome.code.as_deref(), Some("under_age"), "23:59:59 BST the day before: {outcome:?}");
    let outcome = post_event(&server, &order_at(NAP, "teen-nap", "o-nap-18", "2029-08-14T23:00:00Z")).await;
    assert!(outcome.is("accepted"), "00:00 BST on the 18th birthday (still 14 Aug in UTC): {outcome:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consent_state_and_history() {
    on_both_stores(consent_run).await;
}

async fn consent_run(db: Db) {
    let server = Server::start(&db.location).await;
    let (member, neighbour) = ("consent-1", "consent-2");
    post_accepted(
        &server,
        &[
            registration(NAP, member, "GB", "2029-01-01T00:00:00Z", json!({})),
            registration(NAP, neighbour, "GB", "2029-01-01T00:00:00Z", json!({})),
        ],
    )
    .await;
    let (staff_id, staff_key) = make_key(&server, "staff", &["members:write"]).await;
    let (_, reader_key) = make_key(&server, "reader", &["members:read"]).await;
    reload_keys(&server).await;
    let token = member_token(&server, member, Some(24 * 3600)).await;
    let neighbour_token = member_token(&server, neighbour, Some(24 * 3600)).await;
    let path = format!("/v1/members/{member}/consents");

    // No record: not given.
    let consents = get_as(&server, &path, &token).await;
    assert_eq!(consents.status, 200, "{consents:?}");
    let consents = consents.json();
    for channel in ["email", "sms", "phone", "post", "push"] {
        assert_eq!(
            consents["current"][channel],
            json!({"granted": false, "at": null, "source": null, "text_version": null}),
            "{consents}"
        );
    }
    assert_eq!(consents["history"], json!([]), "{consents}");

    // The member grants e-mail; staff grant SMS (a source in the body does not
    // change what staff are recorded as).
    let email = json!({"channel": "email", "granted": true, "text_version": "v3"});
    assert_eq!(post_as(&server, &path, &token, &email).await.status, 201);
    let sms = json!({"channel": "sms", "granted": true, "text_version": "v3", "source": "member"});
    assert_eq!(post_as(&server, &path, &staff_key, &sms).await.status, 201);
    // Another member cannot change it, nor read it.
    let withdraw = json!({"channel": "email", "granted": false, "text_version": "v3"});
    post_as(&server, &path, &neighbour_token, &withdraw).await.assert_problem(
        403,
        "missing_scope",
        "another member's consent change",
    );
    get_as(&server, &path, &neighbour_token).await.assert_problem(403, "missing_scope", "another member's consents");
    let bad = json!({"channel": "pigeon", "granted": true, "text_version": "v3"});
    assert_eq!(post_as(&server, &path, &token, &bad).await.status, 422, "an unknown channel");

    // An hour later the member withdraws e-mail.
    set_clock(&server, &at_offset(3600)).await;
    assert_eq!(post_as(&server, &path, &token, &withdraw).await.status, 201);

    let consents = get_as(&server, &path, &reader_key).await.json();
    let staff_source = format!("staff:{staff_id}");
    assert_eq!(
        consents["current"]["email"],
        json!({"granted": false, "at": at_offset(3600), "source": "member", "text_version": "v3"}),
        "{consents}"
    );
    assert_eq!(
        consents["current"]["sms"],
        json!({"granted": true, "at": NOW, "source": staff_source, "text_version": "v3"}),
        "{consents}"
    );
    assert_eq!(consents["current"]["push"]["granted"], false, "{consents}");
    assert_eq!(
        consents["history"],
        json!([
            {"at": NOW, "channel": "email", "granted": true, "source": "member", "text_version": "v3"},
            {"at": NOW, "channel": "sms", "granted": true, "source": staff_source, "text_version": "v3"},
            {"at": at_offset(3600), "channel": "email", "granted": false, "source": "member", "text_version": "v3"},
        ]),
        "the whole history, in order"
    );
    // In the past: what was given then.
    let half = at_offset(1800);
    let earlier = get_as(&server, &format!("{path}?as_of={half}"), &reader_key).await.json();
    assert_eq!(earlier["current"]["email"]["granted"], true, "{earlier}");
    assert_eq!(earlier["history"].as_array().map(Vec::len), Some(2), "{earlier}");
    // The neighbour's consents are their own.
    let theirs = get_as(&server, &format!("/v1/members/{neighbour}/consents"), &neighbour_token).await.json();
    assert_eq!(theirs["history"], json!([]), "{theirs}");

    // The same after a restart (the log rebuilt; the new service's clock is back at
    // NOW, so ask at the instant of the withdrawal).
    let server = server.restart().await;
    let later = get_as(&server, &format!("{path}?as_of={}", at_offset(3600)), ADMIN_KEY).await;
    assert_eq!(later.json(), consents, "consents after a restart");
    server.stop().await;
}

/// The consent record is evidence of who agreed: a `staff:KEY` source names an
/// operator's key (docs/privacy.md), so a member's own token must not be able to
/// record a change as made by staff.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_token_cannot_record_a_staff_source() {
    on_both_stores(forged_source_run).await;
}

async fn forged_source_run(db: Db) {
    let server = Server::start(&db.location).await;
    let member = "consent-forger";
    post_accepted(&server, &[registration(NAP, member, "GB", "2029-01-01T00:00:00Z", json!({}))]).await;
    let token = member_token(&server, member, None).await;
    let path = format!("/v1/members/{member}/consents");
    let forged = json!({"channel": "email", "granted": true, "text_version": "v3", "source": "staff:admin"});
    let reply = post_as(&server, &path, &token, &forged).await;
    let consents = admin_get(&server, &path).await;
    server.stop().await;
    if reply.status == 201 {
        let source = consents["current"]["email"]["source"].as_str().unwrap_or_default().to_string();
        assert!(
            !source.starts_with("staff:"),
            "a member token recorded a consent as given through staff ({source:?}): {consents}"
        );
    }
}
