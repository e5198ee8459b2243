//! Durations of `--keep-within`: `90d`, `1y6m`, `2w`, `36h` (years, months, weeks,
//! days, hours). Years and months are calendar ones: 1m before 31 March is the
//! last day of February.

use std::fmt;
use std::str::FromStr;

use time::{Duration, OffsetDateTime};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl Span {
    /// The moment `self` before `t`.
    pub fn before(&self, t: OffsetDateTime) -> OffsetDateTime {
        let total = t.year() as i64 * 12 + (t.month() as i64 - 1)
            - self.years as i64 * 12
            - self.months as i64;
        let (year, month0) = (total.div_euclid(12) as i32, total.rem_euclid(12) as u8);
        let month = time::Month::try_from(month0 + 1).expect("1..=12");
        let day = t.day().min(month.length(year));
        let date = time::Date::from_calendar_date(year, month, day).expect("valid day");
        t.replace_date(date) - Duration::days(self.days as i64) - Duration::hours(self.hours as i64)
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Span, String> {
        let bad = || format!("{s:?} is not a duration: write it like 90d, 1y6m, 2w or 36h");
        let mut span = Span::default();
        let mut num = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: u32 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => span.years += n,
                'm' => span.months += n,
                'w' => span.days += 7 * n,
                'd' => span.days += n,
                'h' => span.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || span == Span::default() {
            return Err(bad());
        }
        Ok(span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_and_prints() {
        let s: Span = "1y6m2w3d4h".parse().unwrap();
        assert_eq!(
            s,
            Span {
                years: 1,
                months: 6,
                days: 17,
                hours: 4
            }
        );
        assert_eq!(s.to_string(), "1y6m17d4h");
        for bad in ["", "90", "d", "5x", "0d"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }

    #[test]
    fn calendar_months() {
        let m: Span = "1m".parse().unwrap();
        assert_eq!(
            m.before(datetime!(2026-03-31 03:00 UTC)),
            datetime!(2026-02-28 03:00 UTC)
        );
        let y: Span = "20y".parse().unwrap();
        assert_eq!(
            y.before(datetime!(2024-02-29 0:00 UTC)),
            datetime!(2004-02-29 0:00 UTC)
        );
        let d: Span = "90d".parse().unwrap();
        assert_eq!(
            d.before(datetime!(2026-11-28 03:00 UTC)),
            datetime!(2026-08-30 03:00 UTC)
        );
    }
}
