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
