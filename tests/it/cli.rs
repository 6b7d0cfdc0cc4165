//! The binary as a user runs it: the demo, ad-hoc queries, render and exit codes.

use crate::common::{TestProject, strata};

#[test]
fn demo_prints_a_table_per_model_and_the_backlog_is_queryable() {
    let t = TestProject::shipped();
    let (code, out, err) = strata(
        t.path(),
        &["demo", "--at", "2025-11-06T12:00:00Z", "--days", "2", "--sessions-per-hour", "2"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    for model in [
        "bronze.events",
        "silver.fact_payouts",
        "gold.mart_city_daily",
        "ops.payout_backlog",
        "ops.live_bookings",
    ] {
        let line =
            out.lines().find(|l| l.contains(model)).unwrap_or_else(|| panic!("no row for {model}:\n{out}"));
        assert!(line.contains("published"), "{line}");
    }
    let (code, out, err) = strata(
        t.path(),
        &[
            "query",
            "--format",
            "csv",
            "SELECT city, queued, paid, failed, backlog FROM ops.payout_backlog ORDER BY city",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<i64>> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(1).map(|v| v.parse().expect("counts")).collect())
        .collect();
    assert_eq!(rows.len(), 5, "one row per demo city:\n{out}");
    for r in &rows {
        let (queued, paid, failed, backlog) = (r[0], r[1], r[2], r[3]);
        assert!(queued > 0 && paid > 0, "{out}");
        assert!(backlog >= 0 && backlog <= queued, "{out}");
        assert!(paid + failed <= queued + paid, "{out}");
    }
}

#[test]
fn a_failing_model_exits_1_and_skips_its_downstream() {
    let t = TestProject::shipped();
    std::fs::write(
        t.path().join("sql/silver/fact_payouts.sql"),
        "{{ config(materialized='incremental', partitioned_by=['dt', 'hour']) }}\nSELECT no_such_column AS x, dt, hour FROM {{ source('bronze', 'events') }} WHERE {{ window_partitions() }}\n",
    )
    .unwrap();
    let (code, out, err) = strata(t.path(), &["run", "+ops.payout_backlog", "--at", "2025-11-06T12:30:00Z"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("silver.fact_payouts") && err.contains("no_such_column"), "{err}");
    assert!(err.contains("skipped ops.payout_backlog: upstream silver.fact_payouts failed"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let t = TestProject::shipped();
    let (code, _, err) = strata(t.path(), &["run", "silver.nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("selector 'silver.nope' matches no model"), "{err}");
    let (code, _, _) = strata(t.path(), &["frobnicate"]);
    assert_eq!(code, 2);
    let (code, _, err) = strata(t.path(), &["run", "--at", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--at 'yesterday'"), "{err}");
    // A bad value in strata.toml is named at its line, in a profile too.
    let toml = std::fs::read_to_string(t.path().join("strata.toml")).unwrap();
    let bad = toml.replacen("env = \"prod\"", "env = \"production\"", 1).replacen(
        "engine = \"local\"",
        "engine = \"duckdb\"",
        1,
    );
    std::fs::write(t.path().join("strata.toml"), &bad).unwrap();
    let line = |key: &str| bad.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    let (code, _, err) = strata(t.path(), &["run"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("strata.toml:{}: env = 'production' is not valid", line("env ="))),
        "{err}"
    );
    assert!(err.contains(&format!("strata.toml:{}: engine = 'duckdb'", line("engine ="))), "{err}");
    // A directory without a project: the file is named, its reason said once.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = strata(empty.path(), &["status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("strata.toml: cannot read"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// One exit code per kind of failure, so a scheduler or a script knows whether to fix the
/// project (2), look at a model (1), retry later because AWS failed (3), or wait for the
/// task holding the work (75, `run_state::a_backfill_killed_with_sigkill_...`).
#[test]
fn exit_codes_say_what_failed() {
    // A configuration error: nothing runs.
    let t = TestProject::shipped();
    let toml = std::fs::read_to_string(t.path().join("strata.toml")).unwrap();
    std::fs::write(t.path().join("strata.toml"), toml.replace("max_concurrency", "max_concurency")).unwrap();
    let (code, _, err) = strata(t.path(), &["status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("strata.toml"), "{err}");

    // A model fails (its SQL names a column that is not there); the others still run.
    let t = TestProject::shipped();
    t.write_fixture_events();
    let path = t.path().join("sql/ops/live_bookings.sql");
    let sql = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, sql.replacen("SELECT", "SELECT no_such_column,", 1)).unwrap();
    let (code, out, err) = strata(t.path(), &["run", "+ops.live_bookings", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(
        code, 1,
        "{out}
{err}"
    );
    assert!(err.contains("error: ops.live_bookings") && err.contains("live_bookings.sql:"), "{err}");
    assert!(out.contains("silver.fact_bookings") && out.contains("published"), "{out}");

    // AWS fails (the lake's bucket does not exist): an infrastructure error, named.
    let standin = crate::athena::StandIn::start();
    let t = TestProject::shipped();
    let (code, _, err) = standin.strata(t.path(), &["runs"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("run state s3://rastup-data/_strata/state/") && err.contains("NoSuchBucket"),
        "{err}"
    );
}

#[test]
fn render_prints_the_local_select_by_default() {
    let t = TestProject::shipped();
    let (code, out, err) =
        strata(t.path(), &["render", "ops.payout_backlog", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("FROM \"rastup_silver\".\"fact_payouts\""), "{out}");
    assert!(out.contains("TIMESTAMP '2025-11-06 12:00:00.000' - INTERVAL '24' HOUR"), "{out}");
    assert!(!out.contains("current_date"), "{out}");
}

/// A statement too long for the command line comes from a file or standard input, and a
/// CSV result without rows still has its header.
#[test]
fn query_reads_a_statement_from_a_file_or_stdin_and_an_empty_csv_has_its_header() {
    use std::io::Write;
    let t = TestProject::shipped();
    let values: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let long =
        format!("SELECT count(*) AS n FROM (VALUES (1), (7)) AS t(v) WHERE v IN ({})", values.join(", "));
    assert!(long.len() > 500_000);
    let file = t.path().join("long.sql");
    std::fs::write(&file, &long).unwrap();
    let (code, out, err) = strata(t.path(), &["query", "--format", "csv", "-f", file.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "n\n2\n"), "{err}");
    let mut child = crate::common::strata_cmd(t.path())
        .args(["query", "--format", "csv", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"SELECT 2 AS y").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\n2\n");
    let (code, out, err) =
        strata(t.path(), &["query", "--format", "csv", "SELECT 1 AS x, 'a' AS y WHERE 1 = 0"]);
    assert_eq!((code, out.as_str()), (0, "x,y\n"), "{err}");
}

/// `strata query` held every row before printing (5 M rows took 4.5 GB): the table shows
/// the first rows and counts the rest, CSV streams them all.
#[test]
fn a_large_query_result_is_streamed_and_the_table_shows_its_first_rows() {
    let t = TestProject::shipped();
    let sql = "SELECT value AS v, repeat('x', 100) AS pad FROM generate_series(1, 3000000)";
    let (code, out, err) = strata(t.path(), &["query", sql]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3000000 rows (the first 1000 shown"), "{}", &out[out.len().saturating_sub(300)..]);
    assert!(out.lines().count() < 1100, "only the first rows are drawn");
    let mut child = crate::common::strata_cmd(t.path())
        .args(["query", "--format", "csv", sql])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read as it comes while watching the process's resident memory.
    let pid = child.id();
    let rss = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
            .unwrap_or(0)
    };
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut lines, mut line, mut peak_kib) = (0u64, String::new(), 0);
    while std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0 {
        lines += 1;
        line.clear();
        if lines % 100_000 == 0 {
            peak_kib = peak_kib.max(rss());
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(lines, 3_000_001, "a header and every row");
    // The rows are about 330 MB as CSV; buffered, the process held more than that.
    assert!(peak_kib < 250 * 1024, "peak resident memory {peak_kib} KiB");
}

/// A query of 2,000 ORed predicates overflowed the engine thread's stack (exit 134). Deep
/// expressions are planned on a stack sized for them up to a depth, and refused past it
/// with a message; no statement aborts the process.
#[test]
fn deep_expressions_are_planned_or_refused_never_an_abort() {
    let t = TestProject::shipped();
    let ors = |n: usize| {
        let terms: Vec<String> = (0..n).map(|i| format!("v = {i}")).collect();
        format!("SELECT count(*) AS n FROM (VALUES (1), (2), (5000)) AS t(v) WHERE {}", terms.join(" OR "))
    };
    let file = t.path().join("q.sql");
    std::fs::write(&file, ors(2_000)).unwrap();
    let (code, out, err) = strata(t.path(), &["query", "--format", "csv", "-f", file.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "n\n2\n"), "{err}");
    let chain = format!("SELECT {} AS x", vec!["1"; 50_000].join(" + "));
    for (sql, limit) in [
        (ors(4_100), "4000 levels"),
        (ors(100_000), "4000 levels"),
        (ors(300_000), "operators"),
        (chain, "4000 levels"),
    ] {
        std::fs::write(&file, &sql).unwrap();
        let (code, out, err) = strata(t.path(), &["query", "-f", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{out}\n{err}");
        assert!(err.contains(limit) && err.contains("x IN (...)"), "{err}");
    }
    // A model that deep is refused by `strata plan` at its file, before any run.
    let terms: Vec<String> = (0..4_100).map(|i| format!("v = {i}")).collect();
    std::fs::write(
        t.path().join("sql/gold/deep.sql"),
        format!(
            "{{{{ config(materialized='table') }}}}\n-- too deep\nSELECT count(*) AS n FROM (VALUES (1)) AS t(v) WHERE {}\n",
            terms.join(" OR ")
        ),
    )
    .unwrap();
    let (code, out, err) = strata(t.path(), &["plan", "gold.deep"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("sql/gold/deep.sql:3:") && err.contains("4000 levels"), "{err}");
}
