//! A live consumer (`ghosthunt run` in a consumer group, on the real broker) catching up on partitions
//! that run apart in event time: while a windowed hunt's state fills, the partition ahead is paused
//! until the older one catches up, so no row is dropped and the windows count what the same events
//! give from a file in time order.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::Broker;
use common::kafka::skewed::{produce_halves, producer};

/// The alert ids in `path`, leaving out the window of the sentinels (2029, see `send_sentinels`): the
/// live pipeline closes it when it is stopped, the file has no such events.
fn ids_before_the_sentinels(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("2029-01-01"))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["finding_info"]["uid"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The first half of 100,000 events (33 minutes of event time) is on partition 0, the second on
/// partition 1, and the consumer reads the topic's `partitions` from the start. The windows have room
/// for 40,000 rows (about 26 minutes of events; the partitions are held back from 20,000 on, and the
/// records already read when they are — some thousands — still come): read side by side, partition 1's
/// rows would wait in the windows for partition 0's 33 minutes and overflow them (rows dropped: other
/// counts; checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_ahead_is_paused_while_the_windows_fill_and_no_row_is_dropped() {
    live_windows_count_as_the_file(2).await;
}

/// The same with a third partition that stays empty: until it is idle (`window.idle_timeout`) it holds
/// the watermark, so the windows fill with both other partitions' rows; while they do, both wait for
/// it to be known or idle instead of overflowing the windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_partition_holds_the_others_while_the_windows_fill_until_it_is_idle() {
    live_windows_count_as_the_file(3).await;
}

async fn live_windows_count_as_the_file(partitions: i32) {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("live-skewed", partitions).await;
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = produce_halves(&producer(&broker), "live-skewed", dir.path()).await;
    let hunts = common::per_minute_hunt(dir.path()).display().to_string();
    let env = [
        ("GHOSTHUNT__HUNTS__BUILTIN", "false"),
        ("GHOSTHUNT__HUNTS__DIRECTORIES", hunts.as_str()),
        ("GHOSTHUNT__WINDOW__ALLOWED_LATENESS", "0s"),
        ("GHOSTHUNT__WINDOW__MAX_ROWS_PER_HUNT", "40000"),
        ("GHOSTHUNT__DECODE__BATCH_SIZE", "1024"),
    ];

    let from_file = dir.path().join("file.jsonl");
    common::hunt_files(&file, &from_file, &env);
    let expected = ids_before_the_sentinels(&from_file);
    assert!(expected.len() >= 60, "{} windows", expected.len());

    let from_kafka = dir.path().join("kafka.jsonl");
    let log = dir.path().join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghosthunt"))
        .arg("run")
        .env_remove("RUST_LOG")
        .env(
            "GHOSTHUNT__LOG__FILTER",
            "info,ghosthunt::source::align=debug",
        )
        .env("GHOSTHUNT__SOURCE__KIND", "kafka")
        .env("GHOSTHUNT__SOURCE__KAFKA__TOPICS", "live-skewed")
        .env("GHOSTHUNT__SOURCE__KAFKA__GROUP_ID", "live-skewed")
        .env(
            "GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS",
            common::kafka::TEST_SESSION_TIMEOUT_MS.to_string(),
        )
        .env("GHOSTHUNT__KAFKA__BROKERS", &broker.bootstrap)
        .env("GHOSTHUNT__ALERTS__SINK", "file")
        .env("GHOSTHUNT__ALERTS__PATH", &from_kafka)
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            dir.path().join("kafka.dead"),
        )
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .envs(env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(150);
    while ids_before_the_sentinels(&from_kafka).len() < expected.len() && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    let got = ids_before_the_sentinels(&from_kafka);
    if got != expected {
        eprintln!("kept: {}", dir.keep().display());
    }
    let notes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("paused or resumed") || l.contains("filling"))
        .take(40)
        .collect();
    assert_eq!(
        got,
        expected,
        "the windows' counts differ between Kafka and the file ({} and {} windows): rows were dropped or late; log:\n{}",
        got.len(),
        expected.len(),
        notes.join("\n")
    );
    assert!(
        log.contains("Partition paused or resumed"),
        "partition 1 was never paused:\n{}",
        notes.join("\n")
    );
}
