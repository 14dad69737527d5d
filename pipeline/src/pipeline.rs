//! The wiring: source → decode → window → query → alert, and acknowledgements flowing back.
//!
//! The source and the batcher run as their own tasks, connected by bounded channels (a slow stage slows the
//! one before it). This task takes decoded batches one at a time: it advances the watermark, runs every hunt
//! on the batch concurrently (unwindowed hunts evaluate at once; windowed ones store their rows and evaluate
//! the windows the watermark closed), hands the alerts to the alert sink and the dead letters to the
//! dead-letter sink, waits for both to acknowledge, and only then acknowledges to the source the batches no
//! open window still holds rows of. A timer does the same without input so that quiet inputs go idle and
//! their last windows close. At the end of input or on shutdown every open window is closed and everything
//! is acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::alert::{AlertSink, DeadLetterSink, SinkError};
use crate::decode::{DeadLetter, DeadLetterReason, DecodedBatch, Decoder, EventSchema};
use crate::query::PlannedHunt;
use crate::settings::Settings;
use crate::sigma::engine::SigmaEngine;
use crate::source::{Acknowledge, Positions, Source, SourceError};
use crate::telemetry::{Health, Metrics};
use crate::window::{Watermark, WatermarkTracker, WindowState};
use step::{BatchView, HuntRuntime, StepInput, StepOutput};

mod step;

/// Everything a pipeline runs with. Built by `main` from settings, or by tests with memory sinks.
pub struct Components {
    pub settings: Settings,
    pub schema: Arc<EventSchema>,
    pub hunts: Vec<PlannedHunt>,
    /// Sigma rules, evaluated together on every batch (`None`: no Sigma directory configured).
    pub sigma: Option<SigmaEngine>,
    pub source: Box<dyn Source>,
    pub alerts: Box<dyn AlertSink>,
    pub dead_letters: Box<dyn DeadLetterSink>,
    pub metrics: Metrics,
    pub health: Health,
}

/// What a finished run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub batches: u64,
    pub alerts: u64,
    pub dead_letters: u64,
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
}

/// Runs until the source ends or `shutdown` is cancelled, then drains.
pub async fn run(c: Components, shutdown: CancellationToken) -> Result<Summary, PipelineError> {
    let settings = &c.settings;
    let acker = c.source.acknowledger();
    let (record_tx, record_rx) = mpsc::channel(8);
    let (batch_tx, mut batch_rx) = mpsc::channel::<DecodedBatch>(2);
    // Before the source starts: a source that has to wait (for a broker) then says so itself.
    c.health.ready("running");
    let source_task = tokio::spawn(c.source.run(record_tx, shutdown.clone()));
    let decoder = Arc::new(Decoder::new(
        Arc::clone(&c.schema),
        settings.decode.max_record_bytes,
        &c.metrics,
    ));
    let batcher = tokio::spawn(crate::decode::run_batcher(
        decoder,
        record_rx,
        batch_tx,
        settings.decode.batch_size,
        settings.decode.batch_timeout,
    ));

    let mut engine = Engine::new(
        &c.settings,
        c.schema.time_index,
        c.hunts,
        c.sigma,
        (c.alerts, c.dead_letters),
        acker,
        c.metrics.clone(),
    );
    c.metrics
        .hunts_loaded
        .set((engine.hunts.len() + engine.sigma.as_ref().map_or(0, |s| s.rule_count())) as i64);
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
                batch = batch_rx.recv() => match batch {
                    Some(batch) => engine.on_batch(batch).await?,
                    None => break,
                },
                _ = tick.tick() => engine.on_tick().await?,
            }
        }
        Ok(())
    }
    .await;
    c.health.not_ready("draining");
    let result = match result {
        Ok(()) => engine.drain().await,
        Err(e) => Err(e),
    };
    if result.is_ok() {
        engine.acker.close();
    }
    let _ = batcher.await;
    let source_result = source_task.await.expect("the source task does not panic");
    result?;
    source_result?;
    c.health.not_ready("stopped");
    Ok(engine.summary)
}

/// Label of the Sigma rule set in per-hunt metrics (evaluation time, correlation state).
const SIGMA_LABEL: &str = "sigma";

struct Engine {
    hunts: Vec<Option<HuntRuntime>>,
    /// Home between steps; taken by the step that evaluates it.
    sigma: Option<Box<SigmaEngine>>,
    /// Sigma correlations judge matches this far behind the pipeline watermark.
    sigma_lateness: i64,
    time_index: usize,
    tracker: WatermarkTracker,
    alerts: Box<dyn AlertSink>,
    dead_letters: Box<dyn DeadLetterSink>,
    acker: Arc<dyn Acknowledge>,
    metrics: Metrics,
    limit: Arc<Semaphore>,
    /// Batches not yet acknowledged to the source, oldest first: (seq, positions, records).
    unacknowledged: VecDeque<(u64, Positions, usize)>,
    /// Hunts whose window state is full (for logging the transition once).
    full: Vec<bool>,
    summary: Summary,
}

impl Engine {
    fn new(
        settings: &Settings,
        time_index: usize,
        hunts: Vec<PlannedHunt>,
        sigma: Option<SigmaEngine>,
        (alerts, dead_letters): (Box<dyn AlertSink>, Box<dyn DeadLetterSink>),
        acker: Arc<dyn Acknowledge>,
        metrics: Metrics,
    ) -> Engine {
        let w = &settings.window;
        let hunts: Vec<Option<HuntRuntime>> = hunts
            .into_iter()
            .map(|p| {
                let window = p.hunt.window.size_slide().map(|(size, slide)| {
                    WindowState::new(
                        size,
                        slide,
                        p.hunt.allowed_lateness.unwrap_or(w.allowed_lateness),
                        w.max_rows_per_hunt,
                    )
                });
                Some(HuntRuntime {
                    planned: Arc::new(p),
                    window,
                })
            })
            .collect();
        Engine {
            full: vec![false; hunts.len()],
            hunts,
            sigma: sigma.map(Box::new),
            sigma_lateness: w.allowed_lateness.as_nanos() as i64,
            time_index,
            tracker: WatermarkTracker::new(w.idle_timeout),
            alerts,
            dead_letters,
            acker,
            metrics,
            limit: Arc::new(Semaphore::new(settings.hunts.concurrency)),
            unacknowledged: VecDeque::new(),
            summary: Summary::default(),
        }
    }

    async fn on_batch(&mut self, decoded: DecodedBatch) -> Result<(), PipelineError> {
        let now = Instant::now();
        for input in &decoded.started {
            self.tracker.start(input, now);
        }
        for (input, newest) in &decoded.input_times {
            self.tracker.observe(input, *newest, now);
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
        });
        let input = StepInput {
            batch: Some(view),
            watermark,
            flush: false,
        };
        let sigma = self.spawn_sigma(&input);
        let mut outputs = self.step_all(input).await;
        let mut ids = self.hunt_ids();
        if let Some(out) = self.join_sigma(sigma).await {
            outputs.push(out);
            ids.push(SIGMA_LABEL.to_string());
        }
        let mut dead_letters = decoded.dead_letters;
        dead_letters.extend(late_dead_letters(&outputs, &decoded.records, &ids));
        self.unacknowledged
            .push_back((decoded.seq, decoded.positions, records_in_batch));
        self.finish_step(outputs, dead_letters, watermark).await
    }

    async fn on_tick(&mut self) -> Result<(), PipelineError> {
        let watermark = self.tracker.watermark(Instant::now());
        if self.hunts.iter().flatten().all(|h| h.window.is_none())
            && self.sigma.as_ref().is_none_or(|s| s.state_size() == 0)
            && self.unacknowledged.is_empty()
        {
            self.observe_watermark(watermark);
            return Ok(());
        }
        let input = StepInput {
            batch: None,
            watermark,
            flush: false,
        };
        let sigma = self.spawn_sigma(&input);
        let mut outputs = self.step_all(input).await;
        outputs.extend(self.join_sigma(sigma).await);
        self.finish_step(outputs, Vec::new(), watermark).await
    }

    async fn drain(&mut self) -> Result<(), PipelineError> {
        let watermark = self.tracker.watermark(Instant::now());
        let input = StepInput {
            batch: None,
            watermark,
            flush: true,
        };
        let sigma = self.spawn_sigma(&input);
        let mut outputs = self.step_all(input).await;
        outputs.extend(self.join_sigma(sigma).await);
        self.finish_step(outputs, Vec::new(), watermark).await
    }

    /// Starts the Sigma rule set's step (CPU-bound: on a blocking thread) while the hunts run.
    fn spawn_sigma(
        &mut self,
        input: &StepInput,
    ) -> Option<tokio::task::JoinHandle<(Box<SigmaEngine>, StepOutput)>> {
        let mut sigma = self.sigma.take()?;
        let input = input.clone();
        let lateness = self.sigma_lateness;
        Some(tokio::task::spawn_blocking(move || {
            let mut out = StepOutput::default();
            let received = input
                .batch
                .as_ref()
                .map_or_else(Instant::now, |b| b.received);
            if let Some(view) = &input.batch {
                let started = Instant::now();
                let result = sigma.evaluate(&view.batch, view.seq, view.received);
                out.evaluations.push(started.elapsed().as_secs_f64());
                out.alerts = result.alerts;
                out.late_rows = result.late_rows;
            }
            let watermark = match input.watermark {
                Watermark::At(t) => Some(t.saturating_sub(lateness)),
                Watermark::AllIdle(t) => Some(t),
                Watermark::Unknown => None,
            };
            out.alerts
                .extend(sigma.advance(watermark, input.flush, received));
            (sigma, out)
        }))
    }

    async fn join_sigma(
        &mut self,
        task: Option<tokio::task::JoinHandle<(Box<SigmaEngine>, StepOutput)>>,
    ) -> Option<StepOutput> {
        let (sigma, out) = task?.await.expect("the Sigma step does not panic");
        self.sigma = Some(sigma);
        Some(out)
    }

    fn hunt_ids(&self) -> Vec<String> {
        self.hunts
            .iter()
            .map(|h| {
                h.as_ref()
                    .expect("hunts are home between steps")
                    .planned
                    .hunt
                    .id
                    .clone()
            })
            .collect()
    }

    /// Runs one step of every hunt, at most `hunts.concurrency` at once, each on its own task.
    async fn step_all(&mut self, input: StepInput) -> Vec<StepOutput> {
        let mut tasks = Vec::with_capacity(self.hunts.len());
        for slot in &mut self.hunts {
            let runtime = slot.take().expect("hunts are home between steps");
            let input = input.clone();
            let limit = Arc::clone(&self.limit);
            let time_index = self.time_index;
            tasks.push(tokio::spawn(async move {
                let _permit = limit
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                runtime.step(input, time_index).await
            }));
        }
        let mut outputs = Vec::with_capacity(tasks.len());
        for (slot, task) in self.hunts.iter_mut().zip(tasks) {
            let (runtime, output) = task.await.expect("a hunt step does not panic");
            *slot = Some(runtime);
            outputs.push(output);
        }
        outputs
    }

    /// Delivers what a step produced, updates metrics, and acknowledges what is complete.
    async fn finish_step(
        &mut self,
        outputs: Vec<StepOutput>,
        dead_letters: Vec<DeadLetter>,
        watermark: Watermark,
    ) -> Result<(), PipelineError> {
        let mut alerts = Vec::new();
        for (i, out) in outputs.into_iter().enumerate() {
            let Some(slot) = self.hunts.get(i) else {
                self.finish_sigma(&out);
                alerts.extend(out.alerts);
                continue;
            };
            let runtime = slot.as_ref().expect("hunts are home between steps");
            let id = &runtime.planned.hunt.id;
            for error in &out.errors {
                self.metrics.hunt_errors.with_label_values(&[id]).inc();
                tracing::error!(hunt = %id, error = %error, "Hunt evaluation failed; its alerts for these rows are lost.");
            }
            if !out.evaluations.is_empty() {
                let histogram = self.metrics.hunt_evaluation.with_label_values(&[id]);
                for seconds in &out.evaluations {
                    histogram.observe(*seconds);
                }
            }
            if out.windows_closed > 0 {
                self.metrics
                    .windows_closed
                    .with_label_values(&[id])
                    .inc_by(out.windows_closed);
            }
            if !out.late_rows.is_empty() {
                self.metrics
                    .late_records
                    .with_label_values(&[id])
                    .inc_by(out.late_rows.len() as u64);
            }
            if let Some(window) = &runtime.window {
                self.metrics
                    .window_rows
                    .with_label_values(&[id])
                    .set(window.rows() as i64);
                if out.dropped > 0 {
                    self.metrics
                        .window_rows_dropped
                        .with_label_values(&[id])
                        .inc_by(out.dropped as u64);
                    if !self.full[i] {
                        tracing::warn!(hunt = %id, dropped = out.dropped, held = window.rows(), "Window state is full; rows are dropped until windows close (window.max_rows_per_hunt).");
                    }
                    self.full[i] = true;
                } else if out.windows_closed > 0 {
                    self.full[i] = false;
                }
            }
            alerts.extend(out.alerts);
        }

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
        self.observe_watermark(watermark);
        self.acknowledge();
        Ok(())
    }

    fn finish_sigma(&self, out: &StepOutput) {
        let histogram = self
            .metrics
            .hunt_evaluation
            .with_label_values(&[SIGMA_LABEL]);
        for seconds in &out.evaluations {
            histogram.observe(*seconds);
        }
        if !out.late_rows.is_empty() {
            self.metrics
                .late_records
                .with_label_values(&[SIGMA_LABEL])
                .inc_by(out.late_rows.len() as u64);
        }
        if let Some(sigma) = &self.sigma {
            self.metrics
                .window_rows
                .with_label_values(&[SIGMA_LABEL])
                .set(sigma.state_size() as i64);
        }
    }

    fn observe_watermark(&self, watermark: Watermark) {
        if let Watermark::At(t) | Watermark::AllIdle(t) = watermark {
            self.metrics
                .watermark_lag
                .set((wall_nanos() - t) as f64 / 1e9);
        }
    }

    /// Acknowledges, oldest first, every batch that no window holds rows of.
    fn acknowledge(&mut self) {
        let held = self
            .hunts
            .iter()
            .flatten()
            .filter_map(|h| h.window.as_ref().and_then(WindowState::min_seq))
            .chain(self.sigma.as_ref().and_then(|s| s.min_seq()))
            .min();
        while let Some((seq, _, _)) = self.unacknowledged.front() {
            if held.is_some_and(|h| *seq >= h) {
                break;
            }
            let (_, positions, records) = self.unacknowledged.pop_front().expect("front exists");
            self.acker.acknowledge(&positions);
            self.metrics.acknowledged_events.inc_by(records as u64);
        }
        self.metrics
            .unacknowledged_batches
            .set(self.unacknowledged.len() as i64);
    }
}

fn wall_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// One dead letter per late record, naming every hunt it was late for.
fn late_dead_letters(
    outputs: &[StepOutput],
    records: &[crate::source::RawRecord],
    hunt_ids: &[String],
) -> Vec<DeadLetter> {
    let mut late: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (out, id) in outputs.iter().zip(hunt_ids) {
        for &row in &out.late_rows {
            late.entry(row).or_default().push(id);
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
