//! Step Functions callbacks and CloudWatch metrics: what the state machine and CloudWatch
//! receive, within the services' limits. The SDK's own mock layer stands in for AWS.

use std::sync::{Arc, Mutex};

use aws_sdk_sfn::Client;
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureOutput;
use aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatOutput;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use chrono::{TimeZone, Utc};
use strata::callback::{MAX_CAUSE_CHARS, MAX_ERROR_CHARS, MAX_OUTPUT_BYTES, TaskCallback, failure, summary};
use strata::engine::StepStats;
use strata::ids::ModelId;
use strata::runner::{ModelRun, Outcome};
use strata::window::{Grain, Window};

fn run(model: &str, outcome: Outcome) -> ModelRun {
    let end = Utc.with_ymd_and_hms(2025, 11, 6, 12, 5, 0).unwrap();
    ModelRun {
        model: ModelId::parse(model).unwrap(),
        run_id: "r20251106T120500000Z-abcdef".into(),
        window: Window::ending_at(end, Grain::Hour, 1),
        outcome,
        stats: StepStats { rows: 10, bytes_read: 1000, bytes_written: 500, ..StepStats::default() },
        elapsed: std::time::Duration::from_millis(1500),
        fingerprint: None,
    }
}

#[tokio::test]
async fn success_sends_the_run_summary() {
    let seen = Arc::new(Mutex::new(None::<String>));
    let captured = seen.clone();
    let rule = mock!(Client::send_task_success)
        .match_requests(move |req| {
            *captured.lock().unwrap() = req.output().map(String::from);
            req.task_token() == Some("token-1")
        })
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let client = mock_client!(aws_sdk_sfn, [&rule]);
    let cb = TaskCallback::new(client, "token-1".into());
    let runs = vec![
        run("silver.fact_payouts", Outcome::Published("v1".into())),
        run("ops.payout_backlog", Outcome::Unchanged),
    ];
    cb.report("tick", &runs).await.expect("reported");
    let output: serde_json::Value =
        serde_json::from_str(seen.lock().unwrap().as_deref().expect("an output was sent")).unwrap();
    assert_eq!(output["command"], "tick");
    assert_eq!(output["totals"]["versions_published"], 1);
    assert_eq!(output["totals"]["rows"], 20);
    assert_eq!(output["models"][0]["model"], "silver.fact_payouts");
    assert_eq!(output["models"][0]["version"], "v1");
    assert_eq!(output["models"][0]["window_start"], "2025-11-06T11:00:00.000Z");
}

#[tokio::test]
async fn failure_sends_an_error_name_and_cause_within_limits() {
    let seen = Arc::new(Mutex::new((String::new(), String::new())));
    let captured = seen.clone();
    let rule = mock!(Client::send_task_failure)
        .match_requests(move |req| {
            *captured.lock().unwrap() =
                (req.error().unwrap_or_default().into(), req.cause().unwrap_or_default().into());
            true
        })
        .then_output(|| SendTaskFailureOutput::builder().build());
    let client = mock_client!(aws_sdk_sfn, [&rule]);
    let cb = TaskCallback::new(client, "t".into());
    let long = "x".repeat(100_000);
    let runs = vec![
        run("silver.fact_payouts", Outcome::Failed(long)),
        run("ops.payout_backlog", Outcome::Skipped("upstream".into())),
    ];
    cb.report("run", &runs).await.expect("reported");
    let (error, cause) = seen.lock().unwrap().clone();
    assert_eq!(error, "strata.ModelFailed: silver.fact_payouts");
    assert!(cause.starts_with("silver.fact_payouts: xxx"));
    assert_eq!(cause.chars().count(), MAX_CAUSE_CHARS);
    let many: Vec<ModelRun> =
        (0..500).map(|i| run(&format!("gold.m{i}"), Outcome::Failed("e".into()))).collect();
    let (error, _) = failure(&many);
    assert!(error.chars().count() <= MAX_ERROR_CHARS);
}

#[test]
fn a_huge_summary_is_cut_to_the_output_limit_and_says_so() {
    let runs: Vec<ModelRun> =
        (0..3000).map(|i| run(&format!("gold.model_{i}"), Outcome::Failed("y".repeat(300)))).collect();
    let out = summary("backfill", &runs);
    assert!(out.len() <= MAX_OUTPUT_BYTES, "{} bytes", out.len());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["totals"]["models"], 3000, "totals still count every model");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_the_task_alive_on_the_clock() {
    let rule = mock!(Client::send_task_heartbeat)
        .match_requests(|req| req.task_token() == Some("t"))
        .then_output(|| SendTaskHeartbeatOutput::builder().build());
    let client = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&rule]);
    let cb = TaskCallback::new(client, "t".into());
    let handle = cb.keep_alive(std::time::Duration::from_secs(60));
    tokio::time::sleep(std::time::Duration::from_secs(150)).await; // paused clock: instant
    handle.abort();
    assert_eq!(rule.num_calls(), 3, "at 0 s, 60 s and 120 s");
}

#[test]
fn every_model_run_becomes_an_emf_record() {
    let now = Utc.with_ymd_and_hms(2025, 11, 6, 12, 5, 30).unwrap();
    let r = strata::metrics::emf(&run("ops.payout_backlog", Outcome::Published("v".into())), now);
    assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Namespace"], "strata");
    assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Model");
    assert_eq!(r["Model"], "ops.payout_backlog");
    assert_eq!(r["FreshnessLagSeconds"], 30.0, "published at 12:05:30 for a window ending 12:05");
    assert_eq!(r["BytesScanned"], 1000);
    let names: Vec<&str> = r["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    for n in &names {
        assert!(r.get(n).is_some(), "metric {n} has a value");
    }
    let failed = strata::metrics::emf(&run("ops.payout_backlog", Outcome::Failed("x".into())), now);
    assert_eq!(failed["Failed"], 1);
    assert!(failed.get("FreshnessLagSeconds").is_none(), "a failed run does not refresh the data");
}
