//! The generator as a source: a steady stream at the configured rate, event time following the wall clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::{EventGenerator, GeneratorConfig};
use crate::settings::GeneratorSettings;
use crate::source::{
    CHUNK_RECORDS, Input, InputKind, RawRecord, RecordSender, Source, SourceError, SourceMessage,
};

pub struct GeneratorSource {
    settings: GeneratorSettings,
}

impl GeneratorSource {
    pub fn new(settings: GeneratorSettings) -> GeneratorSource {
        GeneratorSource { settings }
    }
}

/// How often the generator wakes to emit what the rate allows.
const TICK: Duration = Duration::from_millis(10);

impl Source for GeneratorSource {
    fn run(
        self: Box<Self>,
        tx: RecordSender,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move {
            let s = self.settings;
            let input: Arc<Input> = Input::new("generator", InputKind::Generator);
            let mut generator = EventGenerator::new(GeneratorConfig {
                hosts: s.hosts,
                users: s.users,
                seed: s.seed,
                attack_interval: s.attack_interval,
                campaign_interval: s.campaign_interval,
            });
            let started = Instant::now();
            let started_at = chrono::Utc::now();
            let mut sent: u64 = 0;
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = ticker.tick() => {}
                }
                // Emit what the rate allows up to now; falling behind catches up, never bursts past it.
                let due = (started.elapsed().as_secs_f64() * s.rate as f64) as u64;
                let due = s.limit.map_or(due, |l| due.min(l));
                while sent < due {
                    let n = (due - sent).min(CHUNK_RECORDS as u64);
                    // Event time: the wall clock, sped up by `speed` from the start.
                    let elapsed = started.elapsed().as_secs_f64() * s.speed;
                    let now = started_at + chrono::Duration::nanoseconds((elapsed * 1e9) as i64);
                    let received = Instant::now();
                    let mut chunk = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        let mut bytes = Vec::with_capacity(512);
                        generator.next_event(now, &mut bytes);
                        sent += 1;
                        chunk.push(RawRecord {
                            input: Arc::clone(&input),
                            offset: sent,
                            bytes: bytes.into(),
                            received,
                            source_timestamp: None,
                        });
                    }
                    let Ok(permit) = tx.reserve().await else {
                        return Ok(());
                    };
                    permit.send(SourceMessage::Records(chunk));
                }
                if s.limit.is_some_and(|l| sent >= l) {
                    return Ok(());
                }
            }
        })
    }
}
