//! Trino's MySQL-style format strings (`date_format`, `date_parse`): compiling a format
//! once, printing wall-clock times with it, and the two function kernels.
//!
//! Trino compiles these formats to Joda-Time formatters; the printing and parsing rules
//! here follow that (e.g. `%f` prints milliseconds padded to six digits, `%D %U %u %V %w
//! %X` are rejected, an unknown `%x` is the literal `x`).

use std::fmt::Write;
use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{ArrayRef, StringBuilder, TimestampMillisecondArray};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ColumnarValue;

use super::datetime::{TsType, raw_values};
use super::{SpecCache, StrArg};

pub(super) const MONTHS: [&str; 12] = [
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

pub(super) const WEEKDAYS: [&str; 7] =
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// One element of a compiled format. Numeric items carry their minimum printed width.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    Lit(String),
    /// `%a`
    WeekdayShort,
    /// `%W`
    WeekdayName,
    /// `%b`
    MonthShort,
    /// `%M`
    MonthName,
    /// `%c` (1), `%m` (2)
    Month(usize),
    /// `%e` (1), `%d` (2)
    Day(usize),
    /// `%j`
    DayOfYear,
    /// `%k` (1), `%H` (2)
    Hour(usize),
    /// `%l` (1), `%h` `%I` (2)
    ClockHour(usize),
    /// `%i`
    Minute,
    /// `%s` `%S`
    Second,
    /// `%f`
    Fraction,
    /// `%p`
    HalfDay,
    /// `%v`: ISO week of the week-based year
    Week,
    /// `%x`: ISO week-based year
    WeekYear,
    /// `%Y`
    Year,
    /// `%y`
    TwoDigitYear,
}

/// Compiles a Trino/MySQL format string; `name` is the calling function, for errors.
pub(super) fn compile(format: &str, name: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut literal = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        // A trailing lone `%` prints nothing, as in Trino.
        let Some(code) = chars.next() else { break };
        let lit = |s: &str| Item::Lit(s.to_owned());
        let expanded = match code {
            'a' => vec![Item::WeekdayShort],
            'b' => vec![Item::MonthShort],
            'c' => vec![Item::Month(1)],
            'd' => vec![Item::Day(2)],
            'e' => vec![Item::Day(1)],
            'f' => vec![Item::Fraction],
            'H' => vec![Item::Hour(2)],
            'h' | 'I' => vec![Item::ClockHour(2)],
            'i' => vec![Item::Minute],
            'j' => vec![Item::DayOfYear],
            'k' => vec![Item::Hour(1)],
            'l' => vec![Item::ClockHour(1)],
            'M' => vec![Item::MonthName],
            'm' => vec![Item::Month(2)],
            'p' => vec![Item::HalfDay],
            'S' | 's' => vec![Item::Second],
            'v' => vec![Item::Week],
            'x' => vec![Item::WeekYear],
            'W' => vec![Item::WeekdayName],
            'Y' => vec![Item::Year],
            'y' => vec![Item::TwoDigitYear],
            'r' => vec![
                Item::ClockHour(2),
                lit(":"),
                Item::Minute,
                lit(":"),
                Item::Second,
                lit(" "),
                Item::HalfDay,
            ],
            'T' => vec![Item::Hour(2), lit(":"), Item::Minute, lit(":"), Item::Second],
            'D' | 'U' | 'u' | 'V' | 'w' | 'X' => {
                return exec_err!("{name}: %{code} not supported in date format string '{format}'");
            }
            // `%%` and any unknown `%x` are the literal character.
            other => {
                literal.push(other);
                continue;
            }
        };
        for item in expanded {
            match item {
                Item::Lit(s) => literal.push_str(&s),
                other => {
                    if !literal.is_empty() {
                        items.push(Item::Lit(std::mem::take(&mut literal)));
                    }
                    items.push(other);
                }
            }
        }
    }
    if !literal.is_empty() {
        items.push(Item::Lit(literal));
    }
    Ok(items)
}

/// Appends `v` zero-padded to `width` digits.
fn pad(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    let _ = write!(out, "{:0width$}", v.unsigned_abs());
}

/// Prints a wall-clock time with a compiled format.
pub(super) fn print(items: &[Item], t: &NaiveDateTime, out: &mut String) {
    for item in items {
        match item {
            Item::Lit(s) => out.push_str(s),
            Item::WeekdayShort => out.push_str(&WEEKDAYS[t.weekday().num_days_from_monday() as usize][..3]),
            Item::WeekdayName => out.push_str(WEEKDAYS[t.weekday().num_days_from_monday() as usize]),
            Item::MonthShort => out.push_str(&MONTHS[t.month0() as usize][..3]),
            Item::MonthName => out.push_str(MONTHS[t.month0() as usize]),
            Item::Month(w) => pad(out, t.month().into(), *w),
            Item::Day(w) => pad(out, t.day().into(), *w),
            Item::DayOfYear => pad(out, t.ordinal().into(), 3),
            Item::Hour(w) => pad(out, t.hour().into(), *w),
            Item::ClockHour(w) => {
                let h = t.hour() % 12;
                pad(out, if h == 0 { 12 } else { h.into() }, *w)
            }
            Item::Minute => pad(out, t.minute().into(), 2),
            Item::Second => pad(out, t.second().into(), 2),
            // Trino truncates to milliseconds and prints six digits.
            Item::Fraction => pad(out, i64::from(t.nanosecond() / 1_000_000 % 1_000) * 1_000, 6),
            Item::HalfDay => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Item::Week => pad(out, t.iso_week().week().into(), 2),
            Item::WeekYear => pad(out, t.iso_week().year().into(), 4),
            Item::Year => pad(out, t.year().into(), 4),
            Item::TwoDigitYear => pad(out, (t.year().unsigned_abs() % 100).into(), 2),
        }
    }
}

/// `date_format(timestamp, format) -> varchar`.
pub(super) fn date_format(ts: &ColumnarValue, format: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    const NAME: &str = "date_format";
    let format = StrArg::new(format, NAME)?;
    let mut cache = SpecCache::new();
    if let Some(f) = format.literal() {
        cache.get(f, |f| compile(f, NAME))?;
    }
    let ts = ts.to_array(rows)?;
    let ty = TsType::of(NAME, ts.data_type())?;
    let values = raw_values(NAME, &ts)?;
    let mut out = StringBuilder::with_capacity(rows, rows * 20);
    let mut text = String::new();
    for (row, v) in values.into_iter().enumerate() {
        let (Some(v), Some(f)) = (v, format.get(row)) else {
            out.append_null();
            continue;
        };
        let items = cache.get(f, |f| compile(f, NAME))?;
        let Some(local) = ty.to_local(v) else {
            return exec_err!("{NAME}: timestamp value {v} is out of range");
        };
        text.clear();
        print(items, &local, &mut text);
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}

/// `date_parse(varchar, format) -> timestamp(3)`.
pub(super) fn date_parse(text: &ColumnarValue, format: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    const NAME: &str = "date_parse";
    let format = StrArg::new(format, NAME)?;
    let text = StrArg::new(text, NAME)?;
    let mut cache = SpecCache::new();
    if let Some(f) = format.literal() {
        cache.get(f, |f| compile(f, NAME))?;
    }
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        let (Some(s), Some(f)) = (text.get(row), format.get(row)) else {
            out.push(None);
            continue;
        };
        let items = cache.get(f, |f| compile(f, NAME))?;
        match super::mysql_parse::parse(items, s) {
            Some(t) => out.push(Some(t.and_utc().timestamp_millis())),
            None => return exec_err!("{NAME}: invalid value '{s}' for format '{f}'"),
        }
    }
    Ok(Arc::new(TimestampMillisecondArray::from(out)))
}
