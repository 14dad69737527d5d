//! `cidr_match(value, 'network/prefix')`: the SQL function that converted Sigma rules use for the `cidr`
//! modifier, registered in every hunt's session so that `ghosthunt sigma convert` output runs as a hunt.

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

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

/// The `cidr_match` scalar function: true when the value is an IP address inside the network, NULL for a
/// NULL value, false for anything that is not an address.
pub fn cidr_match() -> ScalarUDF {
    create_udf(
        "cidr_match",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let network = match &args[1] {
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(n))) => {
                    parse_network(n).ok_or_else(|| {
                        DataFusionError::Execution(format!("cidr_match: `{n}` is not a network"))
                    })?
                }
                _ => {
                    return Err(DataFusionError::Execution(
                        "cidr_match: the network must be a string literal".into(),
                    ));
                }
            };
            let values = args[0].clone().into_array(1)?;
            let values = values.as_string::<i32>();
            let result: BooleanArray = (0..values.len())
                .map(|i| {
                    (!values.is_null(i)).then(|| {
                        values
                            .value(i)
                            .trim()
                            .parse::<IpAddr>()
                            .is_ok_and(|ip| in_network(ip, network.0, network.1))
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(result)))
        }),
    )
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

/// Whether `needle` occurs in `hay` as whole terms: KQL's `has`. A term is a maximal run of ASCII
/// letters and digits; the match must start and end on term boundaries where the needle itself starts
/// or ends with a letter or digit (`has "-ComputerName"` matches `x -ComputerName y`).
pub fn has_term(hay: &str, needle: &str, case_sensitive: bool) -> bool {
    term_match(hay, needle, case_sensitive, Term::Whole)
}

/// Which term boundaries a match needs: both (`has`), the start (`hasprefix`) or the end (`hassuffix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    Whole,
    Prefix,
    Suffix,
}

/// Whether `needle` occurs in `hay` on the term boundaries `term` asks for (see [`has_term`]).
pub fn term_match(hay: &str, needle: &str, case_sensitive: bool, term: Term) -> bool {
    if needle.is_empty() {
        return true;
    }
    let (hay, needle) = if case_sensitive {
        (
            std::borrow::Cow::Borrowed(hay),
            std::borrow::Cow::Borrowed(needle),
        )
    } else {
        (
            std::borrow::Cow::Owned(hay.to_ascii_lowercase()),
            std::borrow::Cow::Owned(needle.to_ascii_lowercase()),
        )
    };
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric();
    let (first, last) = (word(n[0]), word(n[n.len() - 1]));
    hay.match_indices(needle.as_ref()).any(|(i, _)| {
        let end = i + n.len();
        let starts = i == 0 || !first || !word(h[i - 1]);
        let ends = end == h.len() || !last || !word(h[end]);
        match term {
            Term::Whole => starts && ends,
            Term::Prefix => starts,
            Term::Suffix => ends,
        }
    })
}

/// `kql_has(hay, needle)` / `kql_has_cs(hay, needle)`: KQL's `has` / `has_cs` (see [`has_term`]). A NULL
/// haystack is KQL's empty string: no term.
pub fn kql_has(case_sensitive: bool) -> ScalarUDF {
    kql_term(Term::Whole, case_sensitive)
}

/// `kql_has`, `kql_hasprefix`, `kql_hassuffix` and their `_cs` forms (see [`term_match`]).
pub fn kql_term(term: Term, case_sensitive: bool) -> ScalarUDF {
    use crate::kql::*;
    let name = match (term, case_sensitive) {
        (Term::Whole, false) => KQL_HAS,
        (Term::Whole, true) => KQL_HAS_CS,
        (Term::Prefix, false) => KQL_HASPREFIX,
        (Term::Prefix, true) => KQL_HASPREFIX_CS,
        (Term::Suffix, false) => KQL_HASSUFFIX,
        (Term::Suffix, true) => KQL_HASSUFFIX_CS,
    };
    create_udf(
        name,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let hay = arrays[0].as_string::<i32>();
            let needle = arrays[1].as_string::<i32>();
            let result: BooleanArray = (0..hay.len())
                .map(|i| {
                    if needle.is_null(i) {
                        return None;
                    }
                    let h = if hay.is_null(i) { "" } else { hay.value(i) };
                    Some(term_match(h, needle.value(i), case_sensitive, term))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(result)))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::{Term, has_term, term_match};

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
