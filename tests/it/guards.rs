//! What a careless or concurrent command must not be able to do to a published lake: gc
//! collecting the version a run is writing, a catalog that lost the lake's history taken
//! for a new one, a "read-only" query that writes files.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::athena::StandIn;
use crate::common::{TestProject, current_version, strata};
use crate::reruns::On;

/// Runs `args` with a failpoint that hangs after fact_payouts is staged; returns the child
/// once it hangs there.
fn hang_after_staging(on: &On<'_>, t: &TestProject, args: &[&str]) -> std::process::Child {
    let mut child = on
        .command(t)
        .args(args)
        .env("STRATA_FAILPOINT", "after-stage:silver.fact_payouts=hang")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().contains("failpoint after-stage: hanging") {
            return child;
        }
    }
    panic!("the run ended before its failpoint: {:?}", child.wait());
}

/// gc judged a version's age by the instant in its id, so a run for a past `--at` had its
/// staged version deleted under it. Age is wall-clock time of the last write, and a model
/// whose lease a run holds keeps its unpublished versions.
async fn gc_never_collects_the_version_a_run_is_writing(on: On<'_>) {
    let t = TestProject::shipped();
    t.write_fixture_events();
    on.provision(&t).await;
    let (code, out, err) = on
        .strata(&t, &["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-05"]);
    assert_eq!(code, 0, "{out}\n{err}");
    // A run (no lease) and a tick (holding the lease), both for instants long past.
    for args in [
        vec!["run", "+silver.fact_payouts", "--at", "2025-11-06T12:30:00Z"],
        vec!["tick", "--at", "2025-11-06T12:35:00Z"],
    ] {
        let before = on.version_dirs(&t, "silver/fact_payouts").await;
        let mut child = hang_after_staging(&on, &t, &args);
        let staged: Vec<String> =
            on.version_dirs(&t, "silver/fact_payouts").await.difference(&before).cloned().collect();
        assert_eq!(staged.len(), 1, "{args:?}: one staged version: {staged:?}");
        let (code, out, err) = on.strata(&t, &["gc"]);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(!out.contains(&staged[0]), "{args:?}: gc did not plan the staged version: {out}");
        assert!(
            on.version_dirs(&t, "silver/fact_payouts").await.contains(&staged[0]),
            "{args:?}: the staged version of the run in flight is still there"
        );
    }
    // Once no run holds the lease and the grace period is over, what the killed runs left goes.
    let (code, _, err) = on.strata(&t, &["state", "unlock", "silver.fact_payouts"]);
    assert_eq!(code, 0, "{err}");
    let toml = std::fs::read_to_string(t.path().join("strata.toml")).unwrap();
    std::fs::write(
        t.path().join("strata.toml"),
        toml.replace("orphan_grace_minutes = 60", "orphan_grace_minutes = 0"),
    )
    .unwrap();
    let (code, out, err) = on.strata(&t, &["gc"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("staged, never published") || out.contains("left by a run"), "{out}");
}

#[tokio::test]
async fn gc_never_collects_the_version_a_run_is_writing_locally() {
    gc_never_collects_the_version_a_run_is_writing(On::Local).await;
}

#[tokio::test]
async fn gc_never_collects_the_version_a_run_is_writing_on_athena() {
    let standin = StandIn::start();
    gc_never_collects_the_version_a_run_is_writing(On::Athena(&standin)).await;
}

fn published_lake() -> TestProject {
    let t = TestProject::shipped();
    t.write_fixture_events();
    let (code, out, err) = strata(t.path(), &["run", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-05"]);
    assert_eq!(code, 0, "{out}\n{err}");
    t
}

/// A catalog truncated to nothing (a full disk, a bad copy) opened as a new, empty one:
/// status said "never published", the next run published only its window and gc proposed
/// to delete the lake's history. Every command refuses with exit 3 and says how to recover.
#[test]
fn a_catalog_that_cannot_see_the_lakes_history_is_refused() {
    let t = published_lake();
    let catalog = t.path().join(".strata/catalog.sqlite");
    let lake_before = crate::common::files_under(&t.lake());
    for (how, break_it) in [
        (
            "truncated to zero bytes",
            (|p: &std::path::Path| std::fs::File::create(p).map(drop))
                as fn(&std::path::Path) -> std::io::Result<()>,
        ),
        ("deleted", |p: &std::path::Path| {
            std::fs::remove_file(p)?;
            for side in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{side}", p.display()));
            }
            Ok(())
        }),
    ] {
        let saved = std::fs::read(&catalog).unwrap();
        let _ = std::fs::remove_file(t.path().join(".strata/catalog.sqlite-wal"));
        break_it(&catalog).unwrap();
        for args in [
            vec!["status"],
            vec!["run", "--at", "2025-11-06T13:00:00Z"],
            vec!["gc", "--dry-run"],
            vec!["query", "SELECT count(*) FROM silver.fact_payouts"],
        ] {
            let (code, out, err) = strata(t.path(), &args);
            assert_eq!(code, 3, "{how}: {args:?}: {out}\n{err}");
            assert!(
                err.contains("does not belong to the lake") && err.contains("Restore the catalog"),
                "{how}: {err}"
            );
        }
        assert_eq!(
            crate::common::files_under(&t.lake()),
            lake_before,
            "{how}: nothing in the lake was written or deleted"
        );
        std::fs::write(&catalog, saved).unwrap();
    }
    // The catalog restored: everything works again.
    let (code, out, err) = strata(t.path(), &["status"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(current_version(t.path(), "silver.fact_payouts").starts_with('v'));
}

/// `strata query` checked the statement's first word: `EXPLAIN ANALYZE COPY ... TO` passed
/// and overwrote a published file, and `CREATE EXTERNAL TABLE ... LOCATION '/etc/passwd'`
/// passed too. The plan is checked: nothing that writes, defines or sets runs.
#[test]
fn a_query_that_would_write_is_refused_and_writes_nothing() {
    let t = published_lake();
    let file = crate::common::files_under(&t.lake().join("silver/fact_payouts"))
        .into_iter()
        .find(|f| f.extension().is_some_and(|e| e == "parquet"))
        .expect("a published file");
    let before = std::fs::read(&file).unwrap();
    let target = file.display().to_string();
    for sql in [
        format!("EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{target}' STORED AS PARQUET"),
        format!("COPY (SELECT 1 AS x) TO '{target}' STORED AS PARQUET"),
        "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "EXPLAIN ANALYZE INSERT INTO silver.fact_payouts SELECT * FROM silver.fact_payouts".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
    ] {
        let (code, out, err) = strata(t.path(), &["query", &sql]);
        assert_eq!(code, 2, "{sql}: {out}\n{err}");
        assert!(err.contains("read-only"), "{sql}: {err}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), before, "the published file is untouched");
    for sql in [
        "SELECT count(*) FROM silver.fact_payouts",
        "EXPLAIN SELECT 1",
        "EXPLAIN ANALYZE SELECT 1",
        "SHOW TABLES",
        "DESCRIBE silver.fact_payouts",
    ] {
        let (code, out, err) = strata(t.path(), &["query", sql]);
        assert_eq!(code, 0, "{sql}: {out}\n{err}");
    }
}

/// A producer's line nested 100,000 levels deep aborted every run that read its hour
/// (exit 134) until someone deleted the file. It is a row of NULLs now, quarantined with
/// why, and the run publishes the hour's other lines.
#[test]
fn a_deeply_nested_bronze_line_is_quarantined_and_the_run_goes_on() {
    let t = TestProject::shipped();
    t.write_fixture_events();
    let deep = 100_000;
    let lines = vec![
        format!("{}{}", "[".repeat(deep), "]".repeat(deep)),
        format!(r#"{{"event":"payout.paid","payload":{}1{}}}"#, r#"{"a":"#.repeat(deep), "}".repeat(deep)),
    ];
    let dir = "bronze/events/dt=2025-11-06/hour=10/env=prod/event=payout.paid";
    crate::common::write_gz(&t.lake().join(dir).join("part-deep.json.gz"), &lines);
    for args in [
        vec!["run", "+silver.fact_payouts", "--at", "2025-11-06T12:00:00Z", "--from", "2025-11-06T09:00:00Z"],
        vec!["query", "SELECT count(*) FROM rastup_bronze.bronze_events"],
    ] {
        let (code, out, err) = strata(t.path(), &args);
        assert_eq!(code, 0, "{args:?}: {out}\n{err}");
    }
    let bad = t
        .lake()
        .join("bronze/_bad")
        .join(dir.trim_start_matches("bronze/events/"))
        .join("part-deep.bad.jsonl");
    let text = std::fs::read_to_string(&bad).unwrap_or_else(|e| panic!("{}: {e}", bad.display()));
    assert_eq!(
        text.lines().filter(|l| l.contains("nested deeper than 1000")).count(),
        2,
        "both lines, with why"
    );
}

/// Runs `strata args` in `dir` as on a full disk: in a shell whose writes cannot grow any
/// file (`ulimit -f 0`; SIGXFSZ ignored, which `exec` keeps, so a write fails with EFBIG
/// instead of killing the process). Creating an empty file and deleting still work, as
/// they do on a full ext4 or tmpfs. Output goes to pipes, which the limit does not cover.
fn on_full_disk(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(r#"ulimit -f 0 && trap '' XFSZ && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("sh runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dirs_of(t: &TestProject, table: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(t.lake().join(table))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// On a full disk, `status`, `query` and `gc` failed ("disk I/O error": the catalog was
/// opened read-write, its WAL index created and sized first), so gc could not free what
/// failed runs left. Reading needs no write now, gc deletes every directory before it
/// writes a record, and a run refuses once, naming the file, before any model starts.
#[test]
fn on_a_full_disk_status_query_and_gc_work_and_a_run_refuses_once() {
    let t = published_lake();
    // A run that died after staging (an audit failure, a kill): a recorded version never
    // published, its data in the lake.
    let before = dirs_of(&t, "silver/fact_payouts");
    let out = crate::common::strata_cmd(t.path())
        .args(["run", "silver.fact_payouts", "--at", "2025-11-06T13:00:00Z"])
        .env("STRATA_FAILPOINT", "after-stage:silver.fact_payouts")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint aborts the run");
    let left: Vec<String> = dirs_of(&t, "silver/fact_payouts").difference(&before).cloned().collect();
    assert_eq!(left.len(), 1, "the dead run left one version: {left:?}");
    let toml = std::fs::read_to_string(t.path().join("strata.toml")).unwrap();
    std::fs::write(
        t.path().join("strata.toml"),
        toml.replace("orphan_grace_minutes = 60", "orphan_grace_minutes = 0"),
    )
    .unwrap();
    let (_, count, _) =
        strata(t.path(), &["query", "--format", "csv", "SELECT count(*) AS n FROM silver.fact_payouts"]);
    let current = current_version(t.path(), "silver.fact_payouts");

    let (code, out, err) = on_full_disk(t.path(), &["status", "silver.fact_payouts"]);
    assert_eq!(code, 0, "status reads on a full disk: {out}\n{err}");
    assert!(out.contains(&current), "status shows the published version {current}: {out}");
    let (code, out, err) = on_full_disk(
        t.path(),
        &["query", "--format", "csv", "SELECT count(*) AS n FROM silver.fact_payouts"],
    );
    assert_eq!((code, &out), (0, &count), "query reads on a full disk: {err}");

    let (code, out, err) = on_full_disk(t.path(), &["run", "--at", "2025-11-06T13:00:00Z"]);
    assert_eq!(code, 3, "a run on a full disk is an infrastructure failure: {out}\n{err}");
    assert_eq!(err.matches("error:").count(), 1, "said once, not per model: {err}");
    assert!(err.contains(".strata/catalog.sqlite") && err.contains("cannot be written"), "{err}");

    // gc deletes the dead run's data without writing first; forgetting its record needs a
    // write, which still fails here: what was freed is listed, then why it stopped.
    let (code, out, err) = on_full_disk(t.path(), &["gc"]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(!t.lake().join("silver/fact_payouts").join(&left[0]).exists(), "the dead run's data is freed");
    assert!(out.contains(&left[0]), "gc lists what it freed: {out}");
    assert!(err.contains("cannot be written"), "{err}");
    // Once there is room, the next gc forgets the record, and runs go on.
    let (code, out, err) = strata(t.path(), &["gc"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&left[0]), "the record is forgotten now: {out}");
    let (code, out, err) = strata(t.path(), &["gc", "--dry-run"]);
    assert!(code == 0 && !out.contains(&left[0]), "nothing left of it: {out}\n{err}");
    let (code, out, err) = strata(t.path(), &["run", "--at", "2025-11-06T13:00:00Z"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_ne!(current_version(t.path(), "silver.fact_payouts"), current, "the run published");
}

/// Runs `strata args` in `dir` without the power to write what its mode forbids: as root
/// (containers, CI), `setpriv` drops CAP_DAC_OVERRIDE from the bounding set, which a root
/// process needs to write a file whose mode says read-only; otherwise the mode is enough.
fn without_override(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let root = std::process::Command::new("id").arg("-u").output().expect("id runs").stdout == b"0\n";
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.arg("--bounding-set=-dac_override").arg(env!("CARGO_BIN_EXE_strata"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
    };
    for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("STRATA_")) {
        cmd.env_remove(var);
    }
    let out = cmd.current_dir(dir).args(args).output().expect("setpriv (util-linux) runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn set_writable(path: &std::path::Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    for p in crate::common::files_under(path)
        .iter()
        .map(|p| p.as_path())
        .chain(walk_dirs(path).iter().map(|p| p.as_path()))
    {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        let mode = if writable { mode | 0o200 } else { mode & !0o222 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn walk_dirs(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![path.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(rd) = std::fs::read_dir(&dirs[i]) {
            dirs.extend(rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()));
        }
        i += 1;
    }
    dirs
}

/// A read-only lake failed every model with "Permission denied (os error 13)" and no path;
/// a read-only catalog failed every model (exit 1) at its first write. Both are refused
/// once (exit 3) before any model runs, naming the path; reading commands work on both.
#[test]
fn a_read_only_lake_or_catalog_is_refused_once_and_still_read() {
    let t = published_lake();
    let current = current_version(t.path(), "silver.fact_payouts");
    let (_, count, _) =
        strata(t.path(), &["query", "--format", "csv", "SELECT count(*) AS n FROM silver.fact_payouts"]);
    let state = t.path().join(".strata");
    for (what, path, expect) in [
        ("the lake", t.lake(), "lake/_strata/.writable".to_string()),
        ("the catalog file and its directory", state.clone(), "catalog.sqlite".to_string()),
    ] {
        set_writable(&path, false);
        let lake_before = crate::common::files_under(&t.lake());
        let (code, out, err) = without_override(t.path(), &["run", "--at", "2025-11-06T13:00:00Z"]);
        assert_eq!(code, 3, "{what}: {out}\n{err}");
        assert_eq!(err.matches("error:").count(), 1, "{what}: said once, not per model: {err}");
        assert!(err.contains(&expect) && err.contains("cannot be written"), "{what}: names {expect}: {err}");
        let (code, out, err) = without_override(t.path(), &["status", "silver.fact_payouts"]);
        assert!(code == 0 && out.contains(&current), "{what}: status reads: {out}\n{err}");
        let (code, out, err) = without_override(
            t.path(),
            &["query", "--format", "csv", "SELECT count(*) AS n FROM silver.fact_payouts"],
        );
        assert_eq!((code, &out), (0, &count), "{what}: query reads: {err}");
        let (code, out, err) = without_override(t.path(), &["gc", "--dry-run"]);
        assert_eq!(code, 0, "{what}: gc plans: {out}\n{err}");
        assert_eq!(crate::common::files_under(&t.lake()), lake_before, "{what}: nothing written");
        set_writable(&path, true);
    }
    let (code, out, err) = strata(t.path(), &["run", "--at", "2025-11-06T13:00:00Z"]);
    assert_eq!(code, 0, "writable again: {out}\n{err}");
}
