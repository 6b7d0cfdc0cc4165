//! The local catalog: a SQLite file that records each table's versions, which one is
//! published, and run history. The local twin of Glue.
//!
//! Invariant: a publish is one SQLite transaction whose compare-and-swap on the current
//! version either moves the table to the new version or changes nothing.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::state::sqlite::{Access, Db, OpenError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("catalog {path}: {source}")]
    Open { path: String, source: OpenError },
    #[error(
        "publish conflict on {table}: expected version {expected}, found {found}: {by} published it first"
    )]
    Conflict { table: String, expected: String, found: String, by: String },
    #[error("refusing to forget version {version} of {table}: it is current, previous or unknown")]
    Protected { table: String, version: String },
    #[error("catalog: version {version} of {table} was published already")]
    AlreadyPublished { table: String, version: String },
    #[error("catalog: version {version} of {table} is not recorded")]
    UnknownVersion { table: String, version: String },
    #[error("catalog: manifest of {table} version {version} is corrupt: {source}")]
    Manifest { table: String, version: String, source: serde_json::Error },
    /// The catalog cannot see the lake's history: publishing would hide it, gc would
    /// delete it.
    #[error(
        "catalog {path} does not belong to the lake {lake}: {why}. Publishing over it would hide the lake's history and gc would delete it as leftovers. Restore the catalog file this lake was written with (or point state_dir at it); to start the lake over instead, move {lake}/silver, {lake}/gold, {lake}/ops and {marker} away"
    )]
    NotThisLake { path: String, lake: String, marker: String, why: String },
    #[error("{path}: {source}")]
    Marker { path: String, source: std::io::Error },
}

/// One data file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Relative to the storage root.
    pub path: String,
    pub size: u64,
    pub rows: u64,
}

/// One partition of a version: its values (in `partition_columns` order) and its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub values: Vec<String>,
    pub files: Vec<DataFile>,
}

/// What a version holds. Partitions may point at files written by earlier versions
/// (an incremental run replaces only its window's partitions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub partition_columns: Vec<String>,
    pub partitions: Vec<Partition>,
}

impl Manifest {
    pub fn rows(&self) -> u64 {
        self.partitions.iter().flat_map(|p| &p.files).map(|f| f.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.partitions.iter().flat_map(|p| &p.files).map(|f| f.size).sum()
    }
}

/// A table version as recorded.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: String,
    /// `external` for DDL-defined tables, `managed` for tables strata writes.
    pub kind: String,
    /// The version's own directory relative to the storage root (`silver/t/<version>`); for
    /// an external table, its location relative to the storage root when it is inside it
    /// (empty otherwise: the DDL's location is used).
    pub location: String,
    /// The DDL of an external table; empty for managed tables.
    pub ddl: String,
    /// An Arrow IPC stream holding the schema (data columns then partition columns).
    pub schema: Vec<u8>,
    pub manifest: Manifest,
    pub run_id: String,
    pub created_at: String,
    /// An incremental model's version in the layered layout: its own partitions (the
    /// window) and the base generation it reads before them. `manifest` is then the whole
    /// table as readers see it: the base's partitions before `from`, then its own.
    pub layered: Option<Layered>,
}

/// A version in the layered layout (the local mirror of Athena's: see `athena::staging`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layered {
    /// The base generation (the version id of the run that started it).
    pub base: String,
    /// The first partition of the window: the base is read before it.
    pub from: Vec<String>,
    /// The partitions this version wrote.
    pub own: Vec<Partition>,
}

/// One publish of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRecord {
    pub version: String,
    pub published_at: String,
    pub run_id: String,
}

/// A table's pointer: the version readers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableHead {
    pub current: String,
    pub previous: Option<String>,
    pub published_at: String,
    pub published_by: String,
}

/// A SQLite-backed catalog. Safe to share across threads and processes.
#[derive(Debug)]
pub struct Catalog {
    path: String,
    db: Arc<Db>,
}

/// The catalog's tables.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tables (
    db TEXT NOT NULL, name TEXT NOT NULL,
    current_version TEXT NOT NULL, previous_version TEXT,
    published_at TEXT NOT NULL, published_by TEXT NOT NULL,
    PRIMARY KEY (db, name));
CREATE TABLE IF NOT EXISTS versions (
    db TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
    kind TEXT NOT NULL, location TEXT NOT NULL, ddl TEXT NOT NULL, schema BLOB NOT NULL,
    manifest TEXT NOT NULL, run_id TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (db, name, version));
CREATE TABLE IF NOT EXISTS base_partitions (
    db TEXT NOT NULL, name TEXT NOT NULL, generation TEXT NOT NULL, vals TEXT NOT NULL, partition_json TEXT NOT NULL,
    PRIMARY KEY (db, name, generation, vals));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS publishes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    db TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
    published_at TEXT NOT NULL, run_id TEXT NOT NULL);
";

/// Registers partitions in a base generation (replacing any with the same values).
fn insert_base(
    tx: &rusqlite::Transaction<'_>,
    db: &str,
    name: &str,
    generation: &str,
    parts: &[Partition],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare(
        "INSERT OR REPLACE INTO base_partitions (db, name, generation, vals, partition_json) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for p in parts {
        let vals = serde_json::to_string(&p.values).expect("strings serialize");
        let json = serde_json::to_string(p).expect("partitions serialize");
        stmt.execute(params![db, name, generation, vals, json])?;
    }
    Ok(())
}

impl From<CatalogError> for crate::engine::EngineError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Conflict { .. } => Self::Conflict(e.to_string()),
            e => Self::catalog(e.to_string()).caused_by(e),
        }
    }
}

impl Catalog {
    /// Opens it to read and write (creating it the first time).
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        Self::open_for(path, Access::Write)
    }

    /// Opens it for `access`: to read, nothing is written (see [`Access::Read`]).
    pub fn open_for(path: &Path, access: Access) -> Result<Self, CatalogError> {
        let db = Db::open(path, &[SCHEMA], access)
            .map_err(|source| CatalogError::Open { path: path.display().to_string(), source })?;
        Self::on(Arc::new(db))
    }

    /// The catalog in `db` (opened with [`SCHEMA`] among its schemas).
    pub fn on(db: Arc<Db>) -> Result<Self, CatalogError> {
        let catalog = Self { path: db.path().display().to_string(), db };
        // Catalogs made before the layered layout: its two columns, added once (by a
        // writer: one opened to read is reopened to write for it).
        let has_base: bool = catalog
            .db
            .read()
            .query_row("SELECT count(*) FROM pragma_table_info('versions') WHERE name = 'base'", [], |r| {
                r.get(0)
            })
            .map_err(|e| catalog.err(e))?;
        if !has_base {
            // Checked again under the write lock: another process may have added them since.
            let mut w = catalog.writer()?;
            let tx =
                w.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| catalog.err(e))?;
            let added: bool = tx
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('versions') WHERE name = 'base'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| catalog.err(e))?;
            if !added {
                tx.execute_batch("ALTER TABLE versions ADD COLUMN base TEXT; ALTER TABLE versions ADD COLUMN hot_from TEXT;")
                    .map_err(|e| catalog.err(e))?;
            }
            tx.commit().map_err(|e| catalog.err(e))?;
        }
        Ok(catalog)
    }

    /// The connection, to write (reopened for writing if it was opened to read).
    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Connection>, CatalogError> {
        self.db.write().map_err(|source| CatalogError::Open { path: self.path.clone(), source })
    }

    /// This catalog's identity, if it has one yet.
    fn recorded_id(&self) -> Result<Option<String>, CatalogError> {
        self.db
            .read()
            .query_row("SELECT value FROM meta WHERE key = 'catalog_id'", [], |r| r.get::<_, String>(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// This catalog's identity, made once when the file is new.
    fn id(&self) -> Result<String, CatalogError> {
        // Read first: a catalog that has one is never written to here (a full or read-only disk).
        if let Some(id) = self.recorded_id()? {
            return Ok(id);
        }
        let fresh = format!("catalog-{:016x}", rand::random::<u64>());
        self.writer()?
            .execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('catalog_id', ?1)", params![fresh])
            .map_err(|e| self.err(e))?;
        self.recorded_id()?.ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Checks that this catalog is the one the lake at `root` was written with, and marks
    /// the lake with it (`<root>/_strata/catalog-id`) the first time. A catalog that was
    /// truncated to nothing, replaced or lost opens as a new, empty one: it must not be
    /// taken for a new lake when the lake holds versions it does not know. To read
    /// ([`Access::Read`]) it checks and marks nothing new: a catalog without an id yet is
    /// new, and must not meet a marked lake.
    pub fn claim(&self, root: &Path, access: Access) -> Result<(), CatalogError> {
        let marker = root.join("_strata").join("catalog-id");
        let id = match access {
            Access::Write => self.id()?,
            Access::Read => self.recorded_id()?.unwrap_or_else(|| "(none: an empty file)".into()),
        };
        let refuse = |why: String| CatalogError::NotThisLake {
            path: self.path.clone(),
            lake: root.display().to_string(),
            marker: marker.display().to_string(),
            why,
        };
        let io = |source| CatalogError::Marker { path: marker.display().to_string(), source };
        match std::fs::read_to_string(&marker) {
            Ok(text) if text.trim() == id => return Ok(()),
            Ok(text) => {
                return Err(refuse(format!(
                    "the lake was written with catalog {}, this file is catalog {id} (a new file: was it truncated, replaced or deleted?)",
                    text.trim()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        // No mark yet: a new lake, or one written before lakes were marked. Either the
        // catalog knows tables, or the lake must hold no managed version.
        if self.tables()?.is_empty()
            && let Some(dir) = managed_version_dir(root).map_err(io)?
        {
            return Err(refuse(format!(
                "the catalog knows no table, but the lake holds versions ({})",
                dir.display()
            )));
        }
        if access == Access::Read {
            return Ok(());
        }
        let parent = marker.parent().expect("the marker has a parent");
        std::fs::create_dir_all(parent).map_err(io)?;
        // Written aside and renamed: two processes marking a new lake at once write the same id.
        let temp = parent.join(format!("catalog-id.{}.tmp", std::process::id()));
        std::fs::write(&temp, format!("{id}\n")).map_err(io)?;
        std::fs::rename(&temp, &marker).map_err(io)
    }

    fn err(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError::Sqlite { path: self.path.clone(), source }
    }

    /// The published pointer of `db.name`, if the table exists.
    pub fn head(&self, db: &str, name: &str) -> Result<Option<TableHead>, CatalogError> {
        let conn = self.db.read();
        conn.query_row(
            "SELECT current_version, previous_version, published_at, published_by FROM tables WHERE db = ?1 AND name = ?2",
            params![db, name],
            |r| Ok(TableHead { current: r.get(0)?, previous: r.get(1)?, published_at: r.get(2)?, published_by: r.get(3)? }),
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// A recorded version (staged or published).
    pub fn version(&self, db: &str, name: &str, version: &str) -> Result<Version, CatalogError> {
        let conn = self.db.read();
        let row = conn
            .query_row(
                "SELECT kind, ddl, schema, manifest, run_id, created_at, location, base, hot_from FROM versions WHERE db = ?1 AND name = ?2 AND version = ?3",
                params![db, name, version],
                |r| {
                    Ok((
                        (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?),
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        (r.get::<_, Option<String>>(7)?, r.get::<_, Option<String>>(8)?),
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        drop(conn);
        let table = format!("{db}.{name}");
        let Some(((kind, ddl, schema), manifest, run_id, created_at, location, (base, hot_from))) = row
        else {
            return Err(CatalogError::UnknownVersion { table, version: version.into() });
        };
        let corrupt =
            |source| CatalogError::Manifest { table: table.clone(), version: version.into(), source };
        let mut manifest: Manifest = serde_json::from_str(&manifest).map_err(corrupt)?;
        let layered = match (base, hot_from) {
            (Some(base), Some(from)) => {
                let from: Vec<String> = serde_json::from_str(&from).map_err(corrupt)?;
                let own = std::mem::take(&mut manifest.partitions);
                manifest.partitions = self.base_partitions(db, name, &base, &from)?;
                manifest.partitions.extend(own.iter().cloned());
                Some(Layered { base, from, own })
            }
            _ => None,
        };
        Ok(Version {
            version: version.into(),
            kind,
            location,
            ddl,
            schema,
            manifest,
            run_id,
            created_at,
            layered,
        })
    }

    /// The partitions of a base generation before `from`, in order.
    pub(crate) fn base_partitions(
        &self,
        db: &str,
        name: &str,
        generation: &str,
        from: &[String],
    ) -> Result<Vec<Partition>, CatalogError> {
        let conn = self.db.read();
        let mut stmt = conn
            .prepare("SELECT vals, partition_json FROM base_partitions WHERE db = ?1 AND name = ?2 AND generation = ?3 ORDER BY vals")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![db, name, generation], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (_, json) = row.map_err(|e| self.err(e))?;
            let p: Partition = serde_json::from_str(&json).map_err(|source| CatalogError::Manifest {
                table: format!("{db}.{name}"),
                version: format!("base {generation}"),
                source,
            })?;
            if p.values.as_slice() < from {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.values.cmp(&b.values));
        Ok(out)
    }

    /// Starts a base generation holding `partitions` (a range run, a backfill's first tick,
    /// or the first publish: then empty).
    pub fn create_base(
        &self,
        db: &str,
        name: &str,
        generation: &str,
        partitions: &[Partition],
    ) -> Result<(), CatalogError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "DELETE FROM base_partitions WHERE db = ?1 AND name = ?2 AND generation = ?3",
            params![db, name, generation],
        )
        .map_err(|e| self.err(e))?;
        insert_base(&tx, db, name, generation, partitions).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// The published version of `db.name`, read in one statement so it is consistent.
    pub fn current(&self, db: &str, name: &str) -> Result<Option<Version>, CatalogError> {
        let Some(head) = self.head(db, name)? else { return Ok(None) };
        self.version(db, name, &head.current).map(Some)
    }

    /// Records a staged version. It is invisible to readers until published. Staging a
    /// version again (a resumed backfill sealing what a killed attempt sealed) replaces its
    /// record, unless it was published.
    pub fn stage(&self, db: &str, name: &str, v: &Version) -> Result<(), CatalogError> {
        // Layered: only the version's own partitions are its record (the base's are shared).
        let stored = match &v.layered {
            Some(l) => Manifest {
                partition_columns: v.manifest.partition_columns.clone(),
                partitions: l.own.clone(),
            },
            None => v.manifest.clone(),
        };
        let manifest = serde_json::to_string(&stored).expect("manifests serialize");
        let base = v.layered.as_ref().map(|l| l.base.clone());
        let from = v.layered.as_ref().map(|l| serde_json::to_string(&l.from).expect("strings serialize"));
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let published: bool = tx
            .query_row(
                "SELECT 1 FROM publishes WHERE db = ?1 AND name = ?2 AND version = ?3",
                params![db, name, v.version],
                |_| Ok(true),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or(false);
        if published {
            return Err(CatalogError::AlreadyPublished {
                table: format!("{db}.{name}"),
                version: v.version.clone(),
            });
        }
        tx.execute(
            "DELETE FROM versions WHERE db = ?1 AND name = ?2 AND version = ?3",
            params![db, name, v.version],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO versions (db, name, version, kind, location, ddl, schema, manifest, run_id, created_at, base, hot_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![db, name, v.version, v.kind, v.location, v.ddl, v.schema, manifest, v.run_id, v.created_at, base, from],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Whether `version` of `db.name` was ever published.
    pub fn was_published(&self, db: &str, name: &str, version: &str) -> Result<bool, CatalogError> {
        let conn = self.db.read();
        conn.query_row(
            "SELECT 1 FROM publishes WHERE db = ?1 AND name = ?2 AND version = ?3",
            params![db, name, version],
            |_| Ok(true),
        )
        .optional()
        .map(|v| v.unwrap_or(false))
        .map_err(|e| self.err(e))
    }

    /// Points `db.name` at `version` if its current version is still `expected`
    /// (`None`: the table must not exist yet). One transaction: all or nothing.
    pub fn publish(
        &self,
        db: &str,
        name: &str,
        expected: Option<&str>,
        version: &str,
        run_id: &str,
        now: &str,
    ) -> Result<(), CatalogError> {
        self.publish_with(db, name, expected, version, run_id, now, None)
    }

    /// `publish`, registering `leaving` (the partitions that left the hot window since the
    /// current version) in the base generation `(generation, leaving)` in the same
    /// transaction: readers switch to the new version and its base at once.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_with(
        &self,
        db: &str,
        name: &str,
        expected: Option<&str>,
        version: &str,
        run_id: &str,
        now: &str,
        leaving: Option<(&str, &[Partition])>,
    ) -> Result<(), CatalogError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT current_version, published_by FROM tables WHERE db = ?1 AND name = ?2",
                params![db, name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if found.as_ref().map(|(v, _)| v.as_str()) != expected {
            let (found, by) = found.unwrap_or_else(|| ("(none)".into(), String::new()));
            // A rollback's id says so (`rollback-…`); a run's is its run id.
            let by = if by.is_empty() { "another run".to_string() } else { by };
            return Err(CatalogError::Conflict {
                table: format!("{db}.{name}"),
                expected: expected.unwrap_or("(none)").into(),
                found,
                by,
            });
        }
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM versions WHERE db = ?1 AND name = ?2 AND version = ?3",
                params![db, name, version],
                |_| Ok(true),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or(false);
        if !exists {
            return Err(CatalogError::UnknownVersion {
                table: format!("{db}.{name}"),
                version: version.into(),
            });
        }
        if let Some((generation, parts)) = leaving {
            insert_base(&tx, db, name, generation, parts).map_err(|e| self.err(e))?;
        }
        tx.execute(
            "INSERT INTO tables (db, name, current_version, previous_version, published_at, published_by)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5)
             ON CONFLICT (db, name) DO UPDATE SET previous_version = current_version,
                 current_version = excluded.current_version, published_at = excluded.published_at,
                 published_by = excluded.published_by",
            params![db, name, version, now, run_id],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO publishes (db, name, version, published_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![db, name, version, now, run_id],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Publishes of `db.name`, newest first.
    pub fn history(&self, db: &str, name: &str) -> Result<Vec<PublishRecord>, CatalogError> {
        let conn = self.db.read();
        let mut stmt = conn
            .prepare("SELECT version, published_at, run_id FROM publishes WHERE db = ?1 AND name = ?2 ORDER BY seq DESC")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![db, name], |r| {
                Ok(PublishRecord { version: r.get(0)?, published_at: r.get(1)?, run_id: r.get(2)? })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every recorded version of `db.name` (staged or published), oldest first.
    pub fn versions(&self, db: &str, name: &str) -> Result<Vec<Version>, CatalogError> {
        let ids: Vec<String> = {
            let conn = self.db.read();
            let mut stmt = conn
                .prepare(
                    "SELECT version FROM versions WHERE db = ?1 AND name = ?2 ORDER BY created_at, version",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt.query_map(params![db, name], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        ids.iter().map(|v| self.version(db, name, v)).collect()
    }

    /// Forgets a version's record. Refused for the current and the previous version.
    pub fn forget(&self, db: &str, name: &str, version: &str) -> Result<(), CatalogError> {
        let conn = self.writer()?;
        let changed = conn
            .execute(
                "DELETE FROM versions WHERE db = ?1 AND name = ?2 AND version = ?3 AND NOT EXISTS (
                     SELECT 1 FROM tables t WHERE t.db = ?1 AND t.name = ?2
                       AND (t.current_version = ?3 OR t.previous_version IS ?3))",
                params![db, name, version],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(CatalogError::Protected { table: format!("{db}.{name}"), version: version.into() });
        }
        // Base generations no recorded version reads any more.
        conn.execute(
            "DELETE FROM base_partitions WHERE db = ?1 AND name = ?2 AND generation NOT IN (
                 SELECT base FROM versions WHERE db = ?1 AND name = ?2 AND base IS NOT NULL)",
            params![db, name],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every table with its head, ordered by database and name.
    pub fn tables(&self) -> Result<Vec<(String, String, TableHead)>, CatalogError> {
        let conn = self.db.read();
        let mut stmt = conn
            .prepare("SELECT db, name, current_version, previous_version, published_at, published_by FROM tables ORDER BY db, name")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    TableHead {
                        current: r.get(2)?,
                        previous: r.get(3)?,
                        published_at: r.get(4)?,
                        published_by: r.get(5)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// A version directory of a managed layer under `root` (`<layer>/<table>/<version>/`), if any.
fn managed_version_dir(root: &Path) -> std::io::Result<Option<std::path::PathBuf>> {
    for layer in crate::ids::Layer::ALL.into_iter().filter(|l| *l != crate::ids::Layer::Bronze) {
        let tables = match std::fs::read_dir(root.join(layer.as_str())) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for table in tables {
            let table = table?;
            if !table.file_type()?.is_dir() {
                continue;
            }
            for version in std::fs::read_dir(table.path())? {
                let version = version?;
                if version.file_type()?.is_dir()
                    && crate::lifecycle::is_version_id(&version.file_name().to_string_lossy())
                {
                    return Ok(Some(version.path()));
                }
            }
        }
    }
    Ok(None)
}
