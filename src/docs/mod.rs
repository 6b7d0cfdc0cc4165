//! `strata docs`: the lake as a static site. What it shows is gathered here from the
//! project (models, config, dependencies, both engines' SQL), the backend (published
//! versions and their columns) and the run state (freshness, recent runs with cost); the
//! pages are written by `site`, the lineage graph laid out by `graph`. The output is
//! self-contained (no server, no CDN): it opens from disk or from an S3 bucket.

pub mod graph;
pub mod site;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::backend::Backend;
use crate::config::EngineKind;
use crate::engine::EngineError;
use crate::ids::ModelId;
use crate::project::Project;
use crate::runner::{RunOptions, window_for};
use crate::state::RunRecord;

/// How a model stands now, for its colour on the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Published up to its latest scheduled firing (or recently, without a schedule).
    Fresh,
    /// Behind its schedule.
    Late,
    /// Its last run failed.
    Failed,
    /// Never published.
    Never,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Late => "late",
            Self::Failed => "failed",
            Self::Never => "never",
        }
    }
}

/// Everything a model's page shows.
#[derive(Debug, Clone)]
pub struct ModelDoc {
    pub id: ModelId,
    pub table: String,
    pub description: String,
    pub materialized: String,
    pub grain: String,
    pub lookback: u32,
    pub schedule: Option<String>,
    pub partitions: Vec<String>,
    pub tags: Vec<String>,
    pub audits: Vec<String>,
    pub upstream: Vec<ModelId>,
    pub downstream: Vec<ModelId>,
    /// Columns (name, type), and whether they come from the published version or planning.
    pub columns: Vec<(String, String)>,
    pub columns_published: bool,
    pub sql_local: String,
    pub sql_athena: String,
    pub current_version: Option<String>,
    pub published_at: Option<String>,
    pub kept_versions: Vec<String>,
    /// How far its data reaches, and how long ago that is.
    pub data_up_to: Option<String>,
    pub lag: Option<Duration>,
    pub health: Health,
    /// Recent runs, oldest first.
    pub runs: Vec<RunRecord>,
    pub path: String,
    /// The fingerprint (short) the current version was computed with, if its run recorded
    /// one, and the model's now.
    pub fingerprint: Option<String>,
    pub fingerprint_now: Option<String>,
}

/// The whole site's content.
#[derive(Debug, Clone)]
pub struct SiteDoc {
    pub project: String,
    pub engine: String,
    pub generated_at: DateTime<Utc>,
    pub models: Vec<ModelDoc>,
}

/// How many recent runs a model page shows.
const RECENT_RUNS: usize = 30;

fn health(
    project: &Project,
    id: &ModelId,
    last_at: Option<DateTime<Utc>>,
    published: bool,
    last_run: Option<&RunRecord>,
    now: DateTime<Utc>,
) -> Health {
    if last_run.is_some_and(|r| r.outcome.chars().all(|c| !c.is_lowercase())) {
        return Health::Failed;
    }
    if !published {
        return Health::Never;
    }
    let Some(schedule) = &project.models[id].config.schedule else { return Health::Fresh };
    match (schedule.last_at_or_before(now, Duration::days(7)), last_at) {
        (Some(firing), Some(last)) if last >= firing => Health::Fresh,
        // One firing behind is the normal state between a firing and its run.
        (Some(firing), Some(last)) => {
            match schedule.last_at_or_before(firing - Duration::seconds(1), Duration::days(7)) {
                Some(before) if last >= before => Health::Fresh,
                _ => Health::Late,
            }
        }
        (None, _) => Health::Fresh,
        (Some(_), None) => Health::Late,
    }
}

fn audit_text(a: &crate::project::Audit) -> String {
    use crate::project::Audit;
    match a {
        Audit::NotEmpty => "not_empty".into(),
        Audit::NotNull(c) => format!("not_null({})", c.join(", ")),
        Audit::Unique(c) => format!("unique({})", c.join(", ")),
        Audit::AcceptedValues { column, values } => {
            format!("accepted_values({column}: {})", values.join(", "))
        }
        Audit::Sql(sql) => format!("sql: {sql}"),
        Audit::MaxRowChangePct(p) => format!("max_row_change_pct({p})"),
    }
}

/// Gathers the site's content from the project, the backend and its run state.
pub async fn gather(
    project: &Project,
    backend: &dyn Backend,
    now: DateTime<Utc>,
) -> Result<SiteDoc, EngineError> {
    let planned = crate::check::schemas(project).await;
    let state = backend.run_state();
    let state_err = |e: crate::state::StateError| EngineError::io(e.to_string());
    let (fingerprints, _) = crate::project::fingerprints(project);
    let mut downstream: BTreeMap<ModelId, Vec<ModelId>> = BTreeMap::new();
    for id in &project.dag.order {
        for up in project.dag.upstream(id) {
            downstream.entry(up.clone()).or_default().push(id.clone());
        }
    }
    let mut models = Vec::new();
    for id in &project.dag.order {
        let m = &project.models[id];
        let c = &m.config;
        let db = project.database(id);
        let window = window_for(project, id, &RunOptions::new(now, None));
        let sql = |engine| {
            project.render(id, engine, window).unwrap_or_else(|d| format!("-- does not render: {d}"))
        };
        let status =
            crate::lifecycle::status(backend, id.layer, db, &m.table, project.settings.retention).await?;
        let published_columns = backend.published_columns(db, &m.table).await?;
        let (columns, columns_published) = match published_columns {
            Some(cols) => (cols, true),
            None => (
                planned
                    .get(id)
                    .map(|s| {
                        s.fields()
                            .iter()
                            .map(|f| (f.name().clone(), crate::changes::sql_type(f.data_type())))
                            .collect()
                    })
                    .unwrap_or_default(),
                false,
            ),
        };
        let key = id.to_string();
        let last_at = state.model(&key).await.map_err(state_err)?.and_then(|s| s.last_at);
        let last = last_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let runs = state.runs(Some(&key), None, Some(RECENT_RUNS)).await.map_err(state_err)?;
        let health = health(project, id, last, status.is_some(), runs.last(), now);
        let fingerprint = match &status {
            Some(st) => crate::changes::published_fingerprint(&*state, id, &st.current.version)
                .await
                .map_err(state_err)?
                .map(|f| f.short().to_string()),
            None => None,
        };
        models.push(ModelDoc {
            id: id.clone(),
            table: format!("{db}.{}", m.table),
            description: c.description.clone().unwrap_or_default(),
            materialized: c.materialized.as_str().to_string(),
            grain: c.grain.as_str().to_string(),
            lookback: c.lookback,
            schedule: c.schedule.as_ref().map(ToString::to_string),
            partitions: c.partitioned_by.clone(),
            tags: c.tags.clone(),
            audits: c.audits.iter().map(audit_text).collect(),
            upstream: project.dag.upstream(id).to_vec(),
            downstream: downstream.remove(id).unwrap_or_default(),
            columns,
            columns_published,
            sql_local: sql(EngineKind::Local),
            sql_athena: sql(EngineKind::Athena),
            current_version: status.as_ref().map(|s| s.current.version.clone()),
            published_at: status.as_ref().map(|s| s.current.published_at.clone()),
            kept_versions: status.map(|s| s.kept).unwrap_or_default(),
            data_up_to: last_at,
            lag: last.map(|l| now - l),
            health,
            runs,
            path: m.path.display().to_string(),
            fingerprint,
            fingerprint_now: fingerprints.get(id).map(|f| f.short().to_string()),
        });
    }
    Ok(SiteDoc {
        project: project.settings.project_name.clone(),
        engine: project.settings.engine.as_str().to_string(),
        generated_at: now,
        models,
    })
}

/// Uploads the site written under `dir` to `target` (`s3://bucket/prefix/`) with an S3
/// client from the standard chain and the project's AWS settings.
pub async fn publish_to(
    settings: &crate::config::Settings,
    dir: &std::path::Path,
    files: &[std::path::PathBuf],
    target: &str,
) -> Result<usize, String> {
    let athena = crate::athena::AthenaSettings::of(settings).map_err(|e| e.to_string())?;
    let clients = crate::athena::Clients::from_chain(settings, &athena).await;
    publish(&clients.s3, dir, files, target).await
}

/// Uploads the site written under `dir` to `s3://bucket/prefix/`, each file with its
/// content type, `index.html` last (so the entry page never links to pages not there yet).
pub async fn publish(
    client: &aws_sdk_s3::Client,
    dir: &std::path::Path,
    files: &[std::path::PathBuf],
    target: &str,
) -> Result<usize, String> {
    let rest = target
        .strip_prefix("s3://")
        .ok_or_else(|| format!("--publish {target}: expected s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    let mut ordered: Vec<&std::path::PathBuf> =
        files.iter().filter(|f| f.as_os_str() != "index.html").collect();
    ordered.extend(files.iter().filter(|f| f.as_os_str() == "index.html"));
    for rel in &ordered {
        let body = std::fs::read(dir.join(rel)).map_err(|e| format!("{}: {e}", rel.display()))?;
        let key =
            if prefix.is_empty() { rel.display().to_string() } else { format!("{prefix}/{}", rel.display()) };
        let content_type = match rel.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            _ => "application/octet-stream",
        };
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| format!("s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    }
    Ok(ordered.len())
}
