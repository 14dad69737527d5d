//! Result rows → alerts: one OCSF Detection Finding (class 2004, activity Create) per row.
//!
//! Evaluators report [`Detection`]s (result rows with their hunt); this is the one place those rows become
//! OCSF documents. The alert id is deterministic — a hash of the hunt id, the window bounds and the row's
//! content — so a replay of the same events yields the same ids and downstream deduplication by id is
//! exact.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampNanosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::decode::json::canonical_text;

pub use crate::decode::json::format_time;
use crate::hunt::Hunt;
use crate::runtime::{AlertTime, Detection, Rows};

/// OCSF schema version the alerts follow.
pub const OCSF_VERSION: &str = "1.3.0";

/// One alert, serialised and ready for a sink.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Deterministic id (`finding_info.uid`).
    pub id: String,
    pub hunt: Arc<Hunt>,
    /// Message key for keyed sinks: hunt id and the hunt's entity value.
    pub key: String,
    /// The OCSF JSON, one line.
    pub json: String,
    /// When the pipeline received the (newest) event behind the alert.
    pub received: Instant,
    /// Event time the alert is about (its window end, or its newest event), ns since the epoch.
    pub event_time: i64,
    /// The oldest batch behind it (see `runtime::Detection::seq`).
    pub seq: u64,
    /// The hunt's suppression key (the values of its `suppress.by` columns, or its entity); `None` for
    /// hunts without suppression.
    pub suppress_key: Option<String>,
    /// Who and what the alert is about (its row of the `alerts` table, see `incident`).
    pub subject: Arc<Subject>,
    /// An update of an alert sent before (same id), not a new one.
    pub update: bool,
}

/// The entities and the one line of evidence of an alert, read from its result row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub host: Option<String>,
    pub user: Option<String>,
    pub src_ip: Option<String>,
    /// The hunt's `entity:` column and its value.
    pub entity: Option<(String, String)>,
    pub summary: String,
}

/// Result columns naming the host, the user and the source address, in the order tried (the event
/// schema's names, then the Defender / Sentinel tables' and Sigma correlations' usual ones).
const HOST_COLUMNS: &[&str] = &[
    "host",
    "computer",
    "device_name",
    "hostname",
    "DeviceName",
    "Computer",
];
const USER_COLUMNS: &[&str] = &[
    "user",
    "target_user_name",
    "subject_user_name",
    "source_user",
    "member_name",
    "account_name",
    "AccountName",
    "InitiatingProcessAccountName",
];
const IP_COLUMNS: &[&str] = &["ip_address", "src_ip", "source_ip", "RemoteIP", "IpAddress"];
/// Columns that best say what happened, for the alert's one line of evidence.
const SUMMARY_COLUMNS: &[&str] = &[
    "command_line",
    "script_block_text",
    "ProcessCommandLine",
    "target_image",
    "image_loaded",
    "image_path",
    "service_name",
    "query_name",
    "target_filename",
    "target_object",
    "destination_ip",
    "image",
];
/// The longest summary (characters).
const SUMMARY_CHARS: usize = 160;

impl Subject {
    /// The subject of one result row of `hunt`.
    pub fn of_row(hunt: &Hunt, row: &Map<String, Value>) -> Subject {
        let text = |v: &Value| match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() || s == "-" => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let first = |names: &[&str]| names.iter().find_map(|n| row.get(*n).and_then(text));
        let entity = hunt
            .entity
            .as_ref()
            .and_then(|e| row.get(e).and_then(text).map(|v| (e.clone(), v)));
        let summary = match first(SUMMARY_COLUMNS) {
            Some(s) => s,
            // Otherwise the row's values that are not times, in column order.
            None => row
                .iter()
                .filter(|(k, _)| !k.ends_with("_time") && !k.starts_with("window_"))
                .filter_map(|(k, v)| text(v).map(|v| format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
        let summary = match summary.char_indices().nth(SUMMARY_CHARS) {
            Some((at, _)) => format!("{}…", &summary[..at]),
            None => summary,
        };
        Subject {
            host: first(HOST_COLUMNS),
            user: first(USER_COLUMNS),
            src_ip: first(IP_COLUMNS),
            entity,
            summary,
        }
    }
}

fn to_millis(nanos: i64) -> i64 {
    nanos.div_euclid(1_000_000)
}

/// One value of a result row as JSON.
pub fn scalar_to_json(value: &ScalarValue) -> Value {
    use ScalarValue as S;
    match value {
        v if v.is_null() => Value::Null,
        S::Boolean(Some(b)) => json!(b),
        S::Int8(Some(i)) => json!(i),
        S::Int16(Some(i)) => json!(i),
        S::Int32(Some(i)) => json!(i),
        S::Int64(Some(i)) => json!(i),
        S::UInt8(Some(i)) => json!(i),
        S::UInt16(Some(i)) => json!(i),
        S::UInt32(Some(i)) => json!(i),
        S::UInt64(Some(i)) => json!(i),
        S::Float32(Some(f)) => json!(f),
        S::Float64(Some(f)) => json!(f),
        S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => json!(s),
        S::TimestampNanosecond(Some(t), _) => json!(format_time(*t)),
        S::TimestampMicrosecond(Some(t), _) => json!(format_time(t.saturating_mul(1_000))),
        S::TimestampMillisecond(Some(t), _) => json!(format_time(t.saturating_mul(1_000_000))),
        S::TimestampSecond(Some(t), _) => json!(format_time(t.saturating_mul(1_000_000_000))),
        S::List(list) => list_to_json(list.as_ref()),
        S::LargeList(list) => list_to_json(list.as_ref()),
        other => json!(other.to_string()),
    }
}

fn list_to_json(list: &dyn Array) -> Value {
    // A list scalar is a one-row list array; its single element holds the values.
    let values = match list
        .as_any()
        .downcast_ref::<datafusion::arrow::array::ListArray>()
    {
        Some(l) if !l.is_empty() && !l.is_null(0) => l.value(0),
        Some(_) => return Value::Null,
        None => match list
            .as_any()
            .downcast_ref::<datafusion::arrow::array::LargeListArray>()
        {
            Some(l) if !l.is_empty() && !l.is_null(0) => l.value(0),
            _ => return Value::Null,
        },
    };
    Value::Array(
        (0..values.len())
            .map(|i| {
                ScalarValue::try_from_array(&values, i)
                    .map(|s| scalar_to_json(&s))
                    .unwrap_or(Value::Null)
            })
            .collect(),
    )
}

/// The rows of result batches as JSON objects (column name → value).
pub fn rows_to_json(batches: &[RecordBatch]) -> Vec<Map<String, Value>> {
    batches
        .iter()
        .flat_map(|batch| (0..batch.num_rows()).map(|row| row_to_json(batch, row, false)))
        .collect()
}

/// One row as a JSON object; `omit_nulls` leaves NULL columns out.
fn row_to_json(batch: &RecordBatch, row: usize, omit_nulls: bool) -> Map<String, Value> {
    let schema = batch.schema();
    let mut object = Map::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if omit_nulls && column.is_null(row) {
            continue;
        }
        let value = ScalarValue::try_from_array(column, row)
            .map(|s| scalar_to_json(&s))
            .unwrap_or_else(|e| json!(format!("<unrenderable: {e}>")));
        object.insert(field.name().clone(), value);
    }
    object
}

/// The `event_time` column of a result batch, when it has one of nanosecond timestamps.
fn event_times(batch: &RecordBatch) -> Option<&datafusion::arrow::array::TimestampNanosecondArray> {
    let column = batch.column_by_name("event_time")?;
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Some(column.as_primitive::<TimestampNanosecondType>())
        }
        _ => None,
    }
}

/// The deterministic alert id: SHA-256 over hunt id, window and row, shown as a UUID-shaped string.
pub fn alert_id(hunt_id: &str, window: Option<(i64, i64)>, row: &Map<String, Value>) -> String {
    alert_id_of_text(hunt_id, window, &canonical_text(Value::Object(row.clone())))
}

/// [`alert_id`] of a row already serialised.
fn alert_id_of_text(hunt_id: &str, window: Option<(i64, i64)>, row: &str) -> String {
    let mut h = Sha256::new();
    h.update(hunt_id.as_bytes());
    h.update([0]);
    if let Some((start, end)) = window {
        h.update(start.to_be_bytes());
        h.update(end.to_be_bytes());
    }
    h.update([0]);
    h.update(row.as_bytes());
    uuid_shaped(&h.finalize())
}

/// The first 16 bytes of a digest as a UUID-shaped string (the form of alert and incident ids).
pub fn uuid_shaped(digest: &[u8]) -> String {
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The alerts of what the evaluators detected: one per result row.
pub fn build(detections: Vec<Detection>) -> Vec<Alert> {
    let now_ms = Utc::now().timestamp_millis();
    let mut alerts = Vec::new();
    for d in detections {
        match d.rows {
            Rows::Table {
                batches,
                omit_nulls,
            } => {
                for batch in &batches {
                    let times = event_times(batch);
                    for row in 0..batch.num_rows() {
                        let time = times.filter(|t| t.is_valid(row)).map(|t| t.value(row));
                        let object = row_to_json(batch, row, omit_nulls);
                        alerts.push(alert_from_row(&d.hunt, object, d.time, time, now_ms, d.seq));
                    }
                }
            }
            Rows::Object(object) => {
                alerts.push(alert_from_row(&d.hunt, object, d.time, None, now_ms, d.seq))
            }
        }
    }
    alerts
}

/// Builds the alerts for one hunt's result rows.
pub fn build_alerts(hunt: &Arc<Hunt>, results: &[RecordBatch], time: AlertTime) -> Vec<Alert> {
    build(vec![Detection {
        hunt: Arc::clone(hunt),
        rows: Rows::Table {
            batches: results.to_vec(),
            omit_nulls: false,
        },
        time,
        seq: 0,
    }])
}

/// One alert from one result row (`row_time`: the row's own `event_time`; `now_ms`: the alert's
/// creation time, ms since the epoch).
fn alert_from_row(
    hunt: &Arc<Hunt>,
    row: Map<String, Value>,
    time: AlertTime,
    row_time: Option<i64>,
    now_ms: i64,
    seq: u64,
) -> Alert {
    let (start, end) = match time.window {
        Some(w) => w,
        None => match row_time {
            Some(t) => (t, t),
            None => time.rows,
        },
    };
    let entity = hunt
        .entity
        .as_ref()
        .and_then(|e| row.get(e))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let suppress_key = hunt.suppress.as_ref().map(|s| {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        if s.by.is_empty() {
            entity.clone().unwrap_or_default()
        } else {
            s.by.iter()
                .map(|c| text(row.get(c)))
                .collect::<Vec<_>>()
                .join("|")
        }
    });
    let subject = Arc::new(Subject::of_row(hunt, &row));
    // The row is serialised once: for its id and, spliced in below, as the alert's evidence.
    let evidence = canonical_text(Value::Object(row));
    let id = alert_id_of_text(&hunt.id, time.window, &evidence);
    let key = match &entity {
        Some(e) => format!("{}|{e}", hunt.id),
        None => hunt.id.clone(),
    };
    let attacks: Vec<Value> = hunt
        .attack
        .techniques
        .iter()
        .map(|t| {
            json!({
                "technique": { "uid": t, "src_url": technique_url(t) },
                "tactics": hunt.attack.tactics.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let steps = hunt
        .response
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {}", i + 1, s.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    let mut unmapped = json!({
        "hunt_id": hunt.id,
        "hypothesis": hunt.hypothesis,
        "response": hunt.response,
        "window": hunt.window.to_string(),
    });
    if let Some((ws, we)) = time.window {
        unmapped["window_start"] = json!(format_time(ws));
        unmapped["window_end"] = json!(format_time(we));
    }
    if let Some(e) = &entity {
        unmapped["entity"] = json!({ "name": hunt.entity, "value": e });
    }
    let alert = json!({
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": hunt.severity.ocsf_id(),
        "severity": hunt.severity.caption(),
        "status_id": 1,
        "status": "New",
        "time": now_ms,
        "start_time": to_millis(start),
        "end_time": to_millis(end),
        "message": hunt.title,
        "finding_info": {
            "uid": id,
            "title": hunt.title,
            "desc": hunt.description,
            "created_time": now_ms,
            "analytic": { "uid": hunt.id, "name": hunt.title, "type_id": 1, "type": "Rule" },
            "attacks": attacks,
            "types": ["Hunt"],
        },
        "remediation": { "desc": steps, "references": hunt.references },
        "metadata": {
            "version": OCSF_VERSION,
            "product": { "name": "ghosthunt", "vendor_name": "ghosthunt", "version": env!("CARGO_PKG_VERSION") },
        },
        "unmapped": unmapped,
    });
    let mut json = alert.to_string();
    json.pop(); // the document's closing brace
    json.push_str(",\"evidences\":[{\"data\":");
    json.push_str(&evidence);
    json.push_str("}]}");
    Alert {
        id,
        hunt: Arc::clone(hunt),
        key,
        json,
        received: time.received,
        event_time: end,
        seq,
        suppress_key,
        subject,
        update: false,
    }
}

fn technique_url(t: &str) -> String {
    format!(
        "https://attack.mitre.org/techniques/{}/",
        t.replace('.', "/")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_id_does_not_depend_on_the_order_the_row_was_built_in() {
        let mut a = Map::new();
        a.insert("b".into(), json!({"y": 1, "x": [{"d": 2, "c": 3}]}));
        a.insert("a".into(), json!("text"));
        let mut b = Map::new();
        b.insert("a".into(), json!("text"));
        b.insert("b".into(), json!({"x": [{"c": 3, "d": 2}], "y": 1}));
        assert_eq!(alert_id("h", None, &a), alert_id("h", None, &b));
        assert_eq!(
            canonical_text(Value::Object(a)),
            r#"{"a":"text","b":{"x":[{"c":3,"d":2}],"y":1}}"#
        );
    }

    #[test]
    fn alert_id_is_deterministic_and_depends_on_window_and_row() {
        let mut row = Map::new();
        row.insert("host".into(), json!("WS1"));
        let a = alert_id("h", Some((0, 60)), &row);
        assert_eq!(a, alert_id("h", Some((0, 60)), &row));
        assert_ne!(a, alert_id("h", Some((60, 120)), &row));
        assert_ne!(a, alert_id("other", Some((0, 60)), &row));
        row.insert("host".into(), json!("WS2"));
        assert_ne!(a, alert_id("h", Some((0, 60)), &row));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn times_render_as_rfc3339_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_250_000_000), "1970-01-01T00:00:01.250Z");
    }
}
