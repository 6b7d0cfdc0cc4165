//! Athena as a table store (`materialize::store::TableStore`): a version is a Glue table
//! over its own S3 prefix, a partition is a Glue partition (wherever its location is: a
//! version reads an older one's by reference), and the token a publish swaps on is the
//! view's Glue `VersionId`.

use async_trait::async_trait;
use aws_sdk_glue::types::{Partition, StorageDescriptor, Table};

use super::glue::as_input;
use super::*;
use crate::engine::{EngineError, Job, SwapToken, checks};
use crate::materialize::layered::{Current, LayeredStore, Layout};
use crate::materialize::store::{StoredPartition, StoredVersion, TableStore, VersionOf};

/// A Glue partition as the policy sees it (its rows unknown without reading it).
pub(super) fn stored_partition(p: Partition) -> StoredPartition<Partition> {
    StoredPartition { values: p.values().to_vec(), rows: None, handle: p }
}

/// The storage descriptor of `template` (a version table) at another location: a partition
/// of it, or a version sealed from its windows.
pub(super) fn at_location(template: &Table, location: &str) -> Option<StorageDescriptor> {
    template.storage_descriptor().map(|sd| {
        StorageDescriptor::builder()
            .set_columns(Some(sd.columns().to_vec()))
            .location(location)
            .set_input_format(sd.input_format().map(str::to_string))
            .set_output_format(sd.output_format().map(str::to_string))
            .set_serde_info(sd.serde_info().cloned())
            .set_compressed(Some(sd.compressed()))
            .build()
    })
}

fn stored(table: Table, partitions: Vec<Partition>) -> VersionOf<AthenaEngine> {
    let columns = columns_of(&table);
    let partitions = partitions.into_iter().map(stored_partition).collect();
    StoredVersion { definition: table, columns, partitions }
}

#[async_trait]
impl TableStore for AthenaEngine {
    type Definition = Table;
    type Partition = Partition;

    async fn published(
        &self,
        job: &Job,
    ) -> Result<(Option<SwapToken>, Option<VersionOf<Self>>), EngineError> {
        let view = self.glue.table(&job.database, &job.table).await?;
        let token = view.as_ref().and_then(|t| t.version_id().map(SwapToken::new));
        let Some(current) = self.current_version_table(job, view.as_ref()).await? else {
            return Ok((token, None));
        };
        let mut partitions = self.glue.partitions(&job.database, current.name()).await?;
        // A layered view reads its base before its window, the run table from it.
        if let Some((base, from)) = view.as_ref().and_then(staging::layered) {
            partitions.retain(|p| p.values() >= from.as_slice());
            let mut before: Vec<Partition> = self.glue.partitions(&job.database, &base).await?;
            before.retain(|p| p.values() < from.as_slice());
            before.append(&mut partitions);
            partitions = before;
        }
        Ok((token, Some(stored(current, partitions))))
    }

    /// The windows' tables (`<version table>__p<unit>`), each contributing the partitions
    /// of its own unit.
    async fn parts_written(&self, job: &Job) -> Result<Option<VersionOf<Self>>, EngineError> {
        let name = sql::version_table(job);
        let parts = self.glue.tables_with_prefix(&job.database, &format!("{name}__p")).await?;
        let Some(first) = parts.first() else { return Ok(None) };
        let mut partitions = Vec::new();
        for part in &parts {
            let unit = part.name().rsplit("__p").next().unwrap_or_default();
            partitions.extend(
                self.glue
                    .partitions(&job.database, part.name())
                    .await?
                    .into_iter()
                    .filter(|p| sql::key_suffix(p.values()) == unit),
            );
        }
        Ok(Some(stored(first.clone(), partitions)))
    }

    /// The version table: the definition at the version's location, its windows' tables
    /// named in a parameter (gc deletes them with it), then its partitions from the range's
    /// first one on: the version is published layered from there (`publish`), its base
    /// generation read before it and this table from it, whole.
    async fn record_staged(&self, job: &Job, version: VersionOf<Self>) -> Result<(), EngineError> {
        let from = checks::backfill_select(job)?.window.first().cloned().unwrap_or_default();
        let name = sql::version_table(job);
        let location = sql::version_location(job, &self.storage);
        let template = &version.definition;
        let sd = at_location(template, &location);
        let mut input = as_input(template, &name, [(P_PARTS.to_string(), format!("{name}__p"))].into());
        input.storage_descriptor = sd;
        self.glue.delete_table(&job.database, &name).await?; // an interrupted seal's
        self.glue.swap(&job.database, input, None).await?;
        let partitions: Vec<Partition> =
            version.partitions.into_iter().filter(|p| p.values >= from).map(|p| p.handle).collect();
        self.glue.add_partitions(&job.database, &name, &partitions).await
    }
}

#[async_trait]
impl LayeredStore for AthenaEngine {
    /// The run table the view reads, its own partitions, and the view's layout.
    async fn current_layered(&self, job: &Job) -> Result<Option<Current<Partition>>, EngineError> {
        let view = self.glue.table(&job.database, &job.table).await?;
        let Some(current) = self.current_version_table(job, view.as_ref()).await? else { return Ok(None) };
        let layout = view.as_ref().and_then(staging::layered).map(|(base, from)| Layout { base, from });
        let partitions = self
            .glue
            .partitions(&job.database, current.name())
            .await?
            .into_iter()
            .map(stored_partition)
            .collect();
        let version = view.as_ref().and_then(|v| param(v, P_VERSION)).unwrap_or_default().to_string();
        Ok(Some(Current { version, columns: columns_of(&current), layout, partitions }))
    }

    async fn base_partitions(
        &self,
        job: &Job,
        base: &str,
        before: &[String],
    ) -> Result<Vec<StoredPartition<Partition>>, EngineError> {
        let parts = self.glue.partitions(&job.database, base).await?;
        Ok(parts.into_iter().filter(|p| p.values() < before).map(stored_partition).collect())
    }
}
