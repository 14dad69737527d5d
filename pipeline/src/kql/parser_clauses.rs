//! Clause helpers shared by the operators: parameters, named expressions,
//! sort keys, and the bodies of union/join/mv-expand/parse/make-series/
//! render/evaluate.

use super::ast::*;
use super::error::ParseError;
use super::lexer::TokenKind;
use super::parser::Parser;

impl Parser<'_> {
    /// Consumes an operator's syntax up to the next top-level `|`, `;` or
    /// unmatched closing bracket.
    pub(super) fn skip_operator_body(&mut self, name: String, name_span: Span) -> OtherOp {
        let mut depth = 0usize;
        loop {
            match self.kind() {
                TokenKind::Eof => break,
                TokenKind::Pipe | TokenKind::Semi if depth == 0 => break,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => depth += 1,
                _ => {}
            }
            self.bump();
        }
        OtherOp {
            name,
            name_span,
            span: Span::new(name_span.start, self.prev_end().max(name_span.end)),
        }
    }

    /// Operator parameters `name = value` for the given names; `hint.*` is
    /// always accepted.
    pub(super) fn parse_params(&mut self, names: &[&str]) -> Result<Vec<OpParam>, ParseError> {
        let mut params = Vec::new();
        while let Some(word) = self.word_at(0) {
            let (name, len) = if word == "hint"
                && self.kind_at(1) == &TokenKind::Dot
                && self.kind_at(3) == &TokenKind::Assign
            {
                match self.word_at(2) {
                    Some(sub) => (format!("hint.{sub}"), 3),
                    None => break,
                }
            } else if names.contains(&word) && self.kind_at(1) == &TokenKind::Assign {
                (word.to_string(), 1)
            } else {
                break;
            };
            let start = self.span();
            for _ in 0..len {
                self.bump();
            }
            self.expect(&TokenKind::Assign, "`=`")?;
            let value = self.parse_param_value()?;
            params.push(OpParam {
                name,
                span: start.to(value.span()),
                values: vec![value],
            });
        }
        Ok(params)
    }

    /// A parameter value: a bare name (never a call: in `kind=inner(T)` the
    /// parenthesis belongs to the operator) or a signed literal.
    pub(super) fn parse_param_value(&mut self) -> Result<Expr, ParseError> {
        if matches!(self.kind(), TokenKind::Ident(w) if !matches!(w.as_str(), "true" | "false" | "dynamic"))
        {
            return Ok(Expr::Name(self.parse_ident("a value")?));
        }
        self.parse_unary()
    }

    /// `expr`, `Name = expr` or `(A, B) = expr`.
    pub(super) fn parse_named_expr(&mut self) -> Result<NamedExpr, ParseError> {
        let start = self.span();
        let mut names = Vec::new();
        let n = self.name_len_at(0);
        if n > 0 && self.kind_at(n) == &TokenKind::Assign {
            names.push(self.parse_ident("a column name")?);
            self.bump();
        } else if self.at(&TokenKind::LParen) && self.tuple_names_ahead() {
            self.bump();
            loop {
                names.push(self.parse_ident("a column name")?);
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
            self.expect(&TokenKind::RParen, "`)`")?;
            self.expect(&TokenKind::Assign, "`=`")?;
        }
        let expr = self.parse_expr()?;
        Ok(NamedExpr {
            names,
            span: Span::new(start.start, self.prev_end()),
            expr,
        })
    }

    /// At `(`: does `(name, name, ...) =` follow?
    pub(super) fn tuple_names_ahead(&self) -> bool {
        let mut i = 1;
        loop {
            let n = self.name_len_at(i);
            if n == 0 {
                return false;
            }
            i += n;
            match self.kind_at(i) {
                TokenKind::Comma => i += 1,
                TokenKind::RParen => return self.kind_at(i + 1) == &TokenKind::Assign,
                _ => return false,
            }
        }
    }

    pub(super) fn parse_named_list(&mut self) -> Result<Vec<NamedExpr>, ParseError> {
        let mut v = vec![self.parse_named_expr()?];
        while self.eat(&TokenKind::Comma) {
            v.push(self.parse_named_expr()?);
        }
        Ok(v)
    }

    pub(super) fn parse_optional_named_list(&mut self) -> Result<Vec<NamedExpr>, ParseError> {
        if self.at_operator_end() {
            Ok(Vec::new())
        } else {
            self.parse_named_list()
        }
    }

    pub(super) fn parse_expr_list(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut v = vec![self.parse_expr()?];
        while self.eat(&TokenKind::Comma) {
            v.push(self.parse_expr()?);
        }
        Ok(v)
    }

    pub(super) fn parse_sort_key(&mut self) -> Result<SortKey, ParseError> {
        let expr = self.parse_expr()?;
        let order = if self.eat_word("asc") {
            Some(SortOrder::Asc)
        } else if self.eat_word("desc") {
            Some(SortOrder::Desc)
        } else {
            None
        };
        let nulls = if self.eat_word("nulls") {
            if self.eat_word("first") {
                Some(NullsOrder::First)
            } else {
                self.expect_word("last")?;
                Some(NullsOrder::Last)
            }
        } else {
            None
        };
        Ok(SortKey {
            span: Span::new(expr.span().start, self.prev_end()),
            expr,
            order,
            nulls,
        })
    }

    pub(super) fn parse_reorder_order(&mut self) -> Result<Option<SortOrder>, ParseError> {
        let granny = self.is_word("granny")
            && self.kind_at(1) == &TokenKind::Minus
            && self.adjacent(1)
            && self.adjacent(2);
        if granny {
            self.bump();
            self.bump();
        }
        Ok(if self.eat_word("asc") {
            Some(SortOrder::Asc)
        } else if self.eat_word("desc") {
            Some(SortOrder::Desc)
        } else if granny {
            return Err(self.error("`asc` or `desc` after `granny-`"));
        } else {
            None
        })
    }

    pub(super) fn parse_union_body(&mut self, start: Span) -> Result<UnionOp, ParseError> {
        let params = self.parse_params(&["kind", "withsource", "with_source", "isfuzzy"])?;
        let mut tables = Vec::new();
        loop {
            if self.wildcard_ahead() {
                tables.push(UnionTable::Wildcard(self.parse_name_pattern()?));
            } else {
                let e = self.parse_postfix()?;
                tables.push(UnionTable::Tabular(self.expr_to_tabular(e)?));
            }
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        Ok(UnionOp {
            params,
            tables,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    /// Does a name pattern containing `*` start here?
    pub(super) fn wildcard_ahead(&self) -> bool {
        let mut i = 0;
        loop {
            if i > 0 && !self.adjacent(i) {
                return false;
            }
            match self.kind_at(i) {
                TokenKind::Star => return true,
                TokenKind::Ident(_) => i += 1,
                _ => return false,
            }
        }
    }

    pub(super) fn parse_join_body(&mut self, start: Span) -> Result<JoinOp, ParseError> {
        let params = self.parse_params(&["kind"])?;
        let kind = find_param(&params, "kind")
            .and_then(|p| p.value_text())
            .map(str::to_string);
        let right = self.parse_expr()?;
        let right = self.expr_to_tabular(right)?;
        let mut on = Vec::new();
        let mut where_clause = None;
        if self.eat_word("on") {
            if !self.at_operator_end() {
                on = self.parse_expr_list()?;
            }
        } else if self.eat_word("where") {
            where_clause = Some(self.parse_expr()?);
        }
        Ok(JoinOp {
            params,
            kind,
            right,
            on,
            where_clause,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    pub(super) fn parse_mv_expand_body(&mut self, start: Span) -> Result<MvExpandOp, ParseError> {
        let params = self.parse_params(&["bagexpansion", "with_itemindex", "kind"])?;
        let mut columns = Vec::new();
        loop {
            let column = self.parse_named_expr()?;
            let to_type = if self.is_word("to") {
                self.bump();
                match self.kind().clone() {
                    TokenKind::TypedLit { ty, content } if ty == "typeof" => {
                        self.bump();
                        Some(content.trim().to_string())
                    }
                    _ => return Err(self.error("`typeof(...)` after `to`")),
                }
            } else {
                None
            };
            columns.push(MvExpandColumn {
                span: Span::new(column.span.start, self.prev_end()),
                column,
                to_type,
            });
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        let limit = if self.eat_word("limit") {
            Some(self.parse_expr()?)
        } else {
            None
        };
        Ok(MvExpandOp {
            params,
            columns,
            limit,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    pub(super) fn parse_parse_pattern(&mut self) -> Result<Vec<ParsePatternPart>, ParseError> {
        let mut parts = Vec::new();
        loop {
            match self.kind().clone() {
                TokenKind::Star => parts.push(ParsePatternPart::Star(self.bump().span)),
                TokenKind::Str(_) => {
                    let span = self.span();
                    if let Expr::Literal {
                        value: Literal::String(value),
                        span,
                    } = self.parse_primary()?
                    {
                        parts.push(ParsePatternPart::Text { value, span });
                    } else {
                        return Err(self.error_at(span, "a string", "something else"));
                    }
                }
                TokenKind::Ident(_) | TokenKind::LBracket if self.name_len_at(0) > 0 => {
                    let name = self.parse_ident("a column name")?;
                    let ty = if self.eat(&TokenKind::Colon) {
                        Some(self.parse_ident("a type name")?)
                    } else {
                        None
                    };
                    parts.push(ParsePatternPart::Column {
                        span: Span::new(name.span.start, self.prev_end()),
                        name,
                        ty,
                    });
                }
                _ => break,
            }
        }
        if parts.is_empty() {
            return Err(self.error("a parse pattern"));
        }
        Ok(parts)
    }

    pub(super) fn parse_make_series_body(
        &mut self,
        start: Span,
    ) -> Result<MakeSeriesOp, ParseError> {
        let params = self.parse_params(&["kind"])?;
        let mut aggregates = Vec::new();
        loop {
            let agg = self.parse_named_expr()?;
            let default = if self.is_word("default") && self.kind_at(1) == &TokenKind::Assign {
                self.bump();
                self.bump();
                Some(self.parse_expr()?)
            } else {
                None
            };
            aggregates.push(MakeSeriesAgg {
                span: Span::new(agg.span.start, self.prev_end()),
                agg,
                default,
            });
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect_word("on")?;
        let on_start = self.span();
        let n = self.name_len_at(0);
        let mut names = Vec::new();
        if n > 0 && self.kind_at(n) == &TokenKind::Assign {
            names.push(self.parse_ident("a column name")?);
            self.bump();
        }
        // The axis stops before `in range(...)` / `from` / `to` / `step`.
        let axis = self.parse_relational()?;
        let on = NamedExpr {
            names,
            expr: axis,
            span: Span::new(on_start.start, self.prev_end()),
        };
        let range = if self.eat_word("in") {
            self.expect_word("range")?;
            self.expect(&TokenKind::LParen, "`(`")?;
            let from = self.parse_expr()?;
            self.expect(&TokenKind::Comma, "`,`")?;
            let to = self.parse_expr()?;
            self.expect(&TokenKind::Comma, "`,`")?;
            let step = self.parse_expr()?;
            self.expect(&TokenKind::RParen, "`)`")?;
            MakeSeriesRange::InRange { from, to, step }
        } else {
            let from = if self.eat_word("from") {
                Some(self.parse_expr()?)
            } else {
                None
            };
            let to = if self.eat_word("to") {
                Some(self.parse_expr()?)
            } else {
                None
            };
            self.expect_word("step")?;
            let step = self.parse_expr()?;
            MakeSeriesRange::FromToStep { from, to, step }
        };
        let by = if self.eat_word("by") {
            self.parse_named_list()?
        } else {
            Vec::new()
        };
        Ok(MakeSeriesOp {
            params,
            aggregates,
            on,
            range,
            by,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    pub(super) fn parse_render_body(&mut self, start: Span) -> Result<RenderOp, ParseError> {
        let chart = self.parse_ident("a chart type")?;
        let mut properties = Vec::new();
        if self.is_word("with") && self.kind_at(1) == &TokenKind::LParen {
            self.bump();
            properties = self.parse_with_properties()?;
        } else {
            // Legacy property list: `kind=stacked title="x"`, `with "x"`, `by a, b`.
            loop {
                let n = self.name_len_at(0);
                if n > 0 && self.kind_at(n) == &TokenKind::Assign {
                    let name = self.parse_ident("a property name")?;
                    self.bump();
                    let v = self.parse_unary()?;
                    properties.push(OpParam {
                        name: name.name,
                        span: name.span.to(v.span()),
                        values: vec![v],
                    });
                } else if self.is_word("with") || self.is_word("by") {
                    let name = self.parse_ident("a property name")?;
                    let mut values = vec![self.parse_unary()?];
                    while self.eat(&TokenKind::Comma) {
                        values.push(self.parse_unary()?);
                    }
                    properties.push(OpParam {
                        name: name.name,
                        span: Span::new(name.span.start, self.prev_end()),
                        values,
                    });
                } else {
                    break;
                }
            }
        }
        Ok(RenderOp {
            chart,
            properties,
            span: Span::new(start.start, self.prev_end()),
        })
    }

    pub(super) fn parse_evaluate_body(&mut self, start: Span) -> Result<EvaluateOp, ParseError> {
        let params = self.parse_params(&[])?;
        let plugin = self.parse_postfix()?;
        let schema = if self.at(&TokenKind::Colon) && self.kind_at(1) == &TokenKind::LParen {
            self.bump();
            Some(self.parse_schema()?)
        } else {
            None
        };
        Ok(EvaluateOp {
            params,
            plugin,
            schema,
            span: Span::new(start.start, self.prev_end()),
        })
    }
}
