//! A value found in a record → a typed cell of its column, or the reason the record is a dead letter.
//!
//! The walk (`walk.rs`) finds, for each column, the first of its paths present and not null; this module
//! coerces that value. Coercions are the ones real Windows logs need: numeric strings ("3", "0x1a4") for int
//! columns, numbers and booleans for string columns, "-" or "" as NULL in non-string columns, and — for
//! lenient string columns only — objects and arrays as their JSON text. Anything else of the wrong type is a
//! dead letter, never a silently empty cell. [`text_of`] reads one column from an already parsed object
//! (`ghosthunt produce` keys messages with it).

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

use super::DeadLetterReason;
use super::schema::{Column, ColumnType};

/// `value` as JSON text with every object's keys sorted: the same text for the same values whatever
/// order they were written or built in. Texts that are compared or hashed are built with it (a lenient
/// column's object, an alert's evidence and id): serde_json keeps insertion order once a crate in the
/// build enables its `preserve_order`, as the `evtx` crate does.
pub fn canonical_text(mut value: Value) -> String {
    value.sort_all_objects();
    value.to_string()
}

/// One decoded value, borrowing strings from the parsed JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Str(std::borrow::Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds since the Unix epoch, UTC.
    Time(i64),
}

/// Why a record was refused: the reason and a sentence for the dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub reason: DeadLetterReason,
    pub detail: String,
}

pub(crate) fn refuse(reason: DeadLetterReason, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        detail: detail.into(),
    }
}

fn lookup<'a, 'c>(
    object: &'a Map<String, Value>,
    column: &'c Column,
) -> Option<(&'c [String], &'a Value)> {
    column
        .paths
        .iter()
        .find_map(|path| walk(object, path).map(|v| (path.as_slice(), v)))
}

/// The text of a column's value in a JSON object (first matching path), if it is a string or number.
pub fn text_of(object: &Map<String, Value>, column: &Column) -> Option<String> {
    match lookup(object, column)?.1 {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Follows `keys` from `object`; a `*` key matches any child object (the first that has the rest).
fn walk<'a>(object: &'a Map<String, Value>, keys: &[String]) -> Option<&'a Value> {
    let (key, rest) = keys.split_first()?;
    if key == "*" {
        return object.values().find_map(|child| match child {
            Value::Object(inner) => walk(inner, rest),
            _ => None,
        });
    }
    match object.get(key)? {
        Value::Null => None,
        value if rest.is_empty() => Some(value),
        Value::Object(inner) => walk(inner, rest),
        // An intermediate scalar: this path does not apply to this shape.
        _ => None,
    }
}

/// A value found at a column's path, as the streaming walk saw it (strings already unescaped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Found<'a> {
    Str(&'a str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// An object or array, for a strict column (always the wrong type).
    Object,
    Array,
    /// An object or array as JSON text, for a lenient column.
    Json {
        text: &'a str,
        array: bool,
    },
}

impl Found<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Found::Str(_) => "string",
            Found::I64(_) | Found::U64(_) | Found::F64(_) => "number",
            Found::Bool(_) => "boolean",
            Found::Object | Found::Json { array: false, .. } => "object",
            Found::Array | Found::Json { array: true, .. } => "array",
        }
    }

    /// The number as JSON writes it (`serde_json::Number`'s rendering, as `Value::to_string` gives).
    fn number_text(&self) -> Option<String> {
        match *self {
            Found::I64(i) => Some(i.to_string()),
            Found::U64(u) => Some(u.to_string()),
            Found::F64(f) => serde_json::Number::from_f64(f).map(|n| n.to_string()),
            _ => None,
        }
    }
}

/// 2^53: every whole number below it is exact as a float.
const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

/// Coerces the value found at `column`'s path number `priority` to the column's type, or refuses the record.
pub fn coerce<'a>(column: &Column, priority: usize, value: Found<'a>) -> Result<Cell<'a>, Refusal> {
    let path = || column.paths[priority].join(".");
    // Windows writes "-" for "none" (IpPort of a local logon); that is no value, not a wrong type.
    if column.ty != ColumnType::String
        && let Found::Str(s) = value
        && matches!(s.trim(), "" | "-")
    {
        return Ok(Cell::Null);
    }
    let wrong = |expected: &str| {
        let shown = match value {
            Found::Str(s) => format!("{:?}", truncate(s, 60)),
            // A number where an integer goes: which number, and what is wrong with it.
            Found::U64(_) | Found::F64(_) if expected == "an integer" => {
                let why = match value {
                    Found::F64(f) if f.fract() != 0.0 => "not a whole number",
                    Found::F64(f) if f.abs() < 9.223_372_036_854_775e18 => {
                        "too large to be exact as a float: write it without the fraction"
                    }
                    _ => "beyond the 64-bit integer range",
                };
                format!("{}, {why}", value.number_text().unwrap_or_default())
            }
            other => other.kind().to_string(),
        };
        refuse(
            DeadLetterReason::WrongType,
            format!(
                "column `{}` (from `{}`) expects {expected}, found {shown}",
                column.name,
                path()
            ),
        )
    };
    let bad_time = |shown: String| {
        refuse(
            DeadLetterReason::BadTimestamp,
            format!("column `{}` (from `{}`): {shown}", column.name, path()),
        )
    };
    Ok(match column.ty {
        ColumnType::String => match value {
            Found::Str(s) => Cell::Str(s.into()),
            Found::Bool(b) => Cell::Str(if b { "true" } else { "false" }.into()),
            // A lenient (Sigma) column: a list of strings (EVTX's unnamed `Data` items) as its lines, so that
            // Sigma values match the items as written; any other object or array as its JSON text.
            Found::Json { text, array: true } => match serde_json::from_str::<Vec<String>>(text) {
                Ok(items) => Cell::Str(items.join("\n").into()),
                Err(_) => Cell::Str(text.into()),
            },
            Found::Json { text, .. } => Cell::Str(text.into()),
            Found::I64(_) | Found::U64(_) | Found::F64(_) => {
                Cell::Str(value.number_text().unwrap_or_default().into())
            }
            Found::Object | Found::Array => return Err(wrong("a string")),
        },
        ColumnType::Int => match value {
            Found::I64(i) => Cell::Int(i),
            Found::U64(u) => match i64::try_from(u) {
                Ok(i) => Cell::Int(i),
                Err(_) => return Err(wrong("an integer")),
            },
            Found::Str(s) => match parse_int(s) {
                Some(i) => Cell::Int(i),
                None => return Err(wrong("an integer")),
            },
            // A whole number written as a float (`4624.0`) is that integer, where a float holds it
            // exactly (below 2^53: a larger one may have been rounded as it was read).
            Found::F64(f) if f.fract() == 0.0 && f.abs() < EXACT_IN_F64 => Cell::Int(f as i64),
            _ => return Err(wrong("an integer")),
        },
        ColumnType::Float => match value {
            Found::I64(i) => Cell::Float(i as f64),
            Found::U64(u) => Cell::Float(u as f64),
            Found::F64(f) => Cell::Float(f),
            Found::Str(s) => match s.trim().parse::<f64>() {
                Ok(f) => Cell::Float(f),
                Err(_) => return Err(wrong("a number")),
            },
            _ => return Err(wrong("a number")),
        },
        ColumnType::Bool => match value {
            Found::Bool(b) => Cell::Bool(b),
            Found::Str(s) if s.eq_ignore_ascii_case("true") => Cell::Bool(true),
            Found::Str(s) if s.eq_ignore_ascii_case("false") => Cell::Bool(false),
            _ => return Err(wrong("a boolean")),
        },
        ColumnType::Timestamp => match value {
            Found::Str(s) => match parse_timestamp(s) {
                Some(t) => Cell::Time(t),
                None if is_time_out_of_range(s) => {
                    return Err(bad_time(format!(
                        "{:?} is a time out of the range event times are kept in (nanoseconds: 1677-09-21 to 2262-04-11)",
                        truncate(s, 60)
                    )));
                }
                None => {
                    return Err(bad_time(format!(
                        "cannot read {:?} as a timestamp",
                        truncate(s, 60)
                    )));
                }
            },
            Found::I64(_) | Found::U64(_) | Found::F64(_) => {
                let epoch = match value {
                    Found::I64(i) => Some(i),
                    Found::U64(u) => i64::try_from(u).ok(),
                    _ => None,
                };
                match epoch.and_then(epoch_to_nanos) {
                    Some(t) => Cell::Time(t),
                    None => {
                        return Err(bad_time(format!(
                            "{} is not an epoch time",
                            value.number_text().unwrap_or_default()
                        )));
                    }
                }
            }
            _ => return Err(wrong("a timestamp")),
        },
    })
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Decimal or `0x` hexadecimal (Security events write process ids as `0x1a4`).
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16)
            .ok()
            .or_else(|| u64::from_str_radix(hex, 16).ok().map(|u| u as i64)),
        None => s.parse().ok(),
    }
}

/// Renders nanoseconds since the epoch as RFC 3339 UTC, fractional seconds only where non-zero.
pub fn format_time(nanos: i64) -> String {
    DateTime::<chrono::Utc>::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// RFC 3339 (`2020-06-10T02:50:56.537Z`, 7-digit fractions as EVTX writes them), or a naive
/// `YYYY-MM-DD HH:MM:SS[.fff]` (Sysmon's UtcTime), read as UTC.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt();
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return t.and_utc().timestamp_nanos_opt();
        }
    }
    None
}

/// Whether `s` has the shape of a time [`parse_timestamp`] reads: asked once it gave none, then the time is
/// out of the range nanoseconds hold (before 1677, after 2262).
fn is_time_out_of_range(s: &str) -> bool {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s).is_ok()
        || ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .any(|f| NaiveDateTime::parse_from_str(s, f).is_ok())
}

/// Epoch numbers: seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude.
fn epoch_to_nanos(n: i64) -> Option<i64> {
    match n.unsigned_abs() {
        0..100_000_000_000 => n.checked_mul(1_000_000_000),
        100_000_000_000..100_000_000_000_000 => n.checked_mul(1_000_000),
        100_000_000_000_000..100_000_000_000_000_000 => n.checked_mul(1_000),
        _ => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_past_2262_is_named_out_of_range_not_unreadable() {
        assert_eq!(parse_timestamp("2300-01-01T00:00:00Z"), None);
        assert!(is_time_out_of_range("2300-01-01T00:00:00Z"));
        assert!(is_time_out_of_range("1600-01-01 00:00:00"));
        assert!(!is_time_out_of_range("yesterday"));
    }

    #[test]
    fn timestamps_in_the_shapes_of_real_logs() {
        let t = parse_timestamp("2017-08-30T19:13:38.1984824Z").unwrap();
        assert_eq!(t % 1_000_000_000, 198_482_400);
        assert_eq!(
            parse_timestamp("2020-06-10 02:50:54.631"),
            parse_timestamp("2020-06-10T02:50:54.631Z")
        );
        assert_eq!(parse_int("0x1a4"), Some(420));
        assert_eq!(
            epoch_to_nanos(1_700_000_000),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            epoch_to_nanos(1_700_000_000_000),
            Some(1_700_000_000_000_000_000)
        );
    }

    #[test]
    fn numbers_become_text_as_json_writes_them() {
        let column = Column {
            name: "s".into(),
            ty: ColumnType::String,
            paths: vec![vec!["s".into()]],
            doc: String::new(),
            lenient: false,
        };
        let text = |f| coerce(&column, 0, f).unwrap();
        assert_eq!(text(Found::F64(1.5)), Cell::Str("1.5".into()));
        assert_eq!(
            text(Found::F64(1e21)),
            Cell::Str(serde_json::json!(1e21).to_string().into())
        );
        assert_eq!(
            text(Found::U64(u64::MAX)),
            Cell::Str(u64::MAX.to_string().into())
        );
        assert_eq!(text(Found::Bool(true)), Cell::Str("true".into()));
    }
}
