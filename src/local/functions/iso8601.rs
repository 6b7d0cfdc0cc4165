//! Trino's ISO 8601 conversions: `from_iso8601_timestamp` (Joda's ISO date-time parser
//! subset, normalised to UTC since the engine keeps UTC timestamps) and `to_iso8601`.

use std::fmt::Write;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Weekday};
use datafusion::arrow::array::{ArrayRef, StringBuilder, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ColumnarValue;

use super::StrArg;
use super::datetime::{TsType, date_values, raw_values};

/// A cursor over the ASCII text being parsed.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.at) == Some(&c);
        self.at += usize::from(hit);
        hit
    }

    fn digits_ahead(&self) -> usize {
        self.s[self.at..].iter().take_while(|b| b.is_ascii_digit()).count()
    }

    /// Between `min` and `max` digits; returns the value and how many were read.
    fn number(&mut self, min: usize, max: usize) -> Option<(u64, usize)> {
        let n = self.digits_ahead().min(max);
        if n < min {
            return None;
        }
        let digits = std::str::from_utf8(&self.s[self.at..self.at + n]).ok()?;
        self.at += n;
        Some((digits.parse().ok()?, n))
    }

    fn two(&mut self) -> Option<u32> {
        self.number(2, 2).and_then(|(v, _)| u32::try_from(v).ok())
    }
}

/// `yyyy[-MM[-dd]]`, `yyyy-DDD` or `yyyy-Www[-e]`, with an optional year sign.
fn date(c: &mut Cursor) -> Option<NaiveDate> {
    let negative = c.eat(b'-');
    if !negative {
        c.eat(b'+');
    }
    let (year, _) = c.number(4, 9)?;
    let year = i32::try_from(year).ok()? * if negative { -1 } else { 1 };
    if !c.eat(b'-') {
        return NaiveDate::from_ymd_opt(year, 1, 1);
    }
    if c.eat(b'W') {
        let week = c.two()?;
        let day = if c.eat(b'-') { c.number(1, 1)?.0 } else { 1 };
        let weekday = Weekday::try_from(u8::try_from(day).ok()?.checked_sub(1)?).ok()?;
        return NaiveDate::from_isoywd_opt(year, week, weekday);
    }
    if c.digits_ahead() == 3 {
        let (ordinal, _) = c.number(3, 3)?;
        return NaiveDate::from_yo_opt(year, u32::try_from(ordinal).ok()?);
    }
    let month = c.two()?;
    let day = if c.eat(b'-') { c.two()? } else { 1 };
    NaiveDate::from_ymd_opt(year, month, day)
}

/// `HH[:mm[:ss[.fff]]]`; the fraction (`.` or `,`, up to nine digits) is truncated to
/// milliseconds.
fn time(c: &mut Cursor) -> Option<NaiveTime> {
    let hour = c.two()?;
    let (mut minute, mut second, mut millis) = (0, 0, 0);
    if c.eat(b':') {
        minute = c.two()?;
        if c.eat(b':') {
            second = c.two()?;
            if c.eat(b'.') || c.eat(b',') {
                let (v, n) = c.number(1, 9)?;
                let n = u32::try_from(n).ok()?;
                millis = if n >= 3 { v / 10u64.pow(n - 3) } else { v * 10u64.pow(3 - n) };
            }
        }
    }
    NaiveTime::from_hms_milli_opt(hour, minute, second, u32::try_from(millis).ok()?)
}

/// `Z`, `±HH`, `±HH:mm` or `±HHmm`, as seconds east of UTC.
fn offset(c: &mut Cursor) -> Option<i64> {
    if c.eat(b'Z') {
        return Some(0);
    }
    let sign = if c.eat(b'+') {
        1
    } else if c.eat(b'-') {
        -1
    } else {
        return Some(0);
    };
    let hours = c.two()?;
    let minutes = if c.eat(b':') || c.digits_ahead() > 0 { c.two()? } else { 0 };
    (hours <= 23 && minutes <= 59).then(|| sign * i64::from(hours * 3_600 + minutes * 60))
}

/// Parses an ISO 8601 date or date-time to UTC; no offset means UTC.
fn parse(s: &str) -> Option<NaiveDateTime> {
    let mut c = Cursor { s: s.as_bytes(), at: 0 };
    let day = if s.starts_with('T') { NaiveDate::from_ymd_opt(1970, 1, 1)? } else { date(&mut c)? };
    let (mut clock, mut east) = (NaiveTime::MIN, 0);
    if c.eat(b'T') {
        clock = time(&mut c)?;
        east = offset(&mut c)?;
    }
    if c.at != c.s.len() {
        return None;
    }
    day.and_time(clock).checked_sub_signed(TimeDelta::try_seconds(east)?)
}

/// `from_iso8601_timestamp(varchar) -> timestamp(3)` (UTC).
pub(super) fn from_iso8601_timestamp(text: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    const NAME: &str = "from_iso8601_timestamp";
    let text = StrArg::new(text, NAME)?;
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        let Some(s) = text.get(row) else {
            out.push(None);
            continue;
        };
        match parse(s) {
            Some(t) => out.push(Some(t.and_utc().timestamp_millis())),
            None => return exec_err!("{NAME}: invalid iso 8601 timestamp '{s}'"),
        }
    }
    Ok(Arc::new(TimestampMillisecondArray::from(out)))
}

/// Java's `uuuu`: at least four digits, `+` beyond 9999.
fn push_year(out: &mut String, year: i32) {
    if year > 9_999 {
        out.push('+');
    } else if year < 0 {
        out.push('-');
    }
    let _ = write!(out, "{:04}", year.unsigned_abs());
}

/// `to_iso8601(date | timestamp) -> varchar`; the fraction has the timestamp's precision
/// and a zoned timestamp ends with its offset (`Z` for UTC).
pub(super) fn to_iso8601(x: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    const NAME: &str = "to_iso8601";
    let x = x.to_array(rows)?;
    let mut out = StringBuilder::with_capacity(rows, rows * 24);
    let mut text = String::new();
    if x.data_type() == &DataType::Date32 {
        for d in date_values(&x) {
            let Some(d) = d else {
                out.append_null();
                continue;
            };
            text.clear();
            push_year(&mut text, d.year());
            let _ = write!(text, "-{:02}-{:02}", d.month(), d.day());
            out.append_value(&text);
        }
        return Ok(Arc::new(out.finish()));
    }
    let ty = TsType::of(NAME, x.data_type())?;
    let digits = match ty.unit() {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    for v in raw_values(NAME, &x)? {
        let Some(v) = v else {
            out.append_null();
            continue;
        };
        let (Some(utc), Some(t)) = (ty.to_utc(v), ty.to_local(v)) else {
            return exec_err!("{NAME}: timestamp value {v} is out of range");
        };
        text.clear();
        push_year(&mut text, t.year());
        let _ = write!(
            text,
            "-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        if digits > 0 {
            let fraction = t.nanosecond() / 10u32.pow(9 - digits);
            let _ = write!(text, ".{fraction:0width$}", width = digits as usize);
        }
        match ty.offset_seconds(&utc) {
            None => {}
            Some(0) => text.push('Z'),
            Some(s) => {
                let sign = if s < 0 { '-' } else { '+' };
                let s = s.unsigned_abs();
                let _ = write!(text, "{sign}{:02}:{:02}", s / 3_600, s % 3_600 / 60);
            }
        }
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}
