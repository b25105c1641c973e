//! The real service over HTTP: `palier_server::start` + `serve` on 127.0.0.1:0, talked
//! to with reqwest, on an embedded SQLite file and on a fresh PostgreSQL database
//! (see `common` for the harness; PostgreSQL being unreachable fails the tests).
//!
//! The oracle is `palier_core::replay`: whatever the arrival order, the service's
//! member documents must be exactly what `palier replay --as-of` prints for the same
//! events.

mod common;

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use palier_gen::{GenConfig, ProgramChoice};
use palier_server::auth::create_key;
use palier_server::{MAX_BATCH_EVENTS, MAX_BODY_BYTES, MAX_EVENT_BYTES};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use reqwest::Method;

use common::*;

// ---- 1. arrival order ------------------------------------------------------------------------

const SEEDS: [u64; 3] = [11, 2024, 90_210];
const ARRIVALS: [Arrival; 3] = [Arrival::OneByOne, Arrival::Batches, Arrival::Concurrent(16)];

/// 60 members of the three programs over 2 years (about 430 events).
fn mixed_stream(seed: u64) -> Vec<String> {
    generated(&GenConfig::new(ProgramChoice::All, 60, seed, Date::constant(2023, 1, 1), 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn service_equals_replay_in_random_arrival_order() {
    let mut tasks: Vec<(String, Task)> = Vec::new();
    for backend in Backend::BOTH {
        for seed in SEEDS {
            for (index, arrival) in ARRIVALS.into_iter().enumerate() {
                let label = format!("{} seed {seed} {arrival:?}", backend.name());
                let db = Db::new(backend).await;
                tasks.push((label, Box::pin(arrival_order_run(db, seed, index as u64, arrival))));
            }
        }
    }
    run_all(tasks).await;
}

async fn arrival_order_run(db: Db, seed: u64, variant: u64, arrival: Arrival) {
    let programs = programs();
    let events = mixed_stream(seed);
    let expected = replay_documents(&programs, &events, now());
    assert_eq!(expected.len(), 60, "the replay has a document for each of the 60 members");

    let server = Server::start(&db.location).await;
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(variant));
    let mut arriving = events.clone();
    arriving.shuffle(&mut rng);
    let passes = submit_until_settled(&server, arriving, arrival, Some(&mut rng)).await;
    assert!(passes >= 2, "a shuffled stream has events arriving before what they name: retries expected");

    // Every event again, in one JSON Lines body: all duplicates now.
    let again = server.post_events(&events, Format::Lines).await;
    let not_duplicate: Vec<_> =
        again.iter().zip(&events).filter(|(o, _)| !o.is("duplicate")).map(|(o, e)| (field(e, "id"), o)).collect();
    assert!(
        not_duplicate.is_empty(),
        "every event was accepted once; posted again they must be duplicates: {not_duplicate:?}"
    );
    assert_eq!(server.event_count().await, events.len() as u64, "the store holds each event once");

    assert_documents_equal(&server, &expected, NOW, "after ingestion").await;
    let server = server.restart().await;
    assert_eq!(server.event_count().await, events.len() as u64, "the store holds each event once");
    let ready = server.get("/readyz").await;
    assert_eq!(ready.json()["events"], serde_json::Value::from(events.len()), "every stored event reloaded: {ready:?}");
    assert_documents_equal(&server, &expected, NOW, "after a restart on the same store").await;
    server.stop().await;
}

// ---- 2. late events -------------------------------------------------------------------------

fn at(event: &str) -> Timestamp {
    field(event, "at").parse().unwrap_or_else(|e| panic!("at of {event}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_event_is_applied_at_its_time() {
    on_both_stores(late_event_run).await;
}

async fn late_event_run(db: Db) {
    let programs = programs();
    let mut config = GenConfig::new(ProgramChoice::All, 30, 5, Date::constant(2023, 1, 1), 2);
    config.orders_per_year = 5.0;
    let stream = generated(&config);
    // Per program, the member with the most events (order events name only their
    // order: they go to the order's member).
    let mut owner_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    for event in &stream {
        if field(event, "type") == "order.placed" {
            owner_of.insert(field(event, "order"), (field(event, "program"), field(event, "member")));
        }
    }
    let mut by_member: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for event in &stream {
        let key = match opt_field(event, "member") {
            Some(member) => (field(event, "program"), member),
            None => owner_of.get(&field(event, "order")).expect("an order event names a placed order").clone(),
        };
        by_member.entry(key).or_default().push(event.clone());
    }
    let mut chosen: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for ((program, member), events) in by_member {
        let better = chosen.get(&program).is_none_or(|(_, best)| events.len() > best.len());
        if better {
            chosen.insert(program, (member, events));
        }
    }
    assert_eq!(chosen.len(), 3, "a member of each program");

    let server = Server::start(&db.location).await;
    let mut posted: Vec<String> = Vec::new();
    for (member, events) in chosen.values() {
        let mut newest_first = events.clone();
        newest_first.sort_by_key(|e| std::cmp::Reverse(at(e)));
        assert!(newest_first.len() >= 8, "member {member} has a real history: {}", newest_first.len());
        // Newest first: after the registration, every order event lands before the
        // ones already taken, and must be applied at its own time.
        submit_until_settled(&server, newest_first, Arrival::OneByOne, None).await;
        posted.extend(events.iter().cloned());

        // Then an order placed and delivered long ago, after everything else.
        let registration = events.iter().find(|e| field(e, "type") == "member.registered").expect("a registration");
        let placed = events.iter().find(|e| field(e, "type") == "order.placed").expect("an order");
        let mut order: serde_json::Value = serde_json::from_str(placed).expect("JSON");
        let placed_at = at(registration) + 1.hour();
        order["id"] = format!("late-{member}-placed").into();
        order["order"] = format!("late-{member}").into();
        order["at"] = placed_at.to_string().into();
        let delivered = serde_json::json!({
            "id": format!("late-{member}-delivered"),
            "type": "order.delivered",
            "at": (placed_at + 72.hours()).to_string(),
            "program": field(placed, "program"),
            "order": format!("late-{member}"),
        });
        for late in [order.to_string(), delivered.to_string()] {
            let outcome = server.post_one(&late).await;
            assert!(outcome.is("accepted"), "a late event must be taken at its time: {outcome:?}\n{late}");
            posted.push(late);
        }
    }

    let expected = replay_documents(&programs, &posted, now());
    assert_eq!(expected.len(), 3);
    assert_documents_equal(&server, &expected, NOW, "newest-first arrival").await;
    // Without as_of: the service's clock, the same instant.
    for document in &expected {
        let reply = server.get(&format!("/v1/members/{}?program={}", document.member, document.program)).await;
        assert_eq!(
            reply.text,
            serde_json::to_string(document).expect("JSON"),
            "GET without as_of is at the clock's now"
        );
    }

    // In the past: at every event's instant (inclusive), just before and after it,
    // and at the start of every month of the histories, what the replay prints then.
    let mut instants: Vec<Timestamp> = Vec::new();
    for event in &posted {
        let t = at(event);
        instants.extend([t - 1.second(), t, t + 1.second()]);
    }
    let first = posted.iter().map(|e| at(e)).min().expect("events");
    let last = posted.iter().map(|e| at(e)).max().expect("events");
    let utc = jiff::tz::TimeZone::UTC;
    let mut month = first.to_zoned_datetime(utc.clone()).date().first_of_month();
    loop {
        let start = month.to_zoned_datetime(utc.clone()).expect("a UTC day").timestamp();
        if start > last + (24 * 62).hours() {
            break;
        }
        instants.push(start);
        month = month.checked_add(1.month()).expect("a month later");
    }
    instants.sort();
    instants.dedup();
    let mut mismatches = Vec::new();
    for instant in &instants {
        let as_of = instant.to_string();
        let documents = palier_core::replay(&programs, (posted.join("\n") + "\n").as_bytes(), Some(*instant));
        for (member, _) in chosen.values() {
            let program = expected.iter().find(|d| &d.member == member).expect("a document").program.clone();
            let want = documents.documents.iter().find(|d| &d.member == member);
            let reply = server.member(member, &program, &as_of).await;
            let same = match want {
                Some(document) => reply.status == 200 && reply.text == serde_json::to_string(document).expect("JSON"),
                None => {
                    reply.assert_problem(404, "unknown_member", &format!("{member} before registration, {as_of}"));
                    true
                }
            };
            if !same {
                mismatches.push(format!(
                    "member {member} as_of {as_of}:\n  replay:  {}\n  service: HTTP {} {}",
                    want.map_or("(none)".to_string(), |d| serde_json::to_string(d).expect("JSON")),
                    reply.status,
                    reply.text
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} past documents differ from `replay --as-of`; the first ones:\n{}",
        mismatches.len(),
        instants.len() * 3,
        mismatches.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    server.stop().await;
}

// ---- 3. idempotency ---------------------------------------------------------------------------

fn registration(id: &str, member: &str, country: &str) -> String {
    serde_json::json!({
        "id": id,
        "type": "member.registered",
        "at": "2024-01-01T00:00:00Z",
        "program": "net-a-porter",
        "member": member,
        "country": country,
    })
    .to_string()
}

/// Posts the bodies all at once; outcomes in the same order.
async fn race(server: &Server, bodies: &[String]) -> Vec<Outcome> {
    let handles: Vec<_> = bodies
        .iter()
        .map(|body| {
            let client = server.client.clone();
            let url = server.url("/v1/events");
            let body = body.clone();
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(ADMIN_KEY)
                    .body(body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("POST /v1/events: {e:?}"));
                let status = response.status().as_u16();
                let text = response.text().await.expect("a body");
                outcomes(&Reply { status, content_type: None, text }, 1).remove(0)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.expect("a racing client"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_under_races() {
    on_both_stores(idempotency_run).await;
}

async fn idempotency_run(db: Db) {
    let server = Server::start(&db.location).await;
    let first = registration("e-first", "m-first", "GB");
    assert!(server.post_one(&first).await.is("accepted"));
    let before = server.event_count().await;

    // 64 clients post one event id with the same body at once.
    let event = registration("e-race", "m-race", "FR");
    let answers = race(&server, &vec![event.clone(); 64]).await;
    let accepted = answers.iter().filter(|o| o.is("accepted")).count();
    let duplicate = answers.iter().filter(|o| o.is("duplicate")).count();
    assert_eq!((accepted, duplicate), (1, 63), "one accepted, 63 duplicates: {answers:?}");
    assert_eq!(server.event_count().await, before + 1, "the event is stored once");

    // The same id with another body: a conflict, and nothing stored.
    let other = registration("e-race", "m-race", "DE");
    let outcome = server.post_one(&other).await;
    assert_eq!(
        (outcome.status.as_str(), outcome.code.as_deref()),
        ("rejected", Some("duplicate_conflict")),
        "{outcome:?}"
    );
    // …even when that body would be refused for another reason.
    let unrelated = r#"{"id":"e-race","type":"order.delivered","at":"2024-02-01T00:00:00Z","program":"net-a-porter","order":"nowhere"}"#;
    let outcome = server.post_one(unrelated).await;
    assert_eq!(outcome.code.as_deref(), Some("duplicate_conflict"), "{outcome:?}");
    // The same JSON value written differently is the same body (decisions D7).
    let reordered = r#"{ "country": "FR", "member": "m-race", "program": "net-a-porter",
        "at": "2024-01-01T00:00:00Z", "type": "member.registered", "id": "e-race" }"#;
    assert!(server.post_one(&reordered.replace('\n', " ")).await.is("duplicate"));
    assert_eq!(server.event_count().await, before + 1, "neither the conflict nor the duplicate is stored");

    // Two bodies for one new id, racing: one wins; its twins are duplicates, the
    // others conflicts.
    let a = registration("e-mixed", "m-mixed", "FR");
    let b = registration("e-mixed", "m-mixed", "IT");
    let bodies: Vec<String> = (0..64).map(|i| if i % 2 == 0 { a.clone() } else { b.clone() }).collect();
    let answers = race(&server, &bodies).await;
    let winners: Vec<usize> = (0..64).filter(|i| answers[*i].is("accepted")).collect();
    assert_eq!(winners.len(), 1, "exactly one accepted: {answers:?}");
    let winner = &bodies[winners[0]];
    for (body, answer) in bodies.iter().zip(&answers).filter(|(_, o)| !o.is("accepted")) {
        if body == winner {
            assert!(answer.is("duplicate"), "the winner's body again is a duplicate: {answer:?}");
        } else {
            assert_eq!(answer.code.as_deref(), Some("duplicate_conflict"), "the other body conflicts: {answer:?}");
        }
    }
    assert_eq!(server.event_count().await, before + 2);
    let stored = server.store().event("e-mixed").await.expect("reading an event").expect("stored");
    assert_eq!(&stored.body, winner, "the store keeps the winner's body");

    let posted = [first, event.clone(), winner.clone()];
    let expected = replay_documents(&programs(), &posted, now());
    assert_documents_equal(&server, &expected, NOW, "after the races").await;

    // Idempotency survives a restart.
    let server = server.restart().await;
    assert!(server.post_one(&event).await.is("duplicate"));
    assert_eq!(server.post_one(&other).await.code.as_deref(), Some("duplicate_conflict"));
    assert_eq!(server.event_count().await, before + 2);
    assert_documents_equal(&server, &expected, NOW, "after a restart").await;
    server.stop().await;
}

// ---- 4. keys and scopes -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_matrix() {
    let db = Db::sqlite();
    let server = Server::start(&db.location).await;
    assert!(server.post_one(&registration("e-auth", "m-auth", "GB")).await.is("accepted"));
    let store = server.store().clone();
    let now_s = now().as_second();
    let scopes = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (_, writer) = create_key(&store, "writer", &scopes(&["events:write"]), now_s).await.expect("a key");
    let (_, reader) = create_key(&store, "reader", &scopes(&["members:read"]), now_s).await.expect("a key");
    let (_, admin) = create_key(&store, "admin", &scopes(&["admin"]), now_s).await.expect("a key");
    let (revoked_id, revoked) =
        create_key(&store, "revoked", &scopes(&["events:write", "members:read"]), now_s).await.expect("a key");

    // Keys made in the store count once reloaded.
    let probe = server.request(Method::GET, "/v1/programs", Some(&reader), None).await;
    probe.assert_problem(401, "unknown_key", "a key not reloaded yet");
    server.state.reload_keys().await.expect("reloading keys");
    let probe = server.request(Method::GET, "/v1/programs", Some(&revoked), None).await;
    assert_eq!(probe.status, 200, "the key works before its revocation: {probe:?}");
    assert!(store.revoke_key(&revoked_id, now_s).await.expect("revoking"));
    server.state.reload_keys().await.expect("reloading keys");

    let post = || Some(registration("e-auth-2", "m-auth-2", "GB"));
    let endpoints: Vec<(Method, &str, &str, u16)> = vec![
        (Method::POST, "/v1/events", "events:write", 200),
        (Method::GET, "/v1/members/m-auth", "members:read", 200),
        (Method::GET, "/v1/members/m-auth?program=net-a-porter", "members:read", 200),
        (Method::GET, "/v1/members/nobody", "members:read", 404),
        (Method::GET, "/v1/members?program=net-a-porter", "members:read", 200),
        (Method::GET, "/v1/members/m-auth/events", "members:read", 200),
        (Method::GET, "/v1/members/nobody/events", "members:read", 404),
        (Method::GET, "/v1/programs", "members:read", 200),
        (Method::GET, "/v1/programs/net-a-porter", "members:read", 200),
    ];
    let count_before = server.event_count().await;
    for (method, path, scope, ok) in &endpoints {
        let (right, wrong) = if *scope == "events:write" { (&writer, &reader) } else { (&reader, &writer) };
        let context = |case: &str| format!("{method} {path} with {case}");
        let send = |key: Option<String>| {
            let method = method.clone();
            let body = if method == Method::POST { post() } else { None };
            let server = &server;
            async move { server.request(method, path, key.as_deref(), body).await }
        };

        send(None).await.assert_problem(401, "missing_key", &context("no key"));
        send(Some("pk_0000000000000000000000000000000000000000".into())).await.assert_problem(
            401,
            "unknown_key",
            &context("an unknown key"),
        );
        send(Some(wrong.clone())).await.assert_problem(403, "missing_scope", &context("a key without the scope"));
        send(Some(revoked.clone())).await.assert_problem(401, "revoked_key", &context("a revoked key"));
        if *method == Method::POST {
            assert_eq!(
                server.event_count().await,
                count_before,
                "{}: a refused request stores nothing",
                context("refused keys")
            );
        }
        for (case, key) in [
            ("the right key", right.clone()),
            ("an admin key", admin.clone()),
            ("the admin key", ADMIN_KEY.to_string()),
        ] {
            let reply = send(Some(key)).await;
            assert_eq!(reply.status, *ok, "{}: {reply:?}", context(case));
            if *ok == 404 {
                reply.assert_problem(404, "unknown_member", &context(case));
            }
        }
        // Another scheme than Bearer is no key.
        let response = server
            .client
            .request(method.clone(), server.url(path))
            .header(reqwest::header::AUTHORIZATION, format!("Basic {right}"))
            .send()
            .await
            .expect("a response");
        assert_eq!(response.status().as_u16(), 401, "{}", context("a Basic scheme"));
    }

    for path in ["/healthz", "/readyz", "/metrics"] {
        let reply = server.request(Method::GET, path, None, None).await;
        assert_eq!(reply.status, 200, "{path} needs no key: {reply:?}");
        let reply = server.request(Method::GET, path, Some("pk_nonsense"), None).await;
        assert_eq!(reply.status, 200, "{path} ignores keys: {reply:?}");
    }
    server.stop().await;
}

// ---- 5. limits ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_are_enforced() {
    on_both_stores(limits_run).await;
}

/// `n` registrations whose ids are padded to `id_len` characters.
fn registrations(prefix: &str, n: usize, id_len: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut id = format!("{prefix}-{i:06}");
            while id.len() < id_len {
                id.push('x');
            }
            registration(&format!("e-{id}"), &format!("m-{id}"), "GB")
        })
        .collect()
}

async fn limits_run(db: Db) {
    let server = Server::start(&db.location).await;
    let mut failures: Vec<String> = Vec::new();

    // More than MAX_BATCH_EVENTS events: the whole request is refused.
    let too_many = registrations("many", MAX_BATCH_EVENTS + 1, 10);
    let reply = server.post_body(batch_body(&too_many, Format::Lines)).await;
    reply.assert_problem(400, "invalid_batch", "MAX_BATCH_EVENTS + 1 events");
    let reply = server.post_body(batch_body(&too_many, Format::Array)).await;
    reply.assert_problem(400, "invalid_batch", "MAX_BATCH_EVENTS + 1 events in an array");
    assert_eq!(server.event_count().await, 0, "a refused batch stores nothing");
    // Exactly MAX_BATCH_EVENTS: taken.
    let most = registrations("most", MAX_BATCH_EVENTS, 10);
    let outcomes = server.post_events(&most, Format::Lines).await;
    assert!(outcomes.iter().all(|o| o.is("accepted")), "MAX_BATCH_EVENTS events are taken");
    assert_eq!(server.event_count().await, MAX_BATCH_EVENTS as u64);

    // Ids of 128 characters are fine, of 129 refused.
    let id128 = "i".repeat(128);
    let id129 = "i".repeat(129);
    let events = [registration(&id128, "m-long-1", "GB"), registration(&id129, "m-long-2", "GB")];
    let outcomes = server.post_events(&events, Format::Array).await;
    assert!(outcomes[0].is("accepted"), "an id of 128 characters: {:?}", outcomes[0]);
    assert_eq!(
        (outcomes[1].status.as_str(), outcomes[1].code.as_deref()),
        ("rejected", Some("invalid_field")),
        "an id of 129 characters: {:?}",
        outcomes[1]
    );
    // A member id of 129 characters too.
    let outcome = server.post_one(&registration("e-long-member", &id129, "GB")).await;
    assert_eq!(outcome.code.as_deref(), Some("invalid_field"), "a member id of 129 characters: {outcome:?}");

    // An event over MAX_EVENT_BYTES is refused on its own; its neighbours are taken.
    let big = format!(
        "{{\"id\":\"e-big\",\"type\":\"member.registered\",\"at\":\"2024-01-01T00:00:00Z\",\"program\":\"net-a-porter\",\"member\":\"m-big\",\"country\":\"GB\"{}}}",
        " ".repeat(MAX_EVENT_BYTES)
    );
    let events = [registration("e-small-1", "m-small-1", "GB"), big, registration("e-small-2", "m-small-2", "GB")];
    let outcomes = server.post_events(&events, Format::Lines).await;
    assert!(outcomes[0].is("accepted") && outcomes[2].is("accepted"), "{outcomes:?}");
    assert_eq!(outcomes[1].code.as_deref(), Some("invalid_field"), "an event over MAX_EVENT_BYTES: {:?}", outcomes[1]);

    // A batch of MAX_BATCH_EVENTS events with 64-character ids is about 2.9 MB, well
    // under MAX_BODY_BYTES: it must be taken.
    let wide = registrations("wide", MAX_BATCH_EVENTS, 64);
    let body = batch_body(&wide, Format::Lines);
    assert!(body.len() > (2 << 20) && body.len() < MAX_BODY_BYTES, "{} bytes", body.len());
    let reply = server.post_body(body.clone()).await;
    if reply.status != 200 {
        failures.push(format!(
            "a body of {} bytes (under MAX_BODY_BYTES = {MAX_BODY_BYTES}) with {} events: expected HTTP 200, got HTTP {} {:?} {:?}",
            body.len(),
            wide.len(),
            reply.status,
            reply.content_type,
            reply.text.chars().take(200).collect::<String>()
        ));
    } else {
        assert!(common::outcomes(&reply, wide.len()).iter().all(|o| o.is("accepted")));
    }

    // A body over MAX_BODY_BYTES: 413, as problem JSON, and nothing stored.
    let count = server.event_count().await;
    // One byte over: the server reads it all before refusing, so nothing is left
    // unread to reset the connection.
    let event = "{\"id\":\"e-huge\",\"type\":\"member.registered\",\"at\":\"2024-01-01T00:00:00Z\",\"program\":\"net-a-porter\",\"member\":\"m-huge\",\"country\":\"GB\"}";
    let huge = format!("{event}{}", " ".repeat(MAX_BODY_BYTES + 1 - event.len()));
    assert_eq!(huge.len(), MAX_BODY_BYTES + 1);
    let huge_len = huge.len();
    let reply = server.post_raw(huge.into_bytes(), huge_len).await;
    if let Err(message) = reply.check_problem(413, "body_too_large", &format!("a body of {huge_len} bytes")) {
        failures.push(message);
    }
    let after = server.event_count().await;
    assert!(after == count, "a body over the limit stores nothing ({count} → {after})");

    server.stop().await;
    assert!(failures.is_empty(), "{} limit check(s) failed:\n{}", failures.len(), failures.join("\n"));
}
