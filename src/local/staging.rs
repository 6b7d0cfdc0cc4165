//! The local engine's staging primitives (`materialize::stage::StagingStore`): a SELECT
//! written as Parquet under the version's directory, a near-real-time source limited to a
//! list of files, a published partition lent by reference (its files in the version's
//! manifest, not copied), and the version recorded in the catalog, staged.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};

use super::bronze::{BronzeTable, ReadStats, parse_external_table};
use super::catalog::{DataFile, Layered, Manifest, Partition, Version};
use super::table::schema_to_bytes;
use super::{LocalEngine, columns_of, depth, local_path, query_err, store, write, written_stats};
use crate::engine::{
    ARRIVALS_FILE, ArrivedSource, EngineError, Job, JobKind, Partitions, StepStats, SwapToken,
};
use crate::materialize::layered::Base;
use crate::materialize::stage::{self, StagingStore};
use crate::materialize::store::{StoredPartition, StoredVersion, VersionOf};

/// The schema a near-real-time run's Bronze source is registered under, limited to the
/// objects it reads.
const ARRIVED: &str = "__arrived";

fn io(at: &Path, e: impl std::error::Error + Send + Sync + 'static) -> EngineError {
    EngineError::io(format!("{}: {e}", at.display())).caused_by(e)
}

impl LocalEngine {
    /// The job's version directory, relative to the lake.
    fn version_dir(job: &Job) -> String {
        format!("{}/{}/{}", job.model.layer.as_str(), job.table, job.version)
    }

    /// The arrived source's Bronze table over its files (all of them).
    fn bronze_source(
        &self,
        job: &Job,
        source: &ArrivedSource,
        stats: &Arc<ReadStats>,
    ) -> Result<BronzeTable, EngineError> {
        let bronze = self.catalog.current(&source.database, &source.table)?.ok_or_else(|| {
            EngineError::Query(format!(
                "{}: its source {}.{} is not published",
                job.model, source.database, source.table
            ))
        })?;
        let table = parse_external_table(&bronze.ddl).map_err(|e| EngineError::Query(e.to_string()))?;
        let dir = if bronze.location.is_empty() {
            local_path(table.location.as_deref().unwrap_or_default())
        } else {
            self.root.join(&bronze.location)
        };
        let quarantine = self.root.join("bronze").join("_bad");
        BronzeTable::new(&table, dir, quarantine, stats.clone()).map_err(query_err)
    }
}

#[async_trait]
impl StagingStore for LocalEngine {
    async fn token(&self, job: &Job) -> Result<Option<SwapToken>, EngineError> {
        Ok(self.catalog.head(&job.database, &job.table)?.map(|h| SwapToken::new(h.current)))
    }

    async fn source_objects(
        &self,
        job: &Job,
        source: &ArrivedSource,
        window: &Partitions,
    ) -> Result<Option<Vec<String>>, EngineError> {
        let (ctx, stats) = self.session();
        let all = self.bronze_source(job, source, &stats)?;
        // The window's partitions, as a filter on the source's partition columns of the same names.
        use datafusion::prelude::{col, lit};
        let JobKind::Select { partition_by, .. } = &job.kind else { return Ok(None) };
        let filter = window
            .iter()
            .map(|values| {
                partition_by
                    .iter()
                    .zip(values)
                    .map(|(c, v)| col(c.as_str()).eq(lit(v.as_str())))
                    .reduce(|a, b| a.and(b))
                    .unwrap_or(lit(true))
            })
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false));
        let files = all.list_files(&ctx.state(), &[filter]).map_err(query_err)?;
        let relative = |p: &Path| p.strip_prefix(&self.root).unwrap_or(p).to_string_lossy().into_owned();
        let mut listed: Vec<String> = files.iter().map(|f| relative(&f.path)).collect();
        listed.sort();
        Ok(Some(listed))
    }

    async fn recorded_objects(
        &self,
        job: &Job,
        version: &str,
    ) -> Result<Option<BTreeSet<String>>, EngineError> {
        let v = self.catalog.version(&job.database, &job.table, version)?;
        Ok(std::fs::read(self.root.join(&v.location).join(ARRIVALS_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Vec<String>>(&bytes).ok())
            .map(|read| read.into_iter().collect()))
    }

    async fn write_select(
        &self,
        job: &Job,
        only: Option<&[String]>,
    ) -> Result<(VersionOf<Self>, StepStats), EngineError> {
        let JobKind::Select { sql, partition_by, compression, .. } = &job.kind else {
            return Err(EngineError::Query(format!(
                "internal error: {} is not a SELECT model (a bug)",
                job.model
            )));
        };
        depth::check(sql)?;
        let (ctx, stats) = self.session();
        // A near-real-time run reads its source through a Bronze table limited to `only`.
        let sql = match (only, &job.arrived) {
            (Some(only), Some(source)) => {
                let files = only.iter().map(|f| self.root.join(f)).collect();
                let limited = self.bronze_source(job, source, &stats)?.only(files);
                let schema = Arc::new(MemorySchemaProvider::new());
                schema.register_table(source.table.clone(), Arc::new(limited)).map_err(query_err)?;
                ctx.catalog("datafusion")
                    .expect("default catalog")
                    .register_schema(ARRIVED, schema)
                    .map_err(query_err)?;
                sql.replace(&source.relation, &format!("\"{ARRIVED}\".\"{}\"", source.table))
            }
            _ => sql.clone(),
        };
        let dir = Self::version_dir(job);
        let (written, _) = write::write_select(&ctx, &sql, &self.root, &dir, partition_by, compression)
            .await
            .map_err(query_err)?;
        let stats = written_stats(&written, &stats);
        let version = StoredVersion {
            definition: schema_to_bytes(&written.schema),
            columns: columns_of(&written.schema),
            partitions: written.manifest.partitions.into_iter().map(store::stored_partition).collect(),
        };
        Ok((version, stats))
    }

    /// The published partition's files join the version's manifest (by reference).
    async fn lend(
        &self,
        _: &Job,
        _: &VersionOf<Self>,
        lent: StoredPartition<Vec<DataFile>>,
        own: Option<StoredPartition<Vec<DataFile>>>,
    ) -> Result<StoredPartition<Vec<DataFile>>, EngineError> {
        let mut files = own.map(|p| p.handle).unwrap_or_default();
        files.extend(lent.handle);
        Ok(store::stored_partition(Partition { values: lent.values, files }))
    }

    async fn record_objects(&self, job: &Job, listed: &[String]) -> Result<(), EngineError> {
        let at = self.root.join(Self::version_dir(job));
        std::fs::create_dir_all(&at).map_err(|e| io(&at, e))?;
        let path = at.join(ARRIVALS_FILE);
        std::fs::write(&path, serde_json::to_vec(listed).expect("strings serialize"))
            .map_err(|e| io(&path, e))
    }

    async fn record_run(
        &self,
        job: &Job,
        version: VersionOf<Self>,
        layered: Option<stage::Layered<Vec<DataFile>>>,
    ) -> Result<(), EngineError> {
        let JobKind::Select { partition_by, .. } = &job.kind else { return Ok(()) };
        let mut partitions: Vec<Partition> = version.partitions.into_iter().map(store::partition).collect();
        let mut new_base = None;
        let layered = layered.map(|l| {
            partitions.extend(l.carried.into_iter().map(store::partition));
            let base = match l.base {
                Base::Current(base) => base,
                Base::New(parts) => {
                    new_base = Some(parts.into_iter().map(store::partition).collect::<Vec<_>>());
                    job.version.clone()
                }
            };
            Layered { base, from: l.from, own: partitions.clone() }
        });
        let record = Version {
            version: job.version.clone(),
            kind: "managed".into(),
            location: Self::version_dir(job),
            ddl: String::new(),
            schema: version.definition,
            manifest: Manifest { partition_columns: partition_by.clone(), partitions },
            run_id: job.run_id.clone(),
            created_at: crate::clock::stamp(job.now),
            layered,
        };
        self.catalog.stage(&job.database, &job.table, &record)?;
        if let Some(parts) = new_base {
            self.catalog.create_base(&job.database, &job.table, &job.version, &parts)?;
        }
        Ok(())
    }
}
