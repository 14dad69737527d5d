//! Scale-out on a real Kafka-protocol broker (tansu): three instances in one consumer group with
//! `scale.mode = "repartition"` find exactly the alerts one instance finds, for windowed hunts that group
//! events from many hosts (the topic is keyed by host); three instances in `local` mode miss them, which
//! is what the repartition topic is for.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::kafka::Broker;
use ghosthunt::app::{self, Handles};
use ghosthunt::settings::{FileSettings, OutputSettings, ScaleMode, Settings};
use ghosthunt::source::FileSource;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One source address failing logons on many hosts, and one account logging on to many hosts: both
/// group rows of different hosts, so with the topic keyed by host no single partition holds a group.
fn hunt_files(dir: &Path) {
    let spray = common::hunt(
        "spray_across_hosts",
        "tumbling 5m",
        "entity: ip_address\n",
        "SELECT window_start, window_end, ip_address, count(*) AS failures,\n\
         count(DISTINCT host) AS hosts, array_sort(array_agg(DISTINCT host)) AS host_list\n\
         FROM events WHERE event_id = 4625 AND ip_address IS NOT NULL\n\
         GROUP BY window_start, window_end, ip_address\n\
         HAVING count(DISTINCT host) >= 5",
    );
    let roaming = common::hunt(
        "account_on_many_hosts",
        "hopping 10m every 5m",
        "entity: account\n",
        "SELECT window_start, window_end, lower(target_user_name) AS account, count(*) AS logons,\n\
         count(DISTINCT host) AS hosts, min(event_time) AS first_seen\n\
         FROM events WHERE event_id = 4624 AND logon_type IN (3, 10)\n\
         GROUP BY window_start, window_end, lower(target_user_name)\n\
         HAVING count(DISTINCT host) >= 6",
    );
    std::fs::write(dir.join("spray_across_hosts.sql"), spray).unwrap();
    std::fs::write(dir.join("account_on_many_hosts.sql"), roaming).unwrap();
}

/// A logon (4624) or failed logon (4625) at `minute` minutes after 10:00.
fn logon(minute: u32, second: u32, id: u32, host: usize, ip: &str, user: &str) -> String {
    let (hour, minute) = (10 + minute / 60, minute % 60);
    serde_json::json!({
        "@timestamp": format!("2026-11-02T{hour:02}:{minute:02}:{second:02}Z"),
        "EventID": id,
        "Channel": "Security",
        "Hostname": format!("SRV-{host:02}"),
        "IpAddress": ip,
        "TargetUserName": user,
        "LogonType": 3,
    })
    .to_string()
}

/// Events of 16 hosts over 25 minutes: background logons and failures (each source on one host), two
/// sprays across hosts, one account roaming, and a spray that stays under the threshold.
/// One event per host (so on every partition of a topic keyed by host) at `minute` after 10:00, which
/// no hunt selects: the watermark passes every window before it.
fn closing_events(minute: u32) -> Vec<String> {
    (0..16)
        .map(|host| logon(minute, 0, 4634, host, "-", "-"))
        .collect()
}

fn events() -> Vec<String> {
    events_from(0)
}

/// [`events`] starting `at` minutes after 10:00 (a multiple of 5: the same windows find the same things).
fn events_from(at: u32) -> Vec<String> {
    let logon = |minute: u32, second, id, host, ip: &str, user: &str| {
        logon(at + minute, second, id, host, ip, user)
    };
    let mut lines = Vec::new();
    for minute in 0..25u32 {
        for host in 0..16usize {
            let second = (host as u32 * 3 + minute) % 60;
            lines.push(logon(
                minute,
                second,
                4624,
                host,
                &format!("10.1.0.{host}"),
                &format!("user{host}"),
            ));
            if (minute + host as u32).is_multiple_of(4) {
                lines.push(logon(
                    minute,
                    second,
                    4625,
                    host,
                    &format!("10.1.0.{host}"),
                    &format!("user{host}"),
                ));
            }
        }
    }
    for (i, host) in [1, 3, 4, 6, 9, 11, 12, 14].iter().enumerate() {
        lines.push(logon(
            2,
            10 + i as u32,
            4625,
            *host,
            "203.0.113.7",
            "administrator",
        ));
        lines.push(logon(2, 20 + i as u32, 4625, *host, "203.0.113.7", "admin"));
    }
    for (i, host) in [0, 2, 5, 7, 8, 10, 13].iter().enumerate() {
        lines.push(logon(
            16,
            5 + i as u32,
            4625,
            *host,
            "198.51.100.23",
            "backup",
        ));
    }
    for (i, host) in [0, 1, 2].iter().enumerate() {
        lines.push(logon(21, 5 + i as u32, 4625, *host, "192.0.2.99", "guest"));
    }
    for (i, host) in [2, 4, 6, 8, 10, 12, 14].iter().enumerate() {
        lines.push(logon(
            7 + (i as u32 % 3),
            40,
            4624,
            *host,
            "10.9.9.9",
            "SVC-Deploy",
        ));
    }
    lines.sort_by_key(|l| {
        serde_json::from_str::<Value>(l).unwrap()["@timestamp"]
            .as_str()
            .unwrap()
            .to_string()
    });
    lines
}

fn settings(dir: &Path) -> Settings {
    let mut s = common::test_settings();
    s.hunts.builtin = false;
    s.hunts.directories = vec![dir.to_path_buf()];
    s
}

/// The alerts one pipeline gives the events read from a file (the reference): id → hunt, window, row.
async fn reference(lines: &[String], dir: &Path) -> BTreeMap<String, String> {
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let settings = settings(dir);
    let (hunts, errors) = app::hunts(&settings, &ghosthunt::decode::EventSchema::windows()).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(hunts.len(), 2);
    let source = FileSource::new(
        FileSettings {
            paths: vec![path.display().to_string()],
            follow: false,
            poll_interval: Duration::from_millis(50),
        },
        settings.decode.max_record_bytes,
    )
    .unwrap();
    let run =
        common::run_pipeline(settings, hunts, Box::new(source), CancellationToken::new()).await;
    run.alerts
        .iter()
        .map(|a| {
            let v: Value = serde_json::from_str(&a.json).unwrap();
            let what = format!(
                "{} {} {}",
                a.hunt.id, v["unmapped"]["window_start"], v["evidences"][0]["data"]
            );
            (a.id.clone(), what)
        })
        .collect()
}

/// The alert ids of [`reference`].
async fn one_instance(lines: &[String], dir: &Path) -> BTreeSet<String> {
    reference(lines, dir).await.into_keys().collect()
}

fn alert_ids(records: &[common::kafka::ConsumedRecord]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.value).unwrap()["finding_info"]["uid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The partitions of `topic` an instance exports consumer lag for: those it owns.
fn owned_partitions(h: &Handles, topic: &str) -> BTreeSet<String> {
    let prefix = "ghosthunt_kafka_consumer_lag{partition=\"";
    h.metrics
        .render()
        .lines()
        .filter(|l| l.contains(&format!("topic=\"{topic}\"")))
        .filter_map(|l| l.strip_prefix(prefix)?.split('"').next().map(String::from))
        .collect()
}

fn metric_sum(handles: &[Handles], series: &str) -> f64 {
    handles
        .iter()
        .map(|h| common::metric(&h.metrics.render(), series).unwrap_or(0.0))
        .sum()
}

/// Runs three instances of `mode` in group `group`, producing the events once all have joined, until
/// every event is acknowledged and the windows had time to close; returns the alert ids on `alerts`.
async fn three_instances(
    broker: &Broker,
    dir: &Path,
    (group, events, alerts): (&str, &str, &str),
    mode: ScaleMode,
    lines: &[String],
    (expect, wait): (usize, Duration),
) -> (BTreeSet<String>, Vec<Handles>) {
    broker.create_topic(events, 3).await;
    broker.create_topic(alerts, 1).await;
    let shutdown = CancellationToken::new();
    let handles: Vec<Handles> = (0..3).map(|_| Handles::default()).collect();
    let mut tasks = Vec::new();
    for h in &handles {
        let mut s = common::kafka::pipeline_settings(&broker.bootstrap, group);
        s.kafka.options = vec![("broker.address.family".into(), "v4".into())];
        s.hunts = settings(dir).hunts;
        // Inputs never go idle in this test (an input idle when the events start would let the
        // watermark pass its rows before its reader gets them): windows close by event time, on the
        // closing events.
        s.window.idle_timeout = Duration::from_secs(120);
        s.alerts = OutputSettings::Kafka {
            topic: alerts.into(),
        };
        if let ghosthunt::settings::SourceSettings::Kafka(k) = &mut s.source {
            k.topics = vec![events.into()];
        }
        s.scale.mode = mode;
        s.scale.topic = format!("{group}-repartition-topic");
        s.scale.partitions = 6;
        tasks.push(tokio::spawn(app::run(s, h.clone(), shutdown.clone())));
    }
    // The groups settled: no rebalance for 8 s after every consumer had one and, scaled out, each
    // instance owns some of the repartition topic's partitions (the consumer lag each exports names
    // them; the events topic, empty so far, has no lag to export yet).
    let repartition = format!("{group}-repartition-topic");
    let consumers = if mode == ScaleMode::Repartition {
        6.0
    } else {
        3.0
    };
    let state = || {
        let owned: Vec<BTreeSet<String>> = handles
            .iter()
            .map(|h| owned_partitions(h, &repartition))
            .collect();
        (
            metric_sum(&handles, "ghosthunt_kafka_rebalances_total"),
            owned,
        )
    };
    let settled = |(rebalances, owned): &(f64, Vec<BTreeSet<String>>)| {
        *rebalances >= consumers
            && (mode == ScaleMode::Local
                || (owned.iter().all(|o| !o.is_empty())
                    && owned.iter().map(BTreeSet::len).sum::<usize>() == 6))
    };
    let mut last = state();
    let mut since = std::time::Instant::now();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = state();
        if now != last {
            (last, since) = (now.clone(), std::time::Instant::now());
        } else if settled(&now) && since.elapsed() > Duration::from_secs(8) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the groups did not settle: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let keyed = common::kafka::keyed_by_host(lines);
    broker.produce(events, &keyed).await;
    let n = lines.len() as f64;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while metric_sum(&handles, "ghosthunt_acknowledged_events_total") < n {
        assert!(
            std::time::Instant::now() < deadline,
            "not every event was acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let records = broker.consume_all_async(alerts, expect, wait).await;
    shutdown.cancel();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    (alert_ids(&records), handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_repartitioned_find_exactly_what_one_finds_and_local_ones_miss_it() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    hunt_files(dir.path());
    let mut lines = events();
    lines.extend(closing_events(60));
    let expected = one_instance(&lines, dir.path()).await;
    // Two sprays (one window each) and the roaming account (two hopping windows).
    assert_eq!(
        expected.len(),
        4,
        "the reference run finds every planted pattern"
    );
    let (scaled, handles) = three_instances(
        &broker,
        dir.path(),
        ("scaled", "events-scaled", "alerts-scaled"),
        ScaleMode::Repartition,
        &lines,
        (expected.len(), Duration::from_secs(60)),
    )
    .await;
    assert_eq!(
        scaled, expected,
        "three repartitioned instances find what one finds"
    );
    let rows = metric_sum(
        &handles,
        "ghosthunt_repartition_rows_total{hunt=\"spray_across_hosts\"}",
    );
    let failures = lines
        .iter()
        .filter(|l| l.contains("\"EventID\":4625"))
        .count();
    assert_eq!(rows, failures as f64, "each failure repartitioned once");
    let evaluated: Vec<f64> = handles
        .iter()
        .map(|h| {
            common::metric(
                &h.metrics.render(),
                "ghosthunt_windows_closed_total{hunt=\"spray_across_hosts\"}",
            )
            .unwrap_or(0.0)
        })
        .collect();
    assert!(
        evaluated.iter().filter(|n| **n > 0.0).count() >= 2,
        "the windows are evaluated on more than one instance: {evaluated:?}"
    );

    let (local, _) = three_instances(
        &broker,
        dir.path(),
        ("local", "events-local", "alerts-local"),
        ScaleMode::Local,
        &lines,
        // Every event is acknowledged by now, the closing events with them.
        (expected.len(), Duration::from_secs(10)),
    )
    .await;
    assert!(
        !expected.is_subset(&local),
        "without repartition, three instances keyed by host miss cross-host groups (found {local:?})"
    );
}

/// One instance of the `ghosthunt` binary in group `kill`, scaled out, logging to `dir/instance-N.log`.
fn spawn_instance(broker: &Broker, dir: &Path, n: usize) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_ghosthunt"))
        .arg("run")
        .env_remove("RUST_LOG")
        .env("GHOSTHUNT__SOURCE__KIND", "kafka")
        .env("GHOSTHUNT__SOURCE__KAFKA__TOPICS", "events-kill")
        .env("GHOSTHUNT__SOURCE__KAFKA__GROUP_ID", "kill")
        // Commits lag the alerts by up to 2 s: a kill leaves sent but uncommitted rows behind.
        .env("GHOSTHUNT__SOURCE__KAFKA__COMMIT_INTERVAL", "2s")
        // A killed member leaves the groups when its session times out: keep that short.
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
        .env("GHOSTHUNT__HUNTS__BUILTIN", "false")
        .env("GHOSTHUNT__HUNTS__DIRECTORIES", dir)
        // Longer than a rebalance (tansu holds a join about half the session timeout): a source
        // partition paused by one does not go idle and let the watermark pass rows still to come.
        .env("GHOSTHUNT__WINDOW__IDLE_TIMEOUT", "10s")
        .env("GHOSTHUNT__WINDOW__ALLOWED_LATENESS", "0s")
        .env("GHOSTHUNT__SCALE__MODE", "repartition")
        .env("GHOSTHUNT__SCALE__TOPIC", "kill-repartition")
        .env("GHOSTHUNT__SCALE__PARTITIONS", "6")
        .env("GHOSTHUNT__ALERTS__SINK", "kafka")
        .env("GHOSTHUNT__ALERTS__TOPIC", "alerts-kill")
        .env("GHOSTHUNT__DEAD_LETTERS__SINK", "file")
        .env(
            "GHOSTHUNT__DEAD_LETTERS__PATH",
            dir.join(format!("dead-{n}.jsonl")),
        )
        .env("GHOSTHUNT__DECODE__BATCH_SIZE", "100")
        .env("GHOSTHUNT__METRICS__LISTEN", "")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("instance-{n}.log"))).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_and_one_added_mid_stream_lose_no_alert_and_add_none() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    hunt_files(dir.path());
    // Six rounds of the patterns, 25 minutes of event time each.
    let lines: Vec<String> = (0..6).flat_map(|r| events_from(r * 25)).collect();
    let reference = reference(&lines, dir.path()).await;
    let expected: BTreeSet<String> = reference.keys().cloned().collect();
    assert_eq!(expected.len(), 24, "four alerts per round");
    broker.create_topic("events-kill", 3).await;
    broker.create_topic("alerts-kill", 1).await;

    let mut instances: Vec<std::process::Child> = (0..3)
        .map(|n| spawn_instance(&broker, dir.path(), n))
        .collect();
    // Events flow for about 24 s; the second instance is killed (SIGKILL) after 8 s, a fourth
    // joins after 14 s.
    let keyed = common::kafka::keyed_by_host(&lines);
    let started = std::time::Instant::now();
    let chunks = keyed.chunks(keyed.len() / 48 + 1).collect::<Vec<_>>();
    let (mut killed, mut added) = (false, false);
    for chunk in chunks {
        broker.produce("events-kill", chunk).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !killed && started.elapsed() > Duration::from_secs(8) {
            instances[1].kill().unwrap();
            instances[1].wait().unwrap();
            killed = true;
        }
        if !added && started.elapsed() > Duration::from_secs(14) {
            instances.push(spawn_instance(&broker, dir.path(), 3));
            added = true;
        }
    }
    assert!(
        killed && added,
        "the stream ended before the kill and the join"
    );
    // Until every expected alert is there (duplicates make counting records meaningless), then a
    // little longer for any late extra.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        let records = broker
            .consume_all_async("alerts-kill", usize::MAX, Duration::from_secs(3))
            .await;
        if expected.is_subset(&alert_ids(&records)) || std::time::Instant::now() > deadline {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let records = broker
        .consume_all_async("alerts-kill", usize::MAX, Duration::from_secs(3))
        .await;
    for mut i in instances {
        let _ = i.kill();
        let _ = i.wait();
    }
    let got = alert_ids(&records);
    let logs: String = (0..4)
        .map(|n| {
            std::fs::read_to_string(dir.path().join(format!("instance-{n}.log")))
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n----\n");
    let dead: String = (0..4)
        .map(|n| {
            std::fs::read_to_string(dir.path().join(format!("dead-{n}.jsonl"))).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("");
    let dead_reasons: BTreeMap<String, usize> = dead.lines().fold(BTreeMap::new(), |mut m, l| {
        let v: Value = serde_json::from_str(l).unwrap();
        *m.entry(format!("{} {}", v["reason"], v["detail"]))
            .or_default() += 1;
        m
    });
    let missing: Vec<&String> = expected.difference(&got).map(|id| &reference[id]).collect();
    let extra: Vec<&String> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} alerts ({} distinct); missing {missing:?}, not in the reference {extra:?}\ndead letters: {dead_reasons:?}\n{}",
        records.len(),
        got.len(),
        &logs[logs.len().saturating_sub(3000)..]
    );
    eprintln!(
        "kill test: {} alert records, {} distinct, {} expected",
        records.len(),
        got.len(),
        expected.len()
    );
}
