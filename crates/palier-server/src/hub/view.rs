//! What the hub's pages show, computed from a member's state, document and
//! timeline: every value already formatted for the locale, so templates only place
//! (and escape) strings.

use jiff::Timestamp;
use palier_core::MemberDocument;
use palier_core::member::{Happening, Member};
use palier_core::money::{Currency, Minor};
use palier_core::program::{Program, Qualification};

use super::locale::Locale;
use super::text::{Text, benefit_name, capitalized, fill, text};

/// What is left of a benefit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remaining {
    Unlimited,
    Left(u32),
}

/// One benefit as the hub lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenefitLine {
    /// The program file's benefit id.
    pub id: String,
    /// The program file's name (English).
    pub name: String,
    pub remaining: Remaining,
    pub valid_until: Option<Timestamp>,
}

pub struct TierView {
    pub name: String,
    /// CSS class of the badge.
    pub badge: String,
    /// "since …"
    pub since: Option<String>,
}

pub struct ProgressView {
    pub title: String,
    /// 0 to 100.
    pub percent: u8,
    /// "€3,150.00 of €6,000.00"
    pub of_threshold: String,
    /// "€2,850.00 to go to reach Gold"
    pub sentence: String,
    /// The remaining amount alone.
    pub remaining: String,
}

pub struct PendingRow {
    pub order: String,
    pub amount: String,
    pub counts: String,
}

pub struct PointsView {
    pub available: String,
    pub pending: String,
    pub held: Option<String>,
    /// (expiry date, points)
    pub expiry: Vec<(String, String)>,
    /// (order, points, available on)
    pub incoming: Vec<(String, String, String)>,
}

pub struct CreditView {
    pub available: String,
    /// (expiry date, amount)
    pub expiry: Vec<(String, String)>,
}

pub struct BenefitView {
    pub name: String,
    pub detail: Vec<String>,
}

pub struct HistoryRow {
    pub date: String,
    pub sentence: String,
}

/// The member page.
pub struct MemberView {
    pub member: String,
    pub notice: Option<&'static str>,
    pub tier: Option<TierView>,
    pub review: Option<String>,
    pub spend_label: String,
    pub qualifying: Option<String>,
    pub progress: Option<ProgressView>,
    pub top_tier: bool,
    pub pending_total: Option<String>,
    pub pending: Vec<PendingRow>,
    pub points: Option<PointsView>,
    pub credit: Option<CreditView>,
    pub benefits: Vec<BenefitView>,
    pub history: Vec<HistoryRow>,
}

/// Formats values of one program for one locale.
pub struct Formatter<'a> {
    pub program: &'a Program,
    pub locale: Locale,
    pub currency: Option<Currency>,
}

impl Formatter<'_> {
    pub fn t(&self) -> &'static Text {
        text(self.locale)
    }

    pub fn date(&self, at: Timestamp) -> String {
        self.locale.date(self.program.calendar.civil(at).date())
    }

    /// Date and time of day in the program's zone (staff views).
    pub fn date_time(&self, at: Timestamp) -> String {
        let civil = self.program.calendar.civil(at);
        format!("{} {:02}:{:02}", self.locale.date(civil.date()), civil.hour(), civil.minute())
    }

    pub fn money(&self, amount: Minor) -> String {
        match self.currency {
            Some(currency) => self.locale.money(currency, amount),
            None => self.locale.integer(amount.0),
        }
    }

    pub fn points(&self, points: i64) -> String {
        self.locale.integer(points)
    }

    /// A benefit's name in the locale, else the program file's, else its id.
    pub fn benefit(&self, id: &str, tier: Option<usize>) -> String {
        benefit_name(self.locale, id)
            .map(str::to_string)
            .or_else(|| palier_core::benefits::definition(self.program, tier, id).map(|b| b.name.clone()))
            .unwrap_or_else(|| id.replace('_', " "))
    }

    pub fn tier_name(&self, tier: Option<usize>) -> Option<String> {
        tier.and_then(|t| self.program.tiers.get(t)).map(|t| t.name.clone())
    }

    /// A document amount string (`"2850.00"`, the contract's format) in the locale.
    pub fn document_amount(&self, amount: &str) -> String {
        match self.currency.and_then(|c| c.parse_amount(amount).ok()) {
            Some(minor) => self.money(minor),
            None => amount.to_string(),
        }
    }

    /// One timeline entry in words (`None`: nothing to tell the member).
    pub fn phrase(&self, happening: &Happening) -> Option<String> {
        let t = self.t();
        let amount = happening.amount.map(|a| self.money(a)).unwrap_or_default();
        let order = happening.order.as_deref().unwrap_or_default();
        let points = happening.points.map(|p| self.points(p)).unwrap_or_default();
        let until = happening.until.map(|u| self.date(u)).unwrap_or_default();
        let tier = self.tier_name(happening.tier).unwrap_or_default();
        let benefit = happening.benefit.as_deref().map(|b| self.benefit(b, happening.tier)).unwrap_or_default();
        let monthly = matches!(self.program.qualification, Qualification::Rolling { monthly_application: true, .. });
        let values = [
            ("amount", amount.as_str()),
            ("order", order),
            ("points", points.as_str()),
            ("date", until.as_str()),
            ("tier", tier.as_str()),
            ("benefits", benefit.as_str()),
        ];
        let phrase = match happening.rule {
            "" => return None,
            "member_registered" if happening.tier.is_some() => t.h_joined_tier,
            "member_registered" => t.h_joined,
            "order_placed" => {
                let placed = fill(t.h_order_placed, &values);
                return Some(match happening.points {
                    Some(p) if p > 0 => format!("{placed}, {}", fill(t.h_points_pending, &values)),
                    _ => placed,
                });
            }
            "order_delivered" => t.h_order_delivered,
            "value_matured" if monthly => t.h_window_closed,
            "value_matured" => t.h_counted_order,
            "value_applied" => t.h_counted,
            "tier_upgraded" if happening.tier.is_none() => t.h_tier_ended,
            "tier_upgraded" => t.h_tier_reached,
            "tier_kept" => t.h_tier_kept,
            "tier_confirmed" => t.h_tier_confirmed,
            "tier_raised" => t.h_tier_raised,
            "tier_lowered" if happening.tier.is_none() => t.h_tier_ended,
            "tier_lowered" => t.h_tier_lowered,
            "points_available" => t.h_points_available,
            "points_expired" => t.h_points_expired,
            "points_burned" => t.h_points_burned,
            "points_given_back" => t.h_points_given_back,
            "points_redeemed" => t.h_points_redeemed,
            "birthday_bonus" => t.h_birthday,
            "units_removed" => t.h_units_removed,
            "member_suspended" => t.h_suspended,
            "member_reinstated" => t.h_reinstated,
            "member_closed" => t.h_closed,
            "member_opted_out" => t.h_opted_out,
            "benefit_granted" => t.h_benefit_granted,
            "benefit_withdrawn" => t.h_benefit_withdrawn,
            "benefit_used" => t.h_benefit_used,
            other => return Some(other.replace('_', " ")),
        };
        Some(fill(phrase, &values))
    }

    /// The timeline in words, one line per instant, newest first: "1 March 2026:
    /// €3,150.00 counted, Silver reached, benefits granted: Welcome gift, …". The
    /// benefits of one instant are named together after the rest; a benefit
    /// withdrawn and granted again at one instant (a tier change renews the yearly
    /// allocations) is told as granted only.
    pub fn history(&self, happenings: &[Happening]) -> Vec<HistoryRow> {
        #[derive(Default)]
        struct Instant {
            phrases: Vec<String>,
            granted: Vec<String>,
            withdrawn: Vec<String>,
            used: Vec<String>,
        }
        let mut rows: Vec<(Timestamp, Instant)> = Vec::new();
        for happening in happenings {
            if rows.last().is_none_or(|(at, _)| *at != happening.at) {
                rows.push((happening.at, Instant::default()));
            }
            let Some((_, row)) = rows.last_mut() else { continue };
            let benefit = happening.benefit.as_deref().map(|b| self.benefit(b, happening.tier));
            match (happening.rule, benefit) {
                ("benefit_granted", Some(name)) => row.granted.push(name),
                ("benefit_withdrawn", Some(name)) => row.withdrawn.push(name),
                ("benefit_used", Some(name)) => row.used.push(name),
                _ => row.phrases.extend(self.phrase(happening)),
            }
        }
        let t = self.t();
        let unique = |names: Vec<String>| {
            let mut seen: Vec<String> = Vec::new();
            for name in names {
                if !seen.contains(&name) {
                    seen.push(name);
                }
            }
            seen
        };
        rows.into_iter()
            .rev()
            .filter_map(|(at, row)| {
                let Instant { mut phrases, granted, withdrawn, used } = row;
                let granted = unique(granted);
                let withdrawn: Vec<String> = unique(withdrawn).into_iter().filter(|w| !granted.contains(w)).collect();
                for (phrase, names) in [
                    (t.h_benefit_granted, granted),
                    (t.h_benefit_withdrawn, withdrawn),
                    (t.h_benefit_used, unique(used)),
                ] {
                    if !names.is_empty() {
                        phrases.push(fill(phrase, &[("benefits", &names.join(", "))]));
                    }
                }
                (!phrases.is_empty())
                    .then(|| HistoryRow { date: self.date(at), sentence: capitalized(&phrases.join(", ")) })
            })
            .collect()
    }

    /// When an order's pending value counts.
    fn counts_on(&self, delivered: bool, matures_at: Option<Timestamp>, applies_at: Option<Timestamp>) -> String {
        if !delivered {
            return self.t().after_delivery.to_string();
        }
        let monthly = matches!(self.program.qualification, Qualification::Rolling { monthly_application: true, .. });
        let at = match (applies_at, matures_at) {
            (Some(applies), _) => Some(applies),
            (None, Some(matures)) if monthly => Some(self.program.calendar.month_start_at_or_after(matures)),
            (None, matures) => matures,
        };
        at.map_or_else(|| self.t().after_delivery.to_string(), |at| self.date(at))
    }
}

/// The badge's CSS class for a tier id (metal colours for the usual names).
pub fn badge_class(program: &Program, tier: usize) -> String {
    let id = program.tiers.get(tier).map(|t| t.id.as_str()).unwrap_or_default();
    let known = ["bronze", "silver", "gold", "platinum", "eip", "platinum_eip", "base", "standart", "luxe", "premium"];
    if known.contains(&id) {
        format!("badge badge-{}", id.replace('_', "-"))
    } else {
        format!("badge badge-rank-{}", tier.min(5))
    }
}

/// The member page's content.
pub fn member_view(
    program: &Program,
    member: &Member,
    document: &MemberDocument,
    happenings: &[Happening],
    benefits: &[BenefitLine],
    locale: Locale,
    now: Timestamp,
) -> MemberView {
    let f = Formatter { program, locale, currency: member.currency };
    let t = f.t();
    let notice = match document.status {
        "suspended" => Some(t.status_suspended),
        "closed" => Some(t.status_closed),
        "opted_out" => Some(t.status_opted_out),
        "ineligible" => Some(t.status_ineligible),
        _ => None,
    };
    let tier_index = document.tier.as_deref().and_then(|id| program.tier_index(id));
    let tier = tier_index.map(|index| TierView {
        name: program.tiers[index].name.clone(),
        badge: badge_class(program, index),
        since: member.tier_since.map(|since| fill(t.tier_since, &[("date", &f.date(since))])),
    });
    let review = match (tier_index, member.tier_until.get()) {
        (None, _) => None,
        (Some(_), Some(until)) => Some(fill(t.tier_review, &[("date", &f.date(until))])),
        (Some(_), None) if matches!(program.qualification, Qualification::Lifetime) => {
            Some(t.tier_never_lowered.to_string())
        }
        (Some(_), None) => Some(t.tier_no_review.to_string()),
    };
    let spend_label = match program.qualification {
        Qualification::Rolling { window_months, .. } => {
            fill(t.spend_rolling, &[("months", &window_months.to_string())])
        }
        Qualification::CalendarYear => fill(t.spend_year, &[("year", &program.calendar.year(now).to_string())]),
        Qualification::Lifetime => t.spend_lifetime.to_string(),
    };
    let qualifying = document.qualifying_spend.as_deref().map(|a| f.document_amount(a));
    let progress = match (&document.next_tier, member.currency) {
        (Some(next), Some(currency)) => {
            let name = program.tier_index(&next.tier).map_or(next.tier.clone(), |i| program.tiers[i].name.clone());
            let threshold = currency.parse_amount(&next.threshold).unwrap_or(Minor::ZERO);
            let remaining = currency.parse_amount(&next.remaining).unwrap_or(Minor::ZERO);
            let spend = Minor(threshold.0 - remaining.0);
            let percent = if threshold.0 <= 0 {
                100
            } else {
                (i128::from(spend.0.max(0)) * 100 / i128::from(threshold.0)).clamp(0, 100) as u8
            };
            let remaining_text = f.money(remaining);
            Some(ProgressView {
                title: fill(t.progress_title, &[("tier", &name)]),
                percent,
                of_threshold: fill(t.of_threshold, &[("spend", &f.money(spend)), ("threshold", &f.money(threshold))]),
                sentence: fill(t.remaining, &[("amount", &remaining_text), ("tier", &name)]),
                remaining: remaining_text,
            })
        }
        _ => None,
    };
    let top_tier = notice.is_none() && progress.is_none() && tier_index.is_some_and(|i| i + 1 == program.tiers.len());
    let no_value = notice.is_some() && document.status != "suspended";
    let pending: Vec<PendingRow> = if no_value {
        Vec::new()
    } else {
        member
            .orders
            .iter()
            .filter(|o| o.earning() && !o.applied() && o.net_value().0 > 0)
            .map(|o| PendingRow {
                order: o.order.to_string(),
                amount: f.money(o.net_value()),
                counts: f.counts_on(o.delivered_at.is_some(), o.matures_at.get(), o.applies_at.get()),
            })
            .collect()
    };
    let pending_total = document.pending_spend.as_deref().map(|a| f.document_amount(a));
    let points = document.points.map(|balance| {
        let mut expiry: Vec<(String, i64)> = Vec::new();
        if !no_value {
            for lot in member.points.lots.iter().filter(|l| l.points > 0) {
                let date = f.date(lot.expires_at);
                match expiry.last_mut() {
                    Some((last, sum)) if *last == date => *sum += lot.points,
                    _ => expiry.push((date, lot.points)),
                }
            }
        }
        let incoming = if no_value {
            Vec::new()
        } else {
            member
                .orders
                .iter()
                .filter(|o| o.earning() && !o.points_available() && o.net_points() > 0)
                .map(|o| {
                    let on = match (o.delivered_at.get(), o.matures_at.get()) {
                        (Some(_), Some(matures)) => f.date(matures),
                        _ => t.after_delivery.to_string(),
                    };
                    (o.order.to_string(), f.points(o.net_points()), on)
                })
                .collect()
        };
        PointsView {
            available: f.points(balance.available),
            pending: f.points(balance.pending),
            held: (balance.held > 0).then(|| f.points(balance.held)),
            expiry: expiry.into_iter().map(|(date, points)| (date, f.points(points))).collect(),
            incoming,
        }
    });
    let credit = match (&program.store_credit, member.currency) {
        (Some(_), Some(_)) if member.credit.balance() != 0 || !member.credit.lots.is_empty() => Some(CreditView {
            available: f.money(Minor(member.credit.balance())),
            expiry: member
                .credit
                .lots
                .iter()
                .filter(|l| l.points > 0)
                .map(|l| (f.date(l.expires_at), f.money(Minor(l.points))))
                .collect(),
        }),
        _ => None,
    };
    let benefits = benefits
        .iter()
        .map(|b| {
            let mut detail = Vec::new();
            match b.remaining {
                Remaining::Unlimited => detail.push(t.benefit_unlimited.to_string()),
                Remaining::Left(n) => detail.push(fill(t.benefit_left, &[("n", &locale.integer(i64::from(n)))])),
            }
            if let Some(until) = b.valid_until {
                detail.push(fill(t.benefit_until, &[("date", &f.date(until))]));
            }
            BenefitView { name: benefit_name(locale, &b.id).map_or_else(|| b.name.clone(), str::to_string), detail }
        })
        .collect();
    MemberView {
        member: document.member.clone(),
        notice,
        tier,
        review,
        spend_label,
        qualifying,
        progress,
        top_tier,
        pending_total,
        pending,
        points,
        credit,
        benefits,
        history: f.history(happenings),
    }
}

#[cfg(test)]
mod tests {
    use palier_core::event::Id;

    use super::*;

    fn program() -> Program {
        let text = include_str!("../../../../programs/net-a-porter.toml");
        Program::parse("net-a-porter.toml", text).expect("the shipped program parses")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("an instant")
    }

    fn happening(at_text: &str, rule: &'static str) -> Happening {
        Happening { at: at(at_text), rule, ..Happening::default() }
    }

    #[test]
    fn one_sentence_per_instant_benefits_last_renewals_as_grants() {
        let program = program();
        let silver = program.tier_index("silver");
        let benefit = |rule, id: &str| Happening {
            benefit: Some(Id::from(id)),
            tier: silver,
            ..happening("2029-11-01T00:00:00Z", rule)
        };
        let happenings = vec![
            Happening {
                order: Some(Id::from("o-1")),
                amount: Some(Minor(315_000)),
                ..happening("2029-10-01T10:00:00Z", "order_placed")
            },
            Happening { amount: Some(Minor(315_000)), ..happening("2029-11-01T00:00:00Z", "value_applied") },
            benefit("benefit_withdrawn", "exclusive_discount"),
            benefit("benefit_granted", "welcome_gift"),
            benefit("benefit_granted", "exclusive_discount"),
            Happening { tier: silver, ..happening("2029-11-01T00:00:00Z", "tier_upgraded") },
            happening("2029-11-01T00:00:00Z", ""),
        ];
        let currency = palier_core::money::Currency::from_code("EUR");
        let english = Formatter { program: &program, locale: Locale::En, currency };
        let rows = english.history(&happenings);
        let shown: Vec<(String, String)> = rows.into_iter().map(|r| (r.date, r.sentence)).collect();
        assert_eq!(
            shown,
            [
                (
                    "1 November 2029".to_string(),
                    "€3,150.00 counted, Silver reached, benefits granted: Welcome gift, Exclusive discount".to_string()
                ),
                ("1 October 2029".to_string(), "Order o-1 placed: €3,150.00".to_string()),
            ]
        );
        let korean = Formatter { program: &program, locale: Locale::Ko, currency };
        assert_eq!(
            korean.history(&happenings)[0].sentence,
            "€3,150.00 반영, Silver 등급 달성, 혜택 지급: 웰컴 기프트, 익스클루시브 할인"
        );
    }

    #[test]
    fn pending_value_counts_on_the_next_month_start() {
        let program = program();
        let f = Formatter { program: &program, locale: Locale::Fr, currency: None };
        assert_eq!(f.counts_on(false, None, None), "après la livraison");
        // Matures 2 February 10:00: applied 1 March 00:00 (London).
        assert_eq!(f.counts_on(true, Some(at("2030-02-02T10:00:00Z")), None), "1 mars 2030");
        // Maturing exactly at a month start is applied at that instant.
        assert_eq!(f.counts_on(true, Some(at("2030-03-01T00:00:00Z")), None), "1 mars 2030");
        assert_eq!(f.counts_on(true, None, Some(at("2030-04-01T00:00:00Z"))), "1 avril 2030");
    }
}
