//! The engine: every member of one program, and the routing of events to them.

mod chunks;
mod ids;

use jiff::Timestamp;
use rustc_hash::FxHashMap;

use self::chunks::Chunks;
use self::ids::IdIndex;

use crate::document::MemberDocument;
use crate::event::{Event, EventBody, Id, RejectCode, Rejection};
use crate::member::{Member, OrderLookup, unknown_order};
use crate::program::Program;
use crate::sales::Sales;

/// Where an event's member is in an engine, and the order it names by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    member: usize,
    order: Option<usize>,
}

/// An order's place as `by_order` keeps it: (member index, order index).
fn widen((member, order): (u32, u32)) -> (usize, usize) {
    (member as usize, order as usize)
}

/// The members of one program, fed events in order of `at`.
#[derive(Clone, Debug)]
pub struct Engine<'p> {
    program: &'p Program,
    /// In chunks (`engine/chunks.rs`): a member is some 420 bytes, prefetched
    /// from its index alone.
    members: Chunks<Member>,
    /// member id → member index (checked against the member's id; 32 bits: a
    /// slot of 8 bytes)
    by_member: IdIndex<u32>,
    /// order id → (member index, order index within the member), checked against
    /// the order's id (32 bits each: a slot of 12 bytes)
    by_order: IdIndex<(u32, u32)>,
    /// one-time code → the member it was issued to
    by_code: FxHashMap<Id, usize>,
    sales: Sales,
}

impl<'p> Engine<'p> {
    pub fn new(program: &'p Program) -> Engine<'p> {
        Engine::with_sales(program, Sales::new())
    }

    /// An engine that already knows of `sales` (announced before its events).
    pub fn with_sales(program: &'p Program, sales: Sales) -> Engine<'p> {
        Engine {
            program,
            members: Chunks::new(),
            by_member: IdIndex::new(),
            by_order: IdIndex::new(),
            by_code: FxHashMap::default(),
            sales,
        }
    }

    pub fn program(&self) -> &'p Program {
        self.program
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    pub fn members_mut(&mut self) -> impl Iterator<Item = &mut Member> {
        self.members.iter_mut()
    }

    /// How many members are registered.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.member_index(id).ok().map(|i| &self.members[i])
    }

    /// Applies one event at its `at`. Events must come in order of `at`; the time
    /// rules due before `at` run first. A rejected event changes nothing.
    pub fn apply(&mut self, event: &Event) -> Result<(), Rejection> {
        self.apply_located(event, None)
    }

    /// [`Engine::apply`], given where this engine's [`Engine::locate`] found the
    /// event's member (and order) some events before: members and orders, once
    /// indexed, keep their place, so the indexes are not looked up again. `None`
    /// looks them up.
    pub(crate) fn apply_located(&mut self, event: &Event, located: Option<Located>) -> Result<(), Rejection> {
        let program = self.program;
        if let Some(named) = &event.program
            && *named != program.id
        {
            return Err(Rejection::new(
                RejectCode::UnknownProgram,
                format!("program: {named:?} is not the program loaded ({:?})", program.id),
            ));
        }
        let at = event.at;
        match &event.body {
            EventBody::MemberRegistered(registration) => {
                if let Ok(index) = self.member_index(&registration.member) {
                    let existing = &self.members[index];
                    let code = if existing.wiped { RejectCode::MemberClosed } else { RejectCode::MemberExists };
                    return Err(Rejection::new(
                        code,
                        format!("member: {:?} is already registered", registration.member),
                    ));
                }
                let Ok(place) = u32::try_from(self.members.len()) else {
                    return Err(Rejection::new(
                        RejectCode::Overflow,
                        "member: more than 4 294 967 295 members in a program",
                    ));
                };
                self.by_member.insert(&registration.member, place);
                self.members.push(Member::register(program, registration, at));
                Ok(())
            }
            EventBody::SaleStarted(sale) => {
                self.sales.add(sale, at);
                Ok(())
            }
            EventBody::CodeIssued(issue) => {
                let (member, code) = (&issue.member, &issue.code);
                let index = self.located_member(located, member)?;
                if self.by_code.get(code).is_some_and(|owner| *owner != index) {
                    return Err(Rejection::new(RejectCode::CodeExists, format!("code: {code:?} already exists")));
                }
                self.members[index].apply_event(program, &self.sales, event, OrderLookup::Search)?;
                self.by_code.insert(code.clone(), index);
                Ok(())
            }
            EventBody::OrderPlaced(order) => {
                let index = self.located_member(located, &order.member)?;
                if self.order_place(&order.order).is_some() {
                    return Err(Rejection::new(
                        RejectCode::OrderExists,
                        format!("order: {:?} was already placed", order.order),
                    ));
                }
                let member = &mut self.members[index];
                let (Ok(member_at), Ok(order_at)) = (u32::try_from(index), u32::try_from(member.orders.len())) else {
                    return Err(Rejection::new(
                        RejectCode::Overflow,
                        "order: more than 4 294 967 295 members or orders of one member in a program",
                    ));
                };
                member.apply_event(program, &self.sales, event, OrderLookup::Unique)?;
                self.by_order.insert(&order.order, (member_at, order_at));
                Ok(())
            }
            EventBody::OrderDelivered { order: id }
            | EventBody::OrderReturned { order: id, .. }
            | EventBody::OrderCancelled { order: id, .. } => {
                let (member, order) = match located {
                    Some(Located { member, order: Some(order) }) if self.holds_order((member, order), id) => {
                        (member, order)
                    }
                    _ => self.order_place(id).ok_or_else(|| unknown_order(id))?,
                };
                self.members[member].apply_event(program, &self.sales, event, OrderLookup::Indexed(order))
            }
            // Every other event names its member.
            body => {
                let member = body.member().unwrap_or_default();
                let index = self.located_member(located, member)?;
                self.members[index].apply_event(program, &self.sales, event, OrderLookup::Search)
            }
        }
    }

    /// Where the member `event` will change is (and the order it names by id), if
    /// they are indexed already; for [`Engine::apply_located`].
    pub(crate) fn locate(&self, event: &Event) -> Option<Located> {
        match &event.body {
            EventBody::MemberRegistered(_) | EventBody::SaleStarted(_) => None,
            EventBody::OrderDelivered { order }
            | EventBody::OrderReturned { order, .. }
            | EventBody::OrderCancelled { order, .. } => {
                let (member, order) = widen(self.by_order.candidate(order)?);
                Some(Located { member, order: Some(order) })
            }
            body => Some(Located { member: self.by_member.candidate(body.member()?)? as usize, order: None }),
        }
    }

    /// Asks the processor to start loading where [`Engine::locate`] will look for
    /// the event's member or order (and, for an order placed, where its id will go),
    /// a few events before.
    pub(crate) fn prefetch_index(&self, event: &Event) {
        match &event.body {
            EventBody::MemberRegistered(_) | EventBody::SaleStarted(_) => {}
            EventBody::OrderDelivered { order }
            | EventBody::OrderReturned { order, .. }
            | EventBody::OrderCancelled { order, .. } => self.by_order.prefetch(order),
            EventBody::OrderPlaced(order) => {
                self.by_member.prefetch(&order.member);
                self.by_order.prefetch(&order.order);
            }
            body => {
                if let Some(member) = body.member() {
                    self.by_member.prefetch(member);
                }
            }
        }
    }

    /// Asks the processor to start loading the member an event will change (found
    /// by [`Engine::locate`]): a batch applied with this done a few events ahead
    /// overlaps the memory loads of its members rather than waiting for each in
    /// turn.
    pub(crate) fn prefetch(&self, event: &Event, located: Option<Located>) {
        if let EventBody::OrderPlaced(order) = &event.body {
            // Its lines were written by the core that parsed them.
            prefetch(order.lines.as_slice());
        }
        if let Some(member) = located.and_then(|l| self.members.get(l.member)) {
            prefetch(member);
        }
    }

    /// The second step of [`Engine::prefetch`], a few events later, once the member
    /// has arrived: the orders the event and the time rules will look at.
    pub(crate) fn prefetch_orders(&self, located: Option<Located>) {
        if let Some(located) = located
            && let Some(member) = self.members.get(located.member)
        {
            member.prefetch_orders(located.order);
        }
    }

    /// The member's index: as located (once checked: the index gave the first
    /// member of the id's hash), or looked up.
    fn located_member(&self, located: Option<Located>, id: &str) -> Result<usize, Rejection> {
        match located {
            Some(located) if self.members[located.member].id == id => Ok(located.member),
            _ => self.member_index(id),
        }
    }

    fn member_index(&self, id: &str) -> Result<usize, Rejection> {
        self.by_member
            .find(id, |index| self.members[index as usize].id == id)
            .map(|index| index as usize)
            .ok_or_else(|| Rejection::new(RejectCode::UnknownMember, format!("member: {id:?} is not registered")))
    }

    /// Where the order `id` is: (member index, order index).
    fn order_place(&self, id: &str) -> Option<(usize, usize)> {
        self.by_order.find(id, |place| self.holds_order(widen(place), id)).map(widen)
    }

    fn holds_order(&self, (member, order): (usize, usize), id: &str) -> bool {
        self.members[member].orders.get(order).is_some_and(|kept| kept.order == id)
    }

    /// Applies every time rule due at or before `as_of`, for every member.
    pub fn advance_all(&mut self, as_of: Timestamp) {
        for member in self.members.iter_mut() {
            member.advance(self.program, as_of, true);
        }
    }

    /// Every member's document at `as_of`, sorted by member id. Call
    /// [`Engine::advance_all`] first.
    pub fn documents(&self, as_of: Timestamp) -> Vec<MemberDocument> {
        let mut order: Vec<&Member> = self.members().collect();
        order.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        order.into_iter().map(|m| m.document(self.program, as_of)).collect()
    }
}

/// Asks the processor to start loading what an event's body points to, where the
/// ids it is routed by are (an order placed: the event holds a box).
pub(crate) fn prefetch_body(event: &Event) {
    if let EventBody::OrderPlaced(order) = &event.body {
        prefetch(&**order);
    }
}

/// Asks the processor to start loading every cache line of `value` (up to 1 KiB).
/// It is a hint only: nothing waits for it, and nothing is read into the program's
/// state.
#[inline]
pub(crate) fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = std::ptr::from_ref(value).cast::<i8>();
        for offset in line_offsets(start.addr(), size_of_val(value).min(1024)) {
            // SAFETY: a prefetch never faults, whatever the address, and changes no
            // memory; these addresses lie in the cache lines holding `value` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_offset(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Bytes in a cache line.
const LINE: usize = 64;

/// Offsets from `start`, one in each cache line that the `size` bytes from `start`
/// touch: from the line of the first byte to the line of the last. A value that
/// does not start a line may span one line more than its size alone says: half of
/// the orders (104 bytes, their flags in the last) touch three lines, not two.
fn line_offsets(start: usize, size: usize) -> impl Iterator<Item = isize> {
    let skew = start % LINE;
    (0..size + skew).step_by(LINE).map(move |offset| offset as isize - skew as isize)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prefetch_reaches_every_cache_line_a_value_touches() {
        for start in 1000..1000 + 2 * super::LINE {
            for size in 1..300 {
                let offsets: Vec<isize> = super::line_offsets(start, size).collect();
                let line = |offset: isize| (start as isize + offset) as usize / super::LINE;
                let touched: std::collections::BTreeSet<usize> = (0..size as isize).map(line).collect();
                let prefetched: std::collections::BTreeSet<usize> = offsets.iter().map(|o| line(*o)).collect();
                assert_eq!(prefetched, touched, "{size} bytes from {start}");
                assert_eq!(offsets.len(), touched.len(), "one prefetch a line, {size} bytes from {start}");
            }
        }
    }
    use std::path::Path;

    use jiff::Timestamp;

    use super::ids::tests::NARROW;
    use crate::Program;
    use crate::replay::{ReplayOutput, replay_with_threads};
    use crate::stream::stream_slice_in_pieces;

    fn root() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    fn program(name: &str) -> Program {
        let path = root().join("programs").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).expect("program file");
        Program::parse(&path.to_string_lossy(), &text).expect("valid program")
    }

    /// The general replay and the one pass (on this thread, in small pieces).
    fn both(programs: &[Program], events: &[u8], as_of: Option<Timestamp>) -> (ReplayOutput, Option<ReplayOutput>) {
        (replay_with_threads(programs, events, as_of, 1), stream_slice_in_pieces(programs, events, as_of, 1, 512).ok())
    }

    /// Members and orders are indexed by the hash of their id and checked against
    /// the member or order found. With hashes of two bits, nearly every lookup
    /// meets other ids of its hash: every scenario and example then gives exactly
    /// the output it gives with full hashes, in the general replay and in the one
    /// pass (whose candidates, taken events ahead, are checked when applied).
    #[test]
    fn ids_of_one_hash_change_no_replay() {
        let mut cases = Vec::new();
        for entry in std::fs::read_dir(root().join("tests/scenarios")).expect("scenarios") {
            let case = entry.expect("entry").path();
            let Ok(text) = std::fs::read_to_string(case.join("scenario.toml")) else { continue };
            let scenario: toml::Table = toml::from_str(&text).expect("scenario.toml");
            let name = scenario["program"].as_str().expect("program").to_string();
            let as_of: Vec<Option<Timestamp>> = scenario["check"]
                .as_array()
                .expect("checks")
                .iter()
                .map(|check| check.get("as_of").map(|at| at.as_str().expect("as_of").parse().expect("instant")))
                .collect();
            cases.push((vec![program(&name)], std::fs::read(case.join("events.jsonl")).expect("events"), as_of));
        }
        for name in ["net-a-porter", "mr-porter", "perfone"] {
            let events = std::fs::read(root().join("examples").join(format!("{name}.jsonl"))).expect("example");
            cases.push((vec![program(name)], events, vec![None]));
        }
        assert!(cases.len() > 100, "the scenarios were found: {}", cases.len());
        let mut streamed = 0;
        for (programs, events, instants) in &cases {
            for as_of in instants {
                let full = both(programs, events, *as_of);
                NARROW.with(|bits| bits.set(Some(2)));
                let narrow = both(programs, events, *as_of);
                NARROW.with(|bits| bits.set(None));
                assert_eq!(narrow.0, full.0, "general replay, as of {as_of:?}");
                assert_eq!(narrow.1, full.1, "one pass, as of {as_of:?}");
                streamed += usize::from(full.1.is_some());
            }
        }
        assert!(streamed > 100, "the one pass went through {streamed} cases");
    }
}
