//! Clients of the test broker (or of librdkafka's mock cluster): produce, read a topic back, read a group's
//! committed offsets, and the pipeline settings that point at them.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::{ConsumedRecord, HeaderedRecord, client_config};

pub fn committed_offsets(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    {
        let consumer: BaseConsumer = client_config(bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("create consumer for committed offsets");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("committed offsets of group {group} on {topic}: {e}"));
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            })
            .collect()
    }
}

pub(super) fn wait_for_partitions(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) {
    let consumer: BaseConsumer = client_config(bootstrap)
        .create()
        .expect("create metadata client");
    let deadline = Instant::now() + timeout;
    loop {
        let last = match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && t.partitions().len() == partitions as usize => {
                    return;
                }
                Some(t) => format!("error {:?}, {} partitions", t.error(), t.partitions().len()),
                None => "not in metadata".into(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            panic!(
                "topic {topic} not ready with {partitions} partitions after {timeout:?}: {last}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    expect_at_least: usize,
    timeout: Duration,
) -> Vec<ConsumedRecord> {
    let deadline = Instant::now() + timeout;
    let group = format!("ghosthunt-test-reader-{}-{}", std::process::id(), unique());
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create consumer");
    // The partitions, from metadata (the topic may still be appearing).
    let partitions = loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(md) = &md
            && let Some(t) = md.topics().iter().find(|t| t.name() == topic)
            && t.error().is_none()
            && !t.partitions().is_empty()
        {
            break t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>();
        }
        if Instant::now() >= deadline {
            panic!("consume_all: topic {topic} has no partitions in metadata after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl offset");
    }
    consumer.assign(&tpl).expect("assign partitions");

    let mut out = Vec::new();
    while out.len() < expect_at_least {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match consumer.poll(remaining.min(Duration::from_millis(200))) {
            None => {}
            Some(Err(e)) => panic!("consume_all {topic}: {e}"),
            Some(Ok(m)) => out.push(ConsumedRecord {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// A number unique within this process (for topic and group names).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Produces `(key, value)` records with only the bootstrap address (for a spawned task); panics on error.
pub async fn produce_to(bootstrap: &str, topic: &str, records: &[(Option<String>, Vec<u8>)]) {
    let with_headers: Vec<HeaderedRecord> = records
        .iter()
        .map(|(k, v)| (k.clone(), v.clone(), Vec::new()))
        .collect();
    produce_with_headers_to(bootstrap, topic, &with_headers).await;
}

/// Produces `(key, value, headers)` records with only the bootstrap address (usable from a spawned task);
/// awaits every delivery and panics on any error. Returns each record's `(partition, offset)`.
pub async fn produce_with_headers_to(
    bootstrap: &str,
    topic: &str,
    records: &[HeaderedRecord],
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = client_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("create producer");
    let sends = records.iter().map(|(key, value, headers)| {
        let mut rec = FutureRecord::to(topic).payload(value.as_slice());
        if let Some(k) = key {
            rec = rec.key(k.as_str());
        }
        if !headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(headers.len());
            for (name, v) in headers {
                h = h.insert(Header {
                    key: name.as_str(),
                    value: Some(v.as_slice()),
                });
            }
            rec = rec.headers(h);
        }
        producer.send(rec, Duration::from_secs(10))
    });
    // join_all polls the sends in order, so records are queued in order, then all are awaited.
    futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Ok(d) => (d.partition, d.offset),
            Err((e, _)) => panic!("produce record {i} to {topic}: {e}"),
        })
        .collect()
}

/// Pipeline settings for Kafka in (topic `events`) and out (`alerts`, `dead-letters`) on `bootstrap`, in
/// consumer group `group`, with a short session so that joining the group takes seconds (tansu holds a
/// JoinGroup for about half the session timeout).
pub fn pipeline_settings(bootstrap: &str, group: &str) -> ghosthunt::settings::Settings {
    use ghosthunt::settings::{KafkaSourceSettings, OutputSettings, SourceSettings};
    let mut s = crate::common::test_settings();
    s.kafka.brokers = bootstrap.to_string();
    s.source = SourceSettings::Kafka(KafkaSourceSettings {
        topics: vec!["events".into()],
        topic_pattern: None,
        group_id: group.into(),
        auto_offset_reset: "earliest".into(),
        commit_interval: Duration::from_millis(500),
        options: vec![
            ("session.timeout.ms".into(), "6000".into()),
            ("heartbeat.interval.ms".into(), "1000".into()),
        ],
    });
    s.alerts = OutputSettings::Kafka {
        topic: "alerts".into(),
    };
    s.dead_letters = OutputSettings::Kafka {
        topic: "dead-letters".into(),
    };
    s
}
