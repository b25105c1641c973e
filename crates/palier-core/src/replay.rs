//! `palier replay`: events in, member documents out (contract.md "The command line").

use std::fmt;

use jiff::Timestamp;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::document::MemberDocument;
use crate::engine::Engine;
use crate::event::{CodeIssue, Event, EventBody, Id, RejectCode, Rejection, parse_event, sniff_id};
use crate::program::Program;
use crate::sales::Sales;

/// What a replay prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOutput {
    /// The instant the documents describe (`None`: no event was readable).
    pub as_of: Option<Timestamp>,
    pub documents: Vec<MemberDocument>,
    /// Every rejected event, in input line order.
    pub rejections: Vec<RejectedLine>,
}

/// One rejected input line: `line N: event ID: CODE: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedLine {
    pub line: usize,
    pub event_id: Option<String>,
    pub rejection: Rejection,
}

impl fmt::Display for RejectedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.event_id.as_deref().unwrap_or("?");
        write!(f, "line {}: event {}: {}", self.line, id, self.rejection)
    }
}

/// A replay's input, parsed: one entry per non-blank line. It owns what it needs,
/// so the input buffer can be dropped before the (memory-hungry) run.
pub struct Replay {
    lines: Vec<ParsedLine>,
}

struct ParsedLine {
    number: usize,
    /// The event and the index of its program, or why it was rejected and the id
    /// read from the line if any.
    event: Parsed,
    /// Lines sharing an event id: the position of the id's first line (`NONE` for
    /// an id used once) and a body class, equal for bodies that are equal JSON
    /// values (decisions D7).
    repeat_of: u32,
    body_class: u32,
}

const NONE: u32 = u32::MAX;

/// Parses a replay's input given in pieces (a file read in chunks), so that the
/// whole input never needs to be in memory at once.
pub struct ReplayParser<'p> {
    programs: &'p [Program],
    threads: usize,
    lines: Vec<ParsedLine>,
    /// Where each parsed line sits in the input: (byte offset, length).
    spans: Vec<(u64, u32)>,
    /// Lines seen so far (blank ones included) and bytes consumed.
    line_count: usize,
    offset: u64,
}

impl<'p> ReplayParser<'p> {
    pub fn new(programs: &'p [Program], threads: usize) -> ReplayParser<'p> {
        ReplayParser { programs, threads, lines: Vec::new(), spans: Vec::new(), line_count: 0, offset: 0 }
    }

    /// Reserves room for an input of `bytes` bytes, so that the parsed lines are not
    /// copied as they grow (room reserved but unused costs no memory).
    pub fn reserve_for(&mut self, bytes: u64) {
        let lines = usize::try_from(bytes / 64).unwrap_or(0);
        self.lines.reserve(lines);
        self.spans.reserve(lines);
    }

    /// Parses the lines of `chunk`, the next piece of the input. A chunk must end at
    /// the end of a line (or of the input).
    pub fn push(&mut self, chunk: &[u8]) {
        let raw = split_lines(chunk, &mut self.line_count, self.offset);
        self.offset += chunk.len() as u64;
        let programs = self.programs;
        let mut parsed: Vec<ParsedLine> = Vec::new();
        let parse_one = |line: &RawLine<'_>| ParsedLine {
            number: line.number,
            event: parse_piece(programs, line.bytes),
            repeat_of: NONE,
            body_class: 0,
        };
        let pool = (self.threads > 1 && raw.len() > 4096)
            .then(|| rayon::ThreadPoolBuilder::new().num_threads(self.threads).build().ok())
            .flatten();
        match pool {
            Some(pool) => {
                pool.install(|| raw.par_iter().with_min_len(1024).map(parse_one).collect_into_vec(&mut parsed))
            }
            None => parsed = raw.iter().map(parse_one).collect(),
        }
        self.lines.append(&mut parsed);
        self.spans.extend(raw.iter().map(|line| (line.offset, line.bytes.len() as u32)));
    }

    /// Settles which lines share an event id and whether their bodies are equal JSON
    /// values (decisions D7). `body(offset, length)` gives back the bytes of a line
    /// (it is asked only for lines whose id occurs more than once).
    pub fn finish(self, mut body: impl FnMut(u64, usize) -> Option<Vec<u8>>) -> Replay {
        let ReplayParser { mut lines, spans, threads, .. } = self;
        let repeats = repeated_ids(&lines, threads);
        let mut classes: Vec<(usize, u32)> = Vec::new();
        for group in repeats.chunk_by(|a, b| a.0 == b.0) {
            let positions: Vec<usize> = std::iter::once(group[0].0).chain(group.iter().map(|(_, p)| *p)).collect();
            let bodies: Vec<Option<serde_json::Value>> = positions
                .iter()
                .map(|p| {
                    let (offset, length) = spans[*p];
                    body(offset, length as usize).and_then(|bytes| serde_json::from_slice(&bytes).ok())
                })
                .collect();
            for (index, position) in positions.iter().enumerate() {
                let class = bodies[..index].iter().position(|b| *b == bodies[index]).unwrap_or(index);
                classes.push((*position, class as u32));
            }
        }
        for (position, class) in classes {
            lines[position].body_class = class;
        }
        for (original, position) in repeats {
            lines[original].repeat_of = original as u32;
            lines[position].repeat_of = original as u32;
        }
        Replay { lines }
    }
}

impl Replay {
    /// Parses every non-blank line of a JSON Lines input on its own, on every core.
    pub fn parse(programs: &[Program], input: &[u8]) -> Replay {
        Replay::parse_with_threads(programs, input, threads_for(input.len() / 256))
    }

    /// [`Replay::parse`] on `threads` threads. The result does not depend on it.
    pub fn parse_with_threads(programs: &[Program], input: &[u8], threads: usize) -> Replay {
        let mut parser = ReplayParser::new(programs, threads);
        parser.push(input);
        parser.finish(bytes_at(input))
    }

    /// The latest `at` of the readable events: the default `--as-of`.
    pub fn latest(&self) -> Option<Timestamp> {
        self.lines.iter().filter_map(|l| l.event.as_ref().ok()).map(|(_, e)| e.at).max()
    }

    /// Applies, in order of `at` (ties in line order), the events at or before
    /// `as_of`, then every time rule due at or before it.
    pub fn run(self, programs: &[Program], as_of: Option<Timestamp>) -> ReplayOutput {
        let threads = threads_for(self.lines.len());
        self.run_with_threads(programs, as_of, threads)
    }

    /// [`Replay::run`] on `threads` threads. The output does not depend on it.
    /// Events are handed over to the engines and freed as they are applied.
    pub fn run_with_threads(self, programs: &[Program], as_of: Option<Timestamp>, threads: usize) -> ReplayOutput {
        let mut rejections: Vec<RejectedLine> = Vec::new();
        for line in &self.lines {
            if let Err((rejection, id)) = &line.event {
                rejections.push(RejectedLine { line: line.number, event_id: id.clone(), rejection: rejection.clone() });
            }
        }
        let Some(as_of) = as_of.or_else(|| self.latest()) else {
            return ReplayOutput { as_of: None, documents: Vec::new(), rejections };
        };
        let due = self.due(as_of, &mut rejections);
        let (sales, due) = self.program_wide(programs, due, &mut rejections);
        let sales = &sales;
        let routes = self.route(&due, threads);

        let mut lines = self.lines;
        let mut documents = match routes {
            Some(routes) => {
                // Events naming an order nobody places go to engines of their own
                // (all unknown_order).
                let order: Vec<usize> = routes.iter().map(|(_, p)| *p).collect();
                permute(&mut lines, &order);
                let unrouted = routes.partition_point(|(group, _)| *group != u64::MAX);
                let (routed, rest) = lines.split_at_mut(order.len());
                let (members, orphans) = routed.split_at_mut(unrouted);
                drop(order);
                let mut documents = apply_in_order(programs, sales, orphans, as_of, &mut rejections);
                let mut parts = Vec::with_capacity(threads);
                let mut members = members;
                for run in split_members(&routes[..unrouted], threads.max(1)) {
                    let (head, tail) = members.split_at_mut(run.len());
                    parts.push(head);
                    members = tail;
                }
                drop(routes);
                let _ = rest;
                let results: Vec<(Vec<MemberDocument>, Vec<RejectedLine>)> = std::thread::scope(|scope| {
                    let handles: Vec<_> = parts
                        .into_iter()
                        .map(|part| {
                            scope.spawn(move || {
                                let mut rejected = Vec::new();
                                let documents = apply_in_order(programs, sales, part, as_of, &mut rejected);
                                (documents, rejected)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                        .collect()
                });
                for (part_documents, part_rejections) in results {
                    documents.extend(part_documents);
                    rejections.extend(part_rejections);
                }
                documents
            }
            None => {
                let order: Vec<usize> = due.iter().map(|(_, p)| *p).collect();
                permute(&mut lines, &order);
                apply_in_order(programs, sales, &mut lines[..order.len()], as_of, &mut rejections)
            }
        };
        documents.sort_unstable_by(|a, b| (&a.member, &a.program).cmp(&(&b.member, &b.program)));
        rejections.sort_by_key(|r| r.line);
        ReplayOutput { as_of: Some(as_of), documents, rejections }
    }

    /// Settles the program-wide events before members are applied apart: sales are
    /// gathered per program (members look prices up at their own instants), and a
    /// one-time code issued twice goes to the member it was issued to first.
    /// Returns the sales and the events left for members.
    fn program_wide(
        &self,
        programs: &[Program],
        due: Vec<(Timestamp, usize)>,
        rejections: &mut Vec<RejectedLine>,
    ) -> (Vec<Sales>, Vec<(Timestamp, usize)>) {
        let mut sales: Vec<Sales> = programs.iter().map(|_| Sales::new()).collect();
        let mut codes = CodeOwners::default();
        let mut left = Vec::with_capacity(due.len());
        for (at, position) in due {
            let line = &self.lines[position];
            let Ok((program, event)) = &line.event else { continue };
            match &event.body {
                EventBody::SaleStarted(sale) => sales[*program].add(sale, at),
                EventBody::CodeIssued(issue) => match codes.claim(programs, *program, issue) {
                    Ok(()) => left.push((at, position)),
                    Err(rejection) => rejections.push(RejectedLine {
                        line: line.number,
                        event_id: Some(event.id.to_string()),
                        rejection,
                    }),
                },
                _ => left.push((at, position)),
            }
        }
        (sales, left)
    }

    /// The events to apply, `(at, position)` in order of `at` then line, after
    /// duplicate ids are settled in arrival order (decisions D7).
    fn due(&self, as_of: Timestamp, rejections: &mut Vec<RejectedLine>) -> Vec<(Timestamp, usize)> {
        // id group (position of its first line) → first line applied
        let mut first_applied: FxHashMap<u32, usize> = FxHashMap::default();
        let mut due: Vec<(Timestamp, usize)> = Vec::with_capacity(self.lines.len());
        for (position, line) in self.lines.iter().enumerate() {
            let Ok((_, event)) = &line.event else { continue };
            if event.at > as_of {
                continue;
            }
            if line.repeat_of == NONE {
                due.push((event.at, position));
                continue;
            }
            match first_applied.get(&line.repeat_of) {
                None => {
                    first_applied.insert(line.repeat_of, position);
                    due.push((event.at, position));
                }
                Some(first) if self.lines[*first].body_class == line.body_class => {}
                Some(first) => rejections.push(RejectedLine {
                    line: line.number,
                    event_id: Some(event.id.to_string()),
                    rejection: Rejection::new(
                        RejectCode::DuplicateConflict,
                        format!(
                            "id: {:?} was first used on line {} with another body",
                            event.id, self.lines[*first].number
                        ),
                    ),
                }),
            }
        }
        due.sort_unstable();
        due
    }

    /// Groups the due events member by member: `(group, position)` sorted by group,
    /// then by `at` and line within a group. A group is a hash of (program, member id);
    /// two members sharing one are applied together in order of `at`, which is exactly
    /// what an in-order replay does for them. Events naming an order nobody places go
    /// last, in group `u64::MAX`. `None` when two members place the same order id: only
    /// the in-order replay settles which one wins. Sorting, not hash maps, on all cores.
    fn route(&self, due: &[(Timestamp, usize)], threads: usize) -> Option<Vec<(u64, usize)>> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        const ORPHAN: u64 = u64::MAX;
        let hasher = BuildHasherDefault::<rustc_hash::FxHasher>::default();
        let key = |program: usize, id: &str| hasher.hash_one((program, id)).min(ORPHAN - 1);
        let event_at = |index: usize| match &self.lines[due[index].1].event {
            Ok((program, event)) => Some((*program, event)),
            Err(_) => None,
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().ok();
        let sort = |items: &mut Vec<(u64, usize)>| match &pool {
            Some(pool) if threads > 1 => pool.install(|| items.par_sort_unstable()),
            _ => items.sort_unstable(),
        };

        // Who places each order: (order key, due index), first placement first.
        let mut placed: Vec<(u64, usize)> = (0..due.len())
            .filter_map(|index| match event_at(index) {
                Some((program, event)) => match &event.body {
                    EventBody::OrderPlaced(order) => Some((key(program, &order.order), index)),
                    _ => None,
                },
                None => None,
            })
            .collect();
        sort(&mut placed);
        let placement = |index: usize| match event_at(index).map(|(p, e)| (p, &e.body)) {
            Some((program, EventBody::OrderPlaced(order))) => {
                Some((program, order.order.as_str(), order.member.as_str()))
            }
            _ => None,
        };
        for group in placed.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            let first = placement(group[0].1);
            if group[1..].iter().any(|(_, index)| placement(*index) != first) {
                return None;
            }
        }

        let mut routes: Vec<(u64, usize)> = (0..due.len())
            .filter_map(|index| {
                let (program, event) = event_at(index)?;
                let group = match event.body.member() {
                    Some(member) => key(program, member),
                    None => {
                        let order = event.body.order().unwrap_or_default();
                        let order_key = key(program, order);
                        let found = placed.partition_point(|(k, _)| *k < order_key);
                        match placed.get(found).filter(|(k, _)| *k == order_key).and_then(|(_, i)| placement(*i)) {
                            Some((p, id, member)) if p == program && id == order => key(program, member),
                            _ => ORPHAN,
                        }
                    }
                };
                Some((group, index))
            })
            .collect();
        sort(&mut routes);
        // Due indexes back to line positions; `due` is in order of `at` and line.
        Some(routes.into_iter().map(|(group, index)| (group, due[index].1)).collect())
    }
}

/// Applies the events of `lines`, in their order, to fresh engines (one per
/// program), freeing each once applied, and returns the documents at `as_of`,
/// unsorted.
fn apply_in_order(
    programs: &[Program],
    sales: &[Sales],
    lines: &mut [ParsedLine],
    as_of: Timestamp,
    rejections: &mut Vec<RejectedLine>,
) -> Vec<MemberDocument> {
    let mut engines: Vec<Engine<'_>> =
        programs.iter().zip(sales).map(|(program, sales)| Engine::with_sales(program, sales.clone())).collect();
    for line in lines {
        let taken = std::mem::replace(&mut line.event, Err((Rejection::new(RejectCode::InvalidJson, ""), None)));
        let Ok((program, event)) = taken else { continue };
        if let Err(rejection) = engines[program].apply(&event) {
            rejections.push(RejectedLine { line: line.number, event_id: Some(event.id.to_string()), rejection });
        }
    }
    let mut documents = Vec::new();
    for engine in &mut engines {
        engine.advance_all(as_of);
        documents.extend(engine.documents(as_of));
    }
    documents
}

/// Reorders `items` in place so that `items[i]` is the former `items[order[i]]` for
/// every `i < order.len()` (`order` holds distinct positions); the other items end up
/// after them. No second copy of the items is made.
fn permute<T>(items: &mut [T], order: &[usize]) {
    const UNPLACED: usize = usize::MAX;
    let mut destination = vec![UNPLACED; items.len()];
    for (new, old) in order.iter().enumerate() {
        destination[*old] = new;
    }
    for (next, slot) in (order.len()..).zip(destination.iter_mut().filter(|d| **d == UNPLACED)) {
        *slot = next;
    }
    for start in 0..items.len() {
        while destination[start] != start {
            let target = destination[start];
            items.swap(start, target);
            destination.swap(start, target);
        }
    }
}

/// Splits routes sorted by member group into `parts` runs of about equal length,
/// never cutting a member's events apart. Members are independent: each part gives
/// exactly what an in-order replay gives for its members.
fn split_members(routes: &[(u64, usize)], parts: usize) -> Vec<&[(u64, usize)]> {
    let mut chunks = Vec::with_capacity(parts);
    let mut rest = routes;
    for part in (1..=parts).rev() {
        let mut cut = rest.len() / part;
        while cut > 0 && cut < rest.len() && rest[cut].0 == rest[cut - 1].0 {
            cut += 1;
        }
        let (head, tail) = rest.split_at(cut);
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// Lines whose event id was used on an earlier line: `(first line, repeating line)`
/// positions, sorted. Ids are grouped by sorting their hashes (on every core), not
/// through a hash map of every id: with millions of lines that is several times
/// faster, and equal hashes are confirmed by comparing the ids themselves.
fn repeated_ids(lines: &[ParsedLine], threads: usize) -> Vec<(usize, usize)> {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hasher = BuildHasherDefault::<rustc_hash::FxHasher>::default();
    let id_of = |position: usize| lines[position].event.as_ref().ok().map(|(_, e)| e.id.as_str());
    let mut keyed: Vec<(u64, u32)> = lines
        .iter()
        .enumerate()
        .filter_map(|(position, line)| {
            line.event.as_ref().ok().map(|(_, e)| (hasher.hash_one(e.id.as_str()), position as u32))
        })
        .collect();
    match rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build() {
        Ok(pool) if threads > 1 => pool.install(|| keyed.par_sort_unstable()),
        _ => keyed.sort_unstable(),
    }
    let mut repeats = Vec::new();
    for group in keyed.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        // Equal hashes: group by the id itself, in line order (positions ascend).
        let mut firsts: Vec<usize> = Vec::new();
        for (_, position) in group {
            let position = *position as usize;
            match firsts.iter().find(|first| id_of(**first) == id_of(position)) {
                Some(first) => repeats.push((*first, position)),
                None => firsts.push(position),
            }
        }
    }
    repeats.sort_unstable();
    repeats
}

/// Threads worth using for `work` lines: all cores for large inputs, one for small.
pub(crate) fn threads_for(work: usize) -> usize {
    if work < 20_000 {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// The one-time codes issued so far and the member each went to first, per program.
#[derive(Default)]
pub(crate) struct CodeOwners(FxHashMap<(usize, Id), Id>);

impl CodeOwners {
    /// Settles a `code.issued` before members are applied apart: a code already
    /// issued to another member is refused `code_exists`.
    pub(crate) fn claim(&mut self, programs: &[Program], program: usize, issue: &CodeIssue) -> Result<(), Rejection> {
        let (member, code) = (&issue.member, &issue.code);
        let terms = &programs[program];
        let key = (program, code.clone());
        if self.0.get(&key).is_some_and(|owner| owner != member) {
            return Err(Rejection::new(RejectCode::CodeExists, format!("code: {code:?} already exists")));
        }
        if terms.code(&issue.promotion).is_some_and(|p| p.one_time) && terms.code(code).is_none() {
            self.0.insert(key, member.clone());
        }
        Ok(())
    }
}

/// Reads `length` bytes at `offset` of an input held in memory (lines read again
/// to compare bodies of repeated ids).
pub(crate) fn bytes_at(input: &[u8]) -> impl Fn(u64, usize) -> Option<Vec<u8>> + Sync + '_ {
    move |offset, length| {
        let start = usize::try_from(offset).ok()?;
        input.get(start..start.checked_add(length)?).map(<[u8]>::to_vec)
    }
}

/// One non-blank input line: its number (from 1, blank lines counted), where it
/// starts in the input, and its bytes without the line feed.
pub(crate) struct RawLine<'a> {
    pub number: usize,
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// The non-blank lines of `chunk`, which starts at byte `offset` of the input after
/// `line_count` lines (updated).
pub(crate) fn split_lines<'a>(chunk: &'a [u8], line_count: &mut usize, offset: u64) -> Vec<RawLine<'a>> {
    let mut raw = Vec::with_capacity(chunk.len() / 128);
    let mut start = 0;
    // Every line feed ends a line, and so does the end of a chunk that does not end with one.
    let unterminated = chunk.last().is_some_and(|last| *last != b'\n');
    let ends = memchr::memchr_iter(b'\n', chunk).chain(unterminated.then_some(chunk.len()));
    for end in ends {
        *line_count += 1;
        let bytes = &chunk[start..end];
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            raw.push(RawLine { number: *line_count, offset: offset + start as u64, bytes });
        }
        start = end + 1;
    }
    raw
}

/// What one line holds: the event and the index of its program, or why it was
/// rejected and the id read from the line if any.
pub(crate) type Parsed = Result<(usize, Event), (Rejection, Option<String>)>;

/// Parses one line's bytes (see [`parse_line`]).
pub(crate) fn parse_piece(programs: &[Program], bytes: &[u8]) -> Parsed {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_line(programs, text).map_err(|rejection| (rejection, sniff_id(text))),
        Err(_) => Err((Rejection::new(RejectCode::InvalidJson, "the line is not UTF-8"), None)),
    }
}

/// Parses one line and checks what needs no state: the event itself and the
/// program it names (which may be left out when only one program is loaded).
fn parse_line(programs: &[Program], text: &str) -> Result<(usize, Event), Rejection> {
    let event = parse_event(text)?;
    let index = match &event.program {
        Some(named) => programs.iter().position(|p| p.id == *named).ok_or_else(|| {
            let loaded: Vec<&str> = programs.iter().map(|p| p.id.as_str()).collect();
            Rejection::new(
                RejectCode::UnknownProgram,
                format!("program: {named:?} is not a program loaded ({})", loaded.join(", ")),
            )
        })?,
        None if programs.len() == 1 => 0,
        None => {
            return Err(Rejection::new(RejectCode::MissingField, "program: required when several programs are loaded"));
        }
    };
    Ok((index, event))
}

/// Replays `input` (JSON Lines) against `programs` up to `as_of` (default: the
/// latest event's `at`).
pub fn replay(programs: &[Program], input: &[u8], as_of: Option<Timestamp>) -> ReplayOutput {
    replay_with_threads(programs, input, as_of, threads_for(input.len() / 256))
}

/// [`replay`] on `threads` threads: in one pass when the input is nearly in order
/// of `at` ([`crate::stream`]), else parsed whole and sorted. The output depends
/// on neither.
pub fn replay_with_threads(
    programs: &[Program],
    input: &[u8],
    as_of: Option<Timestamp>,
    threads: usize,
) -> ReplayOutput {
    match crate::stream::stream_slice(programs, input, as_of, threads) {
        Ok(output) => output,
        Err(_) => Replay::parse_with_threads(programs, input, threads).run_with_threads(programs, as_of, threads),
    }
}
