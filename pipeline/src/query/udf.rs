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
