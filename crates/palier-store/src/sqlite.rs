//! The embedded SQLite backend: one writer connection, a few readers, WAL.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::{
    AppendOutcome, EVENT_COLUMNS, KEY_COLUMNS, KeyRecord, NewEvent, NewKey, StoreError, StoredEvent, decode_event,
    decode_key, sha256,
};

pub(crate) const KIND: &str = "sqlite";

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Readers beside the single writer; WAL lets them read while it writes.
const READERS: u32 = 4;
/// How long an append waits for the writer connection before failing.
const WRITER_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    /// Exactly one connection: every write is serialized here, so writers in this
    /// process never contend for SQLite's lock.
    writer: SqlitePool,
    readers: SqlitePool,
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(WRITER_WAIT)
            .connect_with(options.clone())
            .await
            .map_err(open_failed)?;
        MIGRATOR.run(&writer).await.map_err(|source| StoreError::Migrate { backend: KIND, source })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.create_if_missing(false))
            .await
            .map_err(open_failed)?;
        Ok(SqliteStore { writer, readers })
    }

    pub(crate) async fn append(&self, events: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        // IMMEDIATE takes the write lock at once; with one writer connection it is free
        // unless another process holds it, and then busy_timeout waits for it.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(q("beginning an append"))?;
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO events \
                 (id, program, member, order_id, at_unix_nanos, body, body_sha256, received_unix_nanos) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING RETURNING seq",
            )
            .bind(&event.id)
            .bind(&event.program)
            .bind(&event.member)
            .bind(event.order.as_deref())
            .bind(event.at_unix_nanos)
            .bind(&event.body)
            .bind(event.body_sha256.as_slice())
            .bind(event.received_unix_nanos)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q("appending an event"))?;
            let outcome = match inserted {
                Some(seq) => AppendOutcome::Appended { seq },
                None => {
                    let (seq, hash): (i64, Vec<u8>) =
                        sqlx::query_as("SELECT seq, body_sha256 FROM events WHERE id = ?1")
                            .bind(&event.id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(q("reading an existing event"))?
                            .ok_or_else(|| StoreError::Corrupt {
                                backend: KIND,
                                what: format!("event {:?} was neither inserted nor found", event.id),
                            })?;
                    AppendOutcome::Existing { seq, body_sha256: sha256(KIND, "events.body_sha256", &event.id, hash)? }
                }
            };
            outcomes.push(outcome);
        }
        tx.commit().await.map_err(q("committing an append"))?;
        Ok(outcomes)
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

    pub(crate) async fn insert_key(&self, key: &NewKey, scopes: &str) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO api_keys (id, name, secret_sha256, scopes, created_unix_seconds) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.secret_sha256.as_slice())
        .bind(scopes)
        .bind(key.created_unix_seconds)
        .execute(&self.writer)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::KeyExists { id: key.id.clone() })
            }
            Err(e) => Err(q("storing an API key")(e)),
        }
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
        let done =
            sqlx::query("UPDATE api_keys SET revoked_unix_seconds = ?1 WHERE id = ?2 AND revoked_unix_seconds IS NULL")
                .bind(at_unix_seconds)
                .bind(key_id)
                .execute(&self.writer)
                .await
                .map_err(q("revoking an API key"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}
