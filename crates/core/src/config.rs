//! `strata.toml` and the environment variables that override it: the one place a run's
//! settings come from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::ids::Layer;

/// How long to keep what.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Published versions kept for rollback (the current one included); at least 2.
    pub versions: usize,
    /// Unreferenced data younger than this may belong to a run in flight: left alone.
    pub orphan_grace: chrono::Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self { versions: 3, orphan_grace: chrono::Duration::hours(1) }
    }
}

/// Which engine runs the SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Local,
    Athena,
}

impl EngineKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "athena" => Some(Self::Athena),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Athena => "athena",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: unknown profile '{name}' (profiles: {known})")]
    UnknownProfile { origin: String, name: String, known: String },
    #[error("{origin}: {field} = '{value}' is not valid: {expected}")]
    Invalid { origin: String, field: &'static str, value: String, expected: &'static str },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    /// One error, or all of them.
    fn all(mut problems: Vec<ConfigError>) -> Self {
        if problems.len() == 1 { problems.remove(0) } else { Self::Many(problems) }
    }
}

/// The file as written. Every field optional so a profile can override a subset.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    engine: Option<String>,
    env: Option<String>,
    storage: Option<String>,
    state_dir: Option<String>,
    #[serde(default)]
    databases: BTreeMap<String, String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    max_concurrency: Option<usize>,
}

/// The whole file: the project's own keys, and the settings a profile may override (read
/// straight from the text, so an error carries its line).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    retention: Option<RawRetention>,
    #[serde(default)]
    profiles: BTreeMap<String, RawSettings>,
    engine: Option<String>,
    env: Option<String>,
    storage: Option<String>,
    state_dir: Option<String>,
    #[serde(default)]
    databases: BTreeMap<String, String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    max_concurrency: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    versions: Option<usize>,
    orphan_grace_minutes: Option<i64>,
}

/// The keys of strata.toml the core reads; every other table (`[athena]`) is a backend's
/// own section, read by that backend with [`Section::read`] (and a name no backend owns is
/// refused where the backends are known).
const CORE_KEYS: &[&str] = &[
    "name",
    "profile",
    "retention",
    "profiles",
    "engine",
    "env",
    "storage",
    "state_dir",
    "databases",
    "vars",
    "max_concurrency",
];

/// A backend's own section of strata.toml (`[athena]`), as the invocation's profile leaves
/// it (a profile's `[profiles.NAME.athena]` replaces the top-level one as a whole). The core
/// reads one key of it, `storage` (the lake's root when that backend runs); the backend
/// reads the rest into its own type with [`Section::read`], whose errors carry the file's
/// line like the core's.
#[derive(Debug, Clone)]
pub struct Section {
    name: String,
    /// The profile whose section this is, or none for the top-level one.
    profile: Option<String>,
    path: PathBuf,
    text: Arc<str>,
    /// The line of its header, and its `storage = "..."` when it sets one as a string.
    line: usize,
    storage: Option<String>,
}

impl Section {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `strata.toml:LINE`, the line of the section's header.
    pub fn origin(&self) -> String {
        format!("{}:{}", self.path.display(), self.line)
    }

    /// The section as the backend's type (`#[serde(deny_unknown_fields)]` to refuse typos).
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.with_value(|value| {
            let span = value.span();
            let mut table = DeTable::new();
            table.insert(Spanned::new(span.clone(), self.name.clone().into()), value.clone());
            let de = toml::de::Deserializer::from(Spanned::new(span, table));
            let mut one = BTreeMap::<String, T>::deserialize(de).map_err(|e| ConfigError::Parse {
                path: self.path.clone(),
                message: describe_toml_error(&self.text, &e),
            })?;
            Ok(one.remove(&self.name).expect("the one key inserted"))
        })
    }

    /// Calls `f` with the section's value, parsed again from the file's text (a parsed
    /// value borrows the text it was parsed from; the settings keep the text).
    fn with_value<R>(
        &self,
        f: impl FnOnce(&Spanned<DeValue<'_>>) -> Result<R, ConfigError>,
    ) -> Result<R, ConfigError> {
        let root = DeTable::parse(&self.text).map_err(|e| ConfigError::Parse {
            path: self.path.clone(),
            message: describe_toml_error(&self.text, &e),
        })?;
        let table = match &self.profile {
            None => Some(root.get_ref()),
            Some(p) => root
                .get_ref()
                .get("profiles")
                .and_then(|ps| ps.get_ref().as_table())
                .and_then(|ps| ps.get(p.as_str()))
                .and_then(|p| p.get_ref().as_table()),
        };
        f(table.and_then(|t| t.get(self.name.as_str())).expect("a section found when loading"))
    }
}

/// The 1-based line of the byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Takes the backend sections (tables under keys the core does not read) out of `table`,
/// the top level's or `profile`'s, of the file at `path` whose text is `text`.
fn take_sections(
    table: &mut DeTable<'_>,
    profile: Option<&str>,
    path: &Path,
    text: &Arc<str>,
) -> Vec<Section> {
    let sections: Vec<Section> = table
        .iter()
        .filter(|(k, v)| !CORE_KEYS.contains(&k.get_ref().as_ref()) && v.get_ref().is_table())
        .map(|(k, v)| Section {
            name: k.get_ref().to_string(),
            profile: profile.map(String::from),
            path: path.to_path_buf(),
            text: text.clone(),
            line: line_of(text, k.span().start),
            storage: v.get_ref().get("storage").and_then(|s| s.get_ref().as_str()).map(String::from),
        })
        .collect();
    for section in &sections {
        table.remove(section.name.as_str());
    }
    sections
}

/// Where tables live: a local directory or an S3 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Storage {
    /// The URI of `relative` under the storage root, as it appears in SQL.
    pub fn uri(&self, relative: &str) -> String {
        let relative = relative.trim_start_matches('/');
        match self {
            Self::Local(root) => format!("file://{}/{relative}", root.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/{relative}"),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{relative}"),
        }
    }
}

/// Resolved settings of one invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    pub project_name: String,
    pub project_dir: PathBuf,
    pub profile: Option<String>,
    pub engine: EngineKind,
    pub env: String,
    pub storage: Storage,
    pub state_dir: PathBuf,
    databases: BTreeMap<String, String>,
    pub vars: BTreeMap<String, serde_json::Value>,
    /// The backends' own sections (`[athena]`), by name.
    sections: BTreeMap<String, Section>,
    pub max_concurrency: usize,
    pub retention: Retention,
    /// `AWS_ENDPOINT_URL`: every AWS client talks to this endpoint (a test server), and S3
    /// uses path-style addressing.
    pub aws_endpoint_url: Option<String>,
}

impl Settings {
    /// The database (Glue database / local schema) that holds a layer's tables.
    pub fn database(&self, layer: Layer) -> &str {
        self.databases.get(layer.as_str()).map(String::as_str).unwrap_or(layer.as_str())
    }

    /// The layer whose database is `db`.
    pub fn layer_of(&self, db: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| self.database(*l) == db)
    }

    /// The backend section `name` (`[athena]`), as the profile leaves it.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    /// Every backend section the file has.
    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.sections.values()
    }

    /// The SQLite file of the local catalog.
    pub fn catalog_path(&self) -> PathBuf {
        self.state_dir.join("catalog.sqlite")
    }

    /// Loads `<project_dir>/strata.toml` and applies `env` (the process environment, passed
    /// in so tests control it): `STRATA_PROFILE`, `STRATA_ENGINE`, `STRATA_ENV`,
    /// `STRATA_STORAGE`, `STRATA_STATE_DIR`.
    pub fn load(project_dir: &Path, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let path = project_dir.join("strata.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|error| ConfigError::Read { path: path.clone(), error })?;
        Self::from_toml(project_dir, &path, &text, env)
    }

    pub fn from_toml(
        project_dir: &Path,
        path: &Path,
        text: &str,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        };
        // The backends' sections are taken out before the core's keys are read (with their
        // spans, so an error still names its line).
        let mut root = DeTable::parse(text).map_err(parse_err)?;
        let shared: Arc<str> = Arc::from(text);
        let top_sections = take_sections(root.get_mut(), None, path, &shared);
        let mut profile_sections = BTreeMap::new();
        if let Some(profiles) = root.get_mut().get_mut("profiles").and_then(|p| match p.get_mut() {
            DeValue::Table(t) => Some(t),
            _ => None,
        }) {
            for (name, profile) in profiles.iter_mut() {
                if let DeValue::Table(t) = profile.get_mut() {
                    let name = name.get_ref().to_string();
                    let taken = take_sections(t, Some(&name), path, &shared);
                    profile_sections.insert(name, taken);
                }
            }
        }
        let file = RawFile::deserialize(toml::de::Deserializer::from(root)).map_err(parse_err)?;
        let base = RawSettings {
            engine: file.engine.clone(),
            env: file.env.clone(),
            storage: file.storage.clone(),
            state_dir: file.state_dir.clone(),
            databases: file.databases.clone(),
            vars: file.vars.clone(),
            max_concurrency: file.max_concurrency,
        };
        let origin = path.display().to_string();
        let profile_origin = |var: &str| {
            if env.contains_key(var) { format!("environment variable {var}") } else { origin.clone() }
        };
        let profile = env.get("STRATA_PROFILE").cloned().or(file.profile.clone());
        let mut s = base;
        if let Some(name) = &profile {
            let Some(p) = file.profiles.get(name) else {
                return Err(ConfigError::UnknownProfile {
                    origin: profile_origin("STRATA_PROFILE"),
                    name: name.clone(),
                    known: file.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            };
            merge(&mut s, p.clone());
        }
        // A value from the file is located at the line that sets it (in a profile or not).
        let pick = |var: &str, from_file: Option<String>| -> (Option<String>, String) {
            match env.get(var) {
                Some(v) => (Some(v.clone()), format!("environment variable {var}")),
                None => {
                    let key = var.trim_start_matches("STRATA_").to_ascii_lowercase();
                    let line = from_file.as_deref().and_then(|v| line_setting(text, &key, v));
                    let at = line.map_or_else(|| origin.clone(), |l| format!("{origin}:{l}"));
                    (from_file, at)
                }
            }
        };

        // Every problem is reported, not only the first.
        let mut problems = Vec::new();
        let (engine, engine_origin) = pick("STRATA_ENGINE", s.engine.clone());
        let engine = match engine {
            None => EngineKind::Local,
            Some(v) => EngineKind::parse(&v).unwrap_or_else(|| {
                problems.push(ConfigError::Invalid {
                    origin: engine_origin,
                    field: "engine",
                    value: v,
                    expected: "one of local, athena",
                });
                EngineKind::Local
            }),
        };
        let (env_name, env_origin) = pick("STRATA_ENV", s.env.clone());
        let env_name = env_name.unwrap_or_else(|| "dev".into());
        if !["prod", "staging", "dev"].contains(&env_name.as_str()) {
            problems.push(ConfigError::Invalid {
                origin: env_origin,
                field: "env",
                value: env_name.clone(),
                expected: "one of prod, staging, dev",
            });
        }
        for layer in s.databases.keys() {
            if Layer::parse(layer).is_none() {
                problems.push(ConfigError::Invalid {
                    origin: origin.clone(),
                    field: "databases",
                    value: layer.clone(),
                    expected: "a layer: bronze, silver, gold or ops",
                });
            }
        }
        // A profile's section replaces the top-level one of the same name.
        let mut sections: BTreeMap<String, Section> =
            top_sections.into_iter().map(|section| (section.name.clone(), section)).collect();
        if let Some(name) = &profile {
            for section in profile_sections.remove(name).unwrap_or_default() {
                sections.insert(section.name.clone(), section);
            }
        }
        // The root: the running backend's section's `storage`, else (the local engine) the
        // top-level `storage`, `lake` by default.
        let file_storage = match sections.get(engine.as_str()) {
            Some(section) => section.storage.clone(),
            None if engine == EngineKind::Local => s.storage.clone().or_else(|| Some("lake".into())),
            None => None,
        };
        let (storage, storage_origin) = pick("STRATA_STORAGE", file_storage);
        let Some(storage) = storage else {
            problems.push(ConfigError::Invalid {
                origin: storage_origin,
                field: "storage",
                value: String::new(),
                expected: "this engine has no storage root: set `storage = \"s3://bucket/prefix\"` in its section of strata.toml ([athena] for athena) or STRATA_STORAGE",
            });
            return Err(ConfigError::all(problems));
        };
        let storage = match parse_storage(project_dir, &storage) {
            Ok(s) => s,
            Err(value) => {
                problems.push(ConfigError::Invalid {
                    origin: storage_origin.clone(),
                    field: "storage",
                    value,
                    expected: "a directory or s3://bucket[/prefix]",
                });
                return Err(ConfigError::all(problems));
            }
        };
        if !problems.is_empty() {
            return Err(ConfigError::all(problems));
        }
        let (state_dir, _) = pick("STRATA_STATE_DIR", s.state_dir.clone());
        let state_dir = absolute(project_dir, state_dir.as_deref().unwrap_or(".strata"));
        let vars = s
            .vars
            .into_iter()
            .map(|(k, v)| (k, serde_json::to_value(v).expect("toml values are json values")))
            .collect();
        Ok(Self {
            project_name: file.name,
            project_dir: project_dir.to_path_buf(),
            profile,
            engine,
            env: env_name,
            storage,
            state_dir,
            databases: s.databases,
            vars,
            sections,
            max_concurrency: s.max_concurrency.unwrap_or(4).max(1),
            retention: {
                let r = file.retention.clone().unwrap_or_default();
                let d = Retention::default();
                Retention {
                    versions: r.versions.unwrap_or(d.versions).max(2),
                    orphan_grace: r.orphan_grace_minutes.map_or(d.orphan_grace, chrono::Duration::minutes),
                }
            },
            aws_endpoint_url: env.get("AWS_ENDPOINT_URL").filter(|u| !u.is_empty()).cloned(),
        })
    }
}

fn merge(base: &mut RawSettings, over: RawSettings) {
    base.engine = over.engine.or(base.engine.take());
    base.env = over.env.or(base.env.take());
    base.storage = over.storage.or(base.storage.take());
    base.state_dir = over.state_dir.or(base.state_dir.take());
    base.databases.extend(over.databases);
    base.vars.extend(over.vars);
    base.max_concurrency = over.max_concurrency.or(base.max_concurrency);
}

fn absolute(project_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { project_dir.join(p) }
}

fn parse_storage(project_dir: &Path, s: &str) -> Result<Storage, String> {
    if let Some(rest) = s.strip_prefix("s3://") {
        let rest = rest.trim_end_matches('/');
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(s.to_string());
        }
        return Ok(Storage::S3 { bucket: bucket.into(), prefix: prefix.into() });
    }
    let path = s.strip_prefix("file://").unwrap_or(s);
    if path.is_empty() || path.contains("://") {
        return Err(s.to_string());
    }
    let abs = absolute(project_dir, path);
    Ok(Storage::Local(std::path::absolute(&abs).unwrap_or(abs)))
}

/// `line N: <the line>: <what is wrong>`, so the key and its value are in the message.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let source = text.lines().nth(line - 1).unwrap_or_default().trim();
            format!("line {line}: `{source}`: {}", e.message().trim_end_matches('\n'))
        }
        None => e.message().to_string(),
    }
}

/// The 1-based line of `text` that sets `key = "value"` (the first, if several do).
fn line_setting(text: &str, key: &str, value: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let Some((k, v)) = l.split('#').next().unwrap_or_default().split_once('=') else { return false };
            k.trim() == key && v.trim().trim_matches(|c| c == '"' || c == '\'') == value
        })
        .map(|i| i + 1)
}
