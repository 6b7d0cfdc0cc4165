//! The publish policy's conformance suite: one body per behaviour, run on every backend
//! (the local engine, Athena through the stand-in) and on a fake in-memory table store that
//! implements only the primitives (`TableStore`, `LayeredStore`, `StagingStore`,
//! `Lifecycle`) and takes every decision from `strata::materialize` and
//! `strata::lifecycle`: the policy does not depend on an engine.
//!
//! Each scenario drives the policy as `runner` and `backfill` do (`materialize::complete`,
//! `Engine::stage_part` + `seal`, `lifecycle::rollback` / `gc`) on a table partitioned by
//! day whose rows `(v, i, dt)` say which run wrote them, and checks what a reader sees:
//! rows and the sum of `v` per partition. What it covers: the layered layout (a window
//! replaced, later partitions kept, a past window rerun, a range before the hot window),
//! the emptied-partitions fence, a lost compare-and-swap, the stop's safe point, the
//! outcomes and the steps they pass, a backfill sealed from its windows, rollback, and gc
//! that never deletes what a kept version reads. Near-real-time arrivals need a Bronze
//! source and run on both engines in `nrt.rs`; audits are SQL, run in `publish.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use strata::clock::ManualClock;
use strata::config::Retention;
use strata::engine::{
    ArrivedSource, Engine, EngineError, Job, JobKind, Partitions, QueryResult, Staged, StepStats, SwapToken,
    checks,
};
use strata::ids::{Layer, ModelId};
use strata::lifecycle::{self, GcTable, Lifecycle, Published, Recorded, StoredDir, TableVersions};
use strata::materialize::layered::{Base, Current, LayeredStore, Layout};
use strata::materialize::stage::{self, StagingStore};
use strata::materialize::store::{StoredPartition, StoredVersion, TableStore, VersionOf};
use strata::materialize::{Completion, Outcome, Step, Stop};

use crate::athena::StandIn;
use crate::common::TestProject;

const DB: &str = "rastup_silver";
const TABLE: &str = "conformance_board";

/// A row: the run that wrote it (`v`), its index, its partition.
type Row = (u64, u64, String);

/// What a reader sees per partition: rows, and the sum of `v` (which runs wrote them).
type Seen = BTreeMap<String, (u64, u64)>;

fn instant(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn day(d: u32) -> String {
    format!("2025-01-{d:02}")
}

/// `n` rows of run `v` in each of `days`.
fn rows(v: u64, days: &[u32], n: u64) -> Vec<Row> {
    days.iter().flat_map(|d| (0..n).map(move |i| (v, i, day(*d)))).collect()
}

fn window(days: &[u32]) -> Partitions {
    days.iter().map(|d| vec![day(*d)]).collect()
}

/// What the reader should see: `n` rows of `v` in each day of `runs`.
fn seen(runs: &[(u64, &[u32])], n: u64) -> Seen {
    let mut out = Seen::new();
    for (v, days) in runs {
        for d in *days {
            out.insert(day(*d), (n, v * n));
        }
    }
    out
}

/// Where a subject's Bronze source objects go.
enum Objects {
    Memory,
    Lake(std::path::PathBuf),
    S3(aws_sdk_s3::Client),
}

/// A backend under test.
struct Subject {
    engine: Arc<dyn Engine>,
    lifecycle: Arc<dyn Lifecycle>,
    /// The fake reads its memory; the engines answer a query.
    fake: Option<Arc<Fake>>,
    clock: ManualClock,
    objects: Objects,
    _keep: Box<dyn std::any::Any + Send>,
}

/// The Bronze source of the near-real-time scenario: gzip JSON lines under `dt=` prefixes.
const SOURCE: &str = "conformance_events";
const SOURCE_RELATION: &str = "\"rastup_bronze\".\"conformance_events\"";

impl Subject {
    fn local() -> Self {
        let t = TestProject::shipped();
        let engine = Arc::new(t.engine(&t.project()));
        let objects = Objects::Lake(t.lake());
        Self::of(engine.clone(), engine, None, objects, Box::new(t))
    }

    async fn athena() -> Self {
        let standin = StandIn::start();
        let engine = crate::athena::engine(&standin).await;
        let objects = Objects::S3(standin.clients().s3);
        Self::of(engine.clone(), engine, None, objects, Box::new(standin))
    }

    fn fake() -> Self {
        let fake = Arc::new(Fake::default());
        Self::of(fake.clone(), fake.clone(), Some(fake), Objects::Memory, Box::new(()))
    }

    fn of(
        engine: Arc<dyn Engine>,
        lifecycle: Arc<dyn Lifecycle>,
        fake: Option<Arc<Fake>>,
        objects: Objects,
        keep: Box<dyn std::any::Any + Send>,
    ) -> Self {
        let clock = ManualClock::at("2025-01-10T00:00:00Z".parse().unwrap());
        Self { engine, lifecycle, fake, clock, objects, _keep: keep }
    }

    /// Publishes the Bronze source table (an external table over `dt=` prefixes, read by
    /// the OpenX SerDe as Athena reads Firehose's objects).
    async fn publish_source(&self) {
        let location = match &self.objects {
            Objects::Memory => return,
            Objects::Lake(lake) => format!("file://{}/bronze/{SOURCE}", lake.display()),
            Objects::S3(_) => format!("s3://rastup-data/bronze/{SOURCE}"),
        };
        let days: Vec<String> = (1..10).map(day).collect();
        let ddl = format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `rastup_bronze`.`{SOURCE}` (\n  `v` bigint,\n  `i` bigint\n)\n\
             PARTITIONED BY (`dt` string)\n\
             ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n\
             LOCATION '{location}/'\n\
             TBLPROPERTIES (\n  'projection.enabled' = 'true',\n  'projection.dt.type' = 'enum',\n  \
             'projection.dt.values' = '{}',\n  'storage.location.template' = '{location}/dt=${{dt}}'\n)",
            days.join(",")
        );
        let job = Job {
            model: ModelId::parse(&format!("bronze.{SOURCE}")).unwrap(),
            database: "rastup_bronze".into(),
            table: SOURCE.into(),
            run_id: "r0".into(),
            version: "v20250101T000000000Z-0000ff".into(),
            now: instant("2025-01-01T00:00:00Z"),
            window_end: instant("2025-01-01T00:00:00Z"),
            kind: JobKind::External { ddl },
            audits: Vec::new(),
            arrived: None,
        };
        let staged = self.engine.stage(&job).await.unwrap();
        self.engine.publish(&staged, "2025-01-01T00:00:00.000Z").await.unwrap();
    }

    /// Lands (or, to probe what a run reads, overwrites) source object `name` of `day(d)`.
    async fn land(&self, name: &str, d: u32, rows: &[Row]) {
        let key = format!("bronze/{SOURCE}/dt={}/{name}.json.gz", day(d));
        let lines: Vec<String> = rows.iter().map(|(v, i, _)| format!(r#"{{"v":{v},"i":{i}}}"#)).collect();
        match &self.objects {
            Objects::Memory => {
                let fake = self.fake.as_ref().expect("the fake");
                fake.0.lock().unwrap().sources.insert(key, (day(d), rows.to_vec()));
            }
            Objects::Lake(lake) => crate::common::write_gz(&lake.join(&key), &lines),
            Objects::S3(s3) => {
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join("o.json.gz");
                crate::common::write_gz(&file, &lines);
                let body = std::fs::read(&file).unwrap();
                s3.put_object().bucket("rastup-data").key(&key).body(body.into()).send().await.unwrap();
            }
        }
    }

    /// A near-real-time run `k` of `days`: the SELECT over the source, which it reads by
    /// arrival.
    async fn tick(&self, k: u64, days: &[u32]) -> Outcome {
        let mut job = self.job(k, &[], Some(window(days)));
        let names: Vec<String> = days.iter().map(|d| day(*d)).collect();
        let sql = match &self.fake {
            Some(_) => format!("{FAKE_SQL}{}", serde_json::json!({ "source": names })),
            None => {
                let list: Vec<String> = names.iter().map(|d| format!("'{d}'")).collect();
                format!(
                    "SELECT CAST(v AS BIGINT) AS v, CAST(i AS BIGINT) AS i, dt FROM {SOURCE_RELATION} WHERE dt IN ({})",
                    list.join(", ")
                )
            }
        };
        if let JobKind::Select { sql: s, .. } = &mut job.kind {
            *s = sql;
        }
        job.arrived = Some(ArrivedSource {
            database: "rastup_bronze".into(),
            table: SOURCE.into(),
            relation: SOURCE_RELATION.into(),
        });
        let staged = self.engine.stage(&job).await.unwrap();
        self.complete(&staged, false, &Stop::never()).await.unwrap().0
    }

    /// A SELECT returning `rows`: a VALUES list on the engines, the rows themselves for the
    /// fake (its "SQL engine" returns what the suite computed).
    fn sql(&self, rows: &[Row]) -> String {
        if self.fake.is_some() {
            return format!("{FAKE_SQL}{}", serde_json::to_string(rows).unwrap());
        }
        let values = if rows.is_empty() {
            "(0, 0, 'none')".to_string()
        } else {
            rows.iter().map(|(v, i, dt)| format!("({v}, {i}, '{dt}')")).collect::<Vec<_>>().join(", ")
        };
        let empty = if rows.is_empty() { " WHERE false" } else { "" };
        format!(
            "SELECT CAST(v AS BIGINT) AS v, CAST(i AS BIGINT) AS i, CAST(dt AS VARCHAR) AS dt FROM (VALUES {values}) AS t(v, i, dt){empty}"
        )
    }

    /// Run `k` of the table: its rows, the partitions it replaces (`None`: the whole table).
    fn job(&self, k: u64, rows: &[Row], replaces: Option<Partitions>) -> Job {
        Job {
            model: ModelId::parse("silver.conformance_board").unwrap(),
            database: DB.into(),
            table: TABLE.into(),
            run_id: format!("r{k}"),
            version: format!("v2025010{}T000000000Z-{k:06x}", 1 + k % 9),
            now: instant("2025-01-01T00:00:00Z"),
            window_end: instant(&format!("{}T00:00:00Z", day(20 + k as u32 % 10))),
            kind: JobKind::Select {
                sql: self.sql(rows),
                partition_by: vec!["dt".into()],
                compression: "snappy".into(),
                replaces,
            },
            audits: Vec::new(),
            arrived: None,
        }
    }

    /// What a reader of the published table sees.
    async fn read(&self) -> Seen {
        if let Some(fake) = &self.fake {
            return fake.read();
        }
        let sql = format!("SELECT dt, count(*), sum(v) FROM {DB}.{TABLE} GROUP BY dt");
        let r = self.engine.query(&sql).await.unwrap();
        crate::common::rows(&r.batches)
            .into_iter()
            .map(|r| (r[0].clone(), (r[1].parse().unwrap(), r[2].parse().unwrap())))
            .collect()
    }

    /// Stages and completes run `k` as the runner does; returns its outcome and the steps
    /// it passed.
    async fn run(&self, k: u64, rows: &[Row], replaces: Option<Partitions>) -> (Outcome, Vec<Step>) {
        self.run_with(k, rows, replaces, false, &Stop::never()).await.unwrap()
    }

    async fn run_with(
        &self,
        k: u64,
        rows: &[Row],
        replaces: Option<Partitions>,
        allow_empty_window: bool,
        stop: &Stop,
    ) -> Result<(Outcome, Vec<Step>), EngineError> {
        let staged = self.engine.stage(&self.job(k, rows, replaces)).await?;
        self.complete(&staged, allow_empty_window, stop).await
    }

    async fn complete(
        &self,
        staged: &Staged,
        allow_empty_window: bool,
        stop: &Stop,
    ) -> Result<(Outcome, Vec<Step>), EngineError> {
        let steps = Mutex::new(Vec::new());
        let after = |s: Step| steps.lock().unwrap().push(s);
        let c = Completion {
            engine: self.engine.as_ref(),
            stop,
            allow_empty_window,
            clock: &self.clock,
            after: &after,
        };
        let r = strata::materialize::complete(&c, staged, async {}).await;
        let steps = steps.into_inner().unwrap();
        r.map(|(o, _)| (o, steps)).map_err(|f| f.error)
    }

    async fn versions(&self) -> TableVersions {
        self.lifecycle.table_versions(Layer::Silver, DB, TABLE).await.unwrap().expect("published")
    }
}

const PUBLISHED: [Step; 3] = [Step::Staged, Step::Audited, Step::Published];

/// Windows replace their partitions only: later partitions are kept, a past window run
/// again changes that window alone, a range that starts before the hot window starts a new
/// base generation and readers still see every partition, and a whole-table run replaces
/// everything.
async fn a_window_replaces_its_partitions_only(s: &Subject) {
    let n = 3;
    let (o, steps) = s.run(1, &rows(1, &[1, 2], n), Some(window(&[1, 2]))).await;
    assert_eq!((o, steps), (Outcome::Published(s.job(1, &[], None).version), PUBLISHED.to_vec()));
    assert_eq!(s.read().await, seen(&[(1, &[1, 2])], n));
    // The next window: day 1 leaves the window (into the base), day 3 is new.
    s.run(2, &rows(2, &[2, 3], n), Some(window(&[2, 3]))).await;
    assert_eq!(s.read().await, seen(&[(1, &[1]), (2, &[2, 3])], n));
    s.run(3, &rows(3, &[3, 4], n), Some(window(&[3, 4]))).await;
    assert_eq!(s.read().await, seen(&[(1, &[1]), (2, &[2]), (3, &[3, 4])], n));
    // A past window run again: that day only; the days after it are carried.
    let (o, _) = s.run(4, &rows(4, &[2], n), Some(window(&[2]))).await;
    assert!(matches!(o, Outcome::Published(_)), "{o:?}");
    assert_eq!(s.read().await, seen(&[(1, &[1]), (4, &[2]), (3, &[3, 4])], n));
    // Then the hot window moves on from the past window's version.
    s.run(5, &rows(5, &[4, 5], n), Some(window(&[4, 5]))).await;
    assert_eq!(s.read().await, seen(&[(1, &[1]), (4, &[2]), (3, &[3]), (5, &[4, 5])], n));
    // A range starting before the hot window (a new base generation).
    s.run(6, &rows(6, &[1, 2], n), Some(window(&[1, 2]))).await;
    assert_eq!(s.read().await, seen(&[(6, &[1, 2]), (3, &[3]), (5, &[4, 5])], n));
    s.run(7, &rows(7, &[5, 6], n), Some(window(&[5, 6]))).await;
    assert_eq!(s.read().await, seen(&[(6, &[1, 2]), (3, &[3]), (5, &[4]), (7, &[5, 6])], n));
    // A whole-table run replaces everything.
    s.run(8, &rows(8, &[9], n), None).await;
    assert_eq!(s.read().await, seen(&[(8, &[9])], n));
}

/// A window partition that held rows and would be emptied is refused (nothing changes)
/// unless asked, whether it is in the hot window or in the base.
async fn an_emptied_partition_is_refused_unless_asked(s: &Subject) {
    let n = 2;
    s.run(1, &rows(1, &[1, 2], n), Some(window(&[1, 2]))).await;
    s.run(2, &rows(2, &[3, 4], n), Some(window(&[3, 4]))).await;
    let before = s.read().await;
    // Day 4 (hot) and day 1 (in the base now) would lose their rows.
    for (k, days, keep) in [(3, [3u32, 4], 3u32), (4, [1, 2], 2)] {
        let (o, steps) = s.run(k, &rows(k, &[keep], n), Some(window(&days))).await;
        let Outcome::Refused(why) = &o else { panic!("run {k}: {o:?}") };
        let emptied = day(days.into_iter().find(|d| *d != keep).unwrap());
        assert!(why.contains(&emptied), "run {k} names the emptied partition: {why}");
        assert_eq!(steps, [Step::Staged], "refused before it was audited through");
        assert_eq!(s.read().await, before, "run {k} refused: nothing changed");
    }
    // Asked: the partition is emptied.
    let (o, _) = s.run_with(5, &rows(5, &[3], n), Some(window(&[3, 4])), true, &Stop::never()).await.unwrap();
    assert!(matches!(o, Outcome::Published(_)), "{o:?}");
    assert_eq!(s.read().await, seen(&[(1, &[1, 2]), (5, &[3])], n));
}

/// Two runs staged from the same published version: the first publish wins, the second
/// loses the compare-and-swap (a conflict: nothing changed), and a stop raised before the
/// publish publishes nothing.
async fn a_lost_swap_or_a_stop_changes_nothing(s: &Subject) {
    let n = 2;
    s.run(1, &rows(1, &[1], n), Some(window(&[1]))).await;
    let a = s.engine.stage(&s.job(2, &rows(2, &[1, 2], n), Some(window(&[1, 2])))).await.unwrap();
    let b = s.engine.stage(&s.job(3, &rows(3, &[1, 2], n), Some(window(&[1, 2])))).await.unwrap();
    assert_eq!(a.expected, b.expected, "both staged from the same version");
    let (o, _) = s.complete(&a, false, &Stop::never()).await.unwrap();
    assert!(matches!(o, Outcome::Published(_)), "{o:?}");
    let (o, steps) = s.complete(&b, false, &Stop::never()).await.unwrap();
    assert!(matches!(o, Outcome::Conflict(_)), "{o:?}");
    assert_eq!(steps, [Step::Staged, Step::Audited], "a lost publish never reports Published");
    assert_eq!(s.read().await, seen(&[(2, &[1, 2])], n));
    assert_eq!(s.versions().await.current.version, a.job.version);

    let (raise, stop) = Stop::new();
    let c = s.engine.stage(&s.job(4, &rows(4, &[2], n), Some(window(&[2])))).await.unwrap();
    raise.send(true).unwrap();
    let stopped = s.complete(&c, false, &stop).await;
    assert!(matches!(stopped, Err(EngineError::Stopped)), "{stopped:?}");
    // A stop may have cancelled the engine's statements for good (Athena refuses new ones
    // once stopped, as a process on SIGTERM must): what is published is read from the
    // catalog, not by a query.
    assert_eq!(s.versions().await.current.version, a.job.version, "a stopped run publishes nothing");
    assert!(!s.engine.was_published(&c.job).await.unwrap());
}

/// A backfill writes its windows apart (`stage_part`, one unit each, any order, a window
/// written twice replaces its first attempt) and seals them into one version: the range's
/// partitions from its windows, every other from the published version, base included;
/// a sealed range that would empty a partition is refused.
async fn a_backfill_seals_its_windows_into_one_version(s: &Subject) {
    let n = 2;
    s.run(1, &rows(1, &[1, 2], n), Some(window(&[1, 2]))).await;
    s.run(2, &rows(2, &[3, 4], n), Some(window(&[3, 4]))).await;
    // Days 1..3, each window a day, day 2 written twice (an interrupted first attempt).
    let range = window(&[1, 2, 3]);
    let part = |k: u64, d: u32| s.job(k, &rows(k, &[d], n), Some(window(&[d])));
    let mut template = part(9, 1);
    for (d, rows_v) in [(3, 9), (2, 7), (1, 9), (2, 9)] {
        let mut job = part(rows_v, d);
        job.version = template.version.clone();
        job.run_id = template.run_id.clone();
        s.engine.stage_part(&job, &Partitions::new([vec![day(d)]])).await.unwrap();
    }
    assert!(!s.engine.was_published(&template).await.unwrap());
    template.kind = s.job(9, &[], Some(range.clone())).kind;
    let staged = s.engine.seal(&template, &range).await.unwrap();
    let (o, _) = s.complete(&staged, false, &Stop::never()).await.unwrap();
    assert_eq!(o, Outcome::Published(template.version.clone()));
    assert!(s.engine.was_published(&template).await.unwrap());
    assert_eq!(s.read().await, seen(&[(9, &[1, 2, 3]), (2, &[4])], n), "one version: the range and day 4");

    // The hot window moves on: days 1..4 are in the base now.
    s.run(11, &rows(11, &[4, 5], n), Some(window(&[4, 5]))).await;
    s.run(12, &rows(12, &[5, 6], n), Some(window(&[5, 6]))).await;
    let before = s.read().await;
    assert_eq!(before, seen(&[(9, &[1, 2, 3]), (11, &[4]), (12, &[5, 6])], n));
    // A backfill of days 1..2 whose day 1 has no rows any more: refused, nothing changed.
    let backfill = async |k: u64, days: &[(u32, bool)]| {
        let mut job = s.job(k, &[], None);
        for (d, has_rows) in days {
            let r = if *has_rows { rows(k, &[*d], n) } else { Vec::new() };
            job.kind = s.job(k, &r, Some(window(&[*d]))).kind;
            s.engine.stage_part(&job, &Partitions::new([vec![day(*d)]])).await.unwrap();
        }
        let all: Vec<u32> = days.iter().map(|(d, _)| *d).collect();
        job.kind = s.job(k, &[], Some(window(&all))).kind;
        let staged = s.engine.seal(&job, &window(&all)).await.unwrap();
        s.complete(&staged, false, &Stop::never()).await.unwrap().0
    };
    let o = backfill(13, &[(1, false), (2, true)]).await;
    let Outcome::Refused(why) = &o else { panic!("{o:?}") };
    assert!(why.contains(&day(1)), "{why}");
    assert_eq!(s.read().await, before);
    // A backfill of a day in the base: that day only; the base's days after it are kept.
    let o = backfill(14, &[(2, true)]).await;
    assert!(matches!(o, Outcome::Published(_)), "{o:?}");
    assert_eq!(s.read().await, seen(&[(9, &[1, 3]), (14, &[2]), (11, &[4]), (12, &[5, 6])], n));
    // A backfill of the last day: the days before it (its base, now) are kept once.
    let o = backfill(15, &[(6, true)]).await;
    assert!(matches!(o, Outcome::Published(_)), "{o:?}");
    assert_eq!(s.read().await, seen(&[(9, &[1, 3]), (14, &[2]), (11, &[4]), (12, &[5]), (15, &[6])], n));
    // And the hot window moves on from a sealed version.
    s.run(16, &rows(16, &[6, 7], n), Some(window(&[6, 7]))).await;
    assert_eq!(s.read().await, seen(&[(9, &[1, 3]), (14, &[2]), (11, &[4]), (12, &[5]), (16, &[6, 7])], n));
}

/// Rollback publishes the previous version with the same compare-and-swap; gc keeps the
/// retained versions and every directory they read (base generations and carried
/// partitions included), so what readers see is the same before and after it, and a
/// rollback to a kept version still reads whole after gc.
async fn rollback_and_gc_keep_what_readers_read(s: &Subject) {
    let n = 2;
    let mut seen_after = Vec::new();
    for (k, days) in
        [(1u64, &[1u32, 2][..]), (2, &[2, 3]), (3, &[3, 4]), (4, &[2]), (5, &[4, 5]), (6, &[5, 6])]
    {
        s.run(k, &rows(k, days, n), Some(window(days))).await;
        seen_after.push(s.read().await);
    }
    let retention = Retention { versions: 2, orphan_grace: chrono::Duration::zero() };
    let (db, layer) = (DB.to_string(), Layer::Silver);
    let rolled = lifecycle::rollback(
        s.lifecycle.as_ref(),
        (layer, DB, TABLE),
        None,
        retention,
        "rollback-1",
        "2025-01-10T00:00:00.000Z",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rolled, s.job(5, &[], None).version);
    assert_eq!(s.read().await, seen_after[4], "rolled back to run 5's version");
    let tv = s.versions().await;
    assert_eq!(tv.current.version, rolled);

    let tables = [GcTable { layer, database: db, table: TABLE.into(), leased: false, in_flight: Vec::new() }];
    let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    let items = lifecycle::gc(s.lifecycle.as_ref(), &tables, retention, now, false).await.unwrap();
    let deleted: BTreeSet<&str> =
        items.iter().filter(|i| i.deletes_dir).map(|i| i.version.as_str()).collect();
    assert!(!deleted.is_empty(), "versions past retention are collected: {items:?}");
    for k in [5, 6] {
        assert!(!deleted.contains(s.job(k, &[], None).version.as_str()), "kept: {k}");
    }
    assert_eq!(s.read().await, seen_after[4], "gc changed nothing readers see");
    // Forward again to the newest kept version: whole.
    lifecycle::rollback(
        s.lifecycle.as_ref(),
        (layer, DB, TABLE),
        Some(&s.job(6, &[], None).version),
        retention,
        "rollback-2",
        "2025-01-10T00:00:00.000Z",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(s.read().await, seen_after[5]);
    // And the hot window moves on from there.
    s.run(7, &rows(7, &[6, 7], n), Some(window(&[6, 7]))).await;
    let mut expected = seen_after[5].clone();
    expected.extend(seen(&[(7, &[6, 7])], n));
    assert_eq!(s.read().await, expected);
}

/// A near-real-time run reads only the source objects that arrived since the published
/// version and keeps that version's rows of its window; when its window starts before the
/// published one's (another base generation) it reads its whole window. What it read is
/// probed by overwriting an object already read: a run that reads by arrival does not see
/// the change, one that reads its window does. On Athena the source is limited with the
/// `"$path"` hidden column, the object's full `s3://` URI (Trino's Hive connector,
/// `HiveColumnHandle.PATH_COLUMN_NAME`; Athena's SELECT reference,
/// https://docs.aws.amazon.com/athena/latest/ug/select.html, "$path"): the stand-in
/// executes that predicate over the objects it holds.
async fn a_near_real_time_run_reads_what_arrived_and_keeps_what_it_read(s: &Subject) {
    s.publish_source().await;
    s.land("a", 1, &rows(1, &[1], 2)).await;
    s.land("b", 2, &rows(1, &[2], 2)).await;
    assert!(matches!(s.tick(1, &[1, 2]).await, Outcome::Published(_)));
    assert_eq!(s.read().await, seen(&[(1, &[1, 2])], 2));
    // c arrives in day 2; a is overwritten (a probe: already read, so not read again).
    s.land("c", 2, &rows(2, &[2], 3)).await;
    s.land("a", 1, &rows(7, &[1], 4)).await;
    assert!(matches!(s.tick(2, &[1, 2]).await, Outcome::Published(_)));
    let mut expected = seen(&[(1, &[1])], 2);
    expected.insert(day(2), (5, 2 + 2 * 3));
    assert_eq!(s.read().await, expected, "day 2 gained c's rows; day 1 kept what was read");
    // The window moves on: d arrives in day 3; day 2 keeps its rows, day 1 leaves.
    s.land("d", 3, &rows(3, &[3], 1)).await;
    assert!(matches!(s.tick(3, &[2, 3]).await, Outcome::Published(_)));
    expected.insert(day(3), (1, 3));
    assert_eq!(s.read().await, expected);
    // Nothing arrived: the same rows.
    assert!(matches!(s.tick(4, &[2, 3]).await, Outcome::Published(_)));
    assert_eq!(s.read().await, expected);
    // A past window (before the published one's): its whole window, as it is now.
    assert!(matches!(s.tick(5, &[1]).await, Outcome::Published(_)));
    expected.insert(day(1), (4, 7 * 4));
    assert_eq!(s.read().await, expected, "day 1 read again, whole");
}

/// The run checks (`engine::checks`) hold on every backend: an incremental result outside
/// its window, or with other columns than the published ones, is refused before anything
/// is published.
async fn the_run_checks_refuse_what_may_not_be_published(s: &Subject) {
    let n = 2;
    s.run(1, &rows(1, &[1], n), Some(window(&[1]))).await;
    let outside = s.engine.stage(&s.job(2, &rows(2, &[1, 2], n), Some(window(&[1])))).await;
    let e = outside.expect_err("a row outside the window").to_string();
    assert!(e.contains(&day(2)) && e.contains("outside the run's window"), "{e}");
    assert_eq!(s.read().await, seen(&[(1, &[1])], n));
}

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod on_the_fake_store {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(&super::Subject::fake()).await;
            })*
        }
        mod on_the_local_engine {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(&super::Subject::local()).await;
            })*
        }
        mod on_athena {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario(&super::Subject::athena().await).await;
            })*
        }
    };
}

conformance!(
    a_window_replaces_its_partitions_only,
    an_emptied_partition_is_refused_unless_asked,
    a_lost_swap_or_a_stop_changes_nothing,
    a_backfill_seals_its_windows_into_one_version,
    rollback_and_gc_keep_what_readers_read,
    the_run_checks_refuse_what_may_not_be_published,
    a_near_real_time_run_reads_what_arrived_and_keeps_what_it_read,
);

// ---------------------------------------------------------------------------------------
// The fake: tables in memory, behind the primitives only.

/// What the fake's "SQL" starts with: the rows that follow, as JSON.
const FAKE_SQL: &str = "-- fake rows\n";

/// A partition's data: the files it reads, each `(version directory, partition)` whose rows
/// are in [`Memory::files`].
type Files = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct Record {
    partitions: Vec<StoredPartition<Files>>,
    layout: Option<Layout>,
    published: bool,
}

#[derive(Debug, Clone)]
struct Head {
    current: String,
    previous: Option<String>,
}

#[derive(Default)]
struct Memory {
    head: Option<Head>,
    history: Vec<Published>,
    versions: BTreeMap<String, Record>,
    /// Base generations: their partitions.
    bases: BTreeMap<String, Vec<StoredPartition<Files>>>,
    /// Rows by version directory, then partition (a backfill's windows under `<v>/_parts`).
    files: BTreeMap<String, BTreeMap<String, Vec<Row>>>,
    recorded_objects: BTreeMap<String, Vec<String>>,
    /// Source objects: their day and rows.
    sources: BTreeMap<String, (String, Vec<Row>)>,
}

#[derive(Default)]
struct Fake(Mutex<Memory>);

const COLUMNS: [(&str, &str); 3] = [("v", "bigint"), ("i", "bigint"), ("dt", "string")];

fn columns() -> Vec<(String, String)> {
    COLUMNS.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect()
}

/// What the fake's "SQL" returns: its rows, or the rows of the source objects of some days
/// (limited to `only`).
fn fake_rows(job: &Job, m: &Memory, only: Option<&[String]>) -> Result<Vec<Row>, EngineError> {
    let JobKind::Select { sql, .. } = &job.kind else {
        return Err(EngineError::Query("not a SELECT".into()));
    };
    let json = sql
        .strip_prefix(FAKE_SQL)
        .ok_or_else(|| EngineError::Query(format!("the fake runs no SQL: {sql}")))?;
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| EngineError::Query(e.to_string()))?;
    let Some(days) = value.get("source") else {
        return serde_json::from_value(value).map_err(|e| EngineError::Query(e.to_string()));
    };
    let days: Vec<String> =
        serde_json::from_value(days.clone()).map_err(|e| EngineError::Query(e.to_string()))?;
    Ok(m.sources
        .iter()
        .filter(|(o, (d, _))| days.contains(d) && only.is_none_or(|only| only.contains(o)))
        .flat_map(|(_, (d, rows))| rows.iter().map(|(v, i, _)| (*v, *i, d.clone())))
        .collect())
}

impl Memory {
    fn rows_of(&self, files: &Files) -> u64 {
        files
            .iter()
            .map(|(dir, p)| self.files.get(dir).and_then(|f| f.get(p)).map_or(0, |r| r.len() as u64))
            .sum()
    }

    fn partition(&self, values: String, files: Files) -> StoredPartition<Files> {
        StoredPartition { rows: Some(self.rows_of(&files)), values: vec![values], handle: files }
    }

    /// Every partition a version reads: its base's before its window, then its own.
    fn visible(&self, version: &str) -> Vec<StoredPartition<Files>> {
        let r = &self.versions[version];
        let mut out: Vec<_> = match &r.layout {
            Some(l) => self.bases[&l.base].iter().filter(|p| p.values < l.from).cloned().collect(),
            None => Vec::new(),
        };
        out.extend(
            r.partitions.iter().filter(|p| r.layout.as_ref().is_none_or(|l| p.values >= l.from)).cloned(),
        );
        out
    }

    fn stored(&self, version: &str) -> VersionOf<Fake> {
        StoredVersion { definition: (), columns: columns(), partitions: self.visible(version) }
    }

    /// Write `rows` under directory `dir` (replacing what it held for their partitions).
    fn write(&mut self, dir: &str, rows: Vec<Row>) -> Vec<StoredPartition<Files>> {
        let mut by: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for r in rows {
            by.entry(r.2.clone()).or_default().push(r);
        }
        let files = self.files.entry(dir.to_string()).or_default();
        let keys: Vec<String> = by.keys().cloned().collect();
        files.extend(by);
        keys.into_iter().map(|k| self.partition(k.clone(), vec![(dir.to_string(), k)])).collect()
    }
}

impl Fake {
    fn read(&self) -> Seen {
        let m = self.0.lock().unwrap();
        let Some(head) = &m.head else { return Seen::new() };
        let mut out = Seen::new();
        for p in m.visible(&head.current) {
            let rows: Vec<&Row> = p
                .handle
                .iter()
                .flat_map(|(dir, k)| m.files.get(dir).and_then(|f| f.get(k)).into_iter().flatten())
                .collect();
            if !rows.is_empty() {
                out.insert(p.values[0].clone(), (rows.len() as u64, rows.iter().map(|r| r.0).sum()));
            }
        }
        out
    }

    fn swap(
        &self,
        expected: Option<&str>,
        version: &str,
        by: &str,
        now: &str,
        leaving: bool,
    ) -> Result<(), EngineError> {
        let mut m = self.0.lock().unwrap();
        let current = m.head.as_ref().map(|h| h.current.clone());
        if current.as_deref() != expected {
            return Err(EngineError::Conflict(format!(
                "{DB}.{TABLE}: expected {} but {} is current",
                expected.unwrap_or("(none)"),
                current.as_deref().unwrap_or("(none)")
            )));
        }
        // Layered: the partitions that left the window since the current version go into
        // the base it shares with this one, with the swap.
        if leaving && let Some(cur) = &current {
            let (c, n) = (m.versions[cur].clone(), m.versions[version].clone());
            if let (Some(cl), Some(nl)) = (&c.layout, &n.layout)
                && cl.base == nl.base
            {
                let gone =
                    strata::materialize::layered::leaving(c.partitions, |p| &p.values, &cl.from, &nl.from);
                let base = m.bases.entry(nl.base.clone()).or_default();
                base.retain(|p| !gone.iter().any(|g| g.values == p.values));
                base.extend(gone);
                base.sort_by(|a, b| a.values.cmp(&b.values));
            }
        }
        m.versions.get_mut(version).expect("recorded").published = true;
        m.head = Some(Head { current: version.to_string(), previous: current });
        m.history.insert(0, Published { version: version.into(), published_at: now.into(), by: by.into() });
        Ok(())
    }
}

#[async_trait]
impl TableStore for Fake {
    type Definition = ();
    type Partition = Files;

    async fn published(&self, _: &Job) -> Result<(Option<SwapToken>, Option<VersionOf<Self>>), EngineError> {
        let m = self.0.lock().unwrap();
        Ok(match &m.head {
            Some(h) => (Some(SwapToken::new(&h.current)), Some(m.stored(&h.current))),
            None => (None, None),
        })
    }

    async fn parts_written(&self, job: &Job) -> Result<Option<VersionOf<Self>>, EngineError> {
        let m = self.0.lock().unwrap();
        let dir = format!("{}/_parts", job.version);
        let Some(files) = m.files.get(&dir) else { return Ok(None) };
        let partitions =
            files.keys().map(|k| m.partition(k.clone(), vec![(dir.clone(), k.clone())])).collect();
        Ok(Some(StoredVersion { definition: (), columns: columns(), partitions }))
    }

    async fn record_staged(&self, job: &Job, version: VersionOf<Self>) -> Result<(), EngineError> {
        let mut m = self.0.lock().unwrap();
        m.versions.insert(
            job.version.clone(),
            Record { partitions: version.partitions, layout: None, published: false },
        );
        Ok(())
    }
}

#[async_trait]
impl LayeredStore for Fake {
    async fn current_layered(&self, _: &Job) -> Result<Option<Current<Files>>, EngineError> {
        let m = self.0.lock().unwrap();
        let Some(h) = &m.head else { return Ok(None) };
        let r = &m.versions[&h.current];
        let partitions = r
            .partitions
            .iter()
            .filter(|p| r.layout.as_ref().is_none_or(|l| p.values >= l.from))
            .cloned()
            .collect();
        Ok(Some(Current {
            version: h.current.clone(),
            columns: columns(),
            layout: r.layout.clone(),
            partitions,
        }))
    }

    async fn base_partitions(
        &self,
        _: &Job,
        base: &str,
        before: &[String],
    ) -> Result<Vec<StoredPartition<Files>>, EngineError> {
        let m = self.0.lock().unwrap();
        Ok(m.bases
            .get(base)
            .into_iter()
            .flatten()
            .filter(|p| p.values.as_slice() < before)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl StagingStore for Fake {
    async fn token(&self, _: &Job) -> Result<Option<SwapToken>, EngineError> {
        Ok(self.0.lock().unwrap().head.as_ref().map(|h| SwapToken::new(&h.current)))
    }

    async fn source_objects(
        &self,
        _: &Job,
        _: &ArrivedSource,
        window: &Partitions,
    ) -> Result<Option<Vec<String>>, EngineError> {
        let m = self.0.lock().unwrap();
        let inside = |d: &String| window.contains(std::slice::from_ref(d));
        Ok(Some(m.sources.iter().filter(|(_, (d, _))| inside(d)).map(|(o, _)| o.clone()).collect()))
    }

    async fn recorded_objects(
        &self,
        _: &Job,
        version: &str,
    ) -> Result<Option<BTreeSet<String>>, EngineError> {
        let m = self.0.lock().unwrap();
        Ok(m.recorded_objects.get(version).map(|o| o.iter().cloned().collect()))
    }

    async fn write_select(
        &self,
        job: &Job,
        only: Option<&[String]>,
    ) -> Result<(VersionOf<Self>, StepStats), EngineError> {
        let mut m = self.0.lock().unwrap();
        let rows = fake_rows(job, &m, only)?;
        let stats = StepStats { rows: rows.len() as u64, ..StepStats::default() };
        let partitions = m.write(&job.version, rows);
        Ok((StoredVersion { definition: (), columns: columns(), partitions }, stats))
    }

    async fn lend(
        &self,
        _: &Job,
        _: &VersionOf<Self>,
        lent: StoredPartition<Files>,
        own: Option<StoredPartition<Files>>,
    ) -> Result<StoredPartition<Files>, EngineError> {
        let mut files = own.map(|p| p.handle).unwrap_or_default();
        files.extend(lent.handle);
        Ok(self.0.lock().unwrap().partition(lent.values[0].clone(), files))
    }

    async fn record_objects(&self, job: &Job, listed: &[String]) -> Result<(), EngineError> {
        self.0.lock().unwrap().recorded_objects.insert(job.version.clone(), listed.to_vec());
        Ok(())
    }

    async fn record_run(
        &self,
        job: &Job,
        version: VersionOf<Self>,
        layered: Option<stage::Layered<Files>>,
    ) -> Result<(), EngineError> {
        let mut m = self.0.lock().unwrap();
        let mut partitions = version.partitions;
        let layout = layered.map(|l| {
            partitions.extend(l.carried);
            let base = match l.base {
                Base::Current(base) => base,
                Base::New(parts) => {
                    m.bases.insert(job.version.clone(), parts);
                    job.version.clone()
                }
            };
            Layout { base, from: l.from }
        });
        m.versions.insert(job.version.clone(), Record { partitions, layout, published: false });
        Ok(())
    }
}

#[async_trait]
impl Engine for Fake {
    async fn stage(&self, job: &Job) -> Result<Staged, EngineError> {
        stage::select(self, job).await
    }

    /// Writes the window's rows under `<version>/_parts`, replacing its kept partitions.
    async fn stage_part(&self, job: &Job, keep: &Partitions) -> Result<StepStats, EngineError> {
        let select = checks::backfill_select(job)?;
        let rows = fake_rows(job, &self.0.lock().unwrap(), None)?;
        checks::within_window(
            select.partition_by,
            select.window,
            rows.iter().map(|r| std::slice::from_ref(&r.2)),
        )?;
        let kept: Vec<Row> = rows.into_iter().filter(|r| keep.iter().any(|k| k[0] == r.2)).collect();
        let mut m = self.0.lock().unwrap();
        let dir = format!("{}/_parts", job.version);
        if let Some(files) = m.files.get_mut(&dir) {
            files.retain(|p, _| !keep.iter().any(|k| &k[0] == p));
        }
        let n = kept.len() as u64;
        m.write(&dir, kept);
        Ok(StepStats { rows: n, ..StepStats::default() })
    }

    async fn seal(&self, job: &Job, replaces: &Partitions) -> Result<Staged, EngineError> {
        strata::materialize::seal(self, job, replaces).await
    }

    /// Audits are SQL; the fake has none to run.
    async fn audit(&self, _: &Staged) -> Result<(), EngineError> {
        Ok(())
    }

    async fn publish(&self, staged: &Staged, now: &str) -> Result<(), EngineError> {
        let job = &staged.job;
        self.swap(staged.expected.as_ref().map(SwapToken::as_str), &job.version, &job.run_id, now, true)
    }

    async fn query(&self, _: &str) -> Result<QueryResult, EngineError> {
        Err(EngineError::Query("the fake runs no SQL".into()))
    }

    async fn was_published(&self, job: &Job) -> Result<bool, EngineError> {
        Ok(self.0.lock().unwrap().versions.get(&job.version).is_some_and(|r| r.published))
    }
}

#[async_trait]
impl Lifecycle for Fake {
    async fn managed_tables(&self, _: &[String]) -> Result<Vec<(String, String)>, EngineError> {
        Ok(vec![(DB.into(), TABLE.into())])
    }

    async fn table_versions(
        &self,
        layer: Layer,
        db: &str,
        table: &str,
    ) -> Result<Option<TableVersions>, EngineError> {
        let m = self.0.lock().unwrap();
        let Some(head) = &m.head else { return Ok(None) };
        let mut history: Vec<Published> = Vec::new();
        for p in &m.history {
            if !history.iter().any(|h| h.version == p.version) {
                history.push(p.clone());
            }
        }
        let dirs: BTreeSet<String> =
            m.files.keys().map(|d| d.split('/').next().unwrap_or_default().to_string()).collect();
        Ok(Some(TableVersions {
            layer,
            database: db.into(),
            table: table.into(),
            current: history.first().cloned().expect("published"),
            previous: head.previous.clone(),
            history,
            recorded: m.versions.keys().map(|v| Recorded { version: v.clone(), record: v.clone() }).collect(),
            dirs: dirs.into_iter().map(|name| StoredDir { name, bytes: None }).collect(),
            rows: None,
            bytes: None,
        }))
    }

    async fn dirs_read_by(
        &self,
        _: &TableVersions,
        version: &Recorded,
    ) -> Result<BTreeSet<String>, EngineError> {
        let m = self.0.lock().unwrap();
        let r = &m.versions[&version.version];
        let mut parts = r.partitions.clone();
        if let Some(l) = &r.layout {
            parts.extend(m.bases[&l.base].iter().filter(|p| p.values < l.from).cloned());
        }
        let dirs = parts
            .iter()
            .flat_map(|p| &p.handle)
            .map(|(d, _)| d.split('/').next().unwrap_or_default().to_string());
        Ok(dirs.chain(std::iter::once(version.version.clone())).collect())
    }

    async fn republish(
        &self,
        tv: &TableVersions,
        version: &str,
        run_id: &str,
        now: &str,
    ) -> Result<(), EngineError> {
        self.swap(Some(&tv.current.version), version, run_id, now, false)
    }

    async fn delete_dir(&self, dir: &lifecycle::VersionDir) -> Result<u64, EngineError> {
        let mut m = self.0.lock().unwrap();
        m.files.retain(|d, _| d.split('/').next() != Some(dir.version()));
        Ok(0)
    }

    async fn forget(&self, _: &TableVersions, record: &Recorded) -> Result<(), EngineError> {
        let mut m = self.0.lock().unwrap();
        m.versions.remove(&record.record);
        Ok(())
    }

    async fn published_columns(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<Vec<(String, String)>>, EngineError> {
        Ok(self.0.lock().unwrap().head.as_ref().map(|_| columns()))
    }

    async fn written_at(&self, _: &TableVersions, _: &str) -> Result<Option<DateTime<Utc>>, EngineError> {
        Ok(None)
    }
}
