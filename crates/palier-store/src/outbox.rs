//! The notification outbox (issue 6): notifications keyed by their stable id, their
//! delivery state per destination, the registered webhooks, and the scanner's
//! watermarks.
//!
//! # Invariants
//!
//! - **One row per notification id.** [`Store::insert_notifications`] inserts with
//!   `ON CONFLICT DO NOTHING`: deriving a notification again (after a crash, or by a
//!   scan that overlaps an earlier one) records nothing new and sends nothing again.
//!   A notification's deliveries are inserted in the same transaction as it.
//! - **A delivery is pending, delivered or dead.** Pending ones are due at
//!   `next_attempt`; [`Store::claim_deliveries`] takes due ones and pushes their
//!   `next_attempt` to a lease's end in the same statement, so a sender that dies
//!   mid-send leaves them due again when the lease ends (at least once), and two
//!   senders never take the same one at once.
//! - **Times** are Unix nanoseconds: `at` is the notification's business instant,
//!   everything else the wall clock of the process that wrote it.

use sqlx::Row;

use crate::{Backend, Store, StoreError};

/// A notification to record, with the destinations it is to be delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub id: String,
    pub program: String,
    pub member: String,
    pub kind: String,
    pub section: String,
    pub at_unix_nanos: i64,
    /// The JSON body sent to every destination, byte for byte.
    pub payload: String,
    /// Webhook ids, and `nats`.
    pub destinations: Vec<String>,
}

/// One destination's delivery of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub destination: String,
    pub attempts: i64,
    pub next_attempt_unix_nanos: i64,
    pub delivered_unix_nanos: Option<i64>,
    pub dead_unix_nanos: Option<i64>,
    pub last_error: Option<String>,
}

impl DeliveryRecord {
    pub fn status(&self) -> DeliveryStatus {
        match (self.delivered_unix_nanos, self.dead_unix_nanos) {
            (Some(_), _) => DeliveryStatus::Delivered,
            (None, Some(_)) => DeliveryStatus::Dead,
            (None, None) => DeliveryStatus::Pending,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        match text {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "dead" => Some(DeliveryStatus::Dead),
            _ => None,
        }
    }

    /// The SQL condition on `d` (an `outbox_deliveries` row) for this status.
    fn condition(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "d.delivered_unix_nanos IS NULL AND d.dead_unix_nanos IS NULL",
            DeliveryStatus::Delivered => "d.delivered_unix_nanos IS NOT NULL",
            DeliveryStatus::Dead => "d.delivered_unix_nanos IS NULL AND d.dead_unix_nanos IS NOT NULL",
        }
    }
}

/// A recorded notification and its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: String,
    pub program: String,
    pub member: String,
    pub kind: String,
    pub section: String,
    pub at_unix_nanos: i64,
    pub payload: String,
    pub created_unix_nanos: i64,
    pub deliveries: Vec<DeliveryRecord>,
}

/// Which notifications to list.
#[derive(Debug, Clone, Default)]
pub struct NotificationQuery {
    /// Those with at least one delivery in this state.
    pub status: Option<DeliveryStatus>,
    pub program: Option<String>,
    pub member: Option<String>,
    /// Those after this `(at, id)`, in that order.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// A delivery taken by a sender, with what it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub notification: String,
    pub destination: String,
    /// Sends started, this one included.
    pub attempts: i64,
    pub program: String,
    pub kind: String,
    pub payload: String,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; tried again at `retry_at`, or a dead letter when `None`.
    Failed {
        error: String,
        retry_at: Option<i64>,
    },
}

/// A registered webhook. The secret is kept in clear: it signs every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub secret: String,
    /// The kinds it receives; empty: every kind.
    pub kinds: Vec<String>,
    pub created_unix_seconds: i64,
}

/// The scanner's progress in one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub program: String,
    /// Every notification due at or before this instant was derived.
    pub scanned_to_unix_nanos: i64,
    /// The members of every event up to this `seq` were derived from the event's `at`.
    pub scanned_seq: i64,
}

/// A member whose events changed after a `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub member: String,
    /// The earliest `at` among those events.
    pub min_at_unix_nanos: i64,
    pub max_seq: i64,
}

const NOTIFICATION_COLUMNS: &str =
    "o.id, o.program, o.member, o.kind, o.section, o.at_unix_nanos, o.payload, o.created_unix_nanos";
const DELIVERY_COLUMNS: &str = "d.notification, d.destination, d.attempts, d.next_attempt_unix_nanos, \
     d.delivered_unix_nanos, d.dead_unix_nanos, d.last_error";

/// SQLite numbers its parameters `?1`; PostgreSQL `$1`. The SQL here is written for
/// PostgreSQL and turned into SQLite's form.
fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

fn write_error(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + Copy {
    move |source| StoreError::Write { what, source }
}

impl Store {
    /// Records notifications not recorded yet, each with a pending delivery to each of
    /// its destinations due at `now`, in one transaction. Returns how many were new.
    pub async fn insert_notifications(
        &self,
        notifications: &[NewNotification],
        now_unix_nanos: i64,
    ) -> Result<usize, StoreError> {
        if notifications.is_empty() {
            return Ok(0);
        }
        match &self.backend {
            Backend::Sqlite(s) => {
                let notifications = notifications.to_vec();
                s.write(move |connection| {
                    let transaction = connection
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(write_error("beginning a notification insert"))?;
                    let mut inserted = 0;
                    {
                        let mut insert = transaction
                            .prepare_cached(
                                "INSERT INTO outbox (id, program, member, kind, section, at_unix_nanos, payload, \
                                 created_unix_nanos) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
                            )
                            .map_err(write_error("preparing a notification insert"))?;
                        let mut deliver = transaction
                            .prepare_cached(
                                "INSERT INTO outbox_deliveries (notification, destination, next_attempt_unix_nanos) \
                                 VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                            )
                            .map_err(write_error("preparing a delivery insert"))?;
                        for n in &notifications {
                            let new = insert
                                .execute(rusqlite::params![
                                    n.id,
                                    n.program,
                                    n.member,
                                    n.kind,
                                    n.section,
                                    n.at_unix_nanos,
                                    n.payload,
                                    now_unix_nanos
                                ])
                                .map_err(write_error("recording a notification"))?;
                            if new == 1 {
                                inserted += 1;
                                for destination in &n.destinations {
                                    deliver
                                        .execute(rusqlite::params![n.id, destination, now_unix_nanos])
                                        .map_err(write_error("recording a delivery"))?;
                                }
                            }
                        }
                    }
                    transaction.commit().map_err(write_error("committing notifications"))?;
                    Ok(inserted)
                })
                .await
            }
            Backend::Postgres(s) => {
                let q = |what| StoreError::query(crate::postgres::KIND, what);
                let mut transaction = s.pool.begin().await.map_err(q("beginning a notification insert"))?;
                let inserted: Vec<String> = sqlx::query_scalar(
                    "INSERT INTO outbox (id, program, member, kind, section, at_unix_nanos, payload, created_unix_nanos) \
                     SELECT id, program, member, kind, section, at_unix_nanos, payload, $8 \
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[]) \
                          AS n (id, program, member, kind, section, at_unix_nanos, payload) \
                     ORDER BY id COLLATE \"C\" \
                     ON CONFLICT (id) DO NOTHING RETURNING id",
                )
                .bind(notifications.iter().map(|n| n.id.as_str()).collect::<Vec<_>>())
                .bind(notifications.iter().map(|n| n.program.as_str()).collect::<Vec<_>>())
                .bind(notifications.iter().map(|n| n.member.as_str()).collect::<Vec<_>>())
                .bind(notifications.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>())
                .bind(notifications.iter().map(|n| n.section.as_str()).collect::<Vec<_>>())
                .bind(notifications.iter().map(|n| n.at_unix_nanos).collect::<Vec<_>>())
                .bind(notifications.iter().map(|n| n.payload.as_str()).collect::<Vec<_>>())
                .bind(now_unix_nanos)
                .fetch_all(&mut *transaction)
                .await
                .map_err(q("recording notifications"))?;
                let new: std::collections::HashSet<&str> = inserted.iter().map(String::as_str).collect();
                let (ids, destinations): (Vec<&str>, Vec<&str>) = notifications
                    .iter()
                    .filter(|n| new.contains(n.id.as_str()))
                    .flat_map(|n| n.destinations.iter().map(move |d| (n.id.as_str(), d.as_str())))
                    .unzip();
                if !ids.is_empty() {
                    sqlx::query(
                        "INSERT INTO outbox_deliveries (notification, destination, next_attempt_unix_nanos) \
                         SELECT notification, destination, $3 FROM UNNEST($1::text[], $2::text[]) \
                         AS d (notification, destination) ON CONFLICT DO NOTHING",
                    )
                    .bind(ids)
                    .bind(destinations)
                    .bind(now_unix_nanos)
                    .execute(&mut *transaction)
                    .await
                    .map_err(q("recording deliveries"))?;
                }
                transaction.commit().await.map_err(q("committing notifications"))?;
                Ok(inserted.len())
            }
        }
    }

    /// Takes up to `limit` pending deliveries due at `now` (oldest due first), counts
    /// a send started for each and makes them due again at `lease_until` (if the
    /// sender never reports, they are sent again then). `nats`: whether deliveries to
    /// NATS are taken too.
    pub async fn claim_deliveries(
        &self,
        now_unix_nanos: i64,
        lease_until_unix_nanos: i64,
        limit: i64,
        nats: bool,
    ) -> Result<Vec<Claimed>, StoreError> {
        let due = "d.delivered_unix_nanos IS NULL AND d.dead_unix_nanos IS NULL AND d.next_attempt_unix_nanos <= $1 \
                   AND ($4 OR d.destination <> 'nats')";
        match &self.backend {
            Backend::Sqlite(s) => {
                let sql = for_sqlite(&format!(
                    "UPDATE outbox_deliveries SET attempts = attempts + 1, next_attempt_unix_nanos = $2 \
                     WHERE rowid IN (SELECT d.rowid FROM outbox_deliveries d WHERE {due} \
                                     ORDER BY d.next_attempt_unix_nanos LIMIT $3) \
                     RETURNING notification, destination, attempts"
                ));
                s.write(move |connection| {
                    let transaction = connection
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(write_error("beginning a claim"))?;
                    let mut claimed = Vec::new();
                    {
                        let mut update = transaction.prepare_cached(&sql).map_err(write_error("preparing a claim"))?;
                        let taken: Vec<(String, String, i64)> = update
                            .query_map(rusqlite::params![now_unix_nanos, lease_until_unix_nanos, limit, nats], |row| {
                                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                            })
                            .map_err(write_error("claiming deliveries"))?
                            .collect::<Result<_, _>>()
                            .map_err(write_error("claiming deliveries"))?;
                        let mut read = transaction
                            .prepare_cached("SELECT program, kind, payload FROM outbox WHERE id = ?1")
                            .map_err(write_error("preparing a claim"))?;
                        for (notification, destination, attempts) in taken {
                            let (program, kind, payload) = read
                                .query_row([&notification], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                                .map_err(write_error("reading a claimed notification"))?;
                            claimed.push(Claimed { notification, destination, attempts, program, kind, payload });
                        }
                    }
                    transaction.commit().map_err(write_error("committing a claim"))?;
                    claimed.sort_by(|a, b| (&a.notification, &a.destination).cmp(&(&b.notification, &b.destination)));
                    Ok(claimed)
                })
                .await
            }
            Backend::Postgres(s) => {
                let rows: Vec<(String, String, i64, String, String, String)> = sqlx::query_as(&format!(
                    "WITH due AS ( \
                         SELECT d.notification, d.destination FROM outbox_deliveries d WHERE {due} \
                         ORDER BY d.next_attempt_unix_nanos LIMIT $3 FOR UPDATE SKIP LOCKED \
                     ) \
                     UPDATE outbox_deliveries x SET attempts = x.attempts + 1, next_attempt_unix_nanos = $2 \
                     FROM due, outbox o \
                     WHERE x.notification = due.notification AND x.destination = due.destination \
                       AND o.id = x.notification \
                     RETURNING x.notification, x.destination, x.attempts, o.program, o.kind, o.payload"
                ))
                .bind(now_unix_nanos)
                .bind(lease_until_unix_nanos)
                .bind(limit)
                .bind(nats)
                .fetch_all(&s.pool)
                .await
                .map_err(StoreError::query(crate::postgres::KIND, "claiming deliveries"))?;
                let mut claimed: Vec<Claimed> = rows
                    .into_iter()
                    .map(|(notification, destination, attempts, program, kind, payload)| Claimed {
                        notification,
                        destination,
                        attempts,
                        program,
                        kind,
                        payload,
                    })
                    .collect();
                claimed.sort_by(|a, b| (&a.notification, &a.destination).cmp(&(&b.notification, &b.destination)));
                Ok(claimed)
            }
        }
    }

    /// Records how a send ended. A delivery already delivered or dead (replayed
    /// meanwhile, say) is left as it is, but a success is always recorded.
    pub async fn finish_delivery(
        &self,
        notification: &str,
        destination: &str,
        outcome: &DeliveryOutcome,
        now_unix_nanos: i64,
    ) -> Result<(), StoreError> {
        // Every statement names all five parameters ($1 notification, $2 destination,
        // $3 now, $4 error, $5 retry instant), as SQLite's binding wants.
        let (sql, error, retry_at): (&str, Option<String>, Option<i64>) = match outcome {
            DeliveryOutcome::Delivered => (
                "UPDATE outbox_deliveries SET delivered_unix_nanos = $3, dead_unix_nanos = NULL, last_error = $4 \
                 WHERE notification = $1 AND destination = $2 AND delivered_unix_nanos IS NULL AND $5 IS NULL",
                None,
                None,
            ),
            DeliveryOutcome::Failed { error, retry_at: Some(at) } => (
                "UPDATE outbox_deliveries SET next_attempt_unix_nanos = $5, last_error = $4 \
                 WHERE notification = $1 AND destination = $2 AND delivered_unix_nanos IS NULL \
                   AND dead_unix_nanos IS NULL AND $3 IS NOT NULL",
                Some(error.clone()),
                Some(*at),
            ),
            DeliveryOutcome::Failed { error, retry_at: None } => (
                "UPDATE outbox_deliveries SET dead_unix_nanos = $3, last_error = $4 \
                 WHERE notification = $1 AND destination = $2 AND delivered_unix_nanos IS NULL \
                   AND dead_unix_nanos IS NULL AND $5 IS NULL",
                Some(error.clone()),
                None,
            ),
        };
        match &self.backend {
            Backend::Sqlite(s) => {
                let sql = for_sqlite(sql);
                let (notification, destination) = (notification.to_string(), destination.to_string());
                s.write(move |connection| {
                    connection
                        .prepare_cached(&sql)
                        .and_then(|mut update| {
                            update.execute(rusqlite::params![
                                notification,
                                destination,
                                now_unix_nanos,
                                error,
                                retry_at
                            ])
                        })
                        .map_err(write_error("recording a delivery"))?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres(s) => {
                sqlx::query(sql)
                    .bind(notification)
                    .bind(destination)
                    .bind(now_unix_nanos)
                    .bind(error)
                    .bind(retry_at)
                    .execute(&s.pool)
                    .await
                    .map_err(StoreError::query(crate::postgres::KIND, "recording a delivery"))?;
                Ok(())
            }
        }
    }

    /// Makes a notification's dead or delivered deliveries pending again, due at
    /// `now`, with their attempts counted from zero. `None` if no such notification;
    /// otherwise how many deliveries were reset.
    pub async fn replay_notification(&self, id: &str, now_unix_nanos: i64) -> Result<Option<u64>, StoreError> {
        let exists = "SELECT COUNT(*) FROM outbox WHERE id = $1";
        let reset = "UPDATE outbox_deliveries SET delivered_unix_nanos = NULL, dead_unix_nanos = NULL, attempts = 0, \
                     next_attempt_unix_nanos = $2 \
                     WHERE notification = $1 AND (delivered_unix_nanos IS NOT NULL OR dead_unix_nanos IS NOT NULL)";
        match &self.backend {
            Backend::Sqlite(s) => {
                let (exists, reset, id) = (for_sqlite(exists), for_sqlite(reset), id.to_string());
                s.write(move |connection| {
                    let count: i64 = connection
                        .query_row(&exists, [&id], |row| row.get(0))
                        .map_err(write_error("reading a notification"))?;
                    if count == 0 {
                        return Ok(None);
                    }
                    let changed = connection
                        .execute(&reset, rusqlite::params![id, now_unix_nanos])
                        .map_err(write_error("replaying a notification"))?;
                    Ok(Some(changed as u64))
                })
                .await
            }
            Backend::Postgres(s) => {
                let q = |what| StoreError::query(crate::postgres::KIND, what);
                let count: i64 = sqlx::query_scalar(exists)
                    .bind(id)
                    .fetch_one(&s.pool)
                    .await
                    .map_err(q("reading a notification"))?;
                if count == 0 {
                    return Ok(None);
                }
                let done = sqlx::query(reset)
                    .bind(id)
                    .bind(now_unix_nanos)
                    .execute(&s.pool)
                    .await
                    .map_err(q("replaying a notification"))?;
                Ok(Some(done.rows_affected()))
            }
        }
    }

    /// Notifications in order of `(at, id)`, with their deliveries.
    pub async fn notifications(&self, query: &NotificationQuery) -> Result<Vec<NotificationRecord>, StoreError> {
        let mut conditions = Vec::new();
        if let Some(status) = query.status {
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.notification = o.id AND {})",
                status.condition()
            ));
        }
        // Parameters: $1 program, $2 member, $3 after-at, $4 after-id, $5 limit; each
        // condition is off when its parameter is NULL.
        conditions.push("($1 IS NULL OR o.program = $1)".into());
        conditions.push("($2 IS NULL OR o.member = $2)".into());
        conditions.push("($3 IS NULL OR (o.at_unix_nanos, o.id) > ($3, $4))".into());
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM outbox o WHERE {} ORDER BY o.at_unix_nanos, o.id LIMIT $5",
            conditions.join(" AND ")
        );
        let (after_at, after_id) = match &query.after {
            Some((at, id)) => (Some(*at), Some(id.clone())),
            None => (None, None),
        };
        let limit = query.limit.max(1);
        type Head = (String, String, String, String, String, i64, String, i64);
        type Delivery = (String, String, i64, i64, Option<i64>, Option<i64>, Option<String>);
        let deliveries_sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox_deliveries d WHERE d.notification IN (SELECT value FROM {}) \
             ORDER BY d.notification, d.destination",
            "UNNEST_PLACEHOLDER"
        );
        let (heads, deliveries): (Vec<Head>, Vec<Delivery>) = match &self.backend {
            Backend::Sqlite(s) => {
                let q = |what| StoreError::query(crate::sqlite::KIND, what);
                let sql = for_sqlite(&sql);
                let heads: Vec<Head> = sqlx::query_as(&sql)
                    .bind(&query.program)
                    .bind(&query.member)
                    .bind(after_at)
                    .bind(&after_id)
                    .bind(limit)
                    .fetch_all(&s.readers)
                    .await
                    .map_err(q("listing notifications"))?;
                let ids: Vec<&str> = heads.iter().map(|h| h.0.as_str()).collect();
                let ids = serde_json_array(&ids);
                let deliveries: Vec<Delivery> =
                    sqlx::query_as(&deliveries_sql.replace("UNNEST_PLACEHOLDER", "json_each(?1)"))
                        .bind(ids)
                        .fetch_all(&s.readers)
                        .await
                        .map_err(q("listing deliveries"))?;
                (heads, deliveries)
            }
            Backend::Postgres(s) => {
                let q = |what| StoreError::query(crate::postgres::KIND, what);
                let sql = sql
                    .replace("$1 IS NULL", "$1::text IS NULL")
                    .replace("$2 IS NULL", "$2::text IS NULL")
                    .replace("$3 IS NULL", "$3::int8 IS NULL");
                let heads: Vec<Head> = sqlx::query_as(&sql)
                    .bind(&query.program)
                    .bind(&query.member)
                    .bind(after_at)
                    .bind(&after_id)
                    .bind(limit)
                    .fetch_all(&s.pool)
                    .await
                    .map_err(q("listing notifications"))?;
                let ids: Vec<&str> = heads.iter().map(|h| h.0.as_str()).collect();
                let deliveries: Vec<Delivery> =
                    sqlx::query_as(&deliveries_sql.replace("UNNEST_PLACEHOLDER", "UNNEST($1::text[]) AS value"))
                        .bind(ids)
                        .fetch_all(&s.pool)
                        .await
                        .map_err(q("listing deliveries"))?;
                (heads, deliveries)
            }
        };
        let mut by_id: std::collections::HashMap<String, Vec<DeliveryRecord>> = std::collections::HashMap::new();
        for (notification, destination, attempts, next, delivered, dead, last_error) in deliveries {
            by_id.entry(notification).or_default().push(DeliveryRecord {
                destination,
                attempts,
                next_attempt_unix_nanos: next,
                delivered_unix_nanos: delivered,
                dead_unix_nanos: dead,
                last_error,
            });
        }
        Ok(heads
            .into_iter()
            .map(|(id, program, member, kind, section, at, payload, created)| NotificationRecord {
                deliveries: by_id.remove(&id).unwrap_or_default(),
                id,
                program,
                member,
                kind,
                section,
                at_unix_nanos: at,
                payload,
                created_unix_nanos: created,
            })
            .collect())
    }

    /// Erasure: the member's notifications name the pseudonym instead of the id, in
    /// their rows and in the bodies kept for delivery.
    pub async fn pseudonymise_outbox(&self, program: &str, member: &str, pseudonym: &str) -> Result<u64, StoreError> {
        let sql =
            "UPDATE outbox SET member = $3, payload = replace(payload, $2, $3) WHERE program = $1 AND member = $2";
        match &self.backend {
            Backend::Sqlite(s) => {
                let (sql, program, member, pseudonym) =
                    (for_sqlite(sql), program.to_string(), member.to_string(), pseudonym.to_string());
                s.write(move |connection| {
                    connection
                        .execute(&sql, rusqlite::params![program, member, pseudonym])
                        .map(|n| n as u64)
                        .map_err(write_error("pseudonymising notifications"))
                })
                .await
            }
            Backend::Postgres(s) => sqlx::query(sql)
                .bind(program)
                .bind(member)
                .bind(pseudonym)
                .execute(&s.pool)
                .await
                .map(|done| done.rows_affected())
                .map_err(StoreError::query(crate::postgres::KIND, "pseudonymising notifications")),
        }
    }

    /// Registers a webhook.
    pub async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let sql = "INSERT INTO webhooks (id, url, secret, kinds, created_unix_seconds) VALUES ($1, $2, $3, $4, $5)";
        let kinds = webhook.kinds.join(",");
        match &self.backend {
            Backend::Sqlite(s) => {
                let (sql, w) = (for_sqlite(sql), webhook.clone());
                s.write(move |connection| {
                    connection
                        .execute(&sql, rusqlite::params![w.id, w.url, w.secret, kinds, w.created_unix_seconds])
                        .map_err(write_error("registering a webhook"))?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres(s) => {
                sqlx::query(sql)
                    .bind(&webhook.id)
                    .bind(&webhook.url)
                    .bind(&webhook.secret)
                    .bind(kinds)
                    .bind(webhook.created_unix_seconds)
                    .execute(&s.pool)
                    .await
                    .map_err(StoreError::query(crate::postgres::KIND, "registering a webhook"))?;
                Ok(())
            }
        }
    }

    /// The webhooks not deleted, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let sql = "SELECT id, url, secret, kinds, created_unix_seconds FROM webhooks \
                   WHERE deleted_unix_seconds IS NULL ORDER BY created_unix_seconds, id";
        let rows = match &self.backend {
            Backend::Sqlite(s) => sqlx::query(sql)
                .fetch_all(&s.readers)
                .await
                .map_err(StoreError::query(crate::sqlite::KIND, "listing webhooks"))?
                .iter()
                .map(decode_webhook)
                .collect::<Result<Vec<_>, _>>(),
            Backend::Postgres(s) => sqlx::query(sql)
                .fetch_all(&s.pool)
                .await
                .map_err(StoreError::query(crate::postgres::KIND, "listing webhooks"))?
                .iter()
                .map(decode_webhook)
                .collect::<Result<Vec<_>, _>>(),
        };
        rows.map_err(|source| StoreError::Query { backend: self.kind(), what: "reading a webhook row", source })
    }

    /// Deletes a webhook: it receives nothing more, and its pending deliveries become
    /// dead letters. `false` if there is no such webhook (or it was deleted before).
    pub async fn delete_webhook(&self, id: &str, now_unix_nanos: i64) -> Result<bool, StoreError> {
        let delete = "UPDATE webhooks SET deleted_unix_seconds = $2 WHERE id = $1 AND deleted_unix_seconds IS NULL";
        let bury = "UPDATE outbox_deliveries SET dead_unix_nanos = $2, last_error = 'webhook deleted' \
                    WHERE destination = $1 AND delivered_unix_nanos IS NULL AND dead_unix_nanos IS NULL";
        let seconds = now_unix_nanos.div_euclid(1_000_000_000);
        match &self.backend {
            Backend::Sqlite(s) => {
                let (delete, bury, id) = (for_sqlite(delete), for_sqlite(bury), id.to_string());
                s.write(move |connection| {
                    let transaction = connection.transaction().map_err(write_error("deleting a webhook"))?;
                    let deleted = transaction
                        .execute(&delete, rusqlite::params![id, seconds])
                        .map_err(write_error("deleting a webhook"))?;
                    if deleted == 1 {
                        transaction
                            .execute(&bury, rusqlite::params![id, now_unix_nanos])
                            .map_err(write_error("deleting a webhook"))?;
                    }
                    transaction.commit().map_err(write_error("deleting a webhook"))?;
                    Ok(deleted == 1)
                })
                .await
            }
            Backend::Postgres(s) => {
                let q = |what| StoreError::query(crate::postgres::KIND, what);
                let mut transaction = s.pool.begin().await.map_err(q("deleting a webhook"))?;
                let deleted = sqlx::query(delete)
                    .bind(id)
                    .bind(seconds)
                    .execute(&mut *transaction)
                    .await
                    .map_err(q("deleting a webhook"))?
                    .rows_affected();
                if deleted == 1 {
                    sqlx::query(bury)
                        .bind(id)
                        .bind(now_unix_nanos)
                        .execute(&mut *transaction)
                        .await
                        .map_err(q("deleting a webhook"))?;
                }
                transaction.commit().await.map_err(q("deleting a webhook"))?;
                Ok(deleted == 1)
            }
        }
    }

    /// The scanner's watermarks, one per program scanned before.
    pub async fn watermarks(&self) -> Result<Vec<Watermark>, StoreError> {
        let sql = "SELECT program, scanned_to_unix_nanos, scanned_seq FROM notify_watermarks ORDER BY program";
        let rows: Vec<(String, i64, i64)> = match &self.backend {
            Backend::Sqlite(s) => sqlx::query_as(sql)
                .fetch_all(&s.readers)
                .await
                .map_err(StoreError::query(crate::sqlite::KIND, "reading watermarks"))?,
            Backend::Postgres(s) => sqlx::query_as(sql)
                .fetch_all(&s.pool)
                .await
                .map_err(StoreError::query(crate::postgres::KIND, "reading watermarks"))?,
        };
        Ok(rows
            .into_iter()
            .map(|(program, scanned_to_unix_nanos, scanned_seq)| Watermark {
                program,
                scanned_to_unix_nanos,
                scanned_seq,
            })
            .collect())
    }

    /// Stores a program's watermark. `scanned_seq` never moves back; `scanned_to` may
    /// (a manual clock set back: deriving again is harmless).
    pub async fn set_watermark(&self, watermark: &Watermark) -> Result<(), StoreError> {
        let sql = "INSERT INTO notify_watermarks (program, scanned_to_unix_nanos, scanned_seq) VALUES ($1, $2, $3) \
                   ON CONFLICT (program) DO UPDATE SET \
                   scanned_to_unix_nanos = excluded.scanned_to_unix_nanos, \
                   scanned_seq = CASE WHEN excluded.scanned_seq > notify_watermarks.scanned_seq \
                       THEN excluded.scanned_seq ELSE notify_watermarks.scanned_seq END";
        match &self.backend {
            Backend::Sqlite(s) => {
                let (sql, w) = (for_sqlite(sql), watermark.clone());
                s.write(move |connection| {
                    connection
                        .execute(&sql, rusqlite::params![w.program, w.scanned_to_unix_nanos, w.scanned_seq])
                        .map_err(write_error("storing a watermark"))?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres(s) => {
                sqlx::query(sql)
                    .bind(&watermark.program)
                    .bind(watermark.scanned_to_unix_nanos)
                    .bind(watermark.scanned_seq)
                    .execute(&s.pool)
                    .await
                    .map_err(StoreError::query(crate::postgres::KIND, "storing a watermark"))?;
                Ok(())
            }
        }
    }

    /// The members of a program with events stored after `seq`, with the earliest
    /// `at` and the latest `seq` among those events.
    pub async fn member_changes_after(&self, program: &str, seq: i64) -> Result<Vec<MemberChange>, StoreError> {
        let sql = "SELECT member, MIN(at_unix_nanos), MAX(seq) FROM events WHERE program = $1 AND seq > $2 \
                   GROUP BY member ORDER BY member";
        let rows: Vec<(String, i64, i64)> = match &self.backend {
            Backend::Sqlite(s) => sqlx::query_as(&for_sqlite(sql))
                .bind(program)
                .bind(seq)
                .fetch_all(&s.readers)
                .await
                .map_err(StoreError::query(crate::sqlite::KIND, "reading changed members"))?,
            Backend::Postgres(s) => sqlx::query_as(sql)
                .bind(program)
                .bind(seq)
                .fetch_all(&s.pool)
                .await
                .map_err(StoreError::query(crate::postgres::KIND, "reading changed members"))?,
        };
        Ok(rows
            .into_iter()
            .map(|(member, min_at_unix_nanos, max_seq)| MemberChange { member, min_at_unix_nanos, max_seq })
            .collect())
    }

    /// The highest `seq` stored (0 for an empty log).
    pub async fn max_seq(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COALESCE(MAX(seq), 0) FROM events";
        match &self.backend {
            Backend::Sqlite(s) => sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&s.readers)
                .await
                .map_err(StoreError::query(crate::sqlite::KIND, "reading the last seq")),
            Backend::Postgres(s) => sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&s.pool)
                .await
                .map_err(StoreError::query(crate::postgres::KIND, "reading the last seq")),
        }
    }
}

fn decode_webhook<R: Row>(row: &R) -> Result<Webhook, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kinds: String = row.try_get(3)?;
    Ok(Webhook {
        id: row.try_get(0)?,
        url: row.try_get(1)?,
        secret: row.try_get(2)?,
        kinds: if kinds.is_empty() { Vec::new() } else { kinds.split(',').map(str::to_owned).collect() },
        created_unix_seconds: row.try_get(4)?,
    })
}

/// A JSON array of strings (SQLite reads a list parameter with `json_each`).
fn serde_json_array(items: &[&str]) -> String {
    let mut out = String::from("[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}
