//! `ghosthunt bench`: the whole pipeline over a fixed number of events into a null sink, measured.
//!
//! Events come from JSON-lines files (given, or written first from the seeded generator: the same seed and
//! count give the same bytes), from the generator in-process (seeded, unpaced), or from the configured Kafka
//! source. Event time of generated events advances by a fixed step per event (`event_rate` events per
//! second of event time, 2,000 like the embedded default), so windows and attack scenarios look like a real
//! stream however fast the run goes. The hunts are the configured ones, or N copies of one hunt (with distinct
//! ids) to measure the cost per added hunt. Alerts go to a null sink that counts them and records each one's
//! end-to-end latency (received by the source → delivered to the sink) exactly, not in histogram buckets.

mod input;
mod measure;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, AlertSink, DeadLetterSink, SinkError};
use crate::app::{self, AppError};
use crate::decode::DeadLetter;
use crate::hunt::{Hunt, HuntError};
use crate::pipeline::{self, Components};
use crate::query::{self, PlannedHunt};
use crate::settings::{FileSettings, Settings, SourceSettings};
use crate::source::{Acknowledge, FileSource, Source, SourceMessage};
use crate::telemetry::{Health, Metrics};

pub use input::{GeneratedSource, generate_file};
pub use measure::{Latencies, Report};

/// Where the benchmark's events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BenchSource {
    /// These files (paths or globs), read once; with none, a file of generated events is written first.
    File(Vec<String>),
    /// The seeded generator, in the pipeline's process, as fast as the pipeline takes events.
    Generator,
    /// The configured lake's events table, all of it (a retro-hunt into the null sink).
    Lake,
    /// The configured Kafka source (`[source.kafka]`, `[kafka]`); the run stops after `events`.
    Kafka,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub source: BenchSource,
    /// Events to generate (file without paths, generator) or to read (Kafka). Given files are read whole.
    pub events: u64,
    /// Seed of the generated events.
    pub seed: u64,
    /// Events per second of event time in generated events.
    pub event_rate: u64,
    /// Run this many copies of one hunt instead of the configured hunts: (hunt id, copies).
    pub copies: Option<(String, usize)>,
    /// Where a generated file is written (removed afterwards); default: the system's temporary directory.
    pub work_dir: Option<PathBuf>,
    /// Write the generated events to this file instead, and keep it (to send the same bytes to Kafka
    /// with `produce --file`, or to read them again with `--file`).
    pub keep_events: Option<PathBuf>,
    /// Also write the events and alerts to the configured lake (the lake sink's cost).
    pub lake_sink: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            source: BenchSource::File(Vec::new()),
            events: 1_000_000,
            seed: 42,
            event_rate: 2_000,
            copies: None,
            work_dir: None,
            keep_events: None,
            lake_sink: false,
        }
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("hunt `{0}` is not loaded (see `ghosthunt hunts`)")]
    UnknownHunt(String),
    #[error("hunt copy refused: {0}")]
    Copy(HuntError),
    #[error("writing the generated events to {path}: {source}")]
    Generate {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the Kafka benchmark needs source.kind = \"kafka\"")]
    NotKafka,
    #[error("the lake benchmarks need lake.path")]
    NoLake,
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
}

/// Runs the benchmark and measures it. Loading, planning and writing a generated file are not timed.
pub async fn run(mut settings: Settings, options: &BenchOptions) -> Result<Report, BenchError> {
    // Sigma rules (sigma.directories) run too, with the columns they add to the schema.
    let sigma = app::sigma(&settings, app::schema(&settings)?)?;
    let schema = sigma.schema;
    let hunts = bench_hunts(&settings, &schema, options.copies.as_ref()).await?;
    let hunt_count = hunts.len() + sigma.engine.as_ref().map_or(0, |e| e.rule_count());
    let metrics = Metrics::new();
    let health = Health::default();
    let shutdown = CancellationToken::new();
    let mut generated = None;
    // When the first record came (Kafka: after the group's join, which is not the pipeline's time).
    let first_record: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let source: Box<dyn Source> = match &options.source {
        BenchSource::Generator => Box::new(GeneratedSource::new(
            &settings.generator,
            options.seed,
            options.events,
            options.event_rate,
        )),
        BenchSource::File(paths) => {
            let paths = if paths.is_empty() {
                let path = options.keep_events.clone().unwrap_or_else(|| {
                    let dir = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
                    dir.join(format!(
                        "ghosthunt-bench-{}-{}-{}.jsonl",
                        std::process::id(),
                        options.seed,
                        options.events
                    ))
                });
                generate_file(&settings.generator, options, &path).map_err(|source| {
                    BenchError::Generate {
                        path: path.display().to_string(),
                        source,
                    }
                })?;
                if options.keep_events.is_none() {
                    generated = Some(path.clone());
                }
                vec![path.display().to_string()]
            } else {
                paths.clone()
            };
            let file = FileSettings {
                paths,
                follow: false,
                ..settings.file.clone()
            };
            Box::new(
                FileSource::new(
                    file,
                    settings.decode.max_record_bytes,
                    settings.window.max_lead,
                )
                .map_err(|e| BenchError::App(e.into()))?,
            )
        }
        BenchSource::Lake => {
            if !settings.lake.enabled() {
                return Err(BenchError::NoLake);
            }
            let mode = app::lake_read_mode(&schema, &settings, &hunts, sigma.engine.is_some())?;
            Box::new(crate::lake::read::LakeSource::new(
                &settings.lake,
                Arc::clone(&schema),
                crate::lake::read::Range::default(),
                mode,
            ))
        }
        BenchSource::Kafka => {
            let SourceSettings::Kafka(kafka) = &mut settings.source else {
                return Err(BenchError::NotKafka);
            };
            // A consumer group of its own, from the earliest offsets: a benchmark run beside the
            // live pipeline must not take its partitions or move its committed offsets.
            kafka.group_id = format!(
                "{}-bench-{}",
                kafka.group_id,
                chrono::Utc::now().timestamp_millis()
            );
            kafka.auto_offset_reset = "earliest".into();
            tracing::info!(
                topics = ?kafka.topics,
                group = %kafka.group_id,
                records = options.events,
                "Benchmark: the first records of the topics, from their earliest offsets, in a consumer group of its own (the topics must hold that many). The time is counted from the first record."
            );
            let source = app::build_source(&settings, &metrics, &health)
                .map_err(|e| BenchError::App(e.into()))?;
            Box::new(UpTo {
                inner: source,
                records: options.events,
                first: Arc::clone(&first_record),
            })
        }
    };
    let lake = match options.lake_sink {
        true if !settings.lake.enabled() => return Err(BenchError::NoLake),
        true => Some(crate::lake::LakeSink::open(&settings.lake, &*app::schema(&settings)?).await?),
        false => None,
    };
    let sink = NullSink::default();
    let before = measure::Usage::now();
    let started = Instant::now();
    let evaluators = app::evaluators(&settings, &schema, hunts, sigma.engine);
    // The incident rules run as in `ghosthunt run`; their findings are not counted as alerts.
    let hunts_loaded: Vec<_> = evaluators.iter().flat_map(|e| e.hunts()).collect();
    let incidents = app::incident_stage(&settings, &metrics, hunts_loaded)
        .await
        .map(|stage| (stage, Box::new(NullSink::default()) as Box<dyn AlertSink>));
    let result = pipeline::run(
        Components {
            settings,
            schema,
            evaluators,
            source,
            alerts: Box::new(sink.clone()),
            dead_letters: Box::new(sink.clone()),
            metrics: metrics.clone(),
            health,
            reloads: None,
            lake,
            incidents,
            stage: crate::pipeline::Stage::Events(None),
        },
        shutdown,
    )
    .await;
    let elapsed = first_record.get().unwrap_or(&started).elapsed();
    let after = measure::Usage::now();
    if let Some(path) = generated {
        let _ = std::fs::remove_file(path);
    }
    let summary = result.map_err(|e| BenchError::App(e.into()))?;
    let state = std::mem::take(&mut *sink.0.lock().expect("null sink lock"));
    Ok(Report {
        events: summary.records,
        bytes: metrics.bytes_received.get(),
        hunts: hunt_count,
        alerts: state.alerts,
        dead_letters: state.dead_letters,
        seconds: elapsed.as_secs_f64(),
        latency: Latencies::from_samples(state.latencies),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        peak_rss_bytes: after.peak_rss_bytes,
    })
}

/// The configured hunts, or `copies` of one of them with ids `<id>_1`, `<id>_2` ….
async fn bench_hunts(
    settings: &Settings,
    schema: &crate::decode::EventSchema,
    copies: Option<&(String, usize)>,
) -> Result<Vec<PlannedHunt>, BenchError> {
    let Some((id, n)) = copies else {
        let (planned, errors) = app::hunts(settings, schema).await;
        // No SQL hunt is fine when Sigma rules run (hunts.builtin = false, only sigma.directories).
        if planned.is_empty() && (!errors.is_empty() || settings.sigma.directories.is_empty()) {
            return Err(AppError::NoHunts(errors).into());
        }
        return Ok(planned);
    };
    let loaded = query::load::load(settings.hunts.builtin, &settings.hunts.directories);
    let original: Hunt = loaded
        .hunts
        .get(id)
        .cloned()
        .ok_or_else(|| BenchError::UnknownHunt(id.clone()))?;
    let mut planned = Vec::with_capacity(*n);
    for i in 1..=*n {
        let mut hunt = original.clone();
        hunt.id = format!("{id}_{i}");
        planned.push(
            query::plan::plan(hunt, schema)
                .await
                .map_err(BenchError::Copy)?,
        );
    }
    Ok(planned)
}

/// The first `records` records of a source, then its end: a backlog read from Kafka ends like a file
/// (the windows still open are evaluated at once, where a live consumer would wait for the events to
/// come), so the run measures the events' processing, not the wait for windows to close.
struct UpTo {
    inner: Box<dyn Source>,
    records: u64,
    /// Set when the first records come.
    first: Arc<std::sync::OnceLock<Instant>>,
}

impl Source for UpTo {
    fn run(
        self: Box<Self>,
        tx: crate::source::RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), crate::source::SourceError>> {
        Box::pin(async move {
            let (inner_tx, mut rx) = tokio::sync::mpsc::channel(4);
            let stop = shutdown.child_token();
            let inner = tokio::spawn(self.inner.run(inner_tx, stop.clone()));
            let mut left = self.records;
            while left > 0
                && let Some(message) = rx.recv().await
            {
                let message = match message {
                    SourceMessage::Records(mut records) => {
                        self.first.get_or_init(Instant::now);
                        records.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                        left -= records.len() as u64;
                        SourceMessage::Records(records)
                    }
                    other => other,
                };
                if tx.send(message).await.is_err() {
                    break;
                }
            }
            stop.cancel();
            // Drain what the source sends while stopping, so that it is not blocked on a full channel.
            let drain = async { while rx.recv().await.is_some() {} };
            let (result, ()) = tokio::join!(inner, drain);
            result.expect("the source does not panic")
        })
    }

    /// The source's, except that nothing is read again: the pipeline evaluates the open windows at the
    /// end as it does at a file's end.
    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        Arc::new(NoReplay(self.inner.acknowledger()))
    }

    fn event_times(&self) -> Option<Arc<dyn crate::source::EventTimes>> {
        self.inner.event_times()
    }
}

struct NoReplay(Arc<dyn Acknowledge>);

impl Acknowledge for NoReplay {
    fn acknowledge(&self, positions: &crate::source::Positions) {
        self.0.acknowledge(positions)
    }

    fn acknowledge_through(&self, positions: &crate::source::Positions, watermark: Option<i64>) {
        self.0.acknowledge_through(positions, watermark)
    }

    fn close(&self) {
        self.0.close()
    }
}

#[derive(Default)]
struct SinkState {
    alerts: u64,
    dead_letters: u64,
    /// Seconds from receiving the (newest) event behind each alert to its delivery here.
    latencies: Vec<f64>,
}

/// Counts alerts and dead letters and records each alert's latency; writes nothing.
#[derive(Clone, Default)]
struct NullSink(Arc<Mutex<SinkState>>);

impl AlertSink for NullSink {
    fn deliver<'a>(&'a mut self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), SinkError>> {
        let now = Instant::now();
        let mut state = self.0.lock().expect("null sink lock");
        state.alerts += alerts.len() as u64;
        state.latencies.extend(
            alerts
                .iter()
                .map(|a| now.saturating_duration_since(a.received).as_secs_f64()),
        );
        Box::pin(async { Ok(()) })
    }
}

impl DeadLetterSink for NullSink {
    fn deliver<'a>(
        &'a mut self,
        letters: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0.lock().expect("null sink lock").dead_letters += letters.len() as u64;
        Box::pin(async { Ok(()) })
    }
}
