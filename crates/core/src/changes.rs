//! What changed in the project since what is published, per model: new, removed, logic,
//! config and upstream changes (from the fingerprint the published version recorded, see
//! `fingerprint`), and columns added, removed or retyped (from the published table's
//! columns and the model's as planned). Whether each change is breaking, and which models
//! downstream it reaches. `strata plan` shows it; `state:modified` selects from it.
//!
//! Breaking: what a run that replaces only its window cannot publish over the history it
//! keeps: a column removed, retyped or moved, a column added anywhere but after the
//! published ones, a change of materialization, partition columns, grain or format. A
//! change of logic alone is not breaking (the run publishes), but history is then mixed:
//! older partitions were computed by the older SQL until they are recomputed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::backend::Backend;
use crate::engine::EngineError;
use crate::fingerprint::Fingerprint;
use crate::ids::ModelId;
use crate::project::Project;

/// What the backend says is published for a model's table.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub version: String,
    /// The fingerprint its run recorded (`None`: published before fingerprints were
    /// recorded, or its run record was lost).
    pub fingerprint: Option<Fingerprint>,
    pub columns: Option<Vec<(String, String)>>,
}

/// A column's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnChange {
    pub name: String,
    /// Its type published (`None`: added).
    pub was: Option<String>,
    /// Its type now (`None`: removed).
    pub now: Option<String>,
}

/// One config key's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    pub key: String,
    pub was: String,
    pub now: String,
}

/// What changed of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Change {
    /// Nothing is published for it yet.
    New,
    /// A table strata published that no model of the project writes any more.
    Removed,
    /// Published by a run that recorded no fingerprint: what changed is not known.
    Unknown,
    Modified {
        logic: bool,
        config: Vec<ConfigChange>,
        /// Upstream models whose fingerprint changed.
        upstream: Vec<String>,
        columns: Vec<ColumnChange>,
        /// Whether the columns kept their order (a column added after the published ones
        /// keeps it).
        columns_in_order: bool,
    },
}

/// A model's change and what it reaches.
#[derive(Debug, Clone, Serialize)]
pub struct ModelChange {
    /// The model (`layer.name`), or for a removed table its `db.table`.
    pub model: String,
    pub change: Change,
    pub breaking: bool,
    /// Models downstream of it, in DAG order.
    pub downstream: Vec<String>,
    /// The version published now, and the fingerprints (short) published and now.
    pub version: Option<String>,
    pub published_fingerprint: Option<String>,
    pub fingerprint: Option<String>,
}

impl ModelChange {
    /// Whether the model itself changed (new, unknown, or its SQL, config or columns), not
    /// only a model upstream of it: what `state:modified` selects.
    pub fn is_direct(&self) -> bool {
        match &self.change {
            Change::New | Change::Unknown => true,
            Change::Removed => false,
            Change::Modified { logic, config, columns, columns_in_order, .. } => {
                *logic || !config.is_empty() || !columns.is_empty() || !columns_in_order
            }
        }
    }

    /// One line a user reads: what changed.
    pub fn describe(&self) -> String {
        match &self.change {
            Change::New => "new: nothing published yet".into(),
            Change::Removed => "removed: no model writes this table any more".into(),
            Change::Unknown => "unknown: the published version recorded no fingerprint".into(),
            Change::Modified { logic, config, upstream, columns, columns_in_order } => {
                let mut parts = Vec::new();
                let added: Vec<&str> =
                    columns.iter().filter(|c| c.was.is_none()).map(|c| c.name.as_str()).collect();
                let removed: Vec<&str> =
                    columns.iter().filter(|c| c.now.is_none()).map(|c| c.name.as_str()).collect();
                let retyped: Vec<String> = columns
                    .iter()
                    .filter_map(|c| match (&c.was, &c.now) {
                        (Some(w), Some(n)) => Some(format!("{} {w} -> {n}", c.name)),
                        _ => None,
                    })
                    .collect();
                if !added.is_empty() {
                    parts.push(format!("columns added: {}", added.join(", ")));
                }
                if !removed.is_empty() {
                    parts.push(format!("columns removed: {}", removed.join(", ")));
                }
                if !retyped.is_empty() {
                    parts.push(format!("columns retyped: {}", retyped.join(", ")));
                }
                if !columns_in_order {
                    parts.push("columns in another order".into());
                }
                for c in config {
                    parts.push(format!("{}: {} -> {}", c.key, c.was, c.now));
                }
                if *logic {
                    parts.push("logic changed (history computed by the older SQL until recomputed)".into());
                }
                if !upstream.is_empty() {
                    parts.push(format!("upstream changed: {}", upstream.join(", ")));
                }
                parts.join("; ")
            }
        }
    }
}

/// The config keys whose change breaks the published history.
const BREAKING_CONFIG: &[&str] = &["materialized", "partitioned_by", "window", "format"];

/// The change of every model of the project against `published` (by model), and the
/// tables in `orphans` (`db.table`, published by strata, written by no model) as removed.
/// Models with no change are left out. `columns` are the models' columns as planned.
pub fn classify(
    project: &Project,
    fingerprints: &BTreeMap<ModelId, Fingerprint>,
    columns: &BTreeMap<ModelId, Vec<(String, String)>>,
    published: &BTreeMap<ModelId, Published>,
    orphans: &[String],
) -> Vec<ModelChange> {
    let mut out = Vec::new();
    for id in &project.dag.order {
        let now = fingerprints.get(id);
        let published_now = published.get(id);
        let change = match published_now {
            None => Some(Change::New),
            Some(p) => match (&p.fingerprint, now) {
                (None, _) => Some(Change::Unknown),
                (Some(was), Some(now)) => modified(project, id, was, now, p, columns.get(id)),
                // The model does not render now: its own error says so.
                (Some(_), None) => None,
            },
        };
        let Some(change) = change else { continue };
        let breaking = breaking(&change);
        let below = project.dag.with_descendants(id);
        let downstream = project
            .dag
            .order
            .iter()
            .filter(|d| *d != id && below.contains(*d))
            .map(ToString::to_string)
            .collect();
        out.push(ModelChange {
            model: id.to_string(),
            change,
            breaking,
            downstream,
            version: published_now.map(|p| p.version.clone()),
            published_fingerprint: published_now
                .and_then(|p| p.fingerprint.as_ref())
                .map(|f| f.short().into()),
            fingerprint: now.map(|f| f.short().into()),
        });
    }
    for table in orphans {
        out.push(ModelChange {
            model: table.clone(),
            change: Change::Removed,
            breaking: true,
            downstream: Vec::new(),
            version: None,
            published_fingerprint: None,
            fingerprint: None,
        });
    }
    out
}

fn modified(
    project: &Project,
    id: &ModelId,
    was: &Fingerprint,
    now: &Fingerprint,
    published: &Published,
    planned: Option<&Vec<(String, String)>>,
) -> Option<Change> {
    // Partition columns, published or now, are compared by the config.
    let mut partition_by = project.models[id].config.partitioned_by.clone();
    if let Some(was) = was.settings.get("partitioned_by") {
        partition_by.extend(was.split(',').filter(|p| !p.is_empty()).map(String::from));
    }
    let (columns, columns_in_order) = match (&published.columns, planned) {
        (Some(p), Some(n)) => column_changes(p, n, &partition_by),
        _ => (Vec::new(), true),
    };
    if was.id == now.id && columns.is_empty() && columns_in_order {
        return None;
    }
    let keys: BTreeSet<&String> = was.settings.keys().chain(now.settings.keys()).collect();
    let config = keys
        .into_iter()
        .filter_map(|k| {
            let (w, n) = (was.settings.get(k), now.settings.get(k));
            (w != n).then(|| ConfigChange {
                key: k.clone(),
                was: w.cloned().unwrap_or_default(),
                now: n.cloned().unwrap_or_default(),
            })
        })
        .collect();
    let upstream = now
        .upstream
        .iter()
        .filter(|(m, f)| was.upstream.get(*m) != Some(*f))
        .map(|(m, _)| m.clone())
        .collect();
    Some(Change::Modified { logic: was.logic != now.logic, config, upstream, columns, columns_in_order })
}

fn breaking(change: &Change) -> bool {
    match change {
        Change::New | Change::Unknown => false,
        Change::Removed => true,
        Change::Modified { config, columns, columns_in_order, .. } => {
            !columns_in_order
                || columns.iter().any(|c| c.was.is_some())
                || config.iter().any(|c| BREAKING_CONFIG.contains(&c.key.as_str()))
        }
    }
}

/// The data columns' changes (partition columns are compared by the config), and whether
/// the columns kept are in their published order, before any column added.
fn column_changes(
    published: &[(String, String)],
    planned: &[(String, String)],
    partition_by: &[String],
) -> (Vec<ColumnChange>, bool) {
    let data = |cols: &[(String, String)]| -> Vec<(String, String)> {
        cols.iter()
            .filter(|(n, _)| !partition_by.iter().any(|p| p.eq_ignore_ascii_case(n)))
            .map(|(n, t)| (n.to_ascii_lowercase(), type_family(t)))
            .collect()
    };
    let (was, now) = (data(published), data(planned));
    let mut changes = Vec::new();
    for (name, ty) in &was {
        match now.iter().find(|(n, _)| n == name) {
            None => changes.push(ColumnChange { name: name.clone(), was: Some(ty.clone()), now: None }),
            Some((_, t)) if t != ty => {
                changes.push(ColumnChange { name: name.clone(), was: Some(ty.clone()), now: Some(t.clone()) })
            }
            Some(_) => {}
        }
    }
    for (name, ty) in &now {
        if !was.iter().any(|(n, _)| n == name) {
            changes.push(ColumnChange { name: name.clone(), was: None, now: Some(ty.clone()) });
        }
    }
    // In order: the columns kept are in their published order, and come before any added.
    let kept_now: Vec<&String> =
        now.iter().map(|(n, _)| n).filter(|n| was.iter().any(|(w, _)| w == *n)).collect();
    let kept_was: Vec<&String> =
        was.iter().map(|(n, _)| n).filter(|n| now.iter().any(|(w, _)| w == *n)).collect();
    let in_order =
        kept_now == kept_was && now.iter().take(kept_now.len()).all(|(n, _)| kept_was.contains(&n));
    (changes, in_order)
}

/// A type as both engines name it (Arrow's names locally, Hive's in Glue), in one
/// vocabulary: `string`, `bigint`, `int`, `double`, `float`, `boolean`, `date`,
/// `timestamp`, `decimal(p,s)`, and the name as it is otherwise.
pub fn type_family(t: &str) -> String {
    let l = t.trim().to_ascii_lowercase();
    let family = match l.as_str() {
        "utf8" | "utf8view" | "largeutf8" | "string" | "varchar" | "char" => "string",
        "int64" | "bigint" => "bigint",
        "int32" | "int" | "integer" => "int",
        "int16" | "smallint" => "smallint",
        "int8" | "tinyint" => "tinyint",
        "float64" | "double" => "double",
        "float32" | "float" | "real" => "float",
        "boolean" | "bool" => "boolean",
        "date32" | "date" => "date",
        _ if l.starts_with("timestamp") => "timestamp",
        _ if l.starts_with("varchar") || l.starts_with("char(") => "string",
        _ if l.starts_with("decimal128") => return l.replace("decimal128", "decimal").replace(' ', ""),
        _ => return l.replace(' ', ""),
    };
    family.to_string()
}

/// A column type as Athena's DDL (and Glue) name it, from Arrow's: `string`, `bigint`,
/// `double`, `struct<a:string,b:int>`, `map<string,string>`, `array<bigint>`: the one
/// vocabulary `plan`, `status` and the docs show on both engines.
pub fn sql_type(dt: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::DataType as T;
    match dt {
        T::Utf8 | T::LargeUtf8 | T::Utf8View => "string".into(),
        T::Int8 => "tinyint".into(),
        T::Int16 => "smallint".into(),
        T::Int32 => "int".into(),
        T::Int64 => "bigint".into(),
        T::UInt8 | T::UInt16 | T::UInt32 | T::UInt64 => "bigint".into(),
        T::Float16 | T::Float32 => "float".into(),
        T::Float64 => "double".into(),
        T::Boolean => "boolean".into(),
        T::Date32 | T::Date64 => "date".into(),
        T::Timestamp(..) => "timestamp".into(),
        T::Binary | T::LargeBinary | T::BinaryView => "binary".into(),
        T::Decimal128(p, s) | T::Decimal256(p, s) => format!("decimal({p},{s})"),
        T::Struct(fields) => {
            let inner: Vec<String> =
                fields.iter().map(|f| format!("{}:{}", f.name(), sql_type(f.data_type()))).collect();
            format!("struct<{}>", inner.join(","))
        }
        T::Map(entries, _) => match entries.data_type() {
            T::Struct(kv) if kv.len() == 2 => {
                format!("map<{},{}>", sql_type(kv[0].data_type()), sql_type(kv[1].data_type()))
            }
            other => format!("map<{}>", sql_type(other)),
        },
        T::List(f) | T::LargeList(f) | T::ListView(f) | T::FixedSizeList(f, _) => {
            format!("array<{}>", sql_type(f.data_type()))
        }
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// The fingerprint the run that published `version` of `model` recorded: looked for among
/// its last runs, then in all of them (a version rolled back to may be old).
pub async fn published_fingerprint(
    state: &dyn crate::state::RunState,
    model: &ModelId,
    version: &str,
) -> Result<Option<Fingerprint>, crate::state::StateError> {
    let model = model.to_string();
    let mut runs = state.runs(Some(&model), None, Some(50)).await?;
    if !runs.iter().any(|r| r.version.as_deref() == Some(version)) {
        runs = state.runs(Some(&model), None, None).await?;
    }
    Ok(runs
        .iter()
        .rev()
        .find(|r| r.version.as_deref() == Some(version) && r.fingerprint.is_some())
        .and_then(|r| r.fingerprint.clone()))
}

/// What the backend has published for each model of the project, and the tables of the
/// project's databases strata published that no model writes (`db.table`).
pub async fn published(
    project: &Project,
    backend: &dyn Backend,
) -> Result<(BTreeMap<ModelId, Published>, Vec<String>), EngineError> {
    let state = backend.run_state();
    let mut out = BTreeMap::new();
    for id in &project.dag.order {
        let (db, table) = (project.database(id), &project.models[id].table);
        let Some(tv) = backend.table_versions(id.layer, db, table).await? else { continue };
        let version = tv.current.version.clone();
        let state_err = |e: crate::state::StateError| EngineError::io(e.to_string()).caused_by(e);
        let fingerprint = published_fingerprint(&*state, id, &version).await.map_err(state_err)?;
        let columns = backend.published_columns(db, table).await?;
        out.insert(id.clone(), Published { version, fingerprint, columns });
    }
    let databases: Vec<String> =
        crate::ids::Layer::ALL.iter().map(|l| project.settings.database(*l).to_string()).collect();
    let written: BTreeSet<(String, String)> =
        project.models.values().map(|m| (project.database(&m.id).to_string(), m.table.clone())).collect();
    let orphans = backend
        .managed_tables(&databases)
        .await?
        .into_iter()
        .filter(|t| !written.contains(t))
        .map(|(db, t)| format!("{db}.{t}"))
        .collect();
    Ok((out, orphans))
}
