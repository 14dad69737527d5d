//! A compiled detection ([`Expr`]) rendered as a SQL boolean expression in DataFusion's dialect, with the
//! evaluator's semantics, for audit (`ghosthunt sigma convert`) and for running a rule as a plain hunt.
//!
//! - Columns are named by `Field.field`; identifiers other than `[a-z_][a-z0-9_]*` (or SQL keywords) are
//!   double-quoted.
//! - Strings compare case-insensitively as `lower(col)` against lower-cased literal text; `cased` compares
//!   `col` itself. Equality is `=`, prefixes/suffixes/substrings are `starts_with`/`ends_with`/`contains`,
//!   other wildcard patterns are `LIKE … ESCAPE '\'` with `%`, `_` and `\` escaped.
//! - Every leaf is two-valued: a test on a missing (NULL) field is FALSE (`coalesce(<leaf>, false)`), so
//!   `NOT` of it is TRUE, as Sigma requires. `Null` is `(col IS NULL OR col = '')`, `Exists` is
//!   `IS [NOT] NULL`.
//! - `Re` is `regexp_like(col, 'pattern'[, 'flags'])`; DataFusion prefixes the pattern with `(?flags)` for
//!   the Rust `regex` crate, so `i`, `m`, `s` mean what the evaluator means.
//! - `Cidr` calls the `cidr_match(col, 'net/prefix')` UDF; `Num` compares `try_cast(col AS DOUBLE)`.
//! - `Keyword` tests the `_values` column (every scalar value of the raw event, each ended by U+001F; see
//!   `keywords`): a substring keyword is `contains`; any other keyword pattern is a
//!   regular expression anchored at value boundaries, its wildcards not crossing one.
//!
//! String literals escape `'` by doubling it; DataFusion's default (generic) dialect takes backslashes
//! literally.

use std::net::IpAddr;

use crate::sigma::ir::{Cmp, Expr, Pattern, Piece, Position, Test};

/// The detection as one SQL boolean expression (single line).
pub fn expr_to_sql(e: &Expr) -> String {
    match e {
        Expr::True => "TRUE".to_string(),
        Expr::And(v) | Expr::Or(v) if v.is_empty() => if matches!(e, Expr::And(_)) {
            "TRUE"
        } else {
            "FALSE"
        }
        .to_string(),
        Expr::And(v) => format!(
            "({})",
            v.iter().map(expr_to_sql).collect::<Vec<_>>().join(" AND ")
        ),
        Expr::Or(v) => format!(
            "({})",
            v.iter().map(expr_to_sql).collect::<Vec<_>>().join(" OR ")
        ),
        Expr::Not(inner) => format!("NOT {}", atomic(expr_to_sql(inner))),
        Expr::Field { field, test } => field_sql(field, test),
        Expr::Keyword { .. } => expr_to_sql(&crate::sigma::keywords::expand_keywords(e)),
    }
}

/// `SELECT {select} FROM events WHERE {expr}`, one condition per line, indented by nesting.
pub fn rule_to_sql(rule_expr: &Expr, select: &str) -> String {
    let mut out = format!("SELECT {select}\nFROM events\nWHERE\n");
    for line in lines(rule_expr) {
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    out.pop();
    out
}

fn lines(e: &Expr) -> Vec<String> {
    match e {
        Expr::And(v) | Expr::Or(v) if !v.is_empty() => {
            let op = if matches!(e, Expr::And(_)) {
                "AND "
            } else {
                "OR "
            };
            let mut out = Vec::new();
            for (i, child) in v.iter().enumerate() {
                let mut child_lines = match child {
                    Expr::And(c) | Expr::Or(c) if !c.is_empty() => parenthesised(child),
                    _ => lines(child),
                };
                if i > 0 {
                    child_lines[0] = format!("{op}{}", child_lines[0]);
                }
                out.extend(child_lines);
            }
            out
        }
        Expr::Not(inner) => match inner.as_ref() {
            Expr::And(c) | Expr::Or(c) if !c.is_empty() => {
                let mut p = parenthesised(inner);
                p[0] = format!("NOT {}", p[0]);
                p
            }
            other => vec![format!("NOT {}", atomic(expr_to_sql(other)))],
        },
        leaf => vec![expr_to_sql(leaf)],
    }
}

/// Parenthesises a rendered leaf unless it is already a function call or parenthesised, so that `NOT`
/// applies to all of it (`NOT (a IS NOT NULL)`).
fn atomic(sql: String) -> String {
    let wrapped = (sql.starts_with('(') || sql.starts_with("coalesce(")) && sql.ends_with(')');
    if wrapped || sql == "TRUE" {
        sql
    } else {
        format!("({sql})")
    }
}

fn parenthesised(e: &Expr) -> Vec<String> {
    let mut out = vec!["(".to_string()];
    out.extend(lines(e).into_iter().map(|l| format!("  {l}")));
    out.push(")".to_string());
    out
}

/// Reserved words that must be quoted even when lower-case (a conservative subset of sqlparser's).
const RESERVED: &[&str] = &[
    "all",
    "and",
    "any",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "cast",
    "create",
    "cross",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "delete",
    "desc",
    "distinct",
    "drop",
    "else",
    "end",
    "except",
    "exists",
    "false",
    "fetch",
    "filter",
    "for",
    "from",
    "full",
    "group",
    "having",
    "ilike",
    "in",
    "inner",
    "insert",
    "intersect",
    "interval",
    "into",
    "is",
    "join",
    "lateral",
    "left",
    "like",
    "limit",
    "natural",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "right",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "table",
    "then",
    "true",
    "union",
    "update",
    "user",
    "using",
    "values",
    "when",
    "where",
    "window",
    "with",
];

/// A column reference: bare when `[a-z_][a-z0-9_]*` and not reserved, otherwise double-quoted.
pub fn quote_ident(name: &str) -> String {
    // A non-text column already read as text by the caller (`CAST(event_id AS VARCHAR)`).
    if name.starts_with("CAST(") && name.ends_with(" AS VARCHAR)") {
        return name.to_string();
    }
    let mut chars = name.chars();
    let plain = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && !RESERVED.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A SQL string literal.
pub fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn two_valued(leaf: String) -> String {
    format!("coalesce({leaf}, false)")
}

fn fold(s: &str, cased: bool) -> String {
    if cased {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

fn target(col: &str, cased: bool) -> String {
    if cased {
        col.to_string()
    } else {
        format!("lower({col})")
    }
}

/// True when no character of `s` has another case (so `lower(x) = s` ⟺ `x = s`).
fn is_caseless(s: &str) -> bool {
    s.chars()
        .all(|c| !c.is_alphabetic() || (c.to_lowercase().eq([c]) && c.to_uppercase().eq([c])))
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn string_test(col: &str, pattern: &Pattern, cased: bool) -> String {
    use Piece::{AnyMany as M, Lit};
    let t = target(col, cased);
    match pattern.0.as_slice() {
        [] => two_valued(format!("{col} = ''")),
        [M] => format!("{col} IS NOT NULL"),
        // Text without case (digits, punctuation: `4688`, `0x10`, `-`) equals `lower(col)` exactly when it
        // equals `col`; comparing the column itself also lets a numeric column compare with the literal.
        [Lit(l)] if cased || is_caseless(l) => two_valued(format!("{col} = {}", quote_str(l))),
        [Lit(l)] => two_valued(format!("{t} = {}", quote_str(&fold(l, cased)))),
        [Lit(l), M] => two_valued(format!("starts_with({t}, {})", quote_str(&fold(l, cased)))),
        [M, Lit(l)] => two_valued(format!("ends_with({t}, {})", quote_str(&fold(l, cased)))),
        [M, Lit(l), M] => two_valued(format!("contains({t}, {})", quote_str(&fold(l, cased)))),
        pieces => {
            let mut like = String::new();
            for p in pieces {
                match p {
                    Piece::Lit(l) => like.push_str(&like_escape(&fold(l, cased))),
                    Piece::AnyMany => like.push('%'),
                    Piece::AnyOne => like.push('_'),
                }
            }
            two_valued(format!("{t} LIKE {} ESCAPE '\\'", quote_str(&like)))
        }
    }
}

fn field_sql(field: &str, test: &Test) -> String {
    let col = quote_ident(field);
    match test {
        Test::Str { pattern, cased } => string_test(&col, pattern, *cased),
        Test::Re {
            pattern,
            case_insensitive,
            multi_line,
            dot_matches_new_line,
        } => {
            let flags: String = [
                (*case_insensitive, 'i'),
                (*multi_line, 'm'),
                (*dot_matches_new_line, 's'),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| *f)
            .collect();
            if flags.is_empty() {
                two_valued(format!("regexp_like({col}, {})", quote_str(pattern)))
            } else {
                two_valued(format!(
                    "regexp_like({col}, {}, {})",
                    quote_str(pattern),
                    quote_str(&flags)
                ))
            }
        }
        Test::Cidr { network, prefix } => {
            let net = match network {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => a.to_string(),
            };
            two_valued(format!(
                "cidr_match({col}, {})",
                quote_str(&format!("{net}/{prefix}"))
            ))
        }
        Test::Num { op, value } => {
            let op = match op {
                Cmp::Lt => "<",
                Cmp::Lte => "<=",
                Cmp::Gt => ">",
                Cmp::Gte => ">=",
            };
            two_valued(format!("try_cast({col} AS DOUBLE) {op} {}", number(*value)))
        }
        Test::Null => format!("({col} IS NULL OR {col} = '')"),
        Test::Exists(true) => format!("{col} IS NOT NULL"),
        Test::Exists(false) => format!("{col} IS NULL"),
        Test::FieldRef {
            other,
            position,
            cased,
        } => {
            let (a, b) = (target(&col, *cased), target(&quote_ident(other), *cased));
            two_valued(match position {
                Position::Equals => format!("{a} = {b}"),
                Position::StartsWith => format!("starts_with({a}, {b})"),
                Position::EndsWith => format!("ends_with({a}, {b})"),
                Position::Contains => format!("contains({a}, {b})"),
            })
        }
    }
}

/// A numeric literal DataFusion reads as a number (`Display` of `f64` never uses exponents; non-finite
/// values cannot come from the parser, and compare as NULL → false if they did).
fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "CAST(NULL AS DOUBLE)".to_string()
    }
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;
