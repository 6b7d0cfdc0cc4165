//! What happens to versions after they are written, written once for every backend:
//! `status`, `rollback` (the same compare-and-swap as a run), retention of the last N
//! published versions, and fenced garbage collection. A backend says what it holds
//! ([`Lifecycle`]: a table's published head and history, its version records, the version
//! directories under its prefix) and carries out the plan; what to keep and what may be
//! deleted is decided here.
//!
//! Invariant: deletion is fenced by construction. The only thing that can be deleted is a
//! [`VersionDir`]: a directory `<layer>/<table>/<version>` directly under the storage
//! root, for a managed layer (silver, gold, ops), that no kept version references and
//! that is neither the current nor the previous version. There is no API to delete a path.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::Retention;
use crate::engine::EngineError;
use crate::ids::Layer;

/// A version directory that may be deleted. Only [`plan_gc`] and the engines' own clean-up
/// of what a run wrote make one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionDir {
    layer: Layer,
    table: String,
    version: String,
}

impl VersionDir {
    /// The directory of `version` of a managed table, if all three parts are what strata
    /// makes: a managed layer (never Bronze), a table identifier and a version id.
    pub fn checked(layer: Layer, table: &str, version: &str) -> Option<Self> {
        (layer != Layer::Bronze && is_identifier(table) && is_version_id(version)).then(|| Self {
            layer,
            table: table.to_string(),
            version: version.to_string(),
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// `<layer>/<table>/<version>`, relative to the storage root.
    pub fn relative(&self) -> String {
        format!("{}/{}/{}", self.layer.as_str(), self.table, self.version)
    }
}

/// A published version of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: String,
    pub published_at: String,
    /// The run (or rollback) that published it.
    pub by: String,
}

/// A version the backend keeps a record of (published or only staged).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub version: String,
    /// How the backend names the record to forget it (the local catalog: the version id;
    /// Athena: the version table).
    pub record: String,
}

/// A directory found directly under a table's prefix.
#[derive(Debug, Clone)]
pub struct StoredDir {
    pub name: String,
    /// Its size, when the backend knows it without reading every object.
    pub bytes: Option<u64>,
}

/// Everything the lifecycle policy needs to know about one published table.
#[derive(Debug, Clone)]
pub struct TableVersions {
    pub layer: Layer,
    pub database: String,
    pub table: String,
    pub current: Published,
    /// The version published before the current one, if any.
    pub previous: Option<String>,
    /// Distinct published versions, newest first (the current one included).
    pub history: Vec<Published>,
    pub recorded: Vec<Recorded>,
    pub dirs: Vec<StoredDir>,
    /// Rows and bytes of the current version, when the backend knows them cheaply.
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

/// What a backend provides for status, rollback and gc.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// The published tables of these databases that strata manages: (database, table).
    async fn managed_tables(&self, databases: &[String]) -> Result<Vec<(String, String)>, EngineError>;
    /// What the backend holds for a table; `None` if it was never published.
    async fn table_versions(
        &self,
        layer: Layer,
        db: &str,
        table: &str,
    ) -> Result<Option<TableVersions>, EngineError>;
    /// The version directories a version's data lives in (its own, and older ones whose
    /// partitions it carried over).
    async fn dirs_read_by(
        &self,
        tv: &TableVersions,
        version: &Recorded,
    ) -> Result<BTreeSet<String>, EngineError>;
    /// Makes the published `version` current again, with the same compare-and-swap as a
    /// run's publish, expecting `tv.current` to be current.
    async fn republish(
        &self,
        tv: &TableVersions,
        version: &str,
        run_id: &str,
        now: &str,
    ) -> Result<(), EngineError>;
    /// Deletes one version directory; returns the bytes freed.
    async fn delete_dir(&self, dir: &VersionDir) -> Result<u64, EngineError>;
    /// Forgets a version record no longer kept.
    async fn forget(&self, tv: &TableVersions, record: &Recorded) -> Result<(), EngineError>;
    /// The columns (name, type) of the version published now, if any.
    async fn published_columns(
        &self,
        db: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, String)>>, EngineError>;
    /// When `version` was last written, by the wall clock: the newest object of its
    /// directory or its record's creation (`None`: nothing stored). A run writing it now
    /// keeps it young, whatever instant its id carries (`--at` in the past).
    async fn written_at(
        &self,
        tv: &TableVersions,
        version: &str,
    ) -> Result<Option<DateTime<Utc>>, EngineError>;
    /// Drops publish history of versions no longer kept (Athena: Glue table versions).
    async fn prune_history(&self, _tv: &TableVersions, _kept: &BTreeSet<String>) -> Result<(), EngineError> {
        Ok(())
    }
}

/// One thing gc deletes or forgets, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GcItem {
    pub table: String,
    pub version: String,
    /// Whether its directory is deleted (not when a kept version still reads it).
    pub deletes_dir: bool,
    /// Whether its record is forgotten.
    pub forgets_record: bool,
    pub bytes: Option<u64>,
    pub reason: String,
    #[serde(skip)]
    dir: Option<VersionDir>,
    #[serde(skip)]
    record: Option<Recorded>,
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A version id as strata makes them: `v<digits>T<digits>Z-<hex>`.
pub fn is_version_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else { return false };
    let Some((stamp, suffix)) = rest.split_once('-') else { return false };
    stamp.len() >= 16
        && stamp.ends_with('Z')
        && stamp.chars().all(|c| c.is_ascii_digit() || c == 'T' || c == 'Z')
        && !suffix.is_empty()
        && suffix.chars().all(|c| c.is_ascii_hexdigit())
}

/// When a version was made: its id starts with the instant (`v20251106T120000000Z-…`).
pub fn version_time(version: &str) -> Option<DateTime<Utc>> {
    let stamp = version.strip_prefix('v')?.split('-').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%3fZ").ok().map(|t| t.and_utc())
}

/// The versions a table keeps: the last `n` published ones (at least two), and always the
/// current and the previous one. Newest first.
pub fn kept(tv: &TableVersions, n: usize) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for p in &tv.history {
        if kept.len() >= n.max(2) {
            break;
        }
        if !kept.contains(&p.version) {
            kept.push(p.version.clone());
        }
    }
    for v in std::iter::once(&tv.current.version).chain(tv.previous.as_ref()) {
        if !kept.contains(v) {
            kept.push(v.clone());
        }
    }
    kept
}

/// One table's line of `strata status`.
#[derive(Debug, Clone)]
pub struct TableStatus {
    pub current: Published,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    /// Kept published versions, newest first.
    pub kept: Vec<String>,
}

pub async fn status(
    backend: &dyn Lifecycle,
    layer: Layer,
    db: &str,
    table: &str,
    retention: Retention,
) -> Result<Option<TableStatus>, EngineError> {
    let Some(tv) = backend.table_versions(layer, db, table).await? else { return Ok(None) };
    Ok(Some(TableStatus {
        kept: kept(&tv, retention.versions),
        rows: tv.rows,
        bytes: tv.bytes,
        current: tv.current,
    }))
}

/// Why a rollback cannot be done (a usage error: nothing changed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CannotRollBack(pub String);

/// Publishes an older kept version (default: the previous one) with the same
/// compare-and-swap as a run. Returns the version now current.
pub async fn rollback(
    backend: &dyn Lifecycle,
    (layer, db, table): (Layer, &str, &str),
    to: Option<&str>,
    retention: Retention,
    run_id: &str,
    now: &str,
) -> Result<Result<String, CannotRollBack>, EngineError> {
    let Some(tv) = backend.table_versions(layer, db, table).await? else {
        return Ok(Err(CannotRollBack(format!("{db}.{table} has never been published"))));
    };
    let kept = kept(&tv, retention.versions);
    let target = match to {
        Some(v) => v.to_string(),
        None => match &tv.previous {
            Some(p) => p.clone(),
            None => {
                return Ok(Err(CannotRollBack(format!(
                    "{db}.{table} has no previous version to roll back to"
                ))));
            }
        },
    };
    if target == tv.current.version {
        return Ok(Err(CannotRollBack(format!("{target} is already the current version of {db}.{table}"))));
    }
    if !kept.contains(&target) {
        return Ok(Err(CannotRollBack(format!(
            "{target} is not a kept version of {db}.{table}; kept: {}",
            kept.join(", ")
        ))));
    }
    backend.republish(&tv, &target, run_id, now).await?;
    Ok(Ok(target))
}

/// Works out what gc deletes for one table. Reads, never deletes.
///
/// Kept: the last `retention.versions` published versions, the current and the previous
/// one, and versions that were never published while a run may be writing them: written
/// (by the wall clock, [`Lifecycle::written_at`]) less than `retention.orphan_grace` ago,
/// or of a table whose model's lease is held (`leased`); with every directory any of them
/// reads. Everything else that is a version directory of the table, or a version record,
/// goes.
pub async fn plan_gc(
    backend: &dyn Lifecycle,
    tv: &TableVersions,
    retention: Retention,
    now: DateTime<Utc>,
    leased: bool,
    in_flight: &[String],
) -> Result<Vec<GcItem>, EngineError> {
    let mut items = Vec::new();
    if tv.layer == Layer::Bronze || !is_identifier(&tv.table) {
        return Ok(items); // strata never deletes what it does not own
    }
    let kept: BTreeSet<String> = kept(tv, retention.versions).into_iter().collect();
    let published: BTreeSet<&str> = tv.history.iter().map(|p| p.version.as_str()).collect();
    // A version nothing says the age of (nothing stored) is as old as its id says.
    let young = async |v: &str| -> Result<bool, EngineError> {
        if leased {
            return Ok(true);
        }
        let written = backend.written_at(tv, v).await?.or_else(|| version_time(v));
        Ok(written.is_none_or(|t| now - t < retention.orphan_grace))
    };
    let name = format!("{}.{}", tv.database, tv.table);

    let mut protected = kept.clone();
    protected.extend(in_flight.iter().cloned());
    let mut doomed = Vec::new();
    for r in &tv.recorded {
        let unpublished = !published.contains(r.version.as_str());
        if kept.contains(&r.version)
            || (unpublished && (in_flight.contains(&r.version) || young(&r.version).await?))
        {
            protected.insert(r.version.clone());
            protected.extend(backend.dirs_read_by(tv, r).await?);
        } else {
            doomed.push(r);
        }
    }
    let reason = |v: &str, recorded: bool| match (recorded, published.contains(v)) {
        (_, true) => "version past retention",
        (true, false) => "staged, never published",
        (false, false) => "left by a run that never recorded it",
    };
    for r in doomed {
        let dir = (!protected.contains(&r.version))
            .then(|| VersionDir::checked(tv.layer, &tv.table, &r.version))
            .flatten();
        let bytes = tv.dirs.iter().find(|d| d.name == r.version).and_then(|d| d.bytes);
        items.push(GcItem {
            table: name.clone(),
            version: r.version.clone(),
            deletes_dir: dir.is_some() && tv.dirs.iter().any(|d| d.name == r.version),
            forgets_record: true,
            bytes: if dir.is_some() { bytes } else { Some(0) },
            reason: reason(&r.version, true).into(),
            dir,
            record: Some(r.clone()),
        });
    }
    for d in &tv.dirs {
        let recorded = tv.recorded.iter().any(|r| r.version == d.name);
        if recorded || protected.contains(&d.name) || !is_version_id(&d.name) || young(&d.name).await? {
            continue;
        }
        if let Some(dir) = VersionDir::checked(tv.layer, &tv.table, &d.name) {
            items.push(GcItem {
                table: name.clone(),
                version: d.name.clone(),
                deletes_dir: true,
                forgets_record: false,
                bytes: d.bytes,
                reason: reason(&d.name, false).into(),
                dir: Some(dir),
                record: None,
            });
        }
    }
    items.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(items)
}

/// Carries out the first half of a plan for one table: re-reads what is published (never
/// deletes what became current or previous since planning) and deletes directories,
/// filling in the bytes freed. Returns what it read, for [`forget_planned`].
pub async fn delete_planned(
    backend: &dyn Lifecycle,
    tv: &TableVersions,
    items: &mut [GcItem],
) -> Result<Option<TableVersions>, EngineError> {
    let now_tv = backend.table_versions(tv.layer, &tv.database, &tv.table).await?;
    let live: BTreeSet<String> = now_tv
        .iter()
        .flat_map(|t| std::iter::once(t.current.version.clone()).chain(t.previous.clone()))
        .collect();
    for item in items.iter_mut() {
        if let Some(dir) = item.dir.as_ref().filter(|_| item.deletes_dir) {
            if live.contains(dir.version()) {
                return Err(EngineError::io(format!(
                    "refusing to delete {}: it became current or previous",
                    dir.relative()
                )));
            }
            item.bytes = Some(backend.delete_dir(dir).await?);
        }
    }
    Ok(now_tv)
}

/// The second half: forgets the records of what was deleted, then prunes the publish
/// history. Directories go first, records after, so a crash in between leaves at most a
/// record without data, which the next gc forgets.
pub async fn forget_planned(
    backend: &dyn Lifecycle,
    tv: &TableVersions,
    now_tv: Option<&TableVersions>,
    items: &[GcItem],
    retention: Retention,
) -> Result<(), EngineError> {
    for item in items {
        if let Some(r) = &item.record {
            backend.forget(tv, r).await?;
        }
    }
    let kept: BTreeSet<String> = kept(now_tv.unwrap_or(tv), retention.versions).into_iter().collect();
    backend.prune_history(now_tv.unwrap_or(tv), &kept).await
}

/// gc stopped: what it had deleted, and why it stopped.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct GcStopped {
    pub done: Vec<GcItem>,
    #[source]
    pub source: EngineError,
}

/// A table gc looks at, and whether a run holds its model's lease now (then none of its
/// unpublished versions is collected: the run may be writing one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcTable {
    pub layer: Layer,
    pub database: String,
    pub table: String,
    pub leased: bool,
    /// Versions unfinished backfills are writing (`RunState::backfill_versions`): kept
    /// whatever their age, as a backfill may be resumed days after it was interrupted.
    pub in_flight: Vec<String>,
}

/// gc of every table strata manages on this backend: the project's models and every other
/// table the backend holds versions of in the managed layers (a model removed from the
/// project still has versions to collect). Returns what was (or, dry, would be) deleted.
pub async fn gc(
    backend: &dyn Lifecycle,
    tables: &[GcTable],
    retention: Retention,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Vec<GcItem>, GcStopped> {
    // Every table's directories are deleted before any record is forgotten: deleting
    // needs no write to the catalog, so on a full disk gc frees what it can first, and
    // the writes that follow find room. A stop reports the tables whose deletes were done.
    type Planned = Vec<(TableVersions, Option<TableVersions>, Vec<GcItem>)>;
    let stop = |planned: Planned, source| GcStopped {
        done: planned.into_iter().flat_map(|(_, _, items)| items).collect(),
        source,
    };
    let mut planned: Planned = Vec::new();
    for t in tables {
        let tv = match backend.table_versions(t.layer, &t.database, &t.table).await {
            Ok(Some(tv)) => tv,
            Ok(None) => continue,
            Err(e) => return Err(stop(planned, e)),
        };
        let mut items = match plan_gc(backend, &tv, retention, now, t.leased, &t.in_flight).await {
            Ok(items) => items,
            Err(e) => return Err(stop(planned, e)),
        };
        let now_tv = if dry_run {
            None
        } else {
            match delete_planned(backend, &tv, &mut items).await {
                Ok(now_tv) => now_tv,
                Err(e) => return Err(stop(planned, e)),
            }
        };
        planned.push((tv, now_tv, items));
    }
    if !dry_run {
        let mut failed = None;
        for (tv, now_tv, items) in &planned {
            if let Err(e) = forget_planned(backend, tv, now_tv.as_ref(), items, retention).await {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            return Err(stop(planned, e));
        }
    }
    Ok(planned.into_iter().flat_map(|(_, _, items)| items).collect())
}
