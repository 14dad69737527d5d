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
    let sigma = dir.join("sigma");
    std::fs::create_dir_all(&sigma).unwrap();
    std::fs::write(sigma.join("failed_network_logon.yml"), FAILED_NETWORK_LOGON).unwrap();
    std::fs::write(
        sigma.join("address_fails_on_many_hosts.yml"),
        FAILS_ON_MANY_HOSTS,
    )
    .unwrap();
}

const FAILED_NETWORK_LOGON: &str = r#"
title: Failed network logon
name: failed_network_logon
id: 5b0e6a0c-0000-4000-8000-00000000ab01
status: test
level: low
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4625
        LogonType: 3
    condition: selection
"#;

/// A Sigma correlation across hosts: one address failing logons on five hosts or more within 5 minutes.
const FAILS_ON_MANY_HOSTS: &str = r#"
title: One address fails logons on many hosts
id: 5b0e6a0c-0000-4000-8000-00000000ab02
status: test
level: high
correlation:
    type: value_count
    rules: [failed_network_logon]
    group-by: [IpAddress]
    timespan: 5m
    condition:
        gte: 5
        field: Computer
"#;

/// The id of the Sigma correlation's hunt.
const CORRELATION: &str = "5b0e6a0c-0000-4000-8000-00000000ab02";

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
    s.sigma.directories = vec![dir.join("sigma")];
    s
}

/// The alerts one pipeline gives the events read from a file (the reference): id → hunt, window, row.
async fn reference(lines: &[String], dir: &Path) -> BTreeMap<String, String> {
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let settings = settings(dir);
    let setup = app::sigma(
        &settings,
        std::sync::Arc::new(ghosthunt::decode::EventSchema::windows()),
    )
    .unwrap();
    assert!(setup.refusals.is_empty(), "{:?}", setup.refusals);
    let (hunts, errors) = app::hunts(&settings, &setup.schema).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(hunts.len(), 2);
    let source = FileSource::new(
        FileSettings {
            paths: vec![path.display().to_string()],
            follow: false,
            poll_interval: Duration::from_millis(50),
            max_open: 64,
        },
        settings.decode.max_record_bytes,
        settings.window.max_lead,
    )
    .unwrap();
    let run = common::run_pipeline_with(
        settings,
        hunts,
        Some((setup.schema, setup.engine.unwrap())),
        Box::new(source),
        CancellationToken::new(),
    )
    .await;
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

/// Polls `state` every 250 ms until it is `done` and has not changed for `steady_for`; `Err` with the
/// last state when `within` passes first.
async fn steady<S: PartialEq + Clone>(
    state: impl Fn() -> S,
    done: impl Fn(&S) -> bool,
    steady_for: Duration,
    within: Duration,
) -> Result<(), S> {
    let deadline = std::time::Instant::now() + within;
    let (mut last, mut since) = (state(), std::time::Instant::now());
    loop {
        let now = state();
        if now != last {
            (last, since) = (now.clone(), std::time::Instant::now());
        } else if done(&now) && since.elapsed() > steady_for {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(now);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Instances of the pipeline in one process.
struct Instances {
    handles: Vec<Handles>,
    tasks: Vec<
        tokio::task::JoinHandle<Result<ghosthunt::pipeline::Summary, ghosthunt::app::AppError>>,
    >,
    /// Each instance's own shutdown, children of `shutdown`.
    stops: Vec<CancellationToken>,
    shutdown: CancellationToken,
    mode: ScaleMode,
    /// The repartition topic, for the ownership checks.
    repartition: String,
}

impl Instances {
    /// Starts `n` instances of `mode` in group `group` reading `events`, alerting to `alerts`, and waits
    /// until the groups settled: no rebalance for 8 s after every consumer had one and, scaled out,
    /// each instance owns some of the repartition topic's partitions (the consumer lag each exports
    /// names them; the events topic, empty so far, has no lag to export yet).
    async fn start(
        broker: &Broker,
        dir: &Path,
        (group, events, alerts): (&str, &str, &str),
        mode: ScaleMode,
        (n, idle_timeout): (usize, Duration),
        lake: Option<&Path>,
    ) -> Instances {
        common::init_logs();
        let shutdown = CancellationToken::new();
        // Instances started here stop if this panics (their sources' polling threads would keep the
        // runtime, and the test, from ending).
        let guard = shutdown.clone().drop_guard();
        let handles: Vec<Handles> = (0..n).map(|_| Handles::default()).collect();
        let (mut tasks, mut stops) = (Vec::new(), Vec::new());
        let repartition = format!("{group}-repartition-topic");
        let per_instance = match mode {
            ScaleMode::Repartition => 2.0,
            ScaleMode::Local => 1.0,
        };
        for (i, h) in handles.iter().enumerate() {
            // One instance joins at a time, once the one before has its partitions: tansu 0.6 (the test
            // broker) left a third member of a group joining at the same moment as two others without
            // an assignment for the 120 s the groups are given to settle (2 of 5 CI runs of 2026-12-08).
            if i > 0 {
                let before = &handles[i - 1..i];
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                while metric_sum(before, "ghosthunt_kafka_rebalances_total") < per_instance
                    && std::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let mut s = common::kafka::pipeline_settings(&broker.bootstrap, group);
            s.kafka.options = vec![("broker.address.family".into(), "v4".into())];
            (s.hunts, s.sigma) = (settings(dir).hunts, settings(dir).sigma);
            s.window.idle_timeout = idle_timeout;
            s.alerts = OutputSettings::Kafka {
                topic: alerts.into(),
            };
            if let ghosthunt::settings::SourceSettings::Kafka(k) = &mut s.source {
                k.topics = vec![events.into()];
            }
            s.scale.mode = mode;
            s.scale.topic = repartition.clone();
            s.scale.partitions = 6;
            if let Some(lake) = lake {
                s.lake.path = lake.display().to_string();
            }
            stops.push(shutdown.child_token());
            tasks.push(tokio::spawn(app::run(
                s,
                h.clone(),
                stops[stops.len() - 1].clone(),
            )));
        }
        let consumers = per_instance * n as f64;
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
        if let Err(now) = steady(
            state,
            settled,
            Duration::from_secs(8),
            Duration::from_secs(120),
        )
        .await
        {
            panic!("the groups did not settle: {now:?}");
        }
        guard.disarm();
        Instances {
            handles,
            tasks,
            stops,
            shutdown,
            mode,
            repartition,
        }
    }

    /// Stops the instances one at a time, as a rolling restart does: each once the ones left had
    /// their rebalance (every consumer of theirs revoked and assigned again) and own every partition
    /// of the repartition topic.
    ///
    /// Not all at once: tansu 0.6 (the test broker) loses a group whose leader leaves while the group
    /// is rebalancing after another member left — the group keeps the departed leader and no later
    /// member is ever assigned anything (its coordinator log shows `Forming { leader:
    /// Some(<departed>) }` with no members). Apache Kafka elects a new leader among the members that
    /// rejoin; a member leaving a group that is not rebalancing is handled right by both.
    async fn stop_in_turn(mut self) -> Vec<Handles> {
        let tasks = std::mem::take(&mut self.tasks);
        let n = tasks.len();
        for (i, task) in tasks.into_iter().enumerate() {
            let left = &self.handles[i + 1..];
            let rebalances = metric_sum(left, "ghosthunt_kafka_rebalances_total");
            self.stops[i].cancel();
            task.await.unwrap().unwrap();
            if left.is_empty() {
                break;
            }
            let state = || {
                let owned: BTreeSet<String> = left
                    .iter()
                    .flat_map(|h| owned_partitions(h, &self.repartition))
                    .collect();
                (metric_sum(left, "ghosthunt_kafka_rebalances_total"), owned)
            };
            // Each consumer (events; scaled out, repartition too) revoked, then assigned.
            let scaled = self.mode == ScaleMode::Repartition;
            let consumers = if scaled { 2.0 } else { 1.0 } * left.len() as f64;
            let done = |(r, owned): &(f64, BTreeSet<String>)| {
                *r >= rebalances + 2.0 * consumers && (!scaled || owned.len() == 6)
            };
            if let Err(now) =
                steady(state, done, Duration::from_secs(3), Duration::from_secs(90)).await
            {
                panic!("instance {i} of {n} stopped; the others did not take over: {now:?}");
            }
        }
        std::mem::take(&mut self.handles)
    }

    async fn stop(mut self) -> Vec<Handles> {
        self.shutdown.cancel();
        for t in std::mem::take(&mut self.tasks) {
            t.await.unwrap().unwrap();
        }
        std::mem::take(&mut self.handles)
    }
}

impl Drop for Instances {
    /// A test that fails with instances running stops them (their sources' polling threads would keep
    /// the runtime, and the test, from ending).
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
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
    lake: Option<&Path>,
) -> (BTreeSet<String>, Vec<Handles>) {
    broker.create_topic(events, 3).await;
    broker.create_topic(alerts, 1).await;
    // Inputs never go idle in this test (an input idle when the events start would let the watermark
    // pass its rows before its reader gets them): windows close by event time, on the closing events.
    let instances = Instances::start(
        broker,
        dir,
        (group, events, alerts),
        mode,
        (3, Duration::from_secs(120)),
        lake,
    )
    .await;
    let keyed = common::kafka::keyed_by_host(lines);
    broker.produce(events, &keyed).await;
    let n = lines.len() as f64;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while metric_sum(&instances.handles, "ghosthunt_acknowledged_events_total") < n {
        assert!(
            std::time::Instant::now() < deadline,
            "not every event was acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let records = broker.consume_all_async(alerts, expect, wait).await;
    let handles = instances.stop().await;
    (alert_ids(&records), handles)
}

/// The rows `sql` selects from the lake at `path`.
async fn lake_query(path: &Path, sql: &str) -> Vec<Value> {
    let mut s = common::test_settings();
    s.lake.path = path.display().to_string();
    common::lake_rows(&s, sql).await
}

/// The alerts' message keys (hunt id and entity).
fn alert_keys(records: &[common::kafka::ConsumedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).to_string())
        .collect()
}

/// The sum of every series of a metric family over the instances.
fn family_sum(handles: &[Handles], family: &str) -> f64 {
    handles
        .iter()
        .flat_map(|h| {
            h.metrics
                .render()
                .lines()
                .filter(|l| {
                    l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} "))
                })
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_partition_behind_holds_windows_back_and_an_idle_one_stops_holding_after_idle_timeout()
 {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    hunt_files(dir.path());
    let (events, alerts) = ("events-wm", "alerts-wm");
    broker.create_topic(events, 2).await;
    broker.create_topic(alerts, 1).await;
    let idle = Duration::from_secs(12);
    let instances = Instances::start(
        &broker,
        dir.path(),
        ("wm", events, alerts),
        ScaleMode::Repartition,
        (2, idle),
        None,
    )
    .await;
    let benign = |minute: u32, host: usize| logon(minute, 0, 4634, host, "-", "-");
    let spray = |minute: u32, ip: &str| -> Vec<String> {
        (0..7)
            .map(|h| logon(minute, 10 + h as u32, 4625, h, ip, "administrator"))
            .collect()
    };
    // Both source partitions start at 10:00 (and every repartition partition hears of both: reports
    // of different readers are not ordered, and a partition reported idle holds nothing back); then
    // partition 1 runs ahead to 10:30 while partition 0, behind, is still at 10:00: a spray at 10:02 on
    // partition 0 is not late for the repartitioned windows, which wait for the partition behind.
    broker.produce_at(events, 0, &[benign(0, 0)]).await;
    broker.produce_at(events, 1, &[benign(0, 1)]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ahead: Vec<String> = (20..=30).map(|m| benign(m, 1)).collect();
    broker.produce_at(events, 1, &ahead).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut behind = spray(2, "203.0.113.7");
    behind.push(benign(31, 0));
    broker.produce_at(events, 0, &behind).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let records = broker
            .consume_all_async(alerts, usize::MAX, Duration::from_secs(2))
            .await;
        if alert_ids(&records).len() >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the spray behind was not found (SQL window and Sigma correlation): {:?}; late rows {}, dead letters {}, repartitioned {}",
            alert_keys(&records),
            family_sum(&instances.handles, "ghosthunt_late_records_total"),
            family_sum(&instances.handles, "ghosthunt_dead_letters_total"),
            family_sum(&instances.handles, "ghosthunt_repartition_rows_total"),
        );
    }
    assert_eq!(
        family_sum(&instances.handles, "ghosthunt_late_records_total"),
        0.0,
        "nothing of the partition behind was late"
    );

    // Partition 1 falls silent at 10:31:30; partition 0 goes on to 10:50 with a spray at 10:40. Its
    // window [10:40, 10:45) waits for partition 1 until that one is idle (`idle_timeout` after its
    // last record), then closes on partition 0's time alone.
    broker
        .produce_at(events, 1, &[logon(31, 30, 4634, 1, "-", "-")])
        .await;
    let silent = std::time::Instant::now();
    // Every repartition partition hears of partition 1 active again before partition 0 moves on.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut later = spray(40, "198.51.100.23");
    later.push(benign(50, 0));
    broker.produce_at(events, 0, &later).await;
    let before = alert_ids(
        &broker
            .consume_all_async(alerts, usize::MAX, Duration::from_secs(1))
            .await,
    );
    let (mut held, mut found) = (None, None);
    while found.is_none() && silent.elapsed() < idle + Duration::from_secs(40) {
        let records = broker
            .consume_all_async(alerts, usize::MAX, Duration::from_secs(1))
            .await;
        let now = alert_ids(&records);
        if now.len() > before.len() {
            found = Some(silent.elapsed());
        } else {
            held = Some(silent.elapsed());
        }
    }
    let found = found.expect("the idle partition stopped holding the window after idle_timeout");
    let held = held.unwrap_or_default();
    assert!(
        held >= idle - Duration::from_secs(4),
        "the window waited for partition 1 until it was idle (no alert yet after {held:?}, found after {found:?})"
    );
    let handles = instances.stop().await;
    assert_eq!(family_sum(&handles, "ghosthunt_late_records_total"), 0.0);
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
    let reference = reference(&lines, dir.path()).await;
    let expected: BTreeSet<String> = reference.keys().cloned().collect();
    // Two sprays (one window each), the roaming account (two hopping windows), and the Sigma
    // correlation once per spray.
    assert_eq!(
        expected.len(),
        6,
        "the reference run finds every planted pattern: {reference:#?}"
    );
    let correlated: BTreeSet<String> = reference
        .iter()
        .filter(|(_, what)| what.starts_with(CORRELATION))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(correlated.len(), 2, "{reference:#?}");
    // The three write one lake.
    let lake = dir.path().join("lake");
    let (scaled, handles) = three_instances(
        &broker,
        dir.path(),
        ("scaled", "events-scaled", "alerts-scaled"),
        ScaleMode::Repartition,
        &lines,
        (expected.len(), Duration::from_secs(60)),
        Some(&lake),
    )
    .await;
    assert_eq!(
        scaled, expected,
        "three repartitioned instances find what one finds"
    );
    let in_lake = lake_query(&lake, "SELECT DISTINCT id FROM alerts").await;
    let in_lake: BTreeSet<String> = in_lake
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        in_lake, expected,
        "the lake's alerts table holds the alerts of either side of every instance"
    );
    let stored = lake_query(&lake, "SELECT count(*) AS n FROM events").await;
    assert_eq!(
        stored[0]["n"],
        lines.len(),
        "each event once in the lake, whichever instance read it"
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
    let matches = metric_sum(
        &handles,
        &format!("ghosthunt_repartition_rows_total{{hunt=\"{CORRELATION}\"}}"),
    );
    assert_eq!(
        matches, failures as f64,
        "each failed network logon sent once to the correlation's key"
    );
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
        None,
    )
    .await;
    assert!(
        !expected.is_subset(&local),
        "without repartition, three instances keyed by host miss cross-host groups (found {local:?})"
    );
    assert!(
        !correlated.is_subset(&local),
        "without repartition, the Sigma correlation across hosts is missed too (found {local:?})"
    );
}

/// Stops the instances (as SIGTERM does, one after the other) in the middle of a window and of a
/// correlation's burst, starts them again, and sends the rest: the alerts are those one
/// uninterrupted instance finds.
async fn restart_mid_window(broker: &Broker, dir: &Path, mode: ScaleMode, n: usize) {
    let name = format!(
        "restart-{}",
        if mode == ScaleMode::Local {
            "local"
        } else {
            "scaled"
        }
    );
    let (events, alerts) = (format!("{name}-events"), format!("{name}-alerts"));
    broker.create_topic(&events, 3).await;
    broker.create_topic(&alerts, 1).await;
    let spray = |hosts: std::ops::Range<usize>| -> Vec<String> {
        hosts
            .map(|h| {
                logon(
                    2 + h as u32 / 4,
                    10 + h as u32,
                    4625,
                    h,
                    "203.0.113.7",
                    "administrator",
                )
            })
            .collect()
    };
    let mut before = closing_events(0);
    before.extend(spray(0..3));
    let mut after = spray(3..7);
    after.extend(closing_events(31));
    let all: Vec<String> = before.iter().chain(&after).cloned().collect();
    let expected: BTreeSet<String> = reference(&all, dir).await.into_keys().collect();
    assert_eq!(
        expected.len(),
        2,
        "the spray's window and the Sigma correlation"
    );

    let names = (name.as_str(), events.as_str(), alerts.as_str());
    let idle = Duration::from_secs(120);
    let first = Instances::start(broker, dir, names, mode, (n, idle), None).await;
    broker
        .produce(&events, &common::kafka::keyed_by_host(&before))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Every event read and the spray's first three rows held in its open window.
    while metric_sum(&first.handles, "ghosthunt_events_received_total") < before.len() as f64
        || metric_sum(
            &first.handles,
            "ghosthunt_window_rows{hunt=\"spray_across_hosts\"}",
        ) < 3.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first half was not read"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.stop_in_turn().await;
    let second = Instances::start(broker, dir, names, mode, (n, idle), None).await;
    broker
        .produce(&events, &common::kafka::keyed_by_host(&after))
        .await;
    let mut got = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !expected.is_subset(&got) && std::time::Instant::now() < deadline {
        let records = broker
            .consume_all_async(&alerts, usize::MAX, Duration::from_secs(2))
            .await;
        got = alert_ids(&records);
    }
    second.stop().await;
    assert_eq!(
        got, expected,
        "{mode:?}: the window and the burst open at the restart are judged on all their rows, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_open_at_a_graceful_restart_is_evaluated_after_it_on_all_its_rows() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    hunt_files(dir.path());
    restart_mid_window(&broker, dir.path(), ScaleMode::Local, 1).await;
    restart_mid_window(&broker, dir.path(), ScaleMode::Repartition, 2).await;
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
        .env("GHOSTHUNT__SIGMA__DIRECTORIES", dir.join("sigma"))
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
async fn instances_killed_stopped_and_added_mid_stream_lose_no_alert_and_add_none() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    hunt_files(dir.path());
    // Six rounds of the patterns, 25 minutes of event time each.
    let lines: Vec<String> = (0..6).flat_map(|r| events_from(r * 25)).collect();
    let reference = reference(&lines, dir.path()).await;
    let expected: BTreeSet<String> = reference.keys().cloned().collect();
    assert_eq!(
        expected.len(),
        36,
        "four SQL alerts and two Sigma correlation alerts per round"
    );
    broker.create_topic("events-kill", 3).await;
    broker.create_topic("alerts-kill", 1).await;

    let mut instances: Vec<std::process::Child> = (0..3)
        .map(|n| spawn_instance(&broker, dir.path(), n))
        .collect();
    // Events flow for about 24 s; the second instance is killed (SIGKILL) after 8 s, a fourth
    // joins after 14 s, and the first is stopped (SIGTERM: it leaves its open windows to the
    // partitions' next owners) after 18 s, once the fourth has its partitions: tansu (the test
    // broker) loses a group whose leader leaves it while it rebalances (see `stop_in_turn`).
    let joined = |n: usize| {
        let log = std::fs::read_to_string(dir.path().join(format!("instance-{n}.log")))
            .unwrap_or_default();
        ["group=kill ", "group=kill-repartition "].iter().all(|g| {
            log.lines()
                .any(|l| l.contains("Partitions assigned.") && l.contains(g))
        })
    };
    let keyed = common::kafka::keyed_by_host(&lines);
    let started = std::time::Instant::now();
    let chunks = keyed.chunks(keyed.len() / 48 + 1).collect::<Vec<_>>();
    let (mut killed, mut added, mut stopped) = (false, false, false);
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
        if !stopped && started.elapsed() > Duration::from_secs(18) && joined(3) {
            let status = std::process::Command::new("kill")
                .args(["-TERM", &instances[0].id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            stopped = true;
        }
    }
    assert!(
        killed && added && stopped,
        "the stream ended before the kill, the join and the stop"
    );
    let exit = tokio::task::spawn_blocking({
        let mut first = instances.remove(0);
        move || first.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(exit.success(), "a stopped instance exits cleanly: {exit:?}");
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
    // No instance failed on its own (a debug build's checks, such as the repartition decoder's record
    // order, panic): the alerts being complete would hide it, the others having taken its partitions.
    assert!(
        !logs.contains("panicked at"),
        "an instance panicked:\n{}",
        logs.lines()
            .skip_while(|l| !l.contains("panicked at"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let missing: Vec<&String> = expected.difference(&got).map(|id| &reference[id]).collect();
    // An alert not in the reference, as delivered (its hunt, window and row say which evaluation
    // differed from one instance's).
    let extra: Vec<String> = got
        .difference(&expected)
        .filter_map(|id| {
            let record = records
                .iter()
                .find(|r| alert_ids(std::slice::from_ref(*r)).contains(id))?;
            let alert: Value = serde_json::from_slice(&record.value).ok()?;
            Some(format!(
                "{id}: {} {} {}",
                alert["finding_info"]["analytic"]["uid"],
                alert["unmapped"],
                alert["evidences"]
                    .to_string()
                    .chars()
                    .take(600)
                    .collect::<String>()
            ))
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} alerts ({} distinct); missing {missing:?}, not in the reference {extra:#?}\ndead letters: {dead_reasons:?}\n{}",
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
