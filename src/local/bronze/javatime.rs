//! The `java.time` parsing Trino's OpenX reader relies on for `date` and `timestamp`
//! columns: its formatters as element lists, parsed the way JDK 25's
//! `DateTimeFormatterBuilder` parsers do (strict or lenient widths, sign styles, optional
//! sections, case-insensitive literals), and resolved with Java's LENIENT resolver.
//!
//! The formatters are `OpenXJsonDeserializer.java:444-447` (dates), `:594-612` (timestamps
//! with a zone) and `HiveFormatUtils.java:92-119` (Hive's default and ISO timestamps).

/// How a numeric field takes a sign (`java.time.format.SignStyle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Normal,
    ExceedsPad,
    NotNegative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Nano,
    Offset,
}

#[derive(Debug)]
enum El {
    Value(Field, usize, usize, Sign),
    Lit(&'static str),
    /// A fraction of a second after `.`, `min` to `max` digits.
    Frac(usize, usize),
    /// `Z`, or `+HHMM` / `+HH:MM` (`colon`), minutes and seconds optional.
    Offset(bool),
    Optional(&'static [El]),
    /// A sequence that must match (to reuse a list inside another).
    Seq(&'static [El]),
}

use El::{Frac, Lit, Optional, Value};
use Field::{Day, Hour, Minute, Month, Nano, Second, Year};
use Sign::{ExceedsPad, Normal, NotNegative};

/// `DateDecoder.PARSE_FORMATTER`: strict, `y{1-4}-M{1-2}-d{1-2}`.
const DATE: &[El] =
    &[Value(Year, 1, 4, Normal), Lit("-"), Value(Month, 1, 2, Normal), Lit("-"), Value(Day, 1, 2, Normal)];
/// Hive's default timestamp: `y-M-d[ H:m:s[.f]]`, lenient.
const DEFAULT_TIMESTAMP: &[El] = &[
    Value(Year, 1, 10, Normal),
    Lit("-"),
    Value(Month, 1, 2, Normal),
    Lit("-"),
    Value(Day, 1, 2, Normal),
    Optional(&[
        Lit(" "),
        Value(Hour, 1, 2, Normal),
        Lit(":"),
        Value(Minute, 1, 2, Normal),
        Lit(":"),
        Value(Second, 1, 2, Normal),
        Optional(&[Frac(1, 9)]),
    ]),
];
/// `ISO_LOCAL_DATE_TIME`.
const ISO: &[El] = &[
    Value(Year, 4, 10, ExceedsPad),
    Lit("-"),
    Value(Month, 2, 2, NotNegative),
    Lit("-"),
    Value(Day, 2, 2, NotNegative),
    Lit("T"),
    Value(Hour, 2, 2, NotNegative),
    Lit(":"),
    Value(Minute, 2, 2, NotNegative),
    Optional(&[Lit(":"), Value(Second, 2, 2, NotNegative), Optional(&[Frac(0, 9)])]),
];
const ZONED: [&[El]; 2] =
    [&[El::Seq(ISO), Optional(&[El::Offset(false)])], &[El::Seq(ISO), Optional(&[El::Offset(true)])]];

/// Parsed fields, by `Field as usize`.
type Fields = [Option<i64>; 8];

const MAX_YEAR: i64 = 999_999_999;
const MIN_EPOCH_DAY: i64 = -365_243_219_162;
const MAX_EPOCH_DAY: i64 = 365_241_780_471;

struct Ctx<'a> {
    b: &'a [u8],
    strict: bool,
    case_insensitive: bool,
}

fn set(f: &mut Fields, field: Field, v: i64) -> bool {
    match f[field as usize] {
        Some(old) => old == v,
        None => {
            f[field as usize] = Some(v);
            true
        }
    }
}

/// `NumberPrinterParser.parse`: the position after the value, or `None`.
fn number(
    c: &Ctx<'_>,
    pos: usize,
    field: Field,
    min: usize,
    max: usize,
    sign: Sign,
    f: &mut Fields,
) -> Option<usize> {
    let mut pos = pos;
    let (mut negative, mut positive) = (false, false);
    if let Some(&s @ (b'+' | b'-')) = c.b.get(pos) {
        positive = s == b'+';
        negative = s == b'-';
        let allowed = match sign {
            Normal => negative || !c.strict,
            ExceedsPad => true,
            NotNegative => !c.strict && min != max,
        };
        if !allowed {
            return None;
        }
        pos += 1;
    }
    let (eff_min, eff_max) = if c.strict { (min, max) } else { (1, 9) };
    if pos == c.b.len() || pos + eff_min > c.b.len() {
        return None;
    }
    let mut p = pos;
    let mut total: i64 = 0;
    while p < (pos + eff_max).min(c.b.len()) && c.b[p].is_ascii_digit() {
        total = total * 10 + i64::from(c.b[p] - b'0');
        p += 1;
    }
    if p < pos + eff_min {
        return None;
    }
    if negative && total == 0 && c.strict {
        return None;
    }
    if !negative && sign == ExceedsPad && c.strict && (if positive { p - pos <= min } else { p - pos > min })
    {
        return None;
    }
    set(f, field, if negative { -total } else { total }).then_some(p)
}

/// `NanosPrinterParser.parse` with a decimal point.
fn fraction(c: &Ctx<'_>, pos: usize, min: usize, max: usize, f: &mut Fields) -> Option<usize> {
    let (eff_min, eff_max) = if c.strict { (min, max) } else { (0, 9) };
    if c.b.get(pos) != Some(&b'.') {
        return (eff_min == 0).then_some(pos);
    }
    let start = pos + 1;
    let mut p = start;
    let mut total: i64 = 0;
    while p < (start + eff_max).min(c.b.len()) && c.b[p].is_ascii_digit() {
        total = total * 10 + i64::from(c.b[p] - b'0');
        p += 1;
    }
    if p < start + eff_min {
        return None;
    }
    set(f, Nano, total * 10i64.pow(9 - (p - start) as u32)).then_some(p)
}

/// `OffsetIdPrinterParser.parse`, lenient: `Z`, or `+HH[[:]mm[[:]ss]]`.
fn offset(c: &Ctx<'_>, pos: usize, colon: bool, f: &mut Fields) -> Option<usize> {
    match c.b.get(pos) {
        Some(b'Z' | b'z') => return set(f, Field::Offset, 0).then_some(pos + 1),
        Some(b'+' | b'-') => {}
        _ => return None,
    }
    let mut p = pos + 1;
    let mut values = Vec::new();
    while values.len() < 3 {
        let q = if colon && !values.is_empty() { p + 1 } else { p };
        if q > p && c.b.get(p) != Some(&b':') {
            break;
        }
        match c.b.get(q..q + 2) {
            Some([a @ b'0'..=b'5', d @ b'0'..=b'9']) => {
                values.push(i64::from(a - b'0') * 10 + i64::from(d - b'0'));
                p = q + 2;
            }
            _ => break,
        }
    }
    if values.is_empty() || values[0] > 23 {
        return None;
    }
    let seconds: i64 = values.iter().zip([3600, 60, 1]).map(|(v, m)| v * m).sum();
    set(f, Field::Offset, if c.b[pos] == b'-' { -seconds } else { seconds }).then_some(p)
}

/// `CompositePrinterParser.parse`: an optional section that fails leaves the fields as
/// they were.
fn elements(c: &Ctx<'_>, els: &[El], mut pos: usize, f: &mut Fields) -> Option<usize> {
    for e in els {
        pos = match e {
            Optional(inner) => {
                let saved = *f;
                match elements(c, inner, pos, f) {
                    Some(p) => p.max(pos),
                    None => {
                        *f = saved;
                        pos
                    }
                }
            }
            El::Seq(inner) => elements(c, inner, pos, f)?,
            Lit(text) => {
                let seg = c.b.get(pos..pos + text.len())?;
                let same = if c.case_insensitive {
                    seg.eq_ignore_ascii_case(text.as_bytes())
                } else {
                    seg == text.as_bytes()
                };
                if !same {
                    return None;
                }
                pos + text.len()
            }
            Value(field, min, max, sign) => number(c, pos, *field, *min, *max, *sign, f)?,
            Frac(min, max) => fraction(c, pos, *min, *max, f)?,
            El::Offset(colon) => offset(c, pos, *colon, f)?,
        };
    }
    Some(pos)
}

fn parse_fully(els: &[El], text: &str, strict: bool, case_insensitive: bool) -> Option<Fields> {
    let c = Ctx { b: text.as_bytes(), strict, case_insensitive };
    let mut f = [None; 8];
    (elements(&c, els, 0, &mut f)? == text.len()).then_some(f)
}

fn epoch_day(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    era * 146_097 + doe - 719_468
}

fn plus_days(day: i64, days: i64) -> Option<i64> {
    let v = day.checked_add(days)?;
    (MIN_EPOCH_DAY..=MAX_EPOCH_DAY).contains(&v).then_some(v)
}

/// `IsoChronology.resolveYMD`, LENIENT: `LocalDate.of(y, 1, 1).plusMonths(m - 1).plusDays(d - 1)`.
fn lenient_date(y: i64, m: i64, d: i64) -> Option<i64> {
    let months = y.checked_mul(12)?.checked_add(m.checked_sub(1)?)?;
    if !(-MAX_YEAR..=MAX_YEAR).contains(&y) || !(-MAX_YEAR..=MAX_YEAR).contains(&months.div_euclid(12)) {
        return None;
    }
    plus_days(epoch_day(months.div_euclid(12), months.rem_euclid(12) + 1, 1), d.checked_sub(1)?)
}

/// `LocalDateTime.from` with the LENIENT resolver: seconds since the epoch and nanos.
fn lenient_date_time(f: &Fields) -> Option<(i64, i64)> {
    let day = lenient_date(f[Year as usize]?, f[Month as usize]?, f[Day as usize]?)?;
    let (h, mi, s, n) = (f[Hour as usize], f[Minute as usize], f[Second as usize], f[Nano as usize]);
    let h = h?;
    if (mi.is_none() && (s.is_some() || n.is_some())) || (mi.is_some() && s.is_none() && n.is_some()) {
        return None;
    }
    let (mi, s, n) = (mi.unwrap_or(0), s.unwrap_or(0), n.unwrap_or(0));
    let total = h
        .checked_mul(3_600_000_000_000)?
        .checked_add(mi.checked_mul(60_000_000_000)?)?
        .checked_add(s.checked_mul(1_000_000_000)?)?
        .checked_add(n)?;
    let (excess, nano_of_day) = (total.div_euclid(86_400_000_000_000), total.rem_euclid(86_400_000_000_000));
    let day = if excess != 0 { plus_days(day, excess)? } else { day };
    Some((day.checked_mul(86_400)?.checked_add(nano_of_day / 1_000_000_000)?, nano_of_day % 1_000_000_000))
}

/// `DateDecoder.parseHiveDate` (`OpenXJsonDeserializer.java:480-501`): the trimmed text
/// starts with a date; what follows may not start with a digit.
pub(crate) fn hive_date(s: &str) -> Option<i64> {
    let t = super::openx::java_trim(s);
    let c = Ctx { b: t.as_bytes(), strict: true, case_insensitive: false };
    let mut f = [None; 8];
    let pos = elements(&c, DATE, 0, &mut f)?;
    if c.b.get(pos).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    lenient_date(f[Year as usize]?, f[Month as usize]?, f[Day as usize]?)
}

/// A timestamp with a zone (`Z` or an offset) as seconds (UTC) and nanos: the formatter
/// without the colon first, then with it (`OpenXJsonDeserializer.java:555-567`).
pub(crate) fn zoned(s: &str) -> Option<(i64, i64)> {
    ZONED.iter().find_map(|els| {
        let f = parse_fully(els, s, false, true)?;
        let off = f[Field::Offset as usize]?;
        let (secs, nanos) = lenient_date_time(&f)?;
        let secs = secs.checked_sub(off)?;
        (MIN_EPOCH_DAY..=MAX_EPOCH_DAY).contains(&secs.div_euclid(86_400)).then_some((secs, nanos))
    })
}

/// The form nearly every producer writes, `yyyy-MM-ddTHH:mm:ss[.f{1,9}]Z`, read without the
/// element parser: the fields [`zoned`]'s first formatter parses from it, resolved the same
/// way. `None` for any other text, and where [`zoned`] would find no instant (the caller
/// then asks [`zoned`]).
pub(crate) fn zoned_common(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    let n = b.len();
    if !(n == 20 || (22..=30).contains(&n)) || !matches!(b[n - 1], b'Z' | b'z') {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        let mut v = 0i64;
        let mut ok = true;
        for &c in &b[from..to] {
            let d = c.wrapping_sub(b'0');
            ok &= d < 10;
            v = v * 10 + i64::from(d);
        }
        ok.then_some(v)
    };
    let seps = b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't') && b[13] == b':' && b[16] == b':';
    if !seps {
        return None;
    }
    let nanos = if n == 20 {
        0
    } else {
        if b[19] != b'.' {
            return None;
        }
        digits(20, n - 1)? * 10i64.pow(9 - (n - 21) as u32)
    };
    let two = |i: usize| i64::from(b[i].wrapping_sub(b'0')) * 10 + i64::from(b[i + 1].wrapping_sub(b'0'));
    let all_digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18].iter().all(|&i| b[i].is_ascii_digit());
    if all_digits {
        // With the month in 1..=12 the lenient resolution below adds the day, hours,
        // minutes and seconds linearly (a 30 February or a 24:00 rolls over), as this
        // does; four-digit years are far inside its range.
        let (y, m, d) = (two(0) * 100 + two(2), two(5), two(8));
        if (1..=12).contains(&m) {
            let (h, mi, sec) = (two(11), two(14), two(17));
            return Some((epoch_day(y, m, d) * 86_400 + h * 3600 + mi * 60 + sec, nanos));
        }
    }
    let mut f: Fields = [None; 8];
    f[Year as usize] = Some(digits(0, 4)?);
    f[Month as usize] = Some(digits(5, 7)?);
    f[Day as usize] = Some(digits(8, 10)?);
    f[Hour as usize] = Some(digits(11, 13)?);
    f[Minute as usize] = Some(digits(14, 16)?);
    f[Second as usize] = Some(digits(17, 19)?);
    f[Nano as usize] = Some(nanos);
    let (secs, nanos) = lenient_date_time(&f)?;
    (MIN_EPOCH_DAY..=MAX_EPOCH_DAY).contains(&secs.div_euclid(86_400)).then_some((secs, nanos))
}

/// `HiveFormatUtils.parseHiveTimestamp` (`HiveFormatUtils.java:238-256`): the trimmed text,
/// Hive's default form, else ISO.
pub(crate) fn hive_timestamp(s: &str) -> Option<(i64, i64)> {
    let t = super::openx::java_trim(s);
    [DEFAULT_TIMESTAMP, ISO].iter().find_map(|els| lenient_date_time(&parse_fully(els, t, false, true)?))
}
