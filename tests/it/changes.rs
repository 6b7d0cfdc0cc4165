//! Changing a model: `strata plan` says what changed against what is published (from the
//! fingerprint each run records and the published table's columns), whether it breaks the
//! history, and what it reaches downstream; `state:modified` selects the changed models.
//! One body, driven through the binary on the local engine and on the Athena stand-in.

use std::path::Path;

use serde_json::Value;

use crate::athena::{StandIn, provision, upload_bronze};
use crate::common::{TestProject, strata};

/// The binary on one engine: (exit code, stdout, stderr) of `strata ARGS` in a directory.
type Cli<'a> = &'a dyn Fn(&Path, &[&str]) -> (i32, String, String);

const RUN: [&str; 5] = ["run", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-06T10:00:00Z"];

fn edit(t: &TestProject, file: &str, from: &str, to: &str) {
    let path = t.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has {from}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// `plan --format json [selectors]`: the models selected and the changes.
fn plan(cli: Cli<'_>, t: &TestProject, selectors: &[&str]) -> (Vec<String>, Vec<Value>) {
    let mut args = vec!["plan", "--format", "json"];
    args.extend(selectors);
    let (code, out, err) = cli(t.path(), &args);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let models =
        v["models"].as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap().to_string()).collect();
    let changes = v["changes"].as_array().unwrap_or_else(|| panic!("changes known: {v}")).clone();
    (models, changes)
}

fn change<'a>(changes: &'a [Value], model: &str) -> &'a Value {
    changes.iter().find(|c| c["model"] == model).unwrap_or_else(|| panic!("{model} changed: {changes:?}"))
}

fn plan_says_what_changed(cli: Cli<'_>, t: &TestProject) {
    let (code, out, err) = cli(t.path(), &RUN);
    assert_eq!(code, 0, "{out}\n{err}");
    let (_, changes) = plan(cli, t, &[]);
    assert!(changes.is_empty(), "nothing changed since the run: {changes:?}");
    let (code, out, _) = cli(t.path(), &["plan", "state:modified"]);
    assert_eq!(code, 0);
    assert!(out.contains("changes since what is published: none"), "{out}");

    // A column added after the published ones: not breaking; the SQL changed; its
    // downstream is reached (upstream changed only), and state:modified selects the model
    // itself, state:modified+ its downstream too.
    let payouts = "sql/silver/fact_payouts.sql";
    edit(
        t,
        payouts,
        "    e.received_at AS received_at,\n",
        "    e.received_at AS received_at,\n    json_extract_scalar(e.payload, '$.method') AS method,\n",
    );
    let (models, changes) = plan(cli, t, &["state:modified"]);
    assert_eq!(models, ["silver.fact_payouts"]);
    let c = change(&changes, "silver.fact_payouts");
    assert_eq!(c["breaking"], false, "{c}");
    assert_eq!(c["change"]["logic"], true, "{c}");
    assert_eq!(
        c["change"]["columns"],
        serde_json::json!([{"name": "method", "was": null, "now": "string"}]),
        "{c}"
    );
    assert_eq!(c["downstream"], serde_json::json!(["gold.mart_city_daily", "ops.payout_backlog"]), "{c}");
    assert_ne!(c["fingerprint"], c["published_fingerprint"], "{c}");
    let (models, changes) = plan(cli, t, &["state:modified+"]);
    assert_eq!(models, ["silver.fact_payouts", "gold.mart_city_daily", "ops.payout_backlog"]);
    // status names the fingerprint the current version was computed with, and that the
    // model differs from it now.
    let (code, out, err) = cli(t.path(), &["status", "silver.fact_payouts", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status[0]["fingerprint"], c["published_fingerprint"], "{status}");
    assert_eq!(status[0]["modified"], true, "{status}");
    let mart = change(&changes, "gold.mart_city_daily");
    assert_eq!(
        (&mart["change"]["logic"], &mart["change"]["upstream"], &mart["breaking"]),
        (&Value::Bool(false), &serde_json::json!(["silver.fact_payouts"]), &Value::Bool(false)),
        "{mart}"
    );

    // Retyped: breaking. Reformatting and comments are no change.
    edit(t, payouts, "AS BIGINT) AS amount_cents", "AS DOUBLE) AS amount_cents");
    let (_, changes) = plan(cli, t, &["silver.fact_payouts"]);
    let c = change(&changes, "silver.fact_payouts");
    assert_eq!(c["breaking"], true, "{c}");
    assert!(
        c["change"]["columns"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"name": "amount_cents", "was": "bigint", "now": "double"})),
        "{c}"
    );
    edit(t, payouts, "AS DOUBLE) AS amount_cents", "AS BIGINT) AS amount_cents");
    // A column moved: breaking (a run that replaces only its window keeps the published
    // columns in their order, `engine::checks::same_columns`), nothing added or removed.
    let moved = "    json_extract_scalar(e.payload, '$.provider_ref') AS provider_ref,\n";
    edit(t, payouts, moved, "");
    edit(
        t,
        payouts,
        "    json_extract_scalar(e.payload, '$.reason') AS failure_reason,\n",
        &format!("    json_extract_scalar(e.payload, '$.reason') AS failure_reason,\n{moved}"),
    );
    let (_, changes) = plan(cli, t, &["silver.fact_payouts"]);
    let c = change(&changes, "silver.fact_payouts");
    assert_eq!(
        (&c["change"]["columns_in_order"], &c["breaking"]),
        (&Value::Bool(false), &Value::Bool(true)),
        "{c}"
    );
    assert_eq!(
        c["change"]["columns"],
        serde_json::json!([{"name": "method", "was": null, "now": "string"}]),
        "{c}"
    );
    edit(t, payouts, moved, "");
    edit(t, payouts, "AS BIGINT) AS amount_cents,\n", &format!("AS BIGINT) AS amount_cents,\n{moved}"));
    edit(t, payouts, "    json_extract_scalar(e.payload, '$.method') AS method,\n", "");
    edit(t, payouts, "SELECT DISTINCT\n", "-- reformatted\nSELECT   DISTINCT\n\n");
    let (_, changes) = plan(cli, t, &[]);
    assert!(changes.is_empty(), "a reformatted model is not changed: {changes:?}");

    // A config change that breaks history; a model removed; a new one.
    edit(t, "sql/silver/fact_bookings.sql", "lookback=1", "lookback=2");
    std::fs::remove_file(t.path().join("sql/ops/live_bookings.sql")).unwrap();
    std::fs::write(
        t.path().join("sql/ops/payout_count.sql"),
        "{{ config(materialized='table', window='hour') }}\nSELECT count(*) AS n FROM {{ ref('silver.fact_payouts') }}\n",
    )
    .unwrap();
    let (models, changes) = plan(cli, t, &["state:modified"]);
    assert_eq!(models, ["silver.fact_bookings", "ops.payout_count"]);
    let b = change(&changes, "silver.fact_bookings");
    assert_eq!(
        b["change"]["config"],
        serde_json::json!([{"key": "lookback", "was": "1", "now": "2"}]),
        "{b}"
    );
    assert_eq!(b["change"]["logic"], false, "{b}");
    assert_eq!(change(&changes, "ops.payout_count")["change"]["kind"], "new");
    let removed = change(&changes, "rastup_ops.live_bookings");
    assert_eq!(
        (&removed["change"]["kind"], &removed["breaking"]),
        (&Value::from("removed"), &Value::Bool(true))
    );
}

#[test]
fn plan_says_what_changed_since_what_is_published_on_the_local_engine() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    plan_says_what_changed(&|dir, args| strata(dir, args), &t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_says_what_changed_since_what_is_published_on_athena() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    t.write_fixture_events();
    upload_bronze(&aws, &t).await;
    let cli = |dir: &Path, args: &[&str]| standin.strata(dir, args);
    tokio::task::block_in_place(|| plan_says_what_changed(&cli, &t));
}

/// A token of SQL text: a word, a quoted literal or identifier (whose inside may hold
/// spaces, dashes and doubled quotes, all of which count), or punctuation.
fn token() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "[a-z_][a-z0-9_]{0,6}",
        "[ a-z-]{0,6}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        "[ a-z-]{0,6}".prop_map(|s| format!("\"{s}\"")),
        prop_oneof![Just(","), Just("("), Just(")"), Just("="), Just("*")].prop_map(String::from),
    ]
}

/// What a reformatting may put between tokens: whitespace, a line comment, a block comment.
fn gap() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "[ \t\n]{1,3}",
        "[ a-z]{0,8}".prop_map(|c| format!(" -- {c}\n")),
        "[ a-z]{0,8}".prop_map(|c| format!(" /* {c} */ ")),
    ]
}

proptest::proptest! {
    /// Reformatting (whitespace and comments between tokens) never changes a model's logic
    /// fingerprint; a change inside a quoted literal always does.
    #[test]
    fn reformatting_keeps_the_logic_fingerprint_and_a_literal_change_does_not(
        tokens in proptest::collection::vec(token(), 1..12),
        gaps in proptest::collection::vec(gap(), 12),
    ) {
        use strata::fingerprint::normalized;
        let plain = tokens.join(" ");
        let mut reformatted = String::from("\n  ");
        for (t, g) in tokens.iter().zip(&gaps) {
            reformatted.push_str(t);
            reformatted.push_str(g);
        }
        proptest::prop_assert_eq!(normalized(&plain), normalized(&reformatted));
        if let Some(i) = tokens.iter().position(|t| t.starts_with('\'')) {
            let mut changed = tokens.clone();
            changed[i] = format!("'x{}", &tokens[i][1..]);
            proptest::prop_assert_ne!(normalized(&plain), normalized(&changed.join(" ")));
        }
    }
}
