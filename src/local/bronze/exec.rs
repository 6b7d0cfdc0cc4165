//! The physical scan of a Bronze table: one output partition per group of files,
//! each decoded on its own blocking thread so partitions decode in parallel.

use std::fmt;
use std::sync::Arc;

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
use super::reader::{ScanSpec, read_files};

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
}

impl DisplayAs for BronzeScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: usize = self.groups.iter().map(Vec::len).sum();
        let bytes: u64 = self.groups.iter().flatten().map(|f| f.size).sum();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "BronzeScanExec: partitions={}, files={files}, bytes={bytes}", self.groups.len())
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
