//! Sale prices by SKU and size, for sale price adjustments (programs.md §4).
//!
//! `sale.started` events are program-wide facts, not a member's: they are gathered
//! here, and a member's adjustment request looks up the price in force at its own
//! instant, so the answer does not depend on the order events are read in.

use jiff::Timestamp;

use crate::event::{Id, Sale};
use crate::money::{Currency, Minor};

/// One style and size on sale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleItem {
    pub sale: Id,
    pub starts_at: Timestamp,
    pub sku: Id,
    pub size: Option<Id>,
    pub currency: Currency,
    /// Sale price of one unit.
    pub price: Minor,
    pub available: bool,
}

/// Every sale announced, in order of start (ties: arrival order).
#[derive(Clone, Debug, Default)]
pub struct Sales {
    items: Vec<SaleItem>,
}

impl Sales {
    pub fn new() -> Sales {
        Sales::default()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds a sale starting at `at`; a later announcement for the same style and
    /// size (a new price, or no longer available) supersedes the earlier one.
    pub fn add(&mut self, sale: &Sale, at: Timestamp) {
        let position = self.items.partition_point(|i| i.starts_at <= at);
        let items = sale.items.iter().map(|item| SaleItem {
            sale: sale.sale.clone(),
            starts_at: at,
            sku: item.sku.clone(),
            size: item.size.clone(),
            currency: sale.currency,
            price: item.price,
            available: item.available,
        });
        self.items.splice(position..position, items);
    }

    /// The latest announcement for a style and size in a currency, at or before
    /// `at`.
    pub fn find(&self, sku: &str, size: Option<&str>, currency: Currency, at: Timestamp) -> Option<&SaleItem> {
        let end = self.items.partition_point(|i| i.starts_at <= at);
        self.items[..end].iter().rev().find(|i| i.sku == sku && i.size.as_deref() == size && i.currency == currency)
    }
}
