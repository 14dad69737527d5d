//! The loaded Sigma rule set at run time, as one [`Evaluator`]: every detection rule evaluated together
//! on each batch, each match a detection of the rule's own hunt, matches of rules that correlations
//! reference fed to the correlator, and correlation firings reported as the watermark passes them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, TimestampNanosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Value, json};

use crate::hunt::Hunt;
use crate::runtime::{
    AlertTime, Detection, EvaluationError, Evaluator, Rows, StepInput, StepOutput, Stepping,
};
use crate::sigma::correlate::{Correlator, Firing};
use crate::sigma::eval::RuleSet;
use crate::window::Watermark;

/// Columns every Sigma alert shows (when the event has them), before the rule's own.
pub(super) const CONTEXT_COLUMNS: &[&str] = &[
    "event_time",
    "host",
    "channel",
    "provider",
    "event_id",
    "record_id",
];

pub(super) struct EngineRule {
    pub(super) hunt: Arc<Hunt>,
    /// Batch columns shown in the alert.
    pub(super) show: Vec<usize>,
    /// Whether a match alerts on its own (false when a correlation with `generate: false` uses it).
    pub(super) alone: bool,
    /// Name the correlator knows the rule by, and the batch column of each field it wants.
    pub(super) correlated: Option<(String, Vec<Option<usize>>)>,
}

/// The compiled rule set and the correlation state.
pub struct SigmaEngine {
    pub(super) set: RuleSet,
    /// Aligned with the rule set's indices; `None` for a rule that failed to compile.
    pub(super) rules: Vec<Option<EngineRule>>,
    pub(super) correlations: Vec<Arc<Hunt>>,
    pub(super) correlator: Option<Correlator>,
    pub(super) time_index: usize,
    /// Longest correlation timespan (ns): how long matches stay in correlation state.
    pub(super) max_span: i64,
    /// (event time, batch seq) of matches fed to the correlator, in arrival order: batches that may still
    /// be needed to rebuild correlation state after a crash are not acknowledged.
    pub(super) held: VecDeque<(i64, u64)>,
    /// Correlations judge matches this far (ns) behind the pipeline watermark.
    pub(super) lateness: i64,
    /// What the set evaluates (see [`Evaluator::fingerprint`]).
    pub(super) fingerprint: String,
    /// The detection rules correlations may reference (to build a chain's correlator on its own).
    pub(super) base: Vec<crate::sigma::correlate::BaseRule>,
    /// Scaled out: where each chain of correlations is evaluated (see [`crate::sigma::route`]); empty
    /// when the correlator above runs them here.
    pub(super) routes: Vec<crate::sigma::route::Route>,
}

impl std::fmt::Debug for SigmaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigmaEngine")
            .field("rules", &self.rule_count())
            .field("correlations", &self.correlations.len())
            .finish()
    }
}

impl SigmaEngine {
    /// Correlations judge matches `lateness` behind the pipeline watermark (`window.allowed_lateness`).
    pub fn with_lateness(mut self, lateness: std::time::Duration) -> SigmaEngine {
        self.lateness = lateness.as_nanos() as i64;
        self
    }

    /// Every detection rule's alerts are suppressed per host for `period` (`sigma.suppress`).
    pub fn with_suppression(mut self, period: Option<std::time::Duration>) -> SigmaEngine {
        let Some(period) = period else {
            return self;
        };
        for rule in self.rules.iter_mut().flatten() {
            Arc::make_mut(&mut rule.hunt).suppress = Some(crate::hunt::Suppression {
                period,
                by: Vec::new(),
            });
        }
        self
    }

    /// Each batch's rows are split over `threads` threads for rule evaluation (`sigma.threads`).
    pub fn with_threads(mut self, threads: usize) -> SigmaEngine {
        self.set = self.set.with_threads(threads);
        self
    }

    /// Detection rules compiled and running.
    pub fn rule_count(&self) -> usize {
        self.rules.iter().flatten().count()
    }

    /// The hunts of the compiled detection rules and the correlations.
    pub fn hunts(&self) -> impl Iterator<Item = &Arc<Hunt>> {
        self.rules
            .iter()
            .flatten()
            .map(|r| &r.hunt)
            .chain(&self.correlations)
    }

    /// The oldest batch that correlation state may still need.
    pub fn min_seq(&self) -> Option<u64> {
        self.held.iter().map(|&(_, seq)| seq).min()
    }

    /// The detection rules matching rows of `batch` (rule id, rows), whatever their alerting: for tests
    /// and benchmarks.
    pub fn matching(&self, batch: &RecordBatch) -> Vec<(&str, Vec<u32>)> {
        self.set
            .evaluate(batch)
            .into_iter()
            .filter_map(|(i, rows)| self.rules[i].as_ref().map(|r| (r.hunt.id.as_str(), rows)))
            .collect()
    }

    /// Runs every rule on a batch: detections of the rules that alert alone, matches of correlated rules
    /// into the correlator (those it has already passed are late rows).
    pub fn evaluate(
        &mut self,
        batch: &RecordBatch,
        seq: u64,
        received: Instant,
        out: &mut StepOutput,
    ) {
        let matches = self.set.evaluate(batch);
        if matches.is_empty() {
            return;
        }
        let mut collected = self.collectors();
        let times = batch
            .column(self.time_index)
            .as_primitive::<TimestampNanosecondType>();
        for (index, rows) in matches {
            let Some(rule) = &self.rules[index] else {
                continue;
            };
            if rule.alone {
                match rule_detection(rule, batch, &rows, (seq, received), self.time_index) {
                    Ok(d) => out.detections.push(d),
                    Err(e) => out.errors.push(EvaluationError {
                        hunt: rule.hunt.id.clone(),
                        reason: e.to_string(),
                    }),
                }
            }
            if !collected.is_empty() {
                self.collect(index, batch, &rows, &mut collected);
            }
            if let (Some((ident, columns)), Some(correlator)) =
                (&rule.correlated, self.correlator.as_mut())
            {
                for &row in &rows {
                    let row = row as usize;
                    let fields: Vec<Option<String>> = columns
                        .iter()
                        .map(|c| c.and_then(|c| text_value(batch.column(c).as_ref(), row)))
                        .collect();
                    let time = times.value(row);
                    if correlator.observe(ident, time, &fields) {
                        self.held.push_back((time, seq));
                    } else {
                        out.late_rows.push(row);
                    }
                }
            }
        }
        match self.routed(collected) {
            Ok(routed) => out.routed.extend(routed),
            Err(e) => out.errors.push(EvaluationError {
                hunt: "sigma".into(),
                reason: format!("collecting correlated matches to repartition: {e}"),
            }),
        }
    }

    /// Event time has reached `watermark`: correlations judge what it passed (`flush`: everything).
    pub fn advance(
        &mut self,
        watermark: Option<i64>,
        flush: bool,
        received: Instant,
    ) -> Vec<Detection> {
        // A firing's matches are among those held; the oldest held batch is where to read again from.
        let held_from = self.min_seq().unwrap_or(0);
        let Some(correlator) = self.correlator.as_mut() else {
            return Vec::new();
        };
        let firings = match (flush, watermark) {
            (true, _) => correlator.flush(),
            (false, Some(w)) => correlator.advance(w),
            (false, None) => return Vec::new(),
        };
        if let Some(w) = watermark {
            let cutoff = w.saturating_sub(self.max_span);
            while self.held.front().is_some_and(|&(t, _)| t < cutoff) {
                self.held.pop_front();
            }
        }
        if flush {
            self.held.clear();
        }
        firings
            .into_iter()
            .filter(|f| f.output)
            .map(|f| firing_detection(&self.correlations[f.rule], &f, received, held_from))
            .collect()
    }
}

impl Evaluator for SigmaEngine {
    fn label(&self) -> &str {
        "sigma"
    }

    fn threads(&self) -> usize {
        self.set.threads()
    }

    fn hunts(&self) -> Vec<Arc<Hunt>> {
        SigmaEngine::hunts(self).cloned().collect()
    }

    /// Rule evaluation is CPU-bound: it runs on a blocking thread (which splits the batch's rows with
    /// `sigma.threads - 1` more) while the SQL hunts run on the runtime's workers and the next batch is
    /// decoded.
    fn step(mut self: Box<Self>, input: StepInput) -> Stepping {
        Box::pin(async move {
            let task = tokio::task::spawn_blocking(move || {
                let mut out = StepOutput::default();
                let received = input
                    .batch
                    .as_ref()
                    .map_or_else(Instant::now, |b| b.received);
                if let Some(view) = &input.batch {
                    let started = Instant::now();
                    self.evaluate(&view.batch, view.seq, view.received, &mut out);
                    out.evaluations.push(started.elapsed().as_secs_f64());
                }
                let watermark = match input.watermark {
                    Watermark::At(t) | Watermark::AllIdle(t) => {
                        Some(t.saturating_sub(self.lateness))
                    }
                    Watermark::Unknown => None,
                };
                let fired = self.advance(watermark, input.flush, received);
                out.detections.extend(fired);
                (self as Box<dyn Evaluator>, out)
            });
            // A panic on the blocking thread is this evaluator's panic: the pipeline isolates it.
            crate::runtime::blocking_result(task.await).await
        })
    }

    fn min_seq(&self) -> Option<u64> {
        SigmaEngine::min_seq(self)
    }

    fn state_size(&self) -> Option<usize> {
        self.correlator.as_ref().map(Correlator::state_size)
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}

/// A cell as text (the correlator's group-by and value fields).
pub(super) fn text_value(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row).to_string()),
        _ => datafusion::arrow::util::display::array_value_to_string(array, row).ok(),
    }
}

/// The rows of `batch` a rule matched, with the columns its alerts show, as one detection.
fn rule_detection(
    rule: &EngineRule,
    batch: &RecordBatch,
    rows: &[u32],
    (seq, received): (u64, Instant),
    time_index: usize,
) -> Result<Detection, datafusion::arrow::error::ArrowError> {
    let projected = batch.project(&rule.show)?;
    let taken = take_record_batch(&projected, &UInt32Array::from(rows.to_vec()))?;
    let times = batch
        .column(time_index)
        .as_primitive::<TimestampNanosecondType>();
    let (oldest, newest) = rows.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &r| {
        let t = times.value(r as usize);
        (lo.min(t), hi.max(t))
    });
    Ok(Detection {
        hunt: Arc::clone(&rule.hunt),
        rows: Rows::Table {
            batches: vec![taken],
            omit_nulls: true,
        },
        time: AlertTime {
            window: None,
            rows: (oldest, newest),
            received,
        },
        seq,
    })
}

/// A correlation firing as one detection: its group, count, events and times.
pub(super) fn firing_detection(
    hunt: &Arc<Hunt>,
    f: &Firing,
    received: Instant,
    seq: u64,
) -> Detection {
    let mut row = Map::new();
    let group: Map<String, Value> = f
        .group
        .iter()
        .map(|(k, v)| (k.clone(), v.as_ref().map_or(Value::Null, |v| json!(v))))
        .collect();
    row.insert("group".into(), Value::Object(group));
    row.insert("count".into(), json!(f.count));
    row.insert("events".into(), json!(f.events));
    row.insert(
        "first_event_time".into(),
        json!(crate::decode::json::format_time(f.first)),
    );
    row.insert(
        "last_event_time".into(),
        json!(crate::decode::json::format_time(f.last)),
    );
    row.insert(
        "fired_at".into(),
        json!(crate::decode::json::format_time(f.time)),
    );
    if let Some(values) = &f.values {
        row.insert("values".into(), json!(values));
    }
    Detection {
        hunt: Arc::clone(hunt),
        rows: Rows::Object(row),
        time: AlertTime {
            window: Some((f.first, f.time)),
            rows: (f.first, f.last),
            received,
        },
        seq,
    }
}
