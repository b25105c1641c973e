//! Personal data: a wrapper that never shows its value in logs or debug output,
//! and the age rules (programs.md §6).

use std::fmt;

use jiff::civil::Date;

/// A personal value (name, e-mail, birth date). `Debug` and `Display` print
/// `[redacted]`, so it cannot leak into logs by accident; read it with `.expose()`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    pub fn new(value: T) -> Personal<T> {
        Personal(value)
    }

    /// The value itself: for the rules, the member's own export, and storage.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Marketing channels a member consents to (seed 001).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsentChannel {
    Email,
    Sms,
    Phone,
    Post,
    Push,
}

impl ConsentChannel {
    pub const ALL: [ConsentChannel; 5] =
        [ConsentChannel::Email, ConsentChannel::Sms, ConsentChannel::Phone, ConsentChannel::Post, ConsentChannel::Push];

    pub fn parse(text: &str) -> Option<ConsentChannel> {
        ConsentChannel::ALL.into_iter().find(|c| c.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentChannel::Email => "email",
            ConsentChannel::Sms => "sms",
            ConsentChannel::Phone => "phone",
            ConsentChannel::Post => "post",
            ConsentChannel::Push => "push",
        }
    }
}

/// Registration below this age needs a guardian's consent (programs.md §6).
pub const GUARDIAN_AGE: i16 = 16;
/// Orders need this age (programs.md §6).
pub const ORDER_AGE: i16 = 18;

/// Whole years from `birth` to `on` (a Feb 29 birthday counts on Mar 1 in common
/// years, the legal reading in most of the programs' countries).
pub fn age_on(birth: Date, on: Date) -> i16 {
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn age_turns_on_the_birthday() {
        assert_eq!(age_on(date(2008, 5, 17), date(2026, 5, 16)), 17);
        assert_eq!(age_on(date(2008, 5, 17), date(2026, 5, 17)), 18);
        assert_eq!(age_on(date(2008, 2, 29), date(2026, 2, 28)), 17);
        assert_eq!(age_on(date(2008, 2, 29), date(2026, 3, 1)), 18);
    }

    #[test]
    fn personal_values_never_print() {
        let email = Personal::new("someone@example.com".to_string());
        assert_eq!(format!("{email:?} {email}"), "[redacted] [redacted]");
        assert_eq!(email.expose(), "someone@example.com");
    }
}
