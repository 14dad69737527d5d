//! Crash safety over a real broker: the pipeline runs as a child process, is killed with SIGKILL at
//! several points while events flow, and restarted; every expected alert reaches the alerts topic
//! (duplicates allowed, with the same ids) — nothing is lost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::Broker;
use serde_json::Value;

fn lsass_event(i: usize) -> String {
    format!(
        r#"{{"@timestamp":"2024-05-01T{h:02}:{m:02}:{s:02}Z","EventID":10,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WS-{i:05}","SourceImage":"C:\\Users\\Public\\nanodump.exe","TargetImage":"C:\\Windows\\system32\\lsass.exe","GrantedAccess":"0x1010","CallTrace":"UNKNOWN(00007FF8)"}}"#,
        h = 10 + i / 3600,
        m = i / 60 % 60,
        s = i % 60
    )
}

fn spawn(broker: &Broker, dir: &std::path::Path, run: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ghosthunt"))
        .arg("run")
        .env_remove("RUST_LOG")
        .env("GHOSTHUNT__SOURCE__KIND", "kafka")
        .env("GHOSTHUNT__SOURCE__KAFKA__TOPICS", "events")
        .env("GHOSTHUNT__SOURCE__KAFKA__GROUP_ID", "crash")
        // Commits lag the alerts by up to 2 s: a kill then leaves alerted but uncommitted records behind.
        .env("GHOSTHUNT__SOURCE__KAFKA__COMMIT_INTERVAL", "2s")
        // A killed member leaves the group only when its session times out: keep that short.
        .env(
            "GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS",
            "3000",
        )
        .env(
            "GHOSTHUNT__SOURCE__KAFKA__OPTIONS__HEARTBEAT_INTERVAL_MS",
            "500",
        )
        .env("GHOSTHUNT__KAFKA__BROKERS", &broker.bootstrap)
        .env("GHOSTHUNT__KAFKA__OPTIONS__BROKER_ADDRESS_FAMILY", "v4")
        .env("GHOSTHUNT__ALERTS__SINK", "kafka")
        .env("GHOSTHUNT__ALERTS__TOPIC", "alerts")
        .env("GHOSTHUNT__DEAD_LETTERS__SINK", "kafka")
        .env("GHOSTHUNT__DEAD_LETTERS__TOPIC", "dead-letters")
        .env("GHOSTHUNT__DECODE__BATCH_SIZE", "200")
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("run-{run}.log"))).unwrap())
        .spawn()
        .unwrap()
}

fn uid(value: &[u8]) -> String {
    serde_json::from_slice::<Value>(value).unwrap()["finding_info"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_several_points_loses_no_alert() {
    const EVENTS: usize = 4000;
    const KILLS: usize = 5;
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 3).await;
    broker.create_topic("alerts", 1).await;
    broker.create_topic("dead-letters", 1).await;
    let lines: Vec<String> = (0..EVENTS).map(lsass_event).collect();
    let dir = tempfile::tempdir().unwrap();

    // Events keep arriving while the pipeline is killed and restarted.
    let producer = {
        let bootstrap = broker.bootstrap.clone();
        let lines = lines.clone();
        tokio::spawn(async move {
            for part in lines.chunks(EVENTS / 20) {
                let records: Vec<(Option<String>, Vec<u8>)> = part
                    .iter()
                    .map(|l| {
                        (
                            Some(
                                serde_json::from_str::<Value>(l).unwrap()["Hostname"]
                                    .as_str()
                                    .unwrap()
                                    .to_string(),
                            ),
                            l.clone().into_bytes(),
                        )
                    })
                    .collect();
                common::kafka::produce_to(&bootstrap, "events", &records).await;
                tokio::time::sleep(Duration::from_millis(900)).await;
            }
        })
    };

    // Each run first waits for the killed member's session to expire, then joins and works.
    let pauses = [5.0, 7.5, 6.0, 9.0, 6.5];
    for (run, pause) in pauses.iter().enumerate().take(KILLS) {
        let mut child = spawn(&broker, dir.path(), run);
        tokio::time::sleep(Duration::from_secs_f64(*pause)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    producer.await.unwrap();

    // A last run that is left to finish.
    let mut child = spawn(&broker, dir.path(), KILLS);
    let bootstrap = broker.bootstrap.clone();
    let records = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // Everything on the topic so far (duplicates included).
            let records = common::kafka::consume_all(
                &bootstrap,
                "alerts",
                usize::MAX,
                Duration::from_secs(5),
            );
            let distinct: BTreeSet<String> = records.iter().map(|r| uid(&r.value)).collect();
            if distinct.len() >= EVENTS || Instant::now() > deadline {
                return records;
            }
        }
    })
    .await
    .unwrap();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *seen.entry(uid(&r.value)).or_default() += 1;
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 runs: {KILLS}; alerts expected: {EVENTS}; distinct seen: {}; records on the topic: {}; duplicates: {duplicates}",
        seen.len(),
        records.len()
    );
    // The kills must have hit running pipelines: each killed run that got partitions logged it.
    let assigned = (0..KILLS)
        .filter(|run| {
            std::fs::read_to_string(dir.path().join(format!("run-{run}.log")))
                .unwrap_or_default()
                .contains("Partitions assigned")
        })
        .count();
    eprintln!("killed runs that had partitions assigned: {assigned} of {KILLS}");
    assert!(
        assigned >= 2,
        "too few kills hit a working pipeline ({assigned})"
    );
    if seen.len() != EVENTS {
        let logs = dir.keep();
        panic!(
            "{} of {EVENTS} expected alerts on the alerts topic (pipeline logs kept in {})",
            seen.len(),
            logs.display()
        );
    }
}
