//! A live consumer's assigned partitions kept in step by event time (see
//! [`super::kafka::KafkaSource::with_alignment`]): which are idle, and which the gated alignment pauses.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::align::{InStep, Registration, realign};
use super::kafka::KafkaConsumer;
use super::{Input, InputKind};

/// The assigned partitions kept in step by event time.
pub(super) struct InStepPartitions {
    partitions: HashMap<(String, i32), Heard>,
    /// Time spent reading, not blocked sending to the pipeline (as of the last [`Self::realign`]): a
    /// partition is idle after `idle_timeout` of it without a record, so a pipeline that is behind
    /// idles no partition.
    clock: Duration,
    started: Instant,
    pub(super) blocked: Duration,
    realigned: Option<Instant>,
}

impl Default for InStepPartitions {
    fn default() -> Self {
        InStepPartitions {
            partitions: HashMap::new(),
            clock: Duration::ZERO,
            started: Instant::now(),
            blocked: Duration::ZERO,
            realigned: None,
        }
    }
}

struct Heard {
    step: InStep,
    /// [`InStepPartitions::clock`] at its last record, at its assignment before any, or while it was
    /// paused.
    last: Duration,
    /// [`InStepPartitions::clock`] at its assignment.
    assigned: Duration,
}

/// Whether `input` is the assignment of (`topic`, `partition`) the poll loop reads now.
pub(super) fn is_partition(input: &Input, topic: &str, partition: i32) -> bool {
    matches!(&input.kind, InputKind::Kafka { topic: t, partition: p } if *p == partition && t == topic)
}

/// How often the partitions' pauses are looked at.
const REALIGN_EVERY: Duration = Duration::from_millis(50);

impl InStepPartitions {
    /// A new assignment of the partition. The earlier one's registration goes first (registrations are
    /// by name). Whether it is paused is not known (librdkafka may keep an earlier assignment's pause):
    /// [`Self::realign`] pauses or resumes it, and tries again if that fails.
    pub(super) fn begin(&mut self, key: &(String, i32), register: impl FnOnce() -> Registration) {
        self.partitions.remove(key);
        let mut step = InStep::new(register());
        step.paused = None;
        self.partitions.insert(
            key.clone(),
            Heard {
                step,
                last: self.clock,
                assigned: self.clock,
            },
        );
    }

    pub(super) fn end(&mut self, key: &(String, i32)) {
        self.partitions.remove(key);
    }

    /// A record of the partition came (called for the first record of each run of one partition in a
    /// chunk: [`Self::clock`] moves only between chunks).
    pub(super) fn heard(&mut self, topic: &str, partition: i32) {
        // Found without building a key: this runs for every record.
        if let Some((_, h)) = self
            .partitions
            .iter_mut()
            .find(|((t, p), _)| *p == partition && t == topic)
        {
            h.last = self.clock;
        }
    }

    /// After each chunk and each empty poll: marks the partitions idle or not, then pauses those ahead
    /// and resumes the others (at most every [`REALIGN_EVERY`]). As with the watermark, a partition
    /// with no record yet holds the others back until it is idle (it may be the oldest, or stay
    /// empty); one whose records give no event time (none decodes) holds them no longer than that
    /// after its assignment, or its junk would stop the others for good. A paused one is not idle;
    /// its wait does not count towards it.
    pub(super) fn realign(&mut self, consumer: &KafkaConsumer, idle_timeout: Duration) {
        let now = Instant::now();
        self.clock = now
            .saturating_duration_since(self.started)
            .saturating_sub(self.blocked);
        if self.partitions.is_empty()
            || self
                .realigned
                .is_some_and(|t| now.saturating_duration_since(t) < REALIGN_EVERY)
        {
            return;
        }
        self.realigned = Some(now);
        for h in self.partitions.values_mut() {
            if h.step.paused == Some(true) {
                h.last = self.clock;
            }
            let idle = self.clock.saturating_sub(h.last) >= idle_timeout
                || (!h.step.aligned.time_known()
                    && self.clock.saturating_sub(h.assigned) >= idle_timeout);
            h.step.aligned.set_idle(idle);
        }
        realign(
            consumer,
            self.partitions.iter_mut().map(|(k, h)| (k, &mut h.step)),
        );
    }
}
