//! The command line: parse, resolve settings and project, then act. Only this module
//! knows the terminal, the process environment and exit codes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::athena::AthenaEngine;
use crate::callback::TaskCallback;
use crate::clock::{Clock, SystemClock, parse_instant};
use crate::config::{EngineKind, Settings};
use crate::engine::Engine;
use crate::ids::ModelId;
use crate::lifecycle;
use crate::local::LocalEngine;
use crate::project::{Project, select};
use crate::runner::{self, ModelRun, Outcome, RunOptions};
use crate::state::RunState;
use std::sync::Arc;

/// Exit codes scripts can rely on.
pub const EXIT_OK: u8 = 0;
pub const EXIT_MODEL_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
/// Another task is running it now (a backfill of the same selection and range): try again
/// later (sysexits' EX_TEMPFAIL).
pub const EXIT_BUSY: u8 = 75;

/// Step Functions error names (the state machines retry `strata.Busy`).
const ERROR: &str = "strata.Error";
const BUSY: &str = "strata.Busy";

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Orchestrates an Athena + Glue lakehouse: render, run, audit, publish"
)]
pub struct Cli {
    /// The project directory (holds strata.toml and sql/).
    #[arg(long, global = true, default_value = ".", env = "STRATA_PROJECT_DIR")]
    pub project_dir: PathBuf,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A Step Functions task token (set by `ecs:runTask.waitForTaskToken` as an environment
    /// override): heartbeat while working, then SendTaskSuccess or SendTaskFailure.
    #[arg(long, global = true, env = "STRATA_TASK_TOKEN", hide_env_values = true)]
    pub task_token: Option<String>,
    /// Also print one CloudWatch Embedded Metric Format line per model run on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Metrics::None)]
    pub metrics: Metrics,
    /// Accept `--at` / `--to` instants in the future (tests, replays). Without it an instant
    /// more than five minutes ahead of the clock is refused: it would record the models as
    /// run up to then, and every real tick until then would skip them.
    #[arg(long, global = true)]
    pub allow_future: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Metrics {
    None,
    Emf,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EngineArg {
    Local,
    Athena,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write sample events, run every model on the local engine, print a table per model.
    Demo {
        /// Logical time of the demo (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Days of events to generate.
        #[arg(long, default_value_t = 3)]
        days: u32,
        /// Booking sessions per city and hour.
        #[arg(long, default_value_t = 6)]
        sessions_per_hour: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Run the selected models once, for the window that ends at --at.
    Run {
        /// dbt-style selectors: `silver.*`, `+gold.mart_city_daily`, `ops.payout_backlog+`.
        selectors: Vec<String>,
        /// Logical time of the run (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Recompute incremental models' partitions from this time on (a one-window backfill).
        #[arg(long)]
        from: Option<String>,
        /// Keep running: a scheduling round (like `tick`) at every schedule firing.
        #[arg(long, conflicts_with_all = ["selectors", "at", "from"])]
        daemon: bool,
        /// Publish even when partitions of the window that hold data would be left empty.
        #[arg(long, conflicts_with = "daemon")]
        allow_empty_window: bool,
    },
    /// One scheduling round: run every model that is due now, in DAG order, independent
    /// models in parallel; the ECS scheduled task runs this.
    Tick {
        /// Logical time of the round (default: now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Recompute the windows of a date range and publish each table once at the end.
    /// Resumable: an interrupted backfill run again skips the windows it completed.
    Backfill {
        /// Models to backfill (dbt-style selectors).
        #[arg(required = true)]
        selectors: Vec<String>,
        /// First day (or instant) of the range.
        #[arg(long)]
        from: String,
        /// End of the range, exclusive.
        #[arg(long)]
        to: String,
        /// Also backfill every model downstream of the selection.
        #[arg(long)]
        downstream: bool,
        /// Windows of one model computed at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        /// Print the windows and compute nothing.
        #[arg(long)]
        dry_run: bool,
        /// Forget what an interrupted attempt of this backfill completed and start over.
        #[arg(long)]
        restart: bool,
        /// Publish even when partitions of the range that hold data would be left empty.
        #[arg(long)]
        allow_empty_window: bool,
    },
    /// Print the exact statements a model would run.
    Render {
        model: String,
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        from: Option<String>,
    },
    /// Show the DAG: each model's dependencies, schedule and materialization; and check,
    /// without reading data, that every model's SQL plans against its upstream tables and
    /// produces the columns its partitions and audits name.
    Plan { selectors: Vec<String> },
    /// Each table's current version, when and by which run it was published, rows, bytes,
    /// and the versions kept for rollback.
    Status {
        selectors: Vec<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Publish an older kept version of a model's table (default: the previous one).
    Rollback {
        model: String,
        #[arg(long)]
        to: Option<String>,
    },
    /// Delete versions past retention and data left by crashed runs, fenced to each table's
    /// own prefix; never the current or previous version.
    Gc {
        /// Print what would be deleted, with sizes, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run history: every model run of every task (ticks, runs, backfills), with its
    /// outcome, rows, bytes scanned and Athena cost, from the shared run state.
    Runs {
        /// dbt-style selectors (default: every model).
        selectors: Vec<String>,
        /// Runs finished at or after this instant (default: the last 24 hours).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Run state: how far each model ran and who holds its lease; reset or unlock it.
    State {
        #[command(subcommand)]
        action: Option<StateAction>,
    },
    /// Run ad-hoc SQL on the local lake.
    Query {
        sql: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Each model's run state and lease (the default).
    Show { selectors: Vec<String> },
    /// Set how far models ran back to --to (default: never), so the next tick computes
    /// their windows from there. Published data is not touched.
    Reset {
        #[arg(required = true)]
        selectors: Vec<String>,
        #[arg(long)]
        to: Option<String>,
    },
    /// Release leases, whoever holds them (a killed run's, before it expires): of the
    /// selected models, and of a backfill by its id (printed when it starts).
    Unlock {
        #[arg(required_unless_present = "backfill")]
        selectors: Vec<String>,
        #[arg(long)]
        backfill: Option<String>,
    },
}

/// An error with the exit code it maps to.
struct Failure {
    /// The error name a Step Functions task reports (its state machine retries by it).
    name: &'static str,
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self { name: ERROR, code: EXIT_USAGE, error: e.into() }
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    init_logging(cli.verbose, cli.log_format);
    let env: HashMap<String, String> = std::env::vars().collect();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime starts");
    // Queries of the embedded engine run on a runtime of their own: CPU-bound work there
    // cannot keep the threads above from seeing a stop signal, and it is abandoned at exit.
    let exec = tokio::runtime::Builder::new_multi_thread()
        .thread_name("strata-exec")
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    EXECUTOR.set(exec.handle().clone()).expect("set once");
    let result = runtime.block_on(async {
        let callback = match cli.task_token.clone() {
            Some(token) => Some(TaskCallback::from_env(token).await),
            None => None,
        };
        let heartbeat = callback.as_ref().map(|c| c.keep_alive(crate::callback::HEARTBEAT_EVERY));
        let result = execute(cli, env, &SystemClock, callback.as_ref()).await;
        if let Some(h) = heartbeat {
            h.abort();
        }
        if let (Err(f), Some(cb)) = (&result, &callback)
            && let Err(e) = cb.fail(f.name, &format!("{:#}", f.error)).await
        {
            eprintln!("error: {e}");
        }
        result
    });
    // Whatever a stopped query still computes is not waited for.
    exec.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// The runtime the embedded engine's queries run on (set once by `main`).
static EXECUTOR: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

fn init_logging(verbose: u8, format: LogFormat) {
    let level = match verbose {
        0 => "strata=warn",
        1 => "strata=info",
        _ => "strata=debug,datafusion=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| level.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}

/// How far ahead of the clock an instant may be (clocks of machines differ a little).
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Refuses an instant in the future (unless `--allow-future`).
fn not_future(
    t: DateTime<Utc>,
    clock: &dyn Clock,
    allow: bool,
    flag: &str,
) -> Result<DateTime<Utc>, Failure> {
    if !allow && t > clock.now() + CLOCK_SKEW {
        return Err(anyhow::anyhow!(
            "{flag} {} is in the future (now is {}): running or ticking for it would record the models as run up to then, and every real tick until then would skip them; pass --allow-future to do it anyway",
            crate::clock::stamp(t),
            crate::clock::stamp(clock.now())
        )
        .into());
    }
    Ok(t)
}

fn at_or_now(at: Option<&str>, clock: &dyn Clock, flag: &str) -> Result<DateTime<Utc>, Failure> {
    match at {
        None => Ok(clock.now()),
        Some(s) => parse_instant(s).ok_or_else(|| {
            anyhow::anyhow!("{flag} '{s}': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or RFC 3339").into()
        }),
    }
}

fn load(project_dir: &std::path::Path, env: &HashMap<String, String>) -> Result<Project, Failure> {
    let settings = Settings::load(project_dir, env)?;
    Ok(Project::load(settings)?)
}

fn local_engine(project: &Project) -> Result<LocalEngine, Failure> {
    let engine = LocalEngine::for_settings(&project.settings)?;
    Ok(match EXECUTOR.get() {
        Some(exec) => engine.with_executor(exec.clone()),
        None => engine,
    })
}

/// The Athena engine (AWS clients from the standard chain) and the deployment's run state
/// under the lake's `_strata/state/` prefix, shared by every task.
async fn athena_engine(project: &Project) -> Result<(AthenaEngine, Arc<dyn RunState>), Failure> {
    let clients = crate::athena::Clients::from_chain(&project.settings).await;
    let crate::config::Storage::S3 { bucket, prefix } = &project.settings.storage else {
        return Err(anyhow::anyhow!("the athena engine needs an s3:// storage root").into());
    };
    let state = crate::state::S3State::new(clients.s3.clone(), bucket, prefix);
    let engine = AthenaEngine::new(clients, &project.settings)?;
    Ok((engine, Arc::new(state)))
}

/// The local run state: SQLite in the state directory, beside the local catalog.
fn local_state(project: &Project) -> Result<Arc<dyn RunState>, Failure> {
    std::fs::create_dir_all(&project.settings.state_dir)
        .with_context(|| format!("creating {}", project.settings.state_dir.display()))?;
    Ok(Arc::new(crate::state::SqliteState::open(&project.settings.catalog_path())?))
}

/// The engine a command runs on, and the store that keeps its run state.
enum Engines {
    Local(LocalEngine, Arc<dyn RunState>),
    Athena(AthenaEngine, Arc<dyn RunState>),
}

impl Engines {
    async fn for_project(project: &Project) -> Result<Self, Failure> {
        Ok(match project.settings.engine {
            EngineKind::Local => Self::Local(local_engine(project)?, local_state(project)?),
            EngineKind::Athena => {
                let (e, s) = athena_engine(project).await?;
                Self::Athena(e, s)
            }
        })
    }

    fn engine(&self) -> &dyn Engine {
        match self {
            Self::Local(e, _) => e,
            Self::Athena(e, _) => e,
        }
    }

    fn state(&self) -> Arc<dyn RunState> {
        match self {
            Self::Local(_, s) | Self::Athena(_, s) => s.clone(),
        }
    }

    /// On Athena the run state is raised to what Glue says is published (a run killed
    /// between its publish and its record, or a deployment's first run with shared state).
    async fn hydrate(&self, project: &Project, clock: &dyn Clock) -> Result<(), Failure> {
        if let Self::Athena(e, s) = self {
            e.hydrate_run_state(project, &**s, &crate::clock::stamp(clock.now())).await?;
        }
        Ok(())
    }
}

/// Runs one parsed command. `env` is the process environment, `clock` the time source.
async fn execute(
    cli: Cli,
    env: HashMap<String, String>,
    clock: &dyn Clock,
    callback: Option<&TaskCallback>,
) -> Result<u8, Failure> {
    let answer = |command: &'static str, runs: Vec<ModelRun>| async move {
        match callback {
            Some(cb) => cb.report(command, &runs).await.map_err(|e| Failure {
                name: ERROR,
                code: EXIT_MODEL_FAILED,
                error: anyhow::anyhow!(e),
            }),
            None => Ok(()),
        }
    };
    let dir = &cli.project_dir;
    let metrics = cli.metrics;
    let allow_future = cli.allow_future;
    match cli.command {
        Command::Demo { at, days, sessions_per_hour, seed } => {
            let at = at_or_now(at.as_deref(), clock, "--at")?;
            let mut env = env;
            env.entry("STRATA_ENGINE".into()).or_insert_with(|| "local".into());
            let project = load(dir, &env)?;
            let engine = local_engine(&project)?;
            let spec = crate::demo::DemoSpec {
                at,
                days,
                sessions_per_hour,
                seed,
                env: project.settings.env.clone(),
            };
            let summary = crate::demo::generate(engine.root(), &spec).context("writing sample events")?;
            println!(
                "wrote {} events ({} duplicates, {} late, {} malformed lines) in {} files, {} gzipped, under {}",
                summary.events,
                summary.duplicates,
                summary.late,
                summary.malformed,
                summary.files,
                human_bytes(summary.bytes),
                engine.root().join("bronze/events").display()
            );
            let opts = RunOptions { at, from: Some(at - Duration::days(days as i64 + 1)) };
            let runs = runner::run(&project, &engine, clock, &project.dag.order, &opts).await;
            report(&runs, metrics, clock.now());
            println!("try: strata query \"SELECT * FROM ops.payout_backlog ORDER BY backlog DESC\"");
            Ok(exit_for(&runs))
        }
        Command::Run { daemon: true, .. } => {
            let project = load(dir, &env)?;
            let engines = Engines::for_project(&project).await?;
            let stop = stop_on_signals();
            loop {
                engines.hydrate(&project, clock).await?;
                let (_, runs) =
                    crate::scheduler::tick(&project, engines.engine(), engines.state(), clock, &stop)
                        .await
                        .map_err(anyhow::Error::msg)?;
                if !runs.is_empty() {
                    report(&runs, metrics, clock.now());
                }
                let Some(next) = crate::scheduler::next_wakeup(&project, clock.now()) else {
                    return Err(
                        anyhow::anyhow!("no model has a schedule: nothing for the daemon to do").into()
                    );
                };
                let wait = (next - clock.now()).to_std().unwrap_or_default();
                tracing::info!(next = %crate::clock::stamp(next), "sleeping until the next firing");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.wait() => return Ok(EXIT_OK),
                }
            }
        }
        Command::Tick { at } => {
            let at = not_future(at_or_now(at.as_deref(), clock, "--at")?, clock, allow_future, "--at")?;
            let project = load(dir, &env)?;
            let engines = Engines::for_project(&project).await?;
            let stop = stop_on_signals();
            let fixed = crate::clock::ManualClock::at(at);
            engines.hydrate(&project, &fixed).await?;
            let (plan, runs) =
                crate::scheduler::tick(&project, engines.engine(), engines.state(), &fixed, &stop)
                    .await
                    .map_err(anyhow::Error::msg)?;
            if runs.is_empty() {
                println!("nothing due at {}", crate::clock::stamp(at));
            } else {
                report(&runs, metrics, clock.now());
            }
            for (id, why) in &plan.not_due {
                tracing::info!(model = %id, "not due: {why}");
            }
            let code = exit_for(&runs);
            answer("tick", runs).await?;
            Ok(code)
        }
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
            let from = at_or_now(Some(&from), clock, "--from")?;
            let to = not_future(at_or_now(Some(&to), clock, "--to")?, clock, allow_future, "--to")?;
            if from >= to {
                return Err(anyhow::anyhow!("--from must be before --to").into());
            }
            let mut project = load(dir, &env)?;
            project.settings.allow_empty_window = allow_empty_window;
            let mut models = select(&project, &selectors).map_err(anyhow::Error::msg)?;
            if downstream {
                let mut all = std::collections::BTreeSet::new();
                for id in &models {
                    all.extend(project.dag.with_descendants(id));
                }
                models = project.dag.order.iter().filter(|id| all.contains(*id)).cloned().collect();
            }
            models.retain(|id| {
                project.models[id].config.materialized != crate::project::Materialization::External
            });
            let spec = crate::backfill::BackfillSpec { models, from, to, parallel, restart };
            if dry_run {
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header(["model", "windows", "first", "last"]);
                for id in &spec.models {
                    let w = crate::backfill::windows(&project, id, &spec);
                    t.add_row([
                        id.to_string(),
                        w.len().to_string(),
                        w.first().map(|w| crate::window::fmt_ts(w.start)).unwrap_or_default(),
                        w.last().map(|w| crate::window::fmt_ts(w.end)).unwrap_or_default(),
                    ]);
                }
                println!("{t}");
                return Ok(EXIT_OK);
            }
            let engines = Engines::for_project(&project).await?;
            let stop = stop_on_signals();
            let progress = BackfillProgress::new();
            let results = crate::backfill::run(
                &project,
                engines.engine(),
                engines.state(),
                clock,
                &spec,
                &stop,
                &progress,
            )
            .await
            .map_err(|e| match e {
                crate::backfill::BackfillError::Running { .. } => {
                    Failure { name: BUSY, code: EXIT_BUSY, error: e.into() }
                }
                e => Failure { name: ERROR, code: EXIT_MODEL_FAILED, error: e.into() },
            })?;
            println!("backfill {}", crate::backfill::backfill_id(&spec));
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header([
                "model",
                "windows",
                "computed now",
                "status",
                "rows",
                "bytes read",
                "bytes written",
            ]);
            for r in &results {
                t.add_row([
                    r.model.to_string(),
                    r.windows.to_string(),
                    r.computed.to_string(),
                    r.outcome.label().to_string(),
                    r.stats.rows.to_string(),
                    human_bytes(r.stats.bytes_read),
                    human_bytes(r.stats.bytes_written),
                ]);
            }
            println!("{t}");
            let mut failed = false;
            for r in &results {
                if let Outcome::Skipped(e) = &r.outcome {
                    eprintln!("error: {}: {e}", r.model);
                    failed = true;
                } else if r.outcome.is_failure() {
                    eprintln!("error: {}: {}", r.model, r.outcome.detail().unwrap_or_default());
                    failed = true;
                }
            }
            let runs: Vec<ModelRun> = results.iter().map(|r| r.as_run(&project, &spec)).collect();
            answer("backfill", runs).await?;
            Ok(if failed { EXIT_MODEL_FAILED } else { EXIT_OK })
        }
        Command::Run { selectors, at, from, daemon: false, allow_empty_window } => {
            let at = not_future(at_or_now(at.as_deref(), clock, "--at")?, clock, allow_future, "--at")?;
            let from = from.as_deref().map(|f| at_or_now(Some(f), clock, "--from")).transpose()?;
            let mut project = load(dir, &env)?;
            project.settings.allow_empty_window = allow_empty_window;
            let selected = select(&project, &selectors).map_err(anyhow::Error::msg)?;
            let engines = Engines::for_project(&project).await?;
            let stop = stop_on_signals();
            let plan: Vec<runner::Planned> = selected
                .iter()
                .map(|id| runner::Planned { id: id.clone(), opts: RunOptions { at, from } })
                .collect();
            let record = crate::scheduler::RecordSuccess {
                state: engines.state(),
                clock,
                run_id: runner::new_id("run-", clock.now()),
                task: crate::scheduler::task_id(),
            };
            let runs = runner::run_planned(
                &project,
                engines.engine(),
                clock,
                &plan,
                project.settings.max_concurrency,
                &stop,
                &record,
            )
            .await;
            report(&runs, metrics, clock.now());
            let code = exit_for(&runs);
            answer("run", runs).await?;
            Ok(code)
        }
        Command::Render { model, engine, at, from } => {
            let at = at_or_now(at.as_deref(), clock, "--at")?;
            let from = from.as_deref().map(|f| at_or_now(Some(f), clock, "--from")).transpose()?;
            let mut env = env;
            if let Some(e) = engine {
                env.insert(
                    "STRATA_ENGINE".into(),
                    match e {
                        EngineArg::Local => "local",
                        EngineArg::Athena => "athena",
                    }
                    .into(),
                );
            }
            let project = load(dir, &env)?;
            let id = resolve_model(&project, &model)?;
            let text = runner::render_statements(&project, &id, &RunOptions { at, from }, clock.now())
                .map_err(anyhow::Error::msg)?;
            print!("{text}");
            Ok(EXIT_OK)
        }
        Command::Plan { selectors } => {
            let project = load(dir, &env)?;
            let selected = select(&project, &selectors).map_err(anyhow::Error::msg)?;
            print_plan(&project, &selected);
            let problems = crate::check::check(&project, &selected).await;
            if problems.is_empty() {
                return Ok(EXIT_OK);
            }
            Err(anyhow::Error::new(crate::project::ProjectError(problems)).into())
        }
        Command::Status { selectors, format } => {
            let project = load(dir, &env)?;
            let selected = select(&project, &selectors).map_err(anyhow::Error::msg)?;
            let engines = Engines::for_project(&project).await?;
            let state = engines.state();
            let retention = project.settings.retention;
            let day_ago = crate::clock::stamp(clock.now() - Duration::days(1));
            let mut rows = Vec::new();
            for id in &selected {
                let table = &project.models[id].table;
                let db = project.database(id);
                let mut row = StatusRow {
                    model: id.to_string(),
                    table: format!("{db}.{table}"),
                    ..StatusRow::default()
                };
                match &engines {
                    Engines::Athena(engine, _) => {
                        if let Some(s) = engine.status(db, table, retention).await? {
                            row.version = Some(s.version);
                            row.published_at = Some(s.published_at);
                            row.by_run = Some(s.run_id);
                            row.kept_versions = s.kept.len();
                        }
                    }
                    Engines::Local(engine, _) => {
                        if let Some(s) = lifecycle::status(engine.catalog(), db, table, retention)? {
                            let external = s.kind == "external";
                            row.version = Some(s.head.current.clone());
                            row.published_at = Some(s.head.published_at.clone());
                            row.by_run = Some(s.head.published_by.clone());
                            row.rows = (!external).then_some(s.rows);
                            row.bytes = (!external).then_some(s.bytes);
                            row.kept_versions = s.kept.len();
                        }
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
                row.lease = state
                    .lease(&model)
                    .await?
                    .filter(|l| l.until > crate::clock::stamp(clock.now()))
                    .map(|l| l.owner);
                rows.push(row);
            }
            print_status(&rows, format)?;
            Ok(EXIT_OK)
        }
        Command::Rollback { model, to } => {
            let project = load(dir, &env)?;
            let id = resolve_model(&project, &model)?;
            let now = clock.now();
            let run_id = runner::new_id("rollback-", now);
            let db = project.database(&id);
            let table = &project.models[&id].table;
            if let Engines::Athena(engine, _) = Engines::for_project(&project).await? {
                let v = engine
                    .rollback(db, table, to.as_deref(), project.settings.retention, &crate::clock::stamp(now))
                    .await
                    .map_err(|e| {
                        // Nothing to roll back to is a usage error; a lost race or AWS is not.
                        let code = if matches!(e, crate::engine::EngineError::Query(_)) {
                            EXIT_USAGE
                        } else {
                            EXIT_MODEL_FAILED
                        };
                        Failure { name: ERROR, code, error: e.into() }
                    })?;
                println!("{id}: {db}.{table} is now at version {v}");
                return Ok(EXIT_OK);
            }
            let engine = local_engine(&project)?;
            let v = lifecycle::rollback(
                engine.catalog(),
                db,
                table,
                to.as_deref(),
                project.settings.retention,
                &run_id,
                now,
            )
            .map_err(|e| {
                let code = if e.contains("publish conflict") { EXIT_MODEL_FAILED } else { EXIT_USAGE };
                Failure { name: ERROR, code, error: anyhow::anyhow!(e) }
            })?;
            println!("{id}: {db}.{table} is now at version {v}");
            Ok(EXIT_OK)
        }
        Command::Gc { dry_run } => {
            let project = load(dir, &env)?;
            let now = clock.now();
            let retention = project.settings.retention;
            let failed =
                |e: String| Failure { name: ERROR, code: EXIT_MODEL_FAILED, error: anyhow::anyhow!(e) };
            let mut items = Vec::new();
            match Engines::for_project(&project).await? {
                Engines::Athena(engine, _) => {
                    for id in &project.dag.order {
                        let (db, table) = (project.database(id), &project.models[id].table);
                        items.extend(
                            engine
                                .gc(id.layer, db, table, retention, now, dry_run)
                                .await
                                .map_err(|e| failed(e.to_string()))?,
                        );
                    }
                }
                Engines::Local(engine, _) => {
                    for (db, table, _) in engine.catalog().tables()? {
                        let Some(layer) = project.settings.layer_of(&db) else { continue };
                        let planned = lifecycle::plan_table(
                            engine.catalog(),
                            &engine,
                            layer,
                            &db,
                            &table,
                            retention,
                            now,
                        )?;
                        if !dry_run && !planned.is_empty() {
                            lifecycle::execute(engine.catalog(), &engine, (&db, &table), &planned)
                                .map_err(failed)?;
                        }
                        items.extend(planned);
                    }
                }
            }
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(["table", "version", "bytes", "why"]);
            for i in &items {
                t.add_row([
                    i.table.clone(),
                    i.dir.as_ref().map(|d| d.relative()).or(i.forget.clone()).unwrap_or_default(),
                    human_bytes(i.bytes),
                    i.reason.clone(),
                ]);
            }
            if !items.is_empty() {
                println!("{t}");
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            let total: u64 = items.iter().map(|i| i.bytes).sum();
            println!("{verb} {} versions, {}", items.len(), human_bytes(total));
            Ok(EXIT_OK)
        }
        Command::State { action } => {
            let project = load(dir, &env)?;
            let engines = Engines::for_project(&project).await?;
            engines.hydrate(&project, clock).await?;
            let state = engines.state();
            let now = crate::clock::stamp(clock.now());
            match action.unwrap_or(StateAction::Show { selectors: Vec::new() }) {
                StateAction::Show { selectors } => {
                    let selected = select(&project, &selectors).map_err(anyhow::Error::msg)?;
                    let mut t = Table::new();
                    t.load_preset(UTF8_FULL_CONDENSED);
                    t.set_header(["model", "ran up to", "by", "updated", "lease held by", "until"]);
                    for id in &selected {
                        let m = state.model(&id.to_string()).await?;
                        let lease = state.lease(&id.to_string()).await?.filter(|l| l.until > now);
                        let (last, by, updated) =
                            m.map(|m| (m.last_at, m.by, m.updated_at)).unwrap_or_default();
                        let (owner, until) = lease.map(|l| (l.owner, l.until)).unwrap_or_default();
                        t.add_row([
                            id.to_string(),
                            last.unwrap_or_else(|| "never".into()),
                            by,
                            updated,
                            owner,
                            until,
                        ]);
                    }
                    println!("{t}");
                }
                StateAction::Reset { selectors, to } => {
                    let to = to.map(|t| at_or_now(Some(&t), clock, "--to")).transpose()?;
                    let selected = select(&project, &selectors).map_err(anyhow::Error::msg)?;
                    for id in &selected {
                        let at = to.map(crate::clock::stamp);
                        let by = format!("{} at {now}", crate::scheduler::RESET);
                        state.reset(&id.to_string(), at.as_deref(), &by, &now).await?;
                        println!("{id}: run state reset to {}", at.as_deref().unwrap_or("never"));
                    }
                }
                StateAction::Unlock { selectors, backfill } => {
                    let selected = if selectors.is_empty() {
                        Vec::new()
                    } else {
                        select(&project, &selectors).map_err(anyhow::Error::msg)?
                    };
                    let keys = selected.iter().map(|id| (id.to_string(), id.to_string())).chain(
                        backfill.iter().map(|b| (crate::backfill::lease_key(b), format!("backfill {b}"))),
                    );
                    for (key, what) in keys {
                        let released = state.force_release(&key).await?;
                        println!("{what}: {}", if released { "lease released" } else { "no lease held" });
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Command::Runs { selectors, since, format } => {
            let since = match since {
                Some(s) => at_or_now(Some(&s), clock, "--since")?,
                None => clock.now() - Duration::days(1),
            };
            let project = load(dir, &env)?;
            let engines = Engines::for_project(&project).await?;
            let state = engines.state();
            let since = crate::clock::stamp(since);
            let mut runs = Vec::new();
            if selectors.is_empty() {
                runs = state.runs(None, Some(&since), None).await?;
            } else {
                for id in select(&project, &selectors).map_err(anyhow::Error::msg)? {
                    runs.extend(state.runs(Some(&id.to_string()), Some(&since), None).await?);
                }
                runs.sort_by(|a, b| (&a.finished_at, &a.model).cmp(&(&b.finished_at, &b.model)));
            }
            print_history(&runs, format)?;
            Ok(EXIT_OK)
        }
        Command::Query { sql, format } => {
            let mut env = env;
            env.entry("STRATA_ENGINE".into()).or_insert_with(|| "local".into());
            let settings = Settings::load(dir, &env)?;
            let project = Project::load(settings)?;
            read_only(&sql)?;
            let engines = Engines::for_project(&project).await?;
            let result = engines.engine().query(&sql).await.map_err(|e| Failure {
                name: ERROR,
                code: EXIT_MODEL_FAILED,
                error: e.into(),
            })?;
            print_batches(&result, format)?;
            Ok(EXIT_OK)
        }
    }
}

/// `strata query` runs what reads: a DDL or DML statement would either do nothing or
/// change tables behind the catalog's back.
fn read_only(sql: &str) -> Result<(), Failure> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap_or_default();
    let reads = |s: &Statement| {
        matches!(
            s,
            Statement::Query(_)
                | Statement::Explain { .. }
                | Statement::ExplainTable { .. }
                | Statement::ShowTables { .. }
                | Statement::ShowColumns { .. }
        )
    };
    match statements.as_slice() {
        [] => Ok(()), // what the engine's own parser says about it is more precise
        [one] if reads(one) => Ok(()),
        [_] => Err(anyhow::anyhow!(
            "strata query runs read-only SQL (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW): models create tables, and rollback and gc change them"
        )
        .into()),
        _ => Err(anyhow::anyhow!("strata query runs one statement at a time").into()),
    }
}

fn resolve_model(project: &Project, name: &str) -> Result<ModelId, Failure> {
    let selected = select(project, &[name.to_string()]).map_err(anyhow::Error::msg)?;
    match selected.as_slice() {
        [one] => Ok(one.clone()),
        many => Err(anyhow::anyhow!(
            "'{name}' names {} models; render takes one: {}",
            many.len(),
            many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )
        .into()),
    }
}

/// Raised on SIGTERM (how ECS stops a task) or Ctrl-C: no new model starts, models in
/// flight are abandoned before they publish, leases are released.
fn stop_on_signals() -> runner::Stop {
    let (tx, stop) = runner::Stop::new();
    tokio::spawn(async move {
        let term = async {
            #[cfg(unix)]
            {
                let mut s = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
                s.recv().await;
            }
            #[cfg(not(unix))]
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
        eprintln!("stopping: no new work starts; work in flight is abandoned before it publishes");
        let _ = tx.send(true);
        std::future::pending::<()>().await;
    });
    stop
}

/// A progress bar on a terminal, plain log lines otherwise.
struct BackfillProgress {
    bars: std::sync::Mutex<std::collections::BTreeMap<ModelId, indicatif::ProgressBar>>,
    terminal: bool,
}

impl BackfillProgress {
    fn new() -> Self {
        use std::io::IsTerminal;
        Self { bars: Default::default(), terminal: std::io::stderr().is_terminal() }
    }
}

impl crate::backfill::Progress for BackfillProgress {
    fn start(&self, model: &ModelId, total: usize, done: usize) {
        if done > 0 {
            eprintln!("{model}: resuming, {done} of {total} windows already done");
        }
        let bar = if self.terminal {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:32} [{bar:40}] {pos}/{len} windows {elapsed}",
                )
                .expect("a valid template"),
            );
            b.set_prefix(model.to_string());
            b.set_position(done as u64);
            b
        } else {
            let b = indicatif::ProgressBar::hidden();
            b.set_length(total as u64);
            b.set_position(done as u64);
            b
        };
        self.bars.lock().expect("progress lock").insert(model.clone(), bar);
    }

    fn window_done(&self, model: &ModelId, window: &crate::window::Window) {
        let bars = self.bars.lock().expect("progress lock");
        if let Some(b) = bars.get(model) {
            b.inc(1);
            if !self.terminal {
                eprintln!(
                    "{model}: window {} done ({}/{})",
                    crate::window::fmt_ts(window.start),
                    b.position(),
                    b.length().unwrap_or(0)
                );
            }
        }
    }

    fn finish(&self, model: &ModelId) {
        if let Some(b) = self.bars.lock().expect("progress lock").remove(model) {
            b.finish();
        }
    }
}

fn exit_for(runs: &[ModelRun]) -> u8 {
    if runs.iter().any(|r| r.outcome.is_failure()) { EXIT_MODEL_FAILED } else { EXIT_OK }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

fn report(runs: &[ModelRun], metrics: Metrics, now: DateTime<Utc>) {
    print_runs(runs);
    if metrics == Metrics::Emf {
        for r in runs {
            println!("{}", crate::metrics::emf(r, now));
        }
    }
}

fn print_runs(runs: &[ModelRun]) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["model", "window", "status", "rows", "bytes read", "bytes written", "bad lines", "time"]);
    for r in runs {
        t.add_row([
            r.model.to_string(),
            format!("{} .. {}", r.window.start.format("%m-%d %H:%M"), r.window.end.format("%m-%d %H:%M")),
            r.outcome.label().to_string(),
            r.stats.rows.to_string(),
            human_bytes(r.stats.bytes_read),
            human_bytes(r.stats.bytes_written),
            // Athena does not say which lines it read as NULLs (silver.bronze_quality counts them).
            if r.stats.statements > 0 { "-".to_string() } else { r.stats.malformed.to_string() },
            format!("{:.2}s", r.elapsed.as_secs_f64()),
        ]);
    }
    println!("{t}");
    for r in runs.iter().filter(|r| r.stats.statements > 0) {
        println!(
            "{}: {} Athena statements, {} scanned, {} ms queued, {} ms executing",
            r.model,
            r.stats.statements,
            human_bytes(r.stats.bytes_read),
            r.stats.queue_ms,
            r.stats.engine_ms
        );
    }
    for r in runs.iter().filter(|r| r.stats.bad_files > 0) {
        eprintln!(
            "warning: {}: {} Bronze file(s) could not be read to their end (truncated or corrupt); what they hold past that is in no table, see bronze/_bad/",
            r.model, r.stats.bad_files
        );
    }
    for r in runs {
        match &r.outcome {
            Outcome::Skipped(why) => eprintln!("skipped {}: {why}", r.model),
            Outcome::Superseded(why) => eprintln!("superseded {}: {why}", r.model),
            o if o.is_failure() => eprintln!("error: {}: {}", r.model, o.detail().unwrap_or_default()),
            _ => {}
        }
    }
}

fn print_plan(project: &Project, selected: &[ModelId]) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["model", "materialized", "schedule", "window", "partitioned by", "depends on"]);
    for id in selected {
        let m = &project.models[id];
        let c = &m.config;
        t.add_row([
            id.to_string(),
            c.materialized.as_str().to_string(),
            c.schedule.as_ref().map_or("-".into(), ToString::to_string),
            format!("{} (+{} back)", c.grain.as_str(), c.lookback),
            c.partitioned_by.join(", "),
            m.deps.iter().map(|d| d.target.to_string()).collect::<Vec<_>>().join(", "),
        ]);
    }
    println!("{t}");
}

/// One table's line of `strata status`: the same fields on every engine (a field the
/// engine cannot tell cheaply is empty, e.g. rows and bytes on Athena).
#[derive(Debug, Default, serde::Serialize)]
struct StatusRow {
    model: String,
    table: String,
    version: Option<String>,
    published_at: Option<String>,
    by_run: Option<String>,
    data_up_to: Option<String>,
    rows: Option<u64>,
    bytes: Option<u64>,
    kept_versions: usize,
    last_run: Option<String>,
    last_outcome: Option<String>,
    last_cost_usd: Option<f64>,
    runs_24h: usize,
    cost_24h_usd: f64,
    lease: Option<String>,
}

fn print_status(rows: &[StatusRow], format: OutputFormat) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let header = [
        "model",
        "table",
        "current version",
        "published at",
        "by run",
        "data up to",
        "rows",
        "bytes",
        "kept versions",
        "last run",
        "outcome",
        "cost USD",
        "runs 24h",
        "cost 24h USD",
        "running on",
    ];
    let cells = |r: &StatusRow, human: bool| {
        let opt =
            |v: &Option<String>| v.clone().unwrap_or_else(|| if human { "-".into() } else { String::new() });
        let num = |v: Option<u64>, f: fn(u64) -> String| {
            v.map(f).unwrap_or_else(|| if human { "-".into() } else { String::new() })
        };
        vec![
            r.model.clone(),
            r.table.clone(),
            r.version
                .clone()
                .unwrap_or_else(|| if human { "(never published)".into() } else { String::new() }),
            opt(&r.published_at),
            opt(&r.by_run),
            opt(&r.data_up_to),
            num(r.rows, |n| n.to_string()),
            num(r.bytes, if human { human_bytes } else { |n: u64| n.to_string() }),
            r.kept_versions.to_string(),
            opt(&r.last_run),
            opt(&r.last_outcome),
            r.last_cost_usd
                .map(|c| format!("{c:.6}"))
                .unwrap_or_else(|| if human { "-".into() } else { String::new() }),
            r.runs_24h.to_string(),
            format!("{:.4}", r.cost_24h_usd),
            opt(&r.lease),
        ]
    };
    match format {
        OutputFormat::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(header);
            for r in rows {
                t.add_row(cells(r, true));
            }
            writeln!(stdout, "{t}")?;
        }
        OutputFormat::Csv => {
            writeln!(stdout, "{}", header.join(","))?;
            for r in rows {
                let c: Vec<String> = cells(r, false).iter().map(|c| csv_field(c)).collect();
                writeln!(stdout, "{}", c.join(","))?;
            }
        }
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, rows)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// Run history as a table (with totals), CSV or a JSON array.
fn print_history(runs: &[crate::state::RunRecord], format: OutputFormat) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let header = [
        "finished", "model", "window", "outcome", "rows", "scanned", "cost USD", "seconds", "version",
        "task", "run", "error",
    ];
    let row = |r: &crate::state::RunRecord, human: bool| {
        vec![
            r.finished_at.clone(),
            r.model.clone(),
            format!("{} / {}", r.window_start, r.window_end),
            r.outcome.clone(),
            r.rows.to_string(),
            if human { human_bytes(r.bytes_scanned) } else { r.bytes_scanned.to_string() },
            format!("{:.6}", r.cost_usd),
            format!("{:.1}", r.millis as f64 / 1000.0),
            r.version.clone().unwrap_or_default(),
            r.task.clone(),
            r.run_id.clone(),
            r.error.clone().unwrap_or_default(),
        ]
    };
    match format {
        OutputFormat::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(header);
            for r in runs {
                let mut cells = row(r, true);
                cells[11] = cells[11].chars().take(80).collect();
                t.add_row(cells);
            }
            if !runs.is_empty() {
                writeln!(stdout, "{t}")?;
            }
            let cost = runs.iter().fold(0.0, |sum, r| sum + r.cost_usd);
            let scanned: u64 = runs.iter().map(|r| r.bytes_scanned).sum();
            let failed = runs.iter().filter(|r| r.outcome.chars().all(|c| !c.is_lowercase())).count();
            writeln!(
                stdout,
                "{} runs, {failed} failed, {} scanned, ${cost:.4} estimated Athena cost",
                runs.len(),
                human_bytes(scanned)
            )?;
        }
        OutputFormat::Csv => {
            writeln!(stdout, "{}", header.join(","))?;
            for r in runs {
                let cells: Vec<String> = row(r, false).iter().map(|c| csv_field(c)).collect();
                writeln!(stdout, "{}", cells.join(","))?;
            }
        }
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, runs)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn print_batches(result: &crate::engine::QueryResult, format: OutputFormat) -> Result<(), Failure> {
    use datafusion::arrow::csv::WriterBuilder;
    use datafusion::arrow::json::ArrayWriter;
    let mut stdout = std::io::stdout().lock();
    match format {
        OutputFormat::Table => {
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&result.batches)?;
            use std::io::Write;
            writeln!(stdout, "{text}")?;
            writeln!(stdout, "{} rows, {} read", result.stats.rows, human_bytes(result.stats.bytes_read))?;
        }
        OutputFormat::Csv => {
            let mut w = WriterBuilder::new().with_header(true).build(&mut stdout);
            for b in &result.batches {
                w.write(b)?;
            }
        }
        OutputFormat::Json => {
            let mut w = ArrayWriter::new(&mut stdout);
            for b in &result.batches {
                w.write(b)?;
            }
            w.finish()?;
            use std::io::Write;
            writeln!(stdout)?;
        }
    }
    Ok(())
}
