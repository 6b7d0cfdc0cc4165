//! Runs selected models in DAG order: render for the engine, stage, audit, publish.
//! A model whose upstream failed in this run is skipped, with the reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::engine::{Engine, EngineError, Job, JobKind, Partitions, StepStats};
use crate::ids::ModelId;
use crate::project::{Materialization, Project};
use crate::window::{Grain, Window, fmt_ts};

use crate::materialize::{Completion, Step, unless_stopped};
pub use crate::materialize::{Outcome, STOPPED, Stop};

/// What one invocation (a run, a tick, a backfill) asks beside its windows: set by the
/// command line, never by the project's file (`config::Settings` holds only what the file,
/// the profile and the environment say of the deployment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// Publish a window that replaces partitions holding data with nothing
    /// (`--allow-empty-window`; never a scheduled tick).
    pub allow_empty_window: bool,
    /// Read whole windows even for `reads='arrived'` models (`run --from`: a range is
    /// recomputed from all its objects).
    pub read_whole_windows: bool,
    /// Test hook: stop, hang or pause the process at a step (`STRATA_FAILPOINT`, see
    /// [`failpoint`]).
    pub failpoint: Option<String>,
}

/// When a run happens and, for a backfill, from when; and the invocation's flags.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The logical time the run is for (windows end here).
    pub at: DateTime<Utc>,
    /// Incremental models recompute every partition from here to `at`.
    pub from: Option<DateTime<Utc>>,
    pub flags: Flags,
}

impl RunOptions {
    pub fn new(at: DateTime<Utc>, from: Option<DateTime<Utc>>) -> Self {
        Self { at, from, flags: Flags::default() }
    }

    /// The same, with the invocation's `flags`.
    pub fn with(self, flags: &Flags) -> Self {
        Self { flags: flags.clone(), ..self }
    }
}

/// One model's run.
#[derive(Debug, Clone)]
pub struct ModelRun {
    pub model: ModelId,
    /// The invocation (tick, run, backfill) it was part of.
    pub run_id: String,
    pub window: Window,
    pub outcome: Outcome,
    pub stats: StepStats,
    pub elapsed: Duration,
    /// The model's fingerprint when it ran (recorded with the run: which SQL and config
    /// computed the version it published).
    pub fingerprint: Option<crate::fingerprint::Fingerprint>,
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
pub fn replaced_partitions(window: &Window) -> Partitions {
    window
        .partitions()
        .into_iter()
        .map(|p| match (window.grain, p.hour) {
            (Grain::Hour, Some(h)) => vec![p.dt, h],
            _ => vec![p.dt],
        })
        .collect()
}

pub use crate::ids::new_id;

/// Builds the engine job of one model for one window.
pub fn job_for(
    project: &Project,
    id: &ModelId,
    window: Window,
    run_id: &str,
    version: &str,
    now: DateTime<Utc>,
) -> Result<Job, EngineError> {
    let model = &project.models[id];
    let sql =
        project.render(id, project.settings.engine, window).map_err(|d| EngineError::Query(d.to_string()))?;
    let kind = match model.config.materialized {
        Materialization::External => JobKind::External { ddl: sql.trim().trim_end_matches(';').to_string() },
        m => JobKind::Select {
            sql,
            partition_by: model.config.partitioned_by.clone(),
            compression: model.config.compression.clone(),
            replaces: (m == Materialization::Incremental).then(|| replaced_partitions(&window)),
        },
    };
    // A near-real-time model reads its one Bronze source by arrival.
    let arrived = if model.config.reads_arrived {
        let sources: Vec<&ModelId> = project
            .dag
            .upstream(id)
            .iter()
            .filter(|u| project.models[*u].config.materialized == Materialization::External)
            .collect();
        let [source] = sources.as_slice() else {
            return Err(EngineError::Query(format!(
                "{id}: reads='arrived' needs exactly one external (Bronze) source; it reads {}",
                sources.len()
            )));
        };
        Some(crate::engine::ArrivedSource {
            database: project.database(source).to_string(),
            table: project.models[*source].table.clone(),
            relation: project.relation(source),
        })
    } else {
        None
    };
    Ok(Job {
        model: id.clone(),
        database: project.database(id).to_string(),
        table: model.table.clone(),
        run_id: run_id.to_string(),
        version: version.to_string(),
        now,
        window_end: window.end,
        kind,
        audits: model.config.audits.clone(),
        arrived,
    })
}

/// Runs `selected` (already in DAG order) once, one model at a time.
pub async fn run(
    project: &Project,
    engine: &dyn Engine,
    clock: &dyn Clock,
    selected: &[ModelId],
    opts: &RunOptions,
) -> Vec<ModelRun> {
    let plan: Vec<Planned> =
        selected.iter().map(|id| Planned { id: id.clone(), opts: opts.clone() }).collect();
    run_planned(project, engine, clock, &plan, 1, &Stop::never(), &NoGuard).await
}

/// One model to run and the options of its run.
#[derive(Debug, Clone)]
pub struct Planned {
    pub id: ModelId,
    pub opts: RunOptions,
}

/// Checks around each model run (leases, upstream readiness, run state).
#[async_trait::async_trait]
pub trait Guard: Sync {
    /// May the model run now? `Err` carries why it is skipped.
    async fn before(&self, id: &ModelId, window: &Window) -> Result<(), String>;
    /// Called after every run that `before` let through; may settle its outcome (a
    /// conflict that another run of the same window won is superseded).
    async fn after(&self, run: &mut ModelRun, opts: &RunOptions);
}

/// No checks: `strata run` runs what it is told.
pub struct NoGuard;

#[async_trait::async_trait]
impl Guard for NoGuard {
    async fn before(&self, _: &ModelId, _: &Window) -> Result<(), String> {
        Ok(())
    }
    async fn after(&self, _: &mut ModelRun, _: &RunOptions) {}
}

/// Runs the planned models in DAG order, up to `cap` at once: a model starts when every
/// upstream model in the plan has finished, and is skipped when one failed or was skipped.
pub async fn run_planned(
    project: &Project,
    engine: &dyn Engine,
    clock: &dyn Clock,
    plan: &[Planned],
    cap: usize,
    stop: &Stop,
    guard: &dyn Guard,
) -> Vec<ModelRun> {
    use futures::StreamExt;
    use futures::stream::FuturesUnordered;

    let run_id = new_id("r", clock.now());
    let fingerprints = crate::project::fingerprints(project).0;
    let in_plan: BTreeMap<&ModelId, &Planned> = plan.iter().map(|p| (&p.id, p)).collect();
    let mut finished: BTreeMap<ModelId, ModelRun> = BTreeMap::new();
    let mut started: std::collections::BTreeSet<ModelId> = Default::default();
    let mut running = FuturesUnordered::new();
    loop {
        // Start what is ready, in plan order, up to the cap.
        for p in plan {
            if started.contains(&p.id) || running.len() >= cap.max(1) {
                continue;
            }
            let ups: Vec<&ModelId> =
                project.dag.upstream(&p.id).iter().filter(|u| in_plan.contains_key(u)).collect();
            if ups.iter().any(|u| !finished.contains_key(*u)) {
                continue;
            }
            started.insert(p.id.clone());
            let window = window_for(project, &p.id, &p.opts);
            // An upstream that failed here stops the model. One this run skipped (another
            // tick holds it, or ran it already) does not: the guard judges from the run state
            // whether it is current, and may wait for the tick that runs it.
            let failed_up = ups.iter().find(|u| finished[**u].outcome.is_failure());
            let skip = if let Some(up) = failed_up {
                Some(format!("upstream {up} failed"))
            } else if stop.raised() {
                Some("stopping: not started".to_string())
            } else {
                None
            };
            let run_id = run_id.clone();
            let fingerprint = fingerprints.get(&p.id).cloned();
            running.push(async move {
                let started_at = Instant::now();
                let done = |outcome, stats| ModelRun {
                    model: p.id.clone(),
                    run_id: run_id.clone(),
                    window,
                    outcome,
                    stats,
                    elapsed: started_at.elapsed(),
                    fingerprint: fingerprint.clone(),
                };
                let run = match skip {
                    Some(why) => done(Outcome::Skipped(why), StepStats::default()),
                    None => match guard.before(&p.id, &window).await {
                        Err(why) => done(Outcome::Skipped(why), StepStats::default()),
                        Ok(()) => {
                            let span = tracing::info_span!("model", model = %p.id, run_id = %run_id);
                            let work = tracing::Instrument::instrument(
                                run_one(project, engine, clock, p, window, &run_id, stop),
                                span,
                            );
                            let (o, s) = match work.await {
                                Ok(r) => r,
                                Err((e, s)) => (Outcome::Failed(e), s),
                            };
                            let mut run = done(o, s);
                            guard.after(&mut run, &p.opts).await;
                            run
                        }
                    },
                };
                log_outcome(&run);
                run
            });
        }
        match running.next().await {
            Some(r) => {
                finished.insert(r.model.clone(), r);
            }
            None => break,
        }
    }
    plan.iter().filter_map(|p| finished.remove(&p.id)).collect()
}

fn log_outcome(run: &ModelRun) {
    let error = run.outcome.detail().unwrap_or_default();
    tracing::info!(
        model = %run.model,
        run_id = %run.run_id,
        window_start = %fmt_ts(run.window.start),
        window_end = %fmt_ts(run.window.end),
        outcome = run.outcome.label(),
        rows = run.stats.rows,
        bytes_read = run.stats.bytes_read,
        bytes_written = run.stats.bytes_written,
        millis = run.elapsed.as_millis() as u64,
        error,
        "model run finished"
    );
}

impl ModelRun {
    /// The run-history record of this run, finished at `finished_at` (wall-clock time, even
    /// when the run's logical time is given with `--at`) on `task`.
    pub fn record(&self, task: &str, finished_at: DateTime<Utc>) -> crate::state::RunRecord {
        let version = match &self.outcome {
            Outcome::Published(v) => Some(v.clone()),
            _ => None,
        };
        let error = self.outcome.detail().map(str::to_string);
        crate::state::RunRecord {
            run_id: self.run_id.clone(),
            model: self.model.to_string(),
            window_start: crate::clock::stamp(self.window.start),
            window_end: crate::clock::stamp(self.window.end),
            outcome: self.outcome.label().to_string(),
            version,
            rows: self.stats.rows,
            bytes_scanned: self.stats.bytes_read,
            bytes_written: self.stats.bytes_written,
            statements: self.stats.statements,
            cost_usd: crate::state::athena_cost_usd(self.stats.billed_bytes),
            millis: self.elapsed.as_millis() as u64,
            error,
            task: task.to_string(),
            finished_at: crate::clock::stamp(finished_at),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// An error of the model's statement, at the line of its file the engine points to (its
/// position, or where the name it could not resolve is written); any other error as it is.
pub fn located(project: &Project, id: &ModelId, job: &Job, error: &EngineError) -> String {
    let (JobKind::Select { sql, .. }, EngineError::Statement(e)) = (&job.kind, error) else {
        return error.to_string();
    };
    // The position's line in the model's SQL: in a statement around it (a CTAS), counted
    // from where the SQL starts in it.
    let lead = sql[..sql.len() - sql.trim_start().len()].matches('\n').count();
    let line = e.position.and_then(|p| match &e.statement {
        None => Some(p.line),
        Some(st) => st
            .find(sql.trim())
            .map(|at| st[..at].matches('\n').count())
            .and_then(|before| (p.line + lead).checked_sub(before))
            .filter(|l| *l > lead),
    });
    if line.is_none() && e.unresolved.is_none() {
        return error.to_string();
    }
    let model = &project.models[id];
    let line = crate::project::locate(model, sql, line, e.unresolved.as_deref());
    format!("{}:{line}: {}", model.path.display(), crate::project::sql_error(&e.message))
}

/// Test hook: `STRATA_FAILPOINT=<step>` or `<step>:<model>` aborts the process at that step
/// (a crash); with `=hang` appended it stops there for good instead, for the test to kill.
pub fn failpoint(flags: &Flags, step: &str, model: Option<&ModelId>) {
    let Some(f) = flags.failpoint.as_deref() else { return };
    let (f, hang) = match f.strip_suffix("=hang") {
        Some(f) => (f, true),
        None => (f, false),
    };
    if f != step && model.is_none_or(|m| f != format!("{step}:{m}")) {
        return;
    }
    if hang {
        eprintln!("failpoint {step}: hanging");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    eprintln!("failpoint {step}: aborting");
    std::process::abort();
}

/// Test hook: with `STRATA_FAILPOINT=<step>[:<model>]=pause`, waits three seconds at that
/// step (the work around it goes on).
async fn pause_point(flags: &Flags, step: &str, model: &ModelId) {
    let Some(f) = flags.failpoint.as_deref().and_then(|f| f.strip_suffix("=pause")) else {
        return;
    };
    if f == step || f == format!("{step}:{model}") {
        eprintln!("failpoint {step}: pausing");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

async fn run_one(
    project: &Project,
    engine: &dyn Engine,
    clock: &dyn Clock,
    planned: &Planned,
    window: Window,
    run_id: &str,
    stop: &Stop,
) -> Result<(Outcome, StepStats), (String, StepStats)> {
    let (id, flags) = (&planned.id, &planned.opts.flags);
    let computes = project.models[id].config.materialized != Materialization::External;
    if computes && window.units().is_empty() {
        // A window of no unit (lookback 0 at a unit's boundary: the command line refuses an
        // empty range before it gets here): there is nothing to compute, and a table
        // computed over nothing is never published.
        let why = format!(
            "the window [{}, {}) is empty: nothing to compute",
            fmt_ts(window.start),
            fmt_ts(window.end)
        );
        return Ok((Outcome::Skipped(why), StepStats::default()));
    }
    let now = clock.now();
    let version = new_id("v", now);
    let mut job = job_for(project, id, window, run_id, &version, now)
        .map_err(|e| (e.to_string(), StepStats::default()))?;
    if flags.read_whole_windows {
        job.arrived = None; // a range: every object of its windows
    }
    failpoint(flags, "before-stage", Some(id));
    let staged = unless_stopped(engine, stop, engine.stage(&job), StepStats::default())
        .await
        .map_err(|f| (located(project, id, &job, &f.error), f.stats))?;
    let after = |step: Step| {
        let name = match step {
            Step::Staged => "after-stage",
            Step::Audited => "after-audit",
            Step::Published => "after-publish",
        };
        failpoint(flags, name, Some(id));
    };
    let completion =
        Completion { engine, stop, allow_empty_window: flags.allow_empty_window, clock, after: &after };
    // Test hook: `during-publish:<model>=pause` holds the outcome for a few seconds while
    // the publish is in flight, for a signal to arrive then.
    crate::materialize::complete(&completion, &staged, pause_point(flags, "during-publish", id))
        .await
        .map_err(|f| (f.error.to_string(), f.stats))
}
