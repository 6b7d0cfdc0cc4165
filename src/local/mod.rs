//! The embedded engine: DataFusion over a local directory laid out like the S3 lake, with
//! the Trino function pack, the lenient Bronze reader and the SQLite catalog.
//!
//! Invariant: readers resolve a table to its published version when a query is planned;
//! a run's staged files are invisible until the catalog's compare-and-swap commits.

pub mod bronze;
pub mod catalog;
mod depth;
pub mod functions;
mod staging;
mod store;
pub(crate) mod table;
mod write;

pub use self::depth::check as check_depth;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use self::bronze::{BronzeTable, ReadStats, parse_external_table};
use self::catalog::{Catalog, Manifest, Partition, Version};
use self::table::{ManifestTable, schema_from_bytes, schema_to_bytes};
use crate::config::{Settings, Storage};
use crate::engine::{
    Engine, EngineError, Job, JobKind, Partitions, QueryResult, Staged, StepStats, SwapToken, checks,
};
use crate::ids::Layer;
use crate::lifecycle;
use crate::state::Access;
use std::collections::BTreeSet;

pub use self::depth::MAX_EXPR_DEPTH;
pub use self::table::prune;

/// The local lake: a storage root directory and a catalog file.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    root: PathBuf,
    catalog: Arc<Catalog>,
    /// (name in SQL, database in the catalog): each database, and its layer's name as an alias.
    databases: Vec<(String, String)>,
    /// Where queries execute: a runtime of their own, so that CPU-bound work (a large hash
    /// join polls for minutes without yielding) never holds the threads that watch for a
    /// stop signal. `None` runs them on the caller's runtime (tests).
    exec: Option<tokio::runtime::Handle>,
    /// Run state, in the state directory beside the catalog.
    state: Arc<dyn crate::state::RunState>,
}

/// A task on the executor that is aborted when whoever awaits it goes away (a stop): it
/// ends at its next yield point, and the executor is dropped without waiting for it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Checks that the lake at `root` can be written: a file is made and removed in its
/// `_strata` directory, so a read-only mount, directory or owner fails here once, naming
/// the path, rather than in every model.
fn writable(root: &Path) -> Result<(), EngineError> {
    let dir = root.join("_strata");
    let probe = dir.join(format!(".writable.{}", std::process::id()));
    let made = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&probe, b"strata\n"));
    let _ = std::fs::remove_file(&probe);
    made.map_err(|e| {
        EngineError::io(format!(
            "the lake {} cannot be written: {}: {e} (runs write their versions there; status and query only read it)",
            root.display(),
            probe.display()
        ))
    })
}

fn query_err(e: DataFusionError) -> EngineError {
    statement_error(&e).into()
}

/// A DataFusion error as a statement error with its fields: the position of a parser
/// error (sqlparser's `ParserError` holds only a message, ending in ` at Line: L, Column:
/// C` when it has one: `Location`'s `Display` in sqlparser's `tokenizer.rs`), and the
/// column, table or function planning could not resolve.
pub fn statement_error(e: &DataFusionError) -> crate::engine::StatementError {
    use datafusion::common::SchemaError;
    let mut out = crate::engine::StatementError::new(e.to_string());
    match e.find_root() {
        DataFusionError::SQL(p, _) => {
            let text = p.to_string();
            out.position = text.rsplit_once(" at Line: ").and_then(|(_, at)| {
                let (line, column) = at.split_once(", Column: ")?;
                let digits =
                    |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok();
                Some(crate::engine::SqlPosition { line: digits(line)?, column: digits(column)? })
            });
        }
        DataFusionError::SchemaError(s, _) => {
            if let SchemaError::FieldNotFound { field, .. } = s.as_ref() {
                out.unresolved = Some(field.name().to_string());
            }
        }
        DataFusionError::Plan(m) => {
            out.unresolved = ["Invalid function '", "table '", "column '"]
                .iter()
                .find_map(|marker| m.split_once(marker))
                .and_then(|(_, rest)| rest.split_once('\'').map(|(name, _)| name.to_string()));
        }
        _ => {}
    }
    out
}

/// Resolves tables of one database to their published versions, at planning time.
#[derive(Debug)]
struct DatabaseSchema {
    db: String,
    root: PathBuf,
    catalog: Arc<Catalog>,
    stats: Arc<ReadStats>,
}

impl LocalEngine {
    /// The local lake of `settings`: its storage directory and catalog file. SQL may name a
    /// database by its configured name (`rastup_ops`) or by its layer (`ops`).
    pub fn for_settings(settings: &Settings) -> Result<Self, EngineError> {
        Self::open(settings, Access::Write)
    }

    /// The same, opened for `access`: to write, the lake and the catalog are checked
    /// writable here (a read-only or full disk fails once, naming the path, before any
    /// model runs); to read, nothing is created or written.
    pub fn open(settings: &Settings, access: Access) -> Result<Self, EngineError> {
        let Storage::Local(root) = &settings.storage else {
            return Err(EngineError::io(format!(
                "the local engine needs a local storage directory; storage is {}",
                settings.storage.uri("")
            )));
        };
        let mut databases = Vec::new();
        for layer in Layer::ALL {
            let db = settings.database(layer).to_string();
            databases.push((db.clone(), db.clone()));
            if db != layer.as_str() && Layer::ALL.iter().all(|l| settings.database(*l) != layer.as_str()) {
                databases.push((layer.as_str().to_string(), db));
            }
        }
        if access == Access::Write {
            std::fs::create_dir_all(root)
                .map_err(|e| EngineError::io(format!("{}: {e}", root.display())).caused_by(e))?;
        }
        let path = settings.catalog_path();
        let db =
            crate::state::sqlite::Db::open(&path, &[catalog::SCHEMA, crate::state::sqlite::SCHEMA], access)
                .map_err(|source| catalog::CatalogError::Open { path: path.display().to_string(), source })?;
        let db = Arc::new(db);
        let catalog = Catalog::on(db.clone())?;
        catalog.claim(root, access)?;
        if access == Access::Write {
            writable(root)?;
        }
        Ok(Self {
            root: root.clone(),
            catalog: Arc::new(catalog),
            databases,
            exec: None,
            state: Arc::new(crate::state::SqliteState::on(db)),
        })
    }

    /// Runs queries on `exec` (the command line gives the engine a runtime of its own).
    pub fn with_executor(mut self, exec: tokio::runtime::Handle) -> Self {
        self.exec = Some(exec);
        self
    }

    /// Runs `work` on the executor (or here, without one); dropping the returned future
    /// abandons the work at its next yield point.
    async fn offload<T, F, Fut>(&self, work: F) -> Result<T, EngineError>
    where
        F: FnOnce(LocalEngine) -> Fut,
        Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = work(self.clone());
        match &self.exec {
            None => fut.await,
            Some(exec) => {
                let mut task = AbortOnDrop(exec.spawn(fut));
                match (&mut task.0).await {
                    Ok(r) => r,
                    Err(e) if e.is_cancelled() => Err(EngineError::io("the query was stopped")),
                    Err(e) => {
                        Err(EngineError::io(format!("internal error: the query panicked (a bug): {e}")))
                    }
                }
            }
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh session whose databases resolve through the catalog, and the read counters
    /// of its Bronze scans.
    pub fn session(&self) -> (SessionContext, Arc<ReadStats>) {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .set_bool("datafusion.sql_parser.enable_ident_normalization", true)
            .set_bool("datafusion.execution.parquet.schema_force_view_types", false)
            // DataFusion 55's new ordered aggregation streams, picked when a filter makes a
            // group column constant (a window's `dt = '...'`), emit batch by batch by shifting
            // every remaining group: a one-day Silver DISTINCT took twice as long. The classic
            // hash aggregation emits once. (See BENCHMARKS.md.)
            .set_bool("datafusion.execution.enable_migration_aggregate", false)
            // A Silver DISTINCT keeps nearly every row: after 20,000 rows without a 20%
            // reduction a partial aggregation passes rows on instead of hashing them twice
            // (DataFusion's default probes 100,000 rows per partition first).
            .set_usize("datafusion.execution.skip_partial_aggregation_probe_rows_threshold", 20_000);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(bronze::MembersInBronzeScan))
            .build();
        let ctx = SessionContext::new_with_state(state);
        functions::register(&ctx);
        let stats = Arc::new(ReadStats::default());
        let catalog = ctx.catalog("datafusion").expect("the default catalog exists");
        for (name, db) in &self.databases {
            let schema = DatabaseSchema {
                db: db.clone(),
                root: self.root.clone(),
                catalog: self.catalog.clone(),
                stats: stats.clone(),
            };
            catalog.register_schema(name, Arc::new(schema)).expect("registering a schema cannot fail");
        }
        (ctx, stats)
    }

    fn provider(
        &self,
        v: &Version,
        stats: Arc<ReadStats>,
    ) -> Result<Arc<dyn TableProvider>, DataFusionError> {
        provider(&self.root, v, stats)
    }
}

fn provider(
    root: &Path,
    v: &Version,
    stats: Arc<ReadStats>,
) -> Result<Arc<dyn TableProvider>, DataFusionError> {
    if v.kind == "external" {
        let table =
            parse_external_table(&v.ddl).map_err(|e| DataFusionError::Plan(format!("bronze ddl: {e}")))?;
        // A location inside the lake is kept relative to it, so a moved project or lake
        // reads its own files; one outside is read where the DDL says.
        let dir = if v.location.is_empty() {
            local_path(table.location.as_deref().unwrap_or_default())
        } else {
            root.join(&v.location)
        };
        Ok(Arc::new(BronzeTable::new(&table, dir, root.join("bronze").join("_bad"), stats)?))
    } else {
        let schema = schema_from_bytes(&v.schema)?;
        Ok(Arc::new(ManifestTable::new(schema, v.manifest.clone(), root.to_path_buf())))
    }
}

/// `file:///a/b` or `/a/b` to a path.
fn local_path(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

#[async_trait]
impl SchemaProvider for DatabaseSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog
            .tables()
            .map(|t| t.into_iter().filter(|(db, _, _)| db == &self.db).map(|(_, n, _)| n).collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let version =
            self.catalog.current(&self.db, name).map_err(|e| DataFusionError::External(Box::new(e)))?;
        version.map(|v| provider(&self.root, &v, self.stats.clone())).transpose()
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(self.catalog.head(&self.db, name), Ok(Some(_)))
    }
}

async fn collect_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, EngineError> {
    ctx.sql(sql).await.map_err(query_err)?.collect().await.map_err(query_err)
}

fn count_rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

impl LocalEngine {
    async fn stage_external(&self, job: &Job, ddl: &str) -> Result<Staged, EngineError> {
        let table = parse_external_table(ddl).map_err(|e| EngineError::Query(format!("bronze DDL: {e}")))?;
        let head = self.catalog.head(&job.database, &job.table)?;
        if let Some(h) = &head {
            let current = self.catalog.version(&job.database, &job.table, &h.current)?;
            if current.ddl == ddl {
                return Ok(Staged {
                    job: job.clone(),
                    expected: Some(SwapToken::new(&h.current)),
                    changed: false,
                    stats: StepStats::default(),
                    emptied: Vec::new(),
                });
            }
        }
        let mut fields: Vec<_> = table.columns.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(table.partition_columns.iter().map(|p| {
            datafusion::arrow::datatypes::Field::new(p, datafusion::arrow::datatypes::DataType::Utf8, true)
        }));
        let schema = datafusion::arrow::datatypes::Schema::new(fields);
        let inside = table
            .location
            .as_deref()
            .map(local_path)
            .and_then(|dir| dir.strip_prefix(&self.root).ok().map(|r| r.to_string_lossy().into_owned()))
            .unwrap_or_default();
        self.catalog.stage(
            &job.database,
            &job.table,
            &Version {
                version: job.version.clone(),
                kind: "external".into(),
                location: inside,
                ddl: ddl.to_string(),
                schema: schema_to_bytes(&schema),
                manifest: Manifest::default(),
                run_id: job.run_id.clone(),
                created_at: crate::clock::stamp(job.now),
                layered: None,
            },
        )?;
        Ok(Staged {
            job: job.clone(),
            expected: head.map(|h| SwapToken::new(h.current)),
            changed: true,
            stats: StepStats::default(),
            emptied: Vec::new(),
        })
    }
}

/// Audits of a staged version of the local engine: a session with it registered as
/// `__strata.staged`.
struct LocalAudits {
    ctx: SessionContext,
    table: String,
    rows: u64,
    published: Option<u64>,
}

#[async_trait]
impl checks::AuditTarget for LocalAudits {
    fn relation(&self) -> String {
        "\"__strata\".\"staged\"".into()
    }

    async fn row_counts(&self, _: usize) -> Result<Option<(u64, u64)>, EngineError> {
        Ok(self.published.map(|before| (before, self.rows)))
    }

    async fn sample(&self, audit: &str, sql: &str, _: usize) -> Result<Option<String>, EngineError> {
        let batches = collect_sql(&self.ctx, sql).await.map_err(|e| {
            // Name the table the audit is about, not the relation it read it through.
            let text = e
                .to_string()
                .replace("__strata.staged", &self.table)
                .replace("\"__strata\".\"staged\"", &self.table);
            EngineError::Audit { audit: audit.to_string(), detail: format!("cannot run: {text}") }
        })?;
        if count_rows(&batches) == 0 {
            return Ok(None);
        }
        Ok(Some(
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .map(|t| t.to_string())
                .unwrap_or_default(),
        ))
    }
}

/// What writing a result cost: rows and bytes written, bytes and Bronze lines read.
fn written_stats(written: &write::Written, stats: &ReadStats) -> StepStats {
    let read = stats.snapshot();
    StepStats {
        rows: written.manifest.rows(),
        bytes_read: written.bytes_read + read.compressed_bytes,
        bytes_written: written.manifest.bytes(),
        malformed: read.malformed_lines,
        bad_files: read.bad_files,
        ..StepStats::default()
    }
}

/// A schema's columns as (name, type), for [`checks::same_columns`].
fn columns_of(schema: &datafusion::arrow::datatypes::Schema) -> Vec<(String, String)> {
    schema.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect()
}

impl LocalEngine {
    async fn write_part(&self, job: &Job, keep: &Partitions) -> Result<StepStats, EngineError> {
        let checks::BackfillSelect { sql, partition_by, compression, window } = checks::backfill_select(job)?;
        let dir = format!("{}/{}/{}", job.model.layer.as_str(), job.table, job.version);
        // Each window is written aside, checked, then its partition directories are moved
        // into the version: windows written in parallel never see each other's files, and a
        // window an interrupted attempt half-wrote is simply written again.
        let part = format!("{dir}/_parts/{}", keep.first().map(|v| v.join("_")).unwrap_or_default());
        let io = |e: std::io::Error, p: &Path| EngineError::io(format!("{}: {e}", p.display())).caused_by(e);
        let part_path = self.root.join(&part);
        if part_path.exists() {
            std::fs::remove_dir_all(&part_path).map_err(|e| io(e, &part_path))?;
        }
        let (ctx, stats) = self.session();
        let (written, _) = write::write_select(&ctx, sql, &self.root, &part, partition_by, compression)
            .await
            .map_err(query_err)?;
        checks::within_window(
            partition_by,
            window,
            written.manifest.partitions.iter().map(|p| p.values.as_slice()),
        )?;
        for values in keep.as_slice() {
            let sub: PathBuf = partition_by.iter().zip(values).map(|(c, v)| format!("{c}={v}")).collect();
            let (from, to) = (part_path.join(&sub), self.root.join(&dir).join(&sub));
            if to.exists() {
                std::fs::remove_dir_all(&to).map_err(|e| io(e, &to))?;
            }
            if from.exists() {
                std::fs::create_dir_all(to.parent().expect("a partition has a parent"))
                    .map_err(|e| io(e, &to))?;
                std::fs::rename(&from, &to).map_err(|e| io(e, &to))?;
            }
        }
        std::fs::remove_dir_all(&part_path).map_err(|e| io(e, &part_path))?;
        Ok(written_stats(&written, &stats))
    }
}

impl LocalEngine {
    async fn stage_here(&self, job: &Job) -> Result<Staged, EngineError> {
        match &job.kind {
            JobKind::External { ddl } => self.stage_external(job, ddl).await,
            JobKind::Select { .. } => crate::materialize::stage::select(self, job).await,
        }
    }

    async fn audit_here(&self, staged: &Staged) -> Result<(), EngineError> {
        if staged.job.audits.is_empty() || !staged.changed {
            return Ok(());
        }
        let job = &staged.job;
        // An incremental (layered) version is audited on what the run wrote, its window,
        // as on Athena (where the audits read the run's table).
        let window_only = |mut v: Version| {
            if let Some(l) = &v.layered {
                v.manifest.partitions = l.own.clone();
            }
            v
        };
        let version = window_only(self.catalog.version(&job.database, &job.table, &job.version)?);
        let (ctx, stats) = self.session();
        let schema = Arc::new(MemorySchemaProvider::new());
        schema
            .register_table("staged".into(), self.provider(&version, stats).map_err(query_err)?)
            .map_err(query_err)?;
        ctx.catalog("datafusion")
            .expect("default catalog")
            .register_schema("__strata", schema)
            .map_err(query_err)?;
        let published = match &staged.expected {
            Some(v) => Some(
                window_only(self.catalog.version(&job.database, &job.table, v.as_str())?).manifest.rows(),
            ),
            None => None,
        };
        let target = LocalAudits { ctx, table: job.table.clone(), rows: version.manifest.rows(), published };
        checks::run_audits(staged, &target).await
    }

    /// Plans `sql` over the published tables, refusing it unless it only reads.
    async fn plan_query(&self, sql: &str) -> Result<PlannedQuery, EngineError> {
        depth::check(sql)?;
        let (ctx, stats) = self.session();
        // Read-only by its plan, wherever a write hides (`EXPLAIN ANALYZE COPY ... TO`, a
        // `CREATE EXTERNAL TABLE`, a `SET`): DataFusion checks every node, EXPLAIN's input too.
        let plan = ctx.state().create_logical_plan(sql).await.map_err(query_err)?;
        datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| EngineError::NotReadOnly(e.strip_backtrace()))?;
        let df = ctx.execute_logical_plan(plan).await.map_err(query_err)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let plan = df.create_physical_plan().await.map_err(query_err)?;
        Ok(PlannedQuery { plan, task: ctx.task_ctx(), schema, stats })
    }

    async fn query_here(&self, sql: &str) -> Result<QueryResult, EngineError> {
        let q = self.plan_query(sql).await?;
        let batches = datafusion::physical_plan::collect(q.plan.clone(), q.task).await.map_err(query_err)?;
        let stats = StepStats { rows: count_rows(&batches), ..query_stats(q.plan.as_ref(), &q.stats) };
        Ok(QueryResult { schema: q.schema, batches, stats })
    }
}

/// A query planned, ready to execute.
struct PlannedQuery {
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    task: Arc<datafusion::execution::TaskContext>,
    schema: datafusion::arrow::datatypes::SchemaRef,
    stats: Arc<ReadStats>,
}

/// What a query read (its rows are counted by whoever consumes them).
fn query_stats(plan: &dyn datafusion::physical_plan::ExecutionPlan, stats: &ReadStats) -> StepStats {
    let read = stats.snapshot();
    StepStats {
        bytes_read: write::bytes_scanned(plan) + read.compressed_bytes,
        malformed: read.malformed_lines,
        bad_files: read.bad_files,
        ..StepStats::default()
    }
}

#[async_trait]
impl Engine for LocalEngine {
    async fn stage_part(&self, job: &Job, keep: &Partitions) -> Result<StepStats, EngineError> {
        let (job, keep) = (job.clone(), keep.clone());
        self.offload(move |e| async move { e.write_part(&job, &keep).await }).await
    }

    async fn seal(&self, job: &Job, replaces: &Partitions) -> Result<Staged, EngineError> {
        let (job, replaces) = (job.clone(), replaces.clone());
        self.offload(move |e| async move { crate::materialize::seal(&e, &job, &replaces).await }).await
    }

    async fn stage(&self, job: &Job) -> Result<Staged, EngineError> {
        let job = job.clone();
        self.offload(move |e| async move { e.stage_here(&job).await }).await
    }

    async fn audit(&self, staged: &Staged) -> Result<(), EngineError> {
        let staged = staged.clone();
        self.offload(move |e| async move { e.audit_here(&staged).await }).await
    }

    async fn query(&self, sql: &str) -> Result<QueryResult, EngineError> {
        let sql = sql.to_string();
        self.offload(move |e| async move { e.query_here(&sql).await }).await
    }

    /// Batches are computed on the executor and handed over two at a time: printing a
    /// large result holds a batch or two, never the result. Dropping the stream stops it.
    async fn query_stream(&self, sql: &str) -> Result<crate::engine::QueryStream, EngineError> {
        use futures::StreamExt;
        let sql = sql.to_string();
        let q = self.offload(move |e| async move { e.plan_query(&sql).await }).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, EngineError>>(2);
        let plan = q.plan.clone();
        let producer = async move {
            let mut stream = match datafusion::physical_plan::execute_stream(plan, q.task) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(query_err(e))).await;
                    return;
                }
            };
            while let Some(batch) = stream.next().await {
                if tx.send(batch.map_err(query_err)).await.is_err() {
                    return; // the reader went away
                }
            }
        };
        let task = AbortOnDrop(match &self.exec {
            Some(exec) => exec.spawn(producer),
            None => tokio::spawn(producer),
        });
        let batches = futures::stream::unfold((rx, task), |(mut rx, task)| async move {
            rx.recv().await.map(|b| (b, (rx, task)))
        });
        let (plan, stats) = (q.plan, q.stats);
        Ok(crate::engine::QueryStream {
            schema: q.schema,
            batches: Box::pin(batches),
            stats: Box::new(move || query_stats(plan.as_ref(), &stats)),
        })
    }

    async fn was_published(&self, job: &Job) -> Result<bool, EngineError> {
        Ok(self.catalog.was_published(&job.database, &job.table, &job.version)?)
    }

    /// One SQLite transaction, run here: a publish is never abandoned halfway.
    async fn publish(&self, staged: &Staged, now: &str) -> Result<(), EngineError> {
        if !staged.changed {
            return Ok(());
        }
        let job = &staged.job;
        // Layered: the partitions that left the window since the current version go into
        // the base it shares with this one, in the publish's transaction.
        let new = self.catalog.version(&job.database, &job.table, &job.version)?;
        let current = match staged.expected.as_ref().map(SwapToken::as_str) {
            Some(v) => Some(self.catalog.version(&job.database, &job.table, v)?),
            None => None,
        };
        let leaving: Option<(String, Vec<Partition>)> = match (&new.layered, current.and_then(|c| c.layered))
        {
            (Some(n), Some(c)) if n.base == c.base => {
                let parts = crate::materialize::layered::leaving(c.own, |p| &p.values, &c.from, &n.from);
                Some((n.base.clone(), parts))
            }
            _ => None,
        };
        self.catalog.publish_with(
            &job.database,
            &job.table,
            staged.expected.as_ref().map(SwapToken::as_str),
            &job.version,
            &job.run_id,
            now,
            leaving.as_ref().map(|(b, p)| (b.as_str(), p.as_slice())),
        )?;
        Ok(())
    }
}

/// The newest modification time of anything under `path` (itself included).
fn newest_write(path: &Path) -> std::io::Result<std::time::SystemTime> {
    let mut newest = std::fs::metadata(path)?.modified()?;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let t = if entry.file_type()?.is_dir() {
            newest_write(&entry.path())?
        } else {
            entry.metadata()?.modified()?
        };
        newest = newest.max(t);
    }
    Ok(newest)
}

fn dir_size(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

impl crate::backend::Backend for LocalEngine {
    fn run_state(&self) -> Arc<dyn crate::state::RunState> {
        self.state.clone()
    }
}

/// The version directories a version's files live in (incremental versions share older ones).
fn referenced_dirs(v: &Version) -> BTreeSet<String> {
    v.manifest
        .partitions
        .iter()
        .flat_map(|p| &p.files)
        .filter_map(|f| f.path.split('/').nth(2).map(str::to_string))
        .chain(
            (!v.location.is_empty()).then(|| v.location.rsplit('/').next().unwrap_or_default().to_string()),
        )
        .collect()
}

#[async_trait]
impl lifecycle::Lifecycle for LocalEngine {
    async fn managed_tables(&self, databases: &[String]) -> Result<Vec<(String, String)>, EngineError> {
        Ok(self
            .catalog
            .tables()?
            .into_iter()
            .filter(|(db, _, _)| databases.contains(db))
            .map(|(db, name, _)| (db, name))
            .collect())
    }

    async fn table_versions(
        &self,
        layer: Layer,
        db: &str,
        table: &str,
    ) -> Result<Option<lifecycle::TableVersions>, EngineError> {
        let Some(head) = self.catalog.head(db, table)? else { return Ok(None) };
        let current = self.catalog.version(db, table, &head.current)?;
        let mut history: Vec<lifecycle::Published> = Vec::new();
        for r in self.catalog.history(db, table)? {
            if !history.iter().any(|p| p.version == r.version) {
                history.push(lifecycle::Published {
                    version: r.version,
                    published_at: r.published_at,
                    by: r.run_id,
                });
            }
        }
        let recorded = self
            .catalog
            .versions(db, table)?
            .into_iter()
            .map(|v| lifecycle::Recorded { record: v.version.clone(), version: v.version })
            .collect();
        let external = current.kind == "external";
        Ok(Some(lifecycle::TableVersions {
            layer,
            database: db.to_string(),
            table: table.to_string(),
            current: lifecycle::Published {
                version: head.current.clone(),
                published_at: head.published_at.clone(),
                by: head.published_by.clone(),
            },
            previous: head.previous.clone(),
            history,
            recorded,
            dirs: self.version_dirs(layer, table)?,
            rows: (!external).then(|| current.manifest.rows()),
            bytes: (!external).then(|| current.manifest.bytes()),
        }))
    }

    async fn dirs_read_by(
        &self,
        tv: &lifecycle::TableVersions,
        version: &lifecycle::Recorded,
    ) -> Result<BTreeSet<String>, EngineError> {
        Ok(referenced_dirs(&self.catalog.version(&tv.database, &tv.table, &version.version)?))
    }

    async fn republish(
        &self,
        tv: &lifecycle::TableVersions,
        version: &str,
        run_id: &str,
        now: &str,
    ) -> Result<(), EngineError> {
        self.catalog.version(&tv.database, &tv.table, version)?;
        self.catalog.publish(&tv.database, &tv.table, Some(&tv.current.version), version, run_id, now)?;
        Ok(())
    }

    async fn written_at(
        &self,
        tv: &lifecycle::TableVersions,
        version: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, EngineError> {
        let path = self.root.join(tv.layer.as_str()).join(&tv.table).join(version);
        match newest_write(&path) {
            Ok(t) => Ok(Some(t.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::io(format!("{}: {e}", path.display())).caused_by(e)),
        }
    }

    async fn delete_dir(&self, dir: &lifecycle::VersionDir) -> Result<u64, EngineError> {
        let path = self.root.join(dir.relative());
        let io =
            |e: std::io::Error| EngineError::io(format!("deleting {}: {e}", path.display())).caused_by(e);
        let bytes = dir_size(&path).map_err(io)?;
        std::fs::remove_dir_all(&path).map_err(io)?;
        Ok(bytes)
    }

    async fn published_columns(
        &self,
        db: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, String)>>, EngineError> {
        let Some(v) = self.catalog.current(db, table)? else { return Ok(None) };
        let schema = schema_from_bytes(&v.schema).map_err(query_err)?;
        let named =
            schema.fields().iter().map(|f| (f.name().clone(), crate::changes::sql_type(f.data_type())));
        Ok(Some(named.collect()))
    }

    async fn forget(
        &self,
        tv: &lifecycle::TableVersions,
        record: &lifecycle::Recorded,
    ) -> Result<(), EngineError> {
        Ok(self.catalog.forget(&tv.database, &tv.table, &record.record)?)
    }
}

impl LocalEngine {
    /// The directories directly under `<layer>/<table>/`, with their sizes.
    fn version_dirs(&self, layer: Layer, table: &str) -> Result<Vec<lifecycle::StoredDir>, EngineError> {
        let dir = self.root.join(layer.as_str()).join(table);
        let io = |e: std::io::Error| EngineError::io(format!("{}: {e}", dir.display())).caused_by(e);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io)?;
            if !entry.file_type().map_err(io)?.is_dir() {
                continue;
            }
            out.push(lifecycle::StoredDir {
                name: entry.file_name().to_string_lossy().into_owned(),
                bytes: Some(dir_size(&entry.path()).map_err(io)?),
            });
        }
        Ok(out)
    }
}
