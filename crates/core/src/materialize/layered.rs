//! An incremental run in the layered layout, decided once for every backend.
//!
//! An incremental table's version holds its window (and what it carries after it); the
//! partitions before the window are read from a base generation, where each is registered
//! once when it leaves the window (at publish). A run whose window starts at or after the
//! current version's keeps its base generation; one that starts before it (a range run,
//! a past window) starts a new generation from what readers see before its window. A
//! window that ends before the current version's last partition (a past window run again)
//! carries the partitions after it by reference, so the run changes its window only. A
//! window partition that held rows and is not written is `emptied` (the runner's fence
//! refuses it unless asked).
//!
//! [`plan`] decides all of this from what the store reports; each backend applies the
//! plan with its primitives (register partitions in its version, start a base generation,
//! record the version).

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::store::{StoredPartition, TableStore};
use crate::engine::{EngineError, Job, PartitionKey, Partitions, checks};

/// Where a layered version's base generation ends and its own partitions start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The base generation, as the store names it.
    pub base: String,
    /// The first partition the version holds itself.
    pub from: PartitionKey,
}

/// The published version of an incremental table, as the layered policy sees it.
#[derive(Debug, Clone)]
pub struct Current<H> {
    /// The version's id (what its records are kept under).
    pub version: String,
    pub columns: Vec<(String, String)>,
    /// `None`: the version is not layered (published whole): it holds every partition.
    pub layout: Option<Layout>,
    /// The partitions it holds itself (all of them when it is not layered).
    pub partitions: Vec<StoredPartition<H>>,
}

#[async_trait]
pub trait LayeredStore: TableStore {
    /// The published version of the job's table, if any.
    async fn current_layered(&self, job: &Job) -> Result<Option<Current<Self::Partition>>, EngineError>;
    /// The partitions of base generation `base` before `before`, in order.
    async fn base_partitions(
        &self,
        job: &Job,
        base: &str,
        before: &[String],
    ) -> Result<Vec<StoredPartition<Self::Partition>>, EngineError>;
}

/// What a publish moves into the base generation two versions share: the partitions the
/// current version held itself (from its window's start, `current_from`) that the new
/// version's window no longer covers (before `next_from`). Registered in the base with the
/// swap, so readers switch to the new version and its base at once. `key` gives an item's
/// partition values.
pub fn leaving<T>(
    current_own: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> &[String],
    current_from: &[String],
    next_from: &[String],
) -> Vec<T> {
    current_own.into_iter().filter(|p| key(p) >= current_from && key(p) < next_from).collect()
}

/// The base generation a run's version reads before its window.
#[derive(Debug, Clone)]
pub enum Base<H> {
    /// The current version's: the window starts at or after its own.
    Current(String),
    /// A new generation, named by the run's version, holding these partitions.
    New(Vec<StoredPartition<H>>),
}

/// What a run of a window does to the layered layout.
#[derive(Debug, Clone)]
pub struct Plan<H> {
    /// The window's first partition: the version reads its base before it.
    pub from: PartitionKey,
    pub base: Base<H>,
    /// The partitions after the window, carried into the version by reference.
    pub carried: Vec<StoredPartition<H>>,
    /// Window partitions that held rows and were not written.
    pub emptied: Vec<PartitionKey>,
}

/// Decides the layout of a run's version from what it `written` (with `columns`) for its
/// `window` and what is published (`current`, as `LayeredStore::current_layered` read it
/// before the run wrote). Refuses partitions outside the window and a change of
/// columns (a version replacing some partitions cannot change the schema).
pub async fn plan<S: LayeredStore + ?Sized>(
    store: &S,
    job: &Job,
    window: &Partitions,
    current: Option<Current<S::Partition>>,
    columns: &[(String, String)],
    written: &[StoredPartition<S::Partition>],
) -> Result<Plan<S::Partition>, EngineError> {
    let partition_by = checks::backfill_select(job)?.partition_by;
    checks::within_window(partition_by, window, written.iter().map(|p| p.values.as_slice()))?;
    let from = window.first().cloned().unwrap_or_default();
    let Some(current) = current else {
        return Ok(Plan { from, base: Base::New(Vec::new()), carried: Vec::new(), emptied: Vec::new() });
    };
    checks::same_columns(&current.columns, columns)?;
    let keeps = current.layout.as_ref().filter(|l| from >= l.from).map(|l| l.base.clone());
    // What readers see from the window on (and before it, when a new generation starts:
    // listing the base is O(table), done once per generation).
    let mut seen = Vec::new();
    if keeps.is_none()
        && let Some(l) = &current.layout
    {
        seen = store.base_partitions(job, &l.base, &l.from).await?;
    }
    seen.extend(current.partitions);
    let with_rows: BTreeSet<PartitionKey> =
        written.iter().filter(|p| p.has_rows()).map(|p| p.values.clone()).collect();
    let in_window = seen.iter().filter(|p| window.contains(&p.values));
    let emptied = checks::emptied(in_window.map(|p| (p.values.as_slice(), p.has_rows())), &with_rows);
    let carried = match window.last() {
        Some(last) => seen.iter().filter(|p| p.values > *last).cloned().collect(),
        None => Vec::new(),
    };
    let base = match keeps {
        Some(base) => Base::Current(base),
        None => Base::New(seen.into_iter().filter(|p| p.values < from).collect()),
    };
    Ok(Plan { from, base, carried, emptied })
}
