//! Reads the Bronze events table offline: Athena's DDL for it, its gzip NDJSON
//! files laid out like the S3 lake, decoded the way Athena's OpenX JSON SerDe
//! would, as a DataFusion table that prunes partitions and scans in parallel.
//!
//! - [`ddl`]: `CREATE EXTERNAL TABLE` → [`ExternalTable`] (Arrow schema + storage settings).
//! - [`BronzeTable`]: the `TableProvider`; lines are read as Trino's OpenX reader reads
//!   them (`openx`): a malformed line is a row of NULLs, a value that does not convert is
//!   NULL; both are counted in [`ReadStats`] and the lines copied, with why, into
//!   `.bad.jsonl` files beside the lake (`bronze/_bad/`).

mod builders;
mod convert;
pub mod ddl;
mod decode;
mod exec;
mod hive_types;
mod javatime;
mod json;
mod layout;
mod lexer;
mod openx;
mod paths;
mod projection;
mod reader;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};

pub use ddl::{DdlError, ExternalTable, parse_external_table};
pub(crate) use decode::{MAX_JSON_DEPTH, nesting_exceeds};
pub use exec::BronzeScanExec;
pub use layout::BronzeFile;
pub use paths::MembersInBronzeScan;
pub use table::BronzeTable;

/// Counters of what Bronze scans read, shared by every scan of a table.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Files opened.
    pub files_read: AtomicU64,
    /// Bytes of the files as stored (gzip).
    pub compressed_bytes: AtomicU64,
    /// Bytes after decompression (every line, newline included).
    pub uncompressed_bytes: AtomicU64,
    /// Valid rows decoded.
    pub rows: AtomicU64,
    /// Lines read as a row of NULLs (malformed, or not a JSON object or array).
    pub malformed_lines: AtomicU64,
    /// Lines read with some values NULL because they did not convert to their column.
    pub nulled_lines: AtomicU64,
    /// Files that could not be read to their end (truncated or corrupt gzip).
    pub bad_files: AtomicU64,
}

/// A plain copy of [`ReadStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStatsSnapshot {
    pub files_read: u64,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub rows: u64,
    pub malformed_lines: u64,
    pub nulled_lines: u64,
    pub bad_files: u64,
}

impl ReadStats {
    /// Fresh zeroed counters, ready to share.
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::default())
    }

    /// The current values.
    pub fn snapshot(&self) -> ReadStatsSnapshot {
        ReadStatsSnapshot {
            files_read: self.files_read.load(Ordering::Relaxed),
            compressed_bytes: self.compressed_bytes.load(Ordering::Relaxed),
            uncompressed_bytes: self.uncompressed_bytes.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            malformed_lines: self.malformed_lines.load(Ordering::Relaxed),
            nulled_lines: self.nulled_lines.load(Ordering::Relaxed),
            bad_files: self.bad_files.load(Ordering::Relaxed),
        }
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        for c in [
            &self.files_read,
            &self.compressed_bytes,
            &self.uncompressed_bytes,
            &self.rows,
            &self.malformed_lines,
            &self.nulled_lines,
            &self.bad_files,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
