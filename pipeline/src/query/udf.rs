//! The functions hunts call beyond DataFusion's own: `cidr_match(value, 'network/prefix')` (the Sigma
//! `cidr` modifier, so that `ghosthunt sigma convert` output runs as a hunt), `ip_address_type(value)`
//! (Defender's address classes, for the KQL tables), and KQL's `has` family.
//!
//! They read text of any string type in place (the decoder's `Utf8`, the lake's `Utf8View`): no copy
//! of the column per call, no allocation per row, a constant argument prepared once per batch.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Parses `a.b.c.d/n` or `v6::/n` (a bare address is a host network).
pub fn parse_network(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, p.parse::<u8>().ok()?),
        None => (text, if text.contains(':') { 128 } else { 32 }),
    };
    let addr: IpAddr = addr.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Maps every value of a text array (`Utf8`, `LargeUtf8` or `Utf8View`, read in place; anything else
/// cast to `Utf8` first) through `f`.
pub(crate) fn map_texts<O, T: FromIterator<O>>(
    array: &ArrayRef,
    mut f: impl FnMut(Option<&str>) -> O,
) -> Result<T> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().map(&mut f).collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().map(&mut f).collect(),
        DataType::Utf8View => array.as_string_view().iter().map(&mut f).collect(),
        _ => cast(array, &DataType::Utf8)?
            .as_string::<i32>()
            .iter()
            .map(&mut f)
            .collect(),
    })
}

/// A constant text argument: `Some(None)` for a NULL literal, `None` when the argument is a column.
fn constant(value: &ColumnarValue) -> Option<Option<&str>> {
    match value {
        ColumnarValue::Scalar(s) if s.is_null() => Some(None),
        ColumnarValue::Scalar(s) => s.try_as_str(),
        ColumnarValue::Array(_) => None,
    }
}

/// A function over text arguments, evaluated by `body` on the batch's arguments and its row count.
#[derive(Debug)]
struct TextFunction {
    name: &'static str,
    /// How many arguments it takes: exactly this many, or at least `arity` when `variadic`.
    arity: usize,
    variadic: bool,
    returns: DataType,
    signature: Signature,
    body: fn(&str, &[ColumnarValue], usize) -> Result<ColumnarValue>,
}

// A function is its name (DataFusion compares functions to deduplicate and cache plans).
impl PartialEq for TextFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.arity == other.arity
    }
}
impl Eq for TextFunction {}
impl std::hash::Hash for TextFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.name, self.arity).hash(state);
    }
}

impl TextFunction {
    fn udf(
        name: &'static str,
        arity: usize,
        returns: DataType,
        body: fn(&str, &[ColumnarValue], usize) -> Result<ColumnarValue>,
    ) -> ScalarUDF {
        ScalarUDF::from(TextFunction {
            name,
            arity,
            variadic: false,
            returns,
            signature: Signature::user_defined(Volatility::Immutable),
            body,
        })
    }
}

impl ScalarUDFImpl for TextFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }
    /// Text stays the type it is (no cast of a lake column to `Utf8`); anything else becomes `Utf8`.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let n = arg_types.len();
        if n < self.arity || (n > self.arity && !self.variadic) {
            return Err(DataFusionError::Plan(format!(
                "{} takes {}{} arguments, not {n}",
                self.name,
                if self.variadic { "at least " } else { "" },
                self.arity,
            )));
        }
        Ok(arg_types
            .iter()
            .map(|t| {
                if is_text(t) {
                    t.clone()
                } else {
                    DataType::Utf8
                }
            })
            .collect())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        (self.body)(self.name, &args.args, args.number_rows)
    }
}

/// The `cidr_match` scalar function: true when the value is an IP address inside the network, NULL for a
/// NULL value, false for anything that is not an address. The network must be a constant.
pub fn cidr_match() -> ScalarUDF {
    TextFunction::udf("cidr_match", 2, DataType::Boolean, |name, args, rows| {
        let network = match constant(&args[1]) {
            Some(Some(n)) => parse_network(n).ok_or_else(|| {
                DataFusionError::Execution(format!("{name}: `{n}` is not a network"))
            })?,
            Some(None) => return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None))),
            None => {
                return Err(DataFusionError::Execution(format!(
                    "{name}: the network must be a string literal"
                )));
            }
        };
        let values = args[0].to_array(rows)?;
        let result: BooleanArray = map_texts(&values, |v| {
            v.map(|v| {
                v.trim()
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| in_network(ip, network.0, network.1))
            })
        })?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    })
}

/// Defender's classes of an address (`RemoteIPType`), most specific first; an address in none of them
/// is `Public`.
const ADDRESS_CLASSES: [(&str, &[&str]); 3] = [
    ("Loopback", &["127.0.0.0/8", "::1/128"]),
    (
        "Private",
        &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
    ),
    (
        "Reserved",
        &[
            "169.254.0.0/16",
            "fe80::/10",
            "224.0.0.0/4",
            "ff00::/8",
            "0.0.0.0/8",
            "::/128",
        ],
    ),
];

/// The class of an address (`Loopback`, `Private`, `Reserved`, `Public`), None for text that is not an
/// address. IPv4-mapped IPv6 addresses are classed as their IPv4 address.
pub fn address_class(text: &str) -> Option<&'static str> {
    type Networks = Vec<(IpAddr, u8)>;
    static CLASSES: LazyLock<Vec<(&'static str, Networks)>> = LazyLock::new(|| {
        ADDRESS_CLASSES
            .iter()
            .map(|(class, networks)| {
                let parsed = networks
                    .iter()
                    .map(|n| parse_network(n).expect("a valid network"))
                    .collect();
                (*class, parsed)
            })
            .collect()
    });
    let ip: IpAddr = text.trim().parse().ok()?;
    Some(
        CLASSES
            .iter()
            .find(|(_, networks)| networks.iter().any(|&(n, p)| in_network(ip, n, p)))
            .map_or("Public", |(class, _)| class),
    )
}

/// `ip_address_type(value)`: [`address_class`] of each value (NULL for NULL or text that is not an
/// address). The KQL tables' `RemoteIPType`: one parse per row instead of one per network.
pub fn ip_address_type() -> ScalarUDF {
    TextFunction::udf("ip_address_type", 1, DataType::Utf8, |_, args, rows| {
        let values = args[0].to_array(rows)?;
        let result: StringArray = map_texts(&values, |v| v.and_then(address_class))?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    })
}

/// Whether `ip` is in `network`/`prefix` (the Sigma `cidr` modifier and `cidr_match`).
pub fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    // IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) compare as IPv4.
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

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

/// `lower_eq(x, 'a', 'b', …)`: `lower(x) IN ('a', 'b', …)` (the constants lower case); the others
/// `lower_starts_with(x, 'c')`, `lower_ends_with(x, 'c')`, `lower_contains(x, 'c')`.
pub fn lower_test(test: LowerTest) -> ScalarUDF {
    fn body(name: &str, args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
        let test = match name {
            LOWER_EQ => LowerTest::Eq,
            LOWER_STARTS_WITH => LowerTest::StartsWith,
            LOWER_ENDS_WITH => LowerTest::EndsWith,
            _ => LowerTest::Contains,
        };
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
        let result: BooleanArray = map_texts(&values, |v| v.map(|v| matcher.matches(v)))?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
    let (name, variadic) = match test {
        LowerTest::Eq => (LOWER_EQ, true),
        LowerTest::StartsWith => (LOWER_STARTS_WITH, false),
        LowerTest::EndsWith => (LOWER_ENDS_WITH, false),
        LowerTest::Contains => (LOWER_CONTAINS, false),
    };
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
    /// `Contains` of ASCII values: the constant found ignoring ASCII case.
    finder: Option<Arc<AhoCorasick>>,
}

impl<'a> LowerMatcher<'a> {
    /// `constants` must be lower case already (`c == c.to_lowercase()`): the rewrite only makes
    /// these calls for such constants.
    pub fn new(test: LowerTest, constants: &[&'a str]) -> LowerMatcher<'a> {
        static FINDERS: Prepared<Vec<String>, AhoCorasick> = Prepared::new();
        let finder = (test == LowerTest::Contains).then(|| {
            let key = constants.iter().map(|c| c.to_string()).collect();
            FINDERS
                .get(key, || {
                    Ok(AhoCorasickBuilder::new()
                        .ascii_case_insensitive(true)
                        .match_kind(MatchKind::LeftmostFirst)
                        .build(constants)
                        .expect("literal needles build"))
                })
                .expect("infallible")
        });
        LowerMatcher {
            test,
            constants: constants.to_vec(),
            finder,
        }
    }

    /// Whether `lower(value)` passes the test against any of the constants.
    pub fn matches(&self, value: &str) -> bool {
        if value.is_ascii() {
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
                LowerTest::Contains => self.finder.as_ref().is_some_and(|f| f.is_match(value)),
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

/// A process-wide cache of what is prepared from a function's constant arguments (compiled regexes,
/// needle automata): prepared once, not once per batch. Hunt files hold a few hundred constants;
/// ad-hoc queries could add more, so a cache starts over past 4,096 entries.
struct Prepared<K, V>(LazyLock<std::sync::Mutex<std::collections::HashMap<K, Arc<V>>>>);

impl<K: std::hash::Hash + Eq, V> Prepared<K, V> {
    const fn new() -> Self {
        Prepared(LazyLock::new(Default::default))
    }

    fn get(&self, key: K, make: impl FnOnce() -> Result<V>) -> Result<Arc<V>> {
        if let Some(v) = self.0.lock().expect("cache").get(&key) {
            return Ok(Arc::clone(v));
        }
        let made = Arc::new(make()?);
        let mut cache = self.0.lock().expect("cache");
        if cache.len() >= 4096 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&made));
        Ok(made)
    }
}

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
        let result: BooleanArray = map_texts(&values, |v| v.map(|v| regex.is_match(v)))?;
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

/// A needle prepared once for [`term_match`] over many values: every occurrence (overlapping ones
/// too) is a candidate, ASCII letters compared without case unless `case_sensitive`.
pub struct TermFinder {
    finder: Option<AhoCorasick>,
    len: usize,
    /// Whether the needle starts / ends with a word character (then that end needs a term boundary).
    first: bool,
    last: bool,
    term: Term,
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

impl TermFinder {
    pub fn new(needle: &str, case_sensitive: bool, term: Term) -> TermFinder {
        let n = needle.as_bytes();
        TermFinder {
            // Matching an empty needle is trivially true; no automaton for it.
            finder: (!n.is_empty()).then(|| {
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(!case_sensitive)
                    .match_kind(MatchKind::Standard)
                    .build([needle])
                    .expect("one literal needle builds")
            }),
            len: n.len(),
            first: n.first().is_some_and(|&b| word(b)),
            last: n.last().is_some_and(|&b| word(b)),
            term,
        }
    }

    pub fn matches(&self, hay: &str) -> bool {
        let Some(finder) = &self.finder else {
            return true;
        };
        let h = hay.as_bytes();
        finder.find_overlapping_iter(hay).any(|m| {
            let (i, end) = (m.start(), m.start() + self.len);
            let starts = i == 0 || !self.first || !word(h[i - 1]);
            let ends = end == h.len() || !self.last || !word(h[end]);
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

/// `kql_has`, `kql_hasprefix`, `kql_hassuffix` and their `_cs` forms (see [`term_match`]).
pub fn kql_term(term: Term, case_sensitive: bool) -> ScalarUDF {
    use crate::kql::*;
    fn body(name: &str, args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
        let (term, case_sensitive) = match name {
            KQL_HAS => (Term::Whole, false),
            KQL_HAS_CS => (Term::Whole, true),
            KQL_HASPREFIX => (Term::Prefix, false),
            KQL_HASPREFIX_CS => (Term::Prefix, true),
            KQL_HASSUFFIX => (Term::Suffix, false),
            _ => (Term::Suffix, true),
        };
        let hay = args[0].to_array(rows)?;
        let result: BooleanArray = match constant(&args[1]) {
            // A NULL needle: NULL whatever the haystack.
            Some(None) => return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None))),
            Some(Some(needle)) => {
                static FINDERS: Prepared<(String, bool, Term), TermFinder> = Prepared::new();
                let finder = FINDERS.get((needle.to_string(), case_sensitive, term), || {
                    Ok(TermFinder::new(needle, case_sensitive, term))
                })?;
                map_texts(&hay, |h| Some(finder.matches(h.unwrap_or(""))))?
            }
            None => {
                let needles: Vec<Option<String>> =
                    map_texts(&args[1].to_array(rows)?, |n| n.map(str::to_string))?;
                let mut row = 0;
                map_texts(&hay, |h| {
                    let needle = &needles[row];
                    row += 1;
                    needle
                        .as_deref()
                        .map(|n| term_match(h.unwrap_or(""), n, case_sensitive, term))
                })?
            }
        };
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
    let name = match (term, case_sensitive) {
        (Term::Whole, false) => KQL_HAS,
        (Term::Whole, true) => KQL_HAS_CS,
        (Term::Prefix, false) => KQL_HASPREFIX,
        (Term::Prefix, true) => KQL_HASPREFIX_CS,
        (Term::Suffix, false) => KQL_HASSUFFIX,
        (Term::Suffix, true) => KQL_HASSUFFIX_CS,
    };
    TextFunction::udf(name, 2, DataType::Boolean, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringViewArray;
    use datafusion::arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    /// Calls `f` on one text column and constant text arguments, as DataFusion would.
    fn call(f: &ScalarUDF, column: ArrayRef, constants: &[&str]) -> ArrayRef {
        let rows = column.len();
        let mut args = vec![ColumnarValue::Array(column)];
        args.extend(
            constants
                .iter()
                .map(|c| ColumnarValue::Scalar(ScalarValue::Utf8(Some(c.to_string())))),
        );
        let fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields: fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("r", f.return_type(&[]).unwrap(), true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
        .unwrap()
        .to_array(rows)
        .unwrap()
    }

    #[test]
    fn addresses_are_classed_as_defender_does() {
        assert_eq!(address_class("127.0.0.1"), Some("Loopback"));
        assert_eq!(address_class("::1"), Some("Loopback"));
        assert_eq!(address_class(" 10.1.2.3 "), Some("Private"));
        assert_eq!(address_class("172.31.255.255"), Some("Private"));
        assert_eq!(address_class("172.32.0.1"), Some("Public"));
        assert_eq!(address_class("::ffff:192.168.1.1"), Some("Private"));
        assert_eq!(address_class("fd00::1"), Some("Private"));
        assert_eq!(address_class("169.254.10.1"), Some("Reserved"));
        assert_eq!(address_class("239.255.255.250"), Some("Reserved"));
        assert_eq!(address_class("0.0.0.0"), Some("Reserved"));
        assert_eq!(address_class("8.8.8.8"), Some("Public"));
        assert_eq!(address_class("2001:4860::8888"), Some("Public"));
        assert_eq!(address_class("-"), None);
        assert_eq!(address_class("host.example"), None);
    }

    #[test]
    fn text_functions_read_lake_string_views_in_place() {
        let values: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("10.0.0.5"),
            None,
            Some("8.8.8.8"),
            Some("not an address"),
        ]));
        let classes = call(&ip_address_type(), Arc::clone(&values), &[]);
        let classes: Vec<_> = classes.as_string::<i32>().iter().collect();
        assert_eq!(classes, [Some("Private"), None, Some("Public"), None]);
        let inside = call(&cidr_match(), Arc::clone(&values), &["10.0.0.0/8"]);
        let inside: Vec<_> = inside.as_boolean().iter().collect();
        assert_eq!(inside, [Some(true), None, Some(false), Some(false)]);
        let has = call(&kql_has(false), values, &["ADDRESS"]);
        let has: Vec<_> = has.as_boolean().iter().collect();
        assert_eq!(has, [Some(false), Some(false), Some(false), Some(true)]);
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
