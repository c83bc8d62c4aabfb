//! Time criteria: `valid_from` / `valid_until` instants, and recurring `days_of_week` /
//! `time_of_day` windows read in a time zone.
//!
//! Days and time of day are independent tests of the local wall clock: with
//! `days_of_week: [fri]` and `time_of_day: "22:00-06:00"`, Saturday 02:00 is outside (it is not a
//! Friday). Write the days the window's hours fall on.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::fmt;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// A time zone with the name it was written as.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    tz: TimeZone,
    name: Box<str>,
}

impl Zone {
    pub(crate) fn utc() -> Self {
        Self {
            tz: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    pub(crate) fn parse(name: &str) -> Result<Self, String> {
        TimeZone::get(name)
            .map(|tz| Self {
                tz,
                name: name.into(),
            })
            .map_err(|_| {
                format!(
                    "unknown time zone `{name}`: use an IANA name such as `Europe/Berlin` or `UTC`"
                )
            })
    }

    /// The local weekday (0 = Monday) and second of the day at `now_secs`.
    pub(crate) fn local(&self, now_secs: i64) -> (u8, u32) {
        let offset = Timestamp::from_second(now_secs)
            .map(|ts| self.tz.to_offset(ts).seconds())
            .unwrap_or(0);
        let local = now_secs.saturating_add(i64::from(offset));
        let days = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday (index 3).
        let weekday = (days + 3).rem_euclid(7) as u8;
        (weekday, local.rem_euclid(86_400) as u32)
    }

    /// The local time at `now_secs`, for traces.
    pub(crate) fn describe(&self, now_secs: i64) -> String {
        match Timestamp::from_second(now_secs) {
            Ok(ts) => {
                let (weekday, _) = self.local(now_secs);
                let z = ts.to_zoned(self.tz.clone());
                format!(
                    "local time {} {}",
                    DAY_NAMES[usize::from(weekday)],
                    z.strftime("%Y-%m-%d %H:%M:%S %:z")
                )
            }
            Err(_) => format!("time {now_secs} is out of range"),
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A set of weekdays, bit 0 = Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Weekdays(u8);

impl Weekdays {
    pub(crate) fn contains(self, weekday: u8) -> bool {
        self.0 & (1 << weekday) != 0
    }

    /// Reads `mon`, `Monday`, or a range such as `mon-fri` (which may wrap: `fri-mon`).
    pub(crate) fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut bits = 0u8;
        for item in items {
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (day_index(a)?, day_index(b)?),
                None => {
                    let d = day_index(item)?;
                    (d, d)
                }
            };
            let mut d = a;
            loop {
                bits |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        Ok(Self(bits))
    }
}

impl fmt::Display for Weekdays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (i, name) in DAY_NAMES.iter().enumerate() {
            if self.contains(i as u8) {
                if !first {
                    f.write_str(", ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

fn day_index(name: &str) -> Result<u8, String> {
    let n = name.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| *d == n)
        .or_else(|| FULL_DAY_NAMES.iter().position(|d| *d == n))
        .map(|i| i as u8)
        .ok_or_else(|| {
            format!("`{name}` is not a day: use mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri")
        })
}

/// `HH:MM-HH:MM`: start inclusive, end exclusive; a start after the end spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeWindow {
    start: u32,
    end: u32,
}

impl TimeWindow {
    pub(crate) fn contains(self, second_of_day: u32) -> bool {
        if self.start < self.end {
            self.start <= second_of_day && second_of_day < self.end
        } else {
            second_of_day >= self.start || second_of_day < self.end
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a time window such as `09:00-17:30` or `22:00-06:00`");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let start = clock_time(a.trim(), false).ok_or_else(bad)?;
        let end = clock_time(b.trim(), true).ok_or_else(bad)?;
        if start == end % 86_400 {
            return Err(format!(
                "`{s}` starts where it ends: drop `time_of_day` for all day"
            ));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |s: u32| (s / 3600, s % 3600 / 60);
        let (sh, sm) = hm(self.start);
        let (eh, em) = hm(self.end);
        write!(f, "{sh:02}:{sm:02}-{eh:02}:{em:02}")
    }
}

/// `HH:MM` as seconds of the day; `24:00` only as an end.
fn clock_time(s: &str, is_end: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if is_end => Some(86_400),
        (0..=23, 0..=59) => Some(h * 3600 + m * 60),
        _ => None,
    }
}

/// Reads an RFC 3339 timestamp (`2025-01-31T18:00:00Z`, `2025-01-31T19:00:00+01:00`).
pub(crate) fn parse_instant(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>().map_err(|_| {
        format!("`{s}` is not an RFC 3339 timestamp such as `2025-01-31T18:00:00Z` (an offset is required)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn weekdays_parse() {
        let w = Weekdays::parse(["mon-wed", "Sat"]).unwrap();
        assert_eq!(w.to_string(), "mon, tue, wed, sat");
        let w = Weekdays::parse(["fri-mon"]).unwrap();
        assert_eq!(w.to_string(), "mon, fri, sat, sun");
        assert_eq!(Weekdays::parse(["sunday"]).unwrap().to_string(), "sun");
        assert!(Weekdays::parse(["mon", "funday"]).is_err());
        assert!(Weekdays::parse(["mon-"]).is_err());
    }

    #[test]
    fn windows_parse_and_wrap() {
        let w = TimeWindow::parse("09:00-17:30").unwrap();
        assert!(w.contains(9 * 3600));
        assert!(w.contains(17 * 3600 + 29 * 60 + 59));
        assert!(!w.contains(17 * 3600 + 30 * 60));
        assert!(!w.contains(8 * 3600 + 59 * 60));
        let n = TimeWindow::parse("22:00-06:00").unwrap();
        assert!(n.contains(23 * 3600));
        assert!(n.contains(0));
        assert!(n.contains(5 * 3600 + 59 * 60));
        assert!(!n.contains(6 * 3600));
        assert!(!n.contains(12 * 3600));
        let e = TimeWindow::parse("18:00-24:00").unwrap();
        assert!(e.contains(86_399));
        for bad in [
            "9:00-17:00",
            "09:00",
            "25:00-01:00",
            "10:60-11:00",
            "24:00-01:00",
            "08:00-08:00",
            "00:00-24:00",
        ] {
            assert!(TimeWindow::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn local_time_follows_the_zone() {
        let utc = Zone::utc();
        // 2025-01-06 was a Monday.
        assert_eq!(utc.local(at("2025-01-06T10:30:00Z")), (0, 10 * 3600 + 1800));
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        // Winter: UTC+1; Sunday 23:30 UTC is Monday 00:30 in Berlin.
        assert_eq!(berlin.local(at("2025-01-05T23:30:00Z")), (0, 1800));
        // Summer: UTC+2.
        assert_eq!(berlin.local(at("2025-07-01T12:00:00Z")), (1, 14 * 3600));
        assert!(Zone::parse("Mars/Olympus").is_err());
        assert!(berlin
            .describe(at("2025-07-01T12:00:00Z"))
            .contains("tue 2025-07-01 14:00:00 +02:00"));
    }

    #[test]
    fn instants_parse() {
        assert_eq!(
            parse_instant("1970-01-01T00:01:00Z").unwrap().as_second(),
            60
        );
        assert_eq!(
            parse_instant("1970-01-01T01:01:00+01:00")
                .unwrap()
                .as_second(),
            60
        );
        assert!(parse_instant("2025-01-01").is_err());
        assert!(parse_instant("2025-01-01T00:00:00").is_err());
        assert!(parse_instant("yesterday").is_err());
    }
}
