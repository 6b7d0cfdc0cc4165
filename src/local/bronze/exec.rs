//! The physical scan of a Bronze table: one output partition per group of files,
//! each decoded on its own blocking thread so partitions decode in parallel.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};

use super::layout::BronzeFile;
use super::reader::{OutCol, ScanSpec, read_files};

/// Scans groups of Bronze files; output partition `i` reads `groups[i]` in order.
#[derive(Debug)]
pub struct BronzeScanExec {
    spec: Arc<ScanSpec>,
    groups: Vec<Vec<BronzeFile>>,
    properties: Arc<PlanProperties>,
}

impl BronzeScanExec {
    pub(crate) fn new(spec: ScanSpec, mut groups: Vec<Vec<BronzeFile>>) -> Self {
        if groups.is_empty() {
            groups.push(Vec::new());
        }
        let properties = PlanProperties::new(
            EquivalenceProperties::new(spec.schema.clone()),
            Partitioning::UnknownPartitioning(groups.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        BronzeScanExec { spec: Arc::new(spec), groups, properties: Arc::new(properties) }
    }

    /// The files each output partition reads.
    pub fn file_groups(&self) -> &[Vec<BronzeFile>] {
        &self.groups
    }

    /// The data column behind output column `index`, when it is a string column (one
    /// whose members can be returned as columns too).
    pub(crate) fn string_column(&self, index: usize) -> Option<usize> {
        match self.spec.output.get(index)? {
            OutCol::Data(i) if self.spec.data_fields[*i].data_type() == &DataType::Utf8 => Some(*i),
            _ => None,
        }
    }

    /// The same scan returning, after its columns, one string column per `(data column,
    /// key, name)`: `json_extract_scalar(column, '$.key')`, computed while reading. The
    /// output columns `unread` (string columns with members) are all NULL: nothing reads
    /// them but through their members.
    pub(crate) fn with_members(&self, members: &[(usize, String, String)], unread: &[usize]) -> Self {
        let mut spec = ScanSpec::clone(&self.spec);
        for &c in unread {
            if let Some(i) = self.string_column(c)
                && members.iter().any(|m| m.0 == i)
                && !spec.unread.contains(&i)
            {
                spec.unread.push(i);
            }
        }
        let mut fields: Vec<Field> = spec.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (col, key, name) in members {
            spec.output.push(OutCol::Path(spec.paths.len()));
            spec.paths.push((*col, key.clone()));
            fields.push(Field::new(name, DataType::Utf8, true));
        }
        spec.schema = Arc::new(Schema::new_with_metadata(fields, spec.schema.metadata().clone()));
        BronzeScanExec::new(spec, self.groups.clone())
    }
}

impl DisplayAs for BronzeScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: usize = self.groups.iter().map(Vec::len).sum();
        let bytes: u64 = self.groups.iter().flatten().map(|f| f.size).sum();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "BronzeScanExec: partitions={}, files={files}, bytes={bytes}", self.groups.len())?;
                if !self.spec.paths.is_empty() {
                    let members: Vec<String> = self
                        .spec
                        .paths
                        .iter()
                        .map(|(c, k)| format!("{}.{k}", self.spec.data_fields[*c].name()))
                        .collect();
                    write!(f, ", members=[{}]", members.join(", "))?;
                    if !self.spec.unread.is_empty() {
                        let unread: Vec<&str> = self
                            .spec
                            .unread
                            .iter()
                            .map(|c| self.spec.data_fields[*c].name().as_str())
                            .collect();
                        write!(f, ", unread=[{}]", unread.join(", "))?;
                    }
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => write!(f, "files={files}"),
        }
    }
}

impl ExecutionPlan for BronzeScanExec {
    fn name(&self) -> &str {
        "BronzeScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("BronzeScanExec has no children".to_string()))
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let files = self
            .groups
            .get(partition)
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "BronzeScanExec has {} partitions, asked for {partition}",
                    self.groups.len()
                ))
            })?
            .clone();
        let batch_size = context.session_config().batch_size();
        let spec = Arc::clone(&self.spec);
        let mut builder = RecordBatchReceiverStreamBuilder::new(spec.schema.clone(), 2);
        let tx = builder.tx();
        builder.spawn_blocking(move || {
            read_files(&spec, &files, batch_size, &mut |batch| tx.blocking_send(Ok(batch)).is_ok())
        });
        Ok(builder.build())
    }
}
