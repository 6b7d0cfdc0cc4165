//! Per-model-run metrics in CloudWatch Embedded Metric Format: one JSON line per run on
//! standard output, which CloudWatch Logs turns into metrics (namespace `strata`).

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::runner::{ModelRun, Outcome};

/// The EMF record of one model run at `now`. Freshness lag is how far the data the table
/// holds trails the clock: `now` minus the end of the window just published.
pub fn emf(run: &ModelRun, now: DateTime<Utc>) -> serde_json::Value {
    let published = matches!(run.outcome, Outcome::Published(_) | Outcome::Unchanged);
    let mut metrics = vec![
        json!({"Name": "DurationSeconds", "Unit": "Seconds"}),
        json!({"Name": "Rows", "Unit": "Count"}),
        json!({"Name": "BytesScanned", "Unit": "Bytes"}),
        json!({"Name": "BytesWritten", "Unit": "Bytes"}),
        json!({"Name": "Failed", "Unit": "Count"}),
    ];
    let mut record = json!({
        "_aws": {
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{"Namespace": "strata", "Dimensions": [["Model"]], "Metrics": []}],
        },
        "Model": run.model.to_string(),
        "Outcome": run.outcome.label(),
        "WindowStart": crate::clock::stamp(run.window.start),
        "WindowEnd": crate::clock::stamp(run.window.end),
        "DurationSeconds": run.elapsed.as_secs_f64(),
        "Rows": run.stats.rows,
        "BytesScanned": run.stats.bytes_read,
        "BytesWritten": run.stats.bytes_written,
        "Failed": u8::from(run.outcome.is_failure()),
    });
    if published {
        metrics.push(json!({"Name": "FreshnessLagSeconds", "Unit": "Seconds"}));
        record["FreshnessLagSeconds"] =
            json!(((now - run.window.end).num_milliseconds().max(0) as f64) / 1000.0);
    }
    record["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!(metrics);
    record
}
