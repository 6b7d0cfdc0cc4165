//! The engine contract on Athena: stage (CTAS into the version's prefix), audit on the
//! version table, publish with one Glue compare-and-swap, backfill windows as tables of
//! their own sealed into one version, ad-hoc queries.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::glue::{all_columns, as_input, view_input};
use super::query::Statement;
use super::*;
use crate::engine::{Engine, EngineError, Job, JobKind, Partitions, QueryResult, Staged, StepStats, checks};

impl AthenaEngine {
    /// The base generation the view of an incremental run reads before its window: the
    /// one the run started (staging made it), or the current view's, into which the
    /// partitions that have left the hot window since are registered now, before the
    /// swap (the current view reads them from its own run table until then).
    async fn base_for(&self, job: &Job, from: &[String]) -> Result<String, EngineError> {
        let started = sql::base_table(job);
        if self.glue.table(&job.database, &started).await?.is_some() {
            return Ok(started);
        }
        let view = self.glue.table(&job.database, &job.table).await?;
        let Some((base, cur_from)) = view.as_ref().and_then(staging::layered) else {
            return Err(EngineError::aws(format!("{}: the base table staging made is gone", job.model)));
        };
        if let Some(current) = self.current_version_table(job, view.as_ref()).await? {
            let own = self.glue.partitions(&job.database, current.name()).await?;
            let leaving = crate::materialize::layered::leaving(own, |p| p.values(), &cur_from, from);
            self.glue.put_partitions(&job.database, &base, &leaving).await?;
        }
        Ok(base)
    }
}

/// Audits of a staged version on Athena: statements on the version table, numbered after
/// the staging statements in the run's token sequence (100 + two per audit).
struct AthenaAudits<'a> {
    engine: &'a AthenaEngine,
    job: &'a Job,
}

const AUDIT_STATEMENTS: usize = 100;

#[async_trait::async_trait]
impl checks::AuditTarget for AthenaAudits<'_> {
    fn relation(&self) -> String {
        sql::version_relation(self.job)
    }

    async fn row_counts(&self, index: usize) -> Result<Option<(u64, u64)>, EngineError> {
        let (job, base) = (self.job, AUDIT_STATEMENTS + 2 * index);
        let view = self.engine.glue.table(&job.database, &job.table).await?;
        let Some(current) = self.engine.current_version_table(job, view.as_ref()).await? else {
            return Ok(None);
        };
        let before =
            self.engine.count(job, &format!("\"{}\".\"{}\"", job.database, current.name()), base).await?;
        let after = self.engine.count(job, &self.relation(), base + 1).await?;
        Ok(Some((before, after)))
    }

    async fn sample(&self, _: &str, sql: &str, index: usize) -> Result<Option<String>, EngineError> {
        let ((columns, rows), _) =
            self.engine.select_rows(self.job, sql, AUDIT_STATEMENTS + 2 * index, 5).await?;
        Ok((!rows.is_empty()).then(|| format_sample(&columns, &rows)))
    }
}

fn format_sample(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header(columns);
    for r in rows {
        t.add_row(r.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())));
    }
    t.to_string()
}

#[async_trait::async_trait]
impl Engine for AthenaEngine {
    async fn stage(&self, job: &Job) -> Result<Staged, EngineError> {
        match &job.kind {
            JobKind::External { ddl } => self.stage_external(job, ddl).await,
            JobKind::Select { .. } => crate::materialize::stage::select(self, job).await,
        }
    }

    async fn stage_part(&self, job: &Job, keep: &Partitions) -> Result<StepStats, EngineError> {
        let checks::BackfillSelect { partition_by, window, .. } = checks::backfill_select(job)?;
        if keep.len() != 1 {
            return Err(EngineError::Query(
                "internal error: a backfill window keeps one unit of its partitions (a bug)".into(),
            ));
        }
        // Each window is written as its own table under the version's `_parts/<unit>/`;
        // an interrupted attempt's table and files are removed first.
        let target = sql::part_target(job, &self.storage, keep);
        let name = target.table.clone();
        let sub = format!("_parts/{}", sql::part_suffix(keep));
        self.glue.delete_table(&job.database, &name).await?;
        self.glue.delete_table(&job.database, &target.chunked().1.table).await?;
        self.delete_version_objects(job, &sub).await?;
        let stats = self.write_result(job, &target, &sub).await?;
        let written = self.glue.partitions(&job.database, &name).await?;
        checks::within_window(partition_by, window, written.iter().map(|p| p.values()))?;
        Ok(stats)
    }

    async fn seal(&self, job: &Job, replaces: &Partitions) -> Result<Staged, EngineError> {
        crate::materialize::seal(self, job, replaces).await
    }

    async fn audit(&self, staged: &Staged) -> Result<(), EngineError> {
        checks::run_audits(staged, &AthenaAudits { engine: self, job: &staged.job }).await
    }

    async fn publish(&self, staged: &Staged, now: &str) -> Result<(), EngineError> {
        if !staged.changed {
            return Ok(());
        }
        let job = &staged.job;
        let target = self.version_table(job).await?;
        let mut params: HashMap<String, String> = [
            (P_VERSION, job.version.clone()),
            (P_TABLE, target.name().to_string()),
            (P_RUN, job.run_id.clone()),
            (P_PUBLISHED_AT, now.to_string()),
            // A past window run again: the data still reaches as far as before.
            (
                P_WINDOW_END,
                param(&target, P_REACHES)
                    .unwrap_or_default()
                    .max(crate::clock::stamp(job.window_end).as_str())
                    .to_string(),
            ),
            ("strata_bytes_scanned", staged.stats.bytes_read.to_string()),
            ("strata_statements", staged.stats.statements.to_string()),
            ("strata_queue_ms", staged.stats.queue_ms.to_string()),
            ("strata_engine_ms", staged.stats.engine_ms.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let input = match &job.kind {
            JobKind::External { ddl } => {
                params.insert(P_DDL.into(), hash_hex(ddl));
                as_input(&target, &job.table, params)
            }
            JobKind::Select { partition_by, replaces: Some(window), .. } if !partition_by.is_empty() => {
                let from = window.first().cloned().unwrap_or_default();
                let base = self.base_for(job, &from).await?;
                params.insert(P_BASE.into(), base.clone());
                params.insert(P_HOT_FROM.into(), serde_json::to_string(&from).expect("strings serialize"));
                let columns = all_columns(&target);
                let names: Vec<String> = columns.iter().map(|c| c.name().to_string()).collect();
                let sql = sql::layered_view(&job.database, &base, target.name(), &names, partition_by, &from);
                view_input(&job.table, &job.database, &sql, &columns, params)
            }
            JobKind::Select { .. } => view_input(
                &job.table,
                &job.database,
                &format!("SELECT * FROM \"{}\".\"{}\"", job.database, target.name()),
                &all_columns(&target),
                params,
            ),
        };
        self.glue
            .swap(&job.database, input, staged.expected.as_ref().map(crate::engine::SwapToken::as_str))
            .await?;
        // A backfill's window tables: their partitions now belong to the version table.
        if let Some(prefix) = param(&target, P_PARTS) {
            for part in self.glue.tables_with_prefix(&job.database, prefix).await? {
                if let Err(e) = self.glue.delete_table(&job.database, part.name()).await {
                    tracing::warn!(model = %job.model, "removing backfill window table {}: {e}", part.name());
                }
            }
        }
        if matches!(job.kind, JobKind::External { .. }) {
            // The published table holds the whole definition (and Glue its history).
            if let Err(e) = self.glue.delete_table(&job.database, target.name()).await {
                tracing::warn!(model = %job.model, "removing the staged definition: {e}");
            }
        }
        Ok(())
    }

    async fn query(&self, sql_text: &str) -> Result<QueryResult, EngineError> {
        let st = Statement {
            sql: sql_text,
            database: &self.default_database,
            run_id: &crate::ids::new_id("q", Utc::now()),
            version: "",
            model: "query",
            index: 0,
        };
        let finished = self.statements.run(&st, || async { Ok(()) }).await?;
        let (columns, rows) = self.statements.rows(&finished.query_id, usize::MAX).await?;
        let schema = Arc::new(Schema::new(
            columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect::<Vec<_>>(),
        ));
        let arrays: Vec<ArrayRef> = (0..columns.len())
            .map(|i| {
                Arc::new(rows.iter().map(|r| r.get(i).cloned().flatten()).collect::<StringArray>())
                    as ArrayRef
            })
            .collect();
        let batches = if columns.is_empty() {
            Vec::new()
        } else {
            vec![
                RecordBatch::try_new(schema.clone(), arrays)
                    .map_err(|e| EngineError::Query(e.to_string()))?,
            ]
        };
        let mut stats = finished.stats;
        stats.rows = rows.len() as u64;
        Ok(QueryResult { schema, batches, stats })
    }

    async fn cancel(&self) {
        self.statements.cancel().await;
    }

    async fn was_published(&self, job: &Job) -> Result<bool, EngineError> {
        let versions = self.glue.versions(&job.database, &job.table).await?;
        Ok(history::history(&versions).iter().any(|(v, _, _)| *v == job.version))
    }
}
