//! Small helpers of the Bronze decoder: JSON compaction and Hive type names for messages.

use datafusion::arrow::datatypes::DataType;

/// Appends the JSON text `raw` (valid, with whitespace outside strings) to `out`
/// in compact form: that whitespace dropped, strings copied as they are.
pub(crate) fn push_compact_json(out: &mut Vec<u8>, raw: &[u8]) {
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

pub(crate) fn hive_type(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 => "string".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Struct(_) => "struct".into(),
        DataType::Map(..) => "map".into(),
        DataType::List(_) => "array".into(),
        other => other.to_string(),
    }
}
