//! `strata test`: model unit tests from `sql/<layer>/<name>.tests.toml`, on the embedded
//! engine and on the Athena stand-in, with readable failures and located file errors.

use crate::common::{TestProject, strata};

#[test]
fn the_shipped_models_tests_pass_in_milliseconds_and_touch_no_lake() {
    let t = TestProject::shipped();
    let (code, out, err) = strata(t.path(), &["test"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let summary = out.lines().last().unwrap_or_default();
    let n: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 20, "every shipped model has tests: {out}");
    assert!(summary.contains(&format!("{n} passed, 0 failed, 0 errors")), "{out}");
    for model in [
        "silver.fact_bookings",
        "silver.fact_payouts",
        "silver.fact_search_impressions",
        "silver.bronze_quality",
        "gold.mart_city_daily",
        "gold.mart_search_funnel",
        "ops.live_bookings",
        "ops.payout_backlog",
    ] {
        assert!(out.contains(&format!("PASS  {model}  ")), "{model} has tests: {out}");
    }
    assert!(
        !t.path().join("lake").exists() && !t.path().join(".strata").exists(),
        "nothing touched the project's lake"
    );
}

#[test]
fn a_failing_test_shows_what_differs_at_the_tests_line_and_exits_1() {
    let t = TestProject::shipped();
    let path = t.path().join("sql/ops/payout_backlog.tests.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The model is right; the expectation now is not (a queued leg never paid is in the backlog).
    std::fs::write(
        &path,
        text.replacen("backlog = 1, backlog_cents = 8500", "backlog = 2, backlog_cents = 8500", 1),
    )
    .unwrap();
    let (code, out, _) = strata(t.path(), &["test", "ops.payout_backlog"]);
    assert_eq!(code, 1, "{out}");
    let fail = out.lines().position(|l| l.starts_with("FAIL  ops.payout_backlog")).expect(&out);
    assert!(out.lines().nth(fail).unwrap().ends_with("sql/ops/payout_backlog.tests.toml:3"), "{out}");
    let detail = out.lines().skip(fail + 1).take(3).collect::<Vec<_>>().join("\n");
    assert!(detail.contains("missing (line 22)") && detail.contains("backlog = 2"), "{detail}");
    assert!(detail.contains("closest produced row differs in backlog: expected 2, got 1"), "{detail}");
    assert!(out.contains("2 passed, 1 failed"), "the other tests still ran: {out}");

    // A model whose SQL breaks: its tests are errors, with the model's file:line.
    let t = TestProject::shipped();
    let model = t.path().join("sql/ops/payout_backlog.sql");
    let sql = std::fs::read_to_string(&model).unwrap();
    std::fs::write(
        &model,
        sql.replace("count_if(failed) AS failed,", "count_if(failed) AS failed, nope AS x,"),
    )
    .unwrap();
    let (code, out, _) = strata(t.path(), &["test", "ops.payout_backlog"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ERROR ops.payout_backlog") && out.contains("payout_backlog.sql:"), "{out}");
}

#[test]
fn malformed_test_files_list_every_problem_at_its_line_and_exit_2() {
    let t = TestProject::shipped();
    std::fs::write(
        t.path().join("sql/ops/live_bookings.tests.toml"),
        r#"[[test]]
name = "bad"
at = "yesterday"

[[test.given]]
input = "silver.fact_nope"
rows = []

[[test.given]]
input = "silver.fact_bookings"
lines = "{}"

[test.expect]
rows = []
"#,
    )
    .unwrap();
    std::fs::write(t.path().join("sql/ops/gone.tests.toml"), "").unwrap();
    std::fs::write(t.path().join("sql/ops/payout_backlog.tests.toml"), "[[test]]\nname = 1\n").unwrap();
    let (code, _, err) = strata(t.path(), &["test"]);
    assert_eq!(code, 2, "{err}");
    for expected in [
        "sql/ops/live_bookings.tests.toml:3: 'yesterday': expected YYYY-MM-DD",
        "sql/ops/live_bookings.tests.toml:6: 'silver.fact_nope' is not an input of ops.live_bookings",
        "sql/ops/live_bookings.tests.toml:9: silver.fact_bookings is a model: give its `rows`",
        "sql/ops/gone.tests.toml:1: no model gone.sql beside this test file",
        "sql/ops/payout_backlog.tests.toml:2:",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }
}

/// The same tests on Athena (the stand-in runs their SQL): inputs as CTEs of typed
/// literal rows, Bronze lines read by the OpenX rules first; the verdicts are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_tests_pass_on_athena() {
    let standin = crate::athena::StandIn::start();
    let aws = standin.clients();
    crate::athena::provision(&aws, false).await;
    let t = TestProject::shipped();
    let (code, out, err) = standin.strata(t.path(), &["test", "--engine", "athena"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (_, local, _) = strata(t.path(), &["test"]);
    let verdicts = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
            .map(|l| l.rsplit_once("  (").map_or(l, |(a, _)| a).to_string())
            .collect()
    };
    assert_eq!(verdicts(&out), verdicts(&local));
    // And a wrong expectation fails there too.
    let path = t.path().join("sql/ops/payout_backlog.tests.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("backlog = 1, backlog_cents = 8500", "backlog = 2, backlog_cents = 8500", 1),
    )
    .unwrap();
    let (code, out, _) = standin.strata(t.path(), &["test", "ops.payout_backlog", "--engine", "athena"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("closest produced row differs in backlog: expected 2, got 1"), "{out}");
}

/// `ordered = true` compares row by row; without it the order does not matter.
#[test]
fn ordered_tests_compare_rows_in_order() {
    let model = "{{ config(materialized='table', window='hour') }}\nSELECT city, count(*) AS n FROM {{ ref('silver.facts') }} GROUP BY city ORDER BY n DESC, city\n";
    let silver = "{{ config(materialized='table', window='hour') }}\nSELECT CAST('x' AS VARCHAR) AS city\n";
    let tests = |ordered: bool, first: &str| {
        format!(
            "[[test]]\nname = \"ranked\"\nat = \"2025-11-06T12:00:00Z\"\n\n[[test.given]]\ninput = \"silver.facts\"\nrows = [ {{ city = \"a\" }}, {{ city = \"b\" }}, {{ city = \"b\" }} ]\n\n[test.expect]\nordered = {ordered}\nrows = [ {{ city = \"{first}\" }}, {{ city = \"{}\" }} ]\n",
            if first == "a" { "b" } else { "a" }
        )
    };
    for (ordered, first, passes) in [(true, "b", true), (true, "a", false), (false, "a", true)] {
        let t = TestProject::with_files(&[
            ("sql/silver/facts.sql", silver),
            ("sql/ops/ranked.sql", model),
            ("sql/ops/ranked.tests.toml", &tests(ordered, first)),
        ]);
        let (code, out, err) = strata(t.path(), &["test"]);
        assert_eq!(code, if passes { 0 } else { 1 }, "ordered={ordered} first={first}\n{out}\n{err}");
        if !passes {
            assert!(
                out.contains("row 1 (line 11): expected { city = \"a\" }, got { city = \"b\" }"),
                "{out}"
            );
        }
    }
}
