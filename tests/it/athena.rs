//! The Athena engine end to end against moto (started by the harness on a free port, the
//! SDK pointed at it with `AWS_ENDPOINT_URL`): the shipped pipeline published through
//! Glue, the exact statements each model sends, incremental partitions carried over,
//! status, rollback, gc, a tick that resumes from Glue, cancellation on SIGTERM, and the
//! publish conformance checks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_glue::types::Table;
use serde_json::json;
use strata::athena::query::QueryConfig;
use strata::athena::{AthenaEngine, Clients};
use strata::config::Storage;
use strata::engine::Engine;
use strata::project::Audit;

use crate::common::{TestProject, repo, strata_cmd};

/// A moto server (with `tests/moto_athena.py`'s additions) for one test.
pub struct Moto {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub fn start() -> Self {
        let python = std::env::var("STRATA_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("STRATA_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs moto")
        });
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&python)
            .arg(repo().join("tests/moto_athena.py"))
            .arg("--ctas-partitions")
            .arg(dir.path().join("ctas.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {python}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("moto did not print its port: {line:?}"));
        Self { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The partitions the next CTAS of each table writes (what the data would produce).
    pub fn seed_ctas(&self, seeds: serde_json::Value) {
        std::fs::write(self.dir.path().join("ctas.json"), seeds.to_string()).unwrap();
    }

    /// POSTs JSON to moto's own API.
    fn moto_api(&self, path: &str, body: serde_json::Value) {
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

    /// The rows (header first) that the next queries started return, in order.
    pub fn seed_results(&self, results: &[Vec<Vec<&str>>]) {
        let results: Vec<_> = results
            .iter()
            .map(|rows| {
                json!({
                    "rows": rows.iter().map(|r| json!({"Data": r.iter().map(|v| json!({"VarCharValue": v})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                    "column_info": rows.first().map(|h| h.iter().map(|n| json!({"Name": n, "Type": "varchar"})).collect::<Vec<_>>()).unwrap_or_default(),
                })
            })
            .collect();
        self.moto_api("/moto-api/static/athena/query-results", json!({"results": results}));
    }

    /// Athena queries stay queued until stopped.
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
                .force_path_style(true)
                .build(),
        );
        Clients { athena: client!(aws_sdk_athena), glue: client!(aws_sdk_glue), s3 }
    }

    /// The environment a `strata` process needs to use this server as AWS.
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
/// databases and the workgroup.
async fn provision(aws: &Clients) {
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
    aws.athena.create_work_group().name("strata").send().await.unwrap();
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

/// Every statement moto received, in order.
async fn statements(aws: &Clients) -> Vec<String> {
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
        out.extend(got.query_executions().iter().filter_map(|q| q.query().map(str::to_string)));
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

fn hours(day: &str, hours: std::ops::Range<u32>) -> serde_json::Value {
    json!(hours.map(|h| vec![day.to_string(), format!("{h:02}")]).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_pipeline_runs_on_athena_and_publishes_through_glue() {
    let moto = Moto::start();
    let aws = moto.clients();
    provision(&aws).await;
    let t = TestProject::shipped();
    let toml = std::fs::read_to_string(t.path().join("strata.toml")).unwrap();
    std::fs::write(t.path().join("strata.toml"), toml.replace("versions = 3 ", "versions = 2 ")).unwrap();
    // Raw events where Firehose puts them.
    t.write_fixture_events();
    let bronze_root = t.lake();
    let mut bronze_keys = Vec::new();
    for entry in walk(&bronze_root.join("bronze")) {
        let key = entry.strip_prefix(&bronze_root).unwrap().to_string_lossy().into_owned();
        put(&aws, &key, &std::fs::read(&entry).unwrap()).await;
        bronze_keys.push(key);
    }
    assert!(!bronze_keys.is_empty());
    // Leftovers gc must handle: an old prefix no run recorded, and things it must not touch.
    put(&aws, "ops/live_bookings/v20200101T000000000Z-aaaaaa/part-00000.parquet", b"old").await;
    put(&aws, "ops/live_bookings/notes/readme.txt", b"not a version").await;

    // Run 1: four hours of Silver, one day of Gold, the ops tables, Bronze DDL.
    let silver =
        |h: serde_json::Value| json!({"fact_payouts": h, "fact_bookings": h, "fact_search_impressions": h});
    let mut seeds = silver(hours("2025-11-06", 8..12));
    seeds["mart_city_daily"] = json!([["2025-11-06"]]);
    seeds["mart_search_funnel"] = json!([["2025-11-06"]]);
    moto.seed_ctas(seeds);
    let (code, out, err) =
        moto.strata(t.path(), &["run", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-06T08:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Athena statements"), "costs are reported per model: {out}");

    // Bronze: the published external table carries the whole DDL, projection included.
    let bronze = table(&aws, "rastup_bronze", "bronze_events").await.expect("bronze_events in Glue");
    assert_eq!(bronze.table_type(), Some("EXTERNAL_TABLE"));
    assert_eq!(param(&bronze, "projection.enabled"), "true");
    assert!(param(&bronze, "storage.location.template").contains("event=${event_name}"));
    assert_eq!(
        bronze.storage_descriptor().and_then(|s| s.location()),
        Some("s3://rastup-data/bronze/events/")
    );
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

    // Silver: a view over the version table, whose partitions are the run's.
    let view = table(&aws, "rastup_silver", "fact_payouts").await.expect("the view");
    assert_eq!(view.table_type(), Some("VIRTUAL_VIEW"));
    assert!(view.view_original_text().unwrap().starts_with("/* Presto View: "));
    let v1 = param(&view, "strata_version");
    let t1 = param(&view, "strata_table");
    assert_eq!(param(&view, "strata_window_end"), "2025-11-06T12:00:00.000Z");
    let t1_table = table(&aws, "rastup_silver", &t1).await.expect("the version table");
    assert_eq!(
        t1_table.storage_descriptor().and_then(|s| s.location()),
        Some(format!("s3://rastup-data/silver/fact_payouts/{v1}/").as_str())
    );
    let p1 = partitions(&aws, "rastup_silver", &t1).await;
    assert_eq!(p1.len(), 4);
    assert!(p1.values().all(|v| *v == v1));

    // fact_payouts' audits as sent (its CTAS is checked against `render` below).
    let sent: Vec<String> = statements(&aws).await.into_iter().filter(|s| s.contains(&t1)).collect();
    assert_eq!(sent.len(), 3, "CTAS and two audits: {sent:#?}");
    assert!(
        sent[1].starts_with("SELECT * FROM (SELECT * FROM \"rastup_silver\".\"fact_payouts__v"),
        "{}",
        sent[1]
    );
    assert!(
        sent[1].contains("\"leg_id\" IS NULL OR \"status\" IS NULL OR \"received_at\" IS NULL"),
        "{}",
        sent[1]
    );
    assert!(sent[2].contains("NOT IN ('queued', 'paid', 'failed')"), "{}", sent[2]);
    // Every model: what render prints is what was sent, then one statement per audit.
    let all = statements(&aws).await;
    let models = [
        ("bronze.events", "rastup_bronze", "bronze_events", 0),
        ("silver.fact_payouts", "rastup_silver", "fact_payouts", 2),
        ("silver.fact_bookings", "rastup_silver", "fact_bookings", 1),
        ("silver.fact_search_impressions", "rastup_silver", "fact_search_impressions", 1),
        ("gold.mart_city_daily", "rastup_gold", "mart_city_daily", 2),
        ("gold.mart_search_funnel", "rastup_gold", "mart_search_funnel", 1),
        ("ops.live_bookings", "rastup_ops", "live_bookings", 1),
        ("ops.payout_backlog", "rastup_ops", "payout_backlog", 2),
    ];
    for (model, db, name, audits) in models {
        let published = table(&aws, db, name).await.unwrap_or_else(|| panic!("{model} was published"));
        let version = param(&published, "strata_version");
        let version_table = format!("{name}__{}", version.to_lowercase().replace('-', "_"));
        let sent: Vec<&String> = all.iter().filter(|s| s.contains(&version_table)).collect();
        let (code, rendered, err) = moto.strata(
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

    // Bronze DDL; per model its CTAS and one statement per audit.
    assert_eq!(all.len(), 1 + (3 + 2 + 2) + (3 + 2) + (2 + 3), "{all:#?}");
    assert!(all[0].starts_with("CREATE EXTERNAL TABLE `rastup_bronze`.`bronze_events__v"), "{}", all[0]);

    // Runs 2 and 3: five-minute refreshes replace hours 11 and 12 only.
    let mut seeds = silver(hours("2025-11-06", 11..13));
    seeds["mart_city_daily"] = json!([["2025-11-05"], ["2025-11-06"]]);
    seeds["mart_search_funnel"] = json!([["2025-11-05"], ["2025-11-06"]]);
    moto.seed_ctas(seeds);
    for at in ["2025-11-06T12:05:00Z", "2025-11-06T12:10:00Z"] {
        let (code, out, err) = moto.strata(t.path(), &["run", "--at", at]);
        assert_eq!(code, 0, "{out}\n{err}");
    }
    let view = table(&aws, "rastup_silver", "fact_payouts").await.unwrap();
    let v3 = param(&view, "strata_version");
    let p3 = partitions(&aws, "rastup_silver", &param(&view, "strata_table")).await;
    let expected: BTreeMap<Vec<String>, String> = (8..13)
        .map(|h| {
            let v = if h < 11 { v1.clone() } else { v3.clone() };
            (vec!["2025-11-06".to_string(), format!("{h:02}")], v)
        })
        .collect();
    assert_eq!(p3, expected, "hours outside the window point at the files of the version that wrote them");

    // status and rollback.
    let (code, out, err) = moto.strata(t.path(), &["status", "silver.fact_payouts"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&v3) && out.contains("2025-11-06T12:10:00.000Z"), "{out}");
    let live = table(&aws, "rastup_ops", "live_bookings").await.unwrap();
    let live_history: Vec<String> = {
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
        v.into_iter().map(|(_, s)| s).collect()
    };
    assert_eq!(live_history.len(), 3);
    assert_eq!(param(&live, "strata_version"), live_history[2]);
    let (code, out, err) = moto.strata(t.path(), &["rollback", "ops.live_bookings"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let live = table(&aws, "rastup_ops", "live_bookings").await.unwrap();
    assert_eq!(param(&live, "strata_version"), live_history[1], "back to the previous version");
    let live_v1_dir = format!("ops/live_bookings/{}/", live_history[0]);
    assert!(!keys(&aws, &live_v1_dir).await.is_empty());

    // gc with 2 versions kept: the oldest versions go, except files still read.
    let (code, out, err) = moto.strata(t.path(), &["gc"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(keys(&aws, &live_v1_dir).await.is_empty(), "live_bookings' oldest version is deleted: {out}");
    assert!(keys(&aws, "ops/live_bookings/v20200101T000000000Z-aaaaaa/").await.is_empty(), "the orphan too");
    assert_eq!(
        keys(&aws, "ops/live_bookings/notes/").await.len(),
        1,
        "what is not a version is never touched"
    );
    assert!(table(&aws, "rastup_silver", &t1).await.is_none(), "fact_payouts' first version table is gone");
    assert_eq!(
        keys(&aws, &format!("silver/fact_payouts/{v1}/")).await.len(),
        4,
        "but its files stay: the kept versions still read hours 08-10 from them: the kept versions still read them"
    );
    let mut left = BTreeSet::new();
    for k in keys(&aws, "bronze/").await {
        left.insert(k);
    }
    assert_eq!(left, bronze_keys.iter().cloned().collect(), "Bronze is never deleted");
    let out = aws
        .glue
        .get_table_versions()
        .database_name("rastup_ops")
        .table_name("live_bookings")
        .send()
        .await
        .unwrap();
    assert!(
        out.table_versions().iter().all(|tv| param(tv.table().unwrap(), "strata_version") != live_history[0]),
        "Glue history past retention is deleted"
    );

    // A scheduled tick in a fresh task (empty state directory) resumes from Glue: Silver
    // and ops are due at 12:15, Gold (at :20) is not, and nothing catches up two days.
    let before_gold = param(&table(&aws, "rastup_gold", "mart_city_daily").await.unwrap(), "strata_version");
    let fresh = tempfile::tempdir().unwrap();
    let out = moto
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
async fn a_backfill_on_athena_registers_each_windows_unit_and_publishes_once() {
    let moto = Moto::start();
    let aws = moto.clients();
    provision(&aws).await;
    let t = TestProject::shipped();
    moto.seed_ctas(json!({"fact_payouts": hours("2025-11-06", 8..12)}));
    let (code, out, err) = moto.strata(
        t.path(),
        &["run", "silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-06T08:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let v1 = param(&table(&aws, "rastup_silver", "fact_payouts").await.unwrap(), "strata_version");
    let before = statements(&aws).await.len();

    // Three hourly windows; each also computes the next hour (lookback 1), of which only
    // its own unit is kept.
    moto.seed_ctas(json!({
        "*__p2025_11_05_00": hours("2025-11-05", 0..2),
        "*__p2025_11_05_01": hours("2025-11-05", 1..3),
        "*__p2025_11_05_02": hours("2025-11-05", 2..4),
    }));
    let (code, out, err) = moto.strata(
        t.path(),
        &[
            "backfill",
            "silver.fact_payouts",
            "--from",
            "2025-11-05T00:00:00Z",
            "--to",
            "2025-11-05T03:00:00Z",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let view = table(&aws, "rastup_silver", "fact_payouts").await.unwrap();
    let vb = param(&view, "strata_version");
    assert_ne!(vb, v1, "the backfill published a new version");
    let target = param(&view, "strata_table");
    let mut expected: BTreeMap<Vec<String>, String> =
        (0..3).map(|h| (vec!["2025-11-05".to_string(), format!("{h:02}")], vb.clone())).collect();
    expected.extend((8..12).map(|h| (vec!["2025-11-06".to_string(), format!("{h:02}")], v1.clone())));
    assert_eq!(partitions(&aws, "rastup_silver", &target).await, expected);
    let locations: Vec<String> = aws
        .glue
        .get_partitions()
        .database_name("rastup_silver")
        .table_name(&target)
        .send()
        .await
        .unwrap()
        .partitions()
        .iter()
        .filter_map(|p| p.storage_descriptor().and_then(|sd| sd.location()).map(str::to_string))
        .collect();
    assert!(
        locations.contains(&format!(
            "s3://rastup-data/silver/fact_payouts/{vb}/_parts/2025_11_05_01/dt=2025-11-05/hour=01/"
        )),
        "{locations:#?}"
    );
    let left = aws.glue.get_tables().database_name("rastup_silver").send().await.unwrap();
    assert!(
        left.table_list().iter().all(|t| !t.name().contains("__p")),
        "the windows' tables are removed once published"
    );
    let sent = statements(&aws).await;
    let ctas: Vec<&String> = sent[before..].iter().filter(|s| s.starts_with("CREATE TABLE")).collect();
    assert_eq!(ctas.len(), 3, "one CTAS per window");
    assert!(ctas.iter().all(|s| s.contains("/_parts/2025_11_05_0")), "{ctas:#?}");
    assert_eq!(sent.len() - before, 3 + 2, "three windows, then the two audits of the sealed version");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_queries_in_flight_publishes_nothing_and_exits_within_20_seconds() {
    let moto = Moto::start();
    let aws = moto.clients();
    provision(&aws).await;
    moto.queries_never_finish();
    let t = TestProject::shipped();
    let mut child = moto
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

// The publish conformance checks, on Athena. moto does not run SQL, so a reader here is
// what Athena resolves a name to: the view, its version table, and that table's partitions.

async fn engine(moto: &Moto) -> (Arc<AthenaEngine>, Clients) {
    let aws = moto.clients();
    provision(&aws).await;
    moto.seed_ctas(json!({"board": [["0"], ["1"], ["2"]]}));
    let config = QueryConfig {
        workgroup: "strata".into(),
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..QueryConfig::default()
    };
    let engine = AthenaEngine::with_config(
        aws.clone(),
        Storage::S3 { bucket: "rastup-data".into(), prefix: String::new() },
        "rastup_ops".into(),
        config,
    );
    (Arc::new(engine), aws)
}

async fn publish(engine: &AthenaEngine, k: u64) {
    let staged =
        engine.stage(&crate::publish::job(k, vec![])).await.unwrap_or_else(|e| panic!("stage {k}: {e}"));
    engine.audit(&staged).await.unwrap();
    engine.publish(&staged, "2025-01-01T00:00:00.000Z").await.unwrap_or_else(|e| panic!("publish {k}: {e}"));
}

/// What a reader resolves `ops.board` to: the version number, and whether the version
/// table it reads exists with all its partitions.
async fn resolve(aws: &Clients) -> Option<(u64, bool)> {
    let view = table(aws, "rastup_ops", "board").await?;
    let k = u64::from_str_radix(param(&view, "strata_version").rsplit('-').next().unwrap(), 16).unwrap();
    let target = param(&view, "strata_table");
    let complete = table(aws, "rastup_ops", &target).await.is_some()
        && partitions(aws, "rastup_ops", &target).await.len() == 3;
    Some((k, complete))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn athena_readers_never_see_a_partial_version() {
    let moto = Moto::start();
    let (engine, aws) = engine(&moto).await;
    publish(&engine, 0).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (aws, done) = (aws.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let (mut last, mut reads) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let (k, complete) = resolve(&aws).await.expect("the name always resolves");
                assert!(complete, "version {k} was visible before all its partitions were registered");
                assert!(k >= last, "a reader went back from {last} to {k}");
                last = k;
                reads += 1;
            }
            reads
        }));
    }
    for k in 1..=30 {
        publish(&engine, k).await;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut reads = 0;
    for r in readers {
        reads += r.await.expect("reader ran clean");
    }
    assert!(reads > 10, "readers overlapped the publishes ({reads} reads)");
    assert_eq!(resolve(&aws).await, Some((30, true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_racing_runs_publish_once() {
    let moto = Moto::start();
    let (engine, aws) = engine(&moto).await;
    publish(&engine, 1).await;
    let a = engine.stage(&crate::publish::job(2, vec![])).await.unwrap();
    let b = engine.stage(&crate::publish::job(3, vec![])).await.unwrap();
    assert_eq!(a.expected, b.expected, "both planned against the same Glue version");
    engine.publish(&a, "2025-01-01T00:00:01.000Z").await.expect("the first to publish wins");
    let err =
        engine.publish(&b, "2025-01-01T00:00:02.000Z").await.expect_err("the second must not overwrite");
    assert!(err.to_string().contains("publish conflict"), "{err}");
    assert_eq!(resolve(&aws).await, Some((2, true)), "the winner's version, complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_failed_audit_publishes_nothing() {
    let moto = Moto::start();
    let (engine, aws) = engine(&moto).await;
    publish(&engine, 1).await;
    let staged = engine
        .stage(&crate::publish::job(2, vec![Audit::Sql("SELECT * FROM {{ this }} WHERE i >= 20".into())]))
        .await
        .unwrap();
    // What Athena answers to the audit query: the offending row (after the header row).
    moto.seed_results(&[vec![vec!["v", "i", "dt"], vec!["2", "20", "2"]]]);
    let err = engine.audit(&staged).await.expect_err("a row with i >= 20 exists in version 2");
    let text = err.to_string();
    assert!(text.starts_with("audit sql failed"), "{text}");
    assert!(text.contains("| 2 | 20 | 2  |"), "the error shows offending rows: {text}");
    assert_eq!(resolve(&aws).await, Some((1, true)), "version 1 is still the one readers see");

    // max_row_change_pct compares counts of the published and the staged version.
    let staged = engine.stage(&crate::publish::job(12, vec![Audit::MaxRowChangePct(50.0)])).await.unwrap();
    moto.seed_results(&[vec![vec!["_col0"], vec!["21"]], vec![vec!["_col0"], vec!["32"]]]);
    let err = engine.audit(&staged).await.expect_err("52% is more than 50%");
    assert!(err.to_string().contains("the published version has 21 rows, the staged one 32"), "{err}");
}
