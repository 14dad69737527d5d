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

#[test]
fn datetime_add_takes_calendar_periods_as_months_and_the_others_as_lengths() {
    let s = sql(
        "DeviceProcessEvents | extend A = datetime_add('Month', -15, Timestamp), B = datetime_add('quarter', 2, Timestamp), C = datetime_add('week', 1, Timestamp)",
    );
    assert!(s.contains("INTERVAL '-15 months'"), "{s}");
    assert!(s.contains("INTERVAL '6 months'"), "{s}");
    assert!(s.contains("INTERVAL '604800 seconds'"), "{s}");
    let s = sql("DeviceProcessEvents | extend A = datetime_add('second', ProcessId, Timestamp)");
    assert!(s.contains("* 1000000000, 'Duration(Nanosecond)')"), "{s}");
    let r = refusal("DeviceProcessEvents | extend A = datetime_add('month', ProcessId, Timestamp)");
    assert!(r.message.contains("constant amount"), "{r}");
    let r = refusal("DeviceProcessEvents | extend A = datetime_add('fortnight', 1, Timestamp)");
    assert!(r.message.contains("fortnight"), "{r}");
}

#[test]
fn bin_takes_a_timespan_bound_by_let_and_makes_it_the_window() {
    let t = translate(
        "let span = 10m;\nDeviceProcessEvents | summarize count() by DeviceName, bin(Timestamp, span)",
        Options::default(),
    )
    .unwrap();
    assert_eq!(t.bin_window, Some(600_000_000_000));
    assert!(t.sql.contains("window_start AS \"__by1\""), "{}", t.sql);
    // Outside summarize it is date_bin.
    let s = sql("let span = 10m; DeviceProcessEvents | extend B = bin(Timestamp, span)");
    assert!(
        s.contains("date_bin(INTERVAL '600 seconds', \"Timestamp\")"),
        "{s}"
    );
}

#[test]
fn replace_regex_rewrites_groups_in_datafusion_syntax() {
    let s = sql(
        r"DeviceProcessEvents | extend A = replace_regex(ProcessCommandLine, @'(\w+)=(\d)', @'\2 costs $\1')",
    );
    assert!(
        s.contains(r#"regexp_replace(coalesce("ProcessCommandLine", ''), '(\w+)=(\d)', '${2} costs $$${1}', 'g')"#),
        "{s}"
    );
    let r = refusal("DeviceProcessEvents | extend A = replace(@'a', FileName, ProcessCommandLine)");
    assert_eq!(r.kind, "function replace", "{r}");
}

const IS_SHELL: &str =
    "let isShell = (n:string, other:string = \"pwsh.exe\") { n in~ (\"cmd.exe\", other) };\n";

#[test]
fn scalar_functions_expand_with_their_arguments_and_defaults() {
    let s = sql(&format!(
        "{IS_SHELL}DeviceProcessEvents | where isShell(FileName)"
    ));
    assert!(
        s.contains(r#"lower("FileName") IN ('cmd.exe', 'pwsh.exe')"#),
        "{s}"
    );
    let s = sql(&format!(
        "{IS_SHELL}DeviceProcessEvents | where isShell(other = \"X.exe\", n = InitiatingProcessFileName)"
    ));
    assert!(
        s.contains(r#"lower("InitiatingProcessFileName") IN ('cmd.exe', 'x.exe')"#),
        "{s}"
    );
}

#[test]
fn wrong_arity_is_refused_at_the_argument() {
    let r = refusal(&format!(
        "{IS_SHELL}DeviceProcessEvents | where isShell(FileName, 'a', 'b')"
    ));
    assert_eq!((r.line, r.column), (2, 52), "{r}");
    assert!(
        r.message
            .contains("takes 2 arguments (n:string, other:string = …)"),
        "{r}"
    );
    let r = refusal(&format!("{IS_SHELL}DeviceProcessEvents | where isShell()"));
    assert!(r.message.contains("needs a value for `n`"), "{r}");
    let r = refusal(&format!(
        "{IS_SHELL}DeviceProcessEvents | where isShell(FileName, nope = 'a')"
    ));
    assert!(r.message.contains("no parameter `nope`"), "{r}");
}

#[test]
fn arguments_mean_what_they_meant_at_the_call_and_bodies_see_their_definition() {
    let s = sql(
        "let x = 'outer';\nlet f = (a:string) { let x = 'inner'; strcat(a, x) };\n\
         DeviceProcessEvents | extend S = f(x)",
    );
    assert!(s.contains("concat('outer', 'inner')"), "{s}");
    // A name bound after the function is not in its scope.
    let r = refusal("let f = () { later };\nlet later = 1;\nDeviceProcessEvents | extend S = f()");
    assert_eq!(r.kind, "unknown column", "{r}");
}

#[test]
fn tabular_functions_take_tables_piped_or_passed_and_views_are_tables() {
    let f = "let withExt = (T:(FileName:string), ext:string = '.exe') { T | where FileName endswith ext };\n";
    let s = sql(&format!("{f}DeviceProcessEvents | invoke withExt()"));
    assert!(s.contains("ends_with(lower(\"FileName\"), '.exe')"), "{s}");
    let s = sql(&format!(
        "{f}withExt(DeviceFileEvents, '.dll') | project FileName"
    ));
    assert!(
        s.contains("'.dll'") && s.contains("devicefileevents"),
        "{s}"
    );
    let s = sql(&format!(
        "{f}DeviceProcessEvents | where FileName in ((withExt(DeviceFileEvents) | project FileName))"
    ));
    assert!(s.contains("devicefileevents"), "{s}");
    let s = sql(
        "let v = view () { DeviceProcessEvents | where FileName == 'a' };\nv | join (v | project DeviceName) on DeviceName",
    );
    assert_eq!(s.matches("deviceprocessevents").count(), 2, "{s}");
    // The piped table must have the columns the parameter declares.
    let r = refusal("let f = (T:(Nope:string)) { T };\nDeviceProcessEvents | invoke f()");
    assert!(
        r.message.contains("`Nope`") && r.message.contains("`T` of `f`"),
        "{r}"
    );
    let r = refusal("let f = (n:long) { n + 1 };\nDeviceProcessEvents | invoke f()");
    assert_eq!(r.kind, "operator invoke", "{r}");
    let r = refusal("let f = (n:long) { n + 1 };\nf(1) | count");
    assert_eq!(r.kind, "scalar as table", "{r}");
}

#[test]
fn mv_expand_unnests_dynamic_items_and_lists() {
    let s = sql(
        "DeviceProcessEvents | mv-expand kind=array with_itemindex=i X = parse_json(ProcessCommandLine) limit 5",
    );
    assert!(
        s.contains(
            r#"unnest(array_slice(kql_mv_items("ProcessCommandLine", 'array'), 1, 5)) AS "__mv0""#
        ),
        "{s}"
    );
    assert!(s.contains(r#""__mvindex" AS "i""#), "{s}");
    let r = refusal("DeviceProcessEvents\n| mv-expand FileName");
    assert_eq!(
        (r.kind.as_str(), r.line, r.column),
        ("operator mv-expand", 2, 13),
        "{r}"
    );
    let r = refusal("DeviceProcessEvents | mv-expand X = parse_json(FileName) to typeof(datetime)");
    assert!(r.message.contains("typeof(datetime)"), "{r}");
    let r = refusal("DeviceProcessEvents | mv-expand X = split(FileName, '.') limit FileName");
    assert!(r.message.contains("row limit"), "{r}");
}

#[test]
fn datetime_literals_take_the_iso_forms_kql_documents() {
    use super::expr::iso_datetime;
    for (text, utc) in [
        ("2026-05-31", "2026-05-31T00:00:00Z"),
        ("2026-05-31 10:00", "2026-05-31T10:00:00Z"),
        ("2026-05-31T10:00", "2026-05-31T10:00:00Z"),
        ("2026-05-31 10:00:05", "2026-05-31T10:00:05Z"),
        ("2026-05-31T10:00:05.25Z", "2026-05-31T10:00:05.250Z"),
        ("2026-05-31T12:00:05+02:00", "2026-05-31T10:00:05Z"),
    ] {
        assert_eq!(iso_datetime(text).as_deref(), Some(utc), "{text}");
    }
    assert_eq!(iso_datetime("Sat, 8 Nov 14 15:05:02 GMT"), None);
    let s = sql("DeviceProcessEvents | where Timestamp > datetime(2026-05-31 10:00)");
    assert!(s.contains("'2026-05-31T10:00:00Z'"), "{s}");
    let r = refusal("DeviceProcessEvents | where Timestamp > datetime(31/05/2026)");
    assert_eq!(r.kind, "datetime format", "{r}");
}

#[test]
fn has_any_of_literals_is_one_call_and_of_other_values_an_or() {
    let s = sql(
        "DeviceProcessEvents | where ProcessCommandLine has_any ('mimikatz', 'sekurlsa') | project FileName",
    );
    assert!(
        s.contains(r#"kql_has_any("ProcessCommandLine", 'mimikatz', 'sekurlsa')"#),
        "{s}"
    );
    // A value read from the row: one `kql_has` per value.
    let s = sql(
        "DeviceProcessEvents | where ProcessCommandLine has_any ('mimikatz', FileName) | project FileName",
    );
    assert!(!s.contains("kql_has_any"), "{s}");
    assert_eq!(s.matches("kql_has(").count(), 2, "{s}");
}

#[test]
fn a_query_used_as_a_value_is_refused_by_name_with_its_place_once() {
    let text =
        "let n = toscalar(DeviceProcessEvents | count);\nDeviceProcessEvents\n| extend y = n";
    let e = translate(text, Options::default()).unwrap_err();
    let TranslateError::Refused(r) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(r.kind, "tabular expression as a value", "{r}");
    assert!(r.message.contains("toscalar"), "{r}");
    // For a message that names the file and line itself: the column, not the line again.
    assert_eq!(
        e.reason_at_column(),
        format!("KQL (column {}): {}", r.column, r.message)
    );
}
