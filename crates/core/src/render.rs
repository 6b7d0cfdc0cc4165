//! Templates to SQL: a strict minijinja environment with dbt's conventions (`config`,
//! `ref`, `source`, `var`) and the run's logical window.
//!
//! Invariant: rendering is a pure function of the template, the settings, the engine and
//! the window. It never reads the clock, the environment or the catalog.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use minijinja::value::{Kwargs, Object, Value};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};

use crate::config::{EngineKind, Settings};
use crate::window::{Grain, Window, fmt_dt, fmt_hour, fmt_ts};

/// How a reference was written in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Ref,
    Source,
}

/// A `ref(...)`/`source(...)` call seen while rendering, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRef {
    pub kind: RefKind,
    /// `layer.name` for `source(layer, name)`; the argument for `ref(name)`.
    pub name: String,
}

/// The output of one render.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub sql: String,
    /// The arguments of `config(...)`, if it was called.
    pub config: Option<serde_json::Value>,
    pub refs: Vec<SeenRef>,
}

/// A template error, located in the model's file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{line}: {message}")]
pub struct RenderError {
    pub line: usize,
    pub message: String,
}

/// What a template may see of the project: relations by model id.
#[derive(Debug, Default, Clone)]
pub struct Relations {
    /// `layer.name` -> quoted relation (`"db"."table"`).
    pub by_id: BTreeMap<String, String>,
}

impl Relations {
    fn resolve(&self, name: &str) -> Option<&String> {
        if let Some(r) = self.by_id.get(name) {
            return Some(r);
        }
        // A bare name resolves when exactly one layer has it.
        let mut hits = self.by_id.iter().filter(|(id, _)| id.split_once('.').is_some_and(|(_, n)| n == name));
        match (hits.next(), hits.next()) {
            (Some((_, r)), None) => Some(r),
            _ => None,
        }
    }
}

/// Everything one render needs besides the template.
#[derive(Debug)]
pub struct Scope {
    pub engine: EngineKind,
    pub env: String,
    pub profile: Option<String>,
    pub window: Window,
    /// The database and table of the model itself (`{{ this }}` quotes them).
    pub database: String,
    pub table: String,
    pub vars: BTreeMap<String, serde_json::Value>,
    pub relations: Arc<Relations>,
    /// Storage root URI without a trailing slash (`s3://bucket/prefix`, `file:///dir`).
    pub storage_root: String,
    config: Mutex<Option<serde_json::Value>>,
    refs: Mutex<Vec<SeenRef>>,
}

impl Object for Scope {}

impl Scope {
    pub fn new(
        settings: &Settings,
        engine: EngineKind,
        window: Window,
        database: &str,
        table: &str,
        relations: Arc<Relations>,
    ) -> Self {
        Self {
            engine,
            env: settings.env.clone(),
            profile: settings.profile.clone(),
            window,
            database: database.to_string(),
            table: table.to_string(),
            vars: settings.vars.clone(),
            relations,
            storage_root: settings.storage.uri("").trim_end_matches('/').to_string(),
            config: Mutex::new(None),
            refs: Mutex::new(Vec::new()),
        }
    }
}

/// The shared template environment. Build once, render many.
#[derive(Clone)]
pub struct Renderer {
    env: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

fn scope(state: &State) -> Result<Arc<Scope>, Error> {
    state.lookup("__strata").and_then(|v| v.downcast_object::<Scope>()).ok_or_else(|| {
        Error::new(ErrorKind::InvalidOperation, "internal error: render scope missing (a bug)")
    })
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn parse_ts(s: &str) -> Result<NaiveDateTime, Error> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("'{s}' is not a window timestamp")))
}

impl Renderer {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_debug(true);
        env.set_keep_trailing_newline(true);

        env.add_function("config", |state: &State, kwargs: Kwargs| -> Result<String, Error> {
            let scope = scope(state)?;
            let mut slot = scope.config.lock().expect("config lock");
            if slot.is_some() {
                return Err(Error::new(ErrorKind::InvalidOperation, "config() is called more than once"));
            }
            let mut map = serde_json::Map::new();
            for key in kwargs.args() {
                let v: Value = kwargs.get(key)?;
                let json = serde_json::to_value(&v).map_err(|e| {
                    Error::new(ErrorKind::InvalidOperation, format!("config({key}=...): {e}"))
                })?;
                map.insert(key.to_string(), json);
            }
            *slot = Some(serde_json::Value::Object(map));
            Ok(String::new())
        });
        env.add_function("ref", |state: &State, name: String| -> Result<String, Error> {
            let scope = scope(state)?;
            scope.refs.lock().expect("refs lock").push(SeenRef { kind: RefKind::Ref, name: name.clone() });
            Ok(scope
                .relations
                .resolve(&name)
                .cloned()
                .unwrap_or_else(|| format!("\"unresolved\".\"{name}\"")))
        });
        env.add_function("source", |state: &State, layer: String, name: String| -> Result<String, Error> {
            let scope = scope(state)?;
            let id = format!("{layer}.{name}");
            scope.refs.lock().expect("refs lock").push(SeenRef { kind: RefKind::Source, name: id.clone() });
            Ok(scope.relations.by_id.get(&id).cloned().unwrap_or_else(|| format!("\"unresolved\".\"{id}\"")))
        });
        env.add_function(
            "var",
            |state: &State, name: String, default: Option<Value>| -> Result<Value, Error> {
                let scope = scope(state)?;
                match (scope.vars.get(&name), default) {
                    (Some(v), _) => Ok(Value::from_serialize(v)),
                    (None, Some(d)) => Ok(d),
                    (None, None) => Err(Error::new(
                        ErrorKind::UndefinedError,
                        format!("var('{name}') is not set in strata.toml [vars] and has no default"),
                    )),
                }
            },
        );
        env.add_function("location", |state: &State, relative: String| -> Result<String, Error> {
            let scope = scope(state)?;
            Ok(format!("{}/{}", scope.storage_root, relative.trim_start_matches('/')))
        });
        env.add_function("window_partitions", |state: &State, kwargs: Kwargs| -> Result<String, Error> {
            let scope = scope(state)?;
            let grain: Option<String> = kwargs.get("grain")?;
            let prefix: Option<String> = kwargs.get("prefix")?;
            kwargs.assert_all_used()?;
            let p = prefix.map(|p| format!("{p}.")).unwrap_or_default();
            let w = scope.window;
            let grain = grain.as_deref().unwrap_or(w.grain.as_str());
            Ok(match grain {
                "hour" => hour_predicate(&p, units(&w, Grain::Hour)),
                "day" => day_predicate(&p, units(&w, Grain::Day)),
                other => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("window_partitions(grain='{other}'): grain must be 'hour' or 'day'"),
                    ));
                }
            })
        });
        env.add_function("window_days", |state: &State| -> Result<Vec<String>, Error> {
            Ok(scope(state)?.window.days())
        });
        env.add_filter("dt", |s: String| -> Result<String, Error> {
            Ok(parse_ts(&s)?.format("%Y-%m-%d").to_string())
        });
        env.add_filter("hour", |s: String| -> Result<String, Error> {
            Ok(parse_ts(&s)?.format("%H").to_string())
        });
        env.add_filter("ts", |s: String| -> Result<String, Error> {
            Ok(format!("TIMESTAMP '{}'", parse_ts(&s)?.format("%Y-%m-%d %H:%M:%S%.3f")))
        });
        env.add_filter("sql_str", |s: String| sql_quote(&s));
        env.add_filter("sql_list", |v: Vec<String>| {
            v.iter().map(|s| sql_quote(s)).collect::<Vec<_>>().join(", ")
        });
        Self { env }
    }

    /// Renders `source` (the file's text; `name` is used in messages) in `scope`.
    pub fn render(&self, name: &str, source: &str, scope: Scope) -> Result<Rendered, RenderError> {
        let scope = Arc::new(scope);
        let ctx = minijinja::context! {
            __strata => Value::from_dyn_object(scope.clone()),
            window => minijinja::context! {
                start => fmt_ts(scope.window.start),
                end => fmt_ts(scope.window.end),
                grain => scope.window.grain.as_str(),
            },
            env => scope.env.clone(),
            target => minijinja::context! {
                engine => scope.engine.as_str(),
                env => scope.env.clone(),
                profile => scope.profile.clone(),
            },
            this => format!("\"{}\".\"{}\"", scope.database, scope.table),
            model => minijinja::context! { database => scope.database.clone(), table => scope.table.clone() },
        };
        let sql = self
            .env
            .template_from_named_str(name, source)
            .and_then(|t| t.render(ctx))
            .map_err(|e| locate(&e, source))?;
        let config = scope.config.lock().expect("config lock").take();
        let refs = std::mem::take(&mut *scope.refs.lock().expect("refs lock"));
        Ok(Rendered { sql, config, refs })
    }
}

fn locate(e: &Error, source: &str) -> RenderError {
    let line = e.line().unwrap_or(1);
    let what =
        e.range().and_then(|r| source.get(r)).map(|s| format!(" in `{}`", s.trim())).unwrap_or_default();
    let message = match (e.kind(), e.detail()) {
        (ErrorKind::UndefinedError, Some(d)) => format!("{d}{what}"),
        (ErrorKind::UndefinedError, None) => format!("undefined name{what}"),
        (ErrorKind::UnknownFunction, _) => format!("unknown function{what}"),
        (ErrorKind::UnknownFilter, _) => format!("unknown filter{what}"),
        (_, Some(d)) => format!("{d}{what}"),
        (kind, None) => format!("{kind}{what}"),
    };
    RenderError { line, message }
}

/// The first and last unit of `grain` the window overlaps (`Window::hours()` / `days()`'s
/// first and last, found without listing the units between), or `None` when it overlaps
/// none. Units are aligned to the epoch, so the last one before `end` is the unit holding
/// the instant just before it.
fn units(w: &Window, grain: Grain) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let first = grain.floor(w.start);
    if first >= w.end {
        return None;
    }
    Some((first, grain.floor(w.end - Duration::nanoseconds(1))))
}

/// The hours `[first, last]` as a predicate of constant size, whatever the range: a `dt`
/// range (a conjunct of its own, so both engines prune days with it before listing hours)
/// and the hours of the first and last day. Comparisons of the zero-padded text order as
/// the instants do. Athena's partition projection generates only the values such ranges
/// admit (AWS: "How to use the date type", a `datehour >= … AND datehour < …` query;
/// Trino's `projection/DateProjection` and `IntegerProjection` keep the projected values
/// the predicate's domain includes, and the Hive connector tests the whole predicate on
/// each partition's values), and the local Bronze listing applies them exactly.
fn hour_predicate(p: &str, hours: Option<(DateTime<Utc>, DateTime<Utc>)>) -> String {
    let Some((first, last)) = hours else { return "FALSE".into() };
    let (d0, h0, dn, hn) = (fmt_dt(first), fmt_hour(first), fmt_dt(last), fmt_hour(last));
    if d0 == dn {
        return format!("({p}dt = '{d0}' AND {p}hour >= '{h0}' AND {p}hour <= '{hn}')");
    }
    format!(
        "({p}dt >= '{d0}' AND {p}dt <= '{dn}'\n    AND (({p}dt = '{d0}' AND {p}hour >= '{h0}') OR ({p}dt > '{d0}' AND {p}dt < '{dn}') OR ({p}dt = '{dn}' AND {p}hour <= '{hn}')))"
    )
}

/// The days `[first, last]` as a `dt` range (one day: an equality).
fn day_predicate(p: &str, days: Option<(DateTime<Utc>, DateTime<Utc>)>) -> String {
    let Some((first, last)) = days else { return "FALSE".into() };
    let (d0, dn) = (fmt_dt(first), fmt_dt(last));
    if d0 == dn { format!("{p}dt = '{d0}'") } else { format!("({p}dt >= '{d0}' AND {p}dt <= '{dn}')") }
}
