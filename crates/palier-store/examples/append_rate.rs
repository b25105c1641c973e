//! Measures append throughput: `cargo run --release -p palier-store --example append_rate -- LOCATION [BATCH] [TOTAL]`.
use std::time::Instant;

use palier_store::{NewEvent, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let location = args.next().ok_or("usage: append_rate LOCATION [BATCH] [TOTAL]")?;
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let total: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let store = Store::open(&location).await?;
    let base = store.event_count().await?;
    let started = Instant::now();
    let mut n = 0;
    while n < total {
        let events: Vec<NewEvent> = (n..(n + batch).min(total))
            .map(|i| NewEvent {
                id: format!("rate-{base}-{i}"),
                program: "net-a-porter".to_owned(),
                member: format!("m-{}", i % 1000),
                order: None,
                at_unix_nanos: i as i64,
                body: format!(r#"{{"id":"rate-{base}-{i}","type":"member.registered","member":"m-{}"}}"#, i % 1000),
                body_sha256: [7; 32],
                received_unix_nanos: i as i64,
            })
            .collect();
        n += events.len();
        store.append(&events).await?;
    }
    let fresh = started.elapsed();
    // The same ids again: every one answers Existing.
    let started = Instant::now();
    let mut n = 0;
    while n < total {
        let events: Vec<NewEvent> = (n..(n + batch).min(total))
            .map(|i| NewEvent {
                id: format!("rate-{base}-{i}"),
                program: "net-a-porter".to_owned(),
                member: "m".to_owned(),
                order: None,
                at_unix_nanos: 0,
                body: String::new(),
                body_sha256: [0; 32],
                received_unix_nanos: 0,
            })
            .collect();
        n += events.len();
        store.append(&events).await?;
    }
    let again = started.elapsed();
    let started = Instant::now();
    let mut seen = 0_u64;
    store.for_each_event(10_000, |_| seen += 1).await?;
    let replay = started.elapsed();
    println!(
        "{}: batch {batch}: {:.0} new events/s, {:.0} duplicates/s, replay {:.0} events/s ({seen} events)",
        store.kind(),
        total as f64 / fresh.as_secs_f64(),
        total as f64 / again.as_secs_f64(),
        seen as f64 / replay.as_secs_f64()
    );
    store.close().await;
    Ok(())
}
