//! The staff console: find a member, their timeline, a what-if simulation (the
//! same core calls as `POST /v1/simulate`: the member's stored history, the
//! hypothetical events added at their own times, nothing written), the program's
//! tier distribution as an inline SVG chart, and the notification outbox (pending
//! deliveries and dead letters, `palier_store::outbox`).
//!
//! Access: an API key with `members:read`, from the `Authorization` header, from
//! `?key=` (answered by a redirect that drops the key from the address and sets a
//! signed session cookie), or from the sign-in form. Sessions last 8 hours; one of a
//! key revoked since ends at the next request. Forms posted with a session carry a
//! token bound to it (and the cookie is `SameSite=Lax`), so another site cannot post
//! them.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};
use palier_core::calendar::format_instant;
use palier_core::member::{Happening, Member};
use palier_core::money::Minor;
use palier_core::{MemberDocument, Program};
use serde::Deserialize;
use serde_json::json;

use super::locale::Locale;
use super::text::{Text, fill, text};
use super::view::{Formatter, badge_class};
use super::{
    Page, Refusal, STAFF_COOKIE, check_csrf, check_session, cookie, csrf_token, encode, error_page, html, locale_of,
    new_session, redirect,
};
use crate::AppState;
use crate::auth::Denied;

/// Who uses the console, and how.
struct StaffAuth {
    /// The session cookie's value, when the caller came with one (forms then carry
    /// its token).
    session: Option<String>,
}

/// Checks a key (`members:read`); returns its id.
fn check_key(state: &AppState, key: &str) -> Result<String, Refusal> {
    state.inner.keys.authorize(Some(format!("Bearer {key}").as_str()), "members:read").map_err(refusal)
}

fn refusal(denied: Denied) -> Refusal {
    match denied {
        Denied::Unauthenticated(_) => Refusal::Unauthenticated,
        Denied::Forbidden(_) => Refusal::Forbidden,
    }
}

/// The caller of a console request: the `Authorization` header, else the session.
async fn staff_access(state: &AppState, headers: &HeaderMap) -> Result<StaffAuth, Refusal> {
    if let Some(authorization) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        state.inner.keys.authorize(Some(authorization), "members:read").map_err(refusal)?;
        return Ok(StaffAuth { session: None });
    }
    let session = cookie(headers, STAFF_COOKIE).ok_or(Refusal::Unauthenticated)?;
    let now = state.inner.clock.now().as_second();
    let key = check_session(state, session, now).ok_or(Refusal::Unauthenticated)?;
    if key != "admin" {
        // A key revoked (or narrowed) since the session began ends it.
        let keys = state.inner.store.keys().await.map_err(|_| Refusal::Unauthenticated)?;
        let allowed = keys.iter().any(|k| {
            k.id == key
                && k.revoked_unix_seconds.is_none()
                && k.scopes.iter().any(|s| s == "members:read" || s == "admin")
        });
        if !allowed {
            return Err(Refusal::Unauthenticated);
        }
    }
    Ok(StaffAuth { session: Some(session.to_string()) })
}

fn session_cookie(value: &str, max_age: i64) -> String {
    format!("{STAFF_COOKIE}={value}; Path=/hub/staff; HttpOnly; SameSite=Lax; Max-Age={max_age}")
}

/// `/hub/staff?lang=…&program=…&member=…`
fn console_href(lang: &str, program: Option<&str>, member: Option<&str>) -> String {
    let mut href = format!("/hub/staff?lang={lang}");
    if let Some(program) = program {
        href.push_str(&format!("&program={}", encode(program)));
    }
    if let Some(member) = member.filter(|m| !m.is_empty()) {
        href.push_str(&format!("&member={}", encode(member)));
    }
    href
}

// ---- the page ------------------------------------------------------------------------------

struct ProgramOption {
    id: String,
    name: String,
    selected: bool,
}

/// A member at a glance.
struct Summary {
    member: String,
    status: String,
    tier: Option<(String, String)>,
    qualifying: String,
    pending: String,
    next: Option<String>,
    points: Option<String>,
}

struct TimelineRow {
    date: String,
    what: String,
    rule: String,
}

struct EventResult {
    index: usize,
    accepted: bool,
    detail: String,
}

struct Simulation {
    events: Vec<EventResult>,
    summary: Option<Summary>,
    ahead: Vec<TimelineRow>,
    as_of: String,
}

struct Bar {
    label: String,
    count: usize,
    /// In the chart's coordinates.
    y: usize,
    width: usize,
}

struct Chart {
    caption: String,
    description: String,
    height: usize,
    bars: Vec<Bar>,
}

#[derive(Template)]
#[template(path = "staff.html")]
struct StaffPage {
    page: Page,
    t: &'static Text,
    lang: &'static str,
    csrf: Option<String>,
    programs: Vec<ProgramOption>,
    program: String,
    member: String,
    not_found: bool,
    summary: Option<Summary>,
    timeline: Vec<TimelineRow>,
    events_text: String,
    as_of_text: String,
    simulation: Option<Simulation>,
    chart: Chart,
    pending: Vec<OutboxRow>,
    dead: Vec<OutboxRow>,
}

/// A notification of the outbox, as the console lists it.
struct OutboxRow {
    at: String,
    member: String,
    kind: String,
    destinations: String,
    error: String,
}

/// The program's notifications with a delivery in `status` (the latest 20).
async fn outbox_rows(
    state: &AppState,
    f: &Formatter<'_>,
    program: &str,
    status: palier_store::outbox::DeliveryStatus,
) -> Vec<OutboxRow> {
    let query = palier_store::outbox::NotificationQuery {
        status: Some(status),
        program: Some(program.to_string()),
        limit: 20,
        ..Default::default()
    };
    let records = state.inner.store.notifications(&query).await.unwrap_or_default();
    records
        .into_iter()
        .map(|record| {
            let deliveries: Vec<_> = record.deliveries.iter().filter(|d| d.status() == status).collect();
            OutboxRow {
                at: Timestamp::from_nanosecond(i128::from(record.at_unix_nanos))
                    .map(|at| f.date_time(at))
                    .unwrap_or_default(),
                member: record.member,
                kind: record.kind,
                destinations: deliveries
                    .iter()
                    .map(|d| format!("{} ({})", d.destination, d.attempts))
                    .collect::<Vec<_>>()
                    .join(", "),
                error: deliveries.iter().find_map(|d| d.last_error.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct StaffQuery {
    lang: Option<String>,
    key: Option<String>,
    program: Option<String>,
    member: Option<String>,
}

/// `GET /hub/staff`.
pub(crate) async fn staff_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<StaffQuery>,
) -> Response {
    let locale = locale_of(query.lang.as_deref(), &headers);
    if let Some(key) = query.key.as_deref() {
        // The key is exchanged for a session once; the redirect drops it from the
        // address bar and the history.
        return match check_key(&state, key) {
            Ok(id) => {
                let session = new_session(&state, &id, state.inner.clock.now().as_second());
                let href = console_href(locale.tag(), query.program.as_deref(), query.member.as_deref());
                redirect(&href, &[session_cookie(&session, super::STAFF_SESSION_SECONDS)])
            }
            Err(refusal) => error_page(locale, refusal.status(), "/hub/staff", true),
        };
    }
    let auth = match staff_access(&state, &headers).await {
        Ok(auth) => auth,
        Err(refusal) => return error_page(locale, refusal.status(), "/hub/staff", true),
    };
    let program = query.program.unwrap_or_default();
    let member = query.member.unwrap_or_default();
    render(&state, locale, &auth, &program, member.trim(), None, None).await
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    key: String,
    lang: Option<String>,
}

/// `POST /hub/staff/login`.
pub(crate) async fn staff_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let locale = locale_of(form.lang.as_deref(), &headers);
    match check_key(&state, form.key.trim()) {
        Ok(id) => {
            let session = new_session(&state, &id, state.inner.clock.now().as_second());
            redirect(&console_href(locale.tag(), None, None), &[session_cookie(&session, super::STAFF_SESSION_SECONDS)])
        }
        Err(refusal) => error_page(locale, refusal.status(), "/hub/staff", true),
    }
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    lang: Option<String>,
}

/// `POST /hub/staff/logout`: forgets the session cookie.
pub(crate) async fn staff_logout(headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
    let locale = locale_of(form.lang.as_deref(), &headers);
    redirect(&console_href(locale.tag(), None, None), &[session_cookie("", 0)])
}

#[derive(Deserialize)]
pub(crate) struct SimulateForm {
    lang: Option<String>,
    csrf: Option<String>,
    program: String,
    member: String,
    events: String,
    as_of: Option<String>,
}

/// `POST /hub/staff/simulate`: the what-if, shown on the console.
pub(crate) async fn staff_simulate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SimulateForm>,
) -> Response {
    let locale = locale_of(form.lang.as_deref(), &headers);
    let auth = match staff_access(&state, &headers).await {
        Ok(auth) => auth,
        Err(refusal) => return error_page(locale, refusal.status(), "/hub/staff", true),
    };
    if let Some(session) = &auth.session
        && !form.csrf.as_deref().is_some_and(|token| check_csrf(&state, session, token))
    {
        return error_page(locale, StatusCode::FORBIDDEN, "/hub/staff", false);
    }
    let member = form.member.trim();
    let as_of_text = form.as_of.unwrap_or_default();
    let simulation = simulate(&state, locale, &form.program, member, &form.events, as_of_text.trim());
    render(&state, locale, &auth, &form.program, member, Some(simulation), Some((form.events, as_of_text))).await
}

/// The what-if: the member's stored history plus the hypothetical events, at
/// `as_of` (default now). The same core calls as `POST /v1/simulate`.
fn simulate(
    state: &AppState,
    locale: Locale,
    program_id: &str,
    member: &str,
    events_text: &str,
    as_of_text: &str,
) -> Result<Simulation, String> {
    let live = &state.inner.live;
    let index = live.program_index(program_id).ok_or_else(|| format!("program {program_id:?} is not loaded"))?;
    let live_program = &live.programs[index];
    let program = &live_program.program;
    let now = state.inner.clock.now();
    let as_of = if as_of_text.is_empty() {
        now
    } else {
        as_of_text.parse::<Timestamp>().map_err(|_| format!("as_of: {as_of_text:?} is not an RFC 3339 instant"))?
    };
    let texts = crate::split_events(events_text).map_err(|p| p.detail)?;
    let (history, outcomes) = live_program.what_if(member, texts.iter().map(String::as_str));
    let sales = live_program.sales();
    let events = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Ok(()) => EventResult { index, accepted: true, detail: String::new() },
            Err(r) => EventResult { index, accepted: false, detail: format!("{}: {}", r.code.as_str(), r.message) },
        })
        .collect();
    let journaled = history.journaled(program, &sales, as_of);
    let f = Formatter { program, locale, currency: journaled.as_ref().and_then(|m| m.currency) };
    let summary = journaled.as_ref().map(|m| summary(&f, m, &m.document(program, as_of)));
    let ahead =
        journaled.as_ref().map(|m| timeline_rows(&f, m.journal().iter().filter(|h| h.at >= now))).unwrap_or_default();
    Ok(Simulation { events, summary, ahead, as_of: f.date_time(as_of) })
}

fn summary(f: &Formatter<'_>, member: &Member, document: &MemberDocument) -> Summary {
    let amount = |a: &Option<String>| a.as_deref().map(|a| f.document_amount(a)).unwrap_or_else(|| "—".into());
    Summary {
        member: document.member.clone(),
        status: document.status.to_string(),
        tier: member.tier.map(|t| (f.program.tiers[t].name.clone(), badge_class(f.program, t))),
        qualifying: amount(&document.qualifying_spend),
        pending: amount(&document.pending_spend),
        next: document.next_tier.as_ref().map(|next| {
            let name = f.program.tier_index(&next.tier).map_or(next.tier.clone(), |i| f.program.tiers[i].name.clone());
            fill(f.t().remaining, &[("amount", &f.document_amount(&next.remaining)), ("tier", &name)])
        }),
        points: document.points.map(|p| f.points(p.available)),
    }
}

fn timeline_rows<'h>(f: &Formatter<'_>, happenings: impl Iterator<Item = &'h Happening>) -> Vec<TimelineRow> {
    let mut rows: Vec<TimelineRow> = happenings
        .filter_map(|h| {
            f.phrase(h).map(|what| TimelineRow {
                date: f.date_time(h.at),
                what: super::text::capitalized(&what),
                rule: h.rule.to_string(),
            })
        })
        .collect();
    rows.reverse();
    rows
}

/// Members per tier now (every member's document), as bars.
async fn chart(state: &AppState, locale: Locale, index: usize) -> Chart {
    let live = state.inner.live.clone();
    let now = state.inner.clock.now();
    let counts = tokio::task::spawn_blocking(move || {
        let live_program = &live.programs[index];
        let tiers = live_program.program.tiers.len();
        // tiers…, no tier, inactive
        let mut counts = vec![0_usize; tiers + 2];
        for id in live_program.member_ids() {
            let Some(document) = live_program.document(&id, now) else { continue };
            let slot = match (document.status, document.tier.as_deref()) {
                ("active" | "suspended", Some(tier)) => live_program.program.tier_index(tier).unwrap_or(tiers),
                ("active" | "suspended", None) => tiers,
                _ => tiers + 1,
            };
            counts[slot] += 1;
        }
        counts
    })
    .await
    .unwrap_or_default();
    let program = &state.inner.live.programs[index].program;
    let t = text(locale);
    let mut labelled: Vec<(String, usize)> = program
        .tiers
        .iter()
        .enumerate()
        .map(|(i, tier)| (tier.name.clone(), counts.get(i).copied().unwrap_or(0)))
        .collect();
    let none = counts.get(program.tiers.len()).copied().unwrap_or(0);
    if program.joining_tier.is_none() || none > 0 {
        labelled.push((t.tier_none.to_string(), none));
    }
    let inactive = counts.get(program.tiers.len() + 1).copied().unwrap_or(0);
    if inactive > 0 {
        labelled.push((t.inactive.to_string(), inactive));
    }
    let total: usize = counts.iter().sum();
    let max = labelled.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1);
    const ROW: usize = 44;
    const BAR_MAX: usize = 240;
    let bars: Vec<Bar> = labelled
        .into_iter()
        .enumerate()
        .map(|(i, (label, count))| Bar {
            label,
            count,
            y: i * ROW,
            width: if count == 0 { 2 } else { (count * BAR_MAX / max).max(4) },
        })
        .collect();
    let description =
        bars.iter().map(|b| format!("{}: {}", b.label, locale.integer(b.count as i64))).collect::<Vec<_>>();
    Chart {
        caption: fill(t.distribution_caption, &[("n", &locale.integer(total as i64)), ("program", &program.name)]),
        description: description.join(", "),
        height: bars.len() * ROW + 4,
        bars,
    }
}

/// Example what-if events for a member: an order now, delivered a day later.
fn example_events(
    program: &Program,
    member: &str,
    currency: Option<palier_core::money::Currency>,
    now: Timestamp,
) -> String {
    let currency = currency.or_else(|| program.currencies.first().copied());
    let Some(currency) = currency else { return String::new() };
    let amount = currency.format(Minor(currency.minor_per_major() * 1000));
    let zero = currency.format(Minor::ZERO);
    let delivered = now.checked_add(SignedDuration::from_hours(24)).unwrap_or(now);
    let placed = json!({
        "id": "whatif-1", "type": "order.placed", "at": format_instant(now), "member": member,
        "order": "whatif-o-1", "currency": currency.code(),
        "lines": [{"line": "l-1", "sku": "whatif-sku", "brand": "Example", "category": "bags", "quantity": 1, "price": amount}],
        "delivery": zero, "payments": [{"method": "card", "amount": amount}],
    });
    let delivered =
        json!({"id": "whatif-2", "type": "order.delivered", "at": format_instant(delivered), "order": "whatif-o-1"});
    format!("{placed}\n{delivered}")
}

async fn render(
    state: &AppState,
    locale: Locale,
    auth: &StaffAuth,
    program_id: &str,
    member: &str,
    simulation: Option<Result<Simulation, String>>,
    form: Option<(String, String)>,
) -> Response {
    let live = &state.inner.live;
    let t = text(locale);
    let index = live.program_index(program_id).unwrap_or(0);
    let Some(live_program) = live.programs.get(index) else {
        return error_page(locale, StatusCode::NOT_FOUND, "/hub/staff", false);
    };
    let program = &live_program.program;
    let now = state.inner.clock.now();
    let journaled = if member.is_empty() { None } else { live_program.journaled(member, now) };
    let f = Formatter { program, locale, currency: journaled.as_ref().and_then(|m| m.currency) };
    let summary_now = journaled.as_ref().map(|m| summary(&f, m, &m.document(program, now)));
    let timeline = journaled.as_ref().map(|m| timeline_rows(&f, m.journal().iter())).unwrap_or_default();
    let (events_text, as_of_text) = form.unwrap_or_else(|| {
        let as_of = now.checked_add(SignedDuration::from_hours(24 * 60)).unwrap_or(now);
        (example_events(program, member, f.currency, now), format_instant(as_of))
    });
    let (simulation, simulation_error) = match simulation {
        Some(Ok(simulation)) => (Some(simulation), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    let simulation = simulation.or_else(|| {
        simulation_error.map(|error| Simulation {
            events: vec![EventResult { index: 0, accepted: false, detail: error }],
            summary: None,
            ahead: Vec::new(),
            as_of: String::new(),
        })
    });
    let program_ref = program.id.clone();
    let member_ref = member.to_string();
    let page = Page::new(locale, t.staff_title.to_string(), program.name.clone(), |tag| {
        console_href(tag, Some(&program_ref), Some(&member_ref))
    });
    let outbox_formatter = Formatter { program, locale, currency: None };
    let template = StaffPage {
        page,
        t,
        lang: locale.tag(),
        csrf: auth.session.as_deref().map(|s| csrf_token(state, s)),
        programs: live
            .programs
            .iter()
            .map(|p| ProgramOption {
                id: p.program.id.clone(),
                name: p.program.name.clone(),
                selected: p.program.id == program.id,
            })
            .collect(),
        program: program.id.clone(),
        member: member.to_string(),
        not_found: !member.is_empty() && journaled.is_none(),
        summary: summary_now,
        timeline,
        events_text,
        as_of_text,
        simulation,
        chart: chart(state, locale, index).await,
        pending: outbox_rows(state, &outbox_formatter, &program.id, palier_store::outbox::DeliveryStatus::Pending)
            .await,
        dead: outbox_rows(state, &outbox_formatter, &program.id, palier_store::outbox::DeliveryStatus::Dead).await,
    };
    html(StatusCode::OK, template.render(), &[])
}
