//! Athena's staging primitives (`materialize::stage::StagingStore`): a SELECT written by a
//! CTAS into the version's own prefix; a near-real-time source limited to the objects a run
//! reads with a `"$path"` predicate (Trino's Hive connector applies it when it creates
//! splits, so the other objects are neither read nor billed); a published partition lent by
//! copying its files into the version's partition prefix (S3 copies, not Athena scans);
//! what a version reflects recorded as `<version dir>/_arrivals.json`, so a run that dies
//! before its publish simply leaves the next one to read the same objects again; the
//! layered layout registered in Glue (partitions carried by reference, a base generation).

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_glue::types::Partition;

use super::query::aws_error;
use super::store::{at_location, stored_partition};
use super::*;
use crate::engine::{
    ARRIVALS_FILE, ArrivedSource, EngineError, Job, JobKind, Partitions, StepStats, SwapToken,
};
use crate::materialize::layered::Base;
use crate::materialize::stage::{Layered, StagingStore};
use crate::materialize::store::{StoredPartition, StoredVersion, VersionOf};

/// The longest `"$path"` list strata puts in a statement; past it the run reads the whole
/// window (Athena refuses statements over 262,144 bytes).
const MAX_PATH_LIST_BYTES: usize = 150_000;

fn split_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/')
}

impl AthenaEngine {
    /// Objects under `uri` (a prefix), as `s3://` URIs.
    async fn list_uris(&self, uri: &str) -> Result<Vec<String>, EngineError> {
        let Some((bucket, prefix)) = split_uri(uri) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut pages = self.s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error(format_args!("S3 ListObjectsV2 {uri}"), e))?;
            for o in page.contents() {
                if let Some(k) = o.key().filter(|k| !k.ends_with('/')) {
                    out.push(format!("s3://{bucket}/{k}"));
                }
            }
        }
        Ok(out)
    }

    /// The version directory of `version` of the job's table, as an `s3://` URI ending in `/`.
    fn version_dir(&self, job: &Job, version: &str) -> String {
        self.storage.uri(&format!("{}/{}/{version}/", job.model.layer.as_str(), job.table))
    }

    /// What a published version recorded it reflects (`None`: no record).
    async fn read_arrivals(&self, uri: &str) -> Result<Option<BTreeSet<String>>, EngineError> {
        let Some((bucket, key)) = split_uri(uri) else { return Ok(None) };
        match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| EngineError::aws(format!("{uri}: {e}")))?
                    .into_bytes();
                Ok(serde_json::from_slice::<Vec<String>>(&bytes).ok().map(|v| v.into_iter().collect()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(aws_error(format_args!("S3 GetObject {uri}"), e)),
        }
    }

    /// Copies an object into this run's own version directory (never elsewhere).
    async fn copy(&self, from: &str, to: &str) -> Result<(), EngineError> {
        let (Some((src_bucket, src_key)), Some((bucket, key))) = (split_uri(from), split_uri(to)) else {
            return Err(EngineError::io(format!("copying {from} to {to}: not s3:// URIs")));
        };
        self.s3
            .copy_object()
            .copy_source(format!("{src_bucket}/{src_key}"))
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_error(format_args!("S3 CopyObject {from} to {to}"), e))
    }

    async fn put(&self, uri: &str, body: Vec<u8>) -> Result<(), EngineError> {
        let Some((bucket, key)) = split_uri(uri) else {
            return Err(EngineError::io(format!("{uri}: not an s3:// URI")));
        };
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_error(format_args!("S3 PutObject {uri}"), e))
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[async_trait]
impl StagingStore for AthenaEngine {
    async fn token(&self, job: &Job) -> Result<Option<SwapToken>, EngineError> {
        let view = self.glue.table(&job.database, &job.table).await?;
        Ok(view.and_then(|t| t.version_id().map(SwapToken::new)))
    }

    /// The window's objects under the source's storage location template (a source not in
    /// Glue: `None`, and the statement says so).
    async fn source_objects(
        &self,
        job: &Job,
        source: &ArrivedSource,
        window: &Partitions,
    ) -> Result<Option<Vec<String>>, EngineError> {
        let JobKind::Select { partition_by, .. } = &job.kind else { return Ok(None) };
        let Some(bronze) = self.glue.table(&source.database, &source.table).await? else { return Ok(None) };
        let location = bronze
            .storage_descriptor()
            .and_then(|sd| sd.location())
            .unwrap_or_default()
            .trim_end_matches('/');
        let keys: Vec<String> = bronze.partition_keys().iter().map(|c| c.name().to_string()).collect();
        let template = param(&bronze, "storage.location.template").map(str::to_string).unwrap_or_else(|| {
            let parts: Vec<String> = keys.iter().map(|k| format!("{k}=${{{k}}}")).collect();
            format!("{location}/{}", parts.join("/"))
        });
        let mut listed = Vec::new();
        for values in window {
            // The template up to the first partition column the window does not fix.
            let mut prefix = template.clone();
            for (c, v) in partition_by.iter().zip(values) {
                prefix = prefix.replace(&format!("${{{c}}}"), v);
            }
            let prefix = prefix.split("${").next().unwrap_or_default().to_string();
            listed.extend(self.list_uris(&prefix).await?);
        }
        listed.sort();
        listed.dedup();
        Ok(Some(listed))
    }

    async fn recorded_objects(
        &self,
        job: &Job,
        version: &str,
    ) -> Result<Option<BTreeSet<String>>, EngineError> {
        self.read_arrivals(&format!("{}{ARRIVALS_FILE}", self.version_dir(job, version))).await
    }

    /// A `"$path"` list fits in a statement (Athena refuses statements over 262,144 bytes).
    fn can_limit(&self, objects: &[&String]) -> bool {
        objects.iter().map(|o| quote(o).len() + 2).sum::<usize>() <= MAX_PATH_LIST_BYTES
    }

    async fn write_select(
        &self,
        job: &Job,
        only: Option<&[String]>,
    ) -> Result<(VersionOf<Self>, StepStats), EngineError> {
        let mut run = job.clone();
        if let (Some(only), Some(source), JobKind::Select { sql, .. }) = (only, &job.arrived, &mut run.kind) {
            let limited = if only.is_empty() {
                format!("(SELECT * FROM {} WHERE false)", source.relation)
            } else {
                let list: Vec<String> = only.iter().map(|o| quote(o)).collect();
                format!("(SELECT * FROM {} WHERE \"$path\" IN ({}))", source.relation, list.join(", "))
            };
            *sql = sql.replace(&source.relation, &limited);
        }
        let stats = self.write_result(&run, &sql::version_target(job, &self.storage), "").await?;
        let table = self.version_table(job).await?;
        let incremental = matches!(&job.kind, JobKind::Select { replaces: Some(_), .. });
        let partitions = match incremental {
            true => self.glue.partitions(&job.database, table.name()).await?,
            false => Vec::new(),
        };
        let columns = columns_of(&table);
        let partitions = partitions.into_iter().map(stored_partition).collect();
        Ok((StoredVersion { definition: table, columns, partitions }, stats))
    }

    /// The published partition's files are copied into the version's partition prefix, and
    /// the partition registered in the version table when the run wrote none for it.
    async fn lend(
        &self,
        job: &Job,
        version: &VersionOf<Self>,
        lent: StoredPartition<Partition>,
        own: Option<StoredPartition<Partition>>,
    ) -> Result<StoredPartition<Partition>, EngineError> {
        let JobKind::Select { partition_by, .. } = &job.kind else { return Ok(lent) };
        let sub: Vec<String> =
            partition_by.iter().zip(&lent.values).map(|(c, v)| format!("{c}={v}")).collect();
        let to = format!("{}{}/", self.version_dir(job, &job.version), sub.join("/"));
        if let Some(from) = lent.handle.storage_descriptor().and_then(|sd| sd.location()) {
            for object in self.list_uris(from).await? {
                let file = object.rsplit('/').next().unwrap_or_default();
                self.copy(&object, &format!("{to}{file}")).await?;
            }
        }
        if let Some(own) = own {
            return Ok(own);
        }
        let p = Partition::builder()
            .set_values(Some(lent.values.clone()))
            .set_storage_descriptor(at_location(&version.definition, &to))
            .build();
        self.glue.add_partitions(&job.database, version.definition.name(), std::slice::from_ref(&p)).await?;
        Ok(stored_partition(p))
    }

    async fn record_objects(&self, job: &Job, listed: &[String]) -> Result<(), EngineError> {
        let dir = self.version_dir(job, &job.version);
        self.put(&format!("{dir}{ARRIVALS_FILE}"), serde_json::to_vec(listed).expect("strings serialize"))
            .await
    }

    /// Partitions after a past window are registered in the run's table as they are (their
    /// locations, not copies), and the view keeps its furthest reach; a new base generation
    /// is a table of its own (a range run or a backfill's first tick: O(table) once).
    async fn record_run(
        &self,
        job: &Job,
        version: VersionOf<Self>,
        layered: Option<Layered<Partition>>,
    ) -> Result<(), EngineError> {
        let Some(layered) = layered else { return Ok(()) };
        let staged = &version.definition;
        let after: Vec<Partition> = layered.carried.into_iter().map(|p| p.handle).collect();
        if !after.is_empty() {
            self.glue.put_partitions(&job.database, staged.name(), &after).await?;
            let view = self.glue.table(&job.database, &job.table).await?;
            let reaches = view.as_ref().and_then(|v| param(v, P_WINDOW_END));
            let window_end = crate::clock::stamp(job.window_end);
            if let Some(end) = reaches.filter(|e| *e > window_end.as_str()) {
                let params = [(P_REACHES.to_string(), end.to_string())].into_iter().collect();
                self.glue.add_parameters(&job.database, staged, params).await?;
            }
        }
        if let Base::New(parts) = layered.base {
            let base = sql::base_table(job);
            self.glue.delete_table(&job.database, &base).await?;
            self.glue.create_table(&job.database, staging::base_input(staged, &base)).await?;
            let parts: Vec<Partition> = parts.into_iter().map(|p| p.handle).collect();
            self.glue.add_partitions(&job.database, &base, &parts).await?;
        }
        Ok(())
    }
}
