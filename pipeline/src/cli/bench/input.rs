//! The benchmark's generated events: the seeded generator with event time advancing a fixed step per event,
//! written to a JSON-lines file or sent straight into the pipeline.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::BenchOptions;
use crate::generator::{EventGenerator, GeneratorConfig};
use crate::settings::GeneratorSettings;
use crate::source::{
    CHUNK_RECORDS, Input, InputKind, RawRecord, RecordSender, Source, SourceError, SourceMessage,
};

/// Event time of the first generated event: fixed, so that the same seed gives the same bytes.
const EPOCH: &str = "2026-01-01T00:00:00Z";

/// Seeded events with event time `EPOCH + i / rate`.
struct Events {
    generator: EventGenerator,
    start: DateTime<Utc>,
    step_ns: f64,
    next: u64,
}

impl Events {
    fn new(settings: &GeneratorSettings, seed: u64, rate: u64) -> Events {
        Events {
            generator: EventGenerator::new(GeneratorConfig {
                hosts: settings.hosts,
                users: settings.users,
                seed,
                attack_interval: settings.attack_interval,
                campaign_interval: settings.campaign_interval,
            }),
            start: DateTime::parse_from_rfc3339(EPOCH)
                .expect("a valid constant")
                .with_timezone(&Utc),
            step_ns: 1e9 / rate.max(1) as f64,
            next: 0,
        }
    }

    fn write_next(&mut self, out: &mut Vec<u8>) {
        let offset = (self.next as f64 * self.step_ns) as i64;
        self.generator
            .next_event(self.start + chrono::Duration::nanoseconds(offset), out);
        self.next += 1;
    }
}

/// Writes `options.events` generated events to `path`, one per line.
pub fn generate_file(
    settings: &GeneratorSettings,
    options: &BenchOptions,
    path: &Path,
) -> std::io::Result<()> {
    let mut events = Events::new(settings, options.seed, options.event_rate);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut line = Vec::with_capacity(2048);
    for _ in 0..options.events {
        line.clear();
        events.write_next(&mut line);
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()
}

/// The generated events as a source, unpaced: as fast as the pipeline takes them.
pub struct GeneratedSource {
    events: Events,
    limit: u64,
}

impl GeneratedSource {
    pub fn new(settings: &GeneratorSettings, seed: u64, limit: u64, rate: u64) -> GeneratedSource {
        GeneratedSource {
            events: Events::new(settings, seed, rate),
            limit,
        }
    }
}

impl Source for GeneratedSource {
    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            let GeneratedSource { mut events, limit } = *self;
            let input = Input::new("generator", InputKind::Generator);
            while events.next < limit && !shutdown.is_cancelled() {
                let n = (limit - events.next).min(CHUNK_RECORDS as u64) as usize;
                let mut chunk = Vec::with_capacity(n);
                for _ in 0..n {
                    let mut bytes = Vec::with_capacity(1024);
                    events.write_next(&mut bytes);
                    chunk.push(RawRecord {
                        input: Arc::clone(&input),
                        offset: events.next,
                        bytes: bytes.into(),
                        received: Instant::now(),
                        source_timestamp: None,
                    });
                }
                if tx.send(SourceMessage::Records(chunk)).await.is_err() {
                    break;
                }
            }
            Ok(())
        })
    }
}
