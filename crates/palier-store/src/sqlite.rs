//! The embedded SQLite backend: one writer connection, a few readers, WAL.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::batch::{Appended, Batch, Existing};
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

    /// One transaction: multi-row `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id, seq`
    /// statements over the batch's first occurrence of each id, in batch order, then
    /// `SELECT`s for the ids that were already stored.
    pub(crate) async fn append(&self, events: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        let batch = Batch::new(events);
        // IMMEDIATE takes the write lock at once; with one writer connection it is free
        // unless another process holds it, and then busy_timeout waits for it.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(q("beginning an append"))?;

        let mut appended = Appended::with_capacity(batch.offered.len());
        for chunk in chunks(&batch.offered) {
            let sql = insert_sql(chunk.len());
            let mut insert = sqlx::query_as::<_, (String, i64)>(&sql);
            for event in chunk {
                insert = insert
                    .bind(&event.id)
                    .bind(&event.program)
                    .bind(&event.member)
                    .bind(event.order.as_deref())
                    .bind(event.at_unix_nanos)
                    .bind(&event.body)
                    .bind(event.body_sha256.as_slice())
                    .bind(event.received_unix_nanos);
            }
            appended.extend(insert.fetch_all(&mut *tx).await.map_err(q("appending events"))?);
        }

        let missing = batch.not_inserted(&appended);
        let mut existing = Existing::with_capacity(missing.len());
        for chunk in chunks(&missing) {
            let sql = format!("SELECT id, seq, body_sha256 FROM events WHERE id IN ({})", placeholders(chunk.len()));
            let mut select = sqlx::query_as::<_, (String, i64, Vec<u8>)>(&sql);
            for id in chunk {
                select = select.bind(*id);
            }
            for (id, seq, hash) in select.fetch_all(&mut *tx).await.map_err(q("reading existing events"))? {
                let hash = sha256(KIND, "events.body_sha256", &id, hash)?;
                existing.insert(id, (seq, hash));
            }
        }

        let outcomes = batch.outcomes(KIND, &appended, &existing)?;
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

/// The most rows one statement carries: 8 parameters a row stays far below SQLite's
/// limit of 32766 parameters.
const MAX_ROWS_PER_STATEMENT: usize = 512;

/// Splits into chunks whose lengths are powers of two (512, 256, …, 1), in order: a batch
/// of any size then uses at most ten statement shapes, each prepared once per connection.
fn chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = rest.len().min(MAX_ROWS_PER_STATEMENT);
        let len = 1 << len.ilog2();
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO events (id, program, member, order_id, at_unix_nanos, body, body_sha256, received_unix_nanos) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?)");
    }
    // SQLite inserts the rows of a VALUES list in order, so their seqs follow the batch;
    // RETURNING comes back in no promised order, hence the id.
    sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id, seq");
    sql
}

fn placeholders(n: usize) -> String {
    let mut list = "?,".repeat(n);
    list.pop();
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_in_order() {
        let items: Vec<usize> = (0..1300).collect();
        let lens: Vec<usize> = chunks(&items).map(<[usize]>::len).collect();
        assert_eq!(lens, [512, 512, 256, 16, 4]);
        assert_eq!(chunks(&items).flatten().copied().collect::<Vec<_>>(), items);
        assert_eq!(chunks(&items[..1]).count(), 1);
        assert_eq!(chunks::<usize>(&[]).count(), 0);
    }
}
