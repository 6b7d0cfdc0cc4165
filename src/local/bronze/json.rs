//! A validating JSON scanner over one NDJSON line, built for the Bronze decoder's
//! hot loop: strings are searched eight bytes at a time, values that no column
//! wants are skipped without building anything, and skipping an object or array
//! also reports whether its text is already compact (so `payload` is copied as-is).

use std::borrow::Cow;
use std::fmt;

/// A syntax or conversion error at a byte offset of the line.
#[derive(Debug)]
pub(crate) struct JsonError {
    pub(crate) msg: String,
    pub(crate) pos: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.msg, self.pos + 1)
    }
}

pub(crate) type JResult<T> = Result<T, JsonError>;

/// Objects and arrays nested deeper than this are rejected (as serde_json does).
const MAX_DEPTH: u32 = 128;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit of each byte of `v` equal to `c` (exact, no false positives).
#[inline]
fn eq_bytes(v: u64, c: u8) -> u64 {
    let t = v ^ (LO * u64::from(c));
    !(((t & !HI) + !HI) | t) & HI
}

/// High bit of each byte of `v` below 0x20 (control characters).
#[inline]
fn control_bytes(v: u64) -> u64 {
    !(((v & !HI) + LO * 0x60) | v) & HI
}

/// The first byte at or after `i` that ends a plain run of string text (a quote, a
/// backslash or a control character), or the end of `b`.
#[inline]
fn special_from(b: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = b.get(i..i + 16) {
        #[allow(unsafe_code)]
        // SAFETY: SSE2 is part of x86-64 itself, so every processor this runs on has it.
        let m = unsafe { sse2::special_mask(chunk.try_into().expect("16 bytes")) };
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    while let Some(word) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let m = eq_bytes(v, b'"') | eq_bytes(v, b'\\') | control_bytes(v);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// Sixteen bytes at a time with SSE2, which every x86-64 processor has.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x, _mm_set1_epi8,
    };

    /// Bit k set when byte k of `chunk` is a quote, a backslash or below 0x20.
    #[inline]
    #[target_feature(enable = "sse2")]
    pub(super) fn special_mask(chunk: &[u8; 16]) -> u32 {
        let lo = i64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
        let hi = i64::from_le_bytes(chunk[8..].try_into().expect("8 bytes"));
        let v = _mm_set_epi64x(hi, lo);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned v < 0x20 exactly when min(v, 0x1f) == v.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// A scalar value as it appears in the text.
pub(crate) enum Lit<'a> {
    Null,
    Bool(bool),
    /// Number text.
    Num(&'a str),
    Str(Cow<'a, str>),
    Object,
    Array,
}

impl fmt::Display for Lit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Null => f.write_str("null"),
            Lit::Bool(v) => write!(f, "boolean {v}"),
            Lit::Num(n) => write!(f, "number {n}"),
            Lit::Str(s) => write!(f, "string {s:?}"),
            Lit::Object => f.write_str("an object"),
            Lit::Array => f.write_str("an array"),
        }
    }
}

/// Cursor over one line of JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    pub(crate) i: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scanner { text, b: text.as_bytes(), i: 0, depth: 0 }
    }

    #[cold]
    pub(crate) fn error<T>(&self, msg: impl Into<String>) -> JResult<T> {
        Err(JsonError { msg: msg.into(), pos: self.i })
    }

    /// The text between two byte offsets (both at ASCII delimiters).
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a str {
        &self.text[start..end]
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips whitespace; true if there was any.
    #[inline]
    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.i;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
        self.i != start
    }

    /// Consumes `c` (after optional whitespace) or fails saying what was expected.
    pub(crate) fn expect(&mut self, c: u8, what: &str) -> JResult<()> {
        self.skip_ws();
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            None => self.error(format!("EOF while parsing, expected {what}")),
            Some(_) => self.error(format!("expected {what}")),
        }
    }

    /// Enters an object or array (the opening bracket is consumed).
    pub(crate) fn enter(&mut self) -> JResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error("recursion limit exceeded");
        }
        self.i += 1;
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
    }

    /// After a member or element: true if another follows (`,`), false at `close`.
    pub(crate) fn more(&mut self, close: u8, what: &str) -> JResult<bool> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            None => self.error(format!("EOF while parsing {what}")),
            Some(_) => self.error(format!("expected `,` or `{}`", close as char)),
        }
    }

    /// Scans a string whose opening quote is at `i`; returns its raw body range
    /// and whether it has escapes. Leaves `i` after the closing quote.
    fn scan_string(&mut self) -> JResult<(usize, usize, bool)> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = special_from(self.b, self.i);
            match self.peek() {
                None => return self.error("EOF while parsing a string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok((start, self.i - 1, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.error("invalid \\u escape");
                            }
                            self.i += 5;
                        }
                        None => return self.error("EOF while parsing a string"),
                        Some(_) => return self.error("invalid escape"),
                    }
                }
                // `special_from` stops only at a quote, a backslash or a control byte.
                Some(_) => return self.error("control character in string"),
            }
        }
    }

    /// Reads a string at `i` (which must be a quote), unescaped.
    pub(crate) fn string(&mut self) -> JResult<Cow<'a, str>> {
        let at = self.i;
        let (start, end, escaped) = self.scan_string()?;
        if !escaped {
            return Ok(Cow::Borrowed(self.slice(start, end)));
        }
        match serde_json::from_str::<String>(self.slice(start - 1, end + 1)) {
            Ok(s) => Ok(Cow::Owned(s)),
            Err(e) => Err(JsonError { msg: format!("invalid string: {e}"), pos: at }),
        }
    }

    /// Consumes the string at `i` if its text is exactly `"plain"`; `plain` must be the body
    /// of a string that had no escapes (so it holds no quote, backslash or control byte,
    /// and the text matched is a complete, valid string).
    #[inline]
    pub(crate) fn eat_plain_string(&mut self, plain: &str) -> bool {
        let p = plain.as_bytes();
        let end = self.i + 1 + p.len();
        let hit = self.b.get(self.i) == Some(&b'"')
            && self.b.get(end) == Some(&b'"')
            && &self.b[self.i + 1..end] == p;
        if hit {
            self.i = end + 1;
        }
        hit
    }

    /// Reads an object key at `i` (after optional whitespace).
    pub(crate) fn key(&mut self) -> JResult<Cow<'a, str>> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => self.string(),
            None => self.error("EOF while parsing an object"),
            Some(_) => self.error("expected a string key"),
        }
    }

    /// Reads a number at `i`: its text and whether it is an integer.
    pub(crate) fn number(&mut self) -> JResult<(&'a str, bool)> {
        let start = self.i;
        let integer = self.scan_number()?;
        Ok((self.slice(start, self.i), integer))
    }

    /// Validates and skips a number at `i`; true if it has no fraction or exponent.
    fn scan_number(&mut self) -> JResult<bool> {
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.peek().is_some_and(|c| c.is_ascii_digit()) {
                s.i += 1;
            }
            s.i - from
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.error("invalid number"),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            integer = false;
            if digits(self) == 0 {
                return self.error("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.error("invalid number");
            }
        }
        Ok(integer)
    }

    fn literal(&mut self, word: &str) -> JResult<()> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(())
        } else {
            self.error("expected value")
        }
    }

    /// Reads any value as a [`Lit`]; objects and arrays are validated and skipped.
    pub(crate) fn lit(&mut self) -> JResult<Lit<'a>> {
        self.skip_ws();
        Ok(match self.peek() {
            Some(b'"') => Lit::Str(self.string()?),
            Some(b'n') => self.literal("null").map(|()| Lit::Null)?,
            Some(b't') => self.literal("true").map(|()| Lit::Bool(true))?,
            Some(b'f') => self.literal("false").map(|()| Lit::Bool(false))?,
            Some(b'{') => self.skip_value(&mut true).map(|()| Lit::Object)?,
            Some(b'[') => self.skip_value(&mut true).map(|()| Lit::Array)?,
            Some(b'-' | b'0'..=b'9') => {
                let (text, _) = self.number()?;
                Lit::Num(text)
            }
            None => return self.error("EOF while parsing a value"),
            Some(_) => return self.error("expected value"),
        })
    }

    /// Validates and skips one value at `i` (after optional whitespace);
    /// clears `compact` if whitespace occurs inside it outside strings.
    pub(crate) fn skip_value(&mut self, compact: &mut bool) -> JResult<()> {
        self.skip_ws();
        self.skip_here(compact)
    }

    fn skip_here(&mut self, compact: &mut bool) -> JResult<()> {
        match self.peek() {
            Some(b'"') => self.scan_string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.scan_number().map(drop),
            Some(b'{') => self.skip_container(b'}', compact),
            Some(b'[') => self.skip_container(b']', compact),
            Some(b'n') => self.literal("null"),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            None => self.error("EOF while parsing a value"),
            Some(_) => self.error("expected value"),
        }
    }

    /// Skips an object (`close` = `}`) or array (`]`) starting at `i`.
    fn skip_container(&mut self, close: u8, compact: &mut bool) -> JResult<()> {
        let object = close == b'}';
        self.enter()?;
        *compact &= !self.skip_ws();
        if self.peek() == Some(close) {
            self.i += 1;
            self.leave();
            return Ok(());
        }
        loop {
            if object {
                match self.peek() {
                    Some(b'"') => self.scan_string().map(drop)?,
                    None => return self.error("EOF while parsing an object"),
                    Some(_) => return self.error("expected a string key"),
                }
                *compact &= !self.skip_ws();
                match self.peek() {
                    Some(b':') => self.i += 1,
                    None => return self.error("EOF while parsing an object"),
                    Some(_) => return self.error("expected `:`"),
                }
                *compact &= !self.skip_ws();
            }
            self.skip_here(compact)?;
            *compact &= !self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    *compact &= !self.skip_ws();
                }
                Some(c) if c == close => {
                    self.i += 1;
                    break;
                }
                None if object => return self.error("EOF while parsing an object"),
                None => return self.error("EOF while parsing an array"),
                Some(_) => return self.error(format!("expected `,` or `{}`", close as char)),
            }
        }
        self.leave();
        Ok(())
    }
}
