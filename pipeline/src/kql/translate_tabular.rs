//! The tabular side of the translation: a source (a table view, a let-bound table, a function call, a
//! union) and the operators of its pipe, each wrapping the relation so far in a sub-select and tracking
//! its columns; the final SELECT of a query. The stateful operators (`summarize`, `join`) are in
//! `translate_ops.rs`, `mv-expand` with the dynamic values in `translate_dynamic.rs`.

use super::expr::{self, Ty};
use super::{Binding, Rel, Translator, lets, q};
use crate::kql::Refusal;
use crate::kql::ast::*;
use crate::kql::tables::ColumnType;

fn ty_of(c: ColumnType) -> Ty {
    match c {
        ColumnType::String => Ty::Str,
        ColumnType::Long => Ty::Long,
        ColumnType::Real => Ty::Real,
        ColumnType::Bool => Ty::Bool,
        ColumnType::Datetime => Ty::Time,
        ColumnType::Timespan => Ty::Span,
        ColumnType::Dynamic => Ty::List,
    }
}

/// Whether a name matches a `project-away` pattern (`*` any run of characters).
fn matches_pattern(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

impl Translator<'_> {
    /// A source and its operators.
    pub(super) fn tabular(&mut self, t: &TabularExpr) -> Result<Rel, Refusal> {
        let mut rel = self.source(&t.source)?;
        for op in &t.operators {
            rel = self.operator(op, rel)?;
        }
        Ok(rel)
    }

    pub(super) fn source(&mut self, s: &Source) -> Result<Rel, Refusal> {
        match s {
            Source::Name(id) => {
                match self.lets.get(&id.name) {
                    Some(Binding::Table(rel)) => return Ok(rel.clone()),
                    Some(Binding::Function(..)) => {
                        return self.call_table(&FunctionCall::bare(id), None);
                    }
                    _ => {}
                }
                let Some(table) = self.tables.get(&id.name) else {
                    return Err(self.refuse(
                        id.span,
                        &format!("table {}", id.name),
                        &format!(
                            "unknown table `{}` (tables: {})",
                            id.name,
                            self.tables
                                .tables
                                .iter()
                                .map(|t| t.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                if !self.used_tables.contains(&table.name) {
                    self.used_tables.push(table.name.clone());
                }
                Ok(Rel {
                    sql: format!("SELECT * FROM {}", table.view_name()),
                    cols: table
                        .columns
                        .iter()
                        .map(|c| (c.name.clone(), ty_of(c.ty)))
                        .collect(),
                    time: true,
                    // An ad-hoc query evaluates no window: grouping by its (NULL) bounds would
                    // give a summarize without `by` no row on no input, where KQL gives one.
                    window: !self.ad_hoc,
                    order: None,
                    table: Some(table.name.clone()),
                })
            }
            Source::Paren(inner) => self.tabular(inner),
            Source::Materialize { inner, .. } => self.tabular(inner),
            Source::Union(u) => self.union(None, u),
            Source::Call(c)
                if c.target.is_none()
                    && matches!(self.lets.get(&c.name.name), Some(Binding::Function(..))) =>
            {
                self.call_table(c, None)
            }
            Source::Call(c) => Err(self.refuse(
                c.span,
                &format!("function {}", c.name.name),
                &format!("`{}(…)` as a table is not supported", c.name.name),
            )),
            other => {
                let kind = match other {
                    Source::Datatable(_) => "datatable",
                    Source::ExternalData(_) => "externaldata",
                    Source::Range(_) => "range",
                    Source::Print { .. } => "print",
                    Source::Evaluate(_) => "evaluate",
                    Source::Path(_) => "cluster/database path",
                    _ => "find/search",
                };
                Err(self.refuse(
                    other.span(),
                    &format!("source {kind}"),
                    &format!("`{kind}` as a source is not supported in hunts"),
                ))
            }
        }
    }

    pub(super) fn operator(&mut self, op: &Operator, rel: Rel) -> Result<Rel, Refusal> {
        match op {
            Operator::Where { predicate, .. } => {
                let p = self.expr(predicate, &rel)?;
                let sql = self.wrap(&rel, "*", &format!("WHERE {}", p.where_sql()));
                Ok(Rel { sql, ..rel })
            }
            Operator::Extend { columns, .. } => {
                let mut rel = rel;
                for c in columns {
                    let name = self.output_name(c, &rel)?;
                    let value = self.expr(&c.expr, &rel)?;
                    rel = self.with_column(rel, &name, value);
                }
                Ok(rel)
            }
            Operator::Project { columns, .. } => {
                let mut items = Vec::new();
                let mut cols: Vec<(String, Ty)> = Vec::new();
                for c in columns {
                    let name = self.output_name(c, &rel)?;
                    let value = self.expr(&c.expr, &rel)?;
                    items.push(format!("{} AS {}", value.text, q(&name)));
                    cols.retain(|x| x.0 != name);
                    cols.push((name, value.ty));
                }
                Ok(self.reselect(rel, items, cols))
            }
            Operator::ProjectAway { columns, .. } | Operator::ProjectKeep { columns, .. } => {
                let keep = matches!(op, Operator::ProjectKeep { .. });
                for p in columns {
                    if !p.has_wildcard() && rel.col(&p.text).is_none() {
                        return Err(self.unknown_column(&p.text, p.span, &rel));
                    }
                }
                let cols: Vec<(String, Ty)> = rel
                    .cols
                    .iter()
                    .filter(|(n, _)| columns.iter().any(|p| matches_pattern(&p.text, n)) == keep)
                    .cloned()
                    .collect();
                let items = cols.iter().map(|(n, _)| q(n)).collect();
                Ok(self.reselect(rel, items, cols))
            }
            Operator::ProjectRename { renames, .. } => {
                let mut cols = rel.cols.clone();
                for r in renames {
                    let Some(c) = cols.iter_mut().find(|c| c.0 == r.old_name.name) else {
                        return Err(self.unknown_column(&r.old_name.name, r.old_name.span, &rel));
                    };
                    c.0 = r.new_name.name.clone();
                }
                let items = rel
                    .cols
                    .iter()
                    .zip(&cols)
                    .map(|(old, new)| format!("{} AS {}", q(&old.0), q(&new.0)))
                    .collect();
                let mut out = self.reselect(rel, items, cols);
                out.order = None;
                Ok(out)
            }
            Operator::ProjectReorder { columns, .. } => {
                let mut first: Vec<(String, Ty)> = Vec::new();
                for p in columns {
                    let matched: Vec<_> = rel
                        .cols
                        .iter()
                        .filter(|(n, _)| matches_pattern(&p.column.text, n))
                        .filter(|c| !first.contains(c))
                        .cloned()
                        .collect();
                    if matched.is_empty() && !p.column.has_wildcard() {
                        return Err(self.unknown_column(&p.column.text, p.column.span, &rel));
                    }
                    first.extend(matched);
                }
                let mut cols = first;
                for c in &rel.cols {
                    if !cols.contains(c) {
                        cols.push(c.clone());
                    }
                }
                let items = cols.iter().map(|(n, _)| q(n)).collect();
                Ok(self.reselect(rel, items, cols))
            }
            Operator::Summarize(s) => self.summarize(s, rel),
            Operator::Distinct {
                columns,
                star,
                span,
                ..
            } => {
                self.stateful = true;
                let mut items = Vec::new();
                let mut cols = Vec::new();
                if *star {
                    for (n, t) in &rel.cols {
                        items.push(q(n));
                        cols.push((n.clone(), *t));
                    }
                } else {
                    for c in columns {
                        let Expr::Name(id) = c else {
                            return Err(self.refuse(
                                *span,
                                "operator distinct",
                                "distinct takes column names",
                            ));
                        };
                        let value = self.expr(c, &rel)?;
                        items.push(format!("{} AS {}", value.text, q(&id.name)));
                        cols.push((id.name.clone(), value.ty));
                    }
                }
                let mut group = items.clone();
                if rel.window {
                    group.extend(["window_start".to_string(), "window_end".to_string()]);
                }
                let select = group.join(", ");
                let sql = self.wrap(&rel, &format!("DISTINCT {select}"), "");
                Ok(Rel {
                    sql,
                    cols,
                    time: false,
                    window: rel.window,
                    order: None,
                    table: rel.table,
                })
            }
            Operator::Count { as_name, .. } => {
                self.stateful = true;
                let name = as_name
                    .as_ref()
                    .map_or("Count".to_string(), |n| n.name.clone());
                let (select, tail) = if rel.window {
                    (
                        format!("count(*) AS {}, window_start, window_end", q(&name)),
                        "GROUP BY window_start, window_end".to_string(),
                    )
                } else {
                    (format!("count(*) AS {}", q(&name)), String::new())
                };
                let sql = self.wrap(&rel, &select, &tail);
                Ok(Rel {
                    sql,
                    cols: vec![(name, Ty::Long)],
                    time: false,
                    window: rel.window,
                    order: None,
                    table: None,
                })
            }
            Operator::Sort { keys, .. } => {
                let (clause, names) = self.order_by(keys, &rel, false)?;
                Ok(Rel {
                    order: Some((clause, names)),
                    ..rel
                })
            }
            Operator::Top { count, by, .. } => {
                self.stateful = true;
                let n = self.limit_count(count, &rel)?;
                let (clause, _) = self.order_by(std::slice::from_ref(by), &rel, true)?;
                let sql = self.wrap(&rel, "*", &format!("ORDER BY {clause} LIMIT {n}"));
                Ok(Rel {
                    sql,
                    order: None,
                    ..rel
                })
            }
            Operator::Take { count, .. } => {
                // The first rows of what is evaluated at once: a hunt needs a window for it.
                self.stateful = true;
                let n = self.limit_count(count, &rel)?;
                let order = rel
                    .order
                    .as_ref()
                    .map(|(c, _)| format!("ORDER BY {c} "))
                    .unwrap_or_default();
                let sql = self.wrap(&rel, "*", &format!("{order}LIMIT {n}"));
                Ok(Rel { sql, ..rel })
            }
            Operator::Union(u) => self.union(Some(rel), u),
            Operator::Join(j) => self.join(j, rel),
            Operator::Invoke { call, span } => match call {
                Expr::Call(c)
                    if c.target.is_none()
                        && matches!(self.lets.get(&c.name.name), Some(Binding::Function(..))) =>
                {
                    self.call_table(c, Some(rel))
                }
                _ => Err(self.refuse(
                    *span,
                    "operator invoke",
                    "invoke calls a function defined with `let f = (T:(*), …) { … }`",
                )),
            },
            Operator::MvExpand(m) => self.mv_expand(m, rel),
            Operator::Render(_) => Ok(rel),
            Operator::Serialize { columns, .. } if columns.is_empty() => Ok(rel),
            other => Err(self.unsupported_op(other)),
        }
    }

    /// A call of a user-defined function where a table is wanted.
    pub(super) fn call_table(
        &mut self,
        c: &FunctionCall,
        piped: Option<Rel>,
    ) -> Result<Rel, Refusal> {
        match self.call_function(c, piped, None)? {
            lets::Called::Table(rel) => Ok(rel),
            lets::Called::Scalar(_) => unreachable!("asked for a table"),
        }
    }

    /// A new projection of `rel` with `items` as its visible columns, keeping hidden columns and a
    /// pending order if its columns survive.
    pub(super) fn reselect(
        &mut self,
        rel: Rel,
        items: Vec<String>,
        cols: Vec<(String, Ty)>,
    ) -> Rel {
        let select = Self::select_list(&rel, items);
        let sql = self.wrap(&rel, &select, "");
        let order = rel
            .order
            .clone()
            .filter(|(_, names)| names.iter().all(|n| cols.iter().any(|c| &c.0 == n)));
        Rel {
            sql,
            cols,
            order,
            ..rel
        }
    }

    /// `rel` with `name` set to `value` (replaced in place, or appended).
    pub(super) fn with_column(&mut self, rel: Rel, name: &str, value: expr::Sql) -> Rel {
        let mut cols = rel.cols.clone();
        let mut items = Vec::new();
        let mut replaced = false;
        for c in cols.iter_mut() {
            if c.0 == name {
                items.push(format!("{} AS {}", value.text, q(name)));
                c.1 = value.ty;
                replaced = true;
            } else {
                items.push(q(&c.0));
            }
        }
        if !replaced {
            items.push(format!("{} AS {}", value.text, q(name)));
            cols.push((name.to_string(), value.ty));
        }
        let order = rel
            .order
            .clone()
            .filter(|(_, n)| !n.iter().any(|n| n == name));
        let mut out = self.reselect(rel, items, cols);
        out.order = order;
        out
    }

    /// The column name of `Name = expr` or of a bare column; other unnamed expressions get KQL's
    /// `Column1`, `Column2`, … names.
    pub(super) fn output_name(&self, c: &NamedExpr, rel: &Rel) -> Result<String, Refusal> {
        if let Some(n) = c.name() {
            return Ok(n.name.clone());
        }
        if c.names.len() > 1 {
            return Err(self.refuse(
                c.span,
                "multiple names",
                "`(A, B) = …` assignments are not supported",
            ));
        }
        match &c.expr {
            Expr::Name(id) => Ok(id.name.clone()),
            _ => {
                let mut i = 1;
                while rel.col(&format!("Column{i}")).is_some() {
                    i += 1;
                }
                Ok(format!("Column{i}"))
            }
        }
    }

    pub(super) fn limit_count(&mut self, count: &Expr, rel: &Rel) -> Result<i64, Refusal> {
        let v = self.expr(count, rel)?;
        v.text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| self.refuse(count.span(), "limit", "the row count must be a number"))
    }

    /// `ORDER BY` text for sort keys (KQL default: descending; nulls last when descending, first when
    /// ascending) and the plain column names it reads.
    pub(super) fn order_by(
        &mut self,
        keys: &[SortKey],
        rel: &Rel,
        _top: bool,
    ) -> Result<(String, Vec<String>), Refusal> {
        let mut parts = Vec::new();
        let mut names = Vec::new();
        for k in keys {
            let v = self.expr(&k.expr, rel)?;
            if let Expr::Name(id) = &k.expr {
                names.push(id.name.clone());
            } else {
                names.push(String::from("\u{0}not a column"));
            }
            let desc = k.order != Some(SortOrder::Asc);
            let nulls_first = match k.nulls {
                Some(NullsOrder::First) => true,
                Some(NullsOrder::Last) => false,
                None => !desc,
            };
            parts.push(format!(
                "{} {} NULLS {}",
                v.text,
                if desc { "DESC" } else { "ASC" },
                if nulls_first { "FIRST" } else { "LAST" }
            ));
        }
        Ok((parts.join(", "), names))
    }

    /// `union` (outer: columns by name, missing ones NULL).
    pub(super) fn union(&mut self, first: Option<Rel>, u: &UnionOp) -> Result<Rel, Refusal> {
        if let Some(p) = u
            .params
            .iter()
            .find(|p| p.name != "kind" && p.name != "isfuzzy")
        {
            return Err(self.refuse(
                p.span,
                &format!("union {}", p.name),
                &format!("union parameter `{}` is not supported", p.name),
            ));
        }
        if let Some(p) = find_param(&u.params, "kind")
            && p.value_text() == Some("inner")
        {
            return Err(self.refuse(
                p.span,
                "union kind=inner",
                "union kind=inner is not supported",
            ));
        }
        let mut rels: Vec<Rel> = first.into_iter().collect();
        for t in &u.tables {
            match t {
                UnionTable::Tabular(t) => rels.push(self.tabular(t)?),
                UnionTable::Wildcard(p) => {
                    let names: Vec<String> = self
                        .tables
                        .tables
                        .iter()
                        .filter(|t| matches_pattern(&p.text, &t.name))
                        .map(|t| t.name.clone())
                        .collect();
                    if names.is_empty() {
                        return Err(self.refuse(
                            p.span,
                            &format!("table {}", p.text),
                            &format!("no table matches `{}`", p.text),
                        ));
                    }
                    for n in names {
                        rels.push(self.source(&Source::Name(Ident {
                            name: n,
                            span: p.span,
                        }))?);
                    }
                }
            }
        }
        let mut cols: Vec<(String, Ty)> = Vec::new();
        for r in &rels {
            for c in &r.cols {
                match cols.iter_mut().find(|x| x.0 == c.0) {
                    Some(x) if x.1 != c.1 => x.1 = Ty::Unknown,
                    Some(_) => {}
                    None => cols.push(c.clone()),
                }
            }
        }
        let time = rels.iter().all(|r| r.time);
        let window = rels.iter().all(|r| r.window);
        let mut parts = Vec::new();
        for r in &rels {
            let mut items: Vec<String> = cols
                .iter()
                .map(|(n, t)| match r.col(n) {
                    Some(_) => q(n),
                    None => format!("{} AS {}", expr::typed_null(*t), q(n)),
                })
                .collect();
            if time {
                items.push("event_time".into());
            }
            if window {
                items.extend(["window_start".into(), "window_end".into()]);
            }
            let alias = self.next_alias();
            parts.push(format!(
                "SELECT {} FROM ({}) AS {alias}",
                items.join(", "),
                r.sql
            ));
        }
        Ok(Rel {
            sql: parts.join(" UNION ALL "),
            cols,
            time,
            window,
            order: None,
            table: None,
        })
    }

    /// The final SELECT: the KQL columns (dynamic ones as KQL shows them: a string without its quotes),
    /// `event_time` when rows are events, the pending order.
    pub(super) fn finish(&mut self, rel: &Rel) -> String {
        let mut items: Vec<String> = rel
            .cols
            .iter()
            .map(|(n, t)| match t {
                Ty::Dyn => format!("{}({}) AS {}", crate::kql::KQL_JSON_STR, q(n), q(n)),
                _ => q(n),
            })
            .collect();
        if rel.time && !self.ad_hoc && rel.col("event_time").is_none() {
            items.push("event_time".into());
        }
        if items.is_empty() {
            items.push("1 AS \"__empty\"".into());
        }
        let order = rel
            .order
            .as_ref()
            .map(|(c, _)| format!("ORDER BY {c}"))
            .unwrap_or_default();
        self.wrap(rel, &items.join(", "), &order)
    }
}
