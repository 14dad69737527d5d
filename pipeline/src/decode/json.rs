//! One JSON record → one row of typed cells, or the reason it is a dead letter.
//!
//! Each column's paths are tried in order; the first one present and not null gives the value. Coercions are
//! the ones real Windows logs need: numeric strings ("3", "0x1a4") for int columns, numbers and booleans for
//! string columns. Anything else of the wrong type is a dead letter, never a silently empty cell.

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

use super::DeadLetterReason;
use super::schema::{Column, ColumnType, EventSchema};

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

fn refuse(reason: DeadLetterReason, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        detail: detail.into(),
    }
}

/// Parses a record and decodes its cells into `row` (cleared first).
pub fn decode_record<'a>(
    schema: &EventSchema,
    object: &'a Map<String, Value>,
    row: &mut Vec<Cell<'a>>,
) -> Result<(), Refusal> {
    row.clear();
    for (index, column) in schema.columns.iter().enumerate() {
        let cell = match lookup(object, column) {
            None => Cell::Null,
            Some((path, value)) => coerce(column, path, value)?,
        };
        if index == schema.time_index && cell == Cell::Null {
            return Err(refuse(
                DeadLetterReason::MissingTimestamp,
                format!(
                    "no event time: none of the paths of `{}` is present ({})",
                    column.name,
                    column
                        .paths
                        .iter()
                        .map(|p| p.join("."))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        row.push(cell);
    }
    Ok(())
}

/// Parses bytes into a JSON object, or says why not.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| refuse(DeadLetterReason::InvalidUtf8, format!("not UTF-8: {e}")))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(refuse(
            DeadLetterReason::NotAnObject,
            format!("a JSON {} is not an event object", kind(&other)),
        )),
        Err(e) => Err(refuse(
            DeadLetterReason::InvalidJson,
            format!("invalid JSON: {e}"),
        )),
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

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn coerce<'a>(column: &Column, path: &[String], value: &'a Value) -> Result<Cell<'a>, Refusal> {
    // Windows writes "-" for "none" (IpPort of a local logon); that is no value, not a wrong type.
    if column.ty != ColumnType::String
        && let Value::String(s) = value
        && matches!(s.trim(), "" | "-")
    {
        return Ok(Cell::Null);
    }
    let wrong = |expected: &str| {
        let shown = match value {
            Value::String(s) => format!("{:?}", truncate(s, 60)),
            other => kind(other).to_string(),
        };
        refuse(
            DeadLetterReason::WrongType,
            format!(
                "column `{}` (from `{}`) expects {expected}, found {shown}",
                column.name,
                path.join(".")
            ),
        )
    };
    Ok(match column.ty {
        ColumnType::String => match value {
            Value::String(s) => Cell::Str(s.as_str().into()),
            Value::Number(n) => Cell::Str(n.to_string().into()),
            Value::Bool(b) => Cell::Str(if *b { "true" } else { "false" }.into()),
            // Columns added for Sigma fields take whatever the event holds: a list of strings (EVTX's
            // unnamed `Data` items) as its lines, anything else as its JSON text.
            Value::Array(items) if column.lenient && items.iter().all(Value::is_string) => {
                Cell::Str(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                        .into(),
                )
            }
            other if column.lenient => Cell::Str(other.to_string().into()),
            _ => return Err(wrong("a string")),
        },
        ColumnType::Int => match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Cell::Int(i),
                None => return Err(wrong("an integer")),
            },
            Value::String(s) => match parse_int(s) {
                Some(i) => Cell::Int(i),
                None => return Err(wrong("an integer")),
            },
            _ => return Err(wrong("an integer")),
        },
        ColumnType::Float => match value {
            Value::Number(n) => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) => Cell::Float(f),
                Err(_) => return Err(wrong("a number")),
            },
            _ => return Err(wrong("a number")),
        },
        ColumnType::Bool => match value {
            Value::Bool(b) => Cell::Bool(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Cell::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Cell::Bool(false),
            _ => return Err(wrong("a boolean")),
        },
        ColumnType::Timestamp => match value {
            Value::String(s) => match parse_timestamp(s) {
                Some(t) => Cell::Time(t),
                None => {
                    return Err(refuse(
                        DeadLetterReason::BadTimestamp,
                        format!(
                            "column `{}` (from `{}`): cannot read {:?} as a timestamp",
                            column.name,
                            path.join("."),
                            truncate(s, 60)
                        ),
                    ));
                }
            },
            Value::Number(n) => match n.as_i64().and_then(epoch_to_nanos) {
                Some(t) => Cell::Time(t),
                None => {
                    return Err(refuse(
                        DeadLetterReason::BadTimestamp,
                        format!(
                            "column `{}` (from `{}`): {n} is not an epoch time",
                            column.name,
                            path.join(".")
                        ),
                    ));
                }
            },
            _ => return Err(wrong("a timestamp")),
        },
    })
}

fn truncate(s: &str, max: usize) -> &str {
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

    fn decode(schema: &EventSchema, line: &str) -> Result<Vec<Cell<'static>>, Refusal> {
        let object = Box::leak(Box::new(parse_object(line.as_bytes())?));
        let mut row = Vec::new();
        decode_record(schema, object, &mut row)?;
        Ok(row)
    }

    fn cell<'a>(schema: &EventSchema, row: &'a [Cell<'static>], name: &str) -> &'a Cell<'static> {
        &row[schema.columns.iter().position(|c| c.name == name).unwrap()]
    }

    #[test]
    fn nested_and_flat_shapes_give_the_same_cells() {
        let s = EventSchema::windows();
        let nested = decode(&s, r##"{"Event":{"System":{"EventID":4625,"Channel":"Security","Computer":"DC01","TimeCreated":{"#attributes":{"SystemTime":"2024-05-01T10:00:01.5Z"}}},"EventData":{"TargetUserName":"alice","LogonType":"3","IpAddress":"10.0.0.5"}}}"##).unwrap();
        let flat = decode(&s, r#"{"@timestamp":"2024-05-01T10:00:01.500Z","EventID":4625,"Channel":"Security","Hostname":"DC01","TargetUserName":"alice","LogonType":3,"IpAddress":"10.0.0.5"}"#).unwrap();
        assert_eq!(nested, flat);
        assert_eq!(cell(&s, &flat, "logon_type"), &Cell::Int(3));
        assert_eq!(cell(&s, &flat, "host"), &Cell::Str("DC01".into()));
    }

    #[test]
    fn dash_means_no_value_in_number_columns() {
        let s = EventSchema::windows();
        let row = decode(
            &s,
            r#"{"@timestamp":"2024-05-01T10:00:00Z","EventID":4624,"IpPort":"-","IpAddress":"-"}"#,
        )
        .unwrap();
        assert_eq!(cell(&s, &row, "ip_port"), &Cell::Null);
        assert_eq!(cell(&s, &row, "ip_address"), &Cell::Str("-".into()));
    }

    #[test]
    fn event_id_with_qualifiers_object_is_read_from_its_text() {
        let s = EventSchema::windows();
        let row = decode(&s, r##"{"Event":{"System":{"EventID":{"#text":7045,"#attributes":{"Qualifiers":16384}},"TimeCreated":{"#attributes":{"SystemTime":"2024-05-01T10:00:00Z"}}}}}"##).unwrap();
        assert_eq!(cell(&s, &row, "event_id"), &Cell::Int(7045));
    }

    #[test]
    fn bad_records_are_refused_with_a_reason() {
        let s = EventSchema::windows();
        let reason = |line: &str| decode(&s, line).unwrap_err().reason;
        assert_eq!(reason("{not json"), DeadLetterReason::InvalidJson);
        assert_eq!(reason("[1,2]"), DeadLetterReason::NotAnObject);
        assert_eq!(
            reason(r#"{"EventID":1}"#),
            DeadLetterReason::MissingTimestamp
        );
        assert_eq!(
            reason(r#"{"@timestamp":"yesterday","EventID":1}"#),
            DeadLetterReason::BadTimestamp
        );
        let wrong = decode(
            &s,
            r#"{"@timestamp":"2024-05-01T10:00:00Z","EventID":"abc"}"#,
        )
        .unwrap_err();
        assert_eq!(wrong.reason, DeadLetterReason::WrongType);
        assert!(wrong.detail.contains("event_id"), "{}", wrong.detail);
        let object = decode(
            &s,
            r#"{"@timestamp":"2024-05-01T10:00:00Z","CommandLine":{"a":1}}"#,
        )
        .unwrap_err();
        assert_eq!(object.reason, DeadLetterReason::WrongType);
        assert_eq!(
            parse_object(b"\xff\xfe").unwrap_err().reason,
            DeadLetterReason::InvalidUtf8
        );
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
}
