//! One runtime for every kind of hunt: the [`Evaluator`] trait the pipeline drives, what it is given
//! ([`StepInput`]) and what it gives back ([`StepOutput`], [`Detection`]s).
//!
//! A language front end (SQL files in `query`, Sigma rules in `sigma`, KQL next) only *produces*
//! evaluators; the pipeline steps them without knowing which kind they are, acknowledges input by their
//! [`Evaluator::min_seq`], and hands their detections to `alert`, the one place OCSF documents are built.
//! An evaluator owns its state (window buffers, correlation state) and is moved into the task that steps
//! it: a step that panics loses only that evaluator, never the pipeline.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::hunt::Hunt;
use crate::window::Watermark;

pub use crate::source::HuntMasks;

/// One decoded batch as every evaluator sees it.
pub struct BatchView {
    /// Sequence number of the batch (acknowledgement order).
    pub seq: u64,
    pub batch: RecordBatch,
    /// When the pipeline received the batch's newest record.
    pub received: Instant,
    /// Rows other instances selected for this one's windowed hunts (scaled out; see `scale`). Empty on the
    /// source side, where `batch` holds the decoded events.
    pub parts: Vec<Part>,
    /// Scaled out: where each repartition partition this batch brought news of stands after it.
    pub partitions: Vec<PartitionTime>,
    /// Scaled out: repartition partitions this instance no longer owns (their next owner reads them
    /// again from the last commit).
    pub revoked: Vec<Arc<str>>,
    /// The hunts' row filters, where already answered for `batch` (see [`HuntMasks`]).
    pub masks: HuntMasks,
}

impl BatchView {
    /// Hunt `id`'s row filter over `batch`, if already answered.
    pub fn mask(&self, id: &str) -> Option<&datafusion::arrow::array::BooleanArray> {
        self.masks.as_ref().and_then(|m| m.get(id))
    }
}

/// A repartition partition's event time: its own watermark, so that a partition taken over from another
/// instance replays its windows on its own time, not on the time of the partitions already here.
#[derive(Debug, Clone)]
pub struct PartitionTime {
    pub partition: Arc<str>,
    /// `AllIdle`: every source partition reporting to it is idle (event time goes on at the wall
    /// clock's pace).
    pub watermark: Watermark,
    /// The watermark its previous owner evaluated its windows through (its last commit).
    pub floor: Option<i64>,
}

/// Rows of one windowed hunt that the instance decoding them sent to the instance owning their key.
#[derive(Debug, Clone)]
pub struct Part {
    pub hunt: String,
    /// Fingerprint of the hunt that selected them (`PlannedHunt::fingerprint`).
    pub fingerprint: String,
    /// The rows that passed the hunt's filter, projected to the columns it reads and event time
    /// (`PlannedHunt::routed_columns`).
    pub batch: RecordBatch,
    /// Index, among the batch's records, of the record (message) that brought them.
    pub record: usize,
    /// Each row's source position (to keep a row sent twice once); empty when unknown.
    pub origins: Vec<crate::window::Origin>,
    /// The repartition partition (input name) that brought them.
    pub partition: Arc<str>,
    /// The watermark the partition's previous owner evaluated its windows through, if it committed one.
    pub floor: Option<i64>,
}

/// Input of one step: a decoded batch (or nothing, on a timer tick) and the watermark after it.
#[derive(Clone)]
pub struct StepInput {
    pub batch: Option<Arc<BatchView>>,
    pub watermark: Watermark,
    /// End of input or shutdown: evaluate everything still held.
    pub flush: bool,
}

/// Event-time bounds a detection is about.
#[derive(Debug, Clone, Copy)]
pub struct AlertTime {
    /// The window, for windowed hunts (and correlations: first matching event to firing time).
    pub window: Option<(i64, i64)>,
    /// Oldest and newest event time of the rows the hunt ran on (used when there is no window and a row
    /// has no `event_time` column).
    pub rows: (i64, i64),
    /// When the newest of those rows was received.
    pub received: Instant,
}

/// The rows a detection reports.
#[derive(Debug, Clone)]
pub enum Rows {
    /// Result rows of a plan (each row one alert). `omit_nulls`: leave NULL columns out of the evidence
    /// (a Sigma match shows the fields its event has, not every field the rule set reads).
    Table {
        batches: Vec<RecordBatch>,
        omit_nulls: bool,
    },
    /// One row already as an object (a correlation firing: its group, count and events).
    Object(Map<String, Value>),
}

/// What a hunt found: the hunt, its result rows and their time. `alert` turns each row into an alert.
#[derive(Debug, Clone)]
pub struct Detection {
    pub hunt: Arc<Hunt>,
    pub rows: Rows,
    pub time: AlertTime,
    /// The oldest batch its rows came from (what must be read again to find it again).
    pub seq: u64,
}

/// Why one evaluation failed (the evaluator goes on; the rows of that evaluation produced no alerts).
#[derive(Debug, Clone, thiserror::Error)]
#[error("hunt {hunt}: {reason}")]
pub struct EvaluationError {
    pub hunt: String,
    pub reason: String,
}

/// What one step produced.
#[derive(Default)]
pub struct StepOutput {
    pub detections: Vec<Detection>,
    /// Rows of the batch that arrived after their window (or correlation) had passed them.
    pub late_rows: Vec<usize>,
    /// Rows not kept because the evaluator's state was full.
    pub dropped: usize,
    /// Repartitioned rows not kept because the window already held their source position.
    pub duplicates: usize,
    pub windows_closed: u64,
    /// Seconds each evaluation took.
    pub evaluations: Vec<f64>,
    pub errors: Vec<EvaluationError>,
    /// Scaled out: rows to evaluate where their key is (Sigma correlations' matches), which the
    /// pipeline sends through the repartition topic.
    pub routed: Vec<Routed>,
}

/// Rows an evaluator selected for evaluation on the instance owning their key (scaled out: a chain of
/// Sigma correlations' matches); the pipeline sends them on with their events' source positions.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The evaluator that takes them on the other side (its id on the repartition topic).
    pub hunt: String,
    /// Fingerprint of what selected them.
    pub fingerprint: String,
    /// One row per match.
    pub batch: RecordBatch,
    /// Per row: the row of the decoded batch (so the record) it came from.
    pub rows: Vec<u32>,
    /// Per row: its key values (empty: one partition takes them all).
    pub keys: Vec<Vec<Option<String>>>,
}

/// A step in progress: the evaluator comes back with what it produced.
pub type Stepping = BoxFuture<'static, (Box<dyn Evaluator>, StepOutput)>;

/// Something that evaluates hunts on decoded batches: one SQL hunt, or a whole Sigma rule set.
///
/// The pipeline calls [`Evaluator::step`] once per batch and per timer tick, every evaluator concurrently
/// (each on its own task), and once more with `flush` at the end.
pub trait Evaluator: Send + 'static {
    /// Name in logs and the `hunt` label of per-hunt metrics (a SQL hunt's id, `sigma` for the rule set).
    fn label(&self) -> &str;

    /// The hunts it runs, for counting and listing.
    fn hunts(&self) -> Vec<Arc<Hunt>>;

    /// Evaluates a batch and/or what the watermark closed. Takes the evaluator and gives it back, so the
    /// step can run on its own task (or thread) without sharing state.
    fn step(self: Box<Self>, input: StepInput) -> Stepping;

    /// The oldest batch whose rows it still holds: batches from this one on are not acknowledged.
    fn min_seq(&self) -> Option<u64> {
        None
    }

    /// Rows (or matches) held in state; `None` for an evaluator that keeps none.
    fn state_size(&self) -> Option<usize> {
        None
    }

    /// Cores one step keeps busy: a rule set that splits each batch's rows over threads says how many (the
    /// batcher decodes fewer batches at once beside it).
    fn threads(&self) -> usize {
        1
    }

    /// Identity of what it evaluates: two evaluators with the same fingerprint run the same hunts the same
    /// way over the same columns, so the state of one is valid for the other (hot reload keeps it).
    fn fingerprint(&self) -> String;
}

/// What a blocking task (an evaluator's step, a batch's decoding) gave: its panic goes on here, to be
/// isolated like one on the task awaiting it. Cancelled — the runtime shut down before the task ran
/// (a test's runtime dropped, a stop that did not wait) — it never completes: the task awaiting it is
/// dropped with the runtime, where unwrapping it was a second, misleading panic.
pub async fn blocking_result<T>(joined: Result<T, tokio::task::JoinError>) -> T {
    match joined {
        Ok(done) => done,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => std::future::pending().await,
        },
    }
}
