//! Near-real-time reads (`reads='arrived'`): a scheduled Silver run reads only the Bronze
//! objects that arrived since the published version and keeps that version's rows of the
//! window; the same on both engines, a crash before the publish reads the objects again,
//! and `run --from` still recomputes a range from all its objects.

use std::path::Path;

use crate::athena::{StandIn, provision};
use crate::common::{TestProject, strata, write_gz};

fn payout(leg: &str, at: &str) -> String {
    format!(
        r#"{{"event":"payout.paid","occurred_at":"{at}","received_at":"{at}","city":"austin","context":{{"role":"system","env":"prod"}},"payload":{{"leg_id":"{leg}","amount_cents":100}},"money":{{"amount_cents":100,"currency":"USD"}}}}"#
    )
}

const PREFIX: &str = "bronze/events/dt=2025-11-06/hour=11/env=prod/event=payout.paid";
const PREFIX_12: &str = "bronze/events/dt=2025-11-06/hour=12/env=prod/event=payout.paid";

/// The first object, and those that arrive after the first run: one more into hour 11
/// (with a line Firehose delivered again), one into hour 12.
fn first(lake: &Path) -> Vec<String> {
    let a = lake.join(PREFIX).join("a.json.gz");
    write_gz(&a, &[payout("L1", "2025-11-06T11:10:00.000Z"), payout("L2", "2025-11-06T11:20:00.000Z")]);
    vec![format!("{PREFIX}/a.json.gz")]
}

fn later(lake: &Path) -> Vec<String> {
    write_gz(
        &lake.join(PREFIX).join("b.json.gz"),
        &[payout("L2", "2025-11-06T11:20:00.000Z"), payout("L3", "2025-11-06T11:58:00.000Z")],
    );
    write_gz(&lake.join(PREFIX_12).join("c.json.gz"), &[payout("L4", "2025-11-06T12:02:00.000Z")]);
    vec![format!("{PREFIX}/b.json.gz"), format!("{PREFIX_12}/c.json.gz")]
}

fn size(lake: &Path, keys: &[String]) -> u64 {
    keys.iter().map(|k| std::fs::metadata(lake.join(k)).unwrap().len()).sum()
}

/// The `bytes read` fact_payouts reports in a tick's output, as bytes.
fn bytes_read(out: &str) -> String {
    let row = out.lines().find(|l| l.contains("silver.fact_payouts")).unwrap_or_else(|| panic!("{out}"));
    row.split('┆').nth(4).unwrap().trim().to_string()
}

const ROWS: &str = "SELECT leg_id, hour, count(*) AS n FROM rastup_silver.fact_payouts GROUP BY leg_id, hour ORDER BY leg_id";

#[test]
fn a_tick_reads_only_what_arrived_and_keeps_the_rest_of_the_window() {
    let t = TestProject::shipped();
    let lake = t.lake();
    first(&lake);
    let (code, out, err) = strata(t.path(), &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let arrived = later(&lake);
    // A run killed after staging reads the same objects again next time.
    let mut cmd = crate::common::strata_cmd(t.path());
    let crashed = cmd
        .args(["run", "silver.fact_payouts", "--at", "2025-11-06T12:05:00Z"])
        .env("STRATA_FAILPOINT", "after-stage:silver.fact_payouts")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let (code, out, err) = strata(t.path(), &["run", "silver.fact_payouts", "--at", "2025-11-06T12:05:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        bytes_read(&out),
        strata::engine::human_bytes(size(&lake, &arrived)),
        "only the new objects: {out}"
    );
    let (_, rows, _) = strata(t.path(), &["query", ROWS, "--format", "csv"]);
    // L2 was delivered twice, in two objects read by two runs: both copies are in Silver
    // (exact duplicates are dropped within a run; downstream counts are DISTINCT).
    assert_eq!(rows, "leg_id,hour,n\nL1,11,1\nL2,11,2\nL3,11,1\nL4,12,1\n");

    // A range run recomputes from every object of the range.
    let (code, out, err) = strata(
        t.path(),
        &["run", "silver.fact_payouts", "--at", "2025-11-06T12:05:00Z", "--from", "2025-11-06T11:00:00Z"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let all = [vec![format!("{PREFIX}/a.json.gz")], arrived].concat();
    assert_eq!(bytes_read(&out), strata::engine::human_bytes(size(&lake, &all)), "{out}");
    let (_, rows, _) = strata(t.path(), &["query", ROWS, "--format", "csv"]);
    assert_eq!(
        rows, "leg_id,hour,n\nL1,11,1\nL2,11,1\nL3,11,1\nL4,12,1\n",
        "one run over all objects drops the copy"
    );
}

/// The same runs on Athena (the stand-in bills what a statement reads): the second run
/// selects the new objects with `"$path"` and is billed for them only; Silver equals the
/// local engine's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_athena_a_tick_is_billed_for_what_arrived_and_publishes_what_the_local_engine_does() {
    let standin = StandIn::start();
    let aws = standin.clients();
    provision(&aws, false).await;
    let t = TestProject::shipped();
    let lake = t.lake();
    let upload = |keys: Vec<String>| {
        let (aws, lake) = (aws.clone(), lake.clone());
        async move {
            for k in keys {
                let body = std::fs::read(lake.join(&k)).unwrap();
                aws.s3.put_object().bucket("rastup-data").key(&k).body(body.into()).send().await.unwrap();
            }
        }
    };
    upload(first(&lake)).await;
    let (code, out, err) =
        standin.strata(t.path(), &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let arrived = later(&lake);
    upload(arrived.clone()).await;
    let (code, out, err) =
        standin.strata(t.path(), &["run", "silver.fact_payouts", "--at", "2025-11-06T12:05:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let sent = aws.athena.list_query_executions().work_group("strata").send().await.unwrap();
    let mut statements = Vec::new();
    for id in sent.query_execution_ids() {
        let q = aws.athena.get_query_execution().query_execution_id(id).send().await.unwrap();
        statements.push(q.query_execution().and_then(|q| q.query()).unwrap_or_default().to_string());
    }
    assert!(
        statements.iter().any(|s| s.contains("\"$path\" IN ('s3://rastup-data/bronze/events/dt=2025-11-06/hour=11/env=prod/event=payout.paid/b.json.gz'")),
        "the new objects are named: {statements:#?}"
    );
    let billed =
        out.lines().find(|l| l.starts_with("silver.fact_payouts:")).unwrap_or_else(|| panic!("{out}"));
    assert!(
        billed.contains(&format!("{} scanned", strata::engine::human_bytes(size(&lake, &arrived)))),
        "{billed}; arrived {} of {}",
        size(&lake, &arrived),
        size(&lake, &[arrived.clone(), vec![format!("{PREFIX}/a.json.gz")]].concat())
    );
    let (_, athena_rows, _) = standin.strata(t.path(), &["query", ROWS, "--format", "csv"]);
    // The same on the local engine.
    let local = TestProject::shipped();
    first(&local.lake());
    let (code, _, err) =
        strata(local.path(), &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    later(&local.lake());
    let (code, _, err) =
        strata(local.path(), &["run", "silver.fact_payouts", "--at", "2025-11-06T12:05:00Z"]);
    assert_eq!(code, 0, "{err}");
    let (_, local_rows, _) = strata(local.path(), &["query", ROWS, "--format", "csv"]);
    assert_eq!(athena_rows.replace("\"", ""), local_rows);
    assert_eq!(local_rows, "leg_id,hour,n\nL1,11,1\nL2,11,2\nL3,11,1\nL4,12,1\n");
}

/// The decision both engines apply: what arrived since the published version's record,
/// or the whole window when there is no record or the list would not fit the engine.
#[test]
fn a_run_reads_what_arrived_since_the_record_or_its_whole_window() {
    use std::collections::BTreeSet;
    use strata::materialize::arrivals::{Read, decide, lends_rows};
    let strings = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<String>>();
    let listed = strings(&["a", "b", "c"]);
    let recorded: BTreeSet<String> = strings(&["a", "gone"]).into_iter().collect();
    assert_eq!(decide(&listed, Some(&recorded), |_| true), Read::Arrived(strings(&["b", "c"])));
    assert_eq!(decide(&listed, None, |_| true), Read::Window, "no record: the whole window");
    assert_eq!(decide(&listed, Some(&recorded), |new| new.len() < 2), Read::Window, "too many to list");
    let all: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(decide(&listed, Some(&all), |_| true), Read::Arrived(Vec::new()), "nothing arrived");
    assert!(lends_rows(&strings(&["2025-11-06", "12"]), &strings(&["2025-11-06", "10"])));
    assert!(!lends_rows(&strings(&["2025-11-06", "09"]), &strings(&["2025-11-06", "10"])));
}
