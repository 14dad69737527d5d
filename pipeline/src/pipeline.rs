//! The wiring: source → decode → evaluators (SQL hunts, the Sigma rule set: `runtime`) → alert, and
//! acknowledgements flowing back.
//!
//! The source and the batcher run as their own tasks, connected by bounded channels (a slow stage slows the
//! one before it). This task takes decoded batches one at a time: it advances the watermark, runs every hunt
//! on the batch concurrently (unwindowed hunts evaluate at once; windowed ones store their rows and evaluate
//! the windows the watermark closed), hands the alerts to the alert sink and the dead letters to the
//! dead-letter sink, waits for both to acknowledge, and only then acknowledges to the source the batches no
//! open window still holds rows of. A timer does the same without input so that quiet inputs go idle and
//! their last windows close. At the end of input, or on shutdown of a source that cannot read its records
//! again, every open window is closed and everything is acknowledged; from Kafka, open windows are left to
//! the partitions' next reader (see `Engine::drain`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, AlertSink, DeadLetterSink, SinkError, Suppressor};
use crate::decode::{DeadLetter, DeadLetterReason, DecodeFn, DecodedBatch, Decoder, EventSchema};
use crate::incident::IncidentStage;
use crate::lake::{LakeError, LakeSink};
use crate::runtime::{BatchView, Evaluator, StepInput, StepOutput};
use crate::scale::Repartitioner;
use crate::scale::downstream::EvaluatedThrough;
use crate::settings::Settings;
use crate::source::{Acknowledge, EventTimes, Positions, Source, SourceError};
use crate::telemetry::{Health, Metrics};
use crate::window::{Watermark, WatermarkTracker};

mod reload;
#[cfg(test)]
mod tests;

/// Everything a pipeline runs with. Built by `app` from settings, or by tests with memory sinks.
pub struct Components {
    pub settings: Settings,
    pub schema: Arc<EventSchema>,
    /// The hunts, as evaluators (see `app::evaluators`): SQL hunts one each, the Sigma rule set as one.
    pub evaluators: Vec<Box<dyn Evaluator>>,
    pub source: Box<dyn Source>,
    pub alerts: Box<dyn AlertSink>,
    pub dead_letters: Box<dyn DeadLetterSink>,
    pub metrics: Metrics,
    pub health: Health,
    /// New hunt sets from hot reloads (`None`: the hunts are fixed for the run).
    pub reloads: Option<mpsc::Receiver<HuntSet>>,
    /// The lake writer (`None`: no `[lake] path`): the batches and alerts, committed before the source is
    /// acknowledged.
    pub lake: Option<LakeSink>,
    /// The incident rules over the alerts, and where their Incident Findings go (`None`: no incidents).
    pub incidents: Option<(IncidentStage, Box<dyn AlertSink>)>,
    pub stage: Stage,
}

/// Which of an instance's pipelines this is (two when scaled out: see `scale`).
pub enum Stage {
    /// Reads events; scaled out, also sends the repartitioned hunts' rows on (acknowledging the source
    /// only once they are on the broker).
    Events(Option<Box<Repartitioner>>),
    /// Evaluates the repartitioned hunts on the rows the repartition topic brings. It leaves the
    /// event-side metrics (events acknowledged, watermark, hunts loaded) to the events pipeline.
    Repartitioned,
}

/// A complete set of hunts to run instead of the current one (a hot reload), with the schema they were
/// planned on. Evaluators whose fingerprint the running set already has are not used: the running ones
/// go on with their state.
pub struct HuntSet {
    pub schema: Arc<EventSchema>,
    pub evaluators: Vec<Box<dyn Evaluator>>,
}

/// What a finished run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub batches: u64,
    pub alerts: u64,
    /// Incident Findings sent (creations and updates).
    pub incidents: u64,
    pub dead_letters: u64,
    /// Evaluators disabled after a panic (their labels); the others ran on.
    pub disabled: Vec<String>,
    /// Each hunt whose evaluation failed (its alerts for those rows lost), with its first failure's
    /// reason; counted in full in `ghosthunt_hunt_errors_total`.
    pub failures: Vec<(String, String)>,
    /// The source stopped because the pipeline was told to (a signal), not at the end of its input:
    /// what was read is whole (its windows closed, its alerts written), but a range or a file was not.
    pub cut_short: bool,
}

/// A failure that stops the pipeline (records not yet acknowledged will be re-read on restart).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(
        "alert or dead-letter sink failed; nothing after the last acknowledged batch was acknowledged"
    )]
    Sink(#[from] SinkError),
    #[error("source failed")]
    Source(#[from] SourceError),
    #[error("lake write failed; nothing after the last lake commit was acknowledged")]
    Lake(#[from] LakeError),
    #[error(
        "sending rows to the repartition topic failed; nothing after the last acknowledged batch was acknowledged: {0}"
    )]
    Repartition(SinkError),
    /// A bug of ours, not of the input or the hunts: the run stops rather than finish with input unread.
    #[error(
        "the {stage} task failed: {reason}; input after the last acknowledged batch was not processed"
    )]
    Task { stage: &'static str, reason: String },
}

impl PipelineError {
    fn task(stage: &'static str, e: tokio::task::JoinError) -> PipelineError {
        PipelineError::Task {
            stage,
            reason: panic_reason(e),
        }
    }
}

/// The message of a task's panic (or why it ended otherwise).
fn panic_reason(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_string())
}

/// Runs until the source ends or `shutdown` is cancelled, then drains.
pub async fn run(c: Components, shutdown: CancellationToken) -> Result<Summary, PipelineError> {
    let mut decode = decoder_for(&c.schema, c.settings.decode.max_record_bytes, &c.metrics);
    let max_future = c.settings.window.max_future;
    if !max_future.is_zero() {
        let time_index = c.schema.time_index;
        let inner = decode;
        decode = Arc::new(move |seq, records, threads| {
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
            crate::decode::future_to_dead_letters(
                inner(seq, records, threads),
                time_index,
                max_future,
                now,
            )
        });
    }
    if let Some(range) = c.settings.decode.time_range {
        let time_index = c.schema.time_index;
        let inner = decode;
        decode = Arc::new(move |seq, records, threads| {
            crate::decode::keep_time_range(
                inner(seq, records, threads),
                time_index,
                range.from,
                range.to,
            )
        });
    }
    run_with_decoder(c, shutdown, decode).await
}

/// The decoding step for a schema.
fn decoder_for(schema: &Arc<EventSchema>, max_record_bytes: usize, metrics: &Metrics) -> DecodeFn {
    let decoder = Decoder::new(Arc::clone(schema), max_record_bytes, metrics);
    Arc::new(move |seq, records, threads| decoder.decode_on(seq, records, threads))
}

/// [`run`] with the decoding step given (tests give one that fails).
pub(crate) async fn run_with_decoder(
    mut c: Components,
    shutdown: CancellationToken,
    decode: DecodeFn,
) -> Result<Summary, PipelineError> {
    let settings = &c.settings;
    let acker = c.source.acknowledger();
    let event_times = c.source.event_times();
    let (record_tx, record_rx) = mpsc::channel(8);
    let (batch_tx, mut batch_rx) = mpsc::channel::<DecodedBatch>(2);
    // Before the source starts: a source that has to wait (for a broker) then says so itself.
    c.health.ready("running");
    // The source stops on shutdown, or when the pipeline fails (nothing it reads then could be acknowledged).
    let source_stop = shutdown.child_token();
    let source_task = {
        let (source, stop) = (c.source, source_stop.clone());
        tokio::spawn(async move {
            let result = source.run(record_tx, stop.clone()).await;
            // Told when it ended: a stop that came after the end of the input cut nothing short.
            (result, stop.is_cancelled())
        })
    };
    let (decoders, decoder_rx) = tokio::sync::watch::channel((0, decode));
    // The repartition topic's records are decoded one batch at a time, in order: its decoder keeps each
    // partition's progress from the reports among the records, and a batch decoded beside the one
    // before it could take a watermark from reports that follow rows that batch has not seen (rows
    // then late, a window judged without them).
    let repartitioned = matches!(c.stage, Stage::Repartitioned);
    let (in_flight, in_flight_rx) = tokio::sync::watch::channel(if repartitioned {
        1
    } else {
        decoders_beside(c.evaluators.iter().map(|e| e.as_ref()))
    });
    let batcher = tokio::spawn(crate::decode::run_batcher(
        decoder_rx,
        record_rx,
        batch_tx,
        crate::decode::Batching {
            size: settings.decode.batch_size,
            bytes: settings.decode.batch_bytes,
            timeout: settings.decode.batch_timeout,
            adaptive: settings.decode.adaptive,
            adaptive_interval: settings.decode.adaptive_interval,
            decoders: in_flight_rx,
        },
    ));

    let mut engine = Engine::new(
        &c.settings,
        c.evaluators,
        (c.alerts, c.dead_letters),
        acker,
        c.metrics.clone(),
        c.health.clone(),
    );
    engine.schema = Arc::clone(&c.schema);
    engine.tracker.held_back_by(event_times.clone());
    engine.event_times = event_times;
    engine.decoders = Some(decoders);
    engine.in_flight = (!repartitioned).then_some(in_flight);
    engine.lake = c.lake.take();
    engine.incidents = c.incidents.take();
    match c.stage {
        Stage::Events(r) => engine.repartition = r,
        Stage::Repartitioned => engine.repartitioned = true,
    }
    engine.count_hunts();
    let mut reloads = c.reloads.take();
    c.metrics
        .window_rows_limit
        .set(settings.window.max_rows_per_hunt as i64);
    let tick_every =
        (settings.window.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let result: Result<(), PipelineError> = async {
        loop {
            tokio::select! {
                biased;
                // Batches first: while a backlog waits in the channel, the tick (which could find an input
                // quiet whose records are queued) runs only once it is empty.
                batch = batch_rx.recv() => match batch {
                    Some(batch) => engine.on_batch(batch).await?,
                    None => break,
                },
                _ = tick.tick() => engine.on_tick().await?,
                set = async { reloads.as_mut().expect("guarded").recv().await }, if reloads.is_some() => match set {
                    Some(set) => engine.on_reload(set).await?,
                    None => reloads = None,
                },
            }
        }
        Ok(())
    }
    .await;
    c.health.not_ready("draining");
    // The batcher closed its channel: it finished, or failed (then the input was cut short and nothing
    // after the last acknowledged batch may count as processed).
    let batcher_result = match result {
        Ok(()) => match batcher.await {
            Ok(()) => Ok(()),
            Err(e) => Err(PipelineError::task("decoder", e)),
        },
        Err(e) => {
            batcher.abort();
            Err(e)
        }
    };
    let result = match batcher_result {
        Ok(()) => engine.drain().await,
        Err(e) => Err(e),
    };
    if result.is_ok() {
        engine.acker.close();
    } else {
        source_stop.cancel();
    }
    let source_result = match source_task.await {
        Ok((r, stopped)) => r.map(|()| stopped).map_err(PipelineError::from),
        Err(e) => Err(PipelineError::task("source", e)),
    };
    result?;
    let cut_short = source_result?;
    c.health.not_ready("stopped");
    Ok(Summary {
        cut_short,
        ..engine.summary
    })
}

/// How often a hunt whose window state stays full is warned of (with the rows dropped since).
const FULL_WARN_EVERY: Duration = Duration::from_secs(10);

/// An evaluator between steps, with what the pipeline tracks about it.
struct Slot {
    label: String,
    /// Home between steps; taken by the step that runs it.
    evaluator: Option<Box<dyn Evaluator>>,
    /// Rows it dropped since the last warning, and when that was: a state that stays full while its
    /// windows close and fill again is warned of every [`FULL_WARN_EVERY`], not at every batch.
    dropped: u64,
    warned: Option<Instant>,
    /// Rows its windows held after its last step.
    held: usize,
}

struct Engine {
    slots: Vec<Slot>,
    tracker: WatermarkTracker,
    alerts: Box<dyn AlertSink>,
    dead_letters: Box<dyn DeadLetterSink>,
    acker: Arc<dyn Acknowledge>,
    /// Where the inputs' newest event times go back to the source (files read at once keep in step).
    event_times: Option<Arc<dyn EventTimes>>,
    metrics: Metrics,
    health: Health,
    limit: Arc<Semaphore>,
    /// Batches not yet acknowledged to the source, oldest first: (seq, positions, records).
    unacknowledged: VecDeque<(u64, Positions, usize)>,
    summary: Summary,
    /// The schema batches are decoded with, and where a new decoder goes when a reload changes it.
    schema: Arc<EventSchema>,
    decoders: Option<tokio::sync::watch::Sender<(u64, DecodeFn)>>,
    /// How many batches the batcher decodes at once (see [`decoders_beside`]).
    in_flight: Option<tokio::sync::watch::Sender<usize>>,
    max_record_bytes: usize,
    /// `window.max_rows_per_hunt`.
    max_window_rows: usize,
    /// Generation of the newest decoder sent.
    generation: u64,
    /// A reloaded set that waits for the first batch decoded with its schema.
    pending: Option<(u64, HuntSet)>,
    /// Open suppression periods of hunts with `suppress` (kept across reloads: keyed by hunt id).
    suppressor: Suppressor,
    lake: Option<LakeSink>,
    /// Incident rules over the alerts this pipeline delivers, and their sink.
    incidents: Option<(IncidentStage, Box<dyn AlertSink>)>,
    /// Scaled out, on the events side: where the repartitioned hunts' rows go.
    repartition: Option<Box<Repartitioner>>,
    /// This is the repartitioned side (see [`Stage`]).
    repartitioned: bool,
    /// The repartitioned side: how far each repartition partition's windows were evaluated.
    evaluated: EvaluatedThrough,
}

impl Engine {
    fn new(
        settings: &Settings,
        evaluators: Vec<Box<dyn Evaluator>>,
        (alerts, dead_letters): (Box<dyn AlertSink>, Box<dyn DeadLetterSink>),
        acker: Arc<dyn Acknowledge>,
        metrics: Metrics,
        health: Health,
    ) -> Engine {
        Engine {
            slots: evaluators.into_iter().map(Slot::new).collect(),
            tracker: WatermarkTracker::new(settings.window.idle_timeout),
            alerts,
            dead_letters,
            acker,
            event_times: None,
            metrics,
            health,
            limit: Arc::new(Semaphore::new(settings.hunts.concurrency)),
            unacknowledged: VecDeque::new(),
            summary: Summary::default(),
            schema: Arc::new(EventSchema::windows()),
            decoders: None,
            in_flight: None,
            max_record_bytes: settings.decode.max_record_bytes,
            max_window_rows: settings.window.max_rows_per_hunt,
            generation: 0,
            pending: None,
            suppressor: Suppressor::default(),
            lake: None,
            incidents: None,
            repartition: None,
            repartitioned: false,
            evaluated: EvaluatedThrough::default(),
        }
    }

    fn count_hunts(&self) {
        if self.repartitioned {
            return;
        }
        let hunts: usize = self
            .slots
            .iter()
            .filter_map(|s| s.evaluator.as_ref())
            .map(|e| e.hunts().len())
            .sum::<usize>()
            + self.repartition.as_ref().map_or(0, |r| r.hunt_count());
        self.metrics.hunts_loaded.set(hunts as i64);
    }

    async fn on_batch(&mut self, decoded: DecodedBatch) -> Result<(), PipelineError> {
        if self
            .pending
            .as_ref()
            .is_some_and(|(g, _)| decoded.generation >= *g)
        {
            let (_, set) = self.pending.take().expect("checked");
            self.apply(set).await?;
        }
        let now = Instant::now();
        for input in &decoded.started {
            self.tracker.start(input, now);
            if let Some(lake) = &mut self.lake {
                lake.restart(&input.kind, &input.name);
            }
        }
        for (input, newest) in &decoded.input_times {
            self.tracker.observe(input, *newest, now);
            if let (Some(times), Some(newest)) = (&self.event_times, newest) {
                times.observed(input, *newest);
            }
        }
        for input in &decoded.stopped {
            self.tracker.stop(input);
        }
        let watermark = self.tracker.watermark(now);
        let records_in_batch = decoded.records.len() + decoded.dead_letters.len();
        self.summary.records += records_in_batch as u64;
        self.summary.batches += 1;
        let view = Arc::new(BatchView {
            seq: decoded.seq,
            batch: decoded.batch,
            received: decoded.received,
            parts: decoded.parts,
            partitions: decoded.partitions,
            revoked: decoded
                .stopped
                .iter()
                .map(|i| Arc::from(i.name.as_str()))
                .collect(),
            masks: decoded.masks,
        });
        let input = StepInput {
            batch: Some(Arc::clone(&view)),
            watermark,
            flush: false,
        };
        let mut outputs = self.step_all(input).await;
        if self.repartitioned {
            self.evaluated.observe(&view.partitions, &view.revoked);
        }
        if let Some(r) = &mut self.repartition {
            let routed = outputs
                .iter_mut()
                .flat_map(|(_, out)| std::mem::take(&mut out.routed))
                .collect();
            let inputs = self.tracker.inputs(Instant::now());
            r.send(Some((&view.batch, &decoded.records)), routed, inputs, false)
                .await
                .map_err(PipelineError::Repartition)?;
        }
        if let Some(lake) = &mut self.lake {
            lake.write_events(view.seq, &view.batch, &decoded.records)
                .await?;
        }
        let mut dead_letters = decoded.dead_letters;
        dead_letters.extend(late_dead_letters(&outputs, &decoded.records));
        self.unacknowledged
            .push_back((decoded.seq, decoded.positions, records_in_batch));
        self.finish_step(outputs, dead_letters, watermark, false)
            .await
    }

    /// The inputs the source holds back now, on the gauge: after each step (a backlog's batches leave no
    /// room for ticks) and at each tick.
    fn report_held_back(&self) {
        if let Some(times) = &self.event_times {
            self.metrics.inputs_held_back.set(times.held_back() as i64);
        }
    }

    async fn on_tick(&mut self) -> Result<(), PipelineError> {
        let watermark = self.tracker.watermark(Instant::now());
        self.report_held_back();
        if let Some(r) = &mut self.repartition {
            // Inputs go idle without input, and receivers whose partitions carry no rows still hear
            // from this instance at least every heartbeat.
            let inputs = self.tracker.inputs(Instant::now());
            r.send(None, Vec::new(), inputs, false)
                .await
                .map_err(PipelineError::Repartition)?;
        }
        let holding = self
            .slots
            .iter()
            .filter_map(|s| s.evaluator.as_ref())
            .any(|e| e.state_size().is_some_and(|n| n > 0) || e.min_seq().is_some());
        let lake_idle = self.lake.as_ref().is_none_or(|l| l.buffered() == 0);
        let incidents_idle = self.incidents.as_ref().is_none_or(|(s, _)| !s.holding());
        if !holding
            && self.unacknowledged.is_empty()
            && self.suppressor.is_empty()
            && lake_idle
            && incidents_idle
        {
            self.observe_watermark(watermark);
            return Ok(());
        }
        let input = StepInput {
            batch: None,
            watermark,
            flush: false,
        };
        let outputs = self.step_all(input).await;
        self.finish_step(outputs, Vec::new(), watermark, false)
            .await
    }

    /// End of input or shutdown: evaluates what the watermark closed, delivers, acknowledges. Open
    /// windows and correlations are evaluated too when the source cannot read their rows again (a file,
    /// the generator); from Kafka they stay open: what they hold is not acknowledged, and the partitions'
    /// next reader (this instance restarted, or another one of the group) reads it again and evaluates
    /// them when the watermark passes. Evaluating them now would judge a window before all its rows
    /// arrived, and the next reader would judge it again without the rows acknowledged here.
    async fn drain(&mut self) -> Result<(), PipelineError> {
        let watermark = self.tracker.watermark(Instant::now());
        let input = StepInput {
            batch: None,
            watermark,
            flush: !self.acker.replays_unacknowledged(),
        };
        let outputs = self.step_all(input).await;
        self.finish_step(outputs, Vec::new(), watermark, true)
            .await?;
        if let Some(r) = &mut self.repartition {
            // Where this instance's inputs stand as it leaves (their next reader goes on from there).
            let inputs = self.tracker.inputs(Instant::now());
            r.send(None, Vec::new(), inputs, true)
                .await
                .map_err(PipelineError::Repartition)?;
        }
        Ok(())
    }

    /// Runs one step of every evaluator, at most `hunts.concurrency` at once, each on its own task. An
    /// evaluator whose step panics is disabled (counted, logged, reported by `/healthz` and the summary);
    /// the others' outputs are kept. Outputs are labelled with their evaluator.
    async fn step_all(&mut self, input: StepInput) -> Vec<(String, StepOutput)> {
        let (outputs, panicked) = step_slots(&mut self.slots, input, &self.limit).await;
        for (label, reason) in panicked {
            self.disable(label, &reason);
        }
        outputs
    }

    /// Takes a panicked evaluator out of the run (its state went with it; what it held is no longer
    /// held back from acknowledgement).
    fn disable(&mut self, label: String, reason: &str) {
        tracing::error!(hunt = %label, panic = %reason, "Hunt panicked and is disabled; the other hunts go on.");
        self.metrics.hunt_panics.with_label_values(&[&label]).inc();
        self.metrics.window_rows.with_label_values(&[&label]).set(0);
        self.summary.disabled.push(label);
        self.metrics
            .hunts_disabled
            .set(self.summary.disabled.len() as i64);
        self.health.ready(&format!(
            "running; disabled after a panic: {}",
            self.summary.disabled.join(", ")
        ));
        self.count_hunts();
    }

    /// Delivers what a step produced, updates metrics, and acknowledges what is complete.
    async fn finish_step(
        &mut self,
        outputs: Vec<(String, StepOutput)>,
        dead_letters: Vec<DeadLetter>,
        watermark: Watermark,
        flush: bool,
    ) -> Result<(), PipelineError> {
        let mut detections = Vec::new();
        for (label, out) in outputs {
            self.observe_step(&label, &out);
            detections.extend(out.detections);
        }
        if let Some(times) = &self.event_times {
            let held = self.slots.iter().map(|s| s.held).max().unwrap_or(0);
            times.window_rows(held, self.max_window_rows);
        }
        self.report_held_back();
        let mut admitted = self.suppressor.admit(crate::alert::build(detections));
        let event_time = match watermark {
            _ if flush => None,
            Watermark::At(t) | Watermark::AllIdle(t) => Some(t),
            Watermark::Unknown => Some(i64::MIN),
        };
        admitted.alerts.extend(self.suppressor.advance(event_time));
        for (hunt, n) in &admitted.suppressed {
            self.metrics
                .alerts_suppressed
                .with_label_values(&[hunt])
                .inc_by(*n);
        }
        let alerts = admitted.alerts;

        if !dead_letters.is_empty() {
            self.dead_letters.deliver(&dead_letters).await?;
            for letter in &dead_letters {
                self.metrics
                    .dead_letters
                    .with_label_values(&[letter.reason.as_str()])
                    .inc();
            }
            self.summary.dead_letters += dead_letters.len() as u64;
        }
        if !alerts.is_empty() {
            self.alerts.deliver(&alerts).await?;
            let acknowledged = Instant::now();
            let wall = wall_nanos();
            for alert in &alerts {
                let hunt = &alert.hunt;
                let kind = hunt.window.kind();
                self.metrics
                    .alerts
                    .with_label_values(&[&hunt.id, hunt.severity.as_str()])
                    .inc();
                self.metrics
                    .end_to_end_latency
                    .with_label_values(&[kind])
                    .observe(
                        acknowledged
                            .saturating_duration_since(alert.received)
                            .as_secs_f64(),
                    );
                self.metrics
                    .event_time_lag
                    .with_label_values(&[kind])
                    .observe((wall - alert.event_time).max(0) as f64 / 1e9);
            }
            self.summary.alerts += alerts.len() as u64;
        }
        self.raise_incidents(&alerts, watermark, flush).await?;
        if let Some(lake) = &mut self.lake {
            let oldest = self.unacknowledged.front().map(|(seq, _, _)| *seq);
            lake.write_alerts(&alerts, oldest).await?;
            if flush || lake.due(Instant::now()) {
                let started = Instant::now();
                let committed = lake.commit().await?;
                self.metrics
                    .lake_commit
                    .observe(started.elapsed().as_secs_f64());
                self.metrics
                    .lake_rows
                    .with_label_values(&["events"])
                    .inc_by(committed.events as u64);
                self.metrics
                    .lake_rows
                    .with_label_values(&["alerts"])
                    .inc_by(committed.alerts as u64);
                self.metrics
                    .lake_skipped_rows
                    .inc_by(committed.skipped as u64);
                if committed.skipped > 0 {
                    tracing::info!(
                        rows = committed.skipped,
                        "Replayed rows skipped: the lake already holds them."
                    );
                }
            }
        }
        self.observe_watermark(watermark);
        self.acknowledge(watermark);
        Ok(())
    }

    /// Hands the delivered alerts to the incident rules and delivers the incidents they open or update.
    async fn raise_incidents(
        &mut self,
        alerts: &[Alert],
        watermark: Watermark,
        flush: bool,
    ) -> Result<(), PipelineError> {
        let Some((stage, sink)) = &mut self.incidents else {
            return Ok(());
        };
        let out = stage.step(alerts, watermark, flush).await;
        if !out.findings.is_empty() {
            sink.deliver(&out.findings).await?;
            self.summary.incidents += out.findings.len() as u64;
        }
        // Each rule's errors, evaluation times, windows, late and dropped alerts, as a hunt's.
        for (rule, step) in &out.steps {
            self.observe_step(rule, step);
        }
        for (rule, reason) in out.disabled {
            self.disable(rule, &reason);
        }
        Ok(())
    }

    /// Per-evaluator metrics and logs of one step.
    fn observe_step(&mut self, label: &str, out: &StepOutput) {
        for error in &out.errors {
            self.metrics
                .hunt_errors
                .with_label_values(&[&error.hunt])
                .inc();
            tracing::error!(hunt = %error.hunt, error = %error.reason, "Hunt evaluation failed; its alerts for these rows are lost.");
            if !self.summary.failures.iter().any(|(h, _)| *h == error.hunt) {
                self.summary
                    .failures
                    .push((error.hunt.clone(), error.reason.clone()));
            }
        }
        if !out.evaluations.is_empty() {
            let histogram = self.metrics.hunt_evaluation.with_label_values(&[label]);
            for seconds in &out.evaluations {
                histogram.observe(*seconds);
            }
        }
        if out.windows_closed > 0 {
            self.metrics
                .windows_closed
                .with_label_values(&[label])
                .inc_by(out.windows_closed);
        }
        if !out.late_rows.is_empty() {
            self.metrics
                .late_records
                .with_label_values(&[label])
                .inc_by(out.late_rows.len() as u64);
        }
        if out.duplicates > 0 {
            self.metrics
                .repartition_duplicates
                .with_label_values(&[label])
                .inc_by(out.duplicates as u64);
        }
        if out.dropped > 0 {
            self.metrics
                .window_rows_dropped
                .with_label_values(&[label])
                .inc_by(out.dropped as u64);
        }
        // The hunts' evaluators (not the incident rules, which the incident stage holds).
        let Some(slot) = self.slots.iter_mut().find(|s| s.label == label) else {
            return;
        };
        let Some(held) = slot.evaluator.as_ref().and_then(|e| e.state_size()) else {
            return;
        };
        self.metrics
            .window_rows
            .with_label_values(&[label])
            .set(held as i64);
        slot.held = held;
        if out.dropped > 0 {
            slot.dropped += out.dropped as u64;
            if slot.warned.is_none_or(|t| t.elapsed() >= FULL_WARN_EVERY) {
                tracing::warn!(hunt = %label, dropped = slot.dropped, held, "Window state is full; rows are dropped until windows close (window.max_rows_per_hunt).");
                slot.dropped = 0;
                slot.warned = Some(Instant::now());
            }
        }
    }

    fn observe_watermark(&self, watermark: Watermark) {
        if self.repartitioned {
            return;
        }
        if let Watermark::At(t) | Watermark::AllIdle(t) = watermark {
            self.metrics
                .watermark_lag
                .set((wall_nanos() - t) as f64 / 1e9);
        }
    }

    /// Acknowledges, oldest first, every batch that no evaluator holds rows of, through `watermark`
    /// (every window ending before it is evaluated and delivered).
    fn acknowledge(&mut self, watermark: Watermark) {
        let through = match watermark {
            Watermark::At(t) | Watermark::AllIdle(t) => Some(t),
            Watermark::Unknown => None,
        };
        let held = self
            .slots
            .iter()
            .filter_map(|s| s.evaluator.as_ref())
            .filter_map(|e| e.min_seq())
            .chain(self.suppressor.min_seq())
            .chain(self.lake.as_ref().and_then(LakeSink::min_seq))
            .min();
        while let Some((seq, _, _)) = self.unacknowledged.front() {
            if held.is_some_and(|h| *seq >= h) {
                break;
            }
            let (_, positions, records) = self.unacknowledged.pop_front().expect("front exists");
            if self.repartitioned {
                self.evaluated.acknowledge(&*self.acker, &positions);
            } else {
                self.acker.acknowledge_through(&positions, through);
                self.metrics.acknowledged_events.inc_by(records as u64);
            }
        }
        if !self.repartitioned {
            self.metrics
                .unacknowledged_batches
                .set(self.unacknowledged.len() as i64);
        }
    }
}

/// Batches to decode at once beside `evaluators`: by the cores the busiest one's step keeps busy
/// ([`crate::decode::decoders_in_flight`]).
fn decoders_beside<'a>(evaluators: impl Iterator<Item = &'a dyn Evaluator>) -> usize {
    crate::decode::decoders_in_flight(evaluators.map(|e| e.threads()).max().unwrap_or(1))
}

/// Steps `slots` concurrently (see [`Engine::step_all`]); returns the outputs and, for each evaluator
/// that panicked (and is gone from `slots`), its label and the panic message.
async fn step_slots(
    slots: &mut Vec<Slot>,
    input: StepInput,
    limit: &Arc<Semaphore>,
) -> (Vec<(String, StepOutput)>, Vec<(String, String)>) {
    let mut tasks = Vec::with_capacity(slots.len());
    for slot in slots.iter_mut() {
        let evaluator = slot
            .evaluator
            .take()
            .expect("evaluators are home between steps");
        let input = input.clone();
        let limit = Arc::clone(limit);
        tasks.push(tokio::spawn(async move {
            let _permit = limit
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            evaluator.step(input).await
        }));
    }
    let mut outputs = Vec::with_capacity(tasks.len());
    let mut panicked = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok((evaluator, output)) => {
                slots[i].evaluator = Some(evaluator);
                outputs.push((slots[i].label.clone(), output));
            }
            Err(e) => panicked.push((i, panic_reason(e))),
        }
    }
    let mut gone = Vec::with_capacity(panicked.len());
    for (i, reason) in panicked.into_iter().rev() {
        gone.push((slots.remove(i).label, reason));
    }
    (outputs, gone)
}

impl Slot {
    fn new(evaluator: Box<dyn Evaluator>) -> Slot {
        Slot {
            label: evaluator.label().to_string(),
            evaluator: Some(evaluator),
            dropped: 0,
            warned: None,
            held: 0,
        }
    }
}

fn wall_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// One dead letter per late record, naming every hunt it was late for.
fn late_dead_letters(
    outputs: &[(String, StepOutput)],
    records: &[crate::source::RawRecord],
) -> Vec<DeadLetter> {
    let mut late: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (id, out) in outputs {
        for &row in &out.late_rows {
            let hunts = late.entry(row).or_default();
            // A repartitioned message is named once per late row it brought.
            if hunts.last() != Some(&id.as_str()) {
                hunts.push(id);
            }
        }
    }
    late.into_iter()
        .map(|(row, hunts)| {
            let record = &records[row];
            DeadLetter {
                reason: DeadLetterReason::Late,
                detail: format!(
                    "arrived after its window closed for hunt(s) {} (beyond their allowed lateness)",
                    hunts.join(", ")
                ),
                input: Arc::clone(&record.input),
                offset: record.offset,
                bytes: record.bytes.clone(),
                source_timestamp: record.source_timestamp,
            }
        })
        .collect()
}
