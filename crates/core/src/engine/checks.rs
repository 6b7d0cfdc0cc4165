//! The checks every engine makes, written once: a backfill writes SELECT models only, an
//! incremental result stays inside its window and keeps the published columns, a window's
//! partitions that held data are not emptied unless asked, and the audits (their SQL, the
//! loop, the row-change comparison). Each engine supplies only how it reads its own
//! versions ([`AuditTarget`], the partitions and columns it wrote).

use async_trait::async_trait;

use super::{EngineError, Job, JobKind, Staged};
use crate::project::Audit;

/// Partition values as `col=value/...`, for messages.
pub fn describe(columns: &[String], values: &[String]) -> String {
    columns.iter().zip(values).map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join("/")
}

/// The SELECT of a backfill's job.
pub struct BackfillSelect<'a> {
    pub sql: &'a str,
    pub partition_by: &'a [String],
    pub compression: &'a str,
    /// The partitions of the window.
    pub window: &'a [Vec<String>],
}

/// A backfill writes SELECT models only, each window with its partitions.
pub fn backfill_select(job: &Job) -> Result<BackfillSelect<'_>, EngineError> {
    let JobKind::Select { sql, partition_by, replaces, compression } = &job.kind else {
        return Err(EngineError::Query("a backfill writes SELECT models only".into()));
    };
    let Some(window) = replaces else {
        return Err(EngineError::Query(
            "internal error: a backfill window without its partitions (a bug)".into(),
        ));
    };
    Ok(BackfillSelect { sql, partition_by, compression, window })
}

/// Every partition `written` is one of the `window`'s: an incremental run may replace
/// only its window's partitions.
pub fn within_window<'a>(
    partition_by: &[String],
    window: &[Vec<String>],
    written: impl IntoIterator<Item = &'a [String]>,
) -> Result<(), EngineError> {
    match written.into_iter().find(|p| !window.iter().any(|w| w.as_slice() == *p)) {
        None => Ok(()),
        Some(outside) => Err(EngineError::Query(format!(
            "the SELECT returned rows for partition {} outside the run's window; filter the input with {{{{ window_partitions() }}}}",
            describe(partition_by, outside)
        ))),
    }
}

/// The staged result has the published version's columns (name and type, in order): a run
/// that replaces some partitions cannot change the schema of the others. The message
/// names what differs.
pub fn same_columns(published: &[(String, String)], staged: &[(String, String)]) -> Result<(), EngineError> {
    if published == staged {
        return Ok(());
    }
    let mut diffs = Vec::new();
    for (name, ty) in published {
        match staged.iter().find(|(n, _)| n == name) {
            None => diffs.push(format!("{name} is gone")),
            Some((_, t)) if t != ty => diffs.push(format!("{name} is {t}, published {ty}")),
            Some(_) => {}
        }
    }
    for (name, ty) in staged {
        if !published.iter().any(|(n, _)| n == name) {
            diffs.push(format!("{name} {ty} is new"));
        }
    }
    if diffs.is_empty() {
        diffs.push("the same columns in another order".into());
    }
    Err(EngineError::Query(format!(
        "the result's columns differ from the published table's ({}); a run that replaces some partitions cannot change the schema; `strata plan` shows the change against what is published and whether it breaks the history",
        diffs.join(", ")
    )))
}

/// The partitions of the window that hold data in the published version (`before`: values
/// and whether they hold rows) and none in the staged one (`after`: values that hold rows).
pub fn emptied<'a>(
    before: impl IntoIterator<Item = (&'a [String], bool)>,
    after: &std::collections::BTreeSet<Vec<String>>,
) -> Vec<Vec<String>> {
    before
        .into_iter()
        .filter(|(v, has_rows)| *has_rows && !after.contains(*v))
        .map(|(v, _)| v.to_vec())
        .collect()
}

/// Refuses a staged version that would replace partitions holding data with nothing,
/// unless `allowed`.
pub fn check_emptied(staged: &Staged, allowed: bool) -> Result<(), String> {
    if staged.emptied.is_empty() || allowed {
        return Ok(());
    }
    let JobKind::Select { partition_by, .. } = &staged.job.kind else { return Ok(()) };
    let shown: Vec<String> = staged.emptied.iter().take(5).map(|v| describe(partition_by, v)).collect();
    Err(format!(
        "refusing to publish: {} partition(s) of the window hold data in the published version and none in this run ({}{}); its input is probably missing (a moved lake, a wrong storage root, Firehose not delivering). Check the source, or run again with --allow-empty-window to publish the empty partitions",
        staged.emptied.len(),
        shown.join(", "),
        if staged.emptied.len() > 5 { ", ..." } else { "" }
    ))
}

/// The `max_row_change_pct` audit: the staged version's row count may differ from the
/// published one's by at most `pct` percent.
pub fn check_row_change(pct: f64, before: u64, after: u64) -> Result<(), EngineError> {
    let change = if before == 0 { 0.0 } else { (after as f64 - before as f64).abs() * 100.0 / before as f64 };
    if change > pct {
        return Err(EngineError::Audit {
            audit: format!("max_row_change_pct({pct})"),
            detail: format!(
                "the published version has {before} rows, the staged one {after} ({change:.1}% change)"
            ),
        });
    }
    Ok(())
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An audit as a query that returns the offending rows, and its name.
pub fn audit_sql(audit: &Audit, this: &str) -> (String, String) {
    match audit {
        Audit::NotEmpty => (
            "not_empty".into(),
            format!("SELECT 'no rows' AS problem FROM (SELECT count(*) AS n FROM {this}) WHERE n = 0"),
        ),
        Audit::NotNull(cols) => {
            let cond =
                cols.iter().map(|c| format!("{} IS NULL", quote_ident(c))).collect::<Vec<_>>().join(" OR ");
            (format!("not_null({})", cols.join(", ")), format!("SELECT * FROM {this} WHERE {cond}"))
        }
        Audit::Unique(cols) => {
            let list = cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
            (
                format!("unique({})", cols.join(", ")),
                format!("SELECT {list}, count(*) AS copies FROM {this} GROUP BY {list} HAVING count(*) > 1"),
            )
        }
        Audit::AcceptedValues { column, values } => {
            let list =
                values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
            let c = quote_ident(column);
            (
                format!("accepted_values({column})"),
                format!(
                    "SELECT {c}, count(*) AS n FROM {this} WHERE {c} IS NOT NULL AND {c} NOT IN ({list}) GROUP BY {c}"
                ),
            )
        }
        Audit::Sql(sql) => ("sql".into(), sql.replace("{{ this }}", this).replace("{{this}}", this)),
        Audit::MaxRowChangePct(_) => unreachable!("row-change audits compare row counts, not SQL"),
    }
}

/// How an engine reads a staged version for its audits.
#[async_trait]
pub trait AuditTarget: Send + Sync {
    /// The relation the staged version is read through in audit SQL.
    fn relation(&self) -> String;
    /// Rows of the published version and of the staged one; `None` if nothing is published.
    /// `index` numbers the audit (an engine may use it to name its statements).
    async fn row_counts(&self, index: usize) -> Result<Option<(u64, u64)>, EngineError>;
    /// Up to five rows `sql` returns, formatted as a table, or `None` if it returns none.
    async fn sample(&self, audit: &str, sql: &str, index: usize) -> Result<Option<String>, EngineError>;
}

/// Runs the job's audits against the staged version, in order; the first failure is
/// returned with a sample of the offending rows. Nothing to audit when nothing changed.
pub async fn run_audits(staged: &Staged, target: &dyn AuditTarget) -> Result<(), EngineError> {
    if staged.job.audits.is_empty() || !staged.changed {
        return Ok(());
    }
    let this = target.relation();
    for (i, audit) in staged.job.audits.iter().enumerate() {
        if let Audit::MaxRowChangePct(pct) = audit {
            if let Some((before, after)) = target.row_counts(i).await? {
                check_row_change(*pct, before, after)?;
            }
            continue;
        }
        let (name, sql) = audit_sql(audit, &this);
        if let Some(sample) = target.sample(&name, &format!("SELECT * FROM ({sql}) LIMIT 5"), i).await? {
            return Err(EngineError::Audit {
                audit: name,
                detail: format!("sample of offending rows:\n{sample}"),
            });
        }
    }
    Ok(())
}
