//! Kafka in and out against a real Kafka-protocol broker (tansu, started by the tests): end to end with
//! deterministic alert ids, poison messages to the dead-letter topic, a broker that is not there yet, two
//! instances sharing a group (and each exporting the lag of its own partitions only), and `kill -9` crash
//! safety.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::kafka::{Broker, ConsumedRecord};
use ghosthunt::app::{self, Handles};
use ghosthunt::settings::{FileSettings, OutputSettings, Settings, SourceSettings};
use ghosthunt::source::FileSource;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const EVENTS: &str = "events";
const ALERTS: &str = "alerts";
const DEAD: &str = "dead-letters";
const INCIDENTS: &str = "incidents";

/// An lsass access by a dumping tool on host `WS-{i}`: one `lsass_memory_access` alert each.
fn lsass_event(i: usize) -> String {
    let (m, s) = (i / 60 % 60, i % 60);
    format!(
        r#"{{"@timestamp":"2024-05-01T10:{m:02}:{s:02}.{ms:03}Z","EventID":10,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WS-{i:04}","SourceImage":"C:\\Users\\u{i}\\AppData\\Local\\Temp\\procdump64.exe","TargetImage":"C:\\Windows\\system32\\lsass.exe","GrantedAccess":"0x1fffff","CallTrace":"C:\\Windows\\SYSTEM32\\ntdll.dll+9d1e4|C:\\Windows\\System32\\dbgcore.dll+1a2b"}}"#,
        ms = i % 1000
    )
}

/// The alert ids the pipeline gives these events when it reads them from a file (the reference).
async fn expected_ids(lines: &[String]) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let settings = common::test_settings();
    let hunts = app::hunts(&settings, &ghosthunt::decode::EventSchema::windows())
        .await
        .0;
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
    let run =
        common::run_pipeline(settings, hunts, Box::new(source), CancellationToken::new()).await;
    run.alerts.iter().map(|a| a.id.clone()).collect()
}

/// Pipeline settings for Kafka in and out on this broker.
fn kafka_settings(broker: &Broker, group: &str) -> Settings {
    let mut s = common::kafka::pipeline_settings(&broker.bootstrap, group);
    s.kafka.options = vec![("broker.address.family".into(), "v4".into())];
    s.window.idle_timeout = Duration::from_secs(2);
    s
}

fn alert_ids(records: &[ConsumedRecord]) -> Vec<String> {
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

fn header<'a>(r: &'a ConsumedRecord, name: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

async fn topics(broker: &Broker) {
    broker.create_topic(EVENTS, 3).await;
    broker.create_topic(ALERTS, 1).await;
    broker.create_topic(DEAD, 1).await;
    broker.create_topic(INCIDENTS, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_kafka_become_exactly_the_expected_alerts_on_the_alerts_topic() {
    let Some(broker) = Broker::start() else {
        return;
    };
    topics(&broker).await;
    let mut lines: Vec<String> = (0..300).map(lsass_event).collect();
    for fixture in [
        "encoded_powershell",
        "office_spawns_shell",
        "suspicious_service_install",
    ] {
        let text = std::fs::read_to_string(
            common::repo()
                .join("sql/tests")
                .join(fixture)
                .join("events.jsonl"),
        )
        .unwrap();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    let expected = expected_ids(&lines).await;
    assert!(expected.len() > 300);
    broker
        .produce(EVENTS, &common::kafka::keyed_by_host(&lines))
        .await;

    let shutdown = CancellationToken::new();
    let mut settings = kafka_settings(&broker, "e2e");
    settings.incidents.output = OutputSettings::Kafka {
        topic: INCIDENTS.into(),
    };
    let task = tokio::spawn(app::run(settings, Handles::default(), shutdown.clone()));
    let records = tokio::task::spawn_blocking({
        let b = broker.bootstrap.clone();
        let n = expected.len();
        move || common::kafka::consume_all(&b, ALERTS, n, Duration::from_secs(60))
    })
    .await
    .unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();
    // The same LSASS dumper on 300 hosts within minutes: an outbreak incident, to its own topic, keyed by
    // rule and entity.
    let incidents = tokio::task::spawn_blocking({
        let b = broker.bootstrap.clone();
        // Everything the topic holds: the run has ended, so what is there within seconds is all.
        move || common::kafka::consume_all(&b, INCIDENTS, usize::MAX, Duration::from_secs(10))
    })
    .await
    .unwrap();
    let outbreak = incidents
        .iter()
        .find(|r| r.key.as_deref() == Some(b"technique_outbreak|T1003.001".as_slice()))
        .unwrap_or_else(|| panic!("an outbreak incident among {} records", incidents.len()));
    let outbreak: Value = serde_json::from_slice(&outbreak.value).unwrap();
    assert_eq!(outbreak["class_uid"], 2005);
    assert!(
        outbreak["unmapped"]["result"]["hosts"].as_u64() >= Some(300),
        "{outbreak:#}"
    );

    let got: BTreeSet<String> = alert_ids(&records).into_iter().collect();
    assert_eq!(
        got, expected,
        "alert ids over Kafka equal those of the same events read from a file"
    );
    assert_eq!(
        records.len(),
        expected.len(),
        "no duplicates without a crash"
    );
    for r in &records {
        let alert: Value = serde_json::from_slice(&r.value).unwrap();
        let hunt = alert["finding_info"]["analytic"]["uid"].as_str().unwrap();
        assert_eq!(header(r, "hunt_id"), Some(hunt.as_bytes()));
        assert!(header(r, "severity").is_some());
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        assert!(key.starts_with(hunt), "key {key} starts with the hunt id");
    }
    // Everything read was acknowledged and committed: a restart reads nothing again.
    let committed = broker.committed_offsets("e2e", EVENTS, 3);
    assert_eq!(
        committed.iter().sum::<i64>(),
        lines.len() as i64,
        "{committed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_topic_and_good_events_still_alert() {
    let Some(broker) = Broker::start() else {
        return;
    };
    topics(&broker).await;
    let mut records = common::kafka::keyed_by_host(&(0..20).map(lsass_event).collect::<Vec<_>>());
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{\"EventID\": 10, ".to_vec()),
        (
            "wrong_type",
            br#"{"@timestamp":"2024-05-01T10:00:00Z","EventID":"ten"}"#.to_vec(),
        ),
        (
            "invalid_utf8",
            b"{\"@timestamp\":\"2024-05-01T10:00:00Z\",\"Image\":\"\xc3\x28\"}".to_vec(),
        ),
        (
            "oversized",
            format!(
                "{{\"@timestamp\":\"2024-05-01T10:00:00Z\",\"CommandLine\":\"{}\"}}",
                "A".repeat(10_000)
            )
            .into_bytes(),
        ),
    ];
    for (i, (_, bytes)) in poison.iter().enumerate() {
        records.insert(i * 5 + 2, (Some(format!("WS-{:04}", i * 5)), bytes.clone()));
    }
    broker.produce(EVENTS, &records).await;
    let mut settings = kafka_settings(&broker, "poison");
    settings.decode.max_record_bytes = 4096;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app::run(settings, Handles::default(), shutdown.clone()));
    let b = broker.bootstrap.clone();
    let (alerts, dead) = tokio::task::spawn_blocking(move || {
        (
            common::kafka::consume_all(&b, ALERTS, 20, Duration::from_secs(60)),
            common::kafka::consume_all(&b, DEAD, 4, Duration::from_secs(30)),
        )
    })
    .await
    .unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(alerts.len(), 20, "every good event alerted");
    let reasons: BTreeMap<String, &ConsumedRecord> = dead
        .iter()
        .map(|r| {
            (
                String::from_utf8(header(r, "reason").unwrap().to_vec()).unwrap(),
                r,
            )
        })
        .collect();
    assert_eq!(
        reasons.keys().cloned().collect::<Vec<_>>(),
        vec!["invalid_json", "invalid_utf8", "oversized", "wrong_type"]
    );
    for (reason, original) in &poison {
        let r = reasons[*reason];
        assert_eq!(header(r, "source_topic"), Some(EVENTS.as_bytes()));
        assert!(
            header(r, "source_partition").is_some()
                && header(r, "source_offset").is_some()
                && header(r, "timestamp").is_some()
                && header(r, "dead_lettered_at").is_some()
        );
        if *reason != "oversized" {
            assert_eq!(&r.value, original, "{reason}: the original bytes");
        }
    }
}

/// Two instances in group `group`, with `options` for their consumers, read 600 events between them;
/// every expected alert comes out, and both read.
async fn two_instances_share(group: &str, options: &[(&str, &str)]) {
    let Some(broker) = Broker::start() else {
        return;
    };
    topics(&broker).await;
    let lines: Vec<String> = (0..600).map(lsass_event).collect();
    let expected = expected_ids(&lines).await;
    broker
        .produce(EVENTS, &common::kafka::keyed_by_host(&lines))
        .await;
    let shutdown = CancellationToken::new();
    let (one, two) = (Handles::default(), Handles::default());
    let settings = || {
        let mut s = kafka_settings(&broker, group);
        if let SourceSettings::Kafka(k) = &mut s.source {
            k.options
                .extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        }
        s
    };
    let a = tokio::spawn(app::run(settings(), one.clone(), shutdown.clone()));
    let b = tokio::spawn(app::run(settings(), two.clone(), shutdown.clone()));
    let bootstrap = broker.bootstrap.clone();
    let n = expected.len();
    let records = tokio::task::spawn_blocking(move || {
        common::kafka::consume_all(&bootstrap, ALERTS, n, Duration::from_secs(90))
    })
    .await
    .unwrap();
    shutdown.cancel();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    let got: BTreeSet<String> = alert_ids(&records).into_iter().collect();
    assert_eq!(got, expected);
    let read = |h: &Handles| {
        common::metric(&h.metrics.render(), "ghosthunt_events_received_total").unwrap_or(0.0)
    };
    assert!(
        read(&one) > 0.0 && read(&two) > 0.0,
        "both instances read: {} and {}",
        read(&one),
        read(&two)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_group_share_the_partitions_and_produce_every_alert() {
    two_instances_share("pair", &[]).await;
}

/// The cooperative protocol: partitions assigned and revoked incrementally (the rebalance callback
/// takes the protocol from this setting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_partitions_with_the_cooperative_rebalance_protocol() {
    two_instances_share(
        "pair-cooperative",
        &[("partition.assignment.strategy", "cooperative-sticky")],
    )
    .await;
}

/// The partitions of `EVENTS` an instance exports consumer lag for.
fn lag_partitions(h: &Handles) -> BTreeSet<String> {
    let prefix = "ghosthunt_kafka_consumer_lag{partition=\"";
    h.metrics
        .render()
        .lines()
        .filter(|l| l.contains(&format!("topic=\"{EVENTS}\"")))
        .filter_map(|l| l.strip_prefix(prefix)?.split('"').next().map(String::from))
        .collect()
}

/// Waits (up to `secs`) until `done` holds.
async fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !done() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done()
}

/// Regression (issue #5, found building the dashboard's lag-by-partition panel): after a rebalance an
/// instance went on exporting the lag of the partitions it had handed over, so a sum over the group
/// counted them twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_is_exported_only_by_the_instance_that_owns_the_partition() {
    let Some(broker) = Broker::start() else {
        return;
    };
    topics(&broker).await;
    let lines: Vec<String> = (0..300).map(lsass_event).collect();
    broker
        .produce(EVENTS, &common::kafka::keyed_by_host(&lines))
        .await;
    let all: BTreeSet<String> = ["0", "1", "2"].map(String::from).into();
    let shutdown = CancellationToken::new();
    let (one, two) = (Handles::default(), Handles::default());
    let a = tokio::spawn(app::run(
        kafka_settings(&broker, "lag"),
        one.clone(),
        shutdown.clone(),
    ));
    // Alone, it owns every partition; lag shows after its first commit and the next statistics (5 s).
    assert!(
        wait_until(40, || lag_partitions(&one) == all).await,
        "one instance: lag for {:?}",
        lag_partitions(&one)
    );
    let b = tokio::spawn(app::run(
        kafka_settings(&broker, "lag"),
        two.clone(),
        shutdown.clone(),
    ));
    let split = || {
        let (x, y) = (lag_partitions(&one), lag_partitions(&two));
        !x.is_empty() && !y.is_empty() && x.is_disjoint(&y) && x.union(&y).eq(all.iter())
    };
    let shared = wait_until(60, split).await;
    let (x, y) = (lag_partitions(&one), lag_partitions(&two));
    shutdown.cancel();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert!(shared, "after the rebalance: lag for {x:?} and {y:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_waits_for_a_broker_that_is_not_there_yet() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    broker.stop();
    let handles = Handles::default();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app::run(
        kafka_settings(&broker, "late-broker"),
        handles.clone(),
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (healthy, status) = handles.health.get();
    assert!(!healthy, "not healthy while the broker is away");
    assert!(status.contains("waiting for Kafka"), "{status}");
    assert!(!task.is_finished(), "the pipeline waits instead of exiting");

    broker.restart();
    topics(&broker).await;
    let lines: Vec<String> = (0..25).map(lsass_event).collect();
    broker
        .produce(EVENTS, &common::kafka::keyed_by_host(&lines))
        .await;
    let records = broker
        .consume_all_async(ALERTS, 25, Duration::from_secs(60))
        .await;
    assert_eq!(records.len(), 25);
    assert!(
        handles.health.get().0,
        "healthy once running: {:?}",
        handles.health.get()
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_writes_file_and_generated_events_keyed_by_host() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("produced", 3).await;
    broker.create_topic("generated", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let lines: Vec<String> = (0..40).map(|i| lsass_event(i % 4)).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let settings = kafka_settings(&broker, "unused");
    let options = |topic: &str, files: Vec<String>, limit: Option<u64>| {
        ghosthunt::cli::produce::ProduceOptions {
            topic: topic.into(),
            files,
            rate: Some(20_000),
            limit,
        }
    };
    let sent = ghosthunt::cli::produce::produce(
        &settings,
        &options("produced", vec![file.display().to_string()], None),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(sent, 40);
    let records = broker
        .consume_all_async("produced", 40, Duration::from_secs(30))
        .await;
    assert_eq!(records.len(), 40);
    let mut partition_of: BTreeMap<Vec<u8>, BTreeSet<i32>> = BTreeMap::new();
    for r in &records {
        partition_of
            .entry(r.key.clone().expect("keyed"))
            .or_default()
            .insert(r.partition);
    }
    assert_eq!(partition_of.len(), 4, "one key per host");
    assert!(
        partition_of.values().all(|p| p.len() == 1),
        "a host's events stay in one partition"
    );

    let sent = ghosthunt::cli::produce::produce(
        &settings,
        &options("generated", Vec::new(), Some(500)),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(sent, 500);
    let records = broker
        .consume_all_async("generated", 500, Duration::from_secs(30))
        .await;
    assert_eq!(records.len(), 500);
    assert!(records.iter().all(|r| {
        String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).ends_with(".corp.example")
    }));
}

/// The messages of `rx` until `done` says enough, or `secs` pass (then the test fails naming `what`).
async fn read_until(
    rx: &mut tokio::sync::mpsc::Receiver<ghosthunt::source::SourceMessage>,
    secs: u64,
    what: &str,
    mut done: impl FnMut(&ghosthunt::source::SourceMessage) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) if done(&m) => return,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the source ended before {what}"),
            Err(_) => panic!("no {what} within {secs} s"),
        }
    }
}

/// A Kafka source of `settings` running in this process, as the pipeline runs it (with `watermarks`:
/// as the repartition topic's reader), with what the pipeline holds of it.
struct Reader {
    acker: std::sync::Arc<dyn ghosthunt::source::Acknowledge>,
    rx: tokio::sync::mpsc::Receiver<ghosthunt::source::SourceMessage>,
    stop: CancellationToken,
    running: tokio::task::JoinHandle<Result<(), ghosthunt::source::SourceError>>,
}

impl Reader {
    fn start(
        settings: &Settings,
        watermarks: Option<ghosthunt::source::kafka::Assignments>,
    ) -> Reader {
        use ghosthunt::source::Source;
        let ghosthunt::settings::SourceSettings::Kafka(source_settings) = settings.source.clone()
        else {
            unreachable!("kafka settings")
        };
        let mut source = ghosthunt::source::kafka::KafkaSource::new(
            &settings.kafka,
            source_settings,
            &ghosthunt::telemetry::Metrics::new(),
            &ghosthunt::telemetry::Health::default(),
        )
        .unwrap();
        if let Some(watermarks) = watermarks {
            source = source
                .with_committed_watermarks(&settings.kafka, watermarks)
                .unwrap();
        }
        let acker = source.acknowledger();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let stop = CancellationToken::new();
        let running = tokio::spawn(Box::new(source).run(tx, stop.clone()));
        Reader {
            acker,
            rx,
            stop,
            running,
        }
    }

    /// The positions of the records it reads until one at `offset`.
    async fn read_through(&mut self, offset: u64) -> ghosthunt::source::Positions {
        let mut read = ghosthunt::source::Positions::default();
        read_until(&mut self.rx, 60, "the records", |m| {
            if let ghosthunt::source::SourceMessage::Records(records) = m {
                for r in records {
                    read.note(&r.input, r.offset);
                }
            }
            read.0.first().is_some_and(|(_, o)| *o == offset)
        })
        .await;
        read
    }

    /// Stops it; its consumer leaves the group (the acknowledger, its last handle, goes with it).
    async fn stop(self) {
        self.stop.cancel();
        self.running.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_from_before_a_partition_was_revoked_and_assigned_again_moves_no_offset()
{
    use ghosthunt::source::{Positions, SourceMessage};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic(EVENTS, 1).await;
    let lines: Vec<String> = (0..5).map(lsass_event).collect();
    broker.produce_at(EVENTS, 0, &lines).await;
    let group = "reassigned";
    let mut reader = Reader::start(&kafka_settings(&broker, group), None);
    // The first assignment: all five records, none acknowledged yet.
    let first = reader.read_through(4).await;

    // Another member joins the group and leaves it: the partition is revoked and, once the other
    // member is gone, assigned to this consumer again (read again from the last commit: none).
    let other: BaseConsumer = broker.consumer_config(group).create().unwrap();
    other.subscribe(&[EVENTS]).unwrap();
    let polling = tokio::task::spawn_blocking(move || {
        let until = std::time::Instant::now() + Duration::from_secs(12);
        while std::time::Instant::now() < until {
            let _ = other.poll(Duration::from_millis(100));
        }
        other.unsubscribe();
        drop(other);
    });
    read_until(&mut reader.rx, 60, "the revocation", |m| {
        matches!(m, SourceMessage::Stopped(_))
    })
    .await;
    polling.await.unwrap();
    // The other member has left: the records read under the last assignment (each assignment reads
    // them again), once no new assignment came for a few seconds.
    let mut second = Positions::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let quiet = tokio::time::Instant::now() + Duration::from_secs(5);
        let complete = second.0.first().is_some_and(|(_, o)| *o == 4);
        let until = if complete {
            quiet.min(deadline)
        } else {
            deadline
        };
        match tokio::time::timeout_at(until, reader.rx.recv()).await {
            Ok(Some(SourceMessage::Started(_))) => second = Positions::default(),
            Ok(Some(SourceMessage::Records(records))) => {
                for r in &records {
                    second.note(&r.input, r.offset);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the source ended"),
            Err(_) if complete => break,
            Err(_) => panic!("the records were not read again within 90 s"),
        }
    }

    // Acknowledging the first assignment's records now would tell the group they are done while this
    // assignment has not processed them: nothing is committed.
    reader.acker.acknowledge(&first);
    reader.acker.close();
    assert_eq!(
        broker.committed_offsets(group, EVENTS, 1),
        vec![-1],
        "an acknowledgement of an earlier assignment was committed"
    );
    // The current assignment's acknowledgement is.
    reader.acker.acknowledge(&second);
    reader.acker.close();
    assert_eq!(broker.committed_offsets(group, EVENTS, 1), vec![5]);
    reader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitions_next_reader_starts_at_the_floor_its_last_reader_recorded() {
    use ghosthunt::source::SourceMessage;
    use ghosthunt::source::kafka::Assignments;
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic(EVENTS, 1).await;
    let lines: Vec<String> = (0..5).map(lsass_event).collect();
    broker.produce_at(EVENTS, 0, &lines).await;
    let settings = kafka_settings(&broker, "floors");
    // A reader of the partition that has evaluated its windows through 1,000 ns when it acknowledges
    // the five records, then stops (its consumer leaves the group with the acknowledger).
    let mut reader = Reader::start(&settings, Some(Assignments::default()));
    let read = reader.read_through(4).await;
    reader.acker.acknowledge_through(&read, Some(1_000));
    reader.acker.close();
    reader.stop().await;
    assert_eq!(broker.committed_offsets("floors", EVENTS, 1), vec![5]);

    // Its next reader knows the floor before the partition's first record, whether or not the broker
    // kept the commit's metadata (tansu does not).
    let assignments = Assignments::default();
    let mut reader = Reader::start(&settings, Some(assignments.clone()));
    read_until(&mut reader.rx, 60, "the assignment", |m| {
        matches!(m, SourceMessage::Started(_))
    })
    .await;
    let floor = assignments
        .lock()
        .unwrap()
        .get(&format!("{EVENTS}[0]"))
        .and_then(|a| a.floor);
    assert_eq!(floor, Some(1_000));
    reader.stop().await;
}
