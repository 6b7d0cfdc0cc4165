//! Model schedules: 5-field cron, EventBridge `cron(...)` and `rate(...)`, and when a
//! schedule next fires.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

/// A parsed schedule. Times are UTC.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Cron(Box<cron::Schedule>),
    /// Fires at every multiple of the period since the Unix epoch.
    Rate(Duration),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({})", self.text)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Schedule {
    /// Accepts `*/5 * * * *` (minute hour day-of-month month day-of-week, day-of-week 0-7
    /// with 0 and 7 Sunday), `cron(0/5 * * * ? *)` (EventBridge: day-of-week 1-7, Sunday 1,
    /// with a year field) and `rate(5 minutes)`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let kind = if let Some(inner) = t.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            Kind::Rate(parse_rate(inner)?)
        } else if let Some(inner) = t.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            let fields: Vec<&str> = inner.split_whitespace().collect();
            if fields.len() != 6 {
                return Err(format!(
                    "EventBridge cron has 6 fields (minute hour day-of-month month day-of-week year), found {}",
                    fields.len()
                ));
            }
            reject_unsupported(&fields)?;
            check_ranges(&fields[..4])?;
            let expr = format!("0 {}", fields.join(" ").replace('?', "*"));
            Kind::Cron(Box::new(cron_parse(&expr)?))
        } else {
            let fields: Vec<&str> = t.split_whitespace().collect();
            if fields.len() != 5 {
                return Err(format!(
                    "cron has 5 fields (minute hour day-of-month month day-of-week), found {}",
                    fields.len()
                ));
            }
            reject_unsupported(&fields)?;
            check_ranges(&fields[..4])?;
            let dow = unix_day_of_week(fields[4])?;
            let expr = format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], dow);
            Kind::Cron(Box::new(cron_parse(&expr)?))
        };
        // A day that no month has (`0 0 31 2 *`, or 30 February with a weekday) parses but
        // never fires: the model would never run.
        if let Kind::Cron(c) = &kind
            && c.after(&DateTime::<Utc>::UNIX_EPOCH).next().is_none()
        {
            return Err(format!("'{t}' never fires: no month has the day it names"));
        }
        Ok(Self { text: t.to_string(), kind })
    }

    /// The first firing strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron(c) => c.after(&t).next(),
            Kind::Rate(period) => {
                let p = period.num_milliseconds();
                let n = t.timestamp_millis().div_euclid(p) + 1;
                DateTime::from_timestamp_millis(n * p)
            }
        }
    }

    /// The latest firing at or before `t`, searching back at most `horizon` (a firing
    /// exactly `horizon` before `t` is not found).
    pub fn last_at_or_before(&self, t: DateTime<Utc>, horizon: Duration) -> Option<DateTime<Utc>> {
        let last = match &self.kind {
            // Walks back from just after `t`: firings are on whole seconds.
            Kind::Cron(c) => {
                let mut back = c.after(&(t + Duration::seconds(1))).rev();
                let mut last = back.next()?;
                while last > t {
                    last = back.next()?;
                }
                last
            }
            Kind::Rate(period) => {
                let p = period.num_milliseconds();
                DateTime::from_timestamp_millis(t.timestamp_millis().div_euclid(p) * p)?
            }
        };
        (last > t - horizon).then_some(last)
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn cron_parse(expr: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(expr).map_err(|e| format!("not a valid cron expression: {e}"))
}

/// Every number of the minute, hour, day-of-month and month fields within its range (the
/// cron crate's own messages are off by one: "Minutes must be less than 59").
fn check_ranges(fields: &[&str]) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 4] =
        [("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12)];
    for (field, (name, lo, hi)) in fields.iter().zip(FIELDS) {
        for item in field.split(',') {
            let (range, step) = item.split_once('/').unwrap_or((item, ""));
            let numbers = range.split('-').filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            for n in numbers {
                let v: u32 = n.parse().map_err(|_| format!("{name} '{n}' is not a number"))?;
                if !(lo..=hi).contains(&v) {
                    return Err(format!("{name} '{v}' in '{field}' is out of range {lo}-{hi}"));
                }
            }
            if !step.is_empty() && step.parse::<u32>().map_or(true, |s| s == 0) {
                return Err(format!("{name} step '/{step}' in '{field}' must be a positive number"));
            }
        }
    }
    Ok(())
}

fn reject_unsupported(fields: &[&str]) -> Result<(), String> {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    for f in fields {
        let upper = f.to_ascii_uppercase();
        let special = upper.contains('#')
            || upper.split([',', '-', '/']).any(|t| {
                t == "L"
                    || t == "LW"
                    || t.strip_suffix('L').is_some_and(digits)
                    || t.strip_suffix('W').is_some_and(digits)
            });
        if special {
            return Err(format!(
                "'{f}': the L, W and # forms are not supported; list the days explicitly instead"
            ));
        }
    }
    Ok(())
}

/// Rewrites a unix day-of-week field (0-7, Sunday 0 or 7) with day names, which the cron
/// crate reads unambiguously (its numbers are 1-7 with Sunday 1).
fn unix_day_of_week(field: &str) -> Result<String, String> {
    let name = |n: &str| -> Result<String, String> {
        match n.parse::<usize>() {
            Ok(d) if d <= 7 => Ok(DAY_NAMES[d % 7].to_string()),
            Ok(_) => Err(format!("day-of-week '{n}' is out of range 0-7")),
            Err(_) => Ok(n.to_string()),
        }
    };
    field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            let range = match range.split_once('-') {
                Some((a, b)) => format!("{}-{}", name(a)?, name(b)?),
                None => name(range)?,
            };
            Ok(match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|v| v.join(","))
}

fn parse_rate(inner: &str) -> Result<Duration, String> {
    let mut parts = inner.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("rate({inner}): expected 'rate(<number> <unit>)'"));
    };
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("rate({inner}): '{n}' is not a positive whole number"))?;
    match unit.trim_end_matches('s') {
        "minute" => Ok(Duration::minutes(n)),
        "hour" => Ok(Duration::hours(n)),
        "day" => Ok(Duration::days(n)),
        _ => Err(format!("rate({inner}): unit must be minute(s), hour(s) or day(s)")),
    }
}
