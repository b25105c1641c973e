//! palier-server: the HTTP service (`palier serve`).
//!
//! Thin handlers parse, call the domain, and map errors to RFC 9457 problem JSON in
//! one place. The live state (`live`) is the in-order fold of the accepted events;
//! the store is the source of truth it is rebuilt from at start.

#![deny(clippy::unwrap_used)]

pub mod auth;
mod benefits;
pub mod bus;
mod checkout;
mod hub;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod outbox;
pub mod privacy;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use palier_core::event::{RejectCode, Rejection, parse_event, sniff_id};
use palier_core::{MemberDocument, Program};
use palier_store::{NewAudit, Store};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Denied, KeyRing};
use crate::ingest::{Ingest, Prepared, body_hash};
use crate::live::{Decision, Live};
use crate::metrics::Metrics;

/// Where "now" comes from: the system clock, or a clock tests set.
#[derive(Clone)]
pub enum Clock {
    System,
    Manual(Arc<Mutex<Timestamp>>),
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Manual(at) => *at.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// Limits on what one request may carry.
pub const MAX_BODY_BYTES: usize = 16 << 20;
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_EVENT_BYTES: usize = 256 << 10;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    live: Arc<Live>,
    store: Store,
    ingest: Ingest,
    keys: KeyRing,
    clock: Clock,
    metrics: Arc<Metrics>,
    started: Timestamp,
    /// Keys the pseudonyms of members (erasure, audit subjects).
    pseudonym_secret: Vec<u8>,
    /// The outbox's scanner and dispatcher (started by `start_notifications`).
    notifications: outbox::Notifications,
}

/// How to start the service.
pub struct ServiceConfig {
    pub programs: Vec<Program>,
    pub store: Store,
    pub admin_key: Option<String>,
    pub clock: Clock,
}

/// Loads the store into the live state and starts the ingest writer.
pub async fn start(config: ServiceConfig) -> Result<AppState, String> {
    let programs: Vec<Arc<Program>> = config.programs.into_iter().map(Arc::new).collect();
    let live = Arc::new(Live::new(&programs));
    let mut last_seq = 0_u64;
    let mut refused = 0_u64;
    let loaded = config
        .store
        .for_each_event(10_000, |stored| {
            last_seq = last_seq.max(stored.seq as u64);
            let Some(program) = live.program_index(&stored.program) else {
                refused += 1;
                return;
            };
            match parse_event(&stored.body) {
                Ok(event) => {
                    if live.decide(program, event, stored.body_sha256, stored.seq as u64) != Decision::Accepted {
                        refused += 1;
                    }
                }
                Err(_) => refused += 1,
            }
        })
        .await
        .map_err(|e| format!("cannot load the event log: {e}"))?;
    if refused > 0 {
        tracing::warn!(refused, "stored events the loaded programs no longer accept");
    }
    tracing::info!(events = loaded, "event log loaded");
    let records = config.store.keys().await.map_err(|e| format!("cannot read the API keys: {e}"))?;
    let secret = |name: &'static str| {
        let store = config.store.clone();
        async move {
            let mut candidate = [0_u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut candidate);
            store.setting_or_insert(name, &candidate).await.map_err(|e| format!("cannot read the {name}: {e}"))
        }
    };
    let token_secret = secret("member_token_secret").await?;
    let pseudonym_secret = secret("pseudonym_secret").await?;
    let metrics = Arc::new(Metrics::new());
    let ingest = Ingest::start(live.clone(), config.store.clone(), metrics.clone(), last_seq + 1);
    let keys = KeyRing::new(config.admin_key.as_deref(), &records, token_secret);
    let started = config.clock.now();
    Ok(AppState {
        inner: Arc::new(Inner {
            live,
            store: config.store,
            ingest,
            keys,
            clock: config.clock,
            metrics,
            started,
            pseudonym_secret,
            notifications: outbox::Notifications::default(),
        }),
    })
}

impl AppState {
    /// The export document of a member (`palier export`).
    pub async fn export(&self, member: &str, program: Option<&str>) -> Result<Value, String> {
        let index = program_of(self, member, program).map_err(|p| p.detail.clone())?;
        privacy::export_member(self, index, member).await.map_err(|p| p.detail.clone())
    }

    /// A member's pseudonym (erasure, audit subjects).
    pub fn pseudonym(&self, program: usize, member: &str) -> String {
        privacy::pseudonym(&self.inner.pseudonym_secret, &self.inner.live.programs[program].program.id, member)
    }

    /// An audit entry for an operator action on a member (named by pseudonym).
    pub(crate) fn audit_entry(
        &self,
        actor: &str,
        action: &str,
        program: usize,
        member: &str,
        detail: Value,
    ) -> NewAudit {
        let mut detail = detail;
        detail["program"] = json!(self.inner.live.programs[program].program.id);
        NewAudit {
            at_unix_nanos: self.inner.clock.now().as_nanosecond() as i64,
            actor: actor.to_string(),
            action: action.to_string(),
            subject: self.pseudonym(program, member),
            detail: detail.to_string(),
        }
    }

    /// One event built by the service, with the audit entry of the operator action it
    /// is (committed together).
    pub(crate) async fn submit_one(
        &self,
        text: String,
        program: usize,
        audit: Option<NewAudit>,
    ) -> Result<Decision, Problem> {
        let mut results = self.submit(vec![text], Some(program), audit).await?;
        Ok(results.pop().map_or(Decision::Duplicate, |(_, decision)| decision))
    }

    /// Checks each event on its own, then has the writer decide and durably store
    /// the well-formed ones. One result per text, in order.
    pub async fn submit_texts(
        &self,
        texts: Vec<String>,
        default_program: Option<usize>,
    ) -> Result<Vec<(Option<String>, Decision)>, Problem> {
        self.submit(texts, default_program, None).await
    }

    async fn submit(
        &self,
        texts: Vec<String>,
        default_program: Option<usize>,
        mut audit: Option<NewAudit>,
    ) -> Result<Vec<(Option<String>, Decision)>, Problem> {
        let live = &self.inner.live;
        let received = self.inner.clock.now().as_nanosecond() as i64;
        let mut results: Vec<Option<(Option<String>, Decision)>> = Vec::with_capacity(texts.len());
        let mut prepared = Vec::new();
        let mut positions = Vec::new();
        for text in texts {
            match check_event(live, &text, default_program) {
                Ok((program, event)) => {
                    positions.push(results.len());
                    results.push(None);
                    let body_sha256 = body_hash(&text);
                    prepared.push(Prepared {
                        program,
                        event,
                        body: text,
                        body_sha256,
                        received_unix_nanos: received,
                        audit: audit.take(),
                    });
                }
                Err(rejection) => {
                    self.inner.metrics.record_rejected(rejection.code.as_str());
                    results.push(Some((sniff_id(&text), Decision::Rejected(rejection))));
                }
            }
        }
        let ids: Vec<String> = prepared.iter().map(|p| p.event.id.to_string()).collect();
        if !prepared.is_empty() {
            let decisions = self
                .inner
                .ingest
                .submit(prepared)
                .await
                .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store_failed", e))?;
            for ((position, id), decision) in positions.into_iter().zip(ids).zip(decisions) {
                results[position] = Some((Some(id), decision));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or((None, Decision::Rejected(Rejection::new(RejectCode::InvalidJson, "no decision")))))
            .collect())
    }

    /// `palier import`: numbered lines of an events file, decided like posted events.
    pub async fn import_lines(
        &self,
        lines: Vec<(usize, String)>,
    ) -> Result<Vec<(usize, Option<String>, Decision)>, String> {
        let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
        let texts = lines.into_iter().map(|(_, t)| t).collect();
        let results = self.submit_texts(texts, None).await.map_err(|p| p.detail)?;
        Ok(numbers.into_iter().zip(results).map(|(n, (id, d))| (n, id, d)).collect())
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Reloads the API keys from the store (after `palier keys` changed them).
    pub async fn reload_keys(&self) -> Result<(), String> {
        let records = self.inner.store.keys().await.map_err(|e| e.to_string())?;
        self.inner.keys.replace(&records);
        Ok(())
    }
}

/// The HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/members", get(list_members))
        .route("/v1/members/{id}", get(get_member))
        .route("/v1/members/{id}/events", get(member_events))
        .route("/v1/members/{id}/timeline", get(member_timeline))
        .route("/v1/members/{id}/ledger", get(checkout::get_ledger))
        .route("/v1/members/{id}/ledger/adjustments", post(checkout::post_adjustment))
        .route("/v1/members/{id}/codes", post(checkout::post_code))
        .route("/v1/checkout/quote", post(checkout::post_quote))
        .route("/v1/checkout/holds", post(checkout::post_hold))
        .route("/v1/checkout/holds/{id}", get(checkout::get_hold).delete(checkout::delete_hold))
        .route("/v1/members/{id}/benefits", get(benefits::get_benefits))
        .route("/v1/members/{id}/benefits/{benefit}/use", post(benefits::post_use))
        .route("/v1/members/{id}/consents", get(privacy::get_consents).post(privacy::post_consent))
        .route("/v1/members/{id}/profile", post(privacy::post_profile))
        .route("/v1/members/{id}/export", get(privacy::get_export))
        .route("/v1/members/{id}/erase", post(privacy::post_erase))
        .route("/v1/members/{id}/tokens", post(privacy::post_token))
        .route("/v1/admin/audit", get(privacy::get_audit))
        .route("/v1/webhooks", get(webhooks::list_webhooks).post(webhooks::post_webhook))
        .route("/v1/webhooks/{id}", axum::routing::delete(webhooks::delete_webhook))
        .route("/v1/notifications", get(outbox::list_notifications))
        .route("/v1/notifications/{id}/replay", post(outbox::replay_notification))
        .route("/v1/simulate", post(simulate))
        .route("/v1/programs", get(list_programs))
        .route("/v1/programs/{id}", get(get_program))
        .route("/v1/admin/clock", get(get_clock).post(set_clock))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(reference))
        // The Loyalty Hub (web pages; `hub`).
        .route("/hub/static/hub.css", get(hub::stylesheet))
        .route("/hub/static/hub.js", get(hub::script))
        .route("/hub/staff", get(hub::staff_page))
        .route("/hub/staff/login", post(hub::staff_login))
        .route("/hub/staff/logout", post(hub::staff_logout))
        .route("/hub/staff/simulate", post(hub::staff_simulate))
        .route("/hub/{program}/{member}", get(hub::member_page))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves the API until the process is stopped.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// Binds an address (port 0 picks a free one).
pub async fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await
}

// ---- errors ------------------------------------------------------------------------

/// An RFC 9457 problem: `{type, title, status, detail, code}`.
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    /// Members added to the problem object (RFC 9457 extension members).
    extra: Option<Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, code, detail: detail.into(), extra: None }
    }
}

/// The answer to a write the service made as an event: 201 with `body` when it was
/// accepted now, 200 when it had been before (idempotent retry), the rejection as a
/// 422 problem.
pub(crate) fn written(decision: Decision, body: Value) -> Result<Response, Problem> {
    match decision {
        Decision::Accepted => Ok((StatusCode::CREATED, Json(body)).into_response()),
        Decision::Duplicate => Ok(Json(body).into_response()),
        Decision::Rejected(r) => Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, r.code.as_str(), r.message)),
    }
}

/// The store could not answer: 503, with what it said.
pub(crate) fn store_failed(error: impl std::fmt::Display) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store_failed", error.to_string())
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("urn:palier:problem:{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let (Some(Value::Object(extra)), Value::Object(fields)) = (self.extra, &mut body) {
            fields.extend(extra);
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"palier\""));
        }
        response
    }
}

impl From<Denied> for Problem {
    fn from(denied: Denied) -> Problem {
        match denied {
            Denied::Unauthenticated(code @ ("invalid_token" | "expired_token")) => Problem::new(
                StatusCode::UNAUTHORIZED,
                code,
                "the member token is altered or expired: ask for a new one (POST /v1/members/{id}/tokens)",
            ),
            Denied::Unauthenticated(code) => {
                Problem::new(StatusCode::UNAUTHORIZED, code, "send an API key as `Authorization: Bearer KEY`")
            }
            Denied::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, "missing_scope", detail),
        }
    }
}

fn authorize(state: &AppState, headers: &HeaderMap, scope: &str) -> Result<String, Problem> {
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.inner.keys.authorize(header, scope).map_err(Problem::from)
}

/// A member's own route: that member's token, or a key with the scope. The caller
/// is checked before the member is looked up, so a refused request learns nothing
/// of who exists. Returns the member's program and the caller.
fn authorize_member(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
    member: &str,
    program: Option<&str>,
) -> Result<(usize, Caller), Problem> {
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let now = state.inner.clock.now().as_second();
    let caller = state.inner.keys.authorize_member(header, scope, member, now).map_err(Problem::from)?;
    let index = match &caller {
        Caller::Member { program: token_program, .. } => {
            if program.is_some_and(|p| p != token_program) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "missing_scope",
                    "a member token opens its own member's routes only",
                ));
            }
            named_program(state, token_program)?
        }
        Caller::Key(_) => program_of(state, member, program)?,
    };
    Ok((index, caller))
}

async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state.inner.metrics.latency.with_label_values(&[&route, &status]).observe(started.elapsed().as_secs_f64());
    response
}

// ---- events ------------------------------------------------------------------------

/// The events of a request body: one object, a JSON array, or JSON Lines.
fn split_events(body: &str) -> Result<Vec<String>, Problem> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<Box<serde_json::value::RawValue>> = serde_json::from_str(trimmed).map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not a JSON array of events: {e}"),
            )
        })?;
        return Ok(items.into_iter().map(|raw| raw.get().to_string()).collect());
    }
    Ok(body.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
}

#[derive(Deserialize)]
struct PostQuery {
    /// The program of events that do not name theirs.
    program: Option<String>,
}

async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PostQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "events:write")?;
    let body = body.map_err(|rejection| {
        Problem::new(
            rejection.status(),
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "invalid_body" },
            format!("{} (at most {MAX_BODY_BYTES} bytes)", rejection.body_text()),
        )
    })?;
    if state.inner.metrics.is_broken() {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store_failed", "a commit failed; restart palier"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body has {} bytes; at most {MAX_BODY_BYTES}", body.len()),
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "invalid_json", "the body is not UTF-8"))?;
    let texts = split_events(text)?;
    if texts.is_empty() || texts.len() > MAX_BATCH_EVENTS {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            format!("a request carries 1 to {MAX_BATCH_EVENTS} events, not {}", texts.len()),
        ));
    }
    let default_program = match query.program.as_deref() {
        Some(id) => Some(named_program(&state, id)?),
        None => None,
    };
    let results = state.submit_texts(texts, default_program).await?;
    let mut counts = [0_usize; 3];
    let items: Vec<Value> = results
        .into_iter()
        .enumerate()
        .map(|(index, (id, decision))| {
            match decision {
                Decision::Accepted => {
                    counts[0] += 1;
                    json!({"index": index, "id": id, "status": "accepted"})
                }
                Decision::Duplicate => {
                    counts[1] += 1;
                    json!({"index": index, "id": id, "status": "duplicate", "first_status": "accepted"})
                }
                Decision::Rejected(rejection) => {
                    counts[2] += 1;
                    json!({"index": index, "id": id, "status": "rejected", "code": rejection.code.as_str(), "message": rejection.message})
                }
            }
        })
        .collect();
    state.inner.metrics.queue_depth.set(state.inner.ingest.queued.load(std::sync::atomic::Ordering::Relaxed) as i64);
    Ok(Json(json!({"accepted": counts[0], "duplicate": counts[1], "rejected": counts[2], "results": items}))
        .into_response())
}

/// An event checked on its own: its JSON, fields, limits, and the program it names.
fn check_event(
    live: &Live,
    text: &str,
    default_program: Option<usize>,
) -> Result<(usize, palier_core::Event), Rejection> {
    if text.len() > MAX_EVENT_BYTES {
        return Err(Rejection::new(
            RejectCode::InvalidField,
            format!("the event has {} bytes; at most {MAX_EVENT_BYTES}", text.len()),
        ));
    }
    let event = parse_event(text)?;
    let program = match &event.program {
        Some(id) => live
            .program_index(id)
            .ok_or_else(|| Rejection::new(RejectCode::UnknownProgram, format!("program: {id:?} is not loaded")))?,
        None if live.programs.len() == 1 => 0,
        None if default_program.is_some() => default_program.unwrap_or_default(),
        None => {
            return Err(Rejection::new(RejectCode::MissingField, "program: required when several programs are loaded"));
        }
    };
    Ok((program, event))
}

// ---- members -------------------------------------------------------------------------

#[derive(Deserialize)]
struct MemberQuery {
    as_of: Option<String>,
    program: Option<String>,
}

fn parse_as_of(state: &AppState, as_of: Option<&str>) -> Result<Timestamp, Problem> {
    match as_of {
        None => Ok(state.inner.clock.now()),
        Some(text) => text.parse::<Timestamp>().map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_as_of",
                format!("as_of: {text:?} is not an RFC 3339 instant"),
            )
        }),
    }
}

/// The index of a program named in a request.
fn named_program(state: &AppState, id: &str) -> Result<usize, Problem> {
    state
        .inner
        .live
        .program_index(id)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "unknown_program", format!("program {id:?} is not loaded")))
}

/// The program a request names, or the only one loaded.
fn named_or_only_program(state: &AppState, id: Option<&str>) -> Result<usize, Problem> {
    match id {
        Some(id) => named_program(state, id),
        None if state.inner.live.programs.len() == 1 => Ok(0),
        None => Err(Problem::new(StatusCode::BAD_REQUEST, "missing_program", "name a program with ?program=")),
    }
}

/// The program holding a member: the one named, or the only one that has it.
fn program_of(state: &AppState, member: &str, program: Option<&str>) -> Result<usize, Problem> {
    let live = &state.inner.live;
    if let Some(program) = program {
        return named_program(state, program);
    }
    let holding: Vec<usize> = (0..live.programs.len()).filter(|i| live.programs[*i].contains(member)).collect();
    match holding.as_slice() {
        [one] => Ok(*one),
        [] => {
            Err(Problem::new(StatusCode::NOT_FOUND, "unknown_member", format!("member {member:?} is not registered")))
        }
        _ => Err(Problem::new(
            StatusCode::CONFLICT,
            "ambiguous_member",
            format!("member {member:?} exists in several programs; name one with ?program="),
        )),
    }
}

async fn get_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<MemberQuery>,
) -> Result<Json<MemberDocument>, Problem> {
    let (program, _) = authorize_member(&state, &headers, "members:read", &id, query.program.as_deref())?;
    let as_of = parse_as_of(&state, query.as_of.as_deref())?;
    state.inner.live.programs[program].document(&id, as_of).map(Json).ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "unknown_member", format!("member {id:?} was not registered at {as_of}"))
    })
}

async fn member_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<MemberQuery>,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "members:read")?;
    let program = program_of(&state, &id, query.program.as_deref())?;
    let stored = state
        .inner
        .store
        .member_events(&state.inner.live.programs[program].program.id, &id)
        .await
        .map_err(store_failed)?;
    let events: Vec<Value> =
        stored.iter().map(|s| serde_json::from_str(&s.body).unwrap_or(Value::String(s.body.clone()))).collect();
    Ok(Json(json!({"member": id, "events": events})).into_response())
}

fn timeline_json(
    program: &Program,
    member: &palier_core::member::Member,
    happenings: &[palier_core::member::Happening],
) -> Vec<Value> {
    let tier = |t: Option<usize>| t.map(|t| program.tiers[t].id.clone());
    happenings
        .iter()
        .map(|h| {
            json!({
                "at": palier_core::calendar::format_instant(h.at),
                "rule": h.rule,
                "order": h.order.as_ref().map(|o| o.to_string()),
                "amount": h.amount.and_then(|a| member.currency.map(|c| c.format(a))),
                "points": h.points,
                "from_tier": tier(h.from_tier),
                "tier": tier(h.tier),
                "until": h.until.map(palier_core::calendar::format_instant),
            })
        })
        .collect()
}

async fn member_timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<MemberQuery>,
) -> Result<Response, Problem> {
    let (program, _) = authorize_member(&state, &headers, "members:read", &id, query.program.as_deref())?;
    let as_of = parse_as_of(&state, query.as_of.as_deref())?;
    let live = &state.inner.live.programs[program];
    let history = live.history_of(&id).ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "unknown_member", format!("member {id:?} is not registered"))
    })?;
    let sales = live.sales();
    let happenings = history.timeline(&live.program, &sales, as_of);
    let member = history.member_at(&live.program, &sales, as_of);
    let timeline = member.as_ref().map(|m| timeline_json(&live.program, m, &happenings)).unwrap_or_default();
    Ok(Json(json!({"member": id, "program": live.program.id, "as_of": palier_core::calendar::format_instant(as_of), "timeline": timeline}))
        .into_response())
}

#[derive(Deserialize)]
struct SimulateRequest {
    program: Option<String>,
    member: String,
    /// Hypothetical events, applied after the stored ones (at their own times).
    #[serde(default)]
    events: Vec<Box<serde_json::value::RawValue>>,
    as_of: Option<String>,
}

/// What-if: a member's stored events plus hypothetical ones. Writes nothing.
async fn simulate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<SimulateRequest>,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "members:read")?;
    let live = &state.inner.live;
    let program = match request.program.as_deref() {
        Some(_) => named_or_only_program(&state, request.program.as_deref())?,
        None => program_of(&state, &request.member, None).or_else(|_| named_or_only_program(&state, None))?,
    };
    let live_program = &live.programs[program];
    let as_of = parse_as_of(&state, request.as_of.as_deref())?;
    let (history, outcomes) = live_program.what_if(&request.member, request.events.iter().map(|raw| raw.get()));
    let sales = live_program.sales();
    let results: Vec<Value> = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Ok(()) => json!({"index": index, "status": "accepted"}),
            Err(r) => json!({"index": index, "status": "rejected", "code": r.code.as_str(), "message": r.message}),
        })
        .collect();
    let document = history.document(&live_program.program, &sales, as_of);
    let happenings = history.timeline(&live_program.program, &sales, as_of);
    let timeline = history
        .member_at(&live_program.program, &sales, as_of)
        .map(|m| timeline_json(&live_program.program, &m, &happenings))
        .unwrap_or_default();
    Ok(Json(json!({"document": document, "events": results, "timeline": timeline, "written": false})).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    program: Option<String>,
    tier: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    as_of: Option<String>,
}

async fn list_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "members:read")?;
    let live = &state.inner.live;
    let program = named_or_only_program(&state, query.program.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_limit", "limit: from 1 to 1000"));
    }
    let as_of = parse_as_of(&state, query.as_of.as_deref())?;
    let live_program = &live.programs[program];
    let mut page = Vec::new();
    let mut next = None;
    for id in live_program.member_ids() {
        if query.cursor.as_deref().is_some_and(|cursor| id.as_str() <= cursor) {
            continue;
        }
        let Some(document) = live_program.document(&id, as_of) else { continue };
        if query.tier.as_deref().is_some_and(|t| document.tier.as_deref() != Some(t))
            || query.status.as_deref().is_some_and(|s| document.status != s)
        {
            continue;
        }
        if page.len() == limit {
            next = page.last().map(|d: &MemberDocument| d.member.clone());
            break;
        }
        page.push(document);
    }
    Ok(Json(json!({"members": page, "next_cursor": next})).into_response())
}

// ---- programs and operations -----------------------------------------------------------

fn program_summary(program: &Program) -> Value {
    json!({
        "id": program.id,
        "name": program.name,
        "time_zone": program.calendar.zone_name(),
        "currencies": program.currencies.iter().map(|c| c.code()).collect::<Vec<_>>(),
        "tiers": program.tiers.iter().map(|t| json!({
            "id": t.id,
            "name": t.name,
            "thresholds": t.thresholds.iter().map(|(c, v)| (c.code().to_string(), Value::String(c.format(*v)))).collect::<serde_json::Map<_, _>>(),
            "rate": t.rate.map(|r| r.to_string()),
        })).collect::<Vec<_>>(),
        "points": program.points.is_some(),
    })
}

async fn list_programs(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&state, &headers, "members:read")?;
    let programs: Vec<Value> = state.inner.live.programs.iter().map(|p| program_summary(&p.program)).collect();
    Ok(Json(json!({"programs": programs})).into_response())
}

async fn get_program(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "members:read")?;
    let live = &state.inner.live;
    let program = named_program(&state, &id)?;
    let mut summary = program_summary(&live.programs[program].program);
    summary["members"] = json!(live.programs[program].member_count());
    Ok(Json(summary).into_response())
}

async fn get_clock(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&state, &headers, "admin")?;
    let manual = matches!(state.inner.clock, Clock::Manual(_));
    Ok(Json(json!({"now": state.inner.clock.now().to_string(), "manual": manual})).into_response())
}

#[derive(Deserialize)]
struct SetClock {
    now: String,
}

/// Moves a manual clock (`palier serve --clock`), for tests and demos; a service on
/// the system clock refuses.
async fn set_clock(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<SetClock>,
) -> Result<Response, Problem> {
    let key = authorize(&state, &headers, "admin")?;
    let Clock::Manual(clock) = &state.inner.clock else {
        return Err(Problem::new(StatusCode::CONFLICT, "system_clock", "this service runs on the system clock"));
    };
    let now = request.now.parse::<Timestamp>().map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_instant",
            format!("now: {:?} is not an RFC 3339 instant", request.now),
        )
    })?;
    let audit = NewAudit {
        at_unix_nanos: state.inner.clock.now().as_nanosecond() as i64,
        actor: key,
        action: "clock.set".into(),
        subject: "clock".into(),
        detail: json!({"now": now.to_string()}).to_string(),
    };
    state.inner.store.append_audit(&audit).await.map_err(store_failed)?;
    *clock.lock().unwrap_or_else(|p| p.into_inner()) = now;
    state.inner.notifications.clock_moved();
    Ok(Json(json!({"now": now.to_string(), "manual": true})).into_response())
}

/// The OpenAPI document of this API, bundled with the binary.
pub const OPENAPI: &str = include_str!("../assets/openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The API reference page: bundled, no CDN; it renders `/openapi.json`.
async fn reference() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], include_str!("../assets/reference.html")).into_response()
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.inner.store.ping().await;
    let broken = state.inner.metrics.is_broken();
    let ready = store.is_ok() && !broken;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "store": state.inner.store.kind(),
        "store_ok": store.is_ok(),
        "events": state.inner.live.event_count(),
        "since": state.inner.started.to_string(),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let members: usize = state.inner.live.programs.iter().map(|p| p.member_count()).sum();
    state.inner.metrics.members.set(members as i64);
    state.inner.metrics.queue_depth.set(state.inner.ingest.queued.load(std::sync::atomic::Ordering::Relaxed) as i64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.inner.metrics.render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::OPENAPI;

    #[test]
    fn openapi_documents_every_route() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).expect("the bundled document is JSON");
        let paths = document["paths"].as_object().expect("paths");
        for route in [
            "/v1/events",
            "/v1/members",
            "/v1/members/{id}",
            "/v1/members/{id}/events",
            "/v1/members/{id}/timeline",
            "/v1/simulate",
            "/v1/programs",
            "/v1/programs/{id}",
            "/v1/admin/clock",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/v1/checkout/quote",
            "/v1/checkout/holds",
            "/v1/checkout/holds/{id}",
            "/v1/members/{id}/ledger",
            "/v1/members/{id}/ledger/adjustments",
            "/v1/members/{id}/codes",
            "/v1/members/{id}/consents",
            "/v1/members/{id}/profile",
            "/v1/members/{id}/export",
            "/v1/members/{id}/erase",
            "/v1/members/{id}/tokens",
            "/v1/admin/audit",
            "/v1/members/{id}/benefits",
            "/v1/members/{id}/benefits/{benefit}/use",
            "/v1/webhooks",
            "/v1/webhooks/{id}",
            "/v1/notifications",
            "/v1/notifications/{id}/replay",
        ] {
            assert!(paths.contains_key(route), "{route} is not in openapi.json");
        }
    }
}
