//! Run state: how far each model ran, who is running it (a lease), which windows of a
//! backfill are done, and the history of model runs. One contract, two stores: SQLite in
//! the state directory (the local engine), and objects under the lake's `_strata/state/`
//! prefix written with S3 conditional writes (Athena), which every task of a deployment
//! shares.
//!
//! Every change that two runs could race on is a compare-and-swap: a lease is taken only if
//! it is free, expired or already the taker's; a model's progress only moves forward (unless
//! an operator resets it).

pub mod s3;
pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::s3::S3State;
pub use self::sqlite::{Access, SqliteState};

/// The run id an operator's `strata state reset` records (state read back from Glue does not
/// overwrite it).
pub const RESET: &str = "reset";

/// What the state store could not do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("run state {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("run state {path}: {source}")]
    Open { path: String, source: sqlite::OpenError },
    #[error("run state {location}: {message}")]
    S3 { location: String, message: String },
    #[error("run state {location}: {message} (a bug, or someone edited it)")]
    Corrupt { location: String, message: String },
}

/// How far a model ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelState {
    /// The end of the last window it published (RFC 3339); `None` after a reset to never.
    pub last_at: Option<String>,
    /// The run (or operator reset) that set it.
    pub by: String,
    pub updated_at: String,
}

/// Who holds a model's lease, until when (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until: String,
}

/// One finished model run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub model: String,
    pub window_start: String,
    pub window_end: String,
    /// published, unchanged, superseded, FAILED (with `error`).
    pub outcome: String,
    pub version: Option<String>,
    pub rows: u64,
    pub bytes_scanned: u64,
    pub bytes_written: u64,
    pub statements: u64,
    /// Athena's price of the bytes scanned ($5 per TB, 10 MB minimum per statement).
    pub cost_usd: f64,
    pub millis: u64,
    pub error: Option<String>,
    /// The ECS task, Step Functions execution or host that ran it.
    pub task: String,
    pub finished_at: String,
    /// The model's fingerprint when it ran: which SQL and config computed `version`
    /// (absent from records written before fingerprints were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<crate::fingerprint::Fingerprint>,
}

/// The run-state store of a deployment.
#[async_trait]
pub trait RunState: Send + Sync + std::fmt::Debug {
    async fn model(&self, model: &str) -> Result<Option<ModelState>, StateError>;
    /// Records that `model` published up to `at`; never moves it backwards.
    async fn record_success(&self, model: &str, at: &str, by: &str, now: &str) -> Result<(), StateError>;
    /// Sets how far `model` ran to `at` (`None`: never), backwards too (an operator's reset).
    async fn reset(&self, model: &str, at: Option<&str>, by: &str, now: &str) -> Result<(), StateError>;
    /// Takes (or renews) the lease on `key` for `owner` until `until` if it is free, expired
    /// at `now` or already `owner`'s; otherwise returns who holds it.
    async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        now: &str,
        until: &str,
    ) -> Result<Result<(), Lease>, StateError>;
    /// Gives the lease back if `owner` still holds it.
    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StateError>;
    async fn lease(&self, key: &str) -> Result<Option<Lease>, StateError>;
    /// Releases the lease whoever holds it; whether there was one.
    async fn force_release(&self, key: &str) -> Result<bool, StateError>;
    /// Windows of a backfill already written, with the version they went into.
    async fn backfill_done(&self, backfill: &str, model: &str) -> Result<Vec<(String, String)>, StateError>;
    async fn backfill_mark(
        &self,
        backfill: &str,
        model: &str,
        window_start: &str,
        version: &str,
    ) -> Result<(), StateError>;
    /// Forgets a backfill's progress (it was published, or is restarted).
    async fn backfill_clear(&self, backfill: &str, model: &str) -> Result<(), StateError>;
    /// The versions unfinished backfills are writing, as (model, version): every backfill
    /// with progress recorded and not yet cleared, running or interrupted.
    async fn backfill_versions(&self) -> Result<Vec<(String, String)>, StateError>;
    async fn record_run(&self, run: &RunRecord) -> Result<(), StateError>;
    /// Runs finished at or after `since`, of `model` when given, oldest first; with `last`,
    /// only the last that many of each model.
    async fn runs(
        &self,
        model: Option<&str>,
        since: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<RunRecord>, StateError>;
}

/// Athena's price of billed bytes: $5 per TB (10^12 bytes) scanned (Athena pricing; each
/// statement that scans data is billed at least 10 MB, see `athena::query::statistics`).
pub fn athena_cost_usd(billed_bytes: u64) -> f64 {
    billed_bytes as f64 * 5.0 / 1e12
}
