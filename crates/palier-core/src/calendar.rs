//! Civil time in a program's IANA zone.
//!
//! "Month", "year", "day", "January" and "birthday" are civil dates in the program's
//! zone (programs.md §0). Adding days or months keeps the wall-clock time; a local
//! time that does not exist moves forward by the gap, one that occurs twice takes
//! the earlier instant (RFC 5545 / Temporal "compatible", programs.md §7.2). jiff's
//! zoned arithmetic implements exactly that rule, with a bundled tz database.

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// First and last civil years whose month starts are precomputed; events are
/// limited to 1970–2999, and rules look a few years beyond.
const FIRST_YEAR: i16 = 1969;
const LAST_YEAR: i16 = 3010;

/// A program's zone, with the civil-time operations the rules need.
///
/// The instant of every first of a month at 00:00 is computed once, when the program
/// is loaded: "which year", "next first of a month" and "Jan 1" are then binary
/// searches, not time-zone conversions, on the engine's hot path.
#[derive(Clone, Debug)]
pub struct Calendar {
    zone: TimeZone,
    name: String,
    /// `month_starts[i]`: 00:00 on the first day of month `i` counted from January
    /// of `FIRST_YEAR`.
    month_starts: Vec<Timestamp>,
    /// The zone's offset changes over `FIRST_YEAR..=LAST_YEAR`, so that converting
    /// an instant there is a binary search rather than a walk through the zone's
    /// rules.
    shifts: Shifts,
}

/// A zone's offsets over a span of time: `first` from `from`, then each change in
/// turn, up to `until` (Unix seconds). `buckets[k]` is the first change at or after
/// `from + k << BUCKET_BITS`, so that finding the changes around an instant is a
/// look into a bucket of one or two, not a search.
#[derive(Clone, Debug)]
struct Shifts {
    from: i64,
    until: i64,
    first: Offset,
    changes: Vec<(i64, Offset)>,
    buckets: Vec<u32>,
}

/// Buckets of 2^23 seconds, some 97 days: zones change offset at most a few times a year.
const BUCKET_BITS: u32 = 23;

impl Shifts {
    fn new(zone: &TimeZone, from: Timestamp, until: Timestamp) -> Shifts {
        let changes: Vec<(i64, Offset)> = zone
            .following(from)
            .take_while(|change| change.timestamp() < until)
            .map(|change| (change.timestamp().as_second(), change.offset()))
            .collect();
        let first = zone.to_offset(from);
        let (from, until) = (from.as_second(), until.as_second());
        let buckets = (0..=((until - from) >> BUCKET_BITS))
            .map(|k| {
                let start = from + (k << BUCKET_BITS);
                u32::try_from(changes.partition_point(|(at, _)| *at < start)).unwrap_or(u32::MAX)
            })
            .collect();
        Shifts { from, until, first, changes, buckets }
    }

    /// The offset at `second` and the index of the first change after it, when
    /// `second` is in the span.
    fn around(&self, second: i64) -> Option<(Offset, usize)> {
        if !(self.from..self.until).contains(&second) {
            return None;
        }
        let mut next = *self.buckets.get(usize::try_from((second - self.from) >> BUCKET_BITS).ok()?)? as usize;
        while self.changes.get(next).is_some_and(|(at, _)| *at <= second) {
            next += 1;
        }
        Some((next.checked_sub(1).map_or(self.first, |i| self.changes[i].1), next))
    }

    fn offset_at(&self, second: i64) -> Option<Offset> {
        self.around(second).map(|(offset, _)| offset)
    }

    /// The one offset in force over `from..=until` (seconds), if it does not change there.
    fn steady_over(&self, from: i64, until: i64) -> Option<Offset> {
        let (offset, next) = self.around(from)?;
        let steady = until < self.until && self.changes.get(next).is_none_or(|(at, _)| *at > until);
        steady.then_some(offset)
    }
}

impl Calendar {
    /// Looks an IANA zone up in the bundled database.
    pub fn new(name: &str) -> Option<Calendar> {
        let zone = jiff::tz::db().get(name).ok()?;
        let midnight_utc = |date: Date| Offset::UTC.to_timestamp(date.to_datetime(jiff::civil::Time::midnight()));
        let from = midnight_utc(Date::new(FIRST_YEAR - 1, 1, 1).ok()?).ok()?;
        let until = midnight_utc(Date::new(LAST_YEAR + 1, 12, 31).ok()?).ok()?;
        let shifts = Shifts::new(&zone, from, until);
        let mut calendar = Calendar { zone, name: name.to_string(), month_starts: Vec::new(), shifts };
        let mut starts = Vec::with_capacity(12 * (LAST_YEAR - FIRST_YEAR + 1) as usize);
        for year in FIRST_YEAR..=LAST_YEAR {
            for month in 1..=12 {
                starts.push(calendar.start_of_day(Date::new(year, month, 1).ok()?));
            }
        }
        calendar.month_starts = starts;
        Some(calendar)
    }

    pub fn zone_name(&self) -> &str {
        &self.name
    }

    /// The civil date-time of an instant in the program's zone.
    pub fn civil(&self, at: Timestamp) -> DateTime {
        match self.shifts.offset_at(at.as_second()) {
            Some(offset) => offset.to_datetime(at),
            None => self.zone.to_datetime(at),
        }
    }

    /// The instant of a civil date-time ("compatible" disambiguation).
    pub fn instant(&self, civil: DateTime) -> Timestamp {
        // Read as UTC, the civil time is within a day of its instant (offsets are
        // under 26 hours). When the offset holds for two days either side, that
        // offset gives the one instant; near a change (a gap or a fold), the zone
        // decides.
        const TWO_DAYS: i64 = 2 * 86_400;
        if let Ok(as_utc) = Offset::UTC.to_timestamp(civil)
            && let Some(offset) = self.shifts.steady_over(as_utc.as_second() - TWO_DAYS, as_utc.as_second() + TWO_DAYS)
            && let Ok(at) = as_utc.checked_sub(SignedDuration::from_secs(i64::from(offset.seconds())))
        {
            return at;
        }
        // `compatible()` only fails beyond jiff's supported range (years
        // -9999..=9999), which event validation rules out.
        self.zone.to_ambiguous_timestamp(civil).compatible().unwrap_or(Timestamp::MAX)
    }

    /// Midnight starting a civil date.
    pub fn start_of_day(&self, date: Date) -> Timestamp {
        self.instant(date.to_datetime(jiff::civil::Time::midnight()))
    }

    /// `n` calendar days later, same wall-clock time.
    pub fn add_days(&self, at: Timestamp, days: i64) -> Timestamp {
        // With the same offset from three days before `at` to three days after the
        // result, every day between is 24 hours long and the result is no gap or
        // fold: it is exactly `days` × 24 hours later (what the civil way below gives).
        const THREE_DAYS: i64 = 3 * 86_400;
        let second = at.as_second();
        if let Some(later) = days.checked_mul(86_400).filter(|_| days >= 0).and_then(|d| second.checked_add(d))
            && self.shifts.steady_over(second - THREE_DAYS, later + THREE_DAYS).is_some()
            && let Ok(later) = Timestamp::from_second(later)
        {
            return later;
        }
        // Civil date-times have no DST: a civil day is always 24 hours.
        let civil = self.civil(at);
        match civil.checked_add(SignedDuration::from_hours(24 * days)) {
            Ok(later) => self.instant(later),
            Err(_) => Timestamp::MAX,
        }
    }

    /// `n` months later (or earlier, negative), same wall-clock time, day clamped to
    /// the month's end (Jan 31 + 1 month = Feb 28/29).
    pub fn add_months(&self, at: Timestamp, months: i64) -> Timestamp {
        let civil = self.civil(at);
        let index = i64::from(civil.year()) * 12 + i64::from(civil.month() - 1) + months;
        let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
        let Ok(year) = i16::try_from(year) else { return Timestamp::MAX };
        match Calendar::clamped_date(year, month as i8, civil.day()) {
            Some(date) => self.instant(date.to_datetime(civil.time())),
            None => Timestamp::MAX,
        }
    }

    /// Index in `month_starts` of the month containing `at` (0 before the first).
    fn month_index(&self, at: Timestamp) -> usize {
        // An average Gregorian month from 1970 lands within a month of the answer (a
        // zone's offset is under a day); the steps below settle it.
        const AVERAGE_MONTH_SECONDS: i64 = 2_629_746;
        let guess = at.as_second().div_euclid(AVERAGE_MONTH_SECONDS) + 12 * i64::from(1970 - FIRST_YEAR);
        let last = self.month_starts.len() - 1;
        let mut index = usize::try_from(guess.max(0)).unwrap_or(0).min(last);
        while index > 0 && self.month_starts[index] > at {
            index -= 1;
        }
        while index < last && self.month_starts[index + 1] <= at {
            index += 1;
        }
        index
    }

    /// The first instant at or after `at` that is a first day of a month, 00:00.
    pub fn month_start_at_or_after(&self, at: Timestamp) -> Timestamp {
        let index = self.month_index(at);
        let index = if self.month_starts[index] >= at { index } else { index + 1 };
        self.month_starts.get(index).copied().unwrap_or(Timestamp::MAX)
    }

    /// The civil year of an instant.
    pub fn year(&self, at: Timestamp) -> i16 {
        if at < self.month_starts[0] || at >= Timestamp::MAX {
            return self.civil(at).year();
        }
        FIRST_YEAR + (self.month_index(at) / 12) as i16
    }

    /// Jan 1 00:00 of `year`.
    pub fn start_of_year(&self, year: i16) -> Timestamp {
        if (FIRST_YEAR..=LAST_YEAR).contains(&year) {
            return self.month_starts[12 * (year - FIRST_YEAR) as usize];
        }
        Date::new(year, 1, 1).map_or(Timestamp::MAX, |d| self.start_of_day(d))
    }

    /// The civil date of `month`-`day` in `year`, the day clamped to the month's end
    /// (Feb 29 → Feb 28 in a common year).
    pub fn clamped_date(year: i16, month: i8, day: i8) -> Option<Date> {
        let first = Date::new(year, month, 1).ok()?;
        Date::new(year, month, day.min(first.days_in_month())).ok()
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
    fn maybe_at_answers_as_an_option_of_its_instant() {
        let instants = [
            Timestamp::MIN,
            ts("1969-12-31T23:59:59.5Z"),
            ts("1970-01-01T00:00:00Z"),
            ts("2999-12-31T23:59:59.999999999Z"),
            Timestamp::MAX,
        ];
        for at in instants.into_iter().map(Some).chain([None]) {
            let kept = MaybeAt::from(at);
            assert_eq!(kept.get(), at);
            assert_eq!(kept.is_some(), at.is_some());
            assert_eq!(kept.is_none(), at.is_none());
            assert_eq!(format!("{kept:?}"), format!("{at:?}"));
        }
        assert_eq!(MaybeAt::default(), MaybeAt::NONE);
        assert_eq!(size_of::<MaybeAt>(), 12, "the point of the type");
        for at in instants {
            assert_eq!(At::from(at).get(), at);
            assert_eq!(format!("{:?}", At::from(at)), format!("{at:?}"));
        }
        assert_eq!(size_of::<At>(), 12, "the point of the type");
    }

    proptest::proptest! {
        /// `At`s are in the order of the instants they hold, before 1970 and after.
        #[test]
        fn instants_kept_in_12_bytes_keep_their_order(
            a in (-377_705_116_800i64..=253_402_300_799, -999_999_999i32..=999_999_999),
            b in (-377_705_116_800i64..=253_402_300_799, -999_999_999i32..=999_999_999),
        ) {
            let instant = |(second, nanosecond): (i64, i32)| {
                // Timestamp wants the nanoseconds of the second's sign.
                let nanosecond = if second < 0 { -nanosecond.abs() } else if second > 0 { nanosecond.abs() } else { nanosecond };
                Timestamp::new(second, nanosecond).unwrap_or(Timestamp::MIN)
            };
            let (a, b) = (instant(a), instant(b));
            proptest::prop_assert_eq!(At::from(a).cmp(&At::from(b)), a.cmp(&b), "{} against {}", a, b);
            proptest::prop_assert_eq!(At::from(a) == At::from(b), a == b);
        }
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
    fn calendar_month_lookups_agree_with_a_search() {
        for zone in ["Europe/London", "Europe/Moscow", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"] {
            let cal = Calendar::new(zone).expect("bundled zone");
            let first = cal.month_starts[0].as_second();
            let last = cal.month_starts[cal.month_starts.len() - 1].as_second();
            // Every month start, a second either side, and points in between.
            let mut instants: Vec<i64> =
                cal.month_starts.iter().flat_map(|s| [s.as_second() - 1, s.as_second(), s.as_second() + 1]).collect();
            instants.extend((first - 100_000..last + 100_000).step_by(86_400 * 7 + 3_601));
            for second in instants {
                let at = Timestamp::from_second(second).expect("in range");
                let searched = cal.month_starts.partition_point(|start| *start <= at).saturating_sub(1);
                assert_eq!(cal.month_index(at), searched, "{zone} {at}");
                let after = cal.month_starts.partition_point(|start| *start < at);
                let expected = cal.month_starts.get(after).copied().unwrap_or(Timestamp::MAX);
                assert_eq!(cal.month_start_at_or_after(at), expected, "{zone} {at}");
            }
        }
    }

    #[test]
    fn calendar_conversions_agree_with_the_zone() {
        // Zones with summer time, none, a skipped day (Apia, Kiritimati) and odd offsets.
        for zone in ["Europe/London", "Europe/Moscow", "Pacific/Apia", "Pacific/Kiritimati", "Asia/Kathmandu"] {
            let cal = Calendar::new(zone).expect("bundled zone");
            let tz = jiff::tz::db().get(zone).expect("bundled zone");
            let mut seconds: Vec<i64> = (-86_400 * 400..33_000_000_000).step_by(86_400 * 3 + 1_799).collect();
            // Every change from 1990 to 2040, and the seconds and hours around it.
            let changes =
                tz.following(ts("1990-01-01T00:00:00Z")).take_while(|c| c.timestamp() < ts("2040-01-01T00:00:00Z"));
            for change in changes {
                let at = change.timestamp().as_second();
                seconds.extend([-7200, -3601, -3600, -1, 0, 1, 1800, 3599, 3600, 7200].map(|d| at + d));
            }
            for second in seconds {
                let at = Timestamp::from_second(second).expect("in range");
                let civil = tz.to_datetime(at);
                assert_eq!(cal.civil(at), civil, "{zone} {at}");
                assert_eq!(
                    cal.instant(civil),
                    tz.to_ambiguous_timestamp(civil).compatible().expect("in range"),
                    "{zone} {at}"
                );
                // Days later, same wall-clock time, across changes or not.
                for days in [0, 1, 3, 28] {
                    let wall_clock = civil + SignedDuration::from_hours(24 * days);
                    let expected = tz.to_ambiguous_timestamp(wall_clock).compatible().expect("in range");
                    assert_eq!(cal.add_days(at, days), expected, "{zone} {at} + {days} days");
                }
                // Civil times in gaps and folds too: the half hour after each instant.
                let later = civil + SignedDuration::from_mins(30);
                assert_eq!(
                    cal.instant(later),
                    tz.to_ambiguous_timestamp(later).compatible().expect("in range"),
                    "{zone} {later}"
                );
            }
        }
    }

    #[test]
    fn calendar_moscow_has_no_dst() {
        let cal = Calendar::new("Europe/Moscow").expect("bundled zone");
        assert_eq!(format_instant(cal.start_of_year(2027)), "2026-12-31T21:00:00Z");
        let later = cal.add_days(ts("2026-03-20T09:00:00Z"), 14);
        assert_eq!(format_instant(later), "2026-04-03T09:00:00Z");
    }
}

/// An instant in 12 bytes, where `Timestamp` takes 16 (its 8-byte alignment pads
/// it): each of some 4 million orders at 10M events keeps four instants.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// The Unix second's low and high halves (halves: a 4-byte alignment).
    second: [u32; 2],
    /// The nanoseconds past it, as `Timestamp` keeps them (negative before 1970).
    nanosecond: i32,
}

impl At {
    /// The Unix second, as `Timestamp` keeps it.
    fn unix_second(self) -> i64 {
        (u64::from(self.second[1]) << 32 | u64::from(self.second[0])) as i64
    }

    pub fn get(self) -> Timestamp {
        // Made from a `Timestamp`, so always within its range.
        Timestamp::new(self.unix_second(), self.nanosecond).unwrap_or(Timestamp::MIN)
    }
}

/// In time order, as the `Timestamp`s they hold.
impl Ord for At {
    fn cmp(&self, other: &At) -> std::cmp::Ordering {
        (self.unix_second(), self.nanosecond).cmp(&(other.unix_second(), other.nanosecond))
    }
}

impl PartialOrd for At {
    fn partial_cmp(&self, other: &At) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl From<Timestamp> for At {
    fn from(at: Timestamp) -> At {
        let second = at.as_second() as u64;
        At { second: [second as u32, (second >> 32) as u32], nanosecond: at.subsec_nanosecond() }
    }
}

impl std::fmt::Debug for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// An optional instant in 12 bytes, where `Option<Timestamp>` takes 24: a member
/// and each of their orders keep several, and at 10 million events the difference
/// is some 200 MB. "None" is a nanosecond count no instant has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MaybeAt(At);

impl MaybeAt {
    pub const NONE: MaybeAt = MaybeAt(At { second: [0, 0], nanosecond: i32::MIN });

    pub fn get(self) -> Option<Timestamp> {
        self.is_some().then(|| self.0.get())
    }

    pub fn is_some(self) -> bool {
        self.0.nanosecond != i32::MIN
    }

    pub fn is_none(self) -> bool {
        self.0.nanosecond == i32::MIN
    }

    pub fn is_some_and(self, f: impl FnOnce(Timestamp) -> bool) -> bool {
        self.get().is_some_and(f)
    }

    pub fn is_none_or(self, f: impl FnOnce(Timestamp) -> bool) -> bool {
        self.get().is_none_or(f)
    }

    pub fn map<T>(self, f: impl FnOnce(Timestamp) -> T) -> Option<T> {
        self.get().map(f)
    }

    pub fn unwrap_or(self, default: Timestamp) -> Timestamp {
        self.get().unwrap_or(default)
    }
}

impl Default for MaybeAt {
    fn default() -> MaybeAt {
        MaybeAt::NONE
    }
}

impl From<Option<Timestamp>> for MaybeAt {
    fn from(at: Option<Timestamp>) -> MaybeAt {
        at.map_or(MaybeAt::NONE, MaybeAt::from)
    }
}

impl From<Timestamp> for MaybeAt {
    fn from(at: Timestamp) -> MaybeAt {
        MaybeAt(At::from(at))
    }
}

impl std::fmt::Debug for MaybeAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}
