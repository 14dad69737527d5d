//! Kafka out: alerts and dead letters produced to topics by an idempotent producer.
//!
//! `deliver` resolves only when every record has a successful delivery report (`acks=all`), because the
//! source's offsets advance only after that. A full producer queue is backpressure (we wait, never drop);
//! a failed delivery is counted and retried with backoff until it succeeds or the pipeline is stopped.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::ocsf::Alert;
use super::sink::{AlertSink, DeadLetterSink, SinkError};
use crate::decode::DeadLetter;
use crate::kafka::{client_config, forward_log};
use crate::settings::{AlertKey, KafkaSettings};
use crate::source::InputKind;
use crate::telemetry::Metrics;

/// One record to produce, owned so that it can be sent again.
struct Outgoing {
    /// `None`: the producer's partitioner picks one by key.
    partition: Option<i32>,
    key: Option<String>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
}

/// Sends librdkafka's producer log lines into our log (as the consumer's context does).
pub struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }
}

/// An idempotent producer writing to one topic.
pub struct KafkaWriter {
    producer: FutureProducer<LogContext>,
    topic: String,
    metrics: Metrics,
}

fn kafka_error(topic: &str, doing: &str, e: KafkaError) -> SinkError {
    SinkError::Kafka {
        topic: topic.to_string(),
        failure: crate::kafka::KafkaFailure::new(doing, e),
    }
}

impl KafkaWriter {
    pub fn new(
        kafka: &KafkaSettings,
        topic: &str,
        metrics: &Metrics,
    ) -> Result<KafkaWriter, SinkError> {
        let config = producer_config(kafka);
        let producer: FutureProducer<LogContext> = config
            .create_with_context(LogContext)
            .map_err(|e| kafka_error(topic, "creating the producer", e))?;
        Ok(KafkaWriter {
            producer,
            topic: topic.to_string(),
            metrics: metrics.clone(),
        })
    }

    async fn send_all(&self, records: Vec<Outgoing>) -> Result<(), SinkError> {
        let mut waiting: Vec<usize> = (0..records.len()).collect();
        let mut backoff = Duration::from_millis(200);
        while !waiting.is_empty() {
            let mut deliveries = Vec::with_capacity(waiting.len());
            for &i in &waiting {
                let r = &records[i];
                let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
                for (key, value) in &r.headers {
                    headers = headers.insert(Header {
                        key,
                        value: Some(value),
                    });
                }
                let mut record = FutureRecord::to(&self.topic)
                    .payload(&r.payload)
                    .headers(headers);
                if let Some(key) = &r.key {
                    record = record.key(key);
                }
                if let Some(partition) = r.partition {
                    record = record.partition(partition);
                }
                let started = Instant::now();
                // A full producer queue is backpressure: wait for room, never drop.
                let delivery = loop {
                    match self.producer.send_result(record) {
                        Ok(delivery) => break delivery,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err((error, _)) => {
                            return Err(kafka_error(&self.topic, "queueing a message", error));
                        }
                    }
                };
                deliveries.push((i, started, delivery));
            }
            let mut failed = Vec::new();
            for (i, started, delivery) in deliveries {
                let error = match delivery.await {
                    Ok(Ok(_)) => {
                        self.metrics
                            .kafka_produce_latency
                            .with_label_values(&[&self.topic])
                            .observe(started.elapsed().as_secs_f64());
                        continue;
                    }
                    Ok(Err((error, _))) => error,
                    Err(_canceled) => KafkaError::Canceled,
                };
                let code = error
                    .rdkafka_error_code()
                    .map_or_else(|| "unknown".to_string(), |c| format!("{c:?}"));
                self.metrics
                    .kafka_delivery_errors
                    .with_label_values(&[&self.topic, &code])
                    .inc();
                tracing::warn!(topic = %self.topic, %error, "Delivery failed; sending again.");
                failed.push(i);
            }
            if !failed.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            waiting = failed;
        }
        Ok(())
    }

    /// Produces `(key, value)` records and waits for every delivery (used by `ghosthunt produce`).
    pub async fn send_keyed(
        &self,
        records: Vec<(Option<String>, Vec<u8>)>,
    ) -> Result<(), SinkError> {
        self.send_all(
            records
                .into_iter()
                .map(|(key, payload)| Outgoing {
                    partition: None,
                    key,
                    payload,
                    headers: Vec::new(),
                })
                .collect(),
        )
        .await
    }

    /// Produces `(partition, key, value)` records and waits for every delivery.
    pub async fn send_to_partitions(
        &self,
        records: Vec<(i32, String, Vec<u8>)>,
    ) -> Result<(), SinkError> {
        self.send_all(
            records
                .into_iter()
                .map(|(partition, key, payload)| Outgoing {
                    partition: Some(partition),
                    key: Some(key),
                    payload,
                    headers: Vec::new(),
                })
                .collect(),
        )
        .await
    }

    /// Waits until everything queued is delivered (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(topic = %self.topic, %error, "Producer flush did not finish.");
        }
    }
}

/// The producers' configuration: the shared settings, the producer's own, idempotence.
pub fn producer_config(kafka: &KafkaSettings) -> rdkafka::ClientConfig {
    let mut config = client_config(kafka, &kafka.producer_options);
    // Idempotence implies acks=all and in-order retries; set both explicitly for the reader.
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    // A delivery that has not succeeded within this is reported failed, counted and sent again.
    crate::kafka::set_default(&mut config, "message.timeout.ms", "30000");
    config
}

/// Alerts to a topic: key per [`AlertKey`], headers with the hunt id, severity and alert id.
pub struct KafkaAlertSink {
    writer: KafkaWriter,
    key: AlertKey,
}

impl KafkaAlertSink {
    pub fn new(
        kafka: &KafkaSettings,
        topic: &str,
        key: AlertKey,
        metrics: &Metrics,
    ) -> Result<Self, SinkError> {
        Ok(KafkaAlertSink {
            writer: KafkaWriter::new(kafka, topic, metrics)?,
            key,
        })
    }
}

impl AlertSink for KafkaAlertSink {
    fn deliver<'a>(&'a mut self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        let records = alerts
            .iter()
            .map(|a| Outgoing {
                partition: None,
                key: match self.key {
                    AlertKey::HuntEntity => Some(a.key.clone()),
                    AlertKey::Hunt => Some(a.hunt.id.clone()),
                    AlertKey::None => None,
                },
                payload: a.json.clone().into_bytes(),
                headers: vec![
                    ("hunt_id", a.hunt.id.clone().into_bytes()),
                    ("severity", a.hunt.severity.as_str().as_bytes().to_vec()),
                    ("alert_id", a.id.clone().into_bytes()),
                ],
            })
            .collect();
        Box::pin(self.writer.send_all(records))
    }
}

/// Dead letters to a topic: the original bytes as the value, where they came from in headers.
pub struct KafkaDeadLetterSink {
    writer: KafkaWriter,
}

impl KafkaDeadLetterSink {
    pub fn new(kafka: &KafkaSettings, topic: &str, metrics: &Metrics) -> Result<Self, SinkError> {
        Ok(KafkaDeadLetterSink {
            writer: KafkaWriter::new(kafka, topic, metrics)?,
        })
    }
}

impl DeadLetterSink for KafkaDeadLetterSink {
    fn deliver<'a>(
        &'a mut self,
        letters: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        let now_ms = chrono::Utc::now().timestamp_millis().to_string();
        let records = letters
            .iter()
            .map(|d| {
                let mut headers = vec![
                    ("reason", d.reason.as_str().as_bytes().to_vec()),
                    ("detail", d.detail.clone().into_bytes()),
                    ("source_input", d.input.name.clone().into_bytes()),
                    ("source_offset", d.offset.to_string().into_bytes()),
                    ("dead_lettered_at", now_ms.clone().into_bytes()),
                ];
                // The source message's own timestamp (ms), where the source has one (Kafka).
                if let Some(t) = d.source_timestamp {
                    headers.push(("timestamp", t.to_string().into_bytes()));
                }
                let key = match &d.input.kind {
                    InputKind::Kafka { topic, partition } => {
                        headers.push(("source_topic", topic.clone().into_bytes()));
                        headers.push(("source_partition", partition.to_string().into_bytes()));
                        Some(format!("{topic}[{partition}]"))
                    }
                    _ => None,
                };
                Outgoing {
                    partition: None,
                    key,
                    payload: d.bytes.to_vec(),
                    headers,
                }
            })
            .collect();
        Box::pin(self.writer.send_all(records))
    }
}
