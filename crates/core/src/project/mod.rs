//! The user's project: models loaded from `sql/<layer>/<name>.sql`, their configuration,
//! and the DAG their `ref()`/`source()` calls make.
//!
//! Invariant: loading a project touches only the project's files; it never runs SQL.

mod check;
mod dag;
mod fingerprint;
mod model;
mod select;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use dag::Dag;
pub use fingerprint::{canonical_window, fingerprints, stored_config};
pub use model::{Audit, Dep, Materialization, Model, ModelConfig, line_of, locate, source_line, sql_error};
pub use select::{needs_state, select, select_in};

use crate::config::{EngineKind, Settings};
use crate::ids::{Layer, ModelId};
use crate::render::{RefKind, Relations, Renderer, Scope};
use crate::schedule::Schedule;
use crate::window::{Grain, Window};

/// One problem in the project, located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// Every problem found while loading; the project is unusable until all are fixed.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ProjectError(pub Vec<Diagnostic>);

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A loaded, validated project.
pub struct Project {
    pub settings: Settings,
    pub models: BTreeMap<ModelId, Model>,
    pub dag: Dag,
    pub relations: Arc<Relations>,
    pub renderer: Renderer,
}

impl fmt::Debug for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Project")
            .field("name", &self.settings.project_name)
            .field("models", &self.models.len())
            .finish()
    }
}

/// The window used to render templates while loading (config and refs do not depend on it).
fn parse_window() -> Window {
    let t = chrono::DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01 is a valid instant");
    Window::ending_at(t, Grain::Hour, 0)
}

struct Parsed {
    id: ModelId,
    path: PathBuf,
    source: String,
    config: Option<serde_json::Value>,
    refs: Vec<crate::render::SeenRef>,
    sql: String,
}

impl Project {
    /// Loads every model under `<project_dir>/sql`.
    pub fn load(settings: Settings) -> Result<Self, ProjectError> {
        let mut diags = Vec::new();
        let sources = read_sources(&settings.project_dir, &mut diags);
        Self::from_sources(settings, sources, diags)
    }

    /// Builds a project from `(relative path, text)` pairs; `diags` carries earlier problems.
    pub fn from_sources(
        settings: Settings,
        sources: Vec<(PathBuf, String)>,
        mut diags: Vec<Diagnostic>,
    ) -> Result<Self, ProjectError> {
        let renderer = Renderer::new();
        let ids: Vec<ModelId> = sources.iter().filter_map(|(p, _)| id_of(p)).collect();
        let placeholder = Arc::new(Relations {
            by_id: ids.iter().map(|id| (id.to_string(), relation(&settings, id.layer, &id.name))).collect(),
        });

        // Pass 1: render once to collect config() and ref()/source().
        let mut parsed = Vec::new();
        for (path, source) in sources {
            let Some(id) = id_of(&path) else {
                diags.push(Diagnostic {
                    path: path.clone(),
                    line: 1,
                    message: "a model lives in sql/<layer>/<name>.sql with layer bronze, silver, gold or ops and a name of lowercase letters, digits and _".into(),
                });
                continue;
            };
            let scope = Scope::new(
                &settings,
                settings.engine,
                parse_window(),
                settings.database(id.layer),
                &id.name,
                placeholder.clone(),
            );
            match renderer.render(&path.display().to_string(), &source, scope) {
                Ok(r) => parsed.push(Parsed { id, path, source, config: r.config, refs: r.refs, sql: r.sql }),
                Err(e) => diags.push(Diagnostic { path, line: e.line, message: e.message }),
            }
        }

        // Configs, table names and duplicates.
        let mut models = BTreeMap::new();
        let mut tables: BTreeMap<(Layer, String), PathBuf> = BTreeMap::new();
        let mut pending = Vec::new();
        for p in parsed {
            let config_line = line_of(&p.source, "config(").unwrap_or(1);
            let diag = |message: String, line: usize| Diagnostic { path: p.path.clone(), line, message };
            let Some(raw) = p.config.clone() else {
                diags.push(diag(
                    "no {{ config(materialized=...) }} call; every model declares how it is kept".into(),
                    1,
                ));
                continue;
            };
            let raw: model::RawConfig = match serde_json::from_value(raw) {
                Ok(c) => c,
                Err(e) => {
                    diags.push(diag(format!("config(): {e}"), config_line));
                    continue;
                }
            };
            let (config, table) = match validate_config(raw, &p.id) {
                Ok(c) => c,
                Err((message, needle)) => {
                    let line = needle.and_then(|n| line_of(&p.source, &n)).unwrap_or(config_line);
                    diags.push(diag(message, line));
                    continue;
                }
            };
            if let Some(first) = tables.insert((p.id.layer, table.clone()), p.path.clone()) {
                diags.push(diag(
                    format!(
                        "duplicate table {}.{table}: {} defines it too",
                        p.id.layer.as_str(),
                        first.display()
                    ),
                    1,
                ));
                continue;
            }
            if config.materialized != Materialization::External {
                for message in check::partition_columns(&p.sql, &config.partitioned_by) {
                    let line = check::line_hint(&p.source, &message.column);
                    diags.push(diag(message.text, line));
                }
            }
            pending.push((p, config, table));
        }

        let relations = Arc::new(Relations {
            by_id: pending
                .iter()
                .map(|(p, _, table)| (p.id.to_string(), relation(&settings, p.id.layer, table)))
                .collect(),
        });
        let known: Vec<String> = relations.by_id.keys().cloned().collect();
        // Models whose own file has problems (reported above): a ref to one is not "unknown".
        let broken: Vec<String> =
            ids.iter().map(ToString::to_string).filter(|id| !known.contains(id)).collect();

        // Resolve references.
        for (p, config, table) in pending {
            let mut deps: Vec<Dep> = Vec::new();
            for r in &p.refs {
                let line = line_of(&p.source, &format!("'{}'", r.name))
                    .or_else(|| line_of(&p.source, &format!("\"{}\"", r.name)))
                    .or_else(|| {
                        r.name.split_once('.').and_then(|(_, n)| line_of(&p.source, &format!("'{n}'")))
                    })
                    .unwrap_or(1);
                match resolve(&known, r.kind, &r.name) {
                    Ok(target) if target == p.id => diags.push(Diagnostic {
                        path: p.path.clone(),
                        line,
                        message: format!(
                            "{} refers to itself; use {{{{ this }}}} for the model's own table",
                            p.id
                        ),
                    }),
                    Ok(target) => {
                        if !deps.iter().any(|d| d.target == target) {
                            deps.push(Dep { target, line });
                        }
                    }
                    Err(_) if resolve(&broken, r.kind, &r.name).is_ok() => {}
                    Err(message) => diags.push(Diagnostic { path: p.path.clone(), line, message }),
                }
            }
            models.insert(
                p.id.clone(),
                Model { id: p.id, path: p.path, source: p.source, table, config, deps },
            );
        }

        let dag = match Dag::build(&models) {
            Ok(d) => Some(d),
            Err(cycle) => {
                let first = &models[&cycle[0]];
                let line = first.deps.iter().find(|d| d.target == cycle[1]).map_or(1, |d| d.line);
                let path: Vec<String> = cycle.iter().map(ToString::to_string).collect();
                diags.push(Diagnostic {
                    path: first.path.clone(),
                    line,
                    message: format!("dependency cycle: {}", path.join(" -> ")),
                });
                None
            }
        };
        match dag {
            Some(dag) if diags.is_empty() => Ok(Self { settings, models, dag, relations, renderer }),
            _ => {
                diags.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
                Err(ProjectError(diags))
            }
        }
    }

    /// The same models under other settings (another storage root or state directory,
    /// other vars): what `strata test` runs each test against.
    pub fn with_settings(&self, settings: Settings) -> Project {
        let relations = Relations {
            by_id: self
                .models
                .iter()
                .map(|(id, m)| (id.to_string(), relation(&settings, id.layer, &m.table)))
                .collect(),
        };
        Project {
            settings,
            models: self.models.clone(),
            dag: self.dag.clone(),
            relations: Arc::new(relations),
            renderer: self.renderer.clone(),
        }
    }

    /// Renders a model with `relations` in place of the project's (a test's inputs).
    pub fn render_with(
        &self,
        id: &ModelId,
        engine: EngineKind,
        window: Window,
        relations: Arc<Relations>,
    ) -> Result<String, Diagnostic> {
        let model = &self.models[id];
        let scope = Scope::new(&self.settings, engine, window, self.database(id), &model.table, relations);
        self.renderer
            .render(&model.path.display().to_string(), &model.source, scope)
            .map(|r| r.sql)
            .map_err(|e| Diagnostic { path: model.path.clone(), line: e.line, message: e.message })
    }

    /// Renders a model for a run of `engine` over `window`.
    pub fn render(&self, id: &ModelId, engine: EngineKind, window: Window) -> Result<String, Diagnostic> {
        let model = &self.models[id];
        let scope = Scope::new(
            &self.settings,
            engine,
            window,
            self.database(id),
            &model.table,
            self.relations.clone(),
        );
        self.renderer
            .render(&model.path.display().to_string(), &model.source, scope)
            .map(|r| r.sql)
            .map_err(|e| Diagnostic { path: model.path.clone(), line: e.line, message: e.message })
    }

    /// The quoted relation (`"database"."table"`) of a model.
    pub fn relation(&self, id: &ModelId) -> String {
        relation(&self.settings, id.layer, &self.models[id].table)
    }

    pub fn database(&self, id: &ModelId) -> &str {
        self.settings.database(id.layer)
    }
}

fn relation(settings: &Settings, layer: Layer, table: &str) -> String {
    format!("\"{}\".\"{}\"", settings.database(layer), table)
}

fn is_identifier(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn id_of(path: &Path) -> Option<ModelId> {
    let mut parts = path.components().map(|c| c.as_os_str().to_str());
    let (Some(Some("sql")), Some(Some(layer)), Some(Some(file)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let name = file.strip_suffix(".sql")?;
    is_identifier(name).then_some(ModelId { layer: Layer::parse(layer)?, name: name.into() })
}

fn read_sources(project_dir: &Path, diags: &mut Vec<Diagnostic>) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let sql = project_dir.join("sql");
    let Ok(entries) = std::fs::read_dir(&sql) else {
        diags.push(Diagnostic {
            path: "sql".into(),
            line: 1,
            message: "no sql/ directory in the project".into(),
        });
        return out;
    };
    let mut dirs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let rel_dir = dir.strip_prefix(project_dir).unwrap_or(&dir).to_path_buf();
        if !dir.is_dir() {
            if dir.extension().is_some_and(|e| e == "sql") {
                out.push((rel_dir, std::fs::read_to_string(&dir).unwrap_or_default()));
            }
            continue;
        }
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        // A model in a sub-directory would be skipped without a word: say so.
        for sub in files.iter().filter(|f| f.is_dir()) {
            for nested in sql_files_below(sub) {
                let rel = nested.strip_prefix(project_dir).unwrap_or(&nested).to_path_buf();
                diags.push(Diagnostic {
                    path: rel,
                    line: 1,
                    message: format!(
                        "models live directly in sql/<layer>/ (the file name is the table name); move it to {}",
                        rel_dir.join(nested.file_name().unwrap_or_default()).display()
                    ),
                });
            }
        }
        for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "sql")) {
            let rel = file.strip_prefix(project_dir).unwrap_or(&file).to_path_buf();
            match std::fs::read_to_string(&file) {
                Ok(text) => out.push((rel, text)),
                Err(e) => diags.push(Diagnostic { path: rel, line: 1, message: format!("cannot read: {e}") }),
            }
        }
    }
    out
}

/// Every `.sql` file below `dir`, sorted.
fn sql_files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            out.extend(sql_files_below(&e));
        } else if e.extension().is_some_and(|x| x == "sql") {
            out.push(e);
        }
    }
    out
}

/// Turns the raw config into a validated one; the error carries text to find its line.
fn validate_config(
    raw: model::RawConfig,
    id: &ModelId,
) -> Result<(ModelConfig, String), (String, Option<String>)> {
    let schedule = match &raw.schedule {
        None => None,
        Some(s) => Some(Schedule::parse(s).map_err(|e| (format!("schedule '{s}': {e}"), Some(s.clone())))?),
    };
    let grain = match &raw.window {
        None if raw.partitioned_by.iter().any(|c| c == "hour") => Grain::Hour,
        None => Grain::Day,
        Some(w) => Grain::parse(w)
            .ok_or_else(|| (format!("window '{w}': expected 'hour' or 'day'"), Some(w.clone())))?,
    };
    let format = raw.format.unwrap_or_else(|| "parquet".into()).to_ascii_lowercase();
    if format != "parquet" {
        return Err((format!("format '{format}': only parquet is supported"), Some(format)));
    }
    let compression = raw.compression.unwrap_or_else(|| "snappy".into()).to_ascii_lowercase();
    if !["snappy", "zstd", "gzip", "none"].contains(&compression.as_str()) {
        return Err((
            format!("compression '{compression}': expected snappy, zstd, gzip or none"),
            Some(compression),
        ));
    }
    if raw.materialized == Materialization::Incremental && raw.partitioned_by.is_empty() {
        return Err((
            "an incremental model needs partitioned_by (the partitions its window replaces)".into(),
            None,
        ));
    }
    if raw.materialized == Materialization::Incremental {
        let expected: &[&str] = match grain {
            Grain::Hour => &["dt", "hour"],
            Grain::Day => &["dt"],
        };
        if raw.partitioned_by != expected {
            return Err((
                format!(
                    "an incremental model with window '{}' is partitioned_by={expected:?}, found {:?}",
                    grain.as_str(),
                    raw.partitioned_by
                ),
                Some("partitioned_by".into()),
            ));
        }
    }
    if raw.partitioned_by.len() > 3 {
        return Err(("at most 3 partition columns".into(), Some("partitioned_by".into())));
    }
    if id.layer == Layer::Bronze && raw.materialized != Materialization::External {
        return Err((
            "bronze models are external tables (materialized='external')".into(),
            Some("materialized".into()),
        ));
    }
    let reads_arrived = match raw.reads.as_deref() {
        None | Some("window") => false,
        Some("arrived") if raw.materialized == Materialization::Incremental => true,
        Some("arrived") => {
            return Err(("reads='arrived' is for incremental models".into(), Some("reads".into())));
        }
        Some(other) => {
            return Err((
                format!("reads '{other}': expected 'window' or 'arrived'"),
                Some(other.to_string()),
            ));
        }
    };
    let table = raw.alias.clone().unwrap_or_else(|| id.name.clone());
    if !is_identifier(&table) {
        return Err((format!("alias '{table}' is not a table name"), Some(table)));
    }
    Ok((
        ModelConfig {
            materialized: raw.materialized,
            schedule,
            partitioned_by: raw.partitioned_by,
            format,
            compression,
            grain,
            lookback: raw.lookback.unwrap_or(0),
            audits: raw.audits,
            description: raw.description,
            tags: raw.tags,
            reads_arrived,
        },
        table,
    ))
}

fn resolve(known: &[String], kind: RefKind, name: &str) -> Result<ModelId, String> {
    let hits: Vec<&String> = if known.iter().any(|k| k == name) {
        known.iter().filter(|k| *k == name).collect()
    } else if kind == RefKind::Ref && !name.contains('.') {
        known.iter().filter(|k| k.split_once('.').is_some_and(|(_, n)| n == name)).collect()
    } else {
        Vec::new()
    };
    let what = match kind {
        RefKind::Ref => "ref",
        RefKind::Source => "source",
    };
    match hits.as_slice() {
        [one] => Ok(ModelId::parse(one).expect("known ids parse")),
        [] => {
            let best = known
                .iter()
                .map(|k| (strsim::jaro_winkler(k, name), k))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            Err(match best {
                Some((_, k)) => format!("unknown {what} '{name}'; did you mean '{k}'?"),
                None => format!("unknown {what} '{name}'; models are: {}", known.join(", ")),
            })
        }
        many => Err(format!(
            "ambiguous ref '{name}': {}; write it as layer.name",
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}
