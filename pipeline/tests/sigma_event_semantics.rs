//! Where a Sigma rule looks in an event: keywords anywhere in its values (issue #15, fault 3), and the
//! `Channel` of the "Eventlog Cleared" rules on System 104 (the log that was cleared).

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ghosthunt::app::{self, SigmaSetup};
use ghosthunt::decode::{Decoder, EventSchema};
use ghosthunt::source::RawRecord;
use ghosthunt::telemetry::Metrics;
use serde_json::Value;

const MIMIKATZ: &str = "sigma/rules/windows/builtin/win_alert_mimikatz_keywords.yml";
const CLEARED: &str =
    "sigma/rules/windows/builtin/system/microsoft_windows_eventlog/win_system_eventlog_cleared.yml";
const CLEARED_IMPORTANT: &str = "sigma/rules/windows/builtin/system/microsoft_windows_eventlog/win_system_susp_eventlog_cleared.yml";
const EVTX_ATTACK: &str = "events/evtx-attack-samples.jsonl.tgz";
const OTRF: &str = "events/otrf-atomic";

fn setup(corpus: &Path, rules: &[&str]) -> SigmaSetup {
    let mut settings = common::test_settings();
    settings.sigma.directories = rules.iter().map(|r| corpus.join(r)).collect();
    let s = app::sigma(&settings, Arc::new(EventSchema::windows())).expect("the rules load");
    assert!(s.refusals.is_empty(), "{:?}", s.refusals);
    s
}

/// For each line, the ids of the rules that match it.
fn matching(s: &SigmaSetup, lines: &[String]) -> Vec<BTreeSet<String>> {
    let records = RawRecord::from_lines("test", lines.iter().map(String::as_str));
    let decoded = Decoder::new(Arc::clone(&s.schema), 1 << 20, &Metrics::new()).decode(0, records);
    assert!(
        decoded.dead_letters.is_empty(),
        "{:?}",
        decoded.dead_letters
    );
    let mut out = vec![BTreeSet::new(); lines.len()];
    for (rule, rows) in s.engine.as_ref().unwrap().matching(&decoded.batch) {
        for r in rows {
            out[r as usize].insert(rule.to_string());
        }
    }
    out
}

const MIMIKATZ_ID: &str = "06d71506-7beb-4f22-8888-e2e5e2ca7fd8";

/// The issue's PrintService case, in EVTX-JSON as the corpus renders events: the printer name is only in
/// `UserData`, which no column holds. Keywords are found there, in unnamed `Data` lists and in `Message`,
/// unescaped (`\mimilib.dll` is `\\mimilib.dll` in the JSON text) — and never in a key name.
#[test]
fn keywords_are_found_in_any_value_of_the_event_and_never_in_a_key() {
    let Some(corpus) = common::needs::corpus([MIMIKATZ]) else {
        return;
    };
    let s = setup(&corpus, &[MIMIKATZ]);
    let event = |body: &str| {
        format!(
            r##"{{"Event":{{"System":{{"Provider":{{"#attributes":{{"Name":"Microsoft-Windows-PrintService"}}}},"EventID":808,"Channel":"Microsoft-Windows-PrintService/Admin","Computer":"WS1","TimeCreated":{{"#attributes":{{"SystemTime":"2024-05-01T10:00:01Z"}}}}}},{body}}}}}"##
        )
    };
    let lines = [
        event(
            r##""UserData":{"RenderFailedEvent":{"PrinterName":"Kiwi Legit Printer","Param":"x"}}"##,
        ),
        event(r##""EventData":{"Data":{"#text":["C:\\Windows\\System32\\mimilib.dll","0x0"]}}"##),
        event(r##""Message":"sekurlsa::logonpasswords was run""##),
        // Written with a JSON escape: found as the value reads.
        event(r##""Message":"privilege::debu\u0067""##),
        // Near misses: the keyword as a key, split over two values, a different value.
        event(r##""UserData":{"sekurlsa::":{"lsadump::":"benign"}}"##),
        event(r##""UserData":{"A":{"x":"Kiwi Legit","y":"Printer"}}"##),
        event(r##""EventData":{"Data":{"#text":["C:\\Windows\\System32\\notmimilib.dll"]}}"##),
    ];
    let found = matching(&s, &lines);
    let fired: Vec<bool> = found.iter().map(|m| m.contains(MIMIKATZ_ID)).collect();
    assert_eq!(
        fired,
        [true, true, true, true, false, false, false],
        "{found:?}"
    );
}

fn evtx_attack_lines(corpus: &Path) -> Vec<String> {
    let file = std::fs::File::open(corpus.join(EVTX_ATTACK)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        out.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    out
}

fn otrf_lines(corpus: &Path, filter: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let pattern = corpus.join(OTRF).join("windows/*/host/*.zip");
    for zip in glob::glob(&pattern.display().to_string()).unwrap() {
        let zip: PathBuf = zip.unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let name = entry.name().unwrap_or_default().to_string();
            if name.contains("__MACOSX") || !name.ends_with(".json") {
                continue;
            }
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            out.extend(text.lines().filter(|l| filter(l)).map(str::to_string));
        }
    }
    out
}

const CLEARED_ID: &str = "a62b37e0-45d3-48d9-a517-90c1a1b0186b";
const IMPORTANT_ID: &str = "100ef69e-3327-481c-8e5c-6d80d9507556";

/// The logs "Important Windows Eventlog Cleared" names; "Eventlog Cleared" is for every other log.
const IMPORTANT_LOGS: [&str; 6] = [
    "Microsoft-Windows-PowerShell/Operational",
    "Microsoft-Windows-Sysmon/Operational",
    "PowerShellCore/Operational",
    "Security",
    "System",
    "Windows PowerShell",
];

/// System 104 is written to the System log whatever log was cleared; the two rules split the cleared
/// logs between them. The EVTX-ATTACK recordings hold two 104 events (both clear System): each fires the
/// "important" rule only; the same events with another cleared log in `UserData/LogFileCleared/Channel`
/// fire the rule that log belongs to. OTRF's flat events keep the cleared log only in `Message`: the
/// "important" rule cannot tell and stays silent, the other one fires.
#[test]
fn eventlog_cleared_rules_read_the_log_that_was_cleared() {
    let Some(corpus) = common::needs::corpus([CLEARED, CLEARED_IMPORTANT, EVTX_ATTACK, OTRF])
    else {
        return;
    };
    let s = setup(&corpus, &[CLEARED, CLEARED_IMPORTANT]);
    let recorded: Vec<Value> = evtx_attack_lines(&corpus)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| {
            let system = &v["Event"]["System"];
            system["EventID"] == 104
                && system["Provider"]["#attributes"]["Name"] == "Microsoft-Windows-Eventlog"
        })
        .collect();
    assert_eq!(recorded.len(), 2);
    for log in [
        None,
        Some("Windows PowerShell"),
        Some("security"),
        Some("Microsoft-Windows-TaskScheduler/Operational"),
        Some("Microsoft-Windows-Windows Defender/Operational"),
    ] {
        let events: Vec<Value> = recorded
            .iter()
            .cloned()
            .map(|mut v| {
                if let Some(log) = log {
                    v["Event"]["UserData"]["LogFileCleared"]["Channel"] = log.into();
                }
                v
            })
            .collect();
        let lines: Vec<String> = events.iter().map(Value::to_string).collect();
        for (event, rules) in events.iter().zip(matching(&s, &lines)) {
            let cleared = event["Event"]["UserData"]["LogFileCleared"]["Channel"]
                .as_str()
                .unwrap();
            assert_eq!(event["Event"]["System"]["Channel"], "System");
            let expected = if IMPORTANT_LOGS
                .iter()
                .any(|l| l.eq_ignore_ascii_case(cleared))
            {
                IMPORTANT_ID
            } else {
                CLEARED_ID
            };
            assert_eq!(
                rules,
                BTreeSet::from([expected.to_string()]),
                "cleared {cleared}"
            );
        }
    }

    let flat = otrf_lines(&corpus, |l| {
        l.contains("\"EventID\":104") && l.contains("Microsoft-Windows-Eventlog")
    });
    assert!(!flat.is_empty());
    for (line, rules) in flat.iter().zip(matching(&s, &flat)) {
        assert_eq!(rules, BTreeSet::from([CLEARED_ID.to_string()]), "{line}");
    }
}
