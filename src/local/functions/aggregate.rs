//! Trino aggregates DataFusion lacks: `count_if(boolean)` (with a grouped accumulator,
//! as it is common in GROUP BY models) and `arbitrary(x)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

pub(super) fn udafs() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(CountIf {
            signature: Signature::exact(vec![DataType::Boolean], Volatility::Immutable),
        }),
        AggregateUDF::new_from_impl(Arbitrary { signature: Signature::any(1, Volatility::Immutable) }),
    ]
}

/// `count_if(boolean) -> bigint`: rows where the argument is true; 0 for no rows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CountIf {
    signature: Signature,
}

impl AggregateUDFImpl for CountIf {
    fn name(&self) -> &str {
        "count_if"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let name = format_state_name(args.name, "count_if");
        Ok(vec![Arc::new(Field::new(name, DataType::Int64, false))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CountIfAccumulator { count: 0 }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(CountIfGroups { counts: Vec::new() }))
    }
}

#[derive(Debug)]
struct CountIfAccumulator {
    count: i64,
}

impl Accumulator for CountIfAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count += values[0].as_boolean().true_count() as i64;
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count -= values[0].as_boolean().true_count() as i64;
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.count += states[0].as_primitive::<Int64Type>().iter().flatten().sum::<i64>();
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.count))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.count)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// Whether row `row` passes the aggregate's `FILTER` clause.
fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// Whether row `row` of the argument is true (NULL counts as false).
fn is_true(values: &BooleanArray, row: usize) -> bool {
    values.is_valid(row) && values.value(row)
}

/// `count_if` for many groups at once: one counter per group.
struct CountIfGroups {
    counts: Vec<i64>,
}

impl GroupsAccumulator for CountIfGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.counts.resize(total_num_groups, 0);
        let values = values[0].as_boolean();
        for (row, &group) in group_indices.iter().enumerate() {
            if is_true(values, row) && passes(opt_filter, row) {
                self.counts[group] += 1;
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.counts.resize(total_num_groups, 0);
        let partial = values[0].as_primitive::<Int64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if partial.is_valid(row) {
                self.counts[group] += partial.value(row);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(emit_to.take_needed(&mut self.counts))))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = values[0].as_boolean();
        let counts: Int64Array = (0..values.len())
            .map(|row| i64::from(is_true(values, row) && passes(opt_filter, row)))
            .map(Some)
            .collect();
        Ok(vec![Arc::new(counts)])
    }

    fn size(&self) -> usize {
        self.counts.capacity() * size_of::<i64>()
    }
}

/// `arbitrary(x)`: some non-null value of the group (the first one seen), NULL if none.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Arbitrary {
    signature: Signature,
}

impl AggregateUDFImpl for Arbitrary {
    fn name(&self) -> &str {
        "arbitrary"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let name = format_state_name(args.name, "arbitrary");
        Ok(vec![Arc::new(Field::new(name, args.return_type().clone(), true))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ArbitraryAccumulator { value: ScalarValue::try_from(args.return_type())? }))
    }
}

#[derive(Debug)]
struct ArbitraryAccumulator {
    /// NULL until a non-null value is seen.
    value: ScalarValue,
}

impl Accumulator for ArbitraryAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if !self.value.is_null() {
            return Ok(());
        }
        let values = &values[0];
        let nulls = values.logical_nulls();
        let first = (0..values.len()).find(|&row| nulls.as_ref().is_none_or(|n| n.is_valid(row)));
        if let Some(row) = first {
            self.value = ScalarValue::try_from_array(values, row)?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.value.size()
    }
}
