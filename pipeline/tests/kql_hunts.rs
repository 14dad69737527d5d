//! KQL hunts through the real pipeline (issue #11): the table views on real recordings, the same hunt
//! in SQL and in KQL giving the same alerts, and the corpus compile figures.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use ghosthunt::decode::EventSchema;
use ghosthunt::hunt::Hunt;
use ghosthunt::query;
use serde_json::Value;

/// Writes the JSON lines of an OTRF recording (a zip) into `out`.
fn unzip_lines(zip: &Path, out: &Path) {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut file = std::fs::File::create(out).unwrap();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        if !name.ends_with(".json") || name.contains("__MACOSX") {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(file, "{line}").unwrap();
        }
    }
}

/// Loads one hunt file (`.kql` or `.sql`) written into a temporary directory.
fn load(dir: &Path, name: &str, text: &str) -> Hunt {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    query::load::read_hunt(&path).unwrap_or_else(|e| panic!("{e}"))
}

async fn rows(hunt: Hunt, events: &Path) -> Vec<Value> {
    let settings = common::test_settings();
    let (alerts, _) =
        ghosthunt::testing::run_on_file(hunt, events, Arc::new(EventSchema::windows()), &settings)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    alerts.iter().map(ghosthunt::testing::evidence).collect()
}

const HEADER: &str =
    "// id: {id}\n// title: T\n// hypothesis: H.\n// severity: low\n// response:\n//   - Look.\n";

fn kql_hunt(id: &str, query: &str) -> String {
    format!("{}{query}\n", HEADER.replace("{id}", id))
}

#[tokio::test]
async fn device_process_events_find_both_sides_of_real_ps_remoting() {
    let zips = [
        "events/otrf-atomic/windows/lateral_movement/host/empire_psremoting_stager.zip",
        "events/otrf-atomic/windows/credential_access/host/psh_lsass_memory_dump_comsvcs.zip",
    ];
    let Some(corpus) = common::needs::corpus(zips) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let query = "DeviceProcessEvents\n| where InitiatingProcessFileName =~ \"wsmprovhost.exe\"\n| project Timestamp, DeviceName, FileName, ActionType, AccountName, ReportId";
    let hunt = || {
        load(
            dir.path(),
            "wsmprov_children.kql",
            &kql_hunt("wsmprov_children", query),
        )
    };

    let remoting = dir.path().join("remoting.jsonl");
    unzip_lines(&corpus.join(zips[0]), &remoting);
    let found = rows(hunt(), &remoting).await;
    // Sysmon 1 and Security 4688 of the stager's powershell.exe under wsmprovhost.exe.
    let names: Vec<(&str, &str)> = found
        .iter()
        .map(|r| {
            (
                r["FileName"].as_str().unwrap(),
                r["AccountName"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(names.contains(&("powershell.exe", "pgustavo")), "{found:?}");
    assert!(found.len() >= 2, "{found:?}");
    assert!(
        found.iter().all(|r| r["ActionType"] == "ProcessCreated"
            && r["DeviceName"] == "WORKSTATION6.theshire.local"
            && r["event_time"].is_string()),
        "{found:?}"
    );

    let quiet = dir.path().join("quiet.jsonl");
    unzip_lines(&corpus.join(zips[1]), &quiet);
    assert_eq!(rows(hunt(), &quiet).await, Vec::<Value>::new());
}

#[tokio::test]
async fn the_same_hunt_in_sql_and_in_kql_gives_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let kql = load(
        dir.path(),
        "k.kql",
        &kql_hunt(
            "k",
            "DeviceProcessEvents | where InitiatingProcessFileName =~ 'wsmprovhost.exe' or ProcessCommandLine has 'invoke-command'\n| project DeviceName, FileName, ProcessCommandLine",
        ),
    );
    let sql = load(
        dir.path(),
        "k.sql",
        &common::hunt(
            "k",
            "none",
            "",
            "SELECT \"DeviceName\", \"FileName\", \"ProcessCommandLine\", event_time FROM DeviceProcessEvents \
             WHERE lower(parent_image_name) = 'wsmprovhost.exe' OR kql_has(\"ProcessCommandLine\", 'invoke-command')"
                .replace("parent_image_name", "\"InitiatingProcessFileName\"")
                .as_str(),
        ),
    );
    let events = common::repo().join("sql/tests/ps_remoting_lateral_movement/events.jsonl");
    let (mut a, mut b) = (rows(kql, &events).await, rows(sql, &events).await);
    let key = |v: &Value| v.to_string();
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[tokio::test]
async fn translation_errors_name_the_kql_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.kql");
    std::fs::write(
        &path,
        kql_hunt(
            "bad",
            "DeviceProcessEvents\n| where InitiatingProcessParentFileName == 'x'",
        ),
    )
    .unwrap();
    let e = query::load::read_hunt(&path).unwrap_err();
    assert_eq!(e.line, 8, "{e}");
    assert!(e.reason.contains("parent's parent"), "{e}");
}

/// `kql check` over `.kql` files checks each file as the hunt loader reads it: one query. A file of two
/// queries (an editor document) is refused, as loading it would be; a collection's entry may be one.
/// A query that aggregates is planned in a window, as its hunt would be.
#[tokio::test]
async fn kql_check_reads_a_file_as_the_hunt_loader_does() {
    let dir = tempfile::tempdir().unwrap();
    let two = "DeviceProcessEvents | where FileName == \"a.exe\"\n\nDeviceFileEvents | where FileName == \"b.exe\"";
    std::fs::write(dir.path().join("two.kql"), kql_hunt("two", two)).unwrap();
    std::fs::write(
        dir.path().join("count.kql"),
        "DeviceProcessEvents | summarize n = count() by DeviceName",
    )
    .unwrap();
    let schema = EventSchema::windows();
    let report = ghosthunt::cli::kql::check(dir.path(), &schema)
        .await
        .unwrap();
    assert_eq!(
        (report.all.queries, report.all.compiled),
        (2, 1),
        "{report}"
    );
    let (origin, why) = &report.refusals[0];
    assert!(origin.ends_with("two.kql"), "{origin}");
    assert!(why.contains("DeviceFileEvents"), "{why}");
    let loaded = query::load::read_hunt(&dir.path().join("two.kql")).unwrap_err();
    assert!(loaded.reason.contains("DeviceFileEvents"), "{loaded}");
    // One file named, and a collection whose entry is the same document: each of its queries checked.
    let file = ghosthunt::cli::kql::check(&dir.path().join("count.kql"), &schema)
        .await
        .unwrap();
    assert_eq!((file.all.queries, file.all.compiled), (1, 1), "{file}");
    let collection = dir.path().join("queries.json");
    std::fs::write(&collection, serde_json::json!({ "doc": [two] }).to_string()).unwrap();
    let report = ghosthunt::cli::kql::check(&collection, &schema)
        .await
        .unwrap();
    assert_eq!(
        (report.all.queries, report.all.compiled),
        (1, 1),
        "{report}"
    );
}

#[tokio::test]
async fn corpus_queries_parse_and_compile() {
    let file = "kql/m365d-hunting-queries.json";
    let Some(corpus) = common::needs::corpus([file]) else {
        return;
    };
    let report = ghosthunt::cli::kql::check(&corpus.join(file), &EventSchema::windows())
        .await
        .unwrap();
    println!("{report}");
    assert!(report.all.queries > 300, "{report}");
    // Measured: 162 of the 262 Windows-endpoint queries compile (62%), with dynamic values, let
    // functions, mv-expand and datetime_add; a floor just below, so that regressions show.
    assert!(
        report.endpoint.compiled * 100 >= report.endpoint.queries * 60,
        "{report}"
    );
    // Each query not compiled is named: the collection's key and its number, and why.
    assert_eq!(
        report.refusals.len(),
        report.all.queries - report.all.compiled,
        "{report}"
    );
    let (origin, why) = &report.refusals[0];
    assert!(
        origin.contains("m365d-hunting-queries.json: \"") && origin.contains(" #"),
        "{origin}"
    );
    assert!(!why.is_empty());
}
