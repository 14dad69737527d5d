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

/// Rows split over threads match as on one thread, and a set compiled on one thread as on several.
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
    // The one-thread set is also compiled on one thread (its automata built there).
    let (single, _) = RuleSet::compile_on(&inputs, 1);
    let (split, _) = RuleSet::compile_on(&inputs, 3);
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

/// A rule set of one variant per rule: (logsource condition, detection).
fn rule_set(rules: &[(&Expr, &Expr)]) -> RuleSet {
    let inputs: Vec<RuleInput> = rules
        .iter()
        .map(|&(when, detection)| RuleInput {
            variants: vec![(when, detection)],
        })
        .collect();
    let (set, errors) = RuleSet::compile(&inputs);
    assert!(errors.iter().all(Option::is_none), "{errors:?}");
    set
}

/// The bits of `column`'s case-insensitive literal `text` (kind `Contains`) after scanning `batch()`.
fn contains_bits(set: &RuleSet, column: &str, text: &str) -> Option<Vec<usize>> {
    let plan = set.columns.iter().find(|c| c.name == column).unwrap();
    let slot = plan.insensitive.slot(text, Kind::Contains).unwrap();
    set.scan(&batch()).slots[slot]
        .as_ref()
        .map(|bits| bits.ones_iter().collect())
}

#[test]
fn a_columns_literals_are_scanned_only_on_the_rows_of_their_rules_conditions() {
    use Piece::AnyMany;
    let sysmon = field("event_id", s(vec![lit("1")]));
    let security = field("event_id", s(vec![lit("4688")]));
    let whoami = field("command_line", s(vec![AnyMany, lit("whoami"), AnyMany]));
    let cmd = field("image", s(vec![AnyMany, lit(r"\cmd.exe")]));
    // Rows 1 (event 1) and 2 (event 4688) hold `whoami` and end in `\cmd.exe`.
    let set = rule_set(&[(&sysmon, &whoami), (&security, &cmd)]);
    assert_eq!(
        contains_bits(&set, "command_line", "whoami"),
        Some(vec![1]),
        "row 2 is not a Sysmon event: its command line is not scanned"
    );
    assert_eq!(set.evaluate(&batch()), vec![(0, vec![1]), (1, vec![2])]);

    // The same literal in a rule of the other condition too: both rows are scanned, each rule still
    // matches only its own.
    let set = rule_set(&[(&sysmon, &whoami), (&security, &whoami)]);
    assert_eq!(
        contains_bits(&set, "command_line", "whoami"),
        Some(vec![1, 2])
    );
    assert_eq!(set.evaluate(&batch()), vec![(0, vec![1]), (1, vec![2])]);

    // A column's scoped literals share one automaton: another literal's rule widens the rows scanned
    // for all of them, and each rule still matches only its own.
    let foo = field("command_line", s(vec![AnyMany, lit("foo"), AnyMany]));
    let set = rule_set(&[(&sysmon, &whoami), (&security, &foo)]);
    assert_eq!(
        contains_bits(&set, "command_line", "whoami"),
        Some(vec![1, 2])
    );
    assert_eq!(set.evaluate(&batch()), vec![(0, vec![1])]);

    // A rule without a condition reads the literal on every row.
    let set = rule_set(&[(&sysmon, &whoami), (&Expr::True, &whoami)]);
    assert_eq!(
        contains_bits(&set, "command_line", "whoami"),
        Some(vec![1, 2])
    );
    assert_eq!(set.evaluate(&batch()), vec![(0, vec![1]), (1, vec![1, 2])]);

    // A literal the conditions test is scanned on every row, whatever the detections.
    let set = rule_set(&[(&sysmon, &field("event_id", s(vec![lit("4688")])))]);
    let plan = set.columns.iter().find(|c| c.name == "event_id").unwrap();
    let scoped: Vec<Option<usize>> = plan
        .insensitive
        .groups
        .iter()
        .map(|g| g.whens.as_ref().map(Vec::len))
        .collect();
    assert_eq!(scoped, vec![None, Some(1)], "`1` everywhere, `4688` scoped");
    assert!(set.evaluate(&batch()).is_empty());
}

#[test]
fn a_negated_literal_is_judged_only_where_it_was_scanned() {
    use Piece::AnyMany;
    let sysmon = field("event_id", s(vec![lit("1")]));
    let security = field("event_id", s(vec![lit("4688")]));
    let cmd = field("image", s(vec![AnyMany, lit(r"\cmd.exe")]));
    let not_cmd = Expr::Not(Box::new(cmd.clone()));
    // `\cmd.exe` is scanned on rows 0–1 only (the Sysmon rules'); row 2 (4688) ends in `\CMD.EXE` but
    // its bits stay unset. No rule may read them there as "absent".
    let set = rule_set(&[(&sysmon, &not_cmd), (&sysmon, &cmd)]);
    assert_eq!(set.evaluate(&batch()), vec![(0, vec![0]), (1, vec![1])]);
    // With a rule of the other condition negating it too, row 2 is scanned and judged.
    let set = rule_set(&[(&sysmon, &not_cmd), (&security, &not_cmd)]);
    assert_eq!(set.evaluate(&batch()), vec![(0, vec![0])]);
}

#[test]
fn the_simd_presence_test_changes_no_match() {
    use Piece::AnyMany;
    let exprs = [
        field("command_line", s(vec![AnyMany, lit("WHOAMI"), AnyMany])),
        field("command_line", s(vec![lit("cmd.exe"), AnyMany])),
        field("command_line", s(vec![AnyMany, lit("/all")])),
        field("image", s(vec![lit(r"c:\windows\system32\cmd.exe")])),
        field("image", s(vec![AnyMany, lit("system32"), AnyMany])),
        field(
            "command_line",
            Test::Str {
                pattern: Pattern::new([AnyMany, lit("WhoAmI"), AnyMany]),
                cased: true,
            },
        ),
        // Too short for the SIMD test: its group is scanned by the automaton alone.
        field("parent_image", s(vec![AnyMany, lit("ex"), AnyMany])),
        // A scoped group with its own test, beside the column's every-row group.
        field(
            "command_line",
            s(vec![AnyMany, lit("whoami /all"), AnyMany]),
        ),
    ];
    let sysmon = field("event_id", s(vec![lit("1")]));
    let inputs: Vec<RuleInput> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| RuleInput {
            variants: vec![(
                if i == exprs.len() - 1 {
                    &sysmon
                } else {
                    &Expr::True
                },
                e,
            )],
        })
        .collect();
    let (with, _) = RuleSet::compile(&inputs);
    let (mut without, _) = RuleSet::compile(&inputs);
    let mut tested = 0;
    for plan in &mut without.columns {
        for group in plan
            .insensitive
            .groups
            .iter_mut()
            .chain(plan.sensitive.groups.iter_mut())
        {
            tested += usize::from(group.presence.take().is_some());
        }
    }
    if crate::presence::simd() {
        assert_eq!(
            tested, 4,
            "command_line's every-row and scoped groups, its cased group and image have the test"
        );
    }
    // Upper case in a value short enough for the test's Rabin-Karp path (`WHOAMI /ALL`) and in a long
    // one (Teddy's path); non-ASCII text, which no automaton folds (`İ` is not `i`).
    let rows = datafusion::arrow::compute::concat_batches(
        &batch().schema(),
        &[
            batch(),
            RecordBatch::try_new(
                batch().schema(),
                vec![
                    Arc::new(Int64Array::from(vec![Some(1), Some(1)])),
                    Arc::new(StringArray::from(vec![
                        Some(r"C:\WINDOWS\SYSTEM32\CMD.EXE"),
                        None,
                    ])),
                    Arc::new(StringArray::from(vec![
                        Some("CMD.EXE /c WHOAMİ /ALL"),
                        Some("WHOAMI /ALL"),
                    ])),
                    Arc::new(StringArray::from(vec![Some("EXPLORER.EXE"), None])),
                    Arc::new(StringArray::from(vec![None::<&str>, None])),
                ],
            )
            .unwrap(),
        ],
    )
    .unwrap();
    let expected = vec![
        (0, vec![1, 2, 6]),
        (1, vec![2, 5]),
        (2, vec![2, 5, 6]),
        (3, vec![1, 2, 5]),
        (4, vec![0, 1, 2, 5]),
        (5, vec![2]),
        (6, vec![0, 1, 2, 5]),
        (7, vec![6]),
    ];
    assert_eq!(without.evaluate(&rows), expected);
    assert_eq!(with.evaluate(&rows), expected);
}
