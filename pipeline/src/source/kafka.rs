//! Kafka in: a consumer in a consumer group, offsets stored only when the pipeline acknowledges.
//!
//! `enable.auto.offset.store` is off: a partition's offset is stored when the pipeline acknowledges the
//! batch holding it (every window containing its rows evaluated, every alert delivered), and librdkafka
//! commits the stored offsets every `commit_interval`, when partitions are revoked, and at shutdown
//! ([`Acknowledge::close`]). Each assigned partition is its own input (its own event-time progress).
//! When the pipeline falls behind, the bounded channel fills and the consumer stops polling: librdkafka's
//! prefetch queue is bounded too (`queued.max.messages.kbytes`), so memory stays bounded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::align::Alignment;
use super::cut::CutBuffer;
pub use super::kafka_floors::{Assignment, Assignments, Floors};
use super::kafka_floors::{WATERMARK_METADATA, read_committed_watermarks};
use super::kafka_in_step::{InStepPartitions, is_partition};
use super::{
    Acknowledge, CHUNK_BYTES, CHUNK_RECORDS, EventTimes, Input, InputKind, Positions, RawRecord,
    RecordSender, Source, SourceError, SourceMessage,
};
use crate::kafka::{KafkaFailure, client_config, forward_log};
use crate::settings::{KafkaSettings, KafkaSourceSettings};
use crate::telemetry::metrics::ConsumerLagMetrics;
use crate::telemetry::{Health, Metrics};

/// Callbacks from librdkafka: rebalances, commits, statistics (consumer lag).
pub struct SourceContext {
    metrics: Metrics,
    /// Consumer lag, exported for the partitions this instance owns.
    lag: ConsumerLagMetrics,
    health: Health,
    group: String,
    /// Incremented at every rebalance: the poll loop then reads the new assignment.
    generation: AtomicU64,
    /// Partitions revoked since the poll loop last looked (some may be assigned again).
    revoked: std::sync::Mutex<HashSet<(String, i32)>>,
    /// The input of each partition's current assignment (see [`Assigned`]).
    assigned: Assigned,
    /// The group uses the cooperative rebalance protocol (`partition.assignment.strategy` set to
    /// `cooperative-sticky`), known from the configuration: see [`SourceContext::rebalance`].
    cooperative: bool,
    /// The consumer is being dropped (see [`Closing`]): the final revocation commits nothing itself.
    closing: AtomicBool,
}

/// Each assigned partition's input, a new one per assignment: the records of one assignment carry its
/// input, and only positions of the current assignment are stored. A partition revoked and assigned
/// again (to this consumer) is read again from its last commit; an acknowledgement of a record read
/// under the earlier assignment, arriving after that, must not move the offset — the records before it
/// are being read again, and on the repartition topic the windows holding them were dropped with the
/// revocation, not evaluated (storing it lost their rows for good, and the floor of its commit with them).
#[derive(Debug, Default)]
pub struct Assigned(std::sync::Mutex<HashMap<(String, i32), Arc<Input>>>);

impl Assigned {
    /// A new assignment of the partition: its records get a new input.
    fn begin(&self, topic: &str, partition: i32) -> Arc<Input> {
        let input = partition_input(topic, partition);
        self.0
            .lock()
            .expect("assigned lock")
            .insert((topic.to_string(), partition), Arc::clone(&input));
        input
    }

    /// The partition was revoked: nothing read under its assignment is stored any more.
    fn end(&self, topic: &str, partition: i32) {
        self.0
            .lock()
            .expect("assigned lock")
            .remove(&(topic.to_string(), partition));
    }

    /// The positions read under the current assignment of their partition, as (topic, partition,
    /// offset).
    fn current<'a>(&self, positions: &'a Positions) -> Vec<(&'a str, i32, u64)> {
        let assigned = self.0.lock().expect("assigned lock");
        positions
            .0
            .iter()
            .filter_map(|(input, offset)| match &input.kind {
                InputKind::Kafka { topic, partition } => assigned
                    .get(&(topic.clone(), *partition))
                    .is_some_and(|current| Arc::ptr_eq(current, input))
                    .then_some((topic.as_str(), *partition, *offset)),
                _ => None,
            })
            .collect()
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }

    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            // Partition -1 is librdkafka's internal UA (unassigned) partition.
            for (&partition, p) in t.partitions.iter().filter(|(p, _)| **p >= 0) {
                self.lag.observe(topic, partition, p.consumer_lag);
            }
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka consumer error.");
    }
}

impl ConsumerContext for SourceContext {
    /// rdkafka's own rebalance, with the protocol taken from the configuration instead of asked of
    /// librdkafka: `rd_kafka_rebalance_protocol` called from this callback can wait for ever while the
    /// consumer closes (librdkafka issue 4041; seen here as an instance hanging in `BaseConsumer::drop`
    /// at shutdown, its revocation never finishing).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        use rdkafka::types::RDKafkaRespErr::{
            RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS as ASSIGN,
            RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS as REVOKE,
        };
        let rebalance = match err {
            ASSIGN => Rebalance::Assign(partitions),
            REVOKE => Rebalance::Revoke(partitions),
            other => {
                let code = rdkafka::types::RDKafkaErrorCode::from(other);
                tracing::error!(error = %code, group = %self.group, "Rebalance failed; the partitions are given up.");
                Rebalance::Error(rdkafka::error::KafkaError::Rebalance(code))
            }
        };
        self.pre_rebalance(consumer, &rebalance);
        let done = match (err == ASSIGN, self.cooperative) {
            (true, true) => consumer.incremental_assign(partitions),
            (true, false) => consumer.assign(partitions),
            (false, true) => consumer.incremental_unassign(partitions),
            (false, false) => consumer.unassign(),
        };
        if let Err(error) = done {
            tracing::warn!(%error, group = %self.group, "Applying a rebalance failed.");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let elements = partitions.elements();
            self.revoked.lock().expect("revoked lock").extend(
                elements
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition())),
            );
            for e in &elements {
                self.assigned.end(e.topic(), e.partition());
            }
            self.lag
                .revoked(elements.iter().map(|e| (e.topic(), e.partition())));
            // Commit what was acknowledged; the rest is left for the new owner to read again. Not while
            // the consumer closes: the pipeline committed at its end (`Acknowledge::close`), librdkafka
            // commits the stored offsets of the partitions it revokes itself (auto-commit), and a
            // synchronous commit from this callback can wait for ever then (seen: a scale-out test's
            // shutdown hung here, librdkafka's main thread idle; see [`Closing`]).
            if self.closing.load(Ordering::SeqCst) {
                tracing::info!(group = %self.group, partitions = %list(partitions), "Partitions revoked at close.");
                return;
            }
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(())
                | Err(rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset,
                )) => {}
                Err(error) => {
                    tracing::warn!(%error, "Commit before revocation failed; the new owner re-reads from the last commit.")
                }
            }
            tracing::info!(group = %self.group, partitions = %list(partitions), "Partitions revoked.");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.metrics.kafka_rebalances.inc();
        self.generation.fetch_add(1, Ordering::SeqCst);
        match rebalance {
            Rebalance::Assign(partitions) => {
                let elements = partitions.elements();
                self.lag
                    .assigned(elements.iter().map(|e| (e.topic(), e.partition())));
                self.health.ready("running");
                tracing::info!(group = %self.group, partitions = %list(partitions), "Partitions assigned.");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "Rebalance failed."),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.metrics.kafka_commits.with_label_values(&["ok"]).inc(),
            // Nothing new to commit is not a failure.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(error) => {
                self.metrics
                    .kafka_commits
                    .with_label_values(&["error"])
                    .inc();
                tracing::warn!(%error, "Offset commit failed; librdkafka retries at the next interval.");
            }
        }
    }
}

fn list(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shared settings and the consumer's own, with our default unless the user set it: a bounded
/// prefetch queue.
pub(super) fn consumer_config(
    kafka: &KafkaSettings,
    settings: &KafkaSourceSettings,
) -> rdkafka::ClientConfig {
    let mut config = client_config(kafka, &settings.options);
    crate::kafka::set_default(&mut config, "queued.max.messages.kbytes", "16384");
    config
}

/// The live source's consumer configuration: the shared settings, the consumer's own, its group and
/// our commit settings.
pub fn source_config(
    kafka: &KafkaSettings,
    settings: &KafkaSourceSettings,
) -> rdkafka::ClientConfig {
    let mut config = consumer_config(kafka, settings);
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            settings.commit_interval.as_millis().to_string(),
        )
        .set("auto.offset.reset", &settings.auto_offset_reset)
        .set("statistics.interval.ms", "5000");
    config
}

/// Polled on a dedicated thread: librdkafka's callbacks (rebalances, logs, statistics) are served from
/// `poll`, and a blocked `send` into a full channel simply stops polling (backpressure).
pub(super) type KafkaConsumer = BaseConsumer<SourceContext>;

/// How long dropping the consumer may take before the pipeline goes on without it.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The consumer the source and its acknowledger share, closed on a thread of its own when the last of
/// them lets go, and waited for at most [`CLOSE_WAIT`]. Dropping a consumer closes it: it leaves the
/// group and serves the final revocation through [`SourceContext::rebalance`], and librdkafka can block
/// for ever in calls made from that callback while it closes (`rd_kafka_rebalance_protocol`, commits,
/// assignments: librdkafka issues 4041 and 4884). Seen here twice at a scale-out test's shutdown, a tokio
/// worker stuck in the drop and the pipeline never returning. What the pipeline acknowledged was committed
/// before ([`Acknowledge::close`]), so a close given up on loses nothing: its partitions are read again
/// from that commit by their next owner.
pub(super) struct Closing(Option<KafkaConsumer>);

impl Closing {
    fn new(consumer: KafkaConsumer) -> Closing {
        Closing(Some(consumer))
    }
}

impl std::ops::Deref for Closing {
    type Target = KafkaConsumer;

    fn deref(&self) -> &KafkaConsumer {
        self.0
            .as_ref()
            .expect("the consumer is there until dropped")
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else {
            return;
        };
        consumer.context().closing.store(true, Ordering::SeqCst);
        let group = consumer.context().group.clone();
        if !drop_within(consumer, CLOSE_WAIT) {
            tracing::warn!(%group, wait = ?CLOSE_WAIT, "The Kafka consumer did not close in time; going on without it (its partitions are read again from the last commit).");
        }
    }
}

/// Drops `value` on a thread of its own and waits at most `wait` for it: whether it was dropped in time.
/// A drop that takes longer goes on on that thread.
fn drop_within<T: Send + 'static>(value: T, wait: Duration) -> bool {
    let (done, dropped) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || {
            drop(value);
            let _ = done.send(());
        });
    // Without a thread (the spawn failed and dropped the value here), the drop is done.
    spawned.is_err() || dropped.recv_timeout(wait).is_ok()
}

/// The Kafka source.
pub struct KafkaSource {
    consumer: Arc<Closing>,
    settings: KafkaSourceSettings,
    brokers: String,
    health: Health,
    /// Where the committed watermarks of assigned partitions go, and where they are recorded besides the
    /// commits (`None`: neither).
    watermarks: Option<(Assignments, Arc<Floors>)>,
    /// The partitions kept in step by event time while the windows fill, and how long a partition
    /// polled without a record is idle (`None`: not kept in step).
    alignment: Option<(Arc<Alignment>, Duration)>,
}

impl KafkaSource {
    pub fn new(
        kafka: &KafkaSettings,
        settings: KafkaSourceSettings,
        metrics: &Metrics,
        health: &Health,
    ) -> Result<KafkaSource, SourceError> {
        let config = source_config(kafka, &settings);
        let context = SourceContext {
            metrics: metrics.clone(),
            lag: metrics.consumer_lag(),
            health: health.clone(),
            group: settings.group_id.clone(),
            generation: AtomicU64::new(0),
            revoked: Default::default(),
            assigned: Assigned::default(),
            cooperative: config
                .get("partition.assignment.strategy")
                .is_some_and(|s| s.split(',').all(|s| s.trim() == "cooperative-sticky")),
            closing: AtomicBool::new(false),
        };
        let consumer: KafkaConsumer = config
            .create_with_context(context)
            .map_err(|e| KafkaFailure::new("creating the consumer", e))?;
        Ok(KafkaSource {
            consumer: Arc::new(Closing::new(consumer)),
            settings,
            brokers: kafka.brokers.clone(),
            health: health.clone(),
            watermarks: None,
            alignment: None,
        })
    }

    /// Keeps the partitions in step by event time while a windowed hunt's state fills: one more than
    /// `max_lead` ahead of the oldest is paused (`super::align`, gated). A partition polled for
    /// `idle_timeout` without a record (caught up, or its leader unreachable) holds no one back.
    pub fn with_alignment(mut self, max_lead: Duration, idle_timeout: Duration) -> KafkaSource {
        self.alignment = Some((Alignment::under_pressure(max_lead), idle_timeout));
        self
    }

    /// Reads, for each partition it is assigned, the watermark its last commit was made through, into
    /// `into`, before the partition's first record.
    pub fn with_committed_watermarks(
        mut self,
        kafka: &KafkaSettings,
        into: Assignments,
    ) -> Result<KafkaSource, SourceError> {
        let floors = Floors::new(kafka, &self.settings)?;
        self.watermarks = Some((into, Arc::new(floors)));
        Ok(self)
    }

    /// Waits until the cluster answers, saying so in the log and on /healthz.
    async fn wait_for_brokers(&self, shutdown: &CancellationToken) -> bool {
        let mut attempt = 0u32;
        loop {
            let consumer = Arc::clone(&self.consumer);
            let answer = tokio::task::spawn_blocking(move || {
                consumer
                    .fetch_metadata(None, Duration::from_secs(3))
                    .map(|_| ())
            })
            .await
            .expect("metadata request does not panic");
            match answer {
                Ok(()) => return true,
                Err(error) => {
                    let status = format!("waiting for Kafka at {}", self.brokers);
                    self.health.not_ready(&status);
                    if attempt.is_multiple_of(10) {
                        tracing::warn!(brokers = %self.brokers, %error, "Waiting for the Kafka brokers to answer.");
                    }
                    attempt += 1;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// The name of a partition's input, `topic[partition]`: shown in logs and metrics, and the key under which
/// the partition's assignment and floor are kept.
pub(super) fn partition_name(topic: &str, partition: i32) -> String {
    format!("{topic}[{partition}]")
}

/// A new input for (one assignment of) a partition.
pub(super) fn partition_input(topic: &str, partition: i32) -> Arc<Input> {
    Input::new(
        partition_name(topic, partition),
        InputKind::Kafka {
            topic: topic.to_string(),
            partition,
        },
    )
}

/// Polls messages into chunks until shutdown or until the pipeline is gone.
fn poll_loop(
    consumer: &KafkaConsumer,
    tx: &RecordSender,
    shutdown: &CancellationToken,
    watermarks: Option<(&Assignments, &Floors)>,
    alignment: Option<(&Arc<Alignment>, Duration)>,
) {
    let mut inputs: HashMap<(String, i32), Arc<Input>> = HashMap::new();
    // The input of the chunk's latest record: records come in runs of one partition, and a run's
    // records need no lookup (until the chunk is sent: see `InStepPartitions::heard`).
    let mut current: Option<Arc<Input>> = None;
    let mut in_step = InStepPartitions::default();
    let mut chunk: Vec<RawRecord> = Vec::with_capacity(CHUNK_RECORDS);
    let mut chunk_bytes = 0usize;
    // The payloads are copied into shared blocks, one allocation for many records.
    let mut payloads = CutBuffer::default();
    let mut last_error: Option<Instant> = None;
    let mut generation = 0;
    let mut assigned: HashSet<(String, i32)> = HashSet::new();
    while !shutdown.is_cancelled() {
        // After a rebalance, tell the pipeline which partitions are inputs now: an assigned partition
        // holds the watermark back until its first event; a revoked one no longer does.
        let now_generation = consumer.context().generation.load(Ordering::SeqCst);
        if now_generation != generation {
            generation = now_generation;
            current = None;
            if !chunk.is_empty()
                && tx
                    .blocking_send(SourceMessage::Records(std::mem::take(&mut chunk)))
                    .is_err()
            {
                return;
            }
            let now: HashSet<(String, i32)> = consumer
                .assignment()
                .map(|tpl| {
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect()
                })
                .unwrap_or_default();
            // A partition revoked and assigned again in one rebalance is read again from its last
            // commit: to the pipeline it stops and starts like any other.
            let renewed: HashSet<(String, i32)> =
                std::mem::take(&mut *consumer.context().revoked.lock().expect("revoked lock"))
                    .into_iter()
                    .filter(|k| assigned.contains(k) && now.contains(k))
                    .collect();
            for key in &renewed {
                in_step.end(key);
                if let Some(input) = inputs.get(key)
                    && tx
                        .blocking_send(SourceMessage::Stopped(Arc::clone(input)))
                        .is_err()
                {
                    return;
                }
            }
            let started: Vec<(String, i32)> = now
                .iter()
                .filter(|k| !assigned.contains(*k) || renewed.contains(*k))
                .cloned()
                .collect();
            if let Some(into) = watermarks
                && !started.is_empty()
            {
                read_committed_watermarks(consumer, &started, into);
            }
            for key in &started {
                let input = consumer.context().assigned.begin(&key.0, key.1);
                if let Some((alignment, _)) = alignment {
                    in_step.begin(key, || alignment.register(&input.name));
                }
                inputs.insert(key.clone(), Arc::clone(&input));
                if tx.blocking_send(SourceMessage::Started(input)).is_err() {
                    return;
                }
            }
            for key in assigned.difference(&now) {
                in_step.end(key);
                if let Some(input) = inputs.get(key)
                    && tx
                        .blocking_send(SourceMessage::Stopped(Arc::clone(input)))
                        .is_err()
                {
                    return;
                }
            }
            assigned = now;
        }
        // The first message of a chunk may wait a little; the rest are taken while they are there.
        let wait = if chunk.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        match consumer.poll(wait) {
            Some(Ok(message)) => {
                let (topic, partition) = (message.topic(), message.partition());
                let input = match &current {
                    Some(input) if is_partition(input, topic, partition) => input,
                    _ => {
                        in_step.heard(topic, partition);
                        current.insert(Arc::clone(
                            inputs
                                .entry((topic.to_string(), partition))
                                .or_insert_with(|| partition_input(topic, partition)),
                        ))
                    }
                };
                let bytes = payloads.copy(message.payload().unwrap_or_default(), CHUNK_BYTES);
                chunk_bytes += bytes.len();
                chunk.push(RawRecord {
                    input: Arc::clone(input),
                    offset: message.offset() as u64,
                    bytes,
                    received: Instant::now(),
                    source_timestamp: message.timestamp().to_millis(),
                });
                if chunk.len() < CHUNK_RECORDS && chunk_bytes < CHUNK_BYTES {
                    continue;
                }
            }
            // Logged at most every 10 s: librdkafka retries by itself.
            Some(Err(error))
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) =>
            {
                tracing::warn!(%error, "Kafka consumer error; retrying.");
                last_error = Some(Instant::now());
            }
            Some(Err(_)) | None => {}
        }
        if !chunk.is_empty() {
            // A full channel blocks this thread: no polling until the pipeline catches up.
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
            chunk_bytes = 0;
            let sending = Instant::now();
            if tx.blocking_send(SourceMessage::Records(full)).is_err() {
                return;
            }
            in_step.blocked += sending.elapsed();
            current = None;
        }
        if let Some((_, idle_timeout)) = alignment {
            in_step.realign(consumer, idle_timeout);
        }
    }
}

/// Stores acknowledged offsets; commits them on close.
struct KafkaAcknowledge {
    consumer: Arc<Closing>,
    /// Where floors are recorded before offsets are stored with them (the repartition topic's reader).
    floors: Option<Arc<Floors>>,
}

impl Acknowledge for KafkaAcknowledge {
    fn acknowledge_through(&self, positions: &Positions, watermark: Option<i64>) {
        let Some(watermark) = watermark else {
            return self.acknowledge(positions);
        };
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in self.consumer.context().assigned.current(positions) {
            if let Some(floors) = &self.floors
                && !floors.cover(topic, partition, watermark)
            {
                continue;
            }
            // The next message to read, with the watermark the windows were evaluated through.
            if tpl
                .add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset as i64 + 1))
                .is_ok()
                && let Some(mut e) = tpl.find_partition(topic, partition)
            {
                e.set_metadata(format!("{WATERMARK_METADATA}{watermark}"));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(error) = self.consumer.store_offsets(&tpl) {
            // A partition revoked meanwhile: its new owner reads it again from the last commit.
            tracing::debug!(%error, "Offsets not stored (partition no longer assigned).");
        }
    }

    fn acknowledge(&self, positions: &Positions) {
        for (topic, partition, offset) in self.consumer.context().assigned.current(positions) {
            // librdkafka stores offset + 1: the next message to read.
            if let Err(error) = self.consumer.store_offset(topic, partition, offset as i64) {
                // A partition revoked meanwhile: its new owner reads it again from the last commit.
                tracing::debug!(%topic, partition, offset, %error, "Offset not stored (partition no longer assigned).");
            }
        }
    }

    fn replays_unacknowledged(&self) -> bool {
        true
    }

    fn close(&self) {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("Committed the acknowledged offsets."),
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(error) => {
                tracing::warn!(%error, "Final commit failed; the last acknowledged records will be read again.")
            }
        }
    }
}

impl Source for KafkaSource {
    fn event_times(&self) -> Option<Arc<dyn EventTimes>> {
        self.alignment
            .as_ref()
            .map(|(a, _)| Arc::clone(a) as Arc<dyn EventTimes>)
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        Arc::new(KafkaAcknowledge {
            consumer: Arc::clone(&self.consumer),
            floors: self.watermarks.as_ref().map(|(_, f)| Arc::clone(f)),
        })
    }

    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            if !self.wait_for_brokers(&shutdown).await {
                return Ok(());
            }
            let subscription: Vec<String> = match &self.settings.topic_pattern {
                // librdkafka treats a subscription starting with ^ as a regular expression.
                Some(p) if p.starts_with('^') => vec![p.clone()],
                Some(p) => vec![format!("^{p}")],
                None => self.settings.topics.clone(),
            };
            let names: Vec<&str> = subscription.iter().map(String::as_str).collect();
            self.consumer
                .subscribe(&names)
                .map_err(|e| KafkaFailure::new(format!("subscribing to {names:?}"), e))?;
            self.health.ready("joining the consumer group");
            tracing::info!(topics = ?names, group = %self.settings.group_id, "Subscribed.");
            let consumer = Arc::clone(&self.consumer);
            let stop = shutdown.clone();
            let watermarks = self.watermarks.clone();
            let alignment = self.alignment.clone();
            tokio::task::spawn_blocking(move || {
                poll_loop(
                    &consumer,
                    &tx,
                    &stop,
                    watermarks.as_ref().map(|(a, f)| (a, &**f)),
                    alignment.as_ref().map(|(a, idle)| (a, *idle)),
                )
            })
            .await
            .expect("the Kafka poll loop does not panic");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer's close that hangs (librdkafka) does not hang the pipeline dropping it.
    #[test]
    fn a_drop_that_hangs_is_left_on_its_own_thread_after_the_wait() {
        // Blocks until released (at most 10 s, so that a drop made in place fails the test).
        struct Hangs(std::sync::mpsc::Receiver<()>);
        impl Drop for Hangs {
            fn drop(&mut self) {
                let _ = self.0.recv_timeout(Duration::from_secs(10));
            }
        }
        let (release, hold) = std::sync::mpsc::channel();
        let started = Instant::now();
        assert!(!drop_within(Hangs(hold), Duration::from_millis(200)));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        release.send(()).unwrap();
        // A drop that finishes in time is waited for.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        drop(tx);
        assert!(drop_within(Hangs(rx), Duration::from_secs(5)));
    }

    #[test]
    fn only_positions_of_a_partitions_current_assignment_are_stored() {
        let assigned = Assigned::default();
        let first = assigned.begin("events", 0);
        let other = assigned.begin("events", 1);
        let positions = |input: &Arc<Input>, offset| {
            let mut p = Positions::default();
            p.note(input, offset);
            p
        };
        assert_eq!(
            assigned.current(&positions(&first, 7)),
            vec![("events", 0, 7)]
        );
        // Revoked: nothing read under that assignment is stored, even once it is assigned again.
        assigned.end("events", 0);
        assert!(assigned.current(&positions(&first, 9)).is_empty());
        let second = assigned.begin("events", 0);
        assert!(
            assigned.current(&positions(&first, 9)).is_empty(),
            "a record of the earlier assignment"
        );
        assert_eq!(
            assigned.current(&positions(&second, 3)),
            vec![("events", 0, 3)]
        );
        // Another partition's assignment is its own; inputs that are not Kafka partitions never are.
        assert_eq!(
            assigned.current(&positions(&other, 5)),
            vec![("events", 1, 5)]
        );
        let file = Input::new(
            "a.jsonl",
            InputKind::File {
                path: "a.jsonl".into(),
                first: None,
            },
        );
        assert!(assigned.current(&positions(&file, 1)).is_empty());
    }
}
