//! Baselines for palier's benchmarks. `palier-bench scan FILE` reads a JSON Lines
//! file and deserializes every line into `serde::de::IgnoredAny`: the plain-parse
//! baseline that `palier replay` is measured against (bench/replay.sh).

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("scan") if args.len() == 3 => scan(&args[2]),
        _ => {
            eprintln!("usage: palier-bench scan EVENTS.jsonl");
            ExitCode::from(2)
        }
    }
}

fn scan(path: &str) -> ExitCode {
    let started = Instant::now();
    let input = match std::fs::read(path) {
        Ok(input) => input,
        Err(error) => {
            eprintln!("palier-bench: cannot read {path}: {error}");
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
