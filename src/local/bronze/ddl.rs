//! Parses the Athena `CREATE EXTERNAL TABLE` statement the project renders for a
//! Bronze table into an Arrow schema plus its storage settings, so the local engine
//! reads exactly the table Athena would.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};

use super::lexer::{Tok, Token, tokenize};

/// A parsed `CREATE EXTERNAL TABLE` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalTable {
    /// The database the table is qualified with, if any.
    pub database: Option<String>,
    /// Table name (lower-cased, as Hive stores it).
    pub name: String,
    /// Data columns (not the partition columns), names lower-cased, all nullable.
    pub columns: SchemaRef,
    /// Partition column names in declaration order; they are always read as Utf8.
    pub partition_columns: Vec<String>,
    /// `LOCATION '...'` as written.
    pub location: Option<String>,
    /// `ROW FORMAT SERDE '...'` class name.
    pub serde: Option<String>,
    /// `WITH SERDEPROPERTIES (...)`.
    pub serde_properties: BTreeMap<String, String>,
    /// `TBLPROPERTIES (...)`.
    pub table_properties: BTreeMap<String, String>,
    /// `STORED AS <format>` or the `INPUTFORMAT` class, if given.
    pub stored_as: Option<String>,
}

/// Why a DDL statement could not be parsed; every variant carries the 1-based
/// line and column in the DDL text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DdlError {
    #[error("{line}:{column}: expected {expected}, found {found}")]
    Unexpected { expected: String, found: String, line: usize, column: usize },
    #[error("{line}:{column}: expected {expected}, found end of input")]
    UnexpectedEnd { expected: String, line: usize, column: usize },
    #[error("{line}:{column}: unterminated {what}")]
    Unterminated { what: &'static str, line: usize, column: usize },
    #[error("{line}:{column}: invalid character {ch:?}")]
    InvalidCharacter { ch: char, line: usize, column: usize },
    #[error("{line}:{column}: unsupported column type `{name}`")]
    UnsupportedType { name: String, line: usize, column: usize },
    #[error("{line}:{column}: invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String, line: usize, column: usize },
    #[error("{line}:{column}: duplicate column `{name}`")]
    DuplicateColumn { name: String, line: usize, column: usize },
}

impl DdlError {
    /// The (line, column) the error points at, both 1-based.
    pub fn position(&self) -> (usize, usize) {
        match self {
            DdlError::Unexpected { line, column, .. }
            | DdlError::UnexpectedEnd { line, column, .. }
            | DdlError::Unterminated { line, column, .. }
            | DdlError::InvalidCharacter { line, column, .. }
            | DdlError::UnsupportedType { line, column, .. }
            | DdlError::Invalid { line, column, .. }
            | DdlError::DuplicateColumn { line, column, .. } => (*line, *column),
        }
    }
}

/// Parses one `CREATE [EXTERNAL] TABLE` statement (an optional trailing `;` is allowed).
pub fn parse_external_table(ddl: &str) -> Result<ExternalTable, DdlError> {
    let tokens = tokenize(ddl)?;
    let (end_line, end_column) = end_position(ddl);
    let mut p = Parser { tokens, pos: 0, end_line, end_column };
    p.statement()
}

fn end_position(text: &str) -> (usize, usize) {
    let line = 1 + text.matches('\n').count();
    let column = 1 + text.rsplit('\n').next().map_or(0, |l| l.chars().count());
    (line, column)
}

pub(crate) struct Parser {
    tokens: Vec<Token>,
    pub(crate) pos: usize,
    end_line: usize,
    end_column: usize,
}

impl Parser {
    pub(crate) fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    pub(crate) fn error(&self, expected: &str) -> DdlError {
        match self.tokens.get(self.pos) {
            Some(t) => DdlError::Unexpected {
                expected: expected.to_string(),
                found: t.tok.describe(),
                line: t.line,
                column: t.column,
            },
            None => DdlError::UnexpectedEnd {
                expected: expected.to_string(),
                line: self.end_line,
                column: self.end_column,
            },
        }
    }

    pub(crate) fn here(&self) -> (usize, usize) {
        self.tokens.get(self.pos).map_or((self.end_line, self.end_column), |t| (t.line, t.column))
    }

    pub(crate) fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    pub(crate) fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub(crate) fn expect_kw(&mut self, kw: &str) -> Result<(), DdlError> {
        if self.eat_kw(kw) { Ok(()) } else { Err(self.error(&format!("keyword {kw}"))) }
    }

    pub(crate) fn eat_punct(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(&Tok::Punct(c));
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub(crate) fn expect_punct(&mut self, c: char) -> Result<(), DdlError> {
        if self.eat_punct(c) { Ok(()) } else { Err(self.error(&format!("'{c}'"))) }
    }

    pub(crate) fn ident(&mut self, what: &str) -> Result<String, DdlError> {
        match self.peek() {
            Some(Tok::Word(w) | Tok::Quoted(w)) => {
                let w = w.to_lowercase();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.error(what)),
        }
    }

    pub(crate) fn string(&mut self, what: &str) -> Result<String, DdlError> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error(what)),
        }
    }

    pub(crate) fn number(&mut self, what: &str) -> Result<u64, DdlError> {
        let (line, column) = self.here();
        match self.peek() {
            Some(Tok::Num(n)) => {
                let v = n.parse().map_err(|_| DdlError::Invalid {
                    what: "number",
                    detail: n.clone(),
                    line,
                    column,
                })?;
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.error(what)),
        }
    }

    fn statement(&mut self) -> Result<ExternalTable, DdlError> {
        self.expect_kw("CREATE")?;
        self.eat_kw("EXTERNAL");
        self.expect_kw("TABLE")?;
        if self.eat_kw("IF") {
            self.expect_kw("NOT")?;
            self.expect_kw("EXISTS")?;
        }
        let first = self.ident("table name")?;
        let (database, name) = if self.eat_punct('.') {
            (Some(first), self.ident("table name after '.'")?)
        } else {
            (None, first)
        };
        let mut table = ExternalTable {
            database,
            name,
            columns: Arc::new(Schema::empty()),
            partition_columns: Vec::new(),
            location: None,
            serde: None,
            serde_properties: BTreeMap::new(),
            table_properties: BTreeMap::new(),
            stored_as: None,
        };
        let mut fields = self.column_list()?;
        let data_count = fields.len();
        loop {
            if self.peek().is_none() {
                break;
            } else if self.eat_punct(';') {
                if self.peek().is_some() {
                    return Err(self.error("end of statement after ';'"));
                }
                break;
            } else if self.eat_kw("COMMENT") {
                self.string("table comment string")?;
            } else if self.eat_kw("PARTITIONED") {
                self.expect_kw("BY")?;
                let parts = self.column_list()?;
                fields.extend(parts);
            } else if self.eat_kw("ROW") {
                self.expect_kw("FORMAT")?;
                self.row_format(&mut table)?;
            } else if self.eat_kw("WITH") {
                self.expect_kw("SERDEPROPERTIES")?;
                table.serde_properties.extend(self.properties()?);
            } else if self.eat_kw("STORED") {
                self.expect_kw("AS")?;
                if self.eat_kw("INPUTFORMAT") {
                    table.stored_as = Some(self.string("input format class")?);
                    self.expect_kw("OUTPUTFORMAT")?;
                    self.string("output format class")?;
                } else {
                    table.stored_as = Some(self.ident("storage format")?);
                }
            } else if self.eat_kw("LOCATION") {
                table.location = Some(self.string("location string")?);
            } else if self.eat_kw("TBLPROPERTIES") {
                table.table_properties.extend(self.properties()?);
            } else {
                return Err(self.error(
                    "a table clause (COMMENT, PARTITIONED BY, ROW FORMAT, STORED AS, \
                     LOCATION, TBLPROPERTIES)",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (f, line, column) in &fields {
            if !seen.insert(f.name().clone()) {
                return Err(DdlError::DuplicateColumn {
                    name: f.name().clone(),
                    line: *line,
                    column: *column,
                });
            }
        }
        let partitions = fields.split_off(data_count);
        table.partition_columns = partitions.into_iter().map(|(f, ..)| f.name().clone()).collect();
        table.columns = Arc::new(Schema::new(fields.into_iter().map(|(f, ..)| f).collect::<Vec<_>>()));
        Ok(table)
    }

    fn row_format(&mut self, table: &mut ExternalTable) -> Result<(), DdlError> {
        if self.eat_kw("SERDE") {
            table.serde = Some(self.string("serde class string")?);
            if self.is_kw("WITH") {
                self.pos += 1;
                self.expect_kw("SERDEPROPERTIES")?;
                table.serde_properties.extend(self.properties()?);
            }
            return Ok(());
        }
        self.expect_kw("DELIMITED")?;
        table.serde = Some("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".to_string());
        // FIELDS TERMINATED BY 'x' [ESCAPED BY 'y'], LINES TERMINATED BY '\n', ... :
        // keep the literals as serde properties under the clause's words.
        let mut words = Vec::new();
        while let Some(tok) = self.peek() {
            match tok {
                Tok::Word(w)
                    if !["STORED", "LOCATION", "TBLPROPERTIES", "WITH"]
                        .iter()
                        .any(|k| w.eq_ignore_ascii_case(k)) =>
                {
                    words.push(w.to_lowercase());
                    self.pos += 1;
                }
                Tok::Str(s) => {
                    table.serde_properties.insert(words.join("."), s.clone());
                    words.clear();
                    self.pos += 1;
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn properties(&mut self) -> Result<BTreeMap<String, String>, DdlError> {
        let mut out = BTreeMap::new();
        self.expect_punct('(')?;
        if self.eat_punct(')') {
            return Ok(out);
        }
        loop {
            let key = self.string("property name string")?;
            self.expect_punct('=')?;
            let value = self.string("property value string")?;
            out.insert(key, value);
            if self.eat_punct(')') {
                return Ok(out);
            }
            if !self.eat_punct(',') {
                return Err(self.error("',' or ')' in property list"));
            }
        }
    }

    /// `( name type [COMMENT '...'], ... )`, with each field's position.
    fn column_list(&mut self) -> Result<Vec<(Field, usize, usize)>, DdlError> {
        self.expect_punct('(')?;
        let mut cols = Vec::new();
        loop {
            let (line, column) = self.here();
            let name = self.ident("column name")?;
            let ty = self.data_type()?;
            if self.eat_kw("COMMENT") {
                self.string("column comment string")?;
            }
            cols.push((Field::new(name, ty, true), line, column));
            if self.eat_punct(')') {
                return Ok(cols);
            }
            if !self.eat_punct(',') {
                return Err(self.error("',' or ')' after column definition"));
            }
        }
    }
}
