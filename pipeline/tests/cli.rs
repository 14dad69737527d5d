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
    // The directory given is the hunts tested, with the built-in hunts turned off and none configured.
    let (code, again, err) = output(
        ghosthunt()
            .env("GHOSTHUNT__HUNTS__BUILTIN", "false")
            .arg("test")
            .arg(dir.path().join("hunts")),
    );
    assert_eq!((code, again.as_str()), (1, out.as_str()), "{err}");
}

/// `validate` over a directory without a hunt file in it says so (a subdirectory's files are not read),
/// rather than only "refused"; `*.SQL` named in capitals is a hunt file like `*.sql`.
#[test]
fn validate_says_when_the_hunt_directories_hold_no_hunt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    let hunt = common::hunt("upper", "none", "", "SELECT event_time, host FROM events");
    std::fs::write(dir.path().join("sub/upper.sql"), &hunt).unwrap();
    let validate = |dir: &std::path::Path| {
        output(
            ghosthunt()
                .env("GHOSTHUNT__HUNTS__BUILTIN", "false")
                .env("GHOSTHUNT__INCIDENTS__BUILTIN", "false")
                .env("GHOSTHUNT__HUNTS__DIRECTORIES", dir)
                .arg("validate"),
        )
    };
    let (code, out, err) = validate(dir.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("no hunt to run"), "{out}");
    assert!(out.contains("subdirectories are not read"), "{out}");
    std::fs::write(dir.path().join("upper.SQL"), &hunt).unwrap();
    let (code, out, err) = validate(dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 hunt(s)"), "{out}");
}

/// A pipe on standard input is enlarged to 1 MiB (64 KiB by default): a read brings 16 times as much.
#[cfg(target_os = "linux")]
#[test]
fn stdin_source_enlarges_the_pipe_it_reads() {
    use std::io::Write;
    use std::os::unix::io::AsRawFd as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = ghosthunt()
        .arg("run")
        .env("GHOSTHUNT__SOURCE__KIND", "stdin")
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            dir.path().join("dead.jsonl"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // SAFETY: F_GETPIPE_SZ on the pipe's end this test holds; it touches no memory of ours.
    let size = || unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_GETPIPE_SZ) };
    let limit: i32 = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let before = size();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while size() == before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let after = size();
    stdin
        .write_all(b"{\"EventID\":1,\"Hostname\":\"A\"}\n")
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(before, 64 << 10, "a new pipe holds 64 KiB");
    // Root may go past the limit; anyone else gets it at most.
    assert!(
        after >= (1 << 20).min(limit),
        "the pipe was enlarged: {after}"
    );
}

#[test]
fn stdin_source_reads_events_piped_in_and_prints_alerts() {
    use std::io::Write;
    let fixture = common::repo().join("sql/tests/suspicious_service_install");
    let events = std::fs::read(fixture.join("events.jsonl")).unwrap();
    let expected = std::fs::read_to_string(fixture.join("expected.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let dir = tempfile::tempdir().unwrap();
    let mut child = ghosthunt()
        .arg("run")
        .env("GHOSTHUNT__SOURCE__KIND", "stdin")
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            dir.path().join("dead.jsonl"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&events).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let service = alerts
        .iter()
        .filter(|a| a["finding_info"]["analytic"]["uid"] == "suspicious_service_install")
        .count();
    assert_eq!(service, expected);
}

#[test]
fn sigterm_closes_open_windows_flushes_alerts_and_exits_cleanly() {
    use std::io::BufRead;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let mut child = ghosthunt()
        .arg("run")
        .env("GHOSTHUNT__SOURCE__GENERATOR__RATE", "5000")
        .env("GHOSTHUNT__SOURCE__GENERATOR__SPEED", "60")
        .env("GHOSTHUNT__SOURCE__GENERATOR__ATTACK_INTERVAL", "5s")
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            dir.path().join("dead.jsonl"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let is_windowed = |a: &serde_json::Value| {
        a["unmapped"]["window"]
            .as_str()
            .is_some_and(|w| w.starts_with("hopping"))
    };
    // Signal once the stream is well under way, however slow this machine starts: every 5 s of event time one of
    // eight attack scenarios is injected and six of them raise per-batch alerts, so 50 of those are five or more
    // rounds (over three minutes of event time), and the password bursts of the last minutes sit in hopping
    // windows (5m every 1m, 10m every 5m) that are still open.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut before: Vec<serde_json::Value> = Vec::new();
    while before.iter().filter(|a| !is_windowed(a)).count() < 50 {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => before.push(serde_json::from_str(&line).unwrap()),
            Err(e) => panic!(
                "{e:?} before 50 per-batch alerts ({} lines so far)",
                before.len()
            ),
        }
    }
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let after: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    reader.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Shutting down"), "{stderr}");
    // The open windows are closed and their alerts printed before exit, after the signal.
    let windowed = after.iter().filter(|a| is_windowed(a)).count();
    assert!(
        windowed > 0,
        "no windowed alert flushed at shutdown ({} lines before the signal, {} after)",
        before.len(),
        after.len()
    );
}

#[test]
fn a_directory_hunt_replaces_the_builtin_one_with_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("encoded_powershell.sql"),
        common::hunt(
            "encoded_powershell",
            "none",
            "",
            "SELECT host FROM events WHERE event_id = 1",
        ),
    )
    .unwrap();
    let (code, out, err) = output(
        ghosthunt()
            .arg("hunts")
            .env("GHOSTHUNT__HUNTS__DIRECTORIES", dir.path()),
    );
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("encoded_powershell"))
        .unwrap();
    assert!(line.contains("Test hunt encoded_powershell"), "{line}");
    let (code, out, _) = output(
        ghosthunt()
            .arg("hunts")
            .env("GHOSTHUNT__HUNTS__DIRECTORIES", dir.path())
            .env("GHOSTHUNT__HUNTS__BUILTIN", "false")
            .env("GHOSTHUNT__INCIDENTS__BUILTIN", "false"),
    );
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().count(),
        2,
        "header and the one directory hunt:\n{out}"
    );
}

/// `ghosthunt run` over the generator's campaign, its stdout a pipe or (through `script`) a terminal.
fn run_campaign(dir: &std::path::Path, terminal: bool, format: Option<&str>) -> String {
    let events = dir.join("events.jsonl");
    if !events.exists() {
        common::campaign_events(&events, 100);
    }
    let config = dir.join("ghosthunt.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nkind = \"file\"\n[source.file]\npaths = [\"{}\"]\n[dead_letters]\npath = \"{}\"\n[metrics]\nlisten = \"\"\n",
            events.display(),
            dir.join("dead.jsonl").display()
        ),
    )
    .unwrap();
    let mut command = format!(
        "{} --config {} run",
        env!("CARGO_BIN_EXE_ghosthunt"),
        config.display()
    );
    if let Some(f) = format {
        command.push_str(&format!(" --format {f}"));
    }
    let (code, out, err) = if terminal {
        let Some(script) = common::needs::tool(
            "GHOSTHUNT_SCRIPT",
            "script",
            None,
            "install util-linux (`script` gives the run a pseudo-terminal)",
        ) else {
            return String::new();
        };
        // `script` runs the command with a pseudo-terminal as its stdin, stdout and stderr, and copies
        // what it writes to its own stdout; logs go to a file.
        output(
            ghosthunt_env(Command::new(script))
                .args(["-q", "-e", "-c"])
                .arg(format!("{command} 2>{}", dir.join("log").display()))
                .arg("/dev/null")
                .stdin(std::process::Stdio::null()),
        )
    } else {
        output(ghosthunt_env(Command::new("sh")).arg("-c").arg(&command))
    };
    assert_eq!(code, 0, "{out}{err}");
    out
}

/// A command without the caller's GHOSTHUNT__ settings or RUST_LOG, and without NO_COLOR.
fn ghosthunt_env(mut c: Command) -> Command {
    c.env_remove("RUST_LOG").env_remove("NO_COLOR");
    for (k, _) in std::env::vars() {
        if k.starts_with("GHOSTHUNT__") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn on_a_terminal_alerts_are_lines_and_incidents_blocks_for_a_person_and_piped_they_are_ocsf_json() {
    let dir = tempfile::tempdir().unwrap();
    let text = run_campaign(dir.path(), true, None);
    if text.is_empty() {
        return; // skipped: no `script`
    }
    let plain: String = strip_ansi(&text).replace('\r', "");
    assert!(
        text.contains("\x1b[1;31mHIGH"),
        "severity in colour: {text:?}"
    );
    assert!(
        !plain.lines().any(|l| l.starts_with('{')),
        "no JSON on a terminal:\n{plain}"
    );
    let alert = plain
        .lines()
        .find(|l| {
            l.contains("PowerShell started with a base64-encoded command") && !l.starts_with(' ')
        })
        .unwrap_or_else(|| panic!("an alert line:\n{plain}"));
    assert!(
        alert.starts_with("2024-05-01 "),
        "event time first: {alert}"
    );
    assert!(
        alert.contains("HIGH") && alert.contains("host=WS-") && alert.contains("-enc"),
        "{alert}"
    );
    let block: Vec<&str> = plain
        .lines()
        .skip_while(|l| !l.contains("INCIDENT new  Attack progressing through the kill chain"))
        .take_while(|l| l.starts_with(' ') || l.contains("INCIDENT new  Attack"))
        .collect();
    assert!(block.len() >= 5, "an incident block:\n{plain}");
    assert_eq!(
        block[1].trim(),
        "tactics  execution → credential-access → lateral-movement"
    );
    assert!(
        block.iter().any(|l| l.trim_start().starts_with("contain ")),
        "{block:#?}"
    );
    assert!(
        plain.contains("INCIDENT updated  Attack progressing through the kill chain"),
        "{plain}"
    );

    // The same run piped: OCSF JSON lines, alerts and incidents.
    let json = run_campaign(dir.path(), false, None);
    let classes: Vec<u64> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["class_uid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        classes.contains(&2004) && classes.contains(&2005),
        "{classes:?}"
    );
    // --format overrides what stdout is.
    let forced = run_campaign(dir.path(), false, Some("human"));
    assert!(
        forced.contains("INCIDENT new") && !forced.contains('\x1b'),
        "{forced}"
    );
}

/// `text` without ANSI colour sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The binary allocates with jemalloc, started with its own options (one arena, freed pages given back
/// after about a second, blocks under 32 MiB kept in that arena), and a user's `MALLOC_CONF` still comes
/// after them and wins. jemalloc's
/// `confirm_conf` prints each source of options it read and every value it set.
#[cfg(target_os = "linux")]
#[test]
fn the_binary_allocates_with_jemalloc_and_its_options_yield_to_malloc_conf() {
    let (code, out, err) = output(
        ghosthunt()
            .env("MALLOC_CONF", "confirm_conf:true,narenas:3")
            .arg("--version"),
    );
    assert_eq!(code, 0, "{out}{err}");
    let set: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("<jemalloc>: -- Set conf value: "))
        .collect();
    // The binary's options, then the environment's, last (a string compiled into jemalloc would come
    // before them).
    assert!(
        set.ends_with(&[
            "narenas:1",
            "dirty_decay_ms:1000",
            "oversize_threshold:33554432",
            "confirm_conf:true",
            "narenas:3"
        ]),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l
            == "<jemalloc>: malloc_conf #2 (string pointed to by the global variable malloc_conf): \
                \"narenas:1,dirty_decay_ms:1000,oversize_threshold:33554432\""),
        "{err}"
    );
}

/// `ghosthunt hunts --long | head -2`: the reader goes away after a few lines; the command ends quietly
/// (it panicked on the failed print, exit code 101).
#[test]
fn a_listing_whose_reader_goes_away_ends_quietly() {
    let out = with_stdout_closed(
        ghosthunt()
            .args(["hunts", "--long"])
            .env("GHOSTHUNT__METRICS__LISTEN", ""),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// `ghosthunt hunt --hunt <id>`: an id no hunt has is an error naming it and the hunts there are, not a
/// retro-hunt run without it; so is `--hunt sigma` with no Sigma rules.
#[test]
fn a_retro_hunt_of_an_unknown_hunt_id_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"EventID\":4625}\n",
    )
    .unwrap();
    // `hunt --hunt IDS` over `file`, alerts to `alerts`, Sigma rules from `rules` when given.
    let retro =
        |file: &std::path::Path, rules: Option<&std::path::Path>, alerts: &str, ids: &[&str]| {
            let mut c = ghosthunt();
            c.args(["hunt", "--source", "files", "--file"])
                .arg(file)
                .env("GHOSTHUNT__ALERTS__SINK", "file")
                .env("GHOSTHUNT__ALERTS__PATH", dir.path().join(alerts));
            if let Some(rules) = rules {
                c.env("GHOSTHUNT__SIGMA__DIRECTORIES", rules);
            }
            for id in ids {
                c.args(["--hunt", id]);
            }
            output(&mut c)
        };
    let hunt = |ids: &[&str]| retro(&events, None, "alerts.jsonl", ids);
    let (code, _, err) = hunt(&["password_spray", "nope"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("--hunt nope"), "{err}");
    assert!(
        err.contains("password_guessing"),
        "the hunts there are: {err}"
    );
    let (code, _, err) = hunt(&["sigma"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("sigma.directories"), "{err}");
    let (code, _, err) = hunt(&["password_spray"]);
    assert_eq!(code, 0, "{err}");
    // A Sigma rule by its id: that rule runs (and the SQL hunts do not).
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("failed.yml"),
        "title: Failed logon\nid: 5b1a0c3e-0000-4000-8000-0000000000f1\nstatus: test\nlevel: low\n\
         logsource: {product: windows, service: security}\n\
         detection:\n    selection:\n        EventID: 4625\n    condition: selection\n",
    )
    .unwrap();
    let security = dir.path().join("security.jsonl");
    std::fs::write(
        &security,
        "{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"EventID\":4625,\"Channel\":\"Security\",\"Hostname\":\"WS-1\"}\n",
    )
    .unwrap();
    let with_rules = |ids: &[&str]| retro(&security, Some(&rules), "sigma.jsonl", ids);
    let (code, _, err) = with_rules(&["5b1a0c3e-0000-4000-8000-0000000000f1"]);
    assert_eq!(code, 0, "{err}");
    let alerts = std::fs::read_to_string(dir.path().join("sigma.jsonl")).unwrap();
    assert_eq!(alerts.lines().count(), 1, "{alerts}");
    assert!(
        alerts.contains("5b1a0c3e-0000-4000-8000-0000000000f1"),
        "{alerts}"
    );
    let (code, _, err) = with_rules(&["5b1a0c3e-0000-4000-8000-0000000000f2"]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("--hunt 5b1a0c3e-0000-4000-8000-0000000000f2"),
        "{err}"
    );
}

/// A Sigma directory that is not there fails `validate` (and `run`) naming it: the run went on with
/// none of the rules it was configured with, after one warning.
#[test]
fn a_sigma_directory_that_is_not_there_fails_validate_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-rules");
    let (code, _, err) = output(
        ghosthunt()
            .arg("validate")
            .env("GHOSTHUNT__METRICS__LISTEN", "")
            .env("GHOSTHUNT__SIGMA__DIRECTORIES", &missing),
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("sigma.directories"), "{err}");
    assert!(err.contains("no-such-rules"), "{err}");
}

/// `validate` makes the Kafka clients `run` would (without connecting): a client option librdkafka
/// refuses fails it, as it would fail `run`.
#[test]
fn validate_refuses_a_kafka_client_option_librdkafka_refuses() {
    let validate = |option: (&str, &str)| {
        output(
            ghosthunt()
                .arg("validate")
                .env("GHOSTHUNT__METRICS__LISTEN", "")
                .env("GHOSTHUNT__SOURCE__KIND", "kafka")
                .env("GHOSTHUNT__KAFKA__BROKERS", "127.0.0.1:1")
                .env(option.0, option.1),
        )
    };
    let (code, out, err) = validate((
        "GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS",
        "6000",
    ));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = validate((
        "GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS",
        "abc",
    ));
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("refused: source.kafka") && err.contains("session.timeout.ms"),
        "{err}"
    );
}

/// `validate` refuses lake settings a run could not use — a scheme not served, a path that is a file, an
/// S3 key object_store does not have — as the run would, before it is started.
#[test]
fn validate_refuses_lake_settings_a_run_could_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let validate = |env: &[(&str, String)]| {
        let mut c = ghosthunt();
        c.arg("validate").env("GHOSTHUNT__METRICS__LISTEN", "");
        for (k, v) in env {
            c.env(k, v);
        }
        output(&mut c)
    };
    let lake = |path: String| ("GHOSTHUNT__LAKE__PATH", path);
    for (env, why) in [
        (
            vec![lake("gs://bucket/x".into())],
            "`gs://` is not a lake ghosthunt writes",
        ),
        (
            vec![lake(file.display().to_string())],
            "is a file, not a directory",
        ),
        (
            vec![lake(format!("{}/lake", file.display()))],
            "is a file, not a directory",
        ),
        (
            vec![
                lake("s3://bucket/lake".into()),
                ("GHOSTHUNT__LAKE__STORAGE__AWS_ENDPOINTT", "http://x".into()),
            ],
            "lake.storage.aws_endpointt is not an S3 setting",
        ),
    ] {
        let (code, out, err) = validate(&env);
        assert_ne!(code, 0, "{env:?}: {out}{err}");
        assert!(err.contains(why), "{env:?}: {err}");
    }
    let (code, out, err) = validate(&[lake(dir.path().join("lake").display().to_string())]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !dir.path().join("lake").exists(),
        "validate creates nothing"
    );
}

/// A Sigma rule that is not valid Sigma fails `validate`; one refused for what it needs (a logsource
/// the mapping lacks) is reported and does not: SigmaHQ's set holds hundreds of those.
#[test]
fn validate_fails_a_broken_sigma_rule_not_an_unmapped_one() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |id: &str, logsource: &str, condition: &str| {
        format!(
            "title: R {id}\nid: 5b1a0c3e-0000-4000-8000-0000000000{id}\nstatus: test\nlevel: low\n\
             logsource: {logsource}\ndetection:\n    selection:\n        EventID: 4625\n    condition: {condition}\n"
        )
    };
    std::fs::write(
        dir.path().join("good.yml"),
        rule("a1", "{product: windows, service: security}", "selection"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("proxy.yml"),
        rule("a2", "{category: proxy}", "selection"),
    )
    .unwrap();
    let validate = || {
        output(
            ghosthunt()
                .arg("validate")
                .env("GHOSTHUNT__METRICS__LISTEN", "")
                .env("GHOSTHUNT__SIGMA__DIRECTORIES", dir.path()),
        )
    };
    let (code, out, err) = validate();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("configuration ok"), "{out}");
    // `hunts` lists the Sigma rules that would run.
    let (code, out, err) = output(
        ghosthunt()
            .arg("hunts")
            .env("GHOSTHUNT__METRICS__LISTEN", "")
            .env("GHOSTHUNT__SIGMA__DIRECTORIES", dir.path()),
    );
    assert_eq!(code, 0, "{out}{err}");
    let sigma = out.split("Sigma rules").nth(1).unwrap_or_default();
    assert!(
        sigma.contains("5b1a0c3e-0000-4000-8000-0000000000a1"),
        "{out}"
    );
    assert!(!sigma.contains("0000000000a2"), "{out}");
    std::fs::write(
        dir.path().join("broken.yml"),
        rule(
            "a3",
            "{product: windows, service: security}",
            "selection and and",
        ),
    )
    .unwrap();
    let (code, out, err) = validate();
    assert_ne!(code, 0, "{out}{err}");
    assert!(out.contains("configuration refused"), "{out}");
    assert!(out.contains("1 of them not valid Sigma"), "{out}");
    assert!(err.contains("broken.yml"), "{err}");
}

/// An unwindowed hunt without `event_time` in its result is planned with a warning: the same row at two
/// times would be one alert id, and its alerts would take their batch's time.
#[test]
fn an_unwindowed_hunt_without_event_time_is_planned_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let write = |id: &str, sql: &str| {
        std::fs::write(
            dir.path().join(format!("{id}.sql")),
            common::hunt(id, "none", "", sql),
        )
        .unwrap();
    };
    write(
        "untimed",
        "SELECT host, command_line FROM events WHERE event_id = 1",
    );
    write(
        "timed",
        "SELECT event_time, host, command_line FROM events WHERE event_id = 1",
    );
    let (code, _, err) = output(
        ghosthunt()
            .arg("validate")
            .env("GHOSTHUNT__METRICS__LISTEN", "")
            .env("GHOSTHUNT__HUNTS__BUILTIN", "false")
            .env("GHOSTHUNT__HUNTS__DIRECTORIES", dir.path()),
    );
    assert_eq!(code, 0, "{err}");
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("no event_time"))
        .collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains("untimed"), "{err}");
}

/// A lake path with no lake: `query`, `hunt` and `lake optimize` say there is no table there, and
/// create nothing (a mistyped path left empty directories behind, and a delta-rs error).
#[test]
fn a_lake_path_with_no_lake_is_an_error_that_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    let lake = typo.join("deep/lake");
    for args in [
        vec!["query", "SELECT count(*) FROM events"],
        vec!["hunt", "--from", "2026-01-01"],
        vec!["lake", "optimize"],
        vec!["lake", "vacuum", "--retain", "7d"],
    ] {
        let (code, _, err) = output(
            ghosthunt()
                .args(&args)
                .env("GHOSTHUNT__METRICS__LISTEN", "")
                .env("GHOSTHUNT__LAKE__PATH", &lake),
        );
        assert_ne!(code, 0, "{args:?}: {err}");
        assert!(err.contains("there is none at"), "{args:?}: {err}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

/// Mistakes in a command's arguments are named before anything runs.
#[test]
fn hunt_and_lake_arguments_that_cannot_work_are_refused() {
    let (code, _, err) = output(
        ghosthunt()
            .args(["hunt", "--file", "x.jsonl", "--from", "2026-01-01"])
            .env("GHOSTHUNT__METRICS__LISTEN", "")
            .env("GHOSTHUNT__LAKE__PATH", "/nonexistent-lake"),
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("--source files"), "{err}");
    let (code, _, err) = output(ghosthunt().args(["lake", "optimize", "--target-mib", "0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("target-mib"), "{err}");
}

/// Two hunt files of one id: the later replaces the earlier, with a warning naming both.
#[test]
fn two_hunt_files_of_one_id_are_warned_of() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for d in &dirs {
        std::fs::write(
            d.path().join("twin.sql"),
            common::hunt(
                "twin",
                "none",
                "",
                "SELECT event_time, host FROM events WHERE event_id = 1",
            ),
        )
        .unwrap();
    }
    let list = format!("{},{}", dirs[0].path().display(), dirs[1].path().display());
    let (code, _, err) = output(
        ghosthunt()
            .arg("validate")
            .env("GHOSTHUNT__METRICS__LISTEN", "")
            .env("GHOSTHUNT__HUNTS__BUILTIN", "false")
            .env("GHOSTHUNT__HUNTS__DIRECTORIES", list),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Two hunt files have this id"), "{err}");
}

/// `ghosthunt run` whose alerts go to a standard output nobody reads any more fails: its alerts are
/// not delivered (only a listing's reader going away ends a command quietly).
#[test]
fn a_run_whose_alert_output_is_closed_fails() {
    let out = with_stdout_closed(
        ghosthunt()
            .arg("run")
            .env("GHOSTHUNT__METRICS__LISTEN", "")
            .env("GHOSTHUNT__SOURCE__KIND", "file")
            .env(
                "GHOSTHUNT__SOURCE__FILE__PATHS",
                common::repo().join("sql/tests/encoded_powershell/events.jsonl"),
            ),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("error"), "{err}");
}

/// `ghosthunt hunts` lists what `run` would run: a hunt whose SQL does not plan is refused, not listed.
#[test]
fn hunts_lists_only_the_hunts_that_plan() {
    let dir = tempfile::tempdir().unwrap();
    for (id, sql) in [
        (
            "fine",
            "SELECT event_time, host FROM events WHERE event_id = 1",
        ),
        ("writes", "INSERT INTO events SELECT * FROM events"),
        ("unknown", "SELECT no_such_column FROM events"),
    ] {
        std::fs::write(
            dir.path().join(format!("{id}.sql")),
            common::hunt(id, "none", "", sql),
        )
        .unwrap();
    }
    let (code, out, err) = output(
        ghosthunt()
            .arg("hunts")
            .env("GHOSTHUNT__METRICS__LISTEN", "")
            .env("GHOSTHUNT__HUNTS__DIRECTORIES", dir.path())
            .env("GHOSTHUNT__HUNTS__BUILTIN", "false")
            .env("GHOSTHUNT__INCIDENTS__BUILTIN", "false"),
    );
    assert_ne!(code, 0, "{err}");
    let listed: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, ["fine"], "{out}");
    assert!(
        err.contains("writes.sql") && err.contains("unknown.sql"),
        "{err}"
    );
}

/// A retro-hunt over Kafka whose brokers do not answer stops at a signal, says it was cut short, and
/// exits 130: it waited out the 30 s request timeout, and said nothing meanwhile.
#[test]
fn a_kafka_retro_hunt_waiting_on_brokers_stops_at_a_signal() {
    let started = std::time::Instant::now();
    let child = ghosthunt()
        .args(["hunt", "--source", "kafka", "--from", "2026-01-01"])
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .env("GHOSTHUNT__SOURCE__KIND", "kafka")
        .env("GHOSTHUNT__SOURCE__KAFKA__TOPICS", "events")
        .env("GHOSTHUNT__KAFKA__BROKERS", "127.0.0.1:1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("Asking the brokers"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}: {err}",
        started.elapsed()
    );
}

/// Runs `c` with its standard output closed before it has written anything (it starts in tens of
/// milliseconds): its first write fails.
fn with_stdout_closed(c: &mut Command) -> std::process::Output {
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}
