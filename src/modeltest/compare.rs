//! Comparing what a model produced with what a test expects: only the columns an expected
//! row names, values compared by the column's type (numbers by value, timestamps by the
//! instant, the string "NULL" as SQL NULL), rows as a multiset unless order is asked for.

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};

use super::spec::{Mode, Row};

/// A value, as compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i128),
    Float(f64),
    Bool(bool),
    /// Milliseconds since the epoch.
    Time(i64),
    Text(String),
}

impl Cell {
    fn same(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Float(a), Cell::Float(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            (Cell::Float(a), Cell::Int(b)) | (Cell::Int(b), Cell::Float(a)) => (a - *b as f64).abs() <= 1e-9,
            (a, b) => a == b,
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => write!(f, "NULL"),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Float(x) => write!(f, "{x}"),
            Cell::Bool(b) => write!(f, "{b}"),
            Cell::Time(ms) => {
                let t = chrono::DateTime::from_timestamp_millis(*ms).unwrap_or_default();
                write!(f, "\"{}\"", t.format("%Y-%m-%d %H:%M:%S%.3f"))
            }
            Cell::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// The model's output: column names and, per column, its values.
pub struct Output {
    pub columns: Vec<(String, DataType)>,
    pub rows: Vec<Vec<Cell>>,
}

fn cells(a: &ArrayRef) -> Result<Vec<Cell>, String> {
    let as_type = |t: &DataType| cast(a, t).map_err(|e| e.to_string());
    let out = match a.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let c = as_type(&DataType::Int64)?;
            let c = c.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().expect("cast to Int64");
            (0..c.len())
                .map(|i| if c.is_null(i) { Cell::Null } else { Cell::Int(c.value(i).into()) })
                .collect()
        }
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            let c = as_type(&DataType::Float64)?;
            let c =
                c.as_any().downcast_ref::<datafusion::arrow::array::Float64Array>().expect("cast to Float64");
            (0..c.len()).map(|i| if c.is_null(i) { Cell::Null } else { Cell::Float(c.value(i)) }).collect()
        }
        DataType::Boolean => {
            let c =
                a.as_any().downcast_ref::<datafusion::arrow::array::BooleanArray>().expect("a boolean array");
            (0..c.len()).map(|i| if c.is_null(i) { Cell::Null } else { Cell::Bool(c.value(i)) }).collect()
        }
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            let c = as_type(&DataType::Timestamp(TimeUnit::Millisecond, None))?;
            let c = c
                .as_any()
                .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>()
                .expect("cast to timestamps");
            (0..c.len()).map(|i| if c.is_null(i) { Cell::Null } else { Cell::Time(c.value(i)) }).collect()
        }
        _ => {
            let c = as_type(&DataType::Utf8)?;
            let c = c.as_any().downcast_ref::<datafusion::arrow::array::StringArray>().expect("cast to text");
            (0..c.len())
                .map(|i| if c.is_null(i) { Cell::Null } else { Cell::Text(c.value(i).to_string()) })
                .collect()
        }
    };
    Ok(out)
}

impl Output {
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self, String> {
        let Some(first) = batches.first() else { return Ok(Self { columns: Vec::new(), rows: Vec::new() }) };
        let columns: Vec<(String, DataType)> =
            first.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let mut rows = Vec::new();
        for b in batches {
            let cols: Vec<Vec<Cell>> = b.columns().iter().map(cells).collect::<Result<_, _>>()?;
            for r in 0..b.num_rows() {
                rows.push(cols.iter().map(|c| c[r].clone()).collect());
            }
        }
        Ok(Self { columns, rows })
    }
}

/// An expected value as a cell of the column's type, or why it cannot be one.
fn expected(value: &toml::Value, ty: &DataType) -> Result<Cell, String> {
    use toml::Value as V;
    if matches!(value, V::String(s) if s == "NULL") {
        return Ok(Cell::Null);
    }
    let text = match value {
        V::String(s) => s.clone(),
        V::Datetime(d) => d.to_string(),
        V::Integer(i) => i.to_string(),
        V::Float(f) => f.to_string(),
        V::Boolean(b) => b.to_string(),
        other => return Err(format!("{other} cannot be compared with a {ty} column")),
    };
    let bad = || format!("'{text}' is not a value of a {ty} column");
    Ok(match ty {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Cell::Int(text.parse().map_err(|_| bad())?),
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Cell::Float(text.parse().map_err(|_| bad())?),
        DataType::Boolean => Cell::Bool(text.parse().map_err(|_| bad())?),
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            Cell::Time(parse_time(&text).ok_or_else(bad)?.timestamp_millis())
        }
        _ => Cell::Text(text),
    })
}

/// A timestamp as written in a test: RFC 3339, or `YYYY-MM-DD[ HH:MM[:SS[.fff]]]`.
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    crate::clock::parse_instant(s)
}

/// What differs between the expected and the produced rows, as lines to print; empty when
/// the test passes. Problems of the test itself (a column the model does not have, a value
/// of the wrong type) are `Err`, with the line.
pub fn diff(expect: &[Row], mode: Mode, ordered: bool, out: &Output) -> Result<Vec<String>, (usize, String)> {
    // Expected rows as (line, [(column index, cell)]).
    let mut wanted = Vec::new();
    for row in expect {
        let mut cells = Vec::new();
        for (name, value) in &row.values {
            let Some(i) = out.columns.iter().position(|(c, _)| c.eq_ignore_ascii_case(name)) else {
                let have: Vec<&str> = out.columns.iter().map(|(c, _)| c.as_str()).collect();
                return Err((
                    row.line,
                    format!("the model has no column '{name}' (it has: {})", have.join(", ")),
                ));
            };
            cells.push((
                i,
                expected(value, &out.columns[i].1).map_err(|e| (row.line, format!("{name}: {e}")))?,
            ));
        }
        wanted.push((row.line, cells));
    }
    let matches = |w: &[(usize, Cell)], got: &[Cell]| w.iter().all(|(i, c)| c.same(&got[*i]));
    let show = |w: &[(usize, Cell)], got: &[Cell]| -> String {
        let parts: Vec<String> =
            w.iter().map(|(i, _)| format!("{} = {}", out.columns[*i].0, got[*i])).collect();
        format!("{{ {} }}", parts.join(", "))
    };
    let show_expected = |w: &[(usize, Cell)]| -> String {
        let parts: Vec<String> = w.iter().map(|(i, c)| format!("{} = {c}", out.columns[*i].0)).collect();
        format!("{{ {} }}", parts.join(", "))
    };
    let mut lines = Vec::new();
    if ordered {
        for (k, (line, w)) in wanted.iter().enumerate() {
            match out.rows.get(k) {
                Some(got) if matches(w, got) => {}
                Some(got) => lines.push(format!(
                    "row {} (line {line}): expected {}, got {}",
                    k + 1,
                    show_expected(w),
                    show(w, got)
                )),
                None => lines.push(format!(
                    "row {} (line {line}): expected {}, got no row",
                    k + 1,
                    show_expected(w)
                )),
            }
        }
        if mode == Mode::All && out.rows.len() > wanted.len() {
            let names: Vec<(usize, Cell)> = wanted.first().map(|(_, w)| w.clone()).unwrap_or_default();
            for (k, got) in out.rows.iter().enumerate().skip(wanted.len()) {
                lines.push(format!("row {}: unexpected {}", k + 1, show(&names, got)));
            }
        }
        return Ok(lines);
    }
    // As a multiset: each expected row takes one produced row that matches it.
    let mut taken = vec![false; out.rows.len()];
    let mut missing = Vec::new();
    for (line, w) in &wanted {
        match (0..out.rows.len()).find(|r| !taken[*r] && matches(w, &out.rows[*r])) {
            Some(r) => taken[r] = true,
            None => missing.push((*line, w.clone())),
        }
    }
    let unexpected: Vec<usize> =
        if mode == Mode::All { (0..out.rows.len()).filter(|r| !taken[*r]).collect() } else { Vec::new() };
    // The columns any expected row names, to show unexpected rows by.
    let mut named: Vec<usize> = wanted.iter().flat_map(|(_, w)| w.iter().map(|(i, _)| *i)).collect();
    named.sort_unstable();
    named.dedup();
    let named: Vec<(usize, Cell)> = named.into_iter().map(|i| (i, Cell::Null)).collect();
    for (line, w) in &missing {
        lines.push(format!("missing (line {line}): {}", show_expected(w)));
        // The closest produced row, and how it differs.
        let closest = unexpected
            .iter()
            .chain(
                if mode == Mode::Contains { (0..out.rows.len()).collect::<Vec<_>>() } else { Vec::new() }
                    .iter(),
            )
            .copied()
            .max_by_key(|r| w.iter().filter(|(i, c)| c.same(&out.rows[*r][*i])).count());
        if let Some(r) = closest {
            let differs: Vec<String> = w
                .iter()
                .filter(|(i, c)| !c.same(&out.rows[r][*i]))
                .map(|(i, c)| format!("{}: expected {c}, got {}", out.columns[*i].0, out.rows[r][*i]))
                .collect();
            if differs.len() < w.len() {
                lines.push(format!("    closest produced row differs in {}", differs.join("; ")));
            }
        }
    }
    for r in unexpected {
        lines.push(format!("unexpected: {}", show(&named, &out.rows[r])));
    }
    Ok(lines)
}
