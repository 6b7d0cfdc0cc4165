//! How deep a SQL expression the embedded engine plans. DataFusion plans an expression by
//! recursion over its depth (a predicate of thousands of ORs is a tree thousands deep), and
//! its optimizer takes time quadratic in it (2,000 ORs: 1 s; 5,000: 7 s; 20,000: 104 s, a
//! debug build), so deeper statements are refused with a message before planning, never
//! left to overflow a stack. The engine's threads have a stack sized for the limit.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::engine::EngineError;

/// The deepest expression planned (a chain of `OR`s counts one level per `OR`).
pub const MAX_EXPR_DEPTH: usize = 4_000;

/// Operators past which a statement is refused unread: the depth walk below recurses once
/// per level, and this bounds it.
const MAX_OPERATORS: usize = 200_000;

/// Refuses `sql` if an expression in it is nested deeper than [`MAX_EXPR_DEPTH`]. A
/// statement the parser does not take is let through: the planner says what is wrong.
pub fn check(sql: &str) -> Result<(), EngineError> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else { return Ok(()) };
    // No expression can be deeper than the statement has operators: most stop here.
    let operators = tokens.iter().filter(|t| is_operator(t)).count();
    if operators <= MAX_EXPR_DEPTH {
        return Ok(());
    }
    if operators > MAX_OPERATORS {
        return Err(EngineError::Query(format!(
            "the statement has {operators} operators; strata reads at most {MAX_OPERATORS}, and plans expressions at most {MAX_EXPR_DEPTH} levels deep: write a long list of alternatives as `x IN (...)` or a join with a VALUES table"
        )));
    }
    let Ok(statements) = Parser::new(&GenericDialect {}).with_tokens(tokens).parse_statements() else {
        return Ok(());
    };
    let mut depth = Depth::default();
    let _ = statements.visit(&mut depth);
    if depth.max <= MAX_EXPR_DEPTH {
        return Ok(());
    }
    Err(EngineError::Query(format!(
        "an expression is nested more than {MAX_EXPR_DEPTH} levels deep, as deep as strata plans: write a long list of alternatives as `x IN (...)` or a join with a VALUES table"
    )))
}

fn is_operator(t: &Token) -> bool {
    use datafusion::sql::sqlparser::keywords::Keyword;
    match t {
        Token::Word(w) => matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::NOT),
        Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Ampersand
        | Token::Pipe
        | Token::Caret
        | Token::LParen => true,
        _ => false,
    }
}

/// The deepest nesting of expressions seen, stopping as soon as it passes the limit.
#[derive(Default)]
struct Depth {
    now: usize,
    max: usize,
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.now += 1;
        self.max = self.max.max(self.now);
        if self.max > MAX_EXPR_DEPTH { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.now -= 1;
        ControlFlow::Continue(())
    }
}
