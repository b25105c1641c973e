//! The workers the load tool drives: posting events to palier, inserting the same
//! events raw into SQLite or PostgreSQL, GETs, quotes and checkout hold + commit pairs.

use std::sync::Arc;

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use rand::{Rng, SeedableRng};
use sqlx::Connection;

use crate::checkout::{held_body, hold_body, order_body};
use crate::fixtures::{ADMIN_KEY, Row, accepted_one, now_nanos, sqlite_insert};
use crate::load::{Http, Outcome, Worker};

/// Posts its events to palier, one per request, in order; each must be accepted.
pub struct Poster {
    http: Http,
    rows: Arc<[Row]>,
    next: usize,
}

impl Poster {
    pub async fn connect(address: std::net::SocketAddr, rows: Arc<[Row]>) -> Result<Poster, String> {
        Ok(Poster { http: Http::connect(address).await?, rows, next: 0 })
    }

    /// One poster per part, each on its own connection.
    pub async fn all(address: std::net::SocketAddr, parts: &[Arc<[Row]>]) -> Result<Vec<Poster>, String> {
        let mut posters = Vec::with_capacity(parts.len());
        for part in parts {
            posters.push(Poster::connect(address, part.clone()).await?);
        }
        Ok(posters)
    }
}

impl Worker for Poster {
    async fn call(&mut self) -> Outcome {
        let Some(row) = self.rows.get(self.next) else { return Outcome::Exhausted };
        self.next += 1;
        match self.http.post("/v1/events", Some(ADMIN_KEY), row.body.clone()).await {
            Ok((StatusCode::OK, body)) if accepted_one(&body) => Outcome::Done,
            Ok((status, body)) => {
                Outcome::Failed(format!("event {}: {status}: {}", row.id, String::from_utf8_lossy(&body)))
            }
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// Inserts its rows into a raw SQLite connection, one row per transaction
/// (autocommit: each statement commits, WAL + synchronous=FULL).
pub struct SqliteInserter {
    connection: rusqlite::Connection,
    rows: Arc<[Row]>,
    next: usize,
}

impl SqliteInserter {
    pub fn new(connection: rusqlite::Connection, rows: Arc<[Row]>) -> SqliteInserter {
        SqliteInserter { connection, rows, next: 0 }
    }
}

impl Worker for SqliteInserter {
    async fn call(&mut self) -> Outcome {
        let Some(row) = self.rows.get(self.next) else { return Outcome::Exhausted };
        self.next += 1;
        // Synchronous on purpose: the raw loop, with nothing between the caller and SQLite.
        match sqlite_insert(&self.connection, row, now_nanos()) {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(format!("event {}: {e}", row.id)),
        }
    }
}

pub const POSTGRES_INSERT: &str = "INSERT INTO events (id, program, member, order_id, at_unix_nanos, body, \
     body_sha256, received_unix_nanos) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Inserts its rows into PostgreSQL on its own connection, one row per transaction
/// (autocommit), with a prepared statement.
pub struct PgInserter {
    connection: sqlx::PgConnection,
    rows: Arc<[Row]>,
    next: usize,
}

impl PgInserter {
    pub async fn connect(url: &str, rows: Arc<[Row]>) -> Result<PgInserter, String> {
        let connection = sqlx::PgConnection::connect(url).await.map_err(|e| format!("PostgreSQL {url}: {e}"))?;
        Ok(PgInserter { connection, rows, next: 0 })
    }
}

impl Worker for PgInserter {
    async fn call(&mut self) -> Outcome {
        let Some(row) = self.rows.get(self.next) else { return Outcome::Exhausted };
        self.next += 1;
        match pg_insert(&mut self.connection, row).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(format!("event {}: {e}", row.id)),
        }
    }
}

/// Inserts one row (its own transaction: autocommit) with a prepared statement.
async fn pg_insert(connection: &mut sqlx::PgConnection, row: &Row) -> Result<(), sqlx::Error> {
    let hash = row.hash();
    sqlx::query(POSTGRES_INSERT)
        .bind(&row.id)
        .bind(&row.program)
        .bind(&row.member)
        .bind(row.order.as_deref())
        .bind(row.at_unix_nanos)
        .bind(row.body_str())
        .bind(hash.as_slice())
        .bind(now_nanos())
        .execute(connection)
        .await?;
    Ok(())
}

/// GETs one of its paths at random (seeded), expecting 200.
pub struct Getter {
    http: Http,
    paths: Arc<[String]>,
    bearer: Option<&'static str>,
    rng: rand::rngs::SmallRng,
}

impl Getter {
    pub async fn all(
        address: std::net::SocketAddr,
        connections: usize,
        paths: Arc<[String]>,
        bearer: Option<&'static str>,
    ) -> Result<Vec<Getter>, String> {
        let mut getters = Vec::with_capacity(connections);
        for seed in 0..connections {
            getters.push(Getter {
                http: Http::connect(address).await?,
                paths: paths.clone(),
                bearer,
                rng: rand::rngs::SmallRng::seed_from_u64(seed as u64),
            });
        }
        Ok(getters)
    }
}

impl Worker for Getter {
    async fn call(&mut self) -> Outcome {
        let path = &self.paths[self.rng.random_range(0..self.paths.len())];
        match self.http.get(path, self.bearer).await {
            Ok((StatusCode::OK, _)) => Outcome::Done,
            Ok((status, body)) => Outcome::Failed(format!("GET {path}: {status}: {}", String::from_utf8_lossy(&body))),
            Err(e) => Outcome::Failed(e),
        }
    }
}

// ---- checkout ------------------------------------------------------------------------------

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// POSTs one of its baskets at random (seeded) to `/v1/checkout/quote`, expecting 200
/// and a holdable quote.
pub struct Quoter {
    http: Http,
    bodies: Arc<[Bytes]>,
    rng: rand::rngs::SmallRng,
}

impl Quoter {
    pub async fn all(
        address: std::net::SocketAddr,
        connections: usize,
        bodies: Arc<[Bytes]>,
    ) -> Result<Vec<Quoter>, String> {
        let mut quoters = Vec::with_capacity(connections);
        for seed in 0..connections {
            quoters.push(Quoter {
                http: Http::connect(address).await?,
                bodies: bodies.clone(),
                rng: rand::rngs::SmallRng::seed_from_u64(seed as u64),
            });
        }
        Ok(quoters)
    }
}

impl Worker for Quoter {
    async fn call(&mut self) -> Outcome {
        let body = self.bodies[self.rng.random_range(0..self.bodies.len())].clone();
        match self.http.post("/v1/checkout/quote", Some(ADMIN_KEY), body).await {
            Ok((StatusCode::OK, answer)) if contains(&answer, br#""holdable":true"#) => Outcome::Done,
            Ok((status, answer)) => {
                Outcome::Failed(format!("POST /v1/checkout/quote: {status}: {}", String::from_utf8_lossy(&answer)))
            }
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// The hold id in a `POST /v1/checkout/holds` answer: `{"hold":{…,"hold":"h-…",…},…}`.
fn hold_id(answer: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""hold":""#;
    let start = answer.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let length = answer[start..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&answer[start..start + length]).ok()
}

/// One client looping over its own members (no other client uses them): a hold of
/// points (a fresh Idempotency-Key), then the `order.placed` naming it; one call is the
/// pair, done when both are accepted.
pub struct HoldCommitter {
    http: Http,
    /// Each member and the body of its holds.
    members: Vec<(String, Bytes)>,
    next: u64,
}

impl HoldCommitter {
    /// One client per group of members, each on its own connection.
    pub async fn all(address: std::net::SocketAddr, groups: &[Vec<String>]) -> Result<Vec<HoldCommitter>, String> {
        let mut clients = Vec::with_capacity(groups.len());
        for group in groups {
            clients.push(HoldCommitter {
                http: Http::connect(address).await?,
                members: group.iter().map(|m| (m.clone(), Bytes::from(hold_body(m)))).collect(),
                next: 0,
            });
        }
        Ok(clients)
    }
}

impl Worker for HoldCommitter {
    async fn call(&mut self) -> Outcome {
        let (member, hold_body) = &self.members[self.next as usize % self.members.len()];
        self.next += 1;
        let key = format!("{member}-{}", self.next);
        let held = self
            .http
            .send_with(
                Method::POST,
                "/v1/checkout/holds",
                Some(ADMIN_KEY),
                &[("idempotency-key", &key)],
                hold_body.clone(),
            )
            .await;
        let hold = match &held {
            Ok((StatusCode::CREATED, answer)) => match hold_id(answer) {
                Some(hold) => hold,
                None => {
                    return Outcome::Failed(format!("hold {key}: no hold id in {}", String::from_utf8_lossy(answer)));
                }
            },
            Ok((status, answer)) => {
                return Outcome::Failed(format!("hold {key}: {status}: {}", String::from_utf8_lossy(answer)));
            }
            Err(e) => return Outcome::Failed(format!("hold {key}: {e}")),
        };
        // After the hold's answer, so at or after the hold's own instant (same clock).
        let order = order_body(&format!("o-{key}"), jiff::Timestamp::now(), member, hold);
        match self.http.post("/v1/events", Some(ADMIN_KEY), Bytes::from(order)).await {
            Ok((StatusCode::OK, answer)) if accepted_one(&answer) => Outcome::Done,
            Ok((status, answer)) => {
                Outcome::Failed(format!("order o-{key}: {status}: {}", String::from_utf8_lossy(&answer)))
            }
            Err(e) => Outcome::Failed(format!("order o-{key}: {e}")),
        }
    }
}

/// The rows a hold + commit pair stores (the `checkout.held` palier writes, then the
/// `order.placed`), made on demand for one member: what the raw baselines insert.
pub struct PairRows {
    member: String,
    next: u64,
}

impl PairRows {
    pub fn new(member: &str) -> PairRows {
        PairRows { member: member.to_owned(), next: 0 }
    }

    fn row(&mut self) -> Row {
        self.next += 1;
        let (pair, second) = (self.next.div_ceil(2), self.next.is_multiple_of(2));
        let at = jiff::Timestamp::now();
        let hold = format!("h-{}-{pair}", self.member);
        let order = format!("o-{}-{pair}", self.member);
        let (id, body, order_id) = if second {
            (format!("{order}-o"), order_body(&order, at, &self.member, &hold), Some(order))
        } else {
            (format!("{hold}-held"), held_body(&hold, at, &self.member), None)
        };
        Row {
            id,
            program: "perfone".into(),
            member: self.member.clone(),
            order: order_id,
            at_unix_nanos: at.as_nanosecond() as i64,
            body: Bytes::from(body),
        }
    }
}

/// A raw SQLite loop inserting the rows of hold + commit pairs, one row per transaction
/// (as [`SqliteInserter`]).
pub struct SqliteRowLoop {
    connection: rusqlite::Connection,
    rows: PairRows,
}

impl SqliteRowLoop {
    pub fn new(connection: rusqlite::Connection, member: &str) -> SqliteRowLoop {
        SqliteRowLoop { connection, rows: PairRows::new(member) }
    }
}

impl Worker for SqliteRowLoop {
    async fn call(&mut self) -> Outcome {
        let row = self.rows.row();
        match sqlite_insert(&self.connection, &row, now_nanos()) {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(format!("event {}: {e}", row.id)),
        }
    }
}

/// A raw PostgreSQL loop on its own connection inserting the rows of hold + commit
/// pairs, one row per transaction (as [`PgInserter`]).
pub struct PgRowLoop {
    connection: sqlx::PgConnection,
    rows: PairRows,
}

impl PgRowLoop {
    pub async fn connect(url: &str, member: &str) -> Result<PgRowLoop, String> {
        let connection = sqlx::PgConnection::connect(url).await.map_err(|e| format!("PostgreSQL {url}: {e}"))?;
        Ok(PgRowLoop { connection, rows: PairRows::new(member) })
    }
}

impl Worker for PgRowLoop {
    async fn call(&mut self) -> Outcome {
        let row = self.rows.row();
        match pg_insert(&mut self.connection, &row).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(format!("event {}: {e}", row.id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_id_is_read_from_the_answer() {
        let answer = br#"{"hold":{"at":"2026-01-01T00:00:00Z","codes":[],"hold":"h-00ff","member":"m"},"quote":{}}"#;
        assert_eq!(hold_id(answer), Some("h-00ff"));
        assert_eq!(hold_id(br#"{"quote":{}}"#), None);
    }
}
