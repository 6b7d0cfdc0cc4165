//! The local engine as a table store (`materialize::store::TableStore`): versions are
//! catalog records, a partition is its Parquet files under the lake, and the token a
//! publish swaps on is the current version's id.

use async_trait::async_trait;

use super::catalog::{DataFile, Manifest, Partition, Version};
use super::table::{schema_from_bytes, schema_to_bytes};
use super::{LocalEngine, columns_of, query_err, write};
use crate::engine::{EngineError, Job, SwapToken, checks};
use crate::materialize::layered::{Current, LayeredStore, Layout};
use crate::materialize::store::{StoredPartition, StoredVersion, TableStore, VersionOf};

/// A partition as the policy sees it.
pub(super) fn stored_partition(p: Partition) -> StoredPartition<Vec<DataFile>> {
    StoredPartition { rows: Some(p.files.iter().map(|f| f.rows).sum()), values: p.values, handle: p.files }
}

/// The partition the policy saw.
pub(super) fn partition(p: StoredPartition<Vec<DataFile>>) -> Partition {
    Partition { values: p.values, files: p.handle }
}

/// A version's schema (an Arrow IPC stream) and manifest, as the policy sees them.
fn stored(schema: &[u8], manifest: Manifest) -> Result<VersionOf<LocalEngine>, EngineError> {
    let columns = columns_of(&*schema_from_bytes(schema).map_err(query_err)?);
    let partitions = manifest
        .partitions
        .into_iter()
        .map(|p| StoredPartition {
            rows: Some(p.files.iter().map(|f| f.rows).sum()),
            values: p.values,
            handle: p.files,
        })
        .collect();
    Ok(StoredVersion { definition: schema.to_vec(), columns, partitions })
}

/// The job's version directory, relative to the lake.
fn version_dir(job: &Job) -> String {
    format!("{}/{}/{}", job.model.layer.as_str(), job.table, job.version)
}

#[async_trait]
impl TableStore for LocalEngine {
    type Definition = Vec<u8>;
    type Partition = Vec<DataFile>;

    async fn published(
        &self,
        job: &Job,
    ) -> Result<(Option<SwapToken>, Option<VersionOf<Self>>), EngineError> {
        let Some(head) = self.catalog.head(&job.database, &job.table)? else { return Ok((None, None)) };
        let current = self.catalog.version(&job.database, &job.table, &head.current)?;
        Ok((Some(SwapToken::new(head.current)), Some(stored(&current.schema, current.manifest)?)))
    }

    async fn parts_written(&self, job: &Job) -> Result<Option<VersionOf<Self>>, EngineError> {
        let partition_by = checks::backfill_select(job)?.partition_by;
        let manifest =
            write::list_manifest(&self.root, &version_dir(job), partition_by).map_err(query_err)?;
        // The schema comes from the files written: data columns, then the partition columns.
        let Some(first) = manifest.partitions.first().and_then(|p| p.files.first()) else { return Ok(None) };
        let at = self.root.join(&first.path);
        let file = std::fs::File::open(&at)
            .map_err(|e| EngineError::io(format!("{}: {e}", at.display())).caused_by(e))?;
        let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| EngineError::io(format!("{}: {e}", at.display())).caused_by(e))?;
        let mut fields: Vec<_> = reader.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(partition_by.iter().map(|p| {
            datafusion::arrow::datatypes::Field::new(p, datafusion::arrow::datatypes::DataType::Utf8, true)
        }));
        let schema = schema_to_bytes(&datafusion::arrow::datatypes::Schema::new(fields));
        stored(&schema, manifest).map(Some)
    }

    async fn record_staged(&self, job: &Job, version: VersionOf<Self>) -> Result<(), EngineError> {
        let partition_by = checks::backfill_select(job)?.partition_by;
        let manifest = Manifest {
            partition_columns: partition_by.to_vec(),
            partitions: version
                .partitions
                .into_iter()
                .map(|p| Partition { values: p.values, files: p.handle })
                .collect(),
        };
        let version = Version {
            version: job.version.clone(),
            kind: "managed".into(),
            location: version_dir(job),
            ddl: String::new(),
            schema: version.definition,
            manifest,
            run_id: job.run_id.clone(),
            created_at: crate::clock::stamp(job.now),
            layered: None,
        };
        Ok(self.catalog.stage(&job.database, &job.table, &version)?)
    }
}

#[async_trait]
impl LayeredStore for LocalEngine {
    async fn current_layered(&self, job: &Job) -> Result<Option<Current<Vec<DataFile>>>, EngineError> {
        let Some(head) = self.catalog.head(&job.database, &job.table)? else { return Ok(None) };
        let current = self.catalog.version(&job.database, &job.table, &head.current)?;
        let columns = columns_of(&*schema_from_bytes(&current.schema).map_err(query_err)?);
        // A layered version's manifest is its base before `from`, then its own partitions.
        let layout = current.layered.map(|l| Layout { base: l.base, from: l.from });
        let partitions = current
            .manifest
            .partitions
            .into_iter()
            .filter(|p| layout.as_ref().is_none_or(|l| p.values >= l.from))
            .map(stored_partition)
            .collect();
        Ok(Some(Current { version: head.current, columns, layout, partitions }))
    }

    async fn base_partitions(
        &self,
        job: &Job,
        base: &str,
        before: &[String],
    ) -> Result<Vec<StoredPartition<Vec<DataFile>>>, EngineError> {
        let parts = self.catalog.base_partitions(&job.database, &job.table, base, before)?;
        Ok(parts.into_iter().map(stored_partition).collect())
    }
}
