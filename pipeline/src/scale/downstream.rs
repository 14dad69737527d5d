//! The receiving side: the repartition topic's records, read in the instance's repartition consumer group,
//! become batches whose `parts` feed the windowed hunts this instance owns keys of.
//!
//! Each partition's watermark is the least over the instances sending to it that are live: an instance
//! that said it is idle or leaving, or has sent nothing for `window.idle_timeout`, no longer holds it back
//! (the same idle rule as for source partitions). A partition with no live sender is reported stopped, so
//! that when every sender is idle the windows close as they do for a single instance whose inputs are
//! all idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;

use super::frame::{self, Frame, WatermarkMark};
use crate::decode::{DeadLetter, DeadLetterReason, DecodeFn, DecodedBatch};
use crate::runtime::Part;
use crate::source::{Input, InputKind, Positions, RawRecord};
use crate::telemetry::Metrics;

/// What one sender last said on one partition.
#[derive(Debug, Clone)]
struct Sender {
    watermark: Option<i64>,
    idle: bool,
    seen: Instant,
}

/// Turns repartition records into batches; remembers every sender's watermark per partition.
pub struct Inbox {
    /// Fingerprint of each repartitioned hunt this instance runs, by id.
    hunts: HashMap<String, String>,
    empty: RecordBatch,
    idle_timeout: Duration,
    /// Per partition (input name): per sending instance, its last watermark.
    senders: Mutex<HashMap<String, HashMap<String, Sender>>>,
    /// The instance each partition's watermark gauge names, to drop the series when it changes.
    held_by: Mutex<HashMap<String, String>>,
    metrics: Metrics,
}

impl Inbox {
    pub fn new(
        hunts: HashMap<String, String>,
        events: RecordBatch,
        idle_timeout: Duration,
        metrics: &Metrics,
    ) -> Arc<Inbox> {
        Arc::new(Inbox {
            hunts,
            empty: events,
            idle_timeout,
            senders: Mutex::default(),
            held_by: Mutex::default(),
            metrics: metrics.clone(),
        })
    }

    /// The pipeline's decoding step for the repartition topic.
    pub fn decoder(self: &Arc<Inbox>) -> DecodeFn {
        let inbox = Arc::clone(self);
        Arc::new(move |seq, records| inbox.decode(seq, records, Instant::now()))
    }

    fn decode(&self, seq: u64, records: Vec<RawRecord>, now: Instant) -> DecodedBatch {
        let mut kept: Vec<RawRecord> = Vec::new();
        let mut parts = Vec::new();
        let mut dead_letters = Vec::new();
        let mut positions = Positions::default();
        let mut touched: Vec<Arc<Input>> = Vec::new();
        let mut received = now;
        let mut bytes = 0;
        let mut senders = self.senders.lock().expect("senders lock");
        for record in records {
            received = received.min(record.received);
            bytes += record.bytes.len();
            positions.note(&record.input, record.offset);
            if !touched.iter().any(|i| Arc::ptr_eq(i, &record.input)) {
                touched.push(Arc::clone(&record.input));
            }
            let refuse = |detail: String, record: RawRecord| DeadLetter {
                reason: DeadLetterReason::Repartition,
                detail,
                input: record.input,
                offset: record.offset,
                bytes: record.bytes,
                source_timestamp: record.source_timestamp,
            };
            match frame::decode(&record.bytes) {
                Ok(Frame::Watermark(WatermarkMark {
                    instance,
                    watermark,
                    idle,
                })) => {
                    let sender = Sender {
                        watermark,
                        idle,
                        seen: now,
                    };
                    senders
                        .entry(record.input.name.clone())
                        .or_default()
                        .insert(instance, sender);
                }
                Ok(Frame::Rows {
                    hunt,
                    fingerprint,
                    batch,
                }) => match self.hunts.get(&hunt) {
                    Some(ours) if *ours == fingerprint => match frame::split_origins(batch) {
                        Ok((batch, origins)) => {
                            parts.push(Part {
                                hunt,
                                fingerprint,
                                batch,
                                record: kept.len(),
                                origins,
                            });
                            kept.push(record);
                        }
                        Err(e) => {
                            dead_letters.push(refuse(format!("rows of hunt {hunt}: {e}"), record))
                        }
                    },
                    Some(ours) => dead_letters.push(refuse(
                        format!(
                            "{} rows of hunt {hunt} as selected by its version {fingerprint}; this instance runs version {ours}: run the same hunt files on every instance",
                            batch.num_rows()
                        ),
                        record,
                    )),
                    None => dead_letters.push(refuse(
                        format!(
                            "{} rows of hunt {hunt}, which this instance does not run as a repartitioned hunt: run the same hunt files on every instance",
                            batch.num_rows()
                        ),
                        record,
                    )),
                },
                Err(e) => dead_letters.push(refuse(
                    format!("not a repartition record: {e}"),
                    record,
                )),
            }
        }
        let mut input_times = Vec::new();
        let mut stopped = Vec::new();
        for input in touched {
            let on = senders.get(&input.name);
            let live: Vec<(&String, &Sender)> = on
                .into_iter()
                .flatten()
                .filter(|(_, s)| {
                    !s.idle && now.saturating_duration_since(s.seen) < self.idle_timeout
                })
                .collect();
            if live.is_empty() {
                if on.is_some() {
                    stopped.push(input);
                } else {
                    // Rows before any watermark: the partition is active, its time not known yet.
                    input_times.push((input, None));
                }
                continue;
            }
            let holding = live
                .iter()
                .min_by_key(|(_, s)| s.watermark.unwrap_or(i64::MIN));
            let watermark = live
                .iter()
                .map(|(_, s)| s.watermark)
                .collect::<Option<Vec<i64>>>()
                .and_then(|w| w.into_iter().min());
            if let (Some((instance, _)), Some(w)) = (holding, watermark) {
                self.observe(&input, instance, w);
            }
            input_times.push((input, watermark));
        }
        drop(senders);
        DecodedBatch {
            seq,
            batch: self.empty.clone(),
            records: kept,
            parts,
            dead_letters,
            positions,
            input_times,
            received,
            bytes,
            started: Vec::new(),
            stopped,
            generation: 0,
        }
    }

    /// Exports a partition's watermark lag and the instance holding it back.
    fn observe(&self, input: &Input, instance: &str, watermark: i64) {
        let partition = match &input.kind {
            InputKind::Kafka { partition, .. } => partition.to_string(),
            _ => input.name.clone(),
        };
        let mut held_by = self.held_by.lock().expect("held_by lock");
        if let Some(old) = held_by.insert(partition.clone(), instance.to_string())
            && old != instance
        {
            let _ = self
                .metrics
                .repartition_watermark_lag
                .remove_label_values(&[&partition, &old]);
        }
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        self.metrics
            .repartition_watermark_lag
            .with_label_values(&[&partition, instance])
            .set((wall - watermark) as f64 / 1e9);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::TimestampNanosecondArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn record(partition: i32, offset: u64, bytes: Vec<u8>) -> RawRecord {
        RawRecord {
            input: Input::new(
                format!("r[{partition}]"),
                InputKind::Kafka {
                    topic: "r".into(),
                    partition,
                },
            ),
            offset,
            bytes,
            received: Instant::now(),
            source_timestamp: None,
        }
    }

    fn mark(instance: &str, watermark: Option<i64>, idle: bool) -> Vec<u8> {
        frame::encode_watermark(&WatermarkMark {
            instance: instance.into(),
            watermark,
            idle,
        })
    }

    fn inbox() -> Arc<Inbox> {
        Inbox::new(
            HashMap::from([("spray".to_string(), "v1".to_string())]),
            RecordBatch::new_empty(Arc::new(Schema::empty())),
            Duration::from_secs(10),
            &Metrics::new(),
        )
    }

    #[test]
    fn a_partition_waits_for_its_slowest_live_sender() {
        let inbox = inbox();
        let t0 = Instant::now();
        let d = inbox.decode(
            0,
            vec![
                record(0, 1, mark("a", Some(500), false)),
                record(0, 2, mark("b", Some(300), false)),
            ],
            t0,
        );
        assert_eq!(d.input_times[0].1, Some(300));
        let d = inbox.decode(1, vec![record(0, 3, mark("b", Some(900), false))], t0);
        assert_eq!(d.input_times[0].1, Some(500), "a is now the one behind");
        let d = inbox.decode(2, vec![record(0, 4, mark("c", None, false))], t0);
        assert_eq!(
            d.input_times[0].1, None,
            "a sender without event time yet holds the partition"
        );
        let d = inbox.decode(3, vec![record(0, 5, mark("c", Some(100), true))], t0);
        assert_eq!(
            d.input_times[0].1,
            Some(500),
            "an idle sender holds no one back"
        );
        let later = t0 + Duration::from_secs(11);
        let d = inbox.decode(4, vec![record(0, 6, mark("b", Some(950), false))], later);
        assert_eq!(
            d.input_times[0].1,
            Some(950),
            "a sender silent for the idle timeout is gone"
        );
        let d = inbox.decode(5, vec![record(0, 7, mark("b", Some(990), true))], later);
        assert!(d.input_times.is_empty());
        assert_eq!(
            d.stopped.len(),
            1,
            "no live sender: the partition stops holding the watermark"
        );
        assert_eq!(d.positions.0[0].1, 7);
    }

    #[test]
    fn rows_of_other_hunt_versions_and_foreign_records_are_dead_letters() {
        let inbox = inbox();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        )]));
        let rows = RecordBatch::try_new(
            schema,
            vec![Arc::new(
                TimestampNanosecondArray::from(vec![1, 2]).with_timezone("UTC"),
            )],
        )
        .unwrap();
        let d = inbox.decode(
            0,
            vec![
                record(1, 1, frame::encode_rows("spray", "v1", &rows).unwrap()),
                record(1, 2, frame::encode_rows("spray", "v2", &rows).unwrap()),
                record(1, 3, frame::encode_rows("other", "v1", &rows).unwrap()),
                record(1, 4, b"{\"not\":\"ours\"}".to_vec()),
            ],
            Instant::now(),
        );
        assert_eq!(d.parts.len(), 1);
        assert_eq!((d.parts[0].record, d.parts[0].batch.num_rows()), (0, 2));
        assert_eq!(d.records.len(), 1);
        let offsets: Vec<u64> = d.dead_letters.iter().map(|l| l.offset).collect();
        assert_eq!(offsets, vec![2, 3, 4]);
        assert!(
            d.dead_letters[0].detail.contains("version v2"),
            "{}",
            d.dead_letters[0].detail
        );
        assert!(
            d.dead_letters
                .iter()
                .all(|l| l.reason == DeadLetterReason::Repartition)
        );
        assert_eq!(
            d.positions.0[0].1, 4,
            "dead letters are acknowledged with the rest"
        );
    }
}
