//! Status, rollback and gc on Athena (the policy is `crate::lifecycle`'s): the publish
//! history is the view's Glue table versions, a version's record its version table; and
//! the run state raised to what the published views say.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aws_sdk_glue::types::Table;

use super::glue::as_input;
use super::s3::dir_version;
use super::*;
use crate::engine::EngineError;
use crate::ids::Layer;
use crate::lifecycle::{self, VersionDir};

/// The distinct strata versions of a table's Glue history, newest first: (version, Glue
/// version id, the table as it was).
pub(super) fn history(versions: &[(String, Table)]) -> Vec<(String, String, Table)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (id, t) in versions {
        if let Some(v) = param(t, P_VERSION)
            && seen.insert(v.to_string())
        {
            out.push((v.to_string(), id.clone(), t.clone()));
        }
    }
    out
}

fn published(t: &Table, version: &str) -> lifecycle::Published {
    lifecycle::Published {
        version: version.to_string(),
        published_at: param(t, P_PUBLISHED_AT).unwrap_or_default().to_string(),
        by: param(t, P_RUN).unwrap_or_default().to_string(),
    }
}

/// The lifecycle on Athena: a table's publish history is its view's Glue table versions;
/// a version's record is its version table (`<table>__v…`); its directory is the S3 prefix
/// `<layer>/<table>/<version>/`.
#[async_trait::async_trait]
impl lifecycle::Lifecycle for AthenaEngine {
    async fn managed_tables(&self, databases: &[String]) -> Result<Vec<(String, String)>, EngineError> {
        let mut out = Vec::new();
        for db in databases {
            for t in self.glue.tables_with_prefix(db, "").await? {
                if param(&t, P_VERSION).is_some() && !t.name().contains("__v") {
                    out.push((db.clone(), t.name().to_string()));
                }
            }
        }
        Ok(out)
    }

    async fn table_versions(
        &self,
        layer: Layer,
        db: &str,
        table: &str,
    ) -> Result<Option<lifecycle::TableVersions>, EngineError> {
        let Some(view) = self.glue.table(db, table).await? else { return Ok(None) };
        let Some(current) = param(&view, P_VERSION) else {
            return Err(EngineError::aws(format!(
                "{db}.{table} exists in Glue but was not published by strata"
            )));
        };
        let hist = history(&self.glue.versions(db, table).await?);
        let previous = hist.iter().map(|(v, _, _)| v).find(|v| *v != current).cloned();
        let version_of = |t: &Table| -> Option<String> {
            let v = param(t, P_VERSION).map(str::to_string).or_else(|| {
                t.storage_descriptor().and_then(|sd| sd.location()).and_then(|l| dir_version(l, layer, table))
            })?;
            lifecycle::is_version_id(&v).then_some(v)
        };
        let recorded = if layer == Layer::Bronze {
            Vec::new()
        } else {
            self.glue
                .tables_with_prefix(db, &format!("{table}__v"))
                .await?
                .iter()
                .filter_map(|t| {
                    version_of(t).map(|version| lifecycle::Recorded { version, record: t.name().to_string() })
                })
                .collect()
        };
        let dirs = if layer == Layer::Bronze {
            Vec::new()
        } else {
            self.list_version_prefixes(layer, table)
                .await?
                .into_iter()
                .map(|name| lifecycle::StoredDir { name, bytes: None })
                .collect()
        };
        Ok(Some(lifecycle::TableVersions {
            layer,
            database: db.to_string(),
            table: table.to_string(),
            current: published(&view, current),
            previous,
            history: hist.iter().map(|(v, _, t)| published(t, v)).collect(),
            recorded,
            dirs,
            rows: None,
            bytes: None,
        }))
    }

    async fn dirs_read_by(
        &self,
        tv: &lifecycle::TableVersions,
        version: &lifecycle::Recorded,
    ) -> Result<BTreeSet<String>, EngineError> {
        let mut dirs = BTreeSet::from([version.version.clone()]);
        let mut parts = self.glue.partitions(&tv.database, &version.record).await?;
        // Published with the layered layout: its base's partitions before its window too.
        let published = history(&self.glue.versions(&tv.database, &tv.table).await?);
        if let Some((base, from)) =
            published.iter().find(|(v, _, _)| *v == version.version).and_then(|(_, _, t)| staging::layered(t))
        {
            let before = self.glue.partitions(&tv.database, &base).await?;
            parts.extend(before.into_iter().filter(|p| p.values() < from.as_slice()));
        }
        for p in parts {
            if let Some(loc) = p.storage_descriptor().and_then(|sd| sd.location()) {
                dirs.extend(dir_version(loc, tv.layer, &tv.table));
            }
        }
        Ok(dirs)
    }

    async fn republish(
        &self,
        tv: &lifecycle::TableVersions,
        version: &str,
        _run_id: &str,
        now: &str,
    ) -> Result<(), EngineError> {
        let (db, table) = (&tv.database, &tv.table);
        let view = self.glue.table(db, table).await?;
        let expected = view.as_ref().and_then(|t| t.version_id()).map(str::to_string);
        if view.as_ref().and_then(|t| param(t, P_VERSION)) != Some(tv.current.version.as_str()) {
            return Err(EngineError::Conflict(format!(
                "publish conflict: {db}.{table} was published by another run meanwhile; nothing changed"
            )));
        }
        let versions = self.glue.versions(db, table).await?;
        let hist = history(&versions);
        let Some((_, _, target)) = hist.iter().find(|(v, _, _)| v == version) else {
            return Err(EngineError::Query(format!("{version} is not in the Glue history of {db}.{table}")));
        };
        let is_view = target.table_type() == Some("VIRTUAL_VIEW");
        for t in [P_TABLE, P_BASE].iter().filter_map(|k| param(target, k)).filter(|_| is_view) {
            if self.glue.table(db, t).await?.is_none() {
                return Err(EngineError::Query(format!("{version}: its table {db}.{t} no longer exists")));
            }
        }
        let params: HashMap<String, String> = [
            (P_PUBLISHED_AT.to_string(), now.to_string()),
            (P_RUN.to_string(), format!("rollback of {}", tv.current.version)),
        ]
        .into();
        self.glue.swap(db, as_input(target, table, params), expected.as_deref()).await
    }

    async fn written_at(
        &self,
        tv: &lifecycle::TableVersions,
        version: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, EngineError> {
        let mut newest = self.newest_object(tv.layer, &tv.table, version).await?;
        // The version table is made when its statement ends: a run's record counts too.
        if let Some(r) = tv.recorded.iter().find(|r| r.version == version)
            && let Some(t) = self.glue.table(&tv.database, &r.record).await?
        {
            let created =
                t.create_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
            newest = newest.max(created);
        }
        Ok(newest)
    }

    async fn delete_dir(&self, dir: &VersionDir) -> Result<u64, EngineError> {
        self.delete_under(dir, "").await
    }

    async fn published_columns(
        &self,
        db: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, String)>>, EngineError> {
        Ok(self.glue.table(db, table).await?.map(|t| columns_of(&t)))
    }

    async fn forget(
        &self,
        tv: &lifecycle::TableVersions,
        record: &lifecycle::Recorded,
    ) -> Result<(), EngineError> {
        self.glue.delete_table(&tv.database, &record.record).await
    }

    /// Glue history of versions no longer kept (never the view's current Glue version).
    async fn prune_history(
        &self,
        tv: &lifecycle::TableVersions,
        kept: &BTreeSet<String>,
    ) -> Result<(), EngineError> {
        let (db, table) = (&tv.database, &tv.table);
        let view = self.glue.table(db, table).await?;
        let current_id = view.as_ref().and_then(|t| t.version_id()).unwrap_or_default();
        let versions = self.glue.versions(db, table).await?;
        let stale: Vec<String> = versions
            .iter()
            .filter(|(id, t)| id != current_id && param(t, P_VERSION).is_none_or(|v| !kept.contains(v)))
            .map(|(id, _)| id.clone())
            .collect();
        if !stale.is_empty() {
            self.glue.delete_versions(db, table, &stale).await?;
        }
        // Base generations no kept version reads (their partitions' data is judged with the
        // versions' directories; a base in the making, younger than a run, is left).
        let read: BTreeSet<&str> = versions
            .iter()
            .filter(|(id, t)| id == current_id || param(t, P_VERSION).is_some_and(|v| kept.contains(v)))
            .filter_map(|(_, t)| param(t, P_BASE))
            .chain(view.as_ref().and_then(|t| param(t, P_BASE)))
            .collect();
        let now = chrono::Utc::now();
        for b in self.glue.tables_with_prefix(db, &format!("{table}__base_")).await? {
            // `<table>__base_<version, lower-cased>`: the stamp back in its own case.
            let suffix = b.name().trim_start_matches(&format!("{table}__base_"));
            let version =
                format!("v{}", suffix.get(1..).unwrap_or_default().to_uppercase().replacen('_', "-", 1));
            let young =
                lifecycle::version_time(&version).is_none_or(|t| now - t < chrono::Duration::hours(1));
            if !read.contains(b.name()) && !young {
                self.glue.delete_table(db, b.name()).await?;
            }
        }
        Ok(())
    }
}

/// Run state belongs to the deployment: every task reads and writes it under the lake.
#[async_trait::async_trait]
impl crate::backend::Backend for AthenaEngine {
    fn run_state(&self) -> Arc<dyn crate::state::RunState> {
        self.state.clone()
    }

    /// Raises each model's run state to the window end its published view carries
    /// (`strata_window_end`), unless an operator reset it.
    async fn reconcile(&self, project: &crate::project::Project, now: &str) -> Result<(), EngineError> {
        let state = &*self.state;
        let state_err = |e: crate::state::StateError| EngineError::io(e.to_string());
        for id in &project.dag.order {
            let table = &project.models[id].table;
            let Some(t) = self.glue.table(project.database(id), table).await? else { continue };
            let Some(end) = param(&t, P_WINDOW_END) else { continue };
            let model = id.to_string();
            // Raised to what Glue says, unless an operator reset it (that stands); the
            // store never moves it backwards.
            let reset = state
                .model(&model)
                .await
                .map_err(state_err)?
                .is_some_and(|m| m.by.starts_with(crate::state::RESET));
            if !reset {
                state
                    .record_success(&model, end, param(&t, P_RUN).unwrap_or_default(), now)
                    .await
                    .map_err(state_err)?;
            }
        }
        Ok(())
    }
}
