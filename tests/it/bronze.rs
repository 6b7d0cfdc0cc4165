//! Reading the Bronze events table from a local lake: values, malformed-line
//! quarantine, partition pruning and DDL errors, as a user of the local engine sees them.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{SessionConfig, SessionContext};
use flate2::Compression;
use flate2::write::GzEncoder;
use strata::local::bronze::{BronzeTable, DdlError, ReadStats, parse_external_table};

const DDL: &str = r#"CREATE EXTERNAL TABLE IF NOT EXISTS `rastup_bronze`.`bronze_events` (
  `event` string, `v` int, `occurred_at` timestamp, `received_at` timestamp,
  `user_id` string, `anon_id` string, `session_id` string, `city` string COMMENT 'may be null',
  `device` struct<ua_hash:string,os:string,app_ver:string>,
  `context` struct<role:string,env:string>,
  `ids` map<string,string>,
  `money` struct<amount_cents:int,currency:string>,
  `payload` string
)
PARTITIONED BY (`dt` string, `hour` string, `env` string, `event_name` string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('case.insensitive' = 'true', 'ignore.malformed.json' = 'false')
LOCATION 's3://bucket/bronze/events/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date', 'projection.dt.format' = 'yyyy-MM-dd', 'projection.dt.range' = '2024-01-01,NOW',
  'projection.hour.type' = 'integer', 'projection.hour.range' = '0,23', 'projection.hour.digits' = '2',
  'projection.env.type' = 'enum', 'projection.env.values' = 'prod,staging,dev',
  'projection.event_name.type' = 'enum', 'projection.event_name.values' = 'search.impression,payout.paid',
  'storage.location.template' = 's3://bucket/bronze/events/dt=${dt}/hour=${hour}/env=${env}/event=${event_name}'
);"#;

fn write_gz(path: &Path, lines: &[String]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
    for line in lines {
        enc.write_all(line.as_bytes()).unwrap();
        enc.write_all(b"\n").unwrap();
    }
    enc.finish().unwrap();
}

fn part_file(root: &Path, dt: &str, hour: &str, env: &str, event: &str) -> std::path::PathBuf {
    root.join(format!("dt={dt}/hour={hour}/env={env}/event={event}/part-0000.json.gz"))
}

fn event_line(event: &str, v: i64, user: &str) -> String {
    format!(
        r#"{{"event":"{event}","v":{v},"occurred_at":"2025-11-06T15:04:05.123Z","received_at":"2025-11-06T15:04:06Z","user_id":"{user}","anon_id":null,"session_id":"s1","device":{{"ua_hash":"h","os":"ios","app_ver":"1.2"}},"context":{{"role":"buyer","env":"prod"}},"ids":{{"listing_id":"L1"}},"money":{{"amount_cents":1500,"currency":"USD"}},"payload":{{"query":"red shoes","results":[1,2]}}}}"#
    )
}

struct Lake {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    quarantine: std::path::PathBuf,
    stats: Arc<ReadStats>,
    ctx: SessionContext,
    table: Arc<BronzeTable>,
}

fn lake_with(ddl: &str, files: &[(std::path::PathBuf, Vec<String>)], tmp: tempfile::TempDir) -> Lake {
    let root = tmp.path().join("bronze/events");
    let quarantine = tmp.path().join("quarantine/bronze_events");
    for (path, lines) in files {
        write_gz(path, lines);
    }
    let stats = ReadStats::new();
    let table = parse_external_table(ddl).unwrap();
    let provider =
        Arc::new(BronzeTable::new(&table, root.clone(), quarantine.clone(), stats.clone()).unwrap());
    let config = SessionConfig::new().with_target_partitions(2).with_batch_size(7);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_table(table.name.as_str(), provider.clone()).unwrap();
    Lake { _dir: tmp, root, quarantine, stats, ctx, table: provider }
}

/// Every value of the query's result as display text (NULL for nulls), row by row.
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches: Vec<RecordBatch> = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in &batches {
        let formatters: Vec<_> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for r in 0..batch.num_rows() {
            out.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

#[tokio::test]
async fn reads_values_payload_and_nested_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let lines = vec![
        event_line("search.impression", 1, "u1"),
        // Mixed-case keys, numeric strings, an offset timestamp, missing fields, unknown ones.
        r#"{"EVENT":"search.impression","V":"2","Occurred_At":"2025-11-06 17:00:00.5+02:00","User_Id":"u2","City":"Z\u00fcrich","Session_Id":12345,"Device":{"OS":"android"},"Money":{"Amount_Cents":"250"},"Payload":{ "query" : "hat \"big\"", "tags": [ "a b" ] },"extra":{"ignored":true}}"#.to_string(),
    ];
    let lake =
        lake_with(DDL, &[(part_file(&root, "2025-11-06", "15", "prod", "search.impression"), lines)], tmp);
    let got = rows(
        &lake.ctx,
        "SELECT event, v, occurred_at, user_id, anon_id, city, session_id, device['os'], \
         get_field(context, 'role'), ids['listing_id'], money['amount_cents'], payload, \
         dt, hour, env, event_name FROM bronze_events ORDER BY v",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec![
                "search.impression",
                "1",
                "2025-11-06T15:04:05.123",
                "u1",
                "NULL",
                "NULL",
                "s1",
                "ios",
                "buyer",
                "L1",
                "1500",
                r#"{"query":"red shoes","results":[1,2]}"#,
                "2025-11-06",
                "15",
                "prod",
                "search.impression",
            ],
            vec![
                "search.impression",
                "2",
                "2025-11-06T15:00:00.500",
                "u2",
                "NULL",
                "Zürich",
                "12345",
                "android",
                "NULL",
                "NULL",
                "250",
                r#"{"query":"hat \"big\"","tags":["a b"]}"#,
                "2025-11-06",
                "15",
                "prod",
                "search.impression",
            ],
        ]
    );
    let stats = lake.stats.snapshot();
    assert_eq!((stats.files_read, stats.rows, stats.malformed_lines), (1, 2, 0));
    assert!(stats.uncompressed_bytes > 0 && stats.compressed_bytes > 0);
    assert!(!lake.quarantine.exists(), "no quarantine without malformed lines");
}

#[tokio::test]
async fn malformed_lines_are_quarantined_and_valid_rows_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let lines = vec![
        event_line("payout.paid", 1, "u1"),
        r#"{"event":"payout.paid","v":2,"user_id":"#.to_string(),
        "[1,2,3]".to_string(),
        r#"{"event":"payout.paid","v":"three"}"#.to_string(),
        String::new(),
        r#"{"event":"payout.paid","occurred_at":"yesterday"}"#.to_string(),
        event_line("payout.paid", 7, "u7"),
        r#"{"event":"payout.paid","v":8} {"v":9}"#.to_string(),
    ];
    let file = part_file(&root, "2025-11-06", "15", "prod", "payout.paid");
    let lake = lake_with(DDL, &[(file, lines.clone())], tmp);

    // The query succeeds and returns every valid row of the file.
    let got = rows(&lake.ctx, "SELECT user_id, v FROM bronze_events ORDER BY v").await;
    assert_eq!(got, vec![vec!["u1", "1"], vec!["u7", "7"]]);
    assert_eq!(lake.stats.snapshot().malformed_lines, 5);

    let qfile = lake.quarantine.join("dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-0000.bad.jsonl");
    let first = std::fs::read_to_string(&qfile).unwrap();
    let records: Vec<serde_json::Value> = first.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let line_numbers: Vec<u64> = records.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(line_numbers, vec![2, 3, 4, 6, 8]);
    for r in &records {
        let n = r["line"].as_u64().unwrap() as usize;
        assert_eq!(r["source"], "dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-0000.json.gz");
        assert_eq!(r["record"], lines[n - 1].as_str());
        assert!(!r["error"].as_str().unwrap().is_empty());
    }
    assert!(records[1]["error"].as_str().unwrap().contains("object"));
    assert!(records[2]["error"].as_str().unwrap().contains("column v"));
    assert!(records[3]["error"].as_str().unwrap().contains("occurred_at"));
    assert!(records[4]["error"].as_str().unwrap().contains("trailing"));

    // Whatever the projection, the same lines are malformed and the file is rewritten identically.
    let count = rows(&lake.ctx, "SELECT count(*) FROM bronze_events").await;
    assert_eq!(count, vec![vec!["2"]]);
    assert_eq!(std::fs::read_to_string(&qfile).unwrap(), first);
    assert_eq!(lake.stats.snapshot().malformed_lines, 10);
    let leftovers: Vec<_> = std::fs::read_dir(qfile.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");
}

fn pruning_lake() -> Lake {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let mut files = Vec::new();
    let mut v = 0;
    for dt in ["2025-11-05", "2025-11-06"] {
        for hour in ["14", "15", "16"] {
            for env in ["prod", "staging"] {
                for event in ["search.impression", "payout.paid"] {
                    let lines = (0..3)
                        .map(|_| {
                            v += 1;
                            event_line(event, v, "u")
                        })
                        .collect();
                    files.push((part_file(&root, dt, hour, env, event), lines));
                }
            }
        }
    }
    lake_with(DDL, &files, tmp)
}

#[tokio::test]
async fn partition_filters_prune_directories() {
    let lake = pruning_lake();
    let cases = [
        ("dt = '2025-11-06' AND hour IN ('14','15') AND env = 'prod'", 4),
        ("(dt = '2025-11-05' AND hour = '14') OR (dt = '2025-11-06' AND hour = '16')", 8),
        ("event_name = 'payout.paid' AND env <> 'prod'", 6),
        ("dt >= '2025-11-06' AND env = 'staging' AND event_name LIKE 'search%'", 3),
        ("1 = 1", 24),
    ];
    for (filter, files) in cases {
        lake.stats.reset();
        let got = rows(
            &lake.ctx,
            &format!("SELECT count(*), count(DISTINCT dt || hour || env || event_name) FROM bronze_events WHERE {filter}"),
        )
        .await;
        assert_eq!(got, vec![vec![(files * 3).to_string(), files.to_string()]], "{filter}");
        assert_eq!(lake.stats.snapshot().files_read, files as u64, "{filter}");
    }

    // A filter mixing partition and data columns still prunes on its partition part.
    lake.stats.reset();
    let got = rows(
        &lake.ctx,
        "SELECT count(*) FROM bronze_events WHERE dt = '2025-11-05' AND hour = '15' AND v > 0",
    )
    .await;
    assert_eq!(got, vec![vec!["12"]]);
    assert_eq!(lake.stats.snapshot().files_read, 4);

    // The pruned file list is available without running a query.
    let state = lake.ctx.state();
    let filter = datafusion::prelude::col("env")
        .eq(datafusion::prelude::lit("prod"))
        .and(datafusion::prelude::col("hour").eq(datafusion::prelude::lit("16")));
    let files = lake.table.list_files(&state, &[filter]).unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.relative_path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "dt=2025-11-05/hour=16/env=prod/event=payout.paid/part-0000.json.gz",
            "dt=2025-11-05/hour=16/env=prod/event=search.impression/part-0000.json.gz",
            "dt=2025-11-06/hour=16/env=prod/event=payout.paid/part-0000.json.gz",
            "dt=2025-11-06/hour=16/env=prod/event=search.impression/part-0000.json.gz",
        ]
    );
    assert!(files[0].path.starts_with(&lake.root));
}

#[tokio::test]
async fn scans_many_batches_in_parallel_and_honours_limit() {
    let lake = pruning_lake();
    let got = rows(&lake.ctx, "SELECT count(*), sum(v), min(v), max(v) FROM bronze_events").await;
    assert_eq!(got, vec![vec!["72", "2628", "1", "72"]]);
    let limited = rows(&lake.ctx, "SELECT v FROM bronze_events LIMIT 5").await;
    assert_eq!(limited.len(), 5);
}

#[tokio::test]
async fn hive_layout_without_template() {
    let ddl = "create external table events (event string, v bigint, tags array<string>, \
               amount decimal(10,2), ok boolean, day date)\n\
               partitioned by (dt string, hour string)\n\
               row format serde 'org.openx.data.jsonserde.JsonSerDe'\n\
               location 'file:///somewhere/bronze/events/'";
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let lines = vec![
        r#"{"event":"a","v":5,"tags":["x","y"],"amount":"12.345","ok":true,"day":"2025-11-06"}"#.to_string(),
        r#"{"event":"b","v":6,"tags":null,"amount":-1.5,"ok":"FALSE"}"#.to_string(),
    ];
    let lake = lake_with(
        ddl,
        &[
            (root.join("dt=2025-11-06/hour=01/part-1.json.gz"), lines),
            (root.join("dt=2025-11-07/hour=01/part-1.json.gz"), vec![]),
        ],
        tmp,
    );
    let got =
        rows(&lake.ctx, "SELECT event, v, tags, amount, ok, day, dt, hour FROM events ORDER BY event").await;
    assert_eq!(
        got,
        vec![
            vec!["a", "5", "[x, y]", "12.35", "true", "2025-11-06", "2025-11-06", "01"],
            vec!["b", "6", "NULL", "-1.50", "false", "NULL", "2025-11-06", "01"],
        ]
    );
}

#[test]
fn ddl_parses_into_arrow_schema_and_properties() {
    let t = parse_external_table(DDL).unwrap();
    assert_eq!(t.database.as_deref(), Some("rastup_bronze"));
    assert_eq!(t.name, "bronze_events");
    assert_eq!(t.partition_columns, ["dt", "hour", "env", "event_name"]);
    assert_eq!(t.location.as_deref(), Some("s3://bucket/bronze/events/"));
    assert_eq!(t.serde.as_deref(), Some("org.openx.data.jsonserde.JsonSerDe"));
    assert_eq!(t.serde_properties["case.insensitive"], "true");
    assert_eq!(t.table_properties["projection.hour.digits"], "2");
    let schema = &t.columns;
    assert_eq!(schema.fields().len(), 13);
    assert_eq!(schema.field(1).data_type(), &DataType::Int32);
    assert_eq!(schema.field(2).data_type(), &DataType::Timestamp(TimeUnit::Millisecond, None));
    assert!(matches!(schema.field(8).data_type(), DataType::Struct(f) if f.len() == 3));
    assert!(matches!(schema.field(10).data_type(), DataType::Map(..)));

    let t = parse_external_table(
        "CREATE TABLE x (a decimal(12,3), b array<struct<`k`:bigint, v:double>>, c float, d date)",
    )
    .unwrap();
    assert_eq!(t.columns.field(0).data_type(), &DataType::Decimal128(12, 3));
    assert!(matches!(t.columns.field(1).data_type(), DataType::List(_)));
    assert_eq!(t.columns.field(2).data_type(), &DataType::Float32);
    assert_eq!(t.columns.field(3).data_type(), &DataType::Date32);
}

#[test]
fn ddl_errors_name_the_position() {
    let err = |ddl: &str| -> DdlError { parse_external_table(ddl).unwrap_err() };

    let e = err("CREATE EXTERNAL TABLE t (\n  a string,\n  b struct<x:int,>\n)");
    assert_eq!(e.position(), (3, 18));
    assert!(e.to_string().starts_with("3:18: expected struct field name"), "{e}");

    let e = err("CREATE TABLE t (a uniontype<int,string>)");
    assert_eq!(e.position(), (1, 19));
    assert!(e.to_string().contains("unsupported column type `uniontype`"), "{e}");

    let e = err("CREATE TABLE t (a int)\nLOCATION 's3://x/");
    assert_eq!(e.position(), (2, 10));
    assert!(e.to_string().contains("unterminated string literal"), "{e}");

    let e = err("CREATE TABLE t (a int");
    assert!(e.to_string().starts_with("1:22: expected ',' or ')'"), "{e}");

    let e = err("CREATE TABLE t (a int) STORED BY 'x'");
    assert_eq!(e.position(), (1, 31));

    let e = err("CREATE TABLE t (a int) PARTITIONED BY (a string)");
    assert!(e.to_string().contains("duplicate column `a`"), "{e}");
}

#[tokio::test]
async fn malformed_lines_match_a_strict_json_parser() {
    // Mutated lines are malformed exactly when they are not a JSON object, and
    // string columns hold the same JSON as the source.
    let base = r#"{"a":"x y","b":[1,-2.5e3,{"c":null}],"payload":{"k":"v \"w\"","n":0,"t":true,"arr":[[],{}]},"z":{"y":["q"]}}"#;
    let alphabet = b"{}[]\",:\\ 0-1.eatrn\t";
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut lines = Vec::new();
    for _ in 0..3000 {
        let mut line = base.as_bytes().to_vec();
        for _ in 0..1 + rand(2) {
            let at = rand(line.len());
            match rand(4) {
                0 => line.truncate(at),
                1 => {
                    line.remove(at);
                }
                2 => line.insert(at, alphabet[rand(alphabet.len())]),
                _ => line[at] = alphabet[rand(alphabet.len())],
            }
            if line.is_empty() {
                line.push(b'x');
            }
        }
        lines.push(String::from_utf8(line).unwrap());
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let lake = lake_with(
        "CREATE EXTERNAL TABLE fz (a string, b string, payload string) LOCATION '/fz'",
        &[(root.join("part-0.json.gz"), lines.clone())],
        tmp,
    );
    let got = rows(&lake.ctx, "SELECT a, b, payload FROM fz").await;
    let expected: Vec<&String> = lines
        .iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
        .collect();
    assert_eq!(got.len(), expected.len());
    let bad = lines.len() - expected.len();
    assert_eq!(lake.stats.snapshot().malformed_lines, bad as u64);
    assert!(bad > 1000 && expected.len() > 300, "{bad} malformed");
    for (row, line) in got.iter().zip(expected) {
        let source: serde_json::Value = serde_json::from_str(line).unwrap();
        for (i, key) in ["a", "b", "payload"].iter().enumerate() {
            let have = &row[i];
            match &source[*key] {
                serde_json::Value::Null => assert_eq!(have, "NULL", "{line}"),
                serde_json::Value::String(s) => assert_eq!(have, s, "{line}"),
                serde_json::Value::Number(n) => {
                    assert_eq!(have.parse::<f64>().ok(), n.as_f64(), "{line}")
                }
                nested => {
                    let parsed: serde_json::Value = serde_json::from_str(have).unwrap();
                    assert_eq!(&parsed, nested, "{line}");
                }
            }
        }
    }
}
