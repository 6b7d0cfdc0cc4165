//! Staging: the statements of a run (a CTAS, or a result written once and copied in
//! chunks past 100 partitions), each retried as a new attempt after removing what it left;
//! the version table and the partitions carried over from the current version.

use aws_sdk_glue::types::Table;

use super::query::{Statement, api_message};
use super::*;
use crate::engine::{EngineError, Job, JobKind, Staged, StepStats, SwapToken};

/// What a failed statement leaves behind, to remove before running it again.
#[derive(Debug, Clone, Copy)]
pub(super) enum Retry<'a> {
    /// Never run again (an INSERT may have written part of its partitions).
    Never,
    /// Nothing to remove (a SELECT).
    Plain,
    /// The table a CREATE made.
    Table(&'a str),
    /// The table a CTAS made and its files (a sub-directory of the version).
    Ctas(&'a str, &'a str),
}

/// The base and the first partition of the hot window of a view published with the
/// layered layout (`None`: a view over one version table holding every partition).
pub(super) fn layered(view: &Table) -> Option<(String, Vec<String>)> {
    let base = param(view, P_BASE)?;
    let from: Vec<String> = serde_json::from_str(param(view, P_HOT_FROM)?).ok()?;
    Some((base.to_string(), from))
}

/// A base table: the run table's definition (columns, partition keys, format) under another
/// name, with no partitions of its own yet.
pub(super) fn base_input(run_table: &Table, name: &str) -> aws_sdk_glue::types::TableInput {
    let mut params = run_table.parameters().cloned().unwrap_or_default();
    params.retain(|k, _| !k.starts_with("strata_"));
    aws_sdk_glue::types::TableInput::builder()
        .name(name)
        .table_type("EXTERNAL_TABLE")
        .set_storage_descriptor(run_table.storage_descriptor().cloned())
        .set_partition_keys(Some(run_table.partition_keys().to_vec()))
        .set_parameters(Some(params))
        .build()
        .expect("a table input with a name")
}

/// `<sub>/<name>`, or `<name>` when `sub` is the version directory itself.
fn sub_dir(sub: &str, name: &str) -> String {
    if sub.is_empty() { name.to_string() } else { format!("{sub}/{name}") }
}

impl AthenaEngine {
    /// Runs statement `index` of a run; `retry` says what a failed attempt leaves behind
    /// that must go before it runs again.
    pub(super) async fn run_statement(
        &self,
        job: &Job,
        sql: &str,
        index: usize,
        retry: Retry<'_>,
    ) -> Result<query::Finished, EngineError> {
        let model = job.model.to_string();
        let st = Statement::of(job, &model, sql, index);
        self.statements
            .run(&st, || async {
                match retry {
                    Retry::Never => Err(EngineError::Query(format!(
                        "{}: statement {} (an INSERT) failed and may have written part of its partitions; not retried: run the model again",
                        job.model,
                        index + 1
                    ))),
                    Retry::Plain => Ok(()),
                    // A failed CREATE may have left a table, and a CTAS files: the retry
                    // needs both gone. They belong to this version only.
                    Retry::Table(table) => self.glue.delete_table(&job.database, table).await,
                    Retry::Ctas(table, sub) => {
                        self.glue.delete_table(&job.database, table).await?;
                        self.delete_version_objects(job, sub).await.map(drop)
                    }
                }
            })
            .await
    }

    /// Writes the job's result as `target` (`clean` is the target's prefix within the
    /// version directory): one CTAS, or, past 100 partitions, the result once and the table
    /// from it in chunks (also when a `table` model's CTAS finds it has more).
    pub(super) async fn write_result(
        &self,
        job: &Job,
        target: &sql::Target,
        clean: &str,
    ) -> Result<StepStats, EngineError> {
        self.check_workgroup().await?;
        let chunked = sql::needs_chunks(job);
        match self.try_write(job, target, clean, chunked).await {
            Err(EngineError::Statement(e))
                if !chunked && e.code.as_deref() == Some("HIVE_TOO_MANY_OPEN_PARTITIONS") =>
            {
                tracing::info!(model = %job.model, "more than {} partitions: writing the result once, then the table in chunks", sql::MAX_PARTITIONS_PER_STATEMENT);
                self.glue.delete_table(&job.database, &target.table).await?;
                self.delete_version_objects(job, clean).await?;
                self.try_write(job, target, clean, true).await
            }
            r => r,
        }
    }

    pub(super) async fn try_write(
        &self,
        job: &Job,
        target: &sql::Target,
        clean: &str,
        chunked: bool,
    ) -> Result<StepStats, EngineError> {
        let mut stats = StepStats::default();
        match sql::staging(job, target, chunked).map_err(EngineError::Query)? {
            sql::Staging::Single(stmt) => {
                let select = matches!(job.kind, JobKind::Select { .. });
                let retry =
                    if select { Retry::Ctas(&target.table, clean) } else { Retry::Table(&target.table) };
                let done = self.run_statement(job, &stmt, 0, retry).await?;
                stats += done.stats;
                if select {
                    stats.rows += self.output_rows(&done.query_id).await;
                }
            }
            sql::Staging::Chunked { write, list } => {
                let (data, temp) = target.chunked();
                let temp_clean = sub_dir(clean, "_result");
                let done = self.run_statement(job, &write, 0, Retry::Ctas(&temp.table, &temp_clean)).await?;
                stats += done.stats;
                let done = self.run_statement(job, &list, 1, Retry::Plain).await?;
                stats += done.stats;
                let (_, rows) = self.statements.rows(&done.query_id, usize::MAX).await?;
                let stmts = sql::chunk_statements(job, &data, &temp, &rows).map_err(EngineError::Query)?;
                let data_clean = sub_dir(clean, "data");
                for (i, stmt) in stmts.iter().enumerate() {
                    let retry = if i == 0 { Retry::Ctas(&data.table, &data_clean) } else { Retry::Never };
                    let done = self.run_statement(job, stmt, 2 + i, retry).await?;
                    stats += done.stats;
                    stats.rows += self.output_rows(&done.query_id).await;
                }
                // The result table served its purpose; the version keeps only its own data.
                self.glue.delete_table(&job.database, &temp.table).await?;
                self.delete_version_objects(job, &temp_clean).await?;
            }
        }
        Ok(stats)
    }

    /// Rows a statement wrote, from its runtime statistics (0 when Athena has none).
    pub(super) async fn output_rows(&self, id: &str) -> u64 {
        match self.statements.client().get_query_runtime_statistics().query_execution_id(id).send().await {
            Ok(out) => out
                .query_runtime_statistics()
                .and_then(|s| s.rows())
                .and_then(|r| r.output_rows())
                .unwrap_or(0)
                .max(0) as u64,
            Err(e) => {
                tracing::debug!(query_id = id, "GetQueryRuntimeStatistics: {}", api_message(&e));
                0
            }
        }
    }

    pub(super) async fn stage_external(&self, job: &Job, ddl: &str) -> Result<Staged, EngineError> {
        let current = self.glue.table(&job.database, &job.table).await?;
        if let Some(t) = &current
            && param(t, P_DDL) == Some(hash_hex(ddl).as_str())
        {
            return Ok(Staged {
                job: job.clone(),
                expected: t.version_id().map(SwapToken::new),
                changed: false,
                stats: StepStats::default(),
                emptied: Vec::new(),
            });
        }
        let stats = self.write_result(job, &sql::version_target(job, &self.storage), "").await?;
        self.version_table(job).await?;
        Ok(Staged {
            job: job.clone(),
            expected: current.and_then(|t| t.version_id().map(SwapToken::new)),
            changed: true,
            stats,
            emptied: Vec::new(),
        })
    }

    pub(super) async fn version_table(&self, job: &Job) -> Result<Table, EngineError> {
        let name = sql::version_table(job);
        self.glue.table(&job.database, &name).await?.ok_or_else(|| {
            EngineError::aws(format!(
                "{}: Athena reported success but Glue has no table {}.{name}",
                job.model, job.database
            ))
        })
    }

    /// The version table the published view reads.
    pub(super) async fn current_version_table(
        &self,
        job: &Job,
        view: Option<&Table>,
    ) -> Result<Option<Table>, EngineError> {
        let Some(target) = view.and_then(|v| param(v, P_TABLE)) else { return Ok(None) };
        let t = self.glue.table(&job.database, target).await?;
        if t.is_none() {
            return Err(EngineError::aws(format!(
                "{}.{} reads {target}, which is not in Glue",
                job.database, job.table
            )));
        }
        Ok(t)
    }

    /// Runs a SELECT and returns its first rows as text.
    pub(super) async fn select_rows(
        &self,
        job: &Job,
        sql: &str,
        index: usize,
        limit: usize,
    ) -> Result<((Vec<String>, Vec<Vec<Option<String>>>), StepStats), EngineError> {
        let model = job.model.to_string();
        let st = Statement::of(job, &model, sql, index);
        let finished = self.statements.run(&st, || async { Ok(()) }).await?;
        Ok((self.statements.rows(&finished.query_id, limit).await?, finished.stats))
    }

    pub(super) async fn count(&self, job: &Job, relation: &str, index: usize) -> Result<u64, EngineError> {
        let ((_, rows), _) =
            self.select_rows(job, &format!("SELECT count(*) FROM {relation}"), index, 1).await?;
        rows.first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| EngineError::Query(format!("counting the rows of {relation} returned no number")))
    }
}
