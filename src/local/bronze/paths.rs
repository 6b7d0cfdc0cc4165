//! `json_extract_scalar(payload, '$.key')` computed by the Bronze scan while it reads each
//! line, instead of parsing every payload again in the function.
//!
//! A Silver model reads its payload fields with `json_extract_scalar(e.payload, '$.key')`.
//! The scan already walks each payload object, key by key, to check that it can copy its
//! text as-is (`decode::canonical_value`); the function then parsed that text a second
//! time. [`MembersInBronzeScan`] is a physical optimizer rule: where a projection (with
//! filters, projections and round-robin repartitioning between it and the scan) applies the function to a string column of a
//! [`BronzeScanExec`] with a literal one-member path, the scan returns the member as one
//! more column and the expressions read that column. The value is the function's: taken
//! from the walk when the object is copied as-is (its members are then unique, valid JSON
//! that the function's parser reads the same way), otherwise computed from the column's
//! text by the function's own code. A column read only through such members (the usual `payload`)
//! is returned as NULLs, so its text is no longer copied. Every other use of the function
//! is left as it was.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue};
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning, PhysicalExpr};

use super::exec::BronzeScanExec;
use crate::local::functions;

/// Moves `json_extract_scalar(column, '$.key')` over a Bronze scan's string column into
/// the scan (see the module documentation).
#[derive(Debug, Default)]
pub struct MembersInBronzeScan;

impl PhysicalOptimizerRule for MembersInBronzeScan {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(rewrite).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "members_in_bronze_scan"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// One node between the top projection and the scan, as the rewrite sees it.
enum Step<'a> {
    Filter(&'a FilterExec),
    Projection(&'a ProjectionExec),
    /// Hands its input's batches on unchanged (round-robin repartitioning).
    Pass(&'a Arc<dyn ExecutionPlan>),
}

impl Step<'_> {
    /// The scan column each output column of this step is (`None`: computed), given the
    /// same for its input.
    fn origins(&self, input: &[Option<usize>]) -> Vec<Option<usize>> {
        match self {
            Step::Filter(f) => match f.projection() {
                Some(p) => p.iter().map(|&i| input[i]).collect(),
                None => input.to_vec(),
            },
            Step::Projection(p) => p.expr().iter().map(|e| origin(&e.expr, input)).collect(),
            Step::Pass(_) => input.to_vec(),
        }
    }
}

/// Builds a step again over its rewritten input.
type Rebuild = Box<dyn FnOnce(Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>>>;

/// The scan column `e` is, when it is a column passed through from it.
fn origin(e: &Arc<dyn PhysicalExpr>, input: &[Option<usize>]) -> Option<usize> {
    input[e.downcast_ref::<Column>()?.index()]
}

/// A projection over filters, projections and repartitioning over a Bronze scan, with the
/// members its expressions (and theirs) extract read from the scan.
fn rewrite(node: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    let Some(top) = node.downcast_ref::<ProjectionExec>() else {
        return Ok(Transformed::no(node));
    };
    let mut steps: Vec<Step<'_>> = Vec::new();
    let mut below = top.input();
    let scan = loop {
        if let Some(scan) = below.downcast_ref::<BronzeScanExec>() {
            break scan;
        }
        steps.push(if let Some(f) = below.downcast_ref::<FilterExec>() {
            Step::Filter(f)
        } else if let Some(p) = below.downcast_ref::<ProjectionExec>() {
            Step::Projection(p)
        } else if moves_batches_only(below) {
            Step::Pass(below)
        } else {
            return Ok(Transformed::no(node));
        });
        below = below.children()[0];
    };
    // Bottom-up: for each step's input, which scan column each column is.
    let width = scan.schema().fields().len();
    let mut inputs: Vec<Vec<Option<usize>>> = vec![(0..width).map(Some).collect()];
    for step in steps.iter().rev() {
        let next = step.origins(inputs.last().expect("the scan's columns"));
        inputs.push(next);
    }
    inputs.reverse(); // inputs[0] is the top projection's input, inputs[i + 1] step i's

    // The members the expressions extract, in order of first use.
    let mut members: Vec<(usize, String)> = Vec::new();
    let mut exprs_of = vec![top.expr().iter().map(|p| &p.expr).collect::<Vec<_>>()];
    for step in &steps {
        exprs_of.push(match step {
            Step::Filter(f) => vec![f.predicate()],
            Step::Projection(p) => p.expr().iter().map(|e| &e.expr).collect(),
            Step::Pass(_) => Vec::new(),
        });
    }
    for (exprs, input) in exprs_of.iter().zip(&inputs) {
        for expr in exprs {
            expr.apply(|e| {
                if let Some(m) = member_of(e, input, scan)
                    && !members.contains(&m)
                {
                    members.push(m);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
    }
    if members.is_empty() {
        return Ok(Transformed::no(node));
    }
    let schema = scan.schema();
    let names: Vec<String> = members
        .iter()
        .enumerate()
        // Not a name a query can write: the column exists only below the top projection.
        .map(|(k, (col, key))| format!("json_extract_scalar({}, $.{key}) #{k}", schema.field(*col).name()))
        .collect();

    // Bottom-up again: each step with its members read from the column that carries them
    // (`at[k]` in its input) and the members passed on.
    let replace = |expr: &Arc<dyn PhysicalExpr>, input: &[Option<usize>], at: &[usize]| {
        Arc::clone(expr)
            .transform_down(|e| {
                match member_of(&e, input, scan).and_then(|m| members.iter().position(|n| *n == m)) {
                    Some(k) => {
                        Ok(Transformed::yes(Arc::new(Column::new(&names[k], at[k])) as Arc<dyn PhysicalExpr>))
                    }
                    None => Ok(Transformed::no(e)),
                }
            })
            .map(|t| t.data)
    };
    // What the rewritten expressions still read of each scan column (passing a column
    // on to a step above is not reading it; the top projection's outputs are read).
    let mut read: HashSet<usize> = HashSet::new();
    let mut note_reads = |e: &Arc<dyn PhysicalExpr>, input: &[Option<usize>]| {
        // (Members are read from columns after the input's own: not the scan's columns.)
        read.extend(collect_columns(e).iter().filter_map(|c| input.get(c.index()).copied().flatten()));
    };
    let mut at: Vec<usize> = (width..width + members.len()).collect();
    let mut rebuilt: Vec<Rebuild> = Vec::new();
    for (i, step) in steps.iter().enumerate().rev() {
        let input = &inputs[i + 1];
        match step {
            Step::Filter(f) => {
                let predicate = replace(f.predicate(), input, &at)?;
                note_reads(&predicate, input);
                let projection = f.projection().as_ref().map(|p| {
                    let mut p = p.to_vec();
                    let base = p.len();
                    p.extend(&at);
                    at = (base..base + members.len()).collect();
                    p
                });
                let (selectivity, batch_size, fetch) = (f.default_selectivity(), f.batch_size(), f.fetch());
                rebuilt.push(Box::new(move |input| {
                    let filter = FilterExecBuilder::new(predicate, input)
                        .with_default_selectivity(selectivity)
                        .with_batch_size(batch_size)
                        .with_fetch(fetch)
                        .apply_projection(projection)?
                        .build()?;
                    Ok(Arc::new(filter) as Arc<dyn ExecutionPlan>)
                }));
            }
            Step::Projection(p) => {
                let mut exprs = Vec::with_capacity(p.expr().len() + members.len());
                for e in p.expr() {
                    let expr = replace(&e.expr, input, &at)?;
                    if expr.downcast_ref::<Column>().is_none() {
                        note_reads(&expr, input);
                    }
                    exprs.push(ProjectionExpr { expr, alias: e.alias.clone() });
                }
                let base = exprs.len();
                for (k, name) in names.iter().enumerate() {
                    exprs.push(ProjectionExpr {
                        expr: Arc::new(Column::new(name, at[k])),
                        alias: name.clone(),
                    });
                }
                at = (base..base + members.len()).collect();
                rebuilt.push(Box::new(move |input| {
                    Ok(Arc::new(ProjectionExec::try_new(exprs, input)?) as Arc<dyn ExecutionPlan>)
                }));
            }
            Step::Pass(node) => {
                let node = Arc::clone(node);
                rebuilt.push(Box::new(move |input| {
                    node.replace_children(
                        vec![input],
                        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
                    )
                }));
            }
        }
    }
    let mut exprs = Vec::with_capacity(top.expr().len());
    for e in top.expr() {
        let expr = replace(&e.expr, &inputs[0], &at)?;
        note_reads(&expr, &inputs[0]);
        exprs.push(ProjectionExpr { expr, alias: e.alias.clone() });
    }
    let unread: Vec<usize> = members.iter().map(|m| m.0).filter(|c| !read.contains(c)).collect();
    let specs: Vec<(usize, String, String)> = members
        .iter()
        .zip(&names)
        .map(|((col, key), name)| {
            (scan.string_column(*col).expect("a string column"), key.clone(), name.clone())
        })
        .collect();
    let mut plan: Arc<dyn ExecutionPlan> = Arc::new(scan.with_members(&specs, &unread));
    for build in rebuilt {
        plan = build(plan)?;
    }
    Ok(Transformed::yes(Arc::new(ProjectionExec::try_new(exprs, plan)?)))
}

/// A node that hands its input's batches on, every column as it is: round-robin
/// repartitioning (DataFusion adds it above a scan of one partition).
fn moves_batches_only(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.downcast_ref::<RepartitionExec>()
        .is_some_and(|r| matches!(r.partitioning(), Partitioning::RoundRobinBatch(_)) && !r.preserve_order())
}

/// `(scan column, key)` when `e` is `json_extract_scalar(column, '$.key')` over a column
/// that is one of the scan's string columns (`input`: the scan column each column of the
/// expression's input is).
fn member_of(
    e: &Arc<dyn PhysicalExpr>,
    input: &[Option<usize>],
    scan: &BronzeScanExec,
) -> Option<(usize, String)> {
    let f = e.downcast_ref::<ScalarFunctionExpr>()?;
    if f.name() != "json_extract_scalar" {
        return None;
    }
    let [doc, path] = f.args() else { return None };
    let col = origin(doc, input)?;
    scan.string_column(col)?;
    let path = match path.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(Some(p)) | ScalarValue::LargeUtf8(Some(p)) | ScalarValue::Utf8View(Some(p)) => p,
        _ => return None,
    };
    Some((col, functions::one_key_path(path.as_str())?))
}
