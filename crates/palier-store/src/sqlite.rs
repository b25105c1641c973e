//! The embedded SQLite backend: one writer connection, a few readers, WAL.

use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::audit::{AuditRecord, GENESIS, NewAudit, link_hash};
use crate::{
    AUDIT_COLUMNS, AppendOutcome, EVENT_COLUMNS, EventRewrite, KEY_COLUMNS, KeyRecord, NewEvent, NewKey, StoreError,
    StoredEvent, decode_audit, decode_event, decode_key, sha256,
};

pub(crate) const KIND: &str = "sqlite";

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Readers beside the single writer; WAL lets them read while it writes.
const READERS: u32 = 4;

#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    /// The only writer (events and keys), so writers in this process never contend
    /// for SQLite's lock: a plain SQLite connection used from a blocking thread,
    /// one hand-off per batch and cached prepared statements (sqlx's async SQLite
    /// driver costs a thread hand-off per statement, which single-event commits feel).
    appender: Arc<std::sync::Mutex<rusqlite::Connection>>,
    pub(crate) readers: SqlitePool,
}

fn q(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + Copy {
    StoreError::query(KIND, what)
}

impl SqliteStore {
    pub(crate) async fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let open_failed = |source| StoreError::Open { backend: KIND, location: path.to_owned(), source };
        let migrating =
            SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(open_failed)?;
        MIGRATOR.run(&migrating).await.map_err(|source| StoreError::Migrate { backend: KIND, source })?;
        migrating.close().await;
        let appender = rusqlite::Connection::open(path)
            .and_then(|connection| {
                connection.pragma_update(None, "journal_mode", "WAL")?;
                connection.pragma_update(None, "synchronous", "FULL")?;
                connection.pragma_update(None, "foreign_keys", "ON")?;
                // Erasure rewrites rows: freed space is zeroed, not left readable.
                connection.pragma_update(None, "secure_delete", "ON")?;
                connection.busy_timeout(Duration::from_secs(5))?;
                Ok(connection)
            })
            .map_err(|source| StoreError::Write { what: "opening the appender", source })?;
        let appender = Arc::new(std::sync::Mutex::new(appender));
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.create_if_missing(false))
            .await
            .map_err(open_failed)?;
        Ok(SqliteStore { appender, readers })
    }

    /// One transaction (`BEGIN IMMEDIATE` … `COMMIT`, durable on return): each event
    /// is inserted unless its id is stored (then read back), in batch order.
    pub(crate) async fn append(
        &self,
        events: &[NewEvent],
        audits: &[NewAudit],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let events = events.to_vec();
        let audits = audits.to_vec();
        self.write(move |connection| append_blocking(connection, &events, &audits)).await
    }

    pub(crate) async fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        sqlx::query(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq"))
            .fetch_all(&self.readers)
            .await
            .map_err(q("reading the audit log"))?
            .iter()
            .map(|row| decode_audit(KIND, row))
            .collect()
    }

    /// Rewrites events in place in one transaction, then checkpoints the WAL into the
    /// database file and truncates it, so the old bytes survive nowhere (with
    /// `secure_delete`, freed space is zeroed).
    pub(crate) async fn rewrite_events(&self, rewrites: &[EventRewrite]) -> Result<(), StoreError> {
        let rewrites = rewrites.to_vec();
        self.write(move |connection| {
            let write = |what: &'static str| move |source| StoreError::Write { what, source };
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(write("beginning a rewrite"))?;
            {
                let mut update = transaction
                    .prepare_cached(
                        "UPDATE events SET id = ?1, member = ?2, order_id = ?3, body = ?4, body_sha256 = ?5 \
                         WHERE seq = ?6",
                    )
                    .map_err(write("preparing a rewrite"))?;
                for rewrite in &rewrites {
                    update
                        .execute(rusqlite::params![
                            rewrite.id,
                            rewrite.member,
                            rewrite.order,
                            rewrite.body,
                            rewrite.body_sha256.as_slice(),
                            rewrite.seq
                        ])
                        .map_err(write("rewriting events"))?;
                }
            }
            transaction.commit().map_err(write("committing a rewrite"))?;
            for _ in 0..50 {
                let busy: i64 = connection
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
                    .map_err(write("checkpointing the WAL"))?;
                if busy == 0 {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(StoreError::Corrupt { backend: KIND, what: "the WAL could not be checkpointed (readers busy)".into() })
        })
        .await
    }

    pub(crate) async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT value FROM settings WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.readers)
            .await
            .map_err(q("reading a setting"))
    }

    pub(crate) async fn setting_or_insert(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (name, candidate) = (name.to_string(), candidate.to_vec());
        self.write(move |connection| {
            let write = |what: &'static str| move |source| StoreError::Write { what, source };
            connection
                .execute(
                    "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                    rusqlite::params![name, candidate],
                )
                .map_err(write("storing a setting"))?;
            connection
                .query_row("SELECT value FROM settings WHERE name = ?1", [&name], |row| row.get(0))
                .map_err(write("reading a setting"))
        })
        .await
    }

    pub(crate) async fn for_each_event(&self, page: i64, mut each: impl FnMut(StoredEvent)) -> Result<u64, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        let mut after = 0_i64;
        let mut count = 0_u64;
        loop {
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(page)
                .fetch_all(&self.readers)
                .await
                .map_err(q("reading a page of events"))?;
            let full = i64::try_from(rows.len()).is_ok_and(|n| n == page);
            for row in &rows {
                let event = decode_event(KIND, row)?;
                after = event.seq;
                count += 1;
                each(event);
            }
            if !full {
                return Ok(count);
            }
        }
    }

    pub(crate) async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))
            .bind(id)
            .fetch_optional(&self.readers)
            .await
            .map_err(q("reading an event"))?;
        row.as_ref().map(|row| decode_event(KIND, row)).transpose()
    }

    pub(crate) async fn member_events(&self, program: &str, member: &str) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE program = ?1 AND member = ?2 ORDER BY seq"))
            .bind(program)
            .bind(member)
            .fetch_all(&self.readers)
            .await
            .map_err(q("reading a member's events"))?
            .iter()
            .map(|row| decode_event(KIND, row))
            .collect()
    }

    pub(crate) async fn event_count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&self.readers).await.map_err(q("counting events"))
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await.map_err(q("ping"))?;
        Ok(())
    }

    /// Runs `work` on the writer connection, on a blocking thread.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let appender = self.appender.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = appender.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    pub(crate) async fn insert_key(&self, key: &NewKey, scopes: &str) -> Result<(), StoreError> {
        let key = key.clone();
        let scopes = scopes.to_string();
        self.write(move |connection| {
            let result = connection.execute(
                "INSERT INTO api_keys (id, name, secret_sha256, scopes, created_unix_seconds) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![key.id, key.name, key.secret_sha256.as_slice(), scopes, key.created_unix_seconds],
            );
            match result {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::KeyExists { id: key.id.clone() })
                }
                Err(source) => Err(StoreError::Write { what: "storing an API key", source }),
            }
        })
        .await
    }

    pub(crate) async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_unix_seconds DESC, id DESC"))
            .fetch_all(&self.readers)
            .await
            .map_err(q("listing API keys"))?
            .iter()
            .map(|row| decode_key(KIND, row))
            .collect()
    }

    pub(crate) async fn revoke_key(&self, key_id: &str, at_unix_seconds: i64) -> Result<bool, StoreError> {
        let key_id = key_id.to_string();
        self.write(move |connection| {
            connection
                .execute(
                    "UPDATE api_keys SET revoked_unix_seconds = ?1 WHERE id = ?2 AND revoked_unix_seconds IS NULL",
                    rusqlite::params![at_unix_seconds, key_id],
                )
                .map(|changed| changed == 1)
                .map_err(|source| StoreError::Write { what: "revoking an API key", source })
        })
        .await
    }

    pub(crate) async fn close(&self) {
        self.readers.close().await;
        // The writer connection closes when the last clone of the store is dropped.
    }
}

fn append_blocking(
    connection: &mut rusqlite::Connection,
    events: &[NewEvent],
    audits: &[NewAudit],
) -> Result<Vec<AppendOutcome>, StoreError> {
    let write = |what: &'static str| move |source| StoreError::Write { what, source };
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(write("beginning an append"))?;
    let mut outcomes = Vec::with_capacity(events.len());
    {
        let mut insert = transaction
            .prepare_cached(
                "INSERT INTO events (id, program, member, order_id, at_unix_nanos, body, body_sha256, \
                 received_unix_nanos) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING RETURNING seq",
            )
            .map_err(write("preparing an append"))?;
        let mut existing = transaction
            .prepare_cached("SELECT seq, body_sha256 FROM events WHERE id = ?1")
            .map_err(write("preparing an append"))?;
        for event in events {
            let params = rusqlite::params![
                event.id,
                event.program,
                event.member,
                event.order,
                event.at_unix_nanos,
                event.body,
                event.body_sha256.as_slice(),
                event.received_unix_nanos
            ];
            let mut rows = insert.query(params).map_err(write("appending events"))?;
            let inserted: Option<i64> = match rows.next().map_err(write("appending events"))? {
                Some(row) => Some(row.get(0).map_err(write("appending events"))?),
                None => None,
            };
            drop(rows);
            outcomes.push(match inserted {
                Some(seq) => AppendOutcome::Appended { seq },
                None => {
                    let (seq, hash): (i64, Vec<u8>) = existing
                        .query_row([&event.id], |row| Ok((row.get(0)?, row.get(1)?)))
                        .map_err(write("reading existing events"))?;
                    AppendOutcome::Existing { seq, body_sha256: sha256(KIND, "events.body_sha256", &event.id, hash)? }
                }
            });
        }
        if !audits.is_empty() {
            // The write transaction holds SQLite's lock: nobody else extends the chain.
            let last: Option<(i64, Vec<u8>)> = transaction
                .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                .map_err(write("reading the audit chain"))?;
            let (mut seq, mut prev) = match last {
                Some((seq, hash)) => (seq, sha256(KIND, "audit_log.hash", &seq.to_string(), hash)?),
                None => (0, GENESIS),
            };
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO audit_log (seq, at_unix_nanos, actor, action, subject, detail, prev_hash, hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(write("preparing an audit append"))?;
            for audit in audits {
                seq += 1;
                let hash = link_hash(&prev, seq, audit);
                insert
                    .execute(rusqlite::params![
                        seq,
                        audit.at_unix_nanos,
                        audit.actor,
                        audit.action,
                        audit.subject,
                        audit.detail,
                        prev.as_slice(),
                        hash.as_slice()
                    ])
                    .map_err(write("appending to the audit log"))?;
                prev = hash;
            }
            // The head of the chain, kept apart: removing the last entries is seen too.
            transaction
                .execute(
                    "INSERT INTO settings (name, value) VALUES ('audit_head', ?1) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    [crate::audit::head_bytes(seq, &prev)],
                )
                .map_err(write("recording the audit head"))?;
        }
    }
    transaction.commit().map_err(write("committing an append"))?;
    Ok(outcomes)
}
