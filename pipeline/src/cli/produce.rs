//! `ghosthunt produce`: write events into a Kafka topic — the built-in generator's or a JSON-lines file's —
//! keyed by host (so that one host's events stay in one partition, in order), at a given rate. For demos,
//! tests and benchmarks.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::alert::kafka::KafkaWriter;
use crate::decode::EventSchema;
use crate::generator::GeneratorSource;
use crate::settings::{FileSettings, Settings};
use crate::source::{FileSource, Source, SourceMessage};
use crate::telemetry::Metrics;

/// What to produce.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    pub topic: String,
    /// JSON-lines files (paths or globs) instead of the generator.
    pub files: Vec<String>,
    /// Events per second; `None`: the generator's configured rate, or as fast as possible for files.
    pub rate: Option<u64>,
    /// Stop after this many events.
    pub limit: Option<u64>,
}

/// Why producing stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Sink(#[from] crate::alert::SinkError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error("the source task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How long a stop waits for the records being delivered.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Produces until the input ends, the limit is reached, or `shutdown`; returns how many were delivered.
pub async fn produce(
    settings: &Settings,
    options: &ProduceOptions,
    shutdown: CancellationToken,
) -> Result<u64, ProduceError> {
    let metrics = Metrics::new();
    let writer = KafkaWriter::new(&settings.kafka, &options.topic, &metrics)?;
    let schema = EventSchema::windows();
    let host = schema
        .columns
        .iter()
        .find(|c| c.name == "host")
        .cloned()
        .expect("the Windows schema has a host column");
    let source: Box<dyn Source> = if options.files.is_empty() {
        let mut generator = settings.generator.clone();
        if let Some(rate) = options.rate {
            generator.rate = rate;
        }
        generator.limit = options.limit;
        Box::new(GeneratorSource::new(generator))
    } else {
        Box::new(FileSource::new(
            FileSettings {
                paths: options.files.clone(),
                follow: false,
                ..settings.file.clone()
            },
            settings.decode.max_record_bytes,
            settings.window.max_lead,
        )?)
    };
    let (tx, mut rx) = mpsc::channel::<SourceMessage>(4);
    let task = tokio::spawn(source.run(tx, shutdown.clone()));
    let started = Instant::now();
    let file_rate = if options.files.is_empty() {
        None
    } else {
        options.rate
    };
    let mut sent: u64 = 0;
    // A stop gave up on records not delivered: waiting for them again at the end would not help.
    let mut gave_up = false;
    let limit = options.limit.unwrap_or(u64::MAX);
    while let Some(message) = rx.recv().await {
        let SourceMessage::Records(chunk) = message else {
            continue;
        };
        let mut records = Vec::with_capacity(chunk.len());
        for record in chunk {
            if sent + records.len() as u64 >= limit {
                break;
            }
            let key =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&record.bytes)
                    .ok()
                    .and_then(|o| crate::decode::json::text_of(&o, &host));
            records.push((key, record.bytes.to_vec()));
        }
        let count = records.len() as u64;
        // A delivery is retried until it succeeds (brokers down, a topic not there yet). A stop
        // (Ctrl-C, SIGTERM) gives the records being delivered up to STOP_GRACE, then ends the wait,
        // saying what was not delivered.
        let delivery = writer.send_keyed(records);
        tokio::pin!(delivery);
        let delivered = tokio::select! {
            biased;
            result = &mut delivery => Some(result),
            () = shutdown.cancelled() => tokio::time::timeout(STOP_GRACE, &mut delivery).await.ok(),
        };
        match delivered {
            Some(result) => {
                result?;
                sent += count;
            }
            None => {
                gave_up = true;
                tracing::warn!(
                    topic = %options.topic,
                    delivered = sent,
                    undelivered = count,
                    "Stopped while events were still not delivered after {} s (are the brokers reachable? kafka.brokers); they are not sent.",
                    STOP_GRACE.as_secs()
                );
                break;
            }
        }
        if let Some(rate) = file_rate {
            let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        if sent >= limit {
            shutdown.cancel();
            break;
        }
    }
    drop(rx);
    task.await??;
    if !gave_up {
        writer.flush(STOP_GRACE);
    }
    Ok(sent)
}
