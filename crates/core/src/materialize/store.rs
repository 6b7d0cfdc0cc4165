//! The narrow table store the publish policy is written against: what a backend must be
//! able to do with a table's versions, and nothing of what to do with them (that is the
//! policy's, in this module's siblings). Each backend implements it with its primitives:
//! the local engine with its catalog and the lake's directories, Athena with Glue and S3.
//!
//! Guarantees every implementation gives:
//! - [`TableStore::published`] reads the compare-and-swap token before the version it
//!   points at, so a publish made with the token fails if another publish came between;
//! - [`TableStore::record_staged`] makes nothing visible to readers: a staged version is
//!   only published by `Engine::publish`'s compare-and-swap;
//! - a partition handle stays valid as long as a kept version reads it (versions share
//!   partitions by reference; gc deletes only what no kept version reads).

use async_trait::async_trait;

use crate::engine::{EngineError, Job, PartitionKey, SwapToken};

/// A partition of a version as the policy sees it.
#[derive(Debug, Clone)]
pub struct StoredPartition<H> {
    pub values: PartitionKey,
    /// Its rows, when the store knows them without reading the data (`None`: unknown,
    /// counted as holding rows).
    pub rows: Option<u64>,
    /// How the backend holds it: its files, its Glue partition.
    pub handle: H,
}

impl<H> StoredPartition<H> {
    pub fn has_rows(&self) -> bool {
        self.rows.is_none_or(|r| r > 0)
    }
}

/// A version as the policy sees it: how the backend defines it, its columns (name and
/// type, partition columns last), its partitions.
#[derive(Debug, Clone)]
pub struct StoredVersion<D, H> {
    pub definition: D,
    pub columns: Vec<(String, String)>,
    pub partitions: Vec<StoredPartition<H>>,
}

/// A version of the store `S`.
pub type VersionOf<S> = StoredVersion<<S as TableStore>::Definition, <S as TableStore>::Partition>;

#[async_trait]
pub trait TableStore: Send + Sync {
    /// How the backend defines a version: its schema, its Glue table.
    type Definition: Clone + Send + Sync;
    /// How the backend holds a partition: its files, its Glue partition.
    type Partition: Clone + Send + Sync;

    /// The token a publish of the job's table swaps on (`None`: never published), then the
    /// version it points at as readers see it: every partition, those a layered version
    /// reads from its base generation included.
    async fn published(&self, job: &Job)
    -> Result<(Option<SwapToken>, Option<VersionOf<Self>>), EngineError>;

    /// What the job's windows wrote under its version (`Engine::stage_part`), if anything.
    async fn parts_written(&self, job: &Job) -> Result<Option<VersionOf<Self>>, EngineError>;

    /// Records `version` as the job's version, staged: invisible to readers.
    async fn record_staged(&self, job: &Job, version: VersionOf<Self>) -> Result<(), EngineError>;
}
