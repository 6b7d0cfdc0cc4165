//! The Athena engine end to end against the Athena stand-in (`tests/athena_standin/`: moto's
//! S3, Glue and Athena APIs with every statement executed on DuckDB over moto's objects,
//! Bronze read through a port of Trino's OpenX reader), started by the harness on a free
//! port with the SDK pointed at it by `AWS_ENDPOINT_URL`.
//!
//! What this proves: the statements strata sends are valid Athena SQL that produces the
//! same tables as the local engine on the same Bronze files; the publish protocol, status,
//! rollback, gc, backfill and resumption from Glue work on real rows; Athena's limits
//! (enforced workgroups, empty CTAS locations, 100 partitions per statement, the query
//! length) are respected. What only a real account proves is in README "Running on AWS".

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_glue::types::Table;
use serde_json::{Value, json};
use strata::athena::query::QueryConfig;
use strata::athena::{AthenaEngine, Clients};
use strata::config::Storage;

use crate::common::{TestProject, files_under, repo, strata_cmd};

/// The Athena stand-in for one test.
pub struct StandIn {
    child: Child,
    pub port: u16,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StandIn {
    pub fn start() -> Self {
        let python = std::env::var("STRATA_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("STRATA_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs the stand-in's tools")
        });
        let mut child = Command::new(&python)
            .arg(repo().join("tests/athena_standin/server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the Athena stand-in with {python}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.trim().parse().unwrap_or_else(|_| panic!("the stand-in did not print its port: {line:?}"));
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// POSTs JSON to moto's own API.
    fn moto_api(&self, path: &str, body: Value) {
        let body = body.to_string();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 20"), "moto api {path}: {response}");
    }

    /// Athena statements stay queued until stopped.
    pub fn queries_never_finish(&self) {
        self.moto_api(
            "/moto-api/state-manager/set-transition",
            json!({"model_name": "athena::execution", "transition": {"progression": "manual", "times": 1_000_000}}),
        );
    }

    pub fn clients(&self) -> Clients {
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf(
                    $krate::Config::builder()
                        .behavior_version($krate::config::BehaviorVersion::latest())
                        .region($krate::config::Region::new("us-east-1"))
                        .credentials_provider($krate::config::Credentials::new(
                            "test", "test", None, None, "test",
                        ))
                        .endpoint_url(self.url())
                        .retry_config(strata::athena::retry_config())
                        .build(),
                )
            };
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "test", "test", None, None, "test",
                ))
                .endpoint_url(self.url())
                .retry_config(strata::athena::retry_config())
                .force_path_style(true)
                .build(),
        );
        Clients { athena: client!(aws_sdk_athena), glue: client!(aws_sdk_glue), s3 }
    }

    /// The environment a `strata` process needs to use the stand-in as AWS.
    pub fn command(&self, dir: &Path) -> Command {
        let mut cmd = strata_cmd(dir);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
            cmd.env_remove(k);
        }
        cmd.env("AWS_ENDPOINT_URL", self.url())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
            .env("STRATA_ENGINE", "athena")
            .env("STRATA_STORAGE", "s3://rastup-data");
        cmd
    }

    pub fn strata(&self, dir: &Path, args: &[&str]) -> (i32, String, String) {
        let out = self.command(dir).args(args).output().expect("strata runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// What the infrastructure templates create before strata runs: buckets, the Glue
/// databases and the workgroup (`infra/catalog.yaml`: configuration not enforced).
pub(crate) async fn provision(aws: &Clients, enforce_workgroup: bool) {
    for bucket in ["rastup-data", "rastup-athena-results"] {
        aws.s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    for db in ["rastup_bronze", "rastup_silver", "rastup_gold", "rastup_ops"] {
        aws.glue
            .create_database()
            .database_input(aws_sdk_glue::types::DatabaseInput::builder().name(db).build().unwrap())
            .send()
            .await
            .unwrap();
    }
    let config = aws_sdk_athena::types::WorkGroupConfiguration::builder()
        .enforce_work_group_configuration(enforce_workgroup)
        .result_configuration(
            aws_sdk_athena::types::ResultConfiguration::builder()
                .output_location("s3://rastup-athena-results/strata/")
                .build(),
        )
        .build();
    aws.athena.create_work_group().name("strata").configuration(config).send().await.unwrap();
}

async fn put(aws: &Clients, key: &str, body: &[u8]) {
    aws.s3
        .put_object()
        .bucket("rastup-data")
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// Copies the project's local Bronze files to the same keys in S3; returns the keys.
pub(crate) async fn upload_bronze(aws: &Clients, t: &TestProject) -> Vec<String> {
    let root = t.lake();
    let mut keys = Vec::new();
    for path in files_under(&root.join("bronze/events")) {
        let key = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        put(aws, &key, &std::fs::read(&path).unwrap()).await;
        keys.push(key);
    }
    keys
}

async fn keys(aws: &Clients, prefix: &str) -> Vec<String> {
    let out = aws.s3.list_objects_v2().bucket("rastup-data").prefix(prefix).send().await.unwrap();
    out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

async fn table(aws: &Clients, db: &str, name: &str) -> Option<Table> {
    aws.glue.get_table().database_name(db).name(name).send().await.ok().and_then(|o| o.table().cloned())
}

fn param(t: &Table, key: &str) -> String {
    t.parameters().and_then(|p| p.get(key)).cloned().unwrap_or_default()
}

/// Partition values -> the version directory their files are in.
async fn partitions(aws: &Clients, db: &str, name: &str) -> BTreeMap<Vec<String>, String> {
    let out = aws.glue.get_partitions().database_name(db).table_name(name).send().await.unwrap();
    out.partitions()
        .iter()
        .map(|p| {
            let loc = p.storage_descriptor().and_then(|sd| sd.location()).unwrap_or_default();
            let version = loc.split('/').find(|s| s.starts_with('v') && s.contains('T')).unwrap_or_default();
            (p.values().to_vec(), version.to_string())
        })
        .collect()
}

/// Every statement the stand-in received, in order, with its state.
async fn statements(aws: &Clients) -> Vec<(String, String)> {
    let ids = aws.athena.list_query_executions().work_group("strata").send().await.unwrap();
    let mut out = Vec::new();
    for chunk in ids.query_execution_ids().chunks(50) {
        let got = aws
            .athena
            .batch_get_query_execution()
            .set_query_execution_ids(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        out.extend(got.query_executions().iter().map(|q| {
            let state =
                q.status().and_then(|s| s.state()).map(|s| s.as_str().to_string()).unwrap_or_default();
            (q.query().unwrap_or_default().to_string(), state)
        }));
    }
    out
}

/// Version ids (also in version-table names, lower-cased) replaced by `<v>`.
fn redact(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let starts = (b[i] == b'v' || b[i] == b'V')
            && b.len() > i + 9
            && b[i + 1..i + 9].iter().all(u8::is_ascii_digit)
            && b[i + 9].eq_ignore_ascii_case(&b't');
        if starts {
            let len =
                b[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'-' || **c == b'_').count();
            out.push_str("<v>");
            i += len;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// One cell as comparable text: numbers by value, timestamps as `YYYY-MM-DD HH:MM:SS.fff`.
fn cell(v: Option<&Value>) -> String {
    let text = match v {
        None | Some(Value::Null) => return "NULL".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if let Ok(n) = text.parse::<f64>() {
        return format!("{:.9e}", n);
    }
    let t = text.replace('T', " ");
    if t.len() >= 19 && t.as_bytes()[4] == b'-' && t.as_bytes()[13] == b':' {
        let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
        return format!("{whole}.{:0<3}", &frac[..frac.len().min(3)]);
    }
    text
}

/// The rows of `strata query --format json` as sorted lists of cells, in `columns` order.
fn table_rows(json_text: &str, columns: &[String]) -> Vec<Vec<String>> {
    let rows: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(json_text.trim()).unwrap_or_default();
    let mut out: Vec<Vec<String>> =
        rows.iter().map(|r| columns.iter().map(|c| cell(r.get(c))).collect()).collect();
    out.sort();
    out
}

/// A Hive type name of an Arrow type as DataFusion's DESCRIBE shows it.
fn hive_of_arrow(t: &str) -> String {
    match t {
        "Utf8" | "Utf8View" | "LargeUtf8" => "string".into(),
        "Int64" => "bigint".into(),
        "Int32" => "int".into(),
        "Float64" => "double".into(),
        "Boolean" => "boolean".into(),
        t if t.starts_with("Timestamp") => "timestamp".into(),
        other => other.to_lowercase(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_pipeline_publishes_the_same_tables_on_athena_as_on_the_local_engine() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    // The same Bronze files for both: the fixture, what real producers send (badly typed
    // fields, malformed and non-object lines, keys in another case, numbers as strings,
    // duplicates, late events, unicode, cities only in the payload), and a day of the
    // demo's events with their quirks.
    let local = TestProject::shipped();
    local.write_fixture_events();
    local.write_producer_events();
    let at = strata::clock::parse_instant("2025-11-06T12:00:00Z").unwrap();
    let spec = strata::demo::DemoSpec { at, days: 1, sessions_per_hour: 1, seed: 11, env: "prod".into() };
    strata::demo::generate(&local.lake(), &spec).unwrap();
    upload_bronze(&aws, &local).await;
    let remote = TestProject::shipped();

    let args = ["run", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-05T00:00:00Z"];
    let (code, out, err) = crate::common::strata(local.path(), &args);
    assert_eq!(code, 0, "local:\n{out}\n{err}");
    let (code, out, err) = standin.strata(remote.path(), &args);
    assert_eq!(code, 0, "athena:\n{out}\n{err}");

    let project = local.project();
    let mut compared = 0;
    for (id, model) in &project.models {
        if model.config.materialized == strata::project::Materialization::External {
            continue;
        }
        let name = format!("{}.{}", project.database(id), model.table);
        // Columns and types: DataFusion's schema of the local table, Glue's of the view.
        let (code, describe, err) =
            crate::common::strata(local.path(), &["query", &format!("DESCRIBE {name}"), "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        let described: Vec<Value> = serde_json::from_str(describe.trim()).unwrap();
        let local_columns: Vec<(String, String)> = described
            .iter()
            .map(|c| {
                (
                    c["column_name"].as_str().unwrap().to_string(),
                    hive_of_arrow(c["data_type"].as_str().unwrap()),
                )
            })
            .collect();
        let view = table(&aws, project.database(id), &model.table)
            .await
            .unwrap_or_else(|| panic!("{name} on Athena"));
        let athena_columns: Vec<(String, String)> = view
            .storage_descriptor()
            .unwrap()
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.r#type().unwrap_or_default().to_string()))
            .collect();
        assert_eq!(local_columns, athena_columns, "{id}: columns and types");
        let columns: Vec<String> = local_columns.into_iter().map(|(n, _)| n).collect();

        let sql = format!("SELECT * FROM {name}");
        let (code, l, err) = crate::common::strata(local.path(), &["query", &sql, "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        let (code, a, err) = standin.strata(remote.path(), &["query", &sql, "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        let (l, a) = (table_rows(&l, &columns), table_rows(&a, &columns));
        assert!(!l.is_empty(), "{id} has rows");
        let only_local: Vec<&Vec<String>> = l.iter().filter(|r| !a.contains(r)).collect();
        let only_athena: Vec<&Vec<String>> = a.iter().filter(|r| !l.contains(r)).collect();
        assert!(
            l == a,
            "{id}: the published tables differ ({} rows local, {} on Athena)\ncolumns: {columns:?}\nonly local: {only_local:#?}\nonly Athena: {only_athena:#?}",
            l.len(),
            a.len()
        );
        compared += 1;
    }
    assert_eq!(compared, project.models.len() - 1, "every Silver, Gold and ops table compared");

    // The odd producer lines are in Silver as both engines read them: the city from the
    // payload, amounts given as strings, the leg of the line with text after it (not the
    // second record on that line), and the duplicate delivery once.
    let (_, rows, _) = standin.strata(
        remote.path(),
        &["query", "SELECT leg_id, city, amount_cents FROM rastup_silver.fact_payouts WHERE leg_id LIKE 'L9-%' AND status = 'queued' ORDER BY leg_id", "--format", "csv"],
    );
    assert!(rows.contains("L9-0,São Paulo,2550"), "{rows}");
    assert!(rows.contains("L9-2,denver,800"), "{rows}");
    assert!(rows.contains("L9-6,"), "{rows}");
    assert!(!rows.contains("L9-lost") && !rows.contains("L9-trunc"), "{rows}");
    assert_eq!(rows.matches("L9-0,").count(), 1, "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_on_athena_publishes_through_glue_and_status_rollback_gc_and_a_fresh_tick_work() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    let toml = std::fs::read_to_string(t.path().join("strata.toml")).unwrap();
    std::fs::write(t.path().join("strata.toml"), toml.replace("versions = 3 ", "versions = 2 ")).unwrap();
    t.write_fixture_events();
    t.write_producer_events();
    let bronze_keys = upload_bronze(&aws, &t).await;
    // Leftovers gc must handle: an old prefix no run recorded, and things it must not touch.
    put(&aws, "ops/live_bookings/v20200101T000000000Z-aaaaaa/part-00000.parquet", b"old").await;
    put(&aws, "ops/live_bookings/notes/readme.txt", b"not a version").await;

    // Run 1: four hours of Silver, a day of Gold, the ops tables, Bronze DDL.
    let (code, out, err) =
        standin.strata(t.path(), &["run", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-06T08:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Athena statements"), "costs are reported per model: {out}");

    // Bronze: the published external table carries the whole DDL, projection included.
    let bronze = table(&aws, "rastup_bronze", "bronze_events").await.expect("bronze_events in Glue");
    assert_eq!(bronze.table_type(), Some("EXTERNAL_TABLE"));
    assert_eq!(param(&bronze, "projection.enabled"), "true");
    assert!(param(&bronze, "storage.location.template").contains("event=${event_name}"));
    let serde =
        bronze.storage_descriptor().and_then(|s| s.serde_info()).and_then(|s| s.parameters()).cloned();
    assert_eq!(serde.unwrap_or_default().get("use.null.for.invalid.data").map(String::as_str), Some("true"));
    let bronze_version = param(&bronze, "strata_version");
    assert!(
        table(
            &aws,
            "rastup_bronze",
            &format!("bronze_events__{}", bronze_version.to_lowercase().replace('-', "_"))
        )
        .await
        .is_none(),
        "the staged definition is removed once published"
    );

    // Silver: a view over the version table, whose partitions are the hours with data.
    let view = table(&aws, "rastup_silver", "fact_payouts").await.expect("the view");
    assert_eq!(view.table_type(), Some("VIRTUAL_VIEW"));
    let v1 = param(&view, "strata_version");
    let t1 = param(&view, "strata_table");
    assert_eq!(param(&view, "strata_window_end"), "2025-11-06T12:00:00.000Z");
    let p1 = partitions(&aws, "rastup_silver", &t1).await;
    let hours: Vec<String> = p1.keys().map(|p| p[1].clone()).collect();
    assert_eq!(hours, ["09", "10"], "the producer events' hours");
    assert!(p1.values().all(|v| *v == v1));
    // Real rows through the view.
    let (code, rows, err) = standin.strata(
        t.path(),
        &[
            "query",
            "SELECT status, count(*) AS n FROM rastup_silver.fact_payouts GROUP BY status ORDER BY status",
            "--format",
            "csv",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // The producer file's 12 queued legs (its duplicate delivery once) and the fixture's one.
    assert_eq!(rows, "status,n\nfailed,1\npaid,2\nqueued,13\n");

    // Every model: what render prints is what was sent, then one statement per audit.
    let all = statements(&aws).await;
    assert!(all.iter().all(|(_, state)| state == "SUCCEEDED"), "{all:#?}");
    let models = [
        ("silver.fact_payouts", "rastup_silver", "fact_payouts", 2),
        ("silver.fact_bookings", "rastup_silver", "fact_bookings", 1),
        ("gold.mart_city_daily", "rastup_gold", "mart_city_daily", 2),
        ("ops.payout_backlog", "rastup_ops", "payout_backlog", 2),
    ];
    for (model, db, name, audits) in models {
        let published = table(&aws, db, name).await.unwrap_or_else(|| panic!("{model} was published"));
        let version_table =
            format!("{name}__{}", param(&published, "strata_version").to_lowercase().replace('-', "_"));
        let sent: Vec<&String> = all.iter().map(|(s, _)| s).filter(|s| s.contains(&version_table)).collect();
        let (code, rendered, err) = standin.strata(
            t.path(),
            &[
                "render",
                model,
                "--engine",
                "athena",
                "--at",
                "2025-11-06T12:00:00Z",
                "--from",
                "2025-11-06T08:00:00Z",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let first = rendered.split_once('\n').unwrap().1.trim().trim_end_matches(';');
        assert_eq!(sent.len(), 1 + audits, "{model}: its statement and {audits} audits: {sent:#?}");
        assert_eq!(redact(sent[0]), redact(first), "{model}: the statement sent is what render prints");
    }

    // Runs 2 and 3: five-minute refreshes replace hours 11 and 12 only.
    for at in ["2025-11-06T12:05:00Z", "2025-11-06T12:10:00Z"] {
        let (code, out, err) = standin.strata(t.path(), &["run", "--at", at]);
        assert_eq!(code, 0, "{out}\n{err}");
    }
    // The layered layout: each run's table holds its window only (no hour of 11-12 has
    // data); the hours that left the window were registered once in the base, pointing at
    // the files of the version that wrote them; the view reads the base before the window.
    let view = table(&aws, "rastup_silver", "fact_payouts").await.unwrap();
    let p3 = partitions(&aws, "rastup_silver", &param(&view, "strata_table")).await;
    assert!(p3.is_empty(), "the run table holds the window's hours only: {p3:?}");
    assert_eq!(param(&view, "strata_hot_from"), r#"["2025-11-06","11"]"#);
    let base = partitions(&aws, "rastup_silver", &param(&view, "strata_base_table")).await;
    assert_eq!(base, p1, "hours outside the window point at the files of the version that wrote them");
    let (_, rows, _) = standin.strata(
        t.path(),
        &["query", "SELECT count(*) AS n FROM rastup_silver.fact_payouts", "--format", "csv"],
    );
    assert_eq!(rows, "n\n16\n", "the carried-over hours are read through the new version");

    // status and rollback: the previous version's rows are what readers see after.
    let (code, out, err) = standin.strata(t.path(), &["status", "silver.fact_payouts"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&param(&view, "strata_version")) && out.contains("2025-11-06T12:10:00.000Z"),
        "{out}"
    );
    let history = |aws: Clients| async move {
        let out = aws
            .glue
            .get_table_versions()
            .database_name("rastup_ops")
            .table_name("live_bookings")
            .send()
            .await
            .unwrap();
        let mut v: Vec<(u64, String)> = out
            .table_versions()
            .iter()
            .map(|tv| {
                (tv.version_id().unwrap().parse().unwrap(), param(tv.table().unwrap(), "strata_version"))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, s)| s).collect::<Vec<String>>()
    };
    let live_history = history(aws.clone()).await;
    assert_eq!(live_history.len(), 3);
    let as_of = |t: &TestProject| {
        let (code, rows, err) = standin.strata(
            t.path(),
            &["query", "SELECT DISTINCT as_of FROM rastup_ops.live_bookings", "--format", "csv"],
        );
        assert_eq!(code, 0, "{err}");
        rows
    };
    assert_eq!(as_of(&t), "as_of\n2025-11-06 12:10:00.000\n");
    let (code, out, err) = standin.strata(t.path(), &["rollback", "ops.live_bookings"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let live = table(&aws, "rastup_ops", "live_bookings").await.unwrap();
    assert_eq!(param(&live, "strata_version"), live_history[1], "back to the previous version");
    assert_eq!(as_of(&t), "as_of\n2025-11-06 12:05:00.000\n", "readers see the previous version's rows");
    let live_v1_dir = format!("ops/live_bookings/{}/", live_history[0]);
    assert!(!keys(&aws, &live_v1_dir).await.is_empty());

    // gc with 2 versions kept: the oldest versions go, except files still read. A dry run
    // first, as JSON: the same fields as on the local engine (`publish::a_crash_...`).
    let dry_run = || {
        let (code, dry, err) = standin.strata(t.path(), &["gc", "--dry-run", "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Vec<serde_json::Map<String, Value>>>(&dry).unwrap()
    };
    // The orphan's id says 2020, but its objects were written a moment ago (S3
    // LastModified): a run may be writing it now, so it is kept through the grace period.
    let dry = dry_run();
    assert!(!dry.iter().any(|i| i["version"] == "v20200101T000000000Z-aaaaaa"), "{dry:?}");
    let toml = std::fs::read_to_string(t.path().join("strata.toml")).unwrap();
    std::fs::write(
        t.path().join("strata.toml"),
        toml.replace("orphan_grace_minutes = 60", "orphan_grace_minutes = 0"),
    )
    .unwrap();
    let dry = dry_run();
    assert!(
        dry.iter().any(|i| i["version"] == "v20200101T000000000Z-aaaaaa" && i["deletes_dir"] == true),
        "{dry:?}"
    );
    crate::publish::assert_gc_item_fields(&dry);
    let (code, out, err) = standin.strata(t.path(), &["gc"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(keys(&aws, &live_v1_dir).await.is_empty(), "live_bookings' oldest version is deleted: {out}");
    assert!(keys(&aws, "ops/live_bookings/v20200101T000000000Z-aaaaaa/").await.is_empty(), "the orphan too");
    assert_eq!(
        keys(&aws, "ops/live_bookings/notes/").await.len(),
        1,
        "what is not a version is never touched"
    );
    assert!(table(&aws, "rastup_silver", &t1).await.is_none(), "fact_payouts' first version table is gone");
    assert!(
        !keys(&aws, &format!("silver/fact_payouts/{v1}/")).await.is_empty(),
        "but its files stay: kept versions read them"
    );
    let (_, rows, _) = standin.strata(
        t.path(),
        &["query", "SELECT count(*) AS n FROM rastup_silver.fact_payouts", "--format", "csv"],
    );
    assert_eq!(rows, "n\n16\n", "and the published table still reads every hour");
    let left: BTreeSet<String> = keys(&aws, "bronze/").await.into_iter().collect();
    assert_eq!(left, bronze_keys.iter().cloned().collect(), "Bronze is never deleted");
    assert!(!history(aws.clone()).await.contains(&live_history[0]), "Glue history past retention is deleted");

    // A scheduled tick in a fresh task (empty state directory) resumes from Glue: Silver
    // and ops are due at 12:15, Gold (at :20) is not, and nothing catches up two days.
    let before_gold = param(&table(&aws, "rastup_gold", "mart_city_daily").await.unwrap(), "strata_version");
    let fresh = tempfile::tempdir().unwrap();
    let out = standin
        .command(t.path())
        .env("STRATA_STATE_DIR", fresh.path())
        .args(["tick", "--at", "2025-11-06T12:15:00Z"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("silver.fact_payouts") && stdout.contains("11-06 11:00 .. 11-06 12:15"),
        "{stdout}"
    );
    assert!(!stdout.contains("gold.mart_city_daily"), "{stdout}");
    let gold = table(&aws, "rastup_gold", "mart_city_daily").await.unwrap();
    assert_eq!(param(&gold, "strata_version"), before_gold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_on_athena_publishes_once_with_the_rows_of_a_direct_run() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_producer_events();
    upload_bronze(&aws, &t).await;
    let (code, out, err) = standin.strata(
        t.path(),
        &["run", "+silver.fact_payouts", "--at", "2025-11-06T08:00:00Z", "--from", "2025-11-06T07:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let v1 = param(&table(&aws, "rastup_silver", "fact_payouts").await.unwrap(), "strata_version");
    let before = statements(&aws).await.len();

    // Three hourly windows; each also computes the next hour (lookback 1), of which only
    // its own hour is kept.
    let (code, out, err) = standin.strata(
        t.path(),
        &[
            "backfill",
            "silver.fact_payouts",
            "--from",
            "2025-11-06T09:00:00Z",
            "--to",
            "2025-11-06T12:00:00Z",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let view = table(&aws, "rastup_silver", "fact_payouts").await.unwrap();
    let vb = param(&view, "strata_version");
    assert_ne!(vb, v1, "the backfill published a new version");
    let parts = partitions(&aws, "rastup_silver", &param(&view, "strata_table")).await;
    let hours: Vec<(String, String)> = parts.iter().map(|(k, v)| (k[1].clone(), v.clone())).collect();
    assert_eq!(hours, [("09".to_string(), vb.clone()), ("10".to_string(), vb.clone())]);
    let left = aws.glue.get_tables().database_name("rastup_silver").send().await.unwrap();
    assert!(
        left.table_list().iter().all(|t| !t.name().contains("__p")),
        "the windows' tables are removed once published"
    );
    let sent = statements(&aws).await;
    let ctas: Vec<&String> =
        sent[before..].iter().map(|(s, _)| s).filter(|s| s.starts_with("CREATE TABLE")).collect();
    assert_eq!(ctas.len(), 3, "one CTAS per window");
    let backfilled = |t: &TestProject| {
        let (code, rows, err) = standin.strata(
            t.path(),
            &[
                "query",
                "SELECT leg_id, status, dt, hour FROM rastup_silver.fact_payouts ORDER BY leg_id, status",
                "--format",
                "csv",
            ],
        );
        assert_eq!(code, 0, "{err}");
        rows
    };
    let after_backfill = backfilled(&t);
    // The same rows as one direct run over the range.
    let (code, out, err) = standin.strata(
        t.path(),
        &["run", "silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-06T09:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(backfilled(&t), after_backfill);
    assert!(after_backfill.lines().count() > 10, "{after_backfill}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_that_fails_on_real_rows_publishes_nothing_and_shows_them() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_producer_events();
    upload_bronze(&aws, &t).await;
    let args =
        ["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-06T08:00:00Z"];
    let (code, out, err) = standin.strata(t.path(), &args);
    assert_eq!(code, 0, "{out}\n{err}");
    let before = param(&table(&aws, "rastup_silver", "fact_payouts").await.unwrap(), "strata_version");
    let path = t.path().join("sql/silver/fact_payouts.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "audits=[",
            "audits=[{'sql': 'SELECT leg_id, amount_cents FROM {{ this }} WHERE amount_cents > 2000'},",
        ),
    )
    .unwrap();
    let (code, out, err) = standin.strata(t.path(), &args[..]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("audit sql failed") && err.contains("L9-0") && err.contains("2550"), "{err}");
    let after = param(&table(&aws, "rastup_silver", "fact_payouts").await.unwrap(), "strata_version");
    assert_eq!(after, before, "the failed version was not published");
}

/// Athena fails a CTAS naming `external_location` in a workgroup that enforces its
/// configuration (Athena docs, "Troubleshoot workgroup errors"); strata refuses before
/// starting any statement and names the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_workgroup_is_refused_naming_the_setting() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, true).await;
    let t = TestProject::shipped();
    let (code, out, err) =
        standin.strata(t.path(), &["run", "silver.fact_payouts", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("EnforceWorkGroupConfiguration") && err.contains("'strata'"), "{err}");
    assert!(statements(&aws).await.is_empty(), "no statement was started");
}

/// One statement may write at most 100 partitions (HIVE_TOO_MANY_OPEN_PARTITIONS; the
/// stand-in fails one that writes more): the result is written once and the table built
/// from it 100 partitions at a time (dbt-athena's `create_table_as_with_partitions`), for a
/// `table` model found to have more and an incremental run known to have more; the
/// model's input is read by one statement only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_past_100_partitions_are_written_once_then_in_chunks() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_producer_events();
    upload_bronze(&aws, &t).await;
    std::fs::write(
        t.path().join("sql/ops/many_parts.sql"),
        "{{ config(materialized='table', partitioned_by=['k']) }}\n\
         SELECT n, n * 2 AS twice, CAST(n AS VARCHAR) AS k FROM UNNEST(sequence(1, 150)) AS t(n)\n",
    )
    .unwrap();
    let (code, out, err) =
        standin.strata(t.path(), &["run", "ops.many_parts", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (_, rows, _) = standin.strata(
        t.path(),
        &[
            "query",
            "SELECT count(*) AS n, count(DISTINCT k) AS k, sum(twice) AS s FROM rastup_ops.many_parts",
            "--format",
            "csv",
        ],
    );
    assert_eq!(rows, "n,k,s\n150,150,22650\n");
    let view = table(&aws, "rastup_ops", "many_parts").await.unwrap();
    assert_eq!(partitions(&aws, "rastup_ops", &param(&view, "strata_table")).await.len(), 150);
    let sent = statements(&aws).await;
    let states: Vec<&str> = sent.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(states[0], "FAILED", "the single CTAS met Athena's limit: {sent:#?}");
    assert!(sent[1].0.contains("many_parts__") && sent[1].0.contains("__result"), "{}", sent[1].0);
    assert!(sent[2].0.starts_with("SELECT DISTINCT \"k\""), "{}", sent[2].0);
    assert!(sent[3].0.starts_with("CREATE TABLE") && sent[4].0.starts_with("INSERT INTO"), "{sent:#?}");

    // An incremental run over 125 hours is chunked from the start (its result has data in
    // two hours: one CTAS from it); Bronze is read by one statement.
    let before = sent.len();
    let (code, out, err) = standin.strata(
        t.path(),
        &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-01T07:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let sent = statements(&aws).await;
    let mine: Vec<&String> =
        sent[before..].iter().map(|(s, _)| s).filter(|s| s.contains("fact_payouts__")).collect();
    assert!(mine.iter().filter(|s| s.contains("bronze_events")).count() == 1, "{mine:#?}");
    assert!(mine[0].contains("__result") && mine[1].starts_with("SELECT DISTINCT"), "{mine:#?}");
    let (_, rows, _) = standin.strata(
        t.path(),
        &["query", "SELECT count(*) AS n FROM rastup_silver.fact_payouts", "--format", "csv"],
    );
    assert_eq!(rows, "n\n15\n");
}

/// Trino reads a view's column types with its type parser, where a row field name must be
/// quoted unless it is a plain identifier (`row("user-agent" varchar)`); the view Athena
/// would find stale or unreadable otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_over_struct_columns_quote_field_names_as_trino_reads_them() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    std::fs::write(
        t.path().join("sql/ops/devices.sql"),
        "{{ config(materialized='table') }}\n\
         SELECT CAST(ROW('ios', 'x/1.0', 'now') AS ROW(os VARCHAR, \"user-agent\" VARCHAR, \"time\" VARCHAR)) AS device, 1 AS n\n",
    )
    .unwrap();
    let (code, out, err) = standin.strata(t.path(), &["run", "ops.devices", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, rows, err) = standin
        .strata(t.path(), &["query", "SELECT device.os, n FROM rastup_ops.devices", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rows, "os,n\nios,1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_queries_in_flight_publishes_nothing_and_exits_within_20_seconds() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    standin.queries_never_finish();
    let t = TestProject::shipped();
    let mut child = standin
        .command(t.path())
        .args(["run", "bronze.events", "--at", "2025-11-06T12:00:00Z"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let ids = aws.athena.list_query_executions().work_group("strata").send().await.unwrap();
        if let Some(id) = ids.query_execution_ids().first() {
            break id.clone();
        }
        assert!(Instant::now() < deadline, "no statement started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let signalled = Instant::now();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(signalled.elapsed() < Duration::from_secs(20), "still running 20 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    let q = aws.athena.get_query_execution().query_execution_id(&id).send().await.unwrap();
    let state = q.query_execution().and_then(|q| q.status()).and_then(|s| s.state()).cloned();
    assert_eq!(state, Some(aws_sdk_athena::types::QueryExecutionState::Cancelled), "{stderr}");
    assert!(table(&aws, "rastup_bronze", "bronze_events").await.is_none(), "nothing was published");
}

// The publish conformance checks of `tests/it/publish.rs`, run on Athena: readers query
// the published view, which the stand-in resolves and runs.

pub(crate) async fn engine(standin: &StandIn) -> Arc<AthenaEngine> {
    let aws = standin.clients();
    provision(&aws, false).await;
    let config = QueryConfig {
        workgroup: "strata".into(),
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..QueryConfig::default()
    };
    Arc::new(AthenaEngine::with_config(
        aws,
        Storage::S3 { bucket: "rastup-data".into(), prefix: String::new() },
        "rastup_ops".into(),
        config,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn athena_readers_never_see_a_partial_version() {
    let standin = StandIn::start();
    crate::publish::readers_never_see_a_partial_version(engine(&standin).await, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_racing_runs_publish_once() {
    let standin = StandIn::start();
    crate::publish::racing_runs_publish_once(engine(&standin).await.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_failed_audit_publishes_nothing() {
    let standin = StandIn::start();
    crate::publish::a_failed_audit_publishes_nothing(engine(&standin).await.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_run_checks_refuse_what_may_not_be_published() {
    let standin = StandIn::start();
    crate::publish::the_run_checks_refuse_what_may_not_be_published(engine(&standin).await.as_ref()).await;
}

/// The stand-in refuses what Athena refuses, so a statement strata sends that Athena would
/// reject fails here too (Athena docs: CTAS considerations, service quotas, workgroups).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_refuses_what_athena_refuses() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let run = |sql: String, workgroup: &'static str| {
        let aws = aws.clone();
        async move {
            let id = match aws
                .athena
                .start_query_execution()
                .query_string(sql)
                .work_group(workgroup)
                .query_execution_context(
                    aws_sdk_athena::types::QueryExecutionContext::builder().database("rastup_ops").build(),
                )
                .send()
                .await
            {
                Ok(out) => out.query_execution_id().unwrap().to_string(),
                Err(e) => return Err(strata::athena::query::api_message(&e)),
            };
            let q = aws.athena.get_query_execution().query_execution_id(&id).send().await.unwrap();
            let status = q.query_execution().unwrap().status().unwrap();
            match status.state() {
                Some(aws_sdk_athena::types::QueryExecutionState::Succeeded) => Ok(()),
                _ => Err(status.state_change_reason().unwrap_or_default().to_string()),
            }
        }
    };
    let ctas = |location: &str, select: &str| {
        format!(
            "CREATE TABLE rastup_ops.t WITH (format = 'PARQUET', external_location = '{location}', partitioned_by = ARRAY['p']) AS {select}"
        )
    };
    put(&aws, "ops/t/used/part-0", b"x").await;
    let err =
        run(ctas("s3://rastup-data/ops/t/used/", "SELECT 1 AS a, 'x' AS p"), "strata").await.unwrap_err();
    assert!(err.starts_with("HIVE_PATH_ALREADY_EXISTS"), "{err}");
    let err = run(ctas("s3://rastup-data/ops/t/a/", "SELECT 'x' AS p, 1 AS a"), "strata").await.unwrap_err();
    assert!(err.starts_with("HIVE_COLUMN_ORDER_MISMATCH"), "{err}");
    let many = "SELECT n AS a, CAST(n AS VARCHAR) AS p FROM UNNEST(sequence(1, 101)) AS t(n)";
    let err = run(ctas("s3://rastup-data/ops/t/b/", many), "strata").await.unwrap_err();
    assert!(err.starts_with("HIVE_TOO_MANY_OPEN_PARTITIONS"), "{err}");
    let long = format!("SELECT 1 AS a /* {} */", "x".repeat(262_144));
    let err = run(long, "strata").await.unwrap_err();
    assert!(err.contains("InvalidRequestException") && err.contains("262144"), "{err}");
    let config = aws_sdk_athena::types::WorkGroupConfiguration::builder()
        .enforce_work_group_configuration(true)
        .build();
    aws.athena.create_work_group().name("enforced").configuration(config).send().await.unwrap();
    let err =
        run(ctas("s3://rastup-data/ops/t/c/", "SELECT 1 AS a, 'x' AS p"), "enforced").await.unwrap_err();
    assert!(err.contains("InvalidRequestException") && err.contains("external_location"), "{err}");
    run(ctas("s3://rastup-data/ops/t/d/", "SELECT 1 AS a, 'x' AS p"), "strata")
        .await
        .expect("a valid CTAS runs");
    assert_eq!(keys(&aws, "ops/t/d/p=x/").await.len(), 1, "its partition's file");
}

/// Missing input on Athena is an empty S3 prefix (a wrong bucket, Firehose not
/// delivering): the run that would replace hours holding data with nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_bronze_prefix_never_replaces_hours_that_had_data() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_producer_events();
    upload_bronze(&aws, &t).await;
    let run =
        ["run", "+silver.fact_payouts", "--at", "2025-11-06T11:00:00Z", "--from", "2025-11-06T09:00:00Z"];
    let (code, out, err) = standin.strata(t.path(), &run);
    assert_eq!(code, 0, "{out}\n{err}");
    let before = param(&table(&aws, "rastup_silver", "fact_payouts").await.unwrap(), "strata_version");
    for key in keys(&aws, "bronze/events/dt=2025-11-06/hour=09/").await {
        aws.s3.delete_object().bucket("rastup-data").key(key).send().await.unwrap();
    }
    let (code, out, err) = standin.strata(t.path(), &run);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("refusing to publish") && err.contains("dt=2025-11-06/hour=09"), "{err}");
    let after = param(&table(&aws, "rastup_silver", "fact_payouts").await.unwrap(), "strata_version");
    assert_eq!(after, before, "nothing was published");
}
