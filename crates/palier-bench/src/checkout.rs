//! `quote` and `hold-commit`: the checkout endpoints (docs/wallet.md) under load.
//!
//! - `quote`: `POST /v1/checkout/quote` of a 5-line NET-A-PORTER basket (GBP, web,
//!   code FIRST10, accepted: the members have no order yet) for random registered
//!   members, against the axum hello-world of `read`, same load tool, same run.
//! - `hold-commit`: clients on distinct Perfone members granted points, each looping
//!   `POST /v1/checkout/holds` (a fresh `Idempotency-Key`, points > 0) then `POST
//!   /v1/events` of the `order.placed` naming the hold and paying part in points; one
//!   operation is the pair, done when both are accepted. Each client cycles through
//!   members of its own (`--members-per-client`, registered and granted points by
//!   `ledger.adjusted` events beforehand), so that a member's history stays the size
//!   of a real shopper's over a run (a hold costs more the more orders its member
//!   has). On SQLite and on PostgreSQL, each beside the raw insert baseline of the
//!   ingest benchmarks (SQLite: one loop, one row per transaction, as `ingest-single`;
//!   PostgreSQL: one loop per client, one row per transaction, as `postgres`)
//!   inserting the same two events per pair.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::StatusCode;
use hyper::body::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use sqlx::Connection;

use crate::fixtures::{
    ADMIN_KEY, POSTGRES_SCHEMA, Palier, PgDatabase, ResultRow, TempSqlite, check_imported, per_second, raw_sqlite,
    thousands,
};
use crate::load::{self, Http, Plan, Report, millis};
use crate::read::hello_server;
use crate::read::vs_hello;
use crate::workers::{Getter, HoldCommitter, PgRowLoop, Quoter, SqliteRowLoop};
use crate::{Common, best};

const NAP: &str = "net-a-porter";
const PERFONE: &str = "perfone";

// ---- quote ------------------------------------------------------------------------------

/// Five full-price lines of different brands and categories, none excluded from FIRST10.
const QUOTE_LINES: &str = concat!(
    r#"[{"line":"l-1","sku":"NAP-1001","brand":"Khaite","category":"clothing","quantity":1,"price":"890.00","tax":"148.33"},"#,
    r#"{"line":"l-2","sku":"NAP-1002","brand":"Loewe","category":"bags","quantity":1,"price":"1450.00","tax":"241.67"},"#,
    r#"{"line":"l-3","sku":"NAP-1003","brand":"The Row","category":"shoes","quantity":1,"price":"720.00","tax":"120.00"},"#,
    r#"{"line":"l-4","sku":"NAP-1004","brand":"Toteme","category":"accessories","quantity":2,"price":"380.00","tax":"63.33"},"#,
    r#"{"line":"l-5","sku":"NAP-1005","brand":"Gucci","category":"clothing","quantity":1,"price":"1100.00","tax":"183.33"}]"#,
);

fn quote_body(member: &str) -> String {
    format!(
        r#"{{"program":"{NAP}","member":"{member}","currency":"GBP","channel":"web","lines":{QUOTE_LINES},"delivery":"10.00","codes":["FIRST10"]}}"#
    )
}

/// Registers members (no order) through `import_lines`, an hour before now.
async fn register(palier: &Palier, program: &str, country: &str, members: &[String]) -> Result<(), String> {
    let at = Timestamp::now() - SignedDuration::from_hours(1);
    let lines: Vec<(usize, String)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let event = format!(
                r#"{{"id":"reg-{m}","type":"member.registered","at":"{at}","program":"{program}","member":"{m}","country":"{country}"}}"#
            );
            (i + 1, event)
        })
        .collect();
    for chunk in lines.chunks(5000) {
        check_imported(palier.state.import_lines(chunk.to_vec()).await?)?;
    }
    Ok(())
}

/// One quote checked in full: FIRST10 accepted, nothing in the way of a hold.
async fn check_quote(address: SocketAddr, body: &str) -> Result<String, String> {
    let mut http = Http::connect(address).await?;
    let (status, answer) = http.post("/v1/checkout/quote", Some(ADMIN_KEY), Bytes::from(body.to_owned())).await?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    if status != StatusCode::OK {
        return Err(format!("the first quote: {status}: {text}"));
    }
    let quote: Value = serde_json::from_str(&text).map_err(|e| format!("the first quote is not JSON: {e}: {text}"))?;
    let accepted = quote["codes"][0]["status"] == "accepted";
    let clean = quote["problems"].as_array().is_some_and(Vec::is_empty) && quote["holdable"] == true;
    if !accepted || !clean {
        return Err(format!("the first quote does not accept FIRST10 cleanly: {text}"));
    }
    Ok(format!(
        "goods {} GBP, FIRST10 -{} GBP, delivery {}, total {}, {} bytes",
        quote["goods"].as_str().unwrap_or("?"),
        quote["codes"][0]["discount"].as_str().unwrap_or("?"),
        quote["delivery"].as_str().unwrap_or("?"),
        quote["total"].as_str().unwrap_or("?"),
        answer.len()
    ))
}

pub async fn quote(common: &Common, members: u32, connections: usize) -> Result<Vec<ResultRow>, String> {
    let place = TempSqlite::new("palier.db")?;
    let palier = Palier::start(&place.path, common.programs.clone(), true).await?;
    let ids: Vec<String> = (0..members.max(1)).map(|i| format!("q-{i}")).collect();
    let started = std::time::Instant::now();
    register(&palier, NAP, "GB", &ids).await?;
    eprintln!(
        "  registered {} NET-A-PORTER members (GB, no order) in {:.1} s",
        thousands(ids.len() as u64),
        started.elapsed().as_secs_f64()
    );
    let bodies: Arc<[Bytes]> = ids.iter().map(|m| Bytes::from(quote_body(m))).collect();
    eprintln!("  basket: 5 lines + delivery, FIRST10; {}", check_quote(palier.address, &quote_body(&ids[0])).await?);
    let (hello, hello_task) = hello_server().await?;
    let root: Arc<[String]> = Arc::from(vec!["/".to_string()]);
    let plan = common.timed();
    let (mut quotes, mut hellos): (Option<Report>, Option<Report>) = (None, None);
    let mut result = Ok(());
    for run in 1..=common.runs {
        let q = load::run(Quoter::all(palier.address, connections, bodies.clone()).await?, plan).await;
        eprintln!("  run {run}: palier POST quote: {}", q.summary());
        result = result.and(q.check("palier POST /v1/checkout/quote"));
        quotes = Some(best(quotes, q));
        let h = load::run(Getter::all(hello, connections, root.clone(), None).await?, plan).await;
        eprintln!("  run {run}: axum hello:        {}", h.summary());
        result = result.and(h.check("axum hello"));
        hellos = Some(best(hellos, h));
    }
    hello_task.abort();
    palier.stop().await;
    result?;
    let (quotes, hellos) = (quotes.ok_or("no run")?, hellos.ok_or("no run")?);
    Ok(vs_hello(
        format!(
            "quote: 5-line basket + FIRST10, {} members, {connections} conns, req/s (vs axum hello)",
            thousands(u64::from(members))
        ),
        "quote",
        &quotes,
        &hellos,
    ))
}

// ---- hold-commit ---------------------------------------------------------------------------

/// Points each hold reserves and each order pays (1 point = 1 RUB; at most 50 % of the
/// goods, 2 000.00 RUB).
pub const HOLD_POINTS: i64 = 100;
/// Points granted to each member before a run: far more than a run spends.
const GRANT: i64 = 1_000_000_000;

const PAIR_LINES: &str = concat!(
    r#"[{"line":"l-1","sku":"PF-1001","brand":"Perfect One","category":"clothing","quantity":1,"price":"1200.00"},"#,
    r#"{"line":"l-2","sku":"PF-1002","brand":"Perfect One","category":"shoes","quantity":1,"price":"800.00"}]"#,
);

/// The basket of every hold: 2 000.00 RUB of goods, `HOLD_POINTS` points asked.
pub fn hold_body(member: &str) -> String {
    format!(
        r#"{{"program":"{PERFONE}","member":"{member}","currency":"RUB","channel":"web","lines":{PAIR_LINES},"points":{HOLD_POINTS}}}"#
    )
}

/// The `order.placed` that commits `hold`: the hold's basket, paid `HOLD_POINTS`
/// points and the rest by card.
pub fn order_body(id: &str, at: Timestamp, member: &str, hold: &str) -> String {
    let card = 2000 - HOLD_POINTS;
    format!(
        r#"{{"id":"{id}-o","type":"order.placed","at":"{at}","program":"{PERFONE}","member":"{member}","order":"{id}","currency":"RUB","channel":"web","lines":{PAIR_LINES},"payments":[{{"method":"points","amount":"{HOLD_POINTS}.00"}},{{"method":"card","amount":"{card}.00"}}],"hold":"{hold}"}}"#
    )
}

/// The `checkout.held` palier writes for a hold (the shape of `checkout::post_hold`'s event).
pub fn held_body(hold: &str, at: Timestamp, member: &str) -> String {
    format!(
        r#"{{"id":"{hold}-held","type":"checkout.held","at":"{at}","program":"{PERFONE}","member":"{member}","hold":"{hold}","codes":[],"points":{HOLD_POINTS}}}"#
    )
}

/// Which store palier (and its raw baseline) runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "SQLite",
            StoreKind::Postgres => "PostgreSQL",
        }
    }
}

/// The members of each client: `per_client` each, no member shared.
fn client_members(clients: usize, per_client: usize) -> Vec<Vec<String>> {
    (0..clients).map(|c| (0..per_client.max(1)).map(|i| format!("hc-{c}-{i}")).collect()).collect()
}

/// Registers the Perfone members and grants them points (`ledger.adjusted` events, a
/// second after the registrations, an hour before now), through `import_lines`.
async fn prepare_members(palier: &Palier, groups: &[Vec<String>]) -> Result<(), String> {
    let registered = Timestamp::now() - SignedDuration::from_hours(1);
    let granted = registered + SignedDuration::from_secs(1);
    let mut lines = Vec::new();
    for member in groups.iter().flatten() {
        lines.push(format!(
            r#"{{"id":"reg-{member}","type":"member.registered","at":"{registered}","program":"{PERFONE}","member":"{member}","country":"RU"}}"#
        ));
        lines.push(format!(
            r#"{{"id":"grant-{member}","type":"ledger.adjusted","at":"{granted}","program":"{PERFONE}","member":"{member}","ledger":"points","amount":"{GRANT}","note":"palier-bench: points to spend"}}"#
        ));
    }
    let lines: Vec<(usize, String)> = lines.into_iter().enumerate().map(|(i, l)| (i + 1, l)).collect();
    for chunk in lines.chunks(5000) {
        check_imported(palier.state.import_lines(chunk.to_vec()).await?)?;
    }
    Ok(())
}

/// palier on a fresh store of `kind`, each client looping hold + commit over its members.
async fn palier_pairs(common: &Common, kind: StoreKind, groups: &[Vec<String>], plan: Plan) -> Result<Report, String> {
    let run = async |location: &str| -> Result<Report, String> {
        let palier = Palier::start(location, common.programs.clone(), true).await?;
        let report = match prepare_members(&palier, groups).await {
            Ok(()) => match HoldCommitter::all(palier.address, groups).await {
                Ok(workers) => Ok(load::run(workers, plan).await),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        palier.stop().await;
        let report = report?;
        report.check(&format!("palier hold+commit on {}", kind.name()))?;
        Ok(report)
    };
    match kind {
        StoreKind::Sqlite => {
            let place = TempSqlite::new("palier.db")?;
            run(&place.path).await
        }
        StoreKind::Postgres => {
            let db = PgDatabase::create(&common.postgres).await?;
            let result = run(&db.url).await;
            db.drop_now().await?;
            result
        }
    }
}

/// The raw baseline on a fresh store of `kind`: the events of hold + commit pairs
/// inserted one row per transaction (SQLite: one loop; PostgreSQL: one loop per client).
async fn raw_rows(common: &Common, kind: StoreKind, clients: usize, plan: Plan) -> Result<Report, String> {
    match kind {
        StoreKind::Sqlite => {
            let place = TempSqlite::new("raw.db")?;
            let connection = raw_sqlite(&place.path)?;
            let report = load::run(vec![SqliteRowLoop::new(connection, "raw-0")], plan).await;
            report.check("raw SQLite insert")?;
            Ok(report)
        }
        StoreKind::Postgres => {
            let db = PgDatabase::create(&common.postgres).await?;
            let result = async {
                let mut setup = sqlx::PgConnection::connect(&db.url).await.map_err(|e| e.to_string())?;
                sqlx::raw_sql(POSTGRES_SCHEMA)
                    .execute(&mut setup)
                    .await
                    .map_err(|e| format!("creating the table: {e}"))?;
                setup.close().await.ok();
                let mut loops = Vec::with_capacity(clients);
                for client in 0..clients {
                    loops.push(PgRowLoop::connect(&db.url, &format!("raw-{client}")).await?);
                }
                let report = load::run(loops, plan).await;
                report.check("raw PostgreSQL insert")?;
                Ok(report)
            }
            .await;
            db.drop_now().await?;
            result
        }
    }
}

pub async fn hold_commit(
    common: &Common,
    clients: usize,
    members_per_client: usize,
    stores: &[StoreKind],
) -> Result<Vec<ResultRow>, String> {
    let clients = clients.max(1);
    let groups = client_members(clients, members_per_client);
    let members = thousands(groups.iter().map(|g| g.len() as u64).sum());
    let plan = common.timed();
    let mut best_of: Vec<(StoreKind, Option<Report>, Option<Report>)> =
        stores.iter().map(|s| (*s, None, None)).collect();
    for run in 1..=common.runs {
        for (kind, palier, raw) in &mut best_of {
            let p = palier_pairs(common, *kind, &groups, plan).await?;
            eprintln!("  run {run}: palier on {}, {clients} clients, hold+commit: {}", kind.name(), p.summary());
            *palier = Some(best(palier.take(), p));
            let loops = if *kind == StoreKind::Sqlite { 1 } else { clients };
            let r = raw_rows(common, *kind, clients, plan).await?;
            eprintln!("  run {run}: raw {} insert, {loops} loop(s), 1 row/tx: {}", kind.name(), r.summary());
            *raw = Some(best(raw.take(), r));
        }
    }
    let mut rows = Vec::new();
    for (kind, palier, raw) in best_of {
        let (palier, raw) = (palier.ok_or("no run")?, raw.ok_or("no run")?);
        let loops = if kind == StoreKind::Sqlite { 1 } else { clients };
        let raw_pairs = raw.rate() / 2.0;
        let name = kind.name();
        rows.push(ResultRow {
            measure: format!(
                "hold-commit {name}: {clients} clients, {members} members, hold+commits/s (vs raw insert, {loops} loop(s), 1 row/tx, 2 rows a pair)"
            ),
            palier: per_second(palier.rate()),
            baseline: format!("{} rows = {} pairs", per_second(raw.rate()), per_second(raw_pairs)),
            ratio: format!("{:.0} %", palier.rate() / raw_pairs * 100.0),
            goal: ">= 5 000/s".into(),
            met: Some(palier.rate() >= 5000.0),
        });
        rows.push(ResultRow {
            measure: format!("hold-commit {name}: latency of the pair p50 / p99 (raw: of a row)"),
            palier: format!("{} / {}", millis(palier.p50), millis(palier.p99)),
            baseline: format!("{} / {}", millis(raw.p50), millis(raw.p99)),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palier_core::event::{parse_basket, parse_event};

    #[test]
    fn the_bodies_are_what_palier_accepts() {
        let basket = parse_basket(&quote_body("q-1")).expect("the quote basket");
        assert_eq!((basket.lines.len(), basket.codes.len()), (5, 1));
        let basket = parse_basket(&hold_body("hc-0-0")).expect("the hold basket");
        assert_eq!(basket.points, HOLD_POINTS);
        let at = Timestamp::now();
        parse_event(&order_body("o-1", at, "hc-0-0", "h-0123")).expect("the order");
        parse_event(&held_body("h-0123", at, "hc-0-0")).expect("the hold event");
    }

    #[test]
    fn clients_never_share_a_member() {
        let groups = client_members(3, 4);
        let mut all: Vec<&String> = groups.iter().flatten().collect();
        all.sort();
        all.dedup();
        assert_eq!((groups.len(), all.len()), (3, 12));
    }
}
