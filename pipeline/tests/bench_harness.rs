//! `ghosthunt bench` (issue #6): on a small seeded input the report's counts are exact — every event, the
//! alerts a normal run produces — and its timings are sane.

mod common;

use std::time::Duration;

use ghosthunt::app;
use ghosthunt::cli::bench::{self, BenchOptions, BenchSource, generate_file};
use ghosthunt::decode::EventSchema;
use ghosthunt::settings::FileSettings;
use ghosthunt::source::FileSource;
use tokio_util::sync::CancellationToken;

const EVENTS: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_counts_every_event_and_the_alerts_of_a_normal_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings();
    // An attack scenario every second of event time: the 10 s of events hold several.
    settings.generator.attack_interval = Duration::from_secs(1);
    let options = BenchOptions {
        source: BenchSource::File(Vec::new()),
        events: EVENTS,
        seed: 7,
        event_rate: 2_000,
        copies: None,
        work_dir: Some(dir.path().to_path_buf()),
        keep_events: None,
        lake_sink: false,
    };

    // The same events through a normal run: the bundled hunts, memory sinks.
    let path = dir.path().join("events.jsonl");
    generate_file(&settings.generator, &options, &path).unwrap();
    let file_bytes = std::fs::metadata(&path).unwrap().len();
    let (hunts, refused) = app::hunts(&settings, &EventSchema::windows()).await;
    assert!(refused.is_empty(), "{refused:?}");
    let source = FileSource::new(
        FileSettings {
            paths: vec![path.display().to_string()],
            follow: false,
            poll_interval: Duration::from_millis(50),
            max_open: 64,
        },
        1 << 20,
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let normal = common::run_pipeline(
        settings.clone(),
        hunts,
        Box::new(source),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(normal.summary.records, EVENTS);
    assert!(normal.alerts.len() > 5, "{} alerts", normal.alerts.len());

    let report = bench::run(settings.clone(), &options).await.unwrap();
    assert_eq!(report.events, EVENTS);
    assert_eq!(
        report.bytes,
        file_bytes - EVENTS,
        "record bytes, without newlines"
    );
    assert_eq!(report.hunts, 16, "the bundled hunts: 11 SQL, 5 KQL");
    assert_eq!(report.alerts, normal.alerts.len() as u64);
    assert_eq!(report.dead_letters, normal.dead_letters.len() as u64);
    let l = report.latency;
    assert_eq!(l.count as u64, report.alerts);
    assert!(0.0 <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    assert!(
        l.max <= report.seconds,
        "{l:?} within a {} s run",
        report.seconds
    );
    assert!(report.seconds > 0.0 && report.events_per_second() > 0.0);
    assert!(
        report.peak_rss_bytes > 10 << 20,
        "{}",
        report.peak_rss_bytes
    );
    assert!(report.cpu_seconds > 0.0, "{}", report.cpu_seconds);
    // The generated file was the harness's own and is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // The in-process generator sends the same events, so the same alerts.
    let generated = bench::run(
        settings.clone(),
        &BenchOptions {
            source: BenchSource::Generator,
            ..options.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (generated.events, generated.bytes, generated.alerts),
        (report.events, report.bytes, report.alerts)
    );

    // Copies of one hunt fire as often as the hunt, each.
    let lsass = normal
        .alerts
        .iter()
        .filter(|a| a.hunt.id == "lsass_memory_access")
        .count() as u64;
    assert!(lsass > 0);
    let copies = bench::run(
        settings,
        &BenchOptions {
            copies: Some(("lsass_memory_access".into(), 3)),
            ..options
        },
    )
    .await
    .unwrap();
    assert_eq!((copies.hunts, copies.alerts), (3, 3 * lsass));
}

/// `bench --source kafka` over a backlog: exactly the events asked for, and the windows still open at
/// the last one are evaluated then, as at a file's end — the same alerts as the file run, without waiting
/// for a live stream's quiet to close them (up to a window's length of wall-clock time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_over_a_kafka_backlog_finds_what_the_file_run_finds_and_ends_with_its_events() {
    let Some(broker) = common::kafka::Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::test_settings();
    settings.generator.attack_interval = Duration::from_secs(1);
    let path = dir.path().join("kept.jsonl");
    let options = BenchOptions {
        events: EVENTS,
        seed: 7,
        keep_events: Some(path.clone()),
        ..BenchOptions::default()
    };
    let file = bench::run(settings.clone(), &options).await.unwrap();
    assert!(file.alerts > 5, "{} alerts", file.alerts);
    // Kept, as asked.
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len() as u64, EVENTS);

    broker.create_topic("events", 3).await;
    broker
        .produce("events", &common::kafka::keyed_by_host(&lines))
        .await;
    let mut kafka = common::kafka::pipeline_settings(&broker.bootstrap, "bench");
    kafka.generator = settings.generator.clone();
    let report = bench::run(
        kafka,
        &BenchOptions {
            source: BenchSource::Kafka,
            ..options
        },
    )
    .await
    .unwrap();
    assert_eq!(report.events, EVENTS);
    assert_eq!(
        (report.alerts, report.dead_letters),
        (file.alerts, file.dead_letters)
    );
    assert!(
        report.seconds < 60.0,
        "the run ended {} s after it started",
        report.seconds
    );
    // It read in a group of its own: the configured group (a live pipeline's) committed nothing.
    assert_eq!(
        broker.committed_offsets("bench", "events", 3),
        vec![-1, -1, -1]
    );
}
