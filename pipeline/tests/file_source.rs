//! The file source: globs read in order, and following growing, new and replaced files like `tail -F`.

mod common;

use std::io::Write;
use std::time::Duration;

use ghosthunt::alert::{Alert, MemorySink};
use ghosthunt::settings::FileSettings;
use ghosthunt::source::FileSource;
use tokio_util::sync::CancellationToken;

const SQL: &str = "SELECT event_time, host, command_line FROM events WHERE event_id = 1";

fn process(second: u32, host: &str) -> String {
    format!(
        "{{\"@timestamp\":\"2024-05-01T10:00:{second:02}Z\",\"EventID\":1,\"Hostname\":\"{host}\",\"CommandLine\":\"whoami\"}}\n"
    )
}

async fn wait_for(alerts: &MemorySink<Alert>, n: usize) -> usize {
    for _ in 0..200 {
        if alerts.snapshot().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    alerts.snapshot().len()
}

#[tokio::test]
async fn glob_reads_every_matching_file_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.jsonl"), process(2, "B")).unwrap();
    std::fs::write(dir.path().join("a.jsonl"), process(1, "A")).unwrap();
    std::fs::write(dir.path().join("c.txt"), process(3, "C")).unwrap();
    let hunts = common::plan_hunts(&[("p", &common::hunt("p", "none", "", SQL))]).await;
    let source = FileSource::new(
        FileSettings {
            paths: vec![format!("{}/*.jsonl", dir.path().display())],
            follow: false,
            poll_interval: Duration::from_millis(50),
        },
        1 << 20,
    )
    .unwrap();
    let run = common::run_pipeline(
        common::test_settings(),
        hunts,
        Box::new(source),
        CancellationToken::new(),
    )
    .await;
    let hosts: Vec<String> = run
        .rows()
        .iter()
        .map(|r| r["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts, vec!["A", "B"]);
}

#[test]
fn a_pattern_that_matches_nothing_is_an_error_at_start() {
    let err = FileSource::new(
        FileSettings {
            paths: vec!["/nonexistent/*.jsonl".into()],
            follow: false,
            poll_interval: Duration::from_millis(50),
        },
        1 << 20,
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("/nonexistent/*.jsonl"), "{err}");
}

#[tokio::test]
async fn follow_reads_appended_lines_new_files_and_replaced_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    std::fs::write(&a, process(1, "A")).unwrap();
    let hunts = common::plan_hunts(&[("p", &common::hunt("p", "none", "", SQL))]).await;
    let source = FileSource::new(
        FileSettings {
            paths: vec![format!("{}/*.jsonl", dir.path().display())],
            follow: true,
            poll_interval: Duration::from_millis(40),
        },
        1 << 20,
    )
    .unwrap();
    let running = common::spawn_pipeline(common::test_settings(), hunts, Box::new(source));
    let alerts = running.alerts.clone();
    assert_eq!(wait_for(&alerts, 1).await, 1);

    // A growing file: an appended line, written in two parts (a half line is not a record yet).
    let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    let line = process(2, "A");
    f.write_all(&line.as_bytes()[..20]).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    f.write_all(&line.as_bytes()[20..]).unwrap();
    drop(f);
    assert_eq!(wait_for(&alerts, 2).await, 2);

    // A new file under the glob.
    std::fs::write(dir.path().join("b.jsonl"), process(3, "B")).unwrap();
    assert_eq!(wait_for(&alerts, 3).await, 3);

    // Rotation: a.jsonl replaced by a new, shorter file is read from its start.
    let rotated = dir.path().join("a.jsonl.new");
    std::fs::write(&rotated, process(4, "A2")).unwrap();
    std::fs::rename(&rotated, &a).unwrap();
    assert_eq!(wait_for(&alerts, 4).await, 4);

    // Truncation: the same file (same inode) cut shorter than what was read of it is read from its start.
    let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    f.write_all(format!("{}{}", process(5, "A2"), process(6, "A2")).as_bytes())
        .unwrap();
    drop(f);
    assert_eq!(wait_for(&alerts, 6).await, 6);
    std::fs::write(&a, process(7, "A3")).unwrap();
    assert_eq!(wait_for(&alerts, 7).await, 7);

    running.stop().await;
    let hosts: Vec<String> = alerts
        .snapshot()
        .iter()
        .map(|a| {
            ghosthunt::testing::evidence(a)["host"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(hosts, vec!["A", "A", "B", "A2", "A2", "A2", "A3"]);
}
