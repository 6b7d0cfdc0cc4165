//! Parse: the command line's grammar (clap). Nothing here reads the environment beyond
//! what clap's `env` attributes name, or does any work.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// Run the models' unit tests (`sql/<layer>/<name>.tests.toml`): given inputs, one
    /// window, the rows the model must produce. On the embedded engine by default, in a
    /// temporary lake; `--engine athena` runs the same tests on Athena.
    Test {
        /// dbt-style selectors (default: every model).
        selectors: Vec<String>,
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
    },
    /// Write the lake's documentation as a static site: the lineage graph coloured by
    /// freshness, a page per model (config, columns, audits, upstream and downstream, both
    /// engines' SQL, kept versions, recent runs with cost), search. Self-contained: it
    /// opens from disk or from an S3 bucket.
    Docs {
        /// Where to write it (default: `<state dir>/docs`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also upload it to `s3://bucket/prefix`, or to a prefix under the lake's S3 root.
        #[arg(long)]
        publish: Option<String>,
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
    /// produces the columns its partitions and audits name. Then what changed since what is
    /// published: new, removed, logic, config, upstream and columns, breaking or not, and
    /// the models downstream (`state:modified` selects the changed models).
    Plan {
        selectors: Vec<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
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
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
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
        /// The statement; `-` reads it from standard input (or give `-f FILE`).
        #[arg(required_unless_present = "file")]
        sql: Option<String>,
        /// Read the statement from this file (`-`: standard input): a statement too long
        /// for the command line.
        #[arg(short = 'f', long, conflicts_with = "sql")]
        file: Option<PathBuf>,
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
