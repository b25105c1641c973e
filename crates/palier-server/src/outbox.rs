//! Notifications delivered at least once (issue 6, docs/notifications.md).
//!
//! - The **scanner** derives the notifications due up to now
//!   (`palier_core::notify::notifications`, a pure function of a member's events and
//!   the instant) and records them in the store's outbox, keyed by their stable id
//!   (`ON CONFLICT DO NOTHING`): deriving one again records nothing new. It derives,
//!   every second, the members whose events were committed since its last pass (from
//!   the earliest such event's `at`), and every member of every program on a full
//!   pass (at start, when the manual clock is set, and every `full_scan_every`), from
//!   the program's watermark `scanned_to`. Watermarks advance only after what they
//!   cover is recorded, so a crash in between derives it again.
//! - The **dispatcher** claims due deliveries (a lease: a sender that dies mid-send
//!   leaves them due again), sends them to their webhook (signed, see `webhooks`) or
//!   to NATS JetStream (`bus`), and records the outcome: delivered on a 2xx (or a
//!   JetStream ack), else tried again after an exponential back-off with jitter, and
//!   a dead letter after `max_attempts`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use palier_core::calendar::format_instant;
use palier_core::event::Id;
use palier_store::outbox::{
    Claimed, DeliveryOutcome, DeliveryStatus, NewNotification, NotificationQuery, NotificationRecord, Watermark,
    Webhook,
};
use palier_store::{AppendOutcome, NewEvent, Store, StoreError};
use rand::Rng;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::live::Live;
use crate::{AppState, Problem, authorize, bus, store_failed};

/// How notifications are derived and delivered.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// NATS JetStream: publish notifications and consume retailer events.
    pub nats: Option<bus::NatsConfig>,
    /// How often the members whose events changed are derived.
    pub scan_every: Duration,
    /// How often every member is derived (time rules: notices, reviews, expiries).
    pub full_scan_every: Duration,
    /// Sends of one delivery before it becomes a dead letter.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, up to `backoff_cap`; each is
    /// drawn between half and all of that (jitter).
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// One webhook request's time limit.
    pub timeout: Duration,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            nats: None,
            scan_every: Duration::from_secs(1),
            full_scan_every: Duration::from_secs(60),
            max_attempts: 10,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Deliveries taken in one claim.
const CLAIM: i64 = 64;
/// Members derived per blocking task (and per outbox transaction).
const CHUNK: usize = 512;
/// The destination name of NATS deliveries.
pub const NATS: &str = "nats";

/// Accepted events committed since the scanner last took them: per member the
/// earliest `at`; program-wide events (sales) mark their whole program.
#[derive(Default)]
pub struct Changes {
    enabled: AtomicBool,
    set: Mutex<ChangeSet>,
}

#[derive(Default)]
struct ChangeSet {
    members: FxHashMap<(String, String), i64>,
    programs: FxHashMap<String, i64>,
    /// Per program, the highest `seq` taken.
    max_seq: FxHashMap<String, i64>,
}

impl ChangeSet {
    fn add(&mut self, program: &str, member: &str, at: i64, seq: i64) {
        if member.is_empty() {
            let earliest = self.programs.entry(program.to_string()).or_insert(at);
            *earliest = (*earliest).min(at);
        } else {
            let earliest = self.members.entry((program.to_string(), member.to_string())).or_insert(at);
            *earliest = (*earliest).min(at);
        }
        let max = self.max_seq.entry(program.to_string()).or_insert(seq);
        *max = (*max).max(seq);
    }

    fn merge(&mut self, other: ChangeSet) {
        for ((program, member), at) in other.members {
            self.add(&program, &member, at, 0);
        }
        for (program, at) in other.programs {
            self.add(&program, "", at, 0);
        }
        for (program, seq) in other.max_seq {
            let max = self.max_seq.entry(program).or_insert(seq);
            *max = (*max).max(seq);
        }
    }
}

impl Changes {
    /// Records the events of a committed batch (only once the scanner runs).
    pub fn record(&self, events: &[NewEvent], outcomes: &[AppendOutcome]) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        for (event, outcome) in events.iter().zip(outcomes) {
            if let AppendOutcome::Appended { seq } = outcome {
                set.add(&event.program, &event.member, event.at_unix_nanos, *seq);
            }
        }
    }

    fn take(&self) -> ChangeSet {
        std::mem::take(&mut *self.set.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn put_back(&self, set: ChangeSet) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).merge(set);
    }
}

/// The service's handle on notifications (always present; the tasks run once
/// [`AppState::start_notifications`] is called).
#[derive(Default)]
pub struct Notifications {
    wake_scan: Notify,
    wake_dispatch: Notify,
    full_requested: AtomicBool,
    /// Active webhooks (a copy of the store's, reloaded when they change).
    webhooks: RwLock<Vec<Webhook>>,
    bus: OnceLock<bus::Bus>,
    config: OnceLock<NotifyConfig>,
}

impl Notifications {
    /// The manual clock moved: derive every member at the new instant.
    pub fn clock_moved(&self) {
        self.full_requested.store(true, Ordering::SeqCst);
        self.wake_scan.notify_one();
    }

    pub(crate) async fn reload_webhooks(&self, store: &Store) -> Result<(), StoreError> {
        let webhooks = store.webhooks().await?;
        *self.webhooks.write().unwrap_or_else(|p| p.into_inner()) = webhooks;
        Ok(())
    }

    fn webhooks(&self) -> Vec<Webhook> {
        self.webhooks.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn wall_nanos() -> i64 {
    Timestamp::now().as_nanosecond() as i64
}

impl AppState {
    /// Starts the scanner and the dispatcher (and, with NATS configured, the event
    /// consumer). `palier serve` calls it; tools that only load the store do not.
    pub async fn start_notifications(&self, config: NotifyConfig) -> Result<(), String> {
        let inner = &self.inner;
        let notifications = &inner.notifications;
        if notifications.config.set(config.clone()).is_err() {
            return Err("notifications are already started".into());
        }
        notifications.reload_webhooks(&inner.store).await.map_err(|e| format!("cannot read the webhooks: {e}"))?;
        let mut consumer = None;
        if let Some(nats) = &config.nats {
            let programs: Vec<String> = inner.live.programs.iter().map(|p| p.program.id.clone()).collect();
            let (bus, events) = bus::connect(nats, &programs).await?;
            let _ = notifications.bus.set(bus);
            consumer = Some(events);
        }
        // From now on committed events are noted; those committed before are found
        // in the store past each program's watermark (noted twice at worst).
        inner.ingest.changes.enabled.store(true, Ordering::SeqCst);
        let watermarks = inner.store.watermarks().await.map_err(|e| format!("cannot read the watermarks: {e}"))?;
        let mut marks: FxHashMap<String, Watermark> = FxHashMap::default();
        for mark in watermarks {
            let changed = inner
                .store
                .member_changes_after(&mark.program, mark.scanned_seq)
                .await
                .map_err(|e| format!("cannot read the events to notify: {e}"))?;
            let mut set = ChangeSet::default();
            for change in changed {
                set.add(&mark.program, &change.member, change.min_at_unix_nanos, change.max_seq);
            }
            inner.ingest.changes.put_back(set);
            marks.insert(mark.program.clone(), mark);
        }
        tokio::spawn(scanner(self.clone(), config.clone(), marks));
        tokio::spawn(dispatcher(self.clone(), config));
        if let Some(events) = consumer {
            tokio::spawn(bus::consume(self.clone(), events));
        }
        Ok(())
    }
}

// ---- the scanner -----------------------------------------------------------------------

async fn scanner(state: AppState, config: NotifyConfig, mut marks: FxHashMap<String, Watermark>) {
    let mut last_full: Option<Instant> = None;
    loop {
        let requested = state.inner.notifications.full_requested.swap(false, Ordering::SeqCst);
        let full = requested || last_full.is_none_or(|at| at.elapsed() >= config.full_scan_every);
        let started = Instant::now();
        match scan(&state, full, &mut marks).await {
            Ok(recorded) => {
                if full {
                    last_full = Some(started);
                }
                if recorded > 0 {
                    state.inner.notifications.wake_dispatch.notify_one();
                }
            }
            Err(error) => {
                tracing::error!(%error, "notification scan failed; trying again");
                if full {
                    state.inner.notifications.full_requested.store(true, Ordering::SeqCst);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.scan_every) => {}
            _ = state.inner.notifications.wake_scan.notified() => {}
        }
    }
}

/// One pass: derives, records, then moves the watermarks. On an error the changes
/// taken are put back and no watermark moves.
async fn scan(state: &AppState, full: bool, marks: &mut FxHashMap<String, Watermark>) -> Result<usize, String> {
    let inner = &state.inner;
    let now = inner.clock.now();
    let changes = inner.ingest.changes.take();
    if !full && changes.members.is_empty() && changes.programs.is_empty() {
        return Ok(0);
    }
    let result = record(state, full, &changes, marks, now).await;
    match result {
        Ok(recorded) => {
            for live in &inner.live.programs {
                let id = &live.program.id;
                let taken = changes.max_seq.get(id).copied();
                if !full && taken.is_none() {
                    continue;
                }
                let old = marks.get(id).cloned();
                let mark = Watermark {
                    program: id.clone(),
                    scanned_to_unix_nanos: match (&old, full) {
                        (Some(old), false) => old.scanned_to_unix_nanos,
                        // A full pass derived everything due by now (a manual clock set
                        // back moves the watermark back: what follows is derived again).
                        (_, true) => now.as_nanosecond() as i64,
                        // Never fully scanned yet: the first full pass starts from the beginning.
                        (None, false) => continue,
                    },
                    scanned_seq: old.as_ref().map_or(0, |o| o.scanned_seq).max(taken.unwrap_or(0)),
                };
                if old.as_ref() != Some(&mark) {
                    // Not stored: the next pass (or start) derives the same again.
                    inner
                        .store
                        .set_watermark(&mark)
                        .await
                        .map_err(|e| format!("storing the watermark of {}: {e}", mark.program))?;
                    marks.insert(id.clone(), mark);
                }
            }
            Ok(recorded)
        }
        Err(error) => {
            inner.ingest.changes.put_back(changes);
            Err(error)
        }
    }
}

fn before(at_unix_nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(at_unix_nanos) - 1).unwrap_or(Timestamp::MIN)
}

async fn record(
    state: &AppState,
    full: bool,
    changes: &ChangeSet,
    marks: &FxHashMap<String, Watermark>,
    now: Timestamp,
) -> Result<usize, String> {
    let inner = &state.inner;
    let webhooks = Arc::new(inner.notifications.webhooks());
    let nats = inner.notifications.bus.get().is_some();
    let mut recorded = 0;
    for (index, live) in inner.live.programs.iter().enumerate() {
        let id = &live.program.id;
        let program_change = changes.programs.get(id).map(|at| before(*at));
        // Every member from the watermark (or from the beginning), or only the
        // changed ones from their earliest new event.
        let mut members: Vec<(Id, Timestamp)> = Vec::new();
        if full || program_change.is_some() {
            let scanned_to = match marks.get(id) {
                Some(mark) if full => {
                    Timestamp::from_nanosecond(i128::from(mark.scanned_to_unix_nanos)).unwrap_or(Timestamp::MIN)
                }
                Some(_) => now,
                None => Timestamp::MIN,
            };
            let scanned_to = program_change.map_or(scanned_to, |at| at.min(scanned_to));
            for member in live.member_ids() {
                let changed = changes.members.get(&(id.clone(), member.to_string())).map(|at| before(*at));
                members.push((member, changed.map_or(scanned_to, |at| at.min(scanned_to))));
            }
        } else {
            for ((program, member), at) in &changes.members {
                if program == id {
                    members.push((Id::from(member.as_str()), before(*at)));
                }
            }
            members.sort();
        }
        for chunk in members.chunks(CHUNK) {
            let (live, chunk, webhooks) = (inner.live.clone(), chunk.to_vec(), webhooks.clone());
            let derived = tokio::task::spawn_blocking(move || derive(&live, index, &chunk, now, &webhooks, nats))
                .await
                .map_err(|e| format!("deriving notifications: {e}"))?;
            if derived.is_empty() {
                continue;
            }
            let new = inner
                .store
                .insert_notifications(&derived, wall_nanos())
                .await
                .map_err(|e| format!("recording notifications: {e}"))?;
            if new > 0 {
                inner.metrics.notifications.inc_by(new as u64);
                tracing::debug!(program = %id, new, "notifications recorded");
            }
            recorded += new;
        }
    }
    Ok(recorded)
}

/// The notifications of these members in `(from, now]`, ready for the outbox.
fn derive(
    live: &Live,
    program: usize,
    members: &[(Id, Timestamp)],
    now: Timestamp,
    webhooks: &[Webhook],
    nats: bool,
) -> Vec<NewNotification> {
    let live = &live.programs[program];
    let mut out = Vec::new();
    for (member, from) in members {
        if *from >= now {
            continue;
        }
        let Some(journaled) = live.journaled(member, now) else { continue };
        for n in palier_core::notify::notifications(&live.program, &journaled, *from, now) {
            let payload = json!({
                "id": n.id,
                "program": n.program,
                "member": n.member,
                "kind": n.kind,
                "section": n.section,
                "at": format_instant(n.at),
                "data": n.data,
                "channels": n.channels,
            })
            .to_string();
            let mut destinations: Vec<String> = webhooks
                .iter()
                .filter(|w| w.kinds.is_empty() || w.kinds.iter().any(|k| k == n.kind))
                .map(|w| w.id.clone())
                .collect();
            if nats {
                destinations.push(NATS.to_string());
            }
            out.push(NewNotification {
                id: n.id,
                program: n.program,
                member: n.member,
                kind: n.kind.to_string(),
                section: n.section.to_string(),
                at_unix_nanos: n.at.as_nanosecond() as i64,
                payload,
                destinations,
            });
        }
    }
    out
}

// ---- the dispatcher --------------------------------------------------------------------

/// The delay before the next send after `attempts` failed ones: `base · 2^(attempts-1)`
/// up to `cap`, drawn between half and all of it.
pub fn backoff(attempts: i64, base: Duration, cap: Duration) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1_u32 << exponent).min(cap);
    let nanos = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
}

async fn dispatcher(state: AppState, config: NotifyConfig) {
    let client = match reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("palier/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook client; notifications are not delivered");
            return;
        }
    };
    let lease = config.timeout + Duration::from_secs(2);
    let notifications = &state.inner.notifications;
    loop {
        let now = wall_nanos();
        let lease_until = now.saturating_add(i64::try_from(lease.as_nanos()).unwrap_or(i64::MAX));
        let nats = notifications.bus.get().is_some();
        let claimed = match state.inner.store.claim_deliveries(now, lease_until, CLAIM, nats).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "cannot claim deliveries; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let full = claimed.len() as i64 == CLAIM;
        let webhooks = notifications.webhooks();
        let mut sends = tokio::task::JoinSet::new();
        for delivery in claimed {
            let webhook = webhooks.iter().find(|w| w.id == delivery.destination).cloned();
            let (state, client, config) = (state.clone(), client.clone(), config.clone());
            sends.spawn(async move {
                let outcome = send(&state, &client, &config, &delivery, webhook.as_ref()).await;
                let kind = if delivery.destination == NATS { NATS } else { "webhook" };
                let label = match &outcome {
                    DeliveryOutcome::Delivered => "delivered",
                    DeliveryOutcome::Failed { retry_at: Some(_), .. } => "failed",
                    DeliveryOutcome::Failed { retry_at: None, .. } => "dead",
                };
                state.inner.metrics.deliveries.with_label_values(&[kind, label]).inc();
                if let DeliveryOutcome::Failed { error, retry_at } = &outcome {
                    tracing::warn!(
                        notification = %delivery.notification, destination = %delivery.destination,
                        attempts = delivery.attempts, dead = retry_at.is_none(), %error, "delivery failed"
                    );
                }
                let finished = state
                    .inner
                    .store
                    .finish_delivery(&delivery.notification, &delivery.destination, &outcome, wall_nanos())
                    .await;
                if let Err(error) = finished {
                    // The lease ends and the delivery is sent again: at least once.
                    tracing::error!(%error, notification = %delivery.notification, "cannot record a delivery");
                }
            });
        }
        while sends.join_next().await.is_some() {}
        if !full {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = notifications.wake_dispatch.notified() => {}
            }
        }
    }
}

async fn send(
    state: &AppState,
    client: &reqwest::Client,
    config: &NotifyConfig,
    delivery: &Claimed,
    webhook: Option<&Webhook>,
) -> DeliveryOutcome {
    let result = if delivery.destination == NATS {
        match state.inner.notifications.bus.get() {
            Some(bus) => bus.publish(delivery).await,
            None => Err("NATS is not configured".to_string()),
        }
    } else {
        match webhook {
            Some(webhook) => post(client, webhook, delivery).await,
            None => {
                return DeliveryOutcome::Failed { error: "webhook deleted".into(), retry_at: None };
            }
        }
    };
    match result {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(mut error) => {
            error.truncate(500);
            let retry_at = (delivery.attempts < i64::from(config.max_attempts)).then(|| {
                let delay = backoff(delivery.attempts, config.backoff_base, config.backoff_cap);
                wall_nanos().saturating_add(i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX))
            });
            DeliveryOutcome::Failed { error, retry_at }
        }
    }
}

async fn post(client: &reqwest::Client, webhook: &Webhook, delivery: &Claimed) -> Result<(), String> {
    let signature = crate::webhooks::sign(&webhook.secret, Timestamp::now().as_second(), delivery.payload.as_bytes());
    let response = client
        .post(&webhook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(crate::webhooks::SIGNATURE_HEADER, signature)
        .header(crate::webhooks::ID_HEADER, &delivery.notification)
        .header("Palier-Attempt", delivery.attempts.to_string())
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = response.status();
    if status.is_success() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
}

// ---- routes ----------------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    program: Option<String>,
    member: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

fn instant(nanos: Option<i64>) -> Value {
    match nanos.and_then(|n| Timestamp::from_nanosecond(i128::from(n)).ok()) {
        Some(at) => json!(at.to_string()),
        None => Value::Null,
    }
}

fn record_json(record: &NotificationRecord) -> Value {
    json!({
        "id": record.id,
        "program": record.program,
        "member": record.member,
        "kind": record.kind,
        "section": record.section,
        "at": Timestamp::from_nanosecond(i128::from(record.at_unix_nanos)).map(format_instant).ok(),
        "created_at": instant(Some(record.created_unix_nanos)),
        "payload": serde_json::from_str::<Value>(&record.payload).unwrap_or(Value::Null),
        "deliveries": record.deliveries.iter().map(|d| json!({
            "destination": d.destination,
            "status": d.status().as_str(),
            "attempts": d.attempts,
            "next_attempt_at": if d.status() == DeliveryStatus::Pending { instant(Some(d.next_attempt_unix_nanos)) } else { Value::Null },
            "delivered_at": instant(d.delivered_unix_nanos),
            "dead_at": instant(d.dead_unix_nanos),
            "last_error": d.last_error,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /v1/notifications` (admin): the outbox, with each delivery's state.
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    authorize(&state, &headers, "admin")?;
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "invalid_status", "status: pending, delivered, dead or all")
        })?),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_limit", "limit: from 1 to 1000"));
    }
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(
            cursor.split_once(':').and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string()))).ok_or_else(
                || Problem::new(StatusCode::BAD_REQUEST, "invalid_cursor", "cursor: as given by next_cursor"),
            )?,
        ),
    };
    let records = state
        .inner
        .store
        .notifications(&NotificationQuery { status, program: query.program, member: query.member, after, limit })
        .await
        .map_err(store_failed)?;
    let next = (records.len() as i64 == limit)
        .then(|| records.last().map(|r| format!("{}:{}", r.at_unix_nanos, r.id)))
        .flatten();
    Ok(Json(json!({"notifications": records.iter().map(record_json).collect::<Vec<_>>(), "next_cursor": next}))
        .into_response())
}

/// `POST /v1/notifications/{id}/replay` (admin): its dead and delivered deliveries
/// become pending again, due now, with a fresh count of attempts.
pub(crate) async fn replay_notification(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let key = authorize(&state, &headers, "admin")?;
    let store = &state.inner.store;
    let Some(reset) = store.replay_notification(&id, wall_nanos()).await.map_err(store_failed)? else {
        return Err(Problem::new(StatusCode::NOT_FOUND, "unknown_notification", format!("no notification {id:?}")));
    };
    let audit = palier_store::NewAudit {
        at_unix_nanos: state.inner.clock.now().as_nanosecond() as i64,
        actor: key,
        action: "notification.replayed".into(),
        subject: id.clone(),
        detail: json!({"reset": reset}).to_string(),
    };
    store.append_audit(&audit).await.map_err(store_failed)?;
    state.inner.notifications.wake_dispatch.notify_one();
    Ok(Json(json!({"id": id, "reset": reset})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_cap_with_jitter() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(10));
        for _ in 0..100 {
            let first = backoff(1, base, cap);
            assert!(first >= Duration::from_millis(500) && first <= base, "{first:?}");
            let third = backoff(3, base, cap);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4), "{third:?}");
            let late = backoff(40, base, cap);
            assert!(late >= Duration::from_secs(5) && late <= cap, "{late:?}");
        }
    }

    #[test]
    fn changes_keep_the_earliest_instant_and_the_latest_seq() {
        let mut set = ChangeSet::default();
        set.add("p", "m", 50, 3);
        set.add("p", "m", 20, 4);
        set.add("p", "", 70, 5);
        let mut other = ChangeSet::default();
        other.add("p", "m", 10, 9);
        set.merge(other);
        assert_eq!(set.members[&("p".to_string(), "m".to_string())], 10);
        assert_eq!(set.programs["p"], 70);
        assert_eq!(set.max_seq["p"], 9);
    }
}
