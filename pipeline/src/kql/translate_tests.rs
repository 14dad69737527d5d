use super::*;

fn sql(kql: &str) -> String {
    translate(kql, Options::default()).unwrap().sql
}

fn refusal(kql: &str) -> Refusal {
    match translate(kql, Options::default()) {
        Err(TranslateError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn unavailable_columns_are_refused_with_the_reason_and_position() {
    let r = refusal("DeviceProcessEvents\n| where InitiatingProcessParentFileName == 'x'");
    assert_eq!((r.line, r.column), (2, 9), "{r}");
    assert!(r.message.contains("parent's parent"), "{r}");
    let r = refusal("DeviceProcessEvents | mv-expand X");
    assert_eq!(r.kind, "operator mv-expand");
    let r = refusal("DeviceProcessEvents | where parse_json(FileName) == 1");
    assert_eq!(r.kind, "function parse_json");
}

#[test]
fn translation_keeps_event_time_for_alerts() {
    let s = sql("DeviceProcessEvents | project Timestamp, DeviceName");
    assert!(s.contains("event_time"), "{s}");
}
