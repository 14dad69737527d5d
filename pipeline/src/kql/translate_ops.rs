//! The stateful operators: `summarize` (with `arg_max`/`arg_min`) and `join`.

use super::expr::{Sql, Ty};
use super::{Rel, Translator, q};
use crate::kql::ast::*;

impl Translator<'_> {
    pub(super) fn summarize(&mut self, s: &SummarizeOp, rel: Rel) -> Result<Rel, Refusal> {
        self.stateful = true;
        // By-expressions first become columns __by0.. of a pre-projection, so aggregates still read the
        // input columns (`min(Timestamp) by bin(Timestamp, 1h)`).
        let mut by_names = Vec::new();
        let mut by_items = Vec::new();
        let mut by_cols = Vec::new();
        for (i, b) in s.by.iter().enumerate() {
            let name = match (b.name(), &b.expr) {
                (Some(n), _) => n.name.clone(),
                (None, Expr::Name(id)) => id.name.clone(),
                (None, Expr::Call(c)) if c.name.name == "bin" => match c.args.first() {
                    Some(Expr::Name(id)) => id.name.clone(),
                    _ => format!("bin_{i}"),
                },
                _ => {
                    return Err(self.refuse(
                        b.span,
                        "summarize by expression",
                        "name computed summarize keys (`by Name = …`)",
                    ));
                }
            };
            let value = self.by_key(&b.expr, &rel)?;
            by_items.push((value.text.clone(), format!("{} AS \"__by{i}\"", value.text)));
            by_cols.push((name.clone(), value.ty));
            by_names.push(name);
        }
        let arg = s
            .aggregates
            .iter()
            .filter(|a| matches!(&a.expr, Expr::Call(c) if matches!(c.name.name.as_str(), "arg_max" | "arg_min")))
            .count();
        if arg > 0 {
            if arg != 1 || s.aggregates.len() != 1 {
                return Err(self.refuse(
                    s.span,
                    "summarize arg_max mixed",
                    "arg_max/arg_min is supported as the only aggregate of a summarize",
                ));
            }
            return self.arg_extreme(&s.aggregates[0], by_items, by_cols, rel);
        }
        let mut agg_items = Vec::new();
        let mut cols = by_cols.clone();
        let by_items: Vec<String> = by_items.into_iter().map(|(_, item)| item).collect();
        let mut agg_names: Vec<String> = Vec::new();
        for a in &s.aggregates {
            let (sql, default_name) = self.aggregate(&a.expr, &rel)?;
            let name = match a.name() {
                Some(n) => n.name.clone(),
                // A name taken already (by a key or an earlier aggregation) is numbered, as KQL does:
                // `count_`, `count_1`; `Column1`, `Column2`.
                None if a.names.is_empty() => {
                    let taken = |n: &str| {
                        by_names.iter().any(|b| b == n) || agg_names.iter().any(|x| x == n)
                    };
                    match default_name.strip_prefix("Column") {
                        Some(_) => (1..)
                            .map(|i| format!("Column{i}"))
                            .find(|n| !taken(n))
                            .expect("a free name"),
                        None if taken(&default_name) => (1..)
                            .map(|i| format!("{default_name}{i}"))
                            .find(|n| !taken(n))
                            .expect("a free name"),
                        None => default_name,
                    }
                }
                None => {
                    return Err(self.refuse(
                        a.span,
                        "multiple names",
                        "`(A, B) = …` is not supported",
                    ));
                }
            };
            agg_items.push(format!("{} AS {}", sql.text, q(&name)));
            agg_names.push(name.clone());
            cols.retain(|c| c.0 != name);
            cols.push((name, sql.ty));
        }
        // Pre-projection: every input column, hidden ones and the keys.
        let mut pre: Vec<String> = rel.cols.iter().map(|(n, _)| q(n)).collect();
        pre.extend(by_items);
        let pre_select = Self::select_list(&rel, pre);
        let pre_sql = self.wrap(&rel, &pre_select, "");
        let pre_rel = Rel {
            sql: pre_sql,
            ..rel.clone()
        };
        let mut select: Vec<String> = by_names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("\"__by{i}\" AS {}", q(n)))
            .collect();
        select.extend(agg_items);
        let mut group: Vec<String> = (0..by_names.len())
            .map(|i| format!("\"__by{i}\""))
            .collect();
        if rel.window {
            select.extend(["window_start".to_string(), "window_end".to_string()]);
            group.extend(["window_start".to_string(), "window_end".to_string()]);
        }
        let tail = if group.is_empty() {
            String::new()
        } else {
            format!("GROUP BY {}", group.join(", "))
        };
        let sql = self.wrap(&pre_rel, &select.join(", "), &tail);
        Ok(Rel {
            sql,
            cols,
            time: false,
            window: rel.window,
            order: None,
            table: None,
        })
    }

    /// A summarize key: `bin(<time>, <hunt window>)` is the window's start.
    fn by_key(&mut self, e: &Expr, rel: &Rel) -> Result<Sql, Refusal> {
        if let Expr::Call(c) = e
            && c.name.name == "bin"
            && let [Expr::Name(_), span] = c.args.as_slice()
            && self.span_literal(span).is_some()
            && self.span_literal(span) == self.window
            && rel.window
            && self.expr(&c.args[0], rel)?.ty == Ty::Time
        {
            return Ok(Sql::new("window_start", Ty::Time));
        }
        self.expr(e, rel)
    }

    /// The nanoseconds of a timespan literal, or of a name a `let` binds to one.
    fn span_literal(&self, e: &Expr) -> Option<i64> {
        match e {
            Expr::Literal {
                value: Literal::Timespan(Some(ns)),
                ..
            } => Some(*ns),
            Expr::Name(id) => match self.lets.get(&id.name) {
                Some(super::Binding::Expr(bound)) => self.span_literal(bound),
                _ => None,
            },
            _ => None,
        }
    }

    /// `summarize arg_max(T, cols | *) by keys`: the row with the largest (smallest) T per key.
    fn arg_extreme(
        &mut self,
        a: &NamedExpr,
        by_items: Vec<(String, String)>,
        by_cols: Vec<(String, Ty)>,
        rel: Rel,
    ) -> Result<Rel, Refusal> {
        let Expr::Call(c) = &a.expr else {
            unreachable!("checked by the caller")
        };
        let max = c.name.name == "arg_max";
        let Some((first, rest)) = c.args.split_first() else {
            return Err(self.refuse(c.span, "function arg_max", "arg_max needs arguments"));
        };
        let key = self.expr(first, &rel)?;
        let key_name = match first {
            Expr::Name(id) => id.name.clone(),
            _ => {
                return Err(self.refuse(
                    first.span(),
                    "function arg_max",
                    "arg_max/arg_min take a column to maximise",
                ));
            }
        };
        let mut out_cols: Vec<(String, Ty)> = by_cols.clone();
        let push = |cols: &mut Vec<(String, Ty)>, c: (String, Ty)| {
            if !cols.iter().any(|x| x.0 == c.0) {
                cols.push(c);
            }
        };
        push(&mut out_cols, (key_name, key.ty));
        if rest.is_empty() {
            // KQL returns the key and the extreme only.
        }
        for r in rest {
            match r {
                Expr::Star(_) => {
                    for c in &rel.cols {
                        push(&mut out_cols, c.clone());
                    }
                }
                Expr::Name(id) => {
                    let t = rel
                        .col(&id.name)
                        .ok_or_else(|| self.unknown_column(&id.name, id.span, &rel))?;
                    push(&mut out_cols, (id.name.clone(), t));
                }
                other => {
                    return Err(self.refuse(
                        other.span(),
                        "function arg_max",
                        "arg_max/arg_min return columns by name or *",
                    ));
                }
            }
        }
        // The key expressions themselves: a window function cannot read aliases of its own SELECT.
        let mut partition: Vec<String> = by_items.iter().map(|(value, _)| value.clone()).collect();
        if rel.window {
            partition.extend(["window_start".to_string(), "window_end".to_string()]);
        }
        let partition = if partition.is_empty() {
            String::new()
        } else {
            format!("PARTITION BY {} ", partition.join(", "))
        };
        let mut inner: Vec<String> = rel.cols.iter().map(|(n, _)| q(n)).collect();
        inner.extend(by_items.into_iter().map(|(_, item)| item));
        inner.push(format!(
            "ROW_NUMBER() OVER ({partition}ORDER BY {} {}) AS \"__rn\"",
            key.text,
            if max {
                "DESC NULLS LAST"
            } else {
                "ASC NULLS LAST"
            }
        ));
        let inner_select = Self::select_list(&rel, inner);
        let inner_sql = self.wrap(&rel, &inner_select, "");
        let inner_rel = Rel {
            sql: inner_sql,
            ..rel.clone()
        };
        let items: Vec<String> = out_cols
            .iter()
            .map(|(n, _)| match by_cols.iter().position(|b| &b.0 == n) {
                Some(i) => format!("\"__by{i}\" AS {}", q(n)),
                None => q(n),
            })
            .collect();
        let select = Self::select_list(&rel, items);
        let sql = self.wrap(&inner_rel, &select, "WHERE \"__rn\" = 1");
        Ok(Rel {
            sql,
            cols: out_cols,
            time: rel.time,
            window: rel.window,
            order: None,
            table: rel.table,
        })
    }

    /// `join kind=… (right) on keys`.
    pub(super) fn join(&mut self, j: &JoinOp, left: Rel) -> Result<Rel, Refusal> {
        self.stateful = true;
        let kind = j.kind.as_deref().unwrap_or("innerunique");
        let (sql_kind, keep_right, dedup_left) = match kind {
            "innerunique" => ("JOIN", true, true),
            "inner" => ("JOIN", true, false),
            "leftouter" => ("LEFT JOIN", true, false),
            "leftsemi" => ("LEFT SEMI JOIN", false, false),
            "leftanti" | "anti" | "leftantisemi" => ("LEFT ANTI JOIN", false, false),
            other => {
                return Err(self.refuse(
                    j.span,
                    &format!("join kind={other}"),
                    &format!("join kind={other} is not supported (inner, innerunique, leftouter, leftsemi, leftanti are)"),
                ));
            }
        };
        if j.where_clause.is_some() || j.on.is_empty() {
            return Err(self.refuse(j.span, "join where", "join needs `on` keys"));
        }
        let right = self.tabular(&j.right)?;
        let mut conds = Vec::new();
        let mut left_keys = Vec::new();
        for on in &j.on {
            let (l, r) = match on {
                Expr::Name(id) => (id.clone(), id.clone()),
                Expr::Binary {
                    op: BinaryOp::Eq,
                    left: a,
                    right: b,
                    ..
                } => match (side(a), side(b)) {
                    (Some(("$left", l)), Some(("$right", r))) => (l, r),
                    (Some(("$right", r)), Some(("$left", l))) => (l, r),
                    _ => {
                        return Err(self.refuse(
                            on.span(),
                            "join on",
                            "join keys are names or $left.A == $right.B",
                        ));
                    }
                },
                other => {
                    return Err(self.refuse(
                        other.span(),
                        "join on",
                        "join keys are names or $left.A == $right.B",
                    ));
                }
            };
            if left.col(&l.name).is_none() {
                return Err(self.unknown_column(&l.name, l.span, &left));
            }
            if right.col(&r.name).is_none() {
                return Err(self.unknown_column(&r.name, r.span, &right));
            }
            conds.push(format!("l.{} = r.{}", q(&l.name), q(&r.name)));
            left_keys.push(q(&l.name));
        }
        let left_sql = if dedup_left {
            // innerunique: one (arbitrary) left row per key.
            let mut items: Vec<String> = left.cols.iter().map(|(n, _)| q(n)).collect();
            items.push(format!(
                "ROW_NUMBER() OVER (PARTITION BY {}) AS \"__rn\"",
                left_keys.join(", ")
            ));
            let select = Self::select_list(&left, items);
            let numbered = self.wrap(&left, &select, "");
            let mut keep: Vec<String> = left.cols.iter().map(|(n, _)| q(n)).collect();
            keep.extend(left.hidden().into_iter().map(str::to_string));
            let alias = self.next_alias();
            format!(
                "SELECT {} FROM ({numbered}) AS {alias} WHERE \"__rn\" = 1",
                keep.join(", ")
            )
        } else {
            left.sql.clone()
        };
        let mut items: Vec<String> = left
            .cols
            .iter()
            .map(|(n, _)| format!("l.{}", q(n)))
            .collect();
        let mut cols = left.cols.clone();
        if keep_right {
            for (n, t) in &right.cols {
                let mut name = n.clone();
                if cols.iter().any(|c| c.0 == name) {
                    let mut i = 1;
                    while cols.iter().any(|c| c.0 == format!("{n}{i}")) {
                        i += 1;
                    }
                    name = format!("{n}{i}");
                }
                items.push(format!("r.{} AS {}", q(n), q(&name)));
                cols.push((name, *t));
            }
        }
        items.extend(left.hidden().into_iter().map(|h| format!("l.{h}")));
        let sql = format!(
            "SELECT {} FROM ({left_sql}) AS l {sql_kind} ({}) AS r ON {}",
            items.join(", "),
            right.sql,
            conds.join(" AND ")
        );
        Ok(Rel {
            sql,
            cols,
            time: left.time,
            window: left.window,
            order: None,
            table: left.table,
        })
    }
}

use super::Refusal;

/// `$left.A` → ("$left", A).
fn side(e: &Expr) -> Option<(&str, Ident)> {
    match e {
        Expr::Member { target, name, .. } => match target.as_ref() {
            Expr::Name(id) if id.name == "$left" || id.name == "$right" => Some((
                if id.name == "$left" {
                    "$left"
                } else {
                    "$right"
                },
                name.clone(),
            )),
            _ => None,
        },
        _ => None,
    }
}
