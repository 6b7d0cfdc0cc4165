//! `strata docs`: the site built for a demo lake, opened in a real headless browser
//! (Debian's chromium, driven by Selenium through `tests/docs/browse.py`): the graph has
//! one node per model coloured by its health, every link opens its page, a model page
//! shows its columns and runs, search finds models and columns. Screenshots are saved
//! under `target/docs-screenshots/`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::{TestProject, repo, strata};

/// Runs the browser script on a site; returns what it measured.
fn browse(site: &Path, shots: &str, args: &[&str]) -> Value {
    let python = std::env::var("STRATA_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("STRATA_TEST_PYTHON is not set: run the suite with scripts/test.sh"));
    let out = std::process::Command::new(python)
        .arg(repo().join("tests/docs/browse.py"))
        .arg(site)
        .arg(repo().join("target/docs-screenshots").join(shots))
        .args(args)
        .output()
        .expect("the browser script runs");
    assert!(
        out.status.success(),
        "browser: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the browser script prints JSON")
}

#[test]
fn the_demo_lakes_site_shows_lineage_health_columns_runs_and_search_in_a_browser() {
    let t = TestProject::shipped();
    let (code, _, err) = strata(t.path(), &["demo", "--days", "1", "--sessions-per-hour", "2"]);
    assert_eq!(code, 0, "{err}");
    // One model fails its next run; one is new and never published.
    let path = t.path().join("sql/ops/live_bookings.sql");
    let sql = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, sql.replacen("SELECT", "SELECT no_such_column,", 1)).unwrap();
    let (code, _, _) = strata(t.path(), &["run", "ops.live_bookings"]);
    assert_eq!(code, 1);
    std::fs::write(path, sql).unwrap();
    std::fs::write(
        t.path().join("sql/ops/new_view.sql"),
        "{{ config(materialized='table', description='Not run yet.') }}\nSELECT city, count(*) AS n FROM {{ ref('silver.fact_bookings') }} GROUP BY city\n",
    )
    .unwrap();

    let site = t.path().join("site");
    let (code, out, err) = strata(t.path(), &["docs", "--out", site.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("for 10 models"), "{out}");
    let seen = browse(
        &site,
        "demo",
        &["--expect-runs", "silver.fact_payouts", "--search", "leg_id=", "--search", "mart="],
    );

    let project = t.project();
    let models: BTreeSet<String> = project.models.keys().map(ToString::to_string).collect();
    let nodes: BTreeSet<String> =
        seen["nodes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(nodes, models, "one node per model");
    let deps: usize = project.models.values().map(|m| m.deps.len()).sum();
    assert_eq!(seen["edges"], deps, "one edge per dependency");
    assert_eq!(seen["table_rows"], models.len());
    assert!(seen["broken_links"].as_array().unwrap().is_empty(), "{seen}");
    let health = &seen["node_health"];
    assert_eq!(health["silver.fact_payouts"], "fresh", "{health}");
    assert_eq!(health["ops.live_bookings"], "failed", "{health}");
    assert_eq!(health["ops.new_view"], "never", "{health}");

    let columns: Vec<&str> =
        seen["model_columns"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(
        columns.contains(&"leg_id")
            && columns.contains(&"amount_cents")
            && columns.ends_with(&["dt", "hour"]),
        "{columns:?}"
    );
    assert!(seen["model_runs"].as_u64().unwrap() >= 1, "the demo's run is listed: {seen}");
    assert_eq!(seen["model_charts"], 4, "duration, rows, bytes scanned, cost");
    assert_eq!(seen["model_upstream"], serde_json::json!(["bronze.events"]));
    assert_eq!(seen["upstream_link_opens"], true);

    let leg = &seen["search"]["leg_id"];
    assert!(
        leg["hits"].as_array().unwrap().iter().any(|h| h.as_str().unwrap().starts_with("leg_id")
            && h.as_str().unwrap().contains("column in silver.fact_payouts")),
        "{leg}"
    );
    assert!(leg["visible_rows"].as_array().unwrap().contains(&Value::from("silver.fact_payouts")), "{leg}");
    assert!(
        !leg["visible_rows"].as_array().unwrap().contains(&Value::from("ops.live_bookings")),
        "rows that do not match are hidden: {leg}"
    );
    let marts = &seen["search"]["mart"]["visible_rows"];
    assert_eq!(marts, &serde_json::json!(["gold.mart_city_daily", "gold.mart_search_funnel"]), "{marts}");
    for shot in ["index.png", "model.png", "search-leg_id.png"] {
        assert!(
            repo().join("target/docs-screenshots/demo").join(shot).metadata().unwrap().len() > 10_000,
            "{shot}"
        );
    }
}

/// A project of 200 models (nothing published): the site renders the whole project and
/// its index loads in well under a second.
#[test]
fn a_site_of_200_models_loads_in_under_a_second() {
    let ddl = std::fs::read_to_string(repo().join("sql/bronze/events.sql")).unwrap();
    let mut files: Vec<(String, String)> = vec![("sql/bronze/events.sql".into(), ddl)];
    let layers = [("silver", 80), ("gold", 70), ("ops", 49)];
    let mut previous: Vec<String> = vec![];
    for (layer, n) in layers {
        let mut this = Vec::new();
        for i in 0..n {
            let name = format!("m{i:03}");
            let from = if previous.is_empty() {
                "{{ source('bronze', 'events') }}".to_string()
            } else {
                format!("{{{{ ref('{}') }}}}", previous[i % previous.len()])
            };
            let cols =
                if previous.is_empty() { "event_name AS name, dt AS day, hour AS h" } else { "name, day, h" };
            files.push((
                format!("sql/{layer}/{name}.sql"),
                format!("{{{{ config(materialized='table', schedule='*/5 * * * *') }}}}\nSELECT {cols} FROM {from}\n"),
            ));
            this.push(format!("{layer}.{name}"));
        }
        previous = this;
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
    let t = TestProject::with_files(&refs);
    let site = t.path().join("site");
    let (code, out, err) = strata(t.path(), &["docs", "--out", site.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("for 200 models"), "{out}");
    let seen = browse(&site, "200-models", &["--search", "m042=", "--click", "12"]);
    assert_eq!(seen["nodes"].as_array().unwrap().len(), 200);
    assert!(seen["broken_links"].as_array().unwrap().is_empty());
    let load_ms = seen["load_ms"].as_f64().unwrap();
    eprintln!("index of 200 models loaded in {load_ms:.0} ms");
    assert!(load_ms < 1000.0, "{load_ms} ms");
    assert_eq!(
        seen["search"]["m042"]["visible_rows"].as_array().unwrap().len(),
        3,
        "silver, gold and ops m042"
    );
}

/// `--publish` uploads the site to S3 with content types, the index last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_is_published_to_an_s3_prefix() {
    let standin = crate::athena::StandIn::start();
    let aws = standin.clients();
    aws.s3.create_bucket().bucket("docs-bucket").send().await.unwrap();
    let t = TestProject::shipped();
    let mut cmd = standin.command(t.path());
    cmd.env("STRATA_ENGINE", "local").env_remove("STRATA_STORAGE");
    let out = cmd.args(["docs", "--publish", "s3://docs-bucket/lake/docs"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = aws.s3.list_objects_v2().bucket("docs-bucket").prefix("lake/docs/").send().await.unwrap();
    let keys: BTreeSet<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        keys.contains("lake/docs/index.html") && keys.contains("lake/docs/models/ops.payout_backlog.html"),
        "{keys:?}"
    );
    assert!(
        keys.contains("lake/docs/assets/site.js") && keys.contains("lake/docs/assets/search-index.js"),
        "{keys:?}"
    );
    let head = aws.s3.head_object().bucket("docs-bucket").key("lake/docs/index.html").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/html; charset=utf-8"));
}

/// On Athena the site reads Glue (published columns, kept versions) and the shared run
/// history (runs with their cost), from a task with an empty disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_athena_the_site_reads_glue_and_the_shared_run_history() {
    let standin = crate::athena::StandIn::start();
    let aws = standin.clients();
    crate::athena::provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_producer_events();
    crate::athena::upload_bronze(&aws, &t).await;
    let (code, out, err) = standin.strata(t.path(), &["tick", "--at", "2025-11-06T12:01:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let empty = tempfile::tempdir().unwrap();
    let site = empty.path().join("site");
    let out = standin
        .command(t.path())
        .args(["docs", "--out", site.to_str().unwrap()])
        .env("STRATA_STATE_DIR", empty.path().join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(site.join("models/silver.fact_payouts.html")).unwrap();
    assert!(page.contains("from the published version"), "columns come from Glue");
    assert!(page.contains("<td>leg_id</td><td>string</td>"), "Glue's column types");
    assert!(page.contains("<td class=\"ok\">published</td>"), "the tick's run, from the shared history");
    assert!(page.contains("figure class=\"chart\""));
    // The fingerprint the published version was computed with, as status says, on the page
    // and on the run that published it.
    let (code, out, err) = standin.strata(t.path(), &["status", "silver.fact_payouts", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    let fingerprint = status[0]["fingerprint"].as_str().expect("the tick recorded a fingerprint");
    assert!(page.contains(&format!("<tr><th>fingerprint</th><td>{fingerprint}</td></tr>")), "{fingerprint}");
    assert!(page.matches(&format!("<td>{fingerprint}</td>")).count() >= 2, "and on its run");
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.contains("engine athena"));
    assert_eq!(index.matches("<a class=\"node ").count(), t.project().models.len());
}
