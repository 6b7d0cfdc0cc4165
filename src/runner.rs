//! Runs selected models in DAG order: render for the engine, stage, audit, publish.
//! A model whose upstream failed in this run is skipped, with the reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::athena::sql::{StageTarget, statements};
use crate::clock::Clock;
use crate::config::EngineKind;
use crate::engine::{Engine, EngineError, Job, JobKind, StepStats};
use crate::project::{Materialization, ModelId, Project};
use crate::window::{Grain, Window, fmt_ts};

/// When a run happens and, for a backfill, from when.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// The logical time the run is for (windows end here).
    pub at: DateTime<Utc>,
    /// Incremental models recompute every partition from here to `at`.
    pub from: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new version is current.
    Published(String),
    /// The result equals what is published; nothing changed.
    Unchanged,
    Failed(String),
    Skipped(String),
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed(_))
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Published(_) => "published",
            Self::Unchanged => "unchanged",
            Self::Failed(_) => "FAILED",
            Self::Skipped(_) => "skipped",
        }
    }
}

/// One model's run.
#[derive(Debug, Clone)]
pub struct ModelRun {
    pub model: ModelId,
    pub window: Window,
    pub outcome: Outcome,
    pub stats: StepStats,
    pub elapsed: Duration,
}

/// The window a model runs over.
pub fn window_for(project: &Project, id: &ModelId, opts: &RunOptions) -> Window {
    let c = &project.models[id].config;
    match (c.materialized, opts.from) {
        (Materialization::Incremental, Some(from)) => Window::spanning(from, opts.at, c.grain),
        _ => Window::ending_at(opts.at, c.grain, c.lookback),
    }
}

/// The partitions an incremental run over `window` replaces.
pub fn replaced_partitions(window: &Window) -> Vec<Vec<String>> {
    window
        .partitions()
        .into_iter()
        .map(|p| match (window.grain, p.hour) {
            (Grain::Hour, Some(h)) => vec![p.dt, h],
            _ => vec![p.dt],
        })
        .collect()
}

/// A new identifier: the instant and a random suffix, sortable and never reused.
pub fn new_id(prefix: &str, now: DateTime<Utc>) -> String {
    format!("{prefix}{}-{:06x}", now.format("%Y%m%dT%H%M%S%3fZ"), rand::random::<u32>() & 0xff_ffff)
}

/// Builds the engine job of one model for one window.
pub fn job_for(
    project: &Project,
    id: &ModelId,
    window: Window,
    run_id: &str,
    version: &str,
    now: DateTime<Utc>,
) -> Result<Job, String> {
    let model = &project.models[id];
    let sql = project.render(id, project.settings.engine, window).map_err(|d| d.to_string())?;
    let kind = match model.config.materialized {
        Materialization::External => JobKind::External { ddl: sql.trim().trim_end_matches(';').to_string() },
        m => JobKind::Select {
            sql,
            partition_by: model.config.partitioned_by.clone(),
            compression: model.config.compression.clone(),
            replaces: (m == Materialization::Incremental).then(|| replaced_partitions(&window)),
        },
    };
    Ok(Job {
        model: id.clone(),
        database: project.database(id).to_string(),
        table: model.table.clone(),
        run_id: run_id.to_string(),
        version: version.to_string(),
        now: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind,
        audits: model.config.audits.clone(),
    })
}

/// Runs `selected` (already in DAG order) once.
pub async fn run(
    project: &Project,
    engine: &dyn Engine,
    clock: &dyn Clock,
    selected: &[ModelId],
    opts: &RunOptions,
) -> Vec<ModelRun> {
    let run_id = new_id("r", clock.now());
    let mut results: BTreeMap<ModelId, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for id in selected {
        let window = window_for(project, id, opts);
        let failed_up = project.dag.upstream(id).iter().find(|u| results.get(*u) == Some(&false));
        let started = Instant::now();
        let (outcome, stats) = match failed_up {
            Some(up) => (Outcome::Skipped(format!("upstream {up} failed")), StepStats::default()),
            None => {
                let span = tracing::info_span!("model", model = %id, run_id = %run_id);
                let _enter = span.enter();
                match run_one(project, engine, clock, id, window, &run_id).await {
                    Ok((o, s)) => (o, s),
                    Err((e, s)) => (Outcome::Failed(e), s),
                }
            }
        };
        let error = match &outcome {
            Outcome::Failed(e) | Outcome::Skipped(e) => e.as_str(),
            _ => "",
        };
        tracing::info!(
            model = %id,
            run_id = %run_id,
            window_start = %fmt_ts(window.start),
            window_end = %fmt_ts(window.end),
            outcome = outcome.label(),
            rows = stats.rows,
            bytes_read = stats.bytes_read,
            bytes_written = stats.bytes_written,
            millis = started.elapsed().as_millis() as u64,
            error,
            "model run finished"
        );
        results.insert(id.clone(), !outcome.is_failure() && !matches!(outcome, Outcome::Skipped(_)));
        out.push(ModelRun { model: id.clone(), window, outcome, stats, elapsed: started.elapsed() });
    }
    out
}

async fn run_one(
    project: &Project,
    engine: &dyn Engine,
    clock: &dyn Clock,
    id: &ModelId,
    window: Window,
    run_id: &str,
) -> Result<(Outcome, StepStats), (String, StepStats)> {
    let now = clock.now();
    let version = new_id("v", now);
    let job = job_for(project, id, window, run_id, &version, now).map_err(|e| (e, StepStats::default()))?;
    // Test hook: `STRATA_FAILPOINT=<step>` or `<step>:<model>` aborts the process there.
    let failpoint = |step: &str| {
        let hit =
            project.settings.failpoint.as_deref().is_some_and(|f| f == step || f == format!("{step}:{id}"));
        if hit {
            eprintln!("failpoint {step}: aborting");
            std::process::abort();
        }
    };
    failpoint("before-stage");
    let staged = engine.stage(&job).await.map_err(|e| (e.to_string(), StepStats::default()))?;
    let stats = staged.stats;
    failpoint("after-stage");
    engine.audit(&staged).await.map_err(|e| (e.to_string(), stats))?;
    failpoint("after-audit");
    if !staged.changed {
        return Ok((Outcome::Unchanged, stats));
    }
    engine
        .publish(&staged, &clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .await
        .map_err(|e: EngineError| (e.to_string(), stats))?;
    failpoint("after-publish");
    Ok((Outcome::Published(version), stats))
}

/// The statements a model would run, as text: on Athena exactly what is sent (DDL, or a
/// CTAS into a fresh `external_location` plus INSERTs past 100 partitions); on the local
/// engine the rendered SELECT.
pub fn render_statements(
    project: &Project,
    id: &ModelId,
    opts: &RunOptions,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let model = &project.models[id];
    let window = window_for(project, id, opts);
    let body = project.render(id, project.settings.engine, window).map_err(|d| d.to_string())?;
    let version = new_id("v", now);
    let mut out = format!(
        "-- {id} ({}) window [{}, {}) engine {}\n",
        model.config.materialized.as_str(),
        fmt_ts(window.start),
        fmt_ts(window.end),
        project.settings.engine.as_str()
    );
    match project.settings.engine {
        EngineKind::Athena => {
            let staging =
                format!("\"{}\".\"{}__{}\"", project.database(id), model.table, version.replace('-', "_"));
            let location =
                project.settings.storage.uri(&format!("{}/{}/{}/", id.layer.as_str(), model.table, version));
            let parts = (model.config.materialized == Materialization::Incremental)
                .then(|| replaced_partitions(&window));
            let target = StageTarget {
                staging_relation: &staging,
                external_location: &location,
                partitions: parts.as_deref(),
            };
            for s in statements(model, &body, &target)? {
                out.push_str(&s);
                out.push_str(";\n");
            }
        }
        EngineKind::Local => {
            out.push_str(body.trim());
            out.push('\n');
        }
    }
    Ok(out)
}
