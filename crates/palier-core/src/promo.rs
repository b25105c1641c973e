//! Promotion codes: the one evaluator that checkout quotes, holds and
//! `order.placed` all use (programs.md §4, seed 003).
//!
//! A code is resolved (a code of the program file, or a one-time code issued to the
//! member), then its terms are checked in a fixed order; the first that fails is
//! the refusal's reason. An accepted code gives its discount per line.

use jiff::Timestamp;

use crate::event::{Channel, Id, OrderLine};
use crate::member::Member;
use crate::money::Minor;
use crate::program::{Code, Program};

/// What a code is evaluated against.
#[derive(Clone, Copy, Debug)]
pub struct Basket<'a> {
    pub lines: &'a [OrderLine],
    pub channel: Channel,
    /// Store credit paying part of the order.
    pub store_credit: i64,
    pub codes: &'a [Id],
}

/// Why a code is refused. Stable: clients match on [`Refusal::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownCode,
    NotIssued,
    NotCombinable,
    OutsidePeriod,
    WrongChannel,
    StaffIneligible,
    NotFirstOrder,
    NotSecondOrder,
    NotNthOrder,
    AlreadyUsed,
    RedeemedEarlierOffer,
    HeldElsewhere,
    ExcludedItem,
    SaleItem,
    StoreCreditNotAllowed,
    NoEligibleItem,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownCode => "unknown_code",
            Refusal::NotIssued => "not_issued",
            Refusal::NotCombinable => "not_combinable",
            Refusal::OutsidePeriod => "outside_period",
            Refusal::WrongChannel => "wrong_channel",
            Refusal::StaffIneligible => "staff_ineligible",
            Refusal::NotFirstOrder => "not_first_order",
            Refusal::NotSecondOrder => "not_second_order",
            Refusal::NotNthOrder => "not_nth_order",
            Refusal::AlreadyUsed => "already_used",
            Refusal::RedeemedEarlierOffer => "redeemed_earlier_offer",
            Refusal::HeldElsewhere => "held_elsewhere",
            Refusal::ExcludedItem => "excluded_item",
            Refusal::SaleItem => "sale_item",
            Refusal::StoreCreditNotAllowed => "store_credit_not_allowed",
            Refusal::NoEligibleItem => "no_eligible_item",
        }
    }

    /// In words, for error messages.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::UnknownCode => "is not a code of this program",
            Refusal::NotIssued => "was not issued to this member",
            Refusal::NotCombinable => "cannot be combined with another code",
            Refusal::OutsidePeriod => "is outside its promotion period",
            Refusal::WrongChannel => "is not valid on this order channel",
            Refusal::StaffIneligible => "is not open to staff",
            Refusal::NotFirstOrder => "is only for a member's first order",
            Refusal::NotSecondOrder => "is only for a member's second order",
            Refusal::NotNthOrder => "is not for this order of the member",
            Refusal::AlreadyUsed => "was already used by this member",
            Refusal::RedeemedEarlierOffer => "is not open to members who redeemed an earlier offer it excludes",
            Refusal::HeldElsewhere => "is held by another open checkout",
            Refusal::ExcludedItem => "cannot be used on a basket holding an excluded brand or category",
            Refusal::SaleItem => "cannot be used on a basket holding sale items",
            Refusal::StoreCreditNotAllowed => "cannot be used with store credit",
            Refusal::NoEligibleItem => "applies to no line of the basket",
        }
    }
}

/// An accepted code: the promotion it belongs to and its discount per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The program file's code (the template, for one-time codes).
    pub promotion: Id,
    pub discounts: Vec<Minor>,
    pub earns_points: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeDecision {
    pub code: Id,
    pub outcome: Result<Accepted, Refusal>,
}

/// The terms a code string stands for, for this member.
pub fn resolve<'p>(program: &'p Program, member: &Member, code: &str) -> Result<&'p Code, Refusal> {
    if let Some(issued) = member.issued_codes.iter().find(|i| i.code == code) {
        return program.code(&issued.promotion).ok_or(Refusal::UnknownCode);
    }
    match program.code(code) {
        Some(terms) if terms.one_time => Err(Refusal::NotIssued),
        Some(terms) => Ok(terms),
        None => Err(Refusal::UnknownCode),
    }
}

/// Evaluates every code of a basket for `member` at `at`. `own_hold` is the hold
/// the basket belongs to (its own codes are not "held elsewhere").
pub fn evaluate(
    program: &Program,
    member: &Member,
    basket: &Basket<'_>,
    at: Timestamp,
    own_hold: Option<&str>,
) -> Vec<CodeDecision> {
    basket
        .codes
        .iter()
        .enumerate()
        .map(|(index, code)| CodeDecision {
            code: code.clone(),
            outcome: resolve(program, member, code).and_then(|terms| {
                if index > 0 {
                    return Err(Refusal::NotCombinable);
                }
                check_terms(program, member, terms, code, basket, at, own_hold)
            }),
        })
        .collect()
}

/// Can these codes be held for a checkout of `member` at `at`? The terms that
/// need no basket (the basket is checked again when the order is placed).
pub fn holdable(program: &Program, member: &Member, codes: &[Id], at: Timestamp) -> Result<(), (usize, Refusal)> {
    for (index, code) in codes.iter().enumerate() {
        let terms = resolve(program, member, code).map_err(|r| (index, r))?;
        if index > 0 {
            return Err((index, Refusal::NotCombinable));
        }
        check_member_terms(program, member, terms, code, None, at, None).map_err(|r| (index, r))?;
    }
    Ok(())
}

/// The terms that depend on the member, the channel and the instant.
fn check_member_terms(
    program: &Program,
    member: &Member,
    terms: &Code,
    code: &str,
    channel: Option<Channel>,
    at: Timestamp,
    own_hold: Option<&str>,
) -> Result<(), Refusal> {
    if terms.starts.is_some_and(|s| at < s) || terms.ends.is_some_and(|e| at > e) {
        return Err(Refusal::OutsidePeriod);
    }
    if let Some(channel) = channel
        && !terms.channels.is_empty()
        && !terms.channels.iter().any(|c| c == channel_name(channel))
    {
        return Err(Refusal::WrongChannel);
    }
    if member.staff && !terms.staff_eligible {
        return Err(Refusal::StaffIneligible);
    }
    if let Some(number) = terms.order_number
        && member.orders.len() + 1 != number as usize
    {
        return Err(match number {
            1 => Refusal::NotFirstOrder,
            2 => Refusal::NotSecondOrder,
            _ => Refusal::NotNthOrder,
        });
    }
    let once = terms.once_per_member || terms.order_number.is_some();
    if (once && member.used_codes.iter().any(|u| u.promotion == terms.code))
        || (terms.one_time && member.used_codes.iter().any(|u| u.code == code))
    {
        return Err(Refusal::AlreadyUsed);
    }
    if member.used_codes.iter().any(|u| terms.not_after.iter().any(|n| *n == u.promotion)) {
        return Err(Refusal::RedeemedEarlierOffer);
    }
    if (once || terms.one_time) && held_elsewhere(program, member, terms, code, at, own_hold) {
        return Err(Refusal::HeldElsewhere);
    }
    Ok(())
}

/// The terms of one code, in a fixed order; the first that fails is the reason.
fn check_terms(
    program: &Program,
    member: &Member,
    terms: &Code,
    code: &str,
    basket: &Basket<'_>,
    at: Timestamp,
    own_hold: Option<&str>,
) -> Result<Accepted, Refusal> {
    check_member_terms(program, member, terms, code, Some(basket.channel), at, own_hold)?;
    if basket.lines.iter().any(|l| {
        terms.excluded_brands.contains(l.brand.as_str()) || terms.excluded_categories.contains(l.category.as_str())
    }) {
        return Err(Refusal::ExcludedItem);
    }
    if terms.refuse_sale_items && basket.lines.iter().any(|l| l.on_sale) {
        return Err(Refusal::SaleItem);
    }
    if terms.refuse_store_credit && basket.store_credit > 0 {
        return Err(Refusal::StoreCreditNotAllowed);
    }
    let discounted = |line: &OrderLine| {
        !(terms.full_price_only && line.on_sale)
            && terms.badge.as_ref().is_none_or(|badge| line.badges.iter().any(|b| b == badge))
    };
    if (terms.discount.is_some() || terms.badge.is_some()) && !basket.lines.iter().any(discounted) {
        return Err(Refusal::NoEligibleItem);
    }
    let discounts = basket
        .lines
        .iter()
        .map(|line| match terms.discount {
            Some(rate) if discounted(line) => Minor(rate.floor_of(line.price.0 - line.discount.0)),
            _ => Minor::ZERO,
        })
        .collect();
    Ok(Accepted { promotion: Id::from(terms.code.as_str()), discounts, earns_points: terms.earns_points })
}

/// Another open hold of the member holds the same once-only promotion or the same
/// one-time code.
fn held_elsewhere(
    program: &Program,
    member: &Member,
    terms: &Code,
    code: &str,
    at: Timestamp,
    own_hold: Option<&str>,
) -> bool {
    member.open_holds(at).filter(|h| Some(h.hold.as_str()) != own_hold).any(|hold| {
        hold.codes.iter().any(|held| {
            if terms.one_time {
                held == code
            } else {
                resolve(program, member, held).is_ok_and(|t| t.code == terms.code)
            }
        })
    })
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Web => "web",
        Channel::App => "app",
        Channel::Store => "store",
    }
}
