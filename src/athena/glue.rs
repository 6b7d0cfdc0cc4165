//! The Glue calls of the publish protocol: version tables and their partitions, the
//! published name (a view, or for Bronze the external table itself) switched with one
//! `UpdateTable` guarded by `VersionId`, its history, and retention.
//!
//! Invariants: a publish is one `CreateTable` (first publish) or one `UpdateTable` with
//! the `VersionId` read before (a stale one is a conflict, never an overwrite); every
//! per-entry error of a batch call is an error of the call.

use std::collections::HashMap;

use aws_sdk_glue::Client;
use aws_sdk_glue::types::{
    Column, Partition, PartitionError, PartitionInput, SerDeInfo, StorageDescriptor, Table, TableInput,
};

use super::query::api_message;
use crate::engine::EngineError;
use aws_sdk_glue::error::{ProvideErrorMetadata, SdkError};

/// Glue's limit on entries of one batch partition call.
pub const MAX_BATCH: usize = 100;

/// The Glue catalog of one account and region.
#[derive(Debug, Clone)]
pub struct Glue {
    client: Client,
}

fn aws<E, R>(what: &str, e: SdkError<E, R>) -> EngineError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::query::aws_error(format_args!("Glue {what}"), e)
}

impl Glue {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The table, or `None` when it does not exist.
    pub async fn table(&self, db: &str, name: &str) -> Result<Option<Table>, EngineError> {
        let r = self.client.get_table().database_name(db).name(name).send().await;
        match r {
            Ok(out) => Ok(out.table().cloned()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_entity_not_found_exception()) => Ok(None),
            Err(e) => Err(aws(&format!("GetTable {db}.{name}"), e)),
        }
    }

    /// The tables of `db` whose names start with `prefix`. Filtered here: Glue's
    /// `Expression` is a pattern whose dialect differs between catalogs.
    pub async fn tables_with_prefix(&self, db: &str, prefix: &str) -> Result<Vec<Table>, EngineError> {
        let mut out = Vec::new();
        let mut pages = self.client.get_tables().database_name(db).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws(&format!("GetTables {db}"), e))?;
            out.extend(page.table_list().iter().filter(|t| t.name().starts_with(prefix)).cloned());
        }
        Ok(out)
    }

    /// Every partition of a table.
    pub async fn partitions(&self, db: &str, name: &str) -> Result<Vec<Partition>, EngineError> {
        let mut out = Vec::new();
        let mut pages =
            self.client.get_partitions().database_name(db).table_name(name).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws(&format!("GetPartitions {db}.{name}"), e))?;
            out.extend(page.partitions().iter().cloned());
        }
        Ok(out)
    }

    /// Registers partitions, 100 per `BatchCreatePartition`; any per-entry error fails.
    pub async fn add_partitions(&self, db: &str, name: &str, parts: &[Partition]) -> Result<(), EngineError> {
        self.register(db, name, parts, false).await
    }

    /// Registers partitions, replacing any that exist already with the same values (a run
    /// that registered them and was stopped before its publish left them: they are not
    /// read by any published view yet).
    pub async fn put_partitions(&self, db: &str, name: &str, parts: &[Partition]) -> Result<(), EngineError> {
        self.register(db, name, parts, true).await
    }

    async fn register(
        &self,
        db: &str,
        name: &str,
        parts: &[Partition],
        replace: bool,
    ) -> Result<(), EngineError> {
        for chunk in parts.chunks(MAX_BATCH) {
            let inputs: Vec<PartitionInput> = chunk
                .iter()
                .map(|p| {
                    PartitionInput::builder()
                        .set_values(Some(p.values().to_vec()))
                        .set_storage_descriptor(p.storage_descriptor().cloned())
                        .set_parameters(p.parameters().cloned())
                        .build()
                })
                .collect();
            let out = self
                .client
                .batch_create_partition()
                .database_name(db)
                .table_name(name)
                .set_partition_input_list(Some(inputs.clone()))
                .send()
                .await
                .map_err(|e| aws(&format!("BatchCreatePartition {db}.{name}"), e))?;
            let exists = |e: &PartitionError| {
                e.error_detail().and_then(|d| d.error_code()) == Some("AlreadyExistsException")
            };
            let (existing, errors): (Vec<&PartitionError>, Vec<&PartitionError>) =
                out.errors().iter().partition(|e| replace && exists(e));
            for e in existing {
                let Some(input) = inputs.iter().find(|i| i.values() == e.partition_values()) else {
                    continue;
                };
                self.client
                    .update_partition()
                    .database_name(db)
                    .table_name(name)
                    .set_partition_value_list(Some(e.partition_values().to_vec()))
                    .partition_input(input.clone())
                    .send()
                    .await
                    .map_err(|err| aws(&format!("UpdatePartition {db}.{name}"), err))?;
            }
            if !errors.is_empty() {
                let detail: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        let d = e.error_detail();
                        format!(
                            "[{}] {}: {}",
                            e.partition_values().join("/"),
                            d.and_then(|d| d.error_code()).unwrap_or("error"),
                            d.and_then(|d| d.error_message()).unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(EngineError::aws(format!(
                    "Glue BatchCreatePartition {db}.{name}: {} of {} partitions failed: {}",
                    errors.len(),
                    chunk.len(),
                    detail.join("; ")
                )));
            }
        }
        Ok(())
    }

    /// Makes `input` the table `name`: `CreateTable` when `expected` is `None`, else one
    /// `UpdateTable` that only succeeds if the table's version is still `expected`.
    pub async fn swap(&self, db: &str, input: TableInput, expected: Option<&str>) -> Result<(), EngineError> {
        let name = input.name().to_string();
        match expected {
            None => {
                let r = self.client.create_table().database_name(db).table_input(input.clone()).send().await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_already_exists_exception()) => {
                        Err(EngineError::Conflict(format!(
                            "publish conflict: {db}.{name} was published by another run meanwhile (it did not exist when this run started); nothing changed"
                        )))
                    }
                    Err(e) => Err(aws(&format!("CreateTable {db}.{name}"), e)),
                }
            }
            Some(version) => {
                // Glue's VersionId guard is what makes the swap atomic; reading first also
                // reports a lost race before sending anything.
                let now = self.table(db, &name).await?;
                let now_version = now.as_ref().and_then(|t| t.version_id());
                if now_version != Some(version) {
                    // Who published it: a run's id, or a rollback's (`rollback-…`), and which version.
                    let param =
                        |k: &str| now.as_ref().and_then(|t| t.parameters()).and_then(|p| p.get(k)).cloned();
                    let by = match (param(super::P_RUN), param(super::P_VERSION)) {
                        (Some(run), Some(v)) => format!("{run} published version {v} first"),
                        _ => "another run published first".to_string(),
                    };
                    return Err(EngineError::Conflict(format!(
                        "publish conflict: {db}.{name} is at Glue version {} but this run read version {version}: {by}; nothing changed",
                        now_version.unwrap_or("(none)")
                    )));
                }
                let r = self
                    .client
                    .update_table()
                    .database_name(db)
                    .table_input(input.clone())
                    .version_id(version)
                    .send()
                    .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e)
                        if e.as_service_error().is_some_and(|s| s.is_concurrent_modification_exception()) =>
                    {
                        Err(EngineError::Conflict(format!(
                            "publish conflict: {db}.{name} changed since this run read it (Glue version {version}): another run published first; nothing changed ({})",
                            api_message(&e)
                        )))
                    }
                    Err(e) => Err(aws(&format!("UpdateTable {db}.{name}"), e)),
                }
            }
        }
    }

    /// Adds `params` to a run's own table (one `UpdateTable`, no version guard: no reader
    /// and no other run uses it before it is published).
    pub async fn add_parameters(
        &self,
        db: &str,
        table: &Table,
        params: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let input = as_input(table, table.name(), params);
        self.client
            .update_table()
            .database_name(db)
            .table_input(input)
            .send()
            .await
            .map(drop)
            .map_err(|e| aws(&format!("UpdateTable {db}.{}", table.name()), e))
    }

    /// The table's archived versions, newest first.
    pub async fn versions(&self, db: &str, name: &str) -> Result<Vec<(String, Table)>, EngineError> {
        let mut out = Vec::new();
        let mut pages =
            self.client.get_table_versions().database_name(db).table_name(name).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws(&format!("GetTableVersions {db}.{name}"), e))?;
            for v in page.table_versions() {
                if let (Some(id), Some(t)) = (v.version_id(), v.table()) {
                    out.push((id.to_string(), t.clone()));
                }
            }
        }
        out.sort_by_key(|(id, _)| std::cmp::Reverse(id.parse::<u64>().unwrap_or(0)));
        Ok(out)
    }

    /// Deletes archived versions of a table, 100 per `BatchDeleteTableVersion`.
    pub async fn delete_versions(&self, db: &str, name: &str, ids: &[String]) -> Result<(), EngineError> {
        for chunk in ids.chunks(MAX_BATCH) {
            let out = self
                .client
                .batch_delete_table_version()
                .database_name(db)
                .table_name(name)
                .set_version_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws(&format!("BatchDeleteTableVersion {db}.{name}"), e))?;
            if let Some(e) = out.errors().first() {
                return Err(EngineError::aws(format!(
                    "Glue BatchDeleteTableVersion {db}.{name}: version {}: {}",
                    e.version_id().unwrap_or("?"),
                    e.error_detail().and_then(|d| d.error_message()).unwrap_or("failed")
                )));
            }
        }
        Ok(())
    }

    /// Creates a table strata owns (a base generation).
    pub async fn create_table(&self, db: &str, input: TableInput) -> Result<(), EngineError> {
        let name = input.name().to_string();
        self.client
            .create_table()
            .database_name(db)
            .table_input(input)
            .send()
            .await
            .map(drop)
            .map_err(|e| aws(&format!("CreateTable {db}.{name}"), e))
    }

    /// Deletes a table (a version table strata made); a missing one is not an error.
    pub async fn delete_table(&self, db: &str, name: &str) -> Result<(), EngineError> {
        let r = self.client.delete_table().database_name(db).name(name).send().await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_entity_not_found_exception()) => Ok(()),
            Err(e) => Err(aws(&format!("DeleteTable {db}.{name}"), e)),
        }
    }
}

/// A table as the input that recreates it under `name`, with `params` added.
pub fn as_input(table: &Table, name: &str, params: HashMap<String, String>) -> TableInput {
    let mut parameters = table.parameters().cloned().unwrap_or_default();
    parameters.extend(params);
    TableInput::builder()
        .name(name)
        .set_description(table.description().map(str::to_string))
        .set_table_type(table.table_type().map(str::to_string))
        .set_storage_descriptor(table.storage_descriptor().cloned())
        .set_partition_keys(Some(table.partition_keys().to_vec()))
        .set_view_original_text(table.view_original_text().map(str::to_string))
        .set_view_expanded_text(table.view_expanded_text().map(str::to_string))
        .set_parameters(Some(parameters))
        .build()
        .expect("a table input with a name")
}

/// The columns a reader sees: the data columns, then the partition keys.
pub fn all_columns(table: &Table) -> Vec<Column> {
    let mut cols: Vec<Column> =
        table.storage_descriptor().map(|sd| sd.columns().to_vec()).unwrap_or_default();
    cols.extend(table.partition_keys().iter().cloned());
    cols
}

/// The view `name` defined by `sql`, as Athena stores a view: Presto view JSON in
/// `ViewOriginalText`, Hive column types in the storage descriptor.
pub fn view_input(
    name: &str,
    db: &str,
    sql: &str,
    columns: &[Column],
    params: HashMap<String, String>,
) -> TableInput {
    let view = serde_json::json!({
        "originalSql": sql,
        "catalog": "awsdatacatalog",
        "schema": db,
        "columns": columns
            .iter()
            .map(|c| serde_json::json!({"name": c.name(), "type": presto_type(c.r#type().unwrap_or("string"))}))
            .collect::<Vec<_>>(),
        "owner": "strata",
        "runAsInvoker": false,
        "properties": {},
    });
    // Standard base64 with padding, how Athena stores a view's definition.
    let encoded = aws_smithy_types::base64::encode(view.to_string().as_bytes());
    let mut parameters: HashMap<String, String> =
        [("presto_view".to_string(), "true".to_string()), ("comment".to_string(), "Presto View".to_string())]
            .into();
    parameters.extend(params);
    TableInput::builder()
        .name(name)
        .table_type("VIRTUAL_VIEW")
        .view_original_text(format!("/* Presto View: {encoded} */"))
        .view_expanded_text("/* Presto View */")
        .storage_descriptor(
            StorageDescriptor::builder()
                .set_columns(Some(columns.to_vec()))
                .serde_info(SerDeInfo::builder().build())
                .build(),
        )
        .set_parameters(Some(parameters))
        .build()
        .expect("a view input with a name")
}

/// A Hive type as Trino (Presto view JSON) spells it: `TypeSignature.toString()`
/// (`array(varchar)`, `map(varchar,integer)`, `row("a" varchar,"b" integer)`).
pub fn presto_type(hive: &str) -> String {
    let t = hive.trim();
    let lower = t.to_ascii_lowercase();
    let inner = |prefix: &str| lower.strip_prefix(prefix).and_then(|r| r.strip_suffix('>'));
    if let Some(args) = inner("array<") {
        return format!("array({})", presto_type(args));
    }
    if let Some(args) = inner("map<") {
        let parts = split_top(args);
        return format!("map({})", parts.iter().map(|p| presto_type(p)).collect::<Vec<_>>().join(","));
    }
    if let Some(args) = inner("struct<") {
        let fields: Vec<String> = split_top(args)
            .iter()
            .map(|f| {
                let (n, ty) = f.split_once(':').unwrap_or((f, "string"));
                let name = n.trim().trim_matches('`').to_lowercase();
                // Trino's NamedTypeSignature quotes every field name (doubling `"`), and
                // reads an unquoted one only when it is a plain identifier.
                format!("\"{}\" {}", name.replace('"', "\"\""), presto_type(ty))
            })
            .collect();
        return format!("row({})", fields.join(","));
    }
    match lower.as_str() {
        "string" => "varchar".into(),
        "int" => "integer".into(),
        "float" => "real".into(),
        "binary" => "varbinary".into(),
        _ => lower,
    }
}

/// Splits on commas outside `<...>` and `(...)`.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    for c in s.chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}
