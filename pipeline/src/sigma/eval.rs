//! Many Sigma rules over one Arrow batch, sharing the work.
//!
//! Compilation collects, per column, every literal the rules look for (equals, contains, starts with, ends
//! with; windash and base64 variants are literals too) into Aho-Corasick automata (`super::literals`; ASCII
//! case-insensitive, plus case-sensitive ones for `cased`). Evaluating a batch scans each column's values
//! with them and sets one bit per (literal, position kind) and row.
//!
//! A literal's bits are read only on the rows of the logsource conditions of the rules that test it, so
//! each column and case has up to two automata: one over the literals read on every row (those the
//! logsource conditions test, and those of rules without a condition), scanned first; then the
//! conditions are evaluated; then one over the column's other literals, scanned on the union of their
//! rules' conditions. A `Message` tested only by two `service: application` rules is not scanned in
//! Sysmon events. A group of a few long literals is also tested for with SIMD first
//! (`crate::presence::Presence`).
//!
//! Each rule is then a boolean expression over those bitmaps, evaluated on candidate rows only: its
//! logsource condition (shared by every rule of that logsource and computed once per batch) gives the first
//! candidates, `and` narrows them child by child, cheapest first, and the per-row tests (regular
//! expressions, globs, CIDR, numbers, field references) run only on the rows still in play. A rule whose
//! logsource has no row in the batch costs one check.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::query::udf::in_network;
use crate::sigma::error::{RefusalKind, RuleError};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use regex::{Regex, RegexBuilder};

use super::bits::Bits;
use super::ir::{Cmp, Expr, Pattern, Piece, Position, Test};
use super::literals::{Kind, Literals};

/// One rule to compile: OR over its variants of (`when` AND `detection`), over column names.
pub struct RuleInput<'a> {
    pub variants: Vec<(&'a Expr, &'a Expr)>,
}

#[derive(Debug)]
enum RowTest {
    /// Anchored regex built from a glob pattern, or a rule's `re`.
    Regex(Regex),
    Cidr(IpAddr, u8),
    Num(Cmp, f64),
    Null,
    Empty,
    FieldRef {
        other: usize,
        position: Position,
        cased: bool,
    },
}

#[derive(Debug)]
enum Node {
    True,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// Bit slot filled by the automaton scan.
    Slot(usize),
    /// The column has a value (any, including empty).
    NotNull(usize),
    /// A test evaluated row by row on candidates.
    Row(usize, RowTest),
}

impl Node {
    fn cost(&self) -> u32 {
        match self {
            Node::True | Node::Slot(_) | Node::NotNull(_) => 1,
            Node::Row(_, RowTest::Regex(_)) => 40,
            Node::Row(..) => 8,
            Node::Not(n) => n.cost(),
            Node::And(v) | Node::Or(v) => v.iter().map(Node::cost).sum(),
        }
    }
}

struct ColumnPlan {
    name: String,
    insensitive: Literals,
    sensitive: Literals,
}

/// Builds every column's literal automata, the columns shared out over up to `threads` threads as they
/// free up, those with the most literals first (the columns are independent; building them is most of
/// what compiling a large rule set costs).
fn build_automata(columns: &mut [ColumnPlan], threads: usize) {
    let mut plans: Vec<&mut ColumnPlan> = columns.iter_mut().collect();
    plans.sort_by_key(|p| std::cmp::Reverse(p.insensitive.len() + p.sensitive.len()));
    let threads = threads.max(1).min(plans.len());
    let queue = std::sync::Mutex::new(plans.into_iter());
    let work = || {
        loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            let Some(plan) = next else { break };
            plan.insensitive.build(&plan.name, true);
            plan.sensitive.build(&plan.name, false);
        }
    };
    // Each thread takes columns until none is left; one that cannot be started leaves its share to the
    // others.
    crate::parallel::in_order(vec![(); threads], "sigma-build", |()| work());
}

/// The rows each rule matches: (rule index, rows ascending), rules without matches left out.
pub type Matches = Vec<(usize, Vec<u32>)>;

/// Fewer rows than this per thread are not worth starting a thread for (a low-rate batch of a few rows is
/// evaluated on the calling thread).
const MIN_ROWS_PER_PART: usize = 512;

/// A compiled rule set, ready to evaluate batches.
pub struct RuleSet {
    columns: Vec<ColumnPlan>,
    slot_count: usize,
    /// Distinct logsource conditions.
    whens: Vec<Node>,
    /// Per rule: (when index, detection) per variant.
    rules: Vec<Vec<(usize, Node)>>,
    /// Threads a batch's rows are split over (see [`RuleSet::evaluate`]).
    threads: usize,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .field("columns", &self.columns.len())
            .field("slots", &self.slot_count)
            .finish()
    }
}

/// Compiles a test's glob pattern into an anchored regex.
fn glob_regex(pattern: &Pattern, cased: bool) -> Result<Regex, RuleError> {
    let mut re = String::from("^");
    for piece in &pattern.0 {
        match piece {
            Piece::Lit(s) => re.push_str(&regex::escape(s)),
            Piece::AnyMany => re.push_str(".*"),
            Piece::AnyOne => re.push('.'),
        }
    }
    re.push('$');
    RegexBuilder::new(&re)
        .case_insensitive(!cased)
        .dot_matches_new_line(true)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| RefusalKind::Value.error(format!("glob {pattern:?}: {e}")))
}

struct Compiler {
    columns: Vec<ColumnPlan>,
    column_index: HashMap<String, usize>,
    slot_count: usize,
    whens: Vec<Node>,
    when_index: HashMap<String, usize>,
    /// The logsource condition of the detection being compiled; `None` while compiling a condition or a
    /// detection without one (its literals are read on every row).
    under: Option<usize>,
}

impl Compiler {
    fn column(&mut self, name: &str) -> usize {
        if let Some(&i) = self.column_index.get(name) {
            return i;
        }
        self.columns.push(ColumnPlan {
            name: name.to_string(),
            insensitive: Literals::default(),
            sensitive: Literals::default(),
        });
        self.column_index
            .insert(name.to_string(), self.columns.len() - 1);
        self.columns.len() - 1
    }

    fn literal(&mut self, column: usize, text: &str, kind: Kind, cased: bool) -> Node {
        let plan = &mut self.columns[column];
        let lits = if cased {
            &mut plan.sensitive
        } else {
            &mut plan.insensitive
        };
        let key = if cased {
            text.to_string()
        } else {
            text.to_ascii_lowercase()
        };
        Node::Slot(lits.add(key, kind, self.under, &mut self.slot_count))
    }

    fn test(&mut self, field: &str, test: &Test) -> Result<Node, RuleError> {
        let col = self.column(field);
        Ok(match test {
            Test::Str { pattern, cased } => {
                use Piece::{AnyMany, Lit};
                match pattern.0.as_slice() {
                    [] => Node::Row(col, RowTest::Empty),
                    [AnyMany] => Node::NotNull(col),
                    [Lit(s)] => self.literal(col, s, Kind::Equals, *cased),
                    [AnyMany, Lit(s), AnyMany] => self.literal(col, s, Kind::Contains, *cased),
                    [Lit(s), AnyMany] => self.literal(col, s, Kind::StartsWith, *cased),
                    [AnyMany, Lit(s)] => self.literal(col, s, Kind::EndsWith, *cased),
                    _ => Node::Row(col, RowTest::Regex(glob_regex(pattern, *cased)?)),
                }
            }
            Test::Re {
                pattern,
                case_insensitive,
                multi_line,
                dot_matches_new_line,
            } => Node::Row(
                col,
                RowTest::Regex(
                    RegexBuilder::new(pattern)
                        .case_insensitive(*case_insensitive)
                        .multi_line(*multi_line)
                        .dot_matches_new_line(*dot_matches_new_line)
                        .size_limit(1 << 22)
                        .build()
                        .map_err(|e| {
                            RefusalKind::Value.error(format!("regular expression `{pattern}`: {e}"))
                        })?,
                ),
            ),
            Test::Cidr { network, prefix } => Node::Row(col, RowTest::Cidr(*network, *prefix)),
            Test::Num { op, value } => Node::Row(col, RowTest::Num(*op, *value)),
            Test::Null => Node::Row(col, RowTest::Null),
            Test::Exists(true) => Node::NotNull(col),
            Test::Exists(false) => Node::Not(Box::new(Node::NotNull(col))),
            Test::FieldRef {
                other,
                position,
                cased,
            } => {
                let other = self.column(other);
                Node::Row(
                    col,
                    RowTest::FieldRef {
                        other,
                        position: *position,
                        cased: *cased,
                    },
                )
            }
        })
    }

    fn expr(&mut self, e: &Expr) -> Result<Node, RuleError> {
        Ok(match e {
            Expr::True => Node::True,
            Expr::And(v) => {
                let mut nodes = v
                    .iter()
                    .map(|e| self.expr(e))
                    .collect::<Result<Vec<_>, _>>()?;
                nodes.sort_by_key(Node::cost);
                Node::And(nodes)
            }
            Expr::Or(v) => {
                let mut nodes = v
                    .iter()
                    .map(|e| self.expr(e))
                    .collect::<Result<Vec<_>, _>>()?;
                nodes.sort_by_key(Node::cost);
                Node::Or(nodes)
            }
            Expr::Not(e) => Node::Not(Box::new(self.expr(e)?)),
            Expr::Field { field, test } => self.test(field, test)?,
            Expr::Keyword { .. } => {
                return Err(RefusalKind::Unsupported
                    .error("keyword (full-text) tests must be expanded to fields first"));
            }
        })
    }
}

impl RuleSet {
    /// Compiles rules on every core (see [`RuleSet::compile_on`]).
    pub fn compile(rules: &[RuleInput<'_>]) -> (RuleSet, Vec<Option<RuleError>>) {
        RuleSet::compile_on(rules, crate::parallel::cores())
    }

    /// Compiles rules, the literal automata built on up to `threads` threads; the error of a rule that
    /// cannot be compiled is returned at its index (the others still compile).
    pub fn compile_on(
        rules: &[RuleInput<'_>],
        threads: usize,
    ) -> (RuleSet, Vec<Option<RuleError>>) {
        let mut c = Compiler {
            columns: Vec::new(),
            column_index: HashMap::new(),
            slot_count: 0,
            whens: Vec::new(),
            when_index: HashMap::new(),
            under: None,
        };
        let mut compiled = Vec::with_capacity(rules.len());
        let mut errors = Vec::with_capacity(rules.len());
        for rule in rules {
            let mut variants = Vec::new();
            let mut error = None;
            for (when, detection) in &rule.variants {
                let key = format!("{when:?}");
                c.under = None;
                let when = match c.when_index.get(&key) {
                    Some(&i) => i,
                    None => match c.expr(when) {
                        Ok(node) => {
                            c.whens.push(node);
                            c.when_index.insert(key, c.whens.len() - 1);
                            c.whens.len() - 1
                        }
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    },
                };
                c.under = (!matches!(c.whens[when], Node::True)).then_some(when);
                match c.expr(detection) {
                    Ok(node) => variants.push((when, node)),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            if error.is_some() {
                variants.clear();
            }
            compiled.push(variants);
            errors.push(error);
        }
        build_automata(&mut c.columns, threads);
        (
            RuleSet {
                columns: c.columns,
                slot_count: c.slot_count,
                whens: c.whens,
                rules: compiled,
                threads: 1,
            },
            errors,
        )
    }

    /// Splits each batch's rows over `threads` threads (1: the calling thread only). Every part is scanned
    /// and judged on its own, so the parts share nothing but the compiled rules.
    pub fn with_threads(mut self, threads: usize) -> RuleSet {
        self.threads = threads.max(1);
        self
    }

    /// The threads each batch's rows are split over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The rows of `batch` each rule matches: (rule index, rows ascending), rules without matches left
    /// out. With more than one thread (and enough rows to pay for it) the rows are cut into that many
    /// consecutive parts, evaluated at once, and the parts' matches joined in row order.
    pub fn evaluate(&self, batch: &RecordBatch) -> Matches {
        let rows = batch.num_rows();
        let parts = self.threads.min(rows / MIN_ROWS_PER_PART).max(1);
        if parts == 1 {
            return self.evaluate_part(batch);
        }
        let per_part = rows.div_ceil(parts);
        // (first row of the part, its matches) per part.
        let offsets: Vec<usize> = (0..parts).map(|p| p * per_part).collect();
        let results = crate::parallel::in_order(offsets, "sigma-eval", |offset| {
            let part = batch.slice(offset, per_part.min(rows - offset));
            (offset, self.evaluate_part(&part))
        });
        let mut by_rule: std::collections::BTreeMap<usize, Vec<u32>> = Default::default();
        for (offset, matches) in results {
            for (rule, hits) in matches {
                by_rule
                    .entry(rule)
                    .or_default()
                    .extend(hits.into_iter().map(|r| r + offset as u32));
            }
        }
        by_rule.into_iter().collect()
    }

    fn evaluate_part(&self, batch: &RecordBatch) -> Matches {
        let ctx = self.scan(batch);
        let mut out = Vec::new();
        for (rule, variants) in self.rules.iter().enumerate() {
            let mut matched: Option<Bits> = None;
            for (when, detection) in variants {
                let candidates = &ctx.whens[*when];
                if !candidates.any() {
                    continue;
                }
                let hit = eval(detection, candidates, &ctx);
                match &mut matched {
                    Some(m) => m.or_assign(&hit),
                    None => matched = Some(hit),
                }
            }
            if let Some(m) = matched.filter(Bits::any) {
                out.push((rule, m.ones_iter().map(|r| r as u32).collect()));
            }
        }
        out
    }

    /// Reads the columns, scans them with the automata read on every row, evaluates the logsource
    /// conditions, then scans with each other automaton the rows of its conditions.
    fn scan(&self, batch: &RecordBatch) -> BatchCtx {
        let rows = batch.num_rows();
        let mut ctx = BatchCtx {
            values: self
                .columns
                .iter()
                .map(|plan| {
                    batch
                        .column_by_name(&plan.name)
                        .and_then(|a| as_strings(a).ok())
                })
                .collect(),
            // Most literals are absent from a batch: a slot's bits exist only once one of its rows is set.
            slots: vec![None; self.slot_count],
            whens: Vec::new(),
            rows,
        };
        let groups = || {
            self.columns.iter().enumerate().flat_map(|(c, plan)| {
                [&plan.insensitive, &plan.sensitive]
                    .into_iter()
                    .flat_map(move |lits| lits.groups.iter().map(move |g| (c, g)))
            })
        };
        for (c, group) in groups().filter(|(_, g)| g.whens.is_none()) {
            if let Some(strings) = &ctx.values[c] {
                group.scan(strings, &mut ctx.slots, None);
            }
        }
        let all = Bits::ones(rows);
        ctx.whens = self.whens.iter().map(|w| eval(w, &all, &ctx)).collect();
        for (c, group) in groups() {
            let (Some(whens), Some(strings)) = (&group.whens, &ctx.values[c]) else {
                continue;
            };
            let mut scope = Bits::zeros(rows);
            for &w in whens {
                scope.or_assign(&ctx.whens[w]);
            }
            if scope.any() {
                group.scan(strings, &mut ctx.slots, Some(&scope));
            }
        }
        ctx
    }

    /// The index of a column by name (tests).
    #[cfg(test)]
    fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }
}

/// A column as strings: Utf8 as is, anything else cast (numbers as their decimal text).
fn as_strings(array: &ArrayRef) -> Result<Arc<StringArray>, ArrowError> {
    if let Some(s) = array.as_any().downcast_ref::<StringArray>() {
        return Ok(Arc::new(s.clone()));
    }
    let cast = cast(array, &DataType::Utf8)?;
    Ok(Arc::new(cast.as_string::<i32>().clone()))
}

struct BatchCtx {
    values: Vec<Option<Arc<StringArray>>>,
    /// `None`: no row has the literal.
    slots: Vec<Option<Bits>>,
    /// Per logsource condition, the rows it holds for.
    whens: Vec<Bits>,
    rows: usize,
}

fn eval(node: &Node, candidates: &Bits, ctx: &BatchCtx) -> Bits {
    match node {
        Node::True => candidates.clone(),
        Node::Slot(slot) => match &ctx.slots[*slot] {
            Some(bits) => candidates.and(bits),
            None => Bits::zeros(ctx.rows),
        },
        Node::NotNull(col) => match &ctx.values[*col] {
            Some(values) => candidates.filter(|row| values.is_valid(row)),
            None => Bits::zeros(ctx.rows),
        },
        Node::Not(inner) => candidates.and_not(&eval(inner, candidates, ctx)),
        Node::And(children) => {
            let mut current = candidates.clone();
            for child in children {
                if !current.any() {
                    break;
                }
                current = eval(child, &current, ctx);
            }
            current
        }
        Node::Or(children) => {
            let mut result = Bits::zeros(ctx.rows);
            let mut remaining = candidates.clone();
            for child in children {
                if !remaining.any() {
                    break;
                }
                let hit = eval(child, &remaining, ctx);
                remaining = remaining.and_not(&hit);
                result.or_assign(&hit);
            }
            result
        }
        Node::Row(col, test) => {
            let values = ctx.values[*col].as_deref();
            if let RowTest::Null = test {
                return candidates.filter(|row| match values {
                    Some(v) => v.is_null(row) || v.value(row).is_empty(),
                    None => true,
                });
            }
            let Some(values) = values else {
                return Bits::zeros(ctx.rows);
            };
            candidates
                .filter(|row| values.is_valid(row) && row_test(test, values.value(row), row, ctx))
        }
    }
}

fn row_test(test: &RowTest, value: &str, row: usize, ctx: &BatchCtx) -> bool {
    match test {
        RowTest::Regex(re) => re.is_match(value),
        RowTest::Cidr(network, prefix) => value
            .trim()
            .parse::<IpAddr>()
            .is_ok_and(|ip| in_network(ip, *network, *prefix)),
        RowTest::Num(op, bound) => parse_number(value).is_some_and(|v| match op {
            Cmp::Lt => v < *bound,
            Cmp::Lte => v <= *bound,
            Cmp::Gt => v > *bound,
            Cmp::Gte => v >= *bound,
        }),
        RowTest::Null => unreachable!("handled before"),
        RowTest::Empty => value.is_empty(),
        RowTest::FieldRef {
            other,
            position,
            cased,
        } => {
            let Some(other) = ctx.values[*other].as_deref() else {
                return false;
            };
            if other.is_null(row) {
                return false;
            }
            let other = other.value(row);
            let (v, o) = if *cased {
                (value.to_string(), other.to_string())
            } else {
                (value.to_lowercase(), other.to_lowercase())
            };
            match position {
                Position::Equals => v == o,
                Position::Contains => v.contains(&o),
                Position::StartsWith => v.starts_with(&o),
                Position::EndsWith => v.ends_with(&o),
            }
        }
    }
}

/// A number in decimal or `0x` hexadecimal (Windows writes both).
fn parse_number(value: &str) -> Option<f64> {
    let v = value.trim();
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok().map(|n| n as f64);
    }
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
