//! Trino's `date_add(unit, value, x)` and `date_diff(unit, x1, x2)`, with the Joda-Time
//! calendar rules Trino uses: adding months clamps the day of month, differences are
//! truncated toward zero and months/quarters/years are counted by calendar.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ColumnarValue;

use super::datetime::{
    TIMESTAMP_MS, TsType, coerce_temporal, date_to_days, date_values, days_in_month, raw_values,
};
use super::{SpecCache, StrArg, arity, string};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    /// Parses a unit name (case-insensitive); a `date` accepts only day and larger.
    fn parse(name: &str, unit: &str, date: bool) -> Result<Self> {
        let parsed = match unit.to_lowercase().as_str() {
            "millisecond" => Self::Millisecond,
            "second" => Self::Second,
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            _ if date => return exec_err!("{name}: '{unit}' is not a valid date unit"),
            _ => return exec_err!("{name}: '{unit}' is not a valid timestamp unit"),
        };
        if date && parsed.is_time() {
            return exec_err!("{name}: '{unit}' is not a valid date unit");
        }
        Ok(parsed)
    }

    fn label(self) -> &'static str {
        match self {
            Self::Millisecond => "millisecond",
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }

    /// Units shorter than a day, which act on the instant rather than the local date.
    fn is_time(self) -> bool {
        matches!(self, Self::Millisecond | Self::Second | Self::Minute | Self::Hour)
    }

    /// Length in milliseconds of the fixed-length units.
    fn millis(self) -> Option<i64> {
        Some(match self {
            Self::Millisecond => 1,
            Self::Second => 1_000,
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
            Self::Week => 7 * 86_400_000,
            Self::Month | Self::Quarter | Self::Year => return None,
        })
    }

    fn months(self) -> i64 {
        match self {
            Self::Quarter => 3,
            Self::Year => 12,
            _ => 1,
        }
    }
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer() || t == &DataType::Null
}

pub(super) fn coerce_date_add(types: &[DataType]) -> Result<Vec<DataType>> {
    const NAME: &str = "date_add";
    arity(NAME, types, 3)?;
    if !is_integer(&types[1]) {
        return plan_err!("{NAME}: expected a bigint value, got {}", types[1]);
    }
    Ok(vec![string(NAME, &types[0])?, DataType::Int64, coerce_temporal(NAME, &types[2])?])
}

pub(super) fn coerce_date_diff(types: &[DataType]) -> Result<Vec<DataType>> {
    const NAME: &str = "date_diff";
    arity(NAME, types, 3)?;
    let unit = string(NAME, &types[0])?;
    let (a, b) = (coerce_temporal(NAME, &types[1])?, coerce_temporal(NAME, &types[2])?);
    let is_date = |t: &DataType| matches!(t, DataType::Date32 | DataType::Null);
    let common = match (&a, &b) {
        _ if a == b => a.clone(),
        _ if is_date(&types[1]) && is_date(&types[2]) => DataType::Date32,
        (DataType::Timestamp(ua, za), DataType::Timestamp(ub, zb)) => {
            DataType::Timestamp(finer(*ua, *ub), za.clone().or_else(|| zb.clone()))
        }
        (DataType::Timestamp(_, _), _) => a.clone(),
        (_, DataType::Timestamp(_, _)) => b.clone(),
        _ => TIMESTAMP_MS,
    };
    Ok(vec![unit, common.clone(), common])
}

fn finer(a: TimeUnit, b: TimeUnit) -> TimeUnit {
    let rank = |u: TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    if rank(a) >= rank(b) { a } else { b }
}

/// Adds `n` units to a wall-clock time, clamping the day of month like Joda.
fn add(t: &NaiveDateTime, unit: Unit, n: i64) -> Option<NaiveDateTime> {
    match unit.millis() {
        Some(ms) => t.checked_add_signed(TimeDelta::try_milliseconds(n.checked_mul(ms)?)?),
        None => {
            let months = i64::from(t.year()) * 12 + i64::from(t.month0()) + n.checked_mul(unit.months())?;
            let year = i32::try_from(months.div_euclid(12)).ok()?;
            let month = u32::try_from(months.rem_euclid(12)).ok()? + 1;
            let day = t.day().min(days_in_month(year, month)?);
            Some(NaiveDate::from_ymd_opt(year, month, day)?.and_time(t.time()))
        }
    }
}

/// `date_add(unit, value, x)`: `x` keeps its type (a `date` stays a `date`).
pub(super) fn date_add(
    unit: &ColumnarValue,
    value: &ColumnarValue,
    x: &ColumnarValue,
    rows: usize,
) -> Result<ArrayRef> {
    const NAME: &str = "date_add";
    let unit = StrArg::new(unit, NAME)?;
    let value = value.to_array(rows)?;
    let value = value.as_primitive::<Int64Type>();
    let x = x.to_array(rows)?;
    let is_date = x.data_type() == &DataType::Date32;
    let mut cache = SpecCache::new();
    if let Some(u) = unit.literal() {
        cache.get(u, |u| Unit::parse(NAME, u, is_date))?;
    }
    // Trino takes the amount as an int (`toIntExact`).
    let amount = |row: usize| -> Result<Option<i64>> {
        if value.is_null(row) {
            return Ok(None);
        }
        let v = value.value(row);
        match i32::try_from(v) {
            Ok(_) => Ok(Some(v)),
            Err(_) => exec_err!("{NAME}: value {v} is out of range for integer"),
        }
    };
    if is_date {
        let mut out = Vec::with_capacity(rows);
        for (row, d) in date_values(&x).into_iter().enumerate() {
            let (Some(d), Some(u), Some(n)) = (d, unit.get(row), amount(row)?) else {
                out.push(None);
                continue;
            };
            let u = *cache.get(u, |u| Unit::parse(NAME, u, true))?;
            let added = add(&d.and_time(chrono::NaiveTime::MIN), u, n);
            match added.and_then(|t| date_to_days(&t.date())) {
                Some(days) => out.push(Some(days)),
                None => {
                    return exec_err!("{NAME}: adding {n} {} to {d} is out of range", u.label());
                }
            }
        }
        return Ok(Arc::new(Date32Array::from(out)));
    }
    let ty = TsType::of(NAME, x.data_type())?;
    let mut out = Vec::with_capacity(rows);
    for (row, v) in raw_values(NAME, &x)?.into_iter().enumerate() {
        let (Some(v), Some(u), Some(n)) = (v, unit.get(row), amount(row)?) else {
            out.push(None);
            continue;
        };
        let u = *cache.get(u, |u| Unit::parse(NAME, u, false))?;
        // Time units move the instant; calendar units move the local date and time.
        let added = if u.is_time() {
            ty.to_utc(v).and_then(|t| add(&t, u, n)).and_then(|t| ty.utc_to_raw(&t))
        } else {
            ty.to_local(v).and_then(|t| add(&t, u, n)).and_then(|t| ty.local_to_raw(&t))
        };
        match added {
            Some(r) => out.push(Some(r)),
            None => {
                return exec_err!("{NAME}: adding {n} {} to timestamp {v} is out of range", u.label());
            }
        }
    }
    Ok(ty.build(out))
}

fn start_of_month(t: &NaiveDateTime) -> Option<NaiveDateTime> {
    Some(t.date().with_day(1)?.and_time(chrono::NaiveTime::MIN))
}

fn start_of_year(t: &NaiveDateTime) -> Option<NaiveDateTime> {
    Some(t.date().with_ordinal(1)?.and_time(chrono::NaiveTime::MIN))
}

fn is_leap(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

/// Joda's month difference: whole months from `sub` to `min`, where the last day of a
/// shorter month counts as reaching any later day of month.
fn month_diff(min: &NaiveDateTime, sub: &NaiveDateTime) -> Option<i64> {
    if min < sub {
        return month_diff(sub, min).map(|d| -d);
    }
    let mut diff = (i64::from(min.year()) - i64::from(sub.year())) * 12 + i64::from(min.month())
        - i64::from(sub.month());
    let last = days_in_month(min.year(), min.month())?;
    let sub = if min.day() == last && sub.day() > last { sub.with_day(last)? } else { *sub };
    if *min - start_of_month(min)? < sub - start_of_month(&sub)? {
        diff -= 1;
    }
    Some(diff)
}

/// Joda's year difference, balancing 29 February between leap and common years.
fn year_diff(min: &NaiveDateTime, sub: &NaiveDateTime) -> Option<i64> {
    if min < sub {
        return year_diff(sub, min).map(|d| -d);
    }
    let (min_year, sub_year) = (min.year(), sub.year());
    let mut min_rem = *min - start_of_year(min)?;
    let mut sub_rem = *sub - start_of_year(sub)?;
    let feb_29 = TimeDelta::days(31 + 29 - 1);
    if sub_rem >= feb_29 {
        if is_leap(sub_year) {
            if !is_leap(min_year) {
                sub_rem -= TimeDelta::days(1);
            }
        } else if min_rem >= feb_29 && is_leap(min_year) {
            min_rem -= TimeDelta::days(1);
        }
    }
    let mut diff = i64::from(min_year) - i64::from(sub_year);
    if min_rem < sub_rem {
        diff -= 1;
    }
    Some(diff)
}

/// Truncates to milliseconds: Trino's smallest `date_diff` unit.
fn to_millis(t: &NaiveDateTime) -> Option<NaiveDateTime> {
    t.with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
}

/// `t2 - t1` in whole units, truncated toward zero.
fn diff(unit: Unit, t1: &NaiveDateTime, t2: &NaiveDateTime) -> Option<i64> {
    let (t1, t2) = (to_millis(t1)?, to_millis(t2)?);
    match (unit, unit.millis()) {
        (_, Some(ms)) => Some((t2 - t1).num_milliseconds() / ms),
        (Unit::Year, None) => year_diff(&t2, &t1),
        (_, None) => month_diff(&t2, &t1).map(|m| m / unit.months()),
    }
}

/// `date_diff(unit, x1, x2)`: `x2 - x1` in `unit`.
pub(super) fn date_diff(
    unit: &ColumnarValue,
    x1: &ColumnarValue,
    x2: &ColumnarValue,
    rows: usize,
) -> Result<ArrayRef> {
    const NAME: &str = "date_diff";
    let unit = StrArg::new(unit, NAME)?;
    let (x1, x2) = (x1.to_array(rows)?, x2.to_array(rows)?);
    let is_date = x1.data_type() == &DataType::Date32;
    let mut cache = SpecCache::new();
    if let Some(u) = unit.literal() {
        cache.get(u, |u| Unit::parse(NAME, u, is_date))?;
    }
    let mut out = Vec::with_capacity(rows);
    if is_date {
        let midnight = |d: Option<NaiveDate>| d.map(|d| d.and_time(chrono::NaiveTime::MIN));
        let pairs = date_values(&x1).into_iter().zip(date_values(&x2));
        for (row, (a, b)) in pairs.enumerate() {
            let (Some(a), Some(b), Some(u)) = (midnight(a), midnight(b), unit.get(row)) else {
                out.push(None);
                continue;
            };
            let u = *cache.get(u, |u| Unit::parse(NAME, u, true))?;
            out.push(diff(u, &a, &b));
        }
        return Ok(Arc::new(Int64Array::from(out)));
    }
    let (ty1, ty2) = (TsType::of(NAME, x1.data_type())?, TsType::of(NAME, x2.data_type())?);
    let pairs = raw_values(NAME, &x1)?.into_iter().zip(raw_values(NAME, &x2)?);
    for (row, (a, b)) in pairs.enumerate() {
        let (Some(a), Some(b), Some(u)) = (a, b, unit.get(row)) else {
            out.push(None);
            continue;
        };
        let u = *cache.get(u, |u| Unit::parse(NAME, u, false))?;
        // Time units compare instants; calendar units compare local date and time.
        let (t1, t2) =
            if u.is_time() { (ty1.to_utc(a), ty2.to_utc(b)) } else { (ty1.to_local(a), ty2.to_local(b)) };
        match (t1, t2) {
            (Some(t1), Some(t2)) => out.push(diff(u, &t1, &t2)),
            _ => return exec_err!("{NAME}: timestamp out of range"),
        }
    }
    Ok(Arc::new(Int64Array::from(out)))
}
