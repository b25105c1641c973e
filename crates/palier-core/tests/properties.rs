//! Property tests of the core.
//!
//! A replay is a pure function of the events: the file order of lines with distinct
//! instants, an exact duplicate of a line and stopping half-way (`advance_all`, then
//! more events) never change what it prints. Value splits are exact (programs.md §0,
//! §7.4; decisions D1), and no input line, however broken, makes the engine panic.
//!
//! The event streams are built from an abstract [`Scenario`] (members, orders, their
//! deliveries, returns and cancellations) rendered against each shipped program file.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};
use palier_core::member::returns_window_close;
use palier_core::money::{Currency, Minor};
use palier_core::replay::ReplayOutput;
use palier_core::split::{partial_share, split_pro_rata};
use palier_core::stream::stream_slice_in_pieces;
use palier_core::{Engine, Program, RejectCode, Replay, parse_event, replay};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Value, json};

// ---- programs -------------------------------------------------------------------------

const NET_A_PORTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../programs/net-a-porter.toml");
const MR_PORTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../programs/mr-porter.toml");
const PERFONE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../programs/perfone.toml");

/// The three shipped programs, loaded once.
fn programs() -> &'static [Program] {
    static PROGRAMS: OnceLock<Vec<Program>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        [NET_A_PORTER, MR_PORTER, PERFONE]
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap();
                let program = Program::parse(path, &text).unwrap();
                for country in countries(&program).0 {
                    assert!(program.currency_of(country).is_some(), "{}: {country} has no currency", program.id);
                }
                program
            })
            .collect()
    })
}

/// Countries the program counts spend in, and a few it does not (ineligible).
fn countries(program: &Program) -> (&'static [&'static str], &'static [&'static str]) {
    match program.id.as_str() {
        "net-a-porter" => (&["GB", "FR", "US", "KW", "AU", "HK", "DE", "JP"], &["ZZ", "RU"]),
        "mr-porter" => (&["GB", "FR", "US", "JP", "DE"], &["RU", "CN", "AU"]),
        _ => (&["RU"], &["FR", "ZZ"]),
    }
}

/// The member's reward currency, or the program's first one for a member with none.
fn member_currency(program: &Program, country: &str) -> Currency {
    program.currency_of(country).unwrap_or(program.currencies[0])
}

/// The lowest positive threshold in `currency`: line prices are drawn around it.
fn scale(program: &Program, currency: Currency) -> i64 {
    program
        .tiers
        .iter()
        .filter_map(|tier| tier.thresholds.get(&currency))
        .map(|threshold| threshold.0)
        .filter(|threshold| *threshold > 0)
        .min()
        .unwrap_or(300_000)
}

// ---- time -----------------------------------------------------------------------------

/// 2024-01-01T00:00:00Z.
const BASE: i64 = 1_704_067_200;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// About three years.
const SPAN: i64 = 3 * 365 * DAY;

fn instant(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

fn later(at: Timestamp, seconds: i64) -> Timestamp {
    at.checked_add(SignedDuration::from_secs(seconds)).unwrap()
}

/// The `months`-th first-of-month 00:00 (program time) at or after `from`.
fn month_start(program: &Program, from: Timestamp, months: u8) -> Timestamp {
    let calendar = &program.calendar;
    let mut at = calendar.month_start_at_or_after(from);
    for _ in 0..months {
        at = calendar.month_start_at_or_after(later(at, 1));
    }
    at
}

/// An instant relative to a reference: some seconds later, on a month start, or on
/// the order's returns window close (and the application instants after it).
#[derive(Clone, Debug)]
enum When {
    After(i64),
    MonthStart { months: u8, adjust: i8 },
    WindowClose { months: u8, adjust: i8 },
}

/// Resolves `when` against `reference`; never earlier than `reference`.
fn resolve(program: &Program, when: &When, reference: Timestamp, window: Option<Timestamp>) -> Timestamp {
    let at = match *when {
        When::After(seconds) => later(reference, seconds),
        When::MonthStart { months, adjust } => later(month_start(program, reference, months), adjust.into()),
        When::WindowClose { months, adjust } => match window {
            None => reference,
            Some(close) if months == 0 => later(close, adjust.into()),
            Some(close) => later(month_start(program, close, months - 1), adjust.into()),
        },
    };
    at.max(reference)
}

// ---- scenarios ------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Scenario {
    members: Vec<MemberSpec>,
    orders: Vec<OrderSpec>,
    /// Instants with various offsets, and `program` named on some events.
    styled: bool,
}

#[derive(Clone, Debug)]
struct MemberSpec {
    country: Index,
    ineligible: bool,
    staff: bool,
    /// Seconds after [`BASE`].
    registered: i64,
    birth: Option<(i16, i8, i8)>,
    changes: Vec<MemberChange>,
}

#[derive(Clone, Debug)]
struct MemberChange {
    /// Seconds after the registration.
    after: i64,
    kind: ChangeKind,
}

#[derive(Clone, Debug)]
enum ChangeKind {
    Suspend { reinstate_after: Option<i64> },
    Close,
    OptOut,
    Update { country: Option<Index>, birth: Option<(i16, i8, i8)> },
}

#[derive(Clone, Debug)]
struct LineSpec {
    quantity: u32,
    /// Millionths of the program's lowest threshold.
    price: u32,
    discount_pct: u8,
    tax_pct: u8,
    on_sale: bool,
}

#[derive(Clone, Debug)]
struct OrderSpec {
    member: Index,
    /// Relative to the member's registration.
    placed: When,
    lines: Vec<LineSpec>,
    /// Hundredths of a major unit.
    delivery: u32,
    duties: u32,
    gift_permille: u16,
    split_card: bool,
    /// Whole major units asked in points (capped at half the goods value).
    points: Option<u32>,
    no_bonus: bool,
    wrong_currency: bool,
    channel: u8,
    /// Relative to the placement.
    delivered: Option<When>,
    redeliver: bool,
    removals: Removals,
}

/// Returns and cancellations of an order: its units cut in pieces (`sizes`), the
/// pieces grouped into events (`merge`), each a return or a cancellation (`kinds`).
#[derive(Clone, Debug)]
struct Removals {
    sizes: Vec<u32>,
    merge: Vec<bool>,
    kinds: Vec<u8>,
    /// Each event relative to the previous one (the first: to the placement).
    gaps: Vec<When>,
    /// Without `full`, only this many pieces are removed.
    keep: Index,
    full: bool,
    /// The last event is a bare `order.cancelled` (every remaining unit).
    whole_last: bool,
    /// One more unit returned at the end (over-return when `full`).
    over: bool,
}

fn birth() -> impl Strategy<Value = (i16, i8, i8)> {
    (1950i16..1990, 1i8..=12, 1i8..=31)
}

fn member_change(tame: bool) -> BoxedStrategy<MemberChange> {
    let suspend = prop::option::weighted(0.7, HOUR..200 * DAY)
        .prop_map(|reinstate_after| ChangeKind::Suspend { reinstate_after });
    let kind = if tame {
        prop_oneof![3 => suspend, 1 => Just(ChangeKind::Close), 1 => Just(ChangeKind::OptOut)].boxed()
    } else {
        let update = (prop::option::of(any::<Index>()), prop::option::of(birth()))
            .prop_map(|(country, birth)| ChangeKind::Update { country, birth });
        prop_oneof![3 => suspend, 1 => Just(ChangeKind::Close), 1 => Just(ChangeKind::OptOut), 3 => update].boxed()
    };
    (0..SPAN, kind).prop_map(|(after, kind)| MemberChange { after, kind }).boxed()
}

fn member_spec(tame: bool) -> impl Strategy<Value = MemberSpec> {
    (
        any::<Index>(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.05),
        0..60 * DAY,
        prop::option::weighted(0.5, birth()),
        prop_oneof![3 => Just(Vec::new()), 1 => vec(member_change(tame), 1..=2)],
    )
        .prop_map(|(country, ineligible, staff, registered, birth, changes)| MemberSpec {
            country,
            ineligible,
            staff,
            registered,
            birth,
            changes,
        })
}

fn line_spec() -> impl Strategy<Value = LineSpec> {
    (
        1u32..=4,
        prop_oneof![6 => 0u32..=1_200_000, 2 => 0u32..=4_000_000, 1 => 0u32..=200],
        prop_oneof![3 => Just(0u8), 1 => 0u8..=100],
        prop_oneof![2 => Just(0u8), 3 => 0u8..=25, 1 => Just(100u8)],
        any::<bool>(),
    )
        .prop_map(|(quantity, price, discount_pct, tax_pct, on_sale)| LineSpec {
            quantity,
            price,
            discount_pct,
            tax_pct,
            on_sale,
        })
}

fn gap() -> impl Strategy<Value = When> {
    prop_oneof![
        6 => (0..90 * DAY).prop_map(When::After),
        1 => (0u8..3, -1i8..=1).prop_map(|(months, adjust)| When::MonthStart { months, adjust }),
        2 => (0u8..3, -1i8..=1).prop_map(|(months, adjust)| When::WindowClose { months, adjust }),
    ]
}

fn removals(full: Option<bool>) -> impl Strategy<Value = Removals> {
    let full = match full {
        Some(full) => Just(full).boxed(),
        None => prop::bool::weighted(0.4).boxed(),
    };
    (
        vec(any::<u32>(), 1..6),
        vec(any::<bool>(), 1..4),
        vec(any::<u8>(), 1..4),
        vec(gap(), 1..4),
        any::<Index>(),
        full,
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(sizes, merge, kinds, gaps, keep, full, whole_last, over)| Removals {
            sizes,
            merge,
            kinds,
            gaps,
            keep,
            full,
            whole_last,
            over,
        })
}

fn order_spec(tame: bool) -> impl Strategy<Value = OrderSpec> {
    let placed = prop_oneof![
        4 => (0..SPAN).prop_map(When::After),
        1 => (0u8..36, -1i8..=1).prop_map(|(months, adjust)| When::MonthStart { months, adjust }),
    ];
    let delivered = prop_oneof![
        5 => (HOUR..30 * DAY).prop_map(When::After),
        1 => (0u8..2, -1i8..=1).prop_map(|(months, adjust)| When::MonthStart { months, adjust }),
    ];
    let points = if tame { Just(None).boxed() } else { prop::option::weighted(0.25, 1u32..=3_000).boxed() };
    let wrong_currency = if tame { Just(false).boxed() } else { prop::bool::weighted(0.05).boxed() };
    let money = (
        vec(line_spec(), 1..=4),
        0u32..=5_000,
        prop_oneof![3 => Just(0u32), 1 => 0u32..=20_000],
        prop_oneof![2 => Just(0u16), 1 => 0u16..=1000],
        any::<bool>(),
        points,
    );
    let rest = (
        prop::bool::weighted(0.15),
        wrong_currency,
        0u8..3,
        prop::option::weighted(0.85, delivered),
        prop::bool::weighted(0.05),
        removals(None),
    );
    (any::<Index>(), placed, money, rest).prop_map(
        |(
            member,
            placed,
            (lines, delivery, duties, gift_permille, split_card, points),
            (no_bonus, wrong_currency, channel, delivered, redeliver, removals),
        )| OrderSpec {
            member,
            placed,
            lines,
            delivery,
            duties,
            gift_permille,
            split_card,
            points,
            no_bonus,
            wrong_currency,
            channel,
            delivered,
            redeliver,
            removals,
        },
    )
}

fn scenario(tame: bool, orders: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Scenario> {
    (vec(member_spec(tame), 1..=3), vec(order_spec(tame), orders), any::<bool>())
        .prop_map(|(members, orders, styled)| Scenario { members, orders, styled })
}

// ---- rendering ------------------------------------------------------------------------

fn date_text(birth: (i16, i8, i8)) -> String {
    let (year, month, day) = birth;
    palier_core::calendar::Calendar::clamped_date(year, month, day).unwrap().to_string()
}

/// One `order.returned` / `order.cancelled` event of a removal plan.
struct Removal {
    cancel: bool,
    /// `None`: a bare cancellation of every remaining unit. Else (line, quantity,
    /// written as a bare line id).
    parts: Option<Vec<(usize, u32, bool)>>,
}

fn plan_removals(quantities: &[u32], plan: &Removals) -> Vec<Removal> {
    // Cut every line's units in pieces, the lines in turn.
    let mut left: Vec<u32> = quantities.to_vec();
    let mut pieces: Vec<(usize, u32)> = Vec::new();
    let mut k = 0;
    while left.iter().any(|q| *q > 0) {
        for (line, remaining) in left.iter_mut().enumerate() {
            if *remaining == 0 {
                continue;
            }
            let take = 1 + plan.sizes[k % plan.sizes.len()] % *remaining;
            k += 1;
            pieces.push((line, take));
            *remaining -= take;
        }
    }
    if !plan.full {
        pieces.truncate(plan.keep.index(pieces.len() + 1));
    }
    let mut groups: Vec<Vec<(usize, u32)>> = Vec::new();
    for (k, piece) in pieces.into_iter().enumerate() {
        let join =
            plan.merge[k % plan.merge.len()] && groups.last().is_some_and(|group| group.iter().all(|p| p.0 != piece.0));
        match groups.last_mut() {
            Some(group) if join => group.push(piece),
            _ => groups.push(vec![piece]),
        }
    }
    let mut remaining: Vec<u32> = quantities.to_vec();
    let count = groups.len();
    let mut events = Vec::new();
    for (g, group) in groups.into_iter().enumerate() {
        let kind = plan.kinds[g % plan.kinds.len()];
        let cancel = kind % 3 == 2;
        if plan.full && plan.whole_last && g + 1 == count {
            events.push(Removal { cancel: true, parts: None });
            continue;
        }
        let parts = group
            .into_iter()
            .map(|(line, quantity)| {
                let bare = cancel && kind >= 128 && quantity == remaining[line];
                remaining[line] -= quantity;
                (line, quantity, bare)
            })
            .collect();
        events.push(Removal { cancel, parts: Some(parts) });
    }
    if plan.over {
        events.push(Removal { cancel: false, parts: Some(vec![(0, 1, false)]) });
    }
    events
}

/// Renders a scenario as JSON Lines for `program`, sorted by `at` (all distinct),
/// leaving out the order `skip` (and its events).
fn render(program: &Program, scenario: &Scenario, skip: Option<usize>) -> Vec<String> {
    let (good, bad) = countries(program);
    let mut events: Vec<(Timestamp, Value)> = Vec::new();
    let mut members: Vec<(String, Timestamp, Currency)> = Vec::new();
    for (i, spec) in scenario.members.iter().enumerate() {
        let id = format!("m-{i}");
        let country =
            if spec.ineligible { bad[spec.country.index(bad.len())] } else { good[spec.country.index(good.len())] };
        let at = instant(BASE + spec.registered);
        let mut event = json!({"type": "member.registered", "member": id, "country": country});
        if let Some(birth) = spec.birth {
            event["birth_date"] = json!(date_text(birth));
        }
        if spec.staff {
            event["staff"] = json!(true);
        }
        events.push((at, event));
        for change in &spec.changes {
            let when = later(at, change.after);
            match &change.kind {
                ChangeKind::Suspend { reinstate_after } => {
                    events.push((when, json!({"type": "member.suspended", "member": id})));
                    if let Some(after) = reinstate_after {
                        events.push((later(when, *after), json!({"type": "member.reinstated", "member": id})));
                    }
                }
                ChangeKind::Close => events.push((when, json!({"type": "member.closed", "member": id}))),
                ChangeKind::OptOut => events.push((when, json!({"type": "member.opted_out", "member": id}))),
                ChangeKind::Update { country, birth } => {
                    let mut event = json!({"type": "member.updated", "member": id});
                    if let Some(country) = country {
                        event["country"] = json!(good[country.index(good.len())]);
                    }
                    if let Some(birth) = birth {
                        event["birth_date"] = json!(date_text(*birth));
                    }
                    events.push((when, event));
                }
            }
        }
        members.push((id, at, member_currency(program, country)));
    }

    for (j, spec) in scenario.orders.iter().enumerate() {
        if skip == Some(j) {
            continue;
        }
        let order = format!("o-{j}");
        let (member, registered, currency) = &members[spec.member.index(members.len())];
        let currency = if spec.wrong_currency {
            Currency::from_code(if currency.code() == "EUR" { "USD" } else { "EUR" }).unwrap()
        } else {
            *currency
        };
        let format = |amount: i64| currency.format(Minor(amount));
        let per_major = currency.minor_per_major();
        let scale = scale(program, currency);
        let placed_at = resolve(program, &spec.placed, *registered, None);

        let mut goods = 0;
        let mut lines = Vec::new();
        for (k, line) in spec.lines.iter().enumerate() {
            let price = (i128::from(line.price) * i128::from(scale) / 1_000_000) as i64;
            let discount = price * i64::from(line.discount_pct) / 100;
            let tax = (price - discount) * i64::from(line.tax_pct) / 100;
            goods += price - discount;
            lines.push(json!({
                "line": format!("l-{k}"),
                "sku": format!("sku-{j}-{k}"),
                "brand": "Brand",
                "category": "bags",
                "quantity": line.quantity,
                "price": format(price),
                "discount": format(discount),
                "tax": format(tax),
                "on_sale": line.on_sale,
            }));
        }
        let delivery = i64::from(spec.delivery) * per_major / 100;
        let duties = i64::from(spec.duties) * per_major / 100;
        let due = goods + delivery + duties;
        // Points only where the program has them, but for a rare order (points_not_accepted).
        let asked = spec.points.filter(|asked| program.points.is_some() || asked % 8 == 0);
        let points = asked.map_or(0, |asked| i64::from(asked).min(goods / (2 * per_major))) * per_major;
        let rest = due - points;
        let gift = rest * i64::from(spec.gift_permille) / 1000;
        let mut card = rest - gift;
        let paypal = if spec.split_card { card / 3 } else { 0 };
        card -= paypal;
        let mut payments = vec![json!({"method": "card", "amount": format(card)})];
        for (method, amount) in [("paypal", paypal), ("gift_voucher", gift), ("points", points)] {
            if amount > 0 {
                payments.push(json!({"method": method, "amount": format(amount)}));
            }
        }
        let channel = ["web", "app", "store"][usize::from(spec.channel % 3)];
        let mut event = json!({
            "type": "order.placed",
            "member": member,
            "order": order,
            "currency": currency.code(),
            "channel": channel,
            "lines": lines,
            "delivery": format(delivery),
            "payments": payments,
        });
        if duties > 0 {
            event["duties"] = json!(format(duties));
        }
        // NOBONUS is a code of Perfone's file only: elsewhere it is refused (unknown_code).
        if spec.no_bonus && program.code("NOBONUS").is_some() {
            event["codes"] = json!(["NOBONUS"]);
        }
        events.push((placed_at, event));

        let mut window = None;
        if let Some(when) = &spec.delivered {
            let delivered_at = resolve(program, when, placed_at, None);
            events.push((delivered_at, json!({"type": "order.delivered", "order": order})));
            if spec.redeliver {
                events.push((later(delivered_at, HOUR), json!({"type": "order.delivered", "order": order})));
            }
            window = Some(returns_window_close(program, placed_at, delivered_at));
        }

        let quantities: Vec<u32> = spec.lines.iter().map(|l| l.quantity).collect();
        let mut previous = placed_at;
        for (e, removal) in plan_removals(&quantities, &spec.removals).into_iter().enumerate() {
            let gaps = &spec.removals.gaps;
            let at = resolve(program, &gaps[e % gaps.len()], previous, window);
            previous = at;
            let kind = if removal.cancel { "order.cancelled" } else { "order.returned" };
            let mut event = json!({"type": kind, "order": order});
            if let Some(parts) = removal.parts {
                let parts: Vec<Value> = parts
                    .into_iter()
                    .map(|(line, quantity, bare)| {
                        if bare {
                            json!(format!("l-{line}"))
                        } else {
                            json!({"line": format!("l-{line}"), "quantity": quantity})
                        }
                    })
                    .collect();
                event["lines"] = Value::Array(parts);
            }
            events.push((at, event));
        }
    }
    finish(program, events, scenario.styled)
}

/// Makes the instants distinct (a tie moves one second later, in push order), gives
/// every event its id and `at`, and writes the lines in order of `at`.
fn finish(program: &Program, events: Vec<(Timestamp, Value)>, styled: bool) -> Vec<String> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|i| (events[*i].0, *i));
    let mut last: Option<Timestamp> = None;
    let mut lines = Vec::with_capacity(events.len());
    for i in order {
        let (mut at, mut event) = events[i].clone();
        if let Some(previous) = last
            && at <= previous
        {
            at = later(previous, 1);
        }
        last = Some(at);
        event["id"] = json!(format!("e-{i}"));
        event["at"] = json!(at_text(at, styled, i));
        if styled && i % 3 == 0 {
            event["program"] = json!(program.id);
        }
        lines.push(event.to_string());
    }
    lines
}

fn at_text(at: Timestamp, styled: bool, i: usize) -> String {
    if !styled {
        return at.to_string();
    }
    match i % 4 {
        0 => at.to_string(),
        1 => at.display_with_offset(Offset::constant(3)).to_string(),
        2 => at.display_with_offset(Offset::constant(-5)).to_string(),
        _ => at.display_with_offset(Offset::from_seconds(5 * 3600 + 45 * 60).unwrap()).to_string(),
    }
}

/// `palier replay` with one program loaded.
fn run(program: &Program, input: &[u8], as_of: Option<Timestamp>) -> ReplayOutput {
    replay(std::slice::from_ref(program), input, as_of)
}

fn text(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn show(lines: &[String]) -> String {
    lines.iter().map(|l| format!("  {l}\n")).collect()
}

/// Rejection codes per event id.
fn codes_by_id(output: &ReplayOutput) -> BTreeMap<Option<String>, Vec<&'static str>> {
    let mut codes: BTreeMap<Option<String>, Vec<&'static str>> = BTreeMap::new();
    for rejected in &output.rejections {
        codes.entry(rejected.event_id.clone()).or_default().push(rejected.rejection.code.as_str());
    }
    for list in codes.values_mut() {
        list.sort_unstable();
    }
    codes
}

/// `cases` cases (`PROPTEST_CASES` in the environment overrides it, for a long run),
/// nothing written to disk.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- replay is a function of the events --------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn replay_file_order_does_not_matter(
        scenario in scenario(false, 0..=10),
        swaps in vec(any::<Index>(), 64),
        as_of in prop::option::weighted(0.3, -30 * DAY..SPAN + 400 * DAY),
    ) {
        for program in programs() {
            let lines = render(program, &scenario, None);
            let mut shuffled = lines.clone();
            for i in (1..shuffled.len()).rev() {
                let j = swaps[i % swaps.len()].index(i + 1);
                shuffled.swap(i, j);
            }
            let as_of = as_of.map(|seconds| instant(BASE + seconds));
            let straight = run(program, text(&lines).as_bytes(), as_of);
            let mixed = run(program, text(&shuffled).as_bytes(), as_of);
            if as_of.is_none() {
                prop_assert_eq!(straight.documents.len(), scenario.members.len(), "{}: a registration was lost", program.id);
            }
            prop_assert_eq!(straight.as_of, mixed.as_of);
            prop_assert_eq!(
                &straight.documents,
                &mixed.documents,
                "{}: shuffling the lines changed the documents\nin order of at:\n{}shuffled:\n{}",
                program.id,
                show(&lines),
                show(&shuffled)
            );
            prop_assert_eq!(
                codes_by_id(&straight),
                codes_by_id(&mixed),
                "{}: shuffling the lines changed the rejections\nin order of at:\n{}shuffled:\n{}",
                program.id,
                show(&lines),
                show(&shuffled)
            );
            // The member-parallel replay gives exactly what the in-order one gives.
            let input = text(&shuffled);
            let programs = std::slice::from_ref(program);
            let parallel = Replay::parse(programs, input.as_bytes()).run_with_threads(programs, as_of, 3);
            prop_assert_eq!(&mixed, &parallel, "{}: 3 threads differ from 1\n{}", program.id, show(&shuffled));
            // The one-pass replay, a line per piece, on one and on three shards: when
            // it goes through it gives exactly what the general replay gives; in
            // order of `at`, on one shard, it always goes through.
            let general = Replay::parse(programs, text(&lines).as_bytes()).run_with_threads(programs, as_of, 1);
            let ordered = text(&lines);
            for (input, expected) in [(ordered.as_bytes(), &general), (input.as_bytes(), &parallel)] {
                for threads in [1, 3] {
                    match stream_slice_in_pieces(programs, input, as_of, threads, 1) {
                        Ok(streamed) => prop_assert_eq!(
                            &streamed, expected, "{}: one pass on {} threads differs\n{}", program.id, threads,
                            String::from_utf8_lossy(input)
                        ),
                        Err(stopped) => prop_assert!(
                            threads > 1 || input != ordered.as_bytes(),
                            "{}: one pass stopped ({:?}) on input in order of at\n{}", program.id, stopped, show(&lines)
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn replay_exact_duplicate_changes_nothing(
        scenario in scenario(false, 0..=10),
        which in any::<Index>(),
        place in any::<Index>(),
        as_of in prop::option::weighted(0.3, -30 * DAY..SPAN + 400 * DAY),
        respaced in prop::bool::weighted(0.25),
    ) {
        for program in programs() {
            let lines = render(program, &scenario, None);
            let i = which.index(lines.len());
            let j = i + 1 + place.index(lines.len() - i);
            let mut doubled = lines.clone();
            // Also an equal body written with other white space (decisions D7); no
            // string of a rendered line holds `":` or `,"`.
            let copy = if respaced { lines[i].replace("\":", "\": ").replace(",\"", ", \"") } else { lines[i].clone() };
            doubled.insert(j, copy);
            let as_of = as_of.map(|seconds| instant(BASE + seconds));
            let once = run(program, text(&lines).as_bytes(), as_of);
            let twice = run(program, text(&doubled).as_bytes(), as_of);
            prop_assert_eq!(once.as_of, twice.as_of);
            prop_assert_eq!(
                &once.documents,
                &twice.documents,
                "{}: a copy of line {} inserted as line {} changed the documents\n{}",
                program.id,
                i + 1,
                j + 1,
                show(&doubled)
            );
            let inserted = j + 1;
            let mut mapped = Vec::new();
            for rejected in &twice.rejections {
                prop_assert_ne!(rejected.line, inserted, "{}: the duplicate printed {}\n{}", program.id, rejected, show(&doubled));
                let line = if rejected.line > inserted { rejected.line - 1 } else { rejected.line };
                mapped.push((line, rejected.event_id.clone(), rejected.rejection.clone()));
            }
            let original: Vec<_> =
                once.rejections.iter().map(|r| (r.line, r.event_id.clone(), r.rejection.clone())).collect();
            prop_assert_eq!(
                original,
                mapped,
                "{}: a copy of line {} inserted as line {} changed the rejections\n{}",
                program.id,
                i + 1,
                j + 1,
                show(&doubled)
            );
        }
    }
}

/// An instant for stepping: anywhere around the stream, on an event's `at`, or on a
/// month start, give or take a second.
#[derive(Clone, Debug)]
enum Pick {
    Offset(i64),
    Event(Index, i8),
    MonthStart(u8, i8),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        2 => (-30 * DAY..SPAN + 400 * DAY).prop_map(Pick::Offset),
        2 => (any::<Index>(), -1i8..=1).prop_map(|(i, adjust)| Pick::Event(i, adjust)),
        1 => (0u8..40, -1i8..=1).prop_map(|(months, adjust)| Pick::MonthStart(months, adjust)),
    ]
}

fn resolve_pick(program: &Program, pick: &Pick, instants: &[Timestamp]) -> Timestamp {
    match *pick {
        Pick::Offset(seconds) => instant(BASE + seconds),
        Pick::Event(i, adjust) => later(instants[i.index(instants.len())], adjust.into()),
        Pick::MonthStart(months, adjust) => later(month_start(program, instant(BASE), months), adjust.into()),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn replay_in_two_steps_equals_straight(
        scenario in scenario(false, 0..=10),
        first in pick(),
        second in pick(),
    ) {
        for program in programs() {
            let lines = render(program, &scenario, None);
            let mut events: Vec<_> = lines.iter().map(|line| parse_event(line).unwrap()).collect();
            events.sort_by_key(|event| event.at);
            let instants: Vec<Timestamp> = events.iter().map(|event| event.at).collect();
            let (mut t1, mut t2) = (resolve_pick(program, &first, &instants), resolve_pick(program, &second, &instants));
            if t2 < t1 {
                std::mem::swap(&mut t1, &mut t2);
            }
            if t1 == t2 {
                t2 = later(t2, 1);
            }

            let mut engine = Engine::new(program);
            let mut rejected: BTreeSet<(String, &'static str)> = BTreeSet::new();
            for event in events.iter().filter(|event| event.at <= t1) {
                if let Err(rejection) = engine.apply(event) {
                    rejected.insert((event.id.to_string(), rejection.code.as_str()));
                }
            }
            engine.advance_all(t1);
            let halfway = engine.documents(t1);
            for event in events.iter().filter(|event| event.at > t1 && event.at <= t2) {
                if let Err(rejection) = engine.apply(event) {
                    rejected.insert((event.id.to_string(), rejection.code.as_str()));
                }
            }
            engine.advance_all(t2);
            let stepped = engine.documents(t2);

            let input = text(&lines);
            let at_t1 = run(program, input.as_bytes(), Some(t1));
            prop_assert_eq!(
                &halfway,
                &at_t1.documents,
                "{}: the engine at t1 = {} differs from replay --as-of t1\n{}",
                program.id,
                t1,
                show(&lines)
            );
            let straight = run(program, input.as_bytes(), Some(t2));
            prop_assert_eq!(
                &stepped,
                &straight.documents,
                "{}: stopping at t1 = {} then going on to t2 = {} differs from replay --as-of t2\n{}",
                program.id,
                t1,
                t2,
                show(&lines)
            );
            let replayed: BTreeSet<(String, &'static str)> = straight
                .rejections
                .iter()
                .map(|r| (r.event_id.clone().unwrap_or_default(), r.rejection.code.as_str()))
                .collect();
            prop_assert_eq!(rejected, replayed, "{}: rejections differ (t1 = {}, t2 = {})\n{}", program.id, t1, t2, show(&lines));
        }
    }
}

// ---- exact splits ---------------------------------------------------------------------

fn is_zero(document: &palier_core::MemberDocument, amount: Option<&String>) -> bool {
    match (document.currency.as_deref().and_then(Currency::from_code), amount) {
        (Some(currency), Some(amount)) => currency.parse_amount(amount) == Ok(Minor::ZERO),
        (None, None) => true,
        _ => false,
    }
}

fn weight() -> impl Strategy<Value = i64> {
    prop_oneof![1 => Just(0i64), 4 => 0i64..=1_000_000, 1 => 0i64..=100_000_000_000_000]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn split_sums_exactly(
        total in prop_oneof![0i64..=1_000, 0i64..=1_000_000_000_000_000],
        weights in vec(weight(), 1..=8),
        member in member_spec(true),
        order in order_spec(true),
        plan in removals(Some(true)),
        scenario in scenario(true, 1..=8),
        chosen in any::<Index>(),
        extra in 0..400 * DAY,
    ) {
        // split_pro_rata: floor shares, the remainder to the largest weight (first on a tie).
        let shares = split_pro_rata(total, &weights);
        prop_assert_eq!(shares.len(), weights.len());
        prop_assert_eq!(shares.iter().map(|s| i128::from(*s)).sum::<i128>(), i128::from(total));
        let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
        if sum == 0 {
            prop_assert_eq!(shares[0], total);
            prop_assert!(shares[1..].iter().all(|s| *s == 0), "{:?}", shares);
        } else {
            let largest = (0..weights.len()).fold(0, |best, i| if weights[i] > weights[best] { i } else { best });
            for (i, (share, weight)) in shares.iter().zip(&weights).enumerate() {
                let floor = i128::from(total) * i128::from(*weight) / sum;
                let extra = i128::from(*share) - floor;
                if i == largest {
                    prop_assert!(
                        (0..weights.len() as i128).contains(&extra),
                        "share {} of {:?} over {:?}: {} is floor {} + {}", i, total, weights, share, floor, extra
                    );
                } else {
                    prop_assert_eq!(extra, 0, "share {} of {} over {:?}: {} is not the floor {}", i, total, weights, share, floor);
                }
            }
        }

        // One member, one order, every unit returned: nothing left.
        let member = MemberSpec { ineligible: false, staff: false, birth: None, changes: Vec::new(), ..member };
        let mut plan = plan;
        plan.over = false;
        let order = OrderSpec {
            wrong_currency: false,
            points: None,
            redeliver: false,
            removals: plan.clone(),
            ..order
        };
        let single = Scenario { members: vec![member], orders: vec![order], styled: false };
        for program in programs() {
            let lines = render(program, &single, None);
            let latest = run(program, text(&lines).as_bytes(), None).as_of.unwrap();
            let output = run(program, text(&lines).as_bytes(), Some(later(latest, extra)));
            prop_assert!(output.rejections.is_empty(), "{}: {}\n{}", program.id, output.rejections[0], show(&lines));
            let document = &output.documents[0];
            prop_assert!(
                is_zero(document, document.qualifying_spend.as_ref()) && is_zero(document, document.pending_spend.as_ref()),
                "{}: an order returned in full leaves spend\n{:?}\n{}",
                program.id,
                document,
                show(&lines)
            );
            if let Some(points) = document.points {
                prop_assert!(points.pending == 0 && points.available <= 0, "{}: {:?}\n{}", program.id, points, show(&lines));
            }
        }

        // Any scenario: returning every unit of one order leaves every member's spend as
        // if the order had never been placed.
        let mut with = scenario;
        let c = chosen.index(with.orders.len());
        with.orders[c].removals = plan;
        for program in programs() {
            let returned = render(program, &with, None);
            let never = render(program, &with, Some(c));
            let latest = run(program, text(&returned).as_bytes(), None).as_of.max(run(program, text(&never).as_bytes(), None).as_of);
            let as_of = Some(later(latest.unwrap(), extra));
            let spends = |lines: &[String]| -> Vec<(String, Option<String>, Option<String>)> {
                run(program, text(lines).as_bytes(), as_of)
                    .documents
                    .into_iter()
                    .map(|d| (d.member, d.qualifying_spend, d.pending_spend))
                    .collect()
            };
            prop_assert_eq!(
                spends(&returned),
                spends(&never),
                "{}: order o-{} returned in full still counts\nwith the order:\n{}without:\n{}",
                program.id,
                c,
                show(&returned),
                show(&never)
            );
        }
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn partial_returns_come_back_exactly(
        value in prop_oneof![0i64..=1_000, 0i64..=1_000_000_000_000_000],
        quantity in prop_oneof![1u32..=10, 1u32..=1_000_000],
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let mut ends: Vec<u32> = cuts.iter().map(|c| c.index(quantity as usize) as u32).filter(|c| *c > 0).collect();
        ends.push(quantity);
        ends.sort_unstable();
        ends.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for end in ends {
            chunks.push(end - start);
            start = end;
        }
        let (mut removed_units, mut removed_value) = (0u32, 0i64);
        for (k, chunk) in chunks.iter().enumerate() {
            let piece = partial_share(value, quantity, removed_units, removed_value, *chunk);
            if k + 1 == chunks.len() {
                prop_assert_eq!(piece, value - removed_value, "the last return takes what is left");
            } else {
                let floor = i128::from(value) * i128::from(*chunk) / i128::from(quantity);
                prop_assert_eq!(i128::from(piece), floor, "return of {} of {} units worth {}", chunk, quantity, value);
            }
            prop_assert!(piece >= 0, "negative piece {} (chunks {:?})", piece, chunks);
            removed_units += chunk;
            removed_value += piece;
        }
        prop_assert_eq!(removed_units, quantity);
        prop_assert_eq!(removed_value, value, "chunks {:?}", chunks);
    }
}

// ---- no input line panics -------------------------------------------------------------

const KEYS: &[&str] = &[
    "id",
    "type",
    "at",
    "program",
    "member",
    "country",
    "birth_date",
    "staff",
    "guardian_consent",
    "order",
    "currency",
    "channel",
    "lines",
    "delivery",
    "duties",
    "payments",
    "codes",
    "line",
    "sku",
    "brand",
    "category",
    "quantity",
    "price",
    "discount",
    "tax",
    "on_sale",
    "badges",
    "method",
    "amount",
];

const TYPES: &[&str] = &[
    "member.registered",
    "member.updated",
    "member.opted_out",
    "member.closed",
    "member.suspended",
    "member.reinstated",
    "order.placed",
    "order.delivered",
    "order.returned",
    "order.cancelled",
    "order.shipped",
    "",
];

const AMOUNTS: &[&str] = &[
    "0",
    "0.00",
    "1.00",
    "1.001",
    "1e3",
    "-0.00",
    "-1.00",
    "+1.00",
    ".5",
    "5.",
    "0x10",
    "１２.00",
    "NaN",
    "-",
    ".",
    "1000000000000.00",
    "1000000000000.001",
    "1000000000000.01",
    "99999999999999999999.99",
    "00000000000000000000001.00",
    "9223372036854775807",
    " 1.00",
    "",
];

const INSTANTS: &[&str] = &[
    "2024-03-01T00:00:00Z",
    "2025-01-01T00:00:00+03:00",
    "2026-06-30T23:00:00Z",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2999-12-31T23:59:59Z",
    "2999-12-31T23:59:59-23:59",
    "2999-12-31T23:59:59+14:00",
    "1970-01-01T00:00:00+14:00",
    "2024-02-30T00:00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:60Z",
    "2024-01-01T00:00:00.123456789Z",
    "2024-01-01T00:00:00+00:00[Europe/London]",
    "2024-01-01t00:00:00z",
    "2024-01-01 00:00:00Z",
];

const NASTY: &[&str] = &[
    // dates
    "2000-02-29",
    "2000-02-30",
    "1899-12-31",
    "1900-01-01",
    "99999-01-01",
    "2000-1-1",
    "2030-01-01",
    // ids and references
    "m-0",
    "m-1",
    "m-2",
    "o-0",
    "o-1",
    "l-0",
    "l-1",
    "e-0",
    "e-1",
    "a\u{0}b",
    "\u{200b}",
    "\u{10ffff}",
    // codes
    "EUR",
    "GBP",
    "USD",
    "KWD",
    "RUB",
    "JPY",
    "XXX",
    "eur",
    "card",
    "points",
    "gift_voucher",
    "bitcoin",
    "web",
    "app",
    "store",
    "RU",
    "FR",
    "ZZ",
    "ru",
    "R",
    "NOBONUS",
    "net-a-porter",
    "mr-porter",
    "perfone",
    "other-program",
];

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(NASTY).prop_map(String::from),
        2 => select(AMOUNTS).prop_map(String::from),
        2 => select(INSTANTS).prop_map(String::from),
        1 => any::<String>(),
        1 => (1usize..300, select(&["x", "é", "0", "9", "\u{7f}"][..])).prop_map(|(n, s)| s.repeat(n)),
        1 => select(TYPES).prop_map(String::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![6 => select(KEYS).prop_map(String::from), 1 => any::<String>()]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(1_000_000), Just(1_000_001), Just(i64::MAX)]
            .prop_map(Value::from),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((key(), inner), 0..5).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// An object with random keys (mostly the contract's) and random values, usually with
/// an id, a type and an instant so that it gets past the first checks.
fn random_object() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.8, prop_oneof![3 => (0u32..50).prop_map(|n| format!("x-{n}")), 1 => nasty_string()]),
        prop::option::weighted(0.8, select(TYPES)),
        prop::option::weighted(0.8, select(INSTANTS)),
        vec((key(), json_value()), 0..10),
    )
        .prop_map(|(id, kind, at, pairs)| {
            let mut map: Map<String, Value> = pairs.into_iter().collect();
            if let Some(id) = id {
                map.insert("id".into(), Value::String(id));
            }
            if let Some(kind) = kind {
                map.insert("type".into(), json!(kind));
            }
            if let Some(at) = at {
                map.insert("at".into(), json!(at));
            }
            Value::Object(map)
        })
}

const PLACEHOLDER: &str = "@@raw-literal@@";

/// A change to one field of a valid line.
#[derive(Clone, Debug)]
enum Edit {
    Delete,
    Set(Value),
    /// JSON text that serde_json would not produce (huge numbers, deep nesting…).
    Raw(String),
    /// A key added to an object (or the field replaced, if it is not an object).
    Insert(String, Value),
}

fn raw_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(&[
            "1e400", "-1e400", "18446744073709551616", "-9223372036854775809", "9223372036854775807",
            "-9223372036854775808", "4294967297", "1000001", "123456789012345678901234567890.5", "-0", "1E2", "0.5",
            "1.0", "\"\\ud800\"", "\"\\u0000\"", "\"1.00\\u0000\"",
        ][..]).prop_map(String::from),
        1 => (1usize..2_000).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        1 => (1usize..2_000).prop_map(|d| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d))),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => Just(Edit::Delete),
        3 => json_value().prop_map(Edit::Set),
        3 => nasty_string().prop_map(|s| Edit::Set(Value::String(s))),
        5 => select(AMOUNTS).prop_map(|s| Edit::Set(Value::String(s.into()))),
        2 => raw_literal().prop_map(Edit::Raw),
        1 => (key(), json_value()).prop_map(|(k, v)| Edit::Insert(k, v)),
    ]
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    At(usize),
}

fn collect_paths(value: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(Seg::Key(key.clone()));
                collect_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Seg::At(i));
                collect_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn child_mut<'v>(value: &'v mut Value, seg: &Seg) -> &'v mut Value {
    match seg {
        Seg::Key(key) => value.get_mut(key.as_str()).unwrap(),
        Seg::At(i) => value.get_mut(*i).unwrap(),
    }
}

/// A valid line with one field changed.
fn mutate(line: &str, path: Index, strings_only: bool, edit: &Edit) -> String {
    let mut value: Value = serde_json::from_str(line).unwrap();
    let mut paths = Vec::new();
    collect_paths(&value, &mut Vec::new(), &mut paths);
    if strings_only {
        paths.retain(|path| {
            let mut at = &value;
            for seg in path {
                at = match seg {
                    Seg::Key(key) => &at[key.as_str()],
                    Seg::At(i) => &at[*i],
                };
            }
            at.is_string()
        });
    }
    let target = &paths[path.index(paths.len())];
    let mut raw = None;
    if let Some((last, parents)) = target.split_last() {
        let mut parent = &mut value;
        for seg in parents {
            parent = child_mut(parent, seg);
        }
        match edit {
            Edit::Delete => match (parent, last) {
                (Value::Object(map), Seg::Key(key)) => {
                    map.remove(key);
                }
                (Value::Array(items), Seg::At(i)) => {
                    items.remove(*i);
                }
                _ => unreachable!("paths follow the value"),
            },
            Edit::Set(new) => *child_mut(parent, last) = new.clone(),
            Edit::Raw(text) => {
                *child_mut(parent, last) = Value::String(PLACEHOLDER.into());
                raw = Some(text);
            }
            Edit::Insert(key, new) => match child_mut(parent, last) {
                Value::Object(map) => {
                    map.insert(key.clone(), new.clone());
                }
                other => *other = new.clone(),
            },
        }
    } else {
        match edit {
            Edit::Delete => return String::new(),
            Edit::Set(new) => return new.to_string(),
            Edit::Raw(text) => return text.clone(),
            Edit::Insert(key, new) => {
                value[key.as_str()] = new.clone();
            }
        }
    }
    let text = value.to_string();
    match raw {
        Some(raw) => text.replacen(&format!("\"{PLACEHOLDER}\""), raw, 1),
        None => text,
    }
}

#[derive(Clone, Debug)]
enum Junk {
    Bytes(Vec<u8>),
    Text(String),
    Object(Value),
    /// A valid line (an `order.placed` one if `orders_only`) with one field (a
    /// string one if `strings_only`) changed.
    Mutated {
        line: Index,
        orders_only: bool,
        path: Index,
        strings_only: bool,
        edit: Edit,
    },
    /// A valid line with something before or after it.
    Decorated {
        line: Index,
        prefix: &'static str,
        suffix: &'static str,
    },
}

fn junk() -> impl Strategy<Value = Junk> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..80).prop_map(Junk::Bytes),
        1 => any::<String>().prop_map(Junk::Text),
        1 => (
            any::<Index>(),
            select(&["", " ", "\t", "\u{feff}", "[", "\u{0}", "{}"][..]),
            select(&["", " ", "\r", "\t\r", "x", "}", ",", "\u{0}", "{}", "\n{"][..]),
        )
            .prop_map(|(line, prefix, suffix)| Junk::Decorated { line, prefix, suffix }),
        3 => random_object().prop_map(Junk::Object),
        5 => (any::<Index>(), any::<bool>(), any::<Index>(), any::<bool>(), edit()).prop_map(
            |(line, orders_only, path, strings_only, edit)| Junk::Mutated { line, orders_only, path, strings_only, edit }
        ),
    ]
}

/// Codes only the checks of an event on its own give (an event that passed them can
/// never get one of these from the engine).
const PARSE_ONLY: &[RejectCode] = &[
    RejectCode::InvalidJson,
    RejectCode::MissingField,
    RejectCode::InvalidField,
    RejectCode::UnknownEventType,
    RejectCode::TooManyDigits,
    RejectCode::NegativeAmount,
    RejectCode::AmountTooLarge,
    RejectCode::InvalidQuantity,
    RejectCode::PaymentsMismatch,
    RejectCode::DuplicateLine,
    RejectCode::InvalidDiscount,
    RejectCode::InvalidTax,
    RejectCode::Overflow,
];

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn no_input_line_panics(
        program in 0usize..3,
        scenario in scenario(false, 0..=6),
        junk in vec((any::<Index>(), junk()), 1..12),
        as_of in prop::option::weighted(0.3, prop_oneof![
            3 => BASE - 30 * DAY..BASE + SPAN + 400 * DAY,
            1 => -1_000i64..32_503_681_000,
            1 => prop_oneof![Just(Timestamp::MIN.as_second()), Just(Timestamp::MAX.as_second())],
        ]),
    ) {
        let program = &programs()[program];
        let valid = render(program, &scenario, None);
        let mut lines: Vec<Vec<u8>> = valid.iter().map(|line| line.clone().into_bytes()).collect();
        for (position, junk) in &junk {
            let bytes = match junk {
                Junk::Bytes(bytes) => bytes.clone(),
                Junk::Text(text) => text.clone().into_bytes(),
                Junk::Object(value) => value.to_string().into_bytes(),
                Junk::Decorated { line, prefix, suffix } => {
                    format!("{prefix}{}{suffix}", valid[line.index(valid.len())]).into_bytes()
                }
                Junk::Mutated { line, orders_only, path, strings_only, edit } => {
                    let orders: Vec<&String> = valid.iter().filter(|l| l.contains("\"order.placed\"")).collect();
                    let line = if *orders_only && !orders.is_empty() {
                        orders[line.index(orders.len())]
                    } else {
                        &valid[line.index(valid.len())]
                    };
                    mutate(line, *path, *strings_only, edit).into_bytes()
                }
            };
            lines.insert(position.index(lines.len() + 1), bytes);
        }
        let input = lines.join(&b'\n');
        let as_of = as_of.map(instant);
        let output = run(program, &input, as_of);

        // What the checks of each line on its own say.
        let mut expected: BTreeMap<usize, Option<RejectCode>> = BTreeMap::new();
        for (index, bytes) in input.split(|b| *b == b'\n').enumerate() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let code = match std::str::from_utf8(bytes) {
                Err(_) => Some(RejectCode::InvalidJson),
                Ok(text) => match parse_event(text) {
                    Err(rejection) => Some(rejection.code),
                    Ok(event) if event.program.as_ref().is_some_and(|p| *p != program.id) => Some(RejectCode::UnknownProgram),
                    Ok(_) => None,
                },
            };
            expected.insert(index + 1, code);
        }
        let shown = || String::from_utf8_lossy(&input).into_owned();
        let mut seen = BTreeSet::new();
        let mut previous = 0;
        for rejected in &output.rejections {
            let code = rejected.rejection.code;
            prop_assert!(RejectCode::ALL.contains(&code), "unknown code {:?}", code);
            prop_assert!(rejected.line >= previous, "rejections out of line order: {} after {}", rejected.line, previous);
            previous = rejected.line;
            prop_assert!(seen.insert(rejected.line), "line {} rejected twice\n{}", rejected.line, shown());
            prop_assert!(!rejected.rejection.message.is_empty(), "{}: empty message", rejected);
            let prefix = format!("line {}: event ", rejected.line);
            prop_assert!(rejected.to_string().starts_with(&prefix), "{} does not start with {:?}", rejected, prefix);
            match expected.get(&rejected.line) {
                None => prop_assert!(false, "{} names a blank or missing line\n{}", rejected, shown()),
                Some(Some(parse_code)) => prop_assert_eq!(code, *parse_code, "{}\n{}", rejected, shown()),
                Some(None) => prop_assert!(
                    !PARSE_ONLY.contains(&code),
                    "{}: the line passes the checks of an event on its own\n{}",
                    rejected,
                    shown()
                ),
            }
        }
        for (line, code) in &expected {
            if let Some(code) = code {
                prop_assert!(seen.contains(line), "line {} fails its own checks ({:?}) but was not rejected\n{}", line, code, shown());
            }
        }
        for pair in output.documents.windows(2) {
            prop_assert!(pair[0].member < pair[1].member, "documents not sorted by member id");
        }
        prop_assert!(serde_json::to_string(&output.documents).is_ok());
    }
}
