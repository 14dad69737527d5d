//! Result rows → alerts: one OCSF Detection Finding (class 2004, activity Create) per row.
//!
//! The alert id is deterministic — a hash of the hunt id, the window bounds and the row's content — so a
//! replay of the same events yields the same ids and downstream deduplication by id is exact.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::query::Hunt;

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
}

/// Renders nanoseconds since the epoch as RFC 3339 UTC, fractional seconds only where non-zero.
pub fn format_time(nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::AutoSi, true)
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
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut object = Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let value = ScalarValue::try_from_array(column, row)
                    .map(|s| scalar_to_json(&s))
                    .unwrap_or_else(|e| json!(format!("<unrenderable: {e}>")));
                object.insert(field.name().clone(), value);
            }
            rows.push(object);
        }
    }
    rows
}

/// The deterministic alert id: SHA-256 over hunt id, window and row, shown as a UUID-shaped string.
pub fn alert_id(hunt_id: &str, window: Option<(i64, i64)>, row: &Map<String, Value>) -> String {
    let mut h = Sha256::new();
    h.update(hunt_id.as_bytes());
    h.update([0]);
    if let Some((start, end)) = window {
        h.update(start.to_be_bytes());
        h.update(end.to_be_bytes());
    }
    h.update([0]);
    // serde_json maps are sorted by key, so this is canonical for the same values.
    h.update(Value::Object(row.clone()).to_string().as_bytes());
    let d = h.finalize();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Event-time bounds an alert is about.
#[derive(Debug, Clone, Copy)]
pub struct AlertTime {
    /// The window, for windowed hunts.
    pub window: Option<(i64, i64)>,
    /// Oldest and newest event time of the rows the hunt ran on (used when there is no window).
    pub rows: (i64, i64),
    /// When the newest of those rows was received.
    pub received: Instant,
}

/// Builds the alerts for a hunt's result rows.
pub fn build_alerts(hunt: &Arc<Hunt>, results: &[RecordBatch], time: AlertTime) -> Vec<Alert> {
    let now_ms = Utc::now().timestamp_millis();
    rows_to_json(results)
        .into_iter()
        .map(|row| alert_from_row(hunt, row, time, now_ms))
        .collect()
}

fn row_event_time(row: &Map<String, Value>) -> Option<i64> {
    row.get("event_time")
        .and_then(Value::as_str)
        .and_then(crate::decode::json::parse_timestamp)
}

/// One alert from one result row (`now_ms`: the alert's creation time, ms since the epoch).
pub fn alert_from_row(
    hunt: &Arc<Hunt>,
    row: Map<String, Value>,
    time: AlertTime,
    now_ms: i64,
) -> Alert {
    let id = alert_id(&hunt.id, time.window, &row);
    let (start, end) = match time.window {
        Some(w) => w,
        None => match row_event_time(&row) {
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
        "evidences": [ { "data": Value::Object(row) } ],
        "metadata": {
            "version": OCSF_VERSION,
            "product": { "name": "ghosthunt", "vendor_name": "ghosthunt", "version": env!("CARGO_PKG_VERSION") },
        },
        "unmapped": unmapped,
    });
    Alert {
        id,
        hunt: Arc::clone(hunt),
        key,
        json: alert.to_string(),
        received: time.received,
        event_time: end,
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
