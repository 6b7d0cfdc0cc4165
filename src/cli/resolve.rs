//! Resolve: from parsed arguments and the environment to what a command acts on: the
//! settings and project, the backend, instants checked against the clock, the selected
//! models, the stop signal.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use super::Error;
use crate::backend::Backend;
use crate::changes::ModelChange;
use crate::clock::{Clock, parse_instant};
use crate::config::Settings;
use crate::ids::ModelId;
use crate::local::LocalEngine;
use crate::project::{Project, select};
use crate::runner::Stop;
use crate::state::Access;

/// The runtime the embedded engine's queries run on (set once by `main`).
pub(super) static EXECUTOR: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// How far ahead of the clock an instant may be (clocks of machines differ a little).
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// An instant from `--at`/`--from`/`--to`/`--since`, or now.
pub fn at_or_now(at: Option<&str>, clock: &dyn Clock, flag: &str) -> Result<DateTime<Utc>, Error> {
    match at {
        None => Ok(clock.now()),
        Some(s) => {
            let t = parse_instant(s).ok_or_else(|| {
                Error::usage(anyhow::anyhow!(
                    "{flag} '{s}': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or RFC 3339"
                ))
            })?;
            if !crate::clock::in_range(t) {
                return Err(Error::usage(anyhow::anyhow!(
                    "{flag} '{s}' is out of range: strata accepts instants from {} to {}",
                    crate::clock::EARLIEST,
                    crate::clock::LATEST
                )));
            }
            Ok(t)
        }
    }
}

/// Refuses an empty or inverted range: `--from` must be before `--at` (a run over nothing
/// would publish its tables empty).
pub fn range(from: Option<DateTime<Utc>>, at: DateTime<Utc>) -> Result<(), Error> {
    match from {
        Some(from) if from >= at => Err(Error::usage(anyhow::anyhow!(
            "--from {} is not before --at {}: the range is empty; give --from earlier than --at",
            crate::clock::stamp(from),
            crate::clock::stamp(at)
        ))),
        _ => Ok(()),
    }
}

/// Refuses an instant in the future (unless `--allow-future`).
pub fn not_future(
    t: DateTime<Utc>,
    clock: &dyn Clock,
    allow: bool,
    flag: &str,
) -> Result<DateTime<Utc>, Error> {
    if !allow && t > clock.now() + CLOCK_SKEW {
        return Err(Error::usage(anyhow::anyhow!(
            "{flag} {} is in the future (now is {}): running or ticking for it would record the models as run up to then, and every real tick until then would skip them; pass --allow-future to do it anyway",
            crate::clock::stamp(t),
            crate::clock::stamp(clock.now())
        )));
    }
    Ok(t)
}

/// Settings (strata.toml, profile, `STRATA_*`) and the project's models.
pub fn load(project_dir: &Path, env: &HashMap<String, String>) -> Result<Project, Error> {
    let settings = Settings::load(project_dir, env)?;
    crate::backends::check(&settings)?;
    Ok(Project::load(settings)?)
}

/// The same, on the local engine unless `STRATA_ENGINE` says otherwise (demo, query).
pub fn load_local_by_default(project_dir: &Path, env: &HashMap<String, String>) -> Result<Project, Error> {
    let mut env = env.clone();
    env.entry("STRATA_ENGINE".into()).or_insert_with(|| "local".into());
    load(project_dir, &env)
}

/// The embedded engine, its queries on the executor runtime when there is one.
pub fn local_engine(project: &Project) -> Result<LocalEngine, Error> {
    let engine = LocalEngine::open(&project.settings, Access::Write)?;
    Ok(match EXECUTOR.get() {
        Some(exec) => engine.with_executor(exec.clone()),
        None => engine,
    })
}

/// The backend the project's settings name: the local engine, or Athena with AWS clients
/// from the standard chain.
pub async fn backend(project: &Project) -> Result<Box<dyn Backend>, Error> {
    backend_for(project, Access::Write).await
}

/// The same, for a command that only reads (status, query, runs, docs) or reads before it
/// writes (gc): on the local engine nothing is written to open it (see [`Access::Read`]).
pub async fn backend_for(project: &Project, access: Access) -> Result<Box<dyn Backend>, Error> {
    Ok(crate::backends::open(project, access, EXECUTOR.get().cloned()).await?)
}

/// The models dbt-style selectors name, in DAG order.
pub fn selected(project: &Project, selectors: &[String]) -> Result<Vec<ModelId>, Error> {
    select(project, selectors).map_err(|e| Error::usage(anyhow::Error::msg(e)))
}

/// The project's changes against what its backend has published (opened to read): each
/// model's fingerprint and columns (as `schemas` plans them) against the published
/// version's.
pub async fn changes(
    project: &Project,
    schemas: &std::collections::BTreeMap<ModelId, datafusion::arrow::datatypes::SchemaRef>,
) -> Result<Vec<ModelChange>, Error> {
    let backend = backend_for(project, Access::Read).await?;
    let (fingerprints, _) = crate::project::fingerprints(project);
    let columns = schemas
        .iter()
        .map(|(id, s)| {
            let named =
                s.fields().iter().map(|f| (f.name().clone(), crate::changes::sql_type(f.data_type())));
            (id.clone(), named.collect())
        })
        .collect();
    let (published, orphans) = crate::changes::published(project, &*backend).await?;
    Ok(crate::changes::classify(project, &fingerprints, &columns, &published, &orphans))
}

/// The models `state:modified` selects among `changes`: new, changed themselves (not only
/// upstream), or published with no fingerprint to compare with.
pub fn modified(changes: &[ModelChange]) -> std::collections::BTreeSet<ModelId> {
    changes.iter().filter(|c| c.is_direct()).filter_map(|c| ModelId::parse(&c.model)).collect()
}

/// The selected models, `state:modified` among the selectors compared with what is
/// published.
pub async fn selected_at_state(project: &Project, selectors: &[String]) -> Result<Vec<ModelId>, Error> {
    if !crate::project::needs_state(selectors) {
        return selected(project, selectors);
    }
    let changes = changes(project, &crate::check::schemas(project).await).await?;
    crate::project::select_in(project, selectors, Some(&modified(&changes)))
        .map_err(|e| Error::usage(anyhow::Error::msg(e)))
}

/// The one model `name` selects.
pub fn one_model(project: &Project, name: &str, command: &str) -> Result<ModelId, Error> {
    match selected(project, &[name.to_string()])?.as_slice() {
        [one] => Ok(one.clone()),
        many => Err(Error::usage(anyhow::anyhow!(
            "'{name}' names {} models; {command} takes one: {}",
            many.len(),
            many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The statement of `strata query`: given, or read from a file or standard input (`-`).
pub fn statement(sql: Option<String>, file: Option<std::path::PathBuf>) -> Result<String, Error> {
    let from = match (sql, file) {
        (Some(s), None) if s != "-" => return Ok(s),
        (_, Some(f)) if f.as_os_str() != "-" => Some(f),
        _ => None,
    };
    let text = match &from {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| Error::usage(anyhow::anyhow!("{}: cannot read the statement: {e}", f.display())))?,
        None => std::io::read_to_string(std::io::stdin())
            .map_err(|e| Error::usage(anyhow::anyhow!("standard input: cannot read the statement: {e}")))?,
    };
    if text.trim().is_empty() {
        return Err(Error::usage(anyhow::anyhow!("the statement is empty")));
    }
    Ok(text)
}

/// `strata query` runs what reads: a DDL or DML statement would either do nothing or
/// change tables behind the catalog's back.
pub fn read_only(sql: &str) -> Result<(), Error> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    // Parsed (and its tree dropped, which recurses over its depth) on a thread with the
    // engine's stack: a statement of thousands of ORs is an error later, never an abort here.
    let owned = sql.to_string();
    let parsed = std::thread::Builder::new()
        .stack_size(super::EXEC_STACK)
        .spawn(move || {
            Parser::parse_sql(&GenericDialect {}, &owned).map(|s| s.iter().map(reads).collect::<Vec<bool>>())
        })
        .map_err(|e| Error::Infra(format!("starting a thread: {e}")))?
        .join()
        .map_err(|_| Error::Infra("internal error: parsing the statement panicked (a bug)".into()))?;
    let statements = parsed.unwrap_or_default();
    // EXPLAIN ANALYZE runs its statement (on Athena too): it reads only if that does.
    fn reads(s: &Statement) -> bool {
        match s {
            Statement::Explain { statement, .. } => reads(statement),
            s => matches!(
                s,
                Statement::Query(_)
                    | Statement::ExplainTable { .. }
                    | Statement::ShowTables { .. }
                    | Statement::ShowColumns { .. }
            ),
        }
    }
    match statements.as_slice() {
        [] => Ok(()), // what the engine's own parser says about it is more precise
        [true] => Ok(()),
        [_] => Err(Error::usage(anyhow::anyhow!(
            "strata query runs read-only SQL (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW): models create tables, and rollback and gc change them"
        ))),
        _ => Err(Error::usage(anyhow::anyhow!("strata query runs one statement at a time"))),
    }
}

/// Raised on SIGTERM (how ECS stops a task) or Ctrl-C: no new model starts, models in
/// flight are abandoned at their next safe point, leases are released.
pub fn stop_on_signals() -> Stop {
    let (tx, stop) = Stop::new();
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
        eprintln!("stopping: no new work starts; work in flight stops at its next safe point");
        let _ = tx.send(true);
        std::future::pending::<()>().await;
    });
    stop
}
