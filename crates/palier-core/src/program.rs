//! Program files: the rules of one loyalty program, as data.
//!
//! A program file is TOML (format: `docs/program-file.md`). It is parsed into
//! [`Program`], validated once, and immutable afterwards. A mistake is reported with
//! the file, the line and what is wrong; nothing past this module re-checks it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::calendar::Calendar;
use crate::money::{Currency, Minor, Rate};

/// A validated program.
#[derive(Clone, Debug)]
pub struct Program {
    pub id: String,
    pub name: String,
    pub calendar: Calendar,
    pub excluded_countries: BTreeSet<String>,
    country_currency: BTreeMap<String, Currency>,
    pub currencies: Vec<Currency>,
    pub returns: Returns,
    pub qualification: Qualification,
    pub tiers: Vec<Tier>,
    /// The tier a member holds from registration (`None`: no tier until spend
    /// reaches the first one).
    pub joining_tier: Option<usize>,
    pub points: Option<PointsRules>,
    pub codes: Vec<Code>,
    /// Store credit, where the program keeps it (programs.md §4).
    pub store_credit: Option<StoreCreditRules>,
    pub checkout: CheckoutRules,
    /// Transaction records are kept at least this long (seed 001); erasure keeps them
    /// pseudonymised.
    pub retention_months: i64,
    pub notices: Notices,
}

/// How far ahead expiries are announced (notifications).
#[derive(Clone, Debug)]
pub struct Notices {
    pub tier_expiring_days: i64,
    pub points_expiring_days: i64,
}

/// Store credit: a ledger per member with expiry, spent as the `store_credit`
/// payment method; sale price adjustments are paid in it.
#[derive(Clone, Debug)]
pub struct StoreCreditRules {
    /// Credit granted (price adjustment, operator) is valid this many months.
    pub validity_months: i64,
    /// A sale price adjustment covers items bought up to this many days before the
    /// sale started (`None`: the program offers none).
    pub price_adjustment_days: Option<i64>,
}

/// Checkout holds.
#[derive(Clone, Debug)]
pub struct CheckoutRules {
    /// A hold releases itself this many minutes after it was taken.
    pub hold_minutes: i64,
}

/// When an order's value stops being returnable ("matures").
#[derive(Clone, Debug)]
pub struct Returns {
    pub window_days: i64,
    pub extended: Vec<ExtendedWindow>,
}

/// Orders placed from `placed_from` to `placed_to` (civil dates, inclusive, same
/// year) close at the later of the plain window and `closes` of the next year, 00:00.
#[derive(Clone, Debug)]
pub struct ExtendedWindow {
    pub placed_from: (i8, i8),
    pub placed_to: (i8, i8),
    pub closes: (i8, i8),
}

/// How spend decides the tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Qualification {
    /// Applied value of orders placed in the last `window_months`; matured value is
    /// applied on the first day of each month at 00:00 (`monthly`) or when it
    /// matures; a tier lasts `term_months` and is reviewed when it expires.
    Rolling { window_months: i64, term_months: i64, monthly_application: bool },
    /// Matured value of orders placed in the calendar year; upgrades at any time;
    /// tiers reassessed every January with one year's protection.
    CalendarYear,
    /// Cumulative kept value over the member's lifetime; never lowered.
    Lifetime,
}

#[derive(Clone, Debug)]
pub struct Tier {
    pub id: String,
    pub name: String,
    /// Lower bound per reward currency (zero for the joining tier).
    pub thresholds: BTreeMap<Currency, Minor>,
    /// Points earned per unit of eligible value, for programs with points.
    pub rate: Option<Rate>,
    /// What the tier entitles its members to (programs.md §5).
    pub benefits: Vec<Benefit>,
}

/// One benefit of a tier. The same `id` in several tiers is the same benefit with
/// that tier's quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Benefit {
    pub id: String,
    pub name: String,
    pub grant: BenefitGrant,
    /// Units per grant; `None`: unlimited.
    pub quota: Option<u32>,
    /// A granted unit is usable this many days (`None`: while the grant lasts).
    pub validity_days: Option<i64>,
}

/// When a benefit's units are granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenefitGrant {
    /// On joining the tier or reaching it from below (welcome gift, personal shopper).
    OnReaching,
    /// At the start of each tier year (12 months from reaching the tier, renewed while
    /// it is held): discount windows, free-shipping codes.
    PerTierYear,
    /// On the member's birthday, when a birth date is known.
    OnBirthday,
    /// For as long as the tier is held (priority care, early access).
    WhileHeld,
}

impl BenefitGrant {
    pub fn as_str(self) -> &'static str {
        match self {
            BenefitGrant::OnReaching => "on_reaching",
            BenefitGrant::PerTierYear => "per_tier_year",
            BenefitGrant::OnBirthday => "on_birthday",
            BenefitGrant::WhileHeld => "while_held",
        }
    }
}

#[derive(Clone, Debug)]
pub struct PointsRules {
    /// Available points expire this many months after they became available.
    pub expiry_months: i64,
    /// A points payment may cover at most this share of the goods value.
    pub max_payment_share: Rate,
    /// Points given on the birthday (0: none).
    pub birthday_bonus: i64,
}

/// A promotion code known to the program, with the rules of its terms
/// (programs.md §4). Every rule is optional; a code with none of them is accepted on
/// any order and changes nothing but what `earns_points` says.
#[derive(Clone, Debug, Default)]
pub struct Code {
    pub code: String,
    /// `false`: an order using the code earns no points.
    pub earns_points: bool,
    /// Share of each discounted line's `price − discount` taken off (floor per line).
    pub discount: Option<Rate>,
    /// Only on the member's n-th order (1: first, 2: second).
    pub order_number: Option<u32>,
    /// Usable once per member.
    pub once_per_member: bool,
    /// A template: codes are issued one by one to members (`code.issued`), each
    /// good for one order.
    pub one_time: bool,
    /// Order channels it is valid on (empty: all).
    pub channels: Vec<String>,
    /// Valid from this instant (inclusive).
    pub starts: Option<jiff::Timestamp>,
    /// Valid until this instant (inclusive).
    pub ends: Option<jiff::Timestamp>,
    /// Lines on sale get no discount.
    pub full_price_only: bool,
    /// Refused on a basket holding any line on sale.
    pub refuse_sale_items: bool,
    /// Refused when store credit pays part of the order.
    pub refuse_store_credit: bool,
    /// Only lines carrying this badge are discounted.
    pub badge: Option<String>,
    /// Refused on a basket holding any of these brands or categories.
    pub excluded_brands: BTreeSet<String>,
    pub excluded_categories: BTreeSet<String>,
    /// `false`: staff cannot use it.
    pub staff_eligible: bool,
    /// Refused to a member who redeemed any of these codes.
    pub not_after: Vec<String>,
}

impl Program {
    /// The reward currency of a country, if the program counts spend there.
    pub fn currency_of(&self, country: &str) -> Option<Currency> {
        self.country_currency.get(country).copied()
    }

    pub fn tier_index(&self, id: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.id == id)
    }

    /// The highest tier whose threshold `spend` reaches in `currency`.
    pub fn tier_reached(&self, currency: Currency, spend: Minor) -> Option<usize> {
        self.tiers
            .iter()
            .enumerate()
            .rev()
            .find(|(_, tier)| tier.thresholds.get(&currency).is_some_and(|t| spend >= *t))
            .map(|(index, _)| index)
    }

    pub fn code(&self, code: &str) -> Option<&Code> {
        self.codes.iter().find(|c| c.code == code)
    }

    /// Reads and validates a program file's text. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Program, ProgramError> {
        let raw: ProgramFile = toml::from_str(text).map_err(|error| ProgramError {
            file: file.to_string(),
            line: error.span().map(|span| line_of(text, &span)),
            message: error.message().trim_end().to_string(),
        })?;
        Validator { file, text }.program(raw)
    }
}

/// A program file that cannot be used: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ProgramError {}

fn line_of(text: &str, span: &Range<usize>) -> usize {
    let end = span.start.min(text.len());
    text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

// ---- the file as written -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramFile {
    id: Spanned<String>,
    name: String,
    time_zone: Spanned<String>,
    #[serde(default)]
    excluded_countries: Vec<Spanned<String>>,
    currencies: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    returns: ReturnsFile,
    qualification: QualificationFile,
    tiers: Vec<TierFile>,
    points: Option<PointsFile>,
    #[serde(default)]
    codes: Vec<CodeFile>,
    store_credit: Option<StoreCreditFile>,
    checkout: Option<CheckoutFile>,
    privacy: Option<PrivacyFile>,
    notifications: Option<NotificationsFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationsFile {
    tier_expiring_days: Option<Spanned<i64>>,
    points_expiring_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivacyFile {
    retention_months: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreCreditFile {
    validity_months: Spanned<i64>,
    price_adjustment_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutFile {
    hold_minutes: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnsFile {
    window_days: Spanned<i64>,
    #[serde(default)]
    extended: Vec<ExtendedFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendedFile {
    placed_from: Spanned<String>,
    placed_to: Spanned<String>,
    closes: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QualificationFile {
    mode: Spanned<String>,
    window_months: Option<Spanned<i64>>,
    term_months: Option<Spanned<i64>>,
    application: Option<Spanned<String>>,
    joining_tier: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierFile {
    id: Spanned<String>,
    name: Option<String>,
    #[serde(default)]
    threshold: BTreeMap<Spanned<String>, Spanned<String>>,
    rate: Option<Spanned<String>>,
    #[serde(default)]
    benefits: Vec<BenefitFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenefitFile {
    id: Spanned<String>,
    name: Option<String>,
    grant: Spanned<String>,
    /// A count, or "unlimited".
    quota: Spanned<toml::Value>,
    validity_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointsFile {
    expiry_months: Spanned<i64>,
    max_payment_share: Spanned<String>,
    #[serde(default)]
    birthday_bonus: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeFile {
    code: Spanned<String>,
    #[serde(default = "yes")]
    earns_points: bool,
    discount: Option<Spanned<String>>,
    order_number: Option<Spanned<u32>>,
    #[serde(default)]
    once_per_member: bool,
    #[serde(default)]
    one_time: bool,
    #[serde(default)]
    channels: Vec<Spanned<String>>,
    starts: Option<Spanned<String>>,
    ends: Option<Spanned<String>>,
    #[serde(default)]
    full_price_only: bool,
    #[serde(default)]
    refuse_sale_items: bool,
    #[serde(default)]
    refuse_store_credit: bool,
    badge: Option<String>,
    #[serde(default)]
    excluded_brands: Vec<String>,
    #[serde(default)]
    excluded_categories: Vec<String>,
    #[serde(default = "yes")]
    staff_eligible: bool,
    #[serde(default)]
    not_after: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

// ---- validation ----------------------------------------------------------------

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Validator<'_> {
    fn error<T>(&self, span: &Range<usize>, message: impl Into<String>) -> Result<T, ProgramError> {
        Err(ProgramError { file: self.file.to_string(), line: Some(line_of(self.text, span)), message: message.into() })
    }

    fn program(&self, raw: ProgramFile) -> Result<Program, ProgramError> {
        let id = raw.id.get_ref();
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return self.error(&raw.id.span(), format!("id: {id:?} must be 1–64 characters of a-z, 0-9 and '-'"));
        }
        let zone = raw.time_zone.get_ref();
        let Some(calendar) = Calendar::new(zone) else {
            return self.error(&raw.time_zone.span(), format!("time_zone: {zone:?} is not an IANA time zone"));
        };

        let (country_currency, currencies) = self.currencies(&raw.currencies)?;
        let mut excluded_countries = BTreeSet::new();
        for country in &raw.excluded_countries {
            self.country_code(country)?;
            if country_currency.contains_key(country.get_ref()) {
                return self.error(
                    &country.span(),
                    format!("excluded_countries: {} is also listed under a currency", country.get_ref()),
                );
            }
            excluded_countries.insert(country.get_ref().clone());
        }

        let returns = self.returns(&raw.returns)?;
        let (qualification, joining_name) = self.qualification(&raw.qualification)?;
        let points = raw.points.as_ref().map(|p| self.points(p)).transpose()?;
        let tiers = self.tiers(&raw.tiers, &currencies, joining_name.as_ref(), points.is_some())?;
        let joining_tier = match &joining_name {
            Some(name) => Some(0).filter(|_| tiers[0].id == *name.get_ref()),
            None => None,
        };
        if qualification == Qualification::CalendarYear && joining_tier.is_none() {
            return self.error(
                &raw.qualification.mode.span(),
                "qualification.joining_tier: calendar_year programs need a joining tier",
            );
        }

        let mut codes = Vec::new();
        let mut seen = BTreeSet::new();
        for code in &raw.codes {
            let text = code.code.get_ref();
            if text.is_empty() || text.len() > 64 || !seen.insert(text.clone()) {
                return self.error(
                    &code.code.span(),
                    format!("codes.code: {text:?} is empty, longer than 64 or listed twice"),
                );
            }
            codes.push(self.code(code)?);
        }
        for (code, raw_code) in codes.iter().zip(&raw.codes) {
            for (name, spanned) in code.not_after.iter().zip(&raw_code.not_after) {
                if !seen.contains(name) {
                    return self
                        .error(&spanned.span(), format!("codes.not_after: {name:?} is not a code of this program"));
                }
            }
        }
        let store_credit = match &raw.store_credit {
            Some(credit) => Some(StoreCreditRules {
                validity_months: self.positive_months(
                    "store_credit.validity_months",
                    &Some(credit.validity_months.clone()),
                    &credit.validity_months.span(),
                )?,
                price_adjustment_days: match &credit.price_adjustment_days {
                    Some(days) if (1..=366).contains(days.get_ref()) => Some(*days.get_ref()),
                    Some(days) => {
                        return self.error(
                            &days.span(),
                            format!("store_credit.price_adjustment_days: {} is not between 1 and 366", days.get_ref()),
                        );
                    }
                    None => None,
                },
            }),
            None => None,
        };
        let checkout = match &raw.checkout {
            Some(checkout) if (1..=1440).contains(checkout.hold_minutes.get_ref()) => {
                CheckoutRules { hold_minutes: *checkout.hold_minutes.get_ref() }
            }
            Some(checkout) => {
                return self.error(
                    &checkout.hold_minutes.span(),
                    format!("checkout.hold_minutes: {} is not between 1 and 1440", checkout.hold_minutes.get_ref()),
                );
            }
            None => CheckoutRules { hold_minutes: 30 },
        };

        Ok(Program {
            id: id.clone(),
            name: raw.name,
            calendar,
            excluded_countries,
            country_currency,
            currencies,
            returns,
            qualification,
            tiers,
            joining_tier,
            points,
            codes,
            store_credit,
            checkout,
            retention_months: match &raw.privacy {
                Some(privacy) => self.positive_months(
                    "privacy.retention_months",
                    &Some(privacy.retention_months.clone()),
                    &privacy.retention_months.span(),
                )?,
                None => 12,
            },
            notices: {
                let days = |value: Option<&Spanned<i64>>, field: &str| -> Result<i64, ProgramError> {
                    match value {
                        Some(days) if (1..=365).contains(days.get_ref()) => Ok(*days.get_ref()),
                        Some(days) => self.error(
                            &days.span(),
                            format!("notifications.{field}: {} is not between 1 and 365", days.get_ref()),
                        ),
                        None => Ok(30),
                    }
                };
                let file = raw.notifications.as_ref();
                Notices {
                    tier_expiring_days: days(file.and_then(|n| n.tier_expiring_days.as_ref()), "tier_expiring_days")?,
                    points_expiring_days: days(
                        file.and_then(|n| n.points_expiring_days.as_ref()),
                        "points_expiring_days",
                    )?,
                }
            },
        })
    }

    fn code(&self, raw: &CodeFile) -> Result<Code, ProgramError> {
        let name = raw.code.get_ref();
        let discount = match &raw.discount {
            Some(text) => match Rate::parse(text.get_ref()) {
                Some(rate) => Some(rate),
                _ => {
                    return self.error(
                        &text.span(),
                        format!("codes.discount: {:?} of {name} is not a share between 0 and 1", text.get_ref()),
                    );
                }
            },
            None => None,
        };
        let instant = |value: &Option<Spanned<String>>, field: &str| -> Result<Option<jiff::Timestamp>, ProgramError> {
            match value {
                Some(text) => match text.get_ref().parse::<jiff::Timestamp>() {
                    Ok(at) => Ok(Some(at)),
                    Err(_) => self.error(
                        &text.span(),
                        format!("codes.{field}: {:?} of {name} is not an RFC 3339 instant with offset", text.get_ref()),
                    ),
                },
                None => Ok(None),
            }
        };
        let starts = instant(&raw.starts, "starts")?;
        let ends = instant(&raw.ends, "ends")?;
        if let (Some(starts), Some(ends), Some(span)) = (starts, ends, raw.ends.as_ref().map(|e| e.span()))
            && ends < starts
        {
            return self.error(&span, format!("codes.ends: {name} ends before it starts"));
        }
        let mut channels = Vec::new();
        for channel in &raw.channels {
            if !matches!(channel.get_ref().as_str(), "web" | "app" | "store") {
                return self.error(
                    &channel.span(),
                    format!("codes.channels: {:?} is not web, app or store", channel.get_ref()),
                );
            }
            channels.push(channel.get_ref().clone());
        }
        if let Some(number) = &raw.order_number
            && *number.get_ref() == 0
        {
            return self.error(&number.span(), "codes.order_number: orders are counted from 1");
        }
        Ok(Code {
            code: name.clone(),
            earns_points: raw.earns_points,
            discount,
            order_number: raw.order_number.as_ref().map(|n| *n.get_ref()),
            once_per_member: raw.once_per_member,
            one_time: raw.one_time,
            channels,
            starts,
            ends,
            full_price_only: raw.full_price_only,
            refuse_sale_items: raw.refuse_sale_items,
            refuse_store_credit: raw.refuse_store_credit,
            badge: raw.badge.clone(),
            excluded_brands: raw.excluded_brands.iter().cloned().collect(),
            excluded_categories: raw.excluded_categories.iter().cloned().collect(),
            staff_eligible: raw.staff_eligible,
            not_after: raw.not_after.iter().map(|n| n.get_ref().clone()).collect(),
        })
    }

    fn country_code(&self, country: &Spanned<String>) -> Result<(), ProgramError> {
        let code = country.get_ref();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(())
        } else {
            self.error(&country.span(), format!("{code:?} is not an ISO 3166-1 alpha-2 country code"))
        }
    }

    fn currency(&self, code: &Spanned<String>) -> Result<Currency, ProgramError> {
        match Currency::from_code(code.get_ref()) {
            Some(currency) => Ok(currency),
            None => self.error(&code.span(), format!("{:?} is not an ISO 4217 currency code", code.get_ref())),
        }
    }

    #[allow(clippy::type_complexity)]
    fn currencies(
        &self,
        raw: &BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    ) -> Result<(BTreeMap<String, Currency>, Vec<Currency>), ProgramError> {
        let mut by_country = BTreeMap::new();
        let mut currencies = Vec::new();
        for (code, countries) in raw {
            let currency = self.currency(code)?;
            currencies.push(currency);
            for country in countries {
                self.country_code(country)?;
                if let Some(other) = by_country.insert(country.get_ref().clone(), currency) {
                    return self.error(
                        &country.span(),
                        format!("currencies.{currency}: {} is already listed under {other}", country.get_ref()),
                    );
                }
            }
        }
        if currencies.is_empty() {
            return Err(ProgramError {
                file: self.file.to_string(),
                line: None,
                message: "currencies: at least one reward currency is needed".to_string(),
            });
        }
        Ok((by_country, currencies))
    }

    fn month_day(&self, field: &str, value: &Spanned<String>) -> Result<(i8, i8), ProgramError> {
        let parsed = value.get_ref().split_once('-').and_then(|(m, d)| {
            let (month, day) = (m.parse::<i8>().ok()?, d.parse::<i8>().ok()?);
            (m.len() == 2 && d.len() == 2).then_some(())?;
            // 2000 is a leap year: Feb 29 is a valid month-day.
            jiff::civil::Date::new(2000, month, day).ok().map(|_| (month, day))
        });
        match parsed {
            Some(month_day) => Ok(month_day),
            None => self.error(&value.span(), format!("{field}: {:?} is not a month-day \"MM-DD\"", value.get_ref())),
        }
    }

    fn returns(&self, raw: &ReturnsFile) -> Result<Returns, ProgramError> {
        let days = *raw.window_days.get_ref();
        if !(0..=366).contains(&days) {
            return self
                .error(&raw.window_days.span(), format!("returns.window_days: {days} is not between 0 and 366"));
        }
        let mut extended = Vec::new();
        for window in &raw.extended {
            let placed_from = self.month_day("returns.extended.placed_from", &window.placed_from)?;
            let placed_to = self.month_day("returns.extended.placed_to", &window.placed_to)?;
            let closes = self.month_day("returns.extended.closes", &window.closes)?;
            if placed_to < placed_from {
                return self.error(
                    &window.placed_to.span(),
                    "returns.extended.placed_to: must not be before placed_from (same year)",
                );
            }
            extended.push(ExtendedWindow { placed_from, placed_to, closes });
        }
        Ok(Returns { window_days: days, extended })
    }

    fn positive_months(
        &self,
        field: &str,
        value: &Option<Spanned<i64>>,
        span: &Range<usize>,
    ) -> Result<i64, ProgramError> {
        match value {
            Some(v) if (1..=120).contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => self.error(&v.span(), format!("{field}: {} is not between 1 and 120", v.get_ref())),
            None => self.error(span, format!("{field}: missing (needed by this mode)")),
        }
    }

    fn qualification(&self, raw: &QualificationFile) -> Result<(Qualification, Option<Spanned<String>>), ProgramError> {
        let mode_span = raw.mode.span();
        let qualification = match raw.mode.get_ref().as_str() {
            "rolling" => {
                let window_months =
                    self.positive_months("qualification.window_months", &raw.window_months, &mode_span)?;
                let term_months = self.positive_months("qualification.term_months", &raw.term_months, &mode_span)?;
                let monthly_application = match raw.application.as_ref().map(|a| a.get_ref().as_str()) {
                    Some("monthly") => true,
                    Some("at_maturity") | None => false,
                    Some(other) => {
                        let span = raw.application.as_ref().map_or(mode_span.clone(), |a| a.span());
                        return self.error(
                            &span,
                            format!("qualification.application: {other:?} is not \"monthly\" or \"at_maturity\""),
                        );
                    }
                };
                Qualification::Rolling { window_months, term_months, monthly_application }
            }
            "calendar_year" | "lifetime" => {
                for (field, present) in [
                    ("window_months", raw.window_months.as_ref().map(|v| v.span())),
                    ("term_months", raw.term_months.as_ref().map(|v| v.span())),
                    ("application", raw.application.as_ref().map(|v| v.span())),
                ] {
                    if let Some(span) = present {
                        return self.error(&span, format!("qualification.{field}: only used by mode \"rolling\""));
                    }
                }
                if raw.mode.get_ref() == "lifetime" { Qualification::Lifetime } else { Qualification::CalendarYear }
            }
            other => {
                return self.error(
                    &mode_span,
                    format!("qualification.mode: {other:?} is not \"rolling\", \"calendar_year\" or \"lifetime\""),
                );
            }
        };
        Ok((qualification, raw.joining_tier.clone()))
    }

    fn points(&self, raw: &PointsFile) -> Result<PointsRules, ProgramError> {
        let expiry = *raw.expiry_months.get_ref();
        if !(1..=120).contains(&expiry) {
            return self
                .error(&raw.expiry_months.span(), format!("points.expiry_months: {expiry} is not between 1 and 120"));
        }
        let Some(share) = Rate::parse(raw.max_payment_share.get_ref()) else {
            return self.error(
                &raw.max_payment_share.span(),
                format!("points.max_payment_share: {:?} is not a decimal from 0 to 1", raw.max_payment_share.get_ref()),
            );
        };
        let bonus = raw.birthday_bonus.as_ref().map_or(0, |b| *b.get_ref());
        if let Some(b) = &raw.birthday_bonus
            && !(0..=1_000_000_000).contains(b.get_ref())
        {
            return self.error(&b.span(), format!("points.birthday_bonus: {bonus} is out of range"));
        }
        Ok(PointsRules { expiry_months: expiry, max_payment_share: share, birthday_bonus: bonus })
    }

    fn benefit(&self, tier: &str, raw: &BenefitFile) -> Result<Benefit, ProgramError> {
        let id = raw.id.get_ref();
        if id.is_empty()
            || id.len() > 64
            || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return self
                .error(&raw.id.span(), format!("tiers.{tier}.benefits.id: {id:?} must be 1–64 of a-z, 0-9, '_'"));
        }
        let grant = match raw.grant.get_ref().as_str() {
            "on_reaching" => BenefitGrant::OnReaching,
            "per_tier_year" => BenefitGrant::PerTierYear,
            "on_birthday" => BenefitGrant::OnBirthday,
            "while_held" => BenefitGrant::WhileHeld,
            other => {
                return self.error(
                    &raw.grant.span(),
                    format!(
                        "tiers.{tier}.benefits.{id}.grant: {other:?} is not on_reaching, per_tier_year, on_birthday \
                         or while_held"
                    ),
                );
            }
        };
        let quota = match raw.quota.get_ref() {
            toml::Value::String(text) if text == "unlimited" => None,
            toml::Value::Integer(n) if (1..=1000).contains(n) => Some(*n as u32),
            other => {
                return self.error(
                    &raw.quota.span(),
                    format!("tiers.{tier}.benefits.{id}.quota: {other} is not 1–1000 or \"unlimited\""),
                );
            }
        };
        let validity_days = match &raw.validity_days {
            Some(days) if (1..=3660).contains(days.get_ref()) => Some(*days.get_ref()),
            Some(days) => {
                return self.error(
                    &days.span(),
                    format!("tiers.{tier}.benefits.{id}.validity_days: {} is not 1–3660", days.get_ref()),
                );
            }
            None => None,
        };
        Ok(Benefit {
            id: id.clone(),
            name: raw.name.clone().unwrap_or_else(|| id.clone()),
            grant,
            quota,
            validity_days,
        })
    }

    fn tiers(
        &self,
        raw: &[TierFile],
        currencies: &[Currency],
        joining: Option<&Spanned<String>>,
        has_points: bool,
    ) -> Result<Vec<Tier>, ProgramError> {
        if raw.is_empty() {
            return Err(ProgramError {
                file: self.file.to_string(),
                line: None,
                message: "tiers: at least one tier is needed".to_string(),
            });
        }
        if let Some(joining) = joining
            && raw[0].id.get_ref() != joining.get_ref()
        {
            return self.error(
                &joining.span(),
                format!(
                    "qualification.joining_tier: {:?} must be the first tier ({:?})",
                    joining.get_ref(),
                    raw[0].id.get_ref()
                ),
            );
        }
        let mut tiers: Vec<Tier> = Vec::new();
        for (index, tier) in raw.iter().enumerate() {
            let id = tier.id.get_ref();
            let id_ok = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !id_ok || tiers.iter().any(|t| &t.id == id) {
                return self.error(
                    &tier.id.span(),
                    format!("tiers.id: {id:?} must be unique, 1–64 characters of a-z, 0-9 and '_'"),
                );
            }
            let is_joining = index == 0 && joining.is_some();
            let mut thresholds = BTreeMap::new();
            for (code, amount) in &tier.threshold {
                let currency = self.currency(code)?;
                if !currencies.contains(&currency) {
                    return self.error(
                        &code.span(),
                        format!("tiers.{id}.threshold: {currency} is not one of the program's currencies"),
                    );
                }
                let value = match currency.parse_amount(amount.get_ref()) {
                    Ok(v) => v,
                    Err(_) => {
                        return self.error(
                            &amount.span(),
                            format!(
                                "tiers.{id}.threshold.{currency}: {:?} is not an amount with at most {} decimals",
                                amount.get_ref(),
                                currency.exponent()
                            ),
                        );
                    }
                };
                if is_joining && value != Minor::ZERO {
                    return self
                        .error(&amount.span(), format!("tiers.{id}.threshold: the joining tier starts at zero"));
                }
                if let Some(previous) = tiers.last()
                    && let Some(below) = previous.thresholds.get(&currency)
                    && value <= *below
                {
                    return self.error(
                        &amount.span(),
                        format!(
                            "tiers.{id}.threshold.{currency}: {} is not above {}'s {} (thresholds must increase)",
                            currency.format(value),
                            previous.id,
                            currency.format(*below)
                        ),
                    );
                }
                thresholds.insert(currency, value);
            }
            for currency in currencies {
                if is_joining {
                    thresholds.insert(*currency, Minor::ZERO);
                } else if !thresholds.contains_key(currency) {
                    return self.error(&tier.id.span(), format!("tiers.{id}.threshold: no threshold for {currency}"));
                }
            }
            let rate = match (&tier.rate, has_points) {
                (Some(rate), true) => match Rate::parse(rate.get_ref()) {
                    Some(r) => Some(r),
                    None => {
                        return self.error(
                            &rate.span(),
                            format!("tiers.{id}.rate: {:?} is not a decimal from 0 to 1", rate.get_ref()),
                        );
                    }
                },
                (Some(rate), false) => {
                    return self.error(&rate.span(), format!("tiers.{id}.rate: the program has no [points]"));
                }
                (None, true) => {
                    return self.error(&tier.id.span(), format!("tiers.{id}.rate: missing (the program has points)"));
                }
                (None, false) => None,
            };
            let mut benefits: Vec<Benefit> = Vec::new();
            for benefit in &tier.benefits {
                let benefit = self.benefit(id, benefit)?;
                if benefits.iter().any(|b| b.id == benefit.id) {
                    return self
                        .error(&tier.id.span(), format!("tiers.{id}.benefits: {:?} is listed twice", benefit.id));
                }
                benefits.push(benefit);
            }
            tiers.push(Tier {
                id: id.clone(),
                name: tier.name.clone().unwrap_or_else(|| id.clone()),
                thresholds,
                rate,
                benefits,
            });
        }
        Ok(tiers)
    }
}
