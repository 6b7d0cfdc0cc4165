//! Lenient text-to-value conversions of the OpenX JSON SerDe (timestamps, dates,
//! decimals, numeric strings) and JSON compaction, kept free of any Arrow or serde
//! state so they are cheap to call per value.

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

/// Appends the JSON text `raw` (a valid object or array) to `out` without the
/// whitespace outside strings, i.e. the compact form.
pub(crate) fn push_compact_json(out: &mut Vec<u8>, raw: &[u8]) {
    if is_compact(raw) {
        out.extend_from_slice(raw);
        return;
    }
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

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit of each byte of `v` that equals `c`.
fn eq_bytes(v: u64, c: u8) -> u64 {
    let t = v ^ (LO * u64::from(c));
    !(((t & !HI) + !HI) | t) & HI
}

/// High bit of each byte of `v` that is a space or a control character.
fn space_bytes(v: u64) -> u64 {
    !(((v & !HI) + LO * 0x5f) | v) & HI
}

/// Packs the high bits of the 8 bytes of `m` into 8 bits (byte i -> bit i).
fn pack(m: u64) -> u64 {
    (m.wrapping_mul(0x0002_0408_1020_4081)) >> 56
}

/// Bit i set iff an odd number of bits 0..=i of `x` are set.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// Whether valid JSON text has no whitespace outside its strings, checked 64 bytes
/// at a time with word-wide bit tricks; blocks with escapes are checked byte-wise.
fn is_compact(raw: &[u8]) -> bool {
    let mut state = ScanState::default();
    let mut blocks = raw.chunks_exact(64);
    for block in &mut blocks {
        let (mut quotes, mut escapes, mut spaces) = (0u64, 0u64, 0u64);
        for (k, word) in block.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            let v = u64::from_le_bytes(w);
            quotes |= pack(eq_bytes(v, b'"')) << (8 * k);
            escapes |= pack(eq_bytes(v, b'\\')) << (8 * k);
            spaces |= pack(space_bytes(v)) << (8 * k);
        }
        if escapes != 0 || state.escaped {
            if !state.scan(block) {
                return false;
            }
            continue;
        }
        let inside = if state.in_str { u64::MAX } else { 0 };
        if spaces & !(prefix_xor(quotes) ^ inside) != 0 {
            return false;
        }
        if quotes.count_ones() % 2 == 1 {
            state.in_str = !state.in_str;
        }
    }
    state.scan(blocks.remainder())
}

/// Byte-wise string tracking for [`is_compact`].
#[derive(Default)]
struct ScanState {
    in_str: bool,
    escaped: bool,
}

impl ScanState {
    /// Advances over `bytes`; false if whitespace outside a string was seen.
    fn scan(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if self.in_str {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
            } else if b == b'"' {
                self.in_str = true;
            } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return false;
            }
        }
        true
    }
}
