//! KQL → SQL: a parsed query becomes one SELECT that DataFusion plans over the table views of
//! [`super::tables`], with KQL's semantics rather than SQL look-alikes.
//!
//! Each tabular operator wraps the relation so far in a sub-select (`SELECT … FROM (<before>) AS tN …`);
//! the translator tracks the columns (name and type) of every step, so `project-away`, `*`, name clashes
//! in joins and unknown columns are settled here, with the KQL position, before DataFusion sees the SQL.
//! Anything not supported is refused with the operator or function and its line:column: a query is never
//! run half-translated. This file holds the query as a whole (statements, the relation and binding
//! types); by role beside it: `translate_lets.rs` (`let` statements, user-defined functions),
//! `translate_tabular.rs` (sources and the row operators), `translate_ops.rs` (`summarize`, `join`),
//! `translate_expr.rs` (scalar expressions), `translate_funcs.rs` (functions and aggregates),
//! `translate_dynamic.rs` (dynamic values, `mv-expand`).
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
use super::tables::Tables;
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

impl Translation {
    /// The window `summarize … by bin(<time column>, X)` asks for, as a hunt header says it
    /// (`tumbling 5m`).
    pub fn bin_window_spec(&self) -> Option<String> {
        self.bin_window.map(|ns| {
            let size = std::time::Duration::from_nanos(ns as u64);
            format!("tumbling {}", humantime::format_duration(size))
        })
    }
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

    /// The reason with its column, for a message that names the file and line itself.
    pub fn reason_at_column(&self) -> String {
        match self {
            TranslateError::Parse(p) => format!(
                "KQL syntax (column {}): expected {}, found {}",
                p.column, p.expected, p.found
            ),
            TranslateError::Refused(r) => format!("KQL (column {}): {}", r.column, r.message),
        }
    }
}

/// What the translation may assume about how the hunt runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The hunt's tumbling window size (ns), if its header gives one: `bin(Timestamp, <that size>)`
    /// then reads `window_start`.
    pub window: Option<i64>,
    /// An ad-hoc query over stored events (`ghosthunt query --kql`), not a continuous hunt: no window
    /// is evaluated, so `summarize … by bin(Timestamp, X)` bins each row's own time.
    pub ad_hoc: bool,
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
        window: match options.ad_hoc {
            true => None,
            false => options.window.or(bin_window),
        },
        stateful: false,
        used_tables: Vec::new(),
        depth: 0,
        ad_hoc: options.ad_hoc,
        in_summarize: false,
        nested_aggregates: 0,
        nested_name: String::new(),
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
    /// An ad-hoc query (see [`Options::ad_hoc`]): its result has the columns it projects, and no
    /// `event_time` for alerts to take their time from.
    pub ad_hoc: bool,
    /// Translating a `summarize` aggregation: an aggregate call may sit inside a scalar function
    /// (`tostring(make_set(x))`, `iff(countif(p) > 0, …)`).
    pub in_summarize: bool,
    /// Aggregate calls found inside scalar functions so far (see `in_summarize`), and the default name
    /// of the last one: KQL names `tostring(make_set(x))` as it names `make_set(x)`, `set_x`.
    pub nested_aggregates: usize,
    pub nested_name: String,
}

/// A SQL identifier for a KQL name.
pub(super) fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
}

#[path = "translate_ops.rs"]
mod ops;

#[path = "translate_lets.rs"]
mod lets;

#[path = "translate_tabular.rs"]
mod tabular;

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
