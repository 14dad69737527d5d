//! The functions hunts call beyond DataFusion's own: `cidr_match(value, 'network/prefix')` (the Sigma
//! `cidr` modifier, so that `ghosthunt sigma convert` output runs as a hunt) and `ip_address_type(value)`
//! (Defender's address classes, for the KQL tables) here; text matching in [`super::udf_match`].
//!
//! They read text of any string type in place ([`super::texts`]), what a constant argument needs
//! prepared once.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::texts::{map_texts, test_texts};

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

/// A constant text argument: `Some(None)` for a NULL literal, `None` when the argument is a column.
pub(super) fn constant(value: &ColumnarValue) -> Option<Option<&str>> {
    match value {
        ColumnarValue::Scalar(s) if s.is_null() => Some(None),
        ColumnarValue::Scalar(s) => s.try_as_str(),
        ColumnarValue::Array(_) => None,
    }
}

/// A function over text arguments, evaluated by `body` on the batch's arguments and its row count.
#[derive(Debug)]
pub(super) struct TextFunction {
    pub(super) name: &'static str,
    /// How many arguments it takes: exactly this many, or at least `arity` when `variadic`.
    pub(super) arity: usize,
    pub(super) variadic: bool,
    pub(super) returns: DataType,
    pub(super) signature: Signature,
    pub(super) body: fn(&str, &[ColumnarValue], usize) -> Result<ColumnarValue>,
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
    pub(super) fn udf(
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
        let result = test_texts(&values, None, |v| {
            v.trim()
                .parse::<IpAddr>()
                .is_ok_and(|ip| in_network(ip, network.0, network.1))
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

/// A process-wide cache of what is prepared from a function's constant arguments (compiled regexes,
/// needle automata): prepared once, not once per batch. Hunt files hold a few hundred constants;
/// ad-hoc queries could add more, so a cache starts over past 4,096 entries.
pub(super) struct Prepared<K, V>(LazyLock<std::sync::Mutex<std::collections::HashMap<K, Arc<V>>>>);

impl<K: std::hash::Hash + Eq, V> Prepared<K, V> {
    pub(super) const fn new() -> Self {
        Prepared(LazyLock::new(Default::default))
    }

    pub(super) fn get(&self, key: K, make: impl FnOnce() -> Result<V>) -> Result<Arc<V>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::udf_match::kql_has;
    use datafusion::arrow::array::{ArrayRef, AsArray, StringViewArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    /// Calls `f` on one text column and constant text arguments, as DataFusion would.
    fn call(f: &ScalarUDF, column: ArrayRef, constants: &[&str]) -> ArrayRef {
        let constants: Vec<Option<&str>> = constants.iter().copied().map(Some).collect();
        call_with(f, column, &constants)
    }

    /// [`call`] with constants that may be NULL.
    fn call_with(f: &ScalarUDF, column: ArrayRef, constants: &[Option<&str>]) -> ArrayRef {
        let rows = column.len();
        let mut args = vec![ColumnarValue::Array(column)];
        args.extend(
            constants
                .iter()
                .map(|c| ColumnarValue::Scalar(ScalarValue::Utf8(c.map(str::to_string)))),
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
    fn has_any_answers_as_the_or_of_has_in_one_pass() {
        use crate::query::udf_match::kql_has_any;
        let hays = vec![
            Some("powershell -ComputerName srv1 Invoke-Command"),
            Some("x-computername"),
            Some("procdump64.exe -ma lsass.exe"),
            Some("PROCDUMP -accepteula"),
            Some("notprocdump mimikatzz"),
            Some("sekurlsa::logonpasswords"),
            Some(""),
            None,
        ];
        let needles = [
            "-ComputerName",
            "Invoke-Command",
            "procdump",
            "procdump64",
            "mimikatz",
            "sekurlsa",
        ];
        for array in [
            Arc::new(StringArray::from(hays.clone())) as ArrayRef,
            Arc::new(StringViewArray::from(hays.clone())),
        ] {
            let any = call(&kql_has_any(), Arc::clone(&array), &needles);
            let any: Vec<_> = any.as_boolean().iter().collect();
            // kql_has per needle, OR-ed.
            let mut or = vec![Some(false); hays.len()];
            for needle in needles {
                let has = call(&kql_has(false), Arc::clone(&array), &[needle]);
                for (o, h) in or.iter_mut().zip(has.as_boolean().iter()) {
                    *o = Some(o.unwrap() || h.unwrap());
                }
            }
            assert_eq!(any, or);
            assert_eq!(
                any,
                [
                    Some(true),
                    Some(true),
                    Some(true),
                    Some(true),
                    Some(false),
                    Some(true),
                    Some(false),
                    Some(false)
                ]
            );
            // A NULL needle: NULL where no other needle matches, as in the OR.
            let with_null = call_with(
                &kql_has_any(),
                Arc::clone(&array),
                &[Some("mimikatz"), None, Some("PROCDUMP")],
            );
            let with_null: Vec<_> = with_null.as_boolean().iter().collect();
            assert_eq!(
                with_null,
                // `procdump64` is one term: `procdump` is not a whole term of it.
                [None, None, None, Some(true), None, None, None, None]
            );
            // An empty needle matches every value, as `kql_has(x, '')` does.
            let empty = call(&kql_has_any(), array, &["zzz", ""]);
            assert!(empty.as_boolean().iter().all(|m| m == Some(true)));
        }
    }
}
