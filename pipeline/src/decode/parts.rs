//! One batch decoded on several threads: its records cut into consecutive parts, each decoded on a thread
//! of its own, and the parts joined in order into the batch one thread would have made.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::{ColumnBuilder, DeadLetter, DecodedBatch, Decoder};
use crate::source::{Input, Positions, RawRecord};

impl Decoder {
    /// [`Decoder::decode`] on up to `threads` threads: the records are cut into consecutive parts of at
    /// least [`MIN_PART_BYTES`] each (one part, on the calling thread, for a batch under twice that),
    /// decoded at once and joined in their order, so the batch is the same as one decoded whole.
    pub fn decode_on(&self, seq: u64, records: Vec<RawRecord>, threads: usize) -> DecodedBatch {
        let total = (records.len(), bytes(&records));
        let parts: Vec<(usize, Vec<RawRecord>)> =
            split(records, threads).into_iter().enumerate().collect();
        let decoded = crate::parallel::in_order(parts, "decode-part", |(i, p)| {
            // The first part's builders take in the others': room for the whole batch.
            let room = if i == 0 { total } else { (p.len(), bytes(&p)) };
            self.decode_part(p, room)
        });
        self.join(seq, decoded)
    }

    /// The batch of parts decoded from consecutive records, in their order: each column's builders are
    /// joined and the column finished once, as a batch decoded whole.
    fn join(&self, seq: u64, mut parts: Vec<Part>) -> DecodedBatch {
        let mut all = parts.remove(0);
        let mut rows = all.records.len();
        for part in &mut parts {
            let offset = u32::try_from(rows).expect("batches hold fewer than 2^32 rows");
            for (builder, next) in all.builders.iter_mut().zip(part.builders.drain(..)) {
                builder.extend(next, offset);
            }
            rows += part.records.len();
            all.bytes += part.bytes;
        }
        self.sizes
            .note(all.bytes, all.builders.iter().map(ColumnBuilder::size));
        let columns: Vec<ArrayRef> = std::mem::take(&mut all.builders)
            .into_iter()
            .map(|b| b.finish(rows))
            .collect();
        for part in parts {
            all.records.extend(part.records);
            all.dead_letters.extend(part.dead_letters);
            for (input, offset) in &part.positions.0 {
                all.positions.note(input, *offset);
            }
            for (input, time) in part.input_times {
                match all
                    .input_times
                    .iter_mut()
                    .find(|(i, _)| Arc::ptr_eq(i, &input))
                {
                    Some((_, t)) => *t = (*t).max(time),
                    None => all.input_times.push((input, time)),
                }
            }
            all.received = all.received.min(part.received);
        }
        let batch = RecordBatch::try_new(Arc::clone(self.schema.arrow()), columns)
            .expect("builders follow the schema");
        self.metrics.batch(
            all.records.len() + all.dead_letters.len(),
            all.bytes,
            batch.num_rows(),
        );
        DecodedBatch {
            seq,
            batch,
            records: all.records,
            dead_letters: all.dead_letters,
            positions: all.positions,
            input_times: all.input_times,
            received: all.received,
            bytes: all.bytes,
            started: Vec::new(),
            stopped: Vec::new(),
            generation: 0,
            parts: Vec::new(),
            partitions: Vec::new(),
            masks: None,
        }
    }
}

/// The smallest part of a batch decoded on a thread of its own: below it, starting a thread and joining
/// the parts' columns would cost a large share of what the second thread saves.
pub const MIN_PART_BYTES: usize = 1 << 20;

/// What one part of a batch decoded into (its rows counted from 0).
pub(super) struct Part {
    pub(super) builders: Vec<ColumnBuilder>,
    pub(super) records: Vec<RawRecord>,
    pub(super) dead_letters: Vec<DeadLetter>,
    pub(super) positions: Positions,
    pub(super) input_times: Vec<(Arc<Input>, Option<i64>)>,
    pub(super) received: Instant,
    pub(super) bytes: usize,
}

fn bytes(records: &[RawRecord]) -> usize {
    records.iter().map(|r| r.bytes.len()).sum()
}

/// `records` cut into at most `threads` consecutive parts of about the same bytes, each of at least
/// [`MIN_PART_BYTES`] (one part, never none).
pub(super) fn split(mut records: Vec<RawRecord>, threads: usize) -> Vec<Vec<RawRecord>> {
    let total = bytes(&records);
    let parts = threads.min(total / MIN_PART_BYTES).max(1);
    if parts == 1 {
        return vec![records];
    }
    // A part ends once it holds its share of the bytes, if what is left makes a part too.
    let share = total / parts;
    let mut starts = Vec::with_capacity(parts - 1);
    let (mut part, mut seen) = (0usize, 0usize);
    for (i, r) in records.iter().enumerate() {
        if starts.len() == parts - 1 {
            break;
        }
        if part >= share && total - seen >= MIN_PART_BYTES {
            starts.push(i);
            part = 0;
        }
        part += r.bytes.len();
        seen += r.bytes.len();
    }
    let mut out = Vec::with_capacity(starts.len() + 1);
    for &start in starts.iter().rev() {
        out.push(records.split_off(start));
    }
    out.push(records);
    out.reverse();
    out
}
