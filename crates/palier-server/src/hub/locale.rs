//! Number, money and date formatting for the Loyalty Hub's four locales.
//!
//! A small table instead of ICU data crates: four locales need two group
//! separators, two decimal marks, two currency placements, a handful of currency
//! symbols and three sets of month names, which fit on one screen and are tested
//! below; the ICU4X data for them would add megabytes of generated code to the
//! service's build for the same output. The values follow CLDR (the data ICU
//! uses): French groups with a narrow no-break space (U+202F), Russian with a
//! no-break space (U+00A0), and both put the currency after the amount, separated
//! by a no-break space; English and Korean group with commas and put the symbol
//! first.
//!
//! Currencies: the symbol where it is unambiguous for the reader of that locale (€,
//! £, ₽, ₩; `$` in English, `US$` / `$US` elsewhere, as CLDR), and the ISO code for
//! the others (AED, KWD, QAR, SAR…), written where a symbol would go.

use jiff::civil::Date;
use palier_core::money::{Currency, Minor};

/// A locale of the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locale {
    En,
    Fr,
    Ru,
    Ko,
}

const NBSP: char = '\u{a0}';
const NNBSP: char = '\u{202f}';

impl Locale {
    /// The order of the language switch.
    pub const ALL: [Locale; 4] = [Locale::Fr, Locale::Ru, Locale::Ko, Locale::En];

    /// The BCP 47 tag (`lang` attribute, `?lang=`).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Fr => "fr",
            Locale::Ru => "ru",
            Locale::Ko => "ko",
        }
    }

    /// The language's own name, for the switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::Fr => "Français",
            Locale::Ru => "Русский",
            Locale::Ko => "한국어",
        }
    }

    /// A language tag's locale, by its primary subtag (`fr-CA` → French).
    pub fn parse(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        Locale::ALL.into_iter().find(|l| primary.eq_ignore_ascii_case(l.tag()))
    }

    /// The best locale of an `Accept-Language` header (RFC 9110 §12.5.4): the
    /// highest weight, the earliest on a tie; `q=0` refuses.
    pub fn negotiate(accept_language: &str) -> Option<Locale> {
        let mut best: Option<(u16, Locale)> = None;
        for item in accept_language.split(',') {
            let mut parts = item.split(';');
            let Some(locale) = parts.next().and_then(Locale::parse) else { continue };
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .map_or(1000, parse_weight);
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, locale));
            }
        }
        best.map(|(_, locale)| locale)
    }

    fn group_separator(self) -> char {
        match self {
            Locale::En | Locale::Ko => ',',
            Locale::Fr => NNBSP,
            Locale::Ru => NBSP,
        }
    }

    fn decimal_mark(self) -> char {
        match self {
            Locale::En | Locale::Ko => '.',
            Locale::Fr | Locale::Ru => ',',
        }
    }

    /// Whether the currency is written after the amount.
    fn currency_after(self) -> bool {
        matches!(self, Locale::Fr | Locale::Ru)
    }

    /// An integer with the locale's grouping: `12,345` / `12 345`.
    pub fn integer(self, value: i64) -> String {
        let mut text = String::new();
        if value < 0 {
            text.push('-');
        }
        push_grouped(&mut text, &value.unsigned_abs().to_string(), self.group_separator());
        text
    }

    /// A decimal number of `exponent` digits after the mark (no currency).
    pub fn decimal(self, amount: Minor, exponent: u32) -> String {
        let mut text = String::new();
        if amount.0 < 0 {
            text.push('-');
        }
        let digits = amount.0.unsigned_abs();
        let scale = 10_u64.pow(exponent);
        push_grouped(&mut text, &(digits / scale).to_string(), self.group_separator());
        if exponent > 0 {
            text.push(self.decimal_mark());
            text.push_str(&format!("{:0width$}", digits % scale, width = exponent as usize));
        }
        text
    }

    /// An amount of money: `€2,850.00`, `2 850,00 €`, `US$6,500.00`, `AED 12,000.00`.
    pub fn money(self, currency: Currency, amount: Minor) -> String {
        let sign = if amount.0 < 0 { "-" } else { "" };
        let number = self.decimal(Minor(amount.0.saturating_abs()), currency.exponent());
        let (symbol, is_code) = match self.symbol(currency.code()) {
            Some(symbol) => (symbol.to_string(), false),
            None => (currency.code().to_string(), true),
        };
        if self.currency_after() {
            format!("{sign}{number}{NBSP}{symbol}")
        } else if is_code {
            format!("{sign}{symbol}{NBSP}{number}")
        } else {
            format!("{sign}{symbol}{number}")
        }
    }

    /// The currency's symbol in this locale, if it has one readers know.
    fn symbol(self, code: &str) -> Option<&'static str> {
        Some(match (code, self) {
            ("EUR", _) => "€",
            ("GBP", _) => "£",
            ("RUB", _) => "₽",
            ("KRW", _) => "₩",
            ("USD", Locale::En | Locale::Ru) => "$",
            ("USD", Locale::Ko) => "US$",
            ("USD", Locale::Fr) => "$US",
            ("AUD", Locale::En | Locale::Ru) => "A$",
            ("AUD", Locale::Ko) => "AU$",
            ("AUD", Locale::Fr) => "$AU",
            ("HKD", Locale::Fr) => "$HK",
            ("HKD", _) => "HK$",
            _ => return None,
        })
    }

    /// A month's name in a date (`mars`; Russian in the genitive: `марта`).
    pub fn month_name(self, month: i8) -> &'static str {
        const EN: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        const FR: [&str; 12] = [
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ];
        const RU: [&str; 12] = [
            "января",
            "февраля",
            "марта",
            "апреля",
            "мая",
            "июня",
            "июля",
            "августа",
            "сентября",
            "октября",
            "ноября",
            "декабря",
        ];
        const KO: [&str; 12] = ["1월", "2월", "3월", "4월", "5월", "6월", "7월", "8월", "9월", "10월", "11월", "12월"];
        let index = usize::try_from(month - 1).unwrap_or_default().min(11);
        match self {
            Locale::En => EN[index],
            Locale::Fr => FR[index],
            Locale::Ru => RU[index],
            Locale::Ko => KO[index],
        }
    }

    /// A date in full: `1 March 2026`, `1 mars 2026`, `1 марта 2026 г.`, `2026년 3월 1일`.
    pub fn date(self, date: Date) -> String {
        let (year, month, day) = (date.year(), date.month(), date.day());
        match self {
            Locale::En | Locale::Fr => format!("{day} {} {year}", self.month_name(month)),
            Locale::Ru => format!("{day} {} {year}{NBSP}г.", self.month_name(month)),
            Locale::Ko => format!("{year}년 {} {day}일", self.month_name(month)),
        }
    }
}

fn parse_weight(text: &str) -> u16 {
    // q = 0(.ddd) or 1(.000), as thousandths.
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut digits: String = fraction.chars().take(3).collect();
    while digits.len() < 3 {
        digits.push('0');
    }
    match (whole, digits.parse::<u16>()) {
        ("1", _) => 1000,
        ("0", Ok(thousandths)) => thousandths,
        _ => 0,
    }
}

fn push_grouped(out: &mut String, digits: &str, separator: char) {
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(digit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::from_code("EUR").expect("EUR")
    }

    /// Spaces made visible: U+202F as `_`, U+00A0 as `~`.
    fn shown(text: String) -> String {
        text.replace(NNBSP, "_").replace(NBSP, "~")
    }

    #[test]
    fn money_in_each_locale() {
        let amount = Minor(285_000);
        assert_eq!(Locale::En.money(eur(), amount), "€2,850.00");
        assert_eq!(shown(Locale::Fr.money(eur(), amount)), "2_850,00~€");
        assert_eq!(shown(Locale::Ru.money(eur(), amount)), "2~850,00~€");
        assert_eq!(Locale::Ko.money(eur(), amount), "€2,850.00");
        let rub = Currency::from_code("RUB").expect("RUB");
        assert_eq!(shown(Locale::Ru.money(rub, Minor(38_000_000))), "380~000,00~₽");
        assert_eq!(Locale::En.money(rub, Minor(38_000_000)), "₽380,000.00");
        let usd = Currency::from_code("USD").expect("USD");
        assert_eq!(Locale::En.money(usd, Minor(650_000)), "$6,500.00");
        assert_eq!(Locale::Ko.money(usd, Minor(650_000)), "US$6,500.00");
        assert_eq!(shown(Locale::Fr.money(usd, Minor(650_000))), "6_500,00~$US");
        assert_eq!(shown(Locale::Ru.money(usd, Minor(650_000))), "6~500,00~$");
        let gbp = Currency::from_code("GBP").expect("GBP");
        assert_eq!(Locale::En.money(gbp, Minor(250_000)), "£2,500.00");
    }

    #[test]
    fn currencies_without_a_common_symbol_show_their_code() {
        let aed = Currency::from_code("AED").expect("AED");
        assert_eq!(shown(Locale::En.money(aed, Minor(1_200_000))), "AED~12,000.00");
        assert_eq!(shown(Locale::Fr.money(aed, Minor(1_200_000))), "12_000,00~AED");
        // Three digits after the mark for KWD.
        let kwd = Currency::from_code("KWD").expect("KWD");
        assert_eq!(shown(Locale::En.money(kwd, Minor(1_000_000))), "KWD~1,000.000");
        assert_eq!(shown(Locale::Ru.money(kwd, Minor(1_000_500))), "1~000,500~KWD");
    }

    #[test]
    fn small_negative_and_huge_amounts() {
        assert_eq!(Locale::En.money(eur(), Minor(5)), "€0.05");
        assert_eq!(Locale::En.money(eur(), Minor(-500)), "-€5.00");
        assert_eq!(shown(Locale::Fr.money(eur(), Minor(-500))), "-5,00~€");
        assert_eq!(Locale::En.money(eur(), Minor(100_000_000_000_000)), "€1,000,000,000,000.00");
        assert_eq!(Locale::En.money(eur(), Minor(i64::MIN)), "-€92,233,720,368,547,758.07");
    }

    #[test]
    fn integers_group_by_three() {
        assert_eq!(Locale::En.integer(0), "0");
        assert_eq!(Locale::En.integer(999), "999");
        assert_eq!(Locale::En.integer(1000), "1,000");
        assert_eq!(Locale::Ko.integer(16_000), "16,000");
        assert_eq!(shown(Locale::Fr.integer(16_000)), "16_000");
        assert_eq!(shown(Locale::Ru.integer(-1_234_567)), "-1~234~567");
    }

    #[test]
    fn dates_in_each_locale() {
        let date = jiff::civil::date(2026, 3, 1);
        assert_eq!(Locale::En.date(date), "1 March 2026");
        assert_eq!(Locale::Fr.date(date), "1 mars 2026");
        assert_eq!(shown(Locale::Ru.date(date)), "1 марта 2026~г.");
        assert_eq!(Locale::Ko.date(date), "2026년 3월 1일");
        assert_eq!(Locale::Fr.date(jiff::civil::date(2030, 8, 15)), "15 août 2030");
        assert_eq!(Locale::Ru.month_name(5), "мая");
        assert_eq!(Locale::Ko.date(jiff::civil::date(2029, 12, 31)), "2029년 12월 31일");
    }

    #[test]
    fn tags_and_accept_language() {
        assert_eq!(Locale::parse("fr"), Some(Locale::Fr));
        assert_eq!(Locale::parse("FR-ca"), Some(Locale::Fr));
        assert_eq!(Locale::parse("ko_KR"), Some(Locale::Ko));
        assert_eq!(Locale::parse("de"), None);
        assert_eq!(Locale::negotiate("ru-RU,ru;q=0.9,en-US;q=0.8"), Some(Locale::Ru));
        assert_eq!(Locale::negotiate("de-DE, en;q=0.5, ko;q=0.7"), Some(Locale::Ko));
        assert_eq!(Locale::negotiate("de, fr;q=0"), None);
        assert_eq!(Locale::negotiate("en;q=0.8, fr;q=0.8"), Some(Locale::En));
        assert_eq!(Locale::negotiate("*"), None);
        assert_eq!(Locale::negotiate(""), None);
    }
}
