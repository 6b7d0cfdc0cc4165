//! The S3 side and its fence: the only code that deletes objects, and only under a
//! version directory of a managed table (`lifecycle::VersionDir`, or a plain
//! sub-directory of the version a run wrote itself).

use super::query::aws_error;
use super::*;
use crate::config::Storage;
use crate::engine::{EngineError, Job};
use crate::ids::Layer;
use crate::lifecycle::{self, VersionDir};

impl AthenaEngine {
    pub(super) fn s3_key(&self, relative: &str) -> (String, String) {
        let Storage::S3 { bucket, prefix } = &self.storage else { unreachable!("checked in new") };
        let key = if prefix.is_empty() { relative.to_string() } else { format!("{prefix}/{relative}") };
        (bucket.clone(), key)
    }

    /// Deletes what a run wrote under its own version directory: all of it (`sub` empty),
    /// a backfill window's `_parts/<unit>`, or a chunked write's `data` / `_result`.
    pub(super) async fn delete_version_objects(&self, job: &Job, sub: &str) -> Result<u64, EngineError> {
        let dir = VersionDir::checked(job.model.layer, &job.table, &job.version).ok_or_else(|| {
            EngineError::io(format!("refusing to delete under {}: not a version directory", job.version))
        })?;
        self.delete_under(&dir, sub).await
    }

    /// Deletes every object under `<version dir>/<sub>`, where `sub` is empty or a path of
    /// plain names inside the version directory (`_parts/<unit>`, `data`, `_result`);
    /// nothing outside it can be named.
    pub(super) async fn delete_under(&self, dir: &VersionDir, sub: &str) -> Result<u64, EngineError> {
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !(sub.is_empty() || sub.split('/').all(plain)) {
            return Err(EngineError::io(format!(
                "refusing to delete {}/{sub}: not a directory of the version",
                dir.relative()
            )));
        }
        let relative = if sub.is_empty() {
            format!("{}/", dir.relative())
        } else {
            format!("{}/{sub}/", dir.relative())
        };
        let (bucket, prefix) = self.s3_key(&relative);
        let mut freed = 0;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(&prefix)
                .send()
                .await
                .map_err(|e| aws_error(format_args!("S3 ListObjectsV2 s3://{bucket}/{prefix}"), e))?;
            let objects: Vec<_> = page
                .contents()
                .iter()
                .filter_map(|o| {
                    freed += o.size().unwrap_or(0).max(0) as u64;
                    o.key().map(|k| aws_sdk_s3::types::ObjectIdentifier::builder().key(k).build())
                })
                .collect::<Result<_, _>>()
                .map_err(|e| EngineError::aws(e.to_string()))?;
            if objects.is_empty() {
                return Ok(freed);
            }
            let delete = aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| EngineError::aws(e.to_string()))?;
            let out = self
                .s3
                .delete_objects()
                .bucket(&bucket)
                .delete(delete.clone())
                .send()
                .await
                .map_err(|e| aws_error(format_args!("S3 DeleteObjects s3://{bucket}/{prefix}"), e))?;
            if let Some(e) = out.errors().first() {
                return Err(EngineError::aws(format!(
                    "S3 DeleteObjects {}: {}",
                    e.key().unwrap_or("?"),
                    e.message().unwrap_or("failed")
                )));
            }
        }
    }

    /// The newest `LastModified` of the objects under `<layer>/<table>/<version>/`
    /// (`None`: there are none).
    pub(super) async fn newest_object(
        &self,
        layer: Layer,
        table: &str,
        version: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, EngineError> {
        let (bucket, prefix) = self.s3_key(&format!("{}/{table}/{version}/", layer.as_str()));
        let mut newest: Option<chrono::DateTime<chrono::Utc>> = None;
        let mut pages = self.s3.list_objects_v2().bucket(&bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| aws_error(format_args!("S3 ListObjectsV2 s3://{bucket}/{prefix}"), e))?;
            for o in page.contents() {
                let t = o
                    .last_modified()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
                newest = newest.max(t);
            }
        }
        Ok(newest)
    }

    /// Names of the version-like prefixes directly under `<layer>/<table>/`.
    pub(super) async fn list_version_prefixes(
        &self,
        layer: Layer,
        table: &str,
    ) -> Result<Vec<String>, EngineError> {
        let (bucket, prefix) = self.s3_key(&format!("{}/{table}/", layer.as_str()));
        let mut out = Vec::new();
        let mut pages =
            self.s3.list_objects_v2().bucket(&bucket).prefix(&prefix).delimiter("/").into_paginator().send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| aws_error(format_args!("S3 ListObjectsV2 s3://{bucket}/{prefix}"), e))?;
            for p in page.common_prefixes() {
                if let Some(name) =
                    p.prefix().and_then(|p| p.strip_prefix(&prefix)).map(|p| p.trim_end_matches('/'))
                    && lifecycle::is_version_id(name)
                {
                    out.push(name.to_string());
                }
            }
        }
        Ok(out)
    }
}

/// The version a partition location of `<layer>/<table>/` lives in.
pub(super) fn dir_version(location: &str, layer: Layer, table: &str) -> Option<String> {
    let marker = format!("/{}/{table}/", layer.as_str());
    let at = location.find(&marker)?;
    let rest = &location[at + marker.len()..];
    let v = rest.split('/').next()?;
    lifecycle::is_version_id(v).then(|| v.to_string())
}
