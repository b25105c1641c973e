//! A member's state: the fold of the program's rules over the member's events and
//! the time rules due up to an instant.
//!
//! Each rule of `shared/spec/programs.md` is one function here, named after it.
//! Event handlers check everything first and only then change the state, so a
//! rejected event changes nothing. Time rules run at the instants queued in
//! `wakeups`, in the order of programs.md §7.3.

use std::collections::BTreeSet;

use thin_vec::ThinVec;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::calendar::Calendar;
pub use crate::calendar::{At, MaybeAt};
use crate::event::{
    Adjustment, Consent, CountryCode, Event, EventBody, Hold, Id, LedgerKind, LineQuantity, Order, PaymentMethod,
    ProfileUpdate, Registration, RejectCode, Rejection, StatusChange,
};
pub use crate::ledger::Lot;
use crate::ledger::{Bucket, Entry, Purse, Reason};
use crate::money::{Currency, Minor};
use crate::privacy::{ConsentChannel, ORDER_AGE, Personal, age_on};
use crate::program::{Program, Qualification};
use crate::promo::{self, Basket};
use crate::sales::Sales;
use crate::short_id::ShortId;
use crate::split::{ProRata, partial_share};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    Suspended,
    OptedOut,
    Closed,
}

/// Why a member accrues nothing (decisions D10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligibility {
    Staff,
    ExcludedCountry,
    UnknownCountry,
}

impl Ineligibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Ineligibility::Staff => "staff",
            Ineligibility::ExcludedCountry => "excluded_country",
            Ineligibility::UnknownCountry => "unknown_country",
        }
    }
}

/// How a calendar-year member came to hold their tier (programs.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierBasis {
    /// Held from joining, or no tier.
    Joined,
    /// Reached by an upgrade during this civil year.
    Upgraded { year: i16 },
    /// Kept or set by a January reassessment (or a late-maturation raise).
    Confirmed,
}

/// One rule applied to a member, for the timeline: *why* the member is where they
/// are. Recorded only when a journal is switched on ([`Member::with_journal`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Happening {
    pub at: Timestamp,
    /// The rule's name: `order_placed`, `value_matured`, `value_applied`,
    /// `tier_upgraded`, `tier_kept`, `tier_lowered`, `tier_confirmed`, `tier_raised`,
    /// `points_available`, `points_expired`, `points_burned`, `points_given_back`,
    /// `birthday_bonus`, `units_removed`, `order_delivered`, `member_…`.
    pub rule: &'static str,
    pub order: Option<Id>,
    /// Eligible value concerned.
    pub amount: Option<Minor>,
    pub points: Option<i64>,
    pub from_tier: Option<usize>,
    pub tier: Option<usize>,
    /// The instant something runs until (a tier's term, a window, a lot's expiry).
    pub until: Option<Timestamp>,
    /// The benefit concerned (`benefit_granted`, `benefit_used`, `benefit_withdrawn`).
    pub benefit: Option<Id>,
}

impl Happening {
    pub(crate) fn new(at: Timestamp, rule: &'static str) -> Happening {
        Happening { at, rule, ..Happening::default() }
    }
}

/// One line of an order: 56 bytes (some 8 million lines at 10M events). What
/// most lines never need is boxed apart.
#[derive(Clone, Debug)]
pub struct LineState {
    pub line: ShortId,
    pub quantity: u32,
    pub removed_units: u32,
    pub eligible: Minor,
    pub points: i64,
    /// Points and store credit the order paid for this line, and what returns and
    /// cancellations took off it: only for lines paid with either, or returned or
    /// cancelled (most lines carry nothing here).
    pub ledger: Option<Box<LineLedger>>,
    /// What a sale price adjustment needs, kept only for full-price lines (not on
    /// sale, no discount, no code on the order) of programs that offer one: most
    /// lines carry nothing here.
    pub adjustable: Option<Box<Adjustable>>,
}

impl LineState {
    /// Eligible value removed by returns and cancellations.
    pub fn eligible_removed(&self) -> Minor {
        self.ledger.as_ref().map_or(Minor::ZERO, |ledger| ledger.eligible_removed)
    }

    /// Points removed by returns and cancellations.
    pub fn points_removed(&self) -> i64 {
        self.ledger.as_ref().map_or(0, |ledger| ledger.points_removed)
    }
}

/// What one line's order paid with points and store credit, and what came off the
/// line since: eligible value and points removed, points and credit given back.
#[derive(Clone, Debug, Default)]
pub struct LineLedger {
    pub eligible_removed: Minor,
    pub points_removed: i64,
    pub redeemed: i64,
    pub redeemed_removed: i64,
    pub credit: i64,
    pub credit_removed: i64,
}

/// The lots an order's points and store credit came from (points, expires_at), not
/// given back yet.
#[derive(Clone, Debug, Default)]
pub struct OrderPaid {
    pub redeemed_portions: Vec<Lot>,
    pub credit_portions: Vec<Lot>,
}

/// A full-price line that a sale price adjustment may concern. Its style and size
/// are kept as one string (in place up to 15 bytes), so that the box is 32 bytes
/// rather than 64: some 3.5 million lines keep one at 10M events.
#[derive(Clone, Debug)]
pub struct Adjustable {
    /// The SKU, then the size if any.
    item: ShortId,
    sku_length: u32,
    sized: bool,
    /// The line's price (all units, before discount).
    pub price: Minor,
    /// A sale price adjustment was granted for it.
    pub adjusted: bool,
}

impl Adjustable {
    pub fn new(sku: &str, size: Option<&str>, price: Minor) -> Adjustable {
        let item = ShortId::joined(sku, size.unwrap_or_default());
        // A SKU of four billion bytes or more cannot be read from an event line.
        let sku_length = u32::try_from(sku.len()).unwrap_or(u32::MAX);
        Adjustable { item, sku_length, sized: size.is_some(), price, adjusted: false }
    }

    pub fn sku(&self) -> &str {
        &self.item[..self.sku_length as usize]
    }

    pub fn size(&self) -> Option<&str> {
        self.sized.then(|| &self.item[self.sku_length as usize..])
    }
}

/// Makes room for one more item in a vector that stays short for most members
/// (benefit grants, points lots): one slot at a time up to eight, then doubling.
/// `Vec`'s own growth starts at four slots and doubles, which leaves up to half of
/// every member's vectors unused.
pub(crate) fn make_room<T>(items: &mut ThinVec<T>) {
    if items.len() == items.capacity() {
        items.reserve_exact(if items.len() < 8 { 1 } else { items.len() });
    }
}

/// Makes room for one more item in a vector that grows all through a member's life
/// (orders): up to the end of the allocator's size class that holds one more.
/// Allocators hand out blocks in classes, four a doubling above 64 bytes
/// (mimalloc's, jemalloc's): growing by half of the vector, then rounded up to a
/// class, held 134 MiB more at 10M events than filling the class does, for fewer
/// (larger) copies while a member is young (D44).
pub(crate) fn make_room_growing<T>(items: &mut Vec<T>) {
    if items.len() == items.capacity() {
        let size = size_of::<T>().max(1);
        let fits = size_class((items.len() + 1) * size) / size;
        items.reserve_exact(fits - items.len());
    }
}

/// The smallest allocation class holding `bytes`: a multiple of 8 up to 64 bytes,
/// then four classes between each power of two and the next.
fn size_class(bytes: usize) -> usize {
    if bytes <= 64 {
        return bytes.next_multiple_of(8);
    }
    let power = bytes.next_power_of_two();
    bytes.next_multiple_of(power / 8)
}

/// A personal text as the member keeps it: 16 bytes rather than a `String`'s 24.
fn boxed(text: &Personal<String>) -> Personal<Box<str>> {
    Personal::new(text.expose().as_str().into())
}

#[derive(Clone, Debug)]
pub struct OrderState {
    pub order: ShortId,
    pub placed_at: At,
    /// Civil year of placement in the program's zone.
    pub placed_year: i16,
    /// Whether the order earns ([`OrderState::earning`]), has matured, is applied and
    /// has made its points available, one bit each (an order is 112 bytes, not 120).
    flags: u8,
    pub lines: Box<[LineState]>,
    /// The lines' eligible value less what was removed, kept as they change: the
    /// rolling spend sums it over every order without a look into each one's lines.
    net: Minor,
    pub delivered_at: MaybeAt,
    /// When the returns window closes (the order's value matures).
    pub matures_at: MaybeAt,
    /// When matured value is applied (monthly application), once matured.
    pub applies_at: MaybeAt,
    /// The lots points and store credit were paid from, not yet given back: only for
    /// orders paying with either.
    pub paid: Option<Box<OrderPaid>>,
    pub currency: Currency,
}

impl OrderState {
    const EARNING: u8 = 1;
    const MATURED: u8 = 2;
    const APPLIED: u8 = 4;
    const POINTS_AVAILABLE: u8 = 8;

    /// The member was earning when the order was placed: its value counts.
    pub fn earning(&self) -> bool {
        self.flags & OrderState::EARNING != 0
    }

    /// Its returns window has closed: its value has matured.
    pub fn matured(&self) -> bool {
        self.flags & OrderState::MATURED != 0
    }

    /// Its matured value is applied to the member's qualifying spend.
    pub fn applied(&self) -> bool {
        self.flags & OrderState::APPLIED != 0
    }

    /// Its points have become available.
    pub fn points_available(&self) -> bool {
        self.flags & OrderState::POINTS_AVAILABLE != 0
    }

    fn mark(&mut self, flag: u8) {
        self.flags |= flag;
    }

    /// Eligible value still held by the order (after returns and cancellations).
    pub fn net_value(&self) -> Minor {
        debug_assert_eq!(self.net.0, self.lines.iter().map(|l| l.eligible.0 - l.eligible_removed().0).sum::<i64>());
        self.net
    }

    /// Points earned by the order and not removed.
    pub fn net_points(&self) -> i64 {
        self.lines.iter().map(|l| l.points - l.points_removed()).sum()
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub id: Id,
    pub registered_at: Timestamp,
    pub country: CountryCode,
    pub birth_date: Option<Personal<Date>>,
    /// Month and day, when only they are known (or after an erasure).
    pub birthday: Option<(i8, i8)>,
    /// Name, email, consents and profile corrections ([`Member::name`] …): one
    /// box, only for members who gave any (most members are replayed without).
    profile: Option<Box<Profile>>,
    /// When the member's personal data was erased (pseudonymised).
    pub erased_at: MaybeAt,
    pub staff: bool,
    pub guardian_consent: bool,
    pub status: Status,
    pub ineligible: Option<Ineligibility>,
    pub currency: Option<Currency>,
    pub tier: Option<usize>,
    pub tier_since: MaybeAt,
    pub tier_until: MaybeAt,
    pub basis: TierBasis,
    pub orders: Vec<OrderState>,
    /// Available points (programs.md §3).
    pub points: Purse,
    /// Store credit, in the reward currency's minor units (programs.md §4).
    pub credit: Purse,
    /// Promotion codes used by the member's orders.
    pub used_codes: ThinVec<UsedCode>,
    /// One-time codes issued to the member.
    pub issued_codes: ThinVec<IssuedCode>,
    /// Checkout holds, open or ended.
    pub holds: ThinVec<HoldState>,
    pub last_birthday_year: Option<i16>,
    /// Benefits granted by tiers (programs.md §5).
    pub grants: ThinVec<crate::benefits::Grant>,
    /// When the current tier year ends (yearly benefits are renewed).
    pub tier_year_end: MaybeAt,
    /// The next birthday instant a bonus is due at, if any.
    next_birthday_at: MaybeAt,
    /// Tier rules fell due while suspended (decisions D15).
    pub missed_review: bool,
    pub missed_january: bool,
    /// Rewards value removed for good (closed, opted out).
    pub wiped: bool,
    pub(crate) wakeups: Wakeups,
    /// Delivered orders whose value or points are not settled yet (not applied, or
    /// points not available): the only orders time rules look at.
    open_orders: OpenOrders,
    /// The timeline and the ledger entries, when switched on (one box: most
    /// members are replayed without them).
    timeline: Option<Box<Timeline>>,
}

/// What a member gave beyond country and birth date, and the record of its changes:
/// boxed apart, 40 bytes less in each member that gave none.
#[derive(Clone, Debug, Default)]
struct Profile {
    name: Option<Personal<Box<str>>>,
    email: Option<Personal<Box<str>>>,
    /// Marketing consent changes, oldest first (the current state is the last per
    /// channel; no record: not given).
    consents: Vec<ConsentRecord>,
    /// Profile corrections: when, and which fields (the values are in the events).
    profile_changes: Vec<(Timestamp, Vec<&'static str>)>,
}

/// What a member records when the journal is switched on.
#[derive(Clone, Debug, Default)]
struct Timeline {
    journal: Vec<Happening>,
    ledger: Vec<Entry>,
}

/// The instants at which time rules may change a member. The earliest few are kept
/// in the member itself, sorted: most members wait for two or three instants, and
/// learn the next one without following a pointer to memory not loaded yet.
/// The rest, all later, wait in a set.
#[derive(Clone, Debug)]
pub(crate) struct Wakeups {
    /// `near[..len]`: the earliest instants, in order, each once (12 bytes each).
    near: [At; NEAR_WAKEUPS],
    len: u8,
    /// The later instants, in order, each once: only when `near` is full, and all
    /// later than it. A thin vector: 8 bytes in the member, and one allocation
    /// whose first instants share a cache line with its length, where a boxed
    /// tree cost three loads one after the other (box, root, leaf) at each change.
    far: ThinVec<At>,
}

/// The indexes of a member's open orders, in order of delivery. The first few are
/// kept in the member itself: the one pass loads a member's open orders a few
/// events before its event, and would otherwise wait for a separate list first.
#[derive(Clone, Debug, Default)]
struct OpenOrders {
    near: [u32; NEAR_OPEN_ORDERS],
    len: u8,
    /// The open orders after the first few (only when `near` is full).
    far: ThinVec<u32>,
}

/// How many open orders a member keeps in place.
const NEAR_OPEN_ORDERS: usize = 4;

impl OpenOrders {
    fn push(&mut self, index: usize) {
        // A member's orders are numbered in 32 bits (the engine refuses more).
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let len = usize::from(self.len);
        if len < NEAR_OPEN_ORDERS {
            self.near[len] = index;
            self.len += 1;
        } else {
            self.far.push(index);
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.near[..usize::from(self.len)].iter().chain(&self.far).map(|index| *index as usize)
    }

    /// Keeps the open orders `keep` says to, in order.
    fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let mut len = 0;
        for at in 0..usize::from(self.len) {
            let index = self.near[at];
            if keep(index as usize) {
                self.near[len] = index;
                len += 1;
            }
        }
        self.far.retain(|index| keep(*index as usize));
        let moved = (NEAR_OPEN_ORDERS - len).min(self.far.len());
        for (slot, index) in self.near[len..len + moved].iter_mut().zip(self.far.drain(..moved)) {
            *slot = index;
        }
        self.len = (len + moved) as u8;
    }
}

/// How many wake-ups a member keeps in place.
const NEAR_WAKEUPS: usize = 4;

impl Default for Wakeups {
    fn default() -> Wakeups {
        Wakeups { near: [At::from(Timestamp::UNIX_EPOCH); NEAR_WAKEUPS], len: 0, far: ThinVec::new() }
    }
}

impl Wakeups {
    pub(crate) fn first(&self) -> Option<Timestamp> {
        (self.len > 0).then(|| self.near[0].get())
    }

    pub(crate) fn insert(&mut self, at: Timestamp) {
        let at = At::from(at);
        let len = usize::from(self.len);
        let position = self.near[..len].iter().position(|near| *near >= at).unwrap_or(len);
        if position < len && self.near[position] == at {
            return;
        }
        if len < NEAR_WAKEUPS {
            self.near.copy_within(position..len, position + 1);
            self.near[position] = at;
            self.len += 1;
        } else if position == NEAR_WAKEUPS {
            insert_sorted(&mut self.far, at);
        } else {
            insert_sorted(&mut self.far, self.near[NEAR_WAKEUPS - 1]);
            self.near.copy_within(position..NEAR_WAKEUPS - 1, position + 1);
            self.near[position] = at;
        }
    }

    pub(crate) fn pop_first(&mut self) -> Option<Timestamp> {
        let first = self.first()?;
        let len = usize::from(self.len);
        self.near.copy_within(1..len, 0);
        if self.far.is_empty() {
            self.len -= 1;
        } else {
            self.near[len - 1] = self.far.remove(0);
            if self.far.is_empty() {
                self.far = ThinVec::new();
            }
        }
        Some(first)
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.far = ThinVec::new();
    }
}

/// Puts `at` in its place in `instants` (sorted, each once).
fn insert_sorted(instants: &mut ThinVec<At>, at: At) {
    if let Err(position) = instants.binary_search(&at) {
        instants.insert(position, at);
    }
}

impl Extend<Timestamp> for Wakeups {
    fn extend<I: IntoIterator<Item = Timestamp>>(&mut self, instants: I) {
        instants.into_iter().for_each(|at| self.insert(at));
    }
}

/// One change of marketing consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    pub at: Timestamp,
    pub channel: ConsentChannel,
    pub granted: bool,
    pub source: Id,
    pub text_version: Id,
}

/// A code an order used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsedCode {
    pub code: Id,
    /// The program file's code it stands for (the template of a one-time code).
    pub promotion: Id,
    pub order: Id,
}

/// A one-time code issued to the member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCode {
    pub code: Id,
    pub promotion: Id,
    pub at: Timestamp,
}

/// How a checkout hold ended, if it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldStatus {
    Open,
    Committed,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Open => "open",
            HoldStatus::Committed => "committed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldState {
    pub hold: Id,
    pub at: Timestamp,
    pub expires_at: Timestamp,
    pub codes: Vec<Id>,
    pub points: i64,
    pub store_credit: i64,
    pub status: HoldStatus,
    /// The order that committed it, or the instant it was released or expired.
    pub order: Option<Id>,
    pub ended_at: Option<Timestamp>,
}

fn reject(code: RejectCode, message: impl Into<String>) -> Rejection {
    Rejection::new(code, message)
}

/// How [`Member::apply_event`] finds the order an event names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderLookup {
    /// Among the member's orders (and a new order's id is checked against them).
    Search,
    /// The caller has checked that a new order's id is unused.
    Unique,
    /// The caller knows the order's index among the member's orders.
    Indexed(usize),
}

/// The rejection of an event naming an order never placed (before it).
pub fn unknown_order(id: &str) -> Rejection {
    reject(RejectCode::UnknownOrder, format!("order: {id:?} was never placed"))
}

impl Member {
    // ---- joining ------------------------------------------------------------------

    /// `member.registered`: a new member, with the joining tier where the program has
    /// one (MR PORTER bronze, Perfone base) from the registration instant.
    pub fn register(program: &Program, registration: &Registration, at: Timestamp) -> Member {
        let mut member = Member {
            id: registration.member.clone(),
            registered_at: at,
            country: registration.country,
            birth_date: registration.birth_date.clone(),
            birthday: registration.birthday,
            profile: (registration.name.is_some() || registration.email.is_some()).then(|| {
                Box::new(Profile {
                    name: registration.name.as_ref().map(boxed),
                    email: registration.email.as_ref().map(boxed),
                    ..Profile::default()
                })
            }),
            erased_at: MaybeAt::NONE,
            staff: registration.staff,
            guardian_consent: registration.guardian_consent,
            status: Status::Active,
            ineligible: None,
            currency: program.currency_of(&registration.country),
            tier: None,
            tier_since: MaybeAt::NONE,
            tier_until: MaybeAt::NONE,
            basis: TierBasis::Joined,
            orders: Vec::new(),
            points: Purse::default(),
            credit: Purse::default(),
            used_codes: ThinVec::new(),
            issued_codes: ThinVec::new(),
            holds: ThinVec::new(),
            last_birthday_year: None,
            grants: ThinVec::new(),
            tier_year_end: MaybeAt::NONE,
            next_birthday_at: MaybeAt::NONE,
            missed_review: false,
            missed_january: false,
            wiped: false,
            wakeups: Wakeups::default(),
            open_orders: OpenOrders::default(),
            timeline: None,
        };
        member.ineligible = member.eligibility(program);
        if member.ineligible.is_none()
            && let Some(joining) = program.joining_tier
        {
            member.tier = Some(joining);
            member.tier_since = at.into();
            member.benefits_on_tier_change(program, None, Some(joining), at);
        }
        if program.qualification == Qualification::CalendarYear {
            member.schedule_next_january(program, at);
        }
        member.schedule_birthday(program, at);
        member
    }

    /// Switches the timeline on: from now on every rule applied is recorded.
    pub fn with_journal(mut self) -> Member {
        self.timeline = Some(Box::default());
        self
    }

    /// The ledger entries written since the journal was switched on.
    pub fn ledger(&self) -> &[Entry] {
        self.timeline.as_ref().map_or(&[], |timeline| &timeline.ledger)
    }

    fn record(&mut self, entry: Entry) {
        if let Some(timeline) = &mut self.timeline
            && entry.amount != 0
        {
            timeline.ledger.push(entry);
        }
    }

    /// Writes a points entry (and, where it moves value, a second one).
    fn record_points(&mut self, at: Timestamp, reason: Reason, bucket: Bucket, amount: i64, order: Option<&Id>) {
        if self.journaling() {
            let mut entry = Entry::new(at, LedgerKind::Points, reason, bucket, amount);
            entry.order = order.cloned();
            self.record(entry);
        }
    }

    /// Records the member's joining (the first entry of a timeline).
    pub fn note_joined(&mut self) {
        let happening = Happening { tier: self.tier, ..Happening::new(self.registered_at, "member_registered") };
        self.note(happening);
    }

    /// The rules applied since the journal was switched on.
    pub fn journal(&self) -> &[Happening] {
        self.timeline.as_ref().map_or(&[], |timeline| &timeline.journal)
    }

    pub(crate) fn note(&mut self, happening: Happening) {
        if let Some(timeline) = &mut self.timeline {
            timeline.journal.push(happening);
        }
    }

    fn journaling(&self) -> bool {
        self.timeline.is_some()
    }

    /// Staff, excluded or unknown country (programs.md §0, decisions D10).
    fn eligibility(&self, program: &Program) -> Option<Ineligibility> {
        if self.staff {
            Some(Ineligibility::Staff)
        } else if program.excluded_countries.contains(self.country.as_str()) {
            Some(Ineligibility::ExcludedCountry)
        } else if program.currency_of(&self.country).is_none() {
            Some(Ineligibility::UnknownCountry)
        } else {
            None
        }
    }

    /// Accrues value now: active, eligible, not wiped.
    pub fn is_earning(&self) -> bool {
        self.status == Status::Active && self.ineligible.is_none() && !self.wiped
    }

    /// Tier rules may run now; while suspended they are remembered for the
    /// reinstatement (decisions D15).
    fn tiers_unfrozen(&mut self) -> bool {
        if self.status == Status::Suspended {
            self.missed_review = true;
            return false;
        }
        self.is_earning()
    }

    fn refuse_if_closed(&self) -> Result<(), Rejection> {
        if self.wiped {
            let how = if self.status == Status::OptedOut { "opted out" } else { "closed" };
            return Err(reject(RejectCode::MemberClosed, format!("member {:?} has {how}", self.id)));
        }
        Ok(())
    }

    // ---- member events ------------------------------------------------------------

    /// Applies one of this member's events (anything but its registration) at the
    /// event's `at`, after the time rules due before it. A rejected event changes
    /// nothing. `orders` says how the event's order is found.
    pub fn apply_event(
        &mut self,
        program: &Program,
        sales: &Sales,
        event: &Event,
        orders: OrderLookup,
    ) -> Result<(), Rejection> {
        let at = event.at;
        self.advance(program, at, false);
        let order_index = |member: &Member, id: &str| match orders {
            OrderLookup::Indexed(index) => Ok(index),
            OrderLookup::Search | OrderLookup::Unique => member.order_position(id).ok_or_else(|| unknown_order(id)),
        };
        match &event.body {
            EventBody::MemberRegistered(registration) => {
                let code = if self.wiped { RejectCode::MemberClosed } else { RejectCode::MemberExists };
                Err(reject(code, format!("member: {:?} is already registered", registration.member)))
            }
            EventBody::MemberUpdated(update) => self.update(program, update, at),
            EventBody::ConsentChanged(consent) => self.change_consent(consent, at),
            EventBody::MemberErased { .. } => {
                self.erased_at = at.into();
                if let Some(profile) = &mut self.profile {
                    (profile.name, profile.email) = (None, None);
                }
                self.birthday =
                    self.birthday.or(self.birth_date.as_ref().map(|b| (b.expose().month(), b.expose().day())));
                self.birth_date = None;
                Ok(())
            }
            EventBody::MemberStatus { change, .. } => self.change_status(program, *change, at),
            EventBody::OrderPlaced(placed) => {
                if orders == OrderLookup::Search && self.order_position(&placed.order).is_some() {
                    return Err(reject(
                        RejectCode::OrderExists,
                        format!("order: {:?} was already placed", placed.order),
                    ));
                }
                self.place_order(program, placed, at).map(|_| ())
            }
            EventBody::OrderDelivered { order: id } => {
                let index = order_index(self, id)?;
                self.deliver(program, index, at)
            }
            EventBody::OrderReturned { order: id, lines } => {
                let index = order_index(self, id)?;
                self.remove_units(program, index, Some(lines), at)
            }
            EventBody::OrderCancelled { order: id, lines } => {
                let index = order_index(self, id)?;
                self.remove_units(program, index, lines.as_deref(), at)
            }
            EventBody::CodeIssued(issue) => self.issue_code(program, &issue.code, &issue.promotion, at),
            EventBody::CheckoutHeld(hold) => self.hold(program, hold, at),
            EventBody::CheckoutReleased { hold, .. } => self.release_hold(hold, at),
            EventBody::LedgerAdjusted(adjustment) => self.adjust(program, adjustment, at),
            EventBody::SaleStarted(_) => Ok(()),
            EventBody::BenefitUsed { benefit, .. } => self.use_benefit(program, benefit, &event.id, at),
            EventBody::PriceAdjustmentRequested(request) => {
                let index = order_index(self, &request.order)?;
                self.sale_price_adjustment(program, sales, index, &request.line, at)
            }
        }
    }

    /// The index of one of the member's orders.
    pub fn order_position(&self, id: &str) -> Option<usize> {
        self.orders.iter().rposition(|o| o.order == id)
    }

    /// `member.updated`: country and birth date (decisions D11).
    pub fn update(&mut self, program: &Program, update: &ProfileUpdate, at: Timestamp) -> Result<(), Rejection> {
        self.refuse_if_closed()?;
        let country = update.country;
        let birth_date = update.birth_date.as_ref().map(|b| *b.expose());
        let mut fields = Vec::new();
        for (name, changed) in [
            ("country", update.country.is_some()),
            ("birth_date", update.birth_date.is_some()),
            ("birthday", update.birthday.is_some()),
            ("name", update.name.is_some()),
            ("email", update.email.is_some()),
        ] {
            if changed {
                fields.push(name);
            }
        }
        if let Some(country) = country {
            let currency = program.currency_of(&country);
            if currency != self.currency && !self.orders.is_empty() && currency.is_some() && self.currency.is_some() {
                return Err(reject(
                    RejectCode::CurrencyLocked,
                    format!(
                        "country: {country:?} would change the reward currency from {} to {} after orders were placed",
                        self.currency.map_or("none".into(), |c| c.to_string()),
                        currency.map_or("none".into(), |c| c.to_string())
                    ),
                ));
            }
            self.country = country;
            if currency.is_some() || self.orders.is_empty() {
                self.currency = currency;
            }
            let was_ineligible = self.ineligible.is_some();
            self.ineligible = self.eligibility(program);
            if was_ineligible
                && self.ineligible.is_none()
                && self.tier.is_none()
                && let Some(joining) = program.joining_tier
            {
                self.tier = Some(joining);
                self.tier_since = at.into();
                self.benefits_on_tier_change(program, None, Some(joining), at);
            }
        }
        if let Some(name) = &update.name {
            self.profile_mut().name = Some(boxed(name));
        }
        if let Some(email) = &update.email {
            self.profile_mut().email = Some(boxed(email));
        }
        if let Some(birthday) = update.birthday {
            self.birthday = Some(birthday);
            self.schedule_birthday(program, at);
        }
        if let Some(date) = birth_date {
            self.birth_date = Some(Personal::new(date));
            self.schedule_birthday(program, at);
        }
        self.profile_mut().profile_changes.push((at, fields));
        Ok(())
    }

    /// `consent.changed`: kept with its time, source and text version (seed 001).
    /// A closed member may still withdraw consent.
    pub fn change_consent(&mut self, consent: &Consent, at: Timestamp) -> Result<(), Rejection> {
        self.profile_mut().consents.push(ConsentRecord {
            at,
            channel: consent.channel,
            granted: consent.granted,
            source: consent.source.clone(),
            text_version: consent.text_version.clone(),
        });
        Ok(())
    }

    /// The current consent on a channel (none recorded: not given).
    pub fn consent(&self, channel: ConsentChannel) -> bool {
        self.consents().iter().rev().find(|c| c.channel == channel).is_some_and(|c| c.granted)
    }

    /// The member's age on `date`, when the birth date is known.
    pub fn age_on(&self, date: Date) -> Option<i16> {
        self.birth_date.as_ref().map(|birth| age_on(*birth.expose(), date))
    }

    /// `member.opted_out`, `member.closed`, `member.suspended`, `member.reinstated`.
    pub fn change_status(&mut self, program: &Program, change: StatusChange, at: Timestamp) -> Result<(), Rejection> {
        self.refuse_if_closed()?;
        let rule = match change {
            StatusChange::OptedOut => "member_opted_out",
            StatusChange::Closed => "member_closed",
            StatusChange::Suspended => "member_suspended",
            StatusChange::Reinstated => "member_reinstated",
        };
        self.note(Happening { from_tier: self.tier, ..Happening::new(at, rule) });
        match change {
            StatusChange::OptedOut => self.remove_all_value(Status::OptedOut, at),
            StatusChange::Closed => self.remove_all_value(Status::Closed, at),
            StatusChange::Suspended => {
                if self.status == Status::Active {
                    self.status = Status::Suspended;
                }
            }
            StatusChange::Reinstated => {
                if self.status == Status::Suspended {
                    self.status = Status::Active;
                    self.reinstate(program, at);
                }
            }
        }
        Ok(())
    }

    /// Closing or opting out removes all rewards value and the tier for good
    /// (programs.md §0); the orders stay recorded.
    pub fn remove_all_value(&mut self, status: Status, at: Timestamp) {
        self.status = status;
        self.wiped = true;
        self.tier = None;
        self.tier_since = MaybeAt::NONE;
        self.tier_until = MaybeAt::NONE;
        for grant in self.grants.iter_mut().filter(|g| g.is_open(at)) {
            grant.withdrawn_at = at.into();
        }
        self.tier_year_end = MaybeAt::NONE;
        let open: Vec<usize> = (0..self.holds.len()).filter(|i| self.holds[*i].status == HoldStatus::Open).collect();
        for index in open {
            self.end_hold(index, HoldStatus::Released, at);
        }
        let pending = self.points_pending();
        let balance = self.points.clear();
        self.record_points(at, Reason::Forfeited, Bucket::Available, -balance, None);
        self.record_points(at, Reason::Forfeited, Bucket::Pending, -pending, None);
        self.wakeups.clear();
        let credit_expiries: Vec<Timestamp> = self.credit.lots.iter().map(|l| l.expires_at).collect();
        self.wakeups.extend(credit_expiries);
    }

    /// Tier rules that fell due while suspended run once at reinstatement (D15).
    fn reinstate(&mut self, program: &Program, at: Timestamp) {
        if !self.is_earning() {
            return;
        }
        match program.qualification {
            Qualification::Rolling { term_months, .. } => {
                if self.tier_until.is_some_and(|until| until <= at) {
                    self.nap_expiry_review(program, at, term_months);
                }
                self.nap_upgrade(program, at, term_months);
            }
            Qualification::CalendarYear => {
                if self.missed_january {
                    let year = program.calendar.year(at);
                    self.mrp_january_reassessment(program, at, year);
                }
                self.mrp_upgrade_any_time(program, at);
            }
            Qualification::Lifetime => self.pf_level_up(program, at),
        }
        self.missed_review = false;
        self.missed_january = false;
    }

    // ---- orders ---------------------------------------------------------------------

    /// `order.placed`: checks the currency, codes, hold, points and store credit,
    /// then records the order with its eligible value and points split over its
    /// lines, commits its hold and spends what it pays with. Returns the order's
    /// index.
    pub fn place_order(&mut self, program: &Program, order: &Order, at: Timestamp) -> Result<usize, Rejection> {
        self.refuse_if_closed()?;
        if let Some(currency) = self.currency
            && self.ineligible != Some(Ineligibility::UnknownCountry)
            && order.currency != currency
        {
            return Err(reject(
                RejectCode::CurrencyMismatch,
                format!("currency: the order is in {} but member {:?} earns in {currency}", order.currency, self.id),
            ));
        }
        // The 18th birthday at 00:00 program time, from the birth date (a Feb 29 birth
        // turns 18 on Mar 1 in common years): one comparison per order.
        if let Some(birth) = self.birth_date.as_ref().map(|b| *b.expose())
            && at < adult_from(program, birth)
            && let Some(age) = self.age_on(program.calendar.civil(at).date())
        {
            return Err(reject(
                RejectCode::UnderAge,
                format!("member {:?} is {age}; orders need age {ORDER_AGE}", self.id),
            ));
        }
        let hold = order.hold.as_deref().map(|h| self.open_hold_index(h, at)).transpose()?;
        let (own_points, own_credit) = hold.map_or((0, 0), |i| (self.holds[i].points, self.holds[i].store_credit));
        let credit_paid = order.paid_with(PaymentMethod::StoreCredit);
        let basket =
            Basket { lines: &order.lines, channel: order.channel, store_credit: credit_paid, codes: &order.codes };
        let decisions = promo::evaluate(program, self, &basket, at, order.hold.as_deref());
        let mut no_points = false;
        for (index, decision) in decisions.iter().enumerate() {
            match &decision.outcome {
                Ok(accepted) => no_points |= !accepted.earns_points,
                Err(refusal) => {
                    return Err(reject(
                        RejectCode::CodeRefused,
                        format!("{}: codes[{index}]: {:?} {}", refusal.as_str(), decision.code, refusal.explain()),
                    ));
                }
            }
        }
        let redeemed = self.check_points_payment(program, order, own_points)?;
        let credit_spent = self.check_store_credit_payment(program, order, own_credit)?;

        // Everything is checked: from here on the order is applied in full.
        if let Some(index) = hold {
            self.holds[index].order = Some(order.order.clone());
            self.end_hold(index, HoldStatus::Committed, at);
        }
        for decision in decisions {
            if let Ok(accepted) = decision.outcome {
                self.used_codes.push(UsedCode {
                    code: decision.code,
                    promotion: accepted.promotion,
                    order: order.order.clone(),
                });
            }
        }
        let earning = self.is_earning();
        let weights = order.lines.iter().map(|l| l.weight().0);
        let eligible = if earning { eligible_value(order) } else { Minor::ZERO };
        let points = if no_points { 0 } else { self.pf_points_earned(program, order, eligible) };
        let eligible_split = ProRata::new(eligible.0, weights.clone());
        let points_split = ProRata::new(points, weights.clone());
        let redeemed_split = ProRata::new(redeemed, weights.clone());
        let credit_split = ProRata::new(credit_spent, weights);

        let portions = if redeemed > 0 { self.points.spend(redeemed) } else { Vec::new() };
        let credit_portions = if credit_spent > 0 { self.credit.spend(credit_spent) } else { Vec::new() };
        let adjustments = program.store_credit.as_ref().is_some_and(|c| c.price_adjustment_days.is_some());
        let full_price_order = adjustments && order.codes.is_empty();
        let lines: Vec<LineState> = order
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let weight = line.weight().0;
                LineState {
                    line: ShortId::from(line.line.as_str()),
                    quantity: line.quantity,
                    removed_units: 0,
                    eligible: Minor(eligible_split.share(i, weight)),
                    points: points_split.share(i, weight),
                    ledger: (redeemed > 0 || credit_spent > 0).then(|| {
                        Box::new(LineLedger {
                            redeemed: redeemed_split.share(i, weight),
                            credit: credit_split.share(i, weight),
                            ..LineLedger::default()
                        })
                    }),
                    adjustable: (full_price_order && !line.on_sale && line.discount == Minor::ZERO)
                        .then(|| Box::new(Adjustable::new(&line.sku, line.size.as_deref(), line.price))),
                }
            })
            .collect();
        make_room_growing(&mut self.orders);
        let net = Minor(lines.iter().map(|line| line.eligible.0).sum());
        self.orders.push(OrderState {
            order: ShortId::from(order.order.as_str()),
            placed_at: At::from(at),
            placed_year: program.calendar.year(at),
            flags: if earning { OrderState::EARNING } else { 0 },
            lines: lines.into_boxed_slice(),
            net,
            delivered_at: MaybeAt::NONE,
            matures_at: MaybeAt::NONE,
            applies_at: MaybeAt::NONE,
            paid: (redeemed > 0 || credit_spent > 0)
                .then(|| Box::new(OrderPaid { redeemed_portions: portions, credit_portions })),
            currency: order.currency,
        });
        self.note(Happening {
            order: Some(order.order.clone()),
            amount: Some(eligible),
            points: program.points.as_ref().map(|_| points),
            ..Happening::new(at, "order_placed")
        });
        self.record_points(at, Reason::Earned, Bucket::Pending, points, Some(&order.order));
        if redeemed > 0 {
            self.note(Happening {
                order: Some(order.order.clone()),
                points: Some(redeemed),
                ..Happening::new(at, "points_redeemed")
            });
            self.record_points(at, Reason::Redeemed, Bucket::Available, -redeemed, Some(&order.order));
        }
        if credit_spent > 0 && self.journaling() {
            let mut entry = Entry::new(at, LedgerKind::StoreCredit, Reason::Redeemed, Bucket::Available, -credit_spent);
            entry.order = Some(order.order.clone());
            self.record(entry);
        }
        Ok(self.orders.len() - 1)
    }

    /// Store credit paid with, where the program keeps a store credit ledger: at
    /// most the member's unexpired credit not held by other checkouts
    /// (programs.md §4). Returns the amount to spend (0 where the program keeps none:
    /// the tender is then the retailer's own).
    fn check_store_credit_payment(&self, program: &Program, order: &Order, own_held: i64) -> Result<i64, Rejection> {
        let paid = order.paid_with(PaymentMethod::StoreCredit);
        if paid == 0 || program.store_credit.is_none() {
            return Ok(0);
        }
        if self.status == Status::Suspended {
            return Err(reject(
                RejectCode::MemberSuspended,
                format!("payments: member {:?} is suspended and cannot spend store credit", self.id),
            ));
        }
        let free = self.credit.free() + own_held;
        if paid > free {
            let currency = order.currency;
            return Err(reject(
                RejectCode::StoreCreditOverBalance,
                format!(
                    "payments: {} of store credit asked, {} usable",
                    currency.format(Minor(paid)),
                    currency.format(Minor(free.max(0)))
                ),
            ));
        }
        Ok(paid)
    }

    /// Perfone: a points payment is whole units, at most the program's share of the
    /// goods value, at most the available balance (programs.md §3). Returns points.
    fn check_points_payment(&self, program: &Program, order: &Order, own_held: i64) -> Result<i64, Rejection> {
        let paid = order.paid_with(PaymentMethod::Points);
        if paid == 0 {
            return Ok(0);
        }
        let Some(rules) = &program.points else {
            return Err(reject(
                RejectCode::PointsNotAccepted,
                format!("payments: program {:?} has no points to pay with", program.id),
            ));
        };
        let currency = order.currency;
        let per_major = currency.minor_per_major();
        if paid % per_major != 0 {
            return Err(reject(
                RejectCode::PointsNotWhole,
                format!(
                    "payments: a points payment of {} is not a whole number of {currency}",
                    currency.format(Minor(paid))
                ),
            ));
        }
        let goods: i64 = order.lines.iter().map(|l| l.price.0 - l.discount.0).sum();
        if !rules.max_payment_share.allows(paid, goods) {
            return Err(reject(
                RejectCode::PointsOverCap,
                format!(
                    "payments: {} in points is over {} of the goods value {}",
                    currency.format(Minor(paid)),
                    rules.max_payment_share,
                    currency.format(Minor(goods))
                ),
            ));
        }
        if self.status == Status::Suspended {
            return Err(reject(
                RejectCode::MemberSuspended,
                format!("payments: member {:?} is suspended and cannot spend points", self.id),
            ));
        }
        let points = paid / per_major;
        let available = self.points.free() + own_held;
        if points > available {
            return Err(reject(
                RejectCode::PointsOverBalance,
                format!("payments: {points} points asked, {} usable", available.max(0)),
            ));
        }
        Ok(points)
    }

    /// Perfone earning: `floor(rate × eligible)` at the member's level before this
    /// order counts; none with a "no points" code (checked by the caller,
    /// programs.md §3, D20).
    pub(crate) fn pf_points_earned(&self, program: &Program, order: &Order, eligible: Minor) -> i64 {
        if program.points.is_none() || eligible == Minor::ZERO {
            return 0;
        }
        let Some(rate) = self.tier.and_then(|t| program.tiers[t].rate) else {
            return 0;
        };
        rate.floor_of(eligible.0) / order.currency.minor_per_major()
    }

    /// `order.delivered`: starts the returns window (D5).
    pub fn deliver(&mut self, program: &Program, index: usize, at: Timestamp) -> Result<(), Rejection> {
        let order = &self.orders[index];
        if order.delivered_at.is_some() {
            return Err(reject(RejectCode::AlreadyDelivered, format!("order {:?} was already delivered", order.order)));
        }
        let matures_at = returns_window_close(program, order.placed_at.get(), at);
        let wiped = self.wiped;
        let order = &mut self.orders[index];
        order.delivered_at = at.into();
        if !wiped {
            order.matures_at = matures_at.into();
            let id = order.order.to_id();
            self.wakeups.insert(matures_at);
            self.open_orders.push(index);
            self.note(Happening { order: Some(id), until: Some(matures_at), ..Happening::new(at, "order_delivered") });
        }
        Ok(())
    }

    /// `order.returned` / `order.cancelled`: removes the value, points earned and points
    /// paid of the units (programs.md §0, §3, §7.4; D3, D4, D22).
    pub fn remove_units(
        &mut self,
        program: &Program,
        index: usize,
        lines: Option<&[LineQuantity]>,
        at: Timestamp,
    ) -> Result<(), Rejection> {
        let order = &self.orders[index];
        let mut removals: Vec<(usize, u32)> = Vec::new();
        match lines {
            Some(lines) => {
                for (position, wanted) in lines.iter().enumerate() {
                    let Some(line_index) = order.lines.iter().position(|l| l.line == wanted.line.as_str()) else {
                        return Err(reject(
                            RejectCode::UnknownLine,
                            format!(
                                "lines[{position}].line: {:?} is not a line of order {:?}",
                                wanted.line, order.order
                            ),
                        ));
                    };
                    let line = &order.lines[line_index];
                    let remaining = line.quantity - line.removed_units;
                    let quantity = wanted.quantity.unwrap_or(remaining);
                    if quantity > remaining || remaining == 0 {
                        return Err(reject(
                            RejectCode::OverReturn,
                            format!(
                                "lines[{position}].quantity: {quantity} of line {:?}, but {remaining} of {} remain",
                                wanted.line, line.quantity
                            ),
                        ));
                    }
                    removals.push((line_index, quantity));
                }
            }
            None => {
                removals = order
                    .lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.quantity > l.removed_units)
                    .map(|(i, l)| (i, l.quantity - l.removed_units))
                    .collect();
                if removals.is_empty() {
                    return Err(reject(
                        RejectCode::OverReturn,
                        format!("order {:?} has no units left to cancel", order.order),
                    ));
                }
            }
        }

        let mut burned = 0;
        let mut given_back = 0;
        let mut credit_back = 0;
        let mut removed = Minor::ZERO;
        let order = &mut self.orders[index];
        for (line_index, quantity) in removals {
            let line = &mut order.lines[line_index];
            let (units, removed_units) = (line.quantity, line.removed_units);
            let ledger = line.ledger.get_or_insert_default();
            let value = partial_share(line.eligible.0, units, removed_units, ledger.eligible_removed.0, quantity);
            let points = partial_share(line.points, units, removed_units, ledger.points_removed, quantity);
            let redeemed = partial_share(ledger.redeemed, units, removed_units, ledger.redeemed_removed, quantity);
            let credit = partial_share(ledger.credit, units, removed_units, ledger.credit_removed, quantity);
            ledger.eligible_removed.0 += value;
            ledger.points_removed += points;
            ledger.redeemed_removed += redeemed;
            ledger.credit_removed += credit;
            given_back += redeemed;
            credit_back += credit;
            line.removed_units += quantity;
            burned += points;
            removed.0 += value;
        }
        order.net.0 -= removed.0;
        // Store credit is the customer's money, not rewards value: it comes back even
        // to a closed account (decisions D31).
        let credit_portions = match &mut order.paid {
            Some(paid) => take_latest_first(&mut paid.credit_portions, credit_back),
            None => Vec::new(),
        };
        let order_id = order.order.to_id();
        for portion in credit_portions.into_iter().filter(|p| p.expires_at > at) {
            self.credit_store(at, Reason::GivenBack, portion.points, portion.expires_at, Some(&order_id), None);
        }
        let order = &mut self.orders[index];
        if self.wiped {
            return Ok(());
        }
        let portions = match &mut order.paid {
            Some(paid) => take_latest_first(&mut paid.redeemed_portions, given_back),
            None => Vec::new(),
        };
        let was_earning = order.earning();
        let points_were_available = order.points_available();
        let id = order.order.to_id();
        self.note(Happening { order: Some(id.clone()), amount: Some(removed), ..Happening::new(at, "units_removed") });
        let _ = program;
        for portion in portions.into_iter().filter(|p| p.expires_at > at) {
            self.note(Happening {
                order: Some(id.clone()),
                points: Some(portion.points),
                until: Some(portion.expires_at),
                ..Happening::new(at, "points_given_back")
            });
            self.credit_points(at, Reason::GivenBack, portion.points, portion.expires_at, Some(&id));
        }
        if points_were_available && burned > 0 {
            self.note(Happening {
                order: Some(id.clone()),
                points: Some(burned),
                ..Happening::new(at, "points_burned")
            });
            self.points.burn(burned);
            self.record_points(at, Reason::BurnedOnReturn, Bucket::Available, -burned, Some(&id));
        } else if was_earning && burned > 0 {
            self.record_points(at, Reason::BurnedOnReturn, Bucket::Pending, -burned, Some(&id));
        }
        Ok(())
    }

    // ---- points ledger ----------------------------------------------------------------

    /// Available balance: lots less debt; negative after a clawback.
    pub fn points_available(&self) -> i64 {
        self.points.balance()
    }

    /// Points earned and not yet available.
    pub fn points_pending(&self) -> i64 {
        self.orders.iter().filter(|o| !o.points_available() && o.earning()).map(OrderState::net_points).sum()
    }

    /// New available points (they pay a negative balance first, programs.md §7.8).
    fn credit_points(&mut self, at: Timestamp, reason: Reason, points: i64, expires_at: Timestamp, order: Option<&Id>) {
        if self.points.credit(points, expires_at) {
            self.wakeups.insert(expires_at);
        }
        if self.journaling() {
            let mut entry = Entry::new(at, LedgerKind::Points, reason, Bucket::Available, points);
            entry.expires_at = Some(expires_at);
            entry.order = order.cloned();
            self.record(entry);
        }
    }

    /// New store credit, valid until `expires_at`.
    fn credit_store(
        &mut self,
        at: Timestamp,
        reason: Reason,
        amount: i64,
        expires_at: Timestamp,
        order: Option<&Id>,
        note: Option<&str>,
    ) {
        if self.credit.credit(amount, expires_at) {
            self.wakeups.insert(expires_at);
        }
        if self.journaling() {
            let mut entry = Entry::new(at, LedgerKind::StoreCredit, reason, Bucket::Available, amount);
            entry.expires_at = Some(expires_at);
            entry.order = order.cloned();
            entry.note = note.map(str::to_string);
            self.record(entry);
        }
    }

    fn purse_mut(&mut self, kind: LedgerKind) -> &mut Purse {
        match kind {
            LedgerKind::Points => &mut self.points,
            LedgerKind::StoreCredit => &mut self.credit,
        }
    }

    // ---- codes, holds and adjustments -------------------------------------------

    /// `code.issued`: a one-time code of a promotion, for this member only.
    pub fn issue_code(&mut self, program: &Program, code: &Id, promotion: &Id, at: Timestamp) -> Result<(), Rejection> {
        self.refuse_if_closed()?;
        if !program.code(promotion).is_some_and(|p| p.one_time) {
            return Err(reject(
                RejectCode::UnknownPromotion,
                format!("promotion: {promotion:?} is not a one-time promotion of program {:?}", program.id),
            ));
        }
        if program.code(code).is_some() || self.issued_codes.iter().any(|i| i.code == *code) {
            return Err(reject(RejectCode::CodeExists, format!("code: {code:?} already exists")));
        }
        self.issued_codes.push(IssuedCode { code: code.clone(), promotion: promotion.clone(), at });
        Ok(())
    }

    /// Holds not yet committed, released or expired at `at`.
    pub fn open_holds(&self, at: Timestamp) -> impl Iterator<Item = &HoldState> {
        self.holds.iter().filter(move |h| h.status == HoldStatus::Open && h.expires_at > at)
    }

    /// `checkout.held`: reserves codes, points and store credit for a checkout
    /// until `expires_at`. Once-only codes cannot be held twice, and the points
    /// and credit held never exceed what is free (STYLE.md: two-phase).
    pub fn hold(&mut self, program: &Program, hold: &Hold, at: Timestamp) -> Result<(), Rejection> {
        self.refuse_if_closed()?;
        if self.holds.iter().any(|h| h.hold == hold.hold) {
            return Err(reject(RejectCode::HoldExists, format!("hold: {:?} already exists", hold.hold)));
        }
        if let Err((index, refusal)) = promo::holdable(program, self, &hold.codes, at) {
            return Err(reject(
                RejectCode::CodeRefused,
                format!("{}: codes[{index}]: {:?} {}", refusal.as_str(), hold.codes[index], refusal.explain()),
            ));
        }
        if (hold.points > 0 || hold.store_credit > Minor::ZERO) && self.status == Status::Suspended {
            return Err(reject(
                RejectCode::MemberSuspended,
                format!("member {:?} is suspended and cannot spend points or store credit", self.id),
            ));
        }
        if hold.points > 0 {
            if program.points.is_none() {
                return Err(reject(
                    RejectCode::PointsNotAccepted,
                    format!("points: program {:?} has no points to pay with", program.id),
                ));
            }
            let free = self.points.free();
            if hold.points > free {
                return Err(reject(
                    RejectCode::PointsOverBalance,
                    format!("points: {} points asked, {} usable", hold.points, free.max(0)),
                ));
            }
        }
        if hold.store_credit > Minor::ZERO {
            self.check_credit_currency(program, hold.currency)?;
            let free = self.credit.free();
            if hold.store_credit.0 > free {
                return Err(reject(
                    RejectCode::StoreCreditOverBalance,
                    format!("store_credit: {} asked, {} usable", hold.store_credit.0, free.max(0)),
                ));
            }
        }
        let expires_at = hold.expires_at.unwrap_or_else(|| {
            at.checked_add(jiff::SignedDuration::from_mins(program.checkout.hold_minutes)).unwrap_or(at)
        });
        self.points.held += hold.points;
        self.credit.held += hold.store_credit.0;
        self.wakeups.insert(expires_at);
        for (kind, amount) in [(LedgerKind::Points, hold.points), (LedgerKind::StoreCredit, hold.store_credit.0)] {
            let mut entry = Entry::new(at, kind, Reason::Held, Bucket::Held, amount);
            entry.hold = Some(hold.hold.clone());
            self.record(entry);
        }
        self.holds.push(HoldState {
            hold: hold.hold.clone(),
            at,
            expires_at,
            codes: hold.codes.clone(),
            points: hold.points,
            store_credit: hold.store_credit.0,
            status: HoldStatus::Open,
            order: None,
            ended_at: None,
        });
        Ok(())
    }

    /// Store credit is kept in the member's reward currency.
    fn check_credit_currency(&self, program: &Program, currency: Option<Currency>) -> Result<(), Rejection> {
        if program.store_credit.is_none() {
            return Err(reject(
                RejectCode::StoreCreditNotAccepted,
                format!("store_credit: program {:?} keeps no store credit", program.id),
            ));
        }
        match (self.currency, currency) {
            (Some(mine), Some(given)) if mine == given => Ok(()),
            (mine, given) => Err(reject(
                RejectCode::CurrencyMismatch,
                format!(
                    "currency: {} is not member {:?}'s store credit currency ({})",
                    given.map_or("none".into(), |c| c.to_string()),
                    self.id,
                    mine.map_or("none".into(), |c| c.to_string())
                ),
            )),
        }
    }

    /// The index of a hold an order may commit at `at`.
    fn open_hold_index(&self, id: &str, at: Timestamp) -> Result<usize, Rejection> {
        let index = self.holds.iter().position(|h| h.hold == id).ok_or_else(|| {
            reject(RejectCode::UnknownHold, format!("hold: {id:?} is not a hold of member {:?}", self.id))
        })?;
        let hold = &self.holds[index];
        match hold.status {
            HoldStatus::Open if hold.expires_at > at => Ok(index),
            HoldStatus::Open | HoldStatus::Expired => Err(reject(
                RejectCode::HoldExpired,
                format!("hold: {id:?} expired at {}", crate::calendar::format_instant(hold.expires_at)),
            )),
            status => Err(reject(RejectCode::HoldClosed, format!("hold: {id:?} was already {}", status.as_str()))),
        }
    }

    /// `checkout.released`: the checkout gave up its hold.
    pub fn release_hold(&mut self, id: &str, at: Timestamp) -> Result<(), Rejection> {
        let index = self.open_hold_index(id, at)?;
        self.end_hold(index, HoldStatus::Released, at);
        Ok(())
    }

    /// Ends a hold once: its points and credit are no longer reserved.
    fn end_hold(&mut self, index: usize, status: HoldStatus, at: Timestamp) {
        let hold = &mut self.holds[index];
        debug_assert_eq!(hold.status, HoldStatus::Open);
        hold.status = status;
        hold.ended_at = Some(at);
        let (points, credit, id) = (hold.points, hold.store_credit, hold.hold.clone());
        self.points.held -= points;
        self.credit.held -= credit;
        let reason = match status {
            HoldStatus::Committed => Reason::Committed,
            HoldStatus::Expired => Reason::HoldExpired,
            _ => Reason::Released,
        };
        for (kind, amount) in [(LedgerKind::Points, points), (LedgerKind::StoreCredit, credit)] {
            let mut entry = Entry::new(at, kind, reason, Bucket::Held, -amount);
            entry.hold = Some(id.clone());
            self.record(entry);
        }
    }

    /// Holds release themselves when they expire.
    fn holds_expiry(&mut self, at: Timestamp) {
        for index in 0..self.holds.len() {
            if self.holds[index].status == HoldStatus::Open && self.holds[index].expires_at <= at {
                self.end_hold(index, HoldStatus::Expired, at);
            }
        }
    }

    /// `ledger.adjusted`: an operator's credit or debit, with its note.
    pub fn adjust(&mut self, program: &Program, adjustment: &Adjustment, at: Timestamp) -> Result<(), Rejection> {
        self.refuse_if_closed()?;
        let months = match adjustment.ledger {
            LedgerKind::Points => match &program.points {
                Some(rules) => rules.expiry_months,
                None => {
                    return Err(reject(
                        RejectCode::PointsNotAccepted,
                        format!("ledger: program {:?} has no points", program.id),
                    ));
                }
            },
            LedgerKind::StoreCredit => {
                self.check_credit_currency(program, adjustment.currency)?;
                program.store_credit.as_ref().map_or(12, |c| c.validity_months)
            }
        };
        let kind = adjustment.ledger;
        let amount = adjustment.amount;
        if amount > 0 {
            let expires_at = adjustment.expires_at.unwrap_or_else(|| program.calendar.add_months(at, months));
            match kind {
                LedgerKind::Points => {
                    if self.points.credit(amount, expires_at) {
                        self.wakeups.insert(expires_at);
                    }
                }
                LedgerKind::StoreCredit => {
                    if self.credit.credit(amount, expires_at) {
                        self.wakeups.insert(expires_at);
                    }
                }
            }
            let mut entry = Entry::new(at, kind, Reason::ManualAdjustment, Bucket::Available, amount);
            entry.expires_at = Some(expires_at);
            entry.note = Some(adjustment.note.clone());
            self.record(entry);
            return Ok(());
        }
        let purse = self.purse_mut(kind);
        let free = purse.free();
        if -amount > free {
            return Err(reject(
                RejectCode::AdjustmentOverBalance,
                format!("amount: a debit of {} is more than the {} usable", -amount, free.max(0)),
            ));
        }
        purse.spend(-amount);
        let mut entry = Entry::new(at, kind, Reason::ManualAdjustment, Bucket::Available, amount);
        entry.note = Some(adjustment.note.clone());
        self.record(entry);
        Ok(())
    }

    /// `price_adjustment.requested`: an item bought at full price up to the
    /// program's days before a sale started, still available in its style and
    /// size, earns the difference as store credit (programs.md §4, seed 003).
    pub fn sale_price_adjustment(
        &mut self,
        program: &Program,
        sales: &Sales,
        index: usize,
        line_id: &str,
        at: Timestamp,
    ) -> Result<(), Rejection> {
        self.refuse_if_closed()?;
        let (days, validity) = match &program.store_credit {
            Some(rules) => match rules.price_adjustment_days {
                Some(days) => (days, rules.validity_months),
                None => return Err(refused("not_offered", "the program offers no sale price adjustment")),
            },
            None => return Err(refused("not_offered", "the program keeps no store credit")),
        };
        let order = &self.orders[index];
        let Some(line_index) = order.lines.iter().position(|l| l.line == line_id) else {
            return Err(reject(
                RejectCode::UnknownLine,
                format!("line: {line_id:?} is not a line of order {:?}", order.order),
            ));
        };
        let line = &order.lines[line_index];
        if Some(order.currency) != self.currency {
            return Err(refused("currency", "the order is not in the member's store credit currency"));
        }
        let Some(adjustable) = &line.adjustable else {
            return Err(refused("not_full_price", "the item was bought on sale or on promotion"));
        };
        if adjustable.adjusted {
            return Err(refused("already_adjusted", "the line was already adjusted"));
        }
        let Some(item) = sales.find(adjustable.sku(), adjustable.size(), order.currency, at) else {
            return Err(refused("not_on_sale", "no sale has started for this style and size"));
        };
        let earliest = program.calendar.add_days(item.starts_at, -days);
        let placed_at = order.placed_at.get();
        if placed_at < earliest || placed_at >= item.starts_at {
            return Err(refused(
                "outside_period",
                &format!("the item was not bought in the {days} days before the sale started"),
            ));
        }
        if !item.available {
            return Err(refused("not_available", "the style and size is no longer available"));
        }
        let kept = i128::from(line.quantity - line.removed_units);
        if kept == 0 {
            return Err(refused("returned", "every unit of the line was returned or cancelled"));
        }
        let paid = i128::from(adjustable.price.0) * kept / i128::from(line.quantity);
        let difference = paid - i128::from(item.price.0) * kept;
        if difference <= 0 {
            return Err(refused("no_difference", "the sale price is not lower than the price paid"));
        }
        let amount = i64::try_from(difference).unwrap_or(i64::MAX);
        let order_id = order.order.to_id();
        if let Some(adjustable) = &mut self.orders[index].lines[line_index].adjustable {
            adjustable.adjusted = true;
        }
        let expires_at = program.calendar.add_months(at, validity);
        self.credit_store(at, Reason::PriceAdjustment, amount, expires_at, Some(&order_id), None);
        Ok(())
    }

    // ---- time -------------------------------------------------------------------------

    /// Asks the processor to start loading the orders an event will look at: the
    /// open ones (the time rules walk them) and `named`.
    pub(crate) fn prefetch_orders(&self, named: Option<usize>) {
        let open = self.open_orders.iter().take(8);
        for index in open.chain(named).chain(self.orders.len().checked_sub(1)) {
            if let Some(order) = self.orders.get(index) {
                crate::engine::prefetch(order);
            }
        }
    }

    /// The name the member gave, if any (none after an erasure).
    pub fn name(&self) -> Option<&Personal<Box<str>>> {
        self.profile.as_ref().and_then(|profile| profile.name.as_ref())
    }

    /// The email the member gave, if any (none after an erasure).
    pub fn email(&self) -> Option<&Personal<Box<str>>> {
        self.profile.as_ref().and_then(|profile| profile.email.as_ref())
    }

    /// Marketing consent changes, oldest first (the current state is the last per
    /// channel; no record: not given).
    pub fn consents(&self) -> &[ConsentRecord] {
        self.profile.as_ref().map_or(&[], |profile| &profile.consents)
    }

    /// Profile corrections: when, and which fields (the values are in the events).
    pub fn profile_changes(&self) -> &[(Timestamp, Vec<&'static str>)] {
        self.profile.as_ref().map_or(&[], |profile| &profile.profile_changes)
    }

    fn profile_mut(&mut self) -> &mut Profile {
        self.profile.get_or_insert_default()
    }

    /// The earliest instant at which a time rule may change this member.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.wakeups.first()
    }

    /// Applies every time rule due before `until` (or at it, when `inclusive`).
    pub fn advance(&mut self, program: &Program, until: Timestamp, inclusive: bool) {
        while let Some(at) = self.next_wakeup() {
            if at > until || (at == until && !inclusive) {
                break;
            }
            self.wakeups.pop_first();
            self.run_time_rules(program, at);
        }
    }

    /// The time rules at one instant, in the order of programs.md §7.3.
    fn run_time_rules(&mut self, program: &Program, at: Timestamp) {
        self.holds_expiry(at);
        self.store_credit_expiry(at);
        if self.wiped {
            return;
        }
        self.mature_orders(program, at);
        self.pf_points_availability(program, at);
        self.nap_monthly_application(program, at);
        self.nap_tier_expiry(program, at);
        self.mrp_january(program, at);
        self.pf_points_expiry(at);
        self.birthday(program, at);
        self.benefits_tier_year(program, at);
        let orders = &self.orders;
        let has_points = program.points.is_some();
        self.open_orders.retain(|i| !(orders[i].applied() && (orders[i].points_available() || !has_points)));
    }

    /// Returns windows closing: the order's value matures (programs.md §0).
    fn mature_orders(&mut self, program: &Program, at: Timestamp) {
        let mut any = false;
        let mut late_years = BTreeSet::new();
        let mut year = None;
        for index in self.open_orders.iter() {
            let order = &mut self.orders[index];
            if order.matured() || order.matures_at.is_none_or(|m| m > at) {
                continue;
            }
            order.mark(OrderState::MATURED);
            any = true;
            if let Some(timeline) = &mut self.timeline {
                let (order_id, amount) = (order.order.to_id(), order.net_value());
                timeline.journal.push(Happening {
                    order: Some(order_id),
                    amount: Some(amount),
                    ..Happening::new(at, "value_matured")
                });
            }
            match program.qualification {
                Qualification::Rolling { monthly_application: true, .. } => {
                    let applies_at = program.calendar.month_start_at_or_after(at);
                    order.applies_at = applies_at.into();
                    self.wakeups.insert(applies_at);
                }
                _ => order.mark(OrderState::APPLIED),
            }
            let current = *year.get_or_insert_with(|| program.calendar.year(at));
            if order.placed_year < current {
                late_years.insert(order.placed_year);
            }
        }
        if !any || !self.tiers_unfrozen() {
            return;
        }
        match program.qualification {
            Qualification::Rolling { monthly_application: false, term_months, .. } => {
                self.nap_upgrade(program, at, term_months);
            }
            Qualification::Rolling { .. } => {}
            Qualification::CalendarYear => {
                self.mrp_upgrade_any_time(program, at);
                let year = year.unwrap_or_else(|| program.calendar.year(at));
                if late_years.contains(&(year - 1)) && at != program.calendar.start_of_year(year) {
                    self.mrp_late_maturation_raise(program, at, year);
                }
            }
            Qualification::Lifetime => self.pf_level_up(program, at),
        }
    }

    /// Perfone: pending points become available when the order matures, pay any
    /// debt first, and expire `expiry_months` later (programs.md §3).
    fn pf_points_availability(&mut self, program: &Program, at: Timestamp) {
        let Some(rules) = &program.points else { return };
        let mut arriving = 0;
        for index in self.open_orders.iter() {
            let order = &mut self.orders[index];
            if order.matured() && !order.points_available() {
                order.mark(OrderState::POINTS_AVAILABLE);
                arriving += order.net_points();
            }
        }
        if arriving > 0 {
            let expires_at = program.calendar.add_months(at, rules.expiry_months);
            self.note(Happening {
                points: Some(arriving),
                until: Some(expires_at),
                ..Happening::new(at, "points_available")
            });
            self.record_points(at, Reason::Matured, Bucket::Pending, -arriving, None);
            self.credit_points(at, Reason::Matured, arriving, expires_at, None);
        }
    }

    /// NET-A-PORTER: matured value is applied on the first day of the month at 00:00,
    /// then the upgrade check runs (programs.md §1).
    fn nap_monthly_application(&mut self, program: &Program, at: Timestamp) {
        let Qualification::Rolling { term_months, monthly_application: true, .. } = program.qualification else {
            return;
        };
        let mut any = false;
        for index in self.open_orders.iter() {
            let order = &mut self.orders[index];
            if order.matured() && !order.applied() && order.applies_at.is_some_and(|a| a <= at) {
                order.mark(OrderState::APPLIED);
                any = true;
                if let Some(timeline) = &mut self.timeline {
                    let (order_id, amount) = (order.order.to_id(), order.net_value());
                    timeline.journal.push(Happening {
                        order: Some(order_id),
                        amount: Some(amount),
                        ..Happening::new(at, "value_applied")
                    });
                }
            }
        }
        if any && self.tiers_unfrozen() {
            self.nap_upgrade(program, at, term_months);
        }
    }

    /// Rolling qualifying spend: applied value of orders placed in
    /// (t − window, t] (programs.md §1).
    pub fn nap_qualifying_spend(&self, program: &Program, at: Timestamp) -> Minor {
        let Qualification::Rolling { window_months, .. } = program.qualification else {
            return Minor::ZERO;
        };
        let from = program.calendar.add_months(at, -window_months);
        let in_window = |placed: Timestamp| placed > from && placed <= at;
        Minor(self.orders.iter().filter(|o| o.applied() && in_window(o.placed_at.get())).map(|o| o.net_value().0).sum())
    }

    fn tier_reached(&self, program: &Program, spend: Minor) -> Option<usize> {
        self.currency.and_then(|c| program.tier_reached(c, spend))
    }

    fn set_tier(
        &mut self,
        program: &Program,
        rule: &'static str,
        tier: Option<usize>,
        since: Timestamp,
        until: Option<Timestamp>,
    ) {
        if tier != self.tier {
            self.benefits_on_tier_change(program, self.tier, tier, since);
        }
        if self.journaling() {
            let from_tier = self.tier;
            self.note(Happening { from_tier, tier, until: tier.and(until), ..Happening::new(since, rule) });
        }
        self.tier = tier;
        self.tier_since = tier.map(|_| since).into();
        self.tier_until = tier.and(until).into();
        if let Some(until) = self.tier_until.get() {
            self.wakeups.insert(until);
        }
    }

    fn set_tier_quietly(&mut self, program: &Program, tier: Option<usize>, since: Timestamp, until: Option<Timestamp>) {
        let journal = self.timeline.as_mut().map(|timeline| std::mem::take(&mut timeline.journal));
        self.set_tier(program, "", tier, since, until);
        if let (Some(timeline), Some(journal)) = (&mut self.timeline, journal) {
            timeline.journal = journal;
        }
    }

    /// NET-A-PORTER upgrade: to the highest tier reached, for a new term.
    fn nap_upgrade(&mut self, program: &Program, at: Timestamp, term_months: i64) {
        let reached = self.tier_reached(program, self.nap_qualifying_spend(program, at));
        if reached > self.tier {
            self.set_tier(program, "tier_upgraded", reached, at, Some(program.calendar.add_months(at, term_months)));
        }
    }

    fn nap_tier_expiry(&mut self, program: &Program, at: Timestamp) {
        let Qualification::Rolling { term_months, .. } = program.qualification else {
            return;
        };
        if self.tier_until.is_some_and(|until| until <= at) && self.tiers_unfrozen() {
            self.nap_expiry_review(program, at, term_months);
        }
    }

    /// NET-A-PORTER expiry review: raise, keep for another term, or lower
    /// (programs.md §1).
    fn nap_expiry_review(&mut self, program: &Program, at: Timestamp, term_months: i64) {
        let reached = self.tier_reached(program, self.nap_qualifying_spend(program, at));
        let next_term = program.calendar.add_months(at, term_months);
        if reached == self.tier {
            self.note(Happening { tier: self.tier, until: Some(next_term), ..Happening::new(at, "tier_kept") });
            self.tier_until = next_term.into();
            self.wakeups.insert(next_term);
        } else {
            let rule = if reached > self.tier { "tier_upgraded" } else { "tier_lowered" };
            self.set_tier(program, rule, reached, at, Some(next_term));
        }
    }

    /// MR PORTER year spend S(Y): matured value of orders placed in Y.
    pub fn mrp_year_spend(&self, year: i16) -> Minor {
        Minor(self.orders.iter().filter(|o| o.matured() && o.placed_year == year).map(|o| o.net_value().0).sum())
    }

    /// MR PORTER upgrade at any time on the current year's spend; the tier is held
    /// until Jan 1 of the year after next (programs.md §2).
    fn mrp_upgrade_any_time(&mut self, program: &Program, at: Timestamp) {
        let year = program.calendar.year(at);
        let reached = self.tier_reached(program, self.mrp_year_spend(year));
        if reached > self.tier {
            self.set_tier(program, "tier_upgraded", reached, at, Some(program.calendar.start_of_year(year + 2)));
            self.basis = TierBasis::Upgraded { year };
        }
    }

    /// MR PORTER late maturation: last year's value maturing after the January
    /// reassessment raises the member to the tier it reaches (programs.md §2, D18).
    fn mrp_late_maturation_raise(&mut self, program: &Program, at: Timestamp, year: i16) {
        let reached = self.tier_reached(program, self.mrp_year_spend(year - 1));
        if reached > self.tier {
            self.set_tier(program, "tier_raised", reached, at, Some(program.calendar.start_of_year(year + 1)));
            self.basis = TierBasis::Confirmed;
        }
    }

    fn mrp_january(&mut self, program: &Program, at: Timestamp) {
        if program.qualification != Qualification::CalendarYear {
            return;
        }
        let year = program.calendar.year(at);
        if at != program.calendar.start_of_year(year) {
            return;
        }
        self.schedule_next_january(program, at);
        if self.status == Status::Suspended {
            self.missed_january = true;
            return;
        }
        if self.is_earning() {
            self.mrp_january_reassessment(program, at, year);
        }
    }

    /// MR PORTER January reassessment of year `year` (programs.md §2): a tier reached
    /// by an upgrade last year is confirmed; any other is kept if last year's spend
    /// reaches it, else lowered to what it reaches, never below the joining tier.
    fn mrp_january_reassessment(&mut self, program: &Program, at: Timestamp, year: i16) {
        let (Some(tier), Some(joining)) = (self.tier, program.joining_tier) else {
            return;
        };
        let confirmed_until = program.calendar.start_of_year(year + 1);
        if self.basis == (TierBasis::Upgraded { year: year - 1 }) {
            self.basis = TierBasis::Confirmed;
            self.note(Happening {
                tier: Some(tier),
                until: Some(confirmed_until),
                ..Happening::new(at, "tier_confirmed")
            });
            self.set_tier_quietly(program, Some(tier), self.tier_since.unwrap_or(at), Some(confirmed_until));
            return;
        }
        if tier == joining {
            return;
        }
        let reached = self.tier_reached(program, self.mrp_year_spend(year - 1)).unwrap_or(joining).max(joining);
        self.basis = TierBasis::Confirmed;
        if reached == tier {
            self.note(Happening { tier: Some(tier), until: Some(confirmed_until), ..Happening::new(at, "tier_kept") });
            self.set_tier_quietly(program, Some(tier), self.tier_since.unwrap_or(at), Some(confirmed_until));
        } else if reached == joining {
            self.set_tier(program, "tier_lowered", Some(joining), at, None);
            self.basis = TierBasis::Joined;
        } else {
            let rule = if reached > tier { "tier_raised" } else { "tier_lowered" };
            self.set_tier(program, rule, Some(reached), at, Some(confirmed_until));
        }
    }

    fn schedule_next_january(&mut self, program: &Program, after: Timestamp) {
        let year = program.calendar.year(after);
        self.wakeups.insert(program.calendar.start_of_year(year + 1));
    }

    /// Perfone level: the highest level the kept total reaches, never lowered
    /// (programs.md §3, §7.12).
    fn pf_level_up(&mut self, program: &Program, at: Timestamp) {
        let reached = self.tier_reached(program, self.pf_kept_total());
        if reached > self.tier {
            self.set_tier(program, "tier_upgraded", reached, at, None);
        }
    }

    /// Perfone cumulative kept purchases: matured value, net of returns (D19).
    pub fn pf_kept_total(&self) -> Minor {
        Minor(self.orders.iter().filter(|o| o.matured()).map(|o| o.net_value().0).sum())
    }

    /// Available points expire at their lot's expiry (programs.md §3, §7.8).
    fn pf_points_expiry(&mut self, at: Timestamp) {
        let expired = self.points.expire(at);
        if expired > 0 {
            self.note(Happening { points: Some(expired), ..Happening::new(at, "points_expired") });
            self.record_points(at, Reason::Expired, Bucket::Available, -expired, None);
        }
    }

    /// Store credit expires at its lot's expiry (programs.md §4).
    fn store_credit_expiry(&mut self, at: Timestamp) {
        let expired = self.credit.expire(at);
        if expired > 0 {
            self.record(Entry::new(at, LedgerKind::StoreCredit, Reason::Expired, Bucket::Available, -expired));
        }
    }

    /// The next birthday instant at or after `from` (Feb 29 → Feb 28 in common
    /// years), 00:00 program time.
    fn next_birthday(&self, calendar: &Calendar, from: Timestamp) -> Option<Timestamp> {
        let (month, day) = self.birth_date.as_ref().map(|b| (b.expose().month(), b.expose().day())).or(self.birthday)?;
        let year = calendar.year(from);
        for candidate_year in [year, year + 1] {
            let date = Calendar::clamped_date(candidate_year, month, day)?;
            let instant = calendar.start_of_day(date);
            if instant >= from {
                return Some(instant);
            }
        }
        None
    }

    fn schedule_birthday(&mut self, program: &Program, from: Timestamp) {
        self.next_birthday_at = MaybeAt::NONE;
        if (program.points.as_ref().is_some_and(|p| p.birthday_bonus > 0) || Member::birthday_benefits(program))
            && let Some(next) = self.next_birthday(&program.calendar, from)
        {
            self.next_birthday_at = next.into();
            self.wakeups.insert(next);
        }
    }

    /// The birthday, once a year, for active members: Perfone's points bonus and the
    /// tier's birthday benefits (programs.md §3, §5, D23).
    fn birthday(&mut self, program: &Program, at: Timestamp) {
        if self.next_birthday_at.get() != Some(at) {
            return;
        }
        let year = program.calendar.year(at);
        if self.is_earning() && self.last_birthday_year != Some(year) {
            self.last_birthday_year = Some(year);
            self.pf_birthday_bonus(program, at);
            self.benefits_birthday(program, at);
        }
        // Next year's: one second later is past today's birthday instant.
        let after = at.checked_add(jiff::SignedDuration::from_secs(1)).unwrap_or(at);
        self.schedule_birthday(program, after);
    }

    /// Perfone birthday bonus: available at once (programs.md §3, D23).
    fn pf_birthday_bonus(&mut self, program: &Program, at: Timestamp) {
        let Some(rules) = &program.points else { return };
        if rules.birthday_bonus > 0 {
            let expires_at = program.calendar.add_months(at, rules.expiry_months);
            self.note(Happening {
                points: Some(rules.birthday_bonus),
                until: Some(expires_at),
                ..Happening::new(at, "birthday_bonus")
            });
            self.credit_points(at, Reason::Birthday, rules.birthday_bonus, expires_at, None);
        }
    }
}

/// Eligible value of an order (programs.md §0, §7.1):
/// `clamp(cash − delivery − duties − Σ line tax, 0, goods_net)`.
pub fn eligible_value(order: &Order) -> Minor {
    let cash: i64 = order.payments.iter().filter(|p| p.method.is_cash_like()).map(|p| p.amount.0).sum();
    let tax: i64 = order.lines.iter().map(|l| l.tax.0).sum();
    let goods_net: i64 = order.lines.iter().map(|l| l.weight().0).sum();
    Minor((cash - order.delivery.0 - order.duties.0 - tax).clamp(0, goods_net))
}

/// When an order's returns window closes: delivery + window days, same wall-clock
/// time, or later for orders placed in an extended window (programs.md §0, §2).
pub fn returns_window_close(program: &Program, placed_at: Timestamp, delivered_at: Timestamp) -> Timestamp {
    let calendar = &program.calendar;
    let plain = calendar.add_days(delivered_at, program.returns.window_days);
    if program.returns.extended.is_empty() {
        return plain;
    }
    let placed = calendar.civil(placed_at).date();
    let month_day = (placed.month(), placed.day());
    program
        .returns
        .extended
        .iter()
        .filter(|w| w.placed_from <= month_day && month_day <= w.placed_to)
        .filter_map(|w| Calendar::clamped_date(placed.year() + 1, w.closes.0, w.closes.1))
        .map(|date| calendar.start_of_day(date))
        .fold(plain, Timestamp::max)
}

/// When someone born on `birth` reaches the order age, in the program's zone.
fn adult_from(program: &Program, birth: Date) -> Timestamp {
    let year = birth.year() + ORDER_AGE;
    let date = Date::new(year, birth.month(), birth.day()).or_else(|_| Date::new(year, 3, 1)).unwrap_or(birth);
    program.calendar.start_of_day(date)
}

/// A refused sale price adjustment: `adjustment_refused`, then the reason.
fn refused(reason: &str, why: &str) -> Rejection {
    reject(RejectCode::AdjustmentRefused, format!("{reason}: {why}"))
}

/// Takes `points` from redeemed portions, latest-expiring first (D22).
fn take_latest_first(portions: &mut Vec<Lot>, mut points: i64) -> Vec<Lot> {
    let mut taken = Vec::new();
    while points > 0 {
        let Some(last) = portions.last_mut() else {
            break;
        };
        let amount = last.points.min(points);
        last.points -= amount;
        points -= amount;
        taken.push(Lot { points: amount, expires_at: last.expires_at });
        if last.points == 0 {
            portions.pop();
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// A million members, four million orders and eight million lines at 10M
    /// events: each byte of them is one, four or eight megabytes.
    #[test]
    fn members_orders_and_lines_keep_their_sizes() {
        assert!(size_of::<Member>() <= 368, "a member is {} bytes", size_of::<Member>());
        let grant = size_of::<crate::benefits::Grant>();
        assert!(grant <= 80, "a benefit grant is {grant} bytes");
        assert!(size_of::<OrderState>() <= 104, "an order is {} bytes", size_of::<OrderState>());
        assert_eq!(size_of::<LineState>(), 56, "a line is {} bytes", size_of::<LineState>());
        assert!(size_of::<Adjustable>() <= 32, "a line's adjustment data is {} bytes", size_of::<Adjustable>());
    }

    #[test]
    fn orders_fill_the_allocation_class_they_grow_into() {
        let classes: Vec<usize> = [1, 64, 65, 104, 128, 129, 208, 312, 416, 520, 1040, 4097].map(size_class).to_vec();
        assert_eq!(classes, [8, 64, 80, 112, 128, 160, 224, 320, 448, 640, 1280, 5120]);
        let mut orders: Vec<[u8; 104]> = Vec::new();
        let mut capacities = Vec::new();
        for _ in 0..40 {
            make_room_growing(&mut orders);
            orders.push([0; 104]);
            if capacities.last() != Some(&orders.capacity()) {
                capacities.push(orders.capacity());
            }
        }
        // 112, 224, 320, 448, 640, 768, 896, 1024, 1280 … bytes: each a class, filled.
        assert_eq!(capacities, [1, 2, 3, 4, 6, 7, 8, 9, 12, 14, 17, 19, 24, 29, 34, 39, 49]);
    }

    proptest! {
        /// A line's style and size, kept as one string, come back apart.
        #[test]
        fn an_adjustable_line_gives_back_its_style_and_size(sku in ".{0,30}", size in prop::option::of(".{0,30}")) {
            let adjustable = Adjustable::new(&sku, size.as_deref(), Minor(1));
            prop_assert_eq!(adjustable.sku(), sku.as_str());
            prop_assert_eq!(adjustable.size(), size.as_deref());
        }

        /// Open orders, the first few in place, answer as a vector of them.
        #[test]
        fn open_orders_answer_as_a_vector(steps in prop::collection::vec(prop::option::of(0_usize..1000), 0..100)) {
            let (mut open, mut model) = (OpenOrders::default(), Vec::new());
            for step in steps {
                match step {
                    Some(index) => {
                        open.push(index);
                        model.push(index);
                    }
                    // Keeps about two in three, by value.
                    None => {
                        open.retain(|index| index % 3 != 0);
                        model.retain(|index| index % 3 != 0);
                    }
                }
                prop_assert_eq!(open.iter().collect::<Vec<_>>(), model.clone());
            }
        }

        /// Wake-ups come out in time order, each once, as from an ordered set.
        #[test]
        fn wakeups_come_out_as_from_an_ordered_set(steps in prop::collection::vec(prop::option::of(0_i64..40), 0..200)) {
            let (mut wakeups, mut set) = (Wakeups::default(), BTreeSet::new());
            for step in steps {
                match step {
                    Some(second) => {
                        let at = Timestamp::from_second(second).expect("in range");
                        wakeups.insert(at);
                        set.insert(at);
                    }
                    None => prop_assert_eq!(wakeups.pop_first(), set.pop_first()),
                }
                prop_assert_eq!(wakeups.first(), set.first().copied());
            }
            wakeups.clear();
            prop_assert_eq!(wakeups.pop_first(), None);
        }
    }
}
