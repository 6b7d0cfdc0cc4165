//! Partition projection (`projection.*` table properties): which partition values Athena
//! projects. A directory whose value projection never produces (an `env=qa` beside an
//! enum of `prod,staging,dev`, `hour=7` when two digits are projected, a day past `NOW`)
//! is invisible to Athena, so it is to the local reader too.
//!
//! Athena docs, "Supported types for partition projection"; Trino's port in
//! `plugin/trino-hive/src/main/java/io/trino/plugin/hive/projection/`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

/// One column's projection.
#[derive(Debug, Clone)]
enum Rule {
    Enum(Vec<String>),
    Integer { lo: i64, hi: i64, interval: i64, digits: usize },
    Date { format: String, start: String, end: String },
    Injected,
}

/// The projection of a table's partition columns, when `projection.enabled`.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    rules: Vec<Rule>,
}

impl Projection {
    pub(crate) fn for_table(
        props: &BTreeMap<String, String>,
        columns: &[String],
    ) -> Result<Option<Self>, String> {
        let get = |k: String| props.get(&k).map(String::as_str);
        if !get("projection.enabled".into()).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let mut rules = Vec::new();
        for c in columns {
            let kind = get(format!("projection.{c}.type")).unwrap_or_default().to_ascii_lowercase();
            let need = |k: &str| {
                get(format!("projection.{c}.{k}"))
                    .ok_or_else(|| format!("projection of {c}: projection.{c}.{k} is missing"))
            };
            let rule = match kind.as_str() {
                "enum" => Rule::Enum(need("values")?.split(',').map(str::to_string).collect()),
                "integer" => {
                    let (lo, hi) = need("range")?
                        .split_once(',')
                        .ok_or_else(|| format!("projection of {c}: range is not `min,max`"))?;
                    let int = |s: &str| {
                        s.trim()
                            .parse::<i64>()
                            .map_err(|_| format!("projection of {c}: {s:?} is not an integer"))
                    };
                    Rule::Integer {
                        lo: int(lo)?,
                        hi: int(hi)?,
                        interval: get(format!("projection.{c}.interval")).map_or(Ok(1), int)?,
                        digits: get(format!("projection.{c}.digits")).map_or(Ok(0), int)?.max(0) as usize,
                    }
                }
                "date" => {
                    let (start, end) = need("range")?
                        .split_once(',')
                        .ok_or_else(|| format!("projection of {c}: range is not `start,end`"))?;
                    Rule::Date { format: java_format(need("format")?)?, start: start.into(), end: end.into() }
                }
                "injected" => Rule::Injected,
                _ => {
                    return Err(format!(
                        "the table is configured for partition projection, but the following partition columns are missing projection configuration: [{c}]"
                    ));
                }
            };
            rules.push(rule);
        }
        Ok(Some(Self { rules }))
    }

    /// Whether projection produces `value` for partition column `column` at `now`.
    pub(crate) fn accepts(&self, column: usize, value: &str, now: DateTime<Utc>) -> bool {
        match &self.rules[column] {
            Rule::Enum(values) => values.iter().any(|v| v == value),
            Rule::Integer { lo, hi, interval, digits } => value.parse::<i64>().is_ok_and(|n| {
                (*lo..=*hi).contains(&n)
                    && (n - lo) % (*interval).max(1) == 0
                    && *value == format!("{n:0digits$}", digits = if n < 0 { 0 } else { *digits })
            }),
            Rule::Date { format, start, end } => {
                let Some(t) = parse_date(value, format) else { return false };
                if t.format(format).to_string() != value {
                    return false;
                }
                let bound = |b: &str| bound(b, format, now);
                bound(start).is_some_and(|s| s <= t) && bound(end).is_some_and(|e| t <= e)
            }
            Rule::Injected => true,
        }
    }
}

/// A Java `DateTimeFormatter` pattern of the kind projection uses (`yyyy-MM-dd`,
/// `yyyy/MM/dd/HH`) as a chrono format.
fn java_format(pattern: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    'next: while let Some(c) = rest.chars().next() {
        for (java, chrono) in
            [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]
        {
            if let Some(r) = rest.strip_prefix(java) {
                out.push_str(chrono);
                rest = r;
                continue 'next;
            }
        }
        if c.is_ascii_alphabetic() {
            return Err(format!(
                "the projection date format {pattern:?} is not supported by the local engine"
            ));
        }
        if c == '%' {
            out.push('%');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

fn parse_date(value: &str, format: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(value, format).ok().or_else(|| {
        chrono::NaiveDate::parse_from_str(value, format).ok().and_then(|d| d.and_hms_opt(0, 0, 0))
    })
}

/// A range bound: a date in the format, or `NOW[+-N UNIT]`.
fn bound(text: &str, format: &str, now: DateTime<Utc>) -> Option<NaiveDateTime> {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("NOW").or_else(|| t.strip_prefix("now")) else {
        return parse_date(t, format);
    };
    let now = now.naive_utc();
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(now);
    }
    let (sign, rest) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let rest = rest.trim();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().ok()?;
    let unit = rest[digits.len()..].trim().to_ascii_uppercase();
    let unit = unit.trim_end_matches('S');
    let d = match unit {
        "DAY" => Duration::days(n),
        "HOUR" => Duration::hours(n),
        "MINUTE" => Duration::minutes(n),
        "SECOND" => Duration::seconds(n),
        "WEEK" => Duration::weeks(n),
        _ => return None,
    };
    Some(now + d * sign)
}
