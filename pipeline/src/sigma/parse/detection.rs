//! A rule's `detection`: search identifiers (maps are ANDs of their items, lists ORs), `Field|modifiers`
//! items, keywords, Sigma strings with their wildcards and escapes, and the values the modifiers produce
//! compiled to [`Expr`] tests; the `condition` joins the identifiers.

use std::net::IpAddr;

use super::ParseOptions;
use super::modifiers::{Modifier, Raw, apply_modifiers, validate_regex};
use super::yaml::Yaml;
use crate::sigma::condition;
use crate::sigma::error::{RefusalKind, RuleError};
use crate::sigma::ir::{Cmp, Expr, Pattern, Piece, Position, Test};

pub(super) fn parse_detection(det: &Yaml, opts: &ParseOptions) -> Result<Expr, RuleError> {
    let Yaml::Map(items) = det else {
        return Err(RefusalKind::Detection.error(format!(
            "`detection` must be a mapping, not a {}",
            det.kind()
        )));
    };
    let mut idents: Vec<(String, Expr)> = Vec::new();
    let mut conditions: Option<Vec<String>> = None;
    for (k, v) in items {
        let name = k.scalar_text().unwrap_or_default();
        match name.as_str() {
            "condition" => {
                conditions = Some(match v {
                    Yaml::Seq(cs) => cs
                        .iter()
                        .map(|c| {
                            c.scalar_text().ok_or_else(|| {
                                RefusalKind::Detection
                                    .error("`condition` list items must be strings")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    v => vec![v.scalar_text().ok_or_else(|| {
                        RefusalKind::Detection
                            .error(format!("`condition` must be a string, not a {}", v.kind()))
                    })?],
                });
            }
            // Without an aggregation (refused by the condition parser) a time frame constrains nothing.
            "timeframe" => {}
            _ => {
                if idents.iter().any(|(n, _)| *n == name) {
                    return Err(RefusalKind::Detection
                        .error(format!("search identifier `{name}` is defined twice")));
                }
                let e = parse_search(v, opts)
                    .map_err(|e| e.context(format_args!("search identifier `{name}`")))?;
                idents.push((name, e));
            }
        }
    }
    let conditions = conditions
        .ok_or_else(|| RefusalKind::Condition.error("the detection has no `condition`"))?;
    if conditions.is_empty() {
        return Err(RefusalKind::Condition.error("the `condition` list is empty"));
    }
    let mut alternatives = Vec::new();
    for c in &conditions {
        let parsed = condition::parse_condition(c)
            .map_err(|e| e.context(format_args!("condition `{c}`")))?;
        alternatives.push(
            condition::resolve(&parsed, &idents)
                .map_err(|e| e.context(format_args!("condition `{c}`")))?,
        );
    }
    Ok(simplify(Expr::Or(alternatives)))
}

/// One search identifier's definition: a map (AND of its items), a list (OR of maps and keywords), or a
/// single keyword.
fn parse_search(v: &Yaml, opts: &ParseOptions) -> Result<Expr, RuleError> {
    match v {
        Yaml::Map(items) => {
            let mut all = Vec::with_capacity(items.len());
            for (k, val) in items {
                all.push(parse_item(&k.scalar_text().unwrap_or_default(), val, opts)?);
            }
            Ok(simplify(Expr::And(all)))
        }
        Yaml::Seq(items) => {
            if items.is_empty() {
                return Err(RefusalKind::Detection.error("empty list"));
            }
            let mut any = Vec::with_capacity(items.len());
            for item in items {
                any.push(match item {
                    Yaml::Map(_) => parse_search(item, opts)?,
                    Yaml::Seq(_) => {
                        return Err(RefusalKind::Detection
                            .error("a list nested in a list is not a valid search"));
                    }
                    Yaml::Null => {
                        return Err(RefusalKind::Detection.error("`null` is not a valid keyword"));
                    }
                    scalar => compile_values(None, &[], std::slice::from_ref(scalar), opts)?,
                });
            }
            Ok(simplify(Expr::Or(any)))
        }
        Yaml::Null => Err(RefusalKind::Detection.error("no definition (null)")),
        scalar => compile_values(None, &[], std::slice::from_ref(scalar), opts),
    }
}

/// One `Field|mod1|mod2: value(s)` item of a map.
fn parse_item(key: &str, value: &Yaml, opts: &ParseOptions) -> Result<Expr, RuleError> {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or_default().trim();
    let mut mods = Vec::new();
    for m in parts {
        mods.push(Modifier::parse(m).map_err(|e| e.context(format_args!("`{key}`")))?);
    }
    let values: &[Yaml] = match value {
        Yaml::Seq(items) if items.is_empty() => {
            return Err(RefusalKind::Detection.error(format!("`{key}`: empty value list")));
        }
        Yaml::Seq(items) => items,
        Yaml::Map(_) => {
            return Err(
                RefusalKind::Detection.error(format!("`{key}`: a value cannot be a mapping"))
            );
        }
        v => std::slice::from_ref(v),
    };
    if let Some(bad) = values
        .iter()
        .find(|v| matches!(v, Yaml::Seq(_) | Yaml::Map(_)))
    {
        return Err(
            RefusalKind::Detection.error(format!("`{key}`: a value cannot be a {}", bad.kind()))
        );
    }
    let field = if field.is_empty() { None } else { Some(field) };
    compile_values(field, &mods, values, opts).map_err(|e| e.context(format_args!("`{key}`")))
}

/// A piece of a Sigma string while modifiers apply (a [`Piece`] or an unexpanded placeholder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SPiece {
    Lit(String),
    Many,
    One,
    Placeholder(String),
}

/// A value as modifiers transform it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    Str {
        s: Vec<SPiece>,
        cased: bool,
    },
    /// UTF-16 bytes waiting for `base64`/`base64offset`; the modifier that produced them.
    Bytes(Vec<u8>, &'static str),
    Re {
        pattern: String,
        i: bool,
        m: bool,
        s: bool,
    },
    Cidr(IpAddr, u8),
    Num(Cmp, f64),
    Null,
    Exists(bool),
    FieldRef {
        other: String,
        position: Position,
        cased: bool,
    },
}

/// Sigma escapes (pySigma's reading): `*` and `?` are wildcards; a backslash makes a following `*`, `?` or
/// `\` plain; any other backslash (including a trailing one) is a plain backslash.
pub(super) fn parse_sigma_string(raw: &str) -> Vec<SPiece> {
    let mut out = Vec::new();
    let mut acc = String::new();
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '*' | '?' | '\\') {
                acc.push('\\');
            }
            acc.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '*' || c == '?' {
            if !acc.is_empty() {
                out.push(SPiece::Lit(std::mem::take(&mut acc)));
            }
            out.push(if c == '*' { SPiece::Many } else { SPiece::One });
        } else {
            acc.push(c);
        }
    }
    if escaped {
        acc.push('\\');
    }
    if !acc.is_empty() {
        out.push(SPiece::Lit(acc));
    }
    out
}

pub(super) fn normalise(pieces: Vec<SPiece>) -> Vec<SPiece> {
    let mut out: Vec<SPiece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match (out.last_mut(), p) {
            (_, SPiece::Lit(s)) if s.is_empty() => {}
            (Some(SPiece::Lit(prev)), SPiece::Lit(s)) => prev.push_str(&s),
            (Some(SPiece::Many), SPiece::Many) => {}
            (_, p) => out.push(p),
        }
    }
    out
}

/// The plain text of a string without wildcards or placeholders.
pub(super) fn plain_text(s: &[SPiece]) -> Option<String> {
    let mut t = String::new();
    for p in s {
        match p {
            SPiece::Lit(l) => t.push_str(l),
            _ => return None,
        }
    }
    Some(t)
}

/// Compiles the values of one item (field test or keyword) with its modifiers.
fn compile_values(
    field: Option<&str>,
    mods: &[Modifier],
    values: &[Yaml],
    opts: &ParseOptions,
) -> Result<Expr, RuleError> {
    let all = mods.contains(&Modifier::All);
    let neq = mods.contains(&Modifier::Neq);
    let positional = mods.iter().any(|m| {
        matches!(
            m,
            Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith
        )
    });
    let mut per_value = Vec::with_capacity(values.len());
    for y in values {
        let raw = Raw { yaml: y };
        if matches!(y, Yaml::Null) && mods.iter().any(|m| !m.is_list_level()) {
            return Err(RefusalKind::Modifier.error("`null` takes no value modifier"));
        }
        let vals = apply_modifiers(&raw, mods, field.is_some(), opts)?;
        let mut alternatives = Vec::with_capacity(vals.len());
        for v in vals {
            alternatives.push(match field {
                Some(f) => Expr::Field {
                    field: f.to_string(),
                    test: to_test(v)?,
                },
                None => to_keyword(v, positional)?,
            });
        }
        per_value.push(simplify(Expr::Or(alternatives)));
    }
    let combined = simplify(if all {
        Expr::And(per_value)
    } else {
        Expr::Or(per_value)
    });
    if neq {
        let Some(f) = field else {
            return Err(RefusalKind::Modifier.error("`neq` needs a field"));
        };
        if has_exists(&combined) {
            return Err(RefusalKind::Modifier.error("`neq` cannot combine with `exists`"));
        }
        return Ok(Expr::And(vec![
            Expr::Field {
                field: f.to_string(),
                test: Test::Exists(true),
            },
            Expr::Not(Box::new(combined)),
        ]));
    }
    Ok(combined)
}

fn has_exists(e: &Expr) -> bool {
    match e {
        Expr::Field {
            test: Test::Exists(_),
            ..
        } => true,
        Expr::And(v) | Expr::Or(v) => v.iter().any(has_exists),
        Expr::Not(e) => has_exists(e),
        _ => false,
    }
}

fn to_pattern(s: Vec<SPiece>) -> Result<Pattern, RuleError> {
    let mut pieces = Vec::with_capacity(s.len());
    for p in s {
        pieces.push(match p {
            SPiece::Lit(l) => Piece::Lit(l),
            SPiece::Many => Piece::AnyMany,
            SPiece::One => Piece::AnyOne,
            // `expand` resolves placeholders immediately; a leftover is a bug, reported not panicked.
            SPiece::Placeholder(n) => {
                return Err(
                    RefusalKind::Placeholder.error(format!("unexpanded placeholder `%{n}%`"))
                );
            }
        });
    }
    Ok(Pattern::new(pieces))
}

fn to_test(v: Val) -> Result<Test, RuleError> {
    Ok(match v {
        Val::Str { s, cased } => Test::Str {
            pattern: to_pattern(s)?,
            cased,
        },
        Val::Bytes(_, enc) => {
            return Err(RefusalKind::Modifier.error(format!(
                "`{enc}` without `base64`/`base64offset`: UTF-16 bytes cannot match decoded event text"
            )));
        }
        Val::Re { pattern, i, m, s } => {
            validate_regex(&pattern, i, m, s)?;
            Test::Re {
                pattern,
                case_insensitive: i,
                multi_line: m,
                dot_matches_new_line: s,
            }
        }
        Val::Cidr(network, prefix) => Test::Cidr { network, prefix },
        Val::Num(op, value) => Test::Num { op, value },
        Val::Null => Test::Null,
        Val::Exists(b) => Test::Exists(b),
        Val::FieldRef {
            other,
            position,
            cased,
        } => Test::FieldRef {
            other,
            position,
            cased,
        },
    })
}

fn to_keyword(v: Val, positional: bool) -> Result<Expr, RuleError> {
    match v {
        Val::Str { mut s, cased } => {
            if !positional {
                // A bare keyword is found anywhere in a value.
                if s.first() != Some(&SPiece::Many) {
                    s.insert(0, SPiece::Many);
                }
                if s.last() != Some(&SPiece::Many) {
                    s.push(SPiece::Many);
                }
            }
            Ok(Expr::Keyword {
                pattern: to_pattern(s)?,
                cased,
            })
        }
        Val::Bytes(_, enc) => Err(RefusalKind::Modifier.error(format!(
            "`{enc}` without `base64`/`base64offset`: UTF-16 bytes cannot match decoded event text"
        ))),
        Val::Null => Err(RefusalKind::Detection.error("`null` is not a valid keyword")),
        _ => Err(RefusalKind::Detection
            .error("keywords (values without a field) support string matching only")),
    }
}

/// Light, deterministic simplification: flattens nested `And`/`Or`, drops `True` from `And`, makes an
/// `Or` containing `True` `True`, and replaces single-child `And`/`Or` by the child.
pub fn simplify(e: Expr) -> Expr {
    match e {
        Expr::And(v) => {
            let mut out = Vec::with_capacity(v.len());
            for c in v {
                match simplify(c) {
                    Expr::True => {}
                    Expr::And(inner) => out.extend(inner),
                    c => out.push(c),
                }
            }
            match out.len() {
                0 => Expr::True,
                1 => out.pop().unwrap(),
                _ => Expr::And(out),
            }
        }
        Expr::Or(v) => {
            let mut out = Vec::with_capacity(v.len());
            for c in v {
                match simplify(c) {
                    Expr::True => return Expr::True,
                    Expr::Or(inner) => out.extend(inner),
                    c => out.push(c),
                }
            }
            match out.len() {
                0 => Expr::Or(out), // never produced by the parser: an empty list is refused
                1 => out.pop().unwrap(),
                _ => Expr::Or(out),
            }
        }
        Expr::Not(inner) => Expr::Not(Box::new(simplify(*inner))),
        other => other,
    }
}
