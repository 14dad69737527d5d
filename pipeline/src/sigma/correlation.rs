//! Sigma correlation rules (specification v2.1): parsing and validation.
//!
//! The rule parser hands every YAML document with a `correlation:` key here, as JSON;
//! [`parse_correlation`] validates it and returns a [`CorrelationRule`] for `correlate.rs`.
//!
//! Beyond the specification's text, each with its reason:
//! - `timespan` takes only the specification's units `s m h d` (pySigma also takes `w M y`).
//! - `condition` is a conjunction of `gt gte lt lte eq neq` (the specification's ranges: `gt: 100`
//!   with `lte: 200`) on non-negative integers; one no count can meet is refused.
//! - `temporal` counts distinct referenced rules matched (default: all). `temporal_ordered` takes
//!   only conditions met exactly when all its rules matched: "k of n in order" is undefined.
//! - `value_count`'s `field` may be a list ("linked by an AND"): distinct tuples are counted. Like
//!   `group-by`, a field named as an alias is resolved per rule.
//! - `value_sum`, `value_avg`, `value_percentile` are refused with a reason: they need numeric field
//!   semantics and (percentile) a definition the specification lacks; approximating would mislead.
//! - `group-by` may be absent (one group), as in pySigma. `generate` may sit in `correlation`
//!   (pySigma) or at the top level (the JSON schema); two different values are an error.
//! - Unknown keys in `correlation` are refused: a misspelt `group-by` would merge every group.
//! - pySigma's string conditions ("extended" correlations) are not in the specification: refused.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::sigma::error::{RefusalKind, RuleError};
use crate::sigma::ir::Level;

/// The correlation type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    EventCount,
    /// Counts distinct values (tuples when several fields) of `fields`.
    ValueCount {
        fields: Vec<String>,
    },
    Temporal,
    TemporalOrdered,
}

/// A comparison operator of a correlation condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

const OPS: [Op; 6] = [Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::Eq, Op::Neq];
const OP_KEYS: [&str; 6] = ["gt", "gte", "lt", "lte", "eq", "neq"];
const LEVELS: &str = "informational low medium high critical";
const STATUSES: &str = "stable test experimental deprecated unsupported";
const KEYS: &str = "type rules group-by timespan condition aliases generate";

/// A conjunction of comparisons of one count with thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Sorted; never empty.
    pub tests: Vec<(Op, u64)>,
}

impl Condition {
    /// `count >= n`.
    pub fn at_least(n: u64) -> Condition {
        Condition {
            tests: vec![(Op::Gte, n)],
        }
    }

    /// True when `count` satisfies every comparison.
    pub fn holds(&self, count: u64) -> bool {
        self.tests.iter().all(|&(op, v)| match op {
            Op::Gt => count > v,
            Op::Gte => count >= v,
            Op::Lt => count < v,
            Op::Lte => count <= v,
            Op::Eq => count == v,
            Op::Neq => count != v,
        })
    }

    /// True when the condition, once met, stays met as the count grows (over counts `0..=max`):
    /// then a sliding window may fire as soon as it holds, without waiting for the window's end.
    pub fn is_upward_closed(&self, max: Option<u64>) -> bool {
        let top = self.tests.iter().map(|t| t.1 + 1).max().unwrap_or(1);
        let top = max.map_or(top, |m| m.min(top));
        (0..top).all(|k| !self.holds(k) || self.holds(k + 1))
    }
}

/// A parsed correlation rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationRule {
    pub id: Option<String>,
    pub name: Option<String>,
    pub title: String,
    pub description: String,
    pub level: Option<Level>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    pub status: Option<String>,
    pub kind: Kind,
    /// Referenced rule names or ids, in order, unique.
    pub rules: Vec<String>,
    pub group_by: Vec<String>,
    /// alias → (rule name or id → the field holding the alias's value in that rule's events).
    pub aliases: BTreeMap<String, BTreeMap<String, String>>,
    pub timespan: Duration,
    /// `None` only for temporal kinds without a condition: all referenced rules must match.
    pub condition: Option<Condition>,
    /// Whether referenced rules also alert on their own (default false).
    pub generate: bool,
}

impl CorrelationRule {
    /// The condition in force: the written one, or for temporal kinds "all rules matched".
    pub fn effective_condition(&self) -> Condition {
        self.condition
            .clone()
            .unwrap_or_else(|| Condition::at_least(self.rules.len() as u64))
    }

    /// The largest possible count when bounded (temporal kinds count rules).
    pub fn max_count(&self) -> Option<u64> {
        matches!(self.kind, Kind::Temporal | Kind::TemporalOrdered)
            .then_some(self.rules.len() as u64)
    }

    /// The value-count fields (empty for other kinds).
    pub fn value_fields(&self) -> &[String] {
        match &self.kind {
            Kind::ValueCount { fields } => fields,
            _ => &[],
        }
    }

    /// The field carrying `field` (group-by or value field, maybe an alias) in events of the rule
    /// known by any of `idents`; `None` for an alias without an entry for that rule.
    pub fn resolve_field(&self, field: &str, idents: &[&str]) -> Option<String> {
        match self.aliases.get(field) {
            None => Some(field.to_string()),
            Some(map) => idents.iter().find_map(|i| map.get(*i)).cloned(),
        }
    }

    /// The event fields to extract from a match of base rule `rule` (as named in `rules`): group-by
    /// after alias resolution, then value fields, without duplicates. An alias lacking `rule` gives
    /// its own name; `Correlator::fields_for` also knows ids and names, and `observe` follows it.
    pub fn fields_for(&self, rule: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in self.group_by.iter().chain(self.value_fields()) {
            let r = self.resolve_field(f, &[rule]).unwrap_or_else(|| f.clone());
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }
}

/// Parses and validates one correlation rule document; the error names the attribute and why.
pub fn parse_correlation(doc: &Value) -> Result<CorrelationRule, RuleError> {
    let top = doc
        .as_object()
        .ok_or_else(|| RefusalKind::Correlation.error("not a mapping"))?;
    let title = opt_str(top, "title")?
        .ok_or_else(|| RefusalKind::Correlation.error("title: missing (mandatory)"))?;
    if title.trim().is_empty() || title.chars().count() > 256 {
        return Err(RefusalKind::Correlation.error("title: must be 1 to 256 characters"));
    }
    let status = opt_str(top, "status")?;
    if let Some(s) = status
        .as_ref()
        .filter(|s| !STATUSES.split(' ').any(|x| x == *s))
    {
        return Err(
            RefusalKind::Correlation.error(format!("status: '{s}' is not one of {STATUSES}"))
        );
    }
    let level = match opt_str(top, "level")?.as_deref() {
        None => None,
        Some("informational") => Some(Level::Informational),
        Some("low") => Some(Level::Low),
        Some("medium") => Some(Level::Medium),
        Some("high") => Some(Level::High),
        Some("critical") => Some(Level::Critical),
        Some(l) => {
            return Err(
                RefusalKind::Correlation.error(format!("level: '{l}' is not one of {LEVELS}"))
            );
        }
    };
    let Some(Value::Object(corr)) = top.get("correlation") else {
        return Err(RefusalKind::Correlation.error("correlation: missing or not a mapping"));
    };
    if let Some(k) = corr.keys().find(|k| !KEYS.split(' ').any(|x| x == *k)) {
        return Err(RefusalKind::Correlation.error(format!(
            "correlation.{k}: unknown attribute (expected {KEYS})"
        )));
    }
    let ty = opt_str(corr, "type")?
        .ok_or_else(|| RefusalKind::Correlation.error("correlation.type: missing (mandatory)"))?;
    let rules = str_list(corr, "rules", "correlation.")?;
    if rules.is_empty() || rules.iter().any(|r| r.trim().is_empty()) {
        return Err(RefusalKind::Correlation
            .error("correlation.rules: missing, empty or with an empty reference"));
    }
    unique(&rules, "correlation.rules")?;
    let group_by = str_list(corr, "group-by", "correlation.")?;
    unique(&group_by, "correlation.group-by")?;
    let timespan = parse_timespan(corr.get("timespan").unwrap_or(&Value::Null))?;
    let aliases = parse_aliases(corr.get("aliases"))?;
    let generate = match (corr.get("generate"), top.get("generate")) {
        (Some(a), Some(b)) if a != b => {
            Err(RefusalKind::Correlation.error("generate: differs in correlation and top level"))?
        }
        (Some(Value::Bool(b)), _) | (None, Some(Value::Bool(b))) => *b,
        (None | Some(Value::Null), None | Some(Value::Null)) => false,
        _ => Err(RefusalKind::Correlation.error("generate: must be true or false"))?,
    };
    let (tests, field) = match corr.get("condition") {
        None | Some(Value::Null) => (Vec::new(), None),
        Some(Value::Object(m)) => parse_condition(m)?,
        // pySigma's string conditions ("extended" correlations) are not in the specification.
        Some(_) => Err(RefusalKind::Correlation
            .error("correlation.condition: must be a mapping like {gte: 5}"))?,
    };
    let kind = match ty.as_str() {
        "event_count" | "value_count" if tests.is_empty() => {
            return Err(RefusalKind::Correlation.error(format!(
                "correlation.condition: {ty} needs gt gte lt lte eq or neq"
            )));
        }
        "event_count" => Kind::EventCount,
        "value_count" => {
            match field.clone() {
                Some(fields) => Kind::ValueCount { fields },
                None => Err(RefusalKind::Correlation
                    .error("correlation.condition.field: value_count needs it"))?,
            }
        }
        "temporal" => Kind::Temporal,
        "temporal_ordered" => Kind::TemporalOrdered,
        "value_sum" | "value_avg" | "value_percentile" => {
            return Err(RefusalKind::Unsupported.error(format!(
                "correlation.type: {ty} is refused: metric correlations need numeric field semantics \
                 (percentiles a definition the specification lacks); ghosthunt does not approximate them"
            )));
        }
        o => {
            return Err(RefusalKind::Correlation.error(format!(
                "correlation.type: '{o}' is not a supported correlation type"
            )));
        }
    };
    if field.is_some() && !matches!(kind, Kind::ValueCount { .. }) {
        return Err(RefusalKind::Correlation.error(format!(
            "correlation.condition.field: only value_count counts one, not {ty}"
        )));
    }
    let condition = (!tests.is_empty()).then_some(Condition { tests });
    let rule = CorrelationRule {
        id: opt_str(top, "id")?,
        name: opt_str(top, "name")?,
        title,
        description: opt_str(top, "description")?.unwrap_or_default(),
        level,
        tags: str_list(top, "tags", "")?,
        references: str_list(top, "references", "")?,
        falsepositives: str_list(top, "falsepositives", "")?,
        status,
        kind,
        rules,
        group_by,
        aliases,
        timespan,
        condition,
        generate,
    };
    if let Some(c) = &rule.condition {
        let n = rule.rules.len() as u64;
        let hi = c.tests.iter().map(|t| t.1 + 1).max().unwrap_or(1);
        let hi = rule.max_count().unwrap_or(hi);
        if !(1..=hi).any(|k| c.holds(k)) {
            return Err(RefusalKind::Correlation.error(format!(
                "correlation.condition: no count in 1..={hi} meets it; never fires"
            )));
        }
        if rule.kind == Kind::TemporalOrdered && (1..=n).any(|k| c.holds(k) != (k == n)) {
            return Err(RefusalKind::Correlation.error(format!(
                "correlation.condition: temporal_ordered takes only conditions met exactly when all \
                 {n} rules matched in order (e.g. gte: {n}); 'k of n in order' is undefined"
            )));
        }
    }
    Ok(rule)
}

/// A positive integer and a unit `s`, `m`, `h` or `d` (lowercase); at most 10 years, so that
/// nanosecond arithmetic on event times cannot overflow.
pub fn parse_timespan(v: &Value) -> Result<Duration, RuleError> {
    let s = v.as_str().ok_or_else(|| {
        RefusalKind::Correlation.error(format!(
            "correlation.timespan: must be a string like 5m, got {v}"
        ))
    })?;
    let err =
        |why: &str| RefusalKind::Correlation.error(format!("correlation.timespan: '{s}' {why}"));
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("must be a positive integer followed by s, m, h or d"));
    }
    let secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(err("has a unit other than s, m, h or d (lowercase)")),
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(secs)) {
        Some(0) => Err(err("must be greater than zero")),
        Some(t) if t <= 10 * 366 * 86400 => Ok(Duration::from_secs(t)),
        _ => Err(err("is longer than 10 years")),
    }
}

type Tests = Vec<(Op, u64)>;

fn parse_condition(m: &Map<String, Value>) -> Result<(Tests, Option<Vec<String>>), RuleError> {
    let (mut tests, mut field) = (Vec::new(), None);
    for (k, v) in m {
        if k == "field" {
            let f = match v {
                Value::String(s) => Some(vec![s.clone()]),
                Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
                _ => None,
            };
            let f = f.filter(|f| !f.is_empty() && f.iter().all(|s| !s.is_empty()));
            let f = f.ok_or_else(|| {
                RefusalKind::Correlation
                    .error("correlation.condition.field: must be a field or a list of fields")
            })?;
            unique(&f, "correlation.condition.field")?;
            field = Some(f);
        } else if let Some(i) = OP_KEYS.iter().position(|o| o == k) {
            let bad = || {
                RefusalKind::Correlation.error(format!(
                    "correlation.condition.{k}: must be a count ≥ 0, got {v}"
                ))
            };
            tests.push((OPS[i], v.as_u64().ok_or_else(bad)?));
        } else {
            return Err(RefusalKind::Correlation.error(format!(
                "correlation.condition.{k}: unknown (expected {OP_KEYS:?}, field)"
            )));
        }
    }
    tests.sort();
    Ok((tests, field))
}

fn parse_aliases(
    v: Option<&Value>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, RuleError> {
    let mut out = BTreeMap::new();
    let m = match v {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(RefusalKind::Correlation
                .error("correlation.aliases: must map alias → {rule → field}"));
        }
    };
    for (alias, per_rule) in m {
        let err = || {
            RefusalKind::Correlation.error(format!(
                "correlation.aliases.{alias}: must map rule names to field names"
            ))
        };
        let per_rule = per_rule.as_object().filter(|p| !p.is_empty());
        let per_rule = per_rule.ok_or_else(err)?;
        let mut fields = BTreeMap::new();
        for (rule, f) in per_rule {
            let f = f.as_str().filter(|f| !f.is_empty()).ok_or_else(err)?;
            fields.insert(rule.clone(), f.to_string());
        }
        out.insert(alias.clone(), fields);
    }
    Ok(out)
}

fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>, RuleError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(o) => Err(RefusalKind::Correlation.error(format!("{key}: must be a string, got {o}"))),
    }
}

/// A list of strings, or one string (Hayabusa's `references`); absent or null is empty.
fn str_list(m: &Map<String, Value>, key: &str, prefix: &str) -> Result<Vec<String>, RuleError> {
    let list = match m.get(key) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(a)) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        Some(_) => None,
    };
    list.ok_or_else(|| {
        RefusalKind::Correlation.error(format!(
            "{prefix}{key}: must be a string or a list of strings"
        ))
    })
}

fn unique(v: &[String], what: &str) -> Result<(), RuleError> {
    match v.iter().enumerate().find(|(i, a)| v[..*i].contains(a)) {
        Some((_, a)) => Err(RefusalKind::Correlation.error(format!("{what}: '{a}' appears twice"))),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "correlation_tests.rs"]
mod tests;
