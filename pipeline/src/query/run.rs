//! A SQL hunt as an [`Evaluator`]: an unwindowed hunt evaluates the rows of each batch that pass its
//! filter; a windowed one stores those rows (only the columns it reads) by pane and evaluates the windows
//! the watermark closed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::arrow::record_batch::RecordBatch;

use super::PlannedHunt;
use crate::hunt::Hunt;
use crate::runtime::{
    AlertTime, Detection, EvaluationError, Evaluator, Rows, StepInput, StepOutput, Stepping,
};
use crate::window::state::take_rows;
use crate::window::{ClosedWindow, Origin, Watermark, WindowState};

/// A planned SQL hunt with its window state.
pub struct SqlEvaluator {
    planned: Arc<PlannedHunt>,
    window: Option<WindowState>,
    time_index: usize,
    /// Scaled out, on the repartitioned side: the rows other instances selected, one window state per
    /// repartition partition (a key's rows all come through one partition, so a window's result is the
    /// union of the partitions' results; a partition's state can start where its previous owner's
    /// evaluation ended). `None`: rows from the decoded events, in `window`.
    routed: Option<BTreeMap<Arc<str>, WindowState>>,
    /// Window size, slide, lateness and row limit, for new partition states.
    spec: Option<(Duration, Duration, Duration, usize)>,
}

impl SqlEvaluator {
    /// `lateness` and `max_rows` are the window settings (the hunt's own `allowed_lateness` wins).
    pub fn new(
        planned: impl Into<Arc<PlannedHunt>>,
        time_index: usize,
        lateness: Duration,
        max_rows: usize,
    ) -> SqlEvaluator {
        let planned = planned.into();
        let spec = planned.hunt.window.size_slide().map(|(size, slide)| {
            (
                size,
                slide,
                planned.hunt.allowed_lateness.unwrap_or(lateness),
                max_rows,
            )
        });
        SqlEvaluator {
            window: spec
                .map(|(size, slide, lateness, cap)| WindowState::new(size, slide, lateness, cap)),
            planned,
            time_index,
            routed: None,
            spec,
        }
    }

    /// The same (windowed) hunt, fed with the rows other instances repartitioned to this one.
    pub fn routed(mut self) -> SqlEvaluator {
        self.routed = Some(BTreeMap::new());
        self.window = None;
        self
    }
}

impl Evaluator for SqlEvaluator {
    fn label(&self) -> &str {
        &self.planned.hunt.id
    }

    fn hunts(&self) -> Vec<Arc<Hunt>> {
        vec![Arc::clone(&self.planned.hunt)]
    }

    fn step(mut self: Box<Self>, input: StepInput) -> Stepping {
        Box::pin(async move {
            let mut out = StepOutput::default();
            if let Err(e) = self.step_inner(&input, &mut out).await {
                out.errors.push(self.error(e.to_string()));
            }
            (self as Box<dyn Evaluator>, out)
        })
    }

    fn min_seq(&self) -> Option<u64> {
        match &self.routed {
            Some(states) => states.values().filter_map(WindowState::min_seq).min(),
            None => self.window.as_ref().and_then(WindowState::min_seq),
        }
    }

    fn state_size(&self) -> Option<usize> {
        match &self.routed {
            Some(states) => Some(states.values().map(WindowState::rows).sum()),
            None => self.window.as_ref().map(WindowState::rows),
        }
    }

    fn fingerprint(&self) -> String {
        self.planned.fingerprint()
    }
}

/// Runs a hunt's plan and records how long it took.
async fn evaluate(
    planned: &PlannedHunt,
    input: Vec<RecordBatch>,
    out: &mut StepOutput,
) -> Result<Vec<RecordBatch>, datafusion::error::DataFusionError> {
    let started = Instant::now();
    let result = planned.run(input).await;
    out.evaluations.push(started.elapsed().as_secs_f64());
    result
}

impl SqlEvaluator {
    fn error(&self, reason: String) -> EvaluationError {
        EvaluationError {
            hunt: self.planned.hunt.id.clone(),
            reason,
        }
    }

    async fn step_inner(
        &mut self,
        input: &StepInput,
        out: &mut StepOutput,
    ) -> Result<(), datafusion::error::DataFusionError> {
        let planned = Arc::clone(&self.planned);
        let time_index = self.time_index;
        if let (Some(states), Some(spec)) = (self.routed.as_mut(), self.spec) {
            let mut closed = Vec::new();
            if let Some(view) = &input.batch {
                for partition in &view.revoked {
                    // Its next owner reads it again from the last commit and evaluates its windows.
                    states.remove(partition);
                }
                insert_parts(states, spec, &planned, time_index, view, out)?;
                for p in &view.partitions {
                    let state = states
                        .entry(Arc::clone(&p.partition))
                        .or_insert_with(|| partition_state(spec, p.floor));
                    let now_closed = match p.watermark {
                        Watermark::At(t) | Watermark::AllIdle(t) => state.advance(t),
                        Watermark::Unknown => Vec::new(),
                    };
                    for w in &now_closed {
                        tracing::debug!(hunt = %planned.hunt.id, partition = %p.partition, start = w.start, end = w.end, rows = w.rows, floor = p.floor, "Window closed.");
                    }
                    closed.extend(now_closed);
                }
            }
            // Each partition closes on its own watermark (idle sources included, above); the
            // instance's own watermark over the repartition partitions says nothing about the sources.
            if input.flush {
                for state in states.values_mut() {
                    closed.extend(state.flush());
                }
            }
            evaluate_windows(&planned, closed, out).await;
            return Ok(());
        }
        let Some(window) = self.window.as_mut() else {
            // Unwindowed: evaluate the rows of this batch that pass the hunt's filter.
            let Some(view) = &input.batch else {
                return Ok(());
            };
            let Some(selected) =
                planned.unwindowed_input(&view.batch, time_index, view.mask(&planned.hunt.id))?
            else {
                return Ok(());
            };
            let results = evaluate(&planned, vec![selected.table], out).await?;
            push_detection(
                out,
                &planned,
                results,
                AlertTime {
                    window: None,
                    rows: selected.span,
                    received: view.received,
                },
                view.seq,
            );
            return Ok(());
        };

        if let Some(view) = &input.batch {
            let batch = &view.batch;
            let times = batch
                .column(time_index)
                .as_primitive::<TimestampNanosecondType>();
            let mask = planned.prefilter_mask(batch, view.mask(&planned.hunt.id))?;
            let mut by_pane: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
            for row in 0..batch.num_rows() {
                if mask
                    .as_ref()
                    .is_some_and(|m| !m.is_valid(row) || !m.value(row))
                {
                    continue;
                }
                let t = times.value(row);
                if window.is_late(t) {
                    out.late_rows.push(row);
                } else {
                    by_pane
                        .entry(window.pane_of(t))
                        .or_default()
                        .push(row as u32);
                }
            }
            if !by_pane.is_empty() {
                let projected = batch.project(planned.used_columns())?;
                for (pane, rows) in by_pane {
                    let rows = take_rows(&projected, rows)?;
                    out.dropped += window.insert(pane, rows, view.seq, view.received).dropped;
                }
            }
        }
        let closed = close(window, input);
        evaluate_windows(&planned, closed, out).await;
        Ok(())
    }
}

/// The windows of `window` the step's watermark (or end of input) closes.
fn close(window: &mut WindowState, input: &StepInput) -> Vec<ClosedWindow> {
    match input.watermark {
        _ if input.flush => window.flush(),
        Watermark::At(t) | Watermark::AllIdle(t) => window.advance(t),
        Watermark::Unknown => Vec::new(),
    }
}

/// Evaluates closed windows; a window that fails is reported and the others still evaluated.
async fn evaluate_windows(planned: &PlannedHunt, closed: Vec<ClosedWindow>, out: &mut StepOutput) {
    for w in closed {
        out.windows_closed += 1;
        let tables = w
            .batches
            .iter()
            .map(|b| planned.table_batch(b, planned.used_columns(), Some((w.start, w.end))))
            .collect::<Result<Vec<_>, _>>();
        let result = match tables {
            Ok(tables) => evaluate(planned, tables, out).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(results) => push_detection(
                out,
                planned,
                results,
                AlertTime {
                    window: Some((w.start, w.end)),
                    rows: (w.start, w.end),
                    received: w.newest_received,
                },
                w.min_seq,
            ),
            // One failed window must not keep the others from being evaluated.
            Err(e) => out.errors.push(EvaluationError {
                hunt: planned.hunt.id.clone(),
                reason: format!("window [{}, {}) (ns): {e}", w.start, w.end),
            }),
        }
    }
}

/// A repartition partition's window state, starting where its previous owner's evaluation ended.
fn partition_state(
    (size, slide, lateness, cap): (Duration, Duration, Duration, usize),
    floor: Option<i64>,
) -> WindowState {
    let state = WindowState::new(size, slide, lateness, cap);
    match floor {
        Some(floor) => state.starting_at(floor),
        None => state,
    }
}

/// Stores the rows repartitioned to this instance for `planned` (its parts of the batch), by partition
/// and pane. The states share the hunt's row limit.
fn insert_parts(
    states: &mut BTreeMap<Arc<str>, WindowState>,
    (size, slide, lateness, cap): (Duration, Duration, Duration, usize),
    planned: &PlannedHunt,
    time_index: usize,
    view: &crate::runtime::BatchView,
    out: &mut StepOutput,
) -> Result<(), datafusion::error::DataFusionError> {
    let columns = planned.routed_columns(time_index);
    let at = columns
        .binary_search(&time_index)
        .expect("routed columns hold event time");
    let keep: Vec<usize> = planned
        .used_columns()
        .iter()
        .map(|c| {
            columns
                .binary_search(c)
                .expect("routed columns hold the used ones")
        })
        .collect();
    for part in view.parts.iter().filter(|p| p.hunt == planned.hunt.id) {
        let held: usize = states.values().map(WindowState::rows).sum();
        let state = states
            .entry(Arc::clone(&part.partition))
            .or_insert_with(|| partition_state((size, slide, lateness, cap), part.floor));
        state.set_cap(state.rows() + cap.saturating_sub(held));
        let times = part
            .batch
            .column(at)
            .as_primitive::<TimestampNanosecondType>();
        let mut by_pane: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for row in 0..part.batch.num_rows() {
            let t = times.value(row);
            if state.evaluated_before(t) {
                // Re-read after taking the partition over: its windows were evaluated already.
                out.duplicates += 1;
            } else if state.is_late(t) {
                // Sent again by the source partition's next reader: judged already, with its window.
                if part
                    .origins
                    .get(row)
                    .is_some_and(|o| state.brought().before(o))
                {
                    tracing::debug!(hunt = %planned.hunt.id, partition = %part.partition, time = t, origin = ?part.origins.get(row), "Late row taken for a replay.");
                    out.duplicates += 1;
                } else {
                    out.late_rows.push(part.record);
                }
            } else {
                by_pane
                    .entry(state.pane_of(t))
                    .or_default()
                    .push(row as u32);
            }
        }
        state.brought().note(&part.origins);
        if by_pane.is_empty() {
            continue;
        }
        let projected = part.batch.project(&keep)?;
        for (pane, rows) in by_pane {
            let inserted = if part.origins.is_empty() {
                let rows = take_rows(&projected, rows)?;
                state.insert(pane, rows, view.seq, view.received)
            } else {
                let origins: Vec<Origin> = rows
                    .iter()
                    .map(|&r| part.origins[r as usize].clone())
                    .collect();
                let rows = take_rows(&projected, rows)?;
                state.insert_once(pane, rows, &origins, view.seq, view.received)?
            };
            out.dropped += inserted.dropped;
            out.duplicates += inserted.duplicates;
        }
    }
    Ok(())
}

/// Result rows, if any, as one detection of the hunt.
fn push_detection(
    out: &mut StepOutput,
    planned: &PlannedHunt,
    batches: Vec<RecordBatch>,
    time: AlertTime,
    seq: u64,
) {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return;
    }
    out.detections.push(Detection {
        hunt: Arc::clone(&planned.hunt),
        rows: Rows::Table {
            batches,
            omit_nulls: false,
        },
        time,
        seq,
    });
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, new_null_array};
    use datafusion::arrow::compute::cast;

    use super::*;
    use crate::decode::EventSchema;
    use crate::hunt::{Hunt, Origin as HuntOrigin};
    use crate::runtime::{BatchView, Part, PartitionTime};
    use crate::window::Origin;

    /// Failed logons (4625) at `(second, host, ip)`, as the sender projects them for `planned`.
    fn rows(
        planned: &PlannedHunt,
        schema: &EventSchema,
        logons: &[(i64, &str, &str)],
    ) -> RecordBatch {
        let arrow = schema.arrow();
        let text = |f: fn(&(i64, &str, &str)) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(logons.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = arrow
            .fields()
            .iter()
            .map(|field| {
                let values = match field.name().as_str() {
                    "event_time" => Arc::new(Int64Array::from_iter_values(
                        logons.iter().map(|l| l.0 * 1_000_000_000),
                    )) as ArrayRef,
                    "event_id" => text(|_| "4625".into()),
                    "host" => text(|l| l.1.into()),
                    "ip_address" => text(|l| l.2.into()),
                    _ => return new_null_array(field.data_type(), logons.len()),
                };
                cast(&values, field.data_type()).unwrap()
            })
            .collect();
        RecordBatch::try_new(Arc::clone(arrow), columns)
            .unwrap()
            .project(&planned.routed_columns(schema.time_index))
            .unwrap()
    }

    fn view(seq: u64, parts: Vec<Part>, watermark: i64) -> StepInput {
        StepInput {
            batch: Some(Arc::new(BatchView {
                seq,
                batch: RecordBatch::new_empty(Arc::new(
                    datafusion::arrow::datatypes::Schema::empty(),
                )),
                received: std::time::Instant::now(),
                partitions: vec![PartitionTime {
                    partition: Arc::from("r[0]"),
                    watermark: Watermark::At(watermark * 1_000_000_000),
                    floor: None,
                }],
                parts,
                revoked: Vec::new(),
                masks: None,
            })),
            watermark: Watermark::Unknown,
            flush: false,
        }
    }

    fn part(planned: &PlannedHunt, batch: RecordBatch, offsets: std::ops::Range<u64>) -> Part {
        Part {
            hunt: planned.hunt.id.clone(),
            fingerprint: planned.fingerprint(),
            batch,
            record: 0,
            origins: offsets
                .map(|o| -> Origin { (Arc::from("events[0]"), o) })
                .collect(),
            partition: Arc::from("r[0]"),
            floor: None,
        }
    }

    #[tokio::test]
    async fn a_row_sent_again_after_its_window_closed_is_a_duplicate_and_a_new_one_is_late() {
        let text = "/*\nid: spray\ntitle: T\nhypothesis: h\nseverity: low\nwindow: tumbling 1m\nresponse: [r]\n*/\n\
                    SELECT ip_address, count(DISTINCT host) AS hosts FROM events WHERE event_id = 4625 \
                    GROUP BY window_start, window_end, ip_address HAVING count(DISTINCT host) >= 2";
        let hunt = Hunt::parse(text, "spray", HuntOrigin::Builtin("spray.sql")).unwrap();
        let schema = EventSchema::windows();
        let planned = Arc::new(crate::query::plan::plan(hunt, &schema).await.unwrap());
        let mut e = SqlEvaluator::new(
            Arc::clone(&planned),
            schema.time_index,
            Duration::ZERO,
            1000,
        )
        .routed();
        let first = rows(
            &planned,
            &schema,
            &[(10, "A", "203.0.113.7"), (20, "B", "203.0.113.7")],
        );
        // The first reader of the source partition sends two rows; the window [0, 60) closes at 60.
        let mut out = StepOutput::default();
        e.step_inner(
            &view(1, vec![part(&planned, first.clone(), 5..7)], 60),
            &mut out,
        )
        .await
        .unwrap();
        assert_eq!(
            (out.detections.len(), out.errors.len(), out.late_rows.len()),
            (1, 0, 0)
        );
        // Its next reader (after a crash, from the last commit) sends them again, and one row more
        // (offset 7) whose window closed as well.
        let again = rows(
            &planned,
            &schema,
            &[
                (10, "A", "203.0.113.7"),
                (20, "B", "203.0.113.7"),
                (30, "C", "203.0.113.7"),
            ],
        );
        let mut out = StepOutput::default();
        e.step_inner(&view(2, vec![part(&planned, again, 5..8)], 60), &mut out)
            .await
            .unwrap();
        assert_eq!(
            (out.duplicates, out.late_rows.len(), out.detections.len()),
            (2, 1, 0),
            "the rows brought before are duplicates, the new one is late"
        );
    }
}
