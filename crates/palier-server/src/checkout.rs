//! Checkout and wallet endpoints (docs/wallet.md): quotes, holds, ledgers,
//! adjustments and one-time codes.
//!
//! Every write is an event decided by the single ingest writer against the live
//! state, like any posted event: a hold is a `checkout.held` event, a release a
//! `checkout.released`, an adjustment a `ledger.adjusted`. Concurrent checkouts are
//! therefore decided one at a time, and a once-only code or a balance can be
//! reserved only once.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use palier_core::calendar::format_instant;
use palier_core::checkout::{Quote, quote};
use palier_core::event::{BasketRequest, LedgerKind, parse_basket};
use palier_core::member::HoldState;
use palier_core::money::{Currency, Minor};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::live::Decision;
use crate::{AppState, Problem, authorize, authorize_member, named_or_only_program, parse_as_of, program_of};

#[derive(Deserialize)]
pub(crate) struct ProgramQuery {
    program: Option<String>,
}

fn invalid(detail: String) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_basket", detail)
}

/// The program and member a basket names, and the basket.
fn basket_of(state: &AppState, body: &str, program: Option<&str>) -> Result<(usize, BasketRequest), Problem> {
    let basket = parse_basket(body).map_err(|r| invalid(format!("{}: {}", r.code.as_str(), r.message)))?;
    let named =
        program.map(str::to_string).or_else(|| serde_json::from_str::<ProgramField>(body).ok().and_then(|p| p.program));
    let program = match named {
        Some(named) => named_or_only_program(state, Some(&named))?,
        None => program_of(state, &basket.member, None)?,
    };
    Ok((program, basket))
}

fn unknown_member(member: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "unknown_member", format!("member {member:?} is not registered"))
}

#[derive(Deserialize)]
struct ProgramField {
    program: Option<String>,
}

#[derive(Deserialize)]
struct AtField {
    at: Option<String>,
}

/// The instant a hold is taken: the body's `at` (for retailers that stamp their
/// checkouts with their own clock, so that the order placed later is after it), or
/// now.
fn hold_instant(body: &str, now: Timestamp) -> Result<Timestamp, Problem> {
    match serde_json::from_str::<AtField>(body).ok().and_then(|f| f.at) {
        Some(text) => text
            .parse::<Timestamp>()
            .map_err(|_| invalid(format!("at: {text:?} is not an RFC 3339 instant with an offset"))),
        None => Ok(now),
    }
}

fn amount(currency: Currency, value: Minor) -> String {
    currency.format(value)
}

fn quote_json(quote: &Quote) -> Value {
    let currency = quote.currency;
    let codes: Vec<Value> = quote
        .codes
        .iter()
        .map(|decision| match &decision.outcome {
            Ok(accepted) => json!({
                "code": decision.code,
                "status": "accepted",
                "promotion": accepted.promotion,
                "discount": amount(currency, Minor(accepted.discounts.iter().map(|d| d.0).sum())),
                "earns_points": accepted.earns_points,
            }),
            Err(refusal) => json!({
                "code": decision.code,
                "status": "refused",
                "reason": refusal.as_str(),
                "message": refusal.explain(),
            }),
        })
        .collect();
    json!({
        "member": quote.member,
        "currency": currency.code(),
        "codes": codes,
        "lines": quote.line_discounts.iter().map(|(line, discount)| json!({"line": line, "code_discount": amount(currency, *discount)})).collect::<Vec<_>>(),
        "goods": amount(currency, quote.goods),
        "delivery": amount(currency, quote.delivery),
        "duties": amount(currency, quote.duties),
        "total": amount(currency, quote.total),
        "points": {"requested": quote.points_requested, "max": quote.points_max},
        "store_credit": {"requested": amount(currency, quote.store_credit_requested), "max": amount(currency, quote.store_credit_max)},
        "to_pay": amount(currency, quote.to_pay),
        "eligible_value": amount(currency, quote.eligible_value),
        "points_earned": quote.points_earned,
        "holdable": quote.holdable(),
        "problems": quote.problems.iter().map(|p| json!({"code": p.code, "message": p.message})).collect::<Vec<_>>(),
    })
}

/// `POST /v1/checkout/quote`: prices a basket now. Writes nothing.
pub(crate) async fn post_quote(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ProgramQuery>,
    body: String,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "checkout:write")?;
    let (program, basket) = basket_of(&state, &body, query.program.as_deref())?;
    let live = &state.inner.live.programs[program];
    let now = state.inner.clock.now();
    let quote = live
        .with_member_at(&basket.member, now, |member| quote(&live.program, member, &basket, now))
        .ok_or_else(|| unknown_member(&basket.member))?;
    Ok(Json(quote_json(&quote)).into_response())
}

fn hold_json(hold: &HoldState, program: &str, member: &str) -> Value {
    json!({
        "hold": hold.hold,
        "program": program,
        "member": member,
        "status": hold.status.as_str(),
        "at": format_instant(hold.at),
        "expires_at": format_instant(hold.expires_at),
        "codes": hold.codes,
        "points": hold.points,
        "store_credit_minor": hold.store_credit,
        "order": hold.order,
        "ended_at": hold.ended_at.map(format_instant),
    })
}

/// Submits one event built by the service and returns its decision.
async fn submit(state: &AppState, program: usize, event: Value) -> Result<Decision, Problem> {
    let mut results = state.submit_texts(vec![event.to_string()], Some(program)).await?;
    Ok(results.pop().map_or(Decision::Duplicate, |(_, decision)| decision))
}

fn rejected(rejection: palier_core::Rejection) -> Problem {
    Problem::new(StatusCode::CONFLICT, rejection.code.as_str(), rejection.message)
}

/// `POST /v1/checkout/holds`: quotes the basket and holds its codes, points and
/// store credit (an `Idempotency-Key` header is required: the same key gives the
/// same hold back).
pub(crate) async fn post_hold(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ProgramQuery>,
    body: String,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "checkout:write")?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).filter(|k| !k.is_empty() && k.len() <= 128);
    let Some(key) = key else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
            "send an Idempotency-Key header (1–128 characters) so that a retried hold is not taken twice",
        ));
    };
    let (program, basket) = basket_of(&state, &body, query.program.as_deref())?;
    let now = hold_instant(&body, state.inner.clock.now())?;
    let live = &state.inner.live.programs[program];
    let digest = Sha256::digest(format!("{}\u{0}{}\u{0}{key}", live.program.id, basket.member).as_bytes());
    let hold_id: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let hold_id = format!("h-{hold_id}");
    // The hold this key took before, if any, else the quote: read without copying
    // the member.
    let earlier = live
        .with_member_at(&basket.member, now, |member| match member.holds.iter().find(|h| h.hold == hold_id) {
            Some(existing) => {
                let same = existing.codes == basket.codes
                    && existing.points == basket.points
                    && existing.store_credit == basket.store_credit.0;
                Err(same.then(|| hold_json(existing, &live.program.id, &basket.member)))
            }
            None => Ok(quote(&live.program, member, &basket, now)),
        })
        .ok_or_else(|| unknown_member(&basket.member))?;
    let quote = match earlier {
        Ok(quote) => quote,
        Err(Some(existing)) => {
            return Ok((StatusCode::OK, Json(json!({"hold": existing, "replayed": true}))).into_response());
        }
        Err(None) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                format!("Idempotency-Key {key:?} was used for another basket"),
            ));
        }
    };
    if !quote.holdable() {
        let first = &quote.problems[0];
        let mut problem = Problem::new(StatusCode::CONFLICT, first.code, first.message.clone());
        problem.extra = Some(json!({"quote": quote_json(&quote)}));
        return Err(problem);
    }
    let mut event = json!({
        "id": format!("{hold_id}-held"),
        "type": "checkout.held",
        "at": format_instant_nanos(now),
        "program": live.program.id,
        "member": basket.member,
        "hold": hold_id,
        "codes": basket.codes,
        "points": basket.points,
    });
    if basket.store_credit > Minor::ZERO {
        event["store_credit"] = json!(basket.currency.format(basket.store_credit));
        event["currency"] = json!(basket.currency.code());
    }
    match submit(&state, program, event).await? {
        Decision::Accepted | Decision::Duplicate => {
            let hold = live
                .with_member_at(&basket.member, now, |member| {
                    member
                        .holds
                        .iter()
                        .find(|h| h.hold == hold_id)
                        .map(|h| hold_json(h, &live.program.id, &basket.member))
                })
                .flatten()
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "hold_lost",
                        "the hold was accepted but is not found",
                    )
                })?;
            let body = json!({"hold": hold, "quote": quote_json(&quote)});
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Decision::Rejected(rejection) => Err(rejected(rejection)),
    }
}

/// Instants the service writes into events: RFC 3339 in UTC, to the nanosecond.
fn format_instant_nanos(at: Timestamp) -> String {
    at.to_string()
}

fn find_hold(state: &AppState, id: &str, program: Option<&str>) -> Result<(usize, String), Problem> {
    let live = &state.inner.live;
    let candidates: Vec<usize> = match program {
        Some(named) => vec![named_or_only_program(state, Some(named))?],
        None => (0..live.programs.len()).collect(),
    };
    candidates
        .into_iter()
        .find_map(|p| live.programs[p].hold_owner(id).map(|m| (p, m.to_string())))
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "unknown_hold", format!("hold {id:?} does not exist")))
}

/// `GET /v1/checkout/holds/{id}`.
pub(crate) async fn get_hold(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "checkout:write")?;
    let (program, member_id) = find_hold(&state, &id, query.program.as_deref())?;
    let live = &state.inner.live.programs[program];
    let member = live
        .member_at(&member_id, state.inner.clock.now())
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "unknown_hold", format!("hold {id:?} does not exist")))?;
    let hold =
        member.holds.iter().find(|h| h.hold == id).ok_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND, "unknown_hold", format!("hold {id:?} does not exist"))
        })?;
    Ok(Json(hold_json(hold, &live.program.id, &member_id)).into_response())
}

/// `DELETE /v1/checkout/holds/{id}`: releases an open hold (idempotent: releasing
/// a released hold answers with its state).
pub(crate) async fn delete_hold(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "checkout:write")?;
    let (program, member_id) = find_hold(&state, &id, query.program.as_deref())?;
    let live = &state.inner.live.programs[program];
    let now = state.inner.clock.now();
    let release_id = format!("{id}-released");
    if state.inner.live.known(&release_id).is_some() {
        let member = live.member_at(&member_id, now);
        if let Some(hold) = member.as_ref().and_then(|m| m.holds.iter().find(|h| h.hold == id)) {
            return Ok(Json(hold_json(hold, &live.program.id, &member_id)).into_response());
        }
    }
    let event = json!({
        "id": release_id,
        "type": "checkout.released",
        "at": format_instant_nanos(now),
        "program": live.program.id,
        "member": member_id,
        "hold": id,
    });
    let decision = submit(&state, program, event).await?;
    let member = live.member_at(&member_id, now);
    let hold = member.as_ref().and_then(|m| m.holds.iter().find(|h| h.hold == id));
    match (decision, hold) {
        (Decision::Rejected(rejection), Some(hold)) if hold.status.as_str() != "released" => {
            let mut problem = rejected(rejection);
            problem.extra = Some(json!({"hold": hold_json(hold, &live.program.id, &member_id)}));
            Err(problem)
        }
        (_, Some(hold)) => Ok(Json(hold_json(hold, &live.program.id, &member_id)).into_response()),
        (Decision::Rejected(rejection), None) => Err(rejected(rejection)),
        (_, None) => Err(Problem::new(StatusCode::NOT_FOUND, "unknown_hold", format!("hold {id:?} does not exist"))),
    }
}

#[derive(Deserialize)]
pub(crate) struct LedgerQuery {
    kind: Option<String>,
    program: Option<String>,
    as_of: Option<String>,
}

/// `GET /v1/members/{id}/ledger?kind=points|store_credit`: the entries, oldest
/// first, and the balances they sum to.
pub(crate) async fn get_ledger(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<LedgerQuery>,
) -> Result<Response, Problem> {
    let (program, _) = authorize_member(&state, &headers, "members:read", &id, query.program.as_deref())?;
    let as_of = parse_as_of(&state, query.as_of.as_deref())?;
    let kind = match query.kind.as_deref() {
        Some("points") | None => LedgerKind::Points,
        Some("store_credit") => LedgerKind::StoreCredit,
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_kind",
                format!("kind: {other:?} is not points or store_credit"),
            ));
        }
    };
    let live = &state.inner.live.programs[program];
    let member = live.journaled(&id, as_of).ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "unknown_member", format!("member {id:?} is not registered"))
    })?;
    let currency = member.currency;
    let show = |value: i64| match (kind, currency) {
        (LedgerKind::StoreCredit, Some(c)) => json!(c.format(Minor(value))),
        _ => json!(value),
    };
    let entries: Vec<Value> = member
        .ledger()
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| {
            json!({
                "at": format_instant(e.at),
                "reason": e.reason.as_str(),
                "bucket": e.bucket.as_str(),
                "amount": show(e.amount),
                "expires_at": e.expires_at.map(format_instant),
                "order": e.order,
                "hold": e.hold,
                "note": e.note,
            })
        })
        .collect();
    use palier_core::ledger::{Bucket, sum};
    let balances = json!({
        "available": show(sum(member.ledger(), kind, Bucket::Available)),
        "pending": show(sum(member.ledger(), kind, Bucket::Pending)),
        "held": show(sum(member.ledger(), kind, Bucket::Held)),
    });
    Ok(Json(json!({
        "member": id,
        "program": live.program.id,
        "kind": kind.as_str(),
        "currency": currency.map(|c| c.code().to_string()),
        "as_of": format_instant(as_of),
        "balances": balances,
        "entries": entries,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct AdjustmentRequest {
    ledger: String,
    amount: String,
    note: String,
    currency: Option<String>,
    expires_at: Option<String>,
}

/// `POST /v1/members/{id}/ledger/adjustments`: an operator's entry, with its note.
/// `Idempotency-Key` (optional) makes a retry harmless.
pub(crate) async fn post_adjustment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
    Json(request): Json<AdjustmentRequest>,
) -> Result<Response, Problem> {
    let operator = authorize(&state, &headers, "ledger:write")?;
    let program = program_of(&state, &id, query.program.as_deref())?;
    let live = &state.inner.live.programs[program];
    let now = state.inner.clock.now();
    let event_id = event_id_for(&headers, "adj");
    if state.inner.live.known(&event_id).is_some() {
        return Ok(Json(json!({"event": event_id, "status": "duplicate"})).into_response());
    }
    let mut event = json!({
        "id": event_id,
        "type": "ledger.adjusted",
        "at": format_instant_nanos(now),
        "program": live.program.id,
        "member": id,
        "ledger": request.ledger,
        "amount": request.amount,
        "note": format!("{} (by key {operator})", request.note.trim()),
    });
    if let Some(currency) = request.currency {
        event["currency"] = json!(currency);
    }
    if let Some(expires_at) = request.expires_at {
        event["expires_at"] = json!(expires_at);
    }
    let audit = state.audit_entry(
        &operator,
        "ledger.adjusted",
        program,
        &id,
        // The event id may hold what a client chose (its Idempotency-Key): the trail
        // keeps only a digest of it, so no client text can carry personal data there.
        json!({"event_sha256": hex_digest(&event_id), "ledger": event["ledger"], "amount": event["amount"]}),
    );
    let decision = state.submit_one(event.to_string(), program, Some(audit)).await?;
    let status = if decision == Decision::Duplicate { "duplicate" } else { "accepted" };
    crate::written(decision, json!({"event": event_id, "status": status}))
}

/// An event id from the request's `Idempotency-Key`, or a fresh random one.
fn event_id_for(headers: &HeaderMap, prefix: &str) -> String {
    match headers.get("idempotency-key").and_then(|v| v.to_str().ok()).filter(|k| !k.is_empty() && k.len() <= 100) {
        Some(key) => format!("{prefix}-{key}"),
        None => format!("{prefix}-{}", fresh_id()),
    }
}

/// The first 12 bytes of a text's SHA-256, in hex.
fn hex_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// 24 random hex digits.
pub(crate) fn fresh_id() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
pub(crate) struct IssueRequest {
    promotion: String,
    code: Option<String>,
}

/// `POST /v1/members/{id}/codes`: issues a one-time code of a promotion to the
/// member (a fresh unique code unless one is given).
pub(crate) async fn post_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
    Json(request): Json<IssueRequest>,
) -> Result<Response, Problem> {
    let operator = authorize(&state, &headers, "ledger:write")?;
    let program = program_of(&state, &id, query.program.as_deref())?;
    let live = &state.inner.live.programs[program];
    let event_id = event_id_for(&headers, "code");
    // The code is drawn from the event id, so a retry with the same key names the
    // same code.
    let code = request.code.unwrap_or_else(|| {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let digest = Sha256::digest(format!("{id}\u{0}{event_id}").as_bytes());
        let tail: String = digest[..10].iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
        format!("{}-{tail}", request.promotion)
    });
    if state.inner.live.known(&event_id).is_some() {
        return Ok(Json(json!({"code": code, "promotion": request.promotion, "member": id})).into_response());
    }
    let event = json!({
        "id": event_id,
        "type": "code.issued",
        "at": format_instant_nanos(state.inner.clock.now()),
        "program": live.program.id,
        "member": id,
        "code": code,
        "promotion": request.promotion,
    });
    let audit = state.audit_entry(&operator, "code.issued", program, &id, json!({"promotion": request.promotion}));
    let decision = state.submit_one(event.to_string(), program, Some(audit)).await?;
    crate::written(decision, json!({"code": code, "promotion": request.promotion, "member": id}))
}
