//! `strata test --engine athena`: the same tests run on Athena, as dbt runs its unit tests:
//! each input is a CTE of literal rows typed like the table it stands for, the model's
//! SELECT is rendered with its `ref`/`source` pointing at those CTEs, and its result is
//! read back and compared by the local planner's output types. Bronze lines are first read
//! by the embedded engine's port of Trino's OpenX reader (what Athena's SerDe would make
//! of them), so a test means the same on both engines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::compare::Output;
use super::spec::{Input, ModelTest};
use super::{Scratch, TestResult, Verdict, judge, literal, publish, test_project, write_lines};
use crate::athena::AthenaEngine;
use crate::config::EngineKind;
use crate::engine::{Engine, EngineError, JobKind};
use crate::ids::ModelId;
use crate::local::LocalEngine;
use crate::project::{Materialization, Project};
use crate::render::Relations;
use crate::runner::{RunOptions, job_for, window_for};

/// Runs one test on Athena. `project` is configured for Athena, `local` for the embedded
/// engine (which reads Bronze lines and knows the output types).
/// Runs `tests` on Athena (the project's `[athena]` settings), one after the other.
pub async fn run_all(
    project: &Project,
    local: &Project,
    schemas: &BTreeMap<ModelId, SchemaRef>,
    tests: &[ModelTest],
) -> Result<Vec<TestResult>, EngineError> {
    let engine = AthenaEngine::open(&project.settings).await?;
    let mut results = Vec::new();
    for t in tests {
        results.push(run(project, local, schemas, &engine, t).await);
    }
    Ok(results)
}

async fn run(
    project: &Project,
    local: &Project,
    schemas: &BTreeMap<ModelId, SchemaRef>,
    engine: &AthenaEngine,
    test: &ModelTest,
) -> TestResult {
    let started = Instant::now();
    let verdict = match run_inner(project, local, schemas, engine, test).await {
        Ok(v) => v,
        Err(e) => Verdict::Error(e),
    };
    TestResult { test: test.clone(), verdict, engine_time: started.elapsed() }
}

fn cte_name(id: &ModelId) -> String {
    format!("\"__given_{}_{}\"", id.layer.as_str(), id.name)
}

async fn run_inner(
    project: &Project,
    local: &Project,
    schemas: &BTreeMap<ModelId, SchemaRef>,
    engine: &AthenaEngine,
    test: &ModelTest,
) -> Result<Verdict, String> {
    let mut ctes = Vec::new();
    let mut relations: Relations = (*project.relations).clone();
    for up in project.dag.upstream(&test.model) {
        let given = test.given.iter().find(|(g, _)| g == up).map(|(_, i)| i);
        let body = if project.models[up].config.materialized == Materialization::External {
            let batches = match given {
                Some(Input::Lines { .. }) => read_lines(local, test, up).await?,
                _ => Vec::new(),
            };
            let schema = schemas.get(up).ok_or_else(|| format!("{up}: its DDL does not parse"))?;
            select_batches(schema, &batches)?
        } else {
            let schema = schemas.get(up).ok_or_else(|| format!("{up} does not plan (see `strata plan`)"))?;
            let rows = match given {
                Some(Input::Rows(rows)) => rows.as_slice(),
                _ => &[],
            };
            select_rows(schema, rows).map_err(|e| format!("{up}: {e}"))?
        };
        ctes.push(format!("{} AS (\n{body}\n)", cte_name(up)));
        relations.by_id.insert(up.to_string(), cte_name(up));
    }
    let window = window_for(project, &test.model, &RunOptions::new(test.at, test.from));
    let mut p_settings = project.settings.clone();
    for (k, v) in &test.vars {
        p_settings.vars.insert(k.clone(), v.clone());
    }
    let p = project.with_settings(p_settings);
    let sql = p
        .render_with(&test.model, EngineKind::Athena, window, Arc::new(relations))
        .map_err(|d| d.to_string())?;
    let body = sql.trim().trim_end_matches(';');
    let sql = match body.get(..4).filter(|w| w.eq_ignore_ascii_case("with")) {
        Some(_) => format!("WITH {},\n{}", ctes.join(",\n"), &body[4..]),
        None if ctes.is_empty() => body.to_string(),
        None => format!("WITH {}\n{body}", ctes.join(",\n")),
    };
    let result = engine.query(&sql).await.map_err(|e| e.to_string())?;
    // Athena returns text: typed by the model's output as the local planner sees it.
    let types = schemas.get(&test.model).cloned();
    let mut batches = Vec::new();
    for b in &result.batches {
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (f, a) in b.schema().fields().iter().zip(b.columns()) {
            let ty = types
                .as_ref()
                .and_then(|s| s.field_with_name(f.name()).ok().map(|f| f.data_type().clone()))
                .filter(|t| super::sql_type(t).is_some())
                .unwrap_or(DataType::Utf8);
            columns.push(cast(a, &ty).map_err(|e| format!("column {}: {e}", f.name()))?);
            fields.push(Field::new(f.name(), ty, true));
        }
        batches
            .push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())?);
    }
    let out = Output::from_batches(&batches)?;
    let out = if out.columns.is_empty() {
        Output {
            columns: result.schema.fields().iter().map(|f| (f.name().clone(), DataType::Utf8)).collect(),
            rows: Vec::new(),
        }
    } else {
        out
    };
    judge(test, &out)
}

/// The rows Bronze `lines` are read as (the embedded engine's OpenX reader, Athena's rules).
async fn read_lines(local: &Project, test: &ModelTest, up: &ModelId) -> Result<Vec<RecordBatch>, String> {
    let Some((_, Input::Lines { lines, partition })) = test.given.iter().find(|(g, _)| g == up) else {
        return Ok(Vec::new());
    };
    let scratch = Scratch::new().map_err(|e| e.to_string())?;
    let p = test_project(local, test, &scratch.0);
    let engine = LocalEngine::for_settings(&p.settings).map_err(|e| e.to_string())?;
    let opts = RunOptions::new(test.at, test.from)
        .with(&crate::runner::Flags { allow_empty_window: true, ..Default::default() });
    let job = job_for(&p, up, window_for(&p, up, &opts), "test", &super::version(1), test.at)
        .map_err(|e| e.to_string())?;
    if let JobKind::External { ddl } = &job.kind {
        write_lines(ddl, lines, partition.as_ref()).map_err(|e| format!("{up}: {e}"))?;
    }
    publish(&engine, &job).await.map_err(|e| format!("{up}: {e}"))?;
    let result =
        engine.query(&format!("SELECT * FROM {}", p.relation(up))).await.map_err(|e| e.to_string())?;
    Ok(result.batches)
}

/// An Athena type name of an Arrow type.
fn athena_type(t: &DataType) -> Result<String, String> {
    Ok(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            "bigint".into()
        }
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| Ok(format!("\"{}\" {}", f.name(), athena_type(f.data_type())?)))
                .collect::<Result<_, String>>()?;
            format!("row({})", parts.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("map({}, {})", athena_type(kv[0].data_type())?, athena_type(kv[1].data_type())?)
            }
            other => return Err(format!("a map of {other}")),
        },
        DataType::List(item) | DataType::LargeList(item) => {
            format!("array({})", athena_type(item.data_type())?)
        }
        other => return Err(format!("{other} has no Athena literal here")),
    })
}

/// A test's rows as a SELECT of typed literals (no rows: one that returns none).
fn select_rows(schema: &SchemaRef, rows: &[toml::Table]) -> Result<String, String> {
    let select = |row: Option<&toml::Table>| -> Result<String, String> {
        let cells: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                let ty = athena_type(f.data_type())?;
                let v = row
                    .and_then(|r| r.iter().find(|(k, _)| k.eq_ignore_ascii_case(f.name())).map(|(_, v)| v));
                let lit = literal(v, &super::sql_type(f.data_type()).unwrap_or_default())?;
                Ok(format!("CAST({lit} AS {ty}) AS \"{}\"", f.name()))
            })
            .collect::<Result<_, String>>()?;
        Ok(format!("SELECT {}", cells.join(", ")))
    };
    if rows.is_empty() {
        return Ok(format!("{} WHERE false", select(None)?));
    }
    Ok(rows.iter().map(|r| select(Some(r))).collect::<Result<Vec<_>, _>>()?.join("\nUNION ALL "))
}

/// Rows read from Bronze as a SELECT of typed literals (nested values as ROW/MAP/ARRAY).
fn select_batches(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, String> {
    let mut selects = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| {
                    let ty = athena_type(f.data_type())?;
                    let v = match b.column_by_name(f.name()) {
                        Some(a) => value(a, r)?,
                        None => "NULL".into(),
                    };
                    Ok(format!("CAST({v} AS {ty}) AS \"{}\"", f.name()))
                })
                .collect::<Result<_, String>>()?;
            selects.push(format!("SELECT {}", cells.join(", ")));
        }
    }
    if selects.is_empty() {
        let cells: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| Ok(format!("CAST(NULL AS {}) AS \"{}\"", athena_type(f.data_type())?, f.name())))
            .collect::<Result<_, String>>()?;
        return Ok(format!("SELECT {} WHERE false", cells.join(", ")));
    }
    Ok(selects.join("\nUNION ALL "))
}

/// One value of an Arrow array as an Athena literal.
fn value(a: &ArrayRef, r: usize) -> Result<String, String> {
    if a.is_null(r) {
        return Ok("NULL".into());
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(match a.data_type() {
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let parts: Vec<String> =
                (0..fields.len()).map(|i| value(s.column(i), r)).collect::<Result<_, _>>()?;
            format!("ROW({})", parts.join(", "))
        }
        DataType::Map(..) => {
            let m = a.as_map();
            let entries = m.value(r);
            let (keys, values) = (entries.column(0), entries.column(1));
            let k: Vec<String> = (0..keys.len()).map(|i| value(keys, i)).collect::<Result<_, _>>()?;
            let v: Vec<String> = (0..values.len()).map(|i| value(values, i)).collect::<Result<_, _>>()?;
            format!("MAP(ARRAY[{}], ARRAY[{}])", k.join(", "), v.join(", "))
        }
        DataType::List(_) => {
            let items = a.as_list::<i32>().value(r);
            let v: Vec<String> = (0..items.len()).map(|i| value(&items, i)).collect::<Result<_, _>>()?;
            format!("ARRAY[{}]", v.join(", "))
        }
        DataType::Timestamp(..) => {
            let c = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None)).map_err(|e| e.to_string())?;
            let ms = c.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>().value(r);
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            format!("TIMESTAMP {}", quote(&t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let c = cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
            quote(c.as_string::<i32>().value(r))
        }
        _ => {
            let c = cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
            c.as_string::<i32>().value(r).to_string()
        }
    })
}
