//! Parsing text with a compiled MySQL-style format (`date_parse`), following the
//! Joda-Time parser Trino uses: numbers take up to their field width, names and
//! literals match case-insensitively, unset fields default to 1970-01-01 00:00:00.000,
//! and fields are applied largest first (twice, as Joda does) with range checks.

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Weekday};

use super::datetime::days_in_month;
use super::mysql_format::{Item, MONTHS, WEEKDAYS};

/// The fields seen while parsing; a field given twice keeps its last value.
#[derive(Default)]
struct Fields {
    year: Option<i32>,
    week_year: Option<i32>,
    month: Option<u32>,
    week: Option<u32>,
    day_of_year: Option<u32>,
    day: Option<u32>,
    weekday: Option<u32>,
    half_day: Option<u32>,
    hour: Option<u32>,
    clock_hour: Option<u32>,
    minute: Option<u32>,
    second: Option<u32>,
    millis: Option<u32>,
}

/// Parses `text` with a compiled format; `None` when it does not match or a field is
/// out of range.
pub(super) fn parse(items: &[Item], text: &str) -> Option<NaiveDateTime> {
    let mut f = Fields::default();
    let mut rest = text;
    for item in items {
        rest = match item {
            Item::Lit(s) => strip_literal(rest, s)?,
            Item::WeekdayShort | Item::WeekdayName => {
                let (i, r) = name(rest, &WEEKDAYS)?;
                f.weekday = Some(i + 1);
                r
            }
            Item::MonthShort | Item::MonthName => {
                let (i, r) = name(rest, &MONTHS)?;
                f.month = Some(i + 1);
                r
            }
            Item::HalfDay => {
                let (i, r) = name(rest, &["AM", "PM"])?;
                f.half_day = Some(i);
                r
            }
            Item::Month(_) => number(rest, 2, &mut f.month)?,
            Item::Day(_) => number(rest, 2, &mut f.day)?,
            Item::DayOfYear => number(rest, 3, &mut f.day_of_year)?,
            Item::Hour(_) => number(rest, 2, &mut f.hour)?,
            Item::ClockHour(_) => number(rest, 2, &mut f.clock_hour)?,
            Item::Minute => number(rest, 2, &mut f.minute)?,
            Item::Second => number(rest, 2, &mut f.second)?,
            Item::Week => number(rest, 2, &mut f.week)?,
            Item::Year => signed(rest, 4, &mut f.year)?,
            Item::WeekYear => signed(rest, 4, &mut f.week_year)?,
            Item::TwoDigitYear => {
                let two = rest.get(..2).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
                let yy: i32 = two.parse().ok()?;
                // Pivot 2020: "70".."99" are 1970..1999, "00".."69" are 2000..2069.
                f.year = Some(if yy >= 70 { 1900 + yy } else { 2000 + yy });
                &rest[2..]
            }
            Item::Fraction => {
                let len = digit_count(rest, 9);
                if len == 0 {
                    return None;
                }
                // Up to nine digits are accepted; the value is truncated to milliseconds.
                let ms = format!("{:0<3}", &rest[..len.min(3)]);
                f.millis = Some(ms.parse().ok()?);
                &rest[len..]
            }
        };
    }
    if !rest.is_empty() {
        return None;
    }
    resolve(&f)
}

fn digit_count(s: &str, max: usize) -> usize {
    s.bytes().take(max).take_while(u8::is_ascii_digit).count()
}

/// An unsigned number of one to `max` digits.
fn number<'a>(s: &'a str, max: usize, field: &mut Option<u32>) -> Option<&'a str> {
    let len = digit_count(s, max);
    *field = Some(s.get(..len).filter(|_| len > 0)?.parse().ok()?);
    Some(&s[len..])
}

/// An optionally signed number of one to `max` digits.
fn signed<'a>(s: &'a str, max: usize, field: &mut Option<i32>) -> Option<&'a str> {
    let sign = usize::from(s.starts_with(['-', '+']));
    let len = digit_count(&s[sign..], max);
    if len == 0 {
        return None;
    }
    *field = Some(s[..sign + len].parse().ok()?);
    Some(&s[sign + len..])
}

/// Matches a literal, ignoring case like Joda.
fn strip_literal<'a>(s: &'a str, literal: &str) -> Option<&'a str> {
    let mut rest = s.chars();
    for want in literal.chars() {
        let got = rest.next()?;
        if got != want && !got.to_lowercase().eq(want.to_lowercase()) {
            return None;
        }
    }
    Some(rest.as_str())
}

/// Matches a full or three-letter name, ignoring case; the longest match wins.
fn name<'a>(s: &'a str, names: &[&str]) -> Option<(u32, &'a str)> {
    let full = names.iter().map(|n| (*n, n.len()));
    let short = names.iter().map(|n| (*n, 3.min(n.len())));
    full.chain(short)
        .enumerate()
        .filter(|(_, (n, len))| s.get(..*len).is_some_and(|p| p.eq_ignore_ascii_case(&n[..*len])))
        .max_by_key(|(_, (_, len))| *len)
        .map(|(i, (_, len))| ((i % names.len()) as u32, &s[len..]))
}

fn weeks_in(week_year: i32) -> u32 {
    if NaiveDate::from_isoywd_opt(week_year, 53, Weekday::Mon).is_some() { 53 } else { 52 }
}

fn set_year(t: NaiveDateTime, year: i32) -> Option<NaiveDateTime> {
    // Joda keeps the day of month, moving 29 February to the 28th.
    t.with_year(year).or_else(|| t.with_day(28).and_then(|t| t.with_year(year)))
}

fn set_week_date(t: NaiveDateTime, week_year: i32, week: u32) -> Option<NaiveDateTime> {
    let date = NaiveDate::from_isoywd_opt(week_year, week, t.weekday())?;
    Some(date.and_time(t.time()))
}

/// Applies the parsed fields to 1970-01-01T00:00, largest unit first, then again so that
/// later fields (e.g. a weekday) can adjust earlier ones as Joda's second pass does.
fn resolve(f: &Fields) -> Option<NaiveDateTime> {
    let mut t = NaiveDate::from_ymd_opt(1970, 1, 1)?.and_hms_opt(0, 0, 0)?;
    for _ in 0..2 {
        if let Some(y) = f.year {
            t = set_year(t, y)?;
        }
        if let Some(wy) = f.week_year {
            let week = t.iso_week().week().min(weeks_in(wy));
            t = set_week_date(t, wy, week)?;
        }
        if let Some(m) = f.month {
            // Joda clamps the day when only the month changes.
            let days = days_in_month(t.year(), m)?;
            t = t.with_day(t.day().min(days))?.with_month(m)?;
        }
        if let Some(w) = f.week {
            t = set_week_date(t, t.iso_week().year(), w)?;
        }
        if let Some(d) = f.day_of_year {
            t = t.with_ordinal(d)?;
        }
        if let Some(d) = f.day {
            t = t.with_day(d)?;
        }
        if let Some(d) = f.weekday {
            let current = t.weekday().number_from_monday();
            t += TimeDelta::days(i64::from(d) - i64::from(current));
        }
        if let Some(h) = f.half_day {
            t = t.with_hour(t.hour() % 12 + 12 * h)?;
        }
        if let Some(h) = f.hour {
            t = t.with_hour(h)?;
        }
        if let Some(h) = f.clock_hour {
            if !(1..=12).contains(&h) {
                return None;
            }
            t = t.with_hour(t.hour() / 12 * 12 + h % 12)?;
        }
        if let Some(m) = f.minute {
            t = t.with_minute(m)?;
        }
        if let Some(s) = f.second {
            t = t.with_second(s)?;
        }
        if let Some(ms) = f.millis {
            t = t.with_nanosecond(ms * 1_000_000)?;
        }
    }
    Some(t)
}
