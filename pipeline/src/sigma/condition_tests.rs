use super::*;
use crate::sigma::ir::{Pattern, Test};

fn id(s: &str) -> Cond {
    Cond::Ident(s.to_string())
}

fn leaf(name: &str) -> Expr {
    Expr::Field {
        field: name.to_string(),
        test: Test::Str {
            pattern: Pattern::literal("x"),
            cased: false,
        },
    }
}

#[test]
fn and_binds_tighter_than_or() {
    assert_eq!(
        parse_condition("a or b and c").unwrap(),
        Cond::Or(vec![id("a"), Cond::And(vec![id("b"), id("c")])])
    );
    assert_eq!(
        parse_condition("a and b or c").unwrap(),
        Cond::Or(vec![Cond::And(vec![id("a"), id("b")]), id("c")])
    );
}

#[test]
fn not_binds_tighter_than_and() {
    assert_eq!(
        parse_condition("not a and b").unwrap(),
        Cond::And(vec![Cond::Not(Box::new(id("a"))), id("b")])
    );
    assert_eq!(
        parse_condition("not not a").unwrap(),
        Cond::Not(Box::new(Cond::Not(Box::new(id("a")))))
    );
}

#[test]
fn parentheses_override_precedence() {
    assert_eq!(
        parse_condition("a and (b or c)").unwrap(),
        Cond::And(vec![id("a"), Cond::Or(vec![id("b"), id("c")])])
    );
    assert_eq!(
        parse_condition("not (a or b)").unwrap(),
        Cond::Not(Box::new(Cond::Or(vec![id("a"), id("b")])))
    );
}

#[test]
fn selectors_bind_tighter_than_not() {
    assert_eq!(
        parse_condition("sel and not 1 of filter_*").unwrap(),
        Cond::And(vec![
            id("sel"),
            Cond::Not(Box::new(Cond::Of {
                quantifier: Quantifier::Any,
                pattern: Some("filter_*".into())
            }))
        ])
    );
    assert_eq!(
        parse_condition("all of them").unwrap(),
        Cond::Of {
            quantifier: Quantifier::All,
            pattern: None
        }
    );
    assert_eq!(
        parse_condition("any of sel*").unwrap(),
        Cond::Of {
            quantifier: Quantifier::Any,
            pattern: Some("sel*".into())
        }
    );
    assert_eq!(
        parse_condition("2 of sel*").unwrap(),
        Cond::Of {
            quantifier: Quantifier::AtLeast(2),
            pattern: Some("sel*".into())
        }
    );
}

#[test]
fn identifiers_may_contain_dashes_and_digits() {
    assert_eq!(
        parse_condition("selection-1 or sel_2").unwrap(),
        Cond::Or(vec![id("selection-1"), id("sel_2")])
    );
}

#[test]
fn malformed_conditions_are_errors() {
    for bad in [
        "",
        "a and",
        "(a",
        "a)",
        "a b",
        "not",
        "1 of",
        "a or or b",
        "sel*",
        "0 of sel*",
        "x of sel",
        "a & b",
        "and",
    ] {
        assert!(parse_condition(bad).is_err(), "{bad:?} should fail");
    }
}

#[test]
fn aggregation_pipe_is_refused_as_deprecated() {
    let e = parse_condition("selection | count(TargetUserName) by Workstation > 3").unwrap_err();
    assert!(e.to_string().contains("deprecated"), "{e}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let s = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(
        parse_condition(&s)
            .unwrap_err()
            .to_string()
            .contains("deeper")
    );
    let s = format!("{}a", "not ".repeat(10_000));
    assert!(
        parse_condition(&s)
            .unwrap_err()
            .to_string()
            .contains("deeper")
    );
}

#[test]
fn glob_matches_whole_identifier() {
    assert!(glob_match("sel*", "selection"));
    assert!(glob_match("*tion", "selection"));
    assert!(glob_match("s*l*n", "selection"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("sel", "selection"));
    assert!(!glob_match("filter*", "selection"));
    assert!(!glob_match("*x*", "selection"));
}

fn idents() -> Vec<(String, Expr)> {
    ["selection_a", "selection_b", "filter_main", "_private"]
        .iter()
        .map(|n| (n.to_string(), leaf(n)))
        .collect()
}

#[test]
fn one_of_pattern_is_or_of_matching_identifiers_in_order() {
    let e = resolve(&parse_condition("1 of selection_*").unwrap(), &idents()).unwrap();
    assert_eq!(e, Expr::Or(vec![leaf("selection_a"), leaf("selection_b")]));
}

#[test]
fn all_of_them_skips_underscore_identifiers() {
    let e = resolve(&parse_condition("all of them").unwrap(), &idents()).unwrap();
    assert_eq!(
        e,
        Expr::And(vec![
            leaf("selection_a"),
            leaf("selection_b"),
            leaf("filter_main")
        ])
    );
    let e = resolve(&parse_condition("1 of _priv*").unwrap(), &idents()).unwrap();
    assert_eq!(e, Expr::Or(vec![leaf("_private")]));
}

#[test]
fn at_least_n_of_expands_to_combinations() {
    let e = resolve(&parse_condition("2 of them").unwrap(), &idents()).unwrap();
    let (a, b, f) = (
        leaf("selection_a"),
        leaf("selection_b"),
        leaf("filter_main"),
    );
    assert_eq!(
        e,
        Expr::Or(vec![
            Expr::And(vec![a.clone(), b.clone()]),
            Expr::And(vec![a, f.clone()]),
            Expr::And(vec![b, f]),
        ])
    );
    assert!(resolve(&parse_condition("4 of them").unwrap(), &idents()).is_err());
}

#[test]
fn undefined_identifier_and_empty_selector_are_errors() {
    let e = resolve(&parse_condition("selection_a and nope").unwrap(), &idents()).unwrap_err();
    assert!(e.to_string().contains("`nope`"), "{e}");
    let e = resolve(&parse_condition("1 of keywords*").unwrap(), &idents()).unwrap_err();
    assert!(e.to_string().contains("matches no"), "{e}");
}

#[test]
fn combinations_are_lexicographic() {
    assert_eq!(
        combinations(4, 2),
        vec![
            vec![0, 1],
            vec![0, 2],
            vec![0, 3],
            vec![1, 2],
            vec![1, 3],
            vec![2, 3]
        ]
    );
    assert_eq!(combinations(3, 3), vec![vec![0, 1, 2]]);
    assert_eq!(binomial(10, 3), 120);
}
