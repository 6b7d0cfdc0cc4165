//! What trying strata as a hostile user found, each reproduced against the real binary:
//! backfills run again and resumed after a kill at the worst moment, stops that land in a
//! CPU-bound query, moved projects and lakes, missing input, instants in the future, run
//! state an operator must be able to inspect and reset, and the rough edges of errors.

use std::process::Stdio;
use std::time::{Duration, Instant};

use strata::state::RunState;

use crate::common::{TestProject, current_version, query, strata, strata_cmd, write_gz};

fn count(dir: &std::path::Path, sql: &str) -> u64 {
    let (code, out, err) = strata(dir, &["query", sql, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    out.lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("{out}"))
}

fn payouts_project() -> TestProject {
    let t = TestProject::shipped();
    t.write_fixture_events();
    t.write_producer_events();
    let (code, out, err) = strata(
        t.path(),
        &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-05T00:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    t
}

const BACKFILL: [&str; 6] =
    ["backfill", "silver.fact_payouts", "--from", "2025-11-05T00:00:00Z", "--to", "2025-11-06T12:00:00Z"];

#[test]
fn a_completed_backfill_runs_again_as_a_new_backfill() {
    let t = payouts_project();
    let rows = count(t.path(), "SELECT count(*) FROM silver.fact_payouts");
    let (code, out, err) = strata(t.path(), &BACKFILL);
    assert_eq!(code, 0, "{out}\n{err}");
    let first = current_version(t.path(), "silver.fact_payouts");
    let (code, out, err) = strata(t.path(), &BACKFILL);
    assert_eq!(code, 0, "the same backfill again:\n{out}\n{err}");
    assert!(!err.contains("resuming"), "a published backfill is not resumed: {err}");
    let second = current_version(t.path(), "silver.fact_payouts");
    assert_ne!(first, second, "it computed and published again");
    assert_eq!(count(t.path(), "SELECT count(*) FROM silver.fact_payouts"), rows, "with the same rows");
}

#[test]
fn a_backfill_killed_between_its_last_window_and_its_publish_resumes_and_publishes() {
    for point in ["backfill-sealed", "backfill-published"] {
        let t = payouts_project();
        let rows = count(t.path(), "SELECT count(*) FROM silver.fact_payouts");
        let before = current_version(t.path(), "silver.fact_payouts");
        let out = strata_cmd(t.path()).args(BACKFILL).env("STRATA_FAILPOINT", point).output().unwrap();
        assert!(!out.status.success(), "{point}: the process was killed");
        let killed_at = current_version(t.path(), "silver.fact_payouts");
        let (code, out, err) = strata(t.path(), &BACKFILL);
        assert_eq!(code, 0, "{point}: the rerun finishes it:\n{out}\n{err}");
        let after = current_version(t.path(), "silver.fact_payouts");
        assert_ne!(after, before, "{point}: the backfill's version is published");
        if point == "backfill-published" {
            assert_eq!(after, killed_at, "published once: the rerun found it published");
            assert!(err.contains("published by an earlier attempt"), "{err}");
        }
        assert_eq!(count(t.path(), "SELECT count(*) FROM silver.fact_payouts"), rows, "{point}");
    }
}

/// A backfill interrupted between its windows may be resumed days later: gc in between
/// keeps every version an unfinished backfill is writing (its progress is in the run
/// state), however old, and the resumed backfill publishes all its windows. Without the
/// grace for young data (`orphan_grace_minutes = 0`) nothing else protects them.
#[test]
fn gc_keeps_what_an_interrupted_backfill_wrote_until_it_is_resumed() {
    let t = payouts_project();
    let toml = t.path().join("strata.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains("orphan_grace_minutes = 60"), "the shipped retention");
    std::fs::write(&toml, text.replace("orphan_grace_minutes = 60", "orphan_grace_minutes = 0")).unwrap();
    let rows = count(t.path(), "SELECT count(*) FROM silver.fact_payouts");
    let before = current_version(t.path(), "silver.fact_payouts");
    let out =
        strata_cmd(t.path()).args(BACKFILL).env("STRATA_FAILPOINT", "backfill-window:3").output().unwrap();
    assert!(!out.status.success(), "the process was killed after three windows");
    let (code, out, err) = strata(t.path(), &["gc", "--format", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let items: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(
        items.iter().all(|i| i["table"] != "rastup_silver.fact_payouts" || i["deletes_dir"] == false),
        "nothing of fact_payouts deleted: {out}"
    );
    let (code, out, err) = strata(t.path(), &BACKFILL);
    assert_eq!(code, 0, "the backfill resumes and publishes:\n{out}\n{err}");
    assert!(err.contains("resuming"), "{err}");
    assert_ne!(current_version(t.path(), "silver.fact_payouts"), before);
    assert_eq!(count(t.path(), "SELECT count(*) FROM silver.fact_payouts"), rows, "every window's rows");
}

/// A model whose query keeps both cores busy for minutes in one hash join.
const HEAVY: &str = "{{ config(materialized='table', schedule='*/5 * * * *') }}\n\
SELECT count(*) AS n FROM (SELECT value AS a FROM generate_series(1, 400000)) AS x \
JOIN (SELECT value AS b FROM generate_series(1, 400000)) AS y ON x.a % 10 = y.b % 10\n";

#[test]
fn sigterm_stops_a_cpu_bound_query_within_seconds_and_releases_its_lease() {
    for args in [vec!["run", "ops.heavy"], vec!["run", "--daemon"]] {
        let t = TestProject::with_files(&[("sql/ops/heavy.sql", HEAVY)]);
        let mut child =
            strata_cmd(t.path()).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Mid-query: both cores busy in the join.
        std::thread::sleep(Duration::from_secs(3));
        assert!(child.try_wait().unwrap().is_none(), "{args:?}: still computing");
        let signalled = Instant::now();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                signalled.elapsed() < Duration::from_secs(10),
                "{args:?}: still running 10 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("stopped before publishing"), "{args:?}: {stderr}");
        if args[1] == "ops.heavy" {
            assert_eq!(status.code(), Some(1), "{stderr}");
        }
        let (code, status_out, _) = strata(t.path(), &["status", "ops.heavy"]);
        assert_eq!(code, 0);
        assert!(status_out.contains("(never published)"), "{status_out}");
        let (_, state, _) = strata(t.path(), &["state", "show", "ops.heavy"]);
        assert!(!state.contains("tick-"), "{args:?}: the lease was released: {state}");
    }
}

#[test]
fn a_moved_project_or_lake_reads_its_own_bronze() {
    let t = payouts_project();
    let rows = count(t.path(), "SELECT count(*) FROM silver.fact_payouts");
    let moved = tempfile::tempdir().unwrap();
    let project = moved.path().join("project");
    std::fs::rename(t.path(), &project).unwrap();
    let (code, out, err) = strata(
        &project,
        &["run", "silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-05T00:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        count(&project, "SELECT count(*) FROM silver.fact_payouts"),
        rows,
        "the moved project reads its Bronze"
    );
    // The lake moved on its own, found through STRATA_STORAGE.
    let lake = moved.path().join("elsewhere");
    std::fs::rename(project.join("lake"), &lake).unwrap();
    let out = strata_cmd(&project)
        .env("STRATA_STORAGE", &lake)
        .args([
            "run",
            "silver.fact_payouts",
            "--at",
            "2025-11-06T12:00:00Z",
            "--from",
            "2025-11-05T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = strata_cmd(&project)
        .env("STRATA_STORAGE", &lake)
        .args(["query", "SELECT count(*) FROM silver.fact_payouts", "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("count(*)\n{rows}\n"));
}

#[test]
fn missing_input_never_replaces_a_window_that_had_data_with_nothing() {
    let t = payouts_project();
    let before = current_version(t.path(), "silver.fact_payouts");
    let rows = count(t.path(), "SELECT count(*) FROM silver.fact_payouts");
    let run =
        ["run", "silver.fact_payouts", "--at", "2025-11-06T11:00:00Z", "--from", "2025-11-06T09:00:00Z"];
    // The hours' Bronze files are gone (Firehose stopped delivering, a wrong prefix).
    std::fs::remove_dir_all(t.lake().join("bronze/events/dt=2025-11-06/hour=09")).unwrap();
    std::fs::remove_dir_all(t.lake().join("bronze/events/dt=2025-11-06/hour=10")).unwrap();
    let (code, out, err) = strata(t.path(), &run);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("refusing to publish")
            && err.contains("dt=2025-11-06/hour=09")
            && err.contains("--allow-empty-window"),
        "{err}"
    );
    assert_eq!(current_version(t.path(), "silver.fact_payouts"), before, "nothing was published");
    assert_eq!(count(t.path(), "SELECT count(*) FROM silver.fact_payouts"), rows);
    assert!(out.contains("REFUSED"), "a fence's refusal, not a failure: {out}");
    // A backfill over those hours is refused the same way (one run protocol).
    let (code, out, err) = strata(
        t.path(),
        &[
            "backfill",
            "silver.fact_payouts",
            "--from",
            "2025-11-06T09:00:00Z",
            "--to",
            "2025-11-06T11:00:00Z",
        ],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("REFUSED") && err.contains("refusing to publish"), "{out}\n{err}");
    assert_eq!(current_version(t.path(), "silver.fact_payouts"), before, "nothing was published");
    // Asked for, it publishes the empty hours.
    let mut with = run.to_vec();
    with.push("--allow-empty-window");
    let (code, out, err) = strata(t.path(), &with);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        count(
            t.path(),
            "SELECT count(*) FROM silver.fact_payouts WHERE dt = '2025-11-06' AND hour IN ('09', '10')"
        ),
        0
    );

    // The whole Bronze location is gone: an error, not empty windows.
    std::fs::remove_dir_all(t.lake().join("bronze/events")).unwrap();
    let (code, out, err) = strata(t.path(), &run);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn an_instant_in_the_future_is_refused_and_run_state_can_be_inspected_reset_and_unlocked() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    let (code, out, err) = strata(t.path(), &["tick", "--at", "2099-01-01T00:00:00Z"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("is in the future") && err.contains("--allow-future"), "{err}");
    let (code, _, err) = strata(t.path(), &["run", "--at", "2099-01-01T00:00:00Z"]);
    assert_eq!(code, 2, "{err}");

    // Someone ticked in the future anyway: every model looks done until 2099.
    let (code, out, err) = strata(t.path(), &["--allow-future", "tick", "--at", "2099-01-01T00:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, _) = strata(t.path(), &["state", "show", "silver.fact_payouts"]);
    assert_eq!(code, 0);
    assert!(out.contains("2099-01-01T00:00:00.000Z"), "{out}");
    let (_, out, _) = strata(t.path(), &["tick", "--at", "2025-11-06T12:01:00Z"]);
    assert!(!out.contains("silver.fact_payouts"), "{out}");
    // Reset: the next tick runs them again.
    let (code, out, err) =
        strata(t.path(), &["state", "reset", "silver.*", "gold.*", "ops.*", "--to", "2025-11-06T11:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("silver.fact_payouts: run state reset to 2025-11-06T11:00:00.000Z"), "{out}");
    let (code, out, err) = strata(t.path(), &["tick", "--at", "2025-11-06T12:01:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("silver.fact_payouts") && out.contains("published"), "{out}");

    // A lease a killed process still holds blocks the model until it expires (it is not
    // renewed, so within minutes); unlock frees it at once.
    let state = strata::state::SqliteState::open(&t.path().join(".strata/catalog.sqlite")).unwrap();
    let take = state.acquire_lease(
        "ops.live_bookings",
        "tick-killed",
        "2025-11-06T12:02:00.000Z",
        "2099-01-01T00:00:00.000Z",
    );
    tokio::runtime::Runtime::new().unwrap().block_on(take).unwrap().unwrap();
    let (_, out, _) = strata(t.path(), &["state", "show", "ops.live_bookings"]);
    assert!(out.contains("tick-killed"), "{out}");
    let (_, _, err) = strata(t.path(), &["tick", "--at", "2025-11-06T12:06:00Z"]);
    assert!(err.contains("skipped ops.live_bookings: leased by tick-killed"), "{err}");
    let (code, out, _) = strata(t.path(), &["state", "unlock", "ops.live_bookings"]);
    assert_eq!(code, 0);
    assert!(out.contains("ops.live_bookings: lease released"), "{out}");
    let (code, out, err) = strata(t.path(), &["tick", "--at", "2025-11-06T12:11:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ops.live_bookings"), "{out}");
}

#[test]
fn a_manual_run_counts_as_the_models_last_success() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    let (code, out, err) =
        strata(t.path(), &["run", "silver.*", "+ops.live_bookings", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let out = strata_cmd(t.path()).args(["tick", "--at", "2025-11-06T12:03:00Z", "-v"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("silver.fact_payouts"), "the run's windows are not computed again: {stdout}");
}

#[test]
fn four_ticks_at_once_run_every_model_window_once_gold_and_ops_included() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    let children: Vec<_> = (0..4)
        .map(|_| {
            strata_cmd(t.path())
                .args(["tick", "--at", "2025-11-06T12:21:00Z", "--log-format", "json", "-v"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut published = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if v["outcome"] == "published" {
                published.push(v["model"].as_str().unwrap().to_string());
            }
        }
    }
    published.sort();
    let project = t.project();
    let mut expected: Vec<String> = project.dag.order.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(published, expected, "every model's window published by exactly one of the four ticks");
}

#[test]
fn a_truncated_or_not_gzip_file_is_quarantined_and_reported_and_the_rest_is_read() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    let dir = t.lake().join("bronze/events/dt=2025-11-05/hour=11/env=prod/event=payout.queued");
    // A gzip cut off halfway, and a file that is not gzip at all.
    let good = dir.join("part-00000.json.gz");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(dir.join("part-cut.json.gz"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.join("part-plain.json.gz"), b"{\"event\":\"payout.queued\"}\n").unwrap();
    let (code, out, err) = strata(
        t.path(),
        &["run", "+silver.fact_payouts", "--at", "2025-11-06T00:00:00Z", "--from", "2025-11-05T00:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("2 Bronze file(s) could not be read to their end"), "{err}");
    assert_eq!(
        count(t.path(), "SELECT count(*) FROM silver.fact_payouts WHERE status = 'queued'"),
        1,
        "the good file's row"
    );
    let bad = std::fs::read_to_string(
        t.lake().join("bronze/_bad/dt=2025-11-05/hour=11/env=prod/event=payout.queued/part-plain.bad.jsonl"),
    )
    .unwrap();
    assert!(
        bad.contains("rest of the file not read") && bad.contains("the file cannot be read past line 0"),
        "{bad}"
    );
}

#[test]
fn errors_name_the_file_line_and_what_to_do() {
    // strata.toml: the line and key of a bad value; every problem at once.
    let t = TestProject::shipped();
    let toml = std::fs::read_to_string(t.path().join("strata.toml")).unwrap();
    std::fs::write(
        t.path().join("strata.toml"),
        toml.replace("max_concurrency = 4", "max_concurrency = \"four\""),
    )
    .unwrap();
    let (code, _, err) = strata(t.path(), &["plan"]);
    assert_eq!(code, 2);
    assert!(err.contains("strata.toml: line 7: `max_concurrency = \"four\"`"), "{err}");
    std::fs::write(
        t.path().join("strata.toml"),
        toml.replace("engine = \"local\"", "engine = \"spark\"").replace("env = \"prod\"", "env = \"qa\""),
    )
    .unwrap();
    let (code, _, err) = strata(t.path(), &["plan"]);
    assert_eq!(code, 2);
    assert!(err.contains("engine = 'spark'") && err.contains("env = 'qa'"), "both problems: {err}");

    // A backend's own section ([athena], read by the Athena backend, not the core): a typo
    // inside it and a section no backend owns are named at their lines, in a profile too.
    let line = |text: &str, needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let typo = toml.replace("workgroup = \"strata\"", "workgroupp = \"strata\"").replace(
        "[profiles.staging]",
        "[profiles.staging.athenna]\nregion = \"eu-west-1\"\n\n[profiles.staging]",
    );
    std::fs::write(t.path().join("strata.toml"), &typo).unwrap();
    let (code, _, err) = strata(t.path(), &["plan"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("strata.toml: line {}: `workgroupp = \"strata\"`", line(&typo, "workgroupp")))
            && err.contains("unknown field `workgroupp`"),
        "{err}"
    );
    let plan_with = |var: &str, value: &str| {
        let out = strata_cmd(t.path()).args(["plan"]).env(var, value).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = plan_with("STRATA_PROFILE", "staging");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "strata.toml:{}: section = 'athenna' is not valid",
            line(&typo, "[profiles.staging.athenna]")
        )),
        "{err}"
    );
    // The athena engine on a storage root that is not S3: named at the section's line.
    std::fs::write(
        t.path().join("strata.toml"),
        toml.replace("storage = \"s3://rastup-data\"", "storage = \"lake\""),
    )
    .unwrap();
    let (code, err) = plan_with("STRATA_ENGINE", "athena");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("athena.storage = 'file://") && err.contains("Athena reads and writes S3"), "{err}");

    // A profile's section replaces the top-level one as a whole; its storage is the root.
    let text = format!("{toml}\n[profiles.eu.athena]\nstorage = \"s3://eu-lake/x\"\nworkgroup = \"eu\"\n");
    let env = std::collections::HashMap::from([
        ("STRATA_PROFILE".to_string(), "eu".to_string()),
        ("STRATA_ENGINE".to_string(), "athena".to_string()),
    ]);
    let settings =
        strata::config::Settings::from_toml(t.path(), &t.path().join("strata.toml"), &text, &env).unwrap();
    assert_eq!(settings.storage.uri("silver"), "s3://eu-lake/x/silver");
    let athena = strata::athena::AthenaSettings::of(&settings).unwrap();
    assert_eq!((athena.workgroup.as_deref(), athena.region.as_deref()), (Some("eu"), None));
    strata::backends::check(&settings).unwrap();

    // Models: a nested file is named, a broken model's dependents do not guess other names,
    // a cron out of range says the range.
    let t = TestProject::shipped();
    std::fs::create_dir_all(t.path().join("sql/silver/sub")).unwrap();
    std::fs::write(t.path().join("sql/silver/sub/extra.sql"), "SELECT 1").unwrap();
    let payouts = t.path().join("sql/silver/fact_payouts.sql");
    let text = std::fs::read_to_string(&payouts).unwrap();
    std::fs::write(&payouts, text.replace("schedule='*/5 * * * *'", "schedule='61 * * * *'")).unwrap();
    let (code, _, err) = strata(t.path(), &["plan"]);
    assert_eq!(code, 2);
    assert!(err.contains("sql/silver/sub/extra.sql:1: models live directly in sql/<layer>/"), "{err}");
    assert!(err.contains("minute '61' in '61' is out of range 0-59"), "{err}");
    assert!(!err.contains("did you mean"), "refs to the broken model are not reported as unknown: {err}");

    // plan finds what a run would only find after reading data, at the model's line.
    let t = TestProject::shipped();
    let payouts = t.path().join("sql/silver/fact_payouts.sql");
    let text = std::fs::read_to_string(&payouts).unwrap();
    std::fs::write(
        &payouts,
        text.replace("'leg_id', 'status', 'received_at'", "'leg_id', 'statuz', 'received_at'"),
    )
    .unwrap();
    let bookings = t.path().join("sql/silver/fact_bookings.sql");
    let text = std::fs::read_to_string(&bookings).unwrap();
    let bad_line = text.lines().position(|l| l.contains("e.session_id AS session_id")).unwrap() + 1;
    std::fs::write(&bookings, text.replace("e.session_id AS session_id", "e.sesion_id AS session_id"))
        .unwrap();
    let (code, _, err) = strata(t.path(), &["plan"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fact_payouts.sql:") && err.contains("an audit names column 'statuz'"), "{err}");
    assert!(err.contains(&format!("fact_bookings.sql:{bad_line}: No field named e.sesion_id")), "{err}");

    // query runs what reads; rollback with nothing to roll back to is a usage error.
    let t = TestProject::shipped();
    t.write_fixture_events();
    let (code, _, err) = strata(t.path(), &["query", "DROP TABLE silver.fact_payouts"]);
    assert_eq!(code, 2);
    assert!(err.contains("read-only"), "{err}");
    let (code, _, err) = strata(t.path(), &["query", "CREATE TABLE x AS SELECT 1"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = strata(t.path(), &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0);
    let (code, _, err) = strata(t.path(), &["rollback", "silver.fact_payouts"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no previous version"), "{err}");
}

#[tokio::test]
async fn occurred_at_as_a_small_number_is_seconds_since_the_epoch_as_on_athena() {
    // Trino's TimestampDecoder: numbers of fewer than 13 characters are seconds
    // (OpenXJsonDeserializer.java:584-589).
    let t = TestProject::shipped();
    let dir = t.lake().join("bronze/events/dt=2025-11-06/hour=10/env=prod/event=payout.queued");
    let line = r#"{"event":"payout.queued","occurred_at":12,"received_at":"2025-11-06T10:00:00Z","payload":{"leg_id":"L"}}"#;
    write_gz(&dir.join("part-0.json.gz"), &[line.to_string()]);
    let (code, out, err) = strata(t.path(), &["run", "+silver.fact_payouts", "--at", "2025-11-06T11:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let project = t.project();
    let engine = t.engine(&project);
    assert_eq!(
        query(&engine, "SELECT CAST(occurred_at AS VARCHAR) FROM silver.fact_payouts").await,
        vec![vec!["1970-01-01T00:00:12"]]
    );
}

/// SIGTERM while a publish is in flight: the publish is not abandoned (it is past the last
/// safe point), the outcome reported is what happened, and the run is recorded as such.
#[test]
fn sigterm_during_a_publish_reports_the_publish_and_records_the_run() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    let (code, _, err) = strata(t.path(), &["run", "+ops.live_bookings", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    let before = current_version(t.path(), "ops.live_bookings");
    let mut child = strata_cmd(t.path())
        .args(["run", "ops.live_bookings", "--at", "2025-11-06T12:05:00Z"])
        .env("STRATA_FAILPOINT", "during-publish:ops.live_bookings=pause")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("failpoint during-publish: pausing") {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "ended early: {seen}");
        seen.push_str(&line);
    }
    let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(rest.contains("stopping"), "the signal arrived mid-publish: {rest}");
    assert_eq!(out.status.code(), Some(0), "the publish happened, so the run succeeded: {stdout}\n{rest}");
    assert!(stdout.contains("ops.live_bookings") && stdout.contains("published"), "{stdout}");
    let after = current_version(t.path(), "ops.live_bookings");
    assert_ne!(after, before, "the new version is current");
    let (code, runs, _) = strata(t.path(), &["runs", "ops.live_bookings", "--format", "json"]);
    assert_eq!(code, 0);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&runs).unwrap();
    let last = runs.last().unwrap();
    assert_eq!(
        (last["outcome"].as_str(), last["version"].as_str()),
        (Some("published"), Some(after.as_str()))
    );
    let (_, state, _) = strata(t.path(), &["state", "show", "ops.live_bookings"]);
    assert!(state.contains("2025-11-06T12:05:00.000Z"), "the run state moved: {state}");
}
