//! A backfill's seal, written once: what its windows wrote becomes one staged version,
//! the partitions it replaces from them and every other from the published version.

use std::collections::BTreeSet;

use super::store::{StoredVersion, TableStore};
use crate::engine::{EngineError, Job, PartitionKey, Partitions, Staged, StepStats, checks};

/// Turns everything `Engine::stage_part` wrote for the job's version into one staged
/// version: the partitions in `replaces` come from it, all others from the published
/// version (by reference). A backfill that wrote nothing keeps the published definition;
/// one that changes the columns is refused (a version replacing some partitions cannot
/// change the schema); partitions of `replaces` that held rows and were not written are
/// `emptied` (the runner's fence refuses them unless asked).
pub async fn seal<S: TableStore + ?Sized>(
    store: &S,
    job: &Job,
    replaces: &Partitions,
) -> Result<Staged, EngineError> {
    checks::backfill_select(job)?;
    let (expected, current) = store.published(job).await?;
    let written = store.parts_written(job).await?;
    let mut version = match (written, &current) {
        (Some(w), _) => w,
        (None, Some(c)) => StoredVersion {
            definition: c.definition.clone(),
            columns: c.columns.clone(),
            partitions: Vec::new(),
        },
        (None, None) => {
            return Err(EngineError::Query(
                "the backfill wrote no rows and the table has never been published".into(),
            ));
        }
    };
    let mut emptied = Vec::new();
    if let Some(c) = current {
        checks::same_columns(&c.columns, &version.columns)?;
        let with_rows: BTreeSet<PartitionKey> =
            version.partitions.iter().filter(|p| p.has_rows()).map(|p| p.values.clone()).collect();
        let (in_range, kept): (Vec<_>, Vec<_>) =
            c.partitions.into_iter().partition(|p| replaces.contains(&p.values));
        emptied = checks::emptied(in_range.iter().map(|p| (p.values.as_slice(), p.has_rows())), &with_rows);
        version.partitions.extend(kept);
    }
    version.partitions.sort_by(|a, b| a.values.cmp(&b.values));
    let rows = version.partitions.iter().filter_map(|p| p.rows).sum();
    store.record_staged(job, version).await?;
    Ok(Staged {
        job: job.clone(),
        expected,
        changed: true,
        stats: StepStats { rows, ..StepStats::default() },
        emptied,
    })
}
