//! Exactly once into the lake over a real broker: the pipeline runs as a child process reading Kafka into
//! the lake, is killed with SIGKILL at random points while events flow (commits every few hundred rows,
//! so kills land before, during and after Delta commits and Kafka offset commits) and restarted; at the
//! end the events table holds every event exactly once.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::Broker;
use ghosthunt::lake::read::Range;
use rand::{Rng, SeedableRng};

fn event(i: usize) -> String {
    format!(
        r#"{{"@timestamp":"2026-11-01T{h:02}:{m:02}:{s:02}.{i:06}Z","EventID":4625,"Channel":"Security","Hostname":"WS-{host:03}","TargetUserName":"user{i}","IpAddress":"10.0.{a}.{b}","LogonType":3}}"#,
        h = 10 + i / 3600,
        m = i / 60 % 60,
        s = i % 60,
        host = i % 50,
        a = i % 200,
        b = i % 250
    )
}

fn spawn(broker: &Broker, dir: &Path, lake: &Path, run: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ghosthunt"))
        .arg("run")
        .env_remove("RUST_LOG")
        .env("GHOSTHUNT__SOURCE__KIND", "kafka")
        .env("GHOSTHUNT__SOURCE__KAFKA__TOPICS", "events")
        .env("GHOSTHUNT__SOURCE__KAFKA__GROUP_ID", "lake-crash")
        // Offsets are committed to Kafka a second after the Delta commit that holds them at most: a kill
        // in between replays rows the table already has.
        .env("GHOSTHUNT__SOURCE__KAFKA__COMMIT_INTERVAL", "1s")
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
        .env("GHOSTHUNT__ALERTS__SINK", "file")
        .env(
            "GHOSTHUNT__ALERTS__PATH",
            dir.join(format!("alerts-{run}.jsonl")),
        )
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            dir.join(format!("dead-{run}.jsonl")),
        )
        .env("GHOSTHUNT__DECODE__BATCH_SIZE", "100")
        .env("GHOSTHUNT__LAKE__PATH", lake)
        .env("GHOSTHUNT__LAKE__FLUSH_ROWS", "300")
        .env("GHOSTHUNT__LAKE__FLUSH_INTERVAL", "500ms")
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("run-{run}.log"))).unwrap())
        .spawn()
        .unwrap()
}

/// (rows, distinct record keys) in the events table.
async fn table_counts(lake: &Path) -> (i64, i64) {
    let mut s = common::test_settings();
    s.lake.path = lake.display().to_string();
    let mut out = Vec::new();
    let result = ghosthunt::cli::lake::query(
        &s,
        "SELECT count(*) AS n, count(DISTINCT (_input, _offset)) AS keys FROM events",
        false,
        Range::default(),
        ghosthunt::cli::lake::Format::Json,
        &mut out,
    )
    .await;
    if result.is_err() {
        return (0, 0); // no table yet
    }
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    (v["n"].as_i64().unwrap(), v["keys"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_lake_writes_leaves_each_event_in_the_table_once() {
    const EVENTS: usize = 6000;
    const KILLS: usize = 6;
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("events", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lines: Vec<String> = (0..EVENTS).map(event).collect();

    let producer = {
        let bootstrap = broker.bootstrap.clone();
        tokio::spawn(async move {
            // Events keep arriving for about as long as the killed runs last: every kill lands while
            // there is work.
            for part in lines.chunks(EVENTS / 50) {
                let records: Vec<(Option<String>, Vec<u8>)> = part
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (Some(format!("k{i}")), l.clone().into_bytes()))
                    .collect();
                common::kafka::produce_to(&bootstrap, "events", &records).await;
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
        })
    };

    // Random kill points (the seed is printed, so a failure can be replayed).
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut pauses = Vec::new();
    for run in 0..KILLS {
        // Long enough for the killed member's session to expire and this one to join and write.
        let pause = rng.random_range(7.0..11.0);
        pauses.push(pause);
        let mut child = spawn(&broker, dir.path(), &lake, run);
        tokio::time::sleep(Duration::from_secs_f64(pause)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    producer.await.unwrap();

    let mut child = spawn(&broker, dir.path(), &lake, KILLS);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut counts = table_counts(&lake).await;
    while counts.1 < EVENTS as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        counts = table_counts(&lake).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    let (rows, keys) = table_counts(&lake).await;
    let skipped: usize = (0..=KILLS)
        .map(|run| {
            std::fs::read_to_string(dir.path().join(format!("run-{run}.log")))
                .unwrap_or_default()
                .matches("Replayed rows")
                .count()
        })
        .sum();
    eprintln!(
        "seed {seed}; kill -9 runs: {KILLS} after {pauses:.1?} s; rows expected: {EVENTS}; rows found: {rows}; distinct record keys: {keys}; runs that skipped replayed rows: {skipped}"
    );
    let committed_before_kill = (0..KILLS)
        .filter(|run| {
            std::fs::read_to_string(dir.path().join(format!("run-{run}.log")))
                .unwrap_or_default()
                .contains("Partitions assigned")
        })
        .count();
    assert!(
        committed_before_kill >= 3,
        "too few kills hit a working pipeline ({committed_before_kill} of {KILLS})"
    );
    if rows != EVENTS as i64 || keys != EVENTS as i64 {
        let kept = dir.keep();
        panic!(
            "the events table holds {rows} rows, {keys} distinct, of {EVENTS} (logs and lake kept in {})",
            kept.display()
        );
    }
}
