//! Run state shared by every task: one suite of store tests passed by both stores (SQLite
//! for the local engine, S3 conditional writes for Athena), and strata processes on
//! different empty state directories sharing the S3 store through the Athena stand-in
//! (moto's S3 implements `If-None-Match` / `If-Match`; the stand-in makes the check and the
//! write one atomic step, as S3 does).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;

use strata::state::{Lease, RunRecord, RunState, S3State, SqliteState};

use crate::athena::{StandIn, provision, upload_bronze};
use crate::common::TestProject;

fn record(model: &str, run: &str, finished: &str, outcome: &str) -> RunRecord {
    RunRecord {
        run_id: run.into(),
        model: model.into(),
        window_start: "2025-11-06T11:00:00.000Z".into(),
        window_end: "2025-11-06T12:00:00.000Z".into(),
        outcome: outcome.into(),
        version: (outcome == "published").then(|| format!("v-{run}")),
        rows: 42,
        bytes_scanned: 12_345_678,
        bytes_written: 1_000,
        statements: 3,
        cost_usd: strata::state::athena_cost_usd(30_000_000),
        millis: 1_500,
        error: (outcome == "FAILED").then(|| "boom".to_string()),
        task: "task-a".into(),
        finished_at: finished.into(),
        fingerprint: None,
    }
}

/// What every run-state store must do.
async fn store_suite(state: Arc<dyn RunState>) {
    let m = "silver.fact_payouts";
    // How far a model ran: absent, then only ever forwards, except by an operator's reset.
    assert_eq!(state.model(m).await.unwrap(), None);
    state.record_success(m, "2025-11-06T12:00:00.000Z", "tick-1", "2025-11-06T12:01:00.000Z").await.unwrap();
    state.record_success(m, "2025-11-06T11:00:00.000Z", "tick-0", "2025-11-06T12:02:00.000Z").await.unwrap();
    let s = state.model(m).await.unwrap().unwrap();
    assert_eq!((s.last_at.as_deref(), s.by.as_str()), (Some("2025-11-06T12:00:00.000Z"), "tick-1"));
    state.reset(m, Some("2025-11-06T10:00:00.000Z"), "reset at x", "2025-11-06T12:03:00.000Z").await.unwrap();
    assert_eq!(state.model(m).await.unwrap().unwrap().last_at.as_deref(), Some("2025-11-06T10:00:00.000Z"));
    state.reset(m, None, "reset at y", "2025-11-06T12:04:00.000Z").await.unwrap();
    assert_eq!(state.model(m).await.unwrap().unwrap().last_at, None, "reset to never");
    state.record_success(m, "2025-11-06T09:00:00.000Z", "tick-2", "2025-11-06T12:05:00.000Z").await.unwrap();
    assert_eq!(state.model(m).await.unwrap().unwrap().last_at.as_deref(), Some("2025-11-06T09:00:00.000Z"));

    // Leases: free -> taken; held and live -> refused naming the holder; the holder renews;
    // expired -> taken over; released only by its holder; force-released by an operator.
    let (t0, t1, t2, t9) = (
        "2025-11-06T12:00:00.000Z",
        "2025-11-06T12:01:00.000Z",
        "2025-11-06T12:02:00.000Z",
        "2025-11-06T12:09:00.000Z",
    );
    assert_eq!(state.lease(m).await.unwrap(), None);
    state.acquire_lease(m, "a", t0, t2).await.unwrap().unwrap();
    let refused = state.acquire_lease(m, "b", t1, "2025-11-06T12:03:00.000Z").await.unwrap();
    assert_eq!(refused, Err(Lease { owner: "a".into(), until: t2.into() }));
    state.acquire_lease(m, "a", t1, "2025-11-06T12:03:00.000Z").await.unwrap().unwrap();
    assert_eq!(state.lease(m).await.unwrap().unwrap().until, "2025-11-06T12:03:00.000Z", "renewed");
    state.acquire_lease(m, "b", t9, "2025-11-06T12:11:00.000Z").await.unwrap().unwrap();
    assert_eq!(state.lease(m).await.unwrap().unwrap().owner, "b", "an expired lease is taken over");
    state.release_lease(m, "a").await.unwrap();
    assert_eq!(state.lease(m).await.unwrap().unwrap().owner, "b", "only the holder releases");
    state.release_lease(m, "b").await.unwrap();
    assert_eq!(state.lease(m).await.unwrap(), None);
    state.acquire_lease(m, "c", t9, "2099-01-01T00:00:00.000Z").await.unwrap().unwrap();
    assert!(state.force_release(m).await.unwrap());
    assert!(!state.force_release(m).await.unwrap(), "nothing left to release");
    state.acquire_lease(m, "d", t9, "2025-11-06T12:11:00.000Z").await.unwrap().unwrap();

    // Of many takers racing for one free lease, exactly one wins.
    let key = "ops.live_bookings";
    let takers = (0..8).map(|i| {
        let state = state.clone();
        tokio::spawn(
            async move { state.acquire_lease(key, &format!("taker-{i}"), t0, t2).await.unwrap().is_ok() },
        )
    });
    let won = futures::future::join_all(takers).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(won, 1, "one taker holds the lease");
    // Racing progress: the furthest wins, whatever the order.
    let writers = (0..8).map(|h| {
        let state = state.clone();
        tokio::spawn(async move {
            let at = format!("2025-11-06T{:02}:00:00.000Z", 10 + h);
            state.record_success(key, &at, &format!("tick-{h}"), t0).await.unwrap();
        })
    });
    futures::future::join_all(writers).await;
    assert_eq!(state.model(key).await.unwrap().unwrap().last_at.as_deref(), Some("2025-11-06T17:00:00.000Z"));

    // Backfill progress: marked windows with their version, forgotten when cleared.
    let bf = "bf-0123456789abcdef";
    assert!(state.backfill_done(bf, m).await.unwrap().is_empty());
    state.backfill_mark(bf, m, "2025-11-06T09:00:00.000Z", "v1").await.unwrap();
    state.backfill_mark(bf, m, "2025-11-06T10:00:00.000Z", "v1").await.unwrap();
    state.backfill_mark(bf, m, "2025-11-06T09:00:00.000Z", "v1").await.unwrap();
    state.backfill_mark(bf, "silver.fact_events", "2025-11-06T09:00:00.000Z", "v2").await.unwrap();
    assert_eq!(
        state.backfill_done(bf, m).await.unwrap(),
        [
            ("2025-11-06T09:00:00.000Z".to_string(), "v1".to_string()),
            ("2025-11-06T10:00:00.000Z".into(), "v1".into())
        ]
    );
    let pair = |m: &str, v: &str| (m.to_string(), v.to_string());
    assert_eq!(
        state.backfill_versions().await.unwrap(),
        [pair("silver.fact_events", "v2"), pair(m, "v1")],
        "the versions unfinished backfills write (gc keeps them)"
    );
    state.backfill_clear(bf, m).await.unwrap();
    assert!(state.backfill_done(bf, m).await.unwrap().is_empty());
    assert_eq!(state.backfill_done(bf, "silver.fact_events").await.unwrap().len(), 1, "per model");
    assert_eq!(state.backfill_versions().await.unwrap(), [pair("silver.fact_events", "v2")]);

    // Run history: every record kept as written, oldest first, by model, since, last n.
    let runs = [
        record(m, "r1", "2025-11-06T12:01:00.000Z", "published"),
        record(m, "r2", "2025-11-06T12:06:00.000Z", "FAILED"),
        record("ops.live_bookings", "r2", "2025-11-06T12:06:30.000Z", "unchanged"),
        record(m, "r3", "2025-11-06T12:11:00.000Z", "published"),
    ];
    for r in runs.iter().rev() {
        state.record_run(r).await.unwrap();
    }
    state.record_run(&runs[0]).await.unwrap(); // written twice (a retried request): kept once
    assert_eq!(state.runs(None, None, None).await.unwrap(), runs);
    assert_eq!(
        state.runs(Some(m), None, None).await.unwrap(),
        [runs[0].clone(), runs[1].clone(), runs[3].clone()]
    );
    assert_eq!(
        state.runs(None, Some("2025-11-06T12:06:00.000Z"), None).await.unwrap(),
        runs[1..].to_vec(),
        "since is inclusive"
    );
    assert_eq!(state.runs(Some(m), None, Some(1)).await.unwrap(), [runs[3].clone()]);
    assert_eq!(state.runs(None, None, Some(1)).await.unwrap(), [runs[2].clone(), runs[3].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    store_suite(Arc::new(SqliteState::open(&dir.path().join("catalog.sqlite")).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_passes_the_store_suite_with_conditional_writes() {
    let standin = StandIn::start();
    let aws = standin.clients();
    aws.s3.create_bucket().bucket("lake").send().await.unwrap();
    let state = S3State::new(aws.s3.clone(), "lake", "prod/");
    assert_eq!(state.location(), "s3://lake/prod/_strata/state/");
    store_suite(Arc::new(state)).await;
    // Everything it wrote is under the state prefix (what the task role may write).
    let keys = aws.s3.list_objects_v2().bucket("lake").send().await.unwrap();
    let keys: Vec<&str> = keys.contents().iter().filter_map(|o| o.key()).collect();
    assert!(!keys.is_empty() && keys.iter().all(|k| k.starts_with("prod/_strata/state/")), "{keys:?}");
}

/// Successful runs in the shared history: (model, window end) -> how many.
async fn successes(state: &dyn RunState) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for r in state.runs(None, None, None).await.unwrap() {
        assert_ne!(r.outcome, "FAILED", "{r:?}");
        if r.outcome == "published" || r.outcome == "unchanged" {
            *out.entry((r.model, r.window_end)).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ticks_on_two_empty_state_dirs_run_every_due_model_once() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_producer_events();
    upload_bronze(&aws, &t).await;
    let project = t.project();
    let shared = S3State::new(aws.s3.clone(), "rastup-data", "");
    let mut seen = BTreeMap::new();
    for at in ["2025-11-06T12:01:00Z", "2025-11-06T12:06:00Z", "2025-11-06T12:21:00Z"] {
        let now = strata::clock::parse_instant(at).unwrap();
        let due: BTreeSet<String> = strata::scheduler::plan_tick(&project, &shared, now)
            .await
            .unwrap()
            .due
            .iter()
            .map(|p| p.id.to_string())
            .collect();
        assert!(!due.is_empty());
        // Two tasks, each with its own empty disk, ticking at the same moment.
        let ticks: Vec<_> = ["task-a", "task-b"]
            .iter()
            .map(|task| {
                let state_dir = tempfile::tempdir().unwrap();
                let child = standin
                    .command(t.path())
                    .args(["tick", "--at", at])
                    .env("STRATA_STATE_DIR", state_dir.path())
                    .env("STRATA_TASK_ID", task)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (state_dir, child)
            })
            .collect();
        let mut stderr = String::new();
        for (_dir, child) in ticks {
            let out = child.wait_with_output().unwrap();
            let (o, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(
                out.status.code(),
                Some(0),
                "{at}: a tick that found work leased still exits 0\n{o}\n{e}"
            );
            stderr.push_str(&e);
        }
        let now_seen = successes(&shared).await;
        let new: BTreeMap<_, _> = now_seen.iter().filter(|(k, _)| !seen.contains_key(*k)).collect();
        let ran: BTreeSet<String> = new.keys().map(|(m, _)| m.clone()).collect();
        assert_eq!(ran, due, "{at}: every due model ran\n{stderr}");
        assert!(new.values().all(|n| **n == 1), "{at}: each once: {new:?}\n{stderr}");
        seen = now_seen;
    }
    // `strata runs` and `strata status` on a third task with an empty disk show that
    // history; status has the same fields as on the local engine.
    let third = tempfile::tempdir().unwrap();
    let out = standin
        .command(t.path())
        .args(["runs", "--since", "2025-11-06", "--format", "json"])
        .env("STRATA_STATE_DIR", third.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<RunRecord> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed, shared.runs(None, None, None).await.unwrap());
    assert!(listed.iter().any(|r| r.bytes_scanned > 0 && r.cost_usd > 0.0), "Athena runs carry their cost");
    let out = standin
        .command(t.path())
        .args(["status", "--format", "json"])
        .env("STRATA_STATE_DIR", third.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let athena_status: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(&out.stdout).unwrap();
    let live = athena_status.iter().find(|r| r["model"] == "ops.live_bookings").unwrap();
    assert_eq!(live["last_outcome"], "published", "{live:?}");
    assert!(live["last_cost_usd"].as_f64().unwrap() > 0.0, "{live:?}");
    let local = TestProject::shipped();
    let (code, out, err) = crate::common::strata(local.path(), &["status", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let local_status: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&out).unwrap();
    let keys =
        |rows: &[serde_json::Map<String, serde_json::Value>]| rows[0].keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&athena_status), keys(&local_status), "status has one shape on both engines");

    // Every run of both tasks is in the one history, named by its task.
    let tasks: BTreeSet<String> =
        shared.runs(None, None, None).await.unwrap().into_iter().map(|r| r.task).collect();
    assert!(tasks.is_subset(&BTreeSet::from(["task-a".to_string(), "task-b".to_string()])), "{tasks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_past_expiry_by_a_killed_task_is_taken_over() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_producer_events();
    upload_bronze(&aws, &t).await;
    let tick = |at: &str, task: &str, failpoint: Option<&str>| {
        let state_dir = tempfile::tempdir().unwrap();
        let mut cmd = standin.command(t.path());
        cmd.args(["tick", "--at", at]).env("STRATA_STATE_DIR", state_dir.path()).env("STRATA_TASK_ID", task);
        if let Some(f) = failpoint {
            cmd.env("STRATA_FAILPOINT", f);
        }
        let out = cmd.output().unwrap();
        let text =
            format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    // Task A dies (SIGABRT) after staging ops.live_bookings, holding its lease until 12:03.
    let (code, out) = tick("2025-11-06T12:01:00Z", "task-a", Some("after-stage:ops.live_bookings"));
    assert_ne!(code, Some(0), "{out}");
    let shared = S3State::new(aws.s3.clone(), "rastup-data", "");
    let lease = shared.lease("ops.live_bookings").await.unwrap().expect("the killed task's lease is left");
    assert!(lease.owner.ends_with(" on task-a"), "{lease:?}");

    // Task B, a minute later: the lease is live, the model is skipped naming its holder,
    // and the tick exits 0.
    let (code, out) = tick("2025-11-06T12:02:00Z", "task-b", None);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("skipped ops.live_bookings: leased by tick-") && out.contains(" on task-a until"),
        "{out}"
    );
    // Past its expiry: taken over, run and published.
    let (code, out) = tick("2025-11-06T12:04:00Z", "task-b", None);
    assert_eq!(code, Some(0), "{out}");
    let runs = shared.runs(Some("ops.live_bookings"), None, None).await.unwrap();
    let last = runs.last().expect("a run of ops.live_bookings");
    assert_eq!((last.outcome.as_str(), last.task.as_str()), ("published", "task-b"), "{out}");
    assert_eq!(shared.lease("ops.live_bookings").await.unwrap(), None, "released after its run");
}

/// Reads `child`'s stderr until a line contains `marker`; returns what it read.
fn wait_for_line(child: &mut std::process::Child, marker: &str) -> String {
    let mut read = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        read.push_str(&line);
        read.push('\n');
        if line.contains(marker) {
            // Keep draining in the background so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return read;
        }
    }
    panic!("the process ended without printing {marker:?}:\n{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_with_sigkill_resumes_from_another_empty_state_dir_and_publishes_once() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_producer_events();
    upload_bronze(&aws, &t).await;
    let (code, out, err) = standin.strata(
        t.path(),
        &["run", "+silver.fact_payouts", "--at", "2025-11-06T09:00:00Z", "--from", "2025-11-06T08:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let backfill =
        ["backfill", "silver.fact_payouts", "--from", "2025-11-06T09:00:00Z", "--to", "2025-11-06T13:00:00Z"];
    let versions_before = aws
        .glue
        .get_table_versions()
        .database_name("rastup_silver")
        .table_name("fact_payouts")
        .send()
        .await
        .unwrap()
        .table_versions()
        .len();

    // The first task writes two of four windows, then hangs; a second task (another id,
    // its own empty disk) finds the backfill leased and refuses, exit 75 (busy).
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = standin
        .command(t.path())
        .args(backfill)
        .args(["--parallel", "1"])
        .env("STRATA_STATE_DIR", first_dir.path())
        .env("STRATA_FAILPOINT", "backfill-window:2=hang")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(&mut first, "failpoint backfill-window:2: hanging");
    let other_dir = tempfile::tempdir().unwrap();
    let out = standin
        .command(t.path())
        .args(backfill)
        .env("STRATA_STATE_DIR", other_dir.path())
        .env("STRATA_TASK_ID", "another-task")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("is running on") && err.contains(&format!(":{}", first.id())), "{err}");

    // SIGKILL: nothing is released or cleaned up.
    first.kill().unwrap();
    first.wait().unwrap();
    let shared = S3State::new(aws.s3.clone(), "rastup-data", "");
    let bf_keys = aws
        .s3
        .list_objects_v2()
        .bucket("rastup-data")
        .prefix("_strata/state/backfills/")
        .send()
        .await
        .unwrap();
    assert_eq!(bf_keys.contents().len(), 1, "the progress of the killed backfill is in the shared state");

    // A new task on this host with an empty disk: the dead task's lease is taken over at
    // once, the two windows done are not computed again, the table is published once.
    let resumed_dir = tempfile::tempdir().unwrap();
    let out = standin
        .command(t.path())
        .args(backfill)
        .env("STRATA_STATE_DIR", resumed_dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let row = stdout.lines().find(|l| l.contains("silver.fact_payouts")).unwrap_or_default();
    let cells: Vec<&str> = row.split('┆').map(str::trim).collect();
    assert_eq!(cells.get(1..4), Some(&["4", "2", "published"][..]), "4 windows, 2 computed now: {stdout}");
    let versions = aws
        .glue
        .get_table_versions()
        .database_name("rastup_silver")
        .table_name("fact_payouts")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.table_versions().len(), versions_before + 1, "published once");
    let runs = shared.runs(Some("silver.fact_payouts"), None, None).await.unwrap();
    assert_eq!(runs.iter().filter(|r| r.run_id.starts_with("backfill-")).count(), 1, "{runs:?}");

    // The same rows as an uninterrupted backfill of the same range (in a second lake).
    let rows = |standin: &StandIn, t: &TestProject| {
        let (code, rows, err) = standin.strata(
            t.path(),
            &[
                "query",
                "SELECT leg_id, status, dt, hour FROM rastup_silver.fact_payouts ORDER BY 1, 2, 3, 4",
                "--format",
                "csv",
            ],
        );
        assert_eq!(code, 0, "{err}");
        rows
    };
    let resumed = rows(&standin, &t);
    let clean = StandIn::start();
    let clean_aws = clean.clients();
    provision(&clean_aws, false).await;
    upload_bronze(&clean_aws, &t).await;
    let (code, out, err) = clean.strata(
        t.path(),
        &["run", "+silver.fact_payouts", "--at", "2025-11-06T09:00:00Z", "--from", "2025-11-06T08:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = clean.strata(t.path(), &backfill);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(resumed, rows(&clean, &t));
    assert!(resumed.lines().count() > 10, "{resumed}");
}

/// The local engine, where a rival run of the same model and window publishes just before
/// this run's publish (the race a manual `strata run` and a tick, or two schedulers, can
/// have): this run's compare-and-swap then loses.
struct RivalFirst<'a> {
    inner: strata::local::LocalEngine,
    rival: &'a (dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> + Sync),
    raced: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl strata::engine::Engine for RivalFirst<'_> {
    async fn stage(
        &self,
        job: &strata::engine::Job,
    ) -> Result<strata::engine::Staged, strata::engine::EngineError> {
        self.inner.stage(job).await
    }
    async fn stage_part(
        &self,
        job: &strata::engine::Job,
        keep: &strata::engine::Partitions,
    ) -> Result<strata::engine::StepStats, strata::engine::EngineError> {
        self.inner.stage_part(job, keep).await
    }
    async fn seal(
        &self,
        job: &strata::engine::Job,
        replaces: &strata::engine::Partitions,
    ) -> Result<strata::engine::Staged, strata::engine::EngineError> {
        self.inner.seal(job, replaces).await
    }
    async fn audit(&self, staged: &strata::engine::Staged) -> Result<(), strata::engine::EngineError> {
        self.inner.audit(staged).await
    }
    async fn publish(
        &self,
        staged: &strata::engine::Staged,
        now: &str,
    ) -> Result<(), strata::engine::EngineError> {
        if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            (self.rival)().await;
        }
        self.inner.publish(staged, now).await
    }
    async fn query(&self, sql: &str) -> Result<strata::engine::QueryResult, strata::engine::EngineError> {
        self.inner.query(sql).await
    }
    async fn was_published(&self, job: &strata::engine::Job) -> Result<bool, strata::engine::EngineError> {
        self.inner.was_published(job).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_loses_to_a_run_of_the_same_window_is_superseded_not_failed() {
    use strata::runner::{Outcome, Planned, RunOptions, Stop, run_planned};
    let t = TestProject::shipped();
    t.write_fixture_events();
    let p = t.project();
    let state = t.state(&p);
    let clock = strata::clock::ManualClock::at(strata::clock::parse_instant("2025-11-06T12:05:00Z").unwrap());
    let model = strata::ids::ModelId::parse("ops.live_bookings").unwrap();
    let plan = |at: &str| {
        vec![Planned {
            id: model.clone(),
            opts: RunOptions::new(strata::clock::parse_instant(at).unwrap(), None),
        }]
    };
    let guard = |run_id: &str| strata::scheduler::RecordSuccess {
        project: &p,
        state: state.clone(),
        clock: &clock,
        run_id: run_id.into(),
        task: "task-a".into(),
    };
    // Everything else published first, so both runs read the same Silver.
    let others: Vec<_> = p.dag.order.iter().filter(|m| **m != model).cloned().collect();
    let opts = RunOptions::new(strata::clock::Clock::now(&clock), None);
    let ups = strata::runner::run(&p, &t.engine(&p), &clock, &others, &opts).await;
    assert!(ups.iter().all(|r| r.outcome.is_success()), "{ups:?}");

    let race = |rival_at: &'static str| {
        let (p, clock, plan, guard) = (&p, &clock, &plan, &guard);
        let t = &t;
        move || -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            Box::pin(async move {
                let rival =
                    run_planned(p, &t.engine(p), clock, &plan(rival_at), 1, &Stop::never(), &guard("rival"))
                        .await;
                assert!(matches!(rival[0].outcome, Outcome::Published(_)), "{rival:?}");
            })
        }
    };
    // The rival ran the same window: this run is superseded, exits as a success, and the
    // history says so.
    let rival = race("2025-11-06T12:05:00Z");
    let engine = RivalFirst { inner: t.engine(&p), rival: &rival, raced: Default::default() };
    let runs =
        run_planned(&p, &engine, &clock, &plan("2025-11-06T12:05:00Z"), 1, &Stop::never(), &guard("mine"))
            .await;
    assert!(
        matches!(&runs[0].outcome, Outcome::Superseded(why) if why.contains("on task-a published this window first")),
        "{runs:?}"
    );
    assert!(!runs[0].outcome.is_failure());
    let history = state.runs(Some("ops.live_bookings"), None, None).await.unwrap();
    let outcomes: BTreeSet<&str> = history.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!((history.len(), outcomes), (2, BTreeSet::from(["published", "superseded"])));

    // A rival of an earlier window: this window still has to run, so it is a conflict (a
    // failure), and the model's run state does not move past the rival's window.
    clock.set(strata::clock::parse_instant("2025-11-06T12:10:00Z").unwrap());
    let rival = race("2025-11-06T12:05:00Z");
    let engine = RivalFirst { inner: t.engine(&p), rival: &rival, raced: Default::default() };
    let runs =
        run_planned(&p, &engine, &clock, &plan("2025-11-06T12:10:00Z"), 1, &Stop::never(), &guard("mine-2"))
            .await;
    assert!(
        matches!(&runs[0].outcome, Outcome::Conflict(why) if why.contains("publish conflict")),
        "{runs:?}"
    );
    assert!(runs[0].outcome.is_failure());
    let s = state.model("ops.live_bookings").await.unwrap().unwrap();
    assert_eq!(s.last_at.as_deref(), Some("2025-11-06T12:05:00.000Z"));
}

#[tokio::test]
async fn runs_lists_the_history_as_a_table_csv_or_json() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    let (code, _, err) = crate::common::strata(t.path(), &["tick", "--at", "2025-11-06T12:01:00Z"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) =
        crate::common::strata(t.path(), &["run", "ops.live_bookings", "--at", "2025-11-06T12:03:00Z"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) =
        crate::common::strata(t.path(), &["runs", "--since", "2025-11-06", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let runs: Vec<RunRecord> = serde_json::from_str(&out).unwrap();
    let project = t.project();
    let due = strata::scheduler::plan_tick(
        &project,
        &*t.state(&TestProject::shipped().project()),
        strata::clock::parse_instant("2025-11-06T12:01:00Z").unwrap(),
    )
    .await
    .unwrap()
    .due
    .len();
    assert_eq!(runs.len(), due + 1, "one record per model run of the tick, plus the manual run");
    assert!(runs.windows(2).all(|w| w[0].finished_at <= w[1].finished_at), "oldest first");
    let manual = runs.iter().rfind(|r| r.model == "ops.live_bookings").unwrap();
    assert_eq!(
        (manual.window_end.as_str(), manual.outcome.as_str()),
        ("2025-11-06T12:03:00.000Z", "published")
    );
    assert!(manual.version.as_deref().is_some_and(|v| v.starts_with('v')) && manual.rows > 0, "{manual:?}");
    assert_eq!(manual.cost_usd, 0.0, "the local engine costs nothing");

    let (code, out, _) =
        crate::common::strata(t.path(), &["runs", "ops.*", "--since", "2025-11-06", "--format", "csv"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("finished,model,window,outcome,rows,scanned,cost USD"), "{out}");
    assert_eq!(lines.len() - 1, runs.iter().filter(|r| r.model.starts_with("ops.")).count(), "{out}");

    let (code, out, _) = crate::common::strata(t.path(), &["runs", "--since", "2025-11-06"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("{} runs, 0 failed", runs.len())), "{out}");
    let (code, out, _) = crate::common::strata(t.path(), &["runs"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("{} runs, 0 failed", runs.len())),
        "finished within the last 24 hours: {out}"
    );
    let (code, out, _) =
        crate::common::strata(t.path(), &["runs", "--since", "2099-01-01", "--allow-future"]);
    assert_eq!(code, 0);
    assert!(out.contains("0 runs"), "{out}");
}
