//! Sigma rules running in the pipeline: detection matches become OCSF alerts carrying the rule's metadata,
//! and correlation rules fire on sliding windows — on the Hayabusa password-guessing/spray rules over the
//! DeepBlueCLI samples, and on a burst that straddles a fixed minute boundary.

mod common;

use std::io::BufRead;
use std::path::Path;

use common::{Step, event, run_sigma_script, test_settings};
use serde_json::Value;

fn rules_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn settings_with(dir: &Path) -> ghosthunt::settings::Settings {
    let mut s = test_settings();
    s.sigma.directories = vec![dir.to_path_buf()];
    s.hunts.builtin = false;
    s
}

fn alerts_json(run: &common::Run) -> Vec<Value> {
    run.alerts
        .iter()
        .map(|a| serde_json::from_str(&a.json).unwrap())
        .collect()
}

const FAILED_LOGON: &str = r#"
title: Failed logon
id: 5b1b0c3e-0000-4000-8000-000000000001
name: failed_logon
status: test
level: low
tags: [attack.credential-access, attack.t1110.001]
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4625
    condition: selection
"#;

#[tokio::test]
async fn sigma_matches_become_ocsf_alerts_with_the_rules_metadata() {
    let dir = rules_dir(&[("failed.yml", FAILED_LOGON)]);
    let run = run_sigma_script(
        settings_with(dir.path()),
        vec![Step::Lines(
            "events",
            vec![
                event("2026-11-28T10:00:00Z", 4625, &[("TargetUserName", "bob")]),
                event("2026-11-28T10:00:01Z", 4624, &[("TargetUserName", "bob")]),
                // A System event with the same id is not a Security event.
                r#"{"@timestamp":"2026-11-28T10:00:02Z","EventID":4625,"Channel":"System","Hostname":"DC01"}"#.into(),
            ],
        )],
    )
    .await;
    let alerts = alerts_json(&run);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["class_uid"], 2004);
    assert_eq!(a["severity"], "Low");
    assert_eq!(a["finding_info"]["title"], "Failed logon");
    assert_eq!(
        a["finding_info"]["analytic"]["uid"],
        "5b1b0c3e-0000-4000-8000-000000000001"
    );
    assert_eq!(
        a["finding_info"]["attacks"][0]["technique"]["uid"],
        "T1110.001"
    );
    assert_eq!(
        a["finding_info"]["attacks"][0]["tactics"][0]["name"],
        "credential-access"
    );
    let evidence = &a["evidences"][0]["data"];
    assert_eq!(evidence["event_id"], 4625);
    assert_eq!(evidence["host"], "DC01");
    assert_eq!(
        run.alerts[0].key,
        "5b1b0c3e-0000-4000-8000-000000000001|DC01"
    );

    // The same events again give the same alert id (deterministic, for downstream deduplication).
    let again = run_sigma_script(
        settings_with(dir.path()),
        vec![Step::Lines(
            "events",
            vec![event(
                "2026-11-28T10:00:00Z",
                4625,
                &[("TargetUserName", "bob")],
            )],
        )],
    )
    .await;
    assert_eq!(again.alerts[0].id, run.alerts[0].id);
}

const BURST: &str = r#"
title: Logon failure burst
id: 5b1b0c3e-0000-4000-8000-000000000002
status: test
level: high
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 1m
    condition:
        gte: 5
"#;

fn failures_at(seconds: &[u32], user: &str) -> Vec<String> {
    seconds
        .iter()
        .map(|s| {
            event(
                &format!("2026-11-28T10:{:02}:{:02}Z", s / 60, s % 60),
                4625,
                &[("TargetUserName", user)],
            )
        })
        .collect()
}

#[tokio::test]
async fn a_burst_straddling_a_minute_boundary_fires_once_and_spread_failures_do_not() {
    let dir = rules_dir(&[("failed.yml", FAILED_LOGON), ("burst.yml", BURST)]);
    // 10:00:50 … 10:01:10: a tumbling one-minute window would see 2 + 3 and never 5.
    let mut lines = failures_at(&[50, 55, 58, 62, 70], "alice");
    // bob fails as often, but 20 s apart: never 5 within a minute.
    lines.extend(failures_at(&[0, 20, 40, 60, 80, 100, 120], "bob"));
    lines.sort_by_key(|l| {
        serde_json::from_str::<Value>(l).unwrap()["@timestamp"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let run = run_sigma_script(
        settings_with(dir.path()),
        vec![Step::Lines("events", lines)],
    )
    .await;
    let alerts = alerts_json(&run);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let evidence = &alerts[0]["evidences"][0]["data"];
    assert_eq!(evidence["group"]["TargetUserName"], "alice");
    assert_eq!(evidence["count"], 5);
    assert_eq!(evidence["first_event_time"], "2026-11-28T10:00:50Z");
    assert_eq!(evidence["last_event_time"], "2026-11-28T10:01:10Z");
    assert_eq!(alerts[0]["severity"], "High");
    // The base rule is referenced by a correlation without `generate: true`: it does not alert alone.
    assert!(
        alerts
            .iter()
            .all(|a| a["finding_info"]["title"] != "Failed logon")
    );
}

fn deepbluecli(corpus: &Path, name: &str) -> Vec<String> {
    let path = corpus.join("events/deepbluecli").join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn hayabusa_password_correlations_fire_on_the_spray_and_guessing_samples_and_nowhere_else() {
    let Some(corpus) = common::needs::corpus([
        "sigma/correlation-examples/hayabusa",
        "events/deepbluecli/password-spray.jsonl.gz",
        "events/deepbluecli/smb-password-guessing-security.jsonl.gz",
    ]) else {
        return;
    };
    let hayabusa = corpus.join("sigma/correlation-examples/hayabusa");
    let mut samples: Vec<String> = std::fs::read_dir(corpus.join("events/deepbluecli"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl.gz"))
        .collect();
    samples.sort();
    assert!(samples.len() >= 19, "{samples:?}");
    let mut fired: Vec<(String, String, Value)> = Vec::new();
    for sample in &samples {
        let mut lines = deepbluecli(&corpus, sample);
        // The recordings are newest first; the pipeline reads files in time order.
        lines.sort_by_key(|l| {
            serde_json::from_str::<Value>(l).unwrap()["Event"]["System"]["TimeCreated"]
                ["#attributes"]["SystemTime"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        let run =
            run_sigma_script(settings_with(&hayabusa), vec![Step::Lines("sample", lines)]).await;
        assert!(
            run.dead_letters.is_empty(),
            "{sample}: {:?}",
            run.dead_letters
        );
        for a in alerts_json(&run) {
            fired.push((
                sample.clone(),
                a["finding_info"]["title"].as_str().unwrap().to_string(),
                a["evidences"][0]["data"].clone(),
            ));
        }
    }
    for (sample, title, data) in &fired {
        eprintln!("{sample}: {title}: {data}");
    }
    let summary: Vec<(&str, &str)> = fired
        .iter()
        .map(|(s, t, _)| (s.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("password-spray.jsonl.gz", "PW Spray"),
            ("smb-password-guessing-security.jsonl.gz", "PW Guessing"),
        ]
        .into_iter()
        .filter(|(s, _)| samples.iter().any(|x| x == s))
        .collect::<Vec<_>>(),
        "correlations fired: {fired:#?}"
    );
    // Group-by fields that no detection reads still get their column: SMB logons have ProcessName "-".
    assert_eq!(fired[1].2["group"]["ProcessName"], "-", "{}", fired[1].2);
    let spray = &fired[0].2;
    assert_eq!(spray["group"]["IpAddress"], "172.16.144.128");
    assert!(spray["count"].as_u64().unwrap() > 3, "{spray}");
}
