//! `palier-gen`: writes a seeded synthetic event stream (JSON Lines) to stdout.

use std::io::{self, ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;
use jiff::civil::Date;
use palier_gen::{GenConfig, ProgramChoice, generate};

/// Generate a realistic, reproducible palier event stream (JSON Lines on stdout).
#[derive(Parser, Debug)]
#[command(name = "palier-gen", version)]
struct Args {
    /// net-a-porter, mr-porter, perfone, or all (a mix; every event names its program)
    #[arg(long, default_value = "all")]
    program: ProgramChoice,
    /// Number of members
    #[arg(long, default_value_t = 1000)]
    members: u32,
    /// Seed: the same arguments give byte-identical output
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Years of orders
    #[arg(long, default_value_t = 3)]
    years: u32,
    /// First day (UTC), YYYY-MM-DD
    #[arg(long, default_value = "2023-01-01")]
    start: Date,
    /// Events written 1–5 lines late, per mille (0: sorted by `at`)
    #[arg(long, default_value_t = 10)]
    late_per_mille: u32,
    /// Mean orders per member and year
    #[arg(long, default_value_t = 1.35)]
    orders_per_year: f64,
    /// Do not print the event count on stderr
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = GenConfig {
        program: args.program,
        members: args.members,
        seed: args.seed,
        start: args.start,
        years: args.years,
        late_per_mille: args.late_per_mille,
        orders_per_year: args.orders_per_year,
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match generate(&cfg, &mut out).and_then(|n| out.flush().map(|()| n)) {
        Ok(n) => {
            if !args.quiet {
                eprintln!("palier-gen: {n} events");
            }
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palier-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
