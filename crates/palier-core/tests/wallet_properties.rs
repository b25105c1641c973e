//! Property tests of the wallet (docs/wallet.md): the points and store credit
//! ledgers, and checkout holds.
//!
//! One member a case, on Perfone (points) or NET-A-PORTER (store credit), takes a
//! random sequence of steps: orders placed (with or without a wallet payment),
//! delivered, returned and cancelled; time passing (points maturing, lots and holds
//! expiring); checkout holds taken, committed by an order, released; operator grants
//! and debits. Each step is rendered as events against the member's state at that
//! instant (mostly valid, sometimes not: a refused event must change nothing), fed
//! to a [`MemberHistory`], and after every step the member recomputed with its
//! ledger ([`MemberHistory::journaled`]) must satisfy:
//!
//! - every balance is the sum of its bucket's entries, and the document shows them;
//! - the entries explain the lots: replaying them through an independent
//!   first-to-expire-first purse gives exactly the member's lots and debt, no entry
//!   touches a lot after its expiry, and every spend leaves a suffix of the lots;
//! - each reason moves value only as it says (signs, buckets, maturation moves
//!   pending to available, per-order redemptions and earnings);
//! - each hold ends at most once, with exactly one ending entry of its reason, and
//!   what open holds reserve is the held balance.
//!
//! Steps only move forward in time; the last test checks, on one small case, that a
//! refused event dated later does not move the member in time either.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};
use palier_core::event::LedgerKind;
use palier_core::history::MemberHistory;
use palier_core::ledger::{Bucket, Entry, Lot, Purse, Reason, sum};
use palier_core::member::{HoldState, HoldStatus, Member};
use palier_core::money::{Currency, Minor};
use palier_core::sales::Sales;
use palier_core::{Program, parse_event};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{Value, json};

// ---- programs -------------------------------------------------------------------------

const NET_A_PORTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../programs/net-a-porter.toml");
const PERFONE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../programs/perfone.toml");

fn load(path: &str) -> Program {
    let text = std::fs::read_to_string(path).expect("the program file is readable");
    Program::parse(path, &text).expect("the program file parses")
}

fn perfone() -> &'static Program {
    static PROGRAM: OnceLock<Program> = OnceLock::new();
    PROGRAM.get_or_init(|| load(PERFONE))
}

fn net_a_porter() -> &'static Program {
    static PROGRAM: OnceLock<Program> = OnceLock::new();
    PROGRAM.get_or_init(|| load(NET_A_PORTER))
}

/// Which purse a case exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wallet {
    /// Perfone points (RUB, 1 point = 1 rouble, at most 50 % of the goods).
    Points,
    /// NET-A-PORTER store credit (GBP).
    Credit,
}

impl Wallet {
    fn program(self) -> &'static Program {
        match self {
            Wallet::Points => perfone(),
            Wallet::Credit => net_a_porter(),
        }
    }

    fn kind(self) -> LedgerKind {
        match self {
            Wallet::Points => LedgerKind::Points,
            Wallet::Credit => LedgerKind::StoreCredit,
        }
    }

    fn country(self) -> &'static str {
        match self {
            Wallet::Points => "RU",
            Wallet::Credit => "GB",
        }
    }

    fn currency(self) -> Currency {
        Currency::from_code(match self {
            Wallet::Points => "RUB",
            Wallet::Credit => "GBP",
        })
        .expect("a currency")
    }

    fn purse(self, member: &Member) -> &Purse {
        match self {
            Wallet::Points => &member.points,
            Wallet::Credit => &member.credit,
        }
    }

    /// A wallet amount (points, or minor units of credit) as a payment amount in
    /// minor units.
    fn payment_minor(self, amount: i64) -> i64 {
        match self {
            Wallet::Points => amount * self.currency().minor_per_major(),
            Wallet::Credit => amount,
        }
    }
}

// ---- time -----------------------------------------------------------------------------

/// 2024-01-01T00:00:00Z.
const BASE: i64 = 1_704_067_200;
const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn later(at: Timestamp, seconds: i64) -> Timestamp {
    at.checked_add(SignedDuration::from_secs(seconds)).expect("an instant in range")
}

// ---- scenarios ------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// `order.placed` without a hold: lines (quantity, line price in major units),
    /// the percentage of what may be paid from the wallet that is, and NOBONUS.
    Place {
        lines: Vec<(u32, u32)>,
        spend_pct: u8,
        no_bonus: bool,
    },
    Deliver {
        order: Index,
    },
    /// Time passes: orders mature, lots and holds expire.
    Wait {
        seconds: i64,
    },
    /// `checkout.held` for this percentage of what is free (over 100: refused), with
    /// an explicit expiry in minutes or the program's 30.
    Hold {
        pct: u8,
        minutes: Option<u16>,
        then: Option<Box<Then>>,
    },
    /// `order.placed` naming a hold (an open one when there is, else any), paying
    /// this percentage of what it holds, on a line of at least `price`.
    Commit {
        hold: Index,
        pay_pct: u8,
        price: u32,
    },
    Release {
        hold: Index,
    },
    /// The order or release following a hold (`Then`), naming it.
    CommitLast {
        pay_pct: u8,
        price: u32,
    },
    ReleaseLast,
    Return {
        order: Index,
        line: Index,
        quantity: Index,
    },
    Cancel {
        order: Index,
        line: Option<Index>,
    },
    /// `ledger.adjusted` credit, with an explicit expiry in days or the default.
    Grant {
        amount: u32,
        days: Option<u16>,
    },
    /// `ledger.adjusted` debit of this percentage of what is free (over 100: refused).
    Debit {
        pct: u8,
    },
}

/// What follows a hold, this many seconds later: its order, or its release.
#[derive(Clone, Debug)]
struct Then {
    after: i64,
    op: Op,
}

#[derive(Clone, Debug)]
struct Step {
    /// Seconds after the previous step.
    gap: i64,
    op: Op,
}

#[derive(Clone, Debug)]
struct Scenario {
    /// Perfone: a birth date (month, day) brings the yearly birthday bonus.
    birthday: Option<(i8, i8)>,
    steps: Vec<Step>,
}

fn op() -> impl Strategy<Value = Op> {
    let lines = vec((1u32..=3, 100u32..=30_000), 1..=3);
    prop_oneof![
        4 => (lines, prop_oneof![2 => Just(0u8), 3 => 1u8..=100], any::<bool>())
            .prop_map(|(lines, spend_pct, no_bonus)| Op::Place { lines, spend_pct, no_bonus }),
        4 => any::<Index>().prop_map(|order| Op::Deliver { order }),
        2 => prop_oneof![15 * DAY..60 * DAY, 60 * DAY..200 * DAY].prop_map(|seconds| Op::Wait { seconds }),
        4 => (prop_oneof![6 => 1u8..=100, 1 => 101u8..=150], prop::option::of(1u16..=240), prop::option::of(then()))
            .prop_map(|(pct, minutes, then)| Op::Hold { pct, minutes, then: then.map(Box::new) }),
        3 => (any::<Index>(), pay_pct(), 100u32..=20_000)
            .prop_map(|(hold, pay_pct, price)| Op::Commit { hold, pay_pct, price }),
        2 => any::<Index>().prop_map(|hold| Op::Release { hold }),
        2 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(order, line, quantity)| Op::Return { order, line, quantity }),
        1 => (any::<Index>(), prop::option::of(any::<Index>())).prop_map(|(order, line)| Op::Cancel { order, line }),
        3 => (1u32..=3_000, prop::option::weighted(0.7, prop_oneof![1u16..=30, 30u16..=400]))
            .prop_map(|(amount, days)| Op::Grant { amount, days }),
        1 => prop_oneof![5 => 1u8..=100, 1 => 101u8..=150].prop_map(|pct| Op::Debit { pct }),
    ]
}

fn pay_pct() -> impl Strategy<Value = u8> {
    prop_oneof![1 => Just(0u8), 1 => 1u8..=99, 4 => Just(100u8), 1 => 101u8..=150]
}

fn then() -> impl Strategy<Value = Then> {
    let op = prop_oneof![
        3 => (pay_pct(), 100u32..=20_000).prop_map(|(pay_pct, price)| Op::CommitLast { pay_pct, price }),
        1 => Just(Op::ReleaseLast),
    ];
    (1i64..=40 * MINUTE, op).prop_map(|(after, op)| Then { after, op })
}

fn step() -> impl Strategy<Value = Step> {
    let gap = prop_oneof![3 => 1i64..5 * MINUTE, 3 => 5 * MINUTE..3 * HOUR, 2 => HOUR..20 * DAY];
    (gap, op()).prop_map(|(gap, op)| Step { gap, op })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (prop::option::of((1i8..=12, 1i8..=28)), vec(step(), 10..=60))
        .prop_map(|(birthday, steps)| Scenario { birthday, steps })
}

/// `cases` cases (`PROPTEST_CASES` in the environment overrides it, for a long run),
/// nothing written to disk.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- rendering and running ------------------------------------------------------------

const MEMBER: &str = "m-wallet";

/// What the steps did, for the coverage check.
#[derive(Clone, Debug, Default)]
struct Stats {
    /// Accepted and refused events by step kind.
    accepted: BTreeMap<&'static str, usize>,
    refused: BTreeMap<&'static str, usize>,
    /// Holds by how they ended (at the last step).
    endings: BTreeMap<&'static str, usize>,
    /// Spends that took from more than one lot.
    multi_lot_spends: usize,
    /// `expired` entries in the available bucket.
    lot_expiries: usize,
    /// `given_back` entries.
    given_back: usize,
    /// Points that matured.
    matured: usize,
}

/// One member's events, decided one at a time as the service would.
struct Run {
    wallet: Wallet,
    program: &'static Program,
    sales: Sales,
    history: MemberHistory,
    seq: u64,
    next_id: u64,
    log: String,
    stats: Stats,
    /// The hold the last accepted `checkout.held` took.
    last_hold: Option<String>,
}

impl Run {
    fn new(wallet: Wallet) -> Run {
        Run {
            wallet,
            program: wallet.program(),
            sales: Sales::new(),
            history: MemberHistory::new(),
            seq: 0,
            next_id: 0,
            log: String::new(),
            stats: Stats::default(),
            last_hold: None,
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    /// Adds one event; whether it was accepted.
    fn add(&mut self, kind: &'static str, mut event: Value, at: Timestamp) -> bool {
        event["id"] = json!(self.fresh("e"));
        event["at"] = json!(at.to_string());
        event["program"] = json!(self.program.id);
        let text = event.to_string();
        let parsed = parse_event(&text).unwrap_or_else(|r| panic!("the test built an unparsable event ({r}): {text}"));
        self.seq += 1;
        let outcome = self.history.add(self.program, &self.sales, parsed, self.seq);
        let _ = match &outcome {
            Ok(_) => writeln!(self.log, "  {text}"),
            Err(r) => writeln!(self.log, "  {text}\n    refused: {r}"),
        };
        let counts = if outcome.is_ok() { &mut self.stats.accepted } else { &mut self.stats.refused };
        *counts.entry(kind).or_default() += 1;
        outcome.is_ok()
    }

    fn register(&mut self, birthday: Option<(i8, i8)>) -> Timestamp {
        let at = Timestamp::from_second(BASE).expect("BASE is an instant");
        let mut event = json!({"type": "member.registered", "member": MEMBER, "country": self.wallet.country()});
        if let (Some((month, day)), Wallet::Points) = (birthday, self.wallet) {
            event["birth_date"] = json!(format!("1990-{month:02}-{day:02}"));
        }
        assert!(self.add("register", event, at), "the registration is accepted");
        at
    }

    /// The member just before the events at `at` (time rules due before it run).
    fn state_before(&self, at: Timestamp) -> Member {
        let mut member = self.history.member().cloned().expect("the member is registered");
        member.advance(self.program, at, false);
        member
    }

    fn amount(&self, minor: i64) -> String {
        self.wallet.currency().format(Minor(minor))
    }

    /// An order of these lines (line totals in major units) paying `wallet` (points,
    /// or credit in minor units) from the wallet and the rest by card.
    fn order_event(&mut self, lines: &[(u32, u32)], wallet: i64, hold: Option<&str>, no_bonus: bool) -> Value {
        let per_major = self.wallet.currency().minor_per_major();
        let order = self.fresh("o");
        let mut goods = 0;
        let lines: Vec<Value> = lines
            .iter()
            .enumerate()
            .map(|(i, (quantity, price))| {
                let price = i64::from(*price) * per_major;
                goods += price;
                json!({
                    "line": format!("l{i}"),
                    "sku": format!("sku-{i}"),
                    "brand": "Gucci",
                    "category": "clothing",
                    "quantity": quantity,
                    "price": self.amount(price),
                })
            })
            .collect();
        let paid = self.wallet.payment_minor(wallet);
        let method = match self.wallet {
            Wallet::Points => "points",
            Wallet::Credit => "store_credit",
        };
        let mut payments = vec![json!({"method": "card", "amount": self.amount(goods - paid)})];
        if paid > 0 {
            payments.push(json!({"method": method, "amount": self.amount(paid)}));
        }
        let mut event = json!({
            "type": "order.placed",
            "member": MEMBER,
            "order": order,
            "currency": self.wallet.currency().code(),
            "lines": lines,
            "payments": payments,
        });
        if let Some(hold) = hold {
            event["hold"] = json!(hold);
        }
        if no_bonus && self.wallet == Wallet::Points {
            event["codes"] = json!(["NOBONUS"]);
        }
        event
    }

    fn last_hold(&self, member: &Member) -> Option<HoldState> {
        let id = self.last_hold.as_deref()?;
        member.holds.iter().find(|h| h.hold == id).cloned()
    }

    /// An order naming `hold`, paying `pay_pct` % of what it holds on a line of at
    /// least `price`: whether it was accepted, and what it paid from the wallet.
    fn commit(&mut self, hold: &HoldState, pay_pct: u8, price: u32, at: Timestamp) -> (bool, i64) {
        let per_major = self.wallet.currency().minor_per_major();
        let held = match self.wallet {
            Wallet::Points => hold.points,
            Wallet::Credit => hold.store_credit,
        };
        let paid = held * i64::from(pay_pct) / 100;
        // The line pays the wallet part within the program's limits.
        let least = match self.wallet {
            Wallet::Points => 2 * paid,
            Wallet::Credit => (paid + per_major - 1) / per_major,
        };
        let price = i64::from(price).max(least).max(1);
        let id = hold.hold.to_string();
        let event = self.order_event(&[(1, u32::try_from(price).expect("a price"))], paid, Some(&id), false);
        (self.add("commit", event, at), paid)
    }

    fn release(&mut self, hold: &HoldState, at: Timestamp) -> bool {
        let event = json!({"type": "checkout.released", "member": MEMBER, "hold": hold.hold.to_string()});
        self.add("release", event, at)
    }

    /// Renders and applies one step at `at`; checks the first-to-expire-first spend
    /// of an accepted event that pays from the wallet.
    fn step(&mut self, op: &Op, at: Timestamp) -> Result<(), String> {
        let before = self.state_before(at);
        let free = self.wallet.purse(&before).free();
        let per_major = self.wallet.currency().minor_per_major();
        // What an accepted event must take from the lots.
        let mut spends = 0;
        let accepted = match op {
            Op::Place { lines, spend_pct, no_bonus } => {
                let goods: i64 = lines.iter().map(|(_, p)| i64::from(*p)).sum();
                let most = match self.wallet {
                    Wallet::Points => free.min(goods / 2),
                    Wallet::Credit => free.min(goods * per_major),
                };
                spends = most.max(0) * i64::from(*spend_pct) / 100;
                let event = self.order_event(lines, spends, None, *no_bonus);
                self.add("place", event, at)
            }
            Op::Deliver { order } => {
                let undelivered: Vec<_> = before.orders.iter().filter(|o| o.delivered_at.is_none()).collect();
                if undelivered.is_empty() {
                    return Ok(());
                }
                let id = undelivered[order.index(undelivered.len())].order.to_string();
                self.add("deliver", json!({"type": "order.delivered", "order": id}), at)
            }
            Op::Wait { .. } => return Ok(()),
            Op::Hold { pct, minutes, .. } => {
                let amount = (free.max(0) * i64::from(*pct) / 100).max(1);
                let hold = self.fresh("h");
                let mut event = json!({"type": "checkout.held", "member": MEMBER, "hold": hold});
                match self.wallet {
                    Wallet::Points => event["points"] = json!(amount),
                    Wallet::Credit => {
                        event["store_credit"] = json!(self.amount(amount));
                        event["currency"] = json!(self.wallet.currency().code());
                    }
                }
                if let Some(minutes) = minutes {
                    event["expires_at"] = json!(later(at, i64::from(*minutes) * MINUTE).to_string());
                }
                let accepted = self.add("hold", event, at);
                self.last_hold = accepted.then_some(hold);
                accepted
            }
            Op::Commit { hold, pay_pct, price } => {
                let Some(chosen) = pick_hold(&before, at, hold) else { return Ok(()) };
                let (accepted, paid) = self.commit(&chosen, *pay_pct, *price, at);
                spends = paid;
                accepted
            }
            Op::Release { hold } => {
                let Some(chosen) = pick_hold(&before, at, hold) else { return Ok(()) };
                self.release(&chosen, at)
            }
            Op::CommitLast { pay_pct, price } => {
                let Some(chosen) = self.last_hold(&before) else { return Ok(()) };
                let (accepted, paid) = self.commit(&chosen, *pay_pct, *price, at);
                spends = paid;
                accepted
            }
            Op::ReleaseLast => {
                let Some(chosen) = self.last_hold(&before) else { return Ok(()) };
                self.release(&chosen, at)
            }
            Op::Return { order, line, quantity } => {
                if before.orders.is_empty() {
                    return Ok(());
                }
                let o = &before.orders[order.index(before.orders.len())];
                let l = &o.lines[line.index(o.lines.len())];
                let remaining = (l.quantity - l.removed_units).max(1) as usize;
                let event = json!({
                    "type": "order.returned",
                    "order": o.order.to_string(),
                    "lines": [{"line": l.line.to_string(), "quantity": quantity.index(remaining) + 1}],
                });
                self.add("return", event, at)
            }
            Op::Cancel { order, line } => {
                if before.orders.is_empty() {
                    return Ok(());
                }
                let o = &before.orders[order.index(before.orders.len())];
                let mut event = json!({"type": "order.cancelled", "order": o.order.to_string()});
                if let Some(line) = line {
                    event["lines"] = json!([{"line": o.lines[line.index(o.lines.len())].line.to_string()}]);
                }
                self.add("cancel", event, at)
            }
            Op::Grant { amount, days } => {
                let amount = i64::from(*amount);
                let mut event = json!({
                    "type": "ledger.adjusted",
                    "member": MEMBER,
                    "ledger": self.wallet.kind().as_str(),
                    "note": "goodwill",
                });
                match self.wallet {
                    Wallet::Points => event["amount"] = json!(amount.to_string()),
                    Wallet::Credit => {
                        event["amount"] = json!(self.amount(amount * 10));
                        event["currency"] = json!(self.wallet.currency().code());
                    }
                }
                if let Some(days) = days {
                    event["expires_at"] = json!(later(at, i64::from(*days) * DAY).to_string());
                }
                self.add("grant", event, at)
            }
            Op::Debit { pct } => {
                spends = (free.max(0) * i64::from(*pct) / 100).max(1);
                let mut event = json!({
                    "type": "ledger.adjusted",
                    "member": MEMBER,
                    "ledger": self.wallet.kind().as_str(),
                    "note": "correction",
                });
                match self.wallet {
                    Wallet::Points => event["amount"] = json!(format!("-{spends}")),
                    Wallet::Credit => {
                        event["amount"] = json!(format!("-{}", self.amount(spends)));
                        event["currency"] = json!(self.wallet.currency().code());
                    }
                }
                self.add("debit", event, at)
            }
        };
        if accepted && spends > 0 {
            let after = self.history.member().expect("the member is registered");
            let taken = suffix_spend(self.wallet.purse(&before), self.wallet.purse(after), spends)?;
            if taken > 1 {
                self.stats.multi_lot_spends += 1;
            }
        }
        Ok(())
    }
}

/// An open hold at `at` when there is one, else any hold (its order or release is
/// then refused).
fn pick_hold(member: &Member, at: Timestamp, index: &Index) -> Option<HoldState> {
    let open: Vec<_> = member.open_holds(at).collect();
    if open.is_empty() {
        (!member.holds.is_empty()).then(|| member.holds[index.index(member.holds.len())].clone())
    } else {
        Some(open[index.index(open.len())].clone())
    }
}

/// A spend of `amount` from `before` leaves `after`: the first lots emptied, the next
/// one perhaps cut, the later ones untouched; nothing else changed. Returns the
/// number of lots taken from.
fn suffix_spend(before: &Purse, after: &Purse, amount: i64) -> Result<usize, String> {
    let context = || format!("spending {amount}:\n  lots before {:?}\n  lots after  {:?}", before.lots, after.lots);
    if after.debt != before.debt || after.held < 0 {
        return Err(format!("a spend changed the debt or made the held amount negative; {}", context()));
    }
    let total = |lots: &[Lot]| lots.iter().map(|l| l.points).sum::<i64>();
    if total(&before.lots) - total(&after.lots) != amount {
        return Err(format!("the lots lost other than the amount spent; {}", context()));
    }
    let Some(emptied) = before.lots.len().checked_sub(after.lots.len()) else {
        return Err(format!("a spend added lots; {}", context()));
    };
    let Some((first, rest)) = after.lots.split_first() else {
        return Ok(emptied);
    };
    let cut = &before.lots[emptied];
    if first.expires_at != cut.expires_at || first.points > cut.points || rest != &before.lots[emptied + 1..] {
        return Err(format!(
            "the lots left are not what first-to-expire-first spending leaves (a later lot was taken before an \
             earlier one); {}",
            context()
        ));
    }
    Ok(emptied + usize::from(first.points < cut.points))
}

// ---- the invariants -------------------------------------------------------------------

/// A purse rebuilt from the ledger alone: expiry → amount, spent earliest expiry first.
#[derive(Debug, Default, PartialEq, Eq)]
struct Model {
    lots: BTreeMap<Timestamp, i64>,
    debt: i64,
}

impl Model {
    fn credit(&mut self, amount: i64, expires_at: Timestamp) {
        let paid = amount.min(self.debt);
        self.debt -= paid;
        if amount > paid {
            *self.lots.entry(expires_at).or_default() += amount - paid;
        }
    }

    /// Takes up to `amount` from the earliest-expiring lots; returns what it took.
    fn spend(&mut self, amount: i64) -> i64 {
        let mut left = amount;
        while left > 0 {
            let Some(mut lot) = self.lots.first_entry() else { break };
            let taken = (*lot.get()).min(left);
            *lot.get_mut() -= taken;
            left -= taken;
            if *lot.get() == 0 {
                lot.remove();
            }
        }
        amount - left
    }

    fn expire(&mut self, at: Timestamp) -> i64 {
        let keep = self.lots.split_off(&at.checked_add(SignedDuration::from_nanos(1)).expect("an instant in range"));
        let expired = std::mem::replace(&mut self.lots, keep);
        expired.values().sum()
    }

    fn of(purse: &Purse) -> Model {
        let mut lots = BTreeMap::new();
        for lot in &purse.lots {
            *lots.entry(lot.expires_at).or_default() += lot.points;
        }
        Model { lots, debt: purse.debt }
    }
}

fn describe(entry: &Entry) -> String {
    format!(
        "{} {} {} {} {:+} expires {:?} order {:?} hold {:?}",
        entry.at,
        entry.kind.as_str(),
        entry.bucket.as_str(),
        entry.reason.as_str(),
        entry.amount,
        entry.expires_at.map(|e| e.to_string()),
        entry.order.as_deref(),
        entry.hold.as_deref()
    )
}

/// The reasons each bucket may carry, and their sign (+1 credit, −1 debit, 0 either).
fn allowed(kind: LedgerKind, bucket: Bucket, reason: Reason) -> Option<i8> {
    use Reason::*;
    match (bucket, reason) {
        (Bucket::Pending, Earned) if kind == LedgerKind::Points => Some(1),
        (Bucket::Pending, Matured | BurnedOnReturn | Forfeited) if kind == LedgerKind::Points => Some(-1),
        (Bucket::Available, Matured | Birthday | BurnedOnReturn) if kind == LedgerKind::StoreCredit => None,
        (Bucket::Available, Matured | Birthday | GivenBack | PriceAdjustment) => Some(1),
        (Bucket::Available, Expired | Redeemed | BurnedOnReturn | Forfeited) => Some(-1),
        (Bucket::Available, ManualAdjustment) => Some(0),
        (Bucket::Held, Held) => Some(1),
        (Bucket::Held, Committed | Released | HoldExpired) => Some(-1),
        _ => None,
    }
}

/// Rebuilds a purse from its available entries, checking that no entry touches a lot
/// after its expiry and that every spend is covered.
fn rebuild(entries: &[&Entry], kind: LedgerKind) -> Result<Model, String> {
    let mut model = Model::default();
    for entry in entries.iter().filter(|e| e.kind == kind && e.bucket == Bucket::Available) {
        if let Some((expiry, amount)) = model.lots.first_key_value()
            && *expiry < entry.at
        {
            return Err(format!(
                "a lot of {amount} expiring at {expiry} is still there at the later entry {} (no expired entry \
                 removed it)",
                describe(entry)
            ));
        }
        match entry.reason {
            _ if entry.amount > 0 => {
                let Some(expires_at) = entry.expires_at else {
                    return Err(format!("a credit without an expiry: {}", describe(entry)));
                };
                if expires_at <= entry.at {
                    return Err(format!("a credit already expired: {}", describe(entry)));
                }
                model.credit(entry.amount, expires_at);
            }
            Reason::Expired => {
                let expired = model.expire(entry.at);
                if expired != -entry.amount {
                    return Err(format!(
                        "the lots expiring by then hold {expired}, not what the entry removes: {}",
                        describe(entry)
                    ));
                }
            }
            Reason::Redeemed | Reason::ManualAdjustment => {
                let taken = model.spend(-entry.amount);
                if taken != -entry.amount {
                    return Err(format!("the lots held only {taken} for the spend {}", describe(entry)));
                }
            }
            Reason::BurnedOnReturn => {
                let taken = model.spend(-entry.amount);
                model.debt += -entry.amount - taken;
            }
            Reason::Forfeited => model = Model::default(),
            _ => return Err(format!("no rule for this entry in the purse: {}", describe(entry))),
        }
    }
    Ok(model)
}

fn check(run: &Run, at: Timestamp, stats: &mut Stats) -> Result<(), String> {
    let program = run.program;
    let member = run.history.journaled(program, &run.sales, at).ok_or("no member at the instant")?;
    let ledger = member.ledger();
    let all: Vec<&Entry> = ledger.iter().collect();

    // Every balance is the sum of its bucket's entries; the document shows them.
    let points = |bucket| sum(ledger, LedgerKind::Points, bucket);
    let credit = |bucket| sum(ledger, LedgerKind::StoreCredit, bucket);
    let balances = [
        ("points.available", member.points.balance(), points(Bucket::Available)),
        ("points.pending", member.points_pending(), points(Bucket::Pending)),
        ("points.held", member.points.held, points(Bucket::Held)),
        ("store_credit.available", member.credit.balance(), credit(Bucket::Available)),
        ("store_credit.held", member.credit.held, credit(Bucket::Held)),
    ];
    for (name, balance, entries) in balances {
        if balance != entries {
            return Err(format!("{name} is {balance} but its entries sum to {entries}"));
        }
    }
    let document = member.document(program, at);
    if let Some(shown) = &document.points {
        let want = (member.points.balance(), member.points_pending(), member.points.held);
        if (shown.available, shown.pending, shown.held) != want {
            return Err(format!("the document shows points {shown:?}, the purse {want:?}"));
        }
    }
    if let (Some(shown), Some(currency)) = (&document.store_credit, member.currency) {
        let want = (currency.format(Minor(member.credit.balance())), currency.format(Minor(member.credit.held)));
        if (&shown.available, &shown.held) != (&want.0, &want.1) {
            return Err(format!("the document shows store credit {shown:?}, the purse {want:?}"));
        }
    }
    // The ledger is bookkeeping only: the member without it is the same.
    let plain = run.history.member_at(program, &run.sales, at).ok_or("no member at the instant")?;
    if plain.document(program, at) != document {
        return Err(format!(
            "the member recomputed with its ledger differs from the live one:\n  {:?}\n  {document:?}",
            plain.document(program, at)
        ));
    }

    // Entries: in time order, up to now, each reason in its bucket with its sign.
    for pair in ledger.windows(2) {
        if pair[1].at < pair[0].at {
            return Err(format!("entries out of order: {} then {}", describe(&pair[0]), describe(&pair[1])));
        }
    }
    for entry in ledger {
        if entry.at > at || entry.amount == 0 {
            return Err(format!("an entry after the instant or of zero: {}", describe(entry)));
        }
        let sign_ok = match allowed(entry.kind, entry.bucket, entry.reason) {
            Some(1) => entry.amount > 0,
            Some(-1) => entry.amount < 0,
            Some(_) => true,
            None => false,
        };
        if !sign_ok {
            return Err(format!("a reason in the wrong bucket or with the wrong sign: {}", describe(entry)));
        }
    }
    // Maturing moves points from pending to available, creating nothing.
    let matured: i64 =
        ledger.iter().filter(|e| e.kind == LedgerKind::Points && e.reason == Reason::Matured).map(|e| e.amount).sum();
    if matured != 0 {
        return Err(format!("matured entries sum to {matured}: maturing created or destroyed points"));
    }

    // The entries explain the lots, spent first-to-expire first.
    for (kind, purse) in [(LedgerKind::Points, &member.points), (LedgerKind::StoreCredit, &member.credit)] {
        let name = kind.as_str();
        if purse.lots.windows(2).any(|w| w[1].expires_at < w[0].expires_at) {
            return Err(format!("{name}: lots not sorted by expiry: {:?}", purse.lots));
        }
        if purse.lots.iter().any(|l| l.points <= 0 || l.expires_at <= at) {
            return Err(format!("{name}: an empty or expired lot at {at}: {:?}", purse.lots));
        }
        if purse.debt < 0 || (purse.debt > 0 && !purse.lots.is_empty()) {
            return Err(format!("{name}: debt {} beside lots {:?}", purse.debt, purse.lots));
        }
        let model = rebuild(&all, kind).map_err(|e| format!("{name}: {e}"))?;
        if model != Model::of(purse) {
            return Err(format!(
                "{name}: the ledger explains lots {:?} and debt {}, the purse holds {:?} and debt {}",
                model.lots, model.debt, purse.lots, purse.debt
            ));
        }
    }

    // Holds: each ends at most once, with one ending entry of its reason.
    let (mut open_points, mut open_credit) = (0, 0);
    for hold in &member.holds {
        let id = hold.hold.as_str();
        let context = || format!("hold {id} {:?}", hold);
        match hold.status {
            HoldStatus::Open => {
                if hold.expires_at <= at || hold.ended_at.is_some() || hold.order.is_some() {
                    return Err(format!("{} is open at {at}", context()));
                }
                open_points += hold.points;
                open_credit += hold.store_credit;
            }
            HoldStatus::Expired => {
                if hold.ended_at != Some(hold.expires_at) || hold.order.is_some() {
                    return Err(format!("{} did not expire at its expiry", context()));
                }
            }
            HoldStatus::Released => {
                if hold.ended_at.is_none_or(|e| e >= hold.expires_at) || hold.order.is_some() {
                    return Err(format!("{} was released at or after its expiry", context()));
                }
            }
            HoldStatus::Committed => {
                let ended = hold.ended_at.ok_or_else(|| format!("{} committed with no instant", context()))?;
                let order = hold.order.as_deref().ok_or_else(|| format!("{} committed by no order", context()))?;
                let placed = member.orders.iter().find(|o| o.order == order).map(|o| o.placed_at.get());
                if ended >= hold.expires_at || placed != Some(ended) {
                    return Err(format!("{} was not committed by an order placed before its expiry", context()));
                }
            }
        }
        for (kind, amount) in [(LedgerKind::Points, hold.points), (LedgerKind::StoreCredit, hold.store_credit)] {
            let mine: Vec<&Entry> = ledger.iter().filter(|e| e.kind == kind && e.hold.as_deref() == Some(id)).collect();
            let show = || mine.iter().map(|e| describe(e)).collect::<Vec<_>>().join("\n    ");
            if mine.iter().any(|e| e.bucket != Bucket::Held) {
                return Err(format!("{}: an entry outside the held bucket:\n    {}", context(), show()));
            }
            let starts: Vec<_> = mine.iter().filter(|e| e.reason == Reason::Held).collect();
            let ends: Vec<_> = mine.iter().filter(|e| e.reason != Reason::Held).collect();
            let ending = match hold.status {
                HoldStatus::Open => None,
                HoldStatus::Committed => Some(Reason::Committed),
                HoldStatus::Released => Some(Reason::Released),
                HoldStatus::Expired => Some(Reason::HoldExpired),
            };
            let fine = if amount == 0 {
                mine.is_empty()
            } else {
                starts.len() == 1
                    && starts[0].amount == amount
                    && starts[0].at == hold.at
                    && match ending {
                        None => ends.is_empty(),
                        Some(reason) => {
                            ends.len() == 1
                                && ends[0].reason == reason
                                && ends[0].amount == -amount
                                && Some(ends[0].at) == hold.ended_at
                        }
                    }
            };
            if !fine {
                return Err(format!(
                    "{}: its {} entries are not one hold and one ending of its status:\n    {}",
                    context(),
                    kind.as_str(),
                    show()
                ));
            }
        }
    }
    if (open_points, open_credit) != (member.points.held, member.credit.held) {
        return Err(format!(
            "open holds reserve {open_points} points and {open_credit} credit, the purses hold {} and {}",
            member.points.held, member.credit.held
        ));
    }
    // Σ held − Σ (committed + released + hold_expired) = what is held now.
    for (kind, held) in [(LedgerKind::Points, member.points.held), (LedgerKind::StoreCredit, member.credit.held)] {
        let by = |reasons: &[Reason]| -> i64 {
            ledger.iter().filter(|e| e.kind == kind && reasons.contains(&e.reason)).map(|e| e.amount).sum()
        };
        let taken = by(&[Reason::Held]);
        let ended = -by(&[Reason::Committed, Reason::Released, Reason::HoldExpired]);
        if taken - ended != held {
            return Err(format!("{}: held {taken} − ended {ended} is not the {held} held", kind.as_str()));
        }
        if ledger.iter().any(|e| e.kind == kind && e.bucket == Bucket::Held && e.hold.is_none()) {
            return Err(format!("{}: a held entry naming no hold", kind.as_str()));
        }
    }

    // Orders: what they paid and earned is what their entries say.
    for order in &member.orders {
        let id = order.order.as_str();
        let of = |kind: LedgerKind, reasons: &[Reason]| -> i64 {
            ledger
                .iter()
                .filter(|e| e.kind == kind && e.order.as_deref() == Some(id) && reasons.contains(&e.reason))
                .map(|e| e.amount)
                .sum()
        };
        let paid = |f: fn(&palier_core::member::LineLedger) -> i64| -> i64 {
            order.lines.iter().filter_map(|l| l.ledger.as_deref()).map(f).sum()
        };
        let redeemed = paid(|p| p.redeemed);
        let credit_paid = paid(|p| p.credit);
        let earned: i64 = order.lines.iter().map(|l| l.points).sum();
        let burned: i64 = order.lines.iter().map(|l| l.points_removed()).sum();
        let checks = [
            ("points redeemed", -of(LedgerKind::Points, &[Reason::Redeemed]), redeemed),
            ("credit redeemed", -of(LedgerKind::StoreCredit, &[Reason::Redeemed]), credit_paid),
            ("points earned", of(LedgerKind::Points, &[Reason::Earned]), earned),
            ("points burned on return", -of(LedgerKind::Points, &[Reason::BurnedOnReturn]), burned),
        ];
        for (what, entries, state) in checks {
            if entries != state {
                return Err(format!("order {id}: {what}: the entries say {entries}, the order {state}"));
            }
        }
        let back_points = of(LedgerKind::Points, &[Reason::GivenBack]);
        let back_credit = of(LedgerKind::StoreCredit, &[Reason::GivenBack]);
        let removed_points = paid(|p| p.redeemed_removed);
        let removed_credit = paid(|p| p.credit_removed);
        if back_points > removed_points || back_credit > removed_credit {
            return Err(format!(
                "order {id}: gave back {back_points} points and {back_credit} credit, more than the {removed_points} \
                 and {removed_credit} its removed units paid"
            ));
        }
    }

    stats.endings.clear();
    for hold in &member.holds {
        *stats.endings.entry(hold.status.as_str()).or_default() += 1;
    }
    let count = |reason| ledger.iter().filter(|e| e.bucket == Bucket::Available && e.reason == reason).count();
    stats.lot_expiries = count(Reason::Expired);
    stats.given_back = count(Reason::GivenBack);
    stats.matured = count(Reason::Matured);
    Ok(())
}

/// Runs a scenario, checking after every step; the stats of what it did.
fn run(wallet: Wallet, scenario: &Scenario) -> Result<Stats, String> {
    let mut run = Run::new(wallet);
    let mut at = run.register(scenario.birthday);
    let mut stats = Stats::default();
    for (index, step) in scenario.steps.iter().enumerate() {
        at = later(at, step.gap);
        if let Op::Wait { seconds } = step.op {
            at = later(at, seconds);
        }
        let _ = writeln!(run.log, "step {index} at {at}: {:?}", step.op);
        let checked = run.step(&step.op, at).and_then(|()| check(&run, at, &mut stats));
        if let Err(problem) = checked {
            return Err(format!("{wallet:?}, step {index} at {at}: {problem}\nthe steps:\n{}", run.log));
        }
        if let Op::Hold { then: Some(then), .. } = &step.op {
            at = later(at, then.after);
            let _ = writeln!(run.log, "step {index}, then at {at}: {:?}", then.op);
            let checked = run.step(&then.op, at).and_then(|()| check(&run, at, &mut stats));
            if let Err(problem) = checked {
                return Err(format!("{wallet:?}, step {index} (then) at {at}: {problem}\nthe steps:\n{}", run.log));
            }
        }
    }
    stats.accepted = run.stats.accepted;
    stats.refused = run.stats.refused;
    stats.multi_lot_spends = run.stats.multi_lot_spends;
    Ok(stats)
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn perfone_points_ledger_explains_every_balance(scenario in scenario()) {
        run(Wallet::Points, &scenario).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn net_a_porter_store_credit_ledger_explains_every_balance(scenario in scenario()) {
        run(Wallet::Credit, &scenario).map_err(TestCaseError::fail)?;
    }
}

/// The scenarios are not vacuous: over a fixed sample, every kind of step is
/// accepted, holds end in each of the three ways, lots expire, spends cross lots and
/// refunds give value back.
#[test]
fn scenarios_reach_every_wallet_rule() {
    for wallet in [Wallet::Points, Wallet::Credit] {
        let mut runner = TestRunner::deterministic();
        let mut total = Stats::default();
        for _ in 0..24 {
            let scenario = scenario().new_tree(&mut runner).expect("a scenario").current();
            let stats = run(wallet, &scenario).unwrap_or_else(|e| panic!("{e}"));
            for (kind, count) in stats.accepted {
                *total.accepted.entry(kind).or_default() += count;
            }
            for (kind, count) in stats.refused {
                *total.refused.entry(kind).or_default() += count;
            }
            for (ending, count) in stats.endings {
                *total.endings.entry(ending).or_default() += count;
            }
            total.multi_lot_spends += stats.multi_lot_spends;
            total.lot_expiries += stats.lot_expiries;
            total.given_back += stats.given_back;
            total.matured += stats.matured;
        }
        for kind in ["place", "deliver", "hold", "commit", "release", "return", "cancel", "grant", "debit"] {
            assert!(total.accepted.get(kind).is_some_and(|n| *n > 0), "{wallet:?}: no {kind} accepted: {total:?}");
        }
        for kind in ["hold", "commit", "debit"] {
            assert!(total.refused.get(kind).is_some_and(|n| *n > 0), "{wallet:?}: no {kind} refused: {total:?}");
        }
        for ending in ["committed", "released", "expired"] {
            assert!(total.endings.get(ending).is_some_and(|n| *n > 0), "{wallet:?}: no hold {ending}: {total:?}");
        }
        assert!(total.multi_lot_spends > 0, "{wallet:?}: no spend crossed lots: {total:?}");
        assert!(total.lot_expiries > 0, "{wallet:?}: no lot expired: {total:?}");
        assert!(total.given_back > 0, "{wallet:?}: nothing given back: {total:?}");
        if wallet == Wallet::Points {
            assert!(total.matured > 0, "{wallet:?}: no points matured: {total:?}");
        }
    }
}

/// A refused event changes nothing (contract.md; `MemberHistory`: "the state is
/// therefore always exactly the in-order fold of the accepted events"): an order
/// naming a hold after its expiry is refused `hold_expired` (docs/wallet.md), and the
/// member at any earlier instant is still what the accepted events make it, the hold
/// open, so its release before the expiry is accepted (as `palier replay` of the
/// accepted events and the release accepts it).
#[test]
fn a_refused_later_event_does_not_move_the_member_in_time() {
    let program = perfone();
    let sales = Sales::new();
    let mut history = MemberHistory::new();
    let event = |text: Value| parse_event(&text.to_string()).expect("a valid event");
    let base = json!({"program": "perfone", "member": MEMBER});
    let with = |mut fields: Value| {
        for (key, value) in base.as_object().expect("an object") {
            fields[key] = value.clone();
        }
        event(fields)
    };
    let accepted = [
        with(json!({"id": "e-1", "type": "member.registered", "at": "2025-03-01T09:00:00Z", "country": "RU"})),
        with(json!({"id": "e-2", "type": "ledger.adjusted", "at": "2025-03-01T10:00:00Z", "ledger": "points",
                    "amount": "1000", "note": "goodwill"})),
        with(json!({"id": "e-3", "type": "checkout.held", "at": "2025-03-02T10:00:00Z", "hold": "h-1", "points": 100})),
    ];
    for (seq, e) in accepted.into_iter().enumerate() {
        history.add(program, &sales, e, seq as u64).expect("accepted");
    }
    let late_order = with(json!({
        "id": "e-4", "type": "order.placed", "at": "2025-03-02T10:31:00Z", "order": "o-1", "currency": "RUB",
        "hold": "h-1",
        "lines": [{"line": "l-1", "sku": "sku-1", "brand": "Perfect One", "category": "clothing", "quantity": 1,
                   "price": "2000.00"}],
        "payments": [{"method": "points", "amount": "100.00"}, {"method": "card", "amount": "1900.00"}],
    }));
    let refused = history.add(program, &sales, late_order, 4).expect_err("an order after the hold's expiry");
    assert_eq!(refused.code.as_str(), "hold_expired", "{refused}");

    let at: Timestamp = "2025-03-02T10:10:00Z".parse().expect("an instant");
    let fold = history.journaled(program, &sales, at).expect("the member");
    assert_eq!(fold.holds[0].status, HoldStatus::Open, "the fold of the accepted events: h-1 open at 10:10");
    let live = history.member_at(program, &sales, at).expect("the member");
    let live = (live.holds[0].status, live.points.held);
    let release = with(json!({"id": "e-5", "type": "checkout.released", "at": "2025-03-02T10:10:00Z", "hold": "h-1"}));
    let released = history.add(program, &sales, release, 5).map_err(|r| r.to_string());
    assert_eq!(
        (live, released),
        ((HoldStatus::Open, 100), Ok(palier_core::history::Added::InOrder)),
        "after the refused 10:31 order, the member at 10:10 must still have h-1 open holding 100 points, and its \
         release at 10:10 must be accepted"
    );
}
