//! palier's benchmarks, each measured beside its baseline in the same run (`bench/`).
//!
//! - `scan FILE`: reads a JSON Lines file and deserializes every line into
//!   `serde::de::IgnoredAny`: the plain-parse baseline of `palier replay`
//!   (bench/replay.sh).
//! - `ingest-single`, `ingest-concurrent`, `import`, `read`, `postgres`, `late`, `quote`,
//!   `hold-commit`: the service, run in this process (`palier_server::start`) and
//!   driven by the load tool of `load` (fixed concurrency, fixed duration, requests/s
//!   and p50/p99), against a raw SQLite or PostgreSQL loop, or an axum hello-world,
//!   measured the same way (bench/service.sh). Each pair runs `--runs` times,
//!   alternating; the best run of each counts. Each prints its results as
//!   `RESULT|measure|palier|baseline|ratio|goal|met` lines on stdout, and its runs on
//!   stderr.

mod checkout;
mod fixtures;
mod import;
mod ingest;
mod late;
mod load;
mod postgres;
mod read;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "palier-bench", about = "palier's benchmarks, each beside its baseline in one run")]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// The program files palier loads (every *.toml in the folder)
    #[arg(long, global = true, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../programs"))]
    programs: PathBuf,
    /// Runs of each pair (palier, baseline, palier, …); the best of each counts
    #[arg(long, global = true, default_value_t = 3)]
    runs: usize,
    /// Seconds measured in each load run
    #[arg(long, global = true, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of warm-up before each load run's measurement (not counted)
    #[arg(long, global = true, default_value_t = 1.0)]
    warmup: f64,
    /// Run each load for this many requests in all instead of for --seconds (no warm-up)
    #[arg(long, global = true)]
    requests: Option<u64>,
    /// The PostgreSQL server (trust auth); each run creates and drops a database of its own
    #[arg(long, global = true, env = "PALIER_BENCH_POSTGRES", default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
}

#[derive(Subcommand)]
enum Command {
    /// Deserialize every line of a JSON Lines file into IgnoredAny (replay's baseline)
    Scan { file: PathBuf },
    /// Parse and check every line as an event (one thread), beside the IgnoredAny scan
    /// of the same lines in memory: the share of replay's time spent reading events
    Parse { file: PathBuf },
    /// One client posting one event per request, vs a raw SQLite loop (1 row/transaction)
    IngestSingle {
        /// Members of the generated stream the events are taken from
        #[arg(long, default_value_t = 20_000)]
        members: u32,
    },
    /// Many clients posting one event per request, vs palier's single-client rate
    IngestConcurrent {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 100_000)]
        members: u32,
    },
    /// AppState::import_lines in batches, vs a raw batched insert into the same table
    Import {
        /// Events imported
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 5000)]
        batch: usize,
    },
    /// GET /v1/members/{id} on a preloaded store, vs an axum hello-world
    Read {
        #[arg(long, default_value_t = 100_000)]
        members: u32,
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Clients posting one event per request to palier on PostgreSQL, vs raw insert loops
    Postgres {
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 50_000)]
        members: u32,
    },
    /// POST /v1/checkout/quote of a 5-line basket with a code, vs an axum hello-world
    Quote {
        /// Registered NET-A-PORTER members (no order) the baskets are for
        #[arg(long, default_value_t = 10_000)]
        members: u32,
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Clients on distinct members looping a points hold then the order committing it, on
    /// SQLite and PostgreSQL, vs raw single-row insert loops
    HoldCommit {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Members each client cycles through (its own; registered with points beforehand)
        #[arg(long, default_value_t = 50)]
        members_per_client: usize,
        /// The stores palier runs on
        #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite,postgres")]
        stores: Vec<checkout::StoreKind>,
    },
    /// A late event for a member with many events, vs an in-order one
    Late {
        /// Other members in the store (palier-gen, one year)
        #[arg(long, default_value_t = 1_000_000)]
        members: u32,
        /// Repetitions (each on a heavy member of its own)
        #[arg(long, default_value_t = 101)]
        reps: usize,
        #[arg(long, default_value_t = 1000)]
        events_per_member: usize,
    },
}

/// What every service benchmark is given.
pub struct Common {
    pub programs: Vec<palier_core::Program>,
    pub runs: usize,
    pub warmup: Duration,
    pub seconds: Duration,
    pub requests: Option<u64>,
    pub postgres: String,
}

impl Common {
    /// The load plan of every load run: --seconds after --warmup, or --requests.
    pub fn timed(&self) -> load::Plan {
        match self.requests {
            Some(n) => load::Plan::Count(n.max(1)),
            None => load::Plan::Timed { warmup: self.warmup, measure: self.seconds },
        }
    }
}

/// The better of two load runs: the higher rate.
pub fn best(kept: Option<load::Report>, new: load::Report) -> load::Report {
    match kept {
        Some(kept) if kept.rate() >= new.rate() => kept,
        _ => new,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (name, command) = match args.command {
        Command::Scan { file } => return scan(&file),
        Command::Parse { file } => return parse(&file, args.runs),
        command => (command_name(&command), command),
    };
    let programs = match fixtures::programs(&args.programs) {
        Ok(programs) => programs,
        Err(e) => {
            eprintln!("palier-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let common = Common {
        programs,
        runs: args.runs.max(1),
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        seconds: Duration::from_secs_f64(args.seconds.max(0.1)),
        requests: args.requests,
        postgres: args.postgres,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("palier-bench: a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("palier-bench {name}:");
    let started = Instant::now();
    let result = runtime.block_on(async {
        match command {
            Command::Scan { .. } | Command::Parse { .. } => unreachable!("handled above"),
            Command::IngestSingle { members } => ingest::single(&common, members).await,
            Command::IngestConcurrent { clients, members } => ingest::concurrent(&common, members, clients).await,
            Command::Import { events, batch } => import::import(&common, events, batch).await,
            Command::Read { members, connections } => read::read(&common, members, connections).await,
            Command::Postgres { clients, members } => postgres::postgres(&common, members, clients).await,
            Command::Quote { members, connections } => checkout::quote(&common, members, connections).await,
            Command::HoldCommit { clients, members_per_client, stores } => {
                checkout::hold_commit(&common, clients, members_per_client, &stores).await
            }
            Command::Late { members, reps, events_per_member } => {
                late::late(&common, members, reps, events_per_member).await
            }
        }
    });
    match result {
        Ok(rows) => {
            for row in rows {
                row.print();
            }
            eprintln!("palier-bench {name}: done in {:.0} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palier-bench {name}: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Scan { .. } => "scan",
        Command::Parse { .. } => "parse",
        Command::IngestSingle { .. } => "ingest-single",
        Command::IngestConcurrent { .. } => "ingest-concurrent",
        Command::Import { .. } => "import",
        Command::Read { .. } => "read",
        Command::Postgres { .. } => "postgres",
        Command::Quote { .. } => "quote",
        Command::HoldCommit { .. } => "hold-commit",
        Command::Late { .. } => "late",
    }
}

fn parse(path: &std::path::Path, runs: usize) -> ExitCode {
    let input = match std::fs::read(path) {
        Ok(input) => input,
        Err(error) => {
            eprintln!("palier-bench: cannot read {}: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    let lines: Vec<&str> =
        input.split(|b| *b == b'\n').filter(|l| !l.is_empty()).filter_map(|l| std::str::from_utf8(l).ok()).collect();
    let timed = |each: &dyn Fn(&str) -> bool| {
        let started = Instant::now();
        let read = lines.iter().filter(|line| each(line)).count();
        (read, started.elapsed().as_secs_f64())
    };
    let (mut best_scan, mut best_parse) = (f64::MAX, f64::MAX);
    for run in 1..=runs.max(1) {
        let (scanned, scan) = timed(&|line| serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok());
        let (parsed, parse) = timed(&|line| palier_core::event::parse_event(line).is_ok());
        println!("run {run}: scan {scanned} lines {scan:.3} s, parse {parsed} events {parse:.3} s");
        best_scan = best_scan.min(scan);
        best_parse = best_parse.min(parse);
    }
    println!(
        "parse lines={} scan_seconds={best_scan:.3} parse_seconds={best_parse:.3} parse_vs_scan={:.2}x",
        lines.len(),
        best_parse / best_scan
    );
    ExitCode::SUCCESS
}

fn scan(path: &std::path::Path) -> ExitCode {
    let started = Instant::now();
    let input = match std::fs::read(path) {
        Ok(input) => input,
        Err(error) => {
            eprintln!("palier-bench: cannot read {}: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut events = 0_u64;
    for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
            events += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("scan events={events} seconds={seconds:.3} events_per_second={:.0}", events as f64 / seconds);
    ExitCode::SUCCESS
}
