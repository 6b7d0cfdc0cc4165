//! JSON text for Trino's legacy JSON functions: the JSONPath subset of `json_extract`
//! (`$`, `.key`, `["key"]`, `[key]`, `[n]`), walking a document along it, and writing
//! values back in Trino's compact form (floating-point numbers as Java doubles, as
//! Jackson prints them).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use datafusion::common::{Result, exec_err};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::local::bronze::{MAX_JSON_DEPTH, nesting_exceeds};

/// Parses a JSON path into its keys/indexes, like Trino's `JsonPathTokenizer`.
pub(super) fn parse_path(name: &str, path: &str) -> Result<Vec<String>> {
    let invalid = || exec_err!("{name}: invalid json path: '{path}'");
    let unquoted = |c: char| c == '_' || c.is_alphanumeric();
    let mut chars = path.chars().peekable();
    if chars.next() != Some('$') {
        return invalid();
    }
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        let mut token = String::new();
        match c {
            '.' => {
                while let Some(c) = chars.next_if(|&c| c == ':' || unquoted(c)) {
                    token.push(c);
                }
                if token.is_empty() {
                    return invalid();
                }
            }
            '[' if chars.next_if_eq(&'"').is_some() => {
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => token.push(c),
                            _ => return invalid(),
                        },
                        Some(c) => token.push(c),
                        None => return invalid(),
                    }
                }
                if chars.next() != Some(']') {
                    return invalid();
                }
            }
            '[' => {
                while let Some(c) = chars.next_if(|&c| unquoted(c)) {
                    token.push(c);
                }
                if token.is_empty() || chars.next() != Some(']') {
                    return invalid();
                }
            }
            _ => return invalid(),
        }
        tokens.push(token);
    }
    Ok(tokens)
}

/// An object's members in document order, duplicates kept.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a json object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

fn members(v: &RawValue) -> Option<Vec<(String, &RawValue)>> {
    serde_json::from_str::<Members>(v.get()).ok().map(|m| m.0)
}

fn elements(v: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(v.get()).ok()
}

/// Follows `path` through `doc`. `None` when the document is not JSON, a key or index
/// is missing, or the path steps into a scalar.
///
/// One pass per step: the value is validated while the wanted member or element is
/// picked out, keys are compared as they are read (no allocation for unescaped keys),
/// and everything else is skipped. Skipping does not recurse (serde_json's `ignore_value`
/// keeps its own stack), so a document of any depth is read, as Trino's streaming extractor
/// reads it (`JsonExtract.java`, `skipChildren`; Trino lifts Jackson's read limits,
/// `JsonUtils.jsonFactoryBuilder`, `maxNestingDepth(Integer.MAX_VALUE)`).
pub(super) fn navigate<'a>(doc: &'a str, path: &[String]) -> Option<&'a RawValue> {
    if path.is_empty() {
        return serde_json::from_str(doc).ok();
    }
    let mut text = doc;
    let mut current = None;
    for key in path {
        let step = Step { key, index: key.parse::<i32>().ok().and_then(|i| usize::try_from(i).ok()) };
        let mut de = serde_json::Deserializer::from_str(text);
        let found: &'a RawValue = serde::de::DeserializeSeed::deserialize(step, &mut de).ok()??;
        de.end().ok()?;
        text = found.get();
        current = Some(found);
    }
    current
}

/// One step of a path: a member key, or an array index (`key` parsed as a number).
#[derive(Clone, Copy)]
struct Step<'k> {
    key: &'k str,
    index: Option<usize>,
}

impl<'de, 'k> serde::de::DeserializeSeed<'de> for Step<'k> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'k> Visitor<'de> for Step<'k> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a json object or array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        // The first member with the key wins, as in Trino's streaming extractor.
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(self.key))? {
            if hit && found.is_none() {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut found = None;
        let mut i = 0;
        loop {
            if Some(i) == self.index && found.is_none() {
                match seq.next_element::<&'de RawValue>()? {
                    Some(v) => found = Some(v),
                    None => break,
                }
            } else if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }
}

/// Reads a member key and says whether it is the wanted one, without keeping it.
struct KeyIs<'k>(&'k str);

impl<'de, 'k> serde::de::DeserializeSeed<'de> for KeyIs<'k> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'k> Visitor<'de> for KeyIs<'k> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<bool, E> {
        Ok(v == self.0)
    }
}

/// The text of a scalar (strings unquoted, numbers as written); `None` for JSON null,
/// objects and arrays.
pub(super) fn scalar_text(v: &RawValue) -> Option<Cow<'_, str>> {
    scalar_text_of(v.get())
}

/// [`scalar_text`] of a value's raw JSON text.
pub(super) fn scalar_text_of(raw: &str) -> Option<Cow<'_, str>> {
    let raw = raw.trim();
    match raw.bytes().next()? {
        // Valid JSON text (what callers pass): a string without escapes is its inside.
        b'"' if raw.len() >= 2 && raw.ends_with('"') && memchr::memchr(b'\\', raw.as_bytes()).is_none() => {
            Some(Cow::Borrowed(&raw[1..raw.len() - 1]))
        }
        b'"' => match serde_json::from_str::<&str>(raw) {
            Ok(s) => Some(Cow::Borrowed(s)),
            Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
        },
        b'{' | b'[' | b'n' => None,
        _ => Some(Cow::Borrowed(raw)),
    }
}

/// Writes `v` compactly; `sort_keys` gives `json_parse`'s canonical form (keys sorted,
/// the last of duplicate keys kept), otherwise members keep document order.
///
/// `None` for a value nested deeper than [`MAX_JSON_DEPTH`] (the walk below recurses once
/// per level; the depth is found first, in one pass): Jackson's generator refuses it too
/// (`StreamWriteConstraints.DEFAULT_MAX_DEPTH`, 1000, which Trino leaves in place), failing
/// Trino's query; here `json_extract` gives NULL and `json_parse` its error for text that is
/// not JSON.
pub(super) fn write(v: &RawValue, sort_keys: bool, out: &mut String) -> Option<()> {
    if nesting_exceeds(v.get().as_bytes(), MAX_JSON_DEPTH) {
        return None;
    }
    write_value(v, sort_keys, out)
}

/// [`write`] of a value no deeper than the bound.
fn write_value(v: &RawValue, sort_keys: bool, out: &mut String) -> Option<()> {
    let raw = v.get().trim();
    match raw.bytes().next()? {
        b'{' => {
            let members = members(v)?;
            let members: Vec<(String, &RawValue)> = if sort_keys {
                members.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect()
            } else {
                members
            };
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).ok()?);
                out.push(':');
                write_value(value, sort_keys, out)?;
            }
            out.push('}');
        }
        b'[' => {
            out.push('[');
            for (i, value) in elements(v)?.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(value, sort_keys, out)?;
            }
            out.push(']');
        }
        b'"' => out.push_str(&serde_json::to_string(&scalar_text(v)?).ok()?),
        b't' | b'f' | b'n' => out.push_str(raw),
        _ if raw.contains(['.', 'e', 'E']) => match raw.parse::<f64>() {
            Ok(d) if d.is_finite() => out.push_str(&java_double(d)),
            _ => out.push_str(raw),
        },
        _ if raw == "-0" => out.push('0'),
        _ => out.push_str(raw),
    }
    Some(())
}

/// Java's `Double.toString`: shortest round-trip digits, plain notation for
/// 1e-3 <= |d| < 1e7 (always with a fraction digit), otherwise `d.dddE±n`.
pub(super) fn java_double(d: f64) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    let sign = if d < 0.0 { "-" } else { "" };
    let scientific = format!("{:e}", d.abs());
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return d.to_string();
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return d.to_string();
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-3..7).contains(&exponent) {
        if exponent < 0 {
            let zeros = "0".repeat(exponent.unsigned_abs() as usize - 1);
            return format!("{sign}0.{zeros}{digits}");
        }
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            let zeros = "0".repeat(int_len - digits.len());
            return format!("{sign}{digits}{zeros}.0");
        }
        return format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..]);
    }
    let (first, rest) = digits.split_at(1);
    let rest = if rest.is_empty() { "0" } else { rest };
    format!("{sign}{first}.{rest}E{exponent}")
}
