//! The Athena engine under faults moto cannot make, injected at the SDK boundary with the
//! SDK's own mock layer: FAILED queries (retryable and not), throttling on start and poll,
//! a stale Glue version on publish, per-entry errors of a partition batch, the cost
//! ceiling, and cancellation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_athena::operation::batch_get_query_execution::BatchGetQueryExecutionOutput;
use aws_sdk_athena::operation::start_query_execution::StartQueryExecutionOutput;
use aws_sdk_athena::operation::stop_query_execution::StopQueryExecutionOutput;
use aws_sdk_athena::types::{
    AthenaError, QueryExecution, QueryExecutionState, QueryExecutionStatistics, QueryExecutionStatus,
};
use aws_sdk_glue::operation::batch_create_partition::BatchCreatePartitionOutput;
use aws_sdk_glue::operation::get_table::GetTableOutput;
use aws_sdk_glue::operation::update_table::UpdateTableError;
use aws_sdk_glue::types::{ErrorDetail, Partition, PartitionError, StorageDescriptor, Table};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use strata::athena::glue::Glue;
use strata::athena::query::{QueryConfig, Statement, Statements, request_token};
use strata::athena::{AthenaEngine, Clients};
use strata::config::Storage;
use strata::engine::{Engine, EngineError, Job, JobKind, Staged, StepStats};
use strata::ids::ModelId;

/// A client of `$krate` whose every call is answered by `$rules` (no real network), with
/// the retry policy strata's clients have in production (`strata::athena::retry_config`):
/// the throttling and faults injected here are retried exactly as they would be on AWS.
/// Tests run on paused time, so the SDK's backoff sleeps take none.
macro_rules! client {
    ($krate:ident, $rules:expr) => {{
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        $krate::Client::from_conf(
            $krate::Config::builder()
                .behavior_version($krate::config::BehaviorVersion::latest())
                .region($krate::config::Region::new("us-east-1"))
                .credentials_provider($krate::config::Credentials::new("test", "test", None, None, "test"))
                .retry_config(strata::athena::retry_config())
                .http_client(create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        )
    }};
}

fn config() -> QueryConfig {
    QueryConfig {
        workgroup: "strata".into(),
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        ..QueryConfig::default()
    }
}

fn statement(sql: &str) -> Statement<'_> {
    Statement {
        sql,
        database: "rastup_silver",
        run_id: "r1",
        version: "v20251106T120000000Z-abc123",
        model: "silver.fact_payouts",
        index: 0,
    }
}

fn execution(
    id: &str,
    state: QueryExecutionState,
    error: Option<AthenaError>,
    scanned: i64,
) -> QueryExecution {
    let mut status = QueryExecutionStatus::builder().state(state);
    if let Some(e) = error {
        status = status.state_change_reason(e.error_message().unwrap_or_default()).athena_error(e);
    }
    QueryExecution::builder()
        .query_execution_id(id)
        .status(status.build())
        .statistics(
            QueryExecutionStatistics::builder()
                .data_scanned_in_bytes(scanned)
                .engine_execution_time_in_millis(1200)
                .query_queue_time_in_millis(300)
                .build(),
        )
        .build()
}

fn polled(executions: Vec<QueryExecution>) -> BatchGetQueryExecutionOutput {
    BatchGetQueryExecutionOutput::builder().set_query_executions(Some(executions)).build()
}

/// Start: answers with the ids in turn and records each request's token.
fn starts(ids: &'static [&'static str], tokens: Arc<Mutex<Vec<String>>>) -> Rule {
    let n = Arc::new(Mutex::new(0usize));
    mock!(aws_sdk_athena::Client::start_query_execution)
        .match_requests(move |r| {
            tokens.lock().unwrap().push(r.client_request_token().unwrap_or_default().to_string());
            true
        })
        .then_output(move || {
            let mut i = n.lock().unwrap();
            let id = ids[(*i).min(ids.len() - 1)];
            *i += 1;
            StartQueryExecutionOutput::builder().query_execution_id(id).build()
        })
}

fn athena_error(category: i32, kind: i32, retryable: bool, message: &str) -> AthenaError {
    AthenaError::builder()
        .error_category(category)
        .error_type(kind)
        .retryable(retryable)
        .error_message(message)
        .build()
}

#[tokio::test(start_paused = true)]
async fn a_failed_retryable_query_runs_again_with_a_new_token_and_succeeds() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let start = starts(&["q1", "q2"], tokens.clone());
    let poll = mock!(aws_sdk_athena::Client::batch_get_query_execution)
        .sequence()
        .output(|| {
            polled(vec![execution(
                "q1",
                QueryExecutionState::Failed,
                Some(athena_error(1, 1401, true, "GENERIC_INTERNAL_ERROR: Glue throttled the request")),
                0,
            )])
        })
        .output(|| polled(vec![execution("q2", QueryExecutionState::Succeeded, None, 2048)]))
        .build();
    let runner = Statements::new(client!(aws_sdk_athena, [&start, &poll]), config());
    let cleanups = Arc::new(Mutex::new(0));
    let c = cleanups.clone();
    let done = runner
        .run(&statement("SELECT 1"), || {
            let c = c.clone();
            async move {
                *c.lock().unwrap() += 1;
                Ok(())
            }
        })
        .await
        .expect("the retry succeeds");
    assert_eq!(done.query_id, "q2");
    assert_eq!(done.stats.bytes_read, 2048);
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2, "started twice");
    assert_ne!(tokens[0], tokens[1], "a new attempt gets a new token, or Athena would return the failed one");
    assert_eq!(tokens[0], request_token(&statement("SELECT 1"), 0), "tokens are deterministic");
    assert_eq!(*cleanups.lock().unwrap(), 1, "the statement's location was cleaned before the retry");
}

#[tokio::test(start_paused = true)]
async fn a_user_error_fails_at_once_with_athenas_message_the_statement_and_the_model() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let start = starts(&["q1"], tokens.clone());
    let poll = mock!(aws_sdk_athena::Client::batch_get_query_execution).then_output(|| {
        polled(vec![execution(
            "q1",
            QueryExecutionState::Failed,
            Some(athena_error(
                2,
                1100,
                false,
                "COLUMN_NOT_FOUND: line 1:8: Column 'amount' cannot be resolved",
            )),
            0,
        )])
    });
    let runner = Statements::new(client!(aws_sdk_athena, [&start, &poll]), config());
    let err = runner.run(&statement("SELECT amount FROM t"), || async { Ok(()) }).await.expect_err("fails");
    let text = err.to_string();
    assert!(text.contains("silver.fact_payouts"), "{text}");
    assert!(text.contains("COLUMN_NOT_FOUND: line 1:8: Column 'amount' cannot be resolved"), "{text}");
    assert!(text.contains("SELECT amount FROM t"), "{text}");
    assert_eq!(tokens.lock().unwrap().len(), 1, "a user error is never retried");
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_exhausted_resources_are_not_retried_even_when_marked_retryable() {
    for message in [
        "Query exhausted resources at this scale factor",
        "Query timeout: exceeded the maximum query execution time",
    ] {
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let start = starts(&["q1"], tokens.clone());
        let m = message.to_string();
        let poll = mock!(aws_sdk_athena::Client::batch_get_query_execution).then_output(move || {
            polled(vec![execution(
                "q1",
                QueryExecutionState::Failed,
                Some(athena_error(1, 1000, true, &m)),
                0,
            )])
        });
        let runner = Statements::new(client!(aws_sdk_athena, [&start, &poll]), config());
        let err = runner.run(&statement("SELECT 1"), || async { Ok(()) }).await.expect_err("fails");
        assert!(err.to_string().contains(message), "{err}");
        assert_eq!(tokens.lock().unwrap().len(), 1, "{message}: not retried");
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_on_start_and_poll_is_retried_and_the_start_keeps_its_token() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let start = mock!(aws_sdk_athena::Client::start_query_execution)
        .match_requests(move |r| {
            seen.lock().unwrap().push(r.client_request_token().unwrap_or_default().to_string());
            true
        })
        .sequence()
        .http_status(400, Some(r#"{"__type":"TooManyRequestsException","message":"Rate exceeded"}"#.into()))
        .http_status(400, Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()))
        .output(|| StartQueryExecutionOutput::builder().query_execution_id("q1").build())
        .build();
    let poll = mock!(aws_sdk_athena::Client::batch_get_query_execution)
        .sequence()
        .http_status(400, Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()))
        .output(|| polled(vec![execution("q1", QueryExecutionState::Running, None, 0)]))
        .output(|| polled(vec![execution("q1", QueryExecutionState::Succeeded, None, 10)]))
        .build();
    let runner = Statements::new(client!(aws_sdk_athena, [&start, &poll]), config());
    let done =
        runner.run(&statement("SELECT 1"), || async { Ok(()) }).await.expect("succeeds after throttling");
    assert_eq!(done.query_id, "q1");
    // Two throttled attempts, then the start: the SDK's retries resend the one request
    // strata built, so its token cannot change (the mock sees the request once).
    assert_eq!(start.num_calls(), 3, "the start was retried by the SDK");
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1, "strata built one StartQueryExecution request: {tokens:?}");
    assert_eq!(tokens[0], request_token(&statement("SELECT 1"), 0));
    assert_eq!(poll.num_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_bytes_scanned_ceiling_refuses_to_start_past_it() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let start = starts(&["q1", "q2", "q3"], tokens.clone());
    let poll = mock!(aws_sdk_athena::Client::batch_get_query_execution)
        .sequence()
        .output(|| polled(vec![execution("q1", QueryExecutionState::Succeeded, None, 600)]))
        .output(|| polled(vec![execution("q2", QueryExecutionState::Succeeded, None, 600)]))
        .build();
    let runner = Statements::new(
        client!(aws_sdk_athena, [&start, &poll]),
        QueryConfig { max_bytes_scanned: Some(1000), ..config() },
    );
    runner.run(&statement("SELECT 1"), || async { Ok(()) }).await.expect("600 of 1000");
    runner.run(&statement("SELECT 2"), || async { Ok(()) }).await.expect("started at 600 of 1000");
    let err = runner.run(&statement("SELECT 3"), || async { Ok(()) }).await.expect_err("1200 > 1000");
    assert!(err.to_string().contains("scanned 1200 bytes, the ceiling is 1000"), "{err}");
    assert_eq!(tokens.lock().unwrap().len(), 2, "the third statement never started");
    assert_eq!(runner.scanned(), 1200);
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_every_statement_in_flight() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let start = starts(&["slow-1"], tokens.clone());
    let poll = mock!(aws_sdk_athena::Client::batch_get_query_execution)
        .then_output(|| polled(vec![execution("slow-1", QueryExecutionState::Running, None, 0)]));
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let s = stopped.clone();
    let stop = mock!(aws_sdk_athena::Client::stop_query_execution)
        .match_requests(move |r| {
            s.lock().unwrap().push(r.query_execution_id().unwrap_or_default().to_string());
            true
        })
        .then_output(|| StopQueryExecutionOutput::builder().build());
    let runner = Statements::new(client!(aws_sdk_athena, [&start, &poll, &stop]), config());
    let r = runner.clone();
    let work = tokio::spawn(async move { r.run(&statement("SELECT slow"), || async { Ok(()) }).await });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!work.is_finished(), "the query is still running");
    work.abort(); // what dropping the model's future on SIGTERM does
    runner.cancel().await;
    assert_eq!(*stopped.lock().unwrap(), vec!["slow-1".to_string()]);
    let err = runner.run(&statement("SELECT 2"), || async { Ok(()) }).await.expect_err("cancelled");
    assert!(err.to_string().contains("cancelled"), "{err}");
}

fn glue_table(name: &str, version: &str) -> Table {
    Table::builder()
        .name(name)
        .version_id(version)
        .table_type("EXTERNAL_TABLE")
        .storage_descriptor(StorageDescriptor::builder().location("s3://lake/ops/board/v/").build())
        .build()
        .unwrap()
}

fn mocked_engine(glue_rules: &[&Rule]) -> AthenaEngine {
    let clients = Clients {
        athena: client!(aws_sdk_athena, Vec::<&Rule>::new()),
        glue: client!(aws_sdk_glue, glue_rules.iter().copied()),
        s3: client!(aws_sdk_s3, Vec::<&Rule>::new()),
    };
    AthenaEngine::with_config(
        clients,
        Storage::S3 { bucket: "lake".into(), prefix: String::new() },
        "rastup_ops".into(),
        config(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_stale_glue_version_on_publish_is_a_conflict_and_changes_nothing() {
    let job = Job {
        model: ModelId::parse("ops.board").unwrap(),
        database: "rastup_ops".into(),
        table: "board".into(),
        run_id: "r2".into(),
        version: "v20251106T120000000Z-00abcd".into(),
        now: "2025-11-06T12:00:00Z".parse().unwrap(),
        window_end: "2025-11-06T12:00:00Z".parse().unwrap(),
        kind: JobKind::Select {
            sql: "SELECT 1 AS n".into(),
            partition_by: vec![],
            compression: "snappy".into(),
            replaces: None,
        },
        audits: vec![],
        arrived: None,
    };
    let get = mock!(aws_sdk_glue::Client::get_table).then_output(|| {
        GetTableOutput::builder().table(glue_table("board__v20251106t120000000z_00abcd", "7")).build()
    });
    let attempted = Arc::new(Mutex::new(None::<String>));
    let a = attempted.clone();
    let update = mock!(aws_sdk_glue::Client::update_table)
        .match_requests(move |r| {
            *a.lock().unwrap() = r.version_id().map(str::to_string);
            true
        })
        .then_error(|| {
            UpdateTableError::ConcurrentModificationException(
                aws_sdk_glue::types::error::ConcurrentModificationException::builder()
                    .message("Update table failed due to concurrent modifications.")
                    .build(),
            )
        });
    let engine = mocked_engine(&[&get, &update]);
    let staged = Staged {
        job,
        expected: Some(strata::engine::SwapToken::new("7")),
        changed: true,
        stats: StepStats::default(),
        emptied: Vec::new(),
    };
    let err = engine.publish(&staged, "2025-11-06T12:00:01.000Z").await.expect_err("stale version");
    assert!(matches!(err, EngineError::Conflict(_)), "{err:?}");
    assert!(err.to_string().starts_with("publish conflict"), "{err}");
    assert_eq!(attempted.lock().unwrap().as_deref(), Some("7"), "the update was guarded by the version read");
    assert_eq!(update.num_calls(), 1, "a conflict is not retried");
}

#[tokio::test(start_paused = true)]
async fn per_entry_errors_of_a_partition_batch_fail_the_call_and_name_the_partitions() {
    let create = mock!(aws_sdk_glue::Client::batch_create_partition).then_output(|| {
        BatchCreatePartitionOutput::builder()
            .errors(
                PartitionError::builder()
                    .partition_values("2025-11-06")
                    .partition_values("11")
                    .error_detail(
                        ErrorDetail::builder()
                            .error_code("AlreadyExistsException")
                            .error_message("Partition already exists.")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let glue = Glue::new(client!(aws_sdk_glue, [&create]));
    let parts: Vec<Partition> = (0..150)
        .map(|h| Partition::builder().values("2025-11-06").values(format!("{h:03}")).build())
        .collect();
    let err = glue.add_partitions("rastup_silver", "t__v", &parts).await.expect_err("one entry failed");
    let text = err.to_string();
    assert!(text.contains("1 of 100 partitions failed"), "{text}");
    assert!(text.contains("[2025-11-06/11] AlreadyExistsException: Partition already exists."), "{text}");
    assert_eq!(create.num_calls(), 1, "the first batch of 100 failed; the second was not sent");
}

#[test]
fn failures_are_classified_from_athena_error_and_known_transient_causes() {
    use strata::athena::query::{Failure, classify};
    let failed = |e: AthenaError| execution("q", QueryExecutionState::Failed, Some(e), 0);
    let transient = |e: AthenaError| matches!(classify(&failed(e)), Failure::Transient(_));
    // Marked retryable by Athena.
    assert!(transient(athena_error(1, 1000, true, "GENERIC_INTERNAL_ERROR")));
    // Throttling of Glue, S3 or Athena (ErrorType 1400, 1401, 1403-1406), even when not marked.
    assert!(transient(athena_error(1, 1401, false, "Rate exceeded for Glue")));
    assert!(transient(athena_error(1, 1406, false, "throttled")));
    // 1402 is "too many table versions in AWS Glue" (Athena error catalog): a quota that no
    // retry lifts, even when marked retryable; the message says to run gc.
    let Failure::Permanent(detail) =
        classify(&failed(athena_error(1, 1402, true, "Too many table versions")))
    else {
        panic!("1402 is permanent")
    };
    assert!(detail.contains("run `strata gc`"), "{detail}");
    // Known transient messages.
    assert!(transient(athena_error(
        3,
        0,
        false,
        "HIVE_CANNOT_OPEN_SPLIT: Please reduce your request rate. (Service: Amazon S3; Status Code: 503; Error Code: SlowDown)"
    )));
    assert!(transient(athena_error(3, 0, false, "ICEBERG_COMMIT_ERROR: Failed to commit Iceberg update")));
    // Never: user errors (category 2), timeouts, exhausted resources, unknown system errors.
    assert!(!transient(athena_error(2, 1401, true, "SYNTAX_ERROR: line 1:1: mismatched input")));
    assert!(!transient(athena_error(1, 1000, true, "Query exhausted resources at this scale factor")));
    assert!(!transient(athena_error(1, 1000, true, "Query timeout")));
    assert!(!transient(athena_error(1, 1000, false, "HIVE_BAD_DATA: malformed Parquet file")));
    let Failure::Permanent(detail) = classify(&failed(athena_error(2, 1100, false, "COLUMN_NOT_FOUND: x")))
    else {
        panic!("a user error is permanent")
    };
    assert_eq!(detail, "COLUMN_NOT_FOUND: x (ErrorCategory 2, ErrorType 1100)");
}

/// Glue throttling is retried by the SDK (standard mode, the production policy): a few
/// throttled calls succeed in the end, with no retry loop of strata's on top; throttling
/// that outlasts the 8 attempts fails with Glue's error and the call named.
#[tokio::test(start_paused = true)]
async fn glue_throttling_is_retried_by_the_sdk_and_fails_after_eight_attempts() {
    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    let get = mock!(aws_sdk_glue::Client::get_table)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(3)
        .output(|| GetTableOutput::builder().table(glue_table("board", "7")).build())
        .build();
    let glue = Glue::new(client!(aws_sdk_glue, [&get]));
    let t = glue.table("rastup_ops", "board").await.expect("succeeds after three throttled attempts");
    assert_eq!(t.and_then(|t| t.version_id().map(str::to_string)).as_deref(), Some("7"));
    assert_eq!(get.num_calls(), 4);

    let always = mock!(aws_sdk_glue::Client::get_table)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .repeatedly()
        .build();
    let glue = Glue::new(client!(aws_sdk_glue, [&always]));
    let err = glue.table("rastup_ops", "board").await.expect_err("throttled on every attempt");
    assert!(
        err.to_string().contains("GetTable rastup_ops.board")
            && err.to_string().contains("ThrottlingException"),
        "{err}"
    );
    assert_eq!(always.num_calls(), 8, "the policy's 8 attempts, no more");
}

/// A FAILED query's `AthenaError` reaches the runner as fields, not as text searched later:
/// its ErrorCategory and ErrorType (Athena error catalog,
/// https://docs.aws.amazon.com/athena/latest/ug/error-reference.html: category 1 system,
/// 2 user, 3 other), the error's name and its position from the message (Trino's
/// `TrinoException#getMessage` and `ParsingException#getMessage` put the position first as
/// `line %s:%s: `; Athena prefixes the error code's name, as in
/// `HIVE_TOO_MANY_OPEN_PARTITIONS: ...`). The position is in the CTAS strata sent, and the
/// runner reports it at the model file's line.
#[test]
fn an_athena_failure_carries_its_fields_and_is_reported_at_the_models_line() {
    use strata::athena::query::statement_error;
    let failed = |message: &str| {
        QueryExecution::builder()
            .status(
                QueryExecutionStatus::builder()
                    .state(QueryExecutionState::Failed)
                    .athena_error(
                        AthenaError::builder()
                            .error_category(2)
                            .error_type(1006)
                            .retryable(false)
                            .error_message(message)
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    let e = statement_error(&failed(
        "HIVE_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of 100 open writers for partitions/buckets",
    ));
    assert_eq!(e.code.as_deref(), Some("HIVE_TOO_MANY_OPEN_PARTITIONS"));
    assert_eq!((e.category, e.error_type, e.position), (Some(2), Some(1006), None));
    let e = statement_error(&failed("the pipeline 3:4 stalled: Internal error"));
    assert_eq!((e.code, e.position), (None, None), "no name, and no position inside a word");

    // A column the model reads that does not exist, at line 28 of its file.
    let t = crate::common::TestProject::shipped();
    let mut env = t.env();
    env.insert("STRATA_ENGINE".into(), "athena".into());
    let settings = strata::config::Settings::load(t.path(), &env).unwrap();
    let project = strata::project::Project::load(settings).unwrap();
    let id = ModelId::parse("silver.fact_payouts").unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2025-11-06T15:00:00Z").unwrap().to_utc();
    let window = strata::runner::window_for(&project, &id, &strata::runner::RunOptions::new(at, None));
    let job =
        strata::runner::job_for(&project, &id, window, "r1", "v20251106T150000000Z-000001", at).unwrap();
    let ctas = strata::backends::statements(&project, &job).unwrap().remove(0);
    let line =
        1 + ctas.lines().position(|l| l.contains("AS failure_reason")).expect("the CTAS holds the model");
    assert!(line > 1 + ctas.lines().position(|l| l.contains("SELECT DISTINCT")).unwrap());
    let mut e = statement_error(&failed(&format!(
        "COLUMN_NOT_FOUND: line {line}:5: Column 'reason' cannot be resolved or requester is not authorized to access requested resources"
    )));
    assert_eq!(e.code.as_deref(), Some("COLUMN_NOT_FOUND"));
    assert_eq!(e.position.map(|p| (p.line, p.column)), Some((line, 5)));
    e.statement = Some(ctas.clone());
    let reported = strata::runner::located(&project, &id, &job, &EngineError::from(e));
    let source = std::fs::read_to_string(t.path().join("sql/silver/fact_payouts.sql")).unwrap();
    let expected = 1 + source.lines().position(|l| l.contains("AS failure_reason")).unwrap();
    assert!(
        reported.starts_with(&format!("sql/silver/fact_payouts.sql:{expected}: COLUMN_NOT_FOUND")),
        "{reported}"
    );
}

/// An AWS failure keeps the SDK's error as its source: a caller tells a denied call from
/// a missing table by type, not by searching the message (which names the call, the table
/// and AWS's code for a user).
#[tokio::test(start_paused = true)]
async fn an_aws_failure_keeps_the_sdk_error_as_its_source() {
    use aws_sdk_glue::error::SdkError;
    use aws_sdk_glue::operation::get_table::GetTableError;
    let denied = mock!(aws_sdk_glue::Client::get_table).then_error(|| {
        GetTableError::generic(
            aws_sdk_glue::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("User is not authorized to perform: glue:GetTable")
                .build(),
        )
    });
    let glue = Glue::new(client!(aws_sdk_glue, [&denied]));
    let err = glue.table("rastup_ops", "board").await.expect_err("denied");
    assert!(matches!(err, EngineError::Aws(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Glue GetTable rastup_ops.board: AccessDeniedException: User is not authorized to perform: glue:GetTable"
    );
    let source = std::error::Error::source(&err).expect("the SDK error is kept");
    let sdk = source.downcast_ref::<SdkError<GetTableError, aws_sdk_glue::config::http::HttpResponse>>();
    let code =
        sdk.and_then(|e| e.as_service_error()).and_then(aws_sdk_glue::error::ProvideErrorMetadata::code);
    assert_eq!(code, Some("AccessDeniedException"), "{source:?}");

    // The same on the local engine: a storage root that is a file keeps the io::Error.
    let dir = tempfile::tempdir().unwrap();
    let t = crate::common::TestProject::shipped();
    let file = dir.path().join("lake");
    std::fs::write(&file, b"not a directory").unwrap();
    let env = std::collections::HashMap::from([(
        "STRATA_STORAGE".to_string(),
        file.join("x").display().to_string(),
    )]);
    let settings = strata::config::Settings::load(t.path(), &env).unwrap();
    let err = strata::local::LocalEngine::open(&settings, strata::state::Access::Write)
        .expect_err("not a directory");
    let io = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
    assert!(io.is_some(), "{err:?}");
    assert!(err.to_string().contains(&file.display().to_string()), "{err}");
}
