//! The contract between the runner and a query engine: stage a model's result as a new
//! version, audit it, publish it with one compare-and-swap, and answer ad-hoc queries.
//!
//! Guarantee of every implementation: `publish` is atomic. Readers see the version that
//! was current before, or the new one; never a partial, empty or missing table. A crash
//! between `stage` and `publish` leaves only an unreferenced version behind.

use async_trait::async_trait;
use std::sync::Arc;

pub mod checks;
pub use checks::{check_emptied, check_row_change};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::ids::ModelId;
use crate::project::Audit;

/// What a model run asks an engine to do.
#[derive(Debug, Clone)]
pub struct Job {
    pub model: ModelId,
    pub database: String,
    pub table: String,
    pub run_id: String,
    /// Never reused: names the version's directory and catalog entry.
    pub version: String,
    /// When the run staged it (from the run's clock).
    pub now: chrono::DateTime<chrono::Utc>,
    /// The end of the run's logical window: how far the published data reaches.
    pub window_end: chrono::DateTime<chrono::Utc>,
    pub kind: JobKind,
    pub audits: Vec<Audit>,
    /// A near-real-time model (`reads='arrived'`): read only the objects of this Bronze
    /// source that arrived since the published version, and keep that version's rows of
    /// the window (see README "Near-real-time reads").
    pub arrived: Option<ArrivedSource>,
}

/// The Bronze source a near-real-time run reads by arrival.
#[derive(Debug, Clone)]
pub struct ArrivedSource {
    pub database: String,
    pub table: String,
    /// The relation as the rendered SQL names it (`"db"."table"`).
    pub relation: String,
}

/// What a version recorded of the Bronze objects it reflects (`<version dir>/_arrivals.json`):
/// every object of its window's partitions read by it or by the versions it kept rows of.
pub const ARRIVALS_FILE: &str = "_arrivals.json";

#[derive(Debug, Clone)]
pub enum JobKind {
    /// Create or replace an external table (Bronze) from its DDL.
    External { ddl: String },
    /// Write the SELECT's rows as a new version.
    Select {
        sql: String,
        partition_by: Vec<String>,
        compression: String,
        /// For incremental models: the partitions (values in `partition_by` order) that the
        /// run replaces. Partitions outside it are carried over from the current version.
        replaces: Option<Partitions>,
    },
}

/// A partition's values, in the table's `partitioned_by` order.
pub type PartitionKey = Vec<String>;

/// The partitions a run replaces (its window's): sorted and without repeats, so that its
/// ends are its first and last, and membership is a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partitions(Vec<PartitionKey>);

impl Partitions {
    pub fn new(keys: impl IntoIterator<Item = PartitionKey>) -> Self {
        let mut keys: Vec<PartitionKey> = keys.into_iter().collect();
        keys.sort();
        keys.dedup();
        Self(keys)
    }

    /// The first partition: where the window starts.
    pub fn first(&self) -> Option<&PartitionKey> {
        self.0.first()
    }

    /// The last partition: where the window ends.
    pub fn last(&self) -> Option<&PartitionKey> {
        self.0.last()
    }

    pub fn contains(&self, key: &[String]) -> bool {
        self.0.binary_search_by(|k| k.as_slice().cmp(key)).is_ok()
    }

    pub fn as_slice(&self) -> &[PartitionKey] {
        &self.0
    }
}

impl std::ops::Deref for Partitions {
    type Target = [PartitionKey];

    fn deref(&self) -> &[PartitionKey] {
        &self.0
    }
}

impl From<Vec<PartitionKey>> for Partitions {
    fn from(keys: Vec<PartitionKey>) -> Self {
        Self::new(keys)
    }
}

impl<'a> IntoIterator for &'a Partitions {
    type Item = &'a PartitionKey;
    type IntoIter = std::slice::Iter<'a, PartitionKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<PartitionKey> for Partitions {
    fn from_iter<I: IntoIterator<Item = PartitionKey>>(keys: I) -> Self {
        Self::new(keys)
    }
}

/// A staged version, not yet visible to readers.
#[derive(Debug, Clone)]
pub struct Staged {
    pub job: Job,
    /// What was current when the run planned, for the compare-and-swap (`None`: nothing
    /// was published).
    pub expected: Option<SwapToken>,
    /// `false` when the result equals what is published (nothing to publish).
    pub changed: bool,
    pub stats: StepStats,
    /// Partitions of the window that hold data in the published version and none in this
    /// one: publishing would replace them with nothing (input missing: a moved lake, a
    /// wrong storage root, Firehose not delivering), so the runner refuses unless asked.
    pub emptied: Vec<Vec<String>>,
}

/// The token a publish's compare-and-swap is made on: opaque to the policy, each backend
/// knows what it holds (the local catalog's current version id, the view's Glue
/// `VersionId` on Athena).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapToken(String);

impl SwapToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Cost and size of one step, summed per model run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepStats {
    pub rows: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub malformed: u64,
    /// Source files that could not be read to their end (the local engine).
    pub bad_files: u64,
    /// Statements sent to the query engine (Athena), and their time in its queue and
    /// executing, in milliseconds.
    pub statements: u64,
    pub queue_ms: u64,
    pub engine_ms: u64,
    /// Bytes Athena bills for: the bytes each statement scanned, rounded up to the
    /// megabyte, at least 10 MB for a statement that scanned anything (Athena pricing).
    pub billed_bytes: u64,
}

impl std::ops::AddAssign for StepStats {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.malformed += o.malformed;
        self.bad_files += o.bad_files;
        self.statements += o.statements;
        self.queue_ms += o.queue_ms;
        self.engine_ms += o.engine_ms;
        self.billed_bytes += o.billed_bytes;
    }
}

/// A size as people read it: `512 B`, `1.5 KiB`, `3.0 GiB` (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// An ad-hoc query's answer.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub stats: StepStats,
}

/// An ad-hoc query's rows as they are computed, so that printing them holds one batch at a
/// time; `stats` is complete once `batches` has ended.
pub struct QueryStream {
    pub schema: SchemaRef,
    pub batches: futures::stream::BoxStream<'static, Result<RecordBatch, EngineError>>,
    pub stats: Box<dyn FnOnce() -> StepStats + Send>,
}

impl From<QueryResult> for QueryStream {
    fn from(r: QueryResult) -> Self {
        let stats = r.stats;
        Self {
            schema: r.schema,
            batches: Box::pin(futures::stream::iter(r.batches.into_iter().map(Ok))),
            stats: Box::new(move || stats),
        }
    }
}

/// Where in a statement an engine points: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlPosition {
    pub line: usize,
    pub column: usize,
}

/// A statement an engine could not run, with what the engine said of it as fields (each
/// backend fills them from its own errors, once, where they arise).
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StatementError {
    /// The whole message as a user reads it.
    pub message: String,
    /// Where in the statement the engine points, when it does.
    pub position: Option<SqlPosition>,
    /// The statement as the engine received it, when it is not the model's SQL itself (a
    /// CTAS around it on Athena): `position` is in it.
    pub statement: Option<String>,
    /// The column, table or function the engine could not resolve, when it names one.
    pub unresolved: Option<String>,
    /// The engine's name of the error (Trino's error code on Athena:
    /// `HIVE_TOO_MANY_OPEN_PARTITIONS`, `COLUMN_NOT_FOUND`).
    pub code: Option<String>,
    /// Athena's `AthenaError`: `ErrorCategory` (1 system, 2 user, 3 other) and `ErrorType`.
    pub category: Option<i32>,
    pub error_type: Option<i32>,
}

impl StatementError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Self::default() }
    }
}

impl From<StatementError> for EngineError {
    fn from(e: StatementError) -> Self {
        Self::Statement(Box::new(e))
    }
}

/// What failed below the engine (an AWS call, a file, the local catalog): the message a user
/// reads (which call, on what, what it said) and the error it came from, kept as the
/// [`std::error::Error::source`] of the [`EngineError`] (an `aws_sdk_s3` `SdkError`, an
/// `io::Error`, a SQLite error), so a caller can tell a missing object from a denied one
/// by type, not by searching the text.
#[derive(Debug, Clone)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self { message, source: None }
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Self::from(message.to_string())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The SQL or the data is wrong: retrying will not help.
    #[error("{0}")]
    Query(String),
    /// A statement the engine refused or failed, with the engine's fields.
    #[error("{0}")]
    Statement(Box<StatementError>),
    /// The run's stop signal was raised before it published (see `materialize::Stop`).
    #[error("stopped before publishing")]
    Stopped,
    #[error("audit {audit} failed: {detail}")]
    Audit { audit: String, detail: String },
    /// The local catalog failed (its SQLite file).
    #[error(transparent)]
    Catalog(Cause),
    /// Another run published first: the compare-and-swap failed, nothing changed.
    #[error("{0}")]
    Conflict(String),
    /// An AWS call failed in a way retrying did not fix.
    #[error(transparent)]
    Aws(Cause),
    /// A file or a storage root (local or S3) is not as strata needs it.
    #[error(transparent)]
    Io(Cause),
    /// A query that would change the lake, refused before anything ran (its plan writes
    /// files, defines tables or sets options).
    #[error(
        "strata query runs read-only SQL (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW): models create tables, and rollback and gc change them; refused: {0}"
    )]
    NotReadOnly(String),
}

impl EngineError {
    /// An AWS call failed: `message` says which, on what, and what AWS said.
    pub fn aws(message: impl Into<String>) -> Self {
        Self::Aws(Cause::from(message.into()))
    }

    /// A file or storage failure.
    pub fn io(message: impl Into<String>) -> Self {
        Self::Io(Cause::from(message.into()))
    }

    /// The local catalog failed.
    pub fn catalog(message: impl Into<String>) -> Self {
        Self::Catalog(Cause::from(message.into()))
    }

    /// The same error with `source` as its [`std::error::Error::source`] (for the kinds
    /// that carry a [`Cause`]; the others are returned as they are).
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Self::Aws(c) | Self::Io(c) | Self::Catalog(c) = &mut self {
            c.source = Some(Arc::new(source));
        }
        self
    }
}

#[async_trait]
pub trait Engine: Send + Sync {
    /// Stages the job's result as a new version. Nothing becomes visible.
    async fn stage(&self, job: &Job) -> Result<Staged, EngineError>;
    /// Writes one window of a multi-window job (a backfill) into the job's version location:
    /// of the partitions the window computes, only those in `keep`, replacing what an
    /// interrupted earlier attempt wrote for them. Records nothing in the catalog.
    async fn stage_part(&self, job: &Job, keep: &Partitions) -> Result<StepStats, EngineError>;
    /// Turns everything `stage_part` wrote for the job's version into one staged version:
    /// the partitions in `replaces` come from it, all others from the current version.
    async fn seal(&self, job: &Job, replaces: &Partitions) -> Result<Staged, EngineError>;
    /// Runs the job's audits against the staged version; the first failure is returned.
    async fn audit(&self, staged: &Staged) -> Result<(), EngineError>;
    /// Makes the staged version current with one compare-and-swap on `staged.expected`.
    async fn publish(&self, staged: &Staged, now: &str) -> Result<(), EngineError>;
    /// Runs a query against published tables.
    async fn query(&self, sql: &str) -> Result<QueryResult, EngineError>;
    /// Runs a query against published tables, its rows streamed (by default: collected).
    async fn query_stream(&self, sql: &str) -> Result<QueryStream, EngineError> {
        self.query(sql).await.map(QueryStream::from)
    }
    /// Whether the job's version was ever published (a resumed backfill whose earlier
    /// attempt published it before being killed has nothing left to do).
    async fn was_published(&self, job: &Job) -> Result<bool, EngineError>;
    /// Stops every statement still running on the engine's side (on SIGTERM / Ctrl-C). The
    /// embedded engine stops when its futures are dropped; a remote one needs a call.
    async fn cancel(&self) {}
}
