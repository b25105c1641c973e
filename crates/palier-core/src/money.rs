//! Money: exact amounts in a currency's minor unit (ISO 4217 exponent).
//!
//! No floating point anywhere. Amounts are `i64` counts of minor units; every
//! operation that could overflow is checked.

use std::fmt;

/// An ISO 4217 currency with its minor-unit exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// ISO 4217 active codes and their exponents (minor digits).
const ISO_4217: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWL", 2),
];

impl Currency {
    /// Looks a currency up by its ISO 4217 code (upper case).
    pub fn from_code(code: &str) -> Option<Currency> {
        // The table is sorted by code; three ASCII bytes compare as one number.
        let key = |code: &str| match *code.as_bytes() {
            [a, b, c] => Some(u32::from_be_bytes([0, a, b, c])),
            _ => None,
        };
        let wanted = key(code)?;
        let index = ISO_4217.binary_search_by_key(&Some(wanted), |(c, _)| key(c)).ok()?;
        let (found, exponent) = &ISO_4217[index];
        let bytes = found.as_bytes();
        Some(Currency { code: [bytes[0], bytes[1], bytes[2]], exponent: *exponent })
    }

    pub fn code(&self) -> &str {
        // The code bytes always come from the ASCII table above.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Number of minor digits (2 for EUR, 3 for KWD).
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }

    /// Minor units in one major unit (100 for EUR, 1000 for KWD).
    pub fn minor_per_major(&self) -> i64 {
        10_i64.pow(self.exponent())
    }

    /// The largest amount an event may carry: 10^12 major units.
    pub fn max_amount(&self) -> Minor {
        Minor(1_000_000_000_000 * self.minor_per_major())
    }

    /// Parses a decimal string with at most this currency's minor digits.
    pub fn parse_amount(&self, text: &str) -> Result<Minor, AmountError> {
        match self.parse_plain_amount(text.as_bytes()) {
            Some(minor) => Ok(minor),
            None => self.parse_any_amount(text),
        }
    }

    /// The usual amount, in one pass: up to 13 digits, then `.` and 1 to
    /// `exponent` digits or nothing, within the bound. `None` for anything else
    /// (which [`Currency::parse_any_amount`] reads or explains).
    fn parse_plain_amount(&self, bytes: &[u8]) -> Option<Minor> {
        let whole_digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        if whole_digits == 0 || whole_digits > 13 {
            return None;
        }
        let (whole, rest) = bytes.split_at(whole_digits);
        let fraction = match rest {
            [] => &[][..],
            [b'.', fraction @ ..] if !fraction.is_empty() && fraction.len() <= usize::from(self.exponent) => fraction,
            _ => return None,
        };
        let digits = |digits: &[u8]| {
            digits.iter().try_fold(0_i64, |n, b| b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0')))
        };
        let scale = 10_i64.pow(self.exponent() - fraction.len() as u32);
        let minor = Minor(digits(whole)? * self.minor_per_major() + digits(fraction)? * scale);
        (minor <= self.max_amount()).then_some(minor)
    }

    /// [`Currency::parse_amount`] for any text, naming what is wrong.
    fn parse_any_amount(&self, text: &str) -> Result<Minor, AmountError> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((w, f)) => (w, f),
            None => (digits, ""),
        };
        let well_formed = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && !(digits.contains('.') && fraction.is_empty());
        if !well_formed {
            return Err(AmountError::Malformed);
        }
        if fraction.len() > self.exponent as usize {
            return Err(AmountError::TooManyDigits { allowed: self.exponent() });
        }
        let whole_trimmed = whole.trim_start_matches('0');
        if whole_trimmed.len() > 13 {
            return Err(if negative { AmountError::Negative } else { AmountError::TooLarge });
        }
        let whole_value: i64 =
            if whole_trimmed.is_empty() { 0 } else { whole_trimmed.parse().map_err(|_| AmountError::Malformed)? };
        let mut fraction_value: i64 = 0;
        for position in 0..self.exponent as usize {
            let digit = fraction.as_bytes().get(position).map_or(0, |b| i64::from(b - b'0'));
            fraction_value = fraction_value * 10 + digit;
        }
        let minor = Minor(whole_value * self.minor_per_major() + fraction_value);
        if negative && minor.0 != 0 {
            return Err(AmountError::Negative);
        }
        if minor > self.max_amount() {
            return Err(AmountError::TooLarge);
        }
        Ok(minor)
    }

    /// Formats an amount with exactly this currency's minor digits.
    pub fn format(&self, amount: Minor) -> String {
        // Right to left into a buffer: the minor digits, the point, then the whole
        // part (at most 19 digits) and the sign.
        let mut text = [0_u8; 32];
        let mut at = text.len();
        let mut put = |byte: u8| {
            at -= 1;
            text[at] = byte;
        };
        let mut rest = amount.0.unsigned_abs();
        for _ in 0..self.exponent {
            put(b'0' + (rest % 10) as u8);
            rest /= 10;
        }
        if self.exponent > 0 {
            put(b'.');
        }
        loop {
            put(b'0' + (rest % 10) as u8);
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if amount.0 < 0 {
            put(b'-');
        }
        text[at..].iter().copied().map(char::from).collect()
    }

    /// [`Currency::format`] through the standard formatter, to test it against.
    #[cfg(test)]
    fn format_by_fmt(&self, amount: Minor) -> String {
        let per_major = self.minor_per_major();
        let sign = if amount.0 < 0 { "-" } else { "" };
        let magnitude = amount.0.unsigned_abs();
        if self.exponent == 0 {
            return format!("{sign}{magnitude}");
        }
        let per_major = per_major.unsigned_abs();
        format!("{sign}{}.{:0width$}", magnitude / per_major, magnitude % per_major, width = self.exponent as usize)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a decimal string is not an amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountError {
    Malformed,
    TooManyDigits { allowed: u32 },
    Negative,
    TooLarge,
}

/// A count of minor units (cents, fils, kopecks). Never a float.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Minor(pub i64);

impl Minor {
    pub const ZERO: Minor = Minor(0);

    pub fn checked_add(self, other: Minor) -> Option<Minor> {
        self.0.checked_add(other.0).map(Minor)
    }

    pub fn checked_sub(self, other: Minor) -> Option<Minor> {
        self.0.checked_sub(other.0).map(Minor)
    }

    /// Adds two amounts whose sum is bounded by an invariant of the caller
    /// (both parts of a total that was itself checked when it entered).
    pub fn saturating_add(self, other: Minor) -> Minor {
        Minor(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Minor) -> Minor {
        Minor(self.0.saturating_sub(other.0))
    }
}

/// An exact rate written as a decimal in a program file ("0.05", "0.5").
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rate {
    numerator: i64,
    denominator: i64,
}

impl Rate {
    /// Parses a decimal between 0 and 1 inclusive with at most 6 fraction digits.
    pub fn parse(text: &str) -> Option<Rate> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || fraction.len() > 6
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || whole.len() > 1
        {
            return None;
        }
        let denominator = 10_i64.pow(fraction.len() as u32);
        let numerator = whole.parse::<i64>().ok()? * denominator
            + if fraction.is_empty() { 0 } else { fraction.parse::<i64>().ok()? };
        (numerator <= denominator).then_some(Rate { numerator, denominator })
    }

    /// `floor(self × value)`, exact (i128 intermediate).
    pub fn floor_of(&self, value: i64) -> i64 {
        let product = i128::from(value) * i128::from(self.numerator);
        // value ≥ 0 on every use; floor division for completeness.
        product.div_euclid(i128::from(self.denominator)) as i64
    }

    /// Is `part ≤ self × whole`? Exact.
    pub fn allows(&self, part: i64, whole: i64) -> bool {
        i128::from(part) * i128::from(self.denominator) <= i128::from(whole) * i128::from(self.numerator)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.denominator.ilog10() as usize;
        if digits == 0 {
            return write!(f, "{}", self.numerator);
        }
        write!(f, "{}.{:0digits$}", self.numerator / self.denominator, self.numerator % self.denominator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::from_code("EUR").expect("EUR is in the table")
    }

    fn kwd() -> Currency {
        Currency::from_code("KWD").expect("KWD is in the table")
    }

    #[test]
    fn money_currency_table_is_sorted_for_lookup() {
        assert!(ISO_4217.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(Currency::from_code("ZZZ").is_none());
        assert_eq!(Currency::from_code("AED").map(|c| c.exponent()), Some(2));
        assert_eq!(Currency::from_code("ZWL").map(|c| c.exponent()), Some(2));
    }

    #[test]
    fn money_parses_and_formats_with_the_iso_exponent() {
        assert_eq!(eur().parse_amount("3000.00"), Ok(Minor(300_000)));
        assert_eq!(eur().parse_amount("3000.5"), Ok(Minor(300_050)));
        assert_eq!(eur().parse_amount("3000"), Ok(Minor(300_000)));
        assert_eq!(kwd().parse_amount("1000.000"), Ok(Minor(1_000_000)));
        assert_eq!(kwd().format(Minor(1_000_000)), "1000.000");
        assert_eq!(eur().format(Minor(5)), "0.05");
        assert_eq!(eur().format(Minor(-105)), "-1.05");
    }

    #[test]
    fn money_rejects_bad_amounts_by_rule() {
        assert_eq!(eur().parse_amount("10.001"), Err(AmountError::TooManyDigits { allowed: 2 }));
        assert_eq!(eur().parse_amount("-5.00"), Err(AmountError::Negative));
        assert_eq!(eur().parse_amount("1000000000000.01"), Err(AmountError::TooLarge));
        assert_eq!(eur().parse_amount("1000000000000.00"), Ok(Minor(100_000_000_000_000)));
        for bad in ["", ".5", "5.", "1e3", "+5", "5,00", " 5", "0x10"] {
            assert_eq!(eur().parse_amount(bad), Err(AmountError::Malformed), "{bad:?}");
        }
        assert_eq!(eur().parse_amount("-0.00"), Ok(Minor(0)));
    }

    proptest::proptest! {
        /// The one-pass reading of the usual amount and the buffer formatting agree
        /// with the general reading and the standard formatter.
        #[test]
        fn money_fast_paths_agree_with_the_general_ones(
            code in proptest::sample::select(vec!["EUR", "KWD", "JPY", "RUB", "BHD"]),
            text in "-?[0-9]{0,16}(\\.[0-9]{0,5})?x?",
            amount in proptest::prelude::any::<i64>(),
        ) {
            let currency = Currency::from_code(code).expect("in the table");
            proptest::prop_assert_eq!(currency.parse_amount(&text), currency.parse_any_amount(&text), "{}", text);
            if let Some(plain) = currency.parse_plain_amount(text.as_bytes()) {
                proptest::prop_assert_eq!(Ok(plain), currency.parse_any_amount(&text));
            }
            proptest::prop_assert_eq!(currency.format(Minor(amount)), currency.format_by_fmt(Minor(amount)));
        }
    }

    #[test]
    fn money_fast_paths_take_the_usual_amounts() {
        assert_eq!(eur().parse_plain_amount(b"3000.50"), Some(Minor(300_050)));
        assert_eq!(kwd().parse_plain_amount(b"0.5"), Some(Minor(500)));
        assert_eq!(eur().parse_plain_amount(b"-1.00"), None);
        assert_eq!(eur().format(Minor(i64::MIN)), "-92233720368547758.08");
    }

    #[test]
    fn rate_is_exact() {
        let rate = Rate::parse("0.07").expect("valid rate");
        assert_eq!(rate.floor_of(123_456), 8641);
        assert_eq!(rate.to_string(), "0.07");
        let half = Rate::parse("0.5").expect("valid rate");
        assert!(half.allows(50, 100));
        assert!(!half.allows(51, 100));
        assert!(Rate::parse("1.5").is_none());
        assert!(Rate::parse("abc").is_none());
    }
}
