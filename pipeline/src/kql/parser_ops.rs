//! Parsing of tabular operators (the part after each `|`).

use super::ast::*;
use super::error::ParseError;
use super::lexer::TokenKind;
use super::parser::Parser;

/// Operators recognised by name whose syntax is consumed but not modelled.
const OTHER_OPERATORS: &[&str] = &[
    "mv-apply",
    "mvapply",
    "fork",
    "facet",
    "partition",
    "partitionby",
    "scan",
    "top-nested",
    "top-hitters",
    "reduce",
    "parse-kv",
    "find",
    "search",
    "consume",
    "project-smart",
    "macro-expand",
    "make-graph",
    "graph-match",
    "graph-to-table",
    "graph-merge",
    "graph-shortest-paths",
    "graph-mark-components",
    "assert-schema",
];

type OpParser<'a> = fn(&mut Parser<'a>, &str, Span) -> Result<Operator, ParseError>;

impl Parser<'_> {
    /// Reads an operator name, joining adjacent `-` parts (`project-away`).
    fn parse_operator_name(&mut self) -> Result<(String, Span), ParseError> {
        let TokenKind::Ident(first) = self.kind().clone() else {
            return Err(self.error("a query operator"));
        };
        let mut span = self.bump().span;
        let mut name = first;
        while self.at(&TokenKind::Minus)
            && self.adjacent(0)
            && matches!(self.kind_at(1), TokenKind::Ident(_))
            && self.adjacent(1)
        {
            self.bump();
            if let TokenKind::Ident(part) = self.kind().clone() {
                name.push('-');
                name.push_str(&part);
            }
            span = span.to(self.bump().span);
        }
        Ok((name, span))
    }

    pub(super) fn parse_operator(&mut self) -> Result<Operator, ParseError> {
        let op_start = self.pos;
        let (name, start) = self.parse_operator_name()?;
        // Dispatch through a function pointer so that only the chosen
        // operator's stack frame is live while its syntax is parsed.
        let f: OpParser<'_> = match name.as_str() {
            "where" | "filter" => Self::op_where,
            "project" => Self::op_project,
            "extend" => Self::op_extend,
            "project-away" | "project-keep" => Self::op_project_away,
            "project-rename" => Self::op_project_rename,
            "project-reorder" => Self::op_project_reorder,
            "summarize" => Self::op_summarize,
            "distinct" => Self::op_distinct,
            "top" => Self::op_top,
            "sort" | "order" => Self::op_sort,
            "take" | "limit" => Self::op_take,
            "count" => Self::op_count,
            "union" => Self::op_union,
            "join" | "lookup" => Self::op_join,
            "mv-expand" | "mvexpand" => Self::op_mv_expand,
            "parse" | "parse-where" => Self::op_parse,
            "make-series" => Self::op_make_series,
            "render" => Self::op_render,
            "invoke" => Self::op_invoke,
            "as" => Self::op_as,
            "serialize" => Self::op_serialize,
            "evaluate" => Self::op_evaluate,
            "sample" => Self::op_sample,
            "sample-distinct" => Self::op_sample_distinct,
            "getschema" => Self::op_getschema,
            n if OTHER_OPERATORS.contains(&n) => Self::op_other,
            _ => {
                self.pos = op_start;
                return Err(self.error("a query operator"));
            }
        };
        f(self, &name, start)
    }

    fn op_where(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            let predicate = self.parse_expr()?;
            Operator::Where {
                params,
                predicate,
                span: end(self),
            }
        })
    }

    fn op_project(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let columns = self.parse_optional_named_list()?;
            Operator::Project {
                columns,
                span: end(self),
            }
        })
    }

    fn op_extend(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let columns = self.parse_named_list()?;
            Operator::Extend {
                columns,
                span: end(self),
            }
        })
    }

    fn op_project_away(&mut self, name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let mut columns = Vec::new();
            if !self.at_operator_end() {
                loop {
                    columns.push(self.parse_name_pattern()?);
                    if !self.eat(&TokenKind::Comma) {
                        break;
                    }
                }
            }
            if name == "project-away" {
                Operator::ProjectAway {
                    columns,
                    span: end(self),
                }
            } else {
                Operator::ProjectKeep {
                    columns,
                    span: end(self),
                }
            }
        })
    }

    fn op_project_rename(&mut self, _op_name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let mut renames = Vec::new();
            while !self.at_operator_end() {
                let new_name = self.parse_ident("a new column name")?;
                self.expect(&TokenKind::Assign, "`=` in `New = Old`")?;
                let old_name = self.parse_ident("an existing column name")?;
                renames.push(Rename {
                    span: new_name.span.to(old_name.span),
                    new_name,
                    old_name,
                });
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
            Operator::ProjectRename {
                renames,
                span: end(self),
            }
        })
    }

    fn op_project_reorder(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let mut columns = Vec::new();
            while !self.at_operator_end() {
                let column = self.parse_name_pattern()?;
                let order = self.parse_reorder_order()?;
                columns.push(ReorderColumn {
                    span: Span::new(column.span.start, self.prev_end()),
                    column,
                    order,
                });
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
            Operator::ProjectReorder {
                columns,
                span: end(self),
            }
        })
    }

    fn op_summarize(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&["bin_legacy"])?;
            let aggregates = if self.is_word("by") || self.at_operator_end() {
                Vec::new()
            } else {
                self.parse_named_list()?
            };
            let by = if self.eat_word("by") {
                self.parse_named_list()?
            } else {
                Vec::new()
            };
            Operator::Summarize(SummarizeOp {
                params,
                aggregates,
                by,
                span: end(self),
            })
        })
    }

    fn op_distinct(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            let (columns, star) = if self.eat(&TokenKind::Star) {
                (Vec::new(), true)
            } else {
                (self.parse_expr_list()?, false)
            };
            Operator::Distinct {
                params,
                columns,
                star,
                span: end(self),
            }
        })
    }

    fn op_top(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            let count = self.parse_expr()?;
            self.expect_word("by")?;
            let by = self.parse_sort_key()?;
            Operator::Top {
                params,
                count,
                by: Box::new(by),
                span: end(self),
            }
        })
    }

    fn op_sort(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            self.expect_word("by")?;
            let mut keys = vec![self.parse_sort_key()?];
            while self.eat(&TokenKind::Comma) {
                keys.push(self.parse_sort_key()?);
            }
            Operator::Sort {
                params,
                keys,
                span: end(self),
            }
        })
    }

    fn op_take(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            let count = self.parse_expr()?;
            Operator::Take {
                params,
                count,
                span: end(self),
            }
        })
    }

    fn op_count(&mut self, _op_name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let as_name = if self.eat_word("as") {
                Some(self.parse_ident("a column name")?)
            } else {
                None
            };
            Operator::Count {
                as_name,
                span: end(self),
            }
        })
    }

    fn op_union(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        Ok(Operator::Union(self.parse_union_body(start)?))
    }

    fn op_join(&mut self, name: &str, start: Span) -> Result<Operator, ParseError> {
        Ok({
            let j = self.parse_join_body(start)?;
            if name == "join" {
                Operator::Join(Box::new(j))
            } else {
                Operator::Lookup(Box::new(j))
            }
        })
    }

    fn op_mv_expand(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        Ok(Operator::MvExpand(self.parse_mv_expand_body(start)?))
    }

    fn op_parse(&mut self, name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&["kind", "flags"])?;
            let source = self.parse_expr()?;
            self.expect_word("with")?;
            let pattern = self.parse_parse_pattern()?;
            Operator::Parse(Box::new(ParseOp {
                is_where: name == "parse-where",
                params,
                source,
                pattern,
                span: end(self),
            }))
        })
    }

    fn op_make_series(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        Ok(Operator::MakeSeries(Box::new(
            self.parse_make_series_body(start)?,
        )))
    }

    fn op_render(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        Ok(Operator::Render(self.parse_render_body(start)?))
    }

    fn op_invoke(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let call = self.parse_postfix()?;
            Operator::Invoke {
                call,
                span: end(self),
            }
        })
    }

    fn op_as(&mut self, _op_name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            let name = self.parse_ident("a name after `as`")?;
            Operator::As {
                params,
                name,
                span: end(self),
            }
        })
    }

    fn op_serialize(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            let columns = self.parse_optional_named_list()?;
            Operator::Serialize {
                params,
                columns,
                span: end(self),
            }
        })
    }

    fn op_evaluate(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        Ok(Operator::Evaluate(Box::new(
            self.parse_evaluate_body(start)?,
        )))
    }

    fn op_sample(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            let count = self.parse_expr()?;
            Operator::Sample {
                params,
                count,
                span: end(self),
            }
        })
    }

    fn op_sample_distinct(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok({
            let params = self.parse_params(&[])?;
            let count = self.parse_expr()?;
            self.expect_word("of")?;
            let column = self.parse_expr()?;
            Operator::SampleDistinct {
                params,
                count,
                column: Box::new(column),
                span: end(self),
            }
        })
    }

    fn op_getschema(&mut self, _name: &str, start: Span) -> Result<Operator, ParseError> {
        let end = |p: &Self| Span::new(start.start, p.prev_end());
        Ok(Operator::GetSchema { span: end(self) })
    }

    fn op_other(&mut self, name: &str, start: Span) -> Result<Operator, ParseError> {
        Ok(Operator::Other(
            self.skip_operator_body(name.to_string(), start),
        ))
    }
}
