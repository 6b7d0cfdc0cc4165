//! `strata backfill`: recompute a range of windows, resumably, and publish each table once
//! at the end so readers see the whole backfill at once, never a mix of days.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::clock::Clock;
use crate::engine::{Engine, StepStats};
use crate::ids::ModelId;
use crate::materialize::{Completion, Step, unless_stopped};
use crate::project::{Materialization, Project};
use crate::runner::{ModelRun, Outcome, RunOptions, Stop, job_for, new_id, replaced_partitions};
use crate::state::RunState;
use crate::window::{Window, fmt_ts};
use std::sync::Arc;

/// What to backfill.
#[derive(Debug, Clone)]
pub struct BackfillSpec {
    pub models: Vec<ModelId>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub parallel: usize,
    /// Forget the progress of an interrupted attempt and start over.
    pub restart: bool,
    /// What the invocation asks (`--allow-empty-window`, the failpoint test hook).
    pub flags: crate::runner::Flags,
}

/// The windows a model's backfill computes: one per grain unit in `[from, to)`; a model
/// rebuilt in full (`table`) runs once, at `to`.
///
/// A unit's window is the scheduled run that finalises it: the one where it is the oldest
/// unit of the lookback, so data that arrived late (up to `lookback` units) counts exactly
/// as it would have. Only the unit's own partitions are kept from it, so every partition
/// is written once and windows can run in parallel.
pub fn windows(project: &Project, id: &ModelId, spec: &BackfillSpec) -> Vec<Window> {
    let c = &project.models[id].config;
    match c.materialized {
        Materialization::Incremental => Window::spanning(spec.from, spec.to, c.grain)
            .units()
            .into_iter()
            .map(|start| Window {
                start,
                end: start + c.grain.duration() * (c.lookback as i32 + 1),
                grain: c.grain,
            })
            .collect(),
        _ => vec![crate::runner::window_for(project, id, &RunOptions::new(spec.to, None))],
    }
}

/// The partitions a backfill window keeps: those of its first unit.
fn kept(w: &Window) -> crate::engine::Partitions {
    replaced_partitions(&Window { start: w.start, end: w.start + w.grain.duration(), grain: w.grain })
}

/// Progress and results of one model's backfill.
#[derive(Debug, Clone)]
pub struct ModelBackfill {
    pub model: ModelId,
    /// This invocation's run id.
    pub run_id: String,
    pub windows: usize,
    /// Windows computed by this invocation (the rest were done by an interrupted one).
    pub computed: usize,
    pub outcome: Outcome,
    pub stats: StepStats,
    pub elapsed: std::time::Duration,
    /// The model's fingerprint when the backfill ran it (recorded with its run).
    pub fingerprint: Option<crate::fingerprint::Fingerprint>,
}

impl ModelBackfill {
    /// As a model run over the whole range (for run history and Step Functions).
    pub fn as_run(&self, project: &Project, spec: &BackfillSpec) -> ModelRun {
        ModelRun {
            model: self.model.clone(),
            run_id: self.run_id.clone(),
            window: Window {
                start: spec.from,
                end: spec.to,
                grain: project.models[&self.model].config.grain,
            },
            outcome: self.outcome.clone(),
            stats: self.stats,
            elapsed: self.elapsed,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// Observes progress (a progress bar on a terminal, log lines otherwise).
pub trait Progress: Sync {
    fn start(&self, model: &ModelId, total: usize, done: usize);
    fn window_done(&self, model: &ModelId, window: &Window);
    fn finish(&self, model: &ModelId);
}

/// The id of a backfill: the same selection over the same range is the same backfill, on
/// any task, so a retry (a Step Functions retry, a new ECS task, an operator running the
/// command again) resumes it and two of them at once do not both run.
pub fn backfill_id(spec: &BackfillSpec) -> String {
    let mut parts: Vec<String> = spec.models.iter().map(ToString::to_string).collect();
    parts.sort();
    parts.push(fmt_ts(spec.from));
    parts.push(fmt_ts(spec.to));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("bf-{:016x}", crate::ids::fnv128(&refs) as u64)
}

/// A backfill that could not start.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(
        "backfill {id} of this selection and range is running on {owner} (lease until {until}); \
         run the same command again after that to resume it, or `strata state unlock --backfill {id}` \
         if that task is gone"
    )]
    Running { id: String, owner: String, until: String },
    #[error("run state: {0}")]
    State(#[from] crate::state::StateError),
}

/// The lease key of a backfill.
pub fn lease_key(id: &str) -> String {
    format!("backfill-{id}")
}

/// Runs the backfill, model by model in DAG order (a model reads its upstream's published
/// backfill), windows of one model `parallel` at a time. The backfill holds a lease for its
/// whole run, as the task it runs on: another task finds it running and refuses; the same
/// task (a retry that carries the same `STRATA_TASK_ID`) takes it over at once. Each
/// model's backfill goes into the run history.
pub async fn run(
    project: &Project,
    engine: &dyn Engine,
    state: Arc<dyn RunState>,
    clock: &dyn Clock,
    spec: &BackfillSpec,
    stop: &Stop,
    progress: &dyn Progress,
) -> Result<Vec<ModelBackfill>, BackfillError> {
    let id = backfill_id(spec);
    let task = crate::scheduler::task_id();
    let now = clock.now();
    let lease = lease_key(&id);
    if let Err(l) = crate::scheduler::take_lease(&*state, &lease, &task, now).await? {
        return Err(BackfillError::Running { id, owner: l.owner, until: l.until });
    }
    let renewal = crate::scheduler::Renewal::start(state.clone(), lease.clone(), task.clone(), now);
    tracing::info!(backfill = %id, task = %task, "backfill started");
    let run_id = new_id("backfill-", now);
    let mut out = Vec::new();
    let mut failed: BTreeSet<ModelId> = BTreeSet::new();
    let fingerprints = crate::project::fingerprints(project).0;
    for model in &spec.models {
        let started = std::time::Instant::now();
        let r = if let Some(up) = project.dag.upstream(model).iter().find(|u| failed.contains(*u)) {
            ModelBackfill {
                model: model.clone(),
                run_id: run_id.clone(),
                windows: 0,
                computed: 0,
                outcome: Outcome::Skipped(format!("upstream {up} failed")),
                stats: StepStats::default(),
                elapsed: std::time::Duration::ZERO,
                fingerprint: None,
            }
        } else {
            let mut r = one(project, engine, &*state, clock, spec, &id, &run_id, model, stop, progress).await;
            r.elapsed = started.elapsed();
            r.fingerprint = fingerprints.get(model).cloned();
            r
        };
        if !matches!(r.outcome, Outcome::Published(_)) {
            failed.insert(model.clone());
        }
        if let Err(e) = state.record_run(&r.as_run(project, spec).record(&task, Utc::now())).await {
            tracing::error!(model = %model, "recording run history: {e}");
        }
        out.push(r);
    }
    drop(renewal);
    if let Err(e) = state.release_lease(&lease, &task).await {
        tracing::warn!(backfill = %id, "releasing lease: {e}");
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn one(
    project: &Project,
    engine: &dyn Engine,
    state: &dyn RunState,
    clock: &dyn Clock,
    spec: &BackfillSpec,
    key: &str,
    run_id: &str,
    id: &ModelId,
    stop: &Stop,
    progress: &dyn Progress,
) -> ModelBackfill {
    let all = windows(project, id, spec);
    let mut result = ModelBackfill {
        model: id.clone(),
        run_id: run_id.to_string(),
        windows: all.len(),
        computed: 0,
        outcome: Outcome::Unchanged,
        stats: StepStats::default(),
        elapsed: std::time::Duration::ZERO,
        fingerprint: None,
    };
    let fail = |mut r: ModelBackfill, e: String| {
        r.outcome = Outcome::Failed(e);
        r
    };
    let now = clock.now();
    let model_key = id.to_string();
    if spec.restart
        && let Err(e) = state.backfill_clear(key, &model_key).await
    {
        return fail(result, e.to_string());
    }
    let done = match state.backfill_done(key, &model_key).await {
        Ok(d) => d,
        Err(e) => return fail(result, e.to_string()),
    };
    // Resume into the version an interrupted attempt started, so its windows count.
    let version = done.first().map(|(_, v)| v.clone()).unwrap_or_else(|| new_id("v", now));
    let done: BTreeSet<String> = done.into_iter().map(|(w, _)| w).collect();
    let todo: Vec<&Window> = all.iter().filter(|w| !done.contains(&fmt_ts(w.start))).collect();
    progress.start(id, all.len(), all.len() - todo.len());

    let incremental = project.models[id].config.materialized == Materialization::Incremental;
    if !incremental {
        let opts = RunOptions::new(spec.to, None).with(&spec.flags);
        let runs = crate::runner::run(project, engine, clock, std::slice::from_ref(id), &opts).await;
        progress.finish(id);
        let r = runs.into_iter().next().expect("one model ran");
        result.computed = 1;
        result.stats = r.stats;
        result.outcome = r.outcome;
        return result;
    }

    let mut pending = todo.into_iter();
    let mut running = FuturesUnordered::new();
    let mut cancelled = false;
    loop {
        while running.len() < spec.parallel.max(1) && !stop.raised() {
            let Some(w) = pending.next() else { break };
            let job = match job_for(project, id, *w, run_id, &version, now) {
                Ok(j) => j,
                Err(e) => return fail(result, e.to_string()),
            };
            running.push(async move { (w, engine.stage_part(&job, &kept(w)).await) });
        }
        // On a stop, statements still running on a remote engine are cancelled, so the
        // windows in flight end now rather than when their queries would have.
        let next = tokio::select! {
            r = running.next() => r,
            () = stop.wait(), if !cancelled => {
                engine.cancel().await;
                cancelled = true;
                continue;
            }
        };
        let Some((w, r)) = next else { break };
        match r {
            Ok(stats) => {
                if let Err(e) = state.backfill_mark(key, &model_key, &fmt_ts(w.start), &version).await {
                    return fail(result, e.to_string());
                }
                result.computed += 1;
                result.stats += stats;
                progress.window_done(id, w);
                failpoint(&spec.flags, &format!("backfill-window:{}", done.len() + result.computed));
            }
            Err(e) => return fail(result, format!("window [{}, {}): {e}", fmt_ts(w.start), fmt_ts(w.end))),
        }
    }
    progress.finish(id);
    let finished = done.len() + result.computed;
    if stop.raised() && finished < all.len() {
        let why = format!(
            "interrupted after {finished} of {} windows; run the same command again to resume",
            all.len()
        );
        return fail(result, why);
    }
    let replaces: crate::engine::Partitions = all.iter().flat_map(|w| kept(w).to_vec()).collect();
    let Ok(mut template) =
        job_for(project, id, *all.last().expect("at least one window"), run_id, &version, now)
    else {
        return fail(result, "cannot render the model".into());
    };
    // The sealed version replaces the whole range (its publish lays it out from the range's
    // first partition), not the last window's.
    if let crate::engine::JobKind::Select { replaces: r @ Some(_), .. } = &mut template.kind {
        *r = Some(replaces.clone());
    }
    // Published: the next backfill of this range is a new one, not a resumption.
    let finished = async |mut r: ModelBackfill| {
        if let Err(e) = state.backfill_clear(key, &model_key).await {
            tracing::warn!(model = %id, "forgetting the backfill's progress: {e}");
        }
        r.outcome = Outcome::Published(version.clone());
        r
    };
    // An earlier attempt may have published this version and been killed before it could
    // forget its progress: there is nothing left to do.
    match engine.was_published(&template).await {
        Ok(true) => {
            eprintln!("{id}: version {version} of this backfill was published by an earlier attempt");
            return finished(result).await;
        }
        Ok(false) => {}
        Err(e) => return fail(result, e.to_string()),
    }
    // The run protocol (`materialize::complete`), as for any run: sealing and auditing are
    // abandoned on a stop, a fence refusal is REFUSED, a lost compare-and-swap a CONFLICT,
    // and nothing is sent once the stop is raised before the publish.
    let staged =
        match unless_stopped(engine, stop, engine.seal(&template, &replaces), StepStats::default()).await {
            Ok(s) => s,
            Err(f) => return fail(result, f.error.to_string()),
        };
    let after = |step: Step| match step {
        Step::Staged => failpoint(&spec.flags, "backfill-sealed"),
        Step::Audited => {}
        Step::Published => failpoint(&spec.flags, "backfill-published"),
    };
    let completion =
        Completion { engine, stop, allow_empty_window: spec.flags.allow_empty_window, clock, after: &after };
    match crate::materialize::complete(&completion, &staged, async {}).await {
        Ok((Outcome::Published(_), _)) => {}
        Ok((outcome, _)) => {
            result.outcome = outcome;
            return result;
        }
        Err(f) => return fail(result, f.error.to_string()),
    }
    result.stats.rows = staged.stats.rows;
    finished(result).await
}

/// Test hook: `STRATA_FAILPOINT=<step>` aborts the process at that step of a backfill
/// (`<step>=hang`: stops there for good).
fn failpoint(flags: &crate::runner::Flags, step: &str) {
    crate::runner::failpoint(flags, step, None);
}
