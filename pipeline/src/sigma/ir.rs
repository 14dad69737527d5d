//! The compiled form of a Sigma detection: a boolean expression over event fields.
//!
//! The parser (`parse/`) turns a rule's `detection` and `condition` into an [`Expr`] whose field names are
//! Sigma's (`Image`, `CommandLine` …); the mapping (`mapping/`) binds it to pipeline columns; the evaluator
//! (`eval.rs`) runs many bound expressions over one Arrow batch, and `sql.rs` renders one as SQL for audit.
//!
//! Semantics (the Sigma specification's): string matching is case-insensitive unless `cased`; a test on a
//! field the event lacks is false (so `not selection` is true for such an event); `Null` is true for a
//! missing field or an empty string.

use std::net::IpAddr;

/// One piece of a Sigma string value, after escapes are resolved and modifiers applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    /// Literal text (never empty).
    Lit(String),
    /// `*`: any run of characters, possibly empty.
    AnyMany,
    /// `?`: exactly one character.
    AnyOne,
}

/// A string pattern: `[Lit]` equals, `[AnyMany, Lit]` ends with, `[Lit, AnyMany]` starts with,
/// `[AnyMany, Lit, AnyMany]` contains, `[AnyMany]` any value (incl. empty); anything else is a glob.
/// Adjacent `AnyMany`s are merged and adjacent `Lit`s joined by the constructor [`Pattern::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern(pub Vec<Piece>);

impl Pattern {
    /// Normalises pieces: joins adjacent literals, drops empty literals, merges runs of `AnyMany`.
    pub fn new(pieces: impl IntoIterator<Item = Piece>) -> Pattern {
        let mut out: Vec<Piece> = Vec::new();
        for p in pieces {
            match (out.last_mut(), p) {
                (_, Piece::Lit(s)) if s.is_empty() => {}
                (Some(Piece::Lit(prev)), Piece::Lit(s)) => prev.push_str(&s),
                (Some(Piece::AnyMany), Piece::AnyMany) => {}
                (_, p) => out.push(p),
            }
        }
        Pattern(out)
    }

    /// A literal equality pattern.
    pub fn literal(s: &str) -> Pattern {
        Pattern::new([Piece::Lit(s.to_string())])
    }

    /// True for the empty pattern (matches only the empty string).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a referenced field's value must appear (`fieldref` with `contains`/`startswith`/`endswith`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    Equals,
    Contains,
    StartsWith,
    EndsWith,
}

/// Numeric comparison operators (`lt`, `lte`, `gt`, `gte`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
}

/// What one field must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The field's string value matches the pattern; case-insensitive unless `cased`.
    Str { pattern: Pattern, cased: bool },
    /// The regular expression (Rust `regex` syntax, checked to compile) matches somewhere in the value.
    Re {
        pattern: String,
        case_insensitive: bool,
        multi_line: bool,
        dot_matches_new_line: bool,
    },
    /// The value is an IP address inside the network.
    Cidr { network: IpAddr, prefix: u8 },
    /// The value, read as a number, compares with `value`; false when it is not a number.
    Num { op: Cmp, value: f64 },
    /// The field is missing, null or the empty string.
    Null,
    /// `exists: true` / `exists: false`.
    Exists(bool),
    /// The field's value compared with another field's value of the same event.
    FieldRef {
        other: String,
        position: Position,
        cased: bool,
    },
}

/// A detection condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Always true (e.g. an empty selection).
    True,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A test on one field. After binding, `field` is a pipeline column name.
    Field {
        field: String,
        test: Test,
    },
    /// A keyword (no field): the pattern matches some string value of the event. Keywords are
    /// case-insensitive unless `cased`; the parser makes a bare keyword a `contains` pattern.
    Keyword {
        pattern: Pattern,
        cased: bool,
    },
}

impl Expr {
    /// Calls `f` on every field name the expression reads (including `fieldref` targets).
    pub fn visit_fields(&self, f: &mut dyn FnMut(&str)) {
        match self {
            Expr::True | Expr::Keyword { .. } => {}
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.visit_fields(f)),
            Expr::Not(e) => e.visit_fields(f),
            Expr::Field { field, test } => {
                f(field);
                if let Test::FieldRef { other, .. } = test {
                    f(other);
                }
            }
        }
    }

    /// The same expression with every field name replaced by `rename(name)`.
    pub fn map_fields(&self, rename: &mut dyn FnMut(&str) -> String) -> Expr {
        match self {
            Expr::True => Expr::True,
            Expr::Keyword { .. } => self.clone(),
            Expr::And(v) => Expr::And(v.iter().map(|e| e.map_fields(rename)).collect()),
            Expr::Or(v) => Expr::Or(v.iter().map(|e| e.map_fields(rename)).collect()),
            Expr::Not(e) => Expr::Not(Box::new(e.map_fields(rename))),
            Expr::Field { field, test } => Expr::Field {
                field: rename(field),
                test: match test {
                    Test::FieldRef {
                        other,
                        position,
                        cased,
                    } => Test::FieldRef {
                        other: rename(other),
                        position: *position,
                        cased: *cased,
                    },
                    t => t.clone(),
                },
            },
        }
    }

    /// The expression with every test on a field that `known` rejects read as *unknown*: such a test
    /// might hold or not on the real activity (the event cannot carry the field at all), so the rule may
    /// fire only where its outcome does not depend on it. Each unknown test is replaced by the value that
    /// makes the rule least likely to fire — false where it counts for the rule (under an even number of
    /// `not`s), true where it counts against it (odd: a filter) — and constants are folded. Sound because
    /// `and`/`or` are monotone: the result holds only if the rule holds for every value of the unknown
    /// tests. A test on a field the *event* lacks stays false, as Sigma says; this is for fields a whole
    /// kind of event never carries. Returns the folded expression (`None`: constant false), the unknown
    /// fields met, and whether one of them sat under `not`.
    pub fn assume_unknown(&self, known: &dyn Fn(&str) -> bool) -> (Option<Expr>, Unknown) {
        let mut unknown = Unknown::default();
        let e = fold_unknown(self, known, false, &mut unknown);
        (e, unknown)
    }

    /// True when the expression contains a keyword (full-text) test.
    pub fn has_keywords(&self) -> bool {
        match self {
            Expr::Keyword { .. } => true,
            Expr::And(v) | Expr::Or(v) => v.iter().any(Expr::has_keywords),
            Expr::Not(e) => e.has_keywords(),
            _ => false,
        }
    }
}

/// A rule's `logsource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Logsource {
    pub product: Option<String>,
    pub category: Option<String>,
    pub service: Option<String>,
}

impl std::fmt::Display for Logsource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("product", &self.product),
            ("category", &self.category),
            ("service", &self.service),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        write!(f, "{}", parts.join(" "))
    }
}

/// Sigma `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

/// A Sigma detection rule, parsed.
#[derive(Debug, Clone)]
pub struct SigmaRule {
    /// The rule's `id` (a UUID in SigmaHQ).
    pub id: String,
    /// `name`, used by correlation rules to refer to it.
    pub name: Option<String>,
    pub title: String,
    pub description: String,
    pub status: Option<String>,
    pub level: Option<Level>,
    pub author: Option<String>,
    /// `tags` as written (`attack.t1059.001`, `attack.execution`, `cve.…`).
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    pub logsource: Logsource,
    /// The rule's `fields` (fields worth showing in an alert).
    pub fields: Vec<String>,
    pub detection: Expr,
}

/// What [`Expr::assume_unknown`] met.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub fields: std::collections::BTreeSet<String>,
    /// Some unknown test sat under an odd number of `not`s.
    pub negated: bool,
}

/// `None` is constant false; `Some(Expr::True)` constant true.
fn fold_unknown(
    e: &Expr,
    known: &dyn Fn(&str) -> bool,
    negated: bool,
    unknown: &mut Unknown,
) -> Option<Expr> {
    match e {
        Expr::True => Some(Expr::True),
        Expr::Keyword { .. } => Some(e.clone()),
        Expr::Field { field, test } => {
            let mut missing: Vec<&str> = Vec::new();
            if !known(field) {
                missing.push(field);
            }
            if let Test::FieldRef { other, .. } = test
                && !known(other)
            {
                missing.push(other);
            }
            if missing.is_empty() {
                return Some(e.clone());
            }
            unknown
                .fields
                .extend(missing.into_iter().map(str::to_string));
            unknown.negated |= negated;
            // The value least favourable to the rule: true under `not`, false elsewhere.
            negated.then_some(Expr::True)
        }
        Expr::Not(inner) => match fold_unknown(inner, known, !negated, unknown) {
            None => Some(Expr::True),
            Some(Expr::True) => None,
            Some(x) => Some(Expr::Not(Box::new(x))),
        },
        // Every child is folded (no early return), so that all unknown fields are reported.
        Expr::And(v) => {
            let (mut out, mut falsified) = (Vec::with_capacity(v.len()), false);
            for c in v {
                match fold_unknown(c, known, negated, unknown) {
                    None => falsified = true,
                    Some(Expr::True) => {}
                    Some(x) => out.push(x),
                }
            }
            if falsified {
                return None;
            }
            Some(match out.len() {
                0 => Expr::True,
                1 => out.pop().expect("one"),
                _ => Expr::And(out),
            })
        }
        Expr::Or(v) => {
            let (mut out, mut verified) = (Vec::with_capacity(v.len()), false);
            for c in v {
                match fold_unknown(c, known, negated, unknown) {
                    None => {}
                    Some(Expr::True) => verified = true,
                    Some(x) => out.push(x),
                }
            }
            if verified {
                return Some(Expr::True);
            }
            match out.len() {
                0 => None,
                1 => out.pop(),
                _ => Some(Expr::Or(out)),
            }
        }
    }
}
