//! Decodes one NDJSON line into column builders the way the OpenX JSON SerDe reads
//! it: keys case-insensitive, JSON objects kept as text in string columns, numbers
//! and numeric strings accepted leniently, anything unconvertible rejected.
//!
//! Values are parsed with serde_json straight from the line buffer (no `Value`
//! tree); string columns are taken as `&RawValue` so objects such as `payload`
//! are copied once, into the Arrow buffer.

use std::borrow::Cow;
use std::fmt;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Fields};
use datafusion::arrow::error::ArrowError;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::builders::{ColBuilder, Kind};
use super::convert::{parse_date_days, parse_decimal, parse_timestamp_millis, push_compact_json};

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
        let mut de = serde_json::Deserializer::from_str(line);
        let result = RowSeed { dec: self }.deserialize(&mut de).and_then(|()| de.end());
        match result {
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

struct RowSeed<'a> {
    dec: &'a mut RowDecoder,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let RowDecoder { names, cols, hints, rows, .. } = self.dec;
        let row = *rows;
        let mut k = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
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
                    map.next_value_seed(Val { b, path })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        for b in cols.iter_mut().flatten() {
            if b.len() == row {
                b.append_null();
            }
        }
        Ok(())
    }
}

/// Reads an object key, borrowing it from the line unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Decodes one value into `b`.
struct Val<'a, 'p> {
    b: &'a mut ColBuilder,
    path: Path<'p>,
}

impl<'de> DeserializeSeed<'de> for Val<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let Val { b, path } = self;
        let fail = |m: String| D::Error::custom(format_args!("column {path}: {m}"));
        match &b.kind {
            Kind::Utf8 { .. } => {
                let raw = <&RawValue>::deserialize(d)?;
                push_json_as_string(b, raw.get()).map_err(fail)
            }
            Kind::Decimal { .. } => {
                let raw = <&RawValue>::deserialize(d)?;
                push_decimal(b, raw.get()).map_err(fail)
            }
            Kind::Struct { .. } => d.deserialize_any(StructVisitor { b, path }),
            Kind::Map { .. } => d.deserialize_any(MapVisitor { b, path }),
            Kind::List { .. } => d.deserialize_any(ListVisitor { b, path }),
            _ => {
                let lit = d.deserialize_any(LitVisitor)?;
                push_lit(b, lit).map_err(fail)
            }
        }
    }
}

fn push_json_as_string(b: &mut ColBuilder, raw: &str) -> Result<(), String> {
    let bytes = raw.as_bytes();
    match bytes.first() {
        Some(b'"') => {
            let inner = &bytes[1..bytes.len() - 1];
            if inner.contains(&b'\\') {
                let s: String = serde_json::from_str(raw).map_err(|e| e.to_string())?;
                b.push_str_bytes(s.as_bytes());
            } else {
                b.push_str_bytes(inner);
            }
        }
        Some(b'n') => b.append_null(),
        Some(b'{' | b'[') => b.push_str_with(|data| push_compact_json(data, bytes)),
        // Numbers and booleans keep their JSON text.
        _ => b.push_str_bytes(bytes),
    }
    Ok(())
}

fn push_decimal(b: &mut ColBuilder, raw: &str) -> Result<(), String> {
    let Kind::Decimal { values, precision, scale } = &mut b.kind else {
        unreachable!("push_decimal on a decimal builder")
    };
    let text: Cow<'_, str> = match raw.as_bytes().first() {
        Some(b'n') => {
            b.append_null();
            return Ok(());
        }
        Some(b'"') => Cow::Owned(serde_json::from_str::<String>(raw).map_err(|e| e.to_string())?),
        Some(b'-' | b'0'..=b'9') => Cow::Borrowed(raw),
        _ => return Err(format!("cannot convert {raw} to decimal({precision},{scale})")),
    };
    values.push(parse_decimal(&text, *precision, *scale)?);
    b.push_valid();
    Ok(())
}

/// A scalar JSON value (objects and arrays are skipped and only named).
enum Lit<'de> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Cow<'de, str>),
    Object,
    Array,
}

impl fmt::Display for Lit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Null => f.write_str("null"),
            Lit::Bool(v) => write!(f, "boolean {v}"),
            Lit::I64(v) => write!(f, "number {v}"),
            Lit::U64(v) => write!(f, "number {v}"),
            Lit::F64(v) => write!(f, "number {v}"),
            Lit::Str(s) => write!(f, "string {s:?}"),
            Lit::Object => f.write_str("an object"),
            Lit::Array => f.write_str("an array"),
        }
    }
}

struct LitVisitor;

impl<'de> Visitor<'de> for LitVisitor {
    type Value = Lit<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Lit<'de>, E> {
        Ok(Lit::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Lit<'de>, E> {
        Ok(Lit::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Lit<'de>, E> {
        Ok(Lit::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Lit<'de>, E> {
        Ok(Lit::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Lit<'de>, E> {
        Ok(Lit::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Lit<'de>, E> {
        Ok(Lit::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Lit<'de>, E> {
        Ok(Lit::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lit<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lit::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lit<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lit::Array)
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    t.parse::<i64>().ok().or_else(|| t.parse::<f64>().ok().and_then(integral))
}

fn integral(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

fn hive_type(dt: &DataType) -> String {
    match dt {
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        other => other.to_string(),
    }
}

/// Converts a scalar into the builder's type, or says why it cannot.
fn push_lit(b: &mut ColBuilder, lit: Lit<'_>) -> Result<(), String> {
    if let Lit::Null = lit {
        b.append_null();
        return Ok(());
    }
    let ok = match (&mut b.kind, &lit) {
        (Kind::Int { values, min, max }, l) => {
            let v = match l {
                Lit::I64(v) => Some(*v),
                Lit::U64(v) => i64::try_from(*v).ok(),
                Lit::F64(f) => integral(*f),
                Lit::Str(s) => parse_int(s),
                _ => None,
            };
            v.filter(|v| (*min..=*max).contains(v)).map(|v| values.push(v)).is_some()
        }
        (Kind::Float(values), l) => {
            let v = match l {
                Lit::I64(v) => Some(*v as f64),
                Lit::U64(v) => Some(*v as f64),
                Lit::F64(v) => Some(*v),
                Lit::Str(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            v.map(|v| values.push(v)).is_some()
        }
        (Kind::Bool(values), l) => {
            let v = match l {
                Lit::Bool(v) => Some(*v),
                Lit::Str(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
                Lit::Str(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            };
            v.map(|v| values.push(v)).is_some()
        }
        (Kind::Date(values), Lit::Str(s)) => parse_date_days(s).map(|v| values.push(v)).is_some(),
        (Kind::Timestamp(values), l) => {
            let v = match l {
                Lit::Str(s) => parse_timestamp_millis(s),
                Lit::I64(v) => Some(*v),
                Lit::U64(v) => i64::try_from(*v).ok(),
                Lit::F64(f) => integral(*f),
                _ => None,
            };
            v.map(|v| values.push(v)).is_some()
        }
        (Kind::Utf8 { offsets, data }, Lit::Str(s)) => {
            data.extend_from_slice(s.as_bytes());
            offsets.push(data.len() as i32);
            true
        }
        _ => false,
    };
    if ok {
        b.push_valid();
        Ok(())
    } else {
        Err(format!("cannot convert {lit} to {}", hive_type(&b.data_type)))
    }
}

struct StructVisitor<'a, 'p> {
    b: &'a mut ColBuilder,
    path: Path<'p>,
}

impl<'de> Visitor<'de> for StructVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object for struct column {}", self.path)
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.b.append_null();
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let row = self.b.len();
        let Kind::Struct { names, children, .. } = &mut self.b.kind else {
            unreachable!("StructVisitor on a struct builder")
        };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match names.iter().position(|n| same_name(n, &key)) {
                Some(i) => {
                    let c = &mut children[i];
                    if c.len() > row {
                        c.truncate(row);
                    }
                    let path = Path { name: &names[i], parent: Some(&self.path) };
                    map.next_value_seed(Val { b: c, path })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        for c in children.iter_mut() {
            if c.len() == row {
                c.append_null();
            }
        }
        self.b.push_valid();
        Ok(())
    }
}

struct MapVisitor<'a, 'p> {
    b: &'a mut ColBuilder,
    path: Path<'p>,
}

impl<'de> Visitor<'de> for MapVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object for map column {}", self.path)
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.b.append_null();
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Kind::Map { offsets, keys, values, .. } = &mut self.b.kind else {
            unreachable!("MapVisitor on a map builder")
        };
        let path = Path { name: "value", parent: Some(&self.path) };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            push_lit(keys, Lit::Str(key))
                .map_err(|m| A::Error::custom(format_args!("column {}: key {m}", self.path)))?;
            map.next_value_seed(Val { b: values, path })?;
        }
        offsets.push(keys.len() as i32);
        self.b.push_valid();
        Ok(())
    }
}

struct ListVisitor<'a, 'p> {
    b: &'a mut ColBuilder,
    path: Path<'p>,
}

impl<'de> Visitor<'de> for ListVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array for array column {}", self.path)
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.b.append_null();
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Kind::List { offsets, child, .. } = &mut self.b.kind else {
            unreachable!("ListVisitor on a list builder")
        };
        let path = Path { name: "item", parent: Some(&self.path) };
        while seq.next_element_seed(Val { b: child, path })?.is_some() {}
        offsets.push(child.len() as i32);
        self.b.push_valid();
        Ok(())
    }
}
