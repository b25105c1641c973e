//! Checkout quotes: what a basket costs a member now, which codes apply, how many
//! points and how much store credit may pay for it, and what it will earn
//! (programs.md §3, §4). A quote writes nothing; holds and orders re-check
//! everything when they are decided.

use jiff::Timestamp;

use crate::event::{BasketRequest, Id, Order, OrderLine, Payment, PaymentMethod};
use crate::member::{Member, Status, eligible_value};
use crate::money::{Currency, Minor};
use crate::program::Program;
use crate::promo::{self, Basket, CodeDecision};

/// Why a quote cannot be held as it stands: a stable code and the explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub member: Id,
    pub currency: Currency,
    pub codes: Vec<CodeDecision>,
    /// The accepted code's discount on each line (zero where none).
    pub line_discounts: Vec<(Id, Minor)>,
    /// Σ (price − discount − code discount).
    pub goods: Minor,
    pub delivery: Minor,
    pub duties: Minor,
    /// goods + delivery + duties.
    pub total: Minor,
    pub points_requested: i64,
    /// Most points usable: the program's share of the goods, whole units, at most the
    /// free balance.
    pub points_max: i64,
    pub store_credit_requested: Minor,
    pub store_credit_max: Minor,
    /// What other tenders pay: total − points − store credit.
    pub to_pay: Minor,
    pub eligible_value: Minor,
    pub points_earned: i64,
    pub problems: Vec<Problem>,
}

impl Quote {
    pub fn holdable(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(code: &'static str, message: String) -> Problem {
    Problem { code, message }
}

/// Prices `basket` for `member` at `at` (the member advanced to `at`).
pub fn quote(program: &Program, member: &Member, basket: &BasketRequest, at: Timestamp) -> Quote {
    let mut problems = Vec::new();
    let currency = basket.currency;
    if member.wiped {
        problems.push(problem("member_closed", format!("member {:?} has closed or opted out", member.id)));
    }
    if let Some(mine) = member.currency
        && mine != currency
    {
        problems.push(problem(
            "currency_mismatch",
            format!("currency: the basket is in {currency} but member {:?} earns in {mine}", member.id),
        ));
    }
    let store_credit = basket.store_credit.0;
    let codes = promo::evaluate(
        program,
        member,
        &Basket { lines: &basket.lines, channel: basket.channel, store_credit, codes: &basket.codes },
        at,
        None,
    );
    let mut discounts = vec![Minor::ZERO; basket.lines.len()];
    let mut earns_points = true;
    let mut credit_allowed = program.store_credit.is_some();
    for (index, decision) in codes.iter().enumerate() {
        match &decision.outcome {
            Ok(accepted) => {
                discounts.clone_from(&accepted.discounts);
                earns_points &= accepted.earns_points;
                credit_allowed &= !program.code(&accepted.promotion).is_some_and(|c| c.refuse_store_credit);
            }
            Err(refusal) => problems.push(problem(
                "code_refused",
                format!("{}: codes[{index}]: {:?} {}", refusal.as_str(), decision.code, refusal.explain()),
            )),
        }
    }
    let lines: Vec<OrderLine> = basket
        .lines
        .iter()
        .zip(&discounts)
        .map(|(line, extra)| OrderLine { discount: Minor(line.discount.0 + extra.0), ..line.clone() })
        .collect();
    let goods = Minor(lines.iter().map(|l| l.price.0 - l.discount.0).sum());
    let total = Minor(goods.0 + basket.delivery.0 + basket.duties.0);
    let per_major = currency.minor_per_major();
    let spending = member.status == Status::Active && !member.wiped;

    let points_max = match &program.points {
        Some(rules) if spending => {
            (rules.max_payment_share.floor_of(goods.0) / per_major).min(member.points.free()).max(0)
        }
        _ => 0,
    };
    if basket.points > 0 && program.points.is_none() {
        problems.push(problem("points_not_accepted", format!("points: program {:?} has no points", program.id)));
    } else if basket.points > points_max {
        problems.push(problem(
            "points_over_limit",
            format!("points: {} asked, at most {points_max} usable on this basket", basket.points),
        ));
    }
    let points_value = basket.points.min(points_max) * per_major;
    let credit_max = if credit_allowed && spending {
        Minor(member.credit.free().max(0).min(total.0 - points_value).max(0))
    } else {
        Minor::ZERO
    };
    if store_credit > 0 && program.store_credit.is_none() {
        problems.push(problem(
            "store_credit_not_accepted",
            format!("store_credit: program {:?} keeps no store credit", program.id),
        ));
    } else if store_credit > credit_max.0 {
        problems.push(problem(
            "store_credit_over_limit",
            format!(
                "store_credit: {} asked, at most {} usable on this basket",
                currency.format(basket.store_credit),
                currency.format(credit_max)
            ),
        ));
    }
    let credit_value = store_credit.min(credit_max.0);
    let to_pay = Minor(total.0 - points_value - credit_value);
    let mut payments = vec![Payment { method: PaymentMethod::Card, amount: to_pay }];
    payments.push(Payment { method: PaymentMethod::Points, amount: Minor(points_value) });
    payments.push(Payment { method: PaymentMethod::StoreCredit, amount: Minor(credit_value) });
    let order = Order {
        member: basket.member.clone(),
        order: Id::from("quote"),
        currency,
        channel: basket.channel,
        lines,
        delivery: basket.delivery,
        duties: basket.duties,
        payments,
        codes: basket.codes.clone(),
        hold: None,
    };
    let eligible = if member.is_earning() { eligible_value(&order) } else { Minor::ZERO };
    let points_earned = if earns_points { member.pf_points_earned(program, &order, eligible) } else { 0 };
    Quote {
        member: basket.member.clone(),
        currency,
        codes,
        line_discounts: basket.lines.iter().map(|l| l.line.clone()).zip(discounts).collect(),
        goods,
        delivery: basket.delivery,
        duties: basket.duties,
        total,
        points_requested: basket.points,
        points_max,
        store_credit_requested: basket.store_credit,
        store_credit_max: credit_max,
        to_pay,
        eligible_value: eligible,
        points_earned,
        problems,
    }
}
