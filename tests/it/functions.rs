//! The Trino function pack, checked against the examples of Trino's documentation
//! (https://trino.io/docs/current/functions/) by running SQL through DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use strata::local::functions;

fn context() -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
    functions::register(&ctx);
    ctx
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The single value of a one-row, one-column query, as text (`None` for NULL).
async fn value(ctx: &SessionContext, sql: &str) -> Option<String> {
    let batches = rows(ctx, sql).await;
    let batches: Vec<_> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    assert_eq!(batches.len(), 1, "{sql}: expected one batch");
    assert_eq!(batches[0].num_rows(), 1, "{sql}: expected one row");
    let column = batches[0].column(0);
    (!column.is_null(0)).then(|| array_value_to_string(column, 0).unwrap())
}

/// Asserts `SELECT <expr>` for each `(expr, expected)`.
async fn check(ctx: &SessionContext, cases: &[(&str, Option<&str>)]) {
    for (expr, expected) in cases {
        let got = value(ctx, &format!("SELECT {expr}")).await;
        assert_eq!(got.as_deref(), *expected, "{expr}");
    }
}

/// The error message of a query that must fail.
async fn error(ctx: &SessionContext, sql: &str) -> String {
    let result = match ctx.sql(sql).await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => panic!("{sql}: expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Registers `name` as a table split into one partition per batch.
fn table(ctx: &SessionContext, name: &str, columns: Vec<(&str, ArrayRef)>, parts: &[usize]) {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, a)| a).collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays).unwrap();
    let mut partitions = Vec::new();
    let mut offset = 0;
    for len in parts {
        partitions.push(vec![batch.slice(offset, *len)]);
        offset += len;
    }
    assert_eq!(offset, batch.num_rows());
    let provider = MemTable::try_new(schema, partitions).unwrap();
    ctx.register_table(name, Arc::new(provider)).unwrap();
}

/// `(key, value)` rows of a grouped query, ordered by key.
async fn grouped(ctx: &SessionContext, sql: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for batch in rows(ctx, sql).await {
        for row in 0..batch.num_rows() {
            let key = array_value_to_string(batch.column(0), row).unwrap();
            let v = batch.column(1);
            out.push((key, (!v.is_null(row)).then(|| array_value_to_string(v, row).unwrap())));
        }
    }
    out.sort();
    out
}

fn expected(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
}

#[tokio::test]
async fn date_format_follows_trino_examples() {
    let ctx = context();
    check(
        &ctx,
        &[
            ("date_format(TIMESTAMP '2022-10-20 05:10:00', '%m-%d-%Y %H')", Some("10-20-2022 05")),
            (
                "date_format(TIMESTAMP '2001-01-09 09:04:05.321', '%Y-%m-%d %H:%i:%s')",
                Some("2001-01-09 09:04:05"),
            ),
            ("date_format(NULL, '%Y')", None),
            ("date_format(TIMESTAMP '2001-01-09 09:04:05', NULL)", None),
        ],
    )
    .await;
}

#[tokio::test]
async fn date_format_covers_the_specifier_table() {
    let ctx = context();
    let ts = "TIMESTAMP '2001-01-09 13:04:05.321'";
    let cases = [
        ("%a %b %c %d %e", "Tue Jan 1 09 9"),
        ("%f", "321000"),
        ("%H %k %h %I %l %p", "13 13 01 01 1 PM"),
        ("%i %s %S %j", "04 05 05 009"),
        ("%M %W", "January Tuesday"),
        ("%r | %T", "01:04:05 PM | 13:04:05"),
        ("%v %x", "02 2001"),
        ("%y %Y %% %Q", "01 2001 % Q"),
    ];
    for (format, want) in cases {
        let sql = format!("SELECT date_format({ts}, '{format}')");
        assert_eq!(value(&ctx, &sql).await.as_deref(), Some(want), "{format}");
    }
    check(
        &ctx,
        &[
            ("date_format(TIMESTAMP '2001-01-09 00:07:00', '%h %l %p')", Some("12 12 AM")),
            // 2021-01-01 is a Friday in ISO week 53 of 2020.
            ("date_format(TIMESTAMP '2021-01-01 00:00:00', '%x-%v')", Some("2020-53")),
            ("date_format(DATE '2022-10-20', '%Y-%m-%d %H:%i')", Some("2022-10-20 00:00")),
        ],
    )
    .await;
}

#[tokio::test]
async fn date_format_rejects_unsupported_specifiers() {
    let ctx = context();
    for code in ["%D", "%U", "%u", "%V", "%w", "%X"] {
        let sql = format!("SELECT date_format(TIMESTAMP '2001-01-09 09:04:05', '{code}')");
        let message = error(&ctx, &sql).await;
        assert!(message.contains("date_format") && message.contains(code), "{message}");
    }
    let message = error(&ctx, "SELECT date_format('2001-01-09', '%Y')").await;
    assert!(message.contains("date_format: expected a timestamp"), "{message}");
}

#[tokio::test]
async fn date_format_reads_columns_and_zones() {
    let ctx = context();
    let instant = 989_574_905_321; // 2001-05-11T09:55:05.321Z
    table(
        &ctx,
        "t",
        vec![
            ("utc", Arc::new(TimestampMillisecondArray::from(vec![Some(instant), None]))),
            (
                "plus_one",
                Arc::new(TimestampMillisecondArray::from(vec![Some(instant), None]).with_timezone("+01:00")),
            ),
            ("fmt", Arc::new(StringArray::from(vec![Some("%H:%i:%s.%f"), Some("%Y")]))),
        ],
        &[2],
    );
    let got = grouped(
        &ctx,
        "SELECT fmt, date_format(utc, fmt) FROM t UNION ALL \
         SELECT 'zoned', date_format(plus_one, '%H:%i') FROM t WHERE plus_one IS NOT NULL",
    )
    .await;
    let want = [("%H:%i:%s.%f", Some("09:55:05.321000")), ("%Y", None), ("zoned", Some("10:55"))];
    assert_eq!(got, expected(&want));
}

#[tokio::test]
async fn date_parse_follows_trino_examples() {
    let ctx = context();
    check(
        &ctx,
        &[
            ("date_parse('2022/10/20/05', '%Y/%m/%d/%H')", Some("2022-10-20T05:00:00")),
            (
                "date_parse('2001-01-09 09:04:05.321', '%Y-%m-%d %H:%i:%s.%f')",
                Some("2001-01-09T09:04:05.321"),
            ),
            ("date_parse('01:04 PM', '%h:%i %p')", Some("1970-01-01T13:04:00")),
            ("date_parse('12:30 am', '%l:%i %p')", Some("1970-01-01T00:30:00")),
            ("date_parse('69-01-01', '%y-%m-%d')", Some("2069-01-01T00:00:00")),
            ("date_parse('70-01-01', '%y-%m-%d')", Some("1970-01-01T00:00:00")),
            ("date_parse('9 January 2001', '%e %M %Y')", Some("2001-01-09T00:00:00")),
            ("date_parse('tue 9 jan 2001', '%a %e %b %Y')", Some("2001-01-09T00:00:00")),
            ("date_parse('2001-032', '%Y-%j')", Some("2001-02-01T00:00:00")),
            ("date_parse(NULL, '%Y')", None),
        ],
    )
    .await;
    let batches = rows(&ctx, "SELECT date_parse('2022', '%Y') AS t").await;
    let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
    assert_eq!(batches[0].schema().field(0).data_type(), &ms);
}

#[tokio::test]
async fn date_parse_rejects_text_that_does_not_match() {
    let ctx = context();
    for (text, format) in [
        ("2022-13-01", "%Y-%m-%d"),
        ("2021-02-29", "%Y-%m-%d"),
        ("2022-10-20 extra", "%Y-%m-%d"),
        ("2022-10-20", "%Y/%m/%d"),
    ] {
        let message = error(&ctx, &format!("SELECT date_parse('{text}', '{format}')")).await;
        assert!(message.contains("date_parse") && message.contains(text), "{message}");
    }
}

#[tokio::test]
async fn date_add_follows_trino_examples() {
    let ctx = context();
    check(
        &ctx,
        &[
            ("date_add('second', 86, TIMESTAMP '2020-03-01 00:00:00')", Some("2020-03-01T00:01:26")),
            ("date_add('hour', 9, TIMESTAMP '2020-03-01 00:00:00')", Some("2020-03-01T09:00:00")),
            ("date_add('day', -1, TIMESTAMP '2020-03-01 00:00:00')", Some("2020-02-29T00:00:00")),
            // `timestamp '2012-10-31 01:00' + interval '1' month` and its inverse.
            ("date_add('month', 1, TIMESTAMP '2012-10-31 01:00:00')", Some("2012-11-30T01:00:00")),
            ("date_add('month', -1, TIMESTAMP '2012-10-31 01:00:00')", Some("2012-09-30T01:00:00")),
            ("date_add('quarter', 1, TIMESTAMP '2020-11-30 10:00:00')", Some("2021-02-28T10:00:00")),
            ("date_add('WEEK', 2, TIMESTAMP '2020-02-20 00:00:00')", Some("2020-03-05T00:00:00")),
            (
                "date_add('millisecond', 1500, TIMESTAMP '2020-03-01 00:00:00')",
                Some("2020-03-01T00:00:01.500"),
            ),
            ("date_add('day', 2, DATE '2012-08-08')", Some("2012-08-10")),
            ("date_add('year', 1, DATE '2020-02-29')", Some("2021-02-28")),
            ("date_add('day', NULL, DATE '2012-08-08')", None),
        ],
    )
    .await;
    let message = error(&ctx, "SELECT date_add('fortnight', 1, TIMESTAMP '2020-03-01 00:00:00')").await;
    assert!(message.contains("date_add") && message.contains("'fortnight'"), "{message}");
    let message = error(&ctx, "SELECT date_add('hour', 1, DATE '2020-03-01')").await;
    assert!(message.contains("'hour'") && message.contains("date unit"), "{message}");
}

#[tokio::test]
async fn date_add_keeps_the_column_type() {
    let ctx = context();
    table(
        &ctx,
        "t",
        vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
            (
                "ts",
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_580_428_800_000), // 2020-01-31
                    Some(1_580_428_800_000),
                    None,
                ])),
            ),
            ("n", Arc::new(Int64Array::from(vec![Some(1), Some(13), Some(1)]))),
        ],
        &[2, 1],
    );
    let got = grouped(&ctx, "SELECT id, date_add('month', n, ts) FROM t").await;
    let want = [("1", Some("2020-02-29T00:00:00")), ("2", Some("2021-02-28T00:00:00")), ("3", None)];
    assert_eq!(got, expected(&want));
    let batches = rows(&ctx, "SELECT date_add('day', 1, ts) FROM t").await;
    let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
    assert_eq!(batches[0].schema().field(0).data_type(), &ms);
}

#[tokio::test]
async fn date_diff_follows_trino_examples() {
    let ctx = context();
    let ts = |a: &str, b: &str| format!("TIMESTAMP '{a}', TIMESTAMP '{b}'");
    let cases = [
        ("second", ts("2020-03-01 00:00:00", "2020-03-02 00:00:00"), "86400"),
        ("hour", ts("2020-03-01 00:00:00", "2020-03-02 00:00:00"), "24"),
        ("day", "DATE '2020-03-01', DATE '2020-03-02'".to_string(), "1"),
        ("second", ts("2020-06-01 12:30:45.000000000", "2020-06-02 12:30:45.123456789"), "86400"),
        ("millisecond", ts("2020-06-01 12:30:45.000000000", "2020-06-02 12:30:45.123456789"), "86400123"),
        // Truncated toward zero, in both directions.
        ("day", ts("2020-03-02 00:00:00", "2020-03-01 00:00:01"), "0"),
        ("hour", ts("2020-03-02 00:00:00", "2020-03-01 00:30:00"), "-23"),
        // Calendar months: the last day of February reaches the 31st of January.
        ("month", ts("2020-01-31 00:00:00", "2020-02-29 00:00:00"), "1"),
        ("month", ts("2020-01-31 00:00:00", "2020-02-28 00:00:00"), "0"),
        ("month", ts("2020-03-15 12:00:00", "2020-01-15 12:00:01"), "-1"),
        ("quarter", "DATE '2020-01-15', DATE '2020-12-31'".to_string(), "3"),
        ("year", "DATE '2020-02-29', DATE '2021-02-28'".to_string(), "1"),
        ("year", ts("2019-06-01 00:00:00", "2020-05-31 23:59:59"), "0"),
        ("week", "DATE '2020-03-01', DATE '2020-03-15'".to_string(), "2"),
    ];
    for (unit, args, want) in cases {
        let sql = format!("SELECT date_diff('{unit}', {args})");
        assert_eq!(value(&ctx, &sql).await.as_deref(), Some(want), "{sql}");
    }
    let message = error(&ctx, "SELECT date_diff('hour', DATE '2020-03-01', DATE '2020-03-02')").await;
    assert!(message.contains("date_diff") && message.contains("'hour'"), "{message}");
}

#[tokio::test]
async fn from_iso8601_timestamp_normalises_to_utc() {
    let ctx = context();
    check(
        &ctx,
        &[
            ("from_iso8601_timestamp('2020-05-11')", Some("2020-05-11T00:00:00")),
            ("from_iso8601_timestamp('2020-05-11T11:15:05')", Some("2020-05-11T11:15:05")),
            ("from_iso8601_timestamp('2020-05-11T11:15:05.055+01:00')", Some("2020-05-11T10:15:05.055")),
            ("from_iso8601_timestamp('2025-11-06T15:04:05.123Z')", Some("2025-11-06T15:04:05.123")),
            ("from_iso8601_timestamp('2025-11-06T15:04-0230')", Some("2025-11-06T17:34:00")),
            ("from_iso8601_timestamp('2020-123')", Some("2020-05-02T00:00:00")),
            ("from_iso8601_timestamp('2020-W10')", Some("2020-03-02T00:00:00")),
            ("from_iso8601_timestamp(NULL)", None),
        ],
    )
    .await;
    for bad in ["not a date", "2020-05-11 11:15:05", "2020-02-30", "2020-05-11T25:00"] {
        let message = error(&ctx, &format!("SELECT from_iso8601_timestamp('{bad}')")).await;
        assert!(message.contains("from_iso8601_timestamp") && message.contains(bad), "{message}");
    }
}

#[tokio::test]
async fn to_iso8601_formats_dates_and_timestamps() {
    let ctx = context();
    check(
        &ctx,
        &[
            ("to_iso8601(DATE '2020-05-11')", Some("2020-05-11")),
            (
                "to_iso8601(from_iso8601_timestamp('2020-05-11T11:15:05.055+01:00'))",
                Some("2020-05-11T10:15:05.055"),
            ),
            ("to_iso8601(date_parse('2020-05-11', '%Y-%m-%d'))", Some("2020-05-11T00:00:00.000")),
        ],
    )
    .await;
    let instant = 1_589_192_105_055; // 2020-05-11T10:15:05.055Z
    let zoned =
        |tz: &str| Arc::new(TimestampMillisecondArray::from(vec![instant]).with_timezone(tz)) as ArrayRef;
    table(
        &ctx,
        "t",
        vec![("plus_one", zoned("+01:00")), ("utc", zoned("UTC")), ("ny", zoned("America/New_York"))],
        &[1],
    );
    let sql = "SELECT to_iso8601(plus_one) || ' ' || to_iso8601(utc) || ' ' || to_iso8601(ny) FROM t";
    let want = "2020-05-11T11:15:05.055+01:00 2020-05-11T10:15:05.055Z 2020-05-11T06:15:05.055-04:00";
    assert_eq!(value(&ctx, sql).await.as_deref(), Some(want));
}

/// The document of Trino's `JsonExtract` examples.
const STORE: &str = r#"{ "store": { "book": [
    { "category": "reference", "author": "Nigel Rees", "title": "Sayings of the Century",
      "price": 8.95, "contributors": [["Adam", "Levine"], ["Bob", "Strong"]] },
    { "category": "fiction", "author": "Evelyn Waugh", "title": "Sword of Honour",
      "price": 12.99, "isbn": "0-553-21311-3", "last_owner": null } ],
  "bicycle": { "color": "red", "price": 19.95 } } }"#;

#[tokio::test]
async fn json_extract_scalar_follows_trino_examples() {
    let ctx = context();
    let cases = [
        ("$.store.book[0].author", Some("Nigel Rees")),
        ("$.store.bicycle.price", Some("19.95")),
        ("$.store.book[0].isbn", None),
        ("$.store.book[1].last_owner", None),
        ("$.store.book[0].contributors[0][1]", Some("Levine")),
        (r#"$["store"]["book"][0]["author"]"#, Some("Nigel Rees")),
        (r#"$["store"]["bicycle"]["price"]"#, Some("19.95")),
        (r#"$["store"]["book"][0]["contributors"][0][1]"#, Some("Levine")),
        ("$.store[bicycle].color", Some("red")),
        ("$.store.bicycle", None),
        ("$.store.book", None),
        ("$.store.book[5].author", None),
        ("$.store.bicycle.color.shade", None),
    ];
    for (path, want) in cases {
        let sql = format!("SELECT json_extract_scalar('{STORE}', '{path}')");
        assert_eq!(value(&ctx, &sql).await.as_deref(), want, "{path}");
    }
    check(
        &ctx,
        &[
            ("json_extract_scalar('[1, 2, 3]', '$[2]')", Some("3")),
            (r#"json_extract_scalar('{"a": 1.10, "b": true}', '$.a')"#, Some("1.10")),
            (r#"json_extract_scalar('{"a": 1.10, "b": true}', '$.b')"#, Some("true")),
            (r#"json_extract_scalar('{"a": "x\"y\u00e9"}', '$.a')"#, Some("x\"yé")),
            (r#"json_extract_scalar('"abc"', '$')"#, Some("abc")),
            (r#"json_extract_scalar('{"a": 1', '$.a')"#, None),
            ("json_extract_scalar('not json', '$')", None),
            ("json_extract_scalar(NULL, '$.a')", None),
            // The first of duplicate keys wins; escaped keys match; a document with
            // trailing text is not JSON.
            (r#"json_extract_scalar('{"a": 1, "a": 2}', '$.a')"#, Some("1")),
            (r#"json_extract_scalar('{"k\u0065y": 5}', '$.key')"#, Some("5")),
            (r#"json_extract_scalar('{"a": [1, {"b": 7}], "c": {}}', '$.a[1].b')"#, Some("7")),
            (r#"json_extract_scalar('{"a": 1} x', '$.a')"#, None),
            (r#"json_extract_scalar('{"a": {"b": 1}}', '$.a.b.c')"#, None),
        ],
    )
    .await;
    for path in ["store", "$.", "$[", "$.a b", r#"$["a]"#, "$[a"] {
        let sql = format!(r#"SELECT json_extract_scalar('{{"a": 1}}', '{path}')"#);
        let message = error(&ctx, &sql).await;
        assert!(message.contains("invalid json path") && message.contains(path), "{message}");
    }
}

#[tokio::test]
async fn json_extract_returns_compact_json_text() {
    let ctx = context();
    let cases = [
        ("$.store.book[0].author", Some(r#""Nigel Rees""#)),
        ("$.store.bicycle.price", Some("19.95")),
        ("$.store.book[0].isbn", None),
        ("$.store.book[1].last_owner", Some("null")),
        ("$.store.book[0].contributors[0]", Some(r#"["Adam","Levine"]"#)),
        ("$.store.bicycle", Some(r#"{"color":"red","price":19.95}"#)),
        (r#"$["store"]["bicycle"]"#, Some(r#"{"color":"red","price":19.95}"#)),
    ];
    for (path, want) in cases {
        let sql = format!("SELECT json_extract('{STORE}', '{path}')");
        assert_eq!(value(&ctx, &sql).await.as_deref(), want, "{path}");
    }
    table(
        &ctx,
        "events",
        vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3, 4]))),
            (
                "payload",
                Arc::new(StringArray::from(vec![
                    Some(r#"{"user": {"id": 7, "tags": ["a", "b"]}}"#),
                    Some(r#"{"user": {"tags": []}}"#),
                    None,
                    Some("{broken"),
                ])),
            ),
        ],
        &[2, 2],
    );
    let got = grouped(&ctx, "SELECT id, json_extract(payload, '$.user.tags') FROM events").await;
    let want = [("1", Some(r#"["a","b"]"#)), ("2", Some("[]")), ("3", None), ("4", None)];
    assert_eq!(got, expected(&want));
    let got = grouped(&ctx, "SELECT id, json_extract_scalar(payload, '$.user.id') FROM events").await;
    let want = [("1", Some("7")), ("2", None), ("3", None), ("4", None)];
    assert_eq!(got, expected(&want));
}

/// Several keys extracted from one column in one SELECT (each document parsed once for all
/// of them) read exactly what the same calls read on each document alone.
#[tokio::test]
async fn json_extract_scalar_over_a_column_reads_what_it_reads_on_each_document() {
    let ctx = context();
    let docs = [
        Some(r#"{"a": "x", "b": 2, "c": null}"#),
        Some(r#"{"a": 1, "a": 2, "B": "upper"}"#),
        Some(r#"{"k\u0065y": "escaped key", "a": {"n": 1}, "b": [1]}"#),
        Some(r#"{"a": "tab\tand \"quotes\"", "b": 1.50, "c": -0, "d": 1e3}"#),
        Some(r#"{"a": 1} trailing"#),
        Some(r#"{"a": 1"#),
        Some(r#"[{"a": 1}, 2]"#),
        Some(r#""a""#),
        Some("42"),
        Some("not json"),
        Some(""),
        None,
        Some(r#" { "a" : true , "0" : "zero" } "#),
        Some(r#"{"a": "\ud83d\ude00", "b": "\u00e9"}"#),
        Some(r#"{"a": "lone \ud800"}"#),
        Some(r#"{"c": {"a": "nested only"}}"#),
    ];
    let n = docs.len() as i64;
    table(
        &ctx,
        "docs",
        vec![
            ("id", Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()))),
            ("doc", Arc::new(StringArray::from(docs.to_vec()))),
        ],
        &[docs.len()],
    );
    let keys = ["$.a", "$.b", "$.c", "$.d", "$.key", "$.B", "$.0", "$[0]", "$.a.n"];
    for key in keys {
        let got = grouped(&ctx, &format!("SELECT id, json_extract_scalar(doc, '{key}') FROM docs")).await;
        let mut want = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            let literal = match doc {
                Some(d) => format!("'{}'", d.replace('\'', "''")),
                None => "NULL".to_string(),
            };
            want.push((
                i.to_string(),
                value(&ctx, &format!("SELECT json_extract_scalar({literal}, '{key}')")).await,
            ));
        }
        want.sort();
        assert_eq!(got, want, "{key}");
    }
    // All keys in one projection, as a Silver model extracts them.
    let select: Vec<String> = keys.iter().map(|k| format!("json_extract_scalar(doc, '{k}')")).collect();
    let batches = rows(&ctx, &format!("SELECT id, {} FROM docs ORDER BY id", select.join(", "))).await;
    let mut row = 0;
    for batch in &batches {
        for r in 0..batch.num_rows() {
            for (k, key) in keys.iter().enumerate() {
                let v = batch.column(k + 1);
                let got = (!v.is_null(r)).then(|| array_value_to_string(v, r).unwrap());
                let alone =
                    grouped(&ctx, &format!("SELECT id, json_extract_scalar(doc, '{key}') FROM docs")).await;
                let alone = alone.iter().find(|(id, _)| *id == row.to_string()).map(|(_, v)| v.clone());
                assert_eq!(Some(got), alone, "row {row} {key}");
            }
            row += 1;
        }
    }
    assert_eq!(row, docs.len());
    assert_eq!(
        value(&ctx, "SELECT json_extract_scalar(doc, '$.a') FROM docs WHERE id = 0").await.as_deref(),
        Some("x")
    );
}

#[tokio::test]
async fn json_parse_and_json_format_follow_trino_examples() {
    let ctx = context();
    check(
        &ctx,
        &[
            ("json_parse('[1, 2, 3]')", Some("[1,2,3]")),
            (r#"json_parse('"abc"')"#, Some(r#""abc""#)),
            ("json_parse('42')", Some("42")),
            ("json_parse('true')", Some("true")),
            ("json_parse('null')", Some("null")),
            (
                r#"json_parse('{"b": 1, "a": [1, 2.50, 1e3, {"d": null, "c": "x"}]}')"#,
                Some(r#"{"a":[1,2.5,1000.0,{"c":"x","d":null}],"b":1}"#),
            ),
            ("json_format(json_parse('[1, 2, 3]'))", Some("[1,2,3]")),
            (r#"json_format(json_parse('"a"'))"#, Some(r#""a""#)),
            (r#"json_format(json_parse('{"a": 1, "b": 2}'))"#, Some(r#"{"a":1,"b":2}"#)),
            ("json_parse(NULL)", None),
        ],
    )
    .await;
    for bad in ["not_json", r#"["a": 1]"#, "[1, 2"] {
        let message = error(&ctx, &format!("SELECT json_parse('{bad}')")).await;
        assert!(message.contains("json_parse") && message.contains(bad), "{message}");
    }
}

/// A table of four partitions: groups `a`, `b`, `c` spread across them.
fn aggregate_table(ctx: &SessionContext) {
    let g = ["a", "b", "a", "c", "b", "a", "c", "b", "a", "c"];
    let flag =
        [Some(true), Some(false), None, None, Some(true), Some(true), None, Some(true), Some(false), None];
    let x = [Some("a1"), Some("b1"), None, None, Some("b2"), Some("a3"), None, Some("b3"), Some("a4"), None];
    let y = [Some(10), Some(5), Some(99), None, Some(7), Some(30), None, Some(1), None, None];
    table(
        ctx,
        "t",
        vec![
            ("g", Arc::new(StringArray::from(g.to_vec()))),
            ("flag", Arc::new(BooleanArray::from(flag.to_vec()))),
            ("x", Arc::new(StringArray::from(x.to_vec()))),
            ("y", Arc::new(Int64Array::from(y.to_vec()))),
        ],
        &[3, 2, 4, 1],
    );
}

/// The physical plan of a query, as text.
async fn plan(ctx: &SessionContext, sql: &str) -> String {
    let batches = rows(ctx, &format!("EXPLAIN {sql}")).await;
    let plans = batches[0].column(1);
    (0..batches[0].num_rows())
        .map(|row| array_value_to_string(plans, row).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn count_if_counts_true_values_per_group() {
    let ctx = context();
    aggregate_table(&ctx);
    // Partial states from several partitions are merged by a final aggregation.
    let explained = plan(&ctx, "SELECT g, count_if(flag) FROM t GROUP BY g").await;
    assert!(explained.contains("mode=Partial"), "{explained}");
    assert!(explained.contains("mode=FinalPartitioned"), "{explained}");
    let got = grouped(&ctx, "SELECT g, count_if(flag) FROM t GROUP BY g").await;
    assert_eq!(got, expected(&[("a", Some("2")), ("b", Some("2")), ("c", Some("0"))]));
    assert_eq!(value(&ctx, "SELECT count_if(flag) FROM t").await.as_deref(), Some("4"));
    assert_eq!(value(&ctx, "SELECT count_if(flag) FROM t WHERE false").await.as_deref(), Some("0"));
    let got = grouped(&ctx, "SELECT g, count_if(flag) FILTER (WHERE y > 5) FROM t GROUP BY g").await;
    assert_eq!(got, expected(&[("a", Some("2")), ("b", Some("1")), ("c", Some("0"))]));
    // With partial aggregation skipped, rows go straight to state (`convert_to_state`).
    rows(&ctx, "SET datafusion.execution.skip_partial_aggregation_probe_rows_threshold = 1").await;
    rows(&ctx, "SET datafusion.execution.skip_partial_aggregation_probe_ratio_threshold = 0.0").await;
    rows(&ctx, "SET datafusion.execution.batch_size = 2").await;
    let got = grouped(&ctx, "SELECT g, count_if(flag) FROM t GROUP BY g").await;
    assert_eq!(got, expected(&[("a", Some("2")), ("b", Some("2")), ("c", Some("0"))]));
}

#[tokio::test]
async fn arbitrary_returns_a_non_null_value_of_the_group() {
    let ctx = context();
    aggregate_table(&ctx);
    let got = grouped(&ctx, "SELECT g, arbitrary(x) FROM t GROUP BY g").await;
    assert_eq!(got.len(), 3);
    let a = got[0].1.as_deref();
    assert!(matches!(a, Some("a1" | "a3" | "a4")), "{a:?}");
    let b = got[1].1.as_deref();
    assert!(matches!(b, Some("b1" | "b2" | "b3")), "{b:?}");
    assert_eq!(got[2], ("c".to_string(), None));
}

#[tokio::test]
async fn max_by_and_min_by_pick_x_at_the_extreme_y() {
    let ctx = context();
    aggregate_table(&ctx);
    // Group a: y=99 has a NULL x, which is the answer; the row with NULL y is ignored.
    let got = grouped(&ctx, "SELECT g, max_by(x, y) FROM t GROUP BY g").await;
    assert_eq!(got, expected(&[("a", None), ("b", Some("b2")), ("c", None)]));
    let got = grouped(&ctx, "SELECT g, min_by(x, y) FROM t GROUP BY g").await;
    assert_eq!(got, expected(&[("a", Some("a1")), ("b", Some("b3")), ("c", None)]));
    let got = grouped(&ctx, "SELECT g, max_by(y, x) FROM t GROUP BY g").await;
    assert_eq!(got, expected(&[("a", None), ("b", Some("1")), ("c", None)]));
    assert_eq!(value(&ctx, "SELECT max_by(x, y) FROM t WHERE x IS NOT NULL").await.as_deref(), Some("a3"));
    assert_eq!(value(&ctx, "SELECT min_by(g, y) FROM t").await.as_deref(), Some("b"));
}

#[tokio::test]
async fn approx_distinct_is_datafusions_within_trinos_error() {
    let ctx = context();
    let n = 10_000;
    table(
        &ctx,
        "big",
        vec![
            ("k", Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 2)))),
            ("v", Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 5_000)))),
        ],
        &[2_500, 2_500, 2_500, 2_500],
    );
    let total: f64 =
        value(&ctx, "SELECT CAST(approx_distinct(v) AS BIGINT) FROM big").await.unwrap().parse().unwrap();
    assert!((total - 5_000.0).abs() < 5_000.0 * 0.05, "{total}");
    for (k, estimate) in grouped(&ctx, "SELECT k, approx_distinct(v) FROM big GROUP BY k").await {
        let estimate: f64 = estimate.unwrap().parse().unwrap();
        assert!((estimate - 2_500.0).abs() < 2_500.0 * 0.05, "{k}: {estimate}");
    }
}
