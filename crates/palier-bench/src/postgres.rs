//! `postgres`: clients posting one event per request to palier on a fresh PostgreSQL
//! database, against as many raw single-row insert loops (one transaction each) into
//! the same table on another fresh database.

use std::sync::Arc;

use sqlx::Connection;

use crate::fixtures::{Events, POSTGRES_SCHEMA, Palier, PgDatabase, ResultRow, Row, per_second};
use crate::load::{self, Plan, Report, millis};
use crate::workers::{PgInserter, Poster};
use crate::{Common, best};

async fn palier_on_postgres(common: &Common, parts: &[Arc<[Row]>], plan: Plan) -> Result<Report, String> {
    let db = PgDatabase::create(&common.postgres).await?;
    let result = async {
        let palier = Palier::start(&db.url, common.programs.clone(), true).await?;
        let report = load::run(Poster::all(palier.address, parts).await?, plan).await;
        palier.stop().await;
        report.check("palier on PostgreSQL")?;
        Ok(report)
    }
    .await;
    db.drop_now().await?;
    result
}

async fn raw_postgres(common: &Common, parts: &[Arc<[Row]>], plan: Plan) -> Result<Report, String> {
    let db = PgDatabase::create(&common.postgres).await?;
    let result = async {
        let mut setup = sqlx::PgConnection::connect(&db.url).await.map_err(|e| e.to_string())?;
        sqlx::raw_sql(POSTGRES_SCHEMA).execute(&mut setup).await.map_err(|e| format!("creating the table: {e}"))?;
        setup.close().await.ok();
        let mut inserters = Vec::with_capacity(parts.len());
        for part in parts {
            inserters.push(PgInserter::connect(&db.url, part.clone()).await?);
        }
        let report = load::run(inserters, plan).await;
        report.check("raw PostgreSQL insert")?;
        Ok(report)
    }
    .await;
    db.drop_now().await?;
    result
}

pub async fn postgres(common: &Common, members: u32, clients: usize) -> Result<Vec<ResultRow>, String> {
    let events = Events::generate(members, 3)?;
    let parts = events.partition(clients);
    let plan = common.timed();
    let (mut palier, mut raw): (Option<Report>, Option<Report>) = (None, None);
    for run in 1..=common.runs {
        let p = palier_on_postgres(common, &parts, plan).await?;
        eprintln!("  run {run}: palier on PostgreSQL, {clients} clients: {}", p.summary());
        palier = Some(best(palier, p));
        let r = raw_postgres(common, &parts, plan).await?;
        eprintln!("  run {run}: raw PostgreSQL, {clients} loops:     {}", r.summary());
        raw = Some(best(raw, r));
    }
    let (palier, raw) = (palier.ok_or("no run")?, raw.ok_or("no run")?);
    let ratio = palier.rate() / raw.rate();
    Ok(vec![
        ResultRow {
            measure: format!("postgres: {clients} clients, events/s (vs {clients} raw insert loops, 1 row/tx)"),
            palier: per_second(palier.rate()),
            baseline: per_second(raw.rate()),
            ratio: format!("{:.0} %", ratio * 100.0),
            goal: ">= 50 %".into(),
            met: Some(ratio >= 0.5),
        },
        ResultRow {
            measure: "postgres: latency p50 / p99".into(),
            palier: format!("{} / {}", millis(palier.p50), millis(palier.p99)),
            baseline: format!("{} / {}", millis(raw.p50), millis(raw.p99)),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        },
    ])
}
