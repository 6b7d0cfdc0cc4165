//! Static checks of a model's SELECT that Athena would only report after scanning data:
//! partition columns must be the last columns, and must not clash with data columns.

use datafusion::sql::sqlparser::ast::{Expr, SelectItem, SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

pub(crate) struct Finding {
    pub column: String,
    pub text: String,
}

/// The output column names of the top-level SELECT, or `None` when they cannot be known
/// statically (a `*`, a statement that is not a query, SQL the parser does not read).
fn output_columns(sql: &str) -> Option<Vec<String>> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return None;
    };
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(q) => body = q.body.as_ref(),
            SetExpr::Select(select) => {
                return select
                    .projection
                    .iter()
                    .map(|item| match item {
                        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
                        SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.to_lowercase()),
                        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                            parts.last().map(|i| i.value.to_lowercase())
                        }
                        _ => None,
                    })
                    .collect();
            }
            _ => return None,
        }
    }
}

/// Problems with the partition columns of a model's rendered SELECT.
pub(crate) fn partition_columns(sql: &str, partitioned_by: &[String]) -> Vec<Finding> {
    let mut out = Vec::new();
    if partitioned_by.is_empty() {
        return out;
    }
    let Some(columns) = output_columns(sql) else {
        return out;
    };
    let k = partitioned_by.len();
    for p in partitioned_by {
        let count = columns.iter().filter(|c| c.eq_ignore_ascii_case(p)).count();
        if count > 1 {
            out.push(Finding {
                column: p.clone(),
                text: format!("partition column '{p}' clashes with a data column of the same name; rename the data column"),
            });
        } else if count == 0 {
            out.push(Finding {
                column: p.clone(),
                text: format!("partition column '{p}' is not a column of the SELECT"),
            });
        }
    }
    if out.is_empty() {
        let tail = &columns[columns.len().saturating_sub(k)..];
        let wanted: Vec<String> = partitioned_by.iter().map(|s| s.to_lowercase()).collect();
        if tail != wanted.as_slice() {
            let first_bad = partitioned_by
                .iter()
                .find(|p| tail.iter().all(|t| !t.eq_ignore_ascii_case(p)))
                .unwrap_or(&partitioned_by[0]);
            out.push(Finding {
                column: first_bad.clone(),
                text: format!(
                    "partition columns must be the last columns of the SELECT in the order {wanted:?} (Athena requires it); the SELECT ends with {tail:?}"
                ),
            });
        }
    }
    out
}

/// The line of the source where `column` is selected (`AS column`), or 1.
pub(crate) fn line_hint(source: &str, column: &str) -> usize {
    let lower = source.to_lowercase();
    let col = column.to_lowercase();
    let needle = format!("as {col}");
    let at = lower
        .match_indices(&needle)
        .map(|(i, _)| i)
        .find(|&i| !lower[i + needle.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        .or_else(|| lower.rfind(&format!("{col},")).or_else(|| lower.rfind(&col)));
    at.map_or(1, |i| lower[..i].matches('\n').count() + 1)
}
