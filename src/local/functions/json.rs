//! Trino's legacy JSON functions over JSON held as varchar text: `json_extract_scalar`,
//! `json_extract`, `json_parse` and `json_format`.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ColumnarValue;
use serde_json::value::RawValue;

use super::json_text::{navigate, parse_path, scalar_text, scalar_text_of, write};

mod members;
use super::{SpecCache, StrArg};

/// `json_extract_scalar(json, path)` when `scalar`, else `json_extract(json, path)`.
///
/// Invalid JSON, a missing key or index, and (for the scalar form) objects, arrays and
/// JSON null give NULL, as does (for `json_extract`) a value nested deeper than
/// `bronze::MAX_JSON_DEPTH`; an invalid path is an error. Documents of any depth are read.
pub(super) fn extract(
    json: &ColumnarValue,
    path: &ColumnarValue,
    rows: usize,
    scalar: bool,
) -> Result<ArrayRef> {
    let name = if scalar { "json_extract_scalar" } else { "json_extract" };
    let docs = StrArg::new(json, name)?;
    let paths = StrArg::new(path, name)?;
    let mut cache = SpecCache::new();
    if let Some(p) = paths.literal() {
        cache.get(p, |p| parse_path(name, p))?;
    }
    let mut out = StringBuilder::with_capacity(rows, rows * 16);
    // `json_extract_scalar(col, '$.key')` over a column: each document is parsed once for
    // all the keys a query extracts from it (see `members`).
    if scalar
        && let (ColumnarValue::Array(array), Some(p)) = (json, paths.literal())
        && let [key] = cache.get(p, |p| parse_path(name, p))?.as_slice()
        && let StrArg::Array(docs) = &docs
    {
        members::with_members(array, docs, |m: &members::View<'_>| {
            for row in 0..rows {
                match m.row(row) {
                    members::Row::Null => out.append_null(),
                    members::Row::Object(doc, found) => match found.lookup(doc, key) {
                        Some(raw) => out.append_option(scalar_text_of(raw)),
                        None => out.append_null(),
                    },
                    members::Row::Other(doc) => {
                        out.append_option(navigate(doc, std::slice::from_ref(key)).and_then(scalar_text))
                    }
                }
            }
        });
        return Ok(Arc::new(out.finish()));
    }
    let mut text = String::new();
    for row in 0..rows {
        let (Some(doc), Some(p)) = (docs.get(row), paths.get(row)) else {
            out.append_null();
            continue;
        };
        let path = cache.get(p, |p| parse_path(name, p))?;
        let Some(value) = navigate(doc, path) else {
            out.append_null();
            continue;
        };
        if scalar {
            out.append_option(scalar_text(value));
        } else {
            text.clear();
            match write(value, false, &mut text) {
                Some(()) => out.append_value(&text),
                None => out.append_null(),
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// The path of `json_extract_scalar(x, path)` when it names one member (`$.key`), else
/// `None` (an invalid path included: the function itself reports it).
pub(crate) fn one_key_path(path: &str) -> Option<String> {
    let mut keys = parse_path("json_extract_scalar", path).ok()?;
    (keys.len() == 1).then(|| keys.remove(0))
}

/// `json_extract_scalar(doc, '$.key')` of one document, as [`extract`] gives it.
pub(crate) fn extract_scalar_key<'a>(doc: &'a str, key: &String) -> Option<Cow<'a, str>> {
    navigate(doc, std::slice::from_ref(key)).and_then(scalar_text)
}

/// `json_extract_scalar` of a member's raw JSON text (a string unescaped, a number or
/// boolean as written, NULL for null, objects and arrays), as [`extract`] gives it.
pub(crate) fn scalar_of_raw(raw: &str) -> Option<Cow<'_, str>> {
    scalar_text_of(raw)
}

/// `json_parse(varchar)`: validates and returns the canonical compact text (object keys
/// sorted); text that is not JSON is an error, as in Trino.
pub(super) fn parse(text: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    const NAME: &str = "json_parse";
    let texts = StrArg::new(text, NAME)?;
    let mut out = StringBuilder::with_capacity(rows, rows * 16);
    let mut canonical = String::new();
    for row in 0..rows {
        let Some(s) = texts.get(row) else {
            out.append_null();
            continue;
        };
        canonical.clear();
        let written = serde_json::from_str::<&RawValue>(s).ok().and_then(|v| write(v, true, &mut canonical));
        if written.is_none() {
            return exec_err!("{NAME}: cannot convert value to json: '{s}'");
        }
        out.append_value(&canonical);
    }
    Ok(Arc::new(out.finish()))
}

/// `json_format(json)`: JSON values are already text here, so this is the identity.
pub(super) fn format(json: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    json.to_array(rows)
}
