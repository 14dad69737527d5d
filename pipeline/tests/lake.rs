//! The lake: the live pipeline writes the events it hunted and its alerts to Delta tables; a retro-hunt
//! over those tables gives the same alert ids the live run gave (SQL, KQL and Sigma hunts, windowed and
//! correlated ones included); replayed input is not written twice; ad-hoc queries and maintenance work
//! on what was written; an independent reader (the `deltalake` Python package) reads it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ghosthunt::lake::read::Range;
use ghosthunt::settings::{FileSettings, OutputSettings, Settings, SourceSettings};
use serde_json::Value;

use common::{alert_and_hunt_ids as alert_ids, run_app as run};

/// `n` generated events (the seeded generator, attack scenarios included) in a JSON-lines file.
fn generated(dir: &Path, n: u64, event_rate: u64) -> PathBuf {
    let path = dir.join("events.jsonl");
    common::generated_events(&path, n, event_rate);
    path
}

fn lake_settings(lake: &Path, alerts: &Path) -> Settings {
    let mut s = common::test_settings();
    s.lake.path = lake.display().to_string();
    // Several commits per run.
    s.lake.flush_rows = 5_000;
    s.alerts = OutputSettings::File(alerts.to_path_buf());
    s.dead_letters = OutputSettings::File(alerts.with_extension("dead.jsonl"));
    s
}

fn from_file(mut s: Settings, file: &Path) -> Settings {
    s.source = SourceSettings::File(FileSettings {
        paths: vec![file.display().to_string()],
        follow: false,
        poll_interval: std::time::Duration::from_millis(100),
        max_open: 64,
    });
    s
}

/// A hunt directory under `dir` with one hunt that reads every event.
fn every_event_hunt(dir: &Path) -> PathBuf {
    let hunts = dir.join("hunts");
    std::fs::create_dir(&hunts).unwrap();
    std::fs::write(
        hunts.join("every_event.sql"),
        common::hunt(
            "every_event",
            "none",
            "",
            "SELECT host, event_time FROM events",
        ),
    )
    .unwrap();
    hunts
}

/// (incident id, activity, its alert ids) of every Incident Finding in a JSON-lines file.
fn incidents(path: &Path) -> BTreeSet<(String, u64, Vec<String>)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| common::incident_digest(&serde_json::from_str(l).unwrap()))
        .collect()
}

fn hunts_of(ids: &BTreeSet<(String, String)>) -> BTreeSet<&str> {
    ids.iter().map(|(_, h)| h.as_str()).collect()
}

async fn count(lake: &Path, sql: &str) -> Vec<Value> {
    let mut s = common::test_settings();
    s.lake.path = lake.display().to_string();
    common::lake_rows(&s, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retro_hunt_over_the_lake_gives_the_live_alert_ids_for_sql_and_kql_hunts() {
    let dir = tempfile::tempdir().unwrap();
    // 40,000 events over 20 minutes of event time: the 5- and 10-minute windows close several times.
    let events = generated(dir.path(), 40_000, 33);
    let lake = dir.path().join("lake");
    let live_alerts = dir.path().join("live.jsonl");
    let mut settings = lake_settings(&lake, &live_alerts);
    settings.incidents.output = OutputSettings::File(dir.path().join("live-incidents.jsonl"));
    let live = run(from_file(settings, &events)).await;
    assert_eq!(live.records, 40_000);

    let retro_alerts = dir.path().join("retro.jsonl");
    let mut retro = lake_settings(&lake, &retro_alerts);
    retro.source = SourceSettings::Lake(Range::default());
    retro.incidents.output = OutputSettings::File(dir.path().join("retro-incidents.jsonl"));
    let summary = run(retro).await;
    // Only the rows some hunt can use are read (the hunts' row filters pushed into the scan).
    eprintln!("retro-hunt read {} of 40000 events", summary.records);
    assert!(
        summary.records > 0 && summary.records < 40_000,
        "{summary:?}"
    );

    let live = alert_ids(&live_alerts);
    let retro = alert_ids(&retro_alerts);
    let hunts = hunts_of(&live);
    eprintln!("{} alerts from hunts {hunts:?}", live.len());
    // Windowed SQL hunts and unwindowed SQL and KQL ones must be among them, or the test shows
    // little.
    for hunt in [
        "password_spray",
        "password_guessing",
        "lsass_memory_access",
        "ps_remoting_kql",
    ] {
        assert!(hunts.contains(hunt), "{hunt} did not fire live: {hunts:?}");
    }
    assert_eq!(live, retro, "live and retro alert ids differ");
    // Read a file at a time (each of the date's files its own slice): the same.
    assert!(parquet_files(&lake.join("events")) >= 4);
    let sliced_alerts = dir.path().join("sliced.jsonl");
    let mut sliced = lake_settings(&lake, &sliced_alerts);
    sliced.source = SourceSettings::Lake(Range::default());
    sliced.lake.read_rows = 1;
    run(sliced).await;
    assert_eq!(
        live,
        alert_ids(&sliced_alerts),
        "a retro-hunt in slices differs"
    );
    // The incident rules over those alerts open and update the same incidents.
    let live_incidents = incidents(&dir.path().join("live-incidents.jsonl"));
    assert!(!live_incidents.is_empty());
    assert_eq!(
        live_incidents,
        incidents(&dir.path().join("retro-incidents.jsonl")),
        "live and retro incidents differ"
    );

    // The alerts table holds the live run's alerts (the retro-hunt writes none back).
    let rows = count(&lake, "SELECT count(DISTINCT id) AS n FROM alerts").await;
    assert_eq!(rows[0]["n"], live.len());
}

const FAILED_LOGON: &str = r#"
title: Failed network logon
id: 7d9e0c3e-0000-4000-8000-00000000aa01
name: failed_network_logon
status: test
level: low
tags: [attack.credential-access, attack.t1110]
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4625
        LogonType: 3
    condition: selection
"#;

/// Reads a field the event schema has no column for: the rules extend the schema past the table's.
const OBJECT_ACCESS_LIST: &str = r#"
title: Object read with a list of rights
id: 7d9e0c3e-0000-4000-8000-00000000aa03
status: test
level: low
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4663
        AccessList|contains: '%%4416'
    condition: selection
"#;

const FAILURES_FROM_ONE_ADDRESS: &str = r#"
title: Many failed logons from one address
id: 7d9e0c3e-0000-4000-8000-00000000aa02
status: test
level: high
correlation:
    type: event_count
    rules: [failed_network_logon]
    group-by: [IpAddress]
    timespan: 2m
    generate: true
    condition:
        gte: 10
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retro_hunt_gives_the_live_ids_for_sigma_detections_and_correlations() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("failed.yml"), FAILED_LOGON).unwrap();
    std::fs::write(rules.join("burst.yml"), FAILURES_FROM_ONE_ADDRESS).unwrap();
    std::fs::write(rules.join("access.yml"), OBJECT_ACCESS_LIST).unwrap();
    let events = generated(dir.path(), 20_000, 20);
    let lake = dir.path().join("lake");
    let with_sigma = |s: Settings| {
        let mut s = s;
        s.sigma.directories = vec![rules.clone()];
        s
    };
    let live_alerts = dir.path().join("live.jsonl");
    run(from_file(
        with_sigma(lake_settings(&lake, &live_alerts)),
        &events,
    ))
    .await;
    let retro_alerts = dir.path().join("retro.jsonl");
    let mut retro = with_sigma(lake_settings(&lake, &retro_alerts));
    retro.source = SourceSettings::Lake(Range::default());
    run(retro).await;

    let live = alert_ids(&live_alerts);
    let retro = alert_ids(&retro_alerts);
    let hunts = hunts_of(&live);
    for rule in [
        "7d9e0c3e-0000-4000-8000-00000000aa01",
        "7d9e0c3e-0000-4000-8000-00000000aa02",
    ] {
        assert!(hunts.contains(rule), "{rule} did not fire live: {hunts:?}");
    }
    assert_eq!(live, retro, "live and retro alert ids differ");

    // `hunt --hunt <rule id>`: that rule's live alerts, no other; a correlation brings the rule it
    // reads, which alerts as it does live (`generate: true`).
    for (only, fired) in [
        (
            "7d9e0c3e-0000-4000-8000-00000000aa01",
            vec!["7d9e0c3e-0000-4000-8000-00000000aa01"],
        ),
        (
            "7d9e0c3e-0000-4000-8000-00000000aa02",
            vec![
                "7d9e0c3e-0000-4000-8000-00000000aa01",
                "7d9e0c3e-0000-4000-8000-00000000aa02",
            ],
        ),
    ] {
        let alerts = dir.path().join(format!("only-{only}.jsonl"));
        let mut one = with_sigma(lake_settings(&lake, &alerts));
        one.source = SourceSettings::Lake(Range::default());
        one.hunts.only = vec![only.to_string()];
        run(one).await;
        let expected: BTreeSet<(String, String)> = live
            .iter()
            .filter(|(_, h)| fired.contains(&h.as_str()))
            .cloned()
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(alert_ids(&alerts), expected, "--hunt {only}");
    }
}

/// The span of event time (`_time_ns`) of each file the events table holds, from its Delta log.
fn file_spans(lake: &Path) -> Vec<(i64, i64)> {
    let mut spans = Vec::new();
    for entry in std::fs::read_dir(lake.join("events/_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            if let Some(stats) = action["add"]["stats"].as_str() {
                let stats: Value = serde_json::from_str(stats).unwrap();
                spans.push((
                    stats["minValues"]["_time_ns"].as_i64().unwrap(),
                    stats["maxValues"]["_time_ns"].as_i64().unwrap(),
                ));
            }
        }
    }
    spans
}

/// The row groups of each data file of the events table.
fn row_groups(lake: &Path) -> Vec<usize> {
    use deltalake_core::parquet::file::reader::{FileReader, SerializedFileReader};
    let mut counts = Vec::new();
    let mut dirs = vec![lake.join("events")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let reader =
                    SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
                counts.push(reader.metadata().num_row_groups());
            }
        }
    }
    counts
}

/// Two inputs written into the lake make files whose spans of event time overlap: a retro-hunt that reads the
/// date a file at a time carries each file's rows past the next file's first event into the next
/// slice's ordering, and finds what the date read whole finds. So does one that reads the files a row
/// group at a time (files larger than a slice; the spans of their row groups overlap too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retro_hunt_in_slices_of_overlapping_files_finds_what_the_whole_date_finds() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 30_000, 25);
    // Every other event to each of two files: both cover the whole span of event time.
    let text = std::fs::read_to_string(&events).unwrap();
    let (mut even, mut odd) = (String::new(), String::new());
    for (i, line) in text.lines().enumerate() {
        let half = if i % 2 == 0 { &mut even } else { &mut odd };
        half.push_str(line);
        half.push('\n');
    }
    let halves = [dir.path().join("even.jsonl"), dir.path().join("odd.jsonl")];
    std::fs::write(&halves[0], even).unwrap();
    std::fs::write(&halves[1], odd).unwrap();
    let lake = dir.path().join("lake");
    let live_alerts = dir.path().join("live.jsonl");
    let mut live = lake_settings(&lake, &live_alerts);
    live.lake.flush_rows = 3_000;
    live.lake.row_group_rows = 1_000;
    live.source = SourceSettings::File(FileSettings {
        paths: halves.iter().map(|p| p.display().to_string()).collect(),
        follow: false,
        poll_interval: std::time::Duration::from_millis(100),
        max_open: 64,
    });
    run(live).await;
    let spans = file_spans(&lake);
    assert!(spans.len() >= 4, "{spans:?}");
    let overlapping = spans
        .iter()
        .enumerate()
        .any(|(i, a)| spans[i + 1..].iter().any(|b| a.0 <= b.1 && b.0 <= a.1));
    assert!(overlapping, "no two files overlap in event time: {spans:?}");

    let retro = |name: &str, read_rows: usize| {
        let alerts = dir.path().join(name);
        let mut s = lake_settings(&lake, &alerts);
        s.source = SourceSettings::Lake(Range::default());
        s.lake.read_rows = read_rows;
        async move {
            run(s).await;
            alert_ids(&alerts)
        }
    };
    let groups = row_groups(&lake);
    assert!(groups.iter().any(|g| *g >= 3), "{groups:?}");
    let whole = retro("whole.jsonl", usize::MAX).await;
    let by_file = retro("by-file.jsonl", 10_000).await;
    let by_two_groups = retro("by-two-groups.jsonl", 2_000).await;
    let by_group = retro("by-group.jsonl", 1).await;
    let hunts = hunts_of(&whole);
    for hunt in ["password_spray", "lsass_memory_access"] {
        assert!(hunts.contains(hunt), "{hunt} did not fire: {hunts:?}");
    }
    for (sliced, how) in [
        (by_file, "files"),
        (by_two_groups, "two row groups"),
        (by_group, "row groups"),
    ] {
        assert_eq!(
            whole, sliced,
            "a retro-hunt in slices of {how} differs from one over the whole date"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retro_hunt_over_a_time_range_reads_only_that_range() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 6_000, 5);
    let lake = dir.path().join("lake");
    run(from_file(
        lake_settings(&lake, &dir.path().join("live.jsonl")),
        &events,
    ))
    .await;
    let all = count(
        &lake,
        "SELECT min(event_time) AS lo, max(event_time) AS hi FROM events",
    )
    .await;
    let lo = ghosthunt::lake::read::parse_time(all[0]["lo"].as_str().unwrap()).unwrap();
    // The first ten minutes of event time (5 events/s), for a hunt that reads every event.
    let hunts = every_event_hunt(dir.path());
    let mut retro = lake_settings(&lake, &dir.path().join("retro.jsonl"));
    retro.hunts.builtin = false;
    retro.hunts.directories = vec![hunts];
    retro.source = SourceSettings::Lake(Range {
        from: Some(lo),
        to: Some(lo + 600_000_000_000),
    });
    let summary = run(retro).await;
    let expected = count(
        &lake,
        &format!(
            "SELECT count(*) AS n FROM lake_events WHERE _time_ns >= {lo} AND _time_ns < {}",
            lo + 600_000_000_000i64
        ),
    )
    .await;
    assert_eq!(summary.records, expected[0]["n"].as_u64().unwrap());
    assert!(
        summary.records > 2_900 && summary.records < 4_000,
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retro_hunt_reads_the_dates_its_range_reaches_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    // Ten logons an hour apart (06:00 to 15:00) on each of three dates.
    let lines: Vec<String> = ["2026-11-01", "2026-11-02", "2026-11-03"]
        .iter()
        .flat_map(|date| {
            (6..16).map(move |hour| {
                common::event(
                    &format!("{date}T{hour:02}:00:00Z"),
                    4624,
                    &[("TargetUserName", "alice"), ("LogonType", "3")],
                )
            })
        })
        .collect();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let lake = dir.path().join("lake");
    run(from_file(
        lake_settings(&lake, &dir.path().join("live.jsonl")),
        &events,
    ))
    .await;
    let hunts = every_event_hunt(dir.path());
    let time = |t: &str| ghosthunt::lake::read::parse_time(t).unwrap();
    for (from, to, expected) in [
        (None, None, 30),
        (Some("2026-11-02"), Some("2026-11-03"), 10),
        // Within dates at both ends: 12:00 to 15:00 of the first, 06:00 to 08:00 of the last.
        (
            Some("2026-11-01T12:00:00Z"),
            Some("2026-11-03T08:30:00Z"),
            17,
        ),
        (Some("2026-11-03T15:00:00.000000001Z"), None, 0),
        (None, Some("2026-11-01T06:00:00Z"), 0),
    ] {
        let mut retro = lake_settings(&lake, &dir.path().join("retro.jsonl"));
        retro.hunts.builtin = false;
        retro.hunts.directories = vec![hunts.clone()];
        retro.source = SourceSettings::Lake(Range {
            from: from.map(time),
            to: to.map(time),
        });
        let summary = run(retro).await;
        assert_eq!(summary.records, expected, "from {from:?} to {to:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_same_file_again_adds_nothing_to_the_events_table() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 12_000, 2_000);
    let lake = dir.path().join("lake");
    for run_no in 0..2 {
        let alerts = dir.path().join(format!("alerts-{run_no}.jsonl"));
        run(from_file(lake_settings(&lake, &alerts), &events)).await;
    }
    let rows = count(
        &lake,
        "SELECT count(*) AS n, count(DISTINCT (_input, _offset)) AS keys FROM events",
    )
    .await;
    assert_eq!(rows[0]["n"], 12_000);
    assert_eq!(rows[0]["keys"], 12_000);
    // The raw record is kept: it decodes to the event it was.
    let first = std::fs::read_to_string(&events).unwrap();
    let first = first.lines().next().unwrap();
    let raw = count(&lake, "SELECT _raw FROM events WHERE _offset = 1").await;
    assert_eq!(raw[0]["_raw"], first);
}

/// Two runs writing one file into one lake at once, the second started behind the first: a commit of
/// rows the other has written is refused ("another writer"), so the table holds each record once
/// whatever the timing. (The second's commit came after it had read the first's: Delta's conflict
/// check saw nothing, and 21–25 % of the rows landed twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_writing_one_input_into_one_lake_add_no_row_twice() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 60_000, 2_000);
    let lake = dir.path().join("lake");
    let settings = |name: &str| {
        let mut s = from_file(lake_settings(&lake, &dir.path().join(name)), &events);
        s.lake.flush_rows = 2_000;
        s
    };
    let run_one = |s: Settings| {
        ghosthunt::app::run(
            s,
            ghosthunt::app::Handles::default(),
            tokio_util::sync::CancellationToken::new(),
        )
    };
    let first = tokio::spawn(run_one(settings("a.jsonl")));
    let log = lake.join("events/_delta_log");
    let commits = || {
        std::fs::read_dir(&log).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while commits() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = run_one(settings("b.jsonl")).await;
    let first = first.await.unwrap();
    for result in [first, second] {
        if let Err(e) = result {
            let text = format!("{:#}", anyhow::Error::from(e));
            assert!(
                text.contains("another writer") || text.contains("oncurrent"),
                "{text}"
            );
        }
    }
    let rows = count(
        &lake,
        "SELECT count(*) AS n, count(DISTINCT _offset) AS offsets FROM events",
    )
    .await;
    assert_eq!(rows[0]["n"], rows[0]["offsets"], "a row twice: {rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_under_the_same_path_is_written_whole_and_read_again_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let path = dir.path().join("events.jsonl");
    // Other events under the same name, as after a rotation: their line numbers start from 1 again.
    let (first, second) = (
        dir.path().join("first.jsonl"),
        dir.path().join("second.jsonl"),
    );
    common::generated_events(&first, 6_000, 2_000);
    common::generated_events(&second, 4_001, 1_000);
    // Both begin with the generator's first event: a file is known by its path and its first record.
    let text = std::fs::read_to_string(&second).unwrap();
    std::fs::write(&second, text.split_once('\n').unwrap().1).unwrap();
    for (run_no, contents) in [&first, &second, &second, &first].into_iter().enumerate() {
        std::fs::copy(contents, &path).unwrap();
        let alerts = dir.path().join(format!("alerts-{run_no}.jsonl"));
        run(from_file(lake_settings(&lake, &alerts), &path)).await;
    }
    let rows = count(
        &lake,
        "SELECT count(*) AS n, count(DISTINCT _raw) AS records FROM events",
    )
    .await;
    assert_eq!(rows[0]["n"], 10_000, "each file's events once: {rows:?}");
    assert_eq!(rows[0]["records"], 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_hoc_queries_read_the_lake_in_sql_and_kql_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 4_000, 2_000);
    let lake = dir.path().join("lake");
    run(from_file(
        lake_settings(&lake, &dir.path().join("live.jsonl")),
        &events,
    ))
    .await;
    let mut s = common::test_settings();
    s.lake.path = lake.display().to_string();
    let query = |text: &'static str, kql: bool, format| {
        let s = s.clone();
        async move {
            let mut out = Vec::new();
            let result =
                ghosthunt::cli::lake::query(&s, text, kql, Range::default(), format, &mut out)
                    .await;
            (result, String::from_utf8(out).unwrap())
        }
    };
    use ghosthunt::cli::lake::Format;
    let (n, csv) = query(
        "SELECT event_id, count(*) AS n FROM events GROUP BY event_id ORDER BY n DESC LIMIT 3",
        false,
        Format::Csv,
    )
    .await;
    assert_eq!(n.unwrap(), 3);
    assert!(csv.starts_with("event_id,n\n"), "{csv}");
    let (n, json) = query(
        "DeviceProcessEvents | where FileName =~ \"powershell.exe\" | count",
        true,
        Format::Json,
    )
    .await;
    assert_eq!(n.unwrap(), 1);
    let counted: Value = serde_json::from_str(json.trim()).unwrap();
    assert!(counted["Count"].as_i64().unwrap() > 0, "{counted}");
    // Over stored events no window is evaluated: `bin` bins each row's own time (2 s of events).
    let (n, csv) = query(
        "DeviceProcessEvents | summarize n=count() by bin(Timestamp, 1s)",
        true,
        Format::Csv,
    )
    .await;
    let (_, all) = query("DeviceProcessEvents | count", true, Format::Csv).await;
    let bins: Vec<(&str, i64)> = csv
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap())
        .map(|(bin, n)| (bin, n.parse().unwrap()))
        .collect();
    assert!(n.unwrap() >= 2, "{csv}");
    assert!(
        bins.iter().all(|(bin, _)| !bin.is_empty()),
        "a bin of no time: {csv}"
    );
    // A query's result has the columns it projects (a hunt's carries event_time for its alerts).
    let (_, projected) = query(
        "DeviceProcessEvents | project DeviceName | take 1",
        true,
        Format::Csv,
    )
    .await;
    assert_eq!(projected.lines().next(), Some("DeviceName"), "{projected}");
    let total: i64 = all.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(bins.iter().map(|(_, n)| n).sum::<i64>(), total, "{csv}");
    // Counting what no row matches gives one row of 0, as in KQL (not an empty table).
    for text in [
        "DeviceProcessEvents | where FileName == \"nothing.exe\" | count",
        "DeviceProcessEvents | where FileName == \"nothing.exe\" | summarize Count=count()",
    ] {
        let (n, csv) = query(text, true, Format::Csv).await;
        assert_eq!((n.unwrap(), csv.as_str()), (1, "Count\n0\n"), "{text}");
    }
    // Ad hoc, `ago()` is from the time the query runs (the events are of 2026-01-01), not from each
    // row's own time (where `Timestamp < ago(1h)` keeps no row and `> ago(1h)` every row).
    for (text, expected) in [
        (
            "DeviceProcessEvents | where Timestamp < ago(1h) | count",
            total,
        ),
        ("DeviceProcessEvents | where Timestamp > ago(1h) | count", 0),
    ] {
        let (_, csv) = query(text, true, Format::Csv).await;
        assert_eq!(csv, format!("Count\n{expected}\n"), "{text}");
    }
    let (table, text) = query("SELECT count(*) AS n FROM alerts", false, Format::Table).await;
    assert_eq!(table.unwrap(), 1);
    assert!(text.contains("| n "), "{text}");
    // A lake without its alerts table (never written, or removed) is still queried for its events.
    let bare = dir.path().join("bare");
    copy_dir(&lake.join("events"), &bare.join("events"));
    let mut bare_settings = s.clone();
    bare_settings.lake.path = bare.display().to_string();
    let mut out = Vec::new();
    let n = ghosthunt::cli::lake::query(
        &bare_settings,
        "SELECT count(*) AS n FROM events",
        false,
        Range::default(),
        Format::Csv,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(String::from_utf8(out).unwrap(), "n\n4000\n");
    // No row: the CSV still names its columns.
    let (n, csv) = query(
        "SELECT event_id, host FROM events WHERE event_id = -1",
        false,
        Format::Csv,
    )
    .await;
    assert_eq!(n.unwrap(), 0);
    assert_eq!(csv, "event_id,host\n");
    // ... and so does the table.
    let (n, text) = query(
        "SELECT event_id, host FROM events WHERE event_id = -1",
        false,
        Format::Table,
    )
    .await;
    assert_eq!(n.unwrap(), 0);
    assert!(
        text.contains("| event_id | host |") && text.ends_with("0 row(s)\n"),
        "{text}"
    );
    // A terminal's table shows the first 1,000 rows and counts the rest.
    let (n, text) = query("SELECT _offset FROM events", false, Format::Table).await;
    assert_eq!(n.unwrap(), 4_000);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("| ")).count(),
        1 + 1_000,
        "{text}"
    );
    assert!(
        text.ends_with("4000 rows, the first 1000 shown (--format csv or json prints them all)\n"),
        "{}",
        &text[text.len() - 200..]
    );
    for refused in [
        "DROP VIEW events",
        "INSERT INTO lake_events SELECT * FROM lake_events",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SELECT 1; SELECT 2",
    ] {
        let (result, _) = query(refused, false, Format::Json).await;
        assert!(result.is_err(), "{refused} was not refused");
    }
    let (result, _) = query("SELECT 1; SELECT 2", false, Format::Json).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "a query is one SELECT: the text holds several statements (separated by `;`)"
    );
}

/// Data files of a Delta table (not its log).
fn parquet_paths(table: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() && !p.ends_with("_delta_log") {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(table, &mut out);
    out
}

fn parquet_files(table: &Path) -> usize {
    parquet_paths(table).len()
}

/// The event times (`_time_ns`) of a Parquet file of the events table, in the file's row order.
fn file_times(path: &Path) -> Vec<i64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::parquet::arrow::ProjectionMask;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let at = builder
        .schema()
        .index_of("_time_ns")
        .expect("a _time_ns column");
    let mask = ProjectionMask::roots(builder.parquet_schema(), [at]);
    builder
        .with_projection(mask)
        .build()
        .unwrap()
        .flat_map(|b| {
            b.unwrap()
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_compacts_small_files_in_event_time_order_and_vacuum_deletes_the_replaced_ones() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 10_000, 2_000);
    let lake = dir.path().join("lake");
    let mut s = lake_settings(&lake, &dir.path().join("live.jsonl"));
    // A commit, so a file, after every batch, and batches of at most 500 rows: 20 files at least, however
    // the batches are cut (adaptive batching cuts smaller ones when the reader is between reads).
    s.lake.flush_rows = 1;
    s.decode.batch_size = 500;
    run(from_file(s.clone(), &events)).await;
    let before = parquet_files(&lake.join("events"));
    assert!(before >= 10, "one file per commit at least: {before}");
    let report = ghosthunt::lake::maintain::optimize(&s.lake, 256 << 20, true)
        .await
        .unwrap();
    assert!(
        report[0].files_removed >= 10 && report[0].files_added >= 1,
        "{report:?}"
    );
    let vacuumed =
        ghosthunt::lake::maintain::vacuum(&s.lake, std::time::Duration::ZERO, chrono::Utc::now())
            .await
            .unwrap();
    assert_eq!(vacuumed[0].files_deleted, before);
    assert_eq!(
        parquet_files(&lake.join("events")),
        report[0].files_added as usize
    );
    let rows = count(&lake, "SELECT count(*) AS n FROM events").await;
    assert_eq!(rows[0]["n"], 10_000);
    // Compacted in event-time order (`--in-time-order`).
    for file in parquet_paths(&lake.join("events")) {
        let times = file_times(&file);
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{} is not in event-time order",
            file.display()
        );
    }
    // A date already in one file is not rewritten again.
    let again = ghosthunt::lake::maintain::optimize(&s.lake, 256 << 20, true)
        .await
        .unwrap();
    assert_eq!((again[0].files_removed, again[0].files_added), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_dates() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 2_000, 2_000);
    let lake = dir.path().join("lake");
    let mut s = lake_settings(&lake, &dir.path().join("live.jsonl"));
    run(from_file(s.clone(), &events)).await;
    let all = count(&lake, "SELECT max(event_time) AS hi FROM events").await;
    let hi = ghosthunt::lake::read::parse_time(all[0]["hi"].as_str().unwrap()).unwrap();
    s.lake.retention = Some(std::time::Duration::from_secs(86_400));
    // One day after the events' date: nothing expires yet; ten days after: their date does.
    let day = chrono::DateTime::from_timestamp_nanos(hi);
    ghosthunt::lake::maintain::vacuum(
        &s.lake,
        std::time::Duration::from_secs(86_400),
        day + chrono::Duration::days(1),
    )
    .await
    .unwrap();
    assert_eq!(
        count(&lake, "SELECT count(*) AS n FROM events").await[0]["n"],
        2_000
    );
    let report = ghosthunt::lake::maintain::vacuum(
        &s.lake,
        std::time::Duration::from_secs(86_400),
        day + chrono::Duration::days(10),
    )
    .await
    .unwrap();
    assert!(report[0].expired_files.unwrap() >= 1, "{report:?}");
    assert_eq!(
        count(&lake, "SELECT count(*) AS n FROM events").await[0]["n"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deltalake_python_package_reads_the_tables_ghosthunt_wrote() {
    let Some(python) = common::needs::tool(
        "GHOSTHUNT_PYTHON",
        "python3",
        Some(PathBuf::from("/opt/ghosthunt/py/bin/python")),
        "install the deltalake and pyarrow Python packages (bash .ci/install-python-deltalake) or set GHOSTHUNT_PYTHON to a python that has them",
    ) else {
        return;
    };
    let has_deltalake = std::process::Command::new(&python)
        .args(["-c", "import deltalake, pyarrow"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_deltalake {
        common::needs::skip::<()>(
            format!(
                "{} lacks the deltalake or pyarrow package",
                python.display()
            ),
            "bash .ci/install-python-deltalake, or set GHOSTHUNT_PYTHON to a python that has them",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 3_000, 2_000);
    let lake = dir.path().join("lake");
    run(from_file(
        lake_settings(&lake, &dir.path().join("live.jsonl")),
        &events,
    ))
    .await;
    // The script leaves with `os._exit` once its answer is out: the deltalake package's threads can abort
    // the interpreter's normal shutdown ("terminate called without an active exception", delta-io/delta-rs
    // #2184; about 1 run in 3 on a 2-core VM), after the tables were read and the answer printed.
    let script = r#"
import json, os, sys
from deltalake import DeltaTable
out = {}
for name in ("events", "alerts"):
    t = DeltaTable(sys.argv[1] + "/" + name)
    data = t.to_pyarrow_table()
    out[name] = {"rows": data.num_rows,
                 "columns": [f.name for f in data.schema],
                 "types": {f.name: str(f.type) for f in data.schema},
                 "partitions": t.metadata().partition_columns}
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"#;
    let output = std::process::Command::new(&python)
        .args(["-c", script, &lake.display().to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(read["events"]["rows"], 3_000);
    let ours = ghosthunt::lake::table::events_schema(&ghosthunt::decode::EventSchema::windows());
    let columns: Vec<&str> = ours.fields().iter().map(|f| f.name().as_str()).collect();
    let theirs: Vec<&str> = read["events"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    // Partition columns come last in what a reader returns; the set and the other columns' order match.
    let mut sorted_ours = columns.clone();
    sorted_ours.sort();
    let mut sorted_theirs = theirs.clone();
    sorted_theirs.sort();
    assert_eq!(sorted_ours, sorted_theirs);
    assert_eq!(
        read["events"]["types"]["event_time"],
        "timestamp[us, tz=UTC]"
    );
    assert_eq!(read["events"]["types"]["_time_ns"], "int64");
    assert_eq!(
        read["events"]["partitions"],
        serde_json::json!(["event_date"])
    );
    let live = alert_ids(&dir.path().join("live.jsonl"));
    assert_eq!(read["alerts"]["rows"], live.len());
}

/// `ghosthunt hunt` as a user runs it, alerts to `alerts`.
fn hunt_command(lake: &Path, alerts: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ghosthunt"))
        .arg("hunt")
        .args(args)
        .env_remove("RUST_LOG")
        .env("GHOSTHUNT__LAKE__PATH", lake)
        .env("GHOSTHUNT__ALERTS__SINK", "file")
        .env("GHOSTHUNT__ALERTS__PATH", alerts)
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            alerts.with_extension("dead"),
        )
        .env("GHOSTHUNT__WINDOW__ALLOWED_LATENESS", "0s")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hunt_command_over_the_lake_and_over_the_files_finds_the_same_in_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 6_000, 5);
    let lake = dir.path().join("lake");
    run(from_file(
        lake_settings(&lake, &dir.path().join("live.jsonl")),
        &events,
    ))
    .await;
    let all = count(&lake, "SELECT min(event_time) AS lo FROM events").await;
    let lo = all[0]["lo"].as_str().unwrap().to_string();
    let lo_ns = ghosthunt::lake::read::parse_time(&lo).unwrap();
    let hi = chrono::DateTime::from_timestamp_nanos(lo_ns + 600_000_000_000)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let from_lake = dir.path().join("lake-alerts.jsonl");
    let out = hunt_command(&lake, &from_lake, &["--from", &lo, "--to", &hi]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Progress on stderr (JSON lines: not a terminal), the last one when the range is done.
    let progress = common::last_progress(&out.stderr);
    assert_eq!(progress["finished"], true, "{progress}");
    assert_eq!(progress["dates_done"], progress["dates"], "{progress}");
    // `events` counts the rows read, `kept` those some hunt's filter kept for the hunts.
    let (read, kept) = (
        progress["events"].as_u64().unwrap(),
        progress["kept"].as_u64().unwrap(),
    );
    assert!(0 < kept && kept < read && read <= 6_000, "{progress}");
    let from_files = dir.path().join("file-alerts.jsonl");
    let file = events.display().to_string();
    let out = hunt_command(
        &lake,
        &from_files,
        &[
            "--source", "files", "--file", &file, "--from", &lo, "--to", &hi,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // From files: the share is the bytes read of the files' total, and every line was read.
    let progress = common::last_progress(&out.stderr);
    let size = std::fs::metadata(&events).unwrap().len();
    assert_eq!(progress["finished"], true, "{progress}");
    assert_eq!(progress["bytes_total"], size, "{progress}");
    assert_eq!(progress["bytes"], size, "{progress}");
    assert_eq!(progress["done_percent"], 100.0, "{progress}");
    assert_eq!(progress["events"], 6_000, "{progress}");
    let (a, b) = (alert_ids(&from_lake), alert_ids(&from_files));
    assert!(!a.is_empty());
    assert_eq!(
        a, b,
        "the lake and the files give different alerts for the range"
    );
    // Fewer than over everything: the range is half of the events.
    assert!(a.len() < alert_ids(&dir.path().join("live.jsonl")).len());
    // Nothing read from files went into the lake.
    let rows = count(&lake, "SELECT count(*) AS n FROM events").await;
    assert_eq!(rows[0]["n"], 6_000);

    let out = hunt_command(&lake, &from_files, &["--from", &hi, "--to", &lo]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from must be before --to"));
}

/// Copies a directory tree (a table) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_dir(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}

/// A directory tree made read-only for this process, as a read-only mount is, even for root (`chattr +i`
/// where mode bits do not bind), made writable again when dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> Option<ReadOnly> {
        use std::os::unix::fs::PermissionsExt as _;
        let writable = |dir: &Path| {
            let probe = dir.join(".probe");
            let ok = std::fs::write(&probe, b"").is_ok();
            let _ = std::fs::remove_file(&probe);
            ok
        };
        let guard = ReadOnly(dir.to_path_buf());
        let dirs = tree(dir);
        for d in &dirs {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        if dirs.iter().any(|d| writable(d)) {
            let _ = std::process::Command::new("chattr")
                .arg("-R")
                .arg("+i")
                .arg(dir)
                .status();
        }
        if dirs.iter().any(|d| writable(d)) {
            return common::needs::skip(
                format!(
                    "{} stays writable here (root, and chattr +i refused)",
                    dir.display()
                ),
                "run the test as a user other than root, or where chattr +i works",
            );
        }
        Some(guard)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::process::Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.0)
            .status();
        for d in tree(&self.0) {
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
        }
    }
}

/// `dir` and every directory under it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for entry in std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
        i += 1;
    }
    dirs
}

/// A lake the run cannot write to is an error at start naming the table, before an event is read:
/// it was found out at the first flush, after the events before it had been read and hunted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_that_cannot_be_written_to_fails_the_run_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let events = generated(dir.path(), 200, 10);
    let lake = dir.path().join("lake");
    run(from_file(
        lake_settings(&lake, &dir.path().join("first.jsonl")),
        &events,
    ))
    .await;
    let Some(_read_only) = ReadOnly::new(&lake.join("events")) else {
        return;
    };
    // Events of another input (the same ones under another name): the table has none of them.
    let more = dir.path().join("more.jsonl");
    std::fs::copy(&events, &more).unwrap();
    let alerts = dir.path().join("second.jsonl");
    let result = ghosthunt::app::run(
        from_file(lake_settings(&lake, &alerts), &more),
        ghosthunt::app::Handles::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let error = format!(
        "{:#}",
        anyhow::Error::from(result.expect_err("a read-only lake is an error"))
    );
    assert!(error.contains("cannot be written to"), "{error}");
    assert!(error.contains("events"), "{error}");
    assert!(
        !alerts.exists(),
        "no event was read: no alert sink was opened"
    );
}
