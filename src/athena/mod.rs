//! The Athena engine: models run as Athena statements, versions are Glue tables, and the
//! published name is switched with one Glue `UpdateTable` guarded by `VersionId`.
//!
//! Layout of a managed model `db.t` (Silver, Gold, ops):
//! - each run writes `s3://<root>/<layer>/t/<version>/` with a CTAS that creates the
//!   version table `db.t__<version>`; an incremental run then registers the partitions it
//!   did not replace, pointing at the older versions' prefixes (nothing is copied);
//! - `db.t` is a view `SELECT * FROM db.t__<version>`; publishing replaces the view with
//!   one compare-and-swap, so readers switch from one complete version to the next;
//! - the view's parameters name the version, its table, the run, and how far its window
//!   reaches (`strata_window_end`): the run state a scheduled tick starts from. Glue keeps
//!   every replaced view as a table version: that is the publish history.
//!
//! Bronze (an external table) is staged as `db.t__<version>` by its DDL and published by
//! copying that definition onto `db.t` with the same compare-and-swap.

pub mod glue;
pub mod query;
pub mod sql;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aws_sdk_glue::types::{Partition, Table};
use chrono::Utc;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use self::glue::{Glue, all_columns, as_input, view_input};
use self::query::{QueryConfig, Statement, Statements, api_message};
use crate::config::{Settings, Storage};
use crate::engine::{Engine, EngineError, Job, JobKind, QueryResult, Staged, StepStats, checks};
use crate::ids::Layer;
use crate::lifecycle::{self, VersionDir};

/// Parameters strata keeps on a published table.
pub const P_VERSION: &str = "strata_version";
pub const P_TABLE: &str = "strata_table";
pub const P_RUN: &str = "strata_run_id";
pub const P_PUBLISHED_AT: &str = "strata_published_at";
pub const P_WINDOW_END: &str = "strata_window_end";
pub const P_DDL: &str = "strata_ddl_hash";
/// On a version table sealed from backfill windows: the prefix of its window tables.
pub const P_PARTS: &str = "strata_window_tables";

/// The AWS clients of the Athena engine.
#[derive(Debug, Clone)]
pub struct Clients {
    pub athena: aws_sdk_athena::Client,
    pub glue: aws_sdk_glue::Client,
    pub s3: aws_sdk_s3::Client,
}

/// The one retry policy of every AWS client strata makes (Athena, Glue, S3, Step
/// Functions): the SDK's standard mode, which retries throttling errors
/// (`ThrottlingException`, `TooManyRequestsException`, `SlowDown`, ...), 5xx responses and
/// timeouts with exponential backoff and full jitter, and resends the same request, so a
/// `StartQueryExecution` keeps its `ClientRequestToken`. Up to 8 attempts, backoff from
/// 200 ms to 20 s: about a minute of sustained throttling before a call fails. Nothing in
/// strata retries an API call on top of it (a FAILED Athena query is another matter: it is
/// run again as a new attempt by `query::Statements::run`).
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(std::time::Duration::from_millis(200))
        .with_max_backoff(std::time::Duration::from_secs(20))
}

impl Clients {
    /// From the standard AWS chain (environment, profile, SSO, ECS task role), with the
    /// region of `[athena] region` when set and [`retry_config`]. With an endpoint
    /// override (`AWS_ENDPOINT_URL`, e.g. a test server), S3 uses path-style addressing.
    pub async fn from_chain(settings: &Settings) -> Self {
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retry_config());
        if let Some(region) = &settings.athena.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &settings.aws_endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        let config = loader.load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(settings.aws_endpoint_url.is_some())
            .build();
        Self {
            athena: aws_sdk_athena::Client::new(&config),
            glue: aws_sdk_glue::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}

/// The Athena engine of one invocation.
#[derive(Debug, Clone)]
pub struct AthenaEngine {
    statements: Statements,
    glue: Glue,
    s3: aws_sdk_s3::Client,
    storage: Storage,
    /// Database of each layer, for queries that name a layer.
    default_database: String,
    /// Whether the workgroup lets a CTAS name its location, asked once per process.
    workgroup_checked: Arc<tokio::sync::OnceCell<Result<(), String>>>,
    /// Run state under the lake's `_strata/state/`, shared by every task.
    state: Arc<dyn crate::state::RunState>,
}

/// What a failed statement leaves behind, to remove before running it again.
#[derive(Debug, Clone, Copy)]
enum Retry<'a> {
    /// Never run again (an INSERT may have written part of its partitions).
    Never,
    /// Nothing to remove (a SELECT).
    Plain,
    /// The table a CREATE made.
    Table(&'a str),
    /// The table a CTAS made and its files (a sub-directory of the version).
    Ctas(&'a str, &'a str),
}

/// `<sub>/<name>`, or `<name>` when `sub` is the version directory itself.
fn sub_dir(sub: &str, name: &str) -> String {
    if sub.is_empty() { name.to_string() } else { format!("{sub}/{name}") }
}

/// A stable hash of a definition, as hex, to tell whether it changed.
fn hash_hex(s: &str) -> String {
    format!("{:032x}", query::fnv128(&[s]))
}

fn param<'a>(t: &'a Table, key: &str) -> Option<&'a str> {
    t.parameters().and_then(|p| p.get(key)).map(String::as_str)
}

impl AthenaEngine {
    pub fn new(clients: Clients, settings: &Settings) -> Result<Self, EngineError> {
        if !matches!(settings.storage, Storage::S3 { .. }) {
            return Err(EngineError::Io(format!(
                "the athena engine needs an s3:// storage root; storage is {}",
                settings.storage.uri("")
            )));
        }
        let a = &settings.athena;
        let config = QueryConfig {
            workgroup: a.workgroup.clone().unwrap_or_else(|| "primary".into()),
            catalog: a.catalog.clone().unwrap_or_else(|| "AwsDataCatalog".into()),
            output_location: a.output_location.clone(),
            max_bytes_scanned: a.max_bytes_scanned_per_run,
            ..QueryConfig::default()
        };
        Ok(Self::with_config(
            clients,
            settings.storage.clone(),
            settings.database(Layer::Silver).into(),
            config,
        ))
    }

    /// An engine with explicit statement settings (tests shorten the backoff).
    pub fn with_config(
        clients: Clients,
        storage: Storage,
        default_database: String,
        config: QueryConfig,
    ) -> Self {
        let state: Arc<dyn crate::state::RunState> = match &storage {
            Storage::S3 { bucket, prefix } => {
                Arc::new(crate::state::S3State::new(clients.s3.clone(), bucket, prefix))
            }
            Storage::Local(_) => {
                panic!("AthenaEngine::with_config needs an s3:// storage root (new() checks it)")
            }
        };
        Self {
            statements: Statements::new(clients.athena, config),
            glue: Glue::new(clients.glue),
            s3: clients.s3,
            storage,
            default_database,
            workgroup_checked: Arc::default(),
            state,
        }
    }

    pub fn glue(&self) -> &Glue {
        &self.glue
    }

    /// Bytes scanned by this invocation so far.
    pub fn scanned(&self) -> u64 {
        self.statements.scanned()
    }

    /// Checks, once per process, that the workgroup lets strata choose where a CTAS writes:
    /// a workgroup that enforces its configuration fails every CTAS that names an
    /// `external_location` (Athena docs, "Troubleshoot workgroup errors"; dbt-athena omits
    /// the location when `is_work_group_output_location_enforced`), and strata needs its
    /// own prefixes for versions, retention and gc.
    async fn check_workgroup(&self) -> Result<(), EngineError> {
        let name = self.statements.config().workgroup.clone();
        let client = self.statements.client().clone();
        let checked = self
            .workgroup_checked
            .get_or_init(|| async move {
                let out = client.get_work_group().work_group(&name).send().await
                    .map_err(|e| format!("Athena GetWorkGroup {name}: {}", api_message(&e)))?;
                let enforced = out
                    .work_group()
                    .and_then(|w| w.configuration())
                    .and_then(|c| c.enforce_work_group_configuration())
                    .unwrap_or(false);
                if enforced {
                    return Err(format!(
                        "the Athena workgroup '{name}' enforces its configuration (EnforceWorkGroupConfiguration, \"Override client-side settings\"): Athena fails every CREATE TABLE AS that names an external_location there, and strata writes each version to its own prefix; turn the setting off for this workgroup (infra/catalog.yaml does) or set [athena] workgroup to one that does not enforce it"
                    ));
                }
                Ok(())
            })
            .await;
        checked.clone().map_err(EngineError::Aws)
    }

    /// Runs statement `index` of a run; `retry` says what a failed attempt leaves behind
    /// that must go before it runs again.
    async fn run_statement(
        &self,
        job: &Job,
        sql: &str,
        index: usize,
        retry: Retry<'_>,
    ) -> Result<query::Finished, EngineError> {
        let model = job.model.to_string();
        let st = Statement::of(job, &model, sql, index);
        self.statements
            .run(&st, || async {
                match retry {
                    Retry::Never => Err(EngineError::Query(format!(
                        "{}: statement {} (an INSERT) failed and may have written part of its partitions; not retried: run the model again",
                        job.model,
                        index + 1
                    ))),
                    Retry::Plain => Ok(()),
                    // A failed CREATE may have left a table, and a CTAS files: the retry
                    // needs both gone. They belong to this version only.
                    Retry::Table(table) => self.glue.delete_table(&job.database, table).await,
                    Retry::Ctas(table, sub) => {
                        self.glue.delete_table(&job.database, table).await?;
                        self.delete_version_objects(job, sub).await.map(drop)
                    }
                }
            })
            .await
    }

    /// Writes the job's result as `target` (`clean` is the target's prefix within the
    /// version directory): one CTAS, or, past 100 partitions, the result once and the table
    /// from it in chunks (also when a `table` model's CTAS finds it has more).
    async fn write_result(
        &self,
        job: &Job,
        target: &sql::Target,
        clean: &str,
    ) -> Result<StepStats, EngineError> {
        self.check_workgroup().await?;
        let chunked = sql::needs_chunks(job);
        match self.try_write(job, target, clean, chunked).await {
            Err(EngineError::Query(e)) if !chunked && e.contains("TOO_MANY_OPEN_PARTITIONS") => {
                tracing::info!(model = %job.model, "more than {} partitions: writing the result once, then the table in chunks", sql::MAX_PARTITIONS_PER_STATEMENT);
                self.glue.delete_table(&job.database, &target.table).await?;
                self.delete_version_objects(job, clean).await?;
                self.try_write(job, target, clean, true).await
            }
            r => r,
        }
    }

    async fn try_write(
        &self,
        job: &Job,
        target: &sql::Target,
        clean: &str,
        chunked: bool,
    ) -> Result<StepStats, EngineError> {
        let mut stats = StepStats::default();
        match sql::staging(job, target, chunked).map_err(EngineError::Query)? {
            sql::Staging::Single(stmt) => {
                let select = matches!(job.kind, JobKind::Select { .. });
                let retry =
                    if select { Retry::Ctas(&target.table, clean) } else { Retry::Table(&target.table) };
                let done = self.run_statement(job, &stmt, 0, retry).await?;
                stats += done.stats;
                if select {
                    stats.rows += self.output_rows(&done.query_id).await;
                }
            }
            sql::Staging::Chunked { write, list } => {
                let (data, temp) = target.chunked();
                let temp_clean = sub_dir(clean, "_result");
                let done = self.run_statement(job, &write, 0, Retry::Ctas(&temp.table, &temp_clean)).await?;
                stats += done.stats;
                let done = self.run_statement(job, &list, 1, Retry::Plain).await?;
                stats += done.stats;
                let (_, rows) = self.statements.rows(&done.query_id, usize::MAX).await?;
                let stmts = sql::chunk_statements(job, &data, &temp, &rows).map_err(EngineError::Query)?;
                let data_clean = sub_dir(clean, "data");
                for (i, stmt) in stmts.iter().enumerate() {
                    let retry = if i == 0 { Retry::Ctas(&data.table, &data_clean) } else { Retry::Never };
                    let done = self.run_statement(job, stmt, 2 + i, retry).await?;
                    stats += done.stats;
                    stats.rows += self.output_rows(&done.query_id).await;
                }
                // The result table served its purpose; the version keeps only its own data.
                self.glue.delete_table(&job.database, &temp.table).await?;
                self.delete_version_objects(job, &temp_clean).await?;
            }
        }
        Ok(stats)
    }

    /// Rows a statement wrote, from its runtime statistics (0 when Athena has none).
    async fn output_rows(&self, id: &str) -> u64 {
        match self.statements.client().get_query_runtime_statistics().query_execution_id(id).send().await {
            Ok(out) => out
                .query_runtime_statistics()
                .and_then(|s| s.rows())
                .and_then(|r| r.output_rows())
                .unwrap_or(0)
                .max(0) as u64,
            Err(e) => {
                tracing::debug!(query_id = id, "GetQueryRuntimeStatistics: {}", api_message(&e));
                0
            }
        }
    }

    fn s3_key(&self, relative: &str) -> (String, String) {
        let Storage::S3 { bucket, prefix } = &self.storage else { unreachable!("checked in new") };
        let key = if prefix.is_empty() { relative.to_string() } else { format!("{prefix}/{relative}") };
        (bucket.clone(), key)
    }

    /// Deletes what a run wrote under its own version directory: all of it (`sub` empty),
    /// a backfill window's `_parts/<unit>`, or a chunked write's `data` / `_result`.
    async fn delete_version_objects(&self, job: &Job, sub: &str) -> Result<u64, EngineError> {
        let dir = VersionDir::checked(job.model.layer, &job.table, &job.version).ok_or_else(|| {
            EngineError::Io(format!("refusing to delete under {}: not a version directory", job.version))
        })?;
        self.delete_under(&dir, sub).await
    }

    /// Deletes every object under `<version dir>/<sub>`, where `sub` is empty or a path of
    /// plain names inside the version directory (`_parts/<unit>`, `data`, `_result`);
    /// nothing outside it can be named.
    async fn delete_under(&self, dir: &VersionDir, sub: &str) -> Result<u64, EngineError> {
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !(sub.is_empty() || sub.split('/').all(plain)) {
            return Err(EngineError::Io(format!(
                "refusing to delete {}/{sub}: not a directory of the version",
                dir.relative()
            )));
        }
        let relative = if sub.is_empty() {
            format!("{}/", dir.relative())
        } else {
            format!("{}/{sub}/", dir.relative())
        };
        let (bucket, prefix) = self.s3_key(&relative);
        let mut freed = 0;
        loop {
            let page =
                self.s3.list_objects_v2().bucket(&bucket).prefix(&prefix).send().await.map_err(|e| {
                    EngineError::Aws(format!("S3 ListObjectsV2 s3://{bucket}/{prefix}: {}", api_message(&e)))
                })?;
            let objects: Vec<_> = page
                .contents()
                .iter()
                .filter_map(|o| {
                    freed += o.size().unwrap_or(0).max(0) as u64;
                    o.key().map(|k| aws_sdk_s3::types::ObjectIdentifier::builder().key(k).build())
                })
                .collect::<Result<_, _>>()
                .map_err(|e| EngineError::Aws(e.to_string()))?;
            if objects.is_empty() {
                return Ok(freed);
            }
            let delete = aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| EngineError::Aws(e.to_string()))?;
            let out = self.s3.delete_objects().bucket(&bucket).delete(delete.clone()).send().await.map_err(
                |e| EngineError::Aws(format!("S3 DeleteObjects s3://{bucket}/{prefix}: {}", api_message(&e))),
            )?;
            if let Some(e) = out.errors().first() {
                return Err(EngineError::Aws(format!(
                    "S3 DeleteObjects {}: {}",
                    e.key().unwrap_or("?"),
                    e.message().unwrap_or("failed")
                )));
            }
        }
    }

    async fn stage_external(&self, job: &Job, ddl: &str) -> Result<Staged, EngineError> {
        let current = self.glue.table(&job.database, &job.table).await?;
        if let Some(t) = &current
            && param(t, P_DDL) == Some(hash_hex(ddl).as_str())
        {
            return Ok(Staged {
                job: job.clone(),
                expected: t.version_id().map(str::to_string),
                changed: false,
                stats: StepStats::default(),
                emptied: Vec::new(),
            });
        }
        let stats = self.write_result(job, &sql::version_target(job, &self.storage), "").await?;
        self.version_table(job).await?;
        Ok(Staged {
            job: job.clone(),
            expected: current.and_then(|t| t.version_id().map(str::to_string)),
            changed: true,
            stats,
            emptied: Vec::new(),
        })
    }

    async fn version_table(&self, job: &Job) -> Result<Table, EngineError> {
        let name = sql::version_table(job);
        self.glue.table(&job.database, &name).await?.ok_or_else(|| {
            EngineError::Aws(format!(
                "{}: Athena reported success but Glue has no table {}.{name}",
                job.model, job.database
            ))
        })
    }

    async fn stage_select(
        &self,
        job: &Job,
        partition_by: &[String],
        replaces: Option<&Vec<Vec<String>>>,
    ) -> Result<Staged, EngineError> {
        let view = self.glue.table(&job.database, &job.table).await?;
        let stats = self.write_result(job, &sql::version_target(job, &self.storage), "").await?;
        let staged = self.version_table(job).await?;
        let name = sql::version_table(job);
        let mut emptied = Vec::new();
        if let Some(window) = replaces {
            let written = self.glue.partitions(&job.database, &name).await?;
            checks::within_window(partition_by, window, written.iter().map(|p| p.values()))?;
            if let Some(current) = self.current_version_table(job, view.as_ref()).await? {
                checks::same_columns(&columns_of(&current), &columns_of(&staged))?;
                let (in_window, kept): (Vec<Partition>, Vec<Partition>) = self
                    .glue
                    .partitions(&job.database, current.name())
                    .await?
                    .into_iter()
                    .partition(|p| window.contains(&p.values().to_vec()));
                // A CTAS registers only partitions it wrote rows to.
                let written: BTreeSet<Vec<String>> = written.iter().map(|p| p.values().to_vec()).collect();
                emptied = checks::emptied(in_window.iter().map(|p| (p.values(), true)), &written);
                self.glue.add_partitions(&job.database, &name, &kept).await?;
            }
        }
        Ok(Staged {
            job: job.clone(),
            expected: view.and_then(|t| t.version_id().map(str::to_string)),
            changed: true,
            stats,
            emptied,
        })
    }

    /// The version table the published view reads.
    async fn current_version_table(
        &self,
        job: &Job,
        view: Option<&Table>,
    ) -> Result<Option<Table>, EngineError> {
        let Some(target) = view.and_then(|v| param(v, P_TABLE)) else { return Ok(None) };
        let t = self.glue.table(&job.database, target).await?;
        if t.is_none() {
            return Err(EngineError::Aws(format!(
                "{}.{} reads {target}, which is not in Glue",
                job.database, job.table
            )));
        }
        Ok(t)
    }

    /// Runs a SELECT and returns its first rows as text.
    async fn select_rows(
        &self,
        job: &Job,
        sql: &str,
        index: usize,
        limit: usize,
    ) -> Result<((Vec<String>, Vec<Vec<Option<String>>>), StepStats), EngineError> {
        let model = job.model.to_string();
        let st = Statement::of(job, &model, sql, index);
        let finished = self.statements.run(&st, || async { Ok(()) }).await?;
        Ok((self.statements.rows(&finished.query_id, limit).await?, finished.stats))
    }

    async fn count(&self, job: &Job, relation: &str, index: usize) -> Result<u64, EngineError> {
        let ((_, rows), _) =
            self.select_rows(job, &format!("SELECT count(*) FROM {relation}"), index, 1).await?;
        rows.first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| EngineError::Query(format!("counting the rows of {relation} returned no number")))
    }
}

/// Audits of a staged version on Athena: statements on the version table, numbered after
/// the staging statements in the run's token sequence (100 + two per audit).
struct AthenaAudits<'a> {
    engine: &'a AthenaEngine,
    job: &'a Job,
}

const AUDIT_STATEMENTS: usize = 100;

#[async_trait::async_trait]
impl checks::AuditTarget for AthenaAudits<'_> {
    fn relation(&self) -> String {
        sql::version_relation(self.job)
    }

    async fn row_counts(&self, index: usize) -> Result<Option<(u64, u64)>, EngineError> {
        let (job, base) = (self.job, AUDIT_STATEMENTS + 2 * index);
        let view = self.engine.glue.table(&job.database, &job.table).await?;
        let Some(current) = self.engine.current_version_table(job, view.as_ref()).await? else {
            return Ok(None);
        };
        let before =
            self.engine.count(job, &format!("\"{}\".\"{}\"", job.database, current.name()), base).await?;
        let after = self.engine.count(job, &self.relation(), base + 1).await?;
        Ok(Some((before, after)))
    }

    async fn sample(&self, _: &str, sql: &str, index: usize) -> Result<Option<String>, EngineError> {
        let ((columns, rows), _) =
            self.engine.select_rows(self.job, sql, AUDIT_STATEMENTS + 2 * index, 5).await?;
        Ok((!rows.is_empty()).then(|| format_sample(&columns, &rows)))
    }
}

/// A table's columns (partition keys last) as (name, type), for [`checks::same_columns`].
fn columns_of(table: &Table) -> Vec<(String, String)> {
    all_columns(table)
        .iter()
        .map(|c| (c.name().to_string(), c.r#type().unwrap_or_default().to_string()))
        .collect()
}

fn format_sample(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header(columns);
    for r in rows {
        t.add_row(r.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())));
    }
    t.to_string()
}

#[async_trait::async_trait]
impl Engine for AthenaEngine {
    async fn stage(&self, job: &Job) -> Result<Staged, EngineError> {
        match &job.kind {
            JobKind::External { ddl } => self.stage_external(job, ddl).await,
            JobKind::Select { partition_by, replaces, .. } => {
                self.stage_select(job, partition_by, replaces.as_ref()).await
            }
        }
    }

    async fn stage_part(&self, job: &Job, keep: &[Vec<String>]) -> Result<StepStats, EngineError> {
        let checks::BackfillSelect { partition_by, window, .. } = checks::backfill_select(job)?;
        if keep.len() != 1 {
            return Err(EngineError::Query(
                "internal error: a backfill window keeps one unit of its partitions (a bug)".into(),
            ));
        }
        // Each window is written as its own table under the version's `_parts/<unit>/`;
        // an interrupted attempt's table and files are removed first.
        let target = sql::part_target(job, &self.storage, keep);
        let name = target.table.clone();
        let sub = format!("_parts/{}", sql::part_suffix(keep));
        self.glue.delete_table(&job.database, &name).await?;
        self.glue.delete_table(&job.database, &target.chunked().1.table).await?;
        self.delete_version_objects(job, &sub).await?;
        let stats = self.write_result(job, &target, &sub).await?;
        let written = self.glue.partitions(&job.database, &name).await?;
        checks::within_window(partition_by, window, written.iter().map(|p| p.values()))?;
        Ok(stats)
    }

    async fn seal(&self, job: &Job, replaces: &[Vec<String>]) -> Result<Staged, EngineError> {
        checks::backfill_select(job)?;
        let name = sql::version_table(job);
        let parts = self.glue.tables_with_prefix(&job.database, &format!("{name}__p")).await?;
        let view = self.glue.table(&job.database, &job.table).await?;
        let current = self.current_version_table(job, view.as_ref()).await?;
        let Some(template) = parts.first().or(current.as_ref()) else {
            return Err(EngineError::Query(
                "the backfill wrote no rows and the table has never been published".into(),
            ));
        };
        if let Some(c) = &current {
            checks::same_columns(&columns_of(c), &columns_of(template))?;
        }
        // The version table: the windows' definition at the version's location, with each
        // window's own unit and, from the current version, every partition not replaced.
        let location = sql::version_location(job, &self.storage);
        let sd = template.storage_descriptor().cloned().map(|sd| {
            aws_sdk_glue::types::StorageDescriptor::builder()
                .set_columns(Some(sd.columns().to_vec()))
                .location(&location)
                .set_input_format(sd.input_format().map(str::to_string))
                .set_output_format(sd.output_format().map(str::to_string))
                .set_serde_info(sd.serde_info().cloned())
                .set_compressed(Some(sd.compressed()))
                .build()
        });
        let mut input = as_input(template, &name, [(P_PARTS.to_string(), format!("{name}__p"))].into());
        input.storage_descriptor = sd;
        self.glue.delete_table(&job.database, &name).await?; // an interrupted seal's
        self.glue.swap(&job.database, input, None).await?;
        let mut partitions = Vec::new();
        for part in &parts {
            let unit = part.name().rsplit("__p").next().unwrap_or_default();
            partitions.extend(
                self.glue
                    .partitions(&job.database, part.name())
                    .await?
                    .into_iter()
                    .filter(|p| sql::part_suffix(&[p.values().to_vec()]) == unit),
            );
        }
        let mut emptied = Vec::new();
        if let Some(c) = &current {
            let written: BTreeSet<Vec<String>> = partitions.iter().map(|p| p.values().to_vec()).collect();
            let (in_range, kept): (Vec<Partition>, Vec<Partition>) = self
                .glue
                .partitions(&job.database, c.name())
                .await?
                .into_iter()
                .partition(|p| replaces.contains(&p.values().to_vec()));
            emptied = in_range.iter().map(|p| p.values().to_vec()).filter(|v| !written.contains(v)).collect();
            partitions.extend(kept);
        }
        self.glue.add_partitions(&job.database, &name, &partitions).await?;
        Ok(Staged {
            job: job.clone(),
            expected: view.and_then(|t| t.version_id().map(str::to_string)),
            changed: true,
            stats: StepStats::default(),
            emptied,
        })
    }

    async fn audit(&self, staged: &Staged) -> Result<(), EngineError> {
        checks::run_audits(staged, &AthenaAudits { engine: self, job: &staged.job }).await
    }

    async fn publish(&self, staged: &Staged, now: &str) -> Result<(), EngineError> {
        if !staged.changed {
            return Ok(());
        }
        let job = &staged.job;
        let target = self.version_table(job).await?;
        let mut params: HashMap<String, String> = [
            (P_VERSION, job.version.clone()),
            (P_TABLE, target.name().to_string()),
            (P_RUN, job.run_id.clone()),
            (P_PUBLISHED_AT, now.to_string()),
            (P_WINDOW_END, job.window_end.clone()),
            ("strata_bytes_scanned", staged.stats.bytes_read.to_string()),
            ("strata_statements", staged.stats.statements.to_string()),
            ("strata_queue_ms", staged.stats.queue_ms.to_string()),
            ("strata_engine_ms", staged.stats.engine_ms.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let input = match &job.kind {
            JobKind::External { ddl } => {
                params.insert(P_DDL.into(), hash_hex(ddl));
                as_input(&target, &job.table, params)
            }
            JobKind::Select { .. } => view_input(
                &job.table,
                &job.database,
                &format!("\"{}\".\"{}\"", job.database, target.name()),
                &all_columns(&target),
                params,
            ),
        };
        self.glue.swap(&job.database, input, staged.expected.as_deref()).await?;
        // A backfill's window tables: their partitions now belong to the version table.
        if let Some(prefix) = param(&target, P_PARTS) {
            for part in self.glue.tables_with_prefix(&job.database, prefix).await? {
                if let Err(e) = self.glue.delete_table(&job.database, part.name()).await {
                    tracing::warn!(model = %job.model, "removing backfill window table {}: {e}", part.name());
                }
            }
        }
        if matches!(job.kind, JobKind::External { .. }) {
            // The published table holds the whole definition (and Glue its history).
            if let Err(e) = self.glue.delete_table(&job.database, target.name()).await {
                tracing::warn!(model = %job.model, "removing the staged definition: {e}");
            }
        }
        Ok(())
    }

    async fn query(&self, sql_text: &str) -> Result<QueryResult, EngineError> {
        let st = Statement {
            sql: sql_text,
            database: &self.default_database,
            run_id: &crate::ids::new_id("q", Utc::now()),
            version: "",
            model: "query",
            index: 0,
        };
        let finished = self.statements.run(&st, || async { Ok(()) }).await?;
        let (columns, rows) = self.statements.rows(&finished.query_id, usize::MAX).await?;
        let schema = Arc::new(Schema::new(
            columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect::<Vec<_>>(),
        ));
        let arrays: Vec<ArrayRef> = (0..columns.len())
            .map(|i| {
                Arc::new(rows.iter().map(|r| r.get(i).cloned().flatten()).collect::<StringArray>())
                    as ArrayRef
            })
            .collect();
        let batches = if columns.is_empty() {
            Vec::new()
        } else {
            vec![
                RecordBatch::try_new(schema.clone(), arrays)
                    .map_err(|e| EngineError::Query(e.to_string()))?,
            ]
        };
        let mut stats = finished.stats;
        stats.rows = rows.len() as u64;
        Ok(QueryResult { schema, batches, stats })
    }

    async fn cancel(&self) {
        self.statements.cancel().await;
    }

    async fn was_published(&self, job: &Job) -> Result<bool, EngineError> {
        let versions = self.glue.versions(&job.database, &job.table).await?;
        Ok(history(&versions).iter().any(|(v, _, _)| *v == job.version))
    }
}

/// The distinct strata versions of a table's Glue history, newest first: (version, Glue
/// version id, the table as it was).
fn history(versions: &[(String, Table)]) -> Vec<(String, String, Table)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (id, t) in versions {
        if let Some(v) = param(t, P_VERSION)
            && seen.insert(v.to_string())
        {
            out.push((v.to_string(), id.clone(), t.clone()));
        }
    }
    out
}

fn published(t: &Table, version: &str) -> lifecycle::Published {
    lifecycle::Published {
        version: version.to_string(),
        published_at: param(t, P_PUBLISHED_AT).unwrap_or_default().to_string(),
        by: param(t, P_RUN).unwrap_or_default().to_string(),
    }
}

/// The lifecycle on Athena: a table's publish history is its view's Glue table versions;
/// a version's record is its version table (`<table>__v…`); its directory is the S3 prefix
/// `<layer>/<table>/<version>/`.
#[async_trait::async_trait]
impl lifecycle::Lifecycle for AthenaEngine {
    async fn managed_tables(&self, databases: &[String]) -> Result<Vec<(String, String)>, EngineError> {
        let mut out = Vec::new();
        for db in databases {
            for t in self.glue.tables_with_prefix(db, "").await? {
                if param(&t, P_VERSION).is_some() && !t.name().contains("__v") {
                    out.push((db.clone(), t.name().to_string()));
                }
            }
        }
        Ok(out)
    }

    async fn table_versions(
        &self,
        layer: Layer,
        db: &str,
        table: &str,
    ) -> Result<Option<lifecycle::TableVersions>, EngineError> {
        let Some(view) = self.glue.table(db, table).await? else { return Ok(None) };
        let Some(current) = param(&view, P_VERSION) else {
            return Err(EngineError::Aws(format!(
                "{db}.{table} exists in Glue but was not published by strata"
            )));
        };
        let hist = history(&self.glue.versions(db, table).await?);
        let previous = hist.iter().map(|(v, _, _)| v).find(|v| *v != current).cloned();
        let version_of = |t: &Table| -> Option<String> {
            let v = param(t, P_VERSION).map(str::to_string).or_else(|| {
                t.storage_descriptor().and_then(|sd| sd.location()).and_then(|l| dir_version(l, layer, table))
            })?;
            lifecycle::is_version_id(&v).then_some(v)
        };
        let recorded = if layer == Layer::Bronze {
            Vec::new()
        } else {
            self.glue
                .tables_with_prefix(db, &format!("{table}__v"))
                .await?
                .iter()
                .filter_map(|t| {
                    version_of(t).map(|version| lifecycle::Recorded { version, record: t.name().to_string() })
                })
                .collect()
        };
        let dirs = if layer == Layer::Bronze {
            Vec::new()
        } else {
            self.list_version_prefixes(layer, table)
                .await?
                .into_iter()
                .map(|name| lifecycle::StoredDir { name, bytes: None })
                .collect()
        };
        Ok(Some(lifecycle::TableVersions {
            layer,
            database: db.to_string(),
            table: table.to_string(),
            current: published(&view, current),
            previous,
            history: hist.iter().map(|(v, _, t)| published(t, v)).collect(),
            recorded,
            dirs,
            rows: None,
            bytes: None,
        }))
    }

    async fn dirs_read_by(
        &self,
        tv: &lifecycle::TableVersions,
        version: &lifecycle::Recorded,
    ) -> Result<BTreeSet<String>, EngineError> {
        let mut dirs = BTreeSet::from([version.version.clone()]);
        for p in self.glue.partitions(&tv.database, &version.record).await? {
            if let Some(loc) = p.storage_descriptor().and_then(|sd| sd.location()) {
                dirs.extend(dir_version(loc, tv.layer, &tv.table));
            }
        }
        Ok(dirs)
    }

    async fn republish(
        &self,
        tv: &lifecycle::TableVersions,
        version: &str,
        _run_id: &str,
        now: &str,
    ) -> Result<(), EngineError> {
        let (db, table) = (&tv.database, &tv.table);
        let view = self.glue.table(db, table).await?;
        let expected = view.as_ref().and_then(|t| t.version_id()).map(str::to_string);
        if view.as_ref().and_then(|t| param(t, P_VERSION)) != Some(tv.current.version.as_str()) {
            return Err(EngineError::Conflict(format!(
                "publish conflict: {db}.{table} was published by another run meanwhile; nothing changed"
            )));
        }
        let versions = self.glue.versions(db, table).await?;
        let hist = history(&versions);
        let Some((_, _, target)) = hist.iter().find(|(v, _, _)| v == version) else {
            return Err(EngineError::Query(format!("{version} is not in the Glue history of {db}.{table}")));
        };
        if let Some(t) = param(target, P_TABLE).filter(|_| target.table_type() == Some("VIRTUAL_VIEW"))
            && self.glue.table(db, t).await?.is_none()
        {
            return Err(EngineError::Query(format!("{version}: its table {db}.{t} no longer exists")));
        }
        let params: HashMap<String, String> = [
            (P_PUBLISHED_AT.to_string(), now.to_string()),
            (P_RUN.to_string(), format!("rollback of {}", tv.current.version)),
        ]
        .into();
        self.glue.swap(db, as_input(target, table, params), expected.as_deref()).await
    }

    async fn delete_dir(&self, dir: &VersionDir) -> Result<u64, EngineError> {
        self.delete_under(dir, "").await
    }

    async fn forget(
        &self,
        tv: &lifecycle::TableVersions,
        record: &lifecycle::Recorded,
    ) -> Result<(), EngineError> {
        self.glue.delete_table(&tv.database, &record.record).await
    }

    /// Glue history of versions no longer kept (never the view's current Glue version).
    async fn prune_history(
        &self,
        tv: &lifecycle::TableVersions,
        kept: &BTreeSet<String>,
    ) -> Result<(), EngineError> {
        let (db, table) = (&tv.database, &tv.table);
        let view = self.glue.table(db, table).await?;
        let current_id = view.as_ref().and_then(|t| t.version_id()).unwrap_or_default();
        let stale: Vec<String> = self
            .glue
            .versions(db, table)
            .await?
            .iter()
            .filter(|(id, t)| id != current_id && param(t, P_VERSION).is_none_or(|v| !kept.contains(v)))
            .map(|(id, _)| id.clone())
            .collect();
        if !stale.is_empty() {
            self.glue.delete_versions(db, table, &stale).await?;
        }
        Ok(())
    }
}

impl AthenaEngine {
    /// Names of the version-like prefixes directly under `<layer>/<table>/`.
    async fn list_version_prefixes(&self, layer: Layer, table: &str) -> Result<Vec<String>, EngineError> {
        let (bucket, prefix) = self.s3_key(&format!("{}/{table}/", layer.as_str()));
        let mut out = Vec::new();
        let mut pages =
            self.s3.list_objects_v2().bucket(&bucket).prefix(&prefix).delimiter("/").into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                EngineError::Aws(format!("S3 ListObjectsV2 s3://{bucket}/{prefix}: {}", api_message(&e)))
            })?;
            for p in page.common_prefixes() {
                if let Some(name) =
                    p.prefix().and_then(|p| p.strip_prefix(&prefix)).map(|p| p.trim_end_matches('/'))
                    && lifecycle::is_version_id(name)
                {
                    out.push(name.to_string());
                }
            }
        }
        Ok(out)
    }
}

/// Run state belongs to the deployment: every task reads and writes it under the lake.
#[async_trait::async_trait]
impl crate::backend::Backend for AthenaEngine {
    fn run_state(&self) -> Arc<dyn crate::state::RunState> {
        self.state.clone()
    }

    /// Raises each model's run state to the window end its published view carries
    /// (`strata_window_end`), unless an operator reset it.
    async fn reconcile(&self, project: &crate::project::Project, now: &str) -> Result<(), EngineError> {
        let state = &*self.state;
        let state_err = |e: crate::state::StateError| EngineError::Io(e.to_string());
        for id in &project.dag.order {
            let table = &project.models[id].table;
            let Some(t) = self.glue.table(project.database(id), table).await? else { continue };
            let Some(end) = param(&t, P_WINDOW_END) else { continue };
            let model = id.to_string();
            // Raised to what Glue says, unless an operator reset it (that stands); the
            // store never moves it backwards.
            let reset = state
                .model(&model)
                .await
                .map_err(state_err)?
                .is_some_and(|m| m.by.starts_with(crate::state::RESET));
            if !reset {
                state
                    .record_success(&model, end, param(&t, P_RUN).unwrap_or_default(), now)
                    .await
                    .map_err(state_err)?;
            }
        }
        Ok(())
    }
}

/// The version a partition location of `<layer>/<table>/` lives in.
fn dir_version(location: &str, layer: Layer, table: &str) -> Option<String> {
    let marker = format!("/{}/{table}/", layer.as_str());
    let at = location.find(&marker)?;
    let rest = &location[at + marker.len()..];
    let v = rest.split('/').next()?;
    lifecycle::is_version_id(v).then(|| v.to_string())
}
