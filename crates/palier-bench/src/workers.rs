//! The workers the load tool drives: posting events to palier, inserting the same
//! events raw into SQLite or PostgreSQL, and GETs.

use std::sync::Arc;

use hyper::StatusCode;
use rand::{Rng, SeedableRng};
use sqlx::Connection;

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
        let hash = row.hash();
        let result = sqlx::query(POSTGRES_INSERT)
            .bind(&row.id)
            .bind(&row.program)
            .bind(&row.member)
            .bind(row.order.as_deref())
            .bind(row.at_unix_nanos)
            .bind(row.body_str())
            .bind(hash.as_slice())
            .bind(now_nanos())
            .execute(&mut self.connection)
            .await;
        match result {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::Failed(format!("event {}: {e}", row.id)),
        }
    }
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
