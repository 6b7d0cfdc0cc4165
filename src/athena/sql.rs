//! Athena statements for a model: DDL for external tables, CTAS into a fresh
//! `external_location` for the first batch of partitions and INSERT INTO for the rest
//! (Athena writes at most 100 partitions per statement).
//!
//! Invariant: this module builds strings; it never calls AWS.

use crate::project::{Materialization, Model};

/// Athena's limit on partitions written by one CTAS or INSERT.
pub const MAX_PARTITIONS_PER_STATEMENT: usize = 100;
/// Athena's limit on a query string, in bytes.
pub const MAX_QUERY_BYTES: usize = 262_144;

/// Where and as what a run stages its result.
#[derive(Debug, Clone)]
pub struct StageTarget<'a> {
    /// `"db"."table__<version>"`.
    pub staging_relation: &'a str,
    /// `s3://bucket/prefix/<layer>/<table>/<version>/`; an empty prefix.
    pub external_location: &'a str,
    /// The partitions the run writes (values in `partitioned_by` order), when known.
    pub partitions: Option<&'a [Vec<String>]>,
}

/// The statements that stage `model`, whose rendered SELECT (or DDL) is `body`.
pub fn statements(model: &Model, body: &str, target: &StageTarget<'_>) -> Result<Vec<String>, String> {
    let c = &model.config;
    let out = if c.materialized == Materialization::External {
        vec![body.trim().trim_end_matches(';').to_string()]
    } else {
        let select = body.trim().trim_end_matches(';');
        let mut props = vec![
            "format = 'PARQUET'".to_string(),
            format!("parquet_compression = '{}'", c.compression.to_uppercase()),
            format!("external_location = '{}'", target.external_location),
        ];
        if !c.partitioned_by.is_empty() {
            let cols: Vec<String> = c.partitioned_by.iter().map(|p| format!("'{p}'")).collect();
            props.push(format!("partitioned_by = ARRAY[{}]", cols.join(", ")));
        }
        let ctas = |select: &str| {
            format!(
                "CREATE TABLE {}\nWITH (\n  {}\n) AS\n{select}",
                target.staging_relation,
                props.join(",\n  ")
            )
        };
        match target.partitions {
            Some(parts) if parts.len() > MAX_PARTITIONS_PER_STATEMENT => {
                let mut stmts = Vec::new();
                for (i, chunk) in parts.chunks(MAX_PARTITIONS_PER_STATEMENT).enumerate() {
                    let filtered = format!(
                        "SELECT * FROM (\n{select}\n) AS model_result\nWHERE {}",
                        partition_predicate(&c.partitioned_by, chunk)
                    );
                    stmts.push(if i == 0 {
                        ctas(&filtered)
                    } else {
                        format!("INSERT INTO {}\n{filtered}", target.staging_relation)
                    });
                }
                stmts
            }
            _ => vec![ctas(select)],
        }
    };
    for s in &out {
        if s.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "{}: a statement is {} bytes; Athena accepts at most {MAX_QUERY_BYTES}",
                model.path.display(),
                s.len()
            ));
        }
    }
    Ok(out)
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
