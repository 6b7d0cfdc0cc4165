//! Reads Bronze files (gzip NDJSON) into record batches on a blocking thread,
//! counting what it reads and quarantining malformed lines next to nothing else:
//! valid rows of a file are always returned.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read, Write};
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
    /// The member of [`ScanSpec::paths`] with this index.
    Path(usize),
}

/// Everything a scan partition needs to turn files into batches.
#[derive(Debug, Clone)]
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
    /// `(data column, key)`: `json_extract_scalar(column, '$.key')` computed while reading
    /// (the [`super::paths`] rewrite); the column is also in `output`.
    pub(crate) paths: Vec<(usize, String)>,
    /// Data columns in `output` whose values nothing reads (only members of them): NULL.
    pub(crate) unread: Vec<usize>,
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

/// Records in the quarantine that the Bronze entry `relative` (its name, not UTF-8, shown
/// with U+FFFD) was not read.
pub(crate) fn quarantine_unnamed(quarantine_root: &Path, relative: &str) -> Result<()> {
    let record = BadRecord {
        source: relative,
        line: 0,
        error: "the name is not UTF-8: no S3 key is, so Athena never reads it; rename it to read it",
        read_as: "not read",
        record: "",
    };
    let mut content = serde_json::to_vec(&record).map_err(|e| DataFusionError::External(Box::new(e)))?;
    content.push(b'\n');
    write_quarantine(quarantine_root, relative, &content)
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
    let mut decoder =
        RowDecoder::new(&spec.data_fields, &projected, &spec.paths, &spec.unread, spec.options.clone())
            .map_err(DataFusionError::NotImplemented)?;
    let mut remaining = spec.limit.unwrap_or(usize::MAX);
    let mut reader = FileReader {
        spec,
        decoder: &mut decoder,
        data_cols: &data_cols,
        batch_size: batch_size.max(1),
        emit,
        remaining: &mut remaining,
        buffer: Vec::new(),
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
    /// The line buffer, kept from file to file.
    buffer: Vec<u8>,
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
        let mut input = Lines::new(raw, std::mem::take(&mut self.buffer));

        let mut line_no = 0u64;
        let mut rows = 0u64;
        let mut bad_lines = 0u64;
        let mut nulled_lines = 0u64;
        let mut quarantine = Vec::new();
        let mut buffered = 0usize;
        let mut finished = true;
        let mut unreadable = None;
        'file: loop {
            let text = match input.next_line() {
                Ok(Some(text)) => text,
                Ok(None) => break,
                // A truncated or corrupt object: the lines before stay read; the rest cannot
                // be. (Athena fails the query on such a file, naming it.)
                Err(e) => {
                    unreadable = Some(e);
                    break;
                }
            };
            line_no += 1;
            // Valid UTF-8 (nearly every line) is checked fast; otherwise Trino's
            // replacement of invalid sequences.
            let (text, lossy) = match std::str::from_utf8(text) {
                Ok(t) => (Cow::Borrowed(t), false),
                Err(_) => (String::from_utf8_lossy(text), true),
            };
            // Read as Trino reads it, and said: the producer sent bytes that are not text.
            let lossy_note = |mut notes: Vec<String>| {
                if lossy {
                    notes.insert(0, "invalid UTF-8, replaced by U+FFFD".to_string());
                }
                notes
            };
            let (kept, error) = match self.decoder.decode(&text) {
                Ok(Decoded::Row { nulled }) if nulled.is_empty() && !lossy => (None, String::new()),
                Ok(Decoded::Row { nulled }) => {
                    nulled_lines += 1;
                    (Some("row kept"), lossy_note(nulled).join("; "))
                }
                Ok(Decoded::NullRow(why)) => {
                    bad_lines += 1;
                    (Some("row of NULLs"), lossy_note(vec![why]).join("; "))
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
        let uncompressed = input.consumed;
        self.buffer = input.into_buffer();
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
        let paths = self.decoder.finish_paths()?;
        let mut data = self.decoder.finish(self.data_cols)?.into_iter();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.spec.output.len());
        for col in &self.spec.output {
            let array = match *col {
                OutCol::Data(i) => {
                    let array = data
                        .next()
                        .ok_or_else(|| DataFusionError::Internal("missing decoded column".to_string()))?;
                    if self.spec.unread.contains(&i) { new_null_array(array.data_type(), n) } else { array }
                }
                OutCol::Partition(p) => partition_array(file.partition_values[p].as_deref(), n),
                OutCol::Path(k) => paths
                    .get(k)
                    .cloned()
                    .ok_or_else(|| DataFusionError::Internal("missing member column".to_string()))?,
            };
            columns.push(array.slice(0, n));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(self.spec.schema.clone(), columns, &options)?;
        *self.remaining -= n;
        Ok((self.emit)(batch))
    }
}

/// The lines of a decompressed stream as Trino's `TextLineReader` splits them
/// (`lib/trino-hive-formats/.../line/text/TextLineReader.java:153-271`, ported and tested in
/// `tests/athena_standin/openx.py`): a UTF-8 byte-order mark at the start of the stream is
/// skipped (`TextLineReader.java:95`); a line ends at `\n`, `\r` or `\r\n`; a last line
/// without a terminator counts; an empty line is a line. Lines are handed out as slices of
/// one buffer (no copy per line), found with a vectorised search for either terminator.
struct Lines {
    src: Box<dyn Read>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`; `buf[start..scanned]` holds no terminator.
    start: usize,
    scanned: usize,
    end: usize,
    eof: bool,
    /// Whether the stream's start was checked for a byte-order mark.
    started: bool,
    /// Bytes read from the stream.
    consumed: u64,
}

impl Lines {
    const CHUNK: usize = 256 << 10;

    fn new(src: Box<dyn Read>, mut buf: Vec<u8>) -> Self {
        buf.resize(Self::CHUNK, 0);
        Lines { src, buf, start: 0, scanned: 0, end: 0, eof: false, started: false, consumed: 0 }
    }

    /// The buffer, for the next file (unless a long line grew it).
    fn into_buffer(self) -> Vec<u8> {
        if self.buf.len() > 16 << 20 { Vec::new() } else { self.buf }
    }

    fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        if !self.started {
            self.started = true;
            while self.end < 3 && !self.eof {
                self.fill()?;
            }
            if self.buf[..self.end].starts_with(b"\xef\xbb\xbf") {
                self.start = 3;
                self.scanned = 3;
            }
        }
        loop {
            if let Some(rel) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..self.end]) {
                let at = self.scanned + rel;
                let cr = self.buf[at] == b'\r';
                // A `\r` last in the buffer: whether a `\n` follows is in the next read.
                if cr && at + 1 == self.end && !self.eof {
                    self.scanned = at;
                    self.fill()?;
                    continue;
                }
                let mut next = at + 1;
                if cr && next < self.end && self.buf[next] == b'\n' {
                    next += 1;
                }
                let line = self.start..at;
                self.start = next;
                self.scanned = next;
                return Ok(Some(&self.buf[line]));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let line = self.start..self.end;
                self.start = self.end;
                return Ok(Some(&self.buf[line]));
            }
            self.fill()?;
        }
    }

    /// Moves the unread bytes to the front and reads more (growing the buffer for a line
    /// longer than it).
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.consumed += n as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
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
