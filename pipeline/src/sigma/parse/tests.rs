//! Parser tests: Sigma strings and escapes, detection structure, and whole documents (metadata, collections,
//! hand-offs). The helpers here are shared with `modifier_tests`.

use super::detection::{SPiece, parse_sigma_string};
use super::*;
use crate::sigma::ir::{Expr, Level, Logsource, Pattern, Piece, Test};

use Piece::AnyMany as M;

pub(super) fn lit(s: &str) -> Piece {
    Piece::Lit(s.to_string())
}

pub(super) fn field(f: &str, test: Test) -> Expr {
    Expr::Field {
        field: f.to_string(),
        test,
    }
}

pub(super) fn str_test(pieces: Vec<Piece>) -> Test {
    Test::Str {
        pattern: Pattern::new(pieces),
        cased: false,
    }
}

pub(super) fn cased_test(pieces: Vec<Piece>) -> Test {
    Test::Str {
        pattern: Pattern::new(pieces),
        cased: true,
    }
}

pub(super) fn rule_with(
    detection: &str,
    placeholders: &HashMap<String, Vec<String>>,
) -> Result<SigmaRule, Refusal> {
    let indented: String = detection.lines().map(|l| format!("    {l}\n")).collect();
    let text = format!(
        "title: T\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n    product: windows\ndetection:\n{indented}"
    );
    let opts = ParseOptions { placeholders };
    let mut docs = parse_file(&text, &opts).expect("valid YAML");
    assert_eq!(docs.len(), 1);
    match docs.pop().unwrap()? {
        Document::Rule(r) => Ok(r),
        other => panic!("not a rule: {other:?}"),
    }
}

/// The compiled detection of a rule whose detection block is `detection`.
pub(super) fn det(detection: &str) -> Expr {
    match rule_with(detection, &HashMap::new()) {
        Ok(r) => r.detection,
        Err(e) => panic!("refused: {e}"),
    }
}

/// The refusal reason for a detection block.
pub(super) fn refused(detection: &str) -> String {
    match rule_with(detection, &HashMap::new()) {
        Ok(r) => panic!("unexpectedly parsed: {:?}", r.detection),
        Err(e) => e.reason.to_string(),
    }
}

pub(super) fn pieces(raw: &str) -> Vec<SPiece> {
    parse_sigma_string(raw)
}

fn l(s: &str) -> SPiece {
    SPiece::Lit(s.to_string())
}

// ---- escapes ------------------------------------------------------------------------------------

#[test]
fn wildcards_and_escapes_follow_the_specification() {
    assert_eq!(pieces("prog?.exe"), vec![l("prog"), SPiece::One, l(".exe")]);
    assert_eq!(pieces("*\\cmd.exe"), vec![SPiece::Many, l("\\cmd.exe")]);
    assert_eq!(pieces("a\\*b"), vec![l("a*b")]);
    assert_eq!(pieces("a\\?b"), vec![l("a?b")]);
    // `\\*`: a plain backslash followed by a wildcard.
    assert_eq!(pieces("a\\\\*"), vec![l("a\\"), SPiece::Many]);
    // `\\\*`: a plain backslash and a plain star.
    assert_eq!(pieces("a\\\\\\*"), vec![l("a\\*")]);
    // Three or four backslashes are a double backslash.
    assert_eq!(pieces("a\\\\\\\\b"), vec![l("a\\\\b")]);
    assert_eq!(pieces("a\\\\\\b"), vec![l("a\\\\b")]);
    // A backslash before anything else is plain, also at the end.
    assert_eq!(pieces("C:\\Windows\\"), vec![l("C:\\Windows\\")]);
    assert_eq!(pieces(""), vec![]);
}

#[test]
fn escaped_values_compile_to_literal_patterns() {
    assert_eq!(
        det("sel:\n    F: 'a\\*b\\?'\ncondition: sel"),
        field("F", str_test(vec![lit("a*b?")]))
    );
    assert_eq!(
        det("sel:\n    F: 'C:\\Temp\\*'\ncondition: sel"),
        field("F", str_test(vec![lit("C:\\Temp*")]))
    );
    assert_eq!(
        det("sel:\n    F: 'C:\\Temp\\\\*'\ncondition: sel"),
        field("F", str_test(vec![lit("C:\\Temp\\"), M]))
    );
}

// ---- structure ----------------------------------------------------------------------------------

#[test]
fn map_is_and_list_value_is_or() {
    let e = det(
        "sel:\n    EventID:\n        - 517\n        - 1102\n    EventLog: Security\ncondition: sel",
    );
    assert_eq!(
        e,
        Expr::And(vec![
            Expr::Or(vec![
                field("EventID", str_test(vec![lit("517")])),
                field("EventID", str_test(vec![lit("1102")]))
            ]),
            field("EventLog", str_test(vec![lit("Security")])),
        ])
    );
}

#[test]
fn list_of_maps_is_or_of_ands() {
    let e = det(
        "sel:\n    - Image|endswith: '\\a.exe'\n    - Description|contains: 'Test'\n      Company: X\ncondition: sel",
    );
    assert_eq!(
        e,
        Expr::Or(vec![
            field("Image", str_test(vec![M, lit("\\a.exe")])),
            Expr::And(vec![
                field("Description", str_test(vec![M, lit("Test"), M])),
                field("Company", str_test(vec![lit("X")]))
            ]),
        ])
    );
}

#[test]
fn keyword_lists_are_or_of_contains_keywords() {
    let e = det("keywords:\n    - 'event::clear'\n    - 'sekurlsa*'\ncondition: keywords");
    assert_eq!(
        e,
        Expr::Or(vec![
            Expr::Keyword {
                pattern: Pattern::new([M, lit("event::clear"), M]),
                cased: false
            },
            Expr::Keyword {
                pattern: Pattern::new([M, lit("sekurlsa"), M]),
                cased: false
            },
        ])
    );
    let e = det(
        "keywords:\n    '|all':\n        - 'OabVirtualDirectory'\n        - ' -ExternalUrl '\ncondition: keywords",
    );
    assert_eq!(
        e,
        Expr::And(vec![
            Expr::Keyword {
                pattern: Pattern::new([M, lit("OabVirtualDirectory"), M]),
                cased: false
            },
            Expr::Keyword {
                pattern: Pattern::new([M, lit(" -ExternalUrl "), M]),
                cased: false
            },
        ])
    );
    // Explicit position on a keyword is kept.
    let e = det("kw:\n    '|startswith': 'abc'\ncondition: kw");
    assert_eq!(
        e,
        Expr::Keyword {
            pattern: Pattern::new([lit("abc"), M]),
            cased: false
        }
    );
}

#[test]
fn null_empty_numbers_and_booleans() {
    assert_eq!(
        det("f:\n    CommandLine: null\ncondition: f"),
        field("CommandLine", Test::Null)
    );
    assert_eq!(
        det("f:\n    CommandLine: ''\ncondition: f"),
        field("CommandLine", str_test(vec![]))
    );
    assert_eq!(
        det("f:\n    EventID: 4688\ncondition: f"),
        field("EventID", str_test(vec![lit("4688")]))
    );
    assert_eq!(
        det("f:\n    Enabled: true\ncondition: f"),
        field("Enabled", str_test(vec![lit("true")]))
    );
    assert_eq!(
        det("f:\n    Ratio: 1.5\ncondition: f"),
        field("Ratio", str_test(vec![lit("1.5")]))
    );
    // YAML 1.2: `no` is a string, a leading-zero number keeps its spelling, `*` in a number is literal.
    assert_eq!(
        det("f:\n    Flag: no\ncondition: f"),
        field("Flag", str_test(vec![lit("no")]))
    );
    assert_eq!(
        det("f:\n    Mode: 0755\ncondition: f"),
        field("Mode", str_test(vec![lit("0755")]))
    );
    let e = det("f:\n    X:\n        - a\n        - null\ncondition: f");
    assert_eq!(
        e,
        Expr::Or(vec![
            field("X", str_test(vec![lit("a")])),
            field("X", Test::Null)
        ])
    );
}

#[test]
fn condition_list_is_or_and_precedence_is_applied() {
    let a = field("A", str_test(vec![lit("1")]));
    let b = field("B", str_test(vec![lit("2")]));
    let c = field("C", str_test(vec![lit("3")]));
    let e = det("a:\n    A: 1\nb:\n    B: 2\nc:\n    C: 3\ncondition: not a and b or c");
    assert_eq!(
        e,
        Expr::Or(vec![
            Expr::And(vec![Expr::Not(Box::new(a.clone())), b.clone()]),
            c.clone()
        ])
    );
    let e = det("a:\n    A: 1\nb:\n    B: 2\ncondition:\n    - a\n    - b");
    assert_eq!(e, Expr::Or(vec![a.clone(), b.clone()]));
    let e = det(
        "sel_a:\n    A: 1\nsel_b:\n    B: 2\nfilter_c:\n    C: 3\ncondition: all of sel_* and not 1 of filter_*",
    );
    assert_eq!(e, Expr::And(vec![a, b, Expr::Not(Box::new(c))]));
}

#[test]
fn empty_selection_is_true_and_and_is_flattened() {
    let e = det("sel:\n    A: 1\nempty: {}\ncondition: sel and empty");
    assert_eq!(e, field("A", str_test(vec![lit("1")])));
    let e = simplify(Expr::And(vec![
        Expr::And(vec![Expr::True, field("A", Test::Null)]),
        Expr::Or(vec![
            Expr::Or(vec![field("B", Test::Null)]),
            field("C", Test::Null),
        ]),
    ]));
    assert_eq!(
        e,
        Expr::And(vec![
            field("A", Test::Null),
            Expr::Or(vec![field("B", Test::Null), field("C", Test::Null)])
        ])
    );
    assert_eq!(
        simplify(Expr::Or(vec![field("A", Test::Null), Expr::True])),
        Expr::True
    );
}

#[test]
fn structural_errors_are_refused_with_reasons() {
    assert!(refused("sel:\n    A: 1\ncondition: sel and nope").contains("`nope`"));
    assert!(refused("sel:\n    A: 1\ncondition: sel | count() by A > 3").contains("deprecated"));
    assert!(
        refused("sel:\n    A: 1\ntimeframe: 5m\ncondition: sel | count() > 3")
            .contains("deprecated")
    );
    assert!(refused("sel:\n    A: 1").contains("no `condition`"));
    assert!(refused("sel:\n    A: []\ncondition: sel").contains("empty value list"));
    assert!(refused("sel:\n    A:\n        x: 1\ncondition: sel").contains("mapping"));
    assert!(refused("sel:\ncondition: sel").contains("null"));
    assert!(refused("sel:\n    - - a\ncondition: sel").contains("nested"));
    assert!(refused("sel:\n    A|foo: 1\ncondition: sel").contains("unknown modifier `foo`"));
    assert!(refused("sel:\n    A|: 1\ncondition: sel").contains("empty modifier"));
}

// ---- documents ----------------------------------------------------------------------------------

const FULL_RULE: &str = r#"
title: Whoami Execution
id: 8f8e5d1a-0000-4000-8000-000000000001
name: whoami_exec
status: test
description: Detects whoami
author:
    - A
    - B
level: High
tags:
    - attack.discovery
    - attack.t1033
references: https://example.com
falsepositives:
    - Admins
fields:
    - CommandLine
logsource:
    category: process_creation
    product: windows
    definition: 'ignored'
custom_attribute: allowed
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
"#;

#[test]
fn metadata_is_read() {
    let docs = parse_file(FULL_RULE, &ParseOptions::default()).unwrap();
    let Ok(Document::Rule(r)) = &docs[0] else {
        panic!("{docs:?}")
    };
    assert_eq!(r.id, "8f8e5d1a-0000-4000-8000-000000000001");
    assert_eq!(r.name.as_deref(), Some("whoami_exec"));
    assert_eq!(r.title, "Whoami Execution");
    assert_eq!(r.description, "Detects whoami");
    assert_eq!(r.status.as_deref(), Some("test"));
    assert_eq!(r.level, Some(Level::High));
    assert_eq!(r.author.as_deref(), Some("A, B"));
    assert_eq!(r.tags, ["attack.discovery", "attack.t1033"]);
    assert_eq!(r.references, ["https://example.com"]);
    assert_eq!(r.falsepositives, ["Admins"]);
    assert_eq!(r.fields, ["CommandLine"]);
    assert_eq!(
        r.logsource,
        Logsource {
            product: Some("windows".into()),
            category: Some("process_creation".into()),
            service: None
        }
    );
    assert_eq!(
        r.detection,
        field("Image", str_test(vec![M, lit("\\whoami.exe")]))
    );
}

#[test]
fn missing_required_keys_are_refused_with_title_and_id() {
    let docs = parse_file(
        "title: X\nid: abc\ndetection:\n    s:\n        A: 1\n    condition: s\n",
        &ParseOptions::default(),
    )
    .unwrap();
    let Err(r) = &docs[0] else { panic!() };
    assert_eq!(
        (r.title.as_deref(), r.id.as_deref()),
        (Some("X"), Some("abc"))
    );
    assert!(r.reason.to_string().contains("logsource"));
    let docs = parse_file(
        "title: X\nlogsource: {product: x}\ndetection: {s: {A: 1}, condition: s}\n",
        &ParseOptions::default(),
    )
    .unwrap();
    assert!(matches!(&docs[0], Err(r) if r.reason.to_string().contains("`id`")));
    let docs = parse_file("title: X\nid: a\nlevel: severe\nlogsource: {product: x}\ndetection: {s: {A: 1}, condition: s}\n", &ParseOptions::default()).unwrap();
    assert!(matches!(&docs[0], Err(r) if r.reason.to_string().contains("level")));
}

#[test]
fn correlation_and_filter_documents_are_handed_off() {
    let text = "title: A\nid: a\nlogsource: {product: x}\ndetection: {s: {A: 1}, condition: s}\n---\ntitle: C\ncorrelation:\n    type: event_count\n    rules: [a]\n    group-by: [User]\n    timespan: 5m\n    condition: {gte: 10}\n---\ntitle: F\nlogsource: {product: x}\nfilter:\n    rules: [a]\n    selection: {User: admin}\n    condition: not selection\n";
    let docs = parse_file(text, &ParseOptions::default()).unwrap();
    assert_eq!(docs.len(), 3);
    assert!(matches!(&docs[0], Ok(Document::Rule(_))));
    let Ok(Document::Correlation(c)) = &docs[1] else {
        panic!()
    };
    assert_eq!(c["correlation"]["type"], "event_count");
    assert_eq!(c["correlation"]["condition"]["gte"], 10);
    let Ok(Document::Filter(f)) = &docs[2] else {
        panic!()
    };
    assert_eq!(f["filter"]["selection"]["User"], "admin");
}

#[test]
fn sigma1_collections_merge_global_and_repeat() {
    let text = "action: global\ntitle: G\nlogsource: {product: windows}\ndetection:\n    condition: sel\n---\nid: one\ndetection:\n    sel: {A: 1}\n---\naction: repeat\nid: two\ndetection:\n    sel: {A: 2}\n---\naction: reset\n---\nid: three\ntitle: T\nlogsource: {product: linux}\ndetection: {x: {B: 1}, condition: x}\n";
    let docs = parse_file(text, &ParseOptions::default()).unwrap();
    let rules: Vec<&SigmaRule> = docs
        .iter()
        .map(|d| match d {
            Ok(Document::Rule(r)) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rules.len(), 3);
    assert_eq!(
        (rules[0].id.as_str(), rules[0].title.as_str()),
        ("one", "G")
    );
    assert_eq!(rules[0].detection, field("A", str_test(vec![lit("1")])));
    assert_eq!(rules[1].id, "two");
    assert_eq!(rules[1].detection, field("A", str_test(vec![lit("2")])));
    assert_eq!(rules[2].logsource.product.as_deref(), Some("linux"));
    let docs = parse_file("action: repeat\nid: x\n", &ParseOptions::default()).unwrap();
    assert!(matches!(&docs[0], Err(r) if r.reason.to_string().contains("repeat")));
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    let e = parse_file(
        "title: a\nid: b\ndetection:\n  sel: [unclosed\n",
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("line"), "{e}");
    let docs = parse_file("- just\n- a list\n", &ParseOptions::default()).unwrap();
    assert!(matches!(&docs[0], Err(r) if r.reason.to_string().contains("not a mapping")));
}

#[test]
fn mapping_order_is_preserved_for_them() {
    let e = det("zeta:\n    Z: 1\nalpha:\n    A: 1\ncondition: 1 of them");
    assert_eq!(
        e,
        Expr::Or(vec![
            field("Z", str_test(vec![lit("1")])),
            field("A", str_test(vec![lit("1")]))
        ])
    );
}

#[test]
fn attack_tags_become_techniques_and_tactics() {
    let tags: Vec<String> = [
        "attack.t1059.001",
        "attack.T1059",
        "attack.defense_evasion",
        "attack.defense-evasion",
        "attack.execution",
        "attack.g0016",
        "attack.s0002",
        "cve.2021-44228",
        "attack.stealth",
        "attack.t1059.001",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (t, ta) = attack_from_tags(&tags);
    assert_eq!(t, ["T1059.001", "T1059"]);
    assert_eq!(ta, ["defense-evasion", "execution", "stealth"]);
}
