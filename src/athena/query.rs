//! Running statements on Athena: a deterministic `ClientRequestToken` per statement and
//! attempt, one shared poller that follows every statement in flight with
//! `BatchGetQueryExecution`, classification of failures, jittered retries of what can
//! succeed on retry, `StopQueryExecution` of everything in flight on cancel, and the cost
//! of each statement.
//!
//! Invariants: a retried *start* reuses its token, so Athena never runs it twice; a
//! statement is run again (with the next attempt's token) only when Athena marked the
//! failure retryable or it is a known transient cause; timeouts, exhausted resources and
//! user errors fail at once with Athena's message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_athena::Client;
use aws_sdk_athena::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_athena::types::{
    QueryExecution, QueryExecutionContext, QueryExecutionState, ResultConfiguration,
};
use tokio::sync::oneshot;

use crate::engine::{EngineError, StepStats};

/// Where statements run and what they may cost.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub workgroup: String,
    pub catalog: String,
    /// Query results (`s3://...`); `None` uses the workgroup's.
    pub output_location: Option<String>,
    /// A run stops starting statements once this many bytes were scanned.
    pub max_bytes_scanned: Option<u64>,
    /// Attempts of a statement (the first included) when failures are retryable.
    pub max_attempts: u32,
    /// First wait between polls and between retries; both grow up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            workgroup: "primary".into(),
            catalog: "AwsDataCatalog".into(),
            output_location: None,
            max_bytes_scanned: None,
            max_attempts: 4,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// One statement of a model run.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    pub sql: &'a str,
    pub database: &'a str,
    /// What the token is derived from: the run, the version and the model.
    pub run_id: &'a str,
    pub version: &'a str,
    pub model: &'a str,
    /// The statement's position in the model's sequence.
    pub index: usize,
}

impl<'a> Statement<'a> {
    /// Statement `index` of a model run's job (`model` is the job's model id as text).
    pub fn of(job: &'a crate::engine::Job, model: &'a str, sql: &'a str, index: usize) -> Self {
        Self { sql, database: &job.database, run_id: &job.run_id, version: &job.version, model, index }
    }
}

/// A finished statement.
#[derive(Debug, Clone)]
pub struct Finished {
    pub query_id: String,
    pub stats: StepStats,
}

pub(crate) use crate::ids::fnv128;

/// The `ClientRequestToken` of one attempt of one statement: the same on every retried
/// start of that attempt, different for the next attempt and for every other run.
pub fn request_token(st: &Statement<'_>, attempt: u32) -> String {
    let index = st.index.to_string();
    let attempt = attempt.to_string();
    format!("strata-{:032x}", fnv128(&[st.run_id, st.version, st.model, &index, &attempt, st.sql]))
}

/// Why a statement failed, and whether running it again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Athena marked it retryable, or a known transient cause (throttling, S3 slow down,
    /// an Iceberg commit conflict, an internal error).
    Transient(String),
    /// A user (SQL) error, a timeout, exhausted resources, or anything not known to be
    /// transient.
    Permanent(String),
    /// Stopped (by strata on cancel, or by someone else).
    Cancelled(String),
}

/// Athena `ErrorType`s (category 1, system) that are throttling of Glue, S3 or Athena
/// (Athena error catalog: 1400 throttling, 1401 Glue, 1403 S3, 1404-1406 Athena).
const THROTTLING_TYPES: [i32; 6] = [1400, 1401, 1403, 1404, 1405, 1406];
/// "Query failed due to too many table versions in AWS Glue": a quota, not throttling.
const TOO_MANY_TABLE_VERSIONS: i32 = 1402;
/// Messages of failures that succeed when run again.
const TRANSIENT_MESSAGES: [&str; 6] = [
    "slow down",
    "slowdown",
    "iceberg_commit_error",
    "rate exceeded",
    "throttl",
    "internal_error_query_engine",
];
/// Messages of failures that must never be retried, even when marked retryable.
const NEVER_RETRY: [&str; 4] = [
    "query timeout",
    "exceeded the maximum query execution time",
    "exhausted resources",
    "resources exhausted",
];

/// Classifies a FAILED query from its `AthenaError` and state change reason.
pub fn classify(execution: &QueryExecution) -> Failure {
    let status = execution.status();
    let reason = status.and_then(|s| s.state_change_reason()).unwrap_or_default();
    let error = status.and_then(|s| s.athena_error());
    let message = error.and_then(|e| e.error_message()).filter(|m| !m.is_empty()).unwrap_or(reason);
    let message = if message.is_empty() { "the query failed without a message" } else { message };
    let lower = message.to_lowercase();
    let (category, kind, retryable) = error
        .map(|e| (e.error_category().unwrap_or(0), e.error_type().unwrap_or(0), e.retryable()))
        .unwrap_or((0, 0, false));
    let detail = format!("{message} (ErrorCategory {category}, ErrorType {kind})");
    if kind == TOO_MANY_TABLE_VERSIONS {
        return Failure::Permanent(format!(
            "{detail}: a table has reached Glue's limit of table versions (every publish adds one); run `strata gc` to delete versions past retention"
        ));
    }
    if NEVER_RETRY.iter().any(|m| lower.contains(m)) || category == 2 {
        return Failure::Permanent(detail);
    }
    if retryable || THROTTLING_TYPES.contains(&kind) || TRANSIENT_MESSAGES.iter().any(|m| lower.contains(m)) {
        return Failure::Transient(detail);
    }
    Failure::Permanent(detail)
}

/// The fields of a failed query's `AthenaError`: its category and type, and from its
/// message the error's name and position. Trino's messages start with the error code's
/// name (`HIVE_TOO_MANY_OPEN_PARTITIONS: ...`, `COLUMN_NOT_FOUND: line 3:8: ...`) and give a
/// position as `line L:C: ` (Trino's `ErrorCodeSupplier` names, and the `line %s:%s: `
/// prefix of `ParsingException` / `SemanticException` messages).
pub fn statement_error(execution: &QueryExecution) -> crate::engine::StatementError {
    let error = execution.status().and_then(|s| s.athena_error());
    let message = error.and_then(|e| e.error_message()).unwrap_or_default();
    let code = message
        .split_once(':')
        .map(|(name, _)| name.trim())
        .filter(|n| {
            !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string);
    let position = message.match_indices("line ").find_map(|(at, _)| {
        if message[..at].chars().next_back().is_some_and(char::is_alphanumeric) {
            return None; // "pipeline 3:4"
        }
        let (line, rest) = message[at + 5..].split_once(':')?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(crate::engine::SqlPosition { line: line.parse().ok()?, column: column.parse().ok()? })
    });
    crate::engine::StatementError {
        message: message.to_string(),
        position,
        statement: None,
        unresolved: None,
        code,
        category: error.and_then(|e| e.error_category()),
        error_type: error.and_then(|e| e.error_type()),
    }
}

/// An AWS error as one line: its code and message.
pub fn api_message<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => aws_sdk_athena::error::DisplayErrorContext(e).to_string(),
    }
}

/// An AWS call's failure as an [`EngineError::Aws`]: `what` (the call and what it was
/// on) and AWS's code and message, the SDK error kept as the error's source (so a caller
/// tells `NoSuchKey` from `AccessDenied` by type: `source().downcast_ref::<SdkError<..>>()`).
pub fn aws_error<E, R>(what: impl std::fmt::Display, e: SdkError<E, R>) -> EngineError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    EngineError::aws(format!("{what}: {}", api_message(&e))).caused_by(e)
}

/// Full jitter: a random wait up to `base * 2^attempt`, capped.
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let millis = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(millis / 2 + rand::random_range(0..=millis / 2))
}

type Waiter = oneshot::Sender<Result<QueryExecution, EngineError>>;

/// Runs statements and follows them to completion.
#[derive(Debug, Clone)]
pub struct Statements {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: QueryConfig,
    /// Statements started and not yet seen finished, with who waits for them.
    waiting: Mutex<BTreeMap<String, Waiter>>,
    /// Statements started and not finished (also those whose waiter went away).
    in_flight: Mutex<BTreeSet<String>>,
    polling: AtomicBool,
    scanned: AtomicU64,
    cancelled: AtomicBool,
}

impl Statements {
    pub fn new(client: Client, config: QueryConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                config,
                waiting: Mutex::new(BTreeMap::new()),
                in_flight: Mutex::new(BTreeSet::new()),
                polling: AtomicBool::new(false),
                scanned: AtomicU64::new(0),
                cancelled: AtomicBool::new(false),
            }),
        }
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub fn config(&self) -> &QueryConfig {
        &self.inner.config
    }

    /// Bytes scanned by every statement this run so far.
    pub fn scanned(&self) -> u64 {
        self.inner.scanned.load(Ordering::Relaxed)
    }

    /// Runs one statement to success, retrying what can succeed on retry. `before_retry`
    /// runs between attempts (a CTAS needs its empty location back).
    pub async fn run<F, Fut>(&self, st: &Statement<'_>, mut before_retry: F) -> Result<Finished, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), EngineError>>,
    {
        let cfg = &self.inner.config;
        let mut attempt = 0;
        loop {
            if let Some(limit) = cfg.max_bytes_scanned {
                let used = self.scanned();
                if used >= limit {
                    return Err(EngineError::Query(format!(
                        "{}: not started: this run has scanned {used} bytes, the ceiling is {limit} (athena.max_bytes_scanned_per_run)",
                        st.model
                    )));
                }
            }
            if self.inner.cancelled.load(Ordering::SeqCst) {
                return Err(EngineError::Query(format!("{}: not started: cancelled", st.model)));
            }
            let id = self.start(st, attempt).await?;
            let execution = self.wait(&id).await?;
            let stats = statistics(&execution);
            self.inner.scanned.fetch_add(stats.bytes_read, Ordering::Relaxed);
            let state = execution.status().and_then(|s| s.state()).cloned();
            tracing::info!(
                model = st.model,
                query_id = %id,
                statement = st.index,
                attempt,
                state = state.as_ref().map_or("?", |s| s.as_str()),
                bytes_scanned = stats.bytes_read,
                queue_ms = stats.queue_ms,
                engine_ms = stats.engine_ms,
                "athena statement finished"
            );
            let failure = match state {
                Some(QueryExecutionState::Succeeded) => return Ok(Finished { query_id: id, stats }),
                Some(QueryExecutionState::Cancelled) => Failure::Cancelled(
                    execution
                        .status()
                        .and_then(|s| s.state_change_reason())
                        .unwrap_or("cancelled")
                        .to_string(),
                ),
                _ => classify(&execution),
            };
            let context = |what: &str, detail: &str| {
                let mut e = statement_error(&execution);
                e.statement = Some(st.sql.to_string());
                e.message = format!(
                    "{}: Athena query {id} {what}: {detail}\n-- statement {}:\n{}",
                    st.model,
                    st.index + 1,
                    st.sql
                );
                EngineError::from(e)
            };
            match failure {
                Failure::Transient(detail) if attempt + 1 < cfg.max_attempts => {
                    tracing::warn!(model = st.model, query_id = %id, attempt, "transient failure, retrying: {detail}");
                    tokio::time::sleep(backoff(cfg.base_backoff, cfg.max_backoff, attempt)).await;
                    before_retry().await?;
                    attempt += 1;
                }
                Failure::Transient(detail) => {
                    return Err(context(&format!("failed {} times", attempt + 1), &detail));
                }
                Failure::Permanent(detail) => return Err(context("failed", &detail)),
                Failure::Cancelled(detail) => return Err(context("was cancelled", &detail)),
            }
        }
    }

    /// `StartQueryExecution` with the attempt's token (the SDK's retries of throttling and
    /// faults resend the same request, so the same token: Athena returns the same query).
    async fn start(&self, st: &Statement<'_>, attempt: u32) -> Result<String, EngineError> {
        let cfg = &self.inner.config;
        let token = request_token(st, attempt);
        let mut req = self
            .inner
            .client
            .start_query_execution()
            .query_string(st.sql)
            .client_request_token(&token)
            .work_group(&cfg.workgroup)
            .query_execution_context(
                QueryExecutionContext::builder().catalog(&cfg.catalog).database(st.database).build(),
            );
        if let Some(out) = &cfg.output_location {
            req = req.result_configuration(ResultConfiguration::builder().output_location(out).build());
        }
        let out =
            req.send().await.map_err(|e| aws_error(format_args!("{}: StartQueryExecution", st.model), e))?;
        let id = out.query_execution_id().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(EngineError::aws("StartQueryExecution returned no query id"));
        }
        self.inner.in_flight.lock().expect("not poisoned").insert(id.clone());
        Ok(id)
    }

    /// Waits until `id` reaches a final state. One poller follows every statement in flight.
    async fn wait(&self, id: &str) -> Result<QueryExecution, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.inner.waiting.lock().expect("not poisoned").insert(id.to_string(), tx);
        if !self.inner.polling.swap(true, Ordering::SeqCst) {
            let inner = self.inner.clone();
            tokio::spawn(async move { poll_loop(inner).await });
        }
        rx.await.unwrap_or_else(|_| Err(EngineError::aws("the Athena poller stopped")))
    }

    /// Stops every statement in flight (`StopQueryExecution`) and refuses new ones.
    pub async fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let ids: Vec<String> = self.inner.in_flight.lock().expect("not poisoned").iter().cloned().collect();
        for id in ids {
            match self.inner.client.stop_query_execution().query_execution_id(&id).send().await {
                Ok(_) => tracing::warn!(query_id = %id, "stopped Athena query"),
                Err(e) => tracing::error!(query_id = %id, "StopQueryExecution: {}", api_message(&e)),
            }
        }
    }

    /// The rows of a finished query (the header row of a SELECT removed), as text.
    pub async fn rows(
        &self,
        id: &str,
        limit: usize,
    ) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), EngineError> {
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        let mut first_page = true;
        let mut pages = self.inner.client.get_query_results().query_execution_id(id).into_paginator().send();
        while let Some(page) = pages.next().await {
            let out = page.map_err(|e| aws_error(format_args!("GetQueryResults {id}"), e))?;
            let Some(set) = out.result_set() else { break };
            if first_page {
                columns = set
                    .result_set_metadata()
                    .map(|m| m.column_info().iter().map(|c| c.name().to_string()).collect())
                    .unwrap_or_default();
            }
            for (i, row) in set.rows().iter().enumerate() {
                let values: Vec<Option<String>> =
                    row.data().iter().map(|d| d.var_char_value().map(str::to_string)).collect();
                // A SELECT's first row repeats the column names.
                if first_page
                    && i == 0
                    && !columns.is_empty()
                    && values.iter().map(|v| v.as_deref()).eq(columns.iter().map(|c| Some(c.as_str())))
                {
                    continue;
                }
                rows.push(values);
                if rows.len() >= limit {
                    return Ok((columns, rows));
                }
            }
            first_page = false;
        }
        Ok((columns, rows))
    }
}

/// The bytes Athena bills for a statement that scanned `scanned` bytes: rounded up to the
/// megabyte, 10 MB at least; DDL and statements that scan nothing are not billed (Amazon
/// Athena pricing: "rounded up to the nearest megabyte, with a 10 MB minimum per query").
pub fn billed(scanned: u64) -> u64 {
    const MB: u64 = 1_000_000;
    if scanned == 0 { 0 } else { scanned.div_ceil(MB).max(10) * MB }
}

/// The cost of a finished statement.
pub fn statistics(execution: &QueryExecution) -> StepStats {
    let s = execution.statistics();
    let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    let scanned = n(s.and_then(|s| s.data_scanned_in_bytes()));
    StepStats {
        bytes_read: scanned,
        billed_bytes: billed(scanned),
        queue_ms: n(s.and_then(|s| s.query_queue_time_in_millis())),
        engine_ms: n(s.and_then(|s| s.engine_execution_time_in_millis())),
        statements: 1,
        ..StepStats::default()
    }
}

fn is_final(state: Option<&QueryExecutionState>) -> bool {
    matches!(
        state,
        Some(QueryExecutionState::Succeeded | QueryExecutionState::Failed | QueryExecutionState::Cancelled)
    )
}

/// Follows every waited-for statement with `BatchGetQueryExecution` (50 ids per call),
/// backing off while nothing changes, until none is left.
async fn poll_loop(inner: Arc<Inner>) {
    let cfg = &inner.config;
    let mut idle_rounds = 0u32;
    // Ids Athena keeps reporting as unprocessed (unknown to it): given up after a while.
    let mut unprocessed: BTreeMap<String, u32> = BTreeMap::new();
    loop {
        let ids: Vec<String> = inner.waiting.lock().expect("not poisoned").keys().cloned().collect();
        if ids.is_empty() {
            inner.polling.store(false, Ordering::SeqCst);
            // A waiter may have registered between the read and the store.
            if inner.waiting.lock().expect("not poisoned").is_empty()
                || inner.polling.swap(true, Ordering::SeqCst)
            {
                return;
            }
            continue;
        }
        let wait = cfg.base_backoff.saturating_mul(1 + idle_rounds.min(8)).min(cfg.max_backoff);
        tokio::time::sleep(wait).await;
        let mut progressed = false;
        for chunk in ids.chunks(50) {
            let out = match inner
                .client
                .batch_get_query_execution()
                .set_query_execution_ids(Some(chunk.to_vec()))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    let message = format!("BatchGetQueryExecution: {}", api_message(&e));
                    let mut waiting = inner.waiting.lock().expect("not poisoned");
                    for id in chunk {
                        if let Some(tx) = waiting.remove(id) {
                            let _ = tx.send(Err(EngineError::aws(message.clone())));
                        }
                    }
                    progressed = true;
                    continue;
                }
            };
            for execution in out.query_executions() {
                let Some(id) = execution.query_execution_id() else { continue };
                if is_final(execution.status().and_then(|s| s.state())) {
                    inner.in_flight.lock().expect("not poisoned").remove(id);
                    if let Some(tx) = inner.waiting.lock().expect("not poisoned").remove(id) {
                        let _ = tx.send(Ok(execution.clone()));
                    }
                    progressed = true;
                }
            }
            for u in out.unprocessed_query_execution_ids() {
                let id = u.query_execution_id().unwrap_or_default().to_string();
                let message = u.error_message().unwrap_or_default().to_string();
                tracing::debug!(query_id = %id, "unprocessed by BatchGetQueryExecution: {message}");
                let n = unprocessed.entry(id.clone()).or_default();
                *n += 1;
                if *n >= 10 {
                    inner.in_flight.lock().expect("not poisoned").remove(&id);
                    if let Some(tx) = inner.waiting.lock().expect("not poisoned").remove(&id) {
                        let _ = tx.send(Err(EngineError::aws(format!(
                            "Athena does not know query {id}: {} ({message})",
                            u.error_code().unwrap_or("unprocessed")
                        ))));
                    }
                    progressed = true;
                }
            }
        }
        idle_rounds = if progressed { 0 } else { idle_rounds + 1 };
    }
}
