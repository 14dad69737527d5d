//! The sending side: on the instance that decodes an event, each repartitioned hunt's rows that pass its
//! filter go to the repartition topic, to the partition of their key; then where each of its source
//! partitions stands goes to every partition (after the rows, so a receiver never sees progress before
//! the rows it covers: one producer keeps the order per partition). The pipeline acknowledges the source only after
//! [`Repartitioner::send`] returned, i.e. after the broker acknowledged every record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::frame::{self, InputMark, WatermarkMark};
use crate::alert::SinkError;
use crate::alert::kafka::KafkaWriter;
use crate::query::{Placement, PlannedHunt};
use crate::runtime::Routed;
use crate::source::RawRecord;
use crate::telemetry::Metrics;

/// The shortest time between two watermark records that only move it forward.
const WATERMARK_EVERY: Duration = Duration::from_millis(100);

/// One repartitioned hunt as the sender sees it.
struct Sent {
    planned: Arc<PlannedHunt>,
    /// Event columns of the key; `None`: every row goes to one partition.
    key: Option<Vec<usize>>,
    /// Columns the rows travel with (those the hunt reads and event time).
    columns: Vec<usize>,
    fingerprint: String,
}

/// Sends windowed hunts' rows and this instance's watermark to the repartition topic.
pub struct Repartitioner {
    hunts: Vec<Sent>,
    writer: KafkaWriter,
    topic: String,
    partitions: i32,
    instance: String,
    /// The last progress sent and when.
    last: Option<(WatermarkMark, Instant)>,
    /// A live instance sends its progress at least this often (a receiver that hears from no one for
    /// `window.idle_timeout` treats its input as idle).
    heartbeat: Duration,
    metrics: Metrics,
}

impl Repartitioner {
    /// `hunts`: the windowed hunts whose placement is not row-local.
    pub fn new(
        hunts: Vec<Arc<PlannedHunt>>,
        time_index: usize,
        writer: KafkaWriter,
        (topic, partitions): (&str, i32),
        instance: String,
        heartbeat: Duration,
        metrics: &Metrics,
    ) -> Repartitioner {
        let hunts = hunts
            .into_iter()
            .map(|planned| Sent {
                key: match planned.placement() {
                    Placement::Keyed(k) => Some(k.clone()),
                    Placement::Single | Placement::RowLocal => None,
                },
                columns: planned.routed_columns(time_index),
                fingerprint: planned.fingerprint(),
                planned,
            })
            .collect();
        Repartitioner {
            hunts,
            writer,
            topic: topic.to_string(),
            partitions,
            instance,
            last: None,
            heartbeat,
            metrics: metrics.clone(),
        }
    }

    /// How many hunts it sends on.
    pub fn hunt_count(&self) -> usize {
        self.hunts.len()
    }

    /// Sends the rows of `batch` (whose records are `sources`, one per row) each hunt selects, then (when
    /// due) `inputs` — each source partition's newest event time and whether it is idle — and waits until
    /// the broker has them all. `now`: send the progress whatever the time since the last.
    /// `routed`: rows evaluators selected themselves (Sigma correlations' matches), from the same batch.
    pub async fn send(
        &mut self,
        batch: Option<(&RecordBatch, &[RawRecord])>,
        routed: Vec<Routed>,
        inputs: Vec<crate::window::InputProgress>,
        now: bool,
    ) -> Result<(), SinkError> {
        let mut records = Vec::new();
        if let Some((batch, sources)) = batch {
            for rows in &routed {
                match self.select_routed(rows, sources) {
                    Ok(mut r) => records.append(&mut r),
                    Err(e) => {
                        self.metrics
                            .hunt_errors
                            .with_label_values(&[&rows.hunt])
                            .inc();
                        tracing::error!(hunt = %rows.hunt, error = %e, "Encoding rows to repartition failed; this hunt's rows of the batch are lost.");
                    }
                }
            }
            for hunt in &self.hunts {
                match self.select(hunt, batch, sources) {
                    Ok(mut r) => records.append(&mut r),
                    Err(e) => {
                        self.metrics
                            .hunt_errors
                            .with_label_values(&[&hunt.planned.hunt.id])
                            .inc();
                        tracing::error!(hunt = %hunt.planned.hunt.id, error = %e, "Selecting rows to repartition failed; this hunt's rows of the batch are lost.");
                    }
                }
            }
        }
        let mark = WatermarkMark {
            instance: self.instance.clone(),
            inputs: inputs
                .into_iter()
                .map(|p| InputMark {
                    input: p.input,
                    newest: p.newest,
                    idle: p.quiet.is_some(),
                    quiet_ms: p
                        .quiet
                        .map(|q| u64::try_from(q.as_millis()).unwrap_or(u64::MAX)),
                })
                .collect(),
        };
        let due = match &self.last {
            None => true,
            Some((last, at)) => {
                // How long idle inputs have been quiet changes all the time: it goes with the heartbeat.
                now || at.elapsed() >= self.heartbeat
                    || (!same_progress(last, &mark) && at.elapsed() >= WATERMARK_EVERY)
            }
        };
        if due {
            let bytes = frame::encode_watermark(&mark);
            records.extend((0..self.partitions).map(|p| (p, self.instance.clone(), bytes.clone())));
        }
        if records.is_empty() {
            return Ok(());
        }
        self.writer.send_to_partitions(records).await?;
        if due {
            self.last = Some((mark, Instant::now()));
        }
        Ok(())
    }

    /// The records carrying `hunt`'s rows of `batch`, with their source positions: one per partition
    /// that gets any.
    fn select(
        &self,
        hunt: &Sent,
        batch: &RecordBatch,
        sources: &[RawRecord],
    ) -> Result<Vec<(i32, String, Vec<u8>)>, datafusion::error::DataFusionError> {
        let id = &hunt.planned.hunt.id;
        let mask = hunt.planned.prefilter_mask(batch, None)?;
        let passing: Vec<u32> = (0..batch.num_rows())
            .filter(|&row| {
                mask.as_ref()
                    .is_none_or(|m| m.is_valid(row) && m.value(row))
            })
            .map(|row| row as u32)
            .collect();
        if passing.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_partition: Vec<Vec<u32>> = vec![Vec::new(); self.partitions as usize];
        match &hunt.key {
            None => by_partition[partition_of(&[id.as_bytes()], self.partitions)].extend(&passing),
            Some(key) => {
                let key_columns: Vec<KeyColumn> = key
                    .iter()
                    .map(|&c| KeyColumn::new(batch.column(c)))
                    .collect::<Result<_, _>>()?;
                let mut parts: Vec<Vec<u8>> = Vec::with_capacity(key.len() + 1);
                for &row in &passing {
                    parts.clear();
                    parts.push(id.as_bytes().to_vec());
                    for column in &key_columns {
                        parts.push(column.value(row as usize));
                    }
                    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                    by_partition[partition_of(&refs, self.partitions)].push(row);
                }
            }
        }
        let projected = batch.project(&hunt.columns)?;
        let mut records = Vec::new();
        for (partition, rows) in by_partition.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let origins = rows.iter().map(|&r| &sources[r as usize]);
            let taken = compact(take_record_batch(
                &projected,
                &UInt32Array::from(rows.clone()),
            )?)?;
            records.push(self.record(id, &hunt.fingerprint, partition, &taken, origins)?);
        }
        Ok(records)
    }

    /// The records carrying rows an evaluator selected (`routed.rows` index `sources`), by key.
    fn select_routed(
        &self,
        routed: &Routed,
        sources: &[RawRecord],
    ) -> Result<Vec<(i32, String, Vec<u8>)>, datafusion::arrow::error::ArrowError> {
        let id = &routed.hunt;
        let mut by_partition: Vec<Vec<u32>> = vec![Vec::new(); self.partitions as usize];
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for (row, key) in routed.keys.iter().enumerate() {
            parts.clear();
            parts.push(id.as_bytes().to_vec());
            parts.extend(
                key.iter()
                    .map(|v| key_part(v.as_deref().map(str::as_bytes))),
            );
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            by_partition[partition_of(&refs, self.partitions)].push(row as u32);
        }
        let mut records = Vec::new();
        for (partition, rows) in by_partition.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let origins = rows
                .iter()
                .map(|&r| &sources[routed.rows[r as usize] as usize]);
            let taken = take_record_batch(&routed.batch, &UInt32Array::from(rows.clone()))?;
            records.push(self.record(id, &routed.fingerprint, partition, &taken, origins)?);
        }
        Ok(records)
    }

    /// One record of `id`'s rows for `partition`, each row with its source position (`origins`: the
    /// record each row came from), counted in the repartition metrics.
    fn record<'a>(
        &self,
        id: &str,
        fingerprint: &str,
        partition: usize,
        rows: &RecordBatch,
        origins: impl Iterator<Item = &'a RawRecord>,
    ) -> Result<(i32, String, Vec<u8>), datafusion::arrow::error::ArrowError> {
        let origins = origins.map(|r| (r.input.name.as_str(), r.offset));
        let bytes = frame::encode_rows(id, fingerprint, &frame::with_origins(rows, origins)?)?;
        self.metrics
            .repartition_rows
            .with_label_values(&[id])
            .inc_by(rows.num_rows() as u64);
        self.metrics
            .repartition_bytes
            .with_label_values(&[id])
            .inc_by(bytes.len() as u64);
        Ok((partition as i32, id.to_string(), bytes))
    }

    /// The repartition topic's name (for logs).
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// A key column's values as bytes (text as is, other types as displayed; NULL distinct from every value).
enum KeyColumn<'a> {
    Text(&'a ArrayRef),
    Other(&'a ArrayRef, ArrayFormatter<'a>),
}

impl<'a> KeyColumn<'a> {
    fn new(array: &'a ArrayRef) -> Result<KeyColumn<'a>, datafusion::error::DataFusionError> {
        Ok(match array.data_type() {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => KeyColumn::Text(array),
            _ => KeyColumn::Other(
                array,
                ArrayFormatter::try_new(array, &FormatOptions::default())?,
            ),
        })
    }

    fn value(&self, row: usize) -> Vec<u8> {
        let array = match self {
            KeyColumn::Text(a) | KeyColumn::Other(a, _) => a,
        };
        if array.is_null(row) {
            return key_part(None);
        }
        match self {
            KeyColumn::Text(a) => key_part(Some(match a.data_type() {
                DataType::Utf8View => a.as_string_view().value(row).as_bytes(),
                DataType::LargeUtf8 => a.as_string::<i64>().value(row).as_bytes(),
                _ => a.as_string::<i32>().value(row).as_bytes(),
            })),
            KeyColumn::Other(_, f) => key_part(Some(f.value(row).to_string().as_bytes())),
        }
    }
}

/// One value of a key as hashed: NULL distinct from every value (the empty string included).
fn key_part(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![0xff],
        Some(v) => [&[0x00], v].concat(),
    }
}

/// The partition of a key made of `parts`: FNV-1a over each part's length and bytes, so that every
/// instance (whatever its build or CPU) sends a key to the same partition.
pub fn partition_of(parts: &[&[u8]], partitions: i32) -> usize {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for part in parts {
        for b in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    (h % partitions.max(1) as u64) as usize
}

/// Whether two reports say the same but for how long idle inputs have been quiet.
fn same_progress(a: &WatermarkMark, b: &WatermarkMark) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs
            .iter()
            .zip(&b.inputs)
            .all(|(x, y)| (&x.input, x.newest, x.idle) == (&y.input, y.newest, y.idle))
}

/// Rows taken from a batch still share its text buffers; compacted, a record carries only their bytes.
fn compact(batch: RecordBatch) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Arc::new(c.as_string_view().gc()) as ArrayRef,
            _ => Arc::clone(c),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_goes_to_the_same_partition_and_keys_spread() {
        // Fixed values: a change here moves keys between partitions (instances of two versions would
        // then disagree), so it must be deliberate.
        assert_eq!(partition_of(&[b"spray", b"\x0010.0.0.5"], 12), 4);
        assert_eq!(partition_of(&[b"spray", b"\x0010.0.0.6"], 12), 1);
        let spread: std::collections::BTreeSet<usize> = (0..200)
            .map(|i| partition_of(&[b"spray", format!("\x0010.0.0.{i}").as_bytes()], 12))
            .collect();
        assert_eq!(
            spread.len(),
            12,
            "200 keys reach every one of 12 partitions"
        );
        assert_ne!(
            partition_of(&[b"ab", b"c"], 1 << 30),
            partition_of(&[b"a", b"bc"], 1 << 30),
            "parts are delimited by their lengths"
        );
    }
}
