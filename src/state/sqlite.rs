//! The run-state store of the local engine: tables of a SQLite file in the state
//! directory (beside the local catalog). Every compare-and-swap is one transaction.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Lease, ModelState, RunRecord, RunState, StateError};

const SCHEMA: &str = "
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

/// Opens (creating it and its directory if need be) a SQLite file in WAL mode, waiting for
/// other processes, and creates `schema`'s tables. The local catalog uses it too.
pub(crate) fn open_wal(path: &Path, schema: &str) -> Result<Connection, rusqlite::Error> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // Switching a new file to WAL takes an exclusive lock that SQLite's busy handler does
    // not wait for: two processes creating it at once retry here.
    let mut attempt = 0;
    loop {
        let setup = conn
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.execute_batch(schema));
        match setup {
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
            Err(e) => return Err(e),
        }
    }
}

/// Run state in a SQLite file. Safe to share across threads and processes.
#[derive(Debug)]
pub struct SqliteState {
    path: String,
    conn: Mutex<Connection>,
}

impl SqliteState {
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let name = path.display().to_string();
        let conn =
            open_wal(path, SCHEMA).map_err(|source| StateError::Sqlite { path: name.clone(), source })?;
        Ok(Self { path: name, conn: Mutex::new(conn) })
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite { path: self.path.clone(), source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("run state lock")
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
        self.conn()
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
        self.conn()
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
        let mut conn = self.conn();
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
        self.conn()
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
        self.conn()
            .execute("DELETE FROM leases WHERE model = ?1", params![key])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
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
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO backfill_windows (backfill, model, window_start, version) VALUES (?1, ?2, ?3, ?4)",
                params![backfill, model, window_start, version],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn backfill_clear(&self, backfill: &str, model: &str) -> Result<(), StateError> {
        self.conn()
            .execute(
                "DELETE FROM backfill_windows WHERE backfill = ?1 AND model = ?2",
                params![backfill, model],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    async fn record_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let record = serde_json::to_string(run).expect("a run record serializes");
        self.conn()
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
