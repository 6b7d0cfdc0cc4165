//! The run-state store of the local engine: tables of a SQLite file in the state
//! directory (beside the local catalog). Every compare-and-swap is one transaction.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Lease, ModelState, RunRecord, RunState, StateError};

/// The run state's tables.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS model_state (
    model TEXT PRIMARY KEY, last_at TEXT NOT NULL, run_id TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    model TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS backfill_windows (
    backfill TEXT NOT NULL, model TEXT NOT NULL, window_start TEXT NOT NULL, version TEXT NOT NULL,
    PRIMARY KEY (backfill, model, window_start));
CREATE TABLE IF NOT EXISTS run_history (
    run_id TEXT NOT NULL, model TEXT NOT NULL, finished_at TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (run_id, model));
";

/// What a command does with the lake and its catalog file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Runs, backfills, rollbacks: the file is created, migrated and checked writable
    /// when opened, so a read-only or full disk fails once, before any model runs.
    Write,
    /// status, query, runs, docs, and gc until it forgets a record: nothing is written to
    /// open or read the file, so they work on a full disk, a read-only mount or a file
    /// another user owns. The first write (gc's) reopens it for writing.
    Read,
}

/// Why a SQLite file could not be opened for what was asked.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Opening for writing failed the way a read-only file, directory or mount, or a full
    /// disk, makes it fail.
    #[error(
        "cannot be written ({source}): is its disk full, or the file or its directory read-only? Runs, rollbacks and gc's forgetting of versions write it; status, query and runs only read it"
    )]
    Unwritable { source: rusqlite::Error },
    /// Reading without writing could not see changes still in the write-ahead log.
    #[error(
        "cannot be read without writing ({source}), and its write-ahead log {wal} holds {bytes} bytes of changes not yet in the file: free space on its disk (or make its directory writable) and run again"
    )]
    PendingLog { source: rusqlite::Error, wal: String, bytes: u64 },
}

/// The failures a read-only, permission-less or full file system gives.
fn cannot_write(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if matches!(
        f.code,
        C::CannotOpen | C::ReadOnly | C::SystemIoFailure | C::DiskFull | C::PermissionDenied
    ))
}

/// The tables `schema` creates, by name.
fn schema_tables(schema: &str) -> impl Iterator<Item = &str> {
    schema.split("CREATE TABLE IF NOT EXISTS ").skip(1).filter_map(|s| s.split([' ', '(']).next())
}

/// Opens (creating it and its directory if need be) a SQLite file in WAL mode, waiting for
/// other processes, creates `schema`'s tables, and checks that it can be written.
fn open_write(path: &Path, schema: &str) -> Result<Connection, OpenError> {
    let unwritable = |e: rusqlite::Error| {
        if cannot_write(&e) { OpenError::Unwritable { source: e } } else { OpenError::Sqlite(e) }
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = Connection::open(path).map_err(unwritable)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // Switching a new file to WAL takes an exclusive lock that SQLite's busy handler does
    // not wait for: two processes creating it at once retry here.
    let mut attempt = 0;
    loop {
        let setup = conn
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.execute_batch(schema))
            // A file SQLite could only open read-only, or whose directory refuses the log:
            // found here, once, rather than by every model's first write.
            .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;"));
        match setup {
            Ok(()) if conn.is_readonly(rusqlite::MAIN_DB)? => {
                return Err(OpenError::Unwritable {
                    source: rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                        Some("the file opened read-only".into()),
                    ),
                });
            }
            Ok(()) => return Ok(conn),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && attempt < 100 =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 + 10 * attempt.min(10)));
            }
            Err(e) => return Err(unwritable(e)),
        }
    }
}

/// Opens a SQLite file for reading without writing anything: not the file, not its
/// write-ahead log or shared-memory index, not its directory.
///
/// A WAL-mode file is read through its `-shm` index, which the first connection creates,
/// truncates and sizes: on a full disk or a read-only directory that fails ("disk I/O
/// error", "unable to open database file"). Then, in turn:
/// - a connection in exclusive locking mode, which keeps the index in its own memory
///   (<https://www.sqlite.org/wal.html#noshm>) and reads the log as it is (a run killed on
///   a full disk leaves one); `query_only` and no checkpoint on close keep it from writing;
///   it needs the file to be writable by permissions, which a full disk leaves it;
/// - the file read as immutable (<https://www.sqlite.org/uri.html#uriimmutable>: no locks,
///   no index), exact only when the log is absent or empty, every commit then being in the
///   file itself (<https://www.sqlite.org/wal.html#readonly>): a read-only file or mount.
///   A log holding changes is refused, never read past.
///
/// A file that does not exist reads as empty (an in-memory copy of the schema); one made
/// before a table of `schema` existed is opened for writing, which creates it.
fn open_read(path: &Path, schema: &str) -> Result<Connection, OpenError> {
    use rusqlite::OpenFlags as F;
    let first_read = |c: Connection| -> Result<Connection, rusqlite::Error> {
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
        Ok(c)
    };
    if !path.exists() {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(schema)?;
        return Ok(conn);
    }
    let ro = F::SQLITE_OPEN_READ_ONLY | F::SQLITE_OPEN_NO_MUTEX;
    let shared = Connection::open_with_flags(path, ro).and_then(|c| {
        c.busy_timeout(Duration::from_secs(30))?;
        first_read(c)
    });
    let conn = match shared {
        Ok(c) => c,
        Err(e) if cannot_write(&e) => {
            let private =
                Connection::open_with_flags(path, F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_NO_MUTEX)
                    .and_then(|c| {
                        c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
                        c.busy_timeout(Duration::from_secs(30))?;
                        c.execute_batch("PRAGMA locking_mode = EXCLUSIVE; PRAGMA query_only = 1;")?;
                        first_read(c)
                    });
            match private {
                Ok(c) => c,
                Err(_) => {
                    let mut wal = path.as_os_str().to_owned();
                    wal.push("-wal");
                    let bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
                    if bytes > 0 {
                        let wal = Path::new(&wal).display().to_string();
                        return Err(OpenError::PendingLog { source: e, wal, bytes });
                    }
                    first_read(Connection::open_with_flags(immutable_uri(path), ro | F::SQLITE_OPEN_URI)?)?
                }
            }
        }
        Err(e) => return Err(e.into()),
    };
    for table in schema_tables(schema) {
        let known: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if known == 0 {
            drop(conn);
            return open_write(path, schema);
        }
    }
    Ok(conn)
}

/// `path` as an SQLite URI that opens it immutable (`?`, `#` and `%` escaped).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// A SQLite file opened for a command's [`Access`]: read as it is, or written, in which
/// case a file opened for reading is reopened for writing at the first write. The local
/// catalog and run state share one file and one `Db` (a connection reading in exclusive
/// mode would lock out a second one).
#[derive(Debug)]
pub struct Db {
    path: std::path::PathBuf,
    schema: String,
    conn: Mutex<Connection>,
    writable: std::sync::atomic::AtomicBool,
}

impl Db {
    /// Opens `path` for `access`, with the tables of `schemas`.
    pub fn open(path: &Path, schemas: &[&str], access: Access) -> Result<Self, OpenError> {
        let schema = schemas.concat();
        let conn = match access {
            Access::Write => open_write(path, &schema)?,
            Access::Read => open_read(path, &schema)?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            schema,
            conn: Mutex::new(conn),
            writable: (access == Access::Write).into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, to read.
    pub fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("sqlite connection lock")
    }

    /// The connection, to write: reopened for writing the first time if it was opened to
    /// read (the reading one closed first: it may hold the file's lock).
    pub fn write(&self) -> Result<std::sync::MutexGuard<'_, Connection>, OpenError> {
        use std::sync::atomic::Ordering;
        let mut conn = self.read();
        if !self.writable.load(Ordering::Acquire) {
            drop(std::mem::replace(&mut *conn, Connection::open_in_memory()?));
            match open_write(&self.path, &self.schema) {
                Ok(c) => *conn = c,
                Err(e) => {
                    // Reading goes on as before; if even that fails, the placeholder has no
                    // tables, so every later statement fails loudly rather than reads nothing.
                    if let Ok(c) = open_read(&self.path, &self.schema) {
                        *conn = c;
                    }
                    return Err(e);
                }
            }
            self.writable.store(true, Ordering::Release);
        }
        Ok(conn)
    }
}

/// Run state in a SQLite file. Safe to share across threads and processes.
#[derive(Debug)]
pub struct SqliteState {
    path: String,
    db: std::sync::Arc<Db>,
}

impl SqliteState {
    /// Opens it to read and write.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        Self::open_for(path, Access::Write)
    }

    pub fn open_for(path: &Path, access: Access) -> Result<Self, StateError> {
        let db = Db::open(path, &[SCHEMA], access)
            .map_err(|source| StateError::Open { path: path.display().to_string(), source })?;
        Ok(Self::on(std::sync::Arc::new(db)))
    }

    /// The run state in `db` (opened with [`SCHEMA`] among its schemas).
    pub fn on(db: std::sync::Arc<Db>) -> Self {
        Self { path: db.path().display().to_string(), db }
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite { path: self.path.clone(), source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.read()
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StateError> {
        self.db.write().map_err(|source| StateError::Open { path: self.path.clone(), source })
    }
}

#[async_trait]
impl RunState for SqliteState {
    async fn model(&self, model: &str) -> Result<Option<ModelState>, StateError> {
        self.conn()
            .query_row(
                "SELECT last_at, run_id, updated_at FROM model_state WHERE model = ?1",
                params![model],
                |r| {
                    let last: String = r.get(0)?;
                    Ok(ModelState {
                        last_at: (!last.is_empty()).then_some(last),
                        by: r.get(1)?,
                        updated_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    async fn record_success(&self, model: &str, at: &str, by: &str, now: &str) -> Result<(), StateError> {
        self.writer()?
            .execute(
                "INSERT INTO model_state (model, last_at, run_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (model) DO UPDATE SET last_at = excluded.last_at, run_id = excluded.run_id,
                     updated_at = excluded.updated_at WHERE excluded.last_at > model_state.last_at",
                params![model, at, by, now],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn reset(&self, model: &str, at: Option<&str>, by: &str, now: &str) -> Result<(), StateError> {
        self.writer()?
            .execute(
                "INSERT INTO model_state (model, last_at, run_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (model) DO UPDATE SET last_at = excluded.last_at, run_id = excluded.run_id,
                     updated_at = excluded.updated_at",
                params![model, at.unwrap_or(""), by, now],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        now: &str,
        until: &str,
    ) -> Result<Result<(), Lease>, StateError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let holder: Option<Lease> = tx
            .query_row("SELECT owner, expires_at FROM leases WHERE model = ?1", params![key], |r| {
                Ok(Lease { owner: r.get(0)?, until: r.get(1)? })
            })
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(h) = holder
            && h.owner != owner
            && h.until.as_str() > now
        {
            return Ok(Err(h));
        }
        tx.execute(
            "INSERT INTO leases (model, owner, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (model) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
            params![key, owner, until],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Ok(()))
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StateError> {
        self.writer()?
            .execute("DELETE FROM leases WHERE model = ?1 AND owner = ?2", params![key, owner])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn lease(&self, key: &str) -> Result<Option<Lease>, StateError> {
        self.conn()
            .query_row("SELECT owner, expires_at FROM leases WHERE model = ?1", params![key], |r| {
                Ok(Lease { owner: r.get(0)?, until: r.get(1)? })
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    async fn force_release(&self, key: &str) -> Result<bool, StateError> {
        self.writer()?
            .execute("DELETE FROM leases WHERE model = ?1", params![key])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    async fn backfill_versions(&self) -> Result<Vec<(String, String)>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT DISTINCT model, version FROM backfill_windows ORDER BY model, version")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    async fn backfill_done(&self, backfill: &str, model: &str) -> Result<Vec<(String, String)>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT window_start, version FROM backfill_windows WHERE backfill = ?1 AND model = ?2 ORDER BY window_start")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![backfill, model], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    async fn backfill_mark(
        &self,
        backfill: &str,
        model: &str,
        window_start: &str,
        version: &str,
    ) -> Result<(), StateError> {
        self.writer()?
            .execute(
                "INSERT OR REPLACE INTO backfill_windows (backfill, model, window_start, version) VALUES (?1, ?2, ?3, ?4)",
                params![backfill, model, window_start, version],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn backfill_clear(&self, backfill: &str, model: &str) -> Result<(), StateError> {
        self.writer()?
            .execute(
                "DELETE FROM backfill_windows WHERE backfill = ?1 AND model = ?2",
                params![backfill, model],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn record_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let record = serde_json::to_string(run).expect("a run record serializes");
        self.writer()?
            .execute(
                "INSERT OR REPLACE INTO run_history (run_id, model, finished_at, record) VALUES (?1, ?2, ?3, ?4)",
                params![run.run_id, run.model, run.finished_at, record],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn runs(
        &self,
        model: Option<&str>,
        since: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<RunRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT record FROM (
                     SELECT record, finished_at, model,
                            ROW_NUMBER() OVER (PARTITION BY model ORDER BY finished_at DESC, run_id DESC) AS nth
                     FROM run_history WHERE (?1 IS NULL OR model = ?1) AND (?2 IS NULL OR finished_at >= ?2))
                 WHERE ?3 IS NULL OR nth <= ?3
                 ORDER BY finished_at, model",
            )
            .map_err(|e| self.err(e))?;
        let last = last.map(|n| n as i64);
        let rows = stmt
            .query_map(params![model, since, last], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for text in rows {
            let text = text.map_err(|e| self.err(e))?;
            out.push(serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                location: self.path.clone(),
                message: format!("a run record does not parse: {e}"),
            })?);
        }
        Ok(out)
    }
}
