//! The member document (contract.md "The member document").

use jiff::Timestamp;
use serde::Serialize;

use crate::calendar::format_instant;
use crate::member::{Member, Status};
use crate::money::Minor;
use crate::program::{Program, Qualification};

/// A member's state at an instant, in the contract's shape and field order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberDocument {
    pub member: String,
    pub program: String,
    pub status: &'static str,
    pub reason: Option<&'static str>,
    pub tier: Option<String>,
    pub tier_since: Option<String>,
    pub tier_until: Option<String>,
    pub currency: Option<String>,
    pub qualifying_spend: Option<String>,
    pub pending_spend: Option<String>,
    pub next_tier: Option<NextTier>,
    pub points: Option<PointsBalance>,
    /// Present for programs that keep store credit (an addition to the contract).
    pub store_credit: Option<CreditBalance>,
    /// The benefits open at the instant (an addition to the contract).
    pub benefits: Vec<BenefitLine>,
}

/// One open benefit: what is left (`null`: unlimited) and when the first unit lapses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BenefitLine {
    pub benefit: String,
    pub remaining: Option<u32>,
    pub used: u32,
    pub expires_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NextTier {
    pub tier: String,
    pub threshold: String,
    pub remaining: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PointsBalance {
    pub available: i64,
    pub pending: i64,
    /// Part of `available` reserved by open checkout holds.
    pub held: i64,
}

/// Unexpired store credit, in the member's currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreditBalance {
    pub available: String,
    /// Part of `available` reserved by open checkout holds.
    pub held: String,
}

impl Member {
    /// The total that decides the tier at `at` (contract: `qualifying_spend`).
    pub fn qualifying_spend(&self, program: &Program, at: Timestamp) -> Minor {
        match program.qualification {
            Qualification::Rolling { .. } => self.nap_qualifying_spend(program, at),
            Qualification::CalendarYear => self.mrp_year_spend(program.calendar.year(at)),
            Qualification::Lifetime => self.pf_kept_total(),
        }
    }

    /// Eligible value not counted yet: window open, or waiting for the monthly
    /// application (programs.md §7.9 for points programs).
    pub fn pending_spend(&self) -> Minor {
        Minor(self.orders.iter().filter(|o| o.earning() && !o.applied()).map(|o| o.net_value().0).sum())
    }

    /// The document at `at`. The member must have been advanced to `at` inclusive.
    pub fn document(&self, program: &Program, at: Timestamp) -> MemberDocument {
        let status = match self.status {
            Status::Closed => "closed",
            Status::OptedOut => "opted_out",
            _ if self.ineligible.is_some() => "ineligible",
            Status::Suspended => "suspended",
            Status::Active => "active",
        };
        let reason = if self.wiped { None } else { self.ineligible.map(|i| i.as_str()) };
        let no_value = self.wiped || self.ineligible.is_some();
        let currency = self.currency;
        let format = |amount: Minor| currency.map(|c| c.format(amount));
        let points = program.points.as_ref().map(|_| {
            if no_value {
                PointsBalance { available: 0, pending: 0, held: 0 }
            } else {
                PointsBalance {
                    available: self.points_available(),
                    pending: self.points_pending(),
                    held: self.points.held,
                }
            }
        });
        // Store credit is the customer's money, not rewards value: shown whatever the
        // status (decisions D31).
        let store_credit = match (&program.store_credit, currency) {
            (Some(_), Some(currency)) => Some(CreditBalance {
                available: currency.format(Minor(self.credit.balance())),
                held: currency.format(Minor(self.credit.held)),
            }),
            _ => None,
        };
        if no_value {
            return MemberDocument {
                member: self.id.to_string(),
                program: program.id.clone(),
                status,
                reason,
                tier: None,
                tier_since: None,
                tier_until: None,
                currency: currency.map(|c| c.code().to_string()),
                qualifying_spend: format(Minor::ZERO),
                pending_spend: format(Minor::ZERO),
                next_tier: None,
                points,
                store_credit,
                benefits: Vec::new(),
            };
        }
        let qualifying = self.qualifying_spend(program, at);
        let next = self.tier.map_or(0, |t| t + 1);
        let next_tier = match (program.tiers.get(next), currency) {
            (Some(tier), Some(currency)) => tier.thresholds.get(&currency).map(|threshold| NextTier {
                tier: tier.id.clone(),
                threshold: currency.format(*threshold),
                remaining: currency.format(Minor((threshold.0 - qualifying.0).max(0))),
            }),
            _ => None,
        };
        MemberDocument {
            member: self.id.to_string(),
            program: program.id.clone(),
            status,
            reason,
            tier: self.tier.map(|t| program.tiers[t].id.clone()),
            tier_since: self.tier_since.map(format_instant),
            tier_until: self.tier_until.map(format_instant),
            currency: currency.map(|c| c.code().to_string()),
            qualifying_spend: format(qualifying),
            pending_spend: format(self.pending_spend()),
            next_tier,
            points,
            store_credit,
            benefits: self
                .benefits(at)
                .into_iter()
                .map(|view| BenefitLine {
                    benefit: view.benefit.to_string(),
                    remaining: view.remaining,
                    used: view.used,
                    expires_at: view.expires_at.map(format_instant),
                })
                .collect(),
        }
    }
}
