//! Parser tests: each modifier (string positions, `all`, the encodings, `windash`, `re`, `cidr`, `exists`,
//! `fieldref`, comparisons, `cased`, `neq`, `expand`) and the refusal of unsupported ones.

use base64::engine::general_purpose::STANDARD as B64;

use super::detection::{SPiece, plain_text};
use super::encodings::{utf16_bytes, windash};
use super::modifiers::Modifier;
use super::tests::{cased_test, det, field, lit, pieces, refused, rule_with, str_test};
use super::*;
use crate::sigma::ir::{Cmp, Expr, Position, Test};

use crate::sigma::ir::Piece::{AnyMany as M, AnyOne as O};

// ---- modifiers ----------------------------------------------------------------------------------

#[test]
fn contains_startswith_endswith_add_wildcards_once() {
    assert_eq!(
        det("s:\n    F|contains: 'x'\ncondition: s"),
        field("F", str_test(vec![M, lit("x"), M]))
    );
    assert_eq!(
        det("s:\n    F|contains: '*x*'\ncondition: s"),
        field("F", str_test(vec![M, lit("x"), M]))
    );
    assert_eq!(
        det("s:\n    F|startswith: 'x'\ncondition: s"),
        field("F", str_test(vec![lit("x"), M]))
    );
    assert_eq!(
        det("s:\n    F|endswith: 'x?'\ncondition: s"),
        field("F", str_test(vec![M, lit("x"), O]))
    );
}

#[test]
fn all_links_values_with_and() {
    let e = det("s:\n    F|contains|all:\n        - a\n        - b\ncondition: s");
    assert_eq!(
        e,
        Expr::And(vec![
            field("F", str_test(vec![M, lit("a"), M])),
            field("F", str_test(vec![M, lit("b"), M]))
        ])
    );
}

#[test]
fn base64_matches_pysigma_and_is_case_sensitive() {
    assert_eq!(
        det("s:\n    F|base64: foobar\ncondition: s"),
        field("F", cased_test(vec![lit("Zm9vYmFy")]))
    );
    assert_eq!(
        det("s:\n    F|base64|contains: 'http://'\ncondition: s"),
        field("F", cased_test(vec![M, lit("aHR0cDovLw=="), M]))
    );
    assert!(refused("s:\n    F|base64: 'foo*bar'\ncondition: s").contains("wildcards"));
    // Order matters: contains first puts wildcards in, which base64 refuses.
    assert!(refused("s:\n    F|contains|base64: foo\ncondition: s").contains("wildcards"));
}

#[test]
fn base64offset_matches_pysigma_outputs() {
    // pySigma tests/test_modifiers.py::test_base64offset
    assert_eq!(
        base64_offsets(b"foobar"),
        vec!["Zm9vYmFy", "Zvb2Jhc", "mb29iYX"]
    );
    assert_eq!(
        base64_offsets(b"/bin/bash"),
        vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
    );
    let e = det("s:\n    F|base64offset|contains: foobar\ncondition: s");
    assert_eq!(
        e,
        Expr::Or(vec![
            field("F", cased_test(vec![M, lit("Zm9vYmFy"), M])),
            field("F", cased_test(vec![M, lit("Zvb2Jhc"), M])),
            field("F", cased_test(vec![M, lit("mb29iYX"), M])),
        ])
    );
}

#[test]
fn base64offset_variants_find_the_value_at_every_alignment() {
    use base64::Engine as _;
    let needle = b"IEX (New-Object Net.WebClient)";
    let variants = base64_offsets(needle);
    for prefix in ["", "a", "ab", "abc", "abcd"] {
        let mut data = prefix.as_bytes().to_vec();
        data.extend_from_slice(needle);
        data.extend_from_slice(b" trailing");
        let encoded = B64.encode(&data);
        assert!(
            variants.iter().any(|v| encoded.contains(v.as_str())),
            "prefix {prefix:?}: {encoded} vs {variants:?}"
        );
    }
}

#[test]
fn utf16_encodings_feed_base64() {
    // "cmd" as UTF-16LE is 63 00 6d 00 64 00.
    assert_eq!(
        det("s:\n    F|wide|base64: cmd\ncondition: s"),
        field("F", cased_test(vec![lit("YwBtAGQA")]))
    );
    assert_eq!(
        det("s:\n    F|utf16le|base64: cmd\ncondition: s"),
        field("F", cased_test(vec![lit("YwBtAGQA")]))
    );
    // UTF-16BE: 00 63 00 6d 00 64; with BOM (utf16): FF FE 63 00 6d 00 64 00.
    assert_eq!(
        det("s:\n    F|utf16be|base64: cmd\ncondition: s"),
        field("F", cased_test(vec![lit("AGMAbQBk")]))
    );
    assert_eq!(
        det("s:\n    F|utf16|base64: cmd\ncondition: s"),
        field("F", cased_test(vec![lit("//5jAG0AZAA=")]))
    );
    let e = det("s:\n    F|wide|base64offset|contains: 'ping'\ncondition: s");
    let expected: Vec<Expr> = base64_offsets(&utf16_bytes("ping", Modifier::Utf16Le))
        .into_iter()
        .map(|v| field("F", cased_test(vec![M, lit(&v), M])))
        .collect();
    assert_eq!(e, Expr::Or(expected));
    assert!(refused("s:\n    F|wide: cmd\ncondition: s").contains("without `base64`"));
    assert!(
        refused("s:\n    F|wide|contains: cmd\ncondition: s").contains("cannot follow `utf16le`")
    );
    assert!(refused("s:\n    F|contains|wide|base64: cmd\ncondition: s").contains("wildcards"));
}

fn texts(v: &[Vec<SPiece>]) -> Vec<String> {
    v.iter().map(|p| plain_text(p).unwrap()).collect()
}

#[test]
fn windash_matches_pysigma_permutations() {
    let v = texts(&windash(&pieces("-param-1 -param2")).unwrap());
    assert_eq!(v.len(), 25);
    assert_eq!(v[0], "-param-1 -param2");
    assert_eq!(v[1], "-param-1 /param2");
    assert_eq!(v[2], "-param-1 \u{2013}param2");
    assert_eq!(v[5], "/param-1 -param2");
    assert_eq!(v[24], "\u{2015}param-1 \u{2015}param2");
    // pySigma's test_windash (from before en/em dash and horizontal bar were added): the `-`/`/` subset,
    // in the same order.
    let ascii: Vec<&String> = v.iter().filter(|s| s.is_ascii()).collect();
    assert_eq!(
        ascii,
        [
            "-param-1 -param2",
            "-param-1 /param2",
            "/param-1 -param2",
            "/param-1 /param2"
        ]
    );
    // Only a dash starting a word is expanded; inner dashes stay.
    let v = texts(&windash(&pieces(" -param-name ")).unwrap());
    assert_eq!(
        v,
        [
            " -param-name ",
            " /param-name ",
            " \u{2013}param-name ",
            " \u{2014}param-name ",
            " \u{2015}param-name "
        ]
    );
    assert_eq!(texts(&windash(&pieces("a-b")).unwrap()), ["a-b"]);
    assert_eq!(texts(&windash(&pieces("/format:")).unwrap()).len(), 5);
}

#[test]
fn windash_after_contains_or_before_is_an_or_of_variants() {
    let e = det("s:\n    CommandLine|contains|windash: ' -s '\ncondition: s");
    let Expr::Or(v) = e else { panic!() };
    assert_eq!(v.len(), 5);
    assert_eq!(
        v[1],
        field("CommandLine", str_test(vec![M, lit(" /s "), M]))
    );
    assert_eq!(
        det("s:\n    C|windash|contains: '-s'\ncondition: s"),
        det("s:\n    C|contains|windash: '-s'\ncondition: s")
    );
}

#[test]
fn re_keeps_the_pattern_and_takes_flags() {
    let e = det("s:\n    F|re: '^a.*b$'\ncondition: s");
    assert_eq!(
        e,
        field(
            "F",
            Test::Re {
                pattern: "^a.*b$".into(),
                case_insensitive: false,
                multi_line: false,
                dot_matches_new_line: false
            }
        )
    );
    let e = det("s:\n    F|re|i|m|s: 'x'\ncondition: s");
    assert_eq!(
        e,
        field(
            "F",
            Test::Re {
                pattern: "x".into(),
                case_insensitive: true,
                multi_line: true,
                dot_matches_new_line: true
            }
        )
    );
    let e = det("s:\n    F|re|ignorecase: 'x'\ncondition: s");
    assert!(matches!(
        e,
        Expr::Field {
            test: Test::Re {
                case_insensitive: true,
                ..
            },
            ..
        }
    ));
    // Wildcards and escapes have no Sigma meaning inside a regex.
    let e = det("s:\n    F|re: 'a\\*b?'\ncondition: s");
    assert!(
        matches!(e, Expr::Field { test: Test::Re { ref pattern, .. }, .. } if pattern == "a\\*b?")
    );
}

#[test]
fn re_with_unsupported_constructs_is_refused() {
    let r = refused("s:\n    F|re: 'foo(?=bar)'\ncondition: s");
    assert!(r.contains("look-around") && r.contains("foo(?=bar)"), "{r}");
    let r = refused("s:\n    F|re: '(a)\\1'\ncondition: s");
    assert!(r.contains("backreference"), "{r}");
    assert!(refused("s:\n    F|re: '(unclosed'\ncondition: s").contains("does not compile"));
    assert!(refused("s:\n    F|contains|re: 'x'\ncondition: s").contains("first modifier"));
    assert!(refused("s:\n    F|i: 'x'\ncondition: s").contains("flag of `re`"));
}

#[test]
fn cidr_validates_and_normalises() {
    let e = det("s:\n    Ip|cidr: 10.1.2.3/8\ncondition: s");
    assert_eq!(
        e,
        field(
            "Ip",
            Test::Cidr {
                network: "10.0.0.0".parse().unwrap(),
                prefix: 8
            }
        )
    );
    let e = det("s:\n    Ip|cidr: '2001:db8::1/32'\ncondition: s");
    assert_eq!(
        e,
        field(
            "Ip",
            Test::Cidr {
                network: "2001:db8::".parse().unwrap(),
                prefix: 32
            }
        )
    );
    let e = det("s:\n    Ip|cidr: 192.168.1.1\ncondition: s");
    assert_eq!(
        e,
        field(
            "Ip",
            Test::Cidr {
                network: "192.168.1.1".parse().unwrap(),
                prefix: 32
            }
        )
    );
    let e = det("s:\n    Ip|cidr: ::/0\ncondition: s");
    assert_eq!(
        e,
        field(
            "Ip",
            Test::Cidr {
                network: "::".parse().unwrap(),
                prefix: 0
            }
        )
    );
    assert!(refused("s:\n    Ip|cidr: 10.0.0.0/33\ncondition: s").contains("prefix"));
    assert!(refused("s:\n    Ip|cidr: 10.0.0/8\ncondition: s").contains("not an IP"));
    assert!(refused("s:\n    Ip|cidr: '10.0.0.0/'\ncondition: s").contains("prefix"));
    assert!(refused("s:\n    Ip|cidr: '10.0.0.0/+8'\ncondition: s").contains("prefix"));
}

#[test]
fn exists_takes_a_boolean() {
    assert_eq!(
        det("s:\n    F|exists: true\ncondition: s"),
        field("F", Test::Exists(true))
    );
    assert_eq!(
        det("s:\n    F|exists: false\ncondition: s"),
        field("F", Test::Exists(false))
    );
    assert!(refused("s:\n    F|exists: 'yes'\ncondition: s").contains("`true` or `false`"));
    assert!(refused("s:\n    '|exists': true\ncondition: s").contains("needs a field"));
}

#[test]
fn fieldref_with_position_and_case() {
    let fr = |position, cased| {
        field(
            "A",
            Test::FieldRef {
                other: "B".into(),
                position,
                cased,
            },
        )
    };
    assert_eq!(
        det("s:\n    A|fieldref: B\ncondition: s"),
        fr(Position::Equals, false)
    );
    assert_eq!(
        det("s:\n    A|fieldref|contains: B\ncondition: s"),
        fr(Position::Contains, false)
    );
    assert_eq!(
        det("s:\n    A|fieldref|startswith: B\ncondition: s"),
        fr(Position::StartsWith, false)
    );
    assert_eq!(
        det("s:\n    A|fieldref|endswith|cased: B\ncondition: s"),
        fr(Position::EndsWith, true)
    );
    assert_eq!(
        det("s:\n    A|fieldref|startswith|endswith: B\ncondition: s"),
        fr(Position::Contains, false)
    );
    assert!(refused("s:\n    A|contains|fieldref: B\ncondition: s").contains("plain field name"));
}

#[test]
fn numeric_comparisons_need_numbers() {
    assert_eq!(
        det("s:\n    N|lt: 5\ncondition: s"),
        field(
            "N",
            Test::Num {
                op: Cmp::Lt,
                value: 5.0
            }
        )
    );
    assert_eq!(
        det("s:\n    N|lte: 5.5\ncondition: s"),
        field(
            "N",
            Test::Num {
                op: Cmp::Lte,
                value: 5.5
            }
        )
    );
    assert_eq!(
        det("s:\n    N|gt: '10'\ncondition: s"),
        field(
            "N",
            Test::Num {
                op: Cmp::Gt,
                value: 10.0
            }
        )
    );
    assert_eq!(
        det("s:\n    N|gte: -1\ncondition: s"),
        field(
            "N",
            Test::Num {
                op: Cmp::Gte,
                value: -1.0
            }
        )
    );
    assert!(refused("s:\n    N|gt: abc\ncondition: s").contains("numeric"));
    assert!(refused("s:\n    N|contains|gt: 1\ncondition: s").contains("first modifier"));
}

#[test]
fn cased_makes_strings_case_sensitive() {
    assert_eq!(
        det("s:\n    F|cased: IEX\ncondition: s"),
        field("F", cased_test(vec![lit("IEX")]))
    );
    assert_eq!(
        det("s:\n    F|contains|cased: IEX\ncondition: s"),
        det("s:\n    F|cased|contains: IEX\ncondition: s")
    );
    assert!(refused("s:\n    F|re|cased: x\ncondition: s").contains("regular expression"));
}

#[test]
fn neq_is_present_and_different() {
    let e = det("s:\n    F|neq:\n        - a\n        - b\ncondition: s");
    assert_eq!(
        e,
        Expr::And(vec![
            field("F", Test::Exists(true)),
            Expr::Not(Box::new(Expr::Or(vec![
                field("F", str_test(vec![lit("a")])),
                field("F", str_test(vec![lit("b")]))
            ]))),
        ])
    );
    let e = det("s:\n    F|contains|neq: a\ncondition: s");
    assert_eq!(
        e,
        Expr::And(vec![
            field("F", Test::Exists(true)),
            Expr::Not(Box::new(field("F", str_test(vec![M, lit("a"), M]))))
        ])
    );
    assert!(refused("s:\n    '|neq': a\ncondition: s").contains("needs a field"));
}

#[test]
fn expand_replaces_placeholders_with_configured_values() {
    let mut ph = HashMap::new();
    ph.insert(
        "DomainControllers".to_string(),
        vec!["dc1*".to_string(), "dc2".to_string()],
    );
    let r = rule_with(
        "s:\n    Host|expand: '%DomainControllers%'\ncondition: s",
        &ph,
    )
    .unwrap();
    assert_eq!(
        r.detection,
        Expr::Or(vec![
            field("Host", str_test(vec![lit("dc1"), M])),
            field("Host", str_test(vec![lit("dc2")]))
        ])
    );
    let r = rule_with(
        "s:\n    Host|expand|contains: 'x\\%y%DomainControllers%z'\ncondition: s",
        &ph,
    )
    .unwrap();
    assert_eq!(
        r.detection,
        Expr::Or(vec![
            field("Host", str_test(vec![M, lit("x%ydc1"), M, lit("z"), M])),
            field("Host", str_test(vec![M, lit("x%ydc2z"), M]))
        ])
    );
    let e = rule_with("s:\n    Host|expand: '%Servers%'\ncondition: s", &ph).unwrap_err();
    assert!(e.reason.to_string().contains("`%Servers%`"), "{}", e.reason);
    // Without `expand`, `%name%` is literal text.
    assert_eq!(
        det("s:\n    Host: '%Servers%'\ncondition: s"),
        field("Host", str_test(vec![lit("%Servers%")]))
    );
}

#[test]
fn time_and_unknown_modifiers_are_refused() {
    assert!(refused("s:\n    T|hour: 3\ncondition: s").contains("time-part"));
    assert!(refused("s:\n    T|EndsWith: 3\ncondition: s").contains("unknown modifier `EndsWith`"));
    assert!(refused("s:\n    F: null\n    G|contains: null\ncondition: s").contains("null"));
}
