//! Bytes → Arrow: micro-batches of raw records decoded into `RecordBatch`es of the event schema.
//!
//! [`run_batcher`] takes chunks from the source channel, cuts a batch at `batch_size` records,
//! `batch_timeout` after its first record or (adaptive) when nothing more is ready and the hunts wait, and [`Decoder::decode`] turns it into a [`DecodedBatch`]: the rows
//! that decoded, the records behind them (kept until the batch is acknowledged, for late dead letters), the
//! dead letters, and the positions to acknowledge.

mod columns;
pub mod fields;
pub mod json;
mod parts;
pub mod schema;
mod walk;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use crate::source::{Input, Positions, RawRecord, SourceMessage};
use crate::telemetry::metrics::{DecodeMetrics, Metrics};
use columns::{ColumnBuilder, SizeHints};
use fields::FieldMap;
pub use parts::MIN_PART_BYTES;
use parts::Part;
#[cfg(test)]
use parts::split;
pub use schema::{ColumnType, EventSchema};
use walk::Staging;

/// Why a record could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    Oversized,
    InvalidUtf8,
    InvalidJson,
    NotAnObject,
    WrongType,
    MissingTimestamp,
    BadTimestamp,
    /// Its hunt's window had closed when it arrived.
    Late,
    /// Its event time is too far ahead of the wall clock (`window.max_future`).
    Future,
    /// A record of the repartition topic this instance cannot use (another version of the hunt, a hunt
    /// it does not run, or not a repartition record).
    Repartition,
}

impl DeadLetterReason {
    /// The label used in metrics and dead-letter records.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Oversized => "oversized",
            DeadLetterReason::InvalidUtf8 => "invalid_utf8",
            DeadLetterReason::InvalidJson => "invalid_json",
            DeadLetterReason::NotAnObject => "not_an_object",
            DeadLetterReason::WrongType => "wrong_type",
            DeadLetterReason::MissingTimestamp => "missing_timestamp",
            DeadLetterReason::BadTimestamp => "bad_timestamp",
            DeadLetterReason::Future => "future",
            DeadLetterReason::Late => "late",
            DeadLetterReason::Repartition => "repartition",
        }
    }
}

/// A record the pipeline could not use, with everything needed to find and replay it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub reason: DeadLetterReason,
    pub detail: String,
    pub input: Arc<Input>,
    pub offset: u64,
    pub bytes: bytes::Bytes,
    /// The source's own timestamp of the record, if it has one (ms since the epoch).
    pub source_timestamp: Option<i64>,
}

/// One decoded micro-batch.
#[derive(Debug)]
pub struct DecodedBatch {
    /// Increasing from 0; acknowledgements follow this order.
    pub seq: u64,
    /// The rows that decoded, in the event schema.
    pub batch: RecordBatch,
    /// The record behind each row of `batch` (same order); for repartitioned input, the message behind
    /// each of `parts`.
    pub records: Vec<RawRecord>,
    /// Rows repartitioned to this instance (see [`crate::runtime::Part`]); empty for events.
    pub parts: Vec<crate::runtime::Part>,
    /// Repartition partitions' watermarks after the batch; empty for events.
    pub partitions: Vec<crate::runtime::PartitionTime>,
    pub dead_letters: Vec<DeadLetter>,
    pub positions: Positions,
    /// Per input seen in this batch: its highest event time (ns), if any row of it decoded.
    pub input_times: Vec<(Arc<Input>, Option<i64>)>,
    /// When the oldest record of the batch was received.
    pub received: Instant,
    pub bytes: usize,
    /// Inputs that began before this batch (they hold the watermark back until their first event).
    pub started: Vec<Arc<Input>>,
    /// Inputs that ended after this batch (they no longer hold the watermark back).
    pub stopped: Vec<Arc<Input>>,
    /// Which decoder made it (see [`Decoders`]).
    pub generation: u64,
    /// The hunts' row filters, where the source answered them (see [`crate::runtime::HuntMasks`]).
    pub masks: crate::runtime::HuntMasks,
}

/// Decodes raw records with one schema.
pub struct Decoder {
    schema: Arc<EventSchema>,
    /// The schema's paths, compiled for the one-pass walk.
    fields: FieldMap,
    max_record_bytes: usize,
    metrics: DecodeMetrics,
    /// How much each column held in the batches decoded so far (builders take that room at once).
    sizes: SizeHints,
}

impl Decoder {
    pub fn new(schema: Arc<EventSchema>, max_record_bytes: usize, metrics: &Metrics) -> Decoder {
        Decoder {
            fields: FieldMap::new(&schema),
            sizes: SizeHints::new(schema.columns.len()),
            schema,
            max_record_bytes,
            metrics: metrics.decode(),
        }
    }

    /// Decodes one micro-batch on the calling thread. Bad records become dead letters; the others go on.
    pub fn decode(&self, seq: u64, records: Vec<RawRecord>) -> DecodedBatch {
        self.decode_on(seq, records, 1)
    }

    /// Decodes consecutive records into rows of their own (rows counted from 0). The builders take room
    /// for `room`: records and their bytes (the whole batch's for the part the others are joined to).
    fn decode_part(&self, records: Vec<RawRecord>, room: (usize, usize)) -> Part {
        let mut builders: Vec<ColumnBuilder> = self
            .schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnBuilder::with_capacity(c.ty, self.sizes.room(i, room.0, room.1)))
            .collect();
        let mut staging = Staging::new(builders.len());
        let mut kept = Vec::with_capacity(records.len());
        let mut dead_letters = Vec::new();
        let mut positions = Positions::default();
        let mut input_times: Vec<(Arc<Input>, Option<i64>)> = Vec::new();
        let mut received = Instant::now();
        let mut bytes = 0usize;

        for record in records {
            received = received.min(record.received);
            bytes += record.bytes.len();
            positions.note(&record.input, record.offset);
            let slot = match input_times
                .iter()
                .position(|(i, _)| Arc::ptr_eq(i, &record.input))
            {
                Some(i) => i,
                None => {
                    input_times.push((Arc::clone(&record.input), None));
                    input_times.len() - 1
                }
            };
            let outcome = if record.bytes.len() > self.max_record_bytes {
                Err(json::Refusal {
                    reason: DeadLetterReason::Oversized,
                    detail: format!(
                        "record of more than {} bytes (decode.max_record_bytes); kept truncated",
                        self.max_record_bytes
                    ),
                })
            } else {
                let row = u32::try_from(kept.len()).expect("batches hold fewer than 2^32 rows");
                staging
                    .walk(&self.fields, &record.bytes)
                    .and_then(|()| staging.commit(&self.schema, &mut builders, row))
            };
            match outcome {
                Ok(time) => {
                    let max = &mut input_times[slot].1;
                    *max = Some(max.map_or(time, |m| m.max(time)));
                    kept.push(record);
                }
                Err(refusal) => {
                    self.metrics.failure(refusal.reason.as_str());
                    dead_letters.push(DeadLetter {
                        reason: refusal.reason,
                        detail: refusal.detail,
                        input: record.input,
                        offset: record.offset,
                        bytes: record.bytes,
                        source_timestamp: record.source_timestamp,
                    });
                }
            }
        }
        Part {
            builders,
            records: kept,
            dead_letters,
            positions,
            input_times,
            received,
            bytes,
        }
    }
}

/// Keeps the rows whose event time is in `[from, to)` (an open end is unbounded): a retro-hunt over
/// files. The rows outside are dropped, not dead-lettered — they are out of the range asked for — and
/// still count for the watermark (their input's newest time is kept).
pub fn keep_time_range(
    mut decoded: DecodedBatch,
    time_index: usize,
    from: Option<i64>,
    to: Option<i64>,
) -> DecodedBatch {
    use datafusion::arrow::array::Array;
    let Some(times) = event_times(&decoded.batch, time_index) else {
        return decoded;
    };
    let keep: Vec<bool> = (0..times.len())
        .map(|i| {
            !times.is_null(i)
                && from.is_none_or(|f| times.value(i) >= f)
                && to.is_none_or(|t| times.value(i) < t)
        })
        .collect();
    if keep.iter().all(|k| *k) {
        return decoded;
    }
    keep_rows(&mut decoded, keep);
    decoded
}

/// The event-time column of a decoded batch (`None` if it is not nanosecond timestamps).
fn event_times(
    batch: &RecordBatch,
    time_index: usize,
) -> Option<&datafusion::arrow::array::TimestampNanosecondArray> {
    batch.column(time_index).as_any().downcast_ref()
}

/// Keeps the rows of `decoded` (and their records) that `keep` marks. The answers the source gave for
/// the rows before the cut are dropped: the hunts evaluate their own.
fn keep_rows(decoded: &mut DecodedBatch, keep: Vec<bool>) {
    decoded.batch = datafusion::arrow::compute::filter_record_batch(
        &decoded.batch,
        &datafusion::arrow::array::BooleanArray::from(keep.clone()),
    )
    .expect("a mask of the batch's length");
    let mut k = keep.into_iter();
    decoded.records.retain(|_| k.next().unwrap_or(false));
    decoded.masks = None;
}

/// Turns the rows whose event time is more than `max_future` ahead of `now` (ns) into dead letters
/// (`future`), rows of the generator (whose event time runs at its own speed) and of the lake (written
/// before) aside. Such a row would move its input's newest time, and with it the watermark, that far
/// on: every event after it would be late. The inputs' newest times are those of the rows kept.
pub fn future_to_dead_letters(
    mut decoded: DecodedBatch,
    time_index: usize,
    max_future: Duration,
    now: i64,
) -> DecodedBatch {
    use datafusion::arrow::array::Array;
    let limit = now.saturating_add(i64::try_from(max_future.as_nanos()).unwrap_or(i64::MAX));
    let Some(times) = event_times(&decoded.batch, time_index) else {
        return decoded;
    };
    let checked = |r: &RawRecord| {
        !matches!(
            r.input.kind,
            crate::source::InputKind::Generator | crate::source::InputKind::Lake
        )
    };
    let ahead =
        |i: usize| !times.is_null(i) && times.value(i) > limit && checked(&decoded.records[i]);
    if !(0..times.len()).any(ahead) {
        return decoded;
    }
    let keep: Vec<bool> = (0..times.len()).map(|i| !ahead(i)).collect();
    let mut newest: Vec<(Arc<Input>, Option<i64>)> = Vec::new();
    for (i, record) in decoded.records.iter().enumerate() {
        let entry = match newest
            .iter()
            .position(|(input, _)| Arc::ptr_eq(input, &record.input))
        {
            Some(k) => &mut newest[k].1,
            None => {
                newest.push((Arc::clone(&record.input), None));
                &mut newest.last_mut().expect("just pushed").1
            }
        };
        if keep[i] && !times.is_null(i) {
            *entry = Some(entry.map_or(times.value(i), |t: i64| t.max(times.value(i))));
        }
        if !keep[i] {
            let time = times.value(i);
            decoded.dead_letters.push(DeadLetter {
                reason: DeadLetterReason::Future,
                detail: format!(
                    "event time {} is {} ahead of this machine's clock, beyond window.max_future ({}): a clock set wrong would make every event after it late",
                    json::format_time(time),
                    humantime::format_duration(Duration::from_secs(
                        u64::try_from((time - now) / 1_000_000_000).unwrap_or(0)
                    )),
                    humantime::format_duration(max_future),
                ),
                input: Arc::clone(&record.input),
                offset: record.offset,
                bytes: record.bytes.clone(),
                source_timestamp: record.source_timestamp,
            });
        }
    }
    // Inputs of this batch keep the newest time of their rows kept (none: no time from this batch).
    for (input, time) in &mut decoded.input_times {
        if let Some((_, kept)) = newest.iter().find(|(i, _)| Arc::ptr_eq(i, input)) {
            *time = *kept;
        }
    }
    keep_rows(&mut decoded, keep);
    decoded
}

/// How many of the pending records the next batch takes: at most `batch_size`, and no more than fit in
/// `batch_bytes` (at least one: a record larger than that is a batch of its own).
fn batch_len(pending: &[RawRecord], batch_size: usize, batch_bytes: usize) -> usize {
    let mut bytes = 0usize;
    let mut n = 0usize;
    for r in pending.iter().take(batch_size) {
        bytes += r.bytes.len();
        if n > 0 && bytes > batch_bytes {
            break;
        }
        n += 1;
    }
    n.max(1).min(pending.len())
}

/// A decoding step: records of one batch (with its sequence number) → the decoded batch. The last
/// argument is how many threads the step may keep busy for it (see [`threads_per_decode`]).
pub type DecodeFn = Arc<dyn Fn(u64, Vec<RawRecord>, usize) -> DecodedBatch + Send + Sync>;

/// The decoder in force and its generation. A hot reload whose hunts read other columns sends a new one;
/// batches say which generation decoded them, so the pipeline switches hunt sets at the first batch of the
/// new schema.
pub type Decoders = tokio::sync::watch::Receiver<(u64, DecodeFn)>;

/// What woke the batcher.
enum Wake {
    Message(Option<SourceMessage>),
    /// The oldest batch being decoded is done.
    Decoded(Result<DecodedBatch, tokio::task::JoinError>),
    Timeout,
    /// The hunts took a decoded batch: there is room for the next (adaptive batching).
    Room,
    /// A new decoder (false: the sender is gone, no new decoder will come).
    Decoder(bool),
}

/// When [`run_batcher`] cuts a batch.
#[derive(Debug, Clone)]
pub struct Batching {
    /// Records per batch at most.
    pub size: usize,
    /// Record bytes per batch at most (a larger record is a batch of its own).
    pub bytes: usize,
    /// The longest a record waits for its batch to fill.
    pub timeout: Duration,
    /// Cut as soon as the source has nothing more ready and the decoded-batch channel has room: at a low
    /// rate a record is decoded when it arrives instead of `timeout` later, while under load (the source
    /// channel never empty, or the hunts behind and the channel full) batches fill as before.
    pub adaptive: bool,
    /// An early cut comes at least this long after the previous cut: at a low rate records gather for
    /// this long instead of `timeout`, so the hunts run a bounded number of times per second.
    pub adaptive_interval: Duration,
    /// Batches decoded at once, at least 1 (see [`decoders_in_flight`]); the pipeline changes it when a
    /// reload changes how many cores the hunts' steps keep busy.
    pub decoders: tokio::sync::watch::Receiver<usize>,
}

/// Cuts the record stream into micro-batches and decodes them, until the source channel closes.
/// Decoding runs on blocking threads, `batching.decoders` batches at once (its value when a batch is
/// cut; each may use the cores the others leave, [`threads_per_decode`]), overlapping with the hunts of
/// the batches before; decoded batches go on in the order they were cut. Input announcements cut the
/// batch where they arrive, so that they keep their place among the records. A new decoder cuts the batch
/// too (records received before it are decoded by the old one) and is announced by an empty batch of its
/// generation.
pub async fn run_batcher(
    mut decoders: Decoders,
    mut rx: mpsc::Receiver<SourceMessage>,
    tx: mpsc::Sender<DecodedBatch>,
    batching: Batching,
) {
    let Batching {
        size: batch_size,
        bytes: batch_bytes,
        timeout: batch_timeout,
        adaptive,
        adaptive_interval,
        decoders: in_flight,
    } = batching;
    // When the last batch was cut: an early cut waits until `adaptive_interval` after it.
    let mut last_cut = tokio::time::Instant::now()
        .checked_sub(adaptive_interval)
        .unwrap_or_else(tokio::time::Instant::now);
    let (mut generation, mut decode) = decoders.borrow_and_update().clone();
    let mut watching = true;
    let mut seq = 0u64;
    let mut pending: Vec<RawRecord> = Vec::new();
    // Bytes of the records in `pending`: a batch is also cut at `batch_bytes`.
    let mut pending_bytes = 0usize;
    let mut deadline: Option<tokio::time::Instant> = None;
    // Batches being decoded (each on a blocking thread), oldest first, with their decoder's generation:
    // they are sent on in this order, whichever finishes first.
    let mut decoding: Decoding = VecDeque::new();
    loop {
        // Room downstream, counting the batches still being decoded.
        let room = tx.capacity().saturating_sub(decoding.len());
        // With records pending, adaptive batching may cut them as early as `adaptive_interval` after the
        // last cut (if the source has nothing more by then). Without room downstream the Room branch
        // wakes us instead (a past instant here would spin).
        let early =
            (adaptive && !pending.is_empty() && room > 0).then(|| last_cut + adaptive_interval);
        let wake_at = match (deadline, early) {
            (Some(d), Some(e)) => Some(d.min(e)),
            (d, e) => d.or(e),
        };
        let sleep = wake_at.map(tokio::time::sleep_until);
        // Records wait while every decoded-batch slot is taken; wake when the hunts free one.
        let wait_for_room = adaptive && !pending.is_empty() && tx.capacity() == 0;
        let wake = tokio::select! {
            biased;
            changed = decoders.changed(), if watching => Wake::Decoder(changed.is_ok()),
            done = async { (&mut decoding.front_mut().expect("guarded").0).await },
                if !decoding.is_empty() => Wake::Decoded(done),
            message = rx.recv() => Wake::Message(message),
            // The permit is dropped at once: it only tells that a slot is free.
            _ = tx.reserve(), if wait_for_room => Wake::Room,
            _ = async { sleep.expect("guarded").await }, if sleep.is_some() => Wake::Timeout,
        };
        let mut announcement = None;
        let mut switch = false;
        let closed = match wake {
            Wake::Message(Some(SourceMessage::Records(chunk))) => {
                if pending.is_empty() && !chunk.is_empty() {
                    deadline = Some(tokio::time::Instant::now() + batch_timeout);
                }
                pending_bytes += chunk.iter().map(|r| r.bytes.len()).sum::<usize>();
                pending.extend(chunk);
                false
            }
            Wake::Message(Some(other)) => {
                announcement = Some(other);
                false
            }
            Wake::Message(None) => true,
            Wake::Decoded(done) => {
                let (_, made_by) = decoding.pop_front().expect("the batch just decoded");
                if !send_decoded(done, made_by, &tx).await {
                    return;
                }
                false
            }
            Wake::Timeout | Wake::Room => false, // flush below
            Wake::Decoder(true) => {
                switch = true;
                false
            }
            Wake::Decoder(false) => {
                watching = false;
                false
            }
        };
        let timed_out = deadline.is_some_and(|at| tokio::time::Instant::now() >= at);
        // Nothing more is ready and there is room downstream: waiting would only delay. While the hunts
        // are behind (no room), records gather into one batch, so batches grow with the load.
        let room = tx.capacity().saturating_sub(decoding.len());
        let idle = adaptive
            && rx.is_empty()
            && room > 0
            && tokio::time::Instant::now() >= last_cut + adaptive_interval;
        let cut = timed_out || closed || switch || announcement.is_some() || idle;
        while pending.len() >= batch_size
            || pending_bytes >= batch_bytes
            || (cut && !pending.is_empty())
        {
            let take = batch_len(&pending, batch_size, batch_bytes);
            last_cut = tokio::time::Instant::now();
            let records: Vec<RawRecord> = pending.drain(..take).collect();
            pending_bytes -= records.iter().map(|r| r.bytes.len()).sum::<usize>();
            let step = Arc::clone(&decode);
            let s = seq;
            seq += 1;
            let in_flight = (*in_flight.borrow()).max(1);
            let threads = threads_per_decode(in_flight);
            decoding.push_back((
                tokio::task::spawn_blocking(move || step(s, records, threads)),
                generation,
            ));
            if !send_oldest(&mut decoding, in_flight - 1, &tx).await {
                return;
            }
        }
        // An announcement, a new decoder or the end comes after every batch cut before it.
        if (announcement.is_some() || switch || closed) && !send_oldest(&mut decoding, 0, &tx).await
        {
            return;
        }
        if switch {
            (generation, decode) = decoders.borrow_and_update().clone();
        }
        if announcement.is_some() || switch {
            let mut decoded = match announcement {
                Some(SourceMessage::Decoded {
                    batch,
                    records,
                    newest,
                    masks,
                }) => {
                    let input_times = records
                        .first()
                        .map(|r| vec![(Arc::clone(&r.input), newest)])
                        .unwrap_or_default();
                    DecodedBatch {
                        seq,
                        batch,
                        received: records
                            .iter()
                            .map(|r| r.received)
                            .min()
                            .unwrap_or_else(Instant::now),
                        records,
                        dead_letters: Vec::new(),
                        positions: Positions::default(),
                        input_times,
                        bytes: 0,
                        started: Vec::new(),
                        stopped: Vec::new(),
                        generation,
                        parts: Vec::new(),
                        partitions: Vec::new(),
                        masks,
                    }
                }
                Some(SourceMessage::Started(input)) => {
                    let mut d = decode(seq, Vec::new(), 1);
                    d.started.push(input);
                    d
                }
                Some(SourceMessage::Stopped(input)) => {
                    let mut d = decode(seq, Vec::new(), 1);
                    d.stopped.push(input);
                    d
                }
                Some(SourceMessage::Records(_)) => unreachable!("records are handled above"),
                None => decode(seq, Vec::new(), 1),
            };
            decoded.seq = seq;
            decoded.generation = generation;
            seq += 1;
            if tx.send(decoded).await.is_err() {
                return;
            }
        }
        if pending.is_empty() {
            deadline = None;
        }
        if closed {
            return;
        }
    }
}

/// Batches being decoded, oldest first, with their decoder's generation.
type Decoding = VecDeque<(tokio::task::JoinHandle<DecodedBatch>, u64)>;

/// Waits for the oldest batches being decoded and sends them on until at most `keep` are left; false when
/// the hunts are gone.
async fn send_oldest(
    decoding: &mut Decoding,
    keep: usize,
    tx: &mpsc::Sender<DecodedBatch>,
) -> bool {
    while decoding.len() > keep {
        let (oldest, made_by) = decoding.pop_front().expect("more than `keep`");
        if !send_decoded(oldest.await, made_by, tx).await {
            return false;
        }
    }
    true
}

/// Sends a batch decoded with decoder `generation` on; false when the hunts are gone.
async fn send_decoded(
    done: Result<DecodedBatch, tokio::task::JoinError>,
    generation: u64,
    tx: &mpsc::Sender<DecodedBatch>,
) -> bool {
    // A decoder panic ends the batcher with it: the pipeline reports it and exits non-zero.
    let mut decoded = crate::runtime::blocking_result(done).await;
    decoded.generation = generation;
    tx.send(decoded).await.is_ok()
}

/// How many batches to decode at once beside hunts whose step keeps up to `step_threads` cores busy: a
/// batch per core the hunts leave to it, at most four. The SQL hunts run one per task: two batches at once on
/// two cores (one at a time kept a second core half idle: +9 % events/s). A Sigma rule set splitting each
/// batch over both cores already keeps them busy: one batch, since a second one only held a batch more in
/// memory (OTRF, all rules: 367 against 334 MiB peak RSS, no faster; benches/README.md); that batch is
/// decoded on both cores instead ([`threads_per_decode`]).
///
/// `step_threads` is the most any one evaluator's step keeps busy ([`crate::runtime::Evaluator::threads`]).
pub fn decoders_in_flight(step_threads: usize) -> usize {
    (crate::parallel::cores() / step_threads.max(1)).clamp(1, 4)
}

/// The threads one batch is decoded on while `in_flight` batches are decoded at once: the cores the other
/// batches leave. Beside a Sigma rule set that splits each batch over every core (one batch in decoding)
/// a batch is decoded on every core too; beside SQL hunts (a batch per core, up to four) on one, or on
/// more where four batches leave cores idle (eight cores and up).
pub fn threads_per_decode(in_flight: usize) -> usize {
    (crate::parallel::cores() / in_flight.max(1)).max(1)
}

#[cfg(test)]
mod tests;
