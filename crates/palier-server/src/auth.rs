//! API keys: `Authorization: Bearer KEY`. Only a SHA-256 hash of a key is stored;
//! keys are compared in constant time. Scopes: `events:write`, `members:read`,
//! `checkout:write` (quotes and holds), `ledger:write` (adjustments, issued codes),
//! `admin` (which implies every scope).

use std::sync::RwLock;

use palier_store::{KeyRecord, NewKey, Store, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SCOPES: &[&str] = &["events:write", "members:read", "checkout:write", "ledger:write", "admin"];

/// A key as the service holds it.
#[derive(Clone)]
struct Held {
    id: String,
    hash: [u8; 32],
    scopes: Vec<String>,
    revoked: bool,
}

/// Every key the service accepts.
pub struct KeyRing {
    /// `PALIER_ADMIN_KEY`, accepted with every scope.
    admin_hash: Option<[u8; 32]>,
    keys: RwLock<Vec<Held>>,
}

/// Why a request is not allowed.
pub enum Denied {
    /// No key, an unknown one, or a revoked one: 401.
    Unauthenticated(&'static str),
    /// A valid key without the scope: 403.
    Forbidden(String),
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new random key secret: `pk_` and 40 hex digits.
pub fn new_secret() -> String {
    let mut bytes = [0_u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("pk_{hex}")
}

/// Creates a key in the store; returns (key id, secret). The secret is shown once.
pub async fn create_key(
    store: &Store,
    name: &str,
    scopes: &[String],
    now: i64,
) -> Result<(String, String), StoreError> {
    let secret = new_secret();
    let id = format!("key_{}", &secret[3..11]);
    store
        .insert_key(&NewKey {
            id: id.clone(),
            name: name.to_string(),
            secret_sha256: hash_secret(&secret),
            scopes: scopes.to_vec(),
            created_unix_seconds: now,
        })
        .await?;
    Ok((id, secret))
}

impl KeyRing {
    pub fn new(admin_key: Option<&str>, records: &[KeyRecord]) -> KeyRing {
        let ring = KeyRing { admin_hash: admin_key.map(hash_secret), keys: RwLock::new(Vec::new()) };
        ring.replace(records);
        ring
    }

    /// Reloads the keys from the store's records.
    pub fn replace(&self, records: &[KeyRecord]) {
        let held = records
            .iter()
            .map(|r| Held {
                id: r.id.clone(),
                hash: r.secret_sha256,
                scopes: r.scopes.clone(),
                revoked: r.revoked_unix_seconds.is_some(),
            })
            .collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = held;
    }

    /// Checks a request's `Authorization` header for a scope; returns the key id.
    pub fn authorize(&self, header: Option<&str>, scope: &str) -> Result<String, Denied> {
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let secret = header.and_then(|h| h.split_once(' ')).filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
        let Some(secret) = secret.map(|(_, secret)| secret.trim()) else {
            return Err(Denied::Unauthenticated("missing_key"));
        };
        let hash = hash_secret(secret);
        if let Some(admin) = &self.admin_hash
            && bool::from(admin.ct_eq(&hash))
        {
            return Ok("admin".to_string());
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        // Every key is compared, in constant time, whatever matches.
        let mut found: Option<&Held> = None;
        for key in keys.iter() {
            if bool::from(key.hash.ct_eq(&hash)) {
                found = Some(key);
            }
        }
        let Some(key) = found else { return Err(Denied::Unauthenticated("unknown_key")) };
        if key.revoked {
            return Err(Denied::Unauthenticated("revoked_key"));
        }
        if key.scopes.iter().any(|s| s == scope || s == "admin") {
            Ok(key.id.clone())
        } else {
            Err(Denied::Forbidden(format!("key {} lacks the scope {scope}", key.id)))
        }
    }
}
