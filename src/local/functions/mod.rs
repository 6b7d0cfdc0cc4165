//! Trino function pack: the Trino/Athena functions that DataFusion lacks or names
//! differently, registered on a session so Athena models run unchanged locally.
//!
//! Every scalar function is one [`TrinoUdf`] whose [`Kind`] picks the coercion, return
//! type and kernel from the submodules; the aggregates live in `aggregate` and `max_by`.

mod aggregate;
mod datetime;
mod interval;
mod iso8601;
mod json;
pub(crate) use json::{extract_scalar_key, one_key_path, scalar_of_raw};
mod json_text;
mod max_by;
mod mysql_format;
mod mysql_parse;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers Trino functions that DataFusion lacks or names differently, so that a
/// model written for Athena runs unchanged on the local engine.
pub fn register(ctx: &SessionContext) {
    register_scalars(ctx);
    for udaf in aggregate::udafs().into_iter().chain(max_by::udafs()) {
        ctx.register_udaf(udaf);
    }
}

fn register_scalars(ctx: &SessionContext) {
    const KINDS: [(&str, Kind); 10] = [
        ("json_extract_scalar", Kind::JsonExtractScalar),
        ("json_extract", Kind::JsonExtract),
        ("json_parse", Kind::JsonParse),
        ("json_format", Kind::JsonFormat),
        ("date_format", Kind::DateFormat),
        ("date_parse", Kind::DateParse),
        ("date_add", Kind::DateAdd),
        ("date_diff", Kind::DateDiff),
        ("from_iso8601_timestamp", Kind::FromIso8601Timestamp),
        ("to_iso8601", Kind::ToIso8601),
    ];
    for (name, kind) in KINDS {
        ctx.register_udf(ScalarUDF::new_from_impl(TrinoUdf {
            name,
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}

/// Which Trino scalar function a [`TrinoUdf`] implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    JsonExtractScalar,
    JsonExtract,
    JsonParse,
    JsonFormat,
    DateFormat,
    DateParse,
    DateAdd,
    DateDiff,
    FromIso8601Timestamp,
    ToIso8601,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TrinoUdf {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for TrinoUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name;
        match self.kind {
            Kind::JsonExtractScalar | Kind::JsonExtract => strings(name, types, 2),
            Kind::JsonParse | Kind::JsonFormat | Kind::FromIso8601Timestamp => strings(name, types, 1),
            Kind::DateParse => strings(name, types, 2),
            Kind::DateFormat => {
                arity(name, types, 2)?;
                Ok(vec![datetime::coerce_timestamp(name, &types[0])?, string(name, &types[1])?])
            }
            Kind::ToIso8601 => {
                arity(name, types, 1)?;
                Ok(vec![datetime::coerce_temporal(name, &types[0])?])
            }
            Kind::DateAdd => interval::coerce_date_add(types),
            Kind::DateDiff => interval::coerce_date_diff(types),
        }
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::DateParse | Kind::FromIso8601Timestamp => datetime::TIMESTAMP_MS,
            Kind::DateAdd => match types.get(2) {
                Some(t) => t.clone(),
                None => return plan_err!("date_add: expected 3 arguments, got {}", types.len()),
            },
            Kind::DateDiff => DataType::Int64,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let a = &args.args;
        let out = match self.kind {
            Kind::JsonExtractScalar => json::extract(&a[0], &a[1], rows, true)?,
            Kind::JsonExtract => json::extract(&a[0], &a[1], rows, false)?,
            Kind::JsonParse => json::parse(&a[0], rows)?,
            Kind::JsonFormat => json::format(&a[0], rows)?,
            Kind::DateFormat => mysql_format::date_format(&a[0], &a[1], rows)?,
            Kind::DateParse => mysql_format::date_parse(&a[0], &a[1], rows)?,
            Kind::DateAdd => interval::date_add(&a[0], &a[1], &a[2], rows)?,
            Kind::DateDiff => interval::date_diff(&a[0], &a[1], &a[2], rows)?,
            Kind::FromIso8601Timestamp => iso8601::from_iso8601_timestamp(&a[0], rows)?,
            Kind::ToIso8601 => iso8601::to_iso8601(&a[0], rows)?,
        };
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn arity(name: &str, types: &[DataType], n: usize) -> Result<()> {
    if types.len() == n { Ok(()) } else { plan_err!("{name}: expected {n} argument(s), got {}", types.len()) }
}

/// Coerces a varchar argument to `Utf8`.
fn string(name: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Ok(DataType::Utf8),
        DataType::Dictionary(_, values) => string(name, values),
        other => plan_err!("{name}: expected a varchar argument, got {other}"),
    }
}

fn strings(name: &str, types: &[DataType], n: usize) -> Result<Vec<DataType>> {
    arity(name, types, n)?;
    types.iter().map(|t| string(name, t)).collect()
}

/// A varchar argument, coerced to `Utf8`: a literal (the usual case for formats, paths
/// and units) or a column.
pub(crate) enum StrArg<'a> {
    Scalar(Option<&'a str>),
    Array(&'a StringArray),
}

impl<'a> StrArg<'a> {
    pub(crate) fn new(value: &'a ColumnarValue, name: &str) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(ScalarValue::Null) => Ok(Self::Scalar(None)),
            ColumnarValue::Scalar(s) => match s.try_as_str() {
                Some(v) => Ok(Self::Scalar(v)),
                None => exec_err!("{name}: expected a varchar argument, got {}", s.data_type()),
            },
            ColumnarValue::Array(a) => match a.as_string_opt::<i32>() {
                Some(a) => Ok(Self::Array(a)),
                None => exec_err!("{name}: expected a varchar argument, got {}", a.data_type()),
            },
        }
    }

    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Self::Scalar(v) => *v,
            Self::Array(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }

    /// The literal value, when the argument is a literal.
    pub(crate) fn literal(&self) -> Option<&'a str> {
        match self {
            Self::Scalar(v) => *v,
            Self::Array(_) => None,
        }
    }
}

/// Remembers the last parsed format/path/unit so a literal is parsed once per batch
/// and a column of repeated values is not re-parsed row by row.
pub(crate) struct SpecCache<T> {
    last: Option<(String, T)>,
}

impl<T> SpecCache<T> {
    pub(crate) fn new() -> Self {
        Self { last: None }
    }

    pub(crate) fn get(&mut self, key: &str, parse: impl FnOnce(&str) -> Result<T>) -> Result<&T> {
        if self.last.as_ref().is_none_or(|(k, _)| k != key) {
            self.last = Some((key.to_owned(), parse(key)?));
        }
        match &self.last {
            Some((_, v)) => Ok(v),
            None => exec_err!("internal error: empty spec cache"),
        }
    }
}
