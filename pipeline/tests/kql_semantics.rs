//! KQL's documented semantics, run through the real pipeline (translation, planning, windows, alerts) on
//! small Security 4688 samples read through `DeviceProcessEvents`: term matching of `has`, case rules of
//! `==` / `=~` / `in~`, `between`, `arg_max(*)`, the default `innerunique` join, `bin` as an event-time
//! window, and KQL's strings that are never null.

mod common;

use std::path::Path;
use std::sync::Arc;

use ghosthunt::decode::EventSchema;
use ghosthunt::query;
use serde_json::Value;

const HEADER: &str =
    "// id: {id}\n// title: T\n// hypothesis: H.\n// severity: low\n// response:\n//   - Look.\n";

/// A 4688 process creation on `host` at `time`: `image` under explorer.exe, with `command_line`.
fn process(time: &str, host: &str, image: &str, command_line: &str) -> String {
    let mut v: Value = serde_json::from_str(&common::event(
        time,
        4688,
        &[
            ("NewProcessName", image),
            ("CommandLine", command_line),
            ("ParentProcessName", "C:\\Windows\\explorer.exe"),
            ("SubjectUserName", "alice"),
        ],
    ))
    .unwrap();
    v["Hostname"] = Value::String(host.into());
    v.to_string()
}

/// The result rows of the KQL `query` as a hunt over `events` (JSON lines), in a stable order. A query
/// that aggregates or joins without `bin` runs in tumbling windows of one hour (the samples lie within one).
async fn run(query: &str, events: &[String]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.kql");
    let stateful = ["summarize", "count", "join"]
        .iter()
        .any(|op| query.contains(&format!("| {op}")));
    let window = if stateful && !query.contains("bin(") {
        "// window: tumbling 1h\n"
    } else {
        ""
    };
    std::fs::write(
        &path,
        format!("{}{window}{query}\n", HEADER.replace("{id}", "h")),
    )
    .unwrap();
    let hunt = query::load::read_hunt(&path).unwrap_or_else(|e| panic!("{e}"));
    let samples = dir.path().join("events.jsonl");
    std::fs::write(&samples, events.join("\n") + "\n").unwrap();
    rows(hunt, &samples).await
}

async fn rows(hunt: ghosthunt::hunt::Hunt, events: &Path) -> Vec<Value> {
    let settings = common::test_settings();
    let (alerts, dead) =
        ghosthunt::testing::run_on_file(hunt, events, Arc::new(EventSchema::windows()), &settings)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(dead.is_empty(), "{dead:?}");
    let mut rows: Vec<Value> = alerts.iter().map(ghosthunt::testing::evidence).collect();
    rows.sort_by_key(Value::to_string);
    rows
}

/// The values of `column` in `rows`, as text, sorted.
fn column(rows: &[Value], column: &str) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| match &r[column] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    v.sort();
    v
}

fn commands() -> Vec<String> {
    [
        "net user admin /add",
        "netuser.exe x",
        "C:\\Windows\\net.exe group",
        "cmd /c NET localgroup",
        "ping internet.example",
    ]
    .iter()
    .enumerate()
    .map(|(i, c)| {
        process(
            &format!("2026-12-01T10:00:0{i}Z"),
            "WS1",
            "C:\\Windows\\System32\\cmd.exe",
            c,
        )
    })
    .collect()
}

#[tokio::test]
async fn has_matches_whole_terms_without_regard_to_case() {
    let found = run(
        "DeviceProcessEvents | where ProcessCommandLine has \"net\" | project ProcessCommandLine",
        &commands(),
    )
    .await;
    // Terms are runs of letters and digits: `net.exe` holds the term `net`; `netuser` and `internet` do not.
    assert_eq!(
        column(&found, "ProcessCommandLine"),
        [
            "C:\\Windows\\net.exe group",
            "cmd /c NET localgroup",
            "net user admin /add"
        ]
    );
    let found = run(
        "DeviceProcessEvents | where ProcessCommandLine !has \"net\" and ProcessCommandLine hasprefix \"inter\" | project ProcessCommandLine",
        &commands(),
    )
    .await;
    assert_eq!(
        column(&found, "ProcessCommandLine"),
        ["ping internet.example"]
    );
    // `contains` is a substring test, also without regard to case.
    let found = run(
        "DeviceProcessEvents | where ProcessCommandLine contains \"NET\" | count",
        &commands(),
    )
    .await;
    assert_eq!(column(&found, "Count"), ["5"]);
}

#[tokio::test]
async fn has_any_and_has_all_test_whole_terms_of_a_list() {
    // The command lines a test keeps.
    let kept = |test: &'static str| async move {
        let query = format!(
            "DeviceProcessEvents | where ProcessCommandLine {test} | project ProcessCommandLine"
        );
        column(&run(&query, &commands()).await, "ProcessCommandLine")
    };
    assert_eq!(
        kept("has_any (\"NET\", \"ping\")").await,
        [
            "C:\\Windows\\net.exe group",
            "cmd /c NET localgroup",
            "net user admin /add",
            "ping internet.example"
        ]
    );
    assert_eq!(
        kept("has_all (\"net\", \"localgroup\")").await,
        ["cmd /c NET localgroup"]
    );
    assert_eq!(
        kept("has_any (\"user\", \"inter\", \"exe\")").await,
        [
            "C:\\Windows\\net.exe group",
            "net user admin /add",
            "netuser.exe x"
        ]
    );
}

#[tokio::test]
async fn equality_is_case_sensitive_and_the_tilde_forms_are_not() {
    let events = vec![
        process(
            "2026-12-01T10:00:00Z",
            "WS1",
            "C:\\Windows\\System32\\CMD.EXE",
            "a",
        ),
        process(
            "2026-12-01T10:00:01Z",
            "WS1",
            "C:\\Windows\\System32\\whoami.exe",
            "b",
        ),
    ];
    for (predicate, expected) in [
        ("FileName == \"cmd.exe\"", &[][..]),
        ("FileName =~ \"cmd.exe\"", &["a"][..]),
        ("FileName !~ \"cmd.exe\"", &["b"][..]),
        ("FileName in~ (\"Cmd.Exe\", \"x\")", &["a"][..]),
        ("FileName in (\"cmd.exe\", \"whoami.exe\")", &["b"][..]),
        ("FileName !in~ (\"cmd.exe\")", &["b"][..]),
    ] {
        let query = format!("DeviceProcessEvents | where {predicate} | project ProcessCommandLine");
        assert_eq!(
            column(&run(&query, &events).await, "ProcessCommandLine"),
            expected,
            "{predicate}"
        );
    }
}

#[tokio::test]
async fn between_includes_both_ends() {
    let found = run(
        "DeviceProcessEvents | extend Words = array_length(split(ProcessCommandLine, ' ')) | where Words between (3 .. 4) | project ProcessCommandLine",
        &commands(),
    )
    .await;
    assert_eq!(
        column(&found, "ProcessCommandLine"),
        [
            "C:\\Windows\\net.exe group",
            "cmd /c NET localgroup",
            "net user admin /add"
        ]
        .iter()
        .filter(|c| (3..=4).contains(&c.split(' ').count()))
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn arg_max_star_keeps_the_whole_latest_row_per_group() {
    let events = vec![
        process("2026-12-01T10:00:00Z", "WS1", "C:\\a.exe", "first on WS1"),
        process("2026-12-01T10:00:05Z", "WS1", "C:\\b.exe", "last on WS1"),
        process("2026-12-01T10:00:03Z", "WS2", "C:\\c.exe", "only on WS2"),
    ];
    let found = run(
        "DeviceProcessEvents | summarize arg_max(Timestamp, *) by DeviceName",
        &events,
    )
    .await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        column(&found, "ProcessCommandLine"),
        ["last on WS1", "only on WS2"]
    );
    assert_eq!(column(&found, "FileName"), ["b.exe", "c.exe"]);
}

/// An aggregation may be an expression over aggregates, as in KQL: `tostring(make_set(x))`,
/// `iff(countif(p) > 0, …)`, `strlen(max(x))`.
#[tokio::test]
async fn summarize_takes_expressions_over_aggregates() {
    let events = vec![
        process("2026-12-01T10:00:00Z", "WS1", "C:\\a.exe", "x"),
        process("2026-12-01T10:00:05Z", "WS1", "C:\\a.exe", "yy"),
        process("2026-12-01T10:00:03Z", "WS2", "C:\\c.exe", "zzz"),
    ];
    let found = run(
        "DeviceProcessEvents | summarize Names = tostring(make_set(FileName)), \
         HasA = iff(countif(FileName == \"a.exe\") > 0, \"yes\", \"no\"), \
         Longest = strlen(max(ProcessCommandLine)) + 0 by DeviceName",
        &events,
    )
    .await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(column(&found, "HasA"), ["no", "yes"]);
    assert_eq!(column(&found, "Longest"), ["2", "3"]);
    let names = column(&found, "Names");
    assert!(
        names[0].contains("a.exe") && !names[0].contains("c.exe"),
        "{names:?}"
    );
    // Unnamed, it is named as its aggregate would be (`set_FileName`), as KQL does.
    let found = run(
        "DeviceProcessEvents | summarize tostring(make_set(FileName)) by DeviceName \
         | where set_FileName has \"c.exe\" | project DeviceName",
        &events,
    )
    .await;
    assert_eq!(column(&found, "DeviceName"), ["WS2"]);
    // A name taken already is numbered, as KQL numbers it.
    let found = run(
        "DeviceProcessEvents | summarize count(), count(), make_set(FileName), \
         tostring(make_set(FileName)), count() + dcount(FileName), dcount(FileName) * 2 + count() \
         by DeviceName",
        &events,
    )
    .await;
    let mut names: Vec<&String> = found[0].as_object().unwrap().keys().collect();
    names.retain(|n| !n.starts_with("window_"));
    names.sort();
    assert_eq!(
        names,
        [
            "Column1",
            "Column2",
            "DeviceName",
            "count_",
            "count_1",
            "set_FileName",
            "set_FileName1"
        ],
        "{found:?}"
    );
    // An aggregation with no aggregate in it is refused with the reason.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.kql");
    std::fs::write(
        &path,
        format!(
            "{}// window: tumbling 1h\nDeviceProcessEvents | summarize n = strlen(FileName) by DeviceName\n",
            HEADER.replace("{id}", "h")
        ),
    )
    .unwrap();
    let e = query::load::read_hunt(&path).unwrap_err();
    assert!(e.reason.contains("summarize takes aggregations"), "{e}");
}

#[tokio::test]
async fn the_default_join_keeps_one_left_row_per_key() {
    // Two left rows for WS1 (two cmd.exe), one right row (whoami.exe): KQL's default join (innerunique)
    // dedupes the left side on the key, so one result; kind=inner gives both.
    let events = vec![
        process("2026-12-01T10:00:00Z", "WS1", "C:\\cmd.exe", "c1"),
        process("2026-12-01T10:00:01Z", "WS1", "C:\\cmd.exe", "c2"),
        process("2026-12-01T10:00:02Z", "WS1", "C:\\whoami.exe", "w"),
        process("2026-12-01T10:00:03Z", "WS2", "C:\\cmd.exe", "c3"),
    ];
    let join = |kind: &str| {
        format!(
            "DeviceProcessEvents | where FileName =~ \"cmd.exe\" | project DeviceName, Left = ProcessCommandLine\n\
             | join {kind}(DeviceProcessEvents | where FileName =~ \"whoami.exe\" | project DeviceName, Right = ProcessCommandLine) on DeviceName\n\
             | project DeviceName, Right"
        )
    };
    let unique = run(&join(""), &events).await;
    assert_eq!(column(&unique, "Right"), ["w"], "{unique:?}");
    let inner = run(&join("kind=inner "), &events).await;
    assert_eq!(column(&inner, "Right"), ["w", "w"], "{inner:?}");
    let anti = run(
        "DeviceProcessEvents | where FileName =~ \"cmd.exe\"\n| join kind=leftanti (DeviceProcessEvents | where FileName =~ \"whoami.exe\") on DeviceName\n| project ProcessCommandLine",
        &events,
    )
    .await;
    assert_eq!(column(&anti, "ProcessCommandLine"), ["c3"]);
}

#[tokio::test]
async fn bin_in_summarize_by_is_a_tumbling_event_time_window() {
    let events = vec![
        process("2026-12-01T10:01:00Z", "WS1", "C:\\cmd.exe", "a"),
        process("2026-12-01T10:02:00Z", "WS1", "C:\\cmd.exe", "b"),
        process("2026-12-01T10:07:00Z", "WS1", "C:\\cmd.exe", "c"),
        process("2026-12-01T10:08:00Z", "WS2", "C:\\cmd.exe", "d"),
    ];
    let found = run(
        "DeviceProcessEvents | summarize Processes = count() by DeviceName, bin(Timestamp, 5m)",
        &events,
    )
    .await;
    let mut got: Vec<(String, String, i64)> = found
        .iter()
        .map(|r| {
            (
                r["DeviceName"].as_str().unwrap().to_string(),
                r["Timestamp"].as_str().unwrap().to_string(),
                r["Processes"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), 3, "{found:?}");
    assert_eq!((got[0].0.as_str(), got[0].2), ("WS1", 2));
    assert!(got[0].1.starts_with("2026-12-01T10:00:00"), "{got:?}");
    assert_eq!((got[1].0.as_str(), got[1].2), ("WS1", 1));
    assert!(got[1].1.starts_with("2026-12-01T10:05:00"), "{got:?}");
    assert_eq!((got[2].0.as_str(), got[2].2), ("WS2", 1));
}

/// KQL's `coalesce` gives the first value that is not null and, for strings, not empty: a field the
/// event holds empty is skipped as one it lacks.
#[tokio::test]
async fn coalesce_skips_empty_strings_as_in_kql() {
    let mut bare: Value =
        serde_json::from_str(&process("2026-12-01T10:00:00Z", "WS1", "C:\\x.exe", "")).unwrap();
    bare.as_object_mut().unwrap().remove("CommandLine");
    let events = vec![
        bare.to_string(),
        process("2026-12-01T10:00:01Z", "WS1", "C:\\y.exe", ""),
        process("2026-12-01T10:00:02Z", "WS1", "C:\\z.exe", "z --go"),
    ];
    let query = "DeviceProcessEvents | extend Shown = coalesce(ProcessCommandLine, FileName) \
                 | extend Empty = coalesce(ProcessCommandLine, \"\") | project Shown, Empty";
    let rows = run(query, &events).await;
    assert_eq!(column(&rows, "Shown"), ["x.exe", "y.exe", "z --go"]);
    assert_eq!(column(&rows, "Empty"), ["", "", "z --go"]);
}

/// A string compared with a number is read as a number (a port or a process id written as text);
/// a string that is not one matches nothing, and nothing fails at run time (it did: "Cannot cast
/// string 'y.exe' to value of Int64", the batch's alerts lost).
#[tokio::test]
async fn a_string_compared_with_a_number_is_read_as_a_number() {
    let events = vec![
        process("2026-12-01T10:00:00Z", "WS1", "C:\\y.exe", "y 7"),
        process("2026-12-01T10:00:01Z", "WS1", "C:\\z.exe", "z 12"),
        // No number in it: extract() gives "", which is no number.
        process("2026-12-01T10:00:02Z", "WS1", "C:\\w.exe", "w"),
    ];
    for (predicate, expected) in [
        ("FileName > 5", &[][..]),
        ("FileName == 5", &[][..]),
        ("toint(\"12\") == 12", &["w.exe", "y.exe", "z.exe"][..]),
        (
            "extract(\" ([0-9]+)\", 1, ProcessCommandLine) > 10",
            &["z.exe"][..],
        ),
        (
            "10 > extract(\" ([0-9]+)\", 1, ProcessCommandLine)",
            &["y.exe"][..],
        ),
        (
            "extract(\" ([0-9]+)\", 1, ProcessCommandLine) == 7.0",
            &["y.exe"][..],
        ),
        // No number differs from every number.
        ("FileName != 5", &["w.exe", "y.exe", "z.exe"][..]),
        (
            "extract(\" ([0-9]+)\", 1, ProcessCommandLine) != 7",
            &["w.exe", "z.exe"][..],
        ),
        (
            "extract(\" ([0-9]+)\", 1, ProcessCommandLine) between (5 .. 10)",
            &["y.exe"][..],
        ),
        (
            "ProcessCommandLine !between (5 .. 10)",
            &["w.exe", "y.exe", "z.exe"][..],
        ),
        ("\"12.5\" > 12", &["w.exe", "y.exe", "z.exe"][..]),
        // Exact against a long, however large.
        ("9007199254740993 == \"9007199254740992\"", &[][..]),
        (
            "9007199254740993 == \"9007199254740993\"",
            &["w.exe", "y.exe", "z.exe"][..],
        ),
        // A null number differs from no string (w.exe's command line holds no number).
        (
            "toint(extract(\" ([0-9]+)\", 1, ProcessCommandLine)) != \"7\"",
            &["z.exe"][..],
        ),
    ] {
        let query = format!("DeviceProcessEvents | where {predicate} | project FileName");
        assert_eq!(
            column(&run(&query, &events).await, "FileName"),
            expected,
            "{predicate}"
        );
    }
}

#[tokio::test]
async fn strings_are_never_null_as_in_kql() {
    // One event without a command line at all.
    let mut bare: Value =
        serde_json::from_str(&process("2026-12-01T10:00:00Z", "WS1", "C:\\x.exe", "")).unwrap();
    bare.as_object_mut().unwrap().remove("CommandLine");
    let events = vec![
        bare.to_string(),
        process("2026-12-01T10:00:01Z", "WS1", "C:\\y.exe", "y --go"),
    ];
    // A missing string is "", so `!=` and `!has` hold for it, and `isnull` never does.
    for (predicate, expected) in [
        ("isempty(ProcessCommandLine)", &["x.exe"][..]),
        ("isnotempty(ProcessCommandLine)", &["y.exe"][..]),
        ("ProcessCommandLine != \"y --go\"", &["x.exe"][..]),
        ("ProcessCommandLine !has \"go\"", &["x.exe"][..]),
        ("isnull(ProcessCommandLine)", &[][..]),
        // A WHERE tests a positive match without the two-valued wrapping (faster); under `not`, in
        // `or` with a test the missing string passes, and in lists it still reads as "".
        ("not(ProcessCommandLine =~ \"Y --GO\")", &["x.exe"][..]),
        (
            "ProcessCommandLine =~ \"y --go\" or ProcessCommandLine == \"\"",
            &["x.exe", "y.exe"][..],
        ),
        (
            "ProcessCommandLine startswith \"y\" or not(ProcessCommandLine contains \"g\")",
            &["x.exe", "y.exe"][..],
        ),
        ("ProcessCommandLine in~ (\"Y --GO\", \"z\")", &["y.exe"][..]),
        (
            "not(ProcessCommandLine in~ (\"Y --GO\")) and FileName endswith \".exe\"",
            &["x.exe"][..],
        ),
        ("ProcessCommandLine !in (\"y --go\")", &["x.exe"][..]),
    ] {
        let query = format!("DeviceProcessEvents | where {predicate} | project FileName");
        assert_eq!(
            column(&run(&query, &events).await, "FileName"),
            expected,
            "{predicate}"
        );
    }
}

#[tokio::test]
async fn network_views_take_the_remote_end_by_direction_and_classify_it() {
    let connection = |time: &str, initiated: &str, source: &str, destination: &str| {
        serde_json::json!({"@timestamp": time, "EventID": 3, "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Hostname": "WS1", "Image": "C:\\Windows\\System32\\svchost.exe", "Initiated": initiated,
            "SourceIp": source, "SourcePort": "50000", "DestinationIp": destination, "DestinationPort": "445",
            "Protocol": "tcp"})
        .to_string()
    };
    let events = vec![
        // Outbound to a public address; inbound from a private one; outbound to loopback.
        connection("2026-12-01T10:00:00Z", "true", "10.0.0.5", "8.8.8.8"),
        connection("2026-12-01T10:00:01Z", "false", "192.168.1.20", "10.0.0.5"),
        connection("2026-12-01T10:00:02Z", "true", "127.0.0.1", "127.0.0.1"),
    ];
    let found = run(
        "DeviceNetworkEvents | project RemoteIP, RemoteIPType, LocalIP, ActionType",
        &events,
    )
    .await;
    let got: Vec<(String, String, String, String)> = found
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (
                s("RemoteIP"),
                s("RemoteIPType"),
                s("LocalIP"),
                s("ActionType"),
            )
        })
        .collect();
    let want = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert!(
        got.contains(&want("8.8.8.8", "Public", "10.0.0.5", "ConnectionSuccess")),
        "{got:?}"
    );
    assert!(
        got.contains(&want(
            "192.168.1.20",
            "Private",
            "10.0.0.5",
            "InboundConnectionAccepted"
        )),
        "{got:?}"
    );
    assert!(
        got.contains(&want(
            "127.0.0.1",
            "Loopback",
            "127.0.0.1",
            "ConnectionSuccess"
        )),
        "{got:?}"
    );
}

/// Processes whose command lines are the given texts, on one host, a second apart, as `a.exe`, `b.exe`, ….
fn processes_with(command_lines: &[&str]) -> Vec<String> {
    command_lines
        .iter()
        .enumerate()
        .map(|(i, c)| {
            process(
                &format!("2026-12-01T10:00:0{i}Z"),
                "WS1",
                &format!("C:\\{}.exe", (b'a' + i as u8) as char),
                c,
            )
        })
        .collect()
}

#[tokio::test]
async fn dynamic_values_are_read_by_path_as_in_kql() {
    // The command lines hold JSON documents, as Defender's AdditionalFields do (issue #11).
    let events = processes_with(&[
        r#"{"Command":"x","Args":["-a","-b"],"Count":5,"Nested":{"Ok":true}}"#,
        r#"{"Command":"Y","Args":[],"Count":"12"}"#,
        "not json at all",
    ]);
    for (predicate, expected) in [
        (
            r#"parse_json(ProcessCommandLine).Command == "x""#,
            &["a.exe"][..],
        ),
        (
            r#"parse_json(ProcessCommandLine)["Command"] =~ "y""#,
            &["b.exe"][..],
        ),
        (
            r#"tostring(todynamic(ProcessCommandLine).Args[1]) == "-b""#,
            &["a.exe"][..],
        ),
        (
            r#"parse_json(ProcessCommandLine).Args[-1] == "-b""#,
            &["a.exe"][..],
        ),
        // A number, or a string that reads as one, compares as a number.
        ("parse_json(ProcessCommandLine).Count > 6", &["b.exe"][..]),
        (
            "parse_json(ProcessCommandLine).Nested.Ok == true",
            &["a.exe"][..],
        ),
        (
            r#"tostring(parse_json(ProcessCommandLine).Nested) == '{"Ok":true}'"#,
            &["a.exe"][..],
        ),
        // Missing slots and indexes out of range are null, and empty as strings.
        (
            "isnull(parse_json(ProcessCommandLine).Missing)",
            &["a.exe", "b.exe", "c.exe"][..],
        ),
        (
            "isnotnull(parse_json(ProcessCommandLine).Args[1])",
            &["a.exe"][..],
        ),
        (
            "isempty(parse_json(ProcessCommandLine).Args[5])",
            &["a.exe", "b.exe", "c.exe"][..],
        ),
        (
            "array_length(parse_json(ProcessCommandLine).Args) == 0",
            &["b.exe"][..],
        ),
        (
            "array_length(bag_keys(parse_json(ProcessCommandLine))) == 4",
            &["a.exe"][..],
        ),
        // Text that is not JSON is a string value.
        (
            r#"parse_json(ProcessCommandLine) == "not json at all""#,
            &["c.exe"][..],
        ),
    ] {
        let query = format!("DeviceProcessEvents | where {predicate} | project FileName");
        assert_eq!(
            column(&run(&query, &events).await, "FileName"),
            expected,
            "{predicate}"
        );
    }
    // A dynamic column shows a string without its quotes, a bag as JSON, a missing value as null; a
    // later step reads it again.
    let found = run(
        "DeviceProcessEvents | extend D = parse_json(ProcessCommandLine) | extend Command = D.Command, Nested = D.Nested\n\
         | where isnotempty(Command) | project FileName, Command, Nested, Ok = Nested.Ok",
        &events,
    )
    .await;
    assert_eq!(column(&found, "Command"), ["Y", "x"]);
    assert_eq!(column(&found, "Nested"), ["null", r#"{"Ok":true}"#]);
    assert_eq!(column(&found, "Ok"), ["null", "true"]);
}

#[tokio::test]
async fn split_results_are_indexed_from_zero_and_from_the_end() {
    let events = processes_with(&["net user admin /add", "whoami"]);
    let found = run(
        "DeviceProcessEvents | extend Parts = split(ProcessCommandLine, ' ')\n\
         | project FileName, Second = tostring(Parts[1]), Last = tostring(Parts[-1]), Tenth = tostring(Parts[9])",
        &events,
    )
    .await;
    let got: Vec<(String, String, String, String)> = found
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("FileName"), s("Second"), s("Last"), s("Tenth"))
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a.exe".into(), "user".into(), "/add".into(), String::new()),
            (
                "b.exe".into(),
                String::new(),
                "whoami".into(),
                String::new()
            ),
        ]
    );
    let found = run(
        "DeviceProcessEvents | where split(ProcessCommandLine, ' ')[0] == 'net' | project FileName",
        &events,
    )
    .await;
    assert_eq!(column(&found, "FileName"), ["a.exe"]);
}

#[tokio::test]
async fn datetime_add_moves_by_calendar_months_and_by_fixed_lengths() {
    let events = processes_with(&["abc"]);
    let found = run(
        "DeviceProcessEvents\n\
         | project Month = datetime_add('month', 1, datetime(2026-01-31)),\n\
           Quarter = datetime_add('quarter', -1, datetime(2026-05-31 10:00:00)),\n\
           Year = datetime_add('year', 1, datetime(2028-02-29)),\n\
           Day = datetime_add('day', -1, Timestamp),\n\
           Seconds = datetime_add('second', strlen(ProcessCommandLine), Timestamp)",
        &events,
    )
    .await;
    let got = |k: &str| found[0][k].as_str().unwrap_or_default().to_string();
    // A month after 31 January is the last day of February; a year after 29 February likewise.
    assert!(got("Month").starts_with("2026-02-28T00:00:00"), "{found:?}");
    assert!(
        got("Quarter").starts_with("2026-02-28T10:00:00"),
        "{found:?}"
    );
    assert!(got("Year").starts_with("2029-02-28T00:00:00"), "{found:?}");
    assert!(got("Day").starts_with("2026-11-30T10:00:00"), "{found:?}");
    assert!(
        got("Seconds").starts_with("2026-12-01T10:00:03"),
        "{found:?}"
    );
}

/// A timespan divided by a timespan is how many of the one the other is: `(t2 - t1) / 1m` is the
/// minutes between (DataFusion refused to divide two intervals).
#[tokio::test]
async fn a_timespan_over_a_timespan_is_a_number() {
    let events = processes_with(&["abc"]);
    let found = run(
        "DeviceProcessEvents\n\
         | project Minutes = (Timestamp - datetime(2026-12-01T09:00:00Z)) / 1m,\n\
           Halves = 90m / 1h, Days = 36h / 1d",
        &events,
    )
    .await;
    let got = |k: &str| found[0][k].as_f64().unwrap_or(f64::NAN);
    assert_eq!(got("Minutes"), 60.0, "{found:?}");
    assert_eq!(got("Halves"), 1.5, "{found:?}");
    assert_eq!(got("Days"), 1.5, "{found:?}");
}

#[tokio::test]
async fn base64_decode_tostring_reads_an_encoded_command() {
    use base64::Engine as _;
    // PowerShell's -EncodedCommand is UTF-16LE: decoded as UTF-8 it keeps its NULs, which the hunters'
    // queries strip with replace (the corpus idiom).
    let utf16: Vec<u8> = "whoami /all"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(utf16);
    let events = processes_with(&[
        &format!("powershell -enc {encoded}"),
        "powershell -enc %%%%%%%%%%%%%%%%",
    ]);
    let found = run(
        "DeviceProcessEvents\n\
         | extend Decoded = replace(@'\\x00', '', base64_decode_tostring(extract('[A-Za-z0-9+/]{20,}[=]{0,2}', 0, ProcessCommandLine)))\n\
         | project FileName, Decoded, Plain = base64_decode_tostring('S3VzdG8=')",
        &events,
    )
    .await;
    assert_eq!(column(&found, "Decoded"), ["", "whoami /all"]);
    assert_eq!(column(&found, "Plain"), ["Kusto", "Kusto"]);
}

#[tokio::test]
async fn let_functions_expand_where_they_are_called() {
    let events = processes_with(&["net user", "whoami", "ping x"]);
    // A scalar function with a default, and a tabular one taking the piped table (`invoke`) and a value.
    let found = run(
        "let isRecon = (cmd:string, extra:string = 'whoami') { cmd has_any ('net', extra) };\n\
         let onHost = (T:(DeviceName:string), host:string) { T | where DeviceName =~ host };\n\
         DeviceProcessEvents | invoke onHost('ws1') | where isRecon(ProcessCommandLine) | project FileName",
        &events,
    )
    .await;
    assert_eq!(column(&found, "FileName"), ["a.exe", "b.exe"]);
    let found = run(
        "let isRecon = (cmd:string, extra:string = 'whoami') { cmd has_any ('net', extra) };\n\
         let recon = view () { DeviceProcessEvents | where isRecon(ProcessCommandLine, extra = 'ping') };\n\
         recon | project FileName",
        &events,
    )
    .await;
    assert_eq!(column(&found, "FileName"), ["a.exe", "c.exe"]);
}

#[tokio::test]
async fn mv_expand_makes_a_row_per_element_as_documented() {
    let events = processes_with(&[
        r#"{"Tools":["mimikatz",7],"Bag":{"k1":1,"k2":"v"}}"#,
        r#"{"Tools":[],"Bag":{}}"#,
        r#"{"Other":1}"#,
    ]);
    // An empty array gives no row, a missing (null) one a row with null; `to typeof(string)` only casts.
    let found = run(
        "DeviceProcessEvents | extend D = parse_json(ProcessCommandLine)\n\
         | mv-expand with_itemindex=I Tool = D.Tools to typeof(string) | project FileName, Tool, I",
        &events,
    )
    .await;
    let got: Vec<String> = found
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["FileName"].as_str().unwrap(),
                r["Tool"],
                r["I"]
            )
        })
        .collect();
    assert_eq!(
        got,
        ["a.exe \"mimikatz\" 0", "a.exe null 1", "c.exe null 0"],
        "{found:?}"
    );
    // The slots of a bag, one single-slot bag per row.
    let found = run(
        "DeviceProcessEvents | mv-expand Slot = parse_json(ProcessCommandLine).Bag\n\
         | where isnotnull(Slot) | project FileName, Key = tostring(bag_keys(Slot)[0]), Slot",
        &events,
    )
    .await;
    assert_eq!(column(&found, "Key"), ["k1", "k2"]);
    assert_eq!(column(&found, "Slot"), [r#"{"k1":1}"#, r#"{"k2":"v"}"#]);
    // Lists from split, and two lists side by side: the shorter is padded with nulls.
    let found = run(
        "DeviceProcessEvents | where FileName == 'a.exe' | mv-expand N = dynamic([1, 2, 3]), W = split('x y', ' ')\n\
         | project N, W = tostring(W)",
        &events,
    )
    .await;
    let got: Vec<String> = found
        .iter()
        .map(|r| format!("{} {}", r["N"], r["W"]))
        .collect();
    assert_eq!(got, ["1 \"x\"", "2 \"y\"", "3 \"\""], "{found:?}");
}
