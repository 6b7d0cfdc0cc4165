//! A published table version as a DataFusion table: the files its manifest lists, with
//! partition values attached and partitions pruned by the query's filters.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use super::catalog::Manifest;

/// Serializes a schema as an Arrow IPC stream with no batches.
pub fn schema_to_bytes(schema: &Schema) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buf, schema)
        .expect("writing a schema to memory cannot fail");
    w.finish().expect("finishing an in-memory stream cannot fail");
    drop(w);
    buf
}

pub fn schema_from_bytes(bytes: &[u8]) -> Result<SchemaRef> {
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    Ok(reader.schema())
}

/// Which partitions (rows of `values`, one column per partition column) satisfy every
/// filter that only references partition columns. Other filters are ignored here.
pub fn prune(
    state: &dyn Session,
    columns: &[String],
    values: &[Vec<String>],
    filters: &[Expr],
) -> Result<Vec<bool>> {
    let mut keep = vec![true; values.len()];
    if columns.is_empty() || values.is_empty() {
        return Ok(keep);
    }
    let schema = Arc::new(Schema::new(
        columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| Arc::new(StringArray::from_iter_values(values.iter().map(|v| v[i].as_str()))) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    for filter in filters.iter().filter(|f| only_references(f, columns)) {
        let expr = state.create_physical_expr(filter.clone(), &df_schema)?;
        let result = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
        let Some(mask) = result.as_any().downcast_ref::<BooleanArray>() else { continue };
        for (i, k) in keep.iter_mut().enumerate() {
            *k &= mask.is_valid(i) && mask.value(i);
        }
    }
    Ok(keep)
}

/// Splits `items` into at most `n` groups of about equal total size (largest first, each to
/// the lightest group), so parallel scans finish together. Ties keep the input order.
pub fn balance<T>(mut items: Vec<T>, n: usize, size: impl Fn(&T) -> u64) -> Vec<Vec<T>> {
    let n = n.max(1).min(items.len());
    items.sort_by_key(|i| std::cmp::Reverse(size(i)));
    let mut groups: Vec<(u64, Vec<T>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for item in items {
        let g = groups.iter_mut().min_by_key(|(total, _)| *total).expect("n >= 1 when there are items");
        g.0 += size(&item);
        g.1.push(item);
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// True when every column the expression uses is one of `columns`.
pub fn only_references(expr: &Expr, columns: &[String]) -> bool {
    let cols = expr.column_refs();
    !cols.is_empty() && cols.iter().all(|c| columns.iter().any(|p| p == &c.name))
}

/// A table version: data files (paths relative to `root`) grouped by partition.
#[derive(Debug)]
pub struct ManifestTable {
    /// Data columns then partition columns (Utf8).
    schema: SchemaRef,
    file_schema: SchemaRef,
    manifest: Manifest,
    root: PathBuf,
}

impl ManifestTable {
    pub fn new(schema: SchemaRef, manifest: Manifest, root: PathBuf) -> Self {
        let n = schema.fields().len() - manifest.partition_columns.len();
        let file_schema = Arc::new(Schema::new(schema.fields()[..n].to_vec()));
        Self { schema, file_schema, manifest, root }
    }
}

#[async_trait]
impl TableProvider for ManifestTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if only_references(f, &self.manifest.partition_columns) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let values: Vec<Vec<String>> = self.manifest.partitions.iter().map(|p| p.values.clone()).collect();
        let keep = prune(state, &self.manifest.partition_columns, &values, filters)?;
        let mut files: Vec<PartitionedFile> = Vec::new();
        for (partition, _) in self.manifest.partitions.iter().zip(&keep).filter(|(_, k)| **k) {
            for f in &partition.files {
                let path = self.root.join(&f.path);
                files.push(
                    PartitionedFile::new(path.to_string_lossy().trim_start_matches('/').to_string(), f.size)
                        .with_partition_values(
                            partition.values.iter().map(|v| ScalarValue::Utf8(Some(v.clone()))).collect(),
                        ),
                );
            }
        }
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let groups = balance(files, state.config().target_partitions(), |f| f.object_meta.size);
        let partition_fields = self.schema.fields()[self.file_schema.fields().len()..].to_vec();
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(partition_fields)
            .build();
        let source = Arc::new(ParquetSource::new(table_schema));
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
