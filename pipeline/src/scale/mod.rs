//! Scale-out that stays correct: windowed hunts' rows repartitioned by key through Kafka (`scale.mode =
//! "repartition"`), the Kafka Streams way.
//!
//! Each instance runs two pipelines. The *events* side reads the source topics in the instance's consumer
//! group, evaluates the unwindowed hunts, Sigma and row-local windowed hunts as usual, and sends the rows
//! that pass each repartitioned hunt's filter ([`upstream`]) to the repartition topic, at the partition
//! of hash(hunt, key), followed by its watermark to every partition. The *repartitioned* side reads that
//! topic in a second group (`<group>-repartition`, so its members share its partitions), keeps the
//! windows of the keys it owns, and evaluates them when the watermark — the least over live senders
//! ([`downstream`]) — passes. Source offsets are acknowledged once the rows are on the broker; repartition
//! offsets once the windows holding them are evaluated and their alerts delivered.

pub mod downstream;
pub mod frame;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub use downstream::Inbox;
pub use upstream::Repartitioner;

use crate::alert::{Alert, AlertSink, DeadLetterSink, SinkError};
use crate::decode::DeadLetter;
use crate::kafka::{KafkaFailure, client_config};
use crate::query::{Placement, PlannedHunt};
use crate::settings::KafkaSettings;

/// The hunts whose rows are repartitioned: windowed ones whose rows must meet (see
/// [`crate::query::partition`]). The rest are evaluated where their events are decoded.
pub fn split(planned: Vec<PlannedHunt>) -> (Vec<PlannedHunt>, Vec<Arc<PlannedHunt>>) {
    let mut local = Vec::new();
    let mut routed = Vec::new();
    for p in planned {
        if p.hunt.window.size_slide().is_some() && *p.placement() != Placement::RowLocal {
            routed.push(Arc::new(p));
        } else {
            local.push(p);
        }
    }
    (local, routed)
}

/// A name for this process, unique among the instances (host, process id, start time).
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ghosthunt".to_string());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{host}-{}-{started:x}", std::process::id())
}

/// Creates the repartition topic if it does not exist and returns how many partitions it has (an
/// existing topic keeps its own count: keys must keep their partitions across restarts).
pub async fn ensure_topic(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: i32,
) -> Result<i32, KafkaFailure> {
    let config = client_config(kafka, &[]);
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| KafkaFailure::new("creating the admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|e| KafkaFailure::new(format!("creating topic {topic}"), e))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(%topic, partitions, "Created the repartition topic."),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(KafkaFailure::new(
                    format!("creating topic {topic}"),
                    KafkaError::AdminOp(code),
                ));
            }
        }
    }
    let consumer: BaseConsumer = client_config(kafka, &[])
        .create()
        .map_err(|e| KafkaFailure::new("creating a metadata client", e))?;
    let topic_name = topic.to_string();
    tokio::task::spawn_blocking(move || {
        // A topic just created may take a moment to show all its partitions.
        let mut last = 0;
        for _ in 0..30 {
            let metadata = consumer
                .fetch_metadata(Some(&topic_name), Duration::from_secs(5))
                .map_err(|e| KafkaFailure::new(format!("reading metadata of {topic_name}"), e))?;
            last = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic_name)
                .map_or(0, |t| t.partitions().len() as i32);
            if last > 0 {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(KafkaFailure::new(
            format!("topic {topic_name} has {last} partitions"),
            KafkaError::AdminOp(RDKafkaErrorCode::UnknownTopicOrPartition),
        ))
    })
    .await
    .expect("metadata lookup does not panic")
}

/// The input names (`topic[partition]`) of every partition of the source topics (`topics`, or those
/// matching `pattern`), from the cluster's metadata.
pub async fn source_partitions(
    kafka: &KafkaSettings,
    topics: &[String],
    pattern: Option<&str>,
) -> Result<Vec<String>, KafkaFailure> {
    let consumer: BaseConsumer = client_config(kafka, &[])
        .create()
        .map_err(|e| KafkaFailure::new("creating a metadata client", e))?;
    let topics = topics.to_vec();
    let pattern = match pattern {
        Some(p) => Some(
            regex::Regex::new(&format!("^(?:{})", p.trim_start_matches('^'))).map_err(|e| {
                KafkaFailure::new(
                    format!("source.kafka.topic_pattern: {e}"),
                    KafkaError::AdminOp(RDKafkaErrorCode::InvalidConfig),
                )
            })?,
        ),
        None => None,
    };
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| KafkaFailure::new("reading the source topics' metadata", e))?;
        let mut inputs = Vec::new();
        for t in metadata.topics() {
            let wanted = match &pattern {
                Some(p) => p.is_match(t.name()),
                None => topics.iter().any(|n| n == t.name()),
            };
            if wanted {
                inputs.extend(
                    t.partitions()
                        .iter()
                        .map(|p| format!("{}[{}]", t.name(), p.id())),
                );
            }
        }
        inputs.sort();
        Ok(inputs)
    })
    .await
    .expect("metadata lookup does not panic")
}

/// One alert sink shared by both pipelines of an instance (one stdout, one file, one producer).
#[derive(Clone)]
pub struct SharedAlerts(pub Arc<tokio::sync::Mutex<Box<dyn AlertSink>>>);

impl AlertSink for SharedAlerts {
    fn deliver<'a>(&'a mut self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.0.lock().await.deliver(alerts).await })
    }
}

/// One dead-letter sink shared by both pipelines of an instance.
#[derive(Clone)]
pub struct SharedDeadLetters(pub Arc<tokio::sync::Mutex<Box<dyn DeadLetterSink>>>);

impl DeadLetterSink for SharedDeadLetters {
    fn deliver<'a>(
        &'a mut self,
        letters: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.0.lock().await.deliver(letters).await })
    }
}
