//! Notifications: what the retailer's systems are told, derived from a member's
//! journal and ledger (programs.md §5, issue 6).
//!
//! A notification is a pure function of the member's events and the instant: the
//! same events always give the same notifications with the same ids, so a scanner
//! may derive a window again after a crash and the outbox keeps one row per id
//! (at-least-once delivery, exactly-once recording).

use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::calendar::format_instant;
use crate::event::LedgerKind;
use crate::ledger::{Bucket, Reason};
use crate::member::Member;
use crate::privacy::ConsentChannel;
use crate::program::Program;

/// One notification.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Stable: a hash of program, member, kind, instant and what it is about.
    pub id: String,
    pub program: String,
    pub member: String,
    /// `tier_reached`, `tier_kept`, `tier_lowered`, `tier_expiring`, `welcome_gift`,
    /// `birthday`, `benefit_granted`, `points_available`, `points_expiring`,
    /// `store_credit_granted`, `store_credit_expiring`.
    pub kind: &'static str,
    /// `service` (account information, always sent) or `marketing` (sent only to a
    /// member who consents on some channel, and only on those channels).
    pub section: &'static str,
    pub at: Timestamp,
    pub data: Value,
    /// The channels the retailer may use for it.
    pub channels: Vec<&'static str>,
}

fn id_of(program: &str, member: &str, kind: &str, at: Timestamp, key: &str) -> String {
    let digest = Sha256::digest(format!("{program}\u{0}{member}\u{0}{kind}\u{0}{at}\u{0}{key}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The notifications due in `(from, to]` for a member recomputed to `to` with its
/// journal on (see `MemberHistory::journaled`).
pub fn notifications(program: &Program, member: &Member, from: Timestamp, to: Timestamp) -> Vec<Notification> {
    let mut out = Vec::new();
    let tier_name = |tier: Option<usize>| tier.map(|t| program.tiers[t].id.clone());
    let mut push = |kind: &'static str, marketing: bool, at: Timestamp, key: String, data: Value| {
        if at <= from || at > to {
            return;
        }
        // Consent as it stood when the notification fell due, not when it is derived.
        let consented = |channel: ConsentChannel| {
            member.consents().iter().rev().find(|c| c.channel == channel && c.at <= at).is_some_and(|c| c.granted)
        };
        let channels: Vec<&'static str> = if marketing {
            ConsentChannel::ALL.iter().filter(|c| consented(**c)).map(|c| c.as_str()).collect()
        } else {
            ConsentChannel::ALL.iter().map(|c| c.as_str()).collect()
        };
        if channels.is_empty() {
            return;
        }
        out.push(Notification {
            id: id_of(&program.id, &member.id, kind, at, &key),
            program: program.id.clone(),
            member: member.id.to_string(),
            kind,
            section: if marketing { "marketing" } else { "service" },
            at,
            data,
            channels,
        });
    };
    let journal = member.journal();
    for (index, happening) in journal.iter().enumerate() {
        let at = happening.at;
        let tier = tier_name(happening.tier);
        let data = json!({
            "tier": tier, "from_tier": tier_name(happening.from_tier),
            "until": happening.until.map(format_instant), "points": happening.points,
            "benefit": happening.benefit,
        });
        match happening.rule {
            "tier_upgraded" | "tier_raised" => push("tier_reached", false, at, tier.unwrap_or_default(), data),
            "tier_kept" | "tier_confirmed" => push("tier_kept", false, at, tier.unwrap_or_default(), data),
            "tier_lowered" => push("tier_lowered", false, at, tier.unwrap_or_default(), data),
            "points_available" => push("points_available", false, at, String::new(), data),
            "birthday_bonus" => push("birthday", true, at, "points".into(), data),
            "benefit_granted" => {
                let benefit = happening.benefit.as_deref().unwrap_or_default();
                let kind = match benefit {
                    "welcome_gift" => "welcome_gift",
                    "birthday_gift" => "birthday",
                    _ => "benefit_granted",
                };
                push(kind, true, at, benefit.to_string(), data);
            }
            _ => {}
        }
        // The tier's term, announced ahead if nothing changes it before.
        if let (Some(until), true) = (happening.until, happening.rule.starts_with("tier_")) {
            let notice = program.calendar.add_days(until, -program.notices.tier_expiring_days);
            // Only if the tier still runs to `until` at the notice: no tier change,
            // closure or opt-out before it (the state at derivation does not count,
            // so a window derived late says the same).
            let ended = |rule: &str| rule.starts_with("tier_") || rule == "member_closed" || rule == "member_opted_out";
            let changed_before = journal[index + 1..].iter().any(|h| ended(h.rule) && h.at <= notice);
            if notice > at && !changed_before && happening.tier.is_some() {
                let data = json!({"tier": tier_name(happening.tier), "until": format_instant(until)});
                push("tier_expiring", false, notice, format_instant(until), data);
            }
        }
    }
    for entry in member.ledger() {
        let (granted, expiring) = match entry.kind {
            LedgerKind::Points => (None, "points_expiring"),
            LedgerKind::StoreCredit => (Some("store_credit_granted"), "store_credit_expiring"),
        };
        if entry.bucket != Bucket::Available || entry.amount <= 0 {
            continue;
        }
        let amount = match (entry.kind, member.currency) {
            (LedgerKind::StoreCredit, Some(c)) => json!(c.format(crate::money::Minor(entry.amount))),
            _ => json!(entry.amount),
        };
        let key = format!("{}:{}", entry.reason.as_str(), entry.expires_at.map(format_instant).unwrap_or_default());
        if let Some(kind) = granted
            && matches!(entry.reason, Reason::PriceAdjustment | Reason::ManualAdjustment | Reason::GivenBack)
        {
            let data = json!({"amount": amount, "reason": entry.reason.as_str(), "expires_at": entry.expires_at.map(format_instant)});
            push(kind, false, entry.at, key.clone(), data);
        }
        if let Some(expires_at) = entry.expires_at {
            let notice = program.calendar.add_days(expires_at, -program.notices.points_expiring_days);
            if notice > entry.at {
                let data = json!({"amount": amount, "expires_at": format_instant(expires_at)});
                push(expiring, false, notice, key, data);
            }
        }
    }
    out.sort_by(|a, b| (a.at, a.kind, &a.id).cmp(&(b.at, b.kind, &b.id)));
    out
}
