use std::sync::Arc;
use std::path::PathBuf;
use datafusion::arrow::datatypes::SchemaRef;
#[derive(Debug, Default)]
pub struct ReadStats;
impl ReadStats { pub fn compressed_bytes(&self) -> u64 { 0 } pub fn malformed(&self) -> u64 { 0 } }
#[derive(Debug, Clone)]
pub struct ExternalTable { pub columns: SchemaRef, pub partition_columns: Vec<String>, pub location: Option<String> }
pub fn parse_external_table(_ddl: &str) -> Result<ExternalTable, String> { unimplemented!() }
#[derive(Debug)]
pub struct BronzeTable;
impl BronzeTable { pub fn new(_t: &ExternalTable, _d: PathBuf, _q: PathBuf, _s: Arc<ReadStats>) -> datafusion::common::Result<Self> { unimplemented!() } }
#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for BronzeTable {
    fn schema(&self) -> SchemaRef { unimplemented!() }
    fn table_type(&self) -> datafusion::datasource::TableType { unimplemented!() }
    async fn scan(&self, _s: &dyn datafusion::catalog::Session, _p: Option<&Vec<usize>>, _f: &[datafusion::logical_expr::Expr], _l: Option<usize>) -> datafusion::common::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> { unimplemented!() }
}
