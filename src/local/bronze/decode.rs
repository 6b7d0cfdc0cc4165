//! Decodes one NDJSON line into column builders exactly as Trino's OpenX reader would
//! ([`openx`]): a fast path for ordinary lines (strict JSON objects, values straight from
//! the text into the builders, nothing materialised for fields no column wants), and the
//! port of Trino's reader for every other line (lenient syntax, top-level arrays, values
//! that do not fit their column, objects whose text Trino would write differently).
//! Both paths use the same conversions, so a line reads the same either way.

use std::borrow::Cow;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Fields};
use datafusion::arrow::error::ArrowError;

use super::builders::{ColBuilder, Kind};
use super::convert::push_compact_json;
use super::json::{JResult, Lit, Scanner};
use super::openx::{self, LineOutcome, Notes, Options, canonical_unquoted, java_trim};
use crate::changes::sql_type;
use crate::local::functions;

/// How a line read.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A row; `nulled` lists the values read as NULL (and text after the record).
    Row { nulled: Vec<String> },
    /// A row of NULLs (partition columns still set), and why.
    NullRow(String),
}

/// A `json_extract_scalar(col, '$.key')` the scan computes while it reads `col` (see
/// [`super::paths`]): from the members the fast path walks anyway when `col` holds an
/// object it copies as-is, else from the column's text as the function would.
struct PathCol {
    col: usize,
    key: String,
    b: ColBuilder,
}

/// The fast path gives up on a line; the reference path reads it.
struct Fallback;

type Fast<T> = Result<T, Fallback>;

impl From<super::json::JsonError> for Fallback {
    fn from(_: super::json::JsonError) -> Self {
        Fallback
    }
}

/// Turns lines into rows of the table's data columns.
pub(crate) struct RowDecoder {
    /// Lower-cased top-level column names, and the JSON key each is read from.
    names: Vec<Box<str>>,
    keys: Vec<Box<str>>,
    /// One builder per column; `None` for columns the query does not read: like Trino's
    /// reader, which is given only the projected columns (`LinePageSourceFactory` creates
    /// the deserializer from `projectedReaderColumns`, each with its table position),
    /// their values are not converted (the line's syntax is still checked whole, so a
    /// malformed line reads the same).
    cols: Vec<Option<ColBuilder>>,
    /// The projected columns (indexes into the table's columns) and their names, for the
    /// reference path.
    projected: Vec<usize>,
    projected_names: Vec<Box<str>>,
    options: Options,
    /// Whether the fast path may be tried (`dots.in.keys` needs the reference path).
    fast: bool,
    /// For the n-th key of the previous line: the key and the column it matched.
    /// A key written without escapes is recognised by its text alone (no string scan).
    hints: Vec<(Box<str>, Option<usize>, bool)>,
    /// Member values computed as columns; per column whether any is read from it, and
    /// whether only they are (the column's own text is then not kept when the walk gives
    /// them: nothing reads it).
    paths: Vec<PathCol>,
    has_paths: Vec<bool>,
    only_paths: Vec<bool>,
    rows: usize,
}

impl RowDecoder {
    /// A decoder for `fields`; `projected[i]` says whether column i is returned. Only
    /// those are converted; a value that does not fit a column the query does not read is
    /// not noted (Athena's query does not see it either).
    ///
    /// `paths` are `(column, key)`: string columns (projected ones) whose member `key`
    /// is also returned, as `json_extract_scalar(column, '$.key')` would give it; of the
    /// columns in `unread`, only those members are read.
    pub(crate) fn new(
        fields: &Fields,
        projected: &[bool],
        paths: &[(usize, String)],
        unread: &[usize],
        options: Options,
    ) -> Result<Self, String> {
        let mut cols = Vec::new();
        for (f, &p) in fields.iter().zip(projected) {
            let b = ColBuilder::new(f.data_type())?;
            cols.push(p.then_some(b));
        }
        let names: Vec<Box<str>> = fields.iter().map(|f| f.name().to_lowercase().into()).collect();
        let keys = names.iter().map(|n| options.json_name(n).into()).collect();
        let projected: Vec<usize> = (0..fields.len()).filter(|&i| projected[i]).collect();
        let projected_names = projected.iter().map(|&i| names[i].clone()).collect();
        let mut has_paths = vec![false; fields.len()];
        let mut path_cols = Vec::new();
        for (col, key) in paths {
            match (fields.get(*col).map(|f| f.data_type()), cols.get(*col)) {
                (Some(DataType::Utf8), Some(Some(_))) => {}
                _ => return Err(format!("member {key:?} of column {col}: not a projected string column")),
            }
            has_paths[*col] = true;
            path_cols.push(PathCol { col: *col, key: key.clone(), b: ColBuilder::new(&DataType::Utf8)? });
        }
        let only_paths = (0..fields.len()).map(|i| has_paths[i] && unread.contains(&i)).collect();
        Ok(RowDecoder {
            names,
            keys,
            cols,
            projected,
            projected_names,
            fast: !options.dots_in_keys,
            options,
            hints: Vec::new(),
            paths: path_cols,
            has_paths,
            only_paths,
            rows: 0,
        })
    }

    /// Rows decoded since the last [`RowDecoder::finish`].
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes one line (its terminator removed). `Err` is what would fail the query on
    /// Athena (a malformed line without `ignore.malformed.json`, or a value that does not
    /// fit its column without `use.null.for.invalid.data`); nothing of the line is kept then.
    pub(crate) fn decode(&mut self, line: &str) -> Result<Decoded, String> {
        let row = self.rows;
        let t = java_trim(line);
        // Nested deeper than the reader's bound: malformed, found before any recursive walk.
        if t.len() > MAX_JSON_DEPTH
            && (t.starts_with('{') || t.starts_with('['))
            && nesting_exceeds(t.as_bytes(), MAX_JSON_DEPTH)
        {
            if !self.options.ignore_malformed {
                return Err(format!(
                    "malformed JSON ({}) and the table does not set ignore.malformed.json",
                    too_deep()
                ));
            }
            return Ok(self.null_row(row, format!("malformed JSON: {}", too_deep())));
        }
        if self.fast && t.starts_with('{') {
            let mut notes = Notes::default();
            if self.fast_row(t, &mut notes).is_ok() {
                self.paths_from_text(row);
                self.rows += 1;
                return Ok(Decoded::Row { nulled: notes.nulled });
            }
            self.truncate(row);
        }
        let outcome = {
            let mut refs: Vec<&mut ColBuilder> = self.cols.iter_mut().flatten().collect();
            openx::decode_tree(line, &self.projected_names, &mut refs, &self.projected, &self.options)
        };
        match outcome {
            Ok(LineOutcome::Row(notes)) => {
                self.paths_from_text(row);
                self.rows += 1;
                Ok(Decoded::Row { nulled: notes.nulled })
            }
            Ok(LineOutcome::NullRow(why)) => Ok(self.null_row(row, why)),
            Err(e) => {
                self.truncate(row);
                Err(e)
            }
        }
    }

    /// The line is a row of NULLs (its partition columns are set by the reader).
    fn null_row(&mut self, row: usize, why: String) -> Decoded {
        self.truncate(row);
        for c in self.cols.iter_mut().flatten() {
            c.append_null();
        }
        for p in &mut self.paths {
            p.b.append_null();
        }
        self.rows += 1;
        Decoded::NullRow(why)
    }

    fn truncate(&mut self, row: usize) {
        for c in self.cols.iter_mut().flatten() {
            c.truncate(row);
        }
        self.truncate_paths(row);
    }

    fn truncate_paths(&mut self, row: usize) {
        for p in &mut self.paths {
            p.b.truncate(row);
        }
    }

    /// The members of row `row` the line's walk did not give: from the column's text, as
    /// `json_extract_scalar` reads it (a string holding JSON, a NULL, an array, or a line
    /// the reference path read).
    fn paths_from_text(&mut self, row: usize) {
        let RowDecoder { paths, cols, .. } = self;
        for p in paths.iter_mut().filter(|p| p.b.len() == row) {
            let doc = cols[p.col].as_ref().and_then(ColBuilder::last_str);
            match doc.and_then(|d| functions::extract_scalar_key(d, &p.key)) {
                Some(v) => p.b.push_str_bytes(v.as_bytes()),
                None => p.b.append_null(),
            }
        }
    }

    fn fast_row(&mut self, t: &str, notes: &mut Notes) -> Fast<()> {
        let mut sc = Scanner::new(t);
        sc.enter()?;
        let row = self.rows;
        let RowDecoder { names, keys, cols, hints, options, paths, has_paths, only_paths, .. } = self;
        sc.skip_ws();
        if sc.peek() == Some(b'}') {
            sc.i += 1;
        } else {
            let mut k = 0;
            loop {
                sc.skip_ws();
                let idx = match hints.get(k) {
                    Some((hint, idx, true)) if sc.eat_plain_string(hint) => *idx,
                    _ => {
                        let key = sc.key()?;
                        match hints.get(k) {
                            Some((hint, idx, _)) if **hint == *key => *idx,
                            _ => {
                                let idx = keys.iter().position(|n| options.key_matches(n, &key));
                                remember(hints, k, &key, matches!(key, Cow::Borrowed(_)), idx)
                            }
                        }
                    }
                };
                sc.expect(b':', "`:`")?;
                k += 1;
                match idx.and_then(|i| cols[i].as_mut().map(|b| (i, b))) {
                    Some((i, b)) => {
                        if b.len() > row {
                            // A repeated key: the last one wins.
                            b.truncate(row);
                        }
                        if has_paths[i] {
                            for p in paths.iter_mut().filter(|p| p.col == i && p.b.len() > row) {
                                p.b.truncate(row);
                            }
                            let keep = !only_paths[i];
                            value_with_members(
                                &mut sc,
                                b,
                                options,
                                notes,
                                Path::top(&names[i]),
                                i,
                                paths,
                                keep,
                            )?;
                        } else {
                            value(&mut sc, b, options, notes, Path::top(&names[i]))?;
                        }
                    }
                    None => sc.skip_value(&mut true)?,
                }
                if !sc.more(b'}', "an object")? {
                    break;
                }
            }
        }
        sc.leave();
        // Trino reads one value and ignores whatever follows it on the line.
        notes.trailing(sc.slice(sc.i, t.len()));
        for b in cols.iter_mut().flatten() {
            if b.len() == row {
                b.append_null();
            }
        }
        Ok(())
    }

    /// The arrays of the members computed as columns (in the order given to
    /// [`RowDecoder::new`]) for the rows so far; call before [`RowDecoder::finish`].
    pub(crate) fn finish_paths(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        self.paths.iter_mut().map(|p| p.b.finish()).collect()
    }

    /// The arrays of the columns `indices` (projected ones) for the rows so far;
    /// resets the decoder for the next batch.
    pub(crate) fn finish(&mut self, indices: &[usize]) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            match self.cols[i].as_mut() {
                Some(b) => out.push(b.finish()?),
                None => {
                    return Err(ArrowError::InvalidArgumentError(format!(
                        "column {} was not projected",
                        self.names[i]
                    )));
                }
            }
        }
        self.rows = 0;
        Ok(out)
    }
}

/// Keeps `key` (and the column `idx` it matched) as the hint for the `k`-th key of the next
/// line; `plain`: it was written without escapes, so its text alone recognises it.
fn remember(
    hints: &mut Vec<(Box<str>, Option<usize>, bool)>,
    k: usize,
    key: &str,
    plain: bool,
    idx: Option<usize>,
) -> Option<usize> {
    let entry = (Box::from(key), idx, plain);
    if k < hints.len() {
        hints[k] = entry;
    } else {
        hints.push(entry);
    }
    idx
}

/// A scalar's text as Trino's reader holds it, and whether it was quoted.
fn scalar_text<'a>(lit: &'a Lit<'a>) -> Option<(&'a str, bool)> {
    match lit {
        Lit::Str(s) => Some((s, true)),
        Lit::Num(t) => Some((t, false)),
        Lit::Bool(true) => Some(("true", false)),
        Lit::Bool(false) => Some(("false", false)),
        Lit::Null | Lit::Object | Lit::Array => None,
    }
}

/// Decodes the value at the cursor into `b`, or gives up on anything unusual.
fn value(
    sc: &mut Scanner<'_>,
    b: &mut ColBuilder,
    o: &Options,
    notes: &mut Notes,
    path: Path<'_>,
) -> Fast<()> {
    sc.skip_ws();
    let next = sc.peek();
    match (&b.kind, next) {
        (Kind::Utf8 { .. }, Some(b'{' | b'[')) => {
            let start = sc.i;
            let mut compact = true;
            if !canonical_value(sc, o.case_insensitive, &mut compact)? {
                return Err(Fallback);
            }
            push_json_text(b, sc.slice(start, sc.i).as_bytes(), compact);
            Ok(())
        }
        (Kind::Struct { .. }, Some(b'{')) => struct_value(sc, b, o, notes, path),
        (Kind::Map { .. }, Some(b'{')) => map_value(sc, b, o, notes, path),
        (Kind::List { .. }, Some(b'[')) => list_value(sc, b, o, notes, path),
        (_, Some(b'{' | b'[')) => Err(Fallback),
        _ => {
            let lit = sc.lit()?;
            let Some((text, quoted)) = scalar_text(&lit) else {
                b.append_null();
                return Ok(());
            };
            match &b.kind {
                Kind::Utf8 { .. } => {
                    if quoted {
                        b.push_str_bytes(text.as_bytes());
                    } else {
                        match canonical_unquoted(text) {
                            Some(c) => b.push_str_bytes(c.as_bytes()),
                            None => b.push_str_bytes(text.as_bytes()),
                        }
                    }
                    Ok(())
                }
                Kind::Struct { .. } | Kind::Map { .. } | Kind::List { .. } => Err(Fallback),
                _ => {
                    scalar(b, text, notes, path);
                    Ok(())
                }
            }
        }
    }
}

/// [`value`] for a string column some members of which are returned as columns: an
/// object whose text is copied as-is gives them from the walk that checks it (its members
/// are unique then, so the first is the only one, as `json_extract_scalar` takes it), and
/// a member it lacks is NULL; the object's text is kept only if `keep`. Any other value
/// leaves them to [`RowDecoder::paths_from_text`].
#[allow(clippy::too_many_arguments)]
fn value_with_members(
    sc: &mut Scanner<'_>,
    b: &mut ColBuilder,
    o: &Options,
    notes: &mut Notes,
    path: Path<'_>,
    col: usize,
    paths: &mut [PathCol],
    keep: bool,
) -> Fast<()> {
    sc.skip_ws();
    if !(matches!(b.kind, Kind::Utf8 { .. }) && sc.peek() == Some(b'{')) {
        return value(sc, b, o, notes, path);
    }
    let start = sc.i;
    let mut compact = true;
    let canonical = canonical_object(sc, o.case_insensitive, &mut compact, &mut |key, raw| {
        for p in paths.iter_mut().filter(|p| p.col == col && *p.key == *key) {
            match functions::scalar_of_raw(raw) {
                Some(v) => p.b.push_str_bytes(v.as_bytes()),
                None => p.b.append_null(),
            }
        }
    })?;
    if !canonical {
        return Err(Fallback);
    }
    let row = b.len();
    for p in paths.iter_mut().filter(|p| p.col == col && p.b.len() == row) {
        p.b.append_null();
    }
    if keep {
        push_json_text(b, sc.slice(start, sc.i).as_bytes(), compact);
    } else {
        b.append_null();
    }
    Ok(())
}

/// An object's or array's text as a string column holds it: compacted unless it already is.
fn push_json_text(b: &mut ColBuilder, raw: &[u8], compact: bool) {
    if compact {
        b.push_str_bytes(raw);
    } else {
        b.push_str_with(|data| push_compact_json(data, raw));
    }
}

/// A scalar column's value from its text (the conversions of [`openx`]); NULL and a note
/// when it does not convert.
fn scalar(b: &mut ColBuilder, text: &str, notes: &mut Notes, path: Path<'_>) {
    let ok = match &mut b.kind {
        Kind::Int { values, min, max } => {
            openx::parse_long(text).filter(|v| (*min..=*max).contains(v)).map(|v| values.push(v)).is_some()
        }
        Kind::Float(values) => {
            let v = openx::parse_double(text);
            let v = if b.data_type == DataType::Float32 { v.map(|x| f64::from(x as f32)) } else { v };
            v.map(|v| values.push(v)).is_some()
        }
        Kind::Bool(values) => {
            values.push(openx::parse_boolean(text));
            true
        }
        Kind::Date(values) => openx::parse_date(text).map(|v| values.push(v)).is_some(),
        Kind::Timestamp(values) => openx::parse_timestamp(text).map(|v| values.push(v)).is_some(),
        Kind::Decimal { values, precision, scale } => {
            let limit = 10i128.pow(u32::from(*precision));
            openx::BigDec::parse(text)
                .and_then(|d| d.rescale(i64::from(*scale), true))
                .filter(|v| v.abs() < limit)
                .map(|v| values.push(v))
                .is_some()
        }
        Kind::Utf8 { .. } | Kind::Struct { .. } | Kind::Map { .. } | Kind::List { .. } => {
            unreachable!("scalar() is for scalar columns")
        }
    };
    if ok {
        b.push_valid();
    } else {
        b.append_null();
        notes.nulled.push(format!("column {path}: cannot read {text:?} as {}", sql_type(&b.data_type)));
    }
}

fn struct_value(
    sc: &mut Scanner<'_>,
    b: &mut ColBuilder,
    o: &Options,
    notes: &mut Notes,
    path: Path<'_>,
) -> Fast<()> {
    let row = b.len();
    let Kind::Struct { names, children, .. } = &mut b.kind else {
        unreachable!("struct_value on a struct builder")
    };
    sc.enter()?;
    sc.skip_ws();
    if sc.peek() == Some(b'}') {
        sc.i += 1;
    } else {
        loop {
            let key = sc.key()?;
            sc.expect(b':', "`:`")?;
            match names.iter().position(|n| o.key_matches(o.json_name(n), &key)) {
                Some(i) => {
                    let c = &mut children[i];
                    if c.len() > row {
                        c.truncate(row);
                    }
                    value(sc, c, o, notes, path.child(&names[i]))?;
                }
                None => sc.skip_value(&mut true)?,
            }
            if !sc.more(b'}', "an object")? {
                break;
            }
        }
    }
    sc.leave();
    for c in children.iter_mut() {
        if c.len() == row {
            c.append_null();
        }
    }
    b.push_valid();
    Ok(())
}

/// A map from an object: string keys only, and no two keys equal under the reader's key
/// equality (Trino keeps the last of those; the reference path handles it).
fn map_value(
    sc: &mut Scanner<'_>,
    b: &mut ColBuilder,
    o: &Options,
    notes: &mut Notes,
    path: Path<'_>,
) -> Fast<()> {
    let Kind::Map { offsets, keys, values, .. } = &mut b.kind else {
        unreachable!("map_value on a map builder")
    };
    if !matches!(keys.kind, Kind::Utf8 { .. }) {
        return Err(Fallback);
    }
    let first = keys.len();
    let value_path = path.child("value");
    sc.enter()?;
    sc.skip_ws();
    if sc.peek() == Some(b'}') {
        sc.i += 1;
    } else {
        let mut seen: openx::SeenKeys<Cow<'_, str>> = openx::SeenKeys::default();
        loop {
            let key = sc.key()?;
            if seen.contains(&key, o.case_insensitive, |k, n| o.key_matches(k, n)) {
                return Err(Fallback);
            }
            keys.push_str_bytes(key.as_bytes());
            seen.push(key, o.case_insensitive);
            sc.expect(b':', "`:`")?;
            value(sc, values, o, notes, value_path)?;
            if !sc.more(b'}', "an object")? {
                break;
            }
        }
    }
    sc.leave();
    debug_assert!(keys.len() >= first);
    offsets.push(keys.len() as i32);
    b.push_valid();
    Ok(())
}

fn list_value(
    sc: &mut Scanner<'_>,
    b: &mut ColBuilder,
    o: &Options,
    notes: &mut Notes,
    path: Path<'_>,
) -> Fast<()> {
    let Kind::List { offsets, child, .. } = &mut b.kind else { unreachable!("list_value on a list builder") };
    let item_path = path.child("item");
    sc.enter()?;
    sc.skip_ws();
    if sc.peek() == Some(b']') {
        sc.i += 1;
    } else {
        loop {
            value(sc, child, o, notes, item_path)?;
            if !sc.more(b']', "an array")? {
                break;
            }
        }
    }
    sc.leave();
    offsets.push(child.len() as i32);
    b.push_valid();
    Ok(())
}

/// Validates and skips one value, saying whether its compacted text is what Trino's
/// `JsonWriter` writes for it: no `\/` or `\u` escapes, no `</`, numbers already in
/// `BigDecimal` form, and no repeated keys (under the reader's key equality).
fn canonical_value(sc: &mut Scanner<'_>, ci: bool, compact: &mut bool) -> JResult<bool> {
    sc.skip_ws();
    match sc.peek() {
        Some(b'{') => canonical_object(sc, ci, compact, &mut |_, _| {}),
        Some(b'[') => {
            sc.enter()?;
            *compact &= !sc.skip_ws();
            let mut canonical = true;
            if sc.peek() == Some(b']') {
                sc.i += 1;
            } else {
                loop {
                    *compact &= !sc.skip_ws();
                    canonical &= canonical_value(sc, ci, compact)?;
                    *compact &= !sc.skip_ws();
                    if !sc.more(b']', "an array")? {
                        break;
                    }
                }
            }
            sc.leave();
            Ok(canonical)
        }
        Some(b'"') => {
            let start = sc.i;
            sc.skip_value(&mut true)?;
            Ok(string_canonical(sc.slice(start, sc.i)))
        }
        Some(b'-' | b'0'..=b'9') => {
            let (text, integer) = sc.number()?;
            Ok((integer && text != "-0") || canonical_unquoted(text).as_deref() == Some(text))
        }
        _ => {
            sc.skip_value(&mut true)?;
            Ok(true)
        }
    }
}

/// [`canonical_value`] of the object at the cursor, handing each member's key and raw value
/// text to `member` as it goes.
fn canonical_object<'a>(
    sc: &mut Scanner<'a>,
    ci: bool,
    compact: &mut bool,
    member: &mut dyn FnMut(&str, &'a str),
) -> JResult<bool> {
    sc.enter()?;
    *compact &= !sc.skip_ws();
    let mut canonical = true;
    // The keys so far: the first few on the stack (most objects have no more).
    let mut inline: [Cow<'_, str>; 8] = Default::default();
    let mut spilled: openx::SeenKeys<Cow<'_, str>> = openx::SeenKeys::default();
    let mut n = 0;
    if sc.peek() == Some(b'}') {
        sc.i += 1;
    } else {
        loop {
            *compact &= !sc.skip_ws();
            let start = sc.i;
            let key = sc.key()?;
            // Once the object is known to be written differently, its keys need no more
            // checks (a key repeated 20,000 times would be compared with every occurrence).
            let checked = canonical;
            if checked {
                let eq = |k: &str, key: &str| if ci { openx::eq_ignore_case(k, key) } else { k == key };
                canonical = string_canonical(sc.slice(start, sc.i))
                    && !(inline[..n.min(inline.len())].iter().any(|k| eq(k, &key))
                        || spilled.contains(&key, ci, eq));
            }
            *compact &= !sc.skip_ws();
            sc.expect(b':', "`:`")?;
            *compact &= !sc.skip_ws();
            let at = sc.i;
            canonical &= canonical_value(sc, ci, compact)?;
            member(&key, sc.slice(at, sc.i));
            if checked {
                match inline.get_mut(n) {
                    Some(slot) => *slot = key,
                    None => spilled.push(key, ci),
                }
                n += 1;
            }
            *compact &= !sc.skip_ws();
            if !sc.more(b'}', "an object")? {
                break;
            }
        }
    }
    sc.leave();
    Ok(canonical)
}

/// Whether a quoted string's JSON text (quotes included) is written back unchanged: no
/// `\/`, `\u` or `</` in it (one pass over the bytes that can start one).
fn string_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    memchr::memchr2_iter(b'\\', b'<', b).all(|i| {
        let next = b.get(i + 1).copied();
        if b[i] == b'<' { next != Some(b'/') } else { !matches!(next, Some(b'/' | b'u')) }
    })
}

/// Where a value sits, for messages (`device.os`): built as the decoder descends, written
/// out only when a message needs it.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    name: &'a str,
}

impl<'a> Path<'a> {
    fn top(name: &'a str) -> Self {
        Path { parent: None, name }
    }

    fn child(&'a self, name: &'a str) -> Path<'a> {
        Path { parent: Some(self), name }
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = self.parent {
            write!(f, "{p}.")?;
        }
        f.write_str(self.name)
    }
}

/// How deeply a line's objects and arrays may nest. Trino's OpenX reader has no bound: its
/// `JsonReader` (`lib/trino-hive-formats/.../line/openxjson/JsonReader.java:77-191`) recurses
/// once per level (`nextValue` -> `readObject`/`readArray` -> `nextValue`), so a deep enough
/// line throws `StackOverflowError`, which `ignore.malformed.json` does not catch (only
/// `InvalidJsonException`, `OpenXJsonDeserializer.java:150-180`): the query fails. strata
/// reads such a line as malformed instead (a row of NULLs under `ignore.malformed.json`,
/// quarantined with why), past the depth Jackson bounds by default
/// (`StreamReadConstraints.DEFAULT_MAX_DEPTH` and `StreamWriteConstraints.DEFAULT_MAX_DEPTH`,
/// 1000, jackson-core 2.15 and 2.16: depth 1000 passes, 1001 fails). Every walk is bounded by
/// it: [`nesting_exceeds`] finds such a line in one pass before any recursion, the reference
/// reader (`openx::read_json`) counts its depth too, and the JSON functions write no value
/// nested deeper (`functions::json_text::write`). The Athena stand-in's port applies the same
/// bound the same way (`tests/athena_standin/openx.py`).
pub(crate) const MAX_JSON_DEPTH: usize = 1000;

/// Why a line or value nested deeper than [`MAX_JSON_DEPTH`] is not read.
pub(crate) fn too_deep() -> String {
    format!("objects and arrays nested deeper than {MAX_JSON_DEPTH} levels")
}

/// Whether the lenient reader (`openx::read_json`) would open more than `max` objects and
/// arrays at once reading `text` (a trimmed line starting with `{` or `[`, or any JSON
/// text): one pass over the reader's own tokens, no recursion. Brackets count only where
/// the reader takes them: not in strings (quoted either way, a backslash escaping the next
/// character), in `#`, `//` or `/* */` comments, or after the first value (which the reader
/// does not read); a quote inside an unquoted literal (`it's`) opens no string. Where the
/// reader would stop on an error first (a lone `/`, `\` or form feed where a token starts,
/// an unterminated string or comment), the depth reached before it is what counts.
pub(crate) fn nesting_exceeds(text: &[u8], max: usize) -> bool {
    // `JsonReader.literalToken`: the characters that end an unquoted literal.
    let ends_literal = |b: u8| b" \r\n\t\x0c{}[]/\\:,=;#".contains(&b);
    // `skipEndOfLineComment`: past the next CR or LF.
    let line_end = |i: usize| memchr::memchr2(b'\r', b'\n', &text[i..]).map_or(text.len(), |e| i + e + 1);
    let (mut depth, mut i) = (0usize, 0usize);
    while let Some(&c) = text.get(i) {
        i += 1;
        match c {
            b'\t' | b' ' | b'\n' | b'\r' | b',' | b';' | b':' => {}
            b'=' => {
                if text.get(i) == Some(&b'>') {
                    i += 1;
                }
            }
            b'#' => i = line_end(i),
            b'/' if text.get(i) == Some(&b'/') => i = line_end(i),
            b'/' if text.get(i) == Some(&b'*') => match memchr::memmem::find(&text[i + 1..], b"*/") {
                Some(e) => i += 1 + e + 2,
                None => return false,
            },
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return false;
                }
            }
            b'"' | b'\'' => loop {
                match text.get(i..).and_then(|rest| memchr::memchr2(c, b'\\', rest)) {
                    None => return false,
                    Some(e) if text[i + e] == c => {
                        i += e + 1;
                        break;
                    }
                    Some(e) => i += e + 2,
                }
            },
            _ if ends_literal(c) => return false,
            _ => {
                while text.get(i).is_some_and(|&b| !ends_literal(b)) {
                    i += 1;
                }
            }
        }
    }
    false
}
