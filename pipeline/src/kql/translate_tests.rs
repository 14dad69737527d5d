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
    // Reading a slot of Defender's AdditionalFields still says why the column is missing.
    let r = refusal("DeviceProcessEvents | where parse_json(AdditionalFields).Command == 'x'");
    assert_eq!(r.kind, "column AdditionalFields unavailable", "{r}");
}

#[test]
fn translation_keeps_event_time_for_alerts() {
    let s = sql("DeviceProcessEvents | project Timestamp, DeviceName");
    assert!(s.contains("event_time"), "{s}");
}

#[test]
fn an_access_chain_is_one_read_of_the_document() {
    let s = sql(
        "DeviceProcessEvents | where parse_json(ProcessCommandLine).a[\"b c\"][-1] == 'x' | project FileName",
    );
    assert!(
        s.contains(r#"kql_json_str("ProcessCommandLine", 'a', 'b c', -1)"#),
        "{s}"
    );
    assert_eq!(s.matches("kql_json").count(), 1, "{s}");
    // Kept as a column, the value is JSON until the end, where it is shown as KQL's tostring would.
    let s = sql("DeviceProcessEvents | extend D = todynamic(ProcessCommandLine).a | project D");
    assert!(
        s.contains(r#"kql_json_get("ProcessCommandLine", 'a') AS "D""#),
        "{s}"
    );
    assert!(s.contains(r#"kql_json_str("D") AS "D""#), "{s}");
}

#[test]
fn dynamic_values_compare_as_numbers_against_numbers() {
    let s = sql("DeviceProcessEvents | where parse_json(ProcessCommandLine).n >= 5");
    assert!(
        s.contains(r#"TRY_CAST(kql_json_str("ProcessCommandLine", 'n') AS DOUBLE) >= 5"#),
        "{s}"
    );
    let s = sql("DeviceProcessEvents | where parse_json(ProcessCommandLine).ok != true");
    assert!(s.contains("AS BOOLEAN) <> true"), "{s}");
    // A bag literal is JSON text.
    let s = sql("DeviceProcessEvents | where dynamic({\"a\": [1, {\"b\": 2}]}).a[1].b == 2");
    assert!(
        s.contains(r#"kql_json_str('{"a":[1,{"b":2}]}', 'a', 1, 'b')"#),
        "{s}"
    );
}

#[test]
fn list_indexes_count_from_zero_and_from_the_end() {
    let s = sql(
        "DeviceProcessEvents | extend A = split(ProcessCommandLine, ' ')[0], B = split(ProcessCommandLine, ' ')[-2]",
    );
    assert!(s.contains(", 1) AS \"A\""), "{s}");
    assert!(s.contains(", -2) AS \"B\""), "{s}");
    let s = sql("let i = 2; DeviceProcessEvents | extend A = split(ProcessCommandLine, ' ')[i]");
    assert!(s.contains(", 3) AS \"A\""), "{s}");
}

#[test]
fn access_to_what_is_not_dynamic_is_refused_with_its_position() {
    let r = refusal("DeviceProcessEvents\n| where FileName.Length > 3");
    assert_eq!(
        (r.kind.as_str(), r.line, r.column),
        ("dynamic access", 2, 9),
        "{r}"
    );
    assert!(r.message.contains("parse_json"), "{r}");
    let r = refusal("DeviceProcessEvents | where split(FileName, '.')['x'] == 'y'");
    assert_eq!(r.kind, "dynamic access", "{r}");
    let r = refusal("DeviceProcessEvents | where bag_keys(FileName)[0] == 'y'");
    assert_eq!(r.kind, "function bag_keys", "{r}");
}
