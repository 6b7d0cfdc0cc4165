//! Step Functions callbacks: when a state machine starts strata with
//! `ecs:runTask.waitForTaskToken`, strata keeps the task alive with heartbeats and answers
//! with SendTaskSuccess (a JSON summary) or SendTaskFailure (an error name and a cause),
//! within the service's limits.

use std::time::Duration;

use aws_sdk_sfn::Client;
use serde_json::json;

use crate::runner::{ModelRun, Outcome};

/// SendTaskSuccess accepts at most 256 KiB of output.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// SendTaskFailure: `error` at most 256 characters, `cause` at most 32,768.
pub const MAX_ERROR_CHARS: usize = 256;
pub const MAX_CAUSE_CHARS: usize = 32_768;
/// How often a heartbeat is sent (state machines set HeartbeatSeconds well above this).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

/// The summary a state machine receives: per model, the window, outcome, rows, bytes and
/// the version published; totals. Models are dropped from the end (and `truncated` set)
/// if the whole would exceed the output limit.
pub fn summary(command: &str, runs: &[ModelRun]) -> String {
    let model = |r: &ModelRun| {
        json!({
            "model": r.model.to_string(),
            "window_start": crate::clock::stamp(r.window.start),
            "window_end": crate::clock::stamp(r.window.end),
            "outcome": r.outcome.label(),
            "rows": r.stats.rows,
            "bytes_scanned": r.stats.bytes_read,
            "bytes_written": r.stats.bytes_written,
            "version": match &r.outcome { Outcome::Published(v) => Some(v.clone()), _ => None },
            "error": r.outcome.detail(),
        })
    };
    let totals = json!({
        "models": runs.len(),
        "failed": runs.iter().filter(|r| r.outcome.is_failure()).count(),
        "rows": runs.iter().map(|r| r.stats.rows).sum::<u64>(),
        "bytes_scanned": runs.iter().map(|r| r.stats.bytes_read).sum::<u64>(),
        "versions_published": runs.iter().filter(|r| matches!(r.outcome, Outcome::Published(_))).count(),
    });
    let mut models: Vec<serde_json::Value> = runs.iter().map(model).collect();
    loop {
        let truncated = models.len() < runs.len();
        let out = json!({"command": command, "totals": totals, "models": models, "truncated": truncated})
            .to_string();
        if out.len() <= MAX_OUTPUT_BYTES || models.is_empty() {
            return out;
        }
        models.truncate(models.len() / 2);
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The error name and cause of a failed run, within SendTaskFailure's limits.
pub fn failure(runs: &[ModelRun]) -> (String, String) {
    let failed: Vec<&ModelRun> = runs.iter().filter(|r| r.outcome.is_failure()).collect();
    let error = match failed.as_slice() {
        [one] => format!("strata.ModelFailed: {}", one.model),
        many => format!("strata.ModelFailed: {} models", many.len()),
    };
    let cause = failed
        .iter()
        .map(|r| format!("{}: {}", r.model, r.outcome.detail().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n");
    (clip(&error, MAX_ERROR_CHARS), clip(&cause, MAX_CAUSE_CHARS))
}

/// A task token and the client to answer it with.
#[derive(Debug, Clone)]
pub struct TaskCallback {
    client: Client,
    token: String,
}

impl TaskCallback {
    pub fn new(client: Client, token: String) -> Self {
        Self { client, token }
    }

    /// From the standard AWS configuration chain (env, profile, ECS task role), with the
    /// retry policy of every strata client (`athena::retry_config`).
    pub async fn from_env(token: String) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(crate::athena::retry_config())
            .load()
            .await;
        Self::new(Client::new(&config), token)
    }

    pub async fn heartbeat(&self) -> Result<(), String> {
        self.client
            .send_task_heartbeat()
            .task_token(&self.token)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("SendTaskHeartbeat: {}", aws_sdk_sfn::error::DisplayErrorContext(e)))
    }

    /// Heartbeats every `every` until the returned handle is dropped or aborted.
    pub fn keep_alive(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.heartbeat().await {
                    tracing::warn!("{e}");
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Answers the state machine: success with the summary, or failure with the reasons.
    pub async fn report(&self, command: &str, runs: &[ModelRun]) -> Result<(), String> {
        if runs.iter().any(|r| r.outcome.is_failure()) {
            let (error, cause) = failure(runs);
            self.fail(&error, &cause).await
        } else {
            self.client
                .send_task_success()
                .task_token(&self.token)
                .output(summary(command, runs))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("SendTaskSuccess: {}", aws_sdk_sfn::error::DisplayErrorContext(e)))
        }
    }

    /// Fails the task (a configuration error, an interrupted run).
    pub async fn fail(&self, error: &str, cause: &str) -> Result<(), String> {
        self.client
            .send_task_failure()
            .task_token(&self.token)
            .error(clip(error, MAX_ERROR_CHARS))
            .cause(clip(cause, MAX_CAUSE_CHARS))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("SendTaskFailure: {}", aws_sdk_sfn::error::DisplayErrorContext(e)))
    }
}
