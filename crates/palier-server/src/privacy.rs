//! Privacy: consent, rectification, export, erasure, member tokens and the audit
//! trail (programs.md §6, docs/privacy.md).
//!
//! Erasure replaces a member's personal data by a pseudonym everywhere it is
//! stored: the event log is rewritten in place (the only change ever made to a
//! stored event), the live state is rebuilt from the rewritten events, and a
//! `member.erased` event with its audit entry is appended. It runs inside the
//! ingest writer, so no event of the member is decided meanwhile. What the rules
//! need keeps its effect: the birth date becomes its month and day (birthday
//! bonuses), amounts, orders and instants are untouched, so every ledger sum and
//! program total is the same after as before.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use palier_core::calendar::format_instant;
use palier_core::event::{Event, Id, LedgerKind, parse_event};
use palier_core::member::Member;
use palier_core::privacy::ConsentChannel;
use palier_store::{EventRewrite, NewAudit, NewEvent, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::ingest::body_hash;
use crate::live::{Decision, Live};
use crate::{AppState, Problem, authorize, authorize_member, parse_as_of, program_of, store_failed};

/// Errors of [`erase`] that leave the store behind the live state start with this:
/// ingestion then stops, as after any failed commit.
pub const STORE_FAILED: &str = "store: ";

/// The pseudonym of a member: a keyed hash of program and id, so it cannot be
/// turned back into the id without the service's secret. Audit entries name
/// members by it from the start, so erasure never has to touch the audit trail.
pub fn pseudonym(secret: &[u8], program: &str, member: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(secret);
    hasher.update(program.as_bytes());
    hasher.update([0]);
    hasher.update(member.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("anon-{hex}")
}

pub struct EraseRequest {
    pub program: usize,
    pub member: String,
    pub pseudonym: String,
    pub at: Timestamp,
    pub actor: String,
    pub retention_months: i64,
}

#[derive(Debug)]
pub struct EraseReport {
    pub pseudonym: String,
    pub events_rewritten: usize,
    /// Events younger than the retention period (kept pseudonymised, as all are).
    pub within_retention: usize,
}

/// The fields of an event palier reads (the contract and its additions); anything
/// else a sender put in an event is dropped by erasure, since palier cannot tell
/// what it holds.
const EVENT_FIELDS: &[&str] = &[
    "id",
    "type",
    "at",
    "program",
    "member",
    "country",
    "birth_date",
    "birthday",
    "name",
    "email",
    "staff",
    "guardian_consent",
    "order",
    "currency",
    "channel",
    "lines",
    "delivery",
    "duties",
    "payments",
    "codes",
    "hold",
    "expires_at",
    "points",
    "store_credit",
    "code",
    "promotion",
    "ledger",
    "amount",
    "note",
    "sale",
    "items",
    "line",
    "granted",
    "source",
    "text_version",
    "benefit",
];
const LINE_FIELDS: &[&str] = &[
    "line",
    "sku",
    "brand",
    "category",
    "quantity",
    "price",
    "discount",
    "tax",
    "on_sale",
    "badges",
    "size",
    "available",
];
const PAYMENT_FIELDS: &[&str] = &["method", "amount"];

fn keep_known(value: &mut Value, known: &[&str]) {
    if let Value::Object(fields) = value {
        fields.retain(|key, _| known.contains(&key.as_str()));
    }
}

/// Replaces personal data in one event body: the member id (wherever it appears in
/// a string), name, e-mail, free-text notes and any field palier does not know; the
/// birth date becomes `birthday` (month and day, what the birthday rules need).
fn pseudonymise(value: &mut Value, member: &str, pseudonym: &str) {
    keep_known(value, EVENT_FIELDS);
    if let Value::Object(fields) = value {
        for (list, known) in [("lines", LINE_FIELDS), ("items", LINE_FIELDS), ("payments", PAYMENT_FIELDS)] {
            if let Some(Value::Array(items)) = fields.get_mut(list) {
                items.iter_mut().for_each(|item| keep_known(item, known));
            }
        }
        fields.remove("name");
        fields.remove("email");
        if let Some(Value::String(date)) = fields.remove("birth_date")
            && date.len() == 10
            && !fields.contains_key("birthday")
        {
            fields.insert("birthday".into(), Value::String(date[5..].to_string()));
        }
        if fields.contains_key("note") {
            fields.insert("note".into(), Value::String("[erased]".into()));
        }
    }
    replace_strings(value, member, pseudonym);
}

fn replace_strings(value: &mut Value, member: &str, pseudonym: &str) {
    match value {
        Value::String(text) if text.contains(member) => *text = text.replace(member, pseudonym),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, member, pseudonym)),
        Value::Object(fields) => fields.values_mut().for_each(|v| replace_strings(v, member, pseudonym)),
        _ => {}
    }
}

/// Erases a member (run by the ingest writer: nothing else writes meanwhile).
pub async fn erase(
    live: &Live,
    store: &Store,
    next_seq: &mut u64,
    request: EraseRequest,
) -> Result<EraseReport, String> {
    let program = &live.programs[request.program];
    let program_id = program.program.id.clone();
    let (member, alias) = (request.member.as_str(), request.pseudonym.as_str());
    if !program.contains(member) {
        return Err(format!("unknown_member: member {member:?} is not registered"));
    }
    let stored = store.member_events(&program_id, member).await.map_err(|e| e.to_string())?;
    // Calendar months in the program's zone, like every period of the rules.
    let retention_start =
        program.program.calendar.add_months(request.at, -request.retention_months).as_nanosecond() as i64;
    let mut rewrites = Vec::with_capacity(stored.len());
    let mut events: Vec<(u64, Event)> = Vec::with_capacity(stored.len());
    let mut ids = Vec::with_capacity(stored.len());
    for event in &stored {
        let mut body: Value =
            serde_json::from_str(&event.body).map_err(|e| format!("stored event {}: {e}", event.seq))?;
        pseudonymise(&mut body, member, alias);
        let text = body.to_string();
        let hash = body_hash(&text);
        let parsed = parse_event(&text).map_err(|r| format!("rewritten event {}: {r}", event.seq))?;
        ids.push((Id::from(event.id.as_str()), parsed.id.clone(), hash));
        events.push((event.seq as u64, parsed));
        rewrites.push(EventRewrite {
            seq: event.seq,
            id: event.id.replace(member, alias),
            member: alias.to_string(),
            order: event.order.as_ref().map(|o| o.replace(member, alias)),
            body: text,
            body_sha256: hash,
        });
    }
    let within_retention = stored.iter().filter(|e| e.at_unix_nanos >= retention_start).count();
    // The notifications recorded for the member name the pseudonym too; first, so
    // that the rewrite's checkpoint leaves no old page of theirs either (a retried
    // erasure finds them done).
    store.pseudonymise_outbox(&program_id, member, alias).await.map_err(|e| e.to_string())?;
    // One transaction: if it fails nothing changed, here or in the live state.
    store.rewrite_events(&rewrites).await.map_err(|e| e.to_string())?;
    program.replace_member(member, Id::from(alias), events).map_err(|r| format!("{STORE_FAILED}rebuilding: {r}"))?;
    live.replace_ids(&ids);

    let marker = json!({
        "id": format!("erase-{alias}"),
        "type": "member.erased",
        "at": request.at.to_string(),
        "program": program_id,
        "member": alias,
    })
    .to_string();
    let event = parse_event(&marker).map_err(|r| format!("{STORE_FAILED}the erasure event: {r}"))?;
    let hash = body_hash(&marker);
    let stored_event = NewEvent {
        id: event.id.to_string(),
        program: program_id.clone(),
        member: alias.to_string(),
        order: None,
        at_unix_nanos: event.at.as_nanosecond() as i64,
        body: marker,
        body_sha256: hash,
        received_unix_nanos: request.at.as_nanosecond() as i64,
    };
    match live.decide(request.program, event, hash, *next_seq) {
        Decision::Accepted => *next_seq += 1,
        Decision::Duplicate => {}
        Decision::Rejected(r) => return Err(format!("{STORE_FAILED}the erasure event: {r}")),
    }
    let audit = NewAudit {
        at_unix_nanos: request.at.as_nanosecond() as i64,
        actor: request.actor.clone(),
        action: "member.erased".into(),
        subject: alias.to_string(),
        detail:
            json!({"program": program_id, "events_rewritten": rewrites.len(), "within_retention": within_retention})
                .to_string(),
    };
    store.append_with_audit(&[stored_event], &[audit]).await.map_err(|e| format!("{STORE_FAILED}{e}"))?;
    Ok(EraseReport { pseudonym: alias.to_string(), events_rewritten: rewrites.len(), within_retention })
}

// ---- endpoints -----------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct ProgramQuery {
    program: Option<String>,
    as_of: Option<String>,
}

fn unknown(id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "unknown_member", format!("member {id:?} is not registered"))
}

fn consent_json(member: &Member) -> Value {
    let current: serde_json::Map<String, Value> = ConsentChannel::ALL
        .iter()
        .map(|channel| {
            let last = member.consents().iter().rev().find(|c| c.channel == *channel);
            let value = match last {
                Some(c) => json!({"granted": c.granted, "at": format_instant(c.at), "source": c.source, "text_version": c.text_version}),
                None => json!({"granted": false, "at": null, "source": null, "text_version": null}),
            };
            (channel.as_str().to_string(), value)
        })
        .collect();
    let history: Vec<Value> = member
        .consents()
        .iter()
        .map(|c| {
            json!({"at": format_instant(c.at), "channel": c.channel.as_str(), "granted": c.granted, "source": c.source, "text_version": c.text_version})
        })
        .collect();
    json!({"current": current, "history": history})
}

/// `GET /v1/members/{id}/consents`: the current consent per channel and every change.
pub(crate) async fn get_consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
) -> Result<Response, Problem> {
    let (program, _) = authorize_member(&state, &headers, "members:read", &id, query.program.as_deref())?;
    let as_of = parse_as_of(&state, query.as_of.as_deref())?;
    let member = state.inner.live.programs[program].member_at(&id, as_of).ok_or_else(|| unknown(&id))?;
    let mut body = consent_json(&member);
    body["member"] = json!(id);
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ConsentRequest {
    channel: String,
    granted: bool,
    text_version: String,
    source: Option<String>,
}

/// `POST /v1/members/{id}/consents`: a consent change, by the member (token) or by
/// staff (key with `members:write`; audited).
pub(crate) async fn post_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
    Json(request): Json<ConsentRequest>,
) -> Result<Response, Problem> {
    let (program, caller) = authorize_member(&state, &headers, "members:write", &id, query.program.as_deref())?;
    let source = match &caller {
        // A member names only where they acted from; `staff:…` is the service's to write.
        Caller::Member { .. } => match request.source.as_deref() {
            Some(place @ ("web" | "app" | "store")) => format!("member:{place}"),
            _ => "member".to_string(),
        },
        Caller::Key(key) => format!("staff:{key}"),
    };
    let now = state.inner.clock.now();
    let program_id = state.inner.live.programs[program].program.id.clone();
    let event = json!({
        "id": format!("consent-{}", crate::checkout::fresh_id()),
        "type": "consent.changed",
        "at": now.to_string(),
        "program": program_id,
        "member": id,
        "channel": request.channel,
        "granted": request.granted,
        "source": source,
        "text_version": request.text_version,
    });
    let audit = match &caller {
        Caller::Key(key) => Some(state.audit_entry(
            key,
            "consent.changed",
            program,
            &id,
            json!({"channel": request.channel, "granted": request.granted}),
        )),
        Caller::Member { .. } => None,
    };
    let decision = state.submit_one(event.to_string(), program, audit).await?;
    crate::written(decision, json!({"member": id, "channel": request.channel, "granted": request.granted}))
}

#[derive(Deserialize)]
pub(crate) struct ProfileRequest {
    country: Option<String>,
    birth_date: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

/// `POST /v1/members/{id}/profile`: a correction (rectification), kept as a
/// `member.updated` event; by staff it is audited.
pub(crate) async fn post_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
    Json(request): Json<ProfileRequest>,
) -> Result<Response, Problem> {
    let (program, caller) = authorize_member(&state, &headers, "members:write", &id, query.program.as_deref())?;
    let now = state.inner.clock.now();
    let program_id = state.inner.live.programs[program].program.id.clone();
    let mut event = json!({
        "id": format!("profile-{}", crate::checkout::fresh_id()),
        "type": "member.updated",
        "at": now.to_string(),
        "program": program_id,
        "member": id,
    });
    let mut fields = Vec::new();
    for (name, value) in [
        ("country", request.country),
        ("birth_date", request.birth_date),
        ("name", request.name),
        ("email", request.email),
    ] {
        if let Some(value) = value {
            event[name] = json!(value);
            fields.push(name);
        }
    }
    if fields.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_correction",
            "name at least one of country, birth_date, name, email",
        ));
    }
    let audit = match &caller {
        Caller::Key(key) => Some(state.audit_entry(key, "member.rectified", program, &id, json!({"fields": fields}))),
        Caller::Member { .. } => None,
    };
    let decision = state.submit_one(event.to_string(), program, audit).await?;
    crate::written(decision, json!({"member": id, "corrected": fields}))
}

fn ledger_entries(member: &Member, kind: LedgerKind) -> Vec<Value> {
    member
        .ledger()
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| {
            let amount = match (kind, member.currency) {
                (LedgerKind::StoreCredit, Some(c)) => json!(c.format(palier_core::money::Minor(e.amount))),
                _ => json!(e.amount),
            };
            json!({
                "at": format_instant(e.at), "reason": e.reason.as_str(), "bucket": e.bucket.as_str(), "amount": amount,
                "expires_at": e.expires_at.map(format_instant), "order": e.order, "hold": e.hold, "note": e.note,
            })
        })
        .collect()
}

/// Everything palier holds on a member, as one document (access right).
pub async fn export_member(state: &AppState, program: usize, id: &str) -> Result<Value, Problem> {
    let live = &state.inner.live.programs[program];
    let now = state.inner.clock.now();
    let member = live.journaled(id, now).ok_or_else(|| unknown(id))?;
    let stored = state.inner.store.member_events(&live.program.id, id).await.map_err(store_failed)?;
    let events: Vec<Value> = stored
        .iter()
        .map(|e| {
            let body = serde_json::from_str::<Value>(&e.body).unwrap_or(Value::String(e.body.clone()));
            json!({"seq": e.seq, "received_at": Timestamp::from_nanosecond(i128::from(e.received_unix_nanos)).map(format_instant).ok(), "event": body})
        })
        .collect();
    let document = live.document(id, now);
    let query = palier_store::outbox::NotificationQuery {
        program: Some(live.program.id.clone()),
        member: Some(id.to_string()),
        limit: 10_000,
        ..Default::default()
    };
    let notifications: Vec<Value> = state
        .inner
        .store
        .notifications(&query)
        .await
        .map_err(crate::store_failed)?
        .into_iter()
        .map(|n| {
            json!({
                "id": n.id, "kind": n.kind, "section": n.section,
                "at": Timestamp::from_nanosecond(i128::from(n.at_unix_nanos)).map(format_instant).ok(),
                "payload": serde_json::from_str::<Value>(&n.payload).unwrap_or(Value::Null),
                "deliveries": n.deliveries.iter().map(|d| json!({"destination": d.destination, "status": d.status().as_str(), "attempts": d.attempts})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let profile = json!({
        "country": member.country,
        "birth_date": member.birth_date.as_ref().map(|d| d.expose().to_string()),
        "birthday": member.birthday.map(|(m, d)| format!("{m:02}-{d:02}")),
        "name": member.name().map(|n| n.expose().clone()),
        "email": member.email().map(|e| e.expose().clone()),
        "staff": member.staff,
        "guardian_consent": member.guardian_consent,
        "registered_at": format_instant(member.registered_at),
        "erased_at": member.erased_at.map(format_instant),
    });
    let corrections: Vec<Value> = member
        .profile_changes()
        .iter()
        .map(|(at, fields)| json!({"at": format_instant(*at), "fields": fields}))
        .collect();
    let holds: Vec<Value> = member
        .holds
        .iter()
        .map(|h| json!({"hold": h.hold, "status": h.status.as_str(), "at": format_instant(h.at), "expires_at": format_instant(h.expires_at), "codes": h.codes, "points": h.points, "store_credit_minor": h.store_credit, "order": h.order}))
        .collect();
    Ok(json!({
        "member": id,
        "program": live.program.id,
        "exported_at": format_instant(now),
        "profile": profile,
        "profile_corrections": corrections,
        "consents": consent_json(&member),
        "document": document,
        "events": events,
        "ledgers": {
            "points": ledger_entries(&member, LedgerKind::Points),
            "store_credit": ledger_entries(&member, LedgerKind::StoreCredit),
        },
        "holds": holds,
        "codes": {
            "issued": member.issued_codes.iter().map(|c| json!({"code": c.code, "promotion": c.promotion, "at": format_instant(c.at)})).collect::<Vec<_>>(),
            "used": member.used_codes.iter().map(|c| json!({"code": c.code, "promotion": c.promotion, "order": c.order})).collect::<Vec<_>>(),
        },
        "entitlements": member.grants.iter().map(|g| json!({
            "benefit": g.benefit.as_str(), "tier": live.program.tiers[g.tier].id, "granted_at": format_instant(g.granted_at.get()),
            "units": g.units, "used": g.uses.iter().map(|(at, _)| format_instant(*at)).collect::<Vec<_>>(),
            "expires_at": g.expires_at.map(format_instant), "withdrawn_at": g.withdrawn_at.map(format_instant),
        })).collect::<Vec<_>>(),
        "notifications": notifications,
        "stored": {
            "event_log": "every event above, as received (after an erasure: pseudonymised)",
            "audit_log": "operator actions name the member only by pseudonym",
        },
    }))
}

/// `GET /v1/members/{id}/export`: the access right, for the member (token) or staff
/// (`privacy` scope; audited).
pub(crate) async fn get_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
) -> Result<Response, Problem> {
    let (program, caller) = authorize_member(&state, &headers, "privacy", &id, query.program.as_deref())?;
    let export = export_member(&state, program, &id).await?;
    if let Caller::Key(key) = &caller {
        let audit = state.audit_entry(key, "member.exported", program, &id, json!({}));
        state.inner.store.append_audit(&audit).await.map_err(store_failed)?;
    }
    Ok(Json(export).into_response())
}

/// `POST /v1/members/{id}/erase`: replaces the member's personal data by a pseudonym
/// everywhere it is stored (`privacy` scope; audited).
pub(crate) async fn post_erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
) -> Result<Response, Problem> {
    let key = authorize(&state, &headers, "privacy")?;
    let program = program_of(&state, &id, query.program.as_deref())?;
    let live = &state.inner.live.programs[program];
    let request = EraseRequest {
        program,
        member: id.clone(),
        pseudonym: state.pseudonym(program, &id),
        at: state.inner.clock.now(),
        actor: key,
        retention_months: live.program.retention_months,
    };
    let report = state.inner.ingest.erase(request).await.map_err(|error| match error.split_once(": ") {
        Some(("unknown_member", detail)) => Problem::new(StatusCode::NOT_FOUND, "unknown_member", detail.to_string()),
        _ => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "erase_failed", error),
    })?;
    Ok(Json(json!({
        "member": id,
        "pseudonym": report.pseudonym,
        "events_rewritten": report.events_rewritten,
        "kept_pseudonymised": report.events_rewritten,
        "within_retention": report.within_retention,
        "retention_months": live.program.retention_months,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct TokenRequest {
    ttl_seconds: Option<i64>,
}

/// `POST /v1/members/{id}/tokens`: a signed token that reads (and changes the
/// consents of) this one member only, until it expires (`members:write`; audited).
pub(crate) async fn post_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ProgramQuery>,
    body: Option<Json<TokenRequest>>,
) -> Result<Response, Problem> {
    let key = authorize(&state, &headers, "members:write")?;
    let program = program_of(&state, &id, query.program.as_deref())?;
    let ttl = body.and_then(|b| b.ttl_seconds).unwrap_or(3600);
    if !(60..=30 * 24 * 3600).contains(&ttl) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_ttl",
            format!("ttl_seconds: {ttl} is not between 60 and 2592000 (30 days)"),
        ));
    }
    let now = state.inner.clock.now();
    let expires = now.as_second() + ttl;
    let program_id = state.inner.live.programs[program].program.id.clone();
    let token = state.inner.keys.member_token(&program_id, &id, expires);
    let audit = state.audit_entry(&key, "token.issued", program, &id, json!({"expires_unix": expires}));
    state.inner.store.append_audit(&audit).await.map_err(store_failed)?;
    let expires_at = Timestamp::from_second(expires).map(format_instant).ok();
    Ok((
        StatusCode::CREATED,
        Json(json!({"member": id, "program": program_id, "token": token, "expires_at": expires_at})),
    )
        .into_response())
}

/// `GET /v1/admin/audit`: the audit trail and whether its chain holds (`admin`).
pub(crate) async fn get_audit(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&state, &headers, "admin")?;
    let records = state.inner.store.audit_log().await.map_err(store_failed)?;
    let head = state.inner.store.audit_head().await.map_err(store_failed)?;
    let verdict = match palier_store::audit::verify_with_head(&records, head) {
        Ok(count) => json!({"intact": true, "entries": count}),
        Err(broken) => json!({"intact": false, "broken_at": broken.seq, "why": broken.why}),
    };
    let entries: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "at": Timestamp::from_nanosecond(i128::from(r.entry.at_unix_nanos)).map(format_instant).ok(),
                "actor": r.entry.actor, "action": r.entry.action, "subject": r.entry.subject,
                "detail": serde_json::from_str::<Value>(&r.entry.detail).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({"chain": verdict, "entries": entries})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonymising_keeps_what_the_rules_read_and_nothing_personal() {
        let mut event = json!({
            "id": "reg-zq-1", "type": "member.registered", "at": "2026-01-01T00:00:00Z", "member": "zq-1",
            "country": "GB", "birth_date": "1984-07-19", "name": "Zygmunt", "email": "zq@example.org",
            "nickname": "ZQ", "lines": [{"line": "l-1", "engraving": "for ZQ", "price": "1.00"}],
            "note": "called about zq-1", "payments": [{"method": "card", "amount": "1.00", "holder": "Z Q"}],
        });
        pseudonymise(&mut event, "zq-1", "anon-1");
        assert_eq!(
            event,
            json!({
                "id": "reg-anon-1", "type": "member.registered", "at": "2026-01-01T00:00:00Z", "member": "anon-1",
                "country": "GB", "birthday": "07-19", "lines": [{"line": "l-1", "price": "1.00"}],
                "note": "[erased]", "payments": [{"method": "card", "amount": "1.00"}],
            })
        );
    }
}
