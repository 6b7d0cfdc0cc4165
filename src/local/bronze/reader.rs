//! Reads Bronze files (gzip NDJSON) into record batches on a blocking thread,
//! counting what it reads and quarantining malformed lines next to nothing else:
//! valid rows of a file are always returned.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{ArrayRef, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Fields, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::{DataFusionError, Result};
use flate2::read::MultiGzDecoder;
use serde::Serialize;

use super::ReadStats;
use super::decode::{Decoded, RowDecoder};
use super::layout::BronzeFile;
use super::openx::Options;

/// Where an output column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutCol {
    /// The data column with this index.
    Data(usize),
    /// The partition column with this index.
    Partition(usize),
}

/// Everything a scan partition needs to turn files into batches.
#[derive(Debug)]
pub(crate) struct ScanSpec {
    /// The table's data columns.
    pub(crate) data_fields: Fields,
    /// Output columns in order.
    pub(crate) output: Vec<OutCol>,
    /// Output schema (projected).
    pub(crate) schema: SchemaRef,
    pub(crate) quarantine_root: PathBuf,
    pub(crate) stats: Arc<ReadStats>,
    /// Stop after this many rows (per scan partition).
    pub(crate) limit: Option<usize>,
    /// The table's SerDe properties, as the reader honours them.
    pub(crate) options: Options,
}

/// Flush a batch early once this many line bytes are buffered (keeps i32 offsets safe).
const MAX_BATCH_BYTES: usize = 256 << 20;

/// One quarantined line: where it is, what was wrong, what the table shows for it, and the
/// line itself (so nothing is lost).
#[derive(Serialize)]
struct BadRecord<'a> {
    source: &'a str,
    line: u64,
    error: &'a str,
    /// `row of NULLs` (the line could not be read) or `row kept` (some values NULL, or text
    /// after the record not read).
    read_as: &'a str,
    record: &'a str,
}

/// Reads `files` in order, handing each batch to `emit`; stops early when `emit`
/// returns false (the consumer went away) or the limit is reached.
pub(crate) fn read_files(
    spec: &ScanSpec,
    files: &[BronzeFile],
    batch_size: usize,
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<()> {
    let n = spec.data_fields.len();
    let mut projected = vec![false; n];
    let mut data_cols = Vec::new();
    for col in &spec.output {
        if let OutCol::Data(i) = *col {
            projected[i] = true;
            data_cols.push(i);
        }
    }
    let mut decoder = RowDecoder::new(&spec.data_fields, &projected, spec.options.clone())
        .map_err(DataFusionError::NotImplemented)?;
    let mut remaining = spec.limit.unwrap_or(usize::MAX);
    let mut reader = FileReader {
        spec,
        decoder: &mut decoder,
        data_cols: &data_cols,
        batch_size: batch_size.max(1),
        emit,
        remaining: &mut remaining,
        line: Vec::with_capacity(8 << 10),
    };
    for file in files {
        if !reader.read(file)? {
            break;
        }
    }
    Ok(())
}

struct FileReader<'a> {
    spec: &'a ScanSpec,
    decoder: &'a mut RowDecoder,
    data_cols: &'a [usize],
    batch_size: usize,
    emit: &'a mut dyn FnMut(RecordBatch) -> bool,
    remaining: &'a mut usize,
    line: Vec<u8>,
}

impl FileReader<'_> {
    /// Reads one file; false means stop reading further files.
    fn read(&mut self, file: &BronzeFile) -> Result<bool> {
        let io_err =
            |e: std::io::Error| DataFusionError::Execution(format!("reading {}: {e}", file.path.display()));
        let stats = &self.spec.stats;
        let f = File::open(&file.path).map_err(io_err)?;
        let compressed = f.metadata().map_err(io_err)?.len();
        stats.files_read.fetch_add(1, Ordering::Relaxed);
        stats.compressed_bytes.fetch_add(compressed, Ordering::Relaxed);
        let raw: Box<dyn Read> = if file.path.extension().is_some_and(|e| e == "gz") {
            Box::new(MultiGzDecoder::new(BufReader::with_capacity(256 << 10, f)))
        } else {
            Box::new(f)
        };
        let mut input = BufReader::with_capacity(1 << 20, raw);

        let mut line_no = 0u64;
        let mut uncompressed = 0u64;
        let mut rows = 0u64;
        let mut bad_lines = 0u64;
        let mut nulled_lines = 0u64;
        let mut quarantine = Vec::new();
        let mut buffered = 0usize;
        let mut finished = true;
        // Trino's TextLineReader ends a line at \n, \r or \r\n; a last line without a
        // terminator counts, an empty line is a line (a row of NULLs).
        let mut line = std::mem::take(&mut self.line);
        let mut unreadable = None;
        'file: loop {
            line.clear();
            let n = match input.read_until(b'\n', &mut line) {
                Ok(n) => n,
                // A truncated or corrupt object: the lines before stay read; the rest cannot
                // be. (Athena fails the query on such a file, naming it.)
                Err(e) => {
                    unreadable = Some(e);
                    break;
                }
            };
            if n == 0 {
                break;
            }
            uncompressed += n as u64;
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            // "\r\n", or a final "\r": that \r ended the line before it; any other \r
            // ends a line too.
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            let parts = body.split(|b| *b == b'\r');
            for text in parts {
                line_no += 1;
                // Valid UTF-8 (nearly every line) is checked fast; otherwise Trino's
                // replacement of invalid sequences.
                let text = match std::str::from_utf8(text) {
                    Ok(t) => Cow::Borrowed(t),
                    Err(_) => String::from_utf8_lossy(text),
                };
                let (kept, error) = match self.decoder.decode(&text) {
                    Ok(Decoded::Row { nulled }) if nulled.is_empty() => (None, String::new()),
                    Ok(Decoded::Row { nulled }) => {
                        nulled_lines += 1;
                        (Some("row kept"), nulled.join("; "))
                    }
                    Ok(Decoded::NullRow(why)) => {
                        bad_lines += 1;
                        (Some("row of NULLs"), why)
                    }
                    Err(e) => {
                        return Err(DataFusionError::Execution(format!(
                            "{} line {line_no}: {e}",
                            file.relative_path
                        )));
                    }
                };
                rows += 1;
                buffered += text.len();
                if let Some(read_as) = kept {
                    let bad = BadRecord {
                        source: &file.relative_path,
                        line: line_no,
                        error: &error,
                        read_as,
                        record: &text,
                    };
                    serde_json::to_writer(&mut quarantine, &bad)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    quarantine.push(b'\n');
                }
                let rows_now = self.decoder.rows();
                if rows_now >= *self.remaining {
                    finished = false;
                    break 'file;
                }
                if rows_now >= self.batch_size || buffered >= MAX_BATCH_BYTES {
                    buffered = 0;
                    if !self.flush(file)? {
                        finished = false;
                        break 'file;
                    }
                }
            }
        }
        self.line = line;
        if let Some(e) = unreadable {
            stats.bad_files.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(file = %file.relative_path, "unreadable after line {line_no}: {e}");
            let bad = BadRecord {
                source: &file.relative_path,
                line: line_no + 1,
                error: &format!("the file cannot be read past line {line_no}: {e}"),
                read_as: "rest of the file not read",
                record: "",
            };
            serde_json::to_writer(&mut quarantine, &bad)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            quarantine.push(b'\n');
        }
        stats.uncompressed_bytes.fetch_add(uncompressed, Ordering::Relaxed);
        stats.rows.fetch_add(rows, Ordering::Relaxed);
        stats.malformed_lines.fetch_add(bad_lines, Ordering::Relaxed);
        stats.nulled_lines.fetch_add(nulled_lines, Ordering::Relaxed);
        let go_on = self.flush(file)? && finished;
        if finished && !quarantine.is_empty() {
            write_quarantine(&self.spec.quarantine_root, &file.relative_path, &quarantine)?;
        }
        Ok(go_on && *self.remaining > 0)
    }

    /// Emits the decoded rows (if any) as a batch; false if the consumer is gone.
    fn flush(&mut self, file: &BronzeFile) -> Result<bool> {
        let n = self.decoder.rows().min(*self.remaining);
        if self.decoder.rows() == 0 {
            return Ok(true);
        }
        let mut data = self.decoder.finish(self.data_cols)?.into_iter();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.spec.output.len());
        for col in &self.spec.output {
            let array = match *col {
                OutCol::Data(_) => data
                    .next()
                    .ok_or_else(|| DataFusionError::Internal("missing decoded column".to_string()))?,
                OutCol::Partition(p) => partition_array(file.partition_values[p].as_deref(), n),
            };
            columns.push(array.slice(0, n));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(self.spec.schema.clone(), columns, &options)?;
        *self.remaining -= n;
        Ok((self.emit)(batch))
    }
}

fn partition_array(value: Option<&str>, n: usize) -> ArrayRef {
    match value {
        Some(v) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(v, n))),
        None => new_null_array(&DataType::Utf8, n),
    }
}

/// The quarantine file for a source file: `.json.gz` replaced by `.bad.jsonl`.
pub(crate) fn quarantine_path(quarantine_root: &Path, relative_path: &str) -> PathBuf {
    let stem = relative_path
        .strip_suffix(".json.gz")
        .or_else(|| relative_path.strip_suffix(".gz"))
        .unwrap_or(relative_path);
    quarantine_root.join(format!("{stem}.bad.jsonl"))
}

/// The records of both quarantine files, each once, in line order (earlier ones first on
/// a line).
fn merge_records(existing: &[u8], new: &[u8]) -> Vec<u8> {
    let line_of =
        |r: &[u8]| serde_json::from_slice::<serde_json::Value>(r).ok().and_then(|v| v["line"].as_u64());
    let mut seen = std::collections::HashSet::new();
    let mut records: Vec<(u64, &[u8])> = Vec::new();
    for r in existing.split(|b| *b == b'\n').chain(new.split(|b| *b == b'\n')) {
        if !r.is_empty() && seen.insert(r) {
            records.push((line_of(r).unwrap_or(u64::MAX), r));
        }
    }
    records.sort_by_key(|(line, _)| *line);
    let mut out = Vec::with_capacity(existing.len() + new.len());
    for (_, r) in records {
        out.extend_from_slice(r);
        out.push(b'\n');
    }
    out
}

/// Writes `content` atomically (temp file + rename), so readers never see half a file,
/// merged with what earlier reads of the source found: a query notes the values it could
/// not read in the columns it reads, so queries reading other columns add their own
/// findings; re-reading the source with the same columns rewrites the same bytes.
fn write_quarantine(root: &Path, relative_path: &str, content: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let target = quarantine_path(root, relative_path);
    let merged;
    let content = match std::fs::read(&target) {
        Ok(existing) if existing != content => {
            merged = merge_records(&existing, content);
            &merged[..]
        }
        _ => content,
    };
    let fail = |e: std::io::Error| {
        DataFusionError::Execution(format!("writing quarantine {}: {e}", target.display()))
    };
    let dir = target.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).map_err(fail)?;
    let name = target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp =
        dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let mut f = File::create(&tmp).map_err(fail)?;
    f.write_all(content).map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}
