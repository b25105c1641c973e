//! palier's durable event log and API-key table.
//!
//! One type, [`Store`], over two backends:
//!
//! - **SQLite** (the default, embedded): one file, WAL journal, `synchronous=FULL`,
//!   `foreign_keys=ON`, `busy_timeout=5s`. Writes go through a pool of exactly one
//!   connection (appends queue on it and never meet `SQLITE_BUSY` from each other);
//!   reads use a separate pool of a few connections, which WAL lets run beside the writer.
//! - **PostgreSQL**, for a `postgres://` or `postgresql://` location, with the server's
//!   default durability (`synchronous_commit = on`).
//!
//! The schema lives in versioned migrations (`migrations/sqlite`, `migrations/postgres`),
//! embedded at compile time and applied by [`Store::open`]; sqlx's `_sqlx_migrations`
//! table is the version record.
//!
//! # Invariants
//!
//! - **Append-only, but for erasure.** Nothing here deletes an event; the only update
//!   is [`Store::rewrite_events`], which erasure uses to pseudonymise a member. An event id is stored at
//!   most once: a second append of the same id writes nothing and answers
//!   [`AppendOutcome::Existing`] with the first one's `seq` and body hash, so the caller
//!   can tell a replay (same hash) from a conflict (another hash).
//! - **A batch is one transaction.** [`Store::append`] commits all of a batch's inserts
//!   or none, and returns only once the commit is durable (one fsync for the batch).
//! - **`seq` is append order.** Within a batch, new events get increasing `seq` in batch
//!   order, and a later batch gets higher ones. `seq` may have gaps (PostgreSQL: a
//!   rolled-back batch, or an id found stored, leaves its drawn number unused). On
//!   PostgreSQL `seq` is drawn before commit, so two batches committing at once may
//!   become visible out of `seq` order; start-up replay ([`Store::for_each_event`]) is
//!   unaffected, but a reader that tails the log by `seq` while others append must allow
//!   for it.
//! - **Secrets are never stored**: an API key row holds the SHA-256 of its secret.
#![deny(clippy::unwrap_used)]

pub mod audit;
mod batch;
pub mod outbox;
mod postgres;
mod sqlite;

pub use audit::{AuditRecord, NewAudit};

use sqlx::{ColumnIndex, Decode, Row, Type};

/// An event to append: the validated event's routing fields plus the JSON as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: String,
    pub program: String,
    pub member: String,
    pub order: Option<String>,
    pub at_unix_nanos: i64,
    /// The event JSON exactly as received.
    pub body: String,
    pub body_sha256: [u8; 32],
    pub received_unix_nanos: i64,
}

/// A stored event rewritten in place (erasure): its new id, member and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRewrite {
    pub seq: i64,
    pub id: String,
    pub member: String,
    pub order: Option<String>,
    pub body: String,
    pub body_sha256: [u8; 32],
}

/// An event as stored, with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub program: String,
    pub member: String,
    pub order: Option<String>,
    pub at_unix_nanos: i64,
    pub body: String,
    pub body_sha256: [u8; 32],
    pub received_unix_nanos: i64,
}

/// What [`Store::append`] did with one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Written now, at `seq`.
    Appended { seq: i64 },
    /// An event with this id was already stored (before, or earlier in the same batch);
    /// nothing was written for this one.
    Existing { seq: i64, body_sha256: [u8; 32] },
}

impl AppendOutcome {
    /// The `seq` of the stored event with this id, whether written now or before.
    pub fn seq(&self) -> i64 {
        match *self {
            AppendOutcome::Appended { seq } | AppendOutcome::Existing { seq, .. } => seq,
        }
    }
}

/// An API key to store. Only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub id: String,
    pub name: String,
    pub secret_sha256: [u8; 32],
    /// Each scope non-empty and without a comma (they are stored comma-separated).
    pub scopes: Vec<String>,
    pub created_unix_seconds: i64,
}

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub scopes: Vec<String>,
    pub created_unix_seconds: i64,
    pub revoked_unix_seconds: Option<i64>,
}

/// Why a store operation failed. The message names the operation and the backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the {backend} store at {location} failed: {source}")]
    Open {
        backend: &'static str,
        /// The location with any password replaced by `***`.
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the {backend} store failed: {source}")]
    Migrate {
        backend: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("{what} in the {backend} store failed: {source}")]
    Query {
        backend: &'static str,
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what} in the sqlite store failed: {source}")]
    Write {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the sqlite writer stopped")]
    WriterGone,
    #[error("API key {id:?} not stored: a key with this id or secret already exists")]
    KeyExists { id: String },
    #[error("API key {id:?} not stored: {reason}")]
    InvalidKey { id: String, reason: String },
    #[error("the {backend} store holds unexpected data: {what}")]
    Corrupt { backend: &'static str, what: String },
}

impl StoreError {
    pub(crate) fn query(backend: &'static str, what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + Copy {
        move |source| StoreError::Query { backend, what, source }
    }
}

/// palier's store: the event log and the API keys, on SQLite or PostgreSQL.
/// Cloning is cheap (the connection pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens the store and applies any pending migrations.
    ///
    /// `location`: `postgres://…` or `postgresql://…` opens PostgreSQL; anything else is
    /// a SQLite file path, created if missing.
    pub async fn open(location: &str) -> Result<Store, StoreError> {
        let backend = if is_postgres_url(location) {
            Backend::Postgres(postgres::PgStore::open(location).await?)
        } else {
            Backend::Sqlite(sqlite::SqliteStore::open(location).await?)
        };
        Ok(Store { backend })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => sqlite::KIND,
            Backend::Postgres(_) => postgres::KIND,
        }
    }

    /// Appends a batch in one transaction (group commit). For each event, in order:
    /// [`AppendOutcome::Appended`] if it was written, or [`AppendOutcome::Existing`] if an
    /// event with its id is already stored (then nothing is written for it). Either all
    /// of the batch's inserts commit or none do (and this is an `Err`); `Ok` means the
    /// commit is durable.
    pub async fn append(&self, events: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        self.append_with_audit(events, &[]).await
    }

    /// [`Store::append`] with audit entries for the operator actions among the
    /// events, in the same transaction: the events and their audit trail commit
    /// together or not at all.
    pub async fn append_with_audit(
        &self,
        events: &[NewEvent],
        audits: &[NewAudit],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        if events.is_empty() && audits.is_empty() {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Sqlite(s) => s.append(events, audits).await,
            Backend::Postgres(s) => s.append(events, audits).await,
        }
    }

    /// Appends one audit entry (an operator action that writes no event).
    pub async fn append_audit(&self, audit: &NewAudit) -> Result<(), StoreError> {
        self.append_with_audit(&[], std::slice::from_ref(audit)).await.map(|_| ())
    }

    /// The recorded head of the audit chain (last `seq` and `hash`), if any.
    pub async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        let value = self.setting("audit_head").await?;
        Ok(value.as_deref().and_then(audit::parse_head))
    }

    /// A setting's value, if it has one.
    pub async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.setting(name).await,
            Backend::Postgres(s) => s.setting(name).await,
        }
    }

    /// The whole audit trail, in `seq` order.
    pub async fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.audit_log().await,
            Backend::Postgres(s) => s.audit_log().await,
        }
    }

    /// Rewrites stored events in place, in one transaction (erasure: the only change
    /// ever made to a stored event), and leaves no copy of the old bytes in the
    /// database's files (SQLite: WAL checkpointed and truncated, freed space zeroed;
    /// PostgreSQL: the table vacuumed).
    pub async fn rewrite_events(&self, rewrites: &[EventRewrite]) -> Result<(), StoreError> {
        if rewrites.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Sqlite(s) => s.rewrite_events(rewrites).await,
            Backend::Postgres(s) => s.rewrite_events(rewrites).await,
        }
    }

    /// A setting's value, storing `candidate` first if it has none (so concurrent
    /// starts agree on one value).
    pub async fn setting_or_insert(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.setting_or_insert(name, candidate).await,
            Backend::Postgres(s) => s.setting_or_insert(name, candidate).await,
        }
    }

    /// Calls `each` with every stored event in `seq` order, reading `page` rows at a time
    /// (a `page` of 0 counts as 1). Returns how many events were passed.
    pub async fn for_each_event(&self, page: usize, each: impl FnMut(StoredEvent)) -> Result<u64, StoreError> {
        let page = i64::try_from(page.max(1)).unwrap_or(i64::MAX);
        match &self.backend {
            Backend::Sqlite(s) => s.for_each_event(page, each).await,
            Backend::Postgres(s) => s.for_each_event(page, each).await,
        }
    }

    /// The event with this id, if stored.
    pub async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.event(id).await,
            Backend::Postgres(s) => s.event(id).await,
        }
    }

    /// One member's events in a program, in `seq` order.
    pub async fn member_events(&self, program: &str, member: &str) -> Result<Vec<StoredEvent>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.member_events(program, member).await,
            Backend::Postgres(s) => s.member_events(program, member).await,
        }
    }

    /// How many events are stored.
    pub async fn event_count(&self) -> Result<u64, StoreError> {
        let (backend, count) = match &self.backend {
            Backend::Sqlite(s) => (sqlite::KIND, s.event_count().await?),
            Backend::Postgres(s) => (postgres::KIND, s.event_count().await?),
        };
        u64::try_from(count).map_err(|_| StoreError::Corrupt { backend, what: format!("event count {count}") })
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.ping().await,
            Backend::Postgres(s) => s.ping().await,
        }
    }

    /// Stores an API key. Fails with [`StoreError::KeyExists`] if its id or secret hash is
    /// taken, and [`StoreError::InvalidKey`] if a scope is empty or holds a comma.
    pub async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        if let Some(scope) = key.scopes.iter().find(|s| s.is_empty() || s.contains(',')) {
            return Err(StoreError::InvalidKey {
                id: key.id.clone(),
                reason: format!("scope {scope:?} must be non-empty and without a comma"),
            });
        }
        let scopes = key.scopes.join(",");
        match &self.backend {
            Backend::Sqlite(s) => s.insert_key(key, &scopes).await,
            Backend::Postgres(s) => s.insert_key(key, &scopes).await,
        }
    }

    /// Every API key, newest first (by creation time, then by id).
    pub async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.keys().await,
            Backend::Postgres(s) => s.keys().await,
        }
    }

    /// Marks a key revoked at the given instant. `false` if no such key, or it was
    /// already revoked (its first revocation time is kept).
    pub async fn revoke_key(&self, key_id: &str, at_unix_seconds: i64) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.revoke_key(key_id, at_unix_seconds).await,
            Backend::Postgres(s) => s.revoke_key(key_id, at_unix_seconds).await,
        }
    }

    /// Closes the connection pools, waiting for connections in use to be returned.
    /// Clones of this store are closed too. Dropping every clone also closes it, but
    /// without waiting.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.close().await,
            Backend::Postgres(s) => s.close().await,
        }
    }
}

fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The location with the password of a `scheme://user:password@host` URL replaced by `***`.
pub(crate) fn redact(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return location.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => location.to_owned(),
    }
}

/// The event columns, in the order [`decode_event`] reads them.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, id, program, member, order_id, at_unix_nanos, body, body_sha256, received_unix_nanos";

pub(crate) fn decode_event<'r, R>(backend: &'static str, row: &'r R) -> Result<StoredEvent, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = StoreError::query(backend, "reading an event row");
    let id: String = row.try_get(1).map_err(read)?;
    let body_sha256 = sha256(backend, "events.body_sha256", &id, row.try_get(7).map_err(read)?)?;
    Ok(StoredEvent {
        seq: row.try_get(0).map_err(read)?,
        id,
        program: row.try_get(2).map_err(read)?,
        member: row.try_get(3).map_err(read)?,
        order: row.try_get(4).map_err(read)?,
        at_unix_nanos: row.try_get(5).map_err(read)?,
        body: row.try_get(6).map_err(read)?,
        body_sha256,
        received_unix_nanos: row.try_get(8).map_err(read)?,
    })
}

pub(crate) fn decode_key<'r, R>(backend: &'static str, row: &'r R) -> Result<KeyRecord, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = StoreError::query(backend, "reading an API key row");
    let id: String = row.try_get(0).map_err(read)?;
    let secret_sha256 = sha256(backend, "api_keys.secret_sha256", &id, row.try_get(2).map_err(read)?)?;
    let scopes: String = row.try_get(3).map_err(read)?;
    Ok(KeyRecord {
        name: row.try_get(1).map_err(read)?,
        secret_sha256,
        scopes: if scopes.is_empty() { Vec::new() } else { scopes.split(',').map(str::to_owned).collect() },
        created_unix_seconds: row.try_get(4).map_err(read)?,
        revoked_unix_seconds: row.try_get(5).map_err(read)?,
        id,
    })
}

/// The audit columns, in the order [`decode_audit`] reads them.
pub(crate) const AUDIT_COLUMNS: &str = "seq, at_unix_nanos, actor, action, subject, detail, prev_hash, hash";

pub(crate) fn decode_audit<'r, R>(backend: &'static str, row: &'r R) -> Result<AuditRecord, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = StoreError::query(backend, "reading an audit row");
    let seq: i64 = row.try_get(0).map_err(read)?;
    let name = seq.to_string();
    Ok(AuditRecord {
        seq,
        entry: NewAudit {
            at_unix_nanos: row.try_get(1).map_err(read)?,
            actor: row.try_get(2).map_err(read)?,
            action: row.try_get(3).map_err(read)?,
            subject: row.try_get(4).map_err(read)?,
            detail: row.try_get(5).map_err(read)?,
        },
        prev_hash: sha256(backend, "audit_log.prev_hash", &name, row.try_get(6).map_err(read)?)?,
        hash: sha256(backend, "audit_log.hash", &name, row.try_get(7).map_err(read)?)?,
    })
}

/// The key columns, in the order [`decode_key`] reads them.
pub(crate) const KEY_COLUMNS: &str = "id, name, secret_sha256, scopes, created_unix_seconds, revoked_unix_seconds";

pub(crate) fn sha256(backend: &'static str, column: &str, id: &str, bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    let len = bytes.len();
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt { backend, what: format!("{column} of {id:?} is {len} bytes, not 32") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(redact("postgres://u:secret@h:5432/db?x=1"), "postgres://u:***@h:5432/db?x=1");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgresql://h/db"), "postgresql://h/db");
        assert_eq!(redact("/tmp/palier.db"), "/tmp/palier.db");
    }

    #[test]
    fn postgres_urls_are_recognised() {
        assert!(is_postgres_url("postgres://localhost/x"));
        assert!(is_postgres_url("postgresql://localhost/x"));
        assert!(!is_postgres_url("palier.db"));
        assert!(!is_postgres_url("./postgres/palier.db"));
    }
}
