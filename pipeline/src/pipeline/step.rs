//! One hunt's step: evaluate an unwindowed hunt on a decoded batch, or store a windowed hunt's rows and
//! evaluate the windows its watermark closed. The pipeline runs one step per hunt per batch (and per tick),
//! each on its own task, and collects the alerts, late rows and timings they report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::TimestampNanosecondType;
use datafusion::arrow::record_batch::RecordBatch;

use crate::alert::{Alert, AlertTime, build_alerts};
use crate::query::PlannedHunt;
use crate::window::{Watermark, WindowState};

/// A hunt with its window state.
pub(crate) struct HuntRuntime {
    pub(crate) planned: Arc<PlannedHunt>,
    pub(crate) window: Option<WindowState>,
}

/// Input of one hunt step: a decoded batch (or nothing, on a tick) and the watermark after it.
#[derive(Clone)]
pub(crate) struct StepInput {
    pub(crate) batch: Option<Arc<BatchView>>,
    pub(crate) watermark: Watermark,
    pub(crate) flush: bool,
}

pub(crate) struct BatchView {
    pub(crate) seq: u64,
    pub(crate) batch: RecordBatch,
    pub(crate) received: Instant,
}

#[derive(Default)]
pub(crate) struct StepOutput {
    pub(crate) alerts: Vec<Alert>,
    /// Rows of the batch that arrived after their window closed.
    pub(crate) late_rows: Vec<usize>,
    pub(crate) dropped: usize,
    pub(crate) windows_closed: u64,
    /// Seconds each evaluation of the hunt's plan took.
    pub(crate) evaluations: Vec<f64>,
    pub(crate) errors: Vec<String>,
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

impl HuntRuntime {
    pub(crate) async fn step(
        mut self,
        input: StepInput,
        time_index: usize,
    ) -> (HuntRuntime, StepOutput) {
        let mut out = StepOutput::default();
        if let Err(e) = self.step_inner(&input, time_index, &mut out).await {
            out.errors.push(e.to_string());
        }
        (self, out)
    }

    async fn step_inner(
        &mut self,
        input: &StepInput,
        time_index: usize,
        out: &mut StepOutput,
    ) -> Result<(), datafusion::error::DataFusionError> {
        let planned = Arc::clone(&self.planned);
        let Some(window) = self.window.as_mut() else {
            // Unwindowed: evaluate the rows of this batch that pass the hunt's filter.
            let Some(view) = &input.batch else {
                return Ok(());
            };
            let Some(selected) = planned.unwindowed_input(&view.batch, time_index)? else {
                return Ok(());
            };
            let results = evaluate(&planned, vec![selected.table], out).await?;
            out.alerts.extend(build_alerts(
                &planned.hunt,
                &results,
                AlertTime {
                    window: None,
                    rows: selected.span,
                    received: view.received,
                },
            ));
            return Ok(());
        };

        if let Some(view) = &input.batch {
            let batch = &view.batch;
            let times = batch
                .column(time_index)
                .as_primitive::<TimestampNanosecondType>();
            let mask = planned.prefilter_mask(batch)?;
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
                    let rows = take_record_batch(&projected, &UInt32Array::from(rows))?;
                    out.dropped += window.insert(pane, rows, view.seq, view.received).dropped;
                }
            }
        }
        let closed = match input.watermark {
            _ if input.flush => window.flush(),
            Watermark::AllIdle(_) => window.flush(),
            Watermark::At(t) => window.advance(t),
            Watermark::Unknown => Vec::new(),
        };
        for w in closed {
            out.windows_closed += 1;
            let tables = w
                .batches
                .iter()
                .map(|b| planned.table_batch(b, planned.used_columns(), Some((w.start, w.end))))
                .collect::<Result<Vec<_>, _>>()?;
            match evaluate(&planned, tables, out).await {
                Ok(results) => out.alerts.extend(build_alerts(
                    &planned.hunt,
                    &results,
                    AlertTime {
                        window: Some((w.start, w.end)),
                        rows: (w.start, w.end),
                        received: w.newest_received,
                    },
                )),
                // One failed window must not keep the others from being evaluated.
                Err(e) => out.errors.push(format!(
                    "window [{}, {}): {e}",
                    crate::alert::ocsf::format_time(w.start),
                    crate::alert::ocsf::format_time(w.end)
                )),
            }
        }
        Ok(())
    }
}
