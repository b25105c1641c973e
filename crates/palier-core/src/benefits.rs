//! Entitlements: what a member's tier gives them (programs.md §5), granted,
//! renewed, used and withdrawn by the fold like every other rule.
//!
//! - reaching a tier (or joining it) grants its `on_reaching` benefits (welcome gift,
//!   personal shopper); a tier change replaces the `per_tier_year` and `while_held`
//!   allocations by the new tier's, and a tier year lasts 12 months from the change,
//!   renewed while the tier is held;
//! - a birthday grants the tier's `on_birthday` benefits when a birth date is known;
//! - a lower tier (or no tier) withdraws the unused units of benefits it does not
//!   list; what was used stays used.

use jiff::Timestamp;
use thin_vec::ThinVec;

use crate::event::{Id, RejectCode, Rejection};
use crate::member::{At, Happening, MaybeAt, Member, Status};
use crate::program::{Benefit, BenefitGrant, Program};
use crate::short_id::ShortId;

/// Units of one benefit granted at one instant: 80 bytes (a member of a tier holds
/// several, a million members some million grants at 10M events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub benefit: ShortId,
    /// The tier that granted it.
    pub tier: usize,
    pub grant: BenefitGrant,
    pub granted_at: At,
    /// Unused units lapse at this instant (none: while the grant lasts).
    pub expires_at: MaybeAt,
    /// `None`: unlimited.
    pub units: Option<u32>,
    /// When and by which event each unit was used.
    pub uses: ThinVec<(Timestamp, Id)>,
    pub withdrawn_at: MaybeAt,
}

impl Grant {
    /// Units left at `at` (`None`: unlimited), 0 once withdrawn or lapsed.
    pub fn remaining(&self, at: Timestamp) -> Option<u32> {
        if !self.is_open(at) {
            return Some(0);
        }
        self.units.map(|u| u.saturating_sub(self.uses.len() as u32))
    }

    /// Not withdrawn and not lapsed at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        self.withdrawn_at.is_none_or(|w| w > at) && self.expires_at.is_none_or(|e| e > at)
    }

    /// Can an event at `at` spend a unit? Events come before the time rules of their
    /// instant (contract.md), so a unit lapsing exactly at `at` is still usable.
    fn usable(&self, at: Timestamp) -> bool {
        self.withdrawn_at.is_none_or(|w| w > at)
            && self.expires_at.is_none_or(|e| e >= at)
            && self.units.is_none_or(|u| (self.uses.len() as u32) < u)
    }
}

/// The program's definition of a benefit id (the tier's own, else any tier's).
pub fn definition<'p>(program: &'p Program, tier: Option<usize>, benefit: &str) -> Option<&'p Benefit> {
    tier.and_then(|t| program.tiers[t].benefits.iter().find(|b| b.id == benefit))
        .or_else(|| program.tiers.iter().flat_map(|t| &t.benefits).find(|b| b.id == benefit))
}

impl Member {
    /// A tier change: withdraws what the new tier no longer gives, replaces the
    /// yearly and standing allocations, grants the welcome benefits of a tier
    /// reached from below, and starts a new tier year.
    pub(crate) fn benefits_on_tier_change(
        &mut self,
        program: &Program,
        from: Option<usize>,
        to: Option<usize>,
        at: Timestamp,
    ) {
        let up = to > from;
        let kept: Vec<&str> =
            to.map(|t| program.tiers[t].benefits.iter().map(|b| b.id.as_str()).collect()).unwrap_or_default();
        let mut withdrawn = Vec::new();
        for grant in &mut self.grants {
            if !grant.is_open(at) {
                continue;
            }
            let replaced = matches!(grant.grant, BenefitGrant::PerTierYear | BenefitGrant::WhileHeld);
            if replaced || (!up && !kept.contains(&grant.benefit.as_str())) {
                grant.withdrawn_at = at.into();
                withdrawn.push(grant.benefit.to_id());
            }
        }
        for benefit in withdrawn {
            self.note(Happening { benefit: Some(benefit), ..Happening::new(at, "benefit_withdrawn") });
        }
        self.forget_unused_closed_grants(at);
        self.tier_year_end = MaybeAt::NONE;
        let Some(tier) = to else { return };
        let year_end = program.calendar.add_months(at, 12);
        for benefit in &program.tiers[tier].benefits {
            match benefit.grant {
                BenefitGrant::OnReaching if up => self.grant_benefit(program, tier, benefit, at, None),
                BenefitGrant::PerTierYear => self.grant_benefit(program, tier, benefit, at, Some(year_end)),
                BenefitGrant::WhileHeld => self.grant_benefit(program, tier, benefit, at, None),
                _ => {}
            }
        }
        self.tier_year_end = year_end.into();
        self.wakeups.insert(year_end);
    }

    fn grant_benefit(
        &mut self,
        program: &Program,
        tier: usize,
        benefit: &Benefit,
        at: Timestamp,
        ends: Option<Timestamp>,
    ) {
        let lapses = benefit.validity_days.map(|days| program.calendar.add_days(at, days));
        let expires_at = match (lapses, ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.note(Happening {
            benefit: Some(Id::from(benefit.id.as_str())),
            tier: Some(tier),
            until: expires_at,
            ..Happening::new(at, "benefit_granted")
        });
        crate::member::make_room(&mut self.grants);
        self.grants.push(Grant {
            benefit: ShortId::from(benefit.id.as_str()),
            tier,
            grant: benefit.grant,
            granted_at: at.into(),
            expires_at: expires_at.into(),
            units: benefit.quota,
            uses: ThinVec::new(),
            withdrawn_at: MaybeAt::NONE,
        });
    }

    /// A new tier year while the tier is held: the yearly allocation is renewed.
    pub(crate) fn benefits_tier_year(&mut self, program: &Program, at: Timestamp) {
        if self.tier_year_end.get() != Some(at) {
            return;
        }
        let Some(tier) = self.tier.filter(|_| self.is_earning()) else {
            self.tier_year_end = MaybeAt::NONE;
            return;
        };
        self.forget_unused_closed_grants(at);
        let year_end = program.calendar.add_months(at, 12);
        for benefit in &program.tiers[tier].benefits {
            if benefit.grant == BenefitGrant::PerTierYear {
                self.grant_benefit(program, tier, benefit, at, Some(year_end));
            }
        }
        self.tier_year_end = year_end.into();
        self.wakeups.insert(year_end);
    }

    /// The birthday: the tier's birthday benefits (a birth date is known, or the
    /// birthday was not scheduled).
    pub(crate) fn benefits_birthday(&mut self, program: &Program, at: Timestamp) {
        let Some(tier) = self.tier else { return };
        for benefit in &program.tiers[tier].benefits {
            if benefit.grant == BenefitGrant::OnBirthday {
                self.grant_benefit(program, tier, benefit, at, None);
            }
        }
    }

    /// Grants withdrawn or lapsed without a unit used say nothing any more (the
    /// journal keeps that they were granted): they are dropped, so a member's grants
    /// do not pile up year after year.
    fn forget_unused_closed_grants(&mut self, at: Timestamp) {
        self.grants.retain(|grant| grant.is_open(at) || !grant.uses.is_empty());
    }

    /// Whether any tier gives a birthday benefit.
    pub(crate) fn birthday_benefits(program: &Program) -> bool {
        program.tiers.iter().flat_map(|t| &t.benefits).any(|b| b.grant == BenefitGrant::OnBirthday)
    }

    /// `benefit.used`: spends one unit, the first to lapse first (idempotent through
    /// the event id). Refused when none is left.
    pub fn use_benefit(
        &mut self,
        program: &Program,
        benefit: &str,
        event: &Id,
        at: Timestamp,
    ) -> Result<(), Rejection> {
        if definition(program, None, benefit).is_none() {
            return Err(Rejection::new(
                RejectCode::UnknownBenefit,
                format!("benefit: {benefit:?} is not a benefit of program {:?}", program.id),
            ));
        }
        if self.wiped || self.status != Status::Active {
            return Err(Rejection::new(
                RejectCode::BenefitUnavailable,
                format!("benefit: member {:?} is not active", self.id),
            ));
        }
        let chosen = self
            .grants
            .iter()
            .enumerate()
            .filter(|(_, g)| g.benefit == benefit && g.usable(at))
            .min_by_key(|(_, g)| (g.expires_at.is_none(), g.expires_at.get(), g.granted_at.get()))
            .map(|(index, _)| index);
        let Some(index) = chosen else {
            return Err(Rejection::new(
                RejectCode::BenefitUnavailable,
                format!("benefit: member {:?} has no {benefit:?} left", self.id),
            ));
        };
        self.grants[index].uses.push((at, event.clone()));
        self.note(Happening { benefit: Some(Id::from(benefit)), ..Happening::new(at, "benefit_used") });
        Ok(())
    }

    /// The member's benefits at `at`: one line per benefit id currently open, with
    /// what is left (`None`: unlimited) and when the first unit lapses.
    pub fn benefits(&self, at: Timestamp) -> Vec<BenefitView> {
        let mut views: Vec<BenefitView> = Vec::new();
        for grant in self.grants.iter().filter(|g| g.is_open(at)) {
            let remaining = grant.remaining(at);
            // When the first unit still usable lapses (used units do not count).
            let lapses = if remaining.is_none_or(|r| r > 0) { grant.expires_at.get() } else { None };
            match views.iter_mut().find(|v| v.benefit == grant.benefit.as_str()) {
                Some(view) => {
                    view.remaining = match (view.remaining, remaining) {
                        (Some(a), Some(b)) => Some(a + b),
                        _ => None,
                    };
                    view.used += grant.uses.len() as u32;
                    view.expires_at = match (view.expires_at, lapses) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => views.push(BenefitView {
                    benefit: grant.benefit.to_id(),
                    tier: grant.tier,
                    grant: grant.grant,
                    remaining,
                    used: grant.uses.len() as u32,
                    expires_at: lapses,
                }),
            }
        }
        views
    }
}

/// One benefit as a member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenefitView {
    pub benefit: Id,
    pub tier: usize,
    pub grant: BenefitGrant,
    /// `None`: unlimited.
    pub remaining: Option<u32>,
    pub used: u32,
    pub expires_at: Option<Timestamp>,
}
