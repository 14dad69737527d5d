//! How far a run that reads history once is (`ghosthunt hunt`): a bar on a terminal, one JSON line on
//! stderr every few seconds otherwise (a log collector and a person can both read it), and a last line at
//! the end or on Ctrl-C (then the pipeline's own summary).
//!
//! The lake source reports the share of the range's event-time span it has reached (its rows come in
//! event-time order); [`WithProgress`] wraps the other history sources — JSON-lines files (share: bytes
//! read of the files' total) and Kafka by time (records and records/s; the share of the end offsets when
//! the source announces them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Acknowledge, RecordSender, Source, SourceError, SourceMessage};

/// A progress display. `share` is the fraction of the work done, when known.
pub struct Progress {
    started: Instant,
    last_line: Instant,
    every: Duration,
    bar: Option<indicatif::ProgressBar>,
    /// The latest figures, for the JSON lines: events, share, and the source's own fields.
    events: u64,
    share: Option<f64>,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Progress {
    /// A bar when stderr is a terminal, else JSON lines every `every`.
    pub fn new(every: Duration) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(1000);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {percent:>3}% {msg} · ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            started: Instant::now(),
            last_line: Instant::now(),
            every,
            bar,
            events: 0,
            share: None,
            fields: serde_json::Map::new(),
        }
    }

    /// The figures now: `events` read, the `share` done (0–1) when known, a one-line `message` for the
    /// bar and the source's `fields` for the JSON line.
    pub fn update(
        &mut self,
        events: u64,
        share: Option<f64>,
        message: impl FnOnce() -> String,
        fields: serde_json::Map<String, serde_json::Value>,
    ) {
        self.events = events;
        self.share = share.map(|s| s.clamp(0.0, 1.0));
        self.fields = fields;
        match &self.bar {
            Some(bar) => {
                if let Some(s) = self.share {
                    bar.set_position((s * 1000.0) as u64);
                }
                bar.set_message(format!(
                    "{} · {events} events · {:.0}/s",
                    message(),
                    self.rate()
                ));
            }
            None if self.last_line.elapsed() >= self.every => {
                self.last_line = Instant::now();
                self.line(false);
            }
            None => {}
        }
    }

    fn rate(&self) -> f64 {
        self.events as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn line(&self, done: bool) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut line = serde_json::json!({
            "progress": "retro-hunt",
            "events": self.events,
            "events_per_second": self.rate().round(),
            "elapsed_seconds": (elapsed * 10.0).round() / 10.0,
        });
        let object = line.as_object_mut().expect("an object");
        if let Some(s) = self.share {
            object.insert(
                "done_percent".into(),
                serde_json::json!((s * 1000.0).round() / 10.0),
            );
        }
        object.extend(self.fields.clone());
        if done {
            object.insert("finished".into(), serde_json::Value::Bool(true));
        }
        eprintln!("{line}");
    }

    /// The end of the input at `events` read; `fields` replace the source's own fields when given.
    pub fn finish_at(
        &mut self,
        events: u64,
        fields: Option<serde_json::Map<String, serde_json::Value>>,
    ) {
        self.events = events;
        self.finish(fields);
    }

    /// The end of the input; `fields` replace the source's own fields when given.
    pub fn finish(&mut self, fields: Option<serde_json::Map<String, serde_json::Value>>) {
        if let Some(fields) = fields {
            self.fields = fields;
        }
        // All of it is done (a share measured by event time stops short of the range's end).
        if self.share.is_some() {
            self.share = Some(1.0);
        }
        match self.bar.take() {
            Some(bar) => {
                bar.set_position(1000);
                bar.finish_with_message(format!(
                    "{} events in {:.1} s",
                    self.events,
                    self.started.elapsed().as_secs_f64()
                ));
            }
            None => self.line(true),
        }
    }

    /// Stopped before the end (Ctrl-C) at `events` read.
    pub fn stopped_at(&mut self, events: u64) {
        self.events = events;
        self.stopped();
    }

    /// Stopped before the end (Ctrl-C): the pipeline's summary follows.
    pub fn stopped(&mut self) {
        match self.bar.take() {
            Some(bar) => bar.abandon_with_message(format!("stopped after {} events", self.events)),
            None => self.line(false),
        }
    }
}

/// What a wrapped source says of its size and how far it has read: Kafka the records between the start
/// offsets and the ends seen at start, files the bytes read of them (as stored: a UTF-16 file's, not its
/// records' once transcoded).
#[derive(Debug, Default)]
pub struct Size {
    records: AtomicU64,
    bytes_read: AtomicU64,
}

impl Size {
    pub fn set_records(&self, records: u64) {
        self.records.store(records, Ordering::Relaxed);
    }
    fn records(&self) -> Option<u64> {
        Some(self.records.load(Ordering::Relaxed)).filter(|&r| r > 0)
    }
    pub fn add_bytes_read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }
    fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
}

/// A history source with progress: counts what passes from `inner` to the pipeline.
pub struct WithProgress {
    inner: Box<dyn Source>,
    /// The bytes of the input files, when the source reads files (and counts what it reads in `size`).
    total_bytes: Option<u64>,
    size: Arc<Size>,
    every: Duration,
}

impl WithProgress {
    pub fn new(inner: Box<dyn Source>, total_bytes: Option<u64>, size: Arc<Size>) -> WithProgress {
        WithProgress {
            inner,
            total_bytes,
            size,
            every: Duration::from_secs(5),
        }
    }
}

impl Source for WithProgress {
    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            let WithProgress {
                inner,
                total_bytes,
                size,
                every,
            } = *self;
            let (inner_tx, mut rx) = mpsc::channel(tx.max_capacity());
            let reading = tokio::spawn(inner.run(inner_tx, shutdown.clone()));
            let mut progress = Progress::new(every);
            let mut events = 0u64;
            let mut pipeline_gone = false;
            while let Some(message) = rx.recv().await {
                match &message {
                    SourceMessage::Records(records) => events += records.len() as u64,
                    SourceMessage::Decoded { records, .. } => events += records.len() as u64,
                    SourceMessage::Started(_) | SourceMessage::Stopped(_) => {}
                }
                if tx.send(message).await.is_err() {
                    pipeline_gone = true;
                    break;
                }
                // Read a little ahead of the records passed on (the reads in flight): what the files
                // hold is what counts (line ends, byte-order marks, UTF-16), not the records' bytes.
                let bytes = size.bytes_read();
                let mut fields = serde_json::Map::new();
                let share = match (total_bytes, size.records()) {
                    (Some(total), _) => {
                        fields.insert("bytes".into(), bytes.into());
                        fields.insert("bytes_total".into(), total.into());
                        Some(bytes as f64 / total.max(1) as f64)
                    }
                    (None, Some(records)) => {
                        fields.insert("records_total".into(), records.into());
                        Some(events as f64 / records as f64)
                    }
                    (None, None) => None,
                };
                progress.update(
                    events,
                    share,
                    || match total_bytes {
                        Some(total) => {
                            format!("{:.0} of {:.0} MB", bytes as f64 / 1e6, total as f64 / 1e6)
                        }
                        None => "Kafka".to_string(),
                    },
                    fields,
                );
            }
            drop(rx);
            let result = match reading.await {
                Ok(result) => result,
                // As if unwrapped: a panic is the inner source's, not a reading error.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Ok(()),
            };
            if shutdown.is_cancelled() || pipeline_gone {
                progress.stopped();
            } else if result.is_ok() {
                progress.finish(None);
            }
            result
        })
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledge> {
        self.inner.acknowledger()
    }

    fn event_times(&self) -> Option<Arc<dyn super::EventTimes>> {
        self.inner.event_times()
    }
}
