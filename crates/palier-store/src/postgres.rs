//! The PostgreSQL backend.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::audit::{AuditRecord, GENESIS, NewAudit, link_hash};
use crate::batch::{Appended, Batch, Existing};
use crate::{
    AUDIT_COLUMNS, AppendOutcome, EVENT_COLUMNS, EventRewrite, KEY_COLUMNS, KeyRecord, NewEvent, NewKey, StoreError,
    StoredEvent, decode_audit, decode_event, decode_key, redact, sha256,
};

pub(crate) const KIND: &str = "postgres";

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

const MAX_CONNECTIONS: u32 = 10;
/// An append that loses a deadlock or a serialization conflict is run again, this many
/// times at most. Appends insert in one global order of id and so never deadlock each
/// other; this is for anything else that writes the table (a trigger, an operator).
const APPEND_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub(crate) struct PgStore {
    pub(crate) pool: PgPool,
}

fn q(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + Copy {
    StoreError::query(KIND, what)
}

impl PgStore {
    pub(crate) async fn open(url: &str) -> Result<PgStore, StoreError> {
        let open_failed = |source| StoreError::Open { backend: KIND, location: redact(url), source };
        let options = PgConnectOptions::from_str(url).map_err(open_failed)?.application_name("palier");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            // No ping before each checkout: a broken connection fails its query, and
            // the caller sees that error; the round trip per commit is saved.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(open_failed)?;
        // The migrator holds an advisory lock, so stores opening at once migrate once.
        MIGRATOR.run(&pool).await.map_err(|source| StoreError::Migrate { backend: KIND, source })?;
        Ok(PgStore { pool })
    }

    pub(crate) async fn append(
        &self,
        events: &[NewEvent],
        audits: &[NewAudit],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut attempt = 1;
        loop {
            match self.append_once(events, audits).await {
                Err(StoreError::Query { source: sqlx::Error::Database(e), .. })
                    if attempt < APPEND_ATTEMPTS && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// One transaction: a single multi-row `INSERT … ON CONFLICT (id) DO NOTHING RETURNING`
    /// of the batch's first occurrence of each id, then one `SELECT` for the ids that were
    /// already stored.
    ///
    /// Two transactions inserting the same ids wait on each other's uncommitted rows; if
    /// each inserted them in its own batch order they could deadlock. So rows are inserted
    /// in byte order of id (a single global order: no wait cycle among appends), while
    /// their `seq`s, drawn from the sequence beforehand in ascending order, are handed out
    /// in batch order. An id already stored leaves its drawn `seq` unused (a gap, as a
    /// rolled-back transaction leaves too).
    async fn append_once(&self, events: &[NewEvent], audits: &[NewAudit]) -> Result<Vec<AppendOutcome>, StoreError> {
        let batch = Batch::new(events);
        let offered = &batch.offered;
        // One statement, so one round trip: in autocommit it is its own transaction,
        // atomic and durable when it returns. Rows already stored are immutable, so
        // reading them afterwards needs no transaction. A batch carrying audit entries
        // runs in a transaction with them instead (operator actions are rare).
        let mut transaction =
            if audits.is_empty() { None } else { Some(self.pool.begin().await.map_err(q("beginning an append"))?) };
        let query = sqlx::query_as(
            "WITH drawn AS MATERIALIZED ( \
                 SELECT nextval(pg_get_serial_sequence('events', 'seq')) AS seq \
                 FROM generate_series(1, cardinality($1::text[])) \
             ), numbered AS ( \
                 SELECT seq, row_number() OVER (ORDER BY seq) AS position FROM drawn \
             ) \
             INSERT INTO events \
             (seq, id, program, member, order_id, at_unix_nanos, body, body_sha256, received_unix_nanos) \
             SELECT numbered.seq, batch.id, batch.program, batch.member, batch.order_id, batch.at_unix_nanos, \
                    batch.body, batch.body_sha256, batch.received_unix_nanos \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::bytea[], \
                         $8::int8[]) \
                  WITH ORDINALITY AS batch (id, program, member, order_id, at_unix_nanos, body, body_sha256, \
                                            received_unix_nanos, position) \
             JOIN numbered ON numbered.position = batch.position \
             ORDER BY batch.id COLLATE \"C\" \
             ON CONFLICT (id) DO NOTHING RETURNING id, seq",
        )
        .bind(offered.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
        .bind(offered.iter().map(|e| e.program.as_str()).collect::<Vec<_>>())
        .bind(offered.iter().map(|e| e.member.as_str()).collect::<Vec<_>>())
        .bind(offered.iter().map(|e| e.order.as_deref()).collect::<Vec<_>>())
        .bind(offered.iter().map(|e| e.at_unix_nanos).collect::<Vec<_>>())
        .bind(offered.iter().map(|e| e.body.as_str()).collect::<Vec<_>>())
        .bind(offered.iter().map(|e| e.body_sha256.as_slice()).collect::<Vec<_>>())
        .bind(offered.iter().map(|e| e.received_unix_nanos).collect::<Vec<_>>());
        let inserted: Vec<(String, i64)> = match transaction.as_mut() {
            Some(transaction) => query.fetch_all(&mut **transaction).await,
            None => query.fetch_all(&self.pool).await,
        }
        .map_err(q("appending events"))?;
        if let Some(mut transaction) = transaction {
            append_audits(&mut transaction, audits).await?;
            transaction.commit().await.map_err(q("committing an append"))?;
        }

        let appended: Appended = inserted.into_iter().collect();
        let missing = batch.not_inserted(&appended);
        let mut existing = Existing::with_capacity(missing.len());
        if !missing.is_empty() {
            let rows: Vec<(String, i64, Vec<u8>)> =
                sqlx::query_as("SELECT id, seq, body_sha256 FROM events WHERE id = ANY($1)")
                    .bind(&missing)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q("reading existing events"))?;
            for (id, seq, hash) in rows {
                let hash = sha256(KIND, "events.body_sha256", &id, hash)?;
                existing.insert(id, (seq, hash));
            }
        }
        batch.outcomes(KIND, &appended, &existing)
    }

    pub(crate) async fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        sqlx::query(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq"))
            .fetch_all(&self.pool)
            .await
            .map_err(q("reading the audit log"))?
            .iter()
            .map(|row| decode_audit(KIND, row))
            .collect()
    }

    /// Rewrites events in place in one transaction, then vacuums the table so the
    /// old row versions are reclaimed.
    pub(crate) async fn rewrite_events(&self, rewrites: &[EventRewrite]) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await.map_err(q("beginning a rewrite"))?;
        for rewrite in rewrites {
            sqlx::query(
                "UPDATE events SET id = $1, member = $2, order_id = $3, body = $4, body_sha256 = $5 WHERE seq = $6",
            )
            .bind(&rewrite.id)
            .bind(&rewrite.member)
            .bind(&rewrite.order)
            .bind(&rewrite.body)
            .bind(rewrite.body_sha256.as_slice())
            .bind(rewrite.seq)
            .execute(&mut *transaction)
            .await
            .map_err(q("rewriting events"))?;
        }
        transaction.commit().await.map_err(q("committing a rewrite"))?;
        sqlx::query("VACUUM events").execute(&self.pool).await.map_err(q("vacuuming events"))?;
        Ok(())
    }

    pub(crate) async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("reading a setting"))
    }

    pub(crate) async fn setting_or_insert(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await
            .map_err(q("storing a setting"))?;
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(q("reading a setting"))
    }

    pub(crate) async fn for_each_event(&self, page: i64, mut each: impl FnMut(StoredEvent)) -> Result<u64, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let mut after = 0_i64;
        let mut count = 0_u64;
        loop {
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(page)
                .fetch_all(&self.pool)
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
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("reading an event"))?;
        row.as_ref().map(|row| decode_event(KIND, row)).transpose()
    }

    pub(crate) async fn member_events(&self, program: &str, member: &str) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE program = $1 AND member = $2 ORDER BY seq"))
            .bind(program)
            .bind(member)
            .fetch_all(&self.pool)
            .await
            .map_err(q("reading a member's events"))?
            .iter()
            .map(|row| decode_event(KIND, row))
            .collect()
    }

    pub(crate) async fn event_count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&self.pool).await.map_err(q("counting events"))
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(q("ping"))?;
        Ok(())
    }

    pub(crate) async fn insert_key(&self, key: &NewKey, scopes: &str) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO api_keys (id, name, secret_sha256, scopes, created_unix_seconds) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.secret_sha256.as_slice())
        .bind(scopes)
        .bind(key.created_unix_seconds)
        .execute(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing API keys"))?
            .iter()
            .map(|row| decode_key(KIND, row))
            .collect()
    }

    pub(crate) async fn revoke_key(&self, key_id: &str, at_unix_seconds: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_unix_seconds = $1 WHERE id = $2 AND revoked_unix_seconds IS NULL")
                .bind(at_unix_seconds)
                .bind(key_id)
                .execute(&self.pool)
                .await
                .map_err(q("revoking an API key"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// Extends the audit chain inside `transaction`; the table lock keeps any other
/// writer from extending it at the same time.
async fn append_audits(
    transaction: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    audits: &[NewAudit],
) -> Result<(), StoreError> {
    sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        .execute(&mut **transaction)
        .await
        .map_err(q("locking the audit log"))?;
    let last: Option<(i64, Vec<u8>)> = sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **transaction)
        .await
        .map_err(q("reading the audit chain"))?;
    let (mut seq, mut prev) = match last {
        Some((seq, hash)) => (seq, sha256(KIND, "audit_log.hash", &seq.to_string(), hash)?),
        None => (0, GENESIS),
    };
    for audit in audits {
        seq += 1;
        let hash = link_hash(&prev, seq, audit);
        sqlx::query(
            "INSERT INTO audit_log (seq, at_unix_nanos, actor, action, subject, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(audit.at_unix_nanos)
        .bind(&audit.actor)
        .bind(&audit.action)
        .bind(&audit.subject)
        .bind(&audit.detail)
        .bind(prev.as_slice())
        .bind(hash.as_slice())
        .execute(&mut **transaction)
        .await
        .map_err(q("appending to the audit log"))?;
        prev = hash;
    }
    // The head of the chain, kept apart: removing the last entries is seen too.
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ('audit_head', $1) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(crate::audit::head_bytes(seq, &prev))
    .execute(&mut **transaction)
    .await
    .map_err(q("recording the audit head"))?;
    Ok(())
}
