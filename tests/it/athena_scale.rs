//! A year of 5-minute publishes on Athena: the Glue work of an incremental run depends on
//! the partitions it writes, not on the table's age. An incremental model's view reads a
//! base table (each partition registered once, when it leaves the hot window) before the
//! window, and the run's own table for the window; a run registers only the partitions
//! that left the window since the last publish, then swaps the view.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_glue::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_glue::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_glue::error::BoxError;
use aws_sdk_glue::types::{PartitionInput, StorageDescriptor};
use strata::athena::query::QueryConfig;
use strata::athena::{AthenaEngine, Clients};
use strata::config::Storage;
use strata::engine::{Engine, Job, JobKind};
use strata::ids::ModelId;

use crate::athena::{StandIn, provision};

/// Counts the Glue operations strata calls (by `X-Amz-Target`).
#[derive(Debug, Clone, Default)]
struct GlueCalls(Arc<Mutex<BTreeMap<String, usize>>>);

impl Intercept for GlueCalls {
    fn name(&self) -> &'static str {
        "GlueCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(target) = context.request().headers().get("x-amz-target") {
            let op = target.trim_start_matches("AWSGlue.").to_string();
            *self.0.lock().unwrap().entry(op).or_default() += 1;
        }
        Ok(())
    }
}

impl GlueCalls {
    fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

const DAY: &str = "2025-11-06";

/// Version `k` of `silver.facts`: one row per hour of its window (hours `hour - 1` and
/// `hour` on `DAY`), `v = k`.
fn job(k: u32, hour: u32) -> Job {
    let day = chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap();
    job_at(k as usize, day.and_hms_opt(hour, 0, 0).unwrap())
}

async fn tick(engine: &AthenaEngine, k: u32, hour: u32) {
    let staged = engine.stage(&job(k, hour)).await.unwrap_or_else(|e| panic!("version {k}: {e}"));
    engine.audit(&staged).await.unwrap();
    engine.publish(&staged, &format!("{DAY}T{hour:02}:00:01.000Z")).await.unwrap();
}

/// Partitions of every table of the Silver database.
async fn partition_count(clients: &Clients) -> usize {
    let tables = clients.glue.get_tables().database_name("rastup_silver").send().await.unwrap();
    let mut n = 0;
    for t in tables.table_list() {
        let mut pages = clients
            .glue
            .get_partitions()
            .database_name("rastup_silver")
            .table_name(t.name())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            n += page.unwrap().partitions().len();
        }
    }
    n
}

/// Publishes a table whose base holds `existing` hourly partitions (as a table of that
/// age has), then one more incremental run; returns that run's Glue calls and the
/// partition objects it created, and what concurrent readers saw during it.
async fn one_run_on_a_table_of_age(
    existing: usize,
) -> (BTreeMap<String, usize>, usize, Vec<(i64, i64, i64)>) {
    let standin = StandIn::start();
    let plain = standin.clients();
    provision(&plain, false).await;
    let calls = GlueCalls::default();
    let glue =
        aws_sdk_glue::Client::from_conf(plain.glue.config().to_builder().interceptor(calls.clone()).build());
    let clients = Clients { athena: plain.athena.clone(), glue, s3: plain.s3.clone() };
    let config = QueryConfig { workgroup: "strata".into(), ..QueryConfig::default() };
    let engine = Arc::new(AthenaEngine::with_config(
        clients,
        Storage::S3 { bucket: "rastup-data".into(), prefix: String::new() },
        "rastup_silver".into(),
        config,
    ));
    tick(&engine, 1, 11).await;
    // A year of history: `existing` hours before the window, in the base.
    let view = plain.glue.get_table().database_name("rastup_silver").name("facts").send().await.unwrap();
    let base = view.table().unwrap().parameters().unwrap()["strata_base_table"].clone();
    let start = chrono::NaiveDate::from_ymd_opt(2025, 11, 6).unwrap().and_hms_opt(10, 0, 0).unwrap();
    let inputs: Vec<PartitionInput> = (0..existing)
        .map(|i| {
            let t = start - chrono::Duration::hours(i as i64);
            let (dt, hour) = (t.format("%Y-%m-%d").to_string(), t.format("%H").to_string());
            PartitionInput::builder()
                .values(dt.clone())
                .values(hour.clone())
                .storage_descriptor(
                    StorageDescriptor::builder()
                        .location(format!(
                            "s3://rastup-data/silver/facts/v20241106T000000000Z-000000/dt={dt}/hour={hour}/"
                        ))
                        .build(),
                )
                .build()
        })
        .collect();
    for chunk in inputs.chunks(100) {
        let out = plain
            .glue
            .batch_create_partition()
            .database_name("rastup_silver")
            .table_name(&base)
            .set_partition_input_list(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        assert!(out.errors().is_empty(), "{:?}", out.errors());
    }
    tick(&engine, 2, 12).await;

    // Readers query hours 12-14 while version 3 is staged and published: each sees version
    // 2 (hour 12, written by run 2) or version 3 (hours 12 and 13, written by run 3), never
    // a mix or a gap.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (engine, stop) = (engine.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let r = engine
                    .query(&format!(
                        "SELECT count(*), min(v), max(v) FROM rastup_silver.facts WHERE dt = '{DAY}' AND hour IN ('12', '13', '14')"
                    ))
                    .await
                    .unwrap();
                let row = crate::common::rows(&r.batches).remove(0);
                let n = |i: usize| row[i].parse::<i64>().unwrap();
                seen.push((n(0), n(1), n(2)));
            }
            seen
        })
    };
    let before = partition_count(&plain).await;
    calls.take();
    tick(&engine, 3, 13).await;
    let glue_calls = calls.take();
    let created = partition_count(&plain).await - before;
    stop.store(true, Ordering::SeqCst);
    let mut seen = reader.await.unwrap();
    // One more read after the publish: the new version.
    let r = engine
        .query(&format!("SELECT count(*), min(v), max(v) FROM rastup_silver.facts WHERE dt = '{DAY}' AND hour IN ('12', '13', '14')"))
        .await
        .unwrap();
    let row = crate::common::rows(&r.batches).remove(0);
    seen.push((row[0].parse().unwrap(), row[1].parse().unwrap(), row[2].parse().unwrap()));
    (glue_calls, created, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_incremental_publish_does_the_same_glue_work_on_a_new_table_and_on_a_year_old_one() {
    let (young_calls, young_created, young_seen) = one_run_on_a_table_of_age(10).await;
    let (old_calls, old_created, old_seen) = one_run_on_a_table_of_age(8_760).await;
    eprintln!("Glue calls of one incremental run: {young_calls:?}; partitions created: {young_created}");
    assert_eq!(old_calls, young_calls, "Glue calls of one run, 10 vs 8,760 partitions");
    assert_eq!(old_created, young_created, "partition objects created by one run");
    // The run's own table (its 2 window hours, registered by Athena's CTAS) and the one
    // hour that left the window, registered once in the base.
    assert_eq!(young_created, 3);
    let total: usize = young_calls.values().sum();
    assert!(total <= 20, "a handful of calls, whatever the age: {young_calls:?}");
    for seen in [young_seen, old_seen] {
        assert!(seen.len() >= 2, "the readers ran: {seen:?}");
        assert!(seen.iter().all(|s| *s == (1, 2, 2) || *s == (2, 3, 3)), "old or new, never a mix: {seen:?}");
        assert_eq!(seen.last(), Some(&(2, 3, 3)), "{seen:?}");
    }
}

/// A week of ticks every three hours, gc after each day: version tables, base tables and
/// partitions stay within the bound (kept versions' run tables, one base generation, the
/// hours themselves), and every hour written is still read through the view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_ticks_with_daily_gc_stays_bounded_and_keeps_everything_read() {
    let standin = StandIn::start();
    let clients = standin.clients();
    provision(&clients, false).await;
    let config = QueryConfig { workgroup: "strata".into(), ..QueryConfig::default() };
    let engine = AthenaEngine::with_config(
        clients.clone(),
        Storage::S3 { bucket: "rastup-data".into(), prefix: String::new() },
        "rastup_silver".into(),
        config,
    );
    let retention = strata::config::Retention { versions: 3, orphan_grace: chrono::Duration::hours(1) };
    let start = chrono::NaiveDate::from_ymd_opt(2025, 11, 1).unwrap().and_hms_opt(3, 0, 0).unwrap();
    let tables = [strata::lifecycle::GcTable {
        layer: strata::ids::Layer::Silver,
        database: "rastup_silver".into(),
        table: "facts".into(),
        leased: false,
        in_flight: Vec::new(),
    }];
    let mut ticks = 0;
    for day in 0..7 {
        for slot in 0..8 {
            let t = start + chrono::Duration::hours(24 * day + 3 * slot);
            ticks += 1;
            let staged = engine.stage(&job_at(ticks, t)).await.unwrap();
            engine
                .publish(&staged, &format!("{}", t.and_utc().format("%Y-%m-%dT%H:%M:%S.000Z")))
                .await
                .unwrap();
        }
        let now = (start + chrono::Duration::hours(24 * day + 22)).and_utc();
        strata::lifecycle::gc(&engine, &tables, retention, now, false).await.unwrap();
        let names: Vec<String> = clients
            .glue
            .get_tables()
            .database_name("rastup_silver")
            .send()
            .await
            .unwrap()
            .table_list()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        let run_tables = names.iter().filter(|n| n.starts_with("facts__v")).count();
        let bases = names.iter().filter(|n| n.starts_with("facts__base_")).count();
        assert!(run_tables <= 3, "day {day}: at most the 3 kept versions' run tables: {names:?}");
        assert_eq!(bases, 1, "day {day}: one base generation: {names:?}");
        let partitions = partition_count(&clients).await;
        assert!(partitions <= 2 * ticks + 2 * 3, "day {day}: {partitions} partitions for {ticks} ticks");
        // Every hour written is read: 2 per tick.
        let r = engine.query("SELECT count(*), count(DISTINCT v) FROM rastup_silver.facts").await.unwrap();
        let row = crate::common::rows(&r.batches).remove(0);
        assert_eq!(row, [(2 * ticks).to_string(), ticks.to_string()], "day {day}: every hour still reads");
    }
}

/// Version `k` of `silver.facts` for a tick at `t`: one row for each of its window's hours.
fn job_at(k: usize, t: chrono::NaiveDateTime) -> Job {
    let hours = [t - chrono::Duration::hours(1), t];
    let window: Vec<Vec<String>> =
        hours.iter().map(|h| vec![h.format("%Y-%m-%d").to_string(), h.format("%H").to_string()]).collect();
    let values: Vec<String> = window.iter().map(|w| format!("('{}', '{}')", w[0], w[1])).collect();
    let stamp = t.format("%Y%m%dT%H%M%S000Z");
    Job {
        model: ModelId::parse("silver.facts").unwrap(),
        database: "rastup_silver".into(),
        table: "facts".into(),
        run_id: format!("r{k}"),
        version: format!("v{stamp}-{k:06x}"),
        now: t.and_utc(),
        window_end: t.and_utc(),
        kind: JobKind::Select {
            sql: format!(
                "SELECT CAST({k} AS BIGINT) AS v, dt, hour FROM (VALUES {}) AS t(dt, hour)",
                values.join(", ")
            ),
            partition_by: vec!["dt".into(), "hour".into()],
            compression: "snappy".into(),
            replaces: Some(window.into()),
        },
        audits: vec![],
        arrived: None,
    }
}
