//! The test files: `sql/<layer>/<name>.tests.toml` beside the model they test.
//!
//! ```toml
//! [[test]]
//! name = "a late event counts in the hour it happened"
//! at = "2025-11-06T12:00:00Z"          # the run's logical time (the window ends here)
//! from = "2025-11-06T09:00:00Z"        # optional: an incremental run from here
//! vars = { envs = ["prod"] }           # optional: vars for this test
//!
//! [[test.given]]                       # one per upstream it sets; the others are empty
//! input = "bronze.events"
//! lines = '''
//! {"event": "booking.created", "received_at": "2025-11-06T11:10:00Z", ...}
//! '''
//!
//! [[test.given]]
//! input = "silver.fact_bookings"
//! rows = [ { booking_id = "b1", city = "berlin", dt = "2025-11-06", hour = "11" } ]
//!
//! [test.expect]
//! mode = "all"                          # or "contains"
//! ordered = false
//! rows = [ { booking_id = "b1", city = "berlin" } ]
//! ```
//!
//! Bronze is given as the raw lines producers send, read through the table's SerDe rules.
//! Each line lands in the partition Firehose would put it in (`received_at`'s day and hour,
//! `context.env`, `event`), or in the block's `partition = { dt = …, hour = …, … }`. Rows of
//! other models are typed by the model's output; columns not given are NULL; the string
//! "NULL" is a SQL NULL. Only the columns an expected row names are compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::ids::ModelId;
use crate::project::{Diagnostic, Project};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(rename = "test", default)]
    tests: Vec<Spanned<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    at: Spanned<String>,
    from: Option<Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    given: Vec<Spanned<RawGiven>>,
    expect: RawExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGiven {
    input: Spanned<String>,
    lines: Option<String>,
    partition: Option<BTreeMap<String, String>>,
    rows: Option<Vec<Spanned<toml::Table>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    ordered: bool,
    rows: Vec<Spanned<toml::Table>>,
}

/// Whether the expected rows are all the rows, or some of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    All,
    Contains,
}

/// What one upstream holds in a test.
#[derive(Debug, Clone)]
pub enum Input {
    /// Raw lines of an external (Bronze) table, with the partition they land in (`None`:
    /// where Firehose would put each line).
    Lines { lines: Vec<String>, partition: Option<BTreeMap<String, String>> },
    /// Rows of a model's output.
    Rows(Vec<toml::Table>),
}

/// A row with the line of the test file it was written on.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub values: toml::Table,
}

/// One test of one model.
#[derive(Debug, Clone)]
pub struct ModelTest {
    pub model: ModelId,
    pub name: String,
    pub path: PathBuf,
    pub line: usize,
    pub at: chrono::DateTime<chrono::Utc>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub vars: BTreeMap<String, serde_json::Value>,
    pub given: Vec<(ModelId, Input)>,
    pub mode: Mode,
    pub ordered: bool,
    pub expect: Vec<Row>,
}

/// The test file of a model.
pub fn path_of(model_path: &Path) -> PathBuf {
    model_path.with_extension("tests.toml")
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The tests of `model`, or every problem of its test file (each at its line).
pub fn load(project: &Project, model: &ModelId) -> Result<Vec<ModelTest>, Vec<Diagnostic>> {
    let m = &project.models[model];
    let path = path_of(&m.path);
    let Ok(text) = std::fs::read_to_string(project.settings.project_dir.join(&path)) else {
        return Ok(Vec::new());
    };
    let diag = |offset: usize, message: String| Diagnostic {
        path: path.clone(),
        line: line_at(&text, offset),
        message,
    };
    let file: File = toml::from_str(&text)
        .map_err(|e| vec![diag(e.span().map_or(0, |s| s.start), e.message().to_string())])?;
    let upstream = project.dag.upstream(model);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for t in file.tests {
        let line = line_at(&text, t.span().start);
        let t = t.into_inner();
        let instant = |s: &Spanned<String>, problems: &mut Vec<Diagnostic>| {
            let parsed = crate::clock::parse_instant(s.get_ref());
            match parsed {
                None => problems.push(diag(
                    s.span().start,
                    format!("'{}': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or RFC 3339", s.get_ref()),
                )),
                Some(t) if !crate::clock::in_range(t) => problems.push(diag(
                    s.span().start,
                    format!(
                        "'{}' is out of range: strata accepts instants from {} to {}",
                        s.get_ref(),
                        crate::clock::EARLIEST,
                        crate::clock::LATEST
                    ),
                )),
                Some(_) => {}
            }
            parsed.filter(|t| crate::clock::in_range(*t))
        };
        let at = instant(&t.at, &mut problems);
        let from = t.from.as_ref().map(|f| instant(f, &mut problems));
        if let (Some(at), Some((Some(f), spanned))) = (at, from.zip(t.from.as_ref()))
            && f >= at
        {
            problems.push(diag(
                spanned.span().start,
                format!(
                    "from '{}' is not before at '{}': the window is empty; give `from` earlier than `at`",
                    spanned.get_ref(),
                    t.at.get_ref()
                ),
            ));
        }
        let mut given = Vec::new();
        for g in &t.given {
            let span = g.span().start;
            let g = g.get_ref();
            let name = g.input.get_ref();
            let Some(id) = upstream.iter().find(|u| u.to_string() == *name) else {
                let names: Vec<String> = upstream.iter().map(ToString::to_string).collect();
                problems.push(diag(
                    g.input.span().start,
                    format!("'{name}' is not an input of {model}; its inputs are: {}", names.join(", ")),
                ));
                continue;
            };
            let external =
                project.models[id].config.materialized == crate::project::Materialization::External;
            let input = match (&g.lines, &g.rows, external) {
                (Some(lines), None, true) => Input::Lines {
                    lines: lines.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect(),
                    partition: g.partition.clone(),
                },
                (None, Some(rows), false) => Input::Rows(rows.iter().map(|r| r.get_ref().clone()).collect()),
                (_, _, true) => {
                    problems.push(diag(span, format!("{id} is an external table: give its raw `lines`")));
                    continue;
                }
                (_, _, false) => {
                    problems.push(diag(span, format!("{id} is a model: give its `rows`")));
                    continue;
                }
            };
            if given.iter().any(|(g, _): &(ModelId, Input)| g == id) {
                problems.push(diag(span, format!("{id} is given twice")));
            }
            given.push((id.clone(), input));
        }
        let vars = t
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(serde_json::Value::Null)))
            .collect();
        // `from`: absent, or given and valid (an invalid one is already a problem).
        let from = match from {
            None => Some(None),
            Some(Some(f)) => Some(Some(f)),
            Some(None) => None,
        };
        if let (Some(at), Some(from)) = (at, from) {
            out.push(ModelTest {
                model: model.clone(),
                name: t.name,
                path: path.clone(),
                line,
                at,
                from,
                vars,
                given,
                mode: t.expect.mode,
                ordered: t.expect.ordered,
                expect: t
                    .expect
                    .rows
                    .iter()
                    .map(|r| Row { line: line_at(&text, r.span().start), values: r.get_ref().clone() })
                    .collect(),
            });
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// Test files with no model beside them.
pub fn orphans(project: &Project) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let root = project.settings.project_dir.join("sql");
    let Ok(layers) = std::fs::read_dir(&root) else { return out };
    for layer in layers.flatten() {
        let Ok(files) = std::fs::read_dir(layer.path()) else { continue };
        for f in files.flatten() {
            let p = f.path();
            let Some(name) =
                p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".tests.toml"))
            else {
                continue;
            };
            let model = std::fs::canonicalize(p.with_file_name(format!("{name}.sql"))).ok();
            let dir = &project.settings.project_dir;
            let known = |m: &crate::project::Model| std::fs::canonicalize(dir.join(&m.path)).ok() == model;
            if model.is_none() || !project.models.values().any(known) {
                out.push(Diagnostic {
                    path: p.strip_prefix(&project.settings.project_dir).unwrap_or(&p).to_path_buf(),
                    line: 1,
                    message: format!("no model {name}.sql beside this test file"),
                });
            }
        }
    }
    out
}
