//! One member's accepted events, kept in order of `at`, with checkpoints: what a
//! service needs to take an event that arrives late.
//!
//! A late event is applied at its own time: the member's state is recomputed from
//! the last checkpoint before that instant, never from the beginning of everything,
//! so its cost depends on this member's history only. It is accepted only if every
//! event accepted before keeps applying cleanly after it; otherwise it is refused and
//! nothing changes. The state is therefore always exactly the in-order fold of the
//! accepted events, what `palier replay` computes from them.

use jiff::Timestamp;

use crate::document::MemberDocument;
use crate::event::{Event, EventBody, RejectCode, Rejection};
use crate::member::{Happening, Member, OrderLookup};
use crate::program::Program;
use crate::sales::Sales;

/// A checkpoint every this many events.
const CHECKPOINT_EVERY: usize = 32;

#[derive(Clone, Debug)]
struct Logged {
    /// Arrival order: ties at one instant keep it.
    seq: u64,
    event: Event,
}

impl Logged {
    fn key(&self) -> (Timestamp, u64) {
        (self.event.at, self.seq)
    }
}

#[derive(Clone, Debug)]
struct Checkpoint {
    /// The state after the first `applied` events.
    applied: usize,
    state: Member,
}

/// One member's accepted events and state.
#[derive(Clone, Debug, Default)]
pub struct MemberHistory {
    events: Vec<Logged>,
    checkpoints: Vec<Checkpoint>,
    /// The state after every event (advanced to the last one's instant).
    state: Option<Member>,
}

/// What [`MemberHistory::add`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Applied after every earlier event.
    InOrder,
    /// Applied at its own time, before `later` events already accepted.
    Late { later: usize },
}

fn apply(program: &Program, sales: &Sales, state: &mut Option<Member>, event: &Event) -> Result<(), Rejection> {
    match (state.as_mut(), &event.body) {
        (Some(member), _) => member.apply_event(program, sales, event, OrderLookup::Search),
        (None, EventBody::MemberRegistered(registration)) => {
            *state = Some(Member::register(program, registration, event.at));
            Ok(())
        }
        (None, body) => Err(Rejection::new(
            RejectCode::UnknownMember,
            format!("member: {:?} is not registered", body.member().unwrap_or_default()),
        )),
    }
}

impl MemberHistory {
    pub fn new() -> MemberHistory {
        MemberHistory::default()
    }

    /// The member after every accepted event (`None` before registration).
    pub fn member(&self) -> Option<&Member> {
        self.state.as_ref()
    }

    /// The accepted events, in order of `at` then arrival.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().map(|l| &l.event)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The instant of the latest accepted event.
    pub fn latest(&self) -> Option<Timestamp> {
        self.events.last().map(|l| l.event.at)
    }

    /// Takes an event (arrival number `seq`, increasing) at its own time, or refuses
    /// it with a reason; a refused event changes nothing.
    pub fn add(&mut self, program: &Program, sales: &Sales, event: Event, seq: u64) -> Result<Added, Rejection> {
        let key = (event.at, seq);
        let position = self.events.partition_point(|l| l.key() <= key);
        if position == self.events.len() {
            let mut state = self.state.take();
            match apply(program, sales, &mut state, &event) {
                Ok(()) => {
                    self.state = state;
                    self.events.push(Logged { seq, event });
                    self.checkpoint_if_due();
                    Ok(Added::InOrder)
                }
                Err(rejection) => {
                    // A rejected event changes nothing, but the fold may already have
                    // run the time rules due before it: the state is recomputed from
                    // the last checkpoint (rejections are rare; a copy per event is not).
                    self.state = self.recompute(program, sales, self.events.len());
                    Err(rejection)
                }
            }
        } else {
            self.add_late(program, sales, Logged { seq, event }, position)
        }
    }

    /// The state after the first `count` events, from the last checkpoint before.
    fn recompute(&self, program: &Program, sales: &Sales, count: usize) -> Option<Member> {
        let (start, mut state) = match self.checkpoint_before(count) {
            Some(checkpoint) => (checkpoint.applied, Some(checkpoint.state.clone())),
            None => (0, None),
        };
        for logged in &self.events[start..count] {
            // Accepted events apply cleanly in order: an error here cannot happen.
            let _ = apply(program, sales, &mut state, &logged.event);
        }
        state
    }

    fn checkpoint_if_due(&mut self) {
        let applied = self.events.len();
        if applied.is_multiple_of(CHECKPOINT_EVERY)
            && let Some(state) = &self.state
        {
            self.checkpoints.push(Checkpoint { applied, state: state.clone() });
        }
    }

    /// The last checkpoint covering at most the first `events` events.
    fn checkpoint_before(&self, events: usize) -> Option<&Checkpoint> {
        let index = self.checkpoints.partition_point(|c| c.applied <= events);
        index.checked_sub(1).map(|i| &self.checkpoints[i])
    }

    fn add_late(
        &mut self,
        program: &Program,
        sales: &Sales,
        logged: Logged,
        position: usize,
    ) -> Result<Added, Rejection> {
        let (start, mut state) = match self.checkpoint_before(position) {
            Some(checkpoint) => (checkpoint.applied, Some(checkpoint.state.clone())),
            None => (0, None),
        };
        let mut checkpoints = Vec::new();
        for logged in &self.events[start..position] {
            // These applied cleanly before, from the same state: they still do.
            apply(program, sales, &mut state, &logged.event)?;
        }
        apply(program, sales, &mut state, &logged.event)?;
        for (offset, later) in self.events[position..].iter().enumerate() {
            if let Err(rejection) = apply(program, sales, &mut state, &later.event) {
                return Err(Rejection::new(
                    RejectCode::LateConflict,
                    format!(
                        "applied at its time, it would make the later event {:?} fail ({})",
                        later.event.id, rejection
                    ),
                ));
            }
            let applied = position + 1 + offset + 1;
            if applied.is_multiple_of(CHECKPOINT_EVERY)
                && let Some(state) = &state
            {
                checkpoints.push(Checkpoint { applied, state: state.clone() });
            }
        }
        let later = self.events.len() - position;
        self.events.insert(position, logged);
        self.state = state;
        // Checkpoints at or before the insertion stay; those after it are rebuilt.
        let keep = self.checkpoints.partition_point(|c| c.applied <= position);
        self.checkpoints.truncate(keep);
        self.checkpoints.extend(checkpoints);
        Ok(Added::Late { later })
    }

    /// The member's timeline up to `as_of`: every rule applied to them, in order,
    /// recomputed from their events.
    pub fn timeline(&self, program: &Program, sales: &Sales, as_of: Timestamp) -> Vec<Happening> {
        self.journaled(program, sales, as_of).map(|m| m.journal().to_vec()).unwrap_or_default()
    }

    /// The member at `as_of` recomputed with the journal and the ledger switched on.
    pub fn journaled(&self, program: &Program, sales: &Sales, as_of: Timestamp) -> Option<Member> {
        let mut state: Option<Member> = None;
        for logged in self.events.iter().take_while(|l| l.event.at <= as_of) {
            let fresh = state.is_none();
            let _ = apply(program, sales, &mut state, &logged.event);
            if fresh && let Some(member) = state.take() {
                let mut member = member.with_journal();
                member.note_joined();
                state = Some(member);
            }
        }
        state.map(|mut member| {
            member.advance(program, as_of, true);
            member
        })
    }

    /// The member's document at `as_of`, from the events at or before it (`None`
    /// if the member was not registered then).
    pub fn document(&self, program: &Program, sales: &Sales, as_of: Timestamp) -> Option<MemberDocument> {
        self.with_member_at(program, sales, as_of, |member| member.document(program, as_of))
    }

    /// Calls `f` with the member at `as_of`. When `as_of` is after every event and no
    /// time rule is due by then (the common case: a read or a checkout now), the
    /// state is lent as it is, without a copy.
    pub fn with_member_at<R>(
        &self,
        program: &Program,
        sales: &Sales,
        as_of: Timestamp,
        f: impl FnOnce(&Member) -> R,
    ) -> Option<R> {
        if let Some(state) = &self.state
            && self.latest().is_none_or(|latest| latest <= as_of)
            && state.next_wakeup().is_none_or(|due| due > as_of)
        {
            return Some(f(state));
        }
        self.member_at(program, sales, as_of).as_ref().map(f)
    }

    /// The member's state at `as_of`: the events at or before it, then every time
    /// rule due at or before it.
    pub fn member_at(&self, program: &Program, sales: &Sales, as_of: Timestamp) -> Option<Member> {
        let count = self.events.partition_point(|l| l.event.at <= as_of);
        let mut state =
            if count == self.events.len() { self.state.clone() } else { self.recompute(program, sales, count) };
        if let Some(member) = state.as_mut() {
            member.advance(program, as_of, true);
        }
        state
    }
}
