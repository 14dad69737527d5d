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
//! - `Keyword` tests the `_values` column (all string values of the event, newline-joined): a substring
//!   keyword is `contains`; any other keyword pattern is a multi-line regular expression anchored at value
//!   boundaries (`^…$` per line), wildcards not crossing a newline.
//!
//! String literals escape `'` by doubling it; DataFusion's default (generic) dialect takes backslashes
//! literally.

use std::net::IpAddr;

use crate::sigma::ir::{Cmp, Expr, Pattern, Piece, Position, Test};

/// The column holding all string values of an event, newline-joined (keyword searches).
pub const VALUES_COLUMN: &str = "_values";

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
        Expr::Keyword { pattern, cased } => keyword_sql(pattern, *cased),
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

fn keyword_sql(pattern: &Pattern, cased: bool) -> String {
    let col = quote_ident(VALUES_COLUMN);
    match pattern.0.as_slice() {
        [Piece::AnyMany, Piece::Lit(l), Piece::AnyMany] => two_valued(format!(
            "contains({}, {})",
            target(&col, cased),
            quote_str(&fold(l, cased))
        )),
        [Piece::AnyMany] => format!("{col} IS NOT NULL"),
        pieces => {
            // Some value (one line of `_values`) matches the whole pattern: anchored at line boundaries,
            // `.` not crossing a newline; a leading/trailing `*` is simply an unanchored end.
            let (start, end) = (
                pieces.first() == Some(&Piece::AnyMany),
                pieces.last() == Some(&Piece::AnyMany),
            );
            let inner = &pieces[usize::from(start)..pieces.len() - usize::from(end)];
            let mut re = String::from(if start { "" } else { "^" });
            for p in inner {
                match p {
                    Piece::Lit(l) => re.push_str(&regex::escape(l)),
                    Piece::AnyMany => re.push_str(".*"),
                    Piece::AnyOne => re.push('.'),
                }
            }
            if !end {
                re.push('$');
            }
            let flags = if cased { "m" } else { "im" };
            two_valued(format!(
                "regexp_like({col}, {}, {})",
                quote_str(&re),
                quote_str(flags)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::ir::Pattern;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn f(field: &str, test: Test) -> Expr {
        Expr::Field {
            field: field.to_string(),
            test,
        }
    }

    fn s(pieces: Vec<Piece>, cased: bool) -> Test {
        Test::Str {
            pattern: Pattern::new(pieces),
            cased,
        }
    }

    fn lit(x: &str) -> Piece {
        Piece::Lit(x.to_string())
    }

    use Piece::{AnyMany as M, AnyOne as O};

    #[test]
    fn equals_is_lower_cased_and_two_valued() {
        assert_eq!(
            expr_to_sql(&f("image", s(vec![lit("C:\\Cmd.EXE")], false))),
            "coalesce(lower(image) = 'c:\\cmd.exe', false)"
        );
    }

    #[test]
    fn caseless_equality_compares_the_column_itself() {
        assert_eq!(
            expr_to_sql(&f("EventID", s(vec![lit("4688")], false))),
            "coalesce(\"EventID\" = '4688', false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", s(vec![lit("-")], false))),
            "coalesce(a = '-', false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", s(vec![lit("0x1F")], false))),
            "coalesce(lower(a) = '0x1f', false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", s(vec![lit("ß")], false))),
            "coalesce(lower(a) = 'ß', false)"
        );
        assert!(is_caseless("4688 -/_") && !is_caseless("Ab") && !is_caseless("é"));
    }

    #[test]
    fn cased_compares_the_column_itself() {
        assert_eq!(
            expr_to_sql(&f("image", s(vec![lit("IEX")], true))),
            "coalesce(image = 'IEX', false)"
        );
    }

    #[test]
    fn prefix_suffix_substring_use_string_functions() {
        assert_eq!(
            expr_to_sql(&f("a", s(vec![lit("X"), M], false))),
            "coalesce(starts_with(lower(a), 'x'), false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", s(vec![M, lit("\\X.exe")], false))),
            "coalesce(ends_with(lower(a), '\\x.exe'), false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", s(vec![M, lit("it's")], true))),
            "coalesce(ends_with(a, 'it''s'), false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", s(vec![M, lit("Mimi"), M], false))),
            "coalesce(contains(lower(a), 'mimi'), false)"
        );
    }

    #[test]
    fn globs_use_like_with_escapes() {
        assert_eq!(
            expr_to_sql(&f(
                "a",
                s(vec![lit("C:\\100%_"), O, lit("x"), M, lit("Y")], false)
            )),
            "coalesce(lower(a) LIKE 'c:\\\\100\\%\\__x%y' ESCAPE '\\', false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", s(vec![M, lit("a"), M, lit("b"), M], true))),
            "coalesce(a LIKE '%a%b%' ESCAPE '\\', false)"
        );
    }

    #[test]
    fn empty_and_any_patterns() {
        assert_eq!(
            expr_to_sql(&f("a", s(vec![], false))),
            "coalesce(a = '', false)"
        );
        assert_eq!(expr_to_sql(&f("a", s(vec![M], false))), "a IS NOT NULL");
    }

    #[test]
    fn identifiers_are_quoted_unless_plain_lower_case() {
        assert_eq!(quote_ident("image"), "image");
        assert_eq!(quote_ident("_x9"), "_x9");
        assert_eq!(quote_ident("Image"), "\"Image\"");
        assert_eq!(quote_ident("process.cmd_line"), "\"process.cmd_line\"");
        assert_eq!(quote_ident("9lives"), "\"9lives\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(
            expr_to_sql(&f("CommandLine", s(vec![lit("x")], false))),
            "coalesce(lower(\"CommandLine\") = 'x', false)"
        );
    }

    #[test]
    fn regex_renders_flags_only_when_set() {
        let re = |i, m, s| Test::Re {
            pattern: "^a'b\\d+".into(),
            case_insensitive: i,
            multi_line: m,
            dot_matches_new_line: s,
        };
        assert_eq!(
            expr_to_sql(&f("a", re(false, false, false))),
            "coalesce(regexp_like(a, '^a''b\\d+'), false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", re(true, false, true))),
            "coalesce(regexp_like(a, '^a''b\\d+', 'is'), false)"
        );
        assert_eq!(
            expr_to_sql(&f("a", re(true, true, true))),
            "coalesce(regexp_like(a, '^a''b\\d+', 'ims'), false)"
        );
    }

    #[test]
    fn cidr_calls_the_udf() {
        let t = Test::Cidr {
            network: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
            prefix: 8,
        };
        assert_eq!(
            expr_to_sql(&f("dst_ip", t)),
            "coalesce(cidr_match(dst_ip, '10.0.0.0/8'), false)"
        );
        let t = Test::Cidr {
            network: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
            prefix: 10,
        };
        assert_eq!(
            expr_to_sql(&f("dst_ip", t)),
            "coalesce(cidr_match(dst_ip, 'fe80::/10'), false)"
        );
    }

    #[test]
    fn numbers_compare_after_try_cast() {
        assert_eq!(
            expr_to_sql(&f(
                "n",
                Test::Num {
                    op: Cmp::Gte,
                    value: 1024.0
                }
            )),
            "coalesce(try_cast(n AS DOUBLE) >= 1024, false)"
        );
        assert_eq!(
            expr_to_sql(&f(
                "n",
                Test::Num {
                    op: Cmp::Lt,
                    value: -0.5
                }
            )),
            "coalesce(try_cast(n AS DOUBLE) < -0.5, false)"
        );
        assert_eq!(
            expr_to_sql(&f(
                "n",
                Test::Num {
                    op: Cmp::Lte,
                    value: 1e20
                }
            )),
            "coalesce(try_cast(n AS DOUBLE) <= 100000000000000000000, false)"
        );
        assert_eq!(
            expr_to_sql(&f(
                "n",
                Test::Num {
                    op: Cmp::Gt,
                    value: 3.0
                }
            )),
            "coalesce(try_cast(n AS DOUBLE) > 3, false)"
        );
    }

    #[test]
    fn null_and_exists() {
        assert_eq!(expr_to_sql(&f("a", Test::Null)), "(a IS NULL OR a = '')");
        assert_eq!(expr_to_sql(&f("a", Test::Exists(true))), "a IS NOT NULL");
        assert_eq!(expr_to_sql(&f("a", Test::Exists(false))), "a IS NULL");
    }

    #[test]
    fn field_references_follow_case_rules_and_position() {
        let fr = |position, cased| Test::FieldRef {
            other: "Image".into(),
            position,
            cased,
        };
        assert_eq!(
            expr_to_sql(&f("target", fr(Position::Equals, false))),
            "coalesce(lower(target) = lower(\"Image\"), false)"
        );
        assert_eq!(
            expr_to_sql(&f("target", fr(Position::Equals, true))),
            "coalesce(target = \"Image\", false)"
        );
        assert_eq!(
            expr_to_sql(&f("target", fr(Position::StartsWith, false))),
            "coalesce(starts_with(lower(target), lower(\"Image\")), false)"
        );
        assert_eq!(
            expr_to_sql(&f("target", fr(Position::EndsWith, false))),
            "coalesce(ends_with(lower(target), lower(\"Image\")), false)"
        );
        assert_eq!(
            expr_to_sql(&f("target", fr(Position::Contains, true))),
            "coalesce(contains(target, \"Image\"), false)"
        );
    }

    #[test]
    fn keywords_search_the_values_column() {
        let k = |pieces, cased| Expr::Keyword {
            pattern: Pattern::new(pieces),
            cased,
        };
        assert_eq!(
            expr_to_sql(&k(vec![M, lit("Event::Clear"), M], false)),
            "coalesce(contains(lower(_values), 'event::clear'), false)"
        );
        assert_eq!(
            expr_to_sql(&k(vec![M, lit("X"), M], true)),
            "coalesce(contains(_values, 'X'), false)"
        );
        assert_eq!(
            expr_to_sql(&k(vec![M, lit("sekurlsa::"), M, lit("pass"), M], false)),
            "coalesce(regexp_like(_values, 'sekurlsa::.*pass', 'im'), false)"
        );
        assert_eq!(
            expr_to_sql(&k(vec![lit("a.b"), O], true)),
            "coalesce(regexp_like(_values, '^a\\.b.$', 'm'), false)"
        );
        assert_eq!(
            expr_to_sql(&k(vec![M, lit("x"), O], false)),
            "coalesce(regexp_like(_values, 'x.$', 'im'), false)"
        );
        assert_eq!(
            expr_to_sql(&k(vec![lit("run"), M], false)),
            "coalesce(regexp_like(_values, '^run', 'im'), false)"
        );
    }

    #[test]
    fn boolean_structure_and_negation() {
        let a = f("a", s(vec![lit("1")], false));
        let b = f("b", Test::Null);
        let e = Expr::And(vec![
            a.clone(),
            Expr::Not(Box::new(Expr::Or(vec![b.clone(), Expr::True]))),
        ]);
        assert_eq!(
            expr_to_sql(&e),
            "(coalesce(a = '1', false) AND NOT ((b IS NULL OR b = '') OR TRUE))"
        );
        assert_eq!(expr_to_sql(&Expr::Or(vec![])), "FALSE");
        assert_eq!(expr_to_sql(&Expr::And(vec![])), "TRUE");
    }

    #[test]
    fn rule_sql_is_one_condition_per_line() {
        let sel = Expr::And(vec![
            f("image", s(vec![M, lit("\\whoami.exe")], false)),
            Expr::Or(vec![
                f("cmd", s(vec![M, lit("/all"), M], false)),
                f("cmd", s(vec![M, lit("/priv"), M], false)),
            ]),
        ]);
        let e = Expr::And(vec![
            sel,
            Expr::Not(Box::new(Expr::Or(vec![
                f("user", Test::Null),
                f("x", Test::Exists(false)),
            ]))),
        ]);
        let e = crate::sigma::parse::simplify(e);
        assert_eq!(
            rule_to_sql(&e, "*"),
            "SELECT *\nFROM events\nWHERE\n  coalesce(ends_with(lower(image), '\\whoami.exe'), false)\n  AND (\n    coalesce(contains(lower(cmd), '/all'), false)\n    OR coalesce(contains(lower(cmd), '/priv'), false)\n  )\n  AND NOT (\n    (\"user\" IS NULL OR \"user\" = '')\n    OR x IS NULL\n  )"
        );
        assert_eq!(
            rule_to_sql(
                &Expr::Not(Box::new(Expr::Not(Box::new(f("a", Test::Null))))),
                "id"
            ),
            "SELECT id\nFROM events\nWHERE\n  NOT (NOT (a IS NULL OR a = ''))"
        );
        assert_eq!(
            expr_to_sql(&Expr::Not(Box::new(f("a", Test::Exists(true))))),
            "NOT (a IS NOT NULL)"
        );
    }
}
