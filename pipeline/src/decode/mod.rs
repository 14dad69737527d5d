//! Bytes → Arrow: micro-batches of raw records decoded into `RecordBatch`es of the event schema.
//!
//! [`run_batcher`] takes chunks from the source channel, cuts a batch at `batch_size` records or
//! `batch_timeout` after its first record, and [`Decoder::decode`] turns it into a [`DecodedBatch`]: the rows
//! that decoded, the records behind them (kept until the batch is acknowledged, for late dead letters), the
//! dead letters, and the positions to acknowledge.

mod columns;
pub mod fields;
pub mod json;
pub mod schema;
mod walk;

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use crate::source::{Input, Positions, RawRecord, SourceMessage};
use crate::telemetry::metrics::{DecodeMetrics, Metrics};
use columns::ColumnBuilder;
use fields::FieldMap;
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
            DeadLetterReason::Late => "late",
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
    pub bytes: Vec<u8>,
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
    /// The record behind each row of `batch` (same order).
    pub records: Vec<RawRecord>,
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
}

/// Decodes raw records with one schema.
pub struct Decoder {
    schema: Arc<EventSchema>,
    /// The schema's paths, compiled for the one-pass walk.
    fields: FieldMap,
    max_record_bytes: usize,
    metrics: DecodeMetrics,
}

impl Decoder {
    pub fn new(schema: Arc<EventSchema>, max_record_bytes: usize, metrics: &Metrics) -> Decoder {
        Decoder {
            fields: FieldMap::new(&schema),
            schema,
            max_record_bytes,
            metrics: metrics.decode(),
        }
    }

    /// Decodes one micro-batch. Bad records become dead letters; the others go on.
    pub fn decode(&self, seq: u64, records: Vec<RawRecord>) -> DecodedBatch {
        let mut builders: Vec<ColumnBuilder> = self
            .schema
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(c.ty))
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
                    self.metrics.failure(refusal.reason);
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
        let rows = kept.len();
        let arrays: Vec<ArrayRef> = builders.into_iter().map(|b| b.finish(rows)).collect();
        let batch = RecordBatch::try_new(Arc::clone(self.schema.arrow()), arrays)
            .expect("builders follow the schema");
        self.metrics
            .batch(kept.len() + dead_letters.len(), bytes, batch.num_rows());
        DecodedBatch {
            seq,
            batch,
            records: kept,
            dead_letters,
            positions,
            input_times,
            received,
            bytes,
            started: Vec::new(),
            stopped: Vec::new(),
        }
    }
}

/// Cuts the record stream into micro-batches and decodes them, until the source channel closes.
/// Decoding runs on a blocking thread so that it overlaps with the hunts of the previous batch. Input
/// announcements cut the batch where they arrive, so that they keep their place among the records.
pub async fn run_batcher(
    decoder: Arc<Decoder>,
    mut rx: mpsc::Receiver<SourceMessage>,
    tx: mpsc::Sender<DecodedBatch>,
    batch_size: usize,
    batch_timeout: Duration,
) {
    let mut seq = 0u64;
    let mut pending: Vec<RawRecord> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            Some(at) => tokio::select! {
                message = rx.recv() => Some(message),
                _ = tokio::time::sleep_until(at) => None,
            },
            None => Some(rx.recv().await),
        };
        let mut announcement = None;
        let closed = match next {
            Some(Some(SourceMessage::Records(chunk))) => {
                if pending.is_empty() && !chunk.is_empty() {
                    deadline = Some(tokio::time::Instant::now() + batch_timeout);
                }
                pending.extend(chunk);
                false
            }
            Some(Some(other)) => {
                announcement = Some(other);
                false
            }
            Some(None) => true,
            None => false, // timeout: flush below
        };
        let timed_out = deadline.is_some_and(|at| tokio::time::Instant::now() >= at);
        let cut = timed_out || closed || announcement.is_some();
        while pending.len() >= batch_size || (cut && !pending.is_empty()) {
            let take = pending.len().min(batch_size);
            let records: Vec<RawRecord> = pending.drain(..take).collect();
            let decoder = Arc::clone(&decoder);
            let s = seq;
            seq += 1;
            let decoded = tokio::task::spawn_blocking(move || decoder.decode(s, records))
                .await
                .expect("decoding does not panic");
            if tx.send(decoded).await.is_err() {
                return;
            }
        }
        if let Some(message) = announcement {
            let mut decoded = decoder.decode(seq, Vec::new());
            seq += 1;
            match message {
                SourceMessage::Started(input) => decoded.started.push(input),
                SourceMessage::Stopped(input) => decoded.stopped.push(input),
                SourceMessage::Records(_) => unreachable!("records are handled above"),
            }
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

#[cfg(test)]
mod tests;
