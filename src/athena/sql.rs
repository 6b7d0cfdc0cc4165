//! Athena statements for a model run: its DDL aimed at a version table for external
//! tables; a CTAS into the version's fresh `external_location` for the first batch of
//! partitions and INSERT INTO for the rest (Athena writes at most 100 per statement).
//! `strata render --engine athena` prints exactly these.
//!
//! Invariant: this module builds strings; it never calls AWS.

use crate::config::Storage;
use crate::engine::{Job, JobKind};

/// Athena's limit on partitions written by one CTAS or INSERT.
pub const MAX_PARTITIONS_PER_STATEMENT: usize = 100;
/// Athena's limit on a query string, in bytes.
pub const MAX_QUERY_BYTES: usize = 262_144;

/// The Glue name of a job's version table: `<table>__<version>` (Glue names are lower case
/// letters, digits and underscores).
pub fn version_table(job: &Job) -> String {
    format!("{}__{}", job.table, job.version.to_lowercase().replace('-', "_"))
}

/// `"db"."table__<version>"`.
pub fn version_relation(job: &Job) -> String {
    format!("\"{}\".\"{}\"", job.database, version_table(job))
}

/// The version's own prefix: `<root>/<layer>/<table>/<version>/`, empty before the run.
pub fn version_location(job: &Job, storage: &Storage) -> String {
    storage.uri(&format!("{}/{}/{}/", job.model.layer.as_str(), job.table, job.version))
}

/// The statements that stage `job` on Athena, in order: for an external table its DDL
/// creating the version table; for a SELECT a CTAS into the version's empty prefix, and
/// INSERTs when the run writes more than 100 partitions.
pub fn statements(job: &Job, storage: &Storage) -> Result<Vec<String>, String> {
    statements_into(job, &version_relation(job), &version_location(job, storage))
}

/// The unit a backfill window keeps, as a name part: `2025_11_05_13`.
pub fn part_suffix(keep: &[Vec<String>]) -> String {
    keep.first().map(|v| v.join("_")).unwrap_or_default().to_lowercase().replace(['-', '/', ' '], "_")
}

/// A backfill window's table: `<table>__<version>__p<unit>`.
pub fn part_table(job: &Job, keep: &[Vec<String>]) -> String {
    format!("{}__p{}", version_table(job), part_suffix(keep))
}

/// Where a backfill window writes: `<version location>_parts/<unit>/`.
pub fn part_location(job: &Job, storage: &Storage, keep: &[Vec<String>]) -> String {
    format!("{}_parts/{}/", version_location(job, storage), part_suffix(keep))
}

/// The statements of `job` written as `relation` at `location` (a CTAS and INSERTs).
pub fn statements_into(job: &Job, relation: &str, location: &str) -> Result<Vec<String>, String> {
    let relation = relation.to_string();
    let out = match &job.kind {
        // Hive DDL quotes identifiers with backticks.
        JobKind::External { ddl } => {
            vec![retarget_ddl(ddl, &format!("`{}`.`{}`", job.database, version_table(job)))?]
        }
        JobKind::Select { sql, partition_by, compression, replaces } => {
            let select = sql.trim().trim_end_matches(';');
            let mut props = vec![
                "format = 'PARQUET'".to_string(),
                format!("parquet_compression = '{}'", compression.to_uppercase()),
                format!("external_location = '{location}'"),
            ];
            if !partition_by.is_empty() {
                let cols: Vec<String> = partition_by.iter().map(|p| format!("'{p}'")).collect();
                props.push(format!("partitioned_by = ARRAY[{}]", cols.join(", ")));
            }
            let ctas = |select: &str| {
                format!("CREATE TABLE {relation}\nWITH (\n  {}\n) AS\n{select}", props.join(",\n  "))
            };
            match replaces {
                Some(parts) if parts.len() > MAX_PARTITIONS_PER_STATEMENT => {
                    let mut stmts = Vec::new();
                    for (i, chunk) in parts.chunks(MAX_PARTITIONS_PER_STATEMENT).enumerate() {
                        let filtered = format!(
                            "SELECT * FROM (\n{select}\n) AS model_result\nWHERE {}",
                            partition_predicate(partition_by, chunk)
                        );
                        stmts.push(if i == 0 {
                            ctas(&filtered)
                        } else {
                            format!("INSERT INTO {relation}\n{filtered}")
                        });
                    }
                    stmts
                }
                _ => vec![ctas(select)],
            }
        }
    };
    for s in &out {
        if s.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "{}: a statement is {} bytes; Athena accepts at most {MAX_QUERY_BYTES}",
                job.model,
                s.len()
            ));
        }
    }
    Ok(out)
}

/// The model's `CREATE EXTERNAL TABLE [IF NOT EXISTS] <name>` aimed at the version table:
/// the published name is switched to it in the catalog, with a compare-and-swap.
fn retarget_ddl(ddl: &str, relation: &str) -> Result<String, String> {
    let trimmed = ddl.trim().trim_end_matches(';');
    let upper = trimmed.to_ascii_uppercase();
    let head = "CREATE EXTERNAL TABLE";
    let Some(at) = upper.find(head) else {
        return Err("an external model must be one CREATE EXTERNAL TABLE statement".into());
    };
    let mut rest = &trimmed[at + head.len()..];
    let skip_ws = |s: &str| s.trim_start().to_string();
    let r = skip_ws(rest);
    let r_upper = r.to_ascii_uppercase();
    let after_ine =
        if r_upper.starts_with("IF NOT EXISTS") { r["IF NOT EXISTS".len()..].to_string() } else { r };
    rest = &after_ine;
    let name_end = rest
        .trim_start()
        .find(|c: char| c == '(' || c.is_whitespace())
        .ok_or("CREATE EXTERNAL TABLE without a column list")?;
    let tail = &rest.trim_start()[name_end..];
    Ok(format!("{}CREATE EXTERNAL TABLE {relation}{tail}", &trimmed[..at]))
}

fn partition_predicate(columns: &[String], parts: &[Vec<String>]) -> String {
    let terms: Vec<String> = parts
        .iter()
        .map(|values| {
            let eqs: Vec<String> = columns
                .iter()
                .zip(values)
                .map(|(c, v)| format!("model_result.{c} = '{}'", v.replace('\'', "''")))
                .collect();
            format!("({})", eqs.join(" AND "))
        })
        .collect();
    format!("({})", terms.join("\n   OR "))
}
