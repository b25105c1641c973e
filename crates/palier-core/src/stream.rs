//! Replay in one pass, for input nearly in order of `at` — the usual case: a feed
//! written as things happen, where an event may come a few lines late.
//!
//! The input is read piece by piece. Each piece is parsed on every core; its events
//! join a small look-ahead buffer, sorted by `at` then line, and those that no later
//! line can precede any more are applied. Members are spread over shards (several per
//! thread) by a hash of (program, member): members are independent, so each shard
//! applies its events in order exactly as a single in-order replay would. An event
//! stays where it was parsed: the buffer and the shards hold where it is, and a
//! piece is freed once its events are applied (memory holds the members, not the
//! input).
//!
//! When the input is not nearly in order (an event earlier than one already applied),
//! or two members in different shards place the same order id (only a single
//! in-order replay settles which one wins), the stream gives up with
//! [`Unstreamable`] and the caller replays the input the general way
//! ([`crate::replay::Replay`]). The output never depends on which way was taken.

use std::collections::VecDeque;
use std::hash::{BuildHasher, BuildHasherDefault};

mod first_uses;
mod index;

use jiff::Timestamp;
use rayon::prelude::*;
use rustc_hash::FxHasher;

use crate::document::MemberDocument;
use crate::engine::{Engine, Located};
use crate::event::{Event, EventBody, Id, RejectCode, Rejection};
use crate::member::Member;
use crate::program::Program;
use crate::replay::{CodeOwners, Parsed, RawLine, RejectedLine, ReplayOutput, bytes_at, parse_piece, split_lines};
use crate::stream::first_uses::FirstUses;
use crate::stream::index::OrderShards;

/// The size of the pieces the input is read in: large enough that each phase keeps
/// every core busy for a while, small enough that the parsed events of two pieces
/// weigh little beside the members.
pub const PIECE_BYTES: usize = 16 << 20;

/// How many of a piece's last events are held back, so that a line written late
/// in the next piece still finds them unapplied.
const HOLD_BACK: usize = 4096;

/// Why a streaming replay stopped; the caller replays the input the general way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unstreamable {
    /// The event on this line is earlier than one already applied.
    OutOfOrder { line: usize },
    /// The order placed on this line was placed before by a member of another shard.
    SharedOrder { line: usize },
}

/// Gives back the bytes of the input at (offset, length): lines whose event id
/// was used before are read again to compare their bodies.
pub type LineSource<'s> = dyn Fn(u64, usize) -> Option<Vec<u8>> + Sync + 's;

/// An event waiting in the look-ahead buffer: its sort key and how it is routed.
/// The event itself stays where it was parsed, in its piece (see [`Pieces`]):
/// moving it on each step (waiting, handed over, batched) cost more than the
/// rest of the serial step.
#[derive(Clone, Copy)]
struct Waiting {
    at: Timestamp,
    slot: Slot,
    routes: Routes,
}

/// Where a parsed line is: the piece (by number, from 0) and its index there. In
/// the order of the lines, so that (`at`, slot) orders events as (`at`, line).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Slot(u64);

impl Slot {
    fn new(piece: u64, index: usize) -> Slot {
        Slot(piece << 32 | index as u64)
    }

    fn piece(self) -> u64 {
        self.0 >> 32
    }

    fn index(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }
}

/// The parsed pieces whose events are not all applied yet, oldest first.
#[derive(Default)]
struct Pieces {
    /// The number of the first piece held.
    first: u64,
    held: VecDeque<ParsedPiece>,
}

impl Pieces {
    /// The line at `slot`, with its event, if it is held and readable.
    fn line(&self, slot: Slot) -> Option<(&LineAt, usize, &Event)> {
        let piece = self.held.get(usize::try_from(slot.piece().checked_sub(self.first)?).ok()?)?;
        let (here, _, _, parsed) = piece.get(slot.index())?;
        let (program, event) = parsed.as_ref().ok()?;
        Some((here, *program, event))
    }

    /// The number the next piece will be held under.
    fn next(&self) -> u64 {
        self.first + self.held.len() as u64
    }
}

/// The members of one shard, one engine per program, and the events for it.
struct Shard<'p> {
    engines: Vec<Engine<'p>>,
    /// Where the events to apply are, in order.
    batch: Vec<Slot>,
    /// Where each event of the batch found its member, a few events ahead of
    /// applying it (kept, emptied, for its memory).
    located: Vec<Option<Located>>,
    rejections: Vec<RejectedLine>,
}

impl<'p> Shard<'p> {
    fn apply_batch(&mut self, pieces: &Pieces) {
        let lines: Vec<_> = self.batch.iter().filter_map(|slot| pieces.line(*slot)).collect();
        // A batch holds only readable events of pieces still held (`release_pieces`).
        debug_assert_eq!(lines.len(), self.batch.len(), "a batched event is no longer held");
        let mut located = std::mem::take(&mut self.located);
        located.clear();
        located.extend(lines.iter().take(AHEAD).map(|(_, program, event)| self.engines[*program].locate(event)));
        for index in 0..lines.len() {
            // Five steps: the event (parsed on another core, long ago), what its
            // body points to (an order placed is boxed), where its member or order
            // is indexed, the member, then (once it has arrived) its orders. Where
            // the member is, found for the fourth step, serves the fifth and the
            // event.
            if let Some((_, _, event)) = lines.get(index + 4 * AHEAD) {
                crate::engine::prefetch(*event);
            }
            if let Some((_, _, event)) = lines.get(index + 3 * AHEAD) {
                crate::engine::prefetch_body(event);
            }
            if let Some((_, program, event)) = lines.get(index + 2 * AHEAD) {
                self.engines[*program].prefetch_index(event);
            }
            if let Some((_, program, event)) = lines.get(index + AHEAD) {
                let engine = &self.engines[*program];
                let found = engine.locate(event);
                engine.prefetch(event, found);
                located.push(found);
            }
            if let Some((_, program, _)) = lines.get(index + AHEAD / 2) {
                self.engines[*program].prefetch_orders(located[index + AHEAD / 2]);
            }
            let (here, program, event) = lines[index];
            if let Err(rejection) = self.engines[program].apply_located(event, located[index]) {
                self.rejections.push(RejectedLine { line: here.line, event_id: Some(event.id.to_string()), rejection });
            }
        }
        self.batch.clear();
        self.located = located;
    }
}

/// Events between one whose memory is prefetched and the one worked on: enough for
/// the loads to arrive, few enough for them to stay in cache.
const AHEAD: usize = 8;

/// Shards of members per thread of the pool: the more, the less a thread done with
/// its shards waits for the slowest at the end of each piece (8 rather than 4: wall
/// time -2 to -5 % in alternating runs on 1M events; 16: no better).
const SHARDS_PER_THREAD: usize = 8;

/// Where a parsed line is in the input, and its number.
#[derive(Clone, Copy, Default)]
struct LineAt {
    offset: u64,
    length: usize,
    line: usize,
}

impl LineAt {
    fn new(offset: u64, length: usize, line: usize) -> LineAt {
        LineAt { offset, length, line }
    }

    /// The line's bytes, read again.
    fn read(&self, source: &LineSource<'_>) -> Option<Vec<u8>> {
        source(self.offset, self.length)
    }
}

/// The lines of a piece of the input, parsed (with the hashes of their event id and
/// of what routes them), waiting to be taken in while the next piece is parsed.
type ParsedPiece = Vec<(LineAt, u64, Routes, Parsed)>;

/// The hashes an event is handed over by, worked out where it is parsed: of its
/// program and member (its shard), and of the order it names.
#[derive(Clone, Copy, Default)]
struct Routes {
    member: Option<u64>,
    order: Option<u64>,
}

impl Routes {
    fn of(parsed: &Parsed) -> Routes {
        let Ok((program, event)) = parsed else { return Routes::default() };
        let hasher = BuildHasherDefault::<FxHasher>::default();
        Routes {
            member: event.body.member().map(|member| hasher.hash_one((program, member))),
            order: event.body.order().map(id_hash),
        }
    }
}

/// A replay fed its input piece by piece ([`StreamReplay::push`]), then
/// [`StreamReplay::finish`]ed. While one piece is parsed, the one before is taken
/// in and applied, on every core.
pub struct StreamReplay<'p> {
    programs: &'p [Program],
    pool: Option<rayon::ThreadPool>,
    line_count: usize,
    offset: u64,
    parsed: Option<ParsedPiece>,
    /// The vector of the piece taken in last, emptied, for the next piece: pieces
    /// reuse the same memory rather than fault in new pages each time.
    spare: ParsedPiece,
    state: State<'p>,
}

/// Everything but the parsing.
struct State<'p> {
    programs: &'p [Program],
    as_of: Option<Timestamp>,
    parallel: bool,
    shards: Vec<Shard<'p>>,
    /// The latest `at` of the readable events (the default `as_of`).
    latest: Option<Timestamp>,
    /// The pieces taken in whose events are not all applied.
    pieces: Pieces,
    /// A piece's vector, emptied once its events were applied, for the next piece.
    spare: Option<ParsedPiece>,
    /// The `at` of the last event handed to the shards.
    handed_up_to: Option<Timestamp>,
    waiting: Vec<Waiting>,
    /// The events being handed over (kept, emptied, for its memory).
    ready: Vec<Waiting>,
    /// The line each event id was first used on.
    first_uses: FirstUses,
    /// Per program: hash of an order id → the shard of the member who placed it.
    /// Two ids sharing a hash can only make the stream give up (`SharedOrder`),
    /// never send an event to the wrong shard.
    orders: Vec<OrderShards>,
    codes: CodeOwners,
    rejections: Vec<RejectedLine>,
}

fn id_hash(id: &str) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one(id)
}

impl<'p> StreamReplay<'p> {
    /// A replay of `programs` to `as_of` (default: the latest event's `at`) on
    /// `threads` threads. The output does not depend on the number of threads.
    pub fn new(programs: &'p [Program], as_of: Option<Timestamp>, threads: usize) -> StreamReplay<'p> {
        let pool = (threads > 1).then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok()).flatten();
        // Several shards a thread: a thread done with its shards takes another's
        // rather than wait for the slowest at the end of each piece.
        let shards = (0..if pool.is_some() { threads * SHARDS_PER_THREAD } else { 1 })
            .map(|_| Shard {
                engines: programs.iter().map(Engine::new).collect(),
                batch: Vec::new(),
                located: Vec::new(),
                rejections: Vec::new(),
            })
            .collect();
        let state = State {
            programs,
            as_of,
            parallel: pool.is_some(),
            shards,
            latest: None,
            pieces: Pieces::default(),
            spare: None,
            handed_up_to: None,
            waiting: Vec::new(),
            ready: Vec::new(),
            first_uses: FirstUses::new(),
            orders: programs.iter().map(|_| OrderShards::new()).collect(),
            codes: CodeOwners::default(),
            rejections: Vec::new(),
        };
        StreamReplay { programs, pool, line_count: 0, offset: 0, parsed: None, spare: Vec::new(), state }
    }

    /// Reserves room for an input of about `bytes` bytes.
    pub fn reserve_for(&mut self, bytes: u64) {
        self.state.first_uses.reserve(usize::try_from(bytes / 256).unwrap_or(0));
    }

    /// Reads the next piece of the input, which must end at the end of a line (or
    /// of the input), while the piece before is applied.
    pub fn push(&mut self, chunk: &[u8], source: &LineSource<'_>) -> Result<(), Unstreamable> {
        let (line_count, offset) = (&mut self.line_count, self.offset);
        self.offset += chunk.len() as u64;
        let programs = self.programs;
        let parse = |line: &RawLine<'_>| {
            let here = LineAt::new(line.offset, line.bytes.len(), line.number);
            let parsed = parse_piece(programs, line.bytes);
            let hash = parsed.as_ref().map_or(0, |(_, event)| id_hash(&event.id));
            (here, hash, Routes::of(&parsed), parsed)
        };
        let previous = self.parsed.take();
        let mut lines = std::mem::take(&mut self.spare);
        let state = &mut self.state;
        let take_in = |piece: ParsedPiece| {
            let taken = state.take_in(piece, source);
            (state.spare.take(), taken)
        };
        let taken = match &self.pool {
            Some(pool) => {
                pool.install(|| {
                    rayon::join(
                        || {
                            let raw = split_lines(chunk, line_count, offset);
                            raw.par_iter().with_min_len(256).map(parse).collect_into_vec(&mut lines)
                        },
                        || previous.map(take_in),
                    )
                })
                .1
            }
            None => {
                let taken = previous.map(take_in);
                lines.clear();
                lines.extend(split_lines(chunk, line_count, offset).iter().map(parse));
                taken
            }
        };
        self.parsed = Some(lines);
        match taken {
            Some((spare, taken)) => {
                self.spare = spare.unwrap_or_default();
                taken
            }
            None => Ok(()),
        }
    }

    /// Applies what is left and gives every member's document at `as_of`. The
    /// members stay in the replay until it is dropped (a command about to exit may
    /// rather not spend the time freeing them one by one).
    pub fn finish(&mut self, source: &LineSource<'_>) -> Result<ReplayOutput, Unstreamable> {
        let mut documents = Vec::new();
        let (as_of, rejections) = self.finish_with(source, |document| documents.push(document))?;
        Ok(ReplayOutput { as_of, documents, rejections })
    }

    /// [`StreamReplay::finish`], handing the documents to `each` in order (by member
    /// id, then program) rather than gathering them: they are made a few thousand
    /// at a time, on every core. Returns the instant they describe and the rejected
    /// lines, in line order.
    pub fn finish_with(
        &mut self,
        source: &LineSource<'_>,
        each: impl FnMut(MemberDocument),
    ) -> Result<(Option<Timestamp>, Vec<RejectedLine>), Unstreamable> {
        self.finish_mapped(source, |document| document, each)
    }

    /// [`StreamReplay::finish_with`], each document first turned by `map` (say,
    /// into its JSON line) on the core that made it.
    pub fn finish_mapped<T: Send>(
        &mut self,
        source: &LineSource<'_>,
        map: impl Fn(MemberDocument) -> T + Sync,
        each: impl FnMut(T),
    ) -> Result<(Option<Timestamp>, Vec<RejectedLine>), Unstreamable> {
        let last = self.parsed.take();
        let state = &mut self.state;
        let apply = || {
            if let Some(piece) = last {
                state.take_in(piece, source)?;
            }
            state.flush()
        };
        match &self.pool {
            Some(pool) => pool.install(apply)?,
            None => apply()?,
        }
        Ok(self.state.close(self.pool.as_ref(), map, each))
    }
}

impl<'p> State<'p> {
    /// Takes a parsed piece in, then applies the events no later line can precede
    /// any more: all but those at or after the earliest of the piece's last ones.
    fn take_in(&mut self, piece: ParsedPiece, source: &LineSource<'_>) -> Result<(), Unstreamable> {
        let before = self.waiting.len();
        let number = self.pieces.next();
        for (index, (here, hash, routes, parsed)) in piece.iter().enumerate() {
            // The slots of the ids a few lines on are loaded while this one is settled.
            if let Some((_, later, _, _)) = piece.get(index + AHEAD) {
                self.first_uses.prefetch(*later);
            }
            self.first_uses.saw_line(here.line as u64, here.offset);
            self.admit(Slot::new(number, index), *here, *hash, *routes, parsed, source);
        }
        self.pieces.held.push_back(piece);
        let added = &self.waiting[before..];
        let Some(horizon) = added[added.len().saturating_sub(HOLD_BACK)..].iter().map(|w| w.at).min() else {
            self.release_pieces();
            return Ok(());
        };
        sort_nearly_in_order(&mut self.waiting);
        let count = self.waiting.partition_point(|w| w.at < horizon);
        self.hand_over_first(count)
    }

    /// Applies every event still waiting.
    fn flush(&mut self) -> Result<(), Unstreamable> {
        sort_nearly_in_order(&mut self.waiting);
        self.hand_over_first(self.waiting.len())
    }

    /// Hands over the first `count` waiting events, then lets go of the pieces
    /// whose events are all applied.
    fn hand_over_first(&mut self, count: usize) -> Result<(), Unstreamable> {
        let mut ready = std::mem::take(&mut self.ready);
        ready.extend(self.waiting.drain(..count));
        let handed = self.hand_over(&ready);
        ready.clear();
        self.ready = ready;
        self.release_pieces();
        handed
    }

    /// Empties the pieces no waiting event is in (their events dropped on every
    /// core), keeping one vector for the next piece.
    fn release_pieces(&mut self) {
        let needed = self.waiting.iter().map(|w| w.slot.piece()).min().unwrap_or(self.pieces.next());
        while self.pieces.first < needed {
            let Some(mut piece) = self.pieces.held.pop_front() else { break };
            self.pieces.first += 1;
            match self.parallel {
                true => piece.par_drain(..).for_each(drop),
                false => piece.clear(),
            }
            self.spare = Some(piece);
        }
    }

    /// Hands every member's document at `as_of` to `each`, in order of member id
    /// then program; returns `as_of` and every rejection.
    fn close<T: Send>(
        &mut self,
        pool: Option<&rayon::ThreadPool>,
        map: impl Fn(MemberDocument) -> T + Sync,
        mut each: impl FnMut(T),
    ) -> (Option<Timestamp>, Vec<RejectedLine>) {
        /// Documents made at once: enough to keep every core busy, few enough to
        /// weigh nothing beside the members.
        const BATCH: usize = 4096;
        let mut rejections = std::mem::take(&mut self.rejections);
        for shard in &mut self.shards {
            rejections.append(&mut shard.rejections);
        }
        rejections.sort_by_key(|r| r.line);
        let Some(as_of) = self.as_of.or(self.latest) else {
            return (None, rejections);
        };
        // Each member is brought to `as_of` just before its document is made: one
        // pass over the members, not one to advance them and another to print them.
        // Gathered on every core, each engine into its own part of one vector of
        // the exact size (each member's id is a load from memory not touched for a
        // while: some 0.4 s on one core at 10M events), then sorted on every core.
        let programs = self.programs;
        // Documents come in order of member id, then program id.
        let rank: Vec<usize> =
            programs.iter().map(|program| programs.iter().filter(|other| other.id < program.id).count()).collect();
        let total = self.shards.iter().flat_map(|shard| &shard.engines).map(Engine::member_count).sum();
        let mut members: Vec<Gathered<'_>> = Vec::with_capacity(total);
        members.resize_with(total, || None);
        let mut parts = Vec::with_capacity(self.shards.len() * programs.len());
        let mut rest = members.as_mut_slice();
        for shard in &mut self.shards {
            for (program, engine) in shard.engines.iter_mut().enumerate() {
                let (part, after) = std::mem::take(&mut rest).split_at_mut(engine.member_count());
                parts.push((part, program, engine));
                rest = after;
            }
        }
        match pool {
            Some(pool) => pool.install(|| parts.into_par_iter().for_each(|(part, p, engine)| gather(part, p, engine))),
            None => parts.into_iter().for_each(|(part, p, engine)| gather(part, p, engine)),
        }
        let by_id = |a: &Gathered<'_>, b: &Gathered<'_>| match (a, b) {
            (Some((a, p, _)), Some((b, q, _))) => (a, rank[*p]).cmp(&(b, rank[*q])),
            _ => a.is_some().cmp(&b.is_some()),
        };
        match pool {
            Some(pool) => pool.install(|| members.par_sort_unstable_by(by_id)),
            None => members.sort_unstable_by(by_id),
        }
        // Members sorted by id lie anywhere in memory: each run of them is described
        // with the members a few places on already being loaded.
        let describe = |run: &mut [Gathered<'_>]| {
            let mut documents = Vec::with_capacity(run.len());
            for index in 0..run.len() {
                if let Some(Some((_, _, later))) = run.get(index + AHEAD) {
                    crate::engine::prefetch(&**later);
                }
                if let Some(Some((_, _, later))) = run.get(index + AHEAD / 2) {
                    later.prefetch_orders(None);
                }
                if let Some((_, program, member)) = &mut run[index] {
                    let program = &programs[*program];
                    member.advance(program, as_of, true);
                    documents.push(map(member.document(program, as_of)));
                }
            }
            documents
        };
        for batch in members.chunks_mut(BATCH) {
            let documents: Vec<Vec<T>> = match pool {
                Some(pool) => pool.install(|| batch.par_chunks_mut(BATCH / 16).map(describe).collect()),
                None => vec![describe(batch)],
            };
            documents.into_iter().flatten().for_each(&mut each);
        }
        (Some(as_of), rejections)
    }

    /// Takes one parsed line in: a rejection, an event past `as_of` (left out), a
    /// repeated id (left out, or refused when its body differs, decisions D7), or
    /// an event waiting to be applied (where it is: it stays there).
    fn admit(&mut self, slot: Slot, here: LineAt, hash: u64, routes: Routes, parsed: &Parsed, source: &LineSource<'_>) {
        let event = match parsed {
            Ok((_, event)) => event,
            Err((rejection, event_id)) => {
                let (rejection, event_id) = (rejection.clone(), event_id.clone());
                self.rejections.push(RejectedLine { line: here.line, event_id, rejection });
                return;
            }
        };
        self.latest = self.latest.max(Some(event.at));
        if self.as_of.is_some_and(|as_of| event.at > as_of) {
            return;
        }
        if let Some(first) = self.first_uses.first_use(&event.id, hash, here.line as u64, here.offset, source) {
            let body =
                |bytes: Option<Vec<u8>>| bytes.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            if body(first.bytes) != body(here.read(source)) {
                self.rejections.push(RejectedLine {
                    line: here.line,
                    event_id: Some(event.id.to_string()),
                    rejection: Rejection::new(
                        RejectCode::DuplicateConflict,
                        format!("id: {:?} was first used on line {} with another body", event.id, first.line),
                    ),
                });
            }
            return;
        }
        self.waiting.push(Waiting { at: event.at, slot, routes });
    }

    /// Hands events, in order of `at` then line, to the shards of their members and
    /// applies them there. Program-wide events are settled here first: a sale is
    /// known to every shard, a one-time code goes to the member it was issued to
    /// first.
    fn hand_over(&mut self, ready: &[Waiting]) -> Result<(), Unstreamable> {
        let shard_count = self.shards.len();
        let shard_of = |member: u64| ((u128::from(member) * shard_count as u128) >> 64) as u32;
        let pieces = &self.pieces;
        for (index, waiting) in ready.iter().enumerate() {
            if let Some(later) = ready.get(index + AHEAD)
                && let (Some((_, program, _)), Some(order)) = (pieces.line(later.slot), later.routes.order)
            {
                self.orders[program].prefetch(order);
            }
            let Some((here, program, event)) = pieces.line(waiting.slot) else {
                // Only readable events wait, in pieces held until they are applied.
                debug_assert!(false, "a waiting event is no longer held");
                continue;
            };
            let line = here.line;
            if self.handed_up_to.is_some_and(|up_to| waiting.at < up_to) {
                return Err(Unstreamable::OutOfOrder { line });
            }
            self.handed_up_to = Some(waiting.at);
            let Routes { member, order } = waiting.routes;
            let shard = match &event.body {
                EventBody::SaleStarted(_) => {
                    let mut outcome = Ok(());
                    for shard in &mut self.shards {
                        outcome = shard.engines[program].apply(event);
                    }
                    if let Err(rejection) = outcome {
                        let event_id = Some(event.id.to_string());
                        self.rejections.push(RejectedLine { line, event_id, rejection });
                    }
                    continue;
                }
                EventBody::CodeIssued(issue) => {
                    if let Err(rejection) = self.codes.claim(self.programs, program, issue) {
                        let event_id = Some(event.id.to_string());
                        self.rejections.push(RejectedLine { line, event_id, rejection });
                        continue;
                    }
                    member.map_or(0, shard_of)
                }
                EventBody::OrderPlaced(_) => {
                    let shard = member.map_or(0, shard_of);
                    match order.and_then(|order| self.orders[program].get_or_insert(order, shard)) {
                        Some(first) if first != shard => {
                            return Err(Unstreamable::SharedOrder { line });
                        }
                        _ => {}
                    }
                    shard
                }
                _ => match (member, order) {
                    (Some(member), _) => shard_of(member),
                    (None, Some(order)) => self.orders[program].get(order).unwrap_or(0),
                    (None, None) => 0,
                },
            };
            self.shards[shard as usize].batch.push(waiting.slot);
        }
        match self.parallel {
            true => self.shards.par_iter_mut().for_each(|shard| shard.apply_batch(pieces)),
            false => self.shards.iter_mut().for_each(|shard| shard.apply_batch(pieces)),
        }
        Ok(())
    }
}

/// A member gathered for its document: its id (the key documents are sorted by),
/// its program's index and the member itself; 40 bytes. Every slot is filled before
/// the sort (`None` only until then).
type Gathered<'m> = Option<(Id, usize, &'m mut Member)>;

/// Fills an engine's part of the gathered members, in the engine's order.
fn gather<'m>(part: &mut [Gathered<'m>], program: usize, engine: &'m mut Engine<'_>) {
    for (slot, member) in part.iter_mut().zip(engine.members_mut()) {
        *slot = Some((member.id.clone(), program, member));
    }
}

/// Sorts waiting events by `at`, then line (a total order: lines are unique). A feed
/// is nearly in order, a late line a few places from its own: an insertion sort
/// puts each back in a few moves. Input further out of order than that is left to
/// the library's sort after a bounded number of moves.
fn sort_nearly_in_order(waiting: &mut [Waiting]) {
    let key = |w: &Waiting| (w.at, w.slot);
    let mut moves_left = waiting.len().saturating_mul(4);
    for start in 1..waiting.len() {
        let mut at = start;
        while at > 0 && key(&waiting[at - 1]) > key(&waiting[at]) {
            if moves_left == 0 {
                waiting.sort_unstable_by_key(key);
                return;
            }
            waiting.swap(at - 1, at);
            moves_left -= 1;
            at -= 1;
        }
    }
}

/// Replays an input held in memory in one pass, piece by piece.
pub fn stream_slice(
    programs: &[Program],
    input: &[u8],
    as_of: Option<Timestamp>,
    threads: usize,
) -> Result<ReplayOutput, Unstreamable> {
    stream_slice_in_pieces(programs, input, as_of, threads, PIECE_BYTES)
}

/// [`stream_slice`] with pieces of about `piece_bytes` bytes (each piece runs to
/// the end of a line). The output does not depend on the size of the pieces.
pub fn stream_slice_in_pieces(
    programs: &[Program],
    input: &[u8],
    as_of: Option<Timestamp>,
    threads: usize,
    piece_bytes: usize,
) -> Result<ReplayOutput, Unstreamable> {
    let source = bytes_at(input);
    let mut stream = StreamReplay::new(programs, as_of, threads);
    let mut rest = input;
    while !rest.is_empty() {
        let end = piece_bytes.clamp(1, rest.len());
        let cut = rest[end - 1..].iter().position(|b| *b == b'\n').map_or(rest.len(), |i| end + i);
        let (piece, tail) = rest.split_at(cut);
        stream.push(piece, &source)?;
        rest = tail;
    }
    stream.finish(&source)
}
