//! The command line, in four steps (ripgrep's shape): parse the arguments (`args`), resolve
//! them into one invocation: settings, project, backend, instants (`resolve`), act: one
//! short function per command (`commands`), and print: every table, CSV and JSON written in
//! one place (`print`). Only this module knows the terminal, the process environment and
//! exit codes; every error reaches `main` typed and is mapped to its exit code here.

mod args;
mod commands;
mod print;
mod resolve;

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;

pub use self::args::{Cli, Command, EngineArg, LogFormat, Metrics, OutputFormat, StateAction};
pub use self::commands::render_statements;
use crate::callback::TaskCallback;
use crate::clock::SystemClock;
use crate::engine::EngineError;

/// Exit codes scripts can rely on.
pub const EXIT_OK: u8 = 0;
/// A model (or the command's work) failed; the others still ran.
pub const EXIT_MODEL_FAILED: u8 = 1;
/// A usage, configuration or project error: nothing ran.
pub const EXIT_USAGE: u8 = 2;
/// AWS or the infrastructure failed (after the SDK's retries): a Glue, S3 or Athena API
/// call, the run state, the local catalog's file. Running again later may succeed.
pub const EXIT_INFRA: u8 = 3;
/// Another task is running it now (a backfill of the same selection and range): try again
/// later (sysexits' EX_TEMPFAIL).
pub const EXIT_BUSY: u8 = 75;

/// Why a command failed, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command, the configuration or the project is wrong: fix it.
    #[error("{0:#}")]
    Usage(anyhow::Error),
    /// The work failed (SQL, an audit, a lost compare-and-swap).
    #[error("{0:#}")]
    Failed(anyhow::Error),
    /// AWS or the infrastructure failed after retries.
    #[error("{0}")]
    Infra(String),
    /// Another task holds it.
    #[error("{0}")]
    Busy(String),
}

impl Error {
    pub fn usage(e: impl Into<anyhow::Error>) -> Self {
        Self::Usage(e.into())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Failed(_) => EXIT_MODEL_FAILED,
            Self::Infra(_) => EXIT_INFRA,
            Self::Busy(_) => EXIT_BUSY,
        }
    }

    /// The error name a Step Functions task reports (its state machines retry by it).
    pub fn step_functions_name(&self) -> &'static str {
        match self {
            Self::Usage(_) => "strata.Usage",
            Self::Failed(_) => "strata.Error",
            Self::Infra(_) => "strata.Infra",
            Self::Busy(_) => "strata.Busy",
        }
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Aws(_) | EngineError::Io(_) | EngineError::Catalog(_) => Self::Infra(e.to_string()),
            EngineError::Query(_)
            | EngineError::Statement(_)
            | EngineError::Audit { .. }
            | EngineError::Conflict(_)
            | EngineError::Stopped => Self::Failed(e.into()),
            EngineError::NotReadOnly(_) => Self::Usage(e.into()),
        }
    }
}

impl From<crate::state::StateError> for Error {
    fn from(e: crate::state::StateError) -> Self {
        Self::Infra(e.to_string())
    }
}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Usage(e.into())
    }
}

impl From<crate::project::ProjectError> for Error {
    fn from(e: crate::project::ProjectError) -> Self {
        Self::Usage(e.into())
    }
}

impl From<crate::backfill::BackfillError> for Error {
    fn from(e: crate::backfill::BackfillError) -> Self {
        match e {
            crate::backfill::BackfillError::Running { .. } => Self::Busy(e.to_string()),
            crate::backfill::BackfillError::State(s) => s.into(),
        }
    }
}

/// Writing to the terminal or a file failed.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Infra(e.to_string())
    }
}

/// The stack of the embedded engine's threads.
pub(crate) const EXEC_STACK: usize = 256 << 20;

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
    // The same stack as the engine's threads: work that runs here without the executor
    // (`strata test`'s temporary lake) reads Bronze lines nested as deep as the engine does.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(EXEC_STACK)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    // Queries of the embedded engine run on a runtime of their own: CPU-bound work there
    // cannot keep the threads above from seeing a stop signal, and it is abandoned at exit.
    let exec = tokio::runtime::Builder::new_multi_thread()
        .thread_name("strata-exec")
        // Planning recurses over an expression's depth (a predicate of thousands of ORs):
        // a stack sized for it (address space, touched only as deep as used); deeper
        // statements are refused before planning (`local::MAX_EXPR_DEPTH`).
        .thread_stack_size(EXEC_STACK)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    resolve::EXECUTOR.set(exec.handle().clone()).expect("set once");
    let result = runtime.block_on(async {
        let callback = match cli.task_token.clone() {
            Some(token) => Some(TaskCallback::from_env(token).await),
            None => None,
        };
        let heartbeat = callback.as_ref().map(|c| c.keep_alive(crate::callback::HEARTBEAT_EVERY));
        let result = commands::execute(cli, env, &SystemClock, callback.as_ref()).await;
        if let Some(h) = heartbeat {
            h.abort();
        }
        if let (Err(e), Some(cb)) = (&result, &callback)
            && let Err(sent) = cb.fail(e.step_functions_name(), &e.to_string()).await
        {
            eprintln!("error: {sent}");
        }
        result
    });
    // Whatever a stopped query still computes is not waited for.
    exec.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

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
