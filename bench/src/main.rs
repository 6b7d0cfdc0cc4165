//! strata-bench: the measurements behind BENCHMARKS.md. Each subcommand prints one JSON
//! object on stdout; `bench/run.py` runs them as separate processes (for peak RSS) and
//! writes the tables.
//!
//! - `gen`: demo events in the Firehose layout, streamed to disk.
//! - `silver`: `fact_payouts` and `fact_search_impressions` on the local engine.
//! - `floor`: decompress and tokenize the same files, nothing else (the hardware limit).
//! - `nrt`: a day of 5-minute ticks over a growing Bronze; bytes read per refresh.
//! - `plan`: load, render and plan a generated project of many models.
//! - `dag`: a simulated Athena (random latencies) running a generated DAG under a cap.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use strata::clock::{ManualClock, SystemClock};
use strata::config::Settings;
use strata::engine::{Engine, EngineError, Job, QueryResult, Staged, StepStats};
use strata::ids::ModelId;
use strata::local::LocalEngine;
use strata::project::Project;
use strata::runner::{self, NoGuard, Outcome, Planned, RunOptions, Stop};

#[derive(Parser)]
#[command(name = "strata-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write demo events for whole days under <root>/bronze/events/, streaming.
    Gen {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        start: String,
        #[arg(long, default_value_t = 1)]
        days: u32,
        #[arg(long)]
        sessions_per_hour: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value = "prod")]
        env: String,
        #[arg(long, default_value_t = 4000)]
        lines_per_file: usize,
        #[arg(long, default_value_t = 0)]
        slot_minutes: u32,
        #[arg(long, default_value_t = 2)]
        writers: usize,
        /// `demo` (the demo's envelopes, about 14x gzip) or `entropy` (random-looking ids,
        /// hashes, user agents and free text, 5-7x, as production streams).
        #[arg(long, default_value = "demo")]
        shape: String,
    },
    /// Run the two Silver models over [from, to) in windows of `chunk_hours`.
    Silver {
        #[arg(long)]
        project: PathBuf,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Hours per run (0: one run over the whole range).
        #[arg(long, default_value_t = 0)]
        chunk_hours: i64,
    },
    /// Decompress and tokenize the Bronze files of the given events, on `threads` threads.
    Floor {
        #[arg(long)]
        root: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Event directories to read (prefix match on the `event=` value).
        #[arg(long, value_delimiter = ',', default_value = "search.impression,payout.")]
        events: Vec<String>,
        /// Only decompress (no tokenizing).
        #[arg(long)]
        inflate_only: bool,
    },
    /// A day of 5-minute ticks: files of `staging` arrive in the project's lake as their
    /// arrival slot ends.
    Nrt {
        #[arg(long)]
        project: PathBuf,
        #[arg(long)]
        staging: PathBuf,
        /// The first tick's instant; the 24 hours before it are history.
        #[arg(long)]
        start: String,
        #[arg(long, default_value_t = 288)]
        ticks: usize,
        #[arg(long, default_value_t = 5)]
        slot_minutes: i64,
        /// Read whole windows (as before `reads='arrived'`), to compare.
        #[arg(long)]
        whole_windows: bool,
    },
    /// Load, render and plan a generated project of `models` models.
    Plan {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        models: usize,
        #[arg(long, default_value_t = 7)]
        repeat: usize,
    },
    /// Run a generated DAG of `models` on a simulated Athena with a concurrency cap.
    Dag {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        models: usize,
        #[arg(long, default_value_t = 20)]
        cap: usize,
        /// Simulated query latencies are drawn in [min_ms, max_ms] (log-uniform).
        #[arg(long, default_value_t = 40)]
        min_ms: u64,
        #[arg(long, default_value_t = 400)]
        max_ms: u64,
        #[arg(long, default_value_t = 11)]
        seed: u64,
    },
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc)
}

fn main() {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Cmd::Gen {
            root,
            start,
            days,
            sessions_per_hour,
            seed,
            env,
            lines_per_file,
            slot_minutes,
            writers,
            shape,
        } => {
            assert!(shape == "demo" || shape == "entropy", "--shape is demo or entropy");
            let spec = strata::demo::StreamSpec {
                start: parse_ts(&start),
                days,
                sessions_per_hour,
                seed,
                env,
                lines_per_file,
                slot_minutes,
                malformed: true,
                writers,
                quirks: false,
                high_entropy: shape == "entropy",
            };
            let t = Instant::now();
            let (s, raw) = strata::demo::generate_stream(&root, &spec).expect("generating events");
            json!({
                "events": s.events, "duplicates": s.duplicates, "late": s.late,
                "malformed": s.malformed, "files": s.files, "gz_bytes": s.bytes,
                "raw_bytes": raw, "secs": t.elapsed().as_secs_f64(),
            })
        }
        Cmd::Silver { project, from, to, chunk_hours } => {
            rt().block_on(silver(&project, &from, &to, chunk_hours))
        }
        Cmd::Floor { root, threads, events, inflate_only } => floor(&root, threads, &events, inflate_only),
        Cmd::Nrt { project, staging, start, ticks, slot_minutes, whole_windows } => {
            rt().block_on(nrt(&project, &staging, parse_ts(&start), ticks, slot_minutes, whole_windows))
        }
        Cmd::Plan { dir, models, repeat } => plan(&dir, models, repeat),
        Cmd::Dag { dir, models, cap, min_ms, max_ms, seed } => {
            rt().block_on(dag(&dir, models, cap, min_ms, max_ms, seed))
        }
    };
    println!("{out}");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

fn load(project: &Path) -> (Project, LocalEngine) {
    let settings = Settings::load(project, &HashMap::new()).expect("settings");
    let project = Project::load(settings).unwrap_or_else(|e| panic!("project:\n{e}"));
    let engine = LocalEngine::for_settings(&project.settings).expect("engine");
    (project, engine)
}

fn id(s: &str) -> ModelId {
    ModelId::parse(s).expect("model id")
}

fn check(runs: &[runner::ModelRun]) {
    for r in runs {
        if let Outcome::Failed(e) | Outcome::Skipped(e) = &r.outcome {
            panic!("{}: {e}", r.model);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Silver throughput

async fn silver(project: &Path, from: &str, to: &str, chunk_hours: i64) -> serde_json::Value {
    let (project, engine) = load(project);
    let (from, to) = (parse_ts(from), parse_ts(to));
    let clock = SystemClock;
    let bronze =
        runner::run(&project, &engine, &clock, &[id("bronze.events")], &RunOptions::new(to, None))
            .await;
    check(&bronze);
    let models = [id("silver.fact_payouts"), id("silver.fact_search_impressions")];
    let mut per: BTreeMap<String, (StepStats, f64, usize)> = BTreeMap::new();
    let t = Instant::now();
    let mut start = from;
    while start < to {
        let end = if chunk_hours > 0 { (start + chrono::Duration::hours(chunk_hours)).min(to) } else { to };
        let runs =
            runner::run(&project, &engine, &clock, &models, &RunOptions::new(end, Some(start))).await;
        check(&runs);
        for r in runs {
            let e = per.entry(r.model.to_string()).or_default();
            e.0 += r.stats;
            e.1 += r.elapsed.as_secs_f64();
            e.2 += 1;
        }
        start = end;
    }
    let secs = t.elapsed().as_secs_f64();
    let models: serde_json::Map<String, serde_json::Value> = per
        .into_iter()
        .map(|(m, (s, el, n))| {
            (
                m,
                json!({"rows": s.rows, "bytes_read": s.bytes_read, "bytes_written": s.bytes_written,
                       "malformed": s.malformed, "secs": el, "runs": n}),
            )
        })
        .collect();
    json!({"secs": secs, "models": models, "root": engine.root()})
}

// ---------------------------------------------------------------------------------------
// The floor: gzip + JSON tokenizing only

fn bronze_files(root: &Path, events: &[String]) -> Vec<PathBuf> {
    fn walk(dir: &Path, events: &[String], out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if let Some(ev) = name.strip_prefix("event=")
                    && !events.iter().any(|want| ev.starts_with(want.as_str()))
                {
                    continue;
                }
                walk(&p, events, out);
            } else if name.ends_with(".json.gz") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("bronze/events"), events, &mut out);
    out.sort();
    out
}

fn floor(root: &Path, threads: usize, events: &[String], inflate_only: bool) -> serde_json::Value {
    let files = bronze_files(root, events);
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    let totals: Vec<(u64, u64, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let (mut gz, mut raw, mut values, mut bad) = (0u64, 0u64, 0u64, 0u64);
                    let mut comp = Vec::new();
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        comp.clear();
                        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut comp)).expect("read");
                        gz += comp.len() as u64;
                        buf.clear();
                        flate2::read::MultiGzDecoder::new(&comp[..]).read_to_end(&mut buf).expect("inflate");
                        raw += buf.len() as u64;
                        if inflate_only {
                            continue;
                        }
                        let (v, b) = tokenize(&buf);
                        values += v;
                        bad += b;
                    }
                    (gz, raw, values, bad)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("floor thread")).collect()
    });
    let secs = t.elapsed().as_secs_f64();
    let sum = |f: fn(&(u64, u64, u64, u64)) -> u64| totals.iter().map(f).sum::<u64>();
    json!({"threads": threads, "files": files.len(), "gz_bytes": sum(|t| t.0), "raw_bytes": sum(|t| t.1),
           "lines": sum(|t| t.2), "bad_lines": sum(|t| t.3), "secs": secs, "inflate_only": inflate_only})
}

/// Tokenizes every JSON value of an NDJSON buffer (serde_json, values ignored); a line
/// that does not parse is skipped. Returns (values, bad lines).
fn tokenize(buf: &[u8]) -> (u64, u64) {
    let (mut values, mut bad) = (0u64, 0u64);
    let mut pos = 0;
    while pos < buf.len() {
        let mut it = serde_json::Deserializer::from_slice(&buf[pos..]).into_iter::<serde::de::IgnoredAny>();
        let mut failed = false;
        for v in it.by_ref() {
            match v {
                Ok(_) => values += 1,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            break;
        }
        bad += 1;
        // Resume after the line the error is on.
        let at = pos + it.byte_offset();
        let line_start = buf[..at.min(buf.len())].iter().rposition(|&b| b == b'\n').map_or(pos, |i| i + 1);
        let line_start = line_start.max(pos);
        pos = match buf[line_start..].iter().position(|&b| b == b'\n') {
            Some(n) => line_start + n + 1,
            None => buf.len(),
        };
    }
    (values, bad)
}

// ---------------------------------------------------------------------------------------
// Near-real-time refresh cost

/// (dt, hour, slot) of a staged file, from its path.
fn arrival(path: &Path, slot_minutes: i64) -> Option<DateTime<Utc>> {
    let s = path.to_string_lossy();
    let dt = s.split("/dt=").nth(1)?.get(..10)?;
    let hour = s.split("/hour=").nth(1)?.get(..2)?;
    let name = path.file_name()?.to_string_lossy();
    let slot: i64 = name.strip_prefix("part-")?.get(..2)?.parse().ok()?;
    let t = parse_ts(&format!("{dt}T{hour}:00:00Z"));
    // A slot's file lands when the slot ends.
    Some(t + chrono::Duration::minutes((slot + 1) * slot_minutes))
}

fn hour_of(path: &Path) -> Option<DateTime<Utc>> {
    let s = path.to_string_lossy();
    let dt = s.split("/dt=").nth(1)?.get(..10)?;
    let hour = s.split("/hour=").nth(1)?.get(..2)?;
    Some(parse_ts(&format!("{dt}T{hour}:00:00Z")))
}

async fn nrt(
    project: &Path,
    staging: &Path,
    start: DateTime<Utc>,
    ticks: usize,
    slot_minutes: i64,
    whole_windows: bool,
) -> serde_json::Value {
    let (project, engine) = load(project);
    // Before near-real-time reads: every tick rereads its whole window.
    let flags = strata::runner::Flags { read_whole_windows: whole_windows, ..Default::default() };
    let lake = engine.root().to_path_buf();
    let all = bronze_files(staging, &[String::new()]);
    let mut pending: Vec<(DateTime<Utc>, PathBuf, u64)> = all
        .iter()
        .map(|p| {
            let at = arrival(p, slot_minutes).expect("staged file name has a slot");
            (at, p.clone(), std::fs::metadata(p).expect("stat").len())
        })
        .collect();
    pending.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut landed: Vec<(DateTime<Utc>, u64)> = Vec::new(); // (hour partition, size)
    let land = |until: DateTime<Utc>,
                pending: &mut Vec<(DateTime<Utc>, PathBuf, u64)>,
                landed: &mut Vec<(DateTime<Utc>, u64)>|
     -> u64 {
        let n = pending.partition_point(|p| p.0 <= until);
        let mut bytes = 0;
        for (_, p, size) in pending.drain(..n) {
            let rel = p.strip_prefix(staging).expect("under staging");
            let dst = lake.join(rel);
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            std::fs::rename(&p, &dst).expect("move file into the lake");
            landed.push((hour_of(&dst).expect("hour"), size));
            bytes += size;
        }
        bytes
    };
    // History: everything that arrived before the first tick, then one catch-up run.
    land(start, &mut pending, &mut landed);
    let nrt_models: Vec<ModelId> = project
        .dag
        .order
        .iter()
        .filter(|m| project.models[*m].config.tags.iter().any(|t| t == "nrt"))
        .cloned()
        .collect();
    let mut warm = vec![id("bronze.events")];
    warm.extend(nrt_models.iter().cloned());
    let clock = ManualClock::at(start);
    let runs = runner::run(
        &project,
        &engine,
        &clock,
        &warm,
        &RunOptions::new(start, Some(start - chrono::Duration::hours(25))),
    )
    .await;
    check(&runs);
    let state = strata::backend::Backend::run_state(&engine);
    for m in &project.dag.order {
        let at = strata::clock::stamp(start);
        state.record_success(&m.to_string(), &at, "bench-warmup", &at).await.expect("run state");
    }
    let stop = Stop::never();
    let mut rows = Vec::new();
    for i in 1..=ticks {
        let now = start + chrono::Duration::minutes(slot_minutes * i as i64);
        // What arrived since the previous tick (Bronze files whose slot ended meanwhile).
        let arrived = land(now, &mut pending, &mut landed);
        let rescan: u64 = landed
            .iter()
            .filter(|(h, _)| *h >= now - chrono::Duration::hours(24) && *h < now)
            .map(|(_, s)| s)
            .sum();
        let clock = ManualClock::at(now);
        let t = Instant::now();
        let (_, runs) =
            strata::scheduler::tick(&project, &engine, state.clone(), &clock, &stop, &flags).await.expect("tick");
        let secs = t.elapsed().as_secs_f64();
        check(&runs);
        let (mut silver, mut ops, mut other) = (0u64, 0u64, 0u64);
        for r in &runs {
            let nrt = nrt_models.contains(&r.model);
            match (nrt, r.model.layer.as_str()) {
                (true, "silver") => silver += r.stats.bytes_read,
                (true, "ops") => ops += r.stats.bytes_read,
                _ => other += r.stats.bytes_read,
            }
        }
        rows.push(json!({"at": strata::clock::stamp(now), "arrived": arrived, "rescan_24h": rescan,
                         "silver": silver, "ops": ops, "other": other, "secs": secs,
                         "models": runs.len()}));
    }
    json!({"ticks": rows, "nrt_models": nrt_models.iter().map(|m| m.to_string()).collect::<Vec<_>>()})
}

// ---------------------------------------------------------------------------------------
// Scheduler overhead: generated projects

/// Writes a project of `n` models: a tenth incremental Silver models over Bronze (like the
/// shipped ones), the rest Gold and ops tables that each ref one to three earlier models.
/// Returns the project directory.
fn gen_project(dir: &Path, n: usize, seed: u64) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let _ = std::fs::remove_dir_all(dir);
    for layer in ["bronze", "silver", "gold", "ops"] {
        std::fs::create_dir_all(dir.join("sql").join(layer)).expect("mkdir");
    }
    std::fs::copy(repo.join("strata.toml"), dir.join("strata.toml")).expect("strata.toml");
    std::fs::copy(repo.join("sql/bronze/events.sql"), dir.join("sql/bronze/events.sql")).expect("bronze");
    let silver_src = std::fs::read_to_string(repo.join("sql/silver/fact_payouts.sql")).expect("model");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_silver = (n / 10).max(1);
    let mut names: Vec<String> = Vec::new();
    for i in 0..n {
        let (layer, name) = if i < n_silver {
            ("silver", format!("s_{i:04}"))
        } else if i < n * 7 / 10 {
            ("gold", format!("g_{i:04}"))
        } else {
            ("ops", format!("o_{i:04}"))
        };
        let text = if layer == "silver" {
            silver_src.clone()
        } else {
            let k = rng.random_range(1..=3.min(names.len()));
            let mut ups: Vec<&String> = Vec::new();
            while ups.len() < k {
                let u = &names[rng.random_range(0..names.len())];
                if !ups.contains(&u) {
                    ups.push(u);
                }
            }
            let schedule = if layer == "ops" { "*/5 * * * *" } else { "15 * * * *" };
            let mut sql = format!(
                "{{{{ config(materialized='table', window='hour', lookback=24, schedule='{schedule}', audits=[{{'unique': ['city']}}]) }}}}\nSELECT t0.city, count(*) AS n, max(t0.received_at) AS last_at\nFROM {{{{ ref('{}') }}}} AS t0\n",
                ups[0]
            );
            for (j, u) in ups.iter().enumerate().skip(1) {
                sql.push_str(&format!("JOIN {{{{ ref('{u}') }}}} AS t{j} ON t{j}.city = t0.city\n"));
            }
            sql.push_str("WHERE {{ window_partitions(prefix='t0') }}\nGROUP BY t0.city\n");
            sql
        };
        std::fs::write(dir.join("sql").join(layer).join(format!("{name}.sql")), text).expect("write model");
        names.push(format!("{layer}.{name}"));
    }
    dir.to_path_buf()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn plan(dir: &Path, n: usize, repeat: usize) -> serde_json::Value {
    let dir = gen_project(dir, n, 3);
    let state = dir.join(".strata");
    let (mut load_ms, mut render_ms, mut plan_ms, mut total_ms) = (vec![], vec![], vec![], vec![]);
    let now = parse_ts("2026-11-20T12:05:00Z");
    let mut due = 0;
    for _ in 0..repeat.max(1) {
        let _ = std::fs::remove_dir_all(&state);
        let t0 = Instant::now();
        let settings = Settings::load(&dir, &HashMap::new()).expect("settings");
        let project = Project::load(settings).unwrap_or_else(|e| panic!("project:\n{e}"));
        let t1 = Instant::now();
        for m in &project.dag.order {
            let w = runner::window_for(&project, m, &RunOptions::new(now, None));
            project.render(m, project.settings.engine, w).expect("render");
        }
        let t2 = Instant::now();
        let run_state =
            strata::state::SqliteState::open(&project.settings.catalog_path()).expect("run state");
        let plan = rt().block_on(strata::scheduler::plan_tick(&project, &run_state, now)).expect("plan");
        due = plan.due.len();
        let t3 = Instant::now();
        load_ms.push(ms(t1 - t0));
        render_ms.push(ms(t2 - t1));
        plan_ms.push(ms(t3 - t2));
        total_ms.push(ms(t3 - t0));
    }
    json!({"models": n, "due": due, "load_ms": median(load_ms), "render_ms": median(render_ms),
           "plan_ms": median(plan_ms), "total_ms": median(total_ms), "repeat": repeat})
}

/// An Athena stand-in: every statement takes a fixed, seeded latency; nothing is read.
struct SimAthena {
    latency: BTreeMap<ModelId, Duration>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait::async_trait]
impl Engine for SimAthena {
    async fn stage(&self, job: &Job) -> Result<Staged, EngineError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.latency[&job.model]).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(Staged {
            job: job.clone(),
            expected: None,
            changed: true,
            stats: StepStats::default(),
            emptied: Vec::new(),
        })
    }
    async fn stage_part(&self, _: &Job, _: &strata::engine::Partitions) -> Result<StepStats, EngineError> {
        Err(EngineError::Query("not simulated".into()))
    }
    async fn seal(&self, _: &Job, _: &strata::engine::Partitions) -> Result<Staged, EngineError> {
        Err(EngineError::Query("not simulated".into()))
    }
    async fn audit(&self, _: &Staged) -> Result<(), EngineError> {
        Ok(())
    }
    async fn publish(&self, _: &Staged, _: &str) -> Result<(), EngineError> {
        Ok(())
    }
    async fn query(&self, _: &str) -> Result<QueryResult, EngineError> {
        Err(EngineError::Query("not simulated".into()))
    }
    async fn was_published(&self, _: &Job) -> Result<bool, EngineError> {
        Ok(false)
    }
}

async fn dag(dir: &Path, n: usize, cap: usize, min_ms: u64, max_ms: u64, seed: u64) -> serde_json::Value {
    let dir = gen_project(dir, n, seed);
    let settings = Settings::load(&dir, &HashMap::new()).expect("settings");
    let project = Project::load(settings).unwrap_or_else(|e| panic!("project:\n{e}"));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (lo, hi) = ((min_ms as f64).ln(), (max_ms as f64).ln());
    let models: Vec<ModelId> =
        project.dag.order.iter().filter(|m| m.layer.as_str() != "bronze").cloned().collect();
    let latency: BTreeMap<ModelId, Duration> = models
        .iter()
        .map(|m| (m.clone(), Duration::from_secs_f64(rng.random_range(lo..hi).exp() / 1e3)))
        .collect();
    // Lower bound: the longest chain, or the total work spread over the cap.
    let mut finish: BTreeMap<&ModelId, Duration> = BTreeMap::new();
    for m in &models {
        let ready =
            project.dag.upstream(m).iter().filter_map(|u| finish.get(u)).max().copied().unwrap_or_default();
        finish.insert(m, ready + latency[m]);
    }
    let critical = finish.values().max().copied().unwrap_or_default();
    let work: Duration = latency.values().sum();
    let bound = critical.max(work / cap as u32);
    let engine = SimAthena { latency, running: AtomicUsize::new(0), peak: AtomicUsize::new(0) };
    let at = parse_ts("2026-11-20T12:15:00Z");
    let plan: Vec<Planned> =
        models.iter().map(|m| Planned { id: m.clone(), opts: RunOptions::new(at, None) }).collect();
    let clock = Arc::new(SystemClock);
    let t = Instant::now();
    let runs =
        runner::run_planned(&project, &engine, clock.as_ref(), &plan, cap, &Stop::never(), &NoGuard).await;
    let makespan = t.elapsed();
    check(&runs);
    json!({"models": models.len(), "cap": cap, "peak_concurrency": engine.peak.load(Ordering::SeqCst),
           "critical_path_ms": ms(critical), "work_ms": ms(work), "bound_ms": ms(bound),
           "makespan_ms": ms(makespan), "over_bound": makespan.as_secs_f64() / bound.as_secs_f64() - 1.0,
           "latency_ms": [min_ms, max_ms]})
}
