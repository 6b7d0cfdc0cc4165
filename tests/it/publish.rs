//! The publish protocol on the local engine: readers never see a partial version, a crash
//! at any step leaves the published state as it was, racing runs cannot both publish, a
//! failed audit publishes nothing, and gc deletes only what the table no longer needs.
//!
//! The engine-level checks take `&dyn Engine`, so every backend can run them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use strata::engine::{Engine, EngineError, Job, JobKind};
use strata::ids::ModelId;
use strata::project::Audit;

use crate::common::{TestProject, current_version, query, strata, strata_cmd};

/// Version `k` of the test table: `n(k)` rows over three partitions, each row `(k, i)`.
fn rows_of(k: u64) -> u64 {
    20 + k % 13
}

/// Also what the Athena conformance checks stage (`tests/it/athena.rs`).
pub fn job(k: u64, audits: Vec<Audit>) -> Job {
    let n = rows_of(k);
    Job {
        model: ModelId::parse("ops.board").unwrap(),
        database: "rastup_ops".into(),
        table: "board".into(),
        run_id: format!("r{k}"),
        version: format!("v20250101T000000000Z-{k:06x}"),
        now: "2025-01-01T00:00:00Z".parse().unwrap(),
        window_end: "2025-01-01T00:00:00Z".parse().unwrap(),
        kind: JobKind::Select {
            // Plain SQL both engines run: a VALUES list rather than a table function.
            sql: format!(
                "SELECT CAST({k} AS BIGINT) AS v, CAST(value AS BIGINT) AS i, CAST(value % 3 AS VARCHAR) AS dt FROM (VALUES {}) AS t(value)",
                (0..n).map(|i| format!("({i})")).collect::<Vec<_>>().join(", ")
            ),
            partition_by: vec!["dt".into()],
            compression: "snappy".into(),
            replaces: None,
        },
        audits,
        arrived: None,
    }
}

async fn publish(engine: &dyn Engine, k: u64) -> Result<(), EngineError> {
    let staged = engine.stage(&job(k, vec![Audit::NotEmpty])).await?;
    engine.audit(&staged).await?;
    engine.publish(&staged, "2025-01-01T00:00:00.000Z").await
}

/// What a reader sees: (version, rows, checksum), each read from one query.
async fn read(engine: &dyn Engine) -> Result<Option<(u64, u64, u64, u64)>, EngineError> {
    let r = engine.query("SELECT min(v), max(v), count(*), sum(i) FROM rastup_ops.board").await?;
    let rows = crate::common::rows(&r.batches);
    let cell = |i: usize| rows[0][i].parse::<u64>().ok();
    Ok(cell(0).map(|min| (min, cell(1).unwrap(), cell(2).unwrap(), cell(3).unwrap())))
}

pub async fn readers_never_see_a_partial_version(engine: Arc<dyn Engine>, publishes: u64) {
    publish(engine.as_ref(), 0).await.expect("first publish");
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (engine, done, reads) = (engine.clone(), done.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut last = 0;
            while !done.load(Ordering::SeqCst) {
                let (min, max, count, sum) =
                    read(engine.as_ref()).await.expect("a read never fails").expect("never empty");
                assert_eq!(min, max, "one read mixed versions {min} and {max}");
                let n = rows_of(min);
                assert_eq!(count, n, "version {min} read with {count} of its {n} rows");
                assert_eq!(sum, n * (n - 1) / 2, "version {min} checksum");
                assert!(min >= last, "a reader went back from version {last} to {min}");
                last = min;
                reads.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for k in 1..=publishes {
        publish(engine.as_ref(), k).await.unwrap_or_else(|e| panic!("publish {k}: {e}"));
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.expect("reader ran clean");
    }
    assert!(reads.load(Ordering::SeqCst) > publishes / 10, "readers overlapped the publishes");
    assert_eq!(read(engine.as_ref()).await.unwrap().unwrap().0, publishes);
}

pub async fn racing_runs_publish_once(engine: &dyn Engine) {
    publish(engine, 1).await.unwrap();
    let a = engine.stage(&job(2, vec![])).await.unwrap();
    let b = engine.stage(&job(3, vec![])).await.unwrap();
    assert_eq!(a.expected, b.expected, "both planned against the same version");
    engine.publish(&a, "2025-01-01T00:00:01.000Z").await.expect("the first to publish wins");
    let err =
        engine.publish(&b, "2025-01-01T00:00:02.000Z").await.expect_err("the second must not overwrite");
    assert!(err.to_string().contains("publish conflict"), "{err}");
    let (v, _, n, _) = read(engine).await.unwrap().unwrap();
    assert_eq!((v, n), (2, rows_of(2)), "the winner's rows, complete");
}

pub async fn a_failed_audit_publishes_nothing(engine: &dyn Engine) {
    publish(engine, 1).await.unwrap();
    let staged = engine
        .stage(&job(2, vec![Audit::Sql("SELECT * FROM {{ this }} WHERE i >= 20".into())]))
        .await
        .unwrap();
    let err = engine.audit(&staged).await.expect_err("rows with i >= 20 exist in version 2");
    let text = err.to_string();
    assert!(text.starts_with("audit sql failed"), "{text}");
    assert!(text.contains("| 2 | 20 "), "the error shows offending rows: {text}");
    assert_eq!(read(engine).await.unwrap().unwrap().0, 1, "version 1 is still the one readers see");

    // Version 1 has 21 rows, version 12 has 32: a 52% change.
    let staged = engine.stage(&job(12, vec![Audit::MaxRowChangePct(50.0)])).await.unwrap();
    let err = engine.audit(&staged).await.expect_err("52% is more than 50%");
    assert!(err.to_string().contains("the published version has 21 rows, the staged one 32"), "{err}");
    let staged = engine.stage(&job(13, vec![Audit::MaxRowChangePct(50.0)])).await.unwrap();
    engine.audit(&staged).await.expect("20 rows against 21 is within 50%");
}

/// The checks both engines make before anything is staged or published
/// (`strata::engine::checks`): an incremental result inside its window, with the published
/// columns; a backfill of SELECT models only.
pub async fn the_run_checks_refuse_what_may_not_be_published(engine: &dyn Engine) {
    publish(engine, 1).await.unwrap();
    let incremental = |k: u64, sql: Option<String>, window: &[&str]| {
        let mut j = job(k, vec![]);
        if let JobKind::Select { sql: s, replaces, .. } = &mut j.kind {
            if let Some(sql) = sql {
                *s = sql;
            }
            *replaces = Some(window.iter().map(|d| vec![d.to_string()]).collect());
        }
        j
    };
    // Rows for dt=1 and dt=2 from a run whose window is dt=0.
    let err = engine.stage(&incremental(2, None, &["0"])).await.expect_err("rows outside the window");
    let text = err.to_string();
    assert!(
        text.contains("rows for partition dt=1 outside the run's window") || text.contains("dt=2 outside"),
        "{text}"
    );
    assert!(text.contains("window_partitions()"), "says how to fix it: {text}");
    // A new column in a run that replaces some partitions.
    let wider = "SELECT CAST(3 AS BIGINT) AS v, CAST(0 AS BIGINT) AS i, CAST(1 AS BIGINT) AS extra, CAST('0' AS VARCHAR) AS dt";
    let err = engine.stage(&incremental(3, Some(wider.into()), &["0"])).await.expect_err("columns differ");
    let text = err.to_string();
    assert!(text.contains("columns differ") && text.contains("extra") && text.contains("is new"), "{text}");
    // Backfills write SELECT models only.
    let mut ddl = job(4, vec![]);
    ddl.kind = JobKind::External { ddl: "CREATE EXTERNAL TABLE x (a string) LOCATION 's3://b/x/'".into() };
    let err = engine
        .stage_part(&ddl, &strata::engine::Partitions::new([vec!["0".into()]]))
        .await
        .expect_err("not a SELECT");
    assert!(err.to_string().contains("a backfill writes SELECT models only"), "{err}");
    assert_eq!(read(engine).await.unwrap().unwrap().0, 1, "version 1 is still the one readers see");
}

/// `strata gc --format json` items have these fields on every engine.
pub fn assert_gc_item_fields(items: &[serde_json::Map<String, serde_json::Value>]) {
    assert!(!items.is_empty(), "something to collect");
    for i in items {
        let keys: Vec<&str> = i.keys().map(String::as_str).collect();
        assert_eq!(keys, ["table", "version", "deletes_dir", "forgets_record", "bytes", "reason"], "{i:?}");
    }
}

fn local(t: &TestProject) -> Arc<dyn Engine> {
    let project = t.project();
    Arc::new(t.engine(&project))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_readers_never_see_a_partial_version() {
    let t = TestProject::shipped();
    readers_never_see_a_partial_version(local(&t), 200).await;
}

#[tokio::test]
async fn local_racing_runs_publish_once() {
    let t = TestProject::shipped();
    racing_runs_publish_once(local(&t).as_ref()).await;
}

#[tokio::test]
async fn local_failed_audit_publishes_nothing() {
    let t = TestProject::shipped();
    a_failed_audit_publishes_nothing(local(&t).as_ref()).await;
}

#[tokio::test]
async fn local_run_checks_refuse_what_may_not_be_published() {
    let t = TestProject::shipped();
    the_run_checks_refuse_what_may_not_be_published(local(&t).as_ref()).await;
}

fn version_dirs(t: &TestProject, table: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(t.lake().join(table))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn current(t: &TestProject, model: &str) -> String {
    current_version(t.path(), model)
}

/// A crash after each step of the protocol leaves the published version as it was; the
/// next run converges, and gc removes what the crash left.
#[test]
fn a_crash_at_any_step_leaves_the_published_state_and_the_next_run_converges() {
    let t = TestProject::shipped();
    std::fs::write(
        t.path().join("strata.toml"),
        std::fs::read_to_string(t.path().join("strata.toml"))
            .unwrap()
            .replace("orphan_grace_minutes = 60", "orphan_grace_minutes = 0"),
    )
    .unwrap();
    t.write_fixture_events();
    let run = |failpoint: Option<&str>| {
        let mut cmd = strata_cmd(t.path());
        cmd.args(["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-05"]);
        if let Some(f) = failpoint {
            cmd.env("STRATA_FAILPOINT", format!("{f}:silver.fact_payouts"));
        }
        cmd.output().expect("strata runs")
    };
    assert!(run(None).status.success());
    let published = current(&t, "silver.fact_payouts");
    assert!(published.starts_with('v'), "{published}");
    let rows = || {
        let (_, out, _) =
            strata(t.path(), &["query", "--format", "csv", "SELECT count(*) AS n FROM silver.fact_payouts"]);
        out.lines().nth(1).unwrap_or_default().to_string()
    };
    let before = rows();

    for step in ["before-stage", "after-stage", "after-audit"] {
        let out = run(Some(step));
        assert!(!out.status.success(), "{step}: the process was aborted");
        assert_eq!(
            current(&t, "silver.fact_payouts"),
            published,
            "{step}: the published version is unchanged"
        );
        assert_eq!(rows(), before, "{step}: readers see the same rows");
    }
    // A crash right after the publish: the new version is complete and current.
    assert!(!run(Some("after-publish")).status.success());
    let after_crash = current(&t, "silver.fact_payouts");
    assert_ne!(after_crash, published);
    assert_eq!(rows(), before);

    // The next run converges; gc removes the staged leftovers but keeps retained versions.
    assert!(run(None).status.success());
    let (code, dry, err) = strata(t.path(), &["gc", "--dry-run", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let dry: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&dry).unwrap();
    assert_gc_item_fields(&dry);
    let (code, out, err) = strata(t.path(), &["gc"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("staged, never published") || out.contains("left by a run"), "{out}");
    let dirs = version_dirs(&t, "silver/fact_payouts");
    assert_eq!(dirs.len(), 3, "three kept versions remain: {dirs:?}");
    assert!(dirs.contains(&current(&t, "silver.fact_payouts")));
    assert!(dirs.contains(&after_crash), "the previous version is kept");
    assert_eq!(rows(), before);
}

#[tokio::test]
async fn gc_deletes_only_unreferenced_versions_under_the_tables_own_prefix() {
    let t = TestProject::shipped();
    let project = t.project();
    let engine = t.engine(&project);
    for k in 1..=6 {
        publish(&engine, k).await.unwrap();
    }
    // Things gc must never touch: another table's data, a non-version directory, Bronze.
    let foreign = [
        t.lake().join("ops/other_table/v20240101T000000000Z-000001"),
        t.lake().join("ops/board/not-a-version"),
        t.lake().join("bronze/events/v20240101T000000000Z-000002"),
    ];
    for f in &foreign {
        std::fs::create_dir_all(f).unwrap();
        std::fs::write(f.join("data.parquet"), b"keep me").unwrap();
    }
    let retention = strata::config::Retention { versions: 3, orphan_grace: chrono::Duration::zero() };
    let now = chrono::Utc::now();
    let table = [strata::lifecycle::GcTable {
        layer: strata::ids::Layer::Ops,
        database: "rastup_ops".into(),
        table: "board".into(),
        leased: false,
        in_flight: Vec::new(),
    }];
    let planned = strata::lifecycle::gc(&engine, &table, retention, now, true).await.unwrap();
    let doomed: Vec<&str> = planned.iter().filter(|i| i.deletes_dir).map(|i| i.version.as_str()).collect();
    assert_eq!(
        doomed,
        ["v20250101T000000000Z-000001", "v20250101T000000000Z-000002", "v20250101T000000000Z-000003"],
        "versions 1..3 are past retention"
    );
    assert_eq!(version_dirs(&t, "ops/board").len(), 7, "a dry run deletes nothing");
    let done = strata::lifecycle::gc(&engine, &table, retention, now, false).await.unwrap();
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|i| i.forgets_record && i.bytes.is_some_and(|b| b > 0)), "{done:?}");
    let left = version_dirs(&t, "ops/board");
    assert_eq!(
        left,
        vec![
            "not-a-version",
            "v20250101T000000000Z-000004",
            "v20250101T000000000Z-000005",
            "v20250101T000000000Z-000006"
        ]
    );
    for f in &foreign {
        assert!(f.join("data.parquet").exists(), "{} must survive gc", f.display());
    }
    assert_eq!(read(&engine).await.unwrap().unwrap().0, 6);
    // Rolling back to a kept version works; to a collected one is refused.
    let rollback = |to: Option<&'static str>| {
        let engine = &engine;
        async move {
            let (layer, stamp) = (strata::ids::Layer::Ops, strata::clock::stamp(now));
            strata::lifecycle::rollback(engine, (layer, "rastup_ops", "board"), to, retention, "rb", &stamp)
                .await
        }
    };
    let rb = rollback(None).await.unwrap().unwrap();
    assert_eq!(rb, "v20250101T000000000Z-000005");
    assert_eq!(read(&engine).await.unwrap().unwrap().0, 5);
    let err = rollback(Some("v20250101T000000000Z-000001")).await.unwrap().unwrap_err().to_string();
    assert!(err.contains("not a kept version"), "{err}");
}

#[tokio::test]
async fn an_incremental_run_replaces_only_its_window_and_readers_see_all_hours_at_once() {
    let t = TestProject::shipped();
    let engine = {
        t.write_fixture_events();
        let project = t.project();
        let engine = t.engine(&project);
        let clock = strata::clock::ManualClock::at(
            chrono::DateTime::parse_from_rfc3339("2025-11-06T12:00:00Z").unwrap().into(),
        );
        let sel = strata::project::select(&project, &["+silver.fact_payouts".into()]).unwrap();
        let at = strata::clock::Clock::now(&clock);
        strata::runner::run(
            &project,
            &engine,
            &clock,
            &sel,
            &strata::runner::RunOptions::new(at, Some(at - chrono::Duration::days(2))),
        )
        .await;
        // A 5-minute refresh at 12:05 recomputes only hours 11 and 12 of 11-06.
        let at = at + chrono::Duration::minutes(5);
        let runs =
            strata::runner::run(&project, &engine, &clock, &sel, &strata::runner::RunOptions::new(at, None))
                .await;
        let payouts = runs.iter().find(|r| r.model.name == "fact_payouts").unwrap();
        assert_eq!(payouts.window.hours().len(), 2);
        engine
    };
    assert_eq!(
        query(&engine, "SELECT count(*), count(DISTINCT dt || hour) FROM silver.fact_payouts").await,
        vec![vec!["5".to_string(), "5".to_string()]],
        "the hours outside the refresh window were carried over"
    );
}

/// Version `k` of an hourly incremental table: one row per hour of its window (`hour - 1`
/// and `hour`), `v = k`.
fn hourly(k: u64, hour: u32) -> Job {
    let window: Vec<Vec<String>> =
        [hour - 1, hour].iter().map(|h| vec!["2025-11-06".to_string(), format!("{h:02}")]).collect();
    let values: Vec<String> = window.iter().map(|w| format!("('{}', '{}')", w[0], w[1])).collect();
    let mut j = job(k, vec![]);
    j.model = ModelId::parse("silver.facts").unwrap();
    j.database = "rastup_silver".into();
    j.table = "facts".into();
    j.kind = JobKind::Select {
        sql: format!(
            "SELECT CAST({k} AS BIGINT) AS v, dt, hour FROM (VALUES {}) AS t(dt, hour)",
            values.join(", ")
        ),
        partition_by: vec!["dt".into(), "hour".into()],
        compression: "snappy".into(),
        replaces: Some(window.into()),
    };
    j
}

/// The local engine mirrors Athena's layered layout: a version records its window only,
/// the hours that leave it go into the base once (in the publish's transaction), readers
/// see every hour; rollback and gc keep working.
#[tokio::test]
async fn local_incremental_versions_record_their_window_and_the_base_takes_what_leaves_it() {
    let t = TestProject::shipped();
    let project = t.project();
    let engine = t.engine(&project);
    let catalog = strata::local::catalog::Catalog::open(&project.settings.catalog_path()).unwrap();
    for (k, hour) in [(1, 11), (2, 12), (3, 13), (4, 14)] {
        let staged = engine.stage(&hourly(k, hour)).await.unwrap();
        engine.publish(&staged, "2025-11-06T15:00:00.000Z").await.unwrap();
        let v = catalog.current("rastup_silver", "facts").unwrap().unwrap();
        let layered = v.layered.expect("an incremental version is layered");
        assert_eq!(layered.own.len(), 2, "version {k} records its two hours only");
        // Every hour so far is read: hours 10..=hour, the newest two from this version.
        let r = engine.query("SELECT hour, v FROM rastup_silver.facts ORDER BY hour").await.unwrap();
        let rows = crate::common::rows(&r.batches);
        let expected: Vec<Vec<String>> = (10..=hour)
            .map(|h| {
                let writer = if h >= hour - 1 { k } else { u64::from(h - 9) };
                vec![format!("{h:02}"), writer.to_string()]
            })
            .collect();
        assert_eq!(rows, expected, "after version {k}");
    }
    // Rollback: the previous version's window (and nothing it did not have).
    let retention = strata::config::Retention { versions: 3, orphan_grace: chrono::Duration::zero() };
    let stamp = strata::clock::stamp(chrono::Utc::now());
    let back = strata::lifecycle::rollback(
        &engine,
        (strata::ids::Layer::Silver, "rastup_silver", "facts"),
        None,
        retention,
        "rb",
        &stamp,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(back, "v20250101T000000000Z-000003");
    let r = engine.query("SELECT hour, v FROM rastup_silver.facts ORDER BY hour").await.unwrap();
    let rows = crate::common::rows(&r.batches);
    assert_eq!(rows.last().unwrap(), &vec!["13".to_string(), "3".to_string()], "{rows:?}");
    assert_eq!(rows.len(), 4, "hours 10-13: {rows:?}");
    // gc past retention keeps every hour a kept version reads.
    let tables = [strata::lifecycle::GcTable {
        layer: strata::ids::Layer::Silver,
        database: "rastup_silver".into(),
        table: "facts".into(),
        leased: false,
        in_flight: Vec::new(),
    }];
    strata::lifecycle::gc(&engine, &tables, retention, chrono::Utc::now(), false).await.unwrap();
    let r = engine.query("SELECT count(*) FROM rastup_silver.facts").await.unwrap();
    assert_eq!(crate::common::rows(&r.batches), [["4".to_string()]]);
}

/// A catalog written before the layered layout (no `base`, `hot_from` columns) is upgraded
/// once, under SQLite's write lock, when several processes open it at the same moment: each
/// opens it, none fails on the other's upgrade, and what it held is still there.
#[test]
fn a_catalog_from_before_the_layered_layout_is_upgraded_once_by_concurrent_openers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite");
    drop(strata::local::catalog::Catalog::open(&path).unwrap());
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch("ALTER TABLE versions DROP COLUMN base; ALTER TABLE versions DROP COLUMN hot_from;")
        .unwrap();
    let columns = |db: &rusqlite::Connection| -> Vec<String> {
        let mut stmt = db.prepare("SELECT name FROM pragma_table_info('versions') ORDER BY cid").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert!(!columns(&db).contains(&"base".to_string()), "the old layout");
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                strata::local::catalog::Catalog::open(&path).map(drop).map_err(|e| e.to_string())
            })
        })
        .collect();
    for opener in openers {
        opener.join().unwrap().unwrap();
    }
    let cols = columns(&db);
    assert_eq!(cols.iter().filter(|c| *c == "base" || *c == "hot_from").count(), 2, "{cols:?}");
}
