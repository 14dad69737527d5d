//! Scalar expressions, functions and aggregates: KQL semantics in SQL.
//!
//! Strings: KQL strings are never null (a missing value is ""), so string operands of comparisons and
//! string operators read `coalesce(x, '')`; `isempty` is true for NULL and "", `isnull` of a string is
//! false (as in KQL). `==` is case-sensitive; `=~`, `contains`, `startswith`, `endswith`, `in~` are not.
//! `has` matches whole terms (maximal runs of ASCII letters and digits), case-insensitively, through the
//! `kql_has` UDF (registered by `query::plan`).

use std::rc::Rc;

use super::{Binding, Rel, Translator, q};
use crate::kql::ast::*;
use crate::kql::{
    KQL_HAS, KQL_HAS_ANY, KQL_HAS_CS, KQL_HASPREFIX, KQL_HASPREFIX_CS, KQL_HASSUFFIX,
    KQL_HASSUFFIX_CS,
};

/// A string read as a number for a comparison with a number of type `other` (`RemotePort == "3389"`):
/// against a long as a decimal, exact for every long and with a fraction part (`"1234.5" > 100`);
/// against a real as a real. Null where it is no number.
fn as_number(x: Sql, other: Ty) -> Sql {
    let sql_type = match other {
        Ty::Long => "DECIMAL(38, 9)",
        _ => "DOUBLE",
    };
    Sql::new(format!("TRY_CAST({} AS {sql_type})", x.text), Ty::Real)
}

fn is_agg(name: &str) -> bool {
    matches!(
        name,
        "count"
            | "countif"
            | "dcount"
            | "dcountif"
            | "make_set"
            | "make_set_if"
            | "make_list"
            | "make_list_if"
            | "min"
            | "max"
            | "sum"
            | "sumif"
            | "avg"
            | "arg_max"
            | "arg_min"
            | "any"
            | "take_any"
            | "stdev"
            | "variance"
            | "percentile"
            | "percentiles"
            | "make_bag"
            | "minif"
            | "maxif"
            | "avgif"
            | "hll"
            | "makeset"
            | "makelist"
    )
}

impl Translator<'_> {
    fn literal(&self, value: &Literal, span: Span) -> Result<Sql, super::Refusal> {
        Ok(match value {
            Literal::Bool(Some(b)) => Sql::new(b.to_string(), Ty::Bool),
            Literal::Int(Some(n)) | Literal::Long(Some(n)) => Sql::new(n.to_string(), Ty::Long),
            Literal::Real(Some(x)) if x.is_finite() => Sql::new(format!("{x:?}"), Ty::Real),
            Literal::String(s) => Sql::string_literal(s),
            Literal::Timespan(Some(ns)) => Sql::new(interval(*ns), Ty::Span),
            Literal::DateTime(Some(text)) => {
                let Some(utc) = iso_datetime(text) else {
                    return Err(self.refuse(
                        span,
                        "datetime format",
                        &format!(
                            "datetime({text}) is not an ISO 8601 date-time ghosthunt reads \
                             (yyyy-MM-dd[THH:mm[:ss[.f…]]][Z]; RFC 822/850 forms are not supported)"
                        ),
                    ));
                };
                Sql::new(
                    format!(
                        "arrow_cast({}, 'Timestamp(Nanosecond, Some(\"UTC\"))')",
                        quote(&utc)
                    ),
                    Ty::Time,
                )
            }
            Literal::Bool(None) => Sql::new(typed_null(Ty::Bool), Ty::Bool),
            Literal::Int(None) | Literal::Long(None) => Sql::new(typed_null(Ty::Long), Ty::Long),
            Literal::Real(None) => Sql::new(typed_null(Ty::Real), Ty::Real),
            Literal::DateTime(None) => Sql::new(typed_null(Ty::Time), Ty::Time),
            Literal::Dynamic(d) => match d.as_ref() {
                DynamicValue::Array(items) if !items.iter().any(is_container) => {
                    let items: Vec<String> = items
                        .iter()
                        .map(|i| self.dynamic_scalar(i, span).map(|s| s.text))
                        .collect::<Result<_, _>>()?;
                    Sql::new(format!("make_array({})", items.join(", ")), Ty::List)
                }
                DynamicValue::Array(_) | DynamicValue::Object(_) => {
                    let json = self.dynamic_json(d, span)?.to_string();
                    Sql::dynamic(quote(&json), Vec::new())
                }
                other => self.dynamic_scalar(other, span)?,
            },
            _ => {
                return Err(self.refuse(span, "literal", "this literal type is not supported"));
            }
        })
    }

    /// A scalar inside `dynamic(…)`.
    pub(super) fn dynamic_scalar(
        &self,
        d: &DynamicValue,
        span: Span,
    ) -> Result<Sql, super::Refusal> {
        match d {
            DynamicValue::Scalar(l) => self.literal(l, span),
            DynamicValue::Null => Ok(Sql::new("NULL", Ty::Unknown)),
            _ => Err(self.refuse(
                span,
                "dynamic object",
                "nested dynamic values (bags, arrays of arrays) are not supported",
            )),
        }
    }

    pub(super) fn expr(&mut self, e: &Expr, rel: &Rel) -> Result<Sql, super::Refusal> {
        match e {
            Expr::Literal { value, span } => self.literal(value, *span),
            Expr::Name(id) => {
                if let Some(t) = rel.col(&id.name) {
                    return Ok(Sql::new(q(&id.name), t));
                }
                if let Some(Binding::Expr(_)) = self.lets.get(&id.name) {
                    // Removed while it is translated: a name cannot refer to itself.
                    let Some(Binding::Expr(bound)) = self.lets.remove(&id.name) else {
                        unreachable!("just matched")
                    };
                    let value = self.expr(&bound, rel);
                    self.lets.insert(id.name.clone(), Binding::Expr(bound));
                    return value;
                }
                match self.lets.get(&id.name) {
                    Some(Binding::Arg(e, scope)) => {
                        let (e, scope) = (Rc::clone(e), Rc::clone(scope));
                        self.argument(&e, &scope, rel)
                    }
                    Some(Binding::Function(..)) => {
                        match self.call_function(&FunctionCall::bare(id), None, Some(rel))? {
                            super::lets::Called::Scalar(s) => Ok(s),
                            super::lets::Called::Table(_) => unreachable!("asked for a value"),
                        }
                    }
                    Some(Binding::Scalar(s)) => Ok(s.clone()),
                    Some(Binding::Expr(_)) => unreachable!("handled above"),
                    Some(Binding::List(items)) => Ok(Sql::new(
                        format!(
                            "make_array({})",
                            items
                                .iter()
                                .map(|i| i.text.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        Ty::List,
                    )),
                    Some(Binding::Table(_)) => Err(self.refuse(
                        id.span,
                        "table as scalar",
                        &format!("`{}` is a table, used here as a value", id.name),
                    )),
                    None => Err(self.unknown_column(&id.name, id.span, rel)),
                }
            }
            Expr::Unary { op, operand, .. } => {
                let v = self.expr(operand, rel)?;
                Ok(match op {
                    UnaryOp::Neg => Sql::new(format!("(-{})", v.text), v.ty),
                    UnaryOp::Plus => v,
                })
            }
            Expr::Binary {
                op,
                left,
                right,
                span,
            } => self.binary(*op, left, right, *span, rel),
            Expr::Between {
                expr,
                low,
                high,
                negated,
                ..
            } => {
                let lo = self.expr(low, rel)?;
                let v = self.expr(expr, rel)?.dyn_as(lo.ty);
                // A string between numbers is read as a number (see `binary`).
                let read = v.ty == Ty::Str && matches!(lo.ty, Ty::Long | Ty::Real);
                let v = if read { as_number(v, lo.ty) } else { v };
                let mut hi = self.expr(high, rel)?;
                if lo.ty == Ty::Time && hi.ty == Ty::Span {
                    hi = Sql::new(format!("({} + {})", lo.text, hi.text), Ty::Time);
                }
                let test = format!(
                    "({} {}BETWEEN {} AND {})",
                    v.text,
                    if *negated { "NOT " } else { "" },
                    lo.text,
                    hi.text
                );
                // A string that is no number lies between no numbers (null bounds still bound nothing).
                Ok(match read && *negated {
                    true => Sql::new(
                        format!(
                            "({} IS NOT NULL AND {} IS NOT NULL AND coalesce({test}, true))",
                            lo.text, hi.text
                        ),
                        Ty::Bool,
                    ),
                    false => Sql::new(test, Ty::Bool),
                })
            }
            Expr::InList {
                expr,
                op,
                items,
                span,
            } => self.in_list(expr, *op, items, *span, rel),
            Expr::Call(c) => self.call(c, rel),
            Expr::Member { target, name, span } => {
                let key = Sql::string_literal(&name.name);
                self.access(target, key, *span, rel)
            }
            Expr::Index {
                target,
                index,
                span,
            } => {
                let index = self.expr(index, rel)?;
                self.access(target, index, *span, rel)
            }
            Expr::Tabular(_) => Err(self.refuse(
                e.span(),
                "tabular expression as a value",
                "a query as a value (toscalar(T | …), (T | …)) is not supported: join the other table instead",
            )),
            other => Err(self.refuse(
                other.span(),
                "expression",
                "this expression is not supported here",
            )),
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        span: Span,
        rel: &Rel,
    ) -> Result<Sql, super::Refusal> {
        use BinaryOp::*;
        let a = self.expr(left, rel)?;
        let b = self.expr(right, rel)?;
        let (a, b) = match op {
            Or | And => (a.dyn_as(Ty::Bool), b.dyn_as(Ty::Bool)),
            _ => Sql::unify_dynamic(a, b),
        };
        // A string compared with a number is read as a number (`RemotePort == "3389"`, a pid cut out of a
        // command line by extract() against ProcessId); one that is not a number compares as null, so
        // the row does not match. Left to DataFusion, one side was cast as it pleased: the comparison
        // failed on the rows at run time (their alerts lost) or found nothing.
        let number = |t: Ty| matches!(t, Ty::Long | Ty::Real);
        let compared = matches!(op, Eq | NotEq | Lt | Le | Gt | Ge);
        let (a, b, number_side) = match (a.ty, b.ty) {
            (Ty::Str, t) if number(t) && compared => {
                let text = b.text.clone();
                (as_number(a, t), b, Some(text))
            }
            (t, Ty::Str) if number(t) && compared => {
                let text = a.text.clone();
                (a, as_number(b, t), Some(text))
            }
            _ => (a, b, None),
        };
        if let Some(number) = number_side.filter(|_| op == NotEq) {
            // A string that is no number differs from every number (a null number from nothing).
            return Ok(Sql::new(
                format!(
                    "({number} IS NOT NULL AND coalesce({} <> {}, true))",
                    a.text, b.text
                ),
                Ty::Bool,
            ));
        }
        let strings = a.ty == Ty::Str || b.ty == Ty::Str;
        let bool_of = |s: String| Ok(Sql::new(format!("({s})"), Ty::Bool));
        let not = |s: String| Ok(Sql::new(format!("(NOT {s})"), Ty::Bool));
        let has = |cs: bool, a: &Sql, b: &Sql| {
            format!(
                "{}({}, {})",
                if cs { KQL_HAS_CS } else { KQL_HAS },
                a.text,
                b.s()
            )
        };
        let term = |f: &str, a: &Sql, b: &Sql| format!("{f}({}, {})", a.text, b.s());
        // The WHERE-only form of a positive string test of a plain string against a non-empty literal:
        // `f(x, literal, lower-cased literal)`.
        let where_form =
            |f: &dyn Fn(&str, &str, &str) -> String| match (a.raw_str(), b.nonempty_literal()) {
                (Some(x), Some((lit, lower))) => Some(f(x, &lit, &lower)),
                _ => None,
            };
        let with_pred = |text: String, pred: Option<String>| -> Result<Sql, super::Refusal> {
            Ok(Sql::predicate(
                format!("({text})"),
                pred.map(|p| format!("({p})")),
            ))
        };
        match op {
            Or | And => {
                let join = if op == Or { "OR" } else { "AND" };
                with_pred(
                    format!("{} {join} {}", a.bool_sql(), b.bool_sql()),
                    Some(format!("{} {join} {}", a.where_sql(), b.where_sql())),
                )
            }
            Eq if strings => with_pred(
                format!("{} = {}", a.s(), b.s()),
                where_form(&|x, lit, _| format!("{x} = {lit}")),
            ),
            EqCi => with_pred(
                format!("{} = {}", a.lower(), b.lower()),
                where_form(&|x, _, lower| format!("lower({x}) = {lower}")),
            ),
            Contains => with_pred(
                format!("strpos({}, {}) > 0", a.lower(), b.lower()),
                where_form(&|x, _, lower| format!("strpos(lower({x}), {lower}) > 0")),
            ),
            StartsWith => with_pred(
                format!("starts_with({}, {})", a.lower(), b.lower()),
                where_form(&|x, _, lower| format!("starts_with(lower({x}), {lower})")),
            ),
            EndsWith => with_pred(
                format!("ends_with({}, {})", a.lower(), b.lower()),
                where_form(&|x, _, lower| format!("ends_with(lower({x}), {lower})")),
            ),
            NotEq if strings => bool_of(format!("{} <> {}", a.s(), b.s())),
            Eq => bool_of(format!("{} = {}", a.text, b.text)),
            NotEq => bool_of(format!("{} <> {}", a.text, b.text)),
            Lt | Le | Gt | Ge => bool_of(format!("{} {} {}", a.text, op.as_str(), b.text)),
            // How many of one timespan another is (`(t2 - t1) / 1m`, minutes between): a real.
            Div if a.ty == Ty::Span && b.ty == Ty::Span => Ok(Sql::new(
                format!(
                    "(date_part('epoch', {}) / date_part('epoch', {}))",
                    a.text, b.text
                ),
                Ty::Real,
            )),
            Add | Sub | Mul | Div | Mod => {
                let ty = match (op, a.ty, b.ty) {
                    (Add | Sub, Ty::Time, Ty::Span) | (Add, Ty::Span, Ty::Time) => Ty::Time,
                    (Sub, Ty::Time, Ty::Time) => Ty::Span,
                    (_, Ty::Real, _) | (_, _, Ty::Real) => Ty::Real,
                    (_, Ty::Long, Ty::Long) => Ty::Long,
                    (_, Ty::Span, Ty::Span) => Ty::Span,
                    _ => Ty::Unknown,
                };
                Ok(Sql::new(
                    format!("({} {} {})", a.text, op.as_str(), b.text),
                    ty,
                ))
            }
            NotEqCi => bool_of(format!("{} <> {}", a.lower(), b.lower())),
            Has => bool_of(has(false, &a, &b)),
            NotHas => not(has(false, &a, &b)),
            HasCs => bool_of(has(true, &a, &b)),
            NotHasCs => not(has(true, &a, &b)),
            HasPrefix => bool_of(term(KQL_HASPREFIX, &a, &b)),
            NotHasPrefix => not(term(KQL_HASPREFIX, &a, &b)),
            HasPrefixCs => bool_of(term(KQL_HASPREFIX_CS, &a, &b)),
            NotHasPrefixCs => not(term(KQL_HASPREFIX_CS, &a, &b)),
            HasSuffix => bool_of(term(KQL_HASSUFFIX, &a, &b)),
            NotHasSuffix => not(term(KQL_HASSUFFIX, &a, &b)),
            HasSuffixCs => bool_of(term(KQL_HASSUFFIX_CS, &a, &b)),
            NotHasSuffixCs => not(term(KQL_HASSUFFIX_CS, &a, &b)),
            NotContains => not(format!("strpos({}, {}) > 0", a.lower(), b.lower())),
            ContainsCs => bool_of(format!("strpos({}, {}) > 0", a.s(), b.s())),
            NotContainsCs => not(format!("strpos({}, {}) > 0", a.s(), b.s())),
            NotStartsWith => not(format!("starts_with({}, {})", a.lower(), b.lower())),
            StartsWithCs => bool_of(format!("starts_with({}, {})", a.s(), b.s())),
            NotStartsWithCs => not(format!("starts_with({}, {})", a.s(), b.s())),
            NotEndsWith => not(format!("ends_with({}, {})", a.lower(), b.lower())),
            EndsWithCs => bool_of(format!("ends_with({}, {})", a.s(), b.s())),
            NotEndsWithCs => not(format!("ends_with({}, {})", a.s(), b.s())),
            MatchesRegex => bool_of(format!("regexp_like({}, {})", a.s(), b.s())),
            other => Err(self.refuse(
                span,
                &format!("operator {}", other.as_str()),
                &format!("`{}` is not supported", other.as_str()),
            )),
        }
    }

    fn in_list(
        &mut self,
        e: &Expr,
        op: ListOp,
        items: &[Expr],
        span: Span,
        rel: &Rel,
    ) -> Result<Sql, super::Refusal> {
        let v = self.expr(e, rel)?;
        // A dynamic value is compared as a string, or as a number against numbers.
        let numbers = !items.is_empty()
            && items.iter().all(|i| {
                matches!(
                    i,
                    Expr::Literal {
                        value: Literal::Long(_) | Literal::Int(_) | Literal::Real(_),
                        ..
                    }
                )
            });
        let v = v.dyn_as(if numbers { Ty::Real } else { Ty::Str });
        // A single tabular item: `x in (T | project c)`.
        if let [item] = items {
            let table = match item {
                Expr::Tabular(t) => Some(self.tabular(t)?),
                Expr::Name(id) if rel.col(&id.name).is_none() => match self.lets.get(&id.name) {
                    Some(Binding::Table(r)) => Some(r.clone()),
                    Some(Binding::Function(..)) if self.names_table(&id.name) => {
                        Some(self.source(&Source::Name(id.clone()))?)
                    }
                    _ => None,
                },
                Expr::Call(c) if c.target.is_none() && self.is_table_function(&c.name.name) => {
                    Some(self.source(&Source::Call(c.clone()))?)
                }
                _ => None,
            };
            if let Some(sub) = table {
                // The rows are tested against other events: a hunt doing so needs a window.
                self.stateful = true;
                let Some((col, _)) = sub.cols.first() else {
                    return Err(self.refuse(span, "in subquery", "the subquery has no column"));
                };
                let alias = format!("s{}", span.start);
                let (lhs, sel) = match op {
                    ListOp::In | ListOp::NotIn => (v.s(), format!("coalesce({}, '')", q(col))),
                    ListOp::InCi | ListOp::NotInCi => (v.lower(), format!("lower({})", q(col))),
                    _ => {
                        return Err(self.refuse(
                            span,
                            &format!("{} subquery", op.as_str()),
                            &format!("`{}` with a subquery is not supported", op.as_str()),
                        ));
                    }
                };
                let lhs = if v.ty == Ty::Str || v.ty == Ty::Unknown {
                    lhs
                } else {
                    v.text.clone()
                };
                let sel = if v.ty == Ty::Str || v.ty == Ty::Unknown {
                    sel
                } else {
                    q(col)
                };
                let neg = matches!(op, ListOp::NotIn | ListOp::NotInCi);
                return Ok(Sql::new(
                    format!(
                        "({lhs} {}IN (SELECT {sel} FROM ({}) AS {alias}))",
                        if neg { "NOT " } else { "" },
                        sub.sql
                    ),
                    Ty::Bool,
                ));
            }
        }
        let mut values = Vec::new();
        for item in items {
            match item {
                Expr::Name(id) if rel.col(&id.name).is_none() => match self.lets.get(&id.name) {
                    Some(Binding::List(l)) => values.extend(l.iter().cloned()),
                    _ => values.push(self.expr(item, rel)?),
                },
                Expr::Literal {
                    value: Literal::Dynamic(d),
                    span,
                } => match d.as_ref() {
                    DynamicValue::Array(a) => {
                        for x in a {
                            values.push(self.dynamic_scalar(x, *span)?);
                        }
                    }
                    other => values.push(self.dynamic_scalar(other, *span)?),
                },
                Expr::Tabular(t) => {
                    return Err(self.refuse(
                        t.span,
                        "in subquery",
                        "a subquery must be the only item of the list",
                    ));
                }
                _ => values.push(self.expr(item, rel)?),
            }
        }
        let values: Vec<Sql> = values.into_iter().map(|x| x.dyn_as(v.ty)).collect();
        if values.is_empty() {
            let empty = matches!(op, ListOp::NotIn | ListOp::NotInCi | ListOp::HasAll);
            return Ok(Sql::new(empty.to_string(), Ty::Bool));
        }
        let strings = v.ty == Ty::Str || values.iter().any(|x| x.ty == Ty::Str);
        let list = |f: &dyn Fn(&Sql) -> String| values.iter().map(f).collect::<Vec<_>>().join(", ");
        // WHERE-only form of `in`/`in~` of a plain string against non-empty literals (see `where_sql`).
        let literals: Option<Vec<(String, String)>> =
            values.iter().map(Sql::nonempty_literal).collect();
        let pred = match (v.raw_str(), literals, op) {
            (Some(x), Some(l), ListOp::In) => Some(format!(
                "({x} IN ({}))",
                l.iter()
                    .map(|(t, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (Some(x), Some(l), ListOp::InCi) => Some(format!(
                "(lower({x}) IN ({}))",
                l.iter()
                    .map(|(_, t)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => None,
        };
        let text = match op {
            ListOp::In | ListOp::NotIn => {
                let neg = if op == ListOp::NotIn { "NOT " } else { "" };
                if strings {
                    format!("({} {neg}IN ({}))", v.s(), list(&|x| x.s()))
                } else {
                    format!("({} {neg}IN ({}))", v.text, list(&|x| x.text.clone()))
                }
            }
            ListOp::InCi | ListOp::NotInCi => {
                let neg = if op == ListOp::NotInCi { "NOT " } else { "" };
                format!("({} {neg}IN ({}))", v.lower(), list(&|x| x.lower()))
            }
            // Literal needles: one pass over each value for all of them.
            ListOp::HasAny
                if values.len() > 1 && values.iter().all(|x| x.nonempty_literal().is_some()) =>
            {
                format!("{KQL_HAS_ANY}({}, {})", v.text, list(&|x| x.s()))
            }
            ListOp::HasAny | ListOp::HasAll => {
                let join = if op == ListOp::HasAny {
                    " OR "
                } else {
                    " AND "
                };
                let parts: Vec<String> = values
                    .iter()
                    .map(|x| format!("{KQL_HAS}({}, {})", v.text, x.s()))
                    .collect();
                format!("({})", parts.join(join))
            }
        };
        Ok(Sql::predicate(text, pred))
    }

    /// `coalesce(window_end, event_time)`: event time, never the wall clock. An ad-hoc query over the
    /// lake evaluates no window and is not replayed: its `now()` is the time it runs, as in a KQL editor
    /// (relative to each row's own time, `where Timestamp > ago(1h)` would keep every row).
    fn now(&self, span: Span, rel: &Rel) -> Result<String, super::Refusal> {
        if self.ad_hoc {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            return Ok(format!(
                "arrow_cast({}, 'Timestamp(Nanosecond, Some(\"UTC\"))')",
                quote(&now)
            ));
        }
        match (rel.window, rel.time) {
            (true, true) => Ok("coalesce(window_end, event_time)".into()),
            (true, false) => Ok("window_end".into()),
            (false, true) => Ok("event_time".into()),
            (false, false) => Err(self.refuse(
                span,
                "function now",
                "now()/ago() need event time, which this step's rows no longer carry",
            )),
        }
    }
}

#[path = "translate_sql.rs"]
mod sql;
pub(super) use sql::interval;
pub(crate) use sql::{Sql, Ty, iso_datetime, quote, typed_null};

#[path = "translate_funcs.rs"]
mod funcs;

#[path = "translate_dynamic.rs"]
mod dynamic;
pub(super) use dynamic::is_container;
