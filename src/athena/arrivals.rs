//! Near-real-time reads on Athena (`reads='arrived'`): a run reads only the Bronze objects
//! that arrived since the published version, selected with a `"$path"` predicate (Trino's
//! Hive connector applies it when it creates splits, so the other objects are neither read
//! nor billed), and keeps the published version's rows of the window by copying its files
//! into its own version's partition prefixes (S3 copies, not Athena scans). What the
//! version reflects is recorded as `<version dir>/_arrivals.json`, so a run that dies before
//! its publish simply leaves the next one to read the same objects again.

use std::collections::BTreeSet;

use aws_sdk_glue::types::{Partition, StorageDescriptor, Table};

use super::query::api_message;
use super::*;
use crate::engine::{ARRIVALS_FILE, ArrivedSource, EngineError, Job, JobKind};
use crate::materialize::arrivals;

/// The longest `"$path"` list strata puts in a statement; past it the run reads the whole
/// window (Athena refuses statements over 262,144 bytes).
const MAX_PATH_LIST_BYTES: usize = 150_000;

/// What a near-real-time run reads and keeps.
pub(super) struct Arrivals {
    /// Every object of the window's Bronze partitions now, sorted.
    pub(super) listed: Vec<String>,
    /// The published run table whose rows of the window this run keeps.
    pub(super) previous: Option<Table>,
}

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
            let page =
                page.map_err(|e| EngineError::Aws(format!("S3 ListObjectsV2 {uri}: {}", api_message(&e))))?;
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

    /// Lists the window's source objects, subtracts those the published version reflects
    /// (same generation, recorded), and returns the job with its source limited to the rest.
    pub(super) async fn arrivals(
        &self,
        job: &Job,
        source: &ArrivedSource,
        window: &crate::engine::Partitions,
        view: Option<&Table>,
    ) -> Result<(Job, Arrivals), EngineError> {
        let JobKind::Select { partition_by, .. } = &job.kind else {
            unreachable!("an incremental job selects")
        };
        // A source not in Glue: the statement says so (the whole window, as rendered).
        let Some(bronze) = self.glue.table(&source.database, &source.table).await? else {
            return Ok((job.clone(), Arrivals { listed: Vec::new(), previous: None }));
        };
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
        let from = window.first().cloned().unwrap_or_default();
        let lends = |v: &&Table| staging::layered(v).is_some_and(|(_, f)| arrivals::lends_rows(&from, &f));
        let previous = match view.filter(lends) {
            Some(v) => self
                .current_version_table(job, Some(v))
                .await?
                .map(|t| (t, param(v, P_VERSION).unwrap_or_default().to_string())),
            None => None,
        };
        let recorded = match &previous {
            Some((_, version)) => {
                self.read_arrivals(&format!("{}{ARRIVALS_FILE}", self.version_dir(job, version))).await?
            }
            None => None,
        };
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let fits =
            |new: &[&String]| new.iter().map(|o| quote(o).len() + 2).sum::<usize>() <= MAX_PATH_LIST_BYTES;
        let (limited, previous) = match arrivals::decide(&listed, recorded.as_ref(), fits) {
            // Nothing recorded (the first run, a new generation), or too many new objects
            // for one statement: the whole window, as rendered.
            arrivals::Read::Window => {
                if recorded.is_some() {
                    tracing::info!(model = %job.model, "too many new objects for one statement: reading the whole window");
                }
                (None, None)
            }
            arrivals::Read::Arrived(new) if new.is_empty() => {
                (Some(format!("(SELECT * FROM {} WHERE false)", source.relation)), previous.map(|(t, _)| t))
            }
            arrivals::Read::Arrived(new) => {
                let list: Vec<String> = new.iter().map(|o| quote(o)).collect();
                let limited =
                    format!("(SELECT * FROM {} WHERE \"$path\" IN ({}))", source.relation, list.join(", "));
                (Some(limited), previous.map(|(t, _)| t))
            }
        };
        let mut job = job.clone();
        if let (Some(limited), JobKind::Select { sql, .. }) = (limited, &mut job.kind) {
            *sql = sql.replace(&source.relation, &limited);
        }
        Ok((job, Arrivals { listed, previous }))
    }

    async fn read_arrivals(&self, uri: &str) -> Result<Option<BTreeSet<String>>, EngineError> {
        let Some((bucket, key)) = split_uri(uri) else { return Ok(None) };
        match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| EngineError::Aws(format!("{uri}: {e}")))?
                    .into_bytes();
                Ok(serde_json::from_slice::<Vec<String>>(&bytes).ok().map(|v| v.into_iter().collect()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(EngineError::Aws(format!("S3 GetObject {uri}: {}", api_message(&e)))),
        }
    }

    /// After the run's statement: the previous version's files of the window copied into
    /// this version's partition prefixes (and those partitions registered where the run
    /// wrote none).
    pub(super) async fn keep_previous_rows(
        &self,
        job: &Job,
        arrivals: &Arrivals,
        window: &[Vec<String>],
    ) -> Result<(), EngineError> {
        let JobKind::Select { partition_by, .. } = &job.kind else { return Ok(()) };
        let name = sql::version_table(job);
        let dir = self.version_dir(job, &job.version);
        if let Some(previous) = &arrivals.previous {
            let written: BTreeSet<Vec<String>> = self
                .glue
                .partitions(&job.database, &name)
                .await?
                .iter()
                .map(|p| p.values().to_vec())
                .collect();
            let template = self.version_table(job).await?;
            let mut added = Vec::new();
            for p in self.glue.partitions(&job.database, previous.name()).await? {
                if !window.contains(&p.values().to_vec()) {
                    continue;
                }
                let Some(from) = p.storage_descriptor().and_then(|sd| sd.location()) else { continue };
                let sub: Vec<String> =
                    partition_by.iter().zip(p.values()).map(|(c, v)| format!("{c}={v}")).collect();
                let to = format!("{dir}{}/", sub.join("/"));
                for object in self.list_uris(from).await? {
                    let file = object.rsplit('/').next().unwrap_or_default();
                    self.copy(&object, &format!("{to}{file}")).await?;
                }
                if !written.contains(p.values()) {
                    let sd = template.storage_descriptor().cloned().map(|sd| {
                        StorageDescriptor::builder()
                            .set_columns(Some(sd.columns().to_vec()))
                            .location(&to)
                            .set_input_format(sd.input_format().map(str::to_string))
                            .set_output_format(sd.output_format().map(str::to_string))
                            .set_serde_info(sd.serde_info().cloned())
                            .build()
                    });
                    added.push(
                        Partition::builder()
                            .set_values(Some(p.values().to_vec()))
                            .set_storage_descriptor(sd)
                            .build(),
                    );
                }
            }
            self.glue.add_partitions(&job.database, &name, &added).await?;
        }
        Ok(())
    }

    /// Records what this version reflects (`<version dir>/_arrivals.json`).
    pub(super) async fn record_arrivals(&self, job: &Job, arrivals: &Arrivals) -> Result<(), EngineError> {
        let dir = self.version_dir(job, &job.version);
        self.put(
            &format!("{dir}{ARRIVALS_FILE}"),
            serde_json::to_vec(&arrivals.listed).expect("strings serialize"),
        )
        .await
    }

    /// Copies an object into this run's own version directory (never elsewhere).
    async fn copy(&self, from: &str, to: &str) -> Result<(), EngineError> {
        let (Some((src_bucket, src_key)), Some((bucket, key))) = (split_uri(from), split_uri(to)) else {
            return Err(EngineError::Io(format!("copying {from} to {to}: not s3:// URIs")));
        };
        self.s3
            .copy_object()
            .copy_source(format!("{src_bucket}/{src_key}"))
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| EngineError::Aws(format!("S3 CopyObject {from} to {to}: {}", api_message(&e))))
    }

    async fn put(&self, uri: &str, body: Vec<u8>) -> Result<(), EngineError> {
        let Some((bucket, key)) = split_uri(uri) else {
            return Err(EngineError::Io(format!("{uri}: not an s3:// URI")));
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
            .map_err(|e| EngineError::Aws(format!("S3 PutObject {uri}: {}", api_message(&e))))
    }
}
