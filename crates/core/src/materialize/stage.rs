//! A SELECT model's run staged, written once for every backend: what the run reads (its
//! near-real-time arrivals), what it writes, which published rows it keeps, how its
//! version is laid out (`layered`), and what it records; each step a primitive of the
//! backend's [`StagingStore`].
//!
//! The sequence: read the swap token (before anything else, so a publish in between makes
//! this run's publish fail); read what is published once (an incremental run: the layout
//! it plans against and the rows it may keep); for a near-real-time run, list the window's source objects and
//! decide what to read (`arrivals::decide`); run the SELECT into the version's location;
//! lend the published rows of the window it keeps; plan the layered layout (an
//! incremental run); record what the version reflects (when the read was limited to a
//! listing and the version carries nothing after its window); record the version, staged.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::arrivals;
use super::layered::{self, Base, Current, LayeredStore};
use super::store::{StoredPartition, VersionOf};
use crate::engine::{ArrivedSource, EngineError, Job, JobKind, Partitions, Staged, StepStats, SwapToken};

/// How an incremental run's version is laid out (see `layered`).
#[derive(Debug, Clone)]
pub struct Layered<H> {
    /// The window's first partition: the version reads its base before it.
    pub from: Vec<String>,
    pub base: Base<H>,
    /// The partitions after the window, carried into the version by reference.
    pub carried: Vec<StoredPartition<H>>,
}

/// The primitives a backend gives the staging of a SELECT model.
///
/// Guarantees: nothing a primitive writes is visible to readers (everything is under the
/// job's own version, or a base generation named by it); `write_select` and `lend` may be
/// called again for the same job after an interrupted attempt and replace what it wrote.
#[async_trait]
pub trait StagingStore: LayeredStore {
    /// The token a publish of the job's table swaps on (`None`: never published).
    async fn token(&self, job: &Job) -> Result<Option<SwapToken>, EngineError>;

    /// Every object of the arrived source's partitions of `window`, sorted (`None`: the
    /// backend cannot list it, and the run reads its window as rendered).
    async fn source_objects(
        &self,
        job: &Job,
        source: &ArrivedSource,
        window: &Partitions,
    ) -> Result<Option<Vec<String>>, EngineError>;

    /// The objects that version `version` of the job's table recorded it reflects.
    async fn recorded_objects(
        &self,
        job: &Job,
        version: &str,
    ) -> Result<Option<BTreeSet<String>>, EngineError>;

    /// Whether one run can have its source limited to `objects` (on Athena: a statement's
    /// size); past it, the run reads its window as rendered.
    fn can_limit(&self, _objects: &[&String]) -> bool {
        true
    }

    /// Runs the job's SELECT into its version's location, its arrived source limited to
    /// `only` when given (none: nothing arrived). Returns what it wrote (partitions of an
    /// incremental job; a whole table's may be left out) and what it cost.
    async fn write_select(
        &self,
        job: &Job,
        only: Option<&[String]>,
    ) -> Result<(VersionOf<Self>, StepStats), EngineError>;

    /// Makes `lent`, a partition of the published version, part of the job's version beside
    /// what the run wrote for it (`own`); returns the partition the version then holds.
    async fn lend(
        &self,
        job: &Job,
        version: &VersionOf<Self>,
        lent: StoredPartition<Self::Partition>,
        own: Option<StoredPartition<Self::Partition>>,
    ) -> Result<StoredPartition<Self::Partition>, EngineError>;

    /// Records that the job's version reflects the source objects `listed`.
    async fn record_objects(&self, job: &Job, listed: &[String]) -> Result<(), EngineError>;

    /// Records the run's version, staged (invisible to readers): `version` holds what the run
    /// wrote and was lent; an incremental run's `layered` says what it carries and reads
    /// before its window.
    async fn record_run(
        &self,
        job: &Job,
        version: VersionOf<Self>,
        layered: Option<Layered<Self::Partition>>,
    ) -> Result<(), EngineError>;
}

/// What a near-real-time run reads: the source limited to `only` (`None`: as rendered),
/// the published rows it keeps, and the listing it records.
struct Reading<H> {
    only: Option<Vec<String>>,
    lent: Vec<StoredPartition<H>>,
    record: Option<Vec<String>>,
}

async fn reading<S: StagingStore + ?Sized>(
    store: &S,
    job: &Job,
    source: &ArrivedSource,
    window: &Partitions,
    current: Option<&Current<S::Partition>>,
) -> Result<Reading<S::Partition>, EngineError> {
    let Some(listed) = store.source_objects(job, source, window).await? else {
        return Ok(Reading { only: None, lent: Vec::new(), record: None });
    };
    // The published version lends its rows of the window when it is of the same base
    // generation and recorded what it reflects.
    let from = window.first().cloned().unwrap_or_default();
    let lender = current.filter(|c| c.layout.as_ref().is_some_and(|l| arrivals::lends_rows(&from, &l.from)));
    let recorded = match &lender {
        Some(c) => store.recorded_objects(job, &c.version).await?,
        None => None,
    };
    match arrivals::decide(&listed, recorded.as_ref(), |o| store.can_limit(o)) {
        arrivals::Read::Arrived(new) => {
            let lent = lender
                .map(|c| c.partitions.iter().filter(|p| window.contains(&p.values)).cloned().collect())
                .unwrap_or_default();
            Ok(Reading { only: Some(new), lent, record: Some(listed) })
        }
        arrivals::Read::Window => {
            if recorded.is_some() {
                tracing::info!(model = %job.model, "too many new objects for one run: reading the whole window");
            }
            // The whole window, as listed when the backend can be given the list (what it
            // reads is then what it records); else as rendered, recording nothing.
            let all: Vec<&String> = listed.iter().collect();
            if store.can_limit(&all) {
                Ok(Reading { only: Some(listed.clone()), lent: Vec::new(), record: Some(listed) })
            } else {
                Ok(Reading { only: None, lent: Vec::new(), record: None })
            }
        }
    }
}

/// Stages a SELECT model's run as a new version (see the module's documentation).
pub async fn select<S: StagingStore + ?Sized>(store: &S, job: &Job) -> Result<Staged, EngineError> {
    let JobKind::Select { replaces, .. } = &job.kind else {
        return Err(EngineError::Query(format!(
            "internal error: {} is not a SELECT model (a bug)",
            job.model
        )));
    };
    let expected = store.token(job).await?;
    // What is published, read once (after the token, so a publish in between fails ours).
    let current = match replaces {
        Some(_) => store.current_layered(job).await?,
        None => None,
    };
    let reading = match (&job.arrived, replaces) {
        (Some(source), Some(window)) => reading(store, job, source, window, current.as_ref()).await?,
        _ => Reading { only: None, lent: Vec::new(), record: None },
    };
    let (mut version, stats) = store.write_select(job, reading.only.as_deref()).await?;
    for lent in reading.lent {
        let own = version.partitions.iter().position(|p| p.values == lent.values);
        let own = own.map(|i| version.partitions.swap_remove(i));
        let kept = store.lend(job, &version, lent, own).await?;
        version.partitions.push(kept);
    }
    version.partitions.sort_by(|a, b| a.values.cmp(&b.values));
    let Some(window) = replaces else {
        store.record_run(job, version, None).await?;
        return Ok(Staged { job: job.clone(), expected, changed: true, stats, emptied: Vec::new() });
    };
    let plan = layered::plan(store, job, window, current, &version.columns, &version.partitions).await?;
    // The record of what a near-real-time version reflects covers its window; one that
    // carries partitions after it records nothing, so the next run reads its whole window.
    if let Some(listed) = reading.record.filter(|_| plan.carried.is_empty()) {
        store.record_objects(job, &listed).await?;
    }
    let layered = Layered { from: plan.from, base: plan.base, carried: plan.carried };
    store.record_run(job, version, Some(layered)).await?;
    Ok(Staged { job: job.clone(), expected, changed: true, stats, emptied: plan.emptied })
}
