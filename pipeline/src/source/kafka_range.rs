//! Kafka history by time (`ghosthunt hunt --source kafka --from T`): each partition of the configured
//! topics is read from the first record whose timestamp is at or after `from` (Kafka's ListOffsets by
//! time, `offsets_for_times`) up to the end it had when the hunt started, then the source ends.
//!
//! The partitions are read at once, each its own input; one more than `window.max_lead` of event time
//! ahead of the oldest (as decoded) is paused until the others catch up (`super::align`), so that a
//! partition of sparse or newer records does not fill the windows while a busy one is read.
//!
//! Nothing is committed: the consumer assigns partitions itself (no group membership, so a live
//! pipeline in the group is not disturbed) and the retro-hunt is repeatable. The range is event time,
//! like the lake's: rows outside it are dropped after decoding (`decode.time_range`); the seek by record
//! timestamp only skips what cannot be in the range when records are stamped at or after their events
//! (producers stamp the send time, or the event time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::align::{Alignment, InStep, realign};
use super::cut::CutBuffer;
use super::{CHUNK_BYTES, CHUNK_RECORDS, Input, RawRecord, RecordSender, Source, SourceError};
use super::{EventTimes, NoAcknowledge, SourceMessage};
use crate::kafka::{KafkaFailure, forward_log};
use crate::settings::{KafkaSettings, KafkaSourceSettings, TimeRange};

/// How long the cluster may take to answer one request (metadata, offsets) before the hunt gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka's logs into ours; nothing else.
pub struct RangeContext;

impl ClientContext for RangeContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }
}

impl ConsumerContext for RangeContext {}

type RangeConsumer = BaseConsumer<RangeContext>;

/// One partition to read: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// The configured topics' records in a time range, read once.
pub struct KafkaRangeSource {
    consumer: Arc<RangeConsumer>,
    settings: KafkaSourceSettings,
    range: TimeRange,
    brokers: String,
    /// The records of the range, once the spans are known (for the retro-hunt's progress).
    size: Arc<super::progress::Size>,
    /// The partitions keep near one another in event time.
    alignment: Arc<Alignment>,
}

impl KafkaRangeSource {
    pub fn new(
        kafka: &KafkaSettings,
        settings: KafkaSourceSettings,
        range: TimeRange,
        max_lead: Duration,
    ) -> Result<KafkaRangeSource, SourceError> {
        let mut config = super::kafka::consumer_config(kafka, &settings);
        // A group id only names the client to the brokers: partitions are assigned, never committed.
        config
            .set("group.id", format!("{}-retro", settings.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: RangeConsumer = config
            .create_with_context(RangeContext)
            .map_err(|e| KafkaFailure::new("creating the consumer", e))?;
        Ok(KafkaRangeSource {
            consumer: Arc::new(consumer),
            settings,
            range,
            brokers: kafka.brokers.clone(),
            size: Arc::default(),
            alignment: Alignment::new(max_lead),
        })
    }

    /// Where the range's record count is told once known.
    pub fn size(&self) -> Arc<super::progress::Size> {
        Arc::clone(&self.size)
    }
}

/// The partitions of the configured topics (or of those matching the pattern), sorted.
fn partitions(
    consumer: &RangeConsumer,
    settings: &KafkaSourceSettings,
    brokers: &str,
) -> Result<Vec<(String, i32)>, SourceError> {
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| KafkaFailure::new(format!("reading the topics of {brokers}"), e))?;
    let pattern = match &settings.topic_pattern {
        Some(p) => Some(
            regex::Regex::new(&format!("^(?:{})$", p.trim_start_matches('^'))).map_err(|e| {
                SourceError::KafkaHistory(format!("source.kafka.topic_pattern: {e}"))
            })?,
        ),
        None => None,
    };
    let mut found = Vec::new();
    for topic in metadata.topics() {
        let wanted = match &pattern {
            Some(p) => p.is_match(topic.name()),
            None => settings.topics.iter().any(|t| t == topic.name()),
        };
        if wanted {
            found.extend(
                topic
                    .partitions()
                    .iter()
                    .map(|p| (topic.name().to_string(), p.id())),
            );
        }
    }
    if pattern.is_none() {
        for topic in &settings.topics {
            if !found.iter().any(|(t, _)| t == topic) {
                return Err(SourceError::KafkaHistory(format!(
                    "topic {topic} does not exist at {brokers}"
                )));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Where each partition's range starts (the first record stamped at or after `from`; the beginning
/// without `from`) and ends (its end when asked). Empty spans are left out.
fn spans(
    consumer: &RangeConsumer,
    partitions: &[(String, i32)],
    from: Option<i64>,
) -> Result<Vec<Span>, SourceError> {
    let mut ends = HashMap::new();
    for (topic, partition) in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, REQUEST_TIMEOUT)
            .map_err(|e| {
                KafkaFailure::new(format!("reading the end of {topic}[{partition}]"), e)
            })?;
        ends.insert((topic.clone(), *partition), high);
    }
    let mut starts = HashMap::new();
    match from {
        Some(from) => {
            let mut asked = TopicPartitionList::new();
            for (topic, partition) in partitions {
                asked
                    .add_partition_offset(
                        topic,
                        *partition,
                        Offset::Offset(from.div_euclid(1_000_000)),
                    )
                    .map_err(|e| KafkaFailure::new("listing offsets", e))?;
            }
            let answer = consumer
                .offsets_for_times(asked, REQUEST_TIMEOUT)
                .map_err(|e| KafkaFailure::new("finding the offsets of --from", e))?;
            for e in answer.elements() {
                if let Err(error) = e.error() {
                    return Err(KafkaFailure::new(
                        format!(
                            "finding the offset of --from in {}[{}]",
                            e.topic(),
                            e.partition()
                        ),
                        error,
                    )
                    .into());
                }
                let key = (e.topic().to_string(), e.partition());
                let start = match e.offset() {
                    Offset::Offset(o) => o,
                    // No record at or after the time: nothing to read.
                    _ => ends[&key],
                };
                starts.insert(key, start);
            }
        }
        None => {
            for (topic, partition) in partitions {
                let (low, _) = consumer
                    .fetch_watermarks(topic, *partition, REQUEST_TIMEOUT)
                    .map_err(|e| {
                        KafkaFailure::new(format!("reading the start of {topic}[{partition}]"), e)
                    })?;
                starts.insert((topic.clone(), *partition), low);
            }
        }
    }
    Ok(partitions
        .iter()
        .filter_map(|(topic, partition)| {
            let key = (topic.clone(), *partition);
            let (start, end) = (starts[&key], ends[&key]);
            tracing::debug!(%topic, partition, start, end, "Kafka history span.");
            (start < end).then(|| Span {
                topic: topic.clone(),
                partition: *partition,
                start,
                end,
            })
        })
        .collect())
}

/// A partition being read.
struct Open {
    input: Arc<Input>,
    /// The offset it is read up to (exclusive).
    end: i64,
    step: InStep,
}

/// Reads the spans to their ends (or until shutdown / the pipeline is gone).
fn read(
    consumer: &RangeConsumer,
    spans: &[Span],
    alignment: &Arc<Alignment>,
    tx: &RecordSender,
    shutdown: &CancellationToken,
) -> Result<(), SourceError> {
    let mut assignment = TopicPartitionList::new();
    let mut open: HashMap<(String, i32), Open> = HashMap::new();
    for s in spans {
        assignment
            .add_partition_offset(&s.topic, s.partition, Offset::Offset(s.start))
            .map_err(|e| KafkaFailure::new("assigning partitions", e))?;
        let input = super::kafka::partition_input(&s.topic, s.partition);
        if tx
            .blocking_send(SourceMessage::Started(Arc::clone(&input)))
            .is_err()
        {
            return Ok(());
        }
        let aligned = alignment.register(&input.name);
        open.insert(
            (s.topic.clone(), s.partition),
            Open {
                input,
                end: s.end,
                step: InStep::new(aligned),
            },
        );
    }
    consumer
        .assign(&assignment)
        .map_err(|e| KafkaFailure::new("assigning partitions", e))?;
    let mut chunk: Vec<RawRecord> = Vec::with_capacity(CHUNK_RECORDS);
    let mut chunk_bytes = 0usize;
    // The payloads are copied into shared blocks, one allocation for many records.
    let mut payloads = CutBuffer::default();
    let mut last_error: Option<Instant> = None;
    while !open.is_empty() && !shutdown.is_cancelled() {
        let mut done: Vec<(String, i32)> = Vec::new();
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let key = (message.topic().to_string(), message.partition());
                if let Some(Open { input, end, .. }) = open.get(&key) {
                    let offset = message.offset();
                    if offset < *end {
                        let bytes =
                            payloads.copy(message.payload().unwrap_or_default(), CHUNK_BYTES);
                        chunk_bytes += bytes.len();
                        chunk.push(RawRecord {
                            input: Arc::clone(input),
                            offset: offset as u64,
                            bytes,
                            received: Instant::now(),
                            source_timestamp: message.timestamp().to_millis(),
                        });
                    }
                    if offset + 1 >= *end {
                        tracing::debug!(topic = %key.0, partition = key.1, offset, end, "Partition read to its end.");
                        done.push(key);
                    }
                }
            }
            Some(Err(error)) => {
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(%error, "Kafka consumer error; retrying.");
                    last_error = Some(Instant::now());
                }
            }
            None => {
                // Nothing came: a partition whose position passed its end (its last offsets were not
                // records — transaction markers, compacted away) is done too.
                if let Ok(positions) = consumer.position() {
                    for e in positions.elements() {
                        let key = (e.topic().to_string(), e.partition());
                        if let (Offset::Offset(p), Some(Open { end, .. })) =
                            (e.offset(), open.get(&key))
                            && p >= *end
                        {
                            tracing::debug!(topic = %key.0, partition = key.1, position = p, end, "Partition read to its end.");
                            done.push(key);
                        }
                    }
                }
            }
        }
        if chunk.len() >= CHUNK_RECORDS
            || chunk_bytes >= CHUNK_BYTES
            || (!done.is_empty() && !chunk.is_empty())
        {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
            chunk_bytes = 0;
            if tx.blocking_send(SourceMessage::Records(full)).is_err() {
                return Ok(());
            }
            realign(consumer, open.iter_mut().map(|(k, p)| (k, &mut p.step)));
        } else if chunk.is_empty() {
            // Nothing read lately: the others may have caught up with a paused partition.
            realign(consumer, open.iter_mut().map(|(k, p)| (k, &mut p.step)));
        }
        for key in done {
            if let Some(Open { input, .. }) = open.remove(&key) {
                let mut rest = TopicPartitionList::new();
                rest.add_partition(&key.0, key.1);
                let _ = consumer.pause(&rest);
                if tx.blocking_send(SourceMessage::Stopped(input)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(SourceMessage::Records(chunk));
    }
    Ok(())
}

impl Source for KafkaRangeSource {
    fn acknowledger(&self) -> Arc<dyn super::Acknowledge> {
        Arc::new(NoAcknowledge)
    }

    fn event_times(&self) -> Option<Arc<dyn EventTimes>> {
        Some(Arc::clone(&self.alignment) as Arc<dyn EventTimes>)
    }

    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            let consumer = Arc::clone(&self.consumer);
            tracing::info!(brokers = %self.brokers, "Asking the brokers for the topics' partitions and offsets (up to 30 s each).");
            // A signal while the brokers are asked (an unreachable one answers only at the timeout)
            // stops the hunt; the blocking request is left to time out on its own, holding nothing the
            // pipeline waits for.
            let (asked, this) = (Arc::clone(&consumer), self);
            let (settings, brokers, from) =
                (this.settings.clone(), this.brokers.clone(), this.range.from);
            let asking = tokio::task::spawn_blocking(move || {
                let partitions = partitions(&asked, &settings, &brokers)?;
                let spans = spans(&asked, &partitions, from)?;
                Ok::<_, SourceError>((partitions, spans))
            });
            let (partitions, spans) = tokio::select! {
                done = asking => done.expect("asking the brokers does not panic")?,
                () = shutdown.cancelled() => return Ok(()),
            };
            let records: i64 = spans.iter().map(|s| s.end - s.start).sum();
            tracing::info!(
                partitions = partitions.len(),
                with_records = spans.len(),
                records,
                "Reading Kafka history."
            );
            this.size.set_records(records.max(0) as u64);
            let alignment = Arc::clone(&this.alignment);
            tokio::task::spawn_blocking(move || read(&consumer, &spans, &alignment, &tx, &shutdown))
                .await
                .expect("the Kafka history reader does not panic")
        })
    }
}
