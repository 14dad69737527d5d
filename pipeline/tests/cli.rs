//! The `ghosthunt` binary: configuration layering (defaults → file → environment), unknown keys, and the
//! validate / hunts / test commands.

mod common;

use std::process::Command;

fn ghosthunt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ghosthunt"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("GHOSTHUNT__") {
            c.env_remove(k);
        }
    }
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

#[test]
fn validate_plans_every_builtin_hunt_with_no_configuration() {
    let (code, out, err) = output(ghosthunt().arg("validate"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("refused: 0") || out.contains("0 refused"),
        "{out}"
    );
}

#[test]
fn unknown_key_in_config_file_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ghosthunt.toml");
    std::fs::write(&path, "[decode]\nbatch_sise = 10\n").unwrap();
    let (code, _, err) = output(ghosthunt().arg("--config").arg(&path).arg("validate"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("batch_sise"), "{err}");
}

#[test]
fn environment_overrides_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        r#"{"@timestamp":"2024-05-01T10:00:00Z","EventID":7045,"Channel":"System","Hostname":"WS1","ServiceName":"x","ImagePath":"%COMSPEC% /c whoami","AccountName":"LocalSystem"}
"#,
    )
    .unwrap();
    let config = dir.path().join("ghosthunt.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nkind = \"file\"\n[source.file]\npaths = [\"{}\"]\n[alerts]\nsink = \"file\"\npath = \"{}\"\n[metrics]\nlisten = \"\"\n",
            events.display(),
            dir.path().join("from-file.jsonl").display()
        ),
    )
    .unwrap();
    let env_path = dir.path().join("from-env.jsonl");
    let (code, out, err) = output(
        ghosthunt()
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("GHOSTHUNT__ALERTS__PATH", &env_path)
            .env(
                "GHOSTHUNT__DEAD_LETTERS__PATH",
                dir.path().join("dead.jsonl"),
            ),
    );
    assert_eq!(code, 0, "{out}{err}");
    let alerts = std::fs::read_to_string(&env_path).unwrap();
    assert_eq!(alerts.lines().count(), 1, "{alerts}");
    assert!(!dir.path().join("from-file.jsonl").exists());
    let alert: serde_json::Value = serde_json::from_str(alerts.lines().next().unwrap()).unwrap();
    assert_eq!(alert["class_uid"], 2004);
    assert_eq!(
        alert["finding_info"]["analytic"]["uid"],
        "suspicious_service_install"
    );
}

#[test]
fn unknown_environment_key_is_an_error() {
    let (code, _, err) = output(
        ghosthunt()
            .arg("validate")
            .env("GHOSTHUNT__METRICS__LISTEN_ON", "x"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("listen_on"), "{err}");
}

#[test]
fn hunts_lists_the_builtin_hunts() {
    let (code, out, err) = output(ghosthunt().arg("hunts"));
    assert_eq!(code, 0, "{err}");
    for id in [
        "ps_remoting_lateral_movement",
        "password_guessing",
        "password_spray",
        "encoded_powershell",
        "lsass_memory_access",
    ] {
        assert!(out.contains(id), "{id} missing from\n{out}");
    }
}

#[test]
fn test_command_passes_on_the_bundled_hunts_and_fails_with_a_diff() {
    let repo = common::repo();
    let (code, out, err) = output(ghosthunt().arg("test").arg(repo.join("sql/hunts")));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 failed"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hunts")).unwrap();
    std::fs::create_dir_all(dir.path().join("tests/count_logons")).unwrap();
    std::fs::write(
        dir.path().join("hunts/count_logons.sql"),
        common::hunt(
            "count_logons",
            "tumbling 1h",
            "",
            "SELECT host, count(*) AS n FROM events WHERE event_id = 4624 GROUP BY host",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tests/count_logons/events.jsonl"),
        "{\"@timestamp\":\"2024-05-01T10:00:00Z\",\"EventID\":4624,\"Hostname\":\"A\"}\n{\"@timestamp\":\"2024-05-01T10:00:01Z\",\"EventID\":4624,\"Hostname\":\"A\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tests/count_logons/expected.jsonl"),
        "{\"host\":\"A\",\"n\":3}\n",
    )
    .unwrap();
    let (code, out, _) = output(ghosthunt().arg("test").arg(dir.path().join("hunts")));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("- expected, not produced: {\"host\":\"A\",\"n\":3}"),
        "{out}"
    );
    assert!(
        out.contains("+ produced, not expected: {\"host\":\"A\",\"n\":2}"),
        "{out}"
    );
}
