//! Trino's `max_by(x, y)` / `min_by(x, y)`: the `x` of the row with the largest
//! (smallest) `y`, ignoring rows where `y` is NULL. Any orderable `y` type is accepted;
//! the partial state is the pair (x, y) so multi-partition plans merge correctly.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, make_comparator};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

pub(super) fn udafs() -> Vec<AggregateUDF> {
    [("max_by", true), ("min_by", false)]
        .into_iter()
        .map(|(name, max)| {
            AggregateUDF::new_from_impl(ByExtreme {
                name,
                max,
                signature: Signature::any(2, Volatility::Immutable),
            })
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ByExtreme {
    name: &'static str,
    max: bool,
    signature: Signature,
}

impl AggregateUDFImpl for ByExtreme {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |suffix: &str, i: usize| {
            let name = format_state_name(args.name, suffix);
            Arc::new(Field::new(name, args.input_fields[i].data_type().clone(), true))
        };
        Ok(vec![field("x", 0), field("y", 1)])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ByAccumulator {
            max: self.max,
            x: ScalarValue::try_from(args.expr_fields[0].data_type())?,
            y: ScalarValue::try_from(args.expr_fields[1].data_type())?,
        }))
    }
}

#[derive(Debug)]
struct ByAccumulator {
    max: bool,
    x: ScalarValue,
    /// NULL until a row with a non-null `y` is seen.
    y: ScalarValue,
}

impl ByAccumulator {
    fn wins(&self, ordering: Ordering) -> bool {
        if self.max { ordering == Ordering::Greater } else { ordering == Ordering::Less }
    }
}

impl Accumulator for ByAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (x, y) = (&values[0], &values[1]);
        let nulls = y.logical_nulls();
        let compare = make_comparator(y.as_ref(), y.as_ref(), SortOptions::default())?;
        let mut best: Option<usize> = None;
        for row in 0..y.len() {
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                continue;
            }
            if best.is_none_or(|b| self.wins(compare(row, b))) {
                best = Some(row);
            }
        }
        let Some(best) = best else {
            return Ok(());
        };
        if !self.y.is_null() {
            let current = self.y.to_array()?;
            let compare = make_comparator(y.as_ref(), current.as_ref(), SortOptions::default())?;
            if !self.wins(compare(best, 0)) {
                return Ok(());
            }
        }
        self.x = ScalarValue::try_from_array(x, best)?;
        self.y = ScalarValue::try_from_array(y, best)?;
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.x.clone(), self.y.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.x.clone())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.x.size() + self.y.size()
    }
}
