//! `strata test`: model unit tests. A test gives a model's inputs (raw lines for Bronze,
//! rows for other models), runs the model for one window, and compares what it produces
//! with the expected rows (`spec` for the file format, `compare` for the comparison).
//!
//! On the local engine each test gets a fresh lake and catalog in a temporary directory:
//! its inputs are published there as the upstream tables (Bronze lines written where the
//! table's layout puts them and read through its SerDe rules; rows typed by the upstream
//! model's output), the model is staged and published there exactly as a run would, and
//! its table read back. Nothing touches the project's lake or catalog. On Athena
//! (`--engine athena`) the inputs are CTEs of literal rows (Bronze lines first read by the
//! same OpenX rules into rows) and the model's SELECT runs against them, as dbt does.

pub mod athena;
pub mod compare;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, SchemaRef};

use self::compare::Output;
use self::spec::{Input, ModelTest};
use crate::config::{EngineKind, Storage};
use crate::engine::{Engine, EngineError, Job, JobKind};
use crate::ids::ModelId;
use crate::local::LocalEngine;
use crate::project::{Diagnostic, Materialization, Project};
use crate::runner::{RunOptions, job_for, window_for};

/// How a test ended.
#[derive(Debug, Clone)]
pub enum Verdict {
    Passed,
    /// The rows differ: what differs, as lines.
    Failed(Vec<String>),
    /// The model (or an input) could not run.
    Error(String),
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub test: ModelTest,
    pub verdict: Verdict,
    /// Time spent in the engine (staging the inputs and the model, reading it back).
    pub engine_time: Duration,
}

/// The tests of the selected models, or every problem of their test files.
pub fn load(project: &Project, selected: &[ModelId]) -> Result<Vec<ModelTest>, Vec<Diagnostic>> {
    let mut tests = Vec::new();
    let mut problems = spec::orphans(project);
    for id in selected {
        match spec::load(project, id) {
            Ok(t) => {
                if !t.is_empty() && project.models[id].config.materialized == Materialization::External {
                    problems.push(Diagnostic {
                        path: spec::path_of(&project.models[id].path),
                        line: 1,
                        message: format!("{id} is an external table: test the models that read it"),
                    });
                }
                tests.extend(t);
            }
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() { Ok(tests) } else { Err(problems) }
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "strata-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The project as a test sees it: its own lake and state directory, the test's vars.
fn test_project(project: &Project, test: &ModelTest, root: &Path) -> Project {
    let mut settings = project.settings.clone();
    settings.engine = EngineKind::Local;
    settings.storage = Storage::Local(root.join("lake"));
    settings.state_dir = root.join("state");
    for (k, v) in &test.vars {
        settings.vars.insert(k.clone(), v.clone());
    }
    project.with_settings(settings)
}

/// Runs one test on the local engine.
pub async fn run_local(
    project: &Project,
    schemas: &BTreeMap<ModelId, SchemaRef>,
    test: &ModelTest,
) -> TestResult {
    let started = Instant::now();
    let verdict = match run_local_inner(project, schemas, test).await {
        Ok(v) => v,
        Err(e) => Verdict::Error(e),
    };
    TestResult { test: test.clone(), verdict, engine_time: started.elapsed() }
}

async fn run_local_inner(
    project: &Project,
    schemas: &BTreeMap<ModelId, SchemaRef>,
    test: &ModelTest,
) -> Result<Verdict, String> {
    let scratch = Scratch::new().map_err(|e| format!("a temporary directory: {e}"))?;
    let p = test_project(project, test, &scratch.0);
    let engine = LocalEngine::for_settings(&p.settings).map_err(|e| e.to_string())?;
    // A test's inputs may leave partitions of its window empty: that is what it checks.
    let opts = RunOptions::new(test.at, test.from)
        .with(&crate::runner::Flags { allow_empty_window: true, ..Default::default() });
    for up in p.dag.upstream(&test.model) {
        let given = test.given.iter().find(|(g, _)| g == up).map(|(_, i)| i);
        let upstream = &p.models[up];
        let job = if upstream.config.materialized == Materialization::External {
            let job = job_for(&p, up, window_for(&p, up, &opts), "test", &version(1), test.at)
                .map_err(|e| e.to_string())?;
            if let (Some(Input::Lines { lines, partition }), JobKind::External { ddl }) = (given, &job.kind) {
                write_lines(ddl, lines, partition.as_ref()).map_err(|e| format!("{up}: {e}"))?;
            }
            job
        } else {
            let schema = schemas.get(up).ok_or_else(|| format!("{up} does not plan (see `strata plan`)"))?;
            let rows = match given {
                Some(Input::Rows(rows)) => rows.as_slice(),
                _ => &[],
            };
            rows_job(&p, up, schema, rows).map_err(|e| format!("{up}: {e}"))?
        };
        publish(&engine, &job).await.map_err(|e| format!("{up}: {e}"))?;
    }
    let window = window_for(&p, &test.model, &opts);
    let job = job_for(&p, &test.model, window, "test", &version(2), test.at).map_err(|e| e.to_string())?;
    publish(&engine, &job).await.map_err(|e| crate::runner::located(&p, &test.model, &job, &e))?;
    let relation = p.relation(&test.model);
    let result = engine.query(&format!("SELECT * FROM {relation}")).await.map_err(|e| e.to_string())?;
    let out = Output::from_batches(&result.batches)?;
    // An empty result still has columns to compare against.
    let out = if out.columns.is_empty() {
        Output {
            columns: result
                .schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect(),
            rows: Vec::new(),
        }
    } else {
        out
    };
    judge(test, &out)
}

/// The verdict on `out`.
pub fn judge(test: &ModelTest, out: &Output) -> Result<Verdict, String> {
    match compare::diff(&test.expect, test.mode, test.ordered, out) {
        Ok(lines) if lines.is_empty() => Ok(Verdict::Passed),
        Ok(lines) => Ok(Verdict::Failed(lines)),
        Err((line, message)) => Err(format!("{}:{line}: {message}", test.path.display())),
    }
}

fn version(n: u32) -> String {
    format!("v20000101T000000000Z-{n:06x}")
}

async fn publish(engine: &LocalEngine, job: &Job) -> Result<(), EngineError> {
    let staged = engine.stage(job).await?;
    engine.publish(&staged, "2000-01-01T00:00:00.000Z").await
}

/// A test's rows of `model` as a job that publishes exactly them, typed by the model's
/// output schema.
fn rows_job(
    project: &Project,
    model: &ModelId,
    schema: &SchemaRef,
    rows: &[toml::Table],
) -> Result<Job, String> {
    let m = &project.models[model];
    let columns: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| {
            Ok((
                f.name().clone(),
                sql_type(f.data_type()).ok_or_else(|| {
                    format!("column {} is {}, which a test cannot give yet", f.name(), f.data_type())
                })?,
            ))
        })
        .collect::<Result<_, String>>()?;
    for r in rows {
        if let Some(k) = r.keys().find(|k| !columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(k))) {
            let have: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
            return Err(format!("no column '{k}' (it has: {})", have.join(", ")));
        }
    }
    let select = |row: Option<&toml::Table>| -> Result<String, String> {
        let cells: Vec<String> = columns
            .iter()
            .map(|(c, ty)| {
                let v = row.and_then(|r| r.iter().find(|(k, _)| k.eq_ignore_ascii_case(c)).map(|(_, v)| v));
                Ok(format!("CAST({} AS {ty}) AS \"{c}\"", literal(v, ty)?))
            })
            .collect::<Result<_, String>>()?;
        Ok(format!("SELECT {}", cells.join(", ")))
    };
    let sql = if rows.is_empty() {
        format!("{} WHERE false", select(None)?)
    } else {
        rows.iter().map(|r| select(Some(r))).collect::<Result<Vec<_>, _>>()?.join("\nUNION ALL ")
    };
    Ok(Job {
        model: model.clone(),
        database: project.database(model).to_string(),
        table: m.table.clone(),
        run_id: "test".into(),
        version: version(1),
        now: chrono::DateTime::UNIX_EPOCH,
        window_end: chrono::DateTime::UNIX_EPOCH,
        kind: JobKind::Select {
            sql,
            partition_by: m.config.partitioned_by.clone(),
            compression: m.config.compression.clone(),
            replaces: None,
        },
        audits: Vec::new(),
        arrived: None,
    })
}

/// The SQL type a test value of a column is cast to.
pub fn sql_type(t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "BIGINT".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(..) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        _ => return None,
    })
}

/// A test value as a SQL literal (`None` and the string "NULL": NULL).
pub fn literal(v: Option<&toml::Value>, ty: &str) -> Result<String, String> {
    use toml::Value as V;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(match v {
        None => "NULL".into(),
        Some(V::String(s)) if s == "NULL" => "NULL".into(),
        Some(V::String(s)) if ty == "TIMESTAMP" => {
            let t = compare::parse_time(s).ok_or_else(|| format!("'{s}' is not a timestamp"))?;
            quote(&t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        }
        Some(V::String(s)) => quote(s),
        Some(V::Integer(i)) => i.to_string(),
        Some(V::Float(f)) => format!("{f:?}"),
        Some(V::Boolean(b)) => b.to_string(),
        Some(V::Datetime(d)) => quote(d.to_string().replace('T', " ").trim_end_matches('Z')),
        Some(other) => return Err(format!("{other} cannot be given as a {ty} value")),
    })
}

/// Writes Bronze `lines` where the table's layout puts each one: the block's `partition`,
/// or the partition Firehose's dynamic partitioning would choose for the line.
fn write_lines(
    ddl: &str,
    lines: &[String],
    partition: Option<&BTreeMap<String, String>>,
) -> Result<(), String> {
    let table = crate::local::bronze::parse_external_table(ddl).map_err(|e| e.to_string())?;
    let location = table.location.clone().ok_or("the DDL has no LOCATION")?;
    let template = table.table_properties.get("storage.location.template").cloned().unwrap_or_else(|| {
        let parts: Vec<String> = table.partition_columns.iter().map(|c| format!("{c}=${{{c}}}")).collect();
        format!("{}/{}", location.trim_end_matches('/'), parts.join("/"))
    });
    let mut files: BTreeMap<PathBuf, Vec<&str>> = BTreeMap::new();
    for (n, line) in lines.iter().enumerate() {
        let values = match partition {
            Some(p) => p.clone(),
            None => firehose_partition(line, &table.partition_columns).ok_or_else(|| {
                format!(
                    "line {} of the input: cannot tell its partition from received_at, context.env and event; give `partition`",
                    n + 1
                )
            })?,
        };
        let mut path = template.clone();
        for c in &table.partition_columns {
            let v = values.get(c).ok_or_else(|| format!("`partition` has no value for {c}"))?;
            path = path.replace(&format!("${{{c}}}"), v);
        }
        let dir = PathBuf::from(path.trim_start_matches("file://"));
        files.entry(dir.join("part-test.json")).or_default().push(line);
    }
    for (path, lines) in files {
        std::fs::create_dir_all(path.parent().expect("a file has a directory")).map_err(|e| e.to_string())?;
        std::fs::write(&path, lines.join("\n") + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The partition Firehose's dynamic partitioning gives an envelope (`infra/ingest.yaml`):
/// the day and hour of `received_at`, `context.env`, and `event`.
fn firehose_partition(line: &str, columns: &[String]) -> Option<BTreeMap<String, String>> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let received = v.get("received_at")?.as_str()?;
    let t = compare::parse_time(received)?;
    let mut out = BTreeMap::new();
    for c in columns {
        let value = match c.as_str() {
            "dt" => t.format("%Y-%m-%d").to_string(),
            "hour" => t.format("%H").to_string(),
            "env" => v.get("context")?.get("env")?.as_str()?.to_string(),
            "event" | "event_name" => v.get("event")?.as_str()?.to_string(),
            _ => return None,
        };
        out.insert(c.clone(), value);
    }
    Some(out)
}
