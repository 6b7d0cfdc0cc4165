//! Print: every table, CSV and JSON the commands write, in one place.

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::{Error, Metrics, OutputFormat};
use crate::engine::human_bytes;
use crate::ids::ModelId;
use crate::project::Project;
use crate::runner::{ModelRun, Outcome};

pub fn report(runs: &[ModelRun], metrics: Metrics, now: DateTime<Utc>) {
    print_runs(runs);
    if metrics == Metrics::Emf {
        for r in runs {
            println!("{}", crate::metrics::emf(r, now));
        }
    }
}

fn print_runs(runs: &[ModelRun]) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["model", "window", "status", "rows", "bytes read", "bytes written", "bad lines", "time"]);
    for r in runs {
        t.add_row([
            r.model.to_string(),
            format!("{} .. {}", r.window.start.format("%m-%d %H:%M"), r.window.end.format("%m-%d %H:%M")),
            r.outcome.label().to_string(),
            r.stats.rows.to_string(),
            human_bytes(r.stats.bytes_read),
            human_bytes(r.stats.bytes_written),
            // Athena does not say which lines it read as NULLs (silver.bronze_quality counts them).
            if r.stats.statements > 0 { "-".to_string() } else { r.stats.malformed.to_string() },
            format!("{:.2}s", r.elapsed.as_secs_f64()),
        ]);
    }
    println!("{t}");
    for r in runs.iter().filter(|r| r.stats.statements > 0) {
        println!(
            "{}: {} Athena statements, {} scanned, {} ms queued, {} ms executing",
            r.model,
            r.stats.statements,
            human_bytes(r.stats.bytes_read),
            r.stats.queue_ms,
            r.stats.engine_ms
        );
    }
    for r in runs.iter().filter(|r| r.stats.bad_files > 0) {
        eprintln!(
            "warning: {}: {} Bronze file(s) could not be read to their end (truncated, corrupt, or named in bytes that are not UTF-8); what they hold past that is in no table, see bronze/_bad/",
            r.model, r.stats.bad_files
        );
    }
    for r in runs {
        match &r.outcome {
            Outcome::Skipped(why) => eprintln!("skipped {}: {why}", r.model),
            Outcome::Superseded(why) => eprintln!("superseded {}: {why}", r.model),
            o if o.is_failure() => eprintln!("error: {}: {}", r.model, o.detail().unwrap_or_default()),
            _ => {}
        }
    }
}

pub fn print_plan(
    project: &Project,
    selected: &[ModelId],
    changes: &Result<Vec<crate::changes::ModelChange>, String>,
    format: OutputFormat,
) -> Result<(), Error> {
    if format == OutputFormat::Json {
        #[derive(serde::Serialize)]
        struct PlanModel {
            model: String,
            materialized: &'static str,
            schedule: Option<String>,
            window: &'static str,
            lookback: u32,
            partitioned_by: Vec<String>,
            depends_on: Vec<String>,
        }
        let models: Vec<PlanModel> = selected
            .iter()
            .map(|id| {
                let (m, c) = (&project.models[id], &project.models[id].config);
                PlanModel {
                    model: id.to_string(),
                    materialized: c.materialized.as_str(),
                    schedule: c.schedule.as_ref().map(ToString::to_string),
                    window: c.grain.as_str(),
                    lookback: c.lookback,
                    partitioned_by: c.partitioned_by.clone(),
                    depends_on: m.deps.iter().map(|d| d.target.to_string()).collect(),
                }
            })
            .collect();
        let (changes, error) = match changes {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        let out = serde_json::json!({ "models": models, "changes": changes, "changes_error": error });
        println!("{}", serde_json::to_string_pretty(&out).expect("the plan serializes"));
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["model", "materialized", "schedule", "window", "partitioned by", "depends on"]);
    for id in selected {
        let m = &project.models[id];
        let c = &m.config;
        t.add_row([
            id.to_string(),
            c.materialized.as_str().to_string(),
            c.schedule.as_ref().map_or("-".into(), ToString::to_string),
            format!("{} (+{} back)", c.grain.as_str(), c.lookback),
            c.partitioned_by.join(", "),
            m.deps.iter().map(|d| d.target.to_string()).collect::<Vec<_>>().join(", "),
        ]);
    }
    println!("{t}");
    match changes {
        Err(e) => println!("changes since what is published: not known ({e})"),
        Ok(c) if c.is_empty() => println!("changes since what is published: none"),
        Ok(c) => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(["changed", "what", "breaking", "downstream", "fingerprint"]);
            for change in c {
                t.add_row([
                    change.model.clone(),
                    change.describe(),
                    if change.breaking { "BREAKING".into() } else { "no".into() },
                    change.downstream.join(", "),
                    match (&change.published_fingerprint, &change.fingerprint) {
                        (Some(a), Some(b)) if a != b => format!("{a} -> {b}"),
                        (_, Some(b)) => b.clone(),
                        (Some(a), None) => a.clone(),
                        (None, None) => String::new(),
                    },
                ]);
            }
            println!("changes since what is published:\n{t}");
        }
    }
    Ok(())
}

/// One table's line of `strata status`: the same fields on every engine (a field the
/// engine cannot tell cheaply is empty, e.g. rows and bytes on Athena).
#[derive(Debug, Default, serde::Serialize)]
pub struct StatusRow {
    pub model: String,
    pub table: String,
    pub version: Option<String>,
    pub published_at: Option<String>,
    pub by_run: Option<String>,
    pub data_up_to: Option<String>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub kept_versions: usize,
    pub last_run: Option<String>,
    pub last_outcome: Option<String>,
    pub last_cost_usd: Option<f64>,
    pub runs_24h: usize,
    pub cost_24h_usd: f64,
    pub lease: Option<String>,
    /// The fingerprint (short) the current version was computed with, if its run recorded
    /// one, and whether the model's fingerprint differs now (see `strata plan`).
    pub fingerprint: Option<String>,
    pub modified: bool,
}

pub fn print_status(rows: &[StatusRow], format: OutputFormat) -> Result<(), Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let header = [
        "model",
        "table",
        "current version",
        "published at",
        "by run",
        "data up to",
        "rows",
        "bytes",
        "kept versions",
        "last run",
        "outcome",
        "cost USD",
        "runs 24h",
        "cost 24h USD",
        "running on",
        "fingerprint",
    ];
    let cells = |r: &StatusRow, human: bool| {
        let opt =
            |v: &Option<String>| v.clone().unwrap_or_else(|| if human { "-".into() } else { String::new() });
        let num = |v: Option<u64>, f: fn(u64) -> String| {
            v.map(f).unwrap_or_else(|| if human { "-".into() } else { String::new() })
        };
        vec![
            r.model.clone(),
            r.table.clone(),
            r.version
                .clone()
                .unwrap_or_else(|| if human { "(never published)".into() } else { String::new() }),
            opt(&r.published_at),
            opt(&r.by_run),
            opt(&r.data_up_to),
            num(r.rows, |n| n.to_string()),
            num(r.bytes, if human { human_bytes } else { |n: u64| n.to_string() }),
            r.kept_versions.to_string(),
            opt(&r.last_run),
            opt(&r.last_outcome),
            r.last_cost_usd
                .map(|c| format!("{c:.6}"))
                .unwrap_or_else(|| if human { "-".into() } else { String::new() }),
            r.runs_24h.to_string(),
            format!("{:.4}", r.cost_24h_usd),
            opt(&r.lease),
            match (&r.fingerprint, r.modified) {
                (Some(f), true) if human => format!("{f} (model changed since)"),
                (f, _) => opt(f),
            },
        ]
    };
    match format {
        OutputFormat::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(header);
            for r in rows {
                t.add_row(cells(r, true));
            }
            writeln!(stdout, "{t}")?;
        }
        OutputFormat::Csv => {
            writeln!(stdout, "{}", header.join(","))?;
            for r in rows {
                let c: Vec<String> = cells(r, false).iter().map(|c| csv_field(c)).collect();
                writeln!(stdout, "{}", c.join(","))?;
            }
        }
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, rows).map_err(std::io::Error::from)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// Run history as a table (with totals), CSV or a JSON array.
pub fn print_history(runs: &[crate::state::RunRecord], format: OutputFormat) -> Result<(), Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let header = [
        "finished", "model", "window", "outcome", "rows", "scanned", "cost USD", "seconds", "version",
        "task", "run", "error",
    ];
    let row = |r: &crate::state::RunRecord, human: bool| {
        vec![
            r.finished_at.clone(),
            r.model.clone(),
            format!("{} / {}", r.window_start, r.window_end),
            r.outcome.clone(),
            r.rows.to_string(),
            if human { human_bytes(r.bytes_scanned) } else { r.bytes_scanned.to_string() },
            format!("{:.6}", r.cost_usd),
            format!("{:.1}", r.millis as f64 / 1000.0),
            r.version.clone().unwrap_or_default(),
            r.task.clone(),
            r.run_id.clone(),
            r.error.clone().unwrap_or_default(),
        ]
    };
    match format {
        OutputFormat::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(header);
            for r in runs {
                let mut cells = row(r, true);
                cells[11] = cells[11].chars().take(80).collect();
                t.add_row(cells);
            }
            if !runs.is_empty() {
                writeln!(stdout, "{t}")?;
            }
            let cost = runs.iter().fold(0.0, |sum, r| sum + r.cost_usd);
            let scanned: u64 = runs.iter().map(|r| r.bytes_scanned).sum();
            let failed = runs.iter().filter(|r| r.outcome.chars().all(|c| !c.is_lowercase())).count();
            writeln!(
                stdout,
                "{} runs, {failed} failed, {} scanned, ${cost:.4} estimated Athena cost",
                runs.len(),
                human_bytes(scanned)
            )?;
        }
        OutputFormat::Csv => {
            writeln!(stdout, "{}", header.join(","))?;
            for r in runs {
                let cells: Vec<String> = row(r, false).iter().map(|c| csv_field(c)).collect();
                writeln!(stdout, "{}", cells.join(","))?;
            }
        }
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, runs).map_err(std::io::Error::from)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn arrow(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::Infra(format!("writing the result: {e}"))
}

/// How many rows the table format shows; the rest are counted, not held.
pub const TABLE_ROWS: usize = 1000;

/// Prints a query's rows as they come: CSV and JSON hold a batch at a time; the table
/// shows the first [`TABLE_ROWS`] rows and says how many there were in all.
pub async fn print_stream(result: crate::engine::QueryStream, format: OutputFormat) -> Result<(), Error> {
    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::csv::WriterBuilder;
    use datafusion::arrow::json::ArrayWriter;
    use futures::StreamExt;
    use std::io::Write;
    let failed = |e: crate::engine::EngineError| Error::Failed(e.into());
    let crate::engine::QueryStream { schema, mut batches, stats } = result;
    let mut stdout = std::io::stdout().lock();
    let mut rows = 0u64;
    match format {
        OutputFormat::Table => {
            let mut shown: Vec<RecordBatch> = Vec::new();
            let mut kept = 0;
            while let Some(b) = batches.next().await {
                let b = b.map_err(failed)?;
                rows += b.num_rows() as u64;
                if kept < TABLE_ROWS {
                    let take = b.num_rows().min(TABLE_ROWS - kept);
                    kept += take;
                    shown.push(b.slice(0, take));
                }
            }
            if shown.is_empty() {
                shown.push(RecordBatch::new_empty(schema));
            }
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&shown).map_err(arrow)?;
            writeln!(stdout, "{text}")?;
            let more = if rows > kept as u64 {
                format!(" (the first {kept} shown: --format csv or json prints them all)")
            } else {
                String::new()
            };
            writeln!(stdout, "{rows} rows{more}, {} read", human_bytes(stats().bytes_read))?;
        }
        OutputFormat::Csv => {
            let mut w = WriterBuilder::new().with_header(true).build(&mut stdout);
            while let Some(b) = batches.next().await {
                let b = b.map_err(failed)?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(arrow)?;
            }
            // No rows: the header still says which columns there would be.
            if rows == 0 {
                w.write(&RecordBatch::new_empty(schema)).map_err(arrow)?;
            }
        }
        OutputFormat::Json => {
            let mut w = ArrayWriter::new(&mut stdout);
            while let Some(b) = batches.next().await {
                w.write(&b.map_err(failed)?).map_err(arrow)?;
            }
            w.finish().map_err(arrow)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// What `strata demo` wrote.
pub fn demo_summary(summary: &crate::demo::DemoSummary, dir: &std::path::Path) {
    println!(
        "wrote {} events ({} duplicates, {} late, {} malformed lines) in {} files, {} gzipped, under {}",
        summary.events,
        summary.duplicates,
        summary.late,
        summary.malformed,
        summary.files,
        human_bytes(summary.bytes),
        dir.display()
    );
}

/// The windows a backfill would compute (`--dry-run`).
pub fn backfill_windows(project: &Project, spec: &crate::backfill::BackfillSpec) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["model", "windows", "first", "last"]);
    for id in &spec.models {
        let w = crate::backfill::windows(project, id, spec);
        t.add_row([
            id.to_string(),
            w.len().to_string(),
            w.first().map(|w| crate::window::fmt_ts(w.start)).unwrap_or_default(),
            w.last().map(|w| crate::window::fmt_ts(w.end)).unwrap_or_default(),
        ]);
    }
    println!("{t}");
}

/// A backfill's results, one line per model, then its errors; whether any model failed.
pub fn backfill_results(results: &[crate::backfill::ModelBackfill]) -> bool {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["model", "windows", "computed now", "status", "rows", "bytes read", "bytes written"]);
    for r in results {
        t.add_row([
            r.model.to_string(),
            r.windows.to_string(),
            r.computed.to_string(),
            r.outcome.label().to_string(),
            r.stats.rows.to_string(),
            human_bytes(r.stats.bytes_read),
            human_bytes(r.stats.bytes_written),
        ]);
    }
    println!("{t}");
    let mut failed = false;
    for r in results {
        if matches!(r.outcome, Outcome::Skipped(_)) || r.outcome.is_failure() {
            eprintln!("error: {}: {}", r.model, r.outcome.detail().unwrap_or_default());
            failed = true;
        }
    }
    failed
}

/// What gc deleted (or would delete), the same columns on every engine.
pub fn gc_items(
    items: &[crate::lifecycle::GcItem],
    dry_run: bool,
    format: OutputFormat,
) -> Result<(), Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let what = |i: &crate::lifecycle::GcItem| match (i.deletes_dir, i.forgets_record) {
        (true, true) => "data and record",
        (true, false) => "data",
        (false, true) => "record",
        (false, false) => "-",
    };
    let header = ["table", "version", "deletes", "bytes", "why"];
    match format {
        OutputFormat::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(header);
            for i in items {
                let bytes = i.bytes.map_or("?".into(), human_bytes);
                t.add_row([i.table.clone(), i.version.clone(), what(i).into(), bytes, i.reason.clone()]);
            }
            if !items.is_empty() {
                writeln!(stdout, "{t}")?;
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            let total: u64 = items.iter().filter_map(|i| i.bytes).sum();
            let unknown =
                if items.iter().any(|i| i.bytes.is_none()) { " (sizes listed at deletion)" } else { "" };
            writeln!(stdout, "{verb} {} versions, {}{unknown}", items.len(), human_bytes(total))?;
        }
        OutputFormat::Csv => {
            writeln!(stdout, "{}", header.join(","))?;
            for i in items {
                let bytes = i.bytes.map(|b| b.to_string()).unwrap_or_default();
                let cells = [i.table.as_str(), &i.version, what(i), &bytes, &i.reason];
                writeln!(stdout, "{}", cells.map(csv_field).join(","))?;
            }
        }
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, items).map_err(std::io::Error::from)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// `strata state show`: each model's run state and live lease.
pub fn state_table(rows: &[(String, Option<crate::state::ModelState>, Option<crate::state::Lease>)]) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["model", "ran up to", "by", "updated", "lease held by", "until"]);
    for (model, m, lease) in rows {
        let (last, by, updated) = m.clone().map(|m| (m.last_at, m.by, m.updated_at)).unwrap_or_default();
        let (owner, until) = lease.clone().map(|l| (l.owner, l.until)).unwrap_or_default();
        t.add_row([model.clone(), last.unwrap_or_else(|| "never".into()), by, updated, owner, until]);
    }
    println!("{t}");
}

/// A progress bar on a terminal, plain log lines otherwise.
pub struct BackfillProgress {
    bars: std::sync::Mutex<std::collections::BTreeMap<ModelId, indicatif::ProgressBar>>,
    terminal: bool,
}

impl BackfillProgress {
    pub fn new() -> Self {
        use std::io::IsTerminal;
        Self { bars: Default::default(), terminal: std::io::stderr().is_terminal() }
    }
}

impl crate::backfill::Progress for BackfillProgress {
    fn start(&self, model: &ModelId, total: usize, done: usize) {
        if done > 0 {
            eprintln!("{model}: resuming, {done} of {total} windows already done");
        }
        let bar = if self.terminal {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:32} [{bar:40}] {pos}/{len} windows {elapsed}",
                )
                .expect("a valid template"),
            );
            b.set_prefix(model.to_string());
            b.set_position(done as u64);
            b
        } else {
            let b = indicatif::ProgressBar::hidden();
            b.set_length(total as u64);
            b.set_position(done as u64);
            b
        };
        self.bars.lock().expect("progress lock").insert(model.clone(), bar);
    }

    fn window_done(&self, model: &ModelId, window: &crate::window::Window) {
        let bars = self.bars.lock().expect("progress lock");
        if let Some(b) = bars.get(model) {
            b.inc(1);
            if !self.terminal {
                eprintln!(
                    "{model}: window {} done ({}/{})",
                    crate::window::fmt_ts(window.start),
                    b.position(),
                    b.length().unwrap_or(0)
                );
            }
        }
    }

    fn finish(&self, model: &ModelId) {
        if let Some(b) = self.bars.lock().expect("progress lock").remove(model) {
            b.finish();
        }
    }
}

/// `strata test`'s report: one line per test, what differs under a failure, a summary;
/// whether any test failed.
pub fn test_results(results: &[crate::modeltest::TestResult]) -> bool {
    use crate::modeltest::Verdict;
    let (mut passed, mut failed, mut errors) = (0, 0, 0);
    for r in results {
        let t = &r.test;
        let place = format!("{}:{}", t.path.display(), t.line);
        let ms = r.engine_time.as_secs_f64() * 1000.0;
        match &r.verdict {
            Verdict::Passed => {
                passed += 1;
                println!("PASS  {}  {}  ({ms:.0} ms)", t.model, t.name);
            }
            Verdict::Failed(lines) => {
                failed += 1;
                println!("FAIL  {}  {}  {place}", t.model, t.name);
                for l in lines {
                    println!("      {l}");
                }
            }
            Verdict::Error(e) => {
                errors += 1;
                println!("ERROR {}  {}  {place}", t.model, t.name);
                for l in e.lines() {
                    println!("      {l}");
                }
            }
        }
    }
    let total: f64 = results.iter().map(|r| r.engine_time.as_secs_f64() * 1000.0).sum();
    let per = if results.is_empty() { 0.0 } else { total / results.len() as f64 };
    println!(
        "{} tests: {passed} passed, {failed} failed, {errors} errors; engine time {total:.0} ms ({per:.1} ms per test)",
        results.len()
    );
    failed + errors > 0
}
