//! What happens to versions after they are written: status, rollback through the same
//! compare-and-swap, retention of the last N, and fenced garbage collection.
//!
//! Invariant: deletion is fenced by construction. The only thing that can be deleted is a
//! [`VersionDir`]: a directory `<layer>/<table>/<version>` directly under the storage
//! root, for a managed layer (silver, gold, ops), that no kept version references and
//! that is neither the current nor the previous version. There is no API to delete a path.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::config::Retention;
use crate::ids::Layer;
use crate::local::catalog::{Catalog, CatalogError, PublishRecord, TableHead, Version};

/// A version directory that may be deleted. Only [`plan_gc`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionDir {
    layer: Layer,
    table: String,
    version: String,
}

impl VersionDir {
    /// The directory of `version` of a managed table, if all three parts are what strata
    /// makes: a managed layer (never Bronze), a table identifier and a version id.
    pub(crate) fn checked(layer: Layer, table: &str, version: &str) -> Option<Self> {
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

/// A directory found under a table's prefix.
#[derive(Debug, Clone)]
pub struct StoredDir {
    pub name: String,
    pub bytes: u64,
    pub modified: DateTime<Utc>,
}

/// The storage side of the lifecycle.
pub trait VersionStorage {
    /// The directories directly under `<layer>/<table>/`.
    fn list_version_dirs(&self, layer: Layer, table: &str) -> std::io::Result<Vec<StoredDir>>;
    /// Deletes one version directory; returns the bytes freed.
    fn delete_version_dir(&self, dir: &VersionDir) -> std::io::Result<u64>;
}

/// One thing gc deletes, and why.
#[derive(Debug, Clone)]
pub struct GcItem {
    pub table: String,
    pub dir: Option<VersionDir>,
    /// A catalog record to forget (a version no longer kept).
    pub forget: Option<String>,
    pub bytes: u64,
    pub reason: String,
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A version id as strata makes them: `v<digits>T<digits>Z-<hex>`.
pub(crate) fn is_version_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else { return false };
    let Some((stamp, suffix)) = rest.split_once('-') else { return false };
    stamp.len() >= 16
        && stamp.ends_with('Z')
        && stamp.chars().all(|c| c.is_ascii_digit() || c == 'T' || c == 'Z')
        && !suffix.is_empty()
        && suffix.chars().all(|c| c.is_ascii_hexdigit())
}

/// The versions a table keeps: the last `n` published ones, and always current and previous.
pub fn kept_versions(head: &TableHead, history: &[PublishRecord], n: usize) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for r in history {
        if kept.len() >= n.max(2) {
            break;
        }
        if !kept.contains(&r.version) {
            kept.push(r.version.clone());
        }
    }
    for v in std::iter::once(&head.current).chain(head.previous.as_ref()) {
        if !kept.contains(v) {
            kept.push(v.clone());
        }
    }
    kept
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

/// Works out what gc would delete for one managed table. Pure: reads, never deletes.
pub fn plan_table(
    catalog: &Catalog,
    storage: &dyn VersionStorage,
    layer: Layer,
    db: &str,
    table: &str,
    retention: Retention,
    now: DateTime<Utc>,
) -> Result<Vec<GcItem>, CatalogError> {
    let mut items = Vec::new();
    if layer == Layer::Bronze || !is_identifier(table) {
        return Ok(items); // strata never deletes what it does not own
    }
    let Some(head) = catalog.head(db, table)? else { return Ok(items) };
    let history = catalog.history(db, table)?;
    let kept = kept_versions(&head, &history, retention.versions);
    let versions = catalog.versions(db, table)?;
    let published: BTreeSet<&str> = history.iter().map(|r| r.version.as_str()).collect();
    let young = |created: &str| {
        DateTime::parse_from_rfc3339(created)
            .map(|t| now - t.with_timezone(&Utc) < retention.orphan_grace)
            .unwrap_or(true)
    };

    // Directories any kept version reads, and versions possibly still in flight.
    let mut protected: BTreeSet<String> = BTreeSet::new();
    let mut forget = Vec::new();
    for v in &versions {
        let keep =
            kept.contains(&v.version) || (!published.contains(v.version.as_str()) && young(&v.created_at));
        if keep {
            protected.extend(referenced_dirs(v));
            protected.insert(v.version.clone());
        } else {
            forget.push(v.version.clone());
        }
    }
    protected.insert(head.current.clone());
    protected.extend(head.previous.clone());

    let dirs = storage.list_version_dirs(layer, table).unwrap_or_default();
    for d in &dirs {
        if protected.contains(&d.name) || !is_version_id(&d.name) {
            continue;
        }
        let recorded = versions.iter().any(|v| v.version == d.name);
        if !recorded && now - d.modified < retention.orphan_grace {
            continue; // a run may be writing it right now
        }
        items.push(GcItem {
            table: format!("{db}.{table}"),
            dir: Some(VersionDir { layer, table: table.to_string(), version: d.name.clone() }),
            forget: forget.iter().find(|v| **v == d.name).cloned(),
            bytes: d.bytes,
            reason: match (recorded, published.contains(d.name.as_str())) {
                (true, true) => "version past retention".into(),
                (true, false) => "staged, never published".into(),
                (false, _) => "left by a run that never recorded it".into(),
            },
        });
    }
    for v in forget {
        if !items.iter().any(|i| i.forget.as_deref() == Some(v.as_str())) {
            let reason = if published.contains(v.as_str()) {
                "version past retention"
            } else {
                "staged, never published"
            };
            items.push(GcItem {
                table: format!("{db}.{table}"),
                dir: None,
                forget: Some(v),
                bytes: 0,
                reason: reason.into(),
            });
        }
    }
    Ok(items)
}

/// Carries out a plan: deletes data first, then forgets records, so a crash in between
/// leaves at most a record without data, which the next gc forgets.
pub fn execute(
    catalog: &Catalog,
    storage: &dyn VersionStorage,
    db_table: (&str, &str),
    items: &[GcItem],
) -> Result<u64, String> {
    let (db, table) = db_table;
    let head = catalog.head(db, table).map_err(|e| e.to_string())?;
    let mut freed = 0;
    for item in items {
        if let Some(dir) = &item.dir {
            // Re-check against the head now: a publish may have happened since planning.
            if head
                .as_ref()
                .is_some_and(|h| h.current == dir.version || h.previous.as_deref() == Some(&dir.version))
            {
                return Err(format!("refusing to delete {}: it became current or previous", dir.relative()));
            }
            freed +=
                storage.delete_version_dir(dir).map_err(|e| format!("deleting {}: {e}", dir.relative()))?;
        }
    }
    for item in items {
        if let Some(v) = &item.forget {
            catalog.forget(db, table, v).map_err(|e| e.to_string())?;
        }
    }
    Ok(freed)
}

/// One table's state, for `strata status`.
#[derive(Debug, Clone)]
pub struct TableStatus {
    pub database: String,
    pub table: String,
    pub head: TableHead,
    pub rows: u64,
    pub bytes: u64,
    /// Kept published versions, newest first.
    pub kept: Vec<String>,
    pub kind: String,
}

pub fn status(
    catalog: &Catalog,
    db: &str,
    table: &str,
    retention: Retention,
) -> Result<Option<TableStatus>, CatalogError> {
    let Some(head) = catalog.head(db, table)? else { return Ok(None) };
    let current = catalog.version(db, table, &head.current)?;
    let history = catalog.history(db, table)?;
    Ok(Some(TableStatus {
        database: db.to_string(),
        table: table.to_string(),
        rows: current.manifest.rows(),
        bytes: current.manifest.bytes(),
        kept: kept_versions(&head, &history, retention.versions),
        kind: current.kind,
        head,
    }))
}

/// Publishes an older kept version (default: the previous one) with the same
/// compare-and-swap as a run. Returns the version now current.
pub fn rollback(
    catalog: &Catalog,
    db: &str,
    table: &str,
    to: Option<&str>,
    retention: Retention,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let head = catalog
        .head(db, table)
        .map_err(|e| e.to_string())?
        .ok_or(format!("{db}.{table} has never been published"))?;
    let history = catalog.history(db, table).map_err(|e| e.to_string())?;
    let kept = kept_versions(&head, &history, retention.versions);
    let target = match to {
        Some(v) => v.to_string(),
        None => {
            head.previous.clone().ok_or(format!("{db}.{table} has no previous version to roll back to"))?
        }
    };
    if target == head.current {
        return Err(format!("{target} is already the current version of {db}.{table}"));
    }
    if !kept.contains(&target) {
        return Err(format!("{target} is not a kept version of {db}.{table}; kept: {}", kept.join(", ")));
    }
    catalog.version(db, table, &target).map_err(|e| e.to_string())?;
    catalog
        .publish(db, table, Some(&head.current), &target, run_id, &crate::clock::stamp(now))
        .map_err(|e| e.to_string())?;
    Ok(target)
}
