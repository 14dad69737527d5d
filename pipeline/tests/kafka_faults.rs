//! Faults a real broker cannot be made to show here, through librdkafka's in-process mock cluster: the
//! broker going down mid-stream and coming back, produce errors on the alerts topic, commit errors.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ghosthunt::app::{self, Handles};
use ghosthunt::settings::Settings;
use rdkafka::bindings::rd_kafka_resp_err_t as Err;
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaApiKey;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

fn lsass_event(i: usize) -> (Option<String>, Vec<u8>) {
    let host = format!("WS-{i:05}");
    let line = format!(
        r#"{{"@timestamp":"2024-05-01T10:{m:02}:{s:02}Z","EventID":10,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"{host}","SourceImage":"C:\\Users\\Public\\nanodump.exe","TargetImage":"C:\\Windows\\system32\\lsass.exe","GrantedAccess":"0x1010"}}"#,
        m = i / 60 % 60,
        s = i % 60
    );
    (Some(host), line.into_bytes())
}

fn settings(bootstrap: &str, group: &str) -> Settings {
    let mut s = common::kafka::pipeline_settings(bootstrap, group);
    // Failed deliveries surface (and are counted) after 5 s instead of 30 s.
    s.kafka.producer_options = vec![("message.timeout.ms".into(), "5000".into())];
    s
}

fn mock() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("events", 3, 1).unwrap();
    mock.create_topic("alerts", 1, 1).unwrap();
    mock.create_topic("dead-letters", 1, 1).unwrap();
    mock
}

async fn distinct_alerts(bootstrap: &str, at_least: usize, timeout: Duration) -> BTreeSet<String> {
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + timeout;
        loop {
            let records = common::kafka::consume_all(
                &bootstrap,
                "alerts",
                usize::MAX,
                Duration::from_secs(3),
            );
            let ids: BTreeSet<String> = records
                .iter()
                .map(|r| {
                    serde_json::from_slice::<Value>(&r.value).unwrap()["finding_info"]["uid"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            if ids.len() >= at_least || Instant::now() > deadline {
                return ids;
            }
        }
    })
    .await
    .unwrap()
}

async fn committed(bootstrap: &str, group: &str) -> i64 {
    let (b, g) = (bootstrap.to_string(), group.to_string());
    tokio::task::spawn_blocking(move || {
        common::kafka::committed_offsets(&b, &g, "events", 3)
            .iter()
            .filter(|o| **o > 0)
            .sum()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_mid_stream_then_up_loses_nothing() {
    let mock = mock();
    let bootstrap = mock.bootstrap_servers();
    let first: Vec<_> = (0..150).map(lsass_event).collect();
    common::kafka::produce_to(&bootstrap, "events", &first).await;
    let shutdown = CancellationToken::new();
    let handles = Handles::default();
    let task = tokio::spawn(app::run(
        settings(&bootstrap, "outage"),
        handles.clone(),
        shutdown.clone(),
    ));
    assert_eq!(
        distinct_alerts(&bootstrap, 150, Duration::from_secs(90))
            .await
            .len(),
        150
    );

    mock.broker_down(1).unwrap();
    // Events keep being produced during the outage (the producer retries until the broker is back).
    let b = bootstrap.clone();
    let second = tokio::spawn(async move {
        let more: Vec<_> = (150..300).map(lsass_event).collect();
        common::kafka::produce_to(&b, "events", &more).await;
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    mock.broker_up(1).unwrap();
    second.await.unwrap();

    let ids = distinct_alerts(&bootstrap, 300, Duration::from_secs(90)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(
        ids.len(),
        300,
        "every event produced before, during and after the outage alerted"
    );
    assert_eq!(committed(&bootstrap, "outage").await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_alert_deliveries_do_not_advance_input_offsets() {
    let mock = mock();
    let bootstrap = mock.bootstrap_servers();
    let events: Vec<_> = (0..40).map(lsass_event).collect();
    common::kafka::produce_to(&bootstrap, "events", &events).await;
    // From now on every produce request fails (a retriable error: librdkafka and then ghosthunt retry).
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &vec![Err::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 100_000],
    );
    let shutdown = CancellationToken::new();
    let handles = Handles::default();
    let task = tokio::spawn(app::run(
        settings(&bootstrap, "produce-errors"),
        handles.clone(),
        shutdown.clone(),
    ));
    // Long enough to join, read everything, fail deliveries past message.timeout.ms and commit several times.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && common::metric(
            &handles.metrics.render(),
            r#"ghosthunt_kafka_delivery_errors_total{code="MessageTimedOut",topic="alerts"}"#,
        )
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let text = handles.metrics.render();
    assert!(
        common::metric(&text, "ghosthunt_events_received_total").unwrap_or(0.0) >= 40.0,
        "the events were read"
    );
    assert!(
        text.contains("ghosthunt_kafka_delivery_errors_total{"),
        "delivery failures are counted"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        committed(&bootstrap, "produce-errors").await,
        0,
        "nothing is committed while alerts are not delivered"
    );
    assert_eq!(
        common::metric(
            &handles.metrics.render(),
            "ghosthunt_acknowledged_events_total"
        ),
        Some(0.0)
    );

    mock.clear_request_errors(RDKafkaApiKey::Produce);
    let ids = distinct_alerts(&bootstrap, 40, Duration::from_secs(90)).await;
    assert_eq!(
        ids.len(),
        40,
        "once the broker accepts them, every alert is delivered"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed(&bootstrap, "produce-errors").await < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(committed(&bootstrap, "produce-errors").await, 40);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commits_are_retried_until_the_offsets_are_committed() {
    let mock = mock();
    let bootstrap = mock.bootstrap_servers();
    let events: Vec<_> = (0..30).map(lsass_event).collect();
    common::kafka::produce_to(&bootstrap, "events", &events).await;
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[Err::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS; 4],
    );
    let shutdown = CancellationToken::new();
    let handles = Handles::default();
    let task = tokio::spawn(app::run(
        settings(&bootstrap, "commit-errors"),
        handles.clone(),
        shutdown.clone(),
    ));
    assert_eq!(
        distinct_alerts(&bootstrap, 30, Duration::from_secs(90))
            .await
            .len(),
        30
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed(&bootstrap, "commit-errors").await < 30 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        committed(&bootstrap, "commit-errors").await,
        30,
        "commits succeed after the failures"
    );
    let errors = common::metric(
        &handles.metrics.render(),
        r#"ghosthunt_kafka_commits_total{result="error"}"#,
    )
    .unwrap_or(0.0);
    eprintln!("commit errors seen by ghosthunt: {errors}");
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// `ghosthunt produce` to brokers that never answer retries its deliveries until stopped; a stop
/// (Ctrl-C, SIGTERM) gives them a grace of 10 s, then ends it, saying nothing was delivered, instead of
/// retrying forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_to_brokers_that_never_answer_stops_when_asked() {
    // A mock cluster with its broker down from the start.
    let mock = mock();
    mock.broker_down(1).unwrap();
    let settings = settings(&mock.bootstrap_servers(), "unused");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.cancel();
    });
    let started = Instant::now();
    let sent = tokio::time::timeout(
        Duration::from_secs(30),
        ghosthunt::cli::produce::produce(
            &settings,
            &ghosthunt::cli::produce::ProduceOptions {
                topic: "events".into(),
                files: Vec::new(),
                rate: Some(1_000),
                limit: Some(10),
            },
            shutdown,
        ),
    )
    .await
    .expect("produce ends once stopped")
    .unwrap();
    assert_eq!(sent, 0, "nothing was delivered");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
