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
    // Other patterns: a regular expression anchored at value boundaries (U+001F ends every value).
    assert_eq!(
        expr_to_sql(&k(vec![M, lit("sekurlsa::"), M, lit("pass"), M], false)),
        "coalesce(regexp_like(_values, 'sekurlsa::[^\\x1f]*pass', 'i'), false)"
    );
    assert_eq!(
        expr_to_sql(&k(vec![lit("a.b"), O], true)),
        "coalesce(regexp_like(_values, '(?:^|\\x1f)a\\.b[^\\x1f]\\x1f'), false)"
    );
    assert_eq!(
        expr_to_sql(&k(vec![M, lit("x"), O], false)),
        "coalesce(regexp_like(_values, 'x[^\\x1f]\\x1f', 'i'), false)"
    );
    assert_eq!(
        expr_to_sql(&k(vec![lit("run"), M], false)),
        "coalesce(regexp_like(_values, '(?:^|\\x1f)run', 'i'), false)"
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
