//! A member's state: the fold of the program's rules over the member's events and
//! the time rules due up to an instant.
//!
//! Each rule of `shared/spec/programs.md` is one function here, named after it.
//! Event handlers check everything first and only then change the state, so a
//! rejected event changes nothing. Time rules run at the instants queued in
//! `wakeups`, in the order of programs.md §7.3.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::calendar::Calendar;
use crate::event::{
    Event, EventBody, Id, LineQuantity, Order, PaymentMethod, Registration, RejectCode, Rejection, StatusChange,
};
use crate::money::{Currency, Minor};
use crate::program::{Program, Qualification};
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
}

impl Happening {
    fn new(at: Timestamp, rule: &'static str) -> Happening {
        Happening { at, rule, ..Happening::default() }
    }
}

/// A lot of available points with its own expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lot {
    pub points: i64,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct LineState {
    pub line: Id,
    pub quantity: u32,
    pub removed_units: u32,
    pub eligible: Minor,
    pub eligible_removed: Minor,
    pub points: i64,
    pub points_removed: i64,
    pub redeemed: i64,
    pub redeemed_removed: i64,
}

#[derive(Clone, Debug)]
pub struct OrderState {
    pub order: Id,
    pub placed_at: Timestamp,
    /// Civil year of placement in the program's zone.
    pub placed_year: i16,
    pub earning: bool,
    pub lines: Vec<LineState>,
    pub delivered_at: Option<Timestamp>,
    /// When the returns window closes (the order's value matures).
    pub matures_at: Option<Timestamp>,
    pub matured: bool,
    /// When matured value is applied (monthly application), once matured.
    pub applies_at: Option<Timestamp>,
    pub applied: bool,
    pub points_available: bool,
    /// Points paid with, by lot, not yet given back: (points, expires_at).
    pub redeemed_portions: Vec<Lot>,
}

impl OrderState {
    /// Eligible value still held by the order (after returns and cancellations).
    pub fn net_value(&self) -> Minor {
        Minor(self.lines.iter().map(|l| l.eligible.0 - l.eligible_removed.0).sum())
    }

    /// Points earned by the order and not removed.
    pub fn net_points(&self) -> i64 {
        self.lines.iter().map(|l| l.points - l.points_removed).sum()
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub id: Id,
    pub registered_at: Timestamp,
    pub country: Id,
    pub birth_date: Option<Date>,
    pub staff: bool,
    pub guardian_consent: bool,
    pub status: Status,
    pub ineligible: Option<Ineligibility>,
    pub currency: Option<Currency>,
    pub tier: Option<usize>,
    pub tier_since: Option<Timestamp>,
    pub tier_until: Option<Timestamp>,
    pub basis: TierBasis,
    pub orders: Vec<OrderState>,
    /// Available points, earliest expiry first.
    pub lots: Vec<Lot>,
    /// A negative balance after a clawback (programs.md §7.8).
    pub debt: i64,
    pub last_birthday_year: Option<i16>,
    /// The next birthday instant a bonus is due at, if any.
    next_birthday_at: Option<Timestamp>,
    /// Tier rules fell due while suspended (decisions D15).
    pub missed_review: bool,
    pub missed_january: bool,
    /// Rewards value removed for good (closed, opted out).
    pub wiped: bool,
    wakeups: BTreeSet<Timestamp>,
    /// Delivered orders whose value or points are not settled yet (not applied, or
    /// points not available): the only orders time rules look at.
    open_orders: Vec<usize>,
    /// The timeline, when switched on.
    journal: Option<Vec<Happening>>,
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
            country: registration.country.clone(),
            birth_date: registration.birth_date,
            staff: registration.staff,
            guardian_consent: registration.guardian_consent,
            status: Status::Active,
            ineligible: None,
            currency: program.currency_of(&registration.country),
            tier: None,
            tier_since: None,
            tier_until: None,
            basis: TierBasis::Joined,
            orders: Vec::new(),
            lots: Vec::new(),
            debt: 0,
            last_birthday_year: None,
            next_birthday_at: None,
            missed_review: false,
            missed_january: false,
            wiped: false,
            wakeups: BTreeSet::new(),
            open_orders: Vec::new(),
            journal: None,
        };
        member.ineligible = member.eligibility(program);
        if member.ineligible.is_none()
            && let Some(joining) = program.joining_tier
        {
            member.tier = Some(joining);
            member.tier_since = Some(at);
        }
        if program.qualification == Qualification::CalendarYear {
            member.schedule_next_january(program, at);
        }
        member.schedule_birthday(program, at);
        member
    }

    /// Switches the timeline on: from now on every rule applied is recorded.
    pub fn with_journal(mut self) -> Member {
        self.journal = Some(Vec::new());
        self
    }

    /// Records the member's joining (the first entry of a timeline).
    pub fn note_joined(&mut self) {
        let happening = Happening { tier: self.tier, ..Happening::new(self.registered_at, "member_registered") };
        self.note(happening);
    }

    /// The rules applied since the journal was switched on.
    pub fn journal(&self) -> &[Happening] {
        self.journal.as_deref().unwrap_or_default()
    }

    fn note(&mut self, happening: Happening) {
        if let Some(journal) = &mut self.journal {
            journal.push(happening);
        }
    }

    fn journaling(&self) -> bool {
        self.journal.is_some()
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
    pub fn apply_event(&mut self, program: &Program, event: &Event, orders: OrderLookup) -> Result<(), Rejection> {
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
            EventBody::MemberUpdated { country, birth_date, .. } => {
                self.update(program, country.as_deref(), *birth_date, at)
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
        }
    }

    /// The index of one of the member's orders.
    pub fn order_position(&self, id: &str) -> Option<usize> {
        self.orders.iter().rposition(|o| o.order == id)
    }

    /// `member.updated`: country and birth date (decisions D11).
    pub fn update(
        &mut self,
        program: &Program,
        country: Option<&str>,
        birth_date: Option<Date>,
        at: Timestamp,
    ) -> Result<(), Rejection> {
        self.refuse_if_closed()?;
        if let Some(country) = country {
            let currency = program.currency_of(country);
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
            self.country = Id::from(country);
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
                self.tier_since = Some(at);
            }
        }
        if let Some(date) = birth_date {
            self.birth_date = Some(date);
            self.schedule_birthday(program, at);
        }
        Ok(())
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
            StatusChange::OptedOut => self.remove_all_value(Status::OptedOut),
            StatusChange::Closed => self.remove_all_value(Status::Closed),
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
    pub fn remove_all_value(&mut self, status: Status) {
        self.status = status;
        self.wiped = true;
        self.tier = None;
        self.tier_since = None;
        self.tier_until = None;
        self.lots.clear();
        self.debt = 0;
        self.wakeups.clear();
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

    /// `order.placed`: checks the currency and points, then records the order with its
    /// eligible value and points split over its lines. Returns the order's index.
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
        let redeemed = self.check_points_payment(program, order)?;

        let earning = self.is_earning();
        let weights = order.lines.iter().map(|l| l.weight().0);
        let eligible = if earning { eligible_value(order) } else { Minor::ZERO };
        let points = self.pf_points_earned(program, order, eligible);
        let eligible_split = ProRata::new(eligible.0, weights.clone());
        let points_split = ProRata::new(points, weights.clone());
        let redeemed_split = ProRata::new(redeemed, weights);

        let portions = if redeemed > 0 { self.spend_points(redeemed) } else { Vec::new() };
        let lines = order
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let weight = line.weight().0;
                LineState {
                    line: line.line.clone(),
                    quantity: line.quantity,
                    removed_units: 0,
                    eligible: Minor(eligible_split.share(i, weight)),
                    eligible_removed: Minor::ZERO,
                    points: points_split.share(i, weight),
                    points_removed: 0,
                    redeemed: redeemed_split.share(i, weight),
                    redeemed_removed: 0,
                }
            })
            .collect();
        self.orders.push(OrderState {
            order: order.order.clone(),
            placed_at: at,
            placed_year: program.calendar.year(at),
            earning,
            lines,
            delivered_at: None,
            matures_at: None,
            matured: false,
            applies_at: None,
            applied: false,
            points_available: false,
            redeemed_portions: portions,
        });
        self.note(Happening {
            order: Some(order.order.clone()),
            amount: Some(eligible),
            points: program.points.as_ref().map(|_| points),
            ..Happening::new(at, "order_placed")
        });
        if redeemed > 0 {
            self.note(Happening {
                order: Some(order.order.clone()),
                points: Some(redeemed),
                ..Happening::new(at, "points_redeemed")
            });
        }
        Ok(self.orders.len() - 1)
    }

    /// Perfone: a points payment is whole units, at most the program's share of the
    /// goods value, at most the available balance (programs.md §3). Returns points.
    fn check_points_payment(&self, program: &Program, order: &Order) -> Result<i64, Rejection> {
        let paid: i64 = order.payments.iter().filter(|p| p.method == PaymentMethod::Points).map(|p| p.amount.0).sum();
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
        let available = self.points_available();
        if points > available {
            return Err(reject(
                RejectCode::PointsOverBalance,
                format!("payments: {points} points asked, {available} available"),
            ));
        }
        Ok(points)
    }

    /// Perfone earning: `floor(rate × eligible)` at the member's level before this
    /// order counts; none with a "no points" code (programs.md §3, D20).
    fn pf_points_earned(&self, program: &Program, order: &Order, eligible: Minor) -> i64 {
        if program.points.is_none() || eligible == Minor::ZERO {
            return 0;
        }
        if order.codes.iter().any(|c| program.code(c).is_some_and(|code| !code.earns_points)) {
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
        let matures_at = returns_window_close(program, order.placed_at, at);
        let wiped = self.wiped;
        let order = &mut self.orders[index];
        order.delivered_at = Some(at);
        if !wiped {
            order.matures_at = Some(matures_at);
            let id = order.order.clone();
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
                    let Some(line_index) = order.lines.iter().position(|l| l.line == wanted.line) else {
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
        let mut removed = Minor::ZERO;
        let order = &mut self.orders[index];
        for (line_index, quantity) in removals {
            let line = &mut order.lines[line_index];
            let value =
                partial_share(line.eligible.0, line.quantity, line.removed_units, line.eligible_removed.0, quantity);
            let points = partial_share(line.points, line.quantity, line.removed_units, line.points_removed, quantity);
            let redeemed =
                partial_share(line.redeemed, line.quantity, line.removed_units, line.redeemed_removed, quantity);
            line.removed_units += quantity;
            line.eligible_removed.0 += value;
            line.points_removed += points;
            line.redeemed_removed += redeemed;
            burned += points;
            given_back += redeemed;
            removed.0 += value;
        }
        if self.wiped {
            return Ok(());
        }
        let portions = take_latest_first(&mut order.redeemed_portions, given_back);
        let points_were_available = order.points_available;
        let id = order.order.clone();
        self.note(Happening { order: Some(id.clone()), amount: Some(removed), ..Happening::new(at, "units_removed") });
        let _ = program;
        for portion in portions.into_iter().filter(|p| p.expires_at > at) {
            self.note(Happening {
                order: Some(id.clone()),
                points: Some(portion.points),
                until: Some(portion.expires_at),
                ..Happening::new(at, "points_given_back")
            });
            self.credit_points(portion.points, portion.expires_at);
        }
        if points_were_available && burned > 0 {
            self.note(Happening { order: Some(id), points: Some(burned), ..Happening::new(at, "points_burned") });
            self.pf_burn_points(burned);
        }
        Ok(())
    }

    // ---- points ledger ----------------------------------------------------------------

    /// Available balance: lots less debt; negative after a clawback.
    pub fn points_available(&self) -> i64 {
        self.lots.iter().map(|l| l.points).sum::<i64>() - self.debt
    }

    /// Points earned and not yet available.
    pub fn points_pending(&self) -> i64 {
        self.orders.iter().filter(|o| !o.points_available && o.earning).map(OrderState::net_points).sum()
    }

    /// New available points pay a negative balance first (programs.md §7.8).
    fn credit_points(&mut self, points: i64, expires_at: Timestamp) {
        let paid = points.min(self.debt).max(0);
        self.debt -= paid;
        let rest = points - paid;
        if rest > 0 {
            let position = self.lots.partition_point(|l| l.expires_at <= expires_at);
            self.lots.insert(position, Lot { points: rest, expires_at });
            self.wakeups.insert(expires_at);
        }
    }

    /// Spends points, first-to-expire first. The caller checked the balance.
    fn spend_points(&mut self, mut points: i64) -> Vec<Lot> {
        let mut portions = Vec::new();
        while points > 0 && !self.lots.is_empty() {
            let lot = &mut self.lots[0];
            let taken = lot.points.min(points);
            lot.points -= taken;
            points -= taken;
            portions.push(Lot { points: taken, expires_at: lot.expires_at });
            if lot.points == 0 {
                self.lots.remove(0);
            }
        }
        portions
    }

    /// Points earned on returned lines burn from the available balance, which may go
    /// negative (programs.md §3).
    fn pf_burn_points(&mut self, points: i64) {
        let spent: i64 = self.spend_points(points).iter().map(|l| l.points).sum();
        self.debt += points - spent;
    }

    // ---- time -------------------------------------------------------------------------

    /// The earliest instant at which a time rule may change this member.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.wakeups.first().copied()
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
        if self.wiped {
            return;
        }
        self.mature_orders(program, at);
        self.pf_points_availability(program, at);
        self.nap_monthly_application(program, at);
        self.nap_tier_expiry(program, at);
        self.mrp_january(program, at);
        self.pf_points_expiry(at);
        self.pf_birthday_bonus(program, at);
        let orders = &self.orders;
        let has_points = program.points.is_some();
        self.open_orders.retain(|i| !(orders[*i].applied && (orders[*i].points_available || !has_points)));
    }

    /// Returns windows closing: the order's value matures (programs.md §0).
    fn mature_orders(&mut self, program: &Program, at: Timestamp) {
        let mut any = false;
        let mut late_years = BTreeSet::new();
        let mut year = None;
        for index in &self.open_orders {
            let order = &mut self.orders[*index];
            if order.matured || order.matures_at.is_none_or(|m| m > at) {
                continue;
            }
            order.matured = true;
            any = true;
            if let Some(journal) = &mut self.journal {
                let (order_id, amount) = (order.order.clone(), order.net_value());
                journal.push(Happening {
                    order: Some(order_id),
                    amount: Some(amount),
                    ..Happening::new(at, "value_matured")
                });
            }
            match program.qualification {
                Qualification::Rolling { monthly_application: true, .. } => {
                    let applies_at = program.calendar.month_start_at_or_after(at);
                    order.applies_at = Some(applies_at);
                    self.wakeups.insert(applies_at);
                }
                _ => order.applied = true,
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
        for index in &self.open_orders {
            let order = &mut self.orders[*index];
            if order.matured && !order.points_available {
                order.points_available = true;
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
            self.credit_points(arriving, expires_at);
        }
    }

    /// NET-A-PORTER: matured value is applied on the first day of the month at 00:00,
    /// then the upgrade check runs (programs.md §1).
    fn nap_monthly_application(&mut self, program: &Program, at: Timestamp) {
        let Qualification::Rolling { term_months, monthly_application: true, .. } = program.qualification else {
            return;
        };
        let mut any = false;
        for index in &self.open_orders {
            let order = &mut self.orders[*index];
            if order.matured && !order.applied && order.applies_at.is_some_and(|a| a <= at) {
                order.applied = true;
                any = true;
                if let Some(journal) = &mut self.journal {
                    let (order_id, amount) = (order.order.clone(), order.net_value());
                    journal.push(Happening {
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
        Minor(
            self.orders
                .iter()
                .filter(|o| o.applied && o.placed_at > from && o.placed_at <= at)
                .map(|o| o.net_value().0)
                .sum(),
        )
    }

    fn tier_reached(&self, program: &Program, spend: Minor) -> Option<usize> {
        self.currency.and_then(|c| program.tier_reached(c, spend))
    }

    fn set_tier(&mut self, rule: &'static str, tier: Option<usize>, since: Timestamp, until: Option<Timestamp>) {
        if self.journaling() {
            let from_tier = self.tier;
            self.note(Happening { from_tier, tier, until: tier.and(until), ..Happening::new(since, rule) });
        }
        self.tier = tier;
        self.tier_since = tier.map(|_| since);
        self.tier_until = tier.and(until);
        if let Some(until) = self.tier_until {
            self.wakeups.insert(until);
        }
    }

    fn set_tier_quietly(&mut self, tier: Option<usize>, since: Timestamp, until: Option<Timestamp>) {
        let journal = self.journal.take();
        self.set_tier("", tier, since, until);
        self.journal = journal;
    }

    /// NET-A-PORTER upgrade: to the highest tier reached, for a new term.
    fn nap_upgrade(&mut self, program: &Program, at: Timestamp, term_months: i64) {
        let reached = self.tier_reached(program, self.nap_qualifying_spend(program, at));
        if reached > self.tier {
            self.set_tier("tier_upgraded", reached, at, Some(program.calendar.add_months(at, term_months)));
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
            self.tier_until = Some(next_term);
            self.wakeups.insert(next_term);
        } else {
            let rule = if reached > self.tier { "tier_upgraded" } else { "tier_lowered" };
            self.set_tier(rule, reached, at, Some(next_term));
        }
    }

    /// MR PORTER year spend S(Y): matured value of orders placed in Y.
    pub fn mrp_year_spend(&self, year: i16) -> Minor {
        Minor(self.orders.iter().filter(|o| o.matured && o.placed_year == year).map(|o| o.net_value().0).sum())
    }

    /// MR PORTER upgrade at any time on the current year's spend; the tier is held
    /// until Jan 1 of the year after next (programs.md §2).
    fn mrp_upgrade_any_time(&mut self, program: &Program, at: Timestamp) {
        let year = program.calendar.year(at);
        let reached = self.tier_reached(program, self.mrp_year_spend(year));
        if reached > self.tier {
            self.set_tier("tier_upgraded", reached, at, Some(program.calendar.start_of_year(year + 2)));
            self.basis = TierBasis::Upgraded { year };
        }
    }

    /// MR PORTER late maturation: last year's value maturing after the January
    /// reassessment raises the member to the tier it reaches (programs.md §2, D18).
    fn mrp_late_maturation_raise(&mut self, program: &Program, at: Timestamp, year: i16) {
        let reached = self.tier_reached(program, self.mrp_year_spend(year - 1));
        if reached > self.tier {
            self.set_tier("tier_raised", reached, at, Some(program.calendar.start_of_year(year + 1)));
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
            self.set_tier_quietly(Some(tier), self.tier_since.unwrap_or(at), Some(confirmed_until));
            return;
        }
        if tier == joining {
            return;
        }
        let reached = self.tier_reached(program, self.mrp_year_spend(year - 1)).unwrap_or(joining).max(joining);
        self.basis = TierBasis::Confirmed;
        if reached == tier {
            self.note(Happening { tier: Some(tier), until: Some(confirmed_until), ..Happening::new(at, "tier_kept") });
            self.set_tier_quietly(Some(tier), self.tier_since.unwrap_or(at), Some(confirmed_until));
        } else if reached == joining {
            self.set_tier("tier_lowered", Some(joining), at, None);
            self.basis = TierBasis::Joined;
        } else {
            let rule = if reached > tier { "tier_raised" } else { "tier_lowered" };
            self.set_tier(rule, Some(reached), at, Some(confirmed_until));
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
            self.set_tier("tier_upgraded", reached, at, None);
        }
    }

    /// Perfone cumulative kept purchases: matured value, net of returns (D19).
    pub fn pf_kept_total(&self) -> Minor {
        Minor(self.orders.iter().filter(|o| o.matured).map(|o| o.net_value().0).sum())
    }

    /// Available points expire at their lot's expiry (programs.md §3, §7.8).
    fn pf_points_expiry(&mut self, at: Timestamp) {
        let expired = self.lots.partition_point(|l| l.expires_at <= at);
        if expired > 0 && self.journaling() {
            let points = self.lots[..expired].iter().map(|l| l.points).sum();
            self.note(Happening { points: Some(points), ..Happening::new(at, "points_expired") });
        }
        self.lots.drain(..expired);
    }

    /// The next birthday instant at or after `from` (Feb 29 → Feb 28 in common
    /// years), 00:00 program time.
    fn next_birthday(&self, calendar: &Calendar, from: Timestamp) -> Option<Timestamp> {
        let birth = self.birth_date?;
        let year = calendar.year(from);
        for candidate_year in [year, year + 1] {
            let date = Calendar::clamped_date(candidate_year, birth.month(), birth.day())?;
            let instant = calendar.start_of_day(date);
            if instant >= from {
                return Some(instant);
            }
        }
        None
    }

    fn schedule_birthday(&mut self, program: &Program, from: Timestamp) {
        self.next_birthday_at = None;
        if program.points.as_ref().is_some_and(|p| p.birthday_bonus > 0)
            && let Some(next) = self.next_birthday(&program.calendar, from)
        {
            self.next_birthday_at = Some(next);
            self.wakeups.insert(next);
        }
    }

    /// Perfone birthday bonus: available at once, once a year, active members only
    /// (programs.md §3, D23).
    fn pf_birthday_bonus(&mut self, program: &Program, at: Timestamp) {
        let Some(rules) = &program.points else { return };
        if self.next_birthday_at != Some(at) {
            return;
        }
        let year = program.calendar.year(at);
        if self.is_earning() && self.last_birthday_year != Some(year) && rules.birthday_bonus > 0 {
            self.last_birthday_year = Some(year);
            let expires_at = program.calendar.add_months(at, rules.expiry_months);
            self.note(Happening {
                points: Some(rules.birthday_bonus),
                until: Some(expires_at),
                ..Happening::new(at, "birthday_bonus")
            });
            self.credit_points(rules.birthday_bonus, expires_at);
        }
        // Next year's: one second later is past today's birthday instant.
        let after = at.checked_add(jiff::SignedDuration::from_secs(1)).unwrap_or(at);
        self.schedule_birthday(program, after);
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
