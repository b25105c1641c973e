//! `ingest-single` and `ingest-concurrent`: palier served in-process on a fresh SQLite
//! file, events posted one per request; against a raw SQLite loop inserting the same
//! events one row per transaction, and against palier's own single-client rate.

use std::sync::Arc;

use crate::fixtures::{Events, Palier, ResultRow, Row, TempSqlite, per_second, raw_sqlite};
use crate::load::{self, Plan, Report, millis};
use crate::workers::{Poster, SqliteInserter};
use crate::{Common, best};

/// palier on a fresh SQLite store, one connection per part posting its events.
pub async fn palier_posting(common: &Common, parts: &[Arc<[Row]>], plan: Plan) -> Result<Report, String> {
    let place = TempSqlite::new("palier.db")?;
    let palier = Palier::start(&place.path, common.programs.clone(), true).await?;
    let posters = Poster::all(palier.address, parts).await?;
    let report = load::run(posters, plan).await;
    palier.stop().await;
    report.check("palier ingest")?;
    Ok(report)
}

/// The raw loop: one connection, one row per transaction.
async fn raw_sqlite_inserting(rows: Arc<[Row]>, plan: Plan) -> Result<Report, String> {
    let place = TempSqlite::new("raw.db")?;
    let connection = raw_sqlite(&place.path)?;
    let report = load::run(vec![SqliteInserter::new(connection, rows)], plan).await;
    report.check("raw SQLite insert")?;
    Ok(report)
}

pub async fn single(common: &Common, members: u32) -> Result<Vec<ResultRow>, String> {
    let events = Events::generate(members, 3)?;
    let one = events.partition(1);
    let plan = common.timed();
    let (mut palier, mut raw): (Option<Report>, Option<Report>) = (None, None);
    for run in 1..=common.runs {
        let p = palier_posting(common, &one, plan).await?;
        eprintln!("  run {run}: palier, 1 client:   {}", p.summary());
        palier = Some(best(palier, p));
        let r = raw_sqlite_inserting(one[0].clone(), plan).await?;
        eprintln!("  run {run}: raw SQLite, 1 loop: {}", r.summary());
        raw = Some(best(raw, r));
    }
    let (palier, raw) = (palier.ok_or("no run")?, raw.ok_or("no run")?);
    let ratio = palier.rate() / raw.rate();
    Ok(vec![
        ResultRow {
            measure: "ingest-single: 1 client, events/s (vs raw SQLite, 1 row/tx)".into(),
            palier: per_second(palier.rate()),
            baseline: per_second(raw.rate()),
            ratio: format!("{:.0} %", ratio * 100.0),
            goal: ">= 50 %".into(),
            met: Some(ratio >= 0.5),
        },
        ResultRow {
            measure: "ingest-single: latency p50 / p99".into(),
            palier: format!("{} / {}", millis(palier.p50), millis(palier.p99)),
            baseline: format!("{} / {}", millis(raw.p50), millis(raw.p99)),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        },
    ])
}

pub async fn concurrent(common: &Common, members: u32, clients: usize) -> Result<Vec<ResultRow>, String> {
    let events = Events::generate(members, 3)?;
    let many = events.partition(clients);
    let one = events.partition(1);
    let plan = common.timed();
    let (mut wide, mut single): (Option<Report>, Option<Report>) = (None, None);
    for run in 1..=common.runs {
        let w = palier_posting(common, &many, plan).await?;
        eprintln!("  run {run}: palier, {clients} clients: {}", w.summary());
        wide = Some(best(wide, w));
        let s = palier_posting(common, &one, plan).await?;
        eprintln!("  run {run}: palier, 1 client:   {}", s.summary());
        single = Some(best(single, s));
    }
    let (wide, single) = (wide.ok_or("no run")?, single.ok_or("no run")?);
    let scale = wide.rate() / single.rate();
    Ok(vec![
        ResultRow {
            measure: format!("ingest-concurrent: {clients} clients vs 1 client, events/s"),
            palier: per_second(wide.rate()),
            baseline: format!("{} (palier, 1 client)", per_second(single.rate())),
            ratio: format!("{scale:.1}x"),
            goal: ">= 5x".into(),
            met: Some(scale >= 5.0),
        },
        ResultRow {
            measure: format!("ingest-concurrent: {clients} clients, events/s"),
            palier: per_second(wide.rate()),
            baseline: "-".into(),
            ratio: "-".into(),
            goal: ">= 10 000/s".into(),
            met: Some(wide.rate() >= 10_000.0),
        },
        ResultRow {
            measure: format!("ingest-concurrent: {clients} clients, p50 / p99"),
            palier: format!("{} / {}", millis(wide.p50), millis(wide.p99)),
            baseline: "-".into(),
            ratio: "-".into(),
            goal: "p99 <= 25 ms".into(),
            met: Some(wide.p99.as_secs_f64() <= 0.025),
        },
    ])
}
