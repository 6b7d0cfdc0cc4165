//! What `render --engine athena` prints is pinned by snapshots, and every statement parses
//! with sqlglot's Athena dialect.

use std::process::Command;

use chrono::{TimeZone, Utc};
use strata::cli::render_statements;
use strata::runner::RunOptions;

use crate::common::TestProject;

fn athena_project(t: &TestProject) -> strata::project::Project {
    let mut env = t.env();
    env.insert("STRATA_ENGINE".into(), "athena".into());
    let settings = strata::config::Settings::load(t.path(), &env).expect("settings");
    strata::project::Project::load(settings).expect("project")
}

/// Version ids are unique per run; snapshots show a placeholder.
fn stable(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("v20") {
        let tail = &rest[i..];
        let len =
            tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).unwrap_or(tail.len());
        out.push_str(&rest[..i]);
        if len >= 24 && tail.as_bytes()[9].eq_ignore_ascii_case(&b'T') {
            out.push_str("<version>")
        } else {
            out.push_str(&tail[..len])
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 11, 6, 15, 7, 0).unwrap()
}

#[test]
fn athena_statements_are_pinned() {
    let t = TestProject::shipped();
    let project = athena_project(&t);
    for id in &project.dag.order {
        let text = render_statements(&project, id, &RunOptions::new(at(), None), at()).expect("renders");
        insta::assert_snapshot!(format!("athena__{id}"), stable(&text));
    }
}

/// Athena writes at most 100 partitions per statement: a run over 251 hours writes its
/// result once, unpartitioned, then builds the version table from it 100 partitions at a
/// time; only the first statement reads the model's input.
#[test]
fn a_run_past_100_partitions_writes_its_result_once_then_the_table_in_chunks() {
    let t = TestProject::shipped();
    let project = athena_project(&t);
    let id = strata::ids::ModelId::parse("silver.fact_payouts").unwrap();
    let from = at() - chrono::Duration::hours(250);
    let text = render_statements(&project, &id, &RunOptions::new(at(), Some(from)), at()).unwrap();
    let statements: Vec<&str> = text.split(";\n").filter(|s| !s.trim().is_empty()).collect();
    assert_eq!(statements.len(), 4, "{text}");
    assert!(
        statements[0].contains("fact_payouts__v") && statements[0].contains("__result\"\nWITH"),
        "{}",
        statements[0]
    );
    assert!(!statements[0].contains("partitioned_by"), "the result is written unpartitioned");
    assert_eq!(text.matches("bronze_events").count(), 1, "the input is read once");
    assert!(statements[1].starts_with("SELECT DISTINCT \"dt\", \"hour\" FROM"), "{}", statements[1]);
    assert!(
        statements[2].contains("partitioned_by = ARRAY['dt', 'hour']") && statements[2].contains("/data/'")
    );
    assert!(statements[3].starts_with("DROP TABLE"), "{}", statements[3]);
    sqlglot_parses(&[("chunked".into(), text)]);
}

#[test]
fn every_athena_statement_parses_with_sqlglot() {
    let t = TestProject::shipped();
    let project = athena_project(&t);
    let mut all = Vec::new();
    for id in &project.dag.order {
        all.push((
            id.to_string(),
            render_statements(&project, id, &RunOptions::new(at(), None), at()).unwrap(),
        ));
    }
    sqlglot_parses(&all);
}

/// Parses every `;`-terminated statement with sqlglot (dialect athena); fails on any error.
pub fn sqlglot_parses(texts: &[(String, String)]) {
    let python = std::env::var("STRATA_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("STRATA_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs sqlglot")
    });
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("statements.json");
    let items: Vec<_> = texts.iter().map(|(n, s)| serde_json::json!({"name": n, "sql": s})).collect();
    std::fs::write(&input, serde_json::to_string(&items).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg(crate::common::repo().join("tests/sqlcheck.py"))
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "sqlglot rejected statements:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: usize =
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("count of parsed statements");
    assert!(parsed >= texts.len(), "sqlglot parsed {parsed} statements for {} models", texts.len());
}

/// A project of two incremental models whose SQL is only their window predicate: hourly
/// (`silver.h`) and daily (`silver.d`).
fn hourly_and_daily() -> TestProject {
    TestProject::with_files(&[
        (
            "sql/silver/h.sql",
            "{{ config(materialized='incremental', partitioned_by=['dt', 'hour'], window='hour') }}\nSELECT dt, hour FROM u WHERE {{ window_partitions() }}\n",
        ),
        (
            "sql/silver/d.sql",
            "{{ config(materialized='incremental', partitioned_by=['dt'], window='day') }}\nSELECT dt FROM u WHERE {{ window_partitions(grain='day') }}\n",
        ),
    ])
}

/// A two-month `--from` rendered about 1,500 ORed hours and overflowed the stack. The
/// window predicate is constant-size now; it must select exactly the window's partitions,
/// across days, months, years and leap days, for windows of any length and alignment.
#[tokio::test]
async fn window_predicates_are_small_and_select_exactly_the_windows_partitions() {
    use strata::window::{Grain, Window};
    let t = hourly_and_daily();
    let project = t.project();
    let ctx = datafusion::prelude::SessionContext::new();
    // Every hour from 2024-02-26 to 2025-01-03 (a leap day, months, a year's end).
    let first = Utc.with_ymd_and_hms(2024, 2, 26, 0, 0, 0).unwrap();
    let all: Vec<chrono::DateTime<Utc>> = (0..24 * 313).map(|h| first + chrono::Duration::hours(h)).collect();
    let values: Vec<String> =
        all.iter().map(|t| format!("('{}', '{}')", t.format("%Y-%m-%d"), t.format("%H"))).collect();
    let universe: std::collections::BTreeSet<String> =
        all.iter().map(|t| t.format("%Y-%m-%d %H").to_string()).collect();
    ctx.sql(&format!("CREATE VIEW u AS SELECT * FROM (VALUES {}) AS v(dt, hour)", values.join(", ")))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut checked = 0;
    let starts = [0i64, 1, 23, 24, 95, 24 * 3 + 5, 24 * 300 + 7];
    let lengths = [1i64, 2, 23, 24, 25, 49, 24 * 40 + 3, 24 * 61];
    for (s, l, minutes) in
        starts.iter().flat_map(|s| lengths.iter().flat_map(move |l| [0, 30].map(|m| (*s, *l, m))))
    {
        let from = first + chrono::Duration::hours(s);
        let at = from + chrono::Duration::hours(l) + chrono::Duration::minutes(minutes);
        for (model, grain) in [("silver.h", Grain::Hour), ("silver.d", Grain::Day)] {
            let id = strata::ids::ModelId::parse(model).unwrap();
            let window = Window::spanning(from, at, grain);
            let sql = project.render(&id, strata::config::EngineKind::Local, window).unwrap();
            assert!(sql.len() < 400, "constant size: {} bytes for {l} hours", sql.len());
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let mut got: Vec<String> =
                crate::common::rows(&batches).into_iter().map(|r| r.join(" ")).collect();
            got.sort();
            let expected: Vec<String> = match grain {
                Grain::Hour => window
                    .hours()
                    .into_iter()
                    .map(|(d, h)| format!("{d} {h}"))
                    .filter(|h| universe.contains(h))
                    .collect(),
                Grain::Day => {
                    let days = window.days();
                    all.iter()
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .filter(|d| days.contains(d))
                        .collect::<Vec<_>>()
                }
            };
            let mut expected = expected;
            expected.sort();
            assert!(
                got == expected,
                "{model} over [{from}, {at}): {sql}\n{} rows, expected {}",
                got.len(),
                expected.len()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, starts.len() * lengths.len() * 2 * 2);
}

/// The widest range strata accepts (`clock::EARLIEST` to `clock::LATEST`, two million
/// hours) renders the same few hundred bytes as a day does, naming only its first and last
/// units, without listing the units between.
#[test]
fn window_predicates_of_the_widest_range_name_only_its_ends() {
    use strata::window::{Grain, Window};
    let t = hourly_and_daily();
    let project = t.project();
    let instant = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let (from, at) = (instant(strata::clock::EARLIEST), instant(strata::clock::LATEST));
    let started = std::time::Instant::now();
    let hourly = Window::spanning(from, at, Grain::Hour);
    let sql = project
        .render(&strata::ids::ModelId::parse("silver.h").unwrap(), strata::config::EngineKind::Athena, hourly)
        .unwrap();
    assert!(
        sql.contains(
            "(dt >= '1970-01-01' AND dt <= '2199-12-31'\n    AND ((dt = '1970-01-01' AND hour >= '00') OR (dt > '1970-01-01' AND dt < '2199-12-31') OR (dt = '2199-12-31' AND hour <= '23')))"
        ),
        "{sql}"
    );
    let daily = Window::spanning(from, at, Grain::Day);
    let sql = project
        .render(&strata::ids::ModelId::parse("silver.d").unwrap(), strata::config::EngineKind::Athena, daily)
        .unwrap();
    assert!(sql.contains("(dt >= '1970-01-01' AND dt <= '2199-12-31')"), "{sql}");
    // A window ending exactly on a unit boundary ends with the unit before it.
    let aligned =
        Window::spanning(instant("2026-10-01T00:00:00Z"), instant("2026-12-01T00:00:00Z"), Grain::Hour);
    let sql = project
        .render(
            &strata::ids::ModelId::parse("silver.h").unwrap(),
            strata::config::EngineKind::Athena,
            aligned,
        )
        .unwrap();
    assert!(sql.contains("(dt = '2026-11-30' AND hour <= '23')"), "{sql}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
}
