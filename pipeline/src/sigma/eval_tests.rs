use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use super::*;
use crate::sigma::ir::{Expr, Pattern, Piece, Test};

fn batch() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("event_id", DataType::Int64, true),
        Field::new("image", DataType::Utf8, true),
        Field::new("command_line", DataType::Utf8, true),
        Field::new("parent_image", DataType::Utf8, true),
        Field::new("ip", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![
                Some(1),
                Some(1),
                Some(4688),
                Some(3),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some(r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"),
                Some(r"C:\Windows\System32\cmd.exe"),
                Some(r"C:\Windows\System32\CMD.EXE"),
                None,
                Some(""),
            ])),
            Arc::new(StringArray::from(vec![
                Some("powershell -enc SQBFAFgA"),
                Some("cmd /c whoami"),
                Some("cmd.exe /C WhoAmI /all"),
                None,
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some(r"C:\Windows\explorer.exe"),
                Some(r"C:\Windows\System32\cmd.exe"),
                Some(r"C:\Program Files\Office\WINWORD.EXE"),
                None,
                None,
            ])),
            Arc::new(StringArray::from(vec![
                None,
                None,
                None,
                Some("10.1.2.3"),
                Some("::ffff:192.168.1.9"),
            ])),
        ],
    )
    .unwrap()
}

fn field(field: &str, test: Test) -> Expr {
    Expr::Field {
        field: field.into(),
        test,
    }
}

fn s(pieces: Vec<Piece>) -> Test {
    Test::Str {
        pattern: Pattern::new(pieces),
        cased: false,
    }
}

fn lit(s: &str) -> Piece {
    Piece::Lit(s.into())
}

/// `image|fieldref: parent_image`.
fn image_is_parent_image() -> Expr {
    field(
        "image",
        Test::FieldRef {
            other: "parent_image".into(),
            position: Position::Equals,
            cased: false,
        },
    )
}

/// Rows each expression matches, one rule per expression with no logsource condition.
fn matches(exprs: &[Expr]) -> Vec<Vec<u32>> {
    let inputs: Vec<RuleInput> = exprs
        .iter()
        .map(|e| RuleInput {
            variants: vec![(&Expr::True, e)],
        })
        .collect();
    let (set, errors) = RuleSet::compile(&inputs);
    assert!(errors.iter().all(Option::is_none), "{errors:?}");
    let mut out = vec![Vec::new(); exprs.len()];
    for (rule, rows) in set.evaluate(&batch()) {
        out[rule] = rows;
    }
    out
}

#[test]
fn literal_positions_are_case_insensitive_and_share_one_scan() {
    use Piece::AnyMany;
    let got = matches(&[
        field("image", s(vec![AnyMany, lit(r"\cmd.exe")])),
        field("command_line", s(vec![AnyMany, lit("WHOAMI"), AnyMany])),
        field("command_line", s(vec![lit("cmd"), AnyMany])),
        field("image", s(vec![lit(r"c:\windows\system32\cmd.exe")])),
        field("event_id", s(vec![lit("4688")])),
    ]);
    assert_eq!(
        got,
        vec![vec![1, 2], vec![1, 2], vec![1, 2], vec![1, 2], vec![2]]
    );
}

#[test]
fn cased_literals_match_exactly() {
    let got = matches(&[field(
        "command_line",
        Test::Str {
            pattern: Pattern::new([Piece::AnyMany, lit("WhoAmI"), Piece::AnyMany]),
            cased: true,
        },
    )]);
    assert_eq!(got, vec![vec![2]]);
}

#[test]
fn not_is_true_where_the_field_is_missing() {
    // Sigma: `selection and not filter` holds for an event without the filter's field.
    let got = matches(&[Expr::And(vec![
        field("event_id", s(vec![Piece::AnyMany])),
        Expr::Not(Box::new(field(
            "parent_image",
            s(vec![Piece::AnyMany, lit(r"\explorer.exe")]),
        ))),
    ])]);
    assert_eq!(got, vec![vec![1, 2, 3]]);
}

#[test]
fn globs_regexes_and_per_row_tests() {
    let got = matches(&[
        field(
            "image",
            s(vec![
                Piece::AnyMany,
                lit(r"\c"),
                Piece::AnyOne,
                lit("d.exe"),
            ]),
        ),
        field(
            "command_line",
            Test::Re {
                pattern: r"-enc\s+[A-Za-z0-9+/=]{8}".into(),
                case_insensitive: false,
                multi_line: false,
                dot_matches_new_line: false,
            },
        ),
        field(
            "ip",
            Test::Cidr {
                network: "10.0.0.0".parse().unwrap(),
                prefix: 8,
            },
        ),
        field(
            "ip",
            Test::Cidr {
                network: "192.168.0.0".parse().unwrap(),
                prefix: 16,
            },
        ),
        field(
            "event_id",
            Test::Num {
                op: Cmp::Gt,
                value: 3.0,
            },
        ),
        field("image", Test::Null),
        field("ip", Test::Exists(false)),
        image_is_parent_image(),
        field("image", s(vec![])),
    ]);
    assert_eq!(
        got,
        vec![
            vec![1, 2],
            vec![0],
            vec![3],
            vec![4],
            vec![2],
            vec![3, 4],
            vec![0, 1, 2],
            vec![1],
            vec![4],
        ]
    );
}

#[test]
fn logsource_conditions_gate_rules_and_are_shared() {
    let sysmon = field("event_id", s(vec![lit("1")]));
    let security = field("event_id", s(vec![lit("4688")]));
    let detection = field("image", s(vec![Piece::AnyMany, lit(r"\cmd.exe")]));
    let other = field("event_id", s(vec![lit("7")]));
    let rules = [
        RuleInput {
            variants: vec![(&sysmon, &detection)],
        },
        RuleInput {
            variants: vec![(&sysmon, &detection), (&security, &detection)],
        },
        RuleInput {
            variants: vec![(&other, &detection)],
        },
    ];
    let (set, errors) = RuleSet::compile(&rules);
    assert!(errors.iter().all(Option::is_none));
    assert_eq!(
        set.whens.len(),
        3,
        "identical logsource conditions are compiled once"
    );
    assert!(set.has_column("image"));
    assert_eq!(set.evaluate(&batch()), vec![(0, vec![1]), (1, vec![1, 2])]);
}

#[test]
fn a_bad_rule_is_refused_alone() {
    let bad = field(
        "image",
        Test::Re {
            pattern: "(unclosed".into(),
            case_insensitive: false,
            multi_line: false,
            dot_matches_new_line: false,
        },
    );
    let good = field("image", s(vec![Piece::AnyMany, lit(".exe")]));
    let (set, errors) = RuleSet::compile(&[
        RuleInput {
            variants: vec![(&Expr::True, &bad)],
        },
        RuleInput {
            variants: vec![(&Expr::True, &good)],
        },
    ]);
    let error = errors[0].as_ref().unwrap();
    assert!(error.to_string().contains("unclosed"), "{error}");
    assert_eq!(error.kind(), crate::sigma::error::RefusalKind::Value);
    assert!(errors[1].is_none());
    assert_eq!(set.evaluate(&batch()), vec![(1, vec![0, 1, 2])]);
}

#[test]
fn rows_split_over_threads_match_as_on_one_thread() {
    use Piece::AnyMany;
    let exprs = [
        field("image", s(vec![AnyMany, lit(r"\cmd.exe")])),
        field("command_line", s(vec![AnyMany, lit("whoami"), AnyMany])),
        Expr::Not(Box::new(field("ip", Test::Exists(true)))),
        image_is_parent_image(),
        field("parent_image", s(vec![AnyMany, lit("never there")])),
    ];
    let inputs: Vec<RuleInput> = exprs
        .iter()
        .map(|e| RuleInput {
            variants: vec![(&Expr::True, e)],
        })
        .collect();
    // 5 rows × 308 = 1,540: parts of 514, 514 and 512 rows on 3 threads, cut inside the 5-row pattern.
    let one = batch();
    let big =
        datafusion::arrow::compute::concat_batches(&one.schema(), &vec![one.clone(); 308]).unwrap();
    let (single, _) = RuleSet::compile(&inputs);
    let (split, _) = RuleSet::compile(&inputs);
    let split = split.with_threads(3);
    let expected: Vec<(usize, Vec<u32>)> = single
        .evaluate(&one)
        .into_iter()
        .map(|(rule, rows)| {
            let all = (0..308u32).flat_map(|copy| rows.iter().map(move |r| copy * 5 + r));
            (rule, all.collect())
        })
        .collect();
    assert_eq!(expected.len(), 4, "four rules match in the 5-row batch");
    assert_eq!(single.evaluate(&big), expected);
    assert_eq!(split.evaluate(&big), expected);
}
