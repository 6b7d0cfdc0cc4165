//! The scheduler with a controlled clock: what is due across hours and days, catch-up after
//! an outage, upstream failures, overlapping ticks, and resumable backfills.

use chrono::{DateTime, TimeZone, Utc};
use strata::clock::ManualClock;
use strata::ids::ModelId;
use strata::planner::{Decision, decide, is_current};
use strata::runner::{Outcome, Stop};

use crate::common::{TestProject, current_version, strata, strata_cmd};

fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 11, d, h, m, 0).unwrap()
}

fn id(s: &str) -> ModelId {
    ModelId::parse(s).unwrap()
}

#[test]
fn due_windows_across_hours_and_days() {
    let t_ = TestProject::shipped();
    let p = t_.project();
    let silver = &p.models[&id("silver.fact_payouts")]; // */5, hourly window, lookback 1
    let gold = &p.models[&id("gold.mart_city_daily")]; // 20 * * * *, daily window, lookback 1

    // Never run: only the latest firing, no replay of history.
    assert_eq!(decide(silver, None, t(6, 12, 7)), Decision::Due { at: t(6, 12, 5), from: None, firings: 1 });
    // Ran at 12:05: nothing due until 12:10.
    assert_eq!(decide(silver, Some(t(6, 12, 5)), t(6, 12, 9)), Decision::NotDue { next: Some(t(6, 12, 10)) });
    // Across midnight: the firing at 00:00 of the next day.
    assert_eq!(
        decide(silver, Some(t(6, 23, 55)), t(7, 0, 1)),
        Decision::Due { at: t(7, 0, 0), from: None, firings: 1 }
    );
    // Gold fires at minute 20 of every hour; its window is the day and the one before.
    assert_eq!(decide(gold, Some(t(6, 23, 20)), t(7, 0, 19)), Decision::NotDue { next: Some(t(7, 0, 20)) });
    let Decision::Due { at, .. } = decide(gold, Some(t(6, 23, 20)), t(7, 0, 25)) else {
        panic!("gold is due")
    };
    let w = strata::window::Window::ending_at(at, gold.config.grain, gold.config.lookback);
    assert_eq!((w.start, w.end), (t(6, 0, 0), t(7, 0, 20)));
}

#[test]
fn catch_up_after_a_three_hour_outage_covers_each_missed_window_once() {
    let t_ = TestProject::shipped();
    let p = t_.project();
    let silver = &p.models[&id("silver.fact_payouts")];
    // Last success 12:05; the service was down until 15:07: 36 firings were missed.
    let Decision::Due { at, from, firings } = decide(silver, Some(t(6, 12, 5)), t(6, 15, 7)) else {
        panic!("due after an outage")
    };
    assert_eq!((at, firings), (t(6, 15, 5), 36));
    // One run from the first missed window's start (12:10 with one hour of lookback) to
    // the last firing: every missed hour once, no window twice.
    let from = from.expect("an incremental model recomputes the missed range");
    assert_eq!(from, t(6, 11, 0));
    let w = strata::window::Window::spanning(from, at, silver.config.grain);
    assert_eq!(w.hours().len(), 5, "hours 11, 12, 13, 14 and 15 of 11-06");
    // A full-refresh model only needs the latest firing.
    let ops = &p.models[&id("ops.payout_backlog")];
    assert_eq!(
        decide(ops, Some(t(6, 12, 5)), t(6, 15, 7)),
        Decision::Due { at: t(6, 15, 5), from: None, firings: 36 }
    );
    // Upstream readiness: silver has firings left before 15:05 until it has run them.
    assert!(!is_current(silver, Some(t(6, 12, 5)), t(6, 15, 5)));
    assert!(is_current(silver, Some(t(6, 15, 5)), t(6, 15, 5)));
}

#[tokio::test]
async fn an_upstream_failure_skips_downstream_and_they_run_on_the_next_tick() {
    let t_ = TestProject::shipped();
    t_.write_fixture_events();
    let good = std::fs::read_to_string(t_.path().join("sql/silver/fact_payouts.sql")).unwrap();
    std::fs::write(
        t_.path().join("sql/silver/fact_payouts.sql"),
        good.replace(
            "json_extract_scalar(e.payload, '$.reason') AS failure_reason",
            "e.no_such AS failure_reason",
        ),
    )
    .unwrap();
    let p = t_.project();
    let engine = t_.engine(&p);
    let clock = ManualClock::at(t(6, 12, 1));
    let (_, runs) =
        strata::scheduler::tick(&p, &engine, t_.state(&p), &clock, &Stop::never(), &Default::default())
            .await
            .unwrap();
    let outcome = |m: &str| runs.iter().find(|r| r.model == id(m)).map(|r| r.outcome.clone());
    assert!(matches!(outcome("silver.fact_payouts"), Some(Outcome::Failed(_))));
    assert_eq!(
        outcome("ops.payout_backlog"),
        Some(Outcome::Skipped("upstream silver.fact_payouts failed".into()))
    );
    assert!(
        matches!(outcome("ops.live_bookings"), Some(Outcome::Published(_))),
        "independent models still run"
    );

    // Fixed; the next tick runs the failed model and its downstream for the missed firing.
    std::fs::write(t_.path().join("sql/silver/fact_payouts.sql"), good).unwrap();
    let p = t_.project();
    clock.set(t(6, 12, 6));
    let (_, runs) =
        strata::scheduler::tick(&p, &engine, t_.state(&p), &clock, &Stop::never(), &Default::default())
            .await
            .unwrap();
    for m in ["silver.fact_payouts", "ops.payout_backlog"] {
        let r = runs.iter().find(|r| r.model == id(m)).unwrap();
        assert!(matches!(r.outcome, Outcome::Published(_)), "{m}: {:?}", r.outcome);
    }
}

#[test]
fn two_ticks_started_together_run_each_model_window_once() {
    let t_ = TestProject::shipped();
    t_.write_fixture_events();
    let spawn = || {
        strata_cmd(t_.path())
            .args(["tick", "--at", "2025-11-06T12:01:00Z", "--log-format", "json", "-v"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("strata starts")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let mut published: Vec<String> = Vec::new();
    for out in [&a.stderr, &b.stderr] {
        for line in String::from_utf8_lossy(out).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if v["outcome"] == "published" {
                published.push(v["model"].as_str().unwrap().to_string());
            }
        }
    }
    published.sort();
    let mut expected: Vec<String> = [
        "silver.bronze_quality",
        "silver.fact_bookings",
        "silver.fact_payouts",
        "silver.fact_search_impressions",
        "gold.mart_city_daily",
        "gold.mart_search_funnel",
        "ops.live_bookings",
        "ops.payout_backlog",
        "bronze.events",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.sort();
    assert_eq!(published, expected, "each model's window published by exactly one of the two ticks");
}

#[test]
fn a_backfill_interrupted_after_4_of_10_days_resumes_and_publishes_once() {
    let t_ = TestProject::shipped();
    t_.write_fixture_events();
    let (code, _, err) = strata(
        t_.path(),
        &["run", "+gold.mart_city_daily", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-05"],
    );
    assert_eq!(code, 0, "{err}");
    let version = |t_: &TestProject| current_version(t_.path(), "gold.mart_city_daily");
    let before = version(&t_);
    let backfill = |failpoint: Option<&str>| {
        let mut cmd = strata_cmd(t_.path());
        cmd.args([
            "backfill",
            "gold.mart_city_daily",
            "--from",
            "2025-10-28",
            "--to",
            "2025-11-07",
            "--parallel",
            "1",
        ]);
        if let Some(f) = failpoint {
            cmd.env("STRATA_FAILPOINT", f);
        }
        cmd.output().unwrap()
    };
    let done_windows = |out: &std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains(": window ") && l.contains(" done ("))
            .map(|l| l.split(": window ").nth(1).unwrap()[..10].to_string())
            .collect()
    };
    let first = backfill(Some("backfill-window:4"));
    assert!(!first.status.success(), "the first attempt is killed after 4 windows");
    assert_eq!(done_windows(&first).len(), 4);
    assert_eq!(version(&t_), before, "readers still see the version from before the backfill");

    let second = backfill(None);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(String::from_utf8_lossy(&second.stderr).contains("resuming, 4 of 10 windows already done"));
    let mut all = done_windows(&first);
    all.extend(done_windows(&second));
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((all.len(), unique.len()), (10, 10), "every day computed exactly once: {all:?}");
    assert_ne!(version(&t_), before, "published once, at the end");
    let (_, out, _) = strata(
        t_.path(),
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n, sum(gmv_cents) AS gmv FROM gold.mart_city_daily",
        ],
    );
    assert_eq!(
        out.lines().nth(1),
        Some("3,40000"),
        "the same marts as before: the fixture has two days of data"
    );
}

#[test]
fn an_idle_daemon_exits_0_on_sigterm() {
    // Between rounds the daemon sleeps until the next firing; SIGTERM wakes it and it exits
    // 0 at once (work in flight is covered by the backfill test below).
    let t_ = TestProject::shipped();
    t_.write_fixture_events();
    let child = strata_cmd(t_.path())
        .args(["run", "--daemon"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the daemon has finished its first round (it prints a table), then stop it.
    let started = std::time::Instant::now();
    let state = t_.path().join(".strata/catalog.sqlite");
    while !state.exists() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(20 + 20), "stopped within 20 s of SIGTERM");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stopping"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "a daemon stopped by SIGTERM exits 0");
}

#[test]
fn schedules_accept_unix_cron_eventbridge_cron_and_rate() {
    use strata::schedule::Schedule;
    // Unix day-of-week: 1-5 is Monday to Friday (the cron crate alone would read Sunday
    // to Thursday). 2025-11-07 is a Friday, 2025-11-08 a Saturday.
    let weekdays = Schedule::parse("0 6 * * 1-5").unwrap();
    assert_eq!(weekdays.next_after(t(7, 7, 0)), Some(t(10, 6, 0)), "Friday 07:00 -> Monday 06:00");
    let sunday = Schedule::parse("30 1 * * 0").unwrap();
    assert_eq!(sunday.next_after(t(7, 0, 0)), Some(t(9, 1, 30)));
    assert_eq!(Schedule::parse("30 1 * * 7").unwrap().next_after(t(7, 0, 0)), Some(t(9, 1, 30)));
    // EventBridge: day-of-week 1-7 with Sunday 1, a year field, `?`.
    let eb = Schedule::parse("cron(0/15 * ? * MON-FRI *)").unwrap();
    assert_eq!(eb.next_after(t(7, 23, 50)), Some(t(10, 0, 0)));
    let rate = Schedule::parse("rate(5 minutes)").unwrap();
    assert_eq!(rate.next_after(t(6, 12, 7)), Some(t(6, 12, 10)));
    assert_eq!(Schedule::parse("rate(1 hour)").unwrap().next_after(t(6, 12, 7)), Some(t(6, 13, 0)));
    // The latest firing at or before an instant (a first tick runs only that one).
    let day = chrono::Duration::days(1);
    let five = Schedule::parse("*/5 * * * *").unwrap();
    assert_eq!(five.last_at_or_before(t(6, 12, 7), day), Some(t(6, 12, 5)));
    assert_eq!(five.last_at_or_before(t(6, 12, 5), day), Some(t(6, 12, 5)), "a firing at the instant counts");
    let just_before = t(6, 12, 5) - chrono::Duration::milliseconds(1);
    assert_eq!(five.last_at_or_before(just_before, day), Some(t(6, 12, 0)));
    assert_eq!(
        weekdays.last_at_or_before(t(8, 12, 0), day),
        None,
        "Saturday: Friday 06:00 is over a day back"
    );
    assert_eq!(weekdays.last_at_or_before(t(8, 12, 0), day * 2), Some(t(7, 6, 0)));
    assert_eq!(rate.last_at_or_before(t(6, 12, 7), day), Some(t(6, 12, 5)));
    assert_eq!(eb.last_at_or_before(t(10, 0, 14), day * 3), Some(t(10, 0, 0)));
    // What the cron crate cannot do is refused with a clear message.
    for bad in ["cron(0 12 L * ? *)", "cron(0 12 ? * 6#3 *)", "cron(0 12 15W * ? *)", "0 12 L * *"] {
        let e = Schedule::parse(bad).unwrap_err();
        assert!(e.contains("the L, W and # forms are not supported"), "{bad}: {e}");
    }
    assert!(Schedule::parse("rate(0 minutes)").unwrap_err().contains("positive"));
    assert!(Schedule::parse("cron(0 12 * * ?)").unwrap_err().contains("6 fields"));
}

#[test]
fn sigterm_during_a_backfill_stops_it_unpublished_and_resumable() {
    use std::io::{BufRead, BufReader};
    let t_ = TestProject::shipped();
    t_.write_fixture_events();
    let (code, _, err) = strata(
        t_.path(),
        &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-05"],
    );
    assert_eq!(code, 0, "{err}");
    let version = || current_version(t_.path(), "silver.fact_payouts");
    let before = version();
    // 30 days of hourly windows, one at a time: far more work than happens before SIGTERM.
    let mut child = strata_cmd(t_.path())
        .args([
            "backfill",
            "silver.fact_payouts",
            "--from",
            "2025-10-08",
            "--to",
            "2025-11-07",
            "--parallel",
            "1",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains(" done (") {
        line.clear();
    }
    assert!(line.contains(" done ("), "the backfill got going");
    let sent = std::time::Instant::now();
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(sent.elapsed() < std::time::Duration::from_secs(20), "stopped within 20 s");
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(rest.contains("interrupted after") && rest.contains("of 720 windows"), "{rest}");
    assert_eq!(version(), before, "nothing of the backfill is visible");
}
