//! Reading the Bronze events table from a local lake: values, malformed-line
//! quarantine, partition pruning and DDL errors, as a user of the local engine sees them.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{SessionConfig, SessionContext};
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
WITH SERDEPROPERTIES ('case.insensitive' = 'true', 'ignore.malformed.json' = 'true', 'use.null.for.invalid.data' = 'true')
LOCATION 's3://bucket/bronze/events/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date', 'projection.dt.format' = 'yyyy-MM-dd', 'projection.dt.range' = '2024-01-01,NOW',
  'projection.hour.type' = 'integer', 'projection.hour.range' = '0,23', 'projection.hour.digits' = '2',
  'projection.env.type' = 'enum', 'projection.env.values' = 'prod,staging,dev',
  'projection.event_name.type' = 'enum', 'projection.event_name.values' = 'search.impression,payout.paid',
  'storage.location.template' = 's3://bucket/bronze/events/dt=${dt}/hour=${hour}/env=${env}/event=${event_name}'
);"#;

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
        crate::common::write_gz(path, lines);
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
        r#"{"EVENT":"search.impression","V":"2","Occurred_At":"2025-11-06T17:00:00.5+02:00","User_Id":"u2","City":"Z\u00fcrich","Session_Id":12345,"Device":{"OS":"android"},"Money":{"Amount_Cents":"250"},"Payload":{ "query" : "hat \"big\"", "tags": [ "a b" ] },"extra":{"ignored":true}}"#.to_string(),
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

/// Lines as Athena reads them with the shipped SERDEPROPERTIES (`ignore.malformed.json`,
/// `use.null.for.invalid.data`), following Trino's OpenX reader
/// (`OpenXJsonDeserializer.java:150-180`, TestOpenxJsonFormat `testLine`, `testRow`): every
/// line is a row; one that is not JSON is a row of NULLs, a value that does not convert is
/// NULL, a top-level array fills the columns by position, text after the record is not
/// read. Every line read that way is copied, with why, to the quarantine.
#[tokio::test]
async fn lines_read_as_athena_reads_them_and_quarantined_with_why() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let lines = vec![
        event_line("payout.paid", 1, "u1"),
        r#"{"event":"payout.paid","v":2,"user_id":"#.to_string(),
        "[\"search.impression\",2,3]".to_string(),
        r#"{"event":"payout.paid","v":"three"}"#.to_string(),
        String::new(),
        r#"{"event":"payout.paid","occurred_at":"yesterday"}"#.to_string(),
        event_line("payout.paid", 7, "u7"),
        r#"{"event":"payout.paid","v":8} {"v":9}"#.to_string(),
        r#"{"event":"payout.paid","v":{"major":1},"device":"ios"}"#.to_string(),
    ];
    let file = part_file(&root, "2025-11-06", "15", "prod", "payout.paid");
    let lake = lake_with(DDL, &[(file, lines.clone())], tmp);

    let got = rows(&lake.ctx, "SELECT event, v, occurred_at, user_id, device FROM bronze_events").await;
    let null_row = vec!["NULL"; 5];
    assert_eq!(
        got,
        vec![
            vec!["payout.paid", "1", "2025-11-06T15:04:05.123", "u1", "{ua_hash: h, os: ios, app_ver: 1.2}"],
            null_row.clone(),
            // By position; 3 is seconds since the epoch (fewer than 13 digits).
            vec!["search.impression", "2", "1970-01-01T00:00:03", "NULL", "NULL"],
            vec!["payout.paid", "NULL", "NULL", "NULL", "NULL"],
            null_row,
            vec!["payout.paid", "NULL", "NULL", "NULL", "NULL"],
            vec!["payout.paid", "7", "2025-11-06T15:04:05.123", "u7", "{ua_hash: h, os: ios, app_ver: 1.2}"],
            vec!["payout.paid", "8", "NULL", "NULL", "NULL"],
            // An object for an int and a string for a struct: NULL with use.null.for.invalid.data.
            vec!["payout.paid", "NULL", "NULL", "NULL", "NULL"],
        ]
    );
    let stats = lake.stats.snapshot();
    assert_eq!((stats.rows, stats.malformed_lines, stats.nulled_lines), (9, 2, 4));

    let qfile = lake.quarantine.join("dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-0000.bad.jsonl");
    let first = std::fs::read_to_string(&qfile).unwrap();
    let records: Vec<serde_json::Value> = first.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(u64, &str)> =
        records.iter().map(|r| (r["line"].as_u64().unwrap(), r["read_as"].as_str().unwrap())).collect();
    assert_eq!(
        summary,
        vec![
            (2, "row of NULLs"),
            (4, "row kept"),
            (5, "row of NULLs"),
            (6, "row kept"),
            (8, "row kept"),
            (9, "row kept")
        ]
    );
    for r in &records {
        let n = r["line"].as_u64().unwrap() as usize;
        assert_eq!(r["source"], "dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-0000.json.gz");
        assert_eq!(r["record"], lines[n - 1].as_str(), "the line itself is kept");
    }
    let error = |i: usize| records[i]["error"].as_str().unwrap().to_string();
    assert!(error(0).starts_with("malformed JSON"), "{}", error(0));
    assert_eq!(error(1), "column v: cannot read \"three\" as int");
    assert_eq!(error(2), "an empty line");
    assert_eq!(error(3), "column occurred_at: cannot read \"yesterday\" as timestamp");
    assert_eq!(error(4), "text after the record is not read: \"{\\\"v\\\":9}\"");
    assert!(error(5).contains("column v: an object can not be coerced to int"), "{}", error(5));
    assert!(error(5).contains("column device: \"ios\" can not be coerced to a struct"), "{}", error(5));

    // Whatever the projection, the same rows; a query reading fewer columns keeps what
    // earlier reads found in the quarantine (byte for byte here).
    let count = rows(&lake.ctx, "SELECT count(*) FROM bronze_events").await;
    assert_eq!(count, vec![vec!["9"]]);
    assert_eq!(std::fs::read_to_string(&qfile).unwrap(), first);
    let leftovers: Vec<_> = std::fs::read_dir(qfile.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");
}

/// Lines end where Trino's `TextLineReader` ends them (`TextLineReader.java:243-271`: `\n`,
/// `\r` or `\r\n`; a last line without a terminator counts; an empty line is a row of
/// NULLs; the Python port's `TestSplitLines` pins the same rules), wherever the reads of the
/// file split them: the files are not compressed (read in the reader's chunks as they are),
/// the first lines are shifted by one byte per file so that in some file a `\r` is the last
/// byte of the first read (before a `\n` or not), and one line is longer than a read.
#[tokio::test]
async fn lines_end_at_any_terminator_wherever_reads_split_them() {
    /// Trino's splitting, byte by byte.
    fn reference_lines(content: &[u8]) -> Vec<&[u8]> {
        let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
        while i < content.len() {
            match content[i] {
                b'\n' => {
                    out.push(&content[start..i]);
                    start = i + 1;
                }
                b'\r' => {
                    out.push(&content[start..i]);
                    if content.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        if start < content.len() {
            out.push(&content[start..]);
        }
        out
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let mut files = Vec::new();
    for f in 0..40 {
        let mut content = Vec::new();
        // Shifts everything after it by f bytes.
        content.extend_from_slice(format!("{{\"s\":\"f{f} {}\"}}\n", "x".repeat(f)).as_bytes());
        let mut n = 0;
        let mut line = |content: &mut Vec<u8>, end: &[u8]| {
            n += 1;
            content.extend_from_slice(format!("{{\"s\":\"f{f}-{n}\"}}").as_bytes());
            content.extend_from_slice(end);
        };
        while content.len() < 300_000 {
            line(&mut content, b"\r\n");
            line(&mut content, b"\r");
        }
        for end in [&b"\r"[..], b"\n", b"\r\n", b"\r\r\n", b"\n\n", b"\r\r"] {
            for _ in 0..500 {
                line(&mut content, end);
            }
        }
        content.extend_from_slice(format!("{{\"s\":\"f{f} {}\"}}\r\n", "y".repeat(300_000)).as_bytes());
        for _ in 0..1000 {
            line(&mut content, b"\r");
        }
        if f % 2 == 0 {
            line(&mut content, b""); // the last line has no terminator
        } else {
            line(&mut content, b"\r");
        }
        let path = root.join(format!("dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-{f:04}.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &content).unwrap();
        files.push(content);
    }
    // The reader reads 256 KiB at a time: some file has a `\r\n` split by the first read,
    // some a lone `\r` last in it.
    const CHUNK: usize = 256 << 10;
    assert!(files.iter().any(|c| c[CHUNK - 1] == b'\r' && c[CHUNK] == b'\n'));
    assert!(files.iter().any(|c| c[CHUNK - 1] == b'\r' && c[CHUNK] != b'\n'));
    let ddl = DDL.replace("`event` string,", "`s` string, `event` string,");
    let lake = lake_with(&ddl, &[], tmp);
    let mut got: Vec<String> =
        rows(&lake.ctx, "SELECT s FROM bronze_events").await.into_iter().map(|mut r| r.remove(0)).collect();
    let mut want: Vec<String> = files
        .iter()
        .flat_map(|c| reference_lines(c))
        .map(|l| {
            let l = std::str::from_utf8(l).unwrap();
            match l.strip_prefix("{\"s\":\"") {
                Some(rest) => rest.strip_suffix("\"}").unwrap().to_string(),
                None => "NULL".to_string(),
            }
        })
        .collect();
    assert_eq!(got.len(), want.len());
    got.sort();
    want.sort();
    assert!(got == want, "the rows differ from the lines");
    let stats = lake.stats.snapshot();
    let empty = want.iter().filter(|s| *s == "NULL").count() as u64;
    assert_eq!(stats.malformed_lines, empty, "every empty line is a row of NULLs, noted");
    assert_eq!(stats.uncompressed_bytes, files.iter().map(|c| c.len() as u64).sum::<u64>());
}

/// Without `use.null.for.invalid.data`, Trino fails the query on an object where a scalar
/// column is expected (`OpenXJsonDeserializer.java:277-290`, `invalidJson`; TestOpenxJsonFormat
/// `testIntegralNumber` 665-667), whatever `ignore.malformed.json` says (its try/catch covers
/// parsing only, `OpenXJsonDeserializer.java:159-167`); and without `ignore.malformed.json` a
/// line that is not JSON fails it too. The error names the file and the line.
#[tokio::test]
async fn without_the_lenient_properties_a_bad_value_fails_the_query_naming_file_and_line() {
    for (props, bad, expect) in [
        ("'ignore.malformed.json' = 'true'", r#"{"v":{"major":1}}"#, "can not be coerced to int"),
        ("'use.null.for.invalid.data' = 'true'", r#"{"v":1"#, "malformed JSON"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("bronze/events");
        let ddl = DDL.replace(
            "('case.insensitive' = 'true', 'ignore.malformed.json' = 'true', 'use.null.for.invalid.data' = 'true')",
            &format!("({props})"),
        );
        let lines = vec![event_line("payout.paid", 1, "u1"), bad.to_string()];
        let lake =
            lake_with(&ddl, &[(part_file(&root, "2025-11-06", "15", "prod", "payout.paid"), lines)], tmp);
        let err = lake.ctx.sql("SELECT v FROM bronze_events").await.unwrap().collect().await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-0000.json.gz line 2")
                && text.contains(expect),
            "{text}"
        );
    }
}

/// Partition projection decides which partition values exist for Athena (Athena docs,
/// "Supported types for partition projection"): a directory whose value the projection
/// never produces is not read.
#[tokio::test]
async fn partition_projection_hides_directories_it_never_projects() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let one = |v: i64| vec![event_line("payout.paid", v, "u")];
    let files = vec![
        (part_file(&root, "2025-11-06", "15", "prod", "payout.paid"), one(1)),
        (part_file(&root, "2025-11-06", "15", "qa", "payout.paid"), one(2)),
        (part_file(&root, "2025-11-06", "7", "prod", "payout.paid"), one(3)),
        (part_file(&root, "2025-11-06", "24", "prod", "payout.paid"), one(4)),
        (part_file(&root, "2023-12-31", "15", "prod", "payout.paid"), one(5)),
        (part_file(&root, "2099-01-01", "15", "prod", "payout.paid"), one(6)),
        (part_file(&root, "2025-11-06", "15", "prod", "lbg.other"), one(7)),
    ];
    let lake = lake_with(DDL, &files, tmp);
    let got = rows(&lake.ctx, "SELECT v FROM bronze_events").await;
    assert_eq!(
        got,
        vec![vec!["1"]],
        "only prod, two-digit hours 0-23, days from 2024-01-01 to now, listed events"
    );
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

    // Comparisons of partition columns with text are applied exactly by the listing (no
    // row-by-row filter above the scan); other shapes are pruned on and filtered again.
    // Either way the rows are those of the filter.
    let exact = [
        ("NOT (hour = '15') AND env = 'prod' AND event_name = 'payout.paid'", 4),
        ("hour > '14' AND hour <= '16' AND dt <> '2025-11-05' AND env = 'prod'", 4),
        ("hour IS NOT NULL AND hour NOT IN ('14', '16') AND env = 'staging'", 4),
        ("hour IS NULL", 0),
    ];
    let inexact = [
        ("CAST(hour AS INT) = 15 AND env = 'prod'", 4),
        ("hour = '15' OR v = 1", 9),
        ("upper(env) = 'PROD' AND dt = '2025-11-06' AND hour = '14'", 2),
        ("dt || hour = '2025-11-0514' AND event_name = 'payout.paid'", 2),
    ];
    for (filter, files, row_filter) in
        exact.iter().map(|(f, n)| (f, n, false)).chain(inexact.iter().map(|(f, n)| (f, n, true)))
    {
        let sql = format!(
            "SELECT count(*), count(DISTINCT dt || hour || env || event_name) FROM bronze_events WHERE {filter}"
        );
        let got = rows(&lake.ctx, &sql).await;
        let want_rows = if filter.contains("v = 1") { files * 3 - 2 } else { files * 3 };
        assert_eq!(got[0][0], want_rows.to_string(), "{filter}");
        let plan = rows(&lake.ctx, &format!("EXPLAIN {sql}")).await;
        let physical = plan.iter().find(|r| r[0] == "physical_plan").map(|r| r[1].clone()).unwrap();
        assert_eq!(physical.contains("FilterExec"), row_filter, "{filter}:\n{physical}");
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

/// Equal values; floats within a relative 1e-15 (serde_json's float parsing is not exact).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Number, Object};
    match (a, b) {
        (Number(x), Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Object(x), Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A value of an Arrow array as `tests/athena_standin/openx_dump.py` prints it.
fn plain(array: &dyn datafusion::arrow::array::Array, i: usize) -> serde_json::Value {
    use datafusion::arrow::array::*;
    use serde_json::json;
    if array.is_null(i) {
        return serde_json::Value::Null;
    }
    let float =
        |v: f64| if v.is_finite() { json!(v) } else { json!(format!("{v}").replace("inf", "Infinity")) };
    match array.data_type() {
        DataType::Utf8 => json!(array.as_any().downcast_ref::<StringArray>().unwrap().value(i)),
        DataType::Int32 => json!(array.as_any().downcast_ref::<Int32Array>().unwrap().value(i)),
        DataType::Int64 => json!(array.as_any().downcast_ref::<Int64Array>().unwrap().value(i)),
        DataType::Float64 => float(array.as_any().downcast_ref::<Float64Array>().unwrap().value(i)),
        DataType::Float32 => {
            float(f64::from(array.as_any().downcast_ref::<Float32Array>().unwrap().value(i)))
        }
        DataType::Boolean => json!(array.as_any().downcast_ref::<BooleanArray>().unwrap().value(i)),
        DataType::Date32 => json!(array.as_any().downcast_ref::<Date32Array>().unwrap().value(i)),
        DataType::Timestamp(..) => {
            json!(array.as_any().downcast_ref::<TimestampMillisecondArray>().unwrap().value(i))
        }
        DataType::Decimal128(..) => {
            json!(array.as_any().downcast_ref::<Decimal128Array>().unwrap().value_as_string(i))
        }
        DataType::Struct(fields) => {
            let s = array.as_any().downcast_ref::<StructArray>().unwrap();
            let mut out = serde_json::Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                out.insert(f.name().clone(), plain(c.as_ref(), i));
            }
            serde_json::Value::Object(out)
        }
        DataType::Map(..) => {
            let m = array.as_any().downcast_ref::<MapArray>().unwrap();
            let entries = m.value(i);
            (0..entries.len())
                .map(|j| json!([plain(entries.column(0).as_ref(), j), plain(entries.column(1).as_ref(), j)]))
                .collect()
        }
        DataType::List(_) => {
            let l = array.as_any().downcast_ref::<ListArray>().unwrap().value(i);
            (0..l.len()).map(|j| plain(l.as_ref(), j)).collect()
        }
        other => panic!("no plain form for {other}"),
    }
}

/// Runs `work` on threads with the stack strata's own runtimes give the engine
/// (`cli::EXEC_STACK`): reading a line at the nesting bound recurses deeper than a debug
/// build's frames fit in tokio's default 2 MiB.
fn on_engine_stack<F: Future<Output = ()> + 'static>(work: fn() -> F) {
    const STACK: usize = 256 << 20;
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .unwrap()
                .block_on(work())
        })
        .unwrap()
        .join()
        .unwrap();
}

/// The local reader against the port of Trino's OpenX reader (`tests/athena_standin/openx.py`,
/// written from the Java source and checked against it), line by line: hand-picked lines
/// real producers send or that Trino's tests pin, and a few thousand mutations of an
/// ordinary one. Both must give the same row (or both fail the query) for every line.
/// Lines nested 1,000 deep (the bound) are read by recursion, deeper than a debug build's
/// frames fit in tokio's 2 MiB threads: the test runs on threads with the stack strata's
/// own runtimes have (`cli::EXEC_STACK`).
#[test]
fn odd_lines_read_as_trinos_openx_reader_reads_them() {
    on_engine_stack(odd_lines);
}

async fn odd_lines() {
    let columns = [
        ("s", "string"),
        ("i", "int"),
        ("b", "bigint"),
        ("f", "double"),
        ("r", "float"),
        ("d", "decimal(10,2)"),
        ("ok", "boolean"),
        ("day", "date"),
        ("ts", "timestamp"),
        ("st", "struct<a:string,n:int>"),
        ("m", "map<string,int>"),
        ("arr", "array<string>"),
        ("payload", "string"),
    ];
    let base = r#"{"s":"x y","i":12,"b":-3,"f":1.5,"r":0.25,"d":"7.125","ok":true,"day":"2025-11-06","ts":"2025-11-06T10:00:00.123Z","st":{"a":"q","n":"4"},"m":{"k":1,"K2":2},"arr":["a",1,true],"payload":{"k":"v \"w\"","n":0,"t":true,"arr":[[],{}],"x":1.50}}"#;
    let mut lines: Vec<String> = [
        base,
        // numbers as strings, keys in another case, repeated keys (the last wins)
        r#"{"S":"a","I":"12","B":"0x1F","F":" 2.5 ","R":"1e3","D":10.005,"OK":"TRUE","i":"012","s":"b"}"#,
        // what does not convert is NULL; what Trino truncates or reads leniently is not
        r#"{"i":12.9,"b":"12.9","f":"abc","d":"99999999999","ok":1,"day":"2023-02-30","ts":"yesterday"}"#,
        r#"{"i":" 12 ","b":-12.9,"day":"19000","ts":1577872800,"st":"  ","m":"","arr":"","payload":[1,2]}"#,
        r#"{"ts":"1577872800000","day":"2025-11-06T23:59:59Z","r":"NaN","f":"-Infinity"}"#,
        r#"{"ts":"2025-11-06 10:00:00.5","st":{"A":"upper","n":null},"m":{"a":1,"A":2,"b":"x"}}"#,
        r#"{"ts":"2025-11-06T10:00:00+0530","arr":"single","payload":"text"}"#,
        r#"{"ts":"2025-11-06T10:00:00-05:30","payload":{"a":1e3,"b":-0,"c":"<\/p>","d":"\u00e9","a":2}}"#,
        r#"{"ts":"2025-11-06 10:00:00Z","payload":{"k":1,"K":2}}"#,
        // the common instant form (read without the element parser) at its edges
        r#"{"ts":"2025-02-30T10:00:00Z"}"#,
        r#"{"ts":"2024-02-29t24:00:00.5z"}"#,
        r#"{"ts":"2025-11-06T10:61:99.123456789Z"}"#,
        r#"{"ts":"2025-11-06T10:00:00.1234567891Z"}"#,
        r#"{"ts":"2025-11-06T10:00:00.Z"}"#,
        r#"{"ts":"0000-13-00T00:00:00.000Z"}"#,
        r#"{"ts":"2025-1a-06T10:00:00.000Z"}"#,
        r#"{"ts":"2025-11-06T10:00:00.000 Z"}"#,
        // structural mismatches (NULL with use.null.for.invalid.data)
        r#"{"i":{"x":1},"st":"text","m":[1],"arr":{"o":1},"ok":{"a":1},"s":{"n":1.0}}"#,
        // not an object: NULL rows; arrays by position; lenient syntax
        "",
        "   ",
        "42",
        "\"text\"",
        "null",
        "[\"p\",7]",
        "{a: 1, s: 'single', i = 5; b => 6}",
        "{\"s\":\"x\"} trailing",
        "{\"s\":\"tab\\vquirk\"}",
        "\u{feff}{\"s\":\"bom\"}",
        "{\"s\":",
        "{\"i\":1,}",
        "[1,,2]",
        "{\"s\":\"# not a comment\"} # comment",
        "{/* c */\"s\":\"commented\"}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let alphabet = b"{}[]\",:\\ 0-19.eatrnE+xTZ'=;#";
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let seeds: Vec<String> = lines[..10].to_vec();
    for _ in 0..4000 {
        let mut line = seeds[rand(seeds.len())].as_bytes().to_vec();
        for _ in 0..1 + rand(3) {
            if line.is_empty() {
                line.push(b'{');
            }
            let at = rand(line.len());
            match rand(4) {
                0 if rand(3) == 0 => line.truncate(at),
                1 => {
                    line.remove(at);
                }
                2 => line.insert(at, alphabet[rand(alphabet.len())]),
                _ => line[at] = alphabet[rand(alphabet.len())],
            }
        }
        lines.push(String::from_utf8(line).unwrap());
    }
    // Long strings with an escape, a control character, multi-byte text or the end of the
    // line at every offset: the scanner looks for the end of a string 16 and 8 bytes at a
    // time, so each lands at every position of a block.
    for k in 0..40 {
        let (a, b, e) = ("a".repeat(k), "b".repeat(40 - k), "é".repeat(k));
        lines.push(format!(r#"{{"s":"{a}\"q\"{b}","payload":{{"t":"{a}\u00e9{b}","u":"{e}"}}}}"#));
        lines.push(format!("{{\"s\":\"{a}\t{b}\"}}"));
        lines.push(format!("{{\"s\":\"{e}\u{1}\"}}"));
        lines.push(format!(r#"{{"s":"{a}\q{b}"}}"#));
        lines.push(format!(r#"{{"s":"{e}\"}}"#));
        lines.push(format!(r#"{{"payload":{{"k":"{b}{a}"#));
        lines.push(format!(r#"{{"s":"{e}","payload":["{a}\/{e}"]}}"#));
    }
    // Objects with more keys than are compared one by one (then indexed by a case fold),
    // with keys repeated in another case and the Kelvin sign among them.
    for n in [31, 33, 40, 100] {
        let keys: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
        // FIXME: no long s (U+017F) here: strata's key equality takes it for `s` (Rust's full
        // case mappings) where the port of Trino's reader does not; to be settled.
        let (all, repeats) = (keys.join(","), r#""K7":"again","K9":"kelvin","S":2,"s":3"#);
        lines.push(format!(r#"{{"s":"x","payload":{{{all},{repeats}}},"m":{{{all},{repeats}}}}}"#));
        lines.push(format!(r#"{{"s":"x","payload":{{{all}}},"m":{{{all}}}}}"#));
    }
    // Nesting at Jackson's default maximum depth (1000, jackson-core
    // `StreamReadConstraints.DEFAULT_MAX_DEPTH`) and one past it, at the top and in `payload`
    // (in a string too, where brackets do not nest): the port applies the same bound.
    for depth in [999, 1000, 1001] {
        let (open, close) = ("[".repeat(depth), "]".repeat(depth));
        lines.push(format!("{open}{close}"));
        lines.push(format!(
            r#"{{"s":"x","payload":{}1{}}}"#,
            r#"{"a":"#.repeat(depth - 1),
            "}".repeat(depth - 1)
        ));
        lines.push(format!(r#"{{"s":"{open}","payload":{{"k":"{close}{open}"}}}}"#));
    }
    // The depth is counted on the reader's own tokens: a quote inside an unquoted literal or
    // a comment hides no brackets; brackets in a comment or after the record are not read.
    let (open, close) = ("[".repeat(1001), "]".repeat(1001));
    lines.push(format!(r#"{{"s":it's,"payload":{open}{close}}}"#));
    lines.push(format!(r#"{{"s":"x",/*"*/"payload":{open}{close}}}"#));
    lines.push(format!(r#"{{"s":"x" /* {open} */,"i":1}}"#));
    lines.push(format!(r#"{{"s":"x","i":2}} # {open}"#));
    lines.push(format!(r#"{{"s":"x","payload":[1]}} {open}"#));
    // Month ends of leap and common years (a calendar computation for valid fields, the
    // lenient resolver for the rest): each against the port.
    for (y, m) in [(2000, 2), (1900, 2), (2024, 2), (2100, 2), (2025, 4), (2025, 12), (1, 1), (9998, 12)] {
        for d in [1, 28, 29, 30, 31, 32] {
            lines.push(format!(
                r#"{{"ts":"{y:04}-{m:02}-{d:02}T23:59:59.999999999Z","day":"{y:04}-{m:02}-{d:02}"}}"#
            ));
            lines.push(format!(r#"{{"ts":"{y:04}-{m:02}-{d:02}T00:00:00Z"}}"#));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let file = root.join("part-0.json");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let ddl = format!(
        "CREATE EXTERNAL TABLE t ({}) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' \
         WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true', 'use.null.for.invalid.data' = 'true') LOCATION '/t'",
        columns.iter().map(|(n, t)| format!("`{n}` {t}")).collect::<Vec<_>>().join(", ")
    );
    let lake = lake_with(&ddl, &[], tmp);
    let batches: Vec<RecordBatch> = lake.ctx.sql("SELECT * FROM t").await.unwrap().collect().await.unwrap();
    let mut local = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            local.push(serde_json::Value::Array(b.columns().iter().map(|c| plain(c.as_ref(), i)).collect()));
        }
    }

    let spec = lake._dir.path().join("spec.json");
    std::fs::write(
        &spec,
        serde_json::json!({
            "columns": columns,
            "serde": {"ignore.malformed.json": "true", "use.null.for.invalid.data": "true"},
            "file": file,
        })
        .to_string(),
    )
    .unwrap();
    let python =
        std::env::var("STRATA_TEST_PYTHON").expect("STRATA_TEST_PYTHON: run the suite with scripts/test.sh");
    let out = std::process::Command::new(python)
        .arg(crate::common::repo().join("tests/athena_standin/openx_dump.py"))
        .arg(&spec)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trino: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(local.len(), trino.len(), "one row per line on both sides");
    assert_eq!(trino.len(), lines.len());
    // A few mutations make a year Python's datetime cannot hold; those are not compared.
    let skipped = trino.iter().filter(|t| t.get("unrepresentable").is_some()).count();
    assert!(skipped < 20, "{skipped} lines not compared");
    let trino: Vec<serde_json::Value> = trino.into_iter().map(|t| t["row"].clone()).collect();
    let mut differ = Vec::new();
    for (n, ((l, t), line)) in local.iter().zip(&trino).zip(&lines).enumerate() {
        if !same(l, t) && !t.is_null() {
            differ.push(format!("line {}: {line}\n  local: {l}\n  trino: {t}", n + 1));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} lines read differently:\n{}",
        differ.len(),
        lines.len(),
        differ[..differ.len().min(15)].join("\n")
    );
    let null_rows = trino
        .iter()
        .filter(|r| r.as_array().is_some_and(|r| r.iter().all(serde_json::Value::is_null)))
        .count();
    assert!(
        null_rows > 300 && null_rows < lines.len() - 300,
        "the corpus has both kinds: {null_rows} NULL rows"
    );

    // Only the columns a query reads are converted, as in Trino: the Hive connector creates
    // the line deserializer from the projected columns only, each with its position in the
    // table (`plugin/trino-hive/.../line/LinePageSourceFactory.java`, `projectedReaderColumns`
    // mapped to `new Column(name, type, baseHiveColumnIndex)`), which is what a top-level
    // array's elements are matched by. Each column read alone, and a pair read out of
    // order, equals that column of `SELECT *`.
    let mut projections: Vec<Vec<usize>> = (0..columns.len()).map(|i| vec![i]).collect();
    projections.push(vec![8, 1]);
    for cols in projections {
        let names: Vec<String> = cols.iter().map(|&i| format!("`{}`", columns[i].0)).collect();
        let sql = format!("SELECT {} FROM t", names.join(", "));
        let batches: Vec<RecordBatch> = lake.ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let mut n = 0;
        for b in &batches {
            for r in 0..b.num_rows() {
                for (k, &c) in cols.iter().enumerate() {
                    let alone = plain(b.column(k).as_ref(), r);
                    assert_eq!(alone, local[n][c], "{sql}: line {}: {}", n + 1, lines[n]);
                }
                n += 1;
            }
        }
        assert_eq!(n, lines.len(), "{sql}");
    }
}

/// A value that does not fit a column is noted by the queries that read that column; a
/// query reading other columns does not see it (as on Athena), and what each query found
/// is kept together in the quarantine file.
#[tokio::test]
async fn values_that_do_not_fit_are_noted_by_the_queries_that_read_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    std::fs::create_dir_all(&root).unwrap();
    let lines = [
        r#"{"s":"ok","i":1,"ts":"2025-11-06T10:00:00Z"}"#,
        r#"{"s":"bad int","i":"twelve","ts":"2025-11-06T10:00:00Z"}"#,
        r#"{"s":"bad ts","i":3,"ts":"yesterday"}"#,
        r#"{"s":"not json"#,
    ];
    std::fs::write(root.join("part-0.json"), lines.join("\n") + "\n").unwrap();
    let ddl = "CREATE EXTERNAL TABLE t (`s` string, `i` int, `ts` timestamp) \
               ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' \
               WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true', 'use.null.for.invalid.data' = 'true') \
               LOCATION '/t'";
    let lake = lake_with(ddl, &[], tmp);
    let quarantine = || {
        let dir = lake.quarantine.clone();
        let mut out = Vec::new();
        for e in crate::common::files_under(&dir) {
            for l in std::fs::read_to_string(e).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                out.push((
                    v["line"].as_u64().unwrap(),
                    v["read_as"].as_str().unwrap().to_string(),
                    v["error"].as_str().unwrap().to_string(),
                ));
            }
        }
        out
    };
    let got = rows(&lake.ctx, "SELECT s, i FROM t").await;
    assert_eq!(got.len(), 4);
    let q = quarantine();
    assert!(q.iter().any(|(l, _, e)| *l == 2 && e.contains("column i")), "{q:?}");
    assert!(q.iter().any(|(l, r, _)| *l == 4 && r == "row of NULLs"), "{q:?}");
    assert!(!q.iter().any(|(_, _, e)| e.contains("column ts")), "ts was not read: {q:?}");
    rows(&lake.ctx, "SELECT ts FROM t").await;
    let q = quarantine();
    assert!(q.iter().any(|(l, _, e)| *l == 2 && e.contains("column i")), "kept: {q:?}");
    assert!(q.iter().any(|(l, _, e)| *l == 3 && e.contains("column ts")), "added: {q:?}");
    assert_eq!(q.iter().filter(|(l, _, _)| *l == 4).count(), 1, "each finding once: {q:?}");
    let lines_in_order: Vec<u64> = q.iter().map(|(l, _, _)| *l).collect();
    assert!(lines_in_order.is_sorted(), "{q:?}");
}

/// The Python port of Trino's OpenX reader (the reference `odd_lines_read_as_...` compares
/// with, and what the Athena stand-in reads Bronze with) passes its own tests, each of
/// which mirrors a case of Trino's `TestOpenxJsonFormat` / `TestJsonReader`.
#[test]
fn the_python_port_of_trinos_reader_passes_its_tests() {
    let python =
        std::env::var("STRATA_TEST_PYTHON").expect("STRATA_TEST_PYTHON: run the suite with scripts/test.sh");
    let out = std::process::Command::new(python)
        .args(["-m", "unittest", "-q", "test_openx"])
        .current_dir(crate::common::repo().join("tests/athena_standin"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK"), "{text}");
}

/// `json_extract_scalar(payload, '$.key')` over a Bronze scan is computed by the scan while
/// it reads the line (`MembersInBronzeScan`): every value must be the one the function gives
/// on the `payload` column, whatever producers put there. The same queries run on a session
/// with the rewrite and on one without it, over payloads that take every path through the
/// reader: objects copied as-is, objects Trino writes differently (escapes, repeated keys,
/// whitespace), JSON held in a string, arrays, scalars, NULL and missing payloads, a repeated
/// `payload` key, lines the fast path hands to the reference reader, malformed lines.
#[tokio::test]
async fn payload_members_read_by_the_scan_equal_the_function_on_the_column() {
    use datafusion::execution::SessionStateBuilder;
    use strata::local::bronze::MembersInBronzeScan;

    let payloads = [
        r#"{"k":"v","n":1.50,"b":true,"nul":null,"o":{"k":"inner"},"a":[1,2],"e":-7}"#,
        r#"{"e":1e3,"z":-0,"k":"numbers Trino writes differently"}"#,
        r#"{"K":"upper only","n":"7"}"#,
        r#"{"k":"first","k":"second"}"#,
        r#"{"k":"lower","K":"upper"}"#,
        r#"{"k":"caf\u00e9","n":"\u0031"}"#,
        r#"{"k":"a\/b","n":2}"#,
        r#"{"k":"<\/p>"}"#,
        r#"{"k":"tab\tq\"uote\\ \b\f\n\r","n":2}"#,
        r#"{"k":"x","n":-12.5e-3}"#,
        r#"{ "k" : "spaced" , "n" : [ 1 , 2 ] , "o" : { "k" : 1 } }"#,
        r#""{\"k\":\"in a string\",\"n\":3}""#,
        r#""not json""#,
        r#""""#,
        r#"[{"k":1},2]"#,
        "42",
        "-0.0",
        "true",
        "null",
        "{}",
        r#"{"k":{"deep":[{"k":1}]},"n":[],"e":{}}"#,
        r#"{"n":123456789012345678901234567890,"k":"","e":1E+2}"#,
        r#"{"k":"é ✓ \ud83d\ude00","n":0.000}"#,
        r#"{"k":"x","k2":"y","":"empty key","a":"q"}"#,
    ];
    let mut lines: Vec<String> = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        lines.push(format!(r#"{{"user_id":"u{i}","payload":{p}}}"#));
        // The same payload first on its line, and on a line the fast path gives up on (a
        // struct read from a string), which the reference reader reads whole.
        lines.push(format!(r#"{{"payload":{p},"user_id":"f{i}","v":1}}"#));
        lines.push(format!(r#"{{"user_id":"r{i}","device":"not a struct","payload":{p}}}"#));
    }
    lines.extend(
        [
            r#"{"user_id":"missing"}"#,
            r#"{"user_id":"twice","payload":{"k":"a"},"payload":{"n":1}}"#,
            r#"{"user_id":"twice-ci","payload":{"k":"a"},"PAYLOAD":"{\"k\":\"b\"}"}"#,
            r#"{"user_id":"twice-back","payload":"x","payload":{"k":"c"}}"#,
            r#"{"user_id":"malformed","payload":{"k":"a""#,
            r#"{"user_id":"trailing","payload":{"k":"t"}} junk"#,
            "",
        ]
        .map(String::from),
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let file = part_file(&root, "2025-11-06", "15", "prod", "search.impression");
    let lake = lake_with(DDL, &[(file, lines.clone())], tmp);

    let session = |rewrite: bool| {
        let config = SessionConfig::new().with_target_partitions(2).with_batch_size(7);
        let mut state = SessionStateBuilder::new().with_config(config).with_default_features();
        if rewrite {
            state = state.with_physical_optimizer_rule(Arc::new(MembersInBronzeScan));
        }
        let ctx = SessionContext::new_with_state(state.build());
        strata::local::functions::register(&ctx);
        ctx.register_table("bronze_events", lake.table.clone()).unwrap();
        ctx
    };
    let (with, without) = (session(true), session(false));
    let keys = ["k", "K", "n", "e", "z", "b", "nul", "o", "a", "k2", "", "missing"];
    let members: Vec<String> =
        keys.iter().map(|k| format!("json_extract_scalar(payload, '$[\"{k}\"]') AS \"m_{k}\"")).collect();
    let queries = [
        // Only members of payload: the scan computes them and returns payload as NULLs.
        (format!("SELECT user_id, {} FROM bronze_events", members.join(", ")), true),
        // payload itself read as well, a member in a filter, a two-step path left to the function.
        (
            "SELECT user_id, payload, json_extract_scalar(payload, '$.n') AS n, \
             json_extract_scalar(payload, '$.o.k') AS ok FROM bronze_events \
             WHERE json_extract_scalar(payload, '$.k') IS NOT NULL"
                .to_string(),
            false,
        ),
        // fact_payouts' shape: a struct field read too (DataFusion extracts it in a projection
        // of its own below the filter, which hands on only some columns).
        (
            "SELECT DISTINCT coalesce(money.currency, json_extract_scalar(payload, '$.k')) AS c, \
             json_extract_scalar(payload, '$.n') AS n, user_id FROM bronze_events \
             WHERE json_extract_scalar(payload, '$.k') IS NOT NULL AND received_at IS NULL"
                .to_string(),
            true,
        ),
        // A Silver model's shape: members in expressions, a filter, DISTINCT.
        (
            "SELECT DISTINCT coalesce(city, json_extract_scalar(payload, '$.k')) AS c, \
             TRY_CAST(json_extract_scalar(payload, '$.n') AS DOUBLE) AS n, dt \
             FROM bronze_events WHERE dt = '2025-11-06' AND json_extract_scalar(payload, '$.k') <> 'v'"
                .to_string(),
            true,
        ),
    ];
    for (sql, unread) in &queries {
        let explain = format!("EXPLAIN {sql}");
        let p_with = rows(&with, &explain).await.concat().join("\n");
        let p_without = rows(&without, &explain).await.concat().join("\n");
        assert!(p_with.contains("members=[payload."), "the scan computes the members:\n{p_with}");
        assert_eq!(p_with.contains("unread=[payload]"), *unread, "{sql}:\n{p_with}");
        assert!(!p_without.contains("members="), "{p_without}");
        let (mut a, mut b) = (rows(&with, sql).await, rows(&without, sql).await);
        a.sort();
        b.sort();
        assert!(a.len() > 10, "{sql}: {} rows", a.len());
        assert_eq!(a, b, "{sql}");
    }
    // The corpus reaches the values it is meant to: a member of an object copied as-is, of
    // one Trino writes differently, of JSON held in a string, and NULL for the rest.
    let got = rows(
        &with,
        "SELECT user_id, json_extract_scalar(payload, '$.k'), json_extract_scalar(payload, '$.n') \
         FROM bronze_events WHERE user_id IN ('u0', 'f0', 'r0', 'u3', 'u5', 'u11', 'u14', 'twice', 'missing')",
    )
    .await;
    let mut got: Vec<String> = got.into_iter().map(|r| r.join("|")).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "f0|v|1.50",
            "missing|NULL|NULL",
            "r0|v|1.50",
            "twice|NULL|1",
            "u0|v|1.50",
            "u11|in a string|3",
            "u14|NULL|NULL",
            "u3|second|NULL",
            "u5|café|1",
        ]
    );
}

/// A UTF-8 byte-order mark opening a file is skipped, as Trino's `TextLineReader` skips it
/// (`TextLineReader.java:95`, ported in `tests/athena_standin/openx.py`'s `split_lines`):
/// the first line reads as it would without one; a mark anywhere else stays part of its
/// line. Each file against the port, and one gzip file (the reader sees the decompressed
/// stream).
#[tokio::test]
async fn a_byte_order_mark_opening_a_file_is_skipped_as_trino_skips_it() {
    let bom = "\u{feff}";
    let cases = [
        format!("{bom}{{\"s\":\"first\"}}\n{{\"s\":\"second\"}}\n"),
        bom.to_string(),
        format!("{bom}\n{{\"s\":\"after an empty line\"}}"),
        format!("{bom}\r\n{{\"s\":\"crlf\"}}\r\n"),
        format!("{{\"s\":\"first\"}}\n{bom}{{\"s\":\"second\"}}\n"),
        format!("{bom}{bom}{{\"s\":\"two marks\"}}\n"),
        // Shorter than a mark.
        "{}".to_string(),
    ];
    let python =
        std::env::var("STRATA_TEST_PYTHON").expect("STRATA_TEST_PYTHON: run the suite with scripts/test.sh");
    let ddl = "CREATE EXTERNAL TABLE t (`s` string) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' \
               WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true') LOCATION '/t'";
    let mut read = Vec::new();
    for content in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("bronze/events");
        std::fs::create_dir_all(&root).unwrap();
        let file = root.join("part-0.json");
        std::fs::write(&file, content).unwrap();
        let spec = tmp.path().join("spec.json");
        let spec_json = serde_json::json!({
            "columns": [["s", "string"]],
            "serde": {"ignore.malformed.json": "true"},
            "file": file,
        });
        std::fs::write(&spec, spec_json.to_string()).unwrap();
        let lake = lake_with(ddl, &[], tmp);
        let local: Vec<String> = rows(&lake.ctx, "SELECT s FROM t").await.concat();
        let out = std::process::Command::new(&python)
            .arg(crate::common::repo().join("tests/athena_standin/openx_dump.py"))
            .arg(&spec)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let trino: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["row"][0].as_str().map_or("NULL".to_string(), str::to_string)
            })
            .collect();
        assert_eq!(local, trino, "{content:?}");
        read.push(local);
    }
    // What the port says, spelled out for the first cases.
    assert_eq!(read[0], ["first", "second"]);
    assert!(read[1].is_empty(), "a file holding only the mark has no lines: {:?}", read[1]);
    assert_eq!(read[2], ["NULL", "after an empty line"]);
    assert_eq!(read[3], ["NULL", "crlf"]);

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let lines = [format!("{bom}{{\"s\":\"gz\"}}"), "{\"s\":\"two\"}".to_string()];
    let lake = lake_with(ddl, &[(root.join("part-0.json.gz"), lines.to_vec())], tmp);
    assert_eq!(rows(&lake.ctx, "SELECT s FROM t").await.concat(), ["gz", "two"]);
}

/// One line nested 100,000 levels deep overflowed the stack of every run that read its hour
/// (SIGABRT). A line deeper than Jackson's default maximum nesting depth (1000,
/// jackson-core `StreamReadConstraints.DEFAULT_MAX_DEPTH`: "Depth (N) exceeds the maximum
/// allowed nesting depth") is malformed: a row of NULLs under `ignore.malformed.json`,
/// quarantined with why, the file's other lines read. `odd_lines_...` holds the bound's
/// edges against the port of Trino's reader.
#[tokio::test]
async fn a_line_nested_deeper_than_the_bound_is_a_null_row_quarantined_with_why() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let deep = 100_000;
    let lines = vec![
        event_line("payout.paid", 1, "u1"),
        format!("{}{}", "[".repeat(deep), "]".repeat(deep)),
        format!(
            r#"{{"event":"payout.paid","v":2,"payload":{}1{}}}"#,
            r#"{"a":"#.repeat(deep),
            "}".repeat(deep)
        ),
        format!(r#"{{"event":"payout.paid","v":3,"payload":{}"#, "[".repeat(deep)),
        event_line("payout.paid", 4, "u4"),
    ];
    let file = part_file(&root, "2025-11-06", "15", "prod", "payout.paid");
    let lake = lake_with(DDL, &[(file, lines)], tmp);
    let got = rows(&lake.ctx, "SELECT v, user_id, payload IS NULL, hour FROM bronze_events").await;
    assert_eq!(
        got,
        vec![
            vec!["1", "u1", "false", "15"],
            vec!["NULL", "NULL", "true", "15"],
            vec!["NULL", "NULL", "true", "15"],
            vec!["NULL", "NULL", "true", "15"],
            vec!["4", "u4", "false", "15"],
        ]
    );
    let qfile = lake.quarantine.join("dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-0000.bad.jsonl");
    let records: Vec<serde_json::Value> =
        std::fs::read_to_string(&qfile).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(u64, &str, bool)> = records
        .iter()
        .map(|r| {
            let why = r["error"].as_str().unwrap();
            (
                r["line"].as_u64().unwrap(),
                r["read_as"].as_str().unwrap(),
                why.contains("nested deeper than 1000"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(2, "row of NULLs", true), (3, "row of NULLs", true), (4, "row of NULLs", true)]
    );
}

/// A payload object of 20,000 keys took 16 s to read: every key was compared with every
/// earlier one for the repeated-key check. Past a few keys they are indexed by a case fold;
/// the last of a repeated key still wins.
#[tokio::test]
async fn a_line_with_many_keys_reads_in_time_linear_in_its_length() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let keys: Vec<String> = (0..20_000).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let line = format!(r#"{{"event":"payout.paid","v":1,"payload":{{{},"K5":"last"}}}}"#, keys.join(","));
    let file = part_file(&root, "2025-11-06", "15", "prod", "payout.paid");
    let lake = lake_with(DDL, &[(file, vec![line])], tmp);
    strata::local::functions::register(&lake.ctx);
    let started = std::time::Instant::now();
    let got = rows(
        &lake.ctx,
        "SELECT json_extract_scalar(payload, '$.k19999'), json_extract_scalar(payload, '$.K5'), json_extract_scalar(payload, '$.k5'), length(payload) > 200000 FROM bronze_events",
    )
    .await;
    assert_eq!(got, vec![vec!["19999", "last", "NULL", "true"]]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
}

/// A line could still overflow the stack past the bound: the one-pass check before the
/// reference reader counted brackets outside quotes, but Trino's lenient reader takes a quote
/// inside an unquoted literal (`it's`) or inside a comment (`/*"*/`) as text, so such a line
/// hid a 100,000-deep payload from the check and the reader recursed into all of it; and
/// brackets the reader never reads (in a comment after the record, after the record) made a
/// good line a row of NULLs. The check now follows the reader's own tokens, and the reader
/// counts its depth too. The bound is Jackson's default maximum nesting depth (jackson-core
/// `StreamReadConstraints.DEFAULT_MAX_DEPTH` = 1000: 1000 passes, 1001 fails); Trino's
/// `JsonReader` has none (`JsonReader.java:77-191` recurses once per level, so Athena fails
/// the query on a line deep enough to overflow Java's stack). Lines at the bound are read by
/// recursion: the test runs on threads with the engine's stack (`cli::EXEC_STACK`).
///
/// The JSON functions read JSON text of any depth held in `payload` without recursing, as
/// Trino's streaming `json_extract_scalar` does (`JsonExtract.java`, `skipChildren`; Trino
/// lifts Jackson's read limits, `JsonUtils.jsonFactoryBuilder`); `json_extract` gives NULL for
/// a value nested deeper than the bound (Jackson's `StreamWriteConstraints.DEFAULT_MAX_DEPTH`,
/// 1000, which fails Trino's query).
#[test]
fn lines_that_hid_their_depth_from_the_check_are_null_rows_and_lines_at_the_bound_are_read() {
    on_engine_stack(deep_lines);
}

async fn deep_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let deep = 100_000;
    let arrays = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
    let objects = |d: usize| format!("{}1{}", r#"{"a":"#.repeat(d), "}".repeat(d));
    // An event nested `d` deep in all: its `payload` holds d - 1 levels.
    let in_payload =
        |v: usize, d: usize| format!(r#"{{"event":"payout.paid","v":{v},"payload":{}}}"#, objects(d - 1));
    // An event whose `payload` is a string holding JSON text.
    let text_payload = |v: usize, doc: &str| {
        format!(r#"{{"event":"payout.paid","v":{v},"payload":{}}}"#, serde_json::to_string(doc).unwrap())
    };
    let lines = vec![
        event_line("payout.paid", 1, "u1"),
        arrays(999),
        arrays(1000),
        arrays(1001),
        in_payload(999, 999),
        in_payload(1000, 1000),
        in_payload(1001, 1001),
        format!(r#"{{"event":"payout.paid","v":8,"note":it's,"payload":{}}}"#, arrays(deep)),
        format!(r#"{{"event":"payout.paid","v":9,/*"*/"payload":{}}}"#, objects(deep)),
        format!(r#"{{"event":"payout.paid","v":10}} # {}"#, "[".repeat(1001)),
        format!(r#"{{"event":"payout.paid","v":11,"payload":"x"}} {}"#, "[".repeat(1001)),
        text_payload(12, &format!(r#"{{"deep":{},"k":"found"}}"#, objects(deep))),
        text_payload(13, &arrays(1000)),
        text_payload(14, &arrays(1001)),
        event_line("payout.paid", 15, "u15"),
    ];
    let file = part_file(&root, "2025-11-06", "15", "prod", "payout.paid");
    let lake = lake_with(DDL, &[(file, lines)], tmp);
    let got = rows(&lake.ctx, "SELECT v, event IS NULL, payload IS NULL, hour FROM bronze_events").await;
    let (kept, no_payload, null_row) =
        (["false", "false", "15"], ["false", "true", "15"], ["true", "true", "15"]);
    let expected: Vec<Vec<String>> = [
        ("1", kept),
        // A top-level array fills the columns by position: `event` holds the inner arrays.
        ("NULL", no_payload),
        ("NULL", no_payload),
        ("NULL", null_row),
        ("999", kept),
        ("1000", kept),
        ("NULL", null_row),
        ("NULL", null_row),
        ("NULL", null_row),
        ("10", no_payload),
        ("11", kept),
        ("12", kept),
        ("13", kept),
        ("14", kept),
        ("15", kept),
    ]
    .iter()
    .map(|(v, rest)| std::iter::once(*v).chain(rest.iter().copied()).map(String::from).collect())
    .collect();
    assert_eq!(got, expected);
    let stats = lake.stats.snapshot();
    assert_eq!((stats.rows, stats.malformed_lines, stats.nulled_lines), (15, 4, 2));
    let qfile = lake.quarantine.join("dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-0000.bad.jsonl");
    let records: Vec<serde_json::Value> =
        std::fs::read_to_string(&qfile).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(u64, &str, &str)> = records
        .iter()
        .map(|r| {
            let why = r["error"].as_str().unwrap();
            let why = if why.contains("nested deeper than 1000 levels") {
                "too deep"
            } else if why.starts_with("text after the record is not read") {
                "text after the record"
            } else {
                why
            };
            (r["line"].as_u64().unwrap(), r["read_as"].as_str().unwrap(), why)
        })
        .collect();
    let too_deep = |line: u64| (line, "row of NULLs", "too deep");
    let trailing = |line: u64| (line, "row kept", "text after the record");
    assert_eq!(summary, vec![too_deep(4), too_deep(7), too_deep(8), too_deep(9), trailing(10), trailing(11)]);

    // JSON text of any depth in `payload`, through the functions.
    strata::local::functions::register(&lake.ctx);
    let got = rows(
        &lake.ctx,
        "SELECT json_extract_scalar(payload, '$.k'), json_extract_scalar(payload, '$.deep'), \
         json_extract(payload, '$.deep'), json_extract(payload, '$.k') FROM bronze_events WHERE v = 12",
    )
    .await;
    assert_eq!(got, vec![vec!["found", "NULL", "NULL", "\"found\""]]);
    let got = rows(
        &lake.ctx,
        "SELECT v, json_extract(payload, '$') IS NULL, json_extract_scalar(payload, '$[0]') \
         FROM bronze_events WHERE v IN (13, 14, 999, 1000) ORDER BY v",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec!["13", "false", "NULL"],
            vec!["14", "true", "NULL"],
            vec!["999", "false", "NULL"],
            vec!["1000", "false", "NULL"]
        ]
    );
}

/// The lines of `many_keys_without_ascii_letters_or_repeated_read_in_time_linear_in_the_line`
/// with `n` keys, read: their values, and how long the query took.
async fn many_keys(n: usize) -> (Vec<Vec<String>>, std::time::Duration) {
    // One CJK ideograph per key (no case, no ASCII letter).
    let key = |i: usize| char::from_u32(0x4E00 + i as u32).unwrap();
    let members = (0..n).map(|i| format!(r#""{}":"{i}""#, key(i))).collect::<Vec<_>>().join(",");
    let repeated = (0..n)
        .map(|i| format!(r#""{}":{i}"#, if i % 2 == 0 { "K" } else { "k" }))
        .collect::<Vec<_>>()
        .join(",");
    let lines = vec![
        // Read by the fast path (`payload` copied as-is, `ids` a map)...
        format!(r#"{{"event":"payout.paid","v":1,"payload":{{{members}}},"ids":{{{members}}}}}"#),
        // ... and by the reference reader (an unquoted key).
        format!(r#"{{"event":"payout.paid","v":2,"payload":{{{members}}},"ids":{{{members}}},unquoted:1}}"#),
        // One key repeated in either case: the last stands.
        format!(r#"{{"event":"payout.paid","v":3,"payload":{{{repeated}}}}}"#),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let file = part_file(&tmp.path().join("bronze/events"), "2025-11-06", "15", "prod", "payout.paid");
    let lake = lake_with(DDL, &[(file, lines)], tmp);
    strata::local::functions::register(&lake.ctx);
    let last = key(n - 1);
    let sql = format!(
        "SELECT v, json_extract_scalar(payload, '$[\"{last}\"]'), ids['{last}'], \
         json_extract_scalar(payload, '$.k'), json_extract_scalar(payload, '$.K') FROM bronze_events"
    );
    let started = std::time::Instant::now();
    let got = rows(&lake.ctx, &sql).await;
    (got, started.elapsed())
}

/// 20,000 keys without ASCII letters (one CJK ideograph each) all shared one bucket of the
/// repeated-key index (its fold kept ASCII letters and the four characters that can equal
/// one, and made every other character U+FFFD), so each key was compared with every earlier
/// one; a key repeated 20,000 times was compared with all its earlier, removed occurrences;
/// and a map of many keys read by the reference reader compared each key with every later
/// one. One line costs time linear in its length now: 20,000 keys read in well under 40 times
/// the time of 2,000 (quadratic work takes about 100 times), with the right values.
#[tokio::test]
async fn many_keys_without_ascii_letters_or_repeated_read_in_time_linear_in_the_line() {
    let expected = |n: usize| {
        let last = (n - 1).to_string();
        vec![
            vec!["1".to_string(), last.clone(), last.clone(), "NULL".into(), "NULL".into()],
            vec!["2".to_string(), last.clone(), last.clone(), "NULL".into(), "NULL".into()],
            vec!["3".to_string(), "NULL".into(), "NULL".into(), last, "NULL".into()],
        ]
    };
    let (small, small_took) = many_keys(2_000).await;
    assert_eq!(small, expected(2_000));
    let (big, big_took) = many_keys(20_000).await;
    assert_eq!(big, expected(20_000));
    assert!(
        big_took < small_took * 40 + std::time::Duration::from_secs(5),
        "2,000 keys: {small_took:?}, 20,000 keys: {big_took:?}"
    );
}

/// The repeated-key index must find a key equal to an earlier one in another case whatever
/// their characters: its fold must put every two characters the reader's key equality calls
/// equal (their upper cases or their lower cases agree) in one bucket. Every such pair of
/// Rust's case mappings is a pair of keys after 33 others (past the keys compared one by one)
/// in a map column, in both orders: only the later stands, as Trino's reader keeps the last
/// of equal keys (`JsonReader.java:134-137`: `LinkedHashMap` remove, then put).
#[tokio::test]
async fn a_repeated_key_in_another_case_is_found_among_many_keys_whatever_its_characters() {
    let cased = |c: char| !c.to_uppercase().eq([c]) || !c.to_lowercase().eq([c]);
    let chars: Vec<char> = (0..=0x10FFFF).filter_map(char::from_u32).collect();
    // Characters by their upper case (true) and by their lower case (false).
    let mut groups: std::collections::HashMap<(bool, String), Vec<char>> = std::collections::HashMap::new();
    for &c in chars.iter().filter(|&&c| cased(c)) {
        groups.entry((true, c.to_uppercase().collect())).or_default().push(c);
        groups.entry((false, c.to_lowercase().collect())).or_default().push(c);
    }
    for &c in chars.iter().filter(|&&c| !cased(c)) {
        for by_upper in [true, false] {
            if let Some(g) = groups.get_mut(&(by_upper, c.to_string())) {
                g.push(c);
            }
        }
    }
    let mut pairs = std::collections::BTreeSet::new();
    for g in groups.values() {
        for &a in g {
            for &b in g {
                if a != b {
                    pairs.insert((a, b));
                }
            }
        }
    }
    assert!(pairs.len() > 1000, "{} pairs", pairs.len());
    let others = (0..33).map(|i| format!(r##""#{i}":"x""##)).collect::<Vec<_>>().join(",");
    let lines: Vec<String> = pairs
        .iter()
        .map(|(a, b)| format!(r#"{{"event":"payout.paid","ids":{{{others},"{a}":"first","{b}":"second"}}}}"#))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let file = part_file(&tmp.path().join("bronze/events"), "2025-11-06", "15", "prod", "payout.paid");
    let lake = lake_with(DDL, &[(file, lines.clone())], tmp);
    let got = rows(&lake.ctx, "SELECT ids FROM bronze_events").await;
    assert_eq!(got.len(), lines.len());
    let missed: Vec<String> = got
        .iter()
        .zip(&pairs)
        .filter(|(row, _)| !row[0].contains("second") || row[0].contains("first"))
        .map(|(_, (a, b))| format!("{a:?} (U+{:04X}), {b:?} (U+{:04X})", *a as u32, *b as u32))
        .collect();
    assert!(
        missed.is_empty(),
        "{} of {} pairs not found equal: {:?}",
        missed.len(),
        pairs.len(),
        &missed[..missed.len().min(20)]
    );
}

/// Invalid UTF-8 inside a line became U+FFFD with no note. It still does (Trino's reader
/// replaces it), and the line is in the quarantine saying so.
#[tokio::test]
async fn invalid_utf8_in_a_line_is_replaced_and_noted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let file = part_file(&root, "2025-11-06", "15", "prod", "payout.paid");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut gz =
        flate2::write::GzEncoder::new(std::fs::File::create(&file).unwrap(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"{\"event\":\"payout.paid\",\"user_id\":\"a\xffb\"}\n").unwrap();
    std::io::Write::write_all(&mut gz, event_line("payout.paid", 2, "u2").as_bytes()).unwrap();
    gz.finish().unwrap();
    let lake = lake_with(DDL, &[], tmp);
    let got = rows(&lake.ctx, "SELECT user_id FROM bronze_events").await;
    assert_eq!(got, vec![vec!["a\u{fffd}b"], vec!["u2"]]);
    let qfile = lake.quarantine.join("dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-0000.bad.jsonl");
    let text = std::fs::read_to_string(&qfile).unwrap();
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 1, "{text}");
    assert_eq!((records[0]["line"].as_u64(), records[0]["read_as"].as_str()), (Some(1), Some("row kept")));
    assert!(records[0]["error"].as_str().unwrap().contains("invalid UTF-8"), "{text}");
}

/// A Bronze file whose name is not UTF-8 was skipped silently. No S3 key is anything but
/// UTF-8, so Athena never reads such a file either: it is still not read, and now counted
/// and recorded in the quarantine, named as well as it can be.
#[tokio::test]
async fn a_file_whose_name_is_not_utf8_is_reported_not_skipped_silently() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bronze/events");
    let file = part_file(&root, "2025-11-06", "15", "prod", "payout.paid");
    let odd = file.parent().unwrap().join(std::ffi::OsStr::from_bytes(b"part-\xff.json.gz"));
    let lake = lake_with(
        DDL,
        &[(file, vec![event_line("payout.paid", 1, "u1")]), (odd, vec![event_line("payout.paid", 2, "u2")])],
        tmp,
    );
    let got = rows(&lake.ctx, "SELECT user_id FROM bronze_events").await;
    assert_eq!(got, vec![vec!["u1"]]);
    assert_eq!(lake.stats.snapshot().bad_files, 1, "counted");
    let qfile =
        lake.quarantine.join("dt=2025-11-06/hour=15/env=prod/event=payout.paid/part-\u{fffd}.bad.jsonl");
    let text = std::fs::read_to_string(&qfile).unwrap_or_else(|e| panic!("{}: {e}", qfile.display()));
    assert!(text.contains("the name is not UTF-8") && text.contains("not read"), "{text}");
}
