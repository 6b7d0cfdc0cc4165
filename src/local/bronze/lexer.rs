//! Tokenizer for Hive/Athena DDL text, tracking the line:column of every token so
//! that parse errors can point at the offending spot.

use super::ddl::DdlError;

/// What a token is; positions are kept alongside in [`Token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word (keyword or identifier), as written.
    Word(String),
    /// A `backquoted` identifier, without the quotes.
    Quoted(String),
    /// A '...' or "..." string literal, unescaped.
    Str(String),
    /// An unsigned integer literal.
    Num(String),
    /// One punctuation character: ( ) < > , : . = ;
    Punct(char),
}

/// A token and where it starts (1-based line and column, counted in characters).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub line: usize,
    pub column: usize,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Quoted(w) => format!("`{w}`"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Punct(c) => format!("'{c}'"),
        }
    }
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    column: usize,
}

impl Cursor<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }
}

/// Splits `text` into tokens, dropping whitespace and `--` / `/* */` comments.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, DdlError> {
    let mut cur = Cursor { chars: text.chars().peekable(), line: 1, column: 1 };
    let mut out = Vec::new();
    while let Some(c) = cur.peek() {
        let (line, column) = (cur.line, cur.column);
        if c.is_whitespace() {
            cur.bump();
            continue;
        }
        let tok = match c {
            '-' => {
                cur.bump();
                if cur.peek() != Some('-') {
                    return Err(DdlError::InvalidCharacter { ch: '-', line, column });
                }
                while let Some(c) = cur.bump() {
                    if c == '\n' {
                        break;
                    }
                }
                continue;
            }
            '/' => {
                cur.bump();
                if cur.peek() != Some('*') {
                    return Err(DdlError::InvalidCharacter { ch: '/', line, column });
                }
                cur.bump();
                let mut prev = ' ';
                loop {
                    match cur.bump() {
                        Some('/') if prev == '*' => break,
                        Some(c) => prev = c,
                        None => {
                            return Err(DdlError::Unterminated { what: "comment", line, column });
                        }
                    }
                }
                continue;
            }
            '`' => {
                cur.bump();
                let mut s = String::new();
                loop {
                    match cur.bump() {
                        // A doubled backquote stands for one backquote.
                        Some('`') if cur.peek() == Some('`') => {
                            cur.bump();
                            s.push('`');
                        }
                        Some('`') => break,
                        Some(c) => s.push(c),
                        None => {
                            return Err(DdlError::Unterminated { what: "quoted identifier", line, column });
                        }
                    }
                }
                Tok::Quoted(s)
            }
            '\'' | '"' => {
                cur.bump();
                Tok::Str(string_literal(&mut cur, c, line, column)?)
            }
            '(' | ')' | '<' | '>' | ',' | ':' | '.' | '=' | ';' => {
                cur.bump();
                Tok::Punct(c)
            }
            c if c.is_ascii_digit() => {
                let mut s = String::new();
                while let Some(d) = cur.peek().filter(char::is_ascii_digit) {
                    s.push(d);
                    cur.bump();
                }
                Tok::Num(s)
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut s = String::new();
                while let Some(d) = cur.peek().filter(|d| d.is_alphanumeric() || *d == '_' || *d == '$') {
                    s.push(d);
                    cur.bump();
                }
                Tok::Word(s)
            }
            other => {
                return Err(DdlError::InvalidCharacter { ch: other, line, column });
            }
        };
        out.push(Token { tok, line, column });
    }
    Ok(out)
}

/// Reads a string literal whose opening `quote` was consumed; Hive accepts both
/// backslash escapes and a doubled quote.
fn string_literal(cur: &mut Cursor<'_>, quote: char, line: usize, column: usize) -> Result<String, DdlError> {
    let unterminated = || DdlError::Unterminated { what: "string literal", line, column };
    let mut s = String::new();
    loop {
        match cur.bump().ok_or_else(unterminated)? {
            '\\' => match cur.bump().ok_or_else(unterminated)? {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0' => s.push('\0'),
                other => s.push(other),
            },
            c if c == quote && cur.peek() == Some(quote) => {
                cur.bump();
                s.push(quote);
            }
            c if c == quote => return Ok(s),
            c => s.push(c),
        }
    }
}
