//! `import`: what `palier import` does (`AppState::import_lines` in batches) with a
//! palier-gen stream into a fresh SQLite store, against a raw batched insert of the
//! same rows (one transaction per batch) into the same indexed table.

use std::time::{Duration, Instant};

use crate::Common;
use crate::fixtures::{Events, Palier, ResultRow, Row, TempSqlite, check_imported, now_nanos, per_second};
use crate::fixtures::{raw_sqlite, sqlite_insert, thousands};

async fn palier_import(common: &Common, rows: &[Row], batch: usize) -> Result<Duration, String> {
    let place = TempSqlite::new("palier.db")?;
    let palier = Palier::start(&place.path, common.programs.clone(), false).await?;
    // The lines as `palier import` hands them over (numbered), made before the clock starts.
    let batches: Vec<Vec<(usize, String)>> = rows
        .chunks(batch)
        .enumerate()
        .map(|(b, chunk)| chunk.iter().enumerate().map(|(i, r)| (b * batch + i + 1, r.body_str().to_owned())).collect())
        .collect();
    let started = Instant::now();
    for lines in batches {
        check_imported(palier.state.import_lines(lines).await?)?;
    }
    let elapsed = started.elapsed();
    palier.stop().await;
    Ok(elapsed)
}

fn raw_import(rows: &[Row], batch: usize) -> Result<Duration, String> {
    let place = TempSqlite::new("raw.db")?;
    let mut connection = raw_sqlite(&place.path)?;
    let received = now_nanos();
    let started = Instant::now();
    for chunk in rows.chunks(batch) {
        let tx = connection.transaction().map_err(|e| e.to_string())?;
        for row in chunk {
            sqlite_insert(&tx, row, received).map_err(|e| format!("event {}: {e}", row.id))?;
        }
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

pub async fn import(common: &Common, count: usize, batch: usize) -> Result<Vec<ResultRow>, String> {
    // About 10.6 events a member over 3 years: generate enough, keep the first `count`
    // (a prefix of a stream in order of `at` is a valid stream).
    let members = u32::try_from(count / 9 + 100).map_err(|_| "--events: too many")?;
    let mut events = Events::generate(members, 3)?;
    if events.rows.len() < count {
        return Err(format!("palier-gen gave {} events, fewer than {count}", events.rows.len()));
    }
    events.rows.truncate(count);
    let batch = batch.max(1);
    let (mut palier, mut raw) = (Duration::MAX, Duration::MAX);
    for run in 1..=common.runs {
        let p = palier_import(common, &events.rows, batch).await?;
        eprintln!(
            "  run {run}: palier import: {:.2} s = {}",
            p.as_secs_f64(),
            per_second(count as f64 / p.as_secs_f64())
        );
        palier = palier.min(p);
        let r = raw_import(&events.rows, batch)?;
        eprintln!(
            "  run {run}: raw insert:    {:.2} s = {}",
            r.as_secs_f64(),
            per_second(count as f64 / r.as_secs_f64())
        );
        raw = raw.min(r);
    }
    let ratio = raw.as_secs_f64() / palier.as_secs_f64();
    Ok(vec![ResultRow {
        measure: format!(
            "import: {} events, batches of {batch}, events/s (vs raw batched insert)",
            thousands(count as u64)
        ),
        palier: per_second(count as f64 / palier.as_secs_f64()),
        baseline: per_second(count as f64 / raw.as_secs_f64()),
        ratio: format!("{:.0} %", ratio * 100.0),
        goal: ">= 25 %".into(),
        met: Some(ratio >= 0.25),
    }])
}
