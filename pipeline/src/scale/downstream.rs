//! The receiving side: the repartition topic's records, read in the instance's repartition consumer group,
//! become batches whose `parts` feed the windowed hunts this instance owns keys of.
//!
//! Senders report where each source partition they read stands. A repartition partition's watermark is
//! the least over the source partitions reported to it of their newest event time, leaving out those
//! their reader reports idle — the watermark one instance reading every source partition would have. A
//! source partition whose reader stopped (killed, or its partitions revoked) keeps holding it where it
//! was until its next reader reports it: rows that reader re-reads are not late. When every source
//! partition is idle, event time goes on at the wall clock's pace from where their readers last saw it,
//! as for a single instance whose inputs are all idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;

use super::frame::{self, Frame, WatermarkMark};
use crate::decode::{DeadLetter, DeadLetterReason, DecodeFn, DecodedBatch};
use crate::runtime::{Part, PartitionTime};
use crate::source::kafka::Assignments;
use crate::source::{Input, InputKind, Positions, RawRecord};
use crate::telemetry::Metrics;
use crate::window::Watermark;

/// A source partition as reported to one repartition partition.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The newest event time any reader reported (never goes back).
    newest: Option<i64>,
    /// Its reader's last report says it is idle.
    idle: bool,
    /// Idle: how long it had been quiet when its reader last reported it (ns).
    quiet: Option<i64>,
}

/// Per repartition partition (input name): the assignment epoch its progress was read under, and per
/// source partition its progress.
type PartitionProgress = HashMap<String, (u64, HashMap<String, Progress>)>;

/// Turns repartition records into batches; remembers every source partition's progress per partition.
pub struct Inbox {
    /// Fingerprint of each repartitioned hunt this instance runs, by id.
    hunts: HashMap<String, String>,
    empty: RecordBatch,
    /// Per repartition partition (input name): the assignment it was read under, and per source
    /// partition its progress (reset when the partition is assigned again: it is read again from its
    /// last commit).
    progress: Mutex<PartitionProgress>,
    /// The source partition each partition's watermark gauge names, to drop the series when it changes.
    held_by: Mutex<HashMap<String, String>>,
    /// Per partition, its assignment and the watermark its last commit was made through (kept by the
    /// source when the partition is assigned).
    committed: Assignments,
    /// The source partitions (input names) that exist: each holds every partition's watermark until a
    /// reader reports it, as an assigned partition holds a single instance's until its first event.
    sources: Vec<String>,
    metrics: Metrics,
    /// The last batch decoded: reports are applied in record order, one batch after the other (the
    /// pipeline decodes this topic one batch at a time).
    last_seq: Mutex<Option<u64>>,
}

impl Inbox {
    pub fn new(
        hunts: HashMap<String, String>,
        events: RecordBatch,
        committed: Assignments,
        sources: Vec<String>,
        metrics: &Metrics,
    ) -> Arc<Inbox> {
        Arc::new(Inbox {
            hunts,
            empty: events,
            progress: Mutex::default(),
            held_by: Mutex::default(),
            committed,
            sources,
            metrics: metrics.clone(),
            last_seq: Mutex::default(),
        })
    }

    /// The pipeline's decoding step for the repartition topic.
    pub fn decoder(self: &Arc<Inbox>) -> DecodeFn {
        let inbox = Arc::clone(self);
        // One thread: the inbox keeps each partition's progress in record order.
        Arc::new(move |seq, records, _threads| inbox.decode(seq, records, Instant::now()))
    }

    fn decode(&self, seq: u64, records: Vec<RawRecord>, now: Instant) -> DecodedBatch {
        let mut kept: Vec<RawRecord> = Vec::new();
        let mut parts = Vec::new();
        let mut dead_letters = Vec::new();
        let mut positions = Positions::default();
        let mut touched: Vec<Arc<Input>> = Vec::new();
        let mut received = now;
        let mut bytes = 0;
        let mut progress = self.progress.lock().expect("progress lock");
        let before = self.last_seq.lock().expect("seq lock").replace(seq);
        debug_assert!(
            before.is_none_or(|b| b < seq),
            "batch {seq} decoded after batch {before:?}: a watermark would come from reports after rows it has not seen"
        );
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
                Ok(Frame::Watermark(WatermarkMark { inputs, .. })) => {
                    let on = self.progress_of(&mut progress, &record.input.name);
                    for mark in inputs {
                        let p = on.entry(mark.input).or_insert(Progress {
                            newest: None,
                            idle: false,
                            quiet: None,
                        });
                        p.newest = p.newest.max(mark.newest);
                        p.idle = mark.idle;
                        p.quiet = mark
                            .idle
                            .then(|| mark.quiet_ms.map_or(0, |ms| ms as i64 * 1_000_000));
                    }
                }
                Ok(Frame::Rows {
                    hunt,
                    fingerprint,
                    batch,
                }) => match self.hunts.get(&hunt) {
                    Some(ours) if *ours == fingerprint => match frame::split_origins(batch) {
                        Ok((batch, origins)) => {
                            // Rows come before the report that follows them: whatever the last report
                            // said, their source partitions are not idle (their windows must not close
                            // before that report says where they stand).
                            let on = self.progress_of(&mut progress, &record.input.name);
                            let mut last: Option<&str> = None;
                            for (source, _) in &origins {
                                if last == Some(&**source) {
                                    continue;
                                }
                                last = Some(source);
                                on.entry(source.to_string())
                                    .or_insert(Progress {
                                        newest: None,
                                        idle: false,
                                        quiet: None,
                                    })
                                    .idle = false;
                            }
                            let partition: Arc<str> = Arc::from(record.input.name.as_str());
                            let floor = self.assignment(&record.input.name).floor;
                            parts.push(Part {
                                hunt,
                                fingerprint,
                                batch,
                                record: kept.len(),
                                origins,
                                partition,
                                floor,
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
        let mut partitions = Vec::new();
        for input in touched {
            let floor = self.assignment(&input.name).floor;
            let partition: Arc<str> = Arc::from(input.name.as_str());
            let sources: &HashMap<String, Progress> = self.progress_of(&mut progress, &input.name);
            if sources.is_empty() {
                // No source partition known or reported yet: the partition is active, its time not
                // known yet.
                input_times.push((input, None));
                continue;
            }
            let active: Vec<(&String, &Progress)> =
                sources.iter().filter(|(_, p)| !p.idle).collect();
            let watermark = if active.is_empty() {
                // Every source partition idle: event time goes on at the wall clock's pace from the
                // newest event time, since the last record of any, as for a single instance whose
                // inputs are all idle.
                let newest = sources.values().filter_map(|p| p.newest).max();
                let quiet = sources.values().filter_map(|p| p.quiet).min().unwrap_or(0);
                newest.map_or(Watermark::Unknown, |n| {
                    Watermark::AllIdle(n.saturating_add(quiet))
                })
            } else {
                let least = active
                    .iter()
                    .map(|(_, p)| p.newest)
                    .collect::<Option<Vec<i64>>>()
                    .and_then(|w| w.into_iter().min());
                if let Some(w) = least
                    && let Some((holding, _)) = active.iter().min_by_key(|(_, p)| p.newest)
                {
                    self.observe(&input, holding, w);
                }
                least.map_or(Watermark::Unknown, Watermark::At)
            };
            if tracing::enabled!(tracing::Level::DEBUG) {
                let mut seen: Vec<String> = sources
                    .iter()
                    .map(|(s, p)| {
                        format!("{s}={:?}{}", p.newest, if p.idle { " idle" } else { "" })
                    })
                    .collect();
                seen.sort();
                tracing::debug!(partition = %input.name, ?watermark, sources = %seen.join(", "), "Repartition watermark.");
            }
            input_times.push((
                input,
                match watermark {
                    Watermark::At(t) | Watermark::AllIdle(t) => Some(t),
                    Watermark::Unknown => None,
                },
            ));
            partitions.push(PartitionTime {
                partition,
                watermark,
                floor,
            });
        }
        drop(progress);
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
            stopped: Vec::new(),
            generation: 0,
            partitions,
            masks: None,
        }
    }

    /// The partition's current assignment (the default when the source keeps none).
    fn assignment(&self, partition: &str) -> crate::source::kafka::Assignment {
        self.committed
            .lock()
            .expect("assignments lock")
            .get(partition)
            .copied()
            .unwrap_or_default()
    }

    /// The progress reported on `partition` under its current assignment.
    fn progress_of<'a>(
        &self,
        progress: &'a mut PartitionProgress,
        partition: &str,
    ) -> &'a mut HashMap<String, Progress> {
        let epoch = self.assignment(partition).epoch;
        let entry = progress
            .entry(partition.to_string())
            .or_insert_with(|| (epoch, self.unreported()));
        if entry.0 != epoch {
            *entry = (epoch, self.unreported());
        }
        &mut entry.1
    }

    /// Every known source partition, not yet reported.
    fn unreported(&self) -> HashMap<String, Progress> {
        self.sources
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    Progress {
                        newest: None,
                        idle: false,
                        quiet: None,
                    },
                )
            })
            .collect()
    }

    /// Exports a partition's watermark lag and the source partition holding it back.
    fn observe(&self, input: &Input, holding: &str, watermark: i64) {
        let partition = match &input.kind {
            InputKind::Kafka { partition, .. } => partition.to_string(),
            _ => input.name.clone(),
        };
        let mut held_by = self.held_by.lock().expect("held_by lock");
        if let Some(old) = held_by.insert(partition.clone(), holding.to_string())
            && old != holding
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
            .with_label_values(&[&partition, holding])
            .set((wall - watermark) as f64 / 1e9);
    }
}

/// The watermark each repartition partition's windows were evaluated through — its own, the highest it
/// reached — which its commits carry, so that its next owner starts exactly there
/// ([`crate::window::WindowState::starting_at`]). Not the instance's watermark over all its partitions:
/// a partition ahead of the others closed windows beyond that, and its next owner would evaluate them
/// again from the rows after the commit only (a partial window, another alert).
#[derive(Debug, Default)]
pub struct EvaluatedThrough(HashMap<Arc<str>, i64>);

impl EvaluatedThrough {
    /// Notes where a batch moved its partitions (the windows it closed are evaluated in the same step)
    /// and forgets the revoked ones. A partition starts at its floor: the windows its previous owner
    /// evaluated stay evaluated in this owner's commits, whether or not its own watermark is known yet.
    pub fn observe(&mut self, partitions: &[PartitionTime], revoked: &[Arc<str>]) {
        for p in partitions {
            let reached = match p.watermark {
                Watermark::At(t) | Watermark::AllIdle(t) => p.floor.max(Some(t)),
                Watermark::Unknown => p.floor,
            };
            if let Some(t) = reached {
                let w = self.0.entry(Arc::clone(&p.partition)).or_insert(t);
                *w = (*w).max(t);
            }
        }
        for r in revoked {
            self.0.remove(r);
        }
    }

    /// Acknowledges `positions`, each partition's with its own watermark.
    pub fn acknowledge(&self, acker: &dyn crate::source::Acknowledge, positions: &Positions) {
        for (input, offset) in &positions.0 {
            let through = self.0.get(input.name.as_str()).copied();
            acker.acknowledge_through(&Positions(vec![(Arc::clone(input), *offset)]), through);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::TimestampNanosecondArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;
    use crate::scale::frame::InputMark;

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
            bytes: bytes.into(),
            received: Instant::now(),
            source_timestamp: None,
        }
    }

    /// A report from `instance` of its source partitions: (name, newest, idle).
    fn mark(instance: &str, inputs: &[(&str, Option<i64>, bool)]) -> Vec<u8> {
        frame::encode_watermark(&WatermarkMark {
            instance: instance.into(),
            inputs: inputs
                .iter()
                .map(|(input, newest, idle)| InputMark {
                    input: input.to_string(),
                    newest: *newest,
                    idle: *idle,
                    quiet_ms: None,
                })
                .collect(),
        })
    }

    fn inbox() -> Arc<Inbox> {
        Inbox::new(
            HashMap::from([("spray".to_string(), "v1".to_string())]),
            RecordBatch::new_empty(Arc::new(Schema::empty())),
            Assignments::default(),
            vec!["e[0]".into(), "e[1]".into()],
            &Metrics::new(),
        )
    }

    #[test]
    fn a_partition_waits_for_the_slowest_source_partition_whoever_reads_it() {
        let inbox = inbox();
        let t0 = Instant::now();
        let at = |inbox: &Inbox, seq, marks: Vec<Vec<u8>>| {
            let records = marks
                .into_iter()
                .enumerate()
                .map(|(i, m)| record(0, seq * 10 + i as u64, m))
                .collect();
            inbox.decode(seq, records, t0)
        };
        let wm = |d: &DecodedBatch| d.partitions[0].watermark;
        let d = at(&inbox, 0, vec![mark("a", &[("e[0]", Some(500), false)])]);
        assert_eq!(
            wm(&d),
            Watermark::Unknown,
            "e[1] exists and nobody reported it yet"
        );
        let d = at(&inbox, 1, vec![mark("b", &[("e[1]", Some(300), false)])]);
        assert_eq!(wm(&d), Watermark::At(300));
        let d = at(&inbox, 2, vec![mark("b", &[("e[1]", Some(900), false)])]);
        assert_eq!(wm(&d), Watermark::At(500), "e[0] is now the one behind");
        // b is killed; e[1] goes to c, which re-reads it from an older offset.
        let d = at(
            &inbox,
            3,
            vec![
                mark("c", &[("e[1]", None, false)]),
                mark("a", &[("e[0]", Some(1000), false)]),
            ],
        );
        assert_eq!(
            wm(&d),
            Watermark::At(900),
            "e[1] holds where its last reader left it"
        );
        let d = at(&inbox, 4, vec![mark("c", &[("e[1]", Some(700), false)])]);
        assert_eq!(wm(&d), Watermark::At(900), "never back");
        let d = at(&inbox, 5, vec![mark("c", &[("e[1]", Some(1200), false)])]);
        assert_eq!(wm(&d), Watermark::At(1000));
        let d = at(&inbox, 6, vec![mark("a", &[("e[0]", Some(1000), true)])]);
        assert_eq!(
            wm(&d),
            Watermark::At(1200),
            "an idle source partition holds no one back"
        );
        let d = at(&inbox, 7, vec![mark("c", &[("e[1]", Some(1300), true)])]);
        assert_eq!(
            wm(&d),
            Watermark::AllIdle(1300),
            "every source partition idle: the partition's windows close"
        );
        assert_eq!(d.positions.0[0].1, 70);
    }

    /// A batch of one event-time column.
    fn event_times(times: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        )]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(
                TimestampNanosecondArray::from(times.to_vec()).with_timezone("UTC"),
            )],
        )
        .unwrap()
    }

    /// Rows at `times` from source partition `source`, as a sender encodes them.
    fn rows_from(source: &str, times: &[i64]) -> Vec<u8> {
        let rows = event_times(times);
        let rows = frame::with_origins(&rows, times.iter().map(|&t| (source, t as u64))).unwrap();
        frame::encode_rows("spray", "v1", &rows).unwrap()
    }

    #[test]
    fn rows_from_a_source_partition_reported_idle_keep_its_windows_open_until_the_next_report() {
        let inbox = inbox();
        let d = inbox.decode(
            0,
            vec![record(
                0,
                0,
                mark(
                    "a",
                    &[("e[0]", Some(1000), true), ("e[1]", Some(1200), true)],
                ),
            )],
            Instant::now(),
        );
        assert_eq!(d.partitions[0].watermark, Watermark::AllIdle(1200));
        // e[0] wakes up: its rows arrive in one fetch, the report sent after them in the next.
        let d = inbox.decode(
            1,
            vec![record(0, 1, rows_from("e[0]", &[1300, 1310]))],
            Instant::now(),
        );
        assert_eq!(d.parts.len(), 1);
        assert_eq!(
            d.partitions[0].watermark,
            Watermark::At(1000),
            "e[0] sent rows: not idle, and where it stands is not reported yet"
        );
        let d = inbox.decode(
            2,
            vec![record(
                0,
                2,
                mark(
                    "a",
                    &[("e[0]", Some(1310), false), ("e[1]", Some(1200), true)],
                ),
            )],
            Instant::now(),
        );
        assert_eq!(d.partitions[0].watermark, Watermark::At(1310));
    }

    #[test]
    fn each_partition_is_acknowledged_through_its_own_watermark() {
        #[derive(Default)]
        struct Recorded(Mutex<Vec<(String, u64, Option<i64>)>>);
        impl crate::source::Acknowledge for Recorded {
            fn acknowledge_through(&self, positions: &Positions, watermark: Option<i64>) {
                for (input, offset) in &positions.0 {
                    self.0
                        .lock()
                        .unwrap()
                        .push((input.name.clone(), *offset, watermark));
                }
            }
        }
        let time = |partition: &str, watermark| PartitionTime {
            partition: Arc::from(partition),
            watermark,
            floor: None,
        };
        let mut through = EvaluatedThrough::default();
        through.observe(
            &[
                time("r[0]", Watermark::At(500)),
                time("r[1]", Watermark::At(300)),
                time("r[2]", Watermark::Unknown),
            ],
            &[],
        );
        // r[0]'s time going back (an idle pace ending) does not undo what it evaluated.
        through.observe(&[time("r[0]", Watermark::At(450))], &[]);
        let mut positions = Positions::default();
        for p in 0..3 {
            positions.note(&record(p, 7, Vec::new()).input, 7);
        }
        let acker = Recorded::default();
        through.acknowledge(&acker, &positions);
        assert_eq!(
            acker.0.lock().unwrap().clone(),
            vec![
                ("r[0]".into(), 7, Some(500)),
                ("r[1]".into(), 7, Some(300)),
                ("r[2]".into(), 7, None)
            ]
        );
        through.observe(&[], &[Arc::from("r[0]")]);
        let acker = Recorded::default();
        through.acknowledge(&acker, &positions);
        assert_eq!(
            acker.0.lock().unwrap()[0],
            ("r[0]".into(), 7, None),
            "revoked: forgotten"
        );
        // Assigned again with the floor of its last commit: acknowledged through that floor before its
        // own watermark is known, and through the higher of the two after.
        let floored = |watermark| PartitionTime {
            floor: Some(400),
            ..time("r[0]", watermark)
        };
        through.observe(&[floored(Watermark::Unknown)], &[]);
        let acker = Recorded::default();
        through.acknowledge(&acker, &positions);
        assert_eq!(acker.0.lock().unwrap()[0], ("r[0]".into(), 7, Some(400)));
        through.observe(&[floored(Watermark::At(350))], &[]);
        through.observe(&[floored(Watermark::At(420))], &[]);
        let acker = Recorded::default();
        through.acknowledge(&acker, &positions);
        assert_eq!(acker.0.lock().unwrap()[0], ("r[0]".into(), 7, Some(420)));
    }

    #[test]
    fn rows_of_other_hunt_versions_and_foreign_records_are_dead_letters() {
        let inbox = inbox();
        let rows = event_times(&[1, 2]);
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
        assert_eq!(&*d.parts[0].partition, "r[1]");
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
