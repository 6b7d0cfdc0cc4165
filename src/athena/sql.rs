//! Athena statements for a model run: its DDL aimed at a version table for external
//! tables; for a SELECT one CTAS into the version's fresh `external_location`, or, when the
//! result has more than 100 partitions (Athena writes at most 100 per statement,
//! HIVE_TOO_MANY_OPEN_PARTITIONS), the result written once as an unpartitioned table and
//! the version table built from it 100 partitions at a time (CTAS, then INSERT INTO), so
//! the model's input is read once. `strata render --engine athena` prints these.
//!
//! Invariant: this module builds strings; it never calls AWS.

use crate::config::Storage;
use crate::engine::{Job, JobKind, Partitions};

/// Athena's limit on partitions written by one CTAS or INSERT.
pub const MAX_PARTITIONS_PER_STATEMENT: usize = 100;
/// Athena's limit on a query string, in bytes.
pub const MAX_QUERY_BYTES: usize = 262_144;

/// The Glue name of a job's version table: `<table>__<version>` (Glue names are lower case
/// letters, digits and underscores).
pub fn version_table(job: &Job) -> String {
    format!("{}__{}", job.table, job.version.to_lowercase().replace('-', "_"))
}

/// The base table of the generation a run starts: `<table>__base_<version>`, holding the
/// partitions that have left the hot window, each registered once.
pub fn base_table(job: &Job) -> String {
    format!("{}__base_{}", job.table, job.version.to_lowercase().replace('-', "_"))
}

/// `values` of the partition columns come before `from` (partition values are
/// zero-padded strings, so they sort as the times they name): a SQL predicate.
pub fn before(partition_by: &[String], from: &[String]) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let mut terms = Vec::new();
    for i in 0..partition_by.len().min(from.len()) {
        let mut conj: Vec<String> =
            (0..i).map(|j| format!("\"{}\" = {}", partition_by[j], quote(&from[j]))).collect();
        conj.push(format!("\"{}\" < {}", partition_by[i], quote(&from[i])));
        terms.push(format!("({})", conj.join(" AND ")));
    }
    if terms.is_empty() { "false".into() } else { terms.join(" OR ") }
}

/// The published view of an incremental model: the base's partitions before the hot
/// window, and the run's own table for the window.
pub fn layered_view(
    db: &str,
    base: &str,
    hot: &str,
    columns: &[String],
    partition_by: &[String],
    from: &[String],
) -> String {
    let cols = columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {cols} FROM \"{db}\".\"{base}\" WHERE {}\nUNION ALL\nSELECT {cols} FROM \"{db}\".\"{hot}\"",
        before(partition_by, from)
    )
}

/// `"db"."table__<version>"`.
pub fn version_relation(job: &Job) -> String {
    format!("\"{}\".\"{}\"", job.database, version_table(job))
}

/// The version's own prefix: `<root>/<layer>/<table>/<version>/`, empty before the run.
pub fn version_location(job: &Job, storage: &Storage) -> String {
    storage.uri(&format!("{}/{}/{}/", job.model.layer.as_str(), job.table, job.version))
}

/// The unit a backfill window keeps, as a name part: `2025_11_05_13`.
/// The statements a run of `job` sends, as text (what `strata render --engine athena` prints):
/// the DDL, one CTAS into a fresh `external_location`, or past 100 partitions the result
/// written once and the table built from it in chunks.
pub fn statements(job: &Job, storage: &Storage) -> Result<Vec<String>, String> {
    let target = version_target(job, storage);
    staging(job, &target, needs_chunks(job))?.render(job, &target)
}

pub fn part_suffix(keep: &Partitions) -> String {
    key_suffix(keep.first().map(Vec::as_slice).unwrap_or_default())
}

/// The suffix of the window table whose first partition is `values`.
pub fn key_suffix(values: &[String]) -> String {
    values.join("_").to_lowercase().replace(['-', '/', ' '], "_")
}

/// A backfill window's table: `<table>__<version>__p<unit>`.
pub fn part_table(job: &Job, keep: &Partitions) -> String {
    format!("{}__p{}", version_table(job), part_suffix(keep))
}

/// Where a backfill window writes: `<version location>_parts/<unit>/`.
pub fn part_location(job: &Job, storage: &Storage, keep: &Partitions) -> String {
    format!("{}_parts/{}/", version_location(job, storage), part_suffix(keep))
}

/// What a run's statements write: a table (`"db"."name"`) at an empty prefix.
#[derive(Debug, Clone)]
pub struct Target {
    pub database: String,
    pub table: String,
    /// Ends with `/`.
    pub location: String,
}

impl Target {
    pub fn relation(&self) -> String {
        format!("\"{}\".\"{}\"", self.database, self.table)
    }

    /// Where the table's files go when it is built in chunks: its result is first written
    /// beside them, under the same prefix, and both must start empty.
    pub fn chunked(&self) -> (Target, Target) {
        let data = Target { location: format!("{}data/", self.location), ..self.clone() };
        let temp = Target {
            database: self.database.clone(),
            table: format!("{}__result", self.table),
            location: format!("{}_result/", self.location),
        };
        (data, temp)
    }
}

/// The version table of a job.
pub fn version_target(job: &Job, storage: &Storage) -> Target {
    Target {
        database: job.database.clone(),
        table: version_table(job),
        location: version_location(job, storage),
    }
}

/// A backfill window's table.
pub fn part_target(job: &Job, storage: &Storage, keep: &Partitions) -> Target {
    Target {
        database: job.database.clone(),
        table: part_table(job, keep),
        location: part_location(job, storage, keep),
    }
}

/// How a job's result is staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staging {
    /// One statement: the DDL, or a CTAS of the whole result.
    Single(String),
    /// More than 100 partitions: `write` creates the unpartitioned result table, `list`
    /// returns its distinct partitions; then [`chunk_statements`] builds the table.
    Chunked { write: String, list: String },
}

impl Staging {
    /// The statements as `render` prints them; the chunk statements depend on the
    /// partitions the result has, so they are shown as a template.
    pub fn render(&self, job: &Job, target: &Target) -> Result<Vec<String>, String> {
        match self {
            Staging::Single(s) => Ok(vec![s.clone()]),
            Staging::Chunked { write, list } => {
                let (data, temp) = target.chunked();
                let mut out = vec![write.clone(), list.clone()];
                let example = chunk_statements(
                    job,
                    &data,
                    &temp,
                    &[vec![Some("<value>".to_string()); partition_by(job).len()]],
                )?;
                out.push(format!(
                    "-- then, for each {MAX_PARTITIONS_PER_STATEMENT} partitions the result has, in order (a CTAS for the first, INSERT INTO after):\n{}",
                    example[0]
                ));
                out.push(format!("DROP TABLE {}", temp.relation()));
                Ok(out)
            }
        }
    }
}

fn partition_by(job: &Job) -> &[String] {
    match &job.kind {
        JobKind::Select { partition_by, .. } => partition_by,
        JobKind::External { .. } => &[],
    }
}

/// How to stage `job` into `target`: `chunked` when the result is known (or found) to have
/// more than 100 partitions.
pub fn staging(job: &Job, target: &Target, chunked: bool) -> Result<Staging, String> {
    let out = match &job.kind {
        // Hive DDL quotes identifiers with backticks.
        JobKind::External { ddl } => {
            Staging::Single(retarget_ddl(ddl, &format!("`{}`.`{}`", target.database, target.table))?)
        }
        JobKind::Select { sql, partition_by, compression, .. } => {
            let select = sql.trim().trim_end_matches(';');
            if chunked && !partition_by.is_empty() {
                let (_, temp) = target.chunked();
                let write = ctas(&temp, compression, &[], select);
                let cols: Vec<String> = partition_by.iter().map(|c| quote(c)).collect();
                let list = format!(
                    "SELECT DISTINCT {} FROM {} ORDER BY {}",
                    cols.join(", "),
                    temp.relation(),
                    cols.join(", ")
                );
                Staging::Chunked { write, list }
            } else {
                Staging::Single(ctas(target, compression, partition_by, select))
            }
        }
    };
    check_size(job, &out)?;
    Ok(out)
}

/// Whether a job's result must be built in chunks before anything runs: an incremental
/// run over more than 100 partitions (a `table` model's partitions are only known from its
/// result; it is chunked when Athena reports HIVE_TOO_MANY_OPEN_PARTITIONS).
pub fn needs_chunks(job: &Job) -> bool {
    matches!(&job.kind, JobKind::Select { replaces: Some(p), .. } if p.len() > MAX_PARTITIONS_PER_STATEMENT)
}

/// The statements that build `data` from the result table `temp`: a CTAS of the first 100
/// partitions, an INSERT INTO per further 100.
pub fn chunk_statements(
    job: &Job,
    data: &Target,
    temp: &Target,
    partitions: &[Vec<Option<String>>],
) -> Result<Vec<String>, String> {
    let JobKind::Select { partition_by, compression, .. } = &job.kind else {
        return Err("internal error: only a SELECT is built in chunks (a bug)".into());
    };
    let mut out = Vec::new();
    for (i, chunk) in partitions.chunks(MAX_PARTITIONS_PER_STATEMENT).enumerate() {
        let select =
            format!("SELECT * FROM {}\nWHERE {}", temp.relation(), partition_predicate(partition_by, chunk));
        out.push(if i == 0 {
            ctas(data, compression, partition_by, &select)
        } else {
            format!("INSERT INTO {}\n{select}", data.relation())
        });
    }
    for s in &out {
        check_len(job, s)?;
    }
    Ok(out)
}

fn ctas(target: &Target, compression: &str, partition_by: &[String], select: &str) -> String {
    let mut props = vec![
        "format = 'PARQUET'".to_string(),
        format!("parquet_compression = '{}'", compression.to_uppercase()),
        format!("external_location = '{}'", target.location),
    ];
    if !partition_by.is_empty() {
        let cols: Vec<String> = partition_by.iter().map(|p| format!("'{p}'")).collect();
        props.push(format!("partitioned_by = ARRAY[{}]", cols.join(", ")));
    }
    format!("CREATE TABLE {}\nWITH (\n  {}\n) AS\n{select}", target.relation(), props.join(",\n  "))
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn check_size(job: &Job, staging: &Staging) -> Result<(), String> {
    match staging {
        Staging::Single(s) => check_len(job, s),
        Staging::Chunked { write, list } => check_len(job, write).and_then(|()| check_len(job, list)),
    }
}

fn check_len(job: &Job, s: &str) -> Result<(), String> {
    if s.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "{}: a statement is {} bytes; Athena accepts at most {MAX_QUERY_BYTES}",
            job.model,
            s.len()
        ));
    }
    Ok(())
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
    let rest = trimmed[at + head.len()..].trim_start();
    let rest = if rest.to_ascii_uppercase().starts_with("IF NOT EXISTS") {
        &rest["IF NOT EXISTS".len()..]
    } else {
        rest
    };
    let rest = rest.trim_start();
    let name_end = rest
        .find(|c: char| c == '(' || c.is_whitespace())
        .ok_or("CREATE EXTERNAL TABLE without a column list")?;
    Ok(format!("{}CREATE EXTERNAL TABLE {relation}{}", &trimmed[..at], &rest[name_end..]))
}

/// `(("dt" = '2025-11-06' AND "hour" = '08') OR ...)` over the result table's columns.
fn partition_predicate(columns: &[String], parts: &[Vec<Option<String>>]) -> String {
    let terms: Vec<String> = parts
        .iter()
        .map(|values| {
            let eqs: Vec<String> = columns
                .iter()
                .zip(values)
                .map(|(c, v)| match v {
                    Some(v) => format!("{} = '{}'", quote(c), v.replace('\'', "''")),
                    None => format!("{} IS NULL", quote(c)),
                })
                .collect();
            format!("({})", eqs.join(" AND "))
        })
        .collect();
    format!("({})", terms.join("\n   OR "))
}
