//! Recursive-descent parser: token helpers, statements, `let`, pipe
//! expressions and tabular sources. Operators live in `parser_ops.rs`,
//! scalar expressions and literals in `parser_expr.rs`.

use super::ast::*;
use super::error::ParseError;
use super::lexer::{Token, TokenKind, tokenize};

/// Maximum nesting of parenthesised / bracketed / function-body constructs.
/// Keeps recursion bounded well inside a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 256;

/// Stack the parser may use below its entry point before it reports
/// "nesting too deep" (whichever of this and [`MAX_DEPTH`] comes first).
/// Fits comfortably in the 2 MiB default stack of spawned threads, in
/// debug builds too.
pub const STACK_BUDGET: usize = 768 * 1024;

/// Approximate current stack position (address of a local).
#[inline(never)]
fn stack_position() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) toks: Vec<Token>,
    pub(super) pos: usize,
    pub(super) depth: usize,
    pub(super) eof: Token,
    pub(super) stack_base: usize,
    /// Editor convention: a blank line ends a statement that cannot continue.
    pub(super) blank_line_separates: bool,
}

/// Parses a query text strictly by the grammar: statements are separated by
/// `;` and the text must hold exactly one statement sequence.
pub fn parse(src: &str) -> Result<Query, ParseError> {
    parse_with(src, false)
}

/// Parses a *query document* as written in the Kusto Explorer / Advanced
/// Hunting editors, where several queries may follow each other separated by
/// blank lines. Identical to [`parse`] except that when a statement is
/// complete and the next token cannot continue it, a blank line (a line with
/// only whitespace) between them acts as a `;`. The result may then hold
/// several [`Statement::Query`] statements (a batch).
pub fn parse_document(src: &str) -> Result<Query, ParseError> {
    parse_with(src, true)
}

fn parse_with(src: &str, blank_line_separates: bool) -> Result<Query, ParseError> {
    if let Some(off) = control_command_start(src) {
        return Err(control_command_error(src, off));
    }
    let toks = tokenize(src)?;
    let eof = Token {
        kind: TokenKind::Eof,
        span: Span::new(src.len(), src.len()),
    };
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
        eof,
        stack_base: stack_position(),
        blank_line_separates,
    };
    p.parse_query()
}

/// Offset of a leading `.` (control command), skipping whitespace and comments.
fn control_command_start(src: &str) -> Option<usize> {
    let mut rest = src;
    loop {
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix("//") {
            rest = after
                .find('\n')
                .map_or("", |i| after.get(i..).unwrap_or(""));
            continue;
        }
        return trimmed.starts_with('.').then(|| src.len() - trimmed.len());
    }
}

fn control_command_error(src: &str, off: usize) -> ParseError {
    let word: String = src
        .get(off..)
        .unwrap_or("")
        .chars()
        .take_while(|c| *c == '.' || c.is_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    ParseError::at(
        src,
        off,
        "a query (control commands are not part of the query language)",
        format!("control command `{word}`"),
    )
}

impl<'a> Parser<'a> {
    // ---------------------------------------------------------------- tokens

    pub(super) fn tok_at(&self, n: usize) -> &Token {
        self.toks.get(self.pos + n).unwrap_or(&self.eof)
    }
    pub(super) fn tok(&self) -> &Token {
        self.tok_at(0)
    }
    pub(super) fn kind(&self) -> &TokenKind {
        &self.tok().kind
    }
    pub(super) fn kind_at(&self, n: usize) -> &TokenKind {
        &self.tok_at(n).kind
    }
    pub(super) fn span(&self) -> Span {
        self.tok().span
    }
    /// End offset of the previously consumed token.
    pub(super) fn prev_end(&self) -> usize {
        match self.pos.checked_sub(1).and_then(|i| self.toks.get(i)) {
            Some(t) => t.span.end,
            None => 0,
        }
    }
    pub(super) fn bump(&mut self) -> Token {
        let t = self.tok().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    pub(super) fn at(&self, k: &TokenKind) -> bool {
        self.kind() == k
    }
    pub(super) fn eat(&mut self, k: &TokenKind) -> bool {
        if self.at(k) {
            self.bump();
            true
        } else {
            false
        }
    }
    pub(super) fn expect(&mut self, k: &TokenKind, what: &str) -> Result<Span, ParseError> {
        if self.at(k) {
            Ok(self.bump().span)
        } else {
            Err(self.error(what))
        }
    }
    pub(super) fn word_at(&self, n: usize) -> Option<&str> {
        match self.kind_at(n) {
            TokenKind::Ident(s) => Some(s),
            _ => None,
        }
    }
    pub(super) fn is_word(&self, w: &str) -> bool {
        self.word_at(0) == Some(w)
    }
    pub(super) fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.bump();
            true
        } else {
            false
        }
    }
    pub(super) fn expect_word(&mut self, w: &str) -> Result<Span, ParseError> {
        if self.is_word(w) {
            Ok(self.bump().span)
        } else {
            Err(self.error(&format!("`{w}`")))
        }
    }
    /// Is token `n` directly adjacent (no whitespace) to the token before it
    /// (for `n == 0`, the previously consumed token)?
    pub(super) fn adjacent(&self, n: usize) -> bool {
        let prev_end = match n {
            0 if self.pos == 0 => return false,
            0 => self.prev_end(),
            _ => self.tok_at(n - 1).span.end,
        };
        self.tok_at(n).span.start == prev_end
    }
    /// True at `|`, `;`, a closing bracket or end of input.
    pub(super) fn at_operator_end(&self) -> bool {
        use TokenKind::*;
        matches!(self.kind(), Pipe | Semi | RParen | RBracket | RBrace | Eof)
    }

    pub(super) fn enter(&mut self) -> Result<(), ParseError> {
        let used = self.stack_base.abs_diff(stack_position());
        if self.depth >= MAX_DEPTH || used > STACK_BUDGET {
            return Err(self.error(&format!(
                "less deeply nested syntax (at most {MAX_DEPTH} levels of nesting)"
            )));
        }
        self.depth += 1;
        Ok(())
    }
    pub(super) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---------------------------------------------------------------- errors

    pub(super) fn describe(&self, t: &Token) -> String {
        if t.kind == TokenKind::Eof {
            return "end of input".into();
        }
        let text = self.src.get(t.span.start..t.span.end).unwrap_or("");
        let mut snippet: String = text.chars().take(40).collect();
        if snippet.len() < text.len() {
            snippet.push('…');
        }
        let snippet = snippet.replace('\n', "\\n");
        match t.kind {
            TokenKind::Str(_) => format!("string literal {snippet}"),
            _ => format!("`{snippet}`"),
        }
    }
    pub(super) fn error(&self, expected: &str) -> ParseError {
        let t = self.tok();
        ParseError::at(self.src, t.span.start, expected, self.describe(t))
    }
    pub(super) fn error_at(&self, span: Span, expected: &str, found: &str) -> ParseError {
        ParseError::at(self.src, span.start, expected, found)
    }

    // ---------------------------------------------------------------- names

    /// An identifier (any word, keywords included) or `['bracketed name']`.
    pub(super) fn parse_ident(&mut self, what: &str) -> Result<Ident, ParseError> {
        match self.kind().clone() {
            TokenKind::Ident(name) if !name.starts_with('!') => {
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            TokenKind::LBracket => {
                if let TokenKind::Str(name) = self.kind_at(1).clone()
                    && self.kind_at(2) == &TokenKind::RBracket
                {
                    let start = self.bump().span;
                    self.bump();
                    let end = self.bump().span;
                    return Ok(Ident {
                        name,
                        span: start.to(end),
                    });
                }
                Err(self.error(what))
            }
            _ => Err(self.error(what)),
        }
    }

    /// Number of tokens forming a name at offset `n` (`x` = 1, `['x']` = 3), 0 if none.
    pub(super) fn name_len_at(&self, n: usize) -> usize {
        match self.kind_at(n) {
            TokenKind::Ident(s) if !s.starts_with('!') => 1,
            TokenKind::LBracket
                if matches!(self.kind_at(n + 1), TokenKind::Str(_))
                    && self.kind_at(n + 2) == &TokenKind::RBracket =>
            {
                3
            }
            _ => 0,
        }
    }

    /// A column name pattern made of adjacent words and `*` (`Init*`, `*Id`).
    pub(super) fn parse_name_pattern(&mut self) -> Result<NamePattern, ParseError> {
        if self.at(&TokenKind::LBracket) {
            let id = self.parse_ident("a column name")?;
            return Ok(NamePattern {
                text: id.name,
                span: id.span,
            });
        }
        let start = self.span();
        let mut text = String::new();
        let mut n = 0;
        loop {
            if n > 0 && !self.adjacent(0) {
                break;
            }
            match self.kind().clone() {
                TokenKind::Ident(s) if !s.starts_with('!') => text.push_str(&s),
                TokenKind::Star => text.push('*'),
                _ => break,
            }
            self.bump();
            n += 1;
        }
        if n == 0 {
            return Err(self.error("a column name or wildcard pattern"));
        }
        Ok(NamePattern {
            text,
            span: start.to(Span::new(start.start, self.prev_end())),
        })
    }

    // ------------------------------------------------------------ statements

    fn parse_query(&mut self) -> Result<Query, ParseError> {
        let mut statements = Vec::new();
        loop {
            while self.eat(&TokenKind::Semi) {}
            if self.at(&TokenKind::Eof) {
                break;
            }
            statements.push(self.parse_statement()?);
            if !self.eat(&TokenKind::Semi) {
                if self.blank_line_separates && self.blank_line_before_current() {
                    continue;
                }
                if !self.at(&TokenKind::Eof) {
                    return Err(self.error("`|`, `;` or end of query"));
                }
                break;
            }
        }
        if statements.is_empty() {
            return Err(self.error("a query statement"));
        }
        Ok(Query {
            statements,
            span: Span::new(0, self.src.len()),
        })
    }

    /// Is there a whitespace-only line between the previous token and the
    /// current one? (Lines holding a comment are not blank.)
    fn blank_line_before_current(&self) -> bool {
        if self.at(&TokenKind::Eof) {
            return false;
        }
        let gap = self
            .src
            .get(self.prev_end()..self.span().start)
            .unwrap_or("");
        let lines: Vec<&str> = gap.split('\n').collect();
        lines.len() > 2
            && lines[1..lines.len() - 1]
                .iter()
                .any(|l| l.trim().is_empty())
    }

    fn parse_statement(&mut self) -> Result<Statement, ParseError> {
        if self.at(&TokenKind::Dot) {
            return Err(control_command_error(self.src, self.span().start));
        }
        let next_is_name = matches!(self.kind_at(1), TokenKind::Ident(_));
        if self.is_word("let") && self.name_len_at(1) > 0 {
            return Ok(Statement::Let(self.parse_let()?));
        }
        if self.is_word("set") && next_is_name {
            let start = self.bump().span;
            let name = self.parse_dotted_name()?;
            let value = if self.eat(&TokenKind::Assign) {
                Some(self.parse_unary()?)
            } else {
                None
            };
            let span = Span::new(start.start, self.prev_end());
            return Ok(Statement::Set { name, value, span });
        }
        for kw in ["declare", "alias", "restrict", "pattern"] {
            if self.is_word(kw) && next_is_name {
                return Err(self.error(&format!(
                    "a let statement or query (`{kw}` statements are not supported)"
                )));
            }
        }
        let e = self.parse_pipe_expr()?;
        Ok(Statement::Query(self.expr_to_tabular(e)?))
    }

    /// `a.b.c` joined into one identifier (used by `set`).
    fn parse_dotted_name(&mut self) -> Result<Ident, ParseError> {
        let mut id = self.parse_ident("an option name")?;
        while self.at(&TokenKind::Dot) && matches!(self.kind_at(1), TokenKind::Ident(_)) {
            self.bump();
            let part = self.parse_ident("an option name")?;
            id.name = format!("{}.{}", id.name, part.name);
            id.span = id.span.to(part.span);
        }
        Ok(id)
    }

    pub(super) fn parse_let(&mut self) -> Result<LetStatement, ParseError> {
        let start = self.expect_word("let")?;
        let name = self.parse_ident("a name after `let`")?;
        self.expect(&TokenKind::Assign, "`=`")?;
        let value = if self.is_word("view") && self.kind_at(1) == &TokenKind::LParen {
            self.bump();
            LetValue::Function(self.parse_function_def(true)?)
        } else if self.function_def_ahead() {
            LetValue::Function(self.parse_function_def(false)?)
        } else {
            match self.parse_pipe_expr()? {
                Expr::Tabular(t) => LetValue::Tabular(*t),
                e => LetValue::Expr(e),
            }
        };
        Ok(LetStatement {
            name,
            value,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    /// At `(`: is this a function parameter list (`()` + `{`, or `(name :`)?
    fn function_def_ahead(&self) -> bool {
        if self.kind() != &TokenKind::LParen {
            return false;
        }
        if self.kind_at(1) == &TokenKind::RParen {
            return self.kind_at(2) == &TokenKind::LBrace;
        }
        let n = self.name_len_at(1);
        n > 0 && self.kind_at(1 + n) == &TokenKind::Colon
    }

    fn parse_function_def(&mut self, is_view: bool) -> Result<FunctionDef, ParseError> {
        self.enter()?;
        let r = self.parse_function_def_inner(is_view);
        self.leave();
        r
    }

    fn parse_function_def_inner(&mut self, is_view: bool) -> Result<FunctionDef, ParseError> {
        let start = self.expect(&TokenKind::LParen, "`(`")?;
        let mut params = Vec::new();
        if !self.at(&TokenKind::RParen) {
            loop {
                params.push(self.parse_param()?);
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
        }
        self.expect(&TokenKind::RParen, "`,` or `)` after a parameter")?;
        self.expect(&TokenKind::LBrace, "`{` starting the function body")?;
        let mut body = Vec::new();
        loop {
            while self.eat(&TokenKind::Semi) {}
            if self.is_word("let") && self.name_len_at(1) > 0 {
                body.push(self.parse_let()?);
                if !self.at(&TokenKind::RBrace) {
                    self.expect(&TokenKind::Semi, "`;` after a let statement")?;
                }
            } else {
                break;
            }
        }
        let result = self.parse_pipe_expr()?;
        while self.eat(&TokenKind::Semi) {}
        self.expect(&TokenKind::RBrace, "`}` closing the function body")?;
        Ok(FunctionDef {
            params,
            body,
            result,
            is_view,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    fn parse_param(&mut self) -> Result<Param, ParseError> {
        let name = self.parse_ident("a parameter name")?;
        self.expect(&TokenKind::Colon, "`:` and a parameter type")?;
        let ty = if self.at(&TokenKind::LParen) {
            if self.kind_at(1) == &TokenKind::Star && self.kind_at(2) == &TokenKind::RParen {
                self.bump();
                self.bump();
                self.bump();
                ParamType::Tabular(None)
            } else {
                ParamType::Tabular(Some(self.parse_schema()?))
            }
        } else {
            ParamType::Scalar(self.parse_ident("a type name")?)
        };
        let default = if self.eat(&TokenKind::Assign) {
            Some(self.parse_unary()?)
        } else {
            None
        };
        Ok(Param {
            span: Span::new(name.span.start, self.prev_end()),
            name,
            ty,
            default,
        })
    }

    /// `( name:type, ... )` (trailing comma allowed).
    pub(super) fn parse_schema(&mut self) -> Result<Vec<ColumnDecl>, ParseError> {
        self.expect(&TokenKind::LParen, "`(` starting a schema")?;
        let mut cols = Vec::new();
        while !self.at(&TokenKind::RParen) {
            let name = self.parse_ident("a column name")?;
            self.expect(&TokenKind::Colon, "`:` and a column type")?;
            let ty = self.parse_ident("a type name")?;
            cols.push(ColumnDecl {
                span: name.span.to(ty.span),
                name,
                ty,
            });
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(&TokenKind::RParen, "`,` or `)` in schema")?;
        Ok(cols)
    }

    // ------------------------------------------------------ pipe expressions

    /// A scalar expression, or a tabular expression (`source | op ...`),
    /// returned as `Expr::Tabular` in the latter case.
    pub(super) fn parse_pipe_expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let r = self.parse_pipe_expr_inner();
        self.leave();
        r
    }

    fn parse_pipe_expr_inner(&mut self) -> Result<Expr, ParseError> {
        let start = self.span().start;
        let source = match self.parse_keyword_source()? {
            Some(s) => s,
            None => {
                let e = self.parse_expr()?;
                if !self.at(&TokenKind::Pipe) {
                    return Ok(e);
                }
                self.expr_to_source(e)?
            }
        };
        let mut operators = Vec::new();
        while self.eat(&TokenKind::Pipe) {
            operators.push(self.parse_operator()?);
        }
        Ok(Expr::Tabular(Box::new(TabularExpr {
            source,
            operators,
            span: Span::new(start, self.prev_end()),
        })))
    }

    /// Interprets an expression as a tabular source (names, calls, paths,
    /// parenthesised tabular expressions).
    pub(super) fn expr_to_source(&self, e: Expr) -> Result<Source, ParseError> {
        match e {
            Expr::Name(id) => Ok(Source::Name(id)),
            Expr::Call(c) => Ok(Source::Call(c)),
            Expr::Tabular(t) => Ok(Source::Paren(t)),
            Expr::Member { .. } | Expr::Index { .. } => Ok(Source::Path(e)),
            other => Err(self.error_at(
                other.span(),
                "a tabular expression (table, let name, function call or `(...)`)",
                "a scalar expression",
            )),
        }
    }

    /// Interprets an expression as a complete tabular expression.
    pub(super) fn expr_to_tabular(&self, e: Expr) -> Result<TabularExpr, ParseError> {
        match e {
            Expr::Tabular(t) => Ok(*t),
            other => {
                let span = other.span();
                Ok(TabularExpr {
                    source: self.expr_to_source(other)?,
                    operators: Vec::new(),
                    span,
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
