//! Functions and aggregates of KQL scalar expressions: each KQL function the translation knows, as SQL
//! with KQL's semantics, and the aggregates of `summarize`.

use super::dynamic::{dynamic_aggregate_args, dynamic_args};
use super::*;
use crate::kql::{KQL_BASE64_DECODE_TOSTRING, Refusal};

impl Translator<'_> {
    pub(super) fn call(&mut self, c: &FunctionCall, rel: &Rel) -> Result<Sql, Refusal> {
        let name = c.name.name.as_str();
        if c.target.is_none() && matches!(self.lets.get(name), Some(Binding::Function(..))) {
            return match self.call_function(c, None, Some(rel))? {
                super::super::lets::Called::Scalar(s) => Ok(s),
                super::super::lets::Called::Table(_) => unreachable!("asked for a value"),
            };
        }
        if c.target.is_some() {
            return Err(self.refuse(
                c.span,
                &format!("function {name}"),
                "dotted calls are not supported",
            ));
        }
        if is_agg(name) && self.in_summarize && !matches!(name, "arg_max" | "arg_min") {
            // The aggregate's value, for the scalar function around it (not inside another aggregate).
            self.nested_aggregates += 1;
            self.in_summarize = false;
            let value = self.aggregate(&Expr::Call(c.clone()), rel);
            self.in_summarize = true;
            let (value, name) = value?;
            self.nested_name = name;
            return Ok(value);
        }
        if is_agg(name) {
            return Err(self.refuse(
                c.span,
                &format!("aggregate {name}"),
                &format!("`{name}()` is an aggregate: use it in summarize"),
            ));
        }
        let args: Vec<Sql> = c
            .args
            .iter()
            .map(|a| self.expr(a, rel))
            .collect::<Result<_, _>>()?;
        if let Some(s) = self.call_dynamic(c, &args)? {
            return Ok(s);
        }
        let args = dynamic_args(name, args);
        let arity = |n: std::ops::RangeInclusive<usize>| {
            if n.contains(&args.len()) {
                Ok(())
            } else {
                Err(self.refuse(
                    c.span,
                    &format!("function {name}"),
                    &format!("`{name}` takes {}..{} arguments", n.start(), n.end()),
                ))
            }
        };
        let a = |i: usize| args[i].clone();
        Ok(match name {
            "ago" => {
                arity(1..=1)?;
                Sql::new(
                    format!("({} - {})", self.now(c.span, rel)?, a(0).text),
                    Ty::Time,
                )
            }
            "now" => {
                arity(0..=1)?;
                let now = self.now(c.span, rel)?;
                match args.first() {
                    Some(d) => Sql::new(format!("({now} + {})", d.text), Ty::Time),
                    None => Sql::new(now, Ty::Time),
                }
            }
            "bin" | "floor" => {
                arity(2..=2)?;
                match (a(0).ty, a(1).ty) {
                    // A timespan literal, or a name bound to one (`let span = 1h;`).
                    (Ty::Time, Ty::Span) => {
                        Sql::new(format!("date_bin({}, {})", a(1).text, a(0).text), Ty::Time)
                    }
                    (Ty::Long | Ty::Real, _) => Sql::new(
                        format!("(floor({} / {}) * {})", a(0).text, a(1).text, a(1).text),
                        a(0).ty,
                    ),
                    _ => {
                        return Err(self.refuse(
                            c.span,
                            "function bin",
                            "bin takes a datetime and a timespan, or numbers",
                        ));
                    }
                }
            }
            "tostring" => {
                arity(1..=1)?;
                Sql::new(
                    format!("coalesce(CAST({} AS VARCHAR), '')", a(0).text),
                    Ty::Str,
                )
            }
            "toint" | "tolong" => {
                arity(1..=1)?;
                Sql::new(format!("TRY_CAST({} AS BIGINT)", a(0).text), Ty::Long)
            }
            "toreal" | "todouble" => {
                arity(1..=1)?;
                Sql::new(format!("TRY_CAST({} AS DOUBLE)", a(0).text), Ty::Real)
            }
            "tolower" => {
                arity(1..=1)?;
                Sql::new(format!("lower({})", a(0).s()), Ty::Str)
            }
            "toupper" => {
                arity(1..=1)?;
                Sql::new(format!("upper({})", a(0).s()), Ty::Str)
            }
            "strcat" => {
                arity(1..=64)?;
                Sql::new(
                    format!(
                        "concat({})",
                        args.iter().map(Sql::s).collect::<Vec<_>>().join(", ")
                    ),
                    Ty::Str,
                )
            }
            "strlen" => {
                arity(1..=1)?;
                Sql::new(format!("character_length({})", a(0).s()), Ty::Long)
            }
            "substring" => {
                arity(2..=3)?;
                let len = args
                    .get(2)
                    .map(|l| format!(", {}", l.text))
                    .unwrap_or_default();
                Sql::new(
                    format!("substr({}, ({}) + 1{len})", a(0).s(), a(1).text),
                    Ty::Str,
                )
            }
            "replace_string" => {
                arity(3..=3)?;
                Sql::new(
                    format!("replace({}, {}, {})", a(0).s(), a(1).s(), a(2).s()),
                    Ty::Str,
                )
            }
            "iff" | "iif" => {
                arity(3..=3)?;
                let ty = if a(1).ty == Ty::Unknown {
                    a(2).ty
                } else {
                    a(1).ty
                };
                Sql::new(
                    format!(
                        "(CASE WHEN {} THEN {} ELSE {} END)",
                        a(0).bool_sql(),
                        a(1).text,
                        a(2).text
                    ),
                    ty,
                )
            }
            "case" => {
                if args.len() < 3 || args.len().is_multiple_of(2) {
                    return Err(self.refuse(c.span, "function case", "case(pred, value, …, else)"));
                }
                let mut s = String::from("(CASE");
                for pair in args[..args.len() - 1].chunks(2) {
                    s.push_str(&format!(
                        " WHEN {} THEN {}",
                        pair[0].bool_sql(),
                        pair[1].text
                    ));
                }
                s.push_str(&format!(" ELSE {} END)", args[args.len() - 1].text));
                Sql::new(s, args[1].ty)
            }
            "isempty" | "isnotempty" => {
                arity(1..=1)?;
                let v = a(0);
                let empty = if v.ty == Ty::Str || v.ty == Ty::Unknown {
                    format!("({} IS NULL OR CAST({} AS VARCHAR) = '')", v.text, v.text)
                } else {
                    format!("({} IS NULL)", v.text)
                };
                if name == "isempty" {
                    Sql::new(empty, Ty::Bool)
                } else {
                    Sql::new(format!("(NOT {empty})"), Ty::Bool)
                }
            }
            "isnull" | "isnotnull" => {
                arity(1..=1)?;
                let v = a(0);
                // KQL strings are never null.
                let null = if v.ty == Ty::Str {
                    "false".to_string()
                } else {
                    format!("({} IS NULL)", v.text)
                };
                if name == "isnull" {
                    Sql::new(null, Ty::Bool)
                } else {
                    Sql::new(format!("(NOT {null})"), Ty::Bool)
                }
            }
            // KQL's coalesce skips empty strings as well as nulls: the first non-empty string, else
            // the empty string (KQL strings are never null).
            "coalesce" if args.iter().all(|x| x.ty == Ty::Str) => {
                arity(1..=64)?;
                let firsts: Vec<String> = args
                    .iter()
                    .map(|x| format!("nullif({}, '')", x.text))
                    .collect();
                Sql::new(format!("coalesce({}, '')", firsts.join(", ")), Ty::Str)
            }
            "coalesce" => {
                arity(1..=64)?;
                Sql::new(
                    format!(
                        "coalesce({})",
                        args.iter()
                            .map(|x| x.text.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    args[0].ty,
                )
            }
            "extract" => {
                arity(3..=3)?;
                let Some(group) = args[1].text.parse::<i64>().ok() else {
                    return Err(self.refuse(
                        c.span,
                        "function extract",
                        "the capture group must be a number",
                    ));
                };
                let (pattern, index) = if group == 0 {
                    (format!("concat('(', {}, ')')", a(0).text), 1)
                } else {
                    (a(0).text, group)
                };
                Sql::new(
                    format!(
                        "coalesce(regexp_match({}, {pattern})[{index}], '')",
                        a(2).s()
                    ),
                    Ty::Str,
                )
            }
            "split" => {
                arity(2..=2)?;
                Sql::new(
                    format!("string_to_array({}, {})", a(0).s(), a(1).s()),
                    Ty::List,
                )
            }
            "array_length" => {
                arity(1..=1)?;
                Sql::new(
                    format!("CAST(array_length({}) AS BIGINT)", a(0).text),
                    Ty::Long,
                )
            }
            "datetime_diff" => {
                arity(3..=3)?;
                let unit = a(0).literal.unwrap_or_default().to_lowercase();
                let secs: f64 = match unit.as_str() {
                    "second" => 1.0,
                    "minute" => 60.0,
                    "hour" => 3600.0,
                    "day" => 86400.0,
                    "week" => 604800.0,
                    "millisecond" => 0.001,
                    _ => {
                        return Err(self.refuse(
                            c.span,
                            "function datetime_diff",
                            "datetime_diff supports week, day, hour, minute, second, millisecond",
                        ));
                    }
                };
                Sql::new(
                    format!(
                        "CAST(floor(date_part('epoch', {}) / {secs:?}) - floor(date_part('epoch', {}) / {secs:?}) AS BIGINT)",
                        a(1).text,
                        a(2).text
                    ),
                    Ty::Long,
                )
            }
            "datetime_add" => {
                arity(3..=3)?;
                self.datetime_add(c, &a(0), &a(1), &a(2))?
            }
            "base64_decode_tostring" | "base64_decodestring" => {
                arity(1..=1)?;
                Sql::new(
                    format!("{KQL_BASE64_DECODE_TOSTRING}({})", a(0).s()),
                    Ty::Str,
                )
            }
            // `replace_regex(text, regex, rewrite)`; the deprecated `replace(regex, rewrite, text)`.
            "replace_regex" | "replace" => {
                arity(3..=3)?;
                let (text, regex, rewrite) = if name == "replace" {
                    (a(2), a(0), a(1))
                } else {
                    (a(0), a(1), a(2))
                };
                let Some(rewrite) = rewrite.literal.as_deref().map(rewrite_groups) else {
                    return Err(self.refuse(
                        c.span,
                        &format!("function {name}"),
                        "the rewrite must be a string literal",
                    ));
                };
                Sql::new(
                    format!(
                        "coalesce(regexp_replace({}, {}, {}, 'g'), '')",
                        text.s(),
                        regex.s(),
                        quote(&rewrite)
                    ),
                    Ty::Str,
                )
            }
            "pack_array" => Sql::new(
                format!(
                    "make_array({})",
                    args.iter()
                        .map(|x| x.text.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Ty::List,
            ),
            "abs" => {
                arity(1..=1)?;
                Sql::new(format!("abs({})", a(0).text), a(0).ty)
            }
            "not" => {
                arity(1..=1)?;
                Sql::new(format!("(NOT {})", a(0).bool_sql()), Ty::Bool)
            }
            "totimespan" | "timespan" if matches!(a(0).ty, Ty::Span) => a(0),
            _ => {
                return Err(self.refuse(
                    c.name.span,
                    &format!("function {name}"),
                    &format!("function `{name}` is not supported"),
                ));
            }
        })
    }

    /// An aggregate of `summarize`: its SQL and KQL's default column name.
    pub(in super::super) fn aggregate(
        &mut self,
        e: &Expr,
        rel: &Rel,
    ) -> Result<(Sql, String), Refusal> {
        if !matches!(e, Expr::Call(c) if is_agg(c.name.name.as_str())) {
            // A scalar expression over aggregates (`tostring(make_set(x))`): translated with the
            // aggregate calls in it allowed; one with none in it is not an aggregation.
            let (before, seen) = (self.in_summarize, self.nested_aggregates);
            self.in_summarize = true;
            let value = self.expr(e, rel);
            self.in_summarize = before;
            let value = value?;
            if self.nested_aggregates == seen {
                return Err(self.refuse(
                    e.span(),
                    "summarize expression",
                    "summarize takes aggregations (count(), make_set(x), …, or an expression over them)",
                ));
            }
            // Named as its one aggregate would be; over several, as KQL names a computed column.
            let name = match self.nested_aggregates - seen {
                1 => std::mem::take(&mut self.nested_name),
                _ => "Column1".to_string(),
            };
            return Ok((value, name));
        }
        let Expr::Call(c) = e else {
            unreachable!("an aggregate call")
        };
        // Deprecated spellings.
        let name = match c.name.name.as_str() {
            "makeset" => "make_set",
            "makelist" => "make_list",
            other => other,
        };
        let args: Vec<Sql> = c
            .args
            .iter()
            .map(|a| match a {
                Expr::Star(_) => Ok(Sql::new("*", Ty::Unknown)),
                other => self.expr(other, rel),
            })
            .collect::<Result<_, _>>()?;
        let args = dynamic_aggregate_args(name, args);
        let col = |i: usize| match c.args.get(i) {
            Some(Expr::Name(id)) => id.name.clone(),
            _ => String::new(),
        };
        let suffix = |prefix: &str| {
            let c0 = col(0);
            if c0.is_empty() {
                format!("{prefix}_")
            } else {
                format!("{prefix}_{c0}")
            }
        };
        let need = |n: usize| {
            if args.len() >= n {
                Ok(())
            } else {
                Err(self.refuse(
                    c.span,
                    &format!("aggregate {name}"),
                    &format!("`{name}` needs {n} arguments"),
                ))
            }
        };
        let a = |i: usize| args[i].clone();
        let (sql, default) = match name {
            "count" => (Sql::new("count(*)", Ty::Long), "count_".to_string()),
            "countif" => {
                need(1)?;
                (
                    Sql::new(
                        format!("count(CASE WHEN {} THEN 1 END)", a(0).bool_sql()),
                        Ty::Long,
                    ),
                    "countif_".into(),
                )
            }
            "dcount" => {
                need(1)?;
                (
                    Sql::new(format!("count(DISTINCT {})", a(0).text), Ty::Long),
                    suffix("dcount"),
                )
            }
            "dcountif" => {
                need(2)?;
                (
                    Sql::new(
                        format!(
                            "count(DISTINCT CASE WHEN {} THEN {} END)",
                            a(1).bool_sql(),
                            a(0).text
                        ),
                        Ty::Long,
                    ),
                    suffix("dcountif"),
                )
            }
            "make_set" | "make_list" => {
                need(1)?;
                let distinct = if name == "make_set" { "DISTINCT " } else { "" };
                (
                    Sql::new(
                        format!(
                            "array_agg({distinct}{}) FILTER (WHERE {} IS NOT NULL)",
                            a(0).text,
                            a(0).text
                        ),
                        Ty::List,
                    ),
                    suffix(if name == "make_set" { "set" } else { "list" }),
                )
            }
            "make_set_if" | "make_list_if" => {
                need(2)?;
                let distinct = if name == "make_set_if" {
                    "DISTINCT "
                } else {
                    ""
                };
                (
                    Sql::new(
                        format!(
                            "array_agg({distinct}{}) FILTER (WHERE {} IS NOT NULL AND {})",
                            a(0).text,
                            a(0).text,
                            a(1).bool_sql()
                        ),
                        Ty::List,
                    ),
                    suffix(if name == "make_set_if" { "set" } else { "list" }),
                )
            }
            "min" | "max" | "sum" | "avg" | "stdev" | "variance" => {
                need(1)?;
                let f = match name {
                    "stdev" => "stddev",
                    "variance" => "var_samp",
                    f => f,
                };
                let ty = if name == "avg" || name == "stdev" || name == "variance" {
                    Ty::Real
                } else {
                    a(0).ty
                };
                (Sql::new(format!("{f}({})", a(0).text), ty), suffix(name))
            }
            "sumif" | "minif" | "maxif" | "avgif" => {
                need(2)?;
                let f = &name[..name.len() - 2];
                (
                    Sql::new(
                        format!("{f}(CASE WHEN {} THEN {} END)", a(1).bool_sql(), a(0).text),
                        a(0).ty,
                    ),
                    suffix(name),
                )
            }
            "any" | "take_any" => {
                need(1)?;
                (
                    Sql::new(format!("first_value({})", a(0).text), a(0).ty),
                    suffix("any"),
                )
            }
            _ => {
                return Err(self.refuse(
                    c.name.span,
                    &format!("aggregate {name}"),
                    &format!("aggregate `{name}` is not supported"),
                ));
            }
        };
        Ok((sql, default))
    }
}

/// KQL's rewrite text (`\1` for a group, `$` itself) in the replacement syntax of DataFusion's
/// `regexp_replace` (`${1}`, `$$`).
fn rewrite_groups(rewrite: &str) -> String {
    let mut out = String::new();
    let mut chars = rewrite.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '$' => out.push_str("$$"),
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut group = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    group.push(d);
                }
                out.push_str(&format!("${{{group}}}"));
            }
            other => out.push(other),
        }
    }
    out
}

impl Translator<'_> {
    /// `datetime_add(period, amount, datetime)`: calendar periods (year, quarter, month) as month
    /// intervals, which end on the last day of a shorter month as KQL does; the others as fixed lengths.
    fn datetime_add(
        &self,
        c: &FunctionCall,
        period: &Sql,
        amount: &Sql,
        dt: &Sql,
    ) -> Result<Sql, Refusal> {
        let refuse = |why: &str| self.refuse(c.span, "function datetime_add", why);
        let period = period
            .literal
            .as_deref()
            .ok_or_else(|| refuse("the period must be a string literal"))?
            .to_lowercase();
        let months = match period.as_str() {
            "year" => Some(12),
            "quarter" => Some(3),
            "month" => Some(1),
            _ => None,
        };
        let ns: i64 = match period.as_str() {
            "week" => 604_800_000_000_000,
            "day" => 86_400_000_000_000,
            "hour" => 3_600_000_000_000,
            "minute" => 60_000_000_000,
            "second" => 1_000_000_000,
            "millisecond" => 1_000_000,
            "microsecond" => 1_000,
            "nanosecond" => 1,
            _ if months.is_some() => 0,
            other => return Err(refuse(&format!("unknown period `{other}`"))),
        };
        let shift = match (months, amount.int_value()) {
            (Some(m), Some(n)) => format!("INTERVAL '{} months'", n * m),
            (Some(_), None) => {
                return Err(refuse(
                    "adding years, quarters or months needs a constant amount",
                ));
            }
            (None, Some(n)) => interval(n.saturating_mul(ns)),
            (None, None) => format!(
                "arrow_cast(CAST({} AS BIGINT) * {ns}, 'Duration(Nanosecond)')",
                amount.text
            ),
        };
        Ok(Sql::new(format!("({} + {shift})", dt.text), Ty::Time))
    }
}
