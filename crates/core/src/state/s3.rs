//! The run-state store of the Athena engine: small JSON objects under the lake's
//! `_strata/state/` prefix, shared by every task of a deployment (scheduled ticks, Step
//! Functions jobs, an operator's laptop). No service to deploy beyond the lake's bucket.
//!
//! Every change is a compare-and-swap with S3 conditional writes (Amazon S3 User Guide,
//! "How to prevent object overwrites with conditional writes"): an object is created with
//! `If-None-Match: *` and replaced with `If-Match: <etag>` of the version that was read.
//! `412 Precondition Failed` means another writer changed it first; `409
//! ConditionalRequestConflict` means a concurrent conditional write is in progress and the
//! request should be retried; `If-Match` on a key that was deleted meanwhile is `404`. All
//! three mean "read again and decide again". A write whose response was lost and that the
//! SDK retried may itself report 412: every decision is idempotent (taking a lease one holds
//! renews it, progress never moves backwards, a marked window is marked), so reading again
//! finds it done.
//!
//! Layout under `<root>/_strata/state/`:
//! - `models/<model>.json`: how far the model ran ([`ModelState`]);
//! - `leases/<key>.json`: who runs it until when ([`Lease`]); a released lease is written
//!   with an empty owner (a compare-and-swap, where a delete would not be on every store);
//! - `backfills/<backfill>/<model>.json`: windows of a backfill already written;
//! - `runs/<model>/<finished_at>_<run_id>.json`: one object per model run, never replaced.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Lease, ModelState, RunRecord, RunState, StateError};

/// How many times a compare-and-swap is tried before giving up: each loss means another
/// writer made progress, so this is only reached under a pathological storm.
const CAS_ATTEMPTS: u32 = 50;

/// Run state in S3 objects under `s3://<bucket>/<prefix>`.
#[derive(Debug, Clone)]
pub struct S3State {
    client: Client,
    bucket: String,
    /// Key prefix of the state objects, ending in `/`.
    prefix: String,
}

/// What a compare-and-swap decides from the current value.
enum Change<T, R> {
    /// Write this value; the CAS returns `R` once it is written.
    Write(T, R),
    /// Leave it as it is and return `R`.
    Keep(R),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct BackfillWindows {
    /// Window start → version it went into.
    done: std::collections::BTreeMap<String, String>,
}

/// The outcome of a conditional write.
enum Written {
    Yes,
    /// Someone else changed (or created, or deleted) the object first.
    Lost,
}

impl S3State {
    /// The store under the lake root `s3://<bucket>/<lake_prefix>`.
    pub fn new(client: Client, bucket: &str, lake_prefix: &str) -> Self {
        let lake = lake_prefix.trim_matches('/');
        let prefix = if lake.is_empty() { "_strata/state/".into() } else { format!("{lake}/_strata/state/") };
        Self { client, bucket: bucket.to_string(), prefix }
    }

    /// Where the state lives, as a URI.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn err(&self, key: &str, message: impl std::fmt::Display) -> StateError {
        StateError::S3 {
            location: format!("s3://{}/{}{key}", self.bucket, self.prefix),
            message: message.to_string(),
        }
    }

    fn corrupt(&self, key: &str, message: impl std::fmt::Display) -> StateError {
        StateError::Corrupt {
            location: format!("s3://{}/{}{key}", self.bucket, self.prefix),
            message: message.to_string(),
        }
    }

    /// The object at `key` and its ETag, if there is one.
    async fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, String)>, StateError> {
        let out =
            self.client.get_object().bucket(&self.bucket).key(format!("{}{key}", self.prefix)).send().await;
        let out = match out {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(self.err(key, aws_message(&e))),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out.body.collect().await.map_err(|e| self.err(key, e))?.into_bytes();
        let value =
            serde_json::from_slice(&body).map_err(|e| self.corrupt(key, format!("does not parse: {e}")))?;
        Ok(Some((value, etag)))
    }

    /// Writes `value` at `key` if the object is still at `etag` (`None`: if there is none).
    async fn write<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: Option<&str>,
    ) -> Result<Written, StateError> {
        let body = serde_json::to_vec_pretty(value).expect("run state serializes");
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .content_type("application/json")
            .body(ByteStream::from(body));
        put = match etag {
            Some(etag) => put.if_match(etag),
            None => put.if_none_match("*"),
        };
        match put.send().await {
            Ok(_) => Ok(Written::Yes),
            Err(e) if matches!(http_status(&e), Some(412 | 409 | 404)) => Ok(Written::Lost),
            Err(e) => Err(self.err(key, aws_message(&e))),
        }
    }

    /// Reads `key`, lets `decide` choose from its value, and writes the result
    /// conditionally on what was read; reads and decides again whenever another writer won.
    async fn update<T, R>(
        &self,
        key: &str,
        mut decide: impl FnMut(Option<&T>) -> Change<T, R> + Send,
    ) -> Result<R, StateError>
    where
        T: Serialize + DeserializeOwned + Send + Sync,
        R: Send,
    {
        for attempt in 0..CAS_ATTEMPTS {
            let current: Option<(T, String)> = self.read(key).await?;
            let (value, etag) = match &current {
                Some((v, e)) => (Some(v), Some(e.as_str())),
                None => (None, None),
            };
            match decide(value) {
                Change::Keep(r) => return Ok(r),
                Change::Write(new, r) => match self.write(key, &new, etag).await? {
                    Written::Yes => return Ok(r),
                    Written::Lost => {
                        // Another writer won: back off a little (jittered) and decide again.
                        let ms = 10 * u64::from(attempt.min(10)) + rand::random::<u64>() % 20;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                },
            }
        }
        Err(self.err(key, format!("gave up after {CAS_ATTEMPTS} conditional writes lost to other writers")))
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.err(key, aws_message(&e)))
    }

    /// Keys (relative to the state prefix) under `sub`, after `start_after` when given.
    async fn list(&self, sub: &str, start_after: Option<String>) -> Result<Vec<String>, StateError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{sub}", self.prefix))
            .set_start_after(start_after.map(|s| format!("{}{s}", self.prefix)))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err(sub, aws_message(&e)))?;
            for o in page.contents() {
                if let Some(k) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    keys.push(k.to_string());
                }
            }
        }
        Ok(keys)
    }

    /// The model prefixes under `runs/`.
    async fn run_models(&self) -> Result<Vec<String>, StateError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}runs/", self.prefix))
            .delimiter("/")
            .into_paginator()
            .send();
        let mut models = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err("runs/", aws_message(&e)))?;
            for p in page.common_prefixes() {
                if let Some(m) = p.prefix().and_then(|k| k.strip_prefix(&format!("{}runs/", self.prefix))) {
                    models.push(m.trim_end_matches('/').to_string());
                }
            }
        }
        Ok(models)
    }
}

/// The HTTP status of a failed call, when it got a response.
fn http_status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn aws_message<E: std::error::Error + 'static>(e: &SdkError<E, HttpResponse>) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

fn lease_key(key: &str) -> String {
    format!("leases/{key}.json")
}

/// A lease object with no owner: released.
fn released(l: &Lease) -> bool {
    l.owner.is_empty()
}

#[async_trait]
impl RunState for S3State {
    async fn model(&self, model: &str) -> Result<Option<ModelState>, StateError> {
        Ok(self.read::<ModelState>(&format!("models/{model}.json")).await?.map(|(m, _)| m))
    }

    async fn record_success(&self, model: &str, at: &str, by: &str, now: &str) -> Result<(), StateError> {
        let new =
            ModelState { last_at: Some(at.to_string()), by: by.to_string(), updated_at: now.to_string() };
        self.update(&format!("models/{model}.json"), |cur: Option<&ModelState>| {
            let behind = cur.is_none_or(|c| c.last_at.as_deref().is_none_or(|l| l < at));
            if behind { Change::Write(new.clone(), ()) } else { Change::Keep(()) }
        })
        .await
    }

    async fn reset(&self, model: &str, at: Option<&str>, by: &str, now: &str) -> Result<(), StateError> {
        let new =
            ModelState { last_at: at.map(str::to_string), by: by.to_string(), updated_at: now.to_string() };
        self.update(&format!("models/{model}.json"), |_: Option<&ModelState>| Change::Write(new.clone(), ()))
            .await
    }

    async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        now: &str,
        until: &str,
    ) -> Result<Result<(), Lease>, StateError> {
        let mine = Lease { owner: owner.to_string(), until: until.to_string() };
        self.update(&lease_key(key), |cur: Option<&Lease>| match cur {
            Some(h) if !released(h) && h.owner != owner && h.until.as_str() > now => {
                Change::Keep(Err(h.clone()))
            }
            _ => Change::Write(mine.clone(), Ok(())),
        })
        .await
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StateError> {
        self.update(&lease_key(key), |cur: Option<&Lease>| match cur {
            Some(h) if h.owner == owner => {
                Change::Write(Lease { owner: String::new(), until: h.until.clone() }, ())
            }
            _ => Change::Keep(()),
        })
        .await
    }

    async fn lease(&self, key: &str) -> Result<Option<Lease>, StateError> {
        Ok(self.read::<Lease>(&lease_key(key)).await?.map(|(l, _)| l).filter(|l| !released(l)))
    }

    async fn force_release(&self, key: &str) -> Result<bool, StateError> {
        self.update(&lease_key(key), |cur: Option<&Lease>| match cur {
            Some(h) if !released(h) => {
                Change::Write(Lease { owner: String::new(), until: h.until.clone() }, true)
            }
            _ => Change::Keep(false),
        })
        .await
    }

    async fn backfill_done(&self, backfill: &str, model: &str) -> Result<Vec<(String, String)>, StateError> {
        let key = format!("backfills/{backfill}/{model}.json");
        Ok(self
            .read::<BackfillWindows>(&key)
            .await?
            .map(|(b, _)| b.done.into_iter().collect())
            .unwrap_or_default())
    }

    async fn backfill_mark(
        &self,
        backfill: &str,
        model: &str,
        window_start: &str,
        version: &str,
    ) -> Result<(), StateError> {
        let key = format!("backfills/{backfill}/{model}.json");
        self.update(&key, |cur: Option<&BackfillWindows>| {
            if cur.is_some_and(|b| b.done.get(window_start).is_some_and(|v| v == version)) {
                return Change::Keep(());
            }
            let mut done = cur.map(|b| b.done.clone()).unwrap_or_default();
            done.insert(window_start.to_string(), version.to_string());
            Change::Write(BackfillWindows { done }, ())
        })
        .await
    }

    /// Every `backfills/<backfill>/<model>.json` listed and read.
    async fn backfill_versions(&self) -> Result<Vec<(String, String)>, StateError> {
        let mut out = std::collections::BTreeSet::new();
        for key in self.list("backfills/", None).await? {
            let Some(model) = key.rsplit('/').next().and_then(|f| f.strip_suffix(".json")) else { continue };
            if let Some((b, _)) = self.read::<BackfillWindows>(&key).await? {
                out.extend(b.done.into_values().map(|v| (model.to_string(), v)));
            }
        }
        Ok(out.into_iter().collect())
    }

    async fn backfill_clear(&self, backfill: &str, model: &str) -> Result<(), StateError> {
        self.delete(&format!("backfills/{backfill}/{model}.json")).await
    }

    async fn record_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let key = format!("runs/{}/{}_{}.json", run.model, run.finished_at, run.run_id);
        // Created once; a 412 is this very record written by a retried request.
        match self.write(&key, run, None).await? {
            Written::Yes | Written::Lost => Ok(()),
        }
    }

    async fn runs(
        &self,
        model: Option<&str>,
        since: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<RunRecord>, StateError> {
        let models = match model {
            Some(m) => vec![m.to_string()],
            None => self.run_models().await?,
        };
        let mut out = Vec::new();
        for m in models {
            let sub = format!("runs/{m}/");
            let mut keys = self.list(&sub, since.map(|s| format!("{sub}{s}"))).await?;
            // Keys sort by finish time: the last `n` are the newest.
            if let Some(n) = last {
                keys.drain(..keys.len().saturating_sub(n));
            }
            let reads: Vec<_> =
                keys.into_iter().map(|k| async move { self.read::<RunRecord>(&k).await }).collect();
            let mut reads = futures::stream::iter(reads).buffered(16);
            while let Some(r) = reads.next().await {
                out.extend(r?.map(|(r, _)| r));
            }
        }
        out.sort_by(|a, b| (&a.finished_at, &a.model).cmp(&(&b.finished_at, &b.model)));
        Ok(out)
    }
}
