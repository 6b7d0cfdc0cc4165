//! `BronzeTable`, the DataFusion table provider over a local copy of the Bronze
//! lake: it prunes partition directories with the query's partition filters and
//! plans a parallel scan of the files that remain.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};

use super::ReadStats;
use super::builders::ColBuilder;
use super::ddl::ExternalTable;
use super::exec::BronzeScanExec;
use super::layout::{BronzeFile, Candidate, ColumnSet, Layout, discover};
use super::openx::Options;
use super::projection::Projection;
use super::reader::{OutCol, ScanSpec, quarantine_path};
use chrono::{DateTime, Utc};

/// A Bronze table read from local files laid out like the S3 lake.
#[derive(Debug)]
pub struct BronzeTable {
    table: ExternalTable,
    schema: SchemaRef,
    layout: Layout,
    root_dir: PathBuf,
    quarantine_root: PathBuf,
    stats: Arc<ReadStats>,
    options: Options,
    projection: Option<Projection>,
    now: DateTime<Utc>,
    /// Read only these files (a near-real-time run's new objects), when set.
    only: Option<Arc<std::collections::BTreeSet<PathBuf>>>,
}

impl BronzeTable {
    /// A table over `root_dir`, the local directory standing for the table's
    /// `LOCATION` (the partition directories of `storage.location.template`, or
    /// Hive's `col=value` ones, are below it). Malformed lines are quarantined
    /// below `quarantine_root`; every read is counted in `stats`.
    pub fn new(
        table: &ExternalTable,
        root_dir: PathBuf,
        quarantine_root: PathBuf,
        stats: Arc<ReadStats>,
    ) -> Result<Self> {
        if table.partition_columns.len() > 64 {
            return Err(DataFusionError::NotImplemented("more than 64 partition columns".to_string()));
        }
        for field in table.columns.fields() {
            ColBuilder::new(field.data_type()).map_err(|t| {
                DataFusionError::NotImplemented(format!(
                    "column {} has type {t}, which the Bronze reader cannot decode",
                    field.name()
                ))
            })?;
        }
        let layout = Layout::for_table(table)
            .map_err(|e| DataFusionError::Plan(format!("table {}: storage layout: {e}", table.name)))?;
        let options = Options::from_serde(&table.serde_properties)
            .map_err(|e| DataFusionError::Plan(format!("table {}: {e}", table.name)))?;
        let projection = Projection::for_table(&table.table_properties, &table.partition_columns)
            .map_err(|e| DataFusionError::Plan(format!("table {}: {e}", table.name)))?;
        let mut fields: Vec<Field> = table.columns.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(partition_fields(table));
        Ok(BronzeTable {
            table: table.clone(),
            schema: Arc::new(Schema::new(fields)),
            layout,
            root_dir,
            quarantine_root,
            stats,
            options,
            projection,
            now: crate::clock::Clock::now(&crate::clock::SystemClock),
            only: None,
        })
    }

    /// The instant partition projection's `NOW` stands for (the wall clock by default).
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// The same table, reading only `files` of those its partitions hold.
    pub fn only(mut self, files: std::collections::BTreeSet<PathBuf>) -> Self {
        self.only = Some(Arc::new(files));
        self
    }

    /// The counters every scan of this table adds to.
    pub fn stats(&self) -> &Arc<ReadStats> {
        &self.stats
    }

    /// The parsed DDL this table was built from.
    pub fn external_table(&self) -> &ExternalTable {
        &self.table
    }

    /// The local directory of the table's `LOCATION`.
    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// Where malformed lines of `file` are written (if it has any).
    pub fn quarantine_path(&self, file: &BronzeFile) -> PathBuf {
        quarantine_path(&self.quarantine_root, &file.relative_path)
    }

    /// The files a scan with these `filters` reads, after partition pruning
    /// (filters that do not involve only partition columns are ignored).
    pub fn list_files(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<BronzeFile>> {
        // Reading nothing from a location that is not there would publish empty windows.
        if !self.root_dir.is_dir() {
            return Err(DataFusionError::Plan(format!(
                "table {}: its location {} does not exist (a moved lake, a wrong storage setting, or nothing delivered yet)",
                self.table.name,
                self.root_dir.display()
            )));
        }
        let names: Vec<&str> = self.table.partition_columns.iter().map(String::as_str).collect();
        let part_schema = Arc::new(Schema::new(partition_fields(&self.table)));
        let df_schema = DFSchema::from_unqualified_fields(part_schema.fields().clone(), HashMap::new())?;
        let mut preds: Vec<(Arc<dyn PhysicalExpr>, ColumnSet, bool)> = Vec::new();
        for filter in filters {
            if !expr_applicable_for_cols(&names, filter) {
                continue;
            }
            let exact = exact_on_partitions(filter);
            let filter = unqualify(filter.clone())?;
            let mut mask: ColumnSet = 0;
            for c in filter.column_refs() {
                if let Some(i) = names.iter().position(|n| *n == c.name) {
                    mask |= 1 << i;
                }
            }
            // A filter DataFusion cannot plan here is left to the FilterExec above; one
            // the scan promised to apply exactly must plan.
            match state.create_physical_expr(filter, &df_schema) {
                Ok(p) => preds.push((p, mask, exact)),
                Err(e) if exact => return Err(e),
                Err(_) => {}
            }
        }
        let mut applied = vec![false; preds.len()];
        let mut prune = |cands: &[Candidate], known: ColumnSet| -> io::Result<Vec<bool>> {
            let mut keep = vec![true; cands.len()];
            // Values partition projection never produces are not there for Athena.
            if let Some(projection) = &self.projection {
                for (k, cand) in cands.iter().enumerate() {
                    keep[k] = cand.values.iter().enumerate().all(|(c, v)| {
                        known & (1 << c) == 0
                            || v.as_deref().is_none_or(|v| projection.accepts(c, v, self.now))
                    });
                }
            }
            let ready: Vec<usize> =
                (0..preds.len()).filter(|&i| !applied[i] && preds[i].1 & !known == 0).collect();
            if ready.is_empty() {
                return Ok(keep);
            }
            let batch = partition_batch(&part_schema, cands).map_err(io::Error::other)?;
            for i in ready {
                applied[i] = true;
                // An evaluation error (e.g. a failing cast) prunes nothing, unless the scan
                // promised to apply the filter (it cannot fail on those shapes).
                let result = match preds[i].0.evaluate(&batch).and_then(|v| v.into_array(cands.len())) {
                    Ok(r) => r,
                    Err(e) if preds[i].2 => return Err(io::Error::other(e)),
                    Err(_) => continue,
                };
                if let Some(b) = result.as_boolean_opt() {
                    for (k, keep) in keep.iter_mut().enumerate() {
                        *keep &= b.is_valid(k) && b.value(k);
                    }
                }
            }
            Ok(keep)
        };
        let mut unnamed = Vec::new();
        let mut files = discover(&self.root_dir, &self.layout, names.len(), &mut prune, &mut unnamed)
            .map_err(|e| DataFusionError::Execution(format!("listing {}: {e}", self.root_dir.display())))?;
        // Not read (no S3 key is anything but UTF-8, so Athena never reads it), and said.
        for path in unnamed {
            self.stats.bad_files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let relative = path.strip_prefix(&self.root_dir).unwrap_or(&path).to_string_lossy().into_owned();
            tracing::warn!(file = %relative, "a Bronze entry whose name is not UTF-8 is not read");
            super::reader::quarantine_unnamed(&self.quarantine_root, &relative)
                .map_err(|e| DataFusionError::Execution(format!("quarantine of {relative}: {e}")))?;
        }
        if let Some(only) = &self.only {
            files.retain(|f| only.contains(&f.path));
        }
        Ok(files)
    }

    fn plan_scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        let schema = Arc::new(self.schema.project(projection)?);
        let n_data = self.table.columns.fields().len();
        let output = projection
            .iter()
            .map(|&i| if i < n_data { OutCol::Data(i) } else { OutCol::Partition(i - n_data) })
            .collect();
        let files = self.list_files(state, filters)?;
        let groups = balance(files, state.config().target_partitions());
        let spec = ScanSpec {
            data_fields: self.table.columns.fields().clone(),
            output,
            schema,
            quarantine_root: self.quarantine_root.clone(),
            stats: Arc::clone(&self.stats),
            limit,
            options: self.options.clone(),
            paths: Vec::new(),
            unread: Vec::new(),
        };
        Ok(Arc::new(BronzeScanExec::new(spec, groups)))
    }
}

impl TableProvider for BronzeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    // `TableProvider` is an `#[async_trait]`; this is that macro's expansion,
    // written out since planning the scan needs no `.await`.
    fn scan<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        state: &'life1 dyn Session,
        projection: Option<&'life2 Vec<usize>>,
        filters: &'life3 [Expr],
        limit: Option<usize>,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<dyn ExecutionPlan>>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(self.plan_scan(state, projection, filters, limit)))
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        let names: Vec<&str> = self.table.partition_columns.iter().map(String::as_str).collect();
        Ok(filters
            .iter()
            .map(|f| {
                if !names.is_empty() && expr_applicable_for_cols(&names, f) {
                    if exact_on_partitions(f) {
                        TableProviderFilterPushDown::Exact
                    } else {
                        TableProviderFilterPushDown::Inexact
                    }
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }
}

/// Whether a filter on partition columns is one the listing applies exactly, so no
/// FilterExec needs to test it again row by row: comparisons of a column with a string
/// literal, `IN` lists of them, `IS [NOT] NULL`, and `AND` / `OR` / `NOT` of those (what
/// windows, `env` and event filters render to). Partition values are the same for every
/// row of a directory, and listing evaluates the filter on them with the same expression.
/// Anything else (casts, functions) is re-checked above the scan.
fn exact_on_partitions(e: &Expr) -> bool {
    use datafusion::logical_expr::Operator;
    use datafusion::scalar::ScalarValue;
    let text = |e: &Expr| {
        matches!(
            e,
            Expr::Literal(ScalarValue::Utf8(_) | ScalarValue::LargeUtf8(_) | ScalarValue::Utf8View(_), _)
        )
    };
    let column = |e: &Expr| matches!(e, Expr::Column(_));
    match e {
        Expr::BinaryExpr(b) => match b.op {
            Operator::And | Operator::Or => exact_on_partitions(&b.left) && exact_on_partitions(&b.right),
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => (column(&b.left) && text(&b.right)) || (text(&b.left) && column(&b.right)),
            _ => false,
        },
        Expr::Not(inner) => exact_on_partitions(inner),
        Expr::InList(l) => column(&l.expr) && l.list.iter().all(text),
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => column(inner),
        _ => false,
    }
}

fn partition_fields(table: &ExternalTable) -> Vec<Field> {
    table.partition_columns.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect()
}

/// Drops table qualifiers so filters resolve against the partition-only schema.
fn unqualify(expr: Expr) -> Result<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => {
            Ok(Transformed::yes(Expr::Column(Column::new_unqualified(c.name))))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// One row per candidate directory, one Utf8 column per partition column.
fn partition_batch(schema: &SchemaRef, cands: &[Candidate]) -> Result<RecordBatch> {
    let columns = (0..schema.fields().len())
        .map(|c| {
            Arc::new(StringArray::from_iter(cands.iter().map(|cand| cand.values[c].as_deref()))) as ArrayRef
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(cands.len()));
    Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)?)
}

/// Splits files into at most `n` groups of similar total size (largest first,
/// each to the lightest group); each group is then read in path order.
fn balance(mut files: Vec<BronzeFile>, n: usize) -> Vec<Vec<BronzeFile>> {
    // Path order first so equal sizes balance the same way every time.
    files.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    let mut groups = crate::local::table::balance(files, n, |f| f.size);
    for g in &mut groups {
        g.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    }
    groups
}
