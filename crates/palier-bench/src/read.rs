//! `read`: GET /v1/members/{id} for random known members on a preloaded store, against
//! an axum hello-world (`GET /` → "hello") in the same process, same load tool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::fixtures::{ADMIN_KEY, Events, Palier, ResultRow, TempSqlite, per_second, thousands};
use crate::load::{self, Report, millis};
use crate::workers::Getter;
use crate::{Common, best};

/// An axum hello-world (`GET /` → "hello") on a free port of 127.0.0.1: the baseline of
/// the HTTP read benchmarks.
pub async fn hello_server() -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), String> {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.map_err(|e| format!("bind: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((address, tokio::spawn(async move { axum::serve(listener, app).await })))
}

pub async fn read(common: &Common, members: u32, connections: usize) -> Result<Vec<ResultRow>, String> {
    let events = Events::generate(members, 3)?;
    let place = TempSqlite::new("palier.db")?;
    let palier = Palier::start(&place.path, common.programs.clone(), true).await?;
    let started = Instant::now();
    palier.import(&events.rows, 5000).await?;
    eprintln!(
        "  preloaded {} events of {} members in {:.1} s",
        events.rows.len(),
        thousands(u64::from(members)),
        started.elapsed().as_secs_f64()
    );
    let paths: Arc<[String]> = events.members().iter().map(|m| format!("/v1/members/{m}")).collect();
    let (hello, hello_task) = hello_server().await?;
    let root: Arc<[String]> = Arc::from(vec!["/".to_string()]);
    let plan = common.timed();
    let (mut reads, mut hellos): (Option<Report>, Option<Report>) = (None, None);
    let mut result = Ok(());
    for run in 1..=common.runs {
        let r = load::run(Getter::all(palier.address, connections, paths.clone(), Some(ADMIN_KEY)).await?, plan).await;
        eprintln!("  run {run}: palier GET member: {}", r.summary());
        result = result.and(r.check("palier GET /v1/members/{id}"));
        reads = Some(best(reads, r));
        let h = load::run(Getter::all(hello, connections, root.clone(), None).await?, plan).await;
        eprintln!("  run {run}: axum hello:        {}", h.summary());
        result = result.and(h.check("axum hello"));
        hellos = Some(best(hellos, h));
    }
    hello_task.abort();
    palier.stop().await;
    result?;
    let (reads, hellos) = (reads.ok_or("no run")?, hellos.ok_or("no run")?);
    Ok(vs_hello(
        format!(
            "read: GET member, {} members, {connections} conns, req/s (vs axum hello)",
            thousands(u64::from(members))
        ),
        "read",
        &reads,
        &hellos,
    ))
}

/// The two rows of a benchmark measured against the axum hello-world in the same
/// run: requests per second (goal: at least 25 % of hello) and latency.
pub(crate) fn vs_hello(measure: String, label: &str, palier: &Report, hellos: &Report) -> Vec<ResultRow> {
    let ratio = palier.rate() / hellos.rate();
    vec![
        ResultRow {
            measure,
            palier: per_second(palier.rate()),
            baseline: per_second(hellos.rate()),
            ratio: format!("{:.0} %", ratio * 100.0),
            goal: ">= 25 %".into(),
            met: Some(ratio >= 0.25),
        },
        ResultRow {
            measure: format!("{label}: latency p50 / p99"),
            palier: format!("{} / {}", millis(palier.p50), millis(palier.p99)),
            baseline: format!("{} / {}", millis(hellos.p50), millis(hellos.p99)),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        },
    ]
}
