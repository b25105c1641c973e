//! API keys: `Authorization: Bearer KEY`. Only a SHA-256 hash of a key is stored;
//! keys are compared in constant time. Scopes: `events:write`, `members:read`,
//! `checkout:write` (quotes and holds), `ledger:write` (adjustments, issued codes),
//! `members:write` (consents, corrections, member tokens), `privacy` (export,
//! erasure), `admin` (which implies every scope).
//!
//! Member tokens (`pm1.PAYLOAD.SIGNATURE`) let one member read their own data: the
//! payload names the program, the member and the expiry, signed with HMAC-SHA256
//! under a secret kept in the store. They open only that member's routes.

use std::sync::RwLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use palier_store::{KeyRecord, NewKey, Store, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SCOPES: &[&str] =
    &["events:write", "members:read", "members:write", "checkout:write", "ledger:write", "privacy", "admin"];

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An operator's API key (its id).
    Key(String),
    /// A member, through a member token.
    Member { program: String, member: String },
}

const TOKEN_PREFIX: &str = "pm1.";

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
    /// Signs member tokens.
    token_secret: Vec<u8>,
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
    pub fn new(admin_key: Option<&str>, records: &[KeyRecord], token_secret: Vec<u8>) -> KeyRing {
        let ring = KeyRing { admin_hash: admin_key.map(hash_secret), keys: RwLock::new(Vec::new()), token_secret };
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

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.token_secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key"))
    }

    /// A token that opens `member`'s own routes until `expires_unix` (seconds).
    pub fn member_token(&self, program: &str, member: &str, expires_unix: i64) -> String {
        let payload = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"p": program, "m": member, "exp": expires_unix}).to_string().as_bytes());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{TOKEN_PREFIX}{payload}.{signature}")
    }

    /// The member a token opens, if its signature holds and it has not expired.
    pub fn check_member_token(&self, token: &str, now_unix: i64) -> Result<(String, String), Denied> {
        let rest = token.strip_prefix(TOKEN_PREFIX).ok_or(Denied::Unauthenticated("invalid_token"))?;
        let (payload, signature) = rest.split_once('.').ok_or(Denied::Unauthenticated("invalid_token"))?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| Denied::Unauthenticated("invalid_token"))?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&signature).map_err(|_| Denied::Unauthenticated("invalid_token"))?;
        let claims: serde_json::Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(Denied::Unauthenticated("invalid_token"))?;
        let (Some(program), Some(member), Some(expires)) =
            (claims["p"].as_str(), claims["m"].as_str(), claims["exp"].as_i64())
        else {
            return Err(Denied::Unauthenticated("invalid_token"));
        };
        if expires <= now_unix {
            return Err(Denied::Unauthenticated("expired_token"));
        }
        Ok((program.to_string(), member.to_string()))
    }

    /// Checks a member route: a member token for this very member, or a key with
    /// the scope.
    pub fn authorize_member(
        &self,
        header: Option<&str>,
        scope: &str,
        member: &str,
        now_unix: i64,
    ) -> Result<Caller, Denied> {
        if let Some(token) = bearer(header).filter(|t| t.starts_with(TOKEN_PREFIX)) {
            let (token_program, token_member) = self.check_member_token(token, now_unix)?;
            if token_member != member {
                return Err(Denied::Forbidden("a member token opens its own member's routes only".into()));
            }
            return Ok(Caller::Member { program: token_program, member: token_member });
        }
        self.authorize(header, scope).map(Caller::Key)
    }

    /// Checks a request's `Authorization` header for a scope; returns the key id.
    pub fn authorize(&self, header: Option<&str>, scope: &str) -> Result<String, Denied> {
        let Some(secret) = bearer(header) else {
            return Err(Denied::Unauthenticated("missing_key"));
        };
        if secret.starts_with(TOKEN_PREFIX) {
            return Err(Denied::Forbidden("a member token opens its own member's routes only".into()));
        }
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

/// The credential of a `Bearer` header (the scheme is case-insensitive, RFC 9110 §11.1).
fn bearer(header: Option<&str>) -> Option<&str> {
    header
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, secret)| secret.trim())
}
