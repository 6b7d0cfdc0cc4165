//! Ordinary operations that once lost published data: rerunning a past window, a range
//! given backwards, an instant out of range. Each drives the binary as a user would, on the
//! local engine and on the Athena stand-in with one body; a property test runs arbitrary
//! sequences of runs and checks that only the windows they computed changed.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::athena::{StandIn, provision, upload_bronze};
use crate::common::{TestProject, strata, write_gz};

/// Where a test's commands run.
pub(crate) enum On<'a> {
    Local,
    Athena(&'a StandIn),
}

impl On<'_> {
    pub(crate) fn command(&self, t: &TestProject) -> std::process::Command {
        match self {
            Self::Local => crate::common::strata_cmd(t.path()),
            Self::Athena(s) => s.command(t.path()),
        }
    }

    pub(crate) fn strata(&self, t: &TestProject, args: &[&str]) -> (i32, String, String) {
        match self {
            Self::Local => strata(t.path(), args),
            Self::Athena(s) => s.strata(t.path(), args),
        }
    }

    /// The version directories under `<layer>/<table>/` (local files, or S3 prefixes).
    pub(crate) async fn version_dirs(
        &self,
        t: &TestProject,
        table: &str,
    ) -> std::collections::BTreeSet<String> {
        match self {
            Self::Local => std::fs::read_dir(t.lake().join(table))
                .map(|d| {
                    d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
                })
                .unwrap_or_default(),
            Self::Athena(s) => {
                let out = s
                    .clients()
                    .s3
                    .list_objects_v2()
                    .bucket("rastup-data")
                    .prefix(format!("{table}/"))
                    .delimiter("/")
                    .send()
                    .await
                    .unwrap();
                out.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .map(|p| p.trim_start_matches(&format!("{table}/")).trim_end_matches('/').to_string())
                    .collect()
            }
        }
    }

    /// Makes the stand-in's buckets and databases and uploads the project's Bronze (Athena).
    pub(crate) async fn provision(&self, t: &TestProject) {
        if let Self::Athena(standin) = self {
            let aws = standin.clients();
            provision(&aws, false).await;
            upload_bronze(&aws, t).await;
        }
    }

    /// Rows per partition of a published table: partition values -> row count.
    fn counts(&self, t: &TestProject, table: &str, partition: &str) -> BTreeMap<String, u64> {
        let sql = format!("SELECT {partition} AS p, count(*) AS n FROM {table} GROUP BY {partition}");
        let (code, out, err) = self.strata(t, &["query", "--format", "csv", &sql]);
        assert_eq!(code, 0, "{sql}: {err}");
        out.lines()
            .skip(1)
            .map(|l| {
                let (p, n) = l.rsplit_once(',').expect("two columns");
                (p.to_string(), n.parse().expect("a count"))
            })
            .collect()
    }

    /// How far the run state says `model` ran.
    fn ran_to(&self, t: &TestProject, model: &str) -> String {
        let (code, out, err) = self.strata(t, &["state", "show", model]);
        assert_eq!(code, 0, "{err}");
        out.lines().find(|l| l.contains(model)).unwrap_or_default().to_string()
    }
}

/// The published partitions a rerun must leave alone, per table (partition expression).
const TABLES: [(&str, &str); 4] = [
    ("rastup_silver.fact_payouts", "dt || '/' || hour"),
    ("rastup_silver.fact_bookings", "dt || '/' || hour"),
    ("rastup_silver.fact_search_impressions", "dt || '/' || hour"),
    ("rastup_gold.mart_city_daily", "dt"),
];

/// A late payout line delivered into hour 2025-11-05 13:00 after that hour was published.
fn late_payout() -> String {
    r#"{"event":"payout.paid","v":1,"occurred_at":"2025-11-05T13:20:00.000Z","received_at":"2025-11-05T13:20:05.000Z","city":"austin","context":{"role":"system","env":"prod"},"ids":{},"payload":{"leg_id":"late-leg","amount_cents":100,"provider_ref":"po_late"},"money":{"amount_cents":100,"currency":"USD"}}"#.to_string()
}

const LATE_KEY: &str = "bronze/events/dt=2025-11-05/hour=13/env=prod/event=payout.paid/part-late.json.gz";

async fn a_past_window_rerun_replaces_that_window_only(on: On<'_>) {
    let t = TestProject::shipped();
    // A day and a half of sample events, published up to 2025-11-06 12:00 by a range run.
    let (code, out, err) = strata(
        t.path(),
        &["demo", "--at", "2025-11-06T12:00:00Z", "--days", "1", "--sessions-per-hour", "1"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    if let On::Athena(_) = &on {
        on.provision(&t).await;
        let (code, out, err) =
            on.strata(&t, &["run", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-04T12:00:00Z"]);
        assert_eq!(code, 0, "{out}\n{err}");
    }
    let before: Vec<_> = TABLES.iter().map(|(table, p)| on.counts(&t, table, p)).collect();
    assert!(before[0].len() > 5, "the demo published many hours: {:?}", before[0]);
    let backlog = on.counts(&t, "rastup_ops.payout_backlog", "'all'");

    // A late file for 11-05 13:00, then the most ordinary repair: rerun that hour.
    write_gz(&t.lake().join(LATE_KEY), &[late_payout()]);
    if let On::Athena(standin) = &on {
        let aws = standin.clients();
        let body = std::fs::read(t.lake().join(LATE_KEY)).unwrap();
        aws.s3.put_object().bucket("rastup-data").key(LATE_KEY).body(body.into()).send().await.unwrap();
    }
    let (code, out, err) = on.strata(&t, &["run", "--at", "2025-11-05T14:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let after: Vec<_> = TABLES.iter().map(|(table, p)| on.counts(&t, table, p)).collect();
    // fact_payouts' window is hour 13 of 11-05 (lookback 1): it gains the late line, and
    // every other hour is exactly as it was, before and after the window.
    let mut expected = before[0].clone();
    *expected.entry("2025-11-05/13".into()).or_default() += 1;
    assert_eq!(after[0], expected, "fact_payouts: only the rerun hour changed");
    for i in 1..3 {
        assert_eq!(
            after[i], before[i],
            "{}: its window's data did not change, nor did any other hour",
            TABLES[i].0
        );
    }
    // Gold's window is 11-04 and 11-05 (lookback 1 day): 11-06 is kept.
    assert_eq!(
        after[3].get("2025-11-06"),
        before[3].get("2025-11-06"),
        "gold keeps the day after the window"
    );
    assert_eq!(after[3].len(), before[3].len(), "gold: {:?} -> {:?}", before[3], after[3]);
    // A table model is a snapshot: an older one is not published over a newer one.
    assert_eq!(on.counts(&t, "rastup_ops.payout_backlog", "'all'"), backlog);
    assert!(err.contains("skipped ops.payout_backlog: published as of"), "the ops tables say why: {err}");

    // Windows of 1970: nothing there, nothing else touched.
    let (code, out, err) = on.strata(&t, &["run", "--at", "1970-01-01T00:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let epoch: Vec<_> = TABLES.iter().map(|(table, p)| on.counts(&t, table, p)).collect();
    assert_eq!(epoch, after, "a run at the epoch changes no published partition");
    // The run state never moves back.
    for model in ["silver.fact_payouts", "gold.mart_city_daily", "ops.payout_backlog"] {
        let line = on.ran_to(&t, model);
        assert!(line.contains("2025-11-06T12:00:00.000Z"), "{model}: {line}");
    }
}

#[tokio::test]
async fn a_past_window_rerun_replaces_that_window_only_locally() {
    a_past_window_rerun_replaces_that_window_only(On::Local).await;
}

#[tokio::test]
async fn a_past_window_rerun_replaces_that_window_only_on_athena() {
    let standin = StandIn::start();
    a_past_window_rerun_replaces_that_window_only(On::Athena(&standin)).await;
}

/// `--from` after `--at`, or equal to it: a usage error before anything runs.
async fn an_inverted_range_is_a_usage_error(on: On<'_>) {
    let t = TestProject::shipped();
    t.write_fixture_events();
    on.provision(&t).await;
    for args in [
        vec!["run", "--from", "2025-11-06T02:00:00Z", "--at", "2025-11-06T01:00:00Z"],
        vec!["run", "--from", "2025-11-06T01:00:00Z", "--at", "2025-11-06T01:00:00Z"],
        vec!["backfill", "silver.fact_payouts", "--from", "2025-11-06", "--to", "2025-11-05"],
        vec![
            "render",
            "silver.fact_payouts",
            "--from",
            "2025-11-06T02:00:00Z",
            "--at",
            "2025-11-06T01:00:00Z",
        ],
    ] {
        let (code, out, err) = on.strata(&t, &args);
        assert_eq!(code, 2, "{args:?}: {out}\n{err}");
        assert!(err.contains("is not before") && err.contains("the range is empty"), "{args:?}: {err}");
        assert!(!out.contains("published"), "{args:?}: nothing ran: {out}");
    }
    let (code, out, err) = on.strata(&t, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("(never published)").count(), 9, "no table was published: {out}");
}

#[tokio::test]
async fn an_inverted_range_is_a_usage_error_locally() {
    an_inverted_range_is_a_usage_error(On::Local).await;
}

#[tokio::test]
async fn an_inverted_range_is_a_usage_error_on_athena() {
    let standin = StandIn::start();
    an_inverted_range_is_a_usage_error(On::Athena(&standin)).await;
}

#[test]
fn a_model_test_whose_window_is_inverted_is_refused_at_its_line() {
    let t = TestProject::shipped();
    let path = t.path().join("sql/silver/fact_payouts.tests.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.lines().position(|l| l.trim_start().starts_with("at = ")).expect("a test with `at`");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.insert(at + 1, "from = \"2099-01-01T00:00:00Z\"".into());
    std::fs::write(&path, lines.join("\n")).unwrap();
    let (code, out, err) = strata(t.path(), &["test", "silver.fact_payouts"]);
    assert_eq!(code, 2, "{out}\n{err}");
    let located = format!("fact_payouts.tests.toml:{}", at + 2);
    assert!(err.contains(&located) && err.contains("is not before at"), "{err}");
}

#[test]
fn instants_out_of_range_are_usage_errors_that_give_the_range() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    for args in [
        vec!["run", "--at", "0001-01-01T00:00:00Z"],
        vec!["run", "--at", "1677-01-01T00:00:00Z"],
        vec!["run", "--from", "0001-01-01", "--at", "2025-11-06T12:00:00Z"],
        vec!["tick", "--at", "0001-01-01T00:00:00Z"],
        vec!["run", "--at", "2300-01-01T00:00:00Z", "--allow-future"],
        vec!["render", "silver.fact_payouts", "--at", "0001-01-01T00:00:00Z"],
        vec!["backfill", "silver.fact_payouts", "--from", "1600-01-01", "--to", "2025-11-05"],
    ] {
        let (code, out, err) = strata(t.path(), &args);
        assert_eq!(code, 2, "{args:?}: {out}\n{err}");
        assert!(
            err.contains("out of range")
                && err.contains("1970-01-01T00:00:00Z")
                && err.contains("2199-12-31"),
            "{args:?}: {err}"
        );
    }
}

/// A model with no lookback run at a unit's boundary has a window of no hour: it was
/// published as an empty table. Now there is nothing to compute and nothing is published.
#[test]
fn a_window_of_no_unit_publishes_nothing() {
    let events = std::fs::read_to_string(crate::common::repo().join("sql/bronze/events.sql")).unwrap();
    let marks = MARKS.replace(", lookback=1", "");
    let t = TestProject::with_files(&[("sql/bronze/events.sql", &events), ("sql/silver/marks.sql", &marks)]);
    write_marks(&t, 7);
    let (code, out, err) = strata(t.path(), &["run", "--at", "2025-11-05T10:30:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let count = || {
        let (code, out, err) =
            strata(t.path(), &["query", "--format", "csv", "SELECT count(*) AS n FROM silver.marks"]);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert_eq!(count(), "n\n1\n", "hour 10 is published");
    let (code, out, err) = strata(t.path(), &["run", "--at", "2025-11-05T11:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(
            "skipped silver.marks: the window [2025-11-05 11:00:00.000, 2025-11-05 11:00:00.000) is empty"
        ),
        "{err}"
    );
    assert_eq!(count(), "n\n1\n", "the table is as it was");
}

// ---------------------------------------------------------------------------------------
// Property: any sequence of runs changes only the partitions of the windows it computed.

/// An hourly incremental model whose rows say which Bronze generation they were computed
/// from: every run sees the newest marker of each hour of its window.
const MARKS: &str =
    "{{ config(materialized='incremental', partitioned_by=['dt', 'hour'], window='hour', lookback=1) }}
SELECT max(TRY_CAST(json_extract_scalar(e.payload, '$.k') AS BIGINT)) AS k, e.dt AS dt, e.hour AS hour
FROM {{ source('bronze', 'events') }} AS e
WHERE {{ window_partitions(prefix='e') }}
GROUP BY e.dt, e.hour
";

/// Hours of Bronze the property runs over: two days from 2025-11-05 00:00.
const HOURS: i64 = 48;

fn base() -> chrono::DateTime<chrono::Utc> {
    strata::clock::parse_instant("2025-11-05T00:00:00Z").unwrap()
}

/// Rewrites every hour's Bronze file with marker `k`.
fn write_marks(t: &TestProject, k: u64) {
    for h in 0..HOURS {
        let at = base() + chrono::Duration::hours(h);
        let dir = format!(
            "bronze/events/dt={}/hour={}/env=prod/event=payout.paid",
            at.format("%Y-%m-%d"),
            at.format("%H")
        );
        let line = format!(
            r#"{{"event":"payout.paid","v":1,"occurred_at":"{0}","received_at":"{0}","context":{{"env":"prod"}},"payload":{{"k":{k}}}}}"#,
            at.format("%Y-%m-%dT%H:%M:%S.000Z")
        );
        write_gz(&t.lake().join(dir).join("part-0.json.gz"), &[line]);
    }
}

/// One `strata run` of the property: `--at` and an optional `--from`, in hours from
/// [`base`] (minutes too, so windows start and end inside hours), in any order.
#[derive(Debug, Clone)]
struct Run {
    at_minutes: i64,
    from_minutes: Option<i64>,
}

fn runs() -> impl Strategy<Value = Vec<Run>> {
    let minutes = -6 * 60..(HOURS + 6) * 60;
    prop::collection::vec(
        (minutes.clone(), prop::option::of(minutes))
            .prop_map(|(at_minutes, from_minutes)| Run { at_minutes, from_minutes }),
        1..6,
    )
}

/// The published table as `hour -> marker`.
async fn published(engine: &strata::local::LocalEngine) -> BTreeMap<String, String> {
    crate::common::query(engine, "SELECT dt || ' ' || hour, CAST(k AS VARCHAR) FROM silver.marks")
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Invariant 9: a run changes only the partitions of its window, whatever `--at` and
    /// `--from` (past, present, overlapping, inverted), and the run state never moves back.
    #[test]
    fn any_sequence_of_runs_changes_only_the_windows_it_computed(seq in runs()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let events = std::fs::read_to_string(crate::common::repo().join("sql/bronze/events.sql")).unwrap();
            let t = TestProject::with_files(&[("sql/bronze/events.sql", &events), ("sql/silver/marks.sql", MARKS)]);
            let project = t.project();
            let engine = t.engine(&project);
            let state = t.state(&project);
            let clock = strata::clock::ManualClock::at(base() + chrono::Duration::days(3));
            let all = project.dag.order.clone();
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            let mut ran_to: Option<String> = None;
            for (k, run) in seq.iter().enumerate() {
                write_marks(&t, k as u64);
                let at = base() + chrono::Duration::minutes(run.at_minutes);
                let from = run.from_minutes.map(|m| base() + chrono::Duration::minutes(m));
                if from.is_some_and(|f| f >= at) {
                    continue; // refused by the command line (an_inverted_range_is_a_usage_error)
                }
                let opts = strata::runner::RunOptions::new(at, from);
                let plan: Vec<_> = all.iter().map(|id| strata::runner::Planned { id: id.clone(), opts: opts.clone() }).collect();
                let guard = strata::scheduler::RecordSuccess {
                    project: &project,
                    state: state.clone(),
                    clock: &clock,
                    run_id: format!("run-{k}"),
                    task: "prop".into(),
                };
                let done = strata::runner::run_planned(&project, &engine, &clock, &plan, 1, &strata::runner::Stop::never(), &guard).await;
                let marks = done.iter().find(|r| r.model.name == "marks").unwrap();
                assert!(marks.outcome.is_success(), "{run:?}: {:?}", marks.outcome);
                // The model: the window's hours that have Bronze now carry marker k; nothing else changes.
                for unit in marks.window.units() {
                    let h = (unit - base()).num_hours();
                    if (0..HOURS).contains(&h) {
                        model.insert(unit.format("%Y-%m-%d %H").to_string(), k.to_string());
                    }
                }
                let seen = published(&engine).await;
                assert_eq!(seen, model, "after {:?}", &seq[..=k]);
                let at_stamp = strata::clock::stamp(at);
                ran_to = ran_to.max(Some(at_stamp));
                let recorded = state.model("silver.marks").await.unwrap().and_then(|m| m.last_at);
                assert_eq!(recorded, ran_to, "the run state never moves back");
            }
        });
    }
}

/// A two-month `--from` rendered one OR per hour (about 1,500) and overflowed the stack
/// (exit 134). The window predicate is constant-size, and the run publishes the range.
async fn a_two_month_range_runs(on: On<'_>) {
    let t = TestProject::shipped();
    t.write_fixture_events();
    on.provision(&t).await;
    let (code, out, err) = on.strata(
        &t,
        &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-09-01T00:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let hours = on.counts(&t, "rastup_silver.fact_payouts", "dt || '/' || hour");
    // Every payout hour of the fixture, and nothing else.
    let keys: Vec<&str> = hours.keys().map(String::as_str).collect();
    assert_eq!(keys, ["2025-11-05/11", "2025-11-05/13", "2025-11-06/02", "2025-11-06/04", "2025-11-06/10"]);
    let (code, sql, err) = on.strata(
        &t,
        &["render", "silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-09-01T00:00:00Z"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(sql.len() < 8_000, "the statements stay small: {} bytes", sql.len());
}

#[tokio::test]
async fn a_two_month_range_runs_locally() {
    a_two_month_range_runs(On::Local).await;
}

#[tokio::test]
async fn a_two_month_range_runs_on_athena() {
    let standin = StandIn::start();
    a_two_month_range_runs(On::Athena(&standin)).await;
}
