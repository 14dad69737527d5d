//! Events split between partitions by event time, to see partitions kept in step (or not): the
//! producer, the halves and the sentinels that close every window of them.

use std::path::Path;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use super::Broker;

/// A producer for the tests' events (100,000 may wait in its queue). Not idempotent: tansu 0.6 then
/// answers ListOffsets (the partitions' ends) short of the records it holds.
pub fn producer(broker: &Broker) -> FutureProducer {
    broker
        .client_config()
        .set("enable.idempotence", "false")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .unwrap()
}

/// tansu 0.6 answers ListOffsets at record-batch granularity: a partition's end is the base offset of
/// its last batch (a real broker answers per record). A last batch of one record per partition, long
/// after every event, puts that end past them.
pub async fn send_sentinels(producer: &FutureProducer, topic: &str, partitions: i32) {
    let sentinel = r#"{"@timestamp":"2026-06-01T00:00:00Z","EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"sentinel"}"#;
    for partition in 0..partitions {
        producer
            .send(
                FutureRecord::<str, str>::to(topic)
                    .partition(partition)
                    .payload(sentinel)
                    .timestamp(millis("2026-06-01T00:00:00Z")),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
    }
}

pub fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// 100,000 generated events over 66 minutes of event time in `dir/events.jsonl`, the first half sent
/// to partition 0 of `topic` and the second to partition 1. Returns the file and the first event's time.
pub async fn produce_halves(
    producer: &FutureProducer,
    topic: &str,
    dir: &Path,
) -> (std::path::PathBuf, String) {
    let file = dir.join("events.jsonl");
    crate::common::generated_events(&file, 100_000, 25);
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let time = |l: &str| {
        let v: Value = serde_json::from_str(l).unwrap();
        v["@timestamp"].as_str().unwrap().to_string()
    };
    let half = lines.len() / 2;
    let sends = lines.iter().enumerate().map(|(i, line)| {
        let partition = i32::from(i >= half);
        let stamp = millis(&time(line));
        async move {
            producer
                .send(
                    FutureRecord::<str, str>::to(topic)
                        .partition(partition)
                        .payload(line.as_str())
                        .timestamp(stamp),
                    Duration::from_secs(30),
                )
                .await
        }
    });
    for r in futures::future::join_all(sends).await {
        r.map_err(|(e, _)| e).expect("produced");
    }
    send_sentinels(producer, topic, 2).await;
    (file, time(&lines[0]))
}
