//! Webhooks: registration (`/v1/webhooks`), the signature every delivery carries,
//! and [`verify`], which receivers use to check it.
//!
//! A delivery is `POST url` with the notification's JSON as body and
//!
//! ```text
//! Palier-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//! Palier-Notification-Id: 3f0c…
//! ```
//!
//! where `v1` is the lowercase hex HMAC-SHA256, keyed with the webhook's secret, of
//! `"{t}.{body}"`, and `t` the Unix second the request was signed. Receivers
//! recompute it over the raw body and refuse a timestamp too far from their clock
//! (replays of a captured request); [`verify`] does both.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use palier_store::outbox::Webhook;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{AppState, Problem, authorize, store_failed};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Palier-Signature";
/// The header carrying the notification's stable id (receivers de-duplicate on it).
pub const ID_HEADER: &str = "Palier-Notification-Id";
/// How far a signature's timestamp may be from the receiver's clock by default.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

/// Every notification kind (`palier_core::notify`), for webhook filters.
pub const KINDS: &[&str] = &[
    "tier_reached",
    "tier_kept",
    "tier_lowered",
    "tier_expiring",
    "welcome_gift",
    "birthday",
    "benefit_granted",
    "points_available",
    "points_expiring",
    "store_credit_granted",
    "store_credit_expiring",
];

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Palier-Signature` value for a body sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// No `t=` or no `v1=`, or one that is not a number / hex.
    Malformed,
    /// `t` is further than the tolerance from `now`.
    Stale { timestamp: i64, now: i64 },
    /// No `v1` matches the body under this secret.
    Mismatch,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Malformed => f.write_str("malformed Palier-Signature header"),
            VerifyError::Stale { timestamp, now } => {
                write!(f, "signature timestamp {timestamp} is too far from now ({now})")
            }
            VerifyError::Mismatch => f.write_str("signature does not match the body"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Checks a `Palier-Signature` header against the raw body: a `v1` must be the
/// HMAC-SHA256 of `"{t}.{body}"` under `secret` (compared in constant time), and `t`
/// within `tolerance_seconds` of `now` (Unix seconds). Several `v1` may be given
/// (one matching is enough).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_seconds: u64) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value.parse::<i64>().map_err(|_| VerifyError::Malformed)?),
            Some(("v1", value)) => signatures.push(decode_hex(value).ok_or(VerifyError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance_seconds {
        return Err(VerifyError::Stale { timestamp, now });
    }
    let expected = mac(secret, timestamp, body);
    if signatures.iter().any(|signature| expected.clone().verify_slice(signature).is_ok()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0_u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// A webhook as the API shows it (never its secret).
pub(crate) fn webhook_json(webhook: &Webhook) -> Value {
    json!({
        "id": webhook.id,
        "url": webhook.url,
        "kinds": webhook.kinds,
        "created_at": jiff::Timestamp::from_second(webhook.created_unix_seconds)
            .map(palier_core::calendar::format_instant)
            .ok(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWebhook {
    url: String,
    secret: Option<String>,
    kinds: Option<Vec<String>>,
}

fn invalid(detail: String) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook", detail)
}

/// `POST /v1/webhooks` (admin): registers a receiver; answers its id and its signing
/// secret (shown this once).
pub(crate) async fn post_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewWebhook>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let key = authorize(&state, &headers, "admin")?;
    let Json(request) = body.map_err(|e| invalid(e.body_text()))?;
    let url = reqwest::Url::parse(&request.url).map_err(|e| invalid(format!("url: {:?}: {e}", request.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!("url: {:?} is not an http:// or https:// URL", request.url)));
    }
    let secret = match request.secret {
        Some(secret) if (16..=256).contains(&secret.len()) => secret,
        Some(_) => return Err(invalid("secret: from 16 to 256 bytes".into())),
        None => format!("whsec_{}", random_hex(32)),
    };
    let mut kinds = request.kinds.unwrap_or_default();
    if let Some(unknown) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
        return Err(invalid(format!("kinds: {unknown:?} is not one of {}", KINDS.join(", "))));
    }
    kinds.sort();
    kinds.dedup();
    let webhook = Webhook {
        id: format!("wh_{}", random_hex(8)),
        url: url.to_string(),
        secret,
        kinds,
        created_unix_seconds: jiff::Timestamp::now().as_second(),
    };
    let store = &state.inner.store;
    store.insert_webhook(&webhook).await.map_err(store_failed)?;
    let audit = palier_store::NewAudit {
        at_unix_nanos: state.inner.clock.now().as_nanosecond() as i64,
        actor: key,
        action: "webhook.created".into(),
        subject: webhook.id.clone(),
        detail: json!({"url": webhook.url, "kinds": webhook.kinds}).to_string(),
    };
    store.append_audit(&audit).await.map_err(store_failed)?;
    state.inner.notifications.reload_webhooks(store).await.map_err(store_failed)?;
    let mut answer = webhook_json(&webhook);
    answer["secret"] = json!(webhook.secret);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /v1/webhooks` (admin).
pub(crate) async fn list_webhooks(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Problem> {
    authorize(&state, &headers, "admin")?;
    let webhooks = state.inner.store.webhooks().await.map_err(store_failed)?;
    Ok(Json(json!({"webhooks": webhooks.iter().map(webhook_json).collect::<Vec<_>>()})).into_response())
}

/// `DELETE /v1/webhooks/{id}` (admin): it receives nothing more; its pending
/// deliveries become dead letters.
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let key = authorize(&state, &headers, "admin")?;
    let store = &state.inner.store;
    if !store.delete_webhook(&id, jiff::Timestamp::now().as_nanosecond() as i64).await.map_err(store_failed)? {
        return Err(Problem::new(StatusCode::NOT_FOUND, "unknown_webhook", format!("no webhook {id:?}")));
    }
    let audit = palier_store::NewAudit {
        at_unix_nanos: state.inner.clock.now().as_nanosecond() as i64,
        actor: key,
        action: "webhook.deleted".into(),
        subject: id,
        detail: "{}".into(),
    };
    store.append_audit(&audit).await.map_err(store_failed)?;
    state.inner.notifications.reload_webhooks(store).await.map_err(store_failed)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_does_not() {
        let header = sign("whsec_test", 1_767_225_600, b"{\"a\":1}");
        assert!(header.starts_with("t=1767225600,v1="));
        assert_eq!(verify("whsec_test", &header, b"{\"a\":1}", 1_767_225_600 + 10, 300), Ok(()));
        assert_eq!(verify("whsec_test", &header, b"{\"a\":2}", 1_767_225_600, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify("other-secret", &header, b"{\"a\":1}", 1_767_225_600, 300), Err(VerifyError::Mismatch));
    }

    #[test]
    fn stale_and_malformed_signatures_are_refused() {
        let header = sign("s", 1_000, b"x");
        assert_eq!(verify("s", &header, b"x", 1_301, 300), Err(VerifyError::Stale { timestamp: 1_000, now: 1_301 }));
        assert_eq!(verify("s", &header, b"x", 699, 300), Err(VerifyError::Stale { timestamp: 1_000, now: 699 }));
        assert_eq!(verify("s", "v1=00", b"x", 1_000, 300), Err(VerifyError::Malformed));
        assert_eq!(verify("s", "t=1000", b"x", 1_000, 300), Err(VerifyError::Malformed));
        assert_eq!(verify("s", "t=1000,v1=zz", b"x", 1_000, 300), Err(VerifyError::Malformed));
        // A second, matching v1 (secret rotation) is enough.
        let good = sign("s", 1_000, b"x");
        let both = format!("t=1000,v1={},{}", "00".repeat(32), good.split_once(',').map(|(_, v)| v).unwrap_or(""));
        assert_eq!(verify("s", &both, b"x", 1_000, 300), Ok(()));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231-style check against an independent computation of the same input.
        let header = sign("key", 1, b"body");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"key").expect("any key length");
        mac.update(b"1.body");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(header, format!("t=1,v1={hex}"));
    }
}
