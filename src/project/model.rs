//! What a model is: its identity (layer and name), its `config(...)`, and its dependencies.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::schedule::Schedule;
use crate::window::Grain;

/// The four layers of the lake, in dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
    Ops,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Bronze, Layer::Silver, Layer::Gold, Layer::Ops];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bronze => "bronze",
            Self::Silver => "silver",
            Self::Gold => "gold",
            Self::Ops => "ops",
        }
    }
}

/// `layer.name`, e.g. `silver.fact_payouts`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelId {
    pub layer: Layer,
    pub name: String,
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer.as_str(), self.name)
    }
}

impl ModelId {
    pub fn parse(s: &str) -> Option<Self> {
        let (layer, name) = s.split_once('.')?;
        let layer = Layer::parse(layer)?;
        (!name.is_empty() && !name.contains('.')).then(|| Self { layer, name: name.into() })
    }
}

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
