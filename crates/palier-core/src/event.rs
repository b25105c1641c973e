//! Events: parsed and validated at the edge (contract.md "Events").
//!
//! [`parse_event`] turns one JSON object into an [`Event`] or a [`Rejection`] naming
//! the field, the value and the rule. Everything it can check without a member's
//! state is checked here (formats, digits, limits, payments adding up), so that
//! the engine only ever sees well-formed events (programs.md §7.5).

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;

use crate::money::{AmountError, Currency, Minor};
use crate::privacy::{ConsentChannel, GUARDIAN_AGE, Personal, age_on};

mod lean;

/// Ids and short texts: inline up to 24 bytes, no allocation for typical ids.
pub type Id = compact_str::CompactString;

/// Longest id (event, member, order, line, sku…) accepted, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Most lines in one order.
pub const MAX_LINES: usize = 500;
/// Most payments in one order.
pub const MAX_PAYMENTS: usize = 16;
/// Most codes or badges in one list.
pub const MAX_CODES: usize = 16;
/// Instants are accepted from 1970-01-01T00:00:00Z up to, not including,
/// 3000-01-01T00:00:00Z (Unix seconds).
const EARLIEST_INSTANT: i64 = 0;
const LATEST_INSTANT: i64 = 32_503_680_000;
/// Most units of one line.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// Why an event was refused. `code` is stable: clients match on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Rejection {
        Rejection { code, message: message.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

macro_rules! reject_codes {
    ($($variant:ident => $text:literal,)*) => {
        /// Stable reason codes of rejected events.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum RejectCode { $($variant,)* }

        impl RejectCode {
            pub fn as_str(self) -> &'static str {
                match self { $(RejectCode::$variant => $text,)* }
            }

            pub const ALL: &'static [RejectCode] = &[$(RejectCode::$variant,)*];
        }
    };
}

reject_codes! {
    InvalidJson => "invalid_json",
    MissingField => "missing_field",
    InvalidField => "invalid_field",
    UnknownEventType => "unknown_event_type",
    UnknownProgram => "unknown_program",
    TooManyDigits => "too_many_digits",
    NegativeAmount => "negative_amount",
    AmountTooLarge => "amount_too_large",
    InvalidQuantity => "invalid_quantity",
    PaymentsMismatch => "payments_mismatch",
    DuplicateLine => "duplicate_line",
    InvalidDiscount => "invalid_discount",
    InvalidTax => "invalid_tax",
    DuplicateConflict => "duplicate_conflict",
    UnknownMember => "unknown_member",
    MemberExists => "member_exists",
    MemberClosed => "member_closed",
    MemberSuspended => "member_suspended",
    UnknownOrder => "unknown_order",
    OrderExists => "order_exists",
    UnknownLine => "unknown_line",
    OverReturn => "over_return",
    AlreadyDelivered => "already_delivered",
    CurrencyMismatch => "currency_mismatch",
    CurrencyLocked => "currency_locked",
    PointsNotAccepted => "points_not_accepted",
    PointsNotWhole => "points_not_whole",
    PointsOverCap => "points_over_cap",
    PointsOverBalance => "points_over_balance",
    Overflow => "overflow",
    LateConflict => "late_conflict",
    CodeRefused => "code_refused",
    UnknownPromotion => "unknown_promotion",
    CodeExists => "code_exists",
    UnknownHold => "unknown_hold",
    HoldExists => "hold_exists",
    HoldExpired => "hold_expired",
    HoldClosed => "hold_closed",
    StoreCreditNotAccepted => "store_credit_not_accepted",
    StoreCreditOverBalance => "store_credit_over_balance",
    AdjustmentOverBalance => "adjustment_over_balance",
    AdjustmentRefused => "adjustment_refused",
    GuardianConsentRequired => "guardian_consent_required",
    UnderAge => "under_age",
    UnknownBenefit => "unknown_benefit",
    BenefitUnavailable => "benefit_unavailable",
}

/// A validated event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: Id,
    pub at: Timestamp,
    pub program: Option<Id>,
    pub body: EventBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBody {
    MemberRegistered(Box<Registration>),
    MemberUpdated(Box<ProfileUpdate>),
    MemberStatus {
        member: Id,
        change: StatusChange,
    },
    OrderPlaced(Box<Order>),
    OrderDelivered {
        order: Id,
    },
    OrderReturned {
        order: Id,
        lines: Vec<LineQuantity>,
    },
    OrderCancelled {
        order: Id,
        lines: Option<Vec<LineQuantity>>,
    },
    /// `code.issued`: a one-time code of a promotion sent to one member.
    CodeIssued(Box<CodeIssue>),
    /// `checkout.held`: codes, points and store credit held for a checkout.
    CheckoutHeld(Box<Hold>),
    /// `checkout.released`: a hold given up before it is used.
    CheckoutReleased {
        member: Id,
        hold: Id,
    },
    /// `ledger.adjusted`: an operator's entry in a member's points or store credit.
    LedgerAdjusted(Box<Adjustment>),
    /// `sale.started`: sale prices for SKUs and sizes, from the event's `at`.
    SaleStarted(Box<Sale>),
    /// `price_adjustment.requested`: a member asks for the sale price of a line.
    PriceAdjustmentRequested(Box<AdjustmentRequest>),
    /// `consent.changed`: marketing consent on one channel given or withdrawn.
    ConsentChanged(Box<Consent>),
    /// `member.erased`: the member's personal data was replaced by a pseudonym (the
    /// event names the pseudonym).
    MemberErased {
        member: Id,
    },
    /// `benefit.used`: one unit of a benefit spent.
    BenefitUsed {
        member: Id,
        benefit: Id,
    },
}

/// `member.updated`: corrections to a member's profile (rectification).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileUpdate {
    pub member: Id,
    pub country: Option<CountryCode>,
    pub birth_date: Option<Personal<Date>>,
    pub birthday: Option<(i8, i8)>,
    pub name: Option<Personal<String>>,
    pub email: Option<Personal<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub member: Id,
    pub channel: ConsentChannel,
    pub granted: bool,
    /// Where the change came from (`web`, `app`, `store`, `staff:KEY`…).
    pub source: Id,
    /// The version of the consent text agreed to.
    pub text_version: Id,
}

/// `code.issued` (boxed: events stay small in memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeIssue {
    pub member: Id,
    pub code: Id,
    pub promotion: Id,
}

/// `price_adjustment.requested` (boxed: events stay small in memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdjustmentRequest {
    pub member: Id,
    pub order: Id,
    pub line: Id,
}

/// What a checkout holds until it is committed, released or expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub member: Id,
    pub hold: Id,
    /// When it releases itself (default: `at` + the program's `hold_minutes`).
    pub expires_at: Option<Timestamp>,
    pub codes: Vec<Id>,
    pub points: i64,
    /// Store credit, in `currency`'s minor units.
    pub store_credit: Minor,
    pub currency: Option<Currency>,
}

/// Which ledger an adjustment writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerKind {
    Points,
    StoreCredit,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Points => "points",
            LedgerKind::StoreCredit => "store_credit",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    pub member: Id,
    pub ledger: LedgerKind,
    /// Signed: points, or store credit in `currency`'s minor units.
    pub amount: i64,
    pub currency: Option<Currency>,
    pub note: String,
    /// For a credit: when it expires (default: the program's validity).
    pub expires_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sale {
    pub sale: Id,
    pub currency: Currency,
    pub items: Vec<SaleItem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleItem {
    pub sku: Id,
    pub size: Option<Id>,
    /// Sale price of one unit.
    pub price: Minor,
    /// In stock in this style and size.
    pub available: bool,
}

impl EventBody {
    /// The member an event names directly (order events other than `order.placed`
    /// name only their order).
    pub fn member(&self) -> Option<&str> {
        match self {
            EventBody::MemberRegistered(r) => Some(&r.member),
            EventBody::MemberUpdated(update) => Some(&update.member),
            EventBody::ConsentChanged(consent) => Some(&consent.member),
            EventBody::MemberStatus { member, .. }
            | EventBody::MemberErased { member }
            | EventBody::BenefitUsed { member, .. } => Some(member),
            EventBody::OrderPlaced(order) => Some(&order.member),
            EventBody::CodeIssued(issue) => Some(&issue.member),
            EventBody::PriceAdjustmentRequested(request) => Some(&request.member),
            EventBody::CheckoutReleased { member, .. } => Some(member),
            EventBody::CheckoutHeld(hold) => Some(&hold.member),
            EventBody::LedgerAdjusted(adjustment) => Some(&adjustment.member),
            _ => None,
        }
    }

    /// The order an event names, if any.
    pub fn order(&self) -> Option<&str> {
        match self {
            EventBody::OrderPlaced(order) => Some(&order.order),
            EventBody::OrderDelivered { order }
            | EventBody::OrderReturned { order, .. }
            | EventBody::OrderCancelled { order, .. } => Some(order),
            _ => None,
        }
    }
}

/// An ISO 3166-1 alpha-2 country code (two capital letters), in two bytes: every
/// member keeps one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// The code, if `value` is two capital ASCII letters.
    pub fn new(value: &str) -> Option<CountryCode> {
        match *value.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Some(CountryCode([a, b])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Two ASCII letters, checked by `new`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for CountryCode {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub member: Id,
    pub country: CountryCode,
    pub birth_date: Option<Personal<Date>>,
    /// Month and day only, when the year is not known (or was erased).
    pub birthday: Option<(i8, i8)>,
    pub name: Option<Personal<String>>,
    pub email: Option<Personal<String>>,
    pub staff: bool,
    pub guardian_consent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusChange {
    OptedOut,
    Closed,
    Suspended,
    Reinstated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Web,
    App,
    Store,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub member: Id,
    pub order: Id,
    pub currency: Currency,
    pub channel: Channel,
    pub lines: Vec<OrderLine>,
    pub delivery: Minor,
    pub duties: Minor,
    pub payments: Vec<Payment>,
    pub codes: Vec<Id>,
    /// The checkout hold this order commits.
    pub hold: Option<Id>,
}

impl Order {
    /// What the order pays with one tender.
    pub fn paid_with(&self, method: PaymentMethod) -> i64 {
        self.payments.iter().filter(|p| p.method == method).map(|p| p.amount.0).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    pub line: Id,
    pub sku: Id,
    pub brand: Id,
    pub category: Id,
    pub quantity: u32,
    pub price: Minor,
    pub discount: Minor,
    pub tax: Minor,
    pub on_sale: bool,
    pub badges: Vec<Id>,
    pub size: Option<Id>,
}

impl OrderLine {
    /// `price − discount − tax`: the line's goods value net of tax (programs.md §0).
    pub fn weight(&self) -> Minor {
        Minor(self.price.0 - self.discount.0 - self.tax.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentMethod {
    Card,
    Paypal,
    ApplePay,
    Klarna,
    Cash,
    BankTransfer,
    GiftVoucher,
    StoreCredit,
    Points,
}

impl PaymentMethod {
    fn parse(text: &str) -> Option<PaymentMethod> {
        Some(match text {
            "card" => PaymentMethod::Card,
            "paypal" => PaymentMethod::Paypal,
            "apple_pay" => PaymentMethod::ApplePay,
            "klarna" => PaymentMethod::Klarna,
            "cash" => PaymentMethod::Cash,
            "bank_transfer" => PaymentMethod::BankTransfer,
            "gift_voucher" => PaymentMethod::GiftVoucher,
            "store_credit" => PaymentMethod::StoreCredit,
            "points" => PaymentMethod::Points,
            _ => return None,
        })
    }

    /// Cash-like tenders count towards eligible value (programs.md §0).
    pub fn is_cash_like(self) -> bool {
        !matches!(self, PaymentMethod::GiftVoucher | PaymentMethod::StoreCredit | PaymentMethod::Points)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payment {
    pub method: PaymentMethod,
    pub amount: Minor,
}

/// `{line, quantity}` of a return or a cancellation; `quantity: None` means every
/// remaining unit (decisions D3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineQuantity {
    pub line: Id,
    pub quantity: Option<u32>,
}

// ---- the JSON as sent ------------------------------------------------------------

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct RawEvent<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    program: Option<Cow<'a, str>>,
    #[serde(borrow)]
    member: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    birth_date: Option<Cow<'a, str>>,
    staff: Option<bool>,
    guardian_consent: Option<bool>,
    #[serde(borrow)]
    order: Option<Cow<'a, str>>,
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
    #[serde(borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    lines: Option<Vec<RawLine<'a>>>,
    #[serde(borrow)]
    delivery: Option<Cow<'a, str>>,
    #[serde(borrow)]
    duties: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payments: Option<Vec<RawPayment<'a>>>,
    #[serde(borrow)]
    codes: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    hold: Option<Cow<'a, str>>,
    #[serde(borrow)]
    expires_at: Option<Cow<'a, str>>,
    points: Option<i64>,
    #[serde(borrow)]
    store_credit: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    promotion: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ledger: Option<Cow<'a, str>>,
    #[serde(borrow)]
    amount: Option<Cow<'a, str>>,
    #[serde(borrow)]
    note: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sale: Option<Cow<'a, str>>,
    #[serde(borrow)]
    items: Option<Vec<RawLineFields<'a>>>,
    #[serde(borrow)]
    line: Option<Cow<'a, str>>,
    #[serde(borrow)]
    birthday: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    email: Option<Cow<'a, str>>,
    granted: Option<bool>,
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    benefit: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct RawLineFields<'a> {
    #[serde(borrow)]
    line: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sku: Option<Cow<'a, str>>,
    #[serde(borrow)]
    brand: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
    quantity: Option<i64>,
    #[serde(borrow)]
    price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    discount: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tax: Option<Cow<'a, str>>,
    on_sale: Option<bool>,
    #[serde(borrow)]
    badges: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    size: Option<Cow<'a, str>>,
    available: Option<bool>,
}

/// A line object, or a bare line id (cancellations, D3).
#[cfg_attr(test, derive(Debug, PartialEq))]
struct RawLine<'a>(RawLineFields<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for RawLine<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = RawLine<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a line object or a line id")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawLine(RawLineFields { line: Some(Cow::Borrowed(v)), ..Default::default() }))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawLine(RawLineFields { line: Some(Cow::Owned(v.to_string())), ..Default::default() }))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                RawLineFields::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(RawLine)
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct RawPayment<'a> {
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    amount: Option<Cow<'a, str>>,
}

/// The id of an event line, read as leniently as possible, for rejection messages
/// on lines that are otherwise unusable.
pub fn sniff_id(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    let value: IdOnly = serde_json::from_str(text).ok()?;
    match value.id? {
        serde_json::Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_ID_CHARS => Some(s),
        _ => None,
    }
}

/// A basket to price at checkout (`POST /v1/checkout/quote`, holds): an order's
/// member, currency, channel, lines, delivery, duties and codes, and the points and
/// store credit the member asks to pay with. Checked like an `order.placed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasketRequest {
    pub member: Id,
    pub currency: Currency,
    pub channel: Channel,
    pub lines: Vec<OrderLine>,
    pub delivery: Minor,
    pub duties: Minor,
    pub codes: Vec<Id>,
    pub points: i64,
    pub store_credit: Minor,
}

/// Parses and validates a basket (one JSON object, fields as in `order.placed`
/// plus `points` and `store_credit`).
pub fn parse_basket(text: &str) -> Result<BasketRequest, Rejection> {
    let mut raw = RawEvent::default();
    read_raw(text, &mut raw)?;
    Checker.basket(&mut raw)
}

/// Parses and validates one event (one JSON object).
pub fn parse_event(text: &str) -> Result<Event, Rejection> {
    let mut raw = RawEvent::default();
    read_raw(text, &mut raw)?;
    Checker.event(&mut raw)
}

/// The JSON of an event or a basket as sent: by the fast reader when the line has
/// the usual shape, else by serde, which names what is wrong.
fn read_raw<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> Result<(), Rejection> {
    if !lean::read(text, raw) {
        *raw = serde_json::from_str(text).map_err(|error| explain_json_error(text, error))?;
    }
    Ok(())
}

fn explain_json_error(text: &str, error: serde_json::Error) -> Rejection {
    if error.is_syntax() || error.is_eof() {
        return Rejection::new(RejectCode::InvalidJson, format!("not a JSON object: {error}"));
    }
    if !text.trim_start().starts_with('{') {
        return Rejection::new(RejectCode::InvalidJson, "the event must be a JSON object");
    }
    // Find the field: run again, tracking the path.
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let path = match serde_path_to_error::deserialize::<_, RawEvent<'_>>(&mut deserializer) {
        Err(error) => error.path().to_string(),
        Ok(_) => String::from("?"),
    };
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message);
    Rejection::new(RejectCode::InvalidField, format!("{path}: {message}"))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the usual shape of an instant, read without the general
/// RFC 3339 parser; `None` for any other text (the general parser decides then).
fn utc_second(bytes: &[u8]) -> Option<Timestamp> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', n0, n1, b':', s0, s1, b'Z'] = *bytes else {
        return None;
    };
    let number = |digits: &[u8]| -> Option<i16> {
        digits.iter().try_fold(0, |n, d| d.is_ascii_digit().then(|| n * 10 + i16::from(d - b'0')))
    };
    let small = |digits: &[u8]| number(digits).and_then(|n| i8::try_from(n).ok());
    // jiff checks the ranges (a leap second, 60, is left to the general parser).
    let civil = jiff::civil::DateTime::new(
        number(&[y0, y1, y2, y3])?,
        small(&[m0, m1])?,
        small(&[d0, d1])?,
        small(&[h0, h1])?,
        small(&[n0, n1])?,
        small(&[s0, s1])?,
        0,
    )
    .ok()?;
    jiff::tz::Offset::UTC.to_timestamp(civil).ok()
}

/// The checks of one event, field by field.
struct Checker;

/// Where a value sits in the event, named only when something is wrong with it.
#[derive(Clone, Copy)]
enum Field<'a> {
    Top(&'a str),
    Item(&'a str, usize),
    Nested(&'a str, usize, &'a str),
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Top(name) => f.write_str(name),
            Field::Item(list, index) => write!(f, "{list}[{index}]"),
            Field::Nested(list, index, name) => write!(f, "{list}[{index}].{name}"),
        }
    }
}

fn missing(field: Field<'_>) -> Rejection {
    Rejection::new(RejectCode::MissingField, format!("{field}: required"))
}

fn invalid(field: Field<'_>, value: &str, rule: &str) -> Rejection {
    Rejection::new(RejectCode::InvalidField, format!("{field}: {value:?} {rule}"))
}

fn too_many(field: &str, most: usize, count: usize) -> Rejection {
    Rejection::new(RejectCode::InvalidField, format!("{field}: at most {most} entries, not {count}"))
}

const MEMBER: Field<'static> = Field::Top("member");
const ORDER: Field<'static> = Field::Top("order");

impl Checker {
    fn event(&self, raw: &mut RawEvent<'_>) -> Result<Event, Rejection> {
        let id = self.id(Field::Top("id"), raw.id.as_deref())?;
        let kind = raw.kind.as_deref().ok_or_else(|| missing(Field::Top("type")))?;
        let at = self.instant(Field::Top("at"), raw.at.as_deref())?;
        let program = match raw.program.as_deref() {
            Some(p) => Some(self.id(Field::Top("program"), Some(p))?),
            None => None,
        };
        let body = match kind {
            "member.registered" => {
                let registration = Registration {
                    member: self.id(MEMBER, raw.member.as_deref())?,
                    country: self.country(raw.country.as_deref().ok_or_else(|| missing(Field::Top("country")))?)?,
                    birth_date: self.birth_date(raw.birth_date.as_deref(), at)?.map(Personal::new),
                    birthday: self.birthday(raw.birthday.as_deref())?,
                    name: self.personal_text("name", raw.name.as_deref())?,
                    email: self.email(raw.email.as_deref())?,
                    staff: raw.staff.unwrap_or(false),
                    guardian_consent: raw.guardian_consent.unwrap_or(false),
                };
                if let Some(birth) = &registration.birth_date
                    && !registration.guardian_consent
                    && age_on(*birth.expose(), jiff::tz::TimeZone::UTC.to_datetime(at).date()) < GUARDIAN_AGE
                {
                    return Err(Rejection::new(
                        RejectCode::GuardianConsentRequired,
                        format!(
                            "guardian_consent: a member under {GUARDIAN_AGE} registers only with a guardian's consent \
                             (guardian_consent: true)"
                        ),
                    ));
                }
                EventBody::MemberRegistered(Box::new(registration))
            }
            "member.updated" => EventBody::MemberUpdated(Box::new(ProfileUpdate {
                member: self.id(MEMBER, raw.member.as_deref())?,
                country: raw.country.as_deref().map(|c| self.country(c)).transpose()?,
                birth_date: self.birth_date(raw.birth_date.as_deref(), at)?.map(Personal::new),
                birthday: self.birthday(raw.birthday.as_deref())?,
                name: self.personal_text("name", raw.name.as_deref())?,
                email: self.email(raw.email.as_deref())?,
            })),
            "consent.changed" => {
                let channel_field = Field::Top("channel");
                let text = raw.channel.as_deref().ok_or_else(|| missing(channel_field))?;
                let channel = ConsentChannel::parse(text)
                    .ok_or_else(|| invalid(channel_field, text, "is not email, sms, phone, post or push"))?;
                EventBody::ConsentChanged(Box::new(Consent {
                    member: self.id(MEMBER, raw.member.as_deref())?,
                    channel,
                    granted: raw.granted.ok_or_else(|| missing(Field::Top("granted")))?,
                    source: self.id(Field::Top("source"), raw.source.as_deref())?,
                    text_version: self.id(Field::Top("text_version"), raw.text_version.as_deref())?,
                }))
            }
            "member.erased" => EventBody::MemberErased { member: self.id(MEMBER, raw.member.as_deref())? },
            "benefit.used" => EventBody::BenefitUsed {
                member: self.id(MEMBER, raw.member.as_deref())?,
                benefit: self.id(Field::Top("benefit"), raw.benefit.as_deref())?,
            },
            "member.opted_out" | "member.closed" | "member.suspended" | "member.reinstated" => {
                let change = match kind {
                    "member.opted_out" => StatusChange::OptedOut,
                    "member.closed" => StatusChange::Closed,
                    "member.suspended" => StatusChange::Suspended,
                    _ => StatusChange::Reinstated,
                };
                EventBody::MemberStatus { member: self.id(MEMBER, raw.member.as_deref())?, change }
            }
            "order.placed" => EventBody::OrderPlaced(Box::new(self.order(raw)?)),
            "order.delivered" => EventBody::OrderDelivered { order: self.id(ORDER, raw.order.as_deref())? },
            "order.returned" => {
                let order = self.id(ORDER, raw.order.as_deref())?;
                let lines = raw.lines.take().ok_or_else(|| missing(Field::Top("lines")))?;
                EventBody::OrderReturned { order, lines: self.line_quantities(lines, true)? }
            }
            "order.cancelled" => {
                let order = self.id(ORDER, raw.order.as_deref())?;
                let lines = raw.lines.take().map(|l| self.line_quantities(l, false)).transpose()?;
                EventBody::OrderCancelled { order, lines }
            }
            "code.issued" => EventBody::CodeIssued(Box::new(CodeIssue {
                member: self.id(MEMBER, raw.member.as_deref())?,
                code: self.id(Field::Top("code"), raw.code.as_deref())?,
                promotion: self.id(Field::Top("promotion"), raw.promotion.as_deref())?,
            })),
            "checkout.held" => EventBody::CheckoutHeld(Box::new(self.hold(raw, at)?)),
            "checkout.released" => EventBody::CheckoutReleased {
                member: self.id(MEMBER, raw.member.as_deref())?,
                hold: self.id(Field::Top("hold"), raw.hold.as_deref())?,
            },
            "ledger.adjusted" => EventBody::LedgerAdjusted(Box::new(self.adjustment(raw, at)?)),
            "sale.started" => EventBody::SaleStarted(Box::new(self.sale(raw)?)),
            "price_adjustment.requested" => EventBody::PriceAdjustmentRequested(Box::new(AdjustmentRequest {
                member: self.id(MEMBER, raw.member.as_deref())?,
                order: self.id(ORDER, raw.order.as_deref())?,
                line: self.id(Field::Top("line"), raw.line.as_deref())?,
            })),
            other => {
                return Err(Rejection::new(
                    RejectCode::UnknownEventType,
                    format!("type: {other:?} is not an event type of the contract"),
                ));
            }
        };
        Ok(Event { id, at, program, body })
    }

    fn id(&self, field: Field<'_>, value: Option<&str>) -> Result<Id, Rejection> {
        let value = value.ok_or_else(|| missing(field))?;
        if value.is_empty() || (value.len() > MAX_ID_CHARS && value.chars().count() > MAX_ID_CHARS) {
            return Err(invalid(field, value, &format!("must be 1–{MAX_ID_CHARS} characters")));
        }
        // Printable ASCII, the usual id, in one pass; anything else character by character.
        let control = !value.bytes().all(|b| (0x20..0x7f).contains(&b)) && value.chars().any(char::is_control);
        if control {
            return Err(invalid(field, value, "must not contain control characters"));
        }
        Ok(Id::from(value))
    }

    fn text(&self, field: Field<'_>, value: Option<&str>) -> Result<Id, Rejection> {
        let value = value.unwrap_or("");
        if value.len() > MAX_ID_CHARS && value.chars().count() > MAX_ID_CHARS {
            return Err(invalid(field, value, &format!("must be at most {MAX_ID_CHARS} characters")));
        }
        Ok(Id::from(value))
    }

    fn instant(&self, field: Field<'_>, value: Option<&str>) -> Result<Timestamp, Rejection> {
        let value = value.ok_or_else(|| missing(field))?;
        let bytes = value.as_bytes();
        // RFC 3339: a full date, 'T' (or 't'), a time, and an offset.
        // The usual shape first (it has no bracket); then the general parser.
        let shape_ok = || {
            bytes.len() >= 20
                && bytes[4] == b'-'
                && bytes[7] == b'-'
                && matches!(bytes[10], b'T' | b't')
                && !value.contains('[')
        };
        let parsed = utc_second(bytes).or_else(|| shape_ok().then(|| value.parse::<Timestamp>().ok()).flatten());
        match parsed {
            Some(at) if (EARLIEST_INSTANT..LATEST_INSTANT).contains(&at.as_second()) => Ok(at),
            Some(_) => Err(invalid(field, value, "must be between years 1970 and 2999")),
            None => Err(invalid(field, value, "is not an RFC 3339 instant with an offset")),
        }
    }

    fn country(&self, value: &str) -> Result<CountryCode, Rejection> {
        CountryCode::new(value)
            .ok_or_else(|| invalid(Field::Top("country"), value, "is not an ISO 3166-1 alpha-2 code"))
    }

    fn birth_date(&self, value: Option<&str>, at: Timestamp) -> Result<Option<Date>, Rejection> {
        let Some(value) = value else { return Ok(None) };
        let field = Field::Top("birth_date");
        let date = match value.parse::<Date>() {
            Ok(date) if value.len() == 10 => date,
            _ => return Err(invalid(field, value, "is not a date YYYY-MM-DD")),
        };
        let today = jiff::tz::TimeZone::UTC.to_datetime(at).date();
        if date.year() < 1900 || date > today {
            return Err(invalid(field, value, "must be from 1900 up to the event's date"));
        }
        Ok(Some(date))
    }

    fn amount(&self, field: Field<'_>, value: Option<&str>, currency: Currency) -> Result<Minor, Rejection> {
        let Some(text) = value else { return Ok(Minor::ZERO) };
        currency.parse_amount(text).map_err(|error| match error {
            AmountError::Malformed => invalid(field, text, "is not a decimal amount"),
            AmountError::TooManyDigits { allowed } => Rejection::new(
                RejectCode::TooManyDigits,
                format!("{field}: {text:?} has more than {allowed} decimals for {currency}"),
            ),
            AmountError::Negative => {
                Rejection::new(RejectCode::NegativeAmount, format!("{field}: {text:?} is negative"))
            }
            AmountError::TooLarge => {
                Rejection::new(RejectCode::AmountTooLarge, format!("{field}: {text:?} is over 10^12 {currency}"))
            }
        })
    }

    fn order(&self, raw: &mut RawEvent<'_>) -> Result<Order, Rejection> {
        let member = self.id(MEMBER, raw.member.as_deref())?;
        let order = self.id(ORDER, raw.order.as_deref())?;
        let currency_field = Field::Top("currency");
        let currency_text = raw.currency.as_deref().ok_or_else(|| missing(currency_field))?;
        let currency = Currency::from_code(currency_text)
            .ok_or_else(|| invalid(currency_field, currency_text, "is not an ISO 4217 currency code"))?;
        let channel = self.channel(raw.channel.as_deref())?;
        let lines = self.order_lines(raw.lines.take(), currency, "order")?;
        let delivery = self.amount(Field::Top("delivery"), raw.delivery.as_deref(), currency)?;
        let duties = self.amount(Field::Top("duties"), raw.duties.as_deref(), currency)?;
        let raw_payments = raw.payments.take().ok_or_else(|| missing(Field::Top("payments")))?;
        if raw_payments.len() > MAX_PAYMENTS {
            return Err(too_many("payments", MAX_PAYMENTS, raw_payments.len()));
        }
        let mut payments = Vec::with_capacity(raw_payments.len());
        for (index, payment) in raw_payments.into_iter().enumerate() {
            let field = Field::Nested("payments", index, "method");
            let method_text = payment.method.as_deref().ok_or_else(|| missing(field))?;
            let method = PaymentMethod::parse(method_text)
                .ok_or_else(|| invalid(field, method_text, "is not a payment method of the contract"))?;
            let field = Field::Nested("payments", index, "amount");
            if payment.amount.is_none() {
                return Err(missing(field));
            }
            let amount = self.amount(field, payment.amount.as_deref(), currency)?;
            payments.push(Payment { method, amount });
        }
        let codes = self.strings("codes", raw.codes.take())?;
        let hold = raw.hold.as_deref().map(|h| self.id(Field::Top("hold"), Some(h))).transpose()?;

        let overflow = || Rejection::new(RejectCode::Overflow, "order totals overflow");
        let mut due = delivery.checked_add(duties).ok_or_else(overflow)?;
        for line in &lines {
            due = due.checked_add(line.price.checked_sub(line.discount).ok_or_else(overflow)?).ok_or_else(overflow)?;
        }
        let mut paid = Minor::ZERO;
        for payment in &payments {
            paid = paid.checked_add(payment.amount).ok_or_else(overflow)?;
        }
        if paid != due {
            return Err(Rejection::new(
                RejectCode::PaymentsMismatch,
                format!(
                    "payments: {} {currency} paid, but lines (price − discount) + delivery + duties come to {}",
                    currency.format(paid),
                    currency.format(due)
                ),
            ));
        }
        Ok(Order { member, order, currency, channel, lines, delivery, duties, payments, codes, hold })
    }

    fn strings(&self, list: &'static str, values: Option<Vec<Cow<'_, str>>>) -> Result<Vec<Id>, Rejection> {
        let values = values.unwrap_or_default();
        if values.len() > MAX_CODES {
            return Err(too_many(list, MAX_CODES, values.len()));
        }
        values.iter().enumerate().map(|(i, v)| self.id(Field::Item(list, i), Some(v))).collect()
    }

    fn order_line(&self, index: usize, raw: RawLineFields<'_>, currency: Currency) -> Result<OrderLine, Rejection> {
        let field = |name| Field::Nested("lines", index, name);
        let line = self.id(field("line"), raw.line.as_deref())?;
        let quantity = raw.quantity.ok_or_else(|| missing(field("quantity")))?;
        let quantity = self.quantity(field("quantity"), quantity)?;
        if raw.price.is_none() {
            return Err(missing(field("price")));
        }
        let price = self.amount(field("price"), raw.price.as_deref(), currency)?;
        let discount = self.amount(field("discount"), raw.discount.as_deref(), currency)?;
        let tax = self.amount(field("tax"), raw.tax.as_deref(), currency)?;
        if discount > price {
            return Err(Rejection::new(
                RejectCode::InvalidDiscount,
                format!(
                    "{}: {} is more than the price {}",
                    field("discount"),
                    currency.format(discount),
                    currency.format(price)
                ),
            ));
        }
        if tax.0 > price.0 - discount.0 {
            return Err(Rejection::new(
                RejectCode::InvalidTax,
                format!(
                    "{}: {} is more than price − discount {}",
                    field("tax"),
                    currency.format(tax),
                    currency.format(Minor(price.0 - discount.0))
                ),
            ));
        }
        let badges = raw.badges.unwrap_or_default();
        if badges.len() > MAX_CODES {
            return Err(too_many("badges", MAX_CODES, badges.len()));
        }
        Ok(OrderLine {
            line,
            sku: self.text(field("sku"), raw.sku.as_deref())?,
            brand: self.text(field("brand"), raw.brand.as_deref())?,
            category: self.text(field("category"), raw.category.as_deref())?,
            quantity,
            price,
            discount,
            tax,
            on_sale: raw.on_sale.unwrap_or(false),
            badges: badges.iter().map(|b| self.text(field("badges"), Some(b))).collect::<Result<_, _>>()?,
            size: raw.size.as_deref().map(|s| self.text(field("size"), Some(s))).transpose()?,
        })
    }

    fn channel(&self, value: Option<&str>) -> Result<Channel, Rejection> {
        match value {
            None | Some("web") => Ok(Channel::Web),
            Some("app") => Ok(Channel::App),
            Some("store") => Ok(Channel::Store),
            Some(other) => Err(invalid(Field::Top("channel"), other, "is not web, app or store")),
        }
    }

    /// The lines of an order or a basket (`what`), each checked, ids unique.
    fn order_lines(
        &self,
        raw: Option<Vec<RawLine<'_>>>,
        currency: Currency,
        what: &str,
    ) -> Result<Vec<OrderLine>, Rejection> {
        let raw_lines = raw.ok_or_else(|| missing(Field::Top("lines")))?;
        if raw_lines.is_empty() || raw_lines.len() > MAX_LINES {
            return Err(Rejection::new(
                RejectCode::InvalidField,
                format!(
                    "lines: {} {what} has 1 to {MAX_LINES} lines, not {}",
                    if what == "order" { "an" } else { "a" },
                    raw_lines.len()
                ),
            ));
        }
        let mut lines: Vec<OrderLine> = Vec::with_capacity(raw_lines.len());
        for (index, RawLine(raw_line)) in raw_lines.into_iter().enumerate() {
            let line = self.order_line(index, raw_line, currency)?;
            if lines.iter().any(|l| l.line == line.line) {
                return Err(Rejection::new(
                    RejectCode::DuplicateLine,
                    format!("lines[{index}].line: {:?} appears twice in the {what}", line.line),
                ));
            }
            lines.push(line);
        }
        Ok(lines)
    }

    fn basket(&self, raw: &mut RawEvent<'_>) -> Result<BasketRequest, Rejection> {
        let member = self.id(MEMBER, raw.member.as_deref())?;
        let currency_field = Field::Top("currency");
        let currency = self.optional_currency(raw.currency.as_deref())?.ok_or_else(|| missing(currency_field))?;
        let channel = self.channel(raw.channel.as_deref())?;
        let lines = self.order_lines(raw.lines.take(), currency, "basket")?;
        let points = raw.points.unwrap_or(0);
        if !(0..=1_000_000_000_000).contains(&points) {
            return Err(invalid(Field::Top("points"), &points.to_string(), "must be 0 to 10^12 points"));
        }
        Ok(BasketRequest {
            member,
            currency,
            channel,
            lines,
            delivery: self.amount(Field::Top("delivery"), raw.delivery.as_deref(), currency)?,
            duties: self.amount(Field::Top("duties"), raw.duties.as_deref(), currency)?,
            codes: self.strings("codes", raw.codes.take())?,
            points,
            store_credit: self.amount(Field::Top("store_credit"), raw.store_credit.as_deref(), currency)?,
        })
    }

    fn birthday(&self, value: Option<&str>) -> Result<Option<(i8, i8)>, Rejection> {
        let Some(text) = value else { return Ok(None) };
        let parsed = text.split_once('-').and_then(|(m, d)| {
            let (month, day) = (m.parse::<i8>().ok()?, d.parse::<i8>().ok()?);
            (m.len() == 2 && d.len() == 2).then_some(())?;
            Date::new(2000, month, day).ok().map(|_| (month, day))
        });
        parsed.map(Some).ok_or_else(|| invalid(Field::Top("birthday"), text, "is not a month-day MM-DD"))
    }

    fn personal_text(&self, name: &'static str, value: Option<&str>) -> Result<Option<Personal<String>>, Rejection> {
        let Some(text) = value else { return Ok(None) };
        if text.trim().is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
            return Err(Rejection::new(
                RejectCode::InvalidField,
                format!("{name}: must be 1–200 characters without control characters"),
            ));
        }
        Ok(Some(Personal::new(text.to_string())))
    }

    fn email(&self, value: Option<&str>) -> Result<Option<Personal<String>>, Rejection> {
        let email = self.personal_text("email", value)?;
        if let Some(address) = &email {
            let text = address.expose();
            let well_formed = text.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace)
            });
            if !well_formed {
                // The value itself is personal: the message does not repeat it.
                return Err(Rejection::new(RejectCode::InvalidField, "email: is not an e-mail address"));
            }
        }
        Ok(email)
    }

    fn optional_currency(&self, value: Option<&str>) -> Result<Option<Currency>, Rejection> {
        let field = Field::Top("currency");
        value
            .map(|text| {
                Currency::from_code(text).ok_or_else(|| invalid(field, text, "is not an ISO 4217 currency code"))
            })
            .transpose()
    }

    fn hold(&self, raw: &mut RawEvent<'_>, at: Timestamp) -> Result<Hold, Rejection> {
        let member = self.id(MEMBER, raw.member.as_deref())?;
        let hold = self.id(Field::Top("hold"), raw.hold.as_deref())?;
        let expires_at = match raw.expires_at.as_deref() {
            Some(text) => {
                let expires_at = self.instant(Field::Top("expires_at"), Some(text))?;
                if expires_at <= at {
                    return Err(invalid(Field::Top("expires_at"), text, "must be after the event's at"));
                }
                Some(expires_at)
            }
            None => None,
        };
        let points = raw.points.unwrap_or(0);
        if !(0..=1_000_000_000_000).contains(&points) {
            return Err(invalid(Field::Top("points"), &points.to_string(), "must be 0 to 10^12 points"));
        }
        let currency = self.optional_currency(raw.currency.as_deref())?;
        let store_credit = match (raw.store_credit.as_deref(), currency) {
            (None, _) => Minor::ZERO,
            (Some(_), None) => return Err(missing(Field::Top("currency"))),
            (Some(text), Some(currency)) => self.amount(Field::Top("store_credit"), Some(text), currency)?,
        };
        Ok(Hold {
            member,
            hold,
            expires_at,
            codes: self.strings("codes", raw.codes.take())?,
            points,
            store_credit,
            currency,
        })
    }

    fn adjustment(&self, raw: &mut RawEvent<'_>, at: Timestamp) -> Result<Adjustment, Rejection> {
        let member = self.id(MEMBER, raw.member.as_deref())?;
        let ledger_field = Field::Top("ledger");
        let ledger = match raw.ledger.as_deref() {
            Some("points") => LedgerKind::Points,
            Some("store_credit") => LedgerKind::StoreCredit,
            Some(other) => return Err(invalid(ledger_field, other, "is not points or store_credit")),
            None => return Err(missing(ledger_field)),
        };
        let amount_field = Field::Top("amount");
        let text = raw.amount.as_deref().ok_or_else(|| missing(amount_field))?;
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let currency = self.optional_currency(raw.currency.as_deref())?;
        let value = match ledger {
            LedgerKind::Points => match magnitude.parse::<i64>() {
                Ok(points) if magnitude.bytes().all(|b| b.is_ascii_digit()) && points <= 1_000_000_000_000 => points,
                _ => return Err(invalid(amount_field, text, "is not a whole number of points up to 10^12")),
            },
            LedgerKind::StoreCredit => {
                let currency = currency.ok_or_else(|| missing(Field::Top("currency")))?;
                self.amount(amount_field, Some(magnitude), currency)?.0
            }
        };
        if value == 0 {
            return Err(invalid(amount_field, text, "must not be zero"));
        }
        let note = raw.note.as_deref().unwrap_or("").trim();
        if note.is_empty() || note.chars().count() > 500 {
            return Err(invalid(Field::Top("note"), note, "must say why, in 1–500 characters"));
        }
        let expires_at = match raw.expires_at.as_deref() {
            Some(text) => {
                let expires_at = self.instant(Field::Top("expires_at"), Some(text))?;
                if expires_at <= at {
                    return Err(invalid(Field::Top("expires_at"), text, "must be after the event's at"));
                }
                Some(expires_at)
            }
            None => None,
        };
        Ok(Adjustment {
            member,
            ledger,
            amount: if negative { -value } else { value },
            currency,
            note: note.to_string(),
            expires_at,
        })
    }

    fn sale(&self, raw: &mut RawEvent<'_>) -> Result<Sale, Rejection> {
        let sale = self.id(Field::Top("sale"), raw.sale.as_deref())?;
        let currency_field = Field::Top("currency");
        let currency = self.optional_currency(raw.currency.as_deref())?.ok_or_else(|| missing(currency_field))?;
        let raw_items = raw.items.take().ok_or_else(|| missing(Field::Top("items")))?;
        if raw_items.is_empty() || raw_items.len() > 10_000 {
            return Err(Rejection::new(
                RejectCode::InvalidField,
                format!("items: a sale has 1 to 10000 items, not {}", raw_items.len()),
            ));
        }
        let mut items = Vec::with_capacity(raw_items.len());
        for (index, item) in raw_items.into_iter().enumerate() {
            let field = |name| Field::Nested("items", index, name);
            if item.price.is_none() {
                return Err(missing(field("price")));
            }
            items.push(SaleItem {
                sku: self.id(field("sku"), item.sku.as_deref())?,
                size: item.size.as_deref().map(|s| self.id(field("size"), Some(s))).transpose()?,
                price: self.amount(field("price"), item.price.as_deref(), currency)?,
                available: item.available.unwrap_or(true),
            });
        }
        Ok(Sale { sale, currency, items })
    }

    fn quantity(&self, field: Field<'_>, quantity: i64) -> Result<u32, Rejection> {
        if quantity < 1 {
            return Err(Rejection::new(RejectCode::InvalidQuantity, format!("{field}: {quantity} is below 1")));
        }
        if quantity > MAX_QUANTITY {
            return Err(Rejection::new(
                RejectCode::InvalidQuantity,
                format!("{field}: {quantity} is over {MAX_QUANTITY}"),
            ));
        }
        Ok(quantity as u32)
    }

    fn line_quantities(&self, raw: Vec<RawLine<'_>>, quantity_required: bool) -> Result<Vec<LineQuantity>, Rejection> {
        if raw.is_empty() || raw.len() > MAX_LINES {
            return Err(Rejection::new(
                RejectCode::InvalidField,
                format!("lines: 1 to {MAX_LINES} lines, not {}", raw.len()),
            ));
        }
        let mut lines: Vec<LineQuantity> = Vec::with_capacity(raw.len());
        for (index, RawLine(fields)) in raw.into_iter().enumerate() {
            let line = self.id(Field::Nested("lines", index, "line"), fields.line.as_deref())?;
            let quantity_field = Field::Nested("lines", index, "quantity");
            let quantity = match fields.quantity {
                Some(q) => Some(self.quantity(quantity_field, q)?),
                None if quantity_required => return Err(missing(quantity_field)),
                None => None,
            };
            if lines.iter().any(|l| l.line == line) {
                return Err(Rejection::new(
                    RejectCode::DuplicateLine,
                    format!("lines[{index}].line: {line:?} appears twice"),
                ));
            }
            lines.push(LineQuantity { line, quantity });
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(text: &str) -> &'static str {
        parse_event(text).expect_err("the event is invalid").code.as_str()
    }

    const ORDER: &str = r#"{"id":"e-1","type":"order.placed","at":"2026-01-05T10:00:00Z","member":"m-1","order":"o-1","currency":"EUR","lines":[{"line":"l-1","sku":"s","brand":"b","category":"c","quantity":2,"price":"100.00","tax":"10.00"}],"delivery":"5.00","payments":[{"method":"card","amount":"105.00"}]}"#;

    #[test]
    fn contract_order_parses() {
        let event = parse_event(ORDER).expect("valid order");
        let EventBody::OrderPlaced(order) = event.body else { panic!("not an order") };
        assert_eq!(order.lines[0].weight(), Minor(9000));
        assert_eq!(order.delivery, Minor(500));
        assert_eq!(order.channel, Channel::Web);
    }

    #[test]
    fn contract_rejections_name_the_rule() {
        assert_eq!(code_of("{not json"), "invalid_json");
        assert_eq!(code_of("[1,2]"), "invalid_json");
        assert_eq!(code_of(&ORDER.replace(r#""currency":"EUR","#, "")), "missing_field");
        assert_eq!(code_of(&ORDER.replace("\"quantity\":2", "\"quantity\":\"2\"")), "invalid_field");
        assert_eq!(code_of(&ORDER.replace("\"quantity\":2", "\"quantity\":0")), "invalid_quantity");
        assert_eq!(code_of(&ORDER.replace("\"100.00\"", "\"100.001\"")), "too_many_digits");
        assert_eq!(code_of(&ORDER.replace("\"5.00\"", "\"-5.00\"")), "negative_amount");
        assert_eq!(code_of(&ORDER.replace("\"105.00\"", "\"104.99\"")), "payments_mismatch");
        assert_eq!(code_of(&ORDER.replace("order.placed", "order.shipped")), "unknown_event_type");
        assert_eq!(code_of(&ORDER.replace("2026-01-05T10:00:00Z", "2026-01-05 10:00")), "invalid_field");
        assert_eq!(code_of(&ORDER.replace("\"tax\":\"10.00\"", "\"tax\":\"100.01\"")), "invalid_tax");
    }

    #[test]
    fn usual_instants_read_as_the_rfc_3339_parser_reads_them() {
        let mut day = Date::constant(1970, 1, 1);
        let mut checked: i64 = 0;
        while day.year() < 3000 {
            let second = (checked * 7919) % 86_400;
            let text = format!("{day}T{:02}:{:02}:{:02}Z", second / 3600, second / 60 % 60, second % 60);
            assert_eq!(utc_second(text.as_bytes()), text.parse::<Timestamp>().ok(), "{text}");
            day = day.tomorrow().expect("a day before 3000");
            checked += 1;
        }
        // 1030 years of 365 days, and 250 leap days.
        assert_eq!(checked, 376_200);
        for text in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01t23:59:59Z",
            "2024-01-01T23:59:59z",
            "2024-01-01T23:59:5aZ",
            "+024-01-01T23:59:59Z",
        ] {
            assert_eq!(utc_second(text.as_bytes()), None, "{text}");
        }
        assert_eq!(utc_second(b"2024-02-29T23:59:59Z"), "2024-02-29T23:59:59Z".parse::<Timestamp>().ok());
    }

    #[test]
    fn contract_invalid_field_names_the_path() {
        let rejection = parse_event(&ORDER.replace("\"quantity\":2", "\"quantity\":\"2\"")).expect_err("invalid");
        assert!(rejection.message.starts_with("lines[0].quantity"), "{}", rejection.message);
    }
}
