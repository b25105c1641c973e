//! Civil time in a program's IANA zone.
//!
//! "Month", "year", "day", "January" and "birthday" are civil dates in the program's
//! zone (programs.md §0). Adding days or months keeps the wall-clock time; a local
//! time that does not exist moves forward by the gap, one that occurs twice takes
//! the earlier instant (RFC 5545 / Temporal "compatible", programs.md §7.2). jiff's
//! zoned arithmetic implements exactly that rule, with a bundled tz database.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime};

/// A program's zone, with the civil-time operations the rules need.
#[derive(Clone, Debug)]
pub struct Calendar {
    zone: TimeZone,
    name: String,
}

impl Calendar {
    /// Looks an IANA zone up in the bundled database.
    pub fn new(name: &str) -> Option<Calendar> {
        let zone = jiff::tz::db().get(name).ok()?;
        Some(Calendar { zone, name: name.to_string() })
    }

    pub fn zone_name(&self) -> &str {
        &self.name
    }

    fn zoned(&self, at: Timestamp) -> ZonedDateTime {
        at.to_zoned_datetime(self.zone.clone())
    }

    /// The civil date-time of an instant in the program's zone.
    pub fn civil(&self, at: Timestamp) -> DateTime {
        self.zone.to_datetime(at)
    }

    /// The instant of a civil date-time ("compatible" disambiguation).
    pub fn instant(&self, civil: DateTime) -> Timestamp {
        // `to_ambiguous_zoned(..).compatible()` only fails beyond jiff's supported
        // range (years -9999..=9999), which event validation rules out.
        self.zone.to_ambiguous_timestamp(civil).compatible().unwrap_or(Timestamp::MAX)
    }

    /// Midnight starting a civil date.
    pub fn start_of_day(&self, date: Date) -> Timestamp {
        self.instant(date.to_datetime(jiff::civil::Time::midnight()))
    }

    /// `n` calendar days later, same wall-clock time.
    pub fn add_days(&self, at: Timestamp, days: i64) -> Timestamp {
        self.zoned(at).checked_add(Span::new().days(days)).map_or(Timestamp::MAX, |z| z.timestamp())
    }

    /// `n` months later (or earlier, negative), same wall-clock time, day clamped to
    /// the month's end (Jan 31 + 1 month = Feb 28/29).
    pub fn add_months(&self, at: Timestamp, months: i64) -> Timestamp {
        self.zoned(at).checked_add(Span::new().months(months)).map_or(Timestamp::MAX, |z| z.timestamp())
    }

    /// The first instant at or after `at` that is a first day of a month, 00:00.
    pub fn month_start_at_or_after(&self, at: Timestamp) -> Timestamp {
        let date = self.civil(at).date();
        let this_month = self.start_of_day(date.first_of_month());
        if this_month == at {
            return at;
        }
        let next = date.first_of_month().checked_add(Span::new().months(1));
        next.map_or(Timestamp::MAX, |d| self.start_of_day(d))
    }

    /// The civil year of an instant.
    pub fn year(&self, at: Timestamp) -> i16 {
        self.civil(at).year()
    }

    /// Jan 1 00:00 of `year`.
    pub fn start_of_year(&self, year: i16) -> Timestamp {
        Date::new(year, 1, 1).map_or(Timestamp::MAX, |d| self.start_of_day(d))
    }

    /// The civil date of `month`-`day` in `year`, the day clamped to the month's end
    /// (Feb 29 → Feb 28 in a common year).
    pub fn clamped_date(year: i16, month: i8, day: i8) -> Option<Date> {
        let first = Date::new(year, month, 1).ok()?;
        let last = first.last_of_month().day();
        Date::new(year, month, day.min(last)).ok()
    }
}

/// Formats an instant as the contract prints it: UTC, whole seconds.
pub fn format_instant(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test instants are valid")
    }

    fn london() -> Calendar {
        Calendar::new("Europe/London").expect("bundled zone")
    }

    #[test]
    fn calendar_days_keep_wall_clock_time_across_dst() {
        // 2026-03-10 12:00 GMT + 28 days = 2026-04-07 12:00 BST = 11:00Z.
        let later = london().add_days(ts("2026-03-10T12:00:00Z"), 28);
        assert_eq!(format_instant(later), "2026-04-07T11:00:00Z");
        // 2026-10-10 12:00 BST (11:00Z) + 28 days = 2026-11-07 12:00 GMT.
        let later = london().add_days(ts("2026-10-10T11:00:00Z"), 28);
        assert_eq!(format_instant(later), "2026-11-07T12:00:00Z");
    }

    #[test]
    fn calendar_gap_moves_forward_and_fold_takes_earlier() {
        // 2026-03-01 01:30 GMT + 28 days = 2026-03-29 01:30, which does not exist
        // in London (clocks go 01:00 → 02:00): compatible gives 02:30 BST = 01:30Z.
        let later = london().add_days(ts("2026-03-01T01:30:00Z"), 28);
        assert_eq!(format_instant(later), "2026-03-29T01:30:00Z");
        // 2026-09-27 01:30 BST (00:30Z) + 28 days = 2026-10-25 01:30, twice:
        // the earlier is BST, 00:30Z.
        let later = london().add_days(ts("2026-09-27T00:30:00Z"), 28);
        assert_eq!(format_instant(later), "2026-10-25T00:30:00Z");
    }

    #[test]
    fn calendar_months_clamp_the_day() {
        let cal = Calendar::new("UTC").expect("bundled zone");
        let jan31 = ts("2027-01-31T10:00:00Z");
        assert_eq!(format_instant(cal.add_months(jan31, 1)), "2027-02-28T10:00:00Z");
        let jan31_leap = ts("2028-01-31T10:00:00Z");
        assert_eq!(format_instant(cal.add_months(jan31_leap, 1)), "2028-02-29T10:00:00Z");
        let feb29 = ts("2028-02-29T10:00:00Z");
        assert_eq!(format_instant(cal.add_months(feb29, -12)), "2027-02-28T10:00:00Z");
    }

    #[test]
    fn calendar_month_start_is_local_midnight() {
        let cal = london();
        // In summer, 1 July 00:00 London is 30 June 23:00Z.
        let start = cal.month_start_at_or_after(ts("2026-06-15T09:00:00Z"));
        assert_eq!(format_instant(start), "2026-06-30T23:00:00Z");
        assert_eq!(cal.month_start_at_or_after(start), start);
        let start = cal.month_start_at_or_after(ts("2026-06-30T23:00:01Z"));
        assert_eq!(format_instant(start), "2026-07-31T23:00:00Z");
    }

    #[test]
    fn calendar_moscow_has_no_dst() {
        let cal = Calendar::new("Europe/Moscow").expect("bundled zone");
        assert_eq!(format_instant(cal.start_of_year(2027)), "2026-12-31T21:00:00Z");
        let later = cal.add_days(ts("2026-03-20T09:00:00Z"), 14);
        assert_eq!(format_instant(later), "2026-04-03T09:00:00Z");
    }
}
