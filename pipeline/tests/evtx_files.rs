//! Windows' binary event logs (`*.evtx`), as hunters collect them from hosts, read natively: each record
//! rendered as the JSON `evtx_dump` writes (the nested `Event.System` shape), hunted like JSON lines.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evtx")
}

fn alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every record of the two fixtures reaches a hunt that keeps every event, as it does from the same
/// records rendered to JSON lines (by the same parser, the way `evtx_dump` renders them): the same alert
/// ids, no dead letter, and the progress counts the files' bytes.
#[test]
fn evtx_files_give_the_alerts_of_their_records_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let hunts = dir.path().join("hunts");
    std::fs::create_dir(&hunts).unwrap();
    std::fs::write(
        hunts.join("all.sql"),
        common::hunt(
            "all",
            "none",
            "",
            "SELECT event_time, host, event_id, target_user_name FROM events",
        ),
    )
    .unwrap();
    let (mut records, mut bytes) = (0, 0);
    let rendered = dir.path().join("rendered");
    std::fs::create_dir(&rendered).unwrap();
    for name in ["new-user-security", "Security_short_selected"] {
        let evtx = fixtures().join(format!("{name}.evtx"));
        bytes += std::fs::metadata(&evtx).unwrap().len();
        let mut lines = String::new();
        for record in evtx::EvtxParser::from_path(&evtx).unwrap().records_json() {
            let record = record.unwrap();
            let one_line: Value = serde_json::from_str(&record.data).unwrap();
            lines.push_str(&one_line.to_string());
            lines.push('\n');
            records += 1;
        }
        std::fs::write(rendered.join(format!("{name}.jsonl")), lines).unwrap();
    }
    assert_eq!(records, 11);

    let hunts = hunts.display().to_string();
    let env = [
        ("GHOSTHUNT__HUNTS__BUILTIN", "false"),
        ("GHOSTHUNT__HUNTS__DIRECTORIES", hunts.as_str()),
    ];
    let (from_evtx, from_json) = (dir.path().join("evtx.jsonl"), dir.path().join("json.jsonl"));
    let out = common::hunt_files(&fixtures().join("*.evtx"), &from_evtx, &env);
    common::hunt_files(&rendered.join("*.jsonl"), &from_json, &env);
    let ids = common::alert_ids_in(&from_evtx);
    assert_eq!(ids.len(), records, "an alert per record");
    assert_eq!(ids, common::alert_ids_in(&from_json));
    assert_eq!(
        std::fs::read_to_string(from_evtx.with_extension("dead")).unwrap_or_default(),
        ""
    );
    // The fields the hunt read came through: the user created, the host.
    let created = alerts(&from_evtx)
        .into_iter()
        .find(|a| a.to_string().contains("\"event_id\":4720"))
        .expect("the user creation");
    let text = created.to_string();
    assert!(
        text.contains("IEUser") && text.contains("IE8Win7"),
        "{created}"
    );
    let progress = common::last_progress(&out.stderr);
    assert_eq!(progress["events"], records, "{progress}");
    assert_eq!(progress["bytes"], bytes, "{progress}");
    assert_eq!(progress["bytes_total"], bytes, "{progress}");
}

/// The hunt a DFIR analyst runs first on a host's Security log: Sigma rules over the `.evtx` itself.
#[test]
fn sigma_rules_fire_on_an_evtx_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("admin.yml"),
        "title: User Added To The Local Administrators Group\n\
         id: 10fb649c-3600-4d37-b1e6-56ea90bb7e09\n\
         status: test\n\
         logsource:\n  product: windows\n  service: security\n\
         detection:\n  selection:\n    EventID: 4732\n    TargetSid|startswith: 'S-1-5-32-544'\n  condition: selection\n\
         level: medium\n",
    )
    .unwrap();
    let alerts_path = dir.path().join("alerts.jsonl");
    let rules = rules.display().to_string();
    common::hunt_files(
        &fixtures().join("new-user-security.evtx"),
        &alerts_path,
        &[
            ("GHOSTHUNT__HUNTS__BUILTIN", "false"),
            ("GHOSTHUNT__SIGMA__DIRECTORIES", rules.as_str()),
        ],
    );
    let found = alerts(&alerts_path);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].to_string().contains("Administrators"),
        "{}",
        found[0]
    );
}

/// A file named `.evtx` that is not one stops the hunt with an error naming it.
#[test]
fn a_file_that_is_not_evtx_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("exported.evtx");
    std::fs::write(&bad, "{\"EventID\": 1}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ghosthunt"))
        .args(["hunt", "--source", "files", "--file"])
        .arg(&bad)
        .env_remove("RUST_LOG")
        .env("GHOSTHUNT__ALERTS__SINK", "file")
        .env("GHOSTHUNT__ALERTS__PATH", dir.path().join("alerts.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("reading {}", bad.display())),
        "{stderr}"
    );
}
