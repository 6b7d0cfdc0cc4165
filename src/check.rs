//! `strata plan`'s checks of what can be known before a run: every model's SQL is planned
//! by the embedded engine against the schemas of its upstream tables (Bronze from its DDL,
//! every other model from planning it in turn), without reading any data. A model that
//! does not parse, names a column or function that is not there, has partition columns
//! that are not strings, or an audit about a column it does not produce, is reported at
//! the line of its file.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::EngineKind;
use crate::ids::{Layer, ModelId};
use crate::project::{Audit, Diagnostic, Materialization, Model, Project, locate, source_line, sql_error};
use crate::window::{Grain, Window};

/// The output schema of every model that plans (Bronze from its DDL, every other model by
/// planning its SQL against its upstream schemas), without reading data.
pub async fn schemas(project: &Project) -> BTreeMap<ModelId, SchemaRef> {
    plan_all(project).await.1
}

/// Each model's problems (a model downstream of one that does not plan is not planned:
/// its upstream's error says it), and the schema of every model that plans, from one
/// planning of every model.
pub async fn plan_all(
    project: &Project,
) -> (BTreeMap<ModelId, Vec<Diagnostic>>, BTreeMap<ModelId, SchemaRef>) {
    let ctx = session(project);
    let mut problems = BTreeMap::new();
    let mut schemas: BTreeMap<ModelId, SchemaRef> = BTreeMap::new();
    for id in &project.dag.order {
        // Downstream of a model with problems there is nothing to learn: its own error says it.
        if project.dag.upstream(id).iter().any(|u| !schemas.contains_key(u)) {
            continue;
        }
        let (diags, schema) = check_model(project, &ctx, id, &project.models[id]).await;
        problems.insert(id.clone(), diags);
        if let Some(schema) = schema {
            register(project, &ctx, id, schema.clone());
            schemas.insert(id.clone(), schema);
        }
    }
    (problems, schemas)
}

fn session(project: &Project) -> SessionContext {
    let config = SessionConfig::new().set_bool("datafusion.sql_parser.enable_ident_normalization", true);
    let ctx = SessionContext::new_with_config(config);
    crate::local::functions::register(&ctx);
    let catalog = ctx.catalog("datafusion").expect("the default catalog exists");
    for layer in Layer::ALL {
        let schema = Arc::new(MemorySchemaProvider::new());
        let db = project.settings.database(layer);
        catalog.register_schema(db, schema.clone()).expect("registering a schema cannot fail");
        if db != layer.as_str() {
            let _ = catalog.register_schema(layer.as_str(), schema);
        }
    }
    ctx
}

fn register(project: &Project, ctx: &SessionContext, id: &ModelId, schema: SchemaRef) {
    let db = project.database(id);
    let catalog = ctx.catalog("datafusion").expect("the default catalog exists");
    let Some(provider) = catalog.schema(db) else { return };
    let table = MemTable::try_new(schema, vec![vec![]]).expect("an empty table");
    let _ = provider.register_table(project.models[id].table.clone(), Arc::new(table));
}

/// A window every model can render for.
fn window(model: &Model) -> Window {
    let at = chrono::DateTime::from_timestamp(1_735_732_800, 0).expect("2025-01-01T12:00:00Z");
    Window::ending_at(
        at,
        model.config.grain,
        model.config.lookback.max(if model.config.grain == Grain::Hour { 1 } else { 0 }),
    )
}

async fn check_model(
    project: &Project,
    ctx: &SessionContext,
    id: &ModelId,
    model: &Model,
) -> (Vec<Diagnostic>, Option<SchemaRef>) {
    let diag = |line: usize, message: String| Diagnostic { path: model.path.clone(), line, message };
    let sql = match project.render(id, EngineKind::Local, window(model)) {
        Ok(s) => s,
        Err(d) => return (vec![d], None),
    };
    if model.config.materialized == Materialization::External {
        return match crate::local::bronze::parse_external_table(sql.trim().trim_end_matches(';')) {
            Ok(t) => {
                let mut fields: Vec<Field> = t.columns.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.extend(t.partition_columns.iter().map(|p| Field::new(p, DataType::Utf8, true)));
                let mut diags = Vec::new();
                // Athena fails every query over a partition holding one line that does not
                // parse, or a value that does not fit its column, without these.
                if t.serde.as_deref().is_some_and(|s| s.to_ascii_lowercase().contains("jsonserde")) {
                    for prop in ["ignore.malformed.json", "use.null.for.invalid.data"] {
                        let on = t.serde_properties.get(prop).is_some_and(|v| v.eq_ignore_ascii_case("true"));
                        if !on {
                            diags.push(diag(
                                model.line_of("SERDE"),
                                format!("set '{prop}' = 'true' in SERDEPROPERTIES: without it one bad line fails every Athena query over its partition until it leaves the window"),
                            ));
                        }
                    }
                }
                (diags, Some(Arc::new(Schema::new(fields))))
            }
            Err(e) => {
                let (line, _) = e.position();
                (vec![diag(source_line(model, &sql, line), format!("the DDL: {e}"))], None)
            }
        };
    }
    // As the engine will: a statement nested too deep for it is refused here too.
    if let Err(e) = crate::local::check_depth(&sql) {
        return (vec![diag(model.line_of("SELECT"), e.to_string())], None);
    }
    let plan = match ctx.state().create_logical_plan(&sql).await {
        Ok(p) => p,
        Err(e) => {
            let e = crate::local::statement_error(&e);
            let line = locate(model, &sql, e.position.map(|p| p.line), e.unresolved.as_deref());
            return (vec![diag(line, sql_error(&e.message))], None);
        }
    };
    let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
    let mut diags = Vec::new();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for p in &model.config.partitioned_by {
        if let Ok(f) = schema.field_with_name(p)
            && *f.data_type() != DataType::Utf8
        {
            diags.push(diag(
                crate::project::line_of(&model.source, &format!("AS {p}")).unwrap_or(1),
                format!(
                    "partition column '{p}' is {}: partition values are strings on Athena and in the local catalog; CAST it AS VARCHAR",
                    f.data_type()
                ),
            ));
        }
    }
    let audits_line = model.line_of("audits");
    for audit in &model.config.audits {
        let named: Vec<&String> = match audit {
            Audit::NotNull(cols) | Audit::Unique(cols) => cols.iter().collect(),
            Audit::AcceptedValues { column, .. } => vec![column],
            _ => Vec::new(),
        };
        for c in named {
            if !columns.iter().any(|have| have.eq_ignore_ascii_case(c)) {
                diags.push(diag(
                    audits_line,
                    format!(
                        "an audit names column '{c}', which the model does not produce (it has: {})",
                        columns.join(", ")
                    ),
                ));
            }
        }
        if let Audit::Sql(text) = audit {
            // `{{ this }}` is the staged version, with the model's columns.
            let this = "\"__strata_check\".\"this\"";
            let staged = Arc::new(MemorySchemaProvider::new());
            let table = MemTable::try_new(schema.clone(), vec![vec![]]).expect("an empty table");
            let _ = staged.register_table("this".into(), Arc::new(table));
            let catalog = ctx.catalog("datafusion").expect("the default catalog exists");
            let _ = catalog.register_schema("__strata_check", staged);
            let audit_sql = text.replace("{{ this }}", this).replace("{{this}}", this);
            let planned = match crate::local::check_depth(&audit_sql) {
                Ok(()) => {
                    ctx.state().create_logical_plan(&audit_sql).await.map(drop).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = planned {
                diags.push(diag(
                    audits_line,
                    format!("the sql audit: {}", sql_error(&e).replace(this, "{{ this }}")),
                ));
            }
        }
    }
    (diags, Some(schema))
}
