//! Scalar expressions (Kql.g4 precedence) and literals.
//!
//! Levels, lowest first: `or`, `and`, equality (`==` `!=` `<>`, in-lists,
//! `between`), relational (`<` `<=` `>` `>=`), additive, multiplicative,
//! string operators (`=~` `has` `contains` ... `matches regex`), unary sign,
//! postfix (`.name`, `[index]`, calls), primary.

use super::ast::*;
use super::error::ParseError;
use super::lexer::{TokenKind, timespan_nanos};
use super::parser::Parser;

/// What an infix token introduces.
#[derive(Clone, Copy)]
enum Infix {
    Binary(BinaryOp),
    List(ListOp),
    Between,
}

impl Parser<'_> {
    pub(super) fn parse_expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let r = self.parse_binary(1);
        self.leave();
        r
    }

    fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        let span = left.span().to(right.span());
        Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
            span,
        }
    }

    /// The binary operator at the current token and its precedence level
    /// (1 = `or` ... 7 = string operators), if any.
    fn peek_binary(&self) -> Option<(Infix, u8)> {
        use BinaryOp::*;
        let bin = |op, prec| Some((Infix::Binary(op), prec));
        match self.kind() {
            TokenKind::EqEq => bin(Eq, 3),
            TokenKind::NotEq | TokenKind::LtGt => bin(NotEq, 3),
            TokenKind::Lt => bin(Lt, 4),
            TokenKind::Le => bin(Le, 4),
            TokenKind::Gt => bin(Gt, 4),
            TokenKind::Ge => bin(Ge, 4),
            TokenKind::Plus => bin(Add, 5),
            TokenKind::Minus => bin(Sub, 5),
            TokenKind::Star => bin(Mul, 6),
            TokenKind::Slash => bin(Div, 6),
            TokenKind::Percent => bin(Mod, 6),
            TokenKind::EqTilde => bin(EqCi, 7),
            TokenKind::BangTilde => bin(NotEqCi, 7),
            TokenKind::Colon => bin(Has, 7),
            TokenKind::Ident(w) => match w.as_str() {
                "or" => bin(Or, 1),
                "and" => bin(And, 2),
                "in" => Some((Infix::List(ListOp::In), 3)),
                "!in" => Some((Infix::List(ListOp::NotIn), 3)),
                "in~" => Some((Infix::List(ListOp::InCi), 3)),
                "!in~" => Some((Infix::List(ListOp::NotInCi), 3)),
                "has_any" => Some((Infix::List(ListOp::HasAny), 3)),
                "has_all" => Some((Infix::List(ListOp::HasAll), 3)),
                "between" | "!between" => Some((Infix::Between, 3)),
                "matches" if self.word_at(1) == Some("regex") => bin(MatchesRegex, 7),
                w => BinaryOp::string_op(w).map(|op| (Infix::Binary(op), 7)),
            },
            _ => None,
        }
    }

    /// Precedence climbing over the Kql.g4 levels: operators binding at
    /// least as tightly as `min_prec` are consumed, all left-associative.
    fn parse_binary(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let mut left = self.parse_unary()?;
        while let Some((infix, prec)) = self.peek_binary() {
            if prec < min_prec {
                break;
            }
            left = match infix {
                Infix::List(op) => self.parse_list_rhs(left, op)?,
                Infix::Between => self.parse_between_rhs(left)?,
                Infix::Binary(op) => {
                    if op == BinaryOp::MatchesRegex {
                        self.bump();
                    }
                    self.bump();
                    let right = self.parse_binary(prec + 1)?;
                    Self::binary(op, left, right)
                }
            };
        }
        Ok(left)
    }

    fn parse_list_rhs(&mut self, left: Expr, op: ListOp) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(
            &TokenKind::LParen,
            &format!("`(` and a list after `{}`", op.as_str()),
        )?;
        let mut items = Vec::new();
        while !self.at(&TokenKind::RParen) {
            items.push(self.parse_pipe_expr()?);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(&TokenKind::RParen, "`,` or `)` in the list")?;
        Ok(Expr::InList {
            span: Span::new(left.span().start, self.prev_end()),
            expr: Box::new(left),
            op,
            items,
        })
    }

    fn parse_between_rhs(&mut self, left: Expr) -> Result<Expr, ParseError> {
        let negated = self.is_word("!between");
        self.bump();
        self.expect(&TokenKind::LParen, "`(` after `between`")?;
        let low = self.parse_expr()?;
        self.expect(&TokenKind::DotDot, "`..` in `between (low .. high)`")?;
        let high = self.parse_expr()?;
        self.expect(&TokenKind::RParen, "`)` closing `between`")?;
        Ok(Expr::Between {
            span: Span::new(left.span().start, self.prev_end()),
            expr: Box::new(left),
            low: Box::new(low),
            high: Box::new(high),
            negated,
        })
    }

    /// An expression of relational level or tighter (stops before `==`,
    /// `in`, `between`, `and`, `or`); used for the `make-series` axis.
    pub(super) fn parse_relational(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let r = self.parse_binary(4);
        self.leave();
        r
    }

    /// Optional sign then a postfix expression; a sign before a numeric or
    /// timespan literal is folded into the literal.
    pub(super) fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        let op = match self.kind() {
            TokenKind::Minus => UnaryOp::Neg,
            TokenKind::Plus => UnaryOp::Plus,
            _ => return self.parse_postfix(),
        };
        let start = self.bump().span;
        let operand = self.parse_postfix()?;
        let span = start.to(operand.span());
        if let Expr::Literal { value, .. } = &operand {
            let neg = op == UnaryOp::Neg;
            let folded = match value {
                Literal::Long(Some(v)) if neg => v.checked_neg().map(|v| Literal::Long(Some(v))),
                Literal::Real(Some(v)) if neg => Some(Literal::Real(Some(-v))),
                Literal::Timespan(Some(v)) if neg => {
                    v.checked_neg().map(|v| Literal::Timespan(Some(v)))
                }
                Literal::Long(_) | Literal::Real(_) | Literal::Timespan(_) if !neg => {
                    Some(value.clone())
                }
                _ => None,
            };
            if let Some(value) = folded {
                return Ok(Expr::Literal { value, span });
            }
        }
        Ok(Expr::Unary {
            op,
            operand: Box::new(operand),
            span,
        })
    }

    /// Primary expression followed by `.name`, `.[expr]`, `[expr]`, `.f(args)`.
    pub(super) fn parse_postfix(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.parse_primary()?;
        loop {
            if self.at(&TokenKind::Dot) {
                if self.kind_at(1) == &TokenKind::LBracket
                    && !matches!(self.kind_at(2), TokenKind::Str(_))
                {
                    self.bump();
                    e = self.parse_index(e)?;
                    continue;
                }
                self.bump();
                let name = self.parse_ident("a member name after `.`")?;
                if self.at(&TokenKind::LParen) {
                    let args = self.parse_call_args()?;
                    e = Expr::Call(FunctionCall {
                        span: Span::new(e.span().start, self.prev_end()),
                        target: Some(Box::new(e)),
                        name,
                        args,
                    });
                } else {
                    e = Expr::Member {
                        span: e.span().to(name.span),
                        target: Box::new(e),
                        name,
                    };
                }
            } else if self.at(&TokenKind::LBracket) {
                e = self.parse_index(e)?;
            } else {
                return Ok(e);
            }
        }
    }

    fn parse_index(&mut self, target: Expr) -> Result<Expr, ParseError> {
        self.expect(&TokenKind::LBracket, "`[`")?;
        let index = self.parse_expr()?;
        self.expect(&TokenKind::RBracket, "`]` closing the index")?;
        Ok(Expr::Index {
            span: Span::new(target.span().start, self.prev_end()),
            target: Box::new(target),
            index: Box::new(index),
        })
    }

    /// `( arg, ... )` where an argument is `*`, `name = expr`, or an expression
    /// (tabular expressions allowed, e.g. `toscalar(T | count)`).
    fn parse_call_args(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect(&TokenKind::LParen, "`(`")?;
        let mut args = Vec::new();
        while !self.at(&TokenKind::RParen) {
            let n = self.name_len_at(0);
            let arg = if self.at(&TokenKind::Star)
                && matches!(self.kind_at(1), TokenKind::Comma | TokenKind::RParen)
            {
                Expr::Star(self.bump().span)
            } else if n > 0 && self.kind_at(n) == &TokenKind::Assign {
                let name = self.parse_ident("an argument name")?;
                self.bump();
                let value = self.parse_pipe_expr()?;
                Expr::NamedArg {
                    span: name.span.to(value.span()),
                    name,
                    value: Box::new(value),
                }
            } else {
                self.parse_pipe_expr()?
            };
            args.push(arg);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(&TokenKind::RParen, "`,` or `)` in the argument list")?;
        Ok(args)
    }

    /// Primary expression. A thin dispatcher: each case lives in its own
    /// function so that only small frames stay live during recursion.
    pub(super) fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        match self.kind() {
            TokenKind::LParen => self.primary_paren(),
            TokenKind::Ident(w) if !w.starts_with('!') => self.primary_word(),
            _ => self.primary_other(),
        }
    }

    fn primary_paren(&mut self) -> Result<Expr, ParseError> {
        self.bump();
        let inner = self.parse_pipe_expr()?;
        self.expect(&TokenKind::RParen, "`)`")?;
        Ok(inner)
    }

    fn primary_word(&mut self) -> Result<Expr, ParseError> {
        let span = self.span();
        let value = match self.word_at(0) {
            Some("true" | "True" | "TRUE") => Some(true),
            Some("false" | "False" | "FALSE") => Some(false),
            Some("dynamic") if self.kind_at(1) == &TokenKind::LParen => {
                return self.primary_dynamic();
            }
            _ => None,
        };
        if let Some(b) = value {
            self.bump();
            return Ok(Expr::Literal {
                value: Literal::Bool(Some(b)),
                span,
            });
        }
        let name = self.parse_ident("a name")?;
        if !self.at(&TokenKind::LParen) {
            return Ok(Expr::Name(name));
        }
        let args = self.parse_call_args()?;
        Ok(Expr::Call(FunctionCall {
            target: None,
            span: Span::new(span.start, self.prev_end()),
            name,
            args,
        }))
    }

    fn primary_dynamic(&mut self) -> Result<Expr, ParseError> {
        let start = self.bump().span;
        self.bump();
        let v = self.parse_dynamic_value()?;
        self.expect(&TokenKind::RParen, "`)` closing `dynamic(`")?;
        Ok(Expr::Literal {
            value: Literal::Dynamic(Box::new(v)),
            span: Span::new(start.start, self.prev_end()),
        })
    }

    fn primary_other(&mut self) -> Result<Expr, ParseError> {
        let span = self.span();
        let lit = |value| Ok(Expr::Literal { value, span });
        match self.kind().clone() {
            TokenKind::Long(v) => {
                self.bump();
                lit(Literal::Long(Some(v)))
            }
            TokenKind::Real(v) => {
                self.bump();
                lit(Literal::Real(Some(v)))
            }
            TokenKind::Timespan(v) => {
                self.bump();
                lit(Literal::Timespan(Some(v)))
            }
            TokenKind::Str(s) => {
                self.bump();
                let mut s = s;
                // Adjacent string literals concatenate.
                while let TokenKind::Str(more) = self.kind().clone() {
                    self.bump();
                    s.push_str(&more);
                }
                Ok(Expr::Literal {
                    value: Literal::String(s),
                    span: Span::new(span.start, self.prev_end()),
                })
            }
            TokenKind::TypedLit { ty, content } => {
                self.bump();
                self.typed_literal(&ty, &content, span)
            }
            TokenKind::Star => {
                self.bump();
                Ok(Expr::Star(span))
            }
            TokenKind::LBracket if self.name_len_at(0) == 3 => {
                Ok(Expr::Name(self.parse_ident("a name")?))
            }
            _ => Err(self.error("an expression")),
        }
    }

    /// Interprets the content of `type(...)` literal tokens.
    fn typed_literal(&self, ty: &str, content: &str, span: Span) -> Result<Expr, ParseError> {
        let c = content.trim();
        let is_null = c == "null";
        let bad = || {
            self.error_at(
                span,
                &format!("a valid `{ty}(...)` literal"),
                &format!("`{ty}({})`", c.chars().take(40).collect::<String>()),
            )
        };
        let value = match ty {
            "typeof" => {
                return Ok(Expr::TypeOf {
                    text: c.to_string(),
                    span,
                });
            }
            "bool" | "boolean" => Literal::Bool(match c.to_ascii_lowercase().as_str() {
                "null" => None,
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => return Err(bad()),
            }),
            "int" | "int32" | "long" | "int64" => {
                let v = if is_null {
                    None
                } else {
                    Some(c.parse::<i64>().map_err(|_| bad())?)
                };
                if ty.starts_with("int") && ty != "int64" {
                    Literal::Int(v)
                } else {
                    Literal::Long(v)
                }
            }
            "real" | "double" => Literal::Real(match c {
                "null" => None,
                "nan" => Some(f64::NAN),
                "inf" | "+inf" => Some(f64::INFINITY),
                "-inf" => Some(f64::NEG_INFINITY),
                _ => Some(c.parse::<f64>().map_err(|_| bad())?),
            }),
            "decimal" => Literal::Decimal((!is_null).then(|| c.to_string())),
            "datetime" | "date" => {
                if c.is_empty() {
                    return Err(bad());
                }
                Literal::DateTime((!is_null).then(|| c.to_string()))
            }
            "guid" | "uuid" | "uniqueid" => {
                if c.is_empty() {
                    return Err(bad());
                }
                Literal::Guid((!is_null).then(|| c.to_string()))
            }
            "time" | "timespan" => Literal::Timespan(if is_null {
                None
            } else {
                Some(parse_timespan_text(c).ok_or_else(bad)?)
            }),
            _ => return Err(bad()),
        };
        Ok(Expr::Literal { value, span })
    }

    /// Content of `dynamic(...)`: JSON-like values plus KQL scalar literals.
    fn parse_dynamic_value(&mut self) -> Result<DynamicValue, ParseError> {
        self.enter()?;
        let r = self.parse_dynamic_value_inner();
        self.leave();
        r
    }

    fn parse_dynamic_value_inner(&mut self) -> Result<DynamicValue, ParseError> {
        match self.kind().clone() {
            TokenKind::Ident(w) if w == "null" => {
                self.bump();
                Ok(DynamicValue::Null)
            }
            TokenKind::LBracket => {
                self.bump();
                let mut items = Vec::new();
                while !self.at(&TokenKind::RBracket) {
                    items.push(self.parse_dynamic_value()?);
                    if !self.eat(&TokenKind::Comma) {
                        break;
                    }
                }
                self.expect(&TokenKind::RBracket, "`,` or `]` in dynamic array")?;
                Ok(DynamicValue::Array(items))
            }
            TokenKind::LBrace => {
                self.bump();
                let mut fields = Vec::new();
                while !self.at(&TokenKind::RBrace) {
                    let key = match self.kind().clone() {
                        TokenKind::Str(s) | TokenKind::Ident(s) => {
                            self.bump();
                            s
                        }
                        _ => return Err(self.error("a property name in dynamic object")),
                    };
                    self.expect(&TokenKind::Colon, "`:` after the property name")?;
                    fields.push((key, self.parse_dynamic_value()?));
                    if !self.eat(&TokenKind::Comma) {
                        break;
                    }
                }
                self.expect(&TokenKind::RBrace, "`,` or `}` in dynamic object")?;
                Ok(DynamicValue::Object(fields))
            }
            TokenKind::Str(_)
            | TokenKind::Long(_)
            | TokenKind::Real(_)
            | TokenKind::Timespan(_)
            | TokenKind::TypedLit { .. }
            | TokenKind::Minus
            | TokenKind::Plus
            | TokenKind::Ident(_) => {
                let e = self.parse_unary()?;
                match e {
                    Expr::Literal {
                        value: Literal::Dynamic(d),
                        ..
                    } => Ok(*d),
                    Expr::Literal { value, .. } => Ok(DynamicValue::Scalar(value)),
                    other => Err(self.error_at(
                        other.span(),
                        "a literal value inside `dynamic(...)`",
                        "a non-literal expression",
                    )),
                }
            }
            _ => Err(self.error("a dynamic value (literal, `[...]` or `{...}`)")),
        }
    }
}

/// `timespan(...)` content: `5m`, `1.5h`, `[d.]hh:mm[:ss[.fffffff]]`, or a
/// bare number of days.
fn parse_timespan_text(c: &str) -> Option<i64> {
    let (neg, c) = match c.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, c),
    };
    let v = if c.contains(':') {
        let parts: Vec<&str> = c.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return None;
        }
        let (days, hours) = match parts.first()?.split_once('.') {
            Some((d, h)) => (d, h),
            None => ("0", *parts.first()?),
        };
        let mut total = timespan_nanos(days, "d")?;
        total = total.checked_add(timespan_nanos(hours, "h")?)?;
        total = total.checked_add(timespan_nanos(parts.get(1)?, "m")?)?;
        if let Some(secs) = parts.get(2) {
            total = total.checked_add(timespan_nanos(secs, "s")?)?;
        }
        total
    } else {
        let split = c
            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
            .unwrap_or(c.len());
        let (num, unit) = c.split_at(split);
        let unit = if unit.is_empty() { "d" } else { unit };
        timespan_nanos(num, unit)?
    };
    if neg { v.checked_neg() } else { Some(v) }
}
