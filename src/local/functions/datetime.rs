//! Timestamp plumbing shared by the Trino date/time functions: argument coercion and
//! conversion between Arrow timestamps (any unit, optional zone) and wall-clock time.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::{Result, exec_err, plan_err};

/// The engine's timestamp type: `timestamp(3)` holding UTC.
pub(crate) const TIMESTAMP_MS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// Coerces an argument that Trino types as `timestamp` (a `date` widens to midnight).
pub(crate) fn coerce_timestamp(name: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, _) => Ok(t.clone()),
        DataType::Date32 | DataType::Date64 | DataType::Null => Ok(TIMESTAMP_MS),
        other => plan_err!("{name}: expected a timestamp argument, got {other}"),
    }
}

/// Coerces an argument that may be a `date` or a `timestamp`, keeping dates as dates.
pub(crate) fn coerce_temporal(name: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, _) => Ok(t.clone()),
        DataType::Date32 | DataType::Date64 => Ok(DataType::Date32),
        DataType::Null => Ok(TIMESTAMP_MS),
        other => plan_err!("{name}: expected a date or timestamp argument, got {other}"),
    }
}

/// One Arrow timestamp type: how to read its raw `i64` values as wall-clock time and
/// how to write wall-clock time back.
pub(crate) struct TsType {
    unit: TimeUnit,
    tz: Option<Tz>,
    tz_name: Option<Arc<str>>,
}

impl TsType {
    pub(crate) fn of(name: &str, t: &DataType) -> Result<Self> {
        let DataType::Timestamp(unit, tz_name) = t else {
            return exec_err!("{name}: expected a timestamp, got {t}");
        };
        let tz = match tz_name {
            Some(z) => match z.parse::<Tz>() {
                Ok(tz) => Some(tz),
                Err(e) => return exec_err!("{name}: invalid time zone '{z}': {e}"),
            },
            None => None,
        };
        Ok(Self { unit: *unit, tz, tz_name: tz_name.clone() })
    }

    pub(crate) fn unit(&self) -> TimeUnit {
        self.unit
    }

    /// The instant as UTC wall-clock time.
    pub(crate) fn to_utc(&self, v: i64) -> Option<NaiveDateTime> {
        let (per_sec, nanos_per) = match self.unit {
            TimeUnit::Second => (1, 0),
            TimeUnit::Millisecond => (1_000, 1_000_000),
            TimeUnit::Microsecond => (1_000_000, 1_000),
            TimeUnit::Nanosecond => (1_000_000_000, 1),
        };
        let nanos = u32::try_from(v.rem_euclid(per_sec) * nanos_per).ok()?;
        chrono::DateTime::from_timestamp(v.div_euclid(per_sec), nanos).map(|d| d.naive_utc())
    }

    /// The instant as wall-clock time in the value's zone (UTC when there is none).
    pub(crate) fn to_local(&self, v: i64) -> Option<NaiveDateTime> {
        let utc = self.to_utc(v)?;
        Some(match &self.tz {
            Some(tz) => tz.from_utc_datetime(&utc).naive_local(),
            None => utc,
        })
    }

    /// The zone's offset from UTC, in seconds, at a UTC instant.
    pub(crate) fn offset_seconds(&self, utc: &NaiveDateTime) -> Option<i32> {
        self.tz.as_ref().map(|tz| tz.offset_from_utc_datetime(utc).fix().local_minus_utc())
    }

    pub(crate) fn utc_to_raw(&self, t: &NaiveDateTime) -> Option<i64> {
        let t = t.and_utc();
        match self.unit {
            TimeUnit::Second => Some(t.timestamp()),
            TimeUnit::Millisecond => Some(t.timestamp_millis()),
            TimeUnit::Microsecond => Some(t.timestamp_micros()),
            TimeUnit::Nanosecond => t.timestamp_nanos_opt(),
        }
    }

    /// Wall-clock time in the value's zone back to a raw value; a time skipped by a
    /// daylight-saving gap moves forward by an hour, an ambiguous one takes the earlier.
    pub(crate) fn local_to_raw(&self, t: &NaiveDateTime) -> Option<i64> {
        match &self.tz {
            None => self.utc_to_raw(t),
            Some(tz) => {
                let resolved = tz
                    .from_local_datetime(t)
                    .earliest()
                    .or_else(|| tz.from_local_datetime(&(*t + TimeDelta::hours(1))).earliest())?;
                self.utc_to_raw(&resolved.naive_utc())
            }
        }
    }

    /// Builds an array of this type.
    pub(crate) fn build(&self, values: Vec<Option<i64>>) -> ArrayRef {
        let tz = self.tz_name.clone();
        match self.unit {
            TimeUnit::Second => Arc::new(TimestampSecondArray::from(values).with_timezone_opt(tz)),
            TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(tz)),
            TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(tz)),
            TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(values).with_timezone_opt(tz)),
        }
    }
}

/// The raw values of a timestamp array of any unit.
pub(crate) fn raw_values(name: &str, a: &dyn Array) -> Result<Vec<Option<i64>>> {
    Ok(match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => a.as_primitive::<TimestampSecondType>().iter().collect(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            a.as_primitive::<TimestampMillisecondType>().iter().collect()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            a.as_primitive::<TimestampMicrosecondType>().iter().collect()
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            a.as_primitive::<TimestampNanosecondType>().iter().collect()
        }
        other => return exec_err!("{name}: expected a timestamp, got {other}"),
    })
}

/// The values of a `Date32` array as calendar dates.
pub(crate) fn date_values(a: &dyn Array) -> Vec<Option<NaiveDate>> {
    a.as_primitive::<Date32Type>().iter().map(|d| d.and_then(days_to_date)).collect()
}

pub(crate) fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(TimeDelta::try_days(days.into())?)
}

pub(crate) fn date_to_days(d: &NaiveDate) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from(d.signed_duration_since(epoch).num_days()).ok()
}

/// Days in a month, `None` for a month outside 1..=12.
pub(crate) fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    u32::try_from(next.signed_duration_since(first).num_days()).ok()
}
