//! Trino's OpenX JSON reader (what Athena engine v3 reads Bronze with), ported as the
//! reference semantics of the local Bronze reader: the lenient JSON syntax, the line rules,
//! and how each JSON value converts to each Hive type. The fast decoder (`decode.rs`)
//! handles ordinary lines itself and hands every other line to [`decode_tree`].
//!
//! Source: trinodb/trino `lib/trino-hive-formats/.../line/openxjson/` (`JsonReader.java`,
//! `OpenXJsonDeserializer.java`, `JsonWriter.java`) and `HiveFormatUtils.java`, read at
//! 07dcfcc89f2546678afaa9b8a3749b0d4ccad590 (martint/trino, which follows master).
//! `use.null.for.invalid.data` is Athena's own (its OpenX SerDe docs): a value Trino would
//! fail the query on is NULL instead.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::datatypes::DataType;

use super::builders::{ColBuilder, Kind};
use super::decode::{MAX_JSON_DEPTH, too_deep};
use super::javatime;
use crate::changes::sql_type;

/// The SerDe properties the reader honours (`OpenXJsonOptions.java:123-160`).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) ignore_malformed: bool,
    pub(crate) case_insensitive: bool,
    pub(crate) dots_in_keys: bool,
    pub(crate) null_for_invalid: bool,
    /// `mapping.<hive name>` = JSON key (lower-cased when case-insensitive).
    pub(crate) mappings: HashMap<String, String>,
}

impl Options {
    pub(crate) fn from_serde(props: &BTreeMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| props.iter().find(|(p, _)| p.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        let case_insensitive = get("case.insensitive").is_none_or(|v| v.eq_ignore_ascii_case("true"));
        if get("timestamp.formats").is_some() {
            return Err("the SerDe property timestamp.formats is not supported by the local engine".into());
        }
        let mappings = props
            .iter()
            .filter_map(|(k, v)| {
                let field = k.strip_prefix("mapping.")?;
                let key = if case_insensitive { v.to_lowercase() } else { v.clone() };
                Some((field.to_string(), key))
            })
            .collect();
        Ok(Self {
            ignore_malformed: get("ignore.malformed.json").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            case_insensitive,
            dots_in_keys: get("dots.in.keys").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            null_for_invalid: get("use.null.for.invalid.data")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            mappings,
        })
    }

    /// Whether a JSON key names the (lower-cased, possibly mapped) Hive field `name`
    /// (`FieldName.equals`, `OpenXJsonDeserializer.java:1028-1040`).
    pub(crate) fn key_matches(&self, name: &str, key: &str) -> bool {
        if self.case_insensitive { eq_ignore_case(name, key) } else { name == key }
    }

    /// The JSON key a Hive field is read from.
    pub(crate) fn json_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.mappings.get(name).map_or(name, String::as_str)
    }
}

/// Java's `String.equalsIgnoreCase`, per character.
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        // Equal but for the case of ASCII letters (other bytes equal).
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        // Upper- and lower-casing an ASCII character gives an ASCII character.
        return false;
    }
    let (mut x, mut y) = (a.chars(), b.chars());
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(c), Some(d)) => {
                if c != d && !c.to_uppercase().eq(d.to_uppercase()) && !c.to_lowercase().eq(d.to_lowercase())
                {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A fold of a key that keys equal under the reader's equality share ([`eq_ignore_case`]
/// when case-insensitive): each character as the upper case of its lower case. Characters
/// are compared one by one, and two characters whose upper cases or whose lower cases agree
/// have the same upper case of their lower case (so `ſ`, `s` and `S` fold to `S`, the Kelvin
/// sign, `k` and `K` to `K`, `ß` and `ẞ` to `SS`; `bronze::a_repeated_key_in_another_case_...`
/// checks every such pair). Keys that share a fold are compared exactly. Keys without ASCII
/// letters keep their own buckets (a coarser fold put them all in one, and 20,000 such keys
/// took quadratic time).
pub(crate) fn fold_key(key: &str, case_insensitive: bool) -> String {
    if !case_insensitive {
        return key.to_string();
    }
    if key.is_ascii() {
        return key.to_ascii_uppercase();
    }
    key.chars().flat_map(char::to_lowercase).flat_map(char::to_uppercase).collect()
}

/// The keys of one object seen so far, for the repeated-key check: a list while it is
/// short, and past that also an index by [`fold_key`], so that a line with many keys costs
/// time linear in its length (20,000 keys took 16 s compared pairwise).
pub(crate) struct SeenKeys<K> {
    keys: Vec<K>,
    /// Whether each key still stands (a repeat removed it).
    live: Vec<bool>,
    index: HashMap<String, Vec<usize>>,
}

impl<K> Default for SeenKeys<K> {
    fn default() -> Self {
        Self { keys: Vec::new(), live: Vec::new(), index: HashMap::new() }
    }
}

/// Keys compared one by one up to this many; an index past it.
const SEEN_LINEAR: usize = 32;

impl<K: AsRef<str>> SeenKeys<K> {
    /// The positions of the standing keys equal to `key` under `eq`.
    fn equal(&self, key: &str, ci: bool, eq: &impl Fn(&str, &str) -> bool) -> Vec<usize> {
        let matches = |&i: &usize| self.live[i] && eq(self.keys[i].as_ref(), key);
        if self.keys.len() <= SEEN_LINEAR {
            return (0..self.keys.len()).filter(matches).collect();
        }
        self.index
            .get(&fold_key(key, ci))
            .map(|b| b.iter().copied().filter(matches).collect())
            .unwrap_or_default()
    }

    /// Whether a standing key equals `key`.
    pub(crate) fn contains(&self, key: &str, ci: bool, eq: impl Fn(&str, &str) -> bool) -> bool {
        !self.equal(key, ci, &eq).is_empty()
    }

    /// Removes the standing keys equal to `key`; returns their positions. They leave the
    /// index too, so a key repeated many times is not compared with its earlier occurrences.
    pub(crate) fn remove(&mut self, key: &str, ci: bool, eq: impl Fn(&str, &str) -> bool) -> Vec<usize> {
        let found = self.equal(key, ci, &eq);
        for &i in &found {
            self.live[i] = false;
        }
        if !found.is_empty()
            && self.keys.len() > SEEN_LINEAR
            && let Some(bucket) = self.index.get_mut(&fold_key(key, ci))
        {
            bucket.retain(|&i| self.live[i]);
        }
        found
    }

    pub(crate) fn push(&mut self, key: K, ci: bool) {
        self.keys.push(key);
        self.live.push(true);
        let n = self.keys.len();
        if n == SEEN_LINEAR + 1 {
            for (i, k) in self.keys.iter().enumerate().filter(|&(i, _)| self.live[i]) {
                self.index.entry(fold_key(k.as_ref(), ci)).or_default().push(i);
            }
        } else if n > SEEN_LINEAR + 1 {
            self.index.entry(fold_key(self.keys[n - 1].as_ref(), ci)).or_default().push(n - 1);
        }
    }
}

/// A JSON value as Trino's lenient reader produces it; `None` is JSON null.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JValue {
    /// A string or an unquoted literal (number, boolean, bare word) and whether it was quoted.
    Str(String, bool),
    /// Entries in insertion order of their last occurrence; keys are the JSON text.
    Obj(Vec<(String, Option<JValue>)>),
    Arr(Vec<Option<JValue>>),
}

/// Java's `String.trim`: every char up to U+0020 off both ends.
pub(crate) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// `JsonReader.java:60-64` (`readJson`): one value from the start of `text`; what follows it
/// is ignored by Trino, and returned here so that it can be reported. Keys equal under the
/// reader's key equality keep their last value.
pub(crate) fn read_json(text: &str, case_insensitive: bool) -> Result<(Option<JValue>, String), String> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut reader = Reader { s: &units, pos: 0, case_insensitive, depth: 0 };
    let value = reader.next_value()?;
    Ok((value, utf16_to_string(&units[reader.pos..])))
}

struct Reader<'a> {
    s: &'a [u16],
    pos: usize,
    case_insensitive: bool,
    /// Objects and arrays open at `pos`: each is a frame of the recursion below.
    depth: usize,
}

fn unit(c: char) -> u16 {
    c as u16
}

impl Reader<'_> {
    fn err<T>(&self, msg: &str) -> Result<T, String> {
        Err(format!("{msg} at {}", self.pos))
    }

    /// `JsonReader.java:78-98`. Past [`MAX_JSON_DEPTH`] levels the text is malformed, where
    /// Trino's recursion has no bound (`decode::nesting_exceeds` finds such a line first, in
    /// one pass; this keeps any other caller bounded too).
    fn next_value(&mut self) -> Result<Option<JValue>, String> {
        let Some(c) = self.seek_next_token()? else { return self.err("End of input") };
        if c == unit('{') || c == unit('[') {
            if self.depth == MAX_JSON_DEPTH {
                return self.err(&too_deep());
            }
            self.depth += 1;
            let value = if c == unit('{') { self.read_object() } else { self.read_array() };
            self.depth -= 1;
            return value.map(Some);
        }
        if c == unit('\'') || c == unit('"') {
            return self.read_quoted(c).map(|s| Some(JValue::Str(s, true)));
        }
        self.pos -= 1;
        self.read_literal()
    }

    /// `JsonReader.java:100-148`.
    fn read_object(&mut self) -> Result<JValue, String> {
        match self.seek_next_token()? {
            Some(c) if c == unit('}') => return Ok(JValue::Obj(Vec::new())),
            Some(_) => self.pos -= 1,
            None => {}
        }
        // Entries by position, a repeated key's earlier entry removed (`None`) where it was:
        // Trino's `LinkedHashMap` keeps the last value, at the end.
        let mut entries: Vec<Option<(String, Option<JValue>)>> = Vec::new();
        // Boxed: this frame recurses once per level of nesting.
        let mut seen: Box<SeenKeys<String>> = Box::default();
        loop {
            let name = match self.next_value()? {
                None => return self.err("Field name is null literal"),
                Some(JValue::Str(s, _)) => s,
                Some(_) => return self.err("Names must be strings"),
            };
            let sep = self.seek_next_token()?;
            if sep != Some(unit(':')) && sep != Some(unit('=')) {
                return self.err(&format!("Expected ':' after field {name}"));
            }
            if sep == Some(unit('=')) && self.s.get(self.pos) == Some(&unit('>')) {
                self.pos += 1;
            }
            let ci = self.case_insensitive;
            let eq = |k: &str, n: &str| if ci { eq_ignore_case(k, n) } else { k == n };
            for i in seen.remove(&name, ci, eq) {
                entries[i] = None;
            }
            let value = self.next_value()?;
            seen.push(name.clone(), ci);
            entries.push(Some((name, value)));
            match self.seek_next_token()? {
                Some(c) if c == unit('}') => return Ok(JValue::Obj(entries.into_iter().flatten().collect())),
                Some(c) if c == unit(',') || c == unit(';') => {}
                _ => return self.err("Unterminated object"),
            }
        }
    }

    /// `JsonReader.java:150-191`: a separator without a value before it is a null element.
    fn read_array(&mut self) -> Result<JValue, String> {
        let mut items = Vec::new();
        let mut trailing_separator = false;
        loop {
            let Some(c) = self.seek_next_token()? else { return self.err("Unterminated array") };
            if c == unit(']') {
                if trailing_separator {
                    items.push(None);
                }
                return Ok(JValue::Arr(items));
            }
            if c == unit(',') || c == unit(';') {
                items.push(None);
                trailing_separator = true;
                continue;
            }
            self.pos -= 1;
            items.push(self.next_value()?);
            match self.seek_next_token()? {
                Some(c) if c == unit(']') => return Ok(JValue::Arr(items)),
                Some(c) if c == unit(',') || c == unit(';') => trailing_separator = true,
                _ => return self.err("Unterminated array"),
            }
        }
    }

    /// `JsonReader.java:193-268`: escapes produce UTF-16 units (`\a` is 7, `\v` is a TAB as in
    /// the Java source, an unknown escape is the character itself).
    fn read_quoted(&mut self, quote: u16) -> Result<String, String> {
        let mut out: Vec<u16> = Vec::new();
        while let Some(&c) = self.s.get(self.pos) {
            self.pos += 1;
            if c == quote {
                return Ok(utf16_to_string(&out));
            }
            if c == unit('\\') {
                let Some(&e) = self.s.get(self.pos) else { return self.err("Unterminated escape sequence") };
                self.pos += 1;
                let decoded = match char::from_u32(u32::from(e)).unwrap_or('\0') {
                    'u' => {
                        let hex = self.s.get(self.pos..self.pos + 4).ok_or("Unterminated escape sequence")?;
                        let hex = String::from_utf16_lossy(hex);
                        self.pos += 4;
                        u16::from_str_radix(&hex, 16)
                            .map_err(|_| format!("Invalid escape sequence: {hex}"))?
                    }
                    't' => 9,
                    'b' => 8,
                    'n' => 10,
                    'r' => 13,
                    'f' => 12,
                    'a' => 7,
                    'v' => 9,
                    _ => e,
                };
                out.push(decoded);
            } else {
                out.push(c);
            }
        }
        self.err("Unterminated string")
    }

    /// `JsonReader.java:270-302`: up to whitespace or a structural character; `null` in
    /// any case is null.
    fn read_literal(&mut self) -> Result<Option<JValue>, String> {
        let start = self.pos;
        while let Some(&c) = self.s.get(self.pos) {
            let stop = matches!(
                char::from_u32(u32::from(c)),
                Some(
                    ' ' | '\r'
                        | '\n'
                        | '\t'
                        | '\x0c'
                        | '{'
                        | '}'
                        | '['
                        | ']'
                        | '/'
                        | '\\'
                        | ':'
                        | ','
                        | '='
                        | ';'
                        | '#'
                )
            );
            if stop {
                break;
            }
            self.pos += 1;
        }
        let literal = utf16_to_string(&self.s[start..self.pos]);
        if literal.is_empty() {
            return self.err("Expected literal value");
        }
        if literal.eq_ignore_ascii_case("null") {
            return Ok(None);
        }
        Ok(Some(JValue::Str(literal, false)))
    }

    /// `JsonReader.java:307-346`: skips whitespace and `#`, `//`, `/* */` comments.
    fn seek_next_token(&mut self) -> Result<Option<u16>, String> {
        while let Some(&c) = self.s.get(self.pos) {
            self.pos += 1;
            match char::from_u32(u32::from(c)) {
                Some('\t' | ' ' | '\n' | '\r') => {}
                Some('#') => self.skip_to_line_end(),
                Some('/') => match self.s.get(self.pos).map(|&p| char::from_u32(u32::from(p))) {
                    Some(Some('*')) => {
                        self.pos += 1;
                        let end = self.s[self.pos..].windows(2).position(|w| w == [unit('*'), unit('/')]);
                        match end {
                            Some(e) => self.pos += e + 2,
                            None => return self.err("Unterminated c-style comment"),
                        }
                    }
                    Some(Some('/')) => self.skip_to_line_end(),
                    _ => return Ok(Some(c)),
                },
                _ => return Ok(Some(c)),
            }
        }
        Ok(None)
    }

    fn skip_to_line_end(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            self.pos += 1;
            if c == unit('\r') || c == unit('\n') {
                return;
            }
        }
    }
}

/// UTF-16 to UTF-8 as Java encodes a String: an unpaired surrogate becomes `?`.
fn utf16_to_string(units: &[u16]) -> String {
    char::decode_utf16(units.iter().copied()).map(|r| r.unwrap_or('?')).collect()
}

// ---------------------------------------------------------------------------------------
// Scalar conversions (`OpenXJsonDeserializer.java`), shared with the fast decoder.

/// A number as Java's `BigDecimal(String)` reads it: sign, digits, and a scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BigDec {
    pub(crate) negative: bool,
    /// The unscaled value's digits without leading zeros ("0" for zero).
    pub(crate) digits: String,
    pub(crate) scale: i64,
}

impl BigDec {
    /// `new BigDecimal(s)`: `[+-](d+[.d*] | .d+)[(e|E)[+-]d+]`, nothing else.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let mut i = 0;
        let negative = match b.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut digits = String::new();
        let mut frac = 0i64;
        let mut seen_point = false;
        let mut any = false;
        while let Some(&c) = b.get(i) {
            match c {
                b'0'..=b'9' => {
                    digits.push(c as char);
                    any = true;
                    if seen_point {
                        frac += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            i += 1;
        }
        if !any {
            return None;
        }
        let mut exp = 0i64;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let rest = &s[i + 1..];
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            exp = rest.parse::<i32>().ok()?.into();
            i = b.len();
        }
        if i != b.len() {
            return None;
        }
        let trimmed = digits.trim_start_matches('0');
        let digits = if trimmed.is_empty() { "0".to_string() } else { trimmed.to_string() };
        Some(Self { negative: negative && digits != "0", digits, scale: frac - exp })
    }

    /// `BigDecimal.toString()`: plain unless the scale is negative or the adjusted
    /// exponent is below -6, then `d.dddE±n`.
    pub(crate) fn to_java_string(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        let coeff = &self.digits;
        if self.scale == 0 {
            return format!("{sign}{coeff}");
        }
        let adjusted = -self.scale + (coeff.len() as i64 - 1);
        if self.scale > 0 && adjusted >= -6 {
            let scale = self.scale as usize;
            return if coeff.len() > scale {
                format!("{sign}{}.{}", &coeff[..coeff.len() - scale], &coeff[coeff.len() - scale..])
            } else {
                format!("{sign}0.{}{coeff}", "0".repeat(scale - coeff.len()))
            };
        }
        let mut out = format!("{sign}{}", &coeff[..1]);
        if coeff.len() > 1 {
            out.push('.');
            out.push_str(&coeff[1..]);
        }
        if adjusted != 0 {
            out.push('E');
            if adjusted > 0 {
                out.push('+');
            }
            out.push_str(&adjusted.to_string());
        }
        out
    }

    /// The value rounded to `scale` fractional digits (`mode_half_up` or toward zero), as an
    /// unscaled integer, if it fits in 38 digits.
    pub(crate) fn rescale(&self, scale: i64, half_up: bool) -> Option<i128> {
        let shift = scale - self.scale;
        let digits = self.digits.as_bytes();
        let (kept, next): (&[u8], Option<u8>) = if shift >= 0 {
            (digits, None)
        } else {
            let drop = shift.unsigned_abs() as usize;
            if drop >= digits.len() {
                let next = if drop == digits.len() { Some(digits[0]) } else { Some(b'0') };
                (&[], next)
            } else {
                (&digits[..digits.len() - drop], Some(digits[digits.len() - drop]))
            }
        };
        if shift > 0 && self.digits != "0" && kept.len() as i64 + shift > 38 {
            return None;
        }
        let mut v: i128 = 0;
        for &d in kept {
            v = v.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
        }
        if shift > 0 {
            for _ in 0..shift {
                v = v.checked_mul(10)?;
            }
        }
        if half_up && next.is_some_and(|d| d >= b'5') {
            v += 1;
        }
        Some(if self.negative { -v } else { v })
    }
}

/// `parseDecimalHexOctalLong` (`OpenXJsonDeserializer.java:947-963`): `0x1F`, `012` (octal),
/// or `Long.parseLong`.
pub(crate) fn parse_decimal_hex_octal(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() >= 3 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
        return i64::from_str_radix(&s[2..], 16).ok();
    }
    if b.len() >= 2 && b[0] == b'0' && (b'0'..=b'8').contains(&b[1]) {
        return i64::from_str_radix(&s[1..], 8).ok();
    }
    java_parse_long(s)
}

/// `Long.parseLong`: an optional sign and ASCII digits.
fn java_parse_long(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `parseLong` (`OpenXJsonDeserializer.java:920-945`): decimal/hex/octal, else the
/// `BigDecimal` truncated toward zero; `None` when not a number or out of range.
pub(crate) fn parse_long(s: &str) -> Option<i64> {
    if let Some(v) = parse_decimal_hex_octal(s) {
        return Some(v);
    }
    let d = BigDec::parse(s)?;
    i64::try_from(d.rescale(0, false)?).ok()
}

/// `Double.parseDouble`: trimmed, `NaN`/`Infinity`, an `f`/`d` suffix, hex floats.
pub(crate) fn parse_double(s: &str) -> Option<f64> {
    let t = java_trim(s);
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    match body {
        "NaN" => return Some(f64::NAN),
        "Infinity" => return Some(sign * f64::INFINITY),
        _ => {}
    }
    let body = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return parse_hex_float(hex).map(|v| sign * v);
    }
    let b = body.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let e = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if e == 0 {
            return None;
        }
        i += e;
    }
    if i != b.len() {
        return None;
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

/// `0x<hex>[.<hex>]p[+-]<dec>` (the `0x` already removed).
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// `BooleanDecoder` (`OpenXJsonDeserializer.java:262-275`): `Boolean.parseBoolean` of the
/// value's text; objects and arrays are false.
pub(crate) fn parse_boolean(s: &str) -> bool {
    s.eq_ignore_ascii_case("true")
}

/// `DateDecoder` (`OpenXJsonDeserializer.java:439-502`): a lenient `y-M-d` (text after it
/// allowed unless it starts with a digit), else days since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<i32> {
    javatime::hive_date(s).or_else(|| parse_decimal_hex_octal(s)).and_then(|v| i32::try_from(v).ok())
}

/// `TimestampDecoder.parseTimestamp` (`OpenXJsonDeserializer.java:535-590`) and the
/// timestamp(3) encoder's half-up rounding: epoch milliseconds, or `None` (NULL).
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    let (secs, nanos) = if let Some(v) = javatime::zoned_common(s) {
        v
    } else if s.find(':').is_some_and(|i| i > 0) {
        let with_zone =
            (s.ends_with(['z', 'Z']) || has_offset_suffix(s)).then(|| javatime::zoned(s)).flatten();
        match with_zone {
            Some(v) => v,
            None => javatime::hive_timestamp(s)?,
        }
    } else {
        if !s.bytes().all(|c| b"-+.0123456789".contains(&c)) {
            return None;
        }
        if s.contains('.') {
            let d = BigDec::parse(s)?;
            let millis = BigDec { scale: d.scale - 3, ..d };
            return i64::try_from(millis.rescale(0, false)?).ok();
        }
        let n = java_parse_long(s)?;
        if s.len() >= 13 {
            return Some(n);
        }
        (n, 0)
    };
    // ShortTimestampEncoder: nanos rounded half up to the precision.
    secs.checked_mul(1000)?.checked_add((nanos + 500_000) / 1_000_000)
}

/// `.+([+-])\d{2}:?\d{2}` matching all of the text (`OpenXJsonDeserializer.java:614`; Java's
/// `.` matches anything but a line terminator).
fn has_offset_suffix(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let sign = |i: usize| matches!(b.get(i), Some(b'+' | b'-'));
    let prefix_ok =
        |end: usize| end > 0 && !s[..end].contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']);
    (n >= 6
        && sign(n - 5)
        && digit(n - 4)
        && digit(n - 3)
        && digit(n - 2)
        && digit(n - 1)
        && prefix_ok(n - 5))
        || (n >= 7
            && sign(n - 6)
            && digit(n - 5)
            && digit(n - 4)
            && b[n - 3] == b':'
            && digit(n - 2)
            && digit(n - 1)
            && prefix_ok(n - 6))
}

/// `canonicalizeUnquotedString` (`JsonWriter.java:149-173`): booleans lower-cased, integers
/// (also hex and octal) as plain decimal, other numbers as `BigDecimal.toString()`.
pub(crate) fn canonical_unquoted(s: &str) -> Option<String> {
    if s.eq_ignore_ascii_case("true") {
        return Some("true".into());
    }
    if s.eq_ignore_ascii_case("false") {
        return Some("false".into());
    }
    if let Some(v) = parse_decimal_hex_octal(s) {
        return Some(v.to_string());
    }
    BigDec::parse(s).map(|d| d.to_java_string())
}

/// A string column's text of a value (`VarcharDecoder`, `OpenXJsonDeserializer.java:644-666`).
pub(crate) fn string_of(v: &JValue) -> String {
    match v {
        JValue::Str(s, true) => s.clone(),
        JValue::Str(s, false) => canonical_unquoted(s).unwrap_or_else(|| s.clone()),
        other => {
            let mut out = String::new();
            write_json(other, &mut out);
            out
        }
    }
}

/// `JsonWriter.value` for objects and arrays: compact, keys and strings escaped as
/// `writeJsonString` does, unquoted scalars canonical (or quoted when not a number).
pub(crate) fn write_json(v: &JValue, out: &mut String) {
    match v {
        JValue::Obj(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_nested(v.as_ref(), out);
            }
            out.push('}');
        }
        JValue::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_nested(v.as_ref(), out);
            }
            out.push(']');
        }
        JValue::Str(..) => write_nested(Some(v), out),
    }
}

fn write_nested(v: Option<&JValue>, out: &mut String) {
    match v {
        None => out.push_str("null"),
        Some(JValue::Str(s, quoted)) => match (!quoted).then(|| canonical_unquoted(s)).flatten() {
            Some(c) => out.push_str(&c),
            None => write_json_string(s, out),
        },
        Some(other) => write_json(other, out),
    }
}

/// `JsonWriter.writeJsonString` (`JsonWriter.java:175-215`).
pub(crate) fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    let mut previous = '\0';
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '/' => {
                if previous == '<' {
                    out.push('\\');
                }
                out.push('/');
            }
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) <= 0x1f => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
        previous = c;
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------
// Decoding a parsed value into a column (the `Decoder` classes).

/// What decoding one line found besides the values.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    /// Values read as NULL: unparseable scalars, and (with `use.null.for.invalid.data`) values
    /// Trino would have failed the query on; and text after the record, which Trino ignores
    /// (two records on one line: the second is not read).
    pub(crate) nulled: Vec<String>,
}

impl Notes {
    /// Notes what follows the record on its line, if anything.
    pub(crate) fn trailing(&mut self, rest: &str) {
        let rest = java_trim(rest);
        if !rest.is_empty() {
            let shown: String = rest.chars().take(40).collect();
            self.nulled.push(format!("text after the record is not read: {shown:?}"));
        }
    }
}

/// Where a value sits, for messages (`device.os`).
pub(crate) fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}

fn show(v: &JValue) -> String {
    match v {
        JValue::Str(s, _) => format!("{s:?}"),
        JValue::Obj(_) => "an object".into(),
        JValue::Arr(_) => "an array".into(),
    }
}

/// A value that does not fit its column: NULL with `use.null.for.invalid.data`, else the
/// query fails (Trino's `invalidJson`, `OpenXJsonDeserializer.java:970-973`).
fn invalid(
    b: &mut ColBuilder,
    o: &Options,
    notes: &mut Notes,
    path: &str,
    what: String,
) -> Result<(), String> {
    let msg = format!("column {path}: {what}");
    if o.null_for_invalid {
        b.append_null();
        notes.nulled.push(msg);
        Ok(())
    } else {
        Err(format!("Invalid JSON: {msg}"))
    }
}

/// Decodes one value (or JSON null) into `b`; `Err` is a failure of the whole query.
pub(crate) fn decode_value(
    v: Option<&JValue>,
    b: &mut ColBuilder,
    o: &Options,
    notes: &mut Notes,
    path: &str,
) -> Result<(), String> {
    let Some(v) = v else {
        b.append_null();
        return Ok(());
    };
    // Named only when a value does not fit (a type name is a string to build).
    let data_type = b.data_type.clone();
    let unparsed = |notes: &mut Notes| {
        notes.nulled.push(format!("column {path}: cannot read {} as {}", show(v), sql_type(&data_type)))
    };
    match (&mut b.kind, v) {
        (Kind::Utf8 { offsets, data }, v) => {
            data.extend_from_slice(string_of(v).as_bytes());
            offsets.push(data.len() as i32);
            b.valid.push(true);
        }
        (Kind::Bool(values), v) => {
            values.push(matches!(v, JValue::Str(s, _) if parse_boolean(s)));
            b.push_valid();
        }
        (Kind::Int { values, min, max }, JValue::Str(s, _)) => {
            match parse_long(s).filter(|x| (*min..=*max).contains(x)) {
                Some(x) => {
                    values.push(x);
                    b.push_valid();
                }
                None => {
                    b.append_null();
                    unparsed(notes);
                }
            }
        }
        (Kind::Float(values), JValue::Str(s, _)) => {
            let single = b.data_type == DataType::Float32;
            match parse_double(s).map(|x| if single { f64::from(x as f32) } else { x }) {
                Some(x) => {
                    values.push(x);
                    b.push_valid();
                }
                None => {
                    b.append_null();
                    unparsed(notes);
                }
            }
        }
        (Kind::Decimal { values, precision, scale }, JValue::Str(s, _)) => {
            let limit = 10i128.pow(u32::from(*precision));
            match BigDec::parse(s)
                .and_then(|d| d.rescale(i64::from(*scale), true))
                .filter(|x| x.abs() < limit)
            {
                Some(x) => {
                    values.push(x);
                    b.push_valid();
                }
                None => {
                    b.append_null();
                    unparsed(notes);
                }
            }
        }
        (Kind::Date(values), JValue::Str(s, _)) => match parse_date(s) {
            Some(x) => {
                values.push(x);
                b.push_valid();
            }
            None => {
                b.append_null();
                unparsed(notes);
            }
        },
        (Kind::Timestamp(values), JValue::Str(s, _)) => match parse_timestamp(s) {
            Some(x) => {
                values.push(x);
                b.push_valid();
            }
            None => {
                b.append_null();
                unparsed(notes);
            }
        },
        (
            Kind::Int { .. } | Kind::Float(_) | Kind::Decimal { .. } | Kind::Date(_) | Kind::Timestamp(_),
            other,
        ) => {
            invalid(
                b,
                o,
                notes,
                path,
                format!("{} can not be coerced to {}", show(other), sql_type(&data_type)),
            )?;
        }
        (Kind::List { offsets, child, .. }, v) => {
            if matches!(v, JValue::Str(s, _) if s.is_empty()) {
                b.append_null();
                return Ok(());
            }
            let item_path = child_path(path, "item");
            match v {
                JValue::Arr(items) => {
                    for item in items {
                        decode_value(item.as_ref(), child, o, notes, &item_path)?;
                    }
                }
                single => decode_value(Some(single), child, o, notes, &item_path)?,
            }
            offsets.push(child.len() as i32);
            b.push_valid();
        }
        (Kind::Map { .. }, JValue::Str(s, _)) => {
            if java_trim(s).is_empty() {
                b.append_null();
            } else {
                invalid(b, o, notes, path, format!("{} can not be coerced to a map", show(v)))?;
            }
        }
        (Kind::Map { .. }, JValue::Arr(_)) => {
            invalid(b, o, notes, path, "an array can not be coerced to a map".into())?;
        }
        (Kind::Map { offsets, keys, values, .. }, JValue::Obj(entries)) => {
            decode_map(entries, keys, values, o, notes, path)?;
            offsets.push(keys.len() as i32);
            b.push_valid();
        }
        (Kind::Struct { .. }, JValue::Str(s, _)) => {
            if java_trim(s).is_empty() {
                let Kind::Struct { children, .. } = &mut b.kind else { unreachable!("matched a struct") };
                children.iter_mut().for_each(ColBuilder::append_null);
                b.push_valid();
            } else {
                invalid(b, o, notes, path, format!("{} can not be coerced to a struct", show(v)))?;
            }
        }
        (Kind::Struct { names, children, .. }, v) => {
            decode_fields(v, names, children, o, notes, path, &|i| Some(i))?;
            b.push_valid();
        }
    }
    Ok(())
}

/// Map entries: keys read as quoted strings through the key type, a key read as NULL
/// dropped, the last of equal keys kept (`MapDecoder`, `OpenXJsonDeserializer.java:733-798`).
fn decode_map(
    entries: &[(String, Option<JValue>)],
    keys: &mut ColBuilder,
    values: &mut ColBuilder,
    o: &Options,
    notes: &mut Notes,
    path: &str,
) -> Result<(), String> {
    let mut scratch = ColBuilder::new(&keys.data_type).map_err(|t| format!("map key type {t}"))?;
    let mut key_notes = Notes::default();
    for (k, _) in entries {
        decode_value(Some(&JValue::Str(k.clone(), true)), &mut scratch, o, &mut key_notes, path)?;
    }
    let decoded = scratch.finish().map_err(|e| e.to_string())?;
    let format = datafusion::arrow::util::display::FormatOptions::default();
    let shown = datafusion::arrow::util::display::ArrayFormatter::try_new(decoded.as_ref(), &format)
        .map_err(|e| e.to_string())?;
    let key_text: Vec<Option<String>> =
        (0..entries.len()).map(|i| (!decoded.is_null(i)).then(|| shown.value(i).to_string())).collect();
    // The last entry of each key, found in one pass (a map of many keys costs linear time).
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(key_text.len());
    for (i, text) in key_text.iter().enumerate() {
        if let Some(text) = text {
            last.insert(text, i);
        }
    }
    let value_path = child_path(path, "value");
    for (i, text) in key_text.iter().enumerate() {
        let Some(text) = text else { continue };
        if last.get(text.as_str()) != Some(&i) {
            continue;
        }
        decode_value(Some(&JValue::Str(entries[i].0.clone(), true)), keys, o, &mut key_notes, path)?;
        decode_value(entries[i].1.as_ref(), values, o, notes, &value_path)?;
    }
    Ok(())
}

/// The fields of a struct (or the top-level row) from an object by name or an array by
/// position (`RowDecoder`, `OpenXJsonDeserializer.java:800-918`). `ordinal` maps an array
/// position to a field.
pub(crate) fn decode_fields<C: std::borrow::BorrowMut<ColBuilder>>(
    v: &JValue,
    names: &[Box<str>],
    children: &mut [C],
    o: &Options,
    notes: &mut Notes,
    path: &str,
    ordinal: &dyn Fn(usize) -> Option<usize>,
) -> Result<(), String> {
    match v {
        JValue::Obj(entries) => {
            for (i, child) in children.iter_mut().enumerate() {
                let name = o.json_name(&names[i]);
                let mut found = entries.iter().find(|(k, _)| o.key_matches(name, k));
                if found.is_none() && o.dots_in_keys && names[i].contains('_') {
                    found = entries
                        .iter()
                        .find(|(k, _)| k.contains('.') && o.key_matches(&names[i], &k.replace('.', "_")));
                }
                let value = found.and_then(|(_, v)| v.as_ref());
                decode_value(value, child.borrow_mut(), o, notes, &child_path(path, &names[i]))?;
            }
        }
        JValue::Arr(items) => {
            let mut written = vec![false; children.len()];
            for (pos, item) in items.iter().enumerate() {
                let Some(i) = ordinal(pos).filter(|i| *i < children.len()) else { continue };
                decode_value(
                    item.as_ref(),
                    children[i].borrow_mut(),
                    o,
                    notes,
                    &child_path(path, &names[i]),
                )?;
                written[i] = true;
            }
            for (i, child) in children.iter_mut().enumerate() {
                if !written[i] {
                    child.borrow_mut().append_null();
                }
            }
        }
        JValue::Str(..) => unreachable!("strings are handled by the caller"),
    }
    Ok(())
}

/// How one line reads.
#[derive(Debug)]
pub(crate) enum LineOutcome {
    /// A row (possibly with values read as NULL).
    Row(Notes),
    /// A row of NULLs (partition columns still set), and why.
    NullRow(String),
}

/// `OpenXJsonDeserializer.deserialize` (`OpenXJsonDeserializer.java:150-180`) into the row
/// builders `cols`: `names` and `cols` are the columns the query reads, `columns[i]` the
/// position of `names[i]` among the table's columns (what a top-level array's elements are
/// matched by). Other columns are not converted, as in Trino, so a value that does not fit
/// one of them is not noted.
pub(crate) fn decode_tree(
    line: &str,
    names: &[Box<str>],
    cols: &mut [&mut ColBuilder],
    columns: &[usize],
    o: &Options,
) -> Result<LineOutcome, String> {
    let t = java_trim(line);
    if !(t.starts_with('{') || t.starts_with('[')) {
        return Ok(LineOutcome::NullRow(if t.is_empty() {
            "an empty line".into()
        } else {
            "not a JSON object or array".into()
        }));
    }
    let (value, rest) = match read_json(t, o.case_insensitive) {
        Ok((Some(v), rest)) => (v, rest),
        Ok((None, _)) => unreachable!("a line starting with {{ or [ is not null"),
        Err(e) if o.ignore_malformed => return Ok(LineOutcome::NullRow(format!("malformed JSON: {e}"))),
        Err(e) => {
            return Err(format!("malformed JSON ({e}) and the table does not set ignore.malformed.json"));
        }
    };
    let mut notes = Notes::default();
    decode_fields(&value, names, cols, o, &mut notes, "", &|pos| columns.iter().position(|&c| c == pos))?;
    notes.trailing(&rest);
    Ok(LineOutcome::Row(notes))
}
