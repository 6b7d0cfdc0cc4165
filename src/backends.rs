//! The backends strata has, and which one a project names (`engine = ...` in
//! `strata.toml`): the one place that knows them all, so the command line, the docs site
//! and `strata render` hold a `Box<dyn Backend>` or ask here, and never name a backend.

use crate::backend::Backend;
use crate::config::{ConfigError, EngineKind, Settings};
use crate::engine::{EngineError, Job, JobKind};
use crate::project::Project;
use crate::state::Access;

/// The backend the project's settings name: the local engine (its queries on `executor`
/// when given), or Athena with AWS clients from the standard chain. `access` says whether
/// the command writes (see [`Access`]).
pub async fn open(
    project: &Project,
    access: Access,
    executor: Option<tokio::runtime::Handle>,
) -> Result<Box<dyn Backend>, EngineError> {
    Ok(match project.settings.engine {
        EngineKind::Local => {
            let engine = crate::local::LocalEngine::open(&project.settings, access)?;
            Box::new(match executor {
                Some(exec) => engine.with_executor(exec),
                None => engine,
            })
        }
        EngineKind::Athena => Box::new(crate::athena::AthenaEngine::open(&project.settings).await?),
    })
}

/// The statements a run of `job` sends on the project's backend, as text (`strata render`):
/// on Athena its DDL, CTAS or chunked statements; locally the model's SQL as it runs.
/// Nothing is opened: no credentials, no catalog.
pub fn statements(project: &Project, job: &Job) -> Result<Vec<String>, String> {
    match project.settings.engine {
        EngineKind::Athena => crate::athena::sql::statements(job, &project.settings.storage),
        EngineKind::Local => Ok(vec![match &job.kind {
            JobKind::Select { sql, .. } => sql.trim().to_string(),
            JobKind::External { ddl } => ddl.trim().to_string(),
        }]),
    }
}

/// The sections of strata.toml the backends own (`[athena]`).
pub const SECTIONS: &[&str] = &[crate::athena::settings::SECTION];

/// Every backend's check of its own section, and a section no backend owns refused at its
/// line (a typo such as `[athenna]` would otherwise be ignored): what the command line runs
/// after the core settings load.
pub fn check(settings: &Settings) -> Result<(), ConfigError> {
    let mut problems: Vec<ConfigError> = settings
        .sections()
        .filter(|s| !SECTIONS.contains(&s.name()))
        .map(|s| ConfigError::Invalid {
            origin: s.origin(),
            field: "section",
            value: s.name().to_string(),
            expected: "a table strata reads: athena, databases, vars, retention, profiles",
        })
        .collect();
    problems.extend(crate::athena::AthenaSettings::check(settings));
    match problems.len() {
        0 => Ok(()),
        1 => Err(problems.remove(0)),
        _ => Err(ConfigError::Many(problems)),
    }
}
