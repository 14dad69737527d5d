//! The `ghosthunt sigma …` commands and `ghosthunt run` with Sigma rule directories.

use std::io::Write;
use std::process::{Command, Stdio};

fn ghosthunt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ghosthunt"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("GHOSTHUNT__") {
            c.env_remove(k);
        }
    }
    c.env("GHOSTHUNT__METRICS__LISTEN", "");
    c
}

fn output(c: &mut Command) -> (i32, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const WHOAMI: &str = r#"
title: Whoami Privileges Discovery
id: 97a80ec7-0e2f-4d05-9ef4-65760e634f6b
status: test
level: high
tags: [attack.discovery, attack.t1033]
logsource: {product: windows, category: process_creation}
detection:
    selection_img:
        - Image|endswith: '\whoami.exe'
        - OriginalFileName: 'whoami.exe'
    selection_cli:
        CommandLine|contains|windash: ' -priv'
    condition: all of selection_*
"#;

const HOURLY: &str = r#"
title: Uses a time modifier
id: 11111111-2222-4333-8444-555555555555
logsource: {product: windows, category: process_creation}
detection:
    selection:
        UtcTime|hour: 3
    condition: selection
"#;

const LINUX: &str = r#"
title: Linux rule
id: 11111111-2222-4333-8444-666666666666
logsource: {product: linux, category: process_creation}
detection:
    selection:
        Image|endswith: '/whoami'
    condition: selection
"#;

fn rules(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn sigma_convert_prints_the_sql_of_both_process_creation_sources() {
    let dir = rules(&[("whoami.yml", WHOAMI)]);
    let (code, out, err) = output(
        ghosthunt()
            .args(["sigma", "convert"])
            .arg(dir.path().join("whoami.yml")),
    );
    assert_eq!(code, 0, "{out}{err}");
    for expected in [
        "-- Whoami Privileges Discovery (97a80ec7-0e2f-4d05-9ef4-65760e634f6b)",
        "FROM events",
        "'microsoft-windows-sysmon/operational'",
        "'4688'",
        "ends_with(lower(image), '\\whoami.exe')",
        "' /priv'",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn sigma_check_counts_compiled_rules_and_names_each_refusal() {
    let dir = rules(&[
        ("whoami.yml", WHOAMI),
        ("hourly.yml", HOURLY),
        ("linux.yml", LINUX),
        ("broken.yml", "title: [unclosed\n"),
    ]);
    let (code, out, err) = output(ghosthunt().args(["sigma", "check"]).arg(dir.path()));
    assert_eq!(code, 1, "refusals make check fail: {out}{err}");
    assert!(
        out.contains("4 file(s): 1 detection rule(s) compiled, 0 correlation(s), 3 refused"),
        "{out}"
    );
    for (file, reason) in [
        ("hourly.yml", "hour"),
        ("linux.yml", "product=linux"),
        ("broken.yml", "YAML"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("refused:") && l.contains(file) && l.contains(reason)),
            "no refusal naming {file} and {reason:?}:\n{out}"
        );
    }
}

#[test]
fn run_with_a_sigma_directory_alerts_on_matching_stdin_events() {
    let dir = rules(&[("whoami.yml", WHOAMI)]);
    let mut child = ghosthunt()
        .arg("run")
        .env("GHOSTHUNT__SOURCE__KIND", "stdin")
        .env("GHOSTHUNT__HUNTS__BUILTIN", "false")
        .env("GHOSTHUNT__SIGMA__DIRECTORIES", dir.path())
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            dir.path().join("dead.jsonl"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for (image, cmd) in [
            (r"C:\\Windows\\System32\\whoami.exe", "whoami /priv"),
            (r"C:\\Windows\\System32\\whoami.exe", "whoami /groups"),
        ] {
            writeln!(
                stdin,
                r#"{{"@timestamp":"2026-11-28T10:00:00Z","EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WS1","Image":"{image}","CommandLine":"{cmd}"}}"#
            )
            .unwrap();
        }
        // A Security 4688 event: the same rule through the 4688 variant (NewProcessName).
        writeln!(
            stdin,
            r#"{{"@timestamp":"2026-11-28T10:00:01Z","EventID":4688,"Channel":"Security","Hostname":"WS2","NewProcessName":"C:\\Windows\\System32\\whoami.exe","CommandLine":"whoami.exe -priv"}}"#
        )
        .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hosts: Vec<&str> = alerts
        .iter()
        .map(|a| a["evidences"][0]["data"]["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, vec!["WS1", "WS2"], "{stdout}\n{stderr}");
    assert_eq!(
        alerts[0]["finding_info"]["title"],
        "Whoami Privileges Discovery"
    );
}

#[test]
fn sigma_bench_reports_decode_and_evaluation_rates() {
    let dir = rules(&[("whoami.yml", WHOAMI)]);
    let events = dir.path().join("events.jsonl");
    let line = r#"{"@timestamp":"2026-11-28T10:00:00Z","EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WS1","Image":"C:\\Windows\\System32\\whoami.exe","CommandLine":"whoami /priv"}"#;
    std::fs::write(&events, format!("{line}\n").repeat(100)).unwrap();
    let (code, out, err) = output(
        ghosthunt()
            .args(["sigma", "bench", "--rounds", "2", "--rules"])
            .arg(dir.path())
            .arg(&events),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("events: 100 "), "{out}");
    assert!(out.contains("evaluate:"), "{out}");
    assert!(
        out.contains("matches:  100 (event, rule) pairs from 1 rules"),
        "{out}"
    );
}

/// A path given to `sigma check` that is not there is named as given, not as `sigma.directories`.
#[test]
fn sigma_check_of_a_path_that_is_not_there_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-rules");
    let (code, _, err) = output(ghosthunt().args(["sigma", "check"]).arg(&missing));
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("no-such-rules"), "{err}");
    assert!(!err.contains("sigma.directories"), "{err}");
}
