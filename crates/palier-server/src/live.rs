//! The live state: every program's members, in memory, always equal to the in-order
//! fold of the accepted events in the store (what `palier replay` computes from
//! them). Only the ingest writer changes it; readers take a shard's read lock.

use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use palier_core::event::{Event, EventBody, Id, RejectCode, Rejection};
use palier_core::history::MemberHistory;
use palier_core::sales::Sales;
use palier_core::{MemberDocument, Program};
use rustc_hash::{FxHashMap, FxHasher};

const SHARDS: usize = 64;

/// One program's members, sharded by member id.
pub struct LiveProgram {
    pub program: Arc<Program>,
    shards: Vec<RwLock<FxHashMap<Id, MemberHistory>>>,
    /// order id → member id, for events that name only their order.
    orders: RwLock<FxHashMap<Id, Id>>,
    /// one-time code → the member it was issued to.
    codes: RwLock<FxHashMap<Id, Id>>,
    /// checkout hold → its member.
    holds: RwLock<FxHashMap<Id, Id>>,
    /// Sales announced so far (program-wide; members look prices up at their own
    /// instants). Replaced, not edited, so readers hold a consistent copy.
    sales: RwLock<Arc<Sales>>,
}

fn shard_of(member: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = FxHasher::default();
    member.hash(&mut hasher);
    (hasher.finish() as usize) % SHARDS
}

/// A poisoned lock means a writer panicked mid-change; the data itself is a plain
/// map that every change leaves consistent, so reading on is safe.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LiveProgram {
    pub fn new(program: Arc<Program>) -> LiveProgram {
        LiveProgram {
            program,
            shards: (0..SHARDS).map(|_| RwLock::new(FxHashMap::default())).collect(),
            orders: RwLock::new(FxHashMap::default()),
            codes: RwLock::new(FxHashMap::default()),
            holds: RwLock::new(FxHashMap::default()),
            sales: RwLock::new(Arc::new(Sales::new())),
        }
    }

    /// The sales announced so far.
    pub fn sales(&self) -> Arc<Sales> {
        read(&self.sales).clone()
    }

    /// The member an event belongs to, or why none does.
    pub fn member_of(&self, event: &Event) -> Result<Id, Rejection> {
        if matches!(event.body, EventBody::SaleStarted(_)) {
            // Program-wide: stored under no member.
            return Ok(Id::default());
        }
        if let Some(member) = event.body.member() {
            return Ok(Id::from(member));
        }
        let order = event.body.order().unwrap_or_default();
        read(&self.orders)
            .get(order)
            .cloned()
            .ok_or_else(|| Rejection::new(RejectCode::UnknownOrder, format!("order: {order:?} was never placed")))
    }

    /// Applies an event at its own time (arrival number `seq`). Refused events
    /// change nothing.
    pub fn apply(&self, event: Event, seq: u64) -> Result<(), Rejection> {
        if let EventBody::SaleStarted(sale) = &event.body {
            let mut sales = write(&self.sales);
            Arc::make_mut(&mut sales).add(sale, event.at);
            return Ok(());
        }
        let member = self.member_of(&event)?;
        let issued = match &event.body {
            EventBody::CodeIssued(issue) => {
                let code = &issue.code;
                if read(&self.codes).get(code).is_some_and(|owner| *owner != member) {
                    return Err(Rejection::new(RejectCode::CodeExists, format!("code: {code:?} already exists")));
                }
                Some(code.clone())
            }
            _ => None,
        };
        let sales = self.sales();
        if let EventBody::OrderPlaced(order) = &event.body
            && let Some(owner) = read(&self.orders).get(&order.order)
            && *owner != member
        {
            return Err(Rejection::new(
                RejectCode::OrderExists,
                format!("order: {:?} was already placed", order.order),
            ));
        }
        let held = match &event.body {
            EventBody::CheckoutHeld(hold) => {
                if read(&self.holds).get(&hold.hold).is_some_and(|owner| *owner != member) {
                    return Err(Rejection::new(
                        RejectCode::HoldExists,
                        format!("hold: {:?} already exists", hold.hold),
                    ));
                }
                Some(hold.hold.clone())
            }
            _ => None,
        };
        let placed = match &event.body {
            EventBody::OrderPlaced(order) => Some(order.order.clone()),
            _ => None,
        };
        let mut shard = write(&self.shards[shard_of(&member)]);
        let result = match shard.get_mut(&member) {
            Some(history) => history.add(&self.program, &sales, event, seq).map(|_| ()),
            None => {
                let mut history = MemberHistory::new();
                let result = history.add(&self.program, &sales, event, seq).map(|_| ());
                if result.is_ok() {
                    shard.insert(member.clone(), history);
                }
                result
            }
        };
        drop(shard);
        if result.is_ok()
            && let Some(hold) = held
        {
            write(&self.holds).insert(hold, member.clone());
        }
        if result.is_ok()
            && let Some(code) = issued
        {
            write(&self.codes).insert(code, member.clone());
        }
        if result.is_ok()
            && let Some(order) = placed
        {
            write(&self.orders).insert(order, member);
        }
        result
    }

    /// Puts a member's rebuilt history under a new id (erasure): `events` are the
    /// member's rewritten events with their arrival numbers. Nothing is changed if
    /// they do not apply.
    pub fn replace_member(&self, old: &str, new: Id, events: Vec<(u64, Event)>) -> Result<(), Rejection> {
        let sales = self.sales();
        let mut history = MemberHistory::new();
        let mut orders = Vec::new();
        let mut holds = Vec::new();
        let mut codes = Vec::new();
        for (seq, event) in events {
            match &event.body {
                EventBody::OrderPlaced(order) => orders.push(order.order.clone()),
                EventBody::CheckoutHeld(hold) => holds.push(hold.hold.clone()),
                EventBody::CodeIssued(issue) => codes.push(issue.code.clone()),
                _ => {}
            }
            history.add(&self.program, &sales, event, seq)?;
        }
        write(&self.shards[shard_of(old)]).remove(old);
        write(&self.shards[shard_of(&new)]).insert(new.clone(), history);
        let mut by_order = write(&self.orders);
        by_order.retain(|_, member| member != old);
        by_order.extend(orders.into_iter().map(|o| (o, new.clone())));
        drop(by_order);
        let mut by_hold = write(&self.holds);
        by_hold.retain(|_, member| member != old);
        by_hold.extend(holds.into_iter().map(|h| (h, new.clone())));
        drop(by_hold);
        let mut by_code = write(&self.codes);
        by_code.retain(|_, member| member != old);
        by_code.extend(codes.into_iter().map(|c| (c, new.clone())));
        Ok(())
    }

    /// The member a checkout hold belongs to.
    pub fn hold_owner(&self, hold: &str) -> Option<Id> {
        read(&self.holds).get(hold).cloned()
    }

    /// A member's document at `as_of` (`None`: unknown, or not registered then).
    pub fn document(&self, member: &str, as_of: Timestamp) -> Option<MemberDocument> {
        let sales = self.sales();
        read(&self.shards[shard_of(member)]).get(member).and_then(|h| h.document(&self.program, &sales, as_of))
    }

    pub fn contains(&self, member: &str) -> bool {
        read(&self.shards[shard_of(member)]).contains_key(member)
    }

    /// A copy of a member's history (for what-if simulations).
    pub fn history_of(&self, member: &str) -> Option<MemberHistory> {
        read(&self.shards[shard_of(member)]).get(member).cloned()
    }

    /// What-if: a copy of the member's history with hypothetical events added at their
    /// own times (each one's outcome, in order). Nothing is written.
    pub fn what_if<'t>(
        &self,
        member: &str,
        texts: impl IntoIterator<Item = &'t str>,
    ) -> (MemberHistory, Vec<Result<(), Rejection>>) {
        let mut history = self.history_of(member).unwrap_or_default();
        let sales = self.sales();
        let outcomes = texts
            .into_iter()
            .enumerate()
            .map(|(index, text)| {
                let event = palier_core::event::parse_event(text)?;
                if event.body.member().is_some_and(|m| m != member) {
                    return Err(Rejection::new(RejectCode::InvalidField, "member: a simulation concerns one member"));
                }
                history.add(&self.program, &sales, event, u64::MAX - 1_000_000 + index as u64).map(|_| ())
            })
            .collect();
        (history, outcomes)
    }

    /// A member's timeline up to `as_of`.
    pub fn timeline(&self, member: &str, as_of: Timestamp) -> Option<Vec<palier_core::member::Happening>> {
        let sales = self.sales();
        read(&self.shards[shard_of(member)]).get(member).map(|h| h.timeline(&self.program, &sales, as_of))
    }

    /// A member at `as_of`, recomputed with the journal and ledger switched on.
    pub fn journaled(&self, member: &str, as_of: Timestamp) -> Option<palier_core::member::Member> {
        let sales = self.sales();
        read(&self.shards[shard_of(member)]).get(member).and_then(|h| h.journaled(&self.program, &sales, as_of))
    }

    /// Calls `f` with a member's state at `as_of`, copying it only when time rules
    /// must run first (`MemberHistory::with_member_at`).
    pub fn with_member_at<R>(
        &self,
        member: &str,
        as_of: Timestamp,
        f: impl FnOnce(&palier_core::member::Member) -> R,
    ) -> Option<R> {
        let sales = self.sales();
        read(&self.shards[shard_of(member)]).get(member).and_then(|h| h.with_member_at(&self.program, &sales, as_of, f))
    }

    /// A member's state at `as_of` (time rules applied), without journal.
    pub fn member_at(&self, member: &str, as_of: Timestamp) -> Option<palier_core::member::Member> {
        let sales = self.sales();
        read(&self.shards[shard_of(member)]).get(member).and_then(|h| h.member_at(&self.program, &sales, as_of))
    }

    /// A member's accepted events, in order of `at`.
    pub fn events_of(&self, member: &str) -> Option<Vec<Event>> {
        read(&self.shards[shard_of(member)]).get(member).map(|h| h.events().cloned().collect())
    }

    /// Every member id, sorted.
    pub fn member_ids(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self.shards.iter().flat_map(|s| read(s).keys().cloned().collect::<Vec<_>>()).collect();
        ids.sort_unstable();
        ids
    }

    pub fn member_count(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }
}

/// Every loaded program's live state, and the ids already taken.
pub struct Live {
    pub programs: Vec<LiveProgram>,
    /// event id → SHA-256 of its canonical body, for idempotency.
    ids: RwLock<FxHashMap<Id, [u8; 32]>>,
}

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Accepted,
    /// The same id and body were accepted before.
    Duplicate,
    Rejected(Rejection),
}

impl Live {
    pub fn new(programs: &[Arc<Program>]) -> Live {
        Live {
            programs: programs.iter().cloned().map(LiveProgram::new).collect(),
            ids: RwLock::new(FxHashMap::default()),
        }
    }

    pub fn program_index(&self, id: &str) -> Option<usize> {
        self.programs.iter().position(|p| p.program.id == id)
    }

    /// Idempotency, then the event at its own time. Only the ingest writer calls it.
    pub fn decide(&self, program: usize, event: Event, body_sha256: [u8; 32], seq: u64) -> Decision {
        if let Some(known) = read(&self.ids).get(&event.id) {
            return if *known == body_sha256 {
                Decision::Duplicate
            } else {
                Decision::Rejected(Rejection::new(
                    RejectCode::DuplicateConflict,
                    format!("id: {:?} was accepted before with another body", event.id),
                ))
            };
        }
        let id = event.id.clone();
        match self.programs[program].apply(event, seq) {
            Ok(()) => {
                write(&self.ids).insert(id, body_sha256);
                Decision::Accepted
            }
            Err(rejection) => Decision::Rejected(rejection),
        }
    }

    /// Renames accepted event ids (erasure): `(old id, new id, new body hash)`.
    pub fn replace_ids(&self, ids: &[(Id, Id, [u8; 32])]) {
        let mut known = write(&self.ids);
        for (old, _, _) in ids {
            known.remove(old);
        }
        for (_, new, hash) in ids {
            known.insert(new.clone(), *hash);
        }
    }

    /// The body hash of an accepted event id.
    pub fn known(&self, id: &str) -> Option<[u8; 32]> {
        read(&self.ids).get(id).copied()
    }

    pub fn event_count(&self) -> usize {
        read(&self.ids).len()
    }
}
