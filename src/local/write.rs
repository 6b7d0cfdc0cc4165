//! Runs a model's SELECT on DataFusion and writes the result as a new, never-reused
//! version directory of snappy Parquet, partitioned the way Athena's CTAS would.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::Result;
use datafusion::common::config::TableParquetOptions;
use datafusion::datasource::file_format::format_as_file_type;
use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
use datafusion::logical_expr::{LogicalPlanBuilder, cast, col};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{DataFrame, SessionContext};

use super::catalog::{DataFile, Manifest, Partition};

/// What one write produced.
#[derive(Debug)]
pub struct Written {
    /// Data columns then partition columns, as readers will see them.
    pub schema: SchemaRef,
    pub manifest: Manifest,
    /// Bytes the query read from its inputs.
    pub bytes_read: u64,
}

/// The type a column is stored as: millisecond timestamps (Athena reads Parquet
/// timestamps as milliseconds), plain UTF-8 strings, and partition values as strings.
fn stored_type(t: &DataType, partition: bool) -> DataType {
    match t {
        _ if partition => DataType::Utf8,
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        other => other.clone(),
    }
}

/// Casts the query's output to the stored types and moves nothing: partition columns are
/// already last (the project check enforces it).
fn normalise(df: DataFrame, partition_by: &[String]) -> Result<DataFrame> {
    let exprs: Vec<_> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let partition = partition_by.iter().any(|p| p == f.name());
            let want = stored_type(f.data_type(), partition);
            if &want == f.data_type() { col(f.name()) } else { cast(col(f.name()), want).alias(f.name()) }
        })
        .collect();
    df.select(exprs)
}

/// Executes `sql` and writes its rows under `<root>/<relative_dir>/`.
pub async fn write_select(
    ctx: &SessionContext,
    sql: &str,
    root: &Path,
    relative_dir: &str,
    partition_by: &[String],
    compression: &str,
) -> Result<(Written, Arc<dyn ExecutionPlan>)> {
    let df = normalise(ctx.sql(sql).await?, partition_by)?;
    let out_schema = df.schema().as_arrow().clone();
    let dir = root.join(relative_dir);
    std::fs::create_dir_all(&dir).map_err(at(&dir))?;

    let mut options = TableParquetOptions::default();
    options.global.compression =
        Some(if compression == "none" { "uncompressed".into() } else { compression.into() });
    let file_type = format_as_file_type(Arc::new(ParquetFormatFactory::new_with_options(options)));
    let url = format!("{}/", dir.display());
    let plan = LogicalPlanBuilder::copy_to(
        df.logical_plan().clone(),
        url,
        file_type,
        HashMap::new(),
        partition_by.to_vec(),
    )?
    .build()?;
    let state = ctx.state();
    let physical = state.create_physical_plan(&plan).await?;
    collect(physical.clone(), ctx.task_ctx()).await?;

    // Data columns first, partition columns last, as the files plus directories give them.
    let mut fields: Vec<Field> = out_schema
        .fields()
        .iter()
        .filter(|f| !partition_by.contains(f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(partition_by.iter().map(|p| Field::new(p, DataType::Utf8, true)));
    let schema = Arc::new(Schema::new(fields));
    let manifest = list_manifest(root, relative_dir, partition_by)?;
    let bytes_read = bytes_scanned(physical.as_ref());
    Ok((Written { schema, manifest, bytes_read }, physical))
}

/// An I/O error that names the path it happened at.
fn at(path: &Path) -> impl FnOnce(std::io::Error) -> datafusion::error::DataFusionError + '_ {
    move |e| {
        datafusion::error::DataFusionError::IoError(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    }
}

/// Sums the bytes every scan in the plan read.
pub fn bytes_scanned(plan: &dyn ExecutionPlan) -> u64 {
    let own = plan.metrics().and_then(|m| m.sum_by_name("bytes_scanned")).map_or(0, |v| v.as_usize() as u64);
    own + plan.children().iter().map(|c| bytes_scanned(c.as_ref())).sum::<u64>()
}

/// Lists the Parquet files under a version directory into a manifest.
pub fn list_manifest(root: &Path, relative_dir: &str, partition_by: &[String]) -> Result<Manifest> {
    let mut by_partition: BTreeMap<Vec<String>, Vec<DataFile>> = BTreeMap::new();
    let mut stack = vec![root.join(relative_dir)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(at(&dir))? {
            let path = entry.map_err(at(&dir))?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(['_', '.'])) {
                continue; // work areas (`_parts`), never data
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().to_string();
            let values = partition_values(&path, partition_by);
            let file = std::fs::File::open(&path).map_err(at(&path))?;
            let size = file.metadata().map_err(at(&path))?.len();
            let reader = datafusion::parquet::file::reader::SerializedFileReader::new(file)?;
            use datafusion::parquet::file::reader::FileReader;
            let rows = reader.metadata().file_metadata().num_rows() as u64;
            by_partition.entry(values).or_default().push(DataFile { path: rel, size, rows });
        }
    }
    Ok(Manifest {
        partition_columns: partition_by.to_vec(),
        partitions: by_partition
            .into_iter()
            .map(|(values, mut files)| {
                files.sort_by(|a, b| a.path.cmp(&b.path));
                Partition { values, files }
            })
            .collect(),
    })
}

fn partition_values(path: &Path, partition_by: &[String]) -> Vec<String> {
    let segments: Vec<String> = path
        .parent()
        .map(|p| p.iter().map(|s| s.to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    partition_by
        .iter()
        .map(|col| {
            segments
                .iter()
                .rev()
                .find_map(|s| s.strip_prefix(&format!("{col}=")).map(percent_decode))
                .unwrap_or_default()
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16))
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
