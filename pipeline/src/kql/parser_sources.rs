//! Tabular sources introduced by a keyword: `union`, `datatable`,
//! `externaldata`, `range`, `print`, `evaluate`, `find`, `search`,
//! `materialize(...)`, and `with (...)` property lists.

use super::ast::*;
use super::error::ParseError;
use super::lexer::TokenKind;
use super::parser::Parser;

impl Parser<'_> {
    /// Sources introduced by a keyword: `union`, `datatable`, `externaldata`,
    /// `range`, `print`, `evaluate`, `find`, `search`, `materialize(...)`.
    pub(super) fn parse_keyword_source(&mut self) -> Result<Option<Source>, ParseError> {
        use TokenKind::*;
        let Some(word) = self.word_at(0) else {
            return Ok(None);
        };
        let next = self.kind_at(1).clone();
        let start = self.span();
        let src = match word {
            "union" if !matches!(next, Pipe | Semi | Comma | RParen | Eof | Dot) => {
                self.bump();
                Source::Union(self.parse_union_body(start)?)
            }
            "datatable" if matches!(next, LParen | Ident(_)) => {
                self.bump();
                Source::Datatable(self.parse_datatable_body(start)?)
            }
            "externaldata" | "external_data" if matches!(next, LParen | Ident(_)) => {
                self.bump();
                Source::ExternalData(self.parse_externaldata_body(start)?)
            }
            "range" if matches!(next, Ident(_)) && self.word_at(2) == Some("from") => {
                self.bump();
                let column = self.parse_ident("a column name")?;
                self.expect_word("from")?;
                let from = self.parse_expr()?;
                self.expect_word("to")?;
                let to = self.parse_expr()?;
                self.expect_word("step")?;
                let step = self.parse_expr()?;
                let span = Span::new(start.start, self.prev_end());
                Source::Range(Box::new(RangeSource {
                    column,
                    from,
                    to,
                    step,
                    span,
                }))
            }
            "print" if !matches!(next, Pipe | Semi | Comma | RParen | Eof | Dot | LParen) => {
                self.bump();
                let columns = self.parse_named_list()?;
                let span = Span::new(start.start, self.prev_end());
                Source::Print { columns, span }
            }
            "evaluate" if matches!(next, Ident(_)) => {
                self.bump();
                Source::Evaluate(Box::new(self.parse_evaluate_body(start)?))
            }
            "find" | "search"
                if !matches!(
                    next,
                    Pipe | Semi | Comma | RParen | Eof | Dot | LParen | LBracket | Assign | EqEq
                ) =>
            {
                let name = word.to_string();
                self.bump();
                Source::Other(self.skip_operator_body(name, start))
            }
            "materialize" if next == LParen => {
                self.bump();
                self.bump();
                let inner = self.parse_pipe_expr()?;
                let inner = self.expr_to_tabular(inner)?;
                self.expect(&RParen, "`)` closing `materialize(`")?;
                Source::Materialize {
                    inner: Box::new(inner),
                    span: Span::new(start.start, self.prev_end()),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(src))
    }

    pub(super) fn parse_datatable_body(&mut self, start: Span) -> Result<Datatable, ParseError> {
        let params = self.parse_params(&[])?;
        let schema = self.parse_schema()?;
        self.expect(&TokenKind::LBracket, "`[` starting the datatable values")?;
        let mut values = Vec::new();
        while !self.at(&TokenKind::RBracket) {
            values.push(self.parse_expr()?);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(&TokenKind::RBracket, "`,` or `]` in datatable values")?;
        Ok(Datatable {
            params,
            schema,
            values,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    pub(super) fn parse_externaldata_body(
        &mut self,
        start: Span,
    ) -> Result<ExternalData, ParseError> {
        self.parse_params(&[])?;
        let schema = self.parse_schema()?;
        self.expect(&TokenKind::LBracket, "`[` starting the storage URIs")?;
        let mut uris = Vec::new();
        while !self.at(&TokenKind::RBracket) {
            uris.push(self.parse_expr()?);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(&TokenKind::RBracket, "`,` or `]` after storage URIs")?;
        let properties = if self.is_word("with") && self.kind_at(1) == &TokenKind::LParen {
            self.bump();
            self.parse_with_properties()?
        } else {
            Vec::new()
        };
        Ok(ExternalData {
            schema,
            uris,
            properties,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    /// `( name = value [, value...], ... )` — used by `with (...)` clauses.
    /// A bare name after a comma extends the previous property's value list
    /// (`ycolumns=a, b`).
    pub(super) fn parse_with_properties(&mut self) -> Result<Vec<OpParam>, ParseError> {
        self.expect(&TokenKind::LParen, "`(`")?;
        let mut props: Vec<OpParam> = Vec::new();
        while !self.at(&TokenKind::RParen) {
            let n = self.name_len_at(0);
            let is_new_prop = n > 0 && self.kind_at(n) == &TokenKind::Assign;
            match props.last_mut() {
                Some(last) if !is_new_prop => {
                    let v = self.parse_unary()?;
                    last.span = last.span.to(v.span());
                    last.values.push(v);
                }
                _ => {
                    let name = self.parse_ident("a property name")?;
                    self.expect(&TokenKind::Assign, "`=` after the property name")?;
                    let v = self.parse_unary()?;
                    props.push(OpParam {
                        name: name.name,
                        span: name.span.to(v.span()),
                        values: vec![v],
                    });
                }
            }
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(&TokenKind::RParen, "`,` or `)` in the property list")?;
        Ok(props)
    }
}
