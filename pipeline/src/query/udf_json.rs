//! KQL's `dynamic` values in SQL: the functions translated KQL hunts call to read JSON, and the other
//! KQL functions that need more than DataFusion has (`base64_decode_tostring`).
//!
//! A dynamic value travels as text (Utf8): its JSON, or — when the text is not JSON — the string it holds
//! (KQL's `parse_json` of a string that is not JSON is that string). So `parse_json(x)` is `x` itself, and
//! every function here reads its first argument with [`parse_dynamic`]:
//!
//! - `kql_json_get(value, path…)`: the sub-value at the path (text keys for bags, integer indexes for
//!   arrays, negative from the end), as JSON text; a missing slot, an out-of-range index or a JSON
//!   `null` is SQL NULL. A string in the middle of a path has no slots (KQL gives null too).
//! - `kql_json_str(value, path…)`: the same, as KQL's `tostring` shows it: a string without its quotes,
//!   anything else as compact JSON.
//! - `kql_json_array_length(value)`: the length of an array, NULL for anything else (KQL's
//!   `array_length`); `kql_json_bag_keys(value)`: the keys of a bag as a JSON array, NULL otherwise.
//! - `kql_mv_items(value, kind)`: what `mv-expand` makes of a value, one list item per output row: the
//!   elements of an array; the slots of a bag as single-slot bags (`kind` 'bag') or `[key, value]`
//!   pairs ('array'); a null value is one null item; an empty array or bag no item; a scalar itself.
//! - `kql_base64_decode_tostring(text)`: the UTF-8 string the base64 text encodes, NULL when the text is
//!   not base64 or the bytes are not UTF-8 (KQL's documented behaviour).

use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use serde_json::Value;

use crate::kql::{
    KQL_BASE64_DECODE_TOSTRING, KQL_JSON_ARRAY_LENGTH, KQL_JSON_BAG_KEYS, KQL_JSON_GET,
    KQL_JSON_STR, KQL_MV_ITEMS,
};

/// A dynamic value from its text: the JSON it spells, or the string itself when it is not JSON.
pub fn parse_dynamic(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// One step of a path into a dynamic value.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a> {
    /// A bag slot, `x.name` / `x["name"]`.
    Key(&'a str),
    /// An array element, `x[i]`; negative counts from the end.
    Index(i64),
}

/// The sub-value of `value` at `path`, if there is one.
pub fn get<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut v = value;
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Object(map)) => map.get(*k)?,
            (Step::Index(i), Value::Array(items)) => {
                let len = items.len() as i64;
                let at = if *i < 0 { len + i } else { *i };
                if at < 0 || at >= len {
                    return None;
                }
                &items[at as usize]
            }
            _ => return None,
        };
    }
    Some(v)
}

/// KQL's `tostring` of a dynamic value: a string without quotes, anything else as compact JSON; NULL for
/// a null value.
pub fn to_kql_string(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A dynamic value as JSON text; NULL for a null value.
pub fn to_json_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The items `mv-expand` makes of a value (see the module documentation); `None` is a null item.
pub fn mv_items(value: Option<&Value>, pairs: bool) -> Vec<Option<String>> {
    match value {
        None | Some(Value::Null) => vec![None],
        Some(Value::Array(items)) => items.iter().map(to_json_text).collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let item = if pairs {
                    Value::Array(vec![Value::String(k.clone()), v.clone()])
                } else {
                    Value::Object([(k.clone(), v.clone())].into_iter().collect())
                };
                Some(item.to_string())
            })
            .collect(),
        Some(scalar) => vec![to_json_text(scalar)],
    }
}

/// Base64 text → the UTF-8 string it encodes; `None` when it is not base64 or not UTF-8.
pub fn base64_to_string(text: &str) -> Option<String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    String::from_utf8(engine.decode(text.trim()).ok()?).ok()
}

/// Which of the path functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Render {
    Json,
    KqlString,
}

/// `kql_json_get` / `kql_json_str`: a value and a path of any length, so it needs its own signature.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonPath {
    render: Render,
    signature: Signature,
}

impl ScalarUDFImpl for JsonPath {
    fn name(&self) -> &str {
        match self.render {
            Render::Json => KQL_JSON_GET,
            Render::KqlString => KQL_JSON_STR,
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "{} needs a value",
                self.name()
            )));
        }
        for t in &arg_types[1..] {
            if !(t.is_integer() || is_text(t) || t.is_null()) {
                return Err(DataFusionError::Plan(format!(
                    "{}: a path step is a text key or an integer index, not {t}",
                    self.name()
                )));
            }
        }
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let values = text_array(&arrays[0])?;
        let values = values.as_string::<i32>();
        enum Steps {
            Keys(ArrayRef),
            Indexes(ArrayRef),
        }
        let steps: Vec<Steps> = arrays[1..]
            .iter()
            .map(|a| {
                Ok(if a.data_type().is_integer() || a.data_type().is_null() {
                    Steps::Indexes(cast(a, &DataType::Int64)?)
                } else {
                    Steps::Keys(text_array(a)?)
                })
            })
            .collect::<Result<_>>()?;
        let mut out = StringBuilder::new();
        let mut path = Vec::with_capacity(steps.len());
        for row in 0..values.len() {
            path.clear();
            let mut complete = !values.is_null(row);
            for s in &steps {
                let step = match s {
                    Steps::Keys(a) => {
                        let a = a.as_string::<i32>();
                        (!a.is_null(row)).then(|| Step::Key(a.value(row)))
                    }
                    Steps::Indexes(a) => {
                        let a = a.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                        (!a.is_null(row)).then(|| Step::Index(a.value(row)))
                    }
                };
                match step {
                    Some(step) => path.push(step),
                    None => complete = false,
                }
            }
            let text = if complete {
                let value = parse_dynamic(values.value(row));
                get(&value, &path).and_then(|v| match self.render {
                    Render::Json => to_json_text(v),
                    Render::KqlString => to_kql_string(v),
                })
            } else {
                None
            };
            out.append_option(text);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Any string array as `Utf8`.
fn text_array(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(a, &DataType::Utf8)?)
}

/// `kql_json_get(value, path…)`.
pub fn kql_json_get() -> ScalarUDF {
    ScalarUDF::from(JsonPath {
        render: Render::Json,
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// `kql_json_str(value, path…)`.
pub fn kql_json_str() -> ScalarUDF {
    ScalarUDF::from(JsonPath {
        render: Render::KqlString,
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// A one-argument text function, NULL in → NULL out.
fn text_fn<T: Array + 'static>(
    name: &str,
    ret: DataType,
    f: impl Fn(&StringArray) -> T + Send + Sync + 'static,
) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        ret,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let text = text_array(&arrays[0])?;
            Ok(ColumnarValue::Array(Arc::new(f(text.as_string::<i32>()))))
        }),
    )
}

/// `kql_json_array_length(value)`.
pub fn kql_json_array_length() -> ScalarUDF {
    text_fn(KQL_JSON_ARRAY_LENGTH, DataType::Int64, |values| {
        values
            .iter()
            .map(|v| match parse_dynamic(v?) {
                Value::Array(items) => Some(items.len() as i64),
                _ => None,
            })
            .collect::<Int64Array>()
    })
}

/// `kql_json_bag_keys(value)`.
pub fn kql_json_bag_keys() -> ScalarUDF {
    text_fn(KQL_JSON_BAG_KEYS, DataType::Utf8, |values| {
        values
            .iter()
            .map(|v| match parse_dynamic(v?) {
                Value::Object(map) => Some(
                    Value::Array(map.keys().map(|k| Value::String(k.clone())).collect())
                        .to_string(),
                ),
                _ => None,
            })
            .collect::<StringArray>()
    })
}

/// `kql_base64_decode_tostring(text)`.
pub fn kql_base64_decode_tostring() -> ScalarUDF {
    text_fn(KQL_BASE64_DECODE_TOSTRING, DataType::Utf8, |values| {
        values
            .iter()
            .map(|v| base64_to_string(v?))
            .collect::<StringArray>()
    })
}

/// `kql_mv_items(value, kind)`: a list of JSON texts (see [`mv_items`]).
pub fn kql_mv_items() -> ScalarUDF {
    let item = Arc::new(Field::new("item", DataType::Utf8, true));
    create_udf(
        KQL_MV_ITEMS,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::List(Arc::clone(&item)),
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let values = text_array(&arrays[0])?;
            let values = values.as_string::<i32>();
            let kinds = text_array(&arrays[1])?;
            let kinds = kinds.as_string::<i32>();
            let mut out = ListBuilder::new(StringBuilder::new()).with_field(Arc::clone(&item));
            for row in 0..values.len() {
                let value = (!values.is_null(row)).then(|| parse_dynamic(values.value(row)));
                let pairs = !kinds.is_null(row) && kinds.value(row) == "array";
                for i in mv_items(value.as_ref(), pairs) {
                    out.values().append_option(i);
                }
                out.append(true);
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

/// Every function of this module, for a session to register.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        kql_json_get(),
        kql_json_str(),
        kql_json_array_length(),
        kql_json_bag_keys(),
        kql_mv_items(),
        kql_base64_decode_tostring(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_bags_and_arrays_and_miss_quietly() {
        let v = parse_dynamic(r#"{"a":{"b":[10,"x",{"c":true}]},"s":"{\"d\":1}"}"#);
        let at = |path: &[Step]| get(&v, path).and_then(to_kql_string);
        assert_eq!(
            at(&[Step::Key("a"), Step::Key("b"), Step::Index(0)]),
            Some("10".into())
        );
        assert_eq!(
            at(&[Step::Key("a"), Step::Key("b"), Step::Index(-2)]),
            Some("x".into())
        );
        assert_eq!(
            at(&[Step::Key("a"), Step::Key("b"), Step::Index(2)]),
            Some(r#"{"c":true}"#.into())
        );
        assert_eq!(at(&[Step::Key("a"), Step::Key("b"), Step::Index(3)]), None);
        assert_eq!(at(&[Step::Key("a"), Step::Key("b"), Step::Index(-4)]), None);
        assert_eq!(at(&[Step::Key("nope")]), None);
        assert_eq!(at(&[Step::Key("a"), Step::Index(0)]), None);
        // A string holding JSON is a string: it has no slots until parsed again.
        assert_eq!(at(&[Step::Key("s"), Step::Key("d")]), None);
        assert_eq!(at(&[Step::Key("s")]), Some(r#"{"d":1}"#.into()));
        // JSON text keeps the quotes of a string; KQL's tostring drops them.
        let s = get(&v, &[Step::Key("a"), Step::Key("b"), Step::Index(1)]).unwrap();
        assert_eq!(to_json_text(s), Some("\"x\"".into()));
    }

    #[test]
    fn text_that_is_not_json_is_a_string_value() {
        assert_eq!(parse_dynamic("net user"), Value::String("net user".into()));
        assert_eq!(parse_dynamic("\"quoted\""), Value::String("quoted".into()));
        assert_eq!(parse_dynamic(" 42 "), Value::from(42));
        assert_eq!(to_kql_string(&parse_dynamic("null")), None);
    }

    #[test]
    fn mv_items_follow_the_documented_expansion() {
        let items = |text: Option<&str>, pairs| mv_items(text.map(parse_dynamic).as_ref(), pairs);
        assert_eq!(
            items(Some(r#"[1,"a",null]"#), false),
            [Some("1".into()), Some("\"a\"".into()), None]
        );
        assert_eq!(items(Some("[]"), false), Vec::<Option<String>>::new());
        assert_eq!(items(Some("{}"), false), Vec::<Option<String>>::new());
        assert_eq!(items(None, false), [None]);
        assert_eq!(
            items(Some(r#"{"k":1}"#), false),
            [Some(r#"{"k":1}"#.into())]
        );
        assert_eq!(items(Some(r#"{"k":1}"#), true), [Some(r#"["k",1]"#.into())]);
    }

    #[test]
    fn base64_decodes_to_utf8_or_nothing() {
        assert_eq!(base64_to_string("S3VzdG8="), Some("Kusto".into()));
        assert_eq!(base64_to_string("S3VzdG8"), Some("Kusto".into()));
        // The documentation's example of bytes that are not UTF-8.
        assert_eq!(base64_to_string("U3RyaW5n0KHR0tGA0L7Rh9C60LA="), None);
        assert_eq!(base64_to_string("not base64!"), None);
    }
}
