//! Keywords (values without a field) as tests of the values column: the decoder puts every scalar value of
//! the raw record there (`decode::schema::VALUES_COLUMN`), so a keyword is searched where the Sigma
//! specification says — anywhere in the event, in values no column holds (`UserData`, unnamed `Data`
//! lists, `Message`) — and never in a key name, a JSON escape sequence or across two values.

use crate::decode::schema::{VALUE_SEPARATOR, VALUES_COLUMN};
use crate::sigma::ir::{Expr, Pattern, Piece, Test};

/// Replaces keyword (full-text) tests by tests of the values column ([`VALUES_COLUMN`]: every scalar value
/// of the raw record, keys left out, each ended by [`VALUE_SEPARATOR`]), so that a keyword is found in any
/// value of the event, whether a column holds it or not, and never across two values.
pub fn expand_keywords(e: &Expr) -> Expr {
    match e {
        Expr::Keyword { pattern, cased } => Expr::Field {
            field: VALUES_COLUMN.to_string(),
            test: keyword_test(pattern, *cased),
        },
        Expr::And(v) => Expr::And(v.iter().map(expand_keywords).collect()),
        Expr::Or(v) => Expr::Or(v.iter().map(expand_keywords).collect()),
        Expr::Not(inner) => Expr::Not(Box::new(expand_keywords(inner))),
        other => other.clone(),
    }
}

/// A keyword pattern as a test of the values column. A plain substring is a substring of the column (it
/// cannot span two values: no keyword contains the separator), found by the column's automaton; any
/// other pattern is a regular expression anchored at value boundaries, its wildcards not crossing one.
fn keyword_test(pattern: &Pattern, cased: bool) -> Test {
    let sep = VALUE_SEPARATOR;
    match pattern.0.as_slice() {
        [Piece::AnyMany, Piece::Lit(l), Piece::AnyMany] if !l.contains(sep) => Test::Str {
            pattern: pattern.clone(),
            cased,
        },
        [Piece::AnyMany] => Test::Exists(true),
        pieces => {
            let start = pieces.first() == Some(&Piece::AnyMany);
            let end = pieces.last() == Some(&Piece::AnyMany);
            let inner = &pieces[usize::from(start)..pieces.len() - usize::from(end)];
            let not_sep = format!("[^\\x{:02x}]", sep as u32);
            let mut re = if start {
                String::new()
            } else {
                format!("(?:^|\\x{:02x})", sep as u32)
            };
            for p in inner {
                match p {
                    Piece::Lit(l) => re.push_str(&regex::escape(l)),
                    Piece::AnyMany => {
                        re.push_str(&not_sep);
                        re.push('*');
                    }
                    Piece::AnyOne => re.push_str(&not_sep),
                }
            }
            if !end {
                // Every value is followed by the separator.
                re.push_str(&format!("\\x{:02x}", sep as u32));
            }
            Test::Re {
                pattern: re,
                case_insensitive: !cased,
                multi_line: false,
                dot_matches_new_line: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::ir::Piece::{AnyMany as M, AnyOne as O, Lit};

    fn lit(s: &str) -> Piece {
        Lit(s.to_string())
    }

    fn matches(test: &Test, values: &[&str]) -> bool {
        let column: String = values.iter().map(|v| format!("{v}\u{1f}")).collect();
        match test {
            Test::Re {
                pattern,
                case_insensitive,
                ..
            } => regex::RegexBuilder::new(pattern)
                .case_insensitive(*case_insensitive)
                .build()
                .unwrap()
                .is_match(&column),
            Test::Str { pattern, cased } => match pattern.0.as_slice() {
                [M, Lit(l), M] if *cased => column.contains(l.as_str()),
                [M, Lit(l), M] => column.to_lowercase().contains(&l.to_lowercase()),
                other => panic!("{other:?}"),
            },
            Test::Exists(true) => true,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_substring_keyword_is_a_substring_of_the_values_column() {
        let t = keyword_test(&Pattern::new(vec![M, lit("Kiwi Legit Printer"), M]), false);
        assert!(matches!(t, Test::Str { .. }));
        assert!(matches(&t, &["x", "the kiwi legit printer driver"]));
        assert!(!matches(&t, &["Kiwi Legit", "Printer"]));
    }

    #[test]
    fn anchored_keywords_match_whole_values_and_wildcards_stay_in_one_value() {
        let starts = keyword_test(&Pattern::new(vec![lit("run"), M]), false);
        assert!(matches(&starts, &["x", "RunDll32"]));
        assert!(!matches(&starts, &["xrun"]));
        let ends = keyword_test(&Pattern::new(vec![M, lit(".dll")]), true);
        assert!(matches(&ends, &["a.dll", "b"]));
        assert!(!matches(&ends, &["a.dll.bak"]));
        assert!(!matches(&ends, &["a.DLL"]));
        let inner = keyword_test(
            &Pattern::new(vec![M, lit("sekurlsa::"), M, lit("pass"), M]),
            false,
        );
        assert!(matches(&inner, &["sekurlsa::logonpasswords"]));
        assert!(!matches(&inner, &["sekurlsa::x", "pass"]));
        let one = keyword_test(&Pattern::new(vec![lit("a"), O, lit("c")]), false);
        assert!(matches(&one, &["abc"]));
        assert!(!matches(&one, &["a", "c"]));
        assert!(!matches(&one, &["xabc"]));
    }

    #[test]
    fn keywords_anywhere_in_a_condition_become_tests_of_the_values_column() {
        let e = Expr::And(vec![
            Expr::Keyword {
                pattern: Pattern::new(vec![M, lit("a"), M]),
                cased: false,
            },
            Expr::Not(Box::new(Expr::Keyword {
                pattern: Pattern::new(vec![lit("b")]),
                cased: true,
            })),
        ]);
        let out = expand_keywords(&e);
        assert!(!out.has_keywords());
        let mut fields = Vec::new();
        out.visit_fields(&mut |f| fields.push(f.to_string()));
        assert_eq!(fields, [VALUES_COLUMN, VALUES_COLUMN]);
    }
}
