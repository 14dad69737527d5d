//! KQL → SQL: a parsed query becomes one SELECT that DataFusion plans over the table views of
//! [`super::tables`], with KQL's semantics rather than SQL look-alikes.
//!
//! Each tabular operator wraps the relation so far in a sub-select (`SELECT … FROM (<before>) AS tN …`);
//! the translator tracks the columns (name and type) of every step, so `project-away`, `*`, name clashes
//! in joins and unknown columns are settled here, with the KQL position, before DataFusion sees the SQL.
//! Anything not supported is refused with the operator or function and its line:column: a query is never
//! run half-translated. Scalar expressions are in `translate_expr.rs`, functions and aggregates in
//! `translate_funcs.rs`.
//!
//! Time: `ago(d)` and `now()` are relative to event time, never the wall clock: `now()` is
//! `coalesce(window_end, event_time)` — the end of the window being evaluated, or, in an unwindowed hunt,
//! the row's own event time — so that a replay yields the same alerts (design invariant 8). Every relation
//! therefore carries `event_time`, `window_start` and `window_end` beside its KQL columns (hidden from
//! `*`, `project-away`, …); the result keeps `event_time` where rows are events (alerts take their time
//! from it). `summarize … by bin(Timestamp, X)` makes the hunt a tumbling window of X whose bin key is
//! `window_start`; aggregations group by the window too. `sort`/`order by` and `top` order the rows of
//! one evaluation (a batch, or a window), which is all a continuous hunt can mean by them.

use std::collections::HashMap;
use std::rc::Rc;

use super::ast::*;
use super::error::{ParseError, line_col};
use super::tables::{ColumnType, Tables};
#[path = "translate_expr.rs"]
mod expr;

pub(super) use expr::Ty;

/// A translated query.
#[derive(Debug, Clone)]
pub struct Translation {
    /// One SELECT over the table views.
    pub sql: String,
    /// The tumbling window `summarize … by bin(<time column>, X)` asks for (X in ns).
    pub bin_window: Option<i64>,
    /// Whether the query aggregates (summarize, count, distinct, top, join …): it needs a window to
    /// run continuously.
    pub stateful: bool,
    /// Tables the query reads.
    pub tables: Vec<String>,
}

/// Why a query is not translated: the construct, its position, and a sentence.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}:{column}: {message}")]
pub struct Refusal {
    pub line: usize,
    pub column: usize,
    /// Byte offset into the query text.
    pub offset: usize,
    /// A short category for counting (`operator mv-expand`, `function parse_json`, `table X`, …).
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TranslateError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Refused(#[from] Refusal),
}

impl TranslateError {
    /// The category for counting refusals.
    pub fn kind(&self) -> String {
        match self {
            TranslateError::Parse(_) => "syntax".into(),
            TranslateError::Refused(r) => r.kind.clone(),
        }
    }
    pub fn line(&self) -> usize {
        match self {
            TranslateError::Parse(p) => p.line,
            TranslateError::Refused(r) => r.line,
        }
    }
}

/// What the translation may assume about how the hunt runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The hunt's tumbling window size (ns), if its header gives one: `bin(Timestamp, <that size>)`
    /// then reads `window_start`.
    pub window: Option<i64>,
}

/// Translates a KQL query to SQL over the built-in tables.
pub fn translate(text: &str, options: Options) -> Result<Translation, TranslateError> {
    translate_with(text, options, Tables::builtin())
}

pub fn translate_with(
    text: &str,
    options: Options,
    tables: &Tables,
) -> Result<Translation, TranslateError> {
    let query = super::parse(text)?;
    translate_query(text, &query, options, tables)
}

/// An editor document (several queries separated by blank lines, as the Defender and Sentinel editors
/// allow; see [`super::parse_document`]): each query with the `let` statements before it, translated on its
/// own. The outer error is a syntax error of the document.
pub fn translate_document(
    text: &str,
) -> Result<Vec<Result<Translation, TranslateError>>, ParseError> {
    let document = super::parse_document(text)?;
    let mut lets = Vec::new();
    let mut out = Vec::new();
    for statement in &document.statements {
        match statement {
            Statement::Query(q) => {
                let mut statements = std::mem::take(&mut lets);
                statements.push(statement.clone());
                let query = Query {
                    statements,
                    span: q.span,
                };
                out.push(translate_query(
                    text,
                    &query,
                    Options::default(),
                    Tables::builtin(),
                ));
            }
            other => lets.push(other.clone()),
        }
    }
    if out.is_empty() {
        // No query at all: refused as a hunt would be.
        out.push(translate_query(
            text,
            &document,
            Options::default(),
            Tables::builtin(),
        ));
    }
    Ok(out)
}

fn translate_query(
    text: &str,
    query: &Query,
    options: Options,
    tables: &Tables,
) -> Result<Translation, TranslateError> {
    let bin_window = find_bin(query);
    let mut t = Translator {
        text,
        tables,
        lets: HashMap::new(),
        alias: 0,
        window: options.window.or(bin_window),
        stateful: false,
        used_tables: Vec::new(),
        depth: 0,
    };
    let mut result = None;
    for statement in &query.statements {
        match statement {
            Statement::Let(l) => t.bind(l)?,
            Statement::Set { .. } => {}
            Statement::Query(q) => {
                if result.is_some() {
                    return Err(t
                        .refuse(
                            q.span,
                            "statement",
                            "a hunt is one query; this is a second one",
                        )
                        .into());
                }
                result = Some(t.tabular(q)?);
            }
        }
    }
    let Some(rel) = result else {
        return Err(t
            .refuse(query.span, "statement", "no query after the let statements")
            .into());
    };
    Ok(Translation {
        sql: t.finish(&rel),
        bin_window,
        stateful: t.stateful,
        tables: t.used_tables,
    })
}

/// The first `bin(<column>, <timespan>)` in a `summarize … by`; the timespan is a literal or a name a
/// top-level `let` binds to one.
fn find_bin(query: &Query) -> Option<i64> {
    let spans: HashMap<&str, i64> = query
        .statements
        .iter()
        .filter_map(|s| match s {
            Statement::Let(LetStatement {
                name,
                value:
                    LetValue::Expr(Expr::Literal {
                        value: Literal::Timespan(Some(ns)),
                        ..
                    }),
                ..
            }) => Some((name.name.as_str(), *ns)),
            _ => None,
        })
        .collect();
    let in_tabular = |t: &TabularExpr| -> Option<i64> {
        fn walk(t: &TabularExpr, spans: &HashMap<&str, i64>) -> Option<i64> {
            for op in &t.operators {
                match op {
                    Operator::Summarize(s) => {
                        for by in &s.by {
                            if let Expr::Call(c) = &by.expr
                                && c.name.name == "bin"
                                && let [_, span] = c.args.as_slice()
                            {
                                match span {
                                    Expr::Literal {
                                        value: Literal::Timespan(Some(ns)),
                                        ..
                                    } => return Some(*ns),
                                    Expr::Name(id) if spans.contains_key(id.name.as_str()) => {
                                        return spans.get(id.name.as_str()).copied();
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                    Operator::Join(j) => {
                        if let Some(b) = walk(&j.right, spans) {
                            return Some(b);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        walk(t, &spans)
    };
    query.statements.iter().find_map(|s| match s {
        Statement::Query(q) => in_tabular(q),
        Statement::Let(LetStatement {
            value: LetValue::Tabular(q),
            ..
        }) => in_tabular(q),
        _ => None,
    })
}

/// A relation: its SQL (a SELECT usable as a sub-query) and its KQL columns.
#[derive(Debug, Clone)]
pub(super) struct Rel {
    pub sql: String,
    pub cols: Vec<(String, Ty)>,
    /// `event_time` is carried (rows are events).
    pub time: bool,
    /// `window_start` / `window_end` are carried.
    pub window: bool,
    /// A pending `ORDER BY …` over visible columns, applied by `take` or at the end.
    pub order: Option<(String, Vec<String>)>,
    /// The table the rows come from (for columns it cannot supply).
    pub table: Option<String>,
}

impl Rel {
    pub fn col(&self, name: &str) -> Option<Ty> {
        self.cols.iter().find(|c| c.0 == name).map(|c| c.1)
    }
    fn hidden(&self) -> Vec<&'static str> {
        let mut h = Vec::new();
        if self.time {
            h.push("event_time");
        }
        if self.window {
            h.extend(["window_start", "window_end"]);
        }
        h
    }
}

/// What a `let` name stands for.
#[derive(Debug, Clone)]
pub(super) enum Binding {
    Scalar(expr::Sql),
    Expr(Expr),
    List(Vec<expr::Sql>),
    Table(Rel),
    /// A user-defined function and the names visible where it was defined.
    Function(Rc<FunctionDef>, Rc<lets::Scope>),
    /// A function's scalar parameter: the argument as written and the names visible at the call.
    Arg(Rc<Expr>, Rc<lets::Scope>),
}

pub(super) struct Translator<'a> {
    pub text: &'a str,
    tables: &'a Tables,
    pub lets: HashMap<String, Binding>,
    alias: usize,
    pub window: Option<i64>,
    stateful: bool,
    used_tables: Vec<String>,
    /// How deeply user-defined function calls nest here.
    depth: usize,
}

/// A SQL identifier for a KQL name.
pub(super) fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

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

impl<'a> Translator<'a> {
    pub fn refuse(&self, span: Span, kind: &str, message: &str) -> Refusal {
        let (line, column) = line_col(self.text, span.start);
        Refusal {
            line,
            column,
            offset: span.start,
            kind: kind.to_string(),
            message: message.to_string(),
        }
    }

    fn unsupported_op(&self, op: &Operator) -> Refusal {
        let name = op.name().to_string();
        let span = match op {
            Operator::Other(o) => o.name_span,
            _ => op.span(),
        };
        self.refuse(
            span,
            &format!("operator {name}"),
            &format!("operator `{name}` is not supported in hunts"),
        )
    }

    fn next_alias(&mut self) -> String {
        self.alias += 1;
        format!("t{}", self.alias)
    }

    /// `SELECT <select> FROM (<rel>) AS tN <tail>`.
    fn wrap(&mut self, rel: &Rel, select: &str, tail: &str) -> String {
        let alias = self.next_alias();
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!(" {tail}")
        };
        format!("SELECT {select} FROM ({}) AS {alias}{tail}", rel.sql)
    }

    /// The select list of `names` plus the carried hidden columns.
    fn select_list(rel: &Rel, items: Vec<String>) -> String {
        let mut items = items;
        items.extend(rel.hidden().into_iter().map(str::to_string));
        if items.is_empty() {
            "1 AS \"__empty\"".into()
        } else {
            items.join(", ")
        }
    }

    /// A source and its operators.
    pub fn tabular(&mut self, t: &TabularExpr) -> Result<Rel, Refusal> {
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
                        let call = FunctionCall {
                            target: None,
                            name: id.clone(),
                            args: Vec::new(),
                            span: id.span,
                        };
                        return self.call_table(&call, None);
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
                    window: true,
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

    fn operator(&mut self, op: &Operator, rel: Rel) -> Result<Rel, Refusal> {
        match op {
            Operator::Where { predicate, .. } => {
                let p = self.expr(predicate, &rel)?;
                let sql = self.wrap(&rel, "*", &format!("WHERE {}", p.bool_sql()));
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
    fn call_table(&mut self, c: &FunctionCall, piped: Option<Rel>) -> Result<Rel, Refusal> {
        match self.call_function(c, piped, None)? {
            lets::Called::Table(rel) => Ok(rel),
            lets::Called::Scalar(_) => unreachable!("asked for a table"),
        }
    }

    /// A new projection of `rel` with `items` as its visible columns, keeping hidden columns and a
    /// pending order if its columns survive.
    fn reselect(&mut self, rel: Rel, items: Vec<String>, cols: Vec<(String, Ty)>) -> Rel {
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
    fn with_column(&mut self, rel: Rel, name: &str, value: expr::Sql) -> Rel {
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
    fn output_name(&self, c: &NamedExpr, rel: &Rel) -> Result<String, Refusal> {
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

    pub fn unknown_column(&self, name: &str, span: Span, rel: &Rel) -> Refusal {
        if let Some(table) = rel.table.as_deref().and_then(|t| self.tables.get(t))
            && let Some(reason) = table.unavailable.get(name)
        {
            return self.refuse(
                span,
                &format!("column {name} unavailable"),
                &format!("`{}.{name}` is not available: {reason}", table.name),
            );
        }
        self.refuse(
            span,
            "unknown column",
            &format!(
                "unknown column `{name}` (columns here: {})",
                rel.cols
                    .iter()
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }

    fn limit_count(&mut self, count: &Expr, rel: &Rel) -> Result<i64, Refusal> {
        let v = self.expr(count, rel)?;
        v.text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| self.refuse(count.span(), "limit", "the row count must be a number"))
    }

    /// `ORDER BY` text for sort keys (KQL default: descending; nulls last when descending, first when
    /// ascending) and the plain column names it reads.
    fn order_by(
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
    fn union(&mut self, first: Option<Rel>, u: &UnionOp) -> Result<Rel, Refusal> {
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
    fn finish(&mut self, rel: &Rel) -> String {
        let mut items: Vec<String> = rel
            .cols
            .iter()
            .map(|(n, t)| match t {
                Ty::Dyn => format!("{}({}) AS {}", super::KQL_JSON_STR, q(n), q(n)),
                _ => q(n),
            })
            .collect();
        if rel.time && rel.col("event_time").is_none() {
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

#[path = "translate_ops.rs"]
mod ops;

#[path = "translate_lets.rs"]
mod lets;

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
