//! Column builders for decoded JSON values. Unlike Arrow's builders they can be
//! truncated, so a line that turns out malformed halfway through is rolled back
//! without staging every value first.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, ListArray, MapArray, StringArray, StructArray, TimestampMillisecondArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, FieldRef, Fields, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// Validity bits that can be truncated and finished into an optional [`NullBuffer`].
#[derive(Debug, Default)]
pub(crate) struct Validity {
    bits: Vec<bool>,
    nulls: usize,
}

impl Validity {
    pub(crate) fn push(&mut self, valid: bool) {
        self.bits.push(valid);
        self.nulls += usize::from(!valid);
    }

    pub(crate) fn len(&self) -> usize {
        self.bits.len()
    }

    fn last(&self) -> Option<bool> {
        self.bits.last().copied()
    }

    fn truncate(&mut self, len: usize) {
        if len < self.bits.len() {
            self.nulls -= self.bits[len..].iter().filter(|v| !**v).count();
            self.bits.truncate(len);
        }
    }

    fn finish(&mut self) -> Option<NullBuffer> {
        let bits = take_sized(&mut self.bits);
        let nulls = std::mem::take(&mut self.nulls);
        if nulls == 0 {
            return None;
        }
        Some(NullBuffer::from(bits))
    }
}

/// What a column builder holds; every variant keeps one validity entry per row.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Utf8: offsets into `data` (starting with 0).
    Utf8 {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    /// Int8/16/32/64, stored widened and range-checked on append.
    Int {
        values: Vec<i64>,
        min: i64,
        max: i64,
    },
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Date(Vec<i32>),
    Timestamp(Vec<i64>),
    Decimal {
        values: Vec<i128>,
        precision: u8,
        scale: i8,
    },
    Struct {
        fields: Fields,
        names: Vec<Box<str>>,
        children: Vec<ColBuilder>,
    },
    Map {
        entries: FieldRef,
        offsets: Vec<i32>,
        keys: Box<ColBuilder>,
        values: Box<ColBuilder>,
    },
    List {
        item: FieldRef,
        offsets: Vec<i32>,
        child: Box<ColBuilder>,
    },
}

/// A growable, truncatable column of one Arrow [`DataType`].
#[derive(Debug)]
pub(crate) struct ColBuilder {
    pub(crate) data_type: DataType,
    pub(crate) kind: Kind,
    pub(crate) valid: Validity,
}

impl ColBuilder {
    /// A builder for `data_type`, or the type's name if the decoder cannot produce it.
    pub(crate) fn new(data_type: &DataType) -> Result<Self, String> {
        let int = |min: i64, max: i64| Kind::Int { values: Vec::new(), min, max };
        let kind = match data_type {
            DataType::Utf8 => Kind::Utf8 { offsets: vec![0], data: Vec::new() },
            DataType::Int8 => int(i8::MIN.into(), i8::MAX.into()),
            DataType::Int16 => int(i16::MIN.into(), i16::MAX.into()),
            DataType::Int32 => int(i32::MIN.into(), i32::MAX.into()),
            DataType::Int64 => int(i64::MIN, i64::MAX),
            DataType::Float32 | DataType::Float64 => Kind::Float(Vec::new()),
            DataType::Boolean => Kind::Bool(Vec::new()),
            DataType::Date32 => Kind::Date(Vec::new()),
            DataType::Timestamp(TimeUnit::Millisecond, None) => Kind::Timestamp(Vec::new()),
            DataType::Decimal128(precision, scale) => {
                Kind::Decimal { values: Vec::new(), precision: *precision, scale: *scale }
            }
            DataType::Struct(fields) => Kind::Struct {
                fields: fields.clone(),
                names: fields.iter().map(|f| f.name().to_lowercase().into()).collect(),
                children: fields.iter().map(|f| ColBuilder::new(f.data_type())).collect::<Result<_, _>>()?,
            },
            DataType::Map(entries, _) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(data_type.to_string());
                };
                if kv.len() != 2 {
                    return Err(data_type.to_string());
                }
                Kind::Map {
                    entries: entries.clone(),
                    offsets: vec![0],
                    keys: Box::new(ColBuilder::new(kv[0].data_type())?),
                    values: Box::new(ColBuilder::new(kv[1].data_type())?),
                }
            }
            DataType::List(item) => Kind::List {
                item: item.clone(),
                offsets: vec![0],
                child: Box::new(ColBuilder::new(item.data_type())?),
            },
            other => return Err(other.to_string()),
        };
        Ok(ColBuilder { data_type: data_type.clone(), kind, valid: Validity::default() })
    }

    pub(crate) fn len(&self) -> usize {
        self.valid.len()
    }

    /// Appends a NULL (for nested types: an empty / all-NULL value marked null).
    pub(crate) fn append_null(&mut self) {
        match &mut self.kind {
            Kind::Utf8 { offsets, .. } | Kind::Map { offsets, .. } | Kind::List { offsets, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0))
            }
            Kind::Int { values, .. } => values.push(0),
            Kind::Float(v) => v.push(0.0),
            Kind::Bool(v) => v.push(false),
            Kind::Date(v) => v.push(0),
            Kind::Timestamp(v) => v.push(0),
            Kind::Decimal { values, .. } => values.push(0),
            Kind::Struct { children, .. } => children.iter_mut().for_each(ColBuilder::append_null),
        }
        self.valid.push(false);
    }

    /// Marks the value just written into the kind's storage as present.
    pub(crate) fn push_valid(&mut self) {
        self.valid.push(true);
    }

    /// Drops every row from `len` on, including nested children and values a row that
    /// failed halfway appended before its own validity bit (so no early return on `len()`).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.valid.truncate(len);
        match &mut self.kind {
            Kind::Utf8 { offsets, data } => {
                let end = len.min(offsets.len() - 1);
                offsets.truncate(end + 1);
                data.truncate(offsets[end] as usize);
            }
            Kind::Int { values, .. } => values.truncate(len),
            Kind::Float(v) => v.truncate(len),
            Kind::Bool(v) => v.truncate(len),
            Kind::Date(v) => v.truncate(len),
            Kind::Timestamp(v) => v.truncate(len),
            Kind::Decimal { values, .. } => values.truncate(len),
            Kind::Struct { children, .. } => children.iter_mut().for_each(|c| c.truncate(len)),
            Kind::Map { offsets, keys, values, .. } => {
                let end = len.min(offsets.len() - 1);
                offsets.truncate(end + 1);
                keys.truncate(offsets[end] as usize);
                values.truncate(offsets[end] as usize);
            }
            Kind::List { offsets, child, .. } => {
                let end = len.min(offsets.len() - 1);
                offsets.truncate(end + 1);
                child.truncate(offsets[end] as usize);
            }
        }
    }

    /// The last value of a string column, unless it is NULL (or there are no rows).
    pub(crate) fn last_str(&self) -> Option<&str> {
        let Kind::Utf8 { offsets, data } = &self.kind else { return None };
        if self.valid.last() != Some(true) {
            return None;
        }
        let [.., start, end] = offsets.as_slice() else { return None };
        std::str::from_utf8(&data[*start as usize..*end as usize]).ok()
    }

    /// Appends a string value (UTF-8 already checked by the caller) into a Utf8 column.
    pub(crate) fn push_str_bytes(&mut self, bytes: &[u8]) {
        if let Kind::Utf8 { offsets, data } = &mut self.kind {
            data.extend_from_slice(bytes);
            offsets.push(data.len() as i32);
            self.valid.push(true);
        }
    }

    /// Appends a string value produced by `write`, which appends its UTF-8 bytes.
    pub(crate) fn push_str_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if let Kind::Utf8 { offsets, data } = &mut self.kind {
            write(data);
            offsets.push(data.len() as i32);
            self.valid.push(true);
        }
    }

    /// Builds the Arrow array of every row appended so far and empties the builder.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let len = self.len();
        let nulls = self.valid.finish();
        let dt = &self.data_type;
        let array: ArrayRef = match &mut self.kind {
            Kind::Utf8 { offsets, data } => {
                let offs = take_offsets(offsets);
                let bytes = take_sized(data);
                Arc::new(StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(offs)),
                    Buffer::from_vec(bytes),
                    nulls,
                )?)
            }
            Kind::Int { values, .. } => {
                let v = take_sized(values);
                match dt {
                    DataType::Int8 => {
                        Arc::new(Int8Array::new(v.into_iter().map(|x| x as i8).collect(), nulls))
                    }
                    DataType::Int16 => {
                        Arc::new(Int16Array::new(v.into_iter().map(|x| x as i16).collect(), nulls))
                    }
                    DataType::Int32 => {
                        Arc::new(Int32Array::new(v.into_iter().map(|x| x as i32).collect(), nulls))
                    }
                    _ => Arc::new(Int64Array::new(v.into(), nulls)),
                }
            }
            Kind::Float(v) => {
                let v = take_sized(v);
                if *dt == DataType::Float32 {
                    Arc::new(Float32Array::new(v.into_iter().map(|x| x as f32).collect(), nulls))
                } else {
                    Arc::new(Float64Array::new(v.into(), nulls))
                }
            }
            Kind::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(take_sized(v)), nulls)),
            Kind::Date(v) => Arc::new(Date32Array::new(take_sized(v).into(), nulls)),
            Kind::Timestamp(v) => Arc::new(TimestampMillisecondArray::new(take_sized(v).into(), nulls)),
            Kind::Decimal { values, precision, scale } => Arc::new(
                Decimal128Array::new(take_sized(values).into(), nulls)
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            Kind::Struct { fields, children, .. } => {
                let arrays = children.iter_mut().map(ColBuilder::finish).collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new_with_length(fields.clone(), arrays, nulls, len)?)
            }
            Kind::Map { entries, offsets, keys, values } => {
                let DataType::Struct(kv) = entries.data_type() else {
                    unreachable!("map entries are a struct (checked in new)")
                };
                let entry_array =
                    StructArray::try_new(kv.clone(), vec![keys.finish()?, values.finish()?], None)?;
                let offs = take_offsets(offsets);
                Arc::new(MapArray::try_new(
                    entries.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offs)),
                    entry_array,
                    nulls,
                    false,
                )?)
            }
            Kind::List { item, offsets, child } => {
                let offs = take_offsets(offsets);
                Arc::new(ListArray::try_new(
                    item.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offs)),
                    child.finish()?,
                    nulls,
                )?)
            }
        };
        Ok(array)
    }
}

/// Takes the values out, leaving room for as many in the next batch (batches are
/// usually alike, so this spares the regrowth copies).
fn take_sized<T>(v: &mut Vec<T>) -> Vec<T> {
    let capacity = v.len();
    std::mem::replace(v, Vec::with_capacity(capacity))
}

/// Like [`take_sized`] for offsets, which always start with 0.
fn take_offsets(v: &mut Vec<i32>) -> Vec<i32> {
    let mut next = Vec::with_capacity(v.len());
    next.push(0);
    std::mem::replace(v, next)
}
