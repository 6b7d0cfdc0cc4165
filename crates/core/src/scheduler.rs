//! Scheduling rounds: `strata tick` (what the ECS scheduled task runs) and the daemon loop.
//! A tick decides what is due from the clock and the run state, takes a lease per model so
//! overlapping ticks (on one machine or on many tasks sharing the S3 run state) never run a
//! model twice, and records each success and each run.

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;
use crate::engine::Engine;
use crate::ids::ModelId;
use crate::planner::{Decision, decide, is_current};
use crate::project::Project;
use crate::runner::{Guard, ModelRun, Outcome, Planned, RunOptions, Stop, new_id, run_planned};
use crate::state::{RunState, StateError};
use crate::window::Window;
use std::sync::Arc;

pub use crate::state::RESET;

/// How long a lease holds without renewal: a run renews its lease every
/// [`LEASE_RENEW_EVERY`], so a killed run's lease frees itself within this.
pub const LEASE_TTL: Duration = Duration::minutes(2);
/// How often a run renews its lease.
pub const LEASE_RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn ts(t: DateTime<Utc>) -> String {
    crate::clock::stamp(t)
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc))
}

/// A tick's plan: what runs, and why the rest does not.
#[derive(Debug, Clone)]
pub struct TickPlan {
    pub due: Vec<Planned>,
    pub not_due: Vec<(ModelId, String)>,
}

/// How far `model` ran, from the run state.
async fn last_at(state: &dyn RunState, model: &ModelId) -> Result<Option<DateTime<Utc>>, StateError> {
    let m = state.model(&model.to_string()).await?;
    Ok(m.and_then(|m| m.last_at).as_deref().and_then(parse))
}

/// Decides what a tick at `now` runs, from the run state.
pub async fn plan_tick(
    project: &Project,
    state: &dyn RunState,
    now: DateTime<Utc>,
) -> Result<TickPlan, StateError> {
    let mut plan = TickPlan { due: Vec::new(), not_due: Vec::new() };
    for id in &project.dag.order {
        let last = last_at(state, id).await?;
        match decide(&project.models[id], last, now) {
            Decision::Due { at, from, firings } => {
                if firings > 1 {
                    tracing::info!(model = %id, firings, "catching up missed firings in one run");
                }
                plan.due.push(Planned { id: id.clone(), opts: RunOptions::new(at, from) });
            }
            Decision::NotDue { next } => plan
                .not_due
                .push((id.clone(), next.map_or("no next firing".into(), |n| format!("next at {}", ts(n))))),
            Decision::Manual => plan.not_due.push((id.clone(), "no schedule: runs on demand".into())),
        }
    }
    Ok(plan)
}

/// Who is running: the ECS task, Step Functions execution or host, for leases and run
/// history. `STRATA_TASK_ID` when set (the shipped task definition and state machine set
/// it), else the ECS container's id, else `<host>:<pid>`.
pub fn task_id() -> String {
    if let Ok(id) = std::env::var("STRATA_TASK_ID")
        && !id.trim().is_empty()
    {
        return id.trim().to_string();
    }
    if let Ok(uri) = std::env::var("ECS_CONTAINER_METADATA_URI_V4")
        && let Some(id) = uri.trim_end_matches('/').rsplit('/').next()
    {
        return format!("ecs:{id}");
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether a lease owner is a process of this host that is gone (killed, crashed): its
/// lease need not be waited out. Owners name their task last, after " on " for ticks; a
/// task id of the `<host>:<pid>` form is checked against this host's processes.
fn owner_is_dead_here(owner: &str) -> bool {
    let task = owner.rsplit(" on ").next().unwrap_or(owner);
    let me = task_id();
    let (Some((host, pid)), Some((my_host, _))) = (task.rsplit_once(':'), me.rsplit_once(':')) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    host == my_host
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Takes the lease on `key` for `owner` as [`RunState::acquire_lease`] does, and also from
/// a holder that is a dead process of this host (released only if that holder still holds
/// it, so two takers racing for it cannot both win).
pub async fn take_lease(
    state: &dyn RunState,
    key: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Result<(), crate::state::Lease>, StateError> {
    match state.acquire_lease(key, owner, &ts(now), &ts(now + LEASE_TTL)).await? {
        Err(holder) if owner_is_dead_here(&holder.owner) => {
            tracing::warn!(lease = %key, "taking over the lease of {}, a process of this host that is gone", holder.owner);
            state.release_lease(key, &holder.owner).await?;
            state.acquire_lease(key, owner, &ts(now), &ts(now + LEASE_TTL)).await
        }
        r => Ok(r),
    }
}

/// Keeps a lease while work runs: renews it every [`LEASE_RENEW_EVERY`] until dropped.
pub struct Renewal(tokio::task::JoinHandle<()>);

impl Renewal {
    /// Renews `key` for `owner`, from `start` (the clock's time now) on.
    pub fn start(state: Arc<dyn RunState>, key: String, owner: String, start: DateTime<Utc>) -> Self {
        let since = std::time::Instant::now();
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_RENEW_EVERY).await;
                let at = start + Duration::from_std(since.elapsed()).unwrap_or_default();
                match state.acquire_lease(&key, &owner, &ts(at), &ts(at + LEASE_TTL)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(l)) => {
                        tracing::error!(lease = %key, "lease lost to {} until {}", l.owner, l.until)
                    }
                    Err(e) => tracing::warn!(lease = %key, "renewing lease: {e}"),
                }
            }
        }))
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a model waits for an upstream model that another tick is running.
const UPSTREAM_WAIT_ROUNDS: u32 = 600;

/// Leases, readiness of upstream models and run state, for scheduled runs.
struct TickGuard<'a> {
    project: &'a Project,
    state: Arc<dyn RunState>,
    clock: &'a dyn Clock,
    owner: String,
    task: String,
    stop: &'a Stop,
    /// The lease renewals of the models running now.
    renewals: std::sync::Mutex<std::collections::BTreeMap<ModelId, Renewal>>,
}

/// An upstream model a run waits for: which, how far it is published, and until when
/// another tick's lease on it holds (if one does).
type Behind = (ModelId, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl TickGuard<'_> {
    /// The first upstream model that is not current for `end` or that another tick is
    /// running now, how far it is published, and whether it is running.
    async fn behind(&self, id: &ModelId, end: DateTime<Utc>) -> Result<Option<Behind>, String> {
        let now = ts(self.clock.now());
        for up in self.project.dag.upstream(id) {
            let last = last_at(&*self.state, up).await.map_err(|e| e.to_string())?;
            let lease = self.state.lease(&up.to_string()).await.map_err(|e| e.to_string())?;
            let running =
                lease.filter(|l| l.owner != self.owner && l.until > now).and_then(|l| parse(&l.until));
            if running.is_some() || !is_current(&self.project.models[up], last, end) {
                return Ok(Some((up.clone(), last, running)));
            }
        }
        Ok(None)
    }
}

#[async_trait::async_trait]
impl Guard for TickGuard<'_> {
    async fn before(&self, id: &ModelId, window: &Window) -> Result<(), String> {
        let model = id.to_string();
        // An upstream model another tick is running now: wait for it (ticks that overlap
        // share the work instead of each skipping what the others run).
        // As long as the lease is renewed: one whose holder died stops being waited for
        // once it would have expired, counted in real time from when the wait began (a
        // tick's clock may be fixed at its `--at`).
        let (mut rounds, began, clock_began) = (0, std::time::Instant::now(), self.clock.now());
        while let Some((up, last, running)) = self.behind(id, window.end).await? {
            let waited = Duration::from_std(began.elapsed()).unwrap_or_default();
            let now = clock_began + waited.max(self.clock.now() - clock_began);
            let renewed = running.is_some_and(|until| until > now);
            if !renewed || rounds >= UPSTREAM_WAIT_ROUNDS || self.stop.raised() {
                return Err(format!(
                    "waiting for upstream {up} (published up to {})",
                    last.map_or("never".into(), ts)
                ));
            }
            rounds += 1;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let now = self.clock.now();
        match take_lease(&*self.state, &model, &self.owner, now).await {
            Ok(Ok(())) => {}
            Ok(Err(l)) => return Err(format!("leased by {} until {}", l.owner, l.until)),
            Err(e) => return Err(e.to_string()),
        }
        // Renewed while the model runs: a long run keeps it, a killed one loses it soon.
        let renewal = Renewal::start(self.state.clone(), model.clone(), self.owner.clone(), now);
        self.renewals.lock().expect("renewals lock").insert(id.clone(), renewal);
        // Another tick may have run this window while we waited for the lease.
        let last = last_at(&*self.state, id).await.ok().flatten();
        if let Some(last) = last.filter(|l| *l >= window.end) {
            self.renewals.lock().expect("renewals lock").remove(id);
            let _ = self.state.release_lease(&model, &self.owner).await;
            return Err(format!("already run up to {} by another tick", ts(last)));
        }
        Ok(())
    }

    async fn after(&self, run: &mut ModelRun, opts: &RunOptions) {
        let model = run.model.to_string();
        let now = self.clock.now();
        settle_conflict(&*self.state, run).await;
        if matches!(run.outcome, Outcome::Published(_) | Outcome::Unchanged)
            && let Err(e) = self.state.record_success(&model, &ts(opts.at), &self.owner, &ts(now)).await
        {
            tracing::error!(model = %run.model, "recording run state: {e}");
        }
        if let Err(e) = self.state.record_run(&run.record(&self.task, Utc::now())).await {
            tracing::error!(model = %run.model, "recording run history: {e}");
        }
        self.renewals.lock().expect("renewals lock").remove(&run.model);
        if let Err(e) = self.state.release_lease(&model, &self.owner).await {
            tracing::warn!(model = %run.model, "releasing lease: {e}");
        }
    }
}

/// A publish that lost its compare-and-swap to a run that computed this window too (a run
/// of the model published since this one started, whose window covers this one's) is
/// superseded, not failed: the window's data is there, and the message names that run. Lost
/// to a run of another window (a tick while a past window was rerun, a rollback), it stays
/// a conflict: this window must run again. The winner records its run just after its
/// publish: it is given a few seconds.
async fn settle_conflict(state: &dyn RunState, run: &mut ModelRun) {
    let Outcome::Conflict(why) = &run.outcome else { return };
    let started = Utc::now() - Duration::from_std(run.elapsed).unwrap_or_default();
    let since = ts(started - Duration::seconds(1));
    for attempt in 0..SETTLE_ROUNDS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let Ok(runs) = state.runs(Some(&run.model.to_string()), Some(&since), None).await else { continue };
        let covers = |r: &crate::state::RunRecord| {
            r.outcome == "published"
                && r.run_id != run.run_id
                && parse(&r.window_start).is_some_and(|s| s <= run.window.start)
                && parse(&r.window_end).is_some_and(|e| e >= run.window.end)
        };
        if let Some(winner) = runs.iter().rev().find(|r| covers(r)) {
            run.outcome = Outcome::Superseded(format!(
                "run {} on {} published this window first (version {}; {why})",
                winner.run_id,
                winner.task,
                winner.version.as_deref().unwrap_or("?")
            ));
            return;
        }
    }
}

/// How many times a lost publish looks for the run that won (250 ms apart).
const SETTLE_ROUNDS: u32 = 8;

/// What a manual `strata run` records: each success moves the model's run state (never
/// backwards), so the next tick does not compute those windows again, and each run goes
/// into the run history. No leases: a person running a model means it.
pub struct RecordSuccess<'a> {
    pub project: &'a Project,
    pub state: Arc<dyn RunState>,
    pub clock: &'a dyn Clock,
    pub run_id: String,
    pub task: String,
}

#[async_trait::async_trait]
impl Guard for RecordSuccess<'_> {
    /// A `table` model is replaced whole: a run for an instant before the one it is
    /// published as of would put an older snapshot over a newer one (a rerun of a past
    /// window, `--at` in the past). Incremental models replace only their window's
    /// partitions and always run.
    async fn before(&self, id: &ModelId, window: &Window) -> Result<(), String> {
        if self.project.models[id].config.materialized != crate::project::Materialization::Table {
            return Ok(());
        }
        let state = match self.state.model(&id.to_string()).await {
            Ok(s) => s,
            Err(e) => return Err(format!("reading the run state: {e}")),
        };
        match state.and_then(|s| s.last_at).and_then(|t| parse(&t)) {
            Some(last) if window.end < last => Err(format!(
                "published as of {}, later than this run's {}: a table model is replaced whole, so an older snapshot is not published over a newer one (strata rollback, or strata state reset, moves it back on purpose)",
                ts(last),
                ts(window.end)
            )),
            _ => Ok(()),
        }
    }

    async fn after(&self, run: &mut ModelRun, opts: &RunOptions) {
        let now = self.clock.now();
        settle_conflict(&*self.state, run).await;
        if matches!(run.outcome, Outcome::Published(_) | Outcome::Unchanged)
            && let Err(e) =
                self.state.record_success(&run.model.to_string(), &ts(opts.at), &self.run_id, &ts(now)).await
        {
            tracing::error!(model = %run.model, "recording run state: {e}");
        }
        if let Err(e) = self.state.record_run(&run.record(&self.task, Utc::now())).await {
            tracing::error!(model = %run.model, "recording run history: {e}");
        }
    }
}

/// One scheduling round: runs everything due now, independent models in parallel up to
/// the concurrency cap.
pub async fn tick(
    project: &Project,
    engine: &dyn Engine,
    state: Arc<dyn RunState>,
    clock: &dyn Clock,
    stop: &Stop,
    flags: &crate::runner::Flags,
) -> Result<(TickPlan, Vec<ModelRun>), StateError> {
    let now = clock.now();
    let mut plan = plan_tick(project, &*state, now).await?;
    for p in &mut plan.due {
        p.opts.flags = flags.clone();
    }
    let task = task_id();
    let guard = TickGuard {
        project,
        state,
        clock,
        owner: format!("{} on {task}", new_id("tick-", now)),
        task,
        stop,
        renewals: Default::default(),
    };
    let runs =
        run_planned(project, engine, clock, &plan.due, project.settings.max_concurrency, stop, &guard).await;
    Ok((plan, runs))
}

/// When the next tick is worth running: the earliest next firing of any schedule.
pub fn next_wakeup(project: &Project, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    project.models.values().filter_map(|m| m.config.schedule.as_ref()).filter_map(|s| s.next_after(now)).min()
}
