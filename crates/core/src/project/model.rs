//! What a model is: its identity (layer and name), its `config(...)`, and its dependencies.

use std::path::PathBuf;

use serde::Deserialize;

use crate::ids::ModelId;
use crate::schedule::Schedule;
use crate::window::Grain;

/// How a model's result is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialization {
    /// An external table over data strata does not write (Bronze): the model is DDL.
    External,
    /// Rebuilt in full on every run.
    Table,
    /// Only the partitions of the run's window are recomputed and replaced.
    Incremental,
}

impl Materialization {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::External => "external",
            Self::Table => "table",
            Self::Incremental => "incremental",
        }
    }
}

/// A check run on the staged result before it may be published.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Audit {
    /// At least one row.
    NotEmpty,
    /// None of these columns is NULL.
    NotNull(Vec<String>),
    /// No two rows share these columns.
    Unique(Vec<String>),
    /// The column only holds these values (or NULL).
    AcceptedValues { column: String, values: Vec<String> },
    /// A query over `{{ this }}` (the staged table) that must return no rows.
    Sql(String),
    /// The staged row count may differ from the published version's by at most this many
    /// percent (skipped when nothing is published yet).
    MaxRowChangePct(f64),
}

/// `config(...)` as written in the template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub materialized: Materialization,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub partitioned_by: Vec<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub compression: Option<String>,
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub lookback: Option<u32>,
    #[serde(default)]
    pub audits: Vec<Audit>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub reads: Option<String>,
}

/// The validated configuration of a model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub materialized: Materialization,
    pub schedule: Option<Schedule>,
    pub partitioned_by: Vec<String>,
    pub format: String,
    pub compression: String,
    pub grain: Grain,
    pub lookback: u32,
    pub audits: Vec<Audit>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// `reads='arrived'`: an incremental model that reads only the Bronze objects that
    /// arrived since its published version, keeping that version's rows of the window.
    pub reads_arrived: bool,
}

/// A reference from one model to another, where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub target: ModelId,
    pub line: usize,
}

/// One model: a file `sql/<layer>/<name>.sql`.
#[derive(Debug, Clone)]
pub struct Model {
    pub id: ModelId,
    /// The file, relative to the project directory (for messages).
    pub path: PathBuf,
    pub source: String,
    /// The table name in the catalog: the file name, or the `alias` config.
    pub table: String,
    pub config: ModelConfig,
    pub deps: Vec<Dep>,
}

impl Model {
    /// The 1-based line of the first occurrence of `needle` in the source, or 1.
    pub fn line_of(&self, needle: &str) -> usize {
        line_of(&self.source, needle).unwrap_or(1)
    }
}

pub fn line_of(source: &str, needle: &str) -> Option<usize> {
    source.find(needle).map(|at| source[..at].matches('\n').count() + 1)
}

/// An engine's SQL error as a user reads it: without the engine's prefixes.
pub fn sql_error(text: &str) -> String {
    text.trim_start_matches("Error during planning: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("Schema error: ")
        .replace("ParserError(\"", "")
        .replace("\")", "")
}

/// The line of the model's file an error of its rendered SQL points at: the source line of
/// the rendered `line` the engine points to, or where the column, table or function it
/// could not resolve (`unresolved`, possibly qualified) is written; else its SELECT.
pub fn locate(model: &Model, rendered: &str, line: Option<usize>, unresolved: Option<&str>) -> usize {
    if let Some(line) = line {
        return source_line(model, rendered, line);
    }
    let last = unresolved.map(|n| n.trim_end_matches('.')).map(|n| n.rsplit('.').next().unwrap_or(n));
    if let Some(line) = last.filter(|l| !l.is_empty()).and_then(|l| line_of(&model.source, l)) {
        return line;
    }
    model.line_of("SELECT")
}

/// The line of the model's source that line `rendered_line` of its rendered SQL came from:
/// the source line with the same text (templates only change the lines they are on).
pub fn source_line(model: &Model, rendered: &str, rendered_line: usize) -> usize {
    let Some(text) = rendered.lines().nth(rendered_line.saturating_sub(1)) else { return 1 };
    let text = text.trim();
    if text.is_empty() {
        return 1;
    }
    model
        .source
        .lines()
        .position(|l| l.trim() == text)
        .or_else(|| {
            let words: Vec<&str> =
                text.split_whitespace().filter(|w| !w.contains('\'') && w.len() > 2).collect();
            model
                .source
                .lines()
                .position(|l| words.iter().take(3).all(|w| l.contains(w)) && !words.is_empty())
        })
        .map_or(1, |i| i + 1)
}
