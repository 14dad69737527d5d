//! What the next reader of a repartition partition needs before its first record: the watermark its
//! windows were evaluated through when its offset was last committed (its *floor*), read on every
//! assignment from the commit's metadata and from the floors recorded beside it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;

use super::SourceError;
use super::kafka::{KafkaConsumer, partition_name};
use crate::kafka::{KafkaFailure, client_config};
use crate::settings::{KafkaSettings, KafkaSourceSettings};

/// How a committed offset's metadata carries the watermark its windows were evaluated through.
pub(super) const WATERMARK_METADATA: &str = "ghosthunt-watermark=";

/// The shortest time between two floors recorded for one partition (see [`Floors`]).
const FLOOR_EVERY: Duration = Duration::from_millis(500);

/// Each partition's floor — the watermark its windows were evaluated through — kept besides the commit's
/// metadata, which not every Kafka-protocol broker keeps (tansu 0.6 drops it): as the partition's committed
/// offset in a group of its own, `<group>-floors`, that no consumer joins. A floor is recorded before an
/// offset is stored with it, so the floor its next owner reads is never older than the commit it starts
/// from (a newer one is safe: the windows up to it were evaluated). Without it the next owner would
/// evaluate windows that straddle the committed offset again, from their rows after it.
pub struct Floors {
    consumer: BaseConsumer,
    /// Per partition: the floor recorded last, and when.
    recorded: std::sync::Mutex<HashMap<(String, i32), (i64, Instant)>>,
}

impl Floors {
    pub(super) fn new(
        kafka: &KafkaSettings,
        settings: &KafkaSourceSettings,
    ) -> Result<Floors, SourceError> {
        let consumer = client_config(kafka, &settings.options)
            .set("group.id", format!("{}-floors", settings.group_id))
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| KafkaFailure::new("creating the floors client", e))?;
        Ok(Floors {
            consumer,
            recorded: Default::default(),
        })
    }

    /// Whether an offset of the partition may be stored with floor `floor` now: it may when a floor at
    /// least as high is recorded, after recording it if the last was recorded `FLOOR_EVERY` ago or more
    /// (otherwise not yet: the offset stored before stays, with its own floor).
    pub(super) fn cover(&self, topic: &str, partition: i32, floor: i64) -> bool {
        let key = (topic.to_string(), partition);
        let mut recorded = self.recorded.lock().expect("floors lock");
        match recorded.get(&key) {
            Some((f, _)) if *f >= floor => return true,
            Some((_, at)) if at.elapsed() < FLOOR_EVERY => return false,
            _ => {}
        }
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(topic, partition, rdkafka::Offset::Offset(floor))
            .is_err()
        {
            return false;
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                recorded.insert(key, (floor, Instant::now()));
                true
            }
            Err(error) => {
                tracing::warn!(%topic, partition, %error, "Recording a partition's floor failed; its offset is stored later.");
                false
            }
        }
    }

    /// The recorded floors of `partitions` (input names).
    fn read(&self, partitions: &[(String, i32)]) -> KafkaResult<HashMap<String, i64>> {
        let committed = self
            .consumer
            .committed_offsets(partition_list(partitions), Duration::from_secs(10))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(floor) => {
                    Some((partition_name(e.topic(), e.partition()), floor))
                }
                _ => None,
            })
            .collect())
    }
}

/// One assignment of a partition to this consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Increases with every (re)assignment: reading starts again from the last commit.
    pub epoch: u64,
    /// The watermark the last commit was made through (see [`super::Acknowledge::acknowledge_through`]).
    pub floor: Option<i64>,
}

/// Per partition (input name), its current assignment: what a reader of the partition needs to know
/// before its first record.
pub type Assignments = Arc<std::sync::Mutex<HashMap<String, Assignment>>>;

/// Records new assignments of `partitions` in `into`, with the watermarks their commits were made
/// through.
pub(super) fn read_committed_watermarks(
    consumer: &KafkaConsumer,
    partitions: &[(String, i32)],
    (into, floors): (&Assignments, &Floors),
) {
    let committed = consumer.committed_offsets(partition_list(partitions), Duration::from_secs(10));
    let mut map = into.lock().expect("assignments lock");
    for (topic, partition) in partitions {
        let a = map.entry(partition_name(topic, *partition)).or_default();
        a.epoch += 1;
        a.floor = None;
    }
    match committed {
        Ok(committed) => {
            for e in committed.elements() {
                if let Some(w) = e
                    .metadata()
                    .strip_prefix(WATERMARK_METADATA)
                    .and_then(|w| w.parse::<i64>().ok())
                {
                    map.entry(partition_name(e.topic(), e.partition()))
                        .or_default()
                        .floor = Some(w);
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, "Could not read the committed watermarks of the assigned partitions; windows they close may be evaluated again from part of their rows.")
        }
    }
    match floors.read(partitions) {
        Ok(recorded) => {
            for (name, floor) in recorded {
                let a = map.entry(name).or_default();
                a.floor = a.floor.max(Some(floor));
            }
        }
        Err(error) => {
            tracing::warn!(%error, "Could not read the recorded floors of the assigned partitions; windows they close may be evaluated again from part of their rows.")
        }
    }
}

/// `partitions` as a list to ask the group coordinator about.
fn partition_list(partitions: &[(String, i32)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition(topic, *partition);
    }
    tpl
}
