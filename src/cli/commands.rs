//! Act: one short function per command. Each resolves what it needs (`resolve`), does the
//! work through the library (runner, scheduler, backfill, lifecycle, run state, engines),
//! hands what it has to `print`, and returns the exit code or a typed error.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};

use super::args::{Cli, Command, EngineArg, Metrics, OutputFormat, StateAction};
use super::resolve::{
    at_or_now, backend, backend_for, load, load_local_by_default, local_engine, not_future, one_model,
    read_only, selected, stop_on_signals,
};
use super::{EXIT_MODEL_FAILED, EXIT_OK, Error, print};
use crate::backend::Backend;
use crate::callback::TaskCallback;
use crate::clock::Clock;
use crate::config::EngineKind;
use crate::engine::Engine;
use crate::ids::{Layer, ModelId};
use crate::lifecycle;
use crate::project::Project;
use crate::runner::{self, ModelRun, RunOptions};
use crate::state::Access;

/// What every command may use: the invocation's global flags, environment and clock.
struct Ctx<'a> {
    dir: &'a Path,
    env: &'a HashMap<String, String>,
    clock: &'a dyn Clock,
    callback: Option<&'a TaskCallback>,
    metrics: Metrics,
    allow_future: bool,
}

impl Ctx<'_> {
    /// The invocation's flags: what the command line asks, and the failpoint test hook
    /// (`STRATA_FAILPOINT`).
    fn flags(&self, allow_empty_window: bool, read_whole_windows: bool) -> runner::Flags {
        runner::Flags {
            allow_empty_window,
            read_whole_windows,
            failpoint: self.env.get("STRATA_FAILPOINT").cloned(),
        }
    }

    /// Answers a waiting Step Functions task with the runs' summary.
    async fn answer(&self, command: &'static str, runs: &[ModelRun]) -> Result<(), Error> {
        match self.callback {
            Some(cb) => cb.report(command, runs).await.map_err(|e| Error::Infra(e.to_string())),
            None => Ok(()),
        }
    }

    fn at(&self, at: Option<&str>, flag: &str) -> Result<DateTime<Utc>, Error> {
        not_future(at_or_now(at, self.clock, flag)?, self.clock, self.allow_future, flag)
    }
}

fn exit_for(runs: &[ModelRun]) -> u8 {
    if runs.iter().any(|r| r.outcome.is_failure()) { EXIT_MODEL_FAILED } else { EXIT_OK }
}

/// Runs one parsed command. `env` is the process environment, `clock` the time source.
pub(super) async fn execute(
    cli: Cli,
    env: HashMap<String, String>,
    clock: &dyn Clock,
    callback: Option<&TaskCallback>,
) -> Result<u8, Error> {
    let ctx = Ctx {
        dir: &cli.project_dir,
        env: &env,
        clock,
        callback,
        metrics: cli.metrics,
        allow_future: cli.allow_future,
    };
    match cli.command {
        Command::Demo { at, days, sessions_per_hour, seed } => {
            demo(&ctx, at, days, sessions_per_hour, seed).await
        }
        Command::Run { daemon: true, .. } => daemon(&ctx).await,
        Command::Run { selectors, at, from, daemon: false, allow_empty_window } => {
            run(&ctx, &selectors, at, from, allow_empty_window).await
        }
        Command::Tick { at } => tick(&ctx, at).await,
        Command::Backfill {
            selectors,
            from,
            to,
            downstream,
            parallel,
            dry_run,
            restart,
            allow_empty_window,
        } => {
            let spec = BackfillArgs { from, to, downstream, parallel, dry_run, restart, allow_empty_window };
            backfill(&ctx, &selectors, spec).await
        }
        Command::Render { model, engine, at, from } => render(&ctx, &model, engine, at, from),
        Command::Test { selectors, engine } => test(&ctx, &selectors, engine).await,
        Command::Docs { out, publish } => docs(&ctx, out, publish).await,
        Command::Plan { selectors, format } => plan(&ctx, &selectors, format).await,
        Command::Status { selectors, format } => status(&ctx, &selectors, format).await,
        Command::Rollback { model, to } => rollback(&ctx, &model, to).await,
        Command::Gc { dry_run, format } => gc(&ctx, dry_run, format).await,
        Command::Runs { selectors, since, format } => runs(&ctx, &selectors, since, format).await,
        Command::State { action } => state(&ctx, action).await,
        Command::Query { sql, file, format } => {
            let sql = super::resolve::statement(sql, file)?;
            query(&ctx, &sql, format).await
        }
    }
}

async fn demo(
    ctx: &Ctx<'_>,
    at: Option<String>,
    days: u32,
    sessions_per_hour: u32,
    seed: u64,
) -> Result<u8, Error> {
    let at = at_or_now(at.as_deref(), ctx.clock, "--at")?;
    let project = load_local_by_default(ctx.dir, ctx.env)?;
    let engine = local_engine(&project)?;
    let spec = crate::demo::DemoSpec { at, days, sessions_per_hour, seed, env: project.settings.env.clone() };
    let summary = crate::demo::generate(engine.root(), &spec)
        .context("writing sample events")
        .map_err(|e| Error::Infra(format!("{e:#}")))?;
    print::demo_summary(&summary, &engine.root().join("bronze/events"));
    // Recorded like a manual run: the models' run state and run history.
    let opts = RunOptions::new(at, Some(at - Duration::days(days as i64 + 1)));
    let plan: Vec<runner::Planned> =
        project.dag.order.iter().map(|id| runner::Planned { id: id.clone(), opts: opts.clone() }).collect();
    let record = crate::scheduler::RecordSuccess {
        project: &project,
        state: Backend::run_state(&engine),
        clock: ctx.clock,
        run_id: runner::new_id("demo-", ctx.clock.now()),
        task: crate::scheduler::task_id(),
    };
    let runs =
        runner::run_planned(&project, &engine, ctx.clock, &plan, 1, &runner::Stop::never(), &record).await;
    print::report(&runs, ctx.metrics, ctx.clock.now());
    println!("try: strata query \"SELECT * FROM ops.payout_backlog ORDER BY backlog DESC\"");
    Ok(exit_for(&runs))
}

async fn run(
    ctx: &Ctx<'_>,
    selectors: &[String],
    at: Option<String>,
    from: Option<String>,
    allow_empty_window: bool,
) -> Result<u8, Error> {
    let at = ctx.at(at.as_deref(), "--at")?;
    let from = from.as_deref().map(|f| at_or_now(Some(f), ctx.clock, "--from")).transpose()?;
    super::resolve::range(from, at)?;
    let project = load(ctx.dir, ctx.env)?;
    // A range is recomputed from all its objects, near-real-time models included.
    let flags = ctx.flags(allow_empty_window, from.is_some());
    let models = super::resolve::selected_at_state(&project, selectors).await?;
    let backend = backend(&project).await?;
    let stop = stop_on_signals();
    let plan: Vec<runner::Planned> = models
        .iter()
        .map(|id| runner::Planned { id: id.clone(), opts: RunOptions::new(at, from).with(&flags) })
        .collect();
    let record = crate::scheduler::RecordSuccess {
        project: &project,
        state: backend.run_state(),
        clock: ctx.clock,
        run_id: runner::new_id("run-", ctx.clock.now()),
        task: crate::scheduler::task_id(),
    };
    let engine: &dyn Engine = &*backend;
    let cap = project.settings.max_concurrency;
    let runs = runner::run_planned(&project, engine, ctx.clock, &plan, cap, &stop, &record).await;
    print::report(&runs, ctx.metrics, ctx.clock.now());
    ctx.answer("run", &runs).await?;
    Ok(exit_for(&runs))
}

/// One scheduling round at `clock`'s time on `backend`.
async fn one_tick(
    ctx: &Ctx<'_>,
    project: &Project,
    backend: &dyn Backend,
    clock: &dyn Clock,
    stop: &runner::Stop,
) -> Result<(crate::scheduler::TickPlan, Vec<ModelRun>), Error> {
    backend.reconcile(project, &crate::clock::stamp(clock.now())).await?;
    let flags = ctx.flags(false, false);
    Ok(crate::scheduler::tick(project, backend, backend.run_state(), clock, stop, &flags).await?)
}

async fn daemon(ctx: &Ctx<'_>) -> Result<u8, Error> {
    let project = load(ctx.dir, ctx.env)?;
    let backend = backend(&project).await?;
    let stop = stop_on_signals();
    loop {
        let (_, runs) = one_tick(ctx, &project, &*backend, ctx.clock, &stop).await?;
        if !runs.is_empty() {
            print::report(&runs, ctx.metrics, ctx.clock.now());
        }
        let Some(next) = crate::scheduler::next_wakeup(&project, ctx.clock.now()) else {
            return Err(Error::usage(anyhow::anyhow!(
                "no model has a schedule: nothing for the daemon to do"
            )));
        };
        let wait = (next - ctx.clock.now()).to_std().unwrap_or_default();
        tracing::info!(next = %crate::clock::stamp(next), "sleeping until the next firing");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.wait() => return Ok(EXIT_OK),
        }
    }
}

async fn tick(ctx: &Ctx<'_>, at: Option<String>) -> Result<u8, Error> {
    let at = ctx.at(at.as_deref(), "--at")?;
    let project = load(ctx.dir, ctx.env)?;
    let backend = backend(&project).await?;
    let stop = stop_on_signals();
    let fixed = crate::clock::ManualClock::at(at);
    let (plan, runs) = one_tick(ctx, &project, &*backend, &fixed, &stop).await?;
    if runs.is_empty() {
        println!("nothing due at {}", crate::clock::stamp(at));
    } else {
        print::report(&runs, ctx.metrics, ctx.clock.now());
    }
    for (id, why) in &plan.not_due {
        tracing::info!(model = %id, "not due: {why}");
    }
    ctx.answer("tick", &runs).await?;
    Ok(exit_for(&runs))
}

struct BackfillArgs {
    from: String,
    to: String,
    downstream: bool,
    parallel: usize,
    dry_run: bool,
    restart: bool,
    allow_empty_window: bool,
}

async fn backfill(ctx: &Ctx<'_>, selectors: &[String], a: BackfillArgs) -> Result<u8, Error> {
    let from = at_or_now(Some(&a.from), ctx.clock, "--from")?;
    let to = ctx.at(Some(&a.to), "--to")?;
    if from >= to {
        return Err(Error::usage(anyhow::anyhow!(
            "--from {} is not before --to {}: the range is empty; give --from earlier than --to",
            crate::clock::stamp(from),
            crate::clock::stamp(to)
        )));
    }
    let project = load(ctx.dir, ctx.env)?;
    let mut models = super::resolve::selected_at_state(&project, selectors).await?;
    if a.downstream {
        let mut all = std::collections::BTreeSet::new();
        for id in &models {
            all.extend(project.dag.with_descendants(id));
        }
        models = project.dag.order.iter().filter(|id| all.contains(*id)).cloned().collect();
    }
    models.retain(|id| project.models[id].config.materialized != crate::project::Materialization::External);
    let spec = crate::backfill::BackfillSpec {
        models,
        from,
        to,
        parallel: a.parallel,
        restart: a.restart,
        flags: ctx.flags(a.allow_empty_window, false),
    };
    if a.dry_run {
        print::backfill_windows(&project, &spec);
        return Ok(EXIT_OK);
    }
    let backend = backend(&project).await?;
    let stop = stop_on_signals();
    let progress = print::BackfillProgress::new();
    let engine: &dyn Engine = &*backend;
    let results =
        crate::backfill::run(&project, engine, backend.run_state(), ctx.clock, &spec, &stop, &progress)
            .await?;
    println!("backfill {}", crate::backfill::backfill_id(&spec));
    let failed = print::backfill_results(&results);
    let runs: Vec<ModelRun> = results.iter().map(|r| r.as_run(&project, &spec)).collect();
    ctx.answer("backfill", &runs).await?;
    Ok(if failed { EXIT_MODEL_FAILED } else { EXIT_OK })
}

fn render(
    ctx: &Ctx<'_>,
    model: &str,
    engine: Option<EngineArg>,
    at: Option<String>,
    from: Option<String>,
) -> Result<u8, Error> {
    let at = at_or_now(at.as_deref(), ctx.clock, "--at")?;
    let from = from.as_deref().map(|f| at_or_now(Some(f), ctx.clock, "--from")).transpose()?;
    super::resolve::range(from, at)?;
    let mut env = ctx.env.clone();
    if let Some(e) = engine {
        let name = match e {
            EngineArg::Local => "local",
            EngineArg::Athena => "athena",
        };
        env.insert("STRATA_ENGINE".into(), name.into());
    }
    let project = load(ctx.dir, &env)?;
    let id = one_model(&project, model, "render")?;
    let text = render_statements(&project, &id, &RunOptions::new(at, from), ctx.clock.now())
        .map_err(|e| Error::usage(anyhow::Error::msg(e)))?;
    print!("{text}");
    Ok(EXIT_OK)
}

async fn test(ctx: &Ctx<'_>, selectors: &[String], engine: Option<EngineArg>) -> Result<u8, Error> {
    let project = load_local_by_default(ctx.dir, ctx.env)?;
    let models = selected(&project, selectors)?;
    let tests = crate::modeltest::load(&project, &models).map_err(crate::project::ProjectError)?;
    let schemas = crate::check::schemas(&project).await;
    let mut results = Vec::new();
    match engine {
        Some(EngineArg::Athena) => {
            let mut env = ctx.env.clone();
            env.insert("STRATA_ENGINE".into(), "athena".into());
            let athena_project = load(ctx.dir, &env)?;
            results = crate::modeltest::athena::run_all(&athena_project, &project, &schemas, &tests).await?;
        }
        _ => {
            for t in &tests {
                results.push(crate::modeltest::run_local(&project, &schemas, t).await);
            }
        }
    }
    let failed = print::test_results(&results);
    Ok(if failed { EXIT_MODEL_FAILED } else { EXIT_OK })
}

async fn docs(ctx: &Ctx<'_>, out: Option<std::path::PathBuf>, publish: Option<String>) -> Result<u8, Error> {
    let project = load(ctx.dir, ctx.env)?;
    let backend = backend_for(&project, Access::Read).await?;
    let site = crate::docs::gather(&project, &*backend, ctx.clock.now()).await?;
    let out = out.unwrap_or_else(|| project.settings.state_dir.join("docs"));
    let files = crate::docs::site::write(&site, &out)?;
    println!("wrote {} pages for {} models under {}", files.len(), site.models.len(), out.display());
    if let Some(target) = publish {
        // A path without a scheme is under the lake root (the nightly task publishes to
        // `_strata/docs` of the lake it runs against).
        let target = if target.starts_with("s3://") {
            target
        } else {
            match &project.settings.storage {
                crate::config::Storage::S3 { .. } => project.settings.storage.uri(&target),
                crate::config::Storage::Local(_) => {
                    return Err(Error::usage(anyhow::anyhow!(
                        "--publish {target}: give s3://bucket/prefix (the storage root is not in S3)"
                    )));
                }
            }
        };
        let n =
            crate::docs::publish_to(&project.settings, &out, &files, &target).await.map_err(Error::Infra)?;
        println!("published {n} files to {target}");
    }
    Ok(EXIT_OK)
}

async fn plan(ctx: &Ctx<'_>, selectors: &[String], format: OutputFormat) -> Result<u8, Error> {
    let project = load(ctx.dir, ctx.env)?;
    // Every model is planned once (its problems, and the columns the changes compare), and
    // what is published is read once (for `state:modified` and the changes shown). A
    // backend that cannot be read (no credentials) leaves the changes out, said so.
    let (mut problems, schemas) = crate::check::plan_all(&project).await;
    let changes = match super::resolve::changes(&project, &schemas).await {
        Ok(c) => Ok(c),
        Err(e) if crate::project::needs_state(selectors) => return Err(e),
        Err(e) => Err(e.to_string()),
    };
    let models = match &changes {
        Ok(c) => crate::project::select_in(&project, selectors, Some(&super::resolve::modified(c)))
            .map_err(|e| Error::usage(anyhow::Error::msg(e)))?,
        Err(_) => selected(&project, selectors)?,
    };
    let shown: Result<Vec<_>, String> = changes.map(|c| {
        c.into_iter()
            .filter(|c| {
                c.change == crate::changes::Change::Removed || models.iter().any(|m| m.to_string() == c.model)
            })
            .collect()
    });
    print::print_plan(&project, &models, &shown, format)?;
    let problems: Vec<_> = models.iter().flat_map(|id| problems.remove(id).unwrap_or_default()).collect();
    if problems.is_empty() {
        return Ok(EXIT_OK);
    }
    Err(crate::project::ProjectError(problems).into())
}

async fn status(ctx: &Ctx<'_>, selectors: &[String], format: OutputFormat) -> Result<u8, Error> {
    let project = load(ctx.dir, ctx.env)?;
    let models = selected(&project, selectors)?;
    let backend = backend_for(&project, Access::Read).await?;
    let state = backend.run_state();
    let retention = project.settings.retention;
    let now = crate::clock::stamp(ctx.clock.now());
    let day_ago = crate::clock::stamp(ctx.clock.now() - Duration::days(1));
    let (fingerprints, _) = crate::project::fingerprints(&project);
    let mut rows = Vec::new();
    for id in &models {
        let (db, table) = (project.database(id), &project.models[id].table);
        let mut row =
            print::StatusRow { model: id.to_string(), table: format!("{db}.{table}"), ..Default::default() };
        if let Some(s) = lifecycle::status(&*backend, id.layer, db, table, retention).await? {
            row.version = Some(s.current.version.clone());
            row.published_at = Some(s.current.published_at);
            row.by_run = Some(s.current.by);
            row.rows = s.rows;
            row.bytes = s.bytes;
            row.kept_versions = s.kept.len();
            // Which SQL and config computed it, and whether the model differs now.
            if let Some(f) = crate::changes::published_fingerprint(&*state, id, &s.current.version).await? {
                row.modified = fingerprints.get(id).is_some_and(|now| now.id != f.id);
                row.fingerprint = Some(f.short().to_string());
            }
        }
        let model = id.to_string();
        row.data_up_to = state.model(&model).await?.and_then(|m| m.last_at);
        let day = state.runs(Some(&model), Some(&day_ago), None).await?;
        row.runs_24h = day.len();
        row.cost_24h_usd = day.iter().fold(0.0, |sum, r| sum + r.cost_usd);
        let last = match day.last() {
            Some(r) => Some(r.clone()),
            None => state.runs(Some(&model), None, Some(1)).await?.pop(),
        };
        if let Some(r) = last {
            row.last_run = Some(r.finished_at);
            row.last_outcome = Some(r.outcome);
            row.last_cost_usd = Some(r.cost_usd);
        }
        row.lease = state.lease(&model).await?.filter(|l| l.until > now).map(|l| l.owner);
        rows.push(row);
    }
    print::print_status(&rows, format)?;
    Ok(EXIT_OK)
}

async fn rollback(ctx: &Ctx<'_>, model: &str, to: Option<String>) -> Result<u8, Error> {
    let project = load(ctx.dir, ctx.env)?;
    let id = one_model(&project, model, "rollback")?;
    let now = ctx.clock.now();
    let (db, table) = (project.database(&id), &project.models[&id].table);
    let backend = backend(&project).await?;
    let run_id = runner::new_id("rollback-", now);
    let retention = project.settings.retention;
    let stamp = crate::clock::stamp(now);
    let done =
        lifecycle::rollback(&*backend, (id.layer, db, table), to.as_deref(), retention, &run_id, &stamp)
            .await?;
    // Nothing to roll back to is a usage error; a lost race or AWS is not.
    let version = done.map_err(Error::usage)?;
    println!("{id}: {db}.{table} is now at version {version}");
    Ok(EXIT_OK)
}

async fn gc(ctx: &Ctx<'_>, dry_run: bool, format: OutputFormat) -> Result<u8, Error> {
    let project = load(ctx.dir, ctx.env)?;
    let backend = backend_for(&project, Access::Read).await?;
    // The project's models, and every other table the backend holds versions of in a
    // managed layer (a model removed from the project still has versions to collect).
    // A model whose lease a run holds may be writing a version now, whatever its age.
    // A backfill's version is kept until the backfill is published or restarted.
    let state = backend.run_state();
    let backfilling = state.backfill_versions().await?;
    let mut tables = Vec::new();
    for id in &project.dag.order {
        let model = id.to_string();
        tables.push(lifecycle::GcTable {
            layer: id.layer,
            database: project.database(id).to_string(),
            table: project.models[id].table.clone(),
            leased: state.lease(&model).await?.is_some(),
            in_flight: backfilling.iter().filter(|(m, _)| *m == model).map(|(_, v)| v.clone()).collect(),
        });
    }
    let managed: Vec<String> = [Layer::Silver, Layer::Gold, Layer::Ops]
        .iter()
        .map(|l| project.settings.database(*l).to_string())
        .collect();
    for (db, table) in backend.managed_tables(&managed).await? {
        let Some(layer) = project.settings.layer_of(&db) else { continue };
        if !tables.iter().any(|t| t.database == db && t.table == table) {
            tables.push(lifecycle::GcTable {
                layer,
                database: db,
                table,
                leased: false,
                in_flight: Vec::new(),
            });
        }
    }
    match lifecycle::gc(&*backend, &tables, project.settings.retention, ctx.clock.now(), dry_run).await {
        Ok(items) => {
            print::gc_items(&items, dry_run, format)?;
            Ok(EXIT_OK)
        }
        // What it freed before it stopped (a full disk: the deletes, not the records) is
        // reported before why it stopped.
        Err(stopped) => {
            if !stopped.done.is_empty() {
                print::gc_items(&stopped.done, dry_run, format)?;
            }
            Err(stopped.source.into())
        }
    }
}

async fn runs(
    ctx: &Ctx<'_>,
    selectors: &[String],
    since: Option<String>,
    format: OutputFormat,
) -> Result<u8, Error> {
    let since = match since {
        Some(s) => at_or_now(Some(&s), ctx.clock, "--since")?,
        None => ctx.clock.now() - Duration::days(1),
    };
    let project = load(ctx.dir, ctx.env)?;
    let state = backend_for(&project, Access::Read).await?.run_state();
    let since = crate::clock::stamp(since);
    let mut runs = Vec::new();
    if selectors.is_empty() {
        runs = state.runs(None, Some(&since), None).await?;
    } else {
        for id in selected(&project, selectors)? {
            runs.extend(state.runs(Some(&id.to_string()), Some(&since), None).await?);
        }
        runs.sort_by(|a, b| (&a.finished_at, &a.model).cmp(&(&b.finished_at, &b.model)));
    }
    print::print_history(&runs, format)?;
    Ok(EXIT_OK)
}

async fn state(ctx: &Ctx<'_>, action: Option<StateAction>) -> Result<u8, Error> {
    let project = load(ctx.dir, ctx.env)?;
    let backend = backend(&project).await?;
    let now = crate::clock::stamp(ctx.clock.now());
    backend.reconcile(&project, &now).await?;
    let state = backend.run_state();
    match action.unwrap_or(StateAction::Show { selectors: Vec::new() }) {
        StateAction::Show { selectors } => {
            let mut rows = Vec::new();
            for id in selected(&project, &selectors)? {
                let model = id.to_string();
                let m = state.model(&model).await?;
                let lease = state.lease(&model).await?.filter(|l| l.until > now);
                rows.push((model, m, lease));
            }
            print::state_table(&rows);
        }
        StateAction::Reset { selectors, to } => {
            let to = to.map(|t| at_or_now(Some(&t), ctx.clock, "--to")).transpose()?;
            for id in selected(&project, &selectors)? {
                let at = to.map(crate::clock::stamp);
                let by = format!("{} at {now}", crate::state::RESET);
                state.reset(&id.to_string(), at.as_deref(), &by, &now).await?;
                println!("{id}: run state reset to {}", at.as_deref().unwrap_or("never"));
            }
        }
        StateAction::Unlock { selectors, backfill } => {
            let models = if selectors.is_empty() { Vec::new() } else { selected(&project, &selectors)? };
            let keys = models
                .iter()
                .map(|id| (id.to_string(), id.to_string()))
                .chain(backfill.iter().map(|b| (crate::backfill::lease_key(b), format!("backfill {b}"))));
            for (key, what) in keys {
                let released = state.force_release(&key).await?;
                println!("{what}: {}", if released { "lease released" } else { "no lease held" });
            }
        }
    }
    Ok(EXIT_OK)
}

async fn query(ctx: &Ctx<'_>, sql: &str, format: OutputFormat) -> Result<u8, Error> {
    let project = load_local_by_default(ctx.dir, ctx.env)?;
    read_only(sql)?;
    let backend = backend_for(&project, Access::Read).await?;
    let result = backend.query_stream(sql).await.map_err(|e| match e {
        crate::engine::EngineError::Aws(_) | crate::engine::EngineError::NotReadOnly(_) => Error::from(e),
        e => Error::Failed(e.into()),
    })?;
    print::print_stream(result, format).await?;
    Ok(EXIT_OK)
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
    let window = runner::window_for(project, id, opts);
    let version = runner::new_id("v", now);
    let mut out = format!(
        "-- {id} ({}) window [{}, {}) engine {}\n",
        model.config.materialized.as_str(),
        crate::window::fmt_ts(window.start),
        crate::window::fmt_ts(window.end),
        project.settings.engine.as_str()
    );
    let job = runner::job_for(project, id, window, &runner::new_id("r", now), &version, now)
        .map_err(|e| e.to_string())?;
    for s in crate::backends::statements(project, &job)? {
        out.push_str(&s);
        out.push_str(if project.settings.engine == EngineKind::Athena { ";\n" } else { "\n" });
    }
    Ok(out)
}
