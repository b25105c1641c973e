//! The `palier` command line.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jiff::Timestamp;
use palier_core::MemberDocument;
use palier_core::Program;
use palier_core::replay::RejectedLine;
use palier_core::replay::{Replay, ReplayParser};
use palier_core::stream::{StreamReplay, Unstreamable};

/// mimalloc: replay allocates millions of small objects on several threads; the
/// system allocator's locks cost more than the parsing itself.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "palier", version, about = "A loyalty engine: program files and events in, member state out")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replays events and prints every member's document at an instant.
    Replay {
        /// The program file (TOML); repeat it to load several programs (events then
        /// name theirs in `program`).
        #[arg(long, required = true)]
        program: Vec<PathBuf>,
        /// The events, JSON Lines; `-` reads standard input.
        #[arg(long)]
        events: String,
        /// The instant to describe (RFC 3339); default: the latest event's `at`.
        #[arg(long = "as-of")]
        as_of: Option<String>,
    },
    /// Checks a program file and prints a summary of it.
    Check {
        /// The program file (TOML).
        program: PathBuf,
    },
    /// Runs the HTTP service.
    Serve {
        /// A program file, or a directory of them; repeatable.
        #[arg(long, required = true)]
        program: Vec<PathBuf>,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "PALIER_LISTEN")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        store: StoreArgs,
        /// Freeze the service's clock at this instant (RFC 3339), for tests and demos.
        #[arg(long)]
        clock: Option<String>,
        #[command(flatten)]
        notify: NotifyArgs,
    },
    /// Starts the service with the three bundled programs and the example members, on
    /// an embedded SQLite file, and prints how to reach it.
    Demo {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The embedded SQLite file.
        #[arg(long, default_value = "palier-demo.db")]
        data: PathBuf,
    },
    /// Imports an events file into the store, in batches; re-running it skips what is in.
    Import {
        /// A program file, or a directory of them; repeatable.
        #[arg(long, required = true)]
        program: Vec<PathBuf>,
        /// The events, JSON Lines.
        #[arg(long)]
        events: PathBuf,
        /// Events per batch (one transaction each).
        #[arg(long, default_value_t = 5000)]
        batch: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manages API keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The operators' audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Prints everything palier holds on one member, as one JSON document (the
    /// access right; the same document as `GET /v1/members/{id}/export`).
    Export {
        /// A program file, or a directory of them; repeatable.
        #[arg(long, required = true)]
        program: Vec<PathBuf>,
        /// The member id.
        #[arg(long)]
        member: String,
        /// The program holding the member, when several are loaded.
        #[arg(long = "program-id")]
        program_id: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Checks the hash chain; exit 1 and the first broken link if it does not hold.
    Verify,
}

/// Notifications (docs/notifications.md): webhooks always, NATS JetStream when a URL
/// is given.
#[derive(clap::Args)]
struct NotifyArgs {
    /// Publish notifications to, and consume retailer events from, NATS JetStream.
    #[arg(long, env = "PALIER_NATS")]
    nats: Option<String>,
    /// The durable JetStream consumer reading retailer events.
    #[arg(long = "nats-consumer", default_value = "palier")]
    nats_consumer: String,
    /// The subjects that consumer reads (within the stream PALIER_EVENTS).
    #[arg(long = "nats-events-filter", default_value = "palier.events.>")]
    nats_events_filter: String,
    /// Sends of one notification to one destination before it is a dead letter.
    #[arg(long = "delivery-attempts", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    delivery_attempts: u32,
    /// The first retry's delay, in milliseconds (doubling after each failure, with jitter).
    #[arg(long = "delivery-backoff-ms", default_value_t = 1000)]
    delivery_backoff_ms: u64,
    /// The longest delay between two retries, in milliseconds.
    #[arg(long = "delivery-backoff-cap-ms", default_value_t = 3_600_000)]
    delivery_backoff_cap_ms: u64,
    /// One webhook request's time limit, in milliseconds.
    #[arg(long = "delivery-timeout-ms", default_value_t = 10_000)]
    delivery_timeout_ms: u64,
    /// How often every member is derived for notifications due by time rules, in seconds.
    #[arg(long = "notify-full-scan-s", default_value_t = 60)]
    notify_full_scan_s: u64,
}

impl NotifyArgs {
    fn config(&self) -> palier_server::outbox::NotifyConfig {
        use std::time::Duration;
        palier_server::outbox::NotifyConfig {
            nats: self.nats.as_deref().map(|url| palier_server::bus::NatsConfig {
                url: url.to_string(),
                consumer: self.nats_consumer.clone(),
                events_filter: self.nats_events_filter.clone(),
            }),
            max_attempts: self.delivery_attempts,
            backoff_base: Duration::from_millis(self.delivery_backoff_ms),
            backoff_cap: Duration::from_millis(self.delivery_backoff_cap_ms.max(self.delivery_backoff_ms)),
            timeout: Duration::from_millis(self.delivery_timeout_ms.max(1)),
            full_scan_every: Duration::from_secs(self.notify_full_scan_s.max(1)),
            ..Default::default()
        }
    }
}

#[derive(clap::Args)]
struct StoreArgs {
    /// The embedded SQLite file (created on first start).
    #[arg(long, default_value = "palier.db", env = "PALIER_DATA", global = true)]
    data: PathBuf,
    /// A PostgreSQL database instead of SQLite: postgres://…
    #[arg(long, env = "PALIER_DATABASE", global = true)]
    database: Option<String>,
}

impl StoreArgs {
    fn location(&self) -> String {
        self.database.clone().unwrap_or_else(|| self.data.display().to_string())
    }
}

#[derive(Subcommand)]
enum KeysAction {
    /// Creates a key and prints its secret once.
    Create {
        #[arg(long)]
        name: String,
        /// events:write, members:read, members:write, checkout:write, ledger:write, privacy
        /// or admin; repeatable.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// Lists the keys (never their secrets).
    List,
    /// Revokes a key by id.
    Revoke { id: String },
}

/// Exit statuses of contract.md: 0 fine, 3 some event rejected, 2 unusable input.
const EXIT_REJECTED: u8 = 3;
const EXIT_UNUSABLE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(EXIT_UNUSABLE) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Replay { program, events, as_of } => run_replay(&program, &events, as_of.as_deref()),
        Command::Check { program } => run_check(&program),
        Command::Serve { program, listen, store, clock, notify } => runtime().and_then(|rt| {
            rt.block_on(service::serve(&program, listen, &store.location(), clock.as_deref(), notify.config()))
        }),
        Command::Demo { listen, data } => runtime().and_then(|rt| rt.block_on(service::demo(listen, &data))),
        Command::Import { program, events, batch, store } => {
            runtime().and_then(|rt| rt.block_on(service::import(&program, &events, batch, &store.location())))
        }
        Command::Keys { action, store } => {
            runtime().and_then(|rt| rt.block_on(service::keys(action, &store.location())))
        }
        Command::Audit { action: AuditAction::Verify, store } => {
            runtime().and_then(|rt| rt.block_on(service::audit_verify(&store.location())))
        }
        Command::Export { program, member, program_id, store } => runtime()
            .and_then(|rt| rt.block_on(service::export(&program, &member, program_id.as_deref(), &store.location()))),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("palier: {message}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

mod service;

fn load_program(path: &PathBuf) -> Result<Program, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the program file: {e}", path.display()))?;
    Program::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())
}

fn parse_instant(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|e| format!("--as-of: {text:?} is not an RFC 3339 instant with an offset ({e})"))
}

fn run_replay(program_paths: &[PathBuf], events: &str, as_of: Option<&str>) -> Result<ExitCode, String> {
    let programs = program_paths.iter().map(load_program).collect::<Result<Vec<_>, _>>()?;
    for (index, program) in programs.iter().enumerate() {
        if programs[..index].iter().any(|p| p.id == program.id) {
            return Err(format!("--program: program {:?} is loaded twice", program.id));
        }
    }
    let as_of = as_of.map(parse_instant).transpose()?;
    let timings = std::env::var_os("PALIER_TIMINGS").is_some();
    let started = started_at();
    // PALIER_THREADS=N pins the number of threads (the output never depends on it).
    let threads = std::env::var("PALIER_THREADS").ok().and_then(|t| t.parse::<usize>().ok());
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    keep_freed_memory();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut written: io::Result<()> = Ok(());
    let mut write = |line: io::Result<Vec<u8>>| {
        if written.is_ok() {
            written = line.and_then(|line| out.write_all(&line));
        }
    };
    let rejections = if events == "-" {
        let mut input = Vec::new();
        io::stdin().lock().read_to_end(&mut input).map_err(|e| format!("--events: cannot read standard input: {e}"))?;
        let output = palier_core::replay::replay_with_threads(&programs, &input, as_of, threads);
        output.documents.into_iter().map(document_line).for_each(&mut write);
        output.rejections
    } else {
        let cannot_read = |e: io::Error| format!("--events: cannot read {events}: {e}");
        match stream_file(&programs, events, as_of, threads, &mut write).map_err(cannot_read)? {
            Ok(rejections) => rejections,
            Err(stopped) => {
                if timings {
                    eprintln!(
                        "one pass stopped ({stopped:?}) after {:?}: replaying the general way",
                        started.elapsed()
                    );
                }
                let output = parse_file(&programs, events, threads)
                    .map_err(cannot_read)?
                    .run_with_threads(&programs, as_of, threads);
                output.documents.into_iter().map(document_line).for_each(&mut write);
                output.rejections
            }
        }
    };
    written.and_then(|()| out.flush()).map_err(|e| format!("cannot write the output: {e}"))?;
    if timings {
        eprintln!("replayed and written in {:?}: {}", started.elapsed(), memory_now());
    }
    let stderr = io::stderr();
    let mut err = io::BufWriter::new(stderr.lock());
    for rejected in &rejections {
        let _ = writeln!(err, "{rejected}");
    }
    let _ = err.flush();
    Ok(if rejections.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_REJECTED) })
}

/// The process's resident and peak memory, for `PALIER_TIMINGS`.
fn memory_now() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let memory: Vec<&str> = status.lines().filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM")).collect();
    memory.join(", ")
}

fn started_at() -> std::time::Instant {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

/// Replay frees parsed events as it applies them while members grow: freed memory
/// is kept for them rather than handed back to the system and faulted in again
/// (mimalloc's `purge_delay` set to -1; option 15 in mimalloc.h's `mi_option_e`).
fn keep_freed_memory() {
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is a plain store mimalloc reads when it purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Replays an events file in one pass, read in pieces ([`StreamReplay`]); `Err`
/// inside when the file is not nearly in order of `at`.
fn stream_file(
    programs: &[Program],
    path: &str,
    as_of: Option<jiff::Timestamp>,
    threads: usize,
    each: impl FnMut(io::Result<Vec<u8>>),
) -> io::Result<Result<Vec<RejectedLine>, Unstreamable>> {
    let mut file = std::fs::File::open(path)?;
    let source = bytes_at(file.try_clone()?);
    let mut stream = StreamReplay::new(programs, as_of, threads);
    stream.reserve_for(file.metadata()?.len());
    if std::env::var_os("PALIER_TIMINGS").is_some() {
        eprintln!("room reserved at {:?}: {}", started_at().elapsed(), memory_now());
    }
    let mut stopped = None;
    let push = |piece: &[u8]| {
        if stopped.is_none() {
            stopped = stream.push(piece, &source).err();
        }
    };
    // SAFETY: palier only reads the map. Were another process to shorten the file
    // during the replay, reading a page past its new end would stop palier with
    // SIGBUS: a file being rewritten under a replay gives no answer to trust.
    match unsafe { memmap2::Mmap::map(&file) } {
        Ok(map) => for_each_mapped_piece(&map, palier_core::stream::PIECE_BYTES, push),
        // Not a file that can be mapped (a pipe, a device): read it.
        Err(_) => for_each_piece(&mut file, palier_core::stream::PIECE_BYTES, push)?,
    }
    if std::env::var_os("PALIER_TIMINGS").is_some() {
        eprintln!("input read and applied at {:?}: {}", started_at().elapsed(), memory_now());
    }
    // No document is handed out before the input is all applied: a pass that stops
    // has written nothing.
    let output = match stopped {
        Some(stopped) => Err(stopped),
        None => stream.finish_mapped(&source, document_line, each).map(|(_, rejections)| rejections),
    };
    // The process exits once the documents are written: freeing every member one
    // allocation at a time would only delay it.
    std::mem::forget(stream);
    Ok(output)
}

/// A member document as the command prints it: one JSON object and a line feed.
fn document_line(document: MemberDocument) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(&document)?;
    line.push(b'\n');
    Ok(line)
}

/// Reads `length` bytes at `offset` of `file` (lines read again to compare bodies
/// of repeated ids).
fn bytes_at(file: std::fs::File) -> impl Fn(u64, usize) -> Option<Vec<u8>> + Sync {
    use std::os::unix::fs::FileExt;
    move |offset, length| {
        let mut bytes = vec![0_u8; length];
        file.read_exact_at(&mut bytes, offset).ok().map(|()| bytes)
    }
}

/// Hands `map` to `piece` in pieces of about `bytes` bytes, each ending at the end of
/// a line (or of the map), in order. The pages of the next piece are put in place
/// by a thread of its own while `piece` works on this one, and a piece's pages are
/// let go once it is done: the file is read where the kernel keeps it, not copied,
/// and no more than two pieces of it count in the process's memory.
fn for_each_mapped_piece(map: &memmap2::Mmap, bytes: usize, mut piece: impl FnMut(&[u8])) {
    let end_of_piece = |start: usize| {
        let end = start.saturating_add(bytes.max(1)).min(map.len());
        map[end - 1..].iter().position(|b| *b == b'\n').map_or(map.len(), |at| end + at)
    };
    let (ahead, pages_wanted) = std::sync::mpsc::channel::<std::ops::Range<usize>>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for range in pages_wanted {
                // Only a hint: a kernel without it (before Linux 5.14) faults them in as read.
                let _ = map.advise_range(memmap2::Advice::PopulateRead, range.start, range.len());
            }
        });
        let mut start = 0;
        let mut end = if map.is_empty() { 0 } else { end_of_piece(0) };
        let _ = ahead.send(0..end);
        while start < end {
            let next = if end < map.len() { end_of_piece(end) } else { end };
            let _ = ahead.send(end..next);
            piece(&map[start..end]);
            // SAFETY: the map is never written: a page let go is read again from the
            // file should anything look at it (the line of a repeated id, say).
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            (start, end) = (end, next);
        }
        drop(ahead);
    });
}

/// Reads `file` in pieces of about `bytes` bytes, each ending at the end of a line
/// (or of the file), and hands them to `piece` in order. The next piece is read on
/// a thread of its own while `piece` works on this one: copying the file in costs
/// the replay's threads no waiting.
fn for_each_piece(file: &mut std::fs::File, bytes: usize, mut piece: impl FnMut(&[u8])) -> io::Result<()> {
    // Two buffers in all: one being read, one being worked on.
    let (full_sender, full) = std::sync::mpsc::sync_channel::<Vec<u8>>(0);
    let (spare_sender, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_pieces(file, bytes, &full_sender, &spare));
        for buffer in full {
            piece(&buffer);
            // The reader has stopped if this fails; its outcome is below.
            let _ = spare_sender.send(buffer);
        }
        reader.join().unwrap_or_else(|_| Err(io::Error::other("the thread reading the events stopped")))
    })
}

/// The reading side of [`for_each_piece`]: fills buffers (taken back from `spare`
/// once worked on) and sends each, cut after its last line feed, to `full`.
fn read_pieces(
    file: &mut std::fs::File,
    bytes: usize,
    full: &std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut carried = Vec::new();
    loop {
        let mut buffer = spare.try_recv().unwrap_or_default();
        buffer.clear();
        buffer.append(&mut carried);
        let mut wanted = bytes;
        let (end, done) = loop {
            // `read_to_end` fills the buffer's spare room without zeroing it first.
            buffer.reserve(wanted.saturating_sub(buffer.len()));
            let room = wanted.saturating_sub(buffer.len()).max(1) as u64;
            let read = (&mut *file).take(room).read_to_end(&mut buffer)?;
            if (read as u64) < room {
                break (buffer.len(), true);
            }
            match buffer.iter().rposition(|b| *b == b'\n') {
                Some(last) => break (last + 1, false),
                // A line longer than a piece: read on.
                None => wanted = buffer.len() * 2,
            }
        };
        carried.extend_from_slice(&buffer[end..]);
        buffer.truncate(end);
        if !buffer.is_empty() && full.send(buffer).is_err() {
            return Ok(());
        }
        if done {
            return Ok(());
        }
    }
}

/// Reads an events file in chunks, parsing each as it comes: the file is never
/// whole in memory. Lines whose id repeats are read again to compare their bodies.
fn parse_file(programs: &[Program], path: &str, threads: usize) -> io::Result<Replay> {
    let mut file = std::fs::File::open(path)?;
    let mut parser = ReplayParser::new(programs, threads);
    parser.reserve_for(file.metadata()?.len());
    for_each_piece(&mut file, 8 << 20, |piece| parser.push(piece))?;
    Ok(parser.finish(bytes_at(file)))
}

fn run_check(program_path: &PathBuf) -> Result<ExitCode, String> {
    let program = load_program(program_path)?;
    println!(
        "{}: {} ({}), {} tiers, {} currencies, zone {}",
        program_path.display(),
        program.id,
        program.name,
        program.tiers.len(),
        program.currencies.len(),
        program.calendar.zone_name()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, Write};

    use proptest::prelude::*;

    /// The pieces of `text` as `for_each_piece` reads them and as
    /// `for_each_mapped_piece` maps them, `bytes` at a time.
    fn pieces(text: &[u8], bytes: usize) -> [Vec<Vec<u8>>; 2] {
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(text).expect("written");
        file.rewind().expect("rewound");
        let mut read = Vec::new();
        super::for_each_piece(&mut file, bytes, |piece| read.push(piece.to_vec())).expect("read");
        // SAFETY: the temporary file is this test's own.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("mapped");
        let mut mapped = Vec::new();
        super::for_each_mapped_piece(&map, bytes, |piece| mapped.push(piece.to_vec()));
        [read, mapped]
    }

    proptest! {
        /// Whatever the lines' lengths beside the piece size (longer ones included),
        /// the pieces are the file, in order, each cut just after a line feed (the
        /// last one may end the file without one), and none is empty.
        #[test]
        fn pieces_are_the_file_cut_at_line_ends(
            lines in prop::collection::vec("[a-z]{0,40}", 0..60),
            final_feed in any::<bool>(),
            bytes in 1_usize..48,
        ) {
            let mut text = lines.join("\n").into_bytes();
            if final_feed && !text.is_empty() {
                text.push(b'\n');
            }
            for pieces in pieces(&text, bytes) {
                prop_assert_eq!(pieces.concat(), text.clone());
                for (index, piece) in pieces.iter().enumerate() {
                    prop_assert!(!piece.is_empty());
                    if index + 1 < pieces.len() {
                        prop_assert_eq!(piece.last(), Some(&b'\n'));
                    }
                    // A piece holds whole lines: at most the last one lacks its feed.
                    let lines_in = piece.iter().filter(|b| **b == b'\n').count();
                    prop_assert!(lines_in >= 1 || index + 1 == pieces.len());
                }
            }
        }
    }
}
