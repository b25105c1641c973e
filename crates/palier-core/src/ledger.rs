//! Ledgers: points and store credit as lots with their own expiry, and the
//! append-only list of entries that explains every change.
//!
//! A [`Purse`] is the cached balance the rules work with; the [`Entry`] list is the
//! record. Every change to a purse goes through one of the member's ledger
//! functions, which writes its entry, so each balance equals the sum of its entries
//! (checked by tests).

use jiff::Timestamp;
use thin_vec::ThinVec;

use crate::event::{Id, LedgerKind};

/// A lot of value with its own expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lot {
    pub points: i64,
    pub expires_at: Timestamp,
}

/// A balance made of lots, spent first-to-expire first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purse {
    /// Earliest expiry first.
    pub lots: ThinVec<Lot>,
    /// A negative balance after a clawback (programs.md §7.8).
    pub debt: i64,
    /// Reserved by open checkout holds; still part of the balance.
    pub held: i64,
}

impl Purse {
    /// Lots less debt; negative after a clawback.
    pub fn balance(&self) -> i64 {
        self.lots.iter().map(|l| l.points).sum::<i64>() - self.debt
    }

    /// What a new spend may take: the balance less what holds reserve.
    pub fn free(&self) -> i64 {
        self.balance() - self.held
    }

    /// Adds a lot; a debt is paid first. Returns whether a lot was added (its
    /// expiry needs a wake-up).
    pub fn credit(&mut self, amount: i64, expires_at: Timestamp) -> bool {
        let paid = amount.min(self.debt).max(0);
        self.debt -= paid;
        let rest = amount - paid;
        if rest > 0 {
            let position = self.lots.partition_point(|l| l.expires_at <= expires_at);
            crate::member::make_room(&mut self.lots);
            self.lots.insert(position, Lot { points: rest, expires_at });
        }
        rest > 0
    }

    /// Takes `amount` from the lots, first-to-expire first; returns what was taken
    /// from each lot (less than asked if the lots run out).
    pub fn spend(&mut self, mut amount: i64) -> Vec<Lot> {
        let mut portions = Vec::new();
        let mut emptied = 0;
        for lot in &mut self.lots {
            if amount == 0 {
                break;
            }
            let taken = lot.points.min(amount);
            lot.points -= taken;
            amount -= taken;
            portions.push(Lot { points: taken, expires_at: lot.expires_at });
            if lot.points == 0 {
                emptied += 1;
            }
        }
        self.lots.drain(..emptied);
        portions
    }

    /// Takes `amount` even beyond the lots: the rest becomes debt.
    pub fn burn(&mut self, amount: i64) {
        let spent: i64 = self.spend(amount).iter().map(|l| l.points).sum();
        self.debt += amount - spent;
    }

    /// Removes the lots expiring at or before `at`; returns what expired.
    pub fn expire(&mut self, at: Timestamp) -> i64 {
        let expired = self.lots.partition_point(|l| l.expires_at <= at);
        self.lots.drain(..expired).map(|l| l.points).sum()
    }

    /// Empties the purse for good (closure, opt-out); returns the balance removed.
    pub fn clear(&mut self) -> i64 {
        let balance = self.balance();
        self.lots.clear();
        self.debt = 0;
        self.held = 0;
        balance
    }
}

/// Which part of a ledger an entry moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Earned, not usable yet (points waiting for availability).
    Pending,
    /// The balance: usable, may be negative after a clawback.
    Available,
    /// Reserved by checkout holds (part of the balance, not spendable by others).
    Held,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Pending => "pending",
            Bucket::Available => "available",
            Bucket::Held => "held",
        }
    }
}

/// Why an entry was written. Stable: clients match on [`Reason::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Earned,
    Matured,
    Expired,
    Redeemed,
    Held,
    Released,
    HoldExpired,
    Committed,
    GivenBack,
    BurnedOnReturn,
    Birthday,
    PriceAdjustment,
    ManualAdjustment,
    Forfeited,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Earned => "earned",
            Reason::Matured => "matured",
            Reason::Expired => "expired",
            Reason::Redeemed => "redeemed",
            Reason::Held => "held",
            Reason::Released => "released",
            Reason::HoldExpired => "hold_expired",
            Reason::Committed => "committed",
            Reason::GivenBack => "given_back",
            Reason::BurnedOnReturn => "burned_on_return",
            Reason::Birthday => "birthday",
            Reason::PriceAdjustment => "price_adjustment",
            Reason::ManualAdjustment => "manual_adjustment",
            Reason::Forfeited => "forfeited",
        }
    }
}

/// One immutable ledger entry. Amounts are whole points, or store credit in the
/// member's currency's minor units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: Timestamp,
    pub kind: LedgerKind,
    pub reason: Reason,
    pub bucket: Bucket,
    pub amount: i64,
    /// The lot's expiry, for credits to the balance.
    pub expires_at: Option<Timestamp>,
    pub order: Option<Id>,
    pub hold: Option<Id>,
    /// The operator's note of a manual adjustment.
    pub note: Option<String>,
}

impl Entry {
    pub fn new(at: Timestamp, kind: LedgerKind, reason: Reason, bucket: Bucket, amount: i64) -> Entry {
        Entry { at, kind, reason, bucket, amount, expires_at: None, order: None, hold: None, note: None }
    }
}

/// The sum of a ledger's entries in one bucket.
pub fn sum(entries: &[Entry], kind: LedgerKind, bucket: Bucket) -> i64 {
    entries.iter().filter(|e| e.kind == kind && e.bucket == bucket).map(|e| e.amount).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("a valid instant")
    }

    #[test]
    fn spending_takes_the_first_to_expire_first() {
        let mut purse = Purse::default();
        purse.credit(50, at(300));
        purse.credit(30, at(100));
        purse.credit(20, at(200));
        let taken = purse.spend(40);
        assert_eq!(taken, vec![Lot { points: 30, expires_at: at(100) }, Lot { points: 10, expires_at: at(200) }]);
        assert_eq!(purse.balance(), 60);
        assert_eq!(purse.expire(at(200)), 10);
        assert_eq!(purse.balance(), 50);
    }

    #[test]
    fn a_burn_beyond_the_lots_is_debt_paid_by_the_next_credit() {
        let mut purse = Purse::default();
        purse.credit(10, at(100));
        purse.burn(25);
        assert_eq!((purse.balance(), purse.debt), (-15, 15));
        assert!(purse.credit(20, at(500)));
        assert_eq!((purse.balance(), purse.debt), (5, 0));
        assert!(!purse.credit(0, at(600)));
    }
}
