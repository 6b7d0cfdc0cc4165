//! Decodes one NDJSON line into column builders the way the OpenX JSON SerDe reads
//! it: keys case-insensitive, JSON objects kept as (compact) text in string
//! columns, numbers and numeric strings accepted leniently, anything that does not
//! convert to its column's type rejected. Values go straight from the line into
//! the builders; nothing is materialised for fields no column wants.

use std::fmt;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Fields};
use datafusion::arrow::error::ArrowError;

use super::builders::{ColBuilder, Kind};
use super::convert::{hive_type, push_compact_json, push_lit};
use super::json::{JResult, JsonError, Lit, Scanner};

/// Where a value sits in the record (`device.os`), rendered only for errors.
#[derive(Clone, Copy)]
struct Path<'a> {
    name: &'a str,
    parent: Option<&'a Path<'a>>,
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            write!(f, "{p}.")?;
        }
        f.write_str(self.name)
    }
}

/// Turns lines into rows of the table's data columns.
pub(crate) struct RowDecoder {
    /// Lower-cased top-level column names.
    names: Vec<Box<str>>,
    /// One builder per column; `None` for string columns that are not projected
    /// (any JSON value converts to a string, so they only need a syntax check).
    cols: Vec<Option<ColBuilder>>,
    projected: Vec<bool>,
    /// For the n-th key of the previous line: the key and the column it matched.
    hints: Vec<(Box<str>, Option<usize>)>,
    rows: usize,
}

impl RowDecoder {
    /// A decoder for `fields`; `projected[i]` says whether column i is returned
    /// (every column is still validated, so the same lines are malformed whatever
    /// the projection).
    pub(crate) fn new(fields: &Fields, projected: &[bool]) -> Result<Self, String> {
        let cols = fields
            .iter()
            .zip(projected)
            .map(|(f, &p)| {
                if !p && *f.data_type() == DataType::Utf8 {
                    Ok(None)
                } else {
                    ColBuilder::new(f.data_type()).map(Some)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(RowDecoder {
            names: fields.iter().map(|f| f.name().to_lowercase().into()).collect(),
            cols,
            projected: projected.to_vec(),
            hints: Vec::new(),
            rows: 0,
        })
    }

    /// Rows decoded since the last [`RowDecoder::finish`].
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes one line; on error nothing of the line is kept and the message says why.
    pub(crate) fn decode(&mut self, line: &str) -> Result<(), String> {
        let row = self.rows;
        let mut sc = Scanner::new(line);
        match self.row(&mut sc) {
            Ok(()) => {
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                for c in self.cols.iter_mut().flatten() {
                    c.truncate(row);
                }
                Err(e.to_string())
            }
        }
    }

    fn row(&mut self, sc: &mut Scanner<'_>) -> JResult<()> {
        sc.skip_ws();
        match sc.peek() {
            Some(b'{') => sc.enter()?,
            _ => {
                let lit = sc.lit()?;
                return Err(JsonError { msg: format!("expected a JSON object, found {lit}"), pos: 0 });
            }
        }
        let row = self.rows;
        let RowDecoder { names, cols, hints, .. } = self;
        sc.skip_ws();
        if sc.peek() == Some(b'}') {
            sc.i += 1;
        } else {
            let mut k = 0;
            loop {
                let key = sc.key()?;
                sc.expect(b':', "`:`")?;
                let idx = match hints.get(k) {
                    Some((hint, idx)) if **hint == *key => *idx,
                    _ => {
                        let idx = names.iter().position(|n| same_name(n, &key));
                        let entry = (Box::from(&*key), idx);
                        if k < hints.len() {
                            hints[k] = entry;
                        } else {
                            hints.push(entry);
                        }
                        idx
                    }
                };
                k += 1;
                match idx.and_then(|i| cols[i].as_mut().map(|b| (i, b))) {
                    Some((i, b)) => {
                        if b.len() > row {
                            // Duplicate key: the last occurrence wins.
                            b.truncate(row);
                        }
                        let path = Path { name: &names[i], parent: None };
                        value(sc, b, path)?;
                    }
                    None => sc.skip_value(&mut true)?,
                }
                if !sc.more(b'}', "an object")? {
                    break;
                }
            }
        }
        sc.leave();
        sc.skip_ws();
        if !sc.at_end() {
            return sc.error("trailing characters");
        }
        for b in cols.iter_mut().flatten() {
            if b.len() == row {
                b.append_null();
            }
        }
        Ok(())
    }

    /// The arrays of the columns `indices` (projected ones) for the rows so far;
    /// resets the decoder for the next batch.
    pub(crate) fn finish(&mut self, indices: &[usize]) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            match self.cols[i].as_mut() {
                Some(b) => out.push(b.finish()?),
                None => {
                    return Err(ArrowError::InvalidArgumentError(format!(
                        "column {} was not projected",
                        self.names[i]
                    )));
                }
            }
        }
        for (c, projected) in self.cols.iter_mut().zip(&self.projected) {
            if let (Some(c), false) = (c, projected) {
                c.truncate(0);
            }
        }
        self.rows = 0;
        Ok(out)
    }
}

fn same_name(name: &str, key: &str) -> bool {
    name.len() == key.len() && name.eq_ignore_ascii_case(key)
}

/// Decodes the value at the cursor into `b`.
fn value(sc: &mut Scanner<'_>, b: &mut ColBuilder, path: Path<'_>) -> JResult<()> {
    sc.skip_ws();
    let at = sc.i;
    let fail = |msg: String| JsonError { msg: format!("column {path}: {msg}"), pos: at };
    let next = sc.peek();
    match (&b.kind, next) {
        (Kind::Utf8 { .. }, _) => string_value(sc, b),
        (Kind::Struct { .. }, Some(b'{')) => struct_value(sc, b, path),
        (Kind::Map { .. }, Some(b'{')) => map_value(sc, b, path),
        (Kind::List { .. }, Some(b'[')) => list_value(sc, b, path),
        (Kind::Struct { .. } | Kind::Map { .. } | Kind::List { .. }, _) => match sc.lit()? {
            Lit::Null => {
                b.append_null();
                Ok(())
            }
            lit => Err(fail(format!("cannot convert {lit} to {}", hive_type(&b.data_type)))),
        },
        _ => {
            let lit = sc.lit()?;
            push_lit(b, lit).map_err(fail)
        }
    }
}

/// Any JSON value into a string column: strings unescaped, objects and arrays as
/// compact JSON text, numbers and booleans as written.
fn string_value(sc: &mut Scanner<'_>, b: &mut ColBuilder) -> JResult<()> {
    match sc.peek() {
        Some(b'"') => {
            let s = sc.string()?;
            b.push_str_bytes(s.as_bytes());
        }
        Some(b'{' | b'[') => {
            let start = sc.i;
            let mut compact = true;
            sc.skip_value(&mut compact)?;
            let raw = sc.slice(start, sc.i).as_bytes();
            if compact {
                b.push_str_bytes(raw);
            } else {
                b.push_str_with(|data| push_compact_json(data, raw));
            }
        }
        _ => match sc.lit()? {
            Lit::Null => b.append_null(),
            Lit::Bool(v) => b.push_str_bytes(if v { b"true" } else { b"false" }),
            Lit::Num(text, _) => b.push_str_bytes(text.as_bytes()),
            Lit::Str(s) => b.push_str_bytes(s.as_bytes()),
            Lit::Object | Lit::Array => unreachable!("handled above"),
        },
    }
    Ok(())
}

fn struct_value(sc: &mut Scanner<'_>, b: &mut ColBuilder, path: Path<'_>) -> JResult<()> {
    let row = b.len();
    let Kind::Struct { names, children, .. } = &mut b.kind else {
        unreachable!("struct_value on a struct builder")
    };
    sc.enter()?;
    sc.skip_ws();
    if sc.peek() == Some(b'}') {
        sc.i += 1;
    } else {
        loop {
            let key = sc.key()?;
            sc.expect(b':', "`:`")?;
            match names.iter().position(|n| same_name(n, &key)) {
                Some(i) => {
                    let c = &mut children[i];
                    if c.len() > row {
                        c.truncate(row);
                    }
                    let child_path = Path { name: &names[i], parent: Some(&path) };
                    value(sc, c, child_path)?;
                }
                None => sc.skip_value(&mut true)?,
            }
            if !sc.more(b'}', "an object")? {
                break;
            }
        }
    }
    sc.leave();
    for c in children.iter_mut() {
        if c.len() == row {
            c.append_null();
        }
    }
    b.push_valid();
    Ok(())
}

fn map_value(sc: &mut Scanner<'_>, b: &mut ColBuilder, path: Path<'_>) -> JResult<()> {
    let Kind::Map { offsets, keys, values, .. } = &mut b.kind else {
        unreachable!("map_value on a map builder")
    };
    let value_path = Path { name: "value", parent: Some(&path) };
    sc.enter()?;
    sc.skip_ws();
    if sc.peek() == Some(b'}') {
        sc.i += 1;
    } else {
        loop {
            sc.skip_ws();
            let at = sc.i;
            let key = sc.key()?;
            push_lit(keys, Lit::Str(key))
                .map_err(|m| JsonError { msg: format!("column {path}: key {m}"), pos: at })?;
            sc.expect(b':', "`:`")?;
            value(sc, values, value_path)?;
            if !sc.more(b'}', "an object")? {
                break;
            }
        }
    }
    sc.leave();
    offsets.push(keys.len() as i32);
    b.push_valid();
    Ok(())
}

fn list_value(sc: &mut Scanner<'_>, b: &mut ColBuilder, path: Path<'_>) -> JResult<()> {
    let Kind::List { offsets, child, .. } = &mut b.kind else { unreachable!("list_value on a list builder") };
    let item_path = Path { name: "item", parent: Some(&path) };
    sc.enter()?;
    sc.skip_ws();
    if sc.peek() == Some(b']') {
        sc.i += 1;
    } else {
        loop {
            value(sc, child, item_path)?;
            if !sc.more(b']', "an array")? {
                break;
            }
        }
    }
    sc.leave();
    offsets.push(child.len() as i32);
    b.push_valid();
    Ok(())
}
