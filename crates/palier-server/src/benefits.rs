//! Benefit endpoints (docs/benefits.md): what a member's tier gives them, and
//! spending one unit, decided by the single writer like every event.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use palier_core::benefits::definition;
use palier_core::calendar::format_instant;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::live::Decision;
use crate::{AppState, Problem, authorize_member, parse_as_of};

#[derive(Deserialize)]
pub(crate) struct BenefitQuery {
    program: Option<String>,
    as_of: Option<String>,
}

/// `GET /v1/members/{id}/benefits`: open benefits with what is left and until when,
/// and every grant (used, lapsed or withdrawn ones too).
pub(crate) async fn get_benefits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<BenefitQuery>,
) -> Result<Response, Problem> {
    let (program, _) = authorize_member(&state, &headers, "members:read", &id, query.program.as_deref())?;
    let as_of = parse_as_of(&state, query.as_of.as_deref())?;
    let live = &state.inner.live.programs[program];
    let member = live.member_at(&id, as_of).ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "unknown_member", format!("member {id:?} is not registered"))
    })?;
    let name = |benefit: &str| definition(&live.program, member.tier, benefit).map(|b| b.name.clone());
    let open: Vec<Value> = member
        .benefits(as_of)
        .iter()
        .map(|view| {
            json!({
                "benefit": view.benefit,
                "name": name(&view.benefit),
                "tier": live.program.tiers[view.tier].id,
                "grant": view.grant.as_str(),
                "remaining": view.remaining,
                "unlimited": view.remaining.is_none(),
                "used": view.used,
                "expires_at": view.expires_at.map(format_instant),
            })
        })
        .collect();
    let grants: Vec<Value> = member
        .grants
        .iter()
        .map(|grant| {
            let status = if grant.withdrawn_at.is_some_and(|w| w <= as_of) {
                "withdrawn"
            } else if grant.expires_at.is_some_and(|e| e <= as_of) {
                "lapsed"
            } else {
                "open"
            };
            json!({
                "benefit": grant.benefit.as_str(),
                "tier": live.program.tiers[grant.tier].id,
                "granted_at": format_instant(grant.granted_at.get()),
                "units": grant.units,
                "used": grant.uses.iter().map(|(at, event)| json!({"at": format_instant(*at), "event": event})).collect::<Vec<_>>(),
                "expires_at": grant.expires_at.map(format_instant),
                "withdrawn_at": grant.withdrawn_at.map(format_instant),
                "status": status,
            })
        })
        .collect();
    Ok(Json(json!({
        "member": id,
        "program": live.program.id,
        "tier": member.tier.map(|t| live.program.tiers[t].id.clone()),
        "as_of": format_instant(as_of),
        "benefits": open,
        "grants": grants,
    }))
    .into_response())
}

/// `POST /v1/members/{id}/benefits/{benefit}/use`: spends one unit (a `benefit.used`
/// event). Idempotent with an `Idempotency-Key`: a retry answers with the first use.
pub(crate) async fn post_use(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, benefit)): Path<(String, String)>,
    Query(query): Query<BenefitQuery>,
) -> Result<Response, Problem> {
    let (program, _) = authorize_member(&state, &headers, "members:write", &id, query.program.as_deref())?;
    let live = &state.inner.live.programs[program];
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).filter(|k| !k.is_empty() && k.len() <= 100);
    let event_id = match key {
        Some(key) => format!("use-{}-{key}", state.pseudonym(program, &id)),
        None => format!("use-{}", crate::checkout::fresh_id()),
    };
    if state.inner.live.known(&event_id).is_some() {
        return Ok(
            Json(json!({"member": id, "benefit": benefit, "event": event_id, "status": "duplicate"})).into_response()
        );
    }
    let event = json!({
        "id": event_id,
        "type": "benefit.used",
        "at": state.inner.clock.now().to_string(),
        "program": live.program.id,
        "member": id,
        "benefit": benefit,
    });
    match state.submit_one(event.to_string(), program, None).await? {
        Decision::Accepted => Ok((
            StatusCode::CREATED,
            Json(json!({"member": id, "benefit": benefit, "event": event_id, "status": "used"})),
        )
            .into_response()),
        Decision::Duplicate => {
            Ok(Json(json!({"member": id, "benefit": benefit, "event": event_id, "status": "duplicate"}))
                .into_response())
        }
        Decision::Rejected(rejection) => {
            let status =
                if rejection.code.as_str() == "unknown_benefit" { StatusCode::NOT_FOUND } else { StatusCode::CONFLICT };
            Err(Problem::new(status, rejection.code.as_str(), rejection.message))
        }
    }
}
