//! Shared test helpers: a throwaway copy of the shipped project with its own lake and
//! catalog, the checked-in event fixture laid out like Firehose writes it, and result rows
//! as strings.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use strata::config::Settings;
use strata::engine::Engine;
use strata::local::LocalEngine;
use strata::project::Project;

/// The checkout under test: `cargo test` names it at run time, so a test binary built in
/// another clone that shares the target directory still reads this one's files.
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A copy of the shipped project (strata.toml and sql/) in a temp dir, lake and catalog
/// inside it.
pub struct TestProject {
    pub dir: tempfile::TempDir,
}

impl TestProject {
    pub fn shipped() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(&repo().join("sql"), &dir.path().join("sql"));
        std::fs::copy(repo().join("strata.toml"), dir.path().join("strata.toml")).expect("copy strata.toml");
        Self { dir }
    }

    /// A project with just these files (relative path -> text) and the shipped strata.toml.
    pub fn with_files(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(repo().join("strata.toml"), dir.path().join("strata.toml")).expect("copy strata.toml");
        for (rel, text) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("file has a parent")).expect("mkdir");
            std::fs::write(p, text).expect("write model");
        }
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn lake(&self) -> PathBuf {
        self.path().join("lake")
    }

    /// The environment a run sees: nothing from the developer's shell leaks in.
    pub fn env(&self) -> HashMap<String, String> {
        HashMap::new()
    }

    pub fn settings(&self) -> Settings {
        Settings::load(self.path(), &self.env()).expect("settings load")
    }

    pub fn project(&self) -> Project {
        Project::load(self.settings()).unwrap_or_else(|e| panic!("project loads:\n{e}"))
    }

    pub fn engine(&self, project: &Project) -> LocalEngine {
        LocalEngine::for_settings(&project.settings).expect("engine opens")
    }

    /// The project's local run state (what `strata tick` and `strata state` use).
    pub fn state(&self, project: &Project) -> std::sync::Arc<dyn strata::state::RunState> {
        std::sync::Arc::new(
            strata::state::SqliteState::open(&project.settings.catalog_path()).expect("state opens"),
        )
    }

    /// Writes the fixture events as gzip NDJSON in the Firehose layout (by received hour,
    /// env and event), plus the malformed lines at the end of the payout.paid file of 11-05 13:00, after its one valid line.
    pub fn write_fixture_events(&self) {
        let text = std::fs::read_to_string(repo().join("tests/fixtures/events.ndjson")).expect("fixture");
        let mut files: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("fixture lines are JSON");
            let received = v["received_at"].as_str().expect("received_at");
            let env = v["context"]["env"].as_str().expect("env");
            let event = v["event"].as_str().expect("event");
            let dir = format!(
                "bronze/events/dt={}/hour={}/env={env}/event={event}",
                &received[..10],
                &received[11..13]
            );
            files.entry(PathBuf::from(dir).join("part-00000.json.gz")).or_default().push(line.to_string());
        }
        let bad = std::fs::read_to_string(repo().join("tests/fixtures/malformed.ndjson")).expect("fixture");
        files
            .entry(PathBuf::from(
                "bronze/events/dt=2025-11-05/hour=13/env=prod/event=payout.paid/part-00000.json.gz",
            ))
            .or_default()
            .extend(bad.lines().map(String::from));
        for (rel, lines) in files {
            write_gz(&self.lake().join(rel), &lines);
        }
    }
}

impl TestProject {
    /// Writes `tests/fixtures/producers.json` (partition path -> raw lines) as gzip files:
    /// what real producers send, odd and broken lines included.
    pub fn write_producer_events(&self) {
        let text = std::fs::read_to_string(repo().join("tests/fixtures/producers.json")).expect("fixture");
        let files: BTreeMap<String, Vec<String>> = serde_json::from_str(&text).expect("fixture is JSON");
        for (dir, lines) in files {
            write_gz(&self.lake().join("bronze/events").join(dir).join("part-producers.json.gz"), &lines);
        }
    }
}

pub fn write_gz(path: &Path, lines: &[String]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).expect("create"),
        flate2::Compression::fast(),
    );
    for l in lines {
        writeln!(gz, "{l}").expect("write");
    }
    gz.finish().expect("finish gzip");
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Every row of the batches, each cell as text (NULL as "NULL").
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
            .collect();
        for i in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    out
}

/// Runs `sql` on the engine and returns its rows as text.
pub async fn query(engine: &LocalEngine, sql: &str) -> Vec<Vec<String>> {
    let r = engine.query(sql).await.unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"));
    rows(&r.batches)
}

/// `vec!["a", "b"]`-style rows from string slices.
pub fn expect(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter().map(|r| r.iter().map(|s| s.to_string()).collect()).collect()
}

/// The built `strata` binary, to run in `dir`, with no `STRATA_*` variable of the
/// developer's shell leaking in.
pub fn strata_cmd(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.current_dir(dir);
    for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("STRATA_")) {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs the built `strata` binary in `dir` and returns (exit code, stdout, stderr).
pub fn strata(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = strata_cmd(dir).args(args).output().expect("strata runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The version `strata status` shows as current for `model`.
pub fn current_version(dir: &Path, model: &str) -> String {
    let (code, out, err) = strata(dir, &["status", model]);
    assert_eq!(code, 0, "{err}");
    out.lines().nth(3).and_then(|l| l.split('┆').nth(2)).map(|s| s.trim().to_string()).unwrap_or_default()
}
