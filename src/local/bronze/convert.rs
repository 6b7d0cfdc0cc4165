//! Lenient value conversions of the OpenX JSON SerDe: JSON scalars into column
//! types (numeric strings, ISO-8601 timestamps, dates, decimals) and JSON compaction.

use datafusion::arrow::datatypes::DataType;

use super::builders::{ColBuilder, Kind};
use super::json::Lit;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

struct Bytes<'a> {
    b: &'a [u8],
    i: usize,
}

impl Bytes<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
}

/// Parses `YYYY-MM-DD` into days since the epoch, returning the cursor after it.
fn date_part(b: &mut Bytes<'_>) -> Option<i64> {
    let year = i64::from(b.digits(4)?);
    if !b.eat(b'-') {
        return None;
    }
    let month = b.digits(2)?;
    if !b.eat(b'-') {
        return None;
    }
    let day = b.digits(2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Parses an ISO-8601 / Hive timestamp into UTC epoch milliseconds.
///
/// Accepts `YYYY-MM-DD`, optionally followed by `T` or a space and
/// `HH:MM[:SS[.fraction]]`, optionally followed by `Z` or an offset
/// (`+HH:MM`, `+HHMM`, `+HH`). Without a zone the time is taken as UTC.
/// Fractions beyond milliseconds are truncated.
pub(crate) fn parse_timestamp_millis(s: &str) -> Option<i64> {
    let mut b = Bytes { b: s.trim().as_bytes(), i: 0 };
    let days = date_part(&mut b)?;
    let mut millis = 0i64;
    if b.eat(b'T') || b.eat(b't') || b.eat(b' ') {
        let hour = b.digits(2)?;
        if !b.eat(b':') {
            return None;
        }
        let minute = b.digits(2)?;
        let mut second = 0;
        let mut frac = 0i64;
        if b.eat(b':') {
            second = b.digits(2)?;
            if b.eat(b'.') || b.eat(b',') {
                let mut n = 0;
                while let Some(c) = b.peek().filter(u8::is_ascii_digit) {
                    if n < 3 {
                        frac = frac * 10 + i64::from(c - b'0');
                    }
                    n += 1;
                    b.i += 1;
                }
                if n == 0 {
                    return None;
                }
                for _ in n..3 {
                    frac *= 10;
                }
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        millis = (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * 1000 + frac;
        match b.peek() {
            Some(b'Z' | b'z') => b.i += 1,
            Some(sign @ (b'+' | b'-')) => {
                b.i += 1;
                let oh = b.digits(2)?;
                let om = if b.eat(b':') { b.digits(2)? } else { b.digits(2).unwrap_or(0) };
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = i64::from(oh * 60 + om) * 60_000;
                millis += if sign == b'+' { -offset } else { offset };
            }
            _ => {}
        }
    }
    if b.i != b.b.len() {
        return None;
    }
    Some(days * 86_400_000 + millis)
}

/// Parses `YYYY-MM-DD` (or a timestamp, taking its UTC date) into days since the epoch.
pub(crate) fn parse_date_days(s: &str) -> Option<i32> {
    let t = s.trim();
    let days = if t.len() == 10 {
        date_part(&mut Bytes { b: t.as_bytes(), i: 0 })?
    } else {
        parse_timestamp_millis(t)?.div_euclid(86_400_000)
    };
    i32::try_from(days).ok()
}

/// Parses a decimal literal (`-12.345`, `1e3`, `"7"`) into an unscaled i128 with
/// `scale` fractional digits, rounding half away from zero, and rejects values
/// that need more than `precision` digits.
pub(crate) fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let bad = || format!("cannot convert {text:?} to decimal({precision},{scale})");
    let t = text.trim().as_bytes();
    let (neg, mut i) = match t.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut digits: Vec<u8> = Vec::with_capacity(t.len());
    let mut point: Option<usize> = None;
    while let Some(&c) = t.get(i) {
        match c {
            b'0'..=b'9' => digits.push(c - b'0'),
            b'.' if point.is_none() => point = Some(digits.len()),
            _ => break,
        }
        i += 1;
    }
    if digits.is_empty() {
        return Err(bad());
    }
    let mut exp: i64 = 0;
    if matches!(t.get(i), Some(b'e' | b'E')) {
        let e = std::str::from_utf8(&t[i + 1..]).map_err(|_| bad())?;
        exp = e.parse().map_err(|_| bad())?;
        i = t.len();
    }
    if i != t.len() {
        return Err(bad());
    }
    // value = digits * 10^(exp - fractional_digits); we want value * 10^scale.
    let frac_digits = (digits.len() - point.unwrap_or(digits.len())) as i64;
    let shift = exp - frac_digits + i64::from(scale);
    let mut v: i128 = 0;
    let keep =
        if shift >= 0 { digits.len() } else { digits.len().saturating_sub(shift.unsigned_abs() as usize) };
    for &d in &digits[..keep] {
        v = v.checked_mul(10).and_then(|v| v.checked_add(i128::from(d))).ok_or_else(bad)?;
    }
    if shift > 0 {
        for _ in 0..shift {
            v = v.checked_mul(10).ok_or_else(bad)?;
        }
    } else if keep < digits.len() && digits[keep] >= 5 {
        v += 1;
    }
    if v >= 10i128.pow(u32::from(precision)) {
        return Err(bad());
    }
    Ok(if neg { -v } else { v })
}

/// Appends the JSON text `raw` (valid, with whitespace outside strings) to `out`
/// in compact form: that whitespace dropped, strings copied as they are.
pub(crate) fn push_compact_json(out: &mut Vec<u8>, raw: &[u8]) {
    let mut in_str = false;
    let mut escaped = false;
    for &b in raw {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            out.push(b);
        } else if b == b'"' {
            in_str = true;
            out.push(b);
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(b);
        }
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    t.parse::<i64>().ok().or_else(|| t.parse::<f64>().ok().and_then(integral))
}

fn integral(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

pub(crate) fn hive_type(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 => "string".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Struct(_) => "struct".into(),
        DataType::Map(..) => "map".into(),
        DataType::List(_) => "array".into(),
        other => other.to_string(),
    }
}

/// Converts a scalar into the builder's (scalar) type, or says why it cannot.
pub(crate) fn push_lit(b: &mut ColBuilder, lit: Lit<'_>) -> Result<(), String> {
    if let Lit::Null = lit {
        b.append_null();
        return Ok(());
    }
    let ok = match (&mut b.kind, &lit) {
        (Kind::Int { values, min, max }, l) => {
            let v = match l {
                Lit::Num(t, true) => t.parse::<i64>().ok(),
                Lit::Num(t, false) => t.parse::<f64>().ok().and_then(integral),
                Lit::Str(s) => parse_int(s),
                _ => None,
            };
            v.filter(|v| (*min..=*max).contains(v)).map(|v| values.push(v)).is_some()
        }
        (Kind::Float(values), Lit::Num(t, _)) => t.parse::<f64>().ok().map(|v| values.push(v)).is_some(),
        (Kind::Float(values), Lit::Str(s)) => s.trim().parse::<f64>().ok().map(|v| values.push(v)).is_some(),
        (Kind::Bool(values), l) => {
            let v = match l {
                Lit::Bool(v) => Some(*v),
                Lit::Str(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
                Lit::Str(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            };
            v.map(|v| values.push(v)).is_some()
        }
        (Kind::Date(values), Lit::Str(s)) => parse_date_days(s).map(|v| values.push(v)).is_some(),
        (Kind::Timestamp(values), l) => {
            let v = match l {
                Lit::Str(s) => parse_timestamp_millis(s),
                Lit::Num(t, true) => t.parse::<i64>().ok(),
                Lit::Num(t, false) => t.parse::<f64>().ok().and_then(integral),
                _ => None,
            };
            v.map(|v| values.push(v)).is_some()
        }
        (Kind::Decimal { values, precision, scale }, Lit::Num(t, _)) => {
            values.push(parse_decimal(t, *precision, *scale)?);
            true
        }
        (Kind::Decimal { values, precision, scale }, Lit::Str(s)) => {
            values.push(parse_decimal(s, *precision, *scale)?);
            true
        }
        (Kind::Utf8 { offsets, data }, Lit::Str(s)) => {
            data.extend_from_slice(s.as_bytes());
            offsets.push(data.len() as i32);
            true
        }
        _ => false,
    };
    if ok {
        b.push_valid();
        Ok(())
    } else {
        Err(format!("cannot convert {lit} to {}", hive_type(&b.data_type)))
    }
}
