//! Many Sigma rules over one Arrow batch, sharing the work.
//!
//! Compilation collects, per column, every literal the rules look for (equals, contains, starts with, ends
//! with; windash and base64 variants are literals too) into Aho-Corasick automata (ASCII
//! case-insensitive, plus case-sensitive ones for `cased`). Evaluating a batch scans each column's values
//! with them and sets one bit per (literal, position kind) and row.
//!
//! A literal's bits are read only on the rows of the logsource conditions of the rules that test it, so
//! each column and case has up to two automata: one over the literals read on every row (those the
//! logsource conditions test, and those of rules without a condition), scanned first; then the
//! conditions are evaluated; then one over the column's other literals, scanned on the union of their
//! rules' conditions. A `Message` tested only by two `service: application` rules is not scanned in
//! Sysmon events. A group of a few long literals is also tested for with SIMD first (see [`presence`]).
//!
//! Each rule is then a boolean expression over those bitmaps, evaluated on candidate rows only: its
//! logsource condition (shared by every rule of that logsource and computed once per batch) gives the first
//! candidates, `and` narrows them child by child, cheapest first, and the per-row tests (regular
//! expressions, globs, CIDR, numbers, field references) run only on the rows still in play. A rule whose
//! logsource has no row in the batch costs one check.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::query::udf::in_network;
use crate::sigma::error::{RefusalKind, RuleError};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind, packed};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use regex::{Regex, RegexBuilder};

use super::bits::Bits;
use super::ir::{Cmp, Expr, Pattern, Piece, Position, Test};

/// One rule to compile: OR over its variants of (`when` AND `detection`), over column names.
pub struct RuleInput<'a> {
    pub variants: Vec<(&'a Expr, &'a Expr)>,
}

/// What a literal must do relative to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Equals = 0,
    Contains = 1,
    StartsWith = 2,
    EndsWith = 3,
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

/// The literals of one column, for one case mode.
#[derive(Default)]
struct Literals {
    /// Distinct literal texts (lower-cased for the case-insensitive automaton).
    texts: Vec<String>,
    index: HashMap<String, usize>,
    /// Per literal and kind, the slot its bits go to.
    slots: Vec<[Option<usize>; 4]>,
    /// Per literal, the logsource conditions (`RuleSet::whens`) of the rules that test it; `None`: a
    /// condition tests it. A literal whose conditions include one that is always true (a rule without
    /// a condition) is read on every row too: see `RuleSet::compile`.
    scopes: Vec<Option<BTreeSet<usize>>>,
    /// The automata over the literals, built once every rule is compiled.
    groups: Vec<Group>,
}

/// An automaton over some of a column's literals, and the rows it scans.
struct Group {
    automaton: AhoCorasick,
    /// Whether a value holds any of the literals, found with SIMD (see [`presence`]): a value without
    /// any is not scanned by the automaton. ASCII-lower-cased values are asked for a case-insensitive
    /// group.
    presence: Option<packed::Searcher>,
    /// The automaton matches ASCII letters in any case.
    insensitive: bool,
    /// Per pattern of the automaton, its literal's slots.
    slots: Vec<[Option<usize>; 4]>,
    /// The rows of these logsource conditions are scanned; `None`: every row.
    whens: Option<Vec<usize>>,
}

struct ColumnPlan {
    name: String,
    insensitive: Literals,
    sensitive: Literals,
}

/// The rows each rule matches: (rule index, rows ascending), rules without matches left out.
pub type Matches = Vec<(usize, Vec<u32>)>;

/// The most memory a literal automaton (one [`Group`]) may take as a full DFA; a larger one is built as a
/// contiguous NFA instead. SigmaHQ Windows set over the OTRF events (`sigma bench`, 2 threads, medians of
/// 3 rounds), measured when a column had one automaton per case: DFAs everywhere 252k events/s; budget 16
/// MB 261k (74 MB less); 4 MB 243k (114 MB less); 1 MB 236k (136 MB less).
const DFA_BUDGET: usize = 4 << 20;

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
    /// The logsource condition of the detection being compiled; `None` while compiling a condition.
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
        let id = *lits.index.entry(key.clone()).or_insert_with(|| {
            lits.texts.push(key);
            lits.slots.push([None; 4]);
            lits.scopes.push(Some(BTreeSet::new()));
            lits.texts.len() - 1
        });
        match (self.under, &mut lits.scopes[id]) {
            (Some(when), Some(whens)) => {
                whens.insert(when);
            }
            (None, scope) => *scope = None,
            (Some(_), None) => {}
        }
        let slot = *lits.slots[id][kind as usize].get_or_insert_with(|| {
            self.slot_count += 1;
            self.slot_count - 1
        });
        Node::Slot(slot)
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
    /// Compiles rules; the error of a rule that cannot be compiled is returned at its index (the others
    /// still compile).
    pub fn compile(rules: &[RuleInput<'_>]) -> (RuleSet, Vec<Option<RuleError>>) {
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
                c.under = Some(when);
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
        // A literal of a rule without a logsource condition is read on every row.
        let unconditional: Vec<bool> = c.whens.iter().map(|w| matches!(w, Node::True)).collect();
        for plan in &mut c.columns {
            for (lits, insensitive) in [(&mut plan.insensitive, true), (&mut plan.sensitive, false)]
            {
                // The literals read on every row, and the others with the union of their conditions.
                let mut everywhere = Vec::new();
                let mut scoped = Vec::new();
                let mut scoped_whens = BTreeSet::new();
                for (id, scope) in lits.scopes.iter().enumerate() {
                    match scope {
                        Some(whens) if !whens.iter().any(|&w| unconditional[w]) => {
                            scoped.push(id);
                            scoped_whens.extend(whens);
                        }
                        _ => everywhere.push(id),
                    }
                }
                for (ids, whens) in [
                    (everywhere, None),
                    (scoped, Some(scoped_whens.into_iter().collect::<Vec<_>>())),
                ] {
                    if ids.is_empty() {
                        continue;
                    }
                    let texts: Vec<&str> = ids.iter().map(|&id| lits.texts[id].as_str()).collect();
                    let automaton = literal_automaton(&texts, insensitive);
                    let presence = presence(&texts);
                    tracing::debug!(
                        column = %plan.name,
                        insensitive,
                        literals = texts.len(),
                        conditions = whens.as_ref().map(Vec::len),
                        kind = ?automaton.kind(),
                        presence = presence.is_some(),
                        bytes = automaton.memory_usage(),
                        "Sigma literal automaton built."
                    );
                    lits.groups.push(Group {
                        presence,
                        insensitive,
                        automaton,
                        slots: ids.iter().map(|&id| lits.slots[id]).collect(),
                        whens,
                    });
                }
            }
        }
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
        let results: Vec<(usize, Matches)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..parts)
                .map(|p| {
                    let offset = p * per_part;
                    let part = batch.slice(offset, per_part.min(rows - offset));
                    scope.spawn(move || (offset, self.evaluate_part(&part)))
                })
                .collect();
            let mut results = vec![(0, self.evaluate_part(&batch.slice(0, per_part)))];
            for handle in handles {
                match handle.join() {
                    Ok(result) => results.push(result),
                    // The rule set's panic on another thread is this evaluation's panic.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            results
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
                scan_column(strings, group, &mut ctx.slots, None);
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
                scan_column(strings, group, &mut ctx.slots, Some(&scope));
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

/// One automaton over `texts`. A full DFA where it is small: measured on the SigmaHQ Windows set over
/// OTRF events, evaluation runs at 175k events/s with DFAs everywhere against 131k with contiguous NFAs
/// everywhere; but most of the DFAs' memory is in a few columns with thousands of literals (command_line
/// alone: 80 MB of 166), where an NFA costs little: see `DFA_BUDGET`.
fn literal_automaton(texts: &[&str], insensitive: bool) -> AhoCorasick {
    let build = |kind| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(insensitive)
            .match_kind(MatchKind::Standard)
            .kind(Some(kind))
            .build(texts)
            .expect("literal automata are built from plain strings")
    };
    if dfa_at_least(texts, insensitive) > DFA_BUDGET {
        return build(AhoCorasickKind::ContiguousNFA);
    }
    let automaton = build(AhoCorasickKind::DFA);
    match automaton.memory_usage() > DFA_BUDGET {
        true => build(AhoCorasickKind::ContiguousNFA),
        false => automaton,
    }
}

/// At least the memory a full DFA over `texts` takes, found without building it: a state per distinct
/// prefix of the literals (the trie's nodes), each a row of 4-byte state ids, one per byte class rounded
/// up to a power of two (a byte a literal holds, in both cases when `insensitive`, is a class of its own,
/// and every other byte at least one more). A DFA over the large columns' literals (hashes, images) took
/// tens of MB to build only to be dropped for exceeding `DFA_BUDGET`: a third of the time to load the
/// SigmaHQ Windows rules.
fn dfa_at_least(texts: &[&str], insensitive: bool) -> usize {
    let mut sorted: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    sorted.sort_unstable();
    let mut states = 1;
    let mut previous: &[u8] = &[];
    for text in sorted {
        let shared = previous
            .iter()
            .zip(text)
            .take_while(|(a, b)| a == b)
            .count();
        states += text.len() - shared;
        previous = text;
    }
    let mut used = [false; 256];
    for &b in texts.iter().flat_map(|t| t.as_bytes()) {
        used[usize::from(b)] = true;
        if insensitive {
            used[usize::from(b.to_ascii_uppercase())] = true;
        }
    }
    let classes = used.iter().filter(|&&u| u).count() + 1;
    states * classes.next_power_of_two() * 4
}

/// The most literals, and the shortest, a group gets a [`presence`] test for: the SIMD searcher
/// (Teddy) takes up to 64, and short ones would make it stop too often.
const PRESENCE_AT_MOST: usize = 64;
const PRESENCE_SHORTEST: usize = 3;

/// A SIMD test of whether a value holds any of `texts` (lower-cased already for a case-insensitive
/// group), where `aho-corasick` builds one (Teddy, on x86-64 with SSSE3 or AVX2, and aarch64).
///
/// `aho-corasick` gives an ASCII-case-insensitive automaton no Teddy prefilter, only one that looks for
/// up to three distinct bytes, which literals as varied as a rule's keywords exceed or meet only with
/// frequent bytes. `Mimikatz Use`, 20 keywords searched in every value of every Windows event, was half
/// of the evaluation's time over the OTRF events (1.68 s of 3.44, one thread): its automaton walked every
/// byte at 0.7 GB/s, and built case-sensitive to scan lower-cased values it took 1.92 s. With this test
/// first, 0.23 s: a value that holds none of the literals is not walked at all.
fn presence(texts: &[&str]) -> Option<packed::Searcher> {
    if texts.len() > PRESENCE_AT_MOST || texts.iter().any(|t| t.len() < PRESENCE_SHORTEST) {
        return None;
    }
    packed::Config::new()
        .match_kind(packed::MatchKind::LeftmostFirst)
        .builder()
        .extend(texts)
        .build()
}

/// A column as strings: Utf8 as is, anything else cast (numbers as their decimal text).
fn as_strings(array: &ArrayRef) -> Result<Arc<StringArray>, ArrowError> {
    if let Some(s) = array.as_any().downcast_ref::<StringArray>() {
        return Ok(Arc::new(s.clone()));
    }
    let cast = cast(array, &DataType::Utf8)?;
    Ok(Arc::new(cast.as_string::<i32>().clone()))
}

/// Scans the values of `strings` with `group`'s automaton, on the rows of `scope` (`None`: every row),
/// setting the bits of the slots its literals match.
fn scan_column(
    strings: &StringArray,
    group: &Group,
    out: &mut [Option<Bits>],
    scope: Option<&Bits>,
) {
    let rows = strings.len();
    let mut lower = Vec::new();
    let mut scan_row = |row: usize| {
        if strings.is_null(row) {
            return;
        }
        let value = strings.value(row);
        if let Some(presence) = &group.presence {
            let asked = match group.insensitive {
                true => {
                    lower.clear();
                    lower.extend_from_slice(value.as_bytes());
                    lower.make_ascii_lowercase();
                    lower.as_slice()
                }
                false => value.as_bytes(),
            };
            if presence.find(asked).is_none() {
                return;
            }
        }
        let len = value.len();
        let mut set = |slot: usize| {
            out[slot].get_or_insert_with(|| Bits::zeros(rows)).set(row);
        };
        for m in group.automaton.find_overlapping_iter(value) {
            let s = &group.slots[m.pattern().as_usize()];
            if let Some(slot) = s[Kind::Contains as usize] {
                set(slot);
            }
            let (start, end) = (m.start() == 0, m.end() == len);
            if start && let Some(slot) = s[Kind::StartsWith as usize] {
                set(slot);
            }
            if end && let Some(slot) = s[Kind::EndsWith as usize] {
                set(slot);
            }
            if start
                && end
                && let Some(slot) = s[Kind::Equals as usize]
            {
                set(slot);
            }
        }
    };
    match scope {
        None => (0..rows).for_each(&mut scan_row),
        Some(scope) => scope.ones_iter().for_each(&mut scan_row),
    }
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
