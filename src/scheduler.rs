//! Scheduling rounds: `strata tick` (what the ECS scheduled task runs) and the daemon loop.
//! A tick decides what is due from the clock and the run state in the catalog, takes a
//! lease per model so overlapping ticks never run a model twice, and records each success.

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;
use crate::engine::Engine;
use crate::ids::ModelId;
use crate::local::catalog::Catalog;
use crate::planner::{Decision, decide, is_current};
use crate::project::Project;
use crate::runner::{Guard, ModelRun, Outcome, Planned, RunOptions, Stop, new_id, run_planned};
use crate::window::Window;

/// The run id an operator's `strata state reset` records (state read back from Glue does not
/// overwrite it).
pub const RESET: &str = "reset";

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

/// Decides what a tick at `now` runs, from the run state in `catalog`.
pub fn plan_tick(project: &Project, catalog: &Catalog, now: DateTime<Utc>) -> Result<TickPlan, String> {
    let mut plan = TickPlan { due: Vec::new(), not_due: Vec::new() };
    for id in &project.dag.order {
        let last = catalog.last_at(&id.to_string()).map_err(|e| e.to_string())?.as_deref().and_then(parse);
        match decide(&project.models[id], last, now) {
            Decision::Due { at, from, firings } => {
                if firings > 1 {
                    tracing::info!(model = %id, firings, "catching up missed firings in one run");
                }
                plan.due.push(Planned { id: id.clone(), opts: RunOptions { at, from } });
            }
            Decision::NotDue { next } => plan
                .not_due
                .push((id.clone(), next.map_or("no next firing".into(), |n| format!("next at {}", ts(n))))),
            Decision::Manual => plan.not_due.push((id.clone(), "no schedule: runs on demand".into())),
        }
    }
    Ok(plan)
}

/// How long a model waits for an upstream model that another tick is running.
const UPSTREAM_WAIT_ROUNDS: u32 = 600;

/// Leases, readiness of upstream models and run state, for scheduled runs.
struct TickGuard<'a> {
    project: &'a Project,
    catalog: &'a Catalog,
    clock: &'a dyn Clock,
    owner: String,
    stop: &'a Stop,
    /// The lease renewals of the models running now.
    renewals: std::sync::Mutex<std::collections::BTreeMap<ModelId, tokio::task::JoinHandle<()>>>,
}

/// An upstream model a run waits for: which, how far it is published, whether another tick
/// is running it now.
type Behind = (ModelId, Option<DateTime<Utc>>, bool);

impl TickGuard<'_> {
    /// The first upstream model that is not current for `end` or that another tick is
    /// running now, how far it is published, and whether it is running.
    fn behind(&self, id: &ModelId, end: DateTime<Utc>) -> Result<Option<Behind>, String> {
        let now = ts(self.clock.now());
        for up in self.project.dag.upstream(id) {
            let last =
                self.catalog.last_at(&up.to_string()).map_err(|e| e.to_string())?.as_deref().and_then(parse);
            let lease = self.catalog.lease(&up.to_string()).map_err(|e| e.to_string())?;
            let running = lease.is_some_and(|(who, until)| who != self.owner && until > now);
            if running || !is_current(&self.project.models[up], last, end) {
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
        let mut rounds = 0;
        while let Some((up, last, running)) = self.behind(id, window.end)? {
            if !running || rounds >= UPSTREAM_WAIT_ROUNDS || self.stop.raised() {
                return Err(format!(
                    "waiting for upstream {up} (published up to {})",
                    last.map_or("never".into(), ts)
                ));
            }
            rounds += 1;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let now = self.clock.now();
        match self.catalog.acquire_lease(&model, &self.owner, &ts(now), &ts(now + LEASE_TTL)) {
            Ok(Ok(())) => {}
            Ok(Err((who, until))) => return Err(format!("leased by {who} until {until}")),
            Err(e) => return Err(e.to_string()),
        }
        // Renewed while the model runs: a long run keeps it, a killed one loses it soon.
        let catalog = self.catalog.reopen().map_err(|e| e.to_string())?;
        let (owner, start, since) = (self.owner.clone(), now, std::time::Instant::now());
        let renew_model = model.clone();
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_RENEW_EVERY).await;
                let at = start + Duration::from_std(since.elapsed()).unwrap_or_default();
                if let Err(e) = catalog.acquire_lease(&renew_model, &owner, &ts(at), &ts(at + LEASE_TTL)) {
                    tracing::warn!(model = %renew_model, "renewing lease: {e}");
                }
            }
        });
        self.renewals.lock().expect("renewals lock").insert(id.clone(), renewal);
        // Another tick may have run this window while we waited for the lease.
        let last = self.catalog.last_at(&model).ok().flatten().as_deref().and_then(parse);
        if last.is_some_and(|l| l >= window.end) {
            let _ = self.catalog.release_lease(&model, &self.owner);
            return Err(format!("already run up to {} by another tick", ts(last.expect("checked"))));
        }
        Ok(())
    }

    async fn after(&self, id: &ModelId, opts: &RunOptions, outcome: &Outcome) {
        let model = id.to_string();
        if let Some(renewal) = self.renewals.lock().expect("renewals lock").remove(id) {
            renewal.abort();
        }
        if matches!(outcome, Outcome::Published(_) | Outcome::Unchanged)
            && let Err(e) = self.catalog.set_last_at(&model, &ts(opts.at), &self.owner, &ts(self.clock.now()))
        {
            tracing::error!(model = %id, "recording run state: {e}");
        }
        if let Err(e) = self.catalog.release_lease(&model, &self.owner) {
            tracing::warn!(model = %id, "releasing lease: {e}");
        }
    }
}

/// What a manual `strata run` records: each success moves the model's run state (never
/// backwards), so the next tick does not compute those windows again. No leases: a person
/// running a model means it.
pub struct RecordSuccess<'a> {
    pub catalog: &'a Catalog,
    pub clock: &'a dyn Clock,
    pub run_id: String,
}

#[async_trait::async_trait]
impl Guard for RecordSuccess<'_> {
    async fn before(&self, _: &ModelId, _: &Window) -> Result<(), String> {
        Ok(())
    }

    async fn after(&self, id: &ModelId, opts: &RunOptions, outcome: &Outcome) {
        if matches!(outcome, Outcome::Published(_) | Outcome::Unchanged)
            && let Err(e) =
                self.catalog.set_last_at(&id.to_string(), &ts(opts.at), &self.run_id, &ts(self.clock.now()))
        {
            tracing::error!(model = %id, "recording run state: {e}");
        }
    }
}

/// One scheduling round: runs everything due now, independent models in parallel up to
/// the concurrency cap.
pub async fn tick(
    project: &Project,
    engine: &dyn Engine,
    catalog: &Catalog,
    clock: &dyn Clock,
    stop: &Stop,
) -> Result<(TickPlan, Vec<ModelRun>), String> {
    let now = clock.now();
    let plan = plan_tick(project, catalog, now)?;
    let guard = TickGuard {
        project,
        catalog,
        clock,
        owner: new_id("tick-", now),
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
