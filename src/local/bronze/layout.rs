//! Maps the table's `storage.location.template` (or Hive's default `col=value`
//! layout) onto local directories and walks them level by level, letting a pruning
//! callback drop partitions before their directories are ever listed.

use std::io;
use std::path::{Path, PathBuf};

use super::ddl::ExternalTable;

/// One path segment of the partition layout below the table root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A fixed directory name.
    Literal(String),
    /// `prefix${column}suffix`: the directory name carries one partition value.
    Capture { prefix: String, column: usize, suffix: String },
}

/// The directory layout of a table's partitions below its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) segments: Vec<Segment>,
}

/// A data file found below the table root, with the partition values of its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BronzeFile {
    /// Absolute (or root-relative, if the root was relative) path of the file.
    pub path: PathBuf,
    /// Path relative to the table root, `/`-separated.
    pub relative_path: String,
    /// Size on disk (compressed) in bytes.
    pub size: u64,
    /// One value per partition column (in declaration order); `None` if the
    /// layout does not name the column.
    pub partition_values: Vec<Option<String>>,
}

/// A directory reached by the walk: where it is and the partition values known so far.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) dir: PathBuf,
    pub(crate) values: Vec<Option<String>>,
}

impl Layout {
    /// The layout of `table`: its `storage.location.template` relative to its
    /// `LOCATION`, or `col=value` directories for the partition columns in order.
    pub(crate) fn for_table(table: &ExternalTable) -> Result<Layout, String> {
        let cols = &table.partition_columns;
        let Some(template) = table.table_properties.get("storage.location.template") else {
            let segments = (0..cols.len())
                .map(|column| Segment::Capture {
                    prefix: format!("{}=", cols[column]),
                    column,
                    suffix: String::new(),
                })
                .collect();
            return Ok(Layout { segments });
        };
        let location = table.location.as_deref().unwrap_or("").trim_end_matches('/');
        let relative = match template.strip_prefix(location) {
            Some(rest) if !location.is_empty() && (rest.is_empty() || rest.starts_with('/')) => {
                rest.to_string()
            }
            // The template points elsewhere: keep the part from its first placeholder.
            _ => {
                let parts: Vec<&str> = template.split('/').collect();
                let first = parts.iter().position(|p| p.contains("${")).unwrap_or(parts.len());
                parts[first..].join("/")
            }
        };
        let mut segments = Vec::new();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            segments.push(parse_segment(part, cols)?);
        }
        Ok(Layout { segments })
    }
}

fn parse_segment(part: &str, cols: &[String]) -> Result<Segment, String> {
    let Some(start) = part.find("${") else {
        return Ok(Segment::Literal(part.to_string()));
    };
    let end = part[start..]
        .find('}')
        .map(|e| start + e)
        .ok_or_else(|| format!("unterminated placeholder in template segment {part:?}"))?;
    let name = &part[start + 2..end];
    let suffix = &part[end + 1..];
    if suffix.contains("${") {
        return Err(format!("template segment {part:?} has more than one placeholder"));
    }
    let column = cols
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("template placeholder ${{{name}}} is not a partition column"))?;
    Ok(Segment::Capture { prefix: part[..start].to_string(), column, suffix: suffix.to_string() })
}

/// Decodes Hive's `%XX` escapes in a directory name; `__HIVE_DEFAULT_PARTITION__` is NULL.
fn partition_value(raw: &str) -> Option<String> {
    if raw == "__HIVE_DEFAULT_PARTITION__" {
        return None;
    }
    if !raw.contains('%') {
        return Some(raw.to_string());
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Entries of `dir` sorted by name; a missing directory has none. Entries whose name is not
/// UTF-8 (no S3 key is: Athena never reads such a file) go to `unnamed`.
fn sorted_entries(dir: &Path, unnamed: &mut Vec<PathBuf>) -> io::Result<Vec<(String, PathBuf)>> {
    let iter = match std::fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in iter {
        let entry = entry?;
        match entry.file_name().into_string() {
            Ok(name) => out.push((name, entry.path())),
            Err(_) => unnamed.push(entry.path()),
        }
    }
    out.sort();
    Ok(out)
}

/// Which partition columns are known after each step of the walk, as a bit set.
pub(crate) type ColumnSet = u64;

/// Decides which candidate directories to keep, given the columns whose values are known.
pub(crate) type Pruner<'a> = dyn FnMut(&[Candidate], ColumnSet) -> io::Result<Vec<bool>> + 'a;

/// Walks `layout` below `root`. After each level, `prune(candidates, known)` is
/// called with every directory reached and the set of partition columns whose
/// values are known (all columns after the last level); it returns which
/// candidates to keep. Only kept directories are listed further.
pub(crate) fn discover(
    root: &Path,
    layout: &Layout,
    n_columns: usize,
    prune: &mut Pruner<'_>,
    unnamed: &mut Vec<PathBuf>,
) -> io::Result<Vec<BronzeFile>> {
    let all: ColumnSet = if n_columns >= 64 { u64::MAX } else { (1u64 << n_columns) - 1 };
    let mut known: ColumnSet = 0;
    let mut level = vec![Candidate { dir: root.to_path_buf(), values: vec![None; n_columns] }];
    let mut keep_only = |level: Vec<Candidate>, known: ColumnSet| -> io::Result<Vec<Candidate>> {
        if level.is_empty() {
            return Ok(level);
        }
        let keep = prune(&level, known)?;
        Ok(level.into_iter().zip(keep).filter_map(|(c, k)| k.then_some(c)).collect())
    };
    level = keep_only(level, known)?;
    for segment in &layout.segments {
        let mut next = Vec::new();
        for cand in &level {
            match segment {
                Segment::Literal(name) => {
                    let dir = cand.dir.join(name);
                    if dir.is_dir() {
                        next.push(Candidate { dir, values: cand.values.clone() });
                    }
                }
                Segment::Capture { prefix, column, suffix } => {
                    for (name, path) in sorted_entries(&cand.dir, unnamed)? {
                        let Some(raw) =
                            name.strip_prefix(prefix.as_str()).and_then(|r| r.strip_suffix(suffix.as_str()))
                        else {
                            continue;
                        };
                        if raw.is_empty() || !path.is_dir() {
                            continue;
                        }
                        let mut values = cand.values.clone();
                        values[*column] = partition_value(raw);
                        next.push(Candidate { dir: path, values });
                    }
                }
            }
        }
        if let Segment::Capture { column, .. } = segment {
            known |= 1 << column;
        }
        level = keep_only(next, known)?;
    }
    if known != all {
        level = keep_only(level, all)?;
    }
    let mut files = Vec::new();
    for cand in level {
        for (name, path) in sorted_entries(&cand.dir, unnamed)? {
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let meta = std::fs::metadata(&path)?;
            if !meta.is_file() || meta.len() == 0 {
                continue;
            }
            let relative_path = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push(BronzeFile {
                path,
                relative_path,
                size: meta.len(),
                partition_values: cand.values.clone(),
            });
        }
    }
    Ok(files)
}
